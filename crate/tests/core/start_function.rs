//! Start functions run at instantiation, metered by fuel (they cannot be suspended).

use nestbox::{CapabilityId, ErrorCode, Grants, Limits, Signature, Value};

use crate::common::*;

#[test]
fn start_function_runs() {
    let sb = sandbox(Limits::default());
    let mut inst = instance(&sb, "start_sets_global");
    assert_eq!(
        call(&mut inst, "get", &[]).expect("runs"),
        vec![Value::I32(7)]
    );
    // Its fuel is reported (a few instructions), for embedders keeping fuel books.
    let fuel = inst.start_fuel_consumed();
    assert!(fuel > 0 && fuel < 100, "start fuel {fuel}");
}

#[test]
fn no_start_function_consumes_no_fuel() {
    let sb = sandbox(Limits::default());
    let inst = instance(&sb, "add");
    assert_eq!(inst.start_fuel_consumed(), 0);
}

#[test]
fn endless_start_function_is_fuel_exhausted() {
    let sb = sandbox(Limits {
        fuel: 1_000_000,
        ..Limits::default()
    });
    let m = load(&sb, &fixture("start_loops"));
    let err = sb
        .instantiate(&m, &Grants::new())
        .expect_err("never returns");
    assert_eq!(err.code(), ErrorCode::FuelExhausted, "{err}");
    // The budget went into the start function (but for what is too little for the next
    // instruction), and the error says so.
    let metrics = err.metrics().expect("metrics of the start function");
    assert!(
        (999_000..=1_000_000).contains(&metrics.fuel_consumed),
        "{metrics:?}"
    );
    assert_eq!(sb.live_instances(), 0);
    assert_sandbox_still_works(&sb);
}

#[test]
fn start_function_cannot_call_capabilities() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("start_calls_host"));
    let grants = Grants::new()
        .grant("env", "tick", CapabilityId(1), Signature::new([], []))
        .expect("grant");
    let err = sb.instantiate(&m, &grants).expect_err("host call in start");
    assert_eq!(err.code(), ErrorCode::HostError, "{err}");
    assert!(err.message().contains("env.tick"), "{err}");
    assert_sandbox_still_works(&sb);
}
