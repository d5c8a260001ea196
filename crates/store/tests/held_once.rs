//! The store holds each record once, however it arrives: the same stream ingested again, or the
//! same records inside one input, add nothing; records that differ in any field are all kept;
//! compaction keeps every record.

use kaq_store::{IngestOptions, Store};

fn line(id: &str, verb: &str, code: i32, second: u32) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","verb":"{verb}","requestURI":"/api/v1/namespaces/prod/pods","user":{{"username":"alice","groups":["dev"]}},"sourceIPs":["10.0.0.1"],"objectRef":{{"resource":"pods","namespace":"prod"}},"responseStatus":{{"code":{code}}},"annotations":{{"authorization.k8s.io/decision":"allow"}},"requestReceivedTimestamp":"2026-11-20T05:00:{second:02}.000000Z","stageTimestamp":"2026-11-20T05:00:{second:02}.100000Z"}}"#
    )
}

fn log(n: u32) -> String {
    (0..n).map(|i| line(&format!("id-{i}"), "get", 200, i % 60) + "\n").collect()
}

#[test]
fn a_stream_ingested_again_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let text = log(500);
    let first = store.ingest_reader("-", text.as_bytes(), &IngestOptions::default()).unwrap();
    assert_eq!((first.counts.events, first.duplicates), (500, 0));
    for _ in 0..2 {
        let again = store.ingest_reader("-", text.as_bytes(), &IngestOptions::default()).unwrap();
        assert_eq!((again.counts.events, again.duplicates), (500, 500));
    }
    // A new writer (another process) knows them too.
    drop(store);
    let mut store = Store::open_writer(dir.path().join("s")).unwrap();
    let again = store.ingest_reader("-", text.as_bytes(), &IngestOptions::default()).unwrap();
    assert_eq!(again.duplicates, 500);
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(store.manifest().rows(), 500);
    assert_eq!(store.query("| count").unwrap().json_lines(), [r#"{"count":500}"#]);
}

#[test]
fn only_equal_records_are_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    // Twice the same record inside one input; then records that differ in one field each.
    let text = [
        line("a", "get", 200, 1),
        line("a", "get", 200, 1),
        line("a", "get", 201, 1),
        line("a", "list", 200, 1),
        line("a", "get", 200, 2),
        line("b", "get", 200, 1),
    ]
    .join("\n");
    let r = store.ingest_reader("-", text.as_bytes(), &IngestOptions::default()).unwrap();
    assert_eq!((r.counts.events, r.duplicates), (6, 1));
    // The same again in a file, with one new record: only that one is added.
    let f = dir.path().join("more.log");
    std::fs::write(&f, format!("{text}\n{}\n", line("c", "get", 200, 3))).unwrap();
    let r = store.ingest_paths(std::slice::from_ref(&f), &IngestOptions::default()).unwrap();
    assert_eq!((r.counts.events, r.duplicates), (7, 6));
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(store.manifest().rows(), 6);
    // Records that differ are all kept: `a` has three requests (get at :01, list at :01, get at
    // :02), and two records of the first, equal but for the code: the one read last is its latest.
    assert_eq!(store.query("id:a | count").unwrap().json_lines(), [r#"{"count":3}"#]);
    assert_eq!(store.query("id:a code:201 | count").unwrap().json_lines(), [r#"{"count":1}"#]);
    let all =
        kaq_query::compile("id:a | count", &kaq_query::Options { all_stages: true, ..Default::default() }).unwrap();
    assert_eq!(store.run(&all, &Default::default()).unwrap().json_lines(), [r#"{"count":4}"#]);
}

#[test]
fn compaction_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let text = log(300);
    let (a, b) = text.split_at(text.len() / 2);
    let b = &b[b.find('\n').unwrap() + 1..];
    store.ingest_reader("a", a.as_bytes(), &IngestOptions::default()).unwrap();
    store.ingest_reader("b", b.as_bytes(), &IngestOptions::default()).unwrap();
    let before = Store::open(dir.path().join("s")).unwrap().manifest().rows();
    assert!(store.manifest().segments.len() >= 2);
    store.compact().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(store.manifest().segments.len(), 1);
    assert_eq!(store.manifest().rows(), before);
}
