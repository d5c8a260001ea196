//! kaq's store: a directory of immutable, time-sorted Parquet segments and a manifest naming the
//! live ones (docs/store.md).
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
//!   manifest itself, are recorded at commit and checked where it is cheap (the `verify` module);
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
    #[error("{path}: index: {error}")]
    Index { path: PathBuf, error: index::IndexError },
    /// A store file is not as committed (its size or CRC-32 differs from the manifest's record).
    #[error("{path}: damaged: {why}; `kaq verify` checks the whole store")]
    Damaged { path: PathBuf, why: String },
    #[error(
        "{path} was ingested before ({was} bytes) and has changed since ({now} bytes); a JSON document or Parquet file cannot be resumed: ingest it into another store"
    )]
    Changed { path: PathBuf, was: u64, now: u64 },
    /// A write through a handle opened for reading ([`Store::open`]).
    #[error("{0}: this store handle was opened for reading; open it with `Store::open_writer` to change it")]
    ReadOnly(PathBuf),
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

// The rooms of the store, one purpose each:
mod dedup; // each record held once
mod dir; // the directory: permissions, sync, delete, the writer's lock, the commit
mod exec; // carrying out a physical plan over the segments
mod follow; // `ingest --follow`: files read as they grow
mod ids; // rows of given auditIDs (bloom filters)
pub mod index; // each segment's tantivy index
mod ingest; // what to read of each input, open segments, commits
mod inputs; // recognising files again (a hash of the head), rotation
mod manifest; // the manifest: live segments, ingested sources; read and checked
mod physical; // how a query runs: the physical plan, decided in one place, and its trace
mod rewrite; // compact and prune
mod terms; // the index term dictionaries: values for completion and warnings
mod verify; // checksums
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
}

use dir::*;
pub use exec::QueryResult;
use exec::*;
use ingest::*;
pub use ingest::{IngestOptions, IngestReport};
use manifest::*;
pub use manifest::{Ingested, Manifest, Segment};
pub use physical::{Access, Fallback, Latest, PhysicalPlan, Projection, SegmentPlan, TraceStep};
pub use rewrite::Rewrite;
