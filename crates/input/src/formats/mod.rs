//! Input formats: native audit Events, and the wrappers managed clusters put around them.
//!
//! [`decode_input`] takes one JSON value of input (a line, or a whole document) and gives every
//! event in it, whatever the wrapper:
//!
//! | family | shapes |
//! |---|---|
//! | `k8s` | an audit Event; an `EventList`; a JSON array of Events |
//! | `gke` | a Cloud Logging `LogEntry` with a `protoPayload` (REST JSON, `gcloud logging read --format=json`); a Go `logging.Entry` dump with an `AuditPayload` string ([`gke`]) |
//! | `eks` | a CloudWatch Logs subscription payload (`logEvents`), also base64 of gzip of one (Kinesis, Firehose, `{"awslogs":{"data":…}}`) and several concatenated; `aws logs filter-log-events` / `get-log-events` output (`events`); Logs Insights results (`results`, or rows with `@message`) ([`eks`]) |
//! | `aks` | diagnostic-settings records (`{"records":[…]}` or one record), `properties.log` a string or an object; `AzureDiagnostics` rows (`log_s`); Log Analytics `AKSAudit` rows, also as a query result with `tables` ([`aks`]) |
//!
//! Detection is per JSON value, so a file may mix shapes line by line. `--input-format` forces
//! one family: a value of another family is then rejected, with a reason that says what it is.
//!
//! **Accounting.** A record is one event's worth of input: a native Event, one item of an
//! `EventList` or array, one GKE entry, one AKS record or row, one EKS log event. Each record
//! becomes exactly one event or one reject, so a wrapper holding N records counts N. A wrapper
//! holding none (an empty `records`, a CloudWatch `CONTROL_MESSAGE`) counts as an empty line. A
//! reject's text is the innermost part found bad: the embedded event's JSON when the wrapper was
//! fine and the event was not, else the wrapper element (the GKE entry, the AKS record…).

pub mod aks;
pub mod eks;
pub mod gke;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use kaq_schema::{DecodeError, DecodeOptions, Event, Rejected, decode_event, decode_event_into};
use memchr::memmem::Finder;
use serde_json::value::RawValue;

/// Which input format to read; `Auto` detects it per record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// Detect the shape of every record (native Events and every wrapper below).
    #[default]
    Auto,
    /// kube-apiserver audit Events only (JSON lines, `EventList`, arrays).
    K8s,
    /// GKE Cloud Logging entries (`protoPayload` with `serviceName: k8s.io`).
    Gke,
    /// EKS CloudWatch Logs exports (subscription payloads, plain or base64 gzip; CLI and Insights output).
    Eks,
    /// AKS diagnostic records (`properties.log`) and Log Analytics `AKSAudit` rows.
    Aks,
}

impl InputFormat {
    /// Every format, in `--help` order.
    pub const ALL: [InputFormat; 5] =
        [InputFormat::Auto, InputFormat::K8s, InputFormat::Gke, InputFormat::Eks, InputFormat::Aks];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Auto => "auto",
            InputFormat::K8s => "k8s",
            InputFormat::Gke => "gke",
            InputFormat::Eks => "eks",
            InputFormat::Aks => "aks",
        }
    }

    /// What a record of this format is, for reasons ("a GKE Cloud Logging entry").
    fn what(self) -> &'static str {
        match self {
            InputFormat::Auto | InputFormat::K8s => "a native audit Event",
            InputFormat::Gke => "a GKE Cloud Logging entry",
            InputFormat::Eks => "an EKS CloudWatch Logs export",
            InputFormat::Aks => "an AKS diagnostic record or AKSAudit row",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        InputFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown input format `{s}` (expected one of: auto, k8s, gke, eks, aks)"))
    }
}

/// Whether a handler may rule out a line by its raw text before decoding (a prefilter that
/// searches the line for the values a query wants): only when the line is a native Event, whose
/// text holds its values as written. A wrapped event's values may be escaped (AKS, EKS),
/// compressed (base64 gzip) or written differently (GKE: `methodName`, gRPC status codes), so
/// such lines must be decoded. True for `k8s`, and for `auto` when the line starts the way the
/// API server writes every Event (`{"kind":"Event",`).
pub fn raw_text_is_native(format: InputFormat, line: &[u8]) -> bool {
    match format {
        InputFormat::K8s => true,
        InputFormat::Auto => line.starts_with(br#"{"kind":"Event","#),
        _ => false,
    }
}

/// Deepest nesting of wrappers (an array of payloads holding base64 blobs holding payloads…).
const MAX_DEPTH: usize = 4;
/// The most a base64 gzip blob may decompress to.
pub(crate) const MAX_BLOB_BYTES: u64 = 256 << 20;

/// What [`decode_input`] gives for each record: the event with its own JSON text, or why the
/// record is not an event. The event is lent for the call (it is built in place, not moved).
pub type Record<'a> = Result<(&'a Event<'a>, &'a str), Rejected<'a>>;

/// Where each record goes: the callback, and how many records it was given.
pub(crate) struct Emit<'o> {
    out: &'o mut dyn FnMut(Record<'_>),
    n: usize,
}

impl Emit<'_> {
    /// Decodes `text` as one native event; a failure is rejected with `raw` as its text.
    pub(crate) fn event(&mut self, ctx: &Ctx<'_>, what: &str, text: &str) {
        self.n += 1;
        let mut ev = Event::default();
        match decode_event_into(text, ctx.opts, &mut ev) {
            Ok(()) => (self.out)(Ok((&ev, text))),
            Err(e) => (self.out)(Err(Rejected { error: prefixed(what, e), text })),
        }
    }

    /// A record that is not an event.
    pub(crate) fn reject(&mut self, what: &str, reason: impl Into<String>, raw: &str) {
        self.n += 1;
        (self.out)(Err(Rejected { error: prefixed(what, DecodeError(reason.into())), text: raw }));
    }
}

fn prefixed(what: &str, e: DecodeError) -> DecodeError {
    if what.is_empty() { e } else { DecodeError(format!("{what}: {}", e.0)) }
}

/// `what` followed by `then`, for naming a part of a wrapper in a reason.
pub(crate) fn join(what: &str, then: impl fmt::Display) -> String {
    if what.is_empty() { then.to_string() } else { format!("{what}: {then}") }
}

/// How to decode.
pub(crate) struct Ctx<'a> {
    pub(crate) opts: &'a DecodeOptions,
    pub(crate) format: InputFormat,
    depth: usize,
}

impl Ctx<'_> {
    fn deeper(&self) -> Option<Ctx<'_>> {
        (self.depth < MAX_DEPTH).then_some(Ctx { opts: self.opts, format: self.format, depth: self.depth + 1 })
    }
}

/// Decodes one JSON value of input (a line of JSON lines, or one document), or one base64 gzip
/// blob, in `format`: each event, or each rejected record, goes to `out` in order, the event with
/// its own JSON text (the audit Event as written, or, for GKE entries and AKSAudit rows, the Event
/// kaq made of it). Returns how many records there were (0 for a wrapper holding none).
pub fn decode_input(text: &str, opts: &DecodeOptions, format: InputFormat, out: &mut dyn FnMut(Record<'_>)) -> usize {
    let mut emit = Emit { out, n: 0 };
    value(&Ctx { opts, format, depth: 0 }, text, &mut emit, "");
    emit.n
}

/// The top-level keys of an object, their values left as text.
pub(crate) type Obj<'a> = HashMap<String, &'a RawValue>;

/// A JSON string's value (unescaped), when `raw` is a string.
pub(crate) fn as_str(raw: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    let t = raw.get();
    if !t.starts_with('"') {
        return None;
    }
    serde_json::from_str::<std::borrow::Cow<'_, str>>(t).ok()
}

/// The elements of a JSON array.
pub(crate) fn as_array(raw: &RawValue) -> Option<Vec<&RawValue>> {
    if !raw.get().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<&RawValue>>(raw.get()).ok()
}

/// An object's keys, when `raw` is an object.
pub(crate) fn as_object(raw: &RawValue) -> Option<Obj<'_>> {
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Obj<'_>>(raw.get()).ok()
}

/// The JSON type of a value, for reasons.
pub(crate) fn type_name(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// One JSON value (or a blob).
pub(crate) fn value(ctx: &Ctx<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let t = text.trim_start();
    match t.as_bytes().first() {
        Some(b'[') => array(ctx, text, emit, what),
        Some(b'{') => object(ctx, text, emit, what),
        _ if eks::looks_like_blob(t) && matches!(ctx.format, InputFormat::Auto | InputFormat::Eks) => {
            match ctx.deeper() {
                Some(inner) => eks::blob(&inner, t.trim_end(), emit, what),
                None => emit.reject(what, "wrappers nested too deeply", text),
            }
        }
        // Not JSON (or a bare string/number): the decoder says why.
        _ => emit.event(ctx, what, text),
    }
}

fn array(ctx: &Ctx<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let items = match serde_json::from_str::<Vec<&RawValue>>(text) {
        Ok(items) => items,
        Err(e) => return emit.reject(what, DecodeError::from(e).0, text),
    };
    let Some(inner) = ctx.deeper() else { return emit.reject(what, "wrappers nested too deeply", text) };
    for (i, item) in items.into_iter().enumerate() {
        let what = join(what, format_args!("array element {i}"));
        if item.get().starts_with('{') {
            object(&inner, item.get(), emit, &what);
        } else {
            value(&inner, item.get(), emit, &what);
        }
    }
}

/// The shapes of object kaq knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Native,
    EventList,
    GkeEntry,
    GkeDump,
    EksPayload,
    EksLambda,
    EksEvents,
    EksInsights,
    EksInsightsRow,
    EksKinesis,
    AksRecords,
    AksRecord,
    AzureDiagnostics,
    AksAuditRow,
    LogAnalytics,
    Unknown,
}

impl Shape {
    fn of(m: &Obj<'_>) -> Shape {
        let has = |k: &str| m.contains_key(k);
        if has("auditID") {
            return Shape::Native;
        }
        if m.get("kind").and_then(|k| as_str(k)).is_some_and(|k| k == "EventList") {
            return Shape::EventList;
        }
        if has("protoPayload") {
            Shape::GkeEntry
        } else if has("AuditPayload") {
            Shape::GkeDump
        } else if has("logEvents") || has("messageType") {
            Shape::EksPayload
        } else if has("awslogs") {
            Shape::EksLambda
        } else if has("records") {
            Shape::AksRecords
        } else if has("properties") && (has("category") || has("operationName") || has("resourceId")) {
            Shape::AksRecord
        } else if has("log_s") {
            Shape::AzureDiagnostics
        } else if has("AuditId") {
            Shape::AksAuditRow
        } else if has("tables") {
            Shape::LogAnalytics
        } else if has("events") {
            Shape::EksEvents
        } else if has("results") {
            Shape::EksInsights
        } else if has("@message") {
            Shape::EksInsightsRow
        } else if has("Records") {
            Shape::EksKinesis
        } else {
            Shape::Unknown
        }
    }

    fn family(self) -> InputFormat {
        match self {
            Shape::Native | Shape::EventList | Shape::Unknown => InputFormat::K8s,
            Shape::GkeEntry | Shape::GkeDump => InputFormat::Gke,
            Shape::EksPayload
            | Shape::EksLambda
            | Shape::EksEvents
            | Shape::EksInsights
            | Shape::EksInsightsRow
            | Shape::EksKinesis => InputFormat::Eks,
            Shape::AksRecords
            | Shape::AksRecord
            | Shape::AzureDiagnostics
            | Shape::AksAuditRow
            | Shape::LogAnalytics => InputFormat::Aks,
        }
    }
}

fn object(ctx: &Ctx<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    // The fast path: a native Event (or EventList) decodes at once.
    let mut native_error = None;
    if matches!(ctx.format, InputFormat::Auto | InputFormat::K8s) {
        static EVENT_LIST: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"EventList\""));
        // A text that starts as the API server writes an Event names its kind first, and an
        // EventList must name its kind once: no need to look for one.
        let event_first = text.starts_with(r#"{"kind":"Event","#);
        if !event_first && EVENT_LIST.find(text.as_bytes()).is_some() && event_list(ctx, text, emit, what) {
            return;
        }
        let mut ev = Event::default();
        match decode_event_into(text, ctx.opts, &mut ev) {
            Ok(()) => {
                emit.n += 1;
                return (emit.out)(Ok((&ev, text)));
            }
            Err(e) if ctx.format == InputFormat::K8s => {
                let mut e = e;
                if e.0.contains("this looks like") {
                    e.0.push_str("; --input-format k8s reads native Events only");
                }
                return emit.reject(what, prefixed("", e).0, text);
            }
            Err(e) => native_error = Some(e),
        }
    }
    // Several values one after another (CloudWatch payloads concatenated by Firehose).
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Obj<'_>>();
    let first = match stream.next() {
        Some(Ok(m)) => m,
        _ => return emit.reject(what, fallback_error(ctx, native_error, text).0, text),
    };
    let first_end = stream.byte_offset();
    let shape = Shape::of(&first);
    let concatenated = !text[first_end..].trim().is_empty();
    if concatenated && !matches!(shape, Shape::EksPayload | Shape::EksLambda) {
        return emit.reject(what, fallback_error(ctx, native_error, text).0, text);
    }
    if !concatenated {
        return dispatch(ctx, shape, &first, text, emit, what, native_error);
    }
    // Concatenated payloads: each its own value.
    let mut start = 0;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let mut i = 0;
    loop {
        match stream.next() {
            None => break,
            Some(Ok(raw)) => {
                let what = join(what, format_args!("payload {i}"));
                match as_object(raw) {
                    Some(m) => dispatch(ctx, Shape::of(&m), &m, raw.get(), emit, &what, None),
                    None => emit.reject(
                        &what,
                        format!("expected a CloudWatch Logs payload object, found {}", type_name(raw)),
                        raw.get(),
                    ),
                }
            }
            Some(Err(e)) => {
                let rest = &text[start..];
                let what = join(what, format_args!("payload {i}"));
                emit.reject(
                    &what,
                    format!("invalid JSON: {e} (the rest of the line from here is rejected)"),
                    rest.trim(),
                );
                break;
            }
        }
        start = stream.byte_offset();
        i += 1;
    }
}

/// Why `text` is not a native event: the decoder's error, from the fast path or now.
fn fallback_error(ctx: &Ctx<'_>, e: Option<DecodeError>, text: &str) -> DecodeError {
    e.unwrap_or_else(|| match decode_event(text, ctx.opts) {
        Err(e) => e,
        Ok(_) => DecodeError("not an audit Event".into()),
    })
}

/// An `EventList`: each item a native event. False when `text` is not one after all.
fn event_list(ctx: &Ctx<'_>, text: &str, emit: &mut Emit<'_>, what: &str) -> bool {
    let Some(items) = kaq_schema::decode::event_list_items(text) else { return false };
    for (i, item) in items.into_iter().enumerate() {
        emit.event(ctx, &join(what, format_args!("EventList item {i}")), item.get());
    }
    true
}

/// Hands an object of a known shape to its reader, or rejects it when `--input-format` says
/// otherwise.
fn dispatch(
    ctx: &Ctx<'_>,
    shape: Shape,
    m: &Obj<'_>,
    text: &str,
    emit: &mut Emit<'_>,
    what: &str,
    native_error: Option<DecodeError>,
) {
    let family = shape.family();
    if ctx.format != InputFormat::Auto && family != ctx.format {
        let found = match shape {
            Shape::Unknown => "not".to_string(),
            _ => format!("{}, not", family.what()),
        };
        let expected = ctx.format.what();
        let reason = format!("{found} {expected} (--input-format {})", ctx.format);
        return emit.reject(what, reason, text);
    }
    let Some(inner) = ctx.deeper() else { return emit.reject(what, "wrappers nested too deeply", text) };
    match shape {
        // Auto: a native event, or what the decoder says of it.
        Shape::Native | Shape::Unknown => match native_error {
            Some(e) => emit.reject(what, e.0, text),
            None => emit.event(ctx, what, text),
        },
        Shape::EventList => {
            if !event_list(ctx, text, emit, what) {
                emit.reject(what, "an EventList whose `items` is not a list", text);
            }
        }
        Shape::GkeEntry | Shape::GkeDump => gke::entry(&inner, text, emit, what),
        Shape::EksPayload => eks::payload(&inner, m, text, emit, what),
        Shape::EksLambda => eks::lambda(&inner, m, text, emit, what),
        Shape::EksEvents => eks::events(&inner, m, text, emit, what),
        Shape::EksInsights => eks::insights(&inner, m, text, emit, what),
        Shape::EksInsightsRow => eks::insights_row(&inner, m, text, emit, what),
        Shape::EksKinesis => eks::kinesis(&inner, m, text, emit, what),
        Shape::AksRecords => aks::records(&inner, m, text, emit, what),
        Shape::AksRecord => aks::record(&inner, m, text, emit, what),
        Shape::AzureDiagnostics => aks::azure_diagnostics(&inner, m, text, emit, what),
        Shape::AksAuditRow => aks::audit_row(&inner, text, emit, what),
        Shape::LogAnalytics => aks::tables(&inner, m, text, emit, what),
    }
}

/// An embedded event given as a JSON string holding the Event, or as the Event object itself.
pub(crate) fn embedded_event(ctx: &Ctx<'_>, raw: &RawValue, emit: &mut Emit<'_>, what: &str) {
    let t = raw.get();
    if t.starts_with('{') {
        return emit.event(ctx, what, t);
    }
    match as_str(raw) {
        Some(s) => emit.event(ctx, what, &s),
        None => {
            emit.reject(what, format!("expected an audit Event (a JSON string or object), found {}", type_name(raw)), t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (events' auditIDs, rejects' reasons) of one input value.
    pub(crate) fn run(text: &str, format: InputFormat) -> (usize, Vec<String>, Vec<String>) {
        let (mut ids, mut reasons) = (Vec::new(), Vec::new());
        let n = decode_input(text, &DecodeOptions::default(), format, &mut |r| match r {
            Ok((ev, _)) => ids.push(ev.audit_id.as_deref().unwrap_or("").to_string()),
            Err(r) => reasons.push(r.error.0),
        });
        assert_eq!(n, ids.len() + reasons.len(), "one record, one event or reject");
        (n, ids, reasons)
    }

    const EV: &str = r#"{"kind":"Event","auditID":"a1","verb":"get"}"#;

    #[test]
    fn native_events_lists_and_arrays() {
        assert_eq!(run(EV, InputFormat::Auto).1, ["a1"]);
        assert_eq!(run(EV, InputFormat::K8s).1, ["a1"]);
        let list = r#"{"kind":"EventList","items":[{"auditID":"a"},{"auditID":7}]}"#;
        let (n, ids, reasons) = run(list, InputFormat::Auto);
        assert_eq!((n, ids), (2, vec!["a".to_string()]));
        assert!(reasons[0].starts_with("EventList item 1: `auditID`"), "{reasons:?}");
        assert_eq!(run("[]", InputFormat::Auto).0, 0);
        let (_, _, reasons) = run(r#"{"kind":"Event","auditID":"x","verb":7}"#, InputFormat::Auto);
        assert!(reasons[0].starts_with("`verb`: invalid type: integer `7`"), "{reasons:?}");
        let (_, _, reasons) = run(r#"{"kind":"Event","auditID":"#, InputFormat::Auto);
        assert!(reasons[0].starts_with("invalid JSON"), "{reasons:?}");
        let (_, _, reasons) = run("I1126 10:00:00 trace.go:236] hello", InputFormat::Auto);
        assert!(reasons[0].starts_with("invalid JSON"), "{reasons:?}");
        let (_, _, reasons) = run(r#"{"kind":"Event"}"#, InputFormat::Auto);
        assert_eq!(reasons, ["not an audit Event: no auditID"]);
        let (_, _, reasons) = run(&format!("{EV} {EV}"), InputFormat::Auto);
        assert!(reasons[0].contains("trailing characters"), "{reasons:?}");
        // An Event first, then a second `kind` naming a list: never a list, with or without the
        // search for one (a list names its kind once).
        for text in [
            r#"{"kind":"Event","auditID":"a","kind":"EventList","items":[{"auditID":"b"}]}"#,
            r#"{"auditID":"a","kind":"Event","kind":"EventList","items":[{"auditID":"b"}]}"#,
        ] {
            assert!(!run(text, InputFormat::Auto).1.contains(&"b".to_string()), "{text}");
        }
    }

    #[test]
    fn forcing_a_format_rejects_the_others_with_what_they_are() {
        let (_, _, r) = run(EV, InputFormat::Gke);
        assert_eq!(r, ["a native audit Event, not a GKE Cloud Logging entry (--input-format gke)"]);
        let aks = r#"{"records":[{"category":"kube-audit","properties":{"log":"{\"auditID\":\"z\"}"}}]}"#;
        assert_eq!(run(aks, InputFormat::Aks).1, ["z"]);
        assert_eq!(run(aks, InputFormat::Auto).1, ["z"]);
        let (_, _, r) = run(aks, InputFormat::Eks);
        assert_eq!(
            r,
            ["an AKS diagnostic record or AKSAudit row, not an EKS CloudWatch Logs export (--input-format eks)"]
        );
        let (_, _, r) = run(aks, InputFormat::K8s);
        assert_eq!(
            r,
            [
                "not an audit Event: no auditID (this looks like an AKS diagnostic record); --input-format k8s reads native Events only"
            ]
        );
        let (_, _, r) = run(r#"{"hello":1}"#, InputFormat::Aks);
        assert_eq!(r, ["not an AKS diagnostic record or AKSAudit row (--input-format aks)"]);
        assert_eq!("GKE".parse::<InputFormat>(), Ok(InputFormat::Gke));
        assert!("gcp".parse::<InputFormat>().unwrap_err().contains("auto, k8s, gke, eks, aks"));
    }

    #[test]
    fn arrays_mix_shapes() {
        let text =
            format!(r#"[{EV},{{"records":[{{"properties":{{"log":{{"auditID":"b"}}}},"category":"kube-audit"}}]}},7]"#);
        let (n, ids, reasons) = run(&text, InputFormat::Auto);
        assert_eq!(n, 3);
        assert_eq!(ids, ["a1", "b"]);
        assert!(reasons[0].starts_with("array element 2: "), "{reasons:?}");
    }

    #[test]
    fn deep_nesting_is_a_reject_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let (n, _, reasons) = run(&deep, InputFormat::Auto);
        assert_eq!(n, 1);
        assert!(reasons[0].contains("nested too deeply"), "{reasons:?}");
    }

    #[test]
    fn prefilter_guard() {
        assert!(raw_text_is_native(InputFormat::Auto, EV.as_bytes()));
        assert!(!raw_text_is_native(InputFormat::Auto, br#"{"records":[]}"#));
        assert!(raw_text_is_native(InputFormat::K8s, b"anything"));
        assert!(!raw_text_is_native(InputFormat::Gke, EV.as_bytes()));
    }
}
