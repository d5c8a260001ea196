//! Warnings for the silent traps (issue 12): a value no event holds, a stage typed without its
//! `|`, time bounds that miss the data. Each is a `kaq: warning:` line on stderr (`kaq query`) or
//! before the answer (the REPL); the answer on stdout is the same as without it, and the same as
//! the reference evaluator's.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::{kaq, run, stderr, tmp, with_stdin};

/// Six requests on 2026-11-20 between 05:00 and 05:10 UTC; one carries a `decision` no
/// kube-apiserver writes (`deny`), one a message with the words "count by ip".
fn log(dir: &Path) -> PathBuf {
    let ev = |id: &str, min: u32, verb: &str, user: &str, resource: &str, ns: &str, code: u32, extra: &str| {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/{ns}/{resource}","verb":"{verb}","user":{{"username":"{user}","groups":["system:authenticated"]}},"sourceIPs":["203.0.113.9"],"objectRef":{{"resource":"{resource}","namespace":"{ns}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":{code}{extra}}},"requestReceivedTimestamp":"2026-11-20T05:{min:02}:00.000000Z","stageTimestamp":"2026-11-20T05:{min:02}:00.100000Z","annotations":{{"authorization.k8s.io/decision":"{decision}"}}}}"#,
            decision = if id == "a4" { "deny" } else { "allow" },
        )
    };
    let lines = [
        ev("a1", 0, "get", "alice@example.com", "pods", "prod", 200, ""),
        ev("a2", 2, "delete", "bob@example.com", "secrets", "prod", 200, ""),
        ev("a3", 4, "list", "system:serviceaccount:ci:deployer", "pods", "staging", 200, ""),
        ev("a4", 6, "get", "system:anonymous", "secrets", "prod", 403, ""),
        ev("a5", 8, "create", "mallory", "pods", "prod", 401, r#","message":"rate limit: count by ip exceeded""#),
        ev("a6", 10, "delete", "alice@example.com", "pods", "staging", 200, ""),
    ];
    let p = dir.join("audit.log");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn query(args: &[&str]) -> Output {
    let o = run(&[&["query"], args].concat());
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

/// The `kaq: warning:` lines of an output.
fn warnings(o: &Output) -> Vec<String> {
    stderr(o).lines().filter(|l| l.starts_with("kaq: warning:")).map(str::to_string).collect()
}

fn oracle(q: &str, log: &Path) -> Vec<Value> {
    let events = crate::common::reference_events(log);
    match kaq_oracle::run(q, &events, &kaq_oracle::Options { now_us: 0, all_stages: false }) {
        kaq_oracle::Answer::Events(e) => e,
        kaq_oracle::Answer::Rows(r) => r.into_iter().map(|r| Value::Object(r.into_iter().collect())).collect(),
    }
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Asserts that `q` over `input` warns exactly `want` (the lines after `kaq: warning: `), and that
/// stdout is what `--quiet` gives (no warnings) and, for a log, what the oracle answers.
fn assert_warns(q: &str, input: &[&str], want: &[&str]) -> Output {
    let o = query(&[&[q], input].concat());
    let got = warnings(&o);
    let want: Vec<String> = want.iter().map(|w| format!("kaq: warning: {w}")).collect();
    assert_eq!(got, want, "`{q}`:\n{}", stderr(&o));
    let quiet = query(&[&[q, "-q"], input].concat());
    assert_eq!(o.stdout, quiet.stdout, "`{q}`: the warning changed the answer");
    assert!(warnings(&quiet).is_empty() && quiet.stderr.is_empty(), "`{q}` -q: {}", stderr(&quiet));
    if let [file] = input
        && !file.starts_with("--")
    {
        let want = oracle(q, Path::new(file));
        let got = json_lines(&o);
        assert_eq!(got.len(), want.len(), "`{q}`");
        assert!(got.iter().zip(&want).all(|(g, w)| kaq_oracle::same_json(g, w)), "`{q}`: {got:?}\n{want:?}");
    }
    o
}

#[test]
fn a_value_no_event_can_hold_is_named_with_the_nearest() {
    let dir = tmp();
    let log = log(dir.path());
    let l = log.to_str().unwrap();
    assert_warns("verb:delet", &[l], &["no verb is `delet`; did you mean `delete`?"]);
    let o = assert_warns(
        "verb:DELETE | count",
        &[l],
        &["no verb is `DELETE` (values are case-sensitive); did you mean `delete`?"],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"count\":0}\n");
    // The value is pointed at.
    assert!(stderr(&o).contains("  | verb:DELETE | count\n  |      ^^^^^^\n"), "{}", stderr(&o));
    assert_warns("stage:RequestRecieved", &[l], &["no stage is `RequestRecieved`; did you mean `RequestReceived`?"]);
    // Every line was read (no literal to skip by): the logs are known not to hold it.
    assert_warns(
        "user_kind:humans | count by user",
        &[l],
        &["no user_kind is `humans` in the events read; did you mean `human`?"],
    );
    assert_warns("ns:prod -verb:lsit", &[l], &["no verb is `lsit`; did you mean `list`?"]);
    // `deny` is none of kube-apiserver's decisions, but this log holds one (forged): the scan
    // sees it, and a value that exists is never called a typo.
    assert_warns("decision:denied", &[l], &["no decision is `denied` (decision is allow or forbid)"]);
    assert_warns("decision:deny", &[l], &[]);
    assert_warns("decision:deny OR verb:lsit", &[l], &["no verb is `lsit`; did you mean `list`?"]);
    // Values that exist, wildcards, fields without a vocabulary (over logs): nothing said.
    for q in ["verb:delete stage:ResponseComplete", "verb:del* user_kind:human", "ns:prd", "decision:forbid"] {
        assert_warns(q, &[l], &[]);
    }

    // A store knows the values it holds: every keyword field it can enumerate is checked, and a
    // value it holds is never called a typo.
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    assert!(run(&["ingest", "--store", s, "--quiet", l]).status.success());
    let st = ["--store", s];
    assert_warns("ns:prd", &st, &["no ns is `prd` in the store; did you mean `prod`?"]);
    assert_warns("resource:secret | count", &st, &["no resource is `secret` in the store; did you mean `secrets`?"]);
    assert_warns("user:alice", &st, &["no user is `alice` in the store; did you mean `alice@example.com`?"]);
    assert_warns(
        "ns:Staging",
        &st,
        &["no ns is `Staging` in the store (values are case-sensitive); did you mean `staging`?"],
    );
    assert_warns("verb:delet", &st, &["no verb is `delet` in the store; did you mean `delete`?"]);
    for q in ["decision:deny", "ns:prod user:mallory resource:secrets", "verb:(get OR delete) ns:staging"] {
        assert_warns(q, &st, &[]);
    }
    // The same rows as over the log.
    let a = query(&["decision:deny", "--store", s]);
    let b = query(&["decision:deny", l]);
    assert_eq!(json_lines(&a), json_lines(&b));
    assert_eq!(json_lines(&a).len(), 1);
}

#[test]
fn a_stage_without_its_pipe_is_pointed_out() {
    let dir = tmp();
    let log = log(dir.path());
    let l = log.to_str().unwrap();
    let o = assert_warns(
        "code:401 count by ip",
        &[l],
        &["`count by ip` is read as part of the search, not as a stage; did you mean `| count by ip`?"],
    );
    // The free-text search it is: the event whose message has those words.
    let rows = json_lines(&o);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["auditID"], "a5");
    assert!(stderr(&o).contains("  | code:401 count by ip\n  |          ^^^^^^^^^^^\n"), "{}", stderr(&o));
    assert_warns(
        "stats p99(latency) by verb",
        &[l],
        &[
            "`stats p99(latency) by verb` is read as part of the search, not as a stage; did you mean `| stats p99(latency) by verb`?",
        ],
    );
    assert_warns(
        "verb:get table user",
        &[l],
        &["`table user` is read as part of the search, not as a stage; did you mean `| table user`?"],
    );
    // A stage name alone, or with words that make no stage, is a word like any other.
    for q in ["code:401 count", "table", "limit count exceeded", "\"count by ip\""] {
        assert_warns(q, &[l], &[]);
    }
    // A query that fails for want of the `|` gets the warning before its error.
    let o = run(&["query", "code:401 count by ip | where count > 20", l]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let (warn, error) =
        (err.find("did you mean `| count by ip`?").unwrap(), err.find("unknown field `count`").unwrap());
    assert!(warn < error, "{err}");
}

#[test]
fn time_bounds_outside_the_data_show_both_ranges() {
    let dir = tmp();
    let log = log(dir.path());
    let l = log.to_str().unwrap();
    let range = "run from 2026-11-20T05:00:00Z to 2026-11-20T05:10:00Z";
    assert_warns(
        "| count",
        &[l, "--since", "2026-11-21"],
        &[&format!("the time bounds (time >= 2026-11-21T00:00:00Z) leave nothing: the events read {range}")],
    );
    assert_warns(
        "time<2026-11-20T04:00Z",
        &[l],
        &[&format!("the time bounds (time < 2026-11-20T04:00:00Z) leave nothing: the events read {range}")],
    );
    // With a prefilter, the events read are those that could match.
    assert_warns(
        "verb:delete",
        &[l, "--until", "2026-11-19"],
        &[
            "the time bounds (time < 2026-11-19T00:00:00Z) leave nothing: the events read (the lines the prefilter skipped aside) run from 2026-11-20T05:02:00Z to 2026-11-20T05:10:00Z",
        ],
    );
    // Bounds that meet the data: nothing said, even with no rows.
    assert_warns("verb:watch", &[l, "--since", "2026-11-20T05:05Z"], &[]);
    assert_warns("| count", &[l, "--since", "2026-11-20T05:10Z", "--until", "2026-11-20T06:00Z"], &[]);

    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    assert!(run(&["ingest", "--store", s, "--quiet", l]).status.success());
    let o = assert_warns(
        "| count",
        &["--store", s, "--since", "2026-11-20T05:10:00.5Z", "--until", "2027-01-01"],
        &[&format!(
            "the time bounds (2026-11-20T05:10:00.500000Z <= time < 2027-01-01T00:00:00Z) leave nothing: the store's events {range}"
        )],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"count\":0}\n");
    // `--since 2h`, resolved against now (after this log's day).
    let o = query(&["| count", "--store", s, "--since", "2h"]);
    let w = warnings(&o);
    assert!(
        w.len() == 1 && w[0].starts_with("kaq: warning: the time bounds (time >= 20") && w[0].ends_with(range),
        "{w:?}"
    );
}

#[test]
fn the_repl_warns_before_the_answer() {
    let dir = tmp();
    let log = log(dir.path());
    let l = log.to_str().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    assert!(run(&["ingest", "--store", s, "--quiet", l]).status.success());
    let input = "ns:prd | count\n\
                 code:401 count by ip\n\
                 .since 2h\n\
                 | count\n\
                 .since off\n\
                 verb:delete | count\n";
    for source in [vec!["--store", s], vec![l]] {
        let o = with_stdin(kaq().arg("repl").args(&source).env("KAQ_HISTORY", ""), input.as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        let w = warnings(&o);
        let what = if source[0] == "--store" { "the store's events" } else { "the events read" };
        let mut want = vec![
            "kaq: warning: `count by ip` is read as part of the search, not as a stage; did you mean `| count by ip`?"
                .to_string(),
        ];
        if source[0] == "--store" {
            want.insert(0, "kaq: warning: no ns is `prd` in the store; did you mean `prod`?".into());
        }
        assert_eq!(w[..want.len()], want, "{err}");
        assert_eq!(w.len(), want.len() + 1, "{err}");
        assert!(
            w[want.len()].ends_with(&format!("{what} run from 2026-11-20T05:00:00Z to 2026-11-20T05:10:00Z")),
            "{err}"
        );
        // The answers are those of `kaq query`.
        let out: Vec<Value> =
            String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let q = |text: &str, extra: &[&str]| json_lines(&query(&[&[text, "-q"], source.as_slice(), extra].concat()));
        let want_rows = [
            q("ns:prd | count", &[]),
            q("code:401 count by ip", &[]),
            q("| count", &["--since", "2h"]),
            q("verb:delete | count", &[]),
        ]
        .concat();
        assert_eq!(out, want_rows);
        assert_eq!(out[1]["auditID"], "a5");
        assert_eq!(out[3]["count"], 2);
    }
}
