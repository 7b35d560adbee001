//! WASI work is bounded and paid for before it is done: a hostile guest cannot make the
//! host allocate in proportion to what it asks for (1024 iovecs aliasing its whole memory),
//! nor copy bytes its fuel budget cannot pay.

use std::process::Command;

use nestbox::{ErrorCode, Limits, Preopen, WasiConfig};
use wasip1::{ERRNO_BADF, ERRNO_INVAL};

use crate::wasi_util::*;

/// Set in the child process that runs one measured test alone.
const CHILD: &str = "NESTBOX_BOUNDS_CHILD";

/// The peak resident set of this process so far, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the ignored test `name` of this file alone in a child process (so no other test's
/// memory counts) and returns the child's peak resident set in KiB.
fn peak_of(name: &str) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let output = Command::new(exe)
        .args([
            &format!("wasi_bounds::{name}"),
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("runs the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name} failed in the child: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("PEAK_KIB=").map(|(_, v)| v))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} printed no peak: {stdout}"))
}

/// In the child: reports the peak after `f` ran.
fn report_peak(f: impl FnOnce()) {
    f();
    println!("\nPEAK_KIB={}", peak_rss_kib());
}

/// The child's peak must stay far below the 64 MiB the hostile iovecs add up to.
const SMALL_KIB: u64 = 40 << 10;

/// The syscall guest's memory is 4 pages; every iovec covers the first 64 KiB of it.
const SPAN: u32 = 64 << 10;
const IOVS: u32 = 1024;

fn hostile_iovecs(sys: &mut Sys) {
    let mut list = Vec::new();
    for _ in 0..IOVS {
        list.extend_from_slice(&0u32.to_le_bytes());
        list.extend_from_slice(&SPAN.to_le_bytes());
    }
    sys.put(BUF, &list);
}

fn fd_write_args(fd: u64) -> [u64; 4] {
    [fd, u64::from(BUF), u64::from(IOVS), u64::from(OUT)]
}

/// Declares a test that runs `$body` alone in a child process and checks its peak memory.
macro_rules! bounded {
    ($name:ident, $child:ident, $max_kib:expr, $body:block) => {
        #[test]
        #[cfg(target_os = "linux")]
        fn $name() {
            let peak = peak_of(stringify!($child));
            assert!(
                peak < $max_kib,
                "peak resident set {peak} KiB, over {} KiB",
                $max_kib
            );
        }

        #[test]
        #[ignore = "run alone in a child process by its parent test"]
        fn $child() {
            report_peak(|| $body);
        }
    };
}

bounded!(
    writing_aliasing_iovecs_to_stdin_is_ebadf_without_a_big_allocation,
    stdin_write_child,
    SMALL_KIB,
    {
        let mut sys = Sys::new(WasiConfig::default());
        hostile_iovecs(&mut sys);
        assert_eq!(sys.call("fd_write", &fd_write_args(0)), e(ERRNO_BADF));
        let pwrite = [0, u64::from(BUF), u64::from(IOVS), 0, u64::from(OUT)];
        assert_eq!(sys.call("fd_pwrite", &pwrite), e(ERRNO_BADF));
    }
);

bounded!(
    writing_aliasing_iovecs_to_capped_stdout_stops_at_the_cap_without_a_big_allocation,
    capped_stdout_child,
    SMALL_KIB,
    {
        let mut sys = Sys::new(WasiConfig {
            max_stdout_bytes: 100_000,
            ..WasiConfig::default()
        });
        hostile_iovecs(&mut sys);
        let error = sys
            .try_call("fd_write", &fd_write_args(1))
            .expect_err("over the cap");
        assert_eq!(error.code(), ErrorCode::OutputLimit);
        let (stdout, _) = sys.instance.take_output();
        assert_eq!(stdout.len(), 100_000, "the bytes up to the cap are kept");
    }
);

bounded!(
    writing_aliasing_iovecs_to_a_file_is_bounded_by_the_quota,
    file_write_child,
    SMALL_KIB,
    {
        let mut sys = Sys::new(WasiConfig {
            preopens: vec![Preopen::new("/")],
            max_fs_bytes: 3 << 20,
            ..WasiConfig::default()
        });
        let fd = sys.open(PREOPEN, "f", CREAT, READ_WRITE, 0).expect("opens");
        hostile_iovecs(&mut sys);
        assert_eq!(sys.call("fd_write", &fd_write_args(fd)), 0, "a short write");
        assert_eq!(sys.u32_at(OUT), 3 << 20, "as much as the quota allows");
        assert_eq!(
            sys.call("fd_write", &fd_write_args(fd)),
            e(wasip1::ERRNO_NOSPC)
        );
    }
);

bounded!(
    bytes_the_budget_cannot_pay_are_not_copied,
    unpaid_child,
    SMALL_KIB,
    {
        // 64 MiB would cost 1,048,576 fuel: the call must end before copying anything.
        let limits = Limits {
            fuel: 200_000,
            ..Limits::default()
        };
        let mut sys = Sys::with_limits(
            limits.clone(),
            WasiConfig {
                max_stdout_bytes: u64::MAX,
                ..WasiConfig::default()
            },
        );
        hostile_iovecs(&mut sys);
        let error = sys
            .try_call("fd_write", &fd_write_args(1))
            .expect_err("cannot pay");
        assert_eq!(error.code(), ErrorCode::FuelExhausted);
        assert_eq!(
            sys.instance.take_output(),
            (vec![], vec![]),
            "nothing copied"
        );

        // The same to a file: nothing is written.
        let mut sys = Sys::with_limits(
            limits,
            WasiConfig {
                preopens: vec![Preopen::new("/")],
                ..WasiConfig::default()
            },
        );
        let fd = sys.open(PREOPEN, "f", CREAT, READ_WRITE, 0).expect("opens");
        hostile_iovecs(&mut sys);
        let error = sys
            .try_call("fd_write", &fd_write_args(fd))
            .expect_err("cannot pay");
        assert_eq!(error.code(), ErrorCode::FuelExhausted);
        let files = sys.instance.wasi_files();
        assert_eq!(
            files["/"].get("f"),
            Some(&nestbox::FsEntry::File(Vec::new())),
            "nothing written"
        );
    }
);

#[test]
fn poll_oneoff_refuses_more_subscriptions_than_its_limit() {
    let mut sys = Sys::new(WasiConfig::default());
    // 5,000 subscriptions of 48 bytes fit in the 256 KiB memory, over the limit of 4,096.
    let errno = sys.call("poll_oneoff", &[0, 0, 5_000, u64::from(OUT)]);
    assert_eq!(errno, e(ERRNO_INVAL));
}

/// The measured case of the security review, natively: a 2 MiB guest calls `fd_write` on
/// stdin twenty times with 1024 iovecs covering all its memory. Run it with
/// `/usr/bin/time -v target/debug/deps/core-* wasi_bounds::hostile_fd_write_benchmark
/// --exact --ignored --nocapture` for the peak resident set.
#[test]
#[ignore = "a measurement, not a check"]
fn hostile_fd_write_benchmark() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 32)
      (func (export "_start") (local $i i32) (local $n i32)
        (loop $fill
          (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
          (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4))
            (i32.const 0x200000))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $fill (i32.lt_u (local.get $i) (i32.const 1024))))
        (loop $again
          (drop (call $w (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 16384)))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $n) (i32.const 20))))))"#;
    let bytes = crate::common::wat(wat);
    let sb = crate::common::sandbox(Limits::default());
    let started = std::time::Instant::now();
    let outcome = run_with(&sb, &bytes, WasiConfig::default());
    println!(
        "hostile fd_write: {:?} in {:?}, peak RSS {} KiB",
        outcome.map(|o| o.exit_code),
        started.elapsed(),
        peak_rss_kib()
    );
}

bounded!(
    random_get_fills_a_big_buffer_in_bounded_chunks,
    random_child,
    // The guest's own 48 MiB plus the baseline; a host-side copy would add 48 MiB more.
    80 << 10,
    {
        let wat = r#"(module
          (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
          (memory (export "memory") 768)
          (func (export "_start")
            (if (call $r (i32.const 0) (i32.const 0x3000000)) (then unreachable))))"#;
        let bytes = crate::common::wat(wat);
        let sb = crate::common::sandbox(Limits::default());
        let outcome = run_with(&sb, &bytes, WasiConfig::default()).expect("runs");
        assert_eq!(outcome.exit_code, 0);
    }
);
