//! The common-case decoder: an event whose keys are all known, each given once, none `null`, its
//! nested objects not empty and its timestamps in the canonical form (what the API server writes)
//! is decoded here, without the bookkeeping the full decoder ([`crate::decode`]) needs for
//! everything else (the path of the field being read, the unmapped rest). Parts a consumer does not
//! read ([`Fields`]) are parsed, so that the line is validated exactly as the full decoder would,
//! but not kept: no vectors are built for them and nothing checks them for secrets or derives
//! from them.
//!
//! Anything else — an unknown key, a duplicate, a `null`, an empty nested object, a timestamp
//! written another way, any error at all — gives `None`, and the caller decodes the text in full.
//! So, for every text this decoder accepts, the full decoder accepts it too and gives the same
//! event in every part [`Fields`] asks for (the `fast_equals_full` tests check it).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::decode::{CowStr, Fields};
use crate::event::{Event, ObjectRef, Status, UserInfo};
use crate::time::parse_rfc3339;

mod bytes;
mod keys;

use keys::{EventKey, Known, ObjectRefKey, StatusKey, UserKey};

/// Decodes `text` into `ev` (empty, [`Event::default`]) when it is a common-case event (module
/// docs); false: decode it in full (`ev` is empty again).
///
/// The byte-level reader ([`bytes`]) takes the lines written plainly, the serde-driven one
/// ([`decode_serde`]) the rest of the common case (whitespace, escaped keys, surrogate pairs).
pub(crate) fn decode_fast<'a>(text: &'a str, fields: Fields, ev: &mut Event<'a>) -> bool {
    if bytes::decode(text, fields, ev) {
        return true;
    }
    let serde = decode_serde(text, fields);
    let read = serde.is_some();
    *ev = serde.unwrap_or_default();
    read
}

/// The common case through serde's deserializer.
fn decode_serde(text: &str, fields: Fields) -> Option<Event<'_>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let ev = de.deserialize_map(EventV(fields)).ok()?;
    de.end().ok()?;
    Some(ev)
}

/// Leaves the fast path (the error's text is never shown: the full decoder runs instead).
fn bail<E: de::Error>() -> E {
    E::custom("not a common-case event")
}

/// Marks key `bit` seen; a key seen twice leaves the fast path.
fn once<E: de::Error>(seen: &mut u32, bit: u32) -> Result<(), E> {
    if keys::first(seen, bit) { Ok(()) } else { Err(bail()) }
}

/// The next key, one of level `K`'s; a key not known there, or one given twice (`seen` holds the
/// bits of those read), leaves the fast path.
fn next_key<'de, K: Known, A: MapAccess<'de>>(map: &mut A, seen: &mut u32) -> Result<Option<K>, A::Error> {
    let Some(key) = map.next_key::<CowStr<'de>>()? else { return Ok(None) };
    let (k, bit) = keys::of::<K>(&key.0).ok_or_else(bail)?;
    once(seen, bit)?;
    Ok(Some(k))
}

/// A string value (a `null`, or anything else, is an error here).
fn string<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Cow<'de, str>, A::Error> {
    Ok(map.next_value::<CowStr<'de>>()?.0)
}

/// A value kept as its JSON text (not `null`).
fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Cow<'de, str>, A::Error> {
    let r: &'de RawValue = map.next_value()?;
    if r.get() == "null" {
        return Err(bail());
    }
    Ok(Cow::Borrowed(r.get()))
}

/// A timestamp in the canonical form.
fn timestamp<'de, A: MapAccess<'de>>(map: &mut A) -> Result<i64, A::Error> {
    let text = string(map)?;
    match parse_rfc3339(&text) {
        Some(p) if p.canonical => Ok(p.micros),
        _ => Err(bail()),
    }
}

/// A list of strings, kept or only checked.
struct Strings(bool);

impl<'de> DeserializeSeed<'de> for Strings {
    type Value = Option<Vec<Cow<'de, str>>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Strings {
    type Value = Option<Vec<Cow<'de, str>>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if !self.0 {
            while seq.next_element::<CowStr<'de>>()?.is_some() {}
            return Ok(None);
        }
        let mut out = Vec::new();
        while let Some(s) = seq.next_element::<CowStr<'de>>()? {
            out.push(s.0);
        }
        Ok(Some(out))
    }
}

/// `annotations`, kept or only checked.
struct Annotations(bool);

pub(super) type Pairs<'de> = Option<Vec<(Cow<'de, str>, Cow<'de, str>)>>;

impl<'de> DeserializeSeed<'de> for Annotations {
    type Value = Pairs<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Annotations {
    type Value = Pairs<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !self.0 {
            while map.next_entry::<CowStr<'de>, CowStr<'de>>()?.is_some() {}
            return Ok(None);
        }
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<CowStr<'de>, CowStr<'de>>()? {
            out.push((k.0, v.0));
        }
        Ok(Some(out))
    }
}

/// `user` or `impersonatedUser`; `groups` kept or only checked.
struct User(bool);

impl<'de> DeserializeSeed<'de> for User {
    type Value = UserInfo<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for User {
    type Value = UserInfo<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UserInfo object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut u = UserInfo::default();
        let mut seen = 0u32;
        while let Some(k) = next_key::<UserKey, _>(&mut map, &mut seen)? {
            match k {
                UserKey::Username => u.username = Some(string(&mut map)?),
                UserKey::Uid => u.uid = Some(string(&mut map)?),
                UserKey::Groups => u.groups = map.next_value_seed(Strings(self.0))?,
                UserKey::Extra => u.extra = Some(raw(&mut map)?),
            }
        }
        // The full decoder remembers an empty object in `unmapped`.
        if seen == 0 {
            return Err(bail());
        }
        Ok(u)
    }
}

struct ObjectRefV;

impl<'de> Visitor<'de> for ObjectRefV {
    type Value = ObjectRef<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ObjectReference object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut o = ObjectRef::default();
        let mut seen = 0u32;
        while let Some(k) = next_key::<ObjectRefKey, _>(&mut map, &mut seen)? {
            *k.slot(&mut o) = Some(string(&mut map)?);
        }
        if seen == 0 {
            return Err(bail());
        }
        Ok(o)
    }
}

struct StatusV;

impl<'de> Visitor<'de> for StatusV {
    type Value = Status<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Status object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut s = Status::default();
        let mut seen = 0u32;
        while let Some(k) = next_key::<StatusKey, _>(&mut map, &mut seen)? {
            match k {
                StatusKey::Metadata => s.metadata = Some(raw(&mut map)?),
                StatusKey::Status => s.status = Some(string(&mut map)?),
                StatusKey::Message => s.message = Some(string(&mut map)?),
                StatusKey::Reason => s.reason = Some(string(&mut map)?),
                StatusKey::Details => s.details = Some(raw(&mut map)?),
                StatusKey::Code => s.code = Some(map.next_value::<i32>()?),
            }
        }
        if seen == 0 {
            return Err(bail());
        }
        Ok(s)
    }
}

/// A nested object read by visitor `V`.
struct Obj<V>(V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Obj<V> {
    type Value = V::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self.0)
    }
}

struct EventV(Fields);

impl<'de> Visitor<'de> for EventV {
    type Value = Event<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an audit Event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event<'de>, A::Error> {
        let want = |f: Fields| self.0.has(f);
        let mut e = Event::default();
        let mut seen = 0u32;
        while let Some(k) = next_key::<EventKey, _>(&mut map, &mut seen)? {
            let m = &mut map;
            match k {
                EventKey::Text(t) => *t.slot(&mut e) = Some(string(m)?),
                EventKey::User => e.user = Some(m.next_value_seed(User(want(Fields::USER_GROUPS)))?),
                EventKey::ImpersonatedUser => {
                    let u = m.next_value_seed(User(want(Fields::IMPERSONATED_USER)))?;
                    e.impersonated_user = want(Fields::IMPERSONATED_USER).then_some(u);
                }
                EventKey::SourceIps => e.source_ips = m.next_value_seed(Strings(want(Fields::SOURCE_IPS)))?,
                EventKey::ObjectRef => {
                    let o = m.next_value_seed(Obj(ObjectRefV))?;
                    e.object_ref = want(Fields::OBJECT_REF).then_some(o);
                }
                EventKey::ResponseStatus => {
                    let st = m.next_value_seed(Obj(StatusV))?;
                    e.response_status = want(Fields::RESPONSE_STATUS).then_some(st);
                }
                EventKey::RequestObject => {
                    let r = raw(m)?;
                    e.request_object = want(Fields::REQUEST_OBJECT).then_some(r);
                }
                EventKey::ResponseObject => {
                    let r = raw(m)?;
                    e.response_object = want(Fields::RESPONSE_OBJECT).then_some(r);
                }
                EventKey::RequestReceivedTimestamp => e.request_received = Some(timestamp(m)?),
                EventKey::StageTimestamp => e.stage_timestamp = Some(timestamp(m)?),
                EventKey::Annotations => e.annotations = m.next_value_seed(Annotations(want(Fields::ANNOTATIONS)))?,
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`decode_fast`] into a new event.
    fn fast(text: &str, f: Fields) -> Option<Event<'_>> {
        let mut ev = Event::default();
        decode_fast(text, f, &mut ev).then_some(ev)
    }

    const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods","verb":"list","user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl","objectRef":{"resource":"pods","namespace":"prod","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:01.500000Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#;

    #[test]
    fn the_common_case_takes_the_fast_path() {
        let ev = fast(LINE, Fields::ALL).expect("an ordinary event");
        let full = crate::decode_full(LINE, &crate::DecodeOptions::default()).unwrap();
        assert_eq!(Event { derived: full.derived.clone(), ..ev }, full);
        let ev = fast(LINE, Fields::BASE).unwrap();
        assert_eq!((ev.username(), ev.object_ref.is_none(), ev.annotations.is_none()), (Some("alice"), true, true));
    }

    #[test]
    fn anything_unusual_leaves_it() {
        for (from, to) in [
            (r#""verb":"list""#, r#""verb":null"#),
            (r#""verb":"list""#, r#""verb":"list","verb":"get""#),
            (r#""verb":"list""#, r#""verb":"list","timestamp":"x""#),
            (r#""user":{"username":"alice","groups":["system:authenticated"]}"#, r#""user":{}"#),
            (r#""user":{"username":"alice""#, r#""user":{"username":"alice","x":1"#),
            (r#""code":200"#, r#""code":200,"code":201"#),
            (r#""2026-11-20T05:00:00.000000Z""#, r#""2026-11-20T05:00:00Z""#),
            (r#""metadata":{}"#, r#""metadata":null"#),
            (r#""verb":"list""#, r#""verb":7"#),
        ] {
            let text = LINE.replace(from, to);
            assert_ne!(text, LINE);
            for f in [Fields::ALL, Fields::BASE] {
                assert!(fast(&text, f).is_none(), "{text}");
            }
        }
        assert!(fast(&format!("{LINE} x"), Fields::BASE).is_none());
    }
}
