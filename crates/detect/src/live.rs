//! Rules run on arriving events (`kaq watch`, `kaq serve`): after each commit of new events into
//! the store, every rule runs again over the **recent history** those events need, exactly as
//! `kaq detect` runs it, and only the alerts not sent before are new.
//!
//! - The new events begin at the earliest `time` of the commits not evaluated yet
//!   ([`FollowCommit::times`](kaq_store::FollowCommit::times)); each rule reads as far before
//!   that as its kind needs (its window, first-seen lookback or spike baseline: the same
//!   history `kaq detect --since` reads) and fires only at requests at or after it. A rule with
//!   a long history (first seen) is first probed for a new matching request, and skipped when it
//!   has none.
//! - An alert is **sent once**: a computed alert of the same rule and group whose span
//!   `[first, last]` comes within the rule's `suppress` of an alert already sent is the same
//!   burst (grown, or seen again from a later start), not a new one; the one sent keeps its key
//!   (rule, group, first) and its span is extended. So a burst is one alert, as `kaq detect`
//!   makes it, sent when it first fires, with the count and evidence it had then.
//! - The **state** (the alerts sent, recent enough to matter, the last segment evaluated and the
//!   newest event time then) is a
//!   small JSON file, by default `alerts.state.json` in the store's directory, replaced
//!   atomically after each evaluation. A restart reads it: the commits not evaluated before the
//!   stop (segments after the last one evaluated; from at most an hour before the newest event
//!   evaluated, so that a store compacted meanwhile is not evaluated again whole) are evaluated
//!   first, and nothing sent before is sent again. The first start on a store that already holds events takes them as history: they
//!   fill windows and first-seen lookbacks, but do not alert (`kaq detect` reports them).
//!
//! A first-seen rule learns from the data's first event (`learn`) as `kaq detect` over the
//! whole store does; a spike's baseline starts `5 / alpha` buckets before the new events, as
//! with `kaq detect --since` (the older buckets weigh less than `(1 − alpha)^(5/alpha)`, 0.5 %).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::Hit;
use crate::{Alert, Bounds, Data, DataError, Prepared, RuleSet};

/// The state file's name in the store directory, by default.
pub const STATE_FILE: &str = "alerts.state.json";

/// One alert sent: its key and how far its burst has been seen to reach.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sent {
    rule: String,
    group: Vec<(String, String)>,
    first: i64,
    last: i64,
}

/// What survives a restart.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct State {
    version: u32,
    /// Every segment with an id up to this one has been evaluated (or was history).
    through_segment: u64,
    /// The newest event time when the state was written.
    #[serde(default)]
    newest: Option<i64>,
    sent: Vec<Sent>,
}

/// At a restart, commits not evaluated before the stop are evaluated from at most this long
/// before the newest event evaluated: a store rewritten meanwhile (`kaq compact`, `kaq prune`:
/// every segment new) is not evaluated again from its start.
const RECOVER: i64 = 3_600_000_000;

/// An error of the live detection.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("alert state {path}: {why}")]
    State { path: PathBuf, why: String },
}

/// Rules run on arriving events; see the module's documentation.
pub struct Live {
    prepared: Vec<Prepared>,
    macros: HashMap<String, String>,
    dir: PathBuf,
    state_path: PathBuf,
    state: State,
    max_evidence: usize,
    /// The earliest time of the events committed and not evaluated yet.
    pending: Option<i64>,
    /// Alerts sent whose last evidence is older than this before the newest event are forgotten.
    horizon: i64,
    /// What the last evaluation took.
    pub last_stats: EvalStats,
    /// A first start (no state yet) on a store that held events: they are history.
    pub history_at_start: bool,
}

/// What one evaluation did.
#[derive(Debug, Clone, Default)]
pub struct EvalStats {
    /// Rules run (the others had no new matching request).
    pub rules_run: usize,
    pub elapsed: std::time::Duration,
}

impl Live {
    /// Starts live detection over the store in `dir` with `prepared` rules (from
    /// [`prepare`](crate::prepare) over `set`), keeping its state in `state_path` (default:
    /// [`STATE_FILE`] in `dir`).
    pub fn open(
        set: &RuleSet,
        prepared: Vec<Prepared>,
        dir: &Path,
        state_path: Option<PathBuf>,
        max_evidence: usize,
    ) -> Result<Live, LiveError> {
        let state_path = state_path.unwrap_or_else(|| dir.join(STATE_FILE));
        let macros = set.macros().unwrap_or_default();
        let segments: Vec<(u64, Option<i64>, Option<i64>)> = match kaq_store::Store::open(dir) {
            Ok(s) => s.manifest().segments.iter().map(|g| (g.id, g.min_time, g.max_time)).collect(),
            Err(_) => Vec::new(), // not made yet: made by the writer before the first commit
        };
        let horizon = prepared.iter().map(|p| p.history.saturating_add(p.rule.suppress)).max().unwrap_or(0);
        let mut live = Live {
            prepared,
            macros,
            dir: dir.to_path_buf(),
            state_path: state_path.clone(),
            state: State::default(),
            max_evidence: max_evidence.max(1),
            pending: None,
            horizon: horizon.saturating_add(3_600_000_000),
            last_stats: EvalStats::default(),
            history_at_start: false,
        };
        match std::fs::read(&state_path) {
            Ok(bytes) => {
                live.state = serde_json::from_slice(&bytes).map_err(|e| LiveError::State {
                    path: state_path.clone(),
                    why: format!("not a state kaq wrote ({e}); move it away to start afresh"),
                })?;
                // Commits made after the last evaluation (a stop before it): evaluated first.
                let through = live.state.through_segment;
                let floor = live.state.newest.map(|n| n.saturating_sub(RECOVER));
                live.pending = segments
                    .iter()
                    .filter(|(id, ..)| *id > through)
                    .filter_map(|(_, t, _)| *t)
                    .min()
                    .map(|t| floor.map_or(t, |f| t.max(f)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A first start: what the store holds is history.
                live.state.version = 1;
                live.state.through_segment = segments.iter().map(|(id, ..)| *id).max().unwrap_or(0);
                live.state.newest = segments.iter().filter_map(|(.., t)| *t).max();
                live.history_at_start = !segments.is_empty();
                live.save()?;
            }
            Err(e) => return Err(LiveError::State { path: state_path, why: e.to_string() }),
        }
        Ok(live)
    }

    /// The rules run.
    pub fn prepared(&self) -> &[Prepared] {
        &self.prepared
    }

    /// Where the state is kept.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// Whether commits wait for evaluation.
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Notes a commit of events whose times span `times` (from
    /// [`FollowCommit::times`](kaq_store::FollowCommit::times)).
    pub fn committed(&mut self, times: Option<(i64, i64)>) {
        if let Some((lo, _)) = times {
            self.pending = Some(self.pending.map_or(lo, |p| p.min(lo)));
        }
    }

    /// Runs the rules over what was committed since the last evaluation; gives `emit` the alerts
    /// not sent before (sorted by first time, then rule), then records them as sent (so a stop
    /// between the two sends them again at the restart rather than never). On an error the
    /// commits stay pending, for the next call. Returns how many alerts were new.
    pub fn evaluate(&mut self, emit: &mut dyn FnMut(&[Alert])) -> Result<usize, LiveError> {
        let started = std::time::Instant::now();
        let Some(lo) = self.pending else {
            self.last_stats = EvalStats::default();
            return Ok(0);
        };
        let data = Data::open_store(&self.dir)?;
        let through = data.store().manifest().segments.iter().map(|s| s.id).max().unwrap_or(0);
        let (data_start, data_end) = data.time_range().unwrap_or((lo, lo));
        // The rules run on a few threads, each with its own view of the store (a query costs
        // mostly its fixed overhead, so more rules at once means an alert sooner).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let per = self.prepared.len().div_ceil(threads).max(1);
        let (dir, macros, max_evidence) = (&self.dir, &self.macros, self.max_evidence);
        let done: Vec<Result<(Vec<Alert>, usize), LiveError>> = std::thread::scope(|scope| {
            let running: Vec<_> = self
                .prepared
                .chunks_mut(per)
                .map(|chunk| {
                    scope.spawn(move || {
                        let data = Data::open_store(dir)?;
                        run_rules(chunk, &data, macros, lo, data_start, max_evidence)
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let mut computed = Vec::new();
        let mut rules_run = 0;
        for r in done {
            let (alerts, n) = r?;
            computed.extend(alerts);
            rules_run += n;
        }
        computed.sort_by(|a, b| a.first.cmp(&b.first).then_with(|| a.rule.cmp(&b.rule)));
        let suppress: HashMap<&str, i64> =
            self.prepared.iter().map(|p| (p.rule.id.as_str(), p.rule.suppress)).collect();
        let mut new = Vec::new();
        let before = self.state.sent.clone();
        for a in computed {
            let sup = suppress.get(a.rule.as_str()).copied().unwrap_or(0);
            let same = self.state.sent.iter_mut().find(|s| {
                s.rule == a.rule
                    && s.group == a.group
                    && a.first <= s.last.saturating_add(sup)
                    && s.first <= a.last.saturating_add(sup)
            });
            match same {
                Some(s) => s.last = s.last.max(a.last),
                None => {
                    self.state.sent.push(Sent {
                        rule: a.rule.clone(),
                        group: a.group.clone(),
                        first: a.first,
                        last: a.last,
                    });
                    new.push(a);
                }
            }
        }
        emit(&new);
        let keep_from = data_end.saturating_sub(self.horizon);
        self.state.sent.retain(|s| s.last >= keep_from);
        let (through_before, newest_before) = (self.state.through_segment, self.state.newest);
        self.state.through_segment = self.state.through_segment.max(through);
        self.state.newest = Some(data_end.max(newest_before.unwrap_or(i64::MIN)));
        if let Err(e) = self.save() {
            self.state.sent = before;
            self.state.through_segment = through_before;
            self.state.newest = newest_before;
            return Err(e);
        }
        self.pending = None;
        self.last_stats = EvalStats { rules_run, elapsed: started.elapsed() };
        Ok(new.len())
    }

    /// Writes the state: a temporary file beside it, synced, renamed over it.
    fn save(&self) -> Result<(), LiveError> {
        let err = |e: std::io::Error| LiveError::State { path: self.state_path.clone(), why: e.to_string() };
        let mut tmp = self.state_path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_vec(&self.state).expect("the state serializes");
        {
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(&text).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.state_path).map_err(err)?;
        if let Some(dir) = self.state_path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Runs `rules` over `data` for requests at or after `lo` (with the history each needs); the
/// alerts, and how many rules ran (a rule whose history is longer than an hour is skipped when
/// it matches no request at or after `lo`).
fn run_rules(
    rules: &mut [Prepared],
    data: &Data,
    macros: &HashMap<String, String>,
    lo: i64,
    data_start: i64,
    max_evidence: usize,
) -> Result<(Vec<Alert>, usize), LiveError> {
    let bounds = Bounds { since: Some(lo), until: None };
    let mut computed = Vec::new();
    let mut rules_run = 0;
    for p in rules.iter_mut() {
        if p.history > 3_600_000_000 {
            let mut any = false;
            for plan in p.probe(macros, lo) {
                if !data.rows(&plan)?.is_empty() {
                    any = true;
                    break;
                }
            }
            if !any {
                continue;
            }
        }
        rules_run += 1;
        p.compile_for(macros, &bounds).expect("time conditions compile");
        let mut hits: Vec<Hit> = Vec::new();
        for (step, (_, plan)) in p.queries.iter().enumerate() {
            let rows = data.rows(plan)?;
            hits.extend(rows.into_iter().filter_map(|(time, id, cols)| {
                let time = time?;
                Some(crate::to_hit(&p.rule, time, id, cols, step))
            }));
        }
        if hits.iter().all(|h| h.time < lo) {
            continue;
        }
        computed.extend(crate::evaluate_with(&p.rule, hits, Some(data_start), &bounds, max_evidence, true));
    }
    Ok((computed, rules_run))
}

/// A [`Live`] on a thread of its own (`kaq serve`): commits are noted without waiting, and the
/// rules run beside ingest, as often as they can keep up (commits that arrive while the rules
/// run are evaluated together next).
pub struct Background {
    tx: Option<std::sync::mpsc::Sender<Option<(i64, i64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts `live`; `emit` gets each evaluation's new alerts, `warn` its errors.
    pub fn spawn(
        mut live: Live,
        mut emit: impl FnMut(&[Alert]) + Send + 'static,
        warn: impl Fn(&LiveError) + Send + 'static,
    ) -> Background {
        let (tx, rx) = std::sync::mpsc::channel::<Option<(i64, i64)>>();
        let thread = std::thread::Builder::new()
            .name("kaq-detect-live".into())
            .spawn(move || {
                let mut run = |live: &mut Live| {
                    if let Err(e) = live.evaluate(&mut emit) {
                        warn(&e);
                    }
                };
                if live.pending() {
                    run(&mut live);
                }
                while let Ok(times) = rx.recv() {
                    live.committed(times);
                    while let Ok(more) = rx.try_recv() {
                        live.committed(more);
                    }
                    run(&mut live);
                }
            })
            .expect("a thread can be started");
        Background { tx: Some(tx), thread: Some(thread) }
    }

    /// What notes a commit (see [`Live::committed`]), for the thread that commits. The thread
    /// stops once every notifier and the `Background` are dropped or finished.
    pub fn notifier(&self) -> impl Fn(Option<(i64, i64)>) + Send + 'static {
        let tx = self.tx.clone();
        move |times| {
            if times.is_some()
                && let Some(tx) = &tx
            {
                let _ = tx.send(times);
            }
        }
    }

    /// Evaluates what is noted, then stops the thread.
    pub fn finish(mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
