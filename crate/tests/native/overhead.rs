//! What the instrumentation costs: bytes (printed for the benchmark guests, and for the real
//! WASI and data guests when they are built) and speed in wasmi (an ignored test: run it with
//! `cargo test --release -p nestbox --features native-tier --test native -- --ignored
//! --nocapture`). Printed, not asserted.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmi::{Engine, Linker, Module, Store, Val};

use crate::harness::{config, engine, instrument};

fn bench_guest(name: &str) -> Vec<u8> {
    let path = format!("{}/benches/guests/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The built guests of `make guests`: `$NATIVE_GUESTS_DIR`, or the workspace's `target/`.
fn built_guests() -> Vec<PathBuf> {
    let root = std::env::var_os("NATIVE_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut found = Vec::new();
    for dir in [
        "wasi-guests/rust",
        "wasi-guests/c",
        "wasi-guests/go",
        "data-guests/rust",
        "data-guests/c",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "wasm") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn size_overhead_of_real_guests() {
    println!(
        "{:<40} {:>10} {:>12} {:>8}",
        "guest", "bytes", "instrumented", "growth"
    );
    let mut rows: Vec<(String, Vec<u8>)> = ["fib", "loop", "sha256", "matmul"]
        .iter()
        .map(|n| (format!("benches/guests/{n}.wat"), bench_guest(n)))
        .collect();
    let built = built_guests();
    for path in &built {
        let bytes = std::fs::read(path).expect("read guest");
        let name = path
            .components()
            .rev()
            .take(2)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("/");
        rows.push((name, bytes));
    }
    let engine = engine();
    for (name, bytes) in &rows {
        let meta = instrument(bytes, &config());
        // Real compilers' output instruments into a module wasmi accepts.
        Module::new(&engine, &meta.bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{:<40} {:>10} {:>12} {:>7.1}%",
            name,
            bytes.len(),
            meta.bytes.len(),
            (meta.bytes.len() as f64 / bytes.len() as f64 - 1.0) * 100.0
        );
    }
    if built.is_empty() {
        println!("(no built guests: run `make guests`, or set NATIVE_GUESTS_DIR)");
    }
}

fn time_call(engine: &Engine, bytes: &[u8], export: &str, arg: i32, fuel: Option<u64>) -> f64 {
    #[derive(Default)]
    struct Fuel {
        global: Option<wasmi::Global>,
    }
    let module = Module::new(engine, bytes).expect("module");
    let mut store = Store::new(engine, Fuel::default());
    let mut linker = <Linker<Fuel>>::new(engine);
    linker
        .func_wrap(
            "nestbox",
            "out_of_fuel",
            |mut caller: wasmi::Caller<'_, Fuel>| {
                let Some(g) = caller.data().global else {
                    return Err(wasmi::Error::new("no fuel"));
                };
                g.set(&mut caller, Val::I64(1 << 20))
                    .map_err(|e| wasmi::Error::new(e.to_string()))
            },
        )
        .expect("define");
    linker
        .func_wrap(
            "nestbox",
            "stack_overflow",
            || -> Result<(), wasmi::Error> { Err(wasmi::Error::new("stack overflow")) },
        )
        .expect("define");
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .expect("instantiates");
    if fuel.is_some() {
        store.data_mut().global = instance.get_global(&store, "nestbox_fuel");
    }
    let func = instance.get_func(&store, export).expect("export");
    let mut results = vec![Val::I64(0); func.ty(&store).results().len()];
    let started = Instant::now();
    func.call(&mut store, &[Val::I32(arg)], &mut results)
        .expect("runs");
    started.elapsed().as_secs_f64() * 1e3
}

#[test]
#[ignore = "a benchmark: run with --release --ignored --nocapture"]
fn slowdown_in_wasmi() {
    let engine = engine();
    println!(
        "{:<14} {:>12} {:>15} {:>7}",
        "guest", "original ms", "instrumented ms", "ratio"
    );
    for (guest, export, arg) in [
        ("fib", "fib", 27),
        ("loop", "lcg", 20_000_000),
        ("sha256", "sha256", 1 << 20),
        ("matmul", "matmul", 120),
    ] {
        let bytes = bench_guest(guest);
        let meta = instrument(&bytes, &config());
        let median = |b: &[u8], fuel| {
            let mut samples: Vec<f64> = (0..5)
                .map(|_| time_call(&engine, b, export, arg, fuel))
                .collect();
            samples.sort_by(f64::total_cmp);
            samples[2]
        };
        let original = median(&bytes, None);
        let instrumented = median(&meta.bytes, Some(1));
        println!(
            "{:<14} {:>12.1} {:>15.1} {:>6.2}x",
            format!("{guest}({arg})"),
            original,
            instrumented,
            instrumented / original
        );
    }
}
