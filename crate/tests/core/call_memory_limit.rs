//! A call's own memory limit (`CallOptions::max_memory_bytes`) only tightens the sandbox's,
//! holds like it during the call, and ends with the call.

use nestbox::{CallOptions, Error, ErrorCode, Instance, InstanceState, Limits, Value};

use crate::common::*;

const PAGE: u64 = 65_536;

fn capped(max_memory_bytes: u64) -> CallOptions {
    CallOptions {
        max_memory_bytes: Some(max_memory_bytes),
        ..CallOptions::default()
    }
}

fn grow(inst: &mut Instance, options: &CallOptions) -> Result<Vec<Value>, Error> {
    inst.call_with("grow_until_refused", &[], options, |_, _| unreachable!())
        .map(|o| o.results)
}

#[test]
fn a_call_cap_stops_growth_below_the_sandbox_limit() {
    let sb = sandbox(Limits {
        max_memory_bytes: 16 * PAGE,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_memory_loop");
    assert_eq!(grow(&mut inst, &capped(4 * PAGE)), Ok(vec![Value::I32(4)]));
    assert_eq!(inst.state(), InstanceState::Idle);
    // The next call without the option has the sandbox's limit again.
    assert_eq!(
        grow(&mut inst, &CallOptions::default()),
        Ok(vec![Value::I32(16)])
    );
}

#[test]
fn a_call_cap_traps_with_memory_limit_and_the_calls_limit() {
    let sb = sandbox(Limits {
        max_memory_bytes: 16 * PAGE,
        trap_on_grow_failure: true,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_memory_loop");
    let err = grow(&mut inst, &capped(3 * PAGE)).expect_err("traps");
    assert_eq!(err.code(), ErrorCode::MemoryLimit, "{err}");
    assert_eq!(err.details().limit, Some(3 * PAGE));
    assert_eq!(err.metrics().map(|m| m.peak_memory_bytes), Some(3 * PAGE));
    assert_eq!(
        inst.state(),
        InstanceState::Poisoned(ErrorCode::MemoryLimit)
    );
    assert_sandbox_still_works(&sb);
}

#[test]
fn a_cap_above_the_sandbox_limit_changes_nothing() {
    let sb = sandbox(Limits {
        max_memory_bytes: 8 * PAGE,
        trap_on_grow_failure: true,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_memory_loop");
    let err = grow(&mut inst, &capped(u64::MAX)).expect_err("traps");
    assert_eq!(err.code(), ErrorCode::MemoryLimit, "{err}");
    assert_eq!(err.details().limit, Some(8 * PAGE), "the sandbox's limit");
}

#[test]
fn a_cap_below_the_current_memory_refuses_the_call_without_poisoning() {
    let sb = sandbox(Limits {
        max_memory_bytes: 8 * PAGE,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_memory_loop");
    assert_eq!(
        grow(&mut inst, &CallOptions::default()),
        Ok(vec![Value::I32(8)])
    );
    let err = grow(&mut inst, &capped(4 * PAGE)).expect_err("refused");
    assert_eq!(err.code(), ErrorCode::MemoryLimit, "{err}");
    assert_eq!(err.details().limit, Some(4 * PAGE));
    assert_eq!(inst.state(), InstanceState::Idle, "not poisoned");
    // Exactly at the cap is fine: the call runs and cannot grow further.
    assert_eq!(grow(&mut inst, &capped(8 * PAGE)), Ok(vec![Value::I32(8)]));
    assert_eq!(
        grow(&mut inst, &CallOptions::default()),
        Ok(vec![Value::I32(8)])
    );
}
