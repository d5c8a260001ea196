//! Detections over Kubernetes audit events (PRODUCT.md §6, docs/detect.md).
//!
//! - [`rules`]: rule files (TOML) read in layers into a [`RuleSet`]: the built-in pack
//!   ([`rules::BUILTIN_PACK`], compiled in), then the user's files, which add rules, override a
//!   built-in rule's fields, add exceptions or disable rules.
//! - [`prepare`]: each enabled rule's query (or each step of a sequence) compiled once, with its
//!   lists expanded, its exceptions subtracted and `| table time, id, …` appended; errors name the
//!   file, the rule and the spot in the query.
//! - [`run`]: each query runs once through the query engine ([`source`]: a store or log files;
//!   latest stage per request, request identity), then [`engine`] finds the windows in memory on
//!   the matched rows and makes one [`Alert`] per burst and group.

pub mod deliver;
pub mod engine;
pub mod live;
pub mod rules;
pub mod source;
pub mod sql;

use std::collections::HashMap;
use std::fmt::Write as _;

pub use rules::{Kind, Loader, Metric, Rule, RuleError, RuleSet, Severity, Spike};
pub use source::{Data, DataError};

use engine::Hit;

/// A rule ready to run: its queries compiled.
pub struct Prepared {
    pub rule: Rule,
    /// The search of each step (one for every kind but a sequence): lists expanded, exceptions
    /// subtracted.
    bases: Vec<String>,
    /// The query text run for each step (with time bounds and `| table …`), and its plan.
    pub queries: Vec<(String, kaq_query::Plan)>,
    /// The columns after `time, id`: `group_by`, then the `first_seen` fields, then the `dc` field.
    columns: Vec<String>,
    /// How much earlier than `--since` the rule reads, to fill its windows.
    history: i64,
}

/// What a run is limited to.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    /// Alerts fire at requests at or after this time (µs)…
    pub since: Option<i64>,
    /// …and before this one.
    pub until: Option<i64>,
}

/// One alert: a rule fired for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub severity: Severity,
    pub kind: &'static str,
    /// The group: `group_by` (and `first_seen`) fields with their values.
    pub group: Vec<(String, String)>,
    /// Requests in the evidence.
    pub count: usize,
    /// The rule's window (threshold, sequence), bucket (spike) or lookback (first seen), µs.
    pub window: Option<i64>,
    pub first: i64,
    pub last: i64,
    /// The evidence's auditIDs in time order (at most the `max_evidence` first).
    pub ids: Vec<String>,
    pub description: String,
}

fn render_diag(text: &str, d: &kaq_syntax::Diagnostic) -> String {
    d.render(text).trim_end().to_string()
}

/// A rule error for `rule` at its query.
fn query_error(rule: &Rule, what: &str, message: String) -> RuleError {
    RuleError { origin: rule.query_origin.clone(), rule: Some(rule.id.clone()), message: format!("{what}:\n{message}") }
}

/// Compiles every enabled rule of `set` (or those named in `only`).
pub fn prepare(set: &RuleSet, only: &[String]) -> Result<Vec<Prepared>, RuleError> {
    let macros = set.macros().map_err(|m| RuleError {
        origin: rules::Origin { file: "[queries]".into(), line: 0 },
        rule: None,
        message: m,
    })?;
    for id in only {
        if set.rule(id).is_none() {
            let known: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
            return Err(RuleError {
                origin: rules::Origin { file: "--rule".into(), line: 0 },
                rule: Some(id.clone()),
                message: format!(
                    "no rule has this id{}",
                    kaq_syntax::did_you_mean(id, &known).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
                ),
            });
        }
    }
    let mut out = Vec::new();
    for rule in &set.rules {
        if only.is_empty() && !rule.enabled || !only.is_empty() && !only.contains(&rule.id) {
            continue;
        }
        out.push(prepare_rule(set, rule, &macros)?);
    }
    Ok(out)
}

fn prepare_rule(set: &RuleSet, rule: &Rule, macros: &HashMap<String, String>) -> Result<Prepared, RuleError> {
    let mut columns: Vec<String> = rule.group_by.clone();
    let history = match &rule.kind {
        Kind::Single => 0,
        Kind::Threshold { window, metric, .. } => {
            if let Metric::Dc(f) = metric {
                columns.push(f.clone());
            }
            *window
        }
        Kind::FirstSeen { fields, lookback, .. } => {
            columns.extend(fields.iter().cloned());
            *lookback
        }
        Kind::Spike(s) => s.bucket.saturating_mul((5.0 / s.alpha).ceil() as i64),
        Kind::Sequence { window, .. } => *window,
    };
    let steps: Vec<String> = match &rule.kind {
        Kind::Sequence { steps, .. } => steps.clone(),
        _ => vec![rule.query.clone()],
    };
    // The columns alone first, so that a wrong field is named as such.
    if !columns.is_empty() {
        let text = format!("* | table {}", columns.join(", "));
        if let Err(d) = source::compile(&text, macros) {
            return Err(query_error(rule, "group_by / first_seen / threshold field", render_diag(&text, &d[0])));
        }
    }
    let exceptions = set.exception_query(rule).map_err(|m| query_error(rule, "exceptions", m))?;
    if let Some(e) = &exceptions
        && let Err(d) = source::compile(e, macros)
    {
        return Err(query_error(rule, "exceptions", render_diag(e, &d[0])));
    }
    let mut queries = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let what = if steps.len() > 1 { format!("sequence step {}", i + 1) } else { "query".to_string() };
        let expanded = set.expand_lists(step).map_err(|m| query_error(rule, &what, m))?;
        if let Err(d) = source::compile(&expanded, macros) {
            let note = if expanded != *step { format!("\n(lists expanded from: {step})") } else { String::new() };
            return Err(query_error(rule, &what, format!("{}{note}", render_diag(&expanded, &d[0]))));
        }
        if !source::is_search(&expanded) {
            return Err(query_error(
                rule,
                &what,
                "a rule's query is a search, without `|` stages (kaq adds what the windows need)".into(),
            ));
        }
        let mut text = format!("({expanded})");
        if let Some(e) = &exceptions {
            text.push_str(&format!(" -({e})"));
        }
        queries.push(text);
    }
    let mut p = Prepared { rule: rule.clone(), bases: queries, queries: Vec::new(), columns, history };
    p.compile_for(macros, &Bounds::default())?;
    Ok(p)
}

impl Prepared {
    /// The full text of a step's search for `bounds` (time conditions, `| table …`).
    fn full_text(&self, base: &str, bounds: &Bounds) -> String {
        let mut text = base.to_string();
        if let Some(lo) = bounds.since {
            let _ = write!(text, " time>={}", source::time_literal(lo.saturating_sub(self.history)));
        }
        if let Some(hi) = bounds.until {
            let _ = write!(text, " time<{}", source::time_literal(hi));
        }
        let mut cols = vec!["time".to_string(), "id".to_string()];
        cols.extend(self.columns.iter().cloned());
        let _ = write!(text, " | table {}", cols.join(", "));
        text
    }

    fn compile_for(&mut self, macros: &HashMap<String, String>, bounds: &Bounds) -> Result<(), RuleError> {
        let mut queries = Vec::new();
        for base in &self.bases {
            let text = self.full_text(base, bounds);
            let plan = source::compile(&text, macros)
                .map_err(|d| query_error(&self.rule, "query", render_diag(&text, &d[0])))?;
            queries.push((text, plan));
        }
        self.queries = queries;
        Ok(())
    }

    /// Plans of each step without time bounds (`| table time, id, …`), for a live run over the
    /// records of the new requests alone.
    pub(crate) fn unbounded(&self, macros: &HashMap<String, String>) -> Vec<kaq_query::Plan> {
        self.bases
            .iter()
            .map(|b| {
                let text = self.full_text(b, &Bounds::default());
                source::compile(&text, macros).expect("compiled when the rule was prepared")
            })
            .collect()
    }

    /// How far before the first new request this rule reads: its window, lookback or spike
    /// baseline.
    pub fn history(&self) -> i64 {
        self.history
    }

    /// The search each step runs: lists expanded, exceptions subtracted.
    pub fn searches(&self) -> &[String] {
        &self.bases
    }
}

/// Counts of a run, for messages.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Per rule: matched requests (summed over steps) and the time its queries and windows took.
    pub matched: Vec<(String, usize, std::time::Duration)>,
}

/// Runs `prepared` over `data`; alerts sorted by first time, then rule.
pub fn run(
    prepared: &mut [Prepared],
    set: &RuleSet,
    data: &Data,
    bounds: &Bounds,
    max_evidence: usize,
) -> Result<(Vec<Alert>, RunStats), DataError> {
    let macros = set.macros().unwrap_or_default();
    let mut alerts = Vec::new();
    let mut stats = RunStats::default();
    let data_start = bounds.since.or_else(|| data.time_range().map(|r| r.0));
    for p in prepared.iter_mut() {
        if bounds.since.is_some() || bounds.until.is_some() {
            // Compiled before; only the time conditions change, which always compile.
            p.compile_for(&macros, bounds).expect("time conditions compile");
        }
        let started = std::time::Instant::now();
        let mut hits = Vec::new();
        for (step, (_, plan)) in p.queries.iter().enumerate() {
            let rows = data.rows(plan)?;
            hits.extend(rows.into_iter().filter_map(|(time, id, cols)| {
                let time = time?;
                Some(to_hit(&p.rule, time, id, cols, step))
            }));
        }
        let n = hits.len();
        alerts.extend(evaluate(&p.rule, hits, data_start, bounds, max_evidence));
        stats.matched.push((p.rule.id.clone(), n, started.elapsed()));
    }
    alerts.sort_by(|a, b| a.first.cmp(&b.first).then_with(|| a.rule.cmp(&b.rule)));
    Ok((alerts, stats))
}

fn to_hit(rule: &Rule, time: i64, id: String, cols: Vec<Option<String>>, step: usize) -> Hit {
    let n_group = match &rule.kind {
        Kind::FirstSeen { fields, .. } => rule.group_by.len() + fields.len(),
        _ => rule.group_by.len(),
    };
    let mut cols = cols.into_iter();
    let group: Vec<String> = cols.by_ref().take(n_group).map(Option::unwrap_or_default).collect();
    let value = match &rule.kind {
        Kind::Threshold { metric: Metric::Dc(_), .. } => cols.next().flatten(),
        _ => None,
    };
    Hit { time, id, group, value, step }
}

/// The alerts of one rule over its hits (any order). `data_start`: when the data begins (for a
/// first-seen rule's learning time); `bounds.since`: triggers before it are dropped.
pub fn evaluate(
    rule: &Rule,
    hits: Vec<Hit>,
    data_start: Option<i64>,
    bounds: &Bounds,
    max_evidence: usize,
) -> Vec<Alert> {
    evaluate_with(rule, hits, data_start, bounds, max_evidence, false)
}

/// [`evaluate`]; `live`: `bounds.since` only says where new events begin (a live run over
/// recent history), so a first-seen rule still learns from the data's first event, as a run
/// over the whole data does.
pub(crate) fn evaluate_with(
    rule: &Rule,
    mut hits: Vec<Hit>,
    data_start: Option<i64>,
    bounds: &Bounds,
    max_evidence: usize,
    live: bool,
) -> Vec<Alert> {
    hits.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.step.cmp(&b.step)).then_with(|| a.id.cmp(&b.id)));
    let group_names: Vec<String> = match &rule.kind {
        Kind::FirstSeen { fields, .. } => rule.group_by.iter().chain(fields).cloned().collect(),
        _ => rule.group_by.clone(),
    };
    let start = data_start.or_else(|| hits.first().map(|h| h.time)).unwrap_or(0);
    let mut out = Vec::new();
    for (group, positions) in engine::groups(&hits) {
        let times: Vec<i64> = positions.iter().map(|&i| hits[i].time).collect();
        let mut triggers = match &rule.kind {
            Kind::Single => engine::single(&times),
            Kind::Threshold { window, metric, n } => {
                let values: Vec<Option<&str>> = positions.iter().map(|&i| hits[i].value.as_deref()).collect();
                engine::threshold(&times, &values, *window, metric, *n)
            }
            Kind::FirstSeen { lookback, learn, window, .. } => {
                let learn_from = match bounds.since {
                    Some(s) if live => s.max(start.saturating_add(*learn)),
                    Some(s) => s,
                    None => start.saturating_add(*learn),
                };
                engine::first_seen(&times, *lookback, learn_from, *window)
            }
            Kind::Spike(s) => engine::spike(&times, s),
            Kind::Sequence { steps, window } => {
                let st: Vec<usize> = positions.iter().map(|&i| hits[i].step).collect();
                engine::sequence(&times, &st, steps.len(), *window)
            }
        };
        if let Some(lo) = bounds.since {
            triggers.retain(|t| times[t.at] >= lo);
        }
        for c in engine::cluster(&times, &triggers, rule.suppress) {
            let first = times[c.positions[0]];
            let last = times[*c.positions.last().expect("a cluster has evidence")];
            out.push(Alert {
                rule: rule.id.clone(),
                severity: rule.severity,
                kind: rule.kind.name(),
                group: group_names.iter().cloned().zip(group.iter().cloned()).collect(),
                count: c.positions.len(),
                window: match &rule.kind {
                    Kind::Single => None,
                    Kind::Threshold { window, .. } | Kind::Sequence { window, .. } => Some(*window),
                    Kind::FirstSeen { lookback, .. } => Some(*lookback),
                    Kind::Spike(s) => Some(s.bucket),
                },
                first,
                last,
                ids: c.positions.iter().take(max_evidence).map(|&p| hits[positions[p]].id.clone()).collect(),
                description: rule.description.clone(),
            });
        }
    }
    out
}

/// A duration as a rule file writes it (`5m`, `90s`, `7d`).
pub fn format_duration(us: i64) -> String {
    for (unit, n) in [
        ("w", 604_800_000_000i64),
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if us != 0 && us % n == 0 {
            return format!("{}{unit}", us / n);
        }
    }
    format!("{us}us")
}

impl Alert {
    /// The alert as one line of JSON, its keys in this order: rule, severity, kind, group (its
    /// fields in `group_by` order), count, window, first, last, auditIDs, description.
    pub fn to_json(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let group: Vec<String> = self.group.iter().map(|(k, v)| format!("{}:{}", q(k), q(v))).collect();
        let ids: Vec<String> = self.ids.iter().map(|i| q(i)).collect();
        format!(
            "{{\"rule\":{},\"severity\":{},\"kind\":{},\"group\":{{{}}},\"count\":{},\"window\":{},\"first\":{},\"last\":{},\"auditIDs\":[{}],\"description\":{}}}",
            q(&self.rule),
            q(self.severity.as_str()),
            q(self.kind),
            group.join(","),
            self.count,
            self.window.map_or_else(|| "null".to_string(), |w| q(&format_duration(w))),
            q(&source::time_literal(self.first)),
            q(&source::time_literal(self.last)),
            ids.join(","),
            q(&self.description),
        )
    }
}
