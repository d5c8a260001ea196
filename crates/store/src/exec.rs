//! Running a query over the store's segments.

use super::*;
use crate::physical::{Access, Fallback, Latest, PhysicalPlan, Projection, SegmentPlan, TraceStep, indexes_hold};

impl Store {
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
        s.push_str(&format!("store:     plan: {}\n", self.physical_plan(plan)));
        for step in &r.trace {
            s.push_str(&format!("store:     {step}\n"));
        }
        Ok(s)
    }

    /// Runs a compiled plan over the store: [`Store::physical_plan`] decides how, and this carries
    /// it out.
    ///
    /// A compaction or prune commits a new manifest and then deletes the files of the segments it
    /// replaced. A handle holding an older manifest (opened before, or a query that reaches a file
    /// just deleted) reads the current manifest and starts again: a file gone is a newer commit,
    /// never a missing answer.
    pub fn run(&self, plan: &kaq_query::Plan, read: &ReadOptions) -> Result<QueryResult, Error> {
        self.run_with(plan, read, None, None)
    }

    /// [`Store::run`], handing the rows to `stream.emit` instead of returning them
    /// ([`QueryResult::streamed`] says what was handed on; `rows` stays empty). Without stages
    /// after the search, the matching rows held for the latest-stage rule stay in memory only up to
    /// `stream.spill_after` bytes (the rest in a temporary file), and are emitted once the rule is
    /// settled; with stages, the rows after them are emitted.
    pub fn run_streaming(
        &self,
        plan: &kaq_query::Plan,
        read: &ReadOptions,
        stream: &mut kaq_query::scan::Stream<'_>,
    ) -> Result<QueryResult, Error> {
        // A run that handed rows on is never run again (a newer manifest): they would be twice.
        let emitted = std::cell::Cell::new(false);
        let inner = &mut *stream.emit;
        let mut emit = |r: kaq_query::Row| {
            emitted.set(true);
            inner(r)
        };
        let mut counted = kaq_query::scan::Stream { emit: &mut emit, spill_after: stream.spill_after };
        self.run_with(plan, read, Some(&mut counted), Some(&emitted))
    }

    fn run_with(
        &self,
        plan: &kaq_query::Plan,
        read: &ReadOptions,
        mut stream: Option<&mut kaq_query::scan::Stream<'_>>,
        emitted: Option<&std::cell::Cell<bool>>,
    ) -> Result<QueryResult, Error> {
        /// Newer manifests taken before giving up (each is a commit that replaced segments during
        /// this query).
        const RETRIES: usize = 16;
        let mut fresh: Option<Store> = None;
        for _ in 0..RETRIES {
            let store = fresh.as_ref().unwrap_or(self);
            // Under the latest-stage rule any live segment may be read, if only for later stages.
            if !store.files_missing() {
                match store.run_once(plan, read, stream.as_deref_mut()) {
                    Ok(r) => return Ok(r),
                    // An error writing rows is not a file gone; and rows handed on must not be
                    // handed on twice by a run again.
                    Err(e @ Error::Scan(kaq_query::scan::ScanError::Output(_))) => return Err(e),
                    Err(e) if emitted.is_some_and(|c| c.get()) => return Err(e),
                    Err(e) if !store.files_missing() => return Err(e),
                    Err(e) if read.cancelled() => return Err(e),
                    Err(_) => {} // a file went away meanwhile
                }
            }
            let next = Store::open(&self.dir)?;
            if next.manifest.generation == store.manifest.generation {
                break; // gone without a newer commit: the error below names the file
            }
            fresh = Some(next);
        }
        fresh.as_ref().unwrap_or(self).run_once(plan, read, stream)
    }

    /// One run over this handle's manifest.
    pub(crate) fn run_once(
        &self,
        plan: &kaq_query::Plan,
        read: &ReadOptions,
        stream: Option<&mut kaq_query::scan::Stream<'_>>,
    ) -> Result<QueryResult, Error> {
        // Files truncated or grown since their commit are refused (a `stat` each).
        self.check_sizes()?;
        let mut physical = self.physical_plan(plan);
        if physical.identities_first {
            // `id_reused` is a property of the whole store: the identities of every record first.
            let ids = self.identities(read)?;
            physical.plan.reused_ids = Some(std::sync::Arc::new(ids.reused()));
        }
        self.execute(&physical, read, stream)
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
        Ok(kaq_query::scan::store_identities(&self.segment_paths(), read.threads.max(1), read.cancel.as_deref())?)
    }

    /// Every record (each stage) whose auditID is one of `ids`, as JSON lines in the store's
    /// order: what a live detection reads again when new events share an auditID with held ones
    /// (`kaq watch`). Found through each segment's auditID bloom filters; a file
    /// replaced meanwhile (a merge) makes it start again on the current manifest, as
    /// [`Store::run`] does.
    pub fn records_with_ids(&self, ids: &[String]) -> Result<Vec<String>, Error> {
        let opts = Options { all_stages: true, ..Options::default() };
        let plan = kaq_query::compile("", &opts).map_err(Error::Query)?;
        let once = |store: &Store| -> Result<Vec<String>, Error> {
            store.check_sizes()?;
            let mut collect = kaq_query::scan::Collector::default();
            for (s, path) in store.manifest.segments.iter().zip(store.segment_paths()) {
                let rows = ids::rows_with_ids(&path, ids)?;
                collect.add(kaq_query::scan::read_rows(&plan, None, &path, &rows, s.rows)?);
            }
            let rows = collect
                .finish(true)
                .map_err(|_| Error::Index { path: store.dir.clone(), error: index::IndexError::Skipped })?;
            Ok(rows.iter().map(|r| kaq_query::output::json_line(r, plan.output_columns())).collect())
        };
        let mut fresh: Option<Store> = None;
        for _ in 0..16 {
            let store = fresh.as_ref().unwrap_or(self);
            match once(store) {
                Ok(r) => return Ok(r),
                Err(e) if !store.files_missing() => return Err(e),
                Err(_) => {}
            }
            let next = Store::open(&self.dir)?;
            if next.manifest.generation == store.manifest.generation {
                break;
            }
            fresh = Some(next);
        }
        once(fresh.as_ref().unwrap_or(self))
    }

    /// Carries out a physical plan: finds the rows (as `physical.access` says), settles the
    /// latest stage (`physical.latest`), runs the remaining steps, and records each in the trace.
    fn execute(
        &self,
        physical: &PhysicalPlan,
        read: &ReadOptions,
        mut stream: Option<&mut kaq_query::scan::Stream<'_>>,
    ) -> Result<QueryResult, Error> {
        let plan = &physical.plan;
        // Without stages, the finding step hands the rows on itself, in bounded memory.
        let mut streamed = None;
        let mut find_stream = if plan.steps.is_empty() { stream.as_deref_mut() } else { None };
        let m = physical.segments.len();
        let pruned = physical.pruned();
        let searched = m - pruned;
        // The files the finding step reads: those searched, or every one for the full scan's
        // latest-stage rule.
        let all_read = physical.latest == Latest::InScan && physical.access != Access::Nothing;
        let paths: Vec<PathBuf> =
            physical.segments.iter().filter(|s| s.searched || all_read).map(|s| s.path.clone()).collect();
        let rows_in = physical.segments.iter().filter(|s| s.searched || all_read).map(|s| s.rows).sum();
        let mut trace = vec![TraceStep::Segments {
            searched: if all_read { m } else { searched },
            total: m,
            pruned,
            rows: rows_in,
            all_read,
            lookup: physical.latest == Latest::Lookup,
        }];
        if physical.latest == Latest::OnlyRecords {
            trace.push(TraceStep::OnlyRecords);
        }
        let mut steps: Vec<kaq_query::plan::Step> = plan.steps.iter().map(|s| s.0.clone()).collect();
        let mut notes = Vec::new();
        let mut access = physical.access.clone();
        let mut by_index = None;
        if matches!(access, Access::Index { .. } | Access::ColumnTest { .. }) {
            by_index = self.run_narrowed(physical, read, &mut trace, find_stream.as_deref_mut())?;
            if by_index.is_none() {
                access = Access::Columnar { columns: kaq_query::columnar::read_columns(plan) };
            }
        }
        // The columns the rows were read from: the plan's, or the columnar answer's when the
        // index found too many candidates.
        if access != Access::Nothing {
            let projection =
                if access == physical.access { physical.projection.clone() } else { Projection::of(plan, &access) };
            let read = match projection {
                Projection::All => None,
                Projection::Columns(c) => Some(c),
            };
            trace.insert(1, TraceStep::Columns { read, of: Projection::total() });
        }
        let mut ids_reused = 0;
        let (rows, rows_read) = if access == Access::Nothing {
            (Vec::new(), 0)
        } else if let Some((rows, rows_read, reused, st)) = by_index {
            ids_reused = reused;
            streamed = st;
            (rows, rows_read)
        } else if let Access::Columnar { columns } = &access {
            let scanned = kaq_query::columnar::scan(plan, &paths, read.threads.max(1), read.cancel.as_deref())
                .expect("the physical plan chose the columnar path only where it applies")?;
            let first_step = if scanned.first_step_done {
                notes.extend(kaq_query::pipeline::note(&steps.remove(0), &scanned.rows));
                Some(matches!(&plan.steps[0].0, kaq_query::plan::Step::Aggregate { aggs, .. }
                    if aggs.iter().any(|a| a.col.is_some())))
            } else {
                None
            };
            trace.push(TraceStep::Columnar {
                columns: columns.clone(),
                rows_read: scanned.rows_read,
                groups_skipped: scanned.groups_skipped,
                first_step,
                rows: scanned.rows.len() as u64,
            });
            (scanned.rows, scanned.rows_read)
        } else {
            // Every row of these files is read: their CRC-32s first, so damage is not answered.
            self.check_whole(&paths)?;
            let scanned = match find_stream {
                Some(s) => kaq_query::scan::scan_streaming(plan, &paths, read, 0, &mut |_| {}, s)?,
                None => kaq_query::scan::scan(plan, &paths, read, 0, &mut |_| {})?,
            };
            ids_reused = scanned.ids_reused;
            streamed = scanned.streamed;
            let kept = scanned.streamed.map_or(scanned.rows.len() as u64, |s| s.rows);
            trace.push(TraceStep::Scan { restored: scanned.parquet_rows, kept });
            (scanned.rows, scanned.parquet_rows)
        };
        let first = plan.steps.len() - steps.len();
        let mut rows = rows;
        for (i, step) in steps.iter().enumerate() {
            rows = kaq_query::pipeline::run_noting(std::slice::from_ref(step), rows, &mut notes);
            trace.push(TraceStep::Step { n: first + i + 1, rows: rows.len() as u64 });
        }
        // Rows not handed on while found (an aggregation's, the columnar answer's): now.
        if let (Some(s), None) = (stream, streamed) {
            let n = rows.len() as u64;
            for r in std::mem::take(&mut rows) {
                (s.emit)(r).map_err(|e| Error::Scan(kaq_query::scan::ScanError::Output(e)))?;
            }
            streamed = Some(kaq_query::scan::Streamed { rows: n, ids_reused, spilled: 0 });
        }
        Ok(QueryResult {
            columns: plan.output_columns().to_vec(),
            whole_events: plan.whole_events,
            rows,
            segments_read: if all_read { m } else { searched },
            segments_pruned: if all_read { 0 } else { pruned },
            rows_read,
            ids_reused,
            trace,
            notes,
            streamed,
        })
    }

    /// The narrowed paths ([`Access::Index`], [`Access::ColumnTest`]): the index (or the
    /// columns of the filter's fields) gives each searched segment's candidate rows; only those
    /// are read and tested. Then, for the latest-stage rule, every row of every segment, searched
    /// or not, with a matching auditID is read too: a later stage of a matching request may lie
    /// outside the time bounds. `None` when the index found too many candidates and the plan's
    /// fallback is the columnar answer.
    fn run_narrowed(
        &self,
        physical: &PhysicalPlan,
        read: &ReadOptions,
        trace: &mut Vec<TraceStep>,
        mut stream: Option<&mut kaq_query::scan::Stream<'_>>,
    ) -> Result<Option<Narrowed>, Error> {
        let plan = &physical.plan;
        let cancelled = || read.cancelled().then_some(Error::Scan(kaq_query::scan::ScanError::Cancelled));
        let ierr = |path: &Path, error: index::IndexError| Error::Index { path: path.to_path_buf(), error };
        // Every segment for the latest-stage pass; with every stage kept, those searched.
        let segs: Vec<(&Segment, &SegmentPlan)> = self
            .manifest
            .segments
            .iter()
            .zip(&physical.segments)
            .filter(|(_, p)| !plan.all_stages || p.searched)
            .collect();
        let by_index = matches!(physical.access, Access::Index { .. });
        let mut seen_rows = Vec::new();
        // Rows whose columns were tested (column tests: row groups whose statistics rule out a
        // match are not).
        let mut tested = 0u64;
        let mut groups_skipped = 0u64;
        // What the indexes can narrow, as decided for the segments searched (`physical_plan`).
        let holds = indexes_hold(segs.iter().filter(|x| x.1.searched).map(|x| x.0));
        for (s, p) in &segs {
            if let Some(e) = cancelled() {
                return Err(e);
            }
            if !p.searched {
                seen_rows.push(Vec::new());
                continue;
            }
            if !by_index {
                let found =
                    kaq_query::columnar::matching_rows(plan, &p.path, read.threads.max(1), read.cancel.as_deref());
                let found = found.expect("the physical plan chose column tests only where they apply")?;
                tested += found.rows_read;
                groups_skipped += found.groups_skipped;
                seen_rows.push(found.positions);
                continue;
            }
            let dir = self.dir.join(SEGMENTS).join(s.usable_index().expect("indexed"));
            let version = s.index_version.unwrap_or(1);
            let idx = index::SegmentIndex::open(&dir, version, s.rows).map_err(|w| ierr(&dir, w))?;
            let path = &p.path;
            let mut by_id =
                |ids: &[String]| ids::rows_with_ids(path, ids).map_err(|e| index::IndexError::Lookup(Box::new(e)));
            seen_rows.push(idx.candidates(plan, holds, &mut by_id).map_err(|w| ierr(&dir, w))?.unwrap_or_default());
        }
        let candidates: u64 = seen_rows.iter().map(|r| r.len() as u64).sum();
        let total: u64 = segs.iter().filter(|(_, p)| p.searched).map(|(s, _)| s.rows).sum();
        // Too many to read row by row (the index's rows only): a sixteenth of the rows, a block
        // found counting as 8 rows whatever its size (32 in index version 9, the only one used):
        // its filter columns are read from about the same pages, and the rows that match are the
        // same. (8 rows a block found is the threshold the test had with version 7's blocks.)
        let weighed: u64 = segs
            .iter()
            .zip(&seen_rows)
            .map(|((s, _), rows)| rows.len() as u64 * 8 / index::block_rows(s.index_version.unwrap_or(1)).max(8))
            .sum();
        if let Access::Index { fallback: Some(fallback) } = physical.access
            && weighed * 16 > total
        {
            trace.push(TraceStep::Index { candidates, too_many: true });
            return match fallback {
                Fallback::Columnar => Ok(None),
                Fallback::ColumnTest => {
                    let columns = kaq_query::columnar::filter_columns(plan);
                    let tests = PhysicalPlan { access: Access::ColumnTest { columns }, ..physical.clone() };
                    self.run_narrowed(&tests, read, trace, stream)
                }
            };
        }
        // An index whose documents are blocks of rows gives every row of each block found: the
        // filter, tested on its own columns for those rows, keeps the ones worth reading whole.
        if by_index {
            for ((s, p), rows) in segs.iter().zip(seen_rows.iter_mut()) {
                if index::block_rows(s.index_version.unwrap_or(1)) > 1
                    && !rows.is_empty()
                    && let Some(kept) = kaq_query::columnar::matching_among(plan, &p.path, rows)
                {
                    *rows = kept.map_err(Error::Scan)?;
                }
            }
        }
        trace.push(match &physical.access {
            Access::ColumnTest { columns } => TraceStep::ColumnTest {
                columns: columns.clone(),
                tested,
                of: total,
                groups_skipped,
                matched: candidates,
            },
            _ => TraceStep::Index { candidates, too_many: false },
        });
        // The columns the rows are read from, as the physical plan decided.
        let columns = match &physical.projection {
            Projection::All => None,
            Projection::Columns(c) => Some(c.as_slice()),
        };
        // Every stage kept (asked for, or each row its request's only record): nothing to
        // settle, so streamed rows are handed on as read, in order, and never held.
        let direct = plan.all_stages && stream.is_some();
        let mut collect = match &stream {
            Some(s) if !direct => kaq_query::scan::Collector::streaming(s.spill_after),
            _ => kaq_query::scan::Collector::bounded(),
        };
        let mut read_rows = candidates;
        // Segments not searched give no rows, but count theirs: positions stay row numbers of
        // the whole store, so the latest-stage rule orders records as the full scan does. Each
        // segment's findings go to the collector as read (a streaming one holds the rows in
        // bounded memory); the other stages found below are added at the segment's position.
        let mut hit_ids: Vec<Vec<String>> = Vec::new();
        // The auditIDs matched, for the other stages below: not needed when one segment of
        // distinct auditIDs is all there is.
        let need_ids = !plan.all_stages && (segs.len() > 1 || segs.iter().any(|(s, _)| !s.ids_unique));
        let mut bases = Vec::new();
        let mut base = 0u64;
        for ((s, p), rows) in segs.iter().zip(&seen_rows) {
            let mut ids = Vec::new();
            kaq_query::scan::read_rows_each(plan, columns, &p.path, rows, &mut |mut found| {
                if let Some(s) = stream.as_deref_mut().filter(|_| direct) {
                    for r in found.take_rows() {
                        (s.emit)(r).map_err(kaq_query::scan::ScanError::Output)?;
                    }
                }
                if need_ids {
                    ids.extend(found.hit_ids().map(|i| i.text()));
                }
                collect.add_at(base, found);
                Ok(())
            })?;
            hit_ids.push(ids);
            bases.push(base);
            base += s.rows;
        }
        if !plan.all_stages {
            let before = read_rows;
            let mut outside = (0u64, 0usize);
            // The other stages of every matching request, wherever they are: in each segment
            // (those outside the time bounds too), the rows of the auditIDs matched elsewhere,
            // and of those matched in it unless its auditIDs are all distinct.
            for (k, (s, p)) in segs.iter().enumerate() {
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
                let more = ids::rows_with_ids(&p.path, &ids)?;
                let more: Vec<u64> = more.into_iter().filter(|r| seen.binary_search(r).is_err()).collect();
                if !more.is_empty() {
                    read_rows += more.len() as u64;
                    if !p.searched {
                        outside.0 += more.len() as u64;
                        outside.1 += 1;
                    }
                    // Rows the index or the column test did not find: they do not match, so
                    // no hit comes after the ones added (the order of the rows kept holds).
                    collect.add_at(bases[k], kaq_query::scan::read_rows(plan, columns, &p.path, &more, s.rows)?);
                }
            }
            let pruned = segs.iter().filter(|(_, p)| !p.searched).count();
            trace.push(TraceStep::Latest {
                rows: read_rows - before,
                segments: segs.len(),
                from_pruned: (pruned > 0).then_some((outside.0, outside.1, pruned)),
            });
        }
        let skipped = || Error::Index { path: self.dir.clone(), error: index::IndexError::Skipped };
        let unsettled = |e: kaq_query::scan::Unsettled| match e {
            kaq_query::scan::Unsettled::Rescan => skipped(),
            kaq_query::scan::Unsettled::Io(e) => Error::Scan(kaq_query::scan::ScanError::Output(e)),
        };
        if direct {
            let finished = collect.finish_counting(plan.all_stages).map_err(unsettled)?;
            let rows = finished.rows.len() as u64;
            trace.push(TraceStep::Kept { rows });
            let streamed = kaq_query::scan::Streamed { rows, ids_reused: finished.ids_reused, spilled: 0 };
            return Ok(Some((Vec::new(), read_rows, finished.ids_reused, Some(streamed))));
        }
        if let Some(s) = stream {
            let streamed = collect
                .finish_streaming(plan.all_stages, s.emit)
                .map_err(|_| skipped())?
                .map_err(|e| Error::Scan(kaq_query::scan::ScanError::Output(e)))?;
            trace.push(TraceStep::Kept { rows: streamed.rows });
            return Ok(Some((Vec::new(), read_rows, streamed.ids_reused, Some(streamed))));
        }
        let finished = collect.finish_counting(plan.all_stages).map_err(unsettled)?;
        trace.push(TraceStep::Kept { rows: finished.rows.len() as u64 });
        Ok(Some((finished.rows, read_rows, finished.ids_reused, None)))
    }
}

/// What the narrowed paths found: the rows kept (none when streamed), the rows read, the rows
/// kept whose auditID another request carries, and what was streamed.
type Narrowed = (Vec<kaq_query::Row>, u64, u64, Option<kaq_query::scan::Streamed>);

/// An error reading a segment file, naming it.
pub(crate) fn segment_error(path: &Path, error: kaq_columnar::Error) -> Error {
    Error::Scan(kaq_query::scan::ScanError::Parquet { path: path.to_path_buf(), error })
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
    pub trace: Vec<TraceStep>,
    /// What steps did that the rows do not show (a timeline too long to fill), for the user.
    pub notes: Vec<kaq_query::pipeline::Note>,
    /// [`Store::run_streaming`]: what was handed on (`rows` is then empty).
    pub streamed: Option<kaq_query::scan::Streamed>,
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

    /// The rows as JSON lines (docs/query.md, "Output").
    pub fn json_lines(&self) -> Vec<String> {
        self.rows.iter().map(|r| kaq_query::output::json_line(r, &self.columns)).collect()
    }
}
