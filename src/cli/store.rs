//! `kaq ingest` and `kaq info`: the store (crates/store).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use kaq_input::{ReadOptions, Report};
use kaq_schema::DecodeOptions;
use kaq_store::{IngestOptions, Store};

use super::progress::bytes_bar;
use super::report::{Rejects, human_bytes, thousands};

/// The store directory: --store, else $KAQ_STORE, else ./kaq-store.
pub fn store_dir(flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned()
        .or_else(|| std::env::var_os("KAQ_STORE").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("kaq-store"))
}

/// Ingest audit logs into a store, to query them later without reading the logs again.
///
/// The store is a directory (created private to you) of time-sorted Parquet segments, each with
/// a search index, and a manifest. Each run adds one segment (more past 4M events) and commits it
/// atomically: if kaq is killed, the store keeps everything committed before, exactly once.
/// One ingest at a time may write to a store; queries may run during it.
///
/// The store remembers how much of each file it read, and recognises files by their first bytes,
/// whatever their name: re-running the same command adds nothing; a file that grew is read from
/// where the last ingest stopped; a log renamed or compressed by rotation adds only what the store
/// has not seen. A last line still being written (no newline, not whole JSON) is left for later.
///
/// With --follow, kaq keeps reading what is appended to the files, commits every --commit-every,
/// follows rotation (renamed: the old file is finished first; truncated: read from the start),
/// and stops on Ctrl-C after a last commit. Restarted, it resumes where it stopped, finishing
/// first a file rotated away meanwhile. Small segments are merged as it goes.
///
/// Every line is ingested or rejected, as in `kaq convert`; Secret values are redacted. A line
/// longer than --max-record-size (64 MiB) is rejected and read past without being held.
///
/// An input that cannot be read (in a directory: a dangling symbolic link, a symbolic link loop,
/// a subdirectory that cannot be listed; or a file that cannot be opened) is reported by its own
/// path with the reason, skipped, and the rest is ingested; --strict stops at it (exit 1) instead,
/// committing nothing of this run's open segment.
///
/// Examples:
///
///   kaq ingest /var/log/kubernetes/audit/            (into ./kaq-store, or $KAQ_STORE)
///
///   kaq ingest audit-*.log.gz --store /srv/kaq
///
///   kaq ingest --follow /var/log/kubernetes/audit/audit.log --store /srv/kaq
///
///   kaq query 'verb:delete ns:prod*' --store /srv/kaq
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct IngestArgs {
    /// Files (audit logs, plain or gzip, or kaq Parquet from `kaq convert`), directories or `-`
    /// (stdin) to read.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// The store directory [default: $KAQ_STORE, else ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    /// Write every rejected line, whole, to FILE.
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,

    /// Decoding threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    #[command(flatten)]
    input: super::input::InputArgs,

    /// Stop at the first input that cannot be read (a dangling symbolic link, a symbolic link
    /// loop, a file or directory that cannot be opened) or that breaks off, with an error (exit
    /// 1), instead of reporting it, skipping it and going on.
    #[arg(long)]
    strict: bool,

    /// No progress bar and no summary.
    #[arg(short, long)]
    quiet: bool,

    /// Keep reading what is appended to the files (through rotation) until Ctrl-C.
    #[arg(long, short = 'f')]
    follow: bool,

    /// With --follow: how often to commit what was read (each commit makes a segment; small ones
    /// are merged as they pile up).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "follow")]
    commit_every: std::time::Duration,

    /// With --follow: how often to look at the files.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, requires = "follow")]
    poll: std::time::Duration,

    /// Close and commit a segment after the input that takes it to N events (tests use 1: a commit
    /// per input).
    #[arg(long, value_name = "N", default_value_t = kaq_store::SEGMENT_EVENTS, hide = true)]
    segment_events: u64,
}

/// A duration such as `500ms`, `10s` or `1m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match kaq_query::plan::literal::parse_duration(text) {
        Some(us) if us > 0 => Ok(std::time::Duration::from_micros(us as u64)),
        _ => Err(format!("`{text}` is not a positive duration (for example 500ms, 10s, 1m)")),
    }
}

pub fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    if args.follow {
        return follow(args);
    }
    let start = Instant::now();
    let dir = store_dir(args.store.as_ref());
    let mut store = Store::open_writer(&dir)?;
    let progress = bytes_bar(None, args.quiet);
    let mut rejects = Rejects::new(args.rejects.as_deref())?;
    let opts = ingest_options(&args);
    let mut reject_error = None;
    let report = store.ingest_with(&args.inputs, &opts, &mut |counts, rj| {
        progress.inc(counts.bytes);
        for r in rj {
            if let Err(e) = rejects.add(r, &progress) {
                reject_error.get_or_insert(e);
            }
        }
    })?;
    progress.finish_and_clear();
    if let Some(e) = reject_error {
        return Err(e);
    }
    rejects
        .finish(&Report { read_errors: report.read_errors.clone(), ..Report::default() }, args.rejects.as_deref())?;
    super::report::note_skipped(&report.skipped);
    note_unread(&report.unread);
    if !args.quiet {
        let c = report.counts;
        let secs = start.elapsed().as_secs_f64();
        let m = store.manifest();
        let held = if report.duplicates > 0 {
            format!("; {} records already held, not added again", thousands(report.duplicates))
        } else {
            String::new()
        };
        eprintln!(
            "kaq: ingested {} events from {} input(s), rejected {}, skipped {} empty lines; {} input(s) already in the store{held}; read {} in {:.2} s ({}/s); {} now holds {} events in {} segment(s)",
            thousands(c.events),
            report.read.len(),
            thousands(c.rejected),
            thousands(c.blank),
            report.already.len(),
            human_bytes(c.bytes),
            secs,
            human_bytes((c.bytes as f64 / secs.max(1e-9)) as u64),
            dir.display(),
            thousands(m.rows()),
            m.segments.len(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ingest_options(args: &IngestArgs) -> IngestOptions {
    IngestOptions {
        read: ReadOptions {
            decode: DecodeOptions::default(),
            input_format: args.input.format(),
            threads: args.threads.unwrap_or_else(|| ReadOptions::default().threads).max(1),
            max_record_size: args.input.max_record_size,
            strict: args.strict,
            ..ReadOptions::default()
        },
        segment_events: args.segment_events,
    }
}

/// Says which files end in a line still being written, left for the next ingest.
fn note_unread(unread: &[(String, u64)]) {
    for (path, bytes) in unread {
        eprintln!(
            "kaq: {path}: its last line ({}) is incomplete (no newline, not whole JSON); left for the next ingest",
            human_bytes(*bytes)
        );
    }
}

/// `kaq ingest --follow`: ingest, then keep reading until Ctrl-C.
fn follow(args: IngestArgs) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = store_dir(args.store.as_ref());
    let mut store = Store::open_writer(&dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))?;
    }
    let mut rejects = Rejects::new(args.rejects.as_deref())?;
    let progress = indicatif::ProgressBar::hidden();
    let opts = kaq_store::FollowOptions {
        ingest: ingest_options(&args),
        poll: args.poll,
        commit_every: args.commit_every,
        ..kaq_store::FollowOptions::default()
    };
    if !args.quiet {
        let names: Vec<String> = args.inputs.iter().map(|p| p.display().to_string()).collect();
        eprintln!("kaq: following {} into {} (Ctrl-C to stop)", names.join(", "), dir.display());
    }
    let mut reject_error = None;
    let quiet = args.quiet;
    let report = store.follow(
        &args.inputs,
        &opts,
        &stop,
        &mut |_, rj| {
            for r in rj {
                if let Err(e) = rejects.add(r, &progress) {
                    reject_error.get_or_insert(e);
                }
            }
        },
        &mut |c| {
            if quiet {
                return;
            }
            for r in &c.rotated {
                eprintln!("kaq: rotated: {r} read to its end");
            }
            let merged = if c.merged > 0 { format!("; merged {} small segments", c.merged) } else { String::new() };
            eprintln!(
                "kaq: {} committed {} events ({} since start){merged}",
                chrono::Local::now().format("%H:%M:%S"),
                thousands(c.events),
                thousands(c.total_events)
            );
        },
    )?;
    if let Some(e) = reject_error {
        return Err(e);
    }
    rejects
        .finish(&Report { read_errors: report.read_errors.clone(), ..Report::default() }, args.rejects.as_deref())?;
    super::report::note_skipped(&report.skipped);
    if !args.quiet {
        let c = report.counts;
        let m = store.manifest();
        eprintln!(
            "kaq: stopped following; read {} events, rejected {}; {} now holds {} events in {} segment(s)",
            thousands(c.events),
            thousands(c.rejected),
            dir.display(),
            thousands(m.rows()),
            m.segments.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Show what a store holds: events, segments, sizes, time range, ingested inputs.
#[derive(Args)]
pub struct InfoArgs {
    /// The store directory [default: $KAQ_STORE, else ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

pub fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let dir = store_dir(args.store.as_ref());
    let store = Store::open(&dir)?;
    let m = store.manifest();
    // Written as a whole, so that `kaq info | head` ends quietly (a closed pipe is not an error).
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(m)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (lo, hi) = m.time_range();
    let t = |x: Option<i64>| x.map_or_else(|| "-".to_string(), kaq_schema::time::format_micros);
    let bytes: u64 = m.segments.iter().map(|s| s.bytes).sum();
    writeln!(out, "store:     {}", dir.display())?;
    writeln!(out, "format:    {} v{} (generation {})", m.format, m.version, m.generation)?;
    // Records are what the store holds; requests are what `| count` counts (each at its latest
    // stage, keyed by auditID and request).
    let ids = store.identities(&kaq_input::ReadOptions::default())?;
    writeln!(out, "records:   {} (every stage of every request)", thousands(ids.records))?;
    writeln!(
        out,
        "requests:  {} (what `| count` counts: each request once, at its latest stage)",
        thousands(ids.requests())
    )?;
    let sharing = ids.requests_sharing_an_id();
    if sharing > 0 {
        writeln!(
            out,
            "reused auditIDs: {} requests carry an auditID another request also carries (`id_reused:true` lists them)",
            thousands(sharing)
        )?;
    }
    writeln!(out, "segments:  {} ({})", m.segments.len(), human_bytes(bytes))?;
    writeln!(out, "time:      {} … {}", t(lo), t(hi))?;
    writeln!(out, "inputs:    {} ingested", m.sources.len())?;
    for s in &m.segments {
        writeln!(
            out,
            "  {}  {:>12} records  {:>10}  {} … {}",
            s.file,
            thousands(s.rows),
            human_bytes(s.bytes),
            t(s.min_time),
            t(s.max_time)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Merge a store's segments into one (after many small ingests): fewer files per query.
///
/// Committed atomically like an ingest; queries running meanwhile keep reading the old segments,
/// which the next writer (ingest, compact, prune) removes.
#[derive(Args)]
pub struct CompactArgs {
    /// The store directory [default: $KAQ_STORE, else ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

pub fn compact(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let dir = store_dir(args.store.as_ref());
    let start = Instant::now();
    let mut store = Store::open_writer(&dir)?;
    let r = store.compact()?;
    eprintln!(
        "kaq: compacted {}: {} segment(s) → {}, {} events, in {:.2} s",
        dir.display(),
        r.segments_before,
        r.segments_after,
        thousands(r.rows_after),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Drop old events from a store (retention).
///
/// Examples:
///
///   kaq prune --older-than 90d
///
///   kaq prune --before 2026-01-01
///
/// Events with no time are kept. Segments entirely older are dropped; segments that straddle
/// the cutoff are rewritten without the old events; all in one atomic commit.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct PruneArgs {
    /// Drop events older than this duration (e.g. 90d, 12h).
    #[arg(long, value_name = "AGE", required_unless_present = "before", conflicts_with = "before")]
    older_than: Option<String>,

    /// Drop events before this time (e.g. 2026-01-01 or 2026-11-20T12:00Z).
    #[arg(long, value_name = "TIME")]
    before: Option<String>,

    /// The store directory [default: $KAQ_STORE, else ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

pub fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    use kaq_query::plan::literal::{parse_duration, parse_time};
    let now = chrono::Utc::now().timestamp_micros();
    let cutoff = match (&args.older_than, &args.before) {
        (Some(age), _) => match parse_duration(age).filter(|d| *d >= 0) {
            Some(d) => now - d,
            None => anyhow::bail!("--older-than `{age}` is not a duration (e.g. 90d, 12h)"),
        },
        (None, Some(t)) => match parse_time(t, now) {
            Some((lo, _)) => lo,
            None => anyhow::bail!("--before `{t}` is not a time (e.g. 2026-01-01, 2026-11-20T12:00Z)"),
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let dir = store_dir(args.store.as_ref());
    let mut store = Store::open_writer(&dir)?;
    let r = store.prune_before(cutoff)?;
    eprintln!(
        "kaq: pruned {} events before {} from {}: {} events left in {} segment(s)",
        thousands(r.rows_before - r.rows_after),
        kaq_schema::time::format_micros(cutoff),
        dir.display(),
        thousands(r.rows_after),
        r.segments_after
    );
    Ok(ExitCode::SUCCESS)
}
