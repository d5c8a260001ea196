//! `kaq query`: runs a query straight over audit logs and kaq Parquet files.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kaq_input::ReadOptions;
use kaq_query::plan::Step;
use kaq_query::{Options, Plan, Row, compile, output};
use kaq_schema::DecodeOptions;
use kaq_syntax::Diagnostic;

use super::report::{Rejects, thousands};

/// Run a query over audit logs or kaq Parquet files.
///
/// A query is a search, then optional stages after `|`:
///
///   kaq query 'verb:delete ns:prod*' audit.log
///
///   kaq query 'code:401 | count by ip | where count > 20 | sort -count' /var/log/kubernetes/
///
///   kaq query 'resource:secrets verb:(get OR list) -user_kind:node | stats count, dc(name) by user' audit.parquet
///
///   kaq query 'latency>1s | stats p99(latency) by verb' audit.log.gz --format csv
///
/// Each request counts once, at its latest stage (RequestReceived < ResponseStarted <
/// ResponseComplete < Panic); `--all-stages` or a `stage:` condition shows every stage.
///
/// Output is a table on a terminal and JSON lines otherwise: whole events as their original JSON
/// (Secret values redacted), other rows as objects keyed by column. Errors in the query are shown
/// with a caret under the spot and exit with status 2; no rows is not an error.
///
/// Lines that are not audit events are rejected (shown on stderr with file:line and the reason)
/// and the rest is read; so is a line longer than --max-record-size (64 MiB), read past without
/// being held. An input that cannot be read (in a directory: a dangling symbolic link, a symbolic
/// link loop, a subdirectory that cannot be listed; or a file that cannot be opened) is reported
/// by its own path with the reason, skipped, and the rest is queried; --strict stops at it.
///
/// A query that starts with `-` goes after `--`: kaq query -- '-user_kind:node' audit.log
///
/// The language is described in docs/query.md and grammar/README.md.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct QueryArgs {
    /// The query, e.g. 'verb:delete ns:prod* | table time, user, name'.
    #[arg(value_name = "QUERY")]
    query: String,

    /// Audit logs (plain, gzip, directories, `-` for stdin; GKE, EKS and AKS exports too) or kaq
    /// Parquet files. Without any: the store (--store, $KAQ_STORE, or ./kaq-store when it
    /// exists), else a piped stdin.
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Only events at or after this time: a duration ago (2h, 7d) or a time (2026-11-20T05:00Z).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,

    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,

    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// Query a store made by `kaq ingest` [default without INPUT: $KAQ_STORE, else ./kaq-store
    /// when it exists].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    /// Write the result to FILE instead of stdout (required for --format parquet).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Show every stage of each request, not only its latest.
    #[arg(long)]
    all_stages: bool,

    /// Show how the query runs (fields, filter, prefilter, stages) instead of its rows. Over a store
    /// the query is run and each step is shown with its row counts: segments read, rows the index
    /// or the columns found, other stages read, rows after each stage.
    #[arg(long)]
    explain: bool,

    /// Keep the values of Secret data in printed events (redacted by default).
    #[arg(long)]
    keep_secrets: bool,

    #[command(flatten)]
    input: super::input::InputArgs,

    /// Stop at the first input that cannot be read (a dangling symbolic link, a symbolic link
    /// loop, a file or directory that cannot be opened) or that breaks off, with an error (exit
    /// 1), instead of reporting it, skipping it and going on.
    #[arg(long)]
    strict: bool,

    /// Decoding threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// No summary line on stderr.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
    Parquet,
}

/// Rows shown in a terminal table before "N more rows".
const TABLE_ROWS: usize = 200;

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let now_us = chrono::Utc::now().timestamp_micros();
    let opts = Options {
        now_us,
        all_stages: args.all_stages,
        since: args.since.clone(),
        until: args.until.clone(),
        macros: Default::default(),
    };
    let plan = match compile(&args.query, &opts) {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                render_diagnostic(&args.query, d);
            }
            return Ok(ExitCode::from(2));
        }
    };
    // Where to read: the inputs; else a store (--store, $KAQ_STORE, or ./kaq-store when it
    // exists); else a piped stdin.
    let mut inputs = args.inputs.clone();
    let store_dir = super::store::store_dir(args.store.as_ref());
    let use_store = inputs.is_empty()
        && (args.store.is_some()
            || std::env::var_os("KAQ_STORE").is_some()
            || store_dir.join("MANIFEST.json").exists());
    if args.store.is_some() && !args.inputs.is_empty() {
        bail!("give either INPUT files or --store, not both");
    }
    if args.explain {
        // Over a store, the query runs to count what each step reads and keeps.
        if use_store {
            let store = kaq_store::Store::open(&store_dir)?;
            print!("{}", store.explain_plan(&plan, &ReadOptions::default())?);
        } else {
            print!("{}", kaq_query::explain(&plan));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if inputs.is_empty() && !use_store {
        if std::io::stdin().is_terminal() {
            bail!(
                "no input: give audit logs, directories, `-` for stdin, or kaq Parquet files, or --store DIR (after `kaq ingest`)"
            );
        }
        inputs.push(PathBuf::from("-")); // `zcat audit.log.gz | kaq query …`
    }
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, Some(p)) if p.extension().is_some_and(|e| e == "parquet") => Format::Parquet,
        (None, Some(p)) if p.extension().is_some_and(|e| e == "csv") => Format::Csv,
        (None, Some(_)) => Format::Json,
        (None, None) if std::io::stdout().is_terminal() => Format::Table,
        (None, None) => Format::Json,
    };
    if format == Format::Parquet && args.output.is_none() {
        bail!("--format parquet needs -o FILE.parquet");
    }
    let read = ReadOptions {
        decode: DecodeOptions { keep_secrets: args.keep_secrets },
        input_format: args.input.format(),
        threads: args.threads.unwrap_or(ReadOptions::default().threads).max(1),
        max_record_size: args.input.max_record_size,
        strict: args.strict,
        ..ReadOptions::default()
    };
    let started = Instant::now();
    let mut rejects = Rejects::new(None)?;
    let hidden = indicatif::ProgressBar::hidden();
    let mut reject_error = None;
    let steps: Vec<Step> = plan.steps.iter().map(|s| s.0.clone()).collect();
    let ids_reused;
    let (rows, matched, counts, parquet_rows) = if use_store {
        let store = kaq_store::Store::open(&store_dir)?;
        let r = store.run(&plan, &read)?;
        ids_reused = r.ids_reused;
        (r.rows, None, kaq_input::Counts::default(), r.rows_read)
    } else {
        let scanned = kaq_query::scan::scan(&plan, &inputs, &read, 0, &mut |r| {
            if let Err(e) = rejects.add(r, &hidden) {
                reject_error.get_or_insert(e);
            }
        })?;
        if let Some(e) = reject_error {
            return Err(e);
        }
        rejects.finish(&scanned.report, None)?;
        ids_reused = scanned.ids_reused;
        let matched = scanned.rows.len();
        (kaq_query::pipeline::run(&steps, scanned.rows), Some(matched), scanned.report.counts, scanned.parquet_rows)
    };

    let columns = plan.output_columns();
    let shown: Vec<usize> = if plan.whole_events { plan.display.clone() } else { (0..columns.len()).collect() };
    match (format, &args.output) {
        (Format::Parquet, Some(path)) => super::query_parquet::write(path, &plan, &rows)?,
        (_, Some(path)) => {
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::new(file);
            write_rows(&mut out, format, &plan, &rows, &shown)?;
            out.flush()?;
        }
        (_, None) => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            write_rows(&mut out, format, &plan, &rows, &shown)?;
            out.flush()?;
        }
    }
    if !args.quiet && ids_reused > 0 {
        // Not an error, but worth knowing: a client chose these auditIDs (the Audit-ID header),
        // or logs were merged. Each request is still counted and found on its own.
        eprintln!(
            "kaq: note: {} of the requests matched carr{} an auditID that another request also carries (`id_reused:true` finds them all)",
            thousands(ids_reused),
            if ids_reused == 1 { "ies" } else { "y" }
        );
    }
    if !args.quiet && std::io::stderr().is_terminal() {
        let c = counts;
        let events = c.events + c.skipped + parquet_rows;
        let matched = matched.map_or_else(String::new, |m| format!("{} of ", thousands(m as u64)));
        eprintln!(
            "kaq: {} row{} ({matched}{} events read; {} lines skipped by the prefilter) in {:.2}s",
            thousands(rows.len() as u64),
            if rows.len() == 1 { "" } else { "s" },
            thousands(events),
            thousands(c.skipped),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_rows(out: &mut dyn Write, format: Format, plan: &Plan, rows: &[Row], shown: &[usize]) -> anyhow::Result<()> {
    let columns = plan.output_columns();
    match format {
        Format::Json | Format::Parquet => output::write_json(out, rows, columns)?,
        Format::Csv => output::write_csv(out, rows, columns, shown)?,
        Format::Table => write_table(out, rows, plan, shown)?,
    }
    Ok(())
}

/// An aligned table (the REPL's renderer without colours or charts): sized to the terminal when
/// stdout is one, else each cell cut at 60 characters with `…`.
fn write_table(out: &mut dyn Write, rows: &[Row], plan: &Plan, shown: &[usize]) -> std::io::Result<()> {
    let look = super::repl::render::Look {
        width: super::repl::terminal_width(),
        color: false,
        charts: false,
        max_rows: TABLE_ROWS,
        more: "add | head N, or --format json",
        footer: false,
    };
    super::repl::render::table(out, plan.output_columns(), rows, shown, super::repl::render::Chart::None, &look)
}

/// Renders a query error with a caret under the spot (ariadne), to stderr.
pub(crate) fn render_diagnostic(src: &str, d: &Diagnostic) {
    use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let len = src.len();
    let clamp = |s: kaq_syntax::Span| s.start.min(len)..s.end.min(len).max(s.start.min(len));
    let mut report = Report::build(ReportKind::Error, ("query", clamp(d.span)))
        .with_config(Config::default().with_color(color).with_index_type(IndexType::Byte))
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_label(Label::new(("query", clamp(d.span))).with_message(short_label(d)));
    for (span, text) in &d.labels {
        report = report.with_label(Label::new(("query", clamp(*span))).with_message(text));
    }
    for h in d.hints.iter().filter(|h| !h.starts_with("did you mean")) {
        report = report.with_help(h);
    }
    let mut err = std::io::stderr().lock();
    if report.finish().write(("query", Source::from(src)), &mut err).is_err() {
        let _ = write!(err, "{}", d.render(src));
    }
}

fn short_label(d: &Diagnostic) -> String {
    match d.hints.first() {
        Some(h) if h.starts_with("did you mean") => h.clone(),
        _ => "here".into(),
    }
}
