//! Compute benchmarks: four guests (`benches/guests/*.wat`) run through the core API, next to
//! the same computation in native Rust, plus the cost of fuel slicing, the cost of tracing
//! (off and on) and the size of the release wasm.
//!
//! Run with `cargo bench -p nestbox --bench compute`. Every figure is the median of 5 runs.

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use nestbox::{
    CallOptions, CapabilityId, Digest, Grants, HostFn, Instance, Limits, Sandbox, Signature, Value,
    ValueType,
};
use sha2::{Digest as _, Sha256};

const RUNS: usize = 5;

/// One benchmark: a guest export at one size, and its native twin.
struct Case {
    label: &'static str,
    guest: &'static str,
    export: &'static str,
    arg: i32,
    /// Runs the computation natively and returns its answer as the guest would.
    native: fn(i32) -> Answer,
}

/// What a run computed, compared between the guest and the native code.
#[derive(Debug, PartialEq)]
enum Answer {
    Value(Value),
    Digest([u8; 32]),
}

/// Medians of one guest case.
struct GuestRun {
    wall: Duration,
    fuel: u64,
    slices: u64,
    answer: Answer,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn median_u64(mut samples: Vec<u64>) -> u64 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn guest_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/benches/guests/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("benchmark guest source is readable");
    wat::parse_str(text).expect("benchmark guest is valid WAT")
}

/// Budgets that never end a benchmark; slices as given.
fn limits(fuel_per_slice: u64) -> Limits {
    Limits {
        fuel: u64::MAX / 2,
        fuel_per_slice,
        timeout_ms: 3_600_000,
        ..Limits::default()
    }
}

fn instantiate(sandbox: &Sandbox, guest: &str) -> Instance {
    let bytes = guest_bytes(guest);
    let module = sandbox
        .load(&bytes, &Digest::of(&bytes))
        .expect("benchmark guest loads");
    sandbox
        .instantiate(&module, &Grants::new())
        .expect("benchmark guest instantiates")
}

/// One timed call of `export(arg)`: wall time, fuel, slices, and what it computed.
fn call_once(instance: &mut Instance, export: &str, arg: i32) -> (Duration, u64, u64, Answer) {
    let started = Instant::now();
    let outcome = instance
        .call(export, &[Value::I32(arg)], |_, _| {
            panic!("benchmark guests have no imports")
        })
        .expect("benchmark guest call succeeds");
    let wall = started.elapsed();
    let result = *outcome.results.first().expect("guest returns a value");
    let answer = if export == "sha256" {
        let Value::I32(ptr) = result else {
            panic!("sha256 returns a pointer, got {result:?}");
        };
        let memory = instance.memory().expect("sha256 guest exports memory");
        let bytes = memory
            .read(ptr as u32, 32)
            .expect("digest is inside memory");
        Answer::Digest(bytes.try_into().expect("32 bytes"))
    } else {
        Answer::Value(result)
    };
    (
        wall,
        outcome.metrics.fuel_consumed,
        outcome.metrics.slices,
        answer,
    )
}

/// Medians of `RUNS` calls, given the samples.
fn medians(samples: Vec<(Duration, u64, u64, Answer)>) -> GuestRun {
    let mut walls = Vec::new();
    let mut fuels = Vec::new();
    let mut slices = Vec::new();
    let mut answer = None;
    for (wall, fuel, slice_count, a) in samples {
        walls.push(wall);
        fuels.push(fuel);
        slices.push(slice_count);
        answer = Some(a);
    }
    GuestRun {
        wall: median(walls),
        fuel: median_u64(fuels),
        slices: median_u64(slices),
        answer: answer.expect("at least one run"),
    }
}

/// Runs `export(arg)` `RUNS` times on one instance; medians of wall time, fuel and slices.
fn run_guest(guest: &str, export: &str, arg: i32, fuel_per_slice: u64) -> GuestRun {
    let sandbox = Sandbox::new(limits(fuel_per_slice)).expect("benchmark limits are valid");
    let mut instance = instantiate(&sandbox, guest);
    medians(
        (0..RUNS)
            .map(|_| call_once(&mut instance, export, arg))
            .collect(),
    )
}

fn run_native(native: fn(i32) -> Answer, arg: i32) -> (Duration, Answer) {
    let mut walls = Vec::new();
    let mut answer = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let a = black_box(native(black_box(arg)));
        walls.push(started.elapsed());
        answer = Some(a);
    }
    (median(walls), answer.expect("at least one run"))
}

// ---- the native twins: same algorithms, same inputs, same answers ----

fn fib(n: i32) -> i64 {
    if n < 2 {
        i64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn native_fib(n: i32) -> Answer {
    Answer::Value(Value::I64(fib(n)))
}

fn native_lcg(n: i32) -> Answer {
    // Opaque constants: with literal ones LLVM unrolls the loop and folds the constants
    // (x*a*a + c*a + c, ...), finishing 50M steps in under 1 ms, which is not the guest's work.
    let (a, c) = (black_box(1_103_515_245u32), black_box(12_345u32));
    let mut x: u32 = 1;
    for _ in 0..n {
        x = x.wrapping_mul(a).wrapping_add(c);
    }
    Answer::Value(Value::I32(x as i32))
}

fn sha256_input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) + 7) as u8).collect()
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Plain scalar SHA-256, the algorithm the guest runs. (The `sha2` crate uses the CPU's SHA
/// instructions where it has them, which is not the same computation.)
fn scalar_sha256(message: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
    let mut w = [0u32; 64];
    for block in padded.chunks_exact(64) {
        for (t, word) in block.chunks_exact(4).enumerate() {
            w[t] = u32::from_be_bytes(word.try_into().expect("4 bytes"));
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for t in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = g ^ (e & (f ^ g));
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[t])
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) | (c & (a | b));
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn native_sha256(len: i32) -> Answer {
    Answer::Digest(scalar_sha256(&sha256_input(len as usize)))
}

fn native_sha256_sha2(len: i32) -> Answer {
    Answer::Digest(Sha256::digest(sha256_input(len as usize)).into())
}

fn native_matmul(n: i32) -> Answer {
    let n = n as usize;
    let mut a = vec![0.0f64; n * n];
    let mut b = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = ((i + j) % 7) as f64 * 0.5;
            b[i * n + j] = ((i * j) % 5) as f64 + 1.0;
        }
    }
    let mut c = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut acc = 0.0;
            for k in 0..n {
                acc += a[i * n + k] * b[k * n + j];
            }
            c[i * n + j] = acc;
        }
    }
    Answer::Value(Value::F64(c.iter().sum()))
}

fn compute_table() {
    let cases = [
        Case {
            label: "fib(30)",
            guest: "fib",
            export: "fib",
            arg: 30,
            native: native_fib,
        },
        Case {
            label: "lcg 50M",
            guest: "loop",
            export: "lcg",
            arg: 50_000_000,
            native: native_lcg,
        },
        Case {
            label: "sha256 4 MiB",
            guest: "sha256",
            export: "sha256",
            arg: 4 << 20,
            native: native_sha256,
        },
        Case {
            label: "matmul 200",
            guest: "matmul",
            export: "matmul",
            arg: 200,
            native: native_matmul,
        },
    ];
    let fuel_per_slice = Limits::default().fuel_per_slice;
    println!("compute guests (wasmi, fuel_per_slice {fuel_per_slice}; median of {RUNS} runs)");
    println!(
        "{:<14} {:>10} {:>14} {:>9} {:>8} {:>11} {:>8}",
        "guest", "wall ms", "fuel", "Mfuel/s", "slices", "native ms", "ratio"
    );
    for case in &cases {
        let guest = run_guest(case.guest, case.export, case.arg, fuel_per_slice);
        let (native_wall, native_answer) = run_native(case.native, case.arg);
        assert_eq!(
            guest.answer, native_answer,
            "{}: guest and native disagree",
            case.label
        );
        let mfuel_per_s = guest.fuel as f64 / guest.wall.as_secs_f64() / 1e6;
        println!(
            "{:<14} {:>10.1} {:>14} {:>9.0} {:>8} {:>11.2} {:>7.1}x",
            case.label,
            ms(guest.wall),
            guest.fuel,
            mfuel_per_s,
            guest.slices,
            ms(native_wall),
            guest.wall.as_secs_f64() / native_wall.as_secs_f64(),
        );
    }
    let (sha2_wall, sha2_answer) = run_native(native_sha256_sha2, 4 << 20);
    assert_eq!(
        sha2_answer,
        native_sha256(4 << 20),
        "scalar SHA-256 and sha2 disagree"
    );
    println!(
        "native = the same algorithm in plain Rust; for reference the sha2 crate (SHA \
         instructions if the CPU has them) does sha256 4 MiB in {:.2} ms",
        ms(sha2_wall)
    );
}

fn slicing_table() {
    println!();
    println!("fuel slicing overhead: fib(27), median of {RUNS} runs");
    println!(
        "{:>14} {:>10} {:>8} {:>12} {:>10}",
        "fuel/slice", "wall ms", "slices", "fuel", "vs 1e8"
    );
    // One sandbox per slice size; the runs are interleaved so that drift in the machine's
    // load hits every size alike.
    let sizes = [10_000u64, 1_000_000, 100_000_000];
    let sandboxes: Vec<Sandbox> = sizes
        .iter()
        .map(|&size| Sandbox::new(limits(size)).expect("benchmark limits are valid"))
        .collect();
    let mut instances: Vec<Instance> = sandboxes
        .iter()
        .map(|sandbox| instantiate(sandbox, "fib"))
        .collect();
    let mut samples: Vec<Vec<_>> = sizes.iter().map(|_| Vec::new()).collect();
    for _ in 0..RUNS {
        for (instance, samples) in instances.iter_mut().zip(&mut samples) {
            samples.push(call_once(instance, "fib", 27));
        }
    }
    let runs: Vec<(u64, GuestRun)> = sizes
        .into_iter()
        .zip(samples.into_iter().map(medians))
        .collect();
    let baseline = runs
        .last()
        .map(|(_, r)| r.wall.as_secs_f64())
        .expect("three sizes");
    for (size, run) in &runs {
        assert_eq!(
            run.answer,
            native_fib(27),
            "fib(27) with {size} fuel per slice"
        );
        println!(
            "{:>14} {:>10.1} {:>8} {:>12} {:>9.2}x",
            size,
            ms(run.wall),
            run.slices,
            run.fuel,
            run.wall.as_secs_f64() / baseline,
        );
    }
}

/// A guest that makes `n` host calls in one call (env.tick(i)).
const HOST_LOOP: &str = r#"(module
  (import "env" "tick" (func $tick (param i32)))
  (func (export "run") (param $n i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (call $tick (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))))"#;

/// What tracing costs: a call making 10,000 host calls, untraced (the default: one check per
/// host call), traced with every span kept, and traced with 100 kept (the rest counted).
fn tracing_table() {
    const CALLS: i32 = 10_000;
    println!();
    println!("tracing: one call making {CALLS} host calls, median of {RUNS} runs");
    println!(
        "{:<34} {:>10} {:>14} {:>8}",
        "", "wall ms", "ns/host call", "spans"
    );
    let sandbox = Sandbox::new(Limits::default()).expect("limits");
    let bytes = wat::parse_str(HOST_LOOP).expect("wat");
    let module = sandbox.load(&bytes, &Digest::of(&bytes)).expect("loads");
    let grants = Grants::new()
        .grant(
            "env",
            "tick",
            CapabilityId(1),
            Signature::new([ValueType::I32], []),
        )
        .expect("grant");
    let mut instance = sandbox.instantiate(&module, &grants).expect("instantiates");
    let mut hooks = HostFn(|_: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| Ok(vec![]));
    let mut baseline = None;
    for (label, trace) in [
        ("off (default)", None),
        ("on, every span kept", Some(100_000)),
        ("on, 100 spans kept", Some(100)),
    ] {
        let options = CallOptions {
            trace,
            ..CallOptions::default()
        };
        let mut spans = 0;
        let samples = (0..RUNS)
            .map(|_| {
                let t0 = Instant::now();
                nestbox::drive(
                    &mut instance,
                    "run",
                    &[Value::I32(CALLS)],
                    &options,
                    &mut hooks,
                )
                .expect("runs");
                let trace = instance.take_trace();
                let wall = t0.elapsed();
                spans = trace.map_or(0, |t| t.spans.len());
                wall
            })
            .collect();
        let wall = median(samples);
        let per_call = wall.as_nanos() as f64 / f64::from(CALLS);
        let ratio = baseline.map_or(String::new(), |b: f64| {
            format!("  ({:.2}x off)", per_call / b)
        });
        baseline.get_or_insert(per_call);
        println!(
            "{label:<34} {:>10.2} {per_call:>14.0} {spans:>8}{ratio}",
            ms(wall)
        );
    }
}

fn release_size() {
    println!();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkg/nestbox_bg.wasm");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut gz = GzEncoder::new(Vec::new(), Compression::best());
            gz.write_all(&bytes).expect("gzip into memory");
            let gzipped = gz.finish().expect("gzip into memory");
            println!(
                "release wasm pkg/nestbox_bg.wasm: {} bytes raw ({:.0} KiB), {} bytes gzip -9 ({:.0} KiB)",
                bytes.len(),
                bytes.len() as f64 / 1024.0,
                gzipped.len(),
                gzipped.len() as f64 / 1024.0,
            );
        }
        Err(_) => println!(
            "release wasm pkg/nestbox_bg.wasm was not built (run `make build` first): size not measured"
        ),
    }
}

fn main() {
    let started = Instant::now();
    compute_table();
    slicing_table();
    tracing_table();
    release_size();
    println!("\n(bench took {:.1} s)", started.elapsed().as_secs_f64());
}
