//! `kaq query`: runs a query straight over audit logs and kaq Parquet files.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kaq_input::ReadOptions;
use kaq_query::{Options, Plan, Row, compile, output};
use kaq_schema::DecodeOptions;

use super::diagnostics::{print_warnings, render_diagnostic, reuse_note};
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
/// with a caret under the spot and exit with status 2; no rows is not an error. Warnings go to
/// stderr as `kaq: warning:` lines and never change the answer: a value no event holds
/// (verb:delet: did you mean delete?), a stage typed without its `|` (code:401 count by ip), time
/// bounds that miss the data's time range.
///
/// Log text is shown safely: in tables and messages, control characters and bidi overrides are
/// shown as escapes (`\x1b`, `\u202e`); in JSON they are `\u` escapes; CSV text cells that a
/// spreadsheet would run as formulas get a `'` in front (--csv-raw: as they are).
///
/// Lines that are not audit events are rejected (shown on stderr with file:line and the reason)
/// and the rest is read; so is a line longer than --max-record-size (64 MiB), read past without
/// being held. An input that cannot be read (in a directory: a dangling symbolic link, a symbolic
/// link loop, a subdirectory that cannot be listed; or a file that cannot be opened) is reported
/// by its own path with the reason, skipped, and the rest is queried; --strict stops at it.
///
/// A query that starts with `-` goes after `--`: kaq query -- '-user_kind:node' audit.log
///
/// `@NAME` is a built-in named query (`@slow`, `@prod-deletes`…), a named query of the detection
/// rules (the built-in pack's), or one of yours: the `[queries]` of your rule file,
/// $KAQ_CONFIG_DIR/rules.toml (else $XDG_CONFIG_HOME/kaq/rules.toml, or ~/.config/kaq/rules.toml),
/// where `.save` in `kaq repl` keeps searches (docs/detect.md, docs/repl.md).
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

    /// Output format [default: table on a terminal, json otherwise]. A table fits the terminal
    /// ($COLUMNS when written to a pipe or file); times are never cut, other columns narrow first,
    /// then the last ones are left out (and named under the table).
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

    /// Keep the values of Secret data in printed events (redacted by default, in logs and in kaq
    /// Parquet files written with --keep-secrets alike).
    #[arg(long)]
    keep_secrets: bool,

    /// Write every rejected record (a line that is not an audit event), whole, to FILE (0600),
    /// as `kaq convert --rejects` does; the first ones are shown on stderr either way. Not with
    /// a store: its rejects were reported by `kaq ingest`.
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// With --format csv: write text cells as they are. By default a text cell starting with
    /// `=`, `+`, `-`, `@`, a tab or a carriage return (and not a plain number such as -5) gets a
    /// `'` in front, so that a spreadsheet shows it instead of running it as a formula.
    #[arg(long)]
    csv_raw: bool,

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

    /// No summary line and no warnings on stderr.
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
    let mut opts = Options {
        now_us,
        all_stages: args.all_stages,
        since: args.since.clone(),
        until: args.until.clone(),
        macros: Default::default(),
    };
    let mut compiled = compile(&args.query, &opts);
    // An `@NAME` that is not built in may be a named query of the rule files (docs/detect.md) or
    // a search saved in the REPL (which wins): read them, and again.
    if let Err(diags) = &compiled
        && diags.iter().any(|d| d.code == kaq_syntax::Code::UnknownMacro)
    {
        let macros = super::saved::named()?;
        if !macros.is_empty() {
            opts.macros = macros;
            compiled = compile(&args.query, &opts);
        }
    }
    let mut plan = match compiled {
        Ok(p) => p,
        Err(diags) => {
            // `count by ip | where count > 20` fails for want of a `|`: say so first.
            if !args.quiet {
                print_warnings(&args.query, &kaq_query::query_warnings(&args.query, &opts, None));
            }
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
    if use_store && args.rejects.is_some() {
        bail!("--rejects lists the rejected records of INPUT files; a store's were reported by `kaq ingest --rejects`");
    }
    if inputs.is_empty() && !use_store && !args.explain {
        if std::io::stdin().is_terminal() {
            bail!(
                "no input: give audit logs, directories, `-` for stdin, or kaq Parquet files, or --store DIR (after `kaq ingest`)"
            );
        }
        inputs.push(PathBuf::from("-")); // `zcat audit.log.gz | kaq query …`
    }
    let source = if use_store { kaq::Source::store(kaq::Store::open(&store_dir)?) } else { kaq::Source::Files(inputs) };
    let store = source.as_store().map(|s| s.inner());
    // A store knows its values before running; logs tell after the scan whether they hold a
    // value outside a field's vocabulary (a forged `decision:deny`), if it watches those fields.
    let mut warnings = match store {
        Some(s) => kaq_query::query_warnings(&args.query, &opts, Some(&s.known_values())),
        None => kaq_query::query_warnings(&args.query, &opts, None),
    };
    if store.is_none() && warnings.iter().any(|w| w.kind == kaq_query::WarningKind::UnknownValue) {
        plan.watch = kaq_query::vocabulary_slots(&plan);
    }
    if args.rejects.is_some() {
        // The prefilter skips lines without validating them: decode every line, so that the file
        // lists every reject, as `kaq convert --rejects` does.
        plan.prefilter.clear();
    }
    let query = kaq::Query::from_plan(args.query.clone(), plan);
    if args.explain {
        if !args.quiet {
            print_warnings(&args.query, &warnings);
        }
        // Over a store, the query runs to count what each step reads and keeps.
        print!("{}", source.explain(&query)?);
        return Ok(ExitCode::SUCCESS);
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
        decode: DecodeOptions::keeping_secrets(args.keep_secrets),
        input_format: args.input.format(),
        threads: args.threads.unwrap_or(ReadOptions::default().threads).max(1),
        max_record_size: args.input.max_record_size,
        strict: args.strict,
        ..ReadOptions::default()
    };
    let started = Instant::now();
    let mut rejects = Rejects::new(if use_store { None } else { args.rejects.as_deref() })?;
    let hidden = indicatif::ProgressBar::hidden();
    let mut reject_error = None;
    let mut on_reject = |r: &kaq_input::Reject| {
        if let Err(e) = rejects.add(r, &hidden) {
            reject_error.get_or_insert(e);
        }
    };
    // JSON lines and CSV are written as the rows are settled, never all held at once (the rows
    // the latest-stage rule must hold meanwhile go to a temporary file past a budget); a table
    // and Parquet need every row first.
    let streamed_out = match format {
        Format::Json | Format::Csv => {
            let plan = query.plan();
            let columns = plan.output_columns();
            let shown: Vec<usize> = if plan.whole_events { plan.display.clone() } else { (0..columns.len()).collect() };
            let visible = args.output.is_none() && std::io::stdout().is_terminal();
            let csv = output::CsvOptions { raw: args.csv_raw, visible };
            let mut header = Vec::new();
            if format == Format::Csv {
                output::write_csv_header(&mut header, columns, &shown, csv)?;
            }
            // Opened at the first row (or at the end): a query that fails writes nothing.
            let mut out = LazyOut { path: args.output.clone(), header, out: None };
            let mut emit = |row: Row| {
                let out = out.get()?;
                match format {
                    Format::Csv => writeln!(out, "{}", output::csv_line(&row, &shown, csv)),
                    _ => output::write_json_row(out, &row, columns),
                }
            };
            let mut stream = kaq::Stream { emit: &mut emit, spill_after: spill_after()? };
            let result = source.run_streaming(&query, &read, &mut on_reject, &mut stream)?;
            out.get()?.flush()?;
            Some(result)
        }
        Format::Table | Format::Parquet => None,
    };
    let result = match streamed_out {
        Some(r) => r,
        None => source.run_with(&query, &read, &mut on_reject)?,
    };
    if let Some(e) = reject_error {
        return Err(e);
    }
    let plan = query.plan();
    if !use_store {
        rejects.finish(&result.report, args.rejects.as_deref())?;
    }
    if let Some((seen, all_read)) = &result.seen {
        let seen = kaq_query::SeenValues { plan, seen, all_read: *all_read };
        warnings = kaq_query::query_warnings(&args.query, &opts, Some(&seen));
    }
    let (rows, counts, parquet_rows) = if use_store {
        (result.rows, kaq_input::Counts::default(), result.stats.read)
    } else {
        let c = result.report.counts;
        (result.rows, c, result.stats.read - c.events - c.skipped)
    };
    let (matched, ids_reused, notes) = (result.stats.matched, result.stats.ids_reused, result.notes);
    let data_range = result.stats.data_range.map(|d| ((d.lo, d.hi), d.of));
    if !args.quiet {
        warnings.extend(data_range.and_then(|(d, what)| kaq_query::time_warning(plan, Some(d), what)));
        print_warnings(&args.query, &warnings);
    }

    let columns = plan.output_columns();
    let shown: Vec<usize> = if plan.whole_events { plan.display.clone() } else { (0..columns.len()).collect() };
    let row_count = result.streamed.map_or(rows.len() as u64, |s| s.rows);
    match (format, &args.output) {
        _ if result.streamed.is_some() => {} // written above
        (Format::Parquet, Some(path)) => kaq::write_parquet(path, plan.output_columns(), &rows, plan.whole_events)?,
        (_, Some(path)) => {
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let csv = output::CsvOptions { raw: args.csv_raw, visible: false };
            write_rows(&mut out, format, csv, plan, &rows, &shown)?;
            out.flush()?;
        }
        (_, None) => {
            let csv = output::CsvOptions { raw: args.csv_raw, visible: std::io::stdout().is_terminal() };
            let mut out = BufWriter::new(std::io::stdout().lock());
            write_rows(&mut out, format, csv, plan, &rows, &shown)?;
            out.flush()?;
        }
    }
    if !args.quiet && ids_reused > 0 {
        // Not an error, but worth knowing: a client chose these auditIDs (the Audit-ID header),
        // or logs were merged. Each request is still counted and found on its own.
        eprintln!("kaq: note: {}", reuse_note(ids_reused));
    }
    // Notes say what the rows do not (they never change an answer): shown even with --quiet.
    for n in &notes {
        eprintln!("kaq: warning: {n}");
    }
    if !args.quiet && std::io::stderr().is_terminal() {
        let c = counts;
        let events = c.events + c.skipped + parquet_rows;
        let matched = matched.map_or_else(String::new, |m| format!("{} of ", thousands(m as u64)));
        eprintln!(
            "kaq: {} row{} ({matched}{} events read; {} lines skipped by the prefilter) in {:.2}s",
            thousands(row_count),
            if row_count == 1 { "" } else { "s" },
            thousands(events),
            thousands(c.skipped),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where streamed rows go (`-o FILE`, else stdout), opened when first written to, with the CSV
/// header (if any) first.
struct LazyOut {
    path: Option<PathBuf>,
    header: Vec<u8>,
    out: Option<Box<dyn Write>>,
}

impl LazyOut {
    fn get(&mut self) -> std::io::Result<&mut dyn Write> {
        if self.out.is_none() {
            let mut out: Box<dyn Write> = match &self.path {
                Some(path) => Box::new(BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?,
                )),
                None => Box::new(BufWriter::new(std::io::stdout().lock())),
            };
            out.write_all(&self.header)?;
            self.out = Some(out);
        }
        match &mut self.out {
            Some(out) => Ok(out.as_mut()),
            None => Err(std::io::Error::other("the output is not open")),
        }
    }
}

/// The memory (bytes, estimated) kept for matching rows before a temporary file holds the rest:
/// `$KAQ_SPILL_AFTER` (for tests and small machines), else 64 MiB.
fn spill_after() -> anyhow::Result<usize> {
    match std::env::var("KAQ_SPILL_AFTER") {
        Err(_) => Ok(kaq::SPILL_AFTER),
        Ok(v) => v.trim().parse().with_context(|| {
            format!("KAQ_SPILL_AFTER={v:?}: expected a number of bytes (the memory kept for matching rows)")
        }),
    }
}

fn write_rows(
    out: &mut dyn Write,
    format: Format,
    csv: output::CsvOptions,
    plan: &Plan,
    rows: &[Row],
    shown: &[usize],
) -> anyhow::Result<()> {
    let columns = plan.output_columns();
    match format {
        Format::Json | Format::Parquet => output::write_json(out, rows, columns)?,
        Format::Csv => output::write_csv(out, rows, columns, shown, csv)?,
        Format::Table => write_table(out, rows, plan, shown)?,
    }
    Ok(())
}

/// An aligned table (the REPL's renderer without colours or charts): sized to the terminal when
/// stdout is one (else to `$COLUMNS`, else each cell cut at 60 characters with `…`).
fn write_table(out: &mut dyn Write, rows: &[Row], plan: &Plan, shown: &[usize]) -> std::io::Result<()> {
    let look = super::render::Look {
        width: super::repl::terminal_width(),
        color: false,
        charts: false,
        max_rows: TABLE_ROWS,
        more: "add | head N, or --format json",
        footer: false,
    };
    super::render::table(out, plan.output_columns(), rows, shown, super::render::Chart::None, &look)
}
