//! The scan: raw logs (through kaq-input's parallel reader) and kaq Parquet files, filtered on the
//! decode threads, reduced to the latest stage of each request, then handed to the stages.
//!
//! Latest stage per request: each event gets a global position (its order in the input). Events
//! that match keep their row; events that do not match (or lines the prefilter skipped) leave only
//! their request's identity ([`RequestKey`]) and [`Latest`] key. At the end, a matching event is
//! kept when no other record of its request is later by (stage rank, stageTimestamp, time,
//! position).
//!
//! A request is its auditID *and* what every stage of one request repeats: the received time,
//! the verb, the URI and the user. The API server takes the auditID from the client's `Audit-ID`
//! header when one is sent, so two requests can carry one auditID; keyed by the auditID alone,
//! one would hide the other.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use kaq_input::{EventHandler, ReadOptions, Reject, Report, Source};
use kaq_schema::Event;
use memchr::memmem::Finder;

use crate::eval::{Columns, eval};
use crate::extract::Getter;
use crate::pipeline::Row;
use crate::plan::Plan;
use crate::prefilter::Prefilter;
use crate::value::Val;

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

fn latest_of(ev: &Event<'_>) -> Latest {
    (stage_rank(ev.stage.as_deref()), ev.stage_timestamp.unwrap_or(i64::MIN), ev.derived.time.unwrap_or(i64::MIN))
}

/// A matching event.
struct Hit {
    pos: u64,
    key: RequestKey,
    rank: Latest,
    row: Row,
}

/// An event that did not match: only what decides which stage is the latest.
struct Stage {
    pos: u64,
    /// For a `quick` line, only the auditID is known: `request` is 0 and not compared.
    key: RequestKey,
    rank: Latest,
    /// A line the prefilter skipped: its auditID and stage were read by byte search, its
    /// timestamps and the rest of its identity were not, and it was not validated. If it could be
    /// the latest record of a matching request (it shares the auditID of one, at the same stage
    /// or later), the scan is redone without the prefilter ([`NeedsRescan`]).
    quick: bool,
}

/// A line skipped by the prefilter may decide a matching request's latest stage: the answer needs
/// a scan that decodes every line.
#[derive(Debug)]
pub struct NeedsRescan;

/// One chunk's findings. Positions count from the chunk's start.
#[derive(Default)]
pub struct Found {
    hits: Vec<Hit>,
    others: Vec<Stage>,
    /// Events (and skipped lines) seen in the chunk.
    n: u64,
    /// The earliest and latest `time` of the events tested (not of lines the prefilter skipped).
    times: Option<(i64, i64)>,
    /// The distinct values of each of [`Plan::watch`]'s slots among the events tested.
    seen: Seen,
}

/// Distinct values of the watched slots ([`Plan::watch`], in its order) among the events tested;
/// `None` for a slot with more than [`SEEN_MAX`] of them.
#[derive(Debug, Default, Clone)]
pub struct Seen(pub Vec<Option<HashSet<String>>>);

/// Distinct values kept per watched slot: the fields watched have a few each.
const SEEN_MAX: usize = 1000;

impl Seen {
    fn add(&mut self, i: usize, v: &Val<'_>) {
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || Some(HashSet::new()));
        }
        let Some(set) = &mut self.0[i] else { return };
        let mut put = |s: &str| {
            if !set.contains(s) {
                set.insert(s.to_string());
            }
        };
        match v {
            Val::Str(s) => put(s),
            Val::List(l) => l.iter().for_each(|x| {
                if let Val::Str(s) = x {
                    put(s)
                }
            }),
            _ => {}
        }
        if set.len() > SEEN_MAX {
            self.0[i] = None;
        }
    }

    fn merge(&mut self, other: Seen) {
        if self.0.len() < other.0.len() {
            self.0.resize_with(other.0.len(), || Some(HashSet::new()));
        }
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = match (mine.take(), theirs) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    (a.len() <= SEEN_MAX).then_some(a)
                }
                _ => None,
            };
        }
    }
}

impl Found {
    /// Sets the position the next event gets (for callers that test selected rows of a file and
    /// want positions to be row numbers), and with it the count of events seen.
    pub fn seek(&mut self, pos: u64) {
        self.n = pos;
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
fn widen_times(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((l1, h1)), Some((l2, h2))) => Some((l1.min(l2), h1.max(h2))),
        (a, b) => a.or(b),
    }
}

/// The [`EventHandler`] of a query.
pub struct Scan<'p> {
    plan: &'p Plan,
    getters: Vec<Getter>,
    prefilter: Option<Prefilter>,
    keep_secrets: bool,
    /// What decoding keeps of each event: what the getters read (the latest-stage rule's and the
    /// identity's fields are always decoded), or everything for whole events.
    fields: kaq_schema::Fields,
}

impl Scan<'_> {
    /// The same scan, decoding every line (after [`NeedsRescan`], or for input read only once).
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = None;
        self
    }
}

struct EventCols<'e, 'g> {
    ev: &'e Event<'e>,
    getters: &'g [Getter],
    reused: Option<&'g std::collections::HashSet<IdKey>>,
    cache: Vec<Option<Val<'e>>>,
}

impl<'e> Columns<'e> for EventCols<'e, '_> {
    fn get(&mut self, col: usize) -> &Val<'e> {
        let (ev, reused) = (self.ev, self.reused);
        self.cache[col].get_or_insert_with(|| match &self.getters[col] {
            Getter::IdReused => {
                let reused = reused.expect("the executor sets Plan::reused_ids for plans that read it");
                Val::Bool(reused.contains(&IdKey::new(ev.audit_id.as_deref().unwrap_or(""))))
            }
            g => g.get(ev),
        })
    }
}

impl<'p> Scan<'p> {
    pub fn new(plan: &'p Plan, keep_secrets: bool) -> Scan<'p> {
        let getters: Vec<Getter> =
            plan.slots.iter().map(|s| Getter::new(s.key.as_ref().expect("slots are event fields"))).collect();
        let fields = if plan.whole_events {
            kaq_schema::Fields::ALL
        } else {
            getters.iter().fold(kaq_schema::Fields::BASE, |f, g| f.with(g.fields()))
        };
        Scan { plan, getters, prefilter: Prefilter::new(&plan.prefilter), keep_secrets, fields }
    }

    /// Tests one event; `text` is its JSON as read (`None` for Parquet rows).
    pub fn handle(&self, found: &mut Found, ev: &Event<'_>, text: Option<&str>) {
        let pos = found.n;
        found.n += 1;
        if let Some(t) = ev.derived.time {
            found.times = widen_times(found.times, Some((t, t)));
        }
        // Shorten the event's lifetime to this call: columns borrow from it.
        let ev: &Event<'_> = ev;
        let reused = self.plan.reused_ids.as_deref();
        let mut cols = EventCols { ev, getters: &self.getters, reused, cache: vec![None; self.getters.len()] };
        for (i, &slot) in self.plan.watch.iter().enumerate() {
            found.seen.add(i, cols.get(slot));
        }
        let hit = eval(&self.plan.filter, &mut cols);
        if !hit && self.plan.all_stages {
            return;
        }
        let key = RequestKey::of(ev);
        let rank = latest_of(ev);
        if !hit {
            found.others.push(Stage { pos, key, rank, quick: false });
            return;
        }
        let vals = (0..self.getters.len()).map(|c| cols.get(c).clone().into_owned()).collect();
        let raw = self.plan.whole_events.then(|| self.event_json(ev, text));
        found.hits.push(Hit { pos, key, rank, row: Row { vals, raw } });
    }

    /// Tests an event restored from Parquet, after the checks decoding makes on logs
    /// ([`kaq_schema::redact::sanitize`]): a file written with `--keep-secrets`, by another tool
    /// or by an older kaq is redacted unless secrets are kept, before the filter sees it.
    pub fn handle_restored(&self, found: &mut Found, mut ev: Event<'_>) {
        kaq_schema::redact::sanitize(&mut ev, self.keep_secrets);
        self.handle(found, &ev, None);
    }

    /// The event's JSON as written, unless decoding changed the event (then as re-encoded).
    fn event_json(&self, ev: &Event<'_>, text: Option<&str>) -> Box<str> {
        match text {
            Some(t) if !ev.rewritten => t.trim().into(),
            _ => ev.to_json().to_string().into(),
        }
    }
}

impl EventHandler for Scan<'_> {
    type State = Found;
    type Output = Found;

    fn start(&self) -> Found {
        Found::default()
    }

    fn event(&self, found: &mut Found, ev: &Event<'_>) {
        self.handle(found, ev, None);
    }

    fn event_with_text(&self, found: &mut Found, ev: &Event<'_>, text: &str) {
        self.handle(found, ev, Some(text));
    }

    fn finish(&self, found: Found) -> Found {
        found
    }

    fn fields(&self) -> kaq_schema::Fields {
        self.fields
    }

    fn skip(&self, found: &mut Found, line: &[u8]) -> bool {
        let Some(pf) = &self.prefilter else { return false };
        if pf.may_match(line) {
            return false;
        }
        if self.plan.all_stages {
            found.n += 1;
            return true;
        }
        // The line cannot match, but it may be the latest stage of a request that another line
        // matches: keep its auditID and stage, when they can be read without decoding.
        match quick_id_stage(line) {
            Some((id, stage)) => {
                let rank = (stage, i64::MIN, i64::MIN);
                let key = RequestKey { id: IdKey::new(id), request: 0 };
                found.others.push(Stage { pos: found.n, key, rank, quick: true });
                found.n += 1;
                true
            }
            None => false,
        }
    }
}

/// The top-level `auditID` and the rank of the `stage` of a one-line event, found by byte
/// search: each key must occur exactly once in the line, at depth 1 of its object (so it is the
/// top-level one), and its value must have no escapes. `None` means "decode it properly".
pub fn quick_id_stage(line: &[u8]) -> Option<(&str, u8)> {
    let trimmed = line.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        return None;
    }
    static ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"auditID\""));
    static STAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"stage\""));
    let id = unique_string_value(trimmed, &ID)?;
    let stage = std::str::from_utf8(unique_string_value(trimmed, &STAGE)?).ok()?;
    Some((std::str::from_utf8(id).ok()?, stage_rank(Some(stage))))
}

fn unique_string_value<'a>(line: &'a [u8], key: &Finder<'_>) -> Option<&'a [u8]> {
    let mut it = key.find_iter(line);
    let at = it.next()?;
    if it.next().is_some() || at == 0 || line[at - 1] == b'\\' {
        return None;
    }
    // Occurring once is not enough: with the top-level key missing, the one occurrence could be
    // a nested object's. It must be at depth 1 of the line's object.
    if depth_at(line, at)? != 1 {
        return None;
    }
    let rest = line[at + key.needle().len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[end] == b'"').then(|| &rest[..end])
}

/// The object depth at byte `pos` (which must not be inside a string), counting `{`/`}` outside
/// strings from the start of the line; `None` if `pos` turns out to be inside a string.
fn depth_at(line: &[u8], pos: usize) -> Option<i32> {
    let (mut depth, mut i) = (0i32, 0usize);
    while let Some(off) = memchr::memchr3(b'"', b'{', b'}', &line[i..pos]) {
        let at = i + off;
        match line[at] {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {
                // Skip the string: its closing quote is the first one not escaped.
                let mut j = at + 1;
                loop {
                    let o = memchr::memchr2(b'"', b'\\', line.get(j..)?)?;
                    if line[j + o] == b'\\' {
                        j += o + 2;
                    } else {
                        j += o;
                        break;
                    }
                }
                if j >= pos {
                    return None; // `pos` is inside this string
                }
                i = j + 1;
                continue;
            }
        }
        i = at + 1;
    }
    Some(depth)
}

/// What a scan found, before the stages.
pub struct Scanned {
    /// Matching rows in input order (latest stage of each request unless all stages are kept).
    pub rows: Vec<Row>,
    /// Reading totals over raw logs.
    pub report: Report,
    /// Rows read from Parquet files.
    pub parquet_rows: u64,
    /// The first rejected records (at most `max_rejects`).
    pub rejects: Vec<Reject>,
    /// Rows whose auditID another request also carries ([`Finished::ids_reused`]).
    pub ids_reused: u64,
    /// The earliest and latest `time` of the events tested: every event read, but for the lines
    /// the prefilter skipped (which cannot match); for [`plan::warn::time_warning`](crate::plan::warn::time_warning).
    pub time_range: Option<(i64, i64)>,
    /// The distinct values of [`Plan::watch`]'s slots among the same events.
    pub seen: Seen,
}

/// Errors of a scan.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Input(#[from] kaq_input::InputError),
    #[error("{path}: {error}")]
    Parquet { path: PathBuf, error: kaq_columnar::Error },
    /// [`ReadOptions::cancel`] was set: the scan stopped early and its rows are dropped.
    #[error("cancelled")]
    Cancelled,
    /// The query cannot run over this input.
    #[error("{0}")]
    Unsupported(String),
}

/// The requests of an input, by identity ([`RequestKey`]): how many records, how many
/// requests, and which auditIDs more than one request carries.
#[derive(Debug, Default)]
pub struct Identities {
    /// Records read.
    pub records: u64,
    /// The requests of each auditID (for an auditID carried by one request, one).
    requests: HashMap<IdKey, Vec<u64>>,
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

    fn merge(&mut self, other: Identities) {
        self.records += other.records;
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
        self.requests.values().map(|r| r.len() as u64).sum()
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

/// Gathers identities on the decode threads.
struct IdentityHandler;

impl EventHandler for IdentityHandler {
    type State = Identities;
    type Output = Identities;

    fn start(&self) -> Identities {
        Identities::default()
    }

    fn event(&self, ids: &mut Identities, ev: &Event<'_>) {
        ids.add(ev);
    }

    fn fields(&self) -> kaq_schema::Fields {
        kaq_schema::Fields::BASE
    }

    fn finish(&self, ids: Identities) -> Identities {
        ids
    }
}

/// Every record's request identity in `inputs` (logs, directories and kaq Parquet files; rejected
/// records are not events and count nowhere).
pub fn identities(inputs: &[PathBuf], read: &ReadOptions) -> Result<Identities, ScanError> {
    let expanded = kaq_input::expand(inputs)?;
    expanded.check(read.strict)?;
    let (files, logs) = parquet_and_logs(expanded.sources);
    identities_of(&files, &logs, read)
}

/// The identities of the records of kaq Parquet `files` and of `logs`.
fn identities_of(files: &[PathBuf], logs: &[Source], read: &ReadOptions) -> Result<Identities, ScanError> {
    let mut all = Identities::default();
    kaq_input::read(logs, read, &IdentityHandler, |chunk| {
        if let Some(ids) = chunk.output {
            all.merge(ids);
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap_or_else(|e| match e {})
    .check(read.strict)?;
    all.merge(parquet_identities(files, read.threads.max(1), read.cancel.as_deref())?);
    if read.cancelled() {
        return Err(ScanError::Cancelled);
    }
    Ok(all)
}

/// An expansion's sources as kaq Parquet files (read by row group) and the rest (logs, stdin).
fn parquet_and_logs(sources: Vec<Source>) -> (Vec<PathBuf>, Vec<Source>) {
    let (parquet, logs): (Vec<Source>, Vec<Source>) =
        sources.into_iter().partition(|s| matches!(s, Source::File(p) if kaq_columnar::read::is_parquet(p)));
    let files = parquet.into_iter().filter_map(|s| if let Source::File(p) = s { Some(p) } else { None }).collect();
    (files, logs)
}

/// Every row's request identity in kaq Parquet `files` (a store's segments), reading only the
/// columns identity needs.
pub fn parquet_identities(
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Identities, ScanError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let (found, _) = par_row_groups(files, threads, cancel, &[], |job| {
        let b = ParquetRecordBatchReaderBuilder::try_new(job.file.clone())?;
        let mask = columns_mask(IDENTITY_COLUMNS, b.schema(), b.parquet_schema());
        let reader = b.with_projection(mask).with_row_groups(vec![job.group]).with_batch_size(8192).build()?;
        let mut ids = Identities::default();
        for batch in reader {
            let batch = batch?;
            let cols = kaq_columnar::Columns::projected(&batch)?;
            for i in 0..batch.num_rows() {
                ids.add(&cols.event(i)?);
            }
        }
        Ok(ids)
    })?;
    let mut all = Identities::default();
    for f in found {
        all.merge(f);
    }
    Ok(all)
}

/// Scans `inputs` (files, directories, `-`) with `plan`'s filter.
pub fn scan(
    plan: &Plan,
    inputs: &[PathBuf],
    read: &ReadOptions,
    max_rejects: usize,
    on_reject: &mut dyn FnMut(&Reject),
) -> Result<Scanned, ScanError> {
    let expanded = kaq_input::expand(inputs)?;
    // Directory entries that cannot be read are reported with the read errors, and passed over.
    expanded.check(read.strict)?;
    let unreadable = expanded.messages();
    let (files, logs) = parquet_and_logs(expanded.sources);
    let with_reused;
    let plan = if plan.needs_reused_ids() {
        if logs.iter().any(|s| matches!(s, Source::Stdin)) {
            return Err(ScanError::Unsupported(
                "`id_reused` reads the input twice (once to find the auditIDs several requests carry): give files, not stdin"
                    .into(),
            ));
        }
        let ids = identities_of(&files, &logs, read)?;
        with_reused = Plan { reused_ids: Some(std::sync::Arc::new(ids.reused())), ..plan.clone() };
        &with_reused
    } else {
        plan
    };
    let mut handler = Scan::new(plan, read.decode.keep_secrets);
    if logs.iter().any(|s| matches!(s, Source::Stdin)) {
        handler = handler.without_prefilter(); // read once: no second pass possible
    }
    let mut rejects = Vec::new();
    let mut first = true;
    loop {
        let mut collect = Collector::default();
        let mut report = kaq_input::read(&logs, read, &handler, |chunk| {
            for r in chunk.rejects.iter().filter(|_| first) {
                on_reject(r);
                if rejects.len() < max_rejects {
                    rejects.push(r.clone());
                }
            }
            if let Some(found) = chunk.output {
                collect.add(found);
            }
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|e| match e {});
        report.check(read.strict)?;
        report.read_errors.splice(0..0, unreadable.iter().cloned());
        let parquet_rows = scan_parquet(&handler, &files, read, &mut collect)?;
        if read.cancelled() {
            return Err(ScanError::Cancelled);
        }
        let (time_range, seen) = (collect.times, std::mem::take(&mut collect.seen));
        match collect.finish_counting(plan.all_stages) {
            Ok(Finished { rows, ids_reused }) => {
                return Ok(Scanned { rows, report, parquet_rows, rejects, ids_reused, time_range, seen });
            }
            // Rare: a skipped line may be the latest stage of a matching request. Decode all.
            Err(NeedsRescan) => {
                handler = handler.without_prefilter();
                first = false;
            }
        }
    }
}

/// The columns a Parquet scan with `plan` must read (`None`: all of them, for whole events):
/// those of its fields, and those the latest-stage rule reads unless every stage is kept.
pub fn projection(plan: &Plan) -> Option<Vec<&'static str>> {
    (!plan.whole_events).then(|| slot_columns(plan, !plan.all_stages))
}

/// The columns of `plan`'s fields, and with `latest` those the latest-stage rule reads.
fn slot_columns(plan: &Plan, latest: bool) -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = plan
        .slots
        .iter()
        .flat_map(|s| Getter::new(s.key.as_ref().expect("slots are event fields")).columns().iter().copied())
        .collect();
    if latest {
        cols.extend(IDENTITY_COLUMNS);
    }
    // Redaction of a restored body reads which resource and path the event is about.
    if cols.iter().any(|c| matches!(*c, "request" | "response")) {
        cols.extend(["resource", "uri"]);
    }
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// The projection of [`projection`]'s columns in a file's schema.
pub fn projection_mask(
    plan: &Plan,
    arrow: &arrow_schema::Schema,
    parquet: &parquet::schema::types::SchemaDescriptor,
) -> parquet::arrow::ProjectionMask {
    match projection(plan) {
        None => parquet::arrow::ProjectionMask::all(),
        Some(cols) => columns_mask(&cols, arrow, parquet),
    }
}

/// The projection of the named columns in a file's schema.
pub fn columns_mask(
    cols: &[&str],
    arrow: &arrow_schema::Schema,
    parquet: &parquet::schema::types::SchemaDescriptor,
) -> parquet::arrow::ProjectionMask {
    parquet::arrow::ProjectionMask::roots(
        parquet,
        arrow.fields().iter().enumerate().filter(|(_, f)| cols.contains(&f.name().as_str())).map(|(i, _)| i),
    )
}

/// Reads Parquet files row group by row group on `threads` threads, restoring each row to an
/// event and testing it; the findings are added in file and row-group order, so positions (and so
/// the latest-stage rule) are the same as reading the files one row after another.
fn scan_parquet(
    handler: &Scan<'_>,
    files: &[PathBuf],
    read: &ReadOptions,
    collect: &mut Collector,
) -> Result<u64, ScanError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    // No row group is skipped here: under the latest-stage rule any row may be a later stage.
    let (found, _) = par_row_groups(files, read.threads.max(1), read.cancel.as_deref(), &[], |job| {
        let b = ParquetRecordBatchReaderBuilder::try_new(job.file.clone())?;
        let mask = projection_mask(handler.plan, b.schema(), b.parquet_schema());
        let reader = b.with_projection(mask).with_row_groups(vec![job.group]).with_batch_size(8192).build()?;
        let mut found = Found::default();
        let mut n = 0;
        for batch in reader {
            if read.cancelled() {
                break; // the whole scan reports Cancelled
            }
            let batch = batch?;
            let cols = kaq_columnar::Columns::projected(&batch)?;
            for i in 0..batch.num_rows() {
                handler.handle_restored(&mut found, cols.event(i)?);
            }
            n += batch.num_rows() as u64;
        }
        Ok((found, n))
    })?;
    if read.cancelled() {
        return Err(ScanError::Cancelled);
    }
    let mut rows = 0;
    for (f, n) in found {
        rows += n;
        collect.add(f);
    }
    Ok(rows)
}

/// A condition every row that can pass a caller's filter meets, checked against a row group's
/// column statistics ([`par_row_groups`]): a row group whose statistics prove no row meets it is
/// skipped. Each holds on the file's column values exactly as the caller's filter reads them
/// (the caller maps its bounds, [`crate::plan::column_bounds`], to the columns).
#[derive(Debug, Clone, PartialEq)]
pub enum StatBound {
    /// The value of an integer column (INT32, or INT64 such as the timestamps) is in `lo..=hi`.
    Int { column: &'static str, lo: Option<i64>, hi: Option<i64> },
    /// The value of a byte-array (UTF-8) column lies within these ends, `(bytes, inclusive)`,
    /// compared byte-wise (as `str` compares).
    Bytes { column: &'static str, lo: Option<(Vec<u8>, bool)>, hi: Option<(Vec<u8>, bool)> },
    /// The column is not null.
    Present { column: &'static str },
    /// `stage_time − time` (both not null) is in `lo..=hi`.
    Latency { lo: Option<i64>, hi: Option<i64> },
}

/// Whether a row group's statistics prove that no row meets `bound`. No statistics, or
/// statistics whose order is not the one the bound compares by: not proved.
fn stats_rule_out(
    rg: &parquet::file::metadata::RowGroupMetaData,
    meta: &parquet::file::metadata::FileMetaData,
    bound: &StatBound,
) -> bool {
    use parquet::basic::{ColumnOrder, SortOrder};
    use parquet::file::statistics::Statistics;
    let rows = rg.num_rows() as u64;
    let leaf = |name: &str| meta.schema_descr().columns().iter().position(|c| c.path().string() == name);
    let stats = |name: &str| leaf(name).and_then(|l| rg.column(l).statistics().map(|s| (l, s)));
    // Every row null: nothing is in any range, nothing is present.
    let all_null = |st: &Statistics| rows > 0 && st.null_count_opt() == Some(rows);
    // Integer min/max, when compared as signed numbers (the order of kaq's integer columns).
    let ints = |l: usize, st: &Statistics| -> Option<(i64, i64)> {
        if matches!(meta.column_order(l), ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::UNSIGNED)) {
            return None;
        }
        match st {
            Statistics::Int32(v) => Some((i64::from(*v.min_opt()?), i64::from(*v.max_opt()?))),
            Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
            _ => None,
        }
    };
    let outside = |(min, max): (i64, i64), lo: Option<i64>, hi: Option<i64>| {
        hi.is_some_and(|h| min > h) || lo.is_some_and(|l| max < l)
    };
    match bound {
        StatBound::Present { column } => stats(column).is_some_and(|(_, st)| all_null(st)),
        StatBound::Int { column, lo, hi } => {
            stats(column).is_some_and(|(l, st)| all_null(st) || ints(l, st).is_some_and(|mm| outside(mm, *lo, *hi)))
        }
        StatBound::Bytes { column, lo, hi } => stats(column).is_some_and(|(l, st)| {
            if all_null(st) {
                return true;
            }
            // Byte-wise (unsigned) order, in the current fields: a truncated min is a prefix of
            // the min, a truncated max is rounded up, so both still bound the values.
            let unsigned = matches!(meta.column_order(l), ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::UNSIGNED));
            let Statistics::ByteArray(v) = st else { return false };
            if !unsigned || st.is_min_max_deprecated() {
                return false;
            }
            let (Some(min), Some(max)) = (v.min_opt(), v.max_opt()) else { return false };
            let (min, max) = (min.data(), max.data());
            let above =
                hi.as_ref().is_some_and(|(h, incl)| if *incl { min > h.as_slice() } else { min >= h.as_slice() });
            let below =
                lo.as_ref().is_some_and(|(l, incl)| if *incl { max < l.as_slice() } else { max <= l.as_slice() });
            above || below
        }),
        StatBound::Latency { lo, hi } => {
            let (Some((lt, t)), Some((ls, s))) = (stats("time"), stats("stage_time")) else { return false };
            if all_null(t) || all_null(s) {
                return true;
            }
            let (Some((t_min, t_max)), Some((s_min, s_max))) = (ints(lt, t), ints(ls, s)) else { return false };
            // A row's latency is its stage_time − its time: within these.
            match (s_min.checked_sub(t_max), s_max.checked_sub(t_min)) {
                (Some(min), Some(max)) => outside((min, max), *lo, *hi),
                _ => false,
            }
        }
    }
}

/// One row group of a file a Parquet scan reads ([`par_row_groups`]).
pub(crate) struct RowGroupJob<'a> {
    /// The file, opened before any reading.
    pub file: &'a SharedFile,
    pub group: usize,
    /// The group's first row in its file.
    pub first_row: u64,
    /// Rows in the group.
    pub rows: u64,
    /// Whether the file has exactly kaq's columns (then dictionaries can be asked for).
    pub kaq_schema: bool,
}

/// Runs `job` on every row group of kaq Parquet `files`, on `threads` threads, and returns the
/// results in file and row-group order. Every file is opened once, before any reading: a handle
/// keeps a file readable even if a store writer removes it meanwhile (after a compaction).
/// `cancel` is checked before each row group. Row groups whose column statistics prove that no
/// row meets one of `prune` are skipped ([`StatBound`]): only for callers that test each row on
/// its own against a filter that implies those bounds. Also returns the number skipped.
pub(crate) fn par_row_groups<T: Send>(
    files: &[PathBuf],
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
    prune: &[StatBound],
    job: impl Fn(&RowGroupJob<'_>) -> Result<T, kaq_columnar::Error> + Sync,
) -> Result<(Vec<T>, u64), ScanError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let perr = |path: &Path, e: kaq_columnar::Error| ScanError::Parquet { path: path.to_path_buf(), error: e };
    let audit = kaq_columnar::audit_schema();
    let mut handles: Vec<SharedFile> = Vec::new();
    // (file, group, first row, rows, kaq schema)
    let mut jobs: Vec<(usize, usize, u64, u64, bool)> = Vec::new();
    let mut skipped = 0u64;
    for (f, path) in files.iter().enumerate() {
        let file = std::fs::File::open(path)
            .map_err(|e| perr(path, kaq_columnar::Error::Io { path: path.clone(), error: e }))?;
        let shared = SharedFile::new(file);
        let b = ParquetRecordBatchReaderBuilder::try_new(shared.clone()).map_err(|e| perr(path, e.into()))?;
        if b.schema().field_with_name("id").is_err() {
            // Scans read only some columns: check what Columns::new would for the whole file.
            return Err(perr(path, kaq_columnar::Error::NotKaqParquet("it has no `id` column".into())));
        }
        let exact = b.schema().fields().iter().map(|f| f.name()).eq(audit.fields().iter().map(|f| f.name()));
        let mut start = 0u64;
        let meta = b.metadata().file_metadata();
        for (g, rg) in b.metadata().row_groups().iter().enumerate() {
            let rows = rg.num_rows() as u64;
            if prune.iter().any(|p| stats_rule_out(rg, meta, p)) {
                skipped += 1;
            } else {
                jobs.push((f, g, start, rows, exact));
            }
            start += rows;
        }
        handles.push(shared);
    }
    type Slot<T> = Mutex<Option<Result<T, ScanError>>>;
    let results: Vec<Slot<T>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(f, group, first_row, rows, kaq_schema)) = jobs.get(j) else { return };
            let r = if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                Err(ScanError::Cancelled)
            } else {
                job(&RowGroupJob { file: &handles[f], group, first_row, rows, kaq_schema })
                    .map_err(|e| perr(&files[f], e))
            };
            *results[j].lock().expect("unpoisoned") = Some(r);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(jobs.len().max(1)) {
            s.spawn(work);
        }
        work();
    });
    let results = results.into_iter().map(|r| r.into_inner().expect("unpoisoned").expect("every job ran"));
    Ok((results.collect::<Result<Vec<T>, ScanError>>()?, skipped))
}

/// An open file that several threads read at once, by position (`pread`): parquet's reader for
/// `File` shares one file offset between clones, which threads would race on.
#[derive(Clone)]
pub(crate) struct SharedFile(std::sync::Arc<std::fs::File>);

impl SharedFile {
    pub(crate) fn new(f: std::fs::File) -> SharedFile {
        SharedFile(std::sync::Arc::new(f))
    }
}

impl parquet::file::reader::Length for SharedFile {
    fn len(&self) -> u64 {
        self.0.metadata().map_or(0, |m| m.len())
    }
}

/// A reader at a position of a [`SharedFile`], reading with `pread`.
pub(crate) struct PositionedRead {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
}

impl std::io::Read for PositionedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl parquet::file::reader::ChunkReader for SharedFile {
    type T = std::io::BufReader<PositionedRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::new(PositionedRead { file: self.0.clone(), pos: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; length];
        self.0.read_exact_at(&mut buf, start).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(bytes::Bytes::from(buf))
    }
}

/// Resolves the latest stages of one chunk's findings (see [`crate::run_on_text`]).
pub fn finish_one(found: Found, all_stages: bool) -> Result<Vec<Row>, NeedsRescan> {
    let mut c = Collector::default();
    c.add(found);
    c.finish(all_stages)
}

/// Gathers chunks in input order and resolves the latest stages at the end.
#[derive(Default)]
pub struct Collector {
    base: u64,
    times: Option<(i64, i64)>,
    seen: Seen,
    hits: Vec<Hit>,
    others: Vec<Stage>,
}

impl Collector {
    /// Adds the next chunk's findings (chunks in input order).
    pub fn add(&mut self, mut f: Found) {
        for h in &mut f.hits {
            h.pos += self.base;
        }
        for o in &mut f.others {
            o.pos += self.base;
        }
        self.base += f.n;
        self.times = widen_times(self.times, f.times);
        self.seen.merge(std::mem::take(&mut f.seen));
        self.hits.append(&mut f.hits);
        self.others.append(&mut f.others);
    }

    /// The rows kept: every hit with all stages, else the hits that are their request's latest.
    pub fn finish(self, all_stages: bool) -> Result<Vec<Row>, NeedsRescan> {
        self.finish_counting(all_stages).map(|f| f.rows)
    }

    /// [`Collector::finish`], and how many of the requests kept share their auditID with another
    /// request among the records read.
    pub fn finish_counting(self, all_stages: bool) -> Result<Finished, NeedsRescan> {
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
            return Ok(Finished { rows: self.hits.into_iter().map(|h| h.row).collect(), ids_reused });
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
        let mut superseded: HashSet<&RequestKey, ahash::RandomState> = HashSet::default();
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
        let rows = self.hits.into_iter().zip(keep).filter(|(_, k)| *k).map(|(h, _)| h.row).collect();
        Ok(Finished { rows, ids_reused })
    }
}

/// What [`Collector::finish_counting`] keeps.
pub struct Finished {
    pub rows: Vec<Row>,
    /// Rows kept whose auditID another request also carries (among the records read: with every
    /// stage kept, among the matching ones).
    pub ids_reused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_values_are_merged_and_capped() {
        let (mut a, mut b) = (Seen::default(), Seen::default());
        a.add(0, &Val::Str("get".into()));
        b.add(1, &Val::List(vec![Val::Str("x".into()), Val::Str("y".into())]));
        b.add(0, &Val::Str("list".into()));
        a.merge(b);
        let sorted = |s: &Option<HashSet<String>>| {
            let mut v: Vec<String> = s.clone().unwrap().into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&a.0[0]), ["get", "list"]);
        assert_eq!(sorted(&a.0[1]), ["x", "y"]);
        for i in 0..=SEEN_MAX {
            a.add(1, &Val::Str(i.to_string().into()));
        }
        assert!(a.0[1].is_none(), "past the cap: unknown");
        a.add(1, &Val::Str("z".into()));
        a.merge(Seen(vec![Some(HashSet::new()), Some(HashSet::new())]));
        assert!(a.0[1].is_none() && a.0[0].is_some());
    }

    #[test]
    fn quick_id_and_stage() {
        let t = r#""requestReceivedTimestamp":"1970-01-01T00:00:01.000000Z","stageTimestamp":"1970-01-01T00:00:02.000000Z""#;
        let line = format!(r#"{{"kind":"Event","auditID":"7c1a","stage" : "ResponseComplete","verb":"get",{t}}}"#);
        assert_eq!(quick_id_stage(line.as_bytes()), Some(("7c1a", 2)));
        // A nested second auditID, an escape, no stage, no received time, or a truncated line:
        // decode properly.
        let q = |s: String| quick_id_stage(s.as_bytes()).map(|(id, l)| (id.to_string(), l));
        assert_eq!(q(format!(r#"{{"auditID":"a","stage":"x",{t},"requestObject":{{"auditID":"b"}}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a\u0062","stage":"x",{t}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a",{t}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a","stage":"x",{t}"#)), None);
        // The top-level stage missing, a nested one present: not read as the event's stage.
        assert_eq!(q(format!(r#"{{"auditID":"a",{t},"requestObject":{{"stage":"RequestReceived"}}}}"#)), None);
        // Key text inside a string value is skipped over.
        assert_eq!(
            q(format!(r#"{{"auditID":"a","uri":"x\"stage\":\"y","stage":"Panic",{t}}}"#)),
            Some(("a".into(), 3))
        );
        assert_eq!(q(r#"{"auditID":"a","stage":"Panic"}"#.into()), Some(("a".into(), 3)));
    }

    #[test]
    fn uuids_pack() {
        assert_eq!(IdKey::new("33dcd77f-f179-42d2-a48b-96628f3c4be3"), IdKey::Uuid(0x33dcd77ff17942d2a48b96628f3c4be3));
        assert!(matches!(IdKey::new("33DCD77F-f179-42d2-a48b-96628f3c4be3"), IdKey::Other(_)));
        assert!(matches!(IdKey::new("33dcd77f-f179-42d2-a48b-96628f3c4bez"), IdKey::Other(_)));
        assert!(matches!(IdKey::new("33dcd77f+f179-42d2-a48b-96628f3c4be3"), IdKey::Other(_)));
        assert_eq!(IdKey::new("00000000-0000-0000-0000-000000000001"), IdKey::Uuid(1));
        let id = "33dcd77f-f179-42d2-a48b-96628f3c4be3";
        assert_eq!(IdKey::new(id).text(), id);
        assert_eq!(stage_rank(Some("RequestReceived")), 0);
        assert_eq!(stage_rank(None), 2);
    }
}
