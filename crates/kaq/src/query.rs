//! A query, compiled once.

use std::collections::BTreeMap;
use std::fmt;

use kaq_query::Plan;
use kaq_syntax::Diagnostic;

/// How a query's text is read.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Keep every record of a request instead of its latest stage (`kaq query --all-stages`).
    pub all_stages: bool,
    /// `--since` / `--until`: a time (RFC 3339, a date) or an age (`30m`, `2h`, `7d`) before now.
    pub since: Option<String>,
    pub until: Option<String>,
    /// "Now", for relative times (µs since the epoch); 0 means the current time.
    pub now_us: i64,
    /// Named searches usable as `@name` besides the built-in ones (name without `@` → query).
    pub named: BTreeMap<String, String>,
}

/// A compiled query: checked, its fields resolved against the catalogue, its `@names` expanded.
/// Compile once, run on any [`Source`](crate::Source) any number of times.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    plan: Plan,
}

impl Query {
    /// Compiles `text` with the default options (latest stage of each request, no time bounds).
    pub fn new(text: impl Into<String>) -> Result<Query, QueryError> {
        Query::with_options(text, &QueryOptions::default())
    }

    /// Compiles `text` with `opts`.
    pub fn with_options(text: impl Into<String>, opts: &QueryOptions) -> Result<Query, QueryError> {
        let text = text.into();
        let now_us = if opts.now_us == 0 { now_us() } else { opts.now_us };
        let o = kaq_query::Options {
            now_us,
            all_stages: opts.all_stages,
            since: opts.since.clone(),
            until: opts.until.clone(),
            macros: opts.named.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        match kaq_query::compile(&text, &o) {
            Ok(plan) => Ok(Query { text, plan }),
            Err(diagnostics) => Err(QueryError::new(text, diagnostics)),
        }
    }

    /// Wraps a plan compiled with `kaq_query::compile` (for callers that need its options).
    pub fn from_plan(text: impl Into<String>, plan: Plan) -> Query {
        Query { text: text.into(), plan }
    }

    /// The text as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The compiled plan (filter, stages, columns), as the engine runs it.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The answer's columns, in order.
    pub fn columns(&self) -> &[kaq_query::Column] {
        self.plan.output_columns()
    }

    /// Whether rows are whole events (no `table` or aggregation): each [`Row`](crate::Row) then
    /// carries the event's JSON.
    pub fn whole_events(&self) -> bool {
        self.plan.whole_events
    }

    /// Whether every record is kept, not only the latest stage of each request.
    pub fn all_stages(&self) -> bool {
        self.plan.all_stages
    }

    /// The catalogue fields the query reads, each once (`user`, `ip`, `request.spec.replicas`,
    /// …), in the order the compiled plan holds them.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.plan.slots {
            if s.key.is_some() && !out.contains(&s.name.as_str()) {
                out.push(&s.name);
            }
        }
        out
    }

    /// The pipeline's stages after the search as written, by name (`where`, `table`, `count`,
    /// `stats`, `timeline`, …; `table` for `fields`).
    pub fn stages(&self) -> Vec<&'static str> {
        kaq_syntax::parse(&self.text).map_or_else(|_| Vec::new(), |q| q.stages.iter().map(|s| s.name()).collect())
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A query that does not compile: each mistake with its span in the text, and hints.
#[derive(Debug, Clone)]
pub struct QueryError {
    text: String,
    diagnostics: Vec<Diagnostic>,
}

impl QueryError {
    pub(crate) fn new(text: String, diagnostics: Vec<Diagnostic>) -> QueryError {
        QueryError { text, diagnostics }
    }

    /// The query's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every mistake found (at least one), in order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The mistakes shown under the text, with carets and hints (plain text, no colour).
    pub fn render(&self) -> String {
        self.diagnostics.iter().map(|d| d.render(&self.text)).collect::<Vec<_>>().join("\n")
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diagnostics.first() {
            Some(d) => write!(f, "{} (at {}..{} of the query)", d.message, d.span.start, d.span.end),
            None => write!(f, "the query does not compile"),
        }
    }
}

impl std::error::Error for QueryError {}
