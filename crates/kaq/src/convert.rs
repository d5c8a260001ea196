//! Logs to Parquet.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use kaq_columnar::{SortedParquetWriter, ToBatch, WriteOptions};
use kaq_input::{ReadOptions, Reject, Report};

use crate::Error;

/// What [`convert`] wrote and read.
#[derive(Debug, Clone)]
pub struct Converted {
    /// Events written.
    pub rows: u64,
    /// What was read: events, rejects, read errors.
    pub report: Report,
}

/// Converts audit logs (files, directories, `-`) into one time-sorted kaq Parquet file at
/// `output` (its schema: docs/schema.md), as `kaq convert` does for one file; each rejected
/// record goes to `on_reject`. Secrets are redacted unless `read.decode.keep_secrets`.
pub fn convert<P: AsRef<Path>>(
    inputs: &[P],
    output: impl AsRef<Path>,
    read: &ReadOptions,
    on_reject: &mut dyn FnMut(&Reject),
) -> Result<Converted, Error> {
    let inputs: Vec<PathBuf> = inputs.iter().map(|p| p.as_ref().to_path_buf()).collect();
    let expanded = kaq_input::expand(&inputs)?;
    expanded.check(read.strict)?;
    let mut writer = SortedParquetWriter::create(output.as_ref(), WriteOptions::default())?;
    let mut failed = None;
    let Ok(mut report) = kaq_input::read(&expanded.sources, read, &ToBatch::default(), |chunk| {
        chunk.rejects.iter().for_each(&mut *on_reject);
        if let Some(batch) = chunk.output
            && failed.is_none()
        {
            failed = writer.write(batch).err();
        }
        Ok::<(), Infallible>(())
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    report.read_errors.splice(0..0, expanded.messages());
    report.check(read.strict)?;
    let rows = writer.finish()?.rows;
    Ok(Converted { rows, report })
}
