//! `kaq query --format parquet`: whole events as kaq's audit Parquet (what `kaq convert` writes),
//! other rows as a flat table typed from the query's columns (kaq_query::arrow).

use std::path::Path;

use anyhow::Context;
use kaq_columnar::{SortedParquetWriter, WriteOptions};
use kaq_query::{Plan, Row};

pub fn write(path: &Path, plan: &Plan, rows: &[Row]) -> anyhow::Result<()> {
    if plan.whole_events {
        let mut w = SortedParquetWriter::create(path, WriteOptions::default())?;
        for chunk in rows.chunks(8192) {
            w.write(kaq_query::arrow::events_batch(chunk)?)?;
        }
        w.finish()?;
        return Ok(());
    }
    let batch = kaq_query::arrow::rows_batch(plan.output_columns(), rows)?;
    let tmp = path.with_file_name(format!(".{}.kaq-tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    w.write(&batch)?;
    w.close()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
