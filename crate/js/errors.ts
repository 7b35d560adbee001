/**
 * The one error type of the package, {@link SandboxError}, and the two conversions between
 * it and the plain `{code, message, details}` records that cross the worker boundary.
 *
 * - Worker side: {@link coreRecordOf} is the one place a value thrown by the core becomes a
 *   record (or is recognised as *not* a record: the core itself crashed).
 * - Page side: {@link errorFromRecord} is the one place a record becomes an error object.
 *
 * API misuse (bad options, wrong argument types) is a `TypeError`, as in the platform: it is
 * a {@link SandboxTypeError} (`code: "INVALID_ARGUMENT"`), which `instanceof SandboxError`
 * also recognises, so one `catch` that switches on `code` sees every failure.
 *
 * @module
 */

import type { Metrics } from './types.js';
import type { CoreTrace } from './nestbox.js';
import { ERROR_CODES, type ErrorCode } from './constants.js';

export { ERROR_CODES, type ErrorCode };

/** Structured facts about an error; which fields are set depends on the code. */
export interface ErrorDetails {
  /** `TRAP` and growth limits: which trap (`memory_out_of_bounds`, `unreachable`, …). */
  trapCode?: string;
  /** `INTEGRITY_MISMATCH`: the digest the caller pinned. */
  expectedDigest?: string;
  /** `INTEGRITY_MISMATCH`: the digest of the bytes received. */
  actualDigest?: string;
  /** `IMPORT_NOT_GRANTED` / `SIGNATURE_MISMATCH`: every offending import, as `module.name`. */
  imports?: string[];
  /** Capability errors and `HOST_ERROR`: the sandbox-local capability id involved. */
  capability?: number;
  /** Capability errors and `HOST_ERROR`: the import the guest called, as `module.name`. */
  import?: string;
  /** Capability errors and `HOST_ERROR`: the capability's name (its declaration's `name`). */
  capabilityName?: string;
  /** `HOST_ERROR`: the host function's failure as text (the thrown value is `error.cause`). */
  cause?: string;
  /** Limit errors: the limit that was hit, in its own unit. */
  limit?: number;
  /** `CAPABILITY_QUOTA`: which quota ran out. */
  quota?: 'calls' | 'bytes';
  /**
   * `CAPABILITY_REVOKED`: the worker named a capability this instance was never granted (a
   * forged or stale id). The guest call fails closed.
   */
  forged?: boolean;
  /** `WORKER_CRASHED` / watchdog `TIMEOUT`: what happened to the worker. */
  reason?: string;
  /** Set when the page had to terminate and recreate the worker to end the call. */
  workerRestarted?: boolean;
  /**
   * Set when the worker was replaced because a message from it failed the page's validation
   * (a compromised or broken worker): `reason` says which message and why.
   */
  protocolViolation?: boolean;
  /** Errors that ended a call: the metrics at the moment of failure. */
  metrics?: Metrics;
  /** A call made with `trace` that failed: its spans up to the failure (OTLP JSON). */
  trace?: CoreTrace;
  /**
   * `runWasi` (page, `nestbox/worker`, tenant pools): everything the guest wrote to stdout
   * before the run failed, never more than the run's output cap (for `OUTPUT_LIMIT`, the
   * bytes up to the cap). With `stderr`, what a guest that traps leaves behind: a Rust panic
   * is `TRAP` with its message in `stderr`.
   */
  stdout?: Uint8Array;
  /** `runWasi`: as `stdout`, for stderr. */
  stderr?: Uint8Array;
  /** Anything else the core reports. */
  [key: string]: unknown;
}

/** An error as it crosses the worker boundary: a plain, structured-cloneable record. */
export interface ErrorRecord {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

/** `Function.prototype[Symbol.hasInstance]`, the default `instanceof` check. */
const defaultHasInstance = Function.prototype[Symbol.hasInstance];

/**
 * Every failure of a sandbox: a stable {@link ErrorCode}, a lower-case message that carries
 * its values, structured {@link ErrorDetails} and, for `HOST_ERROR`, the value the host
 * function threw as `cause`.
 *
 * `error instanceof SandboxError` is also true for a {@link SandboxTypeError} (API misuse,
 * `INVALID_ARGUMENT`), which is a `TypeError`.
 */
export class SandboxError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /** Structured details (see {@link ErrorDetails}). */
  readonly details: ErrorDetails;

  /** Creates an error; `options.cause` is the underlying value, as for `Error`. */
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SandboxError';
    this.code = code;
    this.details = details;
  }

  /** `instanceof SandboxError` holds for both classes of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (defaultHasInstance.call(this, value)) return true;
    return this === SandboxError && value instanceof SandboxTypeError;
  }
}

/** API misuse: a `TypeError` with `code: "INVALID_ARGUMENT"` (also `instanceof SandboxError`). */
export class SandboxTypeError extends TypeError {
  /** Always `"INVALID_ARGUMENT"`. */
  readonly code: 'INVALID_ARGUMENT' = 'INVALID_ARGUMENT';
  /** Structured details (see {@link ErrorDetails}). */
  readonly details: ErrorDetails;

  /** Creates a misuse error. */
  constructor(message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SandboxTypeError';
    this.details = details;
  }
}

/** Either error class of the package. */
export type AnySandboxError = SandboxError | SandboxTypeError;

/** Whether `code` is one of {@link ERROR_CODES}. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether `value` has the shape of an {@link ErrorRecord}. */
export function isErrorRecord(value: unknown): value is ErrorRecord {
  return (
    isPlainObject(value) &&
    typeof value['code'] === 'string' &&
    typeof value['message'] === 'string' &&
    isPlainObject(value['details'])
  );
}

/**
 * Worker side, the one conversion: what the core threw, as a record; `undefined` when it is
 * not a record, which means the core itself failed (a Rust panic aborts as a wasm
 * `unreachable`) and must not be used again.
 */
export function coreRecordOf(thrown: unknown): ErrorRecord | undefined {
  return isErrorRecord(thrown) ? thrown : undefined;
}

/** Extra context the page adds when it converts a record. */
export interface RecordContext {
  /** The value a host function threw (`HOST_ERROR`). */
  cause?: unknown;
  /** Denials during the call, merged into `details.metrics.denials`. */
  denials?: number;
}

/**
 * Page side, the one conversion: a record (from the worker, or made on the page) as an
 * error object. An unknown code means the worker broke the protocol; it becomes
 * `WORKER_CRASHED` with the original code in `details.reportedCode`.
 */
export function errorFromRecord(record: ErrorRecord, context: RecordContext = {}): AnySandboxError {
  const details: ErrorDetails = { ...record.details };
  const metrics = details.metrics;
  if (isPlainObject(metrics) || context.denials !== undefined) {
    details.metrics = withDenials(isPlainObject(metrics) ? metrics : undefined, context.denials ?? 0);
  }
  const options = context.cause === undefined ? undefined : { cause: context.cause };
  if (record.code === 'INVALID_ARGUMENT') return new SandboxTypeError(record.message, details, options);
  if (!isErrorCode(record.code)) {
    return new SandboxError(
      'WORKER_CRASHED',
      `the worker reported an unknown error code ${JSON.stringify(record.code)}: ${record.message}`,
      { ...details, reportedCode: record.code },
      options,
    );
  }
  return new SandboxError(record.code, record.message, details, options);
}

/** The record of an error made on the page (to send it to the worker, or to convert it). */
export function recordOf(error: AnySandboxError): ErrorRecord {
  return { code: error.code, message: error.message, details: { ...error.details } };
}

/** A plain record. */
export function record(code: ErrorCode, message: string, details: ErrorDetails = {}): ErrorRecord {
  return { code, message, details };
}

/** Metrics with `denials` added (and every missing counter as 0). */
export function withDenials(metrics: Record<string, unknown> | undefined, denials: number): Metrics {
  const num = (key: string): number => {
    const v = metrics?.[key];
    return typeof v === 'number' ? v : 0;
  };
  const previous = num('denials');
  return {
    ...metrics,
    fuelConsumed: num('fuelConsumed'),
    slices: num('slices'),
    hostCalls: num('hostCalls'),
    peakMemoryBytes: num('peakMemoryBytes'),
    wallTimeUs: num('wallTimeUs'),
    denials: Math.max(previous, denials),
  };
}

/** An `INVALID_ARGUMENT` misuse error, thrown before anything reaches the core. */
export function invalidArgument(message: string, details: ErrorDetails = {}): SandboxTypeError {
  return new SandboxTypeError(message, details);
}
