//! `nestbox call MODULE EXPORT [INPUT]`: data calls of the guests `tests/data/build.sh` builds
//! (`make guests`): an Extism plugin from extism-pdk and a C guest.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn guest(path: &str) -> String {
    let dir = std::env::var_os("DATA_GUESTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/data-guests"),
        PathBuf::from,
    );
    let file = dir.join(path);
    assert!(
        file.is_file(),
        "{} is missing: build the data guests first with `make guests` (or tests/data/build.sh)",
        file.display()
    );
    file.to_string_lossy().into_owned()
}

fn plugin() -> String {
    guest("rust/data_plugin.wasm")
}

fn c_guest() -> String {
    guest("c/guest.wasm")
}

fn nestbox(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .arg("call")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nestbox");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("nestbox ran")
}

fn ok(args: &[&str]) -> Vec<u8> {
    let o = nestbox(args, b"");
    assert!(
        o.status.success(),
        "{args:?}: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn failed(args: &[&str], status: i32) -> String {
    let o = nestbox(args, b"");
    assert_eq!(
        o.status.code(),
        Some(status),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    stderr.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn count_vowels_prints_what_extism_prints() {
    let p = plugin();
    assert_eq!(
        ok(&[&p, "count_vowels", "Hello"]),
        br#"{"count":2,"total":2,"vowels":"aeiouAEIOU"}"#
    );
    // The variable `total` persists between calls on one instance, as in Extism.
    let out = ok(&["--repeat", "3", &p, "count_vowels", "Hello World!"]);
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        concat!(
            r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#,
            r#"{"count":3,"total":6,"vowels":"aeiouAEIOU"}"#,
            r#"{"count":3,"total":9,"vowels":"aeiouAEIOU"}"#
        )
    );
    assert_eq!(
        ok(&["--config", "vowels=aeiouyAEIOUY", &p, "count_vowels", "Yay"]),
        br#"{"count":3,"total":3,"vowels":"aeiouyAEIOUY"}"#
    );
}

#[test]
fn input_from_a_file_or_stdin_and_bytes_out_unchanged() {
    let dir = std::env::temp_dir().join(format!("nestbox-call-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("input.bin");
    let bytes: Vec<u8> = (0..=255).collect();
    std::fs::write(&file, &bytes).expect("write");
    let p = plugin();
    assert_eq!(
        ok(&["--input-file", &file.to_string_lossy(), &p, "echo"]),
        bytes
    );
    let o = nestbox(&["--input-file", "-", &c_guest(), "upper"], b"from stdin");
    assert_eq!(o.stdout, b"FROM STDIN");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn logs_go_to_stderr() {
    let o = nestbox(&[&plugin(), "greet", "ada"], b"");
    assert_eq!(o.stdout, b"hello, ada");
    assert!(String::from_utf8_lossy(&o.stderr).contains("nestbox: log info: greeting ada"));
}

#[test]
fn every_failure_has_its_code_and_status() {
    let (p, c) = (plugin(), c_guest());
    assert_eq!(
        failed(&[&p, "fail", "nope"], 126),
        r#"nestbox: GUEST_ERROR: "fail" failed with status 7: nope"#
    );
    let line = failed(&["--max-input-bytes", "3", &c, "upper", "abcd"], 125);
    assert!(
        line.starts_with("nestbox: INPUT_LIMIT:") && line.contains("--max-input-bytes"),
        "{line}"
    );
    let line = failed(&["--max-output-bytes", "2", &c, "echo", "abc"], 126);
    assert!(
        line.starts_with("nestbox: OUTPUT_LIMIT:") && line.contains("--max-output-bytes"),
        "{line}"
    );
    let line = failed(&[&c, "lie_length"], 126);
    assert!(
        line.starts_with("nestbox: TRAP (memory_out_of_bounds): extism:host/env output_set"),
        "{line}"
    );
    let line = failed(&[&c, "lie_pointer"], 126);
    assert!(line.contains("load_u8"), "{line}");
    let line = failed(&[&p, "http_get", "https://example.com/"], 126);
    assert!(
        line.starts_with("nestbox: HOST_ERROR:") && line.contains("not allowed"),
        "{line}"
    );
    let line = failed(&["--fuel", "1000", &p, "count_vowels", "x"], 126);
    assert!(line.starts_with("nestbox: FUEL_EXHAUSTED:"), "{line}");
    assert!(failed(&[&c, "nope"], 125).contains("INVALID_ARGUMENT"));
    assert!(failed(&[&c], 125).contains("missing EXPORT"));
    // The digest of the empty string: not this module's.
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let line = failed(&["--integrity", empty, &c, "echo"], 125);
    assert!(line.starts_with("nestbox: INTEGRITY_MISMATCH:"), "{line}");
}

#[test]
fn a_wasi_reactor_initializes_once_and_keeps_its_files_between_calls() {
    let r = guest("c/reactor.wasm");
    let o = nestbox(
        &[
            "--wasi",
            "--preopen",
            "/data",
            "--repeat",
            "3",
            &r,
            "append",
            "ab",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "initialized\ncall 1: 2 bytes in, 2 in the file\nab\
         call 2: 2 bytes in, 4 in the file\nabab\
         call 3: 2 bytes in, 6 in the file\nababab"
    );
    // Without the preopen its fopen fails: its status is a GUEST_ERROR.
    assert!(failed(&["--wasi", &r, "append", "x"], 126).contains("status 2"));
    assert!(
        failed(&["--preopen", "/data", &r, "append", "x"], 125).contains("--preopen needs --wasi")
    );
}

#[test]
fn trace_writes_a_line_per_call() {
    let p = plugin();
    let file =
        std::env::temp_dir().join(format!("nestbox-call-trace-{}.jsonl", std::process::id()));
    let f = file.to_string_lossy().into_owned();
    ok(&["--repeat", "2", "--trace", &f, &p, "count_vowels", "Hello"]);
    let text = std::fs::read_to_string(&file).expect("trace file");
    let traces: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(traces.len(), 2);
    for trace in &traces {
        let root = &trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(root["name"], "call count_vowels");
        let kind = root["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .find(|a| a["key"] == "nestbox.call_kind")
            .map(|a| a["value"]["stringValue"].clone());
        assert_eq!(kind, Some(serde_json::json!("data")));
    }
    assert_ne!(
        traces[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
        traces[1]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
        "each call is its own trace"
    );
    std::fs::remove_file(&file).ok();
}
