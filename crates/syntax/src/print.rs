//! The canonical printer. `parse(&q.to_string())` gives back `q` (ignoring spans) for every query
//! the parser produces. Canonical form: single spaces; juxtaposition for AND in a search and explicit
//! `AND` inside value groups; `OR`/`NOT` uppercase; `NOT` rather than `-`; comparisons without
//! spaces (`code>=400`); `table` rather than `fields`; parentheses only where precedence needs them;
//! field segments quoted only when they are not plain identifiers or would read as a keyword.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{Aggregate, BoolExpr, FieldRef, Query, SortKey, Stage, Term, Value, ValueKind};

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(search) = &self.search {
            write_bool(f, search, " ")?;
        }
        for (n, stage) in self.stages.iter().enumerate() {
            let sep = if n == 0 && self.search.is_none() { "| " } else { " | " };
            write!(f, "{sep}{stage}")?;
        }
        Ok(())
    }
}

/// Writes a boolean expression; `and` separates AND operands (" " or " AND ").
fn write_bool<T: Display>(f: &mut Formatter<'_>, e: &BoolExpr<T>, and: &str) -> fmt::Result {
    match e {
        BoolExpr::Leaf(t) => t.fmt(f),
        BoolExpr::Not { inner, .. } => {
            f.write_str("NOT ")?;
            write_operand(f, inner, and, matches!(**inner, BoolExpr::And { .. } | BoolExpr::Or { .. }))
        }
        BoolExpr::And { items, .. } => {
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    f.write_str(and)?;
                }
                write_operand(f, item, and, matches!(item, BoolExpr::And { .. } | BoolExpr::Or { .. }))?;
            }
            Ok(())
        }
        BoolExpr::Or { items, .. } => {
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    f.write_str(" OR ")?;
                }
                write_operand(f, item, and, matches!(item, BoolExpr::Or { .. }))?;
            }
            Ok(())
        }
    }
}

fn write_operand<T: Display>(f: &mut Formatter<'_>, e: &BoolExpr<T>, and: &str, parens: bool) -> fmt::Result {
    if parens {
        f.write_char('(')?;
        write_bool(f, e, and)?;
        f.write_char(')')
    } else {
        write_bool(f, e, and)
    }
}

impl Display for Term {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Term::Match { field, value: BoolExpr::Leaf(v), .. } => write!(f, "{field}:{v}"),
            Term::Match { field, value, .. } => {
                write!(f, "{field}:(")?;
                write_bool(f, value, " AND ")?;
                f.write_char(')')
            }
            Term::Compare { field, op, value, .. } => write!(f, "{field}{}{value}", op.node.as_str()),
            Term::Text(v) => v.fmt(f),
            Term::Macro(m) => write!(f, "@{}", m.node),
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ValueKind::Bare { text, .. } => f.write_str(text),
            ValueKind::Quoted { text } => write_quoted(f, text),
            ValueKind::Regex { pattern } => {
                f.write_char('/')?;
                let mut chars = pattern.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '/' => f.write_str("\\/")?,
                        '\\' => {
                            f.write_char('\\')?;
                            if let Some(next) = chars.next() {
                                f.write_char(next)?;
                            }
                        }
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('/')
            }
            ValueKind::Exists => f.write_char('*'),
        }
    }
}

fn write_quoted(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

/// Words that must be quoted as a first field segment to read as a field.
fn reserved(seg: &str) -> bool {
    seg == "by" || ["and", "or", "not"].iter().any(|k| seg.eq_ignore_ascii_case(k))
}

fn is_ident(seg: &str, first: bool) -> bool {
    let mut chars = seg.chars();
    let head_ok = match chars.next() {
        Some(c) => c.is_ascii_alphabetic() || c == '_' || (!first && (c.is_ascii_digit() || c == '-')),
        None => false,
    };
    head_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.segments.iter().enumerate() {
            if n > 0 {
                f.write_char('.')?;
            }
            if is_ident(seg, n == 0) && !(n == 0 && reserved(seg)) {
                f.write_str(seg)?;
            } else {
                write_quoted(f, seg)?;
            }
        }
        Ok(())
    }
}

fn write_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            f.write_str(", ")?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

fn write_by(f: &mut Formatter<'_>, by: &[FieldRef]) -> fmt::Result {
    if by.is_empty() {
        return Ok(());
    }
    f.write_str(" by ")?;
    write_list(f, by)
}

impl Display for SortKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.descending {
            f.write_char('-')?;
        }
        self.field.fmt(f)
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.func.node.as_str())?;
        if let Some(field) = &self.field {
            write!(f, "({field})")?;
        }
        if let Some(alias) = &self.alias {
            write!(f, " as {}", alias.node)?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Stage::Where { expr, .. } => {
                f.write_char(' ')?;
                write_bool(f, expr, " ")
            }
            Stage::Table { fields, .. } | Stage::Dedup { fields, .. } => {
                f.write_char(' ')?;
                write_list(f, fields)
            }
            Stage::Sort { keys, .. } => {
                f.write_char(' ')?;
                write_list(f, keys)
            }
            Stage::Head { limit, .. } => limit.as_ref().map_or(Ok(()), |n| write!(f, " {}", n.node)),
            Stage::Count { by, .. } => write_by(f, by),
            Stage::Stats { aggregates, by, .. } => {
                f.write_char(' ')?;
                write_list(f, aggregates)?;
                write_by(f, by)
            }
            Stage::Top { limit, field, by, .. } | Stage::Rare { limit, field, by, .. } => {
                write!(f, " {} {field}", limit.node)?;
                write_by(f, by)
            }
            Stage::Timeline { interval, by, .. } => {
                write!(f, " {}", interval.node)?;
                by.as_ref().map_or(Ok(()), |b| write!(f, " by {b}"))
            }
        }
    }
}
