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

/// Hooks that answer HTTP with a canned response and record what they were asked.
struct FakeHttp {
    asked: Vec<nestbox::HttpRequest>,
    body: Vec<u8>,
}

impl nestbox::Hooks for FakeHttp {
    fn host_call(
        &mut self,
        call: &nestbox::HostCall,
        _: &mut nestbox::GuestMemory<'_>,
    ) -> Result<Vec<nestbox::Value>, Error> {
        panic!("no capability but HTTP, yet {} was called", call.import)
    }

    fn http(&mut self, request: &nestbox::HttpRequest) -> Result<nestbox::HttpResponse, Error> {
        self.asked.push(request.clone());
        Ok(nestbox::HttpResponse {
            status: 201,
            headers: BTreeMap::from([("x-test".to_owned(), "1".to_owned())]),
            body: self.body.clone(),
        })
    }
}

fn http_instance(allowed: &[&str], max_response_bytes: u64) -> (Sandbox, Instance) {
    let mut grant = nestbox::HttpGrant::new(
        nestbox::CapabilityId(9),
        allowed.iter().map(|h| (*h).to_owned()).collect(),
    );
    grant.max_response_bytes = max_response_bytes;
    let data = DataConfig {
        http: Some(grant),
        ..DataConfig::default()
    };
    instance(PLUGIN, &data)
}

fn http_get(instance: &mut Instance, hooks: &mut FakeHttp, url: &str) -> Result<String, Error> {
    let outcome = drive_data(
        instance,
        "http_get",
        url.as_bytes(),
        &CallOptions::default(),
        hooks,
    )?;
    Ok(String::from_utf8(outcome.output.expect("output")).expect("utf-8"))
}

#[test]
fn http_goes_through_the_capability_to_allowed_hosts_only() {
    let (_s, mut i) = http_instance(&["example.com", "*.example.org"], 1 << 20);
    let mut hooks = FakeHttp {
        asked: Vec::new(),
        body: b"hello from the host".to_vec(),
    };
    assert_eq!(
        http_get(&mut i, &mut hooks, "https://example.com/a?b").expect("allowed"),
        "201 hello from the host"
    );
    assert_eq!(
        http_get(&mut i, &mut hooks, "http://API.example.org:8080/x").expect("wildcard, port"),
        "201 hello from the host"
    );
    assert_eq!(hooks.asked.len(), 2);
    assert_eq!(hooks.asked[0].url, "https://example.com/a?b");
    assert_eq!(hooks.asked[0].method, "GET");
    for url in [
        "https://evil.com/",
        "https://example.com.evil.com/",
        "https://example.org/",
        "https://user@example.com/",
        "ftp://example.com/",
        "example.com",
    ] {
        let e = http_get(&mut i, &mut hooks, url).expect_err(url);
        assert_eq!(e.code(), ErrorCode::HostError, "{url}: {e}");
        assert!(e.message().contains("http_request"), "{url}: {e}");
        let (_s, fresh) = http_instance(&["example.com", "*.example.org"], 1 << 20);
        i = fresh;
    }
    assert_eq!(
        hooks.asked.len(),
        2,
        "refused requests never reach the embedder"
    );
}

#[test]
fn http_responses_are_bounded_and_hook_errors_end_the_call() {
    let (_s, mut i) = http_instance(&["*"], 4);
    let mut hooks = FakeHttp {
        asked: Vec::new(),
        body: b"12345".to_vec(),
    };
    let e = http_get(&mut i, &mut hooks, "https://any.where/").expect_err("too big");
    assert_eq!(e.code(), ErrorCode::HostError, "{e}");
    assert!(e.message().contains("max_response_bytes"), "{e}");
    assert_eq!(e.details().capability, Some(9));

    // The default hooks have no HTTP client: HOST_ERROR, capability named.
    let (_s, mut i) = http_instance(&["*"], 1 << 20);
    let e = call(&mut i, "http_get", b"https://any.where/").expect_err("no client");
    assert_eq!(e.code(), ErrorCode::HostError, "{e}");
    assert_eq!(e.details().capability, Some(9));
}

#[test]
fn the_http_grant_is_in_the_audit_log() {
    let (s, _i) = http_instance(&["example.com", "*.example.org"], 1 << 20);
    let jsonl = s.audit_jsonl();
    let grant = jsonl
        .lines()
        .find(|l| l.contains("http_request"))
        .expect("a grant entry for http_request");
    assert!(grant.contains(r#""event":"grant""#), "{grant}");
    assert!(grant.contains("example.com *.example.org"), "{grant}");
}

#[test]
fn a_reactor_kept_for_many_calls_streams_output_capped_per_call() {
    let sandbox = sandbox(Limits::default());
    let module = load(&sandbox, &guest_bytes("c/reactor.wasm"));
    let config = nestbox::WasiConfig {
        preopens: vec![nestbox::Preopen::new("/data")],
        max_stdout_bytes: 50,
        ..nestbox::WasiConfig::default()
    };
    let mut hooks = nestbox::HostFn(|_: &nestbox::HostCall, _: &mut nestbox::GuestMemory<'_>| {
        Err(Error::host_failed("no capabilities"))
    });
    let run = |instance: &mut Instance, hooks: &mut _| {
        let o = drive_data(instance, "append", b"ab", &CallOptions::default(), hooks);
        (o, instance.take_output().0)
    };

    // Streamed (not retained): each call's ~35 bytes fit the 50-byte cap, call after call.
    let mut i = sandbox
        .instantiate_wasi(&module, &config)
        .expect("instantiates");
    i.set_retain_output(false);
    nestbox::drive(
        &mut i,
        "_initialize",
        &[],
        &CallOptions::default(),
        &mut hooks,
    )
    .expect("init");
    assert_eq!(i.take_output().0, b"initialized\n");
    for n in 1..=3 {
        let (outcome, stdout) = run(&mut i, &mut hooks);
        let out = outcome.expect("append").output.expect("output");
        assert_eq!(out, b"ab".repeat(n), "files persist between calls");
        assert_eq!(
            String::from_utf8(stdout).expect("utf-8"),
            format!("call {n}: 2 bytes in, {} in the file\n", 2 * n)
        );
    }

    // Retained: the cap counts the instance's whole life.
    let mut i = sandbox
        .instantiate_wasi(&module, &config)
        .expect("instantiates");
    nestbox::drive(
        &mut i,
        "_initialize",
        &[],
        &CallOptions::default(),
        &mut hooks,
    )
    .expect("init");
    let (first, _) = run(&mut i, &mut hooks);
    assert!(first.is_ok());
    let (second, _) = run(&mut i, &mut hooks);
    assert_eq!(
        second.expect_err("over the cap").code(),
        ErrorCode::OutputLimit
    );
}
