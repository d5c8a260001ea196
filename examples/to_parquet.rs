//! Embedding the converter: audit logs (files, directories, gzip, cloud exports) into one
//! time-sorted kaq Parquet file, with what was rejected. Uses only the `kaq` crate.
//!
//!   cargo run --release --example to_parquet -- examples/data/sample-audit.log.gz /tmp/sample.parquet

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: to_parquet INPUT OUTPUT.parquet");
        std::process::exit(2);
    };
    let converted = kaq::convert(&[input], output, &kaq::ReadOptions::default(), &mut |r| {
        eprintln!("{}:{}: {}", r.source, r.line, r.reason);
    })?;
    println!(
        "{} events written to {}; {} rejected",
        converted.rows,
        output.display(),
        converted.report.counts.rejected
    );
    Ok(())
}
