//! Hive-partitioned output: `date=2026-11-20/part-0.parquet` or
//! `date=2026-11-20/hour=05/part-0.parquet`, each file sorted by time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_select::take::take_record_batch;
use kaq_schema::time::date_hour;

use crate::error::{Error, IoContext};
use crate::write::{SortedParquetWriter, WriteOptions, times};

/// How to split files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    Day,
    Hour,
}

/// The Hive name of the partition of rows without a time.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Writes a directory of partitions.
pub struct PartitionedWriter {
    dir: PathBuf,
    by: Partitioning,
    opts: WriteOptions,
    writers: BTreeMap<String, (SortedParquetWriter, u64)>,
    files: Vec<PathBuf>,
    /// Ticks for least-recently-used closing.
    clock: u64,
}

/// Open files at most: past this, the partition written least recently is finished (a later row
/// for it starts a new `part-N` file there), so months of hourly partitions stay under the
/// open-file limit.
const MAX_OPEN: usize = 64;

impl PartitionedWriter {
    /// Starts writing under `dir` (created if missing). Unless `append`, `dir` must be empty, so
    /// that a second run cannot silently double the data.
    pub fn create(dir: &Path, by: Partitioning, opts: WriteOptions, append: bool) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).at(dir)?;
        // Hidden kaq temporaries (`.part-0.parquet.kaq-tmp`) left by a killed run do not count.
        let is_ours_tmp = |n: &str| n.starts_with('.') && n.contains(".kaq-");
        let mut entries = std::fs::read_dir(dir).at(dir)?;
        if !append && entries.any(|e| e.is_ok_and(|e| !is_ours_tmp(&e.file_name().to_string_lossy()))) {
            return Err(Error::OutDirNotEmpty(dir.to_path_buf()));
        }
        Ok(PartitionedWriter {
            dir: dir.to_path_buf(),
            by,
            opts,
            writers: BTreeMap::new(),
            files: Vec::new(),
            clock: 0,
        })
    }

    fn partition_of(&self, t: Option<i64>) -> String {
        match t {
            None => match self.by {
                Partitioning::Day => format!("date={DEFAULT_PARTITION}"),
                Partitioning::Hour => format!("date={DEFAULT_PARTITION}/hour={DEFAULT_PARTITION}"),
            },
            Some(t) => {
                let (d, h) = date_hour(t);
                match self.by {
                    Partitioning::Day => format!("date={d}"),
                    Partitioning::Hour => format!("date={d}/hour={h:02}"),
                }
            }
        }
    }

    /// Adds a batch of [`audit_schema`](crate::audit_schema).
    pub fn write(&mut self, batch: RecordBatch) -> Result<(), Error> {
        let t = times(&batch);
        // Rows of one batch mostly fall in one or two partitions: group consecutive runs.
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut last: Option<(Option<i64>, String)> = None;
        for i in 0..batch.num_rows() {
            let v = t.is_valid(i).then(|| t.value(i));
            let hour = v.map(|v| v.div_euclid(3_600_000_000));
            let part = match &last {
                Some((h, p)) if *h == hour => p.clone(),
                _ => {
                    let p = self.partition_of(v);
                    last = Some((hour, p.clone()));
                    p
                }
            };
            groups.entry(part).or_default().push(i as u32);
        }
        let single = groups.len() == 1;
        let mut touched = Vec::new();
        for (part, rows) in groups {
            let part_batch = if single { batch.clone() } else { take_record_batch(&batch, &UInt32Array::from(rows))? };
            self.writer(&part)?.write(part_batch)?;
            touched.push(part);
        }
        // Bound memory: partitions not written just now give up their buffers.
        let pending: usize = self.writers.values().map(|w| w.0.pending_rows()).sum();
        if pending > self.opts.run_rows {
            for (part, (w, _)) in self.writers.iter_mut() {
                if !touched.contains(part) {
                    w.flush(true)?;
                }
            }
        }
        Ok(())
    }

    fn writer(&mut self, part: &str) -> Result<&mut SortedParquetWriter, Error> {
        self.clock += 1;
        if !self.writers.contains_key(part) {
            if self.writers.len() >= MAX_OPEN {
                let oldest = self.writers.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone());
                if let Some((w, _)) = oldest.and_then(|k| self.writers.remove(&k)) {
                    w.finish()?;
                }
            }
            let dir = self.dir.join(part);
            std::fs::create_dir_all(&dir).at(&dir)?;
            let path = (0..).map(|n| dir.join(format!("part-{n}.parquet"))).find(|p| !p.exists()).expect("a free name");
            self.files.push(path.clone());
            self.writers.insert(part.to_string(), (SortedParquetWriter::create(&path, self.opts.clone())?, 0));
        }
        let entry = self.writers.get_mut(part).expect("just inserted");
        entry.1 = self.clock;
        Ok(&mut entry.0)
    }

    /// Finishes every file; returns their paths.
    pub fn finish(self) -> Result<Vec<PathBuf>, Error> {
        for (_, (w, _)) in self.writers {
            w.finish()?;
        }
        Ok(self.files)
    }
}
