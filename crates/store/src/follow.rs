//! Following files as they grow (`kaq ingest --follow`), through rotation.
//!
//! Each look at a file reads its complete lines after those the store (or the open segment)
//! already holds, recognised by content as any ingest does ([`inputs`](crate::inputs)); so a
//! restart resumes where the last commit ended, without loss or duplicates, and a file that was
//! rotated while kaq was stopped is finished first (found beside the followed path by its
//! content). While following:
//! - **rename rotation** (kube-apiserver's own: `audit.log` becomes `audit-<time>.log` and a new
//!   `audit.log` starts): the old file is read to its end through the handle kept open on it
//!   (`/proc/self/fd`), then the new file from its start;
//! - **copy-and-truncate rotation**: the file is read from its start again when it is shorter
//!   than what was read or begins with other bytes (the copy, ingested later, adds only what the
//!   store has not seen);
//! - what was read is committed every `commit_every` as a segment; small segments at the end of
//!   the store are merged once there are `merge_after` of them (the old files are deleted after
//!   the commit; a query that had not opened them yet starts again on the new manifest).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kaq_input::{Counts, Reject, Source};

use crate::{Error, IngestOptions, IngestReport, Pending, Store, inputs};

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
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            ingest: IngestOptions::default(),
            poll: Duration::from_secs(1),
            commit_every: Duration::from_secs(10),
            merge_after: 16,
            small_rows: 250_000,
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
    /// Files seen rotated (renamed away) or truncated since the last commit.
    pub rotated: Vec<String>,
}

/// One followed path.
struct Tail {
    /// As named (looked at anew each time: rotation puts another file there).
    path: PathBuf,
    /// Its absolute name, as records name it.
    name: String,
    /// The file being read: its handle and (device, inode).
    open: Option<(File, (u64, u64))>,
}

fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

impl Store {
    /// Ingests `inputs` (files, or directories of them) and then keeps reading what is appended
    /// to their plain files, until `stop` is set; commits what was read before returning. Gzip
    /// files are read once (a finished rotation does not grow). `on_chunk` sees every chunk read,
    /// `on_commit` every commit.
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
        // A path not there (yet, or between a rotation's rename and the new file) is waited for.
        let (present, missing): (Vec<PathBuf>, Vec<PathBuf>) = inputs.iter().cloned().partition(|p| p.exists());
        let mut tails = Vec::new();
        for p in missing {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let (Ok(dir), Some(file)) = (std::fs::canonicalize(parent), p.file_name()) else {
                let why = "neither it nor its directory exists".to_string();
                return Err(Error::Follow { path: p, why });
            };
            tails.push(Tail { name: dir.join(file).display().to_string(), path: p, open: None });
        }
        let expanded = kaq_input::expand(&present)?;
        for s in &expanded.sources {
            match s {
                Source::File(p) if !kaq_input::is_gzip(p) && !kaq_columnar::read::is_parquet(p) => {
                    let name = inputs::identify(p, None)?.path;
                    tails.push(Tail { path: p.clone(), name, open: None });
                }
                _ => {} // gzip and Parquet: read once by the catch-up
            }
        }
        // Catch up: first what was rotated away from each followed path since the last run, then
        // everything named.
        let mut first: Vec<PathBuf> = Vec::new();
        for t in &tails {
            if let Some(p) = self.rotated_while_stopped(t)? {
                first.push(p);
            }
        }
        first.extend(present);
        let mut report = self.ingest_with(&first, &opts.ingest, on_chunk)?;
        on_commit(&FollowCommit {
            events: report.counts.events,
            total_events: report.counts.events,
            ..FollowCommit::default()
        });

        let mut open = Pending::default();
        let mut last_commit = Instant::now();
        let mut rotated = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            for t in &mut tails {
                let now_there = std::fs::metadata(&t.path).ok().map(|m| (m.dev(), m.ino()));
                if let Some((f, ino)) = &t.open
                    && now_there != Some(*ino)
                {
                    // Renamed away (or removed): finish it through the handle kept on it.
                    let fd = fd_path(f);
                    let name = std::fs::read_link(&fd)
                        .ok()
                        .map(|p| p.display().to_string())
                        .filter(|p| !p.ends_with(" (deleted)"))
                        .unwrap_or_else(|| format!("{} (rotated)", t.name));
                    if let Some(r) = self.what_to_read(&fd, Some(&name), &open.updates, true)? {
                        self.read_into(&mut open, r, &opts.ingest, on_chunk, &mut report)?;
                    }
                    rotated.push(name);
                    t.open = None;
                }
                if t.open.is_none()
                    && now_there.is_some()
                    && let Ok(f) = File::open(&t.path)
                    && let Ok(m) = f.metadata()
                {
                    // The inode of what was opened: if a rotation came between the look and the
                    // open, this is the new file, as the path says.
                    t.open = Some((f, (m.dev(), m.ino())));
                }
                if let Some((f, _)) = &t.open {
                    let fd = fd_path(f);
                    let to_read = self.what_to_read(&fd, Some(&t.name), &open.updates, false)?;
                    if let Some(r) = to_read {
                        self.read_into(&mut open, r, &opts.ingest, on_chunk, &mut report)?;
                    }
                }
            }
            let due = last_commit.elapsed() >= opts.commit_every || open.rows() >= opts.ingest.segment_events.max(1);
            if due || stopping {
                let events = open.rows();
                let committed = self.commit_pending(&mut open)?;
                report.segments += usize::from(committed);
                let merged = if committed { self.merge_small_tail(opts)? } else { 0 };
                if events > 0 || merged > 0 || !rotated.is_empty() {
                    on_commit(&FollowCommit {
                        events,
                        total_events: report.counts.events,
                        merged,
                        rotated: std::mem::take(&mut rotated),
                    });
                }
                last_commit = Instant::now();
            }
            if stopping {
                break;
            }
            let until = Instant::now() + opts.poll;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(opts.poll.min(Duration::from_millis(50)));
            }
        }
        Ok(report)
    }

    /// The file a followed path was rotated to while kaq was stopped: the path's last record
    /// names other bytes than the path holds now, and a file beside it begins with them.
    fn rotated_while_stopped(&self, t: &Tail) -> Result<Option<PathBuf>, Error> {
        let Some(last) = self.manifest.sources.iter().rev().find(|r| r.path == t.name && !r.sealed && r.size > 0)
        else {
            return Ok(None);
        };
        let n = last.size.min(crate::HEAD_BYTES);
        if t.path.exists() && inputs::content_head(&t.path, n, false)?.as_deref() == Some(last.head.as_str()) {
            return Ok(None); // still there
        }
        // Beside the file itself (the path may be a link to it).
        let real = Path::new(&t.name);
        let Some(dir) = real.parent() else { return Ok(None) };
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(None) };
        let mut siblings: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && kaq_input::looks_like_log(p) && p.file_name() != real.file_name())
            .collect();
        siblings.sort();
        for p in siblings {
            if inputs::content_head(&p, n, kaq_input::is_gzip(&p)).ok().flatten().as_deref() == Some(last.head.as_str())
            {
                return Ok(Some(p));
            }
        }
        Ok(None)
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
