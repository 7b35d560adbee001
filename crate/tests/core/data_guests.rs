//! Real data guests, built from source by `tests/data/build.sh` (`make guests`): an Extism
//! plugin from crates.io's extism-pdk, unchanged, and a C guest declaring the imports by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nestbox::{
    CallOptions, DataConfig, Error, ErrorCode, Grants, HostFn, Instance, InstanceState, Limits,
    Outcome, Sandbox, drive_data,
};

use crate::common::{load, sandbox};

fn guest_bytes(path: &str) -> Vec<u8> {
    let dir = std::env::var_os("DATA_GUESTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/data-guests"),
        PathBuf::from,
    );
    let file = dir.join(path);
    std::fs::read(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the data guests first with `make guests` (or tests/data/build.sh)",
            file.display()
        )
    })
}

fn instance(path: &str, data: &DataConfig) -> (Sandbox, Instance) {
    let sandbox = sandbox(Limits::default());
    let module = load(&sandbox, &guest_bytes(path));
    let instance = sandbox
        .instantiate_with_data(&module, &Grants::new(), data)
        .expect("instantiates");
    (sandbox, instance)
}

fn call(instance: &mut Instance, export: &str, input: &[u8]) -> Result<Outcome, Error> {
    drive_data(
        instance,
        export,
        input,
        &CallOptions::default(),
        &mut HostFn(|_: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| {
            Err(Error::host_failed("no capabilities"))
        }),
    )
}

fn text(instance: &mut Instance, export: &str, input: &str) -> String {
    let out = call(instance, export, input.as_bytes())
        .unwrap_or_else(|e| panic!("{export}: {e}"))
        .output
        .expect("output");
    String::from_utf8(out).expect("utf-8")
}

const PLUGIN: &str = "rust/data_plugin.wasm";

#[test]
fn extism_count_vowels_returns_what_extism_returns() {
    // extism/plugins' count_vowels under Extism: {"count":3,"total":3,"vowels":"aeiouAEIOU"}
    // for "Hello World!", the total growing by the count at every call (libextism README).
    let (_s, mut i) = instance(PLUGIN, &DataConfig::default());
    assert_eq!(
        text(&mut i, "count_vowels", "Hello"),
        r#"{"count":2,"total":2,"vowels":"aeiouAEIOU"}"#
    );
    assert_eq!(
        text(&mut i, "count_vowels", "Hello World!"),
        r#"{"count":3,"total":5,"vowels":"aeiouAEIOU"}"#
    );
    let config = DataConfig {
        config: BTreeMap::from([("vowels".to_owned(), "aeiouyAEIOUY".to_owned())]),
        ..DataConfig::default()
    };
    let (_s, mut i) = instance(PLUGIN, &config);
    assert_eq!(
        text(&mut i, "count_vowels", "Yay"),
        r#"{"count":3,"total":3,"vowels":"aeiouyAEIOUY"}"#
    );
}

#[test]
fn extism_plugin_bytes_errors_logs_and_config() {
    let (_s, mut i) = instance(PLUGIN, &DataConfig::default());
    let all: Vec<u8> = (0..=255).cycle().take(10_000).collect();
    assert_eq!(call(&mut i, "echo", &all).expect("echo").output, Some(all));
    let e = call(&mut i, "fail", b"no thanks").expect_err("fails");
    assert_eq!(e.code(), ErrorCode::GuestError, "{e}");
    assert_eq!(e.details().cause.as_deref(), Some("no thanks"));
    assert!(e.message().contains("status 7"), "{e}");
    assert_eq!(
        i.state(),
        InstanceState::Idle,
        "a guest error is a result of a normal return"
    );
    assert_eq!(text(&mut i, "greet", "ada"), "hello, ada");
    let logs = i.take_logs();
    assert!(
        logs.iter()
            .any(|l| l.level == "info" && l.message == "greeting ada"),
        "{logs:?}"
    );
}

#[test]
fn extism_plugin_http_needs_a_capability() {
    let (_s, mut i) = instance(PLUGIN, &DataConfig::default());
    let e = call(&mut i, "http_get", b"https://example.com/").expect_err("no http");
    assert_eq!(e.code(), ErrorCode::HostError, "{e}");
    assert!(e.message().contains("not allowed"), "{e}");
}

#[test]
fn c_guest_uses_the_same_abi() {
    let (_s, mut i) = instance("c/guest.wasm", &DataConfig::default());
    assert_eq!(text(&mut i, "upper", "Hello, C"), "HELLO, C");
    assert_eq!(
        text(&mut i, "echo", "0123456789abcdef!"),
        "0123456789abcdef!"
    );
    let e = call(&mut i, "fail", b"").expect_err("fails");
    assert_eq!(e.code(), ErrorCode::GuestError);
    assert_eq!(
        e.details().cause.as_deref(),
        Some("c guest failed on purpose")
    );
    for export in ["lie_length", "lie_pointer"] {
        let (_s, mut i) = instance("c/guest.wasm", &DataConfig::default());
        let e = call(&mut i, export, b"").expect_err(export);
        assert_eq!(e.code(), ErrorCode::Trap, "{export}: {e}");
    }
}
