//! Every other wasm trap is TRAP with its trapCode.

use nestbox::{ErrorCode, Limits, TrapCode};

use crate::common::*;

#[test]
fn each_trap_has_its_code() {
    let sb = sandbox(Limits::default());
    for (export, code) in [
        ("unreachable", TrapCode::Unreachable),
        ("div_by_zero", TrapCode::IntegerDivisionByZero),
        ("overflow", TrapCode::IntegerOverflow),
        ("oob_load", TrapCode::MemoryOutOfBounds),
        ("null_indirect", TrapCode::IndirectCallToNull),
        ("oob_indirect", TrapCode::TableOutOfBounds),
        ("bad_conversion", TrapCode::BadConversionToInteger),
    ] {
        let mut inst = instance(&sb, "traps");
        let err = call(&mut inst, export, &[]).expect_err(export);
        assert_eq!(err.code(), ErrorCode::Trap, "{export}: {err}");
        assert_eq!(err.details().trap_code, Some(code), "{export}");
        assert!(err.message().contains(code.as_str()), "{err}");
        assert!(err.metrics().is_some());
    }
    assert_sandbox_still_works(&sb);
}
