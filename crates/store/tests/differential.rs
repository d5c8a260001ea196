//! A store answers random queries exactly as the reference evaluator does over the same events,
//! with the events spread over several ingest runs (so several segments, and the stages of one
//! request in different segments). With `unique`, every event gets its own auditID (as in a log of
//! one stage per request): a segment then knows its auditIDs are distinct, and a store of one such
//! segment answers from the columns it needs (`kaq_query::columnar`). With `sorted`, the events
//! are cut into segments in time order, so segments cover separate time ranges, and a query with
//! a time bound prunes some of them while later stages of its matches may lie in those.

use kaq_oracle::arb::{NOW, event, query};
use kaq_store::{IngestOptions, Store};
use proptest::prelude::*;
use serde_json::Value;

/// `0`, the cuts (sorted, once each, at most `len`), `len`: where the parts of a log begin and end.
fn bounds(cuts: Vec<usize>, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
    cuts.sort();
    cuts.dedup();
    let mut b = vec![0];
    b.extend(cuts);
    b.push(len);
    b
}

/// The store's answer to `q` and the oracle's over `events`, as JSON values.
fn answers(store: &Store, q: &str, events: &[Value], all: bool) -> (Vec<Value>, Vec<Value>) {
    let opts = kaq_query::Options { now_us: NOW, all_stages: all, ..Default::default() };
    let plan = kaq_query::compile(q, &opts).unwrap();
    let got = store.run(&plan, &Default::default()).unwrap();
    let got: Vec<Value> = got
        .rows
        .iter()
        .map(|r| serde_json::from_str(&kaq_query::output::json_line(r, &got.columns)).unwrap())
        .collect();
    (got, kaq_oracle::answer(q, events, &kaq_oracle::Options { now_us: NOW, all_stages: all }))
}

/// The store's answer to `q` equals the oracle's over `events` (in the store's reading order).
fn same_as_oracle(store: &Store, q: &str, events: &[Value], all: bool) -> Result<(), TestCaseError> {
    let (got, want) = answers(store, q, events, all);
    prop_assert_eq!(got.len(), want.len(), "`{}`: {:?} vs {:?}", q, got, want);
    for (g, w) in got.iter().zip(&want) {
        prop_assert!(kaq_oracle::same_json(g, w), "`{}`: {} vs {}", q, g, w);
    }
    Ok(())
}

/// Time bounds AND-ed to a query (the events' times lie in 04:00..06:00).
const TIME_BOUNDS: &[&str] = &[
    "time>=2026-11-20T05:00:00Z",
    "time<2026-11-20T04:40Z",
    "time:2026-11-20T05",
    "time>2026-11-20T05:30:00Z",
    "time<=2026-11-20T04:59:59Z",
    "time>=2026-11-20T05:20Z time<2026-11-20T05:40Z",
    "time>-30m",
    "time:2026-11-20T04:30",
];

/// `q` with `bound` AND-ed to its search (a condition at the top level of the filter).
fn bounded(q: &str, bound: &str) -> String {
    let (search, rest) = match q.find('|') {
        Some(i) => (q[..i].trim(), &q[i..]),
        None => (q.trim(), ""),
    };
    if search.is_empty() { format!("{bound} {rest}") } else { format!("{bound} ({search}) {rest}") }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_equals_oracle(
        queries in proptest::collection::vec(query(), 4),
        events in proptest::collection::vec(event(), 1..80),
        cuts in proptest::collection::vec(0usize..80, 0..3),
        all in any::<bool>(),
        compact in any::<bool>(),
        unique in any::<bool>(),
        sorted in any::<bool>(),
        time_bounds in proptest::collection::vec(proptest::option::of(0..TIME_BOUNDS.len()), 4),
    ) {
        let mut events = events;
        if unique {
            for (i, e) in events.iter_mut().enumerate() {
                e["auditID"] = Value::String(format!("0b2f1c7e-1111-4a2b-9c3d-{:012}", i + 1));
            }
        }
        if sorted {
            events.sort_by(|a, b| a["requestReceivedTimestamp"].as_str().cmp(&b["requestReceivedTimestamp"].as_str()));
        }
        let dir = tempfile::tempdir().unwrap();
        // The events, in order, over up to four files ingested by separate runs.
        let bounds = bounds(cuts, events.len());
        let mut store = Store::create(dir.path().join("store")).unwrap();
        // The order a store reads its events in: run by run (segment by segment), each run sorted
        // by time (stable: equal times keep the order read). The oracle reads them in that order,
        // so that order-dependent stages (`head`, `dedup`) compare too.
        let mut store_order: Vec<Value> = Vec::new();
        for (i, w) in bounds.windows(2).enumerate() {
            let f = dir.path().join(format!("part-{i}.log"));
            let text: String = events[w[0]..w[1]].iter().map(|e| format!("{e}\n")).collect();
            std::fs::write(&f, text).unwrap();
            store.ingest_paths(&[f], &IngestOptions::default()).unwrap();
            let mut run: Vec<Value> = events[w[0]..w[1]].to_vec();
            run.sort_by(|a, b| a["requestReceivedTimestamp"].as_str().cmp(&b["requestReceivedTimestamp"].as_str()));
            store_order.extend(run);
        }
        if compact {
            // One segment, rows re-sorted by time: the store's reading order becomes that.
            let r = store.compact().unwrap();
            prop_assert_eq!(r.rows_after, events.len() as u64);
            store_order.sort_by(|a, b| a["requestReceivedTimestamp"].as_str().cmp(&b["requestReceivedTimestamp"].as_str()));
        }
        let store = Store::open(dir.path().join("store")).unwrap();
        prop_assert_eq!(store.manifest().rows(), events.len() as u64);
        for (q, b) in queries.iter().zip(time_bounds) {
            let q = match b {
                Some(b) => bounded(q, TIME_BOUNDS[b]),
                None => q.clone(),
            };
            same_as_oracle(&store, &q, &store_order, all)?;
        }
    }
}

/// Searches of plain columns (the paths that prune segments by time under the latest-stage rule:
/// the index, or the filter's columns), with and without steps.
const PLAIN: &[&str] = &[
    "verb:delete",
    "verb:(get OR list)",
    "code>=400",
    "code:401",
    "ns:prod",
    "user_kind:human",
    "latency>1s",
    "user:bob",
    "name:web | table time, id, stage",
    "| count by verb",
    "resource:secrets | count",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Events cut in time order into three or four segments, so that time bounds prune some,
    /// and requests (eight auditIDs) have stages in several: each request's latest stage, even
    /// in a pruned segment, decides as the oracle's does.
    #[test]
    fn pruned_segments_keep_the_latest_stage_rule(
        events in proptest::collection::vec(event(), 8..80),
        cuts in proptest::collection::vec(1usize..79, 2..4),
        queries in proptest::collection::vec((0..PLAIN.len(), 0..TIME_BOUNDS.len()), 6),
    ) {
        let mut events = events;
        events.sort_by(|a, b| a["requestReceivedTimestamp"].as_str().cmp(&b["requestReceivedTimestamp"].as_str()));
        let dir = tempfile::tempdir().unwrap();
        let bounds = bounds(cuts, events.len());
        let mut store = Store::create(dir.path().join("store")).unwrap();
        for (i, w) in bounds.windows(2).enumerate() {
            let f = dir.path().join(format!("part-{i}.log"));
            std::fs::write(&f, events[w[0]..w[1]].iter().map(|e| format!("{e}\n")).collect::<String>()).unwrap();
            store.ingest_paths(&[f], &IngestOptions::default()).unwrap();
        }
        let store = Store::open(dir.path().join("store")).unwrap();
        for (q, b) in queries {
            same_as_oracle(&store, &bounded(PLAIN[q], TIME_BOUNDS[b]), &events, false)?;
        }
    }
}

/// Whole-store aggregations over one segment of distinct auditIDs: counted or aggregated straight
/// from the columns (dictionary keys, no rows), equal to the oracle's answers.
const COLUMNAR: &[&str] = &[
    "| count by user",
    "| count by verb",
    "| count by ns, user_kind",
    "| count",
    "| timeline 30m",
    "| timeline 5m | where count > 0",
    "ns:prod* | count by user",
    "latency>1s | stats p99(latency) by verb",
    "code>=400 | count by code, user",
    "| stats count by resource | sort -count",
    "| stats p50(latency), p90(latency), p95(latency), p99(latency), avg(latency), sum(latency) by verb",
    "| stats min(latency), max(latency), count(latency), count",
    "| stats count(code), avg(code), sum(code), p50(code), p99(code), min(code), max(code) by ns",
    "| stats dc(user), values(user), dc(ip), values(verb), min(user), max(time) by resource",
    "code>=400 | stats p95(latency), values(code), dc(verb) by user",
    "latency>1s | stats avg(latency), p50(code), min(time)",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn columnar_aggregations_equal_oracle(events in proptest::collection::vec(event(), 0..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut events = events;
        for (i, e) in events.iter_mut().enumerate() {
            e["auditID"] = Value::String(format!("0b2f1c7e-1111-4a2b-9c3d-{:012}", i + 1));
        }
        let f = dir.path().join("one.log");
        std::fs::write(&f, events.iter().map(|e| format!("{e}\n")).collect::<String>()).unwrap();
        let mut store = Store::create(dir.path().join("store")).unwrap();
        store.ingest_paths(&[f], &IngestOptions::default()).unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        prop_assert!(events.is_empty() || store.manifest().segments[0].ids_unique);
        let mut order = events.clone();
        order.sort_by(|a, b| a["requestReceivedTimestamp"].as_str().cmp(&b["requestReceivedTimestamp"].as_str()));
        for q in COLUMNAR {
            same_as_oracle(&store, q, &order, false)?;
            if q.starts_with("| stats") && q.contains("(") && !events.is_empty() {
                // Unfiltered: no index narrows it, so the stats are computed from the columns.
                let plan = kaq_query::compile(q, &kaq_query::Options { now_us: NOW, ..Default::default() }).unwrap();
                let trace = store.run(&plan, &Default::default()).unwrap().trace;
                prop_assert!(trace.iter().any(|t| matches!(t, kaq_store::TraceStep::Columnar { first_step: Some(true), .. })), "`{}`: {:?}", q, trace);
            }
        }
    }
}

/// Real events (the shared corpus and tests/data), one per line, ingested in three runs: the
/// PRODUCT.md §4 examples and body searches answer as the oracle does, with and without every
/// stage. Whole events and rows are compared as sets (a store reads by time, segment by segment).
#[test]
fn corpus_in_a_store_equals_the_oracle() {
    let (text, dirs) = kaq_oracle::corpus::lines();
    let events = kaq_oracle::events_of(&text);
    if events.len() < 100 {
        println!("SKIPPED: only {} corpus events in {dirs:?}", events.len());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("store")).unwrap();
    let third = events.len() / 3 + 1;
    for part in events.chunks(third) {
        let text: String = part.iter().map(|e| format!("{e}\n")).collect();
        let r = store.ingest_reader("corpus", text.as_bytes(), &IngestOptions::default()).unwrap();
        assert_eq!(r.counts.rejected, 0);
    }
    let store = Store::open(dir.path().join("store")).unwrap();
    assert!(store.manifest().segments.len() >= 3);
    // The store holds each record once: the corpus's copies of one record (the same event in two
    // of its collections) are one record there.
    let mut distinct: Vec<Value> = Vec::new();
    for e in events {
        if !distinct.contains(&e) {
            distinct.push(e);
        }
    }
    assert_eq!(store.manifest().rows(), distinct.len() as u64, "one record per distinct event");
    let events = distinct;
    let mut queries: Vec<String> =
        kaq_oracle::corpus::product_examples().into_iter().filter(|q| !q.starts_with('@')).collect();
    queries.extend(
        [
            "request.kind:Pod",
            "request.spec.containers.securityContext.privileged:true",
            "request.metadata.name:* verb:create | count by resource",
            "response.kind:* | count by verb",
            "request.roleRef.name:cluster-admin",
            "response.metadata.namespace:kube-system | count",
            "ua:kubectl* | count by user",
            "| count by user_kind",
        ]
        .map(str::to_string),
    );
    let as_set = |mut v: Vec<Value>| {
        v.sort_by_cached_key(|x| x.to_string());
        v
    };
    for q in &queries {
        for all in [false, true] {
            let (got, want) = answers(&store, q, &events, all);
            let (got, want) = (as_set(got), as_set(want));
            assert_eq!(got.len(), want.len(), "`{q}` (all stages: {all})");
            for (g, w) in got.iter().zip(&want) {
                assert!(kaq_oracle::same_json(g, w), "`{q}` (all stages: {all}): {g} vs {w}");
            }
        }
    }
}
