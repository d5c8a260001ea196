//! The library API of docs/library.md: create, ingest (a path, a reader), query with typed rows and
//! Arrow batches, explain, and typed errors.

use kaq_query::Val;
use kaq_store::{Error, IngestOptions, Store};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample-audit.log.gz");

/// The shipped sample's events (latest stage of each request) as JSON lines, read through a store
/// (gzip is detected by content when ingesting a path).
fn sample_events() -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    store.ingest_path(SAMPLE).unwrap();
    store.query("").unwrap().json_lines().into_iter().map(|l| l + "\n").collect()
}

#[test]
fn embed_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("kaq-store")).unwrap();
    let report = store.ingest_path(SAMPLE).unwrap();
    assert_eq!(report.counts.rejected, 0);
    assert!(report.counts.events > 7000, "{}", report.counts.events);
    assert_eq!(report.segments, 1);

    // Typed rows.
    let rows = store.query("verb:(delete OR deletecollection) ns:prod* | table time, user, name").unwrap();
    assert!(!rows.rows.is_empty());
    for r in rows.iter() {
        assert!(matches!(r.vals[0], Val::Time(_)));
        assert!(matches!(&r.vals[1], Val::Str(u) if !u.is_empty()));
    }
    // Arrow.
    let batches = rows.record_batches().unwrap();
    assert_eq!(batches[0].num_rows(), rows.rows.len());
    assert_eq!(batches[0].schema().field(0).name(), "time");
    let events = store.query("verb:delete ns:prod*").unwrap().record_batches().unwrap();
    assert_eq!(events[0].schema(), kaq_columnar::audit_schema(), "whole events come back in kaq's schema");

    // The index narrows what is read: a few rows (and their requests' other stages), not all.
    let total = store.manifest().rows();
    let r = store.query("subresource:exec").unwrap();
    assert!(!r.rows.is_empty());
    assert!(r.rows_read > 0 && r.rows_read < total / 20, "{} of {total} rows read", r.rows_read);
    assert!(r.trace.iter().any(|t| matches!(t, kaq_store::TraceStep::Index { .. })), "{:?}", r.trace);
    // What the index leaves out (dense fields like verb) is tested on its columns first: only the
    // matching rows are read whole.
    let r = store.query("verb:delete ns:prod*").unwrap();
    assert!(r.trace.iter().any(|t| matches!(t, kaq_store::TraceStep::ColumnTest { .. })), "{:?}", r.trace);
    // A negation on a field that is not a plain column reads everything.
    let all = store.query("NOT request.kind:Pod").unwrap();
    assert_eq!(all.rows_read, total, "{:?}", all.trace);

    // Explain: the plan, then what was read and kept, with counts.
    let text = store.explain("code:401 | count by ip").unwrap();
    assert!(text.contains("prefilter") && text.contains("1 of 1 read"), "{text}");
    assert!(text.contains("store:     step 1: "), "{text}");

    // Typed errors.
    match store.query("usr:alice") {
        Err(Error::Query(d)) => assert_eq!(d[0].code.as_str(), "E017"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(Store::open(dir.path().join("nope")), Err(Error::NotAStore(_))));
    assert!(matches!(Store::create(dir.path().join("kaq-store")), Err(Error::AlreadyAStore(_))));
}

#[test]
fn ingest_a_reader() {
    let text = sample_events();
    let n = text.lines().count() as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let mut with_junk = text.clone();
    with_junk.push_str("not json\n\n");
    let r = store.ingest_reader("webhook", with_junk.as_bytes(), &IngestOptions::default()).unwrap();
    assert_eq!((r.counts.events, r.counts.rejected, r.counts.blank), (n, 1, 1));
    assert_eq!(store.manifest().rows(), n);
    let mut back = String::new();
    for l in store.query("").unwrap().json_lines() {
        back.push_str(&l);
        back.push('\n');
    }
    // Same events (the store's order: by time).
    let sort = |t: &str| {
        let mut v: Vec<serde_json::Value> = t.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        v.sort_by_key(|e| e.to_string());
        v
    };
    assert_eq!(sort(&back), sort(&text));
}
