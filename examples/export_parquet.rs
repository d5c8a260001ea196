//! Exporting query results to Parquet with the library: the answer's Arrow batches, written by
//! parquet's ArrowWriter, ready for DuckDB, Spark or pandas.
//!
//!   cargo run --example export_parquet [OUT.parquet]

use kaq_store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "failed-auth-by-ip.parquet".into());
    let tmp = tempfile::tempdir()?;
    let mut store = Store::create(tmp.path().join("kaq-store"))?;
    store.ingest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample-audit.log.gz"))?;

    let result = store
        .query("code:(401 OR 403) | stats count, dc(user) as users, min(time) as first by ip, code | sort -count")?;
    let batches = result.record_batches()?;
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&out)?, batches[0].schema(), None)?;
    for b in &batches {
        w.write(b)?;
    }
    w.close()?;
    println!("wrote {} row(s) to {out}", result.rows.len());
    Ok(())
}
