//! Values flowing through a query: what a field holds for one event, and the cells of result rows.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use kaq_schema::time::format_micros;
use serde_json::Value as Json;

/// One value. Strings borrow from the event text while an event is being tested; rows that are
/// kept own theirs (`Val<'static>`).
#[derive(Clone, Debug)]
pub enum Val<'a> {
    /// Absent.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An instant, microseconds since the Unix epoch (UTC).
    Time(i64),
    /// A span of time in microseconds.
    Dur(i64),
    /// A list field (`groups`, `ip`), or the values of `values(f)`.
    List(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    /// A copy that owns its strings.
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(i) => Val::Int(i),
            Val::Float(f) => Val::Float(f),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Time(t) => Val::Time(t),
            Val::Dur(d) => Val::Dur(d),
            Val::List(l) => Val::List(l.into_iter().map(Val::into_owned).collect()),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// A string value, borrowed.
    pub fn str(s: &'a str) -> Val<'a> {
        Val::Str(Cow::Borrowed(s))
    }

    /// A number as f64 (durations in seconds), for averages and cross-type comparisons.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            Val::Dur(d) => Some(*d as f64 / 1e6),
            Val::Time(t) => Some(*t as f64 / 1e6),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Val::Bool(_) => 0,
            Val::Int(_) | Val::Float(_) => 1,
            Val::Dur(_) => 2,
            Val::Time(_) => 3,
            Val::Str(_) => 4,
            Val::List(_) => 5,
            Val::Null => 6,
        }
    }

    /// The total order used by `sort` and for group keys: by kind (bool, number, duration, time,
    /// string, list), then by value; null sorts after everything.
    pub fn total_cmp(&self, other: &Val<'_>) -> Ordering {
        match (self, other) {
            (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
            (Val::Int(a), Val::Int(b)) => a.cmp(b),
            (Val::Int(a), Val::Float(b)) => (*a as f64).total_cmp(b),
            (Val::Float(a), Val::Int(b)) => a.total_cmp(&(*b as f64)),
            (Val::Float(a), Val::Float(b)) => a.total_cmp(b),
            (Val::Dur(a), Val::Dur(b)) | (Val::Time(a), Val::Time(b)) => a.cmp(b),
            (Val::Str(a), Val::Str(b)) => a.as_ref().cmp(b.as_ref()),
            (Val::List(a), Val::List(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let o = x.total_cmp(y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// As JSON for output: times as RFC 3339 strings, durations as seconds.
    pub fn to_json(&self) -> Json {
        match self {
            Val::Null => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Int(i) => Json::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Val::Str(s) => Json::String(s.to_string()),
            Val::Time(t) => Json::String(format_micros(*t)),
            Val::Dur(d) => seconds_json(*d),
            Val::List(l) => Json::Array(l.iter().map(Val::to_json).collect()),
        }
    }

    /// As text for CSV cells: times RFC 3339, durations in seconds, lists comma-separated, null empty.
    pub fn to_text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => format_float(*f),
            Val::Str(s) => s.to_string(),
            Val::Time(t) => format_micros(*t),
            Val::Dur(d) => format_float(*d as f64 / 1e6),
            Val::List(l) => l.iter().map(Val::to_text).collect::<Vec<_>>().join(","),
        }
    }

    /// As text for a terminal table: like [`to_text`](Self::to_text), durations with a unit.
    pub fn to_display(&self) -> String {
        match self {
            Val::Dur(d) => format_duration(*d),
            Val::List(l) => l.iter().map(Val::to_display).collect::<Vec<_>>().join(", "),
            v => v.to_text(),
        }
    }
}

fn seconds_json(us: i64) -> Json {
    if us % 1_000_000 == 0 {
        Json::from(us / 1_000_000)
    } else {
        serde_json::Number::from_f64(us as f64 / 1e6).map_or(Json::Null, Json::Number)
    }
}

fn format_float(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
}

/// `250ms`, `1.5s`, `2m3s`, `1h2m`.
pub fn format_duration(us: i64) -> String {
    let neg = if us < 0 { "-" } else { "" };
    let us = us.unsigned_abs();
    let s = if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{}ms", trim(us as f64 / 1e3))
    } else if us < 60_000_000 {
        format!("{}s", trim(us as f64 / 1e6))
    } else if us < 3_600_000_000 {
        format!("{}m{}s", us / 60_000_000, (us % 60_000_000) / 1_000_000)
    } else {
        format!("{}h{}m", us / 3_600_000_000, (us % 3_600_000_000) / 60_000_000)
    };
    format!("{neg}{s}")
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl PartialEq for Val<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.total_cmp(other) == Ordering::Equal && self.rank() == other.rank()
    }
}

impl Eq for Val<'_> {}

impl Hash for Val<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.rank().hash(h);
        match self {
            Val::Null => {}
            Val::Bool(b) => b.hash(h),
            // Ints and floats compare equal across kinds: hash both through f64.
            Val::Int(i) => (*i as f64).to_bits().hash(h),
            Val::Float(f) => f.to_bits().hash(h),
            Val::Str(s) => s.hash(h),
            Val::Time(t) | Val::Dur(t) => t.hash(h),
            Val::List(l) => l.iter().for_each(|v| v.hash(h)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_puts_null_last_and_compares_numbers_across_kinds() {
        let mut v = [Val::Null, Val::str("b"), Val::Int(3), Val::Float(2.5), Val::str("a")];
        v.sort_by(|a, b| a.total_cmp(b));
        let shown: Vec<String> = v.iter().map(Val::to_text).collect();
        assert_eq!(shown, ["2.5", "3", "a", "b", ""]);
        assert_eq!(Val::Int(2), Val::Float(2.0));
    }

    #[test]
    fn durations_print_in_seconds_and_with_units() {
        assert_eq!(Val::Dur(1_500_000).to_json(), serde_json::json!(1.5));
        assert_eq!(Val::Dur(2_000_000).to_json(), serde_json::json!(2));
        assert_eq!(format_duration(250_000), "250ms");
        assert_eq!(format_duration(61_000_000), "1m1s");
        assert_eq!(Val::Time(0).to_text(), "1970-01-01T00:00:00.000000Z");
    }
}
