//! A Parquet file writer that encodes each row group's columns on several threads.
//!
//! Encoding (dictionaries, zstd) is the costliest part of writing; one thread doing it for all
//! columns would make it the slowest stage of a conversion. Here a full row group is cut into
//! its leaf columns, spread over the threads by size, encoded there, and the finished column
//! chunks are appended to the file in order. One row group is encoded while the next fills, and
//! no more: memory stays at about two row groups.

use std::collections::VecDeque;
use std::fs::File;
use std::thread::JoinHandle;

use arrow_array::{Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::error::Error;
use crate::schema::audit_schema;

type Encoded = JoinHandle<Result<Vec<(usize, ArrowColumnChunk)>, ParquetError>>;

pub(crate) struct ParallelFileWriter {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    buffered: Vec<RecordBatch>,
    buffered_rows: usize,
    row_group_rows: usize,
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
            buffered: Vec::new(),
            buffered_rows: 0,
            row_group_rows: row_group_rows.max(1),
            in_flight: VecDeque::new(),
            row_groups: 0,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        })
    }

    /// Adds rows (in the order they are to appear in the file).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.row_group_rows - self.buffered_rows).min(batch.num_rows() - offset);
            self.buffered.push(batch.slice(offset, take));
            self.buffered_rows += take;
            offset += take;
            if self.buffered_rows == self.row_group_rows {
                self.start_row_group()?;
            }
        }
        Ok(())
    }

    /// Encodes the buffered rows as one row group, on the encoder threads.
    fn start_row_group(&mut self) -> Result<(), Error> {
        if self.buffered_rows == 0 {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.buffered);
        self.buffered_rows = 0;
        let writers = self.factory.create_column_writers(self.row_groups)?;
        self.row_groups += 1;
        // Each leaf column with its writer and its pieces (one per batch).
        let schema = audit_schema();
        let mut work: Vec<(usize, _, Vec<_>, usize)> = Vec::with_capacity(writers.len());
        let mut writers = writers.into_iter().enumerate();
        for (f, field) in schema.fields().iter().enumerate() {
            let mut per_leaf: Vec<Vec<_>> = Vec::new();
            for b in &batches {
                for (k, leaf) in compute_leaves(field, b.column(f))?.into_iter().enumerate() {
                    if per_leaf.len() <= k {
                        per_leaf.push(Vec::with_capacity(batches.len()));
                    }
                    per_leaf[k].push(leaf);
                }
            }
            let cost: usize = batches.iter().map(|b| b.column(f).get_array_memory_size()).sum();
            let n = per_leaf.len().max(1);
            for pieces in per_leaf {
                let (i, w) = writers.next().expect("a writer per leaf");
                work.push((i, w, pieces, cost / n));
            }
        }
        // Largest first onto the least loaded thread.
        work.sort_by_key(|w| std::cmp::Reverse(w.3));
        let mut shares: Vec<(usize, Vec<_>)> = (0..self.threads).map(|_| (0, Vec::new())).collect();
        for w in work {
            let s = shares.iter_mut().min_by_key(|s| s.0).expect("at least one thread");
            s.0 += w.3;
            s.1.push(w);
        }
        let handles = shares
            .into_iter()
            .filter(|s| !s.1.is_empty())
            .map(|(_, share)| {
                std::thread::Builder::new()
                    .name("kaq-encode".into())
                    .spawn(move || {
                        let mut out = Vec::with_capacity(share.len());
                        for (i, mut w, pieces, _) in share {
                            for p in &pieces {
                                w.write(p)?;
                            }
                            out.push((i, w.close()?));
                        }
                        Ok(out)
                    })
                    .expect("spawning an encoder thread")
            })
            .collect();
        self.in_flight.push_back(handles);
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

    /// Ends the row group being filled (smaller than the others) and encodes it.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.start_row_group()?;
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
