/**
 * Public types shared by the page API (`nestbox`) and the in-worker API (`nestbox/worker`).
 *
 * @module
 */

import type { CoreExport, CoreImport, CoreLimits, CoreMetrics, CoreTrace } from './nestbox.js';

declare const capabilityBrand: unique symbol;

/**
 * An opaque, frozen capability token made by `capability` (or `syncCapability`). It has no
 * properties: the function behind it is reachable only through the package's private table.
 */
export interface CapabilityToken {
  /** Type-only brand; the object has no such property. */
  readonly [capabilityBrand]: true;
}

/** The imports option: `{ [module]: { [name]: token } }`. */
export type ImportsObject = Readonly<Record<string, Readonly<Record<string, CapabilityToken>>>>;

/**
 * Which engine runs a guest: `'interpreter'` (the default: wasmi inside nestbox's core) or
 * `'native'` (the browser's own WebAssembly engine, the guest instrumented to meter itself;
 * needs JavaScript Promise Integration).
 */
export type Engine = 'interpreter' | 'native';

/** A WebAssembly numeric type. */
export type ValueType = 'i32' | 'i64' | 'f32' | 'f64';

/** A value crossing to or from the guest: `i64` as `bigint`, the others as `number`. */
export type Value = number | bigint;

/**
 * Limits of a sandbox, all per instance and enforced by the core; every field is optional
 * and defaults as in the README's table (all bounded). Every field is the core's, by the
 * core's name (`CoreLimits` in the generated `nestbox.d.ts`), so limits the core adds appear
 * here too; `maxMemoryBytes` is also the name of the call option that tightens it. An
 * unknown field or a value of the wrong type is a `TypeError` (`INVALID_ARGUMENT`), so a
 * typo never silently leaves a limit at its default.
 */
export type SandboxLimits = CoreLimits & {
  /**
   * The old name of `maxMemoryBytes`, still accepted. Giving both with different values is a
   * `TypeError` (`INVALID_ARGUMENT`).
   *
   * @deprecated Use `maxMemoryBytes`.
   */
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
  /** With `trace` in the call's options: its spans (OTLP JSON; see `nestbox`'s `spansOf`). */
  trace?: CoreTrace;
}

/**
 * The input of a data call (`call(name, input)`, the data ABI of `docs/data-abi.md`): bytes, a
 * string (sent as UTF-8) or any other JSON-serialisable value but an array (sent as its JSON
 * text; an array is a numeric call's arguments — pass `JSON.stringify(array)` instead).
 */
export type DataInput =
  Uint8Array | ArrayBuffer | string | number | boolean | null | { readonly [key: string]: unknown };

/** A data guest's log message. */
export interface LogLine {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

/** The result of a data call: the guest's output, read as bytes, text or JSON. */
export interface DataCallResult {
  /** A copy of the output's bytes. */
  bytes(): Uint8Array;
  /** The output as UTF-8 text; TypeError (`INVALID_ARGUMENT`) when it is not valid UTF-8. */
  text(): string;
  /** The output parsed as JSON; TypeError (`INVALID_ARGUMENT`) when it is not valid UTF-8 JSON. */
  json(): unknown;
  /** The output's length in bytes. */
  readonly byteLength: number;
  /** The guest's log messages during the call. */
  readonly logs: readonly LogLine[];
  /** The export's status (0), as a numeric result. */
  readonly results: Value[];
  /** What the call cost. */
  readonly metrics: Metrics;
  /** With `trace` in the call's options: its spans (OTLP JSON). */
  readonly trace?: CoreTrace;
}

/**
 * How far a running call got, reported between fuel slices (`onProgress` of a call or a WASI
 * run): the core's counters so far, and the guest's memory now.
 */
export interface ProgressSample {
  /** Fuel consumed so far (up to the end of the last slice). */
  fuelConsumed: number;
  /** Slices run so far. */
  slices: number;
  /** Host calls so far. */
  hostCalls: number;
  /** The guest's exported memory now, in bytes (0 when it exports none). */
  memoryBytes: number;
  /** The largest linear memory so far, in bytes. */
  peakMemoryBytes: number;
  /** Wall time since the call started, in milliseconds (the core's clock). */
  elapsedMs: number;
}

/** Options of one call; they can only tighten the sandbox's limits. */
export interface CallOptions {
  /** Cancels the call (`CANCELLED`), even an infinite loop, within about one fuel slice. */
  signal?: AbortSignal;
  /** Wall-clock limit of this call in milliseconds (`TIMEOUT`), at most `limits.timeoutMs`. */
  timeoutMs?: number;
  /** Fuel budget of this call (`FUEL_EXHAUSTED`), at most `limits.fuel`. */
  fuel?: number | bigint;
  /**
   * Largest linear memory during this call, in bytes, at most `limits.maxMemoryBytes`: growth
   * past it is refused as past that limit (-1, or `MEMORY_LIMIT` with `trapOnGrowFailure`); a
   * call whose instance already holds more is refused (`MEMORY_LIMIT`) before it runs.
   */
  maxMemoryBytes?: number | bigint;
  /**
   * Called with a {@link ProgressSample} after fuel slices while the call runs (at most one
   * per slice; none for a call that ends within its first). Only asked for when given: a
   * call without it costs no extra messages. A callback that throws is reported
   * (`reportError`; `console.error` in Node) and ignored.
   */
  onProgress?: (sample: ProgressSample) => void;
  /**
   * Records the call's trace — a span for the call, and under it one per capability call,
   * HTTP request and WASI call, with arguments, results or errno, fuel and time — as
   * `result.trace` (or `error.details.trace` when the call fails), in OTLP JSON. `true` keeps
   * up to 1,000 spans; `{ maxSpans }` from 1 to 100,000. Past it, the root span is marked
   * `nestbox.trace.truncated`. Off by default (a call then pays one check per host call).
   */
  trace?: boolean | { maxSpans: number };
}

/** Options of {@link Sandbox.load}-like methods. */
export interface LoadOptions {
  /**
   * The expected SHA-256 of the module, `sha256-<base64>` (as in Subresource Integrity) or 64
   * hex digits. Required: the bytes are verified before anything parses them.
   */
  integrity: string;
  /**
   * A detached signature over the module's digest, `<key id>:<base64>` (`nestbox sign`),
   * checked against the trust policy's keys (`SIGNATURE_INVALID`).
   */
  signature?: string;
  /**
   * Where the bytes come from (`https://cdn.example`, as `URL.origin`), for the policy's
   * `origins`. When the source is a URL, a string or a `Response`, the origin is that of the
   * URL the bytes were served from, and an `origin` that disagrees is a TypeError; for bytes,
   * this is all the policy knows.
   */
  origin?: string;
  /**
   * Which engine runs this module's instances (default: the sandbox's `engine`). `'native'`
   * needs JavaScript Promise Integration (`WebAssembly.Suspending`); without it the load is
   * `INVALID_ARGUMENT` with `details.engine` and `details.missing`.
   */
  engine?: Engine;
}

/** Options of `instantiate`. */
export interface InstantiateOptions {
  /**
   * The capabilities granted to the instance, by import: `{ [module]: { [name]: token } }`
   * (the import `module.name`). Every function the guest imports must be granted here.
   */
  imports?: ImportsObject;
  /** What a data guest reads with `config_get` (Extism's manifest `config`). */
  config?: Readonly<Record<string, string>>;
  /** Bytes a data guest's variables may hold (default 1 MiB; 0 disables them). */
  maxVarBytes?: number;
  /**
   * HTTP from a data guest (Extism's `http_request`), only to `allowedHosts` (exact names or
   * `*` wildcards, as Extism's manifest `allowed_hosts`); without it every request is
   * `HOST_ERROR`. Requests go through `fetch` (default: the global one, redirects refused);
   * the response body is at most `maxResponseBytes` (default 50 MiB, Extism's).
   */
  http?: HttpOptions;
}

/** The HTTP capability of a data guest (`InstantiateOptions.http`). */
export interface HttpOptions {
  allowedHosts: readonly string[];
  maxResponseBytes?: number;
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
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

/**
 * A directory tree given to a WASI guest: relative path (`a/b.txt`) to contents (a string
 * is stored as its UTF-8 bytes). Parent directories are made as needed; `null` is an empty
 * directory (`"empty/": null`).
 */
export type WasiTree = Readonly<Record<string, Uint8Array | string | null>>;

/** A directory the WASI guest sees at `guestPath` (fds 3, 4, … in order). */
export interface WasiPreopen {
  /** The name the guest sees: `/`, `/data`, `.`, … (absolute paths go to the longest matching prefix). */
  guestPath: string;
  /** Its initial contents (default: empty). */
  files?: WasiTree;
  /** Every change is refused (`EROFS` to the guest). Default false. */
  readOnly?: boolean;
}

/** Caps of a WASI run (defaults: 1 MiB each for stdout and stderr, 64 MiB and 10,000 files over all preopens). */
export interface WasiLimits {
  /** Going over ends the run with `OUTPUT_LIMIT` (the bytes up to the cap are kept). */
  maxStdoutBytes?: number | bigint;
  /** As `maxStdoutBytes`, for stderr. */
  maxStderrBytes?: number | bigint;
  /** Bytes of all files of all preopens, initial ones included (`ENOSPC` to the guest). */
  maxFsBytes?: number | bigint;
  /** Files, directories and symlinks of all preopens, initial ones included (`EDQUOT` to the guest). */
  maxFiles?: number | bigint;
}

/** Options of `runWasi`. Unknown fields are a TypeError (`INVALID_ARGUMENT`). */
export interface WasiRunOptions {
  /** The whole argv, `args[0]` being the program name (default `["guest"]`). */
  args?: readonly string[];
  /** The environment, in this order: an object (own-property order) or `[key, value]` pairs. */
  env?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  /** Shorthand for a writable preopen at `/` with these contents (fd 3, before `preopens`). */
  files?: WasiTree;
  /** Directories the guest sees. */
  preopens?: readonly WasiPreopen[];
  /**
   * Standard input: a string (UTF-8) or bytes, given up front; or an async source read a
   * chunk at a time as the guest asks for more (an `AsyncIterable` of `Uint8Array` or
   * strings, or a `ReadableStream<Uint8Array>`); the source is stopped (`return()` /
   * `cancel()`) when the run ends before it does. Default: empty.
   */
  stdin?: string | Uint8Array | AsyncIterable<Uint8Array | string> | ReadableStream<Uint8Array>;
  /** Called with each chunk of stdout as the guest writes it (after every fuel slice at most). */
  onStdout?: (chunk: Uint8Array) => void;
  /** As `onStdout`, for stderr. A callback that throws ends the run with `HOST_ERROR`. */
  onStderr?: (chunk: Uint8Array) => void;
  /**
   * Seeded `random_get` and fixed clocks (realtime from `startTimeNs`, default 0) that move
   * only when the guest sleeps, without waiting: the same inputs give the same outputs.
   */
  deterministic?: { seed: number | bigint; startTimeNs?: number | bigint };
  /** Cancels the run (`CANCELLED`), also while the guest sleeps or waits for stdin. */
  signal?: AbortSignal;
  /** Wall-clock limit of the run in milliseconds (`TIMEOUT`), at most the sandbox's. */
  timeoutMs?: number;
  /** Fuel budget of the run (`FUEL_EXHAUSTED`), at most the sandbox's. */
  fuel?: number | bigint;
  /** Largest linear memory of the run, in bytes, at most the sandbox's (as `CallOptions.maxMemoryBytes`). */
  maxMemoryBytes?: number | bigint;
  /** As `CallOptions.onProgress`: a {@link ProgressSample} after fuel slices while the guest runs. */
  onProgress?: (sample: ProgressSample) => void;
  /** As `CallOptions.trace`: the run's spans (`_start` and its WASI calls) as `result.trace`. */
  trace?: boolean | { maxSpans: number };
  /** Output and filesystem caps. */
  limits?: WasiLimits;
  /** Capabilities granted besides WASI, as in `instantiate` (not under `wasi_snapshot_preview1`). */
  imports?: ImportsObject;
}

/** One entry of a preopen's tree after a run. */
export type WasiFileEntry =
  | { readonly type: 'file'; readonly data: Uint8Array }
  | { readonly type: 'dir' }
  | { readonly type: 'symlink'; readonly target: string };

/** Each preopen's tree after the run, by guest path; each tree by relative path, every directory listed. */
export type WasiFiles = Record<string, Record<string, WasiFileEntry>>;

/** A WASI run that ended by returning from `_start` or by `proc_exit`. */
export interface WasiResult {
  /** `proc_exit`'s status, or 0 when `_start` returned. Any status is a result, not an error. */
  exitCode: number;
  /** Everything the guest wrote to stdout. */
  stdout: Uint8Array;
  /** Everything the guest wrote to stderr. */
  stderr: Uint8Array;
  /** `stdout` decoded as UTF-8. */
  readonly stdoutText: string;
  /** `stderr` decoded as UTF-8. */
  readonly stderrText: string;
  /** The preopens' trees after the run. */
  files: WasiFiles;
  /** What the run cost. */
  metrics: Metrics;
  /** With `trace` in the options: the run's spans (OTLP JSON). */
  trace?: CoreTrace;
}

/** A value that crosses a Go guest's membrane: JSON-like data and `Uint8Array`s (copied). */
export type GoData = undefined | null | boolean | number | string | Uint8Array | GoData[] | { [key: string]: GoData };

/** Options of `instantiateGo` (page sandboxes and `nestbox/worker`). */
export interface GoInstantiateOptions {
  /** What `js.Global()` holds besides the membrane's runtime shims: data and `goCapability` tokens. */
  globals?: Record<string, unknown>;
  /** `os.Args` (default `["js"]`). */
  argv?: string[];
  /** The environment. */
  env?: Record<string, string>;
  /**
   * Limits of `main`, of every `callGo` and of every run of the timers that fire while the
   * program is idle; each at most the sandbox's own (default: the sandbox's `timeoutMs` and
   * `limits.fuel`, 10¹⁰ by default, which Go programs need: Go's runtime burns fuel about 24×
   * faster than Rust for the same work).
   */
  timeoutMs?: number;
  fuel?: number;
  /** Where the guest's stdout and stderr go as it writes (default: kept, see `output()`). */
  onOutput?: (stdout: Uint8Array, stderr: Uint8Array) => void;
  /**
   * Called with the error that ended a run of timers while the program was idle (a Go panic
   * in a goroutine, a refused capability, a limit). Default: `reportError` (or `console.error`).
   * Either way the error is kept as the instance's `idleError`.
   */
  onIdleError?: (error: Error) => void;
}

/** Per-call options of `callGoWith`. */
export interface GoCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  fuel?: number;
}

/** What a `callGoWith` resolves with. */
export interface GoCallResult {
  /** What the Go function returned, copied out. */
  result: GoData;
  /** Set when the program exited (`os.Exit`) during the call. */
  exitCode?: number;
  metrics: Metrics;
}
