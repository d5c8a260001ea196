//! Reading Parquet files back.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{Error, IoContext};
use crate::prune::{Pruning, RowGroupStats};

/// Whether the file starts with Parquet's magic bytes.
pub fn is_parquet(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PAR1"
}

/// The batches of a Parquet file.
pub fn open(path: &Path, batch_rows: usize) -> Result<ParquetRecordBatchReader, Error> {
    let f = File::open(path).at(path)?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(f)?.with_batch_size(batch_rows).build()?)
}

/// Why [`par_row_groups`] stopped.
#[derive(Debug)]
pub enum ParError {
    /// A file could not be opened or read.
    File { path: PathBuf, error: Error },
    /// The caller's cancel flag was set.
    Cancelled,
}

pub struct RowGroupJob<'a> {
    /// The file, opened before any reading.
    pub file: &'a SharedFile,
    /// The file's metadata (footer), read once for all its row groups: parsing it costs in
    /// proportion to the file's row groups, so parsing it again for each would cost the square.
    pub meta: &'a parquet::arrow::arrow_reader::ArrowReaderMetadata,
    pub group: usize,
    /// The group's first row in its file.
    pub first_row: u64,
    /// Rows in the group.
    pub rows: u64,
    /// Whether the file has exactly kaq's columns (then dictionaries can be asked for).
    pub kaq_schema: bool,
    /// Its place among the jobs (and in the results).
    pub index: usize,
}

impl RowGroupJob<'_> {
    /// A reader builder of the file, on the metadata already read.
    pub fn builder(&self) -> ParquetRecordBatchReaderBuilder<SharedFile> {
        ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), self.meta.clone())
    }

    /// A reader builder of the file with `options` (e.g. a schema hint), on the metadata
    /// already read (only the Arrow schema is derived again).
    pub fn builder_with_options(
        &self,
        options: parquet::arrow::arrow_reader::ArrowReaderOptions,
    ) -> Result<ParquetRecordBatchReaderBuilder<SharedFile>, Error> {
        let meta = parquet::arrow::arrow_reader::ArrowReaderMetadata::try_new(self.meta.metadata().clone(), options)?;
        Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), meta))
    }
}

/// Runs `job` on every row group of kaq Parquet `files`, on `threads` threads, and returns the
/// results in file and row-group order. Every file is opened once, before any reading: a handle
/// keeps a file readable even if a store writer removes it meanwhile (after a compaction).
/// `cancel` is checked before each row group. Row groups whose column statistics prove that no
/// row meets one of `prune` are skipped ([`Pruning`]): only for callers that test each row on
/// its own against a filter that implies those bounds. Also returns the number skipped.
pub fn par_row_groups<T: Send>(
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
    prune: &Pruning,
    job: impl Fn(&RowGroupJob<'_>) -> Result<T, Error> + Sync,
) -> Result<(Vec<T>, u64), ParError> {
    let mut all = Vec::new();
    let skipped = par_row_groups_each(files, threads, cancel, prune, usize::MAX, job, &mut |t| all.push(t))?;
    Ok((all, skipped))
}

/// [`par_row_groups`], handing each result to `consume` in file and row-group order as soon as
/// it and those before it are done, with at most `window` results done or under way that
/// `consume` has not taken: a caller that does not keep the results holds at most `window` of
/// them at once. Returns the number of row groups skipped.
pub fn par_row_groups_each<T: Send>(
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
    prune: &Pruning,
    window: usize,
    job: impl Fn(&RowGroupJob<'_>) -> Result<T, Error> + Sync,
    consume: &mut dyn FnMut(T),
) -> Result<u64, ParError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};
    let perr = |path: &Path, e: Error| ParError::File { path: path.to_path_buf(), error: e };
    let audit = crate::audit_schema();
    let mut handles: Vec<(SharedFile, parquet::arrow::arrow_reader::ArrowReaderMetadata)> = Vec::new();
    // (file, group, first row, rows, kaq schema)
    let mut jobs: Vec<(usize, usize, u64, u64, bool)> = Vec::new();
    let mut skipped = 0u64;
    for (f, path) in files.iter().enumerate() {
        let file = std::fs::File::open(path).map_err(|e| perr(path, Error::Io { path: path.clone(), error: e }))?;
        let shared = SharedFile::new(file);
        let loaded = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(&shared, Default::default())
            .map_err(|e| perr(path, e.into()))?;
        let b = ParquetRecordBatchReaderBuilder::new_with_metadata(shared.clone(), loaded.clone());
        if b.schema().field_with_name("id").is_err() {
            // Scans read only some columns: check what Columns::new would for the whole file.
            return Err(perr(path, Error::NotKaqParquet("it has no `id` column".into())));
        }
        let exact = b.schema().fields().iter().map(|f| f.name()).eq(audit.fields().iter().map(|f| f.name()));
        let mut start = 0u64;
        let meta = b.metadata().file_metadata();
        for (g, rg) in b.metadata().row_groups().iter().enumerate() {
            let rows = rg.num_rows() as u64;
            if prune.rules_out(&RowGroupStats { group: rg, file: meta }).is_some() {
                skipped += 1;
            } else {
                jobs.push((f, g, start, rows, exact));
            }
            start += rows;
        }
        handles.push((shared, loaded));
    }
    let window = window.max(1);
    // The results not yet taken (by job number), how many were taken, and whether to stop.
    struct State<T> {
        /// A job that panicked leaves its panic, raised again on the calling thread.
        done: Vec<Option<std::thread::Result<Result<T, ParError>>>>,
        taken: usize,
        stop: bool,
    }
    let state = Mutex::new(State { done: jobs.iter().map(|_| None).collect(), taken: 0, stop: false });
    let changed = Condvar::new();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(f, group, first_row, rows, kaq_schema)) = jobs.get(j) else { return };
            {
                let mut st = state.lock().expect("unpoisoned");
                while !st.stop && j >= st.taken.saturating_add(window) {
                    st = changed.wait(st).expect("unpoisoned");
                }
                if st.stop {
                    return;
                }
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    Err(ParError::Cancelled)
                } else {
                    let (file, meta) = &handles[f];
                    job(&RowGroupJob { file, meta, group, first_row, rows, kaq_schema, index: j })
                        .map_err(|e| perr(&files[f], e))
                }
            }));
            state.lock().expect("unpoisoned").done[j] = Some(r);
            changed.notify_all();
        }
    };
    let mut outcome = Ok(skipped);
    let mut panicked = None;
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            s.spawn(work);
        }
        for j in 0..jobs.len() {
            let r = {
                let mut st = state.lock().expect("unpoisoned");
                loop {
                    if let Some(r) = st.done[j].take() {
                        break r;
                    }
                    st = changed.wait(st).expect("unpoisoned");
                }
            };
            match r {
                Err(panic) => {
                    panicked = Some(panic);
                    break;
                }
                Ok(Ok(t)) => {
                    state.lock().expect("unpoisoned").taken = j + 1;
                    changed.notify_all();
                    consume(t);
                }
                Ok(Err(e)) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // Done, or stopped at an error: workers waiting for room end.
        state.lock().expect("unpoisoned").stop = true;
        changed.notify_all();
    });
    if let Some(panic) = panicked {
        std::panic::resume_unwind(panic);
    }
    outcome
}

/// An open file that several threads read at once, by position (`pread`): parquet's reader for
/// `File` shares one file offset between clones, which threads would race on.
#[derive(Clone)]
pub struct SharedFile(std::sync::Arc<std::fs::File>);

impl SharedFile {
    pub fn new(f: std::fs::File) -> SharedFile {
        SharedFile(std::sync::Arc::new(f))
    }
}

impl parquet::file::reader::Length for SharedFile {
    fn len(&self) -> u64 {
        self.0.metadata().map_or(0, |m| m.len())
    }
}

/// A reader at a position of a [`SharedFile`], reading with `pread`.
pub struct PositionedRead {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
}

impl std::io::Read for PositionedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl parquet::file::reader::ChunkReader for SharedFile {
    type T = std::io::BufReader<PositionedRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::new(PositionedRead { file: self.0.clone(), pos: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; length];
        self.0.read_exact_at(&mut buf, start).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(bytes::Bytes::from(buf))
    }
}
