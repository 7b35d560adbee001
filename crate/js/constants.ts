/**
 * The core's constants that the TypeScript side needs before (or without) asking the core:
 * the one TypeScript copy of each. They mirror what the core's `coreConstants()` returns
 * (`crate/src/bindings/`), by the same names and shapes, so a test can compare them:
 *
 * | here                 | `coreConstants()`             |
 * | -------------------- | ----------------------------- |
 * | `ERROR_CODES`        | `errorCodes`                  |
 * | `AUDIT_EVENTS`       | `auditEvents`                 |
 * | `HOST_FAILURE_CODES` | `hostFailureCodes`            |
 * | `DEFAULT_LIMITS`     | the same keys of `defaults`   |
 * | `WASI_OUTPUT_CAPS`   | the same keys of `wasiDefaults` |
 *
 * A leaf: imports nothing of the package (`scripts/check-ts-imports.mjs` holds it to that).
 *
 * @module
 */

import type { CoreAuditEvent, CoreHostFailureCode, CoreLimits } from './nestbox.js';

/** Every stable error code, in the order of the core's list (`coreConstants().errorCodes`). */
export const ERROR_CODES = [
  'INTEGRITY_MISMATCH',
  'SIGNATURE_INVALID',
  'POLICY_DENIED',
  'MODULE_TOO_LARGE',
  'INVALID_MODULE',
  'IMPORT_NOT_GRANTED',
  'SIGNATURE_MISMATCH',
  'FUEL_EXHAUSTED',
  'TIMEOUT',
  'CANCELLED',
  'MEMORY_LIMIT',
  'TABLE_LIMIT',
  'INSTANCE_LIMIT',
  'STACK_OVERFLOW',
  'TRAP',
  'HOST_ERROR',
  'CAPABILITY_REVOKED',
  'CAPABILITY_QUOTA',
  'OUTPUT_LIMIT',
  'WORKER_CRASHED',
  'DISPOSED',
  'BUSY',
  'INVALID_ARGUMENT',
  'POISONED',
  'INPUT_LIMIT',
  'GUEST_ERROR',
] as const;

/** A stable error code: match on it, never on the message. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Every audit event, in the core's order (`coreConstants().auditEvents`). */
export const AUDIT_EVENTS = [
  'policy',
  'load',
  'instantiate',
  'call',
  'grant',
  'revoke',
  'deny',
  'limit',
  'dispose',
] as const satisfies readonly CoreAuditEvent[];

/**
 * The codes that may end a host call (`failHost`'s `code`; `coreConstants().hostFailureCodes`).
 * `TRAP` only as `memory_out_of_bounds` (a memory view's refusal).
 */
export const HOST_FAILURE_CODES = [
  'HOST_ERROR',
  'CAPABILITY_REVOKED',
  'CAPABILITY_QUOTA',
  'TIMEOUT',
  'TRAP',
] as const satisfies readonly CoreHostFailureCode[];

/**
 * The core's defaults of the limits the TypeScript side must know without asking the core
 * (the page times calls itself; tenant pools cut fuel budgets), by the core's names: each
 * equals `coreConstants().defaults[key]`.
 */
export const DEFAULT_LIMITS = Object.freeze({
  /** Fuel per call. */
  fuel: 10_000_000_000,
  /** Wall-clock limit per call, in milliseconds. */
  timeoutMs: 30_000,
  /** Bytes of output a data call returns, and a Go guest writes in its lifetime. */
  maxOutputBytes: 16 << 20,
} as const satisfies Required<Pick<CoreLimits, 'fuel' | 'timeoutMs' | 'maxOutputBytes'>>);

/**
 * The core's default caps on a WASI run's output (`coreConstants().wasiDefaults`): the page
 * holds what the worker streams to the caps it set, or to these.
 */
export const WASI_OUTPUT_CAPS = Object.freeze({
  /** Bytes of stdout a run may write. */
  maxStdoutBytes: 1 << 20,
  /** Bytes of stderr a run may write. */
  maxStderrBytes: 1 << 20,
} as const);

/**
 * How many spans a call's trace keeps: `trace: true` keeps `default`, `trace: { maxSpans }`
 * at most `max` (`coreConstants().traceSpans`).
 */
export const TRACE_SPANS = Object.freeze({
  default: 1_000,
  max: 100_000,
} as const);
