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
use sha2::{Digest, Sha256};

/// What a redacted value starts with.
pub const MARKER_PREFIX: &str = "kaq-redacted:sha256:";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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

/// Redacts a request or response body given as JSON text. `secrets_resource` says the event's
/// `objectRef.resource` is `secrets` (then a body without `kind` is a Secret or a patch of one).
/// Returns the new text, or `None` when nothing needed redacting.
pub fn redact_json_text(text: &str, secrets_resource: bool) -> Option<String> {
    static SECRET: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Secret"));
    static APPLIED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(LAST_APPLIED.as_bytes()));
    let b = text.as_bytes();
    if !secrets_resource && SECRET.find(b).is_none() && APPLIED.find(b).is_none() {
        return None;
    }
    let mut v: Value = serde_json::from_str(text).ok()?;
    redact_value(&mut v, secrets_resource).then(|| v.to_string())
}

/// Redacts an event's request and response bodies in place.
pub fn redact_event(ev: &mut Event<'_>) {
    let secrets = ev.object_ref.as_ref().and_then(|o| o.resource.as_deref()) == Some("secrets");
    for obj in [&mut ev.request_object, &mut ev.response_object] {
        if let Some(text) = obj.as_deref()
            && let Some(redacted) = redact_json_text(text, secrets)
        {
            *obj = Some(Cow::Owned(redacted));
        }
    }
}

/// Redacts the text of a record that could not be decoded (for the rejects file). Text that is
/// JSON is redacted as a decoded event would be, and so are the events a cloud wrapper holds
/// (GKE's `protoPayload.request`/`response`, an AKS record's `properties.log`, an EKS log event's
/// `message`, an AKSAudit row's `RequestObject`…), whether as objects or as JSON text in a string.
/// Text that is not JSON (a truncated line) has every `data`/`stringData` object that follows a
/// mention of secrets masked whole, keys included: without a parse, keys and values cannot be
/// told apart safely. `None` when nothing changed.
pub fn redact_raw(text: &[u8]) -> Option<Vec<u8>> {
    static SECRET: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"ecret"));
    if SECRET.find(text).is_none() && memchr::memmem::find(text, LAST_APPLIED.as_bytes()).is_none() {
        return None; // neither "Secret" nor "secrets" nor last-applied
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(text) {
        let mut changed = redact_bodies(&mut v);
        changed |= redact_value(&mut v, false);
        return changed.then(|| v.to_string().into_bytes());
    }
    mask_data_objects(text)
}

/// Whether a record (or a wrapper's part) says it is about the `secrets` resource.
fn about_secrets(m: &serde_json::Map<String, Value>) -> bool {
    let is = |r: Option<&Value>| r.and_then(Value::as_str) == Some("secrets");
    let object_ref = |k: &str| match m.get(k) {
        Some(o @ Value::Object(_)) => is(o.get("resource")),
        // AKSAudit's dynamic columns may come as JSON text.
        Some(Value::String(t)) => serde_json::from_str::<Value>(t).is_ok_and(|o| is(o.get("resource"))),
        _ => false,
    };
    let path = |k: &str| m.get(k).and_then(Value::as_str).is_some_and(|p| p.split('/').any(|s| s == "secrets"));
    let method = |k: &str| m.get(k).and_then(Value::as_str).is_some_and(|p| p.contains(".secrets."));
    object_ref("objectRef")
        || object_ref("ObjectRef")
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

/// Redacts in place; `secret_context` says an object without `kind` is a Secret. Returns whether
/// anything changed.
pub fn redact_value(v: &mut Value, secret_context: bool) -> bool {
    match v {
        Value::Object(m) => {
            let kind = m.get("kind").and_then(Value::as_str);
            let is_secret = kind == Some("Secret") || (secret_context && kind.is_none());
            let items_are_secrets =
                kind == Some("SecretList") || (secret_context && matches!(kind, None | Some("List")));
            let mut changed = false;
            for (k, child) in m.iter_mut() {
                changed |= match k.as_str() {
                    "data" | "stringData" if is_secret => redact_all(child),
                    "items" if items_are_secrets => {
                        let mut c = false;
                        for item in child.as_array_mut().into_iter().flatten() {
                            c |= redact_value(item, true);
                        }
                        c
                    }
                    LAST_APPLIED => redact_embedded(child),
                    _ => redact_value(child, false),
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
                    (true, Some(p)) if p.starts_with("/data") || p.starts_with("/stringData") => {
                        if let Some(val) = el.get_mut("value") {
                            changed |= if p.matches('/').count() >= 2 { redact_one(val) } else { redact_all(val) };
                        }
                    }
                    _ => changed |= redact_value(el, false),
                }
            }
            changed
        }
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

/// The last-applied annotation holds an object as JSON text: redact inside it.
fn redact_embedded(v: &mut Value) -> bool {
    let Value::String(s) = v else { return redact_value(v, false) };
    let Ok(mut inner) = serde_json::from_str::<Value>(s) else { return false };
    if !redact_value(&mut inner, false) {
        return false;
    }
    *s = inner.to_string();
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
        assert!(!out.contains("SEKRIT") && out.ends_with(r#""kaq-redacted":true},"type":"Opaque""#), "{out}");
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
