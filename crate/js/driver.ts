/**
 * The call loop over the core's resumable steps, shared by the worker and local sandboxes.
 *
 * After every fuel slice the loop yields to the event loop with a `MessageChannel`
 * macrotask (`setImmediate` in Node) — not `setTimeout`, which browsers clamp to ≥ 4 ms
 * after a few nested calls (HTML spec, "timer initialisation steps") — so a cancel message or an `AbortSignal` is
 * seen within about one slice, without SharedArrayBuffer and without killing the thread.
 * The core enforces the fuel budget and the wall-clock limit between slices.
 *
 * A WASI guest also yields when it waits: for a clock (`wait.kind === 'sleep'`: the loop
 * waits that long — never less, or the guest would see its sleep end early — then resumes)
 * or for its async stdin (`'stdin'`: the loop asks its owner for the next chunk, then
 * `resumeStdin`). After every step, the output the guest wrote is drained (`takeOutput`)
 * and handed to the owner, so stdout streams while the guest runs.
 *
 * @module
 */

import type {
  Core,
  CoreCallOptions,
  CoreHostFailureCode,
  CoreHttpResponse,
  CoreLogLine,
  CoreStep,
  CoreTrace,
  CoreValue,
} from './nestbox.js';
import { HOST_FAILURE_CODES } from './constants.js';
import type { GoData } from './types.js';
import { isErrorRecord, record, type ErrorRecord } from './errors.js';
import { MAX_TIMER_MS } from './host.js';

/**
 * The last step of a call that returned (a data call's with its log messages; a traced call's
 * with its trace).
 */
export type FinishedStep = Extract<CoreStep, { status: 'finished' }> & { logs?: CoreLogLine[]; trace?: CoreTrace };

/** A step that waits for a host function. */
export type HostStep = Extract<CoreStep, { status: 'host' }>;

/** How the host answered a `host` step. */
export type HostOutcome =
  | { kind: 'results'; results: CoreValue[] }
  /** The response to a data guest's HTTP request (`step.http`). */
  | { kind: 'http'; response: CoreHttpResponse }
  /** End the guest call with this error (its code is kept; the core adds the metrics). */
  | { kind: 'fail'; error: ErrorRecord }
  /** A Go guest's capability call answered (`step.goArgs`): its result, copied in. */
  | { kind: 'go'; value: GoData }
  /** The caller cancelled while the host function ran. */
  | { kind: 'cancel' };

/** A host step of a Go guest: a granted Go capability called with copies of its arguments. */
export type GoHostStep = HostStep & { goArgs?: GoData[] };

/** How the owner answered a WASI guest's wait for stdin. */
export type StdinOutcome =
  /** The next chunk (non-empty unless `eof`), and whether stdin ends after it. */
  | { kind: 'data'; bytes: Uint8Array; eof: boolean }
  /** End the guest call with this error (its code is kept; the core adds the metrics). */
  | { kind: 'fail'; error: ErrorRecord }
  /** The caller cancelled meanwhile. */
  | { kind: 'cancel' };

/** What the loop asks the owner of a WASI call. */
export interface WasiControl {
  /** Waits `ms` (never less); resolves `false` early when the call is cancelled meanwhile. */
  sleep(ms: number): Promise<boolean>;
  /** The next chunk of the guest's async stdin (the guest takes up to `maxBytes` now). */
  stdin(maxBytes: number): Promise<StdinOutcome>;
  /** What the guest wrote since the last step (at least one of them is non-empty). */
  output(stdout: Uint8Array, stderr: Uint8Array): void;
}

/** What the loop asks its owner. */
export interface DriveControl {
  /** Checked after every yield: true ends the call with `CANCELLED`. */
  cancelled(): boolean;
  /** Runs the host function of a `host` step. */
  host(step: HostStep): Promise<HostOutcome>;
  /** Set for an instance made with WASI: waits, stdin and output. */
  wasi?: WasiControl;
  /** Set when the caller asked for progress: called after every step that yields (a slice ran). */
  progress?: () => void;
}

const waiting: (() => void)[] = [];
/** Created on first use: a port with a listener would keep a Node process alive for ever. */
let channel: MessageChannel | undefined;

/** Node's `setImmediate` (a macrotask after I/O, so messages are handled first), if present. */
const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;

/**
 * Resolves in a fresh macrotask (after pending messages, such as a `cancel`, are handled).
 * In Node (which has `setImmediate`, unclamped, and pending only while it is) that; in
 * browsers a `MessageChannel` message.
 */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof immediate === 'function') {
      immediate(resolve);
      return;
    }
    if (channel === undefined) {
      channel = new MessageChannel();
      channel.port1.onmessage = () => waiting.shift()?.();
    }
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

/** `CANCELLED` from the core (with metrics), or a plain one when no call was running. */
function cancelRecord(core: Core, instanceId: number): ErrorRecord {
  return core.cancel(instanceId) ?? record('CANCELLED', 'call cancelled by the caller');
}

/**
 * The code the core is told: the error's own when it is one of {@link HOST_FAILURE_CODES}
 * (`TRAP` only as a memory view's `memory_out_of_bounds`), else `HOST_ERROR`.
 */
export function hostFailureCode(error: ErrorRecord): CoreHostFailureCode {
  const code = HOST_FAILURE_CODES.find((c) => c === error.code);
  if (code === undefined) return 'HOST_ERROR';
  if (code === 'TRAP' && error.details['trapCode'] !== 'memory_out_of_bounds') return 'HOST_ERROR';
  return code;
}

/**
 * Ends a call waiting at a host step with `error`: the core ends it with the error's code
 * (`failHost`, which poisons the instance, measures the call, and logs denials —
 * `CAPABILITY_REVOKED`, `CAPABILITY_QUOTA` — as `deny` audit entries) and the error keeps its
 * own code and message with the core's details (metrics, capability) underneath.
 */
function failHost(core: Core, instanceId: number, error: ErrorRecord): ErrorRecord {
  return mergeHostFailure(core.failHost(instanceId, error.message, hostFailureCode(error)), error);
}

/**
 * The error a host failure ends a call with: `error`'s own code and message (a `HOST_ERROR`
 * keeps the core's message) with the core's details (`ended`: metrics, capability) under
 * `error`'s. Shared by both tiers (the native one ends the call with `nativeFailHost`).
 */
export function mergeHostFailure(ended: ErrorRecord, error: ErrorRecord): ErrorRecord {
  if (error.code === 'HOST_ERROR')
    return { ...ended, details: { ...ended.details, ...error.details, metrics: ended.details.metrics } };
  return {
    code: error.code,
    message: error.message,
    details: { ...ended.details, ...error.details, metrics: ended.details.metrics },
  };
}

/**
 * Ends a call suspended at a WASI wait with `error`: cancelled in the core (which poisons
 * the instance and measures the call), with the error's own code, message and details.
 */
function endWith(core: Core, instanceId: number, error: ErrorRecord): ErrorRecord {
  const ended = cancelRecord(core, instanceId);
  return {
    code: error.code,
    message: error.message,
    details: { ...ended.details, ...error.details, metrics: ended.details['metrics'] },
  };
}

/**
 * Waits `ms` milliseconds, never less (in pieces when it is over what `setTimeout` takes).
 * `onWake` is handed a function that ends the wait early. Resolves true when the time
 * passed, false when woken.
 */
export function sleepFor(ms: number, onWake: (wake: () => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = performance.now() + ms;
    const arm = (): void => {
      const left = end - performance.now();
      if (left <= 0) {
        resolve(true);
        return;
      }
      // Whole milliseconds, rounded up: a timer never fires before the wait is over.
      timer = setTimeout(arm, Math.min(Math.ceil(left), MAX_TIMER_MS));
    };
    onWake(() => {
      clearTimeout(timer);
      resolve(false);
    });
    arm();
  });
}

/**
 * Runs `exportName` to its end — a data call (`startData`) when `input` is given. Resolves
 * with the finished step; rejects with the core's error record, or with whatever the core
 * threw if it is not a record (the core crashed). With `options.trace`, the call's trace is
 * the finished step's `trace`, or the error record's `details.trace`.
 */
export async function drive(
  core: Core,
  instanceId: number,
  exportName: string,
  args: CoreValue[],
  options: CoreCallOptions,
  control: DriveControl,
  input?: Uint8Array,
): Promise<FinishedStep> {
  if (options.trace === undefined) return driveData(core, instanceId, exportName, args, options, control, input);
  let finished: FinishedStep;
  try {
    finished = await driveData(core, instanceId, exportName, args, options, control, input);
  } catch (thrown) {
    // The core keeps the trace of a call that failed (a call that never started has none).
    const trace = core.takeTrace(instanceId);
    if (trace !== undefined && isErrorRecord(thrown)) thrown.details = { ...thrown.details, trace };
    throw thrown;
  }
  const trace = core.takeTrace(instanceId);
  if (trace !== undefined) finished.trace = trace;
  return finished;
}

async function driveData(
  core: Core,
  instanceId: number,
  exportName: string,
  args: CoreValue[],
  options: CoreCallOptions,
  control: DriveControl,
  input: Uint8Array | undefined,
): Promise<FinishedStep> {
  if (input === undefined) {
    return driveSteps(core, instanceId, control, () => core.start(instanceId, exportName, args, options));
  }
  try {
    const finished: FinishedStep = await driveSteps(core, instanceId, control, () =>
      core.startData(instanceId, exportName, input, options),
    );
    finished.logs = core.takeLogs(instanceId);
    return finished;
  } catch (thrown) {
    // The logs of a failed call are dropped with it (the next data call starts afresh).
    core.takeLogs(instanceId);
    throw thrown;
  }
}

/**
 * A Go `js/wasm` guest's call (`main`, an exported function, or its due timers): `start` is
 * the core's `startGoMain` / `startGoExport` / `startGoTimers`. Its timers are sleeps
 * (`control.wasi.sleep`), its output is drained after every step (`control.wasi.output`), its
 * capability calls are `host` steps with `goArgs`, answered with a `go` outcome.
 */
export function driveGo(
  core: Core,
  instanceId: number,
  control: DriveControl,
  start: () => CoreStep,
): Promise<FinishedStep> {
  return driveSteps(core, instanceId, control, start);
}

async function driveSteps(
  core: Core,
  instanceId: number,
  control: DriveControl,
  start: () => CoreStep,
): Promise<FinishedStep> {
  const wasi = control.wasi;
  // Every step, successful or not, is followed by draining what the guest wrote.
  const advance = (next: () => CoreStep): CoreStep => {
    try {
      return next();
    } finally {
      if (wasi !== undefined) {
        const { stdout, stderr } = core.takeOutput(instanceId);
        if (stdout.length > 0 || stderr.length > 0) wasi.output(stdout, stderr);
      }
    }
  };
  let step: CoreStep = advance(start);
  for (;;) {
    switch (step.status) {
      case 'finished':
        return step;
      case 'yield': {
        const wait = step.wait;
        control.progress?.();
        if (wait === undefined) {
          await nextMacrotask();
          if (control.cancelled()) throw cancelRecord(core, instanceId);
          step = advance(() => core.resume(instanceId));
        } else if (wait.kind === 'sleep') {
          const slept = await (wasi?.sleep(wait.durationMs) ?? sleepFor(wait.durationMs, () => undefined));
          if (!slept || control.cancelled()) throw cancelRecord(core, instanceId);
          step = advance(() => core.resume(instanceId));
        } else {
          // Without an owner for stdin (cannot happen: only WASI instances wait), it ends.
          const outcome: StdinOutcome = (await wasi?.stdin(wait.maxBytes)) ?? {
            kind: 'data',
            bytes: new Uint8Array(0),
            eof: true,
          };
          if (outcome.kind === 'fail') throw endWith(core, instanceId, outcome.error);
          if (outcome.kind === 'cancel' || control.cancelled()) throw cancelRecord(core, instanceId);
          const { bytes, eof } = outcome;
          step = advance(() => core.resumeStdin(instanceId, bytes, eof));
        }
        break;
      }
      case 'host': {
        const outcome = await control.host(step);
        if (outcome.kind === 'fail') throw failHost(core, instanceId, outcome.error);
        if (outcome.kind === 'cancel' || control.cancelled()) throw cancelRecord(core, instanceId);
        const go = (step as GoHostStep).goArgs !== undefined;
        if (go !== (outcome.kind === 'go')) {
          // Fail closed: a Go capability call is answered only with a Go value, and only it.
          throw failHost(core, instanceId, record('HOST_ERROR', 'internal: a host call answered with the wrong kind'));
        }
        if (outcome.kind === 'go') {
          const { value } = outcome;
          step = advance(() => core.resumeGo(instanceId, value));
        } else if (outcome.kind === 'http') {
          if (step.http === undefined) {
            throw failHost(core, instanceId, record('HOST_ERROR', 'internal: an HTTP answer to a host call'));
          }
          const { response } = outcome;
          step = advance(() => core.resumeHttp(instanceId, response));
        } else {
          if (step.http !== undefined) {
            // Fail closed: an HTTP request is only ever answered with a response.
            throw failHost(core, instanceId, record('HOST_ERROR', 'an HTTP request was answered with results'));
          }
          const { results } = outcome;
          step = advance(() => core.resumeHost(instanceId, results));
        }
        break;
      }
      default: {
        // A step this package does not know (a newer core): fail closed.
        const unknown: never = step;
        core.cancel(instanceId);
        throw record(
          'INVALID_ARGUMENT',
          `internal: unknown step status ${String((unknown as { status?: unknown }).status)}`,
        );
      }
    }
  }
}
