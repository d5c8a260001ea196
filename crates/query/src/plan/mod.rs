//! The planner: a parsed query ([`kaq_syntax::Query`]) resolved against the field catalogue into a
//! [`Plan`] — which values to take from each event (slots), a typed filter over them, and the
//! stages that follow, each over the columns the previous one produced.

pub mod literal;
pub mod macros;
mod resolve;
pub mod warn;

use std::fmt;

use kaq_schema::{Field, FieldType};
use regex::Regex;

use crate::plan::literal::{Cidr, Glob};

pub use resolve::{Options, compile};
pub use warn::{KnownValues, SeenValues, Warning, WarningKind, query_warnings, time_warning, vocabulary_slots};

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
    /// only the latest stage of each request (auditID and request identity, `scan::RequestKey`).
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
    /// For a plan that reads `id_reused`: the auditIDs that more than one request carries in the
    /// whole input, found before the scan ([`crate::scan::identities`]); `None` until then.
    pub reused_ids: Option<std::sync::Arc<std::collections::HashSet<crate::scan::IdKey>>>,
    /// Slots whose distinct values a scan records ([`crate::scan::Scanned::seen`]), so that a
    /// warning about a value no event holds is not given when one does
    /// ([`warn::vocabulary_slots`]); empty unless the caller sets it.
    pub watch: Vec<usize>,
}

impl Pred {
    /// Adds the slots the predicate reads to `out`.
    pub fn slots(&self, out: &mut Vec<usize>) {
        match self {
            Pred::Const(_) => {}
            Pred::And(items) | Pred::Or(items) => items.iter().for_each(|i| i.slots(out)),
            Pred::Not(p) => p.slots(out),
            Pred::Field { col, .. } => out.push(*col),
            Pred::Text { cols, .. } => out.extend(cols),
        }
    }
}

impl Plan {
    /// Which slots the steps read from the matching rows, by slot (`None`: every one, when the
    /// rows are whole events). The steps over events (`where`, `sort`, `dedup`, `head`) and the
    /// first step that makes rows of them (`table`, `count`, `stats`, `top`, `timeline`) read
    /// slots; the steps after it read that step's columns. A slot only the filter reads need not
    /// be kept in the rows (the scans leave it null).
    pub fn row_slots(&self) -> Option<Vec<bool>> {
        if self.whole_events {
            return None;
        }
        let mut read = Vec::new();
        for (step, _) in &self.steps {
            match step {
                Step::Where(p) => p.slots(&mut read),
                Step::Sort(keys) => read.extend(keys.iter().map(|k| k.0)),
                Step::Head(_) => {}
                Step::Dedup(cols) => read.extend(cols),
                Step::Table(cols) => {
                    read.extend(cols);
                    break;
                }
                Step::Aggregate { by, aggs } => {
                    read.extend(by);
                    read.extend(aggs.iter().filter_map(|a| a.col));
                    break;
                }
                Step::Top { col, by, .. } => {
                    read.push(*col);
                    read.extend(by);
                    break;
                }
                Step::Timeline { col, by, .. } => {
                    read.push(*col);
                    read.extend(by);
                    break;
                }
            }
        }
        let mut keep = vec![false; self.slots.len()];
        for c in read {
            if let Some(k) = keep.get_mut(c) {
                *k = true;
            }
        }
        Some(keep)
    }

    /// Whether the plan reads `id_reused`: an executor must then set
    /// [`reused_ids`](Self::reused_ids) from every record of its input before scanning.
    pub fn needs_reused_ids(&self) -> bool {
        self.slots.iter().any(|s| matches!(&s.key, Some(FieldKey::Field(f)) if f.name == "id_reused"))
            && self.reused_ids.is_none()
    }

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

/// What every value of one slot that passes a filter must be (a necessary condition, read from
/// the filter by [`column_bounds`]). Every bound also says the value is not null: no test passes
/// on a null.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// Present (not null).
    Present,
    /// A time (`Val::Time`, µs) in `lo..=hi`.
    Time(Option<i64>, Option<i64>),
    /// A duration (`Val::Dur`, µs) in `lo..=hi`.
    Dur(Option<i64>, Option<i64>),
    /// A number (`Val::Int`, `Val::Float`) within these ends, each `(value, inclusive)`; never
    /// NaN.
    Num(Option<(f64, bool)>, Option<(f64, bool)>),
    /// A value whose text (a `Val::Str`'s string) lies within these ends, each `(value,
    /// inclusive)`, compared byte-wise as `Test::Eq` and `Test::Cmp` compare: exactly,
    /// case-sensitively (`verb:DELETE` does not match `delete`).
    Str(Option<(String, bool)>, Option<(String, bool)>),
}

/// A [`Bound`] on the values of slot `col`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnBound {
    pub col: usize,
    pub bound: Bound,
}

/// Bounds every row that passes `plan`'s filter meets, from the conditions AND-ed at its top
/// level (an OR gives the hull of its branches when each bounds the same slot the same way).
/// Only tests whose meaning is a plain range of the value are read: exact text (`verb:delete`,
/// not globs, words or regexes), integer ranges and comparisons (`code:4xx`, `code>=500`),
/// times and durations (`latency>1s`). Anything else (NOT, free text, lists aside) gives no
/// bound: fewer bounds only mean less pruning. Lists (a test passes when any element does) are
/// bounded like scalars: the caller decides which statistics hold for them.
pub fn column_bounds(plan: &Plan) -> Vec<ColumnBound> {
    let mut out = Vec::new();
    conjunct_bounds(&plan.filter, &mut out);
    out
}

fn conjunct_bounds(p: &Pred, out: &mut Vec<ColumnBound>) {
    match p {
        Pred::And(items) => items.iter().for_each(|i| conjunct_bounds(i, out)),
        Pred::Field { col, test } => {
            if let Some(bound) = test_bound(test) {
                out.push(ColumnBound { col: *col, bound });
            }
        }
        Pred::Or(items) => {
            // A bound every branch gives (same slot, same kind), widened to hold them all.
            let branches: Vec<Vec<ColumnBound>> = items
                .iter()
                .map(|i| {
                    let mut b = Vec::new();
                    conjunct_bounds(i, &mut b);
                    b
                })
                .collect();
            let Some((first, rest)) = branches.split_first() else { return };
            for b in first {
                let mut hull = Some(b.clone());
                for branch in rest {
                    hull = hull.and_then(|h| branch.iter().find_map(|o| widen(&h, o)));
                }
                out.extend(hull);
            }
        }
        Pred::Not(_) | Pred::Text { .. } | Pred::Const(_) => {}
    }
}

/// The smallest bound holding both, when they bound the same slot the same way.
fn widen(a: &ColumnBound, b: &ColumnBound) -> Option<ColumnBound> {
    if a.col != b.col {
        return None;
    }
    fn lo<T: PartialOrd + Clone>(x: &Option<(T, bool)>, y: &Option<(T, bool)>) -> Option<(T, bool)> {
        match (x, y) {
            (Some(x), Some(y)) if x.0 < y.0 => Some(x.clone()),
            (Some(x), Some(y)) if y.0 < x.0 => Some(y.clone()),
            (Some(x), Some(y)) => Some((x.0.clone(), x.1 || y.1)),
            _ => None,
        }
    }
    fn hi<T: PartialOrd + Clone>(x: &Option<(T, bool)>, y: &Option<(T, bool)>) -> Option<(T, bool)> {
        match (x, y) {
            (Some(x), Some(y)) if x.0 > y.0 => Some(x.clone()),
            (Some(x), Some(y)) if y.0 > x.0 => Some(y.clone()),
            (Some(x), Some(y)) => Some((x.0.clone(), x.1 || y.1)),
            _ => None,
        }
    }
    let min = |x: Option<i64>, y: Option<i64>| x.zip(y).map(|(x, y)| x.min(y));
    let max = |x: Option<i64>, y: Option<i64>| x.zip(y).map(|(x, y)| x.max(y));
    let bound = match (&a.bound, &b.bound) {
        (Bound::Time(l1, h1), Bound::Time(l2, h2)) => Bound::Time(min(*l1, *l2), max(*h1, *h2)),
        (Bound::Dur(l1, h1), Bound::Dur(l2, h2)) => Bound::Dur(min(*l1, *l2), max(*h1, *h2)),
        (Bound::Num(l1, h1), Bound::Num(l2, h2)) => Bound::Num(lo(l1, l2), hi(h1, h2)),
        (Bound::Str(l1, h1), Bound::Str(l2, h2)) => Bound::Str(lo(l1, l2), hi(h1, h2)),
        // Every bound implies presence.
        (_, _) => Bound::Present,
    };
    Some(ColumnBound { col: a.col, bound })
}

/// The bound a test puts on the values it passes, when it is a plain range.
fn test_bound(t: &Test) -> Option<Bound> {
    let both = |v: (f64, bool)| Bound::Num(Some(v), Some(v));
    Some(match t {
        Test::Exists => Bound::Present,
        Test::Eq(s) => Bound::Str(Some((s.clone(), true)), Some((s.clone(), true))),
        Test::IntRange(lo, hi) => Bound::Num(Some((*lo as f64, true)), Some((*hi as f64, true))),
        Test::Time(op, a, b) => {
            // As `eval` compares: `=` is lo..hi, `<` before lo, `>=` from lo, `>` from hi, `<=` before hi.
            let (l, h) = match op {
                Cmp::Eq => (Some(*a), Some(b.checked_sub(1)?)),
                Cmp::Ge => (Some(*a), None),
                Cmp::Gt => (Some(*b), None),
                Cmp::Lt => (None, Some(a.checked_sub(1)?)),
                Cmp::Le => (None, Some(b.checked_sub(1)?)),
            };
            Bound::Time(l, h)
        }
        Test::Cmp(op, Lit::Dur(x)) => match op {
            Cmp::Eq => Bound::Dur(Some(*x), Some(*x)),
            Cmp::Ge => Bound::Dur(Some(*x), None),
            Cmp::Gt => Bound::Dur(Some(x.checked_add(1)?), None),
            Cmp::Le => Bound::Dur(None, Some(*x)),
            Cmp::Lt => Bound::Dur(None, Some(x.checked_sub(1)?)),
        },
        Test::Cmp(op, Lit::Num(x)) if !x.is_nan() => match op {
            Cmp::Eq => both((*x, true)),
            Cmp::Ge => Bound::Num(Some((*x, true)), None),
            Cmp::Gt => Bound::Num(Some((*x, false)), None),
            Cmp::Le => Bound::Num(None, Some((*x, true))),
            Cmp::Lt => Bound::Num(None, Some((*x, false))),
        },
        Test::Cmp(op, Lit::Str(s)) => {
            let s = || Some((s.clone(), !matches!(op, Cmp::Lt | Cmp::Gt)));
            match op {
                Cmp::Eq => Bound::Str(s(), s()),
                Cmp::Ge | Cmp::Gt => Bound::Str(s(), None),
                Cmp::Le | Cmp::Lt => Bound::Str(None, s()),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounds of a query's filter, as (field, bound).
    fn bounds(q: &str) -> Vec<(String, Bound)> {
        let plan = compile(q, &Options::default()).unwrap();
        column_bounds(&plan).into_iter().map(|b| (plan.slots[b.col].name.clone(), b.bound)).collect()
    }

    fn s(v: &str, incl: bool) -> Option<(String, bool)> {
        Some((v.to_string(), incl))
    }

    /// The fields whose slots the rows keep ([`Plan::row_slots`]), sorted.
    fn kept(q: &str) -> Option<Vec<String>> {
        let plan = compile(q, &Options::default()).unwrap();
        let keep = plan.row_slots()?;
        let mut names: Vec<String> =
            plan.slots.iter().zip(keep).filter(|(_, k)| *k).map(|(s, _)| s.name.clone()).collect();
        names.sort();
        Some(names)
    }

    #[test]
    fn rows_keep_the_slots_the_steps_read() {
        let v = |n: &[&str]| Some(n.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // The filter's fields are not kept unless a step reads them.
        assert_eq!(kept("verb:get user_kind:human | table time, user"), v(&["time", "user"]));
        // Steps over events before the first shaping step read slots too.
        assert_eq!(
            kept("verb:get | sort -latency | dedup ns | where code=200 | table user"),
            v(&["code", "latency", "ns", "user"])
        );
        assert_eq!(kept("code:401 | count by ip | where count > 2"), v(&["ip"]));
        assert_eq!(kept("* | stats count, p99(latency) by verb"), v(&["latency", "verb"]));
        assert_eq!(kept("| top 3 ua by user"), v(&["ua", "user"]));
        assert_eq!(kept("| timeline 5m by verb"), v(&["time", "verb"]));
        // Whole events keep every slot.
        assert_eq!(kept("verb:get | head 5"), None);
    }

    #[test]
    fn bounds_of_and_ed_plain_conditions_only() {
        let eq = |v: &str| Bound::Str(s(v, true), s(v, true));
        assert_eq!(bounds("verb:delete ns:prod"), [("verb".into(), eq("delete")), ("ns".into(), eq("prod"))]);
        // Case is kept: `eval` compares exactly.
        assert_eq!(bounds("verb:DELETE"), [("verb".into(), eq("DELETE"))]);
        assert_eq!(bounds("code:4xx"), [("code".into(), Bound::Num(Some((400.0, true)), Some((499.0, true))))]);
        assert_eq!(bounds("code>500"), [("code".into(), Bound::Num(Some((500.0, false)), None))]);
        assert_eq!(bounds("latency>1s"), [("latency".into(), Bound::Dur(Some(1_000_001), None))]);
        assert_eq!(bounds("ns<b"), [("ns".into(), Bound::Str(None, s("b", false)))]);
        assert_eq!(bounds("ns:*"), [("ns".into(), Bound::Present)]);
        // An OR of one field: the hull; of two fields, or under NOT, or a glob: nothing.
        assert_eq!(bounds("verb:(get OR delete)"), [("verb".into(), Bound::Str(s("delete", true), s("get", true)))]);
        assert_eq!(
            bounds("code:401 OR code:500"),
            [("code".into(), Bound::Num(Some((401.0, true)), Some((500.0, true))))]
        );
        assert!(bounds("verb:get OR code:500").is_empty());
        assert!(bounds("NOT verb:get").is_empty());
        assert!(bounds("verb:del*").is_empty());
        assert!(bounds("forbidden").is_empty());
        // `time<=T` takes in the whole of T (here a day): up to its last microsecond.
        let day = 1_795_132_800_000_000; // 2026-11-20T00:00:00Z
        assert_eq!(bounds("time<=2026-11-20"), [("time".into(), Bound::Time(None, Some(day + 86_400_000_000 - 1)))]);
        assert_eq!(
            bounds("time:2026-11-20"),
            [("time".into(), Bound::Time(Some(day), Some(day + 86_400_000_000 - 1)))]
        );
    }
}
