//! Tracing: a traced call gives a tree of spans — the export call, and under it every host
//! call, HTTP request and WASI call with its arguments, result or errno, fuel and time —
//! bounded with a truncation marker, and exported as OTLP JSON. Untraced calls record nothing.

use nestbox::{
    AttrValue, CallOptions, CapabilityId, Digest, Error, ErrorCode, Grants, HostFn, Limits,
    Signature, Span, Step, Trace, Value, ValueType::*, WasiConfig, drive,
};

use crate::common::*;

fn traced(max_spans: u32) -> CallOptions {
    CallOptions {
        trace: Some(max_spans),
        ..CallOptions::default()
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match span.attribute(key) {
        Some(AttrValue::Int(i)) => *i,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match span.attribute(key) {
        Some(AttrValue::Str(s)) => s,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

fn names(trace: &Trace) -> Vec<&str> {
    trace.spans.iter().map(|s| s.name.as_str()).collect()
}

fn host_log(sb: &nestbox::Sandbox) -> nestbox::Instance {
    let m = load(sb, &fixture("host_log"));
    let grants = Grants::new()
        .grant(
            "env",
            "log",
            CapabilityId(7),
            Signature::new([I32, I32], []),
        )
        .expect("grant")
        .grant(
            "env",
            "double",
            CapabilityId(8),
            Signature::new([I64], [I64]),
        )
        .expect("grant");
    sb.instantiate(&m, &grants).expect("instantiates")
}

#[test]
fn a_call_with_host_calls_is_a_root_with_a_child_per_host_call() {
    let sb = sandbox(Limits {
        host_call_fuel: 100,
        ..Limits::default()
    });
    let mut inst = host_log(&sb);
    let mut hooks = HostFn(
        |call: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| {
            Ok(match call.import.as_str() {
                "env.double" => vec![Value::I64(42)],
                _ => Vec::new(),
            })
        },
    );
    let outcome = drive(&mut inst, "greet", &[], &traced(100), &mut hooks).expect("runs");
    assert_eq!(outcome.results, vec![Value::I64(42)]);
    let trace = inst.take_trace().expect("a traced call leaves a trace");
    assert!(inst.take_trace().is_none(), "taken once");
    assert_eq!(
        names(&trace),
        ["call greet", "capability env.log", "capability env.double"]
    );
    let root = trace.root().expect("root");
    assert_eq!(root.parent, None);
    assert_eq!(root.error, None);
    assert_eq!(text(root, "nestbox.export"), "greet");
    assert_eq!(text(root, "nestbox.call_kind"), "call");
    assert_eq!(
        text(root, "nestbox.module"),
        Digest::of(&fixture("host_log")).to_sri()
    );
    assert_eq!(text(root, "nestbox.results"), "42");
    assert_eq!(int(root, "nestbox.host_calls"), 2);
    assert_eq!(
        int(root, "nestbox.fuel") as u64,
        outcome.metrics.fuel_consumed
    );
    let children: Vec<&Span> = trace.children(0).collect();
    assert_eq!(children.len(), 2);
    assert_eq!(int(children[0], "nestbox.capability"), 7);
    assert_eq!(text(children[0], "nestbox.args"), "16, 20");
    assert_eq!(text(children[0], "nestbox.results"), "");
    assert_eq!(int(children[1], "nestbox.capability"), 8);
    assert_eq!(text(children[1], "nestbox.args"), "21");
    assert_eq!(text(children[1], "nestbox.results"), "42");
    assert_eq!(int(children[1], "nestbox.fuel"), 100);
    for child in &children {
        assert!(child.start_unix_ns >= root.start_unix_ns);
        assert!(child.end_unix_ns >= child.start_unix_ns);
        assert!(child.end_unix_ns <= root.end_unix_ns);
    }

    // The same call untraced records nothing.
    drive(&mut inst, "greet", &[], &CallOptions::default(), &mut hooks).expect("runs");
    assert!(inst.take_trace().is_none());
}

#[test]
fn a_failed_host_call_ends_its_span_and_the_root_with_the_code() {
    let sb = sandbox(Limits::default());
    let mut inst = host_log(&sb);
    let mut hooks = HostFn(|_: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| {
        Err(Error::host_failed("the log is full"))
    });
    let err = drive(&mut inst, "greet", &[], &traced(100), &mut hooks).expect_err("fails");
    assert_eq!(err.code(), ErrorCode::HostError);
    let trace = inst.take_trace().expect("a failed call has a trace too");
    assert_eq!(names(&trace), ["call greet", "capability env.log"]);
    let (code, message) = trace.spans[1].error.clone().expect("the host call failed");
    assert_eq!(code, "HOST_ERROR");
    assert!(message.contains("the log is full"), "{message}");
    assert_eq!(
        trace.root().and_then(|r| r.error.clone()).map(|e| e.0),
        Some("HOST_ERROR".to_owned())
    );
}

#[test]
fn a_trace_keeps_its_span_limit_and_marks_the_root() {
    let sb = sandbox(Limits::default());
    let m = load(
        &sb,
        &wat(r#"(module
            (import "env" "tick" (func $tick (param i32)))
            (func (export "run") (local $i i32)
              (loop $l
                (call $tick (local.get $i))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))))"#),
    );
    let grants = Grants::new()
        .grant("env", "tick", CapabilityId(1), Signature::new([I32], []))
        .expect("grant");
    let mut inst = sb.instantiate(&m, &grants).expect("instantiates");
    let mut hooks = HostFn(|_: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| Ok(vec![]));
    let outcome = drive(&mut inst, "run", &[], &traced(10), &mut hooks).expect("runs");
    assert_eq!(outcome.metrics.host_calls, 50);
    let trace = inst.take_trace().expect("trace");
    assert_eq!(trace.spans.len(), 10);
    assert_eq!(trace.dropped, 41);
    let root = trace.root().expect("root");
    assert_eq!(
        root.attribute("nestbox.trace.truncated"),
        Some(&AttrValue::Bool(true))
    );
    assert_eq!(int(root, "nestbox.trace.dropped_spans"), 41);
    assert_eq!(text(&trace.spans[9], "nestbox.args"), "8");
}

/// A command that writes to stdout, closes a bad fd, sleeps 1 ms and exits with 3.
const WASI_GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hi\n")
  ;; iovec {100, 3} at 0
  (data (i32.const 0) "\64\00\00\00\03\00\00\00")
  ;; a relative monotonic clock subscription of 1 ms at 200 (userdata 0, tag 0, id 1)
  (data (i32.const 216) "\01\00\00\00")
  (data (i32.const 224) "\40\42\0f\00\00\00\00\00")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (drop (call $fd_close (i32.const 99)))
    (drop (call $poll (i32.const 200) (i32.const 300) (i32.const 1) (i32.const 20)))
    (call $exit (i32.const 3))))"#;

#[test]
fn wasi_calls_are_spans_with_their_errno_and_a_wait_spans_its_sleep() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &wat(WASI_GUEST));
    let mut inst = sb
        .instantiate_wasi(&m, &WasiConfig::default())
        .expect("instantiates");
    let mut hooks = HostFn(|_: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| Ok(vec![]));
    let outcome = drive(&mut inst, "_start", &[], &traced(100), &mut hooks).expect("runs");
    assert_eq!(outcome.exit_code, Some(3));
    let trace = inst.take_trace().expect("trace");
    assert_eq!(
        names(&trace),
        [
            "call _start",
            "wasi fd_write",
            "wasi fd_close",
            "wasi poll_oneoff",
            "wasi proc_exit"
        ]
    );
    let root = trace.root().expect("root");
    assert_eq!(text(root, "nestbox.call_kind"), "wasi");
    assert_eq!(int(root, "nestbox.exit_code"), 3);
    let write = &trace.spans[1];
    assert_eq!(write.parent, Some(0));
    assert_eq!(text(write, "wasi.args"), "1, 0, 1, 16");
    assert_eq!(int(write, "wasi.errno"), 0);
    assert_eq!(int(write, "nestbox.bytes"), 3);
    assert!(int(write, "nestbox.fuel") > 0);
    let close = &trace.spans[2];
    assert_eq!(
        int(close, "wasi.errno"),
        i64::from(wasip1::ERRNO_BADF.raw())
    );
    assert_eq!(text(close, "wasi.errno_name"), "BADF");
    // The sleep suspended the guest; its span lasts until the clock fired (≥ 1 ms).
    let poll = &trace.spans[3];
    assert!(text(poll, "wasi.suspended").contains("sleep"));
    assert_eq!(int(poll, "wasi.errno"), 0);
    assert!(
        poll.end_unix_ns - poll.start_unix_ns >= 1_000_000,
        "{} ns",
        poll.end_unix_ns - poll.start_unix_ns
    );
    assert_eq!(int(&trace.spans[4], "wasi.exit_code"), 3);
}

#[test]
fn a_limit_hit_inside_a_trace_ends_the_root_with_its_code() {
    let sb = sandbox(Limits {
        fuel: 50_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "infinite_loop");
    let mut step = inst.start_with("spin", &[], &traced(10));
    let err = loop {
        match step {
            Ok(Step::Yield) => step = inst.resume(),
            Err(e) => break e,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(err.code(), ErrorCode::FuelExhausted);
    let trace = inst.take_trace().expect("trace");
    let root = trace.root().expect("root");
    assert_eq!(root.name, "call spin");
    assert_eq!(
        root.error.as_ref().map(|e| e.0.as_str()),
        Some("FUEL_EXHAUSTED")
    );
    assert!(int(root, "nestbox.slices") >= 1);
    let json = trace.to_otlp_json();
    let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "call spin");
    assert_eq!(span["status"]["code"], 2);
}
