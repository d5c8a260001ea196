//! Secret redaction: the values of a Secret's `data` and `stringData` never leave decoding unless
//! the user asked to keep them.
//!
//! A value is replaced by `kaq-redacted:sha256:<16 hex digits>` — the first 64 bits of the SHA-256
//! of the value as written — so that "did this secret change?" can still be answered, while the
//! keys stay as they were. Redaction covers Secret objects anywhere in a request or response body
//! (lists included), merge and JSON patches sent to the `secrets` resource, and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation that repeats a Secret whole.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde_json::Value;

use crate::event::Event;
use crate::json::{MAX_DEPTH, nested_deeper_than, parse_checked};
use sha2::{Digest, Sha256};

/// What a redacted value starts with.
pub const MARKER_PREFIX: &str = "kaq-redacted:sha256:";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What replaces a JSON value kept as text (a body, `user.extra`, `responseStatus.details` or
/// `metadata`) nested deeper than [`MAX_DEPTH`] levels, with or without `--keep-secrets`: kaq
/// could neither check it for secrets nor query it, nor could it be printed as an event that
/// parses again.
pub const DEEP_MARKER: &str = r#"{"kaq-redacted":"nested deeper than 100 levels: not checked for secrets"}"#;

/// The marker that replaces `value`.
pub fn marker(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(MARKER_PREFIX.len() + 16);
    out.push_str(MARKER_PREFIX);
    for b in &digest[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The object that replaces a body that might hold a Secret but could not be parsed to check it.
fn unchecked_body(why: &serde_json::Error) -> String {
    serde_json::json!({ "kaq-redacted": format!("not checked for secrets: {why}") }).to_string()
}

/// The string that replaces a string holding JSON that might hold a Secret but does not parse.
fn unchecked_string(why: &serde_json::Error) -> String {
    format!("kaq-redacted: not checked for secrets: {why}")
}

/// Whether JSON text may hold something redaction acts on, by byte search: a `kind` (any case,
/// at any level of string escaping) whose value begins with `secret` (any case), the
/// last-applied annotation, or any `\u` escape (an escaped letter can hide either). A false
/// `true` costs a parse; a false `false` would leak, so every shape [`redact_value`] acts on is
/// found here.
pub fn may_hold_secret(b: &[u8]) -> bool {
    static ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));
    static APPLIED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(LAST_APPLIED.as_bytes()));
    if ESCAPE.find(b).is_some() || APPLIED.find(b).is_some() {
        return true;
    }
    memchr::memchr2_iter(b'k', b'K', b).any(|i| {
        if !b.get(i + 1..i + 4).is_some_and(|w| w.eq_ignore_ascii_case(b"ind")) {
            return false;
        }
        // Between the key and its value: quotes, a colon, whitespace, and the backslashes of
        // escaped quotes and whitespace when the object is JSON text inside a string.
        let mut j = i + 4;
        loop {
            match b.get(j) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | b'"' | b':') => j += 1,
                Some(b'\\') => j += if matches!(b.get(j + 1), Some(b'n' | b'r' | b't')) { 2 } else { 1 },
                _ => break,
            }
        }
        b.get(j..j + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"secret"))
    })
}

/// Redacts a request or response body given as JSON text. `secrets_resource` says the event is
/// about the `secrets` resource (then a body without `kind` is a Secret or a patch of one).
/// Returns the new text, or `None` when nothing needed redacting. Fails closed: a body that may
/// hold a Secret but does not parse (a number out of range, text that is not JSON in a Parquet
/// file another tool wrote) is replaced by `{"kaq-redacted":"not checked for secrets: …"}`, and
/// one with a key given twice in an object is re-encoded from what was checked.
pub fn redact_json_text(text: &str, secrets_resource: bool) -> Option<String> {
    if !secrets_resource && !may_hold_secret(text.as_bytes()) {
        return None;
    }
    match parse_checked(text) {
        Ok((mut v, duplicates)) => (redact_value(&mut v, secrets_resource) | duplicates).then(|| v.to_string()),
        Err(e) => Some(unchecked_body(&e)),
    }
}

/// What every reader does to an event before anything else reads it (decoding, and events
/// restored from Parquet): a JSON value kept as text nested deeper than [`MAX_DEPTH`] is replaced
/// by [`DEEP_MARKER`]; unless `keep_secrets`, the values of Secrets in the bodies (and in keys
/// decoding did not know) are redacted. Returns whether the event changed.
pub fn sanitize(ev: &mut Event<'_>, keep_secrets: bool) -> bool {
    let mut changed = false;
    let mut too_deep = |slot: &mut Option<Cow<'_, str>>| {
        if slot.as_deref().is_some_and(|t| nested_deeper_than(t.as_bytes(), MAX_DEPTH)) {
            *slot = Some(Cow::Borrowed(DEEP_MARKER));
            changed = true;
        }
    };
    too_deep(&mut ev.request_object);
    too_deep(&mut ev.response_object);
    for u in [&mut ev.user, &mut ev.impersonated_user].into_iter().flatten() {
        too_deep(&mut u.extra);
    }
    if let Some(st) = &mut ev.response_status {
        too_deep(&mut st.details);
        too_deep(&mut st.metadata);
    }
    if keep_secrets {
        return changed;
    }
    if ev.request_object.is_some() || ev.response_object.is_some() {
        let secrets = about_secrets_resource(ev);
        for obj in [&mut ev.request_object, &mut ev.response_object] {
            if let Some(text) = obj.as_deref()
                && let Some(redacted) = redact_json_text(text, secrets)
            {
                *obj = Some(Cow::Owned(redacted));
                changed = true;
            }
        }
    }
    for v in ev.unmapped.iter_mut().flat_map(|m| m.values_mut()) {
        changed |= redact_value(v, false);
    }
    changed
}

/// Redacts an event's request and response bodies in place (as [`sanitize`] without
/// `--keep-secrets`).
pub fn redact_event(ev: &mut Event<'_>) {
    sanitize(ev, false);
}

/// Whether an event is about the `secrets` resource: its `objectRef.resource`, or the resource
/// its `requestURI` names (a hostile log may leave `objectRef` out or disagree with the path the
/// API server routed by). Compared ignoring case, failing closed.
fn about_secrets_resource(ev: &Event<'_>) -> bool {
    let is = |r: &str| r.eq_ignore_ascii_case("secrets");
    ev.object_ref.as_ref().and_then(|o| o.resource.as_deref()).is_some_and(is)
        || ev.request_uri.as_deref().and_then(uri_resource).is_some_and(|r| is(&r))
}

/// The resource a request path names: `/api/v1/[watch/][namespaces/NS/]RESOURCE…` or
/// `/apis/GROUP/VERSION/…` the same way; segments percent-decoded (as the API server routes).
fn uri_resource(uri: &str) -> Option<String> {
    let path = uri.split(['?', '#']).next()?;
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let rest = match segs.first()?.as_str() {
        "api" => segs.get(2..)?,
        "apis" => segs.get(3..)?,
        _ => return None,
    };
    let rest = if rest.first().is_some_and(|s| s == "watch") { &rest[1..] } else { rest };
    let r = match rest {
        [ns, _, r, ..] if ns == "namespaces" => r,
        [r, ..] => r,
        [] => return None,
    };
    Some(r.clone())
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Redacts the text of a record that could not be decoded (for the rejects file). Text that is
/// JSON is redacted as a decoded event would be, and so are the events a cloud wrapper holds
/// (GKE's `protoPayload.request`/`response`, an AKS record's `properties.log`, an EKS log event's
/// `message`, an AKSAudit row's `RequestObject`…), whether as objects or as JSON text in a string.
/// Text that is not JSON (a truncated line) and mentions secrets (or holds a `\\u` escape) has
/// every `data`/`stringData` object masked whole, keys included, and every other string value
/// masked: without a parse no shape can be trusted (a JSON patch, an escaped key, a Secret held as
/// JSON text). `None` when nothing changed.
pub fn redact_raw(text: &[u8]) -> Option<Vec<u8>> {
    static SECRET: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"ecret"));
    if SECRET.find(text).is_none() && !may_hold_secret(text) {
        return None; // neither "Secret" nor "secrets" nor last-applied nor an escape
    }
    if let Ok(t) = std::str::from_utf8(text)
        && let Ok((mut v, duplicates)) = parse_checked(t)
    {
        let mut changed = redact_bodies(&mut v) | duplicates;
        changed |= redact_value(&mut v, false);
        return changed.then(|| v.to_string().into_bytes());
    }
    // Too broken to parse (cut short, nested past serde's limit, not UTF-8): no shape can be
    // trusted, so every string value is masked, keys kept.
    let masked = mask_data_objects(text);
    Some(mask_string_values(masked.as_deref().unwrap_or(text)))
}

/// Replaces the content of every JSON string that is not an object key (not followed by `:`)
/// with `kaq-redacted`, up to the end of a truncated text. Strings holding JSON text are values
/// too: masked whole.
fn mask_string_values(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(o) = memchr::memchr(b'"', &text[i..]) {
        out.extend_from_slice(&text[i..i + o]);
        let start = i + o;
        // The closing quote: the first one not escaped (none in a truncated text).
        let mut j = start + 1;
        let end = loop {
            match memchr::memchr2(b'"', b'\\', text.get(j..).unwrap_or_default()) {
                Some(o) if text[j + o] == b'\\' => j += o + 2,
                Some(o) => break Some(j + o),
                None => break None,
            }
        };
        let Some(end) = end else {
            out.extend_from_slice(b"\"kaq-redacted");
            return out;
        };
        let next = text[end + 1..].iter().find(|c| !c.is_ascii_whitespace());
        if next == Some(&b':') {
            out.extend_from_slice(&text[start..=end]);
        } else {
            out.extend_from_slice(b"\"kaq-redacted\"");
        }
        i = end + 1;
    }
    out.extend_from_slice(&text[i..]);
    out
}

/// Whether a record (or a wrapper's part) says it is about the `secrets` resource.
fn about_secrets(m: &serde_json::Map<String, Value>) -> bool {
    let is = |r: Option<&Value>| r.and_then(Value::as_str).is_some_and(|r| r.eq_ignore_ascii_case("secrets"));
    let object_ref = |k: &str| match m.get(k) {
        Some(o @ Value::Object(_)) => is(o.get("resource")),
        // AKSAudit's dynamic columns may come as JSON text.
        Some(Value::String(t)) => serde_json::from_str::<Value>(t).is_ok_and(|o| is(o.get("resource"))),
        _ => false,
    };
    let path = |k: &str| {
        m.get(k).and_then(Value::as_str).is_some_and(|p| p.split('/').any(|s| s.eq_ignore_ascii_case("secrets")))
    };
    let method = |k: &str| m.get(k).and_then(Value::as_str).is_some_and(|p| p.contains(".secrets."));
    let uri = m.get("requestURI").and_then(Value::as_str).and_then(uri_resource);
    object_ref("objectRef")
        || object_ref("ObjectRef")
        || uri.is_some_and(|r| r.eq_ignore_ascii_case("secrets"))
        || path("resourceName")
        || path("resource_name")
        || method("methodName")
        || method("method_name")
}

/// Redacts the bodies of every event in `v`, at any depth (wrappers), and in JSON text held in
/// strings (wrappers that carry the event as a string).
fn redact_bodies(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            let secrets = about_secrets(m);
            let mut changed = false;
            for (k, child) in m.iter_mut() {
                let body = matches!(
                    k.as_str(),
                    "requestObject" | "responseObject" | "RequestObject" | "ResponseObject" | "request" | "response"
                );
                if body && secrets {
                    if child.get("fields").is_some() {
                        // A protobuf Struct dump (GKE's Go `logging.Entry`): not readable as an object.
                        *child = serde_json::json!({"kaq-redacted": true});
                        changed = true;
                        continue;
                    }
                    changed |= redact_value(child, true);
                }
                changed |= redact_bodies(child);
            }
            changed
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, el| redact_bodies(el) | c),
        Value::String(s) if s.trim_start().starts_with(['{', '[']) => match redact_raw(s.as_bytes()) {
            Some(r) => {
                *s = String::from_utf8_lossy(&r).into_owned();
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Masks `"data":{…}` and `"stringData":{…}` (also `\"data\":{…}` inside an escaped JSON string)
/// as `{"kaq-redacted":true}`, up to the closing brace or the end of a truncated text.
fn mask_data_objects(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    let mut changed = false;
    while i < text.len() {
        let rest = &text[i..];
        let key = [&b"\"data\""[..], b"\"stringData\"", b"\\\"data\\\"", b"\\\"stringData\\\""]
            .into_iter()
            .find(|k| rest.starts_with(k));
        let Some(key) = key else {
            out.push(text[i]);
            i += 1;
            continue;
        };
        let escaped = key.starts_with(b"\\");
        let mut j = i + key.len();
        while j < text.len() && (text[j] == b' ' || text[j] == b':') {
            j += 1;
        }
        if text.get(j) != Some(&b'{') {
            out.extend_from_slice(key);
            i += key.len();
            continue;
        }
        // Find the closing brace outside strings.
        let quote: &[u8] = if escaped { b"\\\"" } else { b"\"" };
        let mut k = j + 1;
        let mut in_str = false;
        while k < text.len() {
            if text[k..].starts_with(quote) {
                in_str = !in_str;
                k += quote.len();
                continue;
            }
            if !escaped && in_str && text[k] == b'\\' {
                k += 2;
                continue;
            }
            if !in_str && text[k] == b'}' {
                break;
            }
            k += 1;
        }
        out.extend_from_slice(&text[i..j]);
        out.extend_from_slice(if escaped { br#"{\"kaq-redacted\":true}"# } else { br#"{"kaq-redacted":true}"# });
        changed = true;
        i = (k + 1).min(text.len());
    }
    changed.then_some(out)
}

/// Whether a `kind` names a Secret (any case: fail closed), or a list of them.
fn secret_kind(v: &Value) -> (bool, bool) {
    match v.as_str() {
        Some(k) => (k.eq_ignore_ascii_case("Secret"), k.eq_ignore_ascii_case("SecretList")),
        None => (false, false),
    }
}

/// Whether a JSON patch `path` reaches into a Secret's values: `/data…`, `/stringData…` (any
/// case), or the whole document (`""`).
fn secret_patch_path(p: &str) -> bool {
    let starts = |prefix: &str| p.get(..prefix.len()).is_some_and(|h| h.eq_ignore_ascii_case(prefix));
    p.is_empty() || starts("/data") || starts("/stringData")
}

/// Of two values given for one key of an object, whether the first is kept (the parse otherwise
/// keeps the last, as serde_json and Go do): when it is the one that makes the object a Secret or
/// a patch of one, so that a reader keeping the first finds it redacted too.
pub(crate) fn keep_first(key: &str, first: &Value) -> bool {
    if key.eq_ignore_ascii_case("kind") {
        let (secret, list) = secret_kind(first);
        return secret || list;
    }
    key == "path" && first.as_str().is_some_and(secret_patch_path)
}

/// Redacts in place; `secret_context` says an object without `kind` is a Secret. Returns whether
/// anything changed. Kinds, and the keys `kind`, `data`, `stringData` and `items`, are compared
/// ignoring case (Go's JSON decoding matched field names so, and the API server used it); strings
/// holding JSON (the last-applied annotation, a manifest kept in a ConfigMap…) are redacted
/// inside.
pub fn redact_value(v: &mut Value, secret_context: bool) -> bool {
    match v {
        Value::Object(m) => {
            // Every key that reads `kind` counts: a reader may take any of them.
            let (mut is_secret, mut items_are_secrets, mut has_kind) = (false, false, false);
            for kind in m.iter().filter(|(k, _)| k.eq_ignore_ascii_case("kind")).map(|(_, v)| v) {
                let (secret, list) = secret_kind(kind);
                let plain_list = kind.as_str().is_some_and(|k| k.eq_ignore_ascii_case("List"));
                is_secret |= secret;
                items_are_secrets |= list || (secret_context && plain_list);
                has_kind |= kind.is_string();
            }
            is_secret |= secret_context && !has_kind;
            items_are_secrets |= secret_context && !has_kind;
            let mut changed = false;
            for (k, child) in m.iter_mut() {
                let key = |name: &str| k.eq_ignore_ascii_case(name);
                changed |= if is_secret && (key("data") || key("stringData")) {
                    redact_all(child)
                } else if items_are_secrets && key("items") {
                    match child {
                        Value::Array(items) => items.iter_mut().fold(false, |c, item| redact_value(item, true) | c),
                        other => redact_value(other, true),
                    }
                } else {
                    redact_value(child, false)
                };
            }
            changed
        }
        Value::Array(a) => {
            let mut changed = false;
            for el in a.iter_mut() {
                // A JSON patch to a secret: {"op":"replace","path":"/data/password","value":"…"}.
                let patch_path = el.get("path").and_then(Value::as_str).map(str::to_owned);
                match (secret_context, patch_path) {
                    (true, Some(p)) if secret_patch_path(&p) => {
                        if let Some(val) = el.get_mut("value") {
                            changed |= if p.is_empty() {
                                redact_value(val, true) // the whole Secret replaced
                            } else if p.matches('/').count() >= 2 {
                                redact_one(val)
                            } else {
                                redact_all(val)
                            };
                        }
                    }
                    (true, None) => changed |= redact_value(el, true),
                    _ => changed |= redact_value(el, false),
                }
            }
            changed
        }
        Value::String(s) => redact_embedded(s),
        _ => false,
    }
}

/// Replaces every value of a `data`/`stringData` map.
fn redact_all(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            let mut changed = false;
            for val in m.values_mut() {
                changed |= redact_one(val);
            }
            changed
        }
        Value::Null => false,
        other => redact_one(other),
    }
}

fn redact_one(v: &mut Value) -> bool {
    let text = match &*v {
        Value::String(s) if s.starts_with(MARKER_PREFIX) => return false,
        Value::String(s) => s.clone(),
        Value::Null => return false,
        other => other.to_string(),
    };
    *v = Value::String(marker(&text));
    true
}

/// A string holding JSON (the last-applied annotation holds a whole object so): redacted inside,
/// when it looks like an object or array and may hold a Secret. One that does not parse is
/// replaced (fail closed).
fn redact_embedded(s: &mut String) -> bool {
    let t = s.trim();
    let looks_like_json = (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']'));
    if !looks_like_json || !may_hold_secret(t.as_bytes()) {
        return false;
    }
    match parse_checked(t) {
        Ok((mut inner, duplicates)) => {
            if !(redact_value(&mut inner, false) | duplicates) {
                return false;
            }
            *s = inner.to_string();
        }
        Err(e) => *s = unchecked_string(&e),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lists_patches_and_last_applied() {
        let secret = r#"{"kind":"Secret","metadata":{"name":"x","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"Secret\",\"data\":{\"k\":\"SEKRIT1\"}}"}},"data":{"k":"SEKRIT2"},"stringData":{"p":"SEKRIT3"}}"#;
        let out = redact_json_text(secret, false).unwrap();
        assert!(!out.contains("SEKRIT"), "{out}");
        assert!(out.contains(&marker("SEKRIT2")));
        assert!(out.contains("\"k\""), "keys stay");

        let list = r#"{"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"k":"SEKRIT4"}}]}"#;
        assert!(!redact_json_text(list, true).unwrap().contains("SEKRIT"));

        let merge_patch = r#"{"data":{"k":"SEKRIT5"}}"#;
        assert!(!redact_json_text(merge_patch, true).unwrap().contains("SEKRIT"));
        assert_eq!(redact_json_text(merge_patch, false), None, "not a secret outside secrets");

        let json_patch = r#"[{"op":"replace","path":"/data/k","value":"SEKRIT6"},{"op":"add","path":"/stringData","value":{"a":"SEKRIT7"}}]"#;
        assert!(!redact_json_text(json_patch, true).unwrap().contains("SEKRIT"));

        let status = r#"{"kind":"Status","status":"Success","details":{"name":"x"}}"#;
        assert_eq!(redact_json_text(status, true), None);
        let cm = r#"{"kind":"ConfigMap","data":{"k":"visible"}}"#;
        assert_eq!(redact_json_text(cm, false), None);
    }

    #[test]
    fn rejected_text_is_redacted_too() {
        // A decodable record with a bad field: redacted as JSON.
        let bad = br#"{"auditID":7,"objectRef":{"resource":"secrets"},"requestObject":{"data":{"k":"SEKRIT1"}}}"#;
        let out = String::from_utf8(redact_raw(bad).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT") && out.contains(MARKER_PREFIX), "{out}");
        // A truncated line: masked by text, up to the end.
        let cut = br#"{"auditID":"x","objectRef":{"resource":"secrets"},"requestObject":{"kind":"Secret","data":{"k":"SEKRIT2","l":"SEK"#;
        let out = String::from_utf8(redact_raw(cut).unwrap()).unwrap();
        assert!(!out.contains("SEK"), "{out}");
        let closed = br#"{"kind":"Secret","stringData":{"k":"a}b SEKRIT3"},"type":"Opaque""#;
        let out = String::from_utf8(redact_raw(closed).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT") && out.ends_with(r#""kaq-redacted":true},"type":"kaq-redacted""#), "{out}");
        // Shapes a text search cannot recognise: every string value is masked, keys kept.
        let patch = br#"{"objectRef":{"resource":"secrets"},"requestObject":[{"op":"add","path":"/d\u0061ta/k","value":"SEKRIT5"}"#;
        let out = String::from_utf8(redact_raw(patch).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"objectRef":{"resource":"kaq-redacted"},"requestObject":[{"op":"kaq-redacted","path":"kaq-redacted","value":"kaq-redacted"}"#
        );
        let deep = format!(
            r#"{{"requestObject":{{"kind":"Secret","data":{{"k":"SEKRIT6"}},"x":{}}}}}"#,
            "[".repeat(200) + &"]".repeat(200)
        );
        let out = String::from_utf8(redact_raw(deep.as_bytes()).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT") && out.contains(r#""kind":"kaq-redacted""#), "{out}");
        let applied = br#"{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"Secret\",\"data\":{\"k\":\"SEKRIT4\"}}"#;
        let out = String::from_utf8(redact_raw(applied).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT"), "{out}");
        assert_eq!(redact_raw(br#"{"kind":"ConfigMap","data":{"k":"v"}"#), None);
    }

    #[test]
    fn rejected_wrappers_are_redacted_inside() {
        // AKS: the event as a JSON string, whole or cut short.
        let aks = br#"{"records":[{"properties":{"log":"{\"auditID\":7,\"objectRef\":{\"resource\":\"secrets\"},\"requestObject\":{\"data\":{\"k\":\"SEKRIT1\"}}}"}}]}"#;
        let out = String::from_utf8(redact_raw(aks).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT") && out.contains(MARKER_PREFIX), "{out}");
        let cut = br#"{"category":"kube-audit","properties":{"log":"{\"kind\":\"Secret\",\"data\":{\"k\":\"SEKRIT2"}}"#;
        let out = String::from_utf8(redact_raw(cut).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT"), "{out}");
        // GKE: a patch to a secret (no kind) is known by resourceName; Struct dumps are masked whole.
        let gke = br#"{"protoPayload":{"serviceName":"k8s.io","resourceName":"core/v1/namespaces/a/secrets/b","request":{"data":{"k":"SEKRIT3"}}}}"#;
        let out = String::from_utf8(redact_raw(gke).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT"), "{out}");
        let dump = br#"{"Entry":{"Payload":{"resource_name":"core/v1/namespaces/a/secrets/b","request":{"fields":{"data":{"Kind":{"StructValue":{"fields":{"k":{"Kind":{"StringValue":"SEKRIT4"}}}}}}}}}}}"#;
        let out = String::from_utf8(redact_raw(dump).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT"), "{out}");
        // AKSAudit: ObjectRef as JSON text.
        let row = br#"{"AuditId":7,"ObjectRef":"{\"resource\":\"secrets\"}","RequestObject":{"data":{"k":"SEKRIT5"}}}"#;
        let out = String::from_utf8(redact_raw(row).unwrap()).unwrap();
        assert!(!out.contains("SEKRIT"), "{out}");
        // Not a secret: nothing changes.
        let cm = br#"{"records":[{"properties":{"log":"{\"objectRef\":{\"resource\":\"configmaps\"},\"requestObject\":{\"kind\":\"ConfigMap\",\"data\":{\"k\":\"v\"}}}"}}],"x":"secrets"}"#;
        assert_eq!(redact_raw(cm), None);
    }

    #[test]
    fn redaction_is_idempotent() {
        let s = r#"{"kind":"Secret","data":{"k":"v"}}"#;
        let once = redact_json_text(s, false).unwrap();
        assert_eq!(redact_json_text(&once, false), None);
    }
}
