//! Fuel: calls run in slices, the budget ends runaway guests, host calls are charged.

use nestbox::{
    CallOptions, CapabilityId, ErrorCode, Grants, InstanceState, Limits, Signature, Step, Value,
};

use crate::common::*;

#[test]
fn infinite_loop_ends_with_fuel_exhausted_and_metrics() {
    let sb = sandbox(Limits {
        fuel: 5_000_000,
        fuel_per_slice: 100_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "infinite_loop");
    let err = call(&mut inst, "spin", &[]).expect_err("never returns");
    assert_eq!(err.code(), ErrorCode::FuelExhausted);
    assert_eq!(err.details().limit, Some(5_000_000));
    let m = err.metrics().expect("metrics");
    assert!(m.fuel_consumed <= 5_000_000, "{m:?}");
    assert!(m.fuel_consumed > 4_900_000, "{m:?}");
    assert_eq!(m.slices, 50, "{m:?}");
    assert_eq!(
        inst.state(),
        InstanceState::Poisoned(ErrorCode::FuelExhausted)
    );
    assert_sandbox_still_works(&sb);
}

#[test]
fn long_computations_yield_between_slices_and_finish() {
    let sb = sandbox(Limits {
        fuel_per_slice: 10_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "count_loop");
    let mut step = inst.start("count", &[Value::I32(100_000)]).expect("starts");
    let mut yields = 0;
    let outcome = loop {
        step = match step {
            Step::Yield => {
                yields += 1;
                inst.resume().expect("resumes")
            }
            Step::Finished(outcome) => break outcome,
            Step::HostCall(c) => panic!("unexpected host call {c:?}"),
        };
    };
    assert_eq!(outcome.results, vec![Value::I32(100_000)]);
    assert!(yields > 10, "only {yields} yields");
    assert_eq!(outcome.metrics.slices, yields + 1);
}

#[test]
fn fuel_is_deterministic() {
    let sb = sandbox(Limits {
        fuel_per_slice: 7_777,
        ..Limits::default()
    });
    let run = || {
        let mut inst = instance(&sb, "count_loop");
        inst.call("count", &[Value::I32(50_000)], |_, _| unreachable!())
            .expect("runs")
            .metrics
            .fuel_consumed
    };
    let first = run();
    assert_eq!(first, run());
    // Slicing does not change what the guest consumes.
    let unsliced = sandbox(Limits::default());
    let mut inst = instance(&unsliced, "count_loop");
    let once = inst
        .call("count", &[Value::I32(50_000)], |_, _| unreachable!())
        .expect("runs");
    assert_eq!(once.metrics.fuel_consumed, first);
}

#[test]
fn per_call_fuel_can_only_tighten_the_limit() {
    let sb = sandbox(Limits {
        fuel: 1_000_000,
        fuel_per_slice: 50_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "infinite_loop");
    let err = inst
        .call_with(
            "spin",
            &[],
            &CallOptions {
                fuel: Some(200_000),
                timeout_ms: None,
                max_memory_bytes: None,
                trace: None,
            },
            |_, _| unreachable!(),
        )
        .expect_err("exhausts");
    assert_eq!(err.details().limit, Some(200_000));
    let mut inst = instance(&sb, "infinite_loop");
    let err = inst
        .call_with(
            "spin",
            &[],
            &CallOptions {
                fuel: Some(u64::MAX),
                timeout_ms: None,
                max_memory_bytes: None,
                trace: None,
            },
            |_, _| unreachable!(),
        )
        .expect_err("exhausts");
    assert_eq!(
        err.details().limit,
        Some(1_000_000),
        "capped by the sandbox"
    );
}

#[test]
fn host_calls_cost_fuel() {
    let limits = Limits {
        fuel: 1_000_000,
        host_call_fuel: 10_000,
        ..Limits::default()
    };
    let sb = sandbox(limits);
    let m = load(&sb, &fixture("host_loop"));
    let grants = Grants::new()
        .grant("env", "tick", CapabilityId(1), Signature::new([], []))
        .expect("grant");
    // 1,000 free-looking host calls need 10,000,000 fuel: over the budget.
    let mut inst = sb.instantiate(&m, &grants).expect("instantiates");
    let mut answered = 0u64;
    let err = inst
        .call("ticks", &[Value::I32(1_000)], |_, _| {
            answered += 1;
            Ok(vec![])
        })
        .expect_err("host calls exhaust the budget");
    assert_eq!(err.code(), ErrorCode::FuelExhausted);
    assert!(answered < 100, "{answered} host calls answered");
    assert_eq!(err.metrics().map(|m| m.host_calls), Some(answered + 1));

    // 10 calls fit, and are charged.
    let mut inst = sb.instantiate(&m, &grants).expect("instantiates");
    let outcome = inst
        .call("ticks", &[Value::I32(10)], |_, _| Ok(vec![]))
        .expect("fits");
    assert_eq!(outcome.metrics.host_calls, 10);
    assert!(
        outcome.metrics.fuel_consumed >= 100_000,
        "{:?}",
        outcome.metrics
    );
}

#[test]
fn zero_limits_are_refused() {
    for limits in [
        Limits {
            fuel: 0,
            ..Limits::default()
        },
        Limits {
            fuel_per_slice: 0,
            ..Limits::default()
        },
        Limits {
            timeout_ms: 0,
            ..Limits::default()
        },
    ] {
        let err = nestbox::Sandbox::new(limits).expect_err("unusable limits");
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }
}

#[test]
fn large_callee_compiled_lazily_under_a_tiny_slice_still_resumes() {
    // wasmi 2.0 cannot resume when fuel runs out while lazily translating a callee (PR #2032);
    // translation is charged no fuel, so a ~8 KB function reached with 500-fuel slices works.
    let body = "(local.set $x (i32.add (local.get $x) (i32.const 1)))".repeat(1_000);
    let bytes = wat(&format!(
        r#"(module
            (func $big (param $x i32) (result i32) {body} (local.get $x))
            (func (export "run") (result i32) (call $big (i32.const 0))))"#
    ));
    assert!(bytes.len() > 6_000, "{} bytes", bytes.len());
    let sb = sandbox(Limits {
        fuel_per_slice: 500,
        ..Limits::default()
    });
    let m = load(&sb, &bytes);
    let mut inst = sb
        .instantiate(&m, &nestbox::Grants::new())
        .expect("instantiates");
    let outcome = inst
        .call("run", &[], |_, _| unreachable!())
        .expect("resumes across slices");
    assert_eq!(outcome.results, vec![Value::I32(1_000)]);
    assert!(outcome.metrics.slices > 1, "{:?}", outcome.metrics);
}
