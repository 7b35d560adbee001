//! Integrity is checked before anything parses the bytes.

use nestbox::{Digest, ErrorCode, Limits};

use crate::common::*;

#[test]
fn pinned_digest_loads_in_sri_and_hex_form() {
    let sb = sandbox(Limits::default());
    let bytes = fixture("add");
    let digest = Digest::of(&bytes);
    for text in [digest.to_sri(), digest.to_hex()] {
        let m = sb
            .load(&bytes, &Digest::parse(&text).expect("parses"))
            .expect("loads");
        assert_eq!(m.digest(), digest);
        assert_eq!(m.size_bytes(), bytes.len() as u64);
    }
}

#[test]
fn wrong_digest_is_integrity_mismatch_with_both_digests() {
    let sb = sandbox(Limits::default());
    let bytes = fixture("add");
    let other = Digest::of(b"something else");
    let err = sb.load(&bytes, &other).expect_err("wrong digest");
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
    assert_eq!(err.details().expected_digest, Some(other.to_sri()));
    assert_eq!(
        err.details().actual_digest,
        Some(Digest::of(&bytes).to_sri())
    );
    assert!(err.message().contains("expected"), "{err}");
    assert_sandbox_still_works(&sb);
}

#[test]
fn bytes_with_a_wrong_digest_are_never_parsed() {
    // Garbage that would be INVALID_MODULE if it were parsed.
    let sb = sandbox(Limits::default());
    let err = sb
        .load(b"\0asm garbage", &Digest::of(b"anything"))
        .expect_err("mismatch");
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
}

#[test]
fn one_flipped_byte_is_detected() {
    let sb = sandbox(Limits::default());
    let bytes = fixture("add");
    let digest = Digest::of(&bytes);
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = sb.load(&tampered, &digest).expect_err("tampered");
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
}

#[test]
fn malformed_digest_strings_are_invalid_argument() {
    for text in ["", "sha256-", "sha512-abc", "not a digest", "sha256-AAAA"] {
        let err = Digest::parse(text).expect_err(text);
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{text:?}");
    }
}

#[test]
fn oversized_module_is_refused_before_hashing() {
    let sb = sandbox(Limits {
        max_module_bytes: 1024,
        ..Limits::default()
    });
    let big = vec![0u8; 1025];
    // Even with the right digest, the size cap comes first.
    let err = sb.load(&big, &Digest::of(&big)).expect_err("too large");
    assert_eq!(err.code(), ErrorCode::ModuleTooLarge);
    assert_eq!(err.details().limit, Some(1024));
    assert_sandbox_still_works(&sb);
}
