//! stdout and stderr are captured (and drained between steps), capped with `OUTPUT_LIMIT`,
//! and reported as character devices that never block.

use nestbox::{ErrorCode, InstanceState, Limits, Step, WasiConfig};
use wasip1::{
    ERRNO_BADF, ERRNO_SPIPE, FDFLAGS_NONBLOCK, RIGHTS_FD_SEEK, RIGHTS_FD_TELL, RIGHTS_FD_WRITE,
};

use crate::common::{fixture, load, sandbox};
use crate::wasi_util::*;

#[test]
fn a_command_writes_to_stdout_and_stderr() {
    let outcome = run_fixture("wasi_hello", WasiConfig::default()).expect("runs");
    assert_eq!(outcome.exit_code, 0, "returning from _start is exit code 0");
    assert_eq!(outcome.stdout, b"hello\n");
    assert_eq!(outcome.stderr, b"oops\n");
    assert!(outcome.files.is_empty());
    assert!(outcome.metrics.fuel_consumed > 2 * Limits::default().host_call_fuel);
}

#[test]
fn stdio_is_a_character_device_without_seek() {
    let mut sys = Sys::new(WasiConfig::default());
    for fd in 0..3u64 {
        assert_eq!(sys.call("fd_fdstat_get", &[fd, u64::from(OUT)]), 0);
        let stat = sys.get(OUT, 24);
        assert_eq!(stat[0], wasip1::FILETYPE_CHARACTER_DEVICE.raw(), "fd {fd}");
        let rights = u64::from_le_bytes(stat[8..16].try_into().expect("8"));
        assert_eq!(
            rights & (RIGHTS_FD_SEEK | RIGHTS_FD_TELL),
            0,
            "a tty for isatty()"
        );
        assert_eq!(rights & RIGHTS_FD_WRITE != 0, fd != 0);
        assert_eq!(
            sys.call("fd_seek", &[fd, 0, 0, u64::from(OUT)]),
            e(ERRNO_SPIPE)
        );
    }
    // Go sets O_NONBLOCK on stdio at start-up; it is accepted and reported back.
    let nonblock = u64::from(FDFLAGS_NONBLOCK);
    assert_eq!(sys.call("fd_fdstat_set_flags", &[1, nonblock]), 0);
    assert_eq!(sys.call("fd_fdstat_get", &[1, u64::from(OUT)]), 0);
    assert_eq!(
        u16::from_le_bytes(sys.get(OUT + 2, 2).try_into().expect("2")),
        FDFLAGS_NONBLOCK
    );
    assert_eq!(sys.write(1, b"still works"), Ok(11));
    assert_eq!(sys.read(1, 4), Err(e(ERRNO_BADF)), "stdout is not readable");
    assert_eq!(
        sys.write(0, b"x"),
        Err(e(ERRNO_BADF)),
        "stdin is not writable"
    );
    assert_eq!(
        sys.instance.take_output(),
        (b"still works".to_vec(), vec![])
    );
}

#[test]
fn output_over_the_cap_ends_the_call_keeping_the_bytes_up_to_it() {
    let config = WasiConfig {
        max_stdout_bytes: 2_500,
        ..WasiConfig::default()
    };
    let error = run_fixture("wasi_print_loop", config.clone()).expect_err("over the cap");
    assert_eq!(error.code(), ErrorCode::OutputLimit);
    assert_eq!(error.details().limit, Some(2_500));
    assert!(error.metrics().is_some());

    // Step by step, the bytes up to the cap can still be taken after the error.
    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_print_loop"));
    let mut inst = sb.instantiate_wasi(&module, &config).expect("instantiates");
    let error = inst
        .call("_start", &[], |_, _| unreachable!())
        .expect_err("over the cap");
    assert_eq!(error.code(), ErrorCode::OutputLimit);
    let (stdout, stderr) = inst.take_output();
    assert_eq!(stdout, vec![b'x'; 2_500]);
    assert!(stderr.is_empty());
    assert_eq!(
        inst.state(),
        InstanceState::Poisoned(ErrorCode::OutputLimit)
    );
}

#[test]
fn stderr_has_its_own_cap() {
    let mut sys = Sys::new(WasiConfig {
        max_stderr_bytes: 4,
        ..WasiConfig::default()
    });
    assert_eq!(sys.write(1, b"stdout is not capped at 4"), Ok(25));
    let error = sys.try_call_write(2, b"123456").expect_err("over");
    assert_eq!(error.code(), ErrorCode::OutputLimit);
    assert_eq!(
        sys.instance.take_output(),
        (b"stdout is not capped at 4".to_vec(), b"1234".to_vec())
    );
}

#[test]
fn output_streams_between_steps() {
    let limits = Limits {
        fuel_per_slice: 5_000,
        ..Limits::default()
    };
    let sb = sandbox(limits);
    let module = load(&sb, &fixture("wasi_print_loop"));
    let config = WasiConfig {
        max_stdout_bytes: 50_000,
        ..WasiConfig::default()
    };
    let mut inst = sb.instantiate_wasi(&module, &config).expect("instantiates");
    let mut chunks = Vec::new();
    let mut step = inst.start("_start", &[]);
    let error = loop {
        match step {
            Ok(Step::Yield) => {
                assert_eq!(inst.wasi_wait(), None, "a fuel slice, not a wasi wait");
                chunks.push(inst.take_output().0);
                step = inst.resume();
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(error) => break error,
        }
    };
    assert_eq!(error.code(), ErrorCode::OutputLimit);
    chunks.push(inst.take_output().0);
    let non_empty = chunks.iter().filter(|c| !c.is_empty()).count();
    assert!(non_empty >= 5, "output arrived in {non_empty} chunks");
    assert_eq!(chunks.concat(), vec![b'x'; 50_000]);
}

impl Sys {
    fn try_call_write(
        &mut self,
        fd: u64,
        bytes: &[u8],
    ) -> Result<Vec<nestbox::Value>, nestbox::Error> {
        self.put(BUF, bytes);
        self.iovec(IOV, BUF, bytes.len() as u32);
        self.try_call("fd_write", &[fd, u64::from(IOV), 1, u64::from(OUT)])
    }
}
