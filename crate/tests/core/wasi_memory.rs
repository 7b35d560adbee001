//! Guest pointers reach WASI only through checked accessors: a pointer or length outside
//! linear memory is `EFAULT` to the guest (never a trap, never a clamp, nothing half-done),
//! and iovec totals that overflow are `EINVAL`.

use nestbox::{InstanceState, Limits, Preopen, Step, Value, WasiConfig};
use wasip1::{ERRNO_FAULT, ERRNO_INVAL};

use crate::common::{load, sandbox, wat};
use crate::wasi_util::*;

/// The syscall guest's memory: 4 pages.
const END: u64 = 4 * 65536;

#[test]
fn bad_pointers_are_efault_and_change_nothing() {
    let mut sys = Sys::new(WasiConfig {
        preopens: vec![Preopen::new("/").file("f", "data")],
        ..WasiConfig::default()
    });
    let fault = e(ERRNO_FAULT);
    let out = u64::from(OUT);
    // The iovec list itself outside memory, or straddling the end.
    assert_eq!(sys.call("fd_write", &[1, END - 4, 1, out]), fault);
    assert_eq!(
        sys.call("fd_write", &[1, u64::from(u32::MAX), 1, out]),
        fault
    );
    // An iovec whose buffer leaves memory.
    sys.iovec(IOV, (END - 2) as u32, 3);
    assert_eq!(sys.call("fd_write", &[1, u64::from(IOV), 1, out]), fault);
    // A good write whose result pointer is bad: nothing is written at all.
    sys.put(BUF, b"hi");
    sys.iovec(IOV, BUF, 2);
    assert_eq!(
        sys.call("fd_write", &[1, u64::from(IOV), 1, END - 2]),
        fault
    );
    assert_eq!(sys.instance.take_output(), (vec![], vec![]));
    // Reads: the file position does not move when the result cannot be stored.
    let fd = sys.open(PREOPEN, "f", 0, READ, 0).expect("opens");
    sys.iovec(IOV, BUF, 4);
    assert_eq!(sys.call("fd_read", &[fd, u64::from(IOV), 1, END]), fault);
    assert_eq!(sys.read(fd, 4).as_deref(), Ok(&b"data"[..]));
    // Paths, out-params and buffers of other families.
    assert_eq!(
        sys.call(
            "path_open",
            &[PREOPEN, 0, END - 1, 2, 0, READ, READ, 0, out]
        ),
        fault
    );
    let (p, l) = sys.text(PATH, "f");
    assert_eq!(
        sys.call("path_open", &[PREOPEN, 0, p, l, 0, READ, READ, 0, END]),
        fault,
        "no fd is opened when it cannot be returned"
    );
    assert_eq!(sys.open(PREOPEN, "f", 0, READ, 0), Ok(fd + 1));
    assert_eq!(sys.call("args_get", &[END, u64::from(BUF)]), fault);
    assert_eq!(sys.call("args_sizes_get", &[out, END]), fault);
    assert_eq!(
        sys.call("environ_get", &[END + 10, out]),
        fault,
        "even for 0 bytes"
    );
    assert_eq!(sys.call("random_get", &[u64::from(BUF), END]), fault);
    assert_eq!(sys.call("clock_time_get", &[0, 0, END - 7]), fault);
    assert_eq!(sys.call("fd_fdstat_get", &[1, END - 23]), fault);
    assert_eq!(sys.call("fd_filestat_get", &[1, END - 63]), fault);
    assert_eq!(
        sys.call("fd_readdir", &[PREOPEN, END - 10, 100, 0, out]),
        fault
    );
    assert_eq!(sys.call("fd_prestat_dir_name", &[PREOPEN, END, 1]), fault);
    assert_eq!(
        sys.call("poll_oneoff", &[u64::from(BUF), out, 100_000, out]),
        fault
    );
    assert_eq!(
        sys.call("poll_oneoff", &[u64::from(BUF), out, 0x0800_0000, out]),
        fault
    );
    assert_eq!(sys.instance.state(), InstanceState::Idle, "never a trap");
    assert_eq!(sys.instance.take_output(), (vec![], vec![]));
}

#[test]
fn more_iovecs_than_iov_max_is_einval() {
    let mut sys = Sys::new(WasiConfig::default());
    assert_eq!(
        sys.call("fd_write", &[1, u64::from(IOV), 1025, u64::from(OUT)]),
        e(ERRNO_INVAL),
        "as writev"
    );
    assert_eq!(
        sys.call("fd_write", &[1, u64::from(IOV), 1024, u64::from(OUT)]),
        0
    );
}

#[test]
fn iovec_sum_overflow_is_einval() {
    // 0x8000_0000 + 0x8000_0000 overflows u32; such buffers cannot be in a 4-page memory,
    // but the sum is checked before the ranges, so this is EINVAL, not EFAULT.
    let mut sys = Sys::new(WasiConfig::default());
    sys.iovec(IOV, 0, 0x8000_0000);
    sys.iovec(IOV + 8, 0, 0x8000_0000);
    assert_eq!(
        sys.call("fd_write", &[1, u64::from(IOV), 2, u64::from(OUT)]),
        e(ERRNO_INVAL)
    );
    assert_eq!(
        sys.call("fd_read", &[0, u64::from(IOV), 2, u64::from(OUT)]),
        e(ERRNO_INVAL)
    );
}

#[test]
fn a_guest_without_memory_gets_efault() {
    let sb = sandbox(Limits::default());
    let bytes = wat(r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
        (func (export "write") (result i32) (call $w (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
        (func (export "yield") (result i32) (call $y)))"#);
    let module = load(&sb, &bytes);
    let mut inst = sb
        .instantiate_wasi(&module, &WasiConfig::default())
        .expect("links");
    let Step::Finished(outcome) = inst.start("write", &[]).expect("runs") else {
        panic!("finishes")
    };
    assert_eq!(outcome.results, [Value::I32(i32::from(e(ERRNO_FAULT)))]);
    let Step::Finished(outcome) = inst.start("yield", &[]).expect("runs") else {
        panic!("finishes")
    };
    assert_eq!(outcome.results, [Value::I32(0)]);
}
