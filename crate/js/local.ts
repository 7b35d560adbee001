/**
 * `nestbox/worker`: the sandbox API for code that already runs in a worker of its own.
 *
 * {@link createLocalSandbox} runs the core right in the current thread: no second worker,
 * no message passing. Host functions are called directly; a {@link syncCapability} gets a
 * synchronous memory view ({@link SyncGuestMemory}), while a {@link capability} from the
 * main entry still gets the promise-based one, so the same token works in both kinds of
 * sandbox. The call loop still yields to the event loop between fuel slices, so an
 * `AbortSignal` aborted by this thread's own message handler stops even an infinite loop.
 *
 * What a local sandbox cannot do is terminate itself: a host function that never settles
 * is abandoned at the call's deadline (`TIMEOUT`), but a thread stuck in synchronous code
 * can only be ended by whoever created the worker.
 *
 * @module
 */

import { GoInstance, goPlan, runGoCapability, type GoBackend } from './gojs.js';
import init, {
  Core,
  type CoreAuditRecord,
  type CoreCallOptions,
  type CoreExport,
  type CoreImport,
  type CoreLimits,
  type CoreModule,
  type InitInput,
} from './nestbox.js';
import { AuditTrail, listenForRevokes, sandboxAudit, type AuditEntry, type SandboxAudit } from './audit.js';
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
import {
  CapabilityTable,
  entryOf,
  makeCapability,
  type CapabilityDeclaration,
  type CapabilityToken,
  type Link,
  type SyncHostFunction,
} from './capability.js';
import {
  coreRecordOf,
  errorFromRecord,
  invalidArgument,
  recordOf,
  SandboxError,
  withDenials,
  type AnySandboxError,
  type ErrorRecord,
} from './errors.js';
import {
  drive,
  driveGo,
  sleepFor,
  type GoHostStep,
  type HostOutcome,
  type StdinOutcome,
  type WasiControl,
} from './driver.js';
import { dispatchHost, type HostVerdict } from './host.js';
import { DirectHost, type DirectGuard } from './direct.js';
import { coreWasm, report } from './platform.js';
import { AsyncMemoryView, SyncMemoryView, type MemoryAccess, type SyncGuestMemory } from './memory.js';
import { coreLimits, onlyFields, timeoutOf, type CheckedCallOptions } from './options.js';
import { corePolicy, fetchModule, loadOptionsOf, provenanceOf, type TrustPolicy } from './policy.js';
import { disposedError, Resource } from './resource.js';
import type { WasiPlan } from './wasi.js';
import type {
  CallOptions,
  CallResult,
  DataCallResult,
  DataInput,
  GoData,
  GoInstantiateOptions,
  InstantiateOptions,
  LoadOptions,
  ModuleInfo,
  ModuleSourceLike,
  SandboxLimits,
  Value,
  ValueType,
  WasiFiles,
  WasiResult,
  WasiRunOptions,
} from './types.js';

export { capability, revoke, isRevoked } from './capability.js';
export { goCapability, revokeGoCapability, GoInstance } from './gojs.js';
export type {
  GoCapability,
  GoData,
  GoHostFunction,
  GoInstantiateOptions,
  GoCallOptions,
  GoCallResult,
} from './gojs.js';
export type {
  ArgsOf,
  CapabilityDeclaration,
  CapabilityQuota,
  JsValueOf,
  ResultOf,
  CapabilityToken,
  HostFunction,
  HostResult,
  ImportsObject,
  SyncHostFunction,
} from './capability.js';
export { SandboxError, SandboxTypeError, ERROR_CODES } from './errors.js';
export type { ErrorCode, ErrorDetails } from './errors.js';
export type { GuestMemory, SyncGuestMemory } from './memory.js';
export { verifyAuditLog } from './audit.js';
export { spansOf, childSpans, spanAttribute } from './trace.js';
export type { Trace, Span, SpanAttribute } from './trace.js';
export type { AuditEntry, AuditEvent, AuditVerifyResult, SandboxAudit } from './audit.js';
export type { TrustPolicy } from './policy.js';
export type {
  CallOptions,
  CallResult,
  DataCallResult,
  DataInput,
  LogLine,
  InstantiateOptions,
  LoadOptions,
  Metrics,
  ModuleInfo,
  ModuleSourceLike,
  SandboxLimits,
  Value,
  ValueType,
  WasiFileEntry,
  WasiFiles,
  WasiLimits,
  WasiPreopen,
  WasiResult,
  WasiRunOptions,
  WasiTree,
} from './types.js';

/**
 * Makes a synchronous capability for local sandboxes: `fn` gets a {@link SyncGuestMemory}
 * and its arguments and returns its results directly (it may still return a promise).
 * Granting it to a page sandbox is a TypeError.
 */
export function syncCapability<const P extends readonly ValueType[], const R extends readonly ValueType[]>(
  fn: SyncHostFunction<P, R>,
  decl: CapabilityDeclaration<P, R>,
): CapabilityToken {
  // The declaration types the function's arguments; the table checks them at run time.
  return makeCapability('sync', fn as unknown as Parameters<typeof makeCapability>[1], decl);
}

/** Options of {@link createLocalSandbox}. */
export interface LocalSandboxOptions {
  /** Limits enforced by the core on every instance. */
  limits?: SandboxLimits;
  /**
   * Where to get nestbox's own wasm, as wasm-bindgen's `init` takes it (a URL, a `Response`,
   * bytes or a `WebAssembly.Module`). Default: `nestbox_bg.wasm` next to `nestbox.js`. Only
   * the first local sandbox of a thread loads it. In Node a `file:` URL (and the default) is
   * read with `fs`.
   */
  wasm?: InitInput;
  /** Which code may load, as `createSandbox`'s `policy`. */
  policy?: TrustPolicy;
  /**
   * Called with each audit entry, in order, before the operation that caused it settles (as
   * `createSandbox`'s `onAudit`). A listener that throws is reported (`reportError`;
   * `console.error` in Node) and ignored.
   */
  onAudit?: (entry: AuditEntry) => void;
}

let initialised: Promise<unknown> | undefined;

/** Counters of a local sandbox. */
export interface LocalSandboxStats {
  /** Calls started. */
  readonly calls: number;
  /** Denials of the capability layer. */
  readonly denials: number;
}

/** The core's thrown record as an error; a non-record means the core itself failed. */
function coreError(thrown: unknown, context: { cause?: unknown; denials?: number } = {}): AnySandboxError {
  const record = coreRecordOf(thrown);
  if (record !== undefined) return errorFromRecord(record, context);
  return new SandboxError(
    'WORKER_CRASHED',
    `the nestbox core crashed: ${String(thrown)}; create a new sandbox`,
    {},
    { cause: thrown },
  );
}

/**
 * Creates a sandbox whose core runs in this thread (meant for a worker; on the main thread
 * a long slice would block the page).
 *
 * @throws TypeError (`INVALID_ARGUMENT`) for bad options or limits; `WORKER_CRASHED` when
 *   nestbox's own wasm cannot be loaded in this thread (the loader's error is `cause`).
 */
export async function createLocalSandbox(options: LocalSandboxOptions = {}): Promise<LocalSandbox> {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  onlyFields(options as Record<string, unknown>, ['limits', 'wasm', 'policy', 'onAudit'], 'createLocalSandbox options');
  const policy = corePolicy(options.policy);
  const limits = coreLimits(options.limits);
  const onAudit = options.onAudit;
  if (onAudit !== undefined && typeof onAudit !== 'function') throw invalidArgument('onAudit must be a function');
  // Once per thread; a failed load is tried again by the next sandbox.
  // In Node, nestbox_bg.wasm (or a `file:` URL given as `wasm`) is read with `fs`.
  initialised ??= init(coreWasm(options.wasm)).catch((error: unknown) => {
    initialised = undefined;
    throw error;
  });
  try {
    await initialised;
  } catch (error) {
    throw new SandboxError(
      'WORKER_CRASHED',
      `nestbox's own wasm could not be loaded in this thread: ${String(error)}`,
      { reason: String(error) },
      { cause: error },
    );
  }
  let core: Core;
  try {
    core = new Core(limits, policy);
  } catch (thrown) {
    throw coreError(thrown);
  }
  return new LocalSandbox(core, limits, onAudit);
}

/** The private state of a local module. */
interface LocalModuleState {
  readonly sandbox: LocalSandbox;
  readonly moduleId: number;
  dropped: boolean;
}

interface LocalInstanceState {
  readonly sandbox: LocalSandbox;
  readonly instanceId: number;
  readonly links: readonly Link[];
  /** Fuel its start function consumed while it was instantiated. */
  readonly startFuel: number;
  busy: boolean;
  dropped: boolean;
  /** A persistent WASI instance (`instantiateWasi`): where its output streams. */
  wasi?: WasiPlan;
  /** A data guest's HTTP capability (`instantiate`'s `http`). */
  http?: HttpHandler;
  /** Answers its synchronous capabilities from inside its calls (see direct.ts). */
  direct?: DirectHost;
  /** Disposed by a synchronous capability during its own call: dropped when the call ends. */
  dropAtEnd?: () => void;
}

const localModules = new WeakMap<LocalModule, LocalModuleState>();
const localInstances = new WeakMap<LocalInstance, LocalInstanceState>();
/** The private state of a local sandbox. */
interface LocalState {
  readonly core: Core;
  readonly timeoutMs: number;
  readonly table: CapabilityTable;
  readonly lifetime: AbortController;
  readonly stats: { calls: number; denials: number };
  /** The log as this side holds it: what the core recorded, pulled after every operation. */
  readonly audit: AuditTrail;
  /** How many of the core's entries are in {@link audit}. */
  auditSent: number;
  /** Stops recording revocations (on dispose). */
  readonly stopRevokes: () => void;
  /** The core threw something that is not an error record: it must not be used again. */
  broken: boolean;
  /** Calls in flight; the core is freed after dispose once this is 0. */
  running: number;
  /** The core was freed. */
  freed: boolean;
  /** Synchronous capabilities running inside the core: the sandbox is not usable then. */
  readonly guard: DirectGuard;
  /** What waits until the core is out of the guest's call (disposals, audit records). */
  readonly deferred: (() => void)[];
}

const localCores = new WeakMap<LocalSandbox, LocalState>();

function inner(sandbox: LocalSandbox): LocalState {
  const state = localCores.get(sandbox);
  if (state === undefined) throw invalidArgument('not a LocalSandbox');
  if (state.guard.inside > 0) {
    throw new SandboxError(
      'BUSY',
      'a synchronous capability cannot use its own sandbox while the guest is calling it (grant an async capability() for that)',
    );
  }
  if (state.lifetime.signal.aborted) throw disposedError('sandbox');
  if (state.broken) throw new SandboxError('WORKER_CRASHED', 'the nestbox core crashed earlier; create a new sandbox');
  return state;
}

/**
 * Moves the core's new audit entries into the sandbox's log (and to `onAudit`). Entries that
 * do not continue the chain mean the core is broken: it is not used again.
 */
function flushAudit(state: LocalState): void {
  if (state.freed || state.broken || state.guard.inside > 0) return;
  let entries: unknown[];
  try {
    entries = state.core.auditSince(state.auditSent);
  } catch {
    return; // nothing new can be read: the next operation reports the core's state
  }
  if (entries.length === 0) return;
  state.auditSent += entries.length;
  const problem = state.audit.receive(entries);
  if (problem !== undefined) {
    state.broken = true;
    report(new SandboxError('WORKER_CRASHED', `the nestbox core's audit log is inconsistent: ${problem}`));
  }
}

/** Appends this side's own event to the core's log (not once the sandbox is gone). */
function auditRecord(state: LocalState, record: CoreAuditRecord): void {
  if (state.guard.inside > 0) {
    state.deferred.push(() => auditRecord(state, record));
    return;
  }
  if (state.lifetime.signal.aborted || state.broken) return;
  try {
    state.core.auditRecord(record);
  } catch (thrown) {
    report(coreError(thrown));
  }
  flushAudit(state);
}

/** A revoked capability was granted: a denial, logged with its code (the core never sees it). */
function refusedGrant(state: LocalState, error: SandboxError): void {
  state.stats.denials++;
  const { capability, import: name, capabilityName } = error.details;
  auditRecord(state, {
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

/** Runs what waited for the core to be out of the guest's call (in order). */
function runDeferred(state: LocalState): void {
  if (state.guard.inside > 0) return;
  for (let job = state.deferred.shift(); job !== undefined; job = state.deferred.shift()) job();
}

/** `f` now, or once the core is out of the guest's call when a synchronous capability runs. */
function outside(sandbox: LocalSandbox, f: () => void): void {
  const state = localCores.get(sandbox);
  if (state !== undefined && state.guard.inside > 0) state.deferred.push(f);
  else f();
}

/**
 * The direct host of a new instance whose links include synchronous capabilities (installed
 * in the core), or `undefined`.
 */
function directHostOf(state: LocalState, instanceId: number, links: readonly Link[]): DirectHost | undefined {
  if (!links.some((l) => isSync(l))) return undefined;
  let host: DirectHost;
  try {
    host = new DirectHost((h) => state.core.setDirectHost(instanceId, h), links, state.guard);
  } catch (thrown) {
    throw coreError(thrown);
  }
  return host.used ? host : undefined;
}

/** {@link directHostOf}, dropping the new instance when it cannot be installed. */
function withDirectHost(state: LocalState, instanceId: number, links: readonly Link[]): DirectHost | undefined {
  try {
    return directHostOf(state, instanceId, links);
  } catch (error) {
    try {
      state.core.dropInstance(instanceId);
    } catch {
      // Already gone.
    }
    flushAudit(state);
    throw error;
  }
}

function isSync(link: Link): boolean {
  try {
    return entryOf(link.token).kind === 'sync';
  } catch {
    return false;
  }
}

/** Frees the core of a disposed sandbox once no call of it is running (its last entries kept). */
function freeIfIdle(state: LocalState): void {
  if (!state.lifetime.signal.aborted || state.running > 0 || state.freed || state.broken) return;
  flushAudit(state);
  state.freed = true;
  state.core.free();
}

/** A sandbox whose core runs in this thread; same shape as the page's `Sandbox`. */
export class LocalSandbox extends Resource {
  /** @internal Use {@link createLocalSandbox}. */
  constructor(core: Core, limits: CoreLimits, onAudit?: (entry: AuditEntry) => void) {
    super();
    const table = new CapabilityTable();
    const lifetime = new AbortController();
    let state: LocalState | undefined;
    const stopRevokes = listenForRevokes({
      revoked: (token, name) => {
        if (state === undefined) return;
        const id = table.granted(token);
        if (id === undefined) return;
        auditRecord(state, { event: 'revoke', outcome: 'ok', extra: { capability: String(id), capabilityName: name } });
      },
    });
    state = {
      core,
      timeoutMs: timeoutOf(limits),
      table,
      lifetime,
      stats: { calls: 0, denials: 0 },
      audit: new AuditTrail(onAudit),
      auditSent: 0,
      stopRevokes,
      broken: false,
      running: 0,
      freed: false,
      guard: { inside: 0 },
      deferred: [],
    };
    localCores.set(this, state);
    // What the core recorded when it was made (its policy).
    flushAudit(state);
  }

  /** False once disposed. */
  get alive(): boolean {
    const state = localCores.get(this);
    return state !== undefined && !state.lifetime.signal.aborted && !state.broken;
  }

  /** Lifetime counters. */
  get stats(): LocalSandboxStats {
    const state = localCores.get(this);
    return { calls: state?.stats.calls ?? 0, denials: state?.stats.denials ?? 0 };
  }

  /**
   * The sandbox's audit log, as the page sandbox's (`entries()`, `head()`, `toJSONL()`,
   * `verify(head?)`): the core's entries, read from it directly. Still readable after `dispose()`.
   */
  get audit(): SandboxAudit {
    const state = localCores.get(this);
    if (state === undefined) throw invalidArgument('not a LocalSandbox');
    return sandboxAudit(state.audit, async () => flushAudit(state));
  }

  /** As the page's `Sandbox.load`. */
  async load(source: ModuleSourceLike, options: LoadOptions): Promise<LocalModule> {
    inner(this);
    const { integrity, signature, origin, engine } = loadOptionsOf(options);
    if (engine === 'native') {
      throw invalidArgument(
        "engine 'native' runs in a page sandbox (createSandbox), not in nestbox/worker's local sandbox, which interprets",
        { engine: 'native' },
      );
    }
    const { bytes, origin: fetched } = await fetchModule(source);
    const provenance = provenanceOf(origin, fetched, signature);
    const state = inner(this);
    let record: CoreModule;
    try {
      record = state.core.load(bytes, integrity, provenance);
    } catch (thrown) {
      throw coreError(thrown);
    } finally {
      flushAudit(state);
    }
    const module = new LocalModule(
      record.digest,
      record.sizeBytes,
      Object.freeze(record.imports),
      Object.freeze(record.exports),
    );
    localModules.set(module, { sandbox: this, moduleId: record.moduleId, dropped: false });
    return module;
  }

  /** As the page's `Sandbox.instantiate`; synchronous capabilities may be granted too. */
  async instantiate(module: LocalModule, options: InstantiateOptions = {}): Promise<LocalInstance> {
    const state = inner(this);
    const m = ownModule(
      module instanceof LocalModule ? localModules.get(module) : undefined,
      (s) => s.sandbox === this,
    );
    const imports = instantiateImports(options);
    const http = httpHandlerOf(options);
    const linked = linkImports(state.table, imports, true, (error) => refusedGrant(state, error));
    let instanceId: number;
    let startFuel: number;
    try {
      const data = instantiateData(options);
      instanceId =
        data === undefined
          ? state.core.instantiate(m.moduleId, linked.grants)
          : state.core.instantiateWithData(m.moduleId, linked.grants, data);
      startFuel = state.core.startFuel(instanceId);
    } catch (thrown) {
      throw coreError(thrown);
    } finally {
      flushAudit(state);
    }
    const direct = withDirectHost(state, instanceId, linked.links);
    const instance = new LocalInstance(module, startFuel);
    localInstances.set(instance, {
      sandbox: this,
      instanceId,
      links: linked.links,
      startFuel,
      busy: false,
      dropped: false,
      ...(http === undefined ? {} : { http }),
      ...(direct === undefined ? {} : { direct }),
    });
    return instance;
  }

  /**
   * A Go `js/wasm` guest (`GOOS=js GOARCH=wasm`) in this thread: its `js.Global()` holds only
   * `options.globals` (data copied in, {@link goCapability} tokens) besides the membrane's
   * runtime shims; `main` runs before this resolves, then `callGo` calls what it registered.
   */
  async instantiateGo(module: LocalModule, options: GoInstantiateOptions = {}): Promise<GoInstance> {
    const state = inner(this);
    const m = ownModule(
      module instanceof LocalModule ? localModules.get(module) : undefined,
      (s) => s.sandbox === this,
    );
    const { tokens, config, defaults, hooks } = goPlan(options, state.timeoutMs);
    let instanceId: number;
    try {
      instanceId = state.core.instantiateGo(m.moduleId, config);
    } catch (thrown) {
      throw coreError(thrown);
    } finally {
      flushAudit(state);
    }
    const core = state.core;
    const id = instanceId;
    const backend: GoBackend = {
      run: async (phase, name, args, options, output) => {
        const signal = options.signal;
        const coreOptions: CoreCallOptions = {};
        if (options.timeoutMs !== undefined) coreOptions.timeoutMs = options.timeoutMs;
        if (options.fuel !== undefined) coreOptions.fuel = options.fuel;
        const abort = new AbortController();
        const onAbort = (): void => abort.abort(new SandboxError('CANCELLED', 'call cancelled by the caller'));
        if (signal?.aborted === true) onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        const onDispose = (): void => abort.abort(disposedError('sandbox'));
        state.lifetime.signal.addEventListener('abort', onDispose, { once: true });
        let denials = 0;
        let fatal: AnySandboxError | undefined;
        state.stats.calls++;
        state.running++;
        try {
          const finished = await driveGo(
            core,
            id,
            {
              cancelled: () => abort.signal.aborted,
              host: async (step): Promise<HostOutcome> => {
                const goArgs = (step as GoHostStep).goArgs ?? [];
                const verdict = await runGoCapability(tokens, step.capability, step.import, goArgs, () => {
                  denials++;
                  state.stats.denials++;
                });
                if (abort.signal.aborted) return { kind: 'cancel' };
                if (verdict.ok) return { kind: 'go', value: verdict.value };
                fatal = verdict.error;
                return { kind: 'fail', error: recordOf(verdict.error) };
              },
              wasi: {
                sleep: (ms) =>
                  sleepFor(ms, (wake) => {
                    abort.signal.addEventListener('abort', wake, { once: true });
                    if (abort.signal.aborted) wake();
                  }),
                // A Go guest never waits for stdin (its `fs.read` is ENOSYS).
                stdin: async () => ({ kind: 'data', bytes: new Uint8Array(0), eof: true }),
                output,
              },
            },
            () =>
              phase === 'main'
                ? core.startGoMain(id, coreOptions)
                : phase === 'export'
                  ? core.startGoExport(id, name, args, coreOptions)
                  : core.startGoTimers(id, coreOptions),
          );
          const next = core.goNextTimerMs(id);
          return {
            result: (finished as { goResult?: GoData }).goResult,
            metrics: withDenials({ ...finished.metrics }, denials),
            exports: core.goExports(id),
            ...(finished.exitCode === undefined ? {} : { exitCode: finished.exitCode }),
            ...(next === undefined ? {} : { nextTimerMs: next }),
          };
        } catch (thrown) {
          const record = coreRecordOf(thrown);
          if (record === undefined) {
            state.broken = true;
            throw coreError(thrown);
          }
          if (state.lifetime.signal.aborted) {
            throw errorFromRecord(
              { ...record, code: 'DISPOSED', message: 'the sandbox was disposed during the call' },
              { denials },
            );
          }
          throw errorFromRecord(record, { cause: fatal?.cause, denials });
        } finally {
          state.running--;
          signal?.removeEventListener('abort', onAbort);
          state.lifetime.signal.removeEventListener('abort', onDispose);
          flushAudit(state);
          freeIfIdle(state);
        }
      },
      gone: () => (state.lifetime.signal.aborted ? disposedError('sandbox') : undefined),
      release: () =>
        outside(this, () => {
          if (state.lifetime.signal.aborted) return;
          try {
            core.dropInstance(id);
          } catch {
            // Already gone.
          }
          flushAudit(state);
        }),
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

  /** As the page's `Sandbox.instantiateWasi`, in this thread. */
  async instantiateWasi(module: LocalModule, options: WasiRunOptions = {}): Promise<LocalInstance> {
    const state = inner(this);
    const m = ownModule(
      module instanceof LocalModule ? localModules.get(module) : undefined,
      (s) => s.sandbox === this,
    );
    const plan = persistentWasiPlan(options, state.timeoutMs);
    const linked = linkImports(state.table, plan.imports, true, (error) => refusedGrant(state, error));
    let instanceId: number;
    let startFuel: number;
    try {
      instanceId = state.core.instantiateWasi(m.moduleId, { ...plan.config, grants: linked.grants });
      startFuel = state.core.startFuel(instanceId);
    } catch (thrown) {
      throw coreError(thrown);
    } finally {
      flushAudit(state);
    }
    const direct = withDirectHost(state, instanceId, linked.links);
    const instance = new LocalInstance(module, startFuel);
    const instanceState: LocalInstanceState = {
      sandbox: this,
      instanceId,
      links: linked.links,
      startFuel,
      busy: false,
      dropped: false,
      wasi: plan,
      ...(direct === undefined ? {} : { direct }),
    };
    localInstances.set(instance, instanceState);
    if (isReactor(module.exports)) {
      try {
        await localCall(state, instanceState, '_initialize', [], plan.call, wasiCallOf(plan));
      } catch (error) {
        instance.dispose();
        throw error;
      }
    }
    return instance;
  }

  /**
   * As the page's `Sandbox.runWasi`, in this thread: sleeps are timers here, the async
   * stdin source is read directly, output callbacks are called between steps.
   */
  async runWasi(module: LocalModule, options: WasiRunOptions = {}): Promise<WasiResult> {
    const state = inner(this);
    const m = ownModule(
      module instanceof LocalModule ? localModules.get(module) : undefined,
      (s) => s.sandbox === this,
    );
    return runWasiWith<LocalInstanceState>(options, state.timeoutMs, {
      instantiate: async (plan) => {
        const linked = linkImports(state.table, plan.imports, true, (error) => refusedGrant(state, error));
        let instanceId: number;
        let startFuel: number;
        try {
          instanceId = state.core.instantiateWasi(m.moduleId, { ...plan.config, grants: linked.grants });
          startFuel = state.core.startFuel(instanceId);
        } catch (thrown) {
          throw coreError(thrown);
        } finally {
          flushAudit(state);
        }
        const direct = withDirectHost(state, instanceId, linked.links);
        return {
          sandbox: this,
          instanceId,
          links: linked.links,
          startFuel,
          busy: false,
          dropped: false,
          ...(direct === undefined ? {} : { direct }),
        };
      },
      start: (instance, plan, wasi) => localCall(state, instance, '_start', [], plan.call, wasi),
      startFuel: (instance) => instance.startFuel,
      files: async (instance) => {
        try {
          return inner(this).core.wasiFiles(instance.instanceId);
        } catch (thrown) {
          throw coreError(thrown);
        }
      },
      drop: (instance) => {
        instance.dropped = true;
        outside(this, () => {
          if (state.lifetime.signal.aborted || state.broken) return;
          try {
            state.core.dropInstance(instance.instanceId);
          } catch {
            // Already gone.
          }
          flushAudit(state);
        });
      },
    });
  }

  /** Frees the core (after its last audit entries were read); later calls throw `DISPOSED`, calls in flight end with `DISPOSED`. */
  protected override release(): void {
    const state = localCores.get(this);
    if (state === undefined || state.lifetime.signal.aborted) return;
    state.stopRevokes();
    state.lifetime.abort(disposedError('sandbox'));
    // Calls in flight see the abort at their next slice and end; the core is freed after.
    freeIfIdle(state);
  }
}

/** A verified, validated module of a local sandbox. */
export class LocalModule extends Resource implements ModuleInfo {
  /** @internal Made by {@link LocalSandbox.load}. */
  constructor(
    /** {@inheritDoc ModuleInfo.digest} */ readonly digest: string,
    /** {@inheritDoc ModuleInfo.sizeBytes} */ readonly sizeBytes: number,
    /** {@inheritDoc ModuleInfo.imports} */ readonly imports: readonly CoreImport[],
    /** {@inheritDoc ModuleInfo.exports} */ readonly exports: readonly CoreExport[],
  ) {
    super();
  }

  /** False once disposed (or its sandbox was). */
  get alive(): boolean {
    const m = localModules.get(this);
    return m !== undefined && !m.dropped && m.sandbox.alive;
  }

  /** Forgets the module; instances made from it keep working. */
  protected override release(): void {
    const m = localModules.get(this);
    if (m === undefined || m.dropped) return;
    m.dropped = true;
    outside(m.sandbox, () => {
      let state: LocalState;
      try {
        state = inner(m.sandbox);
      } catch {
        return; // the sandbox is gone already
      }
      try {
        state.core.dropModule(m.moduleId);
      } catch {
        // Already gone.
      }
      flushAudit(state);
    });
  }
}

/** An instance in a local sandbox; same shape as the page's `SandboxInstance`. */
export class LocalInstance extends Resource {
  /** @internal Made by {@link LocalSandbox.instantiate}. */
  constructor(
    /** The module it was made from. */ readonly module: LocalModule,
    /** As the page's `SandboxInstance.startFuel`: what the start function consumed. */ readonly startFuel: number,
  ) {
    super();
  }

  /** False once disposed or after its sandbox was. */
  get alive(): boolean {
    const state = localInstances.get(this);
    return state !== undefined && !state.dropped && state.sandbox.alive;
  }

  /** Whether a call is running. */
  get busy(): boolean {
    return instanceOf(this).busy;
  }

  /** The embedder's own synchronous view of the memory, between calls (`BUSY` during one). */
  get memory(): SyncGuestMemory {
    const state = instanceOf(this);
    const { core, lifetime } = inner(state.sandbox);
    const access = syncAccess(core, state);
    const idle = (): void => {
      if (state.busy) throw new SandboxError('BUSY', 'a call is running on this instance');
    };
    return new SyncMemoryView(
      {
        read: (ptr, len) => (idle(), access.read(ptr, len)),
        write: (ptr, bytes) => (idle(), access.write(ptr, bytes)),
        size: () => (idle(), access.size()),
      },
      { entry: undefined, deny: () => undefined, signal: lifetime.signal, details: {} },
    );
  }

  /** As the page's `SandboxInstance.call` (a data call with an `input` instead of `args`). */
  async call(exportName: string, args?: readonly Value[], options?: CallOptions): Promise<CallResult>;
  async call(exportName: string, input: DataInput, options?: CallOptions): Promise<DataCallResult>;
  async call(
    exportName: string,
    args: readonly Value[] | DataInput = [],
    options?: CallOptions,
  ): Promise<CallResult | DataCallResult> {
    const state = instanceOf(this);
    const sandbox = inner(state.sandbox);
    if (state.dropped) throw disposedError('instance');
    if (state.busy) throw new SandboxError('BUSY', 'a call is already running on this instance');
    const checked = checkedCall(exportName, args, options, sandbox.timeoutMs);
    const result = await localCall(
      sandbox,
      state,
      exportName,
      checked.values,
      checked.options,
      wasiCallOf(state.wasi),
      checked.input,
    );
    return checked.input === undefined ? result : dataResult(result);
  }

  /** As the page's `SandboxInstance.files`. */
  async files(): Promise<WasiFiles> {
    const state = instanceOf(this);
    const sandbox = inner(state.sandbox);
    if (state.dropped) throw disposedError('instance');
    if (state.wasi === undefined) throw invalidArgument('files() needs an instance made by instantiateWasi');
    if (state.busy) throw new SandboxError('BUSY', 'a call is running on this instance');
    try {
      return sandbox.core.wasiFiles(state.instanceId) as WasiFiles;
    } catch (thrown) {
      throw coreError(thrown);
    }
  }

  /** Drops the instance; a call in flight is cancelled. Later calls: `DISPOSED`. */
  protected override release(): void {
    const state = localInstances.get(this);
    if (state === undefined || state.dropped) return;
    state.dropped = true;
    const drop = (): void => {
      let sandbox: LocalState;
      try {
        sandbox = inner(state.sandbox);
      } catch {
        return; // the sandbox is gone already
      }
      try {
        sandbox.core.dropInstance(state.instanceId);
      } catch {
        // Already gone.
      }
      flushAudit(sandbox);
    };
    // From a synchronous capability: once the core is out of the guest's call — and when it
    // is this instance's own call, once that call ended (with DISPOSED).
    const sandboxState = localCores.get(state.sandbox);
    if (sandboxState !== undefined && sandboxState.guard.inside > 0 && state.busy) state.dropAtEnd = drop;
    else outside(state.sandbox, drop);
  }
}

function instanceOf(instance: LocalInstance): LocalInstanceState {
  const state = localInstances.get(instance);
  if (state === undefined) throw invalidArgument('not a LocalInstance');
  return state;
}

/** Direct, checked access to one instance's memory, errors converted. */
function syncAccess(core: Core, state: LocalInstanceState): MemoryAccess<Uint8Array, void> {
  const guard = <T>(f: () => T): T => {
    inner(state.sandbox); // DISPOSED once the sandbox is (its core may be freed)
    if (state.dropped) throw disposedError('instance');
    try {
      return f();
    } catch (thrown) {
      throw coreError(thrown);
    }
  };
  return {
    read: (ptr, len) => guard(() => core.memoryRead(state.instanceId, ptr, len)),
    write: (ptr, bytes) => guard(() => core.memoryWrite(state.instanceId, ptr, bytes)),
    size: () => guard(() => core.memorySize(state.instanceId)),
  };
}

/** Runs one call of `state` in this thread's core (checked options). */
async function localCall(
  sandbox: LocalState,
  state: LocalInstanceState,
  exportName: string,
  values: Value[],
  { signal, onProgress, core: coreOptions, timeoutMs }: CheckedCallOptions,
  wasi: WasiCall | undefined,
  input?: Uint8Array,
): Promise<FinishedCall> {
  const { core } = sandbox;
  const progress =
    onProgress &&
    ((): void => {
      const metrics = core.progress(state.instanceId);
      if (metrics !== undefined) reportProgress(onProgress, progressSample(metrics, core.memorySize(state.instanceId)));
    });
  const abort = new AbortController();
  const onAbort = (): void => abort.abort(new SandboxError('CANCELLED', 'call cancelled by the caller'));
  signal?.addEventListener('abort', onAbort, { once: true });
  const onDispose = (): void => abort.abort(disposedError('sandbox'));
  sandbox.lifetime.signal.addEventListener('abort', onDispose, { once: true });
  const deadline = performance.now() + timeoutMs;
  let denials = 0;
  let fatal: AnySandboxError | undefined;
  const deny = (): void => {
    denials++;
    sandbox.stats.denials++;
  };
  const access = syncAccess(core, state);
  const asyncAccess: MemoryAccess<Promise<Uint8Array>, Promise<void>> = {
    read: async (ptr, len) => access.read(ptr, len),
    write: async (ptr, bytes) => access.write(ptr, bytes),
    size: async () => access.size(),
  };
  const control: WasiControl | undefined = wasi && {
    sleep: async (ms) => {
      let wake: (() => void) | undefined;
      try {
        return await sleepFor(ms, (w) => {
          wake = w;
          abort.signal.addEventListener('abort', w, { once: true });
          if (abort.signal.aborted) w();
        });
      } finally {
        if (wake !== undefined) abort.signal.removeEventListener('abort', wake);
      }
    },
    // A chunk longer than the guest's read is buffered by the core for its next reads.
    stdin: () => localStdin(wasi, abort, deadline, timeoutMs, (error) => (fatal = error)),
    output: (stdout, stderr) => wasi.output.push(stdout, stderr),
  };
  if (wasi !== undefined) {
    wasi.end = (error) => {
      if (fatal !== undefined || abort.signal.aborted) return;
      fatal = error;
      abort.abort(error);
    };
  }
  state.busy = true;
  sandbox.stats.calls++;
  sandbox.running++;
  state.direct?.begin({
    signal: abort.signal,
    deadline,
    timeoutMs,
    deny,
    stopped: () => state.dropped,
  });
  try {
    const finished = await drive(
      core,
      state.instanceId,
      exportName,
      values,
      coreOptions,
      {
        ...(control === undefined ? {} : { wasi: control }),
        ...(progress === undefined ? {} : { progress }),
        cancelled: () => abort.signal.aborted,
        host: async (step): Promise<HostOutcome> => {
          if (step.http !== undefined) {
            if (state.http === undefined || step.capability !== HTTP_CAPABILITY) {
              const error = new SandboxError(
                'CAPABILITY_REVOKED',
                'HTTP request for an instance without HTTP: refused',
                {
                  forged: true,
                },
              );
              deny();
              fatal = error;
              abort.abort(error);
              return { kind: 'fail', error: recordOf(error) };
            }
            const outcome = await runHttp(state.http, step.http, abort.signal, deadline, timeoutMs);
            if (outcome.kind === 'http') return abort.signal.aborted ? { kind: 'cancel' } : outcome;
            if (abort.signal.aborted && outcome.error.code !== 'TIMEOUT') return { kind: 'cancel' };
            fatal = outcome.error;
            abort.abort(outcome.error);
            return { kind: 'fail', error: recordOf(outcome.error) };
          }
          // Between steps the core is out of the guest's call: what waited for that runs now.
          runDeferred(sandbox);
          // A direct step whose function already ran: answered with its verdict, never run twice.
          const owed: HostVerdict | Promise<HostVerdict> | undefined =
            step.direct === true ? state.direct?.takeOwed() : undefined;
          const verdict =
            owed !== undefined
              ? await owed
              : await dispatchHost(step, {
                  links: state.links,
                  deny,
                  signal: abort.signal,
                  deadline,
                  timeoutMs,
                  view: (context, entry) => {
                    const view =
                      entry.kind === 'sync'
                        ? new SyncMemoryView(access, context)
                        : new AsyncMemoryView(asyncAccess, context);
                    return { view, close: () => view.close() };
                  },
                });
          switch (verdict.kind) {
            case 'results':
              return { kind: 'results', results: verdict.results };
            case 'fail':
              fatal = verdict.error;
              abort.abort(verdict.error);
              return { kind: 'fail', error: recordOf(verdict.error) };
            case 'cancelled':
              return { kind: 'cancel' };
          }
        },
      },
      input,
    );
    // An output callback threw during the last step: the run ends with its error.
    if (fatal !== undefined) throw { ...recordOf(fatal), details: { ...fatal.details, metrics: finished.metrics } };
    return callResult(finished, denials);
  } catch (thrown) {
    let record: ErrorRecord | undefined = coreRecordOf(thrown);
    if (record !== undefined && fatal !== undefined && record.code === 'CANCELLED') {
      // Ended by this side (an output callback threw): its verdict, with the core's metrics.
      record = { ...recordOf(fatal), details: { ...fatal.details, metrics: record.details['metrics'] } };
    }
    if (record === undefined) {
      sandbox.broken = true;
      throw coreError(thrown);
    }
    if (sandbox.lifetime.signal.aborted) {
      throw errorFromRecord(
        { ...record, code: 'DISPOSED', message: 'the sandbox was disposed during the call' },
        { denials },
      );
    }
    // The core's record carries the page's own verdict (code, message) for host failures.
    throw errorFromRecord(record, { cause: fatal?.cause, denials });
  } finally {
    state.direct?.end();
    state.busy = false;
    sandbox.running--;
    signal?.removeEventListener('abort', onAbort);
    sandbox.lifetime.signal.removeEventListener('abort', onDispose);
    runDeferred(sandbox);
    const drop = state.dropAtEnd;
    if (drop !== undefined) {
      delete state.dropAtEnd;
      drop();
    }
    flushAudit(sandbox);
    freeIfIdle(sandbox);
  }
}

/** The next chunk of a local WASI run's async stdin, racing the call's end and deadline. */
async function localStdin(
  wasi: WasiCall,
  abort: AbortController,
  deadline: number,
  timeoutMs: number,
  setFatal: (error: AnySandboxError) => void,
): Promise<StdinOutcome> {
  const reader = wasi.stdin;
  if (reader === undefined) return { kind: 'data', bytes: new Uint8Array(0), eof: true };
  const read = await readStdin(reader, abort.signal, deadline, timeoutMs);
  switch (read.kind) {
    case 'aborted':
      return { kind: 'cancel' };
    case 'data':
      return { kind: 'data', bytes: read.bytes, eof: read.eof };
    case 'fail':
      if (read.fatal) setFatal(read.error);
      return { kind: 'fail', error: recordOf(read.error) };
  }
}
