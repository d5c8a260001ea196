//! Time-sorted Parquet files from batches in any order, in bounded memory.
//!
//! Batches collect into runs of [`WriteOptions::run_rows`] rows; each run is sorted by `time`.
//! While runs arrive in order (a log written as time goes on), they go straight into the output,
//! so an ordered log is written in one pass. The first run that starts before the end of what is
//! written turns on spilling: that run and the later ones go to temporary run files, and
//! [`SortedParquetWriter::finish`] merges the output-so-far and the runs into the final file.
//! The final file appears by rename: a crash leaves no half-written output under its name.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use arrow_select::concat::concat_batches;
use arrow_select::interleave::interleave_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::digest::{RepeatFilter, Repeats};
use crate::encode::ParallelFileWriter;
use crate::error::{Error, IoContext};
use crate::schema::{SCHEMA_VERSION, SCHEMA_VERSION_KEY, audit_schema, column_index};

/// How files are written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Rows per row group (the unit of statistics pruning).
    pub row_group_rows: usize,
    /// Rows sorted in memory at a time: the newest up to half of it are held back for rows that
    /// arrive late, and new rows are sorted in with them a quarter of it at a time.
    pub run_rows: usize,
    /// zstd level of most columns.
    pub zstd_level: i32,
    /// zstd level of the six columns that level 3 makes smaller than 1 does (`groups`, `ns`,
    /// `message`, `request`, the annotations' keys, `host_paths`): 3 by default, for files to
    /// keep; a store, whose size matters less than its ingest's speed, takes 1.
    pub zstd_dense_level: i32,
    /// Write a Parquet bloom filter of `id` in each row group (the store finds auditIDs with it).
    pub id_bloom_filter: bool,
    /// Leave out every row equal in every column to one written before it (the store holds each
    /// record once). Equal rows have one time, so they meet in the sorted output: only rows that
    /// share their time with another are digested ([`digest`](crate::digest)). What was left out
    /// is counted in [`SortedParquetWriter::finish`]'s [`Written`] (`finish_staged` does not
    /// count it).
    pub drop_repeats: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            row_group_rows: 64 * 1024,
            run_rows: 64 * 1024,
            zstd_level: 1,
            zstd_dense_level: 3,
            id_bloom_filter: false,
            drop_repeats: false,
        }
    }
}

/// The sort key of row `i`: its time, with rows without one last.
fn key(t: &arrow_array::TimestampMicrosecondArray, i: usize) -> i64 {
    if t.is_valid(i) { t.value(i) } else { i64::MAX }
}

pub(crate) fn times(b: &RecordBatch) -> &arrow_array::TimestampMicrosecondArray {
    b.column(column_index("time").expect("time column")).as_primitive::<TimestampMicrosecondType>()
}

/// Sorts rows of several batches by time into one batch (stable: input order among equal
/// times), without first concatenating them. `keys` are the rows' sort keys in input order;
/// returns the batch and its keys in sorted order.
fn sort_batches(batches: &[RecordBatch], keys: &[i64]) -> Result<(RecordBatch, Vec<i64>), Error> {
    let mut rows: Vec<(i64, (usize, usize))> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |i| (b, i)))
        .zip(keys)
        .map(|(at, &k)| (k, at))
        .collect();
    rows.sort_by_key(|r| r.0);
    let idx: Vec<(usize, usize)> = rows.iter().map(|r| r.1).collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    Ok((interleave_record_batch(&refs, &idx)?, rows.into_iter().map(|r| r.0).collect()))
}

/// Columns zstd compresses better at level 3 than at 1 (lists of short names repeated from row to
/// row, JSON, words): 1–54% fewer bytes (`ns` least, the annotations' keys most). The other
/// columns are dictionary indexes, deltas or dictionary pages that level 3 makes no smaller
/// (within 0.5%, some larger) in more time, and with larger match tables to fill for every page.
/// On a generated 1M-event log, every column at level 3 took 4.5% more CPU to ingest than at 1,
/// for a store 7 KB smaller; these six at 3 make `kaq convert`'s file 71 KB smaller than all at 3
/// (BENCHMARKS.md, stop 31).
const ZSTD_DENSE: &[&str] =
    &["groups.list.item", "ns", "message", "request", "annotations.entries.keys", "host_paths.list.item"];

/// Columns written without statistics: JSON text and long free text, and the auditID. Every event
/// has an auditID, and they are random (UUIDs): a row group's least and greatest span nearly all
/// of them, so they rule nothing out (the store finds auditIDs with bloom filters), and cost two
/// comparisons a value. (Without statistics there is no null count either: the other
/// identifiers, absent from many events, keep theirs, for `as_uid:*` to skip row groups without
/// one.)
const NO_STATISTICS: &[&str] = &[
    "id",
    "uri",
    "user_extra",
    "as_extra",
    "ua",
    "message",
    "status_metadata",
    "status_details",
    "authz_reason",
    "annotations.entries.keys",
    "annotations.entries.values",
    "request",
    "response",
    "exec_command",
    "unmapped",
];

fn writer_props(o: &WriteOptions, final_file: bool) -> Result<WriterProperties, Error> {
    let b = WriterProperties::builder()
        .set_created_by(format!("kaq version {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(o.row_group_rows));
    let b = if final_file {
        let level = o.zstd_level;
        // Dictionaries up to 8 MiB: `uri` and `name` have many distinct values per row group, and a
        // dictionary that overflows the default 1 MiB falls back to plain encoding (6% larger
        // files on a generated 1M-event log).
        let dict = 8usize << 20;
        let mut b =
            b.set_compression(Compression::ZSTD(ZstdLevel::try_new(level)?)).set_dictionary_page_size_limit(dict);
        let dense = Compression::ZSTD(ZstdLevel::try_new(o.zstd_dense_level)?);
        for col in ZSTD_DENSE {
            b = b.set_column_compression(dotted(col), dense);
        }
        // Timestamps: delta encoding beats dictionaries on values that grow steadily.
        for col in ["time", "stage_time"] {
            b = b
                .set_column_dictionary_enabled(col.into(), false)
                .set_column_encoding(col.into(), Encoding::DELTA_BINARY_PACKED);
        }
        // Identifiers are nearly all distinct: a dictionary only costs time.
        // Their bytes are random (UUIDs): zstd's match search finds nothing at any level, and
        // level 1 skips most of the search.
        for col in ["id", "uid", "as_uid", "object_uid", "resource_version"] {
            b = b
                .set_column_dictionary_enabled(col.into(), false)
                .set_column_encoding(col.into(), Encoding::DELTA_LENGTH_BYTE_ARRAY)
                .set_column_compression(col.into(), Compression::ZSTD(ZstdLevel::try_new(1)?));
        }
        if o.id_bloom_filter {
            // Sized for a row group of distinct IDs; 16 bits an ID once rounded up to a power of
            // two, about one false positive in 2000.
            b = b
                .set_column_bloom_filter_enabled("id".into(), true)
                .set_column_bloom_filter_fpp("id".into(), 0.001)
                .set_column_bloom_filter_max_ndv("id".into(), o.row_group_rows as u64);
        }
        // Min/max of long free text and JSON prunes nothing and costs two comparisons a value.
        for col in NO_STATISTICS {
            b = b.set_column_statistics_enabled(dotted(col), EnabledStatistics::None);
        }
        b.set_sorting_columns(Some(vec![SortingColumn {
            column_idx: column_index("time").expect("time column") as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![KeyValue::new(SCHEMA_VERSION_KEY.into(), SCHEMA_VERSION.to_string())]))
        .set_statistics_truncate_length(Some(128))
    } else {
        // Temporary runs: fast to write and read back, no statistics.
        b.set_compression(Compression::SNAPPY).set_statistics_enabled(EnabledStatistics::None)
    };
    Ok(b.build())
}

/// A leaf column's path from its dotted name (`groups.list.item`).
fn dotted(col: &str) -> ColumnPath {
    ColumnPath::new(col.split('.').map(String::from).collect())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}"))
}

/// Sees the rows of the final file in file order, as they are written: row `n` of what it is
/// given is row `n` of the file (an index built beside the file uses that). When the input turns
/// out of order and the file is rewritten by merging, [`reset`](Self::reset) is called and the
/// rows are given again, all of them, in their final order.
pub trait RowSink: Send {
    fn rows(&mut self, batch: &RecordBatch) -> Result<(), Error>;
    fn reset(&mut self) -> Result<(), Error>;
}

/// Writes one time-sorted Parquet file.
pub struct SortedParquetWriter {
    path: PathBuf,
    tmp: PathBuf,
    opts: WriteOptions,
    writer: Option<ParallelFileWriter>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// The newest rows of the last run, sorted, kept back for rows that arrive a little late.
    held: Vec<RecordBatch>,
    held_rows: usize,
    /// The largest key written straight to the output.
    written_max: Option<i64>,
    /// Temporary files that exist besides `tmp` (spilled runs, merges in progress).
    runs: Vec<PathBuf>,
    rows: u64,
    done: bool,
    sink: Option<Box<dyn RowSink>>,
    /// With [`WriteOptions::drop_repeats`]: the repeats left out of what is written straight to
    /// the output.
    repeats: Option<RepeatFilter>,
}

/// What a [`SortedParquetWriter`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows in the file.
    pub rows: u64,
    /// Rows given and left out as repeats ([`WriteOptions::drop_repeats`]).
    pub repeats: Repeats,
}

impl SortedParquetWriter {
    /// Starts a file at `path` (written to a hidden sibling until [`finish`](Self::finish)).
    pub fn create(path: &Path, opts: WriteOptions) -> Result<Self, Error> {
        let tmp = sibling(path, "kaq-tmp");
        let file = File::create(&tmp).at(&tmp)?;
        let writer = ParallelFileWriter::new(file, writer_props(&opts, true)?, opts.row_group_rows)?;
        Ok(SortedParquetWriter {
            path: path.to_path_buf(),
            tmp,
            writer: Some(writer),
            pending: Vec::new(),
            pending_rows: 0,
            held: Vec::new(),
            held_rows: 0,
            written_max: None,
            runs: Vec::new(),
            rows: 0,
            done: false,
            sink: None,
            repeats: opts.drop_repeats.then(RepeatFilter::default),
            opts,
        })
    }

    /// Gives every row of the final file to `sink` as it is written (see [`RowSink`]).
    pub fn with_sink(mut self, sink: Box<dyn RowSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Rows given so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows held in memory, not yet written.
    pub fn pending_rows(&self) -> usize {
        self.pending_rows + self.held_rows
    }

    /// Adds a batch of [`audit_schema`](crate::audit_schema).
    pub fn write(&mut self, batch: RecordBatch) -> Result<(), Error> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        // Sorted in with what is held back a quarter run at a time: rows wait here no longer
        // than they must (a log in time order goes on to the encoder at once; the held back
        // rows, up to half a run, are what waits for stragglers).
        if self.pending_rows >= (self.opts.run_rows / 4).max(1) {
            self.flush_run(false)?;
        }
        Ok(())
    }

    /// Sorts and writes what is pending. With `end_row_group`, also closes the row group in
    /// progress, releasing its buffers (for a partition that is no longer being written).
    pub fn flush(&mut self, end_row_group: bool) -> Result<(), Error> {
        self.flush_run(end_row_group)?;
        if end_row_group && let Some(w) = &mut self.writer {
            w.flush()?;
        }
        Ok(())
    }

    /// Sorts what is pending with what was held back, and writes all of it but the newest rows
    /// (all of it when `all`). Rows older than what the output already holds — an input out of
    /// order by more than the holding window — go to a sorted temporary run, merged in at the end.
    fn flush_run(&mut self, all: bool) -> Result<(), Error> {
        if self.pending.is_empty() && (self.held.is_empty() || !all) {
            return Ok(());
        }
        let mut batches = std::mem::take(&mut self.held);
        batches.append(&mut self.pending);
        self.pending_rows = 0;
        self.held_rows = 0;
        let mut keys: Vec<i64> =
            batches.iter().flat_map(|b| (0..b.num_rows()).map(move |i| key(times(b), i))).collect();
        // A log written as time goes on arrives sorted: its batches go on as they are, no copy.
        let sorted = if keys.is_sorted() {
            batches
        } else {
            let (batch, sorted_keys) = sort_batches(&batches, &keys)?;
            keys = sorted_keys;
            vec![batch]
        };
        let total = keys.len();
        let late = match self.written_max {
            Some(m) => keys.partition_point(|&k| k < m),
            None => 0,
        };
        let keep_from = if all {
            total
        } else {
            let cutoff = keys[total - 1].saturating_sub(HOLD_MICROS);
            let newer = keys.partition_point(|&k| k <= cutoff);
            newer.max(total.saturating_sub(self.opts.run_rows / 2)).max(late)
        };
        let (late_rows, rest) = split_rows(sorted, late);
        let (emit, held) = split_rows(rest, keep_from - late);
        if !late_rows.is_empty() {
            self.spill(&concat_batches(&audit_schema(), &late_rows)?)?;
        }
        if keep_from > late {
            let w = self.writer.as_mut().expect("open until finish");
            let mut at = late;
            for b in &emit {
                let n = b.num_rows();
                let filtered;
                let b = match &mut self.repeats {
                    Some(f) => {
                        filtered = f.filter(b, &keys[at..at + n])?;
                        &filtered
                    }
                    None => b,
                };
                at += n;
                if b.num_rows() == 0 {
                    continue;
                }
                w.write(b)?;
                if let Some(sink) = &mut self.sink {
                    sink.rows(b)?;
                }
            }
            self.written_max = Some(keys[keep_from - 1]);
        }
        self.held_rows = total - keep_from;
        self.held = held;
        Ok(())
    }

    /// Writes a sorted run to a temporary file, to be merged at the end.
    fn spill(&mut self, run: &RecordBatch) -> Result<(), Error> {
        let path = sibling(&self.path, &format!("kaq-run-{}", self.runs.len()));
        self.runs.push(path.clone());
        let file = File::create(&path).at(&path)?;
        let mut w = ArrowWriter::try_new(file, audit_schema(), Some(writer_props(&self.opts, false)?))?;
        w.write(run)?;
        w.close()?;
        Ok(())
    }

    /// Writes what is left, merges spilled runs if any, and puts the file in place.
    pub fn finish(self) -> Result<Written, Error> {
        let (staged, written) = self.stage()?;
        staged.publish()?;
        Ok(written)
    }

    /// Writes what is left and merges spilled runs, leaving the complete file under its hidden
    /// temporary name: [`Staged::publish`] puts it in place, dropping the `Staged` removes it.
    /// For outputs of several files published together (`PartitionedWriter`).
    pub fn finish_staged(self) -> Result<Staged, Error> {
        Ok(self.stage()?.0)
    }

    /// [`finish_staged`](Self::finish_staged), and what was written (the repeats left out are
    /// final once the runs are merged).
    fn stage(mut self) -> Result<(Staged, Written), Error> {
        let done = self.complete()?;
        self.done = true;
        let repeats = self.repeats.as_ref().map(|f| f.left_out).unwrap_or_default();
        let written = Written { rows: self.rows - repeats.rows, repeats };
        Ok((Staged { tmp: Some(done), path: self.path.clone() }, written))
    }

    /// Everything [`finish`](Self::finish) does but the rename: returns the complete file.
    fn complete(&mut self) -> Result<PathBuf, Error> {
        self.flush_run(true)?;
        self.writer.take().expect("open until finish").close()?;
        if self.runs.is_empty() {
            Ok(self.tmp.clone())
        } else {
            // The output so far is the first run; merge at most MERGE_WIDTH files at a time so
            // that a huge out-of-order input never holds too many files open.
            let mut inputs = vec![self.tmp.clone()];
            inputs.extend(self.runs.iter().cloned());
            let mut level = 0;
            while inputs.len() > MERGE_WIDTH {
                let mut next = Vec::new();
                for (g, group) in inputs.chunks(MERGE_WIDTH).enumerate() {
                    let out = sibling(&self.path, &format!("kaq-run-{level}-{g}"));
                    self.runs.push(out.clone());
                    merge_sorted(group, &out, &self.opts, false, &mut None, None)?;
                    remove_all(group)?;
                    next.push(out);
                }
                inputs = next;
                level += 1;
            }
            let merged = sibling(&self.path, "kaq-merge");
            self.runs.push(merged.clone());
            if let Some(sink) = &mut self.sink {
                sink.reset()?;
            }
            // The runs hold rows not compared with what was written: the merge brings each
            // next to its equals. (What was written holds no repeats: compared again, it loses
            // none.)
            if let Some(f) = &mut self.repeats {
                f.restart();
            }
            merge_sorted(&inputs, &merged, &self.opts, true, &mut self.sink, self.repeats.as_mut())?;
            remove_all(&inputs)?;
            Ok(merged)
        }
    }
}

/// A complete file under a hidden temporary name, not yet in place
/// ([`SortedParquetWriter::finish_staged`]). Dropped unpublished, it is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: Option<PathBuf>,
    path: PathBuf,
}

impl Staged {
    /// Where [`publish`](Self::publish) puts it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the file in place (a rename); returns its path.
    pub fn publish(mut self) -> Result<PathBuf, Error> {
        let tmp = self.tmp.take().expect("published once");
        if let Err(e) = std::fs::rename(&tmp, &self.path) {
            self.tmp = Some(tmp);
            return Err(e).at(&self.path);
        }
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(t) = &self.tmp {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// How late a row may arrive and still be written in place: the newest rows of each run wait
/// this long (in event time) for stragglers before they are written. The API server logs a
/// request when it completes, so its `time` (when it was received) lags by its duration.
const HOLD_MICROS: i64 = 15 * 60 * 1_000_000;

/// Splits a sequence of batches after its first `n` rows (slices, no copy).
fn split_rows(batches: Vec<RecordBatch>, n: usize) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let (mut head, mut tail) = (Vec::new(), Vec::new());
    let mut left = n;
    for b in batches {
        let rows = b.num_rows();
        if left >= rows {
            left -= rows;
            head.push(b);
        } else if left == 0 {
            tail.push(b);
        } else {
            head.push(b.slice(0, left));
            tail.push(b.slice(left, rows - left));
            left = 0;
        }
    }
    (head, tail)
}

/// How many sorted files one merge reads at once.
const MERGE_WIDTH: usize = 64;

fn remove_all(paths: &[PathBuf]) -> Result<(), Error> {
    for p in paths {
        std::fs::remove_file(p).at(p)?;
    }
    Ok(())
}

impl Drop for SortedParquetWriter {
    /// An unfinished writer (an error, a panic) leaves no temporary files behind.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
            for p in &self.runs {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Merges time-sorted Parquet files into one sorted file (stable: ties keep input order).
fn merge_sorted(
    inputs: &[PathBuf],
    out: &Path,
    opts: &WriteOptions,
    final_file: bool,
    sink: &mut Option<Box<dyn RowSink>>,
    mut repeats: Option<&mut RepeatFilter>,
) -> Result<(), Error> {
    // Memory bound: about 128K rows in flight across all inputs.
    let batch = (128 * 1024 / inputs.len().max(1)).clamp(128, 8192);
    let mut readers: Vec<ParquetRecordBatchReader> = inputs
        .iter()
        .map(|p| -> Result<_, Error> {
            let f = File::open(p).at(p)?;
            Ok(ParquetRecordBatchReaderBuilder::try_new(f)?.with_batch_size(batch).build()?)
        })
        .collect::<Result<_, _>>()?;
    let file = File::create(out).at(out)?;
    let mut w = ParallelFileWriter::new(file, writer_props(opts, final_file)?, opts.row_group_rows)?;
    let mut current: Vec<Option<RecordBatch>> = Vec::with_capacity(readers.len());
    let mut heap = BinaryHeap::new();
    for (r, reader) in readers.iter_mut().enumerate() {
        let b = reader.next().transpose()?;
        if let Some(b) = &b {
            heap.push(Reverse((key(times(b), 0), r, 0usize)));
        }
        current.push(b);
    }
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(batch);
    while let Some(Reverse((_, r, i))) = heap.pop() {
        picks.push((r, i));
        let len = current[r].as_ref().map_or(0, |b| b.num_rows());
        if i + 1 < len {
            let b = current[r].as_ref().expect("present");
            heap.push(Reverse((key(times(b), i + 1), r, i + 1)));
        } else {
            // The batch of run r is used up: emit what refers to it, then load the next one.
            emit(&mut w, &current, &mut picks, sink, repeats.as_deref_mut())?;
            current[r] = readers[r].next().transpose()?;
            if let Some(b) = &current[r] {
                heap.push(Reverse((key(times(b), 0), r, 0)));
            }
            continue;
        }
        if picks.len() >= batch {
            emit(&mut w, &current, &mut picks, sink, repeats.as_deref_mut())?;
        }
    }
    emit(&mut w, &current, &mut picks, sink, repeats)?;
    w.close()?;
    Ok(())
}

fn emit(
    w: &mut ParallelFileWriter,
    current: &[Option<RecordBatch>],
    picks: &mut Vec<(usize, usize)>,
    sink: &mut Option<Box<dyn RowSink>>,
    repeats: Option<&mut RepeatFilter>,
) -> Result<(), Error> {
    if picks.is_empty() {
        return Ok(());
    }
    // interleave takes a dense list of batches: map run numbers to positions in it.
    let empty = RecordBatch::new_empty(audit_schema());
    let batches: Vec<&RecordBatch> = current.iter().map(|b| b.as_ref().unwrap_or(&empty)).collect();
    let mut out = interleave_record_batch(&batches, picks)?;
    picks.clear();
    if let Some(f) = repeats {
        let t = times(&out);
        let keys: Vec<i64> = (0..out.num_rows()).map(|i| key(t, i)).collect();
        out = f.filter(&out, &keys)?;
        if out.num_rows() == 0 {
            return Ok(());
        }
    }
    w.write(&out)?;
    if let Some(sink) = sink {
        sink.rows(&out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventBatchBuilder, batch_to_json};
    use kaq_schema::{DecodeOptions, decode_event};

    fn batch(ids_times: &[(String, i64)]) -> RecordBatch {
        let mut b = EventBatchBuilder::new();
        for (id, t) in ids_times {
            let line =
                format!(r#"{{"auditID":"{id}","requestReceivedTimestamp":"{}"}}"#, kaq_schema::time::format_micros(*t));
            b.append(&decode_event(&line, &DecodeOptions::default()).unwrap());
        }
        b.finish()
    }

    /// Reversed input of 1,000 rows in runs of 10: 100 runs, so two levels of merging; equal
    /// times keep their input order.
    #[test]
    fn out_of_order_input_merges_sorted_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.parquet");
        let opts = WriteOptions { row_group_rows: 64, run_rows: 10, zstd_level: 1, ..WriteOptions::default() };
        let mut w = SortedParquetWriter::create(&path, opts).unwrap();
        let rows: Vec<(String, i64)> = (0..1000).map(|i| (format!("r{i}"), (999 - i) / 2 * 1_000_000)).collect();
        for chunk in rows.chunks(7) {
            w.write(batch(chunk)).unwrap();
        }
        assert_eq!(w.finish().unwrap().rows, 1000);
        let mut out = Vec::new();
        for b in crate::read::open(&path, 100).unwrap() {
            out.extend(batch_to_json(&b.unwrap()).unwrap());
        }
        let got: Vec<(String, String)> = out
            .iter()
            .map(|e| {
                (
                    e["requestReceivedTimestamp"].as_str().unwrap().to_string(),
                    e["auditID"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> =
            rows.iter().map(|(id, t)| (kaq_schema::time::format_micros(*t), id.clone())).collect();
        // Stable sort by time: of two rows with one time, the one given first comes first.
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("o.parquet")], "no temporary file left");
    }

    #[test]
    fn a_writer_dropped_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WriteOptions { row_group_rows: 64, run_rows: 10, zstd_level: 1, ..WriteOptions::default() };
        let mut w = SortedParquetWriter::create(&dir.path().join("o.parquet"), opts).unwrap();
        for i in 0..5 {
            w.write(batch(&vec![(format!("a{i}"), 100 - i); 12])).unwrap();
        }
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// A sink that keeps the rows it is given, as JSON (and starts again on a reset).
    struct Kept(std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

    impl RowSink for Kept {
        fn rows(&mut self, batch: &RecordBatch) -> Result<(), Error> {
            self.0.lock().unwrap().extend(batch_to_json(batch)?);
            Ok(())
        }
        fn reset(&mut self) -> Result<(), Error> {
            self.0.lock().unwrap().clear();
            Ok(())
        }
    }

    /// With `drop_repeats`, the file holds each distinct row once, the first given, in stable
    /// time order, and the writer counts what it left out; against a plain reference (distinct
    /// lines), for input in time order, shuffled (late rows spilled and merged), in small and
    /// large batches: groups of one time split across batches and across what is written and
    /// held back, rows without a time, a group of one time larger than a small group's set.
    #[test]
    fn repeats_are_left_out_wherever_they_meet() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let line = |id: u64, verb: u64, t: Option<i64>| {
            let time = t.map_or(String::new(), |t| {
                format!(r#","requestReceivedTimestamp":"{}""#, kaq_schema::time::format_micros(t))
            });
            format!(r#"{{"auditID":"a{id}","verb":"v{verb}"{time}}}"#)
        };
        // Distinct records, then as many again drawn from them (repeats), in time order.
        let mut distinct: Vec<String> = Vec::new();
        for i in 0..1500u64 {
            // Times from a few hundred seconds, some without; ids and verbs from small sets, so
            // that records of one time and one id differ in the verb only.
            let t = (next(10) != 0).then(|| next(300) as i64 * 1_000_000);
            distinct.push(line(i % 200, next(3), t));
        }
        // A group of one time larger than a small group's set: 1,300 distinct, each twice.
        for i in 0..1300u64 {
            distinct.push(line(10_000 + i, 0, Some(150 * 1_000_000)));
        }
        let mut input = distinct.clone();
        for _ in 0..2000 {
            input.push(distinct[next(1500) as usize].clone());
        }
        input.extend(distinct[1500..].iter().cloned());
        let time_of = |l: &str| decode_event(l, &DecodeOptions::default()).unwrap().derived.time.unwrap_or(i64::MAX);
        let mut ordered = input.clone();
        ordered.sort_by_key(|l| time_of(l));
        let mut shuffled = input.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, next(i as u64 + 1) as usize);
        }
        for (what, rows, run_rows, chunk) in
            [("in order", &ordered, 64, 7), ("shuffled", &shuffled, 64, 7), ("shuffled, large", &shuffled, 4096, 1000)]
        {
            // The reference: each distinct line once, the first given, stably by time.
            let mut seen = std::collections::HashSet::new();
            let mut want: Vec<&String> = rows.iter().filter(|l| seen.insert(l.as_str())).collect();
            want.sort_by_key(|l| time_of(l));
            let mut b = EventBatchBuilder::new();
            for l in &want {
                b.append(&decode_event(l, &DecodeOptions::default()).unwrap());
            }
            let want_json = batch_to_json(&b.finish()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("o.parquet");
            let opts = WriteOptions { row_group_rows: 256, run_rows, drop_repeats: true, ..WriteOptions::default() };
            let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut w = SortedParquetWriter::create(&path, opts).unwrap().with_sink(Box::new(Kept(kept.clone())));
            for c in rows.chunks(chunk) {
                let mut b = EventBatchBuilder::new();
                for l in c {
                    b.append(&decode_event(l, &DecodeOptions::default()).unwrap());
                }
                w.write(b.finish()).unwrap();
            }
            let written = w.finish().unwrap();
            let mut got = Vec::new();
            for b in crate::read::open(&path, 100).unwrap() {
                got.extend(batch_to_json(&b.unwrap()).unwrap());
            }
            assert_eq!(got.len(), want_json.len(), "{what}");
            assert!(got == want_json, "{what}: the distinct rows, in stable time order");
            assert_eq!(*kept.lock().unwrap(), got, "{what}: the sink saw the file's rows");
            let untimed = |ls: &mut dyn Iterator<Item = &String>| ls.filter(|l| time_of(l) == i64::MAX).count() as u64;
            let repeats = Repeats {
                rows: (rows.len() - want.len()) as u64,
                untimed: untimed(&mut rows.iter()) - untimed(&mut want.iter().copied()),
            };
            assert!(repeats.untimed > 0 && repeats.rows > 1300, "{what}: the test has repeats of each kind");
            assert_eq!(written, Written { rows: want.len() as u64, repeats }, "{what}");
        }
    }
}
