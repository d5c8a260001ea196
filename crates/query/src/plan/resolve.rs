//! Resolution: field names against the catalogue, values against field types, stages against the
//! columns before them. Every problem becomes a [`Diagnostic`] pointing at the spot.

use std::collections::HashMap;

use kaq_schema::{FIELDS, FieldType, lookup};
use kaq_syntax::{
    AggFunc, BoolExpr, CmpOp, Code, Diagnostic, FieldRef, Query, Search, Span, Stage, Term, Value, ValueExpr,
    ValueKind, did_you_mean, parse,
};
use regex::RegexBuilder;

use super::literal::{Cidr, Glob, parse_code_class, parse_duration, parse_time, words};
use super::macros::BUILTIN;
use super::{Agg, Cmp, Column, FieldKey, Lit, Plan, Pred, Step, Test, Ty};

/// What a query is compiled with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// "Now", in microseconds since the epoch, for relative times (`-2h`, `now-1d`).
    pub now_us: i64,
    /// Keep every stage of each request (`--all-stages`).
    pub all_stages: bool,
    /// `--since`: only events at or after this time (text as the user wrote it).
    pub since: Option<String>,
    /// `--until`: only events before this time.
    pub until: Option<String>,
    /// User-defined named queries (`@name` → query text); they override built-in ones.
    pub macros: HashMap<String, String>,
}

/// Parses and resolves `text`. Errors carry spans into `text`; for `--since/--until` the span is
/// empty and the message names the option.
pub fn compile(text: &str, opts: &Options) -> Result<Plan, Vec<Diagnostic>> {
    let query = parse(text)?;
    Resolver::new(opts).plan(&query).map_err(|d| vec![d])
}

type R<T> = Result<T, Diagnostic>;

/// The fields searched by free text: the catalogue's text fields.
fn text_fields() -> impl Iterator<Item = &'static kaq_schema::Field> {
    FIELDS.iter().filter(|f| f.ty == FieldType::Text)
}

/// Fields shown for whole events in a table.
const DISPLAY: &[&str] = &["time", "user", "verb", "resource", "ns", "name", "code"];

struct Resolver<'o> {
    opts: &'o Options,
    slots: Vec<Column>,
    /// Macro names being expanded (to refuse cycles).
    expanding: Vec<String>,
    /// Resolving the search or a leading `where` (where a `stage` condition means "every stage").
    in_filter: bool,
    uses_stage: bool,
}

/// Where references in a stage resolve: event slots (before any shaping stage) or named columns.
enum Scope<'a> {
    Events,
    Columns(&'a [Column]),
}

impl<'o> Resolver<'o> {
    fn new(opts: &'o Options) -> Self {
        Resolver { opts, slots: Vec::new(), expanding: Vec::new(), in_filter: false, uses_stage: false }
    }

    fn plan(mut self, q: &Query) -> R<Plan> {
        let mut filters = Vec::new();
        let mut canonical_search = None;
        self.in_filter = true;
        if let Some(search) = &q.search {
            let expanded = self.expand(search)?;
            canonical_search = Some(expanded.to_string_lossy());
            filters.push(self.pred(&expanded, &Scope::Events, true)?);
        }
        for (opt, op) in [(&self.opts.since, Cmp::Ge), (&self.opts.until, Cmp::Lt)] {
            if let Some(t) = opt {
                let name = if op == Cmp::Ge { "--since" } else { "--until" };
                let (lo, hi) = time_or_ago(t, self.opts.now_us).ok_or_else(|| {
                    Diagnostic::new(Code::InvalidValue, Span::new(0, 0), format!("{name} `{t}` is not a time"))
                        .with_hint("use e.g. 2h (ago), 2026-11-20, 2026-11-20T12:00Z or now-1d")
                })?;
                let time = self.slot(FieldKey::Field(lookup("time").expect("time field")));
                filters.push(Pred::Field { col: time, test: Test::Time(op, lo, hi) });
            }
        }
        // Leading `where`s over events join the scan's filter.
        let mut stages = q.stages.as_slice();
        while let Some(Stage::Where { expr, .. }) = stages.first() {
            filters.push(self.pred(expr, &Scope::Events, false)?);
            stages = &stages[1..];
        }
        self.in_filter = false;
        let mut steps: Vec<(Step, Vec<Column>)> = Vec::new();
        let mut events = true;
        for stage in stages {
            let cols_before: Vec<Column> = steps.last().map(|s| s.1.clone()).unwrap_or_default();
            let (step, cols) = if events {
                self.stage(stage, &Scope::Events)?
            } else {
                self.stage(stage, &Scope::Columns(&cols_before))?
            };
            let cols = match cols {
                Some(c) => {
                    events = false;
                    c
                }
                None if events => Vec::new(),
                None => cols_before,
            };
            steps.push((step, cols));
        }
        let display = if events {
            DISPLAY.iter().map(|n| self.slot(FieldKey::Field(lookup(n).expect("display field")))).collect()
        } else {
            Vec::new()
        };
        // Steps over events carry the final slot list as their columns.
        if events {
            for s in &mut steps {
                s.1 = self.slots.clone();
            }
        }
        let filter = match filters.len() {
            0 => Pred::Const(true),
            1 => filters.pop().expect("one"),
            _ => Pred::And(filters),
        };
        let prefilter = super::super::prefilter::required(&filter, &self.slots).unwrap_or_default();
        let mut canonical = canonical_search.unwrap_or_default();
        for s in &q.stages {
            canonical.push_str(if canonical.is_empty() { "| " } else { " | " });
            canonical.push_str(&s.to_string());
        }
        Ok(Plan {
            slots: self.slots,
            filter,
            all_stages: self.opts.all_stages || self.uses_stage,
            steps,
            whole_events: events,
            display,
            prefilter,
            canonical,
            reused_ids: None,
            watch: Vec::new(),
        })
    }

    /// Replaces `@name` terms by the search of the query they name.
    fn expand(&mut self, s: &Search) -> R<Search> {
        Ok(match s {
            BoolExpr::Leaf(Term::Macro(m)) => {
                let name = &m.node;
                let text = self
                    .opts
                    .macros
                    .get(name)
                    .map(String::as_str)
                    .or_else(|| BUILTIN.iter().find(|(n, _, _)| n == name).map(|(_, q, _)| *q))
                    .ok_or_else(|| {
                        let mut names: Vec<&str> = BUILTIN.iter().map(|(n, _, _)| *n).collect();
                        names.extend(self.opts.macros.keys().map(String::as_str));
                        let d = Diagnostic::new(Code::UnknownMacro, m.span, format!("no named query `@{name}`"));
                        match did_you_mean(name, &names) {
                            Some(s) => d.with_hint(format!("did you mean `@{s}`?")),
                            None => d.with_hint(format!("named queries: {}", names.join(", "))),
                        }
                    })?;
                if self.expanding.contains(name) || self.expanding.len() >= 8 {
                    return Err(Diagnostic::new(Code::BadMacro, m.span, format!("`@{name}` refers to itself")));
                }
                let inner = parse(text).map_err(|e| {
                    Diagnostic::new(Code::BadMacro, m.span, format!("`@{name}` does not parse: {}", e[0].message))
                })?;
                if !inner.stages.is_empty() || inner.search.is_none() {
                    return Err(Diagnostic::new(
                        Code::BadMacro,
                        m.span,
                        format!("`@{name}` is `{text}`, which is not a plain search (it has stages)"),
                    ));
                }
                self.expanding.push(name.clone());
                let search = inner.search.expect("checked");
                // Errors inside the macro's text would point into another string: point at the
                // `@name` instead.
                let out = self.expand(&search).map_err(|mut d| {
                    d.message = format!("in `@{name}` (`{text}`): {}", d.message);
                    d.span = m.span;
                    d.labels.clear();
                    d
                })?;
                self.expanding.pop();
                // Resolve now to report errors at the macro; keep the (respanned) tree.
                let mut probe = Resolver::new(self.opts);
                probe.pred(&out, &Scope::Events, true).map_err(|mut d| {
                    d.message = format!("in `@{name}` (`{text}`): {}", d.message);
                    d.span = m.span;
                    d.labels.clear();
                    d
                })?;
                out
            }
            BoolExpr::Leaf(t) => BoolExpr::Leaf(t.clone()),
            BoolExpr::Not { inner, span } => BoolExpr::Not { inner: Box::new(self.expand(inner)?), span: *span },
            BoolExpr::And { items, span } => {
                BoolExpr::And { items: items.iter().map(|i| self.expand(i)).collect::<R<_>>()?, span: *span }
            }
            BoolExpr::Or { items, span } => {
                BoolExpr::Or { items: items.iter().map(|i| self.expand(i)).collect::<R<_>>()?, span: *span }
            }
        })
    }

    /// The slot holding `key`, added if new.
    fn slot(&mut self, key: FieldKey) -> usize {
        if let Some(i) = self.slots.iter().position(|c| c.key.as_ref() == Some(&key)) {
            return i;
        }
        self.slots.push(Column { name: key.to_string(), ty: key.ty(), list: key.is_list(), key: Some(key) });
        self.slots.len() - 1
    }

    /// Resolves a field reference to an event field.
    fn field_key(&self, f: &FieldRef) -> R<FieldKey> {
        let segs = &f.segments;
        let dotted = f.dotted();
        if let Some(field) = lookup(&dotted) {
            return Ok(FieldKey::Field(field));
        }
        let head = segs[0].as_str();
        let rest = || segs[1..].to_vec();
        match head {
            "annotations" if segs.len() == 2 => return Ok(FieldKey::Annotation(segs[1].clone())),
            "annotations" => {
                return Err(Diagnostic::new(
                    Code::UnsupportedOperation,
                    f.span,
                    format!("`{dotted}`: annotations take one quoted key"),
                )
                .with_hint("write annotations.\"authorization.k8s.io/decision\""));
            }
            "extra" | "as_extra" if segs.len() >= 2 => {
                return Ok(FieldKey::Extra { impersonated: head == "as_extra", key: segs[1..].join(".") });
            }
            "request" | "requestObject" => return Ok(FieldKey::Json { response: false, path: rest() }),
            "response" | "responseObject" => return Ok(FieldKey::Json { response: true, path: rest() }),
            _ => {}
        }
        if segs.len() > 2 && (dotted.starts_with("user.extra.") || dotted.starts_with("impersonatedUser.extra.")) {
            let impersonated = head == "impersonatedUser";
            return Ok(FieldKey::Extra { impersonated, key: segs[2..].join(".") });
        }
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        names.extend(FIELDS.iter().flat_map(|f| f.aliases.iter().copied()));
        let d = Diagnostic::new(Code::UnknownField, f.span, format!("unknown field `{dotted}`"));
        Err(match did_you_mean(&dotted, &names).or_else(|| did_you_mean(head, &names)) {
            Some(s) => d.with_hint(format!("did you mean `{}`?", lookup(s).map_or(s, |f| f.name))),
            None => d.with_hint("`.fields` in the REPL, or docs/query.md, lists every field"),
        })
    }

    /// Resolves a reference in `scope` to a column index.
    fn column(&mut self, f: &FieldRef, scope: &Scope<'_>) -> R<usize> {
        match scope {
            Scope::Events => {
                let key = self.field_key(f)?;
                if self.in_filter && key == FieldKey::Field(lookup("stage").expect("stage")) {
                    self.uses_stage = true;
                }
                Ok(self.slot(key))
            }
            Scope::Columns(cols) => {
                let dotted = f.dotted();
                if let Some(i) = cols.iter().position(|c| c.name == dotted) {
                    return Ok(i);
                }
                if let Ok(key) = self.field_key(f)
                    && let Some(i) = cols.iter().position(|c| c.key.as_ref() == Some(&key))
                {
                    return Ok(i);
                }
                let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
                let d = Diagnostic::new(
                    Code::UnknownColumn,
                    f.span,
                    format!("no column `{dotted}` here; the previous stage gives {}", list(&names)),
                );
                Err(match did_you_mean(&dotted, &names) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d,
                })
            }
        }
    }

    fn col_info(&self, i: usize, scope: &Scope<'_>) -> Column {
        match scope {
            Scope::Events => self.slots[i].clone(),
            Scope::Columns(c) => c[i].clone(),
        }
    }

    /// A search or `where` condition.
    fn pred(&mut self, s: &Search, scope: &Scope<'_>, allow_text: bool) -> R<Pred> {
        Ok(match s {
            BoolExpr::Leaf(t) => self.term(t, scope, allow_text)?,
            BoolExpr::Not { inner, .. } => Pred::Not(Box::new(self.pred(inner, scope, allow_text)?)),
            BoolExpr::And { items, .. } => {
                Pred::And(items.iter().map(|i| self.pred(i, scope, allow_text)).collect::<R<_>>()?)
            }
            BoolExpr::Or { items, .. } => {
                Pred::Or(items.iter().map(|i| self.pred(i, scope, allow_text)).collect::<R<_>>()?)
            }
        })
    }

    fn term(&mut self, t: &Term, scope: &Scope<'_>, allow_text: bool) -> R<Pred> {
        match t {
            Term::Match { field, value, .. } => {
                let col = self.column(field, scope)?;
                let info = self.col_info(col, scope);
                self.value_pred(col, &info, field, value)
            }
            Term::Compare { field, op, value, .. } => {
                let col = self.column(field, scope)?;
                let info = self.col_info(col, scope);
                let (cmp, negate) = match op.node {
                    CmpOp::Eq => (Cmp::Eq, false),
                    CmpOp::Ne => (Cmp::Eq, true),
                    CmpOp::Lt => (Cmp::Lt, false),
                    CmpOp::Le => (Cmp::Le, false),
                    CmpOp::Gt => (Cmp::Gt, false),
                    CmpOp::Ge => (Cmp::Ge, false),
                };
                let test = compare_test(&info, field, cmp, op, value, self.opts.now_us)?;
                let p = Pred::Field { col, test };
                Ok(if negate { Pred::Not(Box::new(p)) } else { p })
            }
            Term::Text(v) if allow_text && matches!(scope, Scope::Events) => {
                let cols: Vec<usize> = text_fields().map(|f| self.slot(FieldKey::Field(f))).collect();
                let test = match &v.kind {
                    ValueKind::Regex { pattern } => Test::Regex(regex(pattern, v.span)?),
                    ValueKind::Bare { text, has_wildcard: true } => Test::WordGlob(Glob::new(&text.to_lowercase())),
                    ValueKind::Bare { text, .. } | ValueKind::Quoted { text } => words_test(text),
                    ValueKind::Exists => Test::Exists,
                };
                Ok(Pred::Text { cols, test })
            }
            Term::Text(v) => Err(Diagnostic::new(
                Code::TextInWhere,
                v.span,
                "free text searches events; after a table or an aggregation name a column",
            )),
            Term::Macro(m) => Err(Diagnostic::new(
                Code::TextInWhere,
                m.span,
                format!("`@{}` can only be used in the search, before the first `|`", m.node),
            )),
        }
    }

    /// `field:VALUE` where VALUE may be a group `(a OR b)`.
    fn value_pred(&self, col: usize, info: &Column, field: &FieldRef, v: &ValueExpr) -> R<Pred> {
        Ok(match v {
            BoolExpr::Leaf(v) => Pred::Field { col, test: match_test(info, field, v, self.opts.now_us)? },
            BoolExpr::Not { inner, .. } => Pred::Not(Box::new(self.value_pred(col, info, field, inner)?)),
            BoolExpr::And { items, .. } => {
                Pred::And(items.iter().map(|i| self.value_pred(col, info, field, i)).collect::<R<_>>()?)
            }
            BoolExpr::Or { items, .. } => {
                Pred::Or(items.iter().map(|i| self.value_pred(col, info, field, i)).collect::<R<_>>()?)
            }
        })
    }

    fn columns(&mut self, fields: &[FieldRef], scope: &Scope<'_>) -> R<Vec<usize>> {
        fields.iter().map(|f| self.column(f, scope)).collect()
    }

    /// Resolves one stage; the columns are `Some` when the stage shapes new rows.
    fn stage(&mut self, s: &Stage, scope: &Scope<'_>) -> R<(Step, Option<Vec<Column>>)> {
        let named = |this: &Self, f: &FieldRef, i: usize| {
            let mut c = this.col_info(i, scope);
            c.name = f.dotted();
            c
        };
        Ok(match s {
            Stage::Where { expr, .. } => (Step::Where(self.pred(expr, scope, false)?), None),
            Stage::Table { fields, .. } => {
                let cols = self.columns(fields, scope)?;
                let out = fields.iter().zip(&cols).map(|(f, &i)| named(self, f, i)).collect();
                (Step::Table(cols), Some(out))
            }
            Stage::Sort { keys, .. } => {
                let mut out = Vec::new();
                for k in keys {
                    out.push((self.column(&k.field, scope)?, k.descending));
                }
                (Step::Sort(out), None)
            }
            Stage::Head { limit, .. } => (Step::Head(limit.as_ref().map_or(10, |l| l.node as usize)), None),
            Stage::Dedup { fields, .. } => (Step::Dedup(self.columns(fields, scope)?), None),
            Stage::Count { by, .. } => {
                let cols = self.columns(by, scope)?;
                let mut out: Vec<Column> =
                    by.iter().zip(&cols).map(|(f, &i)| Column { list: false, ..named(self, f, i) }).collect();
                out.push(Column { name: "count".into(), key: None, ty: Ty::Int, list: false });
                (Step::Aggregate { by: cols, aggs: vec![Agg { func: AggFunc::Count, col: None }] }, Some(out))
            }
            Stage::Stats { aggregates, by, .. } => {
                let cols = self.columns(by, scope)?;
                let mut out: Vec<Column> =
                    by.iter().zip(&cols).map(|(f, &i)| Column { list: false, ..named(self, f, i) }).collect();
                let mut aggs = Vec::new();
                for a in aggregates {
                    let col = match &a.field {
                        Some(f) => Some(self.column(f, scope)?),
                        None => None,
                    };
                    let arg = col.map(|c| self.col_info(c, scope));
                    let ty = agg_type(a.func.node, arg.as_ref(), a.func.span)?;
                    let name = match (&a.alias, &a.field) {
                        (Some(alias), _) => alias.node.clone(),
                        (None, Some(f)) => format!("{}({})", a.func.node.as_str(), f.dotted()),
                        (None, None) => a.func.node.as_str().to_string(),
                    };
                    out.push(Column { name, key: None, ty, list: false });
                    aggs.push(Agg { func: a.func.node, col });
                }
                (Step::Aggregate { by: cols, aggs }, Some(out))
            }
            Stage::Top { limit, field, by, .. } | Stage::Rare { limit, field, by, .. } => {
                let rare = matches!(s, Stage::Rare { .. });
                let by_cols = self.columns(by, scope)?;
                let col = self.column(field, scope)?;
                let mut out: Vec<Column> =
                    by.iter().zip(&by_cols).map(|(f, &i)| Column { list: false, ..named(self, f, i) }).collect();
                out.push(Column { list: false, ..named(self, field, col) });
                out.push(Column { name: "count".into(), key: None, ty: Ty::Int, list: false });
                out.push(Column { name: "percent".into(), key: None, ty: Ty::Float, list: false });
                (Step::Top { limit: limit.node as usize, col, by: by_cols, rare }, Some(out))
            }
            Stage::Timeline { interval, by, .. } => {
                let width = parse_duration(&interval.node).filter(|d| *d > 0).ok_or_else(|| {
                    Diagnostic::new(
                        Code::InvalidValue,
                        interval.span,
                        format!("`{}` is not a bucket width", interval.node),
                    )
                    .with_hint("use a duration such as 30s, 5m, 1h or 1d")
                })?;
                let time = match scope {
                    Scope::Events => self.slot(FieldKey::Field(lookup("time").expect("time"))),
                    Scope::Columns(cols) => {
                        cols.iter().position(|c| c.name == "time" && c.ty == Ty::Time).ok_or_else(|| {
                            Diagnostic::new(Code::UnknownColumn, s.span(), "`timeline` needs a `time` column here")
                                .with_hint("keep `time` in the table, or name a time `as time`")
                        })?
                    }
                };
                let by_col = match by {
                    Some(f) => Some(self.column(f, scope)?),
                    None => None,
                };
                let mut out = vec![Column { name: "time".into(), key: None, ty: Ty::Time, list: false }];
                if let (Some(f), Some(i)) = (by, by_col) {
                    out.push(Column { list: false, ..named(self, f, i) });
                }
                out.push(Column { name: "count".into(), key: None, ty: Ty::Int, list: false });
                (Step::Timeline { interval: width, col: time, by: by_col }, Some(out))
            }
        })
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        return "no columns".into();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// `--since 2h` means two hours ago; any time form works too.
fn time_or_ago(t: &str, now: i64) -> Option<(i64, i64)> {
    if let Some(d) = parse_duration(t).filter(|_| !t.contains('-') && !t.contains(':')) {
        let at = now.checked_sub(d)?;
        return Some((at, at + 1));
    }
    parse_time(t, now)
}

fn regex(pattern: &str, span: Span) -> R<regex::Regex> {
    RegexBuilder::new(pattern).size_limit(1 << 20).dfa_size_limit(4 << 20).build().map_err(|e| {
        let msg = e.to_string();
        let last = msg.lines().last().unwrap_or("invalid").trim();
        let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
        Diagnostic::new(Code::InvalidValue, span, format!("invalid regex: {last}"))
    })
}

fn words_test(text: &str) -> Test {
    let w: Vec<String> = words(text).collect();
    if w.is_empty() { Test::Eq(text.to_string()) } else { Test::Words(w) }
}

fn bad_value(v: &Value, field: &FieldRef, ty: Ty, hint: &str) -> Diagnostic {
    let text = match &v.kind {
        ValueKind::Bare { text, .. } | ValueKind::Quoted { text } => text.clone(),
        ValueKind::Regex { pattern } => format!("/{pattern}/"),
        ValueKind::Exists => "*".into(),
    };
    let what = match ty {
        Ty::Int => "an integer",
        Ty::Float => "a number",
        Ty::Dur => "a duration",
        Ty::Time => "a time",
        Ty::Bool => "true or false",
        Ty::Ip => "an address or CIDR block",
        _ => "a value of its type",
    };
    Diagnostic::new(Code::InvalidValue, v.span, format!("`{text}` is not {what}"))
        .with_label(field.span, format!("`{}` is {} field", field.dotted(), article(ty.name())))
        .with_hint(hint.to_string())
}

/// "an integer", "a keyword".
fn article(word: &str) -> String {
    let an = word.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {word}", if an { "an" } else { "a" })
}

fn hint_for(ty: Ty) -> &'static str {
    match ty {
        Ty::Time => "write a time: 2026-11-20T05:00:00Z, 2026-11-20, 2026-11-20T05:30, now-2h or -2h",
        Ty::Dur => "write a duration: 500ms, 1.5s, 2m, 1h",
        Ty::Int | Ty::Float => "write a number (for status codes, 4xx also works)",
        Ty::Bool => "write true or false",
        Ty::Ip => "write an address (203.0.113.45) or a CIDR block (203.0.113.0/24)",
        _ => "",
    }
}

/// The test for `field:value`.
fn match_test(info: &Column, field: &FieldRef, v: &Value, now: i64) -> R<Test> {
    let ty = info.ty;
    let text = match &v.kind {
        ValueKind::Exists => return Ok(Test::Exists),
        ValueKind::Regex { pattern } => {
            return if ty == Ty::Object {
                Err(object_only_exists(field))
            } else {
                Ok(Test::Regex(regex(pattern, v.span)?))
            };
        }
        ValueKind::Bare { text, has_wildcard: true } => {
            return match ty {
                Ty::Object => Err(object_only_exists(field)),
                Ty::Text => Ok(Test::WordGlob(Glob::new(&text.to_lowercase()))),
                _ => Ok(Test::Glob(Glob::new(text))),
            };
        }
        ValueKind::Bare { text, .. } => text,
        ValueKind::Quoted { text } => {
            return match ty {
                Ty::Text => Ok(words_test(text)),
                Ty::Object => Err(object_only_exists(field)),
                Ty::Any => Ok(Test::Dynamic(text.clone())),
                Ty::Keyword | Ty::Ip | Ty::List => Ok(Test::Eq(text.clone())),
                _ => typed_match(ty, info, field, v, text, now),
            };
        }
    };
    match ty {
        Ty::Keyword | Ty::List => Ok(Test::Eq(text.clone())),
        Ty::Text => Ok(words_test(text)),
        Ty::Any => Ok(Test::Dynamic(text.clone())),
        Ty::Object => Err(object_only_exists(field)),
        _ => typed_match(ty, info, field, v, text, now),
    }
}

fn typed_match(ty: Ty, _info: &Column, field: &FieldRef, v: &Value, text: &str, now: i64) -> R<Test> {
    let bad = || bad_value(v, field, ty, hint_for(ty));
    match ty {
        Ty::Int => {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Test::IntRange(n, n));
            }
            if let Some((lo, hi)) = parse_code_class(text) {
                return Ok(Test::IntRange(lo, hi));
            }
            match text.parse::<f64>() {
                Ok(f) => Ok(Test::Cmp(Cmp::Eq, Lit::Num(f))),
                Err(_) => Err(bad()),
            }
        }
        Ty::Float => text.parse::<f64>().map(|f| Test::Cmp(Cmp::Eq, Lit::Num(f))).map_err(|_| bad()),
        Ty::Dur => parse_duration(text).map(|d| Test::Cmp(Cmp::Eq, Lit::Dur(d))).ok_or_else(bad),
        Ty::Time => parse_time(text, now).map(|(lo, hi)| Test::Time(Cmp::Eq, lo, hi)).ok_or_else(bad),
        Ty::Bool => parse_bool(text).map(Test::Bool).ok_or_else(bad),
        Ty::Ip => {
            if let Ok(ip) = text.parse() {
                return Ok(Test::Ip(super::literal::normalize(ip)));
            }
            if text.contains('/') {
                return Cidr::parse(text).map(Test::Cidr).ok_or_else(bad);
            }
            Err(bad())
        }
        _ => Ok(Test::Eq(text.to_string())),
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn object_only_exists(field: &FieldRef) -> Diagnostic {
    Diagnostic::new(
        Code::UnsupportedOperation,
        field.span,
        format!("`{}` is an object: only `{}:*` (present) applies to it", field.dotted(), field.dotted()),
    )
    .with_hint(match field.segments[0].as_str() {
        "annotations" => "match one annotation: annotations.\"authorization.k8s.io/decision\":forbid",
        _ => "match a path inside it, e.g. request.spec.replicas>3",
    })
}

/// The test for `field OP value`.
fn compare_test(
    info: &Column,
    field: &FieldRef,
    cmp: Cmp,
    op: &kaq_syntax::Spanned<CmpOp>,
    v: &Value,
    now: i64,
) -> R<Test> {
    let (op_span, op) = (op.span, op.node.as_str());
    let text = match &v.kind {
        ValueKind::Bare { text, .. } | ValueKind::Quoted { text } => text.as_str(),
        _ => return Err(bad_value(v, field, info.ty, "comparisons take one plain value")),
    };
    let ty = info.ty;
    let bad = || bad_value(v, field, ty, hint_for(ty));
    let unsupported = || {
        Diagnostic::new(
            Code::UnsupportedOperation,
            op_span,
            format!("`{}` is {}: `{op}` does not apply", field.dotted(), article(ty.name())),
        )
        .with_label(field.span, format!("`{}` is {} field", field.dotted(), article(ty.name())))
        .with_hint(format!("use {}:VALUE", field.dotted()))
    };
    match ty {
        Ty::Int | Ty::Float => text.parse::<f64>().map(|f| Test::Cmp(cmp, Lit::Num(f))).map_err(|_| bad()),
        Ty::Dur => parse_duration(text).map(|d| Test::Cmp(cmp, Lit::Dur(d))).ok_or_else(bad),
        Ty::Time => parse_time(text, now).map(|(lo, hi)| Test::Time(cmp, lo, hi)).ok_or_else(bad),
        Ty::Bool if cmp == Cmp::Eq => parse_bool(text).map(Test::Bool).ok_or_else(bad),
        Ty::Bool | Ty::Object => Err(unsupported()),
        Ty::Ip if cmp == Cmp::Eq => match text.parse() {
            Ok(ip) => Ok(Test::Ip(super::literal::normalize(ip))),
            Err(_) => Ok(Test::Eq(text.to_string())),
        },
        Ty::Keyword | Ty::Text | Ty::Ip | Ty::List => Ok(Test::Cmp(cmp, Lit::Str(text.to_string()))),
        Ty::Any => Ok(Test::Cmp(cmp, Lit::Dynamic(text.to_string()))),
    }
}

/// The type of an aggregate's result, or why it does not apply.
fn agg_type(f: AggFunc, arg: Option<&Column>, span: Span) -> R<Ty> {
    let Some(arg) = arg else { return Ok(Ty::Int) }; // bare count
    let numeric = matches!(arg.ty, Ty::Int | Ty::Float | Ty::Dur | Ty::Any);
    let refuse = || {
        Diagnostic::new(
            Code::UnsupportedOperation,
            span,
            format!("`{}` needs numbers or durations; `{}` is a {}", f.as_str(), arg.name, arg.ty.name()),
        )
    };
    Ok(match f {
        AggFunc::Count | AggFunc::Dc => Ty::Int,
        AggFunc::Values => Ty::List,
        AggFunc::Min | AggFunc::Max => arg.ty,
        AggFunc::Avg => match arg.ty {
            Ty::Dur => Ty::Dur,
            _ if numeric => Ty::Float,
            _ => return Err(refuse()),
        },
        AggFunc::Sum => match arg.ty {
            Ty::Dur => Ty::Dur,
            Ty::Int => Ty::Int,
            _ if numeric => Ty::Float,
            _ => return Err(refuse()),
        },
        AggFunc::P50 | AggFunc::P90 | AggFunc::P95 | AggFunc::P99 => match arg.ty {
            Ty::Time | Ty::Dur | Ty::Int | Ty::Float | Ty::Any => arg.ty,
            _ => return Err(refuse()),
        },
    })
}

/// Canonical text of a search (used by `--explain`).
trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl Lossy for Search {
    fn to_string_lossy(&self) -> String {
        let q = Query { search: Some(self.clone()), stages: Vec::new(), span: Span::new(0, 0) };
        q.to_string()
    }
}
