//! Random events and queries for differential tests (proptest strategies): a small vocabulary,
//! so that queries find things; auditIDs shared between events, so that requests have stages
//! (two thirds of the events are stages of their auditID's one request: same received time, verb,
//! URI and user) and auditIDs are reused (the other third are requests of their own that carry
//! an auditID another request also carries).

use proptest::prelude::*;
use serde_json::{Value, json};

/// Fixed "now" for relative times: 2026-11-20T06:00:00Z.
pub const NOW: i64 = 1_795_154_400_000_000;

const IDS: &[&str] = &[
    "0b2f1c7e-1111-4a2b-9c3d-000000000001",
    "0b2f1c7e-1111-4a2b-9c3d-000000000002",
    "0b2f1c7e-1111-4a2b-9c3d-000000000003",
    "0b2f1c7e-1111-4a2b-9c3d-000000000004",
    "0b2f1c7e-1111-4a2b-9c3d-000000000005",
    "0b2f1c7e-1111-4a2b-9c3d-000000000006",
    "req-7",
    "req-8",
];
const STAGES: &[&str] = &["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];
const VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const USERS: &[&str] = &[
    "alice@example.com",
    "bob",
    "system:serviceaccount:ci:deployer",
    "system:node:node-1",
    "system:anonymous",
    "system:kube-scheduler",
];
const NSS: &[Option<&str>] = &[Some("prod"), Some("prod-payments"), Some("staging"), Some("kube-system"), None];
const RESOURCES: &[&str] = &["pods", "secrets", "deployments", "configmaps", "clusterrolebindings"];
const SUBRESOURCES: &[Option<&str>] = &[None, None, Some("exec"), Some("log"), Some("status")];
const NAMES: &[Option<&str>] = &[Some("payments"), Some("web"), Some("db"), Some("cluster-admin-binding"), None];
const CODES: &[Option<i64>] = &[None, Some(200), Some(201), Some(401), Some(403), Some(404), Some(409), Some(500)];
const IPS: &[&str] = &["203.0.113.45", "203.0.113.7", "10.0.0.1", "192.168.1.5", "::1", "::ffff:203.0.113.9"];
const UAS: &[&str] = &["kubectl/v1.29.0 (linux/amd64)", "kube-controller-manager/v1.29.3", "Mozilla/5.0 (X11)"];
const MESSAGES: &[Option<&str>] =
    &[None, Some("pods \"web\" is forbidden: User \"bob\" cannot get resource"), Some("Unauthorized"), None];

prop_compose! {
    /// One audit event (JSON) from the vocabulary above.
    pub fn event()(
        id in 0..IDS.len(), stage in 0..STAGES.len(), verb in 0..VERBS.len(), user in 0..USERS.len(),
        groups in proptest::collection::vec(0..4usize, 0..3), ns in 0..NSS.len(), res in 0..RESOURCES.len(),
        sub in 0..SUBRESOURCES.len(), name in 0..NAMES.len(), code in 0..CODES.len(),
        ips in proptest::collection::vec(0..IPS.len(), 0..3), ua in 0..UAS.len(), msg in 0..MESSAGES.len(),
        decision in 0..3usize, at in 0i64..7200, latency_ms in 0i64..3000, body in 0..5usize,
        replicas in 0i64..6, host_network in any::<bool>(), privileged in any::<bool>(), imp in 0..4usize,
        own_request in 0..3usize,
    ) -> Value {
        // A stage of the auditID's request shares its identity; the others are other requests.
        let stage_of_id = own_request < 2;
        let (at, verb, user) = if stage_of_id { ((id as i64 * 977) % 7200, id % VERBS.len(), (id * 5) % USERS.len()) } else { (at, verb, user) };
        let received = NOW - 7_200_000_000 + at * 1_000_000;
        let t = |us: i64| kaq_schema::time::format_micros(us);
        let mut e = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": IDS[id], "stage": STAGES[stage], "verb": VERBS[verb],
            "user": {"username": USERS[user], "groups": groups.iter().map(|g| ["system:authenticated", "system:masters", "system:nodes", "dev"][*g]).collect::<Vec<_>>()},
            "sourceIPs": ips.iter().map(|i| IPS[*i]).collect::<Vec<_>>(),
            "userAgent": UAS[ua],
            "objectRef": {"resource": RESOURCES[res], "apiVersion": "v1"},
            "requestReceivedTimestamp": t(received),
            "stageTimestamp": t(received + latency_ms * 1000),
        });
        let o = &mut e["objectRef"];
        if let Some(ns) = NSS[ns] { o["namespace"] = json!(ns); }
        if let Some(n) = NAMES[name] { o["name"] = json!(n); }
        if let Some(s) = SUBRESOURCES[sub] { o["subresource"] = json!(s); }
        let uri = format!("/api/v1/namespaces/{}/{}/{}{}", NSS[ns].unwrap_or("default"), RESOURCES[res],
            NAMES[name].unwrap_or(""), if SUBRESOURCES[sub] == Some("exec") { "/exec?command=sh&command=-c&command=id" } else { "" });
        e["requestURI"] = json!(if stage_of_id { format!("/api/v1/namespaces/prod/pods/request-{id}") } else { uri });
        if let Some(c) = CODES[code] {
            e["responseStatus"] = json!({"metadata": {}, "code": c});
            if let Some(m) = MESSAGES[msg] { e["responseStatus"]["message"] = json!(m); }
        }
        if decision > 0 {
            e["annotations"] = json!({"authorization.k8s.io/decision": if decision == 1 { "allow" } else { "forbid" },
                "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"x\""});
        }
        match body {
            1 => e["requestObject"] = json!({"kind": "Deployment", "spec": {"replicas": replicas, "template": {"spec": {
                "hostNetwork": host_network, "containers": [{"name": "a", "image": "nginx", "securityContext": {"privileged": privileged}}]}}}}),
            2 => e["requestObject"] = json!({"kind": "ClusterRoleBinding", "roleRef": {"name": if replicas > 2 { "cluster-admin" } else { "view" }}}),
            // A response: an empty object, a float, strings that read as numbers or booleans.
            3 => e["responseObject"] = json!({"kind": "Deployment", "status": {}, "spec": {"replicas": replicas as f64 + 0.5 * (replicas % 2) as f64},
                "metadata": {"labels": {"tier": if privileged { "3" } else { "true" }}}}),
            _ => {}
        }
        if imp == 1 { e["impersonatedUser"] = json!({"username": "bob", "groups": ["system:masters"]}); }
        e
    }
}

const TERMS: &[&str] = &[
    "verb:delete",
    "verb:(delete OR deletecollection)",
    "verb:get",
    "ns:prod*",
    "ns:(prod OR prod-payments)",
    "-ns:kube-system",
    "NOT verb:watch",
    "user:system:*",
    "user:alice@example.com",
    "user:/^sys.*node/",
    "user_kind:node",
    "user_kind:human",
    "-user_kind:node",
    "code:401",
    "code:4xx",
    "code>=400",
    "code<300",
    "code!=200",
    "code:*",
    "latency>1s",
    "latency<=500ms",
    "latency>=1.5s",
    "ip:203.0.113.0/24",
    "ip:10.0.0.1",
    "ip:203.0.113.9",
    "client_ip:203.0.113.45",
    "peer_ip:*",
    "groups:system:masters",
    "groups:*",
    "\"is forbidden\"",
    "forbidden",
    "Unauthorized",
    "kubectl*",
    "uri:*exec*",
    "ua:kubectl*",
    "message:forbidden",
    "decision:forbid",
    "authz_reason:rbac",
    "annotations.\"authorization.k8s.io/decision\":allow",
    "request.spec.replicas>2",
    "request.spec.template.spec.hostNetwork:true",
    "request.roleRef.name:cluster-admin",
    "request.spec.template.spec.containers.image:nginx",
    "request.spec.template.spec.containers.0.securityContext.privileged:true",
    "host_network:true",
    "privileged:true",
    "id_reused:true",
    "-id_reused:true",
    "request:*",
    "request.kind:Deployment",
    "request.spec.replicas:3",
    "request.spec.template:*",
    "request.roleRef:*",
    "response.status:*",
    "response.spec.replicas:2.5",
    "response.spec.replicas:2",
    "response.metadata.labels.tier:3",
    "response.metadata.labels.tier:true",
    "response.metadata.labels.nope:*",
    "resource:secrets",
    "resource:(secrets OR configmaps)",
    "subresource:exec",
    "exec_command:id",
    "name:pay*",
    "as:*",
    "as_groups:system:masters",
    "time>=2026-11-20T05:00:00Z",
    "time<2026-11-20T05:30Z",
    "time>-1h",
    "stage_time>=2026-11-20T04:30:00Z",
    "id:0b2f1c7e-1111-4a2b-9c3d-000000000001",
    "id:req-*",
    "stage:ResponseComplete",
    "level:RequestResponse",
    "@prod-deletes",
    "@forbidden",
    "apiversion:v1",
    "ns:*",
    "name:?eb",
];

const EVENT_STAGES: &[&str] = &[
    "where code>=400",
    "where NOT user_kind:node",
    "sort -time",
    "sort user, -code",
    "sort -latency, id",
    "head 5",
    "head 3",
    "dedup user",
    "dedup verb, ns",
];

const SHAPES: &[(&str, &[&str])] = &[
    ("count", &["where count > 2"]),
    ("count by user", &["where count > 1", "sort -count, user", "head 2"]),
    ("count by ip", &["sort -count", "where ip:203.0.113.0/24"]),
    ("count by verb, ns", &["where ns:prod*", "sort -count", "dedup verb"]),
    ("stats count, dc(name) as names by user, ip", &["where names >= 2", "sort -count"]),
    (
        "stats p50(latency), p99(latency), max(latency), avg(latency), min(time), sum(code), values(verb) as verbs by resource",
        &["where verbs:get", "sort resource"],
    ),
    ("stats count(code), avg(code), p90(code), dc(ip) by verb", &["sort -verb"]),
    ("stats count", &[]),
    ("top 3 user", &["where percent > 20"]),
    ("top 2 ns by verb", &["sort -count, verb"]),
    ("rare 2 verb", &[]),
    ("timeline 30m", &["where count > 0"]),
    ("timeline 1h by verb", &["sort -count"]),
    ("table time, user, verb, ns, ip", &["where ip:203.0.113.0/24", "sort user", "dedup user", "head 4"]),
    ("table user, code, latency", &["where latency > 1s", "sort -latency"]),
    ("table id, id_reused, verb, user", &["where id_reused:true", "dedup id"]),
];

/// A valid query: terms from `TERMS`, stages from `EVENT_STAGES` and `SHAPES`.
pub fn query() -> impl Strategy<Value = String> {
    let term = (0..TERMS.len()).prop_map(|i| TERMS[i].to_string());
    let search = proptest::collection::vec((term, 0..4usize), 0..4).prop_map(|ts| {
        let mut s = String::new();
        for (i, (t, op)) in ts.into_iter().enumerate() {
            if i > 0 {
                s.push_str(match op {
                    0 => " OR ",
                    1 => " AND ",
                    _ => " ",
                });
            }
            if op == 3 && i == 0 {
                s.push_str(&format!("({t})"));
            } else {
                s.push_str(&t);
            }
        }
        s
    });
    let pre = proptest::collection::vec(0..EVENT_STAGES.len(), 0..3);
    let shape = proptest::option::of((0..SHAPES.len(), proptest::collection::vec(0..4usize, 0..3)));
    (search, pre, shape).prop_map(|(search, pre, shape)| {
        let mut q = search;
        for i in pre {
            q.push_str(" | ");
            q.push_str(EVENT_STAGES[i]);
        }
        if let Some((s, posts)) = shape {
            q.push_str(" | ");
            q.push_str(SHAPES[s].0);
            for p in posts {
                if let Some(post) = SHAPES[s].1.get(p) {
                    q.push_str(" | ");
                    q.push_str(post);
                }
            }
        }
        q.trim_start_matches(" ").to_string()
    })
}
