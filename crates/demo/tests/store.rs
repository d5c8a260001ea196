//! What `kaq demo` does: the demo log ingested into a store answers the incident and suggested
//! queries as the log itself does (the store reads through its per-segment index).

use kaq_demo::{DemoOptions, generate, suggested};
use kaq_query::{Options, compile, output, run_on_text};
use kaq_store::{IngestOptions, Store};

#[test]
fn a_store_of_the_demo_log_answers_like_the_log() {
    let demo = generate(&DemoOptions::default());
    let log = std::str::from_utf8(&demo.log).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("kaq-store")).unwrap();
    let report = store.ingest_reader("demo", &demo.log[..], &IngestOptions::default()).unwrap();
    assert_eq!((report.counts.events, report.counts.rejected), (log.lines().count() as u64, 0));

    let queries = demo.incidents.iter().map(|i| (i.query.as_str(), Some(i.expected_rows)));
    for (query, expected) in queries.chain(suggested().map(|(_, q)| (q, None))) {
        let plan = compile(query, &Options::default()).unwrap();
        let mut from_log: Vec<String> =
            run_on_text(&plan, log).iter().map(|r| output::json_line(r, plan.output_columns())).collect();
        let mut from_store = store.query(query).unwrap().json_lines();
        assert!(!from_store.is_empty(), "`{query}` finds nothing in the store");
        if let Some(n) = expected {
            assert_eq!(from_store.len(), n, "`{query}`");
        }
        // The store is in time order, the log in the order it was written: the same rows.
        from_log.sort();
        from_store.sort();
        assert_eq!(from_store, from_log, "`{query}`");
    }
}
