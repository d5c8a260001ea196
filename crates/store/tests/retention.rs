//! Retention means deletion (issue 13 item 9): `prune_before` and `compact` delete the files of
//! the segments they replace once the new manifest is committed, and say what they freed; readers
//! that hold an older manifest never fail for it: they start again on the new one.

use std::path::Path;

use kaq_query::Val;
use kaq_store::{IngestOptions, Store};

/// `n` events of file `f`, at 2026-11-20T`hour`:MM:SS.
fn events(f: usize, n: usize, hour: usize) -> String {
    (0..n)
        .map(|i| {
            let t = format!("2026-11-20T{hour:02}:{:02}:{:02}", (i / 60) % 60, i % 60);
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"f{f}-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns{f}/pods","verb":"get","user":{{"username":"u{}"}},"objectRef":{{"resource":"pods","namespace":"ns{f}"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"{t}.000000Z","stageTimestamp":"{t}.500000Z"}}"#,
                i % 7
            ) + "\n"
        })
        .collect()
}

fn count(store: &Store) -> i64 {
    let r = store.query("| count").unwrap();
    let Val::Int(n) = r.rows[0].vals[0] else { panic!("{:?}", r.rows) };
    n
}

/// Names under `segments/`, sorted.
fn on_disk(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What the manifest names (segment files and index directories), sorted.
fn named(store: &Store) -> Vec<String> {
    let mut v: Vec<String> =
        store.manifest().segments.iter().flat_map(|s| std::iter::once(s.file.clone()).chain(s.index.clone())).collect();
    v.sort();
    v
}

fn du(p: &Path) -> u64 {
    let m = std::fs::metadata(p).unwrap();
    if m.is_dir() { std::fs::read_dir(p).unwrap().map(|e| du(&e.unwrap().path())).sum() } else { m.len() }
}

/// Three segments, at 05:xx, 06:xx and 07:xx (300 events each).
fn three_segments(dir: &Path) -> Store {
    let mut store = Store::create(dir.join("store")).unwrap();
    for (f, hour) in [5, 6, 7].into_iter().enumerate() {
        let p = dir.join(format!("part-{f}.log"));
        std::fs::write(&p, events(f, 300, hour)).unwrap();
        store.ingest_paths(&[p], &IngestOptions::default()).unwrap();
    }
    assert_eq!(store.manifest().segments.len(), 3);
    store
}

#[test]
fn prune_deletes_what_it_drops_and_says_how_much() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = three_segments(dir.path());
    let path = dir.path().join("store");
    let seg = path.join("segments");
    // 05:xx is dropped whole; 06:xx straddles 06:02:30 and is rewritten; 07:xx stays.
    let old: Vec<&kaq_store::Segment> = store.manifest().segments[..2].iter().collect();
    let old_bytes: u64 =
        old.iter().map(|s| du(&seg.join(&s.file)) + s.index.as_ref().map_or(0, |i| du(&seg.join(i)))).sum();
    let reader = Store::open(&path).unwrap(); // holds the manifest from before the prune
    let cutoff = 1_795_154_400_000_000 + 150_000_000; // 2026-11-20T06:02:30Z
    let r = store.prune_before(cutoff).unwrap();
    assert_eq!((r.rows_before, r.rows_after), (900, 600 - 150));
    assert_eq!(r.segments_deleted, 2, "{r:?}");
    assert_eq!(r.bytes_freed, old_bytes, "{r:?}");
    let new = &store.manifest().segments[0];
    assert_eq!(r.bytes_written, du(&seg.join(&new.file)) + du(&seg.join(new.index.as_ref().unwrap())), "{r:?}");
    // No writer opened the store since: the files are gone all the same.
    assert_eq!(on_disk(&path), named(&store));
    assert_eq!(on_disk(&path).len(), 4, "two segments, each a file and an index");
    // A reader holding the manifest from before reads the current one.
    assert_eq!(count(&reader), 450);
    assert_eq!(count(&Store::open(&path).unwrap()), 450);

    // Compaction deletes what it merges, too.
    let r = store.compact().unwrap();
    assert_eq!((r.segments_before, r.segments_after, r.segments_deleted), (2, 1, 2), "{r:?}");
    assert!(r.bytes_freed > 0 && r.bytes_written > 0, "{r:?}");
    assert_eq!(on_disk(&path), named(&store));
    assert_eq!(count(&reader), 450);
    // The REPL's completion values too: from the current segments' dictionaries.
    let users: u64 = reader.top_terms("user", "u", 10).unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(users, 450);
}

/// While a writer ingests and compacts over and over (each compaction deleting the files it
/// replaced), readers — fresh handles and one kept from the start — query without a single
/// error and always see a committed state. A reader that passes the check for missing files and
/// then reaches a file deleted meanwhile must start again on the newer manifest.
#[test]
fn readers_never_fail_while_compactions_delete_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let rounds = 8;
    let mut files = Vec::new();
    for f in 0..rounds {
        let p = dir.path().join(format!("part-{f}.log"));
        std::fs::write(&p, events(f, 200, 5 + f % 3)).unwrap();
        files.push(p);
    }
    let mut store = Store::create(&path).unwrap();
    store.ingest_paths(&files[..1], &IngestOptions::default()).unwrap();
    let kept = Store::open(&path).unwrap(); // its segment is the first to be compacted away
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (path, stop, kept) = (path.clone(), stop.clone(), kept.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let fresh;
                    let store = if r == 0 {
                        &kept
                    } else {
                        fresh = Store::open(&path).unwrap();
                        &fresh
                    };
                    for q in ["| count", "user:u3 | count", "verb:get ns:ns1 | count"] {
                        let got = store.query(q).unwrap_or_else(|e| panic!("`{q}` failed during a compaction: {e}"));
                        let Val::Int(n) = got.rows[0].vals[0] else { panic!("{:?}", got.rows) };
                        if q == "| count" {
                            assert_eq!(n % 200, 0, "`{q}` saw {n}: not a committed state");
                        }
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut deleted = 0;
    for f in &files[1..] {
        store.ingest_paths(std::slice::from_ref(f), &IngestOptions::default()).unwrap();
        let r = store.compact().unwrap();
        deleted += r.segments_deleted;
        assert_eq!(on_disk(&path), named(&store), "the replaced files are gone at once");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: Vec<usize> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(deleted, 2 * (rounds - 1), "each compaction after the first ingest merged two segments");
    assert_eq!(count(&kept), 200 * rounds as i64);
    assert!(reads.iter().all(|&n| n > 0), "the readers ran during the compactions: {reads:?}");
}
