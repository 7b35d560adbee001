//! The wall-clock limit is checked between fuel slices.

use nestbox::{CallOptions, ErrorCode, InstanceState, Limits};

use crate::common::*;

#[test]
fn infinite_loop_ends_with_timeout() {
    let sb = sandbox(Limits {
        timeout_ms: 50,
        fuel: u64::MAX / 2,
        fuel_per_slice: 100_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "infinite_loop");
    let err = call(&mut inst, "spin", &[]).expect_err("never returns");
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.details().limit, Some(50));
    let m = err.metrics().expect("metrics");
    assert!(m.wall_time_us >= 50_000, "{m:?}");
    assert!(m.slices > 1, "{m:?}");
    assert_eq!(inst.state(), InstanceState::Poisoned(ErrorCode::Timeout));
    assert_sandbox_still_works(&sb);
}

#[test]
fn per_call_timeout() {
    let sb = sandbox(Limits {
        fuel: u64::MAX / 2,
        fuel_per_slice: 100_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "infinite_loop");
    let err = inst
        .call_with(
            "spin",
            &[],
            &CallOptions {
                fuel: None,
                timeout_ms: Some(20),
                max_memory_bytes: None,
                trace: None,
            },
            |_, _| unreachable!(),
        )
        .expect_err("times out");
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.details().limit, Some(20));
}
