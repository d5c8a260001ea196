//! Traps a new user fell into (issue 12): `kaq query --rejects`, `@slow` and long-running
//! requests, a timeline too long to fill, saved searches shared with `kaq query`, and tables on a
//! narrow terminal that cut times.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::common::{kaq, run, stderr, tmp, with_stdin};

/// One audit event: `verb` on `uri` (with `subresource`), received at `time`, lasting `latency`
/// seconds.
fn event(id: &str, verb: &str, uri: &str, subresource: Option<&str>, time: &str, latency: f64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339(time).unwrap();
    let end = start + chrono::Duration::microseconds((latency * 1e6).round() as i64);
    let mut object = json!({"resource": "pods", "namespace": "default", "name": "web", "apiVersion": "v1"});
    if let Some(s) = subresource {
        object["subresource"] = json!(s);
    }
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
        "stage": "ResponseComplete", "requestURI": uri, "verb": verb, "user": {"username": "alice"},
        "objectRef": object, "responseStatus": {"code": 200},
        "requestReceivedTimestamp": start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "stageTimestamp": end.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
    .to_string()
}

fn write_log(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn json_lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", stderr(o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `kaq query` suggested `--rejects FILE` without accepting it. It now writes every rejected
/// record whole, private, as `kaq convert` does — lines the prefilter would skip included.
#[test]
fn query_writes_rejects_to_a_private_file() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    let t = "2026-11-20T05:00:00Z";
    let bad_json = r#"{"kind":"Event","auditID":"broken"#;
    let bad_verb = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"v","stage":"ResponseComplete","verb":7}"#;
    write_log(
        &log,
        &[
            event("a", "delete", "/api/v1/namespaces/default/pods/web", None, t, 0.1),
            bad_json.to_string(),
            event("b", "get", "/api/v1/namespaces/default/pods/web", None, t, 0.1),
            bad_verb.to_string(),
        ],
    );
    let rejects = dir.path().join("rejects.jsonl");
    // An existing file is replaced and made private.
    std::fs::write(&rejects, "old\n").unwrap();
    std::fs::set_permissions(&rejects, std::fs::Permissions::from_mode(0o644)).unwrap();
    // `verb:delete` has a prefilter that would skip both bad lines undecoded.
    let o = run(&["query", "verb:delete | table id", log.to_str().unwrap(), "--rejects", rejects.to_str().unwrap()]);
    assert_eq!(json_lines(&o), vec![json!({"id": "a"})]);
    let err = stderr(&o);
    assert!(err.contains("audit.log:2:") && err.contains("audit.log:4:"), "{err}");
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), format!("{bad_json}\n{bad_verb}\n"));
    assert_eq!(std::fs::metadata(&rejects).unwrap().permissions().mode() & 0o777, 0o600);

    let o = run(&["query", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("--rejects <FILE>"));
    // A store's rejects were reported when it was made.
    let o = run(&["query", "*", "--store", dir.path().join("none").to_str().unwrap(), "--rejects", "r"]);
    assert!(!o.status.success() && stderr(&o).contains("kaq ingest --rejects"), "{}", stderr(&o));
}

/// `@slow` found watches and execs, which last as long as the client keeps them open: it leaves
/// out what the API server counts as long-running.
#[test]
fn slow_leaves_out_long_running_requests() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    let t = "2026-11-20T05:00:00Z";
    let pod = "/api/v1/namespaces/default/pods/web";
    write_log(
        &log,
        &[
            event("watch", "watch", "/api/v1/namespaces/default/pods?watch=true", None, t, 300.0),
            event("exec", "create", &format!("{pod}/exec?command=sh&stdin=true"), Some("exec"), t, 120.0),
            event("get", "get", pod, None, t, 2.5),
            event("fast-get", "get", pod, None, t, 0.2),
            event("attach", "create", &format!("{pod}/attach"), Some("attach"), t, 60.0),
            event("portforward", "create", &format!("{pod}/portforward"), Some("portforward"), t, 60.0),
            event("proxy", "get", &format!("{pod}/proxy/metrics"), Some("proxy"), t, 5.0),
            event("log-follow", "get", &format!("{pod}/log?container=app&follow=true"), Some("log"), t, 90.0),
            event("log-follow-bare", "get", &format!("{pod}/log?follow"), Some("log"), t, 90.0),
            event("log", "get", &format!("{pod}/log?container=app"), Some("log"), t, 3.0),
            event("log-no-follow", "get", &format!("{pod}/log?follow=False"), Some("log"), t, 3.0),
        ],
    );
    let ids = |q: &str| -> Vec<String> {
        let rows = json_lines(&run(&["query", q, log.to_str().unwrap()]));
        rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("@slow | table id"), ["get", "log", "log-no-follow"]);
    // Without the named query, all of them are there.
    assert_eq!(ids("latency>1s | table id").len(), 10);
    // The same from a store.
    let store = dir.path().join("store");
    assert!(run(&["ingest", "--store", store.to_str().unwrap(), "--quiet", log.to_str().unwrap()]).status.success());
    let rows = json_lines(&run(&["query", "@slow | table id | sort id", "--store", store.to_str().unwrap()]));
    assert_eq!(rows, vec![json!({"id": "get"}), json!({"id": "log"}), json!({"id": "log-no-follow"})]);
}

/// A timeline without `by` fills empty buckets only up to 100,000 of them; past that it says so.
#[test]
fn a_timeline_too_long_to_fill_says_so() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    let pod = "/api/v1/namespaces/default/pods/web";
    // A year apart: 525,600 one-minute buckets, 365 one-day ones.
    write_log(
        &log,
        &[
            event("a", "get", pod, None, "2025-11-20T05:00:00Z", 0.1),
            event("b", "get", pod, None, "2026-11-20T05:00:00Z", 0.1),
        ],
    );
    let l = log.to_str().unwrap();
    let o = run(&["query", "| timeline 1m", l]);
    assert_eq!(json_lines(&o).len(), 2, "only the buckets with events");
    let err = stderr(&o);
    assert!(
        err.contains(
            "kaq: warning: timeline: the events span 525601 intervals, more than 100000: empty buckets are left out"
        ),
        "{err}"
    );
    // Filled: no warning.
    let o = run(&["query", "| timeline 1d", l]);
    assert_eq!(json_lines(&o).len(), 366);
    assert!(!stderr(&o).contains("timeline"), "{}", stderr(&o));
    // After other stages too, and from a store (where the columns count the timeline).
    let store = dir.path().join("store");
    assert!(run(&["ingest", "--store", store.to_str().unwrap(), "--quiet", l]).status.success());
    let o = run(&["query", "| timeline 1m | sort -count | head 1", "--store", store.to_str().unwrap()]);
    assert_eq!(json_lines(&o).len(), 1);
    assert!(stderr(&o).contains("more than 100000: empty buckets are left out"), "{}", stderr(&o));

    // The REPL says it under the table.
    let o = with_stdin(kaq().args(["repl", l]).env("KAQ_HISTORY", ""), b".format table\n| timeline 1m\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("2 rows") && out.contains("note: timeline: the events span 525601 intervals"), "{out}");
}

/// Runs `kaq ARGS` with `input` on stdin and `KAQ_CONFIG_DIR=config`.
fn with_config(args: &[&str], config: &Path, input: &str) -> Output {
    with_stdin(kaq().args(args).env("KAQ_CONFIG_DIR", config).env("KAQ_HISTORY", ""), input.as_bytes())
}

/// `.save` names lived only in that REPL session: they are kept in the `[queries]` of the user's
/// rule file (rules.toml) in the configuration directory, where `kaq query`, later sessions and
/// the detection rules find them; the file's comments and tables are kept.
#[test]
fn saved_searches_outlive_the_session_and_reach_kaq_query() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    let t = "2026-11-20T05:00:00Z";
    let pod = "/api/v1/namespaces/default/pods/web";
    write_log(
        &log,
        &[
            event("a", "delete", pod, None, t, 0.1),
            event("b", "get", pod, None, t, 0.1),
            event("c", "delete", pod, None, t, 0.1),
        ],
    );
    let l = log.to_str().unwrap();
    let config = dir.path().join("config/kaq");
    let file = config.join("rules.toml");
    // The user's own rule file: its comment, list and disabled rule stay as they are.
    std::fs::create_dir_all(&config).unwrap();
    let mine =
        "# my tuning, keep this comment\ndisable = [\"port-forward\"]\n\n[lists]\nadmins = [\"alice\"]  # who may\n";
    std::fs::write(&file, mine).unwrap();

    let o = with_config(
        &["repl", l],
        &config,
        ".save dels verb:delete\n.save slow latency>5s\n.save rbac-changes verb:get\n.save gets verb:get\n@dels | count\n",
    );
    assert_eq!(o.status.code(), Some(2), "the refused names fail the session: {}", stderr(&o));
    assert!(stderr(&o).contains("`@slow` is a built-in named query; choose another name"), "{}", stderr(&o));
    assert!(stderr(&o).contains("`@rbac-changes` is a named query of the built-in rule pack"), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out, "saved: @dels\nsaved: @gets\n{\"count\":2}\n");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(mine), "the file as it was, then the searches: {text}");
    assert!(text.ends_with("\n[queries]\ndels = \"verb:delete\"\ngets = \"verb:get\"\n"), "{text}");
    assert!(!text.contains("slow") && !text.contains("rbac"), "{text}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_dir(&config).unwrap().count(), 1, "no temporary file left");

    // `kaq query` finds it.
    let o = kaq().args(["query", "@dels | table id", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    assert_eq!(json_lines(&o), vec![json!({"id": "a"}), json!({"id": "c"})]);
    // A rule of another file uses it, and fires on the two deletes.
    let extra = dir.path().join("extra.toml");
    std::fs::write(&extra, "[[rule]]\nid = \"my-deletes\"\nseverity = \"high\"\nquery = \"@dels\"\n").unwrap();
    let o = kaq()
        .args(["detect", l, "--rules", extra.to_str().unwrap(), "--rule", "my-deletes", "--format", "json"])
        .env("KAQ_CONFIG_DIR", &config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "fired: {}", stderr(&o));
    let alerts: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((&alerts[0]["rule"], &alerts[0]["count"]), (&json!("my-deletes"), &json!(2)));
    // A search saved by an earlier kaq in queries.toml is still found, and `.forget` removes it.
    let legacy = config.join("queries.toml");
    std::fs::write(&legacy, "[queries]\nold = \"verb:get\"\n").unwrap();
    let o = kaq().args(["query", "@old | table id", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    assert_eq!(json_lines(&o), vec![json!({"id": "b"})]);
    // A later session too; `.forget` removes them; the pack's named queries cannot be forgotten.
    let o = with_config(&["repl", l], &config, "@gets | table id\n.forget gets\n.forget old\n.save\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("{\"id\":\"b\"}\nforgot @gets\nforgot @old\n@dels "), "{out}");
    assert!(out.contains("\nand the rule pack's: ") && out.contains(" @rbac-changes"), "{out}");
    assert!(!std::fs::read_to_string(&legacy).unwrap().contains("old ="));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("gets"));
    let o = with_config(&["repl", l], &config, ".forget rbac-changes\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("@rbac-changes is a named query of the built-in rule pack"), "{}", stderr(&o));
    for gone in ["@gets", "@old"] {
        let o = kaq().args(["query", gone, l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(&format!("no named query `{gone}`")), "{}", stderr(&o));
    }
    // Without the configuration directory, the name is unknown.
    let o = kaq().args(["query", "@dels", l]).env("KAQ_CONFIG_DIR", dir.path().join("elsewhere")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A rules.toml that is not valid TOML: `kaq query` warns and leaves its names out, the REPL
/// never overwrites it.
#[test]
fn a_broken_rules_file_is_never_overwritten() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    write_log(&log, &[event("a", "delete", "/api/v1/namespaces/default/pods/web", None, "2026-11-20T05:00:00Z", 0.1)]);
    let l = log.to_str().unwrap();
    let config = dir.path().join("cfg");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("rules.toml");
    let broken = "[queries]\ndels = \"verb:delete\"\nmine = \"user:alice\n";
    std::fs::write(&file, broken).unwrap();
    let o = kaq().args(["query", "@dels | count", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("its named queries are left out"), "{}", stderr(&o));
    let o = with_config(&["repl", l], &config, ".save gets verb:get\n@gets | count\n");
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:3: not valid TOML", file.display())), "{err}");
    assert!(err.contains("this change holds for this session only"), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "saved: @gets\n{\"count\":0}\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);
    // A file that does not load as rules (here a rule's severity is wrong) is not written to.
    std::fs::write(&file, "[[rule]]\nid = \"x\"\nseverity = \"loud\"\nquery = \"verb:get\"\n").unwrap();
    let o = with_config(&["repl", l], &config, ".save gets verb:get\n");
    assert!(stderr(&o).contains("would not load as a rule file after this change"), "{}", stderr(&o));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("gets"));
}

/// A saved-searches file kaq cannot read is an error naming its line, and is never overwritten.
#[test]
fn a_broken_saved_searches_file_names_its_line() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    write_log(&log, &[event("a", "delete", "/api/v1/namespaces/default/pods/web", None, "2026-11-20T05:00:00Z", 0.1)]);
    let l = log.to_str().unwrap();
    let config = dir.path().join("cfg");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("queries.toml");
    let broken = "[queries]\ndels = \"verb:delete\"\nmine = \"user:alice\n";
    std::fs::write(&file, broken).unwrap();
    let where_ = format!("{}:3: not valid TOML", file.display());

    let o = kaq().args(["query", "@dels | count", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!("kaq: error: {where_}")), "{}", stderr(&o));
    // A query without saved names does not read it.
    let o = kaq().args(["query", "@prod-deletes | count", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // The REPL warns, and refuses to overwrite it.
    let o = with_config(&["repl", l], &config, ".save gets verb:get\nverb:delete | count\n");
    let err = stderr(&o);
    assert!(err.contains(&format!("kaq: warning: {where_}")), "{err}");
    assert!(err.contains("this change holds for this session only"), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "saved: @gets\n{\"count\":1}\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);

    // A value that is not a string, a name that hides a built-in: the line too.
    std::fs::write(&file, "[queries]\n\ndels = 3\n").unwrap();
    let o = kaq().args(["query", "@dels", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    let want = format!("{}:3: `dels`: the search must be a string, not integer", file.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    std::fs::write(&file, "[queries]\nexec = \"verb:create\"\n").unwrap();
    let o = kaq().args(["query", "@mine", l]).env("KAQ_CONFIG_DIR", &config).output().unwrap();
    assert!(stderr(&o).contains(":2: `@exec` is a built-in named query"), "{}", stderr(&o));
}

/// On an 80-column terminal the `time` column was cut to `2026-12-0…`: times are never cut;
/// other columns narrow, then the last ones are left out, and the table says which.
#[test]
fn narrow_tables_never_cut_times() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    let long_uri =
        format!("/apis/apps/v1/namespaces/{}/deployments/web?fieldManager=kubectl-client-side-apply", "x".repeat(40));
    let lines: Vec<String> = (0..3)
        .map(|i| {
            let mut e: Value = serde_json::from_str(&event(
                &format!("id{i}"),
                "create",
                &long_uri,
                None,
                &format!("2026-12-0{}T05:00:00.25{i}Z", i + 1),
                0.5,
            ))
            .unwrap();
            e["user"]["username"] = json!("system:serviceaccount:kube-system:replicaset-controller");
            e["userAgent"] = json!("kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef0 some-long-suffix");
            e.to_string()
        })
        .collect();
    write_log(&log, &lines);
    let l = log.to_str().unwrap();
    let table = |q: &str, width: &str| -> String {
        let o = kaq().args(["query", q, l, "--format", "table"]).env("COLUMNS", width).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let times = ["2026-12-01 05:00:00.250", "2026-12-02 05:00:00.251", "2026-12-03 05:00:00.252"];
    let ends = ["2026-12-01 05:00:00.750", "2026-12-02 05:00:00.751", "2026-12-03 05:00:00.752"];
    let fits = |t: &str, w: usize| {
        // The table's lines; the note under it may wrap.
        for line in t.lines().filter(|l| !l.starts_with("(left out")) {
            assert!(line.chars().count() <= w, "wider than {w}: {line:?}\n{t}");
        }
    };

    // Whole events: every column fits in 80 once the others narrow.
    let t = table("verb:create", "80");
    fits(&t, 80);
    assert!(times.iter().all(|x| t.contains(x)), "{t}");
    assert!(t.contains("system:servicea") && !t.contains("replicaset-controller"), "the user narrows: {t}");
    assert!(!t.contains("left out"), "{t}");

    // Too many columns: the last ones (not times) are left out, and named.
    let t = table("* | table time, user, verb, uri, ua, stage_time", "80");
    fits(&t, 80);
    assert!(times.iter().chain(&ends).all(|x| t.contains(x)), "{t}");
    assert!(t.starts_with("time "), "{t}");
    assert!(t.contains("(left out to fit 80 columns: ua;"), "{t}");
    let t = table("* | table time, user, verb, uri, ua, stage_time", "50");
    fits(&t, 50);
    assert!(times.iter().chain(&ends).all(|x| t.contains(x)), "{t}");
    assert!(t.contains("(left out to fit 50 columns: user, verb, uri, ua;"), "{t}");
    // Times alone wider than the width: drawn whole all the same.
    let t = table("* | table time, stage_time", "30");
    assert!(times.iter().chain(&ends).all(|x| t.contains(x)), "{t}");

    // The REPL draws its tables the same way (bars go before columns).
    let o = with_stdin(
        kaq().args(["repl", l]).env("KAQ_HISTORY", "").env("COLUMNS", "80"),
        b".format table\n* | table time, user, uri, ua, name, stage_time\n",
    );
    let t = String::from_utf8_lossy(&o.stdout);
    fits(&t, 80);
    assert!(times.iter().chain(&ends).all(|x| t.contains(x)), "{t}");
    assert!(t.contains("(left out to fit 80 columns: name;") && t.contains("(3 rows)"), "{t}");
}
