//! The kaq query language: text → syntax tree with byte spans, diagnostics with stable codes, and
//! a printer back to canonical text.
//!
//! Roles:
//! - [`parse`] and [`parse_lenient`] turn query text into a [`Query`]: an optional [`Search`]
//!   (boolean combination of [`Term`]s) and pipeline [`Stage`]s.
//! - [`Diagnostic`] is plain data (a [`Code`], message, [`Span`], labels, hints); hosts render it,
//!   and [`Diagnostic::render`] is a small plain-text fallback with a caret under the span.
//! - `Display` on [`Query`] prints canonical text that parses back to the same tree
//!   ([`Query::eq_ignoring_spans`]).
//!
//! The tree knows nothing of the field catalogue: a [`FieldRef`] is a path of strings and a
//! [`Value`] is raw text with a kind ([`ValueKind`]). Resolving fields, typing values (numbers,
//! durations, times, CIDRs, `4xx`) and "unknown field" suggestions belong to the planner.
//! The normative grammar is `grammar/kaq.ebnf`; its production names are the parser's functions.
//!
//! ```
//! use kaq_syntax::{BoolExpr, Stage, Term, ValueKind, parse};
//!
//! let q = parse("verb:(delete OR deletecollection) -user_kind:node | count by user").unwrap();
//! let Some(BoolExpr::And { items, .. }) = &q.search else { panic!("expected AND") };
//! let BoolExpr::Leaf(Term::Match { field, .. }) = &items[0] else { panic!("expected a match") };
//! assert_eq!(field.dotted(), "verb");
//! assert!(matches!(&q.stages[0], Stage::Count { by, .. } if by[0].dotted() == "user"));
//! assert_eq!(q.to_string(), "verb:(delete OR deletecollection) NOT user_kind:node | count by user");
//!
//! let q = parse("ns:prod*").unwrap();
//! let Some(BoolExpr::Leaf(Term::Match { value: BoolExpr::Leaf(v), .. })) = &q.search else { panic!() };
//! assert_eq!(v.kind, ValueKind::Bare { text: "prod*".into(), has_wildcard: true });
//!
//! let src = "code:401 | cout by ip";
//! let errors = parse(src).unwrap_err();
//! assert_eq!(errors[0].code.as_str(), "E010");
//! assert_eq!(
//!     errors[0].render(src),
//!     "error[E010]: unknown stage `cout`\n1 | code:401 | cout by ip\n  |            ^^^^\nhint: did you mean `count`?\n"
//! );
//! ```

mod ast;
mod diag;
mod expr;
mod input;
mod lex;
mod print;
mod query;
mod span;
mod stage;
mod strip;
mod suggest;

pub use ast::{
    AggFunc, Aggregate, BoolExpr, CmpOp, FieldRef, Query, STAGE_NAMES, Search, SortKey, Stage, Term, Value, ValueExpr,
    ValueKind,
};
pub use diag::{Code, Diagnostic};
pub use query::{parse, parse_lenient};
pub use span::{Span, Spanned};
pub use suggest::{did_you_mean, edit_distance};

/// Longest accepted query, in bytes (64 KiB). Longer input fails with [`Code::QueryTooLong`].
pub const MAX_QUERY_LEN: usize = 64 * 1024;

/// Deepest nesting of parentheses and `NOT`/`-` prefixes. Deeper input fails with
/// [`Code::NestingTooDeep`] before any recursion could exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// Longest regex literal body, in bytes. Longer fails with [`Code::RegexTooLong`].
pub const MAX_REGEX_LEN: usize = 1000;
