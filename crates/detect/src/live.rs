//! Rules run on arriving events (`kaq watch`, `kaq serve`): after each commit of new events into
//! the store, the rules find what those events change, with the answers `kaq detect` gives, and
//! only the alerts not sent before are new.
//!
//! - **From memory.** Each rule holds the hits its windows need (`Held`: its matching requests
//!   of the last hour plus its window, lookback or spike baseline, by group; a first-seen rule
//!   holds an hour and, per group, the time of the latest hit let go). A commit is known by its
//!   auditIDs ([`FollowCommit::ids`](kaq_store::FollowCommit::ids)); every record of those
//!   auditIDs is read again from the whole store by auditID
//!   ([`Store::records_with_ids`](kaq_store::Store::records_with_ids), bloom filters), so each
//!   new request's latest stage, and whether another request shares its auditID, are settled as
//!   the store settles them. Every rule's query runs over those records (each decoded once,
//!   [`kaq_query::run_many_on_text`]); their hits replace the held hits of the same auditIDs,
//!   and the groups touched are evaluated from the held hits, for requests at or after the
//!   earliest one changed. The cost is in proportion to the commit and the groups it touches,
//!   not to the store.
//! - **From the store**, as `kaq detect --since T` runs (`T` the earliest `time` committed: each
//!   rule reads as far before `T` as its kind needs and fires only at requests at or after `T`):
//!   the first evaluation (nothing held yet), a commit of more than 100,000 auditIDs or with a
//!   record without one, and a rule whose change reaches further back than it holds (a request
//!   received more than an hour before the newest, or an auditID reused from long ago). What it
//!   reads becomes what the rule holds.
//! - An alert is **sent once**: a computed alert of the same rule and group whose span
//!   `[first, last]` comes within the rule's `suppress` of an alert already sent is the same
//!   burst (grown, or seen again from a later start), not a new one; the one sent keeps its key
//!   (rule, group, first) and its span is extended. So a burst is one alert, as `kaq detect`
//!   makes it, sent when it first fires, with the count and evidence it had then. An alert wholly
//!   older than the alerts remembered is not sent (it cannot be told from one sent).
//! - The **state** (the alerts sent, recent enough to matter, the last segment evaluated and the
//!   newest event time then) is a small JSON file, by default `alerts.state.json` in the store's
//!   directory, replaced atomically after each evaluation. A restart reads it: the commits not
//!   evaluated before the stop (segments after the last one evaluated; from at most an hour
//!   before the newest event evaluated, so that a store compacted meanwhile is not evaluated
//!   again whole) are evaluated first, from the store, and nothing sent before is sent again.
//!   The first start on a store that already holds events takes them as history: they fill
//!   windows and first-seen lookbacks, but do not alert (`kaq detect` reports them).
//!
//! A first-seen rule learns from the data's first event (`learn`) as `kaq detect` over the
//! whole store does; a spike's baseline starts `5 / alpha` buckets before the earliest request
//! evaluated, as with `kaq detect --since` (the older buckets weigh less than
//! `(1 − alpha)^(5/alpha)`, 0.5 %).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::Hit;
use crate::{Alert, Bounds, Data, DataError, Kind, Prepared, RuleSet, source};

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
    /// Their auditIDs (`None`: not known, the rules read the store).
    pending_ids: Option<Vec<String>>,
    /// Each rule's plans without time bounds, run over the new requests' records.
    plans: Vec<Vec<kaq_query::Plan>>,
    /// Each rule's hits held in memory (`None`: none yet, or no longer exact).
    held: Vec<Option<Held>>,
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
    /// Rules run.
    pub rules_run: usize,
    /// Of them, rules evaluated from the hits held in memory (the others read the store).
    pub from_memory: usize,
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
        let plans = prepared.iter().map(|p| p.unbounded(&macros)).collect();
        let held = prepared.iter().map(|_| None).collect();
        let mut live = Live {
            prepared,
            plans,
            held,
            pending_ids: None,
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

    /// Notes a commit of events whose times span `times`, with their auditIDs when known (from
    /// [`FollowCommit::times`](kaq_store::FollowCommit::times) and
    /// [`FollowCommit::ids`](kaq_store::FollowCommit::ids)).
    pub fn committed(&mut self, times: Option<(i64, i64)>, ids: Option<Vec<String>>) {
        if let Some((lo, _)) = times {
            let first = self.pending.is_none();
            self.pending = Some(self.pending.map_or(lo, |p| p.min(lo)));
            self.pending_ids = match (first, self.pending_ids.take(), ids) {
                (true, _, ids) => ids,
                (false, Some(mut had), Some(more)) if had.len() + more.len() <= IDS_UP_TO => {
                    had.extend(more);
                    had.sort_unstable();
                    had.dedup();
                    Some(had)
                }
                _ => None,
            };
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
        let store = kaq_store::Store::open(&self.dir).map_err(DataError::from)?;
        let through = store.manifest().segments.iter().map(|s| s.id).max().unwrap_or(0);
        let (data_start, data_end) = match store.manifest().time_range() {
            (Some(a), Some(b)) => (a, b),
            _ => (lo, lo),
        };
        let mut computed = Vec::new();
        // Rules that read the store: all of them when the new requests are not known by auditID
        // (a large commit, or events without one), else those with nothing held.
        let mut slow: Vec<usize> = Vec::new();
        let mut from_memory = 0;
        match self.pending_ids.as_ref().filter(|ids| !ids.iter().any(String::is_empty)) {
            Some(ids) => {
                // Every record of every new request's auditID, from the whole store: the latest
                // stage of each, and whether another request shares its auditID, are settled
                // among them as the store would settle them.
                let text = store.records_with_ids(ids).map_err(DataError::from)?.join("\n");
                let changed: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
                // Every step of every rule that holds hits, over the records, each decoded once.
                let runs: Vec<(usize, usize)> = (0..self.prepared.len())
                    .filter(|&i| self.held[i].is_some())
                    .flat_map(|i| (0..self.plans[i].len()).map(move |step| (i, step)))
                    .collect();
                let plans: Vec<kaq_query::Plan> = runs.iter().map(|&(i, step)| self.plans[i][step].clone()).collect();
                let mut rows_of: HashMap<(usize, usize), source::Rows> = runs
                    .into_iter()
                    .zip(kaq_query::run_many_on_text(&plans, &text))
                    .map(|(k, rows)| (k, source::rows_of(rows)))
                    .collect();
                for (i, p) in self.prepared.iter().enumerate() {
                    let Some(held) = self.held[i].as_mut() else {
                        slow.push(i);
                        continue;
                    };
                    let mut new = Vec::new();
                    for step in 0..self.plans[i].len() {
                        let rows = rows_of.remove(&(i, step)).unwrap_or_default();
                        new.extend(
                            rows.into_iter()
                                .filter_map(|(time, id, cols)| Some(crate::to_hit(&p.rule, time?, id, cols, step))),
                        );
                    }
                    match held.update(p, &changed, new, lo, data_start, self.max_evidence) {
                        Some(alerts) => {
                            computed.extend(alerts);
                            from_memory += 1;
                        }
                        None => {
                            self.held[i] = None;
                            slow.push(i);
                        }
                    }
                }
            }
            None => slow = (0..self.prepared.len()).collect(),
        }
        let mut rules_run = from_memory;
        if !slow.is_empty() {
            // The rules run on a few threads, each with its own view of the store (a query costs
            // mostly its fixed overhead, so more rules at once means an alert sooner).
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
            let per = slow.len().div_ceil(threads).max(1);
            let (dir, macros, max_evidence) = (&self.dir, &self.macros, self.max_evidence);
            let mut rules: Vec<&mut Prepared> =
                self.prepared.iter_mut().enumerate().filter(|(i, _)| slow.contains(i)).map(|(_, p)| p).collect();
            type Ran = Result<(Vec<Alert>, Vec<Vec<Hit>>), LiveError>;
            let done: Vec<Ran> = std::thread::scope(|scope| {
                let running: Vec<_> = rules
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
            let mut all_hits = Vec::new();
            for r in done {
                let (alerts, hits) = r?;
                computed.extend(alerts);
                all_hits.extend(hits);
            }
            rules_run += slow.len();
            for (i, hits) in slow.iter().zip(all_hits) {
                self.held[*i] = Some(Held::new(&self.prepared[*i], hits, lo, data_end));
            }
        }
        for (held, p) in self.held.iter_mut().zip(&self.prepared) {
            if let Some(h) = held {
                h.let_go(p, data_end);
            }
        }
        computed.sort_by(|a, b| a.first.cmp(&b.first).then_with(|| a.rule.cmp(&b.rule)));
        let suppress: HashMap<&str, i64> =
            self.prepared.iter().map(|p| (p.rule.id.as_str(), p.rule.suppress)).collect();
        let mut new = Vec::new();
        let before = self.state.sent.clone();
        // An alert wholly older than the alerts remembered (a request long ago that becomes
        // evidence only now: its auditID reused by a new one) cannot be told from one sent: not
        // sent.
        let keep_from = data_end.saturating_sub(self.horizon);
        computed.retain(|a| a.last >= keep_from);
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
        self.pending_ids = None;
        self.last_stats = EvalStats { rules_run, from_memory, elapsed: started.elapsed() };
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

/// Runs `rules` over `data` for requests at or after `lo` (with the history each needs): the
/// alerts, and each rule's hits (what it holds from then on).
fn run_rules(
    rules: &mut [&mut Prepared],
    data: &Data,
    macros: &HashMap<String, String>,
    lo: i64,
    data_start: i64,
    max_evidence: usize,
) -> Result<(Vec<Alert>, Vec<Vec<Hit>>), LiveError> {
    let bounds = Bounds { since: Some(lo), until: None };
    let mut computed = Vec::new();
    let mut held = Vec::new();
    for p in rules.iter_mut() {
        p.compile_for(macros, &bounds).expect("time conditions compile");
        let mut hits: Vec<Hit> = Vec::new();
        for (step, (_, plan)) in p.queries.iter().enumerate() {
            let rows = data.rows(plan)?;
            hits.extend(rows.into_iter().filter_map(|(time, id, cols)| {
                let time = time?;
                Some(crate::to_hit(&p.rule, time, id, cols, step))
            }));
        }
        if hits.iter().any(|h| h.time >= lo) {
            computed.extend(crate::evaluate_with(&p.rule, hits.clone(), Some(data_start), &bounds, max_evidence, true));
        }
        held.push(hits);
    }
    Ok((computed, held))
}

/// How late (behind the newest event evaluated) a request may arrive and still be evaluated from
/// the hits held in memory: past it, its rules read the store again. Long-running requests (a
/// watch of up to an hour) are logged with the time they were received.
const LATE: i64 = 3_600_000_000;

/// The most new auditIDs evaluated from memory at once (more: the rules read the store).
const IDS_UP_TO: usize = 100_000;

/// The hits a rule's windows need, held between evaluations: every hit at or after `floor`, by
/// group. A first-seen rule holds `LATE` of them and, per group, the time of the latest one let
/// go (all its lookback needs); the other kinds hold their window, lookback or baseline more.
#[derive(Debug, Default)]
struct Held {
    groups: HashMap<Vec<String>, Group>,
    floor: i64,
    /// Changes at or after this time are evaluated exactly from what is held.
    valid_from: i64,
}

#[derive(Debug, Default)]
struct Group {
    /// Sorted by time, step, auditID.
    hits: Vec<Hit>,
    /// First seen: the time of the latest hit let go.
    older: Option<i64>,
}

fn hit_order(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    a.time.cmp(&b.time).then_with(|| a.step.cmp(&b.step)).then_with(|| a.id.cmp(&b.id))
}

impl Held {
    /// What a run over the store from `lo` (with the rule's history before it) found.
    fn new(p: &Prepared, hits: Vec<Hit>, lo: i64, newest: i64) -> Held {
        let mut held = Held { groups: HashMap::new(), floor: lo.saturating_sub(p.history), valid_from: lo };
        if p.rule.kind == Kind::Single {
            // Each request alone: nothing to hold, nothing too late.
            held.valid_from = i64::MIN;
            return held;
        }
        for h in hits {
            held.groups.entry(h.group.clone()).or_default().hits.push(h);
        }
        for g in held.groups.values_mut() {
            g.hits.sort_by(hit_order);
        }
        held.let_go(p, newest);
        held
    }

    /// Lets go of the hits no evaluation of requests at most `LATE` behind `newest` needs.
    fn let_go(&mut self, p: &Prepared, newest: i64) {
        if p.rule.kind == Kind::Single {
            return;
        }
        let first_seen = match &p.rule.kind {
            Kind::FirstSeen { lookback, .. } => Some(*lookback),
            _ => None,
        };
        let keep = if first_seen.is_some() { LATE } else { LATE.saturating_add(p.history) };
        let floor = newest.saturating_sub(keep);
        if floor <= self.floor {
            return;
        }
        self.groups.retain(|_, g| {
            let n = g.hits.partition_point(|h| h.time < floor);
            if n > 0 {
                g.older = g.older.max(Some(g.hits[n - 1].time));
                g.hits.drain(..n);
            }
            !g.hits.is_empty()
                || matches!((first_seen, g.older), (Some(lookback), Some(o)) if o >= floor.saturating_sub(lookback))
        });
        self.floor = floor;
        let need = if first_seen.is_some() { 0 } else { p.history };
        self.valid_from = self.valid_from.max(floor.saturating_add(need));
    }

    /// Replaces the hits of the requests whose auditIDs are `changed` with `new` (their hits
    /// now) and evaluates the groups touched, for requests at or after `since` (the earliest new
    /// event, or an earlier hit replaced). `None` when that is earlier than what is held allows:
    /// the rule must read the store.
    fn update(
        &mut self,
        p: &Prepared,
        changed: &std::collections::HashSet<&str>,
        new: Vec<Hit>,
        lo: i64,
        data_start: i64,
        max_evidence: usize,
    ) -> Option<Vec<Alert>> {
        let mut since = new.iter().map(|h| h.time).fold(lo, i64::min);
        if p.rule.kind == Kind::Single {
            let bounds = Bounds { since: Some(since), until: None };
            return Some(crate::evaluate_with(&p.rule, new, Some(data_start), &bounds, max_evidence, true));
        }
        let mut touched: std::collections::HashSet<Vec<String>> = new.iter().map(|h| h.group.clone()).collect();
        for (key, g) in &self.groups {
            for h in g.hits.iter().filter(|h| changed.contains(h.id.as_str())) {
                since = since.min(h.time);
                touched.insert(key.clone());
            }
        }
        if since < self.valid_from {
            return None;
        }
        for key in &touched {
            if let Some(g) = self.groups.get_mut(key) {
                g.hits.retain(|h| !changed.contains(h.id.as_str()));
            }
        }
        for h in new {
            self.groups.entry(h.group.clone()).or_default().hits.push(h);
        }
        let first_seen = matches!(p.rule.kind, Kind::FirstSeen { .. });
        let from = since.saturating_sub(p.history);
        let mut hits = Vec::new();
        for key in &touched {
            let Some(g) = self.groups.get_mut(key) else { continue };
            g.hits.sort_by(hit_order);
            if first_seen {
                if let Some(t) = g.older {
                    // Stands for the hits let go: only its time counts (it is before every
                    // request evaluated, so never in an alert's evidence).
                    hits.push(Hit { time: t, id: String::new(), group: key.clone(), value: None, step: 0 });
                }
                hits.extend(g.hits.iter().cloned());
            } else {
                let start = g.hits.partition_point(|h| h.time < from);
                hits.extend(g.hits[start..].iter().cloned());
            }
            if g.hits.is_empty() && g.older.is_none() {
                self.groups.remove(key);
            }
        }
        let bounds = Bounds { since: Some(since), until: None };
        Some(crate::evaluate_with(&p.rule, hits, Some(data_start), &bounds, max_evidence, true))
    }
}

/// A commit as the thread running the rules is told of it: its time range and auditIDs.
type Commit = (Option<(i64, i64)>, Option<Vec<String>>);

/// A [`Live`] on a thread of its own (`kaq serve`): commits are noted without waiting, and the
/// rules run beside ingest, as often as they can keep up (commits that arrive while the rules
/// run are evaluated together next).
pub struct Background {
    tx: Option<std::sync::mpsc::Sender<Commit>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts `live`; `emit` gets each evaluation's new alerts, `warn` its errors.
    pub fn spawn(
        mut live: Live,
        mut emit: impl FnMut(&[Alert]) + Send + 'static,
        warn: impl Fn(&LiveError) + Send + 'static,
    ) -> Background {
        let (tx, rx) = std::sync::mpsc::channel::<Commit>();
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
                while let Ok((times, ids)) = rx.recv() {
                    live.committed(times, ids);
                    while let Ok((times, ids)) = rx.try_recv() {
                        live.committed(times, ids);
                    }
                    run(&mut live);
                }
            })
            .expect("a thread can be started");
        Background { tx: Some(tx), thread: Some(thread) }
    }

    /// What notes a commit (see [`Live::committed`]), for the thread that commits. The thread
    /// stops once every notifier and the `Background` are dropped or finished.
    pub fn notifier(&self) -> impl Fn(&kaq_store::FollowCommit) + Send + 'static {
        let tx = self.tx.clone();
        move |c| {
            if c.times.is_some()
                && let Some(tx) = &tx
            {
                let _ = tx.send((c.times, c.ids.clone()));
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
