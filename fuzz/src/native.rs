//! The native tier's instrumentation, differentially: a wasm-smith module (no imports) runs in
//! wasmi as it is (wasmi's own fuel, recursion limit and store limits) and instrumented by
//! [`nestbox::native::instrument`] (wasmi without fuel, a host that refills the module's own
//! counter from a budget), and the two must agree — every call's results bit for bit or the
//! same trap, and the exported memory's bytes at the end. A call where either side hit a limit
//! (fuel, depth, a memory or table minimum) ends the comparison for that case: the two tiers
//! count them differently, and they are limits, not semantics. Memory and table *growth* past
//! the limits is compared (the original's store limits and the instrumented module's clamped
//! maxima must both answer -1).
//!
//! Also checked: the pass never panics, refuses nothing wasmi accepts except a minimum over a
//! limit, its output validates, and it is deterministic — a second instrumented instance makes
//! the same calls with the same results and the same fuel.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arbitrary::Unstructured;
use nestbox::ErrorCode;
use nestbox::native::{
    self, FUEL_EXPORT, IMPORT_MODULE, InstrumentConfig, OUT_OF_FUEL_IMPORT, STACK_OVERFLOW_IMPORT,
};

use crate::Labels;

const FUEL: u64 = 1_000_000;
const MEMORY: u64 = 16 << 20;
const TABLE: u64 = 10_000;
const DEPTH: u32 = 500;
const MAX_CALLS: usize = 8;

/// Runs one native-tier case (on its own thread: [`crate::CASE_STACK_BYTES`]). `Err` is a bug
/// of the pass, described.
pub fn run_native_case(data: &[u8]) -> Result<Labels, String> {
    crate::on_case_stack(|| native_case(data))
}

fn native_case(data: &[u8]) -> Result<Labels, String> {
    let mut labels = Labels::new();
    let mut u = Unstructured::new(data);
    let generated = catch_unwind(AssertUnwindSafe(|| module(&mut u)));
    let Ok(Some(bytes)) = generated else {
        labels.push("generate:gave-up".to_owned());
        return Ok(labels);
    };
    if let Some(path) = std::env::var_os("FUZZ_DUMP") {
        // `--native --replay` with FUZZ_DUMP=FILE: the generated module, to look at.
        let _ = std::fs::write(path, &bytes);
    }
    let config = InstrumentConfig {
        max_call_depth: DEPTH,
        max_memory_bytes: MEMORY,
        max_table_elements: TABLE,
        start_fuel: FUEL,
    };
    let engine = original_engine();
    if wasmi::Module::new(&engine, &bytes[..]).is_err() {
        labels.push("original:invalid".to_owned());
        return Ok(labels);
    }
    let instrumented = match catch_unwind(|| native::instrument(&bytes, &config)) {
        Err(panic) => {
            return Err(format!(
                "native::instrument panicked: {}",
                crate::panic_message(&*panic)
            ));
        }
        Ok(Err(e)) if matches!(e.code(), ErrorCode::MemoryLimit | ErrorCode::TableLimit) => {
            labels.push(format!("instrument:{}", e.code()));
            return Ok(labels);
        }
        Ok(Err(e)) => return Err(format!("refused a module wasmi accepts: {e}")),
        Ok(Ok(i)) => i,
    };
    labels.push("instrument:ok".to_owned());
    if let Err(e) = wasmi::Module::new(&instrumented_engine(), &instrumented.bytes[..]) {
        return Err(format!("the instrumented module does not validate: {e}"));
    }
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let compared = catch_unwind(AssertUnwindSafe(|| {
        compare(&bytes, &instrumented.bytes, seed, &mut labels)
    }));
    match compared {
        Ok(result) => result?,
        Err(panic) => {
            // wasmi's translator has open bugs of its own (SECURITY.md: `unreachable!()` for
            // some integer stores), reached lazily at a function's first call. Which module
            // makes it panic is found by translating each one eagerly: the original (wasmi's
            // bug, nothing to compare), only the instrumented one (wasmi's bug too — the
            // output validates — but one the pass's output reaches: labelled on its own), or
            // neither, when the panic came from running and is reported.
            let message = crate::panic_message(&*panic);
            match (
                translates(original_engine(), &bytes),
                translates(instrumented_engine(), &instrumented.bytes),
            ) {
                (false, _) => labels.push("run:wasmi-translator-panicked".to_owned()),
                (true, false) => {
                    labels.push("run:wasmi-translator-panicked-instrumented-only".to_owned())
                }
                (true, true) => return Err(format!("panic while comparing: {message}")),
            }
        }
    }
    Ok(labels)
}

/// Whether wasmi translates every function of `bytes` without panicking (eagerly, with
/// `engine`'s other settings).
fn translates(engine: wasmi::Engine, bytes: &[u8]) -> bool {
    let mut config = engine.config().clone();
    config.compilation_mode(wasmi::CompilationMode::Eager);
    let engine = wasmi::Engine::new(&config);
    catch_unwind(AssertUnwindSafe(|| {
        wasmi::Module::new(&engine, bytes).is_ok()
    }))
    .is_ok()
}

/// A pure module (no imports): its exports are what get compared.
fn module(u: &mut Unstructured<'_>) -> Option<Vec<u8>> {
    let mut config = crate::smith_config(u)?;
    config.max_imports = 0;
    config.min_imports = 0;
    config.available_imports = None;
    config.export_everything = u.ratio(3, 4).unwrap_or(true);
    crate::smith_module(u, config)
}

/// The original's wasmi: the interpreter tier's settings (fuel, recursion limit).
fn original_engine() -> wasmi::Engine {
    let mut config = wasmi::Config::default();
    config
        .consume_fuel(true)
        .fuel_cost(wasmi::CustomFuelCosts {
            bytes_copied_per_fuel: 64,
            fuel_per_bytes_translated: 0,
            fuel_per_bytes_validated: 0,
        })
        .set_max_recursion_depth(DEPTH as usize)
        .wasm_multi_memory(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false);
    wasmi::Engine::new(&config)
}

/// The instrumented module's wasmi: no fuel, and a recursion limit above the module's own
/// (each guest frame may add the refuel path and the host call).
fn instrumented_engine() -> wasmi::Engine {
    let mut config = wasmi::Config::default();
    config.set_max_recursion_depth(DEPTH as usize * 2 + 16);
    wasmi::Engine::new(&config)
}

#[derive(Default)]
struct Host {
    limits: Option<wasmi::StoreLimits>,
    fuel: Option<wasmi::Global>,
    budget: u64,
    granted: u64,
    limit_hit: bool,
}

/// How a call (or the instantiation) came out: results by their bits, a trap code, or a
/// limit.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Returned(Vec<Option<u64>>),
    Trapped(Option<wasmi::TrapCode>),
    Limit,
}

struct Side {
    store: wasmi::Store<Host>,
    instance: Option<wasmi::Instance>,
    instrumented: bool,
}

impl Side {
    fn new(bytes: &[u8], instrumented: bool) -> Result<(Self, Outcome), String> {
        let engine = if instrumented {
            instrumented_engine()
        } else {
            original_engine()
        };
        let module = wasmi::Module::new(&engine, bytes).map_err(|e| format!("module: {e}"))?;
        let host = Host {
            limits: (!instrumented).then(|| {
                wasmi::StoreLimitsBuilder::new()
                    .memory_size(MEMORY as usize)
                    .table_elements(TABLE as usize)
                    .build()
            }),
            budget: FUEL,
            ..Host::default()
        };
        let mut store = wasmi::Store::new(&engine, host);
        if !instrumented {
            store.limiter(|h| h.limits.as_mut().expect("the original has store limits"));
            store.set_fuel(FUEL).map_err(|e| e.to_string())?;
        }
        let mut linker = wasmi::Linker::<Host>::new(&engine);
        linker
            .func_wrap(IMPORT_MODULE, OUT_OF_FUEL_IMPORT, out_of_fuel)
            .map_err(|e| e.to_string())?;
        linker
            .func_wrap(
                IMPORT_MODULE,
                STACK_OVERFLOW_IMPORT,
                |mut caller: wasmi::Caller<'_, Host>| -> Result<(), wasmi::Error> {
                    caller.data_mut().limit_hit = true;
                    Err(wasmi::Error::new("stack overflow"))
                },
            )
            .map_err(|e| e.to_string())?;
        let mut side = Side {
            store,
            instance: None,
            instrumented,
        };
        let outcome = match linker.instantiate_and_start(&mut side.store, &module) {
            Ok(instance) => {
                side.instance = Some(instance);
                if instrumented {
                    side.store.data_mut().fuel = instance.get_global(&side.store, FUEL_EXPORT);
                }
                Outcome::Returned(Vec::new())
            }
            Err(e) => side.classify(&e),
        };
        Ok((side, outcome))
    }

    fn classify(&self, e: &wasmi::Error) -> Outcome {
        let code = e.as_trap_code();
        let limit = self.store.data().limit_hit
            || matches!(
                code,
                Some(
                    wasmi::TrapCode::OutOfFuel
                        | wasmi::TrapCode::StackOverflow
                        | wasmi::TrapCode::GrowthOperationLimited
                        | wasmi::TrapCode::OutOfSystemMemory
                )
            )
            || code.is_none();
        if limit {
            Outcome::Limit
        } else {
            Outcome::Trapped(code)
        }
    }

    fn call(&mut self, name: &str, args: &[wasmi::Val]) -> Result<Outcome, String> {
        let Some(instance) = self.instance else {
            return Err("no instance".to_owned());
        };
        let func = instance
            .get_func(&self.store, name)
            .ok_or_else(|| format!("no export {name}"))?;
        let ty = func.ty(&self.store);
        let mut results: Vec<wasmi::Val> = ty
            .results()
            .iter()
            .map(|t| wasmi::Val::default_for_ty(*t))
            .collect();
        self.store.data_mut().limit_hit = false;
        if self.instrumented {
            // The host's protocol: a fresh budget per call, the depth counter at 0.
            self.store.data_mut().budget = FUEL;
            if let Some(depth) = instance.get_global(&self.store, native::DEPTH_EXPORT) {
                depth
                    .set(&mut self.store, wasmi::Val::I32(0))
                    .map_err(|e| e.to_string())?;
            }
        } else {
            self.store.set_fuel(FUEL).map_err(|e| e.to_string())?;
        }
        Ok(match func.call(&mut self.store, args, &mut results) {
            Ok(()) => Outcome::Returned(results.iter().map(bits).collect()),
            Err(e) => self.classify(&e),
        })
    }

    fn memory(&self) -> Option<Vec<u8>> {
        let instance = self.instance?;
        let memory = instance
            .get_memory(&self.store, "memory")
            .or_else(|| instance.exports(&self.store).find_map(|e| e.into_memory()))?;
        Some(memory.data(&self.store).to_vec())
    }

    /// Fuel consumed by the instrumented side so far.
    fn consumed(&self) -> Option<u64> {
        let fuel = self.store.data().fuel?;
        let wasmi::Val::I64(left) = fuel.get(&self.store) else {
            return None;
        };
        Some((FUEL + self.store.data().granted).saturating_sub(u64::try_from(left).ok()?))
    }
}

fn out_of_fuel(mut caller: wasmi::Caller<'_, Host>) -> Result<(), wasmi::Error> {
    let Some(global) = caller.data().fuel else {
        caller.data_mut().limit_hit = true;
        return Err(wasmi::Error::new("out of fuel in the start function"));
    };
    let wasmi::Val::I64(mut fuel) = global.get(&caller) else {
        return Err(wasmi::Error::new("the fuel counter is not an i64"));
    };
    while fuel < 0 {
        let host = caller.data_mut();
        let add = host.budget.min(10_000);
        if add == 0 {
            host.limit_hit = true;
            return Err(wasmi::Error::new("out of fuel"));
        }
        host.budget -= add;
        host.granted += add;
        fuel = fuel.saturating_add(add as i64);
    }
    global
        .set(&mut caller, wasmi::Val::I64(fuel))
        .map_err(|e| wasmi::Error::new(e.to_string()))
}

fn bits(v: &wasmi::Val) -> Option<u64> {
    match v {
        wasmi::Val::I32(x) => Some(u64::from(*x as u32)),
        wasmi::Val::I64(x) => Some(*x as u64),
        wasmi::Val::F32(x) => Some(u64::from(f32::from(*x).to_bits())),
        wasmi::Val::F64(x) => Some(f64::from(*x).to_bits()),
        _ => None,
    }
}

fn random_val(rng: &mut crate::SplitMix64, ty: wasmi::ValType) -> Option<wasmi::Val> {
    let small = [0u64, 1, 2, 7, 100, 65_536, u64::MAX];
    let raw = if rng.below(2) == 0 {
        small[rng.below(small.len() as u64) as usize]
    } else {
        rng.next_u64()
    };
    Some(match ty {
        wasmi::ValType::I32 => wasmi::Val::I32(raw as i32),
        wasmi::ValType::I64 => wasmi::Val::I64(raw as i64),
        wasmi::ValType::F32 => wasmi::Val::F32(f32::from_bits(raw as u32).into()),
        wasmi::ValType::F64 => wasmi::Val::F64(f64::from_bits(raw).into()),
        _ => return None,
    })
}

fn compare(
    original: &[u8],
    instrumented: &[u8],
    seed: u64,
    labels: &mut Labels,
) -> Result<(), String> {
    let (mut a, start_a) = Side::new(original, false)?;
    let (mut b, start_b) = Side::new(instrumented, true)?;
    let (mut c, start_c) = Side::new(instrumented, true)?;
    if start_b != start_c {
        return Err(format!(
            "instantiation not deterministic: {start_b:?} / {start_c:?}"
        ));
    }
    match (&start_a, &start_b) {
        (Outcome::Limit, _) | (_, Outcome::Limit) => {
            labels.push("instantiate:limit".to_owned());
            return Ok(());
        }
        (x, y) if x != y && has_eqz_select(original) => {
            // The wasmi bug below, in a start function.
            labels.push("instantiate:wasmi-select-bug".to_owned());
            return Ok(());
        }
        (x, y) if x != y => {
            return Err(format!("instantiation: original {x:?}, instrumented {y:?}"));
        }
        (Outcome::Trapped(_), _) => {
            labels.push("instantiate:trap".to_owned());
            return Ok(());
        }
        _ => {}
    }
    let Some(instance) = a.instance else {
        return Ok(());
    };
    let exports: Vec<(String, wasmi::FuncType)> = instance
        .exports(&a.store)
        .filter_map(|e| {
            let name = e.name().to_owned();
            e.into_func().map(|f| (name, f.ty(&a.store)))
        })
        .take(MAX_CALLS)
        .collect();
    let mut rng = crate::SplitMix64(seed);
    for (name, ty) in exports {
        let Some(args) = ty
            .params()
            .iter()
            .map(|t| random_val(&mut rng, *t))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let want = a.call(&name, &args)?;
        let got = b.call(&name, &args)?;
        let again = c.call(&name, &args)?;
        if got != again || b.consumed() != c.consumed() {
            return Err(format!(
                "{name}: the instrumented module is not deterministic: {got:?} / {again:?}, fuel {:?} / {:?}",
                b.consumed(),
                c.consumed()
            ));
        }
        if want == Outcome::Limit || got == Outcome::Limit {
            labels.push("diff:limit".to_owned());
            return Ok(());
        }
        if want != got && has_eqz_select(original) {
            // wasmi 2.0.0 miscompiles `select(a, x, x == 0)` after an `if` (it picks `x`:
            // `wasmi_selects_wrongly_after_an_if` in tests/native.rs). wasm-smith guards every
            // division that way, and the pass adds `if`s, so the two sides disagree in wasmi
            // itself; such a module is not compared.
            labels.push("diff:wasmi-select-bug".to_owned());
            return Ok(());
        }
        if want != got {
            return Err(format!(
                "{name}({args:?}): original {want:?}, instrumented {got:?}"
            ));
        }
        labels.push("diff:agree".to_owned());
    }
    if a.memory() != b.memory() {
        return Err("the memories differ after the same calls".to_owned());
    }
    Ok(())
}

/// Whether a body has `i32.eqz`/`i64.eqz` right before a `select` (see the wasmi bug above).
fn has_eqz_select(bytes: &[u8]) -> bool {
    use wasmparser::{Operator, Parser, Payload};
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CodeSectionEntry(body)) = payload else {
            continue;
        };
        let Ok(mut reader) = body.get_operators_reader() else {
            continue;
        };
        let mut eqz = false;
        while let Ok(op) = reader.read() {
            let select = matches!(op, Operator::Select | Operator::TypedSelect { .. });
            if eqz && select {
                return true;
            }
            eqz = matches!(op, Operator::I32Eqz | Operator::I64Eqz);
        }
    }
    false
}
