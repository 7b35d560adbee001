//! The CLI's signing and audit commands, run as a user would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nestbox::audit::{AuditEvent, AuditLog, Record};
use nestbox::{Digest, ErrorCode};

fn nestbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(args)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nestbox-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn keygen_sign_verify_and_every_bad_input() {
    let dir = scratch("keys");
    let key = dir.join("release.key");
    let module = dir.join("m.wasm");
    std::fs::write(&module, wat::parse_str("(module)").expect("wat")).expect("write");

    let out = nestbox(&["keygen", "--id", "release", "--out", s(&key)]);
    assert!(out.status.success(), "{out:?}");
    let pubkey = stdout(&out).trim().to_owned();
    assert!(pubkey.starts_with("release="), "{pubkey}");
    // Never overwrites a key.
    let again = nestbox(&["keygen", "--id", "release", "--out", s(&key)]);
    assert_eq!(again.status.code(), Some(125));

    let out = nestbox(&["sign", "--key", s(&key), s(&module)]);
    assert!(out.status.success(), "{out:?}");
    let sig = stdout(&out).trim().to_owned();
    assert!(sig.starts_with("release:"), "{sig}");

    let ok = nestbox(&["verify", "--pubkey", &pubkey, s(&module), &sig]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(stdout(&ok).starts_with("ok: sha256-"), "{}", stdout(&ok));

    // With the digest pinned too.
    let sri = Digest::of(&std::fs::read(&module).expect("read")).to_sri();
    let ok = nestbox(&[
        "verify",
        "--pubkey",
        &pubkey,
        "--integrity",
        &sri,
        s(&module),
        &sig,
    ]);
    assert!(ok.status.success(), "{ok:?}");

    // A signature over other bytes.
    let other = dir.join("other.wasm");
    std::fs::write(&other, wat::parse_str("(module (func))").expect("wat")).expect("write");
    let bad = nestbox(&["verify", "--pubkey", &pubkey, s(&other), &sig]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains(ErrorCode::SignatureInvalid.as_str()));

    // A wrong key.
    let key2 = dir.join("other.key");
    let out = nestbox(&["keygen", "--id", "release", "--out", s(&key2)]);
    let wrong_pub = stdout(&out).trim().to_owned();
    let bad = nestbox(&["verify", "--pubkey", &wrong_pub, s(&module), &sig]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");

    // A malformed signature.
    let bad = nestbox(&["verify", "--pubkey", &pubkey, s(&module), "release:!!!"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("SIGNATURE_INVALID"));

    // Wrong digest pinned: integrity fails before the signature is looked at.
    let wrong = Digest::of(b"x").to_sri();
    let bad = nestbox(&[
        "verify",
        "--pubkey",
        &pubkey,
        "--integrity",
        &wrong,
        s(&module),
        &sig,
    ]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("INTEGRITY_MISMATCH"));

    // Usage errors.
    assert_eq!(
        nestbox(&["verify", s(&module), &sig]).status.code(),
        Some(125)
    );
    assert_eq!(
        nestbox(&["sign", "--key", s(&key)]).status.code(),
        Some(125)
    );
    assert_eq!(nestbox(&["bogus"]).status.code(), Some(125));
    assert_eq!(nestbox(&["demo", "--typo"]).status.code(), Some(125));
    std::fs::remove_dir_all(&dir).ok();
}

fn write_log(dir: &Path) -> (PathBuf, AuditLog) {
    let mut log = AuditLog::new();
    let d = Digest::of(b"m");
    log.append(Record::new(AuditEvent::Load).module(d), 1);
    log.append(
        Record::new(AuditEvent::Call)
            .module(d)
            .export("run")
            .fuel(10),
        2,
    );
    log.append(
        Record::new(AuditEvent::Limit).failed(ErrorCode::FuelExhausted),
        3,
    );
    let path = dir.join("audit.jsonl");
    std::fs::write(&path, log.to_jsonl()).expect("write");
    (path, log)
}

#[test]
fn audit_verify_detects_tampering() {
    let dir = scratch("audit");
    let (path, log) = write_log(&dir);
    let out = nestbox(&["audit", "verify", s(&path), "--head", &log.head()]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).starts_with("ok: 3 entries"));

    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let cases = [
        ("changed", text.replace("\"fuel\":10", "\"fuel\":11"), 1),
        ("deleted", format!("{}\n{}\n", lines[0], lines[2]), 1),
        (
            "reordered",
            format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]),
            1,
        ),
        (
            "inserted",
            format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[1], lines[2]),
            2,
        ),
        ("truncated", format!("{}\n{}\n", lines[0], lines[1]), 2),
    ];
    for (what, tampered, index) in cases {
        std::fs::write(&path, tampered).expect("write");
        let out = nestbox(&["audit", "verify", s(&path), "--head", &log.head()]);
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        assert!(
            stdout(&out).starts_with(&format!("TAMPERED: entry {index}")),
            "{what}: {}",
            stdout(&out)
        );
    }
    std::fs::write(&path, "{not json").expect("write");
    assert_eq!(
        nestbox(&["audit", "verify", s(&path)]).status.code(),
        Some(125)
    );
    std::fs::remove_dir_all(&dir).ok();
}
