//! `kaq watch`: follows live audit logs into a store and runs the detection rules as events
//! arrive (crates/detect's `live` and `deliver` modules; `kaq serve` uses the same two).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kaq_detect::deliver::{self, Shape};
use kaq_detect::live::Live;
use kaq_schema::visible;

use super::detect::{FIRED, Format};

/// Follow live audit logs, store them, and alert as events arrive.
///
/// kaq watch does what `kaq ingest --follow` does (it reads what is appended to the logs,
/// through rotation, without loss or duplicates, into the store) and, after each commit, runs
/// the rules `kaq detect` runs: the built-in pack, your rules.toml, then each --rules FILE.
/// Each alert is printed once, when it first fires, as `kaq detect` prints it (one JSON line
/// when piped, an aligned row on a terminal), and POSTed to --webhook if given.
///
///   kaq watch /var/log/kubernetes/audit/audit.log --store /srv/kaq
///
///   kaq watch audit.log --store /srv/kaq --format json >> alerts.jsonl
///
///   kaq watch audit.log --store /srv/kaq --webhook http://127.0.0.1:9000/alerts
///
///   kaq watch audit.log --store /srv/kaq --webhook http://relay:8080/slack --webhook-format slack
///
/// The alerts are those `kaq detect --store DIR` reports over the same events: after each
/// commit every rule runs over the new events and as much history before them as it needs (its
/// window, first-seen lookback or spike baseline), and an alert is new only if no alert of the
/// same rule and group was sent within the rule's `suppress` of it: a burst is one alert, sent
/// when it fires (its count and auditIDs are those it had then; `kaq detect` later shows the
/// whole burst). Events are committed every --commit-every (250ms): an alert is printed well
/// within a second of its line being written.
///
/// Its state (the alerts sent, and which commits were evaluated) is a small file,
/// alerts.state.json in the store (--state FILE elsewhere), replaced atomically after each
/// evaluation; the store itself remembers how far each log was read. Stopped (Ctrl-C,
/// SIGTERM, or killed) and started again, kaq watch reads what was written meanwhile, and
/// neither repeats an alert nor loses one. Started on a store that already holds events, it
/// takes them as history (windows and first-seen lookbacks use them; `kaq detect` reports
/// their alerts).
///
/// Webhook: each alert is POSTed (plain HTTP) as its JSON line, or with --webhook-format slack
/// as {"text": "[HIGH] rule: group — N requests, …"} (Slack, Mattermost and most chat bridges
/// take it). A failed delivery is retried --webhook-retries times, waiting 0.5s, 1s, 2s, …;
/// delivery runs beside ingest and never holds it up; an alert that could not be delivered is
/// named on stderr.
///
/// Exit status: 0 when it stopped and nothing fired, 4 when at least one alert fired, 2 for a
/// bad rule file, 1 for other errors. docs/detect.md describes rules and `kaq watch`.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct WatchArgs {
    /// Audit logs to follow (files, or directories of them; a path not there yet is waited
    /// for).
    #[arg(value_name = "LOG", required = true)]
    logs: Vec<PathBuf>,

    /// The store the events go into [default: $KAQ_STORE, else ./kaq-store]; made when
    /// missing.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    #[command(flatten)]
    select: super::detect::RuleSelection,

    /// Output format [default: text on a terminal, json otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// The auditIDs listed per alert.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_evidence: usize,

    /// POST each alert to this URL (http://HOST[:PORT][/PATH]).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,

    /// The webhook body: the alert's JSON line, or Slack's {"text": …}.
    #[arg(long, value_enum, default_value = "json", requires = "webhook")]
    webhook_format: WebhookFormat,

    /// Attempts after a failed delivery (connection refused, timeout, 408, 429, 5xx).
    #[arg(long, value_name = "N", default_value_t = 5, requires = "webhook")]
    webhook_retries: u32,

    /// Where the alert state is kept [default: alerts.state.json in the store].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,

    /// How often what was read is committed and the rules run.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = super::store::parse_duration)]
    commit_every: Duration,

    /// How often the logs are looked at.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = super::store::parse_duration)]
    poll: Duration,

    #[command(flatten)]
    input: super::input::InputArgs,

    /// No progress lines on stderr (warnings and undelivered alerts are still said).
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebhookFormat {
    Json,
    Slack,
}

impl WebhookFormat {
    pub fn shape(self) -> Shape {
        match self {
            WebhookFormat::Json => Shape::Json,
            WebhookFormat::Slack => Shape::Slack,
        }
    }
}

/// A webhook sender whose undelivered alerts are said on stderr.
pub fn webhook_sender(url: &str, format: WebhookFormat, retries: u32) -> anyhow::Result<deliver::Sender> {
    let target = deliver::Target::parse(url).map_err(|e| anyhow::anyhow!("--webhook {}", visible(&e)))?;
    let retry = deliver::Retry { retries, ..deliver::Retry::default() };
    Ok(deliver::Sender::start(
        target,
        format.shape(),
        retry,
        Box::new(|a, why| {
            eprintln!(
                "kaq: webhook: alert not delivered: {} {} (first {}): {}",
                a.rule,
                visible(&a.group.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
                kaq_detect::source::time_literal(a.first),
                visible(why)
            );
        }),
    ))
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let set = match args.select.set()? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let prepared = match args.select.prepare(&set) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let sender = match &args.webhook {
        Some(url) => Some(webhook_sender(url, args.webhook_format, args.webhook_retries)?),
        None => None,
    };
    let dir = super::store::store_dir(args.store.as_ref());
    let mut store = kaq_store::Store::open_writer(&dir)?;
    super::store::note_made_private(&store);
    let n_rules = prepared.len();
    let mut live = Live::open(&set, prepared, &dir, args.state.clone(), args.max_evidence)
        .with_context(|| format!("starting detection over {}", super::report::shown(&dir)))?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))?;
    }
    let format = match args.format {
        Some(f) => f,
        None if std::io::stdout().is_terminal() => Format::Text,
        None => Format::Json,
    };
    if !args.quiet {
        let names: Vec<String> = args.logs.iter().map(|p| super::report::shown(p)).collect();
        eprintln!(
            "kaq: watching {} into {} with {n_rules} rules; state in {} (Ctrl-C to stop)",
            names.join(", "),
            super::report::shown(&dir),
            super::report::shown(live.state_path())
        );
    }
    if !args.quiet && live.history_at_start {
        eprintln!(
            "kaq: the events already in {} are history: they fill windows and lookbacks, but do not alert (`kaq detect --store` reports them)",
            super::report::shown(&dir)
        );
    }
    if format == Format::Text {
        println!("{}", text_line(&super::detect::TEXT_HEAD.map(String::from)));
    }
    let opts = kaq_store::FollowOptions {
        ingest: kaq_store::IngestOptions {
            read: kaq_input::ReadOptions {
                input_format: args.input.format(),
                max_record_size: args.input.max_record_size,
                ..kaq_input::ReadOptions::default()
            },
            ..kaq_store::IngestOptions::default()
        },
        poll: args.poll,
        commit_every: args.commit_every,
        commit_ids: true,
        ..kaq_store::FollowOptions::default()
    };
    let mut fired = 0u64;
    let mut rejected = 0u64;
    let mut out_error: Option<std::io::Error> = None;
    let quiet = args.quiet;
    let mut evaluate = |live: &mut Live, fired: &mut u64, events: u64| -> bool {
        let mut emit = |alerts: &[kaq_detect::Alert]| {
            let mut out = std::io::stdout().lock();
            let written = (|| {
                for a in alerts {
                    match format {
                        Format::Json => writeln!(out, "{}", a.to_json())?,
                        Format::Text => writeln!(out, "{}", text_line(&super::detect::text_cells(a)))?,
                    }
                }
                out.flush()
            })();
            if let Some(s) = &sender {
                for a in alerts {
                    s.send(a);
                }
            }
            if let Err(e) = written {
                out_error.get_or_insert(e);
            }
        };
        match live.evaluate(&mut emit) {
            Ok(n) => {
                *fired += n as u64;
                let s = &live.last_stats;
                if !quiet && events > 0 && !s.elapsed.is_zero() {
                    eprintln!(
                        "kaq: {} committed {events} events; {} of {n_rules} rules ran ({} from memory) in {} ms; {n} new alert{}",
                        chrono::Local::now().format("%H:%M:%S%.3f"),
                        s.rules_run,
                        s.from_memory,
                        s.elapsed.as_millis(),
                        if n == 1 { "" } else { "s" }
                    );
                }
            }
            Err(e) => {
                eprintln!(
                    "kaq: warning: detection after a commit: {}; tried again after the next",
                    visible(&e.to_string())
                );
            }
        }
        // stdout closed (`kaq watch | head`): stop, as any writer would.
        out_error.is_none()
    };
    // Commits of an earlier run not evaluated before it stopped.
    if live.pending() && !evaluate(&mut live, &mut fired, 0) {
        stop.store(true, Ordering::Relaxed);
    }
    let stop_out = stop.clone();
    let report = store.follow(&args.logs, &opts, &stop, &mut |c, _| rejected += c.rejected, &mut |c| {
        for w in &c.warnings {
            eprintln!("kaq: warning: {}", visible(w));
        }
        if !quiet {
            for r in &c.rotated {
                eprintln!("kaq: rotated: {} read to its end", visible(r));
            }
        }
        live.committed(c.times, c.ids.clone());
        if !evaluate(&mut live, &mut fired, c.events) {
            stop_out.store(true, Ordering::Relaxed);
        }
    })?;
    let delivered = sender.map(|s| s.finish(Duration::from_secs(10)));
    if let Some(e) = out_error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(anyhow::Error::new(e).context("writing alerts"));
    }
    if !args.quiet {
        let webhook = match delivered {
            Some(d) => {
                format!("; webhook: {} delivered, {} retried attempts, {} not delivered", d.sent, d.retried, d.dropped)
            }
            None => String::new(),
        };
        eprintln!(
            "kaq: stopped watching; read {} events ({} rejected), {fired} alert{}{webhook}",
            report.counts.events,
            rejected,
            if fired == 1 { "" } else { "s" }
        );
    }
    Ok(if fired > 0 { ExitCode::from(FIRED) } else { ExitCode::SUCCESS })
}

/// One row of the text output, in fixed columns (alerts come one at a time).
fn text_line(cells: &[String; 6]) -> String {
    let width = [27, 8, 28, 6, 40];
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        let c: String = if c.chars().count() > 60 { c.chars().take(59).chain(['…']).collect() } else { c.clone() };
        match i {
            5 => s.push_str(&c),
            3 => s.push_str(&format!("{c:>w$}  ", w = width[i])),
            _ => s.push_str(&format!("{c:<w$}  ", w = width[i])),
        }
    }
    s.trim_end().to_string()
}
