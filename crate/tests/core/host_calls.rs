//! Host calls suspend the guest with the capability id and arguments, and resume with the
//! host's answer; host functions reach guest memory only through a checked view.

use nestbox::{
    CapabilityId, ErrorCode, Grants, Instance, InstanceState, Limits, Sandbox, Signature, Step,
    TrapCode, Value, ValueType::*,
};

use crate::common::*;

const LOG: CapabilityId = CapabilityId(7);
const DOUBLE: CapabilityId = CapabilityId(8);

fn host_log_instance(sb: &Sandbox) -> Instance {
    let m = load(sb, &fixture("host_log"));
    let grants = Grants::new()
        .grant("env", "log", LOG, Signature::new([I32, I32], []))
        .expect("grant")
        .grant("env", "double", DOUBLE, Signature::new([I64], [I64]))
        .expect("grant");
    sb.instantiate(&m, &grants).expect("instantiates")
}

#[test]
fn steps_carry_capability_ids_and_arguments() {
    let sb = sandbox(Limits::default());
    let mut inst = host_log_instance(&sb);
    let Step::HostCall(first) = inst.start("greet", &[]).expect("starts") else {
        panic!("expected a host call")
    };
    assert_eq!(first.capability, LOG);
    assert_eq!(first.import, "env.log");
    assert_eq!(first.args, vec![Value::I32(16), Value::I32(20)]);
    assert_eq!(inst.state(), InstanceState::Running);
    let text = inst
        .memory()
        .expect("exports memory")
        .read_str(16, 20)
        .expect("in bounds")
        .to_owned();
    assert_eq!(text, "hello from the guest");
    let Step::HostCall(second) = inst.resume_host(&[]).expect("resumes") else {
        panic!("expected the second host call")
    };
    assert_eq!(second.capability, DOUBLE);
    assert_eq!(second.args, vec![Value::I64(21)]);
    let Step::Finished(outcome) = inst.resume_host(&[Value::I64(42)]).expect("resumes") else {
        panic!("expected the end")
    };
    assert_eq!(outcome.results, vec![Value::I64(42)]);
    assert_eq!(outcome.metrics.host_calls, 2);
    assert_eq!(inst.state(), InstanceState::Idle);
}

#[test]
fn blocking_call_drives_host_functions() {
    let sb = sandbox(Limits::default());
    let mut inst = host_log_instance(&sb);
    let mut logged = Vec::new();
    let outcome = inst
        .call("greet", &[], |call, mem| match call.capability {
            LOG => {
                let [Value::I32(ptr), Value::I32(len)] = call.args[..] else {
                    panic!("typed args")
                };
                logged.push(mem.read_str(ptr as u32, len as u32)?.to_owned());
                Ok(vec![])
            }
            DOUBLE => {
                let [Value::I64(x)] = call.args[..] else {
                    panic!("typed args")
                };
                Ok(vec![Value::I64(x * 2)])
            }
            other => panic!("unknown capability {other}"),
        })
        .expect("runs");
    assert_eq!(logged, vec!["hello from the guest"]);
    assert_eq!(outcome.results, vec![Value::I64(42)]);
    // The same instance can be called again.
    assert!(
        inst.call("greet", &[], |_, _| Ok(vec![])).is_err(),
        "double needs a result"
    );
}

#[test]
fn out_of_bounds_pointer_from_the_guest_is_a_trap_not_a_clamp() {
    let sb = sandbox(Limits::default());
    for (ptr, len) in [(65_530, 10), (-1, 1), (0, -1), (65_537, 0)] {
        let mut inst = host_log_instance(&sb);
        let err = inst
            .call(
                "log_at",
                &[Value::I32(ptr), Value::I32(len)],
                |call, mem| {
                    let [Value::I32(p), Value::I32(l)] = call.args[..] else {
                        panic!("typed args")
                    };
                    mem.read(p as u32, l as u32)?;
                    Ok(vec![])
                },
            )
            .expect_err("out of bounds");
        assert_eq!(err.code(), ErrorCode::Trap, "ptr {ptr} len {len}: {err}");
        assert_eq!(err.details().trap_code, Some(TrapCode::MemoryOutOfBounds));
        assert_eq!(err.details().capability, Some(LOG.0));
        assert!(err.metrics().is_some());
        assert_eq!(inst.state(), InstanceState::Poisoned(ErrorCode::Trap));
    }
    assert_sandbox_still_works(&sb);
}

#[test]
fn host_failure_is_host_error_with_cause() {
    let sb = sandbox(Limits::default());
    let mut inst = host_log_instance(&sb);
    let err = inst
        .call("greet", &[], |_, _| {
            Err(nestbox::Error::host_failed("disk on fire"))
        })
        .expect_err("host failed");
    assert_eq!(err.code(), ErrorCode::HostError);
    assert_eq!(err.details().cause.as_deref(), Some("disk on fire"));
    assert_eq!(err.details().capability, Some(LOG.0));
    assert_eq!(err.metrics().map(|m| m.host_calls), Some(1));
    assert_sandbox_still_works(&sb);
}

#[test]
fn wrong_results_from_the_host_end_the_call_with_host_error() {
    let sb = sandbox(Limits::default());
    for bad in [
        vec![],
        vec![Value::I32(1)],
        vec![Value::I64(1), Value::I64(2)],
    ] {
        let mut inst = host_log_instance(&sb);
        let Step::HostCall(_) = inst.start("greet", &[]).expect("starts") else {
            panic!("host call")
        };
        let Step::HostCall(_) = inst.resume_host(&[]).expect("log answered") else {
            panic!("host call")
        };
        let err = inst.resume_host(&bad).expect_err("wrong results");
        assert_eq!(err.code(), ErrorCode::HostError, "{bad:?}");
        assert_eq!(err.details().capability, Some(DOUBLE.0));
        assert_eq!(inst.state(), InstanceState::Poisoned(ErrorCode::HostError));
    }
}

#[test]
fn resuming_the_wrong_step_is_invalid_argument_and_changes_nothing() {
    let sb = sandbox(Limits::default());
    let mut inst = host_log_instance(&sb);
    assert_eq!(
        inst.resume().expect_err("idle").code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        inst.resume_host(&[]).expect_err("idle").code(),
        ErrorCode::InvalidArgument
    );
    let Step::HostCall(_) = inst.start("greet", &[]).expect("starts") else {
        panic!("host call")
    };
    // Waiting for a host answer, not at a yield.
    assert_eq!(
        inst.resume().expect_err("not a yield").code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(inst.state(), InstanceState::Running);
    assert!(matches!(inst.resume_host(&[]), Ok(Step::HostCall(_))));
}

#[test]
fn a_second_call_while_one_is_suspended_is_busy() {
    let sb = sandbox(Limits::default());
    let mut inst = host_log_instance(&sb);
    let Step::HostCall(_) = inst.start("greet", &[]).expect("starts") else {
        panic!("host call")
    };
    let err = inst.start("greet", &[]).expect_err("busy");
    assert_eq!(err.code(), ErrorCode::Busy);
    // The suspended call is untouched.
    assert!(matches!(inst.resume_host(&[]), Ok(Step::HostCall(_))));
}

#[test]
fn bad_arguments_to_an_export_are_invalid_argument_without_poisoning() {
    let sb = sandbox(Limits::default());
    let mut inst = instance(&sb, "add");
    for (export, args) in [
        ("nope", vec![]),
        ("add", vec![Value::I32(1)]),
        ("add", vec![Value::I32(1), Value::I64(2)]),
    ] {
        let err = call(&mut inst, export, &args).expect_err("bad call");
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{export} {args:?}");
    }
    assert_eq!(inst.state(), InstanceState::Idle);
    assert_eq!(
        call(&mut inst, "add", &[Value::I32(1), Value::I32(2)]).expect("still fine"),
        vec![Value::I32(3)]
    );
}
