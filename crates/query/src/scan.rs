//! The scan: raw logs (through kaq-input's parallel reader) and kaq Parquet files, filtered on the
//! decode threads, reduced to the latest stage of each request, then handed to the stages.
//!
//! Latest stage per request: each event gets a global position (its order in the input). Events
//! that match keep their row; events that do not match (or lines the prefilter skipped) leave only
//! their auditID and [`Latest`] key. At the end, a matching event is kept when no other event of
//! its auditID is later by (stage rank, stageTimestamp, time, position).

use std::borrow::Cow;
use std::collections::HashMap;
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
    id: IdKey,
    rank: Latest,
    row: Row,
}

/// An event that did not match: only what decides which stage is the latest.
struct Stage {
    pos: u64,
    id: IdKey,
    rank: Latest,
}

/// One chunk's findings. Positions count from the chunk's start.
#[derive(Default)]
pub struct Found {
    hits: Vec<Hit>,
    others: Vec<Stage>,
    /// Events (and skipped lines) seen in the chunk.
    n: u64,
}

/// The [`EventHandler`] of a query.
pub struct Scan<'p> {
    plan: &'p Plan,
    getters: Vec<Getter>,
    prefilter: Option<Prefilter>,
    keep_secrets: bool,
}

struct EventCols<'e, 'g> {
    ev: &'e Event<'e>,
    getters: &'g [Getter],
    cache: Vec<Option<Val<'e>>>,
}

impl<'e> Columns<'e> for EventCols<'e, '_> {
    fn get(&mut self, col: usize) -> &Val<'e> {
        let ev = self.ev;
        self.cache[col].get_or_insert_with(|| self.getters[col].get(ev))
    }
}

impl<'p> Scan<'p> {
    pub fn new(plan: &'p Plan, keep_secrets: bool) -> Scan<'p> {
        let getters = plan.slots.iter().map(|s| Getter::new(s.key.as_ref().expect("slots are event fields"))).collect();
        Scan { plan, getters, prefilter: Prefilter::new(&plan.prefilter), keep_secrets }
    }

    /// Tests one event; `text` is its JSON as read (`None` for Parquet rows).
    fn handle(&self, found: &mut Found, ev: &Event<'_>, text: Option<&str>) {
        let pos = found.n;
        found.n += 1;
        // Shorten the event's lifetime to this call: columns borrow from it.
        let ev: &Event<'_> = ev;
        let mut cols = EventCols { ev, getters: &self.getters, cache: vec![None; self.getters.len()] };
        let hit = eval(&self.plan.filter, &mut cols);
        if !hit && self.plan.all_stages {
            return;
        }
        let id = IdKey::new(ev.audit_id.as_deref().unwrap_or(""));
        let rank = latest_of(ev);
        if !hit {
            found.others.push(Stage { pos, id, rank });
            return;
        }
        let vals = (0..self.getters.len()).map(|c| cols.get(c).clone().into_owned()).collect();
        let raw = self.plan.whole_events.then(|| self.event_json(ev, text));
        found.hits.push(Hit { pos, id, rank, row: Row { vals, raw } });
    }

    /// The event's JSON as written, unless redaction changed the event (then as re-encoded).
    fn event_json(&self, ev: &Event<'_>, text: Option<&str>) -> Box<str> {
        let redacted = !self.keep_secrets
            && (matches!(ev.request_object, Some(Cow::Owned(_))) || matches!(ev.response_object, Some(Cow::Owned(_))));
        match text {
            Some(t) if !redacted => t.trim().into(),
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
            Some((id, rank)) => {
                found.others.push(Stage { pos: found.n, id: IdKey::new(id), rank });
                found.n += 1;
                true
            }
            None => false,
        }
    }
}

/// The top-level `auditID` of a one-line event and what decides its latest stage (`stage`,
/// `stageTimestamp`, `requestReceivedTimestamp`), found by byte search: each key must occur exactly
/// once in the line (so it is the top-level one) and its value must have no escapes. `None` means
/// "decode it properly" (also when `requestReceivedTimestamp` is missing: `time` then falls back to
/// other fields).
pub fn quick_id_stage(line: &[u8]) -> Option<(&str, Latest)> {
    let trimmed = line.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        return None;
    }
    static ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"auditID\""));
    static STAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"stage\""));
    static STAGE_TIME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"stageTimestamp\""));
    static RECEIVED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"requestReceivedTimestamp\""));
    let id = unique_string_value(trimmed, &ID)?;
    let stage = std::str::from_utf8(unique_string_value(trimmed, &STAGE)?).ok()?;
    let time = |f: &Finder<'_>| -> Option<i64> {
        let v = std::str::from_utf8(unique_string_value(trimmed, f)?).ok()?;
        Some(kaq_schema::time::parse_rfc3339(v)?.micros)
    };
    let received = time(&RECEIVED)?;
    // A missing stageTimestamp is fine (absent sorts first); a present one must be read.
    let staged = match STAGE_TIME.find(trimmed) {
        None => i64::MIN,
        Some(_) => time(&STAGE_TIME)?,
    };
    Some((std::str::from_utf8(id).ok()?, (stage_rank(Some(stage)), staged, received)))
}

fn unique_string_value<'a>(line: &'a [u8], key: &Finder<'_>) -> Option<&'a [u8]> {
    let mut it = key.find_iter(line);
    let at = it.next()?;
    if it.next().is_some() || (at > 0 && line[at - 1] == b'\\') {
        return None;
    }
    let rest = line[at + key.needle().len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[end] == b'"').then(|| &rest[..end])
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
}

/// Errors of a scan.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Input(#[from] kaq_input::InputError),
    #[error("{path}: {error}")]
    Parquet { path: PathBuf, error: kaq_columnar::Error },
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
    let (parquet, logs): (Vec<Source>, Vec<Source>) =
        expanded.sources.into_iter().partition(|s| matches!(s, Source::File(p) if kaq_columnar::read::is_parquet(p)));
    let handler = Scan::new(plan, read.decode.keep_secrets);
    let mut collect = Collector::default();
    let mut rejects = Vec::new();
    let report = kaq_input::read(&logs, read, &handler, |chunk| {
        for r in &chunk.rejects {
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
    let files: Vec<PathBuf> =
        parquet.into_iter().filter_map(|s| if let Source::File(p) = s { Some(p) } else { None }).collect();
    let parquet_rows = scan_parquet(&handler, &files, read.threads.max(1), &mut collect)?;
    Ok(Scanned { rows: collect.finish(plan.all_stages), report, parquet_rows, rejects })
}

/// Reads Parquet files row group by row group on `threads` threads, restoring each row to an
/// event and testing it; the findings are added in file and row-group order, so positions (and so
/// the latest-stage rule) are the same as reading the files one row after another.
fn scan_parquet(
    handler: &Scan<'_>,
    files: &[PathBuf],
    threads: usize,
    collect: &mut Collector,
) -> Result<u64, ScanError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let perr = |path: &Path, e: kaq_columnar::Error| ScanError::Parquet { path: path.to_path_buf(), error: e };
    // Jobs: (file, row group).
    let mut jobs: Vec<(usize, usize)> = Vec::new();
    for (f, path) in files.iter().enumerate() {
        let file = std::fs::File::open(path)
            .map_err(|e| perr(path, kaq_columnar::Error::Io { path: path.clone(), error: e }))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(path, e.into()))?;
        jobs.extend((0..b.metadata().num_row_groups()).map(|g| (f, g)));
    }
    let results: Vec<Mutex<Option<Result<(Found, u64), ScanError>>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(f, g)) = jobs.get(j) else { return };
            let path = &files[f];
            let run = || -> Result<(Found, u64), kaq_columnar::Error> {
                let file =
                    std::fs::File::open(path).map_err(|e| kaq_columnar::Error::Io { path: path.clone(), error: e })?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
                    .with_row_groups(vec![g])
                    .with_batch_size(8192)
                    .build()?;
                let mut found = Found::default();
                let mut n = 0;
                for batch in reader {
                    let batch = batch?;
                    let cols = kaq_columnar::Columns::new(&batch)?;
                    for i in 0..batch.num_rows() {
                        handler.handle(&mut found, &cols.event(i)?, None);
                    }
                    n += batch.num_rows() as u64;
                }
                Ok((found, n))
            };
            *results[j].lock().expect("unpoisoned") = Some(run().map_err(|e| perr(path, e)));
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(jobs.len().max(1)) {
            s.spawn(work);
        }
        work();
    });
    let mut rows = 0;
    for r in results {
        let (found, n) = r.into_inner().expect("unpoisoned").expect("every job ran")?;
        rows += n;
        collect.add(found);
    }
    Ok(rows)
}

/// Resolves the latest stages of one chunk's findings (see [`crate::run_on_text`]).
pub fn finish_one(found: Found, all_stages: bool) -> Vec<Row> {
    let mut c = Collector::default();
    c.add(found);
    c.finish(all_stages)
}

/// Gathers chunks in input order and resolves the latest stages at the end.
#[derive(Default)]
struct Collector {
    base: u64,
    hits: Vec<Hit>,
    others: Vec<Stage>,
}

impl Collector {
    fn add(&mut self, mut f: Found) {
        for h in &mut f.hits {
            h.pos += self.base;
        }
        for o in &mut f.others {
            o.pos += self.base;
        }
        self.base += f.n;
        self.hits.append(&mut f.hits);
        self.others.append(&mut f.others);
    }

    fn finish(self, all_stages: bool) -> Vec<Row> {
        if all_stages {
            return self.hits.into_iter().map(|h| h.row).collect();
        }
        // The latest (rank, position) per auditID among hits, then among the others.
        let mut best: HashMap<&IdKey, (Latest, u64)> = HashMap::with_capacity(self.hits.len());
        for h in &self.hits {
            let e = best.entry(&h.id).or_insert((h.rank, h.pos));
            *e = (*e).max((h.rank, h.pos));
        }
        let mut superseded: std::collections::HashSet<&IdKey> = std::collections::HashSet::new();
        if !best.is_empty() {
            for o in &self.others {
                if let Some(b) = best.get(&o.id)
                    && (o.rank, o.pos) > *b
                {
                    superseded.insert(&o.id);
                }
            }
        }
        let keep: Vec<bool> = self
            .hits
            .iter()
            .map(|h| !superseded.contains(&h.id) && best.get(&h.id) == Some(&(h.rank, h.pos)))
            .collect();
        self.hits.into_iter().zip(keep).filter(|(_, k)| *k).map(|(h, _)| h.row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_id_and_stage() {
        let t = r#""requestReceivedTimestamp":"1970-01-01T00:00:01.000000Z","stageTimestamp":"1970-01-01T00:00:02.000000Z""#;
        let line = format!(r#"{{"kind":"Event","auditID":"7c1a","stage" : "ResponseComplete","verb":"get",{t}}}"#);
        assert_eq!(quick_id_stage(line.as_bytes()), Some(("7c1a", (2, 2_000_000, 1_000_000))));
        // A nested second auditID, an escape, no stage, no received time, or a truncated line:
        // decode properly.
        let q = |s: String| quick_id_stage(s.as_bytes()).map(|(id, l)| (id.to_string(), l));
        assert_eq!(q(format!(r#"{{"auditID":"a","stage":"x",{t},"requestObject":{{"auditID":"b"}}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a\u0062","stage":"x",{t}}}"#)), None);
        assert_eq!(q(format!(r#"{{"auditID":"a",{t}}}"#)), None);
        assert_eq!(q(r#"{"auditID":"a","stage":"x","stageTimestamp":"1970-01-01T00:00:02.000000Z"}"#.into()), None);
        assert_eq!(q(format!(r#"{{"auditID":"a","stage":"x",{t}"#)), None);
        assert_eq!(
            q(r#"{"auditID":"a","stage":"Panic","requestReceivedTimestamp":"1970-01-01T00:00:01Z"}"#.into()),
            Some(("a".into(), (3, i64::MIN, 1_000_000)))
        );
    }

    #[test]
    fn uuids_pack() {
        assert_eq!(IdKey::new("33dcd77f-f179-42d2-a48b-96628f3c4be3"), IdKey::Uuid(0x33dcd77ff17942d2a48b96628f3c4be3));
        assert!(matches!(IdKey::new("33DCD77F-f179-42d2-a48b-96628f3c4be3"), IdKey::Other(_)));
        assert!(matches!(IdKey::new("33dcd77f-f179-42d2-a48b-96628f3c4bez"), IdKey::Other(_)));
        assert!(matches!(IdKey::new("33dcd77f+f179-42d2-a48b-96628f3c4be3"), IdKey::Other(_)));
        assert_eq!(IdKey::new("00000000-0000-0000-0000-000000000001"), IdKey::Uuid(1));
        assert_eq!(stage_rank(Some("RequestReceived")), 0);
        assert_eq!(stage_rank(None), 2);
    }
}
