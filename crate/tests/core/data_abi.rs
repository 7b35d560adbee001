//! The data ABI (`extism:host/env`, docs/data-abi.md): input and output bytes, limits with
//! codes, and every lie a guest can tell about handles and lengths ending in a clear error,
//! never a host panic. `data_guest.wat` is the guest.

use std::collections::BTreeMap;

use nestbox::{
    CallOptions, DataConfig, Error, ErrorCode, Grants, Instance, InstanceState, Limits, Outcome,
    Sandbox, TrapCode, drive_data,
};

use crate::common::{fixture, load, sandbox};

fn host() -> nestbox::HostFn<
    impl FnMut(&nestbox::HostCall, &mut nestbox::GuestMemory<'_>) -> Result<Vec<nestbox::Value>, Error>,
> {
    nestbox::HostFn(
        |call: &nestbox::HostCall,
         _: &mut nestbox::GuestMemory<'_>|
         -> Result<Vec<nestbox::Value>, Error> {
            panic!("no capability was granted, yet {} was called", call.import)
        },
    )
}

fn guest_with(limits: Limits, data: DataConfig) -> (Sandbox, Instance) {
    let sandbox = sandbox(limits);
    let module = load(&sandbox, &fixture("data_guest"));
    let instance = sandbox
        .instantiate_with_data(&module, &Grants::new(), &data)
        .expect("instantiates");
    (sandbox, instance)
}

fn guest() -> (Sandbox, Instance) {
    guest_with(Limits::default(), DataConfig::default())
}

fn call(instance: &mut Instance, export: &str, input: &[u8]) -> Result<Outcome, Error> {
    drive_data(
        instance,
        export,
        input,
        &CallOptions::default(),
        &mut host(),
    )
}

fn output(instance: &mut Instance, export: &str, input: &[u8]) -> Vec<u8> {
    call(instance, export, input)
        .unwrap_or_else(|e| panic!("{export}: {e}"))
        .output
        .expect("a data call has an output")
}

fn error(instance: &mut Instance, export: &str, input: &[u8]) -> Error {
    match call(instance, export, input) {
        Ok(o) => panic!("{export} should fail, returned {:?}", o.output),
        Err(e) => e,
    }
}

fn assert_oob(e: &Error, function: &str) {
    assert_eq!(e.code(), ErrorCode::Trap, "{e}");
    assert_eq!(
        e.details().trap_code,
        Some(TrapCode::MemoryOutOfBounds),
        "{e}"
    );
    assert!(e.message().contains(function), "{e} names {function}");
    assert!(e.details().metrics.is_some());
}

#[test]
fn input_comes_back_as_output() {
    let (_s, mut i) = guest();
    assert_eq!(output(&mut i, "echo", b"hello, data"), b"hello, data");
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(output(&mut i, "echo", &all), all, "any bytes");
    assert_eq!(output(&mut i, "echo", b""), b"", "empty input");
    assert_eq!(
        output(&mut i, "empty", b"x"),
        b"",
        "empty output without a block"
    );
    assert_eq!(output(&mut i, "lengths", b""), b"");
    assert_eq!(i.state(), InstanceState::Idle);
}

#[test]
fn input_over_its_cap_is_refused_before_the_call_and_the_instance_stays_usable() {
    let limits = Limits {
        max_input_bytes: 8,
        ..Limits::default()
    };
    let (_s, mut i) = guest_with(limits, DataConfig::default());
    let e = error(&mut i, "echo", b"123456789");
    assert_eq!(e.code(), ErrorCode::InputLimit, "{e}");
    assert_eq!(e.details().limit, Some(8));
    assert_eq!(
        output(&mut i, "echo", b"12345678"),
        b"12345678",
        "at the cap"
    );
}

#[test]
fn input_that_does_not_fit_the_data_memory_is_input_limit() {
    let limits = Limits {
        max_memory_bytes: 1 << 16,
        ..Limits::default()
    };
    let (_s, mut i) = guest_with(limits, DataConfig::default());
    let e = error(&mut i, "echo", &vec![0; (1 << 16) + 1]);
    assert_eq!(e.code(), ErrorCode::InputLimit, "{e}");
    assert_eq!(i.state(), InstanceState::Idle);
}

#[test]
fn output_over_its_cap_is_output_limit() {
    let limits = Limits {
        max_output_bytes: 16,
        ..Limits::default()
    };
    let (_s, mut i) = guest_with(limits, DataConfig::default());
    assert_eq!(output(&mut i, "echo", &[7; 16]).len(), 16, "at the cap");
    let e = error(&mut i, "output_input_sized", &[7; 17]);
    assert_eq!(e.code(), ErrorCode::OutputLimit, "{e}");
    assert_eq!(e.details().limit, Some(16));
    assert_eq!(i.state(), InstanceState::Poisoned(ErrorCode::OutputLimit));
}

#[test]
fn every_lie_about_handles_and_lengths_is_a_clear_trap() {
    for (export, function) in [
        ("output_past_block", "output_set"),
        ("output_bad_handle", "output_set"),
        ("load_bad_handle", "load_u8"),
        ("load_zero", "load_u8"),
        ("load_past_block", "load_u8"),
        ("load_after_free", "load_u8"),
        ("store_u64_past_block", "store_u64"),
        ("input_past_end", "input_load_u64"),
        ("input_huge_offset", "input_load_u8"),
        ("error_bad_handle", "error_set"),
    ] {
        let (_s, mut i) = guest();
        let e = error(&mut i, export, b"0123456789");
        assert_oob(&e, function);
        assert_eq!(
            i.state(),
            InstanceState::Poisoned(ErrorCode::Trap),
            "{export}"
        );
    }
}

#[test]
fn output_huge_length_over_the_cap_is_output_limit_first() {
    let limits = Limits {
        max_output_bytes: 1 << 20,
        ..Limits::default()
    };
    let (_s, mut i) = guest_with(limits, DataConfig::default());
    // u64::MAX is over any cap: the cap is checked before the block.
    assert_eq!(
        error(&mut i, "output_huge_length", b"").code(),
        ErrorCode::OutputLimit
    );
}

#[test]
fn alloc_past_the_data_memory_returns_zero() {
    let (_s, mut i) = guest();
    assert_eq!(
        output(&mut i, "alloc_huge", b""),
        b"",
        "status 0: alloc returned 0"
    );
}

#[test]
fn guest_errors_carry_the_message_and_leave_the_instance_usable() {
    let (_s, mut i) = guest();
    let e = error(&mut i, "fail", b"");
    assert_eq!(e.code(), ErrorCode::GuestError, "{e}");
    assert_eq!(e.details().cause.as_deref(), Some("boom"));
    assert!(e.message().contains("status 1"), "{e}");
    let e = error(&mut i, "status3", b"");
    assert_eq!(e.code(), ErrorCode::GuestError);
    assert!(e.message().contains("status 3"), "{e}");
    let e = error(&mut i, "error_status0", b"");
    assert_eq!(e.code(), ErrorCode::GuestError);
    assert_eq!(i.state(), InstanceState::Idle);
    assert_eq!(output(&mut i, "echo", b"ok"), b"ok");
}

#[test]
fn variables_persist_between_calls_and_are_bounded() {
    let (_s, mut i) = guest();
    assert_eq!(output(&mut i, "swap_var", b"first"), b"");
    assert_eq!(output(&mut i, "swap_var", b"second"), b"first");
    assert_eq!(output(&mut i, "swap_var", b"third"), b"second");

    let (_s, mut i) = guest_with(
        Limits::default(),
        DataConfig {
            max_var_bytes: 100,
            ..DataConfig::default()
        },
    );
    let e = error(&mut i, "swap_var", &[1; 200]);
    assert_eq!(e.code(), ErrorCode::HostError, "{e}");
    assert!(e.message().contains("max_var_bytes"), "{e}");

    let (_s, mut i) = guest_with(
        Limits::default(),
        DataConfig {
            max_var_bytes: 0,
            ..DataConfig::default()
        },
    );
    assert!(
        error(&mut i, "swap_var", b"x")
            .message()
            .contains("disabled")
    );
}

#[test]
fn config_and_logs() {
    let config = DataConfig {
        config: BTreeMap::from([("greeting".to_owned(), "bonjour".to_owned())]),
        ..DataConfig::default()
    };
    let (_s, mut i) = guest_with(Limits::default(), config);
    assert_eq!(output(&mut i, "config", b""), b"bonjour");
    let (_s, mut i) = guest();
    assert_eq!(output(&mut i, "config", b""), b"", "unset: no block");
    output(&mut i, "log", b"");
    let logs = i.take_logs();
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].level, logs[0].message.as_str()), ("info", "boom"));
}

#[test]
fn data_calls_need_a_data_export() {
    let (_s, mut i) = guest();
    assert_eq!(error(&mut i, "add", b"").code(), ErrorCode::InvalidArgument);
    assert_eq!(
        error(&mut i, "two_results", b"").code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        error(&mut i, "missing", b"").code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(i.state(), InstanceState::Idle);
    // Numeric calls still work and have no output.
    let o = i
        .call(
            "add",
            &[nestbox::Value::I32(2), nestbox::Value::I32(3)],
            |_, _| Ok(vec![]),
        )
        .expect("numeric call");
    assert_eq!(o.output, None);
}

#[test]
fn data_functions_cost_fuel() {
    let (_s, mut i) = guest();
    let options = CallOptions {
        fuel: Some(1_000_000),
        ..CallOptions::default()
    };
    let e = drive_data(&mut i, "spin_loads", b"", &options, &mut host()).expect_err("spins");
    assert_eq!(e.code(), ErrorCode::FuelExhausted, "{e}");
    let (_s, mut i) = guest();
    let small = call(&mut i, "echo", &[1; 16])
        .expect("echo")
        .metrics
        .fuel_consumed;
    let big = call(&mut i, "echo", &[1; 4096])
        .expect("echo")
        .metrics
        .fuel_consumed;
    assert!(
        big > small + 4000 * nestbox::data::ACCESS_FUEL,
        "{small} {big}"
    );
}

#[test]
fn mistyped_and_unknown_data_imports_fail_closed() {
    let sandbox = sandbox(Limits::default());
    let bad = crate::common::wat(
        r#"(module (import "extism:host/env" "alloc" (func (param i32) (result i32))))"#,
    );
    let module = load(&sandbox, &bad);
    let e = sandbox
        .instantiate(&module, &Grants::new())
        .expect_err("mistyped");
    assert_eq!(e.code(), ErrorCode::SignatureMismatch, "{e}");
    let unknown = crate::common::wat(r#"(module (import "extism:host/env" "reset" (func)))"#);
    let module = load(&sandbox, &unknown);
    let e = sandbox
        .instantiate(&module, &Grants::new())
        .expect_err("unknown");
    assert_eq!(e.code(), ErrorCode::ImportNotGranted, "{e}");
    assert_eq!(
        e.details().imports,
        vec!["extism:host/env.reset".to_owned()]
    );
}

#[test]
fn the_audit_log_records_digests_of_input_and_output() {
    let (s, mut i) = guest();
    output(&mut i, "echo", b"secret");
    let jsonl = s.audit_jsonl();
    assert!(!jsonl.contains("secret"));
    let digest = nestbox::Digest::of(b"secret").to_sri();
    assert!(
        jsonl.contains(&digest),
        "args and results are digests of the bytes"
    );
}
