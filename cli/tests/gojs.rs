//! Go js/wasm guests (tests/gojs, built by `make guests`: tests/gojs/build.sh) natively, through
//! the core's gojs membrane and through `nestbox go`. Without the guests this test fails and
//! says how to build them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nestbox::{
    CallOptions, Digest, Error, ErrorCode, GoConfig, GoValue, GuestMemory, Hooks, HostCall,
    Instance, Limits, Sandbox, Value, drive_go_export, drive_go_main, drive_go_timers,
};

fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/gojs-guests")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (build the Go guests: make guests, or tests/gojs/build.sh)",
            path.display()
        )
    })
}

struct Caps {
    calls: Vec<(String, Vec<GoValue>)>,
    revoked: bool,
}

impl Hooks for Caps {
    fn host_call(&mut self, c: &HostCall, _: &mut GuestMemory<'_>) -> Result<Vec<Value>, Error> {
        panic!("numeric host call {}", c.import)
    }
    fn go_call(&mut self, call: &HostCall, args: &[GoValue]) -> Result<GoValue, Error> {
        self.calls.push((call.import.clone(), args.to_vec()));
        if self.revoked {
            return Err(Error::new(ErrorCode::CapabilityRevoked, "revoked"));
        }
        match (call.capability.0, args.first()) {
            (1, Some(GoValue::Number(n))) => Ok(GoValue::Number(n * 2.0)),
            (2, Some(GoValue::Object(o))) => Ok(GoValue::String(format!(
                "hello {:?} {:?}",
                o.get("name"),
                o.get("n")
            ))),
            _ => Ok(GoValue::Undefined),
        }
    }
}

fn obj(items: &[(&str, GoValue)]) -> GoValue {
    GoValue::Object(
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn start(name: &str, limits: Limits) -> (Sandbox, Instance, Caps) {
    let sandbox = Sandbox::new(limits).expect("sandbox");
    let bytes = guest(name);
    let module = sandbox.load(&bytes, &Digest::of(&bytes)).expect("load");
    let mut globals = BTreeMap::new();
    globals.insert(
        "host".to_owned(),
        obj(&[
            ("double", GoValue::Capability(1)),
            ("greet", GoValue::Capability(2)),
            ("tick", GoValue::Capability(3)),
        ]),
    );
    globals.insert(
        "config".to_owned(),
        obj(&[
            ("name", GoValue::String("box".into())),
            ("size", GoValue::Number(3.0)),
            (
                "tags",
                GoValue::Array(vec![
                    GoValue::String("a".into()),
                    GoValue::String("b".into()),
                ]),
            ),
        ]),
    );
    let config = GoConfig {
        globals,
        ..GoConfig::default()
    };
    let mut instance = sandbox
        .instantiate_go(&module, &config)
        .expect("instantiate");
    let mut caps = Caps {
        calls: Vec::new(),
        revoked: false,
    };
    let main = drive_go_main(&mut instance, &CallOptions::default(), &mut caps).expect("main");
    assert_eq!(main.exit_code, None, "main blocks in select {{}}");
    (sandbox, instance, caps)
}

fn call(
    instance: &mut Instance,
    caps: &mut Caps,
    name: &str,
    args: &[GoValue],
) -> Result<GoValue, Error> {
    drive_go_export(instance, name, args, &CallOptions::default(), caps)
        .map(|o| o.go_result.expect("a Go result"))
}

#[test]
fn exports_are_listed_and_called_with_json_like_values_bytes_and_capabilities() {
    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    let (stdout, _) = inst.take_output();
    assert_eq!(String::from_utf8_lossy(&stdout), "exports registered: 12\n");
    assert_eq!(
        inst.go_exports(),
        [
            "exit",
            "hello",
            "jsonRoundTrip",
            "panicLater",
            "panics",
            "readConfig",
            "reverseBytes",
            "spin",
            "state",
            "strlen",
            "useCapability",
            "watch"
        ]
    );
    let s = |t: &str| GoValue::String(t.into());
    assert_eq!(
        call(&mut inst, &mut caps, "strlen", &[s("héllo, 世界")]).unwrap(),
        GoValue::Number(9.0)
    );
    let json = call(
        &mut inst,
        &mut caps,
        "jsonRoundTrip",
        &[s(r#"{"a":[1,2],"b":"x"}"#)],
    )
    .unwrap();
    let GoValue::Object(o) = json else {
        panic!("{json:?}")
    };
    assert_eq!(o["json"], s(r#"{"a":[1,2],"b":"x","seenByGo":true}"#));
    assert_eq!(
        o["value"],
        obj(&[
            (
                "a",
                GoValue::Array(vec![GoValue::Number(1.0), GoValue::Number(2.0)])
            ),
            ("b", s("x")),
            ("seenByGo", GoValue::Bool(true)),
        ])
    );
    let bytes = call(
        &mut inst,
        &mut caps,
        "reverseBytes",
        &[GoValue::Bytes(vec![1, 2, 250])],
    )
    .unwrap();
    assert_eq!(
        bytes,
        obj(&[
            ("bytes", GoValue::Bytes(vec![250, 2, 1])),
            ("sum", GoValue::Number(253.0))
        ])
    );
    let used = call(
        &mut inst,
        &mut caps,
        "useCapability",
        &[GoValue::Number(21.0)],
    )
    .unwrap();
    assert_eq!(
        used,
        obj(&[
            ("doubled", GoValue::Number(42.0)),
            (
                "greeting",
                s("hello Some(String(\"gopher\")) Some(Number(42.0))")
            )
        ])
    );
    assert_eq!(
        caps.calls[0],
        ("gojs.host.double".to_owned(), vec![GoValue::Number(21.0)])
    );
    assert_eq!(
        call(&mut inst, &mut caps, "readConfig", &[]).unwrap(),
        s("box:3:b")
    );
    assert_eq!(
        call(&mut inst, &mut caps, "hello", &[s("nest")]).unwrap(),
        s("NEST")
    );
    let (stdout, stderr) = inst.take_output();
    assert_eq!(String::from_utf8_lossy(&stdout), "hello from Go, nest\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "to stderr\n");
    // The goroutine ran before main registered; the ticker runs whenever Go runs later.
    std::thread::sleep(std::time::Duration::from_millis(35));
    let state = call(&mut inst, &mut caps, "state", &[]).unwrap();
    let GoValue::Object(st) = state else { panic!() };
    assert_eq!(st["background"], s("goroutine finished after a sleep"));
    let GoValue::Number(ticks) = st["ticks"] else {
        panic!()
    };
    assert!(ticks >= 1.0, "the ticker fired in Go's scheduler: {ticks}");
    // Unknown export: INVALID_ARGUMENT, the instance stays usable.
    let e = call(&mut inst, &mut caps, "nope", &[]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(
        call(&mut inst, &mut caps, "strlen", &[s("ok")]).unwrap(),
        GoValue::Number(2.0)
    );
}

#[test]
fn timers_fire_while_the_program_is_idle_and_a_goroutines_panic_there_is_a_trap() {
    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    // No timer is due right after main: running the timers enters nothing.
    let idle = drive_go_timers(&mut inst, &CallOptions::default(), &mut caps).unwrap();
    assert_eq!(idle.metrics.fuel_consumed, 0);
    assert_eq!(
        call(&mut inst, &mut caps, "watch", &[GoValue::Number(3.0)]).unwrap(),
        GoValue::Null
    );
    let ticks = |caps: &Caps| -> Vec<GoValue> {
        caps.calls
            .iter()
            .filter(|(import, _)| import == "gojs.host.tick")
            .flat_map(|(_, args)| args.clone())
            .collect()
    };
    assert!(
        ticks(&caps).is_empty(),
        "watch returned before its goroutine ran"
    );
    // What an embedder does between calls: wait for the next timer, run what is due.
    let mut runs = 0;
    while ticks(&caps).len() < 3 {
        let ms = inst
            .go_next_timer_ms()
            .expect("a timer is pending while the goroutine sleeps");
        assert!(ms <= 10_000, "the next timer is {ms} ms away");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        drive_go_timers(&mut inst, &CallOptions::default(), &mut caps).unwrap();
        runs += 1;
        assert!(runs < 200, "three 5 ms sleeps took {runs} runs");
    }
    assert_eq!(
        ticks(&caps),
        [1.0, 2.0, 3.0].map(GoValue::Number),
        "host.tick(1), (2), (3) in order, called from the idle goroutine"
    );
    // The program is usable in between and after.
    assert_eq!(
        call(
            &mut inst,
            &mut caps,
            "strlen",
            &[GoValue::String("abc".into())]
        )
        .unwrap(),
        GoValue::Number(3.0)
    );
    // A goroutine that panics while idle: the timers' run is the TRAP, and the program is over.
    call(&mut inst, &mut caps, "panicLater", &[]).unwrap();
    let error = loop {
        let ms = inst
            .go_next_timer_ms()
            .expect("the goroutine's sleep is pending");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        match drive_go_timers(&mut inst, &CallOptions::default(), &mut caps) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(error.code(), ErrorCode::Trap);
    assert_eq!(error.message(), "Go panic: a goroutine gave up");
    assert_eq!(
        inst.go_next_timer_ms(),
        None,
        "no timers once the program exited"
    );
    let after = drive_go_timers(&mut inst, &CallOptions::default(), &mut caps).unwrap_err();
    assert_eq!(after.code(), ErrorCode::Poisoned);
}

#[test]
fn a_panic_is_a_trap_with_gos_message_and_exit_is_an_exit_code() {
    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    let e = call(
        &mut inst,
        &mut caps,
        "panics",
        &[GoValue::String("x".into())],
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Trap);
    assert_eq!(e.message(), "Go panic: gopher says no: x");
    assert!(
        e.details()
            .cause
            .as_deref()
            .unwrap_or("")
            .contains("goroutine"),
        "{:?}",
        e.details().cause
    );
    let again = call(
        &mut inst,
        &mut caps,
        "strlen",
        &[GoValue::String("x".into())],
    )
    .unwrap_err();
    assert_eq!(again.code(), ErrorCode::Poisoned);

    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    let out = drive_go_export(
        &mut inst,
        "exit",
        &[GoValue::Number(3.0)],
        &CallOptions::default(),
        &mut caps,
    )
    .expect("exit is a result");
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(inst.go_exit_code(), Some(3));
    let after = call(
        &mut inst,
        &mut caps,
        "strlen",
        &[GoValue::String("x".into())],
    )
    .unwrap_err();
    assert_eq!(after.code(), ErrorCode::Poisoned);
}

#[test]
fn an_endless_export_ends_at_its_fuel_or_deadline_and_a_revoked_capability_ends_the_call() {
    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    let options = CallOptions {
        fuel: Some(50_000_000),
        ..CallOptions::default()
    };
    let e = drive_go_export(&mut inst, "spin", &[], &options, &mut caps).unwrap_err();
    assert_eq!(e.code(), ErrorCode::FuelExhausted);

    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    let options = CallOptions {
        timeout_ms: Some(100),
        ..CallOptions::default()
    };
    let e = drive_go_export(&mut inst, "spin", &[], &options, &mut caps).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout);

    let (_sb, mut inst, mut caps) = start("exports", Limits::default());
    caps.revoked = true;
    let e = call(
        &mut inst,
        &mut caps,
        "useCapability",
        &[GoValue::Number(1.0)],
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::CapabilityRevoked);
    assert_eq!(e.details().capability, Some(1));
}

#[test]
fn the_hostile_guest_reaches_nothing_through_js_global() {
    let (_sb, mut inst, mut caps) = start("hostile", Limits::default());
    let probe = call(&mut inst, &mut caps, "probe", &[]).unwrap();
    let GoValue::Object(results) = probe else {
        panic!("{probe:?}")
    };
    assert_eq!(results.len(), 30);
    for (k, v) in &results {
        let GoValue::String(v) = v else {
            panic!("{k}: {v:?}")
        };
        if k.starts_with("get:") || !k.contains(':') {
            assert_eq!(v, "undefined", "{k}");
        } else {
            assert!(v.starts_with("error: "), "{k}: {v}");
        }
    }
    assert!(caps.calls.is_empty(), "no capability was called");
}

#[test]
fn forged_and_reserved_names_are_refused() {
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let bytes = guest("exports");
    let module = sandbox.load(&bytes, &Digest::of(&bytes)).expect("load");
    let mut globals = BTreeMap::new();
    globals.insert("fs".to_owned(), GoValue::Null);
    let e = sandbox
        .instantiate_go(
            &module,
            &GoConfig {
                globals,
                ..GoConfig::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // The same module without gojs is a module with ungranted imports.
    let e = sandbox
        .instantiate(&module, &nestbox::Grants::new())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ImportNotGranted);
}

fn nestbox(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn guest_path(name: &str) -> String {
    let p: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/gojs-guests/{name}.wasm"));
    guest(name);
    p.display().to_string()
}

#[test]
fn the_cli_calls_exports_and_reports_panics_exits_and_limits() {
    let exports = guest_path("exports");
    let (code, stdout, _) = nestbox(&[
        "go",
        &exports,
        "--cap",
        "host.double=echo",
        "--cap",
        "host.greet=\"hi\"",
        "--call",
        "strlen",
        "\"héllo\"",
        "--call",
        "useCapability",
        "21",
        "--call",
        "reverseBytes",
        "{\"$bytes\":[1,2,3]}",
    ]);
    assert_eq!(code, 0, "{stdout}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["result"], 5.0);
    assert_eq!(lines[1]["result"]["doubled"], 21.0);
    assert_eq!(lines[1]["result"]["greeting"], "hi");
    assert_eq!(
        lines[2]["result"]["bytes"]["$bytes"],
        serde_json::json!([3, 2, 1])
    );
    let (code, _, stderr) = nestbox(&["go", &exports, "--call", "panics", "\"boom\""]);
    assert_eq!(code, 126);
    assert!(
        stderr.contains("TRAP") && stderr.contains("gopher says no: boom"),
        "{stderr}"
    );
    let (code, _, _) = nestbox(&["go", &exports, "--call", "exit", "7"]);
    assert_eq!(code, 7);
    let (code, _, stderr) = nestbox(&["go", &exports, "--fuel", "30000000", "--call", "spin"]);
    assert_eq!(code, 126);
    assert!(stderr.contains("FUEL_EXHAUSTED"), "{stderr}");
    let (code, stdout, _) = nestbox(&[
        "go",
        &guest_path("hostile"),
        "--cap",
        "host.double=echo",
        "--call",
        "probe",
    ]);
    assert_eq!(code, 0);
    let probe: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    for name in ["window", "document", "fetch", "eval", "Function"] {
        assert_eq!(probe["result"][format!("get:{name}")], "undefined");
    }
    assert!(
        probe["result"]["call:eval"]
            .as_str()
            .unwrap()
            .starts_with("error:")
    );
}
