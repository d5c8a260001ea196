//! Files that grow and rotate: resumed ingests and `follow` (docs/store.md: re-running an ingest,
//! or restarting `--follow`, resumes without loss or duplicates; `--follow` follows rotation).
//!
//! The log is the shipped sample's lines, written out piece by piece; after every scenario the
//! store must hold each written line's (auditID, stage) exactly once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kaq_store::{FollowOptions, IngestOptions, Store};

#[path = "common/lines.rs"]
mod lines;
use lines::{keys_in, keys_of, sample_lines};

/// The sample lines, and in a new temporary directory a log path (`audit.log`, not written yet)
/// and a new store (`s`).
fn setup() -> (Vec<String>, tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (log, store) = (dir.path().join("audit.log"), dir.path().join("s"));
    Store::create(&store).unwrap();
    (sample_lines(), dir, log, store)
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
    handle: std::thread::JoinHandle<Result<kaq_store::IngestReport, kaq_store::Error>>,
}

impl Following {
    /// Sets the stop flag and waits for the last commit.
    fn stop(self) -> kaq_store::IngestReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap().unwrap_or_else(|e| panic!("follow failed: {e}"))
    }

    /// Waits until the store holds `n` rows; fails after a while, or (with its error) as soon as
    /// `follow` ends.
    fn wait_for_rows(self, store: &Path, n: u64) -> Self {
        for _ in 0..500 {
            if Store::open(store).map(|s| s.manifest().rows()).unwrap_or(0) == n {
                return self;
            }
            if self.handle.is_finished() {
                let r = self.handle.join().unwrap();
                panic!("follow ended before the store held {n} rows: {:?}", r.map(|r| r.counts));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the store never held {n} rows (holds {})", Store::open(store).unwrap().manifest().rows());
    }
}

/// Runs `follow` on a thread until stopped, with short intervals.
fn start_following(store: &Path, files: Vec<PathBuf>, merge_after: usize) -> Following {
    start_following_with(store, files, merge_after, Duration::from_millis(20), Box::new(|| {}))
}

/// [`start_following`] looking every `poll`, calling `hook` at every chunk read.
fn start_following_with(
    store: &Path,
    files: Vec<PathBuf>,
    merge_after: usize,
    poll: Duration,
    mut hook: Box<dyn FnMut() + Send>,
) -> Following {
    let stop = Arc::new(AtomicBool::new(false));
    let (store, flag) = (store.to_path_buf(), stop.clone());
    let handle = std::thread::spawn(move || {
        let mut s = Store::open_writer(&store).unwrap();
        let o = FollowOptions {
            ingest: opts(),
            poll,
            commit_every: Duration::from_millis(60),
            merge_after,
            small_rows: 1_000_000,
            commit_ids: false,
        };
        s.follow(&files, &o, &flag, &mut |_, _| hook(), &mut |_| {})
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
    let (lines, dir, log, store) = setup();
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
    let (lines, dir, log, store) = setup();
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
    assert_eq!(r.counts.rejected, 1, "the half line at the break is rejected as incomplete");
    // Issue 13: that half line was recorded as read, so the whole file was read from its middle
    // (one event lost, and a reject "invalid type: integer"). Only whole lines count as read.
    let rec = &s.manifest().sources[0];
    assert_eq!((rec.lines, rec.events, rec.rejected), (first, first, 0), "{rec:?}");
    assert_eq!(rec.size, lines[..first as usize].concat().len() as u64);
    std::fs::copy(&whole, &gz).unwrap();
    let r = s.ingest_paths(std::slice::from_ref(&gz), &opts()).unwrap();
    assert_eq!((r.counts.events + first, r.counts.rejected), (2000, 0), "{r:?}");
    assert_eq!(keys_in(&store), keys_of(&lines[..2000]), "every event once");
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
    let (lines, dir, log, store) = setup();
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

/// Issue 13: a rename while `follow` catches up (the file is read whole first) left the rest of
/// the old file unread, and a restart did not find it. Every file is now read through the handle
/// opened when following starts: the lines appended to the old file before the rename are read
/// through it, then the new file.
#[test]
fn a_rename_while_catching_up_loses_nothing() {
    let (lines, _dir, log, store) = setup();
    append(&log, &lines[..3000].concat());
    // While the first chunk of the catch-up is read: more lines, a rename, a new file.
    let (log2, tail, new) = (log.clone(), lines[3000..3300].concat(), lines[3300..3600].concat());
    let mut fired = false;
    let hook = Box::new(move || {
        if !std::mem::replace(&mut fired, true) {
            append(&log2, &tail);
            std::fs::rename(&log2, log2.with_file_name("audit-rot.log")).unwrap();
            append(&log2, &new);
        }
    });
    let following = start_following_with(&store, vec![log.clone()], 16, Duration::from_millis(20), hook);
    following.wait_for_rows(&store, 3600).stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..3600]));
    // Restarted: nothing read twice, and the new file goes on.
    append(&log, &lines[3600..3700].concat());
    start_following(&store, vec![log.clone()], 16).wait_for_rows(&store, 3700).stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..3700]));
}

/// Issue 13: `follow` once stopped with "No such file or directory" when a rotation renamed a
/// file away while it started. Files renamed or removed during the catch-up are read through the
/// handles opened first.
#[test]
fn files_vanishing_while_follow_starts_do_not_stop_it() {
    let lines = sample_lines();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a.log"), dir.path().join("b.log"), dir.path().join("c.log.gz"));
    append(&a, &lines[..1000].concat());
    append(&b, &lines[1000..1500].concat());
    gzip(&c, lines[1500..1800].concat().as_bytes());
    let store = dir.path().join("s");
    Store::create(&store).unwrap();
    let (b2, c2) = (b.clone(), c.clone());
    let mut fired = false;
    let hook = Box::new(move || {
        if !std::mem::replace(&mut fired, true) {
            std::fs::rename(&b2, b2.with_file_name("b-1.log")).unwrap();
            std::fs::remove_file(&c2).unwrap();
        }
    });
    let following = start_following_with(&store, vec![a, b, c], 16, Duration::from_millis(20), hook);
    following.wait_for_rows(&store, 1800).stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..1800]));
}

/// Writes what copy-and-truncate makes of `log` when `more` was appended to it after kaq's last
/// look: its copy (`copy`, holding `more` too), then the file emptied. (Written to the copy
/// directly, so that no look can fall between the append and the copy.)
fn copy_and_truncate(log: &Path, copy: &Path, more: &str) {
    let mut bytes = std::fs::read(log).unwrap();
    bytes.extend_from_slice(more.as_bytes());
    std::fs::write(copy, bytes).unwrap();
    std::fs::OpenOptions::new().write(true).open(log).unwrap().set_len(0).unwrap();
}

/// Issue 13: copy-and-truncate dropped the lines appended since the last look (1,100 of 1,600
/// stored). They are in the copy, recognised by its first bytes: its rest is read, then the
/// emptied file from its start. Two rotations between two looks (copies or renames) lose nothing
/// either: the files beside it written since the last look are read too.
#[test]
fn copy_and_truncate_reads_the_copy_of_what_was_appended_since_the_last_look() {
    let (lines, dir, log, store) = setup();
    append(&log, &lines[..1000].concat());
    // Looks far apart: each rotation below falls between two of them.
    let f = start_following_with(&store, vec![log.clone()], 16, Duration::from_millis(300), Box::new(|| {}));
    let f = f.wait_for_rows(&store, 1000);
    copy_and_truncate(&log, &dir.path().join("audit.log.1"), &lines[1000..1300].concat());
    append(&log, &lines[1300..1500].concat());
    let f = f.wait_for_rows(&store, 1500);
    // Twice between two looks: the second copy holds lines kaq never saw in the file.
    copy_and_truncate(&log, &dir.path().join("audit.log.2"), &lines[1500..1600].concat());
    append(&log, &lines[1600..1700].concat());
    copy_and_truncate(&log, &dir.path().join("audit.log.3"), &lines[1700..1750].concat());
    append(&log, &lines[1750..1800].concat());
    let f = f.wait_for_rows(&store, 1800);
    // Renamed twice between two looks: the middle file was never open.
    append(&log, &lines[1800..1850].concat());
    std::fs::rename(&log, dir.path().join("audit-A.log")).unwrap();
    append(&log, &lines[1850..1900].concat());
    std::fs::rename(&log, dir.path().join("audit-B.log")).unwrap();
    append(&log, &lines[1900..1950].concat());
    f.wait_for_rows(&store, 1950).stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..1950]));
    // Everything beside it, ingested later, adds nothing.
    let mut s = Store::open_writer(&store).unwrap();
    let r = s.ingest_paths(&[dir.path().to_path_buf()], &opts()).unwrap();
    assert_eq!(r.counts.events, 0, "{r:?}");
}

/// A restart finds every rotation made while kaq was stopped, not only the first: the file that
/// begins with what the store last read of the path, and the files beside it written since.
#[test]
fn a_restart_finds_every_rotation_made_while_stopped() {
    let (lines, dir, log, store) = setup();
    append(&log, &lines[..500].concat());
    start_following(&store, vec![log.clone()], 16).wait_for_rows(&store, 500).stop();
    // Stopped: renamed, renamed and compressed, copied and truncated.
    append(&log, &lines[500..600].concat());
    std::fs::rename(&log, dir.path().join("audit-1.log")).unwrap();
    append(&log, &lines[600..700].concat());
    let second = dir.path().join("audit-2.log");
    std::fs::rename(&log, &second).unwrap();
    gzip(&dir.path().join("audit-2.log.gz"), &std::fs::read(&second).unwrap());
    std::fs::remove_file(&second).unwrap();
    append(&log, &lines[700..800].concat());
    copy_and_truncate(&log, &dir.path().join("audit.log.1"), &lines[800..850].concat());
    append(&log, &lines[850..900].concat());
    // The first rotated file compressed much later than the rotations after it (its time is no
    // bound on theirs).
    let first = dir.path().join("audit-1.log");
    let first_gz = dir.path().join("audit-1.log.gz");
    gzip(&first_gz, &std::fs::read(&first).unwrap());
    std::fs::remove_file(&first).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(600);
    std::fs::File::options().write(true).open(&first_gz).unwrap().set_modified(later).unwrap();
    start_following(&store, vec![log.clone()], 16).wait_for_rows(&store, 900).stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..900]));
}

/// gen-audit's log as lines (each with its newline), or `None` (saying why) when the generator
/// is not there.
fn gen_audit_lines(args: &[&str], out: &Path) -> Option<Vec<String>> {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gen-audit");
    if !tool.exists() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {} not found (the test needs it)", tool.display());
        return None;
    }
    let o = std::process::Command::new("python3").arg(&tool).args(args).arg("--out").arg(out).output().unwrap();
    assert!(o.status.success(), "gen-audit failed: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out).unwrap();
    Some(text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{l}\n")).collect())
}

/// Not a test on its own: the process that `follow_through_rotations_and_kill_9` starts (this
/// test binary, running only this) and kills. Follows the log named in `KAQ_FOLLOW_CHILD`
/// until killed, printing rejects and warnings (there must be none).
#[test]
fn follow_child() {
    let Ok(spec) = std::env::var("KAQ_FOLLOW_CHILD") else { return };
    let (store, log) = spec.split_once('\n').unwrap();
    let mut s = Store::open_writer(store).unwrap();
    let o = FollowOptions {
        ingest: IngestOptions { read: kaq_input::ReadOptions { threads: 1, ..Default::default() }, ..opts() },
        poll: Duration::from_millis(15),
        commit_every: Duration::from_millis(50),
        merge_after: 6,
        small_rows: 1_000_000,
        commit_ids: false,
    };
    let never = AtomicBool::new(false);
    let r = s.follow(
        &[PathBuf::from(log)],
        &o,
        &never,
        &mut |_, rejects| rejects.iter().for_each(|r| eprintln!("REJECT {}:{}: {}", r.source, r.line, r.reason)),
        &mut |c| c.warnings.iter().for_each(|w| eprintln!("WARNING {w}")),
    );
    eprintln!("FOLLOW ENDED {:?}", r.map(|r| r.counts));
}

/// The writer of [`follow_through_rotations_and_kill_9_stores_every_event_once`]: appends the
/// source's lines to `audit.log` and rotates it, at random (seeded).
struct Writer {
    dir: PathBuf,
    log: PathBuf,
    all: Vec<String>,
    written: usize,
    state: u64,
    /// Rotated files not yet compressed.
    rotated: Vec<PathBuf>,
    renames: usize,
    copies: usize,
    compressed: usize,
    /// What was done, for a failure's message.
    journal: Vec<String>,
}

impl Writer {
    fn rng(&mut self, n: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % n.max(1)
    }

    fn rotations(&self) -> usize {
        self.renames + self.copies
    }

    /// One action: 0 appends lines, 1 renames, 2 copies and truncates, 3 compresses a rotated
    /// file.
    fn act(&mut self, what: u64) {
        let n = self.renames + self.copies + 1;
        match what {
            0 => {
                let k = (1 + self.rng(40) as usize).min(self.all.len() - self.written);
                if k == 0 {
                    return;
                }
                let text = self.all[self.written..self.written + k].concat();
                self.written += k;
                if self.rng(3) == 0 {
                    // Half a line, then the rest a moment later.
                    let cut = text.len() - self.all[self.written - 1].len() / 2;
                    append(&self.log, &text[..cut]);
                    let pause = self.rng(10);
                    std::thread::sleep(Duration::from_millis(pause));
                    append(&self.log, &text[cut..]);
                } else {
                    append(&self.log, &text);
                }
                self.journal.push(format!("lines {}..{}", self.written - k, self.written));
            }
            1 if self.log.exists() => {
                let to = self.dir.join(format!("audit-{n}.log"));
                std::fs::rename(&self.log, &to).unwrap();
                self.journal.push(format!("renamed to {}", to.display()));
                self.rotated.push(to);
                self.renames += 1;
            }
            2 if self.log.exists() => {
                let to = self.dir.join(format!("audit.log.{n}"));
                std::fs::copy(&self.log, &to).unwrap();
                std::fs::OpenOptions::new().write(true).open(&self.log).unwrap().set_len(0).unwrap();
                self.journal.push(format!("copied to {} and truncated", to.display()));
                self.rotated.push(to);
                self.copies += 1;
            }
            3 if !self.rotated.is_empty() => {
                // Compressed whole (under a hidden name, then renamed), then the plain file removed.
                let i = self.rng(self.rotated.len() as u64) as usize;
                let p = self.rotated.swap_remove(i);
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let tmp = self.dir.join(format!(".{name}.gz.tmp"));
                gzip(&tmp, &std::fs::read(&p).unwrap());
                std::fs::rename(&tmp, self.dir.join(format!("{name}.gz"))).unwrap();
                std::fs::remove_file(&p).unwrap();
                self.journal.push(format!("compressed {name}"));
                self.compressed += 1;
            }
            _ => {}
        }
    }
}

/// Issue 13, done when: `follow` under rename and copy-and-truncate rotations at random moments
/// (seeded: `KAQ_FOLLOW_SEED`), some while it catches up after a restart, some while it is
/// stopped, with kill -9 now and then, stores every event exactly once. The writer appends whole
/// lines, sometimes in two writes; rotated files are sometimes compressed (and the plain one
/// removed). What copy-and-truncate cannot keep is not done: nothing is written between the copy
/// and the truncation, and no line is cut by it.
#[test]
fn follow_through_rotations_and_kill_9_stores_every_event_once() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("KAQ_FOLLOW_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(13);
    let args = ["--events", "1000", "--stages", "--seed", &seed.to_string()];
    let Some(all) = gen_audit_lines(&args, &dir.path().join("src")) else { return };
    let log = dir.path().join("audit.log");
    let store = dir.path().join("s");
    let errors = dir.path().join("child-stderr.txt");
    Store::create(&store).unwrap();
    let spawn = || {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(&errors).unwrap();
        Command::new(std::env::current_exe().unwrap())
            .args(["follow_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env("KAQ_FOLLOW_CHILD", format!("{}\n{}", store.display(), log.display()))
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    };
    let child_log = || std::fs::read_to_string(&errors).unwrap_or_default();
    let rows = || Store::open(&store).map(|s| s.manifest().rows()).unwrap_or(0);
    let ms = |n: u64| std::thread::sleep(Duration::from_millis(n));
    let mut w = Writer {
        dir: dir.path().to_path_buf(),
        log: log.clone(),
        all,
        written: 0,
        state: seed.wrapping_mul(0x9e3779b97f4a7c15) | 1,
        rotated: Vec::new(),
        renames: 0,
        copies: 0,
        compressed: 0,
        journal: Vec::new(),
    };

    // The store knows the followed path before the first kill (what was rotated away before
    // kaq ever committed anything of a path cannot be told from any other file).
    append(&log, &w.all[..200].concat());
    w.written = 200;
    let mut child = spawn();
    for _ in 0..1000 {
        if rows() == 200 {
            break;
        }
        ms(20);
    }
    assert_eq!(rows(), 200, "{}", child_log());

    let (mut kills, mut while_stopped) = (0, 0);
    while w.rotations() < 24 || w.written < w.all.len() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("follow exited by itself ({status}): {}", child_log());
        }
        match w.rng(100) {
            0..50 => w.act(0),
            50..62 => w.act(1),
            62..74 => w.act(2),
            74..80 => w.act(3),
            80..88 => {
                let _ = child.kill(); // SIGKILL, wherever it is
                let _ = child.wait();
                kills += 1;
                w.journal.push(format!("killed, {} rows", rows()));
                // Now and then, rotations and appends while it is stopped.
                for _ in 0..w.rng(4) {
                    let what = w.rng(3);
                    while_stopped += usize::from(what > 0);
                    w.act(what);
                }
                child = spawn();
                w.journal.push("restarted".into());
            }
            _ => ms(w.rng(60)),
        }
        ms(w.rng(20));
    }
    let total = w.all.len() as u64;
    for _ in 0..1500 {
        if rows() >= total {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "follow exited by itself: {}", child_log());
        ms(20);
    }
    ms(200); // a duplicate would come with a later commit
    let _ = child.kill();
    let _ = child.wait();
    let _ = writeln!(
        std::io::stderr(),
        "follow under rotation: {total} lines, {} renames, {} copies and truncations, {} compressed, \
         {kills} kill -9 ({while_stopped} rotations while stopped), seed {seed}",
        w.renames,
        w.copies,
        w.compressed
    );
    let (got, want) = (keys_in(&store), keys_of(&w.all));
    if got != want {
        let g: std::collections::HashSet<&String> = got.iter().collect();
        let missing: Vec<usize> = (0..w.all.len()).filter(|&i| !g.contains(&keys_of(&w.all[i..=i])[0])).collect();
        panic!(
            "{} rows for {} lines: {} missing (lines {:?}), {} twice (seed {seed})\n{}\n{}",
            got.len(),
            want.len(),
            missing.len(),
            missing,
            got.len() - g.len(),
            w.journal.join("\n"),
            child_log()
        );
    }
    let text = child_log();
    assert!(!text.contains("REJECT") && !text.contains("WARNING"), "{text}");
}

/// A file last seen holding only half a line (nothing to recognise its copy by), then copied and
/// truncated: found shorter, its copy is looked for among the files written since that look.
#[test]
fn a_file_truncated_before_its_first_line_was_whole_is_read_from_its_copy() {
    let (lines, dir, log, store) = setup();
    let half = lines[0].len() / 2;
    append(&log, &lines[0][..half]);
    // Looks further apart than the slack on file times (2 s), so that only the shrinking tells.
    let f = start_following_with(&store, vec![log.clone()], 16, Duration::from_millis(2500), Box::new(|| {}));
    std::thread::sleep(Duration::from_millis(300));
    copy_and_truncate(&log, &dir.path().join("audit.log.1"), &[&lines[0][half..], &lines[1..100].concat()].concat());
    // Nothing is appended to the emptied file until the copy is read.
    let f = f.wait_for_rows(&store, 100);
    append(&log, &lines[100..150].concat());
    f.wait_for_rows(&store, 150).stop();
    assert_eq!(keys_in(&store), keys_of(&lines[..150]));
}
