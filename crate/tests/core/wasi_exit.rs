//! proc_exit ends the run with an exit code as a result, not an error — also through a tail
//! call — and leaves the instance usable; returning from _start is exit code 0.

use nestbox::{InstanceState, Limits, Step, WasiConfig};

use crate::common::{fixture, load, sandbox};
use crate::wasi_util::*;

#[test]
fn proc_exit_is_a_result() {
    let outcome = run_fixture("wasi_exit", WasiConfig::default()).expect("an exit is not an error");
    assert_eq!(outcome.exit_code, 3);
    assert!(outcome.stdout.is_empty());

    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_exit"));
    let mut inst = sb
        .instantiate_wasi(&module, &WasiConfig::default())
        .expect("instantiates");
    let Step::Finished(outcome) = inst.start("_start", &[]).expect("runs") else {
        panic!("finishes")
    };
    assert_eq!(outcome.exit_code, Some(3));
    assert!(outcome.results.is_empty());
    assert_eq!(inst.state(), InstanceState::Idle, "not poisoned");
    // Through `return_call`, which wasmi cannot resume: still an exit.
    let Step::Finished(outcome) = inst.start("_start_tail", &[]).expect("runs") else {
        panic!("finishes")
    };
    assert_eq!(outcome.exit_code, Some(4));
}

#[test]
fn returning_from_start_is_exit_code_zero() {
    let outcome = run_fixture("wasi_hello", WasiConfig::default()).expect("runs");
    assert_eq!(outcome.exit_code, 0);
    let mut sys = Sys::new(WasiConfig::default());
    let outcome = sys
        .instance
        .call(
            "proc_exit",
            &[nestbox::Value::I32(-1)],
            |_, _| unreachable!(),
        )
        .expect("exits");
    assert_eq!(
        outcome.exit_code,
        Some(-1),
        "the status as the guest gave it"
    );
}
