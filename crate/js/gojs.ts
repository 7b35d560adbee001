/**
 * Go `js/wasm` guests (`GOOS=js GOARCH=wasm`) in `nestbox/worker`: the core implements Go's
 * `gojs` imports over a membrane (crate/src/gojs), whose `js.Global()` holds only what is
 * granted here — JSON-like data (copied in) and {@link goCapability} tokens. This file is the
 * loop over the core's Go steps: sleeps for Go's timers, capability calls (checked against
 * revocation and quota here, then run), cancellation and output.
 *
 * @module
 */

import type { Core, CoreCallOptions, CoreStep } from './nestbox.js';
import { nextMacrotask, sleepFor } from './driver.js';
import { SandboxError, coreRecordOf, errorFromRecord, invalidArgument, type AnySandboxError } from './errors.js';

/** A value that crosses the membrane: JSON-like data and `Uint8Array`s. */
export type GoData = undefined | null | boolean | number | string | Uint8Array | GoData[] | { [key: string]: GoData };

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

/** Options of `LocalSandbox.instantiateGo`. */
export interface GoInstantiateOptions {
  /** What `js.Global()` holds besides the membrane's runtime shims. */
  globals?: Record<string, unknown>;
  /** `os.Args` (default `["js"]`). */
  argv?: string[];
  /** The environment. */
  env?: Record<string, string>;
  /** Per-call limits for `main` and every `callGo` (as `call`'s). */
  timeoutMs?: number;
  fuel?: number;
  /** Where the guest's stdout and stderr go as it writes (default: kept, see `output`). */
  onOutput?: (stdout: Uint8Array, stderr: Uint8Array) => void;
}

/** Per-call options of {@link GoInstance.callGoWith}. */
export interface GoCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  fuel?: number;
}

/** The core-side handle the instance uses (made by `LocalSandbox.instantiateGo`). */
export interface GoHost {
  readonly core: Core;
  readonly instanceId: number;
  /** After every operation (the sandbox's audit log). */
  readonly after: () => void;
  /** The sandbox is gone. */
  readonly disposed: () => boolean;
}

/** Turns `globals` into the core's form: tokens become `{ __nestboxCapability: id }`. */
export function goGlobals(globals: Record<string, unknown>, tokens: GoTokens): Record<string, unknown> {
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

type GoStep = CoreStep & { goArgs?: GoData[]; goResult?: GoData };

function coreFailure(thrown: unknown): AnySandboxError {
  const record = coreRecordOf(thrown);
  if (record !== undefined) return errorFromRecord(record);
  return new SandboxError('WORKER_CRASHED', `the nestbox core crashed: ${String(thrown)}`, {}, { cause: thrown });
}

/** A Go guest in this thread: its `main` ran; call the functions it registered. */
export class GoInstance {
  #busy = false;
  #stdout: Uint8Array[] = [];
  #stderr: Uint8Array[] = [];
  /** The status `main` (or a call) exited with, once the program exited. */
  exitCode: number | undefined;

  /** @internal Made by `LocalSandbox.instantiateGo`. */
  constructor(
    private readonly host: GoHost,
    private readonly tokens: GoTokens,
    private readonly defaults: GoCallOptions,
    private readonly onOutput?: (stdout: Uint8Array, stderr: Uint8Array) => void,
  ) {}

  /** The names the guest registered on `js.Global()` with `js.FuncOf`, sorted. */
  goExports(): string[] {
    return this.host.core.goExports(this.host.instanceId);
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

  /** {@link callGo} with a signal and limits; resolves with the result and the metrics. */
  async callGoWith(
    name: string,
    args: GoData[],
    options: GoCallOptions = {},
  ): Promise<{ result: GoData; exitCode?: number; metrics: unknown }> {
    if (typeof name !== 'string') throw invalidArgument('callGo needs a function name');
    const step = await this.run((core, id, opts) => core.startGoExport(id, name, args, opts) as GoStep, {
      ...this.defaults,
      ...options,
    });
    return {
      result: step.goResult,
      metrics: (step as { metrics?: unknown }).metrics,
      ...(this.exitCode === undefined ? {} : { exitCode: this.exitCode }),
    };
  }

  /** @internal Runs `main`. */
  async runMain(): Promise<void> {
    await this.run((core, id, opts) => core.startGoMain(id, opts) as GoStep, this.defaults);
  }

  private async run(
    start: (core: Core, id: number, options: CoreCallOptions) => GoStep,
    options: GoCallOptions,
  ): Promise<GoStep> {
    const { core, instanceId: id } = this.host;
    if (this.host.disposed()) throw new SandboxError('DISPOSED', 'the sandbox was disposed');
    if (this.#busy) throw new SandboxError('BUSY', 'a call is running on this Go instance');
    this.#busy = true;
    const signal = options.signal;
    const coreOptions: CoreCallOptions = {};
    if (options.timeoutMs !== undefined) coreOptions.timeoutMs = options.timeoutMs;
    if (options.fuel !== undefined) coreOptions.fuel = options.fuel;
    const drain = (): void => {
      const { stdout, stderr } = core.takeOutput(id);
      if (stdout.length === 0 && stderr.length === 0) return;
      if (this.onOutput !== undefined) this.onOutput(stdout, stderr);
      else {
        this.#stdout.push(stdout);
        this.#stderr.push(stderr);
      }
    };
    const advance = (next: () => GoStep): GoStep => {
      try {
        return next();
      } finally {
        drain();
      }
    };
    const cancelled = (): AnySandboxError =>
      coreFailure(core.cancel(id) ?? { code: 'CANCELLED', message: 'call cancelled by the caller', details: {} });
    try {
      let step = advance(() => start(core, id, coreOptions));
      for (;;) {
        if (step.status === 'finished') {
          if (step.exitCode !== undefined) this.exitCode = step.exitCode;
          return step;
        }
        if (step.status === 'yield') {
          if (step.wait?.kind === 'sleep') {
            const ms = step.wait.durationMs;
            await sleepFor(ms, (wake) => signal?.addEventListener('abort', wake, { once: true }));
          } else {
            await nextMacrotask();
          }
          if (signal?.aborted === true) throw cancelled();
          step = advance(() => core.resume(id) as GoStep);
          continue;
        }
        // A host step: only a Go capability call is possible here.
        const entry = step.goArgs === undefined ? undefined : this.tokens.get(step.capability);
        if (entry === undefined) {
          throw coreFailure(core.failHost(id, `forged capability call ${step.import}`, 'CAPABILITY_REVOKED'));
        }
        if (entry.revoked) {
          throw coreFailure(core.failHost(id, `${step.import} was revoked`, 'CAPABILITY_REVOKED'));
        }
        if (entry.calls >= entry.maxCalls) {
          throw coreFailure(
            core.failHost(id, `${step.import} is over its quota of ${entry.maxCalls} calls`, 'CAPABILITY_QUOTA'),
          );
        }
        entry.calls++;
        let result: GoData;
        try {
          result = await entry.fn(...(step.goArgs ?? []));
        } catch (thrown) {
          throw coreFailure(core.failHost(id, String(thrown), 'HOST_ERROR'));
        }
        if (signal?.aborted === true) throw cancelled();
        step = advance(() => core.resumeGo(id, result) as GoStep);
      }
    } catch (thrown) {
      if (thrown instanceof SandboxError || thrown instanceof TypeError) throw thrown;
      throw coreFailure(thrown);
    } finally {
      this.#busy = false;
      this.host.after();
    }
  }
}
