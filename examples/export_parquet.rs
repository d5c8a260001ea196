//! Exporting query results to Parquet with the library, ready for DuckDB, Spark or pandas. Uses
//! only the `kaq` crate.
//!
//!   cargo run --example export_parquet [OUT.parquet]

use kaq::{Query, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "failed-auth-by-ip.parquet".into());
    let tmp = tempfile::tempdir()?;
    let mut store = Store::create(tmp.path().join("kaq-store"))?;
    store.ingest(&[concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample-audit.log.gz")])?;

    let query =
        Query::new("code:(401 OR 403) | stats count, dc(user) as users, min(time) as first by ip, code | sort -count")?;
    let result = store.query(&query)?;
    result.write_parquet(&out)?;
    println!("wrote {} row(s) to {out}", result.rows.len());
    Ok(())
}
