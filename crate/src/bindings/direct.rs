//! The direct host of `nestbox/worker`: a JavaScript object whose `hostCall(link, memoryBase,
//! memoryBytes)` the interpreter calls from inside the guest's call, for grants made with
//! `direct: true` (synchronous capabilities in the same thread).
//!
//! Nothing crosses as a JavaScript object on the way: the link index and the guest memory's
//! place are numbers, the arguments and results go through one scratch buffer of 64-bit
//! slots in this module's own memory (fixed for the instance's life), which JavaScript views
//! as a `Float64Array` (`i32`, `f32`, `f64`: the number) and a `BigInt64Array` (`i64`) at
//! `scratch`. `hostCall` returns 0 when the results are in the scratch, 1 when the host owes
//! the answer (its step then carries `direct: true`); it never throws (a throw ends the call
//! with `HOST_ERROR`).

use wasm_bindgen::prelude::*;

use crate::capability::{DirectAnswer, DirectCall, DirectHost};
use crate::error::{Error, ErrorCode};
use crate::value::Value;

#[wasm_bindgen]
extern "C" {
    /// The package's direct host of one instance (`CoreDirectHost`).
    #[wasm_bindgen(typescript_type = "CoreDirectHost")]
    pub type JsDirectHost;

    #[wasm_bindgen(method, catch, js_name = hostCall)]
    fn host_call(
        this: &JsDirectHost,
        link: u32,
        memory_base: u32,
        memory_bytes: f64,
    ) -> Result<u32, JsValue>;

    /// The bare baseline of `benchBareHostCalls`: `{ next(i) }`.
    #[wasm_bindgen(typescript_type = "{ next(i: number): number }")]
    pub type BenchHost;

    #[wasm_bindgen(method)]
    fn next(this: &BenchHost, i: i32) -> i32;
}

/// `hostCall`'s answer: the results are in the scratch.
const ANSWERED: u32 = 0;
/// `hostCall`'s answer: the host owes the answer (a host-call step follows).
const SUSPEND: u32 = 1;

/// A [`DirectHost`] over a JavaScript object, with its scratch slots.
pub(super) struct JsDirect {
    host: JsDirectHost,
    scratch: Box<[u64]>,
}

impl JsDirect {
    /// A host with `slots` scratch slots (at least one).
    pub(super) fn new(host: JsDirectHost, slots: usize) -> Self {
        Self {
            host,
            scratch: vec![0; slots.max(1)].into_boxed_slice(),
        }
    }

    /// The scratch's address in this module's memory (8-byte aligned, fixed: the boxed slice
    /// never moves or grows).
    pub(super) fn scratch_address(&self) -> usize {
        self.scratch.as_ptr() as usize
    }
}

fn internal(what: &str) -> DirectAnswer {
    DirectAnswer::Fail(Error::new(
        ErrorCode::HostError,
        format!("internal: direct host call {what}"),
    ))
}

impl DirectHost for JsDirect {
    fn call(&mut self, call: DirectCall<'_>) -> DirectAnswer {
        if call.args.len() > self.scratch.len() || call.results.len() > self.scratch.len() {
            return internal("has more values than its scratch");
        }
        for (slot, value) in self.scratch.iter_mut().zip(call.args) {
            *slot = match *value {
                Value::I32(v) => f64::from(v).to_bits(),
                Value::I64(v) => v as u64,
                Value::F32(v) => f64::from(v).to_bits(),
                Value::F64(v) => v.to_bits(),
            };
        }
        // Only the address and length cross: JavaScript reads and writes the guest's memory
        // through this module's memory, during this call only (the view is closed after).
        let Ok(base) = u32::try_from(call.memory.as_mut_ptr() as usize) else {
            return internal("found guest memory outside the 32-bit address space");
        };
        let bytes = call.memory.len() as f64;
        match self.host.host_call(call.link as u32, base, bytes) {
            Ok(ANSWERED) => {}
            Ok(SUSPEND) => return DirectAnswer::Suspend,
            Ok(other) => return internal(&format!("answered {other}")),
            Err(thrown) => {
                return DirectAnswer::Fail(Error::new(
                    ErrorCode::HostError,
                    format!("internal: the direct host threw {thrown:?}"),
                ));
            }
        }
        // The host wrote each result as its declared type says (checked there).
        for (result, bits) in call.results.iter_mut().zip(self.scratch.iter().copied()) {
            *result = match *result {
                Value::I32(_) => Value::I32((f64::from_bits(bits) as i64) as i32),
                Value::I64(_) => Value::I64(bits as i64),
                Value::F32(_) => Value::F32(f64::from_bits(bits) as f32),
                Value::F64(_) => Value::F64(f64::from_bits(bits)),
            };
        }
        DirectAnswer::Answered
    }
}

/// `benchBareHostCalls`: runs `run(calls)` of `bytes` (a guest importing `env.next: i32 ->
/// i32`) in plain wasmi — the sandbox's engine configuration, no sandbox, no checks — with
/// `next` calling `host.next(i)` directly: the floor a nestbox host call is measured against.
pub(super) fn bench_bare_host_calls(
    bytes: &[u8],
    host: BenchHost,
    calls: i32,
) -> Result<i32, Error> {
    let engine = crate::cache::EngineKey::of(&crate::limits::Limits::default()).engine();
    let module = wasmi::Module::new(&engine, bytes)
        .map_err(|e| Error::invalid_argument(format!("bench guest: {e}")))?;
    let mut store = wasmi::Store::new(&engine, host);
    store
        .set_fuel(u64::MAX / 2)
        .map_err(|e| Error::invalid_argument(format!("fuel: {e}")))?;
    let mut linker = wasmi::Linker::<BenchHost>::new(&engine);
    linker
        .func_wrap(
            "env",
            "next",
            |caller: wasmi::Caller<'_, BenchHost>, i: i32| -> i32 { caller.data().next(i) },
        )
        .map_err(|e| Error::invalid_argument(format!("bench link: {e}")))?;
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| Error::invalid_argument(format!("bench instance: {e}")))?;
    let run = instance
        .get_typed_func::<i32, i32>(&store, "run")
        .map_err(|e| Error::invalid_argument(format!("bench export: {e}")))?;
    run.call(&mut store, calls)
        .map_err(|e| Error::invalid_argument(format!("bench call: {e}")))
}
