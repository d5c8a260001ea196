//! The write-ahead log: what the webhook acknowledges is here first, synced to disk.
//!
//! A directory (0700) holding `audit.log`, one accepted batch a line (the `EventList` as it came,
//! its line breaks made spaces: JSON allows them only as whitespace), and, for a moment after a
//! rotation, `audit-<time>.log`. One thread writes: it takes every batch waiting, appends them,
//! syncs once (group commit) and only then answers each sender, so a 200 means the batch is on
//! disk. The store follows this file as `kaq ingest --follow` follows a log (rotation by rename
//! included) and recognises what it already read by content, so after a crash it reads on from
//! its last commit; a batch resent because its 200 was lost is held once (the store keeps each
//! record once).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;

/// The live log's name (what the store follows).
pub const LIVE: &str = "audit.log";

/// A batch for the writer, and where to say it is durable.
struct Job {
    line: Vec<u8>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Why a batch was not appended.
pub enum Refused {
    /// The writer's queue is full: try again shortly.
    Busy,
    /// Writing or syncing failed (the message says what).
    Failed(String),
}

#[derive(Clone)]
pub struct Wal {
    tx: SyncSender<Job>,
}

/// What the log directory held at start.
pub struct Opened {
    pub wal: Wal,
    /// The file the store follows.
    pub live: PathBuf,
    /// Rotated files left by an earlier run (read by the store's catch-up, then deleted).
    pub leftover: Vec<PathBuf>,
    pub dir: PathBuf,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, repairs a last line cut by a crash, and starts the
    /// writer thread. `rotate_bytes`: the live file is renamed away past this size once the
    /// previous rotated file is in the store.
    pub fn open(dir: &Path, queue: usize, rotate_bytes: u64, metrics: Arc<Metrics>) -> Result<Opened, String> {
        let err = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| err("creating", dir, e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| err("resolving", dir, e))?;
        let live = dir.join(LIVE);
        let mut file = open_live(&live)?;
        repair_tail(&mut file).map_err(|e| err("repairing the end of", &live, e))?;
        let leftover = rotated_files(&dir);
        let (tx, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        let pending = Arc::new(Mutex::new(leftover.clone()));
        let writer = Writer { dir: dir.clone(), live: live.clone(), file, rotate_bytes, rotated: pending, metrics };
        std::thread::Builder::new()
            .name("kaq-serve-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("starting the log writer: {e}"))?;
        Ok(Opened { wal: Wal { tx }, live, leftover, dir })
    }

    /// Queues one batch (a JSON text without line breaks); the receiver answers once it is synced.
    pub fn append(&self, line: Vec<u8>) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, Refused> {
        let (done, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job { line, done }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Refused::Busy),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Failed("the log writer stopped".into())),
        }
    }
}

/// Rotated log files in `dir` (`audit-….log`), oldest first.
pub fn rotated_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_rotated_name))
        .collect();
    v.sort();
    v
}

fn is_rotated_name(n: &str) -> bool {
    n.starts_with("audit-") && n.ends_with(".log")
}

/// Deletes rotated log files the store has read to their end (`names` as the store reports
/// them: paths). Only files of this log directory are touched.
pub fn delete_rotated(dir: &Path, names: &[String]) {
    for n in names {
        let p = Path::new(n);
        if p.parent() == Some(dir) && p.file_name().and_then(|f| f.to_str()).is_some_and(is_rotated_name) {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn open_live(live: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(live)
        .map_err(|e| format!("opening {}: {e}", live.display()))
}

/// A crash can leave the log's last line without its newline. Unacknowledged, so: when it is not
/// whole JSON it is cut off (the store, which reads only complete lines or a whole JSON last
/// line, has not read it); when it is whole JSON it may have been read, and gets its newline.
fn repair_tail(f: &mut File) -> std::io::Result<()> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    // Find the last newline, reading backwards in blocks.
    let mut end = len;
    let mut last_nl = None;
    let mut buf = vec![0u8; 1 << 16];
    while end > 0 && last_nl.is_none() {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        last_nl = buf[..n].iter().rposition(|b| *b == b'\n').map(|i| start + i as u64);
        end = start;
    }
    let tail_start = last_nl.map_or(0, |i| i + 1);
    if tail_start == len {
        return Ok(());
    }
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(tail_start))?;
    f.read_to_end(&mut tail)?;
    if serde_json::from_slice::<serde::de::IgnoredAny>(&tail).is_ok() {
        f.write_all(b"\n")?;
    } else {
        f.set_len(tail_start)?;
    }
    f.sync_all()
}

struct Writer {
    dir: PathBuf,
    live: PathBuf,
    file: File,
    rotate_bytes: u64,
    /// Rotated files not yet deleted (the store has not reported them read).
    rotated: Arc<Mutex<Vec<PathBuf>>>,
    metrics: Arc<Metrics>,
}

/// Most bytes written before one sync.
const GROUP_BYTES: usize = 64 << 20;

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            let mut bytes = jobs[0].line.len();
            while bytes < GROUP_BYTES {
                match rx.try_recv() {
                    Ok(j) => {
                        bytes += j.line.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            let r = self.write(&jobs).map_err(|e| format!("writing {}: {e}", self.live.display()));
            if let Err(e) = &r {
                eprintln!("kaq serve: error: {e}");
            } else {
                self.metrics.wal_bytes_written.fetch_add(bytes as u64 + jobs.len() as u64, Ordering::Relaxed);
            }
            for j in jobs {
                let _ = j.done.send(r.clone());
            }
            if r.is_ok()
                && let Err(e) = self.maybe_rotate()
            {
                eprintln!("kaq serve: error: rotating {}: {e}", self.live.display());
            }
        }
    }

    fn write(&mut self, jobs: &[Job]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(jobs.iter().map(|j| j.line.len() + 1).sum());
        for j in jobs {
            buf.extend_from_slice(&j.line);
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }

    /// Renames the live file away past `rotate_bytes` (once the previous rotated file was read
    /// into the store and deleted, so that at most one waits), and starts a new one.
    fn maybe_rotate(&mut self) -> std::io::Result<()> {
        if self.file.metadata()?.len() < self.rotate_bytes {
            return Ok(());
        }
        let mut rotated = self.rotated.lock().expect("unpoisoned");
        rotated.retain(|p| p.exists());
        if !rotated.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let to = self.dir.join(format!("audit-{:020}.log", now.as_nanos()));
        std::fs::rename(&self.live, &to)?;
        self.file = open_live(&self.live).map_err(std::io::Error::other)?;
        File::open(&self.dir)?.sync_all()?;
        rotated.push(to);
        Ok(())
    }
}
