//! Running a query over the store's segments.

use super::*;

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

/// An error reading a segment file, naming it.
pub(crate) fn segment_error(path: &Path, error: kaq_columnar::Error) -> Error {
    Error::Scan(kaq_query::scan::ScanError::Parquet { path: path.to_path_buf(), error })
}

/// Whether every segment's index holds the bodies' values ([`index::has_bodies`]).
pub(crate) fn all_have_bodies<'a>(mut segs: impl Iterator<Item = &'a Segment>) -> bool {
    segs.all(|s| index::has_bodies(s.index_version.unwrap_or(1)))
}

/// ` (N row groups skipped by their statistics)` when N > 0.
pub(crate) fn groups_skipped(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" ({n} row groups skipped by their statistics)") }
}

/// `, N row groups skipped by their statistics` when N > 0.
pub(crate) fn groups_skipped_in(n: u64) -> String {
    if n == 0 { String::new() } else { format!(", {n} row groups skipped by their statistics") }
}

/// How a query's candidate rows are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Narrow {
    /// The segments' tantivy indexes (and auditIDs' bloom filters).
    Index,
    /// The filter tested on the columns of the query's fields ([`kaq_query::columnar`]).
    Columns,
}

/// Reads the given rows (sorted) of a segment file, testing each as the event at position `row`;
/// the result counts `total` rows so that positions stay row numbers across segments.
pub(crate) fn read_selected(
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
pub(crate) fn needs_every_segment(plan: &kaq_query::Plan, narrowed: bool) -> bool {
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
