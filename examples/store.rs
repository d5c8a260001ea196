//! Embedding a kaq store: create it, ingest a log, ask questions, get typed rows and Arrow, and
//! see how a question ran. Uses only the `kaq` crate.
//!
//!   cargo run --example store [LOG] [STORE_DIR]
//!
//! Defaults: the shipped sample log, and a temporary store.

use kaq::{Query, Store, Val};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let log =
        args.next().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample-audit.log.gz").into());
    let tmp = tempfile::tempdir()?;
    let dir = args.next().map_or_else(|| tmp.path().join("kaq-store"), Into::into);

    let mut store = Store::open_writer(&dir)?; // creates it when missing
    let report = store.ingest(&[&log])?;
    println!("ingested {} events ({} rejected) into {}", report.counts.events, report.counts.rejected, dir.display());

    // Who deleted things in prod? Rows are typed: match on the cells.
    let deletes = Query::new("verb:(delete OR deletecollection) ns:prod* | table time, user, resource, name")?;
    for r in store.query(&deletes)?.iter() {
        if let [Val::Time(t), user, resource, name] = r.vals.as_slice() {
            println!(
                "{}  {:<36} deleted {} {}",
                kaq::time::format_micros(*t),
                user.to_text(),
                resource.to_text(),
                name.to_text()
            );
        }
    }

    // The same answer as Arrow, for DataFusion, polars or a Parquet writer.
    let by_ip = Query::new("code:401 | count by ip | sort -count")?;
    let batches = store.query(&by_ip)?.record_batches()?;
    println!("401s by address: {} row(s), {} column(s)", batches[0].num_rows(), batches[0].num_columns());

    // How it ran: the physical plan, then each step with its row counts.
    print!("{}", store.explain(&by_ip)?);
    Ok(())
}
