//! Damage is found, not answered: every segment file's size and CRC-32 and the manifest's own
//! checksum are recorded at commit; `Store::verify` checks them all, queries check sizes always
//! and checksums before reading a segment whole, and rewrites refuse to copy damage.

use std::path::{Path, PathBuf};

use kaq_store::{Found, IngestOptions, Store};

fn event(i: usize) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": format!("5d0c4a9e-2222-4b1c-8d3e-{i:012}"), "stage": "ResponseComplete",
        "requestURI": format!("/apis/apps/v1/namespaces/ns{}/deployments/d{i}", i % 7), "verb": "patch",
        "user": {"username": format!("user{}", i % 13)},
        "objectRef": {"resource": "deployments", "namespace": format!("ns{}", i % 7), "name": format!("d{i}")},
        "responseStatus": {"code": 200},
        "requestObject": {"spec": {"replicas": i % 5}},
        "requestReceivedTimestamp": format!("2026-11-20T05:{:02}:{:02}.000000Z", (i / 60) % 60, i % 60),
        "stageTimestamp": format!("2026-11-20T05:{:02}:{:02}.200000Z", (i / 60) % 60, i % 60),
    })
    .to_string()
        + "\n"
}

/// A store of one segment of 3,000 events.
fn store(dir: &Path) -> PathBuf {
    let log = dir.join("a.log");
    std::fs::write(&log, (0..3000).map(event).collect::<String>()).unwrap();
    let s = dir.join("s");
    Store::create(&s).unwrap().ingest_paths(&[log], &IngestOptions::default()).unwrap();
    s
}

fn flip_bit(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn segment_file(s: &Path) -> PathBuf {
    Store::open(s).unwrap().segment_paths()[0].clone()
}

/// A query no index or column answers: every row is restored and tested (the full scan).
const FULL_SCAN: &str = "request.spec.replicas>=3 | count";

fn count(store: &Store, q: &str) -> i64 {
    match store.query(q).unwrap().rows[0].vals[0] {
        kaq_query::Val::Int(n) => n,
        ref v => panic!("{v:?}"),
    }
}

#[test]
fn a_clean_store_verifies_and_records_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let store = Store::open(&s).unwrap();
    let seg = &store.manifest().segments[0];
    // The Parquet file first, with its size as recorded in `bytes`, then the index's files.
    assert_eq!(seg.files[0].name, seg.file);
    assert_eq!(seg.files[0].size, seg.bytes);
    assert!(seg.files[0].digest.starts_with("crc32:") && seg.files[0].digest.len() == 14, "{:?}", seg.files[0]);
    let index = seg.index.as_deref().unwrap();
    assert!(seg.files.iter().any(|f| f.name == format!("{index}/meta.json")), "{:?}", seg.files);
    assert!(seg.files.len() > 3, "{:?}", seg.files);
    assert!(store.manifest().checksum.as_deref().is_some_and(|c| c.starts_with("crc32:")));
    let v = Store::verify(&s).unwrap();
    assert!(v.intact(), "{:?}", v.files);
    assert_eq!(v.files.len(), 1 + seg.files.len());
    assert!(v.files.iter().all(|c| c.found == Found::Intact), "{:?}", v.files);
    // Reading through the index changes none of its files.
    assert_eq!(count(&store, "user:user3 | count"), 231);
    assert!(
        store
            .query("user:user3 | count")
            .unwrap()
            .trace
            .iter()
            .any(|t| matches!(t, kaq_store::TraceStep::Index { .. }))
    );
    assert!(Store::verify(&s).unwrap().files.iter().all(|c| c.found == Found::Intact));
    // The full scan checks the digest and answers.
    assert_eq!(count(&store, FULL_SCAN), 1200);
    assert!(store.query(FULL_SCAN).unwrap().trace.iter().any(|t| matches!(t, kaq_store::TraceStep::Scan { .. })));
}

#[test]
fn a_flipped_bit_in_a_segment_is_reported_and_never_answered_from() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let file = segment_file(&s);
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    flip_bit(&file, len / 2);

    let v = Store::verify(&s).unwrap();
    let damaged: Vec<_> = v.damaged().collect();
    assert_eq!(damaged.len(), 1, "{:?}", v.files);
    assert_eq!(damaged[0].path, file);
    assert!(matches!(&damaged[0].found, Found::Digest { expected, found } if expected != found), "{damaged:?}");

    // A query that reads the segment whole errors, naming the file.
    let store = Store::open(&s).unwrap();
    let err = store.query(FULL_SCAN).unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()) && err.contains("damaged"), "{err}");
    assert!(err.contains("kaq verify"), "{err}");

    // Compaction (and prune) refuse to copy it into a new segment: the store is left as it was.
    let log = dir.path().join("b.log");
    std::fs::write(&log, (3000..3100).map(event).collect::<String>()).unwrap();
    let mut w = Store::open_writer(&s).unwrap();
    w.ingest_paths(&[log], &IngestOptions::default()).unwrap();
    let generation = w.manifest().generation;
    let err = w.compact().unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()) && err.contains("content changed"), "{err}");
    // A cutoff inside its time range: its later rows would be copied.
    let five_past_ten = 1_795_151_400_000_000; // 2026-11-20T05:10:00Z
    let err = w.prune_before(five_past_ten).unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(Store::open(&s).unwrap().manifest().generation, generation);
    assert_eq!(Store::verify(&s).unwrap().damaged().count(), 1);
}

#[test]
fn a_file_cut_short_is_refused_by_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let file = segment_file(&s);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 4096]).unwrap();
    let store = Store::open(&s).unwrap();
    // Even a count answered from the columns: sizes are checked before every query.
    let err = store.query("verb:patch | count").unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(&format!("size {} bytes, expected {}", bytes.len() - 4096, bytes.len())), "{err}");
    let v = Store::verify(&s).unwrap();
    assert!(matches!(v.damaged().next().map(|c| &c.found), Some(Found::Size { .. })), "{:?}", v.files);
}

#[test]
fn a_damaged_index_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let store = Store::open(&s).unwrap();
    let seg = &store.manifest().segments[0];
    // The largest file of the index (a term dictionary or postings).
    let f = seg.files[1..].iter().max_by_key(|f| f.size).unwrap();
    let path = s.join("segments").join(&f.name);
    flip_bit(&path, f.size as usize / 2);
    let v = Store::verify(&s).unwrap();
    let damaged: Vec<_> = v.damaged().collect();
    assert_eq!(damaged.len(), 1, "{:?}", v.files);
    assert_eq!(damaged[0].path, path);
    assert!(damaged[0].path.parent().unwrap().ends_with(seg.index.as_deref().unwrap()));
    assert!(damaged[0].found.to_string().contains("expected crc32:"), "{}", damaged[0].found);
}

#[test]
fn a_damaged_manifest_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let path = s.join("MANIFEST.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // One digit of the row count changed: still valid JSON, and a wrong count.
    assert!(text.contains("\"rows\": 3000"));
    std::fs::write(&path, text.replace("\"rows\": 3000", "\"rows\": 3001")).unwrap();
    let err = Store::open(&s).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains("damaged"), "{err}");
    let v = Store::verify(&s).unwrap();
    let damaged: Vec<_> = v.damaged().collect();
    assert_eq!(damaged.len(), 1, "{:?}", v.files);
    assert_eq!(damaged[0].path, path);

    // Its checksum's key damaged: the segments' digests show it was there.
    std::fs::write(&path, text.replace("\"checksum\"", "\"checksun\"")).unwrap();
    let err = Store::open(&s).unwrap_err().to_string();
    assert!(err.contains("checksum is missing"), "{err}");
    // Not JSON any more: verify reports it (and can check nothing else).
    let mut bytes = text.clone().into_bytes();
    bytes[0] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let v = Store::verify(&s).unwrap();
    assert_eq!(v.files.len(), 1);
    assert!(matches!(&v.files[0].found, Found::Unreadable(why) if why.contains("line 1")), "{:?}", v.files);
    // Put back, it opens.
    std::fs::write(&path, &text).unwrap();
    assert_eq!(count(&Store::open(&s).unwrap(), "verb:patch | count"), 3000);
}

#[test]
fn a_store_written_before_digests_opens_and_verifies_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    // The manifest as kaq wrote it before checksums: no `files`, no `checksum`.
    let path = s.join("MANIFEST.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("checksum");
    for seg in m["segments"].as_array_mut().unwrap() {
        seg.as_object_mut().unwrap().remove("files");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let store = Store::open(&s).unwrap();
    assert!(store.manifest().segments[0].files.is_empty() && store.manifest().checksum.is_none());
    assert_eq!(count(&store, FULL_SCAN), 1200);
    let v = Store::verify(&s).unwrap();
    assert!(v.intact(), "{:?}", v.files);
    // The manifest, the Parquet file (its size checked) and the index directory.
    let found: Vec<&Found> = v.files.iter().map(|c| &c.found).collect();
    assert_eq!(found, [&Found::NoDigest, &Found::NoDigest, &Found::NoDigest], "{:?}", v.files);
    assert!(Found::NoDigest.to_string().contains("no digest recorded"));

    // Its size is still checked.
    let file = segment_file(&s);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(Store::verify(&s).unwrap().damaged().next().map(|c| &c.found), Some(Found::Size { .. })));

    // A writer's next commit records digests for what it writes, and a checksum.
    std::fs::write(&file, &bytes).unwrap();
    let mut w = Store::open_writer(&s).unwrap();
    let log = dir.path().join("b.log");
    std::fs::write(&log, (3000..3100).map(event).collect::<String>()).unwrap();
    w.ingest_paths(&[log], &IngestOptions::default()).unwrap();
    let m = Store::open(&s).unwrap().manifest().clone();
    assert!(m.checksum.is_some() && m.segments[0].files.is_empty() && !m.segments[1].files.is_empty());
    let v = Store::verify(&s).unwrap();
    assert!(v.intact() && v.files[0].found == Found::Intact, "{:?}", v.files);
    // Compacted, every segment has digests.
    w.compact().unwrap();
    let v = Store::verify(&s).unwrap();
    assert!(v.files.iter().all(|c| c.found == Found::Intact), "{:?}", v.files);
}
