//! JSON text → [`Event`], in one pass, borrowing strings from the text.
//!
//! Decoding is strict about the fields it knows (a `verb` that is not a string rejects the event,
//! with the field named in the reason) and keeps everything it does not know in
//! [`Event::unmapped`], so nothing of a valid event is lost.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::derive::Derived;
use crate::event::{Event, ObjectRef, Status, UserInfo};
use crate::json::{Checked, note_duplicate, take_duplicate};
use crate::redact;
use crate::time::parse_rfc3339;

/// How to decode.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Keep the values of Secret `data`/`stringData` (off: they are replaced by a hash marker).
    pub keep_secrets: bool,
    /// The parts of each event its consumer reads (default: all). The others are still parsed, so
    /// a record is accepted or rejected exactly as with all of them, but they are left out of the
    /// [`Event`]. kaq-input's reader sets this from its handler
    /// (`EventHandler::fields`).
    pub fields: Fields,
}

impl DecodeOptions {
    /// Decoding everything, keeping Secret values or not.
    pub const fn keeping_secrets(keep_secrets: bool) -> DecodeOptions {
        DecodeOptions { keep_secrets, fields: Fields::ALL }
    }
}

/// Which parts of an event a consumer reads: a projection of decoding. Every event has at least
/// [`Fields::BASE`]; each constant adds one top-level key. An event decoded without some parts is
/// the full decode with those parts absent (`None`) and, with them, what derives from them
/// (`Derived::pod` from `requestObject`, `Derived::exec_command` from `objectRef`); its
/// [`Event::unmapped`] is kept only with [`Fields::ALL`], so only an event decoded with all of them
/// may be printed or converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fields(u16);

impl Fields {
    /// `kind`, `apiVersion`, `level`, `auditID`, `stage`, `requestURI`, `verb`, `user` (but its
    /// `groups`), `userAgent` and the two timestamps: what the latest-stage rule and a request's
    /// identity read, and the strings that cost nothing to keep.
    pub const BASE: Fields = Fields(0);
    pub const IMPERSONATED_USER: Fields = Fields(1);
    pub const SOURCE_IPS: Fields = Fields(1 << 1);
    pub const OBJECT_REF: Fields = Fields(1 << 2);
    pub const RESPONSE_STATUS: Fields = Fields(1 << 3);
    pub const ANNOTATIONS: Fields = Fields(1 << 4);
    /// `requestObject` (and `objectRef`, which its redaction reads).
    pub const REQUEST_OBJECT: Fields = Fields(1 << 5 | 1 << 2);
    /// `responseObject` (and `objectRef`, which its redaction reads).
    pub const RESPONSE_OBJECT: Fields = Fields(1 << 6 | 1 << 2);
    /// `user.groups`, and `user_kind`, which is derived from them (without it, `user_kind` is
    /// `None`): a list allocated for every event, a twentieth of the decoding of an event
    /// when kept for nothing.
    pub const USER_GROUPS: Fields = Fields(1 << 7);
    /// Everything, `unmapped` included.
    pub const ALL: Fields = Fields(u16::MAX);

    /// Both sets.
    pub const fn with(self, other: Fields) -> Fields {
        Fields(self.0 | other.0)
    }

    /// Whether every part of `other` is in `self`.
    pub const fn has(self, other: Fields) -> bool {
        self.0 & other.0 == other.0
    }
}

impl Default for Fields {
    fn default() -> Fields {
        Fields::ALL
    }
}

/// Why a record is not an audit event. The message names the field and the column where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        // Records are mostly single lines: the reader gives the line number, serde the column.
        let msg = e.to_string().replace(" at line 1 column ", " at column ");
        DecodeError(match e.classify() {
            Category::Syntax | Category::Eof => format!("invalid JSON: {msg}"),
            Category::Io => format!("read error: {msg}"),
            Category::Data => msg,
        })
    }
}

thread_local! {
    /// The path of the known field being read, for naming it in type errors.
    static PATH: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Decodes one JSON object holding one audit event.
///
/// An event in the common case (every key known and given once, no `null`s, canonical
/// timestamps: what the API server writes) is decoded by a faster path (`fast`); anything else, or
/// any error, by the full decoder, which also gives every rejection's reason.
pub fn decode_event<'a>(text: &'a str, opts: &DecodeOptions) -> Result<Event<'a>, DecodeError> {
    let mut ev = Event::default();
    decode_event_into(text, opts, &mut ev).map(|()| ev)
}

/// [`decode_event`] into `ev`: whatever it held is replaced (after an error it is empty). The
/// event is built where it stays instead of being moved through the decoders (it is nearly a
/// kilobyte), which is what a reader of millions of lines wants.
pub fn decode_event_into<'a>(text: &'a str, opts: &DecodeOptions, ev: &mut Event<'a>) -> Result<(), DecodeError> {
    // The fast path writes only the parts a line has: nothing of an event decoded before may stay.
    *ev = Event::default();
    take_duplicate();
    if crate::fast::decode_fast(text, opts.fields, ev) {
        return finish(ev, opts).inspect_err(|_| *ev = Event::default());
    }
    *ev = decode_full(text, opts)?;
    Ok(())
}

/// [`decode_event`] by the full decoder only (every part, whatever [`DecodeOptions::fields`]).
pub fn decode_full<'a>(text: &'a str, opts: &DecodeOptions) -> Result<Event<'a>, DecodeError> {
    PATH.with(|p| p.borrow_mut().clear());
    take_duplicate();
    let mut de = serde_json::Deserializer::from_str(text);
    let ev = de.deserialize_map(EventVisitor).and_then(|ev| de.end().map(|()| ev));
    match ev {
        Ok(mut ev) => finish(&mut ev, opts).map(|()| ev),
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            let path = PATH.with(|p| p.borrow().join("."));
            let msg = e.to_string().replace(" at line 1 column ", " at column ");
            Err(DecodeError(if path.is_empty() { msg } else { format!("`{path}`: {msg}") }))
        }
        Err(e) => Err(e.into()),
    }
}

/// A record that is not an audit event: why, and its text (the whole value, or the one item of
/// a list that failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<'a> {
    pub error: DecodeError,
    pub text: &'a str,
}

/// Decodes one JSON value that holds events: an Event, an `EventList` (its `items`), or an array of
/// events. Each event, or the rejected record, goes to `out` in order; a value that is not JSON at
/// all gives one rejected record. Returns how many records there were (0 for an empty list).
pub fn decode_records<'a>(
    text: &'a str,
    opts: &DecodeOptions,
    out: &mut dyn FnMut(Result<Event<'a>, Rejected<'a>>),
) -> usize {
    decode_records_with_text(text, opts, &mut |r| out(r.map(|(ev, _)| ev)))
}

/// [`decode_records`], giving each event with its own JSON text (the whole value, or its item of a
/// list), e.g. to print matching events exactly as they were written.
pub fn decode_records_with_text<'a>(
    text: &'a str,
    opts: &DecodeOptions,
    out: &mut dyn FnMut(Result<(Event<'a>, &'a str), Rejected<'a>>),
) -> usize {
    let reject = |error: DecodeError, text: &'a str| Rejected { error, text };
    let items =
        |what: &str, items: Vec<&'a RawValue>, out: &mut dyn FnMut(Result<(Event<'a>, &'a str), Rejected<'a>>)| {
            let n = items.len();
            for (i, item) in items.into_iter().enumerate() {
                let text = item.get();
                out(decode_event(text, opts).map(|ev| (ev, text)).map_err(|e| reject(in_item(what, i, e), text)));
            }
            n
        };
    if text.trim_start().starts_with('[') {
        return match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(list) => items("array element", list, out),
            Err(e) => {
                out(Err(reject(e.into(), text)));
                1
            }
        };
    }
    static EVENT_LIST: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"EventList\""));
    if EVENT_LIST.find(text.as_bytes()).is_some()
        && let Some(list) = event_list_items(text)
    {
        return items("EventList item", list, out);
    }
    out(decode_event(text, opts).map(|ev| (ev, text)).map_err(|e| reject(e, text)));
    1
}

/// The items of an `EventList` object (`{"kind":"EventList","items":[…]}`), each as its JSON text;
/// `None` when `text` is not an EventList.
pub fn event_list_items(text: &str) -> Option<Vec<&RawValue>> {
    #[derive(Deserialize)]
    struct List<'a> {
        #[serde(borrow)]
        kind: Option<&'a str>,
        #[serde(borrow, default)]
        items: Option<Vec<&'a RawValue>>,
    }
    match serde_json::from_str::<List<'_>>(text) {
        Ok(List { kind: Some("EventList"), items }) => Some(items.unwrap_or_default()),
        _ => None,
    }
}

fn in_item(what: &str, i: usize, e: DecodeError) -> DecodeError {
    DecodeError(format!("{what} {i}: {}", e.0))
}

fn finish(ev: &mut Event<'_>, opts: &DecodeOptions) -> Result<(), DecodeError> {
    match ev.kind.as_deref() {
        None | Some("Event") => {}
        Some(other) => return Err(DecodeError(format!("not an audit Event: kind is `{other}`"))),
    }
    if ev.audit_id.is_none() {
        return Err(DecodeError(not_an_event_reason(ev)));
    }
    let duplicates = take_duplicate();
    ev.rewritten = redact::sanitize(ev, opts.keep_secrets) | duplicates;
    ev.derived = Derived::compute(ev);
    if !opts.fields.has(Fields::USER_GROUPS) {
        // Not read: the groups it is derived from may not have been decoded.
        ev.derived.user_kind = None;
    }
    Ok(())
}

fn not_an_event_reason(ev: &Event<'_>) -> String {
    let keys = |m: &Map<String, Value>, k: &str| m.contains_key(k);
    if let Some(u) = &ev.unmapped {
        if keys(u, "protoPayload") || keys(u, "AuditPayload") {
            return "not an audit Event: no auditID (this looks like a GKE Cloud Logging entry)".into();
        }
        if keys(u, "records") || keys(u, "properties") {
            return "not an audit Event: no auditID (this looks like an AKS diagnostic record)".into();
        }
        if keys(u, "logEvents") {
            return "not an audit Event: no auditID (this looks like an EKS CloudWatch export)".into();
        }
    }
    "not an audit Event: no auditID".into()
}

/// A string that borrows from the input when it holds no escapes.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// What a map visitor has not put in a typed slot.
#[derive(Default)]
struct Rest(Option<Map<String, Value>>);

impl Rest {
    fn insert(&mut self, k: &str, v: Value) {
        if self.0.get_or_insert_with(Map::new).insert(k.to_string(), v).is_some() {
            note_duplicate();
        }
    }
}

/// Fills a typed slot, noting a key given twice ([`Event::rewritten`]: the text as written holds
/// a value the event does not).
fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if slot.is_some() {
        note_duplicate();
    }
    *slot = v;
}

/// Reads the value of a known key; a JSON `null` is remembered in `rest` and read as absent.
fn field<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    key: &'static str,
    rest: &mut Rest,
) -> Result<Option<T>, A::Error> {
    PATH.with(|p| p.borrow_mut().push(key));
    let v: Option<T> = map.next_value()?;
    PATH.with(|p| p.borrow_mut().pop());
    if v.is_none() {
        rest.insert(key, Value::Null);
    }
    Ok(v)
}

fn string<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &'static str,
    rest: &mut Rest,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    Ok(field::<A, CowStr<'de>>(map, key, rest)?.map(|s| s.0))
}

fn raw_text<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &'static str,
    rest: &mut Rest,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    Ok(field::<A, &'de RawValue>(map, key, rest)?.map(|r| Cow::Borrowed(r.get())))
}

fn strings<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &'static str,
    rest: &mut Rest,
) -> Result<Option<Vec<Cow<'de, str>>>, A::Error> {
    Ok(field::<A, Vec<CowStr<'de>>>(map, key, rest)?.map(|v| v.into_iter().map(|s| s.0).collect()))
}

fn timestamp<'de, A: MapAccess<'de>>(map: &mut A, key: &'static str, rest: &mut Rest) -> Result<Option<i64>, A::Error> {
    let Some(text) = string(map, key, rest)? else { return Ok(None) };
    match parse_rfc3339(&text) {
        Some(p) => {
            if !p.canonical {
                rest.insert(key, Value::String(text.into_owned()));
            }
            Ok(Some(p.micros))
        }
        None => {
            PATH.with(|p| p.borrow_mut().push(key));
            Err(de::Error::custom(format_args!("not an RFC 3339 timestamp: {text:?}")))
        }
    }
}

/// A nested object read by `V`, with the keys it did not know.
struct Nested<T>(T, Rest);

macro_rules! nested_visitor {
    ($name:ident, $ty:ident, $expecting:literal, |$map:ident, $key:ident, $out:ident, $rest:ident| $body:expr) => {
        impl<'de> Deserialize<'de> for Nested<$ty<'de>> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct $name;
                impl<'de> Visitor<'de> for $name {
                    type Value = Nested<$ty<'de>>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<Self::Value, A::Error> {
                        let mut $out = $ty::default();
                        let mut $rest = Rest::default();
                        while let Some($key) = $map.next_key::<CowStr<'de>>()? {
                            let $key = $key.0;
                            $body
                        }
                        // Remember an empty object, so that it is given back.
                        if $out == $ty::default() && $rest.0.is_none() {
                            $rest.0 = Some(Map::new());
                        }
                        Ok(Nested($out, $rest))
                    }
                }
                d.deserialize_map($name)
            }
        }
    };
}

nested_visitor!(UserVisitor, UserInfo, "a UserInfo object", |map, key, u, rest| {
    match key.as_ref() {
        "username" => set(&mut u.username, string(&mut map, "username", &mut rest)?),
        "uid" => set(&mut u.uid, string(&mut map, "uid", &mut rest)?),
        "groups" => set(&mut u.groups, strings(&mut map, "groups", &mut rest)?),
        "extra" => set(&mut u.extra, raw_text(&mut map, "extra", &mut rest)?),
        _ => rest.insert(&key, map.next_value::<Checked>()?.0),
    }
});

nested_visitor!(ObjectRefVisitor, ObjectRef, "an ObjectReference object", |map, key, o, rest| {
    match key.as_ref() {
        "resource" => {
            // Of two resources, one `secrets` is kept: redaction fails closed.
            let r = string(&mut map, "resource", &mut rest)?;
            if o.resource.as_deref().is_some_and(|r| r.eq_ignore_ascii_case("secrets")) {
                crate::json::note_duplicate();
            } else {
                set(&mut o.resource, r);
            }
        }
        "namespace" => set(&mut o.namespace, string(&mut map, "namespace", &mut rest)?),
        "name" => set(&mut o.name, string(&mut map, "name", &mut rest)?),
        "uid" => set(&mut o.uid, string(&mut map, "uid", &mut rest)?),
        "apiGroup" => set(&mut o.api_group, string(&mut map, "apiGroup", &mut rest)?),
        "apiVersion" => set(&mut o.api_version, string(&mut map, "apiVersion", &mut rest)?),
        "resourceVersion" => set(&mut o.resource_version, string(&mut map, "resourceVersion", &mut rest)?),
        "subresource" => set(&mut o.subresource, string(&mut map, "subresource", &mut rest)?),
        _ => rest.insert(&key, map.next_value::<Checked>()?.0),
    }
});

nested_visitor!(StatusVisitor, Status, "a Status object", |map, key, s, rest| {
    match key.as_ref() {
        "metadata" => set(&mut s.metadata, raw_text(&mut map, "metadata", &mut rest)?),
        "status" => set(&mut s.status, string(&mut map, "status", &mut rest)?),
        "message" => set(&mut s.message, string(&mut map, "message", &mut rest)?),
        "reason" => set(&mut s.reason, string(&mut map, "reason", &mut rest)?),
        "details" => set(&mut s.details, raw_text(&mut map, "details", &mut rest)?),
        "code" => set(&mut s.code, field(&mut map, "code", &mut rest)?),
        _ => rest.insert(&key, map.next_value::<Checked>()?.0),
    }
});

fn nested<'de, A: MapAccess<'de>, T>(map: &mut A, key: &'static str, rest: &mut Rest) -> Result<Option<T>, A::Error>
where
    Nested<T>: Deserialize<'de>,
{
    Ok(field::<A, Nested<T>>(map, key, rest)?.map(|Nested(v, r)| {
        if let Some(r) = r.0 {
            rest.insert(key, Value::Object(r));
        }
        v
    }))
}

/// `annotations`: a map of strings, in input order.
struct Annotations<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de> Deserialize<'de> for Annotations<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<CowStr<'de>, CowStr<'de>>()? {
                    out.push((k.0, v.0));
                }
                Ok(Annotations(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an audit Event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event<'de>, A::Error> {
        let mut e = Event::default();
        let mut rest = Rest::default();
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let key = key.0;
            let (m, r) = (&mut map, &mut rest);
            match key.as_ref() {
                "kind" => set(&mut e.kind, string(m, "kind", r)?),
                "apiVersion" => set(&mut e.api_version, string(m, "apiVersion", r)?),
                "level" => set(&mut e.level, string(m, "level", r)?),
                "auditID" => set(&mut e.audit_id, string(m, "auditID", r)?),
                "stage" => set(&mut e.stage, string(m, "stage", r)?),
                "requestURI" => set(&mut e.request_uri, string(m, "requestURI", r)?),
                "verb" => set(&mut e.verb, string(m, "verb", r)?),
                "user" => set(&mut e.user, nested(m, "user", r)?),
                "impersonatedUser" => set(&mut e.impersonated_user, nested(m, "impersonatedUser", r)?),
                "sourceIPs" => set(&mut e.source_ips, strings(m, "sourceIPs", r)?),
                "userAgent" => set(&mut e.user_agent, string(m, "userAgent", r)?),
                "objectRef" => set(&mut e.object_ref, nested(m, "objectRef", r)?),
                "responseStatus" => set(&mut e.response_status, nested(m, "responseStatus", r)?),
                "requestObject" => set(&mut e.request_object, raw_text(m, "requestObject", r)?),
                "responseObject" => set(&mut e.response_object, raw_text(m, "responseObject", r)?),
                "requestReceivedTimestamp" => {
                    set(&mut e.request_received, timestamp(m, "requestReceivedTimestamp", r)?)
                }
                "stageTimestamp" => set(&mut e.stage_timestamp, timestamp(m, "stageTimestamp", r)?),
                "annotations" => {
                    set(&mut e.annotations, field::<A, Annotations<'de>>(m, "annotations", r)?.map(|a| a.0))
                }
                _ => {
                    let Checked(v) = map.next_value()?;
                    rest.insert(&key, v);
                }
            }
        }
        e.unmapped = rest.0;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/web-0/exec?command=sh&command=-c&command=id%20-u&container=web","verb":"create","user":{"username":"alice@example.com","groups":["system:authenticated"],"extra":{"k":["v"]}},"sourceIPs":["10.0.0.1","10.0.0.2"],"objectRef":{"resource":"pods","namespace":"prod","name":"web-0","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":101},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:01.500000Z","annotations":{"authorization.k8s.io/decision":"allow"},"somethingNew":{"x":1}}"#;

    #[test]
    fn decodes_and_round_trips() {
        let ev = decode_event(LINE, &DecodeOptions::default()).unwrap();
        assert_eq!(ev.verb.as_deref(), Some("create"));
        assert!(matches!(ev.verb, Some(Cow::Borrowed(_))), "plain strings borrow from the input");
        assert_eq!(ev.username(), Some("alice@example.com"));
        assert_eq!(ev.response_status.as_ref().unwrap().code, Some(101));
        assert_eq!(ev.derived.latency_us, Some(1_500_000));
        assert_eq!(ev.derived.exec_command.as_deref(), Some("sh -c id -u"));
        let original: Value = serde_json::from_str(LINE).unwrap();
        assert_eq!(ev.to_json(), original);
    }

    /// One event decoded into again and again: each time what a new one would hold, whichever
    /// decoder read the line before (the full one leaves `unmapped`, the fast one other parts).
    #[test]
    fn decoding_into_an_event_replaces_it() {
        let lines = [
            LINE,
            r#"{"kind":"Event","auditID":"b","verb":"get","impersonatedUser":{"username":"x"}}"#,
            r#"{"kind":"Event","auditID":"c","verb":"list","odd":1}"#,
            r#"{"kind":"Event","auditID":"d"}"#,
            r#"{"kind":"Event","auditID":"e","verb":7}"#,
            r#"{"kind":"Event","auditID":"f","user":{"username":"y"}}"#,
        ];
        let opts = DecodeOptions::default();
        let mut ev = Event::default();
        for round in 0..2 {
            for line in lines {
                let got = decode_event_into(line, &opts, &mut ev).map(|()| ev.clone());
                assert_eq!(got, decode_event(line, &opts), "round {round}: {line}");
                if got.is_err() {
                    assert_eq!(ev, Event::default(), "{line}");
                }
            }
        }
    }

    #[test]
    fn wrong_types_reject_with_the_field_named() {
        let e = decode_event(r#"{"kind":"Event","auditID":"x","verb":7}"#, &DecodeOptions::default()).unwrap_err();
        assert!(e.0.starts_with("`verb`: invalid type: integer `7`, expected a string"), "{e}");
        let e = decode_event(r#"{"kind": 0}"#, &DecodeOptions::default()).unwrap_err();
        assert!(e.0.contains("`kind`"), "{e}");
        let e = decode_event(r#"{"kind":"Event"}"#, &DecodeOptions::default()).unwrap_err();
        assert_eq!(e.0, "not an audit Event: no auditID");
        let e = decode_event(r#"{"kind":"Event","auditID":"#, &DecodeOptions::default()).unwrap_err();
        assert!(e.0.starts_with("invalid JSON"), "{e}");
        let e = decode_event("[1]", &DecodeOptions::default()).unwrap_err();
        assert!(e.0.contains("expected an audit Event object"), "{e}");
    }

    #[test]
    fn nulls_empty_objects_and_odd_timestamps_round_trip() {
        let line = r#"{"auditID":"x","objectRef":null,"user":{},"responseStatus":{"code":200,"kind":"Status"},"requestReceivedTimestamp":"2020-05-05T16:16:37Z","stageTimestamp":"2020-05-05T16:16:37.1234567Z"}"#;
        let ev = decode_event(line, &DecodeOptions::default()).unwrap();
        assert_eq!(ev.request_received, Some(1_588_695_397_000_000));
        assert_eq!(ev.to_json(), serde_json::from_str::<Value>(line).unwrap());
    }

    #[test]
    fn event_lists_and_arrays_give_each_item() {
        let text = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"auditID":"a"},{"auditID":7},{"auditID":"c"}]}"#;
        let mut got = Vec::new();
        let n = decode_records(text, &DecodeOptions::default(), &mut |r| {
            got.push(r.map(|e| e.audit_id.unwrap().into_owned()).map_err(|r| (r.error.0, r.text)))
        });
        assert_eq!((n, got.len()), (3, 3));
        assert_eq!(got[0].as_ref().unwrap(), "a");
        let (reason, text) = got[1].as_ref().unwrap_err();
        assert!(reason.starts_with("EventList item 1: `auditID`"), "{reason}");
        assert_eq!(*text, r#"{"auditID":7}"#, "the rejected item alone, not the whole list");
        assert_eq!(
            decode_records(r#"{"kind":"EventList","items":[]}"#, &DecodeOptions::default(), &mut |_| panic!()),
            0
        );
        assert_eq!(decode_records("[]", &DecodeOptions::default(), &mut |_| panic!()), 0);
        let mut n = 0;
        decode_records(r#"[{"auditID":"a"},{"auditID":"b"}]"#, &DecodeOptions::default(), &mut |r| {
            assert!(r.is_ok());
            n += 1
        });
        assert_eq!(n, 2);
    }
}
