//! Direct grants: a synchronous host answers from inside the guest's call (no host-call
//! step), with the same fuel, count, deadline and error codes as a stepped host call; a host
//! that suspends, fails or answers with the wrong types ends up on the step path or ends the
//! call, never with a half-answered guest.

use std::cell::RefCell;
use std::rc::Rc;

use nestbox::{
    CallOptions, CapabilityId, DirectAnswer, DirectCall, DirectHost, Error, ErrorCode, Grants,
    Instance, InstanceState, Limits, Sandbox, Signature, Step, Value, ValueType::*,
};

use crate::common::*;

const NEXT: CapabilityId = CapabilityId(3);
const LOG: CapabilityId = CapabilityId(4);

/// `run(n)` sums `next(i)` for i in 0..n; `log(ptr, len)` gets the bytes "hello" at 16.
const GUEST: &str = r#"(module
  (import "env" "next" (func $next (param i32) (result i32)))
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (func (export "run") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum (i32.add (local.get $sum) (call $next (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $sum))
  (func (export "log") (call $log (i32.const 16) (i32.const 5))))"#;

fn grants(direct: bool) -> Grants {
    let next = Signature::new([I32], [I32]);
    let log = Signature::new([I32, I32], []);
    if direct {
        Grants::new()
            .grant_direct("env", "next", NEXT, next)
            .and_then(|g| g.grant_direct("env", "log", LOG, log))
            .expect("grants")
    } else {
        Grants::new()
            .grant("env", "next", NEXT, next)
            .and_then(|g| g.grant("env", "log", LOG, log))
            .expect("grants")
    }
}

fn instance(sb: &Sandbox, direct: bool) -> Instance {
    let module = load(sb, &wat(GUEST));
    sb.instantiate(&module, &grants(direct))
        .expect("instantiates")
}

/// What the test host does on its `n`-th call (counting from 0).
#[derive(Clone, Copy)]
enum Plan {
    Echo,
    SuspendAt(u32),
    FailAt(u32),
    WrongTypeAt(u32),
    SleepMs(u64),
}

#[derive(Default)]
struct Seen {
    calls: u32,
    logged: Vec<u8>,
}

struct TestHost {
    plan: Plan,
    seen: Rc<RefCell<Seen>>,
}

impl DirectHost for TestHost {
    fn call(&mut self, call: DirectCall<'_>) -> DirectAnswer {
        let mut seen = self.seen.borrow_mut();
        let n = seen.calls;
        seen.calls += 1;
        if call.capability == LOG {
            let [Value::I32(ptr), Value::I32(len)] = call.args[..] else {
                return DirectAnswer::Fail(Error::host_failed("log: bad arguments"));
            };
            let (ptr, len) = (ptr as usize, len as usize);
            match call.memory.get(ptr..ptr + len) {
                Some(bytes) => seen.logged.extend_from_slice(bytes),
                None => return DirectAnswer::Fail(Error::host_failed("log: out of bounds")),
            }
            // The host may write the guest's memory too.
            call.memory[0] = b'!';
            return DirectAnswer::Answered;
        }
        let [Value::I32(i)] = call.args[..] else {
            return DirectAnswer::Fail(Error::host_failed("next: bad arguments"));
        };
        match self.plan {
            Plan::SuspendAt(k) if n == k => return DirectAnswer::Suspend,
            Plan::FailAt(k) if n == k => {
                return DirectAnswer::Fail(Error::host_failed("the host function threw"));
            }
            Plan::WrongTypeAt(k) if n == k => {
                call.results[0] = Value::I64(1);
                return DirectAnswer::Answered;
            }
            Plan::SleepMs(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
            _ => {}
        }
        call.results[0] = Value::I32(i);
        DirectAnswer::Answered
    }
}

fn with_host(sb: &Sandbox, plan: Plan) -> (Instance, Rc<RefCell<Seen>>) {
    let mut inst = instance(sb, true);
    let seen = Rc::new(RefCell::new(Seen::default()));
    inst.set_direct_host(Some(Box::new(TestHost {
        plan,
        seen: Rc::clone(&seen),
    })))
    .expect("idle");
    (inst, seen)
}

fn sum(n: i32) -> i32 {
    (0..n).fold(0i32, |s, i| s.wrapping_add(i))
}

/// Runs a stepped call to its end, answering `next(i)` with `i`.
fn stepped(inst: &mut Instance, n: i32) -> nestbox::Outcome {
    let mut step = inst.start("run", &[Value::I32(n)]).expect("starts");
    loop {
        step = match step {
            Step::Finished(outcome) => return outcome,
            Step::Yield => inst.resume().expect("resumes"),
            Step::HostCall(call) => {
                assert!(!call.direct, "no direct host ran this call");
                inst.resume_host(&call.args).expect("answers")
            }
        };
    }
}

#[test]
fn a_direct_host_answers_without_steps_at_the_same_cost() {
    let sb = sandbox(Limits::default());
    let (mut inst, seen) = with_host(&sb, Plan::Echo);
    let Step::Finished(direct) = inst.start("run", &[Value::I32(500)]).expect("runs") else {
        panic!("no step: the host answered every call inside the guest's call")
    };
    assert_eq!(direct.results, vec![Value::I32(sum(500))]);
    assert_eq!(direct.metrics.host_calls, 500);
    assert_eq!(seen.borrow().calls, 500);

    // The same guest on the step path: the same fuel (host_call_fuel per call) and count.
    let mut plain = instance(&sb, false);
    let outcome = stepped(&mut plain, 500);
    assert_eq!(outcome.results, direct.results);
    assert_eq!(outcome.metrics.host_calls, 500);
    assert_eq!(outcome.metrics.fuel_consumed, direct.metrics.fuel_consumed);

    // The call's audit entry counts them.
    let entries = sb.audit_entries();
    let call = entries
        .iter()
        .rev()
        .find(|e| e.event.as_str() == "call" && e.extra.contains_key("hostCalls"))
        .expect("a call entry");
    assert_eq!(call.extra.get("hostCalls").map(String::as_str), Some("500"));
}

#[test]
fn the_host_reads_and_writes_guest_memory() {
    let sb = sandbox(Limits::default());
    let (mut inst, seen) = with_host(&sb, Plan::Echo);
    let Step::Finished(_) = inst.start("log", &[]).expect("runs") else {
        panic!("answered directly")
    };
    assert_eq!(seen.borrow().logged, b"hello");
    assert_eq!(
        inst.memory()
            .expect("memory")
            .read(0, 1)
            .expect("in bounds"),
        b"!"
    );
}

#[test]
fn without_a_host_or_when_traced_direct_grants_are_steps() {
    let sb = sandbox(Limits::default());
    let mut inst = instance(&sb, true);
    assert_eq!(stepped(&mut inst, 3).results, vec![Value::I32(3)]);

    let (mut inst, seen) = with_host(&sb, Plan::Echo);
    let traced = CallOptions {
        trace: Some(100),
        ..CallOptions::default()
    };
    let Step::HostCall(call) = inst
        .start_with("run", &[Value::I32(2)], &traced)
        .expect("starts")
    else {
        panic!("a traced call steps")
    };
    assert!(!call.direct);
    let Step::HostCall(call) = inst.resume_host(&call.args).expect("answers") else {
        panic!("second call")
    };
    let Step::Finished(outcome) = inst.resume_host(&call.args).expect("answers") else {
        panic!("end")
    };
    assert_eq!(outcome.metrics.host_calls, 2);
    assert_eq!(seen.borrow().calls, 0, "the host never ran");
    let trace = inst.take_trace().expect("traced");
    assert_eq!(
        trace
            .spans
            .iter()
            .filter(|s| s.name.starts_with("capability"))
            .count(),
        2
    );
}

#[test]
fn a_suspending_host_hands_over_to_the_step_path_already_paid() {
    let sb = sandbox(Limits::default());
    let (mut inst, seen) = with_host(&sb, Plan::SuspendAt(3));
    let Step::HostCall(call) = inst.start("run", &[Value::I32(6)]).expect("starts") else {
        panic!("the fourth call suspends")
    };
    assert!(call.direct, "the host owes this answer");
    assert_eq!(call.capability, NEXT);
    assert_eq!(call.import, "env.next");
    assert_eq!(call.args, vec![Value::I32(3)]);
    assert_eq!(inst.progress().expect("running").host_calls, 4);
    let Step::Finished(outcome) = inst.resume_host(&[Value::I32(3)]).expect("resumes") else {
        panic!("the rest is direct")
    };
    assert_eq!(outcome.results, vec![Value::I32(sum(6))]);
    assert_eq!(outcome.metrics.host_calls, 6);
    assert_eq!(seen.borrow().calls, 6);
    let mut plain = instance(&sb, false);
    assert_eq!(
        stepped(&mut plain, 6).metrics.fuel_consumed,
        outcome.metrics.fuel_consumed,
        "the suspended call was not charged twice"
    );
}

#[test]
fn a_failing_host_ends_the_call_with_its_error() {
    let sb = sandbox(Limits::default());
    let (mut inst, _) = with_host(&sb, Plan::FailAt(2));
    let error = inst.start("run", &[Value::I32(5)]).expect_err("fails");
    assert_eq!(error.code(), ErrorCode::HostError);
    assert_eq!(error.details().capability, Some(NEXT.0));
    assert_eq!(
        error.details().metrics.as_ref().map(|m| m.host_calls),
        Some(3)
    );
    assert_eq!(inst.state(), InstanceState::Poisoned(ErrorCode::HostError));
    assert_sandbox_still_works(&sb);
}

#[test]
fn results_of_the_wrong_type_end_the_call() {
    let sb = sandbox(Limits::default());
    let (mut inst, _) = with_host(&sb, Plan::WrongTypeAt(0));
    let error = inst.start("run", &[Value::I32(5)]).expect_err("fails");
    assert_eq!(error.code(), ErrorCode::HostError);
    assert!(error.message().contains("env.next"), "{}", error.message());
    assert_eq!(error.details().capability, Some(NEXT.0));
    assert!(matches!(inst.state(), InstanceState::Poisoned(_)));
}

#[test]
fn the_fuel_budget_runs_out_on_the_call_it_cannot_pay() {
    let limits = Limits::default();
    let sb = sandbox(limits.clone());
    let (mut inst, seen) = with_host(&sb, Plan::Echo);
    // Enough for a few calls' host_call_fuel, not for 100.
    let options = CallOptions {
        fuel: Some(limits.host_call_fuel * 5 + 50),
        ..CallOptions::default()
    };
    let error = inst
        .start_with("run", &[Value::I32(100)], &options)
        .expect_err("runs out");
    assert_eq!(error.code(), ErrorCode::FuelExhausted);
    let calls = seen.borrow().calls;
    assert!((1..=5).contains(&calls), "{calls} calls paid");
}

#[test]
fn the_deadline_is_checked_after_a_slow_host() {
    let sb = sandbox(Limits {
        timeout_ms: 20,
        ..Limits::default()
    });
    let (mut inst, seen) = with_host(&sb, Plan::SleepMs(30));
    let error = inst.start("run", &[Value::I32(10)]).expect_err("times out");
    assert_eq!(error.code(), ErrorCode::Timeout);
    assert_eq!(
        seen.borrow().calls,
        1,
        "ended after the call that passed it"
    );
}

#[test]
fn the_host_cannot_be_changed_during_a_call() {
    let sb = sandbox(Limits::default());
    let (mut inst, _) = with_host(&sb, Plan::SuspendAt(0));
    let Step::HostCall(_) = inst.start("run", &[Value::I32(1)]).expect("starts") else {
        panic!("suspended")
    };
    let error = inst.set_direct_host(None).expect_err("busy");
    assert_eq!(error.code(), ErrorCode::Busy);
    let Step::Finished(outcome) = inst.resume_host(&[Value::I32(0)]).expect("resumes") else {
        panic!("end")
    };
    assert_eq!(outcome.results, vec![Value::I32(0)]);
    inst.set_direct_host(None).expect("idle again");
    assert_eq!(stepped(&mut inst, 2).results, vec![Value::I32(1)]);
}
