/**
 * The page's end of one worker: requests and their replies by id, the boot handshake, the
 * watchdog, and the worker's replacement when it crashes or stops answering.
 *
 * A connection serves one sandbox (the default: a dedicated worker per sandbox) or several
 * ({@link SharedWorkerPool}). It deals in error *records* only; the sandbox converts them
 * (with the context it has) in `errors.ts`'s one conversion.
 *
 * The watchdog is the backstop for what cannot yield (a guest inside one long step): every
 * request must be answered within its own limit (a call's wall-clock limit plus a grace
 * period); otherwise the worker is terminated and a new one started. The request that was
 * not answered gets `TIMEOUT` (or `CANCELLED` when it was being cancelled), every other
 * request in flight on that worker gets `WORKER_CRASHED`, and each sandbox learns that the
 * instances it had there are gone. The same happens on the worker's `error` event, on a
 * `fatal` message (the core panicked) and on any message that breaks the protocol.
 *
 * @module
 */

import { record, type ErrorCode, type ErrorRecord } from './errors.js';
import { MAX_TIMER_MS } from './host.js';
import {
  PROTOCOL_VERSION,
  readFromWorker,
  type HostAnswer,
  type HostRequest,
  type AuditNotice,
  type OutputNotice,
  type StdinAnswer,
  type StdinRequest,
  type ReplyMap,
  type Request,
  type RequestType,
  type ToWorker,
} from './protocol.js';

/** A reply as the sandbox sees it: the value, or an error record. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ErrorRecord };

/** What a connection tells the sandboxes it serves. */
export interface ConnectionClient {
  /** The worker asks the page to run a capability. */
  onHost(request: HostRequest): void;
  /** The worker asks the page for the next chunk of a WASI guest's async stdin. */
  onStdin(request: StdinRequest): void;
  /** A WASI guest wrote to stdout or stderr. */
  onOutput(notice: OutputNotice): void;
  /** New entries of the sandbox's audit log, in order. */
  onAudit?(notice: AuditNotice): void;
  /** The worker was replaced: every instance the sandbox had there is gone. */
  onRestart(reason: string): void;
}

interface Pending {
  readonly type: RequestType;
  readonly sandboxId: number;
  readonly resolve: (outcome: Outcome<unknown>) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The code this request gets if the watchdog ends the worker because of it. */
  watchdogCode: ErrorCode;
}

/** Default grace beyond a call's wall-clock limit before the worker is presumed stuck. */
export const DEFAULT_WATCHDOG_GRACE_MS = 1_000;

/** The page's end of one worker. */
export class WorkerConnection {
  readonly #create: () => Worker;
  readonly graceMs: number;
  #worker: Worker | undefined;
  /** Messages waiting for the worker's `ready`; `undefined` once it is ready. */
  #queue: ToWorker[] | undefined;
  /** Whether the current worker said `ready` (a worker that never did is not respawned eagerly). */
  #booted = false;
  #detach: (() => void) | undefined;
  #generation = 0;
  #restarts = 0;
  #nextId = 1;
  #nextSandboxId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #clients = new Map<number, ConnectionClient>();
  #closed = false;

  /** A connection that starts workers with `create` (lazily, on the first request). */
  constructor(create: () => Worker, graceMs: number) {
    this.#create = create;
    this.graceMs = graceMs;
  }

  /** Which worker this is: incremented every time the worker is replaced. */
  get generation(): number {
    return this.#generation;
  }

  /** How many times the worker was replaced. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Registers a sandbox; returns its id within this worker. */
  register(client: ConnectionClient): number {
    const id = this.#nextSandboxId++;
    this.#clients.set(id, client);
    return id;
  }

  /**
   * Forgets a sandbox: its requests in flight end with `DISPOSED` and the worker frees its
   * core (cancelling its calls).
   */
  unregister(sandboxId: number): void {
    if (!this.#clients.delete(sandboxId)) return;
    for (const [id, pending] of this.#pending) {
      if (pending.sandboxId !== sandboxId) continue;
      this.#settle(id, { ok: false, error: record('DISPOSED', 'the sandbox was disposed') });
    }
    if (this.#worker !== undefined && !this.#closed) {
      this.#send({ v: PROTOCOL_VERSION, type: 'close', id: this.#nextId++, sandboxId });
    }
  }

  /**
   * Sends a request. `watchdogMs`: how long the worker may take to answer before it is
   * presumed stuck and replaced.
   */
  request<R extends Request>(
    sandboxId: number,
    request: R,
    watchdogMs: number,
  ): { id: number; done: Promise<Outcome<ReplyMap[R['type']]>> } {
    const id = this.#nextId++;
    const done = new Promise<Outcome<ReplyMap[R['type']]>>((resolve) => {
      if (this.#closed) {
        resolve({ ok: false, error: record('DISPOSED', 'the worker was shut down') });
        return;
      }
      const pending: Pending = {
        type: request.type,
        sandboxId,
        // Replies are checked against `type` before they are resolved (see #onMessage).
        resolve: resolve as (outcome: Outcome<unknown>) => void,
        timer: undefined,
        watchdogCode: 'TIMEOUT',
      };
      this.#pending.set(id, pending);
      this.#arm(id, pending, watchdogMs);
      this.#send({ ...request, v: PROTOCOL_VERSION, id, sandboxId });
    });
    return { id, done };
  }

  /**
   * Answers a host request of worker `generation`. Host request ids are the worker's own and
   * start again in a new worker, so an answer meant for a replaced worker is dropped.
   */
  answerHost(sandboxId: number, id: number, answer: HostAnswer, generation: number): void {
    if (this.#closed || this.#worker === undefined || generation !== this.#generation) return;
    this.#send({ v: PROTOCOL_VERSION, type: 'hostReply', id, sandboxId, answer });
  }

  /** Answers a `stdin` request of worker `generation` (as {@link answerHost}). */
  answerStdin(sandboxId: number, id: number, answer: StdinAnswer, generation: number): void {
    if (this.#closed || this.#worker === undefined || generation !== this.#generation) return;
    this.#send({ v: PROTOCOL_VERSION, type: 'stdinReply', id, sandboxId, answer });
  }

  /**
   * Shortens request `id`'s watchdog to `ms` and makes its watchdog code `code` (a call
   * being cancelled must end within the grace period, or the worker is replaced).
   */
  escalate(id: number, ms: number, code: ErrorCode): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    pending.watchdogCode = code;
    clearTimeout(pending.timer);
    this.#arm(id, pending, ms);
  }

  /** Terminates the worker for good: every request in flight ends with `DISPOSED`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop();
    for (const id of [...this.#pending.keys()]) {
      this.#settle(id, { ok: false, error: record('DISPOSED', 'the sandbox was disposed') });
    }
    this.#clients.clear();
  }

  /**
   * Replaces the worker. `culprit`: the request whose watchdog fired, and the code it gets;
   * every other request in flight gets `WORKER_CRASHED`.
   */
  restart(reason: string, culprit?: { id: number; code: ErrorCode }): void {
    if (this.#closed) return;
    const booted = this.#booted;
    this.#stop();
    this.#generation++;
    this.#restarts++;
    for (const [id, pending] of [...this.#pending]) {
      let error: ErrorRecord;
      if (culprit !== undefined && id === culprit.id) {
        error =
          culprit.code === 'CANCELLED'
            ? record('CANCELLED', `call cancelled; the worker did not stop in time and was replaced (${reason})`, {
                reason,
                workerRestarted: true,
              })
            : record(culprit.code, `the worker did not answer in time and was replaced (${reason})`, {
                reason,
                workerRestarted: true,
              });
      } else {
        error = record(
          'WORKER_CRASHED',
          `the worker was replaced while this ${pending.type} was in flight (${reason})`,
          {
            reason,
            workerRestarted: true,
          },
        );
      }
      this.#settle(id, { ok: false, error });
    }
    for (const client of [...this.#clients.values()]) client.onRestart(reason);
    // A replacement starts booting now, so the next call does not wait for it; but a worker
    // that never booted (bad URL, wasm not found) is replaced only on the next request,
    // never in a loop.
    if (this.#clients.size > 0 && booted) this.#spawn();
  }

  #arm(id: number, pending: Pending, ms: number): void {
    if (ms > MAX_TIMER_MS) return;
    pending.timer = setTimeout(() => {
      this.restart(`no answer to ${pending.type} within ${Math.round(ms)} ms`, { id, code: pending.watchdogCode });
    }, ms);
  }

  #settle(id: number, outcome: Outcome<unknown>): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(outcome);
  }

  #send(message: ToWorker): void {
    if (this.#worker === undefined) this.#spawn();
    if (this.#queue !== undefined) this.#queue.push(message);
    else this.#worker?.postMessage(message);
  }

  #spawn(): void {
    const worker = this.#create();
    this.#worker = worker;
    this.#queue = [];
    this.#booted = false;
    const onMessage = (event: MessageEvent<unknown>): void => {
      if (worker === this.#worker) this.#onMessage(event.data);
    };
    const onError = (event: ErrorEvent): void => {
      event.preventDefault();
      if (worker === this.#worker) this.restart(`worker error: ${event.message || 'failed to load or crashed'}`);
    };
    const onMessageError = (): void => {
      if (worker === this.#worker) this.restart('a message from the worker could not be read');
    };
    worker.addEventListener('message', onMessage);
    worker.addEventListener('error', onError);
    worker.addEventListener('messageerror', onMessageError);
    this.#detach = () => {
      worker.removeEventListener('message', onMessage);
      worker.removeEventListener('error', onError);
      worker.removeEventListener('messageerror', onMessageError);
    };
  }

  #stop(): void {
    this.#detach?.();
    this.#detach = undefined;
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#queue = undefined;
  }

  #onMessage(data: unknown): void {
    const message = readFromWorker(data);
    if (typeof message === 'string') {
      this.restart(`protocol violation: ${message}`);
      return;
    }
    switch (message.type) {
      case 'ready': {
        this.#booted = true;
        const queue = this.#queue ?? [];
        this.#queue = undefined;
        for (const m of queue) this.#worker?.postMessage(m);
        return;
      }
      case 'fatal':
        this.restart(message.error.message);
        return;
      case 'reply': {
        const pending = this.#pending.get(message.id);
        // A reply to a request that already ended (disposed meanwhile): nobody waits for it.
        if (pending === undefined) return;
        if (message.ok) {
          if (message.request !== pending.type) {
            this.restart(`protocol violation: reply ${message.id} answers ${message.request}, not ${pending.type}`);
            return;
          }
          this.#settle(message.id, { ok: true, value: message.value });
        } else {
          this.#settle(message.id, { ok: false, error: message.error });
        }
        return;
      }
      case 'host': {
        const client = this.#clients.get(message.sandboxId);
        if (client !== undefined) {
          client.onHost(message);
          return;
        }
        // No such sandbox here: a forged or stale request. Fail closed.
        this.answerHost(
          message.sandboxId,
          message.id,
          {
            ok: false,
            error: record('CAPABILITY_REVOKED', `host request for unknown sandbox ${message.sandboxId}: refused`, {
              forged: true,
            }),
          },
          this.#generation,
        );
        return;
      }
      case 'stdin': {
        const client = this.#clients.get(message.sandboxId);
        if (client !== undefined) {
          client.onStdin(message);
          return;
        }
        this.answerStdin(
          message.sandboxId,
          message.id,
          {
            ok: false,
            error: record('CANCELLED', `stdin request for unknown sandbox ${message.sandboxId}: refused`),
          },
          this.#generation,
        );
        return;
      }
      case 'audit':
        // Entries of a sandbox that is gone (disposed) have nobody to go to.
        this.#clients.get(message.sandboxId)?.onAudit?.(message);
        return;
      case 'output':
        // Output of a sandbox that is gone has nobody to go to.
        this.#clients.get(message.sandboxId)?.onOutput(message);
        return;
    }
  }
}
