//! WASI on the native tier's books (`NativeInstance::wasi_call` / `wasi_resume`), driven
//! directly as the worker's imports drive them, with the guest's memory as a byte buffer: the
//! interpreter's syscalls run against it with the instance's WASI state, the charge is the
//! interpreter's, waits and exits come back as steps, limits end the call.

use nestbox::instance::native::{NativeInstance, NativeWasiStep};
use nestbox::policy::Provenance;
use nestbox::wasi::{Stdin, WasiConfig, WasiWait};
use nestbox::{
    CallOptions, Digest, ErrorCode, Grants, InstanceState, Limits, Sandbox, Step, Value,
};

use crate::harness::wat;

/// Imports of the functions the tests call, in this order (the native numbering).
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")))"#;

const FD_WRITE: usize = 0;
const FD_READ: usize = 1;
const POLL_ONEOFF: usize = 2;
const PROC_EXIT: usize = 3;

const EFAULT: u16 = 21;

fn instance(config: &WasiConfig) -> (Sandbox, NativeInstance) {
    let sandbox = Sandbox::new(Limits::default()).expect("limits");
    let bytes = wat(GUEST);
    let (module, _) = sandbox
        .load_native(&bytes, &Digest::of(&bytes), &Provenance::default())
        .expect("loads for the native tier");
    let instance = sandbox
        .instantiate_native_wasi(&module, config)
        .expect("instantiates with WASI");
    (sandbox, instance)
}

fn i32s(values: &[u32]) -> Vec<Value> {
    values.iter().map(|v| Value::I32(*v as i32)).collect()
}

/// A memory of one page with an iovec at 0 for `len` bytes of `text` at 64.
fn memory_with(text: &[u8]) -> Vec<u8> {
    let mut memory = vec![0u8; 65536];
    memory[0..4].copy_from_slice(&64u32.to_le_bytes());
    memory[4..8].copy_from_slice(&(text.len() as u32).to_le_bytes());
    memory[64..64 + text.len()].copy_from_slice(text);
    memory
}

#[test]
fn the_functions_are_numbered_in_import_order_once_each() {
    let (_s, native) = instance(&WasiConfig::default());
    assert_eq!(
        native.wasi_functions(),
        ["fd_write", "fd_read", "poll_oneoff", "proc_exit"]
    );
    assert!(native.has_wasi());
}

#[test]
fn fd_write_runs_the_interpreters_syscall_and_charges_its_fuel() {
    let (_s, mut native) = instance(&WasiConfig::default());
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let text = vec![b'x'; 100];
    let mut memory = memory_with(&text);
    let step = native
        .wasi_call(FD_WRITE, &i32s(&[1, 0, 1, 16]), &mut memory, fuel)
        .expect("writes");
    // The interpreter's charge: host_call_fuel plus 1 per 64 bytes moved.
    let cost = Limits::default().host_call_fuel + 2;
    match step {
        NativeWasiStep::Return { errno, fuel: left } => {
            assert_eq!(errno, 0);
            assert_eq!(left, fuel - cost as i64);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(memory[16..20], 100u32.to_le_bytes(), "nwritten");
    assert_eq!(native.take_output().0, text);
    // WASI calls are not host calls in the metrics, as in the interpreter.
    assert_eq!(native.progress(fuel).map(|m| m.host_calls), Some(0));
}

#[test]
fn bad_pointers_are_efault_and_write_nothing() {
    let (_s, mut native) = instance(&WasiConfig::default());
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let mut memory = memory_with(b"hello");
    let before = memory.clone();
    for args in [
        [1, 0xffff_fff8, 1, 16], // the iovec list outside
        [1, 0, 1, 65534],        // nwritten outside
        [1, 0, 0x2000_0000, 16], // more iovecs than IOV_MAX: EINVAL, not a huge read
    ] {
        match native.wasi_call(FD_WRITE, &i32s(&args), &mut memory, fuel) {
            Ok(NativeWasiStep::Return { errno, .. }) => {
                assert!(errno == EFAULT || errno == 28, "{args:?}: errno {errno}")
            }
            other => panic!("{args:?}: {other:?}"),
        }
    }
    assert_eq!(memory, before, "nothing was written");
    assert!(native.take_output().0.is_empty());
    assert_eq!(native.state(), InstanceState::Running);
}

#[test]
fn proc_exit_finishes_the_call_with_its_code_and_the_instance_stays_usable() {
    let (_s, mut native) = instance(&WasiConfig::default());
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let mut memory = vec![0u8; 65536];
    match native.wasi_call(PROC_EXIT, &i32s(&[3]), &mut memory, fuel) {
        Ok(NativeWasiStep::Exit(Step::Finished(outcome))) => {
            assert_eq!(outcome.exit_code, Some(3));
            assert!(outcome.results.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(native.state(), InstanceState::Idle);
    native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("a second call starts");
}

#[test]
fn a_call_the_budget_cannot_pay_ends_with_fuel_exhausted_and_copies_nothing() {
    let (_s, mut native) = instance(&WasiConfig::default());
    let options = CallOptions {
        fuel: Some(Limits::default().host_call_fuel + 1),
        ..CallOptions::default()
    };
    let fuel = native
        .start("_start", &[], &options, 65536)
        .expect("starts") as i64;
    let mut memory = memory_with(&[b'y'; 1000]);
    let error = native
        .wasi_call(FD_WRITE, &i32s(&[1, 0, 1, 16]), &mut memory, fuel)
        .expect_err("cannot pay 16 fuel for the bytes");
    assert_eq!(error.code(), ErrorCode::FuelExhausted);
    let metrics = error.details().metrics.clone().expect("metrics");
    assert_eq!(metrics.fuel_consumed, Limits::default().host_call_fuel + 1);
    assert!(native.take_output().0.is_empty(), "nothing was copied");
    assert!(matches!(
        native.state(),
        InstanceState::Poisoned(ErrorCode::FuelExhausted)
    ));
}

#[test]
fn past_the_output_cap_the_call_ends_with_output_limit_keeping_the_bytes_up_to_it() {
    let config = WasiConfig {
        max_stdout_bytes: 4,
        ..WasiConfig::default()
    };
    let (_s, mut native) = instance(&config);
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let mut memory = memory_with(b"0123456789");
    let error = native
        .wasi_call(FD_WRITE, &i32s(&[1, 0, 1, 16]), &mut memory, fuel)
        .expect_err("over the cap");
    assert_eq!(error.code(), ErrorCode::OutputLimit);
    assert_eq!(error.details().limit, Some(4));
    assert_eq!(native.take_output().0, b"0123");
    assert!(matches!(
        native.state(),
        InstanceState::Poisoned(ErrorCode::OutputLimit)
    ));
}

#[test]
fn a_read_of_empty_async_stdin_waits_until_data_is_pushed() {
    let config = WasiConfig {
        stdin: Stdin::Async,
        ..WasiConfig::default()
    };
    let (_s, mut native) = instance(&config);
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let mut memory = memory_with(&[0u8; 8]);
    let left = match native.wasi_call(FD_READ, &i32s(&[0, 0, 1, 16]), &mut memory, fuel) {
        Ok(NativeWasiStep::Wait {
            wait: WasiWait::ReadStdin { max_bytes: 8 },
            fuel,
        }) => fuel,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        native.wasi_wait(),
        Some(WasiWait::ReadStdin { max_bytes: 8 })
    );
    // Another WASI call while one waits is refused, and changes nothing.
    let busy = native
        .wasi_call(FD_WRITE, &i32s(&[1, 0, 1, 16]), &mut memory, left)
        .expect_err("one call at a time");
    assert_eq!(busy.code(), ErrorCode::InvalidArgument);
    // Still nothing to read: it waits again.
    assert!(matches!(
        native.wasi_resume(&mut memory, left),
        Ok(NativeWasiStep::Wait { .. })
    ));
    native.push_stdin(b"hi", false).expect("push");
    match native.wasi_resume(&mut memory, left) {
        Ok(NativeWasiStep::Return { errno: 0, fuel }) => assert_eq!(fuel, left - 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(&memory[64..66], b"hi");
    assert_eq!(memory[16..20], 2u32.to_le_bytes(), "nread");
    assert_eq!(native.wasi_wait(), None);
}

#[test]
fn a_clock_subscription_waits_for_its_time_then_reports_the_event() {
    let (_s, mut native) = instance(&WasiConfig::default());
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let mut memory = vec![0u8; 65536];
    // One subscription at 0: userdata 7, tag clock, monotonic, 5 ms, relative.
    memory[0..8].copy_from_slice(&7u64.to_le_bytes());
    memory[16..20].copy_from_slice(&1u32.to_le_bytes());
    memory[24..32].copy_from_slice(&5_000_000u64.to_le_bytes());
    let left = match native.wasi_call(POLL_ONEOFF, &i32s(&[0, 100, 1, 200]), &mut memory, fuel) {
        Ok(NativeWasiStep::Wait {
            wait: WasiWait::Sleep { duration_ns },
            fuel,
        }) => {
            assert!(duration_ns <= 5_000_000, "{duration_ns}");
            fuel
        }
        other => panic!("{other:?}"),
    };
    std::thread::sleep(std::time::Duration::from_millis(6));
    match native.wasi_resume(&mut memory, left) {
        Ok(NativeWasiStep::Return { errno: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(memory[200..204], 1u32.to_le_bytes(), "one event");
    assert_eq!(memory[100..108], 7u64.to_le_bytes(), "its userdata");
}

#[test]
fn mistyped_arguments_end_the_call_and_calls_outside_one_are_refused() {
    let (_s, mut native) = instance(&WasiConfig::default());
    let mut memory = vec![0u8; 65536];
    let outside = native
        .wasi_call(FD_WRITE, &i32s(&[1, 0, 1, 16]), &mut memory, 0)
        .expect_err("no call runs");
    assert_eq!(outside.code(), ErrorCode::InvalidArgument);
    assert_eq!(native.state(), InstanceState::Idle);
    let fuel = native
        .start("_start", &[], &CallOptions::default(), 65536)
        .expect("starts") as i64;
    let error = native
        .wasi_call(FD_WRITE, &[Value::I64(1)], &mut memory, fuel)
        .expect_err("wrong arguments");
    assert_eq!(error.code(), ErrorCode::HostError);
    assert!(matches!(
        native.state(),
        InstanceState::Poisoned(ErrorCode::HostError)
    ));
}

#[test]
fn wasi_is_linked_only_for_a_wasi_instance_and_cannot_be_granted() {
    let sandbox = Sandbox::new(Limits::default()).expect("limits");
    let bytes = wat(GUEST);
    let (module, _) = sandbox
        .load_native(&bytes, &Digest::of(&bytes), &Provenance::default())
        .expect("loads");
    let plain = sandbox
        .instantiate_native(&module, &Grants::new())
        .expect_err("WASI imports without WASI");
    assert_eq!(plain.code(), ErrorCode::ImportNotGranted);
    let grants = Grants::new()
        .grant(
            "wasi_snapshot_preview1",
            "fd_write",
            nestbox::CapabilityId(1),
            nestbox::value::Signature::new(
                [nestbox::value::ValueType::I32; 4],
                [nestbox::value::ValueType::I32],
            ),
        )
        .expect("grant");
    let config = WasiConfig {
        grants,
        ..WasiConfig::default()
    };
    let granted = sandbox
        .instantiate_native_wasi(&module, &config)
        .expect_err("a grant in WASI's namespace");
    assert_eq!(granted.code(), ErrorCode::InvalidArgument);
}

#[test]
fn a_trapped_call_counts_its_whole_slice_a_cancelled_one_what_ran() {
    // After an engine trap the guest's counter holds its value at the last write-back, so the
    // fuel used since is unknown: the whole slice counts. A cancel happens at a suspension,
    // where the counter is exact.
    let sandbox = Sandbox::new(Limits::default()).expect("limits");
    let bytes = wat(r#"(module (func (export "f")))"#);
    let (module, _) = sandbox
        .load_native(&bytes, &Digest::of(&bytes), &Provenance::default())
        .expect("loads");
    for (code, counted) in [(ErrorCode::Trap, None), (ErrorCode::Cancelled, Some(10))] {
        let mut native = sandbox
            .instantiate_native(&module, &Grants::new())
            .expect("instantiates");
        let slice = native
            .start("f", &[], &CallOptions::default(), 0)
            .expect("starts");
        let left = i64::try_from(slice).expect("slice") - 10;
        let error = native.abort(nestbox::Error::new(code, "ended"), left, 0);
        assert_eq!(error.code(), code);
        let consumed = error.metrics().expect("metrics").fuel_consumed;
        assert_eq!(consumed, counted.unwrap_or(slice), "{code:?}");
    }
}
