/**
 * Host dispatch: what happens when a guest calls a capability, on the page (worker sandbox)
 * and in a local sandbox alike.
 *
 * In order: the (capability id, import) pair must be one this instance was granted —
 * anything else is a forged or stale id and fails closed with `CAPABILITY_REVOKED`
 * (`details.forged`); the capability must not be revoked (`CAPABILITY_REVOKED`) nor out of
 * calls (`CAPABILITY_QUOTA`); the arguments must match its declared parameters; then its
 * function runs with a fresh memory view, racing the call's deadline and cancellation.
 *
 * @module
 */

import { entryOf, type CapabilityEntry, type Link } from './capability.js';
import { SandboxError, type AnySandboxError, type ErrorDetails } from './errors.js';
import { isViewDenial, type ViewContext } from './memory.js';
import type { Value } from './types.js';

/** One host call as the core reported it. */
export interface HostCallRequest {
  readonly capability: number;
  readonly import: string;
  readonly args: readonly Value[];
}

/** How a host call ended, from the guest's point of view. */
export type HostVerdict =
  /** The function returned: resume the guest with these results. */
  | { readonly kind: 'results'; readonly results: Value[] }
  /** The guest call must end with `error` (`cause`: what the host function threw, if it did). */
  | { readonly kind: 'fail'; readonly error: AnySandboxError }
  /** The call was cancelled meanwhile: nothing to answer. */
  | { readonly kind: 'cancelled' };

/** What dispatch needs from its call. */
export interface HostCallContext {
  /** The links of the calling instance. */
  readonly links: readonly Link[];
  /** Counts one denial of this call. */
  readonly deny: () => void;
  /** Aborted with a `SandboxError` reason when the call ends (cancelled: `CANCELLED`). */
  readonly signal: AbortSignal;
  /** `performance.now()` at which the call's wall-clock limit passes. */
  readonly deadline: number;
  /** The call's wall-clock limit, for messages. */
  readonly timeoutMs: number;
  /** Makes the view for this host call; `close()` ends it when the function returns. */
  readonly view: (context: ViewContext, entry: CapabilityEntry) => { close(): void; readonly view: unknown };
}

/** The longest delay `setTimeout` honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function deny(context: HostCallContext, error: SandboxError): HostVerdict {
  context.deny();
  return { kind: 'fail', error };
}

function matchesType(value: Value, type: string): boolean {
  return type === 'i64' ? typeof value === 'bigint' : typeof value === 'number';
}

/** The host function's return value as the declared results, or a reason it is not. */
export function results(value: unknown, entry: CapabilityEntry): Value[] | string {
  const declared = entry.results;
  let values: unknown[];
  if (declared.length === 0) values = [];
  else if (declared.length === 1) values = Array.isArray(value) && value.length === 1 ? value : [value];
  else if (Array.isArray(value)) values = value;
  else return `must return an array of ${declared.length} values`;
  if (values.length !== declared.length) return `returned ${values.length} values, declared ${declared.length}`;
  // Types are checked by the core (one place); here only that they are numbers at all.
  for (const v of values) {
    if (typeof v !== 'number' && typeof v !== 'bigint') return `returned ${typeof v}, not a number or bigint`;
  }
  return values as Value[];
}

/** Runs one host call. Never throws: every outcome is a verdict. */
export async function dispatchHost(request: HostCallRequest, context: HostCallContext): Promise<HostVerdict> {
  const link = context.links.find((l) => l.capability === request.capability && l.import === request.import);
  if (link === undefined) {
    return deny(
      context,
      new SandboxError(
        'CAPABILITY_REVOKED',
        `capability id ${request.capability} (${request.import}) was never granted to this instance: refused`,
        { capability: request.capability, import: request.import, forged: true },
      ),
    );
  }
  const entry = entryOf(link.token);
  const details: ErrorDetails = { capability: link.capability, import: link.import, capabilityName: entry.name };
  if (entry.revoked) {
    return deny(
      context,
      new SandboxError('CAPABILITY_REVOKED', `capability ${entry.name} (${link.import}) was revoked`, details),
    );
  }
  if (entry.calls >= entry.maxCalls) {
    return deny(
      context,
      new SandboxError(
        'CAPABILITY_QUOTA',
        `capability ${entry.name} (${link.import}) may be called at most ${entry.maxCalls} times`,
        { ...details, quota: 'calls', limit: entry.maxCalls },
      ),
    );
  }
  const args = request.args;
  if (args.length !== entry.params.length || !args.every((v, i) => matchesType(v, entry.params[i] ?? ''))) {
    return {
      kind: 'fail',
      error: new SandboxError(
        'HOST_ERROR',
        `arguments of ${link.import} do not match its declared parameters`,
        details,
      ),
    };
  }
  entry.calls++;

  const viewContext: ViewContext = { entry, deny: context.deny, signal: context.signal, details };
  const { view, close } = context.view(viewContext, entry);
  // Call the function first: a synchronous answer (the common case in a worker) needs no
  // deadline timer, abort listener or race — they cost ~20 µs per call.
  let returned: unknown;
  try {
    // `view` is the GuestMemory or SyncGuestMemory that matches `entry.kind` (see context.view).
    returned = (entry.fn as (memory: unknown, ...a: Value[]) => unknown)(view, ...args);
  } catch (thrown) {
    close();
    return threw(thrown, entry, link.import, details);
  }
  if (!isThenable(returned)) {
    close();
    return settled(returned, entry, link.import, details);
  }
  return awaited(returned, entry, link.import, details, context, close);
}

/** The verdict on what a host function returned: its results, or why they are not. */
export function settled(returned: unknown, entry: CapabilityEntry, name: string, details: ErrorDetails): HostVerdict {
  const values = results(returned, entry);
  if (typeof values === 'string') {
    return {
      kind: 'fail',
      error: new SandboxError('HOST_ERROR', `host function ${entry.name} (${name}) ${values}`, {
        ...details,
        cause: values,
      }),
    };
  }
  return { kind: 'results', results: values };
}

/** The verdict on a host function that threw. */
export function threw(thrown: unknown, entry: CapabilityEntry, name: string, details: ErrorDetails): HostVerdict {
  // A denial of the view (bounds, byte quota) ends the guest call with its own code; any
  // other thrown value — even a SandboxError from elsewhere — is this function failing.
  if (isViewDenial(thrown)) return { kind: 'fail', error: thrown };
  return {
    kind: 'fail',
    error: new SandboxError(
      'HOST_ERROR',
      `host function ${entry.name} (${name}) threw: ${describe(thrown)}`,
      { ...details, cause: describe(thrown) },
      { cause: thrown },
    ),
  };
}

/**
 * The verdict on a host function that answered with a promise, racing the call's deadline
 * and cancellation; `close` ends its memory view once it settled.
 */
export async function awaited(
  returned: PromiseLike<unknown>,
  entry: CapabilityEntry,
  name: string,
  details: ErrorDetails,
  context: Pick<HostCallContext, 'signal' | 'deadline' | 'timeoutMs'>,
  close: () => void,
): Promise<HostVerdict> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<HostVerdict>((resolve) => {
    onAbort = () => resolve({ kind: 'cancelled' });
    if (context.signal.aborted) onAbort();
    else context.signal.addEventListener('abort', onAbort, { once: true });
    const remaining = context.deadline - performance.now();
    // setTimeout fires at once for delays over 2^31-1 ms; such a deadline is never reached.
    if (remaining > MAX_TIMER_MS) return;
    timer = setTimeout(
      () =>
        resolve({
          kind: 'fail',
          error: new SandboxError(
            'TIMEOUT',
            `wall-clock limit of ${context.timeoutMs} ms passed while host function ${entry.name} (${name}) was running`,
            { ...details, limit: context.timeoutMs },
          ),
        }),
      Math.max(0, remaining),
    );
  });
  const run = Promise.resolve(returned).then(
    (value) => settled(value, entry, name, details),
    (thrown: unknown) => threw(thrown, entry, name, details),
  );
  try {
    return await Promise.race([run, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) context.signal.removeEventListener('abort', onAbort);
    close();
  }
}

/** Whether a host function answered with a promise (or any thenable) rather than a value. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** A thrown value as text for messages (its `message` when it has one). */
export function describe(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  try {
    return String(thrown);
  } catch {
    return 'an unprintable value';
  }
}
