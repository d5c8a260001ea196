//! Hive-partitioned output: `date=2026-11-20/part-0.parquet` or
//! `date=2026-11-20/hour=05/part-0.parquet`, each file sorted by time.
//!
//! All or nothing: every file is completed under a hidden temporary name (also those closed early
//! to bound the open files) and only [`PartitionedWriter::finish`] renames them into place, all
//! at the end; a run that fails before leaves no file (the temporaries are removed), so running
//! it again with `--append` cannot duplicate a part. Should a rename itself fail, the error names
//! the files already in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_select::take::take_record_batch;
use kaq_schema::time::date_hour;

use crate::error::{Error, IoContext};
use crate::write::{SortedParquetWriter, Staged, WriteOptions, times};

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
    /// Every file of this run, in the order started (their names are taken).
    files: Vec<PathBuf>,
    /// Files complete and waiting to be published by `finish`.
    staged: Vec<Staged>,
    /// Directories this run made (removed again, when empty, if it fails).
    made: Vec<PathBuf>,
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
        let made = if dir.exists() { Vec::new() } else { vec![dir.to_path_buf()] };
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
            staged: Vec::new(),
            made,
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
                    self.staged.push(w.finish_staged()?);
                }
            }
            let dir = self.dir.join(part);
            // `date=…` then `date=…/hour=…`, each when new.
            let new: Vec<PathBuf> =
                dir.ancestors().take_while(|d| *d != self.dir).filter(|d| !d.exists()).map(Path::to_path_buf).collect();
            self.made.extend(new.into_iter().rev());
            std::fs::create_dir_all(&dir).at(&dir)?;
            // Not a name on disk, nor one this run has staged (published only at the end).
            let path = (0..)
                .map(|n| dir.join(format!("part-{n}.parquet")))
                .find(|p| !p.exists() && !self.files.contains(p))
                .expect("a free name");
            self.files.push(path.clone());
            self.writers.insert(part.to_string(), (SortedParquetWriter::create(&path, self.opts.clone())?, 0));
        }
        let entry = self.writers.get_mut(part).expect("just inserted");
        entry.1 = self.clock;
        Ok(&mut entry.0)
    }

    /// Finishes every file, then puts them all in place; returns their paths. On an error
    /// before the renames nothing is published; should a rename fail, the error lists the files
    /// published before it ([`Error::PartlyPublished`]).
    pub fn finish(mut self) -> Result<Vec<PathBuf>, Error> {
        for (_, (w, _)) in std::mem::take(&mut self.writers) {
            self.staged.push(w.finish_staged()?);
        }
        let mut published = Vec::new();
        self.made.clear(); // from here on, what was made holds what was published
        for staged in std::mem::take(&mut self.staged) {
            match staged.publish() {
                Ok(p) => published.push(p),
                Err(error) => return Err(Error::PartlyPublished { published, error: Box::new(error) }),
            }
        }
        Ok(published)
    }
}

impl Drop for PartitionedWriter {
    /// A run that fails leaves nothing: its temporary files, then the directories it made.
    fn drop(&mut self) {
        self.writers.clear();
        self.staged.clear();
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d); // only when empty
        }
    }
}
