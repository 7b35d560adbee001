/**
 * The page's end of one worker: requests and their replies by id, the boot handshake, the
 * watchdog, and the worker's replacement when it crashes or stops answering.
 *
 * A connection serves one sandbox (the default: a dedicated worker per sandbox) or several
 * ({@link SharedWorkerPool}). It deals in error *records* only; the sandbox converts them
 * (with the context it has) in `errors.ts`'s one conversion.
 *
 * The boot handshake: the connection starts compiling nestbox's own wasm (once per page,
 * shared: `wasm.ts`) as it creates the worker, so the worker's script loads while the wasm
 * compiles; the worker says `hello`, the page answers `boot` with the compiled module, and
 * the worker instantiates it and says `ready` — only then are requests sent. A compile that
 * fails ends the worker like a crash (`WORKER_CRASHED`; the next request tries again).
 *
 * The watchdog is the backstop for what cannot yield (a guest inside one long step): every
 * request must be answered within its own limit (a call's wall-clock limit plus a grace
 * period); otherwise the worker is terminated and a new one started. The request that was
 * not answered gets `TIMEOUT` (or `CANCELLED` when it was being cancelled), every other
 * request in flight on that worker gets `WORKER_CRASHED`, and each sandbox learns that the
 * instances it had there are gone. The same happens on the worker's `error` event, on a
 * `fatal` message (the core panicked) and on any message that breaks the protocol.
 *
 * The worker is not trusted (a guest that escaped the interpreter would control it), so every
 * message it sends is checked here by what it *means*, not only by its shape
 * (`protocol.ts`): a reply must answer a request outstanding on this connection, of the
 * type it claims, with a value that passes the request's own check (result arity and types,
 * a memory read's exact length, …); a `host` or `stdin` request must name a call in flight
 * on this worker, of the sandbox and instance it names, with nothing else outstanding for
 * that call and an id the worker never used before; `output` and `audit` notices must belong
 * to a sandbox served here (and, for output and progress, to one of its calls in flight). The sandboxes
 * check the rest (capability ids against the instance's grants, arguments against the
 * declared signature, output caps, audit hashes) and report a failure through
 * {@link WorkerConnection.violation}. A violation is handled as a crash: the worker is
 * terminated and replaced, every request in flight fails (`WORKER_CRASHED`, with
 * `details.protocolViolation`), and it is counted ({@link WorkerConnection.violations}) and
 * recorded in each sandbox's audit log (the reason is the next segment's link entry).
 *
 * @module
 */

import { record, type ErrorCode, type ErrorRecord } from './errors.js';
import { MAX_TIMER_MS } from './host.js';
import { WorkerFailure, type WorkerEvents, type WorkerFactory, type WorkerHandle } from './spawn.js';
import {
  PROTOCOL_VERSION,
  readFromWorker,
  type HostAnswer,
  type HostRequest,
  type AuditNotice,
  type OutputNotice,
  type ProgressNotice,
  type StdinAnswer,
  type StdinRequest,
  type ReplyMap,
  type Request,
  type RequestType,
  type ToWorker,
} from './protocol.js';

/**
 * A reply as the sandbox sees it: the value, or an error record (with, for a worker that
 * could not start, what the platform threw as `cause`).
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ErrorRecord; cause?: unknown };

/** What a connection tells the sandboxes it serves. */
export interface ConnectionClient {
  /** The worker asks the page to run a capability. */
  onHost(request: HostRequest): void;
  /** The worker asks the page for the next chunk of a WASI guest's async stdin. */
  onStdin(request: StdinRequest): void;
  /** A WASI guest wrote to stdout or stderr. */
  onOutput(notice: OutputNotice): void;
  /** A `progress` notice of one of its calls in flight. */
  onProgress(notice: ProgressNotice): void;
  /** New entries of the sandbox's audit log, in order. */
  onAudit?(notice: AuditNotice): void;
  /** The worker was replaced: every instance the sandbox had there is gone. */
  onRestart(reason: string): void;
}

/**
 * The check of a successful reply's value by its meaning for the request that was sent
 * (its shape was checked by `readFromWorker`): `undefined` when it is acceptable, else what
 * is wrong (a protocol violation).
 */
export type ReplyCheck<T> = (value: T) => string | undefined;

interface Pending {
  readonly type: RequestType;
  readonly sandboxId: number;
  readonly resolve: (outcome: Outcome<unknown>) => void;
  readonly check: ReplyCheck<unknown> | undefined;
  /** For a `call`: the instance it runs on (host, stdin and output messages must name it). */
  readonly instanceId: number | undefined;
  /** For a `call`: the worker's host or stdin request the page has not answered yet. */
  waiting: number | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The code this request gets if the watchdog ends the worker because of it. */
  watchdogCode: ErrorCode;
}

/** The request that caused a worker replacement and the error it gets (others: `WORKER_CRASHED`). */
export interface Culprit {
  readonly id: number;
  readonly error: ErrorRecord;
}

/** Default grace beyond a call's wall-clock limit before the worker is presumed stuck. */
export const DEFAULT_WATCHDOG_GRACE_MS = 1_000;

/**
 * nestbox's own wasm for a new worker: a compile in flight or done (`null`: the worker loads
 * it itself), or `undefined` when the page does not provide it.
 */
export type CoreSource = () => Promise<WebAssembly.Module | null> | undefined;

/** The page's end of one worker. */
export class WorkerConnection {
  readonly #create: WorkerFactory;
  readonly #core: CoreSource | undefined;
  readonly graceMs: number;
  #worker: WorkerHandle | undefined;
  /** The current worker's core module (being compiled when the worker was created). */
  #coreModule: Promise<WebAssembly.Module | null> | undefined;
  /** Whether the current worker said `hello`, and whether it was sent `boot`. */
  #hello = false;
  #bootSent = false;
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
  /**
   * Requests of the current worker that ended on the page before their reply came (their
   * sandbox was unregistered, or nobody waits for the reply: `close`): a reply to one of
   * these is dropped once; a reply to any other id that is not outstanding is a violation.
   */
  readonly #retired = new Set<number>();
  /** Sandboxes unregistered while the current worker runs: their late messages are dropped. */
  readonly #gone = new Set<number>();
  /** The worker's host and stdin requests the page has not answered yet: request id → call id. */
  readonly #waits = new Map<number, number>();
  /** The highest host or stdin request id of the current worker (its ids only increase). */
  #lastWaitId = 0;
  #violations = 0;
  #lastViolation: string | undefined;
  #closed = false;

  /**
   * A connection that starts workers with `create` (lazily, on the first request), giving
   * each the core module `core` provides (without it, each worker loads its own).
   */
  constructor(create: WorkerFactory, graceMs: number, core?: CoreSource) {
    this.#create = create;
    this.#core = core;
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

  /** How many times the worker was replaced because a message from it failed validation. */
  get violations(): number {
    return this.#violations;
  }

  /** What the last such message was (`undefined` when none was). */
  get lastViolation(): string | undefined {
    return this.#lastViolation;
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
    this.#gone.add(sandboxId);
    for (const [id, pending] of this.#pending) {
      if (pending.sandboxId !== sandboxId) continue;
      this.#settle(id, { ok: false, error: record('DISPOSED', 'the sandbox was disposed') });
      // The worker still answers it (with DISPOSED, or what it was doing).
      if (this.#worker !== undefined) this.#retired.add(id);
    }
    for (const [hostId, callId] of [...this.#waits]) {
      if (!this.#pending.has(callId)) this.#waits.delete(hostId);
    }
    if (this.#worker !== undefined && !this.#closed) {
      const id = this.#nextId++;
      this.#retired.add(id);
      this.#send({ v: PROTOCOL_VERSION, type: 'close', id, sandboxId });
    }
  }

  /**
   * Sends a request. `watchdogMs`: how long the worker may take to answer before it is
   * presumed stuck and replaced; `check`: the test of a successful reply's value by what it
   * means for this request (a failure is a protocol violation: the worker is replaced).
   */
  request<R extends Request>(
    sandboxId: number,
    request: R,
    watchdogMs: number,
    check?: ReplyCheck<ReplyMap[R['type']]>,
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
        check: check as ReplyCheck<unknown> | undefined,
        instanceId: request.type === 'call' ? (request as Request & { type: 'call' }).instanceId : undefined,
        waiting: undefined,
        timer: undefined,
        watchdogCode: 'TIMEOUT',
      };
      this.#pending.set(id, pending);
      if (this.#pending.size === 1) this.#worker?.busy(true);
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
    this.#answered(id);
    this.#send({ v: PROTOCOL_VERSION, type: 'hostReply', id, sandboxId, answer });
  }

  /** Answers a `stdin` request of worker `generation` (as {@link answerHost}). */
  answerStdin(sandboxId: number, id: number, answer: StdinAnswer, generation: number): void {
    if (this.#closed || this.#worker === undefined || generation !== this.#generation) return;
    this.#answered(id);
    this.#send({ v: PROTOCOL_VERSION, type: 'stdinReply', id, sandboxId, answer });
  }

  /** Host or stdin request `id` is answered: its call may make the next one. */
  #answered(id: number): void {
    const callId = this.#waits.get(id);
    if (callId === undefined) return;
    this.#waits.delete(id);
    const pending = this.#pending.get(callId);
    if (pending?.waiting === id) pending.waiting = undefined;
  }

  /**
   * A message from the worker failed validation: the worker is treated as compromised.
   * It is terminated and replaced; `culprit` (the call the message claimed to belong to)
   * gets its own error, every other request in flight `WORKER_CRASHED`; the violation is
   * counted, and each sandbox records the reason in its audit log's next segment.
   */
  violation(what: string, culprit?: Culprit): void {
    if (this.#closed) return;
    this.#violations++;
    this.#lastViolation = what;
    this.restart(`protocol violation: ${what}`, culprit, true);
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

  /**
   * Starts the worker now (its boot handshake included) rather than on the first request:
   * a spare for the next sandbox (`spare.ts`).
   */
  prestart(): void {
    if (!this.#closed && this.#worker === undefined) this.#spawn();
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
   * Replaces the worker. `culprit`: the request that caused it (a watchdog that fired, a
   * message that failed validation) and the error it gets; every other request in flight
   * gets `WORKER_CRASHED`. `violation`: the reason is a protocol violation
   * (`details.protocolViolation` on every error).
   */
  restart(reason: string, culprit?: Culprit, violation = false, cause?: unknown): void {
    if (this.#closed) return;
    const booted = this.#booted;
    this.#stop();
    this.#generation++;
    this.#restarts++;
    this.#retired.clear();
    this.#gone.clear();
    this.#waits.clear();
    this.#lastWaitId = 0;
    const extra = violation ? { protocolViolation: true } : {};
    for (const [id, pending] of [...this.#pending]) {
      let error: ErrorRecord;
      if (culprit !== undefined && id === culprit.id) {
        error = { ...culprit.error, details: { ...culprit.error.details, reason, workerRestarted: true, ...extra } };
      } else {
        error = record(
          'WORKER_CRASHED',
          `the worker was replaced while this ${pending.type} was in flight (${reason})`,
          {
            reason,
            workerRestarted: true,
            ...extra,
          },
        );
      }
      this.#settle(id, cause === undefined ? { ok: false, error } : { ok: false, error, cause });
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
      const reason = `no answer to ${pending.type} within ${Math.round(ms)} ms`;
      const error =
        pending.watchdogCode === 'CANCELLED'
          ? record('CANCELLED', `call cancelled; the worker did not stop in time and was replaced (${reason})`)
          : record(pending.watchdogCode, `the worker did not answer in time and was replaced (${reason})`);
      this.restart(reason, { id, error });
    }, ms);
  }

  #settle(id: number, outcome: Outcome<unknown>): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker?.busy(false);
    clearTimeout(pending.timer);
    if (pending.waiting !== undefined) this.#waits.delete(pending.waiting);
    pending.resolve(outcome);
  }

  #send(message: ToWorker): void {
    if (this.#worker === undefined) this.#spawn();
    if (this.#queue !== undefined) this.#queue.push(message);
    else this.#worker?.post(message);
  }

  /**
   * Starts a worker. One that cannot even be created (no `Worker` on this platform, a URL or
   * a Content-Security-Policy the platform refuses: `WorkerFailure`) is handled as a worker
   * that failed to load: the requests in flight end with `WORKER_CRASHED`, with what the
   * platform threw as the error's `cause`.
   */
  #spawn(): void {
    // The compile starts before the worker: they run in parallel.
    this.#coreModule = this.#core?.();
    this.#hello = false;
    this.#bootSent = false;
    let live = true;
    const current = (): boolean => live && !this.#closed;
    const events: WorkerEvents = {
      message: (data) => {
        if (current()) this.#onMessage(data);
      },
      error: (reason, cause) => {
        if (current()) this.restart(reason, undefined, false, cause);
      },
      messageError: () => {
        if (current()) this.restart('a message from the worker could not be read');
      },
    };
    this.#detach = () => {
      live = false;
    };
    this.#queue = [];
    this.#booted = false;
    let worker: WorkerHandle;
    try {
      worker = this.#create(events);
    } catch (thrown) {
      this.#detach = undefined;
      live = false;
      this.#queue = undefined;
      const failure = thrown instanceof WorkerFailure ? thrown : undefined;
      const reason = failure?.message ?? `the worker could not be started: ${String(thrown)}`;
      this.restart(reason, undefined, false, failure?.cause ?? thrown);
      return;
    }
    this.#worker = worker;
    worker.busy(this.#pending.size > 0);
  }

  #stop(): void {
    this.#detach?.();
    this.#detach = undefined;
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#queue = undefined;
    this.#coreModule = undefined;
  }

  /** Answers the current worker's `hello` with `boot`, once its core module is compiled. */
  #boot(): void {
    const worker = this.#worker;
    const compiling = this.#coreModule;
    if (worker === undefined) return;
    const send = (module: WebAssembly.Module | null): void => {
      if (worker !== this.#worker) return; // replaced meanwhile
      this.#bootSent = true;
      worker.post({ v: PROTOCOL_VERSION, type: 'boot', module } satisfies ToWorker);
    };
    if (compiling === undefined) {
      send(null);
      return;
    }
    compiling.then(send, (error: unknown) => {
      if (worker !== this.#worker) return;
      this.restart(error instanceof Error ? error.message : `nestbox_bg.wasm: ${String(error)}`);
    });
  }

  /**
   * The call a `host`, `stdin` or `output` message names, if it is one in flight on this
   * worker for that sandbox and instance; otherwise what is wrong.
   */
  #callOf(sandboxId: number, callId: number, instanceId: number | undefined): Pending | string {
    const pending = this.#pending.get(callId);
    if (pending === undefined || pending.type !== 'call') return `call ${callId} is not in flight on this worker`;
    if (pending.sandboxId !== sandboxId) return `call ${callId} is not a call of sandbox ${sandboxId}`;
    if (instanceId !== undefined && pending.instanceId !== instanceId) {
      return `call ${callId} does not run on instance ${instanceId}`;
    }
    return pending;
  }

  /**
   * Checks a worker's host or stdin request: a known sandbox, a call of it in flight on
   * that instance with nothing else outstanding, a fresh id. Returns the sandbox, `gone`
   * when the sandbox was unregistered (a late message: dropped), or a violation.
   */
  #wait(message: HostRequest | StdinRequest): ConnectionClient | 'gone' | undefined {
    const { sandboxId, callId, instanceId, id } = message;
    if (this.#gone.has(sandboxId) && !this.#clients.has(sandboxId)) return 'gone';
    const client = this.#clients.get(sandboxId);
    const call =
      client === undefined
        ? `sandbox ${sandboxId} is not served by this worker`
        : this.#callOf(sandboxId, callId, instanceId);
    const culprit = this.#culpritOf(callId, message);
    if (typeof call === 'string') {
      this.violation(`${message.type} request ${id}: ${call}`, culprit);
      return undefined;
    }
    if (call.waiting !== undefined) {
      this.violation(
        `${message.type} request ${id}: call ${callId} already waits for request ${call.waiting}`,
        culprit,
      );
      return undefined;
    }
    if (id <= this.#lastWaitId) {
      this.violation(`${message.type} request ${id}: the id was used before (last ${this.#lastWaitId})`, culprit);
      return undefined;
    }
    this.#lastWaitId = id;
    call.waiting = id;
    this.#waits.set(id, callId);
    return client;
  }

  /**
   * The error of the call a forged host request named (when it is in flight here): the
   * guest call fails closed with `CAPABILITY_REVOKED` (`details.forged`).
   */
  #culpritOf(callId: number, message: HostRequest | StdinRequest): Culprit | undefined {
    if (this.#pending.get(callId)?.type !== 'call') return undefined;
    if (message.type === 'stdin') {
      return { id: callId, error: record('WORKER_CRASHED', 'the worker sent a stdin request that fails validation') };
    }
    return {
      id: callId,
      error: record('CAPABILITY_REVOKED', `host request for ${message.import} fails validation: refused`, {
        capability: message.capability,
        import: message.import,
        forged: true,
      }),
    };
  }

  #onMessage(data: unknown): void {
    const message = readFromWorker(data);
    if (typeof message === 'string') {
      this.violation(message);
      return;
    }
    switch (message.type) {
      case 'hello': {
        if (this.#hello) {
          this.violation('a second hello');
          return;
        }
        this.#hello = true;
        this.#boot();
        return;
      }
      case 'ready': {
        if (this.#booted) {
          this.violation('a second ready');
          return;
        }
        if (!this.#bootSent) {
          this.violation('ready before the page sent boot');
          return;
        }
        this.#booted = true;
        const queue = this.#queue ?? [];
        this.#queue = undefined;
        for (const m of queue) this.#worker?.post(m);
        return;
      }
      case 'fatal':
        this.restart(message.error.message);
        return;
      case 'reply': {
        const pending = this.#pending.get(message.id);
        if (pending === undefined) {
          // A reply to a request that already ended on the page (its sandbox was disposed
          // meanwhile), once; any other id was never asked for, or was answered already.
          if (this.#retired.delete(message.id)) return;
          this.violation(`reply ${message.id} answers no request outstanding on this worker`);
          return;
        }
        if (message.ok) {
          if (message.request !== pending.type) {
            this.violation(`reply ${message.id} answers ${message.request}, not ${pending.type}`);
            return;
          }
          const problem = pending.check?.(message.value);
          if (problem !== undefined) {
            this.violation(`reply ${message.id} to ${pending.type}: ${problem}`);
            return;
          }
          this.#settle(message.id, { ok: true, value: message.value });
        } else {
          this.#settle(message.id, { ok: false, error: message.error });
        }
        return;
      }
      case 'host': {
        const client = this.#wait(message);
        if (client === 'gone') {
          this.answerHost(
            message.sandboxId,
            message.id,
            { ok: false, error: record('DISPOSED', 'the sandbox was disposed') },
            this.#generation,
          );
          return;
        }
        client?.onHost(message);
        return;
      }
      case 'stdin': {
        const client = this.#wait(message);
        if (client === 'gone') {
          this.answerStdin(
            message.sandboxId,
            message.id,
            { ok: false, error: record('DISPOSED', 'the sandbox was disposed') },
            this.#generation,
          );
          return;
        }
        client?.onStdin(message);
        return;
      }
      case 'audit': {
        const client = this.#clients.get(message.sandboxId);
        if (client === undefined) {
          // Entries of a sandbox that is gone (disposed) have nobody to go to.
          if (!this.#gone.has(message.sandboxId)) {
            this.violation(`audit notice for sandbox ${message.sandboxId}, which is not served by this worker`);
          }
          return;
        }
        client.onAudit?.(message);
        return;
      }
      case 'output': {
        const client = this.#clients.get(message.sandboxId);
        if (client === undefined) {
          // Output of a sandbox that is gone has nobody to go to.
          if (!this.#gone.has(message.sandboxId)) {
            this.violation(`output notice for sandbox ${message.sandboxId}, which is not served by this worker`);
          }
          return;
        }
        const call = this.#callOf(message.sandboxId, message.callId, undefined);
        if (typeof call === 'string') {
          this.violation(`output notice: ${call}`);
          return;
        }
        client.onOutput(message);
        return;
      }
      case 'progress': {
        const client = this.#clients.get(message.sandboxId);
        if (client === undefined) {
          // Progress of a sandbox that is gone has nobody to go to.
          if (!this.#gone.has(message.sandboxId)) {
            this.violation(`progress notice for sandbox ${message.sandboxId}, which is not served by this worker`);
          }
          return;
        }
        const call = this.#callOf(message.sandboxId, message.callId, undefined);
        if (typeof call === 'string') {
          this.violation(`progress notice: ${call}`);
          return;
        }
        client.onProgress(message);
        return;
      }
    }
  }
}
