//! The trust policy and the deny list, enforced by `Sandbox::load_with` before parsing.

use std::collections::BTreeMap;

use nestbox::policy::{ModuleSignature, Provenance, TrustPolicy, TrustedKey, public_key_of};
use nestbox::{Digest, ErrorCode, Limits, Sandbox};

use crate::common::*;

const SECRET: [u8; 32] = [3; 32];
const WRONG_SECRET: [u8; 32] = [4; 32];

fn signing_policy() -> TrustPolicy {
    TrustPolicy {
        keys: vec![TrustedKey::parse("release", &public_key_of(&SECRET)).expect("key")],
        require_signature: true,
        deny_after_failure: true,
        ..TrustPolicy::default()
    }
}

fn signed_by(secret: &[u8; 32], bytes: &[u8]) -> Provenance {
    Provenance {
        origin: None,
        signature: Some(
            ModuleSignature::sign("release", secret, &Digest::of(bytes))
                .expect("sign")
                .to_text(),
        ),
    }
}

#[test]
fn a_signed_module_loads_and_the_decision_is_logged() {
    let sb = Sandbox::with_policy(Limits::default(), signing_policy()).expect("sandbox");
    let bytes = fixture("add");
    sb.load_with(&bytes, &Digest::of(&bytes), &signed_by(&SECRET, &bytes))
        .expect("valid signature");
    let policy = &sb.audit_entries()[0];
    assert_eq!(policy.outcome, "ok");
    assert_eq!(
        policy.extra.get("keyId").map(String::as_str),
        Some("release")
    );
}

#[test]
fn a_bad_signature_denies_the_module_for_the_life_of_the_sandbox() {
    let sb = Sandbox::with_policy(Limits::default(), signing_policy()).expect("sandbox");
    let bytes = fixture("add");
    let digest = Digest::of(&bytes);
    for (what, prov) in [
        ("missing", Provenance::default()),
        ("wrong key", signed_by(&WRONG_SECRET, &bytes)),
        ("over other bytes", signed_by(&SECRET, b"other")),
        (
            "malformed",
            Provenance {
                origin: None,
                signature: Some("release:@@".to_owned()),
            },
        ),
    ] {
        let fresh = Sandbox::with_policy(Limits::default(), signing_policy()).expect("sandbox");
        let err = fresh.load_with(&bytes, &digest, &prov).expect_err(what);
        assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{what}: {err}");
    }
    let err = sb
        .load_with(&bytes, &digest, &signed_by(&WRONG_SECRET, &bytes))
        .expect_err("wrong key");
    assert_eq!(err.code(), ErrorCode::SignatureInvalid);
    // Now even a good signature is refused: the digest is on the deny list.
    let err = sb
        .load_with(&bytes, &digest, &signed_by(&SECRET, &bytes))
        .expect_err("denied");
    assert_eq!(err.code(), ErrorCode::PolicyDenied, "{err}");
    let entries = sb.audit_entries();
    let outcomes: Vec<&str> = entries.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["SIGNATURE_INVALID", "POLICY_DENIED"]);
    assert_eq!(
        entries[0].extra.get("denied").map(String::as_str),
        Some("true")
    );

    // Other modules still load.
    let other = fixture("count_loop");
    sb.load_with(&other, &Digest::of(&other), &signed_by(&SECRET, &other))
        .expect("another module");
}

#[test]
fn a_missing_signature_is_refused_but_not_denied() {
    let sb = Sandbox::with_policy(Limits::default(), signing_policy()).expect("sandbox");
    let bytes = fixture("add");
    let digest = Digest::of(&bytes);
    let err = sb
        .load_with(&bytes, &digest, &Provenance::default())
        .expect_err("unsigned");
    assert_eq!(err.code(), ErrorCode::SignatureInvalid);
    assert_eq!(sb.audit_entries()[0].extra.get("denied"), None);
    sb.load_with(&bytes, &digest, &signed_by(&SECRET, &bytes))
        .expect("the signed retry loads");
}

#[test]
fn the_deny_list_can_be_turned_off() {
    let policy = TrustPolicy {
        deny_after_failure: false,
        ..signing_policy()
    };
    let sb = Sandbox::with_policy(Limits::default(), policy).expect("sandbox");
    let bytes = fixture("add");
    let digest = Digest::of(&bytes);
    assert!(
        sb.load_with(&bytes, &digest, &Provenance::default())
            .is_err()
    );
    sb.load_with(&bytes, &digest, &signed_by(&SECRET, &bytes))
        .expect("not denied");
}

#[test]
fn bytes_that_failed_integrity_stay_denied() {
    let sb = Sandbox::with_policy(
        Limits::default(),
        TrustPolicy {
            deny_after_failure: true,
            ..TrustPolicy::default()
        },
    )
    .expect("sandbox");
    // Flip one byte of a data segment: still a valid module, but not the pinned one.
    let good = fixture("host_log");
    let at = good
        .windows(5)
        .position(|w| w == b"hello")
        .expect("data segment");
    let mut tampered = good.clone();
    tampered[at] = b'j';
    let err = sb
        .load(&tampered, &Digest::of(&good))
        .expect_err("tampered");
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
    // The page "fixes" its pin to the tampered bytes: still refused.
    let err = sb
        .load(&tampered, &Digest::of(&tampered))
        .expect_err("denied");
    assert_eq!(err.code(), ErrorCode::PolicyDenied);
    sb.load(&good, &Digest::of(&good))
        .expect("the real module loads");
    // The permissive default (Sandbox::new) keeps no deny list.
    let open = sandbox(Limits::default());
    assert!(open.load(&tampered, &Digest::of(&good)).is_err());
    open.load(&tampered, &Digest::of(&tampered))
        .expect("no deny list without a policy");
}

#[test]
fn origins_are_bound_to_digests() {
    let a = fixture("add");
    let b = fixture("count_loop");
    let policy = TrustPolicy {
        allowed_digests: vec![Digest::of(&a), Digest::of(&b)],
        origins: BTreeMap::from([
            ("https://a.example".to_owned(), vec![Digest::of(&a)]),
            ("https://b.example".to_owned(), vec![Digest::of(&b)]),
        ]),
        ..TrustPolicy::default()
    };
    let sb = Sandbox::with_policy(Limits::default(), policy).expect("sandbox");
    let from = |o: &str| Provenance {
        origin: Some(o.to_owned()),
        signature: None,
    };
    let module = sb
        .load_with(&a, &Digest::of(&a), &from("https://a.example"))
        .expect("a from a");
    for (bytes, prov, what) in [
        (
            &b,
            from("https://a.example"),
            "a digest allowed for another origin",
        ),
        (&a, from("https://evil.example"), "an unknown origin"),
        (&a, Provenance::default(), "no origin"),
    ] {
        let err = sb
            .load_with(bytes, &Digest::of(bytes), &prov)
            .expect_err(what);
        assert_eq!(err.code(), ErrorCode::PolicyDenied, "{what}");
    }
    let not_listed = fixture("traps");
    let err = sb
        .load_with(
            &not_listed,
            &Digest::of(&not_listed),
            &from("https://a.example"),
        )
        .expect_err("not on the allowlist");
    assert_eq!(err.code(), ErrorCode::PolicyDenied);
    let entries = sb.audit_entries();
    let origins: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.extra.get("origin").map(String::as_str))
        .collect();
    assert!(
        origins.contains(&Some("https://evil.example")),
        "{origins:?}"
    );
    // Still usable after every refusal.
    let mut inst = sb
        .instantiate(&module, &nestbox::Grants::new())
        .expect("instantiates");
    assert_eq!(
        call(
            &mut inst,
            "add",
            &[nestbox::Value::I32(2), nestbox::Value::I32(3)]
        )
        .expect("runs"),
        vec![nestbox::Value::I32(5)]
    );
}
