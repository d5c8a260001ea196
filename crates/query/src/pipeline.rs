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

/// Something a step did that its rows do not show, which the user should be told (on stderr by
/// `kaq query`, under the answer in the REPL). Never changes an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A `timeline` without `by` spans `buckets` intervals, more than [`MAX_FILL`]: empty buckets
    /// are left out, only those with events are listed.
    TimelineNotFilled { buckets: i64 },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::TimelineNotFilled { buckets } => write!(
                f,
                "timeline: the events span {buckets} intervals, more than {MAX_FILL}: empty buckets are \
                 left out (only intervals with events are listed); a longer interval fills them"
            ),
        }
    }
}

/// The note `step` leaves, given the rows it produced.
pub fn note(step: &Step, out: &[Row]) -> Option<Note> {
    match step {
        Step::Timeline { interval, by: None, .. } => {
            let time = |r: &Row| match r.vals[0] {
                Val::Time(t) => Some(t),
                _ => None,
            };
            let (lo, hi) = (time(out.first()?)?, time(out.last()?)?);
            let buckets = (hi - lo) / interval;
            (buckets >= MAX_FILL).then_some(Note::TimelineNotFilled { buckets: buckets + 1 })
        }
        _ => None,
    }
}

/// Runs `steps` over `rows` as [`run`] does, adding the notes they leave to `notes`.
pub fn run_noting(steps: &[Step], mut rows: Vec<Row>, notes: &mut Vec<Note>) -> Vec<Row> {
    for step in steps {
        rows = apply(step, rows);
        notes.extend(note(step, &rows));
    }
    rows
}

fn apply(step: &Step, mut rows: Vec<Row>) -> Vec<Row> {
    match step {
        Step::Where(p) => {
            rows.retain(|r| eval(p, &mut r.vals.as_slice()));
            rows
        }
        Step::Table(cols) => {
            // Each value moved into its column, cloned only for a column named again later.
            let again: Vec<bool> = cols.iter().enumerate().map(|(k, c)| cols[k + 1..].contains(c)).collect();
            rows.into_iter()
                .map(|mut r| Row {
                    vals: cols
                        .iter()
                        .zip(&again)
                        .map(
                            |(&c, &again)| {
                                if again { r.vals[c].clone() } else { std::mem::replace(&mut r.vals[c], Val::Null) }
                            },
                        )
                        .collect(),
                    raw: None,
                })
                .collect()
        }
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
        Step::Aggregate { by, aggs } => free_later(aggregate(&rows, by, aggs), rows),
        Step::Top { limit, col, by, rare } => free_later(top(&rows, *limit, *col, by, *rare), rows),
        Step::Timeline { interval, col, by } => free_later(timeline(&rows, *interval, *col, *by), rows),
    }
}

/// `out`, once `rows` (read, no longer needed) are handed to the freeing thread when there are
/// many: a million rows made on the decode threads took a tenth of a second to free here, after
/// the answer was ready (freeing memory another thread allocated is slow).
fn free_later(out: Vec<Row>, rows: Vec<Row>) -> Vec<Row> {
    if rows.len() >= FREE_LATER_FROM {
        drop_later(rows);
    }
    out
}

/// Drops `x` on the freeing thread: one for the process, two values queued at most (a value it
/// cannot take now is dropped here). For what is large, no longer needed, and slow to free
/// (freeing memory that other threads allocated), once the answer is ready.
pub(crate) fn drop_later<T: Send + 'static>(x: T) {
    use std::sync::OnceLock;
    use std::sync::mpsc::{SyncSender, sync_channel};
    type Freed = Box<dyn Send>;
    static FREER: OnceLock<Option<SyncSender<Freed>>> = OnceLock::new();
    let freer = FREER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Freed>(2);
        let spawned = std::thread::Builder::new().name("kaq-free".into()).spawn(move || rx.into_iter().for_each(drop));
        spawned.ok().map(|_| tx)
    });
    // Full, or no thread: the value comes back in the error, dropped here.
    let _ = freer.as_ref().map(|tx| tx.try_send(Box::new(x)));
}

/// Rows below this many are freed where they were read.
const FREE_LATER_FROM: usize = 65_536;

/// The distinct elements of a list (an empty list is one null), or the value itself.
pub(crate) fn fan(v: &Val<'static>) -> Vec<Val<'static>> {
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
pub(crate) fn keys(r: &Row, by: &[usize]) -> Vec<Vec<Val<'static>>> {
    // Most rows have no list among their `by` values: one key.
    if by.iter().all(|&c| !matches!(r.vals[c], Val::List(_))) {
        return vec![by.iter().map(|&c| r.vals[c].clone()).collect()];
    }
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

/// The rows of an `Aggregate` step: each row's aggregated values fed, in row order, to the
/// accumulators of every group its key (lists fanned out) falls in.
fn aggregate(rows: &[Row], by: &[usize], aggs: &[Agg]) -> Vec<Row> {
    let mut a = Aggregator::new(by, aggs);
    rows.iter().for_each(|r| a.add(r));
    a.finish()
}

/// `stats … by …` fed one row at a time, in row order ([`Aggregator::add`]): what the step gives
/// over those rows, without holding them (a raw scan hands it the rows the latest-stage rule
/// keeps as it settles them, from memory or its temporary file: `kaq_query::scan`).
pub(crate) struct Aggregator<'p> {
    by: &'p [usize],
    aggs: &'p [Agg],
    /// Keys the groups' hashes ([`find_groups`]).
    state: ahash::RandomState,
    groups: ByHash<Vec<Val<'static>>, Vec<Acc<'static>>>,
    found: Vec<usize>,
}

impl<'p> Aggregator<'p> {
    pub(crate) fn new(by: &'p [usize], aggs: &'p [Agg]) -> Aggregator<'p> {
        Aggregator { by, aggs, state: ahash::RandomState::new(), groups: ByHash::default(), found: Vec::new() }
    }

    pub(crate) fn add(&mut self, r: &Row) {
        let aggs = self.aggs;
        find_groups(&mut self.groups, &self.state, r, self.by, &mut self.found, || aggs.iter().map(Acc::new).collect());
        for &g in &self.found {
            for (acc, a) in self.groups.entries[g].1.iter_mut().zip(aggs) {
                acc.add(a.col.map_or(&Val::Null, |c| &r.vals[c]));
            }
        }
    }

    /// The step's rows.
    pub(crate) fn finish(self) -> Vec<Row> {
        aggregate_rows(self.groups.into_entries(), self.by.len(), self.aggs)
    }
}

/// The hash of a group's key, value by value, under `state` (aHash, keyed at random per process:
/// SipHash was a fifth of `| count by user`).
pub(crate) fn key_hash<'a, 'e: 'a>(state: &ahash::RandomState, key: impl Iterator<Item = &'a Val<'e>>) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = state.build_hasher();
    key.for_each(|v| v.hash(&mut h));
    h.finish()
}

/// The groups row `r` falls in by the slots `by` (lists fanned out, as [`keys`] makes them), into
/// `found`: each found in `groups` by its key's hash, the key compared in place (a row's key is
/// copied only for a new group, whose value `new` makes).
fn find_groups<V>(
    groups: &mut ByHash<Vec<Val<'static>>, V>,
    state: &ahash::RandomState,
    r: &Row,
    by: &[usize],
    found: &mut Vec<usize>,
    new: impl Fn() -> V,
) {
    found.clear();
    if by.iter().all(|&c| !matches!(r.vals[c], Val::List(_))) {
        let h = key_hash(state, by.iter().map(|&c| &r.vals[c]));
        let same = |k: &Vec<Val<'static>>| k.iter().zip(by).all(|(v, &c)| *v == r.vals[c]);
        found.push(groups.find(h, same, || (by.iter().map(|&c| r.vals[c].clone()).collect(), new())));
    } else {
        for k in keys(r, by) {
            let h = key_hash(state, k.iter());
            found.push(groups.find(h, |g| *g == k, || (k.clone(), new())));
        }
    }
}

/// Entries found by the hash of their key, the key compared in place (`aggregate`'s groups,
/// `timeline`'s counts): a key is made only for a new entry, not copied for every row. `first`
/// holds the first entry of each hash, `next` chains the entries whose hashes are equal. The
/// hashes given are keyed at random already: the map takes them as they are.
pub(crate) struct ByHash<K, V> {
    first: HashMap<u64, usize, std::hash::BuildHasherDefault<crate::latest::PassHasher>>,
    next: Vec<usize>,
    /// In the order first found.
    pub(crate) entries: Vec<(K, V)>,
}

impl<K, V> Default for ByHash<K, V> {
    fn default() -> Self {
        ByHash { first: HashMap::default(), next: Vec::new(), entries: Vec::new() }
    }
}

impl<K, V> ByHash<K, V> {
    /// The entry of a key of hash `h` (`same` tells whether an entry's key is it), made by `make`
    /// if there is none.
    pub(crate) fn find(&mut self, h: u64, same: impl Fn(&K) -> bool, make: impl FnOnce() -> (K, V)) -> usize {
        const END: usize = usize::MAX;
        let new = self.entries.len();
        let mut g = *self.first.entry(h).or_insert(new);
        while g != new {
            if same(&self.entries[g].0) {
                return g;
            }
            if self.next[g] == END {
                self.next[g] = new;
            }
            g = self.next[g];
        }
        self.entries.push(make());
        self.next.push(END);
        new
    }

    /// The entries, in the order first found (the index is let go first).
    pub(crate) fn into_entries(self) -> Vec<(K, V)> {
        drop((self.first, self.next));
        self.entries
    }
}

/// The rows of an `Aggregate` step from each group's key and accumulators (one per aggregate, fed
/// every row of the group in order): groups in key order, and without `by` one group even when
/// there are no rows.
pub fn aggregate_rows(mut groups: Vec<(Vec<Val<'static>>, Vec<Acc<'static>>)>, by: usize, aggs: &[Agg]) -> Vec<Row> {
    if by == 0 && groups.is_empty() {
        groups.push((Vec::new(), aggs.iter().map(Acc::new).collect()));
    }
    groups.sort_by(|a, b| cmp_keys(&a.0, &b.0));
    groups
        .into_iter()
        .map(|(mut key, accs)| {
            key.extend(accs.into_iter().map(Acc::finish));
            Row { vals: key, raw: None }
        })
        .collect()
}

/// One aggregate over the rows of a group (definitions in docs/query.md).
pub fn agg(a: &Agg, rows: &[Row], members: &[usize]) -> Val<'static> {
    let mut acc = Acc::new(a);
    for &i in members {
        acc.add(a.col.map_or(&Val::Null, |c| &rows[i].vals[c]));
    }
    acc.finish()
}

/// One aggregate's running state over a group's rows (definitions in docs/query.md): fed each
/// row's value in row order ([`Acc::add`]), or joined with the state of the rows that follow
/// ([`Acc::merge`]), then finished into the aggregate's value ([`Acc::finish`]).
///
/// Aggregates of values (all but `count`) read the non-null values, lists flattened. Ties keep
/// what a pass in row order keeps: `min` the first of equal values, `max` the last, `values` and
/// `dc` the first seen, percentiles the first in a stable sort.
#[derive(Debug, Clone)]
pub struct Acc<'a> {
    func: AggFunc,
    state: State<'a>,
}

#[derive(Debug, Clone)]
enum State<'a> {
    /// `count` (every row) or `count(f)` (rows where `f` is present).
    Count {
        bare: bool,
        n: i64,
    },
    /// `dc`, `values`: the distinct values, each as first seen.
    Distinct(HashSet<Val<'a>>),
    /// `min`, `max`: the value kept so far.
    Extreme(Option<Val<'a>>),
    Sum(Sum),
    /// Percentiles: every value.
    Sample(Sample<'a>),
}

/// `sum` and `avg`: over the numbers (integers, floats, durations).
#[derive(Debug, Clone)]
struct Sum {
    n: usize,
    all_dur: bool,
    all_int: bool,
    /// The durations' sum (used when every number is one).
    durs: i128,
    /// The integers' sum, and of their magnitudes (used when every number is one).
    ints: i128,
    ints_abs: u128,
    /// The numbers as f64 (durations in seconds), added in row order.
    float: f64,
    /// Whether `float` is what adding in row order gives (not after a merge that could round
    /// differently).
    float_exact: bool,
}

/// Values of one kind of 64-bit number kept as numbers (they sort as they compare); anything
/// else as values.
#[derive(Debug, Clone)]
enum Sample<'a> {
    Nums(NumKind, Vec<i64>),
    Vals(Vec<Val<'a>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumKind {
    Int,
    Dur,
    Time,
}

impl NumKind {
    fn of(v: &Val<'_>) -> Option<(NumKind, i64)> {
        match v {
            Val::Int(i) => Some((NumKind::Int, *i)),
            Val::Dur(d) => Some((NumKind::Dur, *d)),
            Val::Time(t) => Some((NumKind::Time, *t)),
            _ => None,
        }
    }

    fn val(self, x: i64) -> Val<'static> {
        match self {
            NumKind::Int => Val::Int(x),
            NumKind::Dur => Val::Dur(x),
            NumKind::Time => Val::Time(x),
        }
    }
}

/// An exact integer that f64 holds exactly, as does every integer of smaller magnitude.
const F64_EXACT: u128 = 1 << 53;

impl<'a> Sample<'a> {
    fn push(&mut self, v: &Val<'a>) {
        if let Sample::Nums(kind, xs) = self {
            match NumKind::of(v) {
                Some((k, x)) if k == *kind || xs.is_empty() => {
                    *kind = k;
                    xs.push(x);
                    return;
                }
                _ => *self = Sample::Vals(xs.iter().map(|&x| kind.val(x)).collect()),
            }
        }
        if let Sample::Vals(vs) = self {
            vs.push(v.clone());
        }
    }

    fn append(&mut self, other: Sample<'a>) {
        match (&mut *self, other) {
            (Sample::Nums(k, xs), Sample::Nums(j, ys)) if *k == j || xs.is_empty() || ys.is_empty() => {
                if xs.is_empty() {
                    *k = j;
                }
                xs.extend(ys);
            }
            (_, Sample::Nums(j, ys)) => ys.into_iter().for_each(|y| self.push(&j.val(y))),
            (_, Sample::Vals(vs)) => vs.iter().for_each(|v| self.push(v)),
        }
    }
}

impl Sum {
    fn new() -> Sum {
        // Where `Iterator::sum` of f64 starts.
        let zero: f64 = std::iter::empty::<f64>().sum();
        Sum { n: 0, all_dur: true, all_int: true, durs: 0, ints: 0, ints_abs: 0, float: zero, float_exact: true }
    }

    fn add(&mut self, v: &Val<'_>) {
        let Some(f) = v.as_f64().filter(|_| matches!(v, Val::Int(_) | Val::Float(_) | Val::Dur(_))) else {
            return;
        };
        self.n += 1;
        match v {
            Val::Dur(d) => self.durs += i128::from(*d),
            _ => self.all_dur = false,
        }
        match v {
            Val::Int(i) => {
                self.ints += i128::from(*i);
                self.ints_abs += u128::from(i.unsigned_abs());
            }
            _ => self.all_int = false,
        }
        self.float += f;
    }

    fn merge(&mut self, o: Sum) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = o;
            return;
        }
        self.n += o.n;
        self.all_dur &= o.all_dur;
        self.all_int &= o.all_int;
        self.durs += o.durs;
        self.ints += o.ints;
        self.ints_abs += o.ints_abs;
        self.float_exact &= o.float_exact;
        if self.all_int && self.ints_abs <= F64_EXACT {
            // Integers whose magnitudes sum within f64's exact range add exactly in any order.
            self.float = self.ints as f64;
        } else {
            self.float += o.float;
            self.float_exact = false;
        }
    }
}

impl<'a> Acc<'a> {
    pub fn new(a: &Agg) -> Acc<'a> {
        let state = match a.func {
            AggFunc::Count => State::Count { bare: a.col.is_none(), n: 0 },
            AggFunc::Dc | AggFunc::Values => State::Distinct(HashSet::new()),
            AggFunc::Min | AggFunc::Max => State::Extreme(None),
            AggFunc::Sum | AggFunc::Avg => State::Sum(Sum::new()),
            AggFunc::P50 | AggFunc::P90 | AggFunc::P95 | AggFunc::P99 => {
                State::Sample(Sample::Nums(NumKind::Int, Vec::new()))
            }
        };
        Acc { func: a.func, state }
    }

    /// Adds one row's value of the aggregated column (any value for a bare `count`).
    pub fn add(&mut self, v: &Val<'a>) {
        if let State::Count { bare, n } = &mut self.state {
            if *bare || crate::eval::test_val(&crate::plan::Test::Exists, v) {
                *n += 1;
            }
            return;
        }
        match v {
            Val::Null => {}
            Val::List(items) => items.iter().filter(|v| !v.is_null()).for_each(|v| self.add_value(v)),
            v => self.add_value(v),
        }
    }

    fn add_value(&mut self, v: &Val<'a>) {
        match &mut self.state {
            State::Count { .. } => unreachable!("counted in add"),
            State::Distinct(set) => {
                if !set.contains(v) {
                    set.insert(v.clone());
                }
            }
            State::Extreme(kept) => {
                let replace = match kept {
                    None => true,
                    // `min`: the first of equal values; `max`: the last.
                    Some(k) if self.func == AggFunc::Min => v.total_cmp(k).is_lt(),
                    Some(k) => v.total_cmp(k).is_ge(),
                };
                if replace {
                    *kept = Some(v.clone());
                }
            }
            State::Sum(s) => s.add(v),
            State::Sample(s) => s.push(v),
        }
    }

    /// Joins the state of the rows that follow this one's (of the same aggregate).
    pub fn merge(&mut self, other: Acc<'a>) {
        match (&mut self.state, other.state) {
            (State::Count { n, .. }, State::Count { n: m, .. }) => *n += m,
            (State::Distinct(set), State::Distinct(o)) => {
                // `insert` keeps the value already there: the first seen.
                o.into_iter().for_each(|v| {
                    set.insert(v);
                });
            }
            (State::Extreme(_), State::Extreme(None)) => {}
            (State::Extreme(kept), State::Extreme(Some(v))) => {
                let replace = match kept {
                    None => true,
                    Some(k) if self.func == AggFunc::Min => v.total_cmp(k).is_lt(),
                    Some(k) => v.total_cmp(k).is_ge(),
                };
                if replace {
                    *kept = Some(v);
                }
            }
            (State::Sum(s), State::Sum(o)) => s.merge(o),
            (State::Sample(s), State::Sample(o)) => s.append(o),
            _ => unreachable!("states of the same aggregate"),
        }
    }

    /// Whether [`finish`](Self::finish) gives what one pass over the rows in order gives: not so
    /// for a float `sum`/`avg` merged from parts whose sums could round differently.
    pub fn exact(&self) -> bool {
        match &self.state {
            State::Sum(s) => s.float_exact || s.all_dur || (self.func == AggFunc::Sum && s.all_int),
            _ => true,
        }
    }

    /// A copy that owns its strings.
    pub fn into_owned(self) -> Acc<'static> {
        let state = match self.state {
            State::Count { bare, n } => State::Count { bare, n },
            State::Distinct(set) => State::Distinct(set.into_iter().map(Val::into_owned).collect()),
            State::Extreme(v) => State::Extreme(v.map(Val::into_owned)),
            State::Sum(s) => State::Sum(s),
            State::Sample(Sample::Nums(k, xs)) => State::Sample(Sample::Nums(k, xs)),
            State::Sample(Sample::Vals(vs)) => {
                State::Sample(Sample::Vals(vs.into_iter().map(Val::into_owned).collect()))
            }
        };
        Acc { func: self.func, state }
    }

    /// The aggregate's value.
    pub fn finish(self) -> Val<'static> {
        match self.state {
            State::Count { n, .. } => Val::Int(n),
            State::Distinct(set) if self.func == AggFunc::Dc => Val::Int(set.len() as i64),
            State::Distinct(set) => {
                let mut v: Vec<Val<'static>> = set.into_iter().map(Val::into_owned).collect();
                v.sort_by(|a, b| a.total_cmp(b));
                Val::List(v)
            }
            State::Extreme(v) => v.map_or(Val::Null, Val::into_owned),
            State::Sum(s) => {
                if s.n == 0 {
                    return if self.func == AggFunc::Sum { Val::Int(0) } else { Val::Null };
                }
                let n = s.n as f64;
                if s.all_dur {
                    return match self.func {
                        AggFunc::Sum => Val::Dur(clamp(s.durs)),
                        _ => Val::Dur((s.durs as f64 / n).round() as i64),
                    };
                }
                if self.func == AggFunc::Sum && s.all_int {
                    return Val::Int(clamp(s.ints));
                }
                Val::Float(if self.func == AggFunc::Sum { s.float } else { s.float / n })
            }
            State::Sample(s) => {
                let p = match self.func {
                    AggFunc::P50 => 50,
                    AggFunc::P90 => 90,
                    AggFunc::P95 => 95,
                    _ => 99,
                };
                match s {
                    Sample::Nums(_, xs) if xs.is_empty() => Val::Null,
                    Sample::Nums(kind, mut xs) => {
                        let r = nearest_rank(p, xs.len());
                        kind.val(*xs.select_nth_unstable(r).1)
                    }
                    Sample::Vals(vs) if vs.is_empty() => Val::Null,
                    Sample::Vals(mut vs) => {
                        vs.sort_by(|a, b| a.total_cmp(b));
                        let r = nearest_rank(p, vs.len());
                        vs.swap_remove(r).into_owned()
                    }
                }
            }
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
    let mut t = Topper::new(limit, col, by, rare);
    rows.iter().for_each(|r| t.add(r));
    t.finish()
}

/// `top`/`rare … by …` fed one row at a time, in row order ([`Topper::add`]): what the step gives
/// over those rows without holding them, as [`Aggregator`] does for `stats`. Each group (the key
/// as its first row had it) keeps its rows' count and each value's.
pub(crate) struct Topper<'p> {
    limit: usize,
    col: usize,
    by: &'p [usize],
    rare: bool,
    /// Hashes keys and values (aHash, keyed at random per process).
    state: ahash::RandomState,
    /// In order of first appearance: the key, its rows, and each value's count. Found by the
    /// key's hash, the key compared in place, as [`Aggregator`]'s groups.
    groups: ByHash<Vec<Val<'static>>, (usize, TopCounts)>,
    /// The groups of the row being added.
    found: Vec<usize>,
}

type TopCounts = HashMap<Val<'static>, usize, ahash::RandomState>;

impl<'p> Topper<'p> {
    pub(crate) fn new(limit: usize, col: usize, by: &'p [usize], rare: bool) -> Topper<'p> {
        Topper { limit, col, by, rare, state: ahash::RandomState::new(), groups: ByHash::default(), found: Vec::new() }
    }

    pub(crate) fn add(&mut self, r: &Row) {
        let state = &self.state;
        find_groups(&mut self.groups, state, r, self.by, &mut self.found, || {
            (0, TopCounts::with_hasher(state.clone()))
        });
        // A list counts each of its distinct values (as `fan` gives them), a value itself.
        let v = &r.vals[self.col];
        let listed;
        let values: &[Val<'static>] = match v {
            Val::List(_) => {
                listed = fan(v);
                &listed
            }
            v => std::slice::from_ref(v),
        };
        for &g in &self.found {
            let (members, counts) = &mut self.groups.entries[g].1;
            *members += 1;
            for v in values.iter().filter(|v| !v.is_null()) {
                match counts.get_mut(v) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(v.clone(), 1);
                    }
                }
            }
        }
    }

    /// The step's rows: groups by key, each group's values by count (then value).
    pub(crate) fn finish(self) -> Vec<Row> {
        let mut groups: Vec<(Vec<Val<'static>>, usize, TopCounts)> =
            self.groups.into_entries().into_iter().map(|(k, (n, c))| (k, n, c)).collect();
        if self.by.is_empty() && groups.is_empty() {
            groups.push((Vec::new(), 0, TopCounts::default()));
        }
        // Stable: keys equal by `cmp_keys` stay in order of first appearance, as `groups` has them.
        groups.sort_by(|a, b| cmp_keys(&a.0, &b.0));
        let mut out = Vec::new();
        for (key, members, counts) in groups {
            let mut ranked: Vec<(Val<'static>, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| {
                if self.rare { a.1.cmp(&b.1) } else { b.1.cmp(&a.1) }.then_with(|| a.0.total_cmp(&b.0))
            });
            for (v, n) in ranked.into_iter().take(self.limit) {
                let mut vals = key.clone();
                vals.push(v);
                vals.push(Val::Int(n as i64));
                vals.push(Val::Float(percent(n, members)));
                out.push(Row { vals, raw: None });
            }
        }
        out
    }
}

/// `n` of `total` in percent, rounded to 2 decimals.
pub fn percent(n: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { (n as f64 * 10000.0 / total as f64).round() / 100.0 }
}

/// Zero-filled buckets only for a single series, and only this many (past it, [`Note`]).
pub const MAX_FILL: i64 = 100_000;

fn timeline(rows: &[Row], interval: i64, col: usize, by: Option<usize>) -> Vec<Row> {
    let state = ahash::RandomState::new();
    timeline_hashed(rows, interval, col, by, |bucket, series| state.hash_one((bucket, series)))
}

/// [`timeline`] with the hash of a (bucket, series) given (tests give one that always collides).
fn timeline_hashed(
    rows: &[Row],
    interval: i64,
    col: usize,
    by: Option<usize>,
    hash: impl Fn(i64, &Val<'static>) -> u64,
) -> Vec<Row> {
    // Counts found by the hash of (bucket, series) compared in place ([`ByHash`]): a series
    // value is copied only for a new count, not for every row.
    let mut counts: ByHash<(i64, Val<'static>), i64> = ByHash::default();
    let mut count = |bucket: i64, series: &Val<'static>| {
        let same = |k: &(i64, Val<'static>)| k.0 == bucket && k.1 == *series;
        let g = counts.find(hash(bucket, series), same, || ((bucket, series.clone()), 0));
        counts.entries[g].1 += 1;
    };
    for r in rows {
        let Val::Time(t) = r.vals[col] else { continue };
        let bucket = t.div_euclid(interval) * interval;
        match by.map(|c| &r.vals[c]) {
            None => count(bucket, &Val::Null),
            Some(list @ Val::List(_)) => fan(list).iter().for_each(|s| count(bucket, s)),
            Some(series) => count(bucket, series),
        }
    }
    let counts: HashMap<(i64, Val<'static>), i64, ahash::RandomState> = counts.into_entries().into_iter().collect();
    timeline_rows(&counts, interval, by.is_some())
}

/// The rows of `timeline` from its counts by (bucket start, series; `Null` without `by`).
pub fn timeline_rows<S: std::hash::BuildHasher>(
    counts: &HashMap<(i64, Val<'static>), i64, S>,
    interval: i64,
    by: bool,
) -> Vec<Row> {
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
/// group (keys of scalar values: no list fans out). As `aggregate`: groups in key order, and
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

    /// Counts found by hash give what a plain map of (bucket, series) gives, also when every
    /// hash collides (told apart by their values).
    #[test]
    fn timeline_counts_survive_colliding_hashes() {
        let t = |m: i64| Val::Time(m * 60_000_000);
        let rows: Vec<Row> = [(0, "get"), (1, "list"), (7, "get"), (0, "get"), (12, "watch"), (13, "list"), (1, "")]
            .into_iter()
            .map(|(m, v)| Row {
                vals: vec![t(m), if v.is_empty() { Val::Null } else { Val::str(v).into_owned() }],
                raw: None,
            })
            .chain([Row {
                vals: vec![t(3), Val::List(vec![Val::str("a").into_owned(), Val::str("b").into_owned()])],
                raw: None,
            }])
            .collect();
        let interval = 5 * 60_000_000;
        let plain = |by: Option<usize>| {
            let mut counts: HashMap<(i64, Val<'static>), i64, ahash::RandomState> = HashMap::default();
            for r in &rows {
                let Val::Time(t) = r.vals[0] else { continue };
                let series = by.map_or_else(|| vec![Val::Null], |c| fan(&r.vals[c]));
                for s in series {
                    *counts.entry((t.div_euclid(interval) * interval, s)).or_default() += 1;
                }
            }
            timeline_rows(&counts, interval, by.is_some())
        };
        for by in [Some(1), None] {
            let want = plain(by);
            assert_eq!(timeline(&rows, interval, 0, by), want, "{by:?}");
            assert_eq!(timeline_hashed(&rows, interval, 0, by, |_, _| 7), want, "{by:?}");
            assert!(want.len() >= 3, "{want:?}");
        }
    }

    /// Accumulators merged from parts give what one pass gives; a float sum merged from parts
    /// says it may not.
    #[test]
    fn merged_accumulators_equal_one_pass() {
        use kaq_syntax::AggFunc::*;
        let ints: Vec<Val<'static>> = (0..100).map(|i| Val::Int((i * 37) % 101 - 50)).collect();
        let durs: Vec<Val<'static>> =
            (0..100).map(|i| if i % 7 == 0 { Val::Null } else { Val::Dur(i * 1234) }).collect();
        let floats: Vec<Val<'static>> = (0..100).map(|i| Val::Float(0.1 * f64::from(i))).collect();
        for vals in [&ints, &durs, &floats] {
            for func in [Count, Dc, Values, Min, Max, Avg, Sum, P50, P90, P95, P99] {
                let a = Agg { func, col: Some(0) };
                let mut one = Acc::new(&a);
                vals.iter().for_each(|v| one.add(v));
                let mut parts = Acc::new(&a);
                for chunk in vals.chunks(30) {
                    let mut p = Acc::new(&a);
                    chunk.iter().for_each(|v| p.add(v));
                    parts.merge(p);
                }
                let float_sum = matches!(vals[0], Val::Float(_)) && matches!(func, Sum | Avg);
                assert_eq!(parts.exact(), !float_sum, "{func:?}");
                if parts.exact() {
                    assert_eq!(parts.finish(), one.finish(), "{func:?}");
                }
            }
        }
    }
}
