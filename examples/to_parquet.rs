//! Embedding the converter: read audit logs with `kaq-input`, build Arrow batches with
//! `kaq-columnar`, write one time-sorted Parquet file, and count what was rejected.
//!
//!   cargo run --release --example to_parquet -- examples/data/sample-audit.log.gz /tmp/sample.parquet

use std::convert::Infallible;
use std::path::PathBuf;

use kaq_columnar::{SortedParquetWriter, ToBatch, WriteOptions};
use kaq_input::ReadOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: to_parquet INPUT OUTPUT.parquet");
        std::process::exit(2);
    };
    let sources = kaq_input::expand(&[input])?.sources;
    let mut writer = SortedParquetWriter::create(output, WriteOptions::default())?;
    let mut failed = None;
    let report = kaq_input::read(&sources, &ReadOptions::default(), &ToBatch::default(), |chunk| {
        for r in &chunk.rejects {
            eprintln!("{}:{}: {}", r.source, r.line, r.reason);
        }
        if let Some(batch) = chunk.output
            && failed.is_none()
        {
            failed = writer.write(batch).err();
        }
        Ok::<(), Infallible>(())
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let rows = writer.finish()?;
    println!("{rows} events written to {}; {} rejected", output.display(), report.counts.rejected);
    Ok(())
}
