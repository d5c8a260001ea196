//! `Store::top_terms`: the values of a keyword field read from the indexes' term dictionaries
//! (what the REPL completes), ranked by rows, across segments; and cancelled queries.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kaq_input::ReadOptions;
use kaq_store::{IngestOptions, Store};

fn event(id: usize, verb: &str, ns: &str, user: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/{ns}/pods","verb":"{verb}","userAgent":"{}","user":{{"username":"{user}"}},"objectRef":{{"resource":"pods","namespace":"{ns}","name":"p{id}"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T05:00:{:02}.000000Z","stageTimestamp":"2026-11-20T05:00:{:02}.100000Z"}}"#,
        ua(id),
        id % 60,
        id % 60
    ) + "\n"
}

fn ua(id: usize) -> &'static str {
    if id.is_multiple_of(3) { "curl/8.5" } else { "kubectl/v1.29.0" }
}

#[test]
fn values_ranked_by_rows_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let mut first = String::new();
    for i in 0..10 {
        first.push_str(&event(i, if i < 7 { "get" } else { "delete" }, "payments", "alice"));
    }
    let mut second = String::new();
    for i in 10..16 {
        second.push_str(&event(
            i,
            "delete",
            if i < 12 { "payroll" } else { "Pay-ops" },
            "system:serviceaccount:ops:pay-bot",
        ));
    }
    store.ingest_reader("one", first.as_bytes(), &IngestOptions::default()).unwrap();
    store.ingest_reader("two", second.as_bytes(), &IngestOptions::default()).unwrap();
    assert_eq!(store.manifest().segments.len(), 2);

    let store = Store::open(dir.path().join("s")).unwrap();
    // Summed over both segments: delete 3 + 6.
    assert_eq!(store.top_terms("verb", "", 10).unwrap(), [("delete".to_string(), 9), ("get".to_string(), 7)]);
    assert_eq!(store.top_terms("verb", "de", 10).unwrap(), [("delete".to_string(), 9)]);
    // Prefix matches first, then values containing the text in any case.
    assert_eq!(
        store.top_terms("ns", "pay", 10).unwrap(),
        [("payments".to_string(), 10), ("payroll".to_string(), 2), ("Pay-ops".to_string(), 4)]
    );
    assert_eq!(store.top_terms("ns", "pay", 1).unwrap(), [("payments".to_string(), 10)]);
    assert_eq!(store.top_terms("user", "pay-bot", 5).unwrap()[0].0, "system:serviceaccount:ops:pay-bot");
    // Counted in rows, also where the index enters a value once for a block of rows (`user`,
    // `ns`, `ua`…), and for a text field indexed whole.
    let curl = (0..16).filter(|&i| ua(i) == "curl/8.5").count() as u64;
    assert_eq!(
        store.top_terms("ua", "", 10).unwrap(),
        [("kubectl/v1.29.0".to_string(), 16 - curl), ("curl/8.5".to_string(), curl)]
    );
    assert_eq!(store.top_terms("user", "alice", 10).unwrap(), [("alice".to_string(), 10)]);
    // Text fields hold words, not values; unknown fields hold nothing.
    assert!(store.top_terms("uri", "api", 5).unwrap().is_empty());
    assert!(store.top_terms("nope", "", 5).unwrap().is_empty());
}

#[test]
fn a_cancelled_query_stops_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let text: String = (0..50).map(|i| event(i, "get", "default", "bob")).collect();
    store.ingest_reader("one", text.as_bytes(), &IngestOptions::default()).unwrap();
    let read = ReadOptions { cancel: Some(Arc::new(AtomicBool::new(true))), ..ReadOptions::default() };
    // The index path, a full scan, and the columnar count and timeline.
    for q in ["verb:get", "NOT verb:get", "latency>1s | count", "| count by verb", "| timeline 1h"] {
        let plan = kaq_query::compile(q, &Default::default()).unwrap();
        match store.run(&plan, &read) {
            Err(kaq_store::Error::Scan(kaq_query::scan::ScanError::Cancelled)) => {}
            other => panic!("{q}: {other:?}"),
        }
        let rows = store.run(&plan, &ReadOptions::default()).unwrap().rows.len();
        let want = match q {
            "verb:get" => 50,
            "NOT verb:get" => 0,
            _ => 1,
        };
        assert_eq!(rows, want, "{q}");
    }
}
