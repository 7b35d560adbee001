//! Go `js/wasm` guests in the binding: page values to and from [`GoValue`], and the `Core`
//! methods the worker's Go loop uses (`instantiateGo`, `startGoMain`, `startGoExport`,
//! `resumeGo`, `goExports`).

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::gojs::{GoConfig, MAX_COPY_DEPTH};
use crate::value::GoValue;

use super::convert::{call_options_from_js, index_from_js, string_from_js};
use super::{Core, InstanceEntry, take_id, throw};

/// The key of a capability token in a page value: `{ [GO_CAPABILITY_KEY]: id }`.
const CAPABILITY_KEY: &str = "__nestboxCapability";

/// A page value as a [`GoValue`]: JSON-like data, `Uint8Array`s, and capability tokens.
pub(crate) fn go_value_from_js(value: &JsValue, depth: usize) -> Result<GoValue, Error> {
    if depth > MAX_COPY_DEPTH {
        return Err(Error::invalid_argument(format!(
            "a value for the Go guest is nested deeper than {MAX_COPY_DEPTH} levels"
        )));
    }
    if value.is_undefined() {
        return Ok(GoValue::Undefined);
    }
    if value.is_null() {
        return Ok(GoValue::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(GoValue::Bool(b));
    }
    if let Some(n) = value.as_f64() {
        return Ok(GoValue::Number(n));
    }
    if let Some(s) = value.as_string() {
        return Ok(GoValue::String(s));
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(GoValue::Bytes(bytes.to_vec()));
    }
    if Array::is_array(value) {
        let array = Array::from(value);
        return array
            .iter()
            .map(|v| go_value_from_js(&v, depth + 1))
            .collect::<Result<_, _>>()
            .map(GoValue::Array);
    }
    if value.is_object() && !value.is_function() {
        let object = Object::from(value.clone());
        let cap = Reflect::get(&object, &JsValue::from_str(CAPABILITY_KEY)).unwrap_or_default();
        if let Some(id) = cap.as_f64() {
            if id >= 0.0 && id <= f64::from(u32::MAX) && id.fract() == 0.0 {
                return Ok(GoValue::Capability(id as u32));
            }
        }
        let mut map = std::collections::BTreeMap::new();
        for entry in Object::entries(&object).iter() {
            let pair = Array::from(&entry);
            let key = pair.get(0).as_string().unwrap_or_default();
            map.insert(key, go_value_from_js(&pair.get(1), depth + 1)?);
        }
        return Ok(GoValue::Object(map));
    }
    Err(Error::invalid_argument(
        "a value for the Go guest must be JSON-like data, a Uint8Array or a capability token (no functions, symbols or bigints)",
    ))
}

/// A [`GoValue`] as a page value (a token becomes `undefined`: it never goes back out).
pub(crate) fn go_value_to_js(value: &GoValue) -> JsValue {
    match value {
        GoValue::Undefined | GoValue::Capability(_) => JsValue::UNDEFINED,
        GoValue::Null => JsValue::NULL,
        GoValue::Bool(b) => JsValue::from_bool(*b),
        GoValue::Number(n) => JsValue::from_f64(*n),
        GoValue::String(s) => JsValue::from_str(s),
        GoValue::Bytes(b) => Uint8Array::from(b.as_slice()).into(),
        GoValue::Array(items) => items.iter().map(go_value_to_js).collect::<Array>().into(),
        GoValue::Object(map) => {
            let object = Object::new();
            for (k, v) in map {
                let _ = Reflect::set(&object, &JsValue::from_str(k), &go_value_to_js(v));
            }
            object.into()
        }
    }
}

fn config_from_js(config: &JsValue) -> Result<GoConfig, Error> {
    let mut out = GoConfig::default();
    if config.is_undefined() || config.is_null() {
        return Ok(out);
    }
    let get = |k: &str| Reflect::get(config, &JsValue::from_str(k)).unwrap_or_default();
    let argv = get("argv");
    if Array::is_array(&argv) {
        for a in Array::from(&argv).iter() {
            out.argv.push(string_from_js(&a, "argv")?);
        }
    }
    let env = get("env");
    if env.is_object() {
        for entry in Object::entries(&Object::from(env)).iter() {
            let pair = Array::from(&entry);
            let key = string_from_js(&pair.get(0), "env key")?;
            out.env
                .push((key, string_from_js(&pair.get(1), "env value")?));
        }
    }
    match go_value_from_js(&get("globals"), 0)? {
        GoValue::Undefined => {}
        GoValue::Object(map) => out.globals = map,
        _ => return Err(Error::invalid_argument("globals must be an object")),
    }
    Ok(out)
}

#[wasm_bindgen]
impl Core {
    /// `instantiateGo(moduleId, { argv?, env?, globals? })`: a Go js/wasm guest whose
    /// `js.Global()` holds exactly `globals` (capability tokens as `{ __nestboxCapability: id }`).
    #[wasm_bindgen(js_name = instantiateGo)]
    pub fn instantiate_go(
        &mut self,
        #[wasm_bindgen(js_name = moduleId, unchecked_param_type = "number")] module_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "unknown")] config: JsValue,
    ) -> Result<u32, JsValue> {
        (|| {
            let module_id = index_from_js(&module_id, "moduleId")?;
            let config = config_from_js(&config)?;
            let module = self
                .modules
                .get(&module_id)
                .ok_or_else(|| Error::invalid_argument(format!("unknown module {module_id}")))?;
            let instance = self.sandbox.instantiate_go(module, &config)?;
            let id = take_id(&mut self.next_instance_id, "instance")?;
            self.instances.insert(id, InstanceEntry { instance });
            Ok(id)
        })()
        .map_err(throw)
    }

    /// `startGoMain(instanceId, options?)`: runs `main` (a `CoreStep`).
    #[wasm_bindgen(js_name = startGoMain, unchecked_return_type = "CoreStep")]
    pub fn start_go_main(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreCallOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        (|| {
            let entry = self.instance_mut(&instance_id)?;
            let options = call_options_from_js(&options)?;
            let result = entry.instance.start_go_main(&options);
            entry.step(result)
        })()
        .map_err(throw)
    }

    /// `startGoExport(instanceId, name, args, options?)`: calls a registered Go function.
    #[wasm_bindgen(js_name = startGoExport, unchecked_return_type = "CoreStep")]
    pub fn start_go_export(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
        #[wasm_bindgen(unchecked_param_type = "unknown[]")] args: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreCallOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        (|| {
            let name = string_from_js(&name, "name")?;
            let args = match go_value_from_js(&args, 0)? {
                GoValue::Array(items) => items,
                _ => return Err(Error::invalid_argument("args must be an array")),
            };
            let options = call_options_from_js(&options)?;
            let entry = self.instance_mut(&instance_id)?;
            let result = entry.instance.start_go_export(&name, &args, &options);
            entry.step(result)
        })()
        .map_err(throw)
    }

    /// `startGoTimers(instanceId, options?)`: runs the Go timers that are due now (a `CoreStep`).
    #[wasm_bindgen(js_name = startGoTimers, unchecked_return_type = "CoreStep")]
    pub fn start_go_timers(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CoreCallOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        (|| {
            let entry = self.instance_mut(&instance_id)?;
            let options = call_options_from_js(&options)?;
            let result = entry.instance.start_go_timers(&options);
            entry.step(result)
        })()
        .map_err(throw)
    }

    /// `goNextTimerMs(instanceId)`: milliseconds until the Go program's next timer, or
    /// `undefined` (no timer, or the program exited).
    #[wasm_bindgen(js_name = goNextTimerMs)]
    pub fn go_next_timer_ms(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<Option<f64>, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        // Milliseconds well below 2^53 (a timer is at most Go's own int64 nanoseconds away).
        #[allow(clippy::cast_precision_loss)]
        Ok(entry.instance.go_next_timer_ms().map(|ms| ms as f64))
    }

    /// `resumeGo(instanceId, result)`: answers a Go guest's capability call.
    #[wasm_bindgen(js_name = resumeGo, unchecked_return_type = "CoreStep")]
    pub fn resume_go(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "unknown")] result: JsValue,
    ) -> Result<JsValue, JsValue> {
        (|| {
            let entry = self.instance_mut(&instance_id)?;
            let value = match go_value_from_js(&result, 0) {
                Ok(v) => v,
                Err(e) => {
                    let error = Error::new(crate::error::ErrorCode::HostError, e.message());
                    return Err(entry.instance.fail_host(error));
                }
            };
            let result = entry.instance.resume_go(&value);
            entry.step(result)
        })()
        .map_err(throw)
    }

    /// `goExports(instanceId)`: the functions the Go guest registered on `js.Global()`.
    #[wasm_bindgen(js_name = goExports, unchecked_return_type = "string[]")]
    pub fn go_exports(
        &mut self,
        #[wasm_bindgen(js_name = instanceId, unchecked_param_type = "number")] instance_id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let entry = self.instance_mut(&instance_id).map_err(throw)?;
        Ok(entry
            .instance
            .go_exports()
            .iter()
            .map(|s| JsValue::from_str(s))
            .collect::<Array>()
            .into())
    }
}
