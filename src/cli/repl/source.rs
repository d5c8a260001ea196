//! What the REPL queries — a store, or files read again for each query — and the values it offers
//! for completion: a store's from its index term dictionaries, files' from a sample read once in
//! the background.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kaq_input::ReadOptions;
use kaq_query::{Plan, Row};

/// Fields whose values are completed (keywords people type whole), in the order `.fields` shows
/// examples for.
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

/// Files larger than this (in total) are not sampled for values: sampling reads them whole.
const SAMPLE_MAX_BYTES: u64 = 256 << 20;
/// Distinct values kept per field from a sample.
const SAMPLE_MAX_VALUES: usize = 20_000;

type Values = HashMap<&'static str, Vec<(String, u64)>>;

/// What the REPL queries ([`kaq::Source`], which runs the queries) and its values for completion.
pub struct Source {
    pub data: kaq::Source,
    /// A store's index term dictionaries.
    terms: Option<kaq_store::Terms>,
    /// Files: their values, sampled in the background.
    sample: Arc<Mutex<Option<Values>>>,
}

/// A query's rows and what it read.
pub struct Answer {
    pub rows: Vec<Row>,
    /// Rows (store, Parquet) or events (logs) read.
    pub read: u64,
    pub rejected: u64,
    /// Matching requests whose auditID another request also carries.
    pub ids_reused: u64,
    /// The earliest and latest event time of the data (a store's), or of the events read (files),
    /// and what the range is of, for [`kaq_query::time_warning`].
    pub data_range: Option<((i64, i64), &'static str)>,
    /// Files: the values of the plan's watched slots among the events read, and whether every
    /// line was read (for [`kaq_query::SeenValues`]).
    pub seen: Option<(kaq_query::scan::Seen, bool)>,
    /// What the steps did that the rows do not show.
    pub notes: Vec<kaq_query::pipeline::Note>,
}

impl Source {
    pub fn store(store: kaq_store::Store) -> Source {
        let terms = store.terms().ok();
        Source { data: kaq::Source::store(store.into()), terms, sample: Arc::new(Mutex::new(None)) }
    }

    /// Files; their values are sampled on a background thread when they are small enough.
    pub fn files(inputs: Vec<PathBuf>) -> Source {
        let sample = Arc::new(Mutex::new(None));
        let total: u64 = inputs.iter().map(|p| size_of(p)).sum();
        if total <= SAMPLE_MAX_BYTES {
            let (inputs, sample) = (inputs.clone(), sample.clone());
            std::thread::Builder::new()
                .name("kaq-sample".into())
                .spawn(move || {
                    let values = sample_values(&inputs);
                    *sample.lock().expect("unpoisoned") = Some(values);
                })
                .expect("spawning a thread");
        }
        Source { data: kaq::Source::Files(inputs), terms: None, sample }
    }

    /// Whether queries read files again each time.
    pub fn is_files(&self) -> bool {
        matches!(self.data, kaq::Source::Files(_))
    }

    /// A line for the banner: what is being queried.
    pub fn describe(&self) -> String {
        match &self.data {
            kaq::Source::Store(store) => {
                format!(
                    "store {} ({} events in {} segment{})",
                    store.dir().display(),
                    super::super::report::thousands(store.records()),
                    store.segments(),
                    if store.segments() == 1 { "" } else { "s" }
                )
            }
            kaq::Source::Files(inputs) => {
                let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
                format!("{} (read again for each query)", names.join(", "))
            }
        }
    }

    pub fn run(&self, plan: &Plan, read: &ReadOptions) -> anyhow::Result<Answer> {
        let query = kaq::Query::from_plan(String::new(), plan.clone());
        let r = self.data.run_with(&query, read, &mut |_| {})?;
        Ok(Answer {
            rows: r.rows,
            read: r.stats.read,
            rejected: r.report.counts.rejected,
            ids_reused: r.stats.ids_reused,
            data_range: r.stats.data_range.map(|d| ((d.lo, d.hi), d.of)),
            seen: r.seen,
            notes: r.notes,
        })
    }

    /// How `plan` runs (over a store, it runs to count each step's rows).
    pub fn explain(&self, plan: &Plan) -> anyhow::Result<kaq::Explain> {
        Ok(self.data.explain(&kaq::Query::from_plan(String::new(), plan.clone()))?)
    }

    /// The most frequent values of `field` (a catalogue name) starting with `prefix` (then those
    /// containing it, any case), with their counts.
    /// Values holding control characters or bidi overrides are left out: the completion menu and
    /// `.fields` would print them as they are, and nobody types them.
    pub fn values(&self, field: &str, prefix: &str, limit: usize) -> Vec<(String, u64)> {
        let shown = |(v, _): &(String, u64)| !kaq_schema::visible::has_hidden(v);
        if !self.is_files() {
            return self
                .terms
                .as_ref()
                .map_or_else(Vec::new, |t| t.top(field, prefix, limit).into_iter().filter(shown).collect());
        }
        let guard = self.sample.lock().expect("unpoisoned");
        let Some(all) = guard.as_ref().and_then(|v| v.get(field)) else { return Vec::new() };
        let lower = prefix.to_lowercase();
        let starts = all.iter().filter(|(v, _)| v.starts_with(prefix));
        let contains = all.iter().filter(|(v, _)| !v.starts_with(prefix) && v.to_lowercase().contains(&lower));
        starts.chain(contains).filter(|v| shown(v)).take(limit).cloned().collect()
    }

    /// What a query's warnings ask before running: a store's values (see [`kaq_store::Terms`]).
    /// Files answer after the scan ([`Answer::seen`]).
    pub fn known_values(&self) -> Option<&dyn kaq_query::KnownValues> {
        self.terms.as_ref().map(|t| t as &dyn kaq_query::KnownValues)
    }

    /// Whether values are known (a store with indexes, or a finished sample).
    pub fn has_values(&self) -> bool {
        if self.is_files() { self.sample.lock().expect("unpoisoned").is_some() } else { self.terms.is_some() }
    }
}

/// Bytes to read, roughly: gzip counted as ten times its size.
fn size_of(p: &std::path::Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p).map_or(0, |d| d.flatten().map(|e| size_of(&e.path())).sum())
    } else {
        let n = std::fs::metadata(p).map_or(0, |m| m.len());
        if kaq_input::is_gzip(p) { n * 10 } else { n }
    }
}

/// Every value of [`VALUE_FIELDS`] in the files, counted, most frequent first.
fn sample_values(inputs: &[PathBuf]) -> Values {
    let mut out = Values::new();
    let query = format!("| table {}", VALUE_FIELDS.join(", "));
    let Ok(plan) = kaq_query::compile(&query, &Default::default()) else { return out };
    let read = ReadOptions { threads: 1, ..ReadOptions::default() };
    let Ok(scanned) = kaq_query::scan::scan(&plan, inputs, &read, 0, &mut |_| {}) else { return out };
    let rows = kaq_query::pipeline::run(&plan.steps.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), scanned.rows);
    for (i, field) in VALUE_FIELDS.iter().enumerate() {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for r in &rows {
            let vals = match &r.vals[i] {
                kaq_query::Val::List(l) => l.iter().map(|v| v.to_text()).collect(),
                kaq_query::Val::Null => Vec::new(),
                v => vec![v.to_text()],
            };
            for v in vals {
                if counts.len() < SAMPLE_MAX_VALUES || counts.contains_key(&v) {
                    *counts.entry(v).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.insert(field, ranked);
    }
    out
}
