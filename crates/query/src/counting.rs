//! `count by …` and `timeline` counted on the decode threads of a raw scan, without a row per
//! matching event.
//!
//! A question such as `| count by user` matches every event: the row path made a row (a vector
//! and an owned string) for each on the decode threads, held a million of them until the
//! latest-stage rule was settled, then grouped them on one thread. Here each chunk of the input
//! keeps a table of the group keys its matching events fall in, and for each matching event only
//! the groups it belongs to ([`Groups`]). The latest-stage rule is settled as before
//! ([`crate::latest::Collector`]); then each chunk counts the events the rule kept, and the
//! chunks' tables are joined. The answer is the first step's rows, exactly as
//! [`pipeline::run`](crate::pipeline::run) makes them from the rows kept: the same groups (list
//! values fanned out by the same [`pipeline::keys`]), each group's key as its first kept event
//! had it (`2` and `2.0` are one group, shown as whichever came first), in the same order.
//!
//! Applies to raw logs (not Parquet files) when the plan's first step is `count by` with bare
//! counts only, or `timeline` (with or without `by`): [`Counting::of`].

use crate::pipeline::{self, ByHash, Row, key_hash};
use crate::plan::{Plan, Step};
use crate::value::Val;

/// What the first step counts.
#[derive(Debug, Clone)]
pub(crate) enum Counting {
    /// `count by` the slots `by`, every aggregate (`aggs` of them) a bare count.
    Count { by: Vec<usize>, aggs: usize },
    /// `timeline`: events per bucket of `interval` of the time slot `col`, and per value of `by`.
    Timeline { interval: i64, col: usize, by: Option<usize> },
}

impl Counting {
    /// The counting a plan's first step allows, if any.
    pub(crate) fn of(plan: &Plan) -> Option<Counting> {
        if plan.whole_events {
            return None;
        }
        match &plan.steps.first()?.0 {
            Step::Aggregate { by, aggs }
                if aggs.iter().all(|a| a.func == kaq_syntax::AggFunc::Count && a.col.is_none()) =>
            {
                Some(Counting::Count { by: by.clone(), aggs: aggs.len() })
            }
            Step::Timeline { interval, col, by } if *interval > 0 => {
                Some(Counting::Timeline { interval: *interval, col: *col, by: *by })
            }
            _ => None,
        }
    }

    /// The slots [`Counting::add`] reads.
    pub(crate) fn slots(&self) -> Vec<usize> {
        match self {
            Counting::Count { by, .. } => by.clone(),
            Counting::Timeline { col, by, .. } => std::iter::once(*col).chain(*by).collect(),
        }
    }

    /// Notes in `groups` the groups of the next matching event (`get` gives its value of each of
    /// [`Counting::slots`]).
    pub(crate) fn add<'v, 'e: 'v>(
        &self,
        groups: &mut Groups,
        state: &ahash::RandomState,
        get: impl Fn(usize) -> &'v Val<'e>,
    ) {
        match self {
            Counting::Count { by, .. } => {
                if by.iter().any(|&c| matches!(get(c), Val::List(_))) {
                    // Lists fan out, as the row path does it.
                    let row = Row { vals: by.iter().map(|&c| get(c).clone().into_owned()).collect(), raw: None };
                    let all: Vec<usize> = (0..by.len()).collect();
                    for key in pipeline::keys(&row, &all) {
                        groups.join(key_hash(state, key.iter()), |k| all_same(k, key.iter()), || key.clone());
                    }
                } else {
                    let h = key_hash(state, by.iter().map(|&c| get(c)));
                    groups.join(
                        h,
                        |k| all_same(k, by.iter().map(|&c| get(c))),
                        || by.iter().map(|&c| get(c).clone().into_owned()).collect(),
                    );
                }
            }
            Counting::Timeline { interval, col, by } => {
                if let Val::Time(t) = get(*col) {
                    let bucket = Val::Time(t.div_euclid(*interval) * interval);
                    match by.map_or(&Val::Null, |c| get(c)) {
                        list @ Val::List(_) => {
                            for series in pipeline::fan(&list.clone().into_owned()) {
                                let key = [bucket.clone(), series];
                                groups.join(key_hash(state, key.iter()), |k| all_same(k, key.iter()), || key.to_vec());
                            }
                        }
                        series => {
                            let key = [&bucket, series];
                            groups.join(
                                key_hash(state, key.into_iter()),
                                |k| all_same(k, key.into_iter()),
                                || key.iter().map(|v| (*v).clone().into_owned()).collect(),
                            );
                        }
                    }
                }
            }
        }
        groups.ends.push(groups.members.len());
    }

    /// The first step's rows, from the chunks' groups (`(index of the chunk's first hit, its
    /// groups)`, in input order) and which hits the latest-stage rule kept.
    pub(crate) fn rows(&self, chunks: Vec<(usize, Groups)>, keep: &[bool]) -> Vec<Row> {
        // The row path finds each kept hit's groups in turn: a value joins the first group made
        // before it whose key is equal (`==`), else makes one. A chunk's key holds values that
        // are the same ([`same`]), so all of them join one group, the one its first kept
        // occurrence joins. So the chunks' keys are joined in the order of their first kept
        // occurrence (the hit, then its place among the hit's groups), by the same hash the
        // chunks used (one state per scan): the groups are made in the row path's order, each
        // with the key of the value that made it. (`==` is not transitive for numbers past
        // 2^53, `Int(2^53)` = `Float(2^53)` = `Int(2^53 + 1)`: the order decides.)
        let mut all: ByHash<Vec<Val<'static>>, i64> = ByHash::default();
        for (start, g) in chunks {
            // Each key's count and first kept occurrence.
            let mut counts = vec![(0i64, (usize::MAX, 0usize)); g.keys.entries.len()];
            let mut from = 0;
            for (i, &end) in g.ends.iter().enumerate() {
                if keep[start + i] {
                    for (place, &m) in g.members[from..end].iter().enumerate() {
                        let c = &mut counts[m as usize];
                        c.0 += 1;
                        c.1 = c.1.min((start + i, place));
                    }
                }
                from = end;
            }
            let mut found: Vec<_> =
                g.keys.into_entries().into_iter().zip(counts).filter(|(_, (n, _))| *n > 0).collect();
            found.sort_by_key(|(_, (_, first))| *first);
            for ((key, h), (n, _)) in found {
                let e = all.find(h, |k| *k == key, || (key.clone(), 0));
                all.entries[e].1 += n;
            }
        }
        // In the order made, as the row path makes them (its sort by key is stable).
        let entries = all.into_entries();
        match self {
            Counting::Count { by, aggs } => pipeline::count_rows(entries, by.len(), *aggs),
            Counting::Timeline { interval, by, .. } => {
                let counts: std::collections::HashMap<(i64, Val<'static>), i64, ahash::RandomState> = entries
                    .into_iter()
                    .map(|(mut k, n)| {
                        let series = k.pop().expect("bucket and series");
                        let Some(Val::Time(bucket)) = k.pop() else {
                            unreachable!("a timeline key starts with its bucket")
                        };
                        ((bucket, series), n)
                    })
                    .collect();
                pipeline::timeline_rows(&counts, *interval, by.is_some())
            }
        }
    }
}

/// Whether a group's key is `key`, value by value ([`same`]).
fn all_same<'a, 'e: 'a>(k: &[Val<'static>], key: impl ExactSizeIterator<Item = &'a Val<'e>>) -> bool {
    k.len() == key.len() && k.iter().zip(key).all(|(a, b)| same(a, b))
}

/// The same value of the same kind: `2` and `2.0` are equal ([`Val`]'s `==`) but shown apart, so
/// a chunk keeps them apart and the join takes the one the first kept event had.
fn same(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::List(x), Val::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        _ => std::mem::discriminant(a) == std::mem::discriminant(b) && a == b,
    }
}

/// One chunk's group keys, and the groups of each of its matching events.
#[derive(Default)]
pub(crate) struct Groups {
    /// The keys, each with its hash, in order of first appearance.
    keys: ByHash<Vec<Val<'static>>, u64>,
    /// For each matching event in order, where its groups end in `members`.
    ends: Vec<usize>,
    members: Vec<u32>,
}

impl Groups {
    /// Notes that the event being added is in the group of `key` (of hash `h`).
    fn join(&mut self, h: u64, is: impl Fn(&[Val<'static>]) -> bool, make: impl FnOnce() -> Vec<Val<'static>>) {
        let g = self.keys.find(h, |k| is(k), || (make(), h));
        // Fewer than 2^32 keys: each is a vector made from a chunk of a few MiB of text (fanned
        // out lists make combinations, but the row path would hold each of them too).
        self.members.push(g as u32);
    }

    /// Matching events noted.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}
