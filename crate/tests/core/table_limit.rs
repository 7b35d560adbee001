//! Table caps hold at instantiation and at table.grow.

use nestbox::{ErrorCode, Grants, Limits, Value};

use crate::common::*;

#[test]
fn grow_past_the_limit_returns_minus_one_by_default() {
    let sb = sandbox(Limits {
        max_table_elements: 5_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_table_loop");
    assert_eq!(
        call(&mut inst, "grow_until_refused", &[]).expect("returns"),
        vec![Value::I32(5_000)]
    );
}

#[test]
fn grow_past_the_limit_traps_with_table_limit_when_configured() {
    let sb = sandbox(Limits {
        max_table_elements: 5_000,
        trap_on_grow_failure: true,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "grow_table_loop");
    let err = call(&mut inst, "grow_until_refused", &[]).expect_err("traps");
    assert_eq!(err.code(), ErrorCode::TableLimit, "{err}");
    assert_eq!(err.details().limit, Some(5_000));
    assert_sandbox_still_works(&sb);
}

#[test]
fn huge_declared_table_is_refused_at_instantiation() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("huge_table"));
    let err = sb
        .instantiate(&m, &Grants::new())
        .expect_err("10M elements");
    assert_eq!(err.code(), ErrorCode::TableLimit, "{err}");
    assert_eq!(err.details().limit, Some(100_000));
    assert_sandbox_still_works(&sb);
}
