//! The wasm-bindgen layer in a real browser: `Core` driven from a dedicated worker, exactly as
//! the worker script drives it — plain JavaScript values in, plain records (or thrown
//! `{code, message, details}` records) out.
//!
//! Run with `wasm-pack test --headless --chrome crate --test web`.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Object, Reflect, Uint8Array};
use nestbox::Digest;
use nestbox::bindings::Core;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

// The trust policy, the audit log and failHost's codes.
#[path = "web/policy_audit.rs"]
mod policy_audit;

// ---- helpers: build and read plain JavaScript values ----

fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &JsValue::from_str(k), v).expect("set on a fresh object");
    }
    o.into()
}

fn arr(items: &[JsValue]) -> JsValue {
    items.iter().collect::<Array>().into()
}

fn strs(items: &[&str]) -> JsValue {
    items
        .iter()
        .map(|s| JsValue::from_str(s))
        .collect::<Array>()
        .into()
}

fn num(n: f64) -> JsValue {
    JsValue::from_f64(n)
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).expect("readable property")
}

fn get_str(v: &JsValue, key: &str) -> String {
    get(v, key)
        .as_string()
        .unwrap_or_else(|| panic!("{key} is not a string in {v:?}"))
}

fn get_num(v: &JsValue, key: &str) -> f64 {
    get(v, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v:?}"))
}

/// The `code` of a thrown record (and a check that it is a plain record).
fn code(err: &JsValue) -> String {
    assert!(get(err, "message").is_string(), "no message in {err:?}");
    assert!(get(err, "details").is_object(), "no details in {err:?}");
    get_str(err, "code")
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("fixture is valid WAT")
}

fn core_with(limits: JsValue) -> Core {
    Core::new(limits, JsValue::UNDEFINED).expect("valid limits")
}

/// Loads `bytes` with their own digest; returns the load record.
fn load(core: &mut Core, bytes: &[u8]) -> JsValue {
    let digest = Digest::of(bytes).to_sri();
    core.load(
        Uint8Array::from(bytes).into(),
        JsValue::from_str(&digest),
        JsValue::UNDEFINED,
    )
    .expect("module loads")
}

fn load_id(core: &mut Core, wat: &str) -> JsValue {
    get(&load(core, &wasm(wat)), "moduleId")
}

fn instantiate(core: &mut Core, module_id: &JsValue, grants: JsValue) -> JsValue {
    JsValue::from(
        core.instantiate(module_id.clone(), grants)
            .expect("instantiates"),
    )
}

/// Drives a call to its end as the worker does: resumes every yield, answers every host call
/// with `host(step)`. Returns the finished step.
fn drive(
    core: &mut Core,
    id: &JsValue,
    mut step: JsValue,
    mut host: impl FnMut(&JsValue) -> JsValue,
) -> Result<JsValue, JsValue> {
    loop {
        step = match get_str(&step, "status").as_str() {
            "finished" => return Ok(step),
            "yield" => core.resume(id.clone())?,
            "host" => {
                let answer = host(&step);
                core.resume_host(id.clone(), answer)?
            }
            other => panic!("unknown step status {other:?}"),
        };
    }
}

const HOST_LOOP: &str = r#"
(module
  (import "env" "get_value" (func $get (param i32) (result i32)))
  ;; Counts to $n, adding 1 per iteration, and halfway through adds get_value($n).
  (func (export "run") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eq (local.get $i) (i32.shr_u (local.get $n) (i32.const 1)))
          (then (local.set $acc
                  (i32.add (local.get $acc) (call $get (local.get $n))))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc)))
"#;

const SPIN: &str = r#"
(module
  (func (export "spin") (loop $forever (br $forever)))
  (func (export "answer") (result i32) (i32.const 42)))
"#;

fn get_value_grant(capability: u32) -> JsValue {
    arr(&[obj(&[
        ("module", JsValue::from_str("env")),
        ("name", JsValue::from_str("get_value")),
        ("capability", JsValue::from(capability)),
        ("params", strs(&["i32"])),
        ("results", strs(&["i32"])),
    ])])
}

// ---- (a) many slices and one host call ----

#[wasm_bindgen_test]
fn sliced_call_with_one_host_call_finishes() {
    let mut core = core_with(obj(&[("fuelPerSlice", num(10_000.0))]));
    let module = load_id(&mut core, HOST_LOOP);
    let id = instantiate(&mut core, &module, get_value_grant(7));

    let n = 100_000u32;
    let step = core
        .start(
            id.clone(),
            JsValue::from_str("run"),
            arr(&[JsValue::from(n)]),
            JsValue::UNDEFINED,
        )
        .expect("starts");
    let mut host_calls = 0;
    let finished = drive(&mut core, &id, step, |step| {
        host_calls += 1;
        assert_eq!(get_num(step, "capability"), 7.0);
        assert_eq!(get_str(step, "import"), "env.get_value");
        let args = Array::from(&get(step, "args"));
        assert_eq!(args.length(), 1);
        assert_eq!(args.get(0).as_f64(), Some(f64::from(n)));
        arr(&[num(1_000.0)])
    })
    .expect("finishes");

    assert_eq!(host_calls, 1);
    let results = Array::from(&get(&finished, "results"));
    assert_eq!(results.length(), 1);
    assert_eq!(results.get(0).as_f64(), Some(f64::from(n) + 1_000.0));
    assert!(get(&finished, "exitCode").is_undefined());
    let metrics = get(&finished, "metrics");
    assert!(get_num(&metrics, "slices") > 1.0, "{metrics:?}");
    assert_eq!(get_num(&metrics, "hostCalls"), 1.0);
    assert!(get_num(&metrics, "fuelConsumed") > 100_000.0, "{metrics:?}");
}

// ---- (b) i64 crosses as BigInt ----

#[wasm_bindgen_test]
fn i64_round_trips_as_bigint() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(
        &mut core,
        r#"(module (func (export "twice") (param i64) (result i64)
            (i64.mul (local.get 0) (i64.const 2))))"#,
    );
    let id = instantiate(&mut core, &module, arr(&[]));
    let cases: [(JsValue, i64); 3] = [
        (JsValue::from(-(1i64 << 61) - 3), -(1i64 << 62) - 6),
        (JsValue::from((1i64 << 40) + 1), (1i64 << 41) + 2),
        // A safe-integer number is accepted for an i64 argument.
        (num(21.0), 42),
    ];
    for (arg, expected) in cases {
        let step = core
            .start(
                id.clone(),
                JsValue::from_str("twice"),
                arr(&[arg]),
                JsValue::UNDEFINED,
            )
            .expect("starts");
        let finished = drive(&mut core, &id, step, |_| unreachable!()).expect("finishes");
        let result = Array::from(&get(&finished, "results")).get(0);
        assert!(result.is_bigint(), "i64 result is a BigInt: {result:?}");
        assert_eq!(i64::try_from(result).ok(), Some(expected));
    }
    // Not an integer, or beyond 2^53 as a number: refused.
    for bad in [num(1.5), num(2f64.powi(60)), JsValue::from_str("1")] {
        let err = core
            .start(
                id.clone(),
                JsValue::from_str("twice"),
                arr(&[bad]),
                JsValue::UNDEFINED,
            )
            .expect_err("bad i64");
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{err:?}");
    }
}

// ---- (c) integrity ----

#[wasm_bindgen_test]
fn integrity_mismatch_is_a_record() {
    let mut core = core_with(JsValue::UNDEFINED);
    let bytes = wasm(SPIN);
    let other = Digest::of(b"something else").to_sri();
    let err = core
        .load(
            Uint8Array::from(&bytes[..]).into(),
            JsValue::from_str(&other),
            JsValue::UNDEFINED,
        )
        .expect_err("digest differs");
    assert_eq!(code(&err), "INTEGRITY_MISMATCH");
    let details = get(&err, "details");
    assert_eq!(get_str(&details, "expectedDigest"), other);
    assert_eq!(
        get_str(&details, "actualDigest"),
        Digest::of(&bytes).to_sri()
    );

    let err = core
        .load(
            Uint8Array::from(&bytes[..]).into(),
            JsValue::from_str("md5-x"),
            JsValue::UNDEFINED,
        )
        .expect_err("malformed digest");
    assert_eq!(code(&err), "INVALID_ARGUMENT");

    // The happy path: the load record describes the module.
    let record = load(&mut core, &wasm(HOST_LOOP));
    assert_eq!(
        get_str(&record, "digest"),
        Digest::of(&wasm(HOST_LOOP)).to_sri()
    );
    assert_eq!(get_num(&record, "sizeBytes"), wasm(HOST_LOOP).len() as f64);
    let import = Array::from(&get(&record, "imports")).get(0);
    assert_eq!(get_str(&import, "module"), "env");
    assert_eq!(get_str(&import, "name"), "get_value");
    assert_eq!(get_str(&import, "kind"), "function");
    assert_eq!(
        Array::from(&get(&import, "params")).get(0).as_string(),
        Some("i32".to_owned())
    );
    let export = Array::from(&get(&record, "exports")).get(0);
    assert_eq!(get_str(&export, "name"), "run");
    assert_eq!(Array::from(&get(&export, "results")).length(), 1);
}

// ---- (d) cancel, poison, fresh instance ----

#[wasm_bindgen_test]
fn cancel_during_a_yield_poisons_only_that_instance() {
    let mut core = core_with(obj(&[("fuelPerSlice", num(10_000.0))]));
    let module = load_id(&mut core, SPIN);
    let id = instantiate(&mut core, &module, arr(&[]));

    let mut step = core
        .start(
            id.clone(),
            JsValue::from_str("spin"),
            arr(&[]),
            JsValue::UNDEFINED,
        )
        .expect("starts");
    for _ in 0..3 {
        assert_eq!(get_str(&step, "status"), "yield");
        step = core.resume(id.clone()).expect("resumes");
    }
    let cancelled = core.cancel(id.clone()).expect("cancel");
    assert_eq!(code(&cancelled), "CANCELLED");
    let metrics = get(&get(&cancelled, "details"), "metrics");
    assert!(get_num(&metrics, "slices") >= 4.0, "{metrics:?}");
    assert!(
        core.cancel(id.clone()).expect("cancel").is_undefined(),
        "nothing left to cancel"
    );

    let err = core
        .start(
            id.clone(),
            JsValue::from_str("answer"),
            arr(&[]),
            JsValue::UNDEFINED,
        )
        .expect_err("poisoned");
    assert_eq!(code(&err), "POISONED");

    let fresh = instantiate(&mut core, &module, arr(&[]));
    assert_ne!(fresh.as_f64(), id.as_f64());
    let step = core
        .start(
            fresh.clone(),
            JsValue::from_str("answer"),
            arr(&[]),
            JsValue::UNDEFINED,
        )
        .expect("fresh instance starts");
    let finished = drive(&mut core, &fresh, step, |_| unreachable!()).expect("finishes");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(42.0)
    );
}

// ---- (e) guest memory ----

#[wasm_bindgen_test]
fn memory_access_is_bounds_checked() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(
        &mut core,
        r#"(module (memory (export "memory") 1) (data (i32.const 8) "nestbox"))"#,
    );
    let id = instantiate(&mut core, &module, arr(&[]));
    assert_eq!(core.memory_size(id.clone()).expect("size"), 65_536.0);

    let bytes = core
        .memory_read(id.clone(), num(8.0), num(7.0))
        .expect("in bounds");
    assert_eq!(bytes.to_vec(), b"nestbox");
    core.memory_write(
        id.clone(),
        num(65_534.0),
        Uint8Array::from(&b"ok"[..]).into(),
    )
    .expect("fits exactly");
    assert_eq!(
        core.memory_read(id.clone(), num(65_534.0), num(2.0))
            .expect("read back")
            .to_vec(),
        b"ok"
    );

    let err = core
        .memory_read(id.clone(), num(65_530.0), num(10.0))
        .expect_err("out of bounds");
    assert_eq!(code(&err), "TRAP");
    assert_eq!(
        get_str(&get(&err, "details"), "trapCode"),
        "memory_out_of_bounds"
    );
    let err = core
        .memory_write(
            id.clone(),
            num(65_535.0),
            Uint8Array::from(&b"xy"[..]).into(),
        )
        .expect_err("out of bounds");
    assert_eq!(code(&err), "TRAP");
    let err = core
        .memory_read(id.clone(), num(-1.0), num(1.0))
        .expect_err("negative pointer");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
}

// ---- (f) limits ----

#[wasm_bindgen_test]
fn bad_limits_are_invalid_argument() {
    let bad = [
        obj(&[("fuelPerSlise", num(10_000.0))]),
        obj(&[("fuel", JsValue::from_str("1000"))]),
        obj(&[("fuel", num(1.5))]),
        obj(&[("fuelPerSlice", num(0.0))]),
        obj(&[("maxInstances", num(-1.0))]),
        obj(&[("trapOnGrowFailure", num(1.0))]),
        obj(&[("module", obj(&[("maxFunctionz", num(1.0))]))]),
        obj(&[("module", num(1.0))]),
        num(5.0),
        arr(&[]),
    ];
    for limits in bad {
        let err = Core::new(limits.clone(), JsValue::UNDEFINED)
            .err()
            .unwrap_or_else(|| panic!("accepted {limits:?}"));
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{limits:?}");
    }
    let err = Core::new(obj(&[("fuelPerSlise", num(1.0))]), JsValue::UNDEFINED)
        .err()
        .expect("typo refused");
    assert!(get_str(&err, "message").contains("fuelPerSlise"), "{err:?}");

    // Fuel as a BigInt, an undefined field (default) and module limits are fine.
    let limits = obj(&[
        ("fuel", JsValue::from(5_000_000i64)),
        ("timeoutMs", JsValue::UNDEFINED),
        ("module", obj(&[("maxFunctions", num(10.0))])),
    ]);
    let mut core = core_with(limits);
    let module = load_id(&mut core, SPIN);
    let id = instantiate(&mut core, &module, arr(&[]));
    let step = core
        .start(
            id.clone(),
            JsValue::from_str("spin"),
            arr(&[]),
            JsValue::UNDEFINED,
        )
        .expect("starts");
    let err = drive(&mut core, &id, step, |_| unreachable!()).expect_err("runs out");
    assert_eq!(code(&err), "FUEL_EXHAUSTED");
    assert_eq!(get_num(&get(&err, "details"), "limit"), 5_000_000.0);
}

// ---- more of the contract ----

#[wasm_bindgen_test]
fn call_max_memory_bytes_caps_growth_for_that_call() {
    const GROW: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "grow") (result i32)
    (block $refused
      (loop $l
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $l)))
    memory.size))
"#;
    let page = 65_536.0;
    let mut core = core_with(obj(&[("maxMemoryBytes", num(8.0 * page))]));
    let module = load_id(&mut core, GROW);
    let id = instantiate(&mut core, &module, arr(&[]));
    let pages = |core: &mut Core, options: JsValue| -> Result<Option<f64>, JsValue> {
        let step = core.start(id.clone(), JsValue::from_str("grow"), arr(&[]), options)?;
        let finished = drive(core, &id, step, |_| unreachable!())?;
        Ok(Array::from(&get(&finished, "results")).get(0).as_f64())
    };
    // A number, then a BigInt; each call's cap only for that call.
    let cap = obj(&[("maxMemoryBytes", num(3.0 * page))]);
    assert_eq!(pages(&mut core, cap), Ok(Some(3.0)));
    let cap = obj(&[("maxMemoryBytes", JsValue::from(5 * 65_536i64))]);
    assert_eq!(pages(&mut core, cap), Ok(Some(5.0)));
    assert_eq!(pages(&mut core, JsValue::UNDEFINED), Ok(Some(8.0)));
    // Below the current memory: refused before running, the instance stays usable.
    let cap = obj(&[("maxMemoryBytes", num(2.0 * page))]);
    let err = pages(&mut core, cap).expect_err("refused");
    assert_eq!(code(&err), "MEMORY_LIMIT");
    assert_eq!(get_num(&get(&err, "details"), "limit"), 2.0 * page);
    for bad in [num(-1.0), num(1.5), JsValue::from_str("1")] {
        let err = pages(&mut core, obj(&[("maxMemoryBytes", bad)])).expect_err("bad value");
        assert_eq!(code(&err), "INVALID_ARGUMENT");
    }
    assert_eq!(pages(&mut core, JsValue::UNDEFINED), Ok(Some(8.0)));
}

#[wasm_bindgen_test]
fn bad_arguments_and_ids_are_invalid_argument_and_harmless() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, HOST_LOOP);
    let id = instantiate(&mut core, &module, get_value_grant(1));
    let start = |core: &mut Core, id: JsValue, export: &str, args: JsValue| {
        core.start(id, JsValue::from_str(export), args, JsValue::UNDEFINED)
    };
    for (id, export, args) in [
        (id.clone(), "run", arr(&[num(1.5)])),
        (id.clone(), "run", arr(&[num(2f64.powi(32))])),
        (id.clone(), "run", arr(&[JsValue::from_str("3")])),
        (id.clone(), "run", arr(&[])),
        (id.clone(), "run", num(3.0)),
        (id.clone(), "nope", arr(&[])),
        (num(99.0), "run", arr(&[num(1.0)])),
        (JsValue::from_str("1"), "run", arr(&[num(1.0)])),
        (num(1.5), "run", arr(&[num(1.0)])),
    ] {
        let err = start(&mut core, id, export, args).expect_err("refused");
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{err:?}");
    }
    let err = core
        .start(
            id.clone(),
            JsValue::from_str("run"),
            arr(&[num(1.0)]),
            obj(&[("fule", num(1.0))]),
        )
        .expect_err("option typo");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = core
        .instantiate(
            module.clone(),
            arr(&[obj(&[("module", JsValue::from_str("env"))])]),
        )
        .expect_err("incomplete grant");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = core
        .instantiate(module.clone(), arr(&[]))
        .expect_err("import not granted");
    assert_eq!(code(&err), "IMPORT_NOT_GRANTED");

    // None of that disturbed the instance.
    let step = start(&mut core, id.clone(), "run", arr(&[num(4.0)])).expect("starts");
    let finished = drive(&mut core, &id, step, |_| arr(&[num(-10.0)])).expect("finishes");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(-6.0)
    );
}

#[wasm_bindgen_test]
fn host_failures_end_the_call_with_host_error() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, HOST_LOOP);

    // failHost: HOST_ERROR with the cause; the instance is poisoned.
    let id = instantiate(&mut core, &module, get_value_grant(3));
    let err = core
        .fail_host(
            id.clone(),
            JsValue::from_str("nothing to fail"),
            JsValue::UNDEFINED,
        )
        .expect_err("no host call is pending");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let step = core
        .start(
            id.clone(),
            JsValue::from_str("run"),
            arr(&[num(10.0)]),
            JsValue::UNDEFINED,
        )
        .expect("starts");
    assert_eq!(get_str(&step, "status"), "host");
    let err = core
        .resume(id.clone())
        .expect_err("waiting for a host answer, not a yield");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let record = core
        .fail_host(
            id.clone(),
            JsValue::from_str("disk on fire"),
            JsValue::UNDEFINED,
        )
        .expect("record");
    assert_eq!(code(&record), "HOST_ERROR");
    let details = get(&record, "details");
    assert_eq!(get_str(&details, "cause"), "disk on fire");
    assert_eq!(get_num(&details, "capability"), 3.0);
    assert_eq!(get_num(&get(&details, "metrics"), "hostCalls"), 1.0);
    let err = core
        .resume_host(id.clone(), arr(&[num(1.0)]))
        .expect_err("the call is over");
    assert_eq!(code(&err), "INVALID_ARGUMENT");

    // resumeHost with a value that is not an i32: the host broke its signature.
    let id = instantiate(&mut core, &module, get_value_grant(3));
    let step = core
        .start(
            id.clone(),
            JsValue::from_str("run"),
            arr(&[num(10.0)]),
            JsValue::UNDEFINED,
        )
        .expect("starts");
    assert_eq!(get_str(&step, "status"), "host");
    let err = core
        .resume_host(id.clone(), num(1.0))
        .expect_err("not an array");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = core
        .resume_host(id.clone(), arr(&[num(0.5)]))
        .expect_err("not an i32");
    assert_eq!(code(&err), "HOST_ERROR");
    assert_eq!(get_num(&get(&err, "details"), "capability"), 3.0);
    let err = core
        .start(
            id.clone(),
            JsValue::from_str("run"),
            arr(&[num(10.0)]),
            JsValue::UNDEFINED,
        )
        .expect_err("poisoned");
    assert_eq!(code(&err), "POISONED");
}

#[wasm_bindgen_test]
fn ids_are_never_reused_and_instances_are_counted() {
    let mut core = core_with(obj(&[("maxInstances", num(2.0))]));
    let module = load_id(&mut core, SPIN);
    let a = instantiate(&mut core, &module, arr(&[]));
    let b = instantiate(&mut core, &module, arr(&[]));
    assert_eq!(core.live_instances(), 2);
    let err = core
        .instantiate(module.clone(), arr(&[]))
        .expect_err("over the limit");
    assert_eq!(code(&err), "INSTANCE_LIMIT");

    core.drop_instance(a.clone()).expect("drops");
    assert_eq!(core.live_instances(), 1);
    let err = core.drop_instance(a.clone()).expect_err("already dropped");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = core.memory_size(a.clone()).expect_err("dropped id");
    assert_eq!(code(&err), "INVALID_ARGUMENT");

    // Dropping the module keeps its instances; a new id is a new number.
    core.drop_module(module.clone()).expect("drops");
    let err = core
        .instantiate(module.clone(), arr(&[]))
        .expect_err("module dropped");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let module2 = load_id(&mut core, SPIN);
    assert_ne!(module2.as_f64(), module.as_f64());
    let c = instantiate(&mut core, &module2, arr(&[]));
    for old in [&a, &b] {
        assert_ne!(c.as_f64(), old.as_f64());
    }
    let step = core
        .start(
            b.clone(),
            JsValue::from_str("answer"),
            arr(&[]),
            JsValue::UNDEFINED,
        )
        .expect("b still works");
    assert_eq!(get_str(&step, "status"), "finished");
}

// ---- (g) WASI ----

/// A hand-written WASI guest: `_start` says hello on stdout and on stderr and exits 7;
/// `sleep` sleeps 5 ms (`poll_oneoff`, relative monotonic clock); `echo` copies stdin to
/// stdout until end of file and returns the byte count; `write_file` creates `out.txt` in
/// the first preopen (fd 3) with "written"; `cat_in` copies the preopen's `in.txt` to stdout.
const WASI_GUEST: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello\n")
  (data (i32.const 120) "oops\n")
  (data (i32.const 400) "out.txt")
  (data (i32.const 410) "in.txt")
  (data (i32.const 500) "written")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $copy (param $from i32) (result i32)
    (local $n i32) (local $total i32)
    (block $done
      (loop $next
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 64))
        (br_if $done (call $fd_read (local.get $from) (i32.const 16) (i32.const 1) (i32.const 24)))
        (local.set $n (i32.load (i32.const 24)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $total (i32.add (local.get $total) (local.get $n)))
        (drop (call $write (i32.const 1) (i32.const 1024) (local.get $n)))
        (br $next)))
    (local.get $total))
  (func $open (param $path i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (local $errno i32)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (local.get $len)
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 420)))
    (if (local.get $errno) (then (return (i32.sub (i32.const 0) (local.get $errno)))))
    (i32.load (i32.const 420)))
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 100) (i32.const 6)))
    (drop (call $write (i32.const 2) (i32.const 120) (i32.const 5)))
    (call $exit (i32.const 7)))
  (func (export "sleep") (result i32)
    (i64.store (i32.const 200) (i64.const 0))
    (i32.store8 (i32.const 208) (i32.const 0))
    (i32.store (i32.const 216) (i32.const 1))
    (i64.store (i32.const 224) (i64.const 5000000))
    (i64.store (i32.const 232) (i64.const 0))
    (i32.store16 (i32.const 240) (i32.const 0))
    (call $poll (i32.const 200) (i32.const 300) (i32.const 1) (i32.const 340)))
  (func (export "echo") (result i32) (call $copy (i32.const 0)))
  (func (export "write_file") (result i32)
    (local $fd i32)
    (local.set $fd (call $open (i32.const 400) (i32.const 7) (i32.const 1) (i64.const 64)))
    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (local.get $fd))))
    (call $write (local.get $fd) (i32.const 500) (i32.const 7)))
  (func (export "cat_in") (result i32)
    (local $fd i32)
    (local.set $fd (call $open (i32.const 410) (i32.const 6) (i32.const 0) (i64.const 2)))
    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (local.get $fd))))
    (call $copy (local.get $fd))))
"#;

fn bytes_of(v: &JsValue) -> Vec<u8> {
    v.dyn_ref::<Uint8Array>()
        .unwrap_or_else(|| panic!("not a Uint8Array: {v:?}"))
        .to_vec()
}

/// `takeOutput` as (stdout, stderr) strings.
fn output(core: &mut Core, id: &JsValue) -> (String, String) {
    let out = core.take_output(id.clone()).expect("takeOutput");
    let text = |key| String::from_utf8(bytes_of(&get(&out, key))).expect("utf-8");
    (text("stdout"), text("stderr"))
}

fn start(core: &mut Core, id: &JsValue, export: &str) -> Result<JsValue, JsValue> {
    core.start(
        id.clone(),
        JsValue::from_str(export),
        arr(&[]),
        JsValue::UNDEFINED,
    )
}

fn instantiate_wasi(core: &mut Core, module: &JsValue, config: JsValue) -> JsValue {
    JsValue::from(
        core.instantiate_wasi(module.clone(), config)
            .expect("instantiates with WASI"),
    )
}

#[wasm_bindgen_test]
fn wasi_hello_streams_output_and_exit_code_is_a_result() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, WASI_GUEST);
    let config = obj(&[
        ("args", strs(&["prog", "a b"])),
        ("env", obj(&[("KEY", JsValue::from_str("v"))])),
        ("maxStdoutBytes", num(1024.0)),
    ]);
    let id = instantiate_wasi(&mut core, &module, config);
    let step = start(&mut core, &id, "_start").expect("starts");
    let finished = drive(&mut core, &id, step, |_| unreachable!()).expect("finishes");
    assert_eq!(get_num(&finished, "exitCode"), 7.0);
    assert_eq!(Array::from(&get(&finished, "results")).length(), 0);
    assert_eq!(
        output(&mut core, &id),
        ("hello\n".to_owned(), "oops\n".to_owned())
    );
    assert_eq!(
        output(&mut core, &id),
        (String::new(), String::new()),
        "takeOutput returns only new bytes"
    );

    // Over the cap: OUTPUT_LIMIT, with the bytes up to the cap still there.
    let capped = instantiate_wasi(&mut core, &module, obj(&[("maxStdoutBytes", num(3.0))]));
    let err = start(&mut core, &capped, "_start").expect_err("over the cap");
    assert_eq!(code(&err), "OUTPUT_LIMIT");
    assert_eq!(get_num(&get(&err, "details"), "limit"), 3.0);
    assert_eq!(output(&mut core, &capped).0, "hel");

    let err = core.take_output(num(999.0)).expect_err("unknown id");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
fn wasi_sleep_is_a_yield_with_a_wait_record() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, WASI_GUEST);
    let id = instantiate_wasi(&mut core, &module, JsValue::UNDEFINED);
    let step = start(&mut core, &id, "sleep").expect("starts");
    assert_eq!(get_str(&step, "status"), "yield");
    let wait = get(&step, "wait");
    assert_eq!(get_str(&wait, "kind"), "sleep");
    let ms = get_num(&wait, "durationMs");
    assert!(ms > 4.0 && ms <= 5.0, "{ms}");
    // The caller says the time is up: poll_oneoff returns 0 (success).
    let finished = core.resume(id.clone()).expect("resumes");
    assert_eq!(get_str(&finished, "status"), "finished");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(0.0)
    );

    // A plain fuel slice has no `wait`.
    let mut core = core_with(obj(&[("fuelPerSlice", num(10_000.0))]));
    let spin = load_id(&mut core, SPIN);
    let id = instantiate(&mut core, &spin, arr(&[]));
    let step = start(&mut core, &id, "spin").expect("starts");
    assert_eq!(get_str(&step, "status"), "yield");
    assert!(get(&step, "wait").is_undefined(), "{step:?}");

    // A deterministic clock never waits: virtual time advances.
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, WASI_GUEST);
    let config = obj(&[(
        "deterministic",
        obj(&[
            ("seed", JsValue::from(42_u64)),
            ("startTimeNs", num(1_700_000_000_000_000_000.0)),
        ]),
    )]);
    let id = instantiate_wasi(&mut core, &module, config);
    let step = start(&mut core, &id, "sleep").expect("starts");
    assert_eq!(get_str(&step, "status"), "finished");
}

#[wasm_bindgen_test]
fn wasi_async_stdin_is_answered_with_resume_stdin_and_push_stdin() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, WASI_GUEST);
    let id = instantiate_wasi(
        &mut core,
        &module,
        obj(&[("stdin", JsValue::from_str("async"))]),
    );
    let step = start(&mut core, &id, "echo").expect("starts");
    let wait = get(&step, "wait");
    assert_eq!(get_str(&wait, "kind"), "stdin");
    assert_eq!(get_num(&wait, "maxBytes"), 64.0);

    let err = core
        .resume_stdin(
            id.clone(),
            Uint8Array::new_with_length(0).into(),
            JsValue::FALSE,
        )
        .expect_err("nothing to give");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = core
        .resume_stdin(id.clone(), JsValue::from_str("abc"), JsValue::FALSE)
        .expect_err("a string is not bytes");
    assert_eq!(code(&err), "INVALID_ARGUMENT");

    let step = core
        .resume_stdin(
            id.clone(),
            Uint8Array::from(&b"abc"[..]).into(),
            JsValue::FALSE,
        )
        .expect("resumes");
    assert_eq!(get_str(&get(&step, "wait"), "kind"), "stdin", "waits again");
    assert_eq!(output(&mut core, &id).0, "abc");

    // Pushed ahead, then a plain resume completes the read.
    core.push_stdin(
        id.clone(),
        Uint8Array::from(&b"de"[..]).into(),
        JsValue::TRUE,
    )
    .expect("push");
    let step = core.resume(id.clone()).expect("resumes");
    let finished =
        drive(&mut core, &id, step, |_| unreachable!()).expect("finishes at end of file");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(5.0)
    );
    assert_eq!(output(&mut core, &id).0, "de");

    // Not waiting any more; stdin given as bytes cannot be pushed.
    let err = core
        .resume_stdin(
            id.clone(),
            Uint8Array::from(&b"x"[..]).into(),
            JsValue::TRUE,
        )
        .expect_err("not waiting");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let bytes = instantiate_wasi(
        &mut core,
        &module,
        obj(&[("stdin", Uint8Array::from(&b"given"[..]).into())]),
    );
    let err = core
        .push_stdin(
            bytes.clone(),
            Uint8Array::from(&b"x"[..]).into(),
            JsValue::FALSE,
        )
        .expect_err("not async");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let step = start(&mut core, &bytes, "echo").expect("starts");
    let finished = drive(&mut core, &bytes, step, |_| unreachable!()).expect("finishes");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(5.0)
    );
    assert_eq!(output(&mut core, &bytes).0, "given");
}

#[wasm_bindgen_test]
fn wasi_files_are_preopened_and_read_back() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, WASI_GUEST);
    let files = obj(&[
        ("in.txt", JsValue::from_str("from the host")),
        ("sub/bin", Uint8Array::from(&[0_u8, 255, 1][..]).into()),
        ("empty", JsValue::NULL),
    ]);
    let preopen = obj(&[("guestPath", JsValue::from_str("/data")), ("files", files)]);
    let id = instantiate_wasi(&mut core, &module, obj(&[("preopens", arr(&[preopen]))]));
    let step = start(&mut core, &id, "cat_in").expect("starts");
    let finished = drive(&mut core, &id, step, |_| unreachable!()).expect("finishes");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(13.0)
    );
    assert_eq!(output(&mut core, &id).0, "from the host");
    let step = start(&mut core, &id, "write_file").expect("starts");
    let finished = drive(&mut core, &id, step, |_| unreachable!()).expect("finishes");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(0.0)
    );

    let all = core.wasi_files(id.clone()).expect("wasiFiles");
    let keys: Vec<String> = Object::keys(&all.clone().into())
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    assert_eq!(keys, ["/data"]);
    let tree = get(&all, "/data");
    let mut paths: Vec<String> = Object::keys(&tree.clone().into())
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["empty", "in.txt", "out.txt", "sub", "sub/bin"]);
    assert_eq!(get_str(&get(&tree, "empty"), "type"), "dir");
    assert_eq!(get_str(&get(&tree, "sub"), "type"), "dir");
    let out = get(&tree, "out.txt");
    assert_eq!(get_str(&out, "type"), "file");
    assert_eq!(bytes_of(&get(&out, "data")), b"written");
    assert_eq!(bytes_of(&get(&get(&tree, "sub/bin"), "data")), [0, 255, 1]);

    // Read-only: the guest's create fails with EROFS (69), negated by the guest.
    let preopen = obj(&[
        ("guestPath", JsValue::from_str("/ro")),
        ("readOnly", JsValue::TRUE),
    ]);
    let ro = instantiate_wasi(&mut core, &module, obj(&[("preopens", arr(&[preopen]))]));
    let step = start(&mut core, &ro, "write_file").expect("starts");
    let finished = drive(&mut core, &ro, step, |_| unreachable!()).expect("finishes");
    assert_eq!(
        Array::from(&get(&finished, "results")).get(0).as_f64(),
        Some(-69.0)
    );
    let tree = get(&core.wasi_files(ro.clone()).expect("wasiFiles"), "/ro");
    assert_eq!(Object::keys(&tree.into()).length(), 0);
}

#[wasm_bindgen_test]
fn bad_wasi_configs_are_invalid_argument() {
    let mut core = core_with(JsValue::UNDEFINED);
    let module = load_id(&mut core, WASI_GUEST);
    let preopen = |fields: &[(&str, JsValue)]| obj(&[("preopens", arr(&[obj(fields)]))]);
    let bad = [
        obj(&[("argv", strs(&["x"]))]),
        obj(&[("args", JsValue::from_str("x"))]),
        obj(&[("args", arr(&[num(1.0)]))]),
        obj(&[("args", strs(&["nul\0"]))]),
        obj(&[("env", arr(&[strs(&["only key"])]))]),
        obj(&[("env", obj(&[("K", num(1.0))]))]),
        obj(&[("env", arr(&[strs(&["A=B", "c"])]))]),
        obj(&[("stdin", JsValue::from_str("sync"))]),
        obj(&[("maxStdoutBytes", num(-1.0))]),
        obj(&[("maxFiles", JsValue::from_str("10"))]),
        obj(&[("deterministic", obj(&[("startTimeNs", num(0.0))]))]),
        obj(&[("deterministic", obj(&[("seed", num(1.5))]))]),
        obj(&[(
            "deterministic",
            obj(&[("seed", num(1.0)), ("clock", num(0.0))]),
        )]),
        preopen(&[("files", obj(&[]))]),
        preopen(&[("guestPath", JsValue::from_str("/a")), ("rights", num(1.0))]),
        preopen(&[
            ("guestPath", JsValue::from_str("/a")),
            ("files", obj(&[("dir/", JsValue::from_str("x"))])),
        ]),
        preopen(&[
            ("guestPath", JsValue::from_str("/a")),
            ("files", obj(&[("f", num(1.0))])),
        ]),
        obj(&[(
            "preopens",
            arr(&[
                obj(&[("guestPath", JsValue::from_str("/a"))]),
                obj(&[("guestPath", JsValue::from_str("/a"))]),
            ]),
        )]),
        obj(&[
            ("maxFiles", num(1.0)),
            (
                "preopens",
                arr(&[obj(&[
                    ("guestPath", JsValue::from_str("/a")),
                    (
                        "files",
                        obj(&[("x", JsValue::from_str("1")), ("y", JsValue::from_str("2"))]),
                    ),
                ])]),
            ),
        ]),
        obj(&[(
            "grants",
            arr(&[obj(&[
                ("module", JsValue::from_str("wasi_snapshot_preview1")),
                ("name", JsValue::from_str("fd_write")),
                ("capability", num(1.0)),
                ("params", strs(&["i32", "i32", "i32", "i32"])),
                ("results", strs(&["i32"])),
            ])]),
        )]),
        JsValue::from_str("config"),
    ];
    for config in bad {
        let err = core
            .instantiate_wasi(module.clone(), config.clone())
            .expect_err("refused");
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{config:?}: {err:?}");
    }
    assert_eq!(core.live_instances(), 0, "nothing was instantiated");

    // A module importing a function WASI does not have is refused like any import.
    let unknown = load_id(
        &mut core,
        r#"(module (import "wasi_snapshot_preview1" "fd_teleport" (func (param i32) (result i32))))"#,
    );
    let err = core
        .instantiate_wasi(unknown, JsValue::UNDEFINED)
        .expect_err("refused");
    assert_eq!(code(&err), "IMPORT_NOT_GRANTED");
    assert_eq!(
        Array::from(&get(&get(&err, "details"), "imports"))
            .get(0)
            .as_string()
            .as_deref(),
        Some("wasi_snapshot_preview1.fd_teleport")
    );
}

#[wasm_bindgen_test]
fn start_fuel_is_what_the_start_function_consumed() {
    let mut core = core_with(JsValue::UNDEFINED);
    let plain = load_id(&mut core, r#"(module (func (export "f")))"#);
    let id = instantiate(&mut core, &plain, arr(&[]));
    assert_eq!(core.start_fuel(id).expect("known instance"), 0.0);
    let burning = load_id(
        &mut core,
        r#"(module
            (global $n (mut i32) (i32.const 0))
            (func $burn (loop $l
              (global.set $n (i32.add (global.get $n) (i32.const 1)))
              (br_if $l (i32.lt_u (global.get $n) (i32.const 1000)))))
            (start $burn))"#,
    );
    let id = instantiate(&mut core, &burning, arr(&[]));
    let fuel = core.start_fuel(id).expect("known instance");
    assert!(fuel > 1000.0 && fuel < 100_000.0, "{fuel}");
    let err = core.start_fuel(num(999.0)).expect_err("unknown instance");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
}

// ---- data calls (the data ABI, extism:host/env) ----

const DATA_ECHO: &str = r#"
(module
  (import "extism:host/env" "input_length" (func $len (result i64)))
  (import "extism:host/env" "input_load_u8" (func $in (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store (param i64 i32)))
  (import "extism:host/env" "output_set" (func $out (param i64 i64)))
  (import "extism:host/env" "config_get" (func $config (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (memory (export "memory") 1)
  ;; The input, byte by byte, as the output.
  (func (export "echo") (result i32)
    (local $n i64) (local $h i64) (local $i i64)
    (local.set $n (call $len))
    (local.set $h (call $alloc (local.get $n)))
    (block $done (loop $copy
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store (i64.add (local.get $h) (local.get $i)) (call $in (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy)))
    (call $out (local.get $h) (local.get $n))
    (i32.const 0))
  ;; Lies about its output's length.
  (func (export "lie") (result i32)
    (call $out (call $alloc (i64.const 1)) (i64.const 2)) (i32.const 0))
  ;; Status 5.
  (func (export "fail") (result i32) (i32.const 5))
  ;; The config value of key "k" (the key is the input).
  (func (export "config") (result i32)
    (local $k i64) (local $v i64)
    (local.set $k (call $alloc (i64.const 1)))
    (call $store (local.get $k) (i32.const 107))
    (local.set $v (call $config (local.get $k)))
    (call $out (local.get $v) (call $length (local.get $v)))
    (i32.const 0)))
"#;

#[wasm_bindgen_test]
fn data_calls_through_the_bindings() {
    let mut core = core_with(obj(&[
        ("maxInputBytes", num(8.0)),
        ("maxOutputBytes", num(8.0)),
    ]));
    let module = load_id(&mut core, DATA_ECHO);
    let id = JsValue::from(
        core.instantiate_with_data(
            module.clone(),
            arr(&[]),
            obj(&[("config", obj(&[("k", JsValue::from_str("v!"))]))]),
        )
        .expect("instantiates"),
    );
    let input: JsValue = Uint8Array::from(&b"hi\xff"[..]).into();
    let step = core
        .start_data(
            id.clone(),
            JsValue::from_str("echo"),
            input,
            JsValue::UNDEFINED,
        )
        .expect("starts");
    let done = drive(&mut core, &id, step, |_| panic!("no host calls")).expect("finishes");
    let output: Uint8Array = get(&done, "output").dyn_into().expect("output bytes");
    assert_eq!(output.to_vec(), b"hi\xff");
    let step = core
        .start_data(
            id.clone(),
            JsValue::from_str("config"),
            Uint8Array::new_with_length(0).into(),
            JsValue::UNDEFINED,
        )
        .expect("starts");
    let done = drive(&mut core, &id, step, |_| panic!("no host calls")).expect("finishes");
    let output: Uint8Array = get(&done, "output").dyn_into().expect("output bytes");
    assert_eq!(output.to_vec(), b"v!");

    // Over the input cap: INPUT_LIMIT, the instance still usable; a guest error too.
    let big: JsValue = Uint8Array::new_with_length(9).into();
    let err = core
        .start_data(
            id.clone(),
            JsValue::from_str("echo"),
            big,
            JsValue::UNDEFINED,
        )
        .expect_err("too big");
    assert_eq!(code(&err), "INPUT_LIMIT");
    let empty = || -> JsValue { Uint8Array::new_with_length(0).into() };
    let err = core
        .start_data(
            id.clone(),
            JsValue::from_str("fail"),
            empty(),
            JsValue::UNDEFINED,
        )
        .expect_err("status 5");
    assert_eq!(code(&err), "GUEST_ERROR");
    let err = core
        .start_data(
            id.clone(),
            JsValue::from_str("lie"),
            empty(),
            JsValue::UNDEFINED,
        )
        .expect_err("lies");
    assert_eq!(code(&err), "TRAP");
    assert_eq!(
        get_str(&get(&err, "details"), "trapCode"),
        "memory_out_of_bounds"
    );
    let logs = core.take_logs(id.clone()).expect("logs");
    assert_eq!(Array::from(&logs).length(), 0);
}
