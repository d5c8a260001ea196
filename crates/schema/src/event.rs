//! The audit event model: one `audit.k8s.io` Event, borrowing its strings from the input text
//! wherever no unescaping was needed.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::derive::Derived;
use crate::time::{Micros, format_micros};

/// `user` and `impersonatedUser` (authentication.k8s.io UserInfo).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserInfo<'a> {
    pub username: Option<Cow<'a, str>>,
    pub uid: Option<Cow<'a, str>>,
    pub groups: Option<Vec<Cow<'a, str>>>,
    /// `extra` (a map of string lists), kept as its JSON text.
    pub extra: Option<Cow<'a, str>>,
}

/// `objectRef`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectRef<'a> {
    pub resource: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub uid: Option<Cow<'a, str>>,
    pub api_group: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub resource_version: Option<Cow<'a, str>>,
    pub subresource: Option<Cow<'a, str>>,
}

/// `responseStatus` (a metav1.Status).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status<'a> {
    /// `metadata` as JSON text (nearly always `{}`).
    pub metadata: Option<Cow<'a, str>>,
    pub status: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
    pub reason: Option<Cow<'a, str>>,
    /// `details` as JSON text.
    pub details: Option<Cow<'a, str>>,
    pub code: Option<i32>,
}

/// One audit event.
///
/// Every field of `audit.k8s.io/v1` has a typed slot; whatever else the input held — v1beta1's
/// `timestamp` and `metadata`, unknown keys at any depth, explicit `null`s, timestamps written in a
/// non-canonical form — is kept in [`Event::unmapped`], so that [`Event::to_json`] gives back the
/// input, semantically equal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub audit_id: Option<Cow<'a, str>>,
    pub stage: Option<Cow<'a, str>>,
    pub request_uri: Option<Cow<'a, str>>,
    pub verb: Option<Cow<'a, str>>,
    pub user: Option<UserInfo<'a>>,
    pub impersonated_user: Option<UserInfo<'a>>,
    pub source_ips: Option<Vec<Cow<'a, str>>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub object_ref: Option<ObjectRef<'a>>,
    pub response_status: Option<Status<'a>>,
    /// `requestObject` as JSON text (redacted unless secrets are kept).
    pub request_object: Option<Cow<'a, str>>,
    /// `responseObject` as JSON text (redacted unless secrets are kept).
    pub response_object: Option<Cow<'a, str>>,
    /// `requestReceivedTimestamp`.
    pub request_received: Option<Micros>,
    /// `stageTimestamp`.
    pub stage_timestamp: Option<Micros>,
    pub annotations: Option<Vec<(Cow<'a, str>, Cow<'a, str>)>>,
    /// Everything the typed slots do not hold, as a JSON object merged over the typed fields.
    pub unmapped: Option<Map<String, Value>>,
    /// Fields computed from the others at decode time.
    pub derived: Derived,
    /// Whether the event differs from the JSON text it was decoded from (a Secret redacted, a
    /// value nested too deep replaced, a key given twice of which one was dropped): that text
    /// must not be shown for it, only [`Event::to_json`].
    pub rewritten: bool,
}

fn s(v: &Option<Cow<'_, str>>) -> Option<Value> {
    v.as_ref().map(|v| Value::String(v.to_string()))
}

fn list(v: &Option<Vec<Cow<'_, str>>>) -> Option<Value> {
    v.as_ref().map(|v| Value::Array(v.iter().map(|x| Value::String(x.to_string())).collect()))
}

/// JSON text kept verbatim; text that is not JSON (never produced by decoding) becomes a string.
fn raw(v: &Option<Cow<'_, str>>) -> Option<Value> {
    v.as_ref().map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v);
    }
}

fn user_json(u: &UserInfo<'_>) -> Value {
    let mut m = Map::new();
    put(&mut m, "username", s(&u.username));
    put(&mut m, "uid", s(&u.uid));
    put(&mut m, "groups", list(&u.groups));
    put(&mut m, "extra", raw(&u.extra));
    Value::Object(m)
}

impl Event<'_> {
    /// The event as audit JSON: the typed fields, then [`Event::unmapped`] merged over them.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "kind", s(&self.kind));
        put(&mut m, "apiVersion", s(&self.api_version));
        put(&mut m, "level", s(&self.level));
        put(&mut m, "auditID", s(&self.audit_id));
        put(&mut m, "stage", s(&self.stage));
        put(&mut m, "requestURI", s(&self.request_uri));
        put(&mut m, "verb", s(&self.verb));
        put(&mut m, "user", self.user.as_ref().map(user_json));
        put(&mut m, "impersonatedUser", self.impersonated_user.as_ref().map(user_json));
        put(&mut m, "sourceIPs", list(&self.source_ips));
        put(&mut m, "userAgent", s(&self.user_agent));
        if let Some(o) = &self.object_ref {
            let mut r = Map::new();
            put(&mut r, "resource", s(&o.resource));
            put(&mut r, "namespace", s(&o.namespace));
            put(&mut r, "name", s(&o.name));
            put(&mut r, "uid", s(&o.uid));
            put(&mut r, "apiGroup", s(&o.api_group));
            put(&mut r, "apiVersion", s(&o.api_version));
            put(&mut r, "resourceVersion", s(&o.resource_version));
            put(&mut r, "subresource", s(&o.subresource));
            m.insert("objectRef".into(), Value::Object(r));
        }
        if let Some(st) = &self.response_status {
            let mut r = Map::new();
            put(&mut r, "metadata", raw(&st.metadata));
            put(&mut r, "status", s(&st.status));
            put(&mut r, "message", s(&st.message));
            put(&mut r, "reason", s(&st.reason));
            put(&mut r, "details", raw(&st.details));
            put(&mut r, "code", st.code.map(Value::from));
            m.insert("responseStatus".into(), Value::Object(r));
        }
        put(&mut m, "requestObject", raw(&self.request_object));
        put(&mut m, "responseObject", raw(&self.response_object));
        put(&mut m, "requestReceivedTimestamp", self.request_received.map(|t| format_micros(t).into()));
        put(&mut m, "stageTimestamp", self.stage_timestamp.map(|t| format_micros(t).into()));
        if let Some(a) = &self.annotations {
            let a = a.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string())));
            m.insert("annotations".into(), Value::Object(a.collect()));
        }
        let mut v = Value::Object(m);
        if let Some(u) = &self.unmapped {
            merge(&mut v, Value::Object(u.clone()));
        }
        v
    }

    /// The value of annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    /// `user.username`.
    pub fn username(&self) -> Option<&str> {
        self.user.as_ref()?.username.as_deref()
    }
}

/// Deep-merges `patch` into `target`: objects merge key by key, anything else replaces.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(&k) {
                    Some(slot @ Value::Object(_)) if v.is_object() => merge(slot, v),
                    _ => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, p) => *t = p,
    }
}
