//! Windows in memory over the rows a rule's query matched: each kind finds its **triggers** (the
//! requests at which it fires) and their evidence, then [`cluster`] makes alerts of them, one per
//! burst and group. Pure functions of [`Hit`]s, so that tests compare them with a plain
//! evaluation.

use std::collections::HashMap;

use crate::rules::{Metric, Spike};

/// One matched request, as the windows see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// `time` (requestReceivedTimestamp), µs.
    pub time: i64,
    pub id: String,
    /// The `group_by` values (absent: empty text).
    pub group: Vec<String>,
    /// The counted field of `dc(FIELD)` (`None` when absent).
    pub value: Option<String>,
    /// The step of a sequence (0 otherwise).
    pub step: usize,
}

/// The hits of each group: positions into the hits, in time order (hits must be sorted by time).
pub fn groups(hits: &[Hit]) -> Vec<(Vec<String>, Vec<usize>)> {
    let mut at: HashMap<&[String], usize> = HashMap::new();
    let mut out: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (i, h) in hits.iter().enumerate() {
        let g = *at.entry(&h.group).or_insert_with(|| {
            out.push((h.group.clone(), Vec::new()));
            out.len() - 1
        });
        out[g].1.push(i);
    }
    out
}

/// Where a group fired: the position (in the group's hits) of the request it fired at, and its
/// evidence as inclusive ranges of positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub at: usize,
    pub evidence: Vec<(usize, usize)>,
}

/// Ends of the runs of equal times: `[(start, end))`.
fn batches(times: &[i64]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for i in 1..=times.len() {
        if i == times.len() || times[i] != times[s] {
            out.push((s, i));
            s = i;
        }
    }
    out
}

/// Every request fires.
pub fn single(times: &[i64]) -> Vec<Trigger> {
    (0..times.len()).map(|p| Trigger { at: p, evidence: vec![(p, p)] }).collect()
}

/// A sliding threshold over one group's hits (`times` sorted; `values` the counted field): fires
/// at each request whose window `(t − window, t]` holds `n` or more requests (or distinct values).
pub fn threshold(times: &[i64], values: &[Option<&str>], window: i64, metric: &Metric, n: u64) -> Vec<Trigger> {
    let mut out = Vec::new();
    let mut left = 0;
    let mut right = 0; // the window is left..right
    let mut distinct: HashMap<&str, u64> = HashMap::new();
    for (s, e) in batches(times) {
        let t = times[s];
        while right < e {
            if let Some(v) = values[right] {
                *distinct.entry(v).or_default() += 1;
            }
            right += 1;
        }
        while times[left] <= t.saturating_sub(window) {
            if let Some(v) = values[left] {
                let c = distinct.get_mut(v).expect("counted on the way in");
                *c -= 1;
                if *c == 0 {
                    distinct.remove(v);
                }
            }
            left += 1;
        }
        let m = match metric {
            Metric::Count => (right - left) as u64,
            Metric::Dc(_) => distinct.len() as u64,
        };
        if m >= n {
            out.extend((s..e).map(|p| Trigger { at: p, evidence: vec![(left, e - 1)] }));
        }
    }
    out
}

/// First seen: fires at a request of a group (its `group_by` and `first_seen` values) when the
/// group has no request in `[t − lookback, t)` and `t >= learn_from`; its evidence runs on to the
/// group's requests up to `t + window`.
pub fn first_seen(times: &[i64], lookback: i64, learn_from: i64, window: i64) -> Vec<Trigger> {
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    for (s, e) in batches(times) {
        let t = times[s];
        let seen = last.is_some_and(|l| l >= t.saturating_sub(lookback));
        if !seen && t >= learn_from {
            let end = s + times[s..].partition_point(|&x| x <= t.saturating_add(window));
            out.extend((s..e).map(|p| Trigger { at: p, evidence: vec![(p, end - 1)] }));
        }
        last = Some(t);
    }
    out
}

/// Rate spikes (see [`Spike`] for the method): fires at each request of a bucket whose count is
/// at least `min_count` and `factor` × the EWMA baseline of the group's buckets before it.
pub fn spike(times: &[i64], s: &Spike) -> Vec<Trigger> {
    let mut out = Vec::new();
    let mut base = 0.0f64;
    let mut prev_bucket: Option<i64> = None;
    let mut i = 0;
    while i < times.len() {
        let b = times[i].div_euclid(s.bucket);
        let end = i + times[i..].partition_point(|&x| x.div_euclid(s.bucket) == b);
        if let Some(p) = prev_bucket {
            // Empty buckets between: each one decays the baseline, as a count of 0.
            let mut k = p + 1;
            while k < b && base != 0.0 {
                base *= 1.0 - s.alpha;
                k += 1;
            }
        }
        let c = (end - i) as u64;
        if c >= s.min_count && c as f64 >= s.factor * base {
            out.extend((i..end).map(|p| Trigger { at: p, evidence: vec![(i, end - 1)] }));
        }
        base = s.alpha * c as f64 + (1.0 - s.alpha) * base;
        prev_bucket = Some(b);
        i = end;
    }
    out
}

/// A sequence over one group's hits of every step (`steps[p]` the step of position `p`): fires
/// at a request of the last step when requests of steps 0, 1, … came before it, each strictly
/// later than the one before, the first within `window` of it. The evidence is the latest such
/// chain.
pub fn sequence(times: &[i64], steps: &[usize], n_steps: usize, window: i64) -> Vec<Trigger> {
    let mut out = Vec::new();
    // chain[i]: the chain of steps 0..=i with the latest start, as (start time, positions).
    let mut chain: Vec<Option<(i64, Vec<usize>)>> = vec![None; n_steps];
    for (s, e) in batches(times) {
        let t = times[s];
        let mut updates: Vec<(usize, (i64, Vec<usize>))> = Vec::new();
        for (p, &st) in steps.iter().enumerate().take(e).skip(s) {
            if st == 0 {
                if n_steps == 1 {
                    out.push(Trigger { at: p, evidence: vec![(p, p)] });
                } else {
                    updates.push((0, (t, vec![p])));
                }
                continue;
            }
            let Some((start, ev)) = &chain[st - 1] else { continue };
            if t - start > window {
                continue;
            }
            let mut ev = ev.clone();
            ev.push(p);
            if st == n_steps - 1 {
                out.push(Trigger { at: p, evidence: ev.iter().map(|&q| (q, q)).collect() });
            } else {
                updates.push((st, (*start, ev)));
            }
        }
        for (st, c) in updates {
            let replace = match &chain[st] {
                Some((start, _)) => c.0 >= *start,
                None => true,
            };
            if replace {
                chain[st] = Some(c);
            }
        }
    }
    out
}

/// One alert's worth of a group: the evidence positions (sorted, distinct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub positions: Vec<usize>,
}

/// Makes alerts of one group's triggers (in time order): a trigger whose earliest evidence is no
/// later than `suppress` after the last evidence of the alert being built joins it.
pub fn cluster(times: &[i64], triggers: &[Trigger], suppress: i64) -> Vec<Cluster> {
    let mut out: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut last_time = i64::MIN;
    for t in triggers {
        let first = t.evidence.iter().map(|r| r.0).min().unwrap_or(t.at);
        let last = t.evidence.iter().map(|r| r.1).max().unwrap_or(t.at);
        match out.last_mut() {
            Some(ranges) if times[first] <= last_time.saturating_add(suppress) => {
                ranges.extend(&t.evidence);
                last_time = last_time.max(times[last]);
            }
            _ => {
                out.push(t.evidence.clone());
                last_time = times[last];
            }
        }
    }
    out.into_iter()
        .map(|mut ranges| {
            ranges.sort_unstable();
            let mut positions = Vec::new();
            let mut next = 0usize;
            for (a, b) in ranges {
                for p in a.max(next)..=b {
                    positions.push(p);
                }
                next = next.max(b + 1);
            }
            Cluster { positions }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_fires_whatever_its_alignment() {
        // 5 requests 50 s apart: any 5 m window from the first holds them all.
        for offset in [0, 17_000_000, 299_000_000] {
            let times: Vec<i64> = (0..5).map(|i| offset + i * 50_000_000).collect();
            let t = threshold(&times, &[None; 5], 300_000_000, &Metric::Count, 5);
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].evidence, vec![(0, 4)]);
        }
        // The window is (t − 5m, t]: a request exactly 5 m before is out.
        let times = [0, 300_000_000];
        assert!(threshold(&times, &[None; 2], 300_000_000, &Metric::Count, 2).is_empty());
        let times = [1, 300_000_000];
        assert_eq!(threshold(&times, &[None; 2], 300_000_000, &Metric::Count, 2).len(), 1);
    }

    #[test]
    fn distinct_counts_and_clusters() {
        let times = [0, 1, 2, 3, 1_000_000_000];
        let v = [Some("a"), Some("a"), Some("b"), Some("c"), Some("d")];
        let t = threshold(&times, &v, 10, &Metric::Dc("name".into()), 3);
        assert_eq!(t.iter().map(|t| t.at).collect::<Vec<_>>(), vec![3]);
        let c = cluster(&times, &t, 0);
        assert_eq!(c, vec![Cluster { positions: vec![0, 1, 2, 3] }]);
    }

    #[test]
    fn sequences_need_order_and_window() {
        // A at 0, B at 0 (same time: not after), B at 5, A at 10, B at 100 (too late for A@10 with
        // window 50).
        let times = [0, 0, 5, 10, 100];
        let steps = [0, 1, 1, 0, 1];
        let t = sequence(&times, &steps, 2, 50);
        assert_eq!(t.iter().map(|t| t.at).collect::<Vec<_>>(), vec![2]);
        assert_eq!(t[0].evidence, vec![(0, 0), (2, 2)]);
    }

    #[test]
    fn spikes_against_their_own_baseline() {
        let s = Spike { bucket: 10, factor: 3.0, min_count: 3, alpha: 0.5 };
        // Buckets: 0:1, 1:1, 2:6 → base before bucket 2 = 0.75 → fires.
        let mut times = vec![0, 10];
        times.extend([20, 21, 22, 23, 24, 25]);
        let t = spike(&times, &s);
        assert_eq!(t.len(), 6);
        assert_eq!(t[0].evidence, vec![(2, 7)]);
    }
}
