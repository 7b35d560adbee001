/**
 * What a call and a WASI run do on this side of the core, shared by the page sandbox
 * (`sandbox.ts`, the core in a worker) and the local one (`local.ts`, the core in this thread):
 * the checks before a call or an instantiation, linking the imports, the result of a call,
 * reading the next chunk of an async stdin against the call's deadline and cancellation, and
 * `runWasi` from its options to its result. How a step reaches the core (messages, or direct
 * calls) is each side's own.
 *
 * @module
 */

import type {
  CoreDataConfig,
  CoreGrant,
  CoreHttpRequest,
  CoreHttpResponse,
  CoreLogLine,
  CoreMetrics,
  CoreTrace,
  CoreValue,
  CoreWasiFiles,
} from './nestbox.js';
import type { CapabilityTable, Link } from './capability.js';
import { invalidArgument, SandboxError, withDenials, type AnySandboxError } from './errors.js';
import { report } from './platform.js';
import { WASI_OUTPUT_CAPS } from './constants.js';
import { MAX_TIMER_MS } from './host.js';
import { callArgs, callOptions, onlyFields, type CheckedCallOptions } from './options.js';
import { disposedError } from './resource.js';
import type {
  CallResult,
  DataCallResult,
  DataInput,
  HttpOptions,
  ImportsObject,
  LogLine,
  Metrics,
  ProgressSample,
  Value,
  WasiResult,
} from './types.js';
import { OutputCollector, StdinReader, wasiPlan, wasiResult, type WasiPlan } from './wasi.js';

/**
 * The state of `module` if it belongs to this sandbox (`owns`), else a TypeError; `DISPOSED`
 * once the module was disposed.
 */
export function ownModule<S extends { readonly dropped: boolean }>(
  state: S | undefined,
  owns: (state: S) => boolean,
): S {
  if (state === undefined || !owns(state)) throw invalidArgument('module was not loaded by this sandbox');
  if (state.dropped) throw disposedError('module');
  return state;
}

/** The `imports` of checked instantiate options. */
export function instantiateImports(options: unknown): unknown {
  if (typeof options !== 'object' || options === null) throw invalidArgument('instantiate options must be an object');
  onlyFields(options as Record<string, unknown>, ['imports', 'config', 'maxVarBytes', 'http'], 'instantiate options');
  return (options as { imports?: ImportsObject }).imports;
}

/**
 * The data ABI's configuration of checked instantiate options (`config`, `maxVarBytes`), or
 * `undefined` when neither is given (the core checks their types).
 */
export function instantiateData(options: unknown): CoreDataConfig | undefined {
  const { config, maxVarBytes, http } = options as { config?: unknown; maxVarBytes?: unknown; http?: unknown };
  if (config === undefined && maxVarBytes === undefined && http === undefined) return undefined;
  const data: CoreDataConfig = {};
  if (config !== undefined) data.config = config as Record<string, string>;
  if (maxVarBytes !== undefined) data.maxVarBytes = maxVarBytes as number;
  const handler = httpHandlerOf(options);
  if (handler !== undefined) {
    data.http = {
      capability: HTTP_CAPABILITY,
      allowedHosts: handler.allowedHosts,
      maxResponseBytes: handler.maxResponseBytes,
    };
  }
  return data;
}

/** The capability id the core names a data guest's HTTP requests with (never a table id). */
export const HTTP_CAPABILITY = 0xffff_ffff;

/** This side of a data guest's HTTP capability. */
export interface HttpHandler {
  readonly allowedHosts: string[];
  readonly maxResponseBytes: number;
  readonly fetch: (url: string, init: RequestInit) => Promise<Response>;
}

/** The checked `http` of instantiate options, if any. */
export function httpHandlerOf(options: unknown): HttpHandler | undefined {
  const { http } = options as { http?: unknown };
  if (http === undefined) return undefined;
  if (typeof http !== 'object' || http === null)
    throw invalidArgument('http must be { allowedHosts, maxResponseBytes?, fetch? }');
  onlyFields(http as Record<string, unknown>, ['allowedHosts', 'maxResponseBytes', 'fetch'], 'http');
  const o = http as HttpOptions;
  if (!Array.isArray(o.allowedHosts) || !o.allowedHosts.every((h) => typeof h === 'string')) {
    throw invalidArgument('http.allowedHosts must be an array of host names');
  }
  const maxResponseBytes = o.maxResponseBytes ?? 50 << 20;
  if (!Number.isSafeInteger(maxResponseBytes) || maxResponseBytes < 0) {
    throw invalidArgument('http.maxResponseBytes must be a non-negative integer');
  }
  if (o.fetch !== undefined && typeof o.fetch !== 'function') throw invalidArgument('http.fetch must be a function');
  const fetcher = o.fetch ?? ((url: string, init: RequestInit) => globalThis.fetch(url, init));
  return { allowedHosts: [...o.allowedHosts], maxResponseBytes, fetch: fetcher };
}

/**
 * `url` parsed as `fetch` parses it, if it is http(s), without credentials, and its host
 * matches one of `allowedHosts` (`*` any run of characters, case-insensitive, ports
 * ignored, as the core matches); otherwise why not.
 */
export function allowedUrl(handler: Pick<HttpHandler, 'allowedHosts'>, url: string): URL | string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL`;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `${JSON.stringify(url)} is not http(s)`;
  if (parsed.username !== '' || parsed.password !== '') return `${JSON.stringify(url)} has credentials`;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (!handler.allowedHosts.some((pattern) => globMatch(pattern.toLowerCase(), host))) {
    return `host ${JSON.stringify(host)} is not in allowedHosts`;
  }
  return parsed;
}

/** `*` matches any run of characters; everything else itself. */
function globMatch(pattern: string, text: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === text;
  const first = parts[0] ?? '';
  const last = parts[parts.length - 1] ?? '';
  if (!text.startsWith(first) || text.length < first.length + last.length || !text.endsWith(last)) return false;
  let at = first.length;
  for (const part of parts.slice(1, -1)) {
    const found = text.indexOf(part, at);
    if (found < 0 || found + part.length > text.length - last.length) return false;
    at = found + part.length;
  }
  return true;
}

/**
 * Runs a data guest's HTTP request (the core checked its host against `allowedHosts`):
 * redirects are refused (they could leave the allowed hosts), the body is read up to
 * `maxResponseBytes` (`HOST_ERROR` beyond), racing the call's deadline and cancellation.
 */
export async function runHttp(
  handler: HttpHandler,
  request: CoreHttpRequest,
  signal: AbortSignal,
  deadline: number,
  timeoutMs: number,
): Promise<{ kind: 'http'; response: CoreHttpResponse } | { kind: 'fail'; error: AnySandboxError }> {
  const timer = new AbortController();
  const stop = setTimeout(
    () =>
      timer.abort(
        new SandboxError('TIMEOUT', `call exceeded its ${timeoutMs} ms limit during an HTTP request`, {
          limit: timeoutMs,
        }),
      ),
    Math.min(Math.max(0, deadline - performance.now()), MAX_TIMER_MS),
  );
  const both = AbortSignal.any([signal, timer.signal]);
  // The core checked the host, but it runs in the worker: checked again here, with the URL
  // parser `fetch` itself uses, and fetched by the URL as parsed.
  const url = allowedUrl(handler, request.url);
  if (typeof url === 'string') {
    clearTimeout(stop);
    return { kind: 'fail', error: new SandboxError('HOST_ERROR', `HTTP request refused: ${url}`) };
  }
  try {
    const init: RequestInit = { method: request.method, headers: request.headers, redirect: 'error', signal: both };
    if (request.body.length > 0) init.body = request.body.slice();
    const response = await handler.fetch(url.href, init);
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = response.body?.getReader();
    for (;;) {
      const next = reader === undefined ? { done: true as const, value: undefined } : await reader.read();
      if (next.done) break;
      total += next.value.length;
      if (total > handler.maxResponseBytes) {
        await reader?.cancel();
        const error = new SandboxError(
          'HOST_ERROR',
          `the HTTP response to ${request.method} ${request.url} is over maxResponseBytes (${handler.maxResponseBytes})`,
          { limit: handler.maxResponseBytes },
        );
        return { kind: 'fail', error };
      }
      chunks.push(next.value);
    }
    const body = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) (body.set(c, at), (at += c.length));
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => (headers[key] = value));
    return { kind: 'http', response: { status: response.status, headers, body } };
  } catch (thrown) {
    if (both.aborted && both.reason instanceof SandboxError)
      return { kind: 'fail', error: both.reason as AnySandboxError };
    const error = new SandboxError(
      'HOST_ERROR',
      `the HTTP request ${request.method} ${request.url} failed: ${String(thrown)}`,
      { cause: String(thrown) },
      { cause: thrown },
    );
    return { kind: 'fail', error };
  } finally {
    clearTimeout(stop);
  }
}

/** Whether the second argument of `call` is a data call's input (anything but an array or `undefined`). */
export function isDataInput(args: unknown): args is DataInput {
  return args !== undefined && !Array.isArray(args);
}

const encoder = new TextEncoder();

/**
 * A data call's input as bytes (a private copy): bytes as they are, a string as UTF-8, any
 * other value as its JSON text. TypeError (`INVALID_ARGUMENT`) for a value JSON cannot
 * encode (a function, a symbol, a `bigint`, a cycle).
 */
export function dataInputBytes(input: DataInput): Uint8Array {
  if (input instanceof Uint8Array) return input.slice();
  if (input instanceof ArrayBuffer) return new Uint8Array(input.slice(0));
  if (ArrayBuffer.isView(input)) throw invalidArgument('a data call input view must be a Uint8Array');
  if (typeof input === 'string') return encoder.encode(input);
  let json: string | undefined;
  try {
    json = JSON.stringify(input);
  } catch (thrown) {
    throw invalidArgument(`a data call input must be JSON-serialisable: ${String(thrown)}`);
  }
  if (json === undefined) throw invalidArgument(`a data call input must be JSON-serialisable, got ${typeof input}`);
  return encoder.encode(json);
}

/** {@link DataCallResult}: the output kept privately, read as bytes, text or JSON. */
class DataResult implements DataCallResult {
  readonly #output: Uint8Array;
  readonly logs: readonly LogLine[];
  readonly results: Value[];
  readonly metrics: Metrics;
  readonly trace?: CoreTrace;

  constructor(output: Uint8Array, logs: readonly LogLine[], results: Value[], metrics: Metrics, trace?: CoreTrace) {
    this.#output = output;
    this.logs = logs;
    this.results = results;
    this.metrics = metrics;
    if (trace !== undefined) this.trace = trace;
  }

  get byteLength(): number {
    return this.#output.length;
  }

  bytes(): Uint8Array {
    return this.#output.slice();
  }

  text(): string {
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(this.#output);
    } catch {
      throw invalidArgument(`the output (${this.#output.length} bytes) is not valid UTF-8; read it with bytes()`);
    }
  }

  json(): unknown {
    const text = this.text();
    try {
      return JSON.parse(text) as unknown;
    } catch (thrown) {
      throw invalidArgument(`the output (${this.#output.length} bytes) is not valid JSON: ${String(thrown)}`);
    }
  }
}

/** The result of a finished data call. */
export function dataResult(result: FinishedCall): DataCallResult {
  const { output, logs, results, metrics, trace } = result;
  return new DataResult(output ?? new Uint8Array(0), logs ?? [], results, metrics, trace);
}

/**
 * Links `imports` in `table`; a revoked capability is refused (`CAPABILITY_REVOKED`) after
 * `refused` was told (a denial, and its audit entry).
 */
export function linkImports(
  table: CapabilityTable,
  imports: unknown,
  allowSync: boolean,
  refused: (error: SandboxError) => void,
): { grants: CoreGrant[]; links: Link[] } {
  try {
    return table.link(imports, allowSync);
  } catch (error) {
    if (error instanceof SandboxError && error.code === 'CAPABILITY_REVOKED') refused(error);
    throw error;
  }
}

/**
 * A call's arguments (or a data call's input, as bytes) and options, checked; `CANCELLED`
 * when its signal is already aborted.
 */
export function checkedCall(
  exportName: unknown,
  args: unknown,
  options: unknown,
  sandboxTimeoutMs: number,
): { values: CoreValue[]; options: CheckedCallOptions; input: Uint8Array | undefined } {
  if (typeof exportName !== 'string') throw invalidArgument('exportName must be a string');
  const input = isDataInput(args) ? dataInputBytes(args) : undefined;
  const values = input === undefined ? callArgs(args) : [];
  const checked = callOptions(options, sandboxTimeoutMs);
  if (checked.signal?.aborted) {
    throw new SandboxError('CANCELLED', 'the signal was already aborted; the call did not start');
  }
  return { values, options: checked, input };
}

/** A finished call on this side: a data call also has its output and log messages. */
export type FinishedCall = CallResult & { output?: Uint8Array; logs?: CoreLogLine[] };

/** The result of a finished call: its values and exit code, the metrics with this side's denials. */
export function callResult(
  finished: {
    results: CoreValue[];
    metrics: CoreMetrics;
    exitCode?: number | undefined;
    output?: Uint8Array | undefined;
    logs?: CoreLogLine[] | undefined;
    trace?: CoreTrace | undefined;
  },
  denials: number,
): FinishedCall {
  const result: FinishedCall = {
    results: finished.results,
    metrics: withDenials({ ...finished.metrics }, denials),
  };
  if (finished.exitCode !== undefined) result.exitCode = finished.exitCode;
  if (finished.output !== undefined) result.output = finished.output;
  if (finished.logs !== undefined) result.logs = finished.logs;
  if (finished.trace !== undefined) result.trace = finished.trace;
  return result;
}

/**
 * The plan of a persistent WASI instance (`instantiateWasi`): as `runWasi`'s, but stdin is
 * bytes or a string (an async source belongs to one run).
 */
export function persistentWasiPlan(options: unknown, sandboxTimeoutMs: number): WasiPlan {
  const plan = wasiPlan(options, sandboxTimeoutMs);
  if (plan.stdin !== undefined) {
    throw invalidArgument('instantiateWasi takes stdin as bytes or a string; an async stdin only in runWasi');
  }
  if (plan.call.signal?.aborted) {
    throw new SandboxError('CANCELLED', 'the signal was already aborted; the instance was not created');
  }
  return plan;
}

/** This side of one call of a persistent WASI instance: its output streamed to the plan's callbacks. */
export function wasiCallOf(plan: WasiPlan | undefined): WasiCall | undefined {
  if (plan === undefined) return undefined;
  const wasi: WasiCall = {
    output: new OutputCollector(plan, (error) => wasi.end?.(error)),
    stdin: undefined,
    caps: wasiCaps(plan),
  };
  return wasi;
}

/** A call's output caps, as the core enforces them (per call, also on a persistent instance). */
function wasiCaps(plan: WasiPlan): WasiCall['caps'] {
  return {
    stdout: Number(plan.config.maxStdoutBytes ?? WASI_OUTPUT_CAPS.maxStdoutBytes),
    stderr: Number(plan.config.maxStderrBytes ?? WASI_OUTPUT_CAPS.maxStderrBytes),
  };
}

/** Whether a module is a WASI reactor: it exports `_initialize`, run once by `instantiateWasi`. */
export function isReactor(exports: readonly { name: string; kind: string }[]): boolean {
  return exports.some((e) => e.name === '_initialize' && e.kind === 'function');
}

/** A progress report of the core's metrics so far and the guest's memory now. */
export function progressSample(metrics: CoreMetrics, memoryBytes: number): ProgressSample {
  return {
    fuelConsumed: metrics.fuelConsumed,
    slices: metrics.slices,
    hostCalls: metrics.hostCalls,
    memoryBytes,
    peakMemoryBytes: metrics.peakMemoryBytes,
    elapsedMs: metrics.wallTimeUs / 1000,
  };
}

/** Calls a progress callback; one that throws is reported and ignored (the call goes on). */
export function reportProgress(onProgress: (sample: ProgressSample) => void, sample: ProgressSample): void {
  try {
    onProgress(sample);
  } catch (error) {
    report(error);
  }
}

/** This side of a WASI run: the output collected and streamed, the async stdin. */
export interface WasiCall {
  readonly output: OutputCollector;
  readonly stdin: StdinReader | undefined;
  /** The run's output caps (what the core enforces): more from a worker is a violation. */
  readonly caps: { readonly stdout: number; readonly stderr: number };
  /** Ends the run with `error` (an output callback threw); set once the call starts. */
  end?: (error: AnySandboxError) => void;
}

/** How the next chunk of an async stdin came: data, the call ended meanwhile, or a failure. */
export type StdinRead =
  | { readonly kind: 'data'; readonly bytes: Uint8Array; readonly eof: boolean }
  /** The call was cancelled, disposed or ended otherwise: nothing to answer. */
  | { readonly kind: 'aborted' }
  /**
   * End the run with `error`: the deadline passed (`TIMEOUT`), or the source threw
   * (`HOST_ERROR`, the thrown value as `cause`; `fatal`: that is the caller's verdict).
   */
  | { readonly kind: 'fail'; readonly error: AnySandboxError; readonly fatal: boolean };

/** Reads the next chunk of `reader`, racing the call's end (`signal`) and its deadline. */
export async function readStdin(
  reader: StdinReader,
  signal: AbortSignal,
  deadline: number,
  timeoutMs: number,
): Promise<StdinRead> {
  if (signal.aborted) return { kind: 'aborted' };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<'aborted' | 'deadline'>((resolve) => {
    onAbort = () => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => resolve('deadline'), Math.min(Math.max(0, deadline - performance.now()), MAX_TIMER_MS));
  });
  try {
    const outcome = await Promise.race([reader.read(), stopped]);
    if (outcome === 'aborted') return { kind: 'aborted' };
    if (outcome === 'deadline') {
      const error = new SandboxError('TIMEOUT', `call exceeded its ${timeoutMs} ms limit while waiting for stdin`, {
        limit: timeoutMs,
      });
      return { kind: 'fail', error, fatal: false };
    }
    return { kind: 'data', bytes: outcome.bytes, eof: outcome.eof };
  } catch (thrown) {
    const error = new SandboxError(
      'HOST_ERROR',
      `the stdin source failed: ${String(thrown)}`,
      { cause: String(thrown) },
      { cause: thrown },
    );
    return { kind: 'fail', error, fatal: true };
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

/** How a sandbox carries out the steps of {@link runWasiWith}. */
export interface WasiSteps<I> {
  /** Links `plan.imports` and makes the WASI instance (`instantiateWasi`). */
  instantiate(plan: WasiPlan): Promise<I>;
  /** Calls `_start` (with `plan.call`'s options), `wasi` being this side of the run. */
  start(instance: I, plan: WasiPlan, wasi: WasiCall): Promise<CallResult>;
  /** The fuel the instance's start function consumed while it was instantiated. */
  startFuel(instance: I): number;
  /** The preopens' trees after the run. */
  files(instance: I): Promise<CoreWasiFiles>;
  /** Drops the instance (the run is over, however it ended). */
  drop(instance: I): void;
}

/**
 * `runWasi`: checks the options, instantiates, runs `_start` with the output collected and
 * stdin read, and gives the result; an error of the run carries the output so far
 * (`details.stdout` / `details.stderr`, each at most its output cap: the core stops the run
 * at a cap, so no more ever reaches this side). The run's `metrics.fuelConsumed` (of the
 * result, or of an error that ended `_start`) includes what a start function consumed while
 * instantiating. The instance is dropped and the stdin source stopped whatever happens.
 */
export async function runWasiWith<I>(
  options: unknown,
  sandboxTimeoutMs: number,
  steps: WasiSteps<I>,
): Promise<WasiResult> {
  const plan = wasiPlan(options, sandboxTimeoutMs);
  if (plan.call.signal?.aborted) {
    throw new SandboxError('CANCELLED', 'the signal was already aborted; the run did not start');
  }
  const instance = await steps.instantiate(plan);
  const wasi: WasiCall = {
    output: new OutputCollector(plan, (error) => wasi.end?.(error)),
    stdin: plan.stdin === undefined ? undefined : new StdinReader(plan.stdin),
    caps: wasiCaps(plan),
  };
  try {
    const startFuel = steps.startFuel(instance);
    const withStart = (metrics: Metrics): Metrics =>
      startFuel === 0 ? metrics : { ...metrics, fuelConsumed: metrics.fuelConsumed + startFuel };
    let result: CallResult;
    try {
      result = await steps.start(instance, plan, wasi);
    } catch (error) {
      if (!(error instanceof SandboxError)) throw error;
      const failure = wasi.output.attach(error as AnySandboxError);
      const metrics = failure.details.metrics;
      if (metrics !== undefined) failure.details.metrics = withStart(metrics);
      throw failure;
    }
    const files = await steps.files(instance);
    return wasiResult(result.exitCode ?? 0, wasi.output, files, withStart(result.metrics), result.trace);
  } finally {
    wasi.stdin?.close();
    steps.drop(instance);
  }
}
