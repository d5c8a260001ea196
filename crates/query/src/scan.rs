//! The scan: raw logs (through kaq-input's parallel reader) and kaq Parquet files (row groups
//! read in parallel by kaq-columnar's `par_row_groups`), filtered on the decode threads, reduced
//! to the latest stage of each request ([`crate::latest`]), then handed to the stages.
//!
//! Each event gets a global position (its order in the input). Events that match keep their row;
//! events that do not match (or lines the prefilter skipped) leave only their request's identity
//! and what decides its latest stage; the [`Collector`] settles the rule at the end.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::LazyLock;

use kaq_input::{EventHandler, ReadOptions, Reject, Report, Source};
use kaq_schema::Event;
use memchr::memmem::Finder;

use crate::counting::Counting;
use crate::eval::{Columns, eval};
use crate::extract::Getter;
pub use crate::latest::{
    Collector, Finished, Found, IDENTITY_COLUMNS, IdKey, Identities, Latest, NeedsRescan, RequestKey, Streamed,
    Unsettled, finish_one, request_digest, stage_rank,
};
use crate::latest::{Hit, Stage, latest_of, widen_times};
use crate::pipeline::Row;
use crate::plan::{Plan, Step};
use crate::prefilter::Prefilter;
use crate::value::Val;
pub use kaq_columnar::prune::StatBound;
use kaq_columnar::read::{ParError, par_row_groups, par_row_groups_each};

/// Distinct values of the watched slots ([`Plan::watch`], in its order) among the events tested;
/// `None` for a slot with more than `SEEN_MAX` (1000) of them.
#[derive(Debug, Default, Clone)]
pub struct Seen(pub Vec<Option<HashSet<String>>>);

/// Distinct values kept per watched slot: the fields watched have a few each.
const SEEN_MAX: usize = 1000;

impl Seen {
    fn add(&mut self, i: usize, v: &Val<'_>) {
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || Some(HashSet::new()));
        }
        let Some(set) = &mut self.0[i] else { return };
        let mut put = |s: &str| {
            if !set.contains(s) {
                set.insert(s.to_string());
            }
        };
        match v {
            Val::Str(s) => put(s),
            Val::List(l) => l.iter().for_each(|x| {
                if let Val::Str(s) = x {
                    put(s)
                }
            }),
            _ => {}
        }
        if set.len() > SEEN_MAX {
            self.0[i] = None;
        }
    }

    pub(crate) fn merge(&mut self, other: Seen) {
        if self.0.len() < other.0.len() {
            self.0.resize_with(other.0.len(), || Some(HashSet::new()));
        }
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = match (mine.take(), theirs) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    (a.len() <= SEEN_MAX).then_some(a)
                }
                _ => None,
            };
        }
    }
}

/// The [`EventHandler`] of a query.
pub struct Scan<'p> {
    plan: &'p Plan,
    getters: Vec<Getter>,
    prefilter: Option<Prefilter>,
    keep_secrets: bool,
    /// What decoding keeps of each event: what the getters read (the latest-stage rule's and the
    /// identity's fields are always decoded), or everything for whole events.
    fields: kaq_schema::Fields,
    /// The slots a matching row keeps ([`Plan::row_slots`]); the others stay null.
    keep: Option<Vec<bool>>,
    /// How many hits and other records the last chunk finished had: a chunk's vectors start
    /// that large instead of growing from nothing by doubling (chunks are of one size, and a
    /// question that keeps every line copied each hit twice more that way).
    last_sizes: [std::sync::atomic::AtomicUsize; 2],
    /// The first step, counted on the decode threads ([`crate::counting`]): set by
    /// [`scan_counting`] only.
    counting: Option<(Counting, Vec<usize>)>,
    /// Hashes the groups of every chunk alike (keyed at random: values come from the log).
    state: ahash::RandomState,
}

impl Scan<'_> {
    /// The same scan, decoding every line (after [`NeedsRescan`], or for input read only once).
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = None;
        self
    }
}

struct EventCols<'e, 'g> {
    ev: &'e Event<'e>,
    getters: &'g [Getter],
    reused: Option<&'g std::collections::HashSet<IdKey>>,
    cache: Vec<Option<Val<'e>>>,
}

impl<'e> Columns<'e> for EventCols<'e, '_> {
    fn get(&mut self, col: usize) -> &Val<'e> {
        let (ev, reused) = (self.ev, self.reused);
        self.cache[col].get_or_insert_with(|| match &self.getters[col] {
            Getter::IdReused => {
                let reused = reused.expect("the executor sets Plan::reused_ids for plans that read it");
                Val::Bool(reused.contains(&IdKey::new(ev.audit_id.as_deref().unwrap_or(""))))
            }
            g => g.get(ev),
        })
    }
}

impl<'p> Scan<'p> {
    pub fn new(plan: &'p Plan, keep_secrets: bool) -> Scan<'p> {
        let getters: Vec<Getter> =
            plan.slots.iter().map(|s| Getter::new(s.key.as_ref().expect("slots are event fields"))).collect();
        let fields = if plan.whole_events {
            kaq_schema::Fields::ALL
        } else {
            getters.iter().fold(kaq_schema::Fields::BASE, |f, g| f.with(g.fields()))
        };
        Scan {
            plan,
            getters,
            prefilter: Prefilter::new(&plan.prefilter),
            keep_secrets,
            fields,
            keep: plan.row_slots(),
            last_sizes: Default::default(),
            counting: None,
            state: ahash::RandomState::new(),
        }
    }

    /// Tests one event; `text` is its JSON as read (`None` for Parquet rows).
    pub(crate) fn handle(&self, found: &mut Found, ev: &Event<'_>, text: Option<&str>) {
        let pos = found.n;
        found.n += 1;
        if let Some(t) = ev.derived.time {
            found.times = widen_times(found.times, Some((t, t)));
        }
        // Shorten the event's lifetime to this call: columns borrow from it.
        let ev: &Event<'_> = ev;
        let reused = self.plan.reused_ids.as_deref();
        let mut cols = EventCols { ev, getters: &self.getters, reused, cache: vec![None; self.getters.len()] };
        for (i, &slot) in self.plan.watch.iter().enumerate() {
            found.seen.add(i, cols.get(slot));
        }
        let hit = eval(&self.plan.filter, &mut cols);
        if !hit && self.plan.all_stages {
            return;
        }
        let key = RequestKey::of(ev);
        let rank = latest_of(ev);
        if !hit {
            found.others.push(Stage { pos, key, rank, quick: false });
            return;
        }
        if let Some((counting, slots)) = &self.counting {
            for &c in slots {
                cols.get(c);
            }
            let cache = &cols.cache;
            let groups = found.groups.get_or_insert_with(Default::default);
            counting.add(groups, &self.state, |c| cache[c].as_ref().expect("read just above"));
            found.hits.push(Hit { pos, key, rank });
            return;
        }
        // Only the slots the steps read (a slot only the filter reads stays null).
        let vals = (0..self.getters.len())
            .map(|c| match &self.keep {
                Some(keep) if !keep[c] => Val::Null,
                _ => cols.get(c).clone().into_owned(),
            })
            .collect();
        let raw = self.plan.whole_events.then(|| self.event_json(ev, text));
        found.hits.push(Hit { pos, key, rank });
        found.rows.push(Row { vals, raw });
    }

    /// Tests an event restored from Parquet, after the checks decoding makes on logs
    /// ([`kaq_schema::redact::sanitize`]): a file written with `--keep-secrets`, by another tool
    /// or by an older kaq is redacted unless secrets are kept, before the filter sees it.
    pub(crate) fn handle_restored(&self, found: &mut Found, mut ev: Event<'_>) {
        kaq_schema::redact::sanitize(&mut ev, self.keep_secrets);
        self.handle(found, &ev, None);
    }

    /// The event's JSON as written, unless decoding changed the event (then as re-encoded).
    fn event_json(&self, ev: &Event<'_>, text: Option<&str>) -> Box<str> {
        match text {
            Some(t) if !ev.rewritten => t.trim().into(),
            _ => ev.to_json().to_string().into(),
        }
    }
}

impl EventHandler for Scan<'_> {
    type State = Found;
    type Output = Found;

    fn start(&self) -> Found {
        use std::sync::atomic::Ordering::Relaxed;
        let [hits, others] = &self.last_sizes;
        Found {
            hits: Vec::with_capacity(hits.load(Relaxed)),
            rows: Vec::with_capacity(if self.counting.is_some() { 0 } else { hits.load(Relaxed) }),
            others: Vec::with_capacity(others.load(Relaxed)),
            ..Found::default()
        }
    }

    fn event(&self, found: &mut Found, ev: &Event<'_>) {
        self.handle(found, ev, None);
    }

    fn event_with_text(&self, found: &mut Found, ev: &Event<'_>, text: &str) {
        self.handle(found, ev, Some(text));
    }

    fn finish(&self, found: Found) -> Found {
        use std::sync::atomic::Ordering::Relaxed;
        // A little more than the last: the next chunk may hold a few more.
        let [hits, others] = &self.last_sizes;
        hits.store(found.hits.len() + found.hits.len() / 16, Relaxed);
        others.store(found.others.len() + found.others.len() / 16, Relaxed);
        found
    }

    fn fields(&self) -> kaq_schema::Fields {
        self.fields
    }

    fn skip(&self, found: &mut Found, line: &[u8]) -> bool {
        let Some(pf) = &self.prefilter else { return false };
        if pf.may_match(line) {
            return false;
        }
        if self.plan.all_stages {
            found.n += 1;
            return true;
        }
        // The line cannot match, but it may be the latest stage of a request that another line
        // matches: keep its auditID and stage, when they can be read without decoding.
        match quick_id_stage(line) {
            Some((id, stage)) => {
                let rank = (stage, i64::MIN, i64::MIN);
                let key = RequestKey { id: IdKey::new(id), request: 0 };
                found.others.push(Stage { pos: found.n, key, rank, quick: true });
                found.n += 1;
                true
            }
            None => false,
        }
    }
}

/// The top-level `auditID` and the rank of the `stage` of a one-line event, found by byte
/// search: each key must occur exactly once in the line, at depth 1 of its object (so it is the
/// top-level one), and its value must have no escapes. `None` means "decode it properly".
pub fn quick_id_stage(line: &[u8]) -> Option<(&str, u8)> {
    let trimmed = line.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        return None;
    }
    static ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"auditID\""));
    static STAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"stage\""));
    let id = unique_string_value(trimmed, &ID)?;
    let stage = std::str::from_utf8(unique_string_value(trimmed, &STAGE)?).ok()?;
    Some((std::str::from_utf8(id).ok()?, stage_rank(Some(stage))))
}

fn unique_string_value<'a>(line: &'a [u8], key: &Finder<'_>) -> Option<&'a [u8]> {
    let mut it = key.find_iter(line);
    let at = it.next()?;
    if it.next().is_some() || at == 0 || line[at - 1] == b'\\' {
        return None;
    }
    // Occurring once is not enough: with the top-level key missing, the one occurrence could be
    // a nested object's. It must be at depth 1 of the line's object.
    if depth_at(line, at)? != 1 {
        return None;
    }
    let rest = line[at + key.needle().len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[end] == b'"').then(|| &rest[..end])
}

/// The object depth at byte `pos` (which must not be inside a string), counting `{`/`}` outside
/// strings from the start of the line; `None` if `pos` turns out to be inside a string.
fn depth_at(line: &[u8], pos: usize) -> Option<i32> {
    let (mut depth, mut i) = (0i32, 0usize);
    while let Some(off) = memchr::memchr3(b'"', b'{', b'}', &line[i..pos]) {
        let at = i + off;
        match line[at] {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {
                // Skip the string: its closing quote is the first one not escaped.
                let mut j = at + 1;
                loop {
                    let o = memchr::memchr2(b'"', b'\\', line.get(j..)?)?;
                    if line[j + o] == b'\\' {
                        j += o + 2;
                    } else {
                        j += o;
                        break;
                    }
                }
                if j >= pos {
                    return None; // `pos` is inside this string
                }
                i = j + 1;
                continue;
            }
        }
        i = at + 1;
    }
    Some(depth)
}

/// What a scan found, before the stages.
pub struct Scanned {
    /// Matching rows in input order (latest stage of each request unless all stages are kept);
    /// the first step's rows when [`Scanned::counted`] is set.
    pub rows: Vec<Row>,
    /// Reading totals over raw logs.
    pub report: Report,
    /// Rows read from Parquet files.
    pub parquet_rows: u64,
    /// The first rejected records (at most `max_rejects`).
    pub rejects: Vec<Reject>,
    /// Rows whose auditID another request also carries ([`Finished::ids_reused`]).
    pub ids_reused: u64,
    /// The earliest and latest `time` of the events tested: every event read, but for the lines
    /// the prefilter skipped (which cannot match); for [`plan::warn::time_warning`](crate::plan::warn::time_warning).
    pub time_range: Option<(i64, i64)>,
    /// The distinct values of [`Plan::watch`]'s slots among the same events.
    pub seen: Seen,
    /// A streaming scan ([`scan_streaming`]): what it handed on (then `rows` is empty).
    pub streamed: Option<Streamed>,
    /// `Some(n)`: `rows` are the plan's first step's rows, run over the `n` matching rows kept
    /// (counted on the decode threads, or aggregated as settled: [`scan_counting`]); the steps
    /// after it remain to be run.
    pub counted: Option<u64>,
}

/// Where a streaming scan hands its rows ([`scan_streaming`]).
pub struct Stream<'a> {
    /// Called with each row kept, in the order [`scan`] returns them.
    pub emit: &'a mut dyn FnMut(Row) -> std::io::Result<()>,
    /// Bytes (estimated) of matching rows held in memory before the rest go to a temporary file
    /// ([`crate::spill::SPILL_AFTER`]).
    pub spill_after: usize,
}

/// Errors of a scan.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Input(#[from] kaq_input::InputError),
    #[error("{path}: {error}")]
    Parquet { path: PathBuf, error: kaq_columnar::Error },
    /// [`ReadOptions::cancel`] was set: the scan stopped early and its rows are dropped.
    #[error("cancelled")]
    Cancelled,
    /// The query cannot run over this input.
    #[error("{0}")]
    Unsupported(String),
    /// Writing the rows of a streaming scan ([`Stream::emit`]), or holding rows or the
    /// latest-stage rule's records in a temporary file (any scan), failed.
    #[error("{0}")]
    Output(std::io::Error),
}

impl From<ParError> for ScanError {
    fn from(e: ParError) -> ScanError {
        match e {
            ParError::File { path, error } => ScanError::Parquet { path, error },
            ParError::Cancelled => ScanError::Cancelled,
        }
    }
}

/// Gathers identities on the decode threads.
struct IdentityHandler;

impl EventHandler for IdentityHandler {
    type State = Identities;
    type Output = Identities;

    fn start(&self) -> Identities {
        Identities::default()
    }

    fn event(&self, ids: &mut Identities, ev: &Event<'_>) {
        ids.add(ev);
    }

    fn fields(&self) -> kaq_schema::Fields {
        kaq_schema::Fields::BASE
    }

    fn finish(&self, ids: Identities) -> Identities {
        ids
    }
}

/// Every record's request identity in `inputs` (logs, directories and kaq Parquet files; rejected
/// records are not events and count nowhere).
pub fn identities(inputs: &[PathBuf], read: &ReadOptions) -> Result<Identities, ScanError> {
    let expanded = kaq_input::expand(inputs)?;
    expanded.check(read.strict)?;
    let (files, logs) = parquet_and_logs(expanded.sources);
    identities_of(&files, &logs, read)
}

/// The identities of the records of kaq Parquet `files` and of `logs`.
fn identities_of(files: &[PathBuf], logs: &[Source], read: &ReadOptions) -> Result<Identities, ScanError> {
    let mut all = Identities::default();
    kaq_input::read(logs, read, &IdentityHandler, |chunk| {
        if let Some(ids) = chunk.output {
            all.merge(ids);
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap_or_else(|e| match e {})
    .check(read.strict)?;
    all.merge(parquet_identities(files, read.threads.max(1), read.cancel.as_deref())?);
    if read.cancelled() {
        return Err(ScanError::Cancelled);
    }
    Ok(all)
}

/// An expansion's sources as kaq Parquet files (read by row group) and the rest (logs, stdin).
fn parquet_and_logs(sources: Vec<Source>) -> (Vec<PathBuf>, Vec<Source>) {
    let (parquet, logs): (Vec<Source>, Vec<Source>) =
        sources.into_iter().partition(|s| matches!(s, Source::File(p) if kaq_columnar::read::is_parquet(p)));
    let files = parquet.into_iter().filter_map(|s| if let Source::File(p) = s { Some(p) } else { None }).collect();
    (files, logs)
}

/// Every row's request identity in kaq Parquet `files` (a store's segments), reading only the
/// columns identity needs.
pub fn parquet_identities(
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Identities, ScanError> {
    let (found, _) = par_row_groups(files, threads, cancel, &Default::default(), |job| group_identities(job, None))?;
    let mut all = Identities::default();
    for f in found {
        all.merge(f);
    }
    Ok(all)
}

/// The request identities of one row group's records: every row, or the `rows` (positions in
/// the group) given.
fn group_identities(
    job: &kaq_columnar::read::RowGroupJob<'_>,
    rows: Option<&[usize]>,
) -> Result<Identities, kaq_columnar::Error> {
    use parquet::arrow::arrow_reader::RowSelection;
    let b = job.builder();
    let mask = columns_mask(IDENTITY_COLUMNS, b.schema(), b.parquet_schema());
    let mut b = b.with_projection(mask).with_row_groups(vec![job.group]).with_batch_size(8192);
    if let Some(rows) = rows {
        b = b.with_row_selection(RowSelection::from_consecutive_ranges(
            rows.iter().map(|&r| r..r + 1),
            job.rows as usize,
        ));
    }
    let mut ids = Identities::default();
    for batch in b.build()? {
        let batch = batch?;
        let cols = kaq_columnar::Columns::projected(&batch)?;
        for i in 0..batch.num_rows() {
            ids.add(&cols.event(i)?);
        }
    }
    Ok(ids)
}

/// [`parquet_identities`] for a whole store's segments, in two passes: the `id` column alone
/// first; then the identity columns of only the records whose auditID another record also
/// carries (an auditID on one record is one request, and no other request shares it). Those
/// single auditIDs are counted, not kept: the result describes these files alone and is not to
/// be merged with another input's.
pub fn store_identities(
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Identities, ScanError> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let (groups, _) = par_row_groups(files, threads, cancel, &Default::default(), |job| {
        let b = job.builder();
        let mask = columns_mask(&["id"], b.schema(), b.parquet_schema());
        let reader = b.with_projection(mask).with_row_groups(vec![job.group]).with_batch_size(8192).build()?;
        let mut ids = Vec::with_capacity(job.rows as usize);
        for batch in reader {
            let batch = batch?;
            let a = batch.column(0).as_string::<i32>();
            ids.extend((0..a.len()).map(|i| IdKey::new(if a.is_valid(i) { a.value(i) } else { "" })));
        }
        Ok(ids)
    })?;
    let mut count: std::collections::HashMap<&IdKey, u32, ahash::RandomState> =
        std::collections::HashMap::with_capacity_and_hasher(groups.iter().map(Vec::len).sum(), Default::default());
    for k in groups.iter().flatten() {
        let c = count.entry(k).or_default();
        *c = c.saturating_add(1);
    }
    let records = groups.iter().map(|g| g.len() as u64).sum();
    let singles = count.values().filter(|&&c| c == 1).count() as u64;
    // Per row group, the rows (in it) whose auditID is on several records.
    let wanted: Vec<Vec<usize>> = groups.iter().map(|g| (0..g.len()).filter(|&i| count[&g[i]] > 1).collect()).collect();
    drop(count);
    let mut all = Identities::default();
    if wanted.iter().any(|w| !w.is_empty()) {
        let (found, _) = par_row_groups(files, threads, cancel, &Default::default(), |job| {
            let rows = &wanted[job.index];
            if rows.is_empty() { Ok(Identities::default()) } else { group_identities(job, Some(rows)) }
        })?;
        for f in found {
            all.merge(f);
        }
    }
    all.records = records;
    all.singles = singles;
    Ok(all)
}

/// Scans `inputs` (files, directories, `-`) with `plan`'s filter.
pub fn scan(
    plan: &Plan,
    inputs: &[PathBuf],
    read: &ReadOptions,
    max_rejects: usize,
    on_reject: &mut dyn FnMut(&Reject),
) -> Result<Scanned, ScanError> {
    scan_with(plan, inputs, read, max_rejects, on_reject, None, false, BUDGETS)
}

/// [`scan`], running the plan's first step as the events are read when it only counts (`count
/// by …` with bare counts, `timeline`) and the inputs are raw logs: no row is made for a matching
/// event, only a note of the groups it falls in. A first step `stats … by …` with other
/// aggregates, or `top`/`rare`, is fed the rows kept as the latest-stage rule settles them, which
/// wait for it in bounded memory (a temporary file past a budget, as [`scan_streaming`]'s do). Then
/// [`Scanned::counted`] is set and `rows` are that step's rows, the same as
/// [`pipeline::run`](crate::pipeline::run) makes of [`scan`]'s rows with the first step.
/// Otherwise the same as [`scan`].
pub fn scan_counting(
    plan: &Plan,
    inputs: &[PathBuf],
    read: &ReadOptions,
    max_rejects: usize,
    on_reject: &mut dyn FnMut(&Reject),
) -> Result<Scanned, ScanError> {
    scan_with(plan, inputs, read, max_rejects, on_reject, None, true, BUDGETS)
}

/// [`scan`], handing each row kept to `stream.emit` instead of returning them: the same rows in
/// the same order, but the matching rows the latest-stage rule must hold until the input is read
/// stay in memory only up to `stream.spill_after` bytes, the rest in an unnamed temporary file.
/// What stays in memory is what decides the latest stage: the position, request identity and
/// stage of each matching event (and of the others, as for [`scan`]). Rows are emitted after the
/// whole input is read, never before (a later stage may still supersede a row).
pub fn scan_streaming(
    plan: &Plan,
    inputs: &[PathBuf],
    read: &ReadOptions,
    max_rejects: usize,
    on_reject: &mut dyn FnMut(&Reject),
    stream: &mut Stream<'_>,
) -> Result<Scanned, ScanError> {
    scan_with(plan, inputs, read, max_rejects, on_reject, Some(stream), false, BUDGETS)
}

/// A first step fed the rows kept one at a time, as the latest-stage rule settles them.
enum FirstStep<'p> {
    Aggregate(crate::pipeline::Aggregator<'p>),
    Top(crate::pipeline::Topper<'p>),
}

impl FirstStep<'_> {
    fn add(&mut self, row: &Row) {
        match self {
            FirstStep::Aggregate(a) => a.add(row),
            FirstStep::Top(t) => t.add(row),
        }
    }

    fn finish(self) -> Vec<Row> {
        match self {
            FirstStep::Aggregate(a) => a.finish(),
            FirstStep::Top(t) => t.finish(),
        }
    }
}

/// What a scan holds in memory before it writes to a temporary file: the records the
/// latest-stage rule compares ([`Collector::records_after`]), and the bytes of rows kept for a
/// first step `stats` ([`Collector::streaming`]; a streaming scan's rows: [`Stream::spill_after`]).
#[derive(Debug, Clone, Copy)]
struct Budgets {
    records: usize,
    rows: usize,
}

const BUDGETS: Budgets = Budgets { records: crate::spill::SPILL_RECORDS, rows: crate::spill::SPILL_AFTER };

#[allow(clippy::too_many_arguments)]
fn scan_with(
    plan: &Plan,
    inputs: &[PathBuf],
    read: &ReadOptions,
    max_rejects: usize,
    on_reject: &mut dyn FnMut(&Reject),
    mut stream: Option<&mut Stream<'_>>,
    count: bool,
    budgets: Budgets,
) -> Result<Scanned, ScanError> {
    let expanded = kaq_input::expand(inputs)?;
    // Directory entries that cannot be read are reported with the read errors, and passed over.
    expanded.check(read.strict)?;
    let unreadable = expanded.messages();
    let (files, logs) = parquet_and_logs(expanded.sources);
    let with_reused;
    let plan = if plan.needs_reused_ids() {
        if logs.iter().any(|s| matches!(s, Source::Stdin)) {
            return Err(ScanError::Unsupported(
                "`id_reused` reads the input twice (once to find the auditIDs several requests carry): give files, not stdin"
                    .into(),
            ));
        }
        let ids = identities_of(&files, &logs, read)?;
        with_reused = Plan { reused_ids: Some(std::sync::Arc::new(ids.reused())), ..plan.clone() };
        &with_reused
    } else {
        plan
    };
    let mut handler = Scan::new(plan, read.decode.keep_secrets);
    // Parquet rows are read and merged otherwise: their plans make rows.
    if count && stream.is_none() && files.is_empty() {
        handler.counting = Counting::of(plan).map(|c| {
            let slots = c.slots();
            (c, slots)
        });
    }
    // A first step `stats … by …` that is not only counts, or `top`/`rare`: fed the rows kept as
    // the rule settles them, which meanwhile wait in bounded memory (a temporary file past a
    // budget), not all held for the step.
    let first_step = || match plan.steps.first() {
        Some((Step::Aggregate { by, aggs }, _)) => {
            Some(FirstStep::Aggregate(crate::pipeline::Aggregator::new(by, aggs)))
        }
        Some((Step::Top { limit, col, by, rare }, _)) => {
            Some(FirstStep::Top(crate::pipeline::Topper::new(*limit, *col, by, *rare)))
        }
        _ => None,
    };
    let aggregate = count && stream.is_none() && handler.counting.is_none() && first_step().is_some();
    if logs.iter().any(|s| matches!(s, Source::Stdin)) {
        handler = handler.without_prefilter(); // read once: no second pass possible
    }
    let mut rejects = Vec::new();
    let mut first = true;
    loop {
        let mut collect = match &stream {
            Some(s) => Collector::streaming(s.spill_after),
            None if aggregate => Collector::streaming(budgets.rows),
            None => Collector::default(),
        }
        .records_after(budgets.records);
        let mut report = kaq_input::read(&logs, read, &handler, |chunk| {
            for r in chunk.rejects.iter().filter(|_| first) {
                on_reject(r);
                if rejects.len() < max_rejects {
                    rejects.push(r.clone());
                }
            }
            if let Some(found) = chunk.output {
                collect.add(found);
            }
            // A temporary file could not be written (no room in $TMPDIR): stop reading.
            if collect.failed() { Err(()) } else { Ok(()) }
        })
        .map_err(|()| {
            let e = collect.take_error().unwrap_or_else(|| std::io::Error::other("a temporary file failed"));
            ScanError::Output(e)
        })?;
        report.check(read.strict)?;
        report.read_errors.splice(0..0, unreadable.iter().cloned());
        let parquet_rows = scan_parquet(&handler, &files, read, &mut collect)?;
        if read.cancelled() {
            return Err(ScanError::Cancelled);
        }
        let (time_range, seen) = (collect.times, std::mem::take(&mut collect.seen));
        let finished = match &mut stream {
            Some(s) => collect
                .finish_streaming(plan.all_stages, s.emit)
                .map(|r| {
                    r.map(|st| (Finished { rows: Vec::new(), ids_reused: st.ids_reused }, Some(st), None))
                        .map_err(ScanError::Output)
                })
                .map_err(Unsettled::from),
            None if aggregate && let Some(mut step) = first_step() => {
                let settled = collect.finish_streaming(plan.all_stages, &mut |row| {
                    step.add(&row);
                    Ok(())
                });
                settled
                    .map(|r| {
                        r.map(|st| (Finished { rows: step.finish(), ids_reused: st.ids_reused }, None, Some(st.rows)))
                            .map_err(ScanError::Output)
                    })
                    .map_err(Unsettled::from)
            }
            None => match &handler.counting {
                Some((counting, _)) => {
                    collect.finish_first_step(plan.all_stages, counting).map(|(f, n)| Ok((f, None, Some(n))))
                }
                None => collect.finish_counting(plan.all_stages).map(|f| Ok((f, None, None))),
            },
        };
        match finished {
            Ok(done) => {
                let (Finished { rows, ids_reused }, streamed, counted) = done?;
                return Ok(Scanned {
                    rows,
                    report,
                    parquet_rows,
                    rejects,
                    ids_reused,
                    time_range,
                    seen,
                    streamed,
                    counted,
                });
            }
            // Rare: a skipped line may be the latest stage of a matching request. Decode all.
            Err(Unsettled::Rescan) => {
                handler = handler.without_prefilter();
                first = false;
            }
            Err(Unsettled::Io(e)) => return Err(ScanError::Output(e)),
        }
    }
}

/// The columns a Parquet scan with `plan` must read (`None`: all of them, for whole events):
/// those of its fields, and those the latest-stage rule reads unless every stage is kept.
pub fn projection(plan: &Plan) -> Option<Vec<&'static str>> {
    (!plan.whole_events).then(|| slot_columns(plan, !plan.all_stages))
}

/// The columns of `plan`'s fields, and with `latest` those the latest-stage rule reads.
fn slot_columns(plan: &Plan, latest: bool) -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = plan
        .slots
        .iter()
        .flat_map(|s| Getter::new(s.key.as_ref().expect("slots are event fields")).columns().iter().copied())
        .collect();
    if latest {
        cols.extend(IDENTITY_COLUMNS);
    }
    // Redaction of a restored body reads which resource and path the event is about.
    if cols.iter().any(|c| matches!(*c, "request" | "response")) {
        cols.extend(["resource", "uri"]);
    }
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// The projection of [`projection`]'s columns in a file's schema.
pub(crate) fn projection_mask(
    plan: &Plan,
    arrow: &arrow_schema::Schema,
    parquet: &parquet::schema::types::SchemaDescriptor,
) -> parquet::arrow::ProjectionMask {
    match projection(plan) {
        None => parquet::arrow::ProjectionMask::all(),
        Some(cols) => columns_mask(&cols, arrow, parquet),
    }
}

/// The projection of the named columns in a file's schema.
pub(crate) fn columns_mask(
    cols: &[&str],
    arrow: &arrow_schema::Schema,
    parquet: &parquet::schema::types::SchemaDescriptor,
) -> parquet::arrow::ProjectionMask {
    parquet::arrow::ProjectionMask::roots(
        parquet,
        arrow.fields().iter().enumerate().filter(|(_, f)| cols.contains(&f.name().as_str())).map(|(i, _)| i),
    )
}

/// Reads the given rows (sorted row numbers) of a kaq Parquet file, only the columns `plan`
/// needs, and tests each as the event at its row number; the findings count `total` rows, so that
/// positions stay row numbers when several files' findings are collected (a store's segments, for
/// the latest-stage rule: [`Collector`]).
pub fn test_rows(plan: &Plan, path: &std::path::Path, rows: &[u64], total: u64) -> Result<Found, ScanError> {
    read_rows(plan, projection(plan).as_deref(), path, rows, total)
}

/// [`test_rows`] reading the given columns (`None`: every column, for whole events). They must
/// include [`projection`]'s (a store's physical plan decides them, from that function).
pub fn read_rows(
    plan: &Plan,
    columns: Option<&[&'static str]>,
    path: &std::path::Path,
    rows: &[u64],
    total: u64,
) -> Result<Found, ScanError> {
    let mut found = Found::default();
    read_rows_each(plan, columns, path, rows, &mut |f| {
        found.merge(f);
        Ok(())
    })?;
    found.seek(total);
    Ok(found)
}

/// [`read_rows`], handing on the findings a batch of rows at a time (positions are row numbers of
/// the file; each batch's [`Found`] counts up to its last row, not to the file's end), so that a
/// caller collecting them in bounded memory ([`Collector::streaming`], with
/// [`Collector::add_at`]) never holds a whole file's rows.
pub fn read_rows_each(
    plan: &Plan,
    columns: Option<&[&'static str]>,
    path: &std::path::Path,
    rows: &[u64],
    each: &mut dyn FnMut(Found) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let named = |error: kaq_columnar::Error| ScanError::Parquet { path: path.to_path_buf(), error };
    if !rows.is_empty() {
        let handler = Scan::new(plan, false);
        let file = std::fs::File::open(path)
            .map_err(|error| named(kaq_columnar::Error::Io { path: path.to_path_buf(), error }))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| named(e.into()))?;
        let sizes: Vec<u64> = b.metadata().row_groups().iter().map(|g| g.num_rows() as u64).collect();
        let (groups, selection) = groups_of_rows(&sizes, rows);
        // Rows read one run at a time while runs are few: a mask (parquet's choice when runs
        // average under 32 rows) decodes every row of every column of the groups and filters
        // afterwards, so 2500 wanted rows close together cost whole row groups of whole events.
        let runs = selection.iter().count();
        let kept: usize = selection.iter().map(|s| s.row_count).sum();
        let policy = if runs * 8 < kept {
            parquet::arrow::arrow_reader::RowSelectionPolicy::Selectors
        } else {
            parquet::arrow::arrow_reader::RowSelectionPolicy::default()
        };
        let mask = match columns {
            None => parquet::arrow::ProjectionMask::all(),
            Some(cols) => columns_mask(cols, b.schema(), b.parquet_schema()),
        };
        // Only the row groups that hold a wanted row are opened: a row selection over the whole
        // file would still open every row group's column chunks (a decompressor each) and read
        // their page headers to skip them, a cost that grows with the file, not the answer.
        let reader = b
            .with_projection(mask)
            .with_row_groups(groups)
            .with_row_selection(selection)
            .with_row_selection_policy(policy)
            .with_batch_size(8192)
            .build()
            .map_err(|e| named(e.into()))?;
        let mut k = 0;
        for batch in reader {
            let batch = batch.map_err(|e| named(e.into()))?;
            let cols = kaq_columnar::Columns::projected(&batch).map_err(named)?;
            let mut found = Found::default();
            for i in 0..batch.num_rows() {
                found.seek(rows[k]);
                handler.handle_restored(&mut found, cols.event(i).map_err(named)?);
                k += 1;
            }
            each(found)?;
        }
    }
    Ok(())
}

/// The row groups (of the given sizes, in file order) that hold some of `rows` (sorted, distinct
/// row numbers of the file), and the selection of those rows among the rows of those groups alone.
/// Rows past the last group are left out.
pub fn groups_of_rows(sizes: &[u64], rows: &[u64]) -> (Vec<usize>, parquet::arrow::arrow_reader::RowSelection) {
    let mut groups = Vec::new();
    let mut ranges = Vec::with_capacity(rows.len());
    // `start`: the group's first row in the file; `kept`: rows of the groups kept before it.
    let (mut start, mut kept, mut k) = (0u64, 0u64, 0usize);
    for (g, &n) in sizes.iter().enumerate() {
        let end = start + n;
        let first = k;
        while k < rows.len() && rows[k] < end {
            if rows[k] >= start {
                let at = (kept + rows[k] - start) as usize;
                ranges.push(at..at + 1);
            }
            k += 1;
        }
        if k > first {
            groups.push(g);
            kept += n;
        }
        start = end;
    }
    (groups, parquet::arrow::arrow_reader::RowSelection::from_consecutive_ranges(ranges.into_iter(), kept as usize))
}

/// Reads Parquet files row group by row group on `threads` threads, restoring each row to an
/// event and testing it; the findings are added in file and row-group order, so positions (and so
/// the latest-stage rule) are the same as reading the files one row after another.
fn scan_parquet(
    handler: &Scan<'_>,
    files: &[PathBuf],
    read: &ReadOptions,
    collect: &mut Collector,
) -> Result<u64, ScanError> {
    // No row group is skipped here: under the latest-stage rule any row may be a later stage.
    // Findings are added in order as they come, with as many row groups under way as threads:
    // a streaming collector then holds a few row groups' rows, not the files'.
    let threads = read.threads.max(1);
    let mut rows = 0;
    let job = |job: &kaq_columnar::read::RowGroupJob<'_>| {
        let b = job.builder();
        let mask = projection_mask(handler.plan, b.schema(), b.parquet_schema());
        let reader = b.with_projection(mask).with_row_groups(vec![job.group]).with_batch_size(8192).build()?;
        let mut found = Found::default();
        let mut n = 0;
        for batch in reader {
            if read.cancelled() {
                break; // the whole scan reports Cancelled
            }
            let batch = batch?;
            let cols = kaq_columnar::Columns::projected(&batch)?;
            for i in 0..batch.num_rows() {
                handler.handle_restored(&mut found, cols.event(i)?);
            }
            n += batch.num_rows() as u64;
        }
        Ok((found, n))
    };
    let mut add = |(f, n): (Found, u64)| {
        rows += n;
        collect.add(f);
    };
    par_row_groups_each(files, threads, read.cancel.as_deref(), &Default::default(), threads, job, &mut add)?;
    if read.cancelled() {
        return Err(ScanError::Cancelled);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log whose requests' stages lie far apart and out of order, with auditIDs that two
    /// requests carry, Panics, and lines of other verbs for the prefilter to skip.
    fn far_apart_log(dir: &std::path::Path) -> PathBuf {
        use std::fmt::Write as _;
        let ev = |id: &str, stage: &str, verb: &str, user: &str, ns: &str, received: u32, done_ms: u32| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"{stage}","requestURI":"/api/v1/namespaces/{ns}/pods/p{received}","verb":"{verb}","user":{{"username":"{user}"}},"sourceIPs":["10.0.0.{}"],"objectRef":{{"resource":"pods","namespace":"{ns}","name":"p{received}"}}{},"requestReceivedTimestamp":"2026-11-20T00:{:02}:{:02}.000000Z","stageTimestamp":"2026-11-20T00:{:02}:{:02}.{:03}000Z"}}"#,
                received % 7,
                // No response yet when received.
                match (stage, received % 5) {
                    ("RequestReceived", _) => String::new(),
                    (_, 0) => r#","responseStatus":{"code":403}"#.to_string(),
                    _ => r#","responseStatus":{"code":200}"#.to_string(),
                },
                received / 60 % 60,
                received % 60,
                (received + done_ms / 1000) / 60 % 60,
                (received + done_ms / 1000) % 60,
                done_ms % 1000,
            )
        };
        let mut text = String::new();
        let mut later = Vec::new();
        for i in 0..2_000u32 {
            let id =
                if i % 13 == 0 { format!("client-id-{}", i % 5) } else { format!("00000000-0000-0000-0000-{i:012x}") };
            let verb = ["get", "list", "delete", "update"][(i % 4) as usize];
            let user = ["alice", "bob", "carol"][(i % 3) as usize];
            let ns = ["prod", "dev"][(i % 2) as usize];
            let done = (i * 37) % 3000;
            let _ = writeln!(text, "{}", ev(&id, "RequestReceived", verb, user, ns, i, 0));
            let last = if i % 97 == 0 { "Panic" } else { "ResponseComplete" };
            if i % 3 == 0 {
                // Far later in the log.
                later.push(ev(&id, last, verb, user, ns, i, done));
            } else {
                let _ = writeln!(text, "{}", ev(&id, last, verb, user, ns, i, done));
            }
        }
        later.reverse();
        for l in later {
            let _ = writeln!(text, "{l}");
        }
        let p = dir.join("far.log");
        std::fs::write(&p, text).expect("write the log");
        p
    }

    /// Whatever the memory budgets, a scan gives the same answer: records of the latest-stage
    /// rule written to a temporary file and settled a partition at a time, and rows kept for a
    /// first step `stats` held in a temporary file, give what holding everything gives.
    #[test]
    fn budgets_do_not_change_answers() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = far_apart_log(dir.path());
        let read = ReadOptions { threads: 2, ..ReadOptions::default() };
        let answer = |plan: &Plan, count: bool, stream: bool, budgets: Budgets| -> Vec<String> {
            let mut streamed = Vec::new();
            let mut emit = |r| {
                streamed.push(r);
                Ok(())
            };
            let mut st = Stream { emit: &mut emit, spill_after: budgets.rows };
            let s = scan_with(
                plan,
                std::slice::from_ref(&log),
                &read,
                0,
                &mut |_| {},
                stream.then_some(&mut st),
                count,
                budgets,
            )
            .expect("scan");
            let mut steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
            if s.counted.is_some() {
                steps.remove(0);
            }
            let rows = if stream { std::mem::take(&mut streamed) } else { s.rows };
            let mut out: Vec<String> = crate::pipeline::run(&steps, rows)
                .iter()
                .map(|r| crate::output::json_line(r, plan.output_columns()))
                .collect();
            out.push(format!("reused {}", s.ids_reused));
            out
        };
        for q in [
            "",
            "verb:delete",
            "code:403 | count by user",
            "| stats p99(latency), dc(user), count by verb, ns",
            "verb:get | stats avg(latency), max(time) by ns",
            "| timeline 1m by verb",
            // Received stages match, and most complete ones (later, non-matching) supersede them.
            "latency<1s | count by verb, user",
            "-code:200 | stats count by ns",
            "| top 2 user by verb",
            "latency<1s | rare 1 ns | sort -count",
        ] {
            for all_stages in [false, true] {
                let opts = crate::Options { all_stages, ..crate::Options::default() };
                let plan = crate::compile(q, &opts).unwrap_or_else(|_| panic!("`{q}` compiles"));
                let whole = answer(&plan, false, false, BUDGETS);
                assert!(whole.len() > 1, "`{q}` has an answer");
                for budgets in [Budgets { records: 0, rows: 0 }, Budgets { records: 500, rows: 3_000 }] {
                    for (count, stream) in [(false, false), (true, false), (false, plan.steps.is_empty())] {
                        assert_eq!(
                            answer(&plan, count, stream, budgets),
                            whole,
                            "`{q}` all_stages={all_stages} count={count} stream={stream} {budgets:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn seen_values_are_merged_and_capped() {
        let (mut a, mut b) = (Seen::default(), Seen::default());
        a.add(0, &Val::Str("get".into()));
        b.add(1, &Val::List(vec![Val::Str("x".into()), Val::Str("y".into())]));
        b.add(0, &Val::Str("list".into()));
        a.merge(b);
        let sorted = |s: &Option<HashSet<String>>| {
            let mut v: Vec<String> = s.clone().unwrap().into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&a.0[0]), ["get", "list"]);
        assert_eq!(sorted(&a.0[1]), ["x", "y"]);
        for i in 0..=SEEN_MAX {
            a.add(1, &Val::Str(i.to_string().into()));
        }
        assert!(a.0[1].is_none(), "past the cap: unknown");
        a.add(1, &Val::Str("z".into()));
        a.merge(Seen(vec![Some(HashSet::new()), Some(HashSet::new())]));
        assert!(a.0[1].is_none() && a.0[0].is_some());
    }

    #[test]
    fn quick_id_and_stage() {
        let t = r#""requestReceivedTimestamp":"1970-01-01T00:00:01.000000Z","stageTimestamp":"1970-01-01T00:00:02.000000Z""#;
        let line = format!(r#"{{"kind":"Event","auditID":"7c1a","stage" : "ResponseComplete","verb":"get",{t}}}"#);
        assert_eq!(quick_id_stage(line.as_bytes()), Some(("7c1a", 2)));
        // A nested second auditID, an escape, no stage, no received time, or a truncated line:
        // decode properly.
        let q = |s: String| quick_id_stage(s.as_bytes()).map(|(id, l)| (id.to_string(), l));
        assert_eq!(q(format!(r#"{{"auditID":"a","stage":"x",{t},"requestObject":{{"auditID":"b"}}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a\u0062","stage":"x",{t}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a",{t}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a","stage":"x",{t}"#)), None);
        // The top-level stage missing, a nested one present: not read as the event's stage.
        assert_eq!(q(format!(r#"{{"auditID":"a",{t},"requestObject":{{"stage":"RequestReceived"}}}}"#)), None);
        // Key text inside a string value is skipped over.
        assert_eq!(
            q(format!(r#"{{"auditID":"a","uri":"x\"stage\":\"y","stage":"Panic",{t}}}"#)),
            Some(("a".into(), 3))
        );
        assert_eq!(q(r#"{"auditID":"a","stage":"Panic"}"#.into()), Some(("a".into(), 3)));
    }

    #[test]
    fn uuids_pack() {
        assert_eq!(IdKey::new("33dcd77f-f179-42d2-a48b-96628f3c4be3"), IdKey::uuid(0x33dcd77ff17942d2a48b96628f3c4be3));
        assert!(matches!(IdKey::new("33DCD77F-f179-42d2-a48b-96628f3c4be3"), IdKey::Other(_)));
        assert!(matches!(IdKey::new("33dcd77f-f179-42d2-a48b-96628f3c4bez"), IdKey::Other(_)));
        assert!(matches!(IdKey::new("33dcd77f+f179-42d2-a48b-96628f3c4be3"), IdKey::Other(_)));
        assert_eq!(IdKey::new("00000000-0000-0000-0000-000000000001"), IdKey::uuid(1));
        let id = "33dcd77f-f179-42d2-a48b-96628f3c4be3";
        assert_eq!(IdKey::new(id).text(), id);
        assert_eq!(stage_rank(Some("RequestReceived")), 0);
        assert_eq!(stage_rank(None), 2);
    }
}
