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

type Encoded = JoinHandle<Result<Vec<(usize, ArrowColumnChunk)>, ParquetError>>;

/// Pieces of leaf columns for one thread: (its writer's slot, the piece).
type Pieces = Vec<(usize, ArrowLeafColumn)>;

/// Batches queued for each encoder thread at most (the caller waits beyond).
const QUEUED: usize = 2;

/// The row group being filled.
struct Filling {
    rows: usize,
    /// Each leaf column's thread and slot in that thread's writers.
    route: Vec<(usize, usize)>,
    senders: Vec<SyncSender<Pieces>>,
    handles: Vec<Encoded>,
}

pub(crate) struct ParallelFileWriter {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    row_group_rows: usize,
    filling: Option<Filling>,
    in_flight: VecDeque<Vec<Encoded>>,
    row_groups: usize,
    threads: usize,
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
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
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
        let mut pieces: Vec<Pieces> = (0..filling.senders.len()).map(|_| Vec::new()).collect();
        for (k, (leaf, _)) in leaves.into_iter().enumerate() {
            let (t, slot) = filling.route[k];
            pieces[t].push((slot, leaf));
        }
        for (t, p) in pieces.into_iter().enumerate() {
            if !p.is_empty() && filling.senders[t].send(p).is_err() {
                // The thread stopped on an error: it is in its result.
                return Err(self.fail());
            }
        }
        filling.rows += batch.num_rows();
        Ok(())
    }

    /// The error an encoder thread of the row group being filled stopped on.
    fn fail(&mut self) -> Error {
        let filling = self.filling.take().expect("filling");
        drop(filling.senders);
        for h in filling.handles {
            match h.join() {
                Ok(Err(e)) => return e.into(),
                Err(_) => return ParquetError::General("an encoder thread panicked".into()).into(),
                Ok(Ok(_)) => {}
            }
        }
        ParquetError::General("an encoder thread stopped".into()).into()
    }

    /// Starts a row group: its column writers spread over the threads by `costs` (a leaf's
    /// share of the first batch), largest first onto the least loaded thread.
    fn start_row_group(&mut self, costs: &[usize]) -> Result<Filling, Error> {
        let writers = self.factory.create_column_writers(self.row_groups)?;
        self.row_groups += 1;
        let mut order: Vec<usize> = (0..writers.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(costs.get(k).copied().unwrap_or(0)));
        let mut load = vec![0usize; self.threads.max(1)];
        let mut route = vec![(0, 0); writers.len()];
        let mut shares: Vec<Vec<(usize, ArrowColumnWriter)>> = (0..load.len()).map(|_| Vec::new()).collect();
        let mut writers: Vec<Option<ArrowColumnWriter>> = writers.into_iter().map(Some).collect();
        for k in order {
            let t = (0..load.len()).min_by_key(|&t| load[t]).expect("at least one thread");
            load[t] += costs.get(k).copied().unwrap_or(0);
            route[k] = (t, shares[t].len());
            shares[t].push((k, writers[k].take().expect("each writer once")));
        }
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        let mut used = vec![usize::MAX; shares.len()];
        for (t, share) in shares.into_iter().enumerate() {
            if share.is_empty() {
                continue;
            }
            used[t] = senders.len();
            let (tx, rx) = sync_channel::<Pieces>(QUEUED);
            senders.push(tx);
            handles.push(
                std::thread::Builder::new()
                    .name("kaq-encode".into())
                    .spawn(move || encode_share(share, rx))
                    .expect("spawning an encoder thread"),
            );
        }
        // Threads without columns are not started: routes name the started ones.
        for r in &mut route {
            r.0 = used[r.0];
        }
        Ok(Filling { rows: 0, route, senders, handles })
    }

    /// Ends the row group being filled: its threads finish its column chunks while the next
    /// fills; the one before it is appended to the file.
    fn end_row_group(&mut self) -> Result<(), Error> {
        let Some(filling) = self.filling.take() else { return Ok(()) };
        drop(filling.senders);
        self.in_flight.push_back(filling.handles);
        while self.in_flight.len() > 1 {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest row group in flight and appends it to the file.
    fn append_oldest(&mut self) -> Result<(), Error> {
        let Some(handles) = self.in_flight.pop_front() else { return Ok(()) };
        let mut chunks = Vec::new();
        for h in handles {
            chunks.extend(h.join().map_err(|_| ParquetError::General("an encoder thread panicked".into()))??);
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
        Ok(())
    }
}

/// An encoder thread: writes the pieces it is given into its column writers, and closes them
/// when its queue ends; returns the column chunks with their leaf numbers.
fn encode_share(
    mut share: Vec<(usize, ArrowColumnWriter)>,
    rx: Receiver<Pieces>,
) -> Result<Vec<(usize, ArrowColumnChunk)>, ParquetError> {
    for pieces in rx {
        for (slot, leaf) in pieces {
            share[slot].1.write(&leaf)?;
        }
    }
    share.into_iter().map(|(k, w)| Ok((k, w.close()?))).collect()
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
}
