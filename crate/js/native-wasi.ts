/**
 * WASI preview1 (`wasi_snapshot_preview1`) for the native tier: the import object of a native
 * WASI instance. Every function calls the core's `nativeWasi`, which runs the interpreter's
 * own syscall code (the same in-memory filesystem, output caps, quotas, rights, clocks and
 * fuel charges) against the guest's `WebAssembly.Memory`, reading and setting its
 * `nestbox_fuel` global; there is no second WASI implementation here.
 *
 * - An errno comes back as a number, returned to the guest as it is.
 * - A wait (a `poll_oneoff` sleep, a read of an empty async stdin) comes back as `{wait}`:
 *   the guest stays suspended (JSPI) while the worker sleeps or asks the page for stdin, as
 *   the interpreter's loop does (`driver.ts`), then `nativeWasiResume` completes the call.
 *   Only `fd_read` and `poll_oneoff` can wait, so only they are `WebAssembly.Suspending`;
 *   the others are plain functions, called without a suspension's cost.
 * - `proc_exit` comes back as `{step}`: the call is over (a result: `exitCode`), and a
 *   {@link WasiExit} unwinds the guest to the engine, which resolves the call with the step.
 * - What ends the call (`OUTPUT_LIMIT`, `FUEL_EXHAUSTED`, `TIMEOUT`, …) is thrown by the core
 *   with its metrics, and unwinds the guest as the engine's other stops do.
 *
 * @module
 */

import type { Core, CoreWasiWait } from './nestbox.js';
import { record, type ErrorRecord } from './errors.js';
import { sleepFor, type DriveControl, type FinishedStep, type StdinOutcome, type WasiControl } from './driver.js';

/** The import namespace of WASI preview1. */
export const WASI_MODULE = 'wasi_snapshot_preview1';

/** The preview1 functions that can wait (and so must suspend the guest). */
const WAITING = new Set(['fd_read', 'poll_oneoff']);

/** `proc_exit` ended the call: the engine resolves the call with `step`. */
export class WasiExit {
  constructor(readonly step: FinishedStep) {}
}

/** What the WASI imports need from the native engine's instance. */
export interface NativeWasiHost {
  readonly core: Core;
  readonly instanceId: number;
  /** The guest's exported memory (`undefined`: it has none, every pointer is `EFAULT`). */
  memory(): WebAssembly.Memory | undefined;
  /** The guest's `nestbox_fuel` global (`undefined` before the instance exists). */
  fuel(): WebAssembly.Global | undefined;
  /** The running call's control, or `undefined` outside a call. */
  control(): DriveControl | undefined;
  /** Whether the instance was dropped (a waiting call then ends as cancelled). */
  dropped(): boolean;
  /** What to throw to end the call with what the core threw (a record, or a crash). */
  stop(thrown: unknown): unknown;
  /** Ends the running call in the core as `CANCELLED` with `error`'s code, message and details (`undefined`: cancelled); what to throw. */
  end(error?: ErrorRecord): unknown;
  /** The guest runs again after a wait (the engine's yield bookkeeping). */
  resumed(): void;
}

type WasiAnswer = number | { wait: CoreWasiWait } | { step: unknown };

/** Sends what the guest wrote since the last drain to its owner (a WASI instance's `output`). */
export function drainOutput(core: Core, instanceId: number, wasi: WasiControl | undefined): void {
  if (wasi === undefined) return;
  const { stdout, stderr } = core.takeOutput(instanceId);
  if (stdout.length > 0 || stderr.length > 0) wasi.output(stdout, stderr);
}

/**
 * The `wasi_snapshot_preview1` namespace for `names` (the preview1 functions the module
 * imports, numbered as the core's `instantiateNativeWasi` returned them). `Suspending` is
 * the JSPI constructor.
 */
export function wasiImports(
  host: NativeWasiHost,
  names: readonly string[],
  Suspending: new (fn: (...args: never[]) => unknown) => object,
): Record<string, unknown> {
  const { core, instanceId } = host;
  const namespace = Object.create(null) as Record<string, unknown>;

  // A start function runs before the instance (and its fuel global) exists, outside any call.
  const fuel = (): WebAssembly.Global => {
    const global = host.fuel();
    if (global === undefined || host.control() === undefined) {
      throw host.stop(record('HOST_ERROR', 'a WASI function was called outside a call (while instantiating)'));
    }
    return global;
  };

  const answer = (result: WasiAnswer): number | Promise<number> => {
    if (typeof result === 'number') return result;
    if ('step' in result) throw new WasiExit(result.step as FinishedStep);
    return waitThenResume(result.wait);
  };

  const waitThenResume = async (first: CoreWasiWait): Promise<number> => {
    let wait = first;
    for (;;) {
      const control = host.control();
      if (control === undefined) throw host.stop(record('HOST_ERROR', 'internal: a WASI wait outside a call'));
      // What the guest wrote before it waits is seen first (a prompt before a read).
      drainOutput(core, instanceId, control.wasi);
      const wasi = control.wasi;
      if (wait.kind === 'sleep') {
        const slept = await (wasi?.sleep(wait.durationMs) ?? sleepFor(wait.durationMs, () => undefined));
        if (!slept || control.cancelled() || host.dropped()) throw host.end();
      } else {
        // Without an owner for stdin (cannot happen: WASI instances have one), it ends.
        const outcome: StdinOutcome = (await wasi?.stdin(wait.maxBytes)) ?? {
          kind: 'data',
          bytes: new Uint8Array(0),
          eof: true,
        };
        if (outcome.kind === 'fail') throw host.end(outcome.error);
        if (outcome.kind === 'cancel' || control.cancelled() || host.dropped()) throw host.end();
        try {
          core.pushStdin(instanceId, outcome.bytes, outcome.eof);
        } catch (thrown) {
          throw host.end(thrown as ErrorRecord);
        }
      }
      host.resumed();
      let result: WasiAnswer;
      try {
        result = core.nativeWasiResume(instanceId, host.memory(), fuel()) as WasiAnswer;
      } catch (thrown) {
        throw host.stop(thrown);
      }
      if (typeof result === 'number') return result;
      if ('step' in result) throw new WasiExit(result.step as FinishedStep);
      wait = result.wait;
    }
  };

  for (const [index, name] of names.entries()) {
    const run = (args: unknown[]): WasiAnswer => {
      const global = fuel();
      try {
        return core.nativeWasi(instanceId, index, args, host.memory(), global) as WasiAnswer;
      } catch (thrown) {
        throw host.stop(thrown);
      }
    };
    if (WAITING.has(name)) {
      namespace[name] = new Suspending(((...args: unknown[]) => answer(run(args))) as (...args: never[]) => unknown);
    } else {
      // Not suspending, so it must never hand the engine a promise (that would read as 0).
      namespace[name] = (...args: unknown[]): number => {
        const result = run(args);
        if (typeof result === 'number') return result;
        if ('step' in result) throw new WasiExit(result.step as FinishedStep);
        throw host.end(record('HOST_ERROR', `internal: WASI ${name} waited, but it cannot suspend`));
      };
    }
  }
  return namespace;
}
