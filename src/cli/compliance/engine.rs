//! Running the report's queries: the one place the report calls kaq's engine, over a store or
//! over files, exactly as `kaq query` does (so that its numbers are `kaq query`'s), and the
//! record of every query run, numbered, for the report to print.

use anyhow::{Context, anyhow};
use kaq_input::ReadOptions;
use kaq_query::{Options, Row, Val, compile};

/// Where the events are: a store, or logs and kaq Parquet files read again for each query.
pub type Data = kaq::Source;

/// A query's answer: its columns (by name) and rows.
pub struct Answer {
    /// The number of the query in [`Runner::queries`] (1-based: `Q1`).
    pub q: usize,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// One query the report ran: its text and what it was for.
pub struct Ran {
    pub text: String,
    pub purpose: String,
}

/// Runs queries over [`Data`] with fixed time bounds, and keeps them.
pub struct Runner {
    pub data: Data,
    pub opts: Options,
    pub read: ReadOptions,
    pub queries: Vec<Ran>,
    /// Over files: lines rejected (not audit events), from the first query (every query reads
    /// the same lines).
    pub rejected: Option<u64>,
}

impl Runner {
    pub fn new(data: Data, opts: Options, read: ReadOptions) -> Runner {
        Runner { data, opts, read, queries: Vec::new(), rejected: None }
    }

    /// Runs `text` (the kaq language, bounded by the report's `--since`/`--until`).
    pub fn run(&mut self, text: &str, purpose: &str) -> anyhow::Result<Answer> {
        let plan = compile(text, &self.opts).map_err(|d| {
            let msgs: Vec<String> = d.iter().map(|d| d.render(text)).collect();
            anyhow!("the report's query `{text}` does not compile (a bug in kaq):\n{}", msgs.join("\n"))
        })?;
        let columns: Vec<String> = plan.output_columns().iter().map(|c| c.name.clone()).collect();
        let query = kaq::Query::from_plan(text, plan);
        let answer =
            self.data.run_with(&query, &self.read, &mut |_| {}).with_context(|| format!("running `{text}`"))?;
        if self.data.as_store().is_none() {
            self.rejected.get_or_insert(answer.report.counts.rejected);
        }
        let rows = answer.rows;
        self.queries.push(Ran { text: text.to_string(), purpose: purpose.to_string() });
        Ok(Answer { q: self.queries.len(), columns, rows })
    }
}

impl Answer {
    fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The value of column `name` in row `i` (absent when there is no such row or column).
    pub fn val(&self, i: usize, name: &str) -> &Val<'static> {
        static NULL: Val<'static> = Val::Null;
        match (self.rows.get(i), self.col(name)) {
            (Some(r), Some(c)) => r.vals.get(c).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// An integer cell (a count), 0 when absent.
    pub fn num(&self, i: usize, name: &str) -> u64 {
        match self.val(i, name) {
            Val::Int(n) => (*n).max(0) as u64,
            _ => 0,
        }
    }

    /// A cell as text: times as RFC 3339, absent as the empty string.
    pub fn text(&self, i: usize, name: &str) -> String {
        self.val(i, name).to_display()
    }

    /// The single `count` of a `… | count` query.
    pub fn count(&self) -> u64 {
        self.num(0, "count")
    }
}
