//! Projection: a store query whose stages keep some fields reads only the columns of its fields
//! (and those the latest-stage rule and request identity need), never whole rows, and answers
//! exactly as the raw log and the reference evaluator do. The log is gen-audit's with every stage
//! (a request's RequestReceived record has no response code and an earlier stage time than its
//! ResponseComplete record: conditions on those hold for one stage of a request and not the
//! other), ingested as several segments, as one (compacted), and without stages as one segment of
//! distinct auditIDs.

use std::path::{Path, PathBuf};

use kaq_store::{IngestOptions, Projection, Store, TraceStep};

mod common;
use common::{NOW, assert_same, gen_audit, json_rows, raw};

/// A generated log (`--stages` or not); `None` (with a printed reason) without the generator.
fn generated(dir: &Path, stages: bool) -> Option<PathBuf> {
    let gen_audit = gen_audit()?;
    let log = dir.join(if stages { "stages.log" } else { "plain.log" });
    let mut cmd = std::process::Command::new(&gen_audit);
    cmd.args(["--events", "3000", "--seed", "11", "--hours", "2", "--out"]).arg(&log);
    if stages {
        cmd.arg("--stages");
    }
    let out = cmd.output().expect("gen-audit runs");
    assert!(out.status.success(), "gen-audit: {}", String::from_utf8_lossy(&out.stderr));
    Some(log)
}

/// Queries whose stages keep a few fields (every access path: index, column tests, columnar
/// answers, full scan), and one of whole events.
const QUERIES: &[&str] = &[
    "verb:get | table time, id, user, verb",
    // Hold for a request's RequestReceived record, not its ResponseComplete one (and the reverse):
    // the latest stage decides, so the other stage's columns must be read too.
    "-code:200 | table time, id, code, stage",
    "code:200 | table time, id, user, stage, stage_time",
    "-code:* | count by verb, stage",
    "stage_time<2026-11-20T01:00Z | table id, stage, stage_time",
    "-user_kind:(node OR system) | count by user",
    "resource:pods | stats count, dc(name), max(latency), min(stage_time) by verb",
    "code>=400 | sort time, id | dedup user | table user, code, time",
    "verb:delete | table time, user, ns, name",
    "verb:(create OR update OR patch) | count by resource, verb",
    "ns:kube-system | stats count, values(code) by user_kind",
    "latency>100ms | table id, latency, verb",
    "user_kind:human | table time, id, user, client_ip | sort time, id",
    "request.spec:* | table id, resource, name",
    "| timeline 10m",
    "user_kind:serviceaccount | dedup ua | count",
    "stage:RequestReceived | count by verb",
    // Whole events: every column.
    "verb:delete ns:kube-system",
];

/// Every query over `store` answers as the raw log and the oracle do, reading only its columns.
fn check(store: &Store, log: &Path, label: &str) {
    let events = kaq_oracle::events_of(&std::fs::read_to_string(log).unwrap());
    let opts = kaq_query::Options { now_us: NOW, ..Default::default() };
    let mut answered = 0;
    for q in QUERIES {
        let plan = kaq_query::compile(q, &opts).unwrap();
        let what = format!("{label}: `{q}`");
        let got = store.run(&plan, &Default::default()).unwrap();
        let rows = json_rows(&got.rows, &got.columns);
        assert_same(&what, &rows, &raw(&plan, log));
        let oracle = kaq_oracle::answer(q, &events, &kaq_oracle::Options { now_us: NOW, all_stages: false });
        assert_same(&format!("{what} (oracle)"), &rows, &oracle);
        answered += usize::from(!rows.is_empty());

        // What was read: the plan's projection, shown in the trace.
        let physical = store.physical_plan(&plan);
        let read = got.trace.iter().find_map(|t| match t {
            TraceStep::Columns { read, of } => Some((read.clone(), *of)),
            _ => None,
        });
        let (read, of) = read.unwrap_or_else(|| panic!("{what}: no columns step in {:?}", got.trace));
        assert_eq!(of, kaq_columnar::COLUMNS.len());
        if plan.whole_events {
            assert_eq!(physical.projection, Projection::All, "{what}");
            assert_eq!(read, None, "{what}");
        } else {
            let Projection::Columns(cols) = &physical.projection else { panic!("{what}: whole rows read") };
            let read = read.unwrap_or_else(|| panic!("{what}: whole rows read: {:?}", got.trace));
            assert!(read.len() < 16 && cols.len() < 16, "{what}: {read:?}, {cols:?}");
            // Never the bodies unless asked for.
            let bodies = q.contains("request.");
            assert_eq!(read.contains(&"request"), bodies, "{what}: {read:?}");
            assert!(!read.contains(&"response") && !read.contains(&"annotations"), "{what}: {read:?}");
            assert!(physical.to_string().contains(&format!("columns: {} of {of}", cols.len())), "{what}: {physical}");
        }
    }
    assert!(answered >= QUERIES.len() - 2, "{label}: most queries have answers ({answered})");
}

#[test]
fn projected_answers_equal_the_raw_log_with_stages() {
    let dir = tempfile::tempdir().unwrap();
    let Some(log) = generated(dir.path(), true) else { return };
    // Several segments: the stages of a request may lie in different ones.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut store = Store::create(dir.path().join("store")).unwrap();
    for part in lines.chunks(lines.len() / 3 + 1) {
        let t: String = part.iter().map(|l| format!("{l}\n")).collect();
        store.ingest_reader("log", t.as_bytes(), &IngestOptions::default()).unwrap();
    }
    let opened = Store::open(dir.path().join("store")).unwrap();
    assert!(opened.manifest().segments.len() >= 3);
    check(&opened, &log, "three segments");

    // One segment holding several stages per auditID.
    store.compact().unwrap();
    let opened = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(opened.manifest().segments.len(), 1);
    assert!(!opened.manifest().segments[0].ids_unique);
    check(&opened, &log, "one segment");
}

#[test]
fn projected_answers_equal_the_raw_log_of_distinct_audit_ids() {
    let dir = tempfile::tempdir().unwrap();
    let Some(log) = generated(dir.path(), false) else { return };
    let mut store = Store::create(dir.path().join("store")).unwrap();
    store.ingest_paths(std::slice::from_ref(&log), &IngestOptions::default()).unwrap();
    let opened = Store::open(dir.path().join("store")).unwrap();
    assert!(opened.manifest().segments[0].ids_unique);
    check(&opened, &log, "one segment of distinct auditIDs");
}
