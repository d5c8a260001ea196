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
