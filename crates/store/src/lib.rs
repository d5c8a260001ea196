//! kaq's store: a directory of immutable, time-sorted Parquet segments and a manifest naming the
//! live ones (PRODUCT.md §7).
//!
//! ```text
//! kaq-store/                 0700
//!   MANIFEST.json            0600  the live segments and the ingested sources; replaced by rename
//!   LOCK                     0600  held (flock) by the one writer
//!   segments/seg-000001.parquet    immutable once named in the manifest (bloom filters on `id`)
//!   segments/seg-000001.index/     its tantivy index, built as the file is written (`index`)
//! ```
//!
//! Guarantees:
//! - **Atomic commits.** A segment is written under a temporary name, renamed into place and
//!   synced, and only then named in a new manifest, itself written to a temporary file, synced and
//!   renamed over the old one. Killed at any moment, the store opens with the last manifest: every
//!   committed event exactly once, and no partial segment (files no manifest names are removed by
//!   the next writer).
//! - **Resumable ingest.** What was read of each file (bytes, lines, a hash of its first 64 KiB)
//!   is recorded in the same commit as its events; files are recognised by content, so ingesting
//!   one again adds nothing, and a file that grew or was rotated (renamed, compressed) adds only
//!   what follows (`inputs`). [`Store::follow`] keeps reading files as they grow (`follow`).
//! - **Damage found, not answered.** Every segment file's size and CRC-32, and a checksum of the
//!   manifest itself, are recorded at commit and checked where it is cheap ([`verify`]);
//!   [`Store::verify`] checks everything.
//! - **One writer** (an exclusive lock on `LOCK`, with a clear error for the second), any number of
//!   readers, also during a commit: readers take the manifest as it was when they opened, and
//!   segments are never changed in place.
//! - **Retention means deletion.** A compaction or prune deletes the files of the segments it
//!   replaced right after its commit, and reports what it freed ([`Rewrite`]); a reader that finds
//!   a file of its manifest gone starts again on the new one ([`Store::run`]).
//!
//! ```no_run
//! let mut store = kaq_store::Store::create("kaq-store")?;
//! let report = store.ingest_paths(&["audit.log".into()], &Default::default())?;
//! println!("{} events in {} new segment(s)", report.counts.events, report.segments);
//! let scanned = store.query("verb:delete ns:prod* | table time, user, name")?;
//! # Ok::<(), kaq_store::Error>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use arrow_array::{Array, TimestampMicrosecondArray};
use kaq_columnar::{SortedParquetWriter, ToBatch, WriteOptions};
use kaq_input::{Counts, ReadOptions, Reject, Source};
use serde::{Deserialize, Serialize};

/// The manifest's format name and version. Version 1: Parquet segments only.
pub const FORMAT: &str = "kaq-store";
pub const VERSION: u32 = 1;
const MANIFEST: &str = "MANIFEST.json";
const LOCK: &str = "LOCK";
const SEGMENTS: &str = "segments";
/// By default a segment is closed (and committed) after the input that takes it past this many
/// events ([`IngestOptions::segment_events`]).
pub const SEGMENT_EVENTS: u64 = 4_000_000;
/// Bytes of a file hashed to recognise it again.
const HEAD_BYTES: u64 = 64 << 10;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}: not a kaq store (no MANIFEST.json); create one with `kaq ingest`")]
    NotAStore(PathBuf),
    #[error("{0}: already a kaq store")]
    AlreadyAStore(PathBuf),
    #[error("{path}: unreadable manifest: {why}")]
    BadManifest { path: PathBuf, why: String },
    #[error("{path}: store format {found} is newer than this kaq reads ({VERSION}); upgrade kaq")]
    TooNew { path: PathBuf, found: u32 },
    #[error("{path}: another kaq is writing to this store{holder}; try again when it is done")]
    Locked { path: PathBuf, holder: String },
    #[error("{path}: index: {why}")]
    Index { path: PathBuf, why: String },
    /// A store file is not as committed (its size or CRC-32 differs from the manifest's record).
    #[error("{path}: damaged: {why}; `kaq verify` checks the whole store")]
    Damaged { path: PathBuf, why: String },
    #[error(
        "{path} was ingested before ({was} bytes) and has changed since ({now} bytes); a JSON document or Parquet file cannot be resumed: ingest it into another store"
    )]
    Changed { path: PathBuf, was: u64, now: u64 },
    #[error("{path}: cannot follow: {why}")]
    Follow { path: PathBuf, why: String },
    #[error(transparent)]
    Input(#[from] kaq_input::InputError),
    #[error(transparent)]
    Columnar(#[from] kaq_columnar::Error),
    #[error(transparent)]
    Scan(#[from] kaq_query::scan::ScanError),
    /// The query does not compile; render the diagnostics against its text.
    #[error("{}", .0.first().map(|d| d.message.clone()).unwrap_or_default())]
    Query(Vec<kaq_syntax::Diagnostic>),
}

mod dedup;
mod follow;
mod ids;
pub mod index;
mod inputs;
mod terms;
mod verify;
pub use follow::{FollowCommit, FollowOptions};
pub use terms::{StoreValues, Terms};
pub use verify::{Checked, FileSum, Found, Verified, digest_file};

use kaq_query::plan::Options;

trait At<T> {
    fn at(self, p: &Path) -> Result<T, Error>;
}

impl<T> At<T> for std::io::Result<T> {
    fn at(self, p: &Path) -> Result<T, Error> {
        self.map_err(|error| Error::Io { path: p.to_path_buf(), error })
    }
}

/// One live segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    pub id: u64,
    /// File name under `segments/`.
    pub file: String,
    pub rows: u64,
    /// Rows that have a `time` (absent in stores written before this field: then unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_rows: Option<u64>,
    /// Directory of its tantivy index under `segments/` (absent in stores written before indexes:
    /// those segments are scanned whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// What the index holds ([`index::VERSION`]; absent: version 1). An index this kaq cannot use
    /// ([`index::usable`]) is not: its segment is scanned until `kaq compact` rebuilds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_version: Option<u32>,
    /// No auditID is on two of its rows (known from the index build; false when unknown).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ids_unique: bool,
    /// Earliest and latest `time` (µs since the epoch), when any row has one.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub bytes: u64,
    /// Every file of the segment (the Parquet file, then its index's) with its size and CRC-32,
    /// recorded at commit ([`verify`]; absent in stores written before: "no digest recorded").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSum>,
}

impl Segment {
    /// The segment's index directory name, when it has an index this kaq can use.
    pub fn usable_index(&self) -> Option<&str> {
        self.index.as_deref().filter(|_| index::usable(self.index_version.unwrap_or(1)))
    }

    /// Rows with a `time`; when unknown, assume some have none (so prune keeps the segment whole).
    pub fn rows_with_time(&self) -> u64 {
        self.timed_rows.unwrap_or(0)
    }
}

/// What `compact` or `prune` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub segments_before: usize,
    pub segments_after: usize,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Segments replaced or dropped whose files were deleted after the commit.
    pub segments_deleted: usize,
    /// Bytes on disk those files (and their indexes) held.
    pub bytes_freed: u64,
    /// Bytes of the segment written in their place (with its index; 0 when none was).
    pub bytes_written: u64,
}

impl Rewrite {
    fn same(m: &Manifest) -> Rewrite {
        Rewrite {
            segments_before: m.segments.len(),
            segments_after: m.segments.len(),
            rows_before: m.rows(),
            rows_after: m.rows(),
            segments_deleted: 0,
            bytes_freed: 0,
            bytes_written: 0,
        }
    }
}

/// One ingested input file (see [`inputs`](crate::inputs) for how files are recognised).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ingested {
    /// The path as given, made absolute (when it was last read).
    pub path: String,
    /// Bytes of its content read (decompressed, for gzip): of a log still being written, up to its
    /// last complete line.
    pub size: u64,
    /// SHA-256 of its first `min(64 KiB, size)` bytes, hex.
    pub head: String,
    pub events: u64,
    pub rejected: u64,
    /// The segment holding its (latest) events (none when it had none).
    pub segment: Option<u64>,
    /// Lines read (numbering the lines of what follows, when it grows).
    #[serde(default)]
    pub lines: u64,
    /// A JSON document or a Parquet file: remembered by its own bytes, it cannot grow (a changed
    /// one is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
    /// A gzip file's own size and head hash (`size` and `head` are of its decompressed content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_head: Option<String>,
}

/// The manifest: what the store holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// Incremented by every commit.
    pub generation: u64,
    pub next_segment: u64,
    pub segments: Vec<Segment>,
    pub sources: Vec<Ingested>,
    /// The paths `follow` reads (absolute, as records name them), each with when it last looked
    /// at it before this commit (µs since the epoch): a restart takes the files beside a path
    /// written since for rotations it may not have read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub followed: std::collections::BTreeMap<String, i64>,
    /// CRC-32 of the manifest's text without this value ([`verify`]; absent in older stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    fn empty() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            generation: 0,
            next_segment: 1,
            segments: Vec::new(),
            sources: Vec::new(),
            followed: Default::default(),
            checksum: None,
        }
    }

    /// Events in the store (rows of all live segments).
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    pub fn time_range(&self) -> (Option<i64>, Option<i64>) {
        (self.segments.iter().filter_map(|s| s.min_time).min(), self.segments.iter().filter_map(|s| s.max_time).max())
    }
}

/// An open store: its directory and the manifest as it was when opened. Cheap; open one per query
/// to see later commits.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
    /// Held while this handle may write.
    lock: Option<std::sync::Arc<File>>,
    /// The records held, as far as a writer has needed to know ([`dedup`]).
    dedup: std::sync::Arc<std::sync::Mutex<dedup::Dedup>>,
    /// The mode the directory had when [`Store::create`] found it and made it private.
    made_private: Option<u32>,
}

/// What an ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Totals over the inputs read now (skipped ones excluded).
    pub counts: Counts,
    /// Inputs read now.
    pub read: Vec<String>,
    /// Inputs skipped because they were ingested before.
    pub already: Vec<String>,
    /// Segments committed.
    pub segments: usize,
    /// Inputs in directories skipped because their names do not look like logs.
    pub skipped: Vec<PathBuf>,
    /// Read errors (inputs that broke off or could not be opened, directory entries that could
    /// not be read), as messages.
    pub read_errors: Vec<String>,
    /// Files whose last line was incomplete (being written), and its bytes: left for the next
    /// ingest.
    pub unread: Vec<(String, u64)>,
    /// Records read that the store already held (equal in every field), not added again.
    pub duplicates: u64,
}

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub read: ReadOptions,
    /// A segment is closed and committed after the input that takes it to this many events.
    pub segment_events: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { read: ReadOptions::default(), segment_events: SEGMENT_EVENTS }
    }
}

/// Makes `p` (if missing) and sets it to 0700; returns the mode it had when it existed with
/// another one.
fn private_dir(p: &Path) -> Result<Option<u32>, Error> {
    let was = fs::metadata(p).ok().filter(|m| m.is_dir()).map(|m| m.permissions().mode() & 0o7777);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p).at(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).at(p)?;
    Ok(was.filter(|&m| m != 0o700))
}

/// Makes a directory and its files private (0700/0600), and syncs the files.
fn set_private(dir: &Path) -> Result<(), Error> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).at(dir)?;
    for e in fs::read_dir(dir).at(dir)?.flatten() {
        let p = e.path();
        if p.is_file() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).at(&p)?;
            File::open(&p).and_then(|f| f.sync_all()).at(&p)?;
        }
    }
    Ok(())
}

/// Removes a file or a directory (a segment's index), if it can: what is left is removed by the
/// next writer (`remove_orphans`). Returns the bytes freed, when it was removed.
fn remove_path(p: &Path) -> Option<u64> {
    let bytes = disk_bytes(p);
    if !p.is_dir() {
        return fs::remove_file(p).ok().map(|()| bytes);
    }
    // An index is renamed away first: a reader opening it takes a lock file in it, which would
    // make the removal fail (directory not empty) if it came between the listing and the rmdir.
    let name = p.file_name()?.to_string_lossy();
    let gone = p.with_file_name(format!(".{name}.deleted"));
    fs::rename(p, &gone).ok()?;
    (0..3).any(|_| fs::remove_dir_all(&gone).is_ok()).then_some(bytes)
}

/// Bytes of a file, or of the files under a directory.
fn disk_bytes(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p).map_or(0, |d| d.flatten().map(|e| disk_bytes(&e.path())).sum()),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn sync_dir(p: &Path) -> Result<(), Error> {
    File::open(p).and_then(|d| d.sync_all()).at(p)
}

impl Store {
    /// Creates a store in `dir` (made if missing; it must not hold a store already) and opens it
    /// for writing.
    pub fn create(dir: impl AsRef<Path>) -> Result<Store, Error> {
        let dir = dir.as_ref().to_path_buf();
        if dir.join(MANIFEST).exists() {
            return Err(Error::AlreadyAStore(dir));
        }
        let made_private = private_dir(&dir)?;
        private_dir(&dir.join(SEGMENTS))?;
        let lock = lock(&dir)?;
        if dir.join(MANIFEST).exists() {
            return Err(Error::AlreadyAStore(dir)); // another writer created it meanwhile
        }
        let mut store =
            Store { dir, manifest: Manifest::empty(), lock: Some(lock), dedup: Default::default(), made_private };
        store.commit(Manifest::empty())?;
        Ok(store)
    }

    /// Opens an existing store for reading.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, Error> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = read_manifest(&dir)?;
        Ok(Store { dir, manifest, lock: None, dedup: Default::default(), made_private: None })
    }

    /// Opens a store for writing (creating it when missing): takes the lock, rereads the manifest,
    /// and removes what an interrupted writer left (files no manifest names).
    pub fn open_writer(dir: impl AsRef<Path>) -> Result<Store, Error> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.join(MANIFEST).exists() {
            return Store::create(dir);
        }
        let lock = lock(&dir)?;
        let manifest = read_manifest(&dir)?;
        let store = Store { dir, manifest, lock: Some(lock), dedup: Default::default(), made_private: None };
        store.remove_orphans()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// When this handle created the store in a directory that existed with another mode than
    /// 0700: that mode (the directory is 0700 now, since it holds audit events). The CLI says so.
    pub fn made_private(&self) -> Option<u32> {
        self.made_private
    }

    /// The live segments' files, in manifest order.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.manifest.segments.iter().map(|s| self.dir.join(SEGMENTS).join(&s.file)).collect()
    }

    fn remove_orphans(&self) -> Result<(), Error> {
        let seg_dir = self.dir.join(SEGMENTS);
        let live: std::collections::HashSet<&str> = self
            .manifest
            .segments
            .iter()
            .flat_map(|s| std::iter::once(s.file.as_str()).chain(s.index.as_deref()))
            .collect();
        for e in fs::read_dir(&seg_dir).at(&seg_dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !live.contains(name.as_str()) {
                let _ = remove_path(&e.path());
            }
        }
        for e in fs::read_dir(&self.dir).at(&self.dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(".MANIFEST") {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// Writes `m` as the new manifest, atomically.
    fn commit(&mut self, mut m: Manifest) -> Result<(), Error> {
        assert!(self.lock.is_some(), "commit without the writer lock");
        m.generation = self.manifest.generation + 1;
        let tmp = self.dir.join(format!(".MANIFEST.{}.tmp", m.generation));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).at(&tmp)?;
        let text = verify::seal_manifest(&mut m);
        f.write_all(&text).and_then(|()| f.sync_all()).at(&tmp)?;
        drop(f);
        let path = self.dir.join(MANIFEST);
        fs::rename(&tmp, &path).at(&path)?;
        sync_dir(&self.dir)?;
        self.manifest = m;
        Ok(())
    }

    /// Ingests files, directories or `-`: every input not ingested before becomes events in new
    /// segments, committed source by source (a segment closes after the source that takes it past
    /// 4M events, and at the end). Rejects go to `on_reject`.
    pub fn ingest_paths(&mut self, inputs: &[PathBuf], opts: &IngestOptions) -> Result<IngestReport, Error> {
        self.ingest_with(inputs, opts, &mut |_, _| {})
    }

    /// Ingests one file or directory (see [`ingest_paths`](Self::ingest_paths)).
    pub fn ingest_path(&mut self, path: impl AsRef<Path>) -> Result<IngestReport, Error> {
        self.ingest_paths(&[path.as_ref().to_path_buf()], &IngestOptions::default())
    }

    /// Ingests audit JSON lines (native events, EventLists or cloud exports, one JSON value a line)
    /// from any reader — a socket, a buffer — as one input named `name`, committed as one segment.
    /// Not remembered for re-ingest skipping (a stream has no identity).
    pub fn ingest_reader(
        &mut self,
        name: &str,
        reader: impl Read,
        opts: &IngestOptions,
    ) -> Result<IngestReport, Error> {
        if self.lock.is_none() {
            *self = Store::open_writer(&self.dir)?;
        }
        let mut report = IngestReport::default();
        let mut seg = self.start_segment()?;
        let mut builder = kaq_columnar::EventBatchBuilder::with_capacity(8192);
        let mut reader = std::io::BufReader::new(reader);
        let mut line = String::new();
        let c = &mut report.counts;
        loop {
            line.clear();
            let n = std::io::BufRead::read_line(&mut reader, &mut line).at(Path::new(name))?;
            if n == 0 {
                break;
            }
            c.lines += 1;
            c.bytes += n as u64;
            if line.trim().is_empty() {
                c.blank += 1;
                continue;
            }
            let records =
                kaq_input::decode_input(line.trim_end(), &opts.read.decode, opts.read.input_format, &mut |r| match r {
                    Ok((ev, _)) => {
                        c.events += 1;
                        builder.append(&ev);
                    }
                    Err(_) => c.rejected += 1,
                });
            if records == 0 {
                c.blank += 1;
            }
            if builder.len() >= 8192 {
                seg.add(builder.finish())?;
                builder = kaq_columnar::EventBatchBuilder::with_capacity(8192);
            }
        }
        if !builder.is_empty() {
            seg.add(builder.finish())?;
        }
        report.duplicates = seg.duplicates;
        let events = report.counts.events;
        let src = Ingested {
            path: name.to_string(),
            size: report.counts.bytes,
            head: String::new(),
            events,
            rejected: report.counts.rejected,
            segment: (seg.rows > 0).then_some(seg.id),
            lines: report.counts.lines,
            sealed: false,
            raw_size: None,
            raw_head: None,
        };
        report.read.push(name.to_string());
        report.segments = usize::from(events > 0);
        let mut open = Pending { segment: Some(seg), updates: vec![Update { replaces: None, rec: src }] };
        self.commit_pending(&mut open)?;
        Ok(report)
    }

    /// [`ingest_paths`](Self::ingest_paths), calling `on_chunk` with each chunk's counts and
    /// rejects as it is read (for progress and reject reports).
    pub fn ingest_with(
        &mut self,
        inputs: &[PathBuf],
        opts: &IngestOptions,
        on_chunk: &mut dyn FnMut(&Counts, &[Reject]),
    ) -> Result<IngestReport, Error> {
        if self.lock.is_none() {
            *self = Store::open_writer(&self.dir)?;
        }
        let mut expanded = kaq_input::expand(inputs)?;
        expanded.check(opts.read.strict)?;
        // The store's own files, when a directory holding it is ingested, are not input.
        let own = fs::canonicalize(&self.dir).at(&self.dir)?;
        let inside = |p: &Path| fs::canonicalize(p).is_ok_and(|c| c.starts_with(&own));
        expanded.sources.retain(|s| !matches!(s, Source::File(p) if inside(p)));
        expanded.skipped.retain(|p| !inside(p));
        let mut report = IngestReport {
            skipped: expanded.skipped.clone(),
            read_errors: expanded.messages(),
            ..IngestReport::default()
        };
        let mut open = Pending::default();
        for source in expanded.sources {
            // A file that cannot be opened is reported and passed over, like a directory entry
            // that cannot be read: the other inputs are ingested.
            if let Source::File(p) = &source
                && let Err(e) = fs::File::open(p)
            {
                let msg = format!("{}: cannot be opened ({e})", p.display());
                if opts.read.strict {
                    return Err(kaq_input::InputError::Strict(msg).into());
                }
                report.read_errors.push(format!("{msg}; skipped"));
                continue;
            }
            let mut to_read = match &source {
                Source::File(p) => match self.what_to_read(p, None, &open.updates, false)? {
                    Some(r) => r,
                    None => {
                        report.already.push(p.display().to_string());
                        continue;
                    }
                },
                _ => ToRead::stream(source),
            };
            if let Some(pending) = to_read.unread.take() {
                report.unread.push(pending);
            }
            if to_read.source.is_none() {
                continue;
            }
            self.read_into(&mut open, to_read, opts, on_chunk, &mut report)?;
            if open.rows() >= opts.segment_events.max(1) {
                report.segments += usize::from(self.commit_pending(&mut open)?);
            }
        }
        report.segments += usize::from(self.commit_pending(&mut open)?);
        Ok(report)
    }

    /// What is new in the file `p`, given what the store and `pending` hold: `None` when nothing
    /// is. It is named `name` in messages and records when given (a file read through
    /// `/proc/self/fd`), else by its absolute path. With `whole`, a half last line is read too (a
    /// rotated file: it will not be finished).
    fn what_to_read(
        &self,
        p: &Path,
        name: Option<&str>,
        pending: &[Update],
        whole: bool,
    ) -> Result<Option<ToRead>, Error> {
        self.what_to_read_of(inputs::identify(p, name)?, name.is_some(), pending, whole)
    }

    /// [`what_to_read`](Self::what_to_read) of a file already identified (`named`: by a name of
    /// its own, as a file read through `/proc/self/fd`).
    fn what_to_read_of(
        &self,
        id: inputs::Identity,
        named: bool,
        pending: &[Update],
        whole: bool,
    ) -> Result<Option<ToRead>, Error> {
        let file = id.file.clone();
        let p = file.as_path();
        let known = self.manifest.sources.iter().chain(pending.iter().map(|u| &u.rec));
        let (start, lines_before, continues) = match inputs::standing(&id, known.clone())? {
            inputs::Standing::Already => return Ok(None),
            inputs::Standing::Grown { rec, from, lines } => {
                let same_path = known.clone().nth(rec).is_some_and(|r| r.path == id.path);
                (from, lines, same_path.then_some(rec))
            }
            inputs::Standing::New => (0, 0, None),
        };
        let mut rec = Ingested {
            path: id.path.clone(),
            size: id.size,
            head: id.head.clone(),
            events: 0,
            rejected: 0,
            segment: None,
            lines: 0,
            sealed: id.parquet,
            raw_size: None,
            raw_head: None,
        };
        let mut unread = None;
        let end = if id.parquet {
            None // read whole: remembered by its bytes
        } else if id.gzip {
            // Read to its end; remembered by its content (how much, once read) and its own bytes.
            rec.raw_size = Some(id.size);
            rec.raw_head = Some(id.head.clone());
            None
        } else {
            let (end, document) = inputs::readable_end(p, start, id.size, whole)?;
            rec.sealed = document;
            if end < id.size {
                unread = Some((id.path.clone(), id.size - end));
            }
            rec.size = end;
            rec.head = id.head_of(end);
            if end == start {
                // Only a half line: nothing to read, but the report says it waits.
                let r = ToRead { source: None, continues, rec, unread, start, end: Some(end), id: None };
                return Ok(r.unread.is_some().then_some(r));
            }
            Some(end)
        };
        let source = if start == 0 && end.is_none() && !named {
            Source::File(p.to_path_buf())
        } else {
            Source::Part(kaq_input::FilePart {
                path: p.to_path_buf(),
                start,
                end,
                lines_before,
                name: named.then(|| id.path.clone()),
            })
        };
        Ok(Some(ToRead { source: Some(source), continues, rec, unread, start, end, id: Some(id) }))
    }

    /// Reads `r` into the open segment of `open` (started when needed) and notes its record.
    fn read_into(
        &mut self,
        open: &mut Pending,
        r: ToRead,
        opts: &IngestOptions,
        on_chunk: &mut dyn FnMut(&Counts, &[Reject]),
        report: &mut IngestReport,
    ) -> Result<(), Error> {
        let Some(source) = r.source else { return Ok(()) };
        let seg = match &mut open.segment {
            Some(s) => s,
            None => open.segment.insert(self.start_segment()?),
        };
        let name = source.display_name();
        let (duplicates_before, rows_before) = (seg.duplicates, seg.rows);
        let parquet = r.id.as_ref().is_some_and(|id| id.parquet);
        let read = match &source {
            Source::File(p) | Source::Part(kaq_input::FilePart { path: p, .. }) if parquet => {
                read_parquet(p, seg, &opts.read.decode, on_chunk)?
            }
            _ => kaq_input::read(std::slice::from_ref(&source), &opts.read, &ToBatch::default(), |chunk| {
                on_chunk(&chunk.counts, &chunk.rejects);
                if let Some(batch) = chunk.output {
                    seg.add(batch)?;
                }
                Ok::<(), Error>(())
            })?,
        };
        read.check(opts.read.strict)?;
        report.duplicates += seg.duplicates - duplicates_before;
        report.counts.add(&read.counts);
        report.read_errors.extend(read.read_errors);
        report.read.push(name.clone());
        // What was read whole: the half line an input broke off in (a truncated gzip) is not, so
        // that reading it again, complete, starts where that line does.
        let mut whole = read.counts;
        whole.bytes -= read.incomplete.bytes;
        whole.lines -= read.incomplete.lines;
        whole.rejected -= read.incomplete.rejected;
        let c = &whole;
        let mut rec = r.rec;
        if matches!(source, Source::Stdin) {
            rec.size = c.bytes;
        }
        if let Some(id) = r.id.as_ref().filter(|id| !id.parquet) {
            // What was read of the content (a byte-order mark is not counted as read).
            let bom = usize::from(r.start == 0 && id.head_bytes.starts_with(b"\xEF\xBB\xBF")) as u64 * 3;
            let read_to = r.start + c.bytes + bom;
            if id.gzip {
                rec.size = read_to;
                let n = read_to.min(HEAD_BYTES);
                rec.head = inputs::content_head(&id.file, n, true)?.unwrap_or_else(|| id.head.clone());
            } else if r.end.is_some_and(|end| read_to < end) {
                // Shorter than it was (truncated while read: copy-and-truncate rotation): only
                // what was read is recorded, so its copy gives the rest.
                rec.size = read_to;
                rec.head = id.head_of(read_to);
            }
        }
        // The segment holds records of this source (all could have been held already).
        let here = (seg.rows > rows_before).then_some(seg.id);
        let known = self.manifest.sources.len();
        match r.continues {
            Some(i) => {
                let (old, replaces) = match i.checked_sub(known) {
                    Some(j) => {
                        let u = open.updates.remove(j);
                        (u.rec, u.replaces)
                    }
                    None => (self.manifest.sources[i].clone(), Some(i)),
                };
                rec.events += old.events + c.events;
                rec.rejected += old.rejected + c.rejected;
                rec.lines += old.lines + c.lines;
                rec.segment = here.or(old.segment);
                open.updates.push(Update { replaces, rec });
            }
            None => {
                rec.events = c.events;
                rec.rejected = c.rejected;
                rec.lines = c.lines;
                rec.segment = here;
                open.updates.push(Update { replaces: None, rec });
            }
        }
        Ok(())
    }

    /// Commits what `open` holds (its segment, when it has rows, and its records); returns
    /// whether a segment was committed.
    fn commit_pending(&mut self, open: &mut Pending) -> Result<bool, Error> {
        let updates = std::mem::take(&mut open.updates);
        let segment = open.segment.take();
        if segment.is_none() && updates.is_empty() {
            return Ok(false);
        }
        let mut m = self.manifest.clone();
        apply(&mut m.sources, updates);
        match segment {
            Some(seg) => {
                let had_rows = seg.rows > 0;
                let at = m.segments.len();
                self.close_segment_at(seg, m, at)?;
                Ok(had_rows)
            }
            None => self.commit(m).map(|()| false),
        }
    }

    /// A segment for new records: those the store already holds are left out of it ([`dedup`]).
    fn start_segment(&mut self) -> Result<OpenSegment, Error> {
        let live = self
            .manifest
            .segments
            .iter()
            .map(|s| dedup::Held {
                id: s.id,
                path: self.dir.join(SEGMENTS).join(&s.file),
                min: s.min_time,
                max: s.max_time,
                untimed: s.timed_rows != Some(s.rows),
            })
            .collect();
        self.dedup.lock().expect("unpoisoned").set_live(live);
        let mut seg = self.start_plain_segment()?;
        seg.dedup = Some(self.dedup.clone());
        Ok(seg)
    }

    /// A segment that takes every row it is given (compaction and prune rewrite held records).
    fn start_plain_segment(&mut self) -> Result<OpenSegment, Error> {
        let id = self.manifest.next_segment;
        // Reserve the number in memory; it is committed with the segment.
        self.manifest.next_segment += 1;
        let file = format!("seg-{id:06}.parquet");
        let path = self.dir.join(SEGMENTS).join(&file);
        // The index is built beside the file, from the rows in the order they are written.
        let index_tmp = self.dir.join(SEGMENTS).join(format!(".seg-{id:06}.index.tmp"));
        let index = index::Builder::start(&index_tmp);
        let opts = WriteOptions { id_bloom_filter: true, ..WriteOptions::default() };
        let writer = SortedParquetWriter::create(&path, opts)?.with_sink(index.sink());
        Ok(OpenSegment {
            id,
            file,
            path,
            writer: Some(writer),
            index: Some(index),
            index_tmp,
            rows: 0,
            timed: 0,
            min: None,
            max: None,
            dedup: None,
            duplicates: 0,
        })
    }

    /// Finishes a segment and commits `m` with it inserted at `at` (nothing inserted when empty).
    fn close_segment_at(&mut self, mut seg: OpenSegment, mut m: Manifest, at: usize) -> Result<(), Error> {
        let writer = seg.writer.take().expect("open");
        if let Some(d) = seg.dedup.as_ref().filter(|_| seg.rows > 0) {
            d.lock().expect("unpoisoned").wrote(seg.id);
        }
        m.next_segment = m.next_segment.max(self.manifest.next_segment);
        if seg.rows > 0 {
            writer.finish()?;
            fs::set_permissions(&seg.path, fs::Permissions::from_mode(0o600)).at(&seg.path)?;
            File::open(&seg.path).and_then(|f| f.sync_all()).at(&seg.path)?;
            sync_dir(&self.dir.join(SEGMENTS))?;
            let bytes = fs::metadata(&seg.path).at(&seg.path)?.len();
            // The index over the same rows (row = Parquet row), built while the file was written.
            let tmp = seg.index_tmp.clone();
            let built =
                seg.index.take().expect("open").finish().map_err(|why| Error::Index { path: tmp.clone(), why })?;
            if built.rows != seg.rows {
                let why = format!("holds {} rows, the segment {}", built.rows, seg.rows);
                return Err(Error::Index { path: tmp, why });
            }
            let index_name = format!("seg-{:06}.index", seg.id);
            let seg_dir = self.dir.join(SEGMENTS);
            set_private(&tmp)?;
            fs::rename(&tmp, seg_dir.join(&index_name)).at(&tmp)?;
            sync_dir(&seg_dir)?;
            let files = verify::record(&seg_dir, &seg.file, Some(&index_name))?;
            m.segments.insert(
                at.min(m.segments.len()),
                Segment {
                    id: seg.id,
                    file: seg.file.clone(),
                    rows: seg.rows,
                    timed_rows: Some(seg.timed),
                    index: Some(index_name),
                    index_version: Some(index::VERSION),
                    ids_unique: built.ids_unique,
                    min_time: seg.min,
                    max_time: seg.max,
                    bytes,
                    files,
                },
            );
        } else {
            drop(writer); // removes its temporary file
            drop(seg.index.take());
            let _ = fs::remove_dir_all(&seg.index_tmp);
        }
        self.commit(m)
    }

    /// Merges every live segment into one (after `--follow` or many small ingests): fewer files to
    /// open per query. Committed like an ingest; the old files are deleted right after the commit
    /// (a query that read the old manifest starts again on the new one, [`Store::run`]).
    pub fn compact(&mut self) -> Result<Rewrite, Error> {
        let all: Vec<u64> = self.manifest.segments.iter().map(|s| s.id).collect();
        if all.len() < 2 {
            return Ok(Rewrite::same(&self.manifest));
        }
        self.rewrite(&all, &[], None)
    }

    /// Drops the events whose `time` is before `cutoff_us` (events without a time are kept):
    /// segments entirely older are dropped, segments that straddle the cutoff are rewritten.
    pub fn prune_before(&mut self, cutoff_us: i64) -> Result<Rewrite, Error> {
        let mut drop = Vec::new();
        let mut cut = Vec::new();
        for s in &self.manifest.segments {
            match (s.min_time, s.max_time) {
                (Some(_), Some(max)) if max < cutoff_us && s.rows == s.rows_with_time() => drop.push(s.id),
                (Some(min), Some(_)) if min < cutoff_us => cut.push(s.id),
                _ => {}
            }
        }
        if drop.is_empty() && cut.is_empty() {
            return Ok(Rewrite::same(&self.manifest));
        }
        self.rewrite(&cut, &drop, Some(cutoff_us))
    }

    /// Replaces the segments `rewrite` by one new segment holding their rows (those at or after
    /// `cutoff` when given) and removes the segments `drop`, in one commit.
    fn rewrite(&mut self, rewrite: &[u64], drop: &[u64], cutoff: Option<i64>) -> Result<Rewrite, Error> {
        if self.lock.is_none() {
            *self = Store::open_writer(&self.dir)?;
        }
        let before = Rewrite::same(&self.manifest);
        // Records may be dropped (prune): an ingest after it may add them again.
        self.dedup.lock().expect("unpoisoned").forget_added();
        let old: Vec<Segment> = self
            .manifest
            .segments
            .iter()
            .filter(|s| rewrite.contains(&s.id) || drop.contains(&s.id))
            .cloned()
            .collect();
        let mut seg = self.start_plain_segment()?;
        let time_col = kaq_columnar::column_index("time").expect("time column");
        for s in old.iter().filter(|s| rewrite.contains(&s.id)) {
            let path = self.dir.join(SEGMENTS).join(&s.file);
            // Damage is not copied into the new segment.
            self.check_whole(std::slice::from_ref(&path))?;
            let named = |e: kaq_columnar::Error| segment_error(&path, e);
            for batch in kaq_columnar::read::open(&path, 8192).map_err(named)? {
                let mut batch = batch.map_err(|e| named(e.into()))?;
                if let Some(cut) = cutoff {
                    let t = batch.column(time_col).as_any().downcast_ref::<TimestampMicrosecondArray>();
                    if let Some(t) = t {
                        let keep: arrow_array::BooleanArray =
                            (0..t.len()).map(|i| Some(t.is_null(i) || t.value(i) >= cut)).collect();
                        batch = arrow_select::filter::filter_record_batch(&batch, &keep)
                            .map_err(kaq_columnar::Error::from)?;
                    }
                }
                if batch.num_rows() > 0 {
                    seg.add(batch)?;
                }
            }
        }
        let new_id = (seg.rows > 0).then_some(seg.id);
        let mut m = self.manifest.clone();
        let at = m.segments.iter().position(|s| rewrite.contains(&s.id) || drop.contains(&s.id));
        m.segments.retain(|s| !rewrite.contains(&s.id) && !drop.contains(&s.id));
        for src in &mut m.sources {
            if src.segment.is_some_and(|id| rewrite.contains(&id) || drop.contains(&id)) {
                src.segment = if src.segment.is_some_and(|id| rewrite.contains(&id)) { new_id } else { None };
            }
        }
        // The new segment takes the place of the first one it replaces (order of reading).
        let pos = at.unwrap_or(m.segments.len()).min(m.segments.len());
        let segment_at = pos;
        self.close_segment_at(seg, m, segment_at)?;
        // Retention means deletion: the files the manifest no longer names go now. A query that
        // read the old manifest and opened them reads on (an unlinked file stays readable through
        // its open handles); one that had not opened them yet finds one gone and starts again on
        // the new manifest (`Store::run`). What cannot be removed now, the next writer removes.
        let seg_dir = self.dir.join(SEGMENTS);
        let (mut segments_deleted, mut bytes_freed) = (0, 0);
        for s in &old {
            if let Some(n) = remove_path(&seg_dir.join(&s.file)) {
                segments_deleted += 1;
                bytes_freed += n;
            }
            if let Some(i) = &s.index {
                bytes_freed += remove_path(&seg_dir.join(i)).unwrap_or(0);
            }
        }
        let bytes_written = self
            .manifest
            .segments
            .iter()
            .filter(|s| Some(s.id) == new_id)
            .map(|s| s.bytes + s.index.as_ref().map_or(0, |i| disk_bytes(&seg_dir.join(i))))
            .sum();
        Ok(Rewrite {
            segments_before: before.segments_after,
            rows_before: before.rows_after,
            segments_deleted,
            bytes_freed,
            bytes_written,
            ..Rewrite::same(&self.manifest)
        })
    }

    /// Compiles and runs `query` over the store (latest stage of each request across segments).
    pub fn query(&self, query: &str) -> Result<QueryResult, Error> {
        let opts = Options::default();
        let plan = kaq_query::compile(query, &opts).map_err(Error::Query)?;
        self.run(&plan, &ReadOptions::default())
    }

    /// How `query` would run here: the plan, then which segments are read.
    pub fn explain(&self, query: &str) -> Result<String, Error> {
        let plan = kaq_query::compile(query, &Options::default()).map_err(Error::Query)?;
        self.explain_plan(&plan, &ReadOptions::default())
    }

    /// The plan, then how it ran here: segments, how rows were found, and what each step left,
    /// with row counts (the query is run to count them).
    pub fn explain_plan(&self, plan: &kaq_query::Plan, read: &ReadOptions) -> Result<String, Error> {
        let r = self.run(plan, read)?;
        let mut s = kaq_query::explain(plan);
        for line in &r.trace {
            s.push_str("store:     ");
            s.push_str(line);
            s.push('\n');
        }
        Ok(s)
    }

    /// Every live segment, in manifest order, with whether its time range can hold a row that
    /// passes the filter's time bounds (`plan::time_bounds`; rows without a time pass no time
    /// condition). Which of them are read depends on the path ([`Store::run_segments`]).
    fn live_segments_for(&self, plan: &kaq_query::Plan) -> Vec<(&Segment, PathBuf, bool)> {
        let (lo, hi) = kaq_query::plan::time_bounds(plan);
        let mut out = Vec::new();
        for (s, p) in self.manifest.segments.iter().zip(self.segment_paths()) {
            let outside = match (s.min_time, s.max_time) {
                (Some(min), Some(max)) => hi.is_some_and(|h| min >= h) || lo.is_some_and(|l| max < l),
                _ => false,
            };
            out.push((s, p, !outside));
        }
        out
    }

    /// Runs a compiled plan over the live segments whose time range can hold a match (and, for
    /// the latest-stage rule, the others' rows of the matching requests).
    ///
    /// A compaction or prune commits a new manifest and then deletes the files of the segments it
    /// replaced. A handle holding an older manifest (opened before, or a query that reaches a file
    /// just deleted) reads the current manifest and starts again: a file gone is a newer commit,
    /// never a missing answer.
    pub fn run(&self, plan: &kaq_query::Plan, read: &ReadOptions) -> Result<QueryResult, Error> {
        /// Newer manifests taken before giving up (each is a commit that replaced segments during
        /// this query).
        const RETRIES: usize = 16;
        let mut fresh: Option<Store> = None;
        for _ in 0..RETRIES {
            let store = fresh.as_ref().unwrap_or(self);
            // Under the latest-stage rule any live segment may be read, if only for later stages.
            if !store.files_missing() {
                match store.run_once(plan, read) {
                    Ok(r) => return Ok(r),
                    Err(e) if !store.files_missing() => return Err(e),
                    Err(e) if read.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) => {
                        return Err(e);
                    }
                    Err(_) => {} // a file went away meanwhile
                }
            }
            let next = Store::open(&self.dir)?;
            if next.manifest.generation == store.manifest.generation {
                break; // gone without a newer commit: the error below names the file
            }
            fresh = Some(next);
        }
        fresh.as_ref().unwrap_or(self).run_once(plan, read)
    }

    /// One run over this handle's manifest.
    fn run_once(&self, plan: &kaq_query::Plan, read: &ReadOptions) -> Result<QueryResult, Error> {
        // Files truncated or grown since their commit are refused (a `stat` each).
        self.check_sizes()?;
        if plan.needs_reused_ids() {
            // `id_reused` is a property of the whole store: the identities of every record first.
            let ids = self.identities(read)?;
            let plan = kaq_query::Plan { reused_ids: Some(std::sync::Arc::new(ids.reused())), ..plan.clone() };
            return self.run_segments(&plan, read);
        }
        self.run_segments(plan, read)
    }

    /// Whether a file (segment or index) of this handle's manifest is no longer there.
    pub(crate) fn files_missing(&self) -> bool {
        let dir = self.dir.join(SEGMENTS);
        self.manifest
            .segments
            .iter()
            .any(|s| !dir.join(&s.file).exists() || s.index.as_ref().is_some_and(|i| !dir.join(i).exists()))
    }

    /// Every record's request identity: records, requests, auditIDs several requests carry.
    pub fn identities(&self, read: &ReadOptions) -> Result<kaq_query::scan::Identities, Error> {
        Ok(kaq_query::scan::parquet_identities(&self.segment_paths(), read.threads.max(1), read.cancel.as_deref())?)
    }

    fn run_segments(&self, plan: &kaq_query::Plan, read: &ReadOptions) -> Result<QueryResult, Error> {
        // In a store of one segment whose auditIDs are all distinct, every row is its request's
        // only record, so its latest: the rule needs no reading (nor the columns it reads).
        let single;
        let only_records =
            !plan.all_stages && self.manifest.segments.len() == 1 && self.manifest.segments[0].ids_unique;
        let plan = if only_records {
            single = kaq_query::Plan { all_stages: true, ..plan.clone() };
            &single
        } else {
            plan
        };
        let live = self.live_segments_for(plan);
        let pruned = live.iter().filter(|(_, _, in_range)| !in_range).count();
        // The segments searched for matches: those whose time range meets the bounds.
        let segs: Vec<(&Segment, PathBuf)> =
            live.iter().filter(|(_, _, in_range)| *in_range).map(|(s, p, _)| (*s, p.clone())).collect();
        let bodies = all_have_bodies(segs.iter().map(|x| x.0));
        let indexed =
            !segs.is_empty() && segs.iter().all(|(s, _)| s.usable_index().is_some()) && index::indexable(plan, bodies);
        let mut steps: Vec<kaq_query::plan::Step> = plan.steps.iter().map(|s| s.0.clone()).collect();
        // The index narrows what it can; otherwise, for whole events or the latest-stage rule, the
        // rows found from the columns of the query's fields are read whole.
        let narrow = if indexed {
            Some(Narrow::Index)
        } else if !segs.is_empty() && !kaq_query::columnar::applies(plan) && kaq_query::columnar::filters(plan) {
            Some(Narrow::Columns)
        } else {
            None
        };
        let full_scan_all = needs_every_segment(plan, narrow.is_some()) && !segs.is_empty();
        let (paths, searched): (Vec<PathBuf>, usize) = if full_scan_all {
            (live.iter().map(|(_, p, _)| p.clone()).collect(), live.len())
        } else {
            (segs.iter().map(|(_, p)| p.clone()).collect(), segs.len())
        };
        let total: u64 = if full_scan_all {
            live.iter().map(|(s, _, _)| s.rows).sum()
        } else {
            segs.iter().map(|(s, _)| s.rows).sum()
        };
        let mut notes = Vec::new();
        let m = self.manifest.segments.len();
        let mut trace = vec![if full_scan_all && pruned > 0 {
            format!(
                "segments: {m} of {m} read ({pruned} outside the time bounds, read for later stages of matching requests), {total} rows"
            )
        } else if !plan.all_stages && narrow.is_some() && pruned > 0 {
            format!(
                "segments: {} of {m} searched for matches ({pruned} pruned by time), {total} rows; later stages of matching requests looked up in all {m}",
                segs.len()
            )
        } else {
            format!("segments: {searched} of {m} read ({pruned} pruned by time), {total} rows")
        }];
        let pruned = if full_scan_all { 0 } else { pruned };
        if only_records {
            trace.push(
                "latest stage: one segment of distinct auditIDs, so every row is its request's only record".into(),
            );
        }
        let by_index = match narrow {
            Some(how) => {
                // Every segment for the latest-stage pass; with every stage kept, those in range.
                let all: Vec<(&Segment, PathBuf, bool)> =
                    live.into_iter().filter(|(_, _, in_range)| !plan.all_stages || *in_range).collect();
                self.run_narrowed(plan, &all, read, how, &mut trace)?
            }
            None => None,
        };
        let mut ids_reused = 0;
        let (rows, rows_read) = if segs.is_empty() {
            (Vec::new(), 0)
        } else if let Some((rows, rows_read, reused)) = by_index {
            ids_reused = reused;
            (rows, rows_read)
        } else if let Some(scanned) =
            kaq_query::columnar::scan(plan, &paths, read.threads.max(1), read.cancel.as_deref())
        {
            let scanned = scanned?;
            let cols = kaq_query::columnar::read_columns(plan).join(", ");
            let skipped = groups_skipped(scanned.groups_skipped);
            if scanned.first_step_done {
                notes.extend(kaq_query::pipeline::note(&steps.remove(0), &scanned.rows));
                let aggregates = matches!(&plan.steps[0].0, kaq_query::plan::Step::Aggregate { aggs, .. }
                    if aggs.iter().any(|a| a.col.is_some()));
                trace.push(format!(
                    "columns: {cols} of {} rows read{skipped}; step 1 {} from them: {} rows",
                    scanned.rows_read,
                    if aggregates { "aggregated" } else { "counted" },
                    scanned.rows.len()
                ));
            } else {
                trace.push(format!(
                    "columns: {cols} of {} rows read{skipped} and tested: {} rows match",
                    scanned.rows_read,
                    scanned.rows.len()
                ));
            }
            (scanned.rows, scanned.rows_read)
        } else {
            // Every row of these files is read: their CRC-32s first, so damage is not answered.
            self.check_whole(&paths)?;
            let scanned = kaq_query::scan::scan(plan, &paths, read, 0, &mut |_| {})?;
            ids_reused = scanned.ids_reused;
            trace.push(format!(
                "scan: {} rows restored and tested: {} rows kept",
                scanned.parquet_rows,
                scanned.rows.len()
            ));
            (scanned.rows, scanned.parquet_rows)
        };
        let first = plan.steps.len() - steps.len();
        let mut rows = rows;
        for (i, step) in steps.iter().enumerate() {
            rows = kaq_query::pipeline::run_noting(std::slice::from_ref(step), rows, &mut notes);
            trace.push(format!("step {}: {} rows", first + i + 1, rows.len()));
        }
        Ok(QueryResult {
            columns: plan.output_columns().to_vec(),
            whole_events: plan.whole_events,
            rows,
            segments_read: searched,
            segments_pruned: pruned,
            rows_read,
            ids_reused,
            trace,
            notes,
        })
    }

    /// The index (or the columns of the query's fields) gives each searched segment's candidate
    /// rows (`segs`: the segments in order, with whether each is searched for matches; the others
    /// lie outside the filter's time bounds, so none of their rows matches); only those are read
    /// and tested. Then, for the latest-stage rule, every row of every segment, searched or not,
    /// with a matching auditID is read too: a later stage of a matching request may lie outside
    /// the bounds.
    fn run_narrowed(
        &self,
        plan: &kaq_query::Plan,
        segs: &[(&Segment, PathBuf, bool)],
        read: &ReadOptions,
        how: Narrow,
        trace: &mut Vec<String>,
    ) -> Result<Option<(Vec<kaq_query::Row>, u64, u64)>, Error> {
        let cancelled = || read.cancelled().then_some(Error::Scan(kaq_query::scan::ScanError::Cancelled));
        let handler = kaq_query::scan::Scan::new(plan, false);
        let ierr = |path: &Path, why: String| Error::Index { path: path.to_path_buf(), why };
        let mut seen_rows = Vec::new();
        // Rows whose columns were tested (Narrow::Columns: row groups whose statistics rule out a
        // match are not).
        let mut tested = 0u64;
        let mut groups_skipped = 0u64;
        for (s, path, searched) in segs {
            if let Some(e) = cancelled() {
                return Err(e);
            }
            if !searched {
                seen_rows.push(Vec::new());
                continue;
            }
            if how == Narrow::Columns {
                let found = kaq_query::columnar::matching_rows(plan, path, read.threads.max(1), read.cancel.as_deref());
                let found = found.expect("checked by columnar::filters")?;
                tested += found.rows_read;
                groups_skipped += found.groups_skipped;
                seen_rows.push(found.positions);
                continue;
            }
            let dir = self.dir.join(SEGMENTS).join(s.usable_index().expect("indexed"));
            let idx = index::SegmentIndex::open(&dir).map_err(|w| ierr(&dir, w))?;
            let mut by_id = |ids: &[String]| ids::rows_with_ids(path, ids).map_err(|e| e.to_string());
            // As decided for the segments searched (`run_segments`).
            let bodies = all_have_bodies(segs.iter().filter(|x| x.2).map(|x| x.0));
            seen_rows.push(idx.candidates(plan, bodies, &mut by_id).map_err(|w| ierr(&dir, w))?.unwrap_or_default());
        }
        // Reading rows one by one costs more than reading columns whole past about one row in
        // sixteen: then the columnar scan, when the query can take it, is faster.
        let candidates: u64 = seen_rows.iter().map(|r| r.len() as u64).sum();
        let total: u64 = segs.iter().filter(|(_, _, searched)| *searched).map(|(s, _, _)| s.rows).sum();
        if how == Narrow::Index && candidates * 16 > total {
            if kaq_query::columnar::applies(plan) {
                trace.push(format!("index: {candidates} candidate rows, too many to read one by one"));
                return Ok(None);
            }
            if kaq_query::columnar::filters(plan) {
                // The whole filter tested on its columns finds fewer rows to read whole.
                trace.push(format!("index: {candidates} candidate rows, too many to read one by one"));
                return self.run_narrowed(plan, segs, read, Narrow::Columns, trace);
            }
        }
        trace.push(match how {
            Narrow::Index => format!("index: {candidates} candidate rows, read and tested"),
            Narrow::Columns => format!(
                "columns: {} of {tested} rows tested (of {total}{}): {candidates} rows match, read whole",
                kaq_query::columnar::filter_columns(plan).join(", "),
                groups_skipped_in(groups_skipped),
            ),
        });
        let mut founds = Vec::new();
        let mut read_rows = candidates;
        // Segments not searched give no rows, but count theirs: positions stay row numbers of
        // the whole store, so the latest-stage rule orders records as the full scan does.
        for ((s, path, _), rows) in segs.iter().zip(&seen_rows) {
            founds.push(read_selected(plan, &handler, path, rows, s.rows)?);
        }
        if !plan.all_stages {
            let before = read_rows;
            let mut outside = (0u64, 0usize);
            // The other stages of every matching request, wherever they are: in each segment
            // (those outside the time bounds too), the rows of the auditIDs matched elsewhere,
            // and of those matched in it unless its auditIDs are all distinct.
            let hit_ids: Vec<Vec<String>> = founds.iter().map(|f| f.hit_ids().map(|i| i.text()).collect()).collect();
            for (k, (s, path, searched)) in segs.iter().enumerate() {
                if let Some(e) = cancelled() {
                    return Err(e);
                }
                let mut ids: Vec<String> = hit_ids
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != k || !s.ids_unique)
                    .flat_map(|(_, l)| l.iter().cloned())
                    .collect();
                ids.sort();
                ids.dedup();
                if ids.is_empty() {
                    continue;
                }
                let seen = &seen_rows[k];
                let more = ids::rows_with_ids(path, &ids)?;
                let more: Vec<u64> = more.into_iter().filter(|r| seen.binary_search(r).is_err()).collect();
                if !more.is_empty() {
                    read_rows += more.len() as u64;
                    if !searched {
                        outside.0 += more.len() as u64;
                        outside.1 += 1;
                    }
                    founds[k].merge(read_selected(plan, &handler, path, &more, s.rows)?);
                }
            }
            let pruned = segs.iter().filter(|(_, _, searched)| !searched).count();
            trace.push(if pruned > 0 {
                format!(
                    "latest stage: {} rows of the same requests read (auditID bloom filters, in all {} segments: {} rows from {} of the {pruned} pruned by time)",
                    read_rows - before,
                    segs.len(),
                    outside.0,
                    outside.1
                )
            } else {
                format!("latest stage: {} rows of the same requests read (auditID bloom filters)", read_rows - before)
            });
        }
        let mut collect = kaq_query::scan::Collector::default();
        for f in founds {
            collect.add(f);
        }
        let finished = collect.finish_counting(plan.all_stages).map_err(|_| Error::Index {
            path: self.dir.clone(),
            why: "a row was skipped without being read (never happens on segments)".into(),
        })?;
        trace.push(format!("kept: {} rows", finished.rows.len()));
        Ok(Some((finished.rows, read_rows, finished.ids_reused)))
    }
}

/// Reads a kaq Parquet file (`kaq convert`'s output, of any kaq version) into a segment, its
/// events re-encoded in this kaq's schema and redacted as logs are.
fn read_parquet(
    p: &Path,
    seg: &mut OpenSegment,
    decode: &kaq_schema::DecodeOptions,
    on_chunk: &mut dyn FnMut(&Counts, &[Reject]),
) -> Result<kaq_input::Report, Error> {
    let mut report = kaq_input::Report { sources: 1, ..Default::default() };
    for batch in kaq_columnar::read::open(p, 8192)? {
        let batch = batch.map_err(|e| Error::Columnar(e.into()))?;
        let cols = kaq_columnar::Columns::new(&batch)?;
        let mut b = kaq_columnar::EventBatchBuilder::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let mut ev = cols.event(i)?;
            kaq_schema::redact::sanitize(&mut ev, decode.keep_secrets);
            b.append(&ev);
        }
        let c = Counts { events: batch.num_rows() as u64, ..Counts::default() };
        on_chunk(&c, &[]);
        report.counts.add(&c);
        seg.add(b.finish())?;
    }
    report.counts.bytes = fs::metadata(p).at(p)?.len();
    Ok(report)
}

/// An error reading a segment file, naming it.
fn segment_error(path: &Path, error: kaq_columnar::Error) -> Error {
    Error::Scan(kaq_query::scan::ScanError::Parquet { path: path.to_path_buf(), error })
}

/// Whether every segment's index holds the bodies' values ([`index::has_bodies`]).
fn all_have_bodies<'a>(mut segs: impl Iterator<Item = &'a Segment>) -> bool {
    segs.all(|s| index::has_bodies(s.index_version.unwrap_or(1)))
}

/// ` (N row groups skipped by their statistics)` when N > 0.
fn groups_skipped(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" ({n} row groups skipped by their statistics)") }
}

/// `, N row groups skipped by their statistics` when N > 0.
fn groups_skipped_in(n: u64) -> String {
    if n == 0 { String::new() } else { format!(", {n} row groups skipped by their statistics") }
}

/// How a query's candidate rows are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Narrow {
    /// The segments' tantivy indexes (and auditIDs' bloom filters).
    Index,
    /// The filter tested on the columns of the query's fields ([`kaq_query::columnar`]).
    Columns,
}

/// Reads the given rows (sorted) of a segment file, testing each as the event at position `row`;
/// the result counts `total` rows so that positions stay row numbers across segments.
fn read_selected(
    plan: &kaq_query::Plan,
    handler: &kaq_query::scan::Scan<'_>,
    path: &Path,
    rows: &[u64],
    total: u64,
) -> Result<kaq_query::scan::Found, Error> {
    use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
    let mut found = kaq_query::scan::Found::default();
    if !rows.is_empty() {
        let perr = |e: parquet::errors::ParquetError| segment_error(path, e.into());
        let file = File::open(path).at(path)?;
        let ranges = rows.iter().map(|&r| r as usize..r as usize + 1);
        let selection = RowSelection::from_consecutive_ranges(ranges, total as usize);
        let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
        let mask = kaq_query::scan::projection_mask(plan, b.schema(), b.parquet_schema());
        let reader =
            b.with_projection(mask).with_row_selection(selection).with_batch_size(8192).build().map_err(perr)?;
        let mut k = 0;
        for batch in reader {
            let batch = batch.map_err(|e| segment_error(path, e.into()))?;
            let cols = kaq_columnar::Columns::projected(&batch).map_err(|e| segment_error(path, e))?;
            for i in 0..batch.num_rows() {
                found.seek(rows[k]);
                handler.handle_restored(&mut found, cols.event(i).map_err(|e| segment_error(path, e))?);
                k += 1;
            }
        }
    }
    found.seek(total);
    Ok(found)
}

/// Whether every live segment must be read whole, whatever its time range. Under the
/// latest-stage rule a later stage of a matching request may lie in a segment outside the time
/// bounds: its rows pass no time condition, but they still supersede the earlier stage (`time`
/// is requestReceivedTimestamp, shared by a request's stages in real logs, but it falls back to
/// other timestamps when that is missing, so stages can be far apart). The narrowed paths
/// (index, columns) search only the segments in range for matches, then look the matching
/// auditIDs up in every segment (`run_narrowed`); the full scan (path 4, every row restored and
/// tested in order) keeps it simple and reads every segment. With every stage kept, a segment
/// outside the bounds is never read.
fn needs_every_segment(plan: &kaq_query::Plan, narrowed: bool) -> bool {
    !plan.all_stages && !narrowed
}

/// A query's answer over a store.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub columns: Vec<kaq_query::Column>,
    pub rows: Vec<kaq_query::Row>,
    /// Whether rows are whole events (their JSON in [`kaq_query::Row::raw`]).
    pub whole_events: bool,
    /// Segments whose rows were searched for matches.
    pub segments_read: usize,
    /// Segments not searched, their time range outside the filter's time bounds. Under the
    /// latest-stage rule the rows of matching requests are still looked up in them.
    pub segments_pruned: usize,
    pub rows_read: u64,
    /// Matching requests whose auditID another request also carries (`id_reused`), when the
    /// rows were read one by one (0 when counted or aggregated from the columns).
    pub ids_reused: u64,
    /// How the rows were found and what each step left, with row counts (`kaq query --explain`).
    pub trace: Vec<String>,
    /// What steps did that the rows do not show (a timeline too long to fill), for the user.
    pub notes: Vec<kaq_query::pipeline::Note>,
}

impl QueryResult {
    /// The rows, for typed access ([`kaq_query::Val`] cells, in [`columns`](Self::columns) order).
    pub fn iter(&self) -> impl Iterator<Item = &kaq_query::Row> {
        self.rows.iter()
    }

    /// The answer as Arrow record batches (one here): whole events in kaq's audit schema, other
    /// rows as a typed table — to hand to DataFusion, polars or a Parquet writer.
    pub fn record_batches(&self) -> Result<Vec<arrow_array::RecordBatch>, arrow_schema::ArrowError> {
        Ok(vec![kaq_query::arrow::record_batch(&self.columns, &self.rows, self.whole_events)?])
    }

    /// The rows as JSON lines (PRODUCT.md §5).
    pub fn json_lines(&self) -> Vec<String> {
        self.rows.iter().map(|r| kaq_query::output::json_line(r, &self.columns)).collect()
    }
}

/// What an ingest has read and not yet committed: an open segment and the records of the inputs
/// read into it.
#[derive(Default)]
struct Pending {
    segment: Option<OpenSegment>,
    updates: Vec<Update>,
}

impl Pending {
    fn rows(&self) -> u64 {
        self.segment.as_ref().map_or(0, |s| s.rows)
    }
}

/// A record of what was read of an input: new, or replacing `sources[replaces]` (the same file,
/// grown).
struct Update {
    replaces: Option<usize>,
    rec: Ingested,
}

fn apply(sources: &mut Vec<Ingested>, updates: Vec<Update>) {
    for u in updates {
        match u.replaces {
            Some(i) => sources[i] = u.rec,
            None => sources.push(u.rec),
        }
    }
}

/// What to read of an input, and its record once read.
struct ToRead {
    /// `None` when nothing is complete yet (a half line).
    source: Option<Source>,
    /// The record it continues (an index into the manifest's records, then the pending ones).
    continues: Option<usize>,
    rec: Ingested,
    /// A half last line left for later: the file and its bytes.
    unread: Option<(String, u64)>,
    /// Where the read starts and should end, in the content.
    start: u64,
    end: Option<u64>,
    /// The file as identified (none for a stream).
    id: Option<inputs::Identity>,
}

impl ToRead {
    /// Standard input: read whole, remembered by name only.
    fn stream(source: Source) -> ToRead {
        let rec = Ingested {
            path: source.display_name(),
            size: 0,
            head: String::new(),
            events: 0,
            rejected: 0,
            segment: None,
            lines: 0,
            sealed: false,
            raw_size: None,
            raw_head: None,
        };
        ToRead { source: Some(source), continues: None, rec, unread: None, start: 0, end: None, id: None }
    }
}

struct OpenSegment {
    id: u64,
    file: String,
    path: PathBuf,
    writer: Option<SortedParquetWriter>,
    /// Its index, being built (in `index_tmp`) from what the writer writes.
    index: Option<index::Builder>,
    index_tmp: PathBuf,
    rows: u64,
    /// Rows with a time.
    timed: u64,
    min: Option<i64>,
    max: Option<i64>,
    /// For new records: what the store holds, so that a record held is not added again.
    dedup: Option<std::sync::Arc<std::sync::Mutex<dedup::Dedup>>>,
    /// Records left out, already held.
    duplicates: u64,
}

impl OpenSegment {
    fn add(&mut self, batch: arrow_array::RecordBatch) -> Result<(), Error> {
        let batch = match &self.dedup {
            Some(d) => {
                let keep = d.lock().expect("unpoisoned").keep(&batch)?;
                let dropped = keep.iter().filter(|k| !**k).count();
                if dropped == 0 {
                    batch
                } else {
                    self.duplicates += dropped as u64;
                    let mask = arrow_array::BooleanArray::from(keep);
                    arrow_select::filter::filter_record_batch(&batch, &mask)
                        .map_err(|e| Error::Columnar(kaq_columnar::Error::from(e)))?
                }
            }
            None => batch,
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let col = kaq_columnar::column_index("time").expect("time column");
        if let Some(t) = batch.column(col).as_any().downcast_ref::<TimestampMicrosecondArray>() {
            for i in 0..t.len() {
                if t.is_valid(i) {
                    self.timed += 1;
                    let v = t.value(i);
                    self.min = Some(self.min.map_or(v, |m| m.min(v)));
                    self.max = Some(self.max.map_or(v, |m| m.max(v)));
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        self.writer.as_mut().expect("open").write(batch)?;
        Ok(())
    }
}

/// The manifest, refused when its text does not match its checksum.
fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let (m, text) = read_manifest_text(dir)?;
    let found = verify::check_manifest(&text, &m);
    if found.damaged() {
        let why = format!("damaged: {found}; `kaq verify` checks the whole store");
        return Err(Error::BadManifest { path: dir.join(MANIFEST), why });
    }
    Ok(m)
}

/// The manifest and its text, unchecked.
fn read_manifest_text(dir: &Path) -> Result<(Manifest, Vec<u8>), Error> {
    let path = dir.join(MANIFEST);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotAStore(dir.to_path_buf())),
        Err(e) => return Err(Error::Io { path, error: e }),
    };
    #[derive(Deserialize)]
    struct Head {
        format: String,
        version: u32,
    }
    let head: Head =
        serde_json::from_slice(&text).map_err(|e| Error::BadManifest { path: path.clone(), why: e.to_string() })?;
    if head.format != FORMAT {
        return Err(Error::BadManifest { path, why: format!("format is `{}`, not `{FORMAT}`", head.format) });
    }
    if head.version > VERSION {
        return Err(Error::TooNew { path, found: head.version });
    }
    let m = serde_json::from_slice(&text).map_err(|e| Error::BadManifest { path, why: e.to_string() })?;
    Ok((m, text))
}

/// Takes the writer lock (an exclusive `flock` on `LOCK`, released when the process ends, however
/// it ends).
fn lock(dir: &Path) -> Result<std::sync::Arc<File>, Error> {
    let path = dir.join(LOCK);
    let mut f =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).at(&path)?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0).at(&path)?;
            let _ = writeln!(f, "{}", std::process::id());
            Ok(std::sync::Arc::new(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = File::open(&path).and_then(|mut f| f.read_to_string(&mut pid));
            let pid = pid.trim();
            let holder = if pid.is_empty() { String::new() } else { format!(" (process {pid})") };
            Err(Error::Locked { path: dir.to_path_buf(), holder })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io { path, error: e }),
    }
}
