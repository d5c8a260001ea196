//! Evaluating conditions ([`Pred`]) over the columns of an event or a row.

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::plan::literal::normalize;
use crate::plan::{Cmp, Lit, Pred, Test};
use crate::value::Val;

/// Gives column values by index (computed lazily for events).
pub trait Columns<'v> {
    fn get(&mut self, col: usize) -> &Val<'v>;
}

impl<'v> Columns<'v> for &[Val<'v>] {
    fn get(&mut self, col: usize) -> &Val<'v> {
        &self[col]
    }
}

/// Whether `p` holds.
pub fn eval<'v>(p: &Pred, row: &mut impl Columns<'v>) -> bool {
    match p {
        Pred::Const(b) => *b,
        Pred::And(items) => items.iter().all(|i| eval(i, row)),
        Pred::Or(items) => items.iter().any(|i| eval(i, row)),
        Pred::Not(inner) => !eval(inner, row),
        Pred::Field { col, test } => test_val(test, row.get(*col)),
        Pred::Text { cols, test } => cols.iter().any(|c| test_val(test, row.get(*c))),
    }
}

/// A test of a value; on a list, any element.
pub fn test_val(t: &Test, v: &Val<'_>) -> bool {
    match v {
        Val::List(items) => items.iter().any(|x| test_val(t, x)),
        v => test_scalar(t, v),
    }
}

fn text<'a>(v: &'a Val<'_>) -> std::borrow::Cow<'a, str> {
    match v {
        Val::Str(s) => std::borrow::Cow::Borrowed(s.as_ref()),
        other => std::borrow::Cow::Owned(other.to_text()),
    }
}

fn test_scalar(t: &Test, v: &Val<'_>) -> bool {
    if v.is_null() {
        return false; // nothing matches an absent value
    }
    match t {
        Test::Exists => !matches!(v, Val::Str(s) if s.is_empty()),
        Test::Eq(s) => text(v) == s.as_str(),
        Test::Glob(g) => g.matches(&text(v)),
        Test::Regex(r) => r.is_match(&text(v)),
        Test::Words(w) => has_words(&text(v), w),
        Test::WordGlob(g) => {
            let t = text(v);
            g.matches(&t.to_lowercase()) || crate::plan::literal::words(&t).any(|w| g.matches(&w))
        }
        Test::IntRange(lo, hi) => match v {
            Val::Int(i) => lo <= i && i <= hi,
            Val::Float(f) => f.fract() == 0.0 && (*lo as f64) <= *f && *f <= *hi as f64,
            _ => false,
        },
        Test::Time(op, lo, hi) => match v {
            Val::Time(t) => match op {
                Cmp::Eq => lo <= t && t < hi,
                Cmp::Lt => t < lo,
                Cmp::Ge => t >= lo,
                Cmp::Gt => t >= hi,
                Cmp::Le => t < hi,
            },
            _ => false,
        },
        Test::Cmp(op, lit) => compare(v, lit).is_some_and(|o| op.holds(o)),
        Test::Ip(ip) => parse_ip(v).is_some_and(|a| a == *ip),
        Test::Cidr(c) => parse_ip(v).is_some_and(|a| c.contains(a)),
        Test::Bool(b) => match v {
            Val::Bool(x) => x == b,
            Val::Str(s) => s.as_ref() == if *b { "true" } else { "false" },
            _ => false,
        },
        Test::Dynamic(s) => match v {
            Val::Str(x) => x.as_ref() == s,
            Val::Int(_) | Val::Float(_) => s.parse::<f64>().is_ok_and(|n| v.as_f64().is_some_and(|x| x == n)),
            Val::Bool(b) => s == if *b { "true" } else { "false" },
            other => other.to_text() == *s,
        },
    }
}

fn parse_ip(v: &Val<'_>) -> Option<IpAddr> {
    match v {
        Val::Str(s) => s.parse().ok().map(normalize),
        _ => None,
    }
}

/// How `v` compares with `lit`, or `None` when they cannot be compared.
fn compare(v: &Val<'_>, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Val::Int(_) | Val::Float(_), Lit::Num(n)) => v.as_f64()?.partial_cmp(n),
        (Val::Dur(d), Lit::Dur(x)) => Some(d.cmp(x)),
        (Val::Str(s), Lit::Str(x)) => Some(s.as_ref().cmp(x.as_str())),
        (Val::Int(_) | Val::Float(_), Lit::Dynamic(x)) => v.as_f64()?.partial_cmp(&x.parse::<f64>().ok()?),
        (Val::Str(s), Lit::Dynamic(x)) => Some(s.as_ref().cmp(x.as_str())),
        (Val::Bool(b), Lit::Dynamic(x)) => {
            let want = match x.as_str() {
                "true" => true,
                "false" => false,
                _ => return None,
            };
            Some(b.cmp(&want))
        }
        _ => None,
    }
}

/// Whether the words of `text` contain `want` consecutively (words compared lowercased).
fn has_words(text: &str, want: &[String]) -> bool {
    let words: Vec<String> = crate::plan::literal::words(text).collect();
    want.len() <= words.len() && words.windows(want.len()).any(|w| w == want)
}
