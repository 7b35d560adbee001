//! The demo: load a guest pinned by its digest, grant it one capability, run it in fuel
//! slices, and show the structured error of a limit and of a tampered module.

use std::process::ExitCode;

use nestbox::{CapabilityId, Digest, Error, Grants, Limits, Sandbox, Signature, Value, ValueType};

const DEMO_WAT: &str = include_str!("../../www/guests/demo.wat");
const LOG: CapabilityId = CapabilityId(1);

pub fn run() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nestbox demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("<unserialisable: {e}>"))
}

fn demo() -> Result<(), Error> {
    let bytes = wat::parse_str(DEMO_WAT)
        .map_err(|e| Error::invalid_argument(format!("demo guest: {e}")))?;
    let digest = Digest::of(&bytes);
    let limits = Limits {
        fuel: 2_000_000_000,
        fuel_per_slice: 1_000_000,
        timeout_ms: 10_000,
        max_memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let sandbox = Sandbox::new(limits)?;
    println!("guest     demo.wat, {} bytes, {}", bytes.len(), digest);

    let module = sandbox.load(&bytes, &digest)?;
    let imports: Vec<String> = module
        .imports()
        .iter()
        .map(|i| i.qualified_name())
        .collect();
    println!("imports   {}", imports.join(", "));
    let grants = Grants::new().grant(
        "env",
        "log",
        LOG,
        Signature::new([ValueType::I32, ValueType::I32], []),
    )?;
    let mut instance = sandbox.instantiate(&module, &grants)?;

    let n = 200_000;
    let outcome = instance.call("count_primes", &[Value::I32(n)], |call, memory| {
        match (call.capability, call.args.as_slice()) {
            (LOG, [Value::I32(ptr), Value::I32(len)]) => {
                // Guest pointers are checked: a bad (ptr, len) is an error, never a clamp.
                let text = memory.read_str(*ptr as u32, *len as u32)?;
                println!("guest log {text}");
                Ok(vec![])
            }
            _ => Err(Error::host_failed(format!(
                "unexpected call {}",
                call.import
            ))),
        }
    })?;
    println!(
        "result    count_primes({n}) = {}",
        outcome
            .results
            .first()
            .map_or("-".into(), |v| v.to_string())
    );
    println!("metrics   {}", json(&outcome.metrics));
    let m = &outcome.metrics;
    if m.wall_time_us > 0 {
        println!(
            "speed     {:.0} Mfuel/s natively",
            m.fuel_consumed as f64 / m.wall_time_us as f64
        );
    }

    // A runaway guest: the fuel budget ends it with a structured error; nothing else breaks.
    let mut runaway = sandbox.instantiate(&module, &grants)?;
    let err = runaway
        .call_with(
            "spin",
            &[],
            &nestbox::CallOptions {
                fuel: Some(50_000_000),
                timeout_ms: None,
                max_memory_bytes: None,
                trace: None,
            },
            |_, _| Ok(vec![]),
        )
        .err()
        .ok_or_else(|| Error::invalid_argument("spin returned"))?;
    println!("limit     {}", json(&err));

    // Tampered bytes: refused before parsing.
    let mut tampered = bytes.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 0xff;
    }
    let err = sandbox
        .load(&tampered, &digest)
        .err()
        .ok_or_else(|| Error::invalid_argument("tampered module loaded"))?;
    println!("integrity {}", json(&err));

    // The first instance is unaffected by either failure.
    let again = instance.call("count_primes", &[Value::I32(100)], |_, _| Ok(vec![]))?;
    println!(
        "again     count_primes(100) = {}",
        again.results.first().map_or("-".into(), |v| v.to_string())
    );
    Ok(())
}
