//! The trust policy and a module's provenance, from JavaScript.
//!
//! `new Core(limits, policy?)` takes
//!
//! ```text
//! { allowedDigests?: string[],                  // SRI ("sha256-…") or 64 hex digits
//!   origins?: { "https://cdn.example": string[] },
//!   keys?: [{ id: string, publicKey: string }], // base64 or 64 hex digits (Ed25519)
//!   requireSignature?: boolean,                 // default false
//!   denyAfterFailure?: boolean }                // default true when a policy is given
//! ```
//!
//! and `load(bytes, integrity, provenance?)` takes `{ origin?: string, signature?: string }`
//! (`signature`: `<key id>:<base64>`). Without a policy the sandbox is permissive (any module
//! whose integrity checks out, no deny list), as [`TrustPolicy::permissive`].
//!
//! As everywhere in the bindings, an unknown field or a value of the wrong type is
//! `INVALID_ARGUMENT`: a typo in a security policy must never silently mean "allow".

use std::collections::BTreeMap;

use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::integrity::Digest;
use crate::policy::{Provenance, TrustPolicy, TrustedKey};

use super::Core;
use super::convert::{array_from_js, bool_from_js, entries, string_from_js, unknown_field};

const POLICY_FIELDS: &[&str] = &[
    "allowedDigests",
    "origins",
    "keys",
    "requireSignature",
    "denyAfterFailure",
];

/// A [`TrustPolicy`] from an optional plain object (see the module docs). `undefined` or
/// `null` is the permissive policy.
pub(crate) fn policy_from_js(value: &JsValue) -> Result<TrustPolicy, Error> {
    if value.is_undefined() || value.is_null() {
        return Ok(TrustPolicy::permissive());
    }
    // Destructured without `..`: a new field in `TrustPolicy` fails to compile here until it
    // is given a JavaScript name.
    let mut policy = TrustPolicy {
        deny_after_failure: true,
        ..TrustPolicy::default()
    };
    let TrustPolicy {
        allowed_digests,
        origins,
        keys,
        require_signature,
        deny_after_failure,
    } = &mut policy;
    for (name, field) in entries(value, "policy")? {
        let what = format!("policy.{name}");
        match name.as_str() {
            "allowedDigests" => *allowed_digests = digests_from_js(&field, &what)?,
            "origins" => *origins = origins_from_js(&field, &what)?,
            "keys" => *keys = keys_from_js(&field, &what)?,
            "requireSignature" => *require_signature = bool_from_js(&field, &what)?,
            "denyAfterFailure" => *deny_after_failure = bool_from_js(&field, &what)?,
            _ => return Err(unknown_field("policy", &name, POLICY_FIELDS)),
        }
    }
    if policy.require_signature && policy.keys.is_empty() {
        return Err(Error::invalid_argument(
            "policy.requireSignature is true but policy.keys is empty: no module could ever load",
        ));
    }
    Ok(policy)
}

fn digests_from_js(value: &JsValue, what: &str) -> Result<Vec<Digest>, Error> {
    array_from_js(value, what)?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let item = format!("{what}[{i}]");
            Digest::parse(&string_from_js(d, &item)?)
                .map_err(|e| Error::invalid_argument(format!("{item}: {}", e.message())))
        })
        .collect()
}

fn origins_from_js(value: &JsValue, what: &str) -> Result<BTreeMap<String, Vec<Digest>>, Error> {
    let mut origins = BTreeMap::new();
    for (origin, digests) in entries(value, what)? {
        check_origin(&origin, what)?;
        let list = digests_from_js(&digests, &format!("{what}[{origin:?}]"))?;
        origins.insert(origin, list);
    }
    Ok(origins)
}

/// An origin as the page serialises it: `scheme://host[:port]`, lower case, no path, no
/// trailing slash. The core compares origins as exact strings, so anything else could never
/// match and is refused rather than silently denying every module.
fn check_origin(origin: &str, what: &str) -> Result<(), Error> {
    let ok = origin.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.contains(['/', '?', '#', '@'])
            && !rest
                .chars()
                .any(|c| c.is_whitespace() || c.is_ascii_uppercase())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "{what}: {origin:?} is not an origin (expected scheme://host[:port] in lower case, \
             as URL.origin gives it)"
        )))
    }
}

fn keys_from_js(value: &JsValue, what: &str) -> Result<Vec<TrustedKey>, Error> {
    let mut keys: Vec<TrustedKey> = Vec::new();
    for (i, item) in array_from_js(value, what)?.iter().enumerate() {
        let item_what = format!("{what}[{i}]");
        let (mut id, mut public_key) = (None, None);
        for (key, field) in entries(item, &item_what)? {
            let field_what = format!("{item_what}.{key}");
            match key.as_str() {
                "id" => id = Some(string_from_js(&field, &field_what)?),
                "publicKey" => public_key = Some(string_from_js(&field, &field_what)?),
                _ => return Err(unknown_field(&item_what, &key, &["id", "publicKey"])),
            }
        }
        let missing = |f: &str| Error::invalid_argument(format!("{item_what}.{f} is required"));
        let id = id.ok_or_else(|| missing("id"))?;
        let public_key = public_key.ok_or_else(|| missing("publicKey"))?;
        let parsed = TrustedKey::parse(&id, &public_key)
            .map_err(|e| Error::invalid_argument(format!("{item_what}: {}", e.message())))?;
        if keys.iter().any(|k| k.id == parsed.id) {
            return Err(Error::invalid_argument(format!(
                "{item_what}: key id {id:?} is listed twice"
            )));
        }
        keys.push(parsed);
    }
    Ok(keys)
}

/// A [`Provenance`] from an optional `{origin?, signature?}`.
pub(crate) fn provenance_from_js(value: &JsValue) -> Result<Provenance, Error> {
    let mut provenance = Provenance::default();
    if value.is_undefined() || value.is_null() {
        return Ok(provenance);
    }
    for (name, field) in entries(value, "provenance")? {
        let what = format!("provenance.{name}");
        match name.as_str() {
            "origin" => {
                let origin = string_from_js(&field, &what)?;
                check_origin(&origin, &what)?;
                provenance.origin = Some(origin);
            }
            // Not checked here: a malformed signature is the policy's `SIGNATURE_INVALID`
            // (and is logged), not a misuse of the API.
            "signature" => provenance.signature = Some(string_from_js(&field, &what)?),
            _ => return Err(unknown_field("provenance", &name, &["origin", "signature"])),
        }
    }
    Ok(provenance)
}

#[wasm_bindgen]
impl Core {
    /// `denyDigests(digests)`: denies these module digests (SRI or hex) for the life of the
    /// core, as if they had failed verification in it — the deny list of an earlier worker of
    /// the same sandbox. Ignored by a core whose policy does not deny after failure.
    ///
    /// Throws `INVALID_ARGUMENT` for a malformed digest (nothing changes).
    #[wasm_bindgen(js_name = denyDigests)]
    pub fn deny_digests(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] digests: JsValue,
    ) -> Result<(), JsValue> {
        let digests =
            digests_from_js(&digests, "digests").map_err(|e| super::convert::error_to_js(&e))?;
        self.sandbox.deny_carried(&digests);
        Ok(())
    }
}
