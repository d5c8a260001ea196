//! Queries straight from Parquet columns: the filter tested on values read from the columns the
//! query names (string columns as dictionaries), no event restored; `count by …`, `stats … by …`
//! (by scalar fields) and `timeline` computed as they are read, without a row per event.
//!
//! Applies when every stage of every request counts as a row (`--all-stages`, or a store segment
//! whose auditIDs are all distinct) and the plan's fields are plain columns (`Direct`). The
//! filter is the same [`crate::eval::eval`]; counts and aggregates go through the same code as the
//! row path ([`pipeline::count_rows`], [`pipeline::Acc`] and [`pipeline::aggregate_rows`],
//! [`pipeline::timeline_rows`]), each group's accumulators fed its rows in the same order. Anything
//! else takes the row path ([`crate::scan`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, DictionaryArray, Int32Array, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema};
use kaq_columnar::{COLUMNS, Col};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};

use crate::eval::{Columns, eval};
use crate::extract::Getter;
use crate::pipeline::{self, Acc, Row};
use crate::plan::{Agg, Plan, Pred, Step};
use crate::scan::{ScanError, StatBound, columns_mask};
use crate::value::Val;
use kaq_columnar::prune::Pruning;
use kaq_columnar::read::par_row_groups;

/// A getter that reads its value straight from one or more columns.
#[derive(Debug, Clone, Copy)]
enum Direct {
    /// A string column (plain or dictionary).
    Str(&'static str),
    /// `user_kind`: a string column holding one of the known kinds.
    UserKind,
    Code,
    Time,
    StageTime,
    /// `stage_time − time`, unless `unmapped` says requestReceivedTimestamp was absent: rows with
    /// an `unmapped` value are restored and read by the getter.
    Latency,
    /// A list column (`ip`, `groups`, `as_groups`): the list.
    List(&'static str),
    /// The first (`client_ip`) or last (`peer_ip`) address of `ip`.
    ListEnd(bool),
}

impl Direct {
    /// Adds the columns it reads to `out`.
    fn columns(self, out: &mut Vec<&'static str>) {
        match self {
            Direct::Str(name) | Direct::List(name) => out.push(name),
            Direct::UserKind => out.push("user_kind"),
            Direct::Code => out.push("code"),
            Direct::Time => out.push("time"),
            Direct::StageTime => out.push("stage_time"),
            Direct::Latency => out.extend(["time", "stage_time", "unmapped"]),
            Direct::ListEnd(_) => out.push("ip"),
        }
    }

    fn of(g: &Getter) -> Option<Direct> {
        Some(match g {
            Getter::Time => Direct::Time,
            Getter::StageTime => Direct::StageTime,
            Getter::Latency => Direct::Latency,
            Getter::Code => Direct::Code,
            Getter::UserKind => Direct::UserKind,
            Getter::Id
            | Getter::Stage
            | Getter::Level
            | Getter::Verb
            | Getter::Uri
            | Getter::User
            | Getter::Uid
            | Getter::As
            | Getter::AsUid
            | Getter::Ua
            | Getter::Resource
            | Getter::Subresource
            | Getter::Ns
            | Getter::Name
            | Getter::ApiGroup
            | Getter::ApiVersion
            | Getter::ObjectUid
            | Getter::ResourceVersion
            | Getter::Status
            | Getter::Reason
            | Getter::Message
            | Getter::ExecCommand => Direct::Str(g.columns()[0]),
            Getter::Ip | Getter::Groups | Getter::AsGroups => Direct::List(g.columns()[0]),
            // kaq's writer copies these two annotations (the first of each key, as the getter
            // reads) into columns of their own.
            Getter::Annotation(k) if k == crate::extract::DECISION => Direct::Str("decision"),
            Getter::Annotation(k) if k == crate::extract::AUTHZ_REASON => Direct::Str("authz_reason"),
            Getter::ClientIp => Direct::ListEnd(true),
            Getter::PeerIp => Direct::ListEnd(false),
            _ => return None,
        })
    }
}

/// What the columnar scan computes.
enum Kind {
    /// The first step, `count by` the slots `by` (every aggregate a bare count).
    Count { by: Vec<usize>, aggs: usize },
    /// The first step, `stats` of any aggregates by the slots `by`.
    Stats { by: Vec<usize>, aggs: Vec<Agg> },
    /// The first step, `timeline` without `by`.
    Timeline { interval: i64, col: usize },
    /// The matching rows (the steps are run on them as after any scan).
    Rows,
    /// The numbers of the matching rows in their file ([`matching_rows`]).
    Positions,
}

/// The direct getters of a plan's slots, when every slot has one.
fn directs(plan: &Plan) -> Option<Vec<Direct>> {
    plan.slots.iter().map(|s| Direct::of(&Getter::new(s.key.as_ref()?))).collect()
}

/// Whether [`matching_rows`] can test `plan`'s filter from the columns.
pub fn filters(plan: &Plan) -> bool {
    directs(plan).is_some()
}

/// Whether `plan` takes the columnar path, and how.
fn kind(plan: &Plan) -> Option<Kind> {
    if !plan.all_stages || plan.whole_events {
        return None;
    }
    let directs = directs(plan)?;
    let Some((first, _)) = plan.steps.first() else { return Some(Kind::Rows) };
    let scalar = |c: &usize| !matches!(directs[*c], Direct::List(_));
    match first {
        Step::Aggregate { by, aggs } if aggs.iter().all(|a: &Agg| a.col.is_none()) && by.iter().all(scalar) => {
            Some(Kind::Count { by: by.clone(), aggs: aggs.len() })
        }
        Step::Aggregate { by, aggs } if by.iter().all(scalar) => {
            Some(Kind::Stats { by: by.clone(), aggs: aggs.clone() })
        }
        Step::Timeline { interval, col, by: None } => Some(Kind::Timeline { interval: *interval, col: *col }),
        _ => Some(Kind::Rows),
    }
}

/// Whether [`scan`] answers `plan`.
pub fn applies(plan: &Plan) -> bool {
    kind(plan).is_some()
}

/// What [`scan`] found.
pub struct Scanned {
    pub rows: Vec<Row>,
    /// Whether `rows` are the first step's output (else the matching rows, before any step).
    pub first_step_done: bool,
    /// Rows read from the files.
    pub rows_read: u64,
    /// For [`matching_rows`]: the numbers of the matching rows, in order.
    pub positions: Vec<u64>,
    /// Row groups skipped unread: their column statistics prove no row passes the filter
    /// ([`stat_bounds`]).
    pub groups_skipped: u64,
}

/// A column of a batch as a [`Direct`] getter reads it.
enum ColRef<'a> {
    Plain(&'a StringArray),
    Dict(&'a DictionaryArray<Int32Type>, &'a StringArray),
    Int(&'a Int32Array),
    Time(&'a TimestampMicrosecondArray),
    Latency(Option<&'a TimestampMicrosecondArray>, Option<&'a TimestampMicrosecondArray>, Option<Unmapped<'a>>),
    List(&'a ListArray, &'a StringArray),
    ListEnd(&'a ListArray, &'a StringArray, bool),
    Missing,
}

fn list_col<'a>(b: &'a RecordBatch, name: &str) -> Option<(&'a ListArray, &'a StringArray)> {
    let l = b.column_by_name(name)?.as_list_opt::<i32>()?;
    Some((l, l.values().as_string_opt::<i32>()?))
}

/// A string column for the `unmapped` check.
enum Unmapped<'a> {
    Plain(&'a StringArray),
    Dict(&'a DictionaryArray<Int32Type>),
}

impl Unmapped<'_> {
    fn is_valid(&self, i: usize) -> bool {
        match self {
            Unmapped::Plain(a) => a.is_valid(i),
            Unmapped::Dict(a) => a.is_valid(i),
        }
    }
}

fn time_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a TimestampMicrosecondArray> {
    b.column_by_name(name).and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
}

fn str_col<'a>(b: &'a RecordBatch, name: &str) -> ColRef<'a> {
    let Some(a) = b.column_by_name(name) else { return ColRef::Missing };
    if let Some(s) = a.as_string_opt::<i32>() {
        return ColRef::Plain(s);
    }
    match a.as_dictionary_opt::<Int32Type>() {
        Some(d) => match d.values().as_string_opt::<i32>() {
            Some(v) => ColRef::Dict(d, v),
            None => ColRef::Missing,
        },
        None => ColRef::Missing,
    }
}

impl<'a> ColRef<'a> {
    fn new(b: &'a RecordBatch, d: Direct) -> ColRef<'a> {
        match d {
            Direct::Str(name) => str_col(b, name),
            Direct::UserKind => str_col(b, "user_kind"),
            Direct::Code => b
                .column_by_name("code")
                .and_then(|a| a.as_primitive_opt::<Int32Type>())
                .map_or(ColRef::Missing, ColRef::Int),
            Direct::Time => time_col(b, "time").map_or(ColRef::Missing, ColRef::Time),
            Direct::StageTime => time_col(b, "stage_time").map_or(ColRef::Missing, ColRef::Time),
            Direct::List(name) => list_col(b, name).map_or(ColRef::Missing, |(l, v)| ColRef::List(l, v)),
            Direct::ListEnd(first) => list_col(b, "ip").map_or(ColRef::Missing, |(l, v)| ColRef::ListEnd(l, v, first)),
            Direct::Latency => ColRef::Latency(
                time_col(b, "time"),
                time_col(b, "stage_time"),
                match str_col(b, "unmapped") {
                    ColRef::Plain(a) => Some(Unmapped::Plain(a)),
                    ColRef::Dict(a, _) => Some(Unmapped::Dict(a)),
                    _ => None,
                },
            ),
        }
    }

    /// The value at row `i`, or `None` when only the restored event can tell.
    fn get(&self, i: usize, user_kind: bool) -> Option<Val<'a>> {
        let s = |v: &'a str| {
            if user_kind && !kaq_schema::UserKind::ALL.iter().any(|k| k.as_str() == v) {
                return Val::Null;
            }
            Val::Str(Cow::Borrowed(v))
        };
        Some(match self {
            ColRef::Plain(a) => {
                if a.is_valid(i) {
                    s(a.value(i))
                } else {
                    Val::Null
                }
            }
            ColRef::Dict(d, v) => {
                if d.is_valid(i) {
                    s(v.value(d.keys().value(i) as usize))
                } else {
                    Val::Null
                }
            }
            ColRef::Int(a) => {
                if a.is_valid(i) {
                    Val::Int(a.value(i).into())
                } else {
                    Val::Null
                }
            }
            ColRef::Time(a) => {
                if a.is_valid(i) {
                    Val::Time(a.value(i))
                } else {
                    Val::Null
                }
            }
            ColRef::Latency(t, st, unmapped) => {
                if unmapped.as_ref().is_some_and(|u| u.is_valid(i)) {
                    return None;
                }
                let at = |a: &Option<&TimestampMicrosecondArray>| a.filter(|a| a.is_valid(i)).map(|a| a.value(i));
                match (at(t), at(st)) {
                    (Some(a), Some(b)) => Val::Dur(b - a),
                    _ => Val::Null,
                }
            }
            ColRef::List(l, v) => {
                if l.is_valid(i) {
                    let o = l.value_offsets();
                    Val::List((o[i] as usize..o[i + 1] as usize).map(|j| Val::Str(Cow::Borrowed(v.value(j)))).collect())
                } else {
                    Val::Null
                }
            }
            ColRef::ListEnd(l, v, first) => {
                let o = l.value_offsets();
                let (a, b) = (o[i] as usize, o[i + 1] as usize);
                if !l.is_valid(i) || a == b {
                    Val::Null
                } else {
                    Val::Str(Cow::Borrowed(v.value(if *first { a } else { b - 1 })))
                }
            }
            // A file without the column (another writer's): the restored event tells.
            ColRef::Missing => return None,
        })
    }
}

/// One row of a batch, as the filter reads it.
struct RowView<'a, 'b> {
    arrays: &'b [(ColRef<'a>, bool)],
    getters: &'b [Getter],
    restored: &'b kaq_columnar::Columns<'a>,
    i: usize,
    cache: Vec<Option<Val<'a>>>,
}

impl<'a> RowView<'a, '_> {
    fn value(&mut self, col: usize) -> Val<'a> {
        let (a, user_kind) = &self.arrays[col];
        match a.get(self.i, *user_kind) {
            Some(v) => v,
            None => match self.restored.event(self.i) {
                Ok(ev) => self.getters[col].get(&ev).into_owned(),
                Err(_) => Val::Null,
            },
        }
    }
}

impl<'a> Columns<'a> for RowView<'a, '_> {
    fn get(&mut self, col: usize) -> &Val<'a> {
        if self.cache[col].is_none() {
            let v = self.value(col);
            self.cache[col] = Some(v);
        }
        self.cache[col].as_ref().expect("just set")
    }
}

/// Each group's accumulators (one per aggregate), by key.
type Accs<'a> = HashMap<Vec<Val<'a>>, Vec<Acc<'a>>>;

/// Adds a group's accumulators over later rows to `accs`.
fn add_group<'a>(accs: &mut Accs<'a>, key: Vec<Val<'a>>, later: Vec<Acc<'a>>) {
    match accs.entry(key) {
        std::collections::hash_map::Entry::Occupied(mut e) => {
            e.get_mut().iter_mut().zip(later).for_each(|(x, y)| x.merge(y));
        }
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(later);
        }
    }
}

/// Adds the groups of `later` rows to those of `accs`.
fn merge_accs(accs: &mut Accs<'static>, later: Accs<'_>) {
    for (k, a) in later {
        add_group(accs, k.into_iter().map(Val::into_owned).collect(), a.into_iter().map(Acc::into_owned).collect());
    }
}

/// A row group's partial result.
enum Partial {
    Count(HashMap<Vec<Val<'static>>, i64>),
    Stats(Accs<'static>),
    Timeline(HashMap<i64, i64>),
    Rows(Vec<Row>),
    Positions(Vec<u64>),
}

/// The audit schema with the dictionary-encoded columns read as Arrow dictionaries (no string is
/// copied out of a dictionary page).
fn dictionary_schema() -> Arc<Schema> {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|(name, c)| {
            let t = match c {
                Col::Dict => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                c => kaq_columnar::data_type(*c),
            };
            Field::new(*name, t, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The rows of a kaq Parquet file where `plan`'s filter holds, each tested on its own (the caller
/// applies the latest-stage rule), read from the columns of the plan's fields only; `None` when a
/// field is not a plain column ([`filters`]). For a store's whole-event queries the index cannot
/// narrow: the rows found are then read (the columns of its projection).
pub fn matching_rows(
    plan: &Plan,
    file: &Path,
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Option<Result<Scanned, ScanError>> {
    filters(plan).then(|| run(plan, &Kind::Positions, &[file.to_path_buf()], threads, cancel))
}

/// The rows among `rows` (sorted, distinct row numbers of the kaq Parquet `file`) where `plan`'s
/// filter holds, each tested on its own from the columns of the plan's fields only (read for those
/// rows alone); `None` when a field is not a plain column ([`filters`]). A store's index gives
/// candidates (whole blocks of rows): these are the ones worth reading whole.
pub fn matching_among(plan: &Plan, file: &Path, rows: &[u64]) -> Option<Result<Vec<u64>, ScanError>> {
    if !filters(plan) {
        return None;
    }
    let named = |error: kaq_columnar::Error| ScanError::Parquet { path: file.to_path_buf(), error };
    let run = || -> Result<Vec<u64>, kaq_columnar::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let getters: Vec<Getter> =
            plan.slots.iter().map(|s| Getter::new(s.key.as_ref().expect("event fields"))).collect();
        let directs: Vec<Direct> = directs(plan).expect("checked by filters()");
        let batches = Batches { plan, getters: &getters, directs: &directs, latency: None };
        let f =
            std::fs::File::open(file).map_err(|error| kaq_columnar::Error::Io { path: file.to_path_buf(), error })?;
        let b = ParquetRecordBatchReaderBuilder::try_new(f)?;
        let sizes: Vec<u64> = b.metadata().row_groups().iter().map(|g| g.num_rows() as u64).collect();
        let (groups, selection) = crate::scan::groups_of_rows(&sizes, rows);
        let mask = columns_mask(&filter_columns(plan), b.schema(), b.parquet_schema());
        let reader = b
            .with_projection(mask)
            .with_row_groups(groups)
            .with_row_selection(selection)
            .with_batch_size(8192)
            .build()?;
        // Positions among the rows read, in order: the candidates that are in the file.
        let mut hits = Partial::Positions(Vec::new());
        let mut n = 0;
        for batch in reader {
            let batch = batch?;
            add_batch(&batches, &Kind::Positions, &batch, &mut hits, n, false)?;
            n += batch.num_rows() as u64;
        }
        let Partial::Positions(hits) = hits else { unreachable!("positions") };
        Ok(hits.into_iter().map(|h| rows[h as usize]).collect())
    };
    Some(run().map_err(named))
}

/// Runs `plan`'s filter, and its first step when that is an aggregation or a timeline, over kaq Parquet
/// `files` from their columns; `None` when the plan does not take this path ([`applies`]).
/// Setting `cancel` stops it between row groups with [`ScanError::Cancelled`].
pub fn scan(
    plan: &Plan,
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Option<Result<Scanned, ScanError>> {
    let kind = kind(plan)?;
    Some(run(plan, &kind, files, threads, cancel))
}

fn run(
    plan: &Plan,
    kind: &Kind,
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Scanned, ScanError> {
    use std::sync::atomic::Ordering;
    let getters: Vec<Getter> = plan.slots.iter().map(|s| Getter::new(s.key.as_ref().expect("event fields"))).collect();
    let directs: Vec<Direct> = directs(plan).expect("checked by kind()");
    let always = matches!(plan.filter, Pred::Const(true));
    let filter_cols = filter_columns(plan);
    let dict = dictionary_schema();
    // Set when a row group's filter matched too many rows for two phases to pay.
    let dense = std::sync::atomic::AtomicBool::new(false);
    // Each row is tested on its own here: row groups whose statistics prove that no row passes
    // the filter cannot hold a match.
    let bounds = Pruning { bounds: stat_bounds(plan) };
    let batches = Batches { plan, getters: &getters, directs: &directs, latency: LatencyBound::range(&bounds.bounds) };
    // Two phases when the filter needs fewer columns than the rest: the filter's columns for
    // every row, then the others for the matching rows only. Positions need only the first.
    let needed = match kind {
        Kind::Positions => filter_cols.clone(),
        _ => read_columns(plan),
    };
    let (results, groups_skipped) = par_row_groups(files, threads, cancel, &bounds, |job| {
        let (g, start, rg_rows) = (job.group, job.first_row, job.rows);
        // Dictionaries only for a file of exactly kaq's schema (older files read as strings).
        // The file's metadata was read once for all its row groups (`RowGroupJob::meta`).
        let meta = if job.kaq_schema {
            ArrowReaderMetadata::try_new(
                job.meta.metadata().clone(),
                ArrowReaderOptions::new().with_schema(dict.clone()),
            )?
        } else {
            job.meta.clone()
        };
        // The row group's `cols`, all rows or the selected ones.
        let read = |cols: &[&str], selection: Option<RowSelection>| {
            let b = ParquetRecordBatchReaderBuilder::new_with_metadata(job.file.clone(), meta.clone());
            let mask = columns_mask(cols, b.schema(), b.parquet_schema());
            let b = b.with_projection(mask).with_row_groups(vec![g]).with_batch_size(8192);
            match selection {
                Some(s) => b.with_row_selection(s).build(),
                None => b.build(),
            }
        };
        let mut part = match kind {
            Kind::Count { .. } => Partial::Count(HashMap::new()),
            Kind::Stats { .. } => Partial::Stats(HashMap::new()),
            Kind::Timeline { .. } => Partial::Timeline(HashMap::new()),
            Kind::Rows => Partial::Rows(Vec::new()),
            Kind::Positions => Partial::Positions(Vec::new()),
        };
        let two_phase = filter_cols.len() < needed.len() && !dense.load(Ordering::Relaxed);
        if !always && (matches!(kind, Kind::Positions) || two_phase) {
            let mut hits = Partial::Positions(Vec::new());
            let mut n = 0;
            for batch in read(&filter_cols, None)? {
                let batch = batch?;
                add_batch(&batches, &Kind::Positions, &batch, &mut hits, n, false)?;
                n += batch.num_rows() as u64;
            }
            let Partial::Positions(hits) = hits else { unreachable!("positions") };
            if let Partial::Positions(p) = &mut part {
                p.extend(hits.iter().map(|h| start + h));
                return Ok((part, n));
            }
            // Many scattered rows cost more to select than to read whole: this row group and the
            // next ones are read whole (below).
            if hits.len() as u64 * 8 > rg_rows {
                dense.store(true, Ordering::Relaxed);
            } else {
                if !hits.is_empty() {
                    let ranges = hits.iter().map(|&r| r as usize..r as usize + 1);
                    let selection = RowSelection::from_consecutive_ranges(ranges, rg_rows as usize);
                    for batch in read(&needed, Some(selection))? {
                        add_batch(&batches, kind, &batch?, &mut part, 0, true)?;
                    }
                }
                return Ok((part, n));
            }
        }
        let mut n = 0;
        for batch in read(&needed, None)? {
            let batch = batch?;
            add_batch(&batches, kind, &batch, &mut part, start + n, false)?;
            n += batch.num_rows() as u64;
        }
        Ok((part, n))
    })?;
    let mut rows_read = 0;
    let mut counts: HashMap<Vec<Val<'static>>, i64> = HashMap::new();
    // Merged in row-group order: each group's accumulators see its rows in order.
    let mut stats: Accs<'static> = HashMap::new();
    let mut buckets: HashMap<(i64, Val<'static>), i64> = HashMap::new();
    let mut rows = Vec::new();
    let mut positions = Vec::new();
    for (part, n) in results {
        rows_read += n;
        match part {
            Partial::Count(c) => {
                for (k, v) in c {
                    *counts.entry(k).or_default() += v;
                }
            }
            Partial::Stats(a) => merge_accs(&mut stats, a),
            Partial::Timeline(c) => {
                for (k, v) in c {
                    *buckets.entry((k, Val::Null)).or_default() += v;
                }
            }
            Partial::Rows(mut r) => rows.append(&mut r),
            Partial::Positions(mut p) => positions.append(&mut p),
        }
    }
    let rows = match kind {
        Kind::Count { by, aggs } => pipeline::count_rows(counts.into_iter().collect(), by.len(), *aggs),
        Kind::Stats { .. } if stats.values().flatten().any(|a| !a.exact()) => {
            // A float sum added in parts could round otherwise than in one pass: the rows, then
            // the step.
            let mut again = run(plan, &Kind::Rows, files, threads, cancel)?;
            again.rows_read += rows_read;
            return Ok(again);
        }
        Kind::Stats { by, aggs } => pipeline::aggregate_rows(stats.into_iter().collect(), by.len(), aggs),
        Kind::Timeline { interval, .. } => pipeline::timeline_rows(&buckets, *interval, false),
        Kind::Rows | Kind::Positions => rows,
    };
    let first_step_done = !matches!(kind, Kind::Rows | Kind::Positions);
    Ok(Scanned { rows, first_step_done, rows_read, positions, groups_skipped })
}

/// The bounds every match of a plan puts on `latency` ([`StatBound::Latency`]), tested on each
/// row's two timestamps before the filter: a row whose `stage_time − time` lies outside them
/// cannot match (its latency is that difference, or null), and the filter is not evaluated on
/// it. Rows missing either timestamp go to the filter.
struct LatencyBound<'a> {
    lo: i64,
    hi: i64,
    time: &'a TimestampMicrosecondArray,
    stage_time: &'a TimestampMicrosecondArray,
}

impl<'a> LatencyBound<'a> {
    /// The latency bounds among a plan's [`stat_bounds`], as one range; `None` without any.
    fn range(bounds: &[StatBound]) -> Option<(i64, i64)> {
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        for b in bounds {
            if let StatBound::Latency { lo: l, hi: h } = b {
                lo = lo.max(l.unwrap_or(i64::MIN));
                hi = hi.min(h.unwrap_or(i64::MAX));
            }
        }
        ((lo, hi) != (i64::MIN, i64::MAX)).then_some((lo, hi))
    }

    fn of((lo, hi): (i64, i64), batch: &'a RecordBatch) -> Option<LatencyBound<'a>> {
        Some(LatencyBound { lo, hi, time: time_col(batch, "time")?, stage_time: time_col(batch, "stage_time")? })
    }

    fn rules_out(&self, i: usize) -> bool {
        if !(self.time.is_valid(i) && self.stage_time.is_valid(i)) {
            return false;
        }
        let d = self.stage_time.value(i).wrapping_sub(self.time.value(i));
        d < self.lo || d > self.hi
    }
}

/// The bounds of `plan`'s filter ([`crate::plan::column_bounds`]) that a row group's statistics
/// can test, on the columns the direct getters read. Only where a column's values are exactly
/// what the filter reads, compared as the statistics order them:
/// - `time`, `stage_time`: the column is the value (`Val::Time`);
/// - `code`: the column is the value (`Val::Int`, an INT32), so numeric ends become integer ends;
/// - `latency`: no column of its own; when not null it is `stage_time − time` of the row (also
///   for rows the getter restores: their restored event has those two timestamps), so a row
///   group's latencies lie within `min(stage_time) − max(time) ..= max(stage_time) − min(time)`;
/// - string columns (`verb`, `ns`, `user`, the `decision` annotation, …): `Val::Str` of the column's
///   text, compared byte-wise by `Test::Eq`/`Test::Cmp` as by the byte-array statistics
///   (`user_kind`, which reads unknown kinds as null, only narrows further);
/// - lists (`ip`, `groups`, the ends of `ip`): nothing (a test passes on any element).
///
/// Presence (`field:*`) skips row groups where the column is all null.
pub fn stat_bounds(plan: &Plan) -> Vec<StatBound> {
    use crate::plan::Bound;
    let Some(directs) = directs(plan) else { return Vec::new() };
    let mut out = Vec::new();
    for b in crate::plan::column_bounds(plan) {
        let d = directs[b.col];
        let column = match d {
            Direct::Str(name) => name,
            Direct::UserKind => "user_kind",
            Direct::Code => "code",
            Direct::Time => "time",
            Direct::StageTime => "stage_time",
            Direct::Latency => {
                if let Bound::Dur(lo, hi) = b.bound {
                    out.push(StatBound::Latency { lo, hi });
                }
                continue;
            }
            Direct::List(_) | Direct::ListEnd(_) => continue,
        };
        let bound = match (d, b.bound) {
            (_, Bound::Present) => StatBound::Present { column },
            (Direct::Time | Direct::StageTime, Bound::Time(lo, hi)) => StatBound::Int { column, lo, hi },
            (Direct::Code, Bound::Num(lo, hi)) => {
                // The integers within the ends (clamped: the column is an INT32).
                let clamp = |x: f64| x.clamp(-(1i64 << 40) as f64, (1i64 << 40) as f64) as i64;
                let lo = lo.map(|(x, incl)| clamp(if incl { x.ceil() } else { x.floor() + 1.0 }));
                let hi = hi.map(|(x, incl)| clamp(if incl { x.floor() } else { x.ceil() - 1.0 }));
                StatBound::Int { column, lo, hi }
            }
            (Direct::Str(_) | Direct::UserKind, Bound::Str(lo, hi)) => {
                let bytes = |e: Option<(String, bool)>| e.map(|(s, incl)| (s.into_bytes(), incl));
                StatBound::Bytes { column, lo: bytes(lo), hi: bytes(hi) }
            }
            // Any other bound on a present value: still not null.
            _ => StatBound::Present { column },
        };
        out.push(bound);
    }
    out
}

/// The bounds every match of `plan` meets, as one [`Pruning`] for every container of rows: the
/// store's segments (their time ranges) and Parquet row groups (their column statistics). When a
/// field of the query has no column of its own, only the `time` bounds are given (from the same
/// [`crate::plan::column_bounds`]).
pub fn pruning(plan: &Plan) -> Pruning {
    if directs(plan).is_some() {
        return Pruning { bounds: stat_bounds(plan) };
    }
    let time = |c: usize| matches!(&plan.slots[c].key, Some(crate::plan::FieldKey::Field(f)) if f.name == "time");
    let bounds = crate::plan::column_bounds(plan)
        .into_iter()
        .filter(|b| time(b.col))
        .filter_map(|b| match b.bound {
            crate::plan::Bound::Time(lo, hi) => Some(StatBound::Int { column: "time", lo, hi }),
            crate::plan::Bound::Present => Some(StatBound::Present { column: "time" }),
            _ => None,
        })
        .collect();
    Pruning { bounds }
}

/// The columns [`scan`] reads for `plan`'s fields.
pub fn read_columns(plan: &Plan) -> Vec<&'static str> {
    columns_of(plan, &(0..plan.slots.len()).collect::<Vec<_>>())
}

/// The columns `plan`'s filter reads from (at least one, for the row count).
pub fn filter_columns(plan: &Plan) -> Vec<&'static str> {
    let mut slots = Vec::new();
    filter_slots(&plan.filter, &mut slots);
    columns_of(plan, &slots)
}

/// The columns the direct getters of some slots read, sorted (at least one).
fn columns_of(plan: &Plan, slots: &[usize]) -> Vec<&'static str> {
    let mut cols = Vec::new();
    if let Some(directs) = directs(plan) {
        slots.iter().for_each(|&c| directs[c].columns(&mut cols));
    }
    cols.sort_unstable();
    cols.dedup();
    if cols.is_empty() {
        cols.push("time");
    }
    cols
}

/// The slots a filter reads.
fn filter_slots(p: &Pred, out: &mut Vec<usize>) {
    p.slots(out)
}

/// The filter's answer by dictionary keys, when every slot the filter reads is a dictionary
/// column (up to four): a row's filter values are then its keys' dictionary values (or null), so
/// rows with the same keys get the same answer, computed once per combination in a batch (a
/// batch holds a few hundred combinations of `user_kind`, `verb`, `resource`… for 8192 rows).
enum KeyMemo<'a> {
    /// Test every row.
    Off,
    /// One column: the answer by key (the last entry for null): 0 not yet known, 1 false, 2 true.
    One(&'a DictionaryArray<Int32Type>, Vec<u8>),
    /// Several: the keys (each + 1, null as 0) packed 32 bits apiece.
    Many(Vec<&'a DictionaryArray<Int32Type>>, HashMap<u128, bool, ahash::RandomState>),
    /// One integer column (`code`): the answer by value for values in `0..INT_MEMO` (the last
    /// entry for null), as in `One`; other values are tested.
    Int(&'a Int32Array, Vec<u8>),
}

/// The integer values [`KeyMemo::Int`] remembers answers for (HTTP status codes and more).
const INT_MEMO: usize = 1024;

impl<'a> KeyMemo<'a> {
    fn new(plan: &Plan, arrays: &[(ColRef<'a>, bool)], always: bool) -> KeyMemo<'a> {
        let mut slots = Vec::new();
        plan.filter.slots(&mut slots);
        slots.sort_unstable();
        slots.dedup();
        if always || slots.is_empty() || slots.len() > 4 {
            return KeyMemo::Off;
        }
        // The filter reads one integer column, which always has the value (never the restored
        // event): its answer is a function of that value.
        if let [c] = slots.as_slice()
            && let Some((ColRef::Int(a), _)) = arrays.get(*c)
        {
            return KeyMemo::Int(a, vec![0; INT_MEMO + 1]);
        }
        let dicts: Option<Vec<&'a DictionaryArray<Int32Type>>> = slots
            .iter()
            .map(|&c| match arrays.get(c) {
                Some((ColRef::Dict(d, _), _)) => Some(*d),
                _ => None,
            })
            .collect();
        match dicts {
            None => KeyMemo::Off,
            Some(d) if d.len() == 1 => KeyMemo::One(d[0], vec![0; d[0].values().len() + 1]),
            Some(d) => KeyMemo::Many(d, HashMap::default()),
        }
    }

    /// Whether row `i` passes: from the memo, or `eval` (then remembered).
    fn test(&mut self, i: usize, eval: impl FnOnce() -> bool) -> bool {
        let key = |d: &DictionaryArray<Int32Type>| if d.is_valid(i) { Some(d.keys().value(i) as usize) } else { None };
        match self {
            KeyMemo::Off => eval(),
            KeyMemo::One(d, known) => {
                let k = match key(d) {
                    Some(k) if k < known.len() - 1 => k,
                    Some(_) => return eval(),
                    None => known.len() - 1,
                };
                remembered(&mut known[k], eval)
            }
            KeyMemo::Int(a, known) => {
                let k = if a.is_valid(i) {
                    match usize::try_from(a.value(i)) {
                        Ok(v) if v < INT_MEMO => v,
                        _ => return eval(),
                    }
                } else {
                    INT_MEMO
                };
                remembered(&mut known[k], eval)
            }
            KeyMemo::Many(ds, known) => {
                let mut packed = 0u128;
                for d in ds.iter() {
                    packed = (packed << 32) | key(d).map_or(0, |k| k as u128 + 1);
                }
                *known.entry(packed).or_insert_with(eval)
            }
        }
    }
}

/// A memo slot: 0 unknown (then `eval`, remembered), 1 false, 2 true.
fn remembered(slot: &mut u8, eval: impl FnOnce() -> bool) -> bool {
    match *slot {
        0 => {
            let b = eval();
            *slot = 1 + u8::from(b);
            b
        }
        x => x == 2,
    }
}

/// What every batch of a scan is read with, worked out once per scan.
struct Batches<'a> {
    plan: &'a Plan,
    getters: &'a [Getter],
    directs: &'a [Direct],
    /// [`LatencyBound::range`] of the plan's bounds.
    latency: Option<(i64, i64)>,
}

/// Tests the rows of `batch` (all of them pass when `prefiltered`) and adds those that pass to
/// `part`; `first_row` numbers them for positions.
fn add_batch(
    b: &Batches<'_>,
    kind: &Kind,
    batch: &RecordBatch,
    part: &mut Partial,
    first_row: u64,
    prefiltered: bool,
) -> Result<(), kaq_columnar::Error> {
    let (plan, getters, directs) = (b.plan, b.getters, b.directs);
    let arrays: Vec<(ColRef<'_>, bool)> =
        directs.iter().map(|d| (ColRef::new(batch, *d), matches!(d, Direct::UserKind))).collect();
    let restored = kaq_columnar::Columns::projected(batch)?;
    let always = prefiltered || matches!(plan.filter, Pred::Const(true));
    // Counting by one dictionary column with no filter: count the keys, then name them.
    if always
        && let (Kind::Count { by, .. }, Partial::Count(counts)) = (kind, &mut *part)
        && let [c] = by.as_slice()
        && let (ColRef::Dict(d, values), false) = &arrays[*c]
    {
        let mut per_key = vec![0i64; values.len()];
        let mut nulls = 0i64;
        for k in d.keys().iter() {
            match k {
                Some(k) => per_key[k as usize] += 1,
                None => nulls += 1,
            }
        }
        for (k, n) in per_key.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            let v = if values.is_valid(k) { Val::Str(Cow::Owned(values.value(k).to_string())) } else { Val::Null };
            *counts.entry(vec![v]).or_default() += n;
        }
        if nulls > 0 {
            *counts.entry(vec![Val::Null]).or_default() += nulls;
        }
        return Ok(());
    }
    // A timeline of every row: the time column alone.
    if always
        && let (Kind::Timeline { interval, col }, Partial::Timeline(b)) = (kind, &mut *part)
        && let (ColRef::Time(t), _) = &arrays[*col]
    {
        // Runs of one bucket are counted before the map is touched: a store's segments are
        // sorted by time, so a bucket is one run (a hash a row cost most of the time).
        let mut run: Option<(i64, i64)> = None;
        for v in t.iter().flatten() {
            let bucket = v.div_euclid(*interval) * interval;
            match &mut run {
                Some((at, n)) if *at == bucket => *n += 1,
                _ => {
                    if let Some((at, n)) = run.replace((bucket, 1)) {
                        *b.entry(at).or_default() += n;
                    }
                }
            }
        }
        if let Some((at, n)) = run {
            *b.entry(at).or_default() += n;
        }
        return Ok(());
    }
    let mut local: HashMap<Vec<Val<'_>>, i64> = HashMap::new();
    let mut local_accs: Accs<'_> = HashMap::new();
    let mut key: Vec<Val<'_>> = Vec::new();
    // `stats` by one dictionary column: each row's group found by its dictionary key (the last
    // slot for null), named afterwards.
    let mut by_key = match kind {
        Kind::Stats { by, .. } => match by.as_slice() {
            [c] => match &arrays[*c] {
                (ColRef::Dict(d, values), false) => {
                    Some((*d, *values, (0..=values.len()).map(|_| None).collect::<Vec<_>>()))
                }
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let keep = plan.row_slots();
    let mut row = RowView { arrays: &arrays, getters, restored: &restored, i: 0, cache: vec![None; arrays.len()] };
    let mut memo = KeyMemo::new(plan, &arrays, always);
    let latency = b.latency.filter(|_| !always).and_then(|r| LatencyBound::of(r, batch));
    // The row whose values `row` holds (its cache is cleared only for rows that are read: most
    // rows of a selective filter are answered by the memo without a value read).
    let mut current = usize::MAX;
    for i in 0..batch.num_rows() {
        if latency.as_ref().is_some_and(|l| l.rules_out(i)) {
            continue;
        }
        let at = |row: &mut RowView<'_, '_>, current: &mut usize| {
            if *current != i {
                row.i = i;
                row.cache.iter_mut().for_each(|c| *c = None);
                *current = i;
            }
        };
        if !always
            && !memo.test(i, || {
                at(&mut row, &mut current);
                eval(&plan.filter, &mut row)
            })
        {
            continue;
        }
        at(&mut row, &mut current);
        match (kind, &mut *part) {
            (Kind::Count { by, .. }, Partial::Count(_)) => {
                let key: Vec<Val<'_>> = by.iter().map(|&c| row.get(c).clone()).collect();
                *local.entry(key).or_default() += 1;
            }
            (Kind::Stats { by, aggs }, Partial::Stats(_)) => {
                let accs = if let Some((d, _, slots)) = &mut by_key {
                    let k = if d.is_valid(i) { d.keys().value(i) as usize } else { slots.len() - 1 };
                    slots[k].get_or_insert_with(|| aggs.iter().map(Acc::new).collect())
                } else {
                    key.clear();
                    key.extend(by.iter().map(|&c| row.get(c).clone()));
                    if !local_accs.contains_key(key.as_slice()) {
                        local_accs.insert(key.clone(), aggs.iter().map(Acc::new).collect());
                    }
                    local_accs.get_mut(key.as_slice()).expect("just inserted")
                };
                for (acc, a) in accs.iter_mut().zip(aggs) {
                    match a.col {
                        Some(c) => acc.add(row.get(c)),
                        None => acc.add(&Val::Null),
                    }
                }
            }
            (Kind::Timeline { interval, col }, Partial::Timeline(b)) => {
                if let Val::Time(t) = row.get(*col) {
                    *b.entry(t.div_euclid(*interval) * interval).or_default() += 1;
                }
            }
            (Kind::Positions, Partial::Positions(p)) => p.push(first_row + i as u64),
            (Kind::Rows, Partial::Rows(r)) => {
                // Only the slots the steps read (a slot only the filter reads stays null).
                let vals = (0..arrays.len())
                    .map(|c| match &keep {
                        Some(keep) if !keep[c] => Val::Null,
                        _ => row.get(c).clone().into_owned(),
                    })
                    .collect();
                r.push(Row { vals, raw: None });
            }
            _ => unreachable!("the partial matches the kind"),
        }
    }
    match part {
        Partial::Count(counts) => {
            for (k, n) in local {
                *counts.entry(k.into_iter().map(Val::into_owned).collect()).or_default() += n;
            }
        }
        Partial::Stats(accs) => {
            if let Some((_, values, slots)) = by_key {
                let null = slots.len() - 1;
                for (k, group) in slots.into_iter().enumerate() {
                    // The key's value as the column reads it ([`ColRef::get`]).
                    let v = if k == null { Val::Null } else { Val::Str(Cow::Borrowed(values.value(k))) };
                    if let Some(group) = group {
                        add_group(&mut local_accs, vec![v], group);
                    }
                }
            }
            merge_accs(accs, local_accs);
        }
        _ => {}
    }
    Ok(())
}
