//! `kaq sql`: a kaq query as one SQL statement for DuckDB, Spark SQL or Trino (crates/sql).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use kaq_query::{Options, compile};
use kaq_sql::{Dialect, Partitions, Source};

use super::diagnostics::render_diagnostic;

/// Print the SQL statement that asks a kaq query of a fleet's archive on its own engine.
///
/// The statement reads kaq's Parquet schema (what `kaq convert` writes, `--out-dir` archives
/// included) and means exactly what `kaq query` answers: each request counted once at its latest
/// stage (auditID + received time, verb, URI and user, as a window), list fields matching on any
/// element, wildcards, regexes, CIDR blocks, words of text fields, JSON paths (DuckDB, Spark 4),
/// @named searches, and every stage. What the engine cannot express is an error naming the
/// construct and the dialect (exit status 2). Results keep kaq's column names and row order; times
/// are UTC timestamps, durations seconds.
///
/// Examples:
///
///   kaq sql 'verb:delete ns:prod* | count by user' --dialect duckdb --from audit.parquet | duckdb
///
///   kaq sql 'code:401 | count by ip | sort -count' --dialect spark --from s3://bucket/audit --since 7d
///
///   kaq sql '@secret-reads | stats dc(name) by user' --dialect trino --from hive.audit.events
///
///   kaq sql --dialect duckdb --from archive/ -- '-user_kind:node | top 5 user'
///
/// --since/--until and `time` conditions become fixed instants in the statement, and prune the
/// `date=`/`hour=` partitions of an archive.
///
/// DuckDB needs 1.3 or later; Spark 3.5 or later with spark.sql.session.timeZone=UTC; the Trino
/// dialect is checked by a parser, not on a live Trino (docs/fleet.md).
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct SqlArgs {
    /// The kaq query, e.g. 'verb:delete ns:prod* | table time, user, name'.
    #[arg(value_name = "QUERY", allow_hyphen_values = true)]
    query: String,

    /// The engine: duckdb, spark (Spark SQL, Databricks, EMR) or trino (Athena).
    #[arg(long, value_name = "DIALECT")]
    dialect: Dialect,

    /// What to read: a Parquet file, a glob, a directory of `kaq convert --out-dir` partitions
    /// (read recursively), or an object-store URL (a path when it holds `/` or ends in
    /// .parquet), else a table name.
    #[arg(long, value_name = "PATH_OR_TABLE", default_value = "audit")]
    from: String,

    /// The source's Hive partitions (`date=`, `date=/hour=`), pruned by the time bounds. A local
    /// directory is looked at to know; give it for tables and object-store paths.
    #[arg(long, value_name = "day|hour")]
    partitioned_by: Option<String>,

    /// Only events at or after this time: a duration ago (2h, 7d, from now) or a time.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,

    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,

    /// Every stage of each request, not only its latest.
    #[arg(long)]
    all_stages: bool,
}

pub fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let mut opts = Options {
        now_us: chrono::Utc::now().timestamp_micros(),
        all_stages: args.all_stages,
        since: args.since.clone(),
        until: args.until.clone(),
        macros: Default::default(),
    };
    let mut compiled = compile(&args.query, &opts);
    if let Err(diags) = &compiled
        && diags.iter().any(|d| d.code == kaq_syntax::Code::UnknownMacro)
    {
        let macros = super::saved::named()?;
        if !macros.is_empty() {
            opts.macros = macros;
            compiled = compile(&args.query, &opts);
        }
    }
    let plan = match compiled {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                render_diagnostic(&args.query, d);
            }
            return Ok(ExitCode::from(2));
        }
    };
    let (source, found) = source(&args.from);
    let partitions = match args.partitioned_by.as_deref() {
        Some("day") => Some(Partitions::Day),
        Some("hour") => Some(Partitions::Hour),
        Some("none") => None,
        Some(other) => anyhow::bail!("--partitioned-by `{other}`: day, hour or none"),
        None => found,
    };
    let sql_opts = kaq_sql::Options { dialect: args.dialect, source, partitions };
    match kaq_sql::translate(&plan, &sql_opts) {
        Ok(sql) => {
            println!("{sql};");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("kaq: error: {}", kaq_schema::visible(&e.message));
            Ok(ExitCode::from(2))
        }
    }
}

/// A path or a table, and the Hive partitioning a local directory shows.
pub(super) fn source(from: &str) -> (Source, Option<Partitions>) {
    let p = Path::new(from);
    let is_path = from.contains('/') || from.ends_with(".parquet") || from.contains('*') || p.exists();
    if !is_path {
        return (Source::Table(from.to_string()), None);
    }
    let directory = p.is_dir();
    let mut partitions = None;
    if directory && let Ok(entries) = std::fs::read_dir(p) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("date=") {
                let hourly = std::fs::read_dir(e.path())
                    .map(|i| i.flatten().any(|h| h.file_name().to_string_lossy().starts_with("hour=")))
                    .unwrap_or(false);
                partitions = Some(if hourly { Partitions::Hour } else { Partitions::Day });
                break;
            }
        }
    }
    let directory = directory || (from.contains("://") && !from.ends_with(".parquet") && !from.contains('*'));
    (Source::Path { path: from.trim_end_matches('/').to_string(), directory }, partitions)
}
