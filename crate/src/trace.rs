//! Tracing spans: what one call did, as a tree.
//!
//! A call made with [`CallOptions::trace`](crate::CallOptions::trace) records a **root span**
//! for the export call, and under it a **child span** per capability (host) call, per data
//! guest HTTP request and per WASI call: its name, its arguments summarised, its result or
//! errno, the fuel it cost and the time it took. The recorder is bounded: past its span limit
//! further spans are only counted, and the root span says so (`nestbox.trace.truncated`,
//! `nestbox.trace.dropped_spans`) — a truncation marker, not an error, so tracing never
//! changes what a call does. Off (the default), a call pays one `Option` check per host or
//! WASI call.
//!
//! A finished [`Trace`] exports as OpenTelemetry-shaped JSON ([`Trace::to_otlp_json`], the
//! OTLP/JSON encoding of `ExportTraceServiceRequest`): 16-byte trace id and 8-byte span ids
//! in hex, parent span ids, start and end times in Unix nanoseconds (as decimal strings, as
//! OTLP/JSON encodes 64-bit integers), typed attributes and a status.

use serde_json::{Value as Json, json};
use web_time::{Instant, SystemTime, UNIX_EPOCH};

use crate::value::Value;

/// Spans a trace keeps when the caller does not say (root included).
pub const DEFAULT_MAX_SPANS: u32 = 1_000;

/// The most spans a caller may ask a trace to keep.
pub const MAX_SPANS_LIMIT: u32 = 100_000;

/// How many argument values a span's summary shows before `…`.
const SUMMARY_VALUES: usize = 8;

/// The longest string attribute, in bytes (longer ones end in `…`).
const MAX_ATTRIBUTE_BYTES: usize = 256;

/// An attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// A string (at most 256 bytes).
    Str(String),
    /// A 64-bit integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        Self::Str(clip(value))
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        if value.len() <= MAX_ATTRIBUTE_BYTES {
            Self::Str(value)
        } else {
            Self::Str(clip(&value))
        }
    }
}

impl From<u64> for AttrValue {
    fn from(value: u64) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

fn clip(text: &str) -> String {
    if text.len() <= MAX_ATTRIBUTE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_ATTRIBUTE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One span of a [`Trace`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Its 8-byte id (never zero).
    pub span_id: u64,
    /// The index in [`Trace::spans`] of its parent; `None` for the root.
    pub parent: Option<usize>,
    /// `call <export>`, `capability <module>.<name>`, `wasi <function>` or `http_request`.
    pub name: String,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// See `start_unix_ns`; equal to it while the span is open.
    pub end_unix_ns: u64,
    /// Its attributes, in the order they were set.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// The error code and message it ended in; `None` for success.
    pub error: Option<(String, String)>,
}

impl Span {
    /// The attribute called `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// The spans of one finished call (root first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The 16-byte trace id (never zero).
    pub trace_id: u128,
    /// Root first; a child always comes after its parent.
    pub spans: Vec<Span>,
    /// Spans not kept because the trace was full.
    pub dropped: u64,
}

/// A handle to an open span; `None` where the span was dropped (trace full or tracing off).
pub(crate) type SpanRef = Option<usize>;

/// Records the spans of the running call.
#[derive(Debug)]
pub(crate) struct Tracer {
    max_spans: usize,
    trace: Trace,
    /// The wall clock at `epoch`: span times are the epoch plus monotonic time since.
    epoch_unix_ns: u64,
    epoch: Instant,
    span_base: u64,
    /// A span left open while the guest is suspended in it (a WASI wait).
    pending: SpanRef,
}

impl Tracer {
    /// A recorder that keeps at most `max_spans` spans (at least the root).
    pub(crate) fn new(max_spans: u32) -> Self {
        let mut id = [0u8; 24];
        // Ids only need to be unique, not secret: without randomness, derive them from the clock.
        if getrandom::getrandom(&mut id).is_err() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            id[..16].copy_from_slice(&now.to_le_bytes());
            id[16..].copy_from_slice(&(now as u64).rotate_left(17).to_le_bytes());
        }
        let mut trace_bytes = [0u8; 16];
        trace_bytes.copy_from_slice(&id[..16]);
        let mut span_bytes = [0u8; 8];
        span_bytes.copy_from_slice(&id[16..]);
        let epoch_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            max_spans: (max_spans.clamp(1, MAX_SPANS_LIMIT)) as usize,
            trace: Trace {
                trace_id: u128::from_le_bytes(trace_bytes).max(1),
                spans: Vec::new(),
                dropped: 0,
            },
            epoch_unix_ns,
            epoch: Instant::now(),
            span_base: u64::from_le_bytes(span_bytes),
            pending: None,
        }
    }

    fn now(&self) -> u64 {
        let since = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.epoch_unix_ns.saturating_add(since)
    }

    /// Opens a span under `parent` (the root when `None` and a root exists).
    pub(crate) fn open(
        &mut self,
        name: String,
        parent: SpanRef,
        attributes: Vec<(&'static str, AttrValue)>,
    ) -> SpanRef {
        if self.trace.spans.len() >= self.max_spans {
            self.trace.dropped += 1;
            return None;
        }
        let index = self.trace.spans.len();
        let parent = parent.or(if index == 0 { None } else { Some(0) });
        let now = self.now();
        let id = self.span_base.wrapping_add(index as u64 + 1);
        self.trace.spans.push(Span {
            span_id: if id == 0 { 1 } else { id },
            parent,
            name,
            start_unix_ns: now,
            end_unix_ns: now,
            attributes,
            error: None,
        });
        Some(index)
    }

    /// Closes `span` now with more attributes and, for a failure, its code and message.
    pub(crate) fn close(
        &mut self,
        span: SpanRef,
        attributes: Vec<(&'static str, AttrValue)>,
        error: Option<(&str, &str)>,
    ) {
        let now = self.now();
        let Some(span) = span.and_then(|i| self.trace.spans.get_mut(i)) else {
            return;
        };
        span.end_unix_ns = now;
        span.attributes.extend(attributes);
        span.error = error.map(|(code, message)| (code.to_owned(), clip(message)));
    }

    /// Opens a span under the root that started at `started` (earlier than now).
    fn open_since(
        &mut self,
        name: String,
        started: Instant,
        attributes: Vec<(&'static str, AttrValue)>,
    ) -> SpanRef {
        let span = self.open(name, None, attributes);
        if let Some(s) = span.and_then(|i| self.trace.spans.get_mut(i)) {
            let ago = u64::try_from(started.elapsed().as_nanos()).unwrap_or(0);
            s.start_unix_ns = s.start_unix_ns.saturating_sub(ago);
        }
        span
    }

    /// A span that begins and ends now-ish: it started `started` ago.
    pub(crate) fn record(
        &mut self,
        name: String,
        started: Instant,
        attributes: Vec<(&'static str, AttrValue)>,
        error: Option<(&str, &str)>,
    ) {
        let span = self.open_since(name, started, attributes);
        self.close(span, Vec::new(), error);
    }

    /// Opens a span that started `started` ago and stays open while the guest waits in it,
    /// until [`Tracer::close_pending`].
    pub(crate) fn open_pending(
        &mut self,
        name: String,
        started: Instant,
        attributes: Vec<(&'static str, AttrValue)>,
    ) {
        self.pending = self.open_since(name, started, attributes);
    }

    /// Closes the span [`Tracer::open_pending`] left open, if any.
    pub(crate) fn close_pending(&mut self, attributes: Vec<(&'static str, AttrValue)>) {
        let span = self.pending.take();
        self.close(span, attributes, None);
    }

    /// The finished trace: the root gets the truncation marker when spans were dropped.
    pub(crate) fn finish(mut self) -> Trace {
        if self.trace.dropped > 0
            && let Some(root) = self.trace.spans.first_mut()
        {
            root.attributes
                .push(("nestbox.trace.truncated", AttrValue::Bool(true)));
            root.attributes.push((
                "nestbox.trace.dropped_spans",
                AttrValue::from(self.trace.dropped),
            ));
        }
        self.trace
    }
}

/// Values as `1, -2, 3.5` (at most eight, then `…`).
pub(crate) fn summarise(values: &[Value]) -> String {
    let mut parts: Vec<String> = values
        .iter()
        .take(SUMMARY_VALUES)
        .map(|v| match v {
            Value::I32(x) => x.to_string(),
            Value::I64(x) => x.to_string(),
            Value::F32(x) => format!("{x:?}"),
            Value::F64(x) => format!("{x:?}"),
        })
        .collect();
    if values.len() > SUMMARY_VALUES {
        parts.push("…".to_owned());
    }
    parts.join(", ")
}

impl Trace {
    /// The root span (the export call).
    pub fn root(&self) -> Option<&Span> {
        self.spans.first()
    }

    /// The spans whose parent is the span at `index`.
    pub fn children(&self, index: usize) -> impl Iterator<Item = &Span> {
        self.spans
            .iter()
            .filter(move |span| span.parent == Some(index))
    }

    /// The trace in the OTLP/JSON encoding: `{"resourceSpans": [{"resource": …,
    /// "scopeSpans": [{"scope": {"name": "nestbox"}, "spans": […]}]}]}`.
    pub fn to_otlp_json(&self) -> Json {
        let trace_id = format!("{:032x}", self.trace_id);
        let spans: Vec<Json> = self
            .spans
            .iter()
            .map(|span| {
                let attributes: Vec<Json> = span
                    .attributes
                    .iter()
                    .map(|(key, value)| {
                        let value = match value {
                            AttrValue::Str(s) => json!({ "stringValue": s }),
                            AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
                            AttrValue::Bool(b) => json!({ "boolValue": b }),
                        };
                        json!({ "key": key, "value": value })
                    })
                    .collect();
                let status = match &span.error {
                    // STATUS_CODE_OK = 1, STATUS_CODE_ERROR = 2.
                    None => json!({ "code": 1 }),
                    Some((code, message)) => {
                        json!({ "code": 2, "message": format!("{code}: {message}") })
                    }
                };
                let parent = span
                    .parent
                    .and_then(|p| self.spans.get(p))
                    .map_or_else(String::new, |p| format!("{:016x}", p.span_id));
                json!({
                    "traceId": trace_id,
                    "spanId": format!("{:016x}", span.span_id),
                    "parentSpanId": parent,
                    "name": span.name,
                    // SPAN_KIND_INTERNAL for the call, SPAN_KIND_CLIENT for what it asked the host.
                    "kind": if span.parent.is_none() { 1 } else { 3 },
                    "startTimeUnixNano": span.start_unix_ns.to_string(),
                    "endTimeUnixNano": span.end_unix_ns.to_string(),
                    "attributes": attributes,
                    "status": status,
                })
            })
            .collect();
        json!({
            "resourceSpans": [{
                "resource": {
                    "attributes": [
                        { "key": "service.name", "value": { "stringValue": "nestbox" } },
                    ],
                },
                "scopeSpans": [{
                    "scope": { "name": "nestbox", "version": env!("CARGO_PKG_VERSION") },
                    "spans": spans,
                }],
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_nest_under_the_root_and_the_trace_is_bounded_with_a_marker() {
        let mut tracer = Tracer::new(3);
        let root = tracer.open("call run".into(), None, vec![("a", 1u64.into())]);
        let child = tracer.open("wasi fd_write".into(), None, Vec::new());
        tracer.close(child, vec![("wasi.errno", 0i64.into())], None);
        tracer.record("wasi clock".into(), Instant::now(), Vec::new(), None);
        // The limit (3) is reached: these two are counted, not kept.
        tracer.record("wasi x".into(), Instant::now(), Vec::new(), None);
        let dropped = tracer.open("wasi y".into(), None, Vec::new());
        assert_eq!(dropped, None);
        tracer.close(dropped, Vec::new(), Some(("TRAP", "ignored")));
        tracer.close(root, Vec::new(), Some(("TRAP", "boom")));
        let trace = tracer.finish();
        assert_eq!(trace.spans.len(), 3);
        assert_eq!(trace.dropped, 2);
        assert_eq!(trace.children(0).count(), 2);
        let root = trace.root().expect("root");
        assert_eq!(root.parent, None);
        assert_eq!(
            root.attribute("nestbox.trace.dropped_spans"),
            Some(&AttrValue::Int(2))
        );
        assert!(root.end_unix_ns >= root.start_unix_ns);

        let json = trace.to_otlp_json();
        let spans = &json["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().map(Vec::len), Some(3));
        let trace_id = spans[0]["traceId"].as_str().expect("trace id");
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0".repeat(32));
        assert_eq!(spans[0]["parentSpanId"], "");
        assert_eq!(spans[1]["parentSpanId"], spans[0]["spanId"]);
        assert_eq!(spans[0]["status"]["code"], 2);
        assert_eq!(spans[0]["status"]["message"], "TRAP: boom");
        assert_eq!(spans[1]["attributes"][0]["value"]["intValue"], "0");
        let start: u64 = spans[0]["startTimeUnixNano"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("start time");
        assert!(
            start > 1_600_000_000_000_000_000,
            "a Unix time in ns: {start}"
        );
    }

    #[test]
    fn long_attributes_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(300);
        let AttrValue::Str(s) = AttrValue::from(long.as_str()) else {
            panic!("a string attribute");
        };
        assert!(s.len() <= MAX_ATTRIBUTE_BYTES && s.ends_with('…'));
        assert_eq!(summarise(&[Value::I32(1); 10]), "1, 1, 1, 1, 1, 1, 1, 1, …");
    }
}
