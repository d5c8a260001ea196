//! No secret value from a RequestResponse log reaches the output unless --keep-secrets.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Every value of `data`/`stringData` of Secret objects in the input (the reference: walk all
/// JSON, nothing of kaq's).
fn secret_values(events: &[Value]) -> Vec<String> {
    fn walk(v: &Value, secret_ctx: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let is_secret = m.get("kind").is_some_and(|k| k == "Secret") || (secret_ctx && m.get("kind").is_none());
                for (k, c) in m {
                    if is_secret && (k == "data" || k == "stringData") {
                        for s in c.as_object().into_iter().flat_map(|o| o.values()) {
                            out.push(s.as_str().map(String::from).unwrap_or_else(|| s.to_string()));
                        }
                    } else if let Some(text) = c.as_str().filter(|_| k.ends_with("last-applied-configuration")) {
                        if let Ok(inner) = serde_json::from_str::<Value>(text) {
                            walk(&inner, false, out);
                        }
                    } else {
                        walk(c, false, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, false, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for e in events {
        let ctx = e.pointer("/objectRef/resource").is_some_and(|r| r == "secrets");
        for k in ["requestObject", "responseObject"] {
            if let Some(o) = e.get(k) {
                walk(o, ctx, &mut out);
            }
        }
    }
    out.retain(|s| s.len() >= 4);
    out.sort();
    out.dedup();
    out
}

/// All the bytes a reader of the output could see: the Parquet file decoded to JSON lines, plus
/// the raw file (values of short, uncompressible columns may show there).
fn visible(pq: &Path) -> String {
    let mut all = String::new();
    for e in parquet_events(pq) {
        all.push_str(&e.to_string());
        all.push('\n');
    }
    all.push_str(&String::from_utf8_lossy(&std::fs::read(pq).unwrap()));
    all
}

fn check(log: &Path, dir: &Path) {
    let secrets = secret_values(&reference_events(log));
    assert!(!secrets.is_empty(), "the input holds secret values");
    let pq = dir.join("redacted.parquet");
    let jsonl = dir.join("redacted.jsonl");
    for out in [&pq, &jsonl] {
        let o = run(&["convert", log.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let seen = visible(&pq) + &std::fs::read_to_string(&jsonl).unwrap();
    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "secret value {s:?} leaked");
    }
    assert!(seen.contains(kaq_schema::redact::MARKER_PREFIX));

    let kept = dir.join("kept.parquet");
    let o = run(&["convert", log.to_str().unwrap(), "-o", kept.to_str().unwrap(), "-q", "--keep-secrets"]);
    assert!(o.status.success());
    let seen = visible(&kept);
    for s in &secrets {
        assert!(seen.contains(s.as_str()), "--keep-secrets keeps {s:?}");
    }
}

#[test]
fn generated_secrets_are_redacted() {
    let dir = tmp();
    let log = dir.path().join("g.log");
    let Some(_) = gen_audit(&["--events", "20000", "--seed", "9", "--stages"], &log) else { return };
    check(&log, dir.path());
}

#[test]
fn fixture_secrets_are_redacted() {
    let dir = tmp();
    // Real captures (falco fixtures) plus hand-made shapes: a list, patches, last-applied.
    let log = dir.path().join("s.log");
    let mut text = String::new();
    for f in ["falco-trace-files_create_secret.json", "falco-trace-files_create_configmap_sensitive_values.json"] {
        text.push_str(std::fs::read_to_string(repo().join("tests/data").join(f)).unwrap().trim_end());
        text.push('\n');
    }
    let ev = |id: &str, verb: &str, req: &str, resp: &str| {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"{id}","stage":"ResponseComplete","verb":"{verb}","objectRef":{{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"}},"requestObject":{req},"responseObject":{resp},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:00.100000Z"}}"#
        )
    };
    let applied = r#"{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"data\":{\"password\":\"c2VjcmV0LWluLWFwcGxpZWQ=\"}}"#;
    for line in [
        ev("l1", "list", "null", r#"{"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"token":"bGlzdGVkLXNlY3JldA=="}}]}"#),
        ev(
            "p1",
            "patch",
            r#"{"data":{"password":"bWVyZ2UtcGF0Y2gtc2VjcmV0"}}"#,
            &(r#"{"kind":"Secret","metadata":{"name":"db","annotations":{"kubectl.kubernetes.io/last-applied-configuration":""#
                .to_string()
                + applied
                + r#""}},"data":{"password":"cGF0Y2hlZC1zZWNyZXQ="}}"#),
        ),
        ev("p2", "patch", r#"[{"op":"replace","path":"/data/password","value":"anNvbi1wYXRjaC1zZWNyZXQ="}]"#, r#"{"kind":"Status","status":"Success"}"#),
        ev("c1", "create", r#"{"kind":"Secret","stringData":{"api-key":"plain-text-api-key-value"}}"#, r#"{"kind":"Secret","data":{"api-key":"cGxhaW4tdGV4dC1hcGkta2V5LXZhbHVl"}}"#),
    ] {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&log, text).unwrap();
    // The JSON patch's value is not inside a Secret object: check it by hand too.
    check(&log, dir.path());
    let all = visible(&dir.path().join("redacted.parquet"));
    for s in ["anNvbi1wYXRjaC1zZWNyZXQ=", "c2VjcmV0LWluLWFwcGxpZWQ=", "plain-text-api-key-value"] {
        assert!(!all.contains(s), "{s} leaked");
    }
}

#[test]
fn rejected_lines_and_reconverted_parquet_are_redacted() {
    let dir = tmp();
    let log = dir.path().join("r.log");
    let bad_type = r#"{"kind":"Event","auditID":"x","verb":7,"objectRef":{"resource":"secrets"},"requestObject":{"kind":"Secret","data":{"k":"UkVKRUNURUQtU0VDUkVU"}}}"#;
    let truncated = r#"{"kind":"Event","auditID":"y","objectRef":{"resource":"secrets"},"requestObject":{"kind":"Secret","data":{"k":"VFJVTkNBVEVELVNFQ1JFVA"#;
    let good = r#"{"kind":"Event","auditID":"z","objectRef":{"resource":"secrets"},"requestObject":{"kind":"Secret","data":{"k":"R09PRC1TRUNSRVQ="}},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z"}"#;
    std::fs::write(&log, format!("{bad_type}\n{truncated}\n{good}\n")).unwrap();
    let rejects = dir.path().join("rejects.jsonl");
    let o = convert(&log, &dir.path().join("a.parquet"), &["--rejects", rejects.to_str().unwrap()]);
    assert!(o.status.success());
    let kept = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(kept.lines().count(), 2);
    for s in ["UkVKRUNURUQtU0VDUkVU", "VFJVTkNBVEVELVNFQ1JFVA"] {
        assert!(!kept.contains(s), "{s} leaked into the rejects file: {kept}");
        assert!(!stderr(&o).contains(s));
    }
    assert!(kept.contains("\"verb\":7"), "the rest of the line is kept: {kept}");

    // A file converted with --keep-secrets, converted again without it, is redacted.
    let keep = dir.path().join("keep.parquet");
    assert!(
        run(&["convert", log.to_str().unwrap(), "-o", keep.to_str().unwrap(), "-q", "--keep-secrets"]).status.success()
    );
    assert!(visible(&keep).contains("R09PRC1TRUNSRVQ="));
    let again = dir.path().join("again.parquet");
    assert!(run(&["convert", keep.to_str().unwrap(), "-o", again.to_str().unwrap(), "-q"]).status.success());
    assert!(!visible(&again).contains("R09PRC1TRUNSRVQ="));
    let kept_again = dir.path().join("kept-again.parquet");
    assert!(
        run(&["convert", keep.to_str().unwrap(), "-o", kept_again.to_str().unwrap(), "-q", "--keep-secrets"])
            .status
            .success()
    );
    assert!(visible(&kept_again).contains("R09PRC1TRUNSRVQ="));
}

/// An event about `resource` (`None`: no objectRef) at second `sec`, with this request body.
fn hostile_event(id: &str, sec: u32, resource: Option<&str>, uri: &str, body: &str) -> String {
    let object_ref = resource.map(|r| format!(r#""objectRef":{{"resource":"{r}","namespace":"a","name":"b"}},"#));
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"{id}","stage":"ResponseComplete","verb":"update","requestURI":"{uri}",{}"requestObject":{body},"requestReceivedTimestamp":"2026-11-20T05:00:{sec:02}.000000Z","stageTimestamp":"2026-11-20T05:00:{sec:02}.100000Z"}}"#,
        object_ref.unwrap_or_default()
    )
}

/// Which resource an event is about: `objectRef.resource` (if any) and `requestURI`.
type About = (Option<&'static str>, &'static str);

/// Shapes that once let a Secret value through (issue 13), with the values they hold.
fn hostile_log(path: &Path) -> Vec<&'static str> {
    let deep = "[".repeat(130) + &"]".repeat(130);
    let cm: About = (Some("configmaps"), "/api/v1/namespaces/a/configmaps/b");
    let sec: About = (Some("secrets"), "/api/v1/namespaces/a/secrets/b");
    let shapes: Vec<(About, String, &str)> = vec![
        // A sibling nested past serde_json's limit: the body could not be parsed, and was kept.
        (cm, format!(r#"{{"kind":"Secret","data":{{"k":"REVFUC1TSUJMSU5H"}},"x":{deep}}}"#), "REVFUC1TSUJMSU5H"),
        (sec, format!(r#"{{"data":{{"k":"REVFUC1QQVRDSA=="}},"x":{deep}}}"#), "REVFUC1QQVRDSA=="),
        // An escaped kind outside the secrets resource, alone and in a List.
        (cm, r#"{"kind":"Secr\u0065t","data":{"k":"RVNDQVBFRC1LSU5E"}}"#.into(), "RVNDQVBFRC1LSU5E"),
        (
            cm,
            r#"{"kind":"List","items":[{"kind":"Secr\u0065t","data":{"k":"RVNDQVBFRC1JVEVN"}}]}"#.into(),
            "RVNDQVBFRC1JVEVN",
        ),
        // A duplicated kind (a first-wins reader sees a Secret), a patch replacing the whole
        // document, a patch found by its path alone.
        (
            cm,
            r#"{"kind":"Secret","kind":"ConfigMap","data":{"k":"RFVQTElDQVRFLUtJTkQ="}}"#.into(),
            "RFVQTElDQVRFLUtJTkQ=",
        ),
        (sec, r#"[{"op":"replace","path":"","value":{"data":{"k":"Uk9PVC1QQVRDSA=="}}}]"#.into(), "Uk9PVC1QQVRDSA=="),
        ((None, "/api/v1/namespaces/a/secrets/b"), r#"{"data":{"k":"Tk8tT0JKRUNUUkVG"}}"#.into(), "Tk8tT0JKRUNUUkVG"),
    ];
    let mut text = String::new();
    let mut secrets = Vec::new();
    for (i, ((resource, uri), body, secret)) in shapes.into_iter().enumerate() {
        text.push_str(&hostile_event(&format!("h{i}"), i as u32, resource, uri, &body));
        text.push('\n');
        secrets.push(secret);
    }
    std::fs::write(path, text).unwrap();
    secrets
}

/// `kaq query QUERY ARGS… --format json`'s output (asserting success).
fn query_out(query: &str, args: &[&str]) -> String {
    let mut a = vec!["query", query, "--format", "json"];
    a.extend_from_slice(args);
    let o = run(&a);
    assert!(o.status.success(), "{a:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn assert_none_in(what: &str, seen: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!seen.contains(s), "{s} leaked into {what}:\n{seen}");
    }
}

#[test]
fn hostile_shapes_are_redacted_in_every_output() {
    let dir = tmp();
    let log = dir.path().join("h.log");
    let secrets = hostile_log(&log);
    let l = log.to_str().unwrap();
    let all = query_out("*", &[l]);
    assert_eq!(all.lines().count(), secrets.len(), "every event is read:\n{all}");
    assert_none_in("query output", &all, &secrets);
    assert_eq!(all.matches("not checked for secrets").count(), 2, "{all}");
    let pq = dir.path().join("h.parquet");
    let jsonl = dir.path().join("h.jsonl");
    for out in [&pq, &jsonl] {
        let o = convert(&log, out, &["-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_none_in("convert's Parquet", &visible(&pq), &secrets);
    assert_none_in("convert's JSON lines", &std::fs::read_to_string(&jsonl).unwrap(), &secrets);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    assert!(run(&["ingest", "--store", s, "--quiet", l]).status.success());
    assert_none_in("the store's answer", &query_out("*", &["--store", s]), &secrets);
    let mut files = Vec::new();
    collect_parquet(&store, &mut files);
    for f in files {
        assert_none_in("a store segment", &visible(&f), &secrets);
    }
}

#[test]
fn parquet_written_with_keep_secrets_is_redacted_by_every_reader() {
    let dir = tmp();
    let log = dir.path().join("h.log");
    let secrets = hostile_log(&log);
    // The deep ones are replaced even with --keep-secrets: the others are kept in the file.
    let kept_values = &secrets[2..];
    let kept = dir.path().join("kept.parquet");
    assert!(convert(&log, &kept, &["-q", "--keep-secrets"]).status.success());
    let k = kept.to_str().unwrap();
    for s in kept_values {
        assert!(visible(&kept).contains(s), "--keep-secrets keeps {s}");
    }
    // kaq query: whole events, a body column, a filter on a secret value.
    assert_none_in("query of a kept Parquet", &query_out("*", &[k]), &secrets);
    assert_none_in("a table of bodies", &query_out("* | table id, request", &[k]), &secrets);
    for (i, s) in kept_values.iter().enumerate() {
        let q = format!("request.data.k:{s}");
        assert_eq!(query_out(&q, &[k]), "", "a filter sees redacted values only ({i})");
    }
    let with = query_out("*", &[k, "--keep-secrets"]);
    for s in kept_values {
        assert!(with.contains(s), "query --keep-secrets shows {s}");
    }
    // The REPL (stdin mode) over the file.
    let o = with_stdin(
        kaq().args(["repl", k]).env("KAQ_HISTORY", dir.path().join("history")),
        b".format json\n*\n* | table request\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let repl = String::from_utf8_lossy(&o.stdout);
    assert!(repl.matches("kaq-redacted").count() >= kept_values.len(), "{repl}");
    assert_none_in("the REPL", &repl, &secrets);
    // The store, and convert, reading it.
    let store = dir.path().join("store");
    assert!(run(&["ingest", "--store", store.to_str().unwrap(), "--quiet", k]).status.success());
    assert_none_in("the store", &query_out("*", &["--store", store.to_str().unwrap()]), &secrets);
    let again = dir.path().join("again.jsonl");
    assert!(convert(&kept, &again, &["-q"]).status.success());
    assert_none_in("convert of a kept Parquet", &std::fs::read_to_string(&again).unwrap(), &secrets);
}

#[test]
fn bodies_nested_too_deep_read_the_same_everywhere() {
    let dir = tmp();
    let log = dir.path().join("d.log");
    let deep = "[".repeat(120) + &"]".repeat(120);
    let lines = [
        hostile_event(
            "deep",
            1,
            Some("configmaps"),
            "/api/v1/namespaces/a/configmaps/b",
            &format!(r#"{{"a":{deep}}}"#),
        ),
        hostile_event("flat", 2, Some("configmaps"), "/api/v1/namespaces/a/configmaps/b", r#"{"a":[1]}"#),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let pq = dir.path().join("d.parquet");
    assert!(convert(&log, &pq, &["-q", "--keep-secrets"]).status.success());
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    assert!(run(&["ingest", "--store", s, "--quiet", log.to_str().unwrap()]).status.success());
    let marker: Value = serde_json::from_str(kaq_schema::redact::DEEP_MARKER).unwrap();
    for (what, args) in [
        ("raw scan", vec![log.to_str().unwrap()]),
        ("raw scan, secrets kept", vec![log.to_str().unwrap(), "--keep-secrets"]),
        ("Parquet", vec![pq.to_str().unwrap()]),
        ("store", vec!["--store", s]),
    ] {
        let ids = query_out("request.a:* | table id", &args);
        assert_eq!(ids.trim(), r#"{"id":"flat"}"#, "{what}");
        let out = query_out("id:deep", &args);
        let ev: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {out}"));
        assert_eq!(ev["requestObject"], marker, "{what}: an object, the same marker");
        let n = query_out(r#"request."kaq-redacted":* | count"#, &args);
        assert_eq!(n.trim(), r#"{"count":1}"#, "{what}");
    }
    // The Parquet round trip gives the marker as an object, not as a string.
    let back = dir.path().join("back.jsonl");
    assert!(convert(&pq, &back, &["-q"]).status.success());
    let events = read_jsonl(&back);
    assert_eq!(events.iter().find(|e| e["auditID"] == "deep").unwrap()["requestObject"], marker);
}
