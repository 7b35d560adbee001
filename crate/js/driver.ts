/**
 * The call loop over the core's resumable steps, shared by the worker and local sandboxes.
 *
 * After every fuel slice the loop yields to the event loop with a `MessageChannel`
 * macrotask — not `setTimeout`, which browsers clamp to ≥ 4 ms after a few nested calls
 * (HTML spec, "timer initialisation steps") — so a cancel message or an `AbortSignal` is
 * seen within about one slice, without SharedArrayBuffer and without killing the thread.
 * The core enforces the fuel budget and the wall-clock limit between slices.
 *
 * @module
 */

import type { Core, CoreCallOptions, CoreStep, CoreValue } from './nestbox.js';
import { record, type ErrorRecord } from './errors.js';

/** The last step of a call that returned. */
export type FinishedStep = Extract<CoreStep, { status: 'finished' }>;

/** A step that waits for a host function. */
export type HostStep = Extract<CoreStep, { status: 'host' }>;

/** How the host answered a `host` step. */
export type HostOutcome =
  | { kind: 'results'; results: CoreValue[] }
  /** End the guest call with this error (its code is kept; the core adds the metrics). */
  | { kind: 'fail'; error: ErrorRecord }
  /** The caller cancelled while the host function ran. */
  | { kind: 'cancel' };

/** What the loop asks its owner. */
export interface DriveControl {
  /** Checked after every yield: true ends the call with `CANCELLED`. */
  cancelled(): boolean;
  /** Runs the host function of a `host` step. */
  host(step: HostStep): Promise<HostOutcome>;
}

const channel = new MessageChannel();
const waiting: (() => void)[] = [];
channel.port1.onmessage = () => waiting.shift()?.();

/** Resolves in a fresh macrotask (after pending messages, such as a `cancel`, are handled). */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

/** `CANCELLED` from the core (with metrics), or a plain one when no call was running. */
function cancelRecord(core: Core, instanceId: number): ErrorRecord {
  return core.cancel(instanceId) ?? record('CANCELLED', 'call cancelled by the caller');
}

/**
 * Ends a call waiting at a host step with `error`: the core ends it (`failHost`, which
 * poisons the instance and measures the call) and the error keeps its own code and message
 * with the core's details (metrics, capability) underneath. `failHost` only knows
 * `HOST_ERROR`; see the package README for why the code is set here.
 */
function failHost(core: Core, instanceId: number, error: ErrorRecord): ErrorRecord {
  const ended = core.failHost(instanceId, error.message);
  if (error.code === 'HOST_ERROR')
    return { ...ended, details: { ...ended.details, ...error.details, metrics: ended.details.metrics } };
  return {
    code: error.code,
    message: error.message,
    details: { ...ended.details, ...error.details, metrics: ended.details.metrics },
  };
}

/**
 * Runs `exportName` to its end. Resolves with the finished step; rejects with the core's
 * error record, or with whatever the core threw if it is not a record (the core crashed).
 */
export async function drive(
  core: Core,
  instanceId: number,
  exportName: string,
  args: CoreValue[],
  options: CoreCallOptions,
  control: DriveControl,
): Promise<FinishedStep> {
  let step: CoreStep = core.start(instanceId, exportName, args, options);
  for (;;) {
    switch (step.status) {
      case 'finished':
        return step;
      case 'yield':
        await nextMacrotask();
        if (control.cancelled()) throw cancelRecord(core, instanceId);
        step = core.resume(instanceId);
        break;
      case 'host': {
        const outcome = await control.host(step);
        if (outcome.kind === 'fail') throw failHost(core, instanceId, outcome.error);
        if (outcome.kind === 'cancel' || control.cancelled()) throw cancelRecord(core, instanceId);
        step = core.resumeHost(instanceId, outcome.results);
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
