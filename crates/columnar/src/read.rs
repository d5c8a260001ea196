//! Reading Parquet files back.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{Error, IoContext};

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
