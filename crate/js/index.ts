/**
 * nestbox: run untrusted WebAssembly in a web page without trusting it.
 *
 * ```ts
 * import { createSandbox, capability, revoke, SandboxError } from 'nestbox';
 *
 * using sandbox = await createSandbox({ limits: { fuel: 1e9, timeoutMs: 5_000, maxMemoryBytes: 16 << 20 } });
 * const mod = await sandbox.load(new URL('./guest.wasm', import.meta.url), { integrity: 'sha256-…' });
 * const log = capability(async (mem, ptr, len) => console.log(await mem.readString(ptr, len)),
 *                        { params: ['i32', 'i32'], results: [] });
 * const instance = await sandbox.instantiate(mod, { imports: { env: { log } } });
 * const { results, metrics } = await instance.call('run', [42], { signal: AbortSignal.timeout(1_000) });
 * ```
 *
 * WASI commands run with `sandbox.runWasi(mod, { args, env, files, stdin, onStdout })`,
 * which resolves with `{ exitCode, stdout, stderr, files, metrics }`.
 *
 * Code that already runs in a worker can use `nestbox/worker` instead, which runs the core
 * in that thread with synchronous host functions.
 *
 * @packageDocumentation
 */

export {
  createSandbox,
  createWorkerPool,
  Sandbox,
  SandboxModule,
  SandboxInstance,
  SharedWorkerPool,
} from './sandbox.js';
export type { SandboxOptions, SandboxStats, WorkerPoolOptions } from './sandbox.js';
export { capability, revoke, isRevoked } from './capability.js';
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
} from './capability.js';
export { SandboxError, SandboxTypeError, ERROR_CODES } from './errors.js';
export type { ErrorCode, ErrorDetails } from './errors.js';
export type { GuestMemory } from './memory.js';
export type {
  CallOptions,
  CallResult,
  DataCallResult,
  DataInput,
  Engine,
  LogLine,
  InstantiateOptions,
  LoadOptions,
  Metrics,
  ModuleInfo,
  ModuleSourceLike,
  ProgressSample,
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
export { PROTOCOL_VERSION } from './protocol.js';
export { verifyAuditLog } from './audit.js';
export { spansOf, childSpans, spanAttribute } from './trace.js';
export { goCapability, revokeGoCapability, GoInstance } from './gojs.js';
export type {
  GoCapability,
  GoCallOptions,
  GoCallResult,
  GoData,
  GoHostFunction,
  GoInstantiateOptions,
} from './gojs.js';
export type { Trace, Span, SpanAttribute } from './trace.js';
export type { AuditEntry, AuditEvent, AuditVerifyResult, SandboxAudit } from './audit.js';
export type { TrustPolicy } from './policy.js';
export { createTenantPool, TenantPool, TenantSandbox, TenantInstance } from './tenants.js';
export type { TenantPoolOptions, TenantStats } from './tenants.js';
export { onSandboxLeak } from './lifecycle.js';
export type { SandboxLeak } from './lifecycle.js';
