//! `kaq detect`: the built-in pack on gen-audit logs (every injected incident fires its rule with
//! its auditIDs; the incident rules stay quiet on clean logs), on the Falco trace files, and
//! tuning from the user's own files; errors, exit codes, `--list`, `--explain`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::common::{gen_audit, kaq, shared, stderr};

/// Runs `kaq detect ARGS` with an empty configuration directory (or `config`).
fn detect(args: &[&str], config: &Path) -> Output {
    kaq().arg("detect").args(args).env("KAQ_CONFIG_DIR", config).env_remove("KAQ_STORE").output().expect("kaq runs")
}

fn alerts(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ids(a: &Value) -> Vec<String> {
    a["auditIDs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn of<'a>(all: &'a [Value], rule: &str) -> Vec<&'a Value> {
    all.iter().filter(|a| a["rule"] == rule).collect()
}

/// The alert of `rule` whose evidence holds every one of `want`; panics naming what it found.
fn holding<'a>(all: &'a [Value], rule: &str, want: &[&str]) -> &'a Value {
    of(all, rule)
        .into_iter()
        .find(|a| {
            let got: BTreeSet<String> = ids(a).into_iter().collect();
            want.iter().all(|w| got.contains(*w))
        })
        .unwrap_or_else(|| panic!("no `{rule}` alert holds {want:?}; its alerts: {:?}", of(all, rule)))
}

/// The rules that gen-audit's incidents are for; none of them may fire on a clean log.
const INCIDENT_RULES: &[&str] = &[
    "unauthorized-burst",
    "prod-delete",
    "secret-read-new-identity",
    "secret-list-cluster",
    "exec-into-pod",
    "request-spike",
    "privileged-pod",
    "cluster-admin-binding",
    "anonymous-allowed",
    "impersonation",
    "slow-call",
    "forged-audit-id",
    "rbac-then-workload",
    "secret-burst",
];

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("truth: no {k} in {v}"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect()
}

fn micros(t: &str) -> i64 {
    kaq_schema::time::parse_rfc3339(t).unwrap().micros
}

/// Every incident of gen-audit's truth fires its rule with its auditIDs.
fn check_truth(all: &[Value], truth: &Value) {
    let group = |a: &Value, k: &str| a["group"][k].as_str().unwrap_or("").to_string();
    for (incident, t) in truth.as_object().unwrap() {
        match incident.as_str() {
            "brute_force" => {
                let a = of(all, "unauthorized-burst")
                    .into_iter()
                    .find(|a| group(a, "client_ip") == s(t, "sourceIP"))
                    .unwrap_or_else(|| panic!("no unauthorized-burst for {t}"));
                assert_eq!(a["count"], t["count"], "{a}");
                assert_eq!(micros(a["first"].as_str().unwrap()), micros(s(t, "from")), "{a}");
            }
            "prod_deletions" => {
                for d in t.as_array().unwrap() {
                    let a = holding(all, "prod-delete", &[s(d, "auditID")]);
                    assert_eq!(group(a, "user"), s(d, "user"));
                }
            }
            "secret_access" => {
                let a = holding(all, "secret-read-new-identity", &strs(&t["auditIDs"]));
                assert_eq!(group(a, "user"), s(t, "user"));
                assert_eq!(a["count"], t["events"], "{a}");
            }
            "exec" | "privileged" | "cluster_admin" | "impersonation" => {
                let rule = match incident.as_str() {
                    "exec" => "exec-into-pod",
                    "privileged" => "privileged-pod",
                    "cluster_admin" => "cluster-admin-binding",
                    _ => "impersonation",
                };
                let a = holding(all, rule, &[s(t, "auditID")]);
                assert_eq!(group(a, "user"), s(t, "user"));
            }
            "anonymous_allowed" => {
                let a = holding(all, "anonymous-allowed", &[s(t, "auditID")]);
                assert_eq!(group(a, "client_ip"), s(t, "sourceIP"));
            }
            "spike" => {
                let from = micros(s(t, "from"));
                let to = from + t["seconds"].as_i64().unwrap() * 1_000_000;
                let a = of(all, "request-spike")
                    .into_iter()
                    .find(|a| group(a, "user") == s(t, "user"))
                    .unwrap_or_else(|| panic!("no request-spike for {t}"));
                let (first, last) = (micros(a["first"].as_str().unwrap()), micros(a["last"].as_str().unwrap()));
                // The evidence is the spiking minute(s), inside the burst's minutes.
                assert!(first >= from - 60_000_000 && last <= to + 60_000_000, "{a} vs {t}");
                assert!(a["count"].as_u64().unwrap() >= 100, "{a}");
            }
            "slow_calls" => {
                holding(all, "slow-call", &strs(&t["auditIDs"]));
            }
            "forged_audit_id" => {
                let a = holding(all, "forged-audit-id", &[s(t, "auditID")]);
                assert_eq!(group(a, "user"), s(t, "user"));
                // Both requests under the one auditID are evidence.
                assert_eq!(ids(a).iter().filter(|i| *i == s(t, "auditID")).count(), 2, "{a}");
                // The hidden delete in production is found as what it is, too.
                holding(all, "prod-delete", &[s(t, "auditID")]);
            }
            "rbac_then_workload" => {
                let a = holding(all, "rbac-then-workload", &strs(&t["auditIDs"]));
                assert_eq!(group(a, "user"), s(t, "user"));
            }
            "secret_burst" => {
                let a = holding(all, "secret-burst", &strs(&t["auditIDs"]));
                assert_eq!(group(a, "user"), s(t, "user"));
            }
            // Redaction, not a detection (tests/it/secrets.rs).
            "secret_payload" => {}
            "lines" | "corrupted_lines" => {}
            other => panic!("gen-audit injects `{other}`, which this test does not know: map it to its rule"),
        }
    }
}

#[test]
fn every_injected_incident_fires_its_rule_with_its_audit_ids() {
    for (seed, events, extra) in [("7", "6000", &["--stages"][..]), ("42", "15000", &[][..])] {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("audit.log");
        let truth = tmp.path().join("truth.json");
        let mut args =
            vec!["--seed", seed, "--events", events, "--extra-incidents", "--truth", truth.to_str().unwrap()];
        args.extend_from_slice(extra);
        if gen_audit(&args, &log).is_none() {
            return;
        }
        let o = detect(&[log.to_str().unwrap(), "--format", "json"], tmp.path());
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        let all = alerts(&o);
        let truth: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
        check_truth(&all, &truth);
        // One burst is one alert.
        assert_eq!(of(&all, "unauthorized-burst").len(), 1);
        assert_eq!(of(&all, "secret-burst").len(), 1);
        for a in &all {
            assert!(a["count"].as_u64().unwrap() as usize >= ids(a).len(), "{a}");
            assert!(a["first"].as_str().unwrap() <= a["last"].as_str().unwrap(), "{a}");
        }
    }
}

#[test]
fn the_incident_rules_stay_quiet_on_clean_traffic() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("clean.log");
    if gen_audit(&["--seed", "9", "--events", "12000", "--no-incidents", "--stages"], &log).is_none() {
        return;
    }
    let mut args = vec![log.to_str().unwrap(), "--format", "json"];
    for r in INCIDENT_RULES {
        args.extend(["--rule", r]);
    }
    let o = detect(&args, tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(o.stdout.is_empty());
}

#[test]
fn the_falco_trace_files_fire_the_matching_rules() {
    let Some(shared) = shared("corpus/falco-trace-files") else { return };
    let dir = shared.join("corpus/falco-trace-files");
    let tmp = tempfile::tempdir().unwrap();
    let o = detect(&[dir.to_str().unwrap(), "--format", "json"], tmp.path());
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let all = alerts(&o);
    let id_of = |f: &str| -> Vec<String> {
        crate::common::reference_events(&dir.join(f))
            .iter()
            .map(|e| e["auditID"].as_str().unwrap().to_string())
            .collect()
    };
    let fired = |rule: &str, file: &str| {
        let want = id_of(file);
        let got: BTreeSet<String> = of(&all, rule).iter().flat_map(|a| ids(a)).collect();
        want.iter().all(|w| got.contains(w))
    };
    for (rule, yes, no) in [
        (
            "privileged-pod",
            &["create_nginx_pod_privileged.json", "create_nginx_pod_privileged_2nd_container.json"][..],
            &["create_nginx_pod_unprivileged.json"][..],
        ),
        (
            "sensitive-hostpath",
            &["create_nginx_pod_sensitive_mount.json", "create_nginx_pod_sensitive_mount_2nd_container.json"],
            &["create_nginx_pod_unsensitive_mount.json"],
        ),
        ("host-network-pod", &["create_nginx_pod_hostnetwork.json"], &["create_nginx_pod_nohostnetwork.json"]),
        ("cluster-admin-binding", &["attach_cluster_admin_role.json"], &["create_clusterrolebinding.json"]),
        ("exec-into-pod", &["exec_pod.json", "attach_pod.json"], &[]),
        ("anonymous-allowed", &["anonymous_creates_namespace_foo.json"], &[]),
        (
            "wildcard-role",
            &["create_cluster_role_wildcard_resources.json", "create_cluster_role_wildcard_verbs.json"],
            &["create_clusterrole.json"],
        ),
        ("escalation-verbs-role", &["create_cluster_role_pod_exec.json"], &[]),
        ("nodeport-service", &["create_nginx_service_nodeport.json"], &["create_nginx_service_nonodeport.json"]),
        ("secret-deleted-or-modified", &["delete_secret.json"], &[]),
        (
            "configmap-credentials",
            &["create_configmap_sensitive_values.json"],
            &["create_configmap_no_sensitive_values.json"],
        ),
        (
            "system-role-modified",
            &["modify_cluster_role_node_problem_detector.json", "delete_cluster_role_kube_aggregator.json"],
            &[],
        ),
        ("namespace-deleted", &["delete_namespace_foo.json"], &[]),
    ] {
        for f in yes {
            assert!(fired(rule, f), "`{rule}` does not fire on {f}: {:?}", of(&all, rule));
        }
        for f in no {
            assert!(!fired(rule, f), "`{rule}` fires on {f}");
        }
    }
}

/// A small log: alice and bob exec into pods in dev and prod, carol deletes in prod.
fn small_log(dir: &Path) -> std::path::PathBuf {
    let ev = |id: &str, t: &str, user: &str, verb: &str, resource: &str, sub: Option<&str>, ns: &str| {
        let mut o = json!({"resource": resource, "namespace": ns, "name": "p"});
        if let Some(s) = sub {
            o["subresource"] = json!(s);
        }
        json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
               "stage": "ResponseComplete", "requestURI": format!("/api/v1/namespaces/{ns}/{resource}/p"),
               "verb": verb, "user": {"username": user}, "sourceIPs": ["10.0.0.9"],
               "objectRef": o, "responseStatus": {"code": 200},
               "requestReceivedTimestamp": t, "stageTimestamp": t})
    };
    let lines = [
        ev("e1", "2026-11-20T10:00:00Z", "alice@example.com", "create", "pods", Some("exec"), "dev"),
        ev("e2", "2026-11-20T10:01:00Z", "bob@example.com", "create", "pods", Some("exec"), "prod"),
        ev("e3", "2026-11-20T12:00:00Z", "alice@example.com", "create", "pods", Some("exec"), "prod"),
        ev("d1", "2026-11-20T12:30:00Z", "carol@example.com", "delete", "configmaps", None, "prod"),
        ev("g1", "2026-11-20T12:31:00Z", "carol@example.com", "get", "configmaps", None, "prod"),
    ];
    let p = dir.join("small.log");
    std::fs::write(&p, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    p
}

fn by_rule(all: &[Value]) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut m: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for a in all {
        m.entry(a["rule"].as_str().unwrap().to_string()).or_default().push(ids(a));
    }
    m
}

#[test]
fn the_user_file_tunes_the_pack_without_copying_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = small_log(tmp.path());
    let log = log.to_str().unwrap();
    let base = alerts(&detect(&[log, "--format", "json"], tmp.path()));
    let m = by_rule(&base);
    assert_eq!(m["exec-into-pod"], [vec!["e1"], vec!["e2"], vec!["e3"]]);
    assert_eq!(m["prod-delete"], [vec!["d1"]]);

    // $KAQ_CONFIG_DIR/rules.toml: an exception (alice in dev only), a changed severity, a new
    // rule from a list and a named query, and a disabled rule.
    let config = tmp.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("rules.toml"),
        r#"disable = ["prod-delete"]

[lists]
mine = ["prod", "staging-*"]

[queries]
cm-reads = "resource:configmaps verb:get ns:$mine"

[[rule]]
id = "exec-into-pod"
severity = "critical"

[[rule]]
id = "configmap-read"
severity = "info"
description = "reads of ConfigMaps in my namespaces"
query = "@cm-reads"
group_by = ["user"]

[[exception]]
rule = "exec-into-pod"
user = ["alice@example.com"]
ns = "dev"
"#,
    )
    .unwrap();
    let o = detect(&[log, "--format", "json"], &config);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let tuned = alerts(&o);
    let m = by_rule(&tuned);
    assert_eq!(m["exec-into-pod"], [vec!["e2"], vec!["e3"]]);
    assert!(of(&tuned, "exec-into-pod").iter().all(|a| a["severity"] == "critical"));
    assert!(!m.contains_key("prod-delete"));
    assert_eq!(m["configmap-read"], [vec!["g1"]]);
    // --rules files come after it: here one turns prod-delete back on.
    let extra = tmp.path().join("more.toml");
    std::fs::write(&extra, "[[rule]]\nid = \"prod-delete\"\nenabled = true\n").unwrap();
    let m = by_rule(&alerts(&detect(&[log, "--format", "json", "--rules", extra.to_str().unwrap()], &config)));
    assert_eq!(m["prod-delete"], [vec!["d1"]]);
    // --list says which rules the user changed.
    let list = String::from_utf8_lossy(&detect(&["--list"], &config).stdout).into_owned();
    assert!(list.lines().any(|l| l.starts_with("exec-into-pod ") && l.contains("tuned")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("prod-delete ") && l.contains("disabled")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("configmap-read ") && l.contains("user")), "{list}");
}

#[test]
fn bad_rule_files_name_the_file_the_rule_and_the_spot() {
    let tmp = tempfile::tempdir().unwrap();
    let log = small_log(tmp.path());
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "\n[[rule]]\nid = \"mine\"\nseverity = \"low\"\nquery = \"verb:get usr:alice\"\n").unwrap();
    let o = detect(&[log.to_str().unwrap(), "--rules", bad.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:5: rule `mine`: query:", bad.display())), "{err}");
    assert!(err.contains("verb:get usr:alice"), "{err}");
    assert!(err.contains("^^^"), "{err}");
    assert!(err.contains("did you mean `user`?"), "{err}");
    // A setting that is not a rule's.
    std::fs::write(&bad, "[[rule]]\nid = \"mine\"\nseverity = \"low\"\nquery = \"verb:get\"\nwindow = \"5 minutes\"\nthreshold = \"count >= 3\"\n").unwrap();
    let err = stderr(&detect(&["--list", "--rules", bad.to_str().unwrap()], tmp.path()));
    assert!(err.contains("bad.toml:1: rule `mine`: `window`: `5 minutes` is not a duration"), "{err}");
    // A list that does not exist.
    std::fs::write(&bad, "[[rule]]\nid = \"mine\"\nseverity = \"low\"\nquery = \"ns:$prod_namespace\"\n").unwrap();
    let o = detect(&[log.to_str().unwrap(), "--rules", bad.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no list named `$prod_namespace`; did you mean `$prod_namespaces`?"), "{}", stderr(&o));
    // TOML that does not parse.
    std::fs::write(&bad, "[[rule]\n").unwrap();
    let o = detect(&["--list", "--rules", bad.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.toml:1:"), "{}", stderr(&o));
}

#[test]
fn exit_status_output_formats_list_and_explain() {
    let tmp = tempfile::tempdir().unwrap();
    let log = small_log(tmp.path());
    let log = log.to_str().unwrap();
    // Nothing fired: 0; something fired: 4.
    let o = detect(&[log, "--rule", "secret-burst"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = detect(&[log, "--rule", "exec-into-pod", "--format", "text"], tmp.path());
    assert_eq!(o.status.code(), Some(4));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("FIRST") && lines[0].contains("RULE"), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].contains("exec-into-pod") && lines[1].contains("user=alice@example.com"), "{text}");
    // The columns line up.
    let col = lines[0].find("RULE").unwrap();
    assert!(lines[1..].iter().all(|l| &l[col..col + 4] == "exec"), "{text}");
    // --since: only later requests fire.
    let a = alerts(&detect(&[log, "--rule", "exec-into-pod", "--since", "2026-11-20T11:00:00Z"], tmp.path()));
    assert_eq!(a.iter().map(ids).collect::<Vec<_>>(), [vec!["e3"]]);
    // --min-severity leaves out the rest.
    let a = alerts(&detect(&[log, "--min-severity", "high"], tmp.path()));
    assert!(a.iter().all(|a| a["severity"] == "high" || a["severity"] == "critical"), "{a:?}");
    // An alert line's fields.
    let a = &alerts(&detect(&[log, "--rule", "prod-delete"], tmp.path()))[0];
    for k in ["rule", "severity", "kind", "group", "count", "window", "first", "last", "auditIDs", "description"] {
        assert!(a.get(k).is_some(), "{k} missing in {a}");
    }
    // --list: the pack, at least 30 rules.
    let list = String::from_utf8_lossy(&detect(&["--list"], tmp.path()).stdout).into_owned();
    let rules = list.lines().skip(1).take_while(|l| !l.is_empty()).count();
    assert!(rules >= 30, "{list}");
    // --explain: how one rule runs.
    let o = detect(&["--explain", "--rule", "secret-burst"], tmp.path());
    let ex = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(ex.contains("dc(name) >= 10 per user in a sliding 5m window"), "{ex}");
    assert!(ex.contains("| table time, id, user, name"), "{ex}");
    assert!(ex.contains("anchor: elastic:"), "{ex}");
    // An unknown rule id.
    let o = detect(&[log, "--rule", "secret-brust"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean `secret-burst`?"), "{}", stderr(&o));
}

#[test]
fn detect_reads_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let log = small_log(tmp.path());
    let store = tmp.path().join("store");
    let o = kaq().args(["ingest", log.to_str().unwrap(), "--store", store.to_str().unwrap(), "-q"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let from_store = alerts(&detect(&["--store", store.to_str().unwrap()], tmp.path()));
    let from_log = alerts(&detect(&[log.to_str().unwrap()], tmp.path()));
    assert_eq!(from_store, from_log);
    assert!(!from_store.is_empty());
}

#[test]
fn kaq_query_finds_the_named_queries_of_the_rule_files() {
    let tmp = tempfile::tempdir().unwrap();
    let log = small_log(tmp.path());
    std::fs::write(
        tmp.path().join("rules.toml"),
        "[lists]\nmine = [\"prod\", \"staging-*\"]\n\n[queries]\nmy-execs = \"subresource:exec ns:$mine\"\n",
    )
    .unwrap();
    let q = |query: &str| {
        kaq()
            .args(["query", query, log.to_str().unwrap(), "--format", "json"])
            .env("KAQ_CONFIG_DIR", tmp.path())
            .output()
            .unwrap()
    };
    let o = q("@my-execs | table id");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"id\":\"e2\"}\n{\"id\":\"e3\"}\n");
    // The pack's own named queries too.
    let o = q("@rbac-changes | count");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"count\":0}\n");
}

#[test]
fn an_alert_line_starts_with_its_rule_and_keeps_the_group_order() {
    let tmp = tempfile::tempdir().unwrap();
    let log = small_log(tmp.path());
    let rules = tmp.path().join("r.toml");
    std::fs::write(&rules, "[[rule]]\nid = \"by-ns-user\"\nseverity = \"info\"\nquery = \"subresource:exec\"\ngroup_by = [\"user\", \"ns\"]\n").unwrap();
    let o = detect(&[log.to_str().unwrap(), "--rule", "by-ns-user", "--rules", rules.to_str().unwrap()], tmp.path());
    let first = String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(
            r#"{"rule":"by-ns-user","severity":"info","kind":"single","group":{"user":"alice@example.com","ns":"dev"},"count":1,"window":null,"first":"2026-11-20T10:00:00.000000Z""#
        ),
        "{first}"
    );
}
