//! The field catalogue: the one list of fields that the query language, the Parquet schema, the
//! index and the REPL's completion all come from (docs/schema.md, "The field catalogue").

/// The type of a field as the query language sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// UTC instant, microsecond precision.
    Timestamp,
    /// A span of time (stored as microseconds).
    Duration,
    /// An exact string, matched whole (wildcards and regexes allowed).
    Keyword,
    /// A string searched by words as well as whole.
    Text,
    Integer,
    Bool,
    /// An IP address (matched by address or CIDR).
    Ip,
    /// A map of string keys to string values (`annotations."KEY"`).
    KeywordMap,
    /// A JSON document reached by a path (`request.spec.hostNetwork`).
    Json,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Timestamp => "timestamp",
            Self::Duration => "duration",
            Self::Keyword => "keyword",
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Bool => "bool",
            Self::Ip => "ip",
            Self::KeywordMap => "keyword map",
            Self::Json => "json",
        }
    }
}

/// One field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The short name people type.
    pub name: &'static str,
    /// Other names accepted for it (the audit JSON names among them).
    pub aliases: &'static [&'static str],
    /// Where it comes from in the audit event.
    pub source: &'static str,
    pub ty: FieldType,
    /// Holds a list; a condition matches when any element matches.
    pub list: bool,
    /// Computed at decode time rather than read from the event.
    pub derived: bool,
    /// The Parquet column holding it (`None`: computed from another column at query time).
    pub column: Option<&'static str>,
    pub doc: &'static str,
}

macro_rules! f {
    ($name:literal, [$($alias:literal),*], $source:literal, $ty:ident, list=$list:literal, derived=$derived:literal, $column:expr, $doc:literal) => {
        Field { name: $name, aliases: &[$($alias),*], source: $source, ty: FieldType::$ty, list: $list,
                derived: $derived, column: $column, doc: $doc }
    };
}

/// Every field, in the order `.fields` lists them. Columns that only carry what a round trip
/// needs (`status_metadata`, `status_details`, `event_kind`, `event_version`, `unmapped`) are
/// not fields: they are reached through the event JSON.
#[rustfmt::skip]
pub static FIELDS: &[Field] = &[
    f!("time", ["requestReceivedTimestamp", "timestamp"], "requestReceivedTimestamp", Timestamp, list=false, derived=false, Some("time"),
        "when the API server received the request (else stageTimestamp, v1beta1 timestamp, metadata.creationTimestamp)"),
    f!("stage_time", ["stageTimestamp"], "stageTimestamp", Timestamp, list=false, derived=false, Some("stage_time"), "when this stage was logged"),
    f!("latency", ["duration"], "stageTimestamp − requestReceivedTimestamp", Duration, list=false, derived=true, None, "time from request to this stage (stage_time − time)"),
    f!("id", ["auditID", "audit_id"], "auditID", Keyword, list=false, derived=false, Some("id"), "the request's audit ID, shared by its stages"),
    f!("id_reused", [], "auditID, request identity", Bool, list=false, derived=true, None, "another request carries the same auditID (clients may choose it: the Audit-ID header)"),
    f!("stage", [], "stage", Keyword, list=false, derived=false, Some("stage"), "RequestReceived, ResponseStarted, ResponseComplete or Panic"),
    f!("level", [], "level", Keyword, list=false, derived=false, Some("level"), "None, Metadata, Request or RequestResponse"),
    f!("verb", [], "verb", Keyword, list=false, derived=false, Some("verb"), "get, list, watch, create, update, patch, delete, deletecollection…"),
    f!("uri", ["requestURI"], "requestURI", Text, list=false, derived=false, Some("uri"), "the request path and query"),
    f!("user", ["username", "user.username"], "user.username", Keyword, list=false, derived=false, Some("user"), "who made the request"),
    f!("uid", ["user.uid"], "user.uid", Keyword, list=false, derived=false, Some("uid"), "the user's UID"),
    f!("groups", ["user.groups"], "user.groups", Keyword, list=true, derived=false, Some("groups"), "the user's groups"),
    f!("extra", ["user.extra"], "user.extra", Json, list=false, derived=false, Some("user_extra"), "extra attributes of the user, a map of string lists (extra.KEY)"),
    f!("as", ["impersonatedUser", "impersonatedUser.username"], "impersonatedUser.username", Keyword, list=false, derived=false, Some("as"), "the impersonated user"),
    f!("as_uid", ["impersonatedUser.uid"], "impersonatedUser.uid", Keyword, list=false, derived=false, Some("as_uid"), "the impersonated user's UID"),
    f!("as_groups", ["impersonatedUser.groups"], "impersonatedUser.groups", Keyword, list=true, derived=false, Some("as_groups"), "the impersonated groups"),
    f!("as_extra", ["impersonatedUser.extra"], "impersonatedUser.extra", Json, list=false, derived=false, Some("as_extra"), "extra attributes of the impersonated user"),
    f!("ip", ["sourceIPs", "source_ip"], "sourceIPs", Ip, list=true, derived=false, Some("ip"), "any of the source addresses"),
    f!("client_ip", [], "sourceIPs[0]", Ip, list=false, derived=true, None, "the first source address (what the client claims)"),
    f!("peer_ip", [], "sourceIPs[-1]", Ip, list=false, derived=true, None, "the last source address (the direct peer)"),
    f!("ua", ["userAgent", "user_agent"], "userAgent", Text, list=false, derived=false, Some("ua"), "the client's user agent"),
    f!("resource", ["objectRef.resource"], "objectRef.resource", Keyword, list=false, derived=false, Some("resource"), "the resource type (pods, secrets…)"),
    f!("subresource", ["objectRef.subresource"], "objectRef.subresource", Keyword, list=false, derived=false, Some("subresource"), "exec, log, status, scale…"),
    f!("ns", ["namespace", "objectRef.namespace"], "objectRef.namespace", Keyword, list=false, derived=false, Some("ns"), "the namespace"),
    f!("name", ["objectRef.name"], "objectRef.name", Keyword, list=false, derived=false, Some("name"), "the object's name"),
    f!("apigroup", ["objectRef.apiGroup", "api_group"], "objectRef.apiGroup", Keyword, list=false, derived=false, Some("apigroup"), "the API group (empty for core)"),
    f!("apiversion", ["objectRef.apiVersion", "api_version"], "objectRef.apiVersion", Keyword, list=false, derived=false, Some("apiversion"), "the API version"),
    f!("object_uid", ["objectRef.uid"], "objectRef.uid", Keyword, list=false, derived=false, Some("object_uid"), "the object's UID"),
    f!("resource_version", ["objectRef.resourceVersion"], "objectRef.resourceVersion", Keyword, list=false, derived=false, Some("resource_version"), "the object's resourceVersion"),
    f!("code", ["responseStatus.code"], "responseStatus.code", Integer, list=false, derived=false, Some("code"), "the HTTP status code"),
    f!("status", ["responseStatus.status"], "responseStatus.status", Keyword, list=false, derived=false, Some("status"), "Success or Failure"),
    f!("reason", ["responseStatus.reason"], "responseStatus.reason", Keyword, list=false, derived=false, Some("reason"), "Forbidden, NotFound, AlreadyExists…"),
    f!("message", ["responseStatus.message"], "responseStatus.message", Text, list=false, derived=false, Some("message"), "the status message"),
    f!("decision", [], "annotations.authorization.k8s.io/decision", Keyword, list=false, derived=true, Some("decision"), "the authorizer's decision: allow or forbid"),
    f!("authz_reason", [], "annotations.authorization.k8s.io/reason", Text, list=false, derived=true, Some("authz_reason"), "why the authorizer decided so"),
    f!("annotations", [], "annotations", KeywordMap, list=false, derived=false, Some("annotations"), "the event's annotations (annotations.\"KEY\")"),
    f!("request", ["requestObject"], "requestObject", Json, list=false, derived=false, Some("request"), "the request body (request.PATH)"),
    f!("response", ["responseObject"], "responseObject", Json, list=false, derived=false, Some("response"), "the response body (response.PATH)"),
    f!("user_kind", [], "user.username, user.groups", Keyword, list=false, derived=true, Some("user_kind"), "anonymous, node, serviceaccount, system or human"),
    f!("exec_command", ["command"], "requestURI command= parameters", Text, list=false, derived=true, Some("exec_command"), "the command of a pods/exec"),
    f!("privileged", [], "requestObject pod spec", Bool, list=false, derived=true, Some("privileged"), "a container of the pod spec is privileged"),
    f!("host_network", ["hostNetwork"], "requestObject pod spec", Bool, list=false, derived=true, Some("host_network"), "the pod spec uses the host network"),
    f!("host_pid", ["hostPID"], "requestObject pod spec", Bool, list=false, derived=true, Some("host_pid"), "the pod spec uses the host PID namespace"),
    f!("host_ipc", ["hostIPC"], "requestObject pod spec", Bool, list=false, derived=true, Some("host_ipc"), "the pod spec uses the host IPC namespace"),
    f!("host_path", ["hostPath", "host_paths"], "requestObject pod spec", Keyword, list=true, derived=true, Some("host_paths"), "hostPath volume paths of the pod spec"),
];

/// Finds a field by name or alias (case-sensitive, as typed).
pub fn lookup(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name || f.aliases.contains(&name))
}

/// The values a keyword field can hold, for the fields whose values the audit API or kaq itself
/// fixes: `stage` and `level` (audit.k8s.io/v1), `verb` (what kube-apiserver's request info gives:
/// the resource verbs, and the lowercased HTTP methods of non-resource requests), `decision` (the
/// authorizer's annotation) and `user_kind` (kaq's classes). A search for another value of these
/// finds nothing, so the planner warns and names the nearest. `None` for every other field
/// (`status`, for one, also holds other servers' texts such as `OK (inferred)`).
pub fn vocabulary(field: &str) -> Option<&'static [&'static str]> {
    Some(match lookup(field)?.name {
        "stage" => &["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"],
        "level" => &["None", "Metadata", "Request", "RequestResponse"],
        "verb" => &[
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
            "proxy",
            "post",
            "put",
            "head",
            "options",
            "connect",
            "trace",
        ],
        "decision" => &["allow", "forbid"],
        "user_kind" => &["anonymous", "node", "serviceaccount", "system", "human"],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in FIELDS {
            for n in std::iter::once(&f.name).chain(f.aliases) {
                assert!(seen.insert(*n), "{n} named twice");
            }
        }
        assert_eq!(lookup("namespace").unwrap().name, "ns");
        assert!(lookup("usr").is_none());
    }

    #[test]
    fn vocabularies_of_keyword_fields() {
        let kinds: Vec<&str> = crate::UserKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(vocabulary("user_kind").unwrap(), kinds);
        assert!(vocabulary("verb").unwrap().contains(&"deletecollection"));
        assert_eq!(vocabulary("stageTimestamp"), None);
        assert_eq!(vocabulary("ns"), None);
        for f in FIELDS.iter().filter(|f| vocabulary(f.name).is_some()) {
            assert_eq!(f.ty, FieldType::Keyword, "{}", f.name);
        }
    }
}
