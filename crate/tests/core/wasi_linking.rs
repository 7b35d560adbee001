//! Every preview1 import links with its exact type when WASI is on; anything else under
//! `wasi_snapshot_preview1` fails like an ungranted or mistyped capability. WASI and granted
//! capabilities coexist. Unsupported functions answer an errno, never a trap.

use nestbox::{
    CapabilityId, ErrorCode, Grants, Limits, Signature, Step, Value,
    ValueType::*,
    WasiConfig,
    wasi::{FUNCTION_NAMES, WASI_MODULE},
};
use wasip1::{ERRNO_BADF, ERRNO_NOSYS, ERRNO_NOTSOCK};

use crate::common::{fixture, load, sandbox, wat};
use crate::wasi_util::*;

#[test]
fn every_preview1_function_links() {
    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_syscalls"));
    let mut imported: Vec<_> = module
        .imports()
        .iter()
        .filter(|i| i.module == WASI_MODULE)
        .map(|i| i.name.as_str())
        .collect();
    imported.sort_unstable();
    let mut all = FUNCTION_NAMES.to_vec();
    all.sort_unstable();
    assert_eq!(imported, all, "the fixture imports all 46");
    assert!(sb.instantiate_wasi(&module, &WasiConfig::default()).is_ok());
    // Without WASI the same imports are simply not granted.
    let error = sb
        .instantiate(&module, &Grants::new())
        .expect_err("not granted");
    assert_eq!(error.code(), ErrorCode::ImportNotGranted);
    assert_eq!(error.details().imports.len(), 46);
}

#[test]
fn unknown_or_mistyped_wasi_imports_fail_like_capabilities() {
    let sb = sandbox(Limits::default());
    let unknown = load(
        &sb,
        &wat(r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "fd_nonsense" (func (param i32) (result i32)))
            (import "wasi_snapshot_preview1" "memory" (memory 1)))"#),
    );
    let error = sb
        .instantiate_wasi(&unknown, &WasiConfig::default())
        .expect_err("unknown");
    assert_eq!(error.code(), ErrorCode::ImportNotGranted);
    assert_eq!(
        error.details().imports,
        [
            "wasi_snapshot_preview1.fd_nonsense",
            "wasi_snapshot_preview1.memory"
        ]
    );
    let mistyped = load(
        &sb,
        &wat(r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func (param i64))))"#),
    );
    let error = sb
        .instantiate_wasi(&mistyped, &WasiConfig::default())
        .expect_err("mistyped");
    assert_eq!(error.code(), ErrorCode::SignatureMismatch);
    assert_eq!(
        error.details().imports,
        [
            "wasi_snapshot_preview1.fd_write",
            "wasi_snapshot_preview1.proc_exit"
        ]
    );
    assert!(
        error.message().contains("(i32, i32, i32, i32) -> (i32)"),
        "{error}"
    );
    assert_eq!(sb.live_instances(), 0);
}

#[test]
fn wasi_and_capabilities_coexist() {
    let sb = sandbox(Limits::default());
    let module = load(
        &sb,
        &wat(r#"(module
            (import "env" "answer" (func $answer (result i32)))
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 100) "?")
            (func (export "_start")
              (i32.store8 (i32.const 100) (call $answer))
              (i32.store (i32.const 0) (i32.const 100))
              (i32.store (i32.const 4) (i32.const 1))
              (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#),
    );
    let config = WasiConfig {
        grants: Grants::new()
            .grant("env", "answer", CapabilityId(9), Signature::new([], [I32]))
            .expect("grant"),
        ..WasiConfig::default()
    };
    let mut inst = sb.instantiate_wasi(&module, &config).expect("links both");
    let Step::HostCall(call) = inst.start("_start", &[]).expect("starts") else {
        panic!("the capability is called first")
    };
    assert_eq!(call.capability, CapabilityId(9));
    let Step::Finished(outcome) = inst
        .resume_host(&[Value::I32(i32::from(b'!'))])
        .expect("resumes")
    else {
        panic!("finishes")
    };
    assert_eq!(outcome.metrics.host_calls, 1);
    assert_eq!(inst.take_output().0, b"!");

    // run_wasi_with answers the capability too; plain run_wasi cannot.
    let outcome = nestbox::run_wasi_with(&sb, &module, config.clone(), |_, _| {
        Ok(vec![Value::I32(42)])
    })
    .expect("runs");
    assert_eq!(outcome.stdout, b"*");
    let error = nestbox::run_wasi(&sb, &module, config).expect_err("no host function");
    assert_eq!(error.code(), ErrorCode::HostError);
}

#[test]
fn capabilities_cannot_be_granted_in_the_wasi_namespace() {
    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_hello"));
    let config = WasiConfig {
        grants: Grants::new()
            .grant(
                WASI_MODULE,
                "fd_write",
                CapabilityId(1),
                Signature::new([I32; 4], [I32]),
            )
            .expect("grant"),
        ..WasiConfig::default()
    };
    let error = sb
        .instantiate_wasi(&module, &config)
        .expect_err("ambiguous");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
}

#[test]
fn unsupported_functions_answer_an_errno() {
    let mut sys = Sys::new(WasiConfig::default());
    assert_eq!(sys.call("proc_raise", &[9]), e(ERRNO_NOSYS));
    assert_eq!(sys.call("sched_yield", &[]), 0);
    assert_eq!(
        sys.call("sock_accept", &[0, 0, u64::from(OUT)]),
        e(ERRNO_NOTSOCK)
    );
    assert_eq!(sys.call("sock_recv", &[1, 0, 0, 0, 0, 0]), e(ERRNO_NOTSOCK));
    assert_eq!(sys.call("sock_send", &[2, 0, 0, 0, 0]), e(ERRNO_NOTSOCK));
    assert_eq!(sys.call("sock_shutdown", &[77, 0]), e(ERRNO_BADF));
}
