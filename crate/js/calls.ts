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

import type { CoreGrant, CoreMetrics, CoreValue, CoreWasiFiles } from './nestbox.js';
import type { CapabilityTable, Link } from './capability.js';
import { invalidArgument, SandboxError, withDenials, type AnySandboxError } from './errors.js';
import { WASI_OUTPUT_CAPS } from './constants.js';
import { MAX_TIMER_MS } from './host.js';
import { callArgs, callOptions, onlyFields, type CheckedCallOptions } from './options.js';
import { disposedError } from './resource.js';
import type { CallResult, ImportsObject, ProgressSample, WasiResult } from './types.js';
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
  onlyFields(options as Record<string, unknown>, ['imports'], 'instantiate options');
  return (options as { imports?: ImportsObject }).imports;
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

/** A call's arguments and options, checked; `CANCELLED` when its signal is already aborted. */
export function checkedCall(
  exportName: unknown,
  args: unknown,
  options: unknown,
  sandboxTimeoutMs: number,
): { values: CoreValue[]; options: CheckedCallOptions } {
  if (typeof exportName !== 'string') throw invalidArgument('exportName must be a string');
  const values = callArgs(args);
  const checked = callOptions(options, sandboxTimeoutMs);
  if (checked.signal?.aborted) {
    throw new SandboxError('CANCELLED', 'the signal was already aborted; the call did not start');
  }
  return { values, options: checked };
}

/** The result of a finished call: its values and exit code, the metrics with this side's denials. */
export function callResult(
  finished: { results: CoreValue[]; metrics: CoreMetrics; exitCode?: number | undefined },
  denials: number,
): CallResult {
  const result: CallResult = {
    results: finished.results,
    metrics: withDenials({ ...finished.metrics }, denials),
  };
  if (finished.exitCode !== undefined) result.exitCode = finished.exitCode;
  return result;
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
    reportError(error);
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
  /** The preopens' trees after the run. */
  files(instance: I): Promise<CoreWasiFiles>;
  /** Drops the instance (the run is over, however it ended). */
  drop(instance: I): void;
}

/**
 * `runWasi`: checks the options, instantiates, runs `_start` with the output collected and
 * stdin read, and gives the result; an error of the run carries the output so far
 * (`details.stdout` / `details.stderr`). The instance is dropped and the stdin source
 * stopped whatever happens.
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
    caps: {
      stdout: Number(plan.config.maxStdoutBytes ?? WASI_OUTPUT_CAPS.maxStdoutBytes),
      stderr: Number(plan.config.maxStderrBytes ?? WASI_OUTPUT_CAPS.maxStderrBytes),
    },
  };
  try {
    let result: CallResult;
    try {
      result = await steps.start(instance, plan, wasi);
    } catch (error) {
      throw error instanceof SandboxError ? wasi.output.attach(error as AnySandboxError) : error;
    }
    const files = await steps.files(instance);
    return wasiResult(result.exitCode ?? 0, wasi.output, files, result.metrics);
  } finally {
    wasi.stdin?.close();
    steps.drop(instance);
  }
}
