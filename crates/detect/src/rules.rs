//! Rule files: TOML with `[lists]`, `[queries]`, `[[rule]]`, `[[exception]]` and `disable`, read
//! into one [`RuleSet`] layer after layer (the built-in pack first, then the user's files), so a
//! user's file adds rules, overrides a built-in rule's fields, adds exceptions to it or disables
//! it without copying the pack. docs/detect.md is the reference.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

/// How bad an alert is, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a threshold counts in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// Requests.
    Count,
    /// Distinct values of a field (absent values not counted).
    Dc(String),
}

/// The method of a `spike` rule: per group, requests are counted in buckets of `bucket`
/// (aligned to the epoch); the baseline is an exponentially weighted moving average of the
/// group's earlier buckets (empty ones included), starting at 0 at the group's first bucket:
/// `base ← alpha·count + (1 − alpha)·base` after each bucket. A bucket fires when its count is at
/// least `min_count` and at least `factor` × the baseline before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spike {
    pub bucket: i64,
    pub factor: f64,
    pub min_count: u64,
    pub alpha: f64,
}

impl Default for Spike {
    fn default() -> Self {
        Spike { bucket: 60_000_000, factor: 10.0, min_count: 100, alpha: 0.1 }
    }
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Every matching request.
    Single,
    /// `metric >= n` among a group's matching requests of a sliding window: at each request, the
    /// window is the requests of its group with `time` in `(t − window, t]`.
    Threshold { window: i64, metric: Metric, n: u64 },
    /// A combination of `group_by` and `fields` not seen in the `lookback` before: the first
    /// request of a combination, or the first after `lookback` without one. The first `learn` of
    /// the data only learns. The combination's requests within `window` after it are its evidence.
    FirstSeen { fields: Vec<String>, lookback: i64, learn: i64, window: i64 },
    /// A group's rate far above its own recent baseline (see [`Spike`]).
    Spike(Spike),
    /// Step 1, then step 2 (…), by the same group, each strictly later than the one before, the
    /// last within `window` of the first.
    Sequence { steps: Vec<String>, window: i64 },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Threshold { .. } => "threshold",
            Kind::FirstSeen { .. } => "first_seen",
            Kind::Spike(_) => "spike",
            Kind::Sequence { .. } => "sequence",
        }
    }
}

/// Where something was written: a file and line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One allow-list entry: the requests whose fields all match (each field: any of its values;
/// `*`/`?` globs, `$list` names) are left out of the rule.
pub type Exception = Vec<(String, Vec<String>)>;

/// A rule, ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub severity: Severity,
    /// What it catches.
    pub description: String,
    pub false_positives: String,
    /// The Falco, Sigma or Elastic rules it corresponds to.
    pub references: Vec<String>,
    /// The search (empty for a sequence, whose steps are searches).
    pub query: String,
    pub group_by: Vec<String>,
    pub kind: Kind,
    pub exceptions: Vec<Exception>,
    /// Firings of one group closer than this (after the last evidence of the alert before) are one
    /// alert.
    pub suppress: i64,
    pub enabled: bool,
    /// Where the rule was defined, and where it was last changed.
    pub defined: Origin,
    pub changed: Vec<Origin>,
    /// The spans of the query text (or the steps) in their file, for errors.
    pub(crate) query_origin: Origin,
}

/// An error in a rule file: the file and line, the rule, what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: {}{message}", rule.as_ref().map(|r| format!("rule `{r}`: ")).unwrap_or_default())]
pub struct RuleError {
    pub origin: Origin,
    pub rule: Option<String>,
    pub message: String,
}

/// Rules, lists and named queries: the built-in pack and the user's layers over it.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub lists: BTreeMap<String, Vec<String>>,
    pub queries: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
}

/// The built-in pack's file, compiled in.
pub const BUILTIN_PACK: &str = include_str!("../rules/builtin.toml");
/// Its name in messages and `--list`.
pub const BUILTIN_NAME: &str = "<built-in pack>";

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSpike {
    bucket: Option<String>,
    factor: Option<f64>,
    min_count: Option<u64>,
    alpha: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    severity: Option<String>,
    description: Option<String>,
    false_positives: Option<String>,
    references: Option<Vec<String>>,
    query: Option<toml::Spanned<String>>,
    group_by: Option<Vec<String>>,
    window: Option<String>,
    threshold: Option<String>,
    first_seen: Option<Vec<String>>,
    lookback: Option<String>,
    learn: Option<String>,
    spike: Option<toml::Spanned<RawSpikeOrBool>>,
    sequence: Option<toml::Spanned<Vec<String>>>,
    exceptions: Option<Vec<BTreeMap<String, OneOrMany>>>,
    suppress: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSpikeOrBool {
    On(bool),
    Table(RawSpike),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    queries: BTreeMap<String, String>,
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
    #[serde(default)]
    exception: Vec<toml::Spanned<BTreeMap<String, OneOrMany>>>,
}

/// A rule as the layers leave it, before it is checked.
#[derive(Default)]
struct Draft {
    id: String,
    severity: Option<(String, Origin)>,
    description: Option<String>,
    false_positives: Option<String>,
    references: Vec<String>,
    query: Option<(String, Origin)>,
    group_by: Vec<String>,
    window: Option<(String, Origin)>,
    threshold: Option<(String, Origin)>,
    first_seen: Option<Vec<String>>,
    lookback: Option<(String, Origin)>,
    learn: Option<(String, Origin)>,
    spike: Option<(Option<RawSpike>, Origin)>,
    sequence: Option<(Vec<String>, Origin)>,
    exceptions: Vec<Exception>,
    suppress: Option<(String, Origin)>,
    enabled: bool,
    defined: Origin,
    changed: Vec<Origin>,
}

/// Builds a [`RuleSet`] from layers.
#[derive(Default)]
pub struct Loader {
    lists: BTreeMap<String, Vec<String>>,
    queries: BTreeMap<String, String>,
    drafts: Vec<Draft>,
    by_id: HashMap<String, usize>,
}

fn line_of(text: &str, at: usize) -> usize {
    1 + text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count()
}

/// Whether `name` is a good rule id, list or query name: letters, digits, `_`, `-`.
fn good_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Loader {
    /// A loader holding the built-in pack.
    pub fn with_builtin() -> Loader {
        let mut l = Loader::default();
        l.add(BUILTIN_NAME, BUILTIN_PACK).expect("the built-in pack reads (tested)");
        l
    }

    /// Adds the layer `text`, read from `file` (named in errors).
    pub fn add(&mut self, file: &str, text: &str) -> Result<(), RuleError> {
        let at = |span: std::ops::Range<usize>| Origin { file: file.to_string(), line: line_of(text, span.start) };
        let raw: RawFile = toml::from_str(text).map_err(|e| RuleError {
            origin: at(e.span().unwrap_or(0..0)),
            rule: None,
            message: e.message().trim_end().to_string(),
        })?;
        for (name, values) in raw.lists {
            if !good_name(&name) {
                return Err(RuleError {
                    origin: at(0..0),
                    rule: None,
                    message: format!("list `{name}`: a name is letters, digits, `_` and `-`"),
                });
            }
            self.lists.insert(name, values);
        }
        for (name, q) in raw.queries {
            if !good_name(&name) {
                return Err(RuleError {
                    origin: at(0..0),
                    rule: None,
                    message: format!("query `{name}`: a name is letters, digits, `_` and `-`"),
                });
            }
            self.queries.insert(name, q);
        }
        for spanned in raw.rule {
            let origin = at(spanned.span());
            let r = spanned.into_inner();
            if !good_name(&r.id) {
                return Err(RuleError {
                    origin,
                    rule: Some(r.id.clone()),
                    message: "an id is letters, digits, `_` and `-`".into(),
                });
            }
            let idx = match self.by_id.get(&r.id) {
                Some(&i) => {
                    self.drafts[i].changed.push(origin.clone());
                    i
                }
                None => {
                    self.by_id.insert(r.id.clone(), self.drafts.len());
                    self.drafts.push(Draft {
                        id: r.id.clone(),
                        enabled: true,
                        defined: origin.clone(),
                        ..Draft::default()
                    });
                    self.drafts.len() - 1
                }
            };
            let d = &mut self.drafts[idx];
            let o = || origin.clone();
            if let Some(v) = r.severity {
                d.severity = Some((v, o()));
            }
            if let Some(v) = r.description {
                d.description = Some(v);
            }
            if let Some(v) = r.false_positives {
                d.false_positives = Some(v);
            }
            if let Some(v) = r.references {
                d.references = v;
            }
            if let Some(v) = r.query {
                let qo = at(v.span());
                d.query = Some((v.into_inner(), qo));
                d.sequence = None;
            }
            if let Some(v) = r.sequence {
                let qo = at(v.span());
                d.sequence = Some((v.into_inner(), qo));
                d.query = None;
            }
            if let Some(v) = r.group_by {
                d.group_by = v;
            }
            if let Some(v) = r.window {
                d.window = Some((v, o()));
            }
            // A rule's kind is set by one key; setting one in a layer clears the others.
            if let Some(v) = r.threshold {
                d.threshold = Some((v, o()));
                d.first_seen = None;
                d.spike = None;
            }
            if let Some(v) = r.first_seen {
                d.first_seen = Some(v);
                d.threshold = None;
                d.spike = None;
            }
            if let Some(v) = r.spike {
                let so = at(v.span());
                match v.into_inner() {
                    RawSpikeOrBool::On(true) => d.spike = Some((None, so)),
                    RawSpikeOrBool::On(false) => d.spike = None,
                    RawSpikeOrBool::Table(t) => d.spike = Some((Some(t), so)),
                }
                if d.spike.is_some() {
                    d.threshold = None;
                    d.first_seen = None;
                }
            }
            if let Some(v) = r.lookback {
                d.lookback = Some((v, o()));
            }
            if let Some(v) = r.learn {
                d.learn = Some((v, o()));
            }
            if let Some(v) = r.exceptions {
                d.exceptions = v.into_iter().map(exception).collect();
            }
            if let Some(v) = r.suppress {
                d.suppress = Some((v, o()));
            }
            if let Some(v) = r.enabled {
                d.enabled = v;
            }
        }
        for spanned in raw.exception {
            let origin = at(spanned.span());
            let mut map = spanned.into_inner();
            let Some(rule) = map.remove("rule") else {
                return Err(RuleError { origin, rule: None, message: "an [[exception]] names its `rule`".into() });
            };
            let rules = rule.into_vec();
            let entry = exception(map);
            if entry.is_empty() {
                return Err(RuleError {
                    origin,
                    rule: rules.first().cloned(),
                    message: "an [[exception]] names at least one field to allow (user = [\"alice\"])".into(),
                });
            }
            for id in rules {
                let Some(&i) = self.by_id.get(&id) else {
                    return Err(RuleError { origin, rule: Some(id), message: "no rule has this id".into() });
                };
                self.drafts[i].exceptions.push(entry.clone());
                self.drafts[i].changed.push(origin.clone());
            }
        }
        for id in raw.disable {
            let Some(&i) = self.by_id.get(&id) else {
                return Err(RuleError {
                    origin: at(0..0),
                    rule: Some(id),
                    message: "`disable`: no rule has this id".into(),
                });
            };
            self.drafts[i].enabled = false;
            self.drafts[i].changed.push(at(0..0));
        }
        Ok(())
    }

    /// Checks every rule and gives the set.
    pub fn finish(self) -> Result<RuleSet, RuleError> {
        let mut rules = Vec::new();
        for d in self.drafts {
            rules.push(check(d)?);
        }
        Ok(RuleSet { lists: self.lists, queries: self.queries, rules })
    }
}

fn exception(map: BTreeMap<String, OneOrMany>) -> Exception {
    map.into_iter().map(|(k, v)| (k, v.into_vec())).collect()
}

/// A duration: a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`), in microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let unit_us: i64 = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 7 * 86_400_000_000,
        _ => return None,
    };
    n.checked_mul(unit_us)
}

/// `count >= N`, `count > N`, `dc(FIELD) >= N`, `dc(FIELD) > N`.
pub fn parse_threshold(s: &str) -> Option<(Metric, u64)> {
    let s = s.trim();
    let (lhs, op, rhs) = if let Some((l, r)) = s.split_once(">=") {
        (l.trim(), ">=", r.trim())
    } else {
        let (l, r) = s.split_once('>')?;
        (l.trim(), ">", r.trim())
    };
    let n: u64 = rhs.parse().ok()?;
    let n = if op == ">" { n.checked_add(1)? } else { n };
    let metric = if lhs == "count" {
        Metric::Count
    } else {
        let inner = lhs.strip_prefix("dc(")?.strip_suffix(')')?.trim();
        if inner.is_empty() {
            return None;
        }
        Metric::Dc(inner.to_string())
    };
    Some((metric, n.max(1)))
}

fn check(d: Draft) -> Result<Rule, RuleError> {
    let id = d.id.clone();
    let err = |origin: &Origin, message: String| RuleError { origin: origin.clone(), rule: Some(id.clone()), message };
    let last = d.changed.last().cloned().unwrap_or_else(|| d.defined.clone());
    let dur = |v: &Option<(String, Origin)>, key: &str| -> Result<Option<i64>, RuleError> {
        match v {
            None => Ok(None),
            Some((text, o)) => match parse_duration(text) {
                Some(us) if us > 0 => Ok(Some(us)),
                _ => Err(err(o, format!("`{key}`: `{text}` is not a duration (5m, 30s, 1h, 7d)"))),
            },
        }
    };
    let severity = match &d.severity {
        None => return Err(err(&last, "no `severity` (info, low, medium, high or critical)".into())),
        Some((s, o)) => Severity::parse(s)
            .ok_or_else(|| err(o, format!("`severity`: `{s}` is not one of info, low, medium, high, critical")))?,
    };
    // A first-seen rule's window may be 0 (its evidence is the new request alone).
    let window = match &d.window {
        Some((t, o)) if parse_duration(t) == Some(0) => {
            if d.first_seen.is_none() {
                return Err(err(o, "`window`: a window is longer than 0".into()));
            }
            Some(0)
        }
        _ => dur(&d.window, "window")?,
    };
    let (query, query_origin) = match (&d.query, &d.sequence) {
        (Some((q, o)), None) => (q.clone(), o.clone()),
        (None, Some((_, o))) => (String::new(), o.clone()),
        _ => return Err(err(&last, "no `query` (or `sequence` of queries)".into())),
    };
    let kind = if let Some((steps, o)) = &d.sequence {
        if steps.len() < 2 {
            return Err(err(o, "a `sequence` has at least two steps".into()));
        }
        let Some(window) = window else {
            return Err(err(o, "a `sequence` needs a `window` (the time from its first step to its last)".into()));
        };
        if d.threshold.is_some() || d.first_seen.is_some() || d.spike.is_some() {
            return Err(err(o, "a `sequence` takes no `threshold`, `first_seen` or `spike`".into()));
        }
        Kind::Sequence { steps: steps.clone(), window }
    } else if let Some((t, o)) = &d.threshold {
        let Some((metric, n)) = parse_threshold(t) else {
            return Err(err(o, format!("`threshold`: `{t}` is not `count >= N` or `dc(FIELD) >= N`")));
        };
        let Some(window) = window else {
            return Err(err(o, "a `threshold` needs a `window` (sliding: 5m, 30s, 1h)".into()));
        };
        Kind::Threshold { window, metric, n }
    } else if let Some(fields) = &d.first_seen {
        let lookback = dur(&d.lookback, "lookback")?.unwrap_or(7 * 86_400_000_000);
        let learn = match &d.learn {
            None => 3_600_000_000,
            Some((t, o)) => {
                parse_duration(t).ok_or_else(|| err(o, format!("`learn`: `{t}` is not a duration (1h, 0s)")))?
            }
        };
        if fields.is_empty() && d.group_by.is_empty() {
            return Err(err(&last, "`first_seen` names the fields whose new values fire (or use `group_by`)".into()));
        }
        Kind::FirstSeen { fields: fields.clone(), lookback, learn, window: window.unwrap_or(600_000_000) }
    } else if let Some((raw, o)) = &d.spike {
        let mut s = Spike::default();
        if let Some(r) = raw {
            if let Some(b) = &r.bucket {
                s.bucket = parse_duration(b)
                    .filter(|&b| b > 0)
                    .ok_or_else(|| err(o, format!("`spike.bucket`: `{b}` is not a duration")))?;
            }
            if let Some(f) = r.factor {
                if !(f.is_finite() && f > 0.0) {
                    return Err(err(o, "`spike.factor` is a number above 0".into()));
                }
                s.factor = f;
            }
            if let Some(m) = r.min_count {
                s.min_count = m.max(1);
            }
            if let Some(a) = r.alpha {
                if !(a > 0.0 && a <= 1.0) {
                    return Err(err(o, "`spike.alpha` is in (0, 1]".into()));
                }
                s.alpha = a;
            }
        }
        Kind::Spike(s)
    } else {
        Kind::Single
    };
    let suppress = match &d.suppress {
        Some((t, o)) => match parse_duration(t) {
            Some(us) => us,
            None => return Err(err(o, format!("`suppress`: `{t}` is not a duration (10m, 0s)"))),
        },
        None => 600_000_000,
    };
    Ok(Rule {
        id: d.id,
        severity,
        description: d.description.unwrap_or_default(),
        false_positives: d.false_positives.unwrap_or_default(),
        references: d.references,
        query,
        group_by: d.group_by,
        kind,
        exceptions: d.exceptions,
        suppress,
        enabled: d.enabled,
        defined: d.defined,
        changed: d.changed,
        query_origin,
    })
}

/// A value as the query language reads it: bare when it can be (keeping `*` and `?` globs), else
/// quoted.
pub fn quote_value(v: &str) -> String {
    let bare = !v.is_empty()
        && !v.starts_with(['/', '-', '('])
        && !["and", "or", "not"].contains(&v.to_ascii_lowercase().as_str())
        && !v.chars().any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '|' | '"' | '\\'));
    if bare {
        v.to_string()
    } else {
        let mut s = String::from('"');
        for c in v.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

impl RuleSet {
    /// The built-in pack alone.
    pub fn builtin() -> RuleSet {
        Loader::with_builtin().finish().expect("the built-in pack is valid (tested)")
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// `text` with each `$name` of a list replaced by `(v1 OR v2 …)`.
    pub fn expand_lists(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let n = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(after.len());
            let name = &after[..n];
            if name.is_empty() {
                out.push('$');
                rest = after;
                continue;
            }
            let Some(values) = self.lists.get(name) else {
                let known: Vec<&str> = self.lists.keys().map(String::as_str).collect();
                return Err(format!(
                    "no list named `${name}`{}",
                    kaq_syntax::did_you_mean(name, &known)
                        .map(|s| format!("; did you mean `${s}`?"))
                        .unwrap_or_default()
                ));
            };
            if values.is_empty() {
                // An empty list matches nothing.
                out.push_str("(id:\"\" -id:\"\")");
            } else {
                out.push('(');
                out.push_str(&values.iter().map(|v| quote_value(v)).collect::<Vec<_>>().join(" OR "));
                out.push(')');
            }
            rest = &after[n..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The named queries, lists expanded, for the planner's `@name`.
    pub fn macros(&self) -> Result<HashMap<String, String>, String> {
        self.queries
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.expand_lists(v).map_err(|e| format!("query `{k}`: {e}"))?)))
            .collect()
    }

    /// The exceptions of `rule` as one search (`(a) OR (b)`), lists expanded; `None` without any.
    pub fn exception_query(&self, rule: &Rule) -> Result<Option<String>, String> {
        if rule.exceptions.is_empty() {
            return Ok(None);
        }
        let mut alts = Vec::new();
        for e in &rule.exceptions {
            let mut terms = Vec::new();
            for (field, values) in e {
                let mut vals = Vec::new();
                for v in values {
                    if v.starts_with('$') && v.len() > 1 {
                        vals.push(self.expand_lists(v)?);
                    } else {
                        vals.push(quote_value(v));
                    }
                }
                terms.push(format!("{field}:({})", vals.join(" OR ")));
            }
            alts.push(format!("({})", terms.join(" ")));
        }
        Ok(Some(alts.join(" OR ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_thresholds() {
        assert_eq!(parse_duration("5m"), Some(300_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000));
        assert_eq!(parse_duration("7d"), Some(604_800_000_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_threshold("count >= 20"), Some((Metric::Count, 20)));
        assert_eq!(parse_threshold("count > 20"), Some((Metric::Count, 21)));
        assert_eq!(parse_threshold("dc(name)>=10"), Some((Metric::Dc("name".into()), 10)));
        assert_eq!(parse_threshold("sum(x) >= 1"), None);
        assert_eq!(parse_threshold("count >= many"), None);
    }

    #[test]
    fn quoting_keeps_globs_and_quotes_the_rest() {
        assert_eq!(quote_value("prod-*"), "prod-*");
        assert_eq!(quote_value("system:serviceaccount:ci:deployer"), "system:serviceaccount:ci:deployer");
        assert_eq!(quote_value("a b"), "\"a b\"");
        assert_eq!(quote_value("/etc"), "\"/etc\"");
        assert_eq!(quote_value("OR"), "\"OR\"");
        assert_eq!(quote_value("x\"y"), "\"x\\\"y\"");
    }

    #[test]
    fn layers_override_add_exceptions_and_disable() {
        let mut l = Loader::default();
        l.add(
            "pack.toml",
            "[lists]\nprod = [\"prod\", \"prod-*\"]\n\n[[rule]]\nid = \"a\"\nseverity = \"low\"\nquery = \"verb:delete ns:$prod\"\n\n[[rule]]\nid = \"b\"\nseverity = \"high\"\nquery = \"code:401\"\ngroup_by = [\"client_ip\"]\nwindow = \"5m\"\nthreshold = \"count >= 20\"\n",
        )
        .unwrap();
        l.add(
            "user.toml",
            "disable = [\"b\"]\n\n[[rule]]\nid = \"a\"\nseverity = \"critical\"\n\n[[exception]]\nrule = \"a\"\nuser = [\"alice\", \"$admins\"]\n\n[lists]\nadmins = [\"root a\"]\n",
        )
        .unwrap();
        let set = l.finish().unwrap();
        let a = set.rule("a").unwrap();
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.query, "verb:delete ns:$prod");
        assert_eq!(set.expand_lists(&a.query).unwrap(), "verb:delete ns:(prod OR prod-*)");
        assert_eq!(set.exception_query(a).unwrap().unwrap(), "(user:(alice OR (\"root a\")))");
        assert_eq!(a.changed.len(), 2);
        let b = set.rule("b").unwrap();
        assert!(!b.enabled);
        assert_eq!(b.kind, Kind::Threshold { window: 300_000_000, metric: Metric::Count, n: 20 });
    }

    #[test]
    fn errors_name_the_file_line_and_rule() {
        let err = |t: &str| {
            let mut l = Loader::default();
            match l.add("f.toml", t) {
                Err(e) => e.to_string(),
                Ok(()) => l.finish().unwrap_err().to_string(),
            }
        };
        assert_eq!(
            err("[[rule]]\nid = \"x\"\nseverity = \"urgent\"\nquery = \"verb:get\"\n"),
            "f.toml:1: rule `x`: `severity`: `urgent` is not one of info, low, medium, high, critical"
        );
        assert_eq!(
            err("\n[[rule]]\nid = \"x\"\nseverity = \"low\"\nquery = \"verb:get\"\nthreshold = \"count >= 3\"\n"),
            "f.toml:2: rule `x`: a `threshold` needs a `window` (sliding: 5m, 30s, 1h)"
        );
        assert!(err("[[rule]]\nid = \"x\"\nsevrity = \"low\"\n").starts_with("f.toml:3: unknown field `sevrity`"));
        assert_eq!(err("[[exception]]\nrule = \"nope\"\nuser = \"a\"\n"), "f.toml:1: rule `nope`: no rule has this id");
        let mut l = Loader::default();
        l.add("f.toml", "[lists]\nxs = [\"a\"]\n").unwrap();
        let set = l.finish().unwrap();
        assert_eq!(set.expand_lists("ns:$x").unwrap_err(), "no list named `$x`; did you mean `$xs`?");
    }

    #[test]
    fn builtin_pack_reads() {
        let set = RuleSet::builtin();
        assert!(set.rules.len() >= 30, "{} rules", set.rules.len());
        for r in &set.rules {
            assert!(!r.description.is_empty(), "{}: no description", r.id);
            assert!(!r.false_positives.is_empty(), "{}: no false-positive notes", r.id);
        }
    }
}
