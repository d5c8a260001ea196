//! A Parquet file writer that encodes each row group's columns on several threads.
//!
//! Encoding (dictionaries, zstd) is the costliest part of writing; one thread doing it for all
//! columns would make it the slowest stage of a conversion. Here each row group's leaf columns
//! are spread over the threads by size (measured on its first batch), and every batch is cut
//! into its leaf columns and handed to the threads as it arrives: a row group is encoded while
//! it fills, and only its encoded pages are held, never its rows. When it is full, its threads
//! finish its column chunks while the next one fills, and the chunks are appended to the file in
//! order. Memory: the encoded pages of about two row groups, and a few batches in the threads'
//! queues.
//!
//! The threads live as long as the writer. A row group's column writers allocate a few
//! megabytes each (dictionaries, pages, a zstd context); a thread that encodes one row group
//! after another reuses that memory, where a thread started for each row group got fresh pages
//! from the system every time (and so page faults: half of an ingest's, 4–5% of its time).

use std::collections::VecDeque;
use std::fs::File;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::error::Error;
use crate::schema::audit_schema;

/// A thread's column chunks of a row group, with their leaf numbers.
type Chunks = Result<Vec<(usize, ArrowColumnChunk)>, ParquetError>;

/// Pieces of leaf columns for one thread: (its writer's slot, the piece).
type Pieces = Vec<(usize, ArrowLeafColumn)>;

/// A thread's column writers of a row group, with their leaf numbers.
type Share = Vec<(usize, ArrowColumnWriter)>;

/// What an encoder thread is given, in order: a row group's column writers and where to send
/// their chunks, the pieces of its columns, then its end.
enum Job {
    Start(Share, SyncSender<Chunks>),
    Pieces(Pieces),
    End,
}

/// Jobs queued for each encoder thread at most (the caller waits beyond).
const QUEUED: usize = 2;

/// An encoder thread.
struct Worker {
    jobs: SyncSender<Job>,
    handle: JoinHandle<()>,
}

/// The row group being filled.
struct Filling {
    rows: usize,
    /// Each leaf column's thread and slot in that thread's writers.
    route: Vec<(usize, usize)>,
    /// Each thread given columns of it: its number, and where its chunks will come.
    results: Vec<(usize, Receiver<Chunks>)>,
}

pub(crate) struct ParallelFileWriter {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    row_group_rows: usize,
    filling: Option<Filling>,
    in_flight: VecDeque<Vec<(usize, Receiver<Chunks>)>>,
    row_groups: usize,
    /// The encoder threads, one a core, each started the first time it is given columns.
    workers: Vec<Option<Worker>>,
}

impl ParallelFileWriter {
    pub fn new(file: File, props: WriterProperties, row_group_rows: usize) -> Result<Self, Error> {
        let (writer, factory) = ArrowWriter::try_new(file, audit_schema(), Some(props))?.into_serialized_writer()?;
        Ok(ParallelFileWriter {
            writer,
            factory,
            row_group_rows: row_group_rows.max(1),
            filling: None,
            in_flight: VecDeque::new(),
            row_groups: 0,
            workers: (0..std::thread::available_parallelism().map_or(2, |n| n.get())).map(|_| None).collect(),
        })
    }

    /// Adds rows (in the order they are to appear in the file).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let filled = self.filling.as_ref().map_or(0, |f| f.rows);
            let take = (self.row_group_rows - filled).min(batch.num_rows() - offset);
            self.encode(&batch.slice(offset, take))?;
            offset += take;
            if self.filling.as_ref().is_some_and(|f| f.rows == self.row_group_rows) {
                self.end_row_group()?;
            }
        }
        Ok(())
    }

    /// Hands the leaf columns of `batch` to the encoder threads of the row group being filled
    /// (started with this batch when none is).
    fn encode(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let schema = audit_schema();
        let mut leaves: Vec<(ArrowLeafColumn, usize)> = Vec::new();
        for (f, field) in schema.fields().iter().enumerate() {
            let col = batch.column(f);
            let found = compute_leaves(field, col)?;
            let n = found.len().max(1);
            let cost = col.get_array_memory_size() / n;
            leaves.extend(found.into_iter().map(|l| (l, cost)));
        }
        if self.filling.is_none() {
            let costs: Vec<usize> = leaves.iter().map(|l| l.1).collect();
            self.filling = Some(self.start_row_group(&costs)?);
        }
        let filling = self.filling.as_mut().expect("started");
        let mut pieces: Vec<Pieces> = (0..self.workers.len()).map(|_| Vec::new()).collect();
        for (k, (leaf, _)) in leaves.into_iter().enumerate() {
            let (t, slot) = filling.route[k];
            pieces[t].push((slot, leaf));
        }
        for (t, p) in pieces.into_iter().enumerate() {
            if !p.is_empty() && send(&self.workers[t], Job::Pieces(p)).is_err() {
                return Err(stopped());
            }
        }
        filling.rows += batch.num_rows();
        Ok(())
    }

    /// Starts a row group: its column writers spread over the threads by `costs` (a leaf's
    /// share of the first batch), largest first onto the least loaded thread.
    fn start_row_group(&mut self, costs: &[usize]) -> Result<Filling, Error> {
        let writers = self.factory.create_column_writers(self.row_groups)?;
        self.row_groups += 1;
        let mut order: Vec<usize> = (0..writers.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(costs.get(k).copied().unwrap_or(0)));
        let mut load = vec![0usize; self.workers.len()];
        let mut route = vec![(0, 0); writers.len()];
        let mut shares: Vec<Share> = (0..load.len()).map(|_| Vec::new()).collect();
        let mut writers: Vec<Option<ArrowColumnWriter>> = writers.into_iter().map(Some).collect();
        for k in order {
            let t = (0..load.len()).min_by_key(|&t| load[t]).expect("at least one thread");
            load[t] += costs.get(k).copied().unwrap_or(0);
            route[k] = (t, shares[t].len());
            shares[t].push((k, writers[k].take().expect("each writer once")));
        }
        let mut results = Vec::new();
        for (t, share) in shares.into_iter().enumerate() {
            if share.is_empty() {
                continue;
            }
            let worker = self.workers[t].get_or_insert_with(Worker::start);
            let (tx, rx) = sync_channel::<Chunks>(1);
            if worker.jobs.send(Job::Start(share, tx)).is_err() {
                return Err(stopped());
            }
            results.push((t, rx));
        }
        Ok(Filling { rows: 0, route, results })
    }

    /// Ends the row group being filled: its threads finish its column chunks while the next
    /// fills; the one before it is appended to the file.
    fn end_row_group(&mut self) -> Result<(), Error> {
        let Some(filling) = self.filling.take() else { return Ok(()) };
        for (t, _) in &filling.results {
            if send(&self.workers[*t], Job::End).is_err() {
                return Err(stopped());
            }
        }
        self.in_flight.push_back(filling.results);
        while self.in_flight.len() > 1 {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest row group in flight and appends it to the file.
    fn append_oldest(&mut self) -> Result<(), Error> {
        let Some(results) = self.in_flight.pop_front() else { return Ok(()) };
        let mut chunks = Vec::new();
        for (_, rx) in results {
            chunks.extend(rx.recv().map_err(|_| stopped())??);
        }
        chunks.sort_by_key(|c| c.0);
        let mut rg = self.writer.next_row_group()?;
        for (_, c) in chunks {
            c.append_to_row_group(&mut rg)?;
        }
        rg.close()?;
        Ok(())
    }

    /// Ends the row group being filled (smaller than the others) and appends every row group.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.end_row_group()?;
        while !self.in_flight.is_empty() {
            self.append_oldest()?;
        }
        Ok(())
    }

    pub fn close(mut self) -> Result<(), Error> {
        self.flush()?;
        self.writer.close()?;
        for w in std::mem::take(&mut self.workers).into_iter().flatten() {
            drop(w.jobs);
            w.handle.join().map_err(|_| stopped())?;
        }
        Ok(())
    }
}

/// Gives `job` to an encoder thread (one that was started: routes name only those).
fn send(worker: &Option<Worker>, job: Job) -> Result<(), ()> {
    worker.as_ref().ok_or(())?.jobs.send(job).map_err(|_| ())
}

/// An encoder thread that stopped before giving its chunks: it panicked.
fn stopped() -> Error {
    ParquetError::General("an encoder thread stopped".into()).into()
}

impl Worker {
    fn start() -> Worker {
        let (jobs, rx) = sync_channel::<Job>(QUEUED);
        let handle = std::thread::Builder::new()
            .name("kaq-encode".into())
            .spawn(move || encode_jobs(rx))
            .expect("spawning an encoder thread");
        Worker { jobs, handle }
    }
}

/// An encoder thread: for each row group it is given columns of, writes the pieces into their
/// column writers, and at the row group's end closes them and sends their chunks. A write that
/// fails sends its error at once; the row group's other pieces are then dropped. Ends when the
/// writer does (its jobs' sender is dropped).
fn encode_jobs(rx: Receiver<Job>) {
    let mut current: Option<(Share, SyncSender<Chunks>)> = None;
    for job in rx {
        match job {
            Job::Start(share, tx) => current = Some((share, tx)),
            Job::Pieces(pieces) => {
                let Some((share, _)) = current.as_mut() else { continue };
                let written = pieces.into_iter().try_for_each(|(slot, leaf)| share[slot].1.write(&leaf));
                if let Err(e) = written
                    && let Some((_, tx)) = current.take()
                {
                    let _ = tx.send(Err(e));
                }
            }
            Job::End => {
                if let Some((share, tx)) = current.take() {
                    let _ = tx.send(share.into_iter().map(|(k, w)| Ok((k, w.close()?))).collect());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventBatchBuilder, batch_to_json};
    use kaq_schema::{DecodeOptions, decode_event};

    /// Batches that cross row group boundaries come out as row groups of the set size, every
    /// row in order, as the plain Arrow writer writes them.
    #[test]
    fn row_groups_of_the_set_size_every_row_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        let path = dir.path().join("p.parquet");
        let props = WriterProperties::builder().build();
        let mut w = ParallelFileWriter::new(File::create(&path).unwrap(), props.clone(), 64).unwrap();
        let plain = dir.path().join("a.parquet");
        let mut a = ArrowWriter::try_new(File::create(&plain).unwrap(), audit_schema(), Some(props)).unwrap();
        for chunk in 0..143 {
            let mut b = EventBatchBuilder::new();
            for i in 0..7 {
                let n = chunk * 7 + i;
                let line = format!(
                    r#"{{"auditID":"id-{n}","verb":"get","user":{{"username":"u{}","groups":["g{n}"]}},"annotations":{{"k":"{n}"}},"requestReceivedTimestamp":"2026-11-20T05:00:00Z"}}"#,
                    n % 5
                );
                b.append(&decode_event(&line, &DecodeOptions::default()).unwrap());
            }
            let batch = b.finish();
            w.write(&batch).unwrap();
            a.write(&batch).unwrap();
            all.extend(batch_to_json(&batch).unwrap());
        }
        w.close().unwrap();
        a.close().unwrap();
        let f = File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups.len(), 16);
        assert!(groups[..15].iter().all(|n| *n == 64) && groups[15] == 1001 - 15 * 64);
        let mut got = Vec::new();
        for b in reader.build().unwrap() {
            got.extend(batch_to_json(&b.unwrap()).unwrap());
        }
        assert_eq!(got, all);
        // The same row groups' content as one plain writer's (which writes row groups of 1024).
        let mut plain_rows = Vec::new();
        for b in crate::read::open(&plain, 100).unwrap() {
            plain_rows.extend(batch_to_json(&b.unwrap()).unwrap());
        }
        assert_eq!(plain_rows, all);
    }

    /// A writer dropped in the middle of a row group (an error elsewhere, a cancelled ingest)
    /// lets its threads go: the drop returns, and another writer encodes the same batches.
    #[test]
    fn a_writer_dropped_mid_row_group_lets_its_threads_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = EventBatchBuilder::new();
        for n in 0..50 {
            let line =
                format!(r#"{{"auditID":"id-{n}","verb":"get","requestReceivedTimestamp":"2026-11-20T05:00:00Z"}}"#);
            b.append(&decode_event(&line, &DecodeOptions::default()).unwrap());
        }
        let batch = b.finish();
        let props = WriterProperties::builder().build();
        let path = dir.path().join("p.parquet");
        let mut w = ParallelFileWriter::new(File::create(&path).unwrap(), props.clone(), 64).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        drop(w);
        let mut w = ParallelFileWriter::new(File::create(&path).unwrap(), props, 64).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let rows: usize = crate::read::open(&path, 100).unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 100);
    }
}
