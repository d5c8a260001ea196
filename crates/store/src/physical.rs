//! How a query runs over the store, decided in one place ([`Store::physical_plan`]) and shown as
//! data ([`TraceStep`]): which segments are searched and why the others are not, how candidate
//! rows are found (index postings, column tests, columnar answers, a full scan), and how the
//! latest-stage rule is settled. [`Store::run`](crate::Store::run) carries the plan out and
//! records what each step read and kept; `kaq query --explain`, the REPL's `.explain` and the
//! server render the same steps.

use std::fmt;
use std::path::PathBuf;

use kaq_columnar::prune::PruningStats;
use kaq_query::Plan;
use serde::Serialize;

use crate::{Segment, Store, index};

/// How a query runs over a store's segments. Made by [`Store::physical_plan`].
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    /// The query as it runs: `all_stages` is set when the latest-stage rule has nothing to settle
    /// ([`Latest::OnlyRecords`]).
    pub plan: Plan,
    /// Every live segment, in manifest order.
    pub segments: Vec<SegmentPlan>,
    /// How the rows that may match are found.
    pub access: Access,
    /// How the latest stage of each request is found.
    pub latest: Latest,
    /// `id_reused` is asked: every record's request identity is read first (a pass over the
    /// identity columns of every segment).
    pub identities_first: bool,
    /// The columns of the segment files the rows are read from ([`Projection`]).
    pub projection: Projection,
}

/// Which columns of the segment files a query reads its rows from: only those its fields (the
/// filter's and every stage's), the latest-stage rule and request identity need, unless the
/// answer is whole events. The index and the auditID bloom filters, when used, are read besides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    /// Every column: the rows are whole events (no `table`, `count`, `stats`… stage), each
    /// restored as it was ingested.
    All,
    /// Only these columns (sorted names of kaq's Parquet schema, `kaq_columnar::COLUMNS`).
    Columns(Vec<&'static str>),
}

impl Projection {
    /// The columns a query reads its rows from when they are found by `access`.
    pub fn of(plan: &Plan, access: &Access) -> Projection {
        let mut cols = match access {
            Access::Nothing => Vec::new(),
            // Counted, aggregated or tested straight from the columns of the query's fields.
            Access::Columnar { columns } => columns.clone(),
            // The matching rows are read with the columns of the query's fields, and those the
            // latest-stage rule and request identity read (`kaq_query::scan::projection`); the
            // column tests read the filter's first.
            Access::Index { .. } | Access::ColumnTest { .. } | Access::FullScan => {
                match kaq_query::scan::projection(plan) {
                    None => return Projection::All,
                    Some(cols) => cols,
                }
            }
        };
        if let Access::ColumnTest { columns } = access {
            cols.extend(columns.iter().copied());
        }
        cols.sort_unstable();
        cols.dedup();
        Projection::Columns(cols)
    }

    /// The columns in kaq's Parquet schema.
    pub fn total() -> usize {
        kaq_columnar::COLUMNS.len()
    }

    /// How many columns are read.
    pub fn len(&self) -> usize {
        match self {
            Projection::All => Self::total(),
            Projection::Columns(c) => c.len(),
        }
    }

    /// Whether no column is read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Projection::All => write!(f, "all {} (whole events)", Self::total()),
            Projection::Columns(c) => write!(f, "{} of {} ({})", c.len(), Self::total(), c.join(", ")),
        }
    }
}

/// One live segment in a [`PhysicalPlan`].
#[derive(Debug, Clone, Serialize)]
pub struct SegmentPlan {
    pub id: u64,
    pub path: PathBuf,
    pub rows: u64,
    /// Searched for matches.
    pub searched: bool,
    /// Why not searched, when it is not: its statistics rule out every match.
    pub pruned: Option<String>,
    /// Read at all: searched, or read for the later stages of matching requests.
    pub read: bool,
}

/// How the rows that may match are found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Access {
    /// No segment can hold a match: nothing is read.
    Nothing,
    /// The segments' tantivy indexes give the candidate rows, read (the [`Projection`]) and tested. When they
    /// are more than one row in sixteen, reading rows one by one costs more than reading
    /// columns whole: then `fallback`, if any.
    Index { fallback: Option<Fallback> },
    /// The filter is tested on the columns of its fields; the rows that pass are read (the [`Projection`]).
    ColumnTest { columns: Vec<&'static str> },
    /// The query is answered from the columns of its fields (the first step aggregated or
    /// counted from them when it can be).
    Columnar { columns: Vec<&'static str> },
    /// Every row of the segments read is restored and tested.
    FullScan,
}

/// What an index lookup with too many candidates turns to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fallback {
    /// [`Access::Columnar`].
    Columnar,
    /// [`Access::ColumnTest`].
    ColumnTest,
}

/// How the latest stage of each request is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Latest {
    /// `--all-stages`: every record is kept.
    AllStages,
    /// One segment whose auditIDs are all distinct: every row is its request's only record.
    OnlyRecords,
    /// The auditIDs of the matches are looked up (bloom filters) in every segment, pruned ones
    /// too, and those rows read.
    Lookup,
    /// The full scan reads every segment in order, pruned ones too.
    InScan,
}

impl Store {
    /// Decides how `plan` runs here: the one place that chooses between the index, column
    /// tests, a columnar answer and a full scan, which segments are searched, and how the
    /// latest-stage rule is settled. Cheap: reads the manifest only.
    pub fn physical_plan(&self, plan: &Plan) -> PhysicalPlan {
        // In a store of one segment whose auditIDs are all distinct, every row is its request's
        // only record, so its latest: the rule needs no reading (nor the columns it reads).
        let only_records =
            !plan.all_stages && self.manifest.segments.len() == 1 && self.manifest.segments[0].ids_unique;
        let plan = if only_records { Plan { all_stages: true, ..plan.clone() } } else { plan.clone() };
        let identities_first = plan.needs_reused_ids();

        // Segments whose statistics (the manifest's time range) rule out every match are not
        // searched: the same bounds the scans prune row groups with.
        let pruning = kaq_query::columnar::pruning(&plan);
        let mut segments: Vec<SegmentPlan> = self
            .manifest
            .segments
            .iter()
            .zip(self.segment_paths())
            .map(|(s, path)| {
                let pruned = pruning.rules_out(s).map(|b| format!("no row can meet {b}"));
                let searched = pruned.is_none();
                SegmentPlan { id: s.id, path, rows: s.rows, searched, pruned, read: searched }
            })
            .collect();
        let searched: Vec<&Segment> =
            self.manifest.segments.iter().zip(&segments).filter(|(_, p)| p.searched).map(|(s, _)| s).collect();

        let holds = indexes_hold(searched.iter().copied());
        let columnar = kaq_query::columnar::applies(&plan);
        let tests = kaq_query::columnar::filters(&plan);
        let access = if searched.is_empty() {
            Access::Nothing
        } else if searched.iter().all(|s| s.usable_index().is_some()) && index::indexable(&plan, holds) {
            let fallback = if columnar {
                Some(Fallback::Columnar)
            } else if tests {
                Some(Fallback::ColumnTest)
            } else {
                None
            };
            Access::Index { fallback }
        } else if !columnar && tests {
            Access::ColumnTest { columns: kaq_query::columnar::filter_columns(&plan) }
        } else if columnar {
            Access::Columnar { columns: kaq_query::columnar::read_columns(&plan) }
        } else {
            Access::FullScan
        };
        let latest = if only_records {
            Latest::OnlyRecords
        } else if plan.all_stages {
            Latest::AllStages
        } else if matches!(access, Access::Index { .. } | Access::ColumnTest { .. }) {
            Latest::Lookup
        } else {
            Latest::InScan
        };
        // Under the latest-stage rule a later stage of a matching request may lie in a segment
        // outside the time bounds: its rows pass no time condition, but they still supersede
        // the earlier stage (`time` is requestReceivedTimestamp, shared by a request's stages in
        // real logs, but it falls back to other timestamps when that is missing, so stages can
        // be far apart). The narrowed paths look the matching auditIDs up in every segment; the
        // full scan keeps it simple and reads every segment.
        if matches!(latest, Latest::Lookup) || (latest == Latest::InScan && access != Access::Nothing) {
            segments.iter_mut().for_each(|s| s.read = true);
        }
        // Decided after `all_stages` is settled: with every stage kept (or one segment of distinct
        // auditIDs), the latest-stage rule's columns are not read.
        let projection = Projection::of(&plan, &access);
        PhysicalPlan { plan, segments, access, latest, identities_first, projection }
    }
}

impl PhysicalPlan {
    /// The segments searched for matches.
    pub fn searched(&self) -> impl Iterator<Item = &SegmentPlan> {
        self.segments.iter().filter(|s| s.searched)
    }

    /// Segments not searched (pruned by their statistics).
    pub fn pruned(&self) -> usize {
        self.segments.iter().filter(|s| !s.searched).count()
    }

    /// The rows of the segments searched.
    pub fn rows_searched(&self) -> u64 {
        self.searched().map(|s| s.rows).sum()
    }
}

/// What a segment's manifest entry tells of its rows: the range and presence of `time`.
impl PruningStats for Segment {
    fn num_rows(&self) -> u64 {
        self.rows
    }

    fn null_count(&self, column: &str) -> Option<u64> {
        (column == "time").then(|| self.timed_rows.map(|w| self.rows.saturating_sub(w)))?
    }

    fn int_range(&self, column: &str) -> Option<(i64, i64)> {
        match (column, self.min_time, self.max_time) {
            ("time", Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        }
    }

    fn bytes_range(&self, _column: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        None
    }
}

/// What every segment's index holds ([`index::Holds`]).
pub(crate) fn indexes_hold<'a>(segs: impl Iterator<Item = &'a Segment>) -> index::Holds {
    index::Holds::all(segs.map(|s| (s.index_version.unwrap_or(1), s.index_unicode.as_deref())))
}

impl fmt::Display for PhysicalPlan {
    /// One line: how rows are found, and how the latest stage is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.access {
            Access::Nothing => write!(f, "nothing to read (no segment can hold a match)")?,
            Access::Index { fallback } => {
                write!(f, "index postings, matching rows read")?;
                match fallback {
                    Some(Fallback::Columnar) => write!(f, " (columnar answer if too many)")?,
                    Some(Fallback::ColumnTest) => write!(f, " (column tests if too many)")?,
                    None => {}
                }
            }
            Access::ColumnTest { columns } => {
                write!(f, "filter tested on columns {}, matching rows read", columns.join(", "))?
            }
            Access::Columnar { columns } => write!(f, "answered from columns {}", columns.join(", "))?,
            Access::FullScan => write!(f, "full scan (every row read and tested)")?,
        }
        if self.access != Access::Nothing {
            match &self.projection {
                Projection::All => write!(f, "; columns: {}", self.projection)?,
                Projection::Columns(c) => write!(f, "; columns: {} of {}", c.len(), Projection::total())?,
            }
        }
        let latest = match self.latest {
            Latest::AllStages => "every stage kept",
            Latest::OnlyRecords => "latest stage: every row is its request's only record",
            Latest::Lookup => "latest stage: auditIDs of the matches looked up in every segment",
            Latest::InScan => "latest stage: settled by the scan, which reads every segment",
        };
        write!(f, "; {latest}")?;
        if self.identities_first {
            write!(f, "; request identities of every record read first (id_reused)")?;
        }
        Ok(())
    }
}

/// One step of a query's run over a store, with what it read and kept: the explain trace as data
/// ([`QueryResult::trace`](crate::QueryResult::trace)). `Display` gives the line `kaq query
/// --explain` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum TraceStep {
    /// The columns of the segment files the rows were read from: `read` (sorted), or every one
    /// (`None`: whole events), of `of`.
    Columns { read: Option<Vec<&'static str>>, of: usize },
    /// Which segments were searched and read.
    Segments {
        searched: usize,
        total: usize,
        pruned: usize,
        rows: u64,
        /// Every segment read, pruned ones too (for later stages: the full scan).
        all_read: bool,
        /// Later stages looked up in every segment (the narrowed paths).
        lookup: bool,
    },
    /// One segment of distinct auditIDs: the latest-stage rule has nothing to settle.
    OnlyRecords,
    /// The index gave `candidates` rows; `too_many` when they were too many to read one by one.
    Index { candidates: u64, too_many: bool },
    /// The filter tested on its columns: `tested` rows of `of`, `matched` then read.
    ColumnTest { columns: Vec<&'static str>, tested: u64, of: u64, groups_skipped: u64, matched: u64 },
    /// The columns of the query's fields read (`rows_read` rows); `first_step` when the first
    /// step was aggregated (`true`) or counted (`false`) from them.
    Columnar { columns: Vec<&'static str>, rows_read: u64, groups_skipped: u64, first_step: Option<bool>, rows: u64 },
    /// Every row restored and tested.
    Scan { restored: u64, kept: u64 },
    /// Rows of the matching requests read for the latest-stage rule, and from how many of the
    /// segments pruned by time (`from_pruned`: rows, segments, of).
    Latest { rows: u64, segments: usize, from_pruned: Option<(u64, usize, usize)> },
    /// Rows kept after the latest-stage rule.
    Kept { rows: u64 },
    /// What step `n` (1-based) of the pipeline left.
    Step { n: usize, rows: u64 },
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStep::Segments { searched, total: m, pruned, rows, all_read, lookup } => {
                if *all_read && *pruned > 0 {
                    write!(
                        f,
                        "segments: {m} of {m} read ({pruned} outside the time bounds, read for later stages of matching requests), {rows} rows"
                    )
                } else if *lookup && *pruned > 0 {
                    write!(
                        f,
                        "segments: {searched} of {m} searched for matches ({pruned} pruned by time), {rows} rows; later stages of matching requests looked up in all {m}"
                    )
                } else {
                    write!(f, "segments: {searched} of {m} read ({pruned} pruned by time), {rows} rows")
                }
            }
            TraceStep::Columns { read: None, of } => write!(f, "columns read: all {of} (whole events)"),
            TraceStep::Columns { read: Some(cols), of } => {
                write!(f, "columns read: {} of {of} ({})", cols.len(), cols.join(", "))
            }
            TraceStep::OnlyRecords => {
                write!(f, "latest stage: one segment of distinct auditIDs, so every row is its request's only record")
            }
            TraceStep::Index { candidates, too_many: true } => {
                write!(f, "index: {candidates} candidate rows, too many to read one by one")
            }
            TraceStep::Index { candidates, too_many: false } => {
                write!(f, "index: {candidates} candidate rows, read and tested")
            }
            TraceStep::ColumnTest { columns, tested, of, groups_skipped, matched } => write!(
                f,
                "columns: {} of {tested} rows tested (of {of}{}): {matched} rows match, read",
                columns.join(", "),
                if *groups_skipped == 0 {
                    String::new()
                } else {
                    format!(", {groups_skipped} row groups skipped by their statistics")
                }
            ),
            TraceStep::Columnar { columns, rows_read, groups_skipped, first_step, rows } => {
                let skipped = if *groups_skipped == 0 {
                    String::new()
                } else {
                    format!(" ({groups_skipped} row groups skipped by their statistics)")
                };
                let cols = columns.join(", ");
                match first_step {
                    Some(aggregated) => write!(
                        f,
                        "columns: {cols} of {rows_read} rows read{skipped}; step 1 {} from them: {rows} rows",
                        if *aggregated { "aggregated" } else { "counted" }
                    ),
                    None => {
                        write!(f, "columns: {cols} of {rows_read} rows read{skipped} and tested: {rows} rows match")
                    }
                }
            }
            TraceStep::Scan { restored, kept } => {
                write!(f, "scan: {restored} rows read and tested: {kept} rows kept")
            }
            TraceStep::Latest { rows, segments, from_pruned: Some((outside, from, pruned)) } => write!(
                f,
                "latest stage: {rows} rows of the same requests read (auditID bloom filters, in all {segments} segments: {outside} rows from {from} of the {pruned} pruned by time)"
            ),
            TraceStep::Latest { rows, from_pruned: None, .. } => {
                write!(f, "latest stage: {rows} rows of the same requests read (auditID bloom filters)")
            }
            TraceStep::Kept { rows } => write!(f, "kept: {rows} rows"),
            TraceStep::Step { n, rows } => write!(f, "step {n}: {rows} rows"),
        }
    }
}
