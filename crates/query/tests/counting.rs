//! `scan_counting` (a first step of bare counts or a timeline counted on the decode threads, a
//! first step `stats`, `top` or `rare` fed the rows kept as they are settled)
//! against `scan` followed by every step, and against the reference evaluator (kaq-oracle): the
//! same rows in the same order, over logs read in many small chunks by several threads.

use std::io::Write;
use std::path::PathBuf;

use kaq_input::ReadOptions;
use kaq_oracle::arb::{NOW, event, query};
use kaq_query::scan::{scan, scan_counting};
use kaq_query::{Options, Plan, compile, output, pipeline};
use proptest::prelude::*;
use serde_json::Value;

fn plan(q: &str, all_stages: bool) -> Plan {
    let opts = Options { now_us: NOW, all_stages, ..Options::default() };
    compile(q, &opts).unwrap_or_else(|e| panic!("`{q}` does not compile: {}", e[0].render(q)))
}

fn write_log(dir: &tempfile::TempDir, lines: &[String]) -> PathBuf {
    write_named(dir, "audit.log", lines)
}

fn write_named(dir: &tempfile::TempDir, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    p
}

/// The answer as printed by `scan` and every step, and by `scan_counting` and the steps after
/// the ones it ran; whether it counted; and the matching rows each says it kept.
fn both(plan: &Plan, log: &PathBuf) -> (Vec<String>, Vec<String>, bool) {
    // Chunks of a few lines, on three threads: groups are joined across many chunks.
    both_in(plan, std::slice::from_ref(log), 700)
}

/// [`both`] over `inputs`, read in chunks of about `chunk_bytes`.
fn both_in(plan: &Plan, inputs: &[PathBuf], chunk_bytes: usize) -> (Vec<String>, Vec<String>, bool) {
    let read = ReadOptions { threads: 3, chunk_bytes, ..ReadOptions::default() };
    let cols = plan.output_columns();
    let steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
    let plain = scan(plan, inputs, &read, 0, &mut |_| {}).expect("plain scan");
    let matched = plain.rows.len() as u64;
    let want = pipeline::run(&steps, plain.rows);
    let counted = scan_counting(plan, inputs, &read, 0, &mut |_| {}).expect("counting scan");
    assert_eq!(counted.ids_reused, plain.ids_reused);
    assert_eq!((counted.time_range, counted.report.counts.events), (plain.time_range, plain.report.counts.events));
    let did = counted.counted.is_some();
    let got = match counted.counted {
        Some(n) => {
            assert_eq!(n, matched, "the matching rows kept");
            pipeline::run(&steps[1..], counted.rows)
        }
        None => pipeline::run(&steps, counted.rows),
    };
    let show = |rows: &[kaq_query::Row]| rows.iter().map(|r| output::json_line(r, cols)).collect();
    (show(&want), show(&got), did)
}

fn oracle(q: &str, lines: &[String], all_stages: bool) -> Vec<Value> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let events = kaq_oracle::events_of(&text);
    kaq_oracle::answer(q, &events, &kaq_oracle::Options { now_us: NOW, all_stages })
}

fn same_as_oracle(q: &str, got: &[String], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "`{q}`: row counts differ\ngot: {got:?}\noracle: {want:?}");
    for (g, w) in got.iter().zip(want) {
        let g: Value = serde_json::from_str(g).expect("output is JSON");
        assert!(kaq_oracle::same_json(&g, w), "`{q}`: rows differ\ngot:    {g}\noracle: {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random queries over random events (auditIDs reused, stages superseding each other):
    /// counting gives the rows the plain scan and the steps give, and the oracle's.
    #[test]
    fn counting_equals_the_row_path(q in query(), events in proptest::collection::vec(event(), 0..80), all in any::<bool>()) {
        let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        let dir = tempfile::tempdir().unwrap();
        let log = write_log(&dir, &lines);
        let p = plan(&q, all);
        let (want, got, _) = both(&p, &log);
        prop_assert_eq!(&got, &want, "`{}`", q);
        same_as_oracle(&q, &got, &oracle(&q, &lines, all));
    }
}

fn ev(id: &str, stage: &str, user: &str, minute: u32, body: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"{id}","stage":"{stage}","requestURI":"/apis/apps/v1/namespaces/prod/deployments","verb":"create","user":{{"username":"{user}","groups":["system:authenticated","g-{user}","g-{user}"]}},"sourceIPs":["10.0.0.{minute}"],"objectRef":{{"resource":"deployments","namespace":"prod","name":"d{minute}","apiGroup":"apps","apiVersion":"v1"}},"responseStatus":{{"code":201}},"requestObject":{body},"requestReceivedTimestamp":"2026-11-20T00:{minute:02}:00.000000Z","stageTimestamp":"2026-11-20T00:{minute:02}:01.000000Z"}}"#
    )
}

/// Questions that count over a log whose requests have several stages (the first stage of each
/// is not its latest), whose groups are lists, and whose group values are equal numbers written
/// apart (`2` and `2.0`: one group, shown as its first kept event has it).
#[test]
fn counting_keeps_the_latest_stage_lists_and_first_spellings() {
    let mut lines = Vec::new();
    for i in 0..120u32 {
        let user = ["alice", "bob", "carol"][(i % 3) as usize];
        let id = format!("00000000-0000-0000-0000-{i:012x}");
        // The superseded stage says 2.0, the latest says 2: the group shows 2 (and the other
        // way round for odd requests).
        let (early, late) = if i % 2 == 0 { ("2.0", "2") } else { ("2", "2.0") };
        let tags = if i % 4 == 0 {
            r#"["a","b","a"]"#
        } else if i % 4 == 1 {
            "[]"
        } else {
            r#"["b"]"#
        };
        let body = |r: &str| format!(r#"{{"spec":{{"replicas":{r},"tags":{tags}}}}}"#);
        lines.push(ev(&id, "RequestReceived", user, i % 60, &body(early)));
        lines.push(ev(&id, "ResponseComplete", user, i % 60, &body(late)));
    }
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(&dir, &lines);
    let questions = [
        "| count by user",
        "| count by request.spec.replicas",
        "| count by request.spec.replicas, user | sort -count",
        "| count by groups",
        "| count by request.spec.tags, user",
        "| stats count, count as n by verb",
        "| count",
        "user:alice | count by user, request.spec.replicas",
        "| timeline 10m",
        "| timeline 10m by user",
        "| timeline 10m by request.spec.tags | where count > 3",
        "| timeline 5m by request.spec.replicas",
    ];
    for q in questions {
        for all in [false, true] {
            let p = plan(q, all);
            let (want, got, did) = both(&p, &log);
            assert!(did, "`{q}` counts as it reads");
            assert_eq!(got, want, "`{q}`, all stages {all}");
            same_as_oracle(q, &got, &oracle(q, &lines, all));
        }
    }
    // The latest stages only: one row per request.
    let (_, got, _) = both(&plan("| count by user", false), &log);
    assert_eq!(
        got,
        [r#"{"user":"alice","count":40}"#, r#"{"user":"bob","count":40}"#, r#"{"user":"carol","count":40}"#]
    );
    // One group for 2 and 2.0, spelled as the first request's latest record spells it.
    let (_, got, _) = both(&plan("| count by request.spec.replicas", false), &log);
    assert_eq!(got, [r#"{"request.spec.replicas":2,"count":120}"#]);
    // A first step `stats` with other aggregates, or `top`, is run in the scan too, fed the rows
    // kept as they are settled; other questions take the row path.
    for (q, first_step) in [
        ("| stats avg(code) by user", true),
        ("| top 2 user", true),
        ("| rare 1 verb by user", true),
        ("| table user", false),
        ("verb:create", false),
    ] {
        let (want, got, did) = both(&plan(q, false), &log);
        assert_eq!(did, first_step, "`{q}` runs its first step in the scan");
        assert_eq!(got, want, "`{q}`");
    }
}

/// `==` is not transitive for numbers past 2^53 (`Int(2^53)` = `Float(2^53)` = `Int(2^53 + 1)`):
/// a value joins the first group made before it that it equals, so groups must be made in the
/// order of their first kept event, not of their first event in a chunk (a superseded stage).
#[test]
fn equal_numbers_join_the_group_of_the_first_kept_event() {
    let id = |i: u32| format!("00000000-0000-0000-0000-{i:012x}");
    let body = |r: &str| format!(r#"{{"spec":{{"replicas":{r}}}}}"#);
    let lines = [
        ev(&id(1), "RequestReceived", "alice", 1, &body("9007199254740992")),
        ev(&id(2), "ResponseComplete", "alice", 2, &body("9007199254740993")),
        ev(&id(1), "ResponseComplete", "alice", 1, &body("9007199254740992")),
        ev(&id(3), "ResponseComplete", "alice", 3, &body("9007199254740992.0")),
    ]
    .map(String::from);
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(&dir, &lines);
    for q in ["| count by request.spec.replicas", "| timeline 1h by request.spec.replicas"] {
        // One chunk, and one line a chunk.
        for chunk in [1 << 20, 100] {
            let (want, got, did) = both_in(&plan(q, false), std::slice::from_ref(&log), chunk);
            assert!(did);
            assert_eq!(got, want, "`{q}`, chunks of {chunk} bytes");
        }
    }
    let (_, got, _) = both_in(&plan("| count by request.spec.replicas", false), std::slice::from_ref(&log), 1 << 20);
    assert_eq!(
        got,
        [
            r#"{"request.spec.replicas":9007199254740992,"count":1}"#,
            r#"{"request.spec.replicas":9007199254740993,"count":2}"#
        ]
    );
}

/// Thousands of matching events (the latest-stage rule then first keeps the hits whose auditID
/// no other record carries), some requests in two stages, some auditIDs carried by two requests,
/// over two files: counting gives the row path's rows and the oracle's. With a Parquet file among
/// the inputs, the scan makes rows.
#[test]
fn counting_many_events_over_several_files() {
    let mut lines = Vec::new();
    for i in 0..6000u32 {
        let user = ["alice", "bob", "carol", "dave"][(i % 4) as usize];
        // Every 7th auditID is carried by two requests (another user); every 5th request has an
        // earlier stage.
        let id = format!("00000000-0000-0000-0000-{:012x}", if i % 7 == 1 { i - 1 } else { i });
        let body = format!(r#"{{"spec":{{"replicas":{}}}}}"#, i % 3);
        if i % 5 == 0 {
            lines.push(ev(&id, "RequestReceived", user, i % 60, &body));
        }
        lines.push(ev(&id, "ResponseComplete", user, i % 60, &body));
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = lines.split_at(lines.len() / 2);
    let files = [write_named(&dir, "a.log", a), write_named(&dir, "b.log", b)];
    for q in
        ["| count by user", "| count by request.spec.replicas, user", "| timeline 10m by user", "| count by groups"]
    {
        for all in [false, true] {
            let p = plan(q, all);
            let (want, got, did) = both_in(&p, &files, 64 << 10);
            assert!(did, "`{q}`");
            assert_eq!(got, want, "`{q}`, all stages {all}");
            same_as_oracle(q, &got, &oracle(q, &lines, all));
        }
    }
    // A kaq Parquet file among the inputs: its rows are read otherwise, so the first step is not
    // counted as the lines are read, but fed the rows kept ([`kaq_query::scan::scan_counting`]).
    let mut builder = kaq_columnar::EventBatchBuilder::with_capacity(50);
    for l in a.iter().take(50) {
        builder.append(&kaq_schema::decode_event(l, &Default::default()).unwrap());
    }
    let parquet = dir.path().join("c.parquet");
    let mut w = kaq_columnar::SortedParquetWriter::create(&parquet, kaq_columnar::WriteOptions::default()).unwrap();
    w.write(builder.finish()).unwrap();
    w.finish().unwrap();
    let (want, got, did) = both_in(&plan("| count by user", false), &[files[1].clone(), parquet], 64 << 10);
    assert!(did, "with a Parquet input, the first step is fed the rows kept");
    assert_eq!(got, want);
}
