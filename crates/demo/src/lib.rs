//! A demo cluster's audit log, made in memory, with incidents to find: what `kaq demo` ingests.
//!
//! [`generate`] writes `audit.k8s.io/v1` Events as JSON lines, the way kube-apiserver's log backend
//! does, for a small cluster over [`SPAN_HOURS`] hours ending at [`DemoOptions::end`]. The same
//! options give the same bytes: the generator uses its own random number generator (SplitMix64,
//! integer arithmetic only), no hash-map order and no clock.
//!
//! # The cluster
//!
//! - **Nodes** `node-1` … `node-6` (10.0.1.11–16): kubelets (`system:node:node-N`) renew their
//!   leases, patch node and pod status, get and watch their pods' Secrets and ConfigMaps, create
//!   Events and service-account tokens.
//! - **The control plane** (10.0.0.10): `system:kube-controller-manager` and
//!   `system:kube-scheduler` (leader-election leases, pod bindings), and the controllers' service
//!   accounts `system:serviceaccount:kube-system:deployment-controller`, `replicaset-controller`
//!   (creates pods, with their spec in the body, and deletes them, in production too),
//!   `endpointslice-controller`, `daemon-set-controller` (now and then a privileged,
//!   host-network `kube-proxy` pod), `generic-garbage-collector`, `cronjob-controller`, …
//! - **Workloads' service accounts**, from pod addresses (10.244.x.y) with bound-token `extra`:
//!   Prometheus, kube-state-metrics and Grafana in `monitoring`, Argo CD in `argocd`,
//!   cert-manager, ingress-nginx, CoreDNS, kube-proxy and the apps themselves (`payments-api`,
//!   `payments-worker`, `checkout-api`, `checkout-web`) reading their own ConfigMaps and Secrets.
//! - **People** with kubectl, from 10.20.x.y: `alice@example.com` (`oidc:platform-admins`),
//!   `bob@example.com` (`oidc:developers`, `oidc:team-payments`), `carol@example.com`
//!   (`oidc:sre`), `dave@example.com` (`oidc:developers`, `oidc:team-checkout`) and
//!   `erin@example.com` (`oidc:data`), each also in `system:authenticated`. They read anywhere
//!   they may (production included), and write, delete, exec and read Secrets only in `dev-*` and
//!   `staging-*` — except in the incidents. Erin is refused (403) now and then in production.
//! - **Anonymous requests**: load-balancer health probes of `/healthz`, `/livez`, `/readyz` and
//!   `/version` (allowed, no object), and scanners refused (403) on Secrets in `kube-system`.
//! - A few **expired tokens** (401, fewer than 20 in all, from pod addresses).
//!
//! Namespaces: `kube-system`, `kube-node-lease`, `default`, `monitoring`, `argocd`,
//! `cert-manager`, `ingress-nginx`, `prod-payments`, `prod-checkout`, `staging-payments`,
//! `staging-checkout`, `dev-bob`, `dev-dave`. Production namespaces start with `prod` so that
//! `ns:prod*` and the built-in `@prod-deletes` find them.
//!
//! Requests carry realistic `requestURI`s (list `?limit=500`, watch bookmarks and field
//! selectors, kubectl's `fieldManager`), user agents, source addresses, status codes (200, 201,
//! 101 for exec, 404, 409, 403, 401 …) with Kubernetes-style failure messages and authorizer
//! annotations, and latencies (`stageTimestamp − requestReceivedTimestamp`; lists slower, watches
//! minutes long). About a quarter of requests are also logged at `RequestReceived`, watches and
//! execs at `ResponseStarted` too (some watches are still open when the log ends), and failed
//! authentications only at `ResponseStarted`: so "each request counts once, at its latest stage"
//! matters. Most events are at `Metadata` level; pods created by controllers are at `Request`
//! level, and people's writes of Deployments, Pods and RBAC bindings at `RequestResponse`.
//!
//! # The incidents
//!
//! [`Demo::incidents`] lists them, each with a question, a kaq query that answers it, and how many
//! rows that query returns — the same whatever the seed and the size, because the background
//! traffic never matches those queries:
//!
//! | name | what happened | rows |
//! |---|---|---|
//! | `401-burst` | 180 failed authentications (401, no user, logged at `ResponseStarted`) from 203.0.113.45 in six minutes | 1 |
//! | `anonymous-allowed` | then the same address, anonymous, lists pods and reads a ConfigMap in `prod-checkout` (a RoleBinding gave `system:anonymous` the `view` role); its Secret list is refused | 2 |
//! | `prod-exec` | bob runs `/bin/sh -c env \| grep -i db_` in a `payments-api` pod in `prod-payments` | 1 |
//! | `prod-secret-reads` | a contractor, `mallory@contractor.example.net` from 198.51.100.23, lists and reads Secrets in both production namespaces | 4 |
//! | `cluster-admin-binding` | alice binds `dave@example.com` to `cluster-admin` (ClusterRoleBinding `dave-cluster-admin`, body logged) | 1 |
//! | `privileged-pod` | dave then creates pod `node-debugger` in `default`: privileged, host network and PID, `/` mounted — and execs `chroot /host /bin/bash` into it | 1 |
//! | `prod-deletes` | carol deletes Deployment `payments-api` and Secret `payments-db-credentials` in `prod-payments`; the garbage collector then deletes the ReplicaSet and its pods | 2 |
//!
//! Their queries use derived fields (`user_kind`, `subresource`, `exec_command`, `host_path`) and
//! the built-in named queries (`@secret-reads`, `@anonymous-allowed`, `@cluster-admin-bindings`,
//! `@privileged-pods`); the background is there to make the filters matter: controllers delete
//! pods in production, kubelets and apps read production Secrets, the DaemonSet controller creates
//! privileged `kube-proxy` pods, load balancers probe `/healthz` anonymously, people exec into
//! pods in `dev-*` and `staging-*`.
//!
//! [`suggested`] gives the three questions `kaq demo` prints first.
//!
//! ```
//! let demo = kaq_demo::generate(&kaq_demo::DemoOptions { events: 2_000, ..Default::default() });
//! assert_eq!(demo.log.iter().filter(|&&b| b == b'\n').count(), 2_000);
//! assert!(demo.incidents.iter().any(|i| i.name == "prod-deletes"));
//! ```

use chrono::{DateTime, TimeZone, Utc};
use kaq_schema::time::format_micros;
use serde_json::{Value, json};

/// How many hours the log covers, ending at [`DemoOptions::end`].
pub const SPAN_HOURS: i64 = 4;

/// How many lines the incidents take (the 401 burst is 180 of them): the smallest log.
pub const INCIDENT_EVENTS: usize = 204;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// The seed. The incidents are the same for every seed, their audit IDs, some latencies and
    /// the second within their minute aside.
    pub seed: u64,
    /// How many lines (events) the log has, exactly; at least [`INCIDENT_EVENTS`] (fewer gives
    /// the incidents alone).
    pub events: usize,
    /// When the log ends (the last `stageTimestamp` is at or before it); it starts
    /// [`SPAN_HOURS`] earlier. Timestamps are written to the microsecond.
    pub end: DateTime<Utc>,
}

impl DemoOptions {
    /// The default end, fixed so that the default log is always the same:
    /// 2026-11-20T12:00:00Z.
    pub fn default_end() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).single().expect("a valid date")
    }

    /// The default options, ending now (the wall clock): relative times (`--since 1h`,
    /// `time>=now-2h`) then find the demo's events.
    pub fn ending_now() -> DemoOptions {
        DemoOptions { end: Utc::now(), ..DemoOptions::default() }
    }
}

impl Default for DemoOptions {
    /// Seed 42, 20,000 events, ending at [`DemoOptions::default_end`].
    fn default() -> Self {
        DemoOptions { seed: 42, events: 20_000, end: DemoOptions::default_end() }
    }
}

/// A generated log and the incidents in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Demo {
    /// `audit.k8s.io/v1` Events, one JSON object per line, each line ending in `\n`, in the order
    /// the API server would write them (by `stageTimestamp`).
    pub log: Vec<u8>,
    /// The incidents in the log, in the order they happen.
    pub incidents: Vec<Incident>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("log", &format_args!("<{} bytes>", self.log.len()))
            .field("incidents", &self.incidents)
            .finish()
    }
}

/// Something in the log worth finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// A short identifier (`prod-deletes`).
    pub name: &'static str,
    /// The question it answers, in plain words.
    pub question: &'static str,
    /// A kaq query that finds exactly it.
    pub query: String,
    /// How many rows `query` returns over the generated log (any seed, any size).
    pub expected_rows: usize,
}

/// The three questions `kaq demo` suggests, with their queries: who deleted things in production,
/// which address fails to authenticate, who ran commands inside pods.
pub fn suggested() -> [(&'static str, &'static str); 3] {
    [
        ("Who deleted things in prod?", "verb:delete ns:prod* user_kind:human | table time, user, resource, ns, name"),
        ("Which address is hammering us with 401s?", "code:401 | count by ip | sort -count"),
        ("Who ran commands inside pods?", "subresource:exec | table time, user, ns, name, exec_command | sort time"),
    ]
}

/// The incidents, as [`Demo::incidents`] lists them.
fn incident_list() -> Vec<Incident> {
    let i = |name, question, query: &str, expected_rows| Incident {
        name,
        question,
        query: query.to_string(),
        expected_rows,
    };
    vec![
        i(
            "401-burst",
            "Which address is hammering us with 401s?",
            "code:401 | count by ip | where count > 20 | sort -count",
            1,
        ),
        i(
            "anonymous-allowed",
            "What did anonymous users get to see (beyond health checks)?",
            "@anonymous-allowed resource:* | table time, ip, verb, resource, ns, name, authz_reason",
            2,
        ),
        i(
            "prod-exec",
            "Who ran a shell in a production pod?",
            "subresource:exec ns:prod* | table time, user, ns, name, exec_command",
            1,
        ),
        i(
            "prod-secret-reads",
            "Which people read Secrets in prod?",
            "@secret-reads ns:prod* user_kind:human | table time, user, ip, verb, ns, name",
            4,
        ),
        i(
            "cluster-admin-binding",
            "Who was made cluster-admin?",
            "@cluster-admin-bindings | table time, user, name, request.subjects.name",
            1,
        ),
        i(
            "privileged-pod",
            "Who started a privileged pod?",
            "@privileged-pods user_kind:human | table time, user, ns, name, host_path",
            1,
        ),
        i(
            "prod-deletes",
            "Who deleted things in prod?",
            "verb:delete ns:prod* user_kind:human | table time, user, resource, ns, name",
            2,
        ),
    ]
}

/// Generates the demo log.
pub fn generate(opts: &DemoOptions) -> Demo {
    let mut g = Gen::new(opts);
    let mut reqs = g.incidents();
    let incident_lines: usize = reqs.iter().map(Req::lines).sum();
    debug_assert_eq!(incident_lines, INCIDENT_EVENTS);
    let budget = opts.events.saturating_sub(incident_lines);
    let mut background = Vec::new();
    let mut used = 0;
    while used < budget {
        let mut r = g.background();
        r.trim_to(budget - used);
        used += r.lines();
        background.push(r);
    }
    // Spread the background over the span, in order, leaving room for the slowest non-watch call.
    let room = (g.end - g.start - 5_000_000).max(1);
    let n = background.len().max(1) as i128;
    for (i, r) in background.iter_mut().enumerate() {
        let slot = (i128::from(room) * i as i128 + i128::from(g.rng.below(room as u64) as i64)) / n;
        r.t = g.start + slot as i64;
    }
    reqs.extend(background);
    for r in &mut reqs {
        // Long-running calls end by the end of the log.
        r.latency = r.latency.min(g.end - r.t).max(0);
    }
    reqs.sort_by_key(|r| r.t);
    Demo { log: emit(&mut g.rng, &reqs), incidents: incident_list() }
}

// ---------------------------------------------------------------------------------------------
// Random numbers: SplitMix64, integer-only, so the output is the same on every platform.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6b61_715f_6465_6d6f)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True `per_mille` times in a thousand.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len() as u64) as usize]
    }

    fn weighted<'a, T>(&mut self, s: &'a [(u32, T)]) -> &'a T {
        let total: u64 = s.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (w, v) in s {
            if x < u64::from(*w) {
                return v;
            }
            x -= u64::from(*w);
        }
        &s[s.len() - 1].1
    }

    /// A version-4 UUID.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// `n` characters of the alphabet Kubernetes uses for generated names.
    fn suffix(&mut self, n: usize) -> String {
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n).map(|_| *self.pick(ALPHA) as char).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0')).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The model of a request.

#[derive(Clone)]
struct Who {
    name: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: Vec<(&'static str, String)>,
    /// The authorizer's reason when it allows this user.
    authz: String,
}

#[derive(Clone)]
struct Obj {
    resource: &'static str,
    ns: Option<String>,
    name: Option<String>,
    group: &'static str,
    version: &'static str,
    sub: Option<&'static str>,
}

/// One API request, logged at one or more stages.
struct Req {
    /// requestReceivedTimestamp, µs.
    t: i64,
    latency: i64,
    level: &'static str,
    verb: &'static str,
    uri: String,
    /// `None`: authentication failed (`"user":{}`).
    user: Option<Who>,
    ips: Vec<String>,
    ua: String,
    obj: Option<Obj>,
    code: u16,
    /// `(reason, message)` of a failure.
    failure: Option<(&'static str, String)>,
    /// `(decision, reason)` of the authorizer; `None` when authentication failed.
    authz: Option<(&'static str, String)>,
    annotations: Vec<(&'static str, String)>,
    request: Option<Value>,
    response: Option<Value>,
    received: bool,
    started: bool,
    complete: bool,
    audit_id: String,
}

impl Req {
    fn lines(&self) -> usize {
        usize::from(self.received) + usize::from(self.started) + usize::from(self.complete)
    }

    /// Drops stages until at most `n` (≥ 1) lines are left; the last stage logged stays.
    fn trim_to(&mut self, n: usize) {
        if self.lines() > n {
            self.received = false;
        }
        if self.lines() > n && self.complete {
            self.started = false;
        }
    }

    fn with_received(mut self) -> Req {
        self.received = true;
        self
    }
}

fn api(resource: &str) -> (&'static str, &'static str, bool) {
    match resource {
        "nodes" | "namespaces" | "persistentvolumes" => ("", "v1", false),
        "pods"
        | "services"
        | "configmaps"
        | "secrets"
        | "endpoints"
        | "events"
        | "serviceaccounts"
        | "persistentvolumeclaims" => ("", "v1", true),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" => ("apps", "v1", true),
        "jobs" | "cronjobs" => ("batch", "v1", true),
        "leases" => ("coordination.k8s.io", "v1", true),
        "endpointslices" => ("discovery.k8s.io", "v1", true),
        "ingresses" => ("networking.k8s.io", "v1", true),
        "roles" | "rolebindings" => ("rbac.authorization.k8s.io", "v1", true),
        "clusterroles" | "clusterrolebindings" => ("rbac.authorization.k8s.io", "v1", false),
        "certificates" | "certificaterequests" => ("cert-manager.io", "v1", true),
        "horizontalpodautoscalers" => ("autoscaling", "v2", true),
        _ => ("", "v1", true),
    }
}

fn obj(resource: &'static str, ns: Option<&str>, name: Option<&str>) -> Obj {
    let (group, version, namespaced) = api(resource);
    Obj {
        resource,
        ns: if namespaced { ns.map(str::to_string) } else { None },
        name: name.map(str::to_string),
        group,
        version,
        sub: None,
    }
}

fn sub(mut o: Obj, s: &'static str) -> Obj {
    o.sub = Some(s);
    o
}

/// The request path of a resource request: collections for list, watch and create (the created
/// object's name is in objectRef only), the object otherwise, then the subresource.
fn path(verb: &str, o: &Obj) -> String {
    let mut p =
        if o.group.is_empty() { format!("/api/{}", o.version) } else { format!("/apis/{}/{}", o.group, o.version) };
    if let Some(ns) = &o.ns {
        p.push_str("/namespaces/");
        p.push_str(ns);
    }
    p.push('/');
    p.push_str(o.resource);
    let collection = matches!(verb, "list" | "watch" | "deletecollection") || (verb == "create" && o.sub.is_none());
    if let (Some(name), false) = (&o.name, collection) {
        p.push('/');
        p.push_str(name);
    }
    if let Some(s) = o.sub {
        p.push('/');
        p.push_str(s);
    }
    p
}

const K8S: &str = "v1.30.4";
const BUILD: &str = "kubernetes/a51b3b7";
const CONTROL_PLANE_IP: &str = "10.0.0.10";
const APISERVER_UID: &str = "2f8e3c1a-6b7d-4e59-9a0c-d41e5b7f3a62";
const KUBECTL: &str = "kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350";
const KUBECTL_LINUX: &str = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350";

// ---------------------------------------------------------------------------------------------
// The cluster.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// How a workload's service account uses the API.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An application: its own ConfigMap and Secret, events, a leader lease.
    App,
    Prometheus,
    KubeStateMetrics,
    Grafana,
    ArgoCd,
    CertManager,
    Ingress,
    CoreDns,
    KubeProxy,
    /// Does not call the API.
    Quiet,
}

struct Pod {
    name: String,
    uid: String,
    node: usize,
    ip: String,
}

struct App {
    ns: &'static str,
    name: &'static str,
    kind: Kind,
    role: Role,
    image: &'static str,
    ua: &'static str,
    /// The current ReplicaSet's hash (Deployments).
    hash: String,
    /// The service account's UID.
    sa_uid: String,
    pods: Vec<Pod>,
}

impl App {
    /// The service account its pods run as.
    fn sa(&self) -> &'static str {
        match self.name {
            "ingress-nginx-controller" => "ingress-nginx",
            "prometheus-k8s" => "prometheus",
            n => n,
        }
    }

    fn secret(&self) -> String {
        match self.name {
            "payments-api" | "payments-worker" => "payments-db-credentials".into(),
            n => format!("{n}-credentials"),
        }
    }
}

struct Person {
    name: &'static str,
    groups: &'static [&'static str],
    ip: &'static str,
    ua: &'static str,
    /// Namespaces read (production among them, read only).
    reads: &'static [&'static str],
    /// Namespaces written, exec'd into, Secrets read.
    writes: &'static [&'static str],
    /// The binding that lets them in, for the authorizer's reason.
    binding: &'static str,
    weight: u32,
}

const PEOPLE: &[Person] = &[
    Person {
        name: "alice@example.com",
        groups: &["oidc:platform-admins", "system:authenticated"],
        ip: "10.20.1.15",
        ua: KUBECTL,
        reads: &[
            "prod-payments",
            "prod-checkout",
            "staging-payments",
            "staging-checkout",
            "monitoring",
            "argocd",
            "kube-system",
            "ingress-nginx",
        ],
        writes: &["staging-payments", "staging-checkout", "monitoring", "argocd"],
        binding: "ClusterRoleBinding \"platform-admins\" of ClusterRole \"admin\" to Group \"oidc:platform-admins\"",
        weight: 3,
    },
    Person {
        name: "bob@example.com",
        groups: &["oidc:developers", "oidc:team-payments", "system:authenticated"],
        ip: "10.20.1.22",
        ua: KUBECTL_LINUX,
        reads: &["prod-payments", "staging-payments", "dev-bob"],
        writes: &["staging-payments", "dev-bob"],
        binding: "RoleBinding \"team-payments-edit\" of ClusterRole \"edit\" to Group \"oidc:team-payments\"",
        weight: 4,
    },
    Person {
        name: "carol@example.com",
        groups: &["oidc:sre", "system:authenticated"],
        ip: "10.20.3.7",
        ua: KUBECTL,
        reads: &[
            "prod-payments",
            "prod-checkout",
            "staging-payments",
            "staging-checkout",
            "monitoring",
            "kube-system",
            "ingress-nginx",
            "cert-manager",
        ],
        writes: &["staging-payments", "staging-checkout", "monitoring"],
        binding: "ClusterRoleBinding \"sre-admin\" of ClusterRole \"admin\" to Group \"oidc:sre\"",
        weight: 3,
    },
    Person {
        name: "dave@example.com",
        groups: &["oidc:developers", "oidc:team-checkout", "system:authenticated"],
        ip: "10.20.2.41",
        ua: KUBECTL,
        reads: &["prod-checkout", "staging-checkout", "dev-dave"],
        writes: &["staging-checkout", "dev-dave"],
        binding: "RoleBinding \"team-checkout-edit\" of ClusterRole \"edit\" to Group \"oidc:team-checkout\"",
        weight: 3,
    },
    Person {
        name: "erin@example.com",
        groups: &["oidc:data", "system:authenticated"],
        ip: "10.20.4.9",
        ua: KUBECTL_LINUX,
        reads: &["staging-payments", "staging-checkout", "dev-bob", "dev-dave"],
        writes: &["dev-bob", "dev-dave"],
        binding: "RoleBinding \"data-view\" of ClusterRole \"view\" to Group \"oidc:data\"",
        weight: 1,
    },
];

#[rustfmt::skip]
const WORKLOADS: &[(&str, &str, Kind, usize, Role, &str, &str)] = &[
    // (namespace, name, kind, replicas, role, image, user agent)
    ("prod-payments", "payments-api", Kind::Deployment, 3, Role::App, "registry.example.com/payments-api:2.14.1", "payments-api/2.14.1 (linux/amd64) kubernetes/client-go"),
    ("prod-payments", "payments-worker", Kind::Deployment, 2, Role::App, "registry.example.com/payments-worker:2.14.1", "payments-worker/2.14.1 (linux/amd64) kubernetes/client-go"),
    ("prod-payments", "payments-db", Kind::StatefulSet, 1, Role::Quiet, "postgres:16.4", ""),
    ("prod-checkout", "checkout-web", Kind::Deployment, 3, Role::App, "registry.example.com/checkout-web:5.3.0", "checkout-web/5.3.0 (linux/amd64) kubernetes/client-go"),
    ("prod-checkout", "checkout-api", Kind::Deployment, 2, Role::App, "registry.example.com/checkout-api:5.3.0", "checkout-api/5.3.0 (linux/amd64) kubernetes/client-go"),
    ("prod-checkout", "redis", Kind::StatefulSet, 1, Role::Quiet, "redis:7.4", ""),
    ("staging-payments", "payments-api", Kind::Deployment, 1, Role::App, "registry.example.com/payments-api:2.15.0-rc.1", "payments-api/2.15.0-rc.1 (linux/amd64) kubernetes/client-go"),
    ("staging-payments", "payments-worker", Kind::Deployment, 1, Role::App, "registry.example.com/payments-worker:2.15.0-rc.1", "payments-worker/2.15.0-rc.1 (linux/amd64) kubernetes/client-go"),
    ("staging-payments", "payments-db", Kind::StatefulSet, 1, Role::Quiet, "postgres:16.4", ""),
    ("staging-checkout", "checkout-web", Kind::Deployment, 1, Role::App, "registry.example.com/checkout-web:5.4.0-rc.2", "checkout-web/5.4.0-rc.2 (linux/amd64) kubernetes/client-go"),
    ("staging-checkout", "checkout-api", Kind::Deployment, 1, Role::App, "registry.example.com/checkout-api:5.4.0-rc.2", "checkout-api/5.4.0-rc.2 (linux/amd64) kubernetes/client-go"),
    ("dev-bob", "payments-api", Kind::Deployment, 1, Role::Quiet, "registry.example.com/payments-api:dev-bob", ""),
    ("dev-dave", "checkout-web", Kind::Deployment, 1, Role::Quiet, "registry.example.com/checkout-web:dev-dave", ""),
    ("monitoring", "prometheus-k8s", Kind::StatefulSet, 1, Role::Prometheus, "quay.io/prometheus/prometheus:v2.53.1", "Prometheus/2.53.1"),
    ("monitoring", "kube-state-metrics", Kind::Deployment, 1, Role::KubeStateMetrics, "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0", "kube-state-metrics/v2.13.0 (linux/amd64) kubernetes/client-go"),
    ("monitoring", "grafana", Kind::Deployment, 1, Role::Grafana, "grafana/grafana:11.1.4", "OpenAPI-Generator/30.1.0/python"),
    ("argocd", "argocd-application-controller", Kind::StatefulSet, 1, Role::ArgoCd, "quay.io/argoproj/argocd:v2.12.3", "argocd-application-controller/v2.12.3 (linux/amd64) argo-cd/99a1cc3"),
    ("cert-manager", "cert-manager", Kind::Deployment, 1, Role::CertManager, "quay.io/jetstack/cert-manager-controller:v1.15.3", "cert-manager-controller/v1.15.3 (linux/amd64) cert-manager/52d0ac6"),
    ("ingress-nginx", "ingress-nginx-controller", Kind::Deployment, 2, Role::Ingress, "registry.k8s.io/ingress-nginx/controller:v1.11.2", "nginx-ingress-controller/v1.11.2 (linux/amd64) ingress-nginx/46e76e5"),
    ("kube-system", "coredns", Kind::Deployment, 2, Role::CoreDns, "registry.k8s.io/coredns/coredns:v1.11.1", "coredns/v1.11.1 (linux/amd64) kubernetes/client-go"),
    ("kube-system", "kube-proxy", Kind::DaemonSet, 6, Role::KubeProxy, "registry.k8s.io/kube-proxy:v1.30.4", "kube-proxy/v1.30.4 (linux/amd64) kubernetes/a51b3b7"),
];

const NODES: usize = 6;

fn node_name(i: usize) -> String {
    format!("node-{}", i + 1)
}

fn node_ip(i: usize) -> String {
    format!("10.0.1.{}", 11 + i)
}

struct Gen {
    rng: Rng,
    start: i64,
    end: i64,
    apps: Vec<App>,
    /// (app, pod) of every pod, by node.
    on_node: Vec<Vec<(usize, usize)>>,
    /// Background 401s so far (kept under 20 in all, far below the burst).
    expired_tokens: usize,
}

impl Gen {
    fn new(opts: &DemoOptions) -> Gen {
        let mut rng = Rng::new(opts.seed);
        let end = opts.end.timestamp_micros();
        let start = end - SPAN_HOURS * 3_600_000_000;
        let mut apps = Vec::new();
        let mut on_node = vec![Vec::new(); NODES];
        for &(ns, name, kind, replicas, role, image, ua) in WORKLOADS {
            let hash = rng.suffix(10);
            let mut pods = Vec::new();
            for k in 0..replicas {
                let pname = match kind {
                    Kind::Deployment => format!("{name}-{hash}-{}", rng.suffix(5)),
                    Kind::StatefulSet => format!("{name}-{k}"),
                    Kind::DaemonSet => format!("{name}-{}", rng.suffix(5)),
                };
                let node = if kind == Kind::DaemonSet { k } else { rng.below(NODES as u64) as usize };
                let ip = if kind == Kind::DaemonSet {
                    node_ip(node)
                } else {
                    format!("10.244.{}.{}", node, rng.range(2, 250))
                };
                on_node[node].push((apps.len(), pods.len()));
                pods.push(Pod { name: pname, uid: rng.uuid(), node, ip });
            }
            let sa_uid = rng.uuid();
            apps.push(App { ns, name, kind, role, image, ua, hash, sa_uid, pods });
        }
        Gen { rng, start, end, apps, on_node, expired_tokens: 0 }
    }

    /// The instant at `per_mille` thousandths of the span.
    /// An instant within the minute after `per_mille` thousandths of the span.
    fn at(&mut self, per_mille: i64) -> i64 {
        self.start + (self.end - self.start) / 1000 * per_mille + self.rng.range(0, 59_999_999)
    }

    fn latency(&mut self, verb: &str) -> i64 {
        let ms: &[(u32, (i64, i64))] = match verb {
            "watch" => &[(1, (60_000, 600_000))],
            "list" | "deletecollection" => &[(40, (4, 30)), (40, (30, 150)), (15, (150, 1_000)), (5, (1_000, 4_000))],
            _ => &[(550, (1, 8)), (300, (8, 30)), (120, (30, 150)), (25, (150, 800)), (5, (800, 2_500))],
        };
        let &(lo, hi) = self.rng.weighted(ms);
        self.rng.range(lo * 1000, hi * 1000)
    }

    /// A request that succeeds, logged once at ResponseComplete (watches: RequestReceived,
    /// ResponseStarted and, unless still open, ResponseComplete).
    fn req(&mut self, who: &Who, ip: &str, ua: &str, verb: &'static str, o: Obj, query: &str) -> Req {
        let mut uri = path(verb, &o);
        uri.push_str(query);
        let watch = verb == "watch";
        let received = watch || self.rng.chance(250);
        let open = watch && self.rng.chance(150);
        Req {
            t: 0,
            latency: self.latency(verb),
            level: "Metadata",
            verb,
            uri,
            user: Some(who.clone()),
            ips: vec![ip.to_string()],
            ua: ua.to_string(),
            obj: Some(o),
            code: if verb == "create" { 201 } else { 200 },
            failure: None,
            authz: Some(("allow", who.authz.clone())),
            annotations: Vec::new(),
            request: None,
            response: None,
            received,
            started: watch,
            complete: !open,
            audit_id: self.rng.uuid(),
        }
    }

    fn fail(&mut self, r: &mut Req, code: u16) {
        let o = r.obj.as_ref();
        let res = o.map_or("", |o| o.resource);
        let name = o.and_then(|o| o.name.clone()).unwrap_or_default();
        let group = o.map_or("", |o| o.group);
        r.code = code;
        r.failure = Some(match code {
            404 => ("NotFound", format!("{res} \"{name}\" not found")),
            409 => (
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {res}{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    if group.is_empty() { String::new() } else { format!(".{group}") }
                ),
            ),
            403 => {
                let user = r.user.as_ref().map_or("", |u| u.name.as_str());
                let scope = match o.and_then(|o| o.ns.as_deref()) {
                    Some(ns) => format!("in the namespace \"{ns}\""),
                    None => "at the cluster scope".to_string(),
                };
                let what =
                    if name.is_empty() || r.verb == "list" { res.to_string() } else { format!("{res} \"{name}\"") };
                r.authz = Some(("forbid", String::new()));
                (
                    "Forbidden",
                    format!(
                        "{what} is forbidden: User \"{user}\" cannot {} resource \"{res}\" in API group \"{group}\" {scope}",
                        r.verb
                    ),
                )
            }
            422 => (
                "Invalid",
                format!("{res} \"{name}\" is invalid: spec.template.spec.containers[0].image: Required value"),
            ),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later".into(),
            ),
            500 => ("InternalError", "Internal error occurred: etcdserver: request timed out".into()),
            _ => ("", String::new()),
        });
    }

    fn sa_who(&self, ns: &str, sa: &str, authz: String) -> Who {
        Who {
            name: format!("system:serviceaccount:{ns}:{sa}"),
            uid: None,
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra: Vec::new(),
            authz,
        }
    }

    fn controller(&self, name: &str) -> (Who, String) {
        let who = self.sa_who(
            "kube-system",
            name,
            format!(
                "RBAC: allowed by ClusterRoleBinding \"system:controller:{name}\" of ClusterRole \"system:controller:{name}\" to ServiceAccount \"{name}/kube-system\""
            ),
        );
        (who, format!("kube-controller-manager/{K8S} (linux/amd64) {BUILD}/system:serviceaccount:kube-system:{name}"))
    }

    fn person_who(&self, p: &Person, ns: Option<&str>) -> Who {
        let authz = if p.binding.starts_with("RoleBinding") {
            let ns = ns.unwrap_or("default");
            p.binding.replacen("\" of", &format!("/{ns}\" of"), 1)
        } else {
            p.binding.to_string()
        };
        Who {
            name: p.name.into(),
            uid: None,
            groups: p.groups.iter().map(|g| g.to_string()).collect(),
            extra: Vec::new(),
            authz: format!("RBAC: allowed by {authz}"),
        }
    }

    fn pick_app(&mut self, pred: impl Fn(&App) -> bool) -> usize {
        let idx: Vec<usize> = (0..self.apps.len()).filter(|&i| pred(&self.apps[i])).collect();
        *self.rng.pick(&idx)
    }

    fn rv(&mut self) -> i64 {
        self.rng.range(48_000_000, 49_999_999)
    }

    fn watch_query(&mut self, selector: &str) -> String {
        let rv = self.rv();
        let timeout = self.rng.range(300, 600);
        format!(
            "?allowWatchBookmarks=true{selector}&resourceVersion={rv}&timeout={}m{}s&timeoutSeconds={timeout}&watch=true",
            timeout / 60,
            timeout % 60
        )
    }

    fn pod_spec(&mut self, app: usize, privileged: bool) -> Value {
        let a = &self.apps[app];
        let mut container = json!({
            "name": a.name,
            "image": a.image,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        });
        if a.kind == Kind::DaemonSet || privileged {
            container["securityContext"] = json!({"privileged": true});
            return json!({
                "containers": [container],
                "hostNetwork": true,
                "serviceAccountName": a.sa(),
                "volumes": [
                    {"name": "lib-modules", "hostPath": {"path": "/lib/modules", "type": ""}},
                    {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                ],
            });
        }
        container["ports"] = json!([{"containerPort": 8080, "protocol": "TCP"}]);
        container["securityContext"] = json!({"allowPrivilegeEscalation": false, "runAsNonRoot": true});
        json!({"containers": [container], "serviceAccountName": a.sa()})
    }

    // ---- background -------------------------------------------------------------------------

    fn background(&mut self) -> Req {
        match self.rng.below(1000) {
            0..300 => self.kubelet(),
            300..560 => self.control_plane(),
            560..845 => self.workload(),
            845..960 => self.person(),
            960..997 => self.anonymous(),
            _ => self.expired_token().unwrap_or_else(|| self.workload()),
        }
    }

    fn kubelet(&mut self) -> Req {
        let n = self.rng.below(NODES as u64) as usize;
        let node = node_name(n);
        let who = Who {
            name: format!("system:node:{node}"),
            uid: None,
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            extra: Vec::new(),
            authz: String::new(),
        };
        let ip = node_ip(n);
        let ua = format!("kubelet/{K8S} (linux/amd64) {BUILD}");
        let &(a, p) = self.rng.pick(&self.on_node[n]);
        let (ns, app) = (self.apps[a].ns, self.apps[a].name);
        let pod = self.apps[a].pods[p].name.clone();
        let action =
            *self.rng.weighted(&[(30, 0), (10, 1), (10, 2), (14, 3), (8, 4), (5, 5), (5, 6), (4, 7), (4, 8), (4, 9)]);
        let mut r = match action {
            0 => self.req(&who, &ip, &ua, "update", obj("leases", Some("kube-node-lease"), Some(&node)), ""),
            1 => self.req(&who, &ip, &ua, "get", obj("nodes", None, Some(&node)), "?resourceVersion=0&timeout=10s"),
            2 => self.req(&who, &ip, &ua, "patch", sub(obj("nodes", None, Some(&node)), "status"), "?timeout=10s"),
            3 => self.req(&who, &ip, &ua, "patch", sub(obj("pods", Some(ns), Some(&pod)), "status"), ""),
            4 => self.req(&who, &ip, &ua, "get", obj("pods", Some(ns), Some(&pod)), ""),
            5 => {
                let q = self.watch_query(&format!("&fieldSelector=spec.nodeName%3D{node}"));
                self.req(&who, &ip, &ua, "watch", obj("pods", None, None), &q)
            }
            6 | 7 => {
                let (res, name) = if action == 6 {
                    (
                        "configmaps",
                        if self.rng.chance(500) { "kube-root-ca.crt".to_string() } else { format!("{app}-config") },
                    )
                } else {
                    ("secrets", self.apps[a].secret())
                };
                let q = self.watch_query(&format!("&fieldSelector=metadata.name%3D{name}"));
                self.req(&who, &ip, &ua, "watch", obj(res, Some(ns), Some(&name)), &q)
            }
            8 => {
                let name = format!("{pod}.{}", self.rng.hex(16));
                self.req(&who, &ip, &ua, "create", obj("events", Some(ns), Some(&name)), "")
            }
            _ => {
                let sa = self.apps[a].sa();
                self.req(&who, &ip, &ua, "create", sub(obj("serviceaccounts", Some(ns), Some(sa)), "token"), "")
            }
        };
        if action == 4 && self.rng.chance(20) {
            self.fail(&mut r, 404);
        }
        r
    }

    fn control_plane(&mut self) -> Req {
        let ip = CONTROL_PLANE_IP;
        let action = *self.rng.weighted(&[
            (120, 0),
            (120, 1),
            (60, 2),
            (40, 3),
            (50, 4),
            (50, 5),
            (30, 6),
            (20, 7),
            (80, 8),
            (30, 9),
            (20, 10),
            (20, 11),
            (20, 12),
            (15, 13),
            (20, 14),
            (1, 15),
            (25, 16),
        ]);
        let app = self.pick_app(|a| a.kind == Kind::Deployment);
        let (ns, name) = (self.apps[app].ns, self.apps[app].name);
        let hash = self.apps[app].hash.clone();
        let pod = self.rng.pick(&self.apps[app].pods).name.clone();
        let mut r = match action {
            0 | 1 => {
                let who_name = if action == 0 { "kube-controller-manager" } else { "kube-scheduler" };
                let who = Who {
                    name: format!("system:{who_name}"),
                    uid: None,
                    groups: vec!["system:authenticated".into()],
                    extra: Vec::new(),
                    authz: format!(
                        "RBAC: allowed by ClusterRoleBinding \"system:{who_name}\" of ClusterRole \"system:{who_name}\" to User \"system:{who_name}\""
                    ),
                };
                let ua = format!("{who_name}/{K8S} (linux/amd64) {BUILD}/leader-election");
                let verb = if self.rng.chance(800) { "update" } else { "get" };
                let mut r =
                    self.req(&who, ip, &ua, verb, obj("leases", Some("kube-system"), Some(who_name)), "?timeout=5s");
                if verb == "update" && self.rng.chance(10) {
                    self.fail(&mut r, 409);
                }
                r
            }
            2 | 3 => {
                let who = Who {
                    name: "system:kube-scheduler".into(),
                    uid: None,
                    groups: vec!["system:authenticated".into()],
                    extra: Vec::new(),
                    authz: "RBAC: allowed by ClusterRoleBinding \"system:kube-scheduler\" of ClusterRole \"system:kube-scheduler\" to User \"system:kube-scheduler\"".into(),
                };
                let ua = format!("kube-scheduler/{K8S} (linux/amd64) {BUILD}/scheduler");
                if action == 2 {
                    let node = node_name(self.rng.below(NODES as u64) as usize);
                    let mut r =
                        self.req(&who, ip, &ua, "create", sub(obj("pods", Some(ns), Some(&pod)), "binding"), "");
                    r.level = "Request";
                    r.request = Some(json!({
                        "kind": "Binding", "apiVersion": "v1",
                        "metadata": {"name": pod, "namespace": ns},
                        "target": {"kind": "Node", "name": node},
                    }));
                    r
                } else {
                    let res = if self.rng.chance(500) { "pods" } else { "nodes" };
                    let q = self.watch_query("");
                    self.req(&who, ip, &ua, "watch", obj(res, None, None), &q)
                }
            }
            4 => {
                let (who, ua) = self.controller("deployment-controller");
                let mut r =
                    self.req(&who, ip, &ua, "update", sub(obj("deployments", Some(ns), Some(name)), "status"), "");
                if self.rng.chance(20) {
                    self.fail(&mut r, 409);
                }
                r
            }
            5 => {
                let (who, ua) = self.controller("replicaset-controller");
                self.req(
                    &who,
                    ip,
                    &ua,
                    "update",
                    sub(obj("replicasets", Some(ns), Some(&format!("{name}-{hash}"))), "status"),
                    "",
                )
            }
            6 => {
                let (who, ua) = self.controller("replicaset-controller");
                let pod = format!("{name}-{hash}-{}", self.rng.suffix(5));
                let mut r = self.req(&who, ip, &ua, "create", obj("pods", Some(ns), Some(&pod)), "");
                let spec = self.pod_spec(app, false);
                r.level = "Request";
                r.request = Some(json!({
                    "kind": "Pod", "apiVersion": "v1",
                    "metadata": {
                        "generateName": format!("{name}-{hash}-"), "namespace": ns,
                        "labels": {"app": name, "pod-template-hash": hash},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-{hash}"), "controller": true, "blockOwnerDeletion": true}],
                    },
                    "spec": spec,
                }));
                r.annotations.push(("pod-security.kubernetes.io/enforce-policy", "baseline:latest".into()));
                r
            }
            7 => {
                let (who, ua) = self.controller("replicaset-controller");
                self.req(&who, ip, &ua, "delete", obj("pods", Some(ns), Some(&pod)), "")
            }
            8 => {
                let (who, ua) = self.controller("endpointslice-controller");
                let slice = format!("{name}-{}", self.rng.suffix(5));
                let mut r = self.req(&who, ip, &ua, "update", obj("endpointslices", Some(ns), Some(&slice)), "");
                if self.rng.chance(15) {
                    self.fail(&mut r, 409);
                }
                r
            }
            9 => {
                let (who, ua) = self.controller("endpoint-controller");
                self.req(&who, ip, &ua, "update", obj("endpoints", Some(ns), Some(name)), "")
            }
            10 => {
                let (who, ua) = self.controller("generic-garbage-collector");
                let res = *self.rng.pick(&["replicasets", "pods", "jobs", "endpointslices"]);
                self.req(&who, ip, &ua, "list", obj(res, None, None), "?limit=500&resourceVersion=0")
            }
            11 => {
                let (who, ua) = self.controller("node-controller");
                let node = node_name(self.rng.below(NODES as u64) as usize);
                self.req(&who, ip, &ua, "get", obj("nodes", None, Some(&node)), "")
            }
            12 => {
                let (who, ua) = self.controller("horizontal-pod-autoscaler");
                self.req(&who, ip, &ua, "get", sub(obj("deployments", Some(ns), Some(name)), "scale"), "")
            }
            13 => {
                let (who, ua) = self.controller("cronjob-controller");
                let job = format!("settlement-report-{}", self.rng.range(29_380_000, 29_389_999));
                self.req(&who, ip, &ua, "create", obj("jobs", Some("prod-payments"), Some(&job)), "")
            }
            14 => {
                let (who, ua) = self.controller("daemon-set-controller");
                self.req(
                    &who,
                    ip,
                    &ua,
                    "update",
                    sub(obj("daemonsets", Some("kube-system"), Some("kube-proxy")), "status"),
                    "",
                )
            }
            16 => {
                // The API server keeps the `kubernetes` Service's endpoints in `default` up to date.
                let who = Who {
                    name: "system:apiserver".into(),
                    uid: Some(APISERVER_UID.into()),
                    groups: vec!["system:authenticated".into(), "system:masters".into()],
                    extra: Vec::new(),
                    authz: String::new(),
                };
                let ua = format!("kube-apiserver/{K8S} (linux/amd64) {BUILD}");
                let (verb, res) = *self.rng.pick(&[
                    ("get", "services"),
                    ("get", "endpoints"),
                    ("update", "endpointslices"),
                    ("get", "endpointslices"),
                ]);
                self.req(&who, "::1", &ua, verb, obj(res, Some("default"), Some("kubernetes")), "")
            }
            _ => {
                // A node's kube-proxy pod recreated: privileged and on the host network, by design.
                let (who, ua) = self.controller("daemon-set-controller");
                let proxy = self.pick_app(|a| a.kind == Kind::DaemonSet);
                let pod = format!("kube-proxy-{}", self.rng.suffix(5));
                let mut r = self.req(&who, ip, &ua, "create", obj("pods", Some("kube-system"), Some(&pod)), "");
                let spec = self.pod_spec(proxy, true);
                r.level = "Request";
                r.request = Some(json!({
                    "kind": "Pod", "apiVersion": "v1",
                    "metadata": {"generateName": "kube-proxy-", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
                    "spec": spec,
                }));
                r.annotations.push(("pod-security.kubernetes.io/enforce-policy", "privileged:latest".into()));
                r
            }
        };
        if r.code == 200 && self.rng.chance(2) {
            self.fail(&mut r, 500);
        }
        r
    }

    fn workload(&mut self) -> Req {
        let a = self.pick_app(|a| a.role != Role::Quiet);
        let app = &self.apps[a];
        let (ns, name, role, ua) = (app.ns, app.name, app.role, app.ua);
        let sa = app.sa();
        let p = self.rng.below(app.pods.len() as u64) as usize;
        let (pod_name, pod_uid, pod_ip) = (app.pods[p].name.clone(), app.pods[p].uid.clone(), app.pods[p].ip.clone());
        let node = node_name(app.pods[p].node);
        let secret = app.secret();
        let namespaced = matches!(role, Role::App | Role::Grafana);
        let authz = if namespaced {
            format!("RBAC: allowed by RoleBinding \"{sa}/{ns}\" of Role \"{sa}\" to ServiceAccount \"{sa}/{ns}\"")
        } else {
            format!(
                "RBAC: allowed by ClusterRoleBinding \"{sa}\" of ClusterRole \"{sa}\" to ServiceAccount \"{sa}/{ns}\""
            )
        };
        let mut who = self.sa_who(ns, sa, authz);
        who.uid = Some(self.apps[a].sa_uid.clone());
        who.extra = vec![
            ("authentication.kubernetes.io/node-name", node),
            ("authentication.kubernetes.io/pod-name", pod_name),
            ("authentication.kubernetes.io/pod-uid", pod_uid),
        ];
        let ip = pod_ip.as_str();
        const TARGETS: &[&str] = &["prod-payments", "prod-checkout", "staging-payments", "staging-checkout"];
        let mut r = match role {
            Role::App => match self.rng.below(10) {
                0..4 => self.req(&who, ip, ua, "get", obj("configmaps", Some(ns), Some(&format!("{name}-config"))), ""),
                4..6 => self.req(&who, ip, ua, "get", obj("secrets", Some(ns), Some(&secret)), ""),
                6..9 => self.req(&who, ip, ua, "update", obj("leases", Some(ns), Some(&format!("{name}-leader"))), ""),
                _ => {
                    // Refused: apps may not list Secrets.
                    let mut r = self.req(&who, ip, ua, "list", obj("secrets", Some(ns), None), "?limit=500");
                    if self.rng.chance(300) {
                        self.fail(&mut r, 403);
                        r
                    } else {
                        self.req(&who, ip, ua, "get", obj("configmaps", Some(ns), Some(&format!("{name}-config"))), "")
                    }
                }
            },
            Role::Prometheus | Role::KubeStateMetrics | Role::CoreDns | Role::KubeProxy | Role::Ingress => {
                let resources: &[&'static str] = match role {
                    Role::Prometheus => &["pods", "services", "endpoints", "endpointslices", "nodes"],
                    Role::KubeStateMetrics => &[
                        "pods",
                        "deployments",
                        "replicasets",
                        "statefulsets",
                        "daemonsets",
                        "nodes",
                        "secrets",
                        "configmaps",
                        "jobs",
                        "namespaces",
                        "persistentvolumeclaims",
                    ],
                    Role::CoreDns => &["services", "endpointslices", "namespaces"],
                    Role::KubeProxy => &["services", "endpointslices", "nodes"],
                    _ => &["ingresses", "services", "endpointslices", "secrets", "configmaps"],
                };
                let res = *self.rng.pick(resources);
                if role == Role::Ingress && self.rng.chance(300) {
                    self.req(&who, ip, ua, "update", obj("leases", Some(ns), Some("ingress-nginx-leader")), "")
                } else if self.rng.chance(350) {
                    self.req(&who, ip, ua, "list", obj(res, None, None), "?limit=500&resourceVersion=0")
                } else {
                    let q = self.watch_query("");
                    self.req(&who, ip, ua, "watch", obj(res, None, None), &q)
                }
            }
            Role::Grafana => {
                if self.rng.chance(500) {
                    let q = self.watch_query("&labelSelector=grafana_dashboard%3D1");
                    self.req(&who, ip, ua, "watch", obj("configmaps", Some(ns), None), &q)
                } else {
                    self.req(
                        &who,
                        ip,
                        ua,
                        "list",
                        obj("configmaps", Some(ns), None),
                        "?labelSelector=grafana_dashboard%3D1",
                    )
                }
            }
            Role::ArgoCd => {
                let target = *self.rng.pick(TARGETS);
                let res = *self.rng.pick(&["deployments", "services", "configmaps", "ingresses", "statefulsets"]);
                let app = if target.ends_with("payments") { "payments-api" } else { "checkout-web" };
                match self.rng.below(10) {
                    0..5 => self.req(&who, ip, ua, "get", obj(res, Some(target), Some(app)), ""),
                    5..8 => self.req(&who, ip, ua, "list", obj(res, Some(target), None), "?limit=500"),
                    _ => {
                        let mut r = self.req(
                            &who,
                            ip,
                            ua,
                            "patch",
                            obj(res, Some(target), Some(app)),
                            "?fieldManager=argocd-controller",
                        );
                        if self.rng.chance(30) {
                            self.fail(&mut r, 409);
                        }
                        r
                    }
                }
            }
            Role::CertManager => {
                let target = *self.rng.pick(TARGETS);
                let app = if target.ends_with("payments") { "payments-api" } else { "checkout-web" };
                let tls = format!("{app}-tls");
                match self.rng.below(10) {
                    0..3 => self.req(&who, ip, ua, "get", obj("certificates", Some(target), Some(app)), ""),
                    3..6 => self.req(&who, ip, ua, "get", obj("secrets", Some(target), Some(&tls)), ""),
                    6..8 => self.req(
                        &who,
                        ip,
                        ua,
                        "update",
                        sub(obj("certificates", Some(target), Some(app)), "status"),
                        "",
                    ),
                    _ => self.req(
                        &who,
                        ip,
                        ua,
                        "update",
                        obj("leases", Some("kube-system"), Some("cert-manager-controller")),
                        "",
                    ),
                }
            }
            Role::Quiet => unreachable!("quiet workloads are not picked"),
        };
        if r.code < 300 && self.rng.chance(2) {
            self.fail(&mut r, 429);
        }
        r
    }

    fn person(&mut self) -> Req {
        let weights: Vec<(u32, usize)> = PEOPLE.iter().enumerate().map(|(i, p)| (p.weight, i)).collect();
        let p = &PEOPLE[*self.rng.weighted(&weights)];
        let write = self.rng.chance(300);
        let ns = *self.rng.pick(if write { p.writes } else { p.reads });
        let ua = p.ua;
        let who = self.person_who(p, Some(ns));
        let a = self.pick_app(|a| a.ns == ns);
        let app = &self.apps[a];
        let (name, hash) = (app.name, app.hash.clone());
        let pod = app.pods[self.rng.below(app.pods.len() as u64) as usize].name.clone();
        let ip = p.ip;
        let mut r = if write {
            let mut action = *self.rng.weighted(&[
                (25, 0),
                (15, 1),
                (12, 2),
                (6, 3),
                (12, 4),
                (6, 5),
                (1, 6),
                (8, 7),
                (4, 8),
                (1, 9),
            ]);
            if self.apps[a].kind != Kind::Deployment && matches!(action, 0 | 1 | 3) {
                action = 2; // Deployment actions on a StatefulSet: apply its ConfigMap instead
            }
            match action {
                0 => {
                    // kubectl rollout restart
                    let mut r = self.req(
                        &who,
                        ip,
                        ua,
                        "patch",
                        obj("deployments", Some(ns), Some(name)),
                        "?fieldManager=kubectl-rollout",
                    );
                    r.level = "RequestResponse";
                    let stamp = format_micros(self.start);
                    r.request = Some(
                        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}),
                    );
                    let replicas = self.rng.range(1, 3);
                    r.response = Some(self.deployment(a, replicas));
                    r
                }
                1 => {
                    let replicas = self.rng.range(1, 4);
                    let mut r =
                        self.req(&who, ip, ua, "patch", sub(obj("deployments", Some(ns), Some(name)), "scale"), "");
                    r.level = "RequestResponse";
                    r.request = Some(json!({"spec": {"replicas": replicas}}));
                    r.response = Some(
                        json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": replicas}, "status": {"replicas": replicas, "selector": format!("app={name}")}}),
                    );
                    r
                }
                2 => self.req(
                    &who,
                    ip,
                    ua,
                    "patch",
                    obj("configmaps", Some(ns), Some(&format!("{name}-config"))),
                    "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
                ),
                3 => {
                    let mut r = self.req(
                        &who,
                        ip,
                        ua,
                        "create",
                        obj("deployments", Some(ns), Some(name)),
                        "?fieldManager=kubectl-create&fieldValidation=Strict",
                    );
                    r.level = "RequestResponse";
                    let replicas = self.rng.range(1, 2);
                    let body = self.deployment(a, replicas);
                    if self.rng.chance(300) {
                        self.fail(&mut r, 409);
                        r.failure = Some(("AlreadyExists", format!("deployments.apps \"{name}\" already exists")));
                    } else {
                        r.response = Some(body.clone());
                    }
                    r.request = Some(body);
                    r
                }
                4 => self.req(&who, ip, ua, "delete", obj("pods", Some(ns), Some(&pod)), ""),
                5 => {
                    let res = *self.rng.pick(&["configmaps", "jobs", "deployments", "secrets"]);
                    let target = if res == "secrets" { format!("{name}-scratch") } else { format!("{name}-tmp") };
                    let mut r = self.req(&who, ip, ua, "delete", obj(res, Some(ns), Some(&target)), "");
                    if self.rng.chance(300) {
                        self.fail(&mut r, 404);
                    }
                    r
                }
                6 => {
                    // kubectl exec
                    let commands: &[&[&str]] = if name.ends_with("-db") {
                        &[&["psql", "-U", "app", "-c", "select count(*) from orders"], &["bash"]]
                    } else {
                        &[&["/bin/sh"], &["env"], &["ls", "-la", "/app"], &["cat", "/etc/app/config.yaml"]]
                    };
                    let cmd = *self.rng.pick(commands);
                    let tty = cmd.len() == 1;
                    self.exec(&who, ip, ua, ns, &pod, name, cmd, tty)
                }
                7 => self.req(&who, ip, ua, "get", obj("secrets", Some(ns), Some(&format!("{name}-credentials"))), ""),
                8 => {
                    let s = format!("{name}-scratch");
                    self.req(
                        &who,
                        ip,
                        ua,
                        "create",
                        obj("secrets", Some(ns), Some(&s)),
                        "?fieldManager=kubectl-create&fieldValidation=Strict",
                    )
                }
                _ => {
                    let mut r = self.req(
                        &who,
                        ip,
                        ua,
                        "create",
                        sub(obj("pods", Some(ns), Some(&pod)), "portforward"),
                        "?ports=8080",
                    );
                    r.code = 101;
                    r.started = true;
                    r.latency = self.rng.range(20_000_000, 900_000_000);
                    r
                }
            }
        } else {
            match *self.rng.weighted(&[(25, 0), (20, 1), (10, 2), (8, 3), (10, 4), (6, 5), (3, 6), (4, 7), (3, 8)]) {
                0 => {
                    let mut r = self.req(&who, ip, ua, "get", obj("pods", Some(ns), Some(&pod)), "");
                    if self.rng.chance(80) {
                        let gone = format!("{name}-{hash}-{}", self.rng.suffix(5));
                        r.obj = Some(obj("pods", Some(ns), Some(&gone)));
                        r.uri = path("get", r.obj.as_ref().expect("set"));
                        self.fail(&mut r, 404);
                    }
                    r
                }
                1 => self.req(&who, ip, ua, "list", obj("pods", Some(ns), None), "?limit=500"),
                2 => {
                    let q = format!("?container={name}&tailLines=200");
                    self.req(&who, ip, ua, "get", sub(obj("pods", Some(ns), Some(&pod)), "log"), &q)
                }
                3 => {
                    let q = format!(
                        "?fieldSelector=involvedObject.name%3D{pod}%2CinvolvedObject.namespace%3D{ns}%2CinvolvedObject.uid%3D{}&limit=500",
                        self.rng.uuid()
                    );
                    self.req(&who, ip, ua, "list", obj("events", Some(ns), None), &q)
                }
                4 => self.req(&who, ip, ua, "get", obj("deployments", Some(ns), Some(name)), ""),
                5 => self.req(&who, ip, ua, "list", obj("deployments", Some(ns), None), "?limit=500"),
                6 => {
                    let q = self.watch_query("");
                    self.req(&who, ip, ua, "watch", obj("pods", Some(ns), None), &q)
                }
                7 => self.req(&who, ip, ua, "list", obj("services", Some(ns), None), "?limit=500"),
                _ => self.req(&who, ip, ua, "list", obj("nodes", None, None), "?limit=500"),
            }
        };
        if p.name == "erin@example.com" && self.rng.chance(150) {
            // Erin tries production now and then, and is refused.
            let target = *self.rng.pick(&["prod-payments", "prod-checkout"]);
            r = self.req(&who, ip, ua, "list", obj("pods", Some(target), None), "?limit=500");
            self.fail(&mut r, 403);
        }
        r
    }

    fn deployment(&mut self, app: usize, replicas: i64) -> Value {
        let spec = self.pod_spec(app, false);
        let a = &self.apps[app];
        json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": a.name, "namespace": a.ns, "labels": {"app": a.name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": a.name}},
                "template": {"metadata": {"labels": {"app": a.name}}, "spec": spec},
            },
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &mut self,
        who: &Who,
        ip: &str,
        ua: &str,
        ns: &str,
        pod: &str,
        container: &str,
        cmd: &[&str],
        tty: bool,
    ) -> Req {
        let mut q = String::from("?");
        for c in cmd {
            q.push_str("command=");
            for b in c.bytes() {
                match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => q.push(b as char),
                    b' ' => q.push('+'),
                    _ => q.push_str(&format!("%{b:02X}")),
                }
            }
            q.push('&');
        }
        q.push_str(&format!("container={container}&stderr=true&stdin={tty}&stdout=true&tty={tty}"));
        let mut r = self.req(who, ip, ua, "create", sub(obj("pods", Some(ns), Some(pod)), "exec"), &q);
        r.code = 101;
        r.received = true;
        r.started = true;
        r.latency = if tty { self.rng.range(30_000_000, 1_200_000_000) } else { self.rng.range(200_000, 3_000_000) };
        r
    }

    fn anonymous(&mut self) -> Req {
        let who = Who {
            name: "system:anonymous".into(),
            uid: None,
            groups: vec!["system:unauthenticated".into()],
            extra: Vec::new(),
            authz: "RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\"".into(),
        };
        if self.rng.chance(60) {
            // An internet scanner, refused.
            let ip = format!("192.0.2.{}", self.rng.range(1, 254));
            let mut r =
                self.req(&who, &ip, "Mozilla/5.0 zgrab/0.x", "list", obj("secrets", Some("kube-system"), None), "");
            self.fail(&mut r, 403);
            return r;
        }
        let probe = *self.rng.pick(&["/healthz", "/livez", "/readyz", "/readyz?verbose", "/version"]);
        let ip = *self.rng.pick(&["10.0.0.2", "10.0.0.3"]);
        let ua = if self.rng.chance(500) { "ELB-HealthChecker/2.0" } else { "kube-probe/1.30" };
        let mut r = self.req(&who, ip, ua, "get", obj("pods", None, None), "");
        r.obj = None;
        r.uri = probe.to_string();
        r.latency = self.rng.range(200, 3_000);
        r
    }

    fn expired_token(&mut self) -> Option<Req> {
        if self.expired_tokens >= 12 {
            return None;
        }
        self.expired_tokens += 1;
        let ip = format!("10.244.{}.{}", self.rng.below(NODES as u64), self.rng.range(2, 250));
        let mut r = self.failed_auth(
            &ip,
            "OpenAPI-Generator/28.1.0/python",
            "get",
            obj("configmaps", Some("monitoring"), Some("grafana-config")),
        );
        r.latency = self.rng.range(300, 2_000);
        Some(r)
    }

    /// A request whose credentials were refused: logged once, at ResponseStarted, with no user.
    fn failed_auth(&mut self, ip: &str, ua: &str, verb: &'static str, o: Obj) -> Req {
        let mut r = self.req(
            &Who { name: String::new(), uid: None, groups: Vec::new(), extra: Vec::new(), authz: String::new() },
            ip,
            ua,
            verb,
            o,
            if verb == "list" { "?limit=500" } else { "" },
        );
        r.user = None;
        r.authz = None;
        r.code = 401;
        r.failure = Some(("Unauthorized", "Unauthorized".into()));
        r.received = false;
        r.started = true;
        r.complete = false;
        r
    }

    // ---- incidents --------------------------------------------------------------------------

    fn incidents(&mut self) -> Vec<Req> {
        let mut out = Vec::new();
        let attacker = "203.0.113.45";

        // A burst of failed authentications from one address: 180 in six minutes.
        let t0 = self.at(300);
        let targets: [(&'static str, &'static str, Option<&str>, Option<&str>); 5] = [
            ("list", "secrets", Some("kube-system"), None),
            ("list", "secrets", None, None),
            ("list", "pods", None, None),
            ("get", "namespaces", None, Some("kube-system")),
            ("list", "clusterrolebindings", None, None),
        ];
        for i in 0..180 {
            let (verb, res, ns, name) = targets[i % targets.len()];
            let mut r = self.failed_auth(attacker, "python-requests/2.31.0", verb, obj(res, ns, name));
            r.t = t0 + i as i64 * 2_000_000 + self.rng.range(0, 900_000);
            r.latency = self.rng.range(300, 1_500);
            out.push(r);
        }

        // Then the same address, anonymous: a RoleBinding lets system:anonymous view prod-checkout.
        let anon = Who {
            name: "system:anonymous".into(),
            uid: None,
            groups: vec!["system:unauthenticated".into()],
            extra: Vec::new(),
            authz: "RBAC: allowed by RoleBinding \"debug-public-read/prod-checkout\" of ClusterRole \"view\" to User \"system:anonymous\"".into(),
        };
        let t = self.at(330);
        let curl = "curl/8.5.0";
        let mut r = self.req(&anon, attacker, curl, "list", obj("pods", Some("prod-checkout"), None), "?limit=500");
        r.t = t;
        out.push(r);
        let mut r = self.req(&anon, attacker, curl, "list", obj("secrets", Some("prod-checkout"), None), "?limit=500");
        self.fail(&mut r, 403);
        r.t = t + 4_100_000;
        out.push(r);
        let mut r = self.req(
            &anon,
            attacker,
            curl,
            "get",
            obj("configmaps", Some("prod-checkout"), Some("checkout-api-config")),
            "",
        );
        r.t = t + 9_700_000;
        out.push(r);

        // bob opens a shell in a production pod and greps the environment for database settings.
        let bob = self.person_who(&PEOPLE[1], Some("prod-payments"));
        let bob = Who {
            authz: "RBAC: allowed by RoleBinding \"team-payments-oncall/prod-payments\" of ClusterRole \"edit\" to Group \"oidc:team-payments\"".into(),
            ..bob
        };
        let pod = self.apps[0].pods[0].name.clone();
        let mut r = self.exec(
            &bob,
            PEOPLE[1].ip,
            PEOPLE[1].ua,
            "prod-payments",
            &pod,
            "payments-api",
            &["/bin/sh", "-c", "env | grep -i db_"],
            false,
        );
        r.t = self.at(450);
        r.latency = 1_840_000;
        out.push(r);

        // A contractor lists and reads Secrets in both production namespaces.
        let mallory = Who {
            name: "mallory@contractor.example.net".into(),
            uid: None,
            groups: vec!["oidc:contractors".into(), "system:authenticated".into()],
            extra: Vec::new(),
            authz: "RBAC: allowed by ClusterRoleBinding \"contractors-read\" of ClusterRole \"secret-reader\" to Group \"oidc:contractors\"".into(),
        };
        let (mip, mua) = ("198.51.100.23", "kubectl/v1.29.1 (linux/amd64) kubernetes/bc401b9");
        let t = self.at(520);
        for (k, (verb, ns, name)) in [
            ("list", "prod-payments", None),
            ("get", "prod-payments", Some("payments-db-credentials")),
            ("get", "prod-payments", Some("payments-api-tls")),
            ("get", "prod-checkout", Some("checkout-api-credentials")),
        ]
        .into_iter()
        .enumerate()
        {
            let q = if verb == "list" { "?limit=500" } else { "" };
            let mut r = self.req(&mallory, mip, mua, verb, obj("secrets", Some(ns), name), q);
            r.t = t + k as i64 * 7_300_000;
            out.push(r);
        }

        // alice makes dave cluster-admin ("just for today").
        let alice = self.person_who(&PEOPLE[0], None);
        let t = self.at(700);
        let binding = json!({
            "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "dave-cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave@example.com"}],
        });
        let mut r = self
            .req(
                &alice,
                PEOPLE[0].ip,
                PEOPLE[0].ua,
                "create",
                obj("clusterrolebindings", None, Some("dave-cluster-admin")),
                "?fieldManager=kubectl-create&fieldValidation=Strict",
            )
            .with_received();
        r.level = "RequestResponse";
        let mut resp = binding.clone();
        resp["metadata"]["uid"] = json!(self.rng.uuid());
        resp["metadata"]["resourceVersion"] = json!(self.rv().to_string());
        resp["metadata"]["creationTimestamp"] = json!(format_micros(t / 1_000_000 * 1_000_000).replace(".000000", ""));
        r.request = Some(binding);
        r.response = Some(resp);
        r.t = t;
        out.push(r);

        // dave starts a privileged pod with the host's namespaces and root filesystem, and uses it.
        let dave = Who {
            authz: "RBAC: allowed by ClusterRoleBinding \"dave-cluster-admin\" of ClusterRole \"cluster-admin\" to User \"dave@example.com\"".into(),
            ..self.person_who(&PEOPLE[3], None)
        };
        let t = self.at(740);
        let pod = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "node-debugger", "namespace": "default"},
            "spec": {
                "containers": [{
                    "name": "debug", "image": "busybox:1.36", "command": ["sleep", "infinity"],
                    "securityContext": {"privileged": true},
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                }],
                "hostNetwork": true, "hostPID": true, "nodeName": "node-4",
                "volumes": [{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}],
            },
        });
        let mut r = self
            .req(
                &dave,
                PEOPLE[3].ip,
                PEOPLE[3].ua,
                "create",
                obj("pods", Some("default"), Some("node-debugger")),
                "?fieldManager=kubectl-run",
            )
            .with_received();
        r.level = "RequestResponse";
        r.annotations.push(("pod-security.kubernetes.io/enforce-policy", "privileged:latest".into()));
        r.request = Some(pod.clone());
        r.response = Some(pod);
        r.t = t;
        out.push(r);
        let mut r = self.exec(
            &dave,
            PEOPLE[3].ip,
            PEOPLE[3].ua,
            "default",
            "node-debugger",
            "debug",
            &["chroot", "/host", "/bin/bash"],
            true,
        );
        r.t = t + 41_000_000;
        r.latency = 612_000_000;
        out.push(r);

        // carol deletes the payments Deployment and its database Secret in production; the garbage
        // collector then deletes the ReplicaSet and its pods.
        let carol = self.person_who(&PEOPLE[2], Some("prod-payments"));
        let t = self.at(820);
        let mut r = self.req(
            &carol,
            PEOPLE[2].ip,
            PEOPLE[2].ua,
            "delete",
            obj("deployments", Some("prod-payments"), Some("payments-api")),
            "",
        );
        r.t = t;
        r.latency = 23_400;
        let carol_delete = out.len();
        out.push(r);
        let mut r = self.req(
            &carol,
            PEOPLE[2].ip,
            PEOPLE[2].ua,
            "delete",
            obj("secrets", Some("prod-payments"), Some("payments-db-credentials")),
            "",
        );
        r.t = t + 19_000_000;
        out.push(r);
        let (gc, gc_ua) = self.controller("generic-garbage-collector");
        let rs = format!("payments-api-{}", self.apps[0].hash);
        let mut r =
            self.req(&gc, CONTROL_PLANE_IP, &gc_ua, "delete", obj("replicasets", Some("prod-payments"), Some(&rs)), "");
        r.t = t + 310_000;
        out.push(r);
        let pods: Vec<String> = self.apps[0].pods.iter().map(|p| p.name.clone()).collect();
        for (k, pod) in pods.iter().enumerate() {
            let mut r =
                self.req(&gc, CONTROL_PLANE_IP, &gc_ua, "delete", obj("pods", Some("prod-payments"), Some(pod)), "");
            r.t = t + 650_000 + k as i64 * 41_000;
            out.push(r);
        }

        for r in &mut out {
            // Incidents are logged at the stages chosen above, not at random ones: RequestReceived
            // for execs and the RequestResponse-level writes only …
            if r.code != 101 && r.level != "RequestResponse" {
                r.received = false;
            }
        }
        // … and for carol's Deployment delete.
        out[carol_delete].received = true;
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Writing the events, by hand: the fields in the order the API server writes them, strings
// escaped as JSON (serde_json's serializer is several times slower in unoptimised builds).

/// Appends `s` as a JSON string.
fn q(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] >= 0x20 && b[i] != b'"' && b[i] != b'\\' {
        i += 1;
    }
    if i == b.len() {
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to memory cannot fail");
    }
}

/// Appends `,"key":` and `value` as a JSON string.
fn kv(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b',');
    q(out, key);
    out.push(b':');
    q(out, value);
}

fn line(out: &mut Vec<u8>, r: &Req, stage: &str, at: i64) {
    let received = stage == "RequestReceived";
    out.extend_from_slice(br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1""#);
    kv(out, "level", r.level);
    kv(out, "auditID", &r.audit_id);
    kv(out, "stage", stage);
    kv(out, "requestURI", &r.uri);
    kv(out, "verb", r.verb);
    out.extend_from_slice(br#","user":{"#);
    if let Some(u) = &r.user {
        out.extend_from_slice(br#""username":"#);
        q(out, &u.name);
        if let Some(uid) = &u.uid {
            kv(out, "uid", uid);
        }
        out.extend_from_slice(br#","groups":["#);
        for (i, g) in u.groups.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            q(out, g);
        }
        out.push(b']');
        if !u.extra.is_empty() {
            out.extend_from_slice(br#","extra":{"#);
            for (i, (k, v)) in u.extra.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                q(out, k);
                out.extend_from_slice(b":[");
                q(out, v);
                out.push(b']');
            }
            out.push(b'}');
        }
    }
    out.extend_from_slice(br#"},"sourceIPs":["#);
    for (i, ip) in r.ips.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        q(out, ip);
    }
    out.push(b']');
    kv(out, "userAgent", &r.ua);
    if let Some(o) = &r.obj {
        out.extend_from_slice(br#","objectRef":{"resource":"#);
        q(out, o.resource);
        if let Some(ns) = &o.ns {
            kv(out, "namespace", ns);
        }
        if let Some(name) = &o.name {
            kv(out, "name", name);
        }
        if !o.group.is_empty() {
            kv(out, "apiGroup", o.group);
        }
        kv(out, "apiVersion", o.version);
        if let Some(s) = o.sub {
            kv(out, "subresource", s);
        }
        out.push(b'}');
    }
    if !received {
        out.extend_from_slice(br#","responseStatus":{"metadata":{}"#);
        if let Some((reason, message)) = &r.failure {
            kv(out, "status", "Failure");
            kv(out, "message", message);
            kv(out, "reason", reason);
        }
        out.extend_from_slice(format!(r#","code":{}}}"#, r.code).as_bytes());
        let bodies = [
            ("requestObject", r.request.as_ref()),
            ("responseObject", r.response.as_ref().filter(|_| stage == "ResponseComplete")),
        ];
        for (key, body) in bodies {
            if let Some(body) = body {
                out.push(b',');
                q(out, key);
                out.push(b':');
                serde_json::to_writer(&mut *out, body).expect("writing to memory cannot fail");
            }
        }
    }
    kv(out, "requestReceivedTimestamp", &format_micros(r.t));
    kv(out, "stageTimestamp", &format_micros(at));
    if !received && (r.authz.is_some() || !r.annotations.is_empty()) {
        // Keys in order, as Go writes a map.
        out.extend_from_slice(br#","annotations":{"#);
        let mut first = true;
        let authz = r.authz.iter().flat_map(|(d, why)| {
            [("authorization.k8s.io/decision", *d), ("authorization.k8s.io/reason", why.as_str())]
        });
        for (k, v) in authz.chain(r.annotations.iter().map(|(k, v)| (*k, v.as_str()))) {
            if !first {
                out.push(b',');
            }
            first = false;
            q(out, k);
            out.push(b':');
            q(out, v);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

/// Writes every stage of every request, ordered by when the API server would log it.
fn emit(rng: &mut Rng, reqs: &[Req]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(reqs.len() * 1_200);
    // (stageTimestamp, start, end) of each line in `buf`.
    let mut lines: Vec<(i64, usize, usize)> = Vec::with_capacity(reqs.len() * 3 / 2);
    for r in reqs {
        let started_at = r.t + r.latency.min(rng.range(400, 4_000));
        let stages = [
            (r.received, "RequestReceived", r.t),
            (r.started, "ResponseStarted", if r.complete { started_at } else { r.t + r.latency }),
            (r.complete, "ResponseComplete", r.t + r.latency),
        ];
        for (on, stage, at) in stages {
            if on {
                let start = buf.len();
                line(&mut buf, r, stage, at);
                lines.push((at, start, buf.len()));
            }
        }
    }
    lines.sort_by_key(|l| l.0);
    let mut log = Vec::with_capacity(buf.len());
    for (_, s, e) in lines {
        log.extend_from_slice(&buf[s..e]);
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_numbers_are_fixed() {
        let mut r = Rng::new(42);
        let v: Vec<u64> = (0..3).map(|_| r.below(1000)).collect();
        let mut r2 = Rng::new(42);
        assert_eq!(v, (0..3).map(|_| r2.below(1000)).collect::<Vec<_>>());
        let id = Rng::new(1).uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn paths_look_like_the_api_servers() {
        assert_eq!(path("get", &obj("pods", Some("a"), Some("p"))), "/api/v1/namespaces/a/pods/p");
        assert_eq!(path("create", &obj("deployments", Some("a"), Some("d"))), "/apis/apps/v1/namespaces/a/deployments");
        assert_eq!(path("create", &sub(obj("pods", Some("a"), Some("p")), "exec")), "/api/v1/namespaces/a/pods/p/exec");
        assert_eq!(
            path("list", &obj("clusterrolebindings", Some("x"), None)),
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        );
    }

    #[test]
    fn trimming_keeps_the_last_stage() {
        let mut g = Gen::new(&DemoOptions::default());
        let who = g.person_who(&PEOPLE[0], None);
        let mut r = g.req(&who, "1.2.3.4", "x", "watch", obj("pods", None, None), "");
        r.received = true;
        r.started = true;
        r.complete = true;
        r.trim_to(1);
        assert_eq!((r.received, r.started, r.complete), (false, false, true));
    }
}
