//! `kaq query` end to end: answers equal the reference evaluator's on a gen-audit log with every
//! stage (through the parallel reader, prefilter and chunking), on its Parquet conversion, and on
//! the injected incidents of gen-audit's truth file; errors, formats and options.

use std::path::Path;

use kaq_oracle::Answer;
use serde_json::Value;

use crate::common::{gen_audit, kaq, run, stderr, tmp};

/// The PRODUCT.md §4 examples, and a few more forms.
const QUERIES: &[&str] = &[
    "verb:delete ns:prod*",
    "verb:(delete OR deletecollection) ns:(prod OR prod-payments) | table time, user, verb, resource, ns, name",
    "code:401 | count by ip | where count > 20 | sort -count",
    "code>=400 NOT user:system:* | top 10 user",
    "resource:secrets verb:(get OR list) -user_kind:node | stats count, dc(name) as secrets by user, ip",
    "subresource:exec | table time, user, ns, name, uri",
    "latency>1s | stats count, p50(latency), p99(latency), max(latency) by verb, resource",
    "\"is forbidden\" | timeline 5m",
    "decision:forbid user:system:serviceaccount:* | count by user",
    "verb:create resource:clusterrolebindings request.roleRef.name:cluster-admin",
    "request.spec.template.spec.hostNetwork:true",
    "ip:203.0.113.0/24 | count by code",
    "as:* | table time, user, as, verb, resource, name",
    "time>=2026-11-20T05:00:00Z time<2026-11-20T06:00:00Z | count by verb",
    "id:33dcd77f-f179-42d2-a48b-96628f3c4be3",
    "@prod-deletes | table time, user, resource, name",
    "verb:watch | stats count, avg(latency), min(time), max(stage_time) by user_kind",
    "| timeline 1h by verb",
    "user:*@example.com | dedup user | sort user | table user, ip",
    "stage:RequestReceived | count by verb",
];

/// The CLI's JSON lines for `query` over `input` (with extra flags).
fn query_json(query: &str, input: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["query", query, input.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "`{query}` failed: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn oracle(query: &str, events: &[Value], all_stages: bool) -> Vec<Value> {
    match kaq_oracle::run(query, events, &kaq_oracle::Options { now_us: 0, all_stages }) {
        Answer::Events(e) => e,
        Answer::Rows(r) => r.into_iter().map(|r| Value::Object(r.into_iter().collect())).collect(),
    }
}

fn assert_same(query: &str, got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "`{query}`: {} rows, the oracle has {}", got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(kaq_oracle::same_json(g, w), "`{query}`:\n  kaq:    {g}\n  oracle: {w}");
    }
}

#[test]
fn examples_on_a_staged_log_equal_the_oracle_over_logs_and_parquet() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    if gen_audit(&["--events", "6000", "--seed", "11", "--stages"], &log).is_none() {
        return;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let events = kaq_oracle::events_of(&text);
    let parquet = dir.path().join("audit.parquet");
    assert!(crate::common::convert(&log, &parquet, &[]).status.success());
    for q in QUERIES {
        // Small chunks: requests' stages land in different chunks and threads.
        let got = query_json(q, &log, &["--threads", "2"]);
        let want = oracle(q, &events, false);
        assert_same(q, &got, &want);
        if !q.contains('|') || q.contains("| table") || q.contains("| dedup") {
            // Parquet is sorted by time, the log is not: compare as sets.
            let mut a: Vec<String> = query_json(q, &parquet, &[]).iter().map(Value::to_string).collect();
            let mut b: Vec<String> = want.iter().map(Value::to_string).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "`{q}` over Parquet");
        } else {
            assert_same(q, &query_json(q, &parquet, &[]), &want);
        }
        let all = query_json(q, &log, &["--all-stages"]);
        assert_same(q, &all, &oracle(q, &events, true));
    }
}

#[test]
fn injected_incidents_are_found() {
    let dir = tmp();
    let log = dir.path().join("audit.log.gz");
    let truth_path = dir.path().join("truth.json");
    let truth_arg = truth_path.to_str().unwrap().to_string();
    if gen_audit(&["--events", "30000", "--seed", "5", "--stages", "--truth", &truth_arg], &log).is_none() {
        return;
    }
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let ids = |q: &str| -> Vec<String> {
        query_json(q, &log, &[]).iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect()
    };
    let strs =
        |v: &Value| -> Vec<String> { v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect() };

    // Who deleted things in prod?
    let want: Vec<String> =
        truth["prod_deletions"].as_array().unwrap().iter().map(|d| d["auditID"].as_str().unwrap().into()).collect();
    assert_eq!(ids("verb:(delete OR deletecollection) ns:prod* | table id"), want);
    assert_eq!(ids("@prod-deletes | table id"), want);

    // Which address is hammering us with 401s?
    let bf = &truth["brute_force"];
    let rows = query_json("code:401 | count by ip | where count > 20 | sort -count", &log, &[]);
    assert_eq!(rows[0]["ip"], bf["sourceIP"]);
    assert_eq!(rows[0]["count"], bf["count"]);

    // Secret reads by the contractor.
    let sa = &truth["secret_access"];
    let user = sa["user"].as_str().unwrap();
    let mut got = ids(&format!("resource:secrets verb:(get OR list) user:{user} | table id"));
    let mut want = strs(&sa["auditIDs"]);
    got.sort();
    want.sort();
    assert_eq!(got, want);

    for (key, q) in [
        ("exec", "subresource:exec | table id"),
        ("privileged", "@privileged-pods | table id"),
        ("cluster_admin", "verb:create resource:clusterrolebindings request.roleRef.name:cluster-admin | table id"),
        ("anonymous_allowed", "@anonymous-allowed | table id"),
        ("impersonation", "as:* | table id"),
    ] {
        let want = truth[key]["auditID"].as_str().unwrap().to_string();
        assert!(ids(q).contains(&want), "{key}: `{q}` misses {want}");
    }
    let slow = ids("latency>=5s -verb:watch | table id");
    for id in strs(&truth["slow_calls"]["auditIDs"]) {
        assert!(slow.contains(&id), "slow call {id} missing");
    }

    // The Secret's value never reaches the output.
    let sp = &truth["secret_payload"];
    let o = run(&["query", &format!("id:{}", sp["auditID"].as_str().unwrap()), log.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "the event is found");
    for leak in [sp["plaintext"].as_str().unwrap(), sp["base64"].as_str().unwrap()] {
        assert!(!out.contains(leak), "secret value printed");
    }
    assert!(out.contains("kaq-redacted:sha256:"), "redaction marker present");
}

fn corpus_log() -> Option<std::path::PathBuf> {
    let p = crate::common::repo().join("tests/data");
    p.exists().then_some(p)
}

#[test]
fn errors_point_at_the_spot_and_exit_2() {
    let Some(data) = corpus_log() else { return };
    let o =
        kaq().args(["query", "usr:alice | cout by ip", data.to_str().unwrap()]).env("NO_COLOR", "1").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("E010") && err.contains("unknown stage `cout`") && err.contains("did you mean `count`"),
        "{err}"
    );
    let o = kaq().args(["query", "usr:alice", data.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("E017") && err.contains("unknown field `usr`") && err.contains("did you mean `user`"),
        "{err}"
    );
    assert!(err.contains("usr:alice") && err.contains('─'), "the query is shown with a marker: {err}");
    for (q, code) in [
        ("code:abc", "E018"),
        ("latency>fast", "E018"),
        ("privileged>true", "E019"),
        ("@nope", "E020"),
        ("verb:get | count by ip | where user:alice", "E022"),
        ("verb:get | timeline 5x", "E018"),
    ] {
        let o = run(&["query", q, data.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{q}");
        assert!(stderr(&o).contains(code), "{q}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    let o = run(&["query", "verb:get", data.to_str().unwrap(), "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--since `yesterday` is not a time"), "{}", stderr(&o));
}

#[test]
fn no_rows_is_success_and_formats_work() {
    let Some(data) = corpus_log() else { return };
    let d = data.to_str().unwrap();
    let o = run(&["query", "user:nobody-at-all", d]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", stderr(&o));
    let o = run(&["query", "user:nobody-at-all", d, "--format", "table"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "(no rows)\n");

    let json = run(&["query", "| count by verb | sort -count, verb", d]);
    let rows: Vec<Value> =
        String::from_utf8_lossy(&json.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!rows.is_empty());
    let csv = run(&["query", "| count by verb | sort -count, verb", d, "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("verb,count"));
    for (line, row) in lines.zip(&rows) {
        assert_eq!(line, format!("{},{}", row["verb"].as_str().unwrap(), row["count"]));
    }
    let table = run(&["query", "| count by verb | sort -count, verb", d, "--format", "table"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.starts_with("verb") && table.contains("count") && table.lines().count() == rows.len() + 2, "{table}");

    // Whole events: JSON lines are the events as read; the table shows the summary columns.
    let ev = run(&["query", "verb:create", d, "--format", "table"]);
    assert!(String::from_utf8_lossy(&ev.stdout).starts_with("time  "), "{}", String::from_utf8_lossy(&ev.stdout));

    // Parquet: a flat table for rows, kaq's schema for events.
    let dir = tmp();
    let out = dir.path().join("by-verb.parquet");
    let o = run(&["query", "| count by verb", d, "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, rows.len());
    let events_out = dir.path().join("creates.parquet");
    assert!(run(&["query", "verb:create", d, "-o", events_out.to_str().unwrap()]).status.success());
    let back = crate::common::parquet_events(&events_out);
    let direct = query_json("verb:create", &data, &[]);
    assert_eq!(back.len(), direct.len());
    assert!(!back.is_empty());
}

#[test]
fn explain_since_until_stdin_and_pipes() {
    let Some(data) = corpus_log() else { return };
    let d = data.to_str().unwrap();
    let o = run(&["query", "verb:delete ns:prod* | count by user", "--explain"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("prefilter: lines without \"delete\"") && out.contains("latest stage"), "{out}");
    assert!(out.contains("step 1:") && out.contains("user, count"), "{out}");

    // --since/--until are the same as time conditions.
    let with_flags = query_json("| count", &data, &["--since", "2020-01-01", "--until", "2024-01-01T00:00Z"]);
    let inline = query_json("time>=2020-01-01 time<2024-01-01T00:00Z | count", &data, &[]);
    assert_eq!(with_flags, inline);
    let all = query_json("| count", &data, &[]);
    assert!(all[0]["count"].as_i64() >= with_flags[0]["count"].as_i64());

    // stdin, and a closed pipe is not an error.
    let file = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl" || e == "log"));
    if let Some(file) = file {
        let mut child = kaq()
            .args(["query", "| count"]) // no INPUT: the piped stdin
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&std::fs::read(&file).unwrap()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success());
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v, query_json("| count", &file, &[])[0]);
    }
    let mut child = kaq().args(["query", "*", d]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success(), "EPIPE is a normal end");
}

/// Lines the prefilter skips are read only for their auditID and stage; when such a line could be
/// the latest record of a matching request (an invalid later stage, a record without a top-level
/// stage but a nested one), the scan decodes everything and gives the exact answer.
#[test]
fn skipped_lines_never_decide_a_request_unchecked() {
    let dir = tmp();
    let log = dir.path().join("c.log");
    let e = |id: &str, stage: &str, verb: &str, extra: &str| {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}",{stage}"verb":{verb},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z"{extra}}}"#
        )
    };
    // The stages of one request share its verb (and received time): what differs is the
    // namespace, which the prefilter looks for (`prod`).
    let ns = |n: &str| format!(r#","objectRef":{{"resource":"pods","namespace":"{n}"}}"#);
    let lines = [
        e("x1", r#""stage":"ResponseComplete","#, r#""get""#, &ns("prod")),
        e("x1", r#""stage":"Panic","#, "7", &ns("staging")), // invalid: rejected, so not x1's latest record
        e("x2", r#""stage":"ResponseStarted","#, r#""get""#, &ns("prod")),
        // latest: no stage = complete; skipped by the prefilter, but its stage cannot be read quickly
        e("x2", "", r#""get""#, &(ns("staging") + r#","requestObject":{"stage":"RequestReceived"}"#)),
        e("x3", r#""stage":"RequestReceived","#, r#""get""#, &ns("prod")),
        e("x3", r#""stage":"ResponseComplete","#, r#""get""#, &ns("prodx")), // valid, later: x3 is not in prod
        e("x4", r#""stage":"RequestReceived","#, r#""get""#, &ns("prod")),
        e("x4", r#""stage":"ResponseComplete","#, r#""get""#, &ns("staging")), // skipped: found quickly, rescanned
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let events = kaq_oracle::events_of(&std::fs::read_to_string(&log).unwrap());
    for q in ["ns:prod | count", "ns:prod | table id", "ns:/prod/ | table id", "verb:get | table id"] {
        assert_same(q, &query_json(q, &log, &[]), &oracle(q, &events, false));
    }
    assert_eq!(query_json("ns:prod | table id", &log, &[]), vec![serde_json::json!({"id": "x1"})]);
}

/// JSON lines and CSV are written as the rows are settled, the rows held meanwhile in a temporary
/// file past `KAQ_SPILL_AFTER` bytes: with every row through the file (0), the output is the
/// same bytes, in the same order, as with every row in memory, over a log with stages far apart
/// and over a store; and equal to the oracle's. A failing query writes nothing, not even a header.
#[test]
fn streamed_output_is_the_same_with_rows_in_a_temporary_file() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    if gen_audit(&["--events", "4000", "--seed", "5", "--stages", "--no-incidents"], &log).is_none() {
        return;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let events = kaq_oracle::events_of(&text);
    let store = dir.path().join("store");
    assert!(run(&["ingest", log.to_str().unwrap(), "--store", store.to_str().unwrap(), "-q"]).status.success());
    let out_file = dir.path().join("out");
    let cli = |spill: &str, args: &[&str]| {
        let o = kaq().env("KAQ_SPILL_AFTER", spill).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        o.stdout
    };
    for q in ["", "verb:delete", "stage:RequestReceived", "| head 5", "| sort -time | head 9", "| count by verb"] {
        for all in [None, Some("--all-stages")] {
            for fmt in ["json", "csv"] {
                let input = ["--", q, log.to_str().unwrap()];
                let mut args = vec!["query", "--threads", "2", "--format", fmt];
                args.extend(all);
                let on_log = [&args[..], &input[..]].concat();
                let in_memory = cli("1000000000000", &on_log);
                assert_eq!(cli("0", &on_log), in_memory, "`{q}` {all:?} {fmt}");
                if fmt == "json" {
                    let got: Vec<Value> = String::from_utf8(in_memory.clone())
                        .unwrap()
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    assert_same(q, &got, &oracle(q, &events, all.is_some()));
                }
                // -o FILE: the same bytes.
                let to_file = [&args[..], &["-o", out_file.to_str().unwrap()], &input[..]].concat();
                assert!(cli("0", &to_file).is_empty());
                assert_eq!(std::fs::read(&out_file).unwrap(), in_memory, "`{q}` -o");
                let on_store = [&args[..], &["--store", store.to_str().unwrap(), "--", q]].concat();
                assert_eq!(cli("0", &on_store), cli("1000000000000", &on_store), "`{q}` {all:?} {fmt} store");
            }
        }
    }
    // An error before any row: no output, no header, no file.
    let gone = dir.path().join("gone.csv");
    let o = kaq()
        .env("KAQ_SPILL_AFTER", "0")
        .args(["query", "--format", "csv", "-o", gone.to_str().unwrap(), "--store"])
        .arg(dir.path().join("no-store"))
        .arg("")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(o.stdout.is_empty() && !gone.exists(), "{}", stderr(&o));
    let o = kaq().env("KAQ_SPILL_AFTER", "lots").args(["query", "", log.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("KAQ_SPILL_AFTER"), "{}", stderr(&o));
    // No temporary file can be made: the query stops with the reason (and where), prints
    // nothing, and does not panic.
    let o = kaq()
        .env("KAQ_SPILL_AFTER", "0")
        .env("TMPDIR", dir.path().join("no-such-dir"))
        .env("RUST_BACKTRACE", "0")
        .args(["query", "--format", "json", "", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.contains("temporary file") && err.contains("no-such-dir") && !err.contains("panicked"), "{err}");
}
