//! Span-insensitive comparison: [`Query::without_spans`] zeroes every span, so two queries that
//! differ only in layout (spacing, `-` vs `NOT`, `fields` vs `table`, redundant parentheses)
//! compare equal.

use crate::ast::{Aggregate, BoolExpr, FieldRef, Query, SortKey, Stage, Term, Value};
use crate::span::{Span, Spanned};

impl Query {
    /// A copy with every span set to `0..0`.
    pub fn without_spans(&self) -> Query {
        let mut q = self.clone();
        q.clear_spans();
        q
    }

    /// True if both queries have the same tree, whatever their spans.
    pub fn eq_ignoring_spans(&self, other: &Query) -> bool {
        self.without_spans() == other.without_spans()
    }
}

/// Sets every span in a node to the default.
pub(crate) trait ClearSpans {
    fn clear_spans(&mut self);
}

fn clear(s: &mut Span) {
    *s = Span::default();
}

impl<T> ClearSpans for Spanned<T> {
    fn clear_spans(&mut self) {
        clear(&mut self.span);
    }
}

impl<T: ClearSpans> ClearSpans for Option<T> {
    fn clear_spans(&mut self) {
        if let Some(t) = self {
            t.clear_spans();
        }
    }
}

impl<T: ClearSpans> ClearSpans for Vec<T> {
    fn clear_spans(&mut self) {
        self.iter_mut().for_each(T::clear_spans);
    }
}

impl ClearSpans for Query {
    fn clear_spans(&mut self) {
        clear(&mut self.span);
        self.search.clear_spans();
        self.stages.clear_spans();
    }
}

impl<T: ClearSpans> ClearSpans for BoolExpr<T> {
    fn clear_spans(&mut self) {
        match self {
            BoolExpr::Leaf(t) => t.clear_spans(),
            BoolExpr::Not { inner, span } => {
                clear(span);
                inner.clear_spans();
            }
            BoolExpr::And { items, span } | BoolExpr::Or { items, span } => {
                clear(span);
                items.clear_spans();
            }
        }
    }
}

impl ClearSpans for Term {
    fn clear_spans(&mut self) {
        match self {
            Term::Match { field, value, span } => {
                clear(span);
                field.clear_spans();
                value.clear_spans();
            }
            Term::Compare { field, op, value, span } => {
                clear(span);
                field.clear_spans();
                op.clear_spans();
                value.clear_spans();
            }
            Term::Text(v) => v.clear_spans(),
            Term::Macro(m) => m.clear_spans(),
        }
    }
}

impl ClearSpans for Value {
    fn clear_spans(&mut self) {
        clear(&mut self.span);
    }
}

impl ClearSpans for FieldRef {
    fn clear_spans(&mut self) {
        clear(&mut self.span);
    }
}

impl ClearSpans for SortKey {
    fn clear_spans(&mut self) {
        clear(&mut self.span);
        self.field.clear_spans();
    }
}

impl ClearSpans for Aggregate {
    fn clear_spans(&mut self) {
        clear(&mut self.span);
        self.func.clear_spans();
        self.field.clear_spans();
        self.alias.clear_spans();
    }
}

impl ClearSpans for Stage {
    fn clear_spans(&mut self) {
        match self {
            Stage::Where { expr, span } => {
                clear(span);
                expr.clear_spans();
            }
            Stage::Table { fields, span } | Stage::Dedup { fields, span } | Stage::Count { by: fields, span } => {
                clear(span);
                fields.clear_spans();
            }
            Stage::Sort { keys, span } => {
                clear(span);
                keys.clear_spans();
            }
            Stage::Head { limit, span } => {
                clear(span);
                limit.clear_spans();
            }
            Stage::Stats { aggregates, by, span } => {
                clear(span);
                aggregates.clear_spans();
                by.clear_spans();
            }
            Stage::Top { limit, field, by, span } | Stage::Rare { limit, field, by, span } => {
                clear(span);
                limit.clear_spans();
                field.clear_spans();
                by.clear_spans();
            }
            Stage::Timeline { interval, by, span } => {
                clear(span);
                interval.clear_spans();
                by.clear_spans();
            }
        }
    }
}
