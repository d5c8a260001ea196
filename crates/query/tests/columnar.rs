//! The columnar scan (`kaq_query::columnar`) answers as the event scan does on a kaq Parquet file
//! of many small row groups, and skips the row groups whose `time` statistics lie outside a
//! query's time bounds.

use kaq_columnar::{EventBatchBuilder, SortedParquetWriter, WriteOptions};
use kaq_query::columnar::Scanned;
use kaq_query::{Options, Plan, Row, compile, pipeline};

const START: i64 = 1_795_154_400_000_000; // 2026-11-20T06:00:00Z

/// 1000 events, one a second from 06:00:00, in row groups of 50. With `gaps`, some events lack a
/// status code, a stage timestamp (so a latency), a namespace or source IPs.
fn file(dir: &std::path::Path, gaps: bool) -> std::path::PathBuf {
    let verbs = ["get", "list", "delete", "watch"];
    let mut builder = EventBatchBuilder::with_capacity(1000);
    let lines: Vec<String> = (0..1000i64)
        .map(|i| {
            let t = kaq_schema::time::format_micros(START + i * 1_000_000);
            let done = kaq_schema::time::format_micros(START + i * 1_000_000 + (i % 7) * 400_000);
            let mut e = serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("id-{i}"), "stage": "ResponseComplete",
                "requestURI": "/api/v1/pods", "verb": verbs[(i % 4) as usize],
                "user": {"username": format!("u{}", i % 5)}, "sourceIPs": [format!("10.0.0.{}", i % 3)],
                "objectRef": {"resource": "pods", "namespace": if i % 2 == 0 { "prod" } else { "dev" }},
                "responseStatus": {"code": if i % 9 == 0 { 401 } else { 200 }},
                "requestReceivedTimestamp": t, "stageTimestamp": done,
            });
            let o = e.as_object_mut().unwrap();
            if gaps && i % 11 == 0 {
                o.remove("responseStatus");
            }
            if gaps && i % 13 == 0 {
                o.remove("stageTimestamp");
            }
            if gaps && i % 23 == 0 {
                o["objectRef"].as_object_mut().unwrap().remove("namespace");
            }
            if gaps && i % 17 == 0 {
                o.remove("sourceIPs");
            }
            if gaps && i % 19 == 0 {
                o.insert("responseStatus".into(), serde_json::json!({"code": 500 + i % 3}));
            }
            e.to_string()
        })
        .collect();
    for l in &lines {
        builder.append(&kaq_schema::decode_event(l, &Default::default()).unwrap());
    }
    in_row_groups_of_50(builder, &dir.join("events.parquet"))
}

/// Writes the events as a kaq Parquet file of 50-row row groups.
fn in_row_groups_of_50(mut builder: EventBatchBuilder, path: &std::path::Path) -> std::path::PathBuf {
    let opts = WriteOptions { row_group_rows: 50, run_rows: 50, ..WriteOptions::default() };
    let mut w = SortedParquetWriter::create(path, opts).unwrap();
    w.write(builder.finish()).unwrap();
    w.finish().unwrap();
    path.to_path_buf()
}

/// `q` (every stage) over `files` by the event scan and the pipeline, and by the column scan: the
/// plan, the rows the event scan matched and its rows read, and the column scan (its `rows` taken
/// out), after asserting that both give the same answer.
fn both_ways(q: &str, files: &[std::path::PathBuf]) -> (Plan, usize, u64, Scanned) {
    let opts = Options { all_stages: true, ..Options::default() };
    let plan = compile(q, &opts).unwrap();
    let steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
    let scanned = kaq_query::scan::scan(&plan, files, &Default::default(), 0, &mut |_| {}).unwrap();
    let matched = scanned.rows.len();
    let want: Vec<Row> = pipeline::run(&steps, scanned.rows);
    let mut col = kaq_query::columnar::scan(&plan, files, 2, None).expect("a columnar plan").unwrap();
    let rest = if col.first_step_done { &steps[1..] } else { &steps[..] };
    assert_eq!(pipeline::run(rest, std::mem::take(&mut col.rows)), want, "`{q}`");
    (plan, matched, scanned.parquet_rows, col)
}

#[test]
fn columnar_scan_equals_event_scan_and_skips_row_groups_out_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), false);
    let files = [path];
    for (q, pruned) in [
        ("| count by user", false),
        ("time>=2026-11-20T06:10:00Z | count by verb, ns", true),
        ("time>=2026-11-20T06:05:00Z time<2026-11-20T06:06:00Z | timeline 10s", true),
        ("time:2026-11-20T06:03 code:401 | count by ip", true),
        ("time<2026-11-20T06:01:00Z latency>1s | stats p99(latency), count by user", true),
        ("time>2026-11-20T07:00:00Z | count", true),
        ("verb:delete ns:prod | table time, user", false),
    ] {
        let (plan, matched, _, col) = both_ways(q, &files);
        if pruned {
            assert!(col.rows_read < 1000, "`{q}` read {} rows", col.rows_read);
        } else {
            assert_eq!(col.rows_read, 1000, "`{q}`");
        }
        // The rows a store would read whole: the same, found from the filter's columns.
        let m = kaq_query::columnar::matching_rows(&plan, &files[0], 2, None).unwrap().unwrap();
        assert_eq!(m.positions.len(), matched, "`{q}`");
    }
}

/// `stats` as the first step is computed from the columns as they are read (no row per event), and
/// gives exactly the rows the event scan and the pipeline's `stats` give: values, types, order.
#[test]
fn columnar_stats_equal_pipeline_stats() {
    let dir = tempfile::tempdir().unwrap();
    let files = [file(dir.path(), true)];
    for q in [
        "| stats p50(latency), p90(latency), p95(latency), p99(latency) by verb",
        "| stats avg(latency), sum(latency), min(latency), max(latency), count(latency), count by verb, ns",
        "| stats count, count(code), avg(code), sum(code), p50(code), p99(code), min(code), max(code)",
        "latency>1s | stats p99(latency) by verb",
        // Rows outside the latency bounds are passed over before the filter (LatencyBound).
        "latency<=1s | stats count, max(latency) by verb",
        "latency>=500ms latency<2s | stats count, min(latency), max(latency)",
        "latency>1s OR verb:get | stats count by verb",
        "NOT latency>1s | stats count, max(latency)",
        "latency>1s | count by user",
        "code>=400 | stats dc(user), values(user), dc(ip), values(ip), min(user), max(user) by code",
        "| stats min(time), max(time), p50(time), p90(time), values(verb), dc(verb) by user",
        "| stats p95(latency), avg(code), values(code), count(ip), min(ip), max(client_ip) by ns, user",
        "verb:delete | stats avg(latency), p99(code), values(user), dc(ns)",
        "| stats p99(latency), avg(code), values(user), count by ns",
        "time>2026-11-20T07:00:00Z | stats avg(latency), sum(code), p99(latency), values(user), count",
        "time>2026-11-20T07:00:00Z | stats avg(latency) by verb",
        "time>=2026-11-20T06:10:00Z | stats p99(latency) as p, avg(latency) by verb | sort -p | head 2",
    ] {
        let (_, _, _, col) = both_ways(q, &files);
        assert!(col.first_step_done, "`{q}`: stats computed from the columns");
    }
}

/// 1000 events 10 ms apart, in row groups of 50 (half a second each), whose values differ by row
/// group: `delete` only in groups 3 and 4, `prod` only in 15, code 401 only in 7 and 8, 500 and
/// 503 only in 10 (no 200 there), latencies over a second only in 12 (elsewhere under 100 ms).
fn grouped_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut builder = EventBatchBuilder::with_capacity(1000);
    for i in 0..1000i64 {
        let g = i / 50;
        let t = START + i * 10_000;
        let latency = if g == 12 { 2_000_000 + (i % 5) * 100_000 } else { (i % 5) * 20_000 };
        let verb = if (g == 3 || g == 4) && i % 2 == 0 { "delete" } else { ["get", "list", "watch"][(i % 3) as usize] };
        let ns = if g == 15 { "prod" } else { ["a-dev", "b-test"][(i % 2) as usize] };
        let code = match g {
            10 if i % 4 == 0 => 500,
            10 => 503,
            7 | 8 if i % 3 == 0 => 401,
            _ => 200,
        };
        let line = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": format!("id-{i}"), "stage": "ResponseComplete",
            "requestURI": "/api/v1/pods", "verb": verb,
            "user": {"username": if i % 5 == 0 { "system:node:n1".to_string() } else { format!("u{}", i % 5) }},
            "sourceIPs": [format!("10.0.0.{}", i % 3)],
            "objectRef": {"resource": "pods", "namespace": ns},
            "responseStatus": {"code": code},
            "requestReceivedTimestamp": kaq_schema::time::format_micros(t),
            "stageTimestamp": kaq_schema::time::format_micros(t + latency),
        })
        .to_string();
        builder.append(&kaq_schema::decode_event(&line, &Default::default()).unwrap());
    }
    in_row_groups_of_50(builder, &dir.join("grouped.parquet"))
}

/// Row groups skipped by the statistics of `code`, `latency` (from `time` and `stage_time`) and
/// string columns: the same answers as the event scan (which reads every row), reading only the
/// row groups that can hold a match.
#[test]
fn columnar_scan_skips_row_groups_by_column_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let files = [grouped_file(dir.path())];
    for (q, rows_read) in [
        ("| count by verb", 1000),
        ("code:401 | count by ip", 100),
        ("code:4xx | count by user", 100),
        ("code>=500 | count by user", 50),
        ("code>=400 code<500 | count", 100),
        ("code>400 | count", 150),
        ("code>=500.5 | count", 50),
        ("code>503.5 | count", 0),
        ("code:(401 OR 500) | count by code", 150),
        ("code!=200 | count", 1000),
        ("latency>1s | stats p99(latency), count by user", 50),
        ("latency>=2.4s | count", 50),
        ("latency<1ms | count", 950),
        ("verb:delete | table time, user", 100),
        ("verb:DELETE | count", 0),
        ("verb:del* | count", 1000),
        ("verb:(delete OR deletecollection) | count by ns", 100),
        ("NOT verb:delete | count", 1000),
        ("code:401 OR verb:delete | count", 1000),
        ("ns:prod | count by user_kind", 50),
        ("ns>=prod | count", 50),
        ("ns<b-test | count", 950),
        ("verb:delete ns:prod | count", 0),
        ("user_kind:node code:500 | count", 50),
        ("verb:delete time>=2026-11-20T06:00:02Z | count", 50),
        ("ns:* | count", 1000),
    ] {
        let (plan, matched, parquet_rows, col) = both_ways(q, &files);
        assert_eq!(parquet_rows, 1000);
        assert_eq!(col.rows_read, rows_read, "`{q}`");
        assert_eq!(col.groups_skipped, 20 - rows_read / 50, "`{q}`");
        // The rows a store would read whole: the same, found from the filter's columns.
        let m = kaq_query::columnar::matching_rows(&plan, &files[0], 2, None).unwrap().unwrap();
        assert_eq!(m.positions.len(), matched, "`{q}`");
        assert_eq!(m.groups_skipped, col.groups_skipped, "`{q}`");
    }
}

/// Filters on `code` alone are answered once per status code (`KeyMemo::Int`): the same rows as
/// the event scan, with codes missing, in the memo's range and past it.
#[test]
fn code_filters_answered_by_value_equal_the_event_scan() {
    let dir = tempfile::tempdir().unwrap();
    let files = [file(dir.path(), true)];
    for q in [
        "code:401 | count by ip",
        "code>=500 | count by code",
        "-code:200 | count by code, verb",
        "code:* | count",
        "code<1 | count",
        "code>1000 | count",
        "code:401 | table time, user",
        "code:401 or code:502 | stats count by user",
    ] {
        let (plan, matched, _, _) = both_ways(q, &files);
        let m = kaq_query::columnar::matching_rows(&plan, &files[0], 2, None).unwrap().unwrap();
        assert_eq!(m.positions.len(), matched, "`{q}`");
    }
}

/// `read_rows` opens only the row groups that hold a wanted row (`groups_of_rows`), and reads
/// exactly the rows a full scan finds at those positions: whole events and projected columns,
/// rows spread over several groups, at group edges, and in the first and last group.
#[test]
fn rows_read_from_some_row_groups_equal_the_full_scan_at_those_rows() {
    let dir = tempfile::tempdir().unwrap();
    let files = [file(dir.path(), true)];
    let opts = Options { all_stages: true, ..Options::default() };
    for q in ["", "| table time, user, code, ip"] {
        let plan = compile(q, &opts).unwrap();
        let all = kaq_query::scan::scan(&plan, &files, &Default::default(), 0, &mut |_| {}).unwrap().rows;
        assert_eq!(all.len(), 1000);
        let cols = kaq_query::scan::projection(&plan);
        for wanted in [
            vec![0u64],
            vec![999],
            vec![49, 50],
            vec![0, 49, 50, 99, 100, 523, 998, 999],
            (0..1000).step_by(37).collect(),
            (200..260).collect(),
            // Dense (runs of one row): read through a mask rather than run by run.
            (300..400).step_by(2).collect(),
        ] {
            let found = kaq_query::scan::read_rows(&plan, cols.as_deref(), &files[0], &wanted, 1000).unwrap();
            let mut c = kaq_query::scan::Collector::default();
            c.add(found);
            let got = c.finish_counting(true).unwrap().rows;
            let want: Vec<&Row> = wanted.iter().map(|&r| &all[r as usize]).collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "`{q}` rows {wanted:?}");
        }
    }
}

/// The row groups holding some rows, and the selection of those rows within them, against a
/// plain reference (each row's group found by walking the sizes).
#[test]
fn groups_of_rows_equal_a_plain_reference() {
    let sizes = [50u64, 50, 7, 50, 1, 0, 50];
    let total: u64 = sizes.iter().sum();
    let group_of = |r: u64| {
        let mut start = 0;
        for (g, &n) in sizes.iter().enumerate() {
            if r < start + n {
                return (g, start);
            }
            start += n;
        }
        unreachable!("row {r} in the file")
    };
    for rows in [vec![], vec![0], vec![total - 1], vec![49, 50, 100, 106, 157], (0..total).collect(), vec![3, 107, 108]]
    {
        let (groups, selection) = kaq_query::scan::groups_of_rows(&sizes, &rows);
        let mut want_groups: Vec<usize> = rows.iter().map(|&r| group_of(r).0).collect();
        want_groups.dedup();
        assert_eq!(groups, want_groups, "{rows:?}");
        // The selected positions, among the rows of the kept groups, are the wanted rows.
        let kept_rows: Vec<u64> = groups
            .iter()
            .flat_map(|&g| {
                let start: u64 = sizes[..g].iter().sum();
                start..start + sizes[g]
            })
            .collect();
        let mut at = 0usize;
        let mut picked = Vec::new();
        for s in selection.iter() {
            if !s.skip {
                picked.extend(kept_rows[at..at + s.row_count].iter().copied());
            }
            at += s.row_count;
        }
        assert_eq!(at, kept_rows.len(), "{rows:?}: the selection covers the kept groups");
        assert_eq!(picked, rows, "{rows:?}");
    }
}

/// A timeline counted from the `time` column (runs of one bucket counted before the map is
/// touched) equals the pipeline's, at intervals that cut row groups and runs in every way.
#[test]
fn timeline_by_runs_equals_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let files = [file(dir.path(), true)];
    for q in ["| timeline 1s", "| timeline 7s", "| timeline 1m", "| timeline 13m", "| timeline 1d"] {
        let (_, matched, _, col) = both_ways(q, &files);
        assert_eq!(matched, 1000, "`{q}`");
        assert!(col.first_step_done, "`{q}` counted from the column");
    }
}
