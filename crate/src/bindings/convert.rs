//! Conversions between JavaScript values and the core's types.
//!
//! Everything that comes from JavaScript is checked here and turned into an `INVALID_ARGUMENT`
//! [`Error`] when it is malformed: nothing in this module panics on bad input. Everything that
//! goes to JavaScript is a plain object, array, number, `BigInt` or string.
//!
//! Numbers cross by the known WebAssembly type:
//!
//! | type  | from JavaScript                                                | to JavaScript |
//! |-------|----------------------------------------------------------------|---------------|
//! | `i32` | an integer number in `-2^31 ..= 2^32-1` (unsigned values wrap)  | number        |
//! | `i64` | a `BigInt` in `-2^63 ..= 2^64-1` (wraps), or a safe-integer number | `BigInt`  |
//! | `f32` | any number (rounded to `f32`)                                   | number        |
//! | `f64` | any number                                                      | number        |

use js_sys::{Array, Number, Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

use crate::capability::{CapabilityId, Grants, HttpResponse};
use crate::data::{DataConfig, HttpGrant, LogLine};
use crate::error::Error;
use crate::instance::{CallOptions, Outcome, Step};
use crate::limits::{Limits, ModuleLimits};
use crate::metrics::Metrics;
use crate::module::{ExportInfo, ImportInfo, ItemKind, Module};
use crate::value::{Signature, Value, ValueType};
use crate::wasi::{Deterministic, FsEntry, FsTree, Preopen, Stdin, WasiConfig, WasiWait};

/// `Number.MAX_SAFE_INTEGER`: the largest integer every JavaScript number can hold exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

// ---- errors ----

/// The one conversion of a core [`Error`] to the record JavaScript sees:
/// `{code, message, details}`, with `details` in camelCase (metrics included when present).
///
/// Never fails: if the details cannot be represented (they always can while every limit is a
/// safe integer, which [`limits_from_js`] guarantees), the record keeps its code and message
/// and says why its details are missing.
pub(crate) fn error_to_js(error: &Error) -> JsValue {
    match to_js(error) {
        Ok(record) => record,
        Err(e) => {
            let record = Object::new();
            set(&record, "code", &JsValue::from_str(error.code().as_str()));
            set(&record, "message", &JsValue::from_str(error.message()));
            let details = Object::new();
            set(
                &details,
                "conversionError",
                &JsValue::from_str(&e.to_string()),
            );
            set(&record, "details", &details);
            record.into()
        }
    }
}

/// Serializes a core record (error, metrics) with serde, as a plain object.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, serde_wasm_bindgen::Error> {
    value.serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
}

// ---- small helpers ----

/// Sets `key` on a fresh plain object. Cannot fail for the objects made here (no setters, not
/// frozen), so the result is ignored.
pub(crate) fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// A short description of a JavaScript value for error messages: its type and, for
/// primitives, its value.
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        "undefined".to_owned()
    } else if value.is_null() {
        "null".to_owned()
    } else if let Some(b) = value.as_bool() {
        format!("boolean {b}")
    } else if let Some(n) = value.as_f64() {
        format!("number {n}")
    } else if let Some(s) = value.as_string() {
        let shown: String = s.chars().take(40).collect();
        format!("string {shown:?}")
    } else if value.is_bigint() {
        match i64::try_from(value.clone()) {
            Ok(v) => format!("BigInt {v}n"),
            Err(_) => match u64::try_from(value.clone()) {
                Ok(v) => format!("BigInt {v}n"),
                Err(_) => "a BigInt out of 64-bit range".to_owned(),
            },
        }
    } else if Array::is_array(value) {
        "an array".to_owned()
    } else if value.is_function() {
        "a function".to_owned()
    } else if value.is_symbol() {
        "a symbol".to_owned()
    } else {
        "an object".to_owned()
    }
}

fn invalid(what: &str, expected: &str, got: &JsValue) -> Error {
    Error::invalid_argument(format!("{what} must be {expected}, got {}", describe(got)))
}

/// The own enumerable properties of a plain object, skipping those whose value is
/// `undefined` (so `{fuel: undefined}` means "default", as in JavaScript option bags).
pub(crate) fn entries(value: &JsValue, what: &str) -> Result<Vec<(String, JsValue)>, Error> {
    if !value.is_object() || Array::is_array(value) || value.is_function() {
        return Err(invalid(what, "a plain object", value));
    }
    let keys = Reflect::own_keys(value)
        .map_err(|_| Error::invalid_argument(format!("{what}: cannot list its properties")))?;
    let mut out = Vec::new();
    for key in keys.iter() {
        let Some(name) = key.as_string() else {
            return Err(Error::invalid_argument(format!(
                "{what} has a property that is not a string (a symbol)"
            )));
        };
        let field = Reflect::get(value, &key).map_err(|_| {
            Error::invalid_argument(format!("{what}.{name}: reading the property threw"))
        })?;
        if !field.is_undefined() {
            out.push((name, field));
        }
    }
    Ok(out)
}

pub(crate) fn unknown_field(what: &str, name: &str, known: &[&str]) -> Error {
    Error::invalid_argument(format!(
        "unknown field {name:?} in {what} (expected one of: {})",
        known.join(", ")
    ))
}

/// The elements of a JavaScript array.
pub(crate) fn array_from_js(value: &JsValue, what: &str) -> Result<Vec<JsValue>, Error> {
    if !Array::is_array(value) {
        return Err(invalid(what, "an array", value));
    }
    Ok(value.unchecked_ref::<Array>().iter().collect())
}

/// A string.
pub(crate) fn string_from_js(value: &JsValue, what: &str) -> Result<String, Error> {
    value
        .as_string()
        .ok_or_else(|| invalid(what, "a string", value))
}

/// An unsigned integer up to `Number.MAX_SAFE_INTEGER`, from a number or a `BigInt`.
fn safe_u64_from_js(value: &JsValue, what: &str) -> Result<u64, Error> {
    let expected = "a non-negative integer (number or BigInt) up to 2^53-1";
    let n = if value.is_bigint() {
        u64::try_from(value.clone()).ok()
    } else if let Some(f) = value.as_f64() {
        (f.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(&f)).then_some(f as u64)
    } else {
        None
    };
    match n {
        Some(n) if n <= MAX_SAFE_INTEGER => Ok(n),
        _ => Err(invalid(what, expected, value)),
    }
}

/// An unsigned 32-bit integer, from a number or a `BigInt`.
fn u32_from_js(value: &JsValue, what: &str) -> Result<u32, Error> {
    let expected = "an integer from 0 to 4294967295";
    let n = safe_u64_from_js(value, what).map_err(|_| invalid(what, expected, value))?;
    u32::try_from(n).map_err(|_| invalid(what, expected, value))
}

/// An id, a pointer or a length: an integer number from 0 to 2^32-1 (no `BigInt`, no
/// coercion: `"1"`, `1.5` and `-1` are refused rather than turned into another id).
pub(crate) fn index_from_js(value: &JsValue, what: &str) -> Result<u32, Error> {
    let expected = "an integer number from 0 to 4294967295";
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(f as u32),
        _ => Err(invalid(what, expected, value)),
    }
}

pub(crate) fn bool_from_js(value: &JsValue, what: &str) -> Result<bool, Error> {
    value
        .as_bool()
        .ok_or_else(|| invalid(what, "a boolean", value))
}

/// Bytes from a `Uint8Array` or an `ArrayBuffer` (copied).
pub(crate) fn bytes_from_js(value: &JsValue, what: &str) -> Result<Vec<u8>, Error> {
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        Ok(array.to_vec())
    } else if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        Ok(Uint8Array::new(buffer).to_vec())
    } else {
        Err(invalid(what, "a Uint8Array", value))
    }
}

// ---- limits and options ----

const LIMIT_FIELDS: &[&str] = &[
    "fuel",
    "fuelPerSlice",
    "hostCallFuel",
    "timeoutMs",
    "maxMemoryBytes",
    "maxTableElements",
    "maxInstances",
    "maxRecursionDepth",
    "maxModuleBytes",
    "maxInputBytes",
    "maxOutputBytes",
    "trapOnGrowFailure",
    "module",
];

const MODULE_LIMIT_FIELDS: &[&str] = &[
    "maxFunctions",
    "maxImports",
    "maxExports",
    "maxGlobals",
    "maxDataSegments",
    "maxElementSegments",
    "maxTables",
    "maxMemories",
    "maxLocalsPerFunction",
    "maxFunctionBodyBytes",
];

/// [`Limits`] from an optional plain object with camelCase fields. Missing (or `undefined`)
/// fields keep their defaults; an unknown field or a value of the wrong type is
/// `INVALID_ARGUMENT`, so a typo never silently leaves a limit at its default. 64-bit limits
/// accept a number or a `BigInt` up to 2^53-1, so every limit (and every metric bounded by
/// one) reads back exactly as a JavaScript number.
pub(crate) fn limits_from_js(value: &JsValue) -> Result<Limits, Error> {
    let mut limits = Limits::default();
    if value.is_undefined() || value.is_null() {
        return Ok(limits);
    }
    // Destructured without `..`: a new field in `Limits` fails to compile here until it is
    // given a JavaScript name.
    let Limits {
        fuel,
        fuel_per_slice,
        host_call_fuel,
        timeout_ms,
        max_memory_bytes,
        max_table_elements,
        max_instances,
        max_recursion_depth,
        max_module_bytes,
        max_input_bytes,
        max_output_bytes,
        trap_on_grow_failure,
        module,
    } = &mut limits;
    for (name, field) in entries(value, "limits")? {
        let what = format!("limits.{name}");
        match name.as_str() {
            "fuel" => *fuel = safe_u64_from_js(&field, &what)?,
            "fuelPerSlice" => *fuel_per_slice = safe_u64_from_js(&field, &what)?,
            "hostCallFuel" => *host_call_fuel = safe_u64_from_js(&field, &what)?,
            "timeoutMs" => *timeout_ms = safe_u64_from_js(&field, &what)?,
            "maxMemoryBytes" => *max_memory_bytes = safe_u64_from_js(&field, &what)?,
            "maxTableElements" => *max_table_elements = safe_u64_from_js(&field, &what)?,
            "maxInstances" => *max_instances = u32_from_js(&field, &what)?,
            "maxRecursionDepth" => *max_recursion_depth = u32_from_js(&field, &what)?,
            "maxModuleBytes" => *max_module_bytes = safe_u64_from_js(&field, &what)?,
            "maxInputBytes" => *max_input_bytes = safe_u64_from_js(&field, &what)?,
            "maxOutputBytes" => *max_output_bytes = safe_u64_from_js(&field, &what)?,
            "trapOnGrowFailure" => *trap_on_grow_failure = bool_from_js(&field, &what)?,
            "module" => module_limits_from_js(&field, module)?,
            _ => return Err(unknown_field("limits", &name, LIMIT_FIELDS)),
        }
    }
    Ok(limits)
}

fn module_limits_from_js(value: &JsValue, limits: &mut ModuleLimits) -> Result<(), Error> {
    let ModuleLimits {
        max_functions,
        max_imports,
        max_exports,
        max_globals,
        max_data_segments,
        max_element_segments,
        max_tables,
        max_memories,
        max_locals_per_function,
        max_function_body_bytes,
    } = limits;
    for (name, field) in entries(value, "limits.module")? {
        let what = format!("limits.module.{name}");
        let slot = match name.as_str() {
            "maxFunctions" => &mut *max_functions,
            "maxImports" => &mut *max_imports,
            "maxExports" => &mut *max_exports,
            "maxGlobals" => &mut *max_globals,
            "maxDataSegments" => &mut *max_data_segments,
            "maxElementSegments" => &mut *max_element_segments,
            "maxTables" => &mut *max_tables,
            "maxMemories" => &mut *max_memories,
            "maxLocalsPerFunction" => &mut *max_locals_per_function,
            "maxFunctionBodyBytes" => &mut *max_function_body_bytes,
            _ => return Err(unknown_field("limits.module", &name, MODULE_LIMIT_FIELDS)),
        };
        *slot = u32_from_js(&field, &what)?;
    }
    Ok(())
}

/// [`CallOptions`] from an optional `{fuel?, timeoutMs?, maxMemoryBytes?}`.
pub(crate) fn call_options_from_js(value: &JsValue) -> Result<CallOptions, Error> {
    let mut options = CallOptions::default();
    if value.is_undefined() || value.is_null() {
        return Ok(options);
    }
    for (name, field) in entries(value, "options")? {
        let what = format!("options.{name}");
        match name.as_str() {
            "fuel" => options.fuel = Some(safe_u64_from_js(&field, &what)?),
            "timeoutMs" => options.timeout_ms = Some(safe_u64_from_js(&field, &what)?),
            "maxMemoryBytes" => {
                options.max_memory_bytes = Some(safe_u64_from_js(&field, &what)?);
            }
            "trace" => {
                let spans = safe_u64_from_js(&field, &what)?;
                let limit = u64::from(crate::trace::MAX_SPANS_LIMIT);
                if spans == 0 || spans > limit {
                    return Err(Error::invalid_argument(format!(
                        "{what} is the most spans to keep, from 1 to {limit}; got {spans}"
                    )));
                }
                options.trace = Some(spans as u32);
            }
            _ => {
                return Err(unknown_field(
                    "options",
                    &name,
                    &["fuel", "timeoutMs", "maxMemoryBytes", "trace"],
                ));
            }
        }
    }
    Ok(options)
}

// ---- grants ----

/// [`Grants`] from `[{module, name, capability, params, results}]`; every field is required
/// and no other field is accepted.
pub(crate) fn grants_from_js(value: &JsValue) -> Result<Grants, Error> {
    let mut grants = Grants::new();
    for (i, item) in array_from_js(value, "grants")?.iter().enumerate() {
        let what = format!("grants[{i}]");
        let (mut module, mut name, mut capability, mut params, mut results) =
            (None, None, None, None, None);
        let mut direct = false;
        for (key, field) in entries(item, &what)? {
            let field_what = format!("{what}.{key}");
            match key.as_str() {
                "module" => module = Some(string_from_js(&field, &field_what)?),
                "name" => name = Some(string_from_js(&field, &field_what)?),
                "capability" => capability = Some(index_from_js(&field, &field_what)?),
                "params" => params = Some(types_from_js(&field, &field_what)?),
                "results" => results = Some(types_from_js(&field, &field_what)?),
                "direct" => direct = bool_from_js(&field, &field_what)?,
                _ => {
                    return Err(unknown_field(
                        &what,
                        &key,
                        &[
                            "module",
                            "name",
                            "capability",
                            "params",
                            "results",
                            "direct",
                        ],
                    ));
                }
            }
        }
        let missing = |field: &str| Error::invalid_argument(format!("{what}.{field} is required"));
        let module = module.ok_or_else(|| missing("module"))?;
        let name = name.ok_or_else(|| missing("name"))?;
        let capability = capability.ok_or_else(|| missing("capability"))?;
        let params = params.ok_or_else(|| missing("params"))?;
        let results = results.ok_or_else(|| missing("results"))?;
        let signature = Signature::new(params, results);
        grants = if direct {
            grants.grant_direct(module, name, CapabilityId(capability), signature)?
        } else {
            grants.grant(module, name, CapabilityId(capability), signature)?
        };
    }
    Ok(grants)
}

fn types_from_js(value: &JsValue, what: &str) -> Result<Vec<ValueType>, Error> {
    array_from_js(value, what)?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let item = format!("{what}[{i}]");
            let name = string_from_js(t, &item)?;
            ValueType::parse(&name)
                .map_err(|e| Error::invalid_argument(format!("{item}: {}", e.message())))
        })
        .collect()
}

// ---- values ----

/// One value of type `ty` (see the module docs for what each type accepts).
pub(crate) fn value_from_js(ty: ValueType, value: &JsValue, what: &str) -> Result<Value, Error> {
    match ty {
        ValueType::I32 => match value.as_f64() {
            Some(f)
                if f.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(u32::MAX)).contains(&f) =>
            {
                // In range of i64, then wrapped to 32 bits: 2^32-1 is -1.
                Ok(Value::I32((f as i64) as i32))
            }
            _ => Err(invalid(
                what,
                "an i32 (an integer number from -2^31 to 2^32-1)",
                value,
            )),
        },
        ValueType::I64 => {
            let expected = "an i64 (a BigInt from -2^63 to 2^64-1, or a safe-integer number)";
            if value.is_bigint() {
                i64::try_from(value.clone())
                    .or_else(|v| u64::try_from(v).map(|u| u as i64))
                    .map(Value::I64)
                    .map_err(|_| invalid(what, expected, value))
            } else if let Some(f) = value.as_f64().filter(|_| Number::is_safe_integer(value)) {
                Ok(Value::I64(f as i64))
            } else {
                Err(invalid(what, expected, value))
            }
        }
        ValueType::F32 => value
            .as_f64()
            .map(|f| Value::F32(f as f32))
            .ok_or_else(|| invalid(what, "an f32 (a number)", value)),
        ValueType::F64 => value
            .as_f64()
            .map(Value::F64)
            .ok_or_else(|| invalid(what, "an f64 (a number)", value)),
    }
}

/// Values typed by `types` from a JavaScript array; the count must match.
pub(crate) fn values_from_js(
    types: &[ValueType],
    values: &[JsValue],
    what: &str,
) -> Result<Vec<Value>, Error> {
    if types.len() != values.len() {
        return Err(Error::invalid_argument(format!(
            "{what}: expected {} values, got {}",
            types.len(),
            values.len()
        )));
    }
    types
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (ty, v))| value_from_js(*ty, v, &format!("{what}: value {i}")))
        .collect()
}

/// A value as JavaScript sees it: `i64` as a `BigInt`, the others as numbers.
fn value_to_js(value: &Value) -> JsValue {
    match *value {
        Value::I32(v) => JsValue::from(v),
        Value::I64(v) => JsValue::from(v),
        Value::F32(v) => JsValue::from(f64::from(v)),
        Value::F64(v) => JsValue::from(v),
    }
}

pub(crate) fn values_to_js(values: &[Value]) -> JsValue {
    values.iter().map(value_to_js).collect::<Array>().into()
}

// ---- records ----

pub(crate) fn metrics_to_js(metrics: &Metrics) -> Result<JsValue, Error> {
    to_js(metrics)
        .map_err(|e| Error::invalid_argument(format!("internal: metrics not convertible: {e}")))
}

/// A [`Step`] as a plain object: `{status: "finished", results, exitCode?, metrics}`,
/// `{status: "yield", wait?}` or `{status: "host", capability, import, args}`. `wait` is
/// what a suspended WASI guest waits for ([`wait_to_js`]), absent after a plain fuel slice.
pub(crate) fn step_to_js(step: &Step, wait: Option<WasiWait>) -> Result<JsValue, Error> {
    let record = Object::new();
    match step {
        Step::Finished(Outcome {
            results,
            exit_code,
            metrics,
            output,
            go_result,
        }) => {
            set(&record, "status", &JsValue::from_str("finished"));
            if let Some(value) = go_result {
                set(&record, "goResult", &super::gojs::go_value_to_js(value));
            }
            if let Some(output) = output {
                set(&record, "output", &Uint8Array::from(output.as_slice()));
            }
            set(&record, "results", &values_to_js(results));
            if let Some(code) = exit_code {
                set(&record, "exitCode", &JsValue::from(*code));
            }
            set(&record, "metrics", &metrics_to_js(metrics)?);
        }
        Step::Yield => {
            set(&record, "status", &JsValue::from_str("yield"));
            if let Some(wait) = wait {
                set(&record, "wait", &wait_to_js(wait));
            }
        }
        Step::HostCall(call) => {
            set(&record, "status", &JsValue::from_str("host"));
            set(&record, "capability", &JsValue::from(call.capability.0));
            set(&record, "import", &JsValue::from_str(&call.import));
            set(&record, "args", &values_to_js(&call.args));
            if call.direct {
                set(&record, "direct", &JsValue::TRUE);
            }
            if let Some(args) = &call.go {
                let list: js_sys::Array = args.iter().map(super::gojs::go_value_to_js).collect();
                set(&record, "goArgs", &list);
            }
            if let Some(http) = &call.http {
                let request = Object::new();
                set(&request, "url", &JsValue::from_str(&http.url));
                set(&request, "method", &JsValue::from_str(&http.method));
                let headers = Object::new();
                for (k, v) in &http.headers {
                    set(&headers, k, &JsValue::from_str(v));
                }
                set(&request, "headers", &headers);
                set(&request, "body", &Uint8Array::from(http.body.as_slice()));
                set(&record, "http", &request);
            }
        }
    }
    Ok(record.into())
}

fn kind_str(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Function => "function",
        ItemKind::Memory => "memory",
        ItemKind::Table => "table",
        ItemKind::Global => "global",
    }
}

fn types_to_js(types: &[ValueType]) -> JsValue {
    types
        .iter()
        .map(|t| JsValue::from_str(t.as_str()))
        .collect::<Array>()
        .into()
}

/// Sets `kind`, `type` and, for functions with a numeric signature, `params` and `results`.
fn describe_item(record: &Object, kind: ItemKind, signature: Option<&Signature>, text: &str) {
    set(record, "kind", &JsValue::from_str(kind_str(kind)));
    set(record, "type", &JsValue::from_str(text));
    if let Some(signature) = signature {
        set(record, "params", &types_to_js(&signature.params));
        set(record, "results", &types_to_js(&signature.results));
    }
}

fn import_to_js(import: &ImportInfo) -> JsValue {
    let record = Object::new();
    set(&record, "module", &JsValue::from_str(&import.module));
    set(&record, "name", &JsValue::from_str(&import.name));
    describe_item(
        &record,
        import.kind,
        import.signature.as_ref(),
        &import.type_text,
    );
    record.into()
}

fn export_to_js(export: &ExportInfo) -> JsValue {
    let record = Object::new();
    set(&record, "name", &JsValue::from_str(&export.name));
    describe_item(
        &record,
        export.kind,
        export.signature.as_ref(),
        &export.type_text,
    );
    record.into()
}

/// `{moduleId, digest, sizeBytes, imports, exports}` for a loaded module.
pub(crate) fn module_to_js(id: u32, module: &Module) -> JsValue {
    let record = Object::new();
    set(&record, "moduleId", &JsValue::from(id));
    set(
        &record,
        "digest",
        &JsValue::from_str(&module.digest().to_sri()),
    );
    // A module is at most `maxModuleBytes` (a safe integer), so this is exact.
    set(
        &record,
        "sizeBytes",
        &JsValue::from(module.size_bytes() as f64),
    );
    let imports: Array = module.imports().iter().map(import_to_js).collect();
    let exports: Array = module.exports().iter().map(export_to_js).collect();
    set(&record, "imports", &imports);
    set(&record, "exports", &exports);
    record.into()
}

// ---- WASI ----

const WASI_FIELDS: &[&str] = &[
    "args",
    "env",
    "preopens",
    "stdin",
    "maxStdoutBytes",
    "maxStderrBytes",
    "maxFsBytes",
    "maxFiles",
    "deterministic",
    "grants",
    "config",
    "maxVarBytes",
];

/// A [`WasiConfig`] from `{args, env, preopens, stdin, maxStdoutBytes, maxStderrBytes,
/// maxFsBytes, maxFiles, deterministic, grants}`, every field optional (defaults as in
/// [`WasiConfig::default`]); an unknown field or a value of the wrong type is
/// `INVALID_ARGUMENT`.
pub(crate) fn wasi_config_from_js(value: &JsValue) -> Result<WasiConfig, Error> {
    let mut config = WasiConfig::default();
    if value.is_undefined() || value.is_null() {
        return Ok(config);
    }
    // Destructured without `..`: a new field in `WasiConfig` fails to compile here until it
    // is given a JavaScript name.
    let WasiConfig {
        args,
        env,
        preopens,
        stdin,
        max_stdout_bytes,
        max_stderr_bytes,
        max_fs_bytes,
        max_files,
        deterministic,
        grants,
        data,
    } = &mut config;
    for (name, field) in entries(value, "wasi config")? {
        let what = format!("config.{name}");
        match name.as_str() {
            "args" => *args = strings_from_js(&field, &what)?,
            "env" => *env = env_from_js(&field, &what)?,
            "preopens" => *preopens = preopens_from_js(&field, &what)?,
            "stdin" => *stdin = stdin_from_js(&field, &what)?,
            "maxStdoutBytes" => *max_stdout_bytes = safe_u64_from_js(&field, &what)?,
            "maxStderrBytes" => *max_stderr_bytes = safe_u64_from_js(&field, &what)?,
            "maxFsBytes" => *max_fs_bytes = safe_u64_from_js(&field, &what)?,
            "maxFiles" => *max_files = safe_u64_from_js(&field, &what)?,
            "deterministic" if field.is_null() => *deterministic = None,
            "deterministic" => *deterministic = Some(deterministic_from_js(&field, &what)?),
            "grants" => *grants = grants_from_js(&field)?,
            "config" => data.config = env_from_js(&field, &what)?.into_iter().collect(),
            "maxVarBytes" => data.max_var_bytes = safe_u64_from_js(&field, &what)?,
            _ => return Err(unknown_field("wasi config", &name, WASI_FIELDS)),
        }
    }
    Ok(config)
}

fn strings_from_js(value: &JsValue, what: &str) -> Result<Vec<String>, Error> {
    array_from_js(value, what)?
        .iter()
        .enumerate()
        .map(|(i, s)| string_from_js(s, &format!("{what}[{i}]")))
        .collect()
}

/// The environment, in order: `[[key, value], ...]`, or a plain object (in its own
/// property order, which puts integer-like keys first).
/// An [`HttpGrant`] from `{capability, allowedHosts, maxResponseBytes?}`.
fn http_grant_from_js(value: &JsValue, what: &str) -> Result<HttpGrant, Error> {
    const FIELDS: &[&str] = &["capability", "allowedHosts", "maxResponseBytes"];
    let mut grant = HttpGrant::new(CapabilityId(0), Vec::new());
    let mut capability = None;
    for (name, field) in entries(value, what)? {
        let item = format!("{what}.{name}");
        match name.as_str() {
            "capability" => capability = Some(CapabilityId(u32_from_js(&field, &item)?)),
            "allowedHosts" => grant.allowed_hosts = strings_from_js(&field, &item)?,
            "maxResponseBytes" => grant.max_response_bytes = safe_u64_from_js(&field, &item)?,
            _ => return Err(unknown_field(what, &name, FIELDS)),
        }
    }
    grant.capability = capability
        .ok_or_else(|| Error::invalid_argument(format!("{what}.capability is required")))?;
    Ok(grant)
}

/// An [`HttpResponse`] from `{status, headers?, body?}`.
pub(crate) fn http_response_from_js(value: &JsValue) -> Result<HttpResponse, Error> {
    const FIELDS: &[&str] = &["status", "headers", "body"];
    let mut response = HttpResponse::default();
    for (name, field) in entries(value, "http response")? {
        let what = format!("response.{name}");
        match name.as_str() {
            "status" => {
                let status = u32_from_js(&field, &what)?;
                response.status = u16::try_from(status)
                    .map_err(|_| Error::invalid_argument(format!("{what} must be < 65536")))?;
            }
            "headers" => response.headers = env_from_js(&field, &what)?.into_iter().collect(),
            "body" => response.body = bytes_from_js(&field, &what)?,
            _ => return Err(unknown_field("http response", &name, FIELDS)),
        }
    }
    Ok(response)
}

/// A [`DataConfig`] from `{config, maxVarBytes, http}`, all optional.
pub(crate) fn data_config_from_js(value: &JsValue) -> Result<DataConfig, Error> {
    const FIELDS: &[&str] = &["config", "maxVarBytes", "http"];
    let mut data = DataConfig::default();
    if value.is_undefined() || value.is_null() {
        return Ok(data);
    }
    for (name, field) in entries(value, "data config")? {
        let what = format!("data.{name}");
        match name.as_str() {
            "config" => data.config = env_from_js(&field, &what)?.into_iter().collect(),
            "maxVarBytes" => data.max_var_bytes = safe_u64_from_js(&field, &what)?,
            "http" if field.is_null() => data.http = None,
            "http" => data.http = Some(http_grant_from_js(&field, &what)?),
            _ => return Err(unknown_field("data config", &name, FIELDS)),
        }
    }
    Ok(data)
}

/// Log lines as `[{level, message}]`.
pub(crate) fn logs_to_js(logs: &[LogLine]) -> JsValue {
    let array = Array::new();
    for line in logs {
        let record = Object::new();
        set(&record, "level", &JsValue::from_str(line.level));
        set(&record, "message", &JsValue::from_str(&line.message));
        array.push(&record);
    }
    array.into()
}

fn env_from_js(value: &JsValue, what: &str) -> Result<Vec<(String, String)>, Error> {
    if Array::is_array(value) {
        return array_from_js(value, what)?
            .iter()
            .enumerate()
            .map(|(i, pair)| {
                let item = format!("{what}[{i}]");
                match array_from_js(pair, &item)?.as_slice() {
                    [key, value] => Ok((
                        string_from_js(key, &format!("{item}[0]"))?,
                        string_from_js(value, &format!("{item}[1]"))?,
                    )),
                    _ => Err(Error::invalid_argument(format!(
                        "{item} must be a [key, value] pair"
                    ))),
                }
            })
            .collect();
    }
    entries(value, what)?
        .into_iter()
        .map(|(key, field)| {
            let value = string_from_js(&field, &format!("{what}.{key}"))?;
            Ok((key, value))
        })
        .collect()
}

fn preopens_from_js(value: &JsValue, what: &str) -> Result<Vec<Preopen>, Error> {
    const FIELDS: &[&str] = &["guestPath", "files", "readOnly"];
    let mut preopens = Vec::new();
    for (i, item) in array_from_js(value, what)?.iter().enumerate() {
        let item_what = format!("{what}[{i}]");
        let mut guest_path = None;
        let mut preopen = Preopen::default();
        for (key, field) in entries(item, &item_what)? {
            let field_what = format!("{item_what}.{key}");
            match key.as_str() {
                "guestPath" => guest_path = Some(string_from_js(&field, &field_what)?),
                "files" => preopen.files = tree_from_js(&field, &field_what)?,
                "readOnly" => preopen.read_only = bool_from_js(&field, &field_what)?,
                _ => return Err(unknown_field(&item_what, &key, FIELDS)),
            }
        }
        preopen.guest_path = guest_path
            .ok_or_else(|| Error::invalid_argument(format!("{item_what}.guestPath is required")))?;
        preopens.push(preopen);
    }
    Ok(preopens)
}

/// A preopen's initial tree: `{"a/b.txt": Uint8Array | ArrayBuffer | string, "empty/": null}`.
/// A string is stored as its UTF-8 bytes; `null` is a directory (a trailing `/` is implied);
/// a key ending in `/` must be `null`.
fn tree_from_js(
    value: &JsValue,
    what: &str,
) -> Result<std::collections::BTreeMap<String, Vec<u8>>, Error> {
    let mut files = std::collections::BTreeMap::new();
    for (path, contents) in entries(value, what)? {
        let item = format!("{what}[{path:?}]");
        if contents.is_null() {
            let dir = if path.ends_with('/') {
                path
            } else {
                format!("{path}/")
            };
            files.insert(dir, Vec::new());
        } else if path.ends_with('/') {
            return Err(Error::invalid_argument(format!(
                "{item}: a path ending in / is a directory, and its value must be null"
            )));
        } else if let Some(text) = contents.as_string() {
            files.insert(path, text.into_bytes());
        } else {
            let bytes = bytes_from_js(&contents, &item).map_err(|_| {
                invalid(
                    &item,
                    "a Uint8Array, a string, or null (a directory)",
                    &contents,
                )
            })?;
            files.insert(path, bytes);
        }
    }
    Ok(files)
}

/// Standard input: bytes (`Uint8Array`/`ArrayBuffer`), `"async"`, or `null` (empty).
fn stdin_from_js(value: &JsValue, what: &str) -> Result<Stdin, Error> {
    if value.is_null() {
        return Ok(Stdin::default());
    }
    if value.as_string().as_deref() == Some("async") {
        return Ok(Stdin::Async);
    }
    bytes_from_js(value, what)
        .map(Stdin::Bytes)
        .map_err(|_| invalid(what, "a Uint8Array, \"async\" or null", value))
}

/// Any unsigned 64-bit integer: a `BigInt`, or an integer number (which may exceed 2^53 when
/// it is exactly the value meant, e.g. a nanosecond timestamp).
fn u64_from_js(value: &JsValue, what: &str) -> Result<u64, Error> {
    let expected = "a non-negative integer below 2^64 (number or BigInt)";
    if value.is_bigint() {
        return u64::try_from(value.clone()).map_err(|_| invalid(what, expected, value));
    }
    match value.as_f64() {
        // 2^64 as an f64 is exact; every integer f64 below it converts exactly.
        Some(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => {
            Ok(f as u64)
        }
        _ => Err(invalid(what, expected, value)),
    }
}

fn deterministic_from_js(value: &JsValue, what: &str) -> Result<Deterministic, Error> {
    let mut out = Deterministic {
        seed: 0,
        start_time_ns: 0,
    };
    let mut seed = false;
    for (key, field) in entries(value, what)? {
        let field_what = format!("{what}.{key}");
        match key.as_str() {
            "seed" => {
                out.seed = u64_from_js(&field, &field_what)?;
                seed = true;
            }
            "startTimeNs" => out.start_time_ns = u64_from_js(&field, &field_what)?,
            _ => return Err(unknown_field(what, &key, &["seed", "startTimeNs"])),
        }
    }
    if !seed {
        return Err(Error::invalid_argument(format!("{what}.seed is required")));
    }
    Ok(out)
}

/// `{kind: "sleep", durationMs}` or `{kind: "stdin", maxBytes}`.
pub(crate) fn wait_to_js(wait: WasiWait) -> JsValue {
    let record = Object::new();
    match wait {
        WasiWait::Sleep { duration_ns } => {
            set(&record, "kind", &JsValue::from_str("sleep"));
            set(
                &record,
                "durationMs",
                &JsValue::from_f64(duration_ns as f64 / 1e6),
            );
        }
        WasiWait::ReadStdin { max_bytes } => {
            set(&record, "kind", &JsValue::from_str("stdin"));
            set(&record, "maxBytes", &JsValue::from(max_bytes));
        }
    }
    record.into()
}

/// `{stdout, stderr}`, each a `Uint8Array`.
pub(crate) fn output_to_js(stdout: &[u8], stderr: &[u8]) -> JsValue {
    let record = Object::new();
    set(&record, "stdout", &Uint8Array::from(stdout));
    set(&record, "stderr", &Uint8Array::from(stderr));
    record.into()
}

/// An object from `(key, value)` pairs, made by `Object.fromEntries`, so that every key —
/// guest-chosen file names like `__proto__` included — is an own data property.
fn object_from_entries(pairs: impl Iterator<Item = (String, JsValue)>) -> Result<JsValue, Error> {
    let entries: Array = pairs
        .map(|(k, v)| Array::of2(&JsValue::from_str(&k), &v))
        .collect();
    Object::from_entries(&entries)
        .map(JsValue::from)
        .map_err(|_| Error::invalid_argument("internal: Object.fromEntries failed"))
}

fn entry_to_js(entry: &FsEntry) -> JsValue {
    let record = Object::new();
    match entry {
        FsEntry::File(data) => {
            set(&record, "type", &JsValue::from_str("file"));
            set(&record, "data", &Uint8Array::from(data.as_slice()));
        }
        FsEntry::Dir => set(&record, "type", &JsValue::from_str("dir")),
        FsEntry::Symlink(target) => {
            set(&record, "type", &JsValue::from_str("symlink"));
            set(&record, "target", &JsValue::from_str(target));
        }
    }
    record.into()
}

/// `{"/guest/path": {"rel/path": {type: "file", data} | {type: "dir"} | {type: "symlink",
/// target}}}`.
pub(crate) fn files_to_js(
    files: &std::collections::BTreeMap<String, FsTree>,
) -> Result<JsValue, Error> {
    let mut preopens = Vec::with_capacity(files.len());
    for (guest_path, tree) in files {
        let tree =
            object_from_entries(tree.iter().map(|(path, e)| (path.clone(), entry_to_js(e))))?;
        preopens.push((guest_path.clone(), tree));
    }
    object_from_entries(preopens.into_iter())
}
