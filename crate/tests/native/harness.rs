//! Runs instrumented guests in wasmi natively, with a host that plays the native tier's part:
//! `nestbox.out_of_fuel` refills the fuel counter from a budget, one slice at a time, and traps
//! when the budget is spent; `nestbox.stack_overflow` traps. The original module runs in the
//! same wasmi, unmetered, for comparison.

use nestbox::native::{
    self, DEPTH_EXPORT, FUEL_EXPORT, IMPORT_MODULE, InstrumentConfig, Instrumented,
    OUT_OF_FUEL_IMPORT, STACK_OVERFLOW_IMPORT,
};
use wasmi::{Caller, Engine, Extern, Func, Global, Linker, Module, Store, Val};

/// How a call ended, when it did not return.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    /// `out_of_fuel` was called with the budget spent.
    OutOfFuel,
    /// `stack_overflow` was called.
    StackOverflow,
    /// Any other trap, with wasmi's trap code when it has one.
    Trap(Option<wasmi::TrapCode>, String),
}

#[derive(Default)]
pub struct Host {
    /// The fuel counter, once the instance exists (`None` during the start function).
    fuel: Option<Global>,
    /// Fuel the host may still hand out.
    pub budget: u64,
    /// Fuel handed out per `out_of_fuel` call.
    pub slice: u64,
    /// Fuel handed out so far.
    pub granted: u64,
    pub out_of_fuel_calls: u64,
    pub ended: Option<Ended>,
    /// Calls of `env.double`.
    pub doubles: u64,
}

fn out_of_fuel(mut caller: Caller<'_, Host>) -> Result<(), wasmi::Error> {
    caller.data_mut().out_of_fuel_calls += 1;
    let Some(global) = caller.data().fuel else {
        // The start function: the host cannot refill before instantiation ends.
        caller.data_mut().ended = Some(Ended::OutOfFuel);
        return Err(wasmi::Error::new("out of fuel during the start function"));
    };
    let Val::I64(mut fuel) = global.get(&caller) else {
        return Err(wasmi::Error::new("nestbox_fuel is not an i64"));
    };
    while fuel < 0 {
        let host = caller.data_mut();
        let add = host.slice.min(host.budget);
        if add == 0 {
            host.ended = Some(Ended::OutOfFuel);
            return Err(wasmi::Error::new("out of fuel"));
        }
        host.budget -= add;
        host.granted += add;
        fuel += add as i64;
    }
    global
        .set(&mut caller, Val::I64(fuel))
        .map_err(|e| wasmi::Error::new(e.to_string()))
}

fn stack_overflow(mut caller: Caller<'_, Host>) -> Result<(), wasmi::Error> {
    caller.data_mut().ended = Some(Ended::StackOverflow);
    Err(wasmi::Error::new("stack overflow"))
}

/// wasmi without its own fuel, with a recursion limit above any the tests configure (so the
/// instrumentation's counter is what stops a guest).
pub fn engine() -> Engine {
    let mut config = wasmi::Config::default();
    config.set_max_recursion_depth(200_000);
    Engine::new(&config)
}

fn linker(engine: &Engine) -> Linker<Host> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap(IMPORT_MODULE, OUT_OF_FUEL_IMPORT, out_of_fuel)
        .expect("define");
    linker
        .func_wrap(IMPORT_MODULE, STACK_OVERFLOW_IMPORT, stack_overflow)
        .expect("define");
    linker
        .func_wrap(
            "env",
            "double",
            |mut caller: Caller<'_, Host>, x: i64| -> i64 {
                caller.data_mut().doubles += 1;
                x.wrapping_mul(2)
            },
        )
        .expect("define");
    linker
        .func_wrap("env", "log", |_: Caller<'_, Host>, _ptr: i32, _len: i32| {})
        .expect("define");
    linker
}

fn ended(host: &Host, e: &wasmi::Error) -> Ended {
    host.ended
        .clone()
        .unwrap_or_else(|| Ended::Trap(e.as_trap_code(), e.to_string()))
}

/// One instance (original or instrumented) and its store.
pub struct Run {
    pub store: Store<Host>,
    instance: wasmi::Instance,
    /// Start fuel the start function did not use (below zero: its overdraft), taken out
    /// before the first call.
    discarded: i64,
}

impl Run {
    /// The original module, unmetered.
    pub fn original(bytes: &[u8]) -> Result<Self, Ended> {
        Self::start(bytes, Host::default())
    }

    /// The instrumented module, with `budget` fuel handed out `slice` at a time.
    pub fn instrumented(meta: &Instrumented, budget: u64, slice: u64) -> Result<Self, Ended> {
        let host = Host {
            budget,
            slice,
            ..Host::default()
        };
        let mut run = Self::start(&meta.bytes, host)?;
        let Some(Extern::Global(fuel)) = run.instance.get_export(&run.store, FUEL_EXPORT) else {
            panic!("the instrumented module exports {FUEL_EXPORT}");
        };
        // What the start function left is not handed to calls: each call's fuel comes from
        // the budget, through `out_of_fuel`.
        let Val::I64(left) = fuel.get(&run.store) else {
            panic!("{FUEL_EXPORT} is an i64");
        };
        run.discarded = left;
        fuel.set(&mut run.store, Val::I64(0)).expect("set fuel");
        run.store.data_mut().fuel = Some(fuel);
        Ok(run)
    }

    fn start(bytes: &[u8], host: Host) -> Result<Self, Ended> {
        let engine = engine();
        let module = Module::new(&engine, bytes).expect("the module validates in wasmi");
        let mut store = Store::new(&engine, host);
        let instance = linker(&engine)
            .instantiate_and_start(&mut store, &module)
            .map_err(|e| ended(store.data(), &e))?;
        Ok(Self {
            store,
            instance,
            discarded: 0,
        })
    }

    fn global(&self, name: &str) -> Option<Global> {
        match self.instance.get_export(&self.store, name) {
            Some(Extern::Global(g)) => Some(g),
            _ => None,
        }
    }

    /// The fuel counter's value now.
    pub fn fuel(&self) -> i64 {
        match self.global(FUEL_EXPORT).map(|g| g.get(&self.store)) {
            Some(Val::I64(v)) => v,
            other => panic!("{FUEL_EXPORT}: {other:?}"),
        }
    }

    /// The call-depth counter's value now.
    pub fn depth(&self) -> i32 {
        match self.global(DEPTH_EXPORT).map(|g| g.get(&self.store)) {
            Some(Val::I32(v)) => v,
            other => panic!("{DEPTH_EXPORT}: {other:?}"),
        }
    }

    /// Fuel consumed so far (the start function's included): all that was ever in the
    /// counter minus what is left.
    pub fn consumed(&self, start_fuel: u64) -> u64 {
        // The counter may be below zero: the blocks since the last check overdrew it.
        let consumed = i128::from(start_fuel) + i128::from(self.store.data().granted)
            - i128::from(self.discarded)
            - i128::from(self.fuel());
        u64::try_from(consumed).expect("the counter never holds more than was granted")
    }

    /// Calls `export` with `args`. The fuel left carries over from call to call (so
    /// [`Run::consumed`] adds up); the depth counter is reset first, as the host does (a call
    /// that trapped leaves it where the guest was).
    pub fn call(&mut self, export: &str, args: &[Val]) -> Result<Vec<Val>, Ended> {
        if let Some(depth) = self.global(DEPTH_EXPORT) {
            depth.set(&mut self.store, Val::I32(0)).expect("set depth");
        }
        self.store.data_mut().ended = None;
        let func: Func = self
            .instance
            .get_func(&self.store, export)
            .unwrap_or_else(|| panic!("no export {export}"));
        let ty = func.ty(&self.store);
        let mut results: Vec<Val> = ty
            .results()
            .iter()
            .map(|t| Val::default_for_ty(*t))
            .collect();
        func.call(&mut self.store, args, &mut results)
            .map_err(|e| ended(self.store.data(), &e))?;
        Ok(results)
    }
}

/// Instruments `bytes` with `config`, panicking on a refusal.
pub fn instrument(bytes: &[u8], config: &InstrumentConfig) -> Instrumented {
    native::instrument(bytes, config).unwrap_or_else(|e| panic!("instrument: {e}"))
}

/// A configuration for tests: small, explicit limits.
pub fn config() -> InstrumentConfig {
    InstrumentConfig {
        max_call_depth: 1_000,
        max_memory_bytes: 16 << 20,
        max_table_elements: 10_000,
        start_fuel: 1_000_000,
    }
}

/// Values compared by their bits (NaN payloads included).
pub fn bits(values: &[Val]) -> Vec<(u8, u64)> {
    values
        .iter()
        .map(|v| match v {
            Val::I32(x) => (0, *x as u32 as u64),
            Val::I64(x) => (1, *x as u64),
            Val::F32(x) => (2, u64::from(f32::from(*x).to_bits())),
            Val::F64(x) => (3, f64::from(*x).to_bits()),
            _ => (4, 0),
        })
        .collect()
}

/// The bytes of `tests/fixtures/<name>.wat`, compiled.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}
