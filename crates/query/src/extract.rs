//! Reading a slot's value out of a decoded [`Event`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use kaq_schema::{Event, Fields};
use serde_json::value::RawValue;

use crate::plan::FieldKey;
use crate::value::Val;

/// How to read one slot, decided once per query.
#[derive(Debug, Clone)]
pub enum Getter {
    Time,
    StageTime,
    Latency,
    Id,
    /// Whether another request carries the event's auditID: known only from the whole input
    /// ([`crate::Plan::reused_ids`]), so the scan answers it, not [`Getter::get`].
    IdReused,
    Stage,
    Level,
    Verb,
    Uri,
    User,
    Uid,
    Groups,
    Extra(bool),
    As,
    AsUid,
    AsGroups,
    Ip,
    ClientIp,
    PeerIp,
    Ua,
    Resource,
    Subresource,
    Ns,
    Name,
    ApiGroup,
    ApiVersion,
    ObjectUid,
    ResourceVersion,
    Code,
    Status,
    Reason,
    Message,
    Annotations,
    Annotation(String),
    ExtraKey(bool, String),
    Body(bool, Vec<String>),
    UserKind,
    ExecCommand,
    Privileged,
    HostNetwork,
    HostPid,
    HostIpc,
    HostPath,
}

/// The annotations kaq's Parquet also keeps as columns (`decision`, `authz_reason`).
pub const DECISION: &str = "authorization.k8s.io/decision";
pub const AUTHZ_REASON: &str = "authorization.k8s.io/reason";

impl Getter {
    pub fn new(key: &FieldKey) -> Getter {
        match key {
            FieldKey::Annotation(k) => Getter::Annotation(k.clone()),
            FieldKey::Extra { impersonated, key } => Getter::ExtraKey(*impersonated, key.clone()),
            FieldKey::Json { response, path } => Getter::Body(*response, path.clone()),
            FieldKey::Field(f) => match f.name {
                "time" => Getter::Time,
                "stage_time" => Getter::StageTime,
                "latency" => Getter::Latency,
                "id" => Getter::Id,
                "id_reused" => Getter::IdReused,
                "stage" => Getter::Stage,
                "level" => Getter::Level,
                "verb" => Getter::Verb,
                "uri" => Getter::Uri,
                "user" => Getter::User,
                "uid" => Getter::Uid,
                "groups" => Getter::Groups,
                "extra" => Getter::Extra(false),
                "as" => Getter::As,
                "as_uid" => Getter::AsUid,
                "as_groups" => Getter::AsGroups,
                "as_extra" => Getter::Extra(true),
                "ip" => Getter::Ip,
                "client_ip" => Getter::ClientIp,
                "peer_ip" => Getter::PeerIp,
                "ua" => Getter::Ua,
                "resource" => Getter::Resource,
                "subresource" => Getter::Subresource,
                "ns" => Getter::Ns,
                "name" => Getter::Name,
                "apigroup" => Getter::ApiGroup,
                "apiversion" => Getter::ApiVersion,
                "object_uid" => Getter::ObjectUid,
                "resource_version" => Getter::ResourceVersion,
                "code" => Getter::Code,
                "status" => Getter::Status,
                "reason" => Getter::Reason,
                "message" => Getter::Message,
                "decision" => Getter::Annotation(DECISION.into()),
                "authz_reason" => Getter::Annotation(AUTHZ_REASON.into()),
                "annotations" => Getter::Annotations,
                "request" => Getter::Body(false, Vec::new()),
                "response" => Getter::Body(true, Vec::new()),
                "user_kind" => Getter::UserKind,
                "exec_command" => Getter::ExecCommand,
                "privileged" => Getter::Privileged,
                "host_network" => Getter::HostNetwork,
                "host_pid" => Getter::HostPid,
                "host_ipc" => Getter::HostIpc,
                "host_path" => Getter::HostPath,
                other => unreachable!("catalogue field `{other}` has no getter"),
            },
        }
    }

    /// The Parquet columns (kaq's audit schema) an event restored from a batch needs for this
    /// getter to give the same value as from the whole event: what a scan reads.
    pub fn columns(&self) -> &'static [&'static str] {
        match self {
            Getter::Time => &["time"],
            Getter::StageTime => &["stage_time"],
            // `unmapped` says whether requestReceivedTimestamp was absent (then `time` came from
            // another timestamp and there is no latency).
            Getter::Latency => &["time", "stage_time", "unmapped"],
            Getter::Id => &["id"],
            Getter::IdReused => crate::scan::IDENTITY_COLUMNS,
            Getter::Stage => &["stage"],
            Getter::Level => &["level"],
            Getter::Verb => &["verb"],
            Getter::Uri => &["uri"],
            Getter::User => &["user"],
            Getter::Uid => &["uid"],
            Getter::Groups => &["groups"],
            Getter::Extra(false) | Getter::ExtraKey(false, _) => &["user_extra"],
            Getter::Extra(true) | Getter::ExtraKey(true, _) => &["as_extra"],
            Getter::As => &["as"],
            Getter::AsUid => &["as_uid"],
            Getter::AsGroups => &["as_groups"],
            Getter::Ip | Getter::ClientIp | Getter::PeerIp => &["ip"],
            Getter::Ua => &["ua"],
            Getter::Resource => &["resource"],
            Getter::Subresource => &["subresource"],
            Getter::Ns => &["ns"],
            Getter::Name => &["name"],
            Getter::ApiGroup => &["apigroup"],
            Getter::ApiVersion => &["apiversion"],
            Getter::ObjectUid => &["object_uid"],
            Getter::ResourceVersion => &["resource_version"],
            Getter::Code => &["code"],
            Getter::Status => &["status"],
            Getter::Reason => &["reason"],
            Getter::Message => &["message"],
            // The two the columns repeat: also their column, which the columnar path reads.
            Getter::Annotation(k) if k == DECISION => &["annotations", "decision"],
            Getter::Annotation(k) if k == AUTHZ_REASON => &["annotations", "authz_reason"],
            Getter::Annotations | Getter::Annotation(_) => &["annotations"],
            Getter::Body(false, _) => &["request"],
            Getter::Body(true, _) => &["response"],
            Getter::UserKind => &["user_kind"],
            Getter::ExecCommand => &["exec_command"],
            Getter::Privileged | Getter::HostNetwork | Getter::HostPid | Getter::HostIpc | Getter::HostPath => {
                &["privileged", "host_network", "host_pid", "host_ipc", "host_paths"]
            }
        }
    }

    /// The parts of a log's event decoding must keep for this getter to give the same value as
    /// from the whole event ([`Fields`]; [`Fields::BASE`] is always decoded).
    pub fn fields(&self) -> Fields {
        match self {
            Getter::As | Getter::AsUid | Getter::AsGroups | Getter::Extra(true) | Getter::ExtraKey(true, _) => {
                Fields::IMPERSONATED_USER
            }
            Getter::Ip | Getter::ClientIp | Getter::PeerIp => Fields::SOURCE_IPS,
            Getter::Resource
            | Getter::Subresource
            | Getter::Ns
            | Getter::Name
            | Getter::ApiGroup
            | Getter::ApiVersion
            | Getter::ObjectUid
            | Getter::ResourceVersion
            // Derived from `objectRef.subresource` and the URI.
            | Getter::ExecCommand => Fields::OBJECT_REF,
            Getter::Code | Getter::Status | Getter::Reason | Getter::Message => Fields::RESPONSE_STATUS,
            Getter::Annotations | Getter::Annotation(_) => Fields::ANNOTATIONS,
            Getter::Body(false, _) => Fields::REQUEST_OBJECT,
            Getter::Body(true, _) => Fields::RESPONSE_OBJECT,
            // Derived from the pod spec in `requestObject`.
            Getter::Privileged | Getter::HostNetwork | Getter::HostPid | Getter::HostIpc | Getter::HostPath => {
                Fields::REQUEST_OBJECT
            }
            Getter::Time
            | Getter::StageTime
            | Getter::Latency
            | Getter::Id
            | Getter::IdReused
            | Getter::Stage
            | Getter::Level
            | Getter::Verb
            | Getter::Uri => Fields::BASE,
            // `user_kind` is derived from the groups.
            Getter::Groups | Getter::UserKind => Fields::USER_GROUPS,
            Getter::User | Getter::Uid | Getter::Extra(false) | Getter::ExtraKey(false, _) | Getter::Ua => Fields::BASE,
        }
    }

    /// The slot's value for `ev`, borrowing from it where possible.
    pub fn get<'e>(&self, ev: &'e Event<'_>) -> Val<'e> {
        let s = |v: Option<&'e Cow<'_, str>>| v.map_or(Val::Null, |v| Val::Str(Cow::Borrowed(v.as_ref())));
        let list = |v: Option<&'e Vec<Cow<'_, str>>>| match v {
            Some(l) => Val::List(l.iter().map(|x| Val::Str(Cow::Borrowed(x.as_ref()))).collect()),
            None => Val::Null,
        };
        let obj = ev.object_ref.as_ref();
        let user = ev.user.as_ref();
        let imp = ev.impersonated_user.as_ref();
        let status = ev.response_status.as_ref();
        let pod = ev.derived.pod.as_ref();
        let flag = |f: fn(&kaq_schema::PodFlags) -> bool| pod.map_or(Val::Null, |p| Val::Bool(f(p)));
        match self {
            Getter::Time => ev.derived.time.map_or(Val::Null, Val::Time),
            Getter::StageTime => ev.stage_timestamp.map_or(Val::Null, Val::Time),
            Getter::Latency => ev.derived.latency_us.map_or(Val::Null, Val::Dur),
            Getter::Id => s(ev.audit_id.as_ref()),
            Getter::IdReused => Val::Null,
            Getter::Stage => s(ev.stage.as_ref()),
            Getter::Level => s(ev.level.as_ref()),
            Getter::Verb => s(ev.verb.as_ref()),
            Getter::Uri => s(ev.request_uri.as_ref()),
            Getter::User => s(user.and_then(|u| u.username.as_ref())),
            Getter::Uid => s(user.and_then(|u| u.uid.as_ref())),
            Getter::Groups => list(user.and_then(|u| u.groups.as_ref())),
            Getter::Extra(i) => {
                if *i { imp } else { user }.and_then(|u| u.extra.as_deref()).map_or(Val::Null, canonical)
            }
            Getter::As => s(imp.and_then(|u| u.username.as_ref())),
            Getter::AsUid => s(imp.and_then(|u| u.uid.as_ref())),
            Getter::AsGroups => list(imp.and_then(|u| u.groups.as_ref())),
            Getter::Ip => list(ev.source_ips.as_ref()),
            Getter::ClientIp => s(ev.source_ips.as_ref().and_then(|l| l.first())),
            Getter::PeerIp => s(ev.source_ips.as_ref().and_then(|l| l.last())),
            Getter::Ua => s(ev.user_agent.as_ref()),
            Getter::Resource => s(obj.and_then(|o| o.resource.as_ref())),
            Getter::Subresource => s(obj.and_then(|o| o.subresource.as_ref())),
            Getter::Ns => s(obj.and_then(|o| o.namespace.as_ref())),
            Getter::Name => s(obj.and_then(|o| o.name.as_ref())),
            Getter::ApiGroup => s(obj.and_then(|o| o.api_group.as_ref())),
            Getter::ApiVersion => s(obj.and_then(|o| o.api_version.as_ref())),
            Getter::ObjectUid => s(obj.and_then(|o| o.uid.as_ref())),
            Getter::ResourceVersion => s(obj.and_then(|o| o.resource_version.as_ref())),
            Getter::Code => status.and_then(|s| s.code).map_or(Val::Null, |c| Val::Int(c.into())),
            Getter::Status => s(status.and_then(|s| s.status.as_ref())),
            Getter::Reason => s(status.and_then(|s| s.reason.as_ref())),
            Getter::Message => s(status.and_then(|s| s.message.as_ref())),
            Getter::Annotations => match &ev.annotations {
                Some(a) => {
                    let m: serde_json::Map<String, serde_json::Value> =
                        a.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
                    Val::Str(Cow::Owned(serde_json::Value::Object(m).to_string()))
                }
                None => Val::Null,
            },
            Getter::Annotation(k) => ev
                .annotations
                .as_ref()
                .and_then(|a| a.iter().find(|(key, _)| key == k))
                .map_or(Val::Null, |(_, v)| Val::Str(Cow::Borrowed(v.as_ref()))),
            Getter::ExtraKey(i, key) => match if *i { imp } else { user }.and_then(|u| u.extra.as_deref()) {
                Some(text) => json_path(text, std::slice::from_ref(key)),
                None => Val::Null,
            },
            Getter::Body(response, path) => {
                let body = if *response { &ev.response_object } else { &ev.request_object };
                match body.as_deref() {
                    Some(text) if path.is_empty() => canonical(text),
                    Some(text) => json_path(text, path),
                    None => Val::Null,
                }
            }
            Getter::UserKind => ev.derived.user_kind.map_or(Val::Null, |k| Val::str(k.as_str())),
            Getter::ExecCommand => ev.derived.exec_command.as_deref().map_or(Val::Null, Val::str),
            Getter::Privileged => flag(|p| p.privileged),
            Getter::HostNetwork => flag(|p| p.host_network),
            Getter::HostPid => flag(|p| p.host_pid),
            Getter::HostIpc => flag(|p| p.host_ipc),
            Getter::HostPath => match pod {
                Some(p) => Val::List(p.host_paths.iter().map(|h| Val::str(h)).collect()),
                None => Val::Null,
            },
        }
    }
}

/// Follows `path` into a JSON document. Arrays on the way are entered element by element, so the
/// result is a list when an array was crossed. Objects and arrays at the end are JSON text.
pub fn json_path(text: &str, path: &[String]) -> Val<'static> {
    let Ok(root) = serde_json::from_str::<&RawValue>(text) else { return Val::Null };
    let mut out = Vec::new();
    let crossed = walk(root, path, &mut out);
    if crossed { Val::List(out) } else { out.pop().unwrap_or(Val::Null) }
}

/// Collects the values at `path` under `v`; returns whether an array was crossed.
fn walk(v: &RawValue, path: &[String], out: &mut Vec<Val<'static>>) -> bool {
    let text = v.get();
    let first = text.as_bytes().first().copied();
    let Some((head, rest)) = path.split_first() else {
        // At the end of the path an array gives its elements.
        if first == Some(b'[')
            && let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text)
        {
            out.extend(items.into_iter().map(|i| leaf(i.get())));
            return true;
        }
        out.push(leaf(text));
        return false;
    };
    match first {
        Some(b'{') => {
            let Ok(map) = serde_json::from_str::<BTreeMap<Cow<'_, str>, &RawValue>>(text) else { return false };
            match map.get(head.as_str()) {
                Some(child) => walk(child, rest, out),
                None => false,
            }
        }
        Some(b'[') => {
            let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else { return false };
            // A number picks one element (`containers.0.image`); anything else enters them all.
            if let Ok(i) = head.parse::<usize>() {
                return items.get(i).is_some_and(|item| walk(item, rest, out));
            }
            for item in items {
                walk(item, path, out);
            }
            true
        }
        _ => false,
    }
}

fn leaf(text: &str) -> Val<'static> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::String(s)) => Val::Str(Cow::Owned(s)),
        Ok(serde_json::Value::Bool(b)) => Val::Bool(b),
        Ok(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None => n.as_f64().map_or(Val::Null, Val::Float),
        },
        Ok(serde_json::Value::Null) | Err(_) => Val::Null,
        Ok(v) => Val::Str(Cow::Owned(v.to_string())),
    }
}

/// An object or array as text, in one canonical form (keys sorted, no spaces) whatever the input's
/// spacing and key order: the same from a log line, a cloud wrapper or Parquet.
fn canonical(text: &str) -> Val<'static> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Null) => Val::Null,
        Ok(v) => Val::Str(Cow::Owned(v.to_string())),
        Err(_) => Val::Str(Cow::Owned(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_enter_objects_and_arrays() {
        let body =
            r#"{"spec":{"replicas":3,"containers":[{"image":"nginx"},{"image":"redis","x":true}]},"a":{"b":null}}"#;
        let p = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(json_path(body, &p("spec.replicas")), Val::Int(3));
        assert_eq!(json_path(body, &p("spec.containers.image")), Val::List(vec![Val::str("nginx"), Val::str("redis")]));
        assert_eq!(json_path(body, &p("spec.containers.x")), Val::List(vec![Val::Bool(true)]));
        assert_eq!(json_path(r#"{"k":["a","b"]}"#, &p("k")), Val::List(vec![Val::str("a"), Val::str("b")]));
        assert_eq!(json_path(body, &p("spec.containers.1.image")), Val::str("redis"));
        assert_eq!(json_path(body, &p("spec.containers.2.image")), Val::Null);
        assert_eq!(json_path(body, &p("spec.nope")), Val::Null);
        assert_eq!(json_path(body, &p("a.b")), Val::Null);
        assert_eq!(json_path(body, &p("spec.replicas.deeper")), Val::Null);
        assert_eq!(json_path("not json", &p("a")), Val::Null);
    }
}
