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

/// A record at `us` microseconds into the day.
fn record(id: u64, verb: &str, code: i32, us: u64) -> String {
    let s = us / 1_000_000;
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-{id}","stage":"ResponseComplete","verb":"{verb}","user":{{"username":"alice"}},"responseStatus":{{"code":{code}}},"requestReceivedTimestamp":"2026-11-20T{:02}:{:02}:{:02}.{:06}Z"}}"#,
        s / 3600,
        s / 60 % 60,
        s % 60,
        us % 1_000_000
    )
}

fn count(store: &Store, query: &str) -> u64 {
    let all = kaq_query::compile(query, &kaq_query::Options { all_stages: true, ..Default::default() }).unwrap();
    let out = store.run(&all, &Default::default()).unwrap().json_lines();
    let v: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
    v["count"].as_u64().unwrap()
}

/// Repeats inside one input are left out wherever they meet: next to each other, hours after
/// (rows spilled and merged when the segment ends), within a group of records of one time;
/// records that share an auditID and a time and differ in a cell are all kept.
#[test]
fn repeats_inside_one_input_are_left_out_wherever_they_meet() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    // 30,000 distinct records over ten hours; every tenth shares its time with the one before,
    // and every hundredth shares auditID and time with the one before, differing in its code.
    let mut distinct: Vec<String> = Vec::new();
    let mut us = 0;
    for i in 0..30_000u64 {
        if i % 100 == 1 {
            distinct.push(record(i - 1, "get", 500, us));
            continue;
        }
        if i % 10 != 1 {
            us += 1_200_000;
        }
        distinct.push(record(i, ["get", "list", "watch"][(i % 3) as usize], 200, us));
    }
    // In time order, with repeats: of the record just before, and of one from any time before.
    let mut input = Vec::new();
    for (i, r) in distinct.iter().enumerate() {
        input.push(r.clone());
        if i % 7 == 3 {
            input.push(r.clone());
        }
        if i % 5 == 4 {
            input.push(distinct[next(i as u64) as usize].clone());
        }
    }
    // 50 records without a time, each given twice, here and there.
    for i in 0..50u64 {
        let r = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"untimed-{i}","stage":"ResponseComplete","verb":"get"}}"#
        );
        input.insert(next(input.len() as u64) as usize, r.clone());
        input.insert(next(input.len() as u64) as usize, r.clone());
        distinct.push(r);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let text = input.join("\n");
    let r = store.ingest_reader("-", text.as_bytes(), &IngestOptions::default()).unwrap();
    let repeats = (input.len() - distinct.len()) as u64;
    assert_eq!((r.counts.events, r.duplicates, r.segments), (input.len() as u64, repeats, 1));
    assert_eq!(store.manifest().rows(), 30_050);
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(store.manifest().segments[0].rows_with_time(), 30_000);
    assert_eq!(count(&store, "| count"), 30_050);
    assert_eq!(count(&store, "code:500 | count"), 300);
    // The index holds the same rows: a record found by its auditID, both records of one.
    assert_eq!(count(&store, "id:id-1200 | count"), 2);
    assert_eq!(count(&store, "id:id-1203 | count"), 1);
    assert!(Store::verify(dir.path().join("s")).unwrap().intact());
}

/// Files that overlap, ingested in one command, hold their shared records once; a later ingest
/// finds them in the committed segment.
#[test]
fn overlapping_files_hold_their_shared_records_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, ids: std::ops::Range<u64>| {
        let p = dir.path().join(name);
        let text: String = ids.map(|i| record(i, "get", 200, i * 1_000_000) + "\n").collect();
        std::fs::write(&p, text).unwrap();
        p
    };
    let (a, b, c) = (file("a.log", 0..600), file("b.log", 400..1000), file("c.log", 900..1100));
    let mut store = Store::create(dir.path().join("s")).unwrap();
    let r = store.ingest_paths(&[a, b], &IngestOptions::default()).unwrap();
    assert_eq!((r.counts.events, r.duplicates, r.segments), (1200, 200, 1));
    let r = store.ingest_paths(&[c], &IngestOptions::default()).unwrap();
    assert_eq!((r.counts.events, r.duplicates, r.segments), (200, 100, 1));
    let store = Store::open(dir.path().join("s")).unwrap();
    assert_eq!(store.manifest().rows(), 1100);
    assert_eq!(count(&store, "| count"), 1100);
}
