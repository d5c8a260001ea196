//! Ingest: what to read of each input, reading it into open segments, and committing them with
//! the record of what was read.

use super::*;

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

impl Store {
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
                        builder.append(ev);
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
        self.commit_pending(&mut open, &mut report)?;
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
                report.segments += usize::from(self.commit_pending(&mut open, &mut report)?);
            }
        }
        report.segments += usize::from(self.commit_pending(&mut open, &mut report)?);
        Ok(report)
    }

    /// What is new in the file `p`, given what the store and `pending` hold: `None` when nothing
    /// is. It is named `name` in messages and records when given (a file read through
    /// `/proc/self/fd`), else by its absolute path. With `whole`, a half last line is read too (a
    /// rotated file: it will not be finished).
    pub(crate) fn what_to_read(
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
    pub(crate) fn what_to_read_of(
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
                // What a plain file begins with: one truncated (and written again) before or
                // while it is read is not read as the file identified.
                head: (!id.gzip && !id.parquet).then(|| id.head_bytes.as_slice().into()),
            })
        };
        Ok(Some(ToRead { source: Some(source), continues, rec, unread, start, end, id: Some(id) }))
    }

    /// Reads `r` into the open segment of `open` (started when needed) and notes its record.
    pub(crate) fn read_into(
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
            _ => {
                let ranges = seg.dedup.as_ref().map(|d| d.lock().expect("unpoisoned").ranges());
                let handler = Digested { batches: ToBatch::default(), ranges };
                kaq_input::read(std::slice::from_ref(&source), &opts.read, &handler, |chunk| {
                    on_chunk(&chunk.counts, &chunk.rejects);
                    if let Some((batch, digests)) = chunk.output {
                        seg.add_digested(batch, digests)?;
                    }
                    Ok::<(), Error>(())
                })?
            }
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
                // Shorter than it was, or no longer what was identified (truncated before or
                // while read, and maybe written again: copy-and-truncate rotation): only what
                // was read of it is recorded, so its copy gives the rest.
                rec.size = read_to;
                rec.head = id.head_of(read_to);
                if read_to == 0 && r.continues.is_none() {
                    return Ok(()); // nothing of it: no record (as for an empty file)
                }
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
    /// whether a segment was committed. The records its writer left out as repeats are added to
    /// `report`'s duplicates.
    pub(crate) fn commit_pending(&mut self, open: &mut Pending, report: &mut IngestReport) -> Result<bool, Error> {
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
                report.duplicates += self.close_segment_at(seg, m, at)?;
                Ok(had_rows)
            }
            None => self.commit(m).map(|()| false),
        }
    }

    /// A segment for new records: those the store already holds are left out of it ([`dedup`]).
    pub(crate) fn start_segment(&mut self) -> Result<OpenSegment, Error> {
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
        let mut seg = self.open_segment(true)?;
        seg.dedup = Some(self.dedup.clone());
        Ok(seg)
    }

    /// A segment that takes every row it is given (compaction and prune rewrite held records).
    pub(crate) fn start_plain_segment(&mut self) -> Result<OpenSegment, Error> {
        self.open_segment(false)
    }

    /// A segment, its writer leaving out repeats among its rows or not.
    fn open_segment(&mut self, drop_repeats: bool) -> Result<OpenSegment, Error> {
        let id = self.manifest.next_segment;
        // Reserve the number in memory; it is committed with the segment.
        self.manifest.next_segment += 1;
        let file = format!("seg-{id:06}.parquet");
        let path = self.dir.join(SEGMENTS).join(&file);
        // The index is built beside the file, from the rows in the order they are written.
        let index_tmp = self.dir.join(SEGMENTS).join(format!(".seg-{id:06}.index.tmp"));
        let index = index::Builder::start(&index_tmp);
        // Runs of 32K rows (up to 16K held back for late rows, 8K sorted in at a time), not the
        // 64K of a conversion: decoded rows waiting are a fifth of an ingest's memory, and a
        // store also holds its index and dedup state. A 5M-event ingest peaked at 498-521 MB
        // with 64K and tantivy's 64 MiB, at 452-474 MB with this and `index::INDEX_MEMORY` at
        // 48 MiB; 16K cost a log in completion order half its time again in late rows spilled
        // and merged (BENCHMARKS.md, issue 17, stop 23). zstd at level 1 for every column: the
        // store is 0.2% larger than with `kaq convert`'s levels, its ingest 1-2% quicker.
        let opts = WriteOptions {
            id_bloom_filter: true,
            run_rows: 32 * 1024,
            zstd_dense_level: 1,
            drop_repeats,
            ..WriteOptions::default()
        };
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

    /// Finishes a segment and commits `m` with it inserted at `at` (nothing inserted when empty);
    /// returns the rows its writer left out as repeats.
    pub(crate) fn close_segment_at(&mut self, mut seg: OpenSegment, mut m: Manifest, at: usize) -> Result<u64, Error> {
        let writer = seg.writer.take().expect("open");
        m.next_segment = m.next_segment.max(self.manifest.next_segment);
        let mut repeats = kaq_columnar::Repeats::default();
        if seg.rows > 0 {
            let written = writer.finish()?;
            repeats = written.repeats;
            // Repeats have the time of a record kept: the range stays.
            seg.rows = written.rows;
            seg.timed -= repeats.rows - repeats.untimed;
            fs::set_permissions(&seg.path, fs::Permissions::from_mode(0o600)).at(&seg.path)?;
            File::open(&seg.path).and_then(|f| f.sync_all()).at(&seg.path)?;
            sync_dir(&self.dir.join(SEGMENTS))?;
            let bytes = fs::metadata(&seg.path).at(&seg.path)?.len();
            // The index over the same rows (each document's `row` its first Parquet row), built
            // while the file was written.
            let tmp = seg.index_tmp.clone();
            let built =
                seg.index.take().expect("open").finish().map_err(|error| Error::Index { path: tmp.clone(), error })?;
            if built.rows != seg.rows {
                let error = index::IndexError::Rows { indexed: built.rows, rows: seg.rows };
                return Err(Error::Index { path: tmp, error });
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
                    index_unicode: Some(index::unicode().to_string()),
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
        self.commit(m)?;
        Ok(repeats.rows)
    }
}

/// What an ingest has read and not yet committed: an open segment and the records of the inputs
/// read into it.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) segment: Option<OpenSegment>,
    pub(crate) updates: Vec<Update>,
}

impl Pending {
    pub(crate) fn rows(&self) -> u64 {
        self.segment.as_ref().map_or(0, |s| s.rows)
    }
}

/// A record of what was read of an input: new, or replacing `sources[replaces]` (the same file,
/// grown).
pub(crate) struct Update {
    pub(crate) replaces: Option<usize>,
    pub(crate) rec: Ingested,
}

pub(crate) fn apply(sources: &mut Vec<Ingested>, updates: Vec<Update>) {
    for u in updates {
        match u.replaces {
            Some(i) => sources[i] = u.rec,
            None => sources.push(u.rec),
        }
    }
}

/// What to read of an input, and its record once read.
pub(crate) struct ToRead {
    /// `None` when nothing is complete yet (a half line).
    pub(crate) source: Option<Source>,
    /// The record it continues (an index into the manifest's records, then the pending ones).
    pub(crate) continues: Option<usize>,
    pub(crate) rec: Ingested,
    /// A half last line left for later: the file and its bytes.
    pub(crate) unread: Option<(String, u64)>,
    /// Where the read starts and should end, in the content.
    pub(crate) start: u64,
    pub(crate) end: Option<u64>,
    /// The file as identified (none for a stream).
    pub(crate) id: Option<inputs::Identity>,
}

impl ToRead {
    /// Standard input: read whole, remembered by name only.
    pub(crate) fn stream(source: Source) -> ToRead {
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

pub(crate) struct OpenSegment {
    pub(crate) id: u64,
    pub(crate) file: String,
    pub(crate) path: PathBuf,
    pub(crate) writer: Option<SortedParquetWriter>,
    /// Its index, being built (in `index_tmp`) from what the writer writes.
    pub(crate) index: Option<index::Builder>,
    pub(crate) index_tmp: PathBuf,
    pub(crate) rows: u64,
    /// Rows with a time.
    pub(crate) timed: u64,
    pub(crate) min: Option<i64>,
    pub(crate) max: Option<i64>,
    /// For new records: what the store holds, so that a record held is not added again. (Its
    /// writer leaves out repeats among its own records.)
    pub(crate) dedup: Option<std::sync::Arc<std::sync::Mutex<dedup::Dedup>>>,
    /// Records left out, held in a committed segment.
    pub(crate) duplicates: u64,
}

/// A [`ToBatch`] that also takes the batch's digests ([`kaq_columnar::digest::digests`]) when
/// its time range (earliest to latest) meets a committed segment's, whose rows it may repeat
/// ([`dedup::Ranges::meet`]): on the decode thread
/// that built the batch, while its cells are still in that core's cache. (Taken on the thread that
/// adds the batches, the cells were read from memory again: 3.4% of an ingest's time, perf.)
/// Batches of times no segment holds, as when newer logs are ingested, take none.
struct Digested {
    batches: ToBatch,
    /// The committed segments' ranges, when the segment leaves out records already held.
    ranges: Option<dedup::Ranges>,
}

impl kaq_input::EventHandler for Digested {
    type State = <ToBatch as kaq_input::EventHandler>::State;
    type Output = (arrow_array::RecordBatch, Option<Vec<u128>>);

    fn start(&self) -> Self::State {
        self.batches.start()
    }

    fn event(&self, b: &mut Self::State, e: &kaq_schema::Event<'_>) {
        self.batches.event(b, e)
    }

    fn finish(&self, b: Self::State) -> Self::Output {
        let batch = self.batches.finish(b);
        let digests = self.ranges.as_ref().filter(|r| r.meet(&batch)).map(|_| kaq_columnar::digest::digests(&batch));
        (batch, digests)
    }
}

impl OpenSegment {
    pub(crate) fn add(&mut self, batch: arrow_array::RecordBatch) -> Result<(), Error> {
        self.add_digested(batch, None)
    }

    /// [`add`](Self::add), given the batch's digests when they were taken already.
    pub(crate) fn add_digested(
        &mut self,
        batch: arrow_array::RecordBatch,
        digests: Option<Vec<u128>>,
    ) -> Result<(), Error> {
        let keep = match &self.dedup {
            Some(d) => d.lock().expect("unpoisoned").keep(&batch, digests.as_deref())?,
            None => None,
        };
        let batch = match keep {
            Some(keep) => {
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

/// Reads a kaq Parquet file (`kaq convert`'s output, of any kaq version) into a segment, its
/// events re-encoded in this kaq's schema and redacted as logs are.
pub(crate) fn read_parquet(
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
