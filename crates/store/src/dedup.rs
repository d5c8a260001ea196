//! Records already held: an ingest adds a record only when the store does not hold an equal one,
//! however it arrives (the same file piped to `ingest -` twice, a Parquet converted from a log
//! already ingested, a retried batch). Sources are also remembered by their bytes
//! ([`crate::inputs`]); this is what makes a record held once whatever its source.
//!
//! Two records are equal when every column of kaq's schema is (the whole record as stored: its
//! request identity, stage and timestamps, and all else). Records that differ in anything are both
//! kept — the latest-stage rule decides between them at query time — so nothing a log holds is
//! ever hidden by dropping a look-alike.
//!
//! Each record is known by a 128-bit digest of its row ([`kaq_columnar::digest`]): SipHash-1-3
//! with a 128-bit result, under a key drawn at random per process, so a log cannot be written to
//! make two different records collide. Equal records have equal `time`s, which decides where
//! they are looked for:
//!
//! - **In the committed segments**, only the row groups whose time range (their Parquet
//!   statistics) takes in an arriving record's time, or that hold rows without a time for one
//!   without, are read for their digests, and only the records of such times are digested: an
//!   ingest of new logs, later than what the store holds, reads and digests none.
//! - **Among the open segment's own records**, its writer leaves out repeats
//!   ([`kaq_columnar::WriteOptions::drop_repeats`]): sorted by time, equal records meet, and only
//!   records that share their time with another are digested. A repeat of a record already
//!   written either has the last time written (it joins that group) or is a late row, and meets
//!   its equal in the merge that ends the segment.
//!
//! Memory stays flat in what is ingested: row groups read are kept while there is room
//! ([`LOADED_DIGESTS`]), the least recently needed let go first, read again when needed; the
//! writer keeps the digests of one group of equal times at a time (16 bytes a row of it: the
//! rows without a time are one group, as large as a segment's such rows).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use kaq_columnar::digest::{Digester, digests};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::file::statistics::Statistics;

use crate::{At, Error};

/// A live segment, as far as deduplication needs it.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub id: u64,
    pub path: PathBuf,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Whether it may hold rows without a time.
    pub untimed: bool,
}

impl Held {
    /// Its time range, as a row group's (none when it has no time: an empty range).
    fn range(&self) -> Group {
        Group { min: self.min.unwrap_or(i64::MAX), max: self.max.unwrap_or(i64::MIN), untimed: self.untimed }
    }
}

/// The digests of loaded row groups kept at most (16 MiB), beyond those the batch at hand needs.
const LOADED_DIGESTS: usize = 1 << 20;

/// A row group of a live segment: its time range, from the footer.
#[derive(Debug, Clone, Copy)]
struct Group {
    min: i64,
    max: i64,
    /// It may hold rows without a time.
    untimed: bool,
}

impl Group {
    /// Whether a row of time `t` (`None`: without one) may be in it.
    fn takes(&self, t: Option<i64>) -> bool {
        match t {
            Some(t) => self.min <= t && t <= self.max,
            None => self.untimed,
        }
    }
}

/// The time ranges of the live segments, for the decode threads to tell which rows may be held
/// ([`Ranges::meet`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ranges(Vec<Group>);

impl Ranges {
    /// Whether a row of `batch` may be in one of the segments: one's range meets the batch's
    /// (from its earliest time to its latest), or it may hold rows without a time and the batch
    /// has one. (A batch is read from lines next to each other: its range is short, and a
    /// segment's between two of its rows is rare; its rows are then digested for nothing.)
    pub fn meet(&self, batch: &RecordBatch) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let col = kaq_columnar::column_index("time").expect("time column");
        let Some(t) = batch.column(col).as_primitive_opt::<TimestampMicrosecondType>() else { return true };
        let (min, max) = t.iter().flatten().fold((i64::MAX, i64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let untimed = t.null_count() > 0;
        self.0.iter().any(|g| (g.min <= max && min <= g.max) || (untimed && g.untimed))
    }
}

/// A segment's footer, read once it is needed.
struct Footer {
    meta: ArrowReaderMetadata,
    groups: Vec<Group>,
}

/// A row group's digests, sorted.
struct Loaded {
    digests: Vec<u128>,
    /// The batch that last needed it.
    used: u64,
}

/// The digests of the records held, loaded row group by row group as arriving records need them.
#[derive(Default)]
pub(crate) struct Dedup {
    live: Vec<Held>,
    footers: HashMap<u64, Arc<Footer>>,
    loaded: HashMap<(u64, usize), Loaded>,
    /// Batches seen (the clock of `Loaded::used`).
    batches: u64,
    /// Digests of loaded row groups kept at most ([`LOADED_DIGESTS`]; less in tests).
    cap: Option<usize>,
}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedup").field("live", &self.live.len()).field("loaded", &self.loaded.len()).finish()
    }
}

impl Dedup {
    /// The live segments now (after a commit, a compaction or a prune).
    pub fn set_live(&mut self, live: Vec<Held>) {
        self.loaded.retain(|(id, _), _| live.iter().any(|h| h.id == *id));
        self.footers.retain(|id, _| live.iter().any(|h| h.id == *id));
        self.live = live;
    }

    /// Forgets what was read (after a rewrite).
    pub fn forget(&mut self) {
        self.loaded.clear();
        self.footers.clear();
    }

    /// The live segments' time ranges.
    pub fn ranges(&self) -> Ranges {
        Ranges(self.live.iter().map(Held::range).collect())
    }

    /// Which rows of `batch` are records the live segments do not hold: `None` when all are
    /// new because no row's time falls in a row group that could hold it (an ingest of logs
    /// newer than the store's reads and digests nothing). `given` are the batch's digests
    /// ([`digests`]) when they were taken already; else the rows that need one are digested
    /// here. Repeats among the new records themselves are the writer's to leave out
    /// ([`kaq_columnar::WriteOptions::drop_repeats`]).
    pub fn keep(&mut self, batch: &RecordBatch, given: Option<&[u128]>) -> Result<Option<Vec<bool>>, Error> {
        if let Some(d) = given {
            assert_eq!(d.len(), batch.num_rows(), "a digest a row");
        }
        if self.live.is_empty() {
            return Ok(None);
        }
        let col = kaq_columnar::column_index("time").expect("time column");
        let times = batch.column(col).as_primitive_opt::<TimestampMicrosecondType>();
        let time = |i: usize| times.and_then(|t| t.is_valid(i).then(|| t.value(i)));
        let mut sorted: Vec<i64> = (0..batch.num_rows()).filter_map(time).collect();
        sorted.sort_unstable();
        let untimed = sorted.len() < batch.num_rows();
        // Whether a row of the batch may be in a segment or row group of this range.
        let meets = |g: &Group| {
            let i = sorted.partition_point(|&t| t < g.min);
            (i < sorted.len() && sorted[i] <= g.max) || (untimed && g.untimed)
        };
        self.batches += 1;
        let now = self.batches;
        // The row groups any of these rows could be in, loaded.
        let mut need: Vec<((u64, usize), Group)> = Vec::new();
        for k in 0..self.live.len() {
            let h = &self.live[k];
            if !meets(&h.range()) {
                continue;
            }
            let footer = match self.footers.get(&h.id) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(footer(&h.path)?);
                    self.footers.insert(h.id, f.clone());
                    f
                }
            };
            for (g, group) in footer.groups.iter().enumerate() {
                if !meets(group) {
                    continue;
                }
                let key = (h.id, g);
                match self.loaded.get_mut(&key) {
                    Some(l) => l.used = now,
                    None => {
                        let digests = group_digests(&h.path, &footer.meta, g)?;
                        self.loaded.insert(key, Loaded { digests, used: now });
                    }
                }
                need.push((key, *group));
            }
        }
        if need.is_empty() {
            return Ok(None);
        }
        let mut digester = None;
        let keep = (0..batch.num_rows())
            .map(|i| {
                let t = time(i);
                let mut groups = need.iter().filter(|(_, g)| g.takes(t)).peekable();
                if groups.peek().is_none() {
                    return true;
                }
                let d = match given {
                    Some(d) => d[i],
                    None => digester.get_or_insert_with(|| Digester::new(batch)).digest(i),
                };
                !groups.any(|(key, _)| self.loaded[key].digests.binary_search(&d).is_ok())
            })
            .collect();
        self.evict(now);
        Ok(Some(keep))
    }

    /// Lets go of the least recently needed row groups beyond [`LOADED_DIGESTS`] (never those
    /// the batch `now` needed).
    fn evict(&mut self, now: u64) {
        let cap = self.cap.unwrap_or(LOADED_DIGESTS);
        let mut total: usize = self.loaded.values().map(|l| l.digests.len()).sum();
        if total <= cap {
            return;
        }
        let mut old: Vec<((u64, usize), u64, usize)> =
            self.loaded.iter().filter(|(_, l)| l.used < now).map(|(k, l)| (*k, l.used, l.digests.len())).collect();
        old.sort_by_key(|o| o.1);
        for (key, _, n) in old {
            if total <= cap {
                break;
            }
            self.loaded.remove(&key);
            total -= n;
        }
    }
}

/// A segment's footer and its row groups' time ranges (a row group without statistics of `time`
/// may hold any time, and rows without one).
fn footer(path: &std::path::Path) -> Result<Footer, Error> {
    let file = std::fs::File::open(path).at(path)?;
    let meta = ArrowReaderMetadata::load(&file, Default::default()).map_err(|e| Error::Columnar(e.into()))?;
    let md = meta.metadata();
    let col = md.file_metadata().schema_descr().columns().iter().position(|c| c.path().string() == "time");
    let groups = md
        .row_groups()
        .iter()
        .map(|rg| {
            let stats = col.and_then(|c| rg.column(c).statistics());
            let range = match stats {
                Some(Statistics::Int64(v)) => v.min_opt().zip(v.max_opt()).map(|(a, b)| (*a, *b)),
                _ => None,
            };
            let nulls = stats.and_then(|s| s.null_count_opt());
            match range {
                Some((min, max)) => Group { min, max, untimed: nulls != Some(0) },
                // No time in it at all (only nulls), or no statistics: anything.
                None if nulls.is_some_and(|n| n == rg.num_rows() as u64) => {
                    Group { min: i64::MAX, max: i64::MIN, untimed: true }
                }
                None => Group { min: i64::MIN, max: i64::MAX, untimed: true },
            }
        })
        .collect();
    Ok(Footer { meta, groups })
}

/// Every row digest of a row group of a segment file, sorted.
fn group_digests(path: &std::path::Path, meta: &ArrowReaderMetadata, group: usize) -> Result<Vec<u128>, Error> {
    let file = std::fs::File::open(path).at(path)?;
    let perr = |e: parquet::errors::ParquetError| Error::Columnar(e.into());
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
        .with_row_groups(vec![group])
        .with_batch_size(8192)
        .build()
        .map_err(perr)?;
    let mut out = Vec::with_capacity(meta.metadata().row_group(group).num_rows().max(0) as usize);
    for batch in reader {
        let batch = batch.map_err(|e| Error::Columnar(e.into()))?;
        out.extend(digests(&batch));
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records already in segments committed earlier in the same ingest, or by another, are
    /// found by reading the row groups of their times, even when few digests may stay loaded
    /// (row groups let go and read again); distinct records are all kept.
    #[test]
    fn held_records_are_found_in_committed_segments_with_little_room() {
        let line = |i: u32, verb: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"id-{i}","stage":"ResponseComplete","verb":"{verb}","user":{{"username":"u"}},"requestReceivedTimestamp":"2026-11-20T05:{:02}:{:02}.000000Z"}}"#,
                i / 60,
                i % 60
            ) + "\n"
        };
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<std::path::PathBuf> = (0..4)
            .map(|f| {
                let p = dir.path().join(format!("{f}.log"));
                let text: String = (f * 100..f * 100 + 100).map(|i| line(i, "get")).collect();
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect();
        // A fifth file: every record of the first again, 20 new (a verb apart), one of them
        // twice.
        let fifth = dir.path().join("4.log");
        let mut text: String = (0..100).rev().map(|i| line(i, "get")).collect();
        text.extend((0..20).map(|i| line(i * 5, "list")));
        text.push_str(&line(5, "list"));
        std::fs::write(&fifth, text).unwrap();
        let mut store = crate::Store::create(dir.path().join("s")).unwrap();
        store.dedup.lock().unwrap().cap = Some(30);
        let mut opts = crate::IngestOptions { segment_events: 40, ..Default::default() };
        // Small chunks: many batches, so that row groups are let go and read again.
        opts.read.chunk_bytes = 1024;
        let mut inputs = files.clone();
        inputs.push(fifth);
        let r = store.ingest_paths(&inputs, &opts).unwrap();
        assert_eq!((r.counts.events, r.duplicates, r.segments), (521, 101, 5));
        assert_eq!(store.manifest().rows(), 420);
        // All again, through another writer, as one stream with the records of all five.
        let all: String = inputs.iter().rev().map(|p| std::fs::read_to_string(p).unwrap()).collect();
        drop(store);
        let mut store = crate::Store::open_writer(dir.path().join("s")).unwrap();
        store.dedup.lock().unwrap().cap = Some(30);
        let r = store.ingest_reader("-", all.as_bytes(), &opts).unwrap();
        assert_eq!((r.counts.events, r.duplicates), (521, 521));
        assert_eq!(store.manifest().rows(), 420);
    }

    /// A segment of many row groups: an arriving record reads only the row groups of its time
    /// (or those with rows without a time, for one without), and finds its equal there.
    #[test]
    fn only_the_row_groups_of_a_records_time_are_read() {
        let line = |i: u32, timed: bool| {
            let t = if timed {
                format!(r#","requestReceivedTimestamp":"2026-11-20T05:{:02}:{:02}.000000Z""#, i / 60, i % 60)
            } else {
                String::new()
            };
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"id-{i}","stage":"ResponseComplete","verb":"get"{t}}}"#
            )
        };
        let batch = |ids: &mut dyn Iterator<Item = u32>| {
            let mut b = kaq_columnar::EventBatchBuilder::with_capacity(8);
            for i in ids {
                let l = line(i, i % 10 != 0);
                kaq_schema::decode_records_with_text(&l, &Default::default(), &mut |r| b.append(&r.unwrap().0));
            }
            b.finish()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.parquet");
        let opts = kaq_columnar::WriteOptions { row_group_rows: 16, run_rows: 16, ..Default::default() };
        let mut w = kaq_columnar::SortedParquetWriter::create(&path, opts).unwrap();
        w.write(batch(&mut (0..200))).unwrap();
        w.finish().unwrap();
        let mut d = Dedup { cap: Some(20), ..Dedup::default() };
        d.set_live(vec![Held { id: 1, path: path.clone(), min: Some(0), max: Some(i64::MAX), untimed: true }]);
        // One timed record held: one row group read.
        assert_eq!(
            {
                let b = batch(&mut std::iter::once(11));
                d.keep(&b, None)
            }
            .unwrap(),
            Some(vec![false])
        );
        assert_eq!(d.loaded.len(), 1);
        assert_eq!(d.footers[&1].groups.len(), 13);
        // Every record again, in small batches from the last, digested here or given; and ten
        // new ones.
        let mut ids: Vec<u32> = (0..200).rev().collect();
        ids.extend(1000..1010);
        for (n, chunk) in ids.chunks(7).enumerate() {
            let b = batch(&mut chunk.iter().copied());
            let given = (n % 2 == 0).then(|| digests(&b));
            let keep = d.keep(&b, given.as_deref()).unwrap().unwrap_or_else(|| vec![true; chunk.len()]);
            assert_eq!(keep, chunk.iter().map(|i| *i >= 1000).collect::<Vec<_>>(), "{chunk:?}");
            assert!(d.loaded.values().map(|l| l.digests.len()).sum::<usize>() <= 20 + 16 * 7);
        }
        // Records later than every row group, all with a time: nothing to read or digest.
        let loaded = d.loaded.len();
        let later = batch(&mut (2001..2010));
        assert_eq!(d.keep(&later, None).unwrap(), None);
        assert_eq!(d.loaded.len(), loaded);
    }
}
