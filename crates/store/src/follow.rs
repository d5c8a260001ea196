//! Following files as they grow (`kaq ingest --follow`), through rotation.
//!
//! Each look at a file reads its complete lines after those the store (or the open segment)
//! already holds, recognised by content as any ingest does ([`inputs`](crate::inputs)); so a
//! restart resumes where the last commit ended, without loss or duplicates. Every file is opened
//! once, when following starts (or when a new file appears at a followed path), and read only
//! through that handle (`/proc/self/fd/N`): a rename during the catch-up cannot put another file
//! under the name between a look and a read, and a file removed meanwhile is still read.
//! - **rename rotation** (kube-apiserver's own: `audit.log` becomes `audit-<time>.log` and a new
//!   `audit.log` starts): the old file is read to its end through its handle, then the new file
//!   from its start;
//! - **copy-and-truncate rotation**: a file that no longer begins with what the last look saw of
//!   it was truncated; its copy, beside it, begins with those bytes: the copy is read from where
//!   the store stopped, then the emptied file from its start;
//! - **rotations between two looks, or while stopped**: the files beside the followed one whose
//!   names begin like its own, written since the last look (kept in the manifest at each commit,
//!   [`Manifest::followed`](crate::Manifest::followed)), are read too, as far as the store has
//!   not read them; on restart, first the file that begins with what the path's last record
//!   names;
//! - what was read is committed every `commit_every` as a segment; small segments at the end of
//!   the store are merged once there are `merge_after` of them (the old files are deleted after
//!   the commit; a query that had not opened them yet starts again on the new manifest).
//!
//! What copy-and-truncate itself loses (lines written between the copy and the truncation) is
//! not in any file: it cannot be read.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kaq_input::{Counts, Reject, Source};

use crate::{At, Error, IngestOptions, IngestReport, Pending, Store, inputs};

/// How to follow.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub ingest: IngestOptions,
    /// How often the files are looked at.
    pub poll: Duration,
    /// How often what was read is committed (as one segment).
    pub commit_every: Duration,
    /// Segments under [`small_rows`](Self::small_rows) rows at the end of the store are merged
    /// into one once there are this many.
    pub merge_after: usize,
    pub small_rows: u64,
    /// List each commit's auditIDs in [`FollowCommit::ids`] (a read of the segment's `id`
    /// column; for live detection, off otherwise).
    pub commit_ids: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            ingest: IngestOptions::default(),
            poll: Duration::from_secs(1),
            commit_every: Duration::from_secs(10),
            merge_after: 16,
            small_rows: 250_000,
            commit_ids: false,
        }
    }
}

/// What a commit while following did, for progress lines.
#[derive(Debug, Clone, Default)]
pub struct FollowCommit {
    /// Events committed now.
    pub events: u64,
    /// Events read since following began (the catch-up included).
    pub total_events: u64,
    /// Segments merged into one after this commit (0: none).
    pub merged: usize,
    /// Files read to their end since the last commit: renamed away by rotation, or found beside
    /// a followed file as its rotation (the copy of a truncated file, a later rotation).
    pub rotated: Vec<String>,
    /// What may not have been read: a file truncated whose copy was not found beside it.
    pub warnings: Vec<String>,
    /// The earliest and latest `time` of the events committed now (before any merge), when
    /// any has one: what a live detection must look at again (`kaq watch`).
    pub times: Option<(i64, i64)>,
    /// The distinct auditIDs of the events committed now (`""` for events without one), when
    /// there are at most [`FollowCommit::IDS_UP_TO`] events: what a live detection reads again
    /// from the whole store, so that its rules see each new request's latest stage (`kaq
    /// watch`). `None`: more events, none, or not asked for ([`FollowOptions::commit_ids`]).
    pub ids: Option<Vec<String>>,
}

impl FollowCommit {
    /// The most events a commit lists the auditIDs of ([`FollowCommit::ids`]).
    pub const IDS_UP_TO: u64 = 100_000;
}

/// One followed path.
struct Tail {
    /// As named (looked at anew each time: rotation puts another file there).
    path: PathBuf,
    /// Its absolute name, as records name it.
    name: String,
    /// The file being read: its handle and (device, inode).
    open: Option<(File, (u64, u64))>,
    /// What the file at the handle held at the last look, when that included a complete line:
    /// its size and the hash of its first `min(size, 64 KiB)` bytes. A file that no longer begins
    /// with them was truncated (copy-and-truncate), and its copy begins with them.
    seen: Option<(u64, String)>,
    /// Its size at the last look (a file found shorter was truncated).
    size: u64,
    /// When it was last looked at.
    looked: SystemTime,
}

/// How much earlier than the last look a file beside a followed one may have been modified and
/// still be looked at as a rotation made since (file times are coarser than the clock, and
/// copy-and-truncate copies before it truncates).
const SLACK: Duration = Duration::from_secs(2);

fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// The absolute name of `p`: its canonical path, or (when it is not there) its directory's
/// followed by its file name.
fn absolute_name(p: &Path) -> Result<String, Error> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Ok(c.display().to_string());
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (std::fs::canonicalize(parent), p.file_name()) {
        (Ok(dir), Some(file)) => Ok(dir.join(file).display().to_string()),
        _ => Err(Error::Follow { path: p.to_path_buf(), why: "neither it nor its directory exists".to_string() }),
    }
}

/// Whether the file identified as `id` still begins with what was `seen` of it.
fn continues(id: &inputs::Identity, seen: &(u64, String)) -> bool {
    id.size >= seen.0 && id.head_of(seen.0) == seen.1
}

/// What a look at `id` saw, when its first bytes hold a complete line (fewer cannot tell its
/// copy from another log's).
fn seen_of(id: &inputs::Identity) -> Option<(u64, String)> {
    let n = (id.size.min(crate::HEAD_BYTES) as usize).min(id.head_bytes.len());
    memchr::memchr(b'\n', &id.head_bytes[..n]).map(|_| (id.size, id.head.clone()))
}

impl Tail {
    /// A tail reading `f`, opened at `path` now.
    fn opened(path: PathBuf, name: String, f: File) -> Result<Tail, Error> {
        let looked = SystemTime::now();
        let m = f.metadata().at(&path)?;
        let id = inputs::identify(&fd_path(&f), Some(&name))?;
        Ok(Tail { path, name, open: Some((f, (m.dev(), m.ino()))), seen: seen_of(&id), size: id.size, looked })
    }
}

/// What one pass reads into: the open segment and its records, the report, the callbacks' news.
struct Pass<'a> {
    open: Pending,
    report: IngestReport,
    opts: &'a IngestOptions,
    on_chunk: &'a mut dyn FnMut(&Counts, &[Reject]),
    /// Files read to their end since the last commit (rotated away), and warnings.
    rotated: Vec<String>,
    warnings: Vec<String>,
}

impl Store {
    /// Ingests `inputs` (files, or directories of them) and then keeps reading what is appended
    /// to their plain files, until `stop` is set; commits what was read before returning. Gzip
    /// files are read once (a finished rotation does not grow). `on_chunk` sees every chunk read,
    /// `on_commit` every commit.
    ///
    /// Every file is opened once, when following starts, and read only through that handle: a
    /// rotation during the catch-up (or a file removed meanwhile) cannot put another file under
    /// a name between a look and a read.
    pub fn follow(
        &mut self,
        inputs: &[PathBuf],
        opts: &FollowOptions,
        stop: &AtomicBool,
        on_chunk: &mut dyn FnMut(&Counts, &[Reject]),
        on_commit: &mut dyn FnMut(&FollowCommit),
    ) -> Result<IngestReport, Error> {
        if self.lock.is_none() {
            *self = Store::open_writer(&self.dir)?;
        }
        if inputs.iter().any(|p| p == Path::new("-")) {
            let why = "only files can be followed; ingest a stream without --follow".to_string();
            return Err(Error::Follow { path: PathBuf::from("-"), why });
        }
        let mut pass = Pass {
            open: Pending::default(),
            report: IngestReport::default(),
            opts: &opts.ingest,
            on_chunk,
            rotated: Vec::new(),
            warnings: Vec::new(),
        };
        // Plain files are followed; gzip and Parquet files are read once. A path not there (yet,
        // or between a rotation's rename and the new file) is waited for.
        let own = std::fs::canonicalize(&self.dir).at(&self.dir)?;
        let mut tails = Vec::new();
        let mut once: Vec<(File, String)> = Vec::new();
        for p in inputs {
            let files = if p.is_dir() {
                // The store's own files, when a directory holding it is followed, are not input.
                let inside = |f: &Path| std::fs::canonicalize(f).is_ok_and(|c| c.starts_with(&own));
                let expanded = kaq_input::expand(std::slice::from_ref(p))?;
                pass.report.skipped.extend(expanded.skipped.into_iter().filter(|f| !inside(f)));
                expanded
                    .sources
                    .into_iter()
                    .filter_map(|s| match s {
                        Source::File(f) if !inside(&f) => Some(f),
                        _ => None,
                    })
                    .collect()
            } else {
                vec![p.clone()]
            };
            for f in files {
                let name = absolute_name(&f)?;
                match File::open(&f) {
                    Ok(h) => {
                        let mut magic = [0u8; 4];
                        let n = h.read_at(&mut magic, 0).at(&f)?;
                        if magic[..n].starts_with(&[0x1f, 0x8b]) || &magic[..n] == b"PAR1" {
                            once.push((h, name));
                        } else {
                            tails.push(Tail::opened(f, name, h)?);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        tails.push(Tail { path: f, name, open: None, seen: None, size: 0, looked: SystemTime::now() });
                    }
                    Err(e) => return Err(Error::Io { path: f, error: e }),
                }
            }
        }
        // Catch up: first what was rotated away from each followed path since the last run, then
        // the files read once; the followed files are read by the first look.
        for t in &tails {
            for (f, name) in self.rotated_while_stopped(t)? {
                self.read_file(&mut pass, &f, &name, false)?;
            }
        }
        for (f, name) in &once {
            self.read_file(&mut pass, f, name, false)?;
            if pass.open.rows() >= opts.ingest.segment_events.max(1) {
                pass.report.segments += usize::from(self.commit_pending(&mut pass.open, &mut pass.report)?);
            }
        }

        let mut first = true;
        let mut last_commit = Instant::now();
        let mut committed_events = 0;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            for t in &mut tails {
                self.look(t, &mut pass)?;
            }
            let due =
                last_commit.elapsed() >= opts.commit_every || pass.open.rows() >= opts.ingest.segment_events.max(1);
            if due || stopping || first {
                for t in &tails {
                    let us = t.looked.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
                    self.manifest.followed.insert(t.name.clone(), us);
                }
                let committed = self.commit_pending(&mut pass.open, &mut pass.report)?;
                pass.report.segments += usize::from(committed);
                let times = if committed {
                    self.manifest.segments.last().and_then(|s| s.min_time.zip(s.max_time))
                } else {
                    None
                };
                // Read before a merge replaces the segment.
                let ids = match self.manifest.segments.last() {
                    Some(s) if committed && opts.commit_ids && s.rows <= FollowCommit::IDS_UP_TO => {
                        Some(crate::ids::ids_in(&self.dir.join(crate::SEGMENTS).join(&s.file))?)
                    }
                    _ => None,
                };
                let merged = if committed { self.merge_small_tail(opts)? } else { 0 };
                let events = pass.report.counts.events - committed_events;
                committed_events = pass.report.counts.events;
                if first || events > 0 || merged > 0 || !pass.rotated.is_empty() || !pass.warnings.is_empty() {
                    on_commit(&FollowCommit {
                        events,
                        total_events: pass.report.counts.events,
                        merged,
                        rotated: std::mem::take(&mut pass.rotated),
                        warnings: std::mem::take(&mut pass.warnings),
                        times,
                        ids,
                    });
                }
                last_commit = Instant::now();
                first = false;
            }
            if stopping {
                break;
            }
            let until = Instant::now() + opts.poll;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(opts.poll.min(Duration::from_millis(50)));
            }
        }
        Ok(pass.report)
    }

    /// One look at a followed path: a file renamed away (or removed) is finished through its
    /// handle and the new one opened; a truncated file's copy is finished first; other rotations
    /// made since the last look, found beside it, are read; then what is new in the file.
    fn look(&mut self, t: &mut Tail, pass: &mut Pass) -> Result<(), Error> {
        let now = SystemTime::now();
        let since = t.looked.checked_sub(SLACK).unwrap_or(SystemTime::UNIX_EPOCH);
        let now_there = std::fs::metadata(&t.path).ok().map(|m| (m.dev(), m.ino()));
        let mut rotation = false;
        if let Some((f, ino)) = &t.open
            && now_there != Some(*ino)
        {
            // Renamed away (or removed): finish it through the handle kept on it.
            let name = std::fs::read_link(fd_path(f))
                .ok()
                .map(|p| p.display().to_string())
                .filter(|p| !p.ends_with(" (deleted)"))
                .unwrap_or_else(|| format!("{} (rotated)", t.name));
            self.read_file(pass, f, &name, true)?;
            pass.rotated.push(name);
            t.open = None;
            t.seen = None;
            t.size = 0;
            rotation = true;
        }
        if t.open.is_none()
            && now_there.is_some()
            && let Ok(f) = File::open(&t.path)
            && let Ok(m) = f.metadata()
        {
            // The inode of what was opened: if a rotation came between the look and the open,
            // this is the new file, as the path says.
            t.open = Some((f, (m.dev(), m.ino())));
        }
        let id = match &t.open {
            Some((f, _)) => Some(inputs::identify(&fd_path(f), Some(&t.name))?),
            None => None,
        };
        // Truncated (copy-and-truncate): what was appended since the last look is in the copy.
        let truncated = matches!((&t.seen, &id), (Some(seen), Some(id)) if !continues(id, seen));
        let shorter = id.as_ref().is_some_and(|id| id.size < t.size);
        // Last seen without a complete line: a whole rotation may have come and gone since.
        let unsure = t.seen.is_none() && id.as_ref().is_some_and(|id| id.size > 0);
        if rotation || truncated || shorter || unsure {
            let anchor = if truncated { t.seen.clone() } else { None };
            let found = self.rotated_beside(t, anchor.as_ref(), Some(since))?;
            if truncated && !found.first().is_some_and(|(_, _, anchored)| *anchored) {
                pass.warnings.push(format!(
                    "{} was truncated and no copy of it was found beside it: what was appended to it since kaq last looked is not read",
                    t.name
                ));
            }
            for (f, name, _) in found {
                if self.read_file(pass, &f, &name, false)? {
                    pass.rotated.push(name);
                }
            }
        }
        t.looked = now;
        if let Some(id) = id {
            t.seen = seen_of(&id);
            t.size = id.size;
            if let Some(r) = self.what_to_read_of(id, true, &pass.open.updates, false)? {
                self.read_into(&mut pass.open, r, pass.opts, pass.on_chunk, &mut pass.report)?;
            }
        }
        Ok(())
    }

    /// Reads what is new in the file open as `f` (named `name`); returns whether anything was.
    fn read_file(&mut self, pass: &mut Pass, f: &File, name: &str, whole: bool) -> Result<bool, Error> {
        match self.what_to_read(&fd_path(f), Some(name), &pass.open.updates, whole)? {
            Some(r) if r.source.is_some() => {
                self.read_into(&mut pass.open, r, pass.opts, pass.on_chunk, &mut pass.report)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The files a followed path was rotated to while kaq was stopped, when the path no longer
    /// holds the file its last record names: the file beside it that begins with the bytes read,
    /// and those beside it written since the last look before the last commit (later rotations),
    /// oldest first.
    fn rotated_while_stopped(&self, t: &Tail) -> Result<Vec<(File, String)>, Error> {
        let last = self.manifest.sources.iter().rev().find(|r| r.path == t.name && !r.sealed && r.size > 0);
        let looked = self.manifest.followed.get(&t.name).map(|us| {
            let at = SystemTime::UNIX_EPOCH + Duration::from_micros((*us).max(0) as u64);
            at.checked_sub(SLACK).unwrap_or(SystemTime::UNIX_EPOCH)
        });
        let anchor = last.map(|r| (r.size, r.head.clone()));
        match (&anchor, &t.open) {
            (None, _) if looked.is_none() => return Ok(Vec::new()), // never read
            (Some(a), Some((f, _))) if continues(&inputs::identify(&fd_path(f), Some(&t.name))?, a) => {
                return Ok(Vec::new()); // still there
            }
            _ => {}
        }
        // Stores written before `followed`: since the file that begins with the bytes read was
        // last written.
        let found = self.rotated_beside(t, anchor.as_ref(), looked)?;
        Ok(found.into_iter().map(|(f, name, _)| (f, name)).collect())
    }

    /// Files beside a followed one that may hold what a rotation took from it, opened: first
    /// the one that begins with `anchor` (size, head hash) when there is one (plain before
    /// gzip), then those of its rotation family (names that begin like its own) modified since
    /// `since` (or since the anchor was, less [`SLACK`]), oldest first. Each comes with whether
    /// it is the anchor. The files are recognised by content when read: what the store holds
    /// of them is not read again.
    fn rotated_beside(
        &self,
        t: &Tail,
        anchor: Option<&(u64, String)>,
        since: Option<SystemTime>,
    ) -> Result<Vec<(File, String, bool)>, Error> {
        // Beside the file itself (the path may be a link to it).
        let real = Path::new(&t.name);
        let (Some(dir), Some(own)) = (real.parent(), real.file_name()) else { return Ok(Vec::new()) };
        let own = own.to_string_lossy();
        let stem = own.split('.').next().unwrap_or(&own).to_string();
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
        let mut family: Vec<(PathBuf, std::fs::Metadata)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                let keep =
                    name != own && !name.starts_with('.') && name.starts_with(&stem) && kaq_input::looks_like_log(&p);
                let m = std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
                keep.then_some((p, m))
            })
            .collect();
        family.sort_by(|a, b| a.0.cmp(&b.0));
        let mut found: Vec<(File, String, bool)> = Vec::new();
        let mut anchor_at: Option<((u64, u64), SystemTime)> = None;
        if let Some((size, head)) = anchor {
            let n = (*size).min(crate::HEAD_BYTES);
            let mut ordered: Vec<&(PathBuf, std::fs::Metadata)> = family.iter().collect();
            ordered.sort_by_key(|(p, _)| kaq_input::is_gzip(p));
            for (p, _) in ordered {
                let Ok(f) = File::open(p) else { continue };
                let fd = fd_path(&f);
                let gzip = kaq_input::is_gzip(&fd);
                if inputs::content_head(&fd, n, gzip).ok().flatten().as_deref() == Some(head.as_str()) {
                    let m = f.metadata().at(p)?;
                    anchor_at = Some(((m.dev(), m.ino()), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
                    found.push((f, p.display().to_string(), true));
                    break;
                }
            }
        }
        let since = match (since, anchor_at) {
            (Some(s), _) => s,
            (None, Some((_, modified))) => modified.checked_sub(SLACK).unwrap_or(SystemTime::UNIX_EPOCH),
            (None, None) => return Ok(found),
        };
        let mut later: Vec<(SystemTime, &PathBuf)> = family
            .iter()
            .filter(|(_, m)| anchor_at.is_none_or(|(ino, _)| (m.dev(), m.ino()) != ino))
            .filter_map(|(p, m)| m.modified().ok().filter(|t| *t >= since).map(|t| (t, p)))
            .collect();
        later.sort();
        for (_, p) in later {
            if let Ok(f) = File::open(p) {
                found.push((f, p.display().to_string(), false));
            }
        }
        Ok(found)
    }

    /// Merges the small segments at the end of the store once there are enough of them (their
    /// files are deleted after the commit, as by `compact`).
    fn merge_small_tail(&mut self, opts: &FollowOptions) -> Result<usize, Error> {
        let small: Vec<u64> =
            self.manifest.segments.iter().rev().take_while(|s| s.rows < opts.small_rows.max(1)).map(|s| s.id).collect();
        if small.len() < opts.merge_after.max(2) {
            return Ok(0);
        }
        self.rewrite(&small, &[], None)?;
        Ok(small.len())
    }
}

// Shared with tests/follow.rs.
#[cfg(test)]
#[path = "../tests/common/lines.rs"]
mod test_lines;

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::io::Write;

    use super::test_lines::{keys_in, keys_of, sample_lines};
    use super::*;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn truncate(path: &Path) {
        std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
    }

    /// `follow_through_rotations_and_kill_9_stores_every_event_once` lost a copy's 28 lines and
    /// rejected its last one (`REJECT audit.log.68:28: invalid JSON`) when the followed file was
    /// copied and truncated, and new lines appended to it, between a look's identification of the
    /// file (its size and first bytes) and its read: the copy of the previous rotation is read in
    /// between. The read, through the same handle, got the new lines in place of those
    /// identified, and the record said the identified bytes were read; the copy was then resumed
    /// inside its last line. Here the look is driven directly and the rotation made from the
    /// callback that sees the copy's chunk, at that very moment: new lines fewer bytes than those
    /// identified (as in the failure), more, and none.
    #[test]
    fn a_file_copied_truncated_and_refilled_between_its_look_and_its_read_loses_nothing() {
        let lines = sample_lines();
        let bytes = |r: std::ops::Range<usize>| lines[r].concat().len();
        // The lines identified (C), then those appended after it was copied and emptied again.
        let c = 20..48;
        for (what, d) in [("fewer bytes", 48..56), ("more bytes", 48..120), ("nothing", 48..48)] {
            assert_eq!(bytes(d.clone()) < bytes(c.clone()), what != "more bytes", "{what}");
            let dir = tempfile::tempdir().unwrap();
            let (log, store) = (dir.path().join("audit.log"), dir.path().join("s"));
            Store::create(&store).unwrap();
            let mut s = Store::open_writer(&store).unwrap();
            append(&log, &lines[..10].concat());
            let name = absolute_name(&log).unwrap();
            let mut t = Tail::opened(log.clone(), name, File::open(&log).unwrap()).unwrap();
            let phase = Cell::new(0);
            let rejects = RefCell::new(Vec::new());
            let mut on_chunk = |_: &Counts, r: &[Reject]| {
                rejects.borrow_mut().extend(r.iter().map(|r| format!("{}:{}: {}", r.source, r.line, r.reason)));
                if phase.get() == 1 {
                    // Copied and truncated, the emptied file copied and truncated again, lines
                    // appended: all after the look identified the file, before it reads it.
                    phase.set(2);
                    std::fs::copy(&log, dir.path().join("audit.log.2")).unwrap();
                    truncate(&log);
                    std::fs::copy(&log, dir.path().join("audit.log.3")).unwrap();
                    truncate(&log);
                    append(&log, &lines[d.clone()].concat());
                }
            };
            let opts = IngestOptions::default();
            let mut pass = Pass {
                open: Pending::default(),
                report: IngestReport::default(),
                opts: &opts,
                on_chunk: &mut on_chunk,
                rotated: Vec::new(),
                warnings: Vec::new(),
            };
            s.look(&mut t, &mut pass).unwrap();
            assert_eq!(pass.report.counts.events, 10, "{what}");
            // Copied (with 10 more lines) and truncated, then C appended: the next look finds
            // the file truncated and reads the copy first.
            let mut copy = std::fs::read(&log).unwrap();
            copy.extend_from_slice(lines[10..20].concat().as_bytes());
            std::fs::write(dir.path().join("audit.log.1"), copy).unwrap();
            truncate(&log);
            append(&log, &lines[c.clone()].concat());
            phase.set(1);
            s.look(&mut t, &mut pass).unwrap();
            assert_eq!(phase.get(), 2, "{what}: the copy was read before the file");
            s.look(&mut t, &mut pass).unwrap();
            s.look(&mut t, &mut pass).unwrap();
            s.commit_pending(&mut pass.open, &mut pass.report).unwrap();
            assert_eq!(rejects.borrow().as_slice(), &[] as &[String], "{what}");
            assert!(pass.warnings.is_empty(), "{what}: {:?}", pass.warnings);
            let want = [&lines[..48], &lines[d.clone()]].concat();
            assert_eq!(keys_in(&store), keys_of(&want), "{what}");
            assert_eq!(pass.report.duplicates, 0, "{what}: nothing is read twice");
        }
    }

    /// The same between the choice of what to read (the file's size, its first bytes, where its
    /// last complete line ends) and the read itself: the file copied, truncated and given fewer
    /// bytes than were chosen (the read comes up short), or more. What is read is what was
    /// chosen, or nothing; the copy gives the rest, from where reading stopped.
    #[test]
    fn a_file_truncated_and_refilled_after_its_part_was_chosen_is_read_from_its_copy() {
        let lines = sample_lines();
        let bytes = |r: std::ops::Range<usize>| lines[r].concat().len();
        for (what, d) in [("fewer bytes", 48..70), ("more bytes", 48..120)] {
            assert_eq!(bytes(d.clone()) < bytes(0..48), what == "fewer bytes", "{what}");
            let dir = tempfile::tempdir().unwrap();
            let (log, store) = (dir.path().join("audit.log"), dir.path().join("s"));
            Store::create(&store).unwrap();
            let mut s = Store::open_writer(&store).unwrap();
            let (opts, mut report, mut open) = (IngestOptions::default(), IngestReport::default(), Pending::default());
            let rejects = RefCell::new(Vec::new());
            let mut on_chunk = |_: &Counts, r: &[Reject]| {
                rejects.borrow_mut().extend(r.iter().map(|r| format!("{}:{}: {}", r.source, r.line, r.reason)));
            };
            append(&log, &lines[..48].concat());
            let r = s.what_to_read(&log, None, &open.updates, false).unwrap().unwrap();
            // Now copied, truncated, and written again.
            let copy = dir.path().join("audit.log.1");
            std::fs::copy(&log, &copy).unwrap();
            truncate(&log);
            append(&log, &lines[d.clone()].concat());
            s.read_into(&mut open, r, &opts, &mut on_chunk, &mut report).unwrap();
            for p in [&copy, &log] {
                if let Some(r) = s.what_to_read(p, None, &open.updates, false).unwrap() {
                    s.read_into(&mut open, r, &opts, &mut on_chunk, &mut report).unwrap();
                }
            }
            s.commit_pending(&mut open, &mut report).unwrap();
            assert_eq!(rejects.borrow().as_slice(), &[] as &[String], "{what}");
            assert_eq!(keys_in(&store), keys_of(&[&lines[..48], &lines[d.clone()]].concat()), "{what}");
            assert_eq!(report.duplicates, 0, "{what}: nothing is read twice");
        }
    }
}
