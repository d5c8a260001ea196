//! `kaq`: the command line. Glue only: parsing flags, wiring the library crates together,
//! rendering progress, summaries and errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Decoding allocates many small strings on several threads: mimalloc is measurably faster at
/// that than the system allocator (BENCHMARKS.md). Built with `no_thp`: mimalloc otherwise asks
/// for transparent huge pages on its regions, and each region freed and used again cost the
/// kernel a 2 MiB zeroing (a fifth of `kaq detect`'s CPU over a 1M-event store was `clear_page`).
/// mimalloc 2 (`v2`), not 3: version 3 keeps freed memory for a second before giving it back, and a
/// streaming ingest frees hundreds of MB a second: a 5M-event `kaq ingest` peaked at 540-570 MB
/// RSS with it, 475-490 MB with version 2, at the same CPU time (BENCHMARKS.md, "A store that
/// stays fast as it grows").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Query, convert and index Kubernetes API-server audit logs.
///
/// kaq reads kube-apiserver audit logs (JSON lines, gzip, rotated directories, EventList
/// batches) and turns them into typed, compressed Parquet that DuckDB, Spark, Trino, pandas and
/// polars read as they are.
#[derive(Parser)]
#[command(name = "kaq", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Query(cli::query::QueryArgs),
    Ingest(cli::store::IngestArgs),
    Info(cli::store::InfoArgs),
    Verify(cli::store::VerifyArgs),
    Compact(cli::store::CompactArgs),
    Prune(cli::store::PruneArgs),
    Convert(cli::convert::ConvertArgs),
    Repl(cli::repl::ReplArgs),
    Demo(cli::demo::DemoArgs),
    Sql(cli::sql::SqlArgs),
    Report(cli::compliance::ReportArgs),
    Detect(cli::detect::DetectArgs),
    Watch(cli::watch::WatchArgs),
    Serve(cli::serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Query(args) => cli::query::run(args),
        Command::Ingest(args) => cli::store::ingest(args),
        Command::Info(args) => cli::store::info(args),
        Command::Verify(args) => cli::store::verify(args),
        Command::Compact(args) => cli::store::compact(args),
        Command::Prune(args) => cli::store::prune(args),
        Command::Convert(args) => cli::convert::run(args),
        Command::Repl(args) => cli::repl::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Sql(args) => cli::sql::run(args),
        Command::Report(args) => cli::compliance::run(args),
        Command::Detect(args) => cli::detect::run(args),
        Command::Watch(args) => cli::watch::run(args),
        Command::Serve(args) => cli::serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors name files and quote input: shown with their control characters escaped.
            eprintln!("kaq: error: {}", kaq_schema::visible(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
