//! Warnings: a query that runs, but probably does not ask what was meant. Each is data — a
//! message, the span it is about, a suggested text — for the CLI, the REPL and a server to render
//! their own way; none changes an answer.
//!
//! - [`query_warnings`] (from the text, before running): a value that no event can hold
//!   (`verb:delet`, `stage:RequestRecieved`, `verb:DELETE`), judged by the catalogue's vocabularies
//!   ([`kaq_schema::vocabulary`]) and by the values the data holds ([`KnownValues`]); a stage typed
//!   without its `|` (`code:401 count by ip`), which searches for those words instead.
//! - [`time_warning`] (after running): time bounds that leave nothing, shown beside the data's
//!   time range.

use kaq_schema::{FieldType, lookup, vocabulary};
use kaq_syntax::{CmpOp, STAGE_NAMES, Search, Span, Stage, Term, Value, ValueKind, did_you_mean, parse};

use super::{FieldKey, Options, Plan, compile, time_bounds};
use crate::scan::Seen;

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// `field:value` where no event's field can be (or is) that value.
    UnknownValue,
    /// Free-text words that spell a stage and its arguments: a `|` is probably missing.
    MissingPipe,
    /// The time bounds do not meet the data's time range: the time filter alone leaves nothing.
    TimeOutsideData,
}

/// A note on a query; it never changes the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    /// What is wrong, in a sentence without the suggestion.
    pub message: String,
    /// The part of the query text it is about (`None`: the whole query, or an option).
    pub span: Option<Span>,
    /// What to write instead of the span's text (`delete`, `| count by ip`).
    pub suggestion: Option<String>,
}

impl Warning {
    /// The message with its suggestion: ``no verb is `delet`; did you mean `delete`?``.
    pub fn text(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("{}; did you mean `{s}`?", self.message),
            None => self.message.clone(),
        }
    }
}

/// The values some data holds, for telling a typo from a rare value. A store answers from its
/// term dictionaries and columns, the REPL over files from the sample it reads for completion.
pub trait KnownValues {
    /// Whether some event's `field` (a catalogue name) is exactly `value`; `None` when this source
    /// cannot enumerate that field.
    fn holds(&self, field: &str, value: &str) -> Option<bool>;
    /// Values of `field` to suggest instead of `value` (those that may be near it; ranked or not).
    fn near(&self, field: &str, value: &str) -> Vec<String>;
    /// Where the values come from, for messages: "the store", "the logs".
    fn describe(&self) -> &str;
}

/// The slots of `plan` whose fields have a vocabulary: what a scan over logs watches
/// ([`Plan::watch`]) when [`query_warnings`] finds a value outside one, so that [`SeenValues`] can
/// tell whether the logs hold it after all (a value no kube-apiserver writes, in a forged or
/// foreign log).
pub fn vocabulary_slots(plan: &Plan) -> Vec<usize> {
    (0..plan.slots.len())
        .filter(|&i| matches!(&plan.slots[i].key, Some(FieldKey::Field(f)) if vocabulary(f.name).is_some()))
        .collect()
}

/// What a scan of logs saw of the watched slots ([`crate::scan::Scanned::seen`]): a value seen
/// exists; one not seen does not when every line was decoded (`all_read`: no prefilter skipped
/// any), else the scan cannot tell.
pub struct SeenValues<'a> {
    pub plan: &'a Plan,
    pub seen: &'a Seen,
    pub all_read: bool,
}

impl SeenValues<'_> {
    /// The values seen of `field`, `None` when it was not watched or had too many.
    fn values(&self, field: &str) -> Option<Vec<&str>> {
        let slots = &self.plan.slots;
        let i = self
            .plan
            .watch
            .iter()
            .position(|&s| matches!(&slots[s].key, Some(FieldKey::Field(f)) if f.name == field))?;
        match self.seen.0.get(i) {
            None => Some(Vec::new()), // no event tested
            Some(set) => Some(set.as_ref()?.iter().map(String::as_str).collect()),
        }
    }
}

impl KnownValues for SeenValues<'_> {
    fn holds(&self, field: &str, value: &str) -> Option<bool> {
        match self.values(field)?.contains(&value) {
            true => Some(true),
            false => self.all_read.then_some(false),
        }
    }

    fn near(&self, field: &str, _: &str) -> Vec<String> {
        let mut v: Vec<String> = self.values(field).unwrap_or_default().into_iter().map(str::to_string).collect();
        v.sort();
        v
    }

    fn describe(&self) -> &str {
        "the events read"
    }
}

/// Warnings about `text` found before running it: unknown values (checked against `known` too
/// when given) and stages missing their `|`. A text that does not parse gives none (its errors
/// say more); one that parses but does not compile still gets them (`count by ip | where
/// count > 20` fails for want of its `|`).
pub fn query_warnings(text: &str, opts: &Options, known: Option<&dyn KnownValues>) -> Vec<Warning> {
    let Ok(query) = parse(text) else { return Vec::new() };
    let mut out = Vec::new();
    let mut conditions: Vec<&Search> = query.search.iter().collect();
    // `where`s over events, before anything turns events into other rows.
    for s in &query.stages {
        match s {
            Stage::Where { expr, .. } => conditions.push(expr),
            Stage::Sort { .. } | Stage::Head { .. } | Stage::Dedup { .. } => {}
            _ => break,
        }
    }
    for c in conditions {
        c.for_each_leaf(&mut |t| match t {
            Term::Match { field, value, .. } => {
                value.for_each_leaf(&mut |v| out.extend(value_warning(&field.dotted(), v, known)));
            }
            Term::Compare { field, op, value, .. } if matches!(op.node, CmpOp::Eq | CmpOp::Ne) => {
                out.extend(value_warning(&field.dotted(), value, known));
            }
            _ => {}
        });
    }
    if let Some(search) = &query.search {
        out.extend(missing_pipe(text, search, opts));
    }
    out
}

/// `field:value` (or `field=value`) with an exact value of a keyword field that no event holds:
/// one outside the field's vocabulary that the data does not hold either, or one the data can
/// enumerate and does not hold. Wildcards, regexes and empty values are never judged.
fn value_warning(field: &str, v: &Value, known: Option<&dyn KnownValues>) -> Option<Warning> {
    let value = match &v.kind {
        ValueKind::Bare { text, has_wildcard: false } | ValueKind::Quoted { text } => text.as_str(),
        _ => return None,
    };
    let f = lookup(field).filter(|f| f.ty == FieldType::Keyword)?;
    if value.is_empty() {
        return None;
    }
    let vocab = vocabulary(f.name);
    if vocab.is_some_and(|w| w.contains(&value)) {
        return None;
    }
    let held = known.and_then(|k| k.holds(f.name, value));
    match (vocab, held) {
        (_, Some(true)) | (None, None) => return None,
        _ => {}
    }
    let mut candidates: Vec<String> = vocab.unwrap_or_default().iter().map(|s| s.to_string()).collect();
    let from_data = held == Some(false);
    if let Some(k) = known.filter(|_| from_data) {
        for c in k.near(f.name, value) {
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
    }
    let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let where_ = match known.filter(|_| from_data) {
        Some(k) => format!(" in {}", k.describe()),
        None => String::new(),
    };
    let name = f.name;
    // Case first: `verb:DELETE` is a different value from `delete`.
    if let Some(same) = refs.iter().find(|c| c.to_lowercase() == value.to_lowercase()) {
        return Some(Warning {
            kind: WarningKind::UnknownValue,
            message: format!("no {name} is `{value}`{where_} (values are case-sensitive)"),
            span: Some(v.span),
            suggestion: Some(same.to_string()),
        });
    }
    let suggestion = suggest(value, &refs).map(str::to_string);
    let mut message = format!("no {name} is `{value}`{where_}");
    if suggestion.is_none()
        && let Some(w) = vocab
    {
        message.push_str(&format!(" ({name} is {})", one_of(w)));
    }
    Some(Warning { kind: WarningKind::UnknownValue, message, span: Some(v.span), suggestion })
}

/// "allow or forbid", "a, b, c or d".
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The candidate `value` was most likely meant as: one that differs only in case, else the
/// nearest by edit distance when it is close enough to be a typo (one edit in words of up to four
/// letters, two beyond), else one that starts with it or that it starts with (`humans` →
/// `human`, `service` → `serviceaccount`) when only one does. Ties go to the earlier candidate.
pub fn suggest<'c>(value: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = value.to_lowercase();
    if let Some(c) = candidates.iter().find(|c| c.to_lowercase() == lower) {
        return Some(c);
    }
    if let Some(c) = did_you_mean(value, candidates) {
        return Some(c);
    }
    let mut prefixed = candidates.iter().filter(|c| {
        let c = c.to_lowercase();
        lower.len() >= 3 && c.len() >= 3 && (c.starts_with(&lower) || lower.starts_with(&c))
    });
    match (prefixed.next(), prefixed.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Free text that spells a stage: a bare word naming a stage, followed by more of the search,
/// such that putting a `|` before the word gives a query that compiles (`code:401 count by ip` →
/// `code:401 | count by ip`). A stage name alone at the end of the search is taken as the word
/// it is (`code:401 table` searches for "table"), and so are words after it that do not make a
/// valid stage (`table of contents`: `of` is not a field).
fn missing_pipe(text: &str, search: &Search, opts: &Options) -> Option<Warning> {
    let end = search.span().end.min(text.len());
    let mut words = Vec::new();
    search.for_each_leaf(&mut |t| {
        if let Term::Text(Value { kind: ValueKind::Bare { text: w, has_wildcard: false }, span }) = t
            && STAGE_NAMES.contains(&w.as_str())
            && span.end < end
        {
            words.push(*span);
        }
    });
    words.into_iter().find_map(|at| {
        let fixed = format!("{}| {}", &text[..at.start], &text[at.start..]);
        compile(&fixed, opts).ok()?;
        let stage = text[at.start..end].trim_end();
        Some(Warning {
            kind: WarningKind::MissingPipe,
            message: format!("`{stage}` is read as part of the search, not as a stage"),
            span: Some(Span::new(at.start, at.start + stage.len())),
            suggestion: Some(format!("| {stage}")),
        })
    })
}

/// When the time bounds of `plan` (`--since`/`--until`, `.since`, `time` conditions AND-ed at the
/// top of the search) and the data's time range `data` (min and max event time) do not meet, the
/// time filter alone leaves nothing: the warning shows both, as UTC timestamps. `what` names the
/// data in the message ("the store's events", "the events read").
pub fn time_warning(plan: &Plan, data: Option<(i64, i64)>, what: &str) -> Option<Warning> {
    let (lo, hi) = time_bounds(plan);
    let (min, max) = data?;
    let before = hi.is_some_and(|h| min >= h);
    let after = lo.is_some_and(|l| max < l);
    if !(before || after) {
        return None;
    }
    // Whole seconds without their zeros: `2026-11-20T00:00:00Z`.
    let t = |us: i64| {
        let s = kaq_schema::time::format_micros(us);
        s.strip_suffix(".000000Z").map_or(s.clone(), |w| format!("{w}Z"))
    };
    let bounds = match (lo, hi) {
        (Some(l), Some(h)) => format!("{} <= time < {}", t(l), t(h)),
        (Some(l), None) => format!("time >= {}", t(l)),
        (None, Some(h)) => format!("time < {}", t(h)),
        (None, None) => return None,
    };
    Some(Warning {
        kind: WarningKind::TimeOutsideData,
        message: format!("the time bounds ({bounds}) leave nothing: {what} run from {} to {}", t(min), t(max)),
        span: None,
        suggestion: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warn(q: &str) -> Vec<String> {
        query_warnings(q, &Options::default(), None).iter().map(Warning::text).collect()
    }

    #[test]
    fn suggestions() {
        let verbs = vocabulary("verb").unwrap();
        assert_eq!(suggest("delet", verbs), Some("delete"));
        assert_eq!(suggest("DELETE", verbs), Some("delete"));
        assert_eq!(suggest("lsit", verbs), Some("list"));
        assert_eq!(suggest("frobnicate", verbs), None);
        let stages = vocabulary("stage").unwrap();
        assert_eq!(suggest("RequestRecieved", stages), Some("RequestReceived"));
        assert_eq!(suggest("responsecomplete", stages), Some("ResponseComplete"));
        let kinds = vocabulary("user_kind").unwrap();
        assert_eq!(suggest("humans", kinds), Some("human"));
        assert_eq!(suggest("service", kinds), Some("serviceaccount"));
        assert_eq!(suggest("serviceaccounts", kinds), Some("serviceaccount"));
        assert_eq!(suggest("deny", vocabulary("decision").unwrap()), None);
        // Two candidates start with it: no guess.
        assert_eq!(suggest("res", &["response", "resource"]), None);
    }

    #[test]
    fn unknown_values_of_fixed_vocabularies() {
        assert_eq!(warn("verb:delet"), ["no verb is `delet`; did you mean `delete`?"]);
        assert_eq!(warn("verb:DELETE"), ["no verb is `DELETE` (values are case-sensitive); did you mean `delete`?"]);
        assert_eq!(warn("stage:RequestRecieved"), ["no stage is `RequestRecieved`; did you mean `RequestReceived`?"]);
        assert_eq!(warn("user_kind:humans"), ["no user_kind is `humans`; did you mean `human`?"]);
        assert_eq!(warn("decision:deny"), ["no decision is `deny` (decision is allow or forbid)"]);
        // In groups, negated, compared, in a leading `where`, by alias.
        assert_eq!(warn("verb:(get OR delet)").len(), 1);
        assert_eq!(warn("-verb:delet").len(), 1);
        assert_eq!(warn("verb=delet").len(), 1);
        assert_eq!(warn("| where verb:delet | count").len(), 1);
        assert_eq!(warn("ns:prod | sort time | where stage:Panik").len(), 1);
        // Values that exist, wildcards, regexes, fields without a vocabulary, after a shaping stage.
        assert!(warn("verb:delete stage:ResponseComplete level:RequestResponse decision:forbid").is_empty());
        assert!(warn("verb:del* verb:/DEL/ ns:prod user:nobody status:Fail").is_empty());
        assert!(warn("| count by verb | where verb:delet").is_empty());
        assert!(warn("verb<delet").is_empty());
        assert!(warn("verb:\"\"").is_empty());
    }

    #[test]
    fn the_span_points_at_the_value() {
        let w = query_warnings("ns:prod verb:delet", &Options::default(), None);
        assert_eq!(w[0].span, Some(Span::new(13, 18)));
        assert_eq!(w[0].suggestion.as_deref(), Some("delete"));
    }

    struct Held(&'static [(&'static str, &'static str)]);
    impl KnownValues for Held {
        fn holds(&self, field: &str, value: &str) -> Option<bool> {
            ["ns", "verb"].contains(&field).then(|| self.0.contains(&(field, value)))
        }
        fn near(&self, field: &str, _: &str) -> Vec<String> {
            self.0.iter().filter(|(f, _)| *f == field).map(|(_, v)| v.to_string()).collect()
        }
        fn describe(&self) -> &str {
            "the store"
        }
    }

    #[test]
    fn values_the_data_holds() {
        let data = Held(&[("ns", "prod"), ("ns", "Staging"), ("verb", "impersonate")]);
        let warn = |q: &str| -> Vec<String> {
            query_warnings(q, &Options::default(), Some(&data)).iter().map(Warning::text).collect()
        };
        assert_eq!(warn("ns:prd"), ["no ns is `prd` in the store; did you mean `prod`?"]);
        assert_eq!(
            warn("ns:staging"),
            ["no ns is `staging` in the store (values are case-sensitive); did you mean `Staging`?"]
        );
        assert_eq!(warn("ns:kube-system"), ["no ns is `kube-system` in the store"]);
        // A value outside the vocabulary that the data holds is no typo.
        assert!(warn("verb:impersonate ns:prod").is_empty());
        assert_eq!(warn("verb:impersonat"), ["no verb is `impersonat` in the store; did you mean `impersonate`?"]);
        // Fields the data cannot enumerate: nothing said.
        assert!(warn("name:nothing-like-it").is_empty());
    }

    #[test]
    fn time_bounds_that_miss_the_data() {
        let day = 1_795_132_800_000_000; // 2026-11-20T00:00:00Z
        let hour = 3_600_000_000;
        let data = Some((day, day + hour + 500_000));
        let opts = Options { now_us: day + 30 * 24 * hour, since: Some("2h".into()), ..Default::default() };
        let plan = compile("", &opts).unwrap();
        let w = time_warning(&plan, data, "the store's events").unwrap();
        assert_eq!(w.kind, WarningKind::TimeOutsideData);
        assert_eq!(
            w.text(),
            "the time bounds (time >= 2026-12-19T22:00:00Z) leave nothing: the store's events run from 2026-11-20T00:00:00Z to 2026-11-20T01:00:00.500000Z"
        );
        let plan = compile("time:2026-11-19 verb:get", &Options::default()).unwrap();
        assert_eq!(
            time_warning(&plan, data, "the events read").unwrap().message,
            "the time bounds (2026-11-19T00:00:00Z <= time < 2026-11-20T00:00:00Z) leave nothing: the events read run from 2026-11-20T00:00:00Z to 2026-11-20T01:00:00.500000Z"
        );
        let opts = Options { until: Some("2026-11-20".into()), ..Default::default() };
        let plan = compile("", &opts).unwrap();
        assert!(
            time_warning(&plan, data, "x")
                .unwrap()
                .message
                .starts_with("the time bounds (time < 2026-11-20T00:00:00Z)")
        );
        // Bounds that meet the data, no bounds, a time under OR, no data: nothing to say.
        let plan = compile("time>=2026-11-20T01:00:00.5Z", &Options::default()).unwrap();
        assert!(time_warning(&plan, data, "x").is_none());
        for q in ["verb:get", "time:2026-11-19 OR verb:get"] {
            assert!(time_warning(&compile(q, &Options::default()).unwrap(), data, "x").is_none(), "{q}");
        }
        assert!(time_warning(&compile("time:2026-11-19", &Options::default()).unwrap(), None, "x").is_none());
    }

    #[test]
    fn values_a_scan_saw() {
        let q = "decision:deny verb:lsit";
        let mut plan = compile(q, &Options::default()).unwrap();
        plan.watch = vocabulary_slots(&plan);
        let names: Vec<&str> = plan.watch.iter().map(|&s| plan.slots[s].name.as_str()).collect();
        assert_eq!(names, ["decision", "verb"]);
        let set = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        let seen = Seen(vec![set(&["allow", "deny"]), set(&["get", "list"])]);
        let warn = |all_read| -> Vec<String> {
            let known = SeenValues { plan: &plan, seen: &seen, all_read };
            query_warnings(q, &Options::default(), Some(&known)).iter().map(Warning::text).collect()
        };
        // `deny` was seen: no typo. `lsit` was not: with every line read, the logs lack it.
        assert_eq!(warn(true), ["no verb is `lsit` in the events read; did you mean `list`?"]);
        assert_eq!(warn(false), ["no verb is `lsit`; did you mean `list`?"]);
        // Too many values to keep, or nothing read.
        let seen = Seen(vec![None, set(&[])]);
        let known = SeenValues { plan: &plan, seen: &seen, all_read: true };
        assert_eq!(known.holds("decision", "deny"), None);
        assert_eq!(known.holds("verb", "get"), Some(false));
        let seen = Seen(Vec::new());
        let known = SeenValues { plan: &plan, seen: &seen, all_read: true };
        assert_eq!(known.holds("verb", "get"), Some(false));
        assert_eq!(known.holds("ns", "prod"), None, "not watched");
    }

    #[test]
    fn missing_pipes() {
        assert_eq!(
            warn("code:401 count by ip"),
            ["`count by ip` is read as part of the search, not as a stage; did you mean `| count by ip`?"]
        );
        assert_eq!(
            warn("stats p99(latency) by verb"),
            [
                "`stats p99(latency) by verb` is read as part of the search, not as a stage; did you mean `| stats p99(latency) by verb`?"
            ]
        );
        assert_eq!(
            warn("verb:get table user")[0],
            "`table user` is read as part of the search, not as a stage; did you mean `| table user`?"
        );
        // Later stages make the fixed query; a query that fails for want of the `|` gets it too.
        assert_eq!(warn("code:401 count by ip | sort -count").len(), 1);
        assert_eq!(warn("code:401 count by ip | where count > 20").len(), 1);
        for q in
            ["verb:get where code>400", "head 10", "top 5 user", "timeline 5m", "user:bob sort -time", "dedup user"]
        {
            assert_eq!(warn(q).len(), 1, "{q}");
        }
        let w = query_warnings("code:401 count by ip", &Options::default(), None);
        assert_eq!(w[0].span, Some(Span::new(9, 20)));
        // A stage name alone, or followed by words that make no stage, is a word.
        for q in [
            "code:401 table",
            "count",
            "head",
            "error table of contents",
            "where is my pod",
            "\"count by ip\"",
            "(count by ip)",
            "count*",
        ] {
            assert!(warn(q).is_empty(), "{q}");
        }
    }
}
