//! Answers as Parquet files.

use std::path::Path;

use kaq_columnar::{SortedParquetWriter, WriteOptions};
use kaq_query::{Column, Row};

use crate::Error;

/// Writes rows to a Parquet file at `path`, replacing it whole (written aside, then renamed):
/// whole events as kaq's audit Parquet (what `kaq convert` writes: readable by DuckDB, Spark,
/// pandas, and by kaq again), other rows as a flat table typed from `columns` (zstd).
pub fn write_parquet(path: &Path, columns: &[Column], rows: &[Row], whole_events: bool) -> Result<(), Error> {
    if whole_events {
        let mut w = SortedParquetWriter::create(path, WriteOptions::default())?;
        for chunk in rows.chunks(8192) {
            w.write(kaq_query::arrow::events_batch(chunk).map_err(kaq_columnar::Error::from)?)?;
        }
        w.finish()?;
        return Ok(());
    }
    let io = |p: &Path, error: std::io::Error| kaq_columnar::Error::Io { path: p.to_path_buf(), error };
    let batch = kaq_query::arrow::rows_batch(columns, rows).map_err(kaq_columnar::Error::from)?;
    let tmp = path.with_file_name(format!(".{}.kaq-tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let write = || -> Result<(), parquet::errors::ParquetError> {
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
        w.write(&batch)?;
        w.close()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(kaq_columnar::Error::from(e).into());
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    Ok(())
}
