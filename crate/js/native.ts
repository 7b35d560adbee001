/**
 * The native tier in the worker (`engine: 'native'`): the guest, rewritten by the core's
 * instrumentation pass to meter itself (`core.loadNative`), is compiled and run by the
 * browser's own WebAssembly engine, with JavaScript Promise Integration (JSPI).
 *
 * - The injected `nestbox.out_of_fuel` and every granted import are `WebAssembly.Suspending`,
 *   and exports are called through `WebAssembly.promising`: a slice ends by suspending the
 *   guest to the event loop, where cancel messages, deadlines and async host functions are
 *   handled as in the interpreter's loop (`driver.ts`).
 * - The core keeps the call's books (`nativeStart`, `nativeRefuel`, `nativeHost`,
 *   `nativeHostResults`, `nativeFailHost`, `nativeFinish`, `nativeAbort`, `nativeProgress`):
 *   budget, slices, deadline, host-call fuel and argument checks, metrics, audit entries and
 *   poisoning are the interpreter's code.
 * - Host calls take exactly the interpreter's path (a `host` step answered by the page's
 *   capability table: grants, revocation, quotas, denials, audit).
 * - A trap of the engine is mapped to the interpreter's codes ({@link engineFailure}).
 *
 * Nothing the guest can reach is JavaScript but these imports: it cannot catch what they
 * throw (the instrumenter refuses the exception-handling proposal), so an ended call unwinds
 * to {@link NativeInstance.call}.
 *
 * @module
 */

import type {
  Core,
  CoreCallOptions,
  CoreGrant,
  CoreModule,
  CoreProvenance,
  CoreValue,
  CoreWasiConfig,
} from './nestbox.js';
import { record, type ErrorRecord } from './errors.js';
import {
  hostFailureCode,
  mergeHostFailure,
  nextMacrotask,
  type DriveControl,
  type FinishedStep,
  type HostStep,
} from './driver.js';
import { jspiRefusal } from './options.js';
import { drainOutput, WASI_MODULE, WasiExit, wasiImports, type NativeWasiHost } from './native-wasi.js';

/** The JSPI parts of the `WebAssembly` namespace (not yet in TypeScript's lib). */
interface Jspi {
  Suspending: new (fn: (...args: never[]) => unknown) => object;
  promising: (fn: (...args: never[]) => unknown) => (...args: unknown[]) => Promise<unknown>;
}

function jspi(): Jspi {
  return WebAssembly as unknown as Jspi;
}

/**
 * The one call into the instrumenter: the core's load checks and audit entries, then the
 * pass with the sandbox's limits. Kept alone so that the pass can move to a lazily loaded
 * second wasm without touching its callers.
 */
export function instrument(
  core: Core,
  bytes: Uint8Array,
  integrity: string,
  provenance: CoreProvenance | undefined,
): { module: CoreModule; bytes: Uint8Array } {
  return core.loadNative(bytes, integrity, provenance);
}

/** Compiled instrumented modules, newest last; a hit needs byte-identical instrumented bytes. */
const compiledCache: { bytes: Uint8Array; module: WebAssembly.Module }[] = [];
const COMPILED_CACHE_SIZE = 16;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The engine's module for `bytes` (instrumented bytes the core just produced). Cached in
 * this worker by the bytes themselves (the same guest under the same limits instruments to
 * the same bytes): the cache only saves compiling bytes the core already produced.
 */
async function compile(bytes: Uint8Array): Promise<WebAssembly.Module> {
  const at = compiledCache.findIndex((c) => sameBytes(c.bytes, bytes));
  if (at >= 0) {
    const [hit] = compiledCache.splice(at, 1);
    if (hit !== undefined) {
      compiledCache.push(hit);
      return hit.module;
    }
  }
  const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  compiledCache.push({ bytes, module });
  if (compiledCache.length > COMPILED_CACHE_SIZE) compiledCache.shift();
  return module;
}

/** A module loaded for the native tier: the core's record and the engine's compiled module. */
export interface NativeModule {
  readonly record: CoreModule;
  readonly compiled: WebAssembly.Module;
}

/**
 * Loads `bytes` for the native tier: JSPI present, the core's checks and instrumentation,
 * then the engine's compilation. Rejects with an error record; the module is not kept in
 * the core unless all of it succeeded.
 */
export async function loadNative(
  core: Core,
  bytes: Uint8Array,
  integrity: string,
  provenance: CoreProvenance | undefined,
): Promise<NativeModule> {
  const refusal = jspiRefusal();
  if (refusal !== undefined) throw refusal;
  const { module, bytes: instrumented } = instrument(core, bytes, integrity, provenance);
  try {
    return { record: module, compiled: await compile(instrumented) };
  } catch (thrown) {
    core.dropModule(module.moduleId);
    // The pass emits only what it validated: an engine that refuses it is a bug, fail closed.
    throw record('INVALID_MODULE', `the browser's engine refused the instrumented module: ${String(thrown)}`, {
      engine: 'native',
    });
  }
}

/**
 * What ends a native call from inside one of its imports: the core's verdict (an error
 * record, with metrics) or whatever the core threw (a crash). The guest cannot catch it.
 */
class NativeStop {
  constructor(readonly thrown: unknown) {}
}

/** How a trap of the engine maps to the interpreter's codes (V8's and SpiderMonkey's messages). */
const TRAPS: readonly [RegExp, string][] = [
  [/unreachable/i, 'unreachable'],
  [/table index (is )?out of bounds|table (access )?out of bounds|element segment/i, 'table_out_of_bounds'],
  [/memory access out of bounds|out of bounds memory|data segment|index out of bounds/i, 'memory_out_of_bounds'],
  [/divide by zero|remainder by zero|division by zero/i, 'integer_division_by_zero'],
  [/divide result unrepresentable|integer overflow/i, 'integer_overflow'],
  [/float unrepresentable|conversion to integer/i, 'bad_conversion_to_integer'],
  [/indirect call to null|null function/i, 'indirect_call_to_null'],
  [/signature mismatch/i, 'bad_signature'],
];

/**
 * The code, message and trap code a failure of the engine ends a call with: a
 * `WebAssembly.RuntimeError` is `TRAP` with the interpreter's trap code as its message says
 * (where the engine's message cannot tell them apart — SpiderMonkey's "index out of bounds"
 * for a `call_indirect` past the table's end as for a memory access — `memory_out_of_bounds`;
 * older V8 said "null function or function signature mismatch" for both of those, read as
 * `indirect_call_to_null`), the engine's own stack
 * limit `STACK_OVERFLOW`; anything else `TRAP` without a trap code.
 */
export function engineFailure(
  thrown: unknown,
  context = 'call',
): { code: 'TRAP' | 'STACK_OVERFLOW'; message: string; trapCode: string | undefined } {
  // V8: RangeError "Maximum call stack size exceeded"; SpiderMonkey: InternalError "too much recursion".
  const overflow =
    (thrown instanceof RangeError && /call stack/i.test(thrown.message)) ||
    (thrown instanceof Error && thrown.name === 'InternalError' && /too much recursion/i.test(thrown.message));
  if (overflow) {
    return {
      code: 'STACK_OVERFLOW',
      message: `${context}: call stack exhausted (recursion deeper than the engine's stack)`,
      trapCode: 'stack_overflow',
    };
  }
  if (thrown instanceof WebAssembly.RuntimeError) {
    const found = TRAPS.find(([pattern]) => pattern.test(thrown.message));
    if (found !== undefined) return { code: 'TRAP', message: `${context}: wasm trap: ${found[1]}`, trapCode: found[1] };
    return { code: 'TRAP', message: `${context}: wasm trap: ${thrown.message}`, trapCode: undefined };
  }
  return { code: 'TRAP', message: `${context}: the engine failed: ${String(thrown)}`, trapCode: undefined };
}

/** How long a call may run between two yields to the event loop (its cancel latency). */
const YIELD_MS = 2;

/** The running call of a native instance. */
interface NativeCall {
  readonly control: DriveControl;
  /** `performance.now()` of the last yield to the event loop. */
  lastYield: number;
}

/**
 * The import object of a native instance: the injected `nestbox` functions and every granted
 * import, bound to `instance`. Namespaces are prototype-less objects (a guest's import module
 * may be named `__proto__`).
 */
function nativeImports(
  instance: NativeInstance,
  links: readonly { module: string; name: string }[],
  wasi: readonly string[],
): WebAssembly.Imports {
  const { Suspending } = jspi();
  const imports: Record<string, Record<string, unknown>> = Object.create(null) as Record<
    string,
    Record<string, unknown>
  >;
  const namespace = (name: string): Record<string, unknown> =>
    (imports[name] ??= Object.create(null) as Record<string, unknown>);
  const nestbox = namespace('nestbox');
  nestbox['out_of_fuel'] = new Suspending(() => instance.outOfFuel());
  // Not suspending: it ends the call (the instrumented guest traps if it ever returned).
  nestbox['stack_overflow'] = () => instance.stackOverflow();
  for (const [i, link] of links.entries()) {
    namespace(link.module)[link.name] = new Suspending((...args: never[]) => instance.host(i, args));
  }
  // WASI (`wasi_snapshot_preview1`): the core's syscalls over the guest's memory (native-wasi.ts).
  if (wasi.length > 0) imports[WASI_MODULE] = wasiImports(instance.wasiHost(), wasi, Suspending);
  return imports as WebAssembly.Imports;
}

/** A guest instance on the browser's engine, with its books in the core. */
export class NativeInstance {
  readonly #core: Core;
  readonly instanceId: number;
  #instance: WebAssembly.Instance | undefined;
  #fuel: WebAssembly.Global | undefined;
  #memory: WebAssembly.Memory | undefined;
  readonly #promising = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  #call: NativeCall | undefined;
  /** Made with WASI: its output is drained after every slice, host call and wait, and at the end. */
  #wasi = false;
  /** Fuel the start function consumed while instantiating. */
  startFuel = 0;
  /** Set once dropped: a suspended call ends when it resumes. */
  dropped = false;

  private constructor(core: Core, instanceId: number) {
    this.#core = core;
    this.instanceId = instanceId;
  }

  /**
   * Links `moduleId` against `grants` in the core (`IMPORT_NOT_GRANTED`, …), then
   * instantiates the compiled module with the import object; a start function runs with
   * `startBudget` fuel (the sandbox's `limits.fuel`). Rejects with an error record (the core's
   * instance is dropped again).
   */
  static async create(
    core: Core,
    moduleId: number,
    grants: CoreGrant[],
    compiled: WebAssembly.Module,
    startBudget: bigint,
    wasiConfig?: CoreWasiConfig,
  ): Promise<NativeInstance> {
    const { instanceId, links, wasi } =
      wasiConfig === undefined
        ? core.instantiateNative(moduleId, grants)
        : core.instantiateNativeWasi(moduleId, { ...wasiConfig, grants });
    const native = new NativeInstance(core, instanceId);
    native.#wasi = wasiConfig !== undefined;
    let instance: WebAssembly.Instance;
    try {
      instance = await WebAssembly.instantiate(compiled, nativeImports(native, links, wasi));
    } catch (thrown) {
      core.dropInstance(instanceId);
      throw startFailure(thrown, links.length, startBudget);
    }
    const exports = instance.exports;
    const fuel = exports['nestbox_fuel'];
    if (!(fuel instanceof WebAssembly.Global)) {
      core.dropInstance(instanceId);
      throw record('INVALID_MODULE', 'internal: the instrumented module exports no nestbox_fuel');
    }
    native.#instance = instance;
    native.#fuel = fuel;
    native.#memory = exportedMemory(exports);
    const left = BigInt(fuel.value as bigint);
    native.startFuel = Number(startBudget - left > 0n ? startBudget - left : 0n);
    return native;
  }

  /** The size of the guest's exported memory (`memory`, or its only one), in bytes. */
  memoryBytes(): number {
    return this.#memory?.buffer.byteLength ?? 0;
  }

  /** A copy of `len` bytes at `ptr` of the exported memory; `TRAP` (`memory_out_of_bounds`) outside it. */
  memoryRead(ptr: number, len: number): Uint8Array {
    this.#inBounds(ptr, len);
    return new Uint8Array(this.#memory?.buffer ?? new ArrayBuffer(0), ptr, len).slice();
  }

  /** Copies `bytes` into the exported memory at `ptr`, all or nothing. */
  memoryWrite(ptr: number, bytes: Uint8Array): void {
    this.#inBounds(ptr, bytes.length);
    new Uint8Array(this.#memory?.buffer ?? new ArrayBuffer(0)).set(bytes, ptr);
  }

  #inBounds(ptr: number, len: number): void {
    const size = this.memoryBytes();
    const ok = Number.isSafeInteger(ptr) && Number.isSafeInteger(len) && ptr >= 0 && len >= 0 && ptr + len <= size;
    if (!ok) {
      throw record('TRAP', `guest range ptr=${ptr} len=${len} is outside linear memory of ${size} bytes`, {
        trapCode: 'memory_out_of_bounds',
      });
    }
  }

  /** The fuel global's value (what the guest has left; negative past a charge). */
  #fuelLeft(): bigint {
    return BigInt((this.#fuel?.value as bigint | undefined) ?? 0n);
  }

  /** The running call's metrics so far (`progress` notices). */
  progress(): ReturnType<Core['nativeProgress']> {
    return this.#core.nativeProgress(this.instanceId, this.#fuelLeft());
  }

  /** Ends the running call in the core with `code` (the instance is poisoned): the record. */
  #abort(code: string, message: string, trapCode?: string): NativeStop {
    try {
      return new NativeStop(
        this.#core.nativeAbort(this.instanceId, code, message, trapCode, this.#fuelLeft(), this.memoryBytes()),
      );
    } catch (thrown) {
      return new NativeStop(thrown);
    }
  }

  #cancelled(): NativeStop {
    return this.#abort('CANCELLED', 'call cancelled by the caller');
  }

  /**
   * Calls `exportName` with `args` to its end under `options` (fuel, deadline, memory, as
   * the interpreter's). Resolves with the finished step; rejects with the core's error record
   * (or whatever the core threw, if it crashed).
   */
  async call(
    exportName: string,
    args: CoreValue[],
    options: CoreCallOptions,
    control: DriveControl,
  ): Promise<FinishedStep> {
    const core = this.#core;
    const id = this.instanceId;
    if (this.#call !== undefined) throw record('BUSY', 'a call is already running on this instance');
    const { fuel, args: typed } = core.nativeStart(id, exportName, args, options, this.memoryBytes());
    const fn = this.#export(exportName);
    if (fn === undefined || this.#fuel === undefined) {
      throw this.#abort('TRAP', `internal: ${exportName} is not a function of the engine's instance`).thrown;
    }
    this.#fuel.value = fuel;
    this.#call = { control, lastYield: performance.now() };
    try {
      const result = await fn(...typed);
      return core.nativeFinish(id, result, this.#fuelLeft(), this.memoryBytes()) as FinishedStep;
    } catch (thrown) {
      if (thrown instanceof NativeStop) throw thrown.thrown;
      if (thrown instanceof WasiExit) return thrown.step;
      const failure = engineFailure(thrown);
      throw this.#abort(failure.code, failure.message, failure.trapCode).thrown;
    } finally {
      this.#call = undefined;
      this.#drain(control);
    }
  }

  #export(name: string): ((...args: unknown[]) => Promise<unknown>) | undefined {
    const cached = this.#promising.get(name);
    if (cached !== undefined) return cached;
    const fn = this.#instance?.exports[name];
    if (typeof fn !== 'function') return undefined;
    const wrapped = jspi().promising(fn as (...args: never[]) => unknown);
    this.#promising.set(name, wrapped);
    return wrapped;
  }

  /** The guest's `nestbox.out_of_fuel`: a slice ended. Yields, then refuels from the budget. */
  async outOfFuel(): Promise<void> {
    const call = this.#call;
    if (call === undefined || this.#fuel === undefined) {
      throw new NativeStop(record('FUEL_EXHAUSTED', 'out_of_fuel outside a call'));
    }
    if (performance.now() - call.lastYield >= YIELD_MS) {
      await nextMacrotask();
      call.lastYield = performance.now();
    }
    if (this.dropped || call.control.cancelled()) throw this.#cancelled();
    try {
      this.#fuel.value = this.#core.nativeRefuel(this.instanceId, this.#fuelLeft(), this.memoryBytes());
    } catch (thrown) {
      throw new NativeStop(thrown);
    }
    this.#drain(call.control);
    call.control.progress?.();
  }

  /** A WASI instance's output since the last drain, to its owner (never throws: a crashed core is seen by the next core call). */
  #drain(control: DriveControl): void {
    if (!this.#wasi) return;
    try {
      drainOutput(this.#core, this.instanceId, control.wasi);
    } catch {
      // The core crashed: the call's next step reports it.
    }
  }

  /** What the WASI imports (native-wasi.ts) need of this instance. */
  wasiHost(): NativeWasiHost {
    return {
      core: this.#core,
      instanceId: this.instanceId,
      memory: () => this.#memory,
      fuel: () => this.#fuel,
      control: () => this.#call?.control,
      dropped: () => this.dropped,
      stop: (thrown) => new NativeStop(thrown),
      end: (error) => {
        const stop = this.#cancelled();
        if (error === undefined) return stop;
        const ended = stop.thrown as ErrorRecord;
        // As the interpreter's driver: the error's own code, message and details, the core's metrics.
        return new NativeStop({
          code: error.code,
          message: error.message,
          details: { ...ended.details, ...error.details, metrics: ended.details?.metrics },
        });
      },
      resumed: () => {
        if (this.#call !== undefined) this.#call.lastYield = performance.now();
      },
    };
  }

  /** The guest's `nestbox.stack_overflow`: past the call-depth limit. */
  stackOverflow(): never {
    if (this.#call === undefined) {
      throw new NativeStop(
        record('STACK_OVERFLOW', 'instantiation: call stack exhausted (recursion deeper than the limit)', {
          trapCode: 'stack_overflow',
        }),
      );
    }
    throw this.#abort(
      'STACK_OVERFLOW',
      'call: call stack exhausted (recursion deeper than the limit)',
      'stack_overflow',
    );
  }

  /** The guest called its granted import number `link`: the interpreter's host-call path. */
  async host(link: number, args: unknown[]): Promise<unknown> {
    const core = this.#core;
    const id = this.instanceId;
    const call = this.#call;
    if (call === undefined || this.#fuel === undefined) {
      throw new NativeStop(record('HOST_ERROR', 'a capability was called outside a call'));
    }
    this.#drain(call.control);
    let step: HostStep;
    try {
      const started = core.nativeHost(id, link, args, this.#fuelLeft(), this.memoryBytes());
      this.#fuel.value = started.fuel;
      step = started.step as HostStep;
    } catch (thrown) {
      throw new NativeStop(thrown);
    }
    const outcome = await call.control.host(step);
    call.lastYield = performance.now();
    const fail = (error: ErrorRecord): NativeStop => {
      try {
        const ended = core.nativeFailHost(id, error.message, hostFailureCode(error), this.#fuelLeft());
        return new NativeStop(mergeHostFailure(ended, error));
      } catch (thrown) {
        return new NativeStop(thrown);
      }
    };
    if (outcome.kind === 'fail') throw fail(outcome.error);
    if (outcome.kind === 'cancel' || this.dropped || call.control.cancelled()) throw this.#cancelled();
    if (outcome.kind !== 'results')
      throw fail(record('HOST_ERROR', 'internal: a host call answered with the wrong kind'));
    let values: CoreValue[];
    try {
      values = core.nativeHostResults(id, outcome.results, this.#fuelLeft());
    } catch (thrown) {
      throw new NativeStop(thrown);
    }
    // The engine takes one value as it is, several as an iterable.
    return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
  }
}

/** The guest's exported memory named `memory`, or its only exported memory (as the core's). */
function exportedMemory(exports: WebAssembly.Exports): WebAssembly.Memory | undefined {
  const named = exports['memory'];
  if (named instanceof WebAssembly.Memory) return named;
  const memories = Object.values(exports).filter((e) => e instanceof WebAssembly.Memory);
  return memories.length === 1 ? (memories[0] as WebAssembly.Memory) : undefined;
}

/**
 * The error an instantiation fails with. A start function runs outside any call, where a
 * suspending import cannot suspend (the engine's `SuspendError`): it ran out of its whole
 * `startBudget` (`FUEL_EXHAUSTED`) or called a capability (`HOST_ERROR`, as the interpreter:
 * capabilities cannot be called while instantiating) — with no capability granted only the
 * first is possible.
 */
function startFailure(thrown: unknown, links: number, startBudget: bigint): ErrorRecord {
  if (thrown instanceof NativeStop) {
    const stopped = thrown.thrown;
    if (typeof stopped === 'object' && stopped !== null && 'code' in stopped) return stopped as ErrorRecord;
    throw stopped;
  }
  const suspend = (WebAssembly as unknown as { SuspendError?: new () => Error }).SuspendError;
  if (suspend !== undefined && thrown instanceof suspend) {
    if (links === 0) {
      return record('FUEL_EXHAUSTED', `instantiation: the start function used its fuel budget of ${startBudget}`, {
        limit: Number(startBudget),
      });
    }
    return record(
      'HOST_ERROR',
      `instantiation: the start function called an import (a capability, or out_of_fuel past its fuel budget of ${startBudget}); neither can run while instantiating`,
    );
  }
  if (thrown instanceof WebAssembly.LinkError || thrown instanceof WebAssembly.CompileError) {
    return record('INVALID_MODULE', `instantiation: ${String(thrown)}`);
  }
  const failure = engineFailure(thrown, 'instantiation');
  return record(failure.code, failure.message, failure.trapCode === undefined ? {} : { trapCode: failure.trapCode });
}
