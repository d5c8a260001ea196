//! Where a query runs ([`Source`]: files or a store), and its answer ([`QueryResult`]).

use std::fmt;
use std::path::{Path, PathBuf};

use kaq_input::{ReadOptions, Reject, Report};
use kaq_query::pipeline::Note;
use kaq_query::scan::{Stream, Streamed};
use kaq_query::{Column, Row};
use kaq_store::{PhysicalPlan, TraceStep};

use crate::{Error, Query, Store};

/// Where a query runs: audit logs and kaq Parquet files read for each query, or a store.
#[derive(Debug, Clone)]
pub enum Source {
    /// Files, directories (their logs, recursively) and `-` for stdin; JSON lines, gzip, the
    /// GKE, EKS and AKS exports, and kaq Parquet files, mixed as given.
    Files(Vec<PathBuf>),
    /// An indexed store ([`Store`]).
    Store(Box<Store>),
}

impl Source {
    /// Files read directly.
    pub fn files<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Source {
        Source::Files(paths.into_iter().map(|p| p.as_ref().to_path_buf()).collect())
    }

    /// A store opened for reading.
    pub fn store(store: Store) -> Source {
        Source::Store(Box::new(store))
    }

    /// `path` as a store when it is one (a directory with a `MANIFEST.json`), else as files.
    pub fn open(path: impl AsRef<Path>) -> Result<Source, Error> {
        let path = path.as_ref();
        if path.join("MANIFEST.json").exists() {
            Ok(Source::store(Store::open(path)?))
        } else {
            Ok(Source::files([path]))
        }
    }

    /// The store, when this is one.
    pub fn as_store(&self) -> Option<&Store> {
        match self {
            Source::Store(s) => Some(s),
            Source::Files(_) => None,
        }
    }

    /// Runs `query` with the default reading options.
    pub fn run(&self, query: &Query) -> Result<QueryResult, Error> {
        self.run_with(query, &ReadOptions::default(), &mut |_| {})
    }

    /// Runs `query`: over files, every input is read (on `read.threads` threads) and each rejected
    /// record is passed to `on_reject` as it is found; over a store, the physical plan decides what
    /// is read ([`Store::physical_plan`](kaq_store::Store::physical_plan)) and `on_reject` is
    /// not called (rejects were reported at ingest).
    pub fn run_with(
        &self,
        query: &Query,
        read: &ReadOptions,
        on_reject: &mut dyn FnMut(&Reject),
    ) -> Result<QueryResult, Error> {
        self.run_inner(query, read, on_reject, None)
    }

    /// [`Source::run_with`], handing the rows to `stream.emit` as they are settled instead of
    /// returning them: the same rows in the same order, with [`QueryResult::rows`] left empty and
    /// [`QueryResult::streamed`] saying what was handed on. Without stages after the search, the
    /// matching rows that the latest-stage rule holds until the input is read stay in memory only
    /// up to `stream.spill_after` bytes, the rest in an unnamed temporary file (`$TMPDIR`), so
    /// that printing every event of a large input runs in bounded memory. With stages, the rows
    /// they leave are handed on at the end.
    pub fn run_streaming(
        &self,
        query: &Query,
        read: &ReadOptions,
        on_reject: &mut dyn FnMut(&Reject),
        stream: &mut Stream<'_>,
    ) -> Result<QueryResult, Error> {
        self.run_inner(query, read, on_reject, Some(stream))
    }

    fn run_inner(
        &self,
        query: &Query,
        read: &ReadOptions,
        on_reject: &mut dyn FnMut(&Reject),
        stream: Option<&mut Stream<'_>>,
    ) -> Result<QueryResult, Error> {
        let plan = query.plan();
        match self {
            Source::Store(store) => store.query_inner(query, read, stream),
            Source::Files(inputs) => {
                let scanned = match stream {
                    Some(s) if plan.steps.is_empty() => {
                        kaq_query::scan::scan_streaming(plan, inputs, read, 0, on_reject, s)?
                    }
                    Some(s) => {
                        let mut r = self.run_inner(query, read, on_reject, None)?;
                        let n = r.rows.len() as u64;
                        for row in std::mem::take(&mut r.rows) {
                            (s.emit)(row).map_err(|e| Error::from(kaq_query::scan::ScanError::Output(e)))?;
                        }
                        r.streamed = Some(Streamed { rows: n, ids_reused: r.stats.ids_reused, spilled: 0 });
                        return Ok(r);
                    }
                    None => kaq_query::scan::scan_counting(plan, inputs, read, 0, on_reject)?,
                };
                let mut steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
                let c = scanned.report.counts;
                let of = if c.skipped > 0 {
                    "the events read (the lines the prefilter skipped aside)"
                } else {
                    "the events read"
                };
                let matched = match (scanned.counted, scanned.streamed) {
                    (Some(n), _) => n as usize,
                    (None, Some(s)) => s.rows as usize,
                    (None, None) => scanned.rows.len(),
                };
                let mut notes = Vec::new();
                // The first step ran as the events were read: its note, and the steps after it.
                if scanned.counted.is_some() {
                    let first = steps.remove(0);
                    notes.extend(kaq_query::pipeline::note(&first, &scanned.rows));
                }
                let rows = kaq_query::pipeline::run_noting(&steps, scanned.rows, &mut notes);
                Ok(QueryResult {
                    columns: plan.output_columns().to_vec(),
                    rows,
                    whole_events: plan.whole_events,
                    stats: Stats {
                        read: c.events + c.skipped + scanned.parquet_rows,
                        matched: Some(matched),
                        ids_reused: scanned.ids_reused,
                        data_range: scanned.time_range.map(|(lo, hi)| DataRange { lo, hi, of }),
                        segments_read: 0,
                        segments_pruned: 0,
                    },
                    report: scanned.report,
                    trace: Vec::new(),
                    notes,
                    seen: Some((scanned.seen, c.skipped == 0)),
                    streamed: scanned.streamed,
                })
            }
        }
    }

    /// How `query` runs here. Over a store the query is run to count what each step reads and
    /// keeps; over files the logical plan alone is shown (files are read whole, in order).
    pub fn explain(&self, query: &Query) -> Result<Explain, Error> {
        self.explain_with(query, &ReadOptions::default())
    }

    /// [`Source::explain`] with reading options.
    pub fn explain_with(&self, query: &Query, read: &ReadOptions) -> Result<Explain, Error> {
        let logical = kaq_query::explain(query.plan());
        match self {
            Source::Files(_) => Ok(Explain { logical, physical: None, trace: Vec::new() }),
            Source::Store(store) => store.explain_with(query, read),
        }
    }
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The columns, in order (for whole events, every field of the catalogue).
    pub columns: Vec<Column>,
    /// The rows: typed cells in column order; whole events also carry their JSON.
    pub rows: Vec<Row>,
    /// Whether rows are whole events.
    pub whole_events: bool,
    /// What was read.
    pub stats: Stats,
    /// Files: what was read of the inputs (events, rejects, lines the prefilter skipped, read
    /// errors). Empty over a store.
    pub report: Report,
    /// Store: how the query ran, step by step, with row counts. Empty over files.
    pub trace: Vec<TraceStep>,
    /// What the steps did that the rows do not show (a timeline too long to fill).
    pub notes: Vec<Note>,
    /// Files: the values the plan's watched fields took among the events read, and whether every
    /// line was read (`kaq_query::SeenValues`, for "did you mean" after a scan).
    pub seen: Option<(kaq_query::scan::Seen, bool)>,
    /// [`Source::run_streaming`]: the rows handed on, and how many matching rows were held in a
    /// temporary file rather than in memory (`rows` is then empty).
    pub streamed: Option<Streamed>,
}

/// What a query read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events (files: decoded or skipped by the prefilter, plus Parquet rows) or rows (store) read.
    pub read: u64,
    /// Files: the rows the search matched, before the stages after it.
    pub matched: Option<usize>,
    /// Matching requests whose auditID another request also carries (a client's `Audit-ID`, or
    /// merged logs): each is still found and counted on its own.
    pub ids_reused: u64,
    /// The time range of the data, for telling a user their time bounds missed it.
    pub data_range: Option<DataRange>,
    /// Store: segments searched, and segments pruned by their statistics.
    pub segments_read: usize,
    pub segments_pruned: usize,
}

/// The earliest and latest event time (µs) of the data, and what they are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRange {
    pub lo: i64,
    pub hi: i64,
    pub of: &'static str,
}

impl QueryResult {
    /// The rows.
    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter()
    }

    /// The rows as JSON lines, as `kaq query --format json` prints them (whole events as logged,
    /// redacted; other rows as objects of their columns).
    pub fn json_lines(&self) -> Vec<String> {
        self.rows.iter().map(|r| kaq_query::output::json_line(r, &self.columns)).collect()
    }

    /// The answer as Arrow record batches (one here): whole events in kaq's audit schema, other
    /// rows as a typed table (timestamps, durations, lists) — for DataFusion, polars or a Parquet
    /// writer.
    pub fn record_batches(&self) -> Result<Vec<arrow_array::RecordBatch>, arrow_schema::ArrowError> {
        Ok(vec![kaq_query::arrow::record_batch(&self.columns, &self.rows, self.whole_events)?])
    }

    /// Writes the answer to a Parquet file ([`write_parquet`](crate::write_parquet)): whole
    /// events in kaq's audit schema, other rows as a typed table.
    pub fn write_parquet(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        crate::write_parquet(path.as_ref(), &self.columns, &self.rows, self.whole_events)
    }
}

/// How a query runs: the logical plan, and over a store the physical plan and the steps it took.
#[derive(Debug, Clone)]
pub struct Explain {
    /// The compiled plan as text (search, stages, columns).
    pub logical: String,
    /// Store: how it runs here ([`PhysicalPlan`]).
    pub physical: Option<PhysicalPlan>,
    /// Store: what each step read and kept, with row counts.
    pub trace: Vec<TraceStep>,
}

impl fmt::Display for Explain {
    /// The text `kaq query --explain` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.logical)?;
        if let Some(p) = &self.physical {
            writeln!(f, "store:     plan: {p}")?;
        }
        for step in &self.trace {
            writeln!(f, "store:     {step}")?;
        }
        Ok(())
    }
}
