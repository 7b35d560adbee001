//! The audit log from JavaScript: `Core.auditSince`, `auditHead`, `auditJsonl`,
//! `auditRecord`, the static `Core.verifyAudit`, and `failHost`'s codes.
//!
//! Entries cross as plain objects with exactly the fields of the JSON Lines export (`seq`,
//! `time`, `event`, `moduleSha256`, `export`, `outcome`, `fuel`, `extra`, `prev`, `hash`;
//! optional ones absent when empty): each is made by `JSON.parse` of the entry's own JSON, so
//! the object and the exported line can never disagree.
//!
//! ## Segments
//!
//! A core's log starts at `seq` 0 with `prev` = 64 zeros. When the page's worker is replaced,
//! the new core starts a new chain: the page records, as that chain's first entry, a link
//! (`auditRecord` with `extra.previousHead` = the hash of the last entry it holds). A log
//! kept by the page is therefore one or more *segments*, and [`verify_segments`](crate::audit::verify_segments) checks each
//! with the core's own verifier ([`crate::audit::verify`]) plus the links between them, so the
//! one head hash at the end still covers everything before it.

use std::collections::BTreeMap;

use js_sys::{Array, JSON, Object};
use wasm_bindgen::prelude::*;

use crate::audit::{AuditEntry, AuditEvent, Record, VerifyFailure, verify_segments};
use crate::error::{Error, ErrorCode, TrapCode};
use crate::integrity::Digest;

use super::Core;
use super::convert::{array_from_js, entries, index_from_js, string_from_js, unknown_field};

#[wasm_bindgen(typescript_custom_section)]
const TS_AUDIT_TYPES: &str = r#"
/** The trust policy of a `Core` (`new Core(limits, policy)`); absent: permissive. */
export interface CorePolicy {
  /** If not empty, only these digests (SRI or hex) may load. */
  allowedDigests?: string[];
  /** Origin (`https://cdn.example`, as `URL.origin`) → digests allowed from it. */
  origins?: Record<string, string[]>;
  /** Ed25519 public keys (base64 or hex) trusted for signatures, by id. */
  keys?: { id: string; publicKey: string }[];
  /** Every module must carry a valid signature by one of `keys`. */
  requireSignature?: boolean;
  /** A module that failed integrity or its signature is denied for the life of the core (default true). */
  denyAfterFailure?: boolean;
}

/** Where a module came from (`load(bytes, integrity, provenance)`). */
export interface CoreProvenance {
  origin?: string;
  /** `<key id>:<base64 signature>` over `"nestbox-module-v1\n" ‖ SHA-256(module)`. */
  signature?: string;
}

/** What happened, in an audit entry. */
export type CoreAuditEvent =
  | "policy" | "load" | "instantiate" | "call" | "grant" | "revoke" | "deny" | "limit" | "dispose";

/** One audit entry: the fields of its JSON line. */
export interface CoreAuditEntry {
  seq: number;
  time: number;
  event: CoreAuditEvent;
  moduleSha256?: string;
  export?: string;
  outcome: string;
  fuel?: number;
  extra?: Record<string, string>;
  prev: string;
  hash: string;
}

/** An embedder's own event (`auditRecord`); `extra.source` is set to `"page"`. */
export interface CoreAuditRecord {
  event: CoreAuditEvent;
  /** `"ok"` or an error code. */
  outcome: string;
  moduleSha256?: string;
  extra?: Record<string, string>;
}

/** What `Core.verifyAudit` says. */
export type CoreVerifyResult = { ok: true } | { ok: false; index: number; reason: string };

/** The codes `failHost` takes (`TRAP` is `memory_out_of_bounds`). */
export type CoreHostFailureCode = "HOST_ERROR" | "CAPABILITY_REVOKED" | "CAPABILITY_QUOTA" | "TIMEOUT" | "TRAP";
"#;

/// The most facts one page event may carry, and the longest text of each.
const MAX_EXTRA: usize = 32;
const MAX_TEXT: usize = 4096;

/// An entry as a plain object with the fields of its JSON line.
pub(crate) fn entry_to_js(entry: &AuditEntry) -> Result<JsValue, Error> {
    JSON::parse(&entry.to_json())
        .map_err(|_| Error::invalid_argument("internal: an audit entry is not valid JSON"))
}

fn entries_to_js(entries: &[AuditEntry]) -> Result<JsValue, Error> {
    let out = Array::new();
    for entry in entries {
        out.push(&entry_to_js(entry)?);
    }
    Ok(out.into())
}

/// Entries from JSON Lines text or an array of entry objects (or of JSON lines). A line or
/// element that is not an entry is a verification failure *at its index* (a log damaged
/// there), not a misuse of the API; anything that is neither text nor an array is.
fn parse_log(value: &JsValue) -> Result<Result<Vec<AuditEntry>, VerifyFailure>, Error> {
    let items: Vec<String> = if let Some(text) = value.as_string() {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    } else if Array::is_array(value) {
        let mut items = Vec::new();
        for (i, item) in array_from_js(value, "log")?.iter().enumerate() {
            let text = match item.as_string() {
                Some(text) => text,
                None => JSON::stringify(item)
                    .ok()
                    .and_then(|s| s.as_string())
                    .ok_or_else(|| {
                        Error::invalid_argument(format!(
                            "log[{i}] is neither an entry object nor a JSON line"
                        ))
                    })?,
            };
            items.push(text);
        }
        items
    } else {
        return Err(Error::invalid_argument(
            "the log must be JSON Lines text or an array of audit entries",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, text) in items.iter().enumerate() {
        match serde_json::from_str::<AuditEntry>(text) {
            Ok(entry) => out.push(entry),
            Err(e) => {
                return Ok(Err(VerifyFailure {
                    index,
                    reason: format!("not an audit entry: {e}"),
                }));
            }
        }
    }
    Ok(Ok(out))
}

/// A [`Record`] of the embedder's own event from `{event, outcome, moduleSha256?, extra?}`,
/// marked `extra.source = "page"`.
fn record_from_js(value: &JsValue) -> Result<Record, Error> {
    const FIELDS: &[&str] = &["event", "outcome", "moduleSha256", "extra"];
    let (mut event, mut outcome) = (None, None);
    let mut record = Record::default();
    for (name, field) in entries(value, "record")? {
        let what = format!("record.{name}");
        match name.as_str() {
            "event" => {
                let text = string_from_js(&field, &what)?;
                event = Some(
                    serde_json::from_value::<AuditEvent>(serde_json::Value::String(text.clone()))
                        .map_err(|_| {
                        Error::invalid_argument(format!(
                            "{what}: unknown event {text:?} (expected policy, load, \
                                 instantiate, call, grant, revoke, deny, limit or dispose)"
                        ))
                    })?,
                );
            }
            "outcome" => {
                let text = string_from_js(&field, &what)?;
                let known =
                    text == "ok" || ErrorCode::ALL.iter().any(|c| c.as_str() == text.as_str());
                if !known {
                    return Err(Error::invalid_argument(format!(
                        "{what}: {text:?} is neither \"ok\" nor an error code"
                    )));
                }
                outcome = Some(text);
            }
            "moduleSha256" => {
                let text = string_from_js(&field, &what)?;
                record.module_sha256 =
                    Some(Digest::parse(&text).map_err(|e| {
                        Error::invalid_argument(format!("{what}: {}", e.message()))
                    })?);
            }
            "extra" => record.extra = extra_from_js(&field, &what)?,
            _ => return Err(unknown_field("record", &name, FIELDS)),
        }
    }
    record.event = Some(event.ok_or_else(|| Error::invalid_argument("record.event is required"))?);
    record.outcome =
        outcome.ok_or_else(|| Error::invalid_argument("record.outcome is required"))?;
    record.extra.insert("source".to_owned(), "page".to_owned());
    Ok(record)
}

fn extra_from_js(value: &JsValue, what: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut extra = BTreeMap::new();
    for (key, field) in entries(value, what)? {
        let text = string_from_js(&field, &format!("{what}.{key}"))?;
        if key == "source" {
            return Err(Error::invalid_argument(format!(
                "{what}.source is reserved (page events are marked source: \"page\")"
            )));
        }
        if key.len() > 256 || text.len() > MAX_TEXT {
            return Err(Error::invalid_argument(format!(
                "{what}.{key}: keys are at most 256 bytes and values at most {MAX_TEXT}"
            )));
        }
        extra.insert(key, text);
    }
    if extra.len() > MAX_EXTRA {
        return Err(Error::invalid_argument(format!(
            "{what}: at most {MAX_EXTRA} facts per event"
        )));
    }
    Ok(extra)
}

/// The error `failHost(instanceId, message, code?)` ends a host call with. Only the codes a
/// host call can end in on the page are accepted; `TRAP` is an out-of-bounds access of a
/// host function's memory view.
pub(crate) fn host_failure_from_js(message: &str, code: &JsValue) -> Result<Error, Error> {
    if code.is_undefined() || code.is_null() {
        return Ok(Error::host_failed(message));
    }
    let text = string_from_js(code, "code")?;
    let code = ErrorCode::parse(&text).filter(|c| ErrorCode::HOST_FAILURES.contains(c));
    Ok(match code {
        Some(ErrorCode::HostError) => Error::host_failed(message),
        Some(ErrorCode::Trap) => Error::trap(TrapCode::MemoryOutOfBounds, message),
        Some(code) => Error::new(code, message),
        None => {
            let expected: Vec<&str> = ErrorCode::HOST_FAILURES
                .iter()
                .map(|c| c.as_str())
                .collect();
            return Err(Error::invalid_argument(format!(
                "code {text:?} cannot end a host call (expected one of {})",
                expected.join(", ")
            )));
        }
    })
}

fn throw(error: Error) -> JsValue {
    super::convert::error_to_js(&error)
}

#[wasm_bindgen]
impl Core {
    /// `auditSince(seq)`: the entries from sequence number `seq` on, oldest first (`[]` when
    /// there are none yet). The worker forwards new entries to the page with it.
    #[wasm_bindgen(js_name = auditSince, unchecked_return_type = "CoreAuditEntry[]")]
    pub fn audit_since(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] seq: JsValue,
    ) -> Result<JsValue, JsValue> {
        let seq = index_from_js(&seq, "seq").map_err(throw)?;
        entries_to_js(&self.sandbox.audit_since(u64::from(seq))).map_err(throw)
    }

    /// `auditHead()`: the hash of the newest entry (64 zeros when the log is empty).
    #[wasm_bindgen(js_name = auditHead)]
    pub fn audit_head(&self) -> String {
        self.sandbox.audit_head()
    }

    /// `auditJsonl()`: the whole log as JSON Lines (each line ends in `\n`).
    #[wasm_bindgen(js_name = auditJsonl)]
    pub fn audit_jsonl(&self) -> String {
        self.sandbox.audit_jsonl()
    }

    /// `auditRecord({event, outcome, moduleSha256?, extra?})`: appends the embedder's own
    /// event (e.g. a capability revoked on the page), marked `extra.source = "page"`.
    ///
    /// Throws `INVALID_ARGUMENT` for an unknown event, an outcome that is neither `"ok"` nor
    /// an error code, a malformed digest, a non-string fact, `extra.source`, or an unknown
    /// field.
    #[wasm_bindgen(js_name = auditRecord)]
    pub fn audit_record(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CoreAuditRecord")] record: JsValue,
    ) -> Result<(), JsValue> {
        let record = record_from_js(&record).map_err(throw)?;
        self.sandbox.audit_record(record);
        Ok(())
    }

    /// `Core.verifyAudit(log, head?)`: checks a log — JSON Lines text, or an array of entries
    /// (objects as `auditSince` returns them, or JSON lines) — with the core's verifier:
    /// `{ok: true}`, or `{ok: false, index, reason}` for the first entry that does not verify
    /// (`index` = the number of entries when only `head` disagrees: a truncated tail). A log
    /// of several segments (worker replaced) verifies when each segment links to the one
    /// before it. Needs no `Core` instance.
    ///
    /// Throws `INVALID_ARGUMENT` when `log` is neither text nor an array, or `head` is not a
    /// string.
    #[wasm_bindgen(js_name = verifyAudit, unchecked_return_type = "CoreVerifyResult")]
    pub fn verify_audit(
        #[wasm_bindgen(unchecked_param_type = "string | CoreAuditEntry[] | string[]")] log: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "string")] head: JsValue,
    ) -> Result<JsValue, JsValue> {
        let head = if head.is_undefined() || head.is_null() {
            None
        } else {
            Some(string_from_js(&head, "head").map_err(throw)?)
        };
        let result = match parse_log(&log).map_err(throw)? {
            Ok(entries) => verify_segments(&entries, head.as_deref()),
            Err(failure) => Err(failure),
        };
        let out = Object::new();
        let set = |k: &str, v: &JsValue| {
            let _ = js_sys::Reflect::set(&out, &JsValue::from_str(k), v);
        };
        match result {
            Ok(()) => set("ok", &JsValue::TRUE),
            Err(f) => {
                set("ok", &JsValue::FALSE);
                set("index", &JsValue::from(f.index as f64));
                set("reason", &JsValue::from_str(&f.reason));
            }
        }
        Ok(out.into())
    }
}
