//! The report as data: sections of paragraphs, charts and tables whose numbers each name the
//! query they come from. The HTML and Markdown writers only lay it out (and escape every text).

/// The whole report.
pub struct Report {
    pub title: String,
    /// Lines under the title: when made, the period, the source.
    pub meta: Vec<(String, String)>,
    /// Things the reader must know (rejected lines, reused auditIDs, an empty period).
    pub notes: Vec<String>,
    /// The first section: requests per area, key figures and the checks' outcomes.
    pub summary_chart: Option<Chart>,
    pub summary: Vec<Grid>,
    pub sections: Vec<Section>,
    /// Every query run, in order (`Q1` is the first), with the command that re-runs it.
    pub queries: Vec<Query>,
}

pub struct Query {
    pub purpose: String,
    /// `kaq query '…' --since … --until … SOURCE`, for a shell.
    pub command: String,
}

pub struct Section {
    /// The anchor (`secrets`), also the prefix of the ids of its numbers.
    pub id: String,
    pub title: String,
    pub paras: Vec<String>,
    pub chart: Option<Chart>,
    pub grids: Vec<Grid>,
}

/// A table.
pub struct Grid {
    pub id: String,
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// The queries its numbers come from (numbers into [`Report::queries`], from 1).
    pub queries: Vec<usize>,
    /// Said under it: rows left out, where the numbers come from.
    pub note: Option<String>,
    /// Said instead of an empty table.
    pub empty: String,
}

pub enum Cell {
    Text(String),
    /// An auditID, a query, a time: shown in a fixed-width font.
    Mono(String),
    /// A number, with the id its element gets (tests and readers find it by).
    Num(u64, Option<String>),
    /// A share, 0–100.
    Pct(f64),
    Status(Status),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Pass,
    Fail,
    /// Part of what the check asks is shown by the log, part not.
    Partial,
    /// The log holds nothing the check could be judged on.
    NotShown,
    /// No judgement: information (alerts fired, or not given).
    Info,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "Pass",
            Status::Fail => "Fail",
            Status::Partial => "Partly shown",
            Status::NotShown => "Not shown by the log",
            Status::Info => "Info",
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Partial => "partial",
            Status::NotShown => "unknown",
            Status::Info => "info",
        }
    }
}

/// How a bar is coloured.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
}

pub enum Chart {
    /// Requests per time bucket, on an axis from `lo` to `hi` (the period's events).
    Timeline { buckets: Vec<(i64, u64)>, interval_us: i64, interval: String, lo: i64, hi: i64, q: usize, what: String },
    /// Horizontal bars, each `value` of `max` (the longest value when `max` is 0).
    Bars { items: Vec<(String, u64, Tone)>, max: u64, q: Vec<usize>, what: String },
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    crate::cli::report::thousands(n)
}
