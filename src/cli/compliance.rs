//! `kaq report compliance`: a report for auditors on access to sensitive resources, the content
//! of the audit records (NIST SP 800-53 AU-3) and the audit policy's coverage as the log shows it
//! (CIS Kubernetes Benchmark 3.2.2), as one self-contained HTML page or Markdown.
//!
//! `engine` runs kaq queries over a store or files and numbers them; `gather` decides what to
//! ask and builds the report (`model`) from the answers, `checks` the AU-3 and CIS sections; `alerts` reads an alerts file; `html`
//! and `markdown` lay it out, escaping every value (`escape`).

mod alerts;
mod checks;
mod engine;
mod escape;
mod gather;
mod html;
mod markdown;
mod model;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use kaq_input::ReadOptions;
use kaq_query::{Options, compile};

use engine::Runner;
use gather::{Scope, shell_quote, when};

/// Reports over audit logs or a store.
#[derive(Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    kind: ReportKind,
}

#[derive(Subcommand)]
enum ReportKind {
    Compliance(ComplianceArgs),
}

/// Write a compliance report for auditors, as one HTML page or Markdown.
///
/// Who read, listed, changed or deleted Secrets, ConfigMaps and RBAC objects and who exec'd,
/// attached or port-forwarded into pods, by identity and namespace, over time; what the records
/// carry (NIST SP 800-53 AU-3); what the log shows of the audit policy (CIS Kubernetes Benchmark
/// 3.2.2); the alerts that fired.
///
///   kaq report compliance --store kaq-store -o report.html
///
///   kaq report compliance /var/log/kubernetes/audit/ --since 2026-11-01 --until 2026-12-01 -o nov.md
///
///   kaq detect --store kaq-store > alerts.jsonl
///   kaq report compliance --store kaq-store --alerts alerts.jsonl -o report.html
///
/// The HTML page is self-contained (inline CSS and SVG charts, no script, nothing fetched): open
/// it in a browser, print it to PDF, attach it. Markdown (-o FILE.md, or --format md) has the
/// same tables, with charts drawn in text.
///
/// Sections: a summary (key figures and each check's outcome); for Secrets, ConfigMaps, RBAC
/// objects and pods/exec|attach|portforward, the requests by verb, by identity (a column per
/// verb), by kind of identity and by namespace, a chart over time, and evidence tables with
/// auditIDs (the first --evidence by time, and how many more); AU-3 record content; CIS 3.2.2
/// checks (Pass, Fail, Partly shown, or Not shown by the log: the period holds no such request);
/// alerts from --alerts, or a plain statement that none was given.
///
/// Every number is a cell of a kaq query's answer, run by the same engine as `kaq query`, over
/// the same events (each request once, at its latest stage). The report lists every query with
/// the `kaq query` command that re-runs it, the period written as absolute times, so an auditor
/// gets the same numbers. Over files, each query reads them again: for large logs, `kaq ingest`
/// them into a store first.
///
/// Values from the log (and the alerts file) are never markup: HTML is escaped, Markdown
/// characters are escaped, control characters are shown as escapes (\x1b). The page forbids
/// scripts (Content-Security-Policy) in case anything slipped through.
///
/// Alerts file: JSON lines, one alert each, with `rule` (required), `severity`, `group`,
/// `count`, `first`, `last` (RFC 3339) and `ids` (auditIDs); other fields are ignored
/// (docs/report.md).
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ComplianceArgs {
    /// Audit logs (plain, gzip, directories; GKE, EKS and AKS exports too) or kaq Parquet files.
    /// Without any: the store (--store, $KAQ_STORE, or ./kaq-store when it exists).
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Report on a store made by `kaq ingest`.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    /// The period's start: a duration before now (30d, 12h) or a time (2026-11-01,
    /// 2026-11-20T05:00Z); `all` for no start.
    #[arg(long, value_name = "TIME", default_value = "30d", allow_hyphen_values = true)]
    since: String,

    /// The period's end (exclusive; same forms as --since) [default: now, when the report is made].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,

    /// Where to write the report: FILE.html (or .htm) or FILE.md (or .markdown); `-` for stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,

    /// The report's format [default: from the output's extension; html for stdout].
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// The alerts that fired, as JSON lines (what `kaq detect` writes). Without it the report
    /// says that no alerts file was given.
    #[arg(long, value_name = "ALERTS.jsonl")]
    alerts: Option<PathBuf>,

    /// Rows of each evidence table (the earliest requests; the report says how many more).
    #[arg(long, value_name = "N", default_value_t = 50)]
    evidence: usize,

    /// Rows of each "by identity" and "by namespace" table.
    #[arg(long, value_name = "N", default_value_t = 25)]
    top: usize,

    /// The report's title (e.g. the cluster's name).
    #[arg(long, value_name = "TEXT", default_value = "Kubernetes API access report")]
    title: String,

    #[command(flatten)]
    input: super::input::InputArgs,

    /// Decoding threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// No summary line on stderr.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Html,
    #[value(alias = "markdown")]
    Md,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    match args.kind {
        ReportKind::Compliance(a) => compliance(a),
    }
}

fn compliance(args: ComplianceArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (text, queries) = make(&args)?;
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    } else {
        std::fs::write(&args.output, text).with_context(|| format!("writing {}", args.output.display()))?;
    }
    if !args.quiet {
        eprintln!(
            "kaq: wrote {} ({queries} queries) in {:.2}s",
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The compliance report's HTML over the store in `dir`, for `since` (a duration ago, a time, or
/// `all`) to `until` (none: now), exactly as `kaq report compliance --store DIR --since …
/// --until … -o report.html` makes it: for `kaq serve`'s `/report/compliance`.
pub fn html_for_store(dir: &Path, since: &str, until: Option<&str>) -> anyhow::Result<String> {
    #[derive(clap::Parser)]
    struct One {
        #[command(flatten)]
        args: ComplianceArgs,
    }
    let mut argv: Vec<std::ffi::OsString> = ["compliance", "--store"].map(Into::into).to_vec();
    argv.push(dir.as_os_str().to_owned());
    argv.extend(["--since", since, "-o", "-", "--format", "html", "--quiet"].map(Into::into));
    if let Some(u) = until {
        argv.extend(["--until", u].map(Into::into));
    }
    let one = <One as clap::Parser>::try_parse_from(argv).map_err(|e| anyhow!("{}", e.kind()))?;
    make(&one.args).map(|(text, _)| text)
}

/// The report's text and the number of queries it ran.
fn make(args: &ComplianceArgs) -> anyhow::Result<(String, usize)> {
    let format = match args.format {
        Some(f) => f,
        None => {
            let ext = args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            match ext.as_deref() {
                Some("html" | "htm") => Format::Html,
                Some("md" | "markdown") => Format::Md,
                _ if args.output.as_os_str() == "-" => Format::Html,
                _ => bail!(
                    "cannot tell the report's format from `{}`: name it .html or .md, or give --format html|md",
                    args.output.display()
                ),
            }
        }
    };
    if args.store.is_some() && !args.inputs.is_empty() {
        bail!("give either INPUT files or --store, not both");
    }
    if args.inputs.iter().any(|p| p.as_os_str() == "-") {
        bail!(
            "the report runs many queries over its inputs and cannot read them from stdin: write the log to a file, or `kaq ingest` it into a store"
        );
    }
    let alerts = args.alerts.as_deref().map(alerts::read).transpose()?;

    // The period, as absolute times: the queries and the commands printed for re-running them
    // use these, so that they give the same answers later.
    let now_us = chrono::Utc::now().timestamp_micros();
    let since = (!args.since.eq_ignore_ascii_case("all")).then(|| args.since.clone());
    let (lo, hi) = bounds(since.as_deref(), args.until.as_deref(), now_us)?;
    let hi = hi.unwrap_or(now_us);
    if lo.is_some_and(|lo| lo >= hi) {
        bail!("the period is empty: --since {} is not before --until ({})", args.since, when(hi));
    }
    let opts =
        Options { now_us, all_stages: false, since: lo.map(when), until: Some(when(hi)), macros: Default::default() };

    let store_dir = super::store::store_dir(args.store.as_ref());
    let use_store = args.inputs.is_empty()
        && (args.store.is_some()
            || std::env::var_os("KAQ_STORE").is_some()
            || store_dir.join("MANIFEST.json").exists());
    let (data, source, where_) = if use_store {
        let store = kaq_store::Store::open(&store_dir)?;
        let m = store.manifest();
        let text = format!("store {} ({} records)", store_dir.display(), model::thousands(m.rows()));
        (kaq::Source::store(store.into()), text, format!(" --store {}", shell_quote(&store_dir.display().to_string())))
    } else if args.inputs.is_empty() {
        bail!("no input: give audit logs, directories or kaq Parquet files, or --store DIR (after `kaq ingest`)");
    } else {
        let names: Vec<String> = args.inputs.iter().map(|p| p.display().to_string()).collect();
        let quoted: Vec<String> = names.iter().map(|n| shell_quote(n)).collect();
        (kaq::Source::Files(args.inputs.clone()), names.join(", "), format!(" {}", quoted.join(" ")))
    };
    let mut rerun = String::new();
    if let Some(s) = &opts.since {
        rerun.push_str(&format!(" --since {s}"));
    }
    rerun.push_str(&format!(" --until {}", when(hi)));
    rerun.push_str(&where_);
    if args.input.input_format != super::input::FormatArg::Auto {
        let name = args.input.input_format.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
        rerun.push_str(&format!(" --input-format {name}"));
    }

    let read = ReadOptions {
        input_format: args.input.format(),
        threads: args.threads.unwrap_or(ReadOptions::default().threads).max(1),
        max_record_size: args.input.max_record_size,
        ..ReadOptions::default()
    };
    let period = format!("{} to {} (end excluded)", lo.map_or_else(|| "the first event".to_string(), when), when(hi));
    let mut meta = vec![
        ("Generated".to_string(), when(now_us)),
        ("Period".to_string(), period),
        ("Source".to_string(), source),
        ("Counting".to_string(), "each request once, at its latest stage (as `kaq query` does)".to_string()),
    ];
    meta.push((
        "Alerts".to_string(),
        alerts.as_ref().map_or_else(|| "no alerts file given".to_string(), |a| a.path.clone()),
    ));
    let scope = Scope {
        title: args.title.clone(),
        evidence: args.evidence,
        top: args.top.max(1),
        alerts,
        meta,
        rerun,
        since: lo,
        until: hi,
    };
    let mut runner = Runner::new(data, opts, read);
    let report = gather::gather(&mut runner, scope)?;
    let text = match format {
        Format::Html => html::render(&report),
        Format::Md => markdown::render(&report),
    };
    Ok((text, report.queries.len()))
}

/// The period's bounds in microseconds (start inclusive, end exclusive), read by the query
/// language's own `--since`/`--until` rules.
fn bounds(since: Option<&str>, until: Option<&str>, now_us: i64) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    let opts = Options {
        now_us,
        all_stages: false,
        since: since.map(String::from),
        until: until.map(String::from),
        macros: Default::default(),
    };
    let plan = compile("| count", &opts).map_err(|d| {
        let msgs: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
        anyhow!("--since/--until: {}", msgs.join("; "))
    })?;
    Ok(kaq_query::plan::time_bounds(&plan))
}
