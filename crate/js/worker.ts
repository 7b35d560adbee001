/**
 * The worker bootstrap: loads nestbox's own wasm, keeps one {@link Core} per sandbox it
 * serves, and runs the call loop ({@link drive}). It runs as a dedicated Web Worker, or as a
 * Node.js `worker_threads` thread, where it talks through `parentPort`.
 *
 * The handshake: the script says `hello`; the page answers `boot` with nestbox's
 * `WebAssembly.Module`, compiled once per page, which the worker instantiates
 * (`init({ module_or_path })` of `./nestbox.js`, wasm-pack `--target web`) — or with `null`,
 * and the worker fetches `nestbox_bg.wasm` next to `./nestbox.js` itself (in Node: reads it
 * with `fs`, since Node's fetch refuses `file:` URLs). Then it says `ready`. A boot that is
 * not exactly one `WebAssembly.Module` (or `null`), a second boot, or a module that does not
 * instantiate as nestbox's core is `fatal` (`WORKER_CRASHED`).
 *
 * Host functions live on the page: a `host` step becomes a `host` message, and the guest
 * stays suspended until the page's `hostReply` (or a `cancel`) arrives. Memory requests
 * from the page's views are answered meanwhile, since the event loop is free.
 *
 * WASI guests: a sleep is a timer here (a `cancel` ends it at once); a wait for async stdin
 * becomes a `stdin` message, answered by the page's `stdinReply` with the next chunk of its
 * source; what the guest writes goes to the page as `output` notices after every step, the
 * last one before the call's reply.
 *
 * If the core throws something that is not an error record, it panicked (Rust aborts as a
 * wasm `unreachable`) and its state cannot be trusted: the worker says `fatal` and stops
 * answering; the page terminates it and starts a new one.
 *
 * @module
 */

import init, { Core } from './nestbox.js';
import { coreWasm, isNode, nodeImport } from './platform.js';
import { coreRecordOf, record, type ErrorRecord } from './errors.js';
import {
  drive,
  driveGo,
  sleepFor,
  type GoHostStep,
  type HostOutcome,
  type HostStep,
  type StdinOutcome,
  type WasiControl,
} from './driver.js';
import type { GoData } from './types.js';
import { DEFAULT_LIMITS } from './constants.js';
import { loadNative, NativeInstance, type NativeModule } from './native.js';
import {
  PROTOCOL_VERSION,
  type FromWorker,
  type HostAnswer,
  type ReplyMap,
  type StdinAnswer,
  type RequestType,
  type ToWorker,
  type ToWorkerRequest,
} from './protocol.js';

/**
 * The parts of `DedicatedWorkerGlobalScope` this script uses (the DOM lib has no worker
 * types); in a Node.js `worker_threads` thread, the same over `parentPort`.
 */
interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

/** The parts of Node's `MessagePort` (`parentPort`) used here. */
interface NodePort {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  on(event: 'message', listener: (data: unknown) => void): unknown;
}

/** Where messages go: set by {@link start} before anything is posted. */
let scope: WorkerScope = {
  postMessage: () => undefined,
  addEventListener: () => undefined,
};

/** One sandbox served by this worker. */
interface SandboxState {
  core: Core;
  /** Calls in flight, by call id. */
  calls: Map<number, CallState>;
  /** The instances made with WASI (their calls stream output and may wait). */
  wasi: Set<number>;
  /** The Go js/wasm instances (their calls are Go calls). */
  go: Set<number>;
  /** The modules loaded for the native tier (`engine: 'native'`), by module id. */
  nativeModules: Map<number, NativeModule>;
  /** The native tier's instances, by instance id (the core's ids, shared with the interpreter's). */
  natives: Map<number, NativeInstance>;
  /** A native start function's fuel: the sandbox's `limits.fuel` (as the interpreter's). */
  startBudget: bigint;
  /** Set by `close`: the core is freed once the last call has ended. */
  closing: boolean;
  /** How many of the core's audit entries were sent to the page. */
  auditSent: number;
}

/** One call in flight. */
interface CallState {
  cancelled: boolean;
  /** Ends what the guest waits for (a host answer, a sleep, stdin) as cancelled, if it waits. */
  interrupt?: () => void;
}

const sandboxes = new Map<number, SandboxState>();
/** Host requests waiting for the page, by host request id. */
const hostWaits = new Map<number, (outcome: HostOutcome) => void>();
/** Stdin requests waiting for the page, by request id (from the same counter). */
const stdinWaits = new Map<number, (outcome: StdinOutcome) => void>();
let nextHostId = 1;
/** Set when the core crashed: nothing is answered any more. */
let dead = false;
/** Set by the page's `boot`; requests before it are refused. */
let booted = false;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  // Audit entries first: the page sees them in order, and before whatever caused them ends.
  flushAudit();
  scope.postMessage(message, transfer);
}

/** nestbox's own wasm memory (for `workerStats`), once loaded. */
let ownMemory: WebAssembly.Memory | undefined;

/** Sends every sandbox's new audit entries to the page. */
function flushAudit(): void {
  if (dead) return;
  for (const [sandboxId, state] of sandboxes) {
    let entries;
    try {
      entries = state.core.auditSince(state.auditSent);
    } catch {
      continue; // a core being freed has nothing more to say
    }
    if (entries.length === 0) continue;
    state.auditSent += entries.length;
    scope.postMessage({ v: PROTOCOL_VERSION, type: 'audit', sandboxId, entries } satisfies FromWorker);
  }
}

function reply<K extends RequestType>(id: number, request: K, value: ReplyMap[K], transfer: Transferable[] = []): void {
  // One message per request type; the union member is picked by `request`.
  post({ v: PROTOCOL_VERSION, type: 'reply', id, ok: true, request, value } as FromWorker, transfer);
}

function replyError(id: number, error: ErrorRecord): void {
  post({ v: PROTOCOL_VERSION, type: 'reply', id, ok: false, error });
}

/** Reports a failure of request `id`: a core record is the reply; anything else is fatal. */
function fail(id: number, thrown: unknown): void {
  const error = coreRecordOf(thrown);
  if (error !== undefined) {
    replyError(id, error);
    return;
  }
  dead = true;
  const message = thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown);
  post({
    v: PROTOCOL_VERSION,
    type: 'fatal',
    error: record('WORKER_CRASHED', `the nestbox core crashed (${message}); the worker must be replaced`, {
      reason: message,
    }),
  });
}

function freeIfClosed(sandboxId: number, state: SandboxState): void {
  if (state.closing && state.calls.size === 0) {
    state.core.free();
    if (sandboxes.get(sandboxId) === state) sandboxes.delete(sandboxId);
  }
}

/** Cancels a sandbox's calls and frees its core once they have ended. */
function close(sandboxId: number, state: SandboxState): void {
  state.closing = true;
  for (const call of state.calls.values()) {
    call.cancelled = true;
    call.interrupt?.();
  }
  freeIfClosed(sandboxId, state);
}

async function runCall(
  state: SandboxState,
  sandboxId: number,
  message: ToWorkerRequest & { type: 'call' },
): Promise<void> {
  const call: CallState = { cancelled: false };
  state.calls.set(message.id, call);
  const host = (step: HostStep): Promise<HostOutcome> =>
    new Promise((resolve) => {
      const hostId = nextHostId++;
      const settle = (outcome: HostOutcome): void => {
        hostWaits.delete(hostId);
        call.interrupt = undefined;
        resolve(outcome);
      };
      hostWaits.set(hostId, settle);
      call.interrupt = () => settle({ kind: 'cancel' });
      post({
        v: PROTOCOL_VERSION,
        type: 'host',
        id: hostId,
        sandboxId,
        callId: message.id,
        instanceId: message.instanceId,
        capability: step.capability,
        import: step.import,
        args: step.args,
        ...(step.http === undefined ? {} : { http: step.http }),
        ...((step as GoHostStep).goArgs === undefined ? {} : { goArgs: (step as GoHostStep).goArgs }),
      });
    });
  const wasi: WasiControl = {
    sleep: (ms) =>
      sleepFor(ms, (wake) => {
        call.interrupt = wake;
      }).finally(() => {
        call.interrupt = undefined;
      }),
    stdin: (maxBytes) =>
      new Promise((resolve) => {
        const requestId = nextHostId++;
        const settle = (outcome: StdinOutcome): void => {
          stdinWaits.delete(requestId);
          call.interrupt = undefined;
          resolve(outcome);
        };
        stdinWaits.set(requestId, settle);
        call.interrupt = () => settle({ kind: 'cancel' });
        post({
          v: PROTOCOL_VERSION,
          type: 'stdin',
          id: requestId,
          sandboxId,
          callId: message.id,
          instanceId: message.instanceId,
          maxBytes,
        });
      }),
    output: (stdout, stderr) =>
      post({ v: PROTOCOL_VERSION, type: 'output', sandboxId, callId: message.id, stdout, stderr }, [
        stdout.buffer,
        stderr.buffer,
      ]),
  };
  const native = state.natives.get(message.instanceId);
  // After a slice, for a call that asked: the core's metrics so far and the memory now.
  const progress = (): void => {
    const metrics = native === undefined ? state.core.progress(message.instanceId) : native.progress();
    if (metrics === undefined) return;
    const memoryBytes = native === undefined ? state.core.memorySize(message.instanceId) : native.memoryBytes();
    post({ v: PROTOCOL_VERSION, type: 'progress', sandboxId, callId: message.id, metrics, memoryBytes });
  };
  const go = message.go;
  const control = {
    cancelled: () => call.cancelled,
    host,
    ...(state.wasi.has(message.instanceId) || go !== undefined ? { wasi } : {}),
    ...(message.progress === true ? { progress } : {}),
  };
  try {
    const { core } = state;
    const id = message.instanceId;
    if (native !== undefined && (go !== undefined || message.input !== undefined)) {
      throw record(
        'INVALID_ARGUMENT',
        `${go === undefined ? 'data calls' : 'Go guests'} do not run on engine 'native'; use engine 'interpreter'`,
        { engine: 'native' },
      );
    }
    const finished =
      native !== undefined
        ? await native.call(message.exportName, message.args, message.options, control)
        : go === undefined
          ? await drive(core, id, message.exportName, message.args, message.options, control, message.input)
          : await driveGo(core, id, control, () =>
              go.phase === 'main'
                ? core.startGoMain(id, message.options)
                : go.phase === 'export'
                  ? core.startGoExport(id, message.exportName, go.args, message.options)
                  : core.startGoTimers(id, message.options),
            );
    const value: ReplyMap['call'] = { results: finished.results, metrics: finished.metrics };
    if (finished.exitCode !== undefined) value.exitCode = finished.exitCode;
    const transfer: Transferable[] = [];
    if (finished.output !== undefined) {
      value.output = finished.output;
      transfer.push(finished.output.buffer);
    }
    if (finished.logs !== undefined) value.logs = finished.logs;
    if (finished.trace !== undefined) value.trace = finished.trace;
    if (go !== undefined) {
      const next = state.core.goNextTimerMs(message.instanceId);
      value.go = {
        result: (finished as { goResult?: GoData }).goResult,
        exports: state.core.goExports(message.instanceId),
        ...(next === undefined ? {} : { nextTimerMs: next }),
      };
    }
    reply(message.id, 'call', value, transfer);
  } catch (thrown) {
    fail(message.id, thrown);
  } finally {
    state.calls.delete(message.id);
    freeIfClosed(sandboxId, state);
  }
}

function answerHost(id: number, answer: HostAnswer): void {
  const settle = hostWaits.get(id);
  // A reply to a host request that is over (cancelled meanwhile) has nobody to answer.
  if (settle === undefined) return;
  if (!answer.ok) settle({ kind: 'fail', error: answer.error });
  else if (answer.http !== undefined) settle({ kind: 'http', response: answer.http });
  else if (answer.go !== undefined) settle({ kind: 'go', value: answer.go.value });
  else settle({ kind: 'results', results: answer.results });
}

function answerStdin(id: number, answer: StdinAnswer): void {
  const settle = stdinWaits.get(id);
  if (settle === undefined) return;
  settle(answer.ok ? { kind: 'data', bytes: answer.bytes, eof: answer.eof } : { kind: 'fail', error: answer.error });
}

/** The refusal of `what` (Go js/wasm) for a module loaded for the native tier. */
function nativeRefusal(what: string): ErrorRecord {
  return record(
    'INVALID_ARGUMENT',
    `${what} guests do not run on engine 'native'; load them with engine 'interpreter'`,
    {
      engine: 'native',
    },
  );
}

/** A native start function's fuel: the sandbox's `limits.fuel` (checked by the core), at most 2^63 - 1. */
function startBudgetOf(fuel: unknown): bigint {
  const max = 2n ** 63n - 1n;
  try {
    const budget = BigInt((fuel as number | bigint | undefined) ?? DEFAULT_LIMITS.fuel);
    return budget > max ? max : budget;
  } catch {
    return BigInt(DEFAULT_LIMITS.fuel);
  }
}

/** Ends the worker: it could not load nestbox's core (`reason`), and says so once. */
function bootFailed(reason: string): void {
  dead = true;
  post({
    v: PROTOCOL_VERSION,
    type: 'fatal',
    error: record('WORKER_CRASHED', `the worker could not load nestbox_bg.wasm: ${reason}`, { reason }),
  });
}

/** The page's `boot`: instantiate the module it compiled (or fetch our own), then `ready`. */
function boot(module: unknown): void {
  if (booted) {
    bootFailed('a second boot message');
    return;
  }
  booted = true;
  if (module !== null && !(module instanceof WebAssembly.Module)) {
    bootFailed('the boot message carries no WebAssembly.Module');
    return;
  }
  // In Node, without a module from the page, nestbox_bg.wasm is read with `fs`.
  const loading = module === null ? init(coreWasm()) : init({ module_or_path: module });
  loading.then(
    (output) => {
      if (!(output.memory instanceof WebAssembly.Memory)) {
        bootFailed('the module is not nestbox_bg.wasm (it exports no memory)');
        return;
      }
      ownMemory = output.memory;
      post({ v: PROTOCOL_VERSION, type: 'ready' });
    },
    (error: unknown) => bootFailed(String(error)),
  );
}

function handle(message: ToWorker): void {
  if (message.type === 'boot') {
    boot((message as { module?: unknown }).module);
    return;
  }
  if (!booted) {
    if ('id' in message) replyError(message.id, record('INVALID_ARGUMENT', 'the worker has not booted'));
    return;
  }
  if (message.type === 'hostReply') {
    answerHost(message.id, message.answer);
    return;
  }
  if (message.type === 'stdinReply') {
    answerStdin(message.id, message.answer);
    return;
  }
  const { id, sandboxId } = message;
  if (message.type === 'open') {
    try {
      const previous = sandboxes.get(sandboxId);
      const core = new Core(message.limits, message.policy);
      try {
        // The link to the page's log comes first in the new chain; the deny list carries over.
        if (message.auditSeed !== undefined) core.auditRecord(message.auditSeed);
        if (message.deniedDigests !== undefined) core.denyDigests(message.deniedDigests);
      } catch (thrown) {
        core.free();
        throw thrown;
      }
      sandboxes.set(sandboxId, {
        core,
        nativeModules: new Map(),
        natives: new Map(),
        startBudget: startBudgetOf(message.limits.fuel),
        calls: new Map(),
        wasi: new Set(),
        go: new Set(),
        closing: false,
        auditSent: 0,
      });
      if (previous !== undefined) close(sandboxId, previous);
      reply(id, 'open', {});
    } catch (thrown) {
      fail(id, thrown);
    }
    return;
  }
  const state = sandboxes.get(sandboxId);
  if (state === undefined || state.closing) {
    replyError(id, record('DISPOSED', `sandbox ${sandboxId} is not open in this worker`));
    return;
  }
  const core = state.core;
  try {
    switch (message.type) {
      case 'close':
        close(sandboxId, state);
        reply(id, 'close', {});
        break;
      case 'load': {
        const engine = message.engine ?? 'interpreter';
        if (engine !== 'interpreter' && engine !== 'native') {
          throw record('INVALID_ARGUMENT', `engine must be 'interpreter' or 'native', got ${String(engine)}`);
        }
        if (engine === 'native') {
          loadNative(core, message.bytes, message.integrity, message.provenance).then(
            (loaded) => {
              state.nativeModules.set(loaded.record.moduleId, loaded);
              reply(id, 'load', { module: loaded.record, engine });
            },
            (thrown: unknown) => fail(id, thrown),
          );
          break;
        }
        reply(id, 'load', { module: core.load(message.bytes, message.integrity, message.provenance), engine });
        break;
      }
      case 'instantiate': {
        const loaded = state.nativeModules.get(message.moduleId);
        if (loaded !== undefined) {
          if (message.data !== undefined) {
            throw record('INVALID_ARGUMENT', "the data ABI does not run on engine 'native'; use engine 'interpreter'", {
              engine: 'native',
            });
          }
          NativeInstance.create(core, message.moduleId, message.grants, loaded.compiled, state.startBudget).then(
            (native) => {
              state.natives.set(native.instanceId, native);
              reply(id, 'instantiate', { instanceId: native.instanceId, startFuel: native.startFuel });
            },
            (thrown: unknown) => fail(id, thrown),
          );
          break;
        }
        const instanceId =
          message.data === undefined
            ? core.instantiate(message.moduleId, message.grants)
            : core.instantiateWithData(message.moduleId, message.grants, message.data);
        reply(id, 'instantiate', { instanceId, startFuel: core.startFuel(instanceId) });
        break;
      }
      case 'instantiateWasi': {
        const loaded = state.nativeModules.get(message.moduleId);
        if (loaded !== undefined) {
          const { grants = [], ...config } = message.config;
          NativeInstance.create(core, message.moduleId, grants, loaded.compiled, state.startBudget, config).then(
            (native) => {
              state.natives.set(native.instanceId, native);
              state.wasi.add(native.instanceId);
              reply(id, 'instantiateWasi', { instanceId: native.instanceId, startFuel: native.startFuel });
            },
            (thrown: unknown) => fail(id, thrown),
          );
          break;
        }
        const instanceId = core.instantiateWasi(message.moduleId, message.config);
        state.wasi.add(instanceId);
        reply(id, 'instantiateWasi', { instanceId, startFuel: core.startFuel(instanceId) });
        break;
      }
      case 'instantiateGo': {
        if (state.nativeModules.has(message.moduleId)) throw nativeRefusal('Go js/wasm');
        const instanceId = core.instantiateGo(message.moduleId, message.config);
        state.go.add(instanceId);
        reply(id, 'instantiateGo', { instanceId });
        break;
      }
      case 'wasiFiles': {
        const files = core.wasiFiles(message.instanceId);
        const transfer: Transferable[] = [];
        for (const tree of Object.values(files)) {
          for (const entry of Object.values(tree)) if (entry.type === 'file') transfer.push(entry.data.buffer);
        }
        reply(id, 'wasiFiles', { files }, transfer);
        break;
      }
      case 'call':
        void runCall(state, sandboxId, message);
        break;
      case 'cancel': {
        const call = state.calls.get(message.callId);
        if (call !== undefined) {
          call.cancelled = true;
          call.interrupt?.();
        }
        reply(id, 'cancel', {});
        break;
      }
      case 'memoryRead': {
        const native = state.natives.get(message.instanceId);
        const bytes =
          native === undefined
            ? core.memoryRead(message.instanceId, message.ptr, message.len)
            : native.memoryRead(message.ptr, message.len);
        reply(id, 'memoryRead', { bytes }, [bytes.buffer]);
        break;
      }
      case 'memoryWrite': {
        const native = state.natives.get(message.instanceId);
        if (native === undefined) core.memoryWrite(message.instanceId, message.ptr, message.bytes);
        else native.memoryWrite(message.ptr, message.bytes);
        reply(id, 'memoryWrite', {});
        break;
      }
      case 'memorySize': {
        const native = state.natives.get(message.instanceId);
        const sizeBytes = native === undefined ? core.memorySize(message.instanceId) : native.memoryBytes();
        reply(id, 'memorySize', { sizeBytes });
        break;
      }
      case 'dropInstance': {
        const native = state.natives.get(message.instanceId);
        if (native !== undefined) native.dropped = true;
        state.natives.delete(message.instanceId);
        core.dropInstance(message.instanceId);
        state.wasi.delete(message.instanceId);
        state.go.delete(message.instanceId);
        reply(id, 'dropInstance', {});
        break;
      }
      case 'dropModule':
        state.nativeModules.delete(message.moduleId);
        core.dropModule(message.moduleId);
        reply(id, 'dropModule', {});
        break;
      case 'auditSync':
        // `reply` sends every new entry first, so this head is the page's too.
        reply(id, 'auditSync', { head: core.auditHead() });
        break;
      case 'auditRecord':
        core.auditRecord(message.record);
        reply(id, 'auditRecord', {});
        break;
      case 'workerStats':
        reply(id, 'workerStats', { wasmMemoryBytes: ownMemory?.buffer.byteLength ?? 0 });
        break;
    }
  } catch (thrown) {
    fail(id, thrown);
  }
}

function isVersioned(data: unknown): data is ToWorker {
  return typeof data === 'object' && data !== null && (data as { v?: unknown }).v === PROTOCOL_VERSION;
}

/** Listens to the page through `through`, then says `hello` (the page answers `boot`). */
function start(through: WorkerScope): void {
  scope = through;
  // Registered before `hello`; the page sends `boot` and then nothing before `ready`.
  scope.addEventListener('message', (event) => {
    if (dead) return;
    const data = event.data;
    if (!isVersioned(data)) {
      const id = (data as { id?: unknown } | null)?.id;
      if (typeof id === 'number') {
        replyError(id, record('INVALID_ARGUMENT', `protocol version mismatch: this worker speaks ${PROTOCOL_VERSION}`));
      }
      return;
    }
    handle(data);
  });
  post({ v: PROTOCOL_VERSION, type: 'hello' });
}

if (typeof (globalThis as { postMessage?: unknown }).postMessage === 'function') {
  // A dedicated Web Worker.
  start(globalThis as unknown as WorkerScope);
} else if (isNode()) {
  // A Node.js worker thread (Node queues the page's messages until `on('message')`). In the
  // main thread, where there is no `parentPort`, this script does nothing.
  void nodeImport<{ parentPort: NodePort | null }>('node:worker_threads').then(({ parentPort }) => {
    if (parentPort === null) return;
    start({
      postMessage: (message, transfer) => parentPort.postMessage(message, transfer),
      addEventListener: (_type, listener) => parentPort.on('message', (data) => listener({ data })),
    });
  });
}
