//! Fields computed once from the others: the event time, latency, the kind of user, the command of
//! an exec, and the risky settings of a pod spec carried in a request body.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde_json::Value;

use crate::event::Event;
use crate::time::{Micros, parse_rfc3339};

/// What kind of identity made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserKind {
    Anonymous,
    Node,
    ServiceAccount,
    System,
    Human,
}

impl UserKind {
    pub const ALL: [UserKind; 5] = [Self::Anonymous, Self::Node, Self::ServiceAccount, Self::System, Self::Human];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Node => "node",
            Self::ServiceAccount => "serviceaccount",
            Self::System => "system",
            Self::Human => "human",
        }
    }

    /// Classifies a username (and its groups).
    pub fn of(username: &str, groups: &[Cow<'_, str>]) -> UserKind {
        let in_group = |g: &str| groups.iter().any(|x| x == g);
        if username == "system:anonymous" || in_group("system:unauthenticated") {
            UserKind::Anonymous
        } else if username.starts_with("system:node:") || in_group("system:nodes") {
            UserKind::Node
        } else if username.starts_with("system:serviceaccount:") || in_group("system:serviceaccounts") {
            UserKind::ServiceAccount
        } else if username.starts_with("system:") || username.starts_with("eks:") {
            UserKind::System
        } else {
            UserKind::Human
        }
    }
}

/// Pod-spec settings found in a request body (a Pod, or a workload's pod template).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFlags {
    pub privileged: bool,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    /// `hostPath` volume paths.
    pub host_paths: Vec<String>,
}

/// The derived fields of an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    /// `requestReceivedTimestamp`, else `stageTimestamp`, else v1beta1's `timestamp`, else
    /// `metadata.creationTimestamp`: old logs lack the first two.
    pub time: Option<Micros>,
    /// `stageTimestamp − requestReceivedTimestamp`.
    pub latency_us: Option<i64>,
    pub user_kind: Option<UserKind>,
    /// The command of a `pods/exec` request, its `command=` parameters joined by spaces.
    pub exec_command: Option<String>,
    /// Present when the request body holds a pod spec.
    pub pod: Option<PodFlags>,
}

impl Derived {
    pub fn compute(ev: &Event<'_>) -> Derived {
        let time = ev.request_received.or(ev.stage_timestamp).or_else(|| legacy_time(ev));
        let latency_us = match (ev.request_received, ev.stage_timestamp) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let user_kind = ev.user.as_ref().and_then(|u| {
            let name = u.username.as_deref()?;
            Some(UserKind::of(name, u.groups.as_deref().unwrap_or(&[])))
        });
        let subresource = ev.object_ref.as_ref().and_then(|o| o.subresource.as_deref());
        let exec_command = match (subresource, ev.request_uri.as_deref()) {
            (Some("exec"), Some(uri)) => exec_command(uri),
            _ => None,
        };
        let pod = ev.request_object.as_deref().and_then(pod_flags);
        Derived { time, latency_us, user_kind, exec_command, pod }
    }
}

fn legacy_time(ev: &Event<'_>) -> Option<Micros> {
    let u = ev.unmapped.as_ref()?;
    let t = u.get("timestamp").or_else(|| u.get("metadata")?.get("creationTimestamp"))?;
    Some(parse_rfc3339(t.as_str()?)?.micros)
}

/// `command=` parameters of an exec URI, decoded and joined by spaces.
pub fn exec_command(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let parts: Vec<String> = query.split('&').filter_map(|p| p.strip_prefix("command=")).map(percent_decode).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Decodes `%XX` escapes and `+` (form encoding) in a URI query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Finds the pod spec in a request body and reads its risky settings.
fn pod_flags(text: &str) -> Option<PodFlags> {
    // Cheap test first: only bodies with containers can hold a pod spec.
    static CONTAINERS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"containers\""));
    CONTAINERS.find(text.as_bytes())?;
    let v: Value = serde_json::from_str(text).ok()?;
    let spec = pod_spec(&v)?;
    let t = |k: &str| spec.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut flags = PodFlags {
        host_network: t("hostNetwork"),
        host_pid: t("hostPID"),
        host_ipc: t("hostIPC"),
        ..PodFlags::default()
    };
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let sc = c.get("securityContext");
            if sc.and_then(|s| s.get("privileged")).and_then(Value::as_bool) == Some(true) {
                flags.privileged = true;
            }
        }
    }
    for vol in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        if let Some(p) = vol.get("hostPath").and_then(|h| h.get("path")).and_then(Value::as_str) {
            flags.host_paths.push(p.to_string());
        }
    }
    Some(flags)
}

fn pod_spec(v: &Value) -> Option<&Value> {
    let spec = v.get("spec")?;
    if spec.get("containers").is_some() {
        return Some(spec); // a Pod
    }
    fn template(s: &Value) -> Option<&Value> {
        s.get("template")?.get("spec").filter(|s| s.get("containers").is_some())
    }
    template(spec) // Deployment, DaemonSet, StatefulSet, ReplicaSet, Job
        .or_else(|| template(spec.get("jobTemplate")?.get("spec")?)) // CronJob
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_kinds() {
        let g = |v: &[&'static str]| v.iter().map(|s| Cow::Borrowed(*s)).collect::<Vec<_>>();
        assert_eq!(UserKind::of("system:anonymous", &[]), UserKind::Anonymous);
        assert_eq!(UserKind::of("system:node:ip-1", &[]), UserKind::Node);
        assert_eq!(UserKind::of("system:serviceaccount:ci:deployer", &[]), UserKind::ServiceAccount);
        assert_eq!(UserKind::of("system:kube-scheduler", &[]), UserKind::System);
        assert_eq!(UserKind::of("alice@example.com", &g(&["system:authenticated"])), UserKind::Human);
        assert_eq!(UserKind::of("nodeclient", &g(&["system:nodes"])), UserKind::Node);
    }

    #[test]
    fn exec_commands() {
        assert_eq!(
            exec_command(
                "/api/v1/namespaces/p/pods/x/exec?command=%2Fbin%2Fsh&command=-c&command=cat+%2Fetc%2Fshadow&stdin=true"
            )
            .as_deref(),
            Some("/bin/sh -c cat /etc/shadow")
        );
        assert_eq!(exec_command("/api/v1/namespaces/p/pods/x/exec?stdin=true"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn pod_specs_in_workloads() {
        let pod = r#"{"kind":"Pod","spec":{"hostNetwork":true,"containers":[{"name":"a","securityContext":{"privileged":true}}],"volumes":[{"name":"h","hostPath":{"path":"/etc"}}]}}"#;
        let f = pod_flags(pod).unwrap();
        assert!(f.privileged && f.host_network && !f.host_pid);
        assert_eq!(f.host_paths, vec!["/etc"]);
        let cron = r#"{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"hostPID":true,"containers":[{"name":"a"}]}}}}}}"#;
        assert!(pod_flags(cron).unwrap().host_pid);
        assert_eq!(pod_flags(r#"{"kind":"ConfigMap","data":{"containers":"x"}}"#), None);
    }
}
