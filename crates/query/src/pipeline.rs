//! The stages after the scan, over rows in memory.

use std::collections::{HashMap, HashSet};

use kaq_syntax::AggFunc;

use crate::eval::eval;
use crate::plan::{Agg, Step};
use crate::value::Val;

/// One result row: its cells, and for whole events the event's JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub vals: Vec<Val<'static>>,
    /// The event as JSON (whole-event rows only).
    pub raw: Option<Box<str>>,
}

/// Runs `steps` over `rows`.
pub fn run(steps: &[Step], mut rows: Vec<Row>) -> Vec<Row> {
    for step in steps {
        rows = apply(step, rows);
    }
    rows
}

fn apply(step: &Step, mut rows: Vec<Row>) -> Vec<Row> {
    match step {
        Step::Where(p) => {
            rows.retain(|r| eval(p, &mut r.vals.as_slice()));
            rows
        }
        Step::Table(cols) => rows
            .into_iter()
            .map(|r| Row { vals: cols.iter().map(|&c| r.vals[c].clone()).collect(), raw: None })
            .collect(),
        Step::Sort(keys) => {
            rows.sort_by(|a, b| {
                for &(c, desc) in keys {
                    let (x, y) = (&a.vals[c], &b.vals[c]);
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.total_cmp(x),
                        _ => x.total_cmp(y),
                    };
                    if o.is_ne() {
                        return o;
                    }
                }
                std::cmp::Ordering::Equal
            });
            rows
        }
        Step::Head(n) => {
            rows.truncate(*n);
            rows
        }
        Step::Dedup(cols) => {
            let mut seen = HashSet::new();
            rows.retain(|r| seen.insert(cols.iter().map(|&c| r.vals[c].clone()).collect::<Vec<_>>()));
            rows
        }
        Step::Aggregate { by, aggs } => aggregate(&rows, by, aggs),
        Step::Top { limit, col, by, rare } => top(&rows, *limit, *col, by, *rare),
        Step::Timeline { interval, col, by } => timeline(&rows, *interval, *col, *by),
    }
}

/// The distinct elements of a list (an empty list is one null), or the value itself.
fn fan(v: &Val<'static>) -> Vec<Val<'static>> {
    match v {
        Val::List(items) if items.is_empty() => vec![Val::Null],
        Val::List(items) => {
            let mut out: Vec<Val<'static>> = Vec::with_capacity(items.len());
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
            out
        }
        v => vec![v.clone()],
    }
}

/// Every combination of the `by` values of a row (lists fan out).
fn keys(r: &Row, by: &[usize]) -> Vec<Vec<Val<'static>>> {
    let mut out = vec![Vec::with_capacity(by.len())];
    for &c in by {
        let vals = fan(&r.vals[c]);
        out = out
            .into_iter()
            .flat_map(|k| {
                vals.iter().map(move |v| {
                    let mut k = k.clone();
                    k.push(v.clone());
                    k
                })
            })
            .collect();
    }
    out
}

fn cmp_keys(a: &[Val<'_>], b: &[Val<'_>]) -> std::cmp::Ordering {
    a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
}

/// Groups in order of first appearance, each with its rows' indices.
fn groups(rows: &[Row], by: &[usize]) -> Vec<(Vec<Val<'static>>, Vec<usize>)> {
    let mut index: HashMap<Vec<Val<'static>>, usize> = HashMap::new();
    let mut out: Vec<(Vec<Val<'static>>, Vec<usize>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        for k in keys(r, by) {
            let g = *index.entry(k.clone()).or_insert_with(|| {
                out.push((k, Vec::new()));
                out.len() - 1
            });
            out[g].1.push(i);
        }
    }
    if by.is_empty() && out.is_empty() {
        out.push((Vec::new(), Vec::new()));
    }
    out.sort_by(|a, b| cmp_keys(&a.0, &b.0));
    out
}

fn aggregate(rows: &[Row], by: &[usize], aggs: &[Agg]) -> Vec<Row> {
    groups(rows, by)
        .into_iter()
        .map(|(mut key, members)| {
            for a in aggs {
                key.push(agg(a, rows, &members));
            }
            Row { vals: key, raw: None }
        })
        .collect()
}

/// The non-null values of a column over some rows, lists flattened.
fn values<'r>(rows: &'r [Row], members: &[usize], col: usize) -> Vec<&'r Val<'static>> {
    let mut out = Vec::new();
    for &i in members {
        match &rows[i].vals[col] {
            Val::Null => {}
            Val::List(items) => out.extend(items.iter().filter(|v| !v.is_null())),
            v => out.push(v),
        }
    }
    out
}

/// One aggregate over the rows of a group (definitions in docs/query.md).
pub fn agg(a: &Agg, rows: &[Row], members: &[usize]) -> Val<'static> {
    let Some(col) = a.col else { return Val::Int(members.len() as i64) };
    match a.func {
        AggFunc::Count => Val::Int(
            members.iter().filter(|&&i| crate::eval::test_val(&crate::plan::Test::Exists, &rows[i].vals[col])).count()
                as i64,
        ),
        AggFunc::Dc => Val::Int(values(rows, members, col).into_iter().collect::<HashSet<_>>().len() as i64),
        AggFunc::Values => {
            let mut v: Vec<Val<'static>> =
                values(rows, members, col).into_iter().collect::<HashSet<_>>().into_iter().cloned().collect();
            v.sort_by(|a, b| a.total_cmp(b));
            Val::List(v)
        }
        AggFunc::Min => {
            values(rows, members, col).into_iter().min_by(|a, b| a.total_cmp(b)).cloned().unwrap_or(Val::Null)
        }
        AggFunc::Max => {
            values(rows, members, col).into_iter().max_by(|a, b| a.total_cmp(b)).cloned().unwrap_or(Val::Null)
        }
        AggFunc::Sum | AggFunc::Avg => {
            let nums: Vec<&Val<'static>> = values(rows, members, col)
                .into_iter()
                .filter(|v| matches!(v, Val::Int(_) | Val::Float(_) | Val::Dur(_)))
                .collect();
            if nums.is_empty() {
                return if a.func == AggFunc::Sum { Val::Int(0) } else { Val::Null };
            }
            let n = nums.len() as f64;
            if nums.iter().all(|v| matches!(v, Val::Dur(_))) {
                let sum: i128 = nums.iter().map(|v| if let Val::Dur(d) = v { i128::from(*d) } else { 0 }).sum();
                return match a.func {
                    AggFunc::Sum => Val::Dur(clamp(sum)),
                    _ => Val::Dur((sum as f64 / n).round() as i64),
                };
            }
            if a.func == AggFunc::Sum && nums.iter().all(|v| matches!(v, Val::Int(_))) {
                let sum: i128 = nums.iter().map(|v| if let Val::Int(i) = v { i128::from(*i) } else { 0 }).sum();
                return Val::Int(clamp(sum));
            }
            let sum: f64 = nums.iter().filter_map(|v| v.as_f64()).sum();
            Val::Float(if a.func == AggFunc::Sum { sum } else { sum / n })
        }
        AggFunc::P50 | AggFunc::P90 | AggFunc::P95 | AggFunc::P99 => {
            let p = match a.func {
                AggFunc::P50 => 50,
                AggFunc::P90 => 90,
                AggFunc::P95 => 95,
                _ => 99,
            };
            let mut v = values(rows, members, col);
            if v.is_empty() {
                return Val::Null;
            }
            v.sort_by(|a, b| a.total_cmp(b));
            v[nearest_rank(p, v.len())].clone()
        }
    }
}

/// The nearest-rank percentile's index: the smallest value with at least p% of values at or below.
pub fn nearest_rank(p: usize, n: usize) -> usize {
    (p * n).div_ceil(100).clamp(1, n) - 1
}

fn clamp(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn top(rows: &[Row], limit: usize, col: usize, by: &[usize], rare: bool) -> Vec<Row> {
    let mut out = Vec::new();
    for (key, members) in groups(rows, by) {
        let mut counts: HashMap<Val<'static>, usize> = HashMap::new();
        for &i in &members {
            for v in fan(&rows[i].vals[col]) {
                if !v.is_null() {
                    *counts.entry(v).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(Val<'static>, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| if rare { a.1.cmp(&b.1) } else { b.1.cmp(&a.1) }.then_with(|| a.0.total_cmp(&b.0)));
        for (v, n) in ranked.into_iter().take(limit) {
            let mut vals = key.clone();
            vals.push(v);
            vals.push(Val::Int(n as i64));
            vals.push(Val::Float(percent(n, members.len())));
            out.push(Row { vals, raw: None });
        }
    }
    out
}

/// `n` of `total` in percent, rounded to 2 decimals.
pub fn percent(n: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { (n as f64 * 10000.0 / total as f64).round() / 100.0 }
}

/// Zero-filled buckets only for a single series, and only this many.
const MAX_FILL: i64 = 100_000;

fn timeline(rows: &[Row], interval: i64, col: usize, by: Option<usize>) -> Vec<Row> {
    let mut counts: HashMap<(i64, Val<'static>), i64> = HashMap::new();
    for r in rows {
        let Val::Time(t) = r.vals[col] else { continue };
        let bucket = t.div_euclid(interval) * interval;
        let series = match by {
            Some(c) => fan(&r.vals[c]),
            None => vec![Val::Null],
        };
        for s in series {
            *counts.entry((bucket, s)).or_default() += 1;
        }
    }
    timeline_rows(&counts, interval, by.is_some())
}

/// The rows of `timeline` from its counts by (bucket start, series; `Null` without `by`).
pub fn timeline_rows(counts: &HashMap<(i64, Val<'static>), i64>, interval: i64, by: bool) -> Vec<Row> {
    let mut keys: Vec<(i64, Val<'static>)> = counts.keys().cloned().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.total_cmp(&b.1)));
    if !by {
        if let (Some(first), Some(last)) = (keys.first(), keys.last()) {
            let (lo, hi) = (first.0, last.0);
            if (hi - lo) / interval < MAX_FILL {
                return (0..=(hi - lo) / interval)
                    .map(|i| {
                        let b = lo + i * interval;
                        let n = counts.get(&(b, Val::Null)).copied().unwrap_or(0);
                        Row { vals: vec![Val::Time(b), Val::Int(n)], raw: None }
                    })
                    .collect();
            }
        }
        return keys.into_iter().map(|k| Row { vals: vec![Val::Time(k.0), Val::Int(counts[&k])], raw: None }).collect();
    }
    keys.into_iter()
        .map(|k| {
            let n = counts[&k];
            Row { vals: vec![Val::Time(k.0), k.1, Val::Int(n)], raw: None }
        })
        .collect()
}

/// The rows of an `Aggregate` step whose aggregates are all plain `count`, from the size of each
/// group (keys of scalar values: no list fans out). As [`aggregate`]: groups in key order, and
/// without `by` one group even when there are no rows.
pub fn count_rows(mut groups: Vec<(Vec<Val<'static>>, i64)>, by: usize, aggs: usize) -> Vec<Row> {
    if by == 0 && groups.is_empty() {
        groups.push((Vec::new(), 0));
    }
    groups.sort_by(|a, b| cmp_keys(&a.0, &b.0));
    groups
        .into_iter()
        .map(|(mut key, n)| {
            key.extend(std::iter::repeat_n(Val::Int(n), aggs));
            Row { vals: key, raw: None }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(50, 1), 0);
        assert_eq!(nearest_rank(50, 4), 1);
        assert_eq!(nearest_rank(99, 100), 98);
        assert_eq!(nearest_rank(99, 101), 99);
        assert_eq!(nearest_rank(90, 10), 8);
    }
}
