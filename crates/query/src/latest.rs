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

/// An auditID, compactly: UUIDs as 128-bit numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Uuid(u128),
    Other(Box<str>),
}

impl IdKey {
    pub fn new(id: &str) -> IdKey {
        parse_uuid(id).map_or_else(|| IdKey::Other(id.into()), IdKey::Uuid)
    }

    /// The auditID as written.
    pub fn text(&self) -> String {
        match self {
            IdKey::Other(s) => s.to_string(),
            IdKey::Uuid(v) => {
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
/// request exactly when their keys are equal. The digest is SipHash under a key drawn at random
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
    use std::hash::BuildHasher;
    static KEY: LazyLock<std::collections::hash_map::RandomState> =
        LazyLock::new(std::collections::hash_map::RandomState::new);
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
    hits: Vec<Hit>,
    others: Vec<Stage>,
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
        let rows = self.hits.into_iter().zip(keep).filter(|(_, k)| *k).map(|(h, _)| h.row).collect();
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
    fn settle(&self, all_stages: bool) -> Result<(Vec<bool>, u64), NeedsRescan> {
        // Requests per auditID among the records read whole (hits, and others decoded).
        // aHash, keyed at random per process (SipHash was a tenth of a full-decode question).
        type Map<K, V> = HashMap<K, V, ahash::RandomState>;
        let mut requests: Map<&IdKey, (u64, bool)> = Map::default();
        fn note<'k>(requests: &mut Map<&'k IdKey, (u64, bool)>, k: &'k RequestKey) {
            let e = requests.entry(&k.id).or_insert((k.request, false));
            e.1 |= e.0 != k.request;
        }
        for h in &self.hits {
            note(&mut requests, &h.key);
        }
        if all_stages {
            for o in self.others.iter().filter(|o| !o.quick) {
                note(&mut requests, &o.key);
            }
            let reused = |h: &Hit| requests.get(&h.key.id).is_some_and(|r| r.1);
            let ids_reused = self.hits.iter().filter(|h| reused(h)).count() as u64;
            return Ok((vec![true; self.hits.len()], ids_reused));
        }
        // The latest (rank, position) per request among hits, then among the others.
        let mut best: Map<&RequestKey, (Latest, u64)> =
            Map::with_capacity_and_hasher(self.hits.len(), Default::default());
        for h in &self.hits {
            let e = best.entry(&h.key).or_insert((h.rank, h.pos));
            *e = (*e).max((h.rank, h.pos));
        }
        // A skipped line is known by its auditID only: it may be a record of any matching
        // request of that auditID.
        let mut lowest_stage: Map<&IdKey, u8> = Map::with_capacity_and_hasher(best.len(), Default::default());
        for (k, b) in &best {
            let e = lowest_stage.entry(&k.id).or_insert(b.0.0);
            *e = (*e).min(b.0.0);
        }
        let mut superseded: std::collections::HashSet<&RequestKey, ahash::RandomState> =
            std::collections::HashSet::default();
        if !best.is_empty() {
            for o in &self.others {
                if o.quick {
                    if lowest_stage.get(&o.key.id).is_some_and(|s| o.rank.0 >= *s) {
                        return Err(NeedsRescan);
                    }
                    continue;
                }
                if lowest_stage.contains_key(&o.key.id) {
                    note(&mut requests, &o.key);
                }
                if best.get(&o.key).is_some_and(|b| (o.rank, o.pos) > *b) {
                    superseded.insert(&o.key);
                }
            }
        }
        let keep: Vec<bool> = self
            .hits
            .iter()
            .map(|h| !superseded.contains(&h.key) && best.get(&h.key) == Some(&(h.rank, h.pos)))
            .collect();
        let reused = |h: &Hit| requests.get(&h.key.id).is_some_and(|r| r.1);
        let ids_reused = self.hits.iter().zip(&keep).filter(|(h, k)| **k && reused(h)).count() as u64;
        Ok((keep, ids_reused))
    }
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
