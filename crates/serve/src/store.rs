//! Every call the server makes into the store, in this one module (so that moving to the `kaq`
//! facade is a change here only).
//!
//! - Writing: one thread owns the store's writer (its lock) and follows the write-ahead log with
//!   [`kaq_store::Store::follow`]: what the log holds is read, committed every `commit_every` as a
//!   segment, small segments merged; a restart resumes where the last commit ended, because the
//!   store recognises what it read of a file by its content. Records equal to one the store holds
//!   are left out (`dedup.rs`), so a batch sent twice is held once.
//! - Reading: each query opens the store read-only ([`kaq_store::Store::open`]: the manifest as
//!   it is now) and runs without any lock: queries never wait for ingest, and see what the last
//!   commit published.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kaq_input::ReadOptions;
use kaq_query::{Column, Options, Plan, Row};
use kaq_store::{FollowOptions, Store};

use crate::metrics::Metrics;

/// The store's directory, created (0700) when missing, and its writer lock taken now, so that a
/// second writer is refused at start rather than later.
pub fn open_writer(dir: &Path) -> Result<Store, String> {
    Store::open_writer(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// How the writer thread follows the log.
#[derive(Debug, Clone)]
pub struct Follow {
    pub commit_every: Duration,
    pub poll: Duration,
    /// Each commit's auditIDs are listed (rules run on arriving events).
    pub commit_ids: bool,
}

/// Follows the write-ahead log `wal` into `store` on a thread of its own until `stop` is set
/// (then commits what it read). `done_rotated` is called after each commit with the rotated log
/// files it read to their end: they are in the store now, and may be deleted; `committed` with
/// each commit (its time range and auditIDs, for the rules run on arriving events).
pub fn spawn_follow(
    mut store: Store,
    wal: PathBuf,
    cfg: Follow,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    done_rotated: impl Fn(&[String]) + Send + 'static,
    committed: impl Fn(&kaq_store::FollowCommit) + Send + 'static,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::Builder::new()
        .name("kaq-serve-ingest".into())
        .spawn(move || {
            let opts = FollowOptions {
                poll: cfg.poll,
                commit_every: cfg.commit_every,
                commit_ids: cfg.commit_ids,
                ..FollowOptions::default()
            };
            let m = metrics.clone();
            let mut on_chunk = |c: &kaq_input::Counts, _rejects: &[kaq_input::Reject]| {
                m.events_rejected_in_batches.fetch_add(c.rejected, Ordering::Relaxed);
                m.wal_bytes_read.fetch_add(c.bytes, Ordering::Relaxed);
            };
            let mut on_commit = |c: &kaq_store::FollowCommit| {
                metrics.events_ingested.fetch_add(c.events, Ordering::Relaxed);
                metrics.commits.fetch_add(1, Ordering::Relaxed);
                for w in &c.warnings {
                    eprintln!("kaq serve: warning: {}", kaq_schema::visible(w));
                }
                done_rotated(&c.rotated);
                committed(c);
            };
            store
                .follow(&[wal], &opts, &stop, &mut on_chunk, &mut on_commit)
                .map(|_| ())
                .map_err(|e| format!("ingesting the write-ahead log: {e}"))
        })
        .expect("a thread can be started")
}

/// The store's size on disk (its live segments' files) and its rows, as the last commit left them.
pub fn size(dir: &Path) -> Option<(u64, u64)> {
    let s = Store::open(dir).ok()?;
    let m = s.manifest();
    Some((m.segments.iter().map(|s| s.bytes).sum(), m.rows()))
}

/// What a query may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub rows: usize,
}

/// How a query is asked.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub q: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub all_stages: bool,
}

/// A query's answer: its rows (at most the row limit), in the columns the CLI prints them in.
pub struct Answer {
    pub plan: Plan,
    pub rows: Vec<Row>,
    /// Rows left out by the row limit.
    pub cut: usize,
    pub notes: Vec<String>,
}

impl Answer {
    pub fn columns(&self) -> &[Column] {
        self.plan.output_columns()
    }

    /// JSON lines exactly as `kaq query --format json` writes them (the same function).
    pub fn json_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        kaq_query::output::write_json(&mut out, &self.rows, self.columns()).expect("writing to memory");
        out
    }

    /// The rows as an Arrow IPC stream (the schema of `QueryResult::record_batches`).
    pub fn arrow_stream(&self) -> Result<Vec<u8>, String> {
        let batch = kaq_query::arrow::record_batch(self.columns(), &self.rows, self.plan.whole_events)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).map_err(|e| e.to_string())?;
        w.write(&batch).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        drop(w);
        Ok(out)
    }
}

/// Why a query gave no answer.
pub enum Failed {
    /// The text does not compile: each problem with its code, message and span.
    Query(Vec<kaq_syntax::Diagnostic>),
    /// It ran past the time limit and was stopped.
    Timeout,
    /// The store could not answer (damage, I/O).
    Store(String),
}

fn compile(ask: &Ask) -> Result<Plan, Failed> {
    let opts = Options {
        now_us: chrono::Utc::now().timestamp_micros(),
        all_stages: ask.all_stages,
        since: ask.since.clone(),
        until: ask.until.clone(),
        macros: Default::default(),
    };
    kaq_query::compile(&ask.q, &opts).map_err(Failed::Query)
}

/// A read with a cancel flag that a timer sets after `timeout`.
fn timed_read(timeout: Duration) -> (ReadOptions, Arc<AtomicBool>) {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        flag.store(true, Ordering::Relaxed);
    });
    (ReadOptions { cancel: Some(cancel.clone()), ..ReadOptions::default() }, cancel)
}

fn store_error(e: kaq_store::Error, cancel: &AtomicBool) -> Failed {
    match e {
        kaq_store::Error::Query(d) => Failed::Query(d),
        _ if cancel.load(Ordering::Relaxed) => Failed::Timeout,
        e => Failed::Store(e.to_string()),
    }
}

/// Runs a query over the store as `kaq query --store DIR` does (latest stage of each request).
pub fn query(dir: &Path, ask: &Ask, limits: &Limits) -> Result<Answer, Failed> {
    let plan = compile(ask)?;
    let store = Store::open(dir).map_err(|e| Failed::Store(e.to_string()))?;
    let (read, cancel) = timed_read(limits.timeout);
    let r = store.run(&plan, &read).map_err(|e| store_error(e, &cancel))?;
    let mut rows = r.rows;
    let cut = rows.len().saturating_sub(limits.rows);
    rows.truncate(limits.rows);
    Ok(Answer { plan, rows, cut, notes: r.notes.iter().map(|n| n.to_string()).collect() })
}

/// The plan and how it ran here, as `kaq query --explain --store DIR` prints it.
pub fn explain(dir: &Path, ask: &Ask, limits: &Limits) -> Result<String, Failed> {
    let plan = compile(ask)?;
    let store = Store::open(dir).map_err(|e| Failed::Store(e.to_string()))?;
    let (read, cancel) = timed_read(limits.timeout);
    store.explain_plan(&plan, &read).map_err(|e| store_error(e, &cancel))
}

/// Fields whose values are offered for completion (the REPL's list).
pub const VALUE_FIELDS: &[&str] = &[
    "verb",
    "ns",
    "user",
    "resource",
    "subresource",
    "name",
    "user_kind",
    "decision",
    "reason",
    "status",
    "stage",
    "apigroup",
    "groups",
    "as",
    "ip",
    "level",
];

/// The most frequent values of each completed field (`limit` each), from the store's term
/// dictionaries and columns.
pub fn top_values(dir: &Path, limit: usize) -> Vec<(&'static str, Vec<(String, u64)>)> {
    let Ok(store) = Store::open(dir) else { return Vec::new() };
    let Ok(terms) = store.terms() else { return Vec::new() };
    VALUE_FIELDS.iter().map(|f| (*f, terms.top(f, "", limit))).collect()
}
