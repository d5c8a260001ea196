//! JSON helpers for checking untrusted text: how deep it nests (by byte scan, without parsing),
//! and a [`Value`] parser that notices duplicated keys instead of silently keeping the last.
//!
//! Both serve redaction's fail-closed rule ([`crate::redact`]): text kaq cannot read as a whole
//! (nested past [`MAX_DEPTH`]) is not kept, and a body whose duplicated keys different readers
//! would resolve differently (serde and Go keep the last, others the first) is printed re-encoded
//! from what was checked, never as written.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// How deep a JSON value kept as text (a request or response body, `user.extra`,
/// `responseStatus.details`/`metadata`) may nest. Deeper ones are replaced at decoding
/// ([`crate::redact::DEEP_MARKER`]). Below serde_json's recursion limit (128 for a whole document)
/// with room for the event around the value, so every event kaq prints parses again, by kaq and
/// by other serde_json readers.
pub const MAX_DEPTH: usize = 100;

/// Whether `text` (valid JSON) has arrays or objects nested more than `max` levels deep. A byte
/// scan: brackets inside strings do not count.
pub fn nested_deeper_than(text: &[u8], max: usize) -> bool {
    // Fewer opening brackets than the limit cannot nest deeper: most values stop here.
    if memchr::memchr2_iter(b'{', b'[', text).take(max + 1).count() <= max {
        return false;
    }
    let (mut depth, mut i) = (0usize, 0usize);
    while i < text.len() {
        match text[i] {
            b'"' => {
                // Skip the string: its end is the first quote not escaped.
                i += 1;
                loop {
                    let Some(o) = memchr::memchr2(b'"', b'\\', &text[i..]) else { return false };
                    if text[i + o] == b'\\' {
                        i += o + 2;
                    } else {
                        i += o + 1;
                        break;
                    }
                }
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

thread_local! {
    /// Set when [`Checked`] met a key twice in one object.
    static DUPLICATE: Cell<bool> = const { Cell::new(false) };
}

/// Clears the duplicate-key flag and returns what it was.
pub(crate) fn take_duplicate() -> bool {
    DUPLICATE.with(|d| d.replace(false))
}

/// Notes a duplicated key (also for keys of typed slots, which decoding reads itself).
pub(crate) fn note_duplicate() {
    DUPLICATE.with(|d| d.set(true));
}

/// Parses `text` into a [`Value`]; the flag says whether some object held a key twice.
/// serde_json's recursion limit applies (128 levels).
pub fn parse_checked(text: &str) -> Result<(Value, bool), serde_json::Error> {
    let before = take_duplicate();
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Checked::deserialize(&mut de).and_then(|v| de.end().map(|()| v.0));
    let dup = take_duplicate();
    if before {
        note_duplicate();
    }
    v.map(|v| (v, dup))
}

/// A [`Value`] read with duplicated keys noticed ([`take_duplicate`]): of two values of one key,
/// the later is kept (as serde_json and Go do) unless [`crate::redact::keep_first`] says the
/// earlier one makes the object a Secret's (a `kind` of `Secret`, a patch `path` into `data`).
pub(crate) struct Checked(pub Value);

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor).map(Checked)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Checked::deserialize(d).map(|c| c.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Checked(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Checked(v) = map.next_value_seed(CheckedSeed)?;
            match out.get(&k) {
                Some(old) => {
                    note_duplicate();
                    if !crate::redact::keep_first(&k, old) {
                        out.insert(k, v);
                    }
                }
                None => {
                    out.insert(k, v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

struct CheckedSeed;

impl<'de> DeserializeSeed<'de> for CheckedSeed {
    type Value = Checked;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
        Checked::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(!nested_deeper_than(nest(100).as_bytes(), 100));
        assert!(nested_deeper_than(nest(101).as_bytes(), 100));
        let in_string = format!(r#"{{"a":"{}","b":[1,{{"c":"\"[[["}}]}}"#, "[{".repeat(200));
        assert!(!nested_deeper_than(in_string.as_bytes(), 100), "brackets in strings do not count");
        let wide = format!("[{}]", vec!["{}"; 500].join(","));
        assert!(!nested_deeper_than(wide.as_bytes(), 100), "many siblings are not depth");
    }

    #[test]
    fn duplicates_are_noticed_and_secret_kinds_kept() {
        let (v, dup) = parse_checked(r#"{"a":1,"b":{"kind":"Secret","kind":"ConfigMap"}}"#).unwrap();
        assert!(dup);
        assert_eq!(v["b"]["kind"], "Secret", "a duplicated kind that says Secret wins");
        let (v, dup) = parse_checked(r#"{"a":1,"a":2}"#).unwrap();
        assert!(dup);
        assert_eq!(v["a"], 2, "otherwise the last, as serde_json and Go");
        assert!(!parse_checked(r#"{"a":{"a":1}}"#).unwrap().1);
        assert!(parse_checked(&nest_obj(130)).is_err(), "serde_json's recursion limit holds");
    }

    fn nest_obj(n: usize) -> String {
        r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n)
    }
}
