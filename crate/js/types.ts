/**
 * Public types shared by the page API (`nestbox`) and the in-worker API (`nestbox/worker`).
 *
 * @module
 */

import type { CoreExport, CoreImport, CoreLimits, CoreMetrics } from './nestbox.js';
import type { ImportsObject } from './capability.js';

/** A WebAssembly numeric type. */
export type ValueType = 'i32' | 'i64' | 'f32' | 'f64';

/** A value crossing to or from the guest: `i64` as `bigint`, the others as `number`. */
export type Value = number | bigint;

/**
 * Limits of a sandbox, all per instance and enforced by the core; every field is optional
 * and defaults as in the README's table (all bounded). The core's `maxMemoryBytes` is
 * called `memoryLimitBytes` here (STYLE.md's name); every other field is the core's
 * (`CoreLimits` in `nestbox.d.ts`), so limits the core adds appear here too. An unknown
 * field or a value of the wrong type is a `TypeError` (`INVALID_ARGUMENT`), so a typo never
 * silently leaves a limit at its default.
 */
export type SandboxLimits = Omit<CoreLimits, 'maxMemoryBytes'> & {
  /** The most linear memory one instance may have, in bytes (default 256 MiB). */
  memoryLimitBytes?: number | bigint;
};

/** What one call cost: the core's metrics plus the capability layer's denials. */
export interface Metrics extends CoreMetrics {
  /**
   * Requests the capability layer refused during the call: revoked or forged capabilities,
   * exhausted quotas, out-of-bounds memory accesses by host functions. A denial a host
   * function caught and handled does not end the call, but it is counted.
   */
  denials: number;
}

/** A finished call. */
export interface CallResult {
  /** The export's results (`i64` as `bigint`); empty when the guest exited (`exitCode`). */
  results: Value[];
  /** The status the guest exited with (WASI `proc_exit`): a result, not an error. */
  exitCode?: number;
  /** What the call cost. */
  metrics: Metrics;
}

/** Options of one call; they can only tighten the sandbox's limits. */
export interface CallOptions {
  /** Cancels the call (`CANCELLED`), even an infinite loop, within about one fuel slice. */
  signal?: AbortSignal;
  /** Wall-clock limit of this call in milliseconds (`TIMEOUT`), at most `limits.timeoutMs`. */
  timeoutMs?: number;
  /** Fuel budget of this call (`FUEL_EXHAUSTED`), at most `limits.fuel`. */
  fuel?: number | bigint;
}

/** Options of {@link Sandbox.load}-like methods. */
export interface LoadOptions {
  /**
   * The expected SHA-256 of the module, `sha256-<base64>` (as in Subresource Integrity) or 64
   * hex digits. Required: the bytes are verified before anything parses them.
   */
  integrity: string;
}

/** Options of `instantiate`. */
export interface InstantiateOptions {
  /**
   * The capabilities granted to the instance, by import: `{ [module]: { [name]: token } }`
   * (the import `module.name`). Every function the guest imports must be granted here.
   */
  imports?: ImportsObject;
}

/** Bytes of a module, or where to fetch them. A `string` is a URL relative to the document. */
export type ModuleSourceLike = Uint8Array | ArrayBuffer | Response | URL | string;

/** What a loaded module declares. */
export interface ModuleInfo {
  /** Its SHA-256, `sha256-<base64>`. */
  readonly digest: string;
  /** Its size in bytes. */
  readonly sizeBytes: number;
  /** Everything it imports (each must be granted at instantiation). */
  readonly imports: readonly CoreImport[];
  /** Everything it exports. */
  readonly exports: readonly CoreExport[];
}
