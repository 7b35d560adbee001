//! The JavaScript face of the core, driven by the worker script: [`Core`].
//!
//! This is the only module that knows about `wasm-bindgen`, `js-sys` and
//! `serde-wasm-bindgen`, and it is compiled for wasm32 only. It keeps the loaded modules and
//! live instances in tables keyed by `u32` ids (never reused), converts plain JavaScript
//! values to the core's types and back (see `convert.rs` for how numbers cross), and throws
//! every failure as a plain `{code, message, details}` record, converted in exactly one
//! place. The worker turns those records into its own error class.
//!
//! No input from JavaScript can make this module panic: every parameter is taken as an
//! untyped `JsValue` and checked, so a wrong type, a non-integer id or an unknown field is an
//! `INVALID_ARGUMENT` record, never a coercion to something valid.

mod audit;
mod convert;
mod direct;
mod gojs;
#[cfg(feature = "native-tier")]
mod native;
mod policy;

use std::collections::BTreeMap;

use wasm_bindgen::prelude::*;

use crate::cache::{CacheLimits, ModuleCache};
use crate::error::Error;
use crate::instance::{Instance, InstanceState, Step};
use crate::integrity::Digest;
use crate::memory::GuestMemory;
use crate::module::{ItemKind, Module};
use crate::sandbox::Sandbox;
use crate::value::Signature;

use convert::{
    array_from_js, bool_from_js, bytes_from_js, call_options_from_js, error_to_js, files_to_js,
    grants_from_js, index_from_js, limits_from_js, metrics_to_js, module_to_js, output_to_js,
    step_to_js, string_from_js, values_from_js, wasi_config_from_js,
};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Limits of a `Core`; every field is optional and defaults as in the Rust `Limits`. */
export interface CoreLimits {
  fuel?: number | bigint;
  fuelPerSlice?: number | bigint;
  hostCallFuel?: number | bigint;
  timeoutMs?: number | bigint;
  maxMemoryBytes?: number | bigint;
  maxTableElements?: number | bigint;
  maxInstances?: number;
  maxRecursionDepth?: number;
  maxModuleBytes?: number | bigint;
  maxInputBytes?: number | bigint;
  maxOutputBytes?: number | bigint;
  trapOnGrowFailure?: boolean;
  module?: {
    maxFunctions?: number;
    maxImports?: number;
    maxExports?: number;
    maxGlobals?: number;
    maxDataSegments?: number;
    maxElementSegments?: number;
    maxTables?: number;
    maxMemories?: number;
    maxLocalsPerFunction?: number;
    maxFunctionBodyBytes?: number;
  };
}

/** A WebAssembly numeric type. */
export type CoreValueType = "i32" | "i64" | "f32" | "f64";

/** A value crossing to or from the guest: i64 as bigint, the others as number. */
export type CoreValue = number | bigint;

/** One import of a loaded module. `params`/`results` only for numeric function types. */
export interface CoreImport {
  module: string;
  name: string;
  kind: "function" | "memory" | "table" | "global";
  type: string;
  params?: CoreValueType[];
  results?: CoreValueType[];
}

/** One export of a loaded module. */
export interface CoreExport {
  name: string;
  kind: "function" | "memory" | "table" | "global";
  type: string;
  params?: CoreValueType[];
  results?: CoreValueType[];
}

/** What `Core.load` returns. */
export interface CoreModule {
  moduleId: number;
  digest: string;
  sizeBytes: number;
  imports: CoreImport[];
  exports: CoreExport[];
}

/** One granted import. `direct`: answered by the instance's direct host (`setDirectHost`). */
export interface CoreGrant {
  module: string;
  name: string;
  capability: number;
  params: CoreValueType[];
  results: CoreValueType[];
  direct?: boolean;
}

/**
 * The host of an instance's direct grants, called from inside the guest's call: `link` is the
 * index of the granted import (`CoreDirectSetup.links`), its arguments are in the scratch, the
 * guest's memory is `memoryBytes` bytes at `memoryBase` of `CoreDirectSetup.memory`. Returns 0
 * with the results in the scratch, or 1 when it owes the answer (the call then suspends with a
 * `host` step whose `direct` is true). Must not throw and must not call this `Core`.
 */
export interface CoreDirectHost {
  hostCall(link: number, memoryBase: number, memoryBytes: number): number;
}

/** What `setDirectHost` returns. */
export interface CoreDirectSetup {
  /** Byte address of the scratch's 64-bit slots in `memory`. */
  scratch: number;
  /** How many slots it has (at least every direct grant's parameter and result count). */
  slots: number;
  /** nestbox's own memory (its buffer is replaced when it grows). */
  memory: WebAssembly.Memory;
  /** Each granted import, by link index. */
  links: { capability: number; import: string; direct: boolean }[];
}

/** Per-call options; they can only tighten the core's limits. */
export interface CoreCallOptions {
  fuel?: number | bigint;
  timeoutMs?: number | bigint;
  /** Largest linear memory during this call, in bytes (at most the sandbox's). */
  maxMemoryBytes?: number | bigint;
  /** Record a trace of the call keeping at most this many spans (1 to 100000); `takeTrace` after. */
  trace?: number;
}

/** One attribute of a span (OTLP/JSON: 64-bit integers as decimal strings). */
export interface CoreTraceAttribute {
  key: string;
  value: { stringValue: string } | { intValue: string } | { boolValue: boolean };
}

/** One span (OTLP/JSON). `parentSpanId` is empty for the root (the export call). */
export interface CoreSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: CoreTraceAttribute[];
  status: { code: number; message?: string };
}

/** A call's trace: OTLP/JSON's `ExportTraceServiceRequest` with one resource and one scope. */
export interface CoreTrace {
  resourceSpans: {
    resource: { attributes: CoreTraceAttribute[] };
    scopeSpans: { scope: { name: string; version: string }; spans: CoreSpan[] }[];
  }[];
}

/** What one call cost. */
export interface CoreMetrics {
  fuelConsumed: number;
  slices: number;
  hostCalls: number;
  peakMemoryBytes: number;
  wallTimeUs: number;
}

/**
 * What a suspended WASI guest waits for: a clock (wait `durationMs`, then `resume`), or data
 * on its async stdin (`resumeStdin` with up to `maxBytes`; more is buffered).
 */
export type CoreWasiWait = { kind: "sleep"; durationMs: number } | { kind: "stdin"; maxBytes: number };

/** What a call did in its latest step. `wait` only when a WASI guest waits (not a fuel slice). */
export type CoreStep =
  | { status: "finished"; results: CoreValue[]; exitCode?: number; metrics: CoreMetrics; output?: Uint8Array }
  | { status: "yield"; wait?: CoreWasiWait }
  | { status: "host"; capability: number; import: string; args: CoreValue[]; http?: CoreHttpRequest; direct?: true };

/** A data guest's HTTP request to an allowed host: answer with `resumeHttp`. */
export interface CoreHttpRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** The answer to a `CoreHttpRequest`. */
export interface CoreHttpResponse {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array;
}

/**
 * A preopen's initial tree: relative path to contents (a string is stored as UTF-8);
 * `null` is a directory (a key ending in `/` must be `null`).
 */
export type CoreWasiTree = Record<string, Uint8Array | ArrayBuffer | string | null>;

/** One preopened directory; fds 3, 4, … in array order. */
export interface CorePreopen {
  guestPath: string;
  files?: CoreWasiTree;
  readOnly?: boolean;
}

/** What a WASI guest gets; every field optional, defaults as in the Rust `WasiConfig`. */
export interface CoreWasiConfig {
  /** The whole argv, `args[0]` being the program name. Default `["guest"]`. */
  args?: string[];
  /** In order: `[key, value]` pairs, or an object (own-property order). */
  env?: [string, string][] | Record<string, string>;
  preopens?: CorePreopen[];
  /** Bytes given up front (then end of file), `"async"` (fed with `resumeStdin`/`pushStdin`), or `null`/absent (empty). */
  stdin?: Uint8Array | ArrayBuffer | "async" | null;
  maxStdoutBytes?: number | bigint;
  maxStderrBytes?: number | bigint;
  maxFsBytes?: number | bigint;
  maxFiles?: number | bigint;
  /** Seeded `random_get` and clocks that move only when the guest sleeps. */
  deterministic?: { seed: number | bigint; startTimeNs?: number | bigint } | null;
  /** Capabilities besides WASI, as in `instantiate`. */
  grants?: CoreGrant[];
  /** What a data call's guest reads with `config_get`. */
  config?: Record<string, string>;
  /** Bytes its variables may hold (default 1 MiB; 0 disables them). */
  maxVarBytes?: number | bigint;
}

/** The data ABI's configuration of an instance (`instantiate`'s third argument). */
export interface CoreDataConfig {
  config?: Record<string, string>;
  maxVarBytes?: number | bigint;
  /** HTTP from the guest, only to these hosts (`*` wildcards); answered by `capability`. */
  http?: { capability: number; allowedHosts: string[]; maxResponseBytes?: number | bigint } | null;
}

/** A data guest's log message. */
export interface CoreLogLine {
  level: "trace" | "debug" | "info" | "warn" | "error";
  message: string;
}

/** stdout and stderr written since the last `takeOutput`. */
export interface CoreOutput {
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** One entry of a preopen's tree read back. */
export type CoreFsEntry =
  | { type: "file"; data: Uint8Array }
  | { type: "dir" }
  | { type: "symlink"; target: string };

/** Each preopen's tree by guest path, each tree by relative path (every directory listed). */
export type CoreWasiFiles = Record<string, Record<string, CoreFsEntry>>;

/** Every error the core throws (and what `failHost`/`cancel` return). */
export interface CoreErrorRecord {
  code: string;
  message: string;
  details: {
    trapCode?: string;
    expectedDigest?: string;
    actualDigest?: string;
    imports?: string[];
    capability?: number;
    cause?: string;
    limit?: number;
    metrics?: CoreMetrics;
    [key: string]: unknown;
  };
}

/** What `coreConstants()` returns: the core's lists and defaults. */
export interface CoreConstants {
  errorCodes: string[];
  trapCodes: string[];
  auditEvents: CoreAuditEvent[];
  hostFailureCodes: CoreHostFailureCode[];
  limitCodes: string[];
  defaults: Required<CoreLimits>;
  wasiDefaults: { args: string[]; maxStdoutBytes: number; maxStderrBytes: number; maxFsBytes: number; maxFiles: number };
  traceSpans: { default: number; max: number };
}
"#;

/// `coreConstants()`: the core's lists and defaults that the TypeScript package mirrors —
/// error codes, trap codes, audit events, the codes that may end a host call, the codes that
/// are limits, the default `Limits` and the WASI defaults, by their camelCase names. The
/// package's test compares its own constants with these.
#[wasm_bindgen(js_name = coreConstants, unchecked_return_type = "CoreConstants")]
pub fn core_constants() -> Result<JsValue, JsValue> {
    use crate::audit::AuditEvent;
    use crate::error::{ErrorCode, TrapCode};
    let codes = |list: &[ErrorCode]| list.iter().map(|c| c.as_str()).collect::<Vec<_>>();
    let wasi = crate::wasi::WasiConfig::default();
    let limit_codes: Vec<ErrorCode> = ErrorCode::ALL
        .into_iter()
        .filter(|c| c.is_limit())
        .collect();
    let constants = serde_json::json!({
        "errorCodes": codes(&ErrorCode::ALL),
        "trapCodes": TrapCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "auditEvents": AuditEvent::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "hostFailureCodes": codes(&ErrorCode::HOST_FAILURES),
        "limitCodes": codes(&limit_codes),
        "defaults": crate::limits::Limits::default(),
        "wasiDefaults": {
            "args": wasi.args,
            "maxStdoutBytes": wasi.max_stdout_bytes,
            "maxStderrBytes": wasi.max_stderr_bytes,
            "maxFsBytes": wasi.max_fs_bytes,
            "maxFiles": wasi.max_files,
        },
        "traceSpans": {
            "default": crate::trace::DEFAULT_MAX_SPANS,
            "max": crate::trace::MAX_SPANS_LIMIT,
        },
    });
    js_sys::JSON::parse(&constants.to_string())
}

thread_local! {
    /// The worker's module cache: every `Core` in this thread (the sandboxes of a shared
    /// worker, or one sandbox loading the same bytes again) reuses the compiled code of bytes
    /// that verified to the same digest under the same engine configuration.
    static MODULE_CACHE: ModuleCache = ModuleCache::new(CacheLimits::default());
}

/// A loaded module and the instances the worker created from it, keyed by id.
///
/// Constructed once per worker with the sandbox's limits; every method either returns a
/// plain value or throws a `{code, message, details}` record.
#[wasm_bindgen]
pub struct Core {
    sandbox: Sandbox,
    modules: BTreeMap<u32, Module>,
    instances: BTreeMap<u32, InstanceEntry>,
    /// The native tier's instances (their ids from the same counter as `instances`).
    #[cfg(feature = "native-tier")]
    natives: BTreeMap<u32, crate::instance::native::NativeInstance>,
    /// The id the next module gets; ids start at 1 and are never reused.
    next_module_id: u32,
    /// The id the next instance gets; ids start at 1 and are never reused.
    next_instance_id: u32,
}

/// One live instance.
struct InstanceEntry {
    instance: Instance,
}

/// Converts a core error to the thrown record.
fn throw(error: Error) -> JsValue {
    error_to_js(&error)
}

/// The next id of a counter that never reuses ids.
fn take_id(next: &mut u32, what: &str) -> Result<u32, Error> {
    let id = *next;
    *next = next
        .checked_add(1)
        .ok_or_else(|| Error::invalid_argument(format!("{what} ids are exhausted")))?;
    Ok(id)
}

#[wasm_bindgen]
impl Core {
    /// `new Core(limits?, policy?)`: a sandbox enforcing `limits`, a plain object with the
    /// camelCase fields of the Rust `Limits` (missing fields take their defaults; 64-bit
    /// limits accept a number or a `BigInt` up to 2^53-1), that loads only what `policy`
    /// (`CorePolicy`, see `policy.rs`) allows; without a policy, any module whose integrity
    /// checks out.
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown field, a value of the wrong type, limits
    /// that cannot work (e.g. `fuelPerSlice: 0`) or a malformed policy (bad digest, key or
    /// origin).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_optional_param_type = "CoreLimits")] limits: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CorePolicy")] policy: JsValue,
    ) -> Result<Core, JsValue> {
        console_error_panic_hook::set_once();
        let limits = limits_from_js(&limits).map_err(throw)?;
        let policy = policy::policy_from_js(&policy).map_err(throw)?;
        let cache = MODULE_CACHE.with(ModuleCache::clone);
        let sandbox = Sandbox::with_cache(limits, policy, &cache).map_err(throw)?;
        Ok(Core {
            sandbox,
            modules: BTreeMap::new(),
            instances: BTreeMap::new(),
            #[cfg(feature = "native-tier")]
            natives: BTreeMap::new(),
            next_module_id: 1,
            next_instance_id: 1,
        })
    }

    /// `load(bytes, integrity)`: verifies `bytes` (a `Uint8Array`) against `integrity`
    /// (`sha256-<base64>` or 64 hex digits), validates them, and returns
    /// `{moduleId, digest, sizeBytes, imports, exports}`.
    ///
    /// Throws `MODULE_TOO_LARGE`, `INTEGRITY_MISMATCH`, `INVALID_MODULE` or
    /// `INVALID_ARGUMENT`.
    #[wasm_bindgen(unchecked_return_type = "CoreModule")]
    pub fn load(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] integrity: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreProvenance")] provenance: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.load_impl(&bytes, &integrity, &provenance)
            .map_err(throw)
    }

    /// `instantiate(moduleId, grants)`: links the module against `grants`
    /// (`[{module, name, capability, params, results}]`) in a fresh store and returns the new
    /// instance's id.
    ///
    /// Throws `IMPORT_NOT_GRANTED`, `SIGNATURE_MISMATCH`, `INSTANCE_LIMIT`, `MEMORY_LIMIT`,
    /// `TABLE_LIMIT`, errors of a start function, or `INVALID_ARGUMENT`.
    pub fn instantiate(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreGrant[]")] grants: JsValue,
    ) -> Result<u32, JsValue> {
        self.instantiate_impl(&module_id, &grants, &JsValue::UNDEFINED)
            .map_err(throw)
    }

    /// `instantiateWithData(moduleId, grants, data)`: `instantiate` with the data ABI's
    /// configuration (`{config, maxVarBytes}`, both optional).
    ///
    /// Throws as `instantiate`, and `INVALID_ARGUMENT` for a bad `data`.
    #[wasm_bindgen(js_name = instantiateWithData)]
    pub fn instantiate_with_data(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreGrant[]")] grants: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreDataConfig")] data: JsValue,
    ) -> Result<u32, JsValue> {
        self.instantiate_impl(&module_id, &grants, &data)
            .map_err(throw)
    }

    /// `startData(instanceId, exportName, input, options?)`: starts a data call (the data
    /// ABI, `extism:host/env`) of an export `() -> ()` or `() -> i32` with `input` (a
    /// `Uint8Array`); its `finished` step has `output` (a `Uint8Array`).
    ///
    /// Throws as `start`, `INPUT_LIMIT` (the instance stays usable), and when the call ends,
    /// `GUEST_ERROR` (the guest's status or message; the instance stays usable).
    #[wasm_bindgen(js_name = startData, unchecked_return_type = "CoreStep")]
    pub fn start_data(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(js_name = exportName, unchecked_param_type = "string")] export: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] input: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreCallOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.start_data_impl(&instance_id, &export, &input, &options)
            .map_err(throw)
    }

    /// `resumeHttp(instanceId, response)`: answers a `host` step with `http` (a data guest's
    /// request) with `{status, headers?, body?}` and continues the call.
    ///
    /// Throws `INVALID_ARGUMENT` if the call is not waiting for an HTTP response (nothing
    /// changes) or the response is malformed; `HOST_ERROR` for a body over the capability's
    /// `maxResponseBytes`; or the error the next step ended in.
    #[wasm_bindgen(js_name = resumeHttp, unchecked_return_type = "CoreStep")]
    pub fn resume_http(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreHttpResponse")] response: JsValue,
    ) -> Result<JsValue, JsValue> {
        let response = convert::http_response_from_js(&response).map_err(throw)?;
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        let result = entry.instance.resume_http(response);
        entry.step(result).map_err(throw)
    }

    /// `takeTrace(instanceId)`: the trace of the instance's latest call made with
    /// `options.trace`, once it ended (returned, exited or failed), as OTLP JSON
    /// (`{resourceSpans: [...]}`), taken; `undefined` when there is none.
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown id.
    #[wasm_bindgen(js_name = takeTrace, unchecked_return_type = "CoreTrace | undefined")]
    pub fn take_trace(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        let Some(trace) = entry.instance.take_trace() else {
            return Ok(JsValue::UNDEFINED);
        };
        // Plain JSON objects (strings for 64-bit times, as OTLP/JSON has them).
        js_sys::JSON::parse(&trace.to_otlp_json().to_string())
    }

    /// `takeLogs(instanceId)`: the log messages of the latest data call, taken.
    #[wasm_bindgen(js_name = takeLogs, unchecked_return_type = "CoreLogLine[]")]
    pub fn take_logs(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        Ok(convert::logs_to_js(&entry.instance.take_logs()))
    }

    /// `instantiateWasi(moduleId, config)`: links the module against WASI preview1 (configured
    /// by `config`: `{args, env, preopens, stdin, maxStdoutBytes, maxStderrBytes, maxFsBytes,
    /// maxFiles, deterministic, grants}`, all optional) and the capabilities in
    /// `config.grants`, in a fresh store; returns the new instance's id. Run it with
    /// `start(id, "_start", [])`.
    ///
    /// Throws as `instantiate`, and `INVALID_ARGUMENT` for an unknown field, a value of the
    /// wrong type, or a configuration the core refuses (NUL in an argument, a bad or
    /// duplicate preopen path, initial files over a quota, a grant under
    /// `wasi_snapshot_preview1`).
    #[wasm_bindgen(js_name = instantiateWasi)]
    pub fn instantiate_wasi(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreWasiConfig")] config: JsValue,
    ) -> Result<u32, JsValue> {
        self.instantiate_wasi_impl(&module_id, &config)
            .map_err(throw)
    }

    /// `resumeStdin(instanceId, bytes, eof)`: answers a `yield` step waiting for stdin
    /// (`wait.kind === "stdin"`): appends `bytes` (a `Uint8Array`) to stdin and/or ends it,
    /// then continues the call.
    ///
    /// Throws `INVALID_ARGUMENT` (nothing changes) if the call is not waiting for stdin, or
    /// `bytes` is empty and `eof` false; `TIMEOUT`; or the error the next step ended in.
    #[wasm_bindgen(js_name = resumeStdin, unchecked_return_type = "CoreStep")]
    pub fn resume_stdin(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(unchecked_param_type = "boolean")] eof: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.resume_stdin_impl(&instance_id, &bytes, &eof)
            .map_err(throw)
    }

    /// `pushStdin(instanceId, bytes, eof)`: appends `bytes` to an async stdin and/or ends it,
    /// at any time (a later read sees them).
    ///
    /// Throws `INVALID_ARGUMENT` without WASI, when stdin was given as bytes, or after end of
    /// file with more bytes.
    #[wasm_bindgen(js_name = pushStdin)]
    pub fn push_stdin(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(unchecked_param_type = "boolean")] eof: JsValue,
    ) -> Result<(), JsValue> {
        self.push_stdin_impl(&instance_id, &bytes, &eof)
            .map_err(throw)
    }

    /// `takeOutput(instanceId)`: `{stdout, stderr}`, the bytes written since the last call
    /// (both empty without WASI). Call it between steps to stream, and once after the call
    /// ends — also after an error such as `OUTPUT_LIMIT`, for the bytes up to the cap.
    #[wasm_bindgen(js_name = takeOutput, unchecked_return_type = "CoreOutput")]
    pub fn take_output(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        #[cfg(feature = "native-tier")]
        if let Some(native) = self.native_by_id(&instance_id) {
            let (stdout, stderr) = native.take_output();
            return Ok(output_to_js(&stdout, &stderr));
        }
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        let (stdout, stderr) = entry.instance.take_output();
        Ok(output_to_js(&stdout, &stderr))
    }

    /// `startFuel(instanceId)`: the fuel the instance's start function consumed while it was
    /// instantiated (0 without a start function).
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown instance.
    #[wasm_bindgen(js_name = startFuel)]
    pub fn start_fuel(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<f64, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        // Fuel is at most `Limits::fuel`, itself below 2^53 (checked where the limits are read).
        Ok(entry.instance.start_fuel_consumed() as f64)
    }

    /// `wasiFiles(instanceId)`: each preopen's tree as it is now, by guest path (`{}` without
    /// WASI): `{"/data": {"a": {type: "dir"}, "a/b.txt": {type: "file", data}, "l":
    /// {type: "symlink", target}}}`.
    #[wasm_bindgen(js_name = wasiFiles, unchecked_return_type = "CoreWasiFiles")]
    pub fn wasi_files(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        #[cfg(feature = "native-tier")]
        if let Some(native) = self.native_by_id(&instance_id) {
            return files_to_js(&native.wasi_files()).map_err(throw);
        }
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        files_to_js(&entry.instance.wasi_files()).map_err(throw)
    }

    /// `start(instanceId, exportName, args, options?)`: starts calling the exported function
    /// `exportName` with `args` (typed by its signature) and returns the first step.
    ///
    /// Throws `BUSY`, `POISONED`, `INVALID_ARGUMENT` (unknown export, wrong count or type of
    /// arguments), or the error the first step ended in.
    #[wasm_bindgen(unchecked_return_type = "CoreStep")]
    pub fn start(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(js_name = exportName, unchecked_param_type = "string")] export: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreValue[]")] args: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreCallOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.start_impl(&instance_id, &export, &args, &options)
            .map_err(throw)
    }

    /// `resume(instanceId)`: continues a call after a `yield` step.
    ///
    /// Throws `INVALID_ARGUMENT` if the call is not at a yield (nothing changes), `TIMEOUT`,
    /// or the error the next step ended in.
    #[wasm_bindgen(unchecked_return_type = "CoreStep")]
    pub fn resume(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.resume_impl(&instance_id).map_err(throw)
    }

    /// `resumeHost(instanceId, results)`: answers a `host` step with the host function's
    /// results (an array typed by the capability's declared results) and continues the call.
    ///
    /// Throws `INVALID_ARGUMENT` if the instance is not waiting for a host answer or
    /// `results` is not an array (nothing changes). Results of the wrong count or type end
    /// the call with `HOST_ERROR`, as in the core: the host function broke its signature.
    #[wasm_bindgen(js_name = resumeHost, unchecked_return_type = "CoreStep")]
    pub fn resume_host(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreValue[]")] results: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.resume_host_impl(&instance_id, &results).map_err(throw)
    }

    /// `failHost(instanceId, message, code?)`: ends a call waiting at a `host` step with
    /// `code` — `HOST_ERROR` (the default; `details.cause` is `message`),
    /// `CAPABILITY_REVOKED`, `CAPABILITY_QUOTA` (both logged as `deny` audit entries),
    /// `TIMEOUT`, or `TRAP` (`memory_out_of_bounds`: a host function's out-of-bounds access)
    /// — and returns that error record (with metrics); the instance is poisoned.
    ///
    /// Throws `INVALID_ARGUMENT` (nothing changes) if the instance is not waiting for a host
    /// answer, or for any other code.
    #[wasm_bindgen(js_name = failHost, unchecked_return_type = "CoreErrorRecord")]
    pub fn fail_host(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreHostFailureCode")] code: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.fail_host_impl(&instance_id, &message, &code)
            .map_err(throw)
    }

    /// `cancel(instanceId)`: cancels the running call, poisoning the instance, and returns the
    /// `CANCELLED` error record (with metrics); `undefined` when no call is running.
    #[wasm_bindgen(unchecked_return_type = "CoreErrorRecord | undefined")]
    pub fn cancel(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.cancel_impl(&instance_id).map_err(throw)
    }

    /// `memoryRead(instanceId, ptr, len)`: a copy of `len` bytes of the guest's exported
    /// memory at `ptr`, as a `Uint8Array`.
    ///
    /// Throws `TRAP` (`details.trapCode: "memory_out_of_bounds"`) if any byte is outside the
    /// memory (an instance without an exported memory has none).
    #[wasm_bindgen(js_name = memoryRead)]
    pub fn memory_read(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] ptr: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] len: JsValue,
    ) -> Result<js_sys::Uint8Array, JsValue> {
        self.memory_read_impl(&instance_id, &ptr, &len)
            .map_err(throw)
    }

    /// `memoryWrite(instanceId, ptr, bytes)`: copies `bytes` (a `Uint8Array`) into the
    /// guest's memory at `ptr`, all or nothing.
    ///
    /// Throws `TRAP` (`memory_out_of_bounds`) if the range leaves the memory.
    #[wasm_bindgen(js_name = memoryWrite)]
    pub fn memory_write(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] ptr: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
    ) -> Result<(), JsValue> {
        self.memory_write_impl(&instance_id, &ptr, &bytes)
            .map_err(throw)
    }

    /// `memorySize(instanceId)`: the size of the guest's exported memory in bytes (0 when it
    /// exports none).
    #[wasm_bindgen(js_name = memorySize)]
    pub fn memory_size(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<f64, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        Ok(entry.instance.memory().map_or(0, |m| m.size_bytes()) as f64)
    }

    /// `progress(instanceId)`: the metrics of the call running on the instance so far (as in
    /// a finished call's), or `undefined` when none runs; for progress reports between slices.
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown id.
    #[wasm_bindgen(unchecked_return_type = "CoreMetrics | undefined")]
    pub fn progress(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        match entry.instance.progress() {
            None => Ok(JsValue::UNDEFINED),
            Some(metrics) => metrics_to_js(&metrics).map_err(throw),
        }
    }

    /// `dropInstance(instanceId)`: drops an instance (cancelling any suspended call) and frees
    /// its place among the live instances. Its id is never used again.
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown id.
    #[wasm_bindgen(js_name = dropInstance)]
    pub fn drop_instance(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<(), JsValue> {
        let id = index_from_js(&instance_id, "instanceId").map_err(throw)?;
        #[cfg(feature = "native-tier")]
        if self.natives.remove(&id).is_some() {
            return Ok(());
        }
        match self.instances.remove(&id) {
            Some(_) => Ok(()),
            None => Err(throw(unknown_id("instance", id))),
        }
    }

    /// `dropModule(moduleId)`: forgets a loaded module. Instances created from it keep
    /// working. Its id is never used again.
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown id.
    #[wasm_bindgen(js_name = dropModule)]
    pub fn drop_module(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
    ) -> Result<(), JsValue> {
        let id = index_from_js(&module_id, "moduleId").map_err(throw)?;
        match self.modules.remove(&id) {
            Some(_) => Ok(()),
            None => Err(throw(unknown_id("module", id))),
        }
    }

    /// `setDirectHost(instanceId, host)`: installs `host` (a `CoreDirectHost`) to answer the
    /// instance's direct grants from inside its calls, and returns where the scratch and the
    /// memory are (`CoreDirectSetup`). `host` replaces any earlier one.
    ///
    /// Throws `BUSY` during a call, `INVALID_ARGUMENT` for an unknown id or a `host` without a
    /// `hostCall` function.
    #[wasm_bindgen(js_name = setDirectHost, unchecked_return_type = "CoreDirectSetup")]
    pub fn set_direct_host(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreDirectHost")] host: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.set_direct_host_impl(&instance_id, host).map_err(throw)
    }

    /// `liveInstances()`: how many instances are alive (counted against `maxInstances`).
    #[wasm_bindgen(js_name = liveInstances)]
    pub fn live_instances(&self) -> u32 {
        self.sandbox.live_instances()
    }
}

/// `benchBareHostCalls(bytes, host, calls)`: for `make bench-browser` only — `run(calls)` of
/// a guest importing `env.next: (i32) -> i32` in plain wasmi (the sandbox's engine
/// configuration, no sandbox), each call of `next` a direct call of `host.next(i)`: the floor
/// nestbox's own host-call path is compared with. Returns `run`'s result.
#[wasm_bindgen(js_name = benchBareHostCalls)]
pub fn bench_bare_host_calls(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
    host: direct::BenchHost,
    #[wasm_bindgen(unchecked_param_type = "number")] calls: JsValue,
) -> Result<i32, JsValue> {
    let bytes = bytes_from_js(&bytes, "bytes").map_err(throw)?;
    let calls = index_from_js(&calls, "calls").map_err(throw)?;
    direct::bench_bare_host_calls(&bytes, host, calls as i32).map_err(throw)
}

fn unknown_id(what: &str, id: u32) -> Error {
    Error::invalid_argument(format!(
        "unknown {what} id {id} (never created, or already dropped)"
    ))
}

impl Core {
    fn instance_mut(&mut self, id: &JsValue) -> Result<&mut InstanceEntry, Error> {
        let id = index_from_js(id, "instanceId")?;
        self.instances
            .get_mut(&id)
            .ok_or_else(|| unknown_id("instance", id))
    }

    fn load_impl(
        &mut self,
        bytes: &JsValue,
        integrity: &JsValue,
        provenance: &JsValue,
    ) -> Result<JsValue, Error> {
        let bytes = bytes_from_js(bytes, "bytes")?;
        let integrity = Digest::parse(&string_from_js(integrity, "integrity")?)?;
        let provenance = policy::provenance_from_js(provenance)?;
        let module = self.sandbox.load_with(&bytes, &integrity, &provenance)?;
        let id = take_id(&mut self.next_module_id, "module")?;
        let record = module_to_js(id, &module);
        self.modules.insert(id, module);
        Ok(record)
    }

    fn instantiate_impl(
        &mut self,
        module_id: &JsValue,
        grants: &JsValue,
        data: &JsValue,
    ) -> Result<u32, Error> {
        let module_id = index_from_js(module_id, "moduleId")?;
        let grants = grants_from_js(grants)?;
        let data = convert::data_config_from_js(data)?;
        let module = self
            .modules
            .get(&module_id)
            .ok_or_else(|| unknown_id("module", module_id))?;
        let instance = self.sandbox.instantiate_with_data(module, &grants, &data)?;
        let id = take_id(&mut self.next_instance_id, "instance")?;
        self.instances.insert(id, InstanceEntry { instance });
        Ok(id)
    }

    fn instantiate_wasi_impl(
        &mut self,
        module_id: &JsValue,
        config: &JsValue,
    ) -> Result<u32, Error> {
        let module_id = index_from_js(module_id, "moduleId")?;
        let config = wasi_config_from_js(config)?;
        let module = self
            .modules
            .get(&module_id)
            .ok_or_else(|| unknown_id("module", module_id))?;
        let mut instance = self.sandbox.instantiate_wasi(module, &config)?;
        // The package streams the output (`takeOutput`) and keeps its own copy: the core keeps
        // none, and a WASI instance kept for many calls is capped per call.
        instance.set_retain_output(false);
        let id = take_id(&mut self.next_instance_id, "instance")?;
        self.instances.insert(id, InstanceEntry { instance });
        Ok(id)
    }

    fn resume_stdin_impl(
        &mut self,
        instance_id: &JsValue,
        bytes: &JsValue,
        eof: &JsValue,
    ) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        let bytes = bytes_from_js(bytes, "bytes")?;
        let eof = bool_from_js(eof, "eof")?;
        let result = entry.instance.resume_stdin(&bytes, eof);
        entry.step(result)
    }

    fn push_stdin_impl(
        &mut self,
        instance_id: &JsValue,
        bytes: &JsValue,
        eof: &JsValue,
    ) -> Result<(), Error> {
        let bytes = bytes_from_js(bytes, "bytes")?;
        let eof = bool_from_js(eof, "eof")?;
        #[cfg(feature = "native-tier")]
        if let Some(native) = self.native_by_id(instance_id) {
            return native.push_stdin(&bytes, eof);
        }
        let entry = self.instance_mut(instance_id)?;
        entry.instance.push_stdin(&bytes, eof)
    }

    fn start_data_impl(
        &mut self,
        instance_id: &JsValue,
        export: &JsValue,
        input: &JsValue,
        options: &JsValue,
    ) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        let export = string_from_js(export, "export")?;
        let input = bytes_from_js(input, "input")?;
        let options = call_options_from_js(options)?;
        let result = entry.instance.start_data(&export, &input, &options);
        entry.step(result)
    }

    fn start_impl(
        &mut self,
        instance_id: &JsValue,
        export: &JsValue,
        args: &JsValue,
        options: &JsValue,
    ) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        let export = string_from_js(export, "export")?;
        let args = array_from_js(args, "args")?;
        let options = call_options_from_js(options)?;
        // The arguments are read by the export's signature. When the export is unknown, or the
        // instance is busy or poisoned, the core reports that (in its own order) from an empty
        // argument list.
        let values = match entry.export_signature(&export) {
            Some(signature) if entry.instance.state() == InstanceState::Idle => values_from_js(
                &signature.params,
                &args,
                &format!("arguments of {export:?}"),
            )?,
            _ => Vec::new(),
        };
        let result = entry.instance.start_with(&export, &values, &options);
        entry.step(result)
    }

    fn resume_impl(&mut self, instance_id: &JsValue) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        let result = entry.instance.resume();
        entry.step(result)
    }

    fn resume_host_impl(
        &mut self,
        instance_id: &JsValue,
        results: &JsValue,
    ) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        // The types the core will check the answer against, to read the JS values as.
        let Some(types) = entry.instance.pending_host_results().map(<[_]>::to_vec) else {
            return Err(not_waiting_for_host(entry));
        };
        let results = array_from_js(results, "results")?;
        let values = match values_from_js(&types, &results, "results of the host call") {
            Ok(values) => values,
            Err(e) => {
                // As the core does for results of the wrong type: the call ends.
                let error = Error::new(crate::error::ErrorCode::HostError, e.message());
                return Err(entry.instance.fail_host(error));
            }
        };
        let result = entry.instance.resume_host(&values);
        entry.step(result)
    }

    fn fail_host_impl(
        &mut self,
        instance_id: &JsValue,
        message: &JsValue,
        code: &JsValue,
    ) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        let message = string_from_js(message, "message")?;
        let error = audit::host_failure_from_js(&message, code)?;
        if entry.instance.pending_host_results().is_none() {
            return Err(not_waiting_for_host(entry));
        }
        let error = entry.instance.fail_host(error);
        Ok(error_to_js(&error))
    }

    fn cancel_impl(&mut self, instance_id: &JsValue) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        Ok(entry
            .instance
            .cancel()
            .map_or(JsValue::UNDEFINED, |e| error_to_js(&e)))
    }

    fn set_direct_host_impl(
        &mut self,
        instance_id: &JsValue,
        host: JsValue,
    ) -> Result<JsValue, Error> {
        let entry = self.instance_mut(instance_id)?;
        let has_call = js_sys::Reflect::get(&host, &JsValue::from_str("hostCall"))
            .is_ok_and(|f| f.is_function());
        if !host.is_object() || !has_call {
            return Err(Error::invalid_argument(
                "setDirectHost: host must be an object with a hostCall function",
            ));
        }
        let module = entry.instance.module().clone();
        let mut slots = 1;
        let links = js_sys::Array::new();
        for (capability, import, direct) in entry.instance.granted_imports() {
            let record = js_sys::Object::new();
            convert::set(&record, "capability", &JsValue::from(capability.0));
            convert::set(&record, "import", &JsValue::from_str(import));
            convert::set(&record, "direct", &JsValue::from_bool(direct));
            links.push(&record);
            if let Some(signature) = module
                .imports()
                .iter()
                .find(|i| i.qualified_name() == import)
                .and_then(|i| i.signature.as_ref())
            {
                slots = slots
                    .max(signature.params.len())
                    .max(signature.results.len());
            }
        }
        let host = direct::JsDirect::new(host.unchecked_into(), slots);
        let scratch = host.scratch_address();
        entry.instance.set_direct_host(Some(Box::new(host)))?;
        let setup = js_sys::Object::new();
        convert::set(&setup, "scratch", &JsValue::from(scratch as f64));
        convert::set(&setup, "slots", &JsValue::from(slots as f64));
        convert::set(&setup, "memory", &wasm_bindgen::memory());
        convert::set(&setup, "links", &links);
        Ok(setup.into())
    }

    fn memory_read_impl(
        &mut self,
        instance_id: &JsValue,
        ptr: &JsValue,
        len: &JsValue,
    ) -> Result<js_sys::Uint8Array, Error> {
        let entry = self.instance_mut(instance_id)?;
        let ptr = index_from_js(ptr, "ptr")?;
        let len = index_from_js(len, "len")?;
        let bytes = match entry.instance.memory() {
            Some(memory) => js_sys::Uint8Array::from(memory.read(ptr, len)?),
            None => js_sys::Uint8Array::from(GuestMemory::empty().read(ptr, len)?),
        };
        Ok(bytes)
    }

    fn memory_write_impl(
        &mut self,
        instance_id: &JsValue,
        ptr: &JsValue,
        bytes: &JsValue,
    ) -> Result<(), Error> {
        let entry = self.instance_mut(instance_id)?;
        let ptr = index_from_js(ptr, "ptr")?;
        let bytes = bytes_from_js(bytes, "bytes")?;
        match entry.instance.memory() {
            Some(mut memory) => memory.write(ptr, &bytes),
            None => GuestMemory::empty().write(ptr, &bytes),
        }
    }
}

/// The core's own `INVALID_ARGUMENT` for an answer nobody is waiting for (state unchanged).
fn not_waiting_for_host(entry: &mut InstanceEntry) -> Error {
    match entry.instance.state() {
        InstanceState::Running => {
            Error::invalid_argument("the running call is not waiting for a host answer")
        }
        _ => Error::invalid_argument("no call is running, so there is no host answer to give"),
    }
}

impl InstanceEntry {
    /// The numeric signature of the exported function `name`, if there is one.
    fn export_signature(&self, name: &str) -> Option<Signature> {
        self.instance
            .module()
            .exports()
            .iter()
            .find(|e| e.name == name && e.kind == ItemKind::Function)
            .and_then(|e| e.signature.clone())
    }

    /// Converts the step for JavaScript.
    fn step(&mut self, result: Result<Step, Error>) -> Result<JsValue, Error> {
        let step = result?;
        let wait = match step {
            Step::Yield => self.instance.wasi_wait(),
            _ => None,
        };
        step_to_js(&step, wait)
    }
}
