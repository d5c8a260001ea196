//! The latest-stage rule and request identity: which records are stages of one request
//! ([`RequestKey`]: the auditID and a keyed digest of what every stage repeats), and which of a
//! request's records is its latest ([`Latest`]: stage rank, then timestamps, then position).
//!
//! Scans collect each chunk's [`Found`] (matching events, and what decides the latest stage for
//! the others); a [`Collector`] settles the rule across chunks, files and segments. A request is
//! its auditID *and* what every stage of one request repeats: the received time, the verb, the URI
//! and the user. The API server takes the auditID from the client's `Audit-ID` header when one is
//! sent, so two requests can carry one auditID; keyed by the auditID alone, one would hide the
//! other. See docs/query.md, "Which events".

use std::collections::HashMap;
use std::sync::LazyLock;

use kaq_schema::Event;

use crate::pipeline::Row;
use crate::scan::Seen;
use crate::spill::RowSpill;

/// The order of stages: a request's latest stage is its highest.
pub fn stage_rank(stage: Option<&str>) -> u8 {
    match stage {
        Some("RequestReceived") => 0,
        Some("ResponseStarted") => 1,
        Some("Panic") => 3,
        // ResponseComplete, and anything unknown or missing, counts as a finished request.
        _ => 2,
    }
}

/// An auditID, compactly: UUIDs as 128-bit numbers, high half first. Two `u64`s, not a `u128`:
/// a `u128` is aligned to 16 bytes, and every record a scan keeps (a million for a question that
/// decodes every line) carries one; this way the key is 24 bytes, not 32, and a record 24 less.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Uuid([u64; 2]),
    Other(Box<str>),
}

impl IdKey {
    pub fn new(id: &str) -> IdKey {
        parse_uuid(id).map_or_else(|| IdKey::Other(id.into()), IdKey::uuid)
    }

    /// The key of the UUID `v`.
    pub fn uuid(v: u128) -> IdKey {
        IdKey::Uuid([(v >> 64) as u64, v as u64])
    }

    /// The auditID as written.
    pub fn text(&self) -> String {
        match self {
            IdKey::Other(s) => s.to_string(),
            IdKey::Uuid([hi, lo]) => {
                let v = u128::from(*hi) << 64 | u128::from(*lo);
                let h = format!("{v:032x}");
                format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
            }
        }
    }
}

/// Lowercase canonical UUIDs only (the API server's form); anything else is kept as text, so two
/// spellings of one UUID stay different, exactly as their strings are.
fn parse_uuid(s: &str) -> Option<u128> {
    /// Hex digit values; 0xFF for anything that is not a lowercase hex digit.
    const HEX: [u8; 256] = {
        let mut t = [0xFFu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let (mut v, mut bad) = (0u128, 0u8);
    for part in [&b[0..8], &b[9..13], &b[14..18], &b[19..23], &b[24..36]] {
        let mut x = 0u64;
        for &c in part {
            let d = HEX[c as usize];
            bad |= d;
            x = (x << 4) | u64::from(d & 0xF);
        }
        v = (v << (4 * part.len())) | u128::from(x);
    }
    (bad & 0xF0 == 0).then_some(v)
}

/// The identity of a request: its auditID, and a digest of what all stages of one request share
/// (`requestReceivedTimestamp`, `verb`, `requestURI`, `user.username`). Records are stages of one
/// request exactly when their keys are equal. The digest is aHash under a key drawn at random
/// per process, so a log cannot be written to make two requests collide (and the key is never
/// stored: it only compares records read by one process).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub id: IdKey,
    pub request: u64,
}

impl RequestKey {
    pub fn of(ev: &Event<'_>) -> RequestKey {
        RequestKey { id: IdKey::new(ev.audit_id.as_deref().unwrap_or("")), request: request_digest(ev) }
    }
}

/// The digest of what every stage of one request repeats ([`RequestKey`]).
pub fn request_digest(ev: &Event<'_>) -> u64 {
    // aHash keyed at random per process (SipHash was a fortieth of a full-decode question).
    static KEY: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);
    KEY.hash_one((
        ev.request_received,
        ev.verb.as_deref(),
        ev.request_uri.as_deref(),
        ev.user.as_ref().and_then(|u| u.username.as_deref()),
    ))
}

/// The columns of kaq's Parquet schema that [`RequestKey::of`] and [`Latest`] read from a
/// restored event (`unmapped` says whether `requestReceivedTimestamp` was absent).
pub const IDENTITY_COLUMNS: &[&str] = &["id", "stage", "stage_time", "time", "verb", "uri", "user", "unmapped"];

/// What decides which record of a request is its latest: the stage's rank, then the latest
/// `stageTimestamp`, then the latest `time` (absent ones first); the position read decides last.
/// Positions alone would do for logs, but a store's segments are sorted by time: with the
/// timestamps first, files and stores pick the same record (a stable sort by time keeps the order
/// read among equal times).
pub type Latest = (u8, i64, i64);

pub(crate) fn latest_of(ev: &Event<'_>) -> Latest {
    (stage_rank(ev.stage.as_deref()), ev.stage_timestamp.unwrap_or(i64::MIN), ev.derived.time.unwrap_or(i64::MIN))
}

/// A matching event.
pub(crate) struct Hit {
    pub(crate) pos: u64,
    pub(crate) key: RequestKey,
    pub(crate) rank: Latest,
    pub(crate) row: Row,
}

/// An event that did not match: only what decides which stage is the latest.
pub(crate) struct Stage {
    pub(crate) pos: u64,
    /// For a `quick` line, only the auditID is known: `request` is 0 and not compared.
    pub(crate) key: RequestKey,
    pub(crate) rank: Latest,
    /// A line the prefilter skipped: its auditID and stage were read by byte search, its
    /// timestamps and the rest of its identity were not, and it was not validated. If it could be
    /// the latest record of a matching request (it shares the auditID of one, at the same stage
    /// or later), the scan is redone without the prefilter ([`NeedsRescan`]).
    pub(crate) quick: bool,
}

/// A line skipped by the prefilter may decide a matching request's latest stage: the answer needs
/// a scan that decodes every line.
#[derive(Debug)]
pub struct NeedsRescan;

/// One chunk's findings. Positions count from the chunk's start.
#[derive(Default)]
pub struct Found {
    pub(crate) hits: Vec<Hit>,
    pub(crate) others: Vec<Stage>,
    /// Events (and skipped lines) seen in the chunk.
    pub(crate) n: u64,
    /// The earliest and latest `time` of the events tested (not of lines the prefilter skipped).
    pub(crate) times: Option<(i64, i64)>,
    /// The distinct values of each of [`Plan::watch`]'s slots among the events tested.
    pub(crate) seen: Seen,
}

impl Found {
    /// Sets the position the next event gets (for callers that test selected rows of a file and
    /// want positions to be row numbers), and with it the count of events seen.
    pub fn seek(&mut self, pos: u64) {
        self.n = pos;
    }

    /// Takes the rows of the matching events so far, in order, leaving their identities and
    /// stages (for a caller that keeps every stage and hands rows on as found: the collector
    /// then counts without holding them).
    pub fn take_rows(&mut self) -> Vec<Row> {
        self.hits.iter_mut().map(|h| std::mem::replace(&mut h.row, Row { vals: Vec::new(), raw: None })).collect()
    }

    /// The auditIDs of the matching events so far.
    pub fn hit_ids(&self) -> impl Iterator<Item = &IdKey> {
        self.hits.iter().map(|h| &h.key.id)
    }

    /// Adds the findings of another pass over the same chunk (other rows of the same file).
    pub fn merge(&mut self, mut other: Found) {
        self.hits.append(&mut other.hits);
        self.others.append(&mut other.others);
        self.n = self.n.max(other.n);
        self.times = widen_times(self.times, other.times);
        self.seen.merge(other.seen);
    }
}

/// The smallest range holding both.
pub(crate) fn widen_times(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((l1, h1)), Some((l2, h2))) => Some((l1.min(l2), h1.max(h2))),
        (a, b) => a.or(b),
    }
}

/// The requests of an input, by identity ([`RequestKey`]): how many records, how many
/// requests, and which auditIDs more than one request carries.
#[derive(Debug, Default)]
pub struct Identities {
    /// Records read.
    pub records: u64,
    /// The requests of each auditID (for an auditID carried by one request, one).
    requests: HashMap<IdKey, Vec<u64>>,
    /// AuditIDs carried by one record each, counted and not kept ([`crate::scan::store_identities`]).
    pub(crate) singles: u64,
}

impl Identities {
    pub fn add(&mut self, ev: &Event<'_>) {
        self.records += 1;
        let k = RequestKey::of(ev);
        let r = self.requests.entry(k.id).or_default();
        if !r.contains(&k.request) {
            r.push(k.request);
        }
    }

    pub(crate) fn merge(&mut self, other: Identities) {
        self.records += other.records;
        self.singles += other.singles;
        for (id, rs) in other.requests {
            let r = self.requests.entry(id).or_default();
            for q in rs {
                if !r.contains(&q) {
                    r.push(q);
                }
            }
        }
    }

    /// Distinct requests.
    pub fn requests(&self) -> u64 {
        self.singles + self.requests.values().map(|r| r.len() as u64).sum::<u64>()
    }

    /// The auditIDs that more than one request carries.
    pub fn reused(&self) -> std::collections::HashSet<IdKey> {
        self.requests.iter().filter(|(_, r)| r.len() > 1).map(|(id, _)| id.clone()).collect()
    }

    /// Requests whose auditID another request also carries.
    pub fn requests_sharing_an_id(&self) -> u64 {
        self.requests.values().filter(|r| r.len() > 1).map(|r| r.len() as u64).sum()
    }
}

/// Resolves the latest stages of one chunk's findings (see [`crate::run_on_text`]).
pub fn finish_one(found: Found, all_stages: bool) -> Result<Vec<Row>, NeedsRescan> {
    let mut c = Collector::default();
    c.add(found);
    c.finish(all_stages)
}

/// Gathers chunks in input order and resolves the latest stages at the end. Made with
/// [`Collector::streaming`], it holds the matching rows in bounded memory (a temporary file past a
/// budget, [`crate::spill`]) and hands the rows kept to a callback ([`Collector::finish_streaming`]).
#[derive(Default)]
pub struct Collector {
    base: u64,
    pub(crate) times: Option<(i64, i64)>,
    pub(crate) seen: Seen,
    hits: Chunked<Hit>,
    others: Chunked<Stage>,
    /// The hits' rows, in the order of `hits` (streaming only: else they stay in `hits`).
    spill: Option<RowSpill>,
    /// The first error writing `spill`, reported by [`Collector::finish_streaming`].
    spill_error: Option<std::io::Error>,
}

impl Collector {
    /// A collector that keeps at most about `spill_after` bytes of rows in memory, the rest in a
    /// temporary file, for [`Collector::finish_streaming`] ([`crate::spill::SPILL_AFTER`]).
    pub fn streaming(spill_after: usize) -> Collector {
        Collector { spill: Some(RowSpill::new(spill_after)), ..Collector::default() }
    }

    /// Adds the next chunk's findings (chunks in input order).
    pub fn add(&mut self, f: Found) {
        let base = self.base;
        self.base += f.n;
        self.add_at(base, f);
    }

    /// Adds findings whose positions count from `base` (the other stages of a store segment read
    /// after the segment was added; `Found::n` is not counted again). Their hits come after the
    /// hits added before.
    pub fn add_at(&mut self, base: u64, mut f: Found) {
        for h in &mut f.hits {
            h.pos += base;
        }
        for o in &mut f.others {
            o.pos += base;
        }
        self.times = widen_times(self.times, f.times);
        self.seen.merge(std::mem::take(&mut f.seen));
        if let Some(spill) = &mut self.spill {
            for h in &mut f.hits {
                let row = std::mem::replace(&mut h.row, Row { vals: Vec::new(), raw: None });
                if self.spill_error.is_none()
                    && let Err(e) = spill.push(row)
                {
                    self.spill_error = Some(e);
                }
            }
        }
        self.hits.append(&mut f.hits);
        self.others.append(&mut f.others);
    }

    /// The rows kept: every hit with all stages, else the hits that are their request's latest.
    pub fn finish(self, all_stages: bool) -> Result<Vec<Row>, NeedsRescan> {
        self.finish_counting(all_stages).map(|f| f.rows)
    }

    /// [`Collector::finish`], and how many of the requests kept share their auditID with another
    /// request among the records read. Not for a collector made with [`Collector::streaming`].
    pub fn finish_counting(self, all_stages: bool) -> Result<Finished, NeedsRescan> {
        // A collector made with `streaming` holds its rows elsewhere: finish_streaming.
        debug_assert!(self.spill.is_none(), "a streaming collector is finished with finish_streaming");
        let (keep, ids_reused) = self.settle(all_stages)?;
        // Sized once: a vector of a million rows grown by doubling is copied twenty times.
        let mut rows = Vec::with_capacity(keep.iter().filter(|k| **k).count());
        rows.extend(self.hits.into_iter().zip(keep).filter(|(_, k)| *k).map(|(h, _)| h.row));
        Ok(Finished { rows, ids_reused })
    }

    /// Settles the rule, then hands each row kept to `emit`, in the order
    /// [`Collector::finish_counting`] returns them; the rows are never all in memory at once
    /// when the collector was made with [`Collector::streaming`]. Nothing is emitted when the
    /// answer needs a rescan. An error writing or reading the temporary file, or from `emit`,
    /// stops it.
    pub fn finish_streaming(
        self,
        all_stages: bool,
        emit: &mut dyn FnMut(Row) -> std::io::Result<()>,
    ) -> Result<std::io::Result<Streamed>, NeedsRescan> {
        let (keep, ids_reused) = self.settle(all_stages)?;
        let (hits, spill, error) = (self.hits, self.spill, self.spill_error);
        drop(self.others);
        Ok((|| {
            if let Some(e) = error {
                return Err(e);
            }
            let mut rows = 0;
            let Some(spill) = spill else {
                for (h, k) in hits.into_iter().zip(keep) {
                    if k {
                        emit(h.row)?;
                        rows += 1;
                    }
                }
                return Ok(Streamed { rows, ids_reused, spilled: 0 });
            };
            drop(hits);
            let spilled = spill.spilled;
            let mut read = 0;
            for (row, k) in spill.rows()?.zip(&keep) {
                let row = row?;
                read += 1;
                if *k {
                    emit(row)?;
                    rows += 1;
                }
            }
            if read != keep.len() {
                return Err(std::io::Error::other("the temporary file of rows ended before its last row"));
            }
            Ok(Streamed { rows, ids_reused, spilled })
        })())
    }

    /// Which hits are kept (in the order of `hits`), and how many of those kept share their
    /// auditID with another request.
    ///
    /// Everything the rule compares is keyed by auditID. So what it needs of each record is
    /// copied out into partitions by the hash of its auditID, small enough that each is settled
    /// with a map that stays in the CPU's cache, and the partitions are shared among threads (a
    /// million hits were settled by one thread with maps as large as the input, missing the cache
    /// at every step: see BENCHMARKS.md).
    fn settle(&self, all_stages: bool) -> Result<(Vec<bool>, u64), NeedsRescan> {
        let work = self.hits.len() + self.others.len();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parts = (self.hits.len() / PART_HITS).max(1).next_power_of_two().min(MAX_PARTS);
        // No more threads than partitions: a few hits among many skipped lines are one partition.
        self.settle_in(all_stages, parts, if work < THREADS_FROM { 1 } else { threads.clamp(1, 8).min(parts) })
    }

    /// [`Collector::settle`] in `parts` partitions (a power of two) on `threads` threads.
    fn settle_in(&self, all_stages: bool, parts: usize, threads: usize) -> Result<(Vec<bool>, u64), NeedsRescan> {
        debug_assert!(parts.is_power_of_two());
        // Keyed at random per process: auditIDs come from a client header.
        let state = &ahash::RandomState::new();
        let part_of = |h: u64| (h >> 40) as usize & (parts - 1);
        // The hashes of the hits' auditIDs, as bits: most records that do not match share no
        // auditID with a hit and are never copied.
        let words = (self.hits.len() * 8).div_ceil(64).max(1);
        let bit = |h: u64| (h as usize) % (words * 64);
        // Each thread copies its share of the records ([`Chunked::share`]) into partitions of
        // its own (copying a million records costs as much as settling them); a partition is
        // then settled from every thread's copy of it. Each partition is made room for a
        // thread's share spread over the partitions, and a quarter more: hashes do not spread
        // them evenly.
        let room = self.hits.len() / threads / parts * 5 / 4 + 16;
        let mut bits = vec![0u64; words];
        let mut hits: Vec<Vec<Vec<Rec<'_>>>> = Vec::with_capacity(threads);
        for (copied, b) in on_threads(threads, |t| {
            let mut out: Vec<Vec<Rec<'_>>> = (0..parts).map(|_| Vec::with_capacity(room)).collect();
            let mut bits = vec![0u64; words];
            for (index, h) in self.hits.share(t, threads) {
                let r = Rec::of(state, &h.key, (h.rank, h.pos), index, false);
                let b = bit(r.h);
                bits[b / 64] |= 1 << (b % 64);
                out[part_of(r.h)].push(r);
            }
            (out, bits)
        }) {
            bits.iter_mut().zip(b).for_each(|(x, y)| *x |= y);
            hits.push(copied);
        }
        let bits = &bits;
        let others: Vec<Vec<Vec<Rec<'_>>>> = if self.hits.is_empty() {
            Vec::new()
        } else {
            on_threads(threads, |t| {
                let mut out: Vec<Vec<Rec<'_>>> = (0..parts).map(|_| Vec::new()).collect();
                for (index, o) in self.others.share(t, threads) {
                    if all_stages && o.quick {
                        continue;
                    }
                    let r = Rec::of(state, &o.key, (o.rank, o.pos), index, o.quick);
                    let b = bit(r.h);
                    if bits[b / 64] & 1 << (b % 64) != 0 {
                        out[part_of(r.h)].push(r);
                    }
                }
                out
            })
        };
        let done = on_threads(threads, |t| -> Result<Settled, NeedsRescan> {
            let mut out = Settled { kept: Vec::new(), ids_reused: 0 };
            let mut map = Map::default();
            for p in (t..parts).step_by(threads) {
                let hits: Vec<&[Rec<'_>]> = hits.iter().map(|w| w[p].as_slice()).collect();
                let others: Vec<&[Rec<'_>]> = others.iter().map(|w| w[p].as_slice()).collect();
                settle_part(&mut map, &hits, &others, all_stages, &mut out)?;
            }
            Ok(out)
        });
        let mut keep = vec![false; self.hits.len()];
        let mut ids_reused = 0;
        for part in done {
            let part = part?;
            for i in part.kept {
                keep[i] = true;
            }
            ids_reused += part.ids_reused;
        }
        Ok((keep, ids_reused))
    }
}

/// Items kept in order in chunks of a fixed size: a million records are never copied to grow
/// one vector, whose old and new buffers would both be resident while it is copied (with
/// mimalloc, nearly double the memory of a prefiltered raw scan).
pub(crate) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// Items a chunk holds (every chunk but the last is full).
    chunk: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked::sized(1 << 16)
    }
}

impl<T> Chunked<T> {
    /// Chunks of `chunk` items (the default: 65,536).
    pub(crate) fn sized(chunk: usize) -> Self {
        Chunked { chunks: Vec::new(), len: 0, chunk: chunk.max(1) }
    }

    /// Moves `items` to the end, into chunks of their own size (not a scan's own vectors, whose
    /// spare capacity would stay).
    pub(crate) fn append(&mut self, items: &mut Vec<T>) {
        self.len += items.len();
        let mut rest = items.drain(..);
        while rest.len() > 0 {
            let last = match self.chunks.last_mut() {
                Some(c) if c.len() < self.chunk => c,
                _ => {
                    self.chunks.push(Vec::with_capacity(self.chunk));
                    self.chunks.last_mut().expect("just pushed")
                }
            };
            let room = self.chunk - last.len();
            last.extend(rest.by_ref().take(room));
        }
    }

    /// Share `t` of `n`: the `t`th of `n` runs of items of nearly equal length, each item with
    /// its index.
    pub(crate) fn share(&self, t: usize, n: usize) -> impl Iterator<Item = (usize, &T)> {
        let n = n.max(1);
        self.range(self.len * t / n, self.len * (t + 1) / n)
    }

    /// Items `from..to`, each with its index (every chunk but the last is full).
    fn range(&self, from: usize, to: usize) -> impl Iterator<Item = (usize, &T)> {
        let (chunk, to) = (self.chunk, to.min(self.len));
        self.chunks.iter().enumerate().skip(from / chunk).take_while(move |(j, _)| j * chunk < to).flat_map(
            move |(j, c)| {
                let base = j * chunk;
                let (lo, hi) = (from.saturating_sub(base).min(c.len()), (to - base).min(c.len()));
                c[lo..hi].iter().enumerate().map(move |(i, x)| (base + lo + i, x))
            },
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<T>>> {
        self.chunks.iter().flatten()
    }
}

impl<'a, T> IntoIterator for &'a Chunked<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> IntoIterator for Chunked<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

/// `work(t)` for each `t` below `threads`, each on a thread of its own (on this one when there is
/// one), in order of `t`.
fn on_threads<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if threads <= 1 {
        return vec![work(0)];
    }
    let work = &work;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Hits per partition when settling (a partition's map then fits in a core's cache).
const PART_HITS: usize = 2048;
const MAX_PARTS: usize = 1 << 14;
/// Below this many records the rule is settled on the calling thread.
const THREADS_FROM: usize = 100_000;

/// The answer of the partitions one thread settled: the indices of the hits kept, and how many
/// of them share their auditID with another request.
struct Settled {
    kept: Vec<usize>,
    ids_reused: u64,
}

/// An auditID, copied (UUIDs) or borrowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdRef<'k> {
    Uuid([u64; 2]),
    Other(&'k str),
}

/// What settling needs of one record: its auditID and that ID's hash, its request digest, what
/// decides its latest stage, and its index among the hits (or the others).
#[derive(Clone, Copy)]
struct Rec<'k> {
    h: u64,
    id: IdRef<'k>,
    request: u64,
    at: (Latest, u64),
    index: usize,
    /// A line the prefilter skipped ([`Stage::quick`]).
    quick: bool,
}

impl<'k> Rec<'k> {
    fn of(state: &ahash::RandomState, key: &'k RequestKey, at: (Latest, u64), index: usize, quick: bool) -> Rec<'k> {
        let id = match &key.id {
            IdKey::Uuid(v) => IdRef::Uuid(*v),
            IdKey::Other(s) => IdRef::Other(s),
        };
        Rec { h: state.hash_one(&key.id), id, request: key.request, at, index, quick }
    }

    fn key(&self) -> Hashed<'k> {
        Hashed { h: self.h, id: self.id }
    }
}

/// An auditID with its hash, computed once ([`PassHasher`] hands it to the map).
#[derive(Clone, Copy)]
struct Hashed<'k> {
    h: u64,
    id: IdRef<'k>,
}

impl PartialEq for Hashed<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.h == other.h && self.id == other.id
    }
}

impl Eq for Hashed<'_> {}

impl std::hash::Hash for Hashed<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.h);
    }
}

/// Passes on the hash a [`Hashed`] carries (itself from a randomly keyed aHash).
#[derive(Default)]
struct PassHasher(u64);

impl std::hash::Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Map<'k> = HashMap<Hashed<'k>, Requests, std::hash::BuildHasherDefault<PassHasher>>;

/// One request of an auditID: its digest ([`RequestKey::request`]), its latest matching record so
/// far (`None` for a request known only from records that do not match) and whether a record that
/// does not match comes after that one.
struct Req {
    request: u64,
    best: Option<(Latest, u64)>,
    superseded: bool,
}

/// The requests of one auditID among the records settled (almost always one: `rest` is empty and
/// allocates nothing).
struct Requests {
    first: Req,
    rest: Vec<Req>,
}

impl Requests {
    fn new(request: u64) -> Requests {
        Requests { first: Req { request, best: None, superseded: false }, rest: Vec::new() }
    }

    /// The request of digest `request`, noted if it is new.
    fn note(&mut self, request: u64) -> &mut Req {
        if self.first.request == request {
            return &mut self.first;
        }
        match self.rest.iter().position(|r| r.request == request) {
            Some(i) => &mut self.rest[i],
            None => {
                self.rest.push(Req { request, best: None, superseded: false });
                self.rest.last_mut().expect("just pushed")
            }
        }
    }

    fn get(&self, request: u64) -> Option<&Req> {
        std::iter::once(&self.first).chain(&self.rest).find(|r| r.request == request)
    }

    /// More than one request carries this auditID.
    fn reused(&self) -> bool {
        !self.rest.is_empty()
    }

    /// The lowest stage rank among the latest matching records of this auditID's requests.
    fn lowest_stage(&self) -> Option<u8> {
        std::iter::once(&self.first).chain(&self.rest).filter_map(|r| r.best.map(|b| b.0.0)).min()
    }
}

/// Settles the rule for the auditIDs of one partition (`map` is left empty for the next): a
/// request's latest matching record is kept unless a record of the same request that does not
/// match comes after it; a line the prefilter skipped (known by its auditID only) that could be
/// the latest record of a matching request asks for a rescan.
fn settle_part<'k>(
    map: &mut Map<'k>,
    hits: &[&[Rec<'k>]],
    others: &[&[Rec<'k>]],
    all_stages: bool,
    out: &mut Settled,
) -> Result<(), NeedsRescan> {
    map.clear();
    for h in hits.iter().copied().flatten() {
        let req = map.entry(h.key()).or_insert_with(|| Requests::new(h.request)).note(h.request);
        if !all_stages {
            req.best = Some(req.best.map_or(h.at, |b| b.max(h.at)));
        }
    }
    for o in others.iter().copied().flatten() {
        let Some(reqs) = map.get_mut(&o.key()) else { continue };
        if o.quick {
            if reqs.lowest_stage().is_some_and(|s| o.at.0.0 >= s) {
                return Err(NeedsRescan);
            }
            continue;
        }
        let req = reqs.note(o.request);
        if req.best.is_some_and(|b| o.at > b) {
            req.superseded = true;
        }
    }
    for h in hits.iter().copied().flatten() {
        let reqs = &map[&h.key()];
        let keep = all_stages || reqs.get(h.request).is_some_and(|r| !r.superseded && r.best == Some(h.at));
        if keep {
            out.kept.push(h.index);
            out.ids_reused += u64::from(reqs.reused());
        }
    }
    Ok(())
}

/// What [`Collector::finish_counting`] keeps.
pub struct Finished {
    pub rows: Vec<Row>,
    /// Rows kept whose auditID another request also carries (among the records read: with every
    /// stage kept, among the matching ones).
    pub ids_reused: u64,
}

/// What [`Collector::finish_streaming`] handed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streamed {
    /// Rows emitted.
    pub rows: u64,
    /// As [`Finished::ids_reused`].
    pub ids_reused: u64,
    /// Matching rows (kept or not) that were held in the temporary file rather than in memory.
    pub spilled: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as it was first written, one map at a time on one thread: the reference the
    /// sharded [`Collector::settle`] must agree with.
    fn reference(c: &Collector, all_stages: bool) -> Result<(Vec<bool>, u64), NeedsRescan> {
        let mut requests: HashMap<&IdKey, (u64, bool)> = HashMap::new();
        fn note<'k>(requests: &mut HashMap<&'k IdKey, (u64, bool)>, k: &'k RequestKey) {
            let e = requests.entry(&k.id).or_insert((k.request, false));
            e.1 |= e.0 != k.request;
        }
        for h in &c.hits {
            note(&mut requests, &h.key);
        }
        if all_stages {
            for o in c.others.iter().filter(|o| !o.quick) {
                note(&mut requests, &o.key);
            }
            let ids_reused = c.hits.iter().filter(|h| requests.get(&h.key.id).is_some_and(|r| r.1)).count();
            return Ok((vec![true; c.hits.len()], ids_reused as u64));
        }
        let mut best: HashMap<&RequestKey, (Latest, u64)> = HashMap::new();
        for h in &c.hits {
            let e = best.entry(&h.key).or_insert((h.rank, h.pos));
            *e = (*e).max((h.rank, h.pos));
        }
        let mut lowest: HashMap<&IdKey, u8> = HashMap::new();
        for (k, b) in &best {
            let e = lowest.entry(&k.id).or_insert(b.0.0);
            *e = (*e).min(b.0.0);
        }
        let mut superseded = std::collections::HashSet::new();
        for o in &c.others {
            if o.quick {
                if lowest.get(&o.key.id).is_some_and(|s| o.rank.0 >= *s) {
                    return Err(NeedsRescan);
                }
                continue;
            }
            if lowest.contains_key(&o.key.id) {
                note(&mut requests, &o.key);
            }
            if best.get(&o.key).is_some_and(|b| (o.rank, o.pos) > *b) {
                superseded.insert(&o.key);
            }
        }
        let keep: Vec<bool> =
            c.hits.iter().map(|h| !superseded.contains(&h.key) && best.get(&h.key) == Some(&(h.rank, h.pos))).collect();
        let ids_reused = c.hits.iter().zip(&keep).filter(|(h, k)| **k && requests[&h.key.id].1).count();
        Ok((keep, ids_reused as u64))
    }

    /// A collector of `n` random records over few auditIDs (so that requests share them, stages
    /// repeat and supersede each other), some of them lines the prefilter skipped.
    fn random(seed: u64, n: usize, quick: bool) -> Collector {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let ids = (n as u64 / 3).max(1);
        let mut c = Collector::default();
        // Chunks of every size, so that threads share them unevenly.
        (c.hits, c.others) = (Chunked::sized(1 + seed as usize % 97), Chunked::sized(1 + seed as usize % 89));
        let (mut hits, mut others) = (Vec::new(), Vec::new());
        for pos in 0..n as u64 {
            let id = match next(ids) {
                i if i % 2 == 0 => IdKey::uuid(u128::from(i) << 64 | 7),
                i => IdKey::Other(format!("id-{i}").into()),
            };
            let key = RequestKey { id, request: next(2) };
            let rank = (next(4) as u8, next(3) as i64, next(3) as i64);
            if next(3) == 0 {
                hits.push(Hit { pos, key, rank, row: Row { vals: Vec::new(), raw: None } });
                // Chunks of every size, as scans hand them over.
                if next(50) == 0 {
                    c.hits.append(&mut hits);
                }
            } else {
                let quick = quick && next(8) == 0;
                others.push(Stage { pos, key, rank, quick });
            }
        }
        c.hits.append(&mut hits);
        c.others.append(&mut others);
        c
    }

    /// A scan keeps one of these per record it reads (a million for a question that decodes
    /// every line): they stay this small (`IdKey` without a 16-byte aligned `u128`).
    #[test]
    fn records_kept_are_small() {
        use std::mem::size_of;
        assert_eq!((size_of::<IdKey>(), size_of::<RequestKey>()), (24, 32));
        assert!(size_of::<Hit>() <= 104, "{}", size_of::<Hit>());
        assert!(size_of::<Stage>() <= 72, "{}", size_of::<Stage>());
        assert!(size_of::<Rec<'_>>() <= 88, "{}", size_of::<Rec<'_>>());
    }

    #[test]
    fn shares_cover_every_item_once_in_order() {
        for (len, chunk) in [(0, 4), (1, 4), (7, 4), (8, 4), (9, 4), (100, 7), (65, 64)] {
            let mut c = Chunked::sized(chunk);
            let mut items: Vec<usize> = (0..len).collect();
            c.append(&mut items);
            for n in 1..6 {
                let got: Vec<(usize, usize)> = (0..n).flat_map(|t| c.share(t, n).map(|(i, &x)| (i, x))).collect();
                assert_eq!(got, (0..len).map(|i| (i, i)).collect::<Vec<_>>(), "{len} items, chunks of {chunk}, {n}");
                let sizes: Vec<usize> = (0..n).map(|t| c.share(t, n).count()).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            }
        }
    }

    #[test]
    fn sharded_settling_agrees_with_the_reference() {
        let mut rescans = 0;
        for seed in 0..60 {
            for n in [0, 1, 10, 300, 5_000] {
                let c = random(seed, n, seed % 3 == 0);
                for all_stages in [false, true] {
                    let want = reference(&c, all_stages);
                    rescans += usize::from(want.is_err());
                    for (parts, threads) in [(1, 1), (1, 2), (2, 1), (4, 2), (16, 3), (64, 8)] {
                        let got = c.settle_in(all_stages, parts, threads);
                        match (&want, &got) {
                            (Ok(w), Ok(g)) => {
                                assert_eq!(w, g, "seed {seed}, {n} records, {parts} parts, {threads} threads")
                            }
                            (Err(_), Err(_)) => {}
                            _ => panic!(
                                "seed {seed}, {n} records, {parts} parts: rescan {:?} vs {:?}",
                                want.is_err(),
                                got.is_err()
                            ),
                        }
                    }
                }
            }
        }
        // Both outcomes were exercised, and kept rows are not all or nothing.
        assert!(rescans > 0);
        let c = random(1, 5_000, false);
        let (keep, reused) = c.settle_in(false, 4, 2).unwrap_or_else(|_| panic!("no quick lines, no rescan"));
        let kept = keep.iter().filter(|k| **k).count();
        assert!(kept > 0 && kept < keep.len(), "{kept} of {}", keep.len());
        assert!(reused > 0);
    }
}
