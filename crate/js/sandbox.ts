/**
 * The page API: {@link createSandbox}, {@link Sandbox}, {@link SandboxModule},
 * {@link SandboxInstance} and {@link SharedWorkerPool}.
 *
 * A sandbox is one core (its own modules, instances and limits) inside a worker: by default
 * a dedicated module worker created with `new Worker(new URL('./worker.js',
 * import.meta.url), { type: 'module' })` — the form webpack 5 and Vite recognise and bundle
 * without configuration — or a worker shared with other sandboxes.
 *
 * Host functions run here, on the page, reached only through capability ids the sandbox
 * itself handed out. So do a WASI run's async stdin source (read a chunk each time the
 * worker asks) and its output callbacks (fed by the worker's `output` notices). Module bytes are kept on the page so that, when the worker has to be
 * replaced, the sandbox opens a new core there and loads its modules again on demand;
 * instances cannot be carried over (the guest's state died with the worker), so their calls
 * fail with `WORKER_CRASHED` and say so.
 *
 * @module
 */

import {
  callResult,
  checkedCall,
  dataResult,
  HTTP_CAPABILITY,
  httpHandlerOf,
  instantiateData,
  instantiateImports,
  isReactor,
  persistentWasiPlan,
  wasiCallOf,
  linkImports,
  ownModule,
  progressSample,
  readStdin,
  runHttp,
  reportProgress,
  runWasiWith,
  type FinishedCall,
  type HttpHandler,
  type WasiCall,
} from './calls.js';
import { disposedError, Resource } from './resource.js';
import type { WasiPlan } from './wasi.js';
import type {
  CoreAuditRecord,
  CoreExport,
  CoreImport,
  CoreMetrics,
  CoreLimits,
  CoreModule,
  CorePolicy,
  CoreProvenance,
} from './nestbox.js';
import { AuditTrail, listenForRevokes, sandboxAudit, type AuditEntry, type SandboxAudit } from './audit.js';
import { CapabilityTable, entryOf, type Link } from './capability.js';
import {
  DEFAULT_WATCHDOG_GRACE_MS,
  WorkerConnection,
  type ConnectionClient,
  type CoreSource,
  type Outcome,
  type ReplyCheck,
} from './connection.js';
import { errorFromRecord, invalidArgument, record, recordOf, SandboxError, type AnySandboxError } from './errors.js';
import {
  GoInstance,
  goPlan,
  runGoCapability,
  type GoBackend,
  type GoPhase,
  type GoRun,
  type GoTokens,
} from './gojs.js';
import { dispatchHost } from './host.js';
import { workerFactory as startWorker, type WorkerFactory } from './spawn.js';
import { AsyncMemoryView, type GuestMemory, type MemoryAccess } from './memory.js';
import { watchForLeak, unwatchLeak } from './lifecycle.js';
import { sandboxClosed, sandboxOpened, spareKey, takeConnection } from './spare.js';
import {
  callOptions,
  coreLimits,
  engineOf,
  jspiRefusal,
  onlyFields,
  timeoutOf,
  type CheckedCallOptions,
} from './options.js';
import { DEFAULT_LIMITS } from './constants.js';
import { corePolicy, fetchModule, loadOptionsOf, provenanceOf, type TrustPolicy } from './policy.js';
import { traceProblem } from './trace.js';
import { compiledCore, defaultWasmUrl } from './wasm.js';
import {
  valuesMismatch,
  type AuditNotice,
  type GoFinished,
  type HostRequest,
  type OutputNotice,
  type ProgressNotice,
  type ReplyMap,
  type Request,
  type StdinAnswer,
  type StdinRequest,
} from './protocol.js';
import type {
  CallOptions,
  CallResult,
  DataCallResult,
  DataInput,
  Engine,
  GoCallOptions,
  GoData,
  GoInstantiateOptions,
  InstantiateOptions,
  LoadOptions,
  ModuleInfo,
  ModuleSourceLike,
  ProgressSample,
  SandboxLimits,
  Value,
  WasiFiles,
  WasiResult,
  WasiRunOptions,
} from './types.js';

/** Options of {@link createWorkerPool}. */
export interface WorkerPoolOptions {
  /**
   * Where the worker script (`worker.js` of this package) is served, for pages without a
   * bundler. Default: next to this module, as bundlers expect. Of another origin than the
   * page (a CDN, which must send CORS headers), the worker starts from a `blob:` module that
   * imports it. In Node.js: a path or `file:` URL of the script `worker_threads` runs.
   */
  workerUrl?: string | URL;
  /** How long past a call's wall-clock limit the worker may stay silent before it is replaced (default 1000). */
  watchdogGraceMs?: number;
}

/** Options of {@link createSandbox}. */
export interface SandboxOptions extends WorkerPoolOptions {
  /** Limits enforced by the core on every instance of this sandbox. */
  limits?: SandboxLimits;
  /**
   * Run in this shared worker instead of a dedicated one. Sandboxes sharing a worker have
   * separate cores but one thread and one address space: a stuck or crashed worker is
   * replaced for all of them, and **a shared pool is one trust domain**. A guest that
   * escaped the interpreter controls the whole worker: it can read and change the other
   * sandboxes' guests there, and while another sandbox of the pool has a call in flight it
   * can ask for that sandbox's capabilities in that call's name (the page accepts a host
   * request only for a call in flight on that worker, on the instance it names, for a
   * capability that instance was granted, with arguments of its declared types — which
   * is all a page can check). Share a pool only between sandboxes of the same trust (one
   * tenant, one origin of guests); the default, a dedicated worker per sandbox, isolates
   * them. `workerUrl` and `watchdogGraceMs` then come from the pool.
   */
  worker?: SharedWorkerPool;
  /** Which code may load (see {@link TrustPolicy}); absent: any module whose integrity checks out. */
  policy?: TrustPolicy;
  /**
   * Called with each audit entry as it reaches the page, in order, before the reply of the
   * request that caused it. A listener that throws is reported (`reportError`;
   * `console.error` in Node) and ignored.
   */
  onAudit?: (entry: AuditEntry) => void;
  /**
   * Keep one worker started in advance for the next sandbox (default `true`): while a
   * sandbox of this kind (same `workerUrl` and `watchdogGraceMs`) is alive, a fresh worker
   * boots in the background, and the next `createSandbox` adopts it instead of waiting for a
   * new one (most of a later sandbox's cold start). It has run nothing and is taken by one
   * sandbox only; it ends with the last sandbox of its kind. `false`: this sandbox neither
   * adopts nor keeps one. Ignored with `worker`.
   */
  spareWorker?: boolean;
  /**
   * Which engine runs this sandbox's guests (default `'interpreter'`; `load`'s `engine`
   * overrides it per module). `'native'` runs them on the browser's own WebAssembly engine,
   * instrumented to meter themselves, and needs JavaScript Promise Integration
   * (`WebAssembly.Suspending` / `promising`): without it, `INVALID_ARGUMENT` with
   * `details.engine: 'native'` and `details.missing`. See the README's "Native tier".
   */
  engine?: Engine;
}

/** Counters of a sandbox over its lifetime. */
export interface SandboxStats {
  /** Calls started. */
  readonly calls: number;
  /** Denials of the capability layer (see {@link Metrics.denials}), including forged ids. */
  readonly denials: number;
  /** How many times its worker was replaced (crash, watchdog, protocol violation). */
  readonly workerRestarts: number;
  /**
   * How many of those replacements were because a message from the worker failed the
   * page's validation (a compromised or broken worker); a shared pool's count is shared.
   */
  readonly protocolViolations: number;
}

function positiveMs(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalidArgument(`${what} must be a non-negative number of milliseconds`);
  }
  return value;
}

/** How the sandbox's workers start (`spawn.ts`: browsers, cross-origin, Node); `workerUrl` checked. */
function workerFactory(workerUrl: unknown): WorkerFactory {
  if (workerUrl !== undefined && typeof workerUrl !== 'string' && !(workerUrl instanceof URL)) {
    throw invalidArgument('workerUrl must be a string or a URL');
  }
  return startWorker(workerUrl);
}

/**
 * nestbox's own wasm for the workers of `workerUrl`, compiled once per page (`wasm.ts`): the
 * package's own `nestbox_bg.wasm`, or for a custom worker script the one next to it (where
 * a page without a bundler serves the package) — when there is none there (404), the worker
 * loads its own as its script says.
 */
function coreSource(workerUrl: string | URL | undefined): CoreSource {
  if (workerUrl === undefined) return () => compiledCore(defaultWasmUrl());
  return () => {
    let url: URL;
    try {
      url = new URL('nestbox_bg.wasm', new URL(String(workerUrl), globalThis.location?.href));
    } catch {
      return undefined; // not a URL the page can fetch: the worker loads its own
    }
    return compiledCore(url, true);
  };
}

function connectionFor(workerUrl: string | URL | undefined, graceMs: number): WorkerConnection {
  return new WorkerConnection(workerFactory(workerUrl), graceMs, coreSource(workerUrl));
}

const poolConnections = new WeakMap<SharedWorkerPool, WorkerConnection>();

/**
 * One worker shared by several sandboxes (see {@link SandboxOptions.worker}). Disposing the
 * pool terminates the worker: every sandbox in it fails later calls with `DISPOSED`.
 *
 * **A shared pool is one trust domain.** The sandboxes keep separate cores, stores and
 * capability tables, but they share one thread and one address space. The worker is the
 * blast radius of an interpreter escape: a guest that escaped controls every sandbox in the
 * pool, and while another sandbox has a call in flight it can call the capabilities that
 * call's instance was granted (in that call's name, with arguments of their declared types:
 * the page validates every message but cannot tell which guest really sent it). Use a pool
 * only for sandboxes of the same trust; the default dedicated worker per sandbox isolates
 * sandboxes from each other.
 */
export class SharedWorkerPool extends Resource {
  /** Use {@link createWorkerPool}. */
  constructor(options: WorkerPoolOptions = {}) {
    super();
    onlyFields(options as Record<string, unknown>, ['workerUrl', 'watchdogGraceMs'], 'worker pool options');
    const grace = positiveMs(options.watchdogGraceMs, 'watchdogGraceMs') ?? DEFAULT_WATCHDOG_GRACE_MS;
    poolConnections.set(this, connectionFor(options.workerUrl, grace));
  }

  /** Whether the pool can still serve sandboxes. */
  get alive(): boolean {
    return !connectionOf(this).closed;
  }

  /** How many times the shared worker was replaced. */
  get workerRestarts(): number {
    return connectionOf(this).restarts;
  }

  /** How many of those replacements were because a message from the worker failed validation. */
  get protocolViolations(): number {
    return connectionOf(this).violations;
  }

  /** Terminates the shared worker. */
  protected override release(): void {
    connectionOf(this).close();
  }
}

function connectionOf(pool: SharedWorkerPool): WorkerConnection {
  const connection = poolConnections.get(pool);
  if (connection === undefined) throw invalidArgument('not a SharedWorkerPool');
  return connection;
}

/**
 * Creates a worker that several sandboxes can share (`createSandbox({ worker: pool })`).
 * A pool is one trust domain (see {@link SharedWorkerPool}): share it only between
 * sandboxes of the same trust.
 */
export function createWorkerPool(options: WorkerPoolOptions = {}): SharedWorkerPool {
  return new SharedWorkerPool(options);
}

/**
 * Creates a sandbox in its own worker (or in `options.worker`), with the core enforcing
 * `options.limits`. Resolves once the worker runs and the limits were accepted.
 *
 * @throws TypeError (`INVALID_ARGUMENT`) for bad options or limits; `WORKER_CRASHED` when
 *   the worker cannot start (e.g. `workerUrl` or `nestbox_bg.wasm` not found).
 */
export async function createSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  onlyFields(
    options as Record<string, unknown>,
    ['limits', 'workerUrl', 'worker', 'watchdogGraceMs', 'policy', 'onAudit', 'spareWorker', 'engine'],
    'createSandbox options',
  );
  const engine = checkedEngine(options.engine, 'engine') ?? 'interpreter';
  const limits = coreLimits(options.limits);
  const policy = corePolicy(options.policy);
  const onAudit = options.onAudit;
  if (onAudit !== undefined && typeof onAudit !== 'function') throw invalidArgument('onAudit must be a function');
  if (options.spareWorker !== undefined && typeof options.spareWorker !== 'boolean') {
    throw invalidArgument('spareWorker must be a boolean');
  }
  let connection: WorkerConnection;
  let owned: boolean;
  let spare: { key: string; make: () => WorkerConnection } | undefined;
  if (options.worker !== undefined) {
    if (options.workerUrl !== undefined || options.watchdogGraceMs !== undefined) {
      throw invalidArgument('workerUrl and watchdogGraceMs belong to the pool when `worker` is given');
    }
    connection = connectionOf(options.worker);
    if (connection.closed) throw disposedError('worker pool');
    owned = false;
  } else {
    const grace = positiveMs(options.watchdogGraceMs, 'watchdogGraceMs') ?? DEFAULT_WATCHDOG_GRACE_MS;
    const workerUrl = options.workerUrl;
    const make = (): WorkerConnection => connectionFor(workerUrl, grace);
    if (options.spareWorker === false) {
      connection = make();
    } else {
      spare = { key: spareKey(workerUrl, grace), make };
      connection = takeConnection(spare.key, make);
    }
    owned = true;
  }
  const session = new Session(connection, owned, limits, { policy, onAudit, engine });
  try {
    await session.ensureOpen();
  } catch (error) {
    session.dispose();
    throw error;
  }
  if (spare !== undefined && !session.disposed) {
    const { key, make } = spare;
    sandboxOpened(key, make);
    session.onDispose(() => sandboxClosed(key));
  }
  const sandbox = new Sandbox(session);
  // Warns (and terminates the worker) if the sandbox is collected without dispose().
  watchForLeak(sandbox, session);
  return sandbox;
}

// ---- internals ----

/**
 * A checked `engine` option; `'native'` where this JavaScript engine has no JSPI is refused
 * here already (the worker checks again).
 */
function checkedEngine(value: unknown, what: string): Engine | undefined {
  const engine = engineOf(value, what);
  if (engine === 'native') {
    const refusal = jspiRefusal();
    if (refusal !== undefined) throw errorFromRecord(refusal);
  }
  return engine;
}

interface ModuleState {
  readonly session: Session;
  /** Keeps the sandbox reachable while its modules (and so its instances) are: not a leak. */
  readonly owner: Sandbox;
  readonly bytes: Uint8Array;
  readonly integrity: string;
  /** Origin and signature, given again when the module is loaded in a new worker. */
  readonly provenance: CoreProvenance;
  /** Which engine runs its instances. */
  readonly engine: Engine;
  /** The worker generation `moduleId` belongs to. */
  generation: number;
  moduleId: number;
  dropped: boolean;
}

interface InstanceState {
  readonly session: Session;
  readonly generation: number;
  readonly instanceId: number;
  /** Which engine runs it (its module's). */
  readonly engine: Engine;
  readonly links: readonly Link[];
  /** The module's exports: a call's reply must have the results of the export's signature. */
  readonly exports: readonly CoreExport[];
  /** Fuel its start function consumed while it was instantiated. */
  readonly startFuel: number;
  /** The call in flight, if any. */
  call: PageCall | undefined;
  dropped: boolean;
  /** A persistent WASI instance (`instantiateWasi`): where its output streams. */
  wasi?: WasiPlan;
  /** A data guest's HTTP capability (`instantiate`'s `http`). */
  http?: HttpHandler;
  /** A Go js/wasm guest (`instantiateGo`): the Go capabilities it was granted, by id. */
  go?: GoTokens;
}

/** One call in flight, as the page tracks it. */
interface PageCall {
  readonly instance: InstanceState;
  readonly deadline: number;
  readonly timeoutMs: number;
  /** Aborted when the call ends, is cancelled, or its worker dies: its host views stop. */
  readonly abort: AbortController;
  denials: number;
  /** Set when the page ended the guest call from a host call: this is the caller's error. */
  fatal: AnySandboxError | undefined;
  /** A WASI run's output and async stdin. */
  wasi: WasiCall | undefined;
  /** Output bytes received for this call (held to the run's caps). */
  readonly received: { stdout: number; stderr: number };
  /** The caller's progress callback (the call asked the worker for `progress` notices). */
  readonly onProgress: ((sample: ProgressSample) => void) | undefined;
  /** The last progress notice's counters: the next may not go back. */
  lastProgress: CoreMetrics | undefined;
  /** A Go call: where its output goes, and the most the core lets the guest write. */
  go?: { readonly output: (stdout: Uint8Array, stderr: Uint8Array) => void; readonly cap: number };
}

const moduleStates = new WeakMap<SandboxModule, ModuleState>();
const instanceStates = new WeakMap<SandboxInstance, InstanceState>();

/** The state of one sandbox; not exported from the package. */
export class Session implements ConnectionClient {
  readonly connection: WorkerConnection;
  readonly owned: boolean;
  readonly limits: CoreLimits;
  readonly timeoutMs: number;
  readonly sandboxId: number;
  readonly table = new CapabilityTable();
  readonly lifetime = new AbortController();
  readonly calls = new Map<number, PageCall>();
  stats = { calls: 0, denials: 0 };
  /** The trust policy the core is opened with in every worker. */
  readonly policy: CorePolicy | undefined;
  /** The engine of modules loaded without one. */
  readonly engine: Engine;
  /** The audit log as the page holds it (authoritative: it outlives workers). */
  readonly audit: AuditTrail;
  /** Set while the page replaces the worker on purpose (recycling), for the log's link entry. */
  recycling = false;
  readonly #stopRevokes: () => void;
  /** What ends with this session (the spare worker's count of its kind). */
  #released: (() => void) | undefined;
  #openGeneration = -1;
  #opening: { generation: number; promise: Promise<void> } | undefined;

  constructor(
    connection: WorkerConnection,
    owned: boolean,
    limits: CoreLimits,
    extra: {
      policy?: CorePolicy | undefined;
      onAudit?: ((entry: AuditEntry) => void) | undefined;
      engine?: Engine;
    } = {},
  ) {
    this.connection = connection;
    this.owned = owned;
    this.limits = limits;
    this.timeoutMs = timeoutOf(limits);
    this.policy = extra.policy;
    this.engine = extra.engine ?? 'interpreter';
    this.audit = new AuditTrail(extra.onAudit);
    this.sandboxId = connection.register(this);
    this.#stopRevokes = listenForRevokes(this);
  }

  /** Disposed itself, or its shared worker pool was. */
  get disposed(): boolean {
    return this.lifetime.signal.aborted || this.connection.closed;
  }

  /** The watchdog of requests other than calls. */
  get watchdogMs(): number {
    return this.timeoutMs + this.connection.graceMs;
  }

  checkAlive(): void {
    if (this.disposed) throw disposedError('sandbox');
  }

  /** Opens this sandbox's core in the current worker, once per worker. */
  ensureOpen(): Promise<void> {
    this.checkAlive();
    const generation = this.connection.generation;
    if (this.#openGeneration === generation) return Promise.resolve();
    if (this.#opening?.generation === generation) return this.#opening.promise;
    // A new worker's log starts with a link to the entries the page already holds.
    const seed = this.audit.seed();
    const denied = this.audit.denied();
    const promise = this.send({
      type: 'open',
      limits: this.limits,
      ...(this.policy === undefined ? {} : { policy: this.policy }),
      ...(seed === undefined ? {} : { auditSeed: seed }),
      ...(denied.length === 0 ? {} : { deniedDigests: denied }),
    }).then(() => {
      if (this.connection.generation === generation) this.#openGeneration = generation;
    });
    this.#opening = { generation, promise };
    return promise;
  }

  /**
   * Sends a request and unwraps its reply (errors converted, no extra context). Every
   * request but `open` first opens the core in the current worker if it is not yet.
   */
  async send<R extends Request>(
    request: R,
    watchdogMs = this.watchdogMs,
    check?: ReplyCheck<ReplyMap[R['type']]>,
  ): Promise<ReplyMap[R['type']]> {
    if (request.type !== 'open' && this.#openGeneration !== this.connection.generation) await this.ensureOpen();
    const outcome = await this.connection.request(this.sandboxId, request, watchdogMs, check).done;
    return unwrap(outcome);
  }

  /** The id of `state`'s module in the current worker, loading it there again if needed. */
  async moduleId(state: ModuleState): Promise<number> {
    await this.ensureOpen();
    const generation = this.connection.generation;
    if (state.generation !== generation) {
      const { module } = await this.send(
        {
          type: 'load',
          bytes: state.bytes,
          integrity: state.integrity,
          provenance: state.provenance,
          engine: state.engine,
        },
        this.watchdogMs,
        loadCheck(state.bytes, state.engine),
      );
      state.generation = generation;
      state.moduleId = module.moduleId;
    }
    return state.moduleId;
  }

  /** The ids of this sandbox's live instances in worker `generation`. */
  #instances = { generation: -1, ids: new Set<number>() };

  #liveIds(): Set<number> {
    if (this.#instances.generation !== this.connection.generation) {
      this.#instances = { generation: this.connection.generation, ids: new Set() };
    }
    return this.#instances.ids;
  }

  /**
   * The check of an `instantiate` reply: the id must not be one of a live instance (two
   * instances under one id would share a store); accepted ids are then live.
   */
  newInstance(): ReplyCheck<{ instanceId: number }> {
    return ({ instanceId }) => {
      const live = this.#liveIds();
      if (live.has(instanceId)) return `instance id ${instanceId} is already a live instance of this sandbox`;
      live.add(instanceId);
      return undefined;
    };
  }

  /** Instance `id` of the current worker was dropped. */
  dropped(id: number): void {
    this.#liveIds().delete(id);
  }

  /** A revoked capability was granted: a denial, logged with its code (the core never sees it). */
  refusedGrant(error: SandboxError): void {
    this.deny(undefined);
    const { capability, import: name, capabilityName } = error.details;
    this.auditRecord({
      event: 'deny',
      outcome: error.code,
      extra: {
        capability: String(capability),
        import: String(name),
        capabilityName: String(capabilityName),
        reason: 'a revoked capability cannot be granted',
      },
    });
  }

  deny(call: PageCall | undefined): void {
    this.stats.denials++;
    if (call !== undefined) call.denials++;
  }

  /** Raw memory access to one instance (each access a request to the worker). */
  access(instance: InstanceState): MemoryAccess<Promise<Uint8Array>, Promise<void>> {
    const live = (): void => {
      this.checkAlive();
      if (instance.dropped) throw disposedError('instance');
      if (instance.generation !== this.connection.generation) throw lostInstance();
    };
    return {
      read: async (ptr, len) => {
        live();
        const check = ({ bytes }: ReplyMap['memoryRead']): string | undefined =>
          bytes.length === len ? undefined : `${bytes.length} bytes, but ${len} were asked for`;
        return (await this.send({ type: 'memoryRead', instanceId: instance.instanceId, ptr, len }, undefined, check))
          .bytes;
      },
      write: async (ptr, bytes) => {
        live();
        await this.send({ type: 'memoryWrite', instanceId: instance.instanceId, ptr, bytes });
      },
      size: async () => {
        live();
        return (await this.send({ type: 'memorySize', instanceId: instance.instanceId })).sizeBytes;
      },
    };
  }

  onHost(request: HostRequest): void {
    void this.#host(request);
  }

  async #host(request: HostRequest): Promise<void> {
    const generation = this.connection.generation;
    const call = this.calls.get(request.callId);
    const forged = (why: string): SandboxError =>
      new SandboxError('CAPABILITY_REVOKED', `${why}: refused`, {
        capability: request.capability,
        import: request.import,
        forged: true,
      });
    if (
      call === undefined ||
      call.instance.instanceId !== request.instanceId ||
      call.instance.generation !== this.connection.generation
    ) {
      // The connection checked that the call is in flight on this worker; one this sandbox
      // does not know is a worker that cannot be trusted. Fail closed.
      this.deny(undefined);
      const error = forged(`host request for call ${request.callId}, which this sandbox is not running`);
      this.connection.violation(error.message, { id: request.callId, error: recordOf(error) });
      return;
    }
    if (request.goArgs !== undefined || call.instance.go !== undefined) {
      await this.#goHost(request, call, generation);
      return;
    }
    if (request.http !== undefined) {
      const handler = call.instance.http;
      if (handler === undefined || request.capability !== HTTP_CAPABILITY) {
        // The core only asks for HTTP on an instance granted it: the worker is forging it.
        this.deny(call);
        const error = forged(`host request ${request.id}: HTTP for an instance without an HTTP grant`);
        this.connection.violation(error.message, { id: request.callId, error: recordOf(error) });
        return;
      }
      const outcome = await runHttp(handler, request.http, call.abort.signal, call.deadline, call.timeoutMs);
      if (call.abort.signal.aborted && outcome.kind !== 'fail') return;
      if (outcome.kind === 'http') {
        this.connection.answerHost(
          this.sandboxId,
          request.id,
          { ok: true, results: [], http: outcome.response },
          generation,
        );
        return;
      }
      if (call.abort.signal.aborted && !(outcome.error.code === 'TIMEOUT')) return;
      call.fatal = outcome.error;
      call.abort.abort(outcome.error);
      this.connection.answerHost(this.sandboxId, request.id, { ok: false, error: recordOf(outcome.error) }, generation);
      return;
    }
    // The core links only granted imports, so a capability id (or import name) the instance
    // was not granted means the worker is forging it.
    const link = call.instance.links.find((l) => l.capability === request.capability && l.import === request.import);
    if (link === undefined) {
      this.deny(call);
      const error = forged(
        `capability id ${request.capability} (${request.import}) was never granted to this instance`,
      );
      this.connection.violation(`host request ${request.id}: ${error.message}`, {
        id: request.callId,
        error: recordOf(error),
      });
      return;
    }
    const mismatch = valuesMismatch(request.args, entryOf(link.token).params, 'arguments');
    if (mismatch !== undefined) {
      const why = `host request ${request.id} for ${request.import}: ${mismatch} (declared parameters)`;
      this.connection.violation(why, {
        id: request.callId,
        error: record('WORKER_CRASHED', `the worker sent a ${why}`),
      });
      return;
    }
    const access = this.access(call.instance);
    const verdict = await dispatchHost(request, {
      links: call.instance.links,
      deny: () => this.deny(call),
      signal: call.abort.signal,
      deadline: call.deadline,
      timeoutMs: call.timeoutMs,
      view: (context) => {
        const view = new AsyncMemoryView(access, context);
        return { view, close: () => view.close() };
      },
    });
    switch (verdict.kind) {
      case 'results':
        this.connection.answerHost(this.sandboxId, request.id, { ok: true, results: verdict.results }, generation);
        return;
      case 'fail':
        call.fatal = verdict.error;
        // The guest call ends with this error: the host function's signal says why.
        call.abort.abort(verdict.error);
        this.connection.answerHost(
          this.sandboxId,
          request.id,
          { ok: false, error: recordOf(verdict.error) },
          generation,
        );
        return;
      case 'cancelled':
        // The worker ended the call itself (cancel) or is gone: nothing to answer.
        return;
    }
  }

  /**
   * A Go guest's capability call: only an instance made by `instantiateGo` makes them, only
   * with a capability id it was granted (anything else is a worker that lies: replaced).
   * Revoked or over quota: refused, counted as a denial, and the call ends with that code (the
   * core logs it as a `deny` entry).
   */
  async #goHost(request: HostRequest, call: PageCall, generation: number): Promise<void> {
    const tokens = call.instance.go;
    const goArgs = request.goArgs;
    if (tokens === undefined || goArgs === undefined) {
      this.deny(call);
      const why = `host request ${request.id}: ${tokens === undefined ? 'a Go capability call from an instance that is no Go guest' : 'a numeric host call from a Go guest'}`;
      this.connection.violation(why, {
        id: request.callId,
        error: record('CAPABILITY_REVOKED', `${why}: refused`, { capability: request.capability, forged: true }),
      });
      return;
    }
    const verdict = await runGoCapability(tokens, request.capability, request.import, goArgs, () => this.deny(call));
    if (verdict.forged === true) {
      this.connection.violation(`host request ${request.id}: ${verdict.ok ? '' : verdict.error.message}`, {
        id: request.callId,
        error: verdict.ok
          ? record('CAPABILITY_REVOKED', 'forged')
          : { ...recordOf(verdict.error), details: { ...verdict.error.details, forged: true } },
      });
      return;
    }
    if (call.abort.signal.aborted) return; // cancelled or disposed meanwhile: nothing to answer
    if (verdict.ok) {
      this.connection.answerHost(
        this.sandboxId,
        request.id,
        { ok: true, results: [], go: { value: verdict.value } },
        generation,
      );
      return;
    }
    call.fatal = verdict.error;
    call.abort.abort(verdict.error);
    this.connection.answerHost(this.sandboxId, request.id, { ok: false, error: recordOf(verdict.error) }, generation);
  }

  onOutput(notice: OutputNotice): void {
    const call = this.calls.get(notice.callId);
    if (call?.go !== undefined) {
      // The core stops at its output cap (OUTPUT_LIMIT): more than that in one call is a lie.
      call.received.stdout += notice.stdout.length;
      call.received.stderr += notice.stderr.length;
      if (notice.stdout.length + notice.stderr.length === 0) {
        this.connection.violation(`an empty output notice for call ${notice.callId}`);
        return;
      }
      if (call.received.stdout + call.received.stderr > call.go.cap) {
        this.connection.violation(`more output for Go call ${notice.callId} than its cap of ${call.go.cap} bytes`);
        return;
      }
      call.go.output(notice.stdout, notice.stderr);
      return;
    }
    const wasi = call?.wasi;
    if (call === undefined || wasi === undefined) {
      this.connection.violation(`output notice for call ${notice.callId}, which is not a WASI run of this sandbox`);
      return;
    }
    if (notice.stdout.length === 0 && notice.stderr.length === 0) {
      this.connection.violation(`an empty output notice for call ${notice.callId}`);
      return;
    }
    // The core stops at the caps the page set (OUTPUT_LIMIT keeps the bytes up to them):
    // more than that is not the core speaking.
    call.received.stdout += notice.stdout.length;
    call.received.stderr += notice.stderr.length;
    for (const stream of ['stdout', 'stderr'] as const) {
      if (call.received[stream] > wasi.caps[stream]) {
        this.connection.violation(
          `${call.received[stream]} bytes of ${stream} for call ${notice.callId}, over its cap of ${wasi.caps[stream]}`,
        );
        return;
      }
    }
    wasi.output.push(notice.stdout, notice.stderr);
  }

  onProgress(notice: ProgressNotice): void {
    const call = this.calls.get(notice.callId);
    if (call === undefined || call.onProgress === undefined) {
      this.connection.violation(`progress notice for call ${notice.callId}, which did not ask for progress`);
      return;
    }
    // Counters only grow within a call, and the memory is at most the call's peak: a sample
    // that goes back, or one past its own peak, is not the core speaking.
    const { metrics, memoryBytes } = notice;
    const last = call.lastProgress;
    const keys = ['fuelConsumed', 'slices', 'hostCalls', 'peakMemoryBytes', 'wallTimeUs'] as const;
    if (last !== undefined && keys.some((k) => metrics[k] < last[k])) {
      this.connection.violation(`a progress notice for call ${notice.callId} that goes back`);
      return;
    }
    if (memoryBytes > metrics.peakMemoryBytes && metrics.peakMemoryBytes > 0) {
      this.connection.violation(`a progress notice for call ${notice.callId} with memory over its own peak`);
      return;
    }
    call.lastProgress = metrics;
    reportProgress(call.onProgress, progressSample(metrics, memoryBytes));
  }

  onStdin(request: StdinRequest): void {
    void this.#stdin(request);
  }

  async #stdin(request: StdinRequest): Promise<void> {
    const generation = this.connection.generation;
    const answer = (a: StdinAnswer): void => this.connection.answerStdin(this.sandboxId, request.id, a, generation);
    const call = this.calls.get(request.callId);
    const reader = call?.wasi?.stdin;
    if (call === undefined || reader === undefined || call.instance.instanceId !== request.instanceId) {
      // Only a WASI run with an async stdin waits for it: anything else is not the core.
      this.connection.violation(`stdin request ${request.id} for call ${request.callId}, which has no async stdin`, {
        id: request.callId,
        error: record('WORKER_CRASHED', 'the worker asked for stdin this call does not have'),
      });
      return;
    }
    const read = await readStdin(reader, call.abort.signal, call.deadline, call.timeoutMs);
    switch (read.kind) {
      case 'aborted':
        return; // the call is being cancelled or disposed: nothing to answer
      case 'data':
        answer({ ok: true, bytes: read.bytes, eof: read.eof });
        return;
      case 'fail':
        if (read.fatal) {
          call.fatal = read.error;
          call.abort.abort(read.error);
        }
        answer({ ok: false, error: recordOf(read.error) });
        return;
    }
  }

  onAudit(notice: AuditNotice): void {
    const problem = this.audit.receive(notice.entries);
    if (problem !== undefined) this.connection.violation(problem);
  }

  /** Waits until the entries of everything this sandbox did so far have reached the page. */
  async auditSync(): Promise<void> {
    if (this.disposed) return;
    let head: string;
    try {
      ({ head } = await this.send({ type: 'auditSync' }));
    } catch {
      return; // the worker is gone: the page's copy is all there is
    }
    if (head !== this.audit.head() && !this.disposed) {
      this.connection.violation("the worker's audit head is not that of the entries it sent");
    }
  }

  /** Appends a page event to the core's log (not once the sandbox is gone). */
  auditRecord(record: CoreAuditRecord): void {
    if (this.disposed) return;
    void this.send({ type: 'auditRecord', record }).catch(() => undefined);
  }

  /** `revoke(token)` was called: logged if this sandbox ever granted it. */
  revoked(token: object, name: string): void {
    if (this.disposed) {
      this.#stopRevokes();
      return;
    }
    const id = this.table.granted(token);
    if (id === undefined) return;
    this.auditRecord({ event: 'revoke', outcome: 'ok', extra: { capability: String(id), capabilityName: name } });
  }

  /** What a leak warning says about this sandbox. */
  leakInfo(): { calls: number; auditEntries: number } {
    return { calls: this.stats.calls, auditEntries: this.audit.entries().length };
  }

  onRestart(reason: string): void {
    this.audit.restarted({ reason, crashed: !this.recycling });
    this.recycling = false;
    for (const call of this.calls.values()) {
      call.abort.abort(
        new SandboxError('WORKER_CRASHED', `the worker was replaced during the call (${reason})`, { reason }),
      );
    }
  }

  /** Runs `release` once, when this session is disposed. */
  onDispose(release: () => void): void {
    this.#released = release;
  }

  dispose(): void {
    this.#stopRevokes();
    unwatchLeak(this);
    const release = this.#released;
    this.#released = undefined;
    release?.();
    if (this.disposed) return;
    this.lifetime.abort(disposedError('sandbox'));
    for (const call of this.calls.values()) call.abort.abort(disposedError('sandbox'));
    if (this.owned) this.connection.close();
    else this.connection.unregister(this.sandboxId);
  }
}

/** A `load` reply must describe the bytes that were sent, loaded for the engine asked for. */
function loadCheck(bytes: Uint8Array, engine: Engine): ReplyCheck<ReplyMap['load']> {
  return ({ module, engine: loaded }) => {
    if (loaded !== engine) return `a module loaded for engine ${String(loaded)}, but ${engine} was asked for`;
    if (module.sizeBytes !== bytes.length)
      return `a module of ${module.sizeBytes} bytes, but ${bytes.length} were sent`;
    for (const e of module.exports) {
      // A function with a numeric signature has both lists (others have neither).
      const types = e.params === undefined && e.results === undefined ? [] : [e.params, e.results];
      const ok =
        typeof e.name === 'string' &&
        types.every(
          (t) => Array.isArray(t) && t.every((x: unknown) => ['i32', 'i64', 'f32', 'f64'].includes(String(x))),
        );
      if (!ok) return 'a malformed export';
    }
    return undefined;
  };
}

function unwrap<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  throw errorFromRecord(outcome.error, outcome.cause === undefined ? {} : { cause: outcome.cause });
}

function lostInstance(): SandboxError {
  return new SandboxError(
    'WORKER_CRASHED',
    'this instance lived in a worker that crashed or was replaced; instantiate the module again',
  );
}

function sessionOf(sandbox: unknown, what: string): Session {
  const session = sandbox instanceof Sandbox ? sandboxSessions.get(sandbox) : undefined;
  if (session === undefined) throw invalidArgument(`${what} is not a Sandbox`);
  return session;
}

const sandboxSessions = new WeakMap<Sandbox, Session>();

// ---- the public classes ----

/**
 * A sandbox: a core with its limits, in a worker. Made by {@link createSandbox}; disposable
 * (`dispose()`, `using`), after which every method throws `DISPOSED`.
 */
export class Sandbox extends Resource {
  /** @internal Use {@link createSandbox}. */
  constructor(session: Session) {
    super();
    sandboxSessions.set(this, session);
  }

  /** False once disposed. */
  get alive(): boolean {
    return !sessionOf(this, 'this').disposed;
  }

  /** Lifetime counters. */
  get stats(): SandboxStats {
    const session = sessionOf(this, 'this');
    return {
      ...session.stats,
      workerRestarts: session.connection.restarts,
      protocolViolations: session.connection.violations,
    };
  }

  /**
   * The sandbox's audit log, held on the page as entries arrive (so a replaced worker loses
   * nothing): `entries()`, `head()`, `toJSONL()`, `verify(head?)`. Still readable after
   * `dispose()`.
   */
  get audit(): SandboxAudit {
    const session = sessionOf(this, 'this');
    return sandboxAudit(session.audit, () => session.auditSync());
  }

  /**
   * Loads a module: fetches or copies the bytes, and the core checks their size and SHA-256
   * against `options.integrity` before anything parses them, then the trust policy (allowed
   * digests, the origin the bytes were fetched from or `options.origin`, `options.signature`),
   * then validates them. Every attempt is in the audit log.
   *
   * @throws `INTEGRITY_MISMATCH`, `MODULE_TOO_LARGE`, `POLICY_DENIED`, `SIGNATURE_INVALID`,
   *   `INVALID_MODULE`, `DISPOSED`; TypeError (`INVALID_ARGUMENT`) for a missing or malformed
   *   integrity, a malformed origin, or an `origin` that disagrees with where the module was
   *   fetched from.
   */
  async load(source: ModuleSourceLike, options: LoadOptions): Promise<SandboxModule> {
    const session = sessionOf(this, 'this');
    session.checkAlive();
    const { integrity, signature, origin, engine: asked } = loadOptionsOf(options);
    const engine = checkedEngine(asked, 'load options: engine') ?? session.engine;
    const fetched = await fetchModule(source);
    const provenance = provenanceOf(origin, fetched.origin, signature);
    const { bytes } = fetched;
    await session.ensureOpen();
    const generation = session.connection.generation;
    const { module } = await session.send(
      { type: 'load', bytes, integrity, provenance, engine },
      session.watchdogMs,
      loadCheck(bytes, engine),
    );
    const state: ModuleState = {
      session,
      owner: this,
      bytes,
      integrity,
      provenance,
      engine,
      generation,
      moduleId: module.moduleId,
      dropped: false,
    };
    return new SandboxModule(state, module);
  }

  /**
   * Instantiates a module, granting it `options.imports` (`{ [module]: { [name]: token } }`).
   * The core links only granted imports whose declared signature equals the guest's.
   *
   * @throws `IMPORT_NOT_GRANTED` (every missing import in `details.imports`),
   *   `SIGNATURE_MISMATCH`, `CAPABILITY_REVOKED`, `INSTANCE_LIMIT`, `MEMORY_LIMIT`,
   *   `TABLE_LIMIT`, a start function's error (with `details.metrics.fuelConsumed` when it
   *   consumed fuel), `DISPOSED`, `WORKER_CRASHED`; TypeError for malformed imports.
   */
  async instantiate(module: SandboxModule, options: InstantiateOptions = {}): Promise<SandboxInstance> {
    const session = sessionOf(this, 'this');
    session.checkAlive();
    const state = ownModule(moduleStates.get(module), (s) => s.session === session);
    const imports = instantiateImports(options);
    const linked = linkImports(session.table, imports, false, (error) => session.refusedGrant(error));
    const moduleId = await session.moduleId(state);
    const generation = session.connection.generation;
    const data = instantiateData(options);
    const http = httpHandlerOf(options);
    const { instanceId, startFuel } = await session.send(
      {
        type: 'instantiate',
        moduleId,
        grants: linked.grants,
        ...(data === undefined ? {} : { data }),
      },
      session.watchdogMs,
      session.newInstance(),
    );
    const instance: InstanceState = {
      session,
      generation,
      instanceId,
      engine: state.engine,
      startFuel,
      links: linked.links,
      exports: module.exports,
      call: undefined,
      dropped: false,
      ...(http === undefined ? {} : { http }),
    };
    return new SandboxInstance(instance, module);
  }

  /**
   * Runs a WASI command (`_start` of a module that imports `wasi_snapshot_preview1`) in a
   * fresh instance, dropped afterwards, with the arguments, environment, files and stdin of
   * `options`. The guest's sleeps are timers in the worker, its reads of an async stdin ask
   * this page for the next chunk, its output streams to `onStdout`/`onStderr`.
   *
   * @returns the exit code (`proc_exit`'s status, 0 when `_start` returns — any status is a
   *   result), stdout, stderr (`stdoutText`/`stderrText` decoded), the preopens' trees after
   *   the run, and the metrics.
   * @throws `OUTPUT_LIMIT` (stdout or stderr over its cap), and every error of
   *   `instantiate` and `call`; an error of the run carries what the guest wrote before it in
   *   `details.stdout` / `details.stderr` (for `OUTPUT_LIMIT`, up to the cap). TypeError
   *   (`INVALID_ARGUMENT`) for malformed options, also those the core refuses (a NUL in an
   *   argument, a duplicate preopen, initial files over a quota).
   */
  async runWasi(module: SandboxModule, options: WasiRunOptions = {}): Promise<WasiResult> {
    const session = sessionOf(this, 'this');
    session.checkAlive();
    const state = ownModule(moduleStates.get(module), (s) => s.session === session);
    return runWasiWith<InstanceState>(options, session.timeoutMs, {
      instantiate: async (plan) => {
        const linked = linkImports(session.table, plan.imports, false, (error) => session.refusedGrant(error));
        const moduleId = await session.moduleId(state);
        const generation = session.connection.generation;
        const { instanceId, startFuel } = await session.send(
          {
            type: 'instantiateWasi',
            moduleId,
            config: { ...plan.config, grants: linked.grants },
          },
          session.watchdogMs,
          session.newInstance(),
        );
        return {
          session,
          generation,
          instanceId,
          engine: state.engine,
          startFuel,
          links: linked.links,
          exports: module.exports,
          call: undefined,
          dropped: false,
        };
      },
      start: (instance, plan, wasi) => callOn(instance, '_start', [], plan.call, wasi),
      startFuel: (instance) => instance.startFuel,
      files: async (instance) => (await session.send({ type: 'wasiFiles', instanceId: instance.instanceId })).files,
      drop: (instance) => {
        instance.dropped = true;
        if (!session.disposed && instance.generation === session.connection.generation) {
          session.dropped(instance.instanceId);
          void session.send({ type: 'dropInstance', instanceId: instance.instanceId }).catch(() => undefined);
        }
      },
    });
  }

  /**
   * A WASI instance that stays: the module is instantiated with WASI preview1 (the options of
   * `runWasi`, but stdin is bytes or a string), a reactor's `_initialize` runs once (with the
   * options' `signal`, `timeoutMs`, `fuel`), and then its exports are called as often as
   * needed with `call` — numeric or data calls — while its files, its own state and its data
   * variables persist between calls. Its stdout and stderr stream to `onStdout`/`onStderr`
   * during every call; the caps (`limits.maxStdoutBytes`, …) count each call afresh.
   * `files()` reads its preopens; `dispose()` ends it.
   *
   * @throws every error of `instantiate` and of the `_initialize` call; TypeError for
   *   malformed options or an async stdin.
   */
  async instantiateWasi(module: SandboxModule, options: WasiRunOptions = {}): Promise<SandboxInstance> {
    const session = sessionOf(this, 'this');
    session.checkAlive();
    const state = ownModule(moduleStates.get(module), (s) => s.session === session);
    const plan = persistentWasiPlan(options, session.timeoutMs);
    const linked = linkImports(session.table, plan.imports, false, (error) => session.refusedGrant(error));
    const moduleId = await session.moduleId(state);
    const generation = session.connection.generation;
    const { instanceId, startFuel } = await session.send(
      {
        type: 'instantiateWasi',
        moduleId,
        config: { ...plan.config, grants: linked.grants },
      },
      session.watchdogMs,
      session.newInstance(),
    );
    const instanceState: InstanceState = {
      session,
      generation,
      instanceId,
      engine: state.engine,
      startFuel,
      links: linked.links,
      exports: module.exports,
      call: undefined,
      dropped: false,
      wasi: plan,
    };
    const instance = new SandboxInstance(instanceState, module);
    if (isReactor(module.exports)) {
      try {
        await callOn(instanceState, '_initialize', [], plan.call, wasiCallOf(plan));
      } catch (error) {
        instance.dispose();
        throw error;
      }
    }
    return instance;
  }

  /**
   * A Go `js/wasm` guest (`GOOS=js GOARCH=wasm`, as built for `wasm_exec.js`): its
   * `js.Global()` is a membrane holding only `options.globals` — JSON-like data (copied in) and
   * {@link goCapability} tokens — besides the few shims Go's runtime reads. `main` runs before
   * this resolves; then `callGo` calls the functions it registered, and the timers it sets keep
   * firing while it is idle (each run metered and limited like a call).
   *
   * @throws as {@link Sandbox.instantiate}, and as `main` fails (`TRAP` for a Go panic);
   *   TypeError (`INVALID_ARGUMENT`) for `globals` holding a function or a reserved name.
   */
  async instantiateGo(module: SandboxModule, options: GoInstantiateOptions = {}): Promise<GoInstance> {
    const session = sessionOf(this, 'this');
    session.checkAlive();
    const state = ownModule(moduleStates.get(module), (s) => s.session === session);
    const { tokens, config, defaults, hooks } = goPlan(options, session.timeoutMs);
    const moduleId = await session.moduleId(state);
    const generation = session.connection.generation;
    const { instanceId } = await session.send(
      { type: 'instantiateGo', moduleId, config },
      session.watchdogMs,
      session.newInstance(),
    );
    const instance: InstanceState = {
      session,
      generation,
      instanceId,
      engine: state.engine,
      startFuel: 0,
      links: [],
      exports: [],
      call: undefined,
      dropped: false,
      go: tokens,
    };
    const backend: GoBackend = {
      run: (phase, name, args, callOpts, output) => goCallOn(instance, phase, name, args, callOpts, output),
      gone: () => {
        if (session.disposed) return disposedError('sandbox');
        if (instance.dropped) return disposedError('instance');
        return instance.generation === session.connection.generation ? undefined : lostInstance();
      },
      release: () => dropInstance(instance),
    };
    const go = new GoInstance(backend, defaults, hooks);
    try {
      await go.runMain();
    } catch (error) {
      go.dispose();
      throw error;
    }
    return go;
  }

  /** Terminates the worker (unless shared) and ends every call in flight with `DISPOSED`. */
  protected override release(): void {
    sessionOf(this, 'this').dispose();
  }
}

/** A verified, validated module of one sandbox. */
export class SandboxModule extends Resource implements ModuleInfo {
  /** {@inheritDoc ModuleInfo.digest} */
  readonly digest: string;
  /** {@inheritDoc ModuleInfo.sizeBytes} */
  readonly sizeBytes: number;
  /** {@inheritDoc ModuleInfo.imports} */
  readonly imports: readonly CoreImport[];
  /** {@inheritDoc ModuleInfo.exports} */
  readonly exports: readonly CoreExport[];
  /** Which engine runs its instances (`load`'s `engine`, or the sandbox's). */
  readonly engine: Engine;

  /** @internal Made by {@link Sandbox.load}. */
  constructor(state: ModuleState, record: CoreModule) {
    super();
    moduleStates.set(this, state);
    this.engine = state.engine;
    this.digest = record.digest;
    this.sizeBytes = record.sizeBytes;
    this.imports = Object.freeze(record.imports);
    this.exports = Object.freeze(record.exports);
  }

  /** False once disposed (or its sandbox was). */
  get alive(): boolean {
    const state = moduleStates.get(this);
    return state !== undefined && !state.dropped && !state.session.disposed;
  }

  /** Forgets the module (and its bytes); instances made from it keep working. */
  protected override release(): void {
    const state = moduleStates.get(this);
    if (state === undefined || state.dropped) return;
    state.dropped = true;
    const { session } = state;
    if (!session.disposed && state.generation === session.connection.generation) {
      void session.send({ type: 'dropModule', moduleId: state.moduleId }).catch(() => undefined);
    }
  }
}

/**
 * An instance of a module: its own store and memory. One call at a time (a second
 * concurrent call is `BUSY`); a call that ended in a trap, limit or cancellation poisons it
 * (`POISONED`: instantiate again).
 */
export class SandboxInstance extends Resource {
  /** The module it was made from. */
  readonly module: SandboxModule;
  /**
   * The embedder's own view of the instance's memory, between calls (`BUSY` during one).
   * Not a capability: no quota, not counted as denials.
   */
  readonly memory: GuestMemory;
  /**
   * The fuel the module's start function consumed while it was instantiated (0 without one).
   * A start function runs under the sandbox's whole `limits.fuel` (it cannot be suspended);
   * a failed instantiation reports it in `details.metrics.fuelConsumed`.
   */
  readonly startFuel: number;
  /** Which engine runs it: `'interpreter'` (wasmi, in the core) or `'native'` (the browser's). */
  readonly engine: Engine;

  /** @internal Made by {@link Sandbox.instantiate}. */
  constructor(state: InstanceState, module: SandboxModule) {
    super();
    instanceStates.set(this, state);
    this.module = module;
    this.engine = state.engine;
    this.startFuel = state.startFuel;
    const access = state.session.access(state);
    const idle = (): void => {
      if (state.call !== undefined) throw new SandboxError('BUSY', 'a call is running on this instance');
    };
    this.memory = new AsyncMemoryView(
      {
        read: (ptr, len) => (idle(), access.read(ptr, len)),
        write: (ptr, bytes) => (idle(), access.write(ptr, bytes)),
        size: () => (idle(), access.size()),
      },
      { entry: undefined, deny: () => undefined, signal: state.session.lifetime.signal, details: {} },
    );
  }

  /** False once disposed, after its sandbox was disposed, or when its worker was replaced. */
  get alive(): boolean {
    const state = stateOf(this);
    return !state.dropped && !state.session.disposed && state.generation === state.session.connection.generation;
  }

  /** Whether a call is running. */
  get busy(): boolean {
    return stateOf(this).call !== undefined;
  }

  /**
   * Calls the exported function `exportName` with `args` (`i64` as `bigint`).
   *
   * @throws `BUSY` if a call is running; `POISONED` after an interrupted call; `CANCELLED`
   *   (`options.signal`), `TIMEOUT`, `FUEL_EXHAUSTED`, `MEMORY_LIMIT`, `STACK_OVERFLOW`,
   *   `TRAP`, `HOST_ERROR` (its `cause` is what the host function threw),
   *   `CAPABILITY_REVOKED`, `CAPABILITY_QUOTA`, `WORKER_CRASHED`, `DISPOSED`; TypeError
   *   (`INVALID_ARGUMENT`) for an unknown export or arguments that do not fit its signature.
   *   Errors that ended a call carry `details.metrics`.
   *
   * With an `input` (bytes, a string, or another JSON value but an array) instead of `args`, a
   * *data call* (`docs/data-abi.md`, Extism's ABI): the result's `bytes()`, `text()`, `json()`
   * read the guest's output. It also throws `INPUT_LIMIT` (over `limits.maxInputBytes`; the
   * instance stays usable), `OUTPUT_LIMIT` (over `limits.maxOutputBytes`), `GUEST_ERROR`
   * (the guest's non-zero status or error message, in `details.cause`; the instance stays
   * usable) and `TRAP` (`memory_out_of_bounds`) for a guest that lies about a handle or length.
   */
  async call(exportName: string, args?: readonly Value[], options?: CallOptions): Promise<CallResult>;
  async call(exportName: string, input: DataInput, options?: CallOptions): Promise<DataCallResult>;
  async call(
    exportName: string,
    args: readonly Value[] | DataInput = [],
    options?: CallOptions,
  ): Promise<CallResult | DataCallResult> {
    const state = stateOf(this);
    const session = state.session;
    session.checkAlive();
    if (state.dropped) throw disposedError('instance');
    if (state.generation !== session.connection.generation) throw lostInstance();
    if (state.call !== undefined) throw new SandboxError('BUSY', 'a call is already running on this instance');
    const checked = checkedCall(exportName, args, options, session.timeoutMs);
    const result = await callOn(
      state,
      exportName,
      checked.values,
      checked.options,
      wasiCallOf(state.wasi),
      checked.input,
    );
    return checked.input === undefined ? result : dataResult(result);
  }

  /**
   * The preopens' trees of a WASI instance (`instantiateWasi`) as they are now.
   *
   * @throws `BUSY` during a call, `DISPOSED`; TypeError for an instance made without WASI.
   */
  async files(): Promise<WasiFiles> {
    const state = stateOf(this);
    const session = state.session;
    session.checkAlive();
    if (state.dropped) throw disposedError('instance');
    if (state.generation !== session.connection.generation) throw lostInstance();
    if (state.wasi === undefined) throw invalidArgument('files() needs an instance made by instantiateWasi');
    if (state.call !== undefined) throw new SandboxError('BUSY', 'a call is running on this instance');
    return (await session.send({ type: 'wasiFiles', instanceId: state.instanceId })).files as WasiFiles;
  }

  /** Drops the instance in the worker; a call in flight is cancelled. Later calls: `DISPOSED`. */
  protected override release(): void {
    dropInstance(stateOf(this));
  }
}

/** Drops an instance in its worker (a call in flight is cancelled); once. */
function dropInstance(state: InstanceState): void {
  if (state.dropped) return;
  state.dropped = true;
  const { session } = state;
  if (session.disposed || state.generation !== session.connection.generation) return;
  const call = state.call;
  if (call !== undefined) {
    call.fatal = disposedError('instance', 'the call');
    call.abort.abort(call.fatal);
    for (const [id, c] of session.calls) {
      if (c === call) void session.send({ type: 'cancel', callId: id }).catch(() => undefined);
    }
  }
  session.dropped(state.instanceId);
  void session.send({ type: 'dropInstance', instanceId: state.instanceId }).catch(() => undefined);
}

function stateOf(instance: SandboxInstance): InstanceState {
  const state = instanceStates.get(instance);
  if (state === undefined) throw invalidArgument('not a SandboxInstance');
  return state;
}

/**
 * Runs one call of `state` in the worker, as the page tracks it (checked options). With `go`,
 * a Go guest's run (`main`, the exported function `exportName`, or its due timers): its reply
 * must be a Go call's (no results; a result only for an export; `exports` and the next timer),
 * its capability calls go to `Session.#goHost` and its output notices to `go.output`.
 */
async function callOn(
  state: InstanceState,
  exportName: string,
  values: Value[],
  { signal, onProgress, core, timeoutMs }: CheckedCallOptions,
  wasi: WasiCall | undefined,
  input?: Uint8Array,
  go?: { phase: GoPhase; args: GoData[]; output: (stdout: Uint8Array, stderr: Uint8Array) => void },
): Promise<FinishedCall & { go?: GoFinished }> {
  const session = state.session;
  const call: PageCall = {
    instance: state,
    deadline: performance.now() + timeoutMs,
    timeoutMs,
    abort: new AbortController(),
    denials: 0,
    fatal: undefined,
    wasi,
    received: { stdout: 0, stderr: 0 },
    onProgress,
    lastProgress: undefined,
    ...(go === undefined
      ? {}
      : { go: { output: go.output, cap: Number(session.limits.maxOutputBytes ?? DEFAULT_LIMITS.maxOutputBytes) } }),
  };
  state.call = call;
  session.stats.calls++;
  const { connection } = session;
  // The reply must be what this export returns (or, for a WASI run, an exit code instead).
  const check = (value: ReplyMap['call']): string | undefined => {
    const traced = tracedProblem(value.trace, core.trace, exportName);
    if (traced !== undefined) return traced;
    if (go !== undefined) {
      if (value.go === undefined) return 'a reply to a Go call without its Go part';
      if (value.results.length > 0) return 'results for a Go call';
      if (value.output !== undefined || value.logs !== undefined) return 'data output or logs for a Go call';
      if (go.phase !== 'export' && value.go.result !== undefined) return `a result for a Go ${go.phase} run`;
      return undefined;
    }
    if (value.go !== undefined) return 'a Go part in the reply to a call that is not a Go call';
    if (value.exitCode !== undefined) {
      if (wasi === undefined) return 'an exit code for a call that is not a WASI run';
      return value.results.length === 0 ? undefined : 'results as well as an exit code';
    }
    const signature = state.exports.find((e) => e.name === exportName && e.kind === 'function');
    if (signature === undefined) return `results of ${exportName}, which the module does not export as a function`;
    return valuesMismatch(value.results, signature.results ?? [], 'results');
  };
  const { id, done } = connection.request(
    session.sandboxId,
    {
      type: 'call',
      instanceId: state.instanceId,
      exportName,
      args: values,
      options: core,
      ...(input === undefined ? {} : { input }),
      ...(onProgress === undefined ? {} : { progress: true }),
      ...(go === undefined ? {} : { go: { phase: go.phase, args: go.args } }),
    },
    timeoutMs + connection.graceMs,
    check,
  );
  session.calls.set(id, call);
  const onAbort = (): void => {
    call.abort.abort(new SandboxError('CANCELLED', 'call cancelled by the caller'));
    void connection.request(session.sandboxId, { type: 'cancel', callId: id }, Infinity);
    connection.escalate(id, connection.graceMs, 'CANCELLED');
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (wasi !== undefined) {
    wasi.end = (error) => {
      if (call.fatal !== undefined || call.abort.signal.aborted) return;
      call.fatal = error;
      call.abort.abort(error);
      void connection.request(session.sandboxId, { type: 'cancel', callId: id }, Infinity);
      connection.escalate(id, connection.graceMs, error.code);
    };
  }
  try {
    const outcome = await done;
    if (call.fatal !== undefined) {
      // The page ended the guest call from a host call (or a WASI run's stdin source or
      // output callback): its verdict stands, whatever the worker answered (fail closed),
      // with the worker's metrics.
      const metrics = outcome.ok ? outcome.value.metrics : outcome.error.details['metrics'];
      const fatal = recordOf(call.fatal);
      throw errorFromRecord(
        { ...fatal, details: { ...fatal.details, ...(metrics === undefined ? {} : { metrics }) } },
        { cause: call.fatal.cause, denials: call.denials },
      );
    }
    if (!outcome.ok) {
      const trace = outcome.error.details['trace'];
      const problem = trace === undefined ? undefined : tracedProblem(trace, core.trace, exportName);
      if (problem !== undefined) {
        // Fail closed: the error stands, the trace does not, and the worker is replaced.
        delete outcome.error.details['trace'];
        connection.violation(`call ${id}'s error: ${problem}`);
      }
      throw errorFromRecord(outcome.error, { denials: call.denials });
    }
    const finished: FinishedCall & { go?: GoFinished } = callResult(outcome.value, call.denials);
    if (outcome.value.go !== undefined) finished.go = outcome.value.go;
    return finished;
  } finally {
    state.call = undefined;
    session.calls.delete(id);
    signal?.removeEventListener('abort', onAbort);
    if (!call.abort.signal.aborted) call.abort.abort(new SandboxError('CANCELLED', 'the guest call ended'));
  }
}

/** One run of a Go guest in the worker (`main`, an exported function, or its due timers). */
async function goCallOn(
  state: InstanceState,
  phase: GoPhase,
  name: string,
  args: GoData[],
  options: GoCallOptions,
  output: (stdout: Uint8Array, stderr: Uint8Array) => void,
): Promise<GoRun> {
  if (state.call !== undefined) throw new SandboxError('BUSY', 'a call is already running on this instance');
  const checked = callOptions(
    {
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.fuel === undefined ? {} : { fuel: options.fuel }),
    },
    state.session.timeoutMs,
  );
  if (checked.signal?.aborted === true) {
    throw new SandboxError('CANCELLED', 'the signal was already aborted; the call did not start');
  }
  const finished = await callOn(state, name, [], checked, undefined, undefined, { phase, args, output });
  const go = finished.go as GoFinished; // the reply's check requires it
  return {
    result: go.result,
    metrics: finished.metrics,
    exports: go.exports,
    ...(finished.exitCode === undefined ? {} : { exitCode: finished.exitCode }),
    ...(go.nextTimerMs === undefined ? {} : { nextTimerMs: go.nextTimerMs }),
  };
}

/**
 * What is wrong with the trace a worker sent for a call of `exportName` that asked for
 * `maxSpans` spans (or for none: `undefined`); `undefined` when it is what was asked for.
 */
function tracedProblem(trace: unknown, maxSpans: number | undefined, exportName: string): string | undefined {
  if (maxSpans === undefined) return trace === undefined ? undefined : 'a trace for a call that asked for none';
  if (trace === undefined) return 'no trace for a call that asked for one';
  const problem = traceProblem(trace, exportName, maxSpans);
  return problem === undefined ? undefined : `its trace: ${problem}`;
}

/** What the pool needs from a sandbox beyond the public API (`tenants.ts`; made by {@link controlOf}). */
export interface SandboxControl {
  callsInFlight(): number;
  /** Resolves once every audit entry of what the sandbox did so far reached the page (never rejects). */
  settled(): Promise<void>;
  /** Replaces the worker on purpose (its instances are gone; the log links the segments). */
  recycle(reason: string): void;
  /** `WebAssembly.Memory.buffer.byteLength` of nestbox's own instance in the worker. */
  workerMemoryBytes(): Promise<number>;
}

/**
 * The tenant pool's handle on a sandbox (`tenants.ts`); not exported from the package.
 *
 * @internal
 */
export function controlOf(sandbox: Sandbox): SandboxControl {
  const session = sessionOf(sandbox, 'sandbox');
  return {
    callsInFlight: () => session.calls.size,
    settled: () => session.auditSync(),
    recycle: (reason) => {
      if (session.disposed) return;
      if (!session.owned) throw invalidArgument('a sandbox in a shared worker cannot be recycled on its own');
      session.recycling = true;
      session.connection.restart(reason);
    },
    workerMemoryBytes: async () => (await session.send({ type: 'workerStats' })).wasmMemoryBytes,
  };
}
