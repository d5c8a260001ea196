//! The syntax tree. It records what was written, not what it means: field names are paths of
//! strings, values are raw text with a kind. Resolving fields and typing values is the planner's job.

use crate::span::{Span, Spanned};

/// A whole query: an optional search, then pipeline stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The search before the first `|`; `None` for an empty search (`| count`, or an empty query).
    pub search: Option<Search>,
    /// The stages after each `|`, in order.
    pub stages: Vec<Stage>,
    /// The whole source text.
    pub span: Span,
}

/// A boolean combination of leaves. `And`/`Or` always hold two or more items; parentheses are not
/// nodes (they only shape the tree), so `(a b) c` is `And[And[a, b], c]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoolExpr<T> {
    /// A single leaf.
    Leaf(T),
    /// `NOT x` or `-x`.
    Not {
        /// The negated expression.
        inner: Box<BoolExpr<T>>,
        /// From the `NOT`/`-` to the end of the operand.
        span: Span,
    },
    /// Juxtaposition or `AND`.
    And {
        /// Two or more operands.
        items: Vec<BoolExpr<T>>,
        /// From the first operand to the last.
        span: Span,
    },
    /// `OR`.
    Or {
        /// Two or more operands.
        items: Vec<BoolExpr<T>>,
        /// From the first operand to the last.
        span: Span,
    },
}

/// The search part of a query, and the condition of `where`.
pub type Search = BoolExpr<Term>;

/// The right-hand side of `field:…`: one value, or a parenthesised group of values.
pub type ValueExpr = BoolExpr<Value>;

/// A leaf of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// `field:value`, `field:(a OR b)`, `field:*`, `field:/re/`.
    Match {
        /// The field (or output column) named before `:`.
        field: FieldRef,
        /// What it must match.
        value: ValueExpr,
        /// The whole term.
        span: Span,
    },
    /// `field OP value` with `OP` one of `= != < <= > >=`.
    Compare {
        /// The field (or output column) on the left.
        field: FieldRef,
        /// The operator.
        op: Spanned<CmpOp>,
        /// The right-hand side: always [`ValueKind::Bare`] or [`ValueKind::Quoted`].
        value: Value,
        /// The whole term.
        span: Span,
    },
    /// A free-text word, phrase or regex with no field.
    Text(Value),
    /// `@name`: a reference to a named query; `node` is the name without `@`.
    Macro(Spanned<String>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A value as written, uninterpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// What kind of literal it is, with its text.
    pub kind: ValueKind,
    /// The literal including quotes or slashes.
    pub span: Span,
}

/// The kinds of value literal. Numbers, durations, times, CIDRs and `4xx` are all `Bare` text here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// An unquoted word; `has_wildcard` when it contains `*` or `?`.
    Bare {
        /// The word exactly as written.
        text: String,
        /// Whether `text` contains `*` or `?`.
        has_wildcard: bool,
    },
    /// A `"quoted"` phrase; `text` has its escapes resolved. Never a wildcard.
    Quoted {
        /// The unescaped text.
        text: String,
    },
    /// A `/regex/`; `pattern` has `\/` turned into `/`, every other escape kept as written.
    Regex {
        /// The pattern between the slashes.
        pattern: String,
    },
    /// `*` alone: the field is present.
    Exists,
}

/// A field or output-column reference: `user`, `request.spec.hostNetwork`,
/// `annotations."authorization.k8s.io/decision"`. Segments hold unquoted text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// The dot-separated path, quotes removed.
    pub segments: Vec<String>,
    /// The reference as written.
    pub span: Span,
}

impl FieldRef {
    /// The segments joined with `.` (no quoting): a convenient lookup key for catalogues.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }
}

/// One pipeline stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `where EXPR`: keeps rows matching field conditions (no free text, no macros).
    Where {
        /// The condition.
        expr: Search,
        /// The whole stage.
        span: Span,
    },
    /// `table f, …` (synonym `fields f, …`).
    Table {
        /// The columns to show, in order.
        fields: Vec<FieldRef>,
        /// The whole stage.
        span: Span,
    },
    /// `sort [-|+]f, …`.
    Sort {
        /// Sort keys, most significant first.
        keys: Vec<SortKey>,
        /// The whole stage.
        span: Span,
    },
    /// `head [N]`.
    Head {
        /// The number of rows, if given.
        limit: Option<Spanned<u64>>,
        /// The whole stage.
        span: Span,
    },
    /// `count [by f, …]`.
    Count {
        /// Group-by fields; empty for one total.
        by: Vec<FieldRef>,
        /// The whole stage.
        span: Span,
    },
    /// `stats AGG[, AGG…] [by f, …]`.
    Stats {
        /// One or more aggregates.
        aggregates: Vec<Aggregate>,
        /// Group-by fields.
        by: Vec<FieldRef>,
        /// The whole stage.
        span: Span,
    },
    /// `top N f [by f, …]`.
    Top {
        /// How many values.
        limit: Spanned<u64>,
        /// The field whose values are ranked.
        field: FieldRef,
        /// Group-by fields.
        by: Vec<FieldRef>,
        /// The whole stage.
        span: Span,
    },
    /// `rare N f [by f, …]`.
    Rare {
        /// How many values.
        limit: Spanned<u64>,
        /// The field whose values are ranked.
        field: FieldRef,
        /// Group-by fields.
        by: Vec<FieldRef>,
        /// The whole stage.
        span: Span,
    },
    /// `timeline INTERVAL [by f]`.
    Timeline {
        /// The bucket width as written, e.g. `5m` (uninterpreted).
        interval: Spanned<String>,
        /// Optional series field.
        by: Option<FieldRef>,
        /// The whole stage.
        span: Span,
    },
    /// `dedup f, …`.
    Dedup {
        /// The fields whose value combination must be unique.
        fields: Vec<FieldRef>,
        /// The whole stage.
        span: Span,
    },
}

/// The stage names, all reserved after `|`.
pub const STAGE_NAMES: &[&str] =
    &["where", "table", "fields", "sort", "head", "count", "stats", "top", "rare", "timeline", "dedup"];

impl Stage {
    /// The stage's canonical name (`table` for `fields`).
    pub const fn name(&self) -> &'static str {
        match self {
            Stage::Where { .. } => "where",
            Stage::Table { .. } => "table",
            Stage::Sort { .. } => "sort",
            Stage::Head { .. } => "head",
            Stage::Count { .. } => "count",
            Stage::Stats { .. } => "stats",
            Stage::Top { .. } => "top",
            Stage::Rare { .. } => "rare",
            Stage::Timeline { .. } => "timeline",
            Stage::Dedup { .. } => "dedup",
        }
    }
}

/// One `sort` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// The field or column.
    pub field: FieldRef,
    /// True for a leading `-`.
    pub descending: bool,
    /// The key including its sign.
    pub span: Span,
}

/// One `stats` aggregate: `count`, `FUNC(field)`, optionally `as NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregate {
    /// The function.
    pub func: Spanned<AggFunc>,
    /// Its argument; `None` only for a bare `count`.
    pub field: Option<FieldRef>,
    /// The output column name given with `as`.
    pub alias: Option<Spanned<String>>,
    /// The whole aggregate.
    pub span: Span,
}

/// Aggregate functions of `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `count` or `count(f)`: rows, or rows where `f` is present.
    Count,
    /// `dc(f)`: distinct count.
    Dc,
    /// `min(f)`
    Min,
    /// `max(f)`
    Max,
    /// `avg(f)`
    Avg,
    /// `sum(f)`
    Sum,
    /// `p50(f)`
    P50,
    /// `p90(f)`
    P90,
    /// `p95(f)`
    P95,
    /// `p99(f)`
    P99,
    /// `values(f)`: the distinct values.
    Values,
}

impl AggFunc {
    /// Every function, in documentation order.
    pub const ALL: &[AggFunc] = &[
        AggFunc::Count,
        AggFunc::Dc,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Avg,
        AggFunc::Sum,
        AggFunc::P50,
        AggFunc::P90,
        AggFunc::P95,
        AggFunc::P99,
        AggFunc::Values,
    ];

    /// The name as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Dc => "dc",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
            AggFunc::Sum => "sum",
            AggFunc::P50 => "p50",
            AggFunc::P90 => "p90",
            AggFunc::P95 => "p95",
            AggFunc::P99 => "p99",
            AggFunc::Values => "values",
        }
    }

    /// Looks a name up (case-sensitive: function names are lowercase).
    pub fn from_name(name: &str) -> Option<AggFunc> {
        AggFunc::ALL.iter().copied().find(|f| f.as_str() == name)
    }
}

impl<T> BoolExpr<T> {
    /// The span of a non-leaf node; for a leaf, `leaf_span` of it.
    pub fn span_with(&self, leaf_span: impl Fn(&T) -> Span) -> Span {
        match self {
            BoolExpr::Leaf(t) => leaf_span(t),
            BoolExpr::Not { span, .. } | BoolExpr::And { span, .. } | BoolExpr::Or { span, .. } => *span,
        }
    }

    /// Calls `f` on every leaf, left to right.
    pub fn for_each_leaf<'a>(&'a self, f: &mut impl FnMut(&'a T)) {
        match self {
            BoolExpr::Leaf(t) => f(t),
            BoolExpr::Not { inner, .. } => inner.for_each_leaf(f),
            BoolExpr::And { items, .. } | BoolExpr::Or { items, .. } => items.iter().for_each(|e| e.for_each_leaf(f)),
        }
    }
}

impl Search {
    /// Where this expression was written.
    pub fn span(&self) -> Span {
        self.span_with(Term::span)
    }
}

impl ValueExpr {
    /// Where this value expression was written.
    pub fn span(&self) -> Span {
        self.span_with(|v| v.span)
    }
}

impl Term {
    /// Where this term was written.
    pub fn span(&self) -> Span {
        match self {
            Term::Match { span, .. } | Term::Compare { span, .. } => *span,
            Term::Text(v) => v.span,
            Term::Macro(m) => m.span,
        }
    }
}

impl Stage {
    /// Where this stage was written (from its name to its last argument).
    pub fn span(&self) -> Span {
        match self {
            Stage::Where { span, .. }
            | Stage::Table { span, .. }
            | Stage::Sort { span, .. }
            | Stage::Head { span, .. }
            | Stage::Count { span, .. }
            | Stage::Stats { span, .. }
            | Stage::Top { span, .. }
            | Stage::Rare { span, .. }
            | Stage::Timeline { span, .. }
            | Stage::Dedup { span, .. } => *span,
        }
    }
}
