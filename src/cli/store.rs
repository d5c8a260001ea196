//! `kaq ingest`, `info`, `verify`, `compact` and `prune`: the store (crates/store).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use kaq_input::{ReadOptions, Report};
use kaq_schema::DecodeOptions;
use kaq_store::{IngestOptions, Store};

use super::progress::bytes_bar;
use super::report::{Rejects, human_bytes, shown, thousands};

/// The store directory: --store, else $KAQ_STORE, else ./kaq-store.
pub fn store_dir(flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned()
        .or_else(|| std::env::var_os("KAQ_STORE").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("kaq-store"))
}

/// Ingest audit logs into a store, to query them later without reading the logs again.
///
/// The store is a directory (private to you: 0700, its files 0600; an existing directory is
/// changed to 0700, and kaq says so) of time-sorted Parquet segments, each with
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
/// and stops on Ctrl-C after a last commit. It follows rotation: renamed, the old file is read to
/// its end through the handle kept on it, then the new one; copied and truncated, the rest is read
/// from the copy beside it, then the emptied file from its start; rotations between two looks are
/// found beside the file. Restarted (even after kill -9), it resumes where it stopped, finishing
/// first the files rotated away meanwhile. Small segments are merged as it goes. Lines written
/// between a copy and its truncation are in neither file: they cannot be read.
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

    /// Write every rejected line, whole, to FILE (created private, 0600).
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
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
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
    note_made_private(&store);
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
            shown(&dir),
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

/// Says that the store was made in an existing directory whose mode kaq changed to 0700.
pub fn note_made_private(store: &Store) {
    if let Some(was) = store.made_private() {
        eprintln!(
            "kaq: note: {} was mode {was:04o}; kaq made it 0700 (private to you), as a store holds audit events",
            shown(store.dir())
        );
    }
}

/// Says which files end in a line still being written, left for the next ingest.
fn note_unread(unread: &[(String, u64)]) {
    for (path, bytes) in unread {
        eprintln!(
            "kaq: {}: its last line ({}) is incomplete (no newline, not whole JSON); left for the next ingest",
            kaq_schema::visible(path),
            human_bytes(*bytes)
        );
    }
}

/// `kaq ingest --follow`: ingest, then keep reading until Ctrl-C.
fn follow(args: IngestArgs) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Ctrl-C is handled from the start: one that comes while the store opens stops the follow
    // before it reads.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))?;
    }
    let dir = store_dir(args.store.as_ref());
    let mut store = Store::open_writer(&dir)?;
    note_made_private(&store);
    let mut rejects = Rejects::new(args.rejects.as_deref())?;
    let progress = indicatif::ProgressBar::hidden();
    let opts = kaq_store::FollowOptions {
        ingest: ingest_options(&args),
        poll: args.poll,
        commit_every: args.commit_every,
        ..kaq_store::FollowOptions::default()
    };
    if !args.quiet {
        let names: Vec<String> = args.inputs.iter().map(|p| shown(p)).collect();
        eprintln!("kaq: following {} into {} (Ctrl-C to stop)", names.join(", "), shown(&dir));
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
            for w in &c.warnings {
                eprintln!("kaq: warning: {w}");
            }
            if quiet {
                return;
            }
            for r in &c.rotated {
                eprintln!("kaq: rotated: {} read to its end", kaq_schema::visible(r));
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
            shown(&dir),
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
        // Ingested files' names are anyone's: DEL, C1 and bidi characters as `\u` escapes.
        writeln!(out, "{}", kaq_schema::visible::visible_json(&serde_json::to_string_pretty(m)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let (lo, hi) = m.time_range();
    let t = |x: Option<i64>| x.map_or_else(|| "-".to_string(), kaq_schema::time::format_micros);
    let bytes: u64 = m.segments.iter().map(|s| s.bytes).sum();
    writeln!(out, "store:     {}", shown(&dir))?;
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
    // Segments whose index this kaq does not use (none, or one of another index version: before
    // version 9, tantivy's FSTs, which this kaq cannot open): scanned, until compacted.
    let unindexed = m.segments.iter().filter(|s| s.usable_index().is_none()).count();
    if unindexed > 0 {
        writeln!(
            out,
            "index:     {unindexed} of {} segment(s) without an index this kaq uses (written by an older kaq), \
             searched through their columns; `kaq compact` rebuilds it",
            m.segments.len()
        )?;
    }
    writeln!(out, "time:      {} … {}", t(lo), t(hi))?;
    writeln!(out, "inputs:    {} ingested", m.sources.len())?;
    for s in &m.segments {
        writeln!(
            out,
            "  {}  {:>12} records  {:>10}  {} … {}",
            kaq_schema::visible(&s.file),
            thousands(s.rows),
            human_bytes(s.bytes),
            t(s.min_time),
            t(s.max_time)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Check a store for damage: every file of every segment and the manifest, against the sizes and
/// CRC-32 checksums recorded when they were committed.
///
/// Each segment file (its Parquet file and each file of its index) is read whole. Damaged or
/// missing files are listed with what was expected and what was found. Segments committed by a
/// kaq older than checksums have only their size checked ("no digest recorded").
///
/// Queries check the files' sizes every time and a segment's checksum whenever they read it whole;
/// compact, prune and --follow's merges refuse to copy a damaged segment. Queries answered from the
/// index or a few columns do not read whole files: this command finds what they would not.
///
/// Exit status: 0 when everything is intact, 3 when something is damaged or missing, 1 when the
/// store cannot be read at all.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// The store directory [default: $KAQ_STORE, else ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

/// The exit status of `kaq verify` when a file is damaged or missing.
pub const DAMAGED: u8 = 3;

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = store_dir(args.store.as_ref());
    let start = Instant::now();
    let v = Store::verify(&dir)?;
    let mut out = std::io::stdout().lock();
    let mut unchecked = 0;
    for c in &v.files {
        match &c.found {
            kaq_store::Found::Intact => {}
            kaq_store::Found::NoDigest => {
                unchecked += 1;
                writeln!(out, "{}: {}", c.path.display(), c.found)?;
            }
            found => writeln!(out, "{}: DAMAGED: {found}", c.path.display())?,
        }
    }
    let damaged = v.damaged().count();
    let bytes: u64 = v.files.iter().filter_map(|c| std::fs::metadata(&c.path).ok()).map(|m| m.len()).sum();
    writeln!(
        out,
        "kaq: verified {}: the manifest and {} file(s) of {} segment(s), {}, in {:.2} s: {}{}",
        dir.display(),
        v.files.len() - 1,
        v.segments,
        human_bytes(bytes),
        start.elapsed().as_secs_f64(),
        if damaged == 0 { "all intact".to_string() } else { format!("{damaged} damaged") },
        if unchecked == 0 { String::new() } else { format!(" ({unchecked} with no digest recorded)") },
    )?;
    Ok(if damaged == 0 { ExitCode::SUCCESS } else { ExitCode::from(DAMAGED) })
}

/// Merge a store's segments into one (after many small ingests): fewer files per query.
///
/// Committed atomically like an ingest; the old segments' files are deleted right after (queries
/// running meanwhile finish on the files they opened, or start again on the new segment).
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
        "kaq: compacted {}: {} segment(s) → {}, {} events, in {:.2} s; {}",
        shown(&dir),
        r.segments_before,
        r.segments_after,
        thousands(r.rows_after),
        start.elapsed().as_secs_f64(),
        freed(&r)
    );
    Ok(ExitCode::SUCCESS)
}

/// What a compaction or prune did on disk: `deleted 3 segments (7.2 MB), wrote 1.1 MB`.
fn freed(r: &kaq_store::Rewrite) -> String {
    let mut s = format!(
        "deleted {} segment{} ({})",
        r.segments_deleted,
        if r.segments_deleted == 1 { "" } else { "s" },
        human_bytes(r.bytes_freed)
    );
    if r.bytes_written > 0 {
        s.push_str(&format!(", wrote {}", human_bytes(r.bytes_written)));
    }
    s
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
/// the cutoff are rewritten without the old events; all in one atomic commit, after which the
/// files of the segments dropped or rewritten are deleted. kaq says how much it freed.
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
        "kaq: pruned {} events before {} from {}: {} events left in {} segment(s); {}",
        thousands(r.rows_before - r.rows_after),
        kaq_schema::time::format_micros(cutoff),
        shown(&dir),
        thousands(r.rows_after),
        r.segments_after,
        freed(&r)
    );
    Ok(ExitCode::SUCCESS)
}
