/**
 * Go `js/wasm` guests (`GOOS=js GOARCH=wasm`), in a page sandbox (`Sandbox.instantiateGo`)
 * and in `nestbox/worker` (`LocalSandbox.instantiateGo`): the core implements Go's `gojs`
 * imports over a membrane (crate/src/gojs), whose `js.Global()` holds only what is granted
 * here — JSON-like data (copied in) and {@link goCapability} tokens.
 *
 * This file holds what both kinds of sandbox share: the tokens (a `WeakMap`, as capabilities:
 * only ids reach the core), the translation of `globals`, the check of a Go capability call
 * (granted to this instance, not revoked, within its quota), the check of what a worker sends
 * for Go (a value that is not {@link GoData} is a lie), and {@link GoInstance}: calls, output,
 * and the program's **idle timers** — after every run the core says when Go's next timer fires
 * (`time.Sleep`, tickers, `time.AfterFunc`), and the instance runs the due timers then, as one
 * more metered call, so goroutines keep running between calls as they do under
 * `wasm_exec.js`. Where a run happens (this thread or the sandbox's worker) is the
 * {@link GoBackend}'s business.
 *
 * @module
 */

import { SandboxError, invalidArgument, type AnySandboxError, type ErrorCode } from './errors.js';
import { MAX_TIMER_MS } from './host.js';
import { callOptions, onlyFields } from './options.js';
import { report } from './platform.js';
import type { GoCallOptions, GoCallResult, GoData, GoInstantiateOptions, Metrics } from './types.js';

export type { GoCallOptions, GoCallResult, GoData, GoInstantiateOptions } from './types.js';

/** A function granted to a Go guest: called with copies of the guest's arguments. */
export type GoHostFunction = (...args: GoData[]) => GoData | Promise<GoData>;

/** A capability token for a Go guest's `js.Global()` ({@link goCapability}). */
export interface GoCapability {
  readonly kind: 'go-capability';
}

interface GoCapabilityEntry {
  readonly fn: GoHostFunction;
  readonly maxCalls: number;
  calls: number;
  revoked: boolean;
}

const goCapabilities = new WeakMap<GoCapability, GoCapabilityEntry>();

/** The tokens one instance was granted, by the id the core knows them by. */
export type GoTokens = Map<number, GoCapabilityEntry>;

/**
 * A capability for a Go guest: place it anywhere in `globals` (`{ host: { double } }` makes
 * `js.Global().Get("host").Call("double", x)` call it). `quota.maxCalls` bounds its calls (per
 * token, across instances); {@link revokeGoCapability} ends every later call with
 * `CAPABILITY_REVOKED`.
 */
export function goCapability(fn: GoHostFunction, options: { quota?: { maxCalls?: number } } = {}): GoCapability {
  if (typeof fn !== 'function') throw invalidArgument('goCapability needs a function');
  const maxCalls = options.quota?.maxCalls ?? Number.POSITIVE_INFINITY;
  if (!(maxCalls >= 0)) throw invalidArgument('quota.maxCalls must be >= 0');
  const token: GoCapability = Object.freeze({ kind: 'go-capability' as const });
  goCapabilities.set(token, { fn, maxCalls, calls: 0, revoked: false });
  return token;
}

/** Revokes a Go capability: its next call (from any instance) is `CAPABILITY_REVOKED`. */
export function revokeGoCapability(token: GoCapability): void {
  const entry = goCapabilities.get(token);
  if (entry === undefined) throw invalidArgument('not a Go capability token');
  entry.revoked = true;
}

/** Turns `globals` into the core's form: tokens become `{ __nestboxCapability: id }`. */
export function goGlobals(globals: Record<string, unknown>, tokens: GoTokens): Record<string, unknown> {
  if (typeof globals !== 'object' || globals === null || Array.isArray(globals)) {
    throw invalidArgument('globals must be an object');
  }
  const seen = new Map<GoCapabilityEntry, number>();
  const walk = (value: unknown, depth: number): unknown => {
    if (depth > 64) throw invalidArgument('globals are nested deeper than 64 levels');
    if (typeof value === 'object' && value !== null) {
      const entry = goCapabilities.get(value as GoCapability);
      if (entry !== undefined) {
        if (entry.revoked) throw new SandboxError('CAPABILITY_REVOKED', 'a revoked Go capability cannot be granted');
        let id = seen.get(entry);
        if (id === undefined) {
          id = tokens.size + 1;
          seen.set(entry, id);
          tokens.set(id, entry);
        }
        return { __nestboxCapability: id };
      }
      if (value instanceof Uint8Array) return value;
      if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1));
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, depth + 1)]));
    }
    if (typeof value === 'function') throw invalidArgument('grant functions to a Go guest with goCapability()');
    return value;
  };
  return walk(globals, 0) as Record<string, unknown>;
}

/** What `instantiateGo`'s options become: the core's config, the calls' limits, the instance's callbacks. */
export interface GoPlan {
  readonly tokens: GoTokens;
  readonly config: { globals: Record<string, unknown>; argv?: string[]; env?: Record<string, string> };
  readonly defaults: GoCallOptions;
  readonly hooks: Pick<GoInstantiateOptions, 'onOutput' | 'onIdleError'>;
}

/**
 * `instantiateGo`'s options checked (an unknown field, a function among `globals` or limits
 * of the wrong type are TypeErrors now, not at the first call) and split.
 */
export function goPlan(options: unknown, sandboxTimeoutMs: number): GoPlan {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  onlyFields(
    options as Record<string, unknown>,
    ['globals', 'argv', 'env', 'timeoutMs', 'fuel', 'onOutput', 'onIdleError'],
    'instantiateGo options',
  );
  const o = options as GoInstantiateOptions;
  const tokens: GoTokens = new Map();
  const config = {
    globals: goGlobals(o.globals ?? {}, tokens),
    ...(o.argv === undefined ? {} : { argv: o.argv }),
    ...(o.env === undefined ? {} : { env: o.env }),
  };
  const defaults: GoCallOptions = {};
  if (o.timeoutMs !== undefined) defaults.timeoutMs = o.timeoutMs;
  if (o.fuel !== undefined) defaults.fuel = o.fuel;
  callOptions(defaults, sandboxTimeoutMs);
  for (const name of ['onOutput', 'onIdleError'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'function') throw invalidArgument(`${name} must be a function`);
  }
  const hooks = {
    ...(o.onOutput === undefined ? {} : { onOutput: o.onOutput }),
    ...(o.onIdleError === undefined ? {} : { onIdleError: o.onIdleError }),
  };
  return { tokens, config, defaults, hooks };
}

/** How a Go capability call was answered: a value for the guest, or the error that ends its call. */
export type GoHostVerdict = { ok: true; value: GoData } | { ok: false; error: AnySandboxError };

/**
 * Runs the Go capability `capability` of an instance granted `tokens`: refused with
 * `CAPABILITY_REVOKED` when it is not one of them (`forged`) or was revoked, with
 * `CAPABILITY_QUOTA` past its quota (each refusal also counted by `deny`); a function that
 * throws is `HOST_ERROR` with what it threw as the cause.
 */
export async function runGoCapability(
  tokens: GoTokens,
  capability: number,
  importName: string,
  args: GoData[],
  deny: () => void,
): Promise<GoHostVerdict & { forged?: true }> {
  const entry = tokens.get(capability);
  const refuse = (code: ErrorCode, message: string): GoHostVerdict => {
    deny();
    return { ok: false, error: new SandboxError(code, message, { capability, import: importName }) };
  };
  if (entry === undefined) {
    return {
      ...refuse('CAPABILITY_REVOKED', `Go capability ${capability} (${importName}) was never granted: refused`),
      forged: true,
    };
  }
  if (entry.revoked) return refuse('CAPABILITY_REVOKED', `${importName} was revoked`);
  if (entry.calls >= entry.maxCalls) {
    return refuse('CAPABILITY_QUOTA', `${importName} is over its quota of ${entry.maxCalls} calls`);
  }
  entry.calls++;
  try {
    return { ok: true, value: await entry.fn(...args) };
  } catch (thrown) {
    return {
      ok: false,
      error: new SandboxError('HOST_ERROR', String(thrown), { capability, import: importName }, { cause: thrown }),
    };
  }
}

/** The deepest a {@link GoData} value may nest (the core's own bound for the membrane). */
const MAX_GO_DEPTH = 64;

/** `undefined` when `value` is {@link GoData} (at most 64 levels deep), else what is wrong. */
export function goDataProblem(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_GO_DEPTH) return `nested deeper than ${MAX_GO_DEPTH} levels`;
  if (value === undefined || value === null) return undefined;
  switch (typeof value) {
    case 'boolean':
    case 'number':
    case 'string':
      return undefined;
    case 'object':
      if (value instanceof Uint8Array) return undefined;
      if (Array.isArray(value)) {
        for (const item of value) {
          const problem = goDataProblem(item, depth + 1);
          if (problem !== undefined) return problem;
        }
        return undefined;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return 'an object that is not plain data';
      for (const item of Object.values(value)) {
        const problem = goDataProblem(item, depth + 1);
        if (problem !== undefined) return problem;
      }
      return undefined;
    default:
      return `a ${typeof value}`;
  }
}

/** What a Go guest's call is for. */
export type GoPhase = 'main' | 'export' | 'timers';

/** What one run of a Go guest (`main`, an export, or its due timers) ended with. */
export interface GoRun {
  /** An export's result (`undefined` for `main` and timers). */
  result: GoData;
  /** Set when the program exited during the run (`os.Exit`, or `main` returned). */
  exitCode?: number;
  metrics: Metrics;
  /** The functions the program has registered on `js.Global()` now, sorted. */
  exports: string[];
  /** Milliseconds until the program's next timer fires (none: `undefined`). */
  nextTimerMs?: number;
}

/** Where a Go instance's runs happen: this thread (`nestbox/worker`) or the sandbox's worker. */
export interface GoBackend {
  /** Runs one phase; `output` is handed what the guest writes (as it writes, or at the end). */
  run(
    phase: GoPhase,
    name: string,
    args: GoData[],
    options: GoCallOptions,
    output: (stdout: Uint8Array, stderr: Uint8Array) => void,
  ): Promise<GoRun>;
  /** The instance cannot be used any more (sandbox disposed, worker replaced). */
  gone(): AnySandboxError | undefined;
  /** Frees the instance where it lives. */
  release(): void;
}

/** A Go guest: its `main` ran; call the functions it registered. */
export class GoInstance {
  #busy = false;
  #released = false;
  #exports: string[] = [];
  #stdout: Uint8Array[] = [];
  #stderr: Uint8Array[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the program's next timer fires (`performance.now()` time), if it has one. */
  #nextAt: number | undefined;
  /** The idle timers' run in progress (a call waits for it). */
  #idle: Promise<void> | undefined;
  /** The status the program exited with, once it has. */
  exitCode: number | undefined;
  /** The error that ended the last run of idle timers, if one did (also given to `onIdleError`). */
  idleError: Error | undefined;
  /** How many runs of idle timers there were. */
  idleRuns = 0;

  /** @internal Made by `instantiateGo`. */
  constructor(
    private readonly backend: GoBackend,
    private readonly defaults: GoCallOptions,
    private readonly options: Pick<GoInstantiateOptions, 'onOutput' | 'onIdleError'> = {},
  ) {}

  /** The names the guest registered on `js.Global()` with `js.FuncOf`, sorted. */
  goExports(): string[] {
    return [...this.#exports];
  }

  /** What the guest wrote so far (when no `onOutput` was given), taken. */
  output(): { stdout: string; stderr: string } {
    const text = (chunks: Uint8Array[]): string => chunks.map((c) => new TextDecoder().decode(c)).join('');
    const out = { stdout: text(this.#stdout), stderr: text(this.#stderr) };
    this.#stdout = [];
    this.#stderr = [];
    return out;
  }

  /** Calls the Go function `name` with JSON-like arguments; resolves with its result. */
  async callGo(name: string, ...args: GoData[]): Promise<GoData> {
    return (await this.callGoWith(name, args)).result;
  }

  /**
   * {@link callGo} with a signal and limits; resolves with the result and the metrics.
   *
   * @throws `BUSY` during another call; `TRAP` for a Go panic (Go's message, the runtime's
   *   output in `details.cause`) and `POISONED` after it; `CANCELLED`, `TIMEOUT`,
   *   `FUEL_EXHAUSTED`, `CAPABILITY_REVOKED`, `CAPABILITY_QUOTA`, `HOST_ERROR`, `OUTPUT_LIMIT`,
   *   `DISPOSED`; TypeError (`INVALID_ARGUMENT`) for a name it did not register.
   */
  async callGoWith(name: string, args: GoData[], options: GoCallOptions = {}): Promise<GoCallResult> {
    if (typeof name !== 'string') throw invalidArgument('callGo needs a function name');
    if (!Array.isArray(args)) throw invalidArgument('callGoWith needs an array of arguments');
    const problem = goDataProblem(args);
    if (problem !== undefined) throw invalidArgument(`callGo arguments: ${problem}`);
    const run = await this.#run('export', name, args, { ...this.defaults, ...options });
    return {
      result: run.result,
      metrics: run.metrics,
      ...(run.exitCode === undefined ? {} : { exitCode: run.exitCode }),
    };
  }

  /** Ends the instance: its timers stop; later calls are `DISPOSED`. */
  dispose(): void {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#timer);
    this.backend.release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal Runs `main`. */
  async runMain(): Promise<void> {
    await this.#run('main', '', [], this.defaults);
  }

  async #run(phase: GoPhase, name: string, args: GoData[], options: GoCallOptions): Promise<GoRun> {
    if (this.#released) throw new SandboxError('DISPOSED', 'the Go instance was disposed');
    const gone = this.backend.gone();
    if (gone !== undefined) throw gone;
    if (phase !== 'timers') {
      // The idle timers' run in progress ends first (it is bounded by the instance's limits).
      while (this.#idle !== undefined) await this.#idle;
    }
    if (this.#busy) throw new SandboxError('BUSY', 'a call is running on this Go instance');
    this.#busy = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      const run = await this.backend.run(phase, name, args, options, (stdout, stderr) => this.#output(stdout, stderr));
      this.#exports = run.exports;
      if (run.exitCode !== undefined) this.exitCode = run.exitCode;
      this.#schedule(run.nextTimerMs);
      return run;
    } catch (error) {
      // A call that never started (an unknown name, bad arguments) leaves the program as it
      // was: its timers stay armed. Any other failure ended the program (POISONED from now on).
      const code = (error as { code?: unknown }).code;
      if ((code === 'INVALID_ARGUMENT' || code === 'BUSY') && this.#nextAt !== undefined) {
        this.#schedule(this.#nextAt - performance.now());
      } else this.#nextAt = undefined;
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  #output(stdout: Uint8Array, stderr: Uint8Array): void {
    if (stdout.length === 0 && stderr.length === 0) return;
    if (this.options.onOutput !== undefined) this.options.onOutput(stdout, stderr);
    else {
      this.#stdout.push(stdout);
      this.#stderr.push(stderr);
    }
  }

  /** Arms the idle timer for the program's next Go timer (none once it exited or failed). */
  #schedule(ms: number | undefined): void {
    this.#nextAt = ms === undefined ? undefined : performance.now() + ms;
    if (ms === undefined || this.exitCode !== undefined || this.#released) return;
    const timer = setTimeout(() => this.#fire(), Math.min(Math.max(0, Math.ceil(ms)), MAX_TIMER_MS));
    // In Node a program's timers do not keep the process alive; its sandbox does.
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#released || this.#busy || this.backend.gone() !== undefined) return;
    this.idleRuns++;
    const idle: Promise<void> = this.#run('timers', '', [], this.defaults)
      .then(
        () => undefined,
        (error: unknown) => {
          const e = error instanceof Error ? error : new Error(String(error));
          this.idleError = e;
          if (this.options.onIdleError !== undefined) this.options.onIdleError(e);
          else report(e);
        },
      )
      .finally(() => {
        if (this.#idle === idle) this.#idle = undefined;
      });
    this.#idle = idle;
  }
}
