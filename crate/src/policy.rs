//! The trust policy: which code may run.
//!
//! Checked after integrity (the digest is known and matches what the caller pinned) and
//! before parsing. A policy can
//!
//! - allow only listed module digests;
//! - bind origins to digests: a module fetched from an origin must match a digest allowed for
//!   that origin (and an origin with no entry is denied when any origin is bound);
//! - require an Ed25519 signature over the module digest by one of its trusted keys.
//!
//! Signatures are detached: `<key id>:<base64 of 64 bytes>`, over the message
//! `"nestbox-module-v1\n" ‖ SHA-256(module)` (a fixed context string, so a signature made for
//! nestbox can never be replayed as a signature over something else).
//!
//! Every comparison of digests is constant-time ([`Digest`]'s `PartialEq`); signature
//! verification is `ed25519-dalek`'s strict verification.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Serialize;

use crate::error::{Error, ErrorCode};
use crate::integrity::Digest;

/// The context every module signature is made in.
pub const SIGNATURE_CONTEXT: &[u8] = b"nestbox-module-v1\n";

/// The message that is signed for a module with `digest`.
pub fn signed_message(digest: &Digest) -> Vec<u8> {
    [SIGNATURE_CONTEXT, digest.as_bytes().as_slice()].concat()
}

/// A public key the policy trusts, with the id signatures name it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The id used in signatures (`<key id>:<signature>`), e.g. `release-2026`.
    pub id: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

impl TrustedKey {
    /// Parses a key id and a base64 (or 64-hex-digit) public key.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for a malformed key or id.
    pub fn parse(id: &str, public_key: &str) -> Result<Self, Error> {
        check_key_id(id)?;
        let bytes = decode_fixed::<32>(public_key, "public key")?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| {
            Error::invalid_argument(format!("public key {id:?} is not a valid Ed25519 key: {e}"))
        })?;
        Ok(Self {
            id: id.to_owned(),
            public_key: bytes,
        })
    }
}

fn check_key_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "key id {id:?} must be 1-64 characters of [A-Za-z0-9._-]"
        )))
    }
}

fn decode_fixed<const N: usize>(text: &str, what: &str) -> Result<[u8; N], Error> {
    let text = text.trim();
    let raw = if text.len() == 2 * N && text.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..N)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| Error::invalid_argument(format!("{what}: invalid hex")))?
    } else {
        STANDARD
            .decode(text)
            .map_err(|_| Error::invalid_argument(format!("{what}: invalid base64")))?
    };
    raw.try_into()
        .map_err(|_| Error::invalid_argument(format!("{what}: must be {N} bytes")))
}

/// A detached module signature: which key, and the 64 signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSignature {
    /// The signing key's id.
    pub key_id: String,
    /// The Ed25519 signature over [`signed_message`].
    pub signature: [u8; 64],
}

impl ModuleSignature {
    /// Parses `<key id>:<base64 signature>`.
    ///
    /// # Errors
    ///
    /// `SIGNATURE_INVALID` for a malformed signature string: a caller who supplies a
    /// signature that cannot be read has not supplied a valid one.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let malformed = |why: String| {
            Error::new(
                ErrorCode::SignatureInvalid,
                format!("malformed signature: {why} (expected <key id>:<base64>)"),
            )
        };
        let (key_id, sig) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| malformed("no ':'".to_owned()))?;
        check_key_id(key_id).map_err(|e| malformed(e.message().to_owned()))?;
        let signature =
            decode_fixed::<64>(sig, "signature").map_err(|e| malformed(e.message().to_owned()))?;
        Ok(Self {
            key_id: key_id.to_owned(),
            signature,
        })
    }

    /// Signs the module with `digest` using a 32-byte Ed25519 secret key (for build tools and
    /// the CLI's `nestbox sign`).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for a malformed key id.
    pub fn sign(key_id: &str, secret_key: &[u8; 32], digest: &Digest) -> Result<Self, Error> {
        check_key_id(key_id)?;
        let key = SigningKey::from_bytes(secret_key);
        Ok(Self {
            key_id: key_id.to_owned(),
            signature: key.sign(&signed_message(digest)).to_bytes(),
        })
    }

    /// The text form, `<key id>:<base64>`.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.key_id, STANDARD.encode(self.signature))
    }
}

/// The public key of a 32-byte Ed25519 secret key, base64.
pub fn public_key_of(secret_key: &[u8; 32]) -> String {
    STANDARD.encode(
        SigningKey::from_bytes(secret_key)
            .verifying_key()
            .to_bytes(),
    )
}

/// Which code may run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// If not empty, only these digests may load.
    pub allowed_digests: Vec<Digest>,
    /// Origin (`https://example.com`) → digests allowed from it. If not empty, a module with
    /// an origin must match its origin's list, and an origin not listed is denied.
    pub origins: BTreeMap<String, Vec<Digest>>,
    /// Keys whose signatures are trusted.
    pub keys: Vec<TrustedKey>,
    /// Every module must carry a valid signature by one of `keys`.
    pub require_signature: bool,
    /// A module that fails integrity or its signature is denied for the life of the sandbox
    /// (default `true`; see [`TrustPolicy::permissive`]).
    pub deny_after_failure: bool,
}

/// What the caller says about a module when loading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// Where the bytes came from (an origin such as `https://cdn.example`), if known.
    pub origin: Option<String>,
    /// A detached signature, `<key id>:<base64>`.
    pub signature: Option<String>,
}

/// The policy's verdict on an allowed module, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allowed {
    /// The id of the key whose signature verified, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl TrustPolicy {
    /// Allows any module whose integrity checks out; no deny list. What a sandbox without a
    /// policy uses.
    pub fn permissive() -> Self {
        Self {
            deny_after_failure: false,
            ..Self::default()
        }
    }

    /// Decides whether the module with `digest` (already integrity-checked) may load.
    ///
    /// # Errors
    ///
    /// `POLICY_DENIED` (digest not allowed, origin not allowed or bound to other digests);
    /// `SIGNATURE_INVALID` (signature required but missing, malformed, by an unknown key, or
    /// not verifying).
    pub fn evaluate(&self, digest: &Digest, provenance: &Provenance) -> Result<Allowed, Error> {
        let denied = |why: String| {
            Error::new(
                ErrorCode::PolicyDenied,
                format!("policy denies module {digest}: {why}"),
            )
        };
        if !self.allowed_digests.is_empty() && !self.allowed_digests.contains(digest) {
            return Err(denied("digest is not on the allowlist".to_owned()));
        }
        if !self.origins.is_empty() {
            let Some(origin) = provenance.origin.as_deref() else {
                return Err(denied(
                    "origins are bound but the module's origin is unknown".to_owned(),
                ));
            };
            match self.origins.get(origin) {
                None => return Err(denied(format!("origin {origin} is not allowed"))),
                Some(digests) if !digests.contains(digest) => {
                    return Err(denied(format!("digest is not allowed for origin {origin}")));
                }
                Some(_) => {}
            }
        }
        let key_id = match provenance.signature.as_deref() {
            Some(text) => Some(self.verify_signature(digest, text)?),
            None if self.require_signature => {
                return Err(Error::new(
                    ErrorCode::SignatureInvalid,
                    format!("module {digest} has no signature and the policy requires one"),
                ));
            }
            None => None,
        };
        Ok(Allowed { key_id })
    }

    fn verify_signature(&self, digest: &Digest, text: &str) -> Result<String, Error> {
        let sig = ModuleSignature::parse(text)?;
        let invalid = |why: &str| {
            Error::new(
                ErrorCode::SignatureInvalid,
                format!(
                    "signature by key {:?} on module {digest}: {why}",
                    sig.key_id
                ),
            )
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sig.key_id)
            .ok_or_else(|| invalid("unknown key"))?;
        let verifying = VerifyingKey::from_bytes(&key.public_key)
            .map_err(|_| invalid("trusted key is invalid"))?;
        verifying
            .verify_strict(
                &signed_message(digest),
                &Signature::from_bytes(&sig.signature),
            )
            .map_err(|_| invalid("does not verify"))?;
        Ok(sig.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const OTHER_SECRET: [u8; 32] = [9; 32];

    fn policy_trusting(secret: &[u8; 32], id: &str) -> TrustPolicy {
        TrustPolicy {
            keys: vec![TrustedKey::parse(id, &public_key_of(secret)).expect("key")],
            require_signature: true,
            ..TrustPolicy::default()
        }
    }

    fn signed(secret: &[u8; 32], id: &str, digest: &Digest) -> Provenance {
        Provenance {
            origin: None,
            signature: Some(
                ModuleSignature::sign(id, secret, digest)
                    .expect("sign")
                    .to_text(),
            ),
        }
    }

    #[test]
    fn a_good_signature_is_accepted_and_names_its_key() {
        let d = Digest::of(b"module");
        let p = policy_trusting(&SECRET, "release");
        let allowed = p
            .evaluate(&d, &signed(&SECRET, "release", &d))
            .expect("valid");
        assert_eq!(allowed.key_id.as_deref(), Some("release"));
    }

    #[test]
    fn bad_signatures_are_signature_invalid() {
        let d = Digest::of(b"module");
        let p = policy_trusting(&SECRET, "release");
        let cases = [
            ("missing", Provenance::default()),
            ("wrong key", signed(&OTHER_SECRET, "release", &d)),
            ("unknown key id", signed(&SECRET, "other", &d)),
            (
                "over other bytes",
                signed(&SECRET, "release", &Digest::of(b"other module")),
            ),
            (
                "malformed",
                Provenance {
                    origin: None,
                    signature: Some("release:not-base64!".to_owned()),
                },
            ),
            (
                "truncated",
                Provenance {
                    origin: None,
                    signature: Some("release:AAAA".to_owned()),
                },
            ),
            (
                "no key id",
                Provenance {
                    origin: None,
                    signature: Some(STANDARD.encode([0u8; 64])),
                },
            ),
        ];
        for (what, prov) in cases {
            let err = p.evaluate(&d, &prov).expect_err(what);
            assert_eq!(err.code(), ErrorCode::SignatureInvalid, "{what}: {err}");
        }
    }

    #[test]
    fn a_flipped_signature_bit_fails() {
        let d = Digest::of(b"module");
        let p = policy_trusting(&SECRET, "release");
        let mut sig = ModuleSignature::sign("release", &SECRET, &d).expect("sign");
        sig.signature[10] ^= 1;
        let prov = Provenance {
            origin: None,
            signature: Some(sig.to_text()),
        };
        assert_eq!(
            p.evaluate(&d, &prov).expect_err("flipped").code(),
            ErrorCode::SignatureInvalid
        );
    }

    #[test]
    fn allowlist_and_origins() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let p = TrustPolicy {
            allowed_digests: vec![a, b],
            origins: BTreeMap::from([("https://cdn.example".to_owned(), vec![a])]),
            ..TrustPolicy::default()
        };
        let from = |o: &str| Provenance {
            origin: Some(o.to_owned()),
            signature: None,
        };
        p.evaluate(&a, &from("https://cdn.example"))
            .expect("allowed");
        for (digest, prov, what) in [
            (
                Digest::of(b"c"),
                from("https://cdn.example"),
                "not on the allowlist",
            ),
            (b, from("https://cdn.example"), "allowed for another origin"),
            (a, from("https://evil.example"), "unknown origin"),
            (a, Provenance::default(), "origin unknown"),
        ] {
            let err = p.evaluate(&digest, &prov).expect_err(what);
            assert_eq!(err.code(), ErrorCode::PolicyDenied, "{what}: {err}");
        }
    }

    #[test]
    fn keys_and_ids_are_validated() {
        assert!(TrustedKey::parse("ok-id", &public_key_of(&SECRET)).is_ok());
        for (id, key) in [
            ("", public_key_of(&SECRET)),
            ("bad id", public_key_of(&SECRET)),
            ("id", "AAAA".to_owned()),
            ("id", "zz".repeat(32)),
        ] {
            assert_eq!(
                TrustedKey::parse(id, &key).expect_err(id).code(),
                ErrorCode::InvalidArgument
            );
        }
    }

    #[test]
    fn the_permissive_policy_allows_anything_verified() {
        let d = Digest::of(b"x");
        assert_eq!(
            TrustPolicy::permissive().evaluate(&d, &Provenance::default()),
            Ok(Allowed { key_id: None })
        );
    }
}
