//! The planner: a parsed query ([`kaq_syntax::Query`]) resolved against the field catalogue into a
//! [`Plan`] — which values to take from each event (slots), a typed filter over them, and the
//! stages that follow, each over the columns the previous one produced.

pub mod literal;
pub mod macros;
mod resolve;

use std::fmt;

use kaq_schema::{Field, FieldType};
use regex::Regex;

use crate::plan::literal::{Cidr, Glob};

pub use resolve::{Options, compile};

/// What a slot takes from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKey {
    /// A catalogue field.
    Field(&'static Field),
    /// `annotations."KEY"`.
    Annotation(String),
    /// `extra.KEY` (or `as_extra.KEY` for the impersonated user): a list of strings.
    Extra { impersonated: bool, key: String },
    /// `request.PATH` / `response.PATH` into the request or response body; through arrays, a path
    /// reaches every element. An empty path is the whole body.
    Json { response: bool, path: Vec<String> },
}

impl FieldKey {
    /// The type of the value it gives.
    pub fn ty(&self) -> Ty {
        match self {
            FieldKey::Field(f) => Ty::of(f.ty),
            FieldKey::Annotation(_) | FieldKey::Extra { .. } => Ty::Keyword,
            FieldKey::Json { path, .. } if path.is_empty() => Ty::Object,
            FieldKey::Json { .. } => Ty::Any,
        }
    }

    /// Whether the value is a list (conditions hold when any element matches).
    pub fn is_list(&self) -> bool {
        match self {
            FieldKey::Field(f) => f.list,
            FieldKey::Extra { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seg = |s: &str| {
            if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                s.to_string()
            } else {
                format!("{s:?}")
            }
        };
        match self {
            FieldKey::Field(x) => f.write_str(x.name),
            FieldKey::Annotation(k) => write!(f, "annotations.{}", seg(k)),
            FieldKey::Extra { impersonated, key } => {
                write!(f, "{}.{}", if *impersonated { "as_extra" } else { "extra" }, seg(key))
            }
            FieldKey::Json { response, path } => {
                f.write_str(if *response { "response" } else { "request" })?;
                path.iter().try_for_each(|p| write!(f, ".{}", seg(p)))
            }
        }
    }
}

/// The type of a slot or column, as conditions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Time,
    Dur,
    Keyword,
    Text,
    Int,
    Float,
    Bool,
    Ip,
    /// `annotations` or a whole body: only `:*` applies.
    Object,
    /// A JSON value of unknown type (`request.PATH`).
    Any,
    /// `values(f)`: a list of anything.
    List,
}

impl Ty {
    pub fn of(t: FieldType) -> Ty {
        match t {
            FieldType::Timestamp => Ty::Time,
            FieldType::Duration => Ty::Dur,
            FieldType::Keyword => Ty::Keyword,
            FieldType::Text => Ty::Text,
            FieldType::Integer => Ty::Int,
            FieldType::Bool => Ty::Bool,
            FieldType::Ip => Ty::Ip,
            FieldType::KeywordMap | FieldType::Json => Ty::Object,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ty::Time => "timestamp",
            Ty::Dur => "duration",
            Ty::Keyword => "keyword",
            Ty::Text => "text",
            Ty::Int => "integer",
            Ty::Float => "number",
            Ty::Bool => "bool",
            Ty::Ip => "ip",
            Ty::Object => "object",
            Ty::Any => "json",
            Ty::List => "list",
        }
    }
}

/// A boolean condition over the slots of an event or the columns of a row.
#[derive(Debug, Clone)]
pub enum Pred {
    Const(bool),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    /// A test of one column; on a list, true when any element passes.
    Field {
        col: usize,
        test: Test,
    },
    /// Free text: true when the test passes on any of the (text) columns.
    Text {
        cols: Vec<usize>,
        test: Test,
    },
}

/// A test of one value.
#[derive(Debug, Clone)]
pub enum Test {
    /// Present: not null, not an empty string, not an empty list.
    Exists,
    /// The value's text equals this exactly.
    Eq(String),
    /// The value's text matches this `*`/`?` pattern whole.
    Glob(Glob),
    /// The regex matches somewhere in the value's text (unanchored; `^…$` to anchor).
    Regex(Regex),
    /// Text search: the value's words contain these words in a row (lowercased).
    Words(Vec<String>),
    /// Text search with wildcards: some word of the value, or the whole value, matches
    /// (case-insensitively).
    WordGlob(Glob),
    /// A number in `lo..=hi` (`code:401`, `code:4xx`).
    IntRange(i64, i64),
    /// A time in `lo..hi`, compared by `op`: `=` is inside, `<`/`>=` compare with `lo`, `>`/`<=` with
    /// `hi` (so `time<=2026-11-20` includes that whole day).
    Time(Cmp, i64, i64),
    /// A typed comparison.
    Cmp(Cmp, Lit),
    Ip(std::net::IpAddr),
    Cidr(Cidr),
    Bool(bool),
    /// A JSON value equal to this text: as a string, as a number, or as `true`/`false`/`null`.
    Dynamic(String),
}

/// A comparison operator (`!=` is compiled as `NOT =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn as_str(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Eq => o == Equal,
            Cmp::Lt => o == Less,
            Cmp::Le => o != Greater,
            Cmp::Gt => o == Greater,
            Cmp::Ge => o != Less,
        }
    }
}

/// The right-hand side of a typed comparison.
#[derive(Debug, Clone)]
pub enum Lit {
    Num(f64),
    Dur(i64),
    Str(String),
    /// Compared as a number when both sides are numbers, else as text.
    Dynamic(String),
}

/// One value or column: its name in output, where it comes from and its type.
#[derive(Debug, Clone)]
pub struct Column {
    /// The name as written (`ip`, `p99(latency)`, an `as` alias).
    pub name: String,
    /// The event field it holds, when it holds one (for matching references by field).
    pub key: Option<FieldKey>,
    pub ty: Ty,
    /// A list value (before any group-by fanned it out).
    pub list: bool,
}

/// A `stats` aggregate.
#[derive(Debug, Clone)]
pub struct Agg {
    pub func: kaq_syntax::AggFunc,
    /// The column aggregated; `None` for a bare `count`.
    pub col: Option<usize>,
}

/// One stage after the scan.
#[derive(Debug, Clone)]
pub enum Step {
    Where(Pred),
    /// `table`: these columns, in this order (events become rows).
    Table(Vec<usize>),
    /// Stable sort by these columns (`true`: descending); nulls last.
    Sort(Vec<(usize, bool)>),
    Head(usize),
    /// The first row of each combination of these columns.
    Dedup(Vec<usize>),
    /// `count`/`stats`: groups by `by` (list columns fan out: one membership per distinct element),
    /// then the aggregates; rows ordered by group key.
    Aggregate {
        by: Vec<usize>,
        aggs: Vec<Agg>,
    },
    /// `top`/`rare`: the `limit` most (least) frequent values of `col` per `by` group, with count
    /// and percent of the group's rows.
    Top {
        limit: usize,
        col: usize,
        by: Vec<usize>,
        rare: bool,
    },
    /// Counts per time bucket (`col` is the time column) and optional series column.
    Timeline {
        interval: i64,
        col: usize,
        by: Option<usize>,
    },
}

/// A compiled query.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The values taken from each event; the scan's columns.
    pub slots: Vec<Column>,
    /// The condition every event must meet (search, leading `where`s, `--since/--until`).
    pub filter: Pred,
    /// Every stage of a request is a row (`stage:` in the search, or `--all-stages`); otherwise
    /// only the latest stage of each auditID.
    pub all_stages: bool,
    /// The stages after the scan, each with the columns it produces.
    pub steps: Vec<(Step, Vec<Column>)>,
    /// Whether the result rows are whole events (no `table`/aggregation stage).
    pub whole_events: bool,
    /// Columns shown for whole events in a table or CSV.
    pub display: Vec<usize>,
    /// Byte strings one of which every matching line must contain (each alternative is a set of
    /// spellings of one literal); empty when no prefilter applies.
    pub prefilter: Vec<Vec<Vec<u8>>>,
    /// The query as canonical text, macros expanded.
    pub canonical: String,
}

impl Plan {
    /// The columns of the result.
    pub fn output_columns(&self) -> &[Column] {
        self.steps.last().map_or(&self.slots, |(_, c)| c)
    }
}

/// The `time` bounds every match must lie in, from top-level conditions of the filter: `lo`
/// inclusive, `hi` exclusive (a store prunes segments, a scan row groups, outside them).
pub fn time_bounds(plan: &Plan) -> (Option<i64>, Option<i64>) {
    let time_col = plan.slots.iter().position(|c| matches!(&c.key, Some(FieldKey::Field(f)) if f.name == "time"));
    let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
    let mut visit = |p: &Pred| {
        if let Pred::Field { col, test: Test::Time(op, a, b) } = p
            && Some(*col) == time_col
        {
            let (l, h) = match op {
                Cmp::Eq => (Some(*a), Some(*b)),
                Cmp::Ge => (Some(*a), None),
                Cmp::Gt => (Some(*b), None),
                Cmp::Lt => (None, Some(*a)),
                Cmp::Le => (None, Some(*b)),
            };
            if let Some(l) = l {
                lo = Some(lo.map_or(l, |x: i64| x.max(l)));
            }
            if let Some(h) = h {
                hi = Some(hi.map_or(h, |x: i64| x.min(h)));
            }
        }
    };
    match &plan.filter {
        Pred::And(items) => items.iter().for_each(&mut visit),
        p => visit(p),
    }
    (lo, hi)
}
