//! The trust policy, provenance, the audit log and `failHost`'s codes through the bindings
//! (part of the `web` test target: `#[path]`-included from `web.rs`).

use js_sys::{Array, JSON, Uint8Array};
use nestbox::Digest;
use nestbox::bindings::Core;
use nestbox::policy::{ModuleSignature, public_key_of};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

use super::{
    HOST_LOOP, SPIN, arr, code, get, get_num, get_str, get_value_grant, instantiate, obj, strs,
    wasm,
};

const SECRET: [u8; 32] = [7; 32];
const OTHER_SECRET: [u8; 32] = [9; 32];

fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn policy_core(policy: JsValue) -> Core {
    Core::new(JsValue::UNDEFINED, policy).expect("valid policy")
}

fn trusting(id: &str, secret: &[u8; 32], extra: &[(&str, JsValue)]) -> JsValue {
    let mut fields = vec![(
        "keys",
        arr(&[obj(&[
            ("id", s(id)),
            ("publicKey", s(&public_key_of(secret))),
        ])]),
    )];
    fields.extend(extra.iter().cloned());
    obj(&fields)
}

fn try_load(core: &mut Core, bytes: &[u8], provenance: JsValue) -> Result<JsValue, JsValue> {
    core.load(
        Uint8Array::from(bytes).into(),
        s(&Digest::of(bytes).to_sri()),
        provenance,
    )
}

fn signed(bytes: &[u8], id: &str, secret: &[u8; 32]) -> JsValue {
    let sig = ModuleSignature::sign(id, secret, &Digest::of(bytes)).expect("signs");
    obj(&[("signature", s(&sig.to_text()))])
}

fn entries(core: &Core) -> Vec<JsValue> {
    Array::from(&core.audit_since(JsValue::from(0)).expect("entries"))
        .iter()
        .collect()
}

fn verify(log: JsValue, head: Option<&str>) -> (bool, Option<f64>) {
    let out = Core::verify_audit(log, head.map_or(JsValue::UNDEFINED, s)).expect("verifies");
    (
        get(&out, "ok").as_bool().expect("ok is a boolean"),
        get(&out, "index").as_f64(),
    )
}

#[wasm_bindgen_test]
fn malformed_policies_are_invalid_argument() {
    let key = public_key_of(&SECRET);
    for (policy, why) in [
        (obj(&[("allowDigests", arr(&[]))]), "typo in a field"),
        (obj(&[("allowedDigests", strs(&["md5-x"]))]), "bad digest"),
        (obj(&[("requireSignature", s("yes"))]), "not a boolean"),
        (
            obj(&[("requireSignature", JsValue::TRUE)]),
            "signatures required, no keys",
        ),
        (
            obj(&[("origins", obj(&[("https://cdn.example/", strs(&[]))]))]),
            "an origin with a path",
        ),
        (
            obj(&[("origins", obj(&[("https://CDN.example", strs(&[]))]))]),
            "an origin not as URL.origin gives it",
        ),
        (
            obj(&[(
                "keys",
                arr(&[obj(&[("id", s("bad id")), ("publicKey", s(&key))])]),
            )]),
            "bad key id",
        ),
        (
            obj(&[(
                "keys",
                arr(&[obj(&[("id", s("k")), ("publicKey", s("AAAA"))])]),
            )]),
            "short key",
        ),
        (
            obj(&[(
                "keys",
                arr(&[obj(&[
                    ("id", s("k")),
                    ("publicKey", s(&key)),
                    ("extra", JsValue::TRUE),
                ])]),
            )]),
            "unknown key field",
        ),
    ] {
        let Err(err) = Core::new(JsValue::UNDEFINED, policy) else {
            panic!("accepted: {why}")
        };
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{why}");
    }
    let mut core = policy_core(JsValue::UNDEFINED);
    let err =
        try_load(&mut core, &wasm(SPIN), obj(&[("origin", s("nowhere"))])).expect_err("bad origin");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = try_load(&mut core, &wasm(SPIN), obj(&[("signer", s("x"))]))
        .expect_err("unknown provenance field");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
fn signatures_are_verified_and_failures_denied_for_the_life_of_the_core() {
    let bytes = wasm(SPIN);
    let other = wasm(HOST_LOOP);
    let mut core = policy_core(trusting(
        "release",
        &SECRET,
        &[("requireSignature", JsValue::TRUE)],
    ));

    let ok = try_load(&mut core, &bytes, signed(&bytes, "release", &SECRET)).expect("signed");
    assert_eq!(get_str(&ok, "digest"), Digest::of(&bytes).to_sri());
    let missing = try_load(&mut core, &other, JsValue::UNDEFINED).expect_err("unsigned");
    assert_eq!(code(&missing), "SIGNATURE_INVALID");
    // A missing signature is refused but not denied: the signed retry loads.
    try_load(&mut core, &other, signed(&other, "release", &SECRET)).expect("signed retry");

    let mut core = policy_core(trusting(
        "release",
        &SECRET,
        &[("requireSignature", JsValue::TRUE)],
    ));
    let wrong_key =
        try_load(&mut core, &other, signed(&other, "release", &OTHER_SECRET)).expect_err("key");
    assert_eq!(code(&wrong_key), "SIGNATURE_INVALID");
    // Denied from now on, even with a good signature.
    let denied =
        try_load(&mut core, &other, signed(&other, "release", &SECRET)).expect_err("deny list");
    assert_eq!(code(&denied), "POLICY_DENIED");

    let mut core = policy_core(trusting("release", &SECRET, &[]));
    for (provenance, why) in [
        (signed(&other, "release", &SECRET), "over other bytes"),
        (signed(&bytes, "unknown", &SECRET), "unknown key id"),
        (obj(&[("signature", s("release:not base64!"))]), "malformed"),
        (obj(&[("signature", s("no colon"))]), "malformed"),
    ] {
        let err = try_load(&mut core, &bytes, provenance).expect_err(why);
        assert_eq!(code(&err), "SIGNATURE_INVALID", "{why}");
        core = policy_core(trusting("release", &SECRET, &[]));
    }

    // The log says which key verified, and which loads failed and why.
    let mut core = policy_core(trusting(
        "release",
        &SECRET,
        &[("denyAfterFailure", JsValue::FALSE)],
    ));
    try_load(&mut core, &bytes, signed(&bytes, "release", &OTHER_SECRET)).expect_err("bad");
    try_load(&mut core, &bytes, signed(&bytes, "release", &SECRET)).expect("no deny list");
    let log = entries(&core);
    let policy: Vec<&JsValue> = log
        .iter()
        .filter(|e| get_str(e, "event") == "policy")
        .collect();
    assert_eq!(policy.len(), 2);
    assert_eq!(get_str(policy[0], "outcome"), "SIGNATURE_INVALID");
    assert_eq!(get_str(policy[1], "outcome"), "ok");
    assert_eq!(get_str(&get(policy[1], "extra"), "keyId"), "release");
}

#[wasm_bindgen_test]
fn origins_bind_digests() {
    let bytes = wasm(SPIN);
    let digest = Digest::of(&bytes).to_sri();
    let mut core = policy_core(obj(&[(
        "origins",
        obj(&[
            ("https://cdn.example", strs(&[&digest])),
            ("https://other.example", strs(&[])),
        ]),
    )]));
    let from = |o: &str| obj(&[("origin", s(o))]);
    try_load(&mut core, &bytes, from("https://cdn.example")).expect("allowed there");
    for (provenance, why) in [
        (from("https://other.example"), "allowed for another origin"),
        (from("https://evil.example"), "unknown origin"),
        (JsValue::UNDEFINED, "origin unknown"),
    ] {
        let err = try_load(&mut core, &bytes, provenance).expect_err(why);
        assert_eq!(code(&err), "POLICY_DENIED", "{why}");
    }
    let denied = entries(&core)
        .into_iter()
        .filter(|e| get_str(e, "outcome") == "POLICY_DENIED")
        .count();
    assert_eq!(denied, 3);
}

#[wasm_bindgen_test]
fn audit_entries_cross_as_their_json_and_verify() {
    let mut core = policy_core(JsValue::UNDEFINED);
    let bytes = wasm(SPIN);
    let module = get(
        &try_load(&mut core, &bytes, JsValue::UNDEFINED).expect("loads"),
        "moduleId",
    );
    let id = instantiate(&mut core, &module, arr(&[]));
    core.start(id.clone(), s("answer"), arr(&[]), JsValue::UNDEFINED)
        .expect("runs");
    core.drop_instance(id).expect("drops");

    let log = entries(&core);
    let events: Vec<String> = log.iter().map(|e| get_str(e, "event")).collect();
    assert_eq!(
        events,
        ["policy", "load", "instantiate", "call", "dispose"],
        "{log:?}"
    );
    for (i, e) in log.iter().enumerate() {
        assert_eq!(get_num(e, "seq"), i as f64);
        assert_eq!(get_str(e, "moduleSha256"), Digest::of(&bytes).to_sri());
    }
    let call = &log[3];
    assert_eq!(get_str(call, "export"), "answer");
    assert!(get_num(call, "fuel") > 0.0);
    assert!(get(&get(call, "extra"), "args").is_string());
    // Same fields and values as the JSON Lines export, line by line.
    let jsonl = core.audit_jsonl();
    let lines: Vec<&str> = jsonl.lines().collect();
    assert_eq!(lines.len(), log.len());
    for (line, e) in lines.iter().zip(&log) {
        let json = JSON::stringify(e).expect("stringify").as_string();
        assert_eq!(json.as_deref(), Some(*line));
    }
    let head = core.audit_head();
    assert_eq!(get_str(&log[4], "hash"), head);
    assert_eq!(
        Array::from(&core.audit_since(JsValue::from(3)).expect("since")).length(),
        2
    );
    assert_eq!(
        Array::from(&core.audit_since(JsValue::from(99)).expect("since")).length(),
        0
    );

    assert_eq!(verify(s(&jsonl), Some(&head)), (true, None));
    assert_eq!(verify(arr(&log), Some(&head)), (true, None));
    assert_eq!(verify(s(""), None), (true, None));

    // Tampered, deleted, reordered, truncated (with the head), garbage: by index.
    let tampered = jsonl.replacen("\"answer\"", "\"other\"", 1);
    assert_eq!(verify(s(&tampered), Some(&head)), (false, Some(3.0)));
    let mut deleted = log.clone();
    deleted.remove(2);
    assert_eq!(verify(arr(&deleted), Some(&head)), (false, Some(2.0)));
    let mut swapped = log.clone();
    swapped.swap(1, 2);
    assert_eq!(verify(arr(&swapped), Some(&head)), (false, Some(1.0)));
    assert_eq!(verify(arr(&log[..4]), None), (true, None));
    assert_eq!(verify(arr(&log[..4]), Some(&head)), (false, Some(4.0)));
    let mut garbage = log.clone();
    garbage[1] = s("{\"seq\":1}");
    assert_eq!(verify(arr(&garbage), None), (false, Some(1.0)));

    let err = Core::verify_audit(JsValue::from(1), JsValue::UNDEFINED).expect_err("not a log");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = Core::verify_audit(s(&jsonl), JsValue::from(1)).expect_err("head not a string");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
fn page_events_are_marked_and_checked() {
    let core = policy_core(JsValue::UNDEFINED);
    core.audit_record(obj(&[
        ("event", s("revoke")),
        ("outcome", s("ok")),
        ("extra", obj(&[("capability", s("3"))])),
    ]))
    .expect("records");
    let log = entries(&core);
    assert_eq!(log.len(), 1);
    let extra = get(&log[0], "extra");
    assert_eq!(get_str(&extra, "source"), "page");
    assert_eq!(get_str(&extra, "capability"), "3");
    for (record, why) in [
        (
            obj(&[("event", s("revoked")), ("outcome", s("ok"))]),
            "event",
        ),
        (
            obj(&[("event", s("revoke")), ("outcome", s("fine"))]),
            "outcome",
        ),
        (obj(&[("event", s("revoke"))]), "no outcome"),
        (
            obj(&[
                ("event", s("revoke")),
                ("outcome", s("ok")),
                ("extra", obj(&[("source", s("core"))])),
            ]),
            "source is reserved",
        ),
        (
            obj(&[
                ("event", s("revoke")),
                ("outcome", s("ok")),
                ("extra", obj(&[("n", JsValue::from(1))])),
            ]),
            "facts are strings",
        ),
        (
            obj(&[
                ("event", s("revoke")),
                ("outcome", s("ok")),
                ("export", s("x")),
            ]),
            "unknown field",
        ),
    ] {
        let err = core.audit_record(record).expect_err(why);
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{why}");
    }
    assert_eq!(entries(&core).len(), 1, "nothing else was recorded");
}

#[wasm_bindgen_test]
fn segments_verify_only_when_linked() {
    let first = policy_core(JsValue::UNDEFINED);
    first
        .audit_record(obj(&[("event", s("revoke")), ("outcome", s("ok"))]))
        .expect("records");
    first
        .audit_record(obj(&[("event", s("revoke")), ("outcome", s("ok"))]))
        .expect("records");
    let link = |head: &str| {
        obj(&[
            ("event", s("dispose")),
            ("outcome", s("WORKER_CRASHED")),
            ("extra", obj(&[("previousHead", s(head))])),
        ])
    };
    let second = policy_core(JsValue::UNDEFINED);
    second
        .audit_record(link(&first.audit_head()))
        .expect("links");
    second
        .audit_record(obj(&[("event", s("revoke")), ("outcome", s("ok"))]))
        .expect("records");
    let mut log = entries(&first);
    log.extend(entries(&second));
    let head = second.audit_head();
    assert_eq!(verify(arr(&log), Some(&head)), (true, None));
    // The end of the first segment removed: the link no longer matches.
    let mut cut = log.clone();
    cut.remove(1);
    assert_eq!(verify(arr(&cut), Some(&head)), (false, Some(1.0)));

    // A second chain without a link is not a segment.
    let unlinked = policy_core(JsValue::UNDEFINED);
    unlinked
        .audit_record(obj(&[("event", s("revoke")), ("outcome", s("ok"))]))
        .expect("records");
    let mut log = entries(&first);
    log.extend(entries(&unlinked));
    assert_eq!(verify(arr(&log), None), (false, Some(2.0)));
}

#[wasm_bindgen_test]
fn fail_host_takes_the_denial_code_and_logs_it() {
    let mut core = policy_core(JsValue::UNDEFINED);
    let bytes = wasm(HOST_LOOP);
    let module = get(
        &try_load(&mut core, &bytes, JsValue::UNDEFINED).expect("loads"),
        "moduleId",
    );
    let start = |core: &mut Core| {
        let id = instantiate(core, &module, get_value_grant(5));
        let step = core
            .start(
                id.clone(),
                s("run"),
                arr(&[JsValue::from(10)]),
                JsValue::UNDEFINED,
            )
            .expect("starts");
        assert_eq!(get_str(&step, "status"), "host");
        id
    };
    for (code_in, code_out) in [
        ("CAPABILITY_REVOKED", "CAPABILITY_REVOKED"),
        ("CAPABILITY_QUOTA", "CAPABILITY_QUOTA"),
        ("TIMEOUT", "TIMEOUT"),
        ("TRAP", "TRAP"),
        ("HOST_ERROR", "HOST_ERROR"),
    ] {
        let id = start(&mut core);
        let record = core
            .fail_host(id, s("denied on the page"), s(code_in))
            .expect("record");
        assert_eq!(code(&record), code_out);
        let details = get(&record, "details");
        assert_eq!(get_num(&details, "capability"), 5.0);
        if code_out == "TRAP" {
            assert_eq!(get_str(&details, "trapCode"), "memory_out_of_bounds");
        }
    }
    // Any other code is refused and the call still waits for its answer.
    let id = start(&mut core);
    for bad in [s("BUSY"), s("INVALID_ARGUMENT"), JsValue::from(1)] {
        let err = core
            .fail_host(id.clone(), s("x"), bad)
            .expect_err("not a host failure");
        assert_eq!(code(&err), "INVALID_ARGUMENT");
    }
    let done = core
        .resume_host(id, arr(&[JsValue::from(1)]))
        .expect("still waiting");
    assert_eq!(get_str(&done, "status"), "finished");

    let log = entries(&core);
    let denies: Vec<String> = log
        .iter()
        .filter(|e| get_str(e, "event") == "deny")
        .map(|e| get_str(e, "outcome"))
        .collect();
    assert_eq!(denies, ["CAPABILITY_REVOKED", "CAPABILITY_QUOTA"]);
    let calls: Vec<String> = log
        .iter()
        .filter(|e| get_str(e, "event") == "call")
        .map(|e| get_str(e, "outcome"))
        .collect();
    assert_eq!(
        calls,
        [
            "CAPABILITY_REVOKED",
            "CAPABILITY_QUOTA",
            "TIMEOUT",
            "TRAP",
            "HOST_ERROR",
            "ok"
        ]
    );
}

#[wasm_bindgen_test]
fn deny_digests_carries_a_deny_list_into_a_new_core() {
    let bytes = wasm(SPIN);
    let digest = Digest::of(&bytes).to_sri();

    let mut core = policy_core(obj(&[]));
    let err = core
        .deny_digests(strs(&["md5-x"]))
        .expect_err("malformed digest");
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    core.deny_digests(strs(&[&digest])).expect("denies");
    let err = try_load(
        &mut core,
        &bytes,
        obj(&[("origin", s("https://cdn.example"))]),
    )
    .expect_err("carried over");
    assert_eq!(code(&err), "POLICY_DENIED");
    assert!(
        get_str(&err, "message").contains("since replaced"),
        "{err:?}"
    );
    // Integrity is still checked first, in the core's order.
    let other = Digest::of(b"other").to_sri();
    let err = core
        .load(
            Uint8Array::from(&bytes[..]).into(),
            s(&other),
            JsValue::UNDEFINED,
        )
        .expect_err("mismatch");
    assert_eq!(code(&err), "INTEGRITY_MISMATCH");
    let log = entries(&core);
    assert_eq!(get_str(&log[0], "event"), "policy");
    assert_eq!(get_str(&log[0], "outcome"), "POLICY_DENIED");
    assert_eq!(
        get_str(&get(&log[0], "extra"), "origin"),
        "https://cdn.example"
    );

    // Without a deny list (no policy, or denyAfterFailure: false) there is nothing to carry.
    for policy in [
        JsValue::UNDEFINED,
        obj(&[("denyAfterFailure", JsValue::FALSE)]),
    ] {
        let mut core = policy_core(policy);
        core.deny_digests(strs(&[&digest])).expect("accepted");
        try_load(&mut core, &bytes, JsValue::UNDEFINED).expect("not denied");
    }
}
