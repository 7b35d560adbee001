//! The native tier's face (cargo feature `native-tier`): the worker compiles the instrumented
//! module with the browser's engine and runs it under JSPI; these methods keep its books in
//! the core (see `instance/native.rs`), so limits, metrics and the audit log are the same
//! code as the interpreter's.
//!
//! Fuel crosses as a `BigInt` (the guest's `nestbox_fuel` is an i64 global); memory sizes as
//! numbers of bytes.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::convert::{
    array_from_js, bytes_from_js, call_options_from_js, error_to_js, grants_from_js, index_from_js,
    metrics_to_js, module_to_js, step_to_js, string_from_js, value_from_js, values_from_js,
    values_to_js, wait_to_js, wasi_config_from_js,
};
use super::{Core, take_id, throw, unknown_id};
use crate::error::{Error, ErrorCode, TrapCode};
use crate::instance::InstanceState;
use crate::instance::native::{NativeInstance, NativeWasiStep};
use crate::integrity::Digest;
use crate::value::{Value, ValueType};
use crate::wasi::WasiMemory;
use js_sys::WebAssembly;
use wasm_bindgen::JsCast;

fn set(target: &Object, key: &str, value: &JsValue) {
    // Setting a plain data property on a fresh object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// The guest's fuel global as the worker read it (a `BigInt`, or a safe integer).
fn fuel_from_js(value: &JsValue) -> Result<i64, Error> {
    match values_from_js(&[ValueType::I64], std::slice::from_ref(value), "fuelLeft")?[..] {
        [Value::I64(v)] => Ok(v),
        _ => Err(Error::invalid_argument("fuelLeft must be an i64")),
    }
}

/// A size in bytes (a non-negative safe integer).
fn bytes_count(value: &JsValue, what: &str) -> Result<u64, Error> {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&f) => Ok(f as u64),
        _ => Err(Error::invalid_argument(format!(
            "{what} must be a non-negative integer number of bytes"
        ))),
    }
}

/// The guest's memory (`undefined`/`null`: it exports none) and its fuel global.
fn wasi_handles(
    memory: &JsValue,
    fuel: &JsValue,
) -> Result<(Option<WebAssembly::Memory>, WebAssembly::Global), Error> {
    let memory = if memory.is_undefined() || memory.is_null() {
        None
    } else {
        Some(
            memory
                .clone()
                .dyn_into::<WebAssembly::Memory>()
                .map_err(|_| Error::invalid_argument("memory must be a WebAssembly.Memory"))?,
        )
    };
    let global = fuel
        .clone()
        .dyn_into::<WebAssembly::Global>()
        .map_err(|_| Error::invalid_argument("fuel must be the guest's WebAssembly.Global"))?;
    Ok((memory, global))
}

/// A WASI call's arguments (i32 numbers, i64 `BigInt`s), typed by its parameters. On the hot
/// path of every WASI call: read straight from the array, no message built unless one is wrong.
fn wasi_args_from_js(params: &[ValueType], args: &JsValue) -> Result<Vec<Value>, Error> {
    if !Array::is_array(args) {
        return Err(Error::invalid_argument("args must be an array"));
    }
    let array = args.unchecked_ref::<Array>();
    if array.length() as usize != params.len() {
        return Err(Error::invalid_argument(format!(
            "arguments of a WASI call: expected {} values, got {}",
            params.len(),
            array.length()
        )));
    }
    params
        .iter()
        .enumerate()
        .map(|(i, ty)| value_from_js(*ty, &array.get(i as u32), "arguments of a WASI call"))
        .collect()
}

/// A WASI call's outcome for the worker; the fuel goes straight into the guest's global.
fn wasi_step_to_js(step: NativeWasiStep, global: &WebAssembly::Global) -> Result<JsValue, Error> {
    match step {
        NativeWasiStep::Return { errno, fuel } => {
            global.set_value(&JsValue::from(fuel));
            Ok(JsValue::from(errno))
        }
        NativeWasiStep::Wait { wait, fuel } => {
            global.set_value(&JsValue::from(fuel));
            let record = Object::new();
            set(&record, "wait", &wait_to_js(wait));
            Ok(record.into())
        }
        NativeWasiStep::Exit(step) => {
            let record = Object::new();
            set(&record, "step", &step_to_js(&step, None)?);
            Ok(record.into())
        }
    }
}

impl Core {
    /// Keeps `instance` and returns `{instanceId, links, wasi}` for the worker.
    fn insert_native(&mut self, instance: NativeInstance) -> Result<JsValue, Error> {
        let links: Array = instance
            .links()
            .into_iter()
            .map(|l| {
                let link = Object::new();
                set(&link, "module", &JsValue::from_str(&l.module));
                set(&link, "name", &JsValue::from_str(&l.name));
                set(&link, "capability", &JsValue::from(l.capability));
                JsValue::from(link)
            })
            .collect();
        let wasi: Array = instance
            .wasi_functions()
            .into_iter()
            .map(JsValue::from_str)
            .collect();
        let id = take_id(&mut self.next_instance_id, "instance")?;
        self.natives.insert(id, instance);
        let record = Object::new();
        set(&record, "instanceId", &JsValue::from(id));
        set(&record, "links", &links);
        set(&record, "wasi", &wasi);
        Ok(record.into())
    }
}

/// The codes a native call may be ended with by the worker (its engine trapped, the caller
/// cancelled): anything else is refused.
const ABORT_CODES: [ErrorCode; 6] = [
    ErrorCode::Cancelled,
    ErrorCode::Trap,
    ErrorCode::StackOverflow,
    ErrorCode::HostError,
    ErrorCode::MemoryLimit,
    ErrorCode::TableLimit,
];

impl Core {
    /// The native instance with this id, if it is one (the ids of both tiers come from one
    /// counter, so `takeOutput`, `wasiFiles` and `pushStdin` serve both).
    pub(super) fn native_by_id(&mut self, id: &JsValue) -> Option<&mut NativeInstance> {
        let id = index_from_js(id, "instanceId").ok()?;
        self.natives.get_mut(&id)
    }

    fn native_mut(&mut self, id: &JsValue) -> Result<&mut NativeInstance, Error> {
        let id = index_from_js(id, "instanceId")?;
        self.natives
            .get_mut(&id)
            .ok_or_else(|| unknown_id("native instance", id))
    }
}

#[wasm_bindgen]
impl Core {
    /// `loadNative(bytes, integrity, provenance?)`: `load`'s checks and audit entries, then
    /// the instrumentation pass with this sandbox's limits. Returns `{module, bytes}`: the
    /// module record (as `load`'s) and the instrumented bytes for the engine.
    ///
    /// Throws what `load` throws, and the pass's errors.
    #[wasm_bindgen(js_name = loadNative, unchecked_return_type = "{ module: CoreModule; bytes: Uint8Array }")]
    pub fn load_native(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] integrity: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreProvenance")] provenance: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let bytes = bytes_from_js(&bytes, "bytes")?;
            let integrity = Digest::parse(&string_from_js(&integrity, "integrity")?)?;
            let provenance = super::policy::provenance_from_js(&provenance)?;
            let (module, instrumented) =
                self.sandbox.load_native(&bytes, &integrity, &provenance)?;
            let id = take_id(&mut self.next_module_id, "module")?;
            let record = Object::new();
            set(&record, "module", &module_to_js(id, &module));
            set(
                &record,
                "bytes",
                &Uint8Array::from(instrumented.bytes.as_slice()),
            );
            self.modules.insert(id, module);
            Ok(record.into())
        };
        run().map_err(throw)
    }

    /// `instantiateNative(moduleId, grants)`: links the module against `grants` for the
    /// native tier. Returns `{instanceId, links}`: `links[i]` is `{module, name, capability}`
    /// of the i-th granted import, which the worker binds to `nativeHost(id, i, …)`.
    ///
    /// Throws `IMPORT_NOT_GRANTED`, `SIGNATURE_MISMATCH`, `INSTANCE_LIMIT`,
    /// `INVALID_ARGUMENT`.
    #[wasm_bindgen(js_name = instantiateNative, unchecked_return_type = "{ instanceId: number; links: { module: string; name: string; capability: number }[]; wasi: string[] }")]
    pub fn instantiate_native(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreGrant[]")] grants: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let module_id = index_from_js(&module_id, "moduleId")?;
            let grants = grants_from_js(&grants)?;
            let module = self
                .modules
                .get(&module_id)
                .ok_or_else(|| unknown_id("module", module_id))?;
            let instance = self.sandbox.instantiate_native(module, &grants)?;
            self.insert_native(instance)
        };
        run().map_err(throw)
    }

    /// `instantiateNativeWasi(moduleId, config)`: `instantiateNative` for a WASI guest, with
    /// `instantiateWasi`'s configuration (`config.grants` are its other capabilities).
    /// Returns `{instanceId, links, wasi}`: `wasi[i]` is the name of the i-th preview1
    /// function the module imports, which the worker binds to `nativeWasi(id, i, …)`.
    ///
    /// Throws as `instantiateNative` and `instantiateWasi`.
    #[wasm_bindgen(js_name = instantiateNativeWasi, unchecked_return_type = "{ instanceId: number; links: { module: string; name: string; capability: number }[]; wasi: string[] }")]
    pub fn instantiate_native_wasi(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreWasiConfig")] config: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let module_id = index_from_js(&module_id, "moduleId")?;
            let config = wasi_config_from_js(&config)?;
            let module = self
                .modules
                .get(&module_id)
                .ok_or_else(|| unknown_id("module", module_id))?;
            let mut instance = self.sandbox.instantiate_native_wasi(module, &config)?;
            // As `instantiateWasi`: the package streams the output and keeps its own copy.
            instance.set_retain_output(false);
            self.insert_native(instance)
        };
        run().map_err(throw)
    }

    /// `nativeWasi(instanceId, func, args, memory, fuel)`: the guest called its WASI
    /// function number `func` with `args` (i64 as `BigInt`). Runs the interpreter's syscall
    /// code against `memory` (the guest's `WebAssembly.Memory`, or `undefined` when it exports
    /// none: every pointer is then `EFAULT`), reading and setting `fuel` (the guest's
    /// `nestbox_fuel` global). Returns the errno (a number) for the guest; or
    /// `{wait}` — the guest waits (a sleep: wait `durationMs`; empty stdin: feed `pushStdin`),
    /// then `nativeWasiResume`; or `{step}` — `proc_exit` ended the call with this `finished`
    /// step (`exitCode`): unwind the guest.
    ///
    /// Throws what ends the call (`OUTPUT_LIMIT`, `FUEL_EXHAUSTED`, `TIMEOUT`, `MEMORY_LIMIT`,
    /// `HOST_ERROR`, with metrics; the instance is poisoned) and `INVALID_ARGUMENT` (no call,
    /// another call pending, no WASI, a bad `memory` or `fuel`: nothing changes).
    #[wasm_bindgen(js_name = nativeWasi, unchecked_return_type = "number | { wait: CoreWasiWait } | { step: CoreStep }")]
    pub fn native_wasi(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] func: JsValue,
        #[wasm_bindgen(unchecked_param_type = "unknown[]")] args: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WebAssembly.Memory | undefined")] memory: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WebAssembly.Global")] fuel: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let func = index_from_js(&func, "func")? as usize;
            let (memory, global) = wasi_handles(&memory, &fuel)?;
            let fuel_left = fuel_from_js(&global.value())?;
            let instance = self.native_mut(&instance_id)?;
            let params = instance
                .wasi_params(func)
                .ok_or_else(|| Error::invalid_argument(format!("unknown WASI function {func}")))?;
            let values = wasi_args_from_js(params, &args)?;
            let step =
                instance.wasi_call_in(func, &values, WasiMemory::js(memory.as_ref()), fuel_left)?;
            wasi_step_to_js(step, &global)
        };
        run().map_err(throw)
    }

    /// `nativeWasiResume(instanceId, memory, fuel)`: continues the WASI call that returned
    /// `{wait}`, once its sleep is over or stdin got data or ended (`pushStdin`). Returns as
    /// `nativeWasi` (`{wait}` again while stdin is still empty).
    ///
    /// Throws `TIMEOUT`, `FUEL_EXHAUSTED`, `MEMORY_LIMIT` (the call ended), `INVALID_ARGUMENT`
    /// (no WASI call waits).
    #[wasm_bindgen(js_name = nativeWasiResume, unchecked_return_type = "number | { wait: CoreWasiWait } | { step: CoreStep }")]
    pub fn native_wasi_resume(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WebAssembly.Memory | undefined")] memory: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WebAssembly.Global")] fuel: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let (memory, global) = wasi_handles(&memory, &fuel)?;
            let fuel_left = fuel_from_js(&global.value())?;
            let instance = self.native_mut(&instance_id)?;
            let step = instance.wasi_resume_in(WasiMemory::js(memory.as_ref()), fuel_left)?;
            wasi_step_to_js(step, &global)
        };
        run().map_err(throw)
    }

    /// `isNative(instanceId)`: whether the id is a live native instance.
    #[wasm_bindgen(js_name = isNative)]
    pub fn is_native(
        &self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> bool {
        index_from_js(&instance_id, "instanceId").is_ok_and(|id| self.natives.contains_key(&id))
    }

    /// `nativeStart(instanceId, exportName, args, options, memoryBytes)`: starts a call.
    /// Returns `{fuel, args}`: the value to set `nestbox_fuel` to (a `BigInt`) and the
    /// arguments typed for the engine (i64 as `BigInt`).
    ///
    /// Throws `BUSY`, `POISONED`, `INVALID_ARGUMENT`, `MEMORY_LIMIT`.
    #[wasm_bindgen(js_name = nativeStart, unchecked_return_type = "{ fuel: bigint; args: CoreValue[] }")]
    pub fn native_start(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(js_name = exportName, unchecked_param_type = "string")] export: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreValue[]")] args: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreCallOptions | undefined")] options: JsValue,
        #[wasm_bindgen(js_name = memoryBytes, unchecked_param_type = "number")]
        memory_bytes: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let instance = self.native_mut(&instance_id)?;
            let export = string_from_js(&export, "export")?;
            let args = array_from_js(&args, "args")?;
            let options = call_options_from_js(&options)?;
            let memory_bytes = bytes_count(&memory_bytes, "memoryBytes")?;
            let values = match instance.export_signature(&export) {
                Some(signature) if instance.state() == InstanceState::Idle => values_from_js(
                    &signature.params,
                    &args,
                    &format!("arguments of {export:?}"),
                )?,
                _ => Vec::new(),
            };
            let fuel = instance.start(&export, &values, &options, memory_bytes)?;
            let record = Object::new();
            set(&record, "fuel", &JsValue::from(fuel));
            set(&record, "args", &values_to_js(&values));
            Ok(record.into())
        };
        run().map_err(throw)
    }

    /// `nativeRefuel(instanceId, fuelLeft, memoryBytes)`: the guest's `out_of_fuel`. Returns
    /// the value to set `nestbox_fuel` to (a `BigInt`, non-negative).
    ///
    /// Throws `FUEL_EXHAUSTED`, `TIMEOUT`, `MEMORY_LIMIT` (the call ended, with metrics).
    #[wasm_bindgen(js_name = nativeRefuel, unchecked_return_type = "bigint")]
    pub fn native_refuel(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
        #[wasm_bindgen(js_name = memoryBytes, unchecked_param_type = "number")]
        memory_bytes: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let memory_bytes = bytes_count(&memory_bytes, "memoryBytes")?;
            let instance = self.native_mut(&instance_id)?;
            Ok(JsValue::from(instance.refuel(fuel_left, memory_bytes)?))
        };
        run().map_err(throw)
    }

    /// `nativeHost(instanceId, link, args, fuelLeft, memoryBytes)`: the guest called its
    /// granted import number `link`. Returns `{step, fuel}`: the `host` step to run (as the
    /// interpreter's) and the value to set `nestbox_fuel` to (the host-call charge taken).
    ///
    /// Throws `FUEL_EXHAUSTED`, `TIMEOUT`, `MEMORY_LIMIT`, `HOST_ERROR` (the call ended).
    #[wasm_bindgen(js_name = nativeHost, unchecked_return_type = "{ step: CoreStep; fuel: bigint }")]
    pub fn native_host(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] link: JsValue,
        #[wasm_bindgen(unchecked_param_type = "unknown[]")] args: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
        #[wasm_bindgen(js_name = memoryBytes, unchecked_param_type = "number")]
        memory_bytes: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let memory_bytes = bytes_count(&memory_bytes, "memoryBytes")?;
            let link = index_from_js(&link, "link")? as usize;
            let args = array_from_js(&args, "args")?;
            let instance = self.native_mut(&instance_id)?;
            let params = instance
                .links_params(link)
                .ok_or_else(|| Error::invalid_argument(format!("unknown link {link}")))?;
            let values = values_from_js(&params, &args, "arguments of a host call")?;
            let (step, fuel) = instance.host_call(link, values, fuel_left, memory_bytes)?;
            let record = Object::new();
            set(&record, "step", &step_to_js(&step, None)?);
            set(&record, "fuel", &JsValue::from(fuel));
            Ok(record.into())
        };
        run().map_err(throw)
    }

    /// `nativeHostResults(instanceId, results, fuelLeft)`: checks the host's answer to the
    /// pending host call. Returns the results typed for the engine (i64 as `BigInt`).
    ///
    /// Throws `HOST_ERROR` (wrong results: the call ended), `TIMEOUT`, `INVALID_ARGUMENT`.
    #[wasm_bindgen(js_name = nativeHostResults, unchecked_return_type = "CoreValue[]")]
    pub fn native_host_results(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreValue[]")] results: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let results = array_from_js(&results, "results")?;
            let instance = self.native_mut(&instance_id)?;
            let types = instance
                .pending_host_results()
                .map(<[ValueType]>::to_vec)
                .ok_or_else(|| {
                    Error::invalid_argument("the running call is not waiting for a host answer")
                })?;
            let values = match values_from_js(&types, &results, "results of a host call") {
                Ok(values) => values,
                // The host function broke its signature: the call ends with HOST_ERROR, as
                // the interpreter's `resumeHost` does.
                Err(e) => {
                    let error = Error::new(ErrorCode::HostError, e.message());
                    return Err(instance.fail_host(error, fuel_left));
                }
            };
            instance.host_results(&values, fuel_left)?;
            Ok(values_to_js(&values))
        };
        run().map_err(throw)
    }

    /// `nativeFailHost(instanceId, message, code?, fuelLeft)`: ends a call waiting for a host
    /// answer, as `failHost`. Returns the error record (with metrics).
    #[wasm_bindgen(js_name = nativeFailHost, unchecked_return_type = "CoreErrorRecord")]
    pub fn native_fail_host(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CoreHostFailureCode | undefined")] code: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let message = string_from_js(&message, "message")?;
            let error = super::audit::host_failure_from_js(&message, &code)?;
            let instance = self.native_mut(&instance_id)?;
            if instance.pending_host_results().is_none() {
                return Err(Error::invalid_argument(
                    "the running call is not waiting for a host answer, so it cannot fail",
                ));
            }
            Ok(error_to_js(&instance.fail_host(error, fuel_left)))
        };
        run().map_err(throw)
    }

    /// `nativeFinish(instanceId, result, fuelLeft, memoryBytes)`: the export returned
    /// `result` (as the engine gave it: `undefined`, a value, or an array for several). Returns the `finished` step (metrics; the `call`
    /// audit entry is written).
    #[wasm_bindgen(js_name = nativeFinish, unchecked_return_type = "CoreStep")]
    pub fn native_finish(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "unknown")] results: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
        #[wasm_bindgen(js_name = memoryBytes, unchecked_param_type = "number")]
        memory_bytes: JsValue,
    ) -> Result<JsValue, JsValue> {
        let run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let memory_bytes = bytes_count(&memory_bytes, "memoryBytes")?;
            let instance = self.native_mut(&instance_id)?;
            let types = instance.running_result_types().unwrap_or_default();
            // The engine's return value: nothing, one value, or an array of them (multi-value).
            let list = match types.len() {
                0 => Vec::new(),
                1 => vec![results],
                _ => array_from_js(&results, "results").unwrap_or_default(),
            };
            // Mistyped results (a broken engine) are refused by `finish`'s own check.
            let values = values_from_js(&types, &list, "results").unwrap_or_default();
            let step = instance.finish(values, fuel_left, memory_bytes)?;
            step_to_js(&step, None)
        };
        run().map_err(throw)
    }

    /// `nativeAbort(instanceId, code, message, trapCode?, fuelLeft, memoryBytes)`: ends the
    /// running call with this error (the engine trapped, or the caller cancelled): `CANCELLED`,
    /// `TRAP` (with `trapCode`), `STACK_OVERFLOW`, `HOST_ERROR`, `MEMORY_LIMIT` or
    /// `TABLE_LIMIT`. Returns the error record with the metrics; the instance is poisoned.
    #[wasm_bindgen(js_name = nativeAbort, unchecked_return_type = "CoreErrorRecord")]
    pub fn native_abort(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
        #[wasm_bindgen(js_name = trapCode, unchecked_param_type = "string | undefined")] trap_code: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
        #[wasm_bindgen(js_name = memoryBytes, unchecked_param_type = "number")]
        memory_bytes: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let memory_bytes = bytes_count(&memory_bytes, "memoryBytes")?;
            let text = string_from_js(&code, "code")?;
            let code = ErrorCode::parse(&text)
                .filter(|c| ABORT_CODES.contains(c))
                .ok_or_else(|| {
                    Error::invalid_argument(format!("code {text:?} cannot end a native call"))
                })?;
            let message = string_from_js(&message, "message")?;
            let trap = if trap_code.is_undefined() {
                None
            } else {
                let name = string_from_js(&trap_code, "trapCode")?;
                Some(
                    TrapCode::ALL
                        .into_iter()
                        .find(|t| t.as_str() == name)
                        .ok_or_else(|| {
                            Error::invalid_argument(format!("unknown trap code {name:?}"))
                        })?,
                )
            };
            let error = Error::new(code, message).with(|d| d.trap_code = trap);
            let instance = self.native_mut(&instance_id)?;
            Ok(error_to_js(&instance.abort(error, fuel_left, memory_bytes)))
        };
        run().map_err(throw)
    }

    /// `nativeProgress(instanceId, fuelLeft)`: the running call's metrics so far, or
    /// `undefined` when no call runs.
    #[wasm_bindgen(js_name = nativeProgress, unchecked_return_type = "CoreMetrics | undefined")]
    pub fn native_progress(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(js_name = fuelLeft, unchecked_param_type = "bigint")] fuel_left: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut run = || -> Result<JsValue, Error> {
            let fuel_left = fuel_from_js(&fuel_left)?;
            let instance = self.native_mut(&instance_id)?;
            match instance.progress(fuel_left) {
                Some(metrics) => metrics_to_js(&metrics),
                None => Ok(JsValue::UNDEFINED),
            }
        };
        run().map_err(throw)
    }
}
