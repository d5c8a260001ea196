//! The streaming scan (`scan_streaming`: rows held in a temporary file past a budget, handed on
//! once the latest-stage rule is settled) against the scan that returns its rows, and against the
//! reference evaluator (kaq-oracle): the same rows in the same order.

use std::io::Write;
use std::path::PathBuf;

use kaq_input::ReadOptions;
use kaq_oracle::arb::{NOW, event, query};
use kaq_query::scan::{Stream, Streamed, scan, scan_streaming};
use kaq_query::{Options, Plan, compile, output};
use proptest::prelude::*;

fn plan(q: &str, all_stages: bool) -> Plan {
    let opts = Options { now_us: NOW, all_stages, ..Options::default() };
    compile(q, &opts).unwrap_or_else(|e| panic!("`{q}` does not compile: {}", e[0].render(q)))
}

/// The rows as printed, by the plain scan (and its stages), and by the streaming scan with
/// `spill_after`, with what it reports.
fn both(plan: &Plan, inputs: &[PathBuf], spill_after: usize) -> (Vec<String>, Vec<String>, Streamed) {
    let read = ReadOptions { threads: 2, ..ReadOptions::default() };
    let cols = plan.output_columns();
    let steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
    let plain = scan(plan, inputs, &read, 0, &mut |_| {}).expect("plain scan");
    let plain_rows = kaq_query::pipeline::run(&steps, plain.rows.clone());
    let mut streamed_rows = Vec::new();
    let mut emit = |r| {
        streamed_rows.push(r);
        Ok(())
    };
    let mut stream = Stream { emit: &mut emit, spill_after };
    let s = scan_streaming(plan, inputs, &read, 0, &mut |_| {}, &mut stream).expect("streaming scan");
    assert!(s.rows.is_empty(), "a streaming scan returns no rows");
    let info = s.streamed.expect("a streaming scan says what it handed on");
    assert_eq!((info.ids_reused, s.ids_reused), (plain.ids_reused, plain.ids_reused));
    assert_eq!((s.time_range, s.parquet_rows), (plain.time_range, plain.parquet_rows));
    let streamed_rows = kaq_query::pipeline::run(&steps, streamed_rows);
    let streamed = streamed_rows.iter().map(|r| output::json_line(r, cols)).collect();
    (plain_rows.iter().map(|r| output::json_line(r, cols)).collect(), streamed, info)
}

fn write_log(dir: &tempfile::TempDir, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    p
}

fn ev(id: &str, stage: &str, verb: &str, uri: &str, user: &str, received: u32, stage_s: u32) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"{stage}","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}"}},"sourceIPs":["10.0.0.1"],"objectRef":{{"resource":"pods","namespace":"prod","name":"p{received}"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T00:{:02}:{:02}.000000Z","stageTimestamp":"2026-11-20T00:{:02}:{:02}.000000Z","pad":"{}"}}"#,
        received / 60 % 60,
        received % 60,
        stage_s / 60 % 60,
        stage_s % 60,
        "x".repeat(200)
    )
}

/// A log whose requests' stages lie far apart (other chunks of the parallel reader), some in
/// reverse order, some auditIDs carried by two requests, one request with a Panic.
fn hard_log() -> Vec<String> {
    let n = 3000u32;
    let mut lines = Vec::new();
    for i in 0..n {
        let id = format!("00000000-0000-0000-0000-{i:012x}");
        let (verb, user) = if i % 3 == 0 { ("delete", "alice") } else { ("get", "bob") };
        let uri = format!("/api/v1/namespaces/prod/pods/p{i}");
        if i % 7 == 0 {
            // Out of order: the complete stage first.
            lines.push(ev(&id, "ResponseComplete", verb, &uri, user, i, i + 1));
        } else {
            lines.push(ev(&id, "RequestReceived", verb, &uri, user, i, i));
        }
        if i % 11 == 0 {
            // Another request carrying the same auditID (a client's Audit-ID).
            lines.push(ev(&id, "ResponseComplete", "list", "/api/v1/pods", "carol", i + 5, i + 6));
        }
    }
    for i in 0..n {
        let id = format!("00000000-0000-0000-0000-{i:012x}");
        let (verb, user) = if i % 3 == 0 { ("delete", "alice") } else { ("get", "bob") };
        let uri = format!("/api/v1/namespaces/prod/pods/p{i}");
        let stage = match i {
            _ if i % 13 == 0 => "Panic",
            _ if i % 7 == 0 => "RequestReceived",
            _ => "ResponseComplete",
        };
        let at = if stage == "RequestReceived" { i } else { i + 1 };
        lines.push(ev(&id, stage, verb, &uri, user, i, at));
    }
    lines
}

#[test]
fn streaming_equals_the_plain_scan_and_the_oracle_on_far_apart_stages() {
    let dir = tempfile::tempdir().unwrap();
    let lines = hard_log();
    let log = write_log(&dir, "hard.log", &lines);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let events = kaq_oracle::events_of(&text);
    for q in [
        "",
        "verb:delete",
        "user:alice",
        "stage:Panic",
        "verb:list",
        "| head 7",
        "| sort -time | head 30",
        "| count by verb",
    ] {
        for all in [false, true] {
            let p = plan(q, all);
            let want: Vec<serde_json::Value> =
                kaq_oracle::answer(q, &events, &kaq_oracle::Options { now_us: NOW, all_stages: all });
            for spill_after in [0, 4096, usize::MAX] {
                let (plain, streamed, info) = both(&p, std::slice::from_ref(&log), spill_after);
                assert_eq!(plain, streamed, "`{q}` all_stages={all} spill_after={spill_after}");
                let got: Vec<serde_json::Value> = streamed.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
                assert_eq!(got.len(), want.len(), "`{q}` all_stages={all}: row counts against the oracle");
                for (g, w) in got.iter().zip(&want) {
                    assert!(kaq_oracle::same_json(g, w), "`{q}`: {g} against the oracle's {w}");
                }
                if p.steps.is_empty() {
                    assert_eq!(info.rows, plain.len() as u64);
                }
                // The rows went through the temporary file when the budget was small: the
                // streaming path is the one taken, not the plain one.
                match spill_after {
                    0 => assert!(info.spilled > 0 || plain.is_empty(), "`{q}`: nothing spilled"),
                    usize::MAX => assert_eq!(info.spilled, 0),
                    _ => {}
                }
            }
        }
    }
    // The whole log, every request at its latest stage: 3000 requests, and 273 more sharing an
    // auditID with one of them.
    let (plain, _, info) = both(&plan("", false), std::slice::from_ref(&log), 0);
    assert_eq!(plain.len(), 3000 + 273);
    assert_eq!(info.spilled, lines.len() as u64, "every matching row was held in the file");
    assert!(info.ids_reused > 0);
}

#[test]
fn several_files_and_parquet_stream_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let lines = hard_log();
    let (a, b) = lines.split_at(lines.len() / 2);
    let la = write_log(&dir, "a.log", a);
    let lb = write_log(&dir, "b.log", b);
    // The second half as kaq Parquet, in row groups of 50 (many row groups under way at once).
    let mut builder = kaq_columnar::EventBatchBuilder::new();
    for l in b {
        builder.append(&kaq_schema::decode_event(l, &Default::default()).unwrap());
    }
    let pq = dir.path().join("b.parquet");
    let opts = kaq_columnar::WriteOptions { row_group_rows: 50, run_rows: 50, ..Default::default() };
    let mut w = kaq_columnar::SortedParquetWriter::create(&pq, opts).unwrap();
    w.write(builder.finish()).unwrap();
    w.finish().unwrap();
    for inputs in [vec![la.clone(), lb], vec![la, pq.clone()], vec![pq]] {
        for q in ["", "verb:delete", "user:carol", "| count by user"] {
            for all in [false, true] {
                for spill_after in [0, 10_000] {
                    let (plain, streamed, info) = both(&plan(q, all), &inputs, spill_after);
                    assert_eq!(plain, streamed, "`{q}` over {inputs:?}");
                    assert!(!plain.is_empty());
                    if spill_after == 0 && q.is_empty() {
                        assert!(info.spilled > 0);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random queries over random events (reused auditIDs, stages in any order): the streaming
    /// scan gives the plain scan's rows, in its order, whatever the budget.
    #[test]
    fn streaming_equals_plain(
        q in query(),
        events in proptest::collection::vec(event(), 0..60),
        all in any::<bool>(),
        budget in prop_oneof![Just(0usize), 0usize..4000, Just(usize::MAX)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        let log = write_log(&dir, "r.log", &lines);
        let p = plan(&q, all);
        let (plain, streamed, _) = both(&p, std::slice::from_ref(&log), budget);
        prop_assert_eq!(plain, streamed, "`{}`", q);
    }
}
