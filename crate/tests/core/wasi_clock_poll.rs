//! Clocks (real or deterministic) and poll_oneoff: a sleep never blocks inside the core — it
//! suspends the guest with `WasiWait::Sleep`, or advances a deterministic clock at once; fd
//! subscriptions for stdio are answered without waiting.

use std::time::{Duration, Instant};

use nestbox::{Deterministic, ErrorCode, Limits, Preopen, Step, WasiConfig, WasiWait};
use wasip1::{ERRNO_BADF, ERRNO_INVAL, EVENTTYPE_CLOCK, EVENTTYPE_FD_WRITE};

use crate::wasi_util::*;

const SUBS: u32 = BUF;
const EVENTS: u32 = BUF + 1024;
const NEVENTS: u32 = OUT;

fn clock_sub(sys: &mut Sys, index: u32, userdata: u64, id: u32, timeout_ns: u64, abstime: bool) {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = EVENTTYPE_CLOCK.raw();
    s[16..20].copy_from_slice(&id.to_le_bytes());
    s[24..32].copy_from_slice(&timeout_ns.to_le_bytes());
    s[40..42].copy_from_slice(&u16::from(abstime).to_le_bytes());
    sys.put(SUBS + index * 48, &s);
}

fn fd_sub(sys: &mut Sys, index: u32, userdata: u64, tag: u8, fd: u32) {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = tag;
    s[16..20].copy_from_slice(&fd.to_le_bytes());
    sys.put(SUBS + index * 48, &s);
}

/// `(userdata, error, type, nbytes, flags)` of event `index`.
fn event(sys: &mut Sys, index: u32) -> (u64, u16, u8, u64, u16) {
    let b = sys.get(EVENTS + index * 32, 32);
    (
        u64::from_le_bytes(b[0..8].try_into().expect("8")),
        u16::from_le_bytes(b[8..10].try_into().expect("2")),
        b[10],
        u64::from_le_bytes(b[16..24].try_into().expect("8")),
        u16::from_le_bytes(b[24..26].try_into().expect("2")),
    )
}

fn poll_args(n: u64) -> [u64; 4] {
    [u64::from(SUBS), u64::from(EVENTS), n, u64::from(NEVENTS)]
}

fn now(sys: &mut Sys, id: u64) -> u64 {
    assert_eq!(sys.call("clock_time_get", &[id, 1, u64::from(OUT) + 8]), 0);
    sys.u64_at(OUT + 8)
}

/// The monotonic clock starts at 1 s, never 0 (Go's runtime aborts on a zero nanotime).
const MONOTONIC_START: u64 = 1_000_000_000;

const DETERMINISTIC: Deterministic = Deterministic {
    seed: 1,
    start_time_ns: 1_700_000_000_000_000_000,
};

#[test]
fn clocks_have_a_resolution_and_unknown_ids_are_einval() {
    let mut sys = Sys::new(WasiConfig::default());
    for id in 0..4 {
        assert_eq!(sys.call("clock_res_get", &[id, u64::from(OUT)]), 0);
        assert_eq!(sys.u64_at(OUT), 1_000, "1 µs");
    }
    assert_eq!(
        sys.call("clock_res_get", &[4, u64::from(OUT)]),
        e(ERRNO_INVAL)
    );
    assert_eq!(
        sys.call("clock_time_get", &[4, 0, u64::from(OUT)]),
        e(ERRNO_INVAL)
    );
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    let realtime = now(&mut sys, 0);
    assert!(
        realtime.abs_diff(wall) < 10_000_000_000,
        "real wall-clock time"
    );
    let (a, b) = (now(&mut sys, 1), now(&mut sys, 1));
    assert!(b >= a, "monotonic");
    assert!(a >= MONOTONIC_START, "never 0");
    assert!(now(&mut sys, 2) >= a, "cpu time reads as monotonic");
}

#[test]
fn a_deterministic_clock_moves_only_when_the_guest_sleeps() {
    let mut sys = Sys::new(WasiConfig {
        deterministic: Some(DETERMINISTIC),
        ..WasiConfig::default()
    });
    let start = DETERMINISTIC.start_time_ns;
    assert_eq!(
        (now(&mut sys, 0), now(&mut sys, 1)),
        (start, MONOTONIC_START)
    );
    assert_eq!(
        (now(&mut sys, 0), now(&mut sys, 1)),
        (start, MONOTONIC_START),
        "still"
    );
    // A relative 5 ms sleep returns at once, 5 ms later in virtual time.
    clock_sub(&mut sys, 0, 42, 1, 5_000_000, false);
    let began = Instant::now();
    let Step::Finished(_) = sys.start("poll_oneoff", &poll_args(1)).expect("runs") else {
        panic!("a deterministic sleep never suspends")
    };
    assert!(began.elapsed() < Duration::from_millis(100));
    assert_eq!(sys.u32_at(NEVENTS), 1);
    assert_eq!(event(&mut sys, 0), (42, 0, EVENTTYPE_CLOCK.raw(), 0, 0));
    assert_eq!(
        (now(&mut sys, 0), now(&mut sys, 1)),
        (start + 5_000_000, MONOTONIC_START + 5_000_000)
    );
    // An absolute realtime deadline; the earlier of two clocks fires.
    clock_sub(&mut sys, 0, 1, 0, start + 1_000_000_000, true);
    clock_sub(&mut sys, 1, 2, 1, 3_000_000_000, false);
    assert_eq!(sys.call("poll_oneoff", &poll_args(2)), 0);
    assert_eq!(sys.u32_at(NEVENTS), 1);
    assert_eq!(event(&mut sys, 0).0, 1);
    assert_eq!(now(&mut sys, 0), start + 1_000_000_000);
    // A deadline already passed fires without moving the clock.
    clock_sub(&mut sys, 0, 3, 1, 0, false);
    assert_eq!(sys.call("poll_oneoff", &poll_args(1)), 0);
    assert_eq!(now(&mut sys, 1), MONOTONIC_START + 1_000_000_000);
}

#[test]
fn a_real_sleep_suspends_the_guest_instead_of_blocking() {
    let mut sys = Sys::new(WasiConfig::default());
    clock_sub(&mut sys, 0, 42, 1, 30_000_000, false);
    let began = Instant::now();
    let step = sys.start("poll_oneoff", &poll_args(1)).expect("starts");
    assert!(matches!(step, Step::Yield));
    assert!(began.elapsed() < Duration::from_millis(25), "did not block");
    let Some(WasiWait::Sleep { duration_ns }) = sys.instance.wasi_wait() else {
        panic!("waits for the clock, got {:?}", sys.instance.wasi_wait())
    };
    assert!(
        (20_000_000..=30_000_000).contains(&duration_ns),
        "{duration_ns}"
    );
    assert!(
        sys.instance.resume_stdin(b"x", false).is_err(),
        "not waiting for stdin"
    );
    std::thread::sleep(Duration::from_nanos(duration_ns));
    let Step::Finished(outcome) = sys.instance.resume().expect("resumes") else {
        panic!("the poll returns")
    };
    assert_eq!(outcome.results, [nestbox::Value::I32(0)]);
    assert_eq!(sys.u32_at(NEVENTS), 1);
    assert_eq!(event(&mut sys, 0), (42, 0, EVENTTYPE_CLOCK.raw(), 0, 0));
    assert!(began.elapsed() >= Duration::from_millis(30));

    // Resuming early still fires the clock: the caller decides when the time is up.
    clock_sub(&mut sys, 0, 7, 1, 60_000_000_000, false);
    assert!(matches!(
        sys.start("poll_oneoff", &poll_args(1)),
        Ok(Step::Yield)
    ));
    assert!(matches!(sys.instance.resume(), Ok(Step::Finished(_))));
    assert_eq!(event(&mut sys, 0).0, 7);
}

#[test]
fn a_command_that_sleeps_runs_natively() {
    let outcome = run_fixture("wasi_sleep", WasiConfig::default()).expect("runs");
    assert_eq!(outcome.exit_code, 0, "poll's errno");
    let sb = crate::common::sandbox(Limits::default());
    let module = crate::common::load(&sb, &crate::common::fixture("wasi_sleep"));
    let mut inst = sb
        .instantiate_wasi(&module, &WasiConfig::default())
        .expect("instantiates");
    let outcome = inst
        .call("_start", &[], |_, _| unreachable!())
        .expect("runs");
    assert_eq!(outcome.exit_code, Some(0));
    let memory = inst.memory().expect("memory");
    let before = u64::from_le_bytes(memory.read(200, 8).expect("8").try_into().expect("8"));
    let after = u64::from_le_bytes(memory.read(208, 8).expect("8").try_into().expect("8"));
    assert!(after - before >= 5_000_000, "slept {} ns", after - before);
    assert_eq!(memory.read_u32(216).expect("nevents"), 1);
    // Deterministic: exactly 5 ms of virtual time, no waiting.
    let mut inst = sb
        .instantiate_wasi(
            &module,
            &WasiConfig {
                deterministic: Some(DETERMINISTIC),
                ..WasiConfig::default()
            },
        )
        .expect("instantiates");
    let Step::Finished(outcome) = inst.start("_start", &[]).expect("runs") else {
        panic!("no suspension")
    };
    assert_eq!(outcome.exit_code, Some(0));
    let memory = inst.memory().expect("memory");
    assert_eq!(
        memory.read(200, 8).expect("8"),
        MONOTONIC_START.to_le_bytes()
    );
    assert_eq!(
        memory.read(208, 8).expect("8"),
        (MONOTONIC_START + 5_000_000).to_le_bytes()
    );
}

#[test]
fn a_sleep_past_the_deadline_is_cut_and_ends_in_timeout() {
    let mut sys = Sys::with_limits(
        Limits {
            timeout_ms: 40,
            ..Limits::default()
        },
        WasiConfig::default(),
    );
    clock_sub(&mut sys, 0, 1, 1, 3_600_000_000_000, false);
    assert!(matches!(
        sys.start("poll_oneoff", &poll_args(1)),
        Ok(Step::Yield)
    ));
    let Some(WasiWait::Sleep { duration_ns }) = sys.instance.wasi_wait() else {
        panic!("sleeps")
    };
    assert!(
        duration_ns <= 41_000_000,
        "cut to the deadline: {duration_ns}"
    );
    std::thread::sleep(Duration::from_nanos(duration_ns));
    let error = sys.instance.resume().expect_err("deadline passed");
    assert_eq!(error.code(), ErrorCode::Timeout);
    // The blocking driver ends the same way, without sleeping an hour.
    let error = Sys::with_limits(
        Limits {
            timeout_ms: 40,
            ..Limits::default()
        },
        WasiConfig::default(),
    )
    .poll_hour()
    .expect_err("timeout");
    assert_eq!(error.code(), ErrorCode::Timeout);
}

impl Sys {
    fn poll_hour(mut self) -> Result<Vec<nestbox::Value>, nestbox::Error> {
        clock_sub(&mut self, 0, 1, 1, 3_600_000_000_000, false);
        self.try_call("poll_oneoff", &poll_args(1))
    }
}

#[test]
fn ready_fds_are_reported_without_waiting() {
    let mut sys = Sys::new(WasiConfig {
        max_stdout_bytes: 1_000,
        preopens: vec![Preopen::new("/").file("f", "12345")],
        ..WasiConfig::default()
    });
    // stdout is always writable: the hour-long clock does not fire, nothing waits.
    clock_sub(&mut sys, 0, 1, 1, 3_600_000_000_000, false);
    fd_sub(&mut sys, 1, 2, EVENTTYPE_FD_WRITE.raw(), 1);
    fd_sub(&mut sys, 2, 3, wasip1::EVENTTYPE_FD_READ.raw(), 99);
    assert_eq!(sys.call("poll_oneoff", &poll_args(3)), 0);
    assert_eq!(sys.u32_at(NEVENTS), 2);
    assert_eq!(
        event(&mut sys, 0),
        (2, 0, EVENTTYPE_FD_WRITE.raw(), 1_000, 0)
    );
    assert_eq!(event(&mut sys, 1).0, 3);
    assert_eq!(event(&mut sys, 1).1, e(ERRNO_BADF));
    // A file is readable with its remaining bytes; stdin given as bytes is too.
    let fd = sys.open(PREOPEN, "f", 0, READ, 0).expect("opens");
    assert_eq!(sys.read(fd, 2).as_deref(), Ok(&b"12"[..]));
    fd_sub(&mut sys, 0, 4, wasip1::EVENTTYPE_FD_READ.raw(), fd as u32);
    fd_sub(&mut sys, 1, 5, wasip1::EVENTTYPE_FD_READ.raw(), 0);
    assert_eq!(sys.call("poll_oneoff", &poll_args(2)), 0);
    assert_eq!(sys.u32_at(NEVENTS), 2);
    assert_eq!(
        event(&mut sys, 0),
        (4, 0, wasip1::EVENTTYPE_FD_READ.raw(), 3, 0)
    );
    let hangup = wasip1::EVENTRWFLAGS_FD_READWRITE_HANGUP;
    assert_eq!(
        event(&mut sys, 1),
        (5, 0, wasip1::EVENTTYPE_FD_READ.raw(), 0, hangup),
        "empty stdin: end of file"
    );
    // No subscriptions, or an unknown kind, is EINVAL.
    assert_eq!(sys.call("poll_oneoff", &poll_args(0)), e(ERRNO_INVAL));
    fd_sub(&mut sys, 0, 6, 9, 1);
    assert_eq!(sys.call("poll_oneoff", &poll_args(1)), e(ERRNO_INVAL));
}

#[test]
fn file_times_come_from_the_clock() {
    let mut sys = Sys::new(WasiConfig {
        deterministic: Some(DETERMINISTIC),
        preopens: vec![Preopen::new("/").file("old", "")],
        ..WasiConfig::default()
    });
    clock_sub(&mut sys, 0, 1, 1, 2_000, false);
    assert_eq!(sys.call("poll_oneoff", &poll_args(1)), 0);
    assert!(sys.open(PREOPEN, "new", CREAT, READ_WRITE, 0).is_ok());
    for (path, expected) in [
        ("old", DETERMINISTIC.start_time_ns),
        ("new", DETERMINISTIC.start_time_ns + 2_000),
    ] {
        let (p, l) = sys.text(PATH, path);
        assert_eq!(
            sys.call("path_filestat_get", &[PREOPEN, 0, p, l, u64::from(OUT)]),
            0
        );
        assert_eq!(sys.u64_at(OUT + 48), expected, "mtim of {path}");
    }
}
