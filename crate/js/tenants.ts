/**
 * Tenants: {@link createTenantPool} gives each tenant its own sandbox (its own dedicated
 * worker, core and audit log) and enforces per-tenant quotas on top of the sandbox's limits:
 *
 * - live instances (`INSTANCE_LIMIT`),
 * - linear memory summed over the tenant's live instances (`MEMORY_LIMIT`; each call and WASI
 *   run is capped by the core at what the tenant has left, its quota minus the memory of its
 *   other live instances, so the core enforces it while the guest runs),
 * - fuel per time window (`FUEL_EXHAUSTED`): *reserve before running, settle after*. Each
 *   call and WASI run reserves its fuel budget from the window before it starts — its own
 *   budget (`fuel` option, else the sandbox's `limits.fuel`), cut to what the window has
 *   left besides the reservations of the calls in flight — so the core enforces it while the
 *   guest runs and concurrent calls share what is left instead of each getting all of it (a
 *   call that can get none is refused). When it settles, the fuel it consumed (its metrics) is
 *   charged and the rest of its reservation returned; a call ended without the core's measure
 *   (the watchdog's `TIMEOUT` or `WORKER_CRASHED`, a cancel that had to replace the worker,
 *   a disposal mid-call) is charged its whole reservation. A start function (which runs
 *   while instantiating, under the sandbox's whole `limits.fuel`: the core cannot suspend
 *   it, so it is not cut to the window) is charged what it consumed, and a tenant whose
 *   window is used up cannot instantiate,
 *
 * each error with `details.tenant`. `runWasi` is held to the same quotas: the run is a live
 * instance while it runs, its peak memory counts, its fuel is reserved from the window.
 *
 * Memory is reserved the same way: while a call or run is in flight, the memory cap the core
 * holds it at counts against the tenant's quota (its instance counts as holding that much),
 * so concurrent calls of different instances cannot each grow into the same free memory.
 *
 * The pool also recycles a tenant's worker — terminates it
 * and starts a fresh one, whose nestbox wasm memory starts small again (it never shrinks) —
 * after a number of runs or when that memory passes a threshold. Recycling waits until the
 * tenant has no call in flight and no live instance (an instance's state lives in its worker
 * and cannot move), so calls never fail because of it; `run()` (instantiate, call, dispose)
 * never pins the worker, and {@link TenantPool.recycle} forces it.
 *
 * @module
 */

import { disposedError, Resource } from './resource.js';
import type { CoreExport, CoreImport, CoreLimits } from './nestbox.js';
import type { SandboxAudit } from './audit.js';
import { DEFAULT_LIMITS } from './constants.js';
import { invalidArgument, SandboxError, type AnySandboxError, type ErrorDetails } from './errors.js';
import { coreLimits, onlyFields } from './options.js';
import type { GuestMemory } from './memory.js';
import {
  controlOf,
  createSandbox,
  type Sandbox,
  type SandboxInstance,
  type SandboxControl,
  type SandboxModule,
  type SandboxOptions,
} from './sandbox.js';
import type {
  CallOptions,
  CallResult,
  InstantiateOptions,
  LoadOptions,
  Metrics,
  ModuleSourceLike,
  SandboxLimits,
  Value,
  WasiResult,
  WasiRunOptions,
} from './types.js';

/** Options of {@link createTenantPool}; every quota is optional (absent: no quota). */
export interface TenantPoolOptions {
  /** Live instances one tenant may hold (`INSTANCE_LIMIT`). */
  maxLiveInstancesPerTenant?: number;
  /** Linear memory of one tenant's live instances together, in bytes (`MEMORY_LIMIT`). */
  maxMemoryBytesPerTenant?: number;
  /** Fuel one tenant may consume per window of `windowMs` (`FUEL_EXHAUSTED`, `details.retryAfterMs`). */
  fuelPerWindow?: { fuel: number; windowMs: number };
  /** Recycle a tenant's worker after this many calls. */
  recycleWorkerAfterRuns?: number;
  /** Recycle a tenant's worker when nestbox's own wasm memory in it is over this many bytes. */
  recycleWorkerAboveMemoryBytes?: number;
  /** Options of each tenant's sandbox (not `worker`: every tenant has its own). */
  sandboxOptions?: SandboxOptions;
}

/** A tenant's usage, as the pool counts it. */
export interface TenantStats {
  readonly tenant: string;
  readonly liveInstances: number;
  /** Linear memory of its live instances, in bytes (as of their last call). */
  readonly memoryBytes: number;
  /** Fuel consumed in the current window (charged when each call settles). */
  readonly fuelInWindow: number;
  /** Fuel reserved from the window by the calls and runs in flight. */
  readonly fuelReserved: number;
  /** Calls since its worker was last recycled. */
  readonly runsSinceRecycle: number;
  /** How many times the pool recycled its worker. */
  readonly recycles: number;
  /** nestbox's wasm memory in its worker at the last check (0 before any). */
  readonly workerMemoryBytes: number;
}

interface Quotas {
  /** The sandboxes' own fuel limit per call. */
  readonly sandboxFuel: number;
  readonly maxInstances: number;
  readonly maxMemoryBytes: number;
  readonly fuel: number;
  readonly windowMs: number;
  readonly recycleAfterRuns: number;
  readonly recycleAboveBytes: number;
}

interface LiveInstance {
  memoryBytes: number;
  /** The memory cap of its call (or run) in flight, reserved from the quota; 0 when idle. */
  reservedBytes: number;
}

/** Fuel a call or run holds from the window until it settles ({@link settleFuel}). */
interface FuelReservation {
  /** Its fuel budget, reserved from the window. */
  readonly fuel: number;
  /** Whether the window, not the caller or the sandbox, set that budget. */
  readonly capped: boolean;
  settled: boolean;
}

interface TenantState {
  readonly tenant: string;
  readonly quotas: Quotas;
  readonly sandbox: Sandbox;
  readonly control: SandboxControl;
  readonly live: Set<LiveInstance>;
  windowStart: number;
  fuelUsed: number;
  /** Fuel reserved by the calls and runs in flight (kept across windows until they settle). */
  fuelReserved: number;
  runs: number;
  recycles: number;
  workerMemoryBytes: number;
  pendingRecycle: string | undefined;
  /** Set while a recycle is under way: operations wait for it. */
  recycling: Promise<void> | undefined;
  /** Operations of the tenant (load, instantiate, call) in progress. */
  inFlight: number;
  disposed: boolean;
}

function limitOf(value: unknown, what: string): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(`${what} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

function quotaError(
  state: TenantState,
  code: 'INSTANCE_LIMIT' | 'MEMORY_LIMIT' | 'FUEL_EXHAUSTED',
  message: string,
  details: ErrorDetails,
  cause?: AnySandboxError,
): SandboxError {
  return new SandboxError(
    code,
    `tenant ${JSON.stringify(state.tenant)}: ${message}`,
    { ...(cause?.details ?? {}), ...details, tenant: state.tenant },
    cause === undefined ? undefined : { cause },
  );
}

function memoryOf(state: TenantState): number {
  let total = 0;
  for (const i of state.live) total += i.memoryBytes;
  return total;
}

/** What the tenant's live instances hold or may reach: their memory, or their call's cap when higher. */
function memoryHeld(state: TenantState, self: LiveInstance | undefined): number {
  let total = 0;
  for (const i of state.live) if (i !== self) total += Math.max(i.memoryBytes, i.reservedBytes);
  return total;
}

/**
 * The memory cap the tenant's quota sets a call or run of `self` that asked for `asked` (its
 * `maxMemoryBytes` option): what the tenant has left besides `self` (the quota minus its other
 * live instances' memory, or the caps of their calls in flight when higher); `undefined` when
 * that does not cut it (no quota, or less asked). The call's effective cap is reserved in
 * `self.reservedBytes` (before the next await) until {@link releaseMemory}.
 */
function memoryBudget(state: TenantState, self: LiveInstance, asked: unknown): number | undefined {
  const { maxMemoryBytes } = state.quotas;
  if (!Number.isFinite(maxMemoryBytes)) return undefined;
  const left = Math.max(0, maxMemoryBytes - memoryHeld(state, self));
  const wanted = asked === undefined ? Infinity : Number(asked);
  // An invalid `asked` (NaN) reserves all that is left; the sandbox refuses the call anyway.
  self.reservedBytes = Number.isNaN(wanted) ? left : Math.min(left, wanted);
  return left < wanted ? left : undefined;
}

/** Ends the memory reservation of `self`'s call. */
function releaseMemory(self: LiveInstance): void {
  self.reservedBytes = 0;
}

/**
 * The error to throw for a call or run the core ended (or refused) at the memory cap the
 * tenant's quota set (`cap`, from {@link memoryBudget}): the tenant's `MEMORY_LIMIT`, else
 * `failure` itself.
 */
function memoryFailureOf(state: TenantState, failure: unknown, cap: number | undefined, what: string): unknown {
  if (!(failure instanceof SandboxError) || failure.code !== 'MEMORY_LIMIT' || cap === undefined) return failure;
  if (failure.details.limit !== cap) return failure;
  const { maxMemoryBytes } = state.quotas;
  return quotaError(
    state,
    'MEMORY_LIMIT',
    `the ${what} was capped at the ${cap} bytes of memory the tenant has left (its quota minus its other instances), limit ${maxMemoryBytes}`,
    { limit: maxMemoryBytes },
    failure as AnySandboxError,
  );
}

/**
 * Starts a new fuel window when the current one is over. Reservations of calls in flight
 * carry over: they settle in the window they end in.
 */
function roll(state: TenantState): void {
  const now = performance.now();
  if (now - state.windowStart >= state.quotas.windowMs) {
    state.windowStart = now;
    state.fuelUsed = 0;
  }
}

/** Milliseconds until the current fuel window ends. */
function retryAfterMs(state: TenantState): number {
  return Math.max(0, Math.ceil(state.windowStart + state.quotas.windowMs - performance.now()));
}

/** The fuel a call or run asked for (`asked`, its `fuel` option) within the sandbox's; NaN when invalid. */
function askedFuel(state: TenantState, asked: unknown): number {
  if (asked === undefined) return state.quotas.sandboxFuel;
  const valid =
    (typeof asked === 'number' && Number.isSafeInteger(asked) && asked >= 0) ||
    (typeof asked === 'bigint' && asked >= 0n);
  return valid ? Math.min(Number(asked), state.quotas.sandboxFuel) : NaN;
}

/** `FUEL_EXHAUSTED` (with `details.tenant`, `retryAfterMs`) unless the window has fuel left besides the reservations. */
function checkWindow(state: TenantState): number {
  const { fuel: windowFuel, windowMs } = state.quotas;
  roll(state);
  const left = windowFuel - state.fuelUsed - state.fuelReserved;
  if (left <= 0) {
    const inFlight = state.fuelReserved > 0 ? `, ${state.fuelReserved} of it reserved by calls in flight` : '';
    throw quotaError(
      state,
      'FUEL_EXHAUSTED',
      `the fuel of this ${windowMs} ms window (${windowFuel}) is used up${inFlight}`,
      {
        limit: windowFuel,
        retryAfterMs: retryAfterMs(state),
      },
    );
  }
  return left;
}

/**
 * Reserves the fuel budget of a call or run that asked for `asked` (its `fuel` option): what
 * it asked for (else the sandbox's `limits.fuel`), cut to what the window has left besides
 * the reservations in flight — counted before the next await, so concurrent calls share what
 * is left. An invalid `asked` reserves nothing (the sandbox refuses the call).
 *
 * @throws `FUEL_EXHAUSTED` with `details.tenant` when the window has nothing left to reserve.
 */
function reserveFuel(state: TenantState, asked: unknown): FuelReservation {
  const wanted = askedFuel(state, asked);
  if (Number.isNaN(wanted) || wanted === 0) return { fuel: 0, capped: false, settled: false };
  if (!Number.isFinite(state.quotas.fuel)) {
    state.fuelReserved += wanted;
    return { fuel: wanted, capped: false, settled: false };
  }
  const left = checkWindow(state);
  const reservation = { fuel: Math.min(wanted, left), capped: left < wanted, settled: false };
  state.fuelReserved += reservation.fuel;
  return reservation;
}

/**
 * Charges an instantiation's start function to the window: what it consumed (the instance's
 * `startFuel`, or the failed instantiation's `details.metrics`); the sandbox's whole
 * `limits.fuel` when its worker was lost or it failed with something else than a
 * `SandboxError` ({@link unmeasured}, but for `DISPOSED`: the start function may have run
 * all of it).
 */
function chargeStart(state: TenantState, instance: SandboxInstance | undefined, failure: unknown): void {
  roll(state);
  if (instance !== undefined) {
    state.fuelUsed += instance.startFuel;
    return;
  }
  const consumed = metricsOf(undefined, failure)?.fuelConsumed ?? 0;
  // Not for DISPOSED: an instantiation of a disposed module or sandbox never started.
  const lost = unmeasured(failure) && !(failure instanceof SandboxError && failure.code === 'DISPOSED');
  const whole = lost && Number.isFinite(state.quotas.sandboxFuel) ? state.quotas.sandboxFuel : 0;
  state.fuelUsed += Math.max(consumed, whole);
}

/**
 * Whether `failure` ended a call or instantiation that may have run without the core
 * measuring it: the worker was replaced (the watchdog's `TIMEOUT`, a cancel it had to
 * enforce, `WORKER_CRASHED`: `details.workerRestarted`), the sandbox was disposed mid-call,
 * or the failure is not a `SandboxError` at all. The metrics such an error carries are zeros.
 */
function unmeasured(failure: unknown): boolean {
  if (!(failure instanceof SandboxError)) return true;
  return failure.details.workerRestarted === true || failure.code === 'WORKER_CRASHED' || failure.code === 'DISPOSED';
}

/**
 * Settles a reservation once its call or run ended: the fuel it consumed (its metrics) is
 * charged to the window and the rest returned. A call that ended unmeasured
 * ({@link unmeasured}) is charged its whole reservation (it may have run to its end); other
 * errors without a measure were refused before the guest ran and cost nothing.
 */
function settleFuel(
  state: TenantState,
  reservation: FuelReservation,
  metrics: Metrics | undefined,
  failure: unknown,
): void {
  if (reservation.settled) return;
  reservation.settled = true;
  state.fuelReserved = Math.max(0, state.fuelReserved - reservation.fuel);
  roll(state);
  const consumed = metrics?.fuelConsumed ?? 0;
  const lost = failure !== undefined && unmeasured(failure);
  state.fuelUsed += lost ? Math.max(consumed, reservation.fuel) : consumed;
}

/** What a finished call or run cost: from its result, or from the error that ended it. */
function metricsOf(result: { metrics: Metrics } | undefined, failure: unknown): Metrics | undefined {
  return result?.metrics ?? (failure instanceof SandboxError ? failure.details.metrics : undefined);
}

/**
 * After a call or run (success or failure, its fuel already settled): counts the run and
 * asks the worker for its wasm memory, marking a recycle as due when over a threshold.
 */
async function afterRun(state: TenantState): Promise<void> {
  const { recycleAfterRuns, recycleAboveBytes } = state.quotas;
  state.runs++;
  if (state.runs >= recycleAfterRuns) state.pendingRecycle ??= `${state.runs} runs (limit ${recycleAfterRuns})`;
  if (Number.isFinite(recycleAboveBytes) && state.sandbox.alive) {
    try {
      state.workerMemoryBytes = await state.control.workerMemoryBytes();
      if (state.workerMemoryBytes > recycleAboveBytes) {
        state.pendingRecycle ??= `its wasm memory is ${state.workerMemoryBytes} bytes (limit ${recycleAboveBytes})`;
      }
    } catch {
      // The worker is gone (it will be replaced anyway) or the sandbox was disposed.
    }
  }
}

/**
 * The error to throw for a failed call or run (its fuel settled): the tenant's
 * `FUEL_EXHAUSTED` when the window's fuel ran out during it (its budget was the window's, or
 * the window is now used up), else the failure itself.
 */
function failureOf(state: TenantState, failure: unknown, capped: boolean, what: string): unknown {
  const { fuel: windowFuel, windowMs } = state.quotas;
  const fuelOut =
    failure instanceof SandboxError && failure.code === 'FUEL_EXHAUSTED' && (capped || state.fuelUsed >= windowFuel);
  if (!fuelOut) return failure;
  // The budget the window left it was spent: the window is used up, but for what the calls
  // still in flight hold (they return what they do not consume).
  state.fuelUsed = Math.max(state.fuelUsed, windowFuel - state.fuelReserved);
  return quotaError(
    state,
    'FUEL_EXHAUSTED',
    `the fuel of this ${windowMs} ms window (${windowFuel}) ran out during the ${what}`,
    { limit: windowFuel, retryAfterMs: retryAfterMs(state) },
    failure as AnySandboxError,
  );
}

/** `INSTANCE_LIMIT` unless the tenant may hold one more live instance. */
function checkInstanceQuota(state: TenantState): void {
  const { maxInstances } = state.quotas;
  if (state.live.size >= maxInstances) {
    throw quotaError(
      state,
      'INSTANCE_LIMIT',
      `${state.live.size} live instances, limit ${maxInstances}: dispose one first`,
      {
        limit: maxInstances,
      },
    );
  }
}

/**
 * Recycles the tenant's worker if it is due and nothing lives or runs in it — after the
 * old worker's last audit entries (such as the disposal of the last instance) have reached
 * the page. Operations that start meanwhile wait for it ({@link enter}).
 */
function maybeRecycle(state: TenantState): void {
  if (state.pendingRecycle === undefined || state.recycling !== undefined || state.disposed) return;
  if (state.live.size > 0 || state.inFlight > 0 || state.control.callsInFlight() > 0) return;
  state.recycling = (async () => {
    await state.control.settled();
    const reason = state.pendingRecycle;
    if (reason === undefined || state.disposed || !state.sandbox.alive) return;
    if (state.live.size > 0 || state.inFlight > 0 || state.control.callsInFlight() > 0) return;
    state.pendingRecycle = undefined;
    state.runs = 0;
    state.recycles++;
    state.workerMemoryBytes = 0;
    state.control.recycle(`recycled by the tenant pool: ${reason}`);
  })().finally(() => {
    state.recycling = undefined;
  });
}

/** Starts an operation of the tenant (after a recycle under way). */
async function enter(state: TenantState): Promise<void> {
  while (state.recycling !== undefined) await state.recycling;
  if (state.disposed) throw disposedError(`sandbox of tenant ${JSON.stringify(state.tenant)}`);
  state.inFlight++;
}

/** Ends an operation of the tenant. */
function leave(state: TenantState): void {
  state.inFlight--;
  maybeRecycle(state);
}

const tenantSandboxes = new WeakMap<TenantSandbox, TenantState>();
const tenantInstances = new WeakMap<
  TenantInstance,
  { state: TenantState; inner: SandboxInstance; live: LiveInstance; dropped: boolean }
>();

function stateOf(sandbox: TenantSandbox): TenantState {
  const state = tenantSandboxes.get(sandbox);
  if (state === undefined) throw invalidArgument('not a TenantSandbox');
  if (state.disposed) throw disposedError(`sandbox of tenant ${JSON.stringify(state.tenant)}`);
  return state;
}

function tenantStats(state: TenantState): TenantStats {
  roll(state);
  return {
    tenant: state.tenant,
    liveInstances: state.live.size,
    memoryBytes: memoryOf(state),
    fuelInWindow: state.fuelUsed,
    fuelReserved: state.fuelReserved,
    runsSinceRecycle: state.runs,
    recycles: state.recycles,
    workerMemoryBytes: state.workerMemoryBytes,
  };
}

/** One tenant's sandbox: the `Sandbox` API with the pool's quotas. Made by {@link TenantPool.sandboxFor}. */
export class TenantSandbox extends Resource {
  /** The tenant's id. */
  readonly tenant: string;

  /** @internal */
  constructor(state: TenantState) {
    super();
    tenantSandboxes.set(this, state);
    this.tenant = state.tenant;
  }

  /** False once disposed (or its pool was). */
  get alive(): boolean {
    const state = tenantSandboxes.get(this);
    return state !== undefined && !state.disposed && state.sandbox.alive;
  }

  /** The tenant's usage. */
  get stats(): TenantStats {
    return tenantStats(stateOf(this));
  }

  /** The tenant's audit log (one log across recycled workers). */
  get audit(): SandboxAudit {
    return stateOf(this).sandbox.audit;
  }

  /** As `Sandbox.load`. */
  async load(source: ModuleSourceLike, options: LoadOptions): Promise<SandboxModule> {
    const state = stateOf(this);
    await enter(state);
    try {
      return await state.sandbox.load(source, options);
    } finally {
      leave(state);
    }
  }

  /**
   * As `Sandbox.instantiate`, within the tenant's instance and memory quotas. The fuel a
   * start function consumes is charged to the tenant's window (it runs under the sandbox's
   * `limits.fuel`, not cut to the window: the core cannot suspend it).
   *
   * @throws `INSTANCE_LIMIT` / `MEMORY_LIMIT` with `details.tenant`, `FUEL_EXHAUSTED` with
   *   `details.tenant` when the window is used up (a start function could run), and whatever
   *   `Sandbox.instantiate` throws.
   */
  async instantiate(module: SandboxModule, options?: InstantiateOptions): Promise<TenantInstance> {
    const state = stateOf(this);
    await enter(state);
    try {
      const { maxMemoryBytes } = state.quotas;
      // Counted before the next await, so concurrent instantiations cannot pass the quota together.
      checkInstanceQuota(state);
      // A start function may run: not with the window used up.
      if (Number.isFinite(state.quotas.fuel)) checkWindow(state);
      const live: LiveInstance = { memoryBytes: 0, reservedBytes: 0 };
      state.live.add(live);
      let inner: SandboxInstance;
      try {
        inner = await state.sandbox.instantiate(module, options);
      } catch (error) {
        state.live.delete(live);
        chargeStart(state, undefined, error);
        throw error;
      }
      chargeStart(state, inner, undefined);
      const instance = new TenantInstance(inner);
      tenantInstances.set(instance, { state, inner, live, dropped: false });
      if (Number.isFinite(maxMemoryBytes)) {
        try {
          live.memoryBytes = await inner.memory.size();
        } catch (error) {
          instance.dispose();
          throw error;
        }
        const total = memoryOf(state);
        if (total > maxMemoryBytes) {
          instance.dispose();
          throw quotaError(
            state,
            'MEMORY_LIMIT',
            `its instances would hold ${total} bytes of memory, limit ${maxMemoryBytes}`,
            {
              limit: maxMemoryBytes,
              memoryBytes: total,
            },
          );
        }
      }
      return instance;
    } finally {
      leave(state);
    }
  }

  /**
   * Instantiates `module`, calls `exportName` once and disposes the instance, whatever
   * happens: the stateless way to run a tenant's code, which never keeps its worker from
   * being recycled.
   */
  async run(
    module: SandboxModule,
    exportName: string,
    args: readonly Value[] = [],
    options: CallOptions & InstantiateOptions = {},
  ): Promise<CallResult> {
    if (typeof options !== 'object' || options === null) throw invalidArgument('run options must be an object');
    const { imports, ...call } = options;
    const instance = await this.instantiate(module, imports === undefined ? {} : { imports });
    try {
      return await instance.call(exportName, args, call);
    } finally {
      instance.dispose();
    }
  }

  /**
   * As `Sandbox.runWasi`, within the tenant's quotas: the run is one of the tenant's live
   * instances while it runs (`INSTANCE_LIMIT`); its fuel budget is reserved from what the
   * window has left besides the calls in flight (`FUEL_EXHAUSTED` before or during the run),
   * and what it consumed (a start function's fuel included) is charged to the window, also
   * when it fails, the rest of the reservation returned; it is refused when the tenant's live instances already
   * hold all of its memory, and its peak memory with theirs must stay within the quota
   * (`MEMORY_LIMIT`, after the run: its result is discarded). While it runs, the core caps its
   * memory at what the tenant has left (the quota minus its live instances' memory; growth
   * past it is refused as past the sandbox's limit). It counts as a run for recycling, which
   * waits for it; it never pins the worker.
   *
   * @throws `INSTANCE_LIMIT` / `MEMORY_LIMIT` / `FUEL_EXHAUSTED` with `details.tenant` (and
   *   `details.stdout` / `details.stderr` when the run had started), and whatever
   *   `Sandbox.runWasi` throws.
   */
  async runWasi(module: SandboxModule, options: WasiRunOptions = {}): Promise<WasiResult> {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw invalidArgument('runWasi options must be an object');
    }
    const state = stateOf(this);
    await enter(state);
    let live: LiveInstance | undefined;
    let reservation: FuelReservation | undefined;
    try {
      const { maxMemoryBytes } = state.quotas;
      checkInstanceQuota(state);
      if (Number.isFinite(maxMemoryBytes)) {
        const held = memoryHeld(state, undefined);
        if (held >= maxMemoryBytes) {
          throw quotaError(
            state,
            'MEMORY_LIMIT',
            `its instances hold ${held} bytes of memory (or may, with their calls in flight), limit ${maxMemoryBytes}: none is left for a WASI run`,
            { limit: maxMemoryBytes, memoryBytes: held },
          );
        }
      }
      // Reserved before the next await, like an instantiation is counted.
      options = { ...options };
      reservation = reserveFuel(state, options.fuel);
      const { capped } = reservation;
      live = { memoryBytes: 0, reservedBytes: 0 };
      state.live.add(live);
      const memoryCap = memoryBudget(state, live, options.maxMemoryBytes);
      let runOptions: WasiRunOptions = capped ? { ...options, fuel: reservation.fuel } : options;
      if (memoryCap !== undefined) runOptions = { ...runOptions, maxMemoryBytes: memoryCap };
      let result: WasiResult | undefined;
      let failure: unknown;
      try {
        result = await state.sandbox.runWasi(module, runOptions);
      } catch (error) {
        failure = error;
      }
      const metrics = metricsOf(result, failure);
      settleFuel(state, reservation, metrics, failure);
      releaseMemory(live);
      if (metrics !== undefined) live.memoryBytes = metrics.peakMemoryBytes;
      await afterRun(state);
      if (failure !== undefined) {
        throw memoryFailureOf(state, failureOf(state, failure, capped, 'WASI run'), memoryCap, 'WASI run');
      }
      const total = memoryOf(state);
      if (total > maxMemoryBytes) {
        const wasi = result as WasiResult;
        throw quotaError(
          state,
          'MEMORY_LIMIT',
          `the WASI run grew the tenant's instances to ${total} bytes of memory, limit ${maxMemoryBytes}; its result was discarded`,
          {
            limit: maxMemoryBytes,
            memoryBytes: total,
            metrics: wasi.metrics,
            stdout: wasi.stdout,
            stderr: wasi.stderr,
          },
        );
      }
      return result as WasiResult;
    } finally {
      if (reservation !== undefined) settleFuel(state, reservation, undefined, undefined);
      if (live !== undefined) state.live.delete(live);
      leave(state);
    }
  }

  /** Disposes the tenant's sandbox (its worker is terminated); the pool makes a new one on the next `sandboxFor`. */
  protected override release(): void {
    const state = tenantSandboxes.get(this);
    if (state === undefined || state.disposed) return;
    state.disposed = true;
    state.sandbox.dispose();
  }
}

/** An instance of a tenant: `SandboxInstance`'s API with the tenant's fuel and memory quotas. */
export class TenantInstance extends Resource {
  /** The module it was made from. */
  readonly module: {
    readonly digest: string;
    readonly imports: readonly CoreImport[];
    readonly exports: readonly CoreExport[];
  };

  /** @internal */
  constructor(inner: SandboxInstance) {
    super();
    this.module = inner.module;
  }

  /** As `SandboxInstance.memory`. */
  get memory(): GuestMemory {
    return entry(this).inner.memory;
  }

  /** False once disposed, or when its worker is gone. */
  get alive(): boolean {
    const e = entry(this);
    return !e.dropped && e.inner.alive;
  }

  /** Whether a call is running. */
  get busy(): boolean {
    return entry(this).inner.busy;
  }

  /** As `SandboxInstance.startFuel`: what its start function consumed (charged to the tenant's window). */
  get startFuel(): number {
    return entry(this).inner.startFuel;
  }

  /**
   * As `SandboxInstance.call`, within the tenant's fuel window and memory quota.
   *
   * Its fuel budget is reserved from the window before it starts (what it asks for, cut to
   * what the window has left besides the reservations of calls in flight) and settled when it
   * ends: the fuel consumed is charged, the rest returned; a call ended without the core's
   * measure (the watchdog's `TIMEOUT`, `WORKER_CRASHED`) is charged its whole reservation.
   *
   * @throws `FUEL_EXHAUSTED` with `details.tenant` (and `retryAfterMs`) when the window's
   *   fuel is used up or reserved by calls in flight, before or during the call; `BUSY` when
   *   a call of this instance is running; `MEMORY_LIMIT` with `details.tenant` when
   *   the core held the call at the memory the tenant has left (its quota minus its other live
   *   instances' memory) and the call trapped there (`trapOnGrowFailure`) or was refused
   *   because the instance already holds more, or when the call still grew the tenant's memory
   *   over its quota (a backstop, e.g. for concurrent calls; the instance is then disposed).
   */
  async call(exportName: string, args: readonly Value[] = [], options: CallOptions = {}): Promise<CallResult> {
    const e = entry(this);
    const { state, inner, live } = e;
    if (e.dropped) throw disposedError('instance');
    if (typeof options !== 'object' || options === null) throw invalidArgument('call options must be an object');
    await enter(state);
    try {
      return await this.#call(state, inner, live, exportName, args, options);
    } finally {
      leave(state);
    }
  }

  async #call(
    state: TenantState,
    inner: SandboxInstance,
    live: LiveInstance,
    exportName: string,
    args: readonly Value[],
    options: CallOptions,
  ): Promise<CallResult> {
    const { maxMemoryBytes } = state.quotas;
    // One call per instance (its memory reservation is the instance's): a second is BUSY here.
    if (inner.busy) throw new SandboxError('BUSY', 'a call is already running on this instance');
    // Reserved before the next await, so concurrent calls share what the window has left.
    // A plain copy first (what reads the options may throw), so nothing after the reservation can.
    options = { ...options };
    const reservation = reserveFuel(state, options.fuel);
    /** Whether the window, not the caller or the sandbox, set this call's fuel budget. */
    const { capped } = reservation;
    let callOptions: CallOptions = capped ? { ...options, fuel: reservation.fuel } : options;
    // The core holds the call at what the tenant has left besides this instance (reserved).
    const memoryCap = memoryBudget(state, live, options.maxMemoryBytes);
    if (memoryCap !== undefined) callOptions = { ...callOptions, maxMemoryBytes: memoryCap };
    let result: CallResult | undefined;
    let failure: unknown;
    try {
      result = await inner.call(exportName, args, callOptions);
    } catch (error) {
      failure = error;
    }
    const metrics = metricsOf(result, failure);
    settleFuel(state, reservation, metrics, failure);
    releaseMemory(live);
    if (metrics !== undefined) live.memoryBytes = Math.max(live.memoryBytes, metrics.peakMemoryBytes);
    await afterRun(state);
    try {
      if (failure !== undefined) {
        throw memoryFailureOf(state, failureOf(state, failure, capped, 'call'), memoryCap, 'call');
      }
      const total = memoryOf(state);
      if (total > maxMemoryBytes) {
        this.dispose();
        throw quotaError(
          state,
          'MEMORY_LIMIT',
          `the call grew its instances to ${total} bytes of memory, limit ${maxMemoryBytes}; the instance was disposed`,
          {
            limit: maxMemoryBytes,
            memoryBytes: total,
            ...(metrics === undefined ? {} : { metrics }),
          },
        );
      }
      return result as CallResult;
    } finally {
      maybeRecycle(state);
    }
  }

  /** Drops the instance in the core (its memory is zeroed) and frees its place in the tenant's quotas. */
  protected override release(): void {
    const e = tenantInstances.get(this);
    if (e === undefined || e.dropped) return;
    e.dropped = true;
    e.inner.dispose();
    e.state.live.delete(e.live);
    maybeRecycle(e.state);
  }
}

function entry(instance: TenantInstance): {
  state: TenantState;
  inner: SandboxInstance;
  live: LiveInstance;
  dropped: boolean;
} {
  const e = tenantInstances.get(instance);
  if (e === undefined) throw invalidArgument('not a TenantInstance');
  return e;
}

const pools = new WeakMap<
  TenantPool,
  {
    quotas: Quotas;
    sandboxOptions: SandboxOptions;
    tenants: Map<string, { state?: TenantState; creating?: Promise<TenantSandbox>; handle?: TenantSandbox }>;
    disposed: boolean;
  }
>();

/** Tenants and their sandboxes. Made by {@link createTenantPool}. */
export class TenantPool extends Resource {
  /** @internal */
  constructor(quotas: Quotas, sandboxOptions: SandboxOptions) {
    super();
    pools.set(this, { quotas, sandboxOptions, tenants: new Map(), disposed: false });
  }

  /** The tenants with a live sandbox. */
  get tenants(): string[] {
    const pool = poolOf(this);
    return [...pool.tenants].filter(([, t]) => t.state !== undefined && !t.state.disposed).map(([id]) => id);
  }

  /**
   * The sandbox of `tenant` (a non-empty string), created on first use (its own worker).
   *
   * @throws TypeError for a bad tenant id; `DISPOSED` after the pool was disposed; what
   *   `createSandbox` throws.
   */
  async sandboxFor(tenant: string): Promise<TenantSandbox> {
    const pool = poolOf(this);
    if (typeof tenant !== 'string' || tenant.length === 0) throw invalidArgument('tenant must be a non-empty string');
    let slot = pool.tenants.get(tenant);
    if (slot?.state !== undefined && !slot.state.disposed && slot.handle !== undefined) return slot.handle;
    if (slot?.creating !== undefined) return slot.creating;
    slot = {};
    pool.tenants.set(tenant, slot);
    const current = slot;
    current.creating = (async () => {
      try {
        const sandbox = await createSandbox(pool.sandboxOptions);
        const state: TenantState = {
          tenant,
          quotas: pool.quotas,
          sandbox,
          control: controlOf(sandbox),
          live: new Set(),
          windowStart: performance.now(),
          fuelUsed: 0,
          fuelReserved: 0,
          runs: 0,
          recycles: 0,
          workerMemoryBytes: 0,
          pendingRecycle: undefined,
          recycling: undefined,
          inFlight: 0,
          disposed: false,
        };
        if (pool.disposed) {
          sandbox.dispose();
          throw disposedError('tenant pool');
        }
        current.state = state;
        current.handle = new TenantSandbox(state);
        return current.handle;
      } catch (error) {
        if (pool.tenants.get(tenant) === current) pool.tenants.delete(tenant);
        throw error;
      } finally {
        current.creating = undefined;
      }
    })();
    return current.creating;
  }

  /** `tenant`'s usage, or `undefined` when it has no sandbox. */
  stats(tenant: string): TenantStats | undefined {
    const state = poolOf(this).tenants.get(tenant)?.state;
    return state === undefined || state.disposed ? undefined : tenantStats(state);
  }

  /**
   * Recycles `tenant`'s worker now, even with live instances (they end with
   * `WORKER_CRASHED`; calls in flight too). The audit log links the two workers' segments.
   */
  recycle(tenant: string): void {
    const state = poolOf(this).tenants.get(tenant)?.state;
    if (state === undefined || state.disposed) return;
    state.pendingRecycle = undefined;
    state.runs = 0;
    state.recycles++;
    state.workerMemoryBytes = 0;
    state.live.clear();
    state.control.recycle('recycled by the tenant pool on request');
  }

  /** Disposes every tenant's sandbox. */
  protected override release(): void {
    const pool = pools.get(this);
    if (pool === undefined || pool.disposed) return;
    pool.disposed = true;
    for (const slot of pool.tenants.values()) slot.handle?.dispose();
    pool.tenants.clear();
  }
}

function poolOf(pool: TenantPool): {
  quotas: Quotas;
  sandboxOptions: SandboxOptions;
  tenants: Map<string, { state?: TenantState; creating?: Promise<TenantSandbox>; handle?: TenantSandbox }>;
  disposed: boolean;
} {
  const p = pools.get(pool);
  if (p === undefined) throw invalidArgument('not a TenantPool');
  if (p.disposed) throw disposedError('tenant pool');
  return p;
}

/**
 * Creates a pool of tenants, each with its own sandbox and quotas (see the module docs).
 * Nothing starts until {@link TenantPool.sandboxFor}.
 *
 * @throws TypeError (`INVALID_ARGUMENT`) for bad options.
 */
export function createTenantPool(options: TenantPoolOptions = {}): TenantPool {
  if (typeof options !== 'object' || options === null) throw invalidArgument('tenant pool options must be an object');
  onlyFields(
    options as Record<string, unknown>,
    [
      'maxLiveInstancesPerTenant',
      'maxMemoryBytesPerTenant',
      'fuelPerWindow',
      'recycleWorkerAfterRuns',
      'recycleWorkerAboveMemoryBytes',
      'sandboxOptions',
    ],
    'tenant pool options',
  );
  const window = options.fuelPerWindow;
  let fuel = Infinity;
  let windowMs = Infinity;
  if (window !== undefined) {
    if (typeof window !== 'object' || window === null)
      throw invalidArgument('fuelPerWindow must be { fuel, windowMs }');
    onlyFields(window as unknown as Record<string, unknown>, ['fuel', 'windowMs'], 'fuelPerWindow');
    fuel = limitOf(window.fuel, 'fuelPerWindow.fuel');
    windowMs = limitOf(window.windowMs, 'fuelPerWindow.windowMs');
    if (!Number.isFinite(fuel) || !Number.isFinite(windowMs) || windowMs === 0) {
      throw invalidArgument('fuelPerWindow needs both fuel and a windowMs > 0');
    }
  }
  const recycleAfterRuns = limitOf(options.recycleWorkerAfterRuns, 'recycleWorkerAfterRuns');
  if (recycleAfterRuns === 0) throw invalidArgument('recycleWorkerAfterRuns must be at least 1');
  const sandboxFuel = options.sandboxOptions?.limits?.fuel;
  const quotas: Quotas = {
    sandboxFuel: sandboxFuel === undefined ? DEFAULT_LIMITS.fuel : Number(sandboxFuel),
    maxInstances: limitOf(options.maxLiveInstancesPerTenant, 'maxLiveInstancesPerTenant'),
    maxMemoryBytes: limitOf(options.maxMemoryBytesPerTenant, 'maxMemoryBytesPerTenant'),
    fuel,
    windowMs,
    recycleAfterRuns,
    recycleAboveBytes: limitOf(options.recycleWorkerAboveMemoryBytes, 'recycleWorkerAboveMemoryBytes'),
  };
  const sandboxOptions: SandboxOptions = { ...(options.sandboxOptions ?? {}) };
  if (typeof sandboxOptions !== 'object') throw invalidArgument('sandboxOptions must be an object');
  if (sandboxOptions.worker !== undefined) {
    throw invalidArgument('sandboxOptions.worker: every tenant has its own worker (it is recycled on its own)');
  }
  // One instance can never hold more than the tenant's whole memory quota: the core stops it
  // (also when instantiating; each call is capped tighter, at what the tenant has left).
  if (Number.isFinite(quotas.maxMemoryBytes)) {
    const limits: SandboxLimits = { ...(sandboxOptions.limits ?? {}) };
    let given: CoreLimits | undefined;
    try {
      given = coreLimits(limits);
    } catch {
      // Limits createSandbox refuses: left as they are, so each tenant's sandbox fails with that error.
    }
    if (given !== undefined) {
      const current = given.maxMemoryBytes === undefined ? Infinity : Number(given.maxMemoryBytes);
      if (current > quotas.maxMemoryBytes) {
        delete limits.memoryLimitBytes;
        limits.maxMemoryBytes = quotas.maxMemoryBytes;
      }
    }
    sandboxOptions.limits = limits;
  }
  return new TenantPool(quotas, sandboxOptions);
}
