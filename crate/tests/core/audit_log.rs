//! The sandbox records policy decisions, loads, instantiations, grants, calls (with digests of
//! arguments and results), denials, limit hits and disposal in its hash-chained audit log.

use std::sync::{Arc, Mutex};

use nestbox::audit::{AuditEvent, values_digest, verify};
use nestbox::{
    CapabilityId, Digest, Error, ErrorCode, Grants, Limits, Signature, Value, ValueType::*,
};

use crate::common::*;

#[test]
fn a_session_is_recorded_in_order_and_verifies() {
    let sb = sandbox(Limits {
        fuel: 1_000_000,
        ..Limits::default()
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    sb.set_audit_sink(Some(Box::new(move |e| {
        sink.lock().expect("lock").push(e.seq)
    })));

    let bytes = fixture("host_log");
    let module = load(&sb, &bytes);
    let grants = Grants::new()
        .grant(
            "env",
            "log",
            CapabilityId(1),
            Signature::new([I32, I32], []),
        )
        .expect("grant")
        .grant(
            "env",
            "double",
            CapabilityId(2),
            Signature::new([I64], [I64]),
        )
        .expect("grant");
    let mut inst = sb.instantiate(&module, &grants).expect("instantiates");
    inst.call("greet", &[], |c, _| {
        Ok(match c.capability {
            CapabilityId(2) => vec![Value::I64(42)],
            _ => vec![],
        })
    })
    .expect("runs");
    let err = inst
        .call("greet", &[], |_, _| Err(Error::host_failed("boom")))
        .expect_err("host error");
    assert_eq!(err.code(), ErrorCode::HostError);
    drop(inst);

    let spin = load(&sb, &fixture("infinite_loop"));
    let mut runaway = sb.instantiate(&spin, &Grants::new()).expect("instantiates");
    assert!(call(&mut runaway, "spin", &[]).is_err());

    let entries = sb.audit_entries();
    let summary: Vec<(AuditEvent, &str)> = entries
        .iter()
        .map(|e| (e.event, e.outcome.as_str()))
        .collect();
    use AuditEvent::*;
    assert_eq!(
        summary,
        vec![
            (Policy, "ok"),
            (Load, "ok"),
            (Instantiate, "ok"),
            (Grant, "ok"),
            (Grant, "ok"),
            (Call, "ok"),
            (Call, "HOST_ERROR"),
            (Dispose, "ok"),
            (Policy, "ok"),
            (Load, "ok"),
            (Instantiate, "ok"),
            (Call, "FUEL_EXHAUSTED"),
            (Limit, "FUEL_EXHAUSTED"),
        ]
    );
    let ok_call = &entries[5];
    assert_eq!(ok_call.module_sha256, Some(Digest::of(&bytes).to_sri()));
    assert_eq!(ok_call.export.as_deref(), Some("greet"));
    assert!(ok_call.fuel.is_some_and(|f| f > 0));
    assert_eq!(
        ok_call.extra.get("args"),
        Some(&values_digest(&[]).to_sri())
    );
    assert_eq!(
        ok_call.extra.get("results"),
        Some(&values_digest(&[Value::I64(42)]).to_sri())
    );
    assert_eq!(
        entries[3].extra.get("import").map(String::as_str),
        Some("env.log")
    );

    assert_eq!(verify(&entries, Some(&sb.audit_head())), Ok(()));
    assert_eq!(
        *seen.lock().expect("lock"),
        (0..entries.len() as u64).collect::<Vec<_>>(),
        "the sink saw every entry as it happened"
    );
    // The JSON Lines export parses back to the same chain.
    let parsed = nestbox::audit::parse_jsonl(&sb.audit_jsonl()).expect("parses");
    assert_eq!(parsed, entries);
    assert_eq!(sb.audit_since(11).len(), 2);
}

#[test]
fn denials_limits_and_refusals_are_recorded() {
    let sb = sandbox(Limits {
        max_instances: 1,
        ..Limits::default()
    });
    let module = load(&sb, &fixture("host_log"));
    let grants = Grants::new()
        .grant(
            "env",
            "log",
            CapabilityId(5),
            Signature::new([I32, I32], []),
        )
        .expect("grant")
        .grant(
            "env",
            "double",
            CapabilityId(6),
            Signature::new([I64], [I64]),
        )
        .expect("grant");
    let mut inst = sb.instantiate(&module, &grants).expect("instantiates");
    // The embedder revoked capability 5 on its side and ends the call with that code.
    let err = inst
        .call("greet", &[], |_, _| {
            Err(Error::new(
                ErrorCode::CapabilityRevoked,
                "capability env.log was revoked",
            ))
        })
        .expect_err("revoked");
    assert_eq!(err.code(), ErrorCode::CapabilityRevoked);
    // A second instance is over the limit.
    let refused = sb
        .instantiate(&module, &grants)
        .expect_err("instance limit");
    assert_eq!(refused.code(), ErrorCode::InstanceLimit);
    // Not granted at all.
    let refused = sb
        .instantiate(&module, &Grants::new())
        .expect_err("not granted");
    assert_eq!(
        refused.code(),
        ErrorCode::InstanceLimit,
        "the limit comes first"
    );

    let events: Vec<(AuditEvent, String)> = sb
        .audit_entries()
        .iter()
        .map(|e| (e.event, e.outcome.clone()))
        .collect();
    let deny = events
        .iter()
        .position(|(e, o)| *e == AuditEvent::Deny && o == "CAPABILITY_REVOKED")
        .expect("a deny entry");
    assert_eq!(
        events[deny + 1],
        (AuditEvent::Call, "CAPABILITY_REVOKED".to_owned())
    );
    assert!(events.contains(&(AuditEvent::Instantiate, "INSTANCE_LIMIT".to_owned())));
    assert!(events.contains(&(AuditEvent::Limit, "INSTANCE_LIMIT".to_owned())));
    let deny_entry = &sb.audit_entries()[deny];
    assert_eq!(
        deny_entry.extra.get("capability").map(String::as_str),
        Some("5")
    );
}

#[test]
fn failed_loads_are_recorded() {
    let sb = sandbox(Limits {
        max_module_bytes: 1_000,
        ..Limits::default()
    });
    let good = fixture("add");
    assert!(sb.load(&good, &Digest::of(b"other")).is_err());
    assert!(sb.load(&[0; 2_000], &Digest::of(&[0; 2_000])).is_err());
    assert!(
        sb.load(b"\0asm\x01\0\0\0\xff", &Digest::of(b"\0asm\x01\0\0\0\xff"))
            .is_err()
    );
    let outcomes: Vec<(AuditEvent, String)> = sb
        .audit_entries()
        .iter()
        .map(|e| (e.event, e.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (AuditEvent::Load, "INTEGRITY_MISMATCH".to_owned()),
            (AuditEvent::Load, "MODULE_TOO_LARGE".to_owned()),
            (AuditEvent::Policy, "ok".to_owned()),
            (AuditEvent::Load, "INVALID_MODULE".to_owned()),
        ]
    );
    // The mismatch names both digests.
    let first = &sb.audit_entries()[0];
    assert_eq!(first.module_sha256, Some(Digest::of(&good).to_sri()));
    assert_eq!(
        first.extra.get("expected"),
        Some(&Digest::of(b"other").to_sri())
    );
}

#[test]
fn fail_host_without_a_pending_host_call_changes_nothing() {
    let sb = sandbox(Limits::default());
    let mut inst = instance(&sb, "add");
    let err = inst.fail_host(Error::host_failed("nothing pending"));
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(inst.state(), nestbox::InstanceState::Idle);
    assert_eq!(
        call(&mut inst, "add", &[Value::I32(1), Value::I32(1)]).expect("still fine"),
        vec![Value::I32(2)]
    );
}
