//! A secrets-access report written with the library: who read which Secrets, how often, when
//! first and last, with the auditIDs as evidence — as a Markdown table. Uses only the `kaq` crate.
//!
//!   cargo run --example secrets_report [LOG…]
//!
//! Default input: the shipped sample log.

use kaq::{Query, Source, Val};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut inputs: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    if inputs.is_empty() {
        inputs.push(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample-audit.log.gz").into());
    }
    let query = "resource:secrets verb:(get OR list OR watch) -user_kind:node \
                 | stats count, dc(name) as secrets, values(verb) as verbs, min(time) as first, max(time) as last, values(id) as ids by user \
                 | sort -count";
    let query = Query::new(query).map_err(|e| e.render())?;
    let result = Source::Files(inputs).run(&query)?;
    let rows = &result.rows;

    println!("# Secret access\n");
    println!("{} user(s) read Secrets ({} events searched).\n", rows.len(), result.stats.read);
    println!("| user | reads | secrets | verbs | first | last | evidence (auditIDs) |");
    println!("|---|---:|---:|---|---|---|---|");
    for r in rows {
        let cell = |v: &Val<'_>| v.to_display().replace('|', "\\|");
        let ids = match &r.vals[6] {
            Val::List(ids) if ids.len() > 3 => {
                format!("{} … ({} in all)", ids[..3].iter().map(Val::to_text).collect::<Vec<_>>().join(", "), ids.len())
            }
            v => cell(v),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.vals[0]),
            cell(&r.vals[1]),
            cell(&r.vals[2]),
            cell(&r.vals[3]),
            cell(&r.vals[4]),
            cell(&r.vals[5]),
            ids
        );
    }
    Ok(())
}
