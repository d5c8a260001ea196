//! Tab completion: what the word under the cursor can be — a field, a value of that field that the
//! data holds (most frequent first), a stage, an aggregate, a named query, a meta-command — read
//! from the text before the cursor, the field catalogue and the source's values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kaq_schema::{FIELDS, FieldType};
use kaq_syntax::{AggFunc, STAGE_NAMES};
use reedline::{Completer, CompletionResult, Span, Suggestion};

use super::meta::COMMANDS;
use super::source::{Source, VALUE_FIELDS};

/// Values offered at most for one field.
const MAX_VALUES: usize = 40;

/// What the word under the cursor can be.
#[derive(Debug, PartialEq, Eq)]
pub enum Want {
    /// A meta-command (`.he`).
    Meta,
    /// One of a fixed list (after `.format`, `count`, `timeline`…).
    Words(&'static [(&'static str, &'static str)]),
    /// A field in a search: `name:` (or a named query).
    SearchField,
    /// A field or column in a stage (`by`, `table`, `sort`…), from the columns before it.
    StageField {
        query_before: String,
    },
    /// A value of this field.
    Value {
        field: String,
    },
    /// `@name`.
    Macro,
    /// A stage name after `|`.
    Stage,
    /// An aggregate of `stats` (or `by`).
    Aggregate,
    Nothing,
}

/// The word to replace (from `start` to the cursor) and what it can be.
#[derive(Debug, PartialEq, Eq)]
pub struct Ctx {
    pub start: usize,
    pub word: String,
    pub want: Want,
}

const FORMATS: &[(&str, &str)] = &[
    ("table", "aligned columns sized to the terminal, with bar charts"),
    ("json", "JSON lines"),
    ("csv", "a header, then the rows"),
];
const ON_OFF: &[(&str, &str)] = &[("on", ""), ("off", "")];
const TIMES: &[(&str, &str)] = &[
    ("15m", "the last 15 minutes"),
    ("1h", "the last hour"),
    ("24h", "the last day"),
    ("7d", "the last week"),
    ("off", "no limit"),
];
const BY: &[(&str, &str)] = &[("by", "group by fields")];
const INTERVALS: &[(&str, &str)] = &[("1m", ""), ("5m", ""), ("15m", ""), ("1h", ""), ("1d", "")];

/// Characters that end a word of a query.
fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '|' | ',')
}

/// Where the word under the cursor starts, treating an open quote as part of the word.
fn word_start(before: &str) -> usize {
    if let Some(q) = open_quote(before) {
        return word_start(&before[..q]); // `user:"system:ser`: the field too
    }
    before.char_indices().rev().find(|&(_, c)| is_delim(c)).map_or(0, |(i, c)| i + c.len_utf8())
}

/// The position of an unclosed `"` in `text`, if any.
fn open_quote(text: &str) -> Option<usize> {
    let mut open = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if open.is_some() => {
                chars.next();
            }
            '"' => open = if open.is_some() { None } else { Some(i) },
            _ => {}
        }
    }
    open
}

/// Positions of the `|` outside quotes in `text`.
fn pipes(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if quoted => {
                chars.next();
            }
            '"' => quoted = !quoted,
            '|' if !quoted => out.push(i),
            _ => {}
        }
    }
    out
}

/// What to complete in `line` at byte `pos`.
pub fn context(line: &str, pos: usize) -> Ctx {
    let before = &line[..pos];
    let trimmed = before.trim_start();
    if let Some(cmd) = trimmed.strip_prefix('.') {
        let lead = before.len() - trimmed.len();
        return match cmd.split_once(char::is_whitespace) {
            None => Ctx { start: lead, word: trimmed.to_string(), want: Want::Meta },
            Some((name, rest)) => {
                let arg_at = pos - rest.len();
                let (rest_t, skipped) = (rest.trim_start(), rest.len() - rest.trim_start().len());
                let words = |list| Ctx { start: arg_at + skipped, word: rest_t.to_string(), want: Want::Words(list) };
                match name {
                    "format" if !rest_t.contains(' ') => words(FORMATS),
                    "timing" if !rest_t.contains(' ') => words(ON_OFF),
                    "since" | "until" if !rest_t.contains(' ') => words(TIMES),
                    "explain" => shift(query_context(rest, rest.len()), arg_at),
                    "save" => match rest_t.split_once(char::is_whitespace) {
                        Some((_, q)) => {
                            let at = pos - q.len();
                            shift(query_context(q, q.len()), at)
                        }
                        None => Ctx { start: pos, word: String::new(), want: Want::Nothing },
                    },
                    _ => Ctx { start: pos, word: String::new(), want: Want::Nothing },
                }
            }
        };
    }
    query_context(line, pos)
}

/// A context computed on a query inside a meta-command, moved to the line's offsets.
fn shift(mut c: Ctx, by: usize) -> Ctx {
    c.start += by;
    c
}

fn query_context(q: &str, pos: usize) -> Ctx {
    let before = &q[..pos];
    let start = word_start(before);
    let word = &before[start..];
    let ctx = |start: usize, word: &str, want| Ctx { start, word: word.to_string(), want };
    let Some(&pipe) = pipes(&before[..start]).last() else { return search_context(before, start) };
    let stage_text = &before[pipe + 1..start];
    let words: Vec<&str> =
        stage_text.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).collect();
    let query_before = q[..pipe].to_string();
    let Some(&first) = words.first() else { return ctx(start, word, Want::Stage) };
    let fields = |start, word: &str| ctx(start, word, Want::StageField { query_before: query_before.clone() });
    let after_by = words.contains(&"by");
    match first {
        "where" => {
            let mut c = search_context(before, start);
            if c.want == Want::SearchField {
                c.want = Want::StageField { query_before };
            }
            c
        }
        "table" | "fields" | "dedup" => fields(start, word),
        "sort" => match word.strip_prefix(['-', '+']) {
            Some(w) => fields(start + 1, w),
            None => fields(start, word),
        },
        "count" if !after_by => ctx(start, word, Want::Words(BY)),
        "count" => fields(start, word),
        "stats" if after_by => fields(start, word),
        "stats" if before[..start].ends_with('(') => fields(start, word),
        "stats" if words.last().is_some_and(|w| *w == "as") => ctx(start, word, Want::Nothing),
        "stats" => ctx(start, word, Want::Aggregate),
        "top" | "rare" => match words.len() {
            1 => ctx(start, word, Want::Nothing),
            2 => fields(start, word),
            _ if after_by => fields(start, word),
            _ => ctx(start, word, Want::Words(BY)),
        },
        "timeline" => match words.len() {
            1 => ctx(start, word, Want::Words(INTERVALS)),
            2 => ctx(start, word, Want::Words(BY)),
            _ => fields(start, word),
        },
        _ => ctx(start, word, Want::Nothing),
    }
}

/// In a search (or `where`): `@name`, `field:value`, `field:(a OR va…`, or a field.
fn search_context(before: &str, start: usize) -> Ctx {
    let word = &before[start..];
    let ctx = |start: usize, word: &str, want| Ctx { start, word: word.to_string(), want };
    if word.starts_with('@') {
        return ctx(start, word, Want::Macro);
    }
    let (start, word) = match word.strip_prefix('-') {
        Some(w) => (start + 1, w),
        None => (start, word),
    };
    if let Some(k) = word.find(':') {
        let field = &word[..k];
        let is_field = !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        return match is_field {
            true => ctx(start + k + 1, &word[k + 1..], Want::Value { field: field.to_string() }),
            false => ctx(start, word, Want::Nothing),
        };
    }
    if word.contains(['<', '>', '=', '!']) {
        return ctx(start, word, Want::Nothing);
    }
    // Inside `field:( … )`: a value of that field.
    if let Some(field) = enclosing_group_field(&before[..start]) {
        return ctx(start, word, Want::Value { field });
    }
    ctx(start, word, Want::SearchField)
}

/// The field of the innermost unclosed `field:(` in `text`.
fn enclosing_group_field(text: &str) -> Option<String> {
    let mut stack = Vec::new();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => stack.push(i),
            ')' if !quoted => {
                stack.pop();
            }
            _ => {}
        }
    }
    let open = *stack.last()?;
    let head = text[..open].strip_suffix(':')?;
    let field: String = head
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!field.is_empty()).then_some(field)
}

/// Quotes a value for a query when it would not read back as itself bare.
pub fn quote_value(v: &str) -> String {
    let bare_ok = !v.is_empty()
        && !v.starts_with(['/', '-', '@'])
        && !v.contains(|c: char| c.is_whitespace() || "()|\"*?\\".contains(c))
        && !["AND", "OR", "NOT"].contains(&v.to_ascii_uppercase().as_str());
    if bare_ok { v.to_string() } else { format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")) }
}

/// The REPL's completer.
pub struct KaqCompleter {
    pub source: Arc<Source>,
    pub macros: Arc<Mutex<HashMap<String, String>>>,
}

impl KaqCompleter {
    /// Column names a stage may use after `query_before` (the catalogue before any shaping stage).
    fn columns(&self, query_before: &str) -> Option<Vec<String>> {
        let opts = kaq_query::Options { macros: self.macros.lock().expect("unpoisoned").clone(), ..Default::default() };
        let plan = kaq_query::compile(query_before, &opts).ok()?;
        (!plan.whole_events).then(|| plan.output_columns().iter().map(|c| c.name.clone()).collect())
    }

    /// Every suggestion for `ctx`: (value, description, append a space).
    pub fn candidates(&self, ctx: &Ctx) -> Vec<(String, String, bool)> {
        let w = ctx.word.as_str();
        let lw = w.to_ascii_lowercase();
        let starts = |s: &str| s.to_ascii_lowercase().starts_with(&lw);
        match &ctx.want {
            Want::Meta => COMMANDS
                .iter()
                .filter(|(c, _, _)| c.starts_with(w))
                .map(|(c, args, doc)| (c.to_string(), format!("{args} {doc}").trim().to_string(), !args.is_empty()))
                .collect(),
            Want::Words(list) => {
                list.iter().filter(|(x, _)| starts(x)).map(|(x, d)| (x.to_string(), d.to_string(), true)).collect()
            }
            Want::Stage => STAGE_NAMES
                .iter()
                .filter(|s| starts(s))
                .map(|s| (s.to_string(), stage_doc(s).to_string(), true))
                .collect(),
            Want::Aggregate => AggFunc::ALL
                .iter()
                .map(|f| f.as_str())
                .filter(|f| starts(f))
                .map(|f| {
                    let v = if f == "count" { "count".to_string() } else { format!("{f}(") };
                    (v, agg_doc(f).to_string(), f == "count")
                })
                .chain(
                    BY.iter()
                        .filter(|(b, _)| starts(b) && !w.is_empty())
                        .map(|(b, d)| (b.to_string(), d.to_string(), true)),
                )
                .collect(),
            Want::Macro => {
                let mut out: Vec<(String, String, bool)> = self
                    .macros
                    .lock()
                    .expect("unpoisoned")
                    .iter()
                    .map(|(n, q)| (format!("@{n}"), q.clone(), true))
                    .collect();
                out.sort();
                out.extend(
                    kaq_query::plan::macros::BUILTIN.iter().map(|(n, _, d)| (format!("@{n}"), d.to_string(), true)),
                );
                out.retain(|(n, _, _)| n.starts_with(w));
                out
            }
            Want::SearchField => {
                let mut out = field_candidates(w, ":", false);
                if w.is_empty() {
                    out.push(("@".into(), "a named query (@prod-deletes, @secret-reads…)".into(), false));
                }
                out
            }
            Want::StageField { query_before } => match self.columns(query_before) {
                Some(cols) => cols.into_iter().filter(|c| starts(c)).map(|c| (c, "column".into(), false)).collect(),
                None => field_candidates(w, "", false),
            },
            Want::Value { field } => {
                let Some(f) = kaq_schema::lookup(field) else { return Vec::new() };
                let raw = w.strip_prefix('"').unwrap_or(w);
                match f.ty {
                    FieldType::Bool => ["true", "false"]
                        .iter()
                        .filter(|b| b.starts_with(raw))
                        .map(|b| (b.to_string(), String::new(), true))
                        .collect(),
                    _ if VALUE_FIELDS.contains(&f.name) || matches!(f.name, "client_ip" | "peer_ip") => {
                        let name = if matches!(f.name, "client_ip" | "peer_ip") { "ip" } else { f.name };
                        self.source
                            .values(name, raw, MAX_VALUES)
                            .into_iter()
                            .map(|(v, n)| (quote_value(&v), rows(n), true))
                            .collect()
                    }
                    _ => Vec::new(),
                }
            }
            Want::Nothing => Vec::new(),
        }
    }
}

fn rows(n: u64) -> String {
    format!("{} row{}", super::super::report::thousands(n), if n == 1 { "" } else { "s" })
}

/// Fields (names, then aliases) starting with `w`, each followed by `suffix`.
fn field_candidates(w: &str, suffix: &str, space: bool) -> Vec<(String, String, bool)> {
    let lw = w.to_ascii_lowercase();
    let doc = |f: &kaq_schema::Field| format!("{}{} · {}", f.ty.name(), if f.list { " list" } else { "" }, f.doc);
    let mut out: Vec<(String, String, bool)> = FIELDS
        .iter()
        .filter(|f| f.name.to_ascii_lowercase().starts_with(&lw))
        .map(|f| (format!("{}{suffix}", f.name), doc(f), space))
        .collect();
    if !w.is_empty() {
        for f in FIELDS {
            for a in f.aliases.iter().filter(|a| a.to_ascii_lowercase().starts_with(&lw)) {
                out.push((format!("{a}{suffix}"), format!("= {}", f.name), space));
            }
        }
    }
    out
}

pub fn stage_doc(s: &str) -> &'static str {
    match s {
        "where" => "keep rows where a condition holds",
        "table" | "fields" => "these columns: table time, user, name",
        "sort" => "sort by columns, - for descending: sort -count",
        "head" => "the first N rows (10)",
        "count" => "count rows, or per group: count by user",
        "stats" => "aggregates per group: stats count, dc(name) by user",
        "top" => "the N most frequent values: top 5 user",
        "rare" => "the N least frequent values: rare 5 user",
        "timeline" => "rows per time bucket, drawn as bars: timeline 1h",
        "dedup" => "the first row of each combination: dedup user",
        _ => "",
    }
}

fn agg_doc(f: &str) -> &'static str {
    match f {
        "count" => "rows (count(f): rows where f is present)",
        "dc" => "distinct values",
        "min" | "max" => "smallest / largest value",
        "avg" | "sum" => "of numbers and durations",
        "p50" | "p90" | "p95" | "p99" => "percentile (nearest rank)",
        "values" => "the distinct values, sorted",
        _ => "",
    }
}

impl Completer for KaqCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let pos = pos.min(line.len());
        let ctx = context(line, pos);
        let span = Span::new(ctx.start, pos);
        let suggestions: Vec<Suggestion> = self
            .candidates(&ctx)
            .into_iter()
            .map(|(value, description, append_whitespace)| Suggestion {
                value,
                description: (!description.is_empty()).then_some(description),
                span,
                append_whitespace,
                ..Suggestion::default()
            })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(line: &str) -> (String, Want) {
        let c = context(line, line.len());
        (c.word, c.want)
    }

    #[test]
    fn contexts() {
        assert_eq!(want("ver"), ("ver".into(), Want::SearchField));
        assert_eq!(want("verb:del"), ("del".into(), Want::Value { field: "verb".into() }));
        assert_eq!(want("code:401 -ns:kube-"), ("kube-".into(), Want::Value { field: "ns".into() }));
        assert_eq!(want("verb:(get OR del"), ("del".into(), Want::Value { field: "verb".into() }));
        assert_eq!(want("user:\"system:ser"), ("\"system:ser".into(), Want::Value { field: "user".into() }));
        assert_eq!(want("@prod"), ("@prod".into(), Want::Macro));
        assert_eq!(want("code>=4"), ("code>=4".into(), Want::Nothing));
        assert_eq!(want("verb:get | co"), ("co".into(), Want::Stage));
        assert_eq!(want("verb:get | count "), ("".into(), Want::Words(BY)));
        assert_eq!(
            want("verb:get | count by us"),
            ("us".into(), Want::StageField { query_before: "verb:get ".into() })
        );
        assert_eq!(want("| stats p9"), ("p9".into(), Want::Aggregate));
        assert_eq!(want("| stats dc(na"), ("na".into(), Want::StageField { query_before: "".into() }));
        assert_eq!(
            want("| count by ip | sort -co"),
            ("co".into(), Want::StageField { query_before: "| count by ip ".into() })
        );
        assert_eq!(want("x | where ns:pro"), ("pro".into(), Want::Value { field: "ns".into() }));
        assert_eq!(want(".fo"), (".fo".into(), Want::Meta));
        assert_eq!(want(".format c"), ("c".into(), Want::Words(FORMATS)));
        let c = context(".explain verb:de", 16);
        assert_eq!((c.start, c.want), (14, Want::Value { field: "verb".into() }));
        let c = context(".save mine ns:pa", 16);
        assert_eq!((c.start, c.want), (14, Want::Value { field: "ns".into() }));
    }

    #[test]
    fn values_are_quoted_when_needed() {
        assert_eq!(quote_value("prod-payments"), "prod-payments");
        assert_eq!(quote_value("system:serviceaccount:a:b"), "system:serviceaccount:a:b");
        assert_eq!(quote_value("a b"), "\"a b\"");
        assert_eq!(quote_value(""), "\"\"");
        assert_eq!(quote_value("or"), "\"or\"");
        assert_eq!(quote_value("/etc"), "\"/etc\"");
        assert_eq!(quote_value("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
