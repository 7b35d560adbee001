//! Recursion deeper than the limit is STACK_OVERFLOW; the host never crashes.

use nestbox::{ErrorCode, InstanceState, Limits, TrapCode, Value};

use crate::common::*;

#[test]
fn unbounded_recursion_is_stack_overflow() {
    let sb = sandbox(Limits::default());
    let mut inst = instance(&sb, "deep_recursion");
    let err = call(&mut inst, "down", &[Value::I32(0)]).expect_err("recurses forever");
    assert_eq!(err.code(), ErrorCode::StackOverflow, "{err}");
    assert_eq!(err.details().trap_code, Some(TrapCode::StackOverflow));
    assert_eq!(
        inst.state(),
        InstanceState::Poisoned(ErrorCode::StackOverflow)
    );
    assert_sandbox_still_works(&sb);
}

#[test]
fn the_recursion_limit_is_configurable() {
    let sb = sandbox(Limits {
        max_recursion_depth: 100,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "recurse_n");
    assert_eq!(
        call(&mut inst, "depth", &[Value::I32(90)]).expect("under the limit"),
        vec![Value::I32(90)]
    );
    let err = call(&mut inst, "depth", &[Value::I32(150)]).expect_err("over");
    assert_eq!(err.code(), ErrorCode::StackOverflow);

    let roomy = sandbox(Limits::default());
    let mut inst = instance(&roomy, "recurse_n");
    assert_eq!(
        call(&mut inst, "depth", &[Value::I32(5_000)]).expect("default allows 10,000"),
        vec![Value::I32(5_000)]
    );
}
