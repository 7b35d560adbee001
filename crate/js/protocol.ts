/**
 * The page ⇄ worker protocol: a discriminated union shared by both sides, with a version
 * field on every message and an id on every request/reply pair. Nothing here is `any`.
 *
 * Requests flow page → worker and each gets exactly one `reply` with the same `id`
 * (`ok: true` with a value typed by {@link ReplyMap}, or `ok: false` with an error record).
 * The worker → page requests are `host` (a guest called a capability), answered with
 * `hostReply`, and `stdin` (a WASI guest waits for the next chunk of its async stdin),
 * answered with `stdinReply`, each carrying the same `id`. `output` (what a WASI guest
 * wrote since the last step) is a notice: nothing answers it, and the worker sends the last
 * one before the call's reply. `progress` (a call's metrics so far, after a slice) is a
 * notice too, sent only for a call whose request asked for it. `audit` (new entries of a sandbox's audit log) is a notice
 * too: the worker sends each sandbox's new entries before any other message, so entries
 * reach the page in order and before the reply of the request that caused them.
 *
 * The page treats the worker as less trusted than itself (a guest that escaped the
 * interpreter would control it): {@link readFromWorker} checks every incoming message's
 * shape (and metrics: finite, non-negative), and a malformed one is a protocol violation
 * that ends the worker. What a well-formed message *means* — whether its ids name requests
 * outstanding on that worker, its values fit the request — is checked by `connection.ts`
 * and the sandbox (`sandbox.ts`).
 *
 * @module
 */

import type {
  CoreAuditEntry,
  CoreAuditRecord,
  CoreCallOptions,
  CoreDataConfig,
  CoreGrant,
  CoreHttpRequest,
  CoreHttpResponse,
  CoreLogLine,
  CoreLimits,
  CoreMetrics,
  CoreTrace,
  CoreModule,
  CorePolicy,
  CoreProvenance,
  CoreValue,
  CoreWasiConfig,
  CoreWasiFiles,
} from './nestbox.js';
import { isAuditEntry } from './audit.js';
import { isErrorRecord, type ErrorRecord } from './errors.js';
import { goDataProblem, type GoPhase } from './gojs.js';
import type { Engine, GoData } from './types.js';

/** Bumped whenever a message changes shape; both sides refuse any other version. */
export const PROTOCOL_VERSION = 4;

/** The version field of every message. */
export type ProtocolVersion = typeof PROTOCOL_VERSION;

/** What the page asks the worker; `id` pairs it with its reply. */
export type Request =
  /**
   * `auditSeed`: the first entry of the new core's log (the link to the page's log);
   * `deniedDigests`: the deny list of the sandbox's earlier workers.
   */
  | {
      type: 'open';
      limits: CoreLimits;
      policy?: CorePolicy;
      auditSeed?: CoreAuditRecord;
      deniedDigests?: string[];
    }
  | { type: 'close' }
  /** `engine`: which tier runs the module (default `'interpreter'`); the reply says which did. */
  | { type: 'load'; bytes: Uint8Array; integrity: string; provenance?: CoreProvenance; engine?: Engine }
  | { type: 'instantiate'; moduleId: number; grants: CoreGrant[]; data?: CoreDataConfig }
  | { type: 'instantiateWasi'; moduleId: number; config: CoreWasiConfig }
  /** A Go js/wasm guest; `globals` hold capability ids as `{ __nestboxCapability: id }`. */
  | { type: 'instantiateGo'; moduleId: number; config: GoInstanceConfig }
  /** With `input`: a data call (`startData`). */
  /** `progress`: send `progress` notices between slices. */
  /** With `go`: a Go guest's `main`, exported function (`exportName`) or due timers. */
  | {
      type: 'call';
      instanceId: number;
      exportName: string;
      args: CoreValue[];
      options: CoreCallOptions;
      input?: Uint8Array;
      progress?: boolean;
      go?: { phase: GoPhase; args: GoData[] };
    }
  | { type: 'cancel'; callId: number }
  | { type: 'memoryRead'; instanceId: number; ptr: number; len: number }
  | { type: 'memoryWrite'; instanceId: number; ptr: number; bytes: Uint8Array }
  | { type: 'memorySize'; instanceId: number }
  | { type: 'dropInstance'; instanceId: number }
  | { type: 'dropModule'; moduleId: number }
  | { type: 'wasiFiles'; instanceId: number }
  /** Answered after every entry so far was sent (`audit` notices before the reply). */
  | { type: 'auditSync' }
  | { type: 'auditRecord'; record: CoreAuditRecord }
  | { type: 'workerStats' };

/** What `instantiateGo` gives the core. */
export interface GoInstanceConfig {
  globals: Record<string, unknown>;
  argv?: string[];
  env?: Record<string, string>;
}

/** What a Go call's reply adds (its output came as `output` notices). */
export interface GoFinished {
  /** An exported function's result (`undefined` for `main` and timers). */
  result: GoData;
  /** The functions registered on `js.Global()` now. */
  exports: string[];
  /** Milliseconds until the program's next timer. */
  nextTimerMs?: number;
}

/** The kinds of request. */
export type RequestType = Request['type'];

/** A finished call, as the worker reports it. */
export interface CallFinished {
  results: CoreValue[];
  exitCode?: number;
  metrics: CoreMetrics;
  /** A data call's output and log messages. */
  output?: Uint8Array;
  logs?: CoreLogLine[];
  /** A traced call's trace (checked by the caller, who knows what it asked for). */
  trace?: CoreTrace;
  /** A Go call's result, exports and next timer. */
  go?: GoFinished;
}

/** The value of a successful reply, by request type. */
export interface ReplyMap {
  open: Record<string, never>;
  close: Record<string, never>;
  load: { module: CoreModule; engine: Engine };
  /** `startFuel`: what the module's start function consumed (0 without one). */
  instantiate: { instanceId: number; startFuel: number };
  instantiateWasi: { instanceId: number; startFuel: number };
  instantiateGo: { instanceId: number };
  call: CallFinished;
  cancel: Record<string, never>;
  memoryRead: { bytes: Uint8Array };
  memoryWrite: Record<string, never>;
  memorySize: { sizeBytes: number };
  dropInstance: Record<string, never>;
  dropModule: Record<string, never>;
  wasiFiles: { files: CoreWasiFiles };
  auditSync: { head: string };
  auditRecord: Record<string, never>;
  workerStats: { wasmMemoryBytes: number };
}

/** The page's answer to a `host` request. */
export type HostAnswer =
  | { ok: true; results: CoreValue[]; http?: CoreHttpResponse; go?: { value: GoData } }
  | { ok: false; error: ErrorRecord };

/** The page's answer to a `stdin` request: the next chunk (non-empty unless `eof`), or why there is none. */
export type StdinAnswer = { ok: true; bytes: Uint8Array; eof: boolean } | { ok: false; error: ErrorRecord };

/** A request as sent: the version, its id and the sandbox (one worker may serve several). */
export type ToWorkerRequest = Request & { v: ProtocolVersion; id: number; sandboxId: number };

/**
 * The page's first message to a worker, the answer to its `hello`: nestbox's own wasm,
 * compiled once on the page (`null`: the worker fetches and compiles it itself).
 */
export interface BootMessage {
  v: ProtocolVersion;
  type: 'boot';
  module: WebAssembly.Module | null;
}

/** Every message the page sends. */
export type ToWorker =
  | BootMessage
  | ToWorkerRequest
  | { v: ProtocolVersion; type: 'hostReply'; id: number; sandboxId: number; answer: HostAnswer }
  | { v: ProtocolVersion; type: 'stdinReply'; id: number; sandboxId: number; answer: StdinAnswer };

/** A successful reply, typed by the request it answers. */
export type OkReply = {
  [K in RequestType]: { v: ProtocolVersion; type: 'reply'; id: number; ok: true; request: K; value: ReplyMap[K] };
}[RequestType];

/** A failed reply. */
export interface ErrReply {
  v: ProtocolVersion;
  type: 'reply';
  id: number;
  ok: false;
  error: ErrorRecord;
}

/** The worker asks the page to run a capability while the guest is suspended. */
export interface HostRequest {
  v: ProtocolVersion;
  type: 'host';
  /** The worker's id for this host request; the `hostReply` carries it back. */
  id: number;
  sandboxId: number;
  /** The id of the `call` request this host call belongs to. */
  callId: number;
  instanceId: number;
  /** The sandbox-local capability id the guest's import was linked to. */
  capability: number;
  /** The import the guest called, `module.name`. */
  import: string;
  args: CoreValue[];
  /** A data guest's HTTP request (to a host the core allowed): answered with `http`. */
  http?: CoreHttpRequest;
  /** A Go guest's capability call (`args` empty): its arguments, answered with `go`. */
  goArgs?: GoData[];
}

/** A WASI guest waits for the next chunk of its async stdin. */
export interface StdinRequest {
  v: ProtocolVersion;
  type: 'stdin';
  /** The worker's id for this request (shared with host requests); the `stdinReply` carries it back. */
  id: number;
  sandboxId: number;
  callId: number;
  instanceId: number;
  /** The most the guest's read takes now (a longer chunk is buffered for its next reads). */
  maxBytes: number;
}

/** What a WASI guest wrote to stdout and stderr since the last notice (at least one is non-empty). */
export interface OutputNotice {
  v: ProtocolVersion;
  type: 'output';
  sandboxId: number;
  callId: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** How far a call that asked for it got (after a slice): the core's metrics so far, the guest's memory now. */
export interface ProgressNotice {
  v: ProtocolVersion;
  type: 'progress';
  sandboxId: number;
  callId: number;
  metrics: CoreMetrics;
  memoryBytes: number;
}

/** New entries of a sandbox's audit log, in order. */
export interface AuditNotice {
  v: ProtocolVersion;
  type: 'audit';
  sandboxId: number;
  entries: CoreAuditEntry[];
}

/**
 * Every message the worker sends. The handshake: the worker's script runs and says `hello`;
 * the page answers `boot` (with the core's module); the worker loads the core and says
 * `ready` (or `fatal`); only then does the page send requests.
 */
export type FromWorker =
  | { v: ProtocolVersion; type: 'hello' }
  | { v: ProtocolVersion; type: 'ready' }
  /** The core failed in a way that leaves it unusable (a Rust panic); the page ends the worker. */
  | { v: ProtocolVersion; type: 'fatal'; error: ErrorRecord }
  | OkReply
  | ErrReply
  | HostRequest
  | StdinRequest
  | OutputNotice
  | ProgressNotice
  | AuditNotice;

// ---- checks of what the worker sends (page side) ----

type Dict = Record<string, unknown>;

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}

function isValueArray(value: unknown): value is CoreValue[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' || typeof v === 'bigint');
}

function isHttpRequest(value: unknown): value is CoreHttpRequest {
  return (
    isDict(value) &&
    typeof value['url'] === 'string' &&
    typeof value['method'] === 'string' &&
    isDict(value['headers']) &&
    Object.values(value['headers']).every((v) => typeof v === 'string') &&
    value['body'] instanceof Uint8Array
  );
}

function isLogLines(value: unknown): value is CoreLogLine[] {
  return (
    Array.isArray(value) &&
    value.every((l) => isDict(l) && typeof l['level'] === 'string' && typeof l['message'] === 'string')
  );
}

/** Metrics: every counter a finite, non-negative number (NaN, ∞ or a negative count is a lie). */
export function isMetrics(value: unknown): value is CoreMetrics {
  if (!isDict(value)) return false;
  const keys: (keyof CoreMetrics)[] = ['fuelConsumed', 'slices', 'hostCalls', 'peakMemoryBytes', 'wallTimeUs'];
  return keys.every((k) => {
    const v = value[k];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0;
  });
}

/** Whether `value` is a value of wasm type `type` as the core converts it (i32 signed, i64 a bigint, f32 exact). */
export function fitsType(value: unknown, type: string): boolean {
  switch (type) {
    case 'i32':
      return typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31;
    case 'i64':
      return typeof value === 'bigint' && value >= -(2n ** 63n) && value < 2n ** 63n;
    case 'f32':
      return typeof value === 'number' && (Number.isNaN(value) || Math.fround(value) === value);
    case 'f64':
      return typeof value === 'number';
    default:
      return false;
  }
}

/** `undefined` when `values` are exactly of `types` (count and each type), else what is wrong. */
export function valuesMismatch(values: readonly unknown[], types: readonly string[], what: string): string | undefined {
  if (values.length !== types.length) return `${values.length} ${what}, the signature has ${types.length}`;
  for (const [i, v] of values.entries()) {
    if (!fitsType(v, types[i] ?? '')) return `${what}[${i}] is not a ${types[i]}`;
  }
  return undefined;
}

/** One of the engines (`'interpreter'`, `'native'`). */
export function isEngine(value: unknown): value is Engine {
  return value === 'interpreter' || value === 'native';
}

/** A non-negative integer a `number` represents exactly. */
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isModuleRecord(value: unknown): value is CoreModule {
  return (
    isDict(value) &&
    isId(value['moduleId']) &&
    typeof value['digest'] === 'string' &&
    typeof value['sizeBytes'] === 'number' &&
    Array.isArray(value['imports']) &&
    Array.isArray(value['exports'])
  );
}

function isFsEntry(value: unknown): boolean {
  if (!isDict(value)) return false;
  switch (value['type']) {
    case 'file':
      return value['data'] instanceof Uint8Array;
    case 'dir':
      return true;
    case 'symlink':
      return typeof value['target'] === 'string';
    default:
      return false;
  }
}

/** A fuel amount: a non-negative safe integer. */
function isFuel(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isWasiFiles(value: unknown): value is CoreWasiFiles {
  return isDict(value) && Object.values(value).every((tree) => isDict(tree) && Object.values(tree).every(isFsEntry));
}

function isGoFinished(value: unknown): value is GoFinished {
  if (!isDict(value)) return false;
  const { exports, nextTimerMs } = value;
  return (
    Array.isArray(exports) &&
    exports.every((e) => typeof e === 'string') &&
    (nextTimerMs === undefined || isCount(nextTimerMs)) &&
    goDataProblem(value['result']) === undefined
  );
}

/** Whether `value` is a valid reply value for a request of type `type`. */
function isReplyValue(type: RequestType, value: unknown): boolean {
  if (!isDict(value)) return false;
  switch (type) {
    case 'load':
      return isModuleRecord(value['module']) && isEngine(value['engine']);
    case 'instantiate':
    case 'instantiateWasi':
      return isId(value['instanceId']) && isFuel(value['startFuel']);
    case 'instantiateGo':
      return isId(value['instanceId']);
    case 'wasiFiles':
      return isWasiFiles(value['files']);
    case 'auditSync':
      return typeof value['head'] === 'string' && /^[0-9a-f]{64}$/.test(value['head']);
    case 'workerStats':
      return isCount(value['wasmMemoryBytes']);
    case 'auditRecord':
      return true;
    case 'call':
      return (
        isValueArray(value['results']) &&
        isMetrics(value['metrics']) &&
        (value['exitCode'] === undefined ||
          (Number.isInteger(value['exitCode']) &&
            (value['exitCode'] as number) >= -(2 ** 31) &&
            (value['exitCode'] as number) < 2 ** 32)) &&
        (value['output'] === undefined || value['output'] instanceof Uint8Array) &&
        (value['logs'] === undefined || isLogLines(value['logs'])) &&
        (value['trace'] === undefined || isDict(value['trace'])) &&
        (value['go'] === undefined || isGoFinished(value['go']))
      );
    case 'memoryRead':
      return value['bytes'] instanceof Uint8Array;
    case 'memorySize':
      // Whole 64 KiB pages of a 32-bit memory.
      return isCount(value['sizeBytes']) && value['sizeBytes'] % 65_536 === 0 && value['sizeBytes'] <= 2 ** 32;
    case 'open':
    case 'close':
    case 'cancel':
    case 'memoryWrite':
    case 'dropInstance':
    case 'dropModule':
      return true;
  }
}

const REQUEST_TYPES: readonly RequestType[] = [
  'open',
  'close',
  'load',
  'instantiate',
  'instantiateWasi',
  'instantiateGo',
  'call',
  'cancel',
  'memoryRead',
  'memoryWrite',
  'memorySize',
  'dropInstance',
  'dropModule',
  'wasiFiles',
  'auditSync',
  'auditRecord',
  'workerStats',
];

function isRequestType(value: unknown): value is RequestType {
  return typeof value === 'string' && (REQUEST_TYPES as readonly string[]).includes(value);
}

/**
 * A message from the worker, checked field by field; a string saying what is wrong when it
 * is not one the protocol allows.
 */
export function readFromWorker(data: unknown): FromWorker | string {
  if (!isDict(data)) return 'message is not an object';
  if (data['v'] !== PROTOCOL_VERSION) return `protocol version ${String(data['v'])}, expected ${PROTOCOL_VERSION}`;
  switch (data['type']) {
    case 'hello':
      return { v: PROTOCOL_VERSION, type: 'hello' };
    case 'ready':
      return { v: PROTOCOL_VERSION, type: 'ready' };
    case 'fatal':
      return isErrorRecord(data['error'])
        ? { v: PROTOCOL_VERSION, type: 'fatal', error: data['error'] }
        : 'fatal message without an error record';
    case 'reply': {
      const id = data['id'];
      if (!isId(id)) return 'reply without a valid id';
      if (data['ok'] === false) {
        if (!isErrorRecord(data['error'])) return `reply ${id}: error is not a record`;
        const metrics = data['error'].details['metrics'];
        if (metrics !== undefined && !isMetrics(metrics))
          return `reply ${id}: the error's metrics are not finite counts`;
        return { v: PROTOCOL_VERSION, type: 'reply', id, ok: false, error: data['error'] };
      }
      const request = data['request'];
      if (data['ok'] !== true || !isRequestType(request)) return `reply ${id}: malformed`;
      if (!isReplyValue(request, data['value'])) {
        return `reply ${id} to ${request}: malformed value (or metrics that are not finite, non-negative numbers)`;
      }
      // Checked just above, field by field, for this request type.
      return data as OkReply;
    }
    case 'host': {
      const { id, sandboxId, callId, instanceId, capability, args } = data;
      if (![id, sandboxId, callId, instanceId, capability].every(isId)) return 'host request with a malformed id';
      if (typeof data['import'] !== 'string') return 'host request without an import name';
      if (!isValueArray(args)) return 'host request with malformed arguments';
      const http = data['http'];
      if (http !== undefined && !isHttpRequest(http)) return 'host request with a malformed http request';
      const goArgs = data['goArgs'];
      if (goArgs !== undefined) {
        if (!Array.isArray(goArgs) || http !== undefined || args.length > 0)
          return 'host request with malformed Go arguments';
        const problem = goDataProblem(goArgs);
        if (problem !== undefined) return `host request with Go arguments that are not data: ${problem}`;
      }
      return {
        ...(http === undefined ? {} : { http }),
        ...(goArgs === undefined ? {} : { goArgs: goArgs as GoData[] }),
        v: PROTOCOL_VERSION,
        type: 'host',
        id: id as number,
        sandboxId: sandboxId as number,
        callId: callId as number,
        instanceId: instanceId as number,
        capability: capability as number,
        import: data['import'],
        args,
      };
    }
    case 'stdin': {
      const { id, sandboxId, callId, instanceId, maxBytes } = data;
      if (![id, sandboxId, callId, instanceId, maxBytes].every(isId)) return 'stdin request with a malformed field';
      return {
        v: PROTOCOL_VERSION,
        type: 'stdin',
        id: id as number,
        sandboxId: sandboxId as number,
        callId: callId as number,
        instanceId: instanceId as number,
        maxBytes: maxBytes as number,
      };
    }
    case 'audit': {
      const { sandboxId, entries } = data;
      if (!isId(sandboxId)) return 'audit notice with a malformed sandbox id';
      if (!Array.isArray(entries) || !entries.every(isAuditEntry)) return 'audit notice with malformed entries';
      return { v: PROTOCOL_VERSION, type: 'audit', sandboxId, entries };
    }
    case 'output': {
      const { sandboxId, callId, stdout, stderr } = data;
      if (![sandboxId, callId].every(isId)) return 'output notice with a malformed id';
      if (!(stdout instanceof Uint8Array) || !(stderr instanceof Uint8Array)) return 'output notice without bytes';
      return {
        v: PROTOCOL_VERSION,
        type: 'output',
        sandboxId: sandboxId as number,
        callId: callId as number,
        stdout,
        stderr,
      };
    }
    case 'progress': {
      const { sandboxId, callId, metrics, memoryBytes } = data;
      if (![sandboxId, callId].every(isId)) return 'progress notice with a malformed id';
      if (!isMetrics(metrics)) return 'progress notice with malformed metrics';
      // Whole 64 KiB pages of a 32-bit memory, as for memorySize.
      if (!isCount(memoryBytes) || memoryBytes % 65_536 !== 0 || memoryBytes > 2 ** 32) {
        return 'progress notice with a malformed memory size';
      }
      return {
        v: PROTOCOL_VERSION,
        type: 'progress',
        sandboxId: sandboxId as number,
        callId: callId as number,
        metrics,
        memoryBytes,
      };
    }
    default:
      return `unknown message type ${JSON.stringify(data['type'])}`;
  }
}
