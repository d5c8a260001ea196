//! GKE: Cloud Logging `LogEntry`s whose `protoPayload` is a `google.cloud.audit.AuditLog` from
//! `serviceName: k8s.io`, made into audit Events.
//!
//! Two spellings are read: the REST JSON of the Logging API (`gcloud logging read
//! --format=json`, exports to Cloud Storage or Pub/Sub: `protoPayload`, `insertId`, `timestamp`,
//! `labels`, `operation`…), and a Go `logging.Entry` dump (`{"Entry":{"Timestamp","InsertID",
//! "Labels","Operation",…},"AuditPayload":"<the AuditLog as a JSON string>"}`).
//!
//! The mapping, and what GKE does not carry, is documented in docs/inputs.md; in short:
//!
//! - `operation.id` (else `insertId`) → `auditID`; `timestamp` → `requestReceivedTimestamp`;
//! - `methodName` `io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>` → `verb`,
//!   `objectRef.resource`/`subresource`; `resourceName` `<group>/<version>[/namespaces/<ns>]/
//!   <resource>[/<name>[/<subresource>]]` → `objectRef.apiGroup` (none for `core`),
//!   `apiVersion`, `namespace`, `name`, and a `requestURI` rebuilt from them (no query string);
//! - `authenticationInfo.principalEmail` → `user.username`; `requestMetadata.callerIp` →
//!   `sourceIPs`, `callerSuppliedUserAgent` → `userAgent`;
//! - `labels` → `annotations`; `authorizationInfo[].granted` → the decision annotation when the
//!   labels do not carry it;
//! - `status` (a gRPC code) → `responseStatus.code` (see [`http_code`]), or the `code` of a
//!   `response` that is a `Status`;
//! - `request`/`response` → `requestObject`/`responseObject` (without the `@type` key);
//! - `operation.first`/`last` → `stage`;
//! - the rest of the entry that says something (`logName`, `resource`, `receiveTimestamp`,
//!   `methodName`, `resourceName`, `status`, `authorizationInfo`…) is kept under `kaq:gke`.

use serde_json::{Map, Value, json};

use super::{Ctx, Emit};

/// The key, in `unmapped`, holding what of the entry has no place in an audit Event.
pub const GKE_KEY: &str = "kaq:gke";

/// Subresources that upgrade the connection (HTTP 101); GKE logs them with gRPC code 2 (UNKNOWN).
const STREAMING: [&str; 3] = ["exec", "attach", "portforward"];

/// One GKE entry (either spelling).
pub(crate) fn entry(ctx: &Ctx<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let what_gke = super::join(what, "GKE entry");
    match to_event(text) {
        Ok(ev) => {
            let ev = ev.to_string();
            emit.event(ctx, &what_gke, &ev);
        }
        Err(reason) => emit.reject(&what_gke, reason, text),
    }
}

/// The parts of an entry, whichever spelling it came in.
struct Parts {
    payload: Value,
    timestamp: Option<String>,
    insert_id: Option<String>,
    labels: Option<Map<String, Value>>,
    operation: Option<Value>,
    /// What is kept under `kaq:gke` from the entry itself.
    keep: Map<String, Value>,
}

fn parts(text: &str) -> Result<Parts, String> {
    let mut entry: Map<String, Value> = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut keep = Map::new();
    if let Some(dump) = entry.remove("AuditPayload") {
        // The Go struct dump: the AuditLog is a JSON string, the entry's fields are Go names.
        let Value::String(s) = dump else { return Err("`AuditPayload` is not a string".into()) };
        let payload: Value =
            serde_json::from_str(&s).map_err(|e| format!("`AuditPayload` is not an AuditLog: invalid JSON: {e}"))?;
        let mut e = match entry.remove("Entry") {
            Some(Value::Object(e)) => e,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err("`Entry` is not an object".into()),
        };
        let s = |e: &mut Map<String, Value>, k: &str| match e.remove(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        let timestamp = s(&mut e, "Timestamp");
        let insert_id = s(&mut e, "InsertID");
        let labels = match e.remove("Labels") {
            Some(Value::Object(l)) => Some(l),
            _ => None,
        };
        let operation = e.remove("Operation").filter(Value::is_object);
        for (from, to) in [("LogName", "logName"), ("Resource", "resource"), ("Severity", "severity")] {
            if let Some(v) = e.remove(from).filter(|v| !v.is_null()) {
                keep.insert(to.into(), v);
            }
        }
        if let Some(id) = &insert_id {
            keep.insert("insertId".into(), id.clone().into());
        }
        if let Some(op) = &operation {
            keep.insert("operation".into(), op.clone());
        }
        return Ok(Parts { payload, timestamp, insert_id, labels, operation, keep });
    }
    let payload = entry.remove("protoPayload").unwrap_or(Value::Null);
    let take_s = |e: &mut Map<String, Value>, k: &str| match e.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let timestamp = take_s(&mut entry, "timestamp");
    let labels = match entry.remove("labels") {
        Some(Value::Object(l)) => Some(l),
        _ => None,
    };
    let insert_id = entry.get("insertId").and_then(Value::as_str).map(String::from);
    let operation = entry.get("operation").filter(|v| v.is_object()).cloned();
    // Whatever else the entry says: logName, resource, receiveTimestamp, severity, insertId, operation…
    keep.extend(entry);
    Ok(Parts { payload, timestamp, insert_id, labels, operation, keep })
}

/// The audit Event (as JSON) of one GKE entry, or why there is none.
pub fn to_event(text: &str) -> Result<Value, String> {
    let Parts { payload, timestamp, insert_id, labels, operation, mut keep } = parts(text)?;
    let Value::Object(mut p) = payload else {
        return Err("`protoPayload` is not an object (not a Cloud Audit Logs entry)".into());
    };
    match p.get("serviceName").and_then(Value::as_str) {
        Some("k8s.io") => {}
        Some(other) => {
            return Err(format!(
                "a Cloud Audit Logs entry of service `{other}`, not a Kubernetes audit event (only `serviceName: k8s.io` entries are; filter with protoPayload.serviceName=\"k8s.io\")"
            ));
        }
        None => return Err("`protoPayload.serviceName` is missing (not a Cloud Audit Logs entry)".into()),
    }
    let method = match p.get("methodName") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err("`protoPayload.methodName` is missing or not a string".into()),
    };
    let audit_id = operation
        .as_ref()
        .and_then(|o| o.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .or(insert_id)
        .ok_or("no `operation.id` or `insertId` to use as the auditID")?;

    let mut ev = Map::new();
    ev.insert("auditID".into(), audit_id.into());
    if let Some(stage) = operation.as_ref().and_then(stage) {
        ev.insert("stage".into(), stage.into());
    }

    let resource_name = p.get("resourceName").and_then(Value::as_str).map(String::from);
    let target = target(&method, resource_name.as_deref());
    ev.insert("verb".into(), target.verb.clone().into());
    if let Some(uri) = &target.uri {
        ev.insert("requestURI".into(), uri.clone().into());
    }
    let at = |k: &str, f: &str| p.get(k).and_then(|v| v.get(f)).and_then(Value::as_str).map(String::from);
    if let Some(email) = at("authenticationInfo", "principalEmail") {
        ev.insert("user".into(), json!({ "username": email }));
    }
    if let Some(ip) = at("requestMetadata", "callerIp") {
        ev.insert("sourceIPs".into(), json!([ip]));
    }
    if let Some(ua) = at("requestMetadata", "callerSuppliedUserAgent") {
        ev.insert("userAgent".into(), ua.into());
    }
    if let Some(o) = &target.object_ref {
        ev.insert("objectRef".into(), o.clone());
    }

    let response = p.remove("response");
    let request = p.remove("request");
    let grpc = match p.get("status") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.get("code").and_then(Value::as_i64).unwrap_or(0)),
    };
    let grpc_message = p.get("status").and_then(|s| s.get("message")).and_then(Value::as_str).map(String::from);
    if let Some(st) = response_status(grpc, grpc_message.as_deref(), response.as_ref(), &target) {
        ev.insert("responseStatus".into(), st);
    }
    if let Some(b) = request.and_then(body) {
        ev.insert("requestObject".into(), b);
    }
    if let Some(b) = response.and_then(body) {
        ev.insert("responseObject".into(), b);
    }
    if let Some(t) = timestamp {
        // Canonical, microseconds, like the API server's.
        let t = kaq_schema::time::parse_rfc3339(&t).map_or(t, |p| kaq_schema::time::format_micros(p.micros));
        ev.insert("requestReceivedTimestamp".into(), t.into());
    }

    let mut annotations: Map<String, Value> = labels
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => Value::String(s),
                other => Value::String(other.to_string()),
            };
            (k, v)
        })
        .collect();
    const DECISION: &str = "authorization.k8s.io/decision";
    if !annotations.contains_key(DECISION)
        && let Some(Value::Array(infos)) = p.get("authorizationInfo")
        && !infos.is_empty()
    {
        let denied = infos.iter().any(|i| i.get("granted").and_then(Value::as_bool) != Some(true));
        annotations.insert(DECISION.into(), if denied { "forbid" } else { "allow" }.into());
    }
    if !annotations.is_empty() {
        ev.insert("annotations".into(), Value::Object(annotations));
    }

    // What is left of the AuditLog: methodName, resourceName, status, authorizationInfo, and
    // anything else but what was mapped.
    for k in ["@type", "serviceName"] {
        p.remove(k);
    }
    for (k, mapped) in [
        ("authenticationInfo", &["principalEmail"][..]),
        ("requestMetadata", &["callerIp", "callerSuppliedUserAgent"][..]),
    ] {
        if let Some(Value::Object(m)) = p.get_mut(k) {
            for f in mapped {
                m.remove(*f);
            }
            if m.is_empty() {
                p.remove(k);
            }
        }
    }
    if p.get("status").is_some_and(|s| s.as_object().is_some_and(Map::is_empty)) {
        p.remove("status");
    }
    keep.extend(p);
    ev.insert(GKE_KEY.into(), Value::Object(keep));
    Ok(Value::Object(ev))
}

/// The stage, from the operation's `first`/`last` flags: GKE logs a long-running request
/// (watch, exec) when its response starts (`first`) and when it completes (`last`), and any
/// other request once (`first` and `last`).
fn stage(op: &Value) -> Option<&'static str> {
    let flag = |k: &str| op.get(k).and_then(Value::as_bool).unwrap_or(false);
    match (flag("first"), flag("last")) {
        (_, true) => Some("ResponseComplete"),
        (true, false) => Some("ResponseStarted"),
        (false, false) => None,
    }
}

/// What a request was about.
#[derive(Debug, PartialEq)]
struct Target {
    verb: String,
    subresource: Option<String>,
    object_ref: Option<Value>,
    uri: Option<String>,
}

fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || ["alpha", "beta"]
            .iter()
            .any(|p| tail.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// `methodName` and `resourceName` → verb, objectRef and a request URI.
fn target(method: &str, resource_name: Option<&str>) -> Target {
    let parts: Vec<&str> = method.split('.').collect();
    let verb = parts.last().copied().unwrap_or_default().to_string();
    // io.k8s.<group…>.<version>.<resource>[.<subresource>].<verb>; io.k8s.<verb> for non-resource URLs.
    let version_at = parts.iter().skip(2).position(|p| is_version(p)).map(|i| i + 2);
    let from_method = version_at.and_then(|v| {
        let rest = &parts[v + 1..parts.len().saturating_sub(1).max(v + 1)];
        let resource = rest.first()?;
        let group = parts[2..v].join(".");
        Some((group, parts[v].to_string(), resource.to_string(), rest.get(1).map(|s| s.to_string())))
    });
    let Some((m_group, m_version, m_resource, m_sub)) = from_method else {
        // A non-resource request (`/readyz`, `/api/v1`, discovery…): the resourceName is the path.
        let uri = resource_name.map(|r| format!("/{}", r.trim_start_matches('/')));
        return Target { verb, subresource: None, object_ref: None, uri };
    };

    // resourceName: <group>/<version>[/namespaces/<ns>]/<resource>[/<name>[/<subresource>…]]
    let segs: Vec<&str> = resource_name.map(|r| r.split('/').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    let (group, version, mut path) = if segs.len() >= 3 && is_version(segs[1]) {
        (segs[0].to_string(), segs[1].to_string(), &segs[2..])
    } else {
        // No usable resourceName: the group as methodName spells it.
        (m_group, m_version, &[][..])
    };
    let mut namespace = None;
    if path.first() == Some(&"namespaces") && path.len() >= 3 {
        namespace = Some(path[1].to_string());
        path = &path[2..];
    }
    let resource = path.first().map_or(m_resource.clone(), |r| r.to_string());
    let mut name = path.get(1).map(|s| s.to_string());
    let subresource = m_sub.or_else(|| path.get(2).map(|s| s.to_string()));
    if resource == "namespaces" && name.is_none() && namespace.is_some() {
        // `core/v1/namespaces/foo/...` where foo is the namespace itself.
        name = namespace.clone();
    }
    if resource == "namespaces" && namespace.is_none() {
        // The API server sets the namespace of a namespace to its name.
        namespace = name.clone();
    }

    let core = group == "core" || group.is_empty();
    let mut uri = if core { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    if let Some(ns) = &namespace
        && resource != "namespaces"
    {
        uri.push_str(&format!("/namespaces/{ns}"));
    }
    uri.push('/');
    uri.push_str(&resource);
    if let Some(n) = &name {
        uri.push('/');
        uri.push_str(n);
        if let Some(s) = &subresource {
            uri.push('/');
            uri.push_str(s);
        }
    }

    let mut o = Map::new();
    o.insert("resource".into(), resource.into());
    if let Some(ns) = namespace {
        o.insert("namespace".into(), ns.into());
    }
    if let Some(n) = name {
        o.insert("name".into(), n.into());
    }
    if !core {
        o.insert("apiGroup".into(), group.into());
    }
    o.insert("apiVersion".into(), version.into());
    if let Some(s) = &subresource {
        o.insert("subresource".into(), s.clone().into());
    }
    Target { verb, subresource, object_ref: Some(Value::Object(o)), uri: resource_name.map(|_| uri) }
}

/// The HTTP status of a gRPC code (google.rpc.Code's documented HTTP mapping), or `None` when
/// it cannot be told: code 2 (UNKNOWN) is what GKE writes for HTTP codes without a gRPC
/// counterpart (101 on exec/attach/portforward, which the caller handles).
pub fn http_code(grpc: i64) -> Option<i32> {
    Some(match grpc {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        13 | 15 => 500,
        14 => 503,
        16 => 401,
        _ => return None,
    })
}

/// The Kubernetes `reason` of a failed request, where the gRPC code names one.
fn reason(grpc: i64) -> Option<&'static str> {
    Some(match grpc {
        4 => "Timeout",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "Forbidden",
        8 => "TooManyRequests",
        10 => "Conflict",
        16 => "Unauthorized",
        _ => return None,
    })
}

fn response_status(grpc: Option<i64>, message: Option<&str>, response: Option<&Value>, t: &Target) -> Option<Value> {
    let mut st = Map::new();
    st.insert("metadata".into(), json!({}));
    // A response that is a Status says it exactly.
    let status_body = response.filter(|r| {
        r.get("kind").and_then(Value::as_str) == Some("Status")
            || r.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with("v1.Status"))
    });
    if let Some(body) = status_body
        && let Some(code) = body.get("code").and_then(Value::as_i64)
    {
        for k in ["status", "message", "reason"] {
            if let Some(v) = body.get(k).filter(|v| v.is_string()) {
                st.insert(k.into(), v.clone());
            }
        }
        st.insert("code".into(), code.into());
        return Some(Value::Object(st));
    }
    let grpc = grpc?;
    let streaming = t.subresource.as_deref().is_some_and(|s| STREAMING.contains(&s));
    let code = match grpc {
        0 if t.verb == "create" && !streaming && t.subresource.as_deref() != Some("proxy") => 201,
        2 if streaming => 101,
        g => http_code(g)?,
    };
    if let Some(s) = status_body.and_then(|b| b.get("status")).filter(|v| v.is_string()) {
        st.insert("status".into(), s.clone());
    }
    if code >= 400 {
        st.insert("status".into(), "Failure".into());
        if let Some(m) = message {
            st.insert("message".into(), m.into());
        }
        if let Some(r) = reason(grpc) {
            st.insert("reason".into(), r.into());
        }
    }
    st.insert("code".into(), code.into());
    Some(Value::Object(st))
}

/// A request or response body as the API server would log it: without the `@type` Cloud
/// Logging adds.
fn body(v: Value) -> Option<Value> {
    match v {
        Value::Object(mut m) => {
            m.remove("@type");
            Some(Value::Object(m))
        }
        Value::Null => None,
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_and_resource_names() {
        let t = target("io.k8s.core.v1.pods.create", Some("core/v1/namespaces/default/pods"));
        assert_eq!(t.verb, "create");
        assert_eq!(t.object_ref.unwrap(), json!({"resource":"pods","namespace":"default","apiVersion":"v1"}));
        assert_eq!(t.uri.as_deref(), Some("/api/v1/namespaces/default/pods"));

        let t = target(
            "io.k8s.apps.v1.deployments.patch",
            Some("apps/v1/namespaces/kube-system/deployments/konnectivity-agent"),
        );
        assert_eq!(t.verb, "patch");
        assert_eq!(
            t.object_ref.unwrap(),
            json!({"resource":"deployments","namespace":"kube-system","name":"konnectivity-agent","apiGroup":"apps","apiVersion":"v1"})
        );
        assert_eq!(t.uri.as_deref(), Some("/apis/apps/v1/namespaces/kube-system/deployments/konnectivity-agent"));

        // GKE repeats the pod's name after the subresource.
        let t = target("io.k8s.core.v1.pods.exec.create", Some("core/v1/namespaces/default/pods/web-0/exec/web-0"));
        assert_eq!((t.verb.as_str(), t.subresource.as_deref()), ("create", Some("exec")));
        assert_eq!(t.uri.as_deref(), Some("/api/v1/namespaces/default/pods/web-0/exec"));
        assert_eq!(t.object_ref.unwrap()["name"], "web-0");

        // The group as resourceName spells it, not methodName's reversed form.
        let t = target(
            "io.k8s.authorization.rbac.v1.clusterroles.create",
            Some("rbac.authorization.k8s.io/v1/clusterroles/x"),
        );
        assert_eq!(
            t.object_ref.unwrap(),
            json!({"resource":"clusterroles","name":"x","apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"})
        );

        // A namespace's namespace is itself, as the API server logs it.
        let t = target("io.k8s.core.v1.namespaces.delete", Some("core/v1/namespaces/foo"));
        assert_eq!(
            t.object_ref.unwrap(),
            json!({"resource":"namespaces","namespace":"foo","name":"foo","apiVersion":"v1"})
        );
        assert_eq!(t.uri.as_deref(), Some("/api/v1/namespaces/foo"));

        // Non-resource requests.
        let t = target("io.k8s.get", Some("readyz"));
        assert_eq!((t.verb.as_str(), t.object_ref, t.uri.as_deref()), ("get", None, Some("/readyz")));

        // No resourceName: from methodName alone.
        let t = target("io.k8s.networking.v1.networkpolicies.list", None);
        assert_eq!(
            t.object_ref.unwrap(),
            json!({"resource":"networkpolicies","apiGroup":"networking","apiVersion":"v1"})
        );
        assert_eq!(t.uri, None);

        assert!(is_version("v1") && is_version("v1beta1") && is_version("v2alpha3"));
        assert!(!is_version("v") && !is_version("vbeta1") && !is_version("v1beta") && !is_version("pods"));
    }

    #[test]
    fn status_codes() {
        let t = |verb: &str, sub: Option<&str>| Target {
            verb: verb.into(),
            subresource: sub.map(String::from),
            object_ref: None,
            uri: None,
        };
        let code = |grpc, tg: &Target| response_status(grpc, None, None, tg).map(|s| s["code"].clone());
        assert_eq!(code(Some(0), &t("get", None)), Some(json!(200)));
        assert_eq!(code(Some(0), &t("create", None)), Some(json!(201)));
        assert_eq!(code(Some(2), &t("create", Some("exec"))), Some(json!(101)));
        assert_eq!(code(Some(2), &t("get", None)), None, "UNKNOWN elsewhere cannot be told");
        assert_eq!(code(None, &t("get", None)), None, "no status, no code");
        let st = response_status(Some(5), Some("NOT_FOUND"), None, &t("delete", None)).unwrap();
        assert_eq!(st, json!({"metadata":{},"status":"Failure","message":"NOT_FOUND","reason":"NotFound","code":404}));
        let body = json!({"@type":"core.k8s.io/v1.Status","kind":"Status","status":"Failure","reason":"Invalid","message":"bad","code":422});
        let st = response_status(Some(3), None, Some(&body), &t("create", None)).unwrap();
        assert_eq!(st, json!({"metadata":{},"status":"Failure","reason":"Invalid","message":"bad","code":422}));
        for g in 0..=16 {
            if g != 2 {
                assert!(http_code(g).is_some(), "{g}");
            }
        }
    }
}
