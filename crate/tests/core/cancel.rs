//! Cancelling between steps ends the call with CANCELLED and poisons the instance; the
//! sandbox and other instances are unaffected.

use nestbox::{ErrorCode, InstanceState, Limits, Step, Value};

use crate::common::*;

#[test]
fn cancel_at_a_yield() {
    let sb = sandbox(Limits {
        fuel_per_slice: 10_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "infinite_loop");
    let mut other = instance(&sb, "add");
    let mut step = inst.start("spin", &[]).expect("starts");
    for _ in 0..3 {
        assert!(matches!(step, Step::Yield));
        step = inst.resume().expect("resumes");
    }
    let err = inst.cancel().expect("a call was running");
    assert_eq!(err.code(), ErrorCode::Cancelled);
    let m = err.metrics().expect("metrics");
    assert_eq!(m.slices, 4);
    assert!(m.fuel_consumed >= 30_000, "{m:?}");
    assert_eq!(inst.state(), InstanceState::Poisoned(ErrorCode::Cancelled));
    assert!(inst.cancel().is_none(), "nothing left to cancel");

    let err = inst.start("spin", &[]).expect_err("poisoned");
    assert_eq!(err.code(), ErrorCode::Poisoned);
    assert!(err.message().contains("CANCELLED"), "{err}");
    assert_eq!(
        inst.resume().expect_err("no call").code(),
        ErrorCode::InvalidArgument
    );

    // Another instance of the same sandbox is untouched.
    assert_eq!(
        call(&mut other, "add", &[Value::I32(1), Value::I32(1)]).expect("runs"),
        vec![Value::I32(2)]
    );
    assert_sandbox_still_works(&sb);
}

#[test]
fn cancel_when_idle_is_a_no_op() {
    let sb = sandbox(Limits::default());
    let mut inst = instance(&sb, "add");
    assert!(inst.cancel().is_none());
    assert_eq!(inst.state(), InstanceState::Idle);
}
