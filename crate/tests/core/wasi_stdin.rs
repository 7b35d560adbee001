//! stdin as bytes given up front, or as an async source: a read of an empty async stdin
//! suspends the guest (`WasiWait::ReadStdin`) until the caller gives bytes or end of file.

use nestbox::{ErrorCode, Instance, Limits, Stdin, Step, WasiConfig, WasiWait};

use crate::common::{fixture, load, sandbox};
use crate::wasi_util::*;

fn echo(stdin: Stdin) -> Instance {
    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_echo"));
    sb.instantiate_wasi(
        &module,
        &WasiConfig {
            stdin,
            ..WasiConfig::default()
        },
    )
    .expect("instantiates")
}

fn waits_for_stdin(inst: &Instance, step: &Step) -> u32 {
    assert!(matches!(step, Step::Yield), "{step:?}");
    match inst.wasi_wait() {
        Some(WasiWait::ReadStdin { max_bytes }) => max_bytes,
        other => panic!("waits for {other:?}"),
    }
}

#[test]
fn stdin_bytes_are_read_then_end_of_file() {
    let input = b"hello stdin, longer than one 8-byte read".to_vec();
    let outcome = run_fixture(
        "wasi_echo",
        WasiConfig {
            stdin: Stdin::Bytes(input.clone()),
            ..WasiConfig::default()
        },
    )
    .expect("runs");
    assert_eq!(outcome.stdout, input);
    assert_eq!(outcome.stderr, b"EOF");
}

#[test]
fn async_stdin_suspends_until_the_caller_answers() {
    let mut inst = echo(Stdin::Async);
    let step = inst.start("_start", &[]).expect("starts");
    assert_eq!(waits_for_stdin(&inst, &step), 8, "the guest's buffer");
    // Resuming with nothing to read keeps the guest waiting.
    let step = inst.resume().expect("still waiting");
    assert_eq!(waits_for_stdin(&inst, &step), 8);
    // Nothing to give is a misuse, and changes nothing.
    let error = inst.resume_stdin(&[], false).expect_err("nothing");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
    assert_eq!(inst.wasi_wait(), Some(WasiWait::ReadStdin { max_bytes: 8 }));
    // Bytes: echoed, then the guest asks again.
    let step = inst.resume_stdin(b"abc", false).expect("resumes");
    waits_for_stdin(&inst, &step);
    assert_eq!(inst.take_output(), (b"abc".to_vec(), vec![]));
    // More than one read's worth: the rest stays buffered for the next reads.
    let step = inst.resume_stdin(b"0123456789", false).expect("resumes");
    waits_for_stdin(&inst, &step);
    assert_eq!(inst.take_output().0, b"0123456789");
    // Pushing ahead of time, then resuming.
    inst.push_stdin(b"pushed", false).expect("async stdin");
    let step = inst.resume().expect("resumes");
    waits_for_stdin(&inst, &step);
    assert_eq!(inst.take_output().0, b"pushed");
    // End of file (with a last chunk) ends the program.
    let Step::Finished(outcome) = inst.resume_stdin(b"!", true).expect("resumes") else {
        panic!("finishes at end of file")
    };
    assert_eq!(outcome.exit_code, None, "returned from _start");
    assert_eq!(inst.take_output(), (b"!".to_vec(), b"EOF".to_vec()));
    let error = inst.push_stdin(b"late", false).expect_err("closed");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
    let error = inst.resume_stdin(b"x", true).expect_err("not running");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
}

#[test]
fn stdin_given_as_bytes_cannot_be_pushed() {
    let mut inst = echo(Stdin::Bytes(vec![]));
    assert_eq!(
        inst.push_stdin(b"x", false).expect_err("bytes").code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn the_blocking_driver_gives_async_stdin_end_of_file() {
    let outcome = run_fixture(
        "wasi_echo",
        WasiConfig {
            stdin: Stdin::Async,
            ..WasiConfig::default()
        },
    )
    .expect("runs");
    assert_eq!((outcome.stdout, outcome.stderr), (vec![], b"EOF".to_vec()));
}

#[test]
fn poll_waits_for_async_stdin() {
    let mut sys = Sys::new(WasiConfig {
        stdin: Stdin::Async,
        ..WasiConfig::default()
    });
    // One fd_read subscription on stdin, userdata 5.
    let mut s = [0u8; 48];
    s[0] = 5;
    s[8] = wasip1::EVENTTYPE_FD_READ.raw();
    sys.put(BUF, &s);
    let step = sys
        .start(
            "poll_oneoff",
            &[u64::from(BUF), u64::from(BUF + 64), 1, u64::from(OUT)],
        )
        .expect("starts");
    assert!(matches!(step, Step::Yield));
    assert_eq!(
        sys.instance.wasi_wait(),
        Some(WasiWait::ReadStdin { max_bytes: 65_536 })
    );
    let Step::Finished(_) = sys.instance.resume_stdin(b"xyz", false).expect("resumes") else {
        panic!("the poll returns")
    };
    assert_eq!(sys.u32_at(OUT), 1);
    let event = sys.get(BUF + 64, 32);
    assert_eq!((event[0], event[10]), (5, wasip1::EVENTTYPE_FD_READ.raw()));
    assert_eq!(
        u64::from_le_bytes(event[16..24].try_into().expect("8")),
        3,
        "bytes ready"
    );
    assert_eq!(sys.read(0, 10).as_deref(), Ok(&b"xyz"[..]));
}

#[test]
fn a_guest_waiting_for_stdin_can_be_cancelled_or_time_out() {
    let mut inst = echo(Stdin::Async);
    let step = inst.start("_start", &[]).expect("starts");
    waits_for_stdin(&inst, &step);
    assert_eq!(inst.cancel().map(|e| e.code()), Some(ErrorCode::Cancelled));
    assert_eq!(inst.wasi_wait(), None);

    let sb = sandbox(Limits {
        timeout_ms: 20,
        ..Limits::default()
    });
    let module = load(&sb, &fixture("wasi_echo"));
    let mut inst = sb
        .instantiate_wasi(
            &module,
            &WasiConfig {
                stdin: Stdin::Async,
                ..WasiConfig::default()
            },
        )
        .expect("instantiates");
    let mut step = inst.start("_start", &[]);
    let error = loop {
        match step {
            Ok(Step::Yield) => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                step = inst.resume();
            }
            Ok(other) => panic!("{other:?}"),
            Err(error) => break error,
        }
    };
    assert_eq!(error.code(), ErrorCode::Timeout);
}
