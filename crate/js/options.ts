/**
 * Checks of the public option bags, and their translation to what the core takes. Misuse is
 * a `TypeError` (`INVALID_ARGUMENT`) before anything reaches the worker; the core checks
 * every limit's type and range again.
 *
 * @module
 */

import type { CoreCallOptions, CoreLimits, CoreValue } from './nestbox.js';
import { DEFAULT_LIMITS, TRACE_SPANS } from './constants.js';
import { invalidArgument, record, SandboxError, type ErrorRecord } from './errors.js';
import type { CallOptions, Engine, LoadOptions, ModuleSourceLike, ProgressSample, SandboxLimits } from './types.js';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Rejects fields of `value` not in `known`. */
export function onlyFields(value: Record<string, unknown>, known: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key) && value[key] !== undefined) {
      throw invalidArgument(`${what}: unknown option ${JSON.stringify(key)} (known: ${known.join(', ')})`);
    }
  }
}

/** A checked `engine` option (`undefined` when absent). */
export function engineOf(value: unknown, what: string): Engine | undefined {
  if (value === undefined || value === 'interpreter' || value === 'native') return value;
  throw invalidArgument(`${what} must be 'interpreter' or 'native', got ${String(value)}`, { engine: String(value) });
}

/** The names of the JSPI features this JavaScript engine lacks (empty: the native tier runs here). */
export function jspiMissing(): string[] {
  const wasm = WebAssembly as unknown as Partial<Record<'Suspending' | 'promising', unknown>>;
  const missing: string[] = [];
  if (typeof wasm.Suspending !== 'function') missing.push('WebAssembly.Suspending');
  if (typeof wasm.promising !== 'function') missing.push('WebAssembly.promising');
  return missing;
}

/**
 * `INVALID_ARGUMENT` (`details.engine: 'native'`, `details.missing`) when this JavaScript
 * engine cannot run the native tier; `undefined` when it can. Checked on the page (early) and
 * in the worker (where the guest runs).
 */
export function jspiRefusal(): ErrorRecord | undefined {
  const missing = jspiMissing();
  if (missing.length === 0) return undefined;
  return record(
    'INVALID_ARGUMENT',
    `engine 'native' needs JavaScript Promise Integration, and this JavaScript engine lacks ${missing.join(' and ')}; use engine 'interpreter'`,
    { engine: 'native', missing: missing.join(', ') },
  );
}

/**
 * The core's limits from the public ones: the core's own names, plus the deprecated
 * `memoryLimitBytes` (= `maxMemoryBytes`; both given must agree).
 */
export function coreLimits(limits: unknown): CoreLimits {
  if (limits === undefined) return {};
  if (!isObject(limits)) throw invalidArgument('limits must be an object');
  const { memoryLimitBytes, ...rest } = limits as SandboxLimits & Record<string, unknown>;
  // Every other field goes to the core as it is; the core refuses unknown fields and wrong types.
  const core: CoreLimits & Record<string, unknown> = { ...rest };
  if (memoryLimitBytes === undefined) return core;
  const { maxMemoryBytes } = rest;
  if (maxMemoryBytes === undefined) {
    core.maxMemoryBytes = memoryLimitBytes;
    return core;
  }
  const numeric = (v: unknown): v is number | bigint => typeof v === 'number' || typeof v === 'bigint';
  // Loose equality compares a number with a bigint by value (1 == 1n); both are numbers here.
  if (!numeric(memoryLimitBytes) || !numeric(maxMemoryBytes) || memoryLimitBytes != maxMemoryBytes) {
    throw invalidArgument(
      `limits.memoryLimitBytes (${String(memoryLimitBytes)}) disagrees with limits.maxMemoryBytes (${String(maxMemoryBytes)}): memoryLimitBytes is the deprecated name of maxMemoryBytes, give only maxMemoryBytes`,
    );
  }
  return core;
}

/** A number of milliseconds as the page can time it (or the core's default). */
export function timeoutOf(limits: CoreLimits): number {
  const t = limits.timeoutMs;
  if (t === undefined) return DEFAULT_LIMITS.timeoutMs;
  const n = Number(t);
  return Number.isFinite(n) && n >= 0 ? n : DEFAULT_LIMITS.timeoutMs;
}

/** A non-negative integer option (number, or bigint where the core takes one). */
function count(value: unknown, what: string, bigintOk: boolean): void {
  const ok =
    (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) ||
    (bigintOk && typeof value === 'bigint' && value >= 0n);
  if (!ok) throw invalidArgument(`${what} must be a non-negative integer, got ${String(value)}`);
}

/** Checked call options: the signal, the core's share of them, and the effective timeout in ms. */
export interface CheckedCallOptions {
  signal: AbortSignal | undefined;
  /** Asked for progress reports between slices when set. */
  onProgress: ((sample: ProgressSample) => void) | undefined;
  core: CoreCallOptions;
  timeoutMs: number;
}

/** Checked call options, the core's share of them, and the effective timeout in ms. */
export function callOptions(options: unknown, sandboxTimeoutMs: number): CheckedCallOptions {
  if (options === undefined) return { signal: undefined, onProgress: undefined, core: {}, timeoutMs: sandboxTimeoutMs };
  if (!isObject(options)) throw invalidArgument('call options must be an object');
  onlyFields(options, ['signal', 'timeoutMs', 'fuel', 'maxMemoryBytes', 'onProgress', 'trace'], 'call options');
  const { signal, timeoutMs, fuel, maxMemoryBytes, onProgress, trace } = options as CallOptions;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgument('signal must be an AbortSignal');
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw invalidArgument('onProgress must be a function');
  }
  const core: CoreCallOptions = {};
  let effective = sandboxTimeoutMs;
  if (timeoutMs !== undefined) {
    count(timeoutMs, 'timeoutMs', false);
    core.timeoutMs = timeoutMs;
    effective = Math.min(effective, timeoutMs);
  }
  if (fuel !== undefined) {
    count(fuel, 'fuel', true);
    core.fuel = fuel;
  }
  if (maxMemoryBytes !== undefined) {
    count(maxMemoryBytes, 'maxMemoryBytes', true);
    core.maxMemoryBytes = maxMemoryBytes;
  }
  const spans = traceSpans(trace);
  if (spans !== undefined) core.trace = spans;
  return { signal, onProgress, core, timeoutMs: effective };
}

/** How many spans `trace` asks to keep: `undefined` for no trace. */
function traceSpans(trace: unknown): number | undefined {
  if (trace === undefined || trace === false) return undefined;
  if (trace === true) return TRACE_SPANS.default;
  if (!isObject(trace)) throw invalidArgument(`trace must be true, false or { maxSpans }, got ${String(trace)}`);
  onlyFields(trace, ['maxSpans'], 'trace');
  const { maxSpans } = trace;
  if (typeof maxSpans !== 'number' || !Number.isSafeInteger(maxSpans) || maxSpans < 1 || maxSpans > TRACE_SPANS.max) {
    throw invalidArgument(`trace.maxSpans must be an integer from 1 to ${TRACE_SPANS.max}, got ${String(maxSpans)}`);
  }
  return maxSpans;
}

/** Checked call arguments. */
export function callArgs(args: unknown): CoreValue[] {
  if (args === undefined) return [];
  if (!Array.isArray(args)) throw invalidArgument('args must be an array of numbers and bigints');
  for (const [i, a] of args.entries()) {
    if (typeof a !== 'number' && typeof a !== 'bigint') {
      throw invalidArgument(`args[${i}] must be a number or a bigint, got ${typeof a}`);
    }
  }
  return [...(args as CoreValue[])];
}

/** The checked integrity string of load options. */
export function integrityOf(options: unknown): string {
  if (!isObject(options)) throw invalidArgument('load options {integrity} are required');
  onlyFields(options, ['integrity'], 'load options');
  const { integrity } = options as Partial<LoadOptions>;
  if (typeof integrity !== 'string') {
    throw invalidArgument('load options: integrity ("sha256-<base64>" or 64 hex digits) is required');
  }
  return integrity;
}

/**
 * The bytes of a module source (a private copy). A URL or string is fetched (relative to the
 * document or worker location); a response that is not `ok` is `INVALID_MODULE`.
 */
export async function bytesOf(source: ModuleSourceLike): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source.slice();
  if (source instanceof ArrayBuffer) return new Uint8Array(source.slice(0));
  let response: Response;
  if (source instanceof Response) response = source;
  else if (source instanceof URL || typeof source === 'string') response = await fetch(source);
  else throw invalidArgument('module source must be a Uint8Array, an ArrayBuffer, a Response, a URL or a string');
  if (!response.ok) {
    throw new SandboxError(
      'INVALID_MODULE',
      `fetching the module failed: HTTP ${response.status} from ${response.url}`,
      {
        status: response.status,
        url: response.url,
      },
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}
