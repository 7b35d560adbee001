//! Guest memory caps hold: at instantiation, at memory.grow, and in the metrics.

use nestbox::{ErrorCode, Grants, InstanceState, Limits, TrapCode, Value};

use crate::common::*;

const PAGE: u64 = 65_536;

#[test]
fn grow_past_the_limit_returns_minus_one_by_default() {
    let sb = sandbox(Limits {
        max_memory_bytes: 16 * PAGE,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_memory_loop");
    let outcome = inst
        .call("grow_until_refused", &[], |_, _| unreachable!())
        .expect("the guest sees -1 and returns");
    assert_eq!(outcome.results, vec![Value::I32(16)]);
    assert_eq!(outcome.metrics.peak_memory_bytes, 16 * PAGE);
    assert_eq!(
        inst.memory().expect("memory").size_bytes() as u64,
        16 * PAGE
    );
    assert_eq!(inst.state(), InstanceState::Idle);
}

#[test]
fn grow_past_the_limit_traps_with_memory_limit_when_configured() {
    let sb = sandbox(Limits {
        max_memory_bytes: 8 * PAGE,
        trap_on_grow_failure: true,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_memory_loop");
    let err = call(&mut inst, "grow_until_refused", &[]).expect_err("traps");
    assert_eq!(err.code(), ErrorCode::MemoryLimit, "{err}");
    assert_eq!(err.details().limit, Some(8 * PAGE));
    assert_eq!(err.metrics().map(|m| m.peak_memory_bytes), Some(8 * PAGE));
    assert_eq!(
        inst.state(),
        InstanceState::Poisoned(ErrorCode::MemoryLimit)
    );
    assert_sandbox_still_works(&sb);
}

#[test]
fn huge_declared_memory_is_refused_at_instantiation() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("huge_memory"));
    let err = sb.instantiate(&m, &Grants::new()).expect_err("4 GiB");
    assert_eq!(err.code(), ErrorCode::MemoryLimit, "{err}");
    assert_eq!(err.details().limit, Some(256 << 20));
    assert_eq!(sb.live_instances(), 0);
    assert_sandbox_still_works(&sb);
}

#[test]
fn initial_memory_just_over_the_limit_is_refused() {
    let sb = sandbox(Limits {
        max_memory_bytes: 2 * PAGE,
        ..Limits::default()
    });
    let ok = load(&sb, &wat("(module (memory 2))"));
    sb.instantiate(&ok, &Grants::new())
        .expect("exactly at the limit");
    let over = load(&sb, &wat("(module (memory 3))"));
    let err = sb.instantiate(&over, &Grants::new()).expect_err("over");
    assert_eq!(err.code(), ErrorCode::MemoryLimit);
}

#[test]
fn the_modules_own_maximum_is_not_our_limit() {
    // memory.grow past the module's declared maximum is the spec's -1, never a limit error.
    let sb = sandbox(Limits {
        trap_on_grow_failure: true,
        ..Limits::default()
    });
    let bytes = wat(r#"(module (memory 1 2)
            (func (export "grow") (result i32) (memory.grow (i32.const 5))))"#);
    let m = load(&sb, &bytes);
    let mut inst = sb.instantiate(&m, &Grants::new()).expect("instantiates");
    assert_eq!(
        call(&mut inst, "grow", &[]).expect("no trap"),
        vec![Value::I32(-1)]
    );
}

#[test]
fn out_of_bounds_access_after_refused_growth_is_a_trap() {
    let sb = sandbox(Limits {
        max_memory_bytes: PAGE,
        ..Limits::default()
    });
    let bytes = wat(r#"(module (memory 1)
            (func (export "f") (result i32)
              (drop (memory.grow (i32.const 1)))
              (i32.load (i32.const 65536))))"#);
    let m = load(&sb, &bytes);
    let mut inst = sb.instantiate(&m, &Grants::new()).expect("instantiates");
    let err = call(&mut inst, "f", &[]).expect_err("oob");
    assert_eq!(err.code(), ErrorCode::Trap);
    assert_eq!(err.details().trap_code, Some(TrapCode::MemoryOutOfBounds));
}
