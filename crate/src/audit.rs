//! The tamper-evident audit log: append-only, hash-chained entries.
//!
//! Each entry carries `prev` (the previous entry's hash; 64 zeros for the first) and
//! `hash = SHA-256(prev ‖ canonical(entry without hash))`, both in lower-case hex. The
//! canonical encoding is the entry's JSON with fields in declaration order, `extra` keys
//! sorted, no whitespace — exactly the bytes [`AuditEntry::canonical`] returns.
//!
//! Anyone holding the head hash can detect any change, deletion, insertion or reordering of
//! entries, and a truncated tail ([`verify`] with `expected_head`). Without the head, a
//! truncated tail is undetectable by construction — persist the head somewhere the guest and
//! the page's attacker cannot write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, ErrorCode};
use crate::integrity::Digest;
use crate::value::Value;

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// A trust-policy decision (allowed or denied).
    Policy,
    /// A module was loaded (or refused at load).
    Load,
    /// A module was instantiated (or refused at link/instantiation).
    Instantiate,
    /// An export was called; `outcome` is `ok` or the error code.
    Call,
    /// A capability was granted to an instance.
    Grant,
    /// A capability was revoked.
    Revoke,
    /// A capability call was denied (revoked, over quota, unknown id).
    Deny,
    /// A limit was hit.
    Limit,
    /// A sandbox or instance was disposed.
    Dispose,
}

impl AuditEvent {
    /// Every event.
    pub const ALL: [AuditEvent; 9] = [
        Self::Policy,
        Self::Load,
        Self::Instantiate,
        Self::Call,
        Self::Grant,
        Self::Revoke,
        Self::Deny,
        Self::Limit,
        Self::Dispose,
    ];

    /// The stable string form, as in the log (`"instantiate"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Load => "load",
            Self::Instantiate => "instantiate",
            Self::Call => "call",
            Self::Grant => "grant",
            Self::Revoke => "revoke",
            Self::Deny => "deny",
            Self::Limit => "limit",
            Self::Dispose => "dispose",
        }
    }
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, as the recorder's clock said.
    pub time: u64,
    /// What happened.
    pub event: AuditEvent,
    /// SHA-256 of the module involved, `sha256-<base64>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_sha256: Option<String>,
    /// The export called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// `ok`, or the error code.
    pub outcome: String,
    /// Fuel consumed, for calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Further facts (argument and result digests, capability, origin, key id, …), sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// Hash of the previous entry (hex).
    pub prev: String,
    /// `SHA-256(prev ‖ canonical entry)` (hex).
    pub hash: String,
}

/// The facts of an entry before it is chained.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// What happened (required).
    pub event: Option<AuditEvent>,
    /// SHA-256 of the module involved.
    pub module_sha256: Option<Digest>,
    /// The export called.
    pub export: Option<String>,
    /// `ok` or an error code.
    pub outcome: String,
    /// Fuel consumed.
    pub fuel: Option<u64>,
    /// Further facts.
    pub extra: BTreeMap<String, String>,
}

impl Record {
    /// A record of `event` with outcome `ok`.
    pub fn new(event: AuditEvent) -> Self {
        Self {
            event: Some(event),
            outcome: "ok".to_owned(),
            ..Self::default()
        }
    }

    /// Sets the outcome to an error's code.
    pub fn failed(mut self, code: ErrorCode) -> Self {
        self.outcome = code.as_str().to_owned();
        self
    }

    /// Sets the module digest.
    pub fn module(mut self, digest: Digest) -> Self {
        self.module_sha256 = Some(digest);
        self
    }

    /// Sets the export.
    pub fn export(mut self, export: impl Into<String>) -> Self {
        self.export = Some(export.into());
        self
    }

    /// Sets the fuel consumed.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Adds a fact.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// The fields that are hashed: everything but `hash`, in a fixed order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Canonical<'a> {
    seq: u64,
    time: u64,
    event: AuditEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    module_sha256: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: &'a Option<String>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fuel: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: &'a BTreeMap<String, String>,
    prev: &'a str,
}

impl AuditEntry {
    /// The canonical bytes that are hashed (JSON without `hash`, fixed field order, sorted
    /// `extra`, no whitespace).
    pub fn canonical(&self) -> Vec<u8> {
        let c = Canonical {
            seq: self.seq,
            time: self.time,
            event: self.event,
            module_sha256: &self.module_sha256,
            export: &self.export,
            outcome: &self.outcome,
            fuel: self.fuel,
            extra: &self.extra,
            prev: &self.prev,
        };
        // Serialising plain strings and integers into a Vec cannot fail.
        serde_json::to_vec(&c).unwrap_or_default()
    }

    /// `SHA-256(prev ‖ canonical)` in hex, recomputed from the entry's fields.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(self.canonical());
        Digest::from_bytes(h.finalize().into()).to_hex()
    }

    /// The entry as one line of JSON (for JSON Lines export).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Receives each entry as it is appended (e.g. to persist it).
pub type Sink = Box<dyn FnMut(&AuditEntry) + Send>;

/// An append-only, hash-chained log.
#[derive(Default)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
    sink: Option<Sink>,
    /// Where the chain starts when it continues an earlier segment: the sequence number of
    /// the first entry and the hash it links to (`None`: 0 and [`GENESIS`]).
    continues: Option<(u64, String)>,
}

impl core::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuditLog")
            .field("entries", &self.entries.len())
            .field("head", &self.head())
            .finish()
    }
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log whose first entry continues an earlier segment: it gets sequence number
    /// `next_seq` and links to `head`, the hash of that segment's last entry (as when a file
    /// of entries is appended to by a new process).
    pub fn continuing(next_seq: u64, head: impl Into<String>) -> Self {
        Self {
            continues: Some((next_seq, head.into())),
            ..Self::default()
        }
    }

    /// Sends every later entry to `sink` as it is appended.
    pub fn set_sink(&mut self, sink: Option<Sink>) {
        self.sink = sink;
    }

    /// Removes the sink and returns it.
    pub fn take_sink(&mut self) -> Option<Sink> {
        self.sink.take()
    }

    /// Appends `record`, stamped with `time` (ms since the epoch), and returns the entry.
    ///
    /// # Panics
    ///
    /// Never: a record without an event is logged as a `policy` event with outcome
    /// `INVALID_ARGUMENT` rather than dropped.
    pub fn append(&mut self, record: Record, time: u64) -> &AuditEntry {
        let (event, outcome) = match record.event {
            Some(e) => (e, record.outcome),
            None => (
                AuditEvent::Policy,
                ErrorCode::InvalidArgument.as_str().to_owned(),
            ),
        };
        let first_seq = self.continues.as_ref().map_or(0, |(seq, _)| *seq);
        let mut entry = AuditEntry {
            seq: first_seq.saturating_add(self.entries.len() as u64),
            time,
            event,
            module_sha256: record.module_sha256.map(|d| d.to_sri()),
            export: record.export,
            outcome,
            fuel: record.fuel,
            extra: record.extra,
            prev: self.head(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        if let Some(sink) = self.sink.as_mut() {
            sink(&entry);
        }
        self.entries.push(entry);
        let last = self.entries.len() - 1;
        &self.entries[last]
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// The hash of the newest entry ([`GENESIS`], or the continued segment's head, when
    /// empty).
    pub fn head(&self) -> String {
        match (self.entries.last(), &self.continues) {
            (Some(last), _) => last.hash.clone(),
            (None, Some((_, head))) => head.clone(),
            (None, None) => GENESIS.to_owned(),
        }
    }

    /// The log as JSON Lines (one entry per line, each ending in `\n`).
    pub fn to_jsonl(&self) -> String {
        self.entries.iter().map(|e| e.to_json() + "\n").collect()
    }
}

/// A sandbox's log, shared with its instances (they record their calls and disposal).
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorder(Arc<Mutex<AuditLog>>);

impl Recorder {
    /// The log, even if a panicking sink poisoned the lock (entries are appended whole).
    pub(crate) fn lock(&self) -> MutexGuard<'_, AuditLog> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `record`, stamped with the current time.
    pub(crate) fn record(&self, record: Record) {
        self.lock().append(record, now_ms());
    }
}

/// Milliseconds since the Unix epoch (`Date.now()` in the browser).
pub(crate) fn now_ms() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The digest the log keeps instead of argument or result values: SHA-256 of their canonical
/// text (`i32:42,i64:-1,f32:<bits>,f64:<bits>`; floats by their bit patterns).
pub fn values_digest(values: &[Value]) -> Digest {
    let text = values
        .iter()
        .map(|v| match v {
            Value::I32(x) => format!("i32:{x}"),
            Value::I64(x) => format!("i64:{x}"),
            Value::F32(x) => format!("f32:{:08x}", x.to_bits()),
            Value::F64(x) => format!("f64:{:016x}", x.to_bits()),
        })
        .collect::<Vec<_>>()
        .join(",");
    Digest::of(text.as_bytes())
}

/// Why a log failed verification: the index of the first bad entry and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyFailure {
    /// Index (0-based) of the first entry that does not verify; `entries.len()` when every
    /// entry chains but the head does not match (a truncated tail).
    pub index: usize,
    /// What was wrong.
    pub reason: String,
}

/// Checks the chain: sequence numbers from 0, each `prev` equal to the previous `hash`, each
/// `hash` recomputed; and, when given, that the last hash equals `expected_head`.
///
/// # Errors
///
/// The first entry that does not verify.
pub fn verify(entries: &[AuditEntry], expected_head: Option<&str>) -> Result<(), VerifyFailure> {
    let mut prev = GENESIS.to_owned();
    for (index, entry) in entries.iter().enumerate() {
        let fail = |reason: String| Err(VerifyFailure { index, reason });
        if entry.seq != index as u64 {
            return fail(format!("seq is {}, expected {index}", entry.seq));
        }
        if entry.prev != prev {
            return fail("prev does not match the previous entry's hash".to_owned());
        }
        if entry.compute_hash() != entry.hash {
            return fail("hash does not match the entry's contents".to_owned());
        }
        prev.clone_from(&entry.hash);
    }
    if let Some(head) = expected_head {
        if head != prev {
            return Err(VerifyFailure {
                index: entries.len(),
                reason: format!(
                    "head is {prev}, expected {head}: entries were removed from the end or the log is another log"
                ),
            });
        }
    }
    Ok(())
}

/// Checks a log of one or more segments (see the module docs): each segment with the core's
/// [`verify`]; each segment after the first must start with a link whose
/// `extra.previousHead` is the hash of the entry before it; `expected_head`, when given,
/// must be the hash of the very last entry. Indices are positions in the whole log.
///
/// # Errors
///
/// The first entry that does not verify.
pub fn verify_segments(
    entries: &[AuditEntry],
    expected_head: Option<&str>,
) -> Result<(), VerifyFailure> {
    // A new segment starts wherever `seq` drops back to 0.
    let mut starts: Vec<usize> = vec![0];
    starts.extend((1..entries.len()).filter(|&i| entries[i].seq == 0));
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(entries.len());
        let segment = &entries[start..end];
        if start > 0 {
            let before = &entries[start - 1].hash;
            match segment[0].extra.get("previousHead") {
                Some(link) if link == before => {}
                Some(link) => {
                    return Err(VerifyFailure {
                        index: start,
                        reason: format!(
                            "a new chain starts here linked to {link}, but the entry before it \
                             is {before}: entries were removed, added or reordered around a \
                             worker replacement"
                        ),
                    });
                }
                None => {
                    return Err(VerifyFailure {
                        index: start,
                        reason: "seq starts again at 0 without a link to the previous entries \
                                 (extra.previousHead): entries are missing or another log was \
                                 spliced in"
                            .to_owned(),
                    });
                }
            }
        }
        let head = if end == entries.len() {
            expected_head
        } else {
            None
        };
        verify(segment, head).map_err(|f| VerifyFailure {
            index: start + f.index,
            reason: f.reason,
        })?;
    }
    Ok(())
}

/// Parses a JSON Lines export (blank lines are ignored).
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming the first line that is not an entry.
pub fn parse_jsonl(text: &str) -> Result<Vec<AuditEntry>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::invalid_argument(format!("audit line {}: not an entry: {e}", n + 1))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_their_serialized_form() {
        for event in AuditEvent::ALL {
            let json = serde_json::to_string(&event).expect("serializes");
            assert_eq!(json, format!("\"{}\"", event.as_str()));
        }
    }

    fn sample() -> AuditLog {
        let mut log = AuditLog::new();
        let d = Digest::of(b"module");
        log.append(Record::new(AuditEvent::Load).module(d), 1_000);
        log.append(
            Record::new(AuditEvent::Call)
                .module(d)
                .export("run")
                .fuel(1234)
                .with("args", "sha256-x"),
            1_001,
        );
        log.append(
            Record::new(AuditEvent::Limit).failed(ErrorCode::FuelExhausted),
            1_002,
        );
        log.append(Record::new(AuditEvent::Dispose), 1_003);
        log
    }

    #[test]
    fn a_fresh_log_verifies_with_and_without_its_head() {
        let log = sample();
        assert_eq!(verify(log.entries(), None), Ok(()));
        assert_eq!(verify(log.entries(), Some(&log.head())), Ok(()));
        assert_eq!(log.entries()[0].prev, GENESIS);
        assert_eq!(verify(&[], Some(GENESIS)), Ok(()));
    }

    #[test]
    fn jsonl_round_trips() {
        let log = sample();
        let parsed = parse_jsonl(&log.to_jsonl()).expect("parses");
        assert_eq!(parsed, log.entries());
        assert_eq!(verify(&parsed, Some(&log.head())), Ok(()));
    }

    #[test]
    fn any_change_is_detected_at_its_index() {
        let log = sample();
        for i in 0..log.entries().len() {
            let mut e = log.entries().to_vec();
            e[i].outcome.push('!');
            assert_eq!(verify(&e, None).map_err(|f| f.index), Err(i), "edit {i}");
            let mut e = log.entries().to_vec();
            e[i].time += 1;
            assert_eq!(verify(&e, None).map_err(|f| f.index), Err(i), "time {i}");
        }
        // Re-hashing the edited entry does not help: the next entry's prev breaks.
        let mut e = log.entries().to_vec();
        e[1].fuel = Some(1);
        e[1].hash = e[1].compute_hash();
        assert_eq!(verify(&e, None).map_err(|f| f.index), Err(2));
    }

    #[test]
    fn deletion_insertion_and_reordering_are_detected() {
        let log = sample();
        let mut deleted = log.entries().to_vec();
        deleted.remove(1);
        assert_eq!(verify(&deleted, None).map_err(|f| f.index), Err(1));

        let mut inserted = log.entries().to_vec();
        inserted.insert(2, log.entries()[1].clone());
        assert_eq!(verify(&inserted, None).map_err(|f| f.index), Err(2));

        let mut swapped = log.entries().to_vec();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, None).map_err(|f| f.index), Err(1));
    }

    #[test]
    fn a_truncated_tail_is_detected_only_with_the_head() {
        let log = sample();
        let truncated = &log.entries()[..3];
        assert_eq!(
            verify(truncated, None),
            Ok(()),
            "undetectable without the head"
        );
        let failure = verify(truncated, Some(&log.head())).expect_err("head known");
        assert_eq!(failure.index, 3);
    }

    #[test]
    fn the_sink_sees_every_entry_as_it_happens() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut log = AuditLog::new();
        let s = Arc::clone(&seen);
        log.set_sink(Some(Box::new(move |e| {
            s.lock().expect("lock").push(e.hash.clone())
        })));
        log.append(Record::new(AuditEvent::Load), 1);
        log.append(Record::new(AuditEvent::Call), 2);
        let hashes: Vec<String> = log.entries().iter().map(|e| e.hash.clone()).collect();
        assert_eq!(*seen.lock().expect("lock"), hashes);
    }

    #[test]
    fn linked_segments_verify_and_a_broken_link_is_found() {
        // A replaced worker starts a new chain whose first entry links to the old head.
        let first = sample();
        let mut second = AuditLog::new();
        second.append(
            Record::new(AuditEvent::Dispose)
                .failed(ErrorCode::WorkerCrashed)
                .with("previousHead", first.head()),
            2_000,
        );
        second.append(Record::new(AuditEvent::Load), 2_001);
        let whole: Vec<AuditEntry> = first
            .entries()
            .iter()
            .chain(second.entries())
            .cloned()
            .collect();
        assert_eq!(verify_segments(&whole, Some(&second.head())), Ok(()));
        // The plain verifier sees the restart as an error; segments are explicit.
        assert!(verify(&whole, None).is_err());
        // Dropping the last entry of the first segment breaks the link.
        let mut cut = whole.clone();
        cut.remove(3);
        assert_eq!(verify_segments(&cut, None).map_err(|f| f.index), Err(3));
        // A restart without a link is refused.
        let unlinked: Vec<AuditEntry> = first
            .entries()
            .iter()
            .chain(sample().entries())
            .cloned()
            .collect();
        assert_eq!(
            verify_segments(&unlinked, None).map_err(|f| f.index),
            Err(4)
        );
        // The head still covers the end of the last segment.
        assert!(verify_segments(&whole[..5], Some(&second.head())).is_err());
    }

    #[test]
    fn garbage_lines_are_rejected_with_their_line_number() {
        let log = sample();
        let text = log.to_jsonl() + "{\"seq\": 4}\n";
        let err = parse_jsonl(&text).expect_err("bad line");
        assert!(err.message().contains("line 5"), "{err}");
        let err = parse_jsonl("not json").expect_err("bad line");
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }
}
