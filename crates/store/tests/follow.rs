//! Files that grow and rotate: resumed ingests and `follow` (PRODUCT.md §7: re-running an ingest,
//! or restarting `--follow`, resumes without loss or duplicates; `--follow` follows rotation).
//!
//! The log is the shipped sample's lines, written out piece by piece; after every scenario the
//! store must hold each written line's (auditID, stage) exactly once.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kaq_store::{FollowOptions, IngestOptions, Store};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample-audit.log.gz");

/// The sample's lines, each with its newline.
fn sample_lines() -> Vec<String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(SAMPLE).unwrap()).read_to_string(&mut text).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{l}\n")).collect()
}

/// (auditID, stage) of each line, sorted.
fn keys_of(lines: &[String]) -> Vec<String> {
    let mut k: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {}", v["auditID"].as_str().unwrap(), v["stage"].as_str().unwrap())
        })
        .collect();
    k.sort();
    k
}

/// (auditID, stage) of each row of the store, sorted.
fn keys_in(store: &Path) -> Vec<String> {
    let s = Store::open(store).unwrap();
    let opts = kaq_query::Options { all_stages: true, ..Default::default() };
    let plan = kaq_query::compile("| table id, stage", &opts).unwrap();
    let r = s.run(&plan, &Default::default()).unwrap();
    let mut k: Vec<String> = r
        .json_lines()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {}", v["id"].as_str().unwrap(), v["stage"].as_str().unwrap())
        })
        .collect();
    k.sort();
    k
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

fn opts() -> IngestOptions {
    IngestOptions { read: kaq_input::ReadOptions { threads: 2, ..Default::default() }, ..Default::default() }
}

#[test]
fn an_ingest_resumes_a_grown_file_and_waits_for_a_half_line() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let store = dir.path().join("s");
    let mut s = Store::create(&store).unwrap();
    let (a, b) = lines.split_at(1000);
    let first: String = a.concat();
    append(&log, &first);
    // Half of the next line, as a writer leaves it between two writes.
    let half = b[0].len() / 2;
    append(&log, &b[0][..half]);
    let r = s.ingest_paths(std::slice::from_ref(&log), &opts()).unwrap();
    assert_eq!(r.counts.events, 1000);
    assert_eq!(r.counts.rejected, 0, "a half line is not a reject");
    assert_eq!(r.unread.len(), 1);
    assert_eq!(r.unread[0].1, half as u64);
    assert_eq!(s.manifest().sources[0].size, first.len() as u64);
    // Nothing new: nothing read.
    let r = s.ingest_paths(std::slice::from_ref(&log), &opts()).unwrap();
    assert_eq!(r.counts.events, 0);
    // The line finished, and more: only what follows is read, lines numbered as in the file.
    append(&log, &b[0][half..]);
    append(&log, &b[1..2000].concat());
    append(&log, "this is not JSON\n");
    let r = s.ingest_paths(std::slice::from_ref(&log), &opts()).unwrap();
    assert_eq!(r.counts.events, 2000);
    assert_eq!(r.counts.rejected, 1);
    assert_eq!(s.manifest().sources.len(), 1, "the file's record grows, no second record");
    assert_eq!(s.manifest().sources[0].lines, 3001);
    assert_eq!(s.manifest().sources[0].events, 3000);
    assert_eq!(keys_in(&store), keys_of(&lines[..3000]));
    // Renamed by rotation and compressed: nothing more is read; what was appended before the
    // rename is.
    append(&log, &b[2000..2100].concat());
    let gz = dir.path().join("audit-1.log.gz");
    gzip(&gz, &std::fs::read(&log).unwrap());
    std::fs::remove_file(&log).unwrap();
    let r = s.ingest_paths(&[dir.path().to_path_buf()], &opts()).unwrap();
    assert_eq!(r.counts.events, 100, "{r:?}");
    let r = s.ingest_paths(std::slice::from_ref(&gz), &opts()).unwrap();
    assert_eq!((r.counts.events, r.already.len()), (0, 1), "the gzip file is now known by its bytes");
    assert_eq!(keys_in(&store), keys_of(&lines[..3100]));
}

#[test]
fn an_earlier_copy_of_a_log_read_further_adds_nothing() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let copy = dir.path().join("audit-copy.log");
    append(&log, &lines[..3000].concat());
    append(&copy, &lines[..2000].concat());
    assert!(std::fs::metadata(&copy).unwrap().len() > 64 << 10);
    let store = dir.path().join("s");
    let mut s = Store::create(&store).unwrap();
    s.ingest_paths(std::slice::from_ref(&log), &opts()).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&copy), &opts()).unwrap();
    assert_eq!((r.counts.events, r.already.len()), (0, 1));
    assert_eq!(keys_in(&store), keys_of(&lines[..3000]));
}

/// `follow` running on a thread.
struct Following {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<kaq_store::IngestReport>,
}

impl Following {
    /// Sets the stop flag and waits for the last commit.
    fn stop(self) -> kaq_store::IngestReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Runs `follow` on a thread until stopped, with short intervals.
fn start_following(store: &Path, files: Vec<PathBuf>, merge_after: usize) -> Following {
    let stop = Arc::new(AtomicBool::new(false));
    let (store, flag) = (store.to_path_buf(), stop.clone());
    let handle = std::thread::spawn(move || {
        let mut s = Store::open_writer(&store).unwrap();
        let o = FollowOptions {
            ingest: opts(),
            poll: Duration::from_millis(20),
            commit_every: Duration::from_millis(60),
            merge_after,
            small_rows: 1_000_000,
        };
        s.follow(&files, &o, &flag, &mut |_, _| {}, &mut |_| {}).unwrap()
    });
    Following { stop, handle }
}

/// Waits until the store holds `n` rows (or fails after a while).
fn wait_for_rows(store: &Path, n: u64) {
    for _ in 0..500 {
        if Store::open(store).map(|s| s.manifest().rows()).unwrap_or(0) == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the store never held {n} rows (holds {})", Store::open(store).unwrap().manifest().rows());
}

#[test]
fn follow_reads_appends_half_lines_and_both_rotations() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let store = dir.path().join("s");
    Store::create(&store).unwrap();
    append(&log, &lines[..500].concat());
    let following = start_following(&store, vec![log.clone()], 4);
    wait_for_rows(&store, 500);
    // Appends, one of them in two halves.
    append(&log, &lines[500..1000].concat());
    let l = &lines[1000];
    append(&log, &l[..l.len() / 2]);
    wait_for_rows(&store, 1000);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(Store::open(&store).unwrap().manifest().rows(), 1000, "half a line is not read");
    append(&log, &l[l.len() / 2..]);
    append(&log, &lines[1001..1500].concat());
    wait_for_rows(&store, 1500);
    // Rename rotation, with lines written to the old file after the rename (before the writer
    // reopens): they are read through the handle kept on it.
    let rotated = dir.path().join("audit-2026-11-20T10-00-00.000.log");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, &lines[1500..1600].concat());
    append(&log, &lines[1600..2000].concat());
    wait_for_rows(&store, 2000);
    // Copy-and-truncate rotation: the file starts again from nothing.
    std::fs::copy(&log, dir.path().join("audit.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    append(&log, &lines[2000..2600].concat());
    wait_for_rows(&store, 2600);
    let report = following.stop();
    assert_eq!(report.counts.events, 2600);
    assert_eq!(keys_in(&store), keys_of(&lines[..2600]));
    let s = Store::open(&store).unwrap();
    assert!(s.manifest().segments.len() < 8, "small segments are merged: {}", s.manifest().segments.len());
    // The rotated files, ingested later, add nothing; the copy of the truncated file neither.
    let mut s = Store::open_writer(&store).unwrap();
    let r = s.ingest_paths(&[dir.path().to_path_buf()], &opts()).unwrap();
    assert_eq!(r.counts.events, 0, "{r:?}");
    assert_eq!(keys_in(&store), keys_of(&lines[..2600]));
}

#[test]
fn a_restarted_follow_finishes_a_file_rotated_while_it_was_stopped() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let store = dir.path().join("s");
    Store::create(&store).unwrap();
    append(&log, &lines[..1000].concat());
    let following = start_following(&store, vec![log.clone()], 16);
    wait_for_rows(&store, 1000);
    following.stop();
    // While stopped: more lines, then rotation with compression, then a new file.
    append(&log, &lines[1000..1500].concat());
    let gz = dir.path().join("audit-2026-11-20T10-00-00.000.log.gz");
    gzip(&gz, &std::fs::read(&log).unwrap());
    std::fs::remove_file(&log).unwrap();
    append(&log, &lines[1500..1800].concat());
    let following = start_following(&store, vec![log.clone()], 16);
    wait_for_rows(&store, 1800);
    append(&log, &lines[1800..2000].concat());
    wait_for_rows(&store, 2000);
    following.stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..2000]));
}

#[test]
fn streams_cannot_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::create(dir.path().join("s")).unwrap();
    let stop = AtomicBool::new(true);
    let e = s.follow(&["-".into()], &FollowOptions::default(), &stop, &mut |_, _| {}, &mut |_| {}).unwrap_err();
    assert!(matches!(e, kaq_store::Error::Follow { .. }), "{e}");
}

fn gzip(path: &Path, bytes: &[u8]) {
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

#[test]
fn gzip_files_are_known_by_their_content() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let full = lines[..2000].concat();
    let store = dir.path().join("s");
    let mut s = Store::create(&store).unwrap();
    // A gzip file cut short (being written by the compressor), then whole: only the rest is read.
    let whole = dir.path().join("whole.gz");
    gzip(&whole, full.as_bytes());
    let gz = dir.path().join("audit-1.log.gz");
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&gz), &opts()).unwrap();
    assert!(!r.read_errors.is_empty(), "a cut gzip file says so");
    let first = r.counts.events;
    assert!(first > 0 && first < 2000, "{first}");
    std::fs::copy(&whole, &gz).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&gz), &opts()).unwrap();
    assert!(r.counts.events + first >= 1999, "{} + {first}", r.counts.events);
    // The event cut in two at the break is rejected (and said), not duplicated.
    let keys = keys_in(&store);
    let mut dedup = keys.clone();
    dedup.dedup();
    assert_eq!(keys, dedup, "no event twice");
    // Read again: nothing; decompressed beside it: nothing either.
    let r = s.ingest_paths(std::slice::from_ref(&gz), &opts()).unwrap();
    assert_eq!((r.counts.events, r.already.len()), (0, 1));
    let plain = dir.path().join("audit-1.log");
    std::fs::write(&plain, &full).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&plain), &opts()).unwrap();
    assert_eq!((r.counts.events, r.already.len()), (0, 1), "{r:?}");
}

#[test]
fn a_bad_first_line_does_not_make_a_log_a_document() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    append(&log, "not JSON at all\n");
    append(&log, &lines[..10].concat());
    append(&log, &lines[10][..40]);
    let mut s = Store::create(dir.path().join("s")).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&log), &opts()).unwrap();
    assert_eq!((r.counts.events, r.counts.rejected, r.unread.len()), (10, 1, 1));
    append(&log, &lines[10][40..]);
    append(&log, &lines[11..20].concat());
    let r = s.ingest_paths(std::slice::from_ref(&log), &opts()).unwrap();
    assert_eq!((r.counts.events, r.counts.rejected), (10, 0));
    assert_eq!(keys_in(&dir.path().join("s")), keys_of(&lines[..20]));
}

#[test]
fn a_changed_document_is_refused() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("events.json");
    let list = |n: usize| {
        let items: Vec<serde_json::Value> = lines[..n].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        serde_json::to_string_pretty(
            &serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}),
        )
        .unwrap()
    };
    std::fs::write(&doc, list(300)).unwrap();
    let mut s = Store::create(dir.path().join("s")).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&doc), &opts()).unwrap();
    assert_eq!(r.counts.events, 300);
    let r = s.ingest_paths(std::slice::from_ref(&doc), &opts()).unwrap();
    assert_eq!(r.already.len(), 1);
    std::fs::write(&doc, list(600)).unwrap();
    let e = s.ingest_paths(std::slice::from_ref(&doc), &opts()).unwrap_err();
    assert!(matches!(e, kaq_store::Error::Changed { .. }), "{e}");
    assert_eq!(s.manifest().rows(), 300);
}

#[test]
fn follow_survives_a_file_removed_or_compressed_away() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let store = dir.path().join("s");
    Store::create(&store).unwrap();
    append(&log, &lines[..300].concat());
    let following = start_following(&store, vec![log.clone()], 16);
    wait_for_rows(&store, 300);
    // Lines written, then the file removed before kaq looks: read through its handle.
    append(&log, &lines[300..400].concat());
    std::fs::remove_file(&log).unwrap();
    append(&log, &lines[400..500].concat());
    wait_for_rows(&store, 500);
    // Rotated and compressed at once (kube-apiserver's --audit-log-compress).
    append(&log, &lines[500..600].concat());
    let rotated = dir.path().join("audit-1.log");
    std::fs::rename(&log, &rotated).unwrap();
    gzip(&dir.path().join("audit-1.log.gz"), &std::fs::read(&rotated).unwrap());
    std::fs::remove_file(&rotated).unwrap();
    append(&log, &lines[600..700].concat());
    wait_for_rows(&store, 700);
    following.stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..700]));
}

#[test]
fn a_followed_link_finds_its_file_rotated_while_stopped() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("audit.log");
    let link = dir.path().join("audit.log");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let store = dir.path().join("s");
    Store::create(&store).unwrap();
    append(&real, &lines[..100].concat());
    let following = start_following(&store, vec![link.clone()], 16);
    wait_for_rows(&store, 100);
    following.stop();
    append(&real, &lines[100..150].concat());
    std::fs::rename(&real, real_dir.join("audit-1.log")).unwrap();
    append(&real, &lines[150..160].concat());
    let following = start_following(&store, vec![link.clone()], 16);
    wait_for_rows(&store, 160);
    following.stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..160]));
}
