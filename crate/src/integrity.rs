//! Integrity: the SHA-256 of a guest's exact bytes, checked before anything parses them.
//!
//! The expected digest is given as SRI (`sha256-<base64>`, as in `<script integrity>`) or as 64
//! hex digits. Comparison is constant-time (`subtle`), so a caller probing digests learns
//! nothing from timing.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorCode};

/// A SHA-256 digest.
#[derive(Clone, Copy, Eq)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `sha256-<base64>` (SRI) or 64 hex digits.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for anything else: another algorithm, several digests, SRI options,
    /// bad base64 or hex, or a digest of the wrong length.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bad = |why: &str| {
            Error::invalid_argument(format!(
                "malformed integrity {text:?}: {why} (expected sha256-<base64> or 64 hex digits)"
            ))
        };
        if let Some(b64) = text.strip_prefix("sha256-") {
            if b64.contains(char::is_whitespace) || b64.contains('?') {
                return Err(bad("exactly one digest without options is accepted"));
            }
            let raw = STANDARD.decode(b64).map_err(|_| bad("invalid base64"))?;
            let bytes: [u8; 32] = raw
                .try_into()
                .map_err(|_| bad("a sha256 digest is 32 bytes"))?;
            return Ok(Self(bytes));
        }
        if let Some((alg, _)) = text.split_once('-') {
            if alg.chars().all(|c| c.is_ascii_alphanumeric()) && !alg.is_empty() {
                return Err(bad(&format!("unsupported algorithm {alg:?}")));
            }
        }
        if text.len() != 64 {
            return Err(bad("wrong length"));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| bad("invalid hex digit"))?;
            let lo = hex_value(pair[1]).ok_or_else(|| bad("invalid hex digit"))?;
            bytes[i] = (hi << 4) | lo;
        }
        Ok(Self(bytes))
    }

    /// The SRI form, `sha256-<base64>`.
    pub fn to_sri(&self) -> String {
        format!("sha256-{}", STANDARD.encode(self.0))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl PartialEq for Digest {
    /// Constant-time.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_sri())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sri())
    }
}

/// Checks `bytes` against `expected`: size cap first, then SHA-256, compared in constant time.
/// Returns the digest of the bytes. Nothing here parses the bytes.
///
/// # Errors
///
/// `MODULE_TOO_LARGE` over `max_module_bytes` (before hashing); `INTEGRITY_MISMATCH` with both
/// digests in the details when the hash differs.
pub fn verify(bytes: &[u8], expected: &Digest, max_module_bytes: u64) -> Result<Digest, Error> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > max_module_bytes {
        return Err(Error::new(
            ErrorCode::ModuleTooLarge,
            format!("module is {len} bytes, over the limit of {max_module_bytes} bytes"),
        )
        .with(|d| d.limit = Some(max_module_bytes)));
    }
    let actual = Digest::of(bytes);
    if actual != *expected {
        return Err(Error::new(
            ErrorCode::IntegrityMismatch,
            format!("module hash mismatch: expected {expected}, found {actual}"),
        )
        .with(|d| {
            d.expected_digest = Some(expected.to_sri());
            d.actual_digest = Some(actual.to_sri());
        }));
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    const ABC_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_answer() {
        assert_eq!(Digest::of(b"abc").to_hex(), ABC_HEX);
    }

    #[test]
    fn sri_and_hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::parse(&d.to_sri()).ok(), Some(d));
        assert_eq!(Digest::parse(ABC_HEX).ok(), Some(d));
        assert_eq!(Digest::parse(&ABC_HEX.to_uppercase()).ok(), Some(d));
        assert_eq!(
            d.to_sri(),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn malformed_digests_are_invalid_argument() {
        for bad in [
            "",
            "sha256-",
            "sha256-!!!!",
            "sha256-YWJj",                                         // 3 bytes
            "sha384-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", // other algorithm
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0= sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=?opt",
            &ABC_HEX[..63],
            &format!("{}zz", &ABC_HEX[..62]),
        ] {
            let err = Digest::parse(bad).expect_err(bad);
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad:?}");
            assert!(err.message().starts_with("malformed integrity"), "{err}");
        }
    }

    #[test]
    fn size_cap_comes_before_the_hash() {
        let err = verify(&[0u8; 11], &Digest::of(&[0u8; 11]), 10).expect_err("over cap");
        assert_eq!(err.code(), ErrorCode::ModuleTooLarge);
        assert_eq!(err.details().limit, Some(10));
    }

    #[test]
    fn mismatch_reports_both_digests() {
        let err = verify(b"abd", &Digest::of(b"abc"), 100).expect_err("mismatch");
        assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
        assert_eq!(
            err.details().expected_digest,
            Some(Digest::of(b"abc").to_sri())
        );
        assert_eq!(
            err.details().actual_digest,
            Some(Digest::of(b"abd").to_sri())
        );
    }
}
