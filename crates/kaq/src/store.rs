//! An indexed store.

use std::path::{Path, PathBuf};

use kaq_input::{ReadOptions, Report};
use kaq_store::{IngestOptions, IngestReport, PhysicalPlan, Rewrite};

use crate::{DataRange, Error, Explain, Query, QueryResult, Stats};

/// A kaq store: a directory of time-sorted Parquet segments with a tantivy index each, and a
/// manifest naming them. One writer at a time (others get a clear error), any number of readers,
/// also during a commit; every commit is atomic. See `kaq_store` for its guarantees.
///
/// A handle sees the store as it was when opened: open another to see later commits.
#[derive(Debug, Clone)]
pub struct Store {
    inner: kaq_store::Store,
}

impl Store {
    /// Creates a store in `dir` (made if missing, and made private: 0700) and opens it for
    /// writing. Refused when `dir` is a store already.
    pub fn create(dir: impl AsRef<Path>) -> Result<Store, Error> {
        Ok(Store { inner: kaq_store::Store::create(dir)? })
    }

    /// Opens the store in `dir` for reading.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, Error> {
        Ok(Store { inner: kaq_store::Store::open(dir)? })
    }

    /// Opens the store in `dir` for writing, creating it when missing; holds the writer's lock
    /// while the handle lives.
    pub fn open_writer(dir: impl AsRef<Path>) -> Result<Store, Error> {
        Ok(Store { inner: kaq_store::Store::open_writer(dir)? })
    }

    /// Ingests files, directories or `-` (stdin): each file is recognised by its content, so one
    /// ingested before adds nothing, and one that grew adds only what follows.
    pub fn ingest<P: AsRef<Path>>(&mut self, paths: &[P]) -> Result<IngestReport, Error> {
        self.ingest_with(paths, &IngestOptions::default())
    }

    /// [`Store::ingest`] with options (reading, segment size).
    pub fn ingest_with<P: AsRef<Path>>(&mut self, paths: &[P], opts: &IngestOptions) -> Result<IngestReport, Error> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        Ok(self.inner.ingest_paths(&paths, opts)?)
    }

    /// Runs `query` (the latest stage of each request across segments).
    pub fn query(&self, query: &Query) -> Result<QueryResult, Error> {
        self.query_with(query, &ReadOptions::default())
    }

    /// [`Store::query`] with reading options (threads, cancellation).
    pub fn query_with(&self, query: &Query, read: &ReadOptions) -> Result<QueryResult, Error> {
        self.query_inner(query, read, None)
    }

    pub(crate) fn query_inner(
        &self,
        query: &Query,
        read: &ReadOptions,
        stream: Option<&mut kaq_query::scan::Stream<'_>>,
    ) -> Result<QueryResult, Error> {
        let r = match stream {
            Some(s) => self.inner.run_streaming(query.plan(), read, s)?,
            None => self.inner.run(query.plan(), read)?,
        };
        Ok(QueryResult {
            columns: r.columns,
            rows: r.rows,
            whole_events: r.whole_events,
            stats: Stats {
                read: r.rows_read,
                matched: None,
                ids_reused: r.ids_reused,
                data_range: self.data_range(),
                segments_read: r.segments_read,
                segments_pruned: r.segments_pruned,
            },
            report: Report::default(),
            trace: r.trace,
            notes: r.notes,
            seen: None,
            streamed: r.streamed,
        })
    }

    /// How `query` runs here, decided without reading: which segments are searched, how rows
    /// are found, how the latest stage is settled.
    pub fn physical_plan(&self, query: &Query) -> PhysicalPlan {
        self.inner.physical_plan(query.plan())
    }

    /// How `query` runs here and what each step read and kept (the query is run to count them).
    pub fn explain(&self, query: &Query) -> Result<Explain, Error> {
        self.explain_with(query, &ReadOptions::default())
    }

    /// [`Store::explain`] with reading options.
    pub fn explain_with(&self, query: &Query, read: &ReadOptions) -> Result<Explain, Error> {
        let trace = self.inner.run(query.plan(), read)?.trace;
        Ok(Explain { logical: kaq_query::explain(query.plan()), physical: Some(self.physical_plan(query)), trace })
    }

    /// Merges every segment into one (time-sorted, re-indexed) and deletes the old files.
    pub fn compact(&mut self) -> Result<Rewrite, Error> {
        Ok(self.inner.compact()?)
    }

    /// Drops every event older than `cutoff_us` (µs since the epoch) and deletes what it freed.
    pub fn prune_before(&mut self, cutoff_us: i64) -> Result<Rewrite, Error> {
        Ok(self.inner.prune_before(cutoff_us)?)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// Records held (every stage of every request).
    pub fn records(&self) -> u64 {
        self.inner.manifest().rows()
    }

    /// Live segments.
    pub fn segments(&self) -> usize {
        self.inner.manifest().segments.len()
    }

    /// The earliest and latest event time held.
    pub fn data_range(&self) -> Option<DataRange> {
        match self.inner.manifest().time_range() {
            (Some(lo), Some(hi)) => Some(DataRange { lo, hi, of: "the store's events" }),
            _ => None,
        }
    }

    /// The store crate's handle, for what this crate does not wrap (follow, verify, terms).
    pub fn inner(&self) -> &kaq_store::Store {
        &self.inner
    }

    /// The store crate's handle, mutable.
    pub fn inner_mut(&mut self) -> &mut kaq_store::Store {
        &mut self.inner
    }
}

impl From<kaq_store::Store> for Store {
    fn from(inner: kaq_store::Store) -> Store {
        Store { inner }
    }
}
