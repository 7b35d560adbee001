//! Linking fails closed: every import must be granted, with the declared type.

use nestbox::{CapabilityId, ErrorCode, Grants, Limits, Signature, ValueType::*};

use crate::common::*;

#[test]
fn ungranted_imports_are_all_named() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("many_imports"));
    let grants = Grants::new()
        .grant("env", "a", CapabilityId(1), Signature::new([I32], []))
        .expect("grant");
    let err = sb.instantiate(&m, &grants).expect_err("not all granted");
    assert_eq!(err.code(), ErrorCode::ImportNotGranted);
    assert_eq!(
        err.details().imports,
        vec!["env.b", "wasi_snapshot_preview1.fd_write", "env.memory"]
    );
    assert!(err.message().contains("env.b"), "{err}");
    assert_eq!(
        sb.live_instances(),
        0,
        "a failed link holds no instance slot"
    );
    assert_sandbox_still_works(&sb);
}

#[test]
fn granting_nothing_names_every_import() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("host_log"));
    let err = sb
        .instantiate(&m, &Grants::new())
        .expect_err("nothing granted");
    assert_eq!(err.code(), ErrorCode::ImportNotGranted);
    assert_eq!(err.details().imports, vec!["env.log", "env.double"]);
}

#[test]
fn mismatched_signature_is_signature_mismatch() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("host_log"));
    let grants = Grants::new()
        .grant(
            "env",
            "log",
            CapabilityId(1),
            Signature::new([I32, I32], []),
        )
        .expect("grant")
        // The guest imports (i64) -> (i64).
        .grant(
            "env",
            "double",
            CapabilityId(2),
            Signature::new([I32], [I32]),
        )
        .expect("grant");
    let err = sb.instantiate(&m, &grants).expect_err("wrong type");
    assert_eq!(err.code(), ErrorCode::SignatureMismatch);
    assert_eq!(err.details().imports, vec!["env.double"]);
    assert!(err.message().contains("(i64) -> (i64)"), "{err}");
    assert!(err.message().contains("(i32) -> (i32)"), "{err}");
    assert_sandbox_still_works(&sb);
}

#[test]
fn missing_imports_are_reported_before_mismatches() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("host_log"));
    let grants = Grants::new()
        .grant("env", "double", CapabilityId(2), Signature::new([F64], []))
        .expect("grant");
    let err = sb.instantiate(&m, &grants).expect_err("missing and wrong");
    assert_eq!(err.code(), ErrorCode::ImportNotGranted);
    assert_eq!(err.details().imports, vec!["env.log"]);
}

#[test]
fn extra_grants_are_harmless() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("add"));
    let grants = Grants::new()
        .grant("env", "unused", CapabilityId(9), Signature::new([], []))
        .expect("grant");
    let mut inst = sb
        .instantiate(&m, &grants)
        .expect("extra grants are ignored");
    assert_eq!(
        call(
            &mut inst,
            "add",
            &[nestbox::Value::I32(1), nestbox::Value::I32(2)]
        )
        .expect("runs"),
        vec![nestbox::Value::I32(3)]
    );
}

#[test]
fn granting_the_same_import_twice_is_refused() {
    let err = Grants::new()
        .grant("env", "f", CapabilityId(1), Signature::new([], []))
        .expect("first")
        .grant("env", "f", CapabilityId(2), Signature::new([], []))
        .expect_err("second");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn a_module_of_another_sandbox_is_refused() {
    let a = sandbox(Limits::default());
    let b = sandbox(Limits::default());
    let m = load(&a, &fixture("add"));
    let err = b
        .instantiate(&m, &Grants::new())
        .expect_err("foreign module");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_sandbox_still_works(&b);
}
