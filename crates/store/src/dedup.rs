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
//! Each record is known by a 128-bit digest of its row: SipHash-1-3 with a 128-bit result, under a
//! key drawn at random per process, so a log cannot be written to make two different records
//! collide.
//! Equal records have equal `time`s, so only the row groups whose time range (their Parquet
//! statistics) takes in an arriving record's time, or that hold rows without a time for one
//! without, are read for their digests: an ingest of new logs, later than what the store holds,
//! reads none.
//!
//! Memory stays flat in what is ingested: the digests of an open segment's own records are held
//! in a [`KeySet`] (about 18 bytes a record, grown a little at a time), and dropped when it is
//! committed: from then on it is a segment like the others, read a row group at a time when
//! records of its times arrive. Row groups read are kept while there is room
//! ([`LOADED_DIGESTS`]), the least recently needed let go first, read again when needed.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::file::statistics::Statistics;
use siphasher::sip128::Hasher128;

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

    /// Which rows of `batch` are records not held yet, neither in the live segments nor in `own`
    /// (the open segment's records); each kept row is added to `own`. `digests` are the batch's
    /// ([`digests`]).
    pub fn keep(
        &mut self,
        batch: &RecordBatch,
        digests: Vec<u128>,
        own: &mut KeySet<u128>,
    ) -> Result<Vec<bool>, Error> {
        assert_eq!(digests.len(), batch.num_rows(), "a digest a row");
        let col = kaq_columnar::column_index("time").expect("time column");
        let times = batch.column(col).as_primitive_opt::<TimestampMicrosecondType>();
        let time = |i: usize| times.and_then(|t| t.is_valid(i).then(|| t.value(i)));
        let mut sorted: Vec<i64> = (0..batch.num_rows()).filter_map(time).collect();
        sorted.sort_unstable();
        let untimed = sorted.len() < batch.num_rows();
        // Whether a row of the batch may be in a segment or row group of this range.
        let meets = |min: i64, max: i64, may_untimed: bool| {
            let i = sorted.partition_point(|&t| t < min);
            (i < sorted.len() && sorted[i] <= max) || (untimed && may_untimed)
        };
        self.batches += 1;
        let now = self.batches;
        // The row groups any of these rows could be in, loaded.
        let mut need: Vec<((u64, usize), Group)> = Vec::new();
        for k in 0..self.live.len() {
            let h = &self.live[k];
            if !meets(h.min.unwrap_or(i64::MAX), h.max.unwrap_or(i64::MIN), h.untimed) {
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
                if !meets(group.min, group.max, group.untimed) {
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
        let keep = digests
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let t = time(i);
                let held = need.iter().any(|(key, g)| g.takes(t) && self.loaded[key].digests.binary_search(&d).is_ok());
                !held && own.insert(d)
            })
            .collect();
        self.evict(now);
        Ok(keep)
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

/// A key that [`KeySet`] holds: random-looking bits (a keyed digest, a hash).
pub(crate) trait Key: Ord + Copy {
    /// Its top 16 bits.
    fn top(self) -> usize;
}

impl Key for u128 {
    fn top(self) -> usize {
        (self >> 112) as usize
    }
}

impl Key for u64 {
    fn top(self) -> usize {
        (self >> 48) as usize
    }
}

/// A set of random-looking keys in 65,536 sorted buckets, by their top 16 bits: about 1.15 times
/// the keys' own size, grown a bucket at a time. (A `HashSet` takes 1.1 to 2.3 times that, and
/// grows by doubling in one step: for a moment, three times the keys.) Lookups are a binary
/// search in a bucket of about `len / 65536` keys; inserts move half a bucket.
pub(crate) struct KeySet<T> {
    buckets: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for KeySet<T> {
    fn default() -> Self {
        KeySet { buckets: Vec::new(), len: 0 }
    }
}

impl<T: Key> KeySet<T> {
    /// Adds `k`; false when it was there.
    pub fn insert(&mut self, k: T) -> bool {
        if self.buckets.is_empty() {
            self.buckets = (0..1 << 16).map(|_| Vec::new()).collect();
        }
        let b = &mut self.buckets[k.top()];
        match b.binary_search(&k) {
            Ok(_) => false,
            Err(i) => {
                if b.len() == b.capacity() {
                    // A quarter more at a time: little room unused.
                    b.reserve_exact(b.len() / 4 + 4);
                }
                b.insert(i, k);
                self.len += 1;
                true
            }
        }
    }

    #[cfg(test)]
    pub fn contains(&self, k: T) -> bool {
        self.buckets.get(k.top()).is_some_and(|b| b.binary_search(&k).is_ok())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Empties it, giving its memory back.
    pub fn clear(&mut self) {
        *self = KeySet::default();
    }
}

/// The key of SipHash-1-3, drawn at random per process (from std's per-process random keys).
static KEY: LazyLock<(u64, u64)> = LazyLock::new(|| {
    let s = std::collections::hash_map::RandomState::new();
    (s.hash_one(0u8), s.hash_one(1u8))
});

/// A column as [`digests`] reads it.
enum Col<'a> {
    Str(&'a arrow_array::StringArray),
    Time(&'a arrow_array::TimestampMicrosecondArray),
    I32(&'a arrow_array::Int32Array),
    Bool(&'a arrow_array::BooleanArray),
    List(&'a arrow_array::ListArray),
    Map(&'a arrow_array::MapArray),
    Other(&'a dyn Array),
}

impl<'a> Col<'a> {
    fn of(a: &'a dyn Array) -> Col<'a> {
        match a.data_type() {
            DataType::Utf8 => Col::Str(a.as_string::<i32>()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Col::Time(a.as_primitive::<TimestampMicrosecondType>()),
            DataType::Int32 => Col::I32(a.as_primitive::<Int32Type>()),
            DataType::Boolean => Col::Bool(a.as_boolean()),
            DataType::List(f) if f.data_type() == &DataType::Utf8 => Col::List(a.as_list::<i32>()),
            DataType::Map(_, _) if Self::string_map(a) => Col::Map(a.as_map()),
            _ => Col::Other(a),
        }
    }

    fn string_map(a: &dyn Array) -> bool {
        let m = a.as_map();
        m.keys().data_type() == &DataType::Utf8 && m.values().data_type() == &DataType::Utf8
    }

    /// Appends cell `i`: a tag (0 for null), then the value, strings and lists with their lengths,
    /// so that a row's cells, one after the other, read back one way only.
    fn encode(&self, i: usize, out: &mut Vec<u8>) {
        // Arrow's offsets are i32: every length of a column fits in a u32 (and a debug form of
        // one value, `Col::Other`, which kaq's schema never makes).
        fn str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        match self {
            Col::Str(a) if a.is_null(i) => out.push(0),
            Col::Str(a) => {
                out.push(1);
                str(out, a.value(i));
            }
            Col::Time(a) if a.is_null(i) => out.push(0),
            Col::Time(a) => {
                out.push(2);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Col::I32(a) if a.is_null(i) => out.push(0),
            Col::I32(a) => {
                out.push(3);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Col::Bool(a) if a.is_null(i) => out.push(0),
            Col::Bool(a) => out.extend_from_slice(&[4, u8::from(a.value(i))]),
            Col::List(a) if a.is_null(i) => out.push(0),
            Col::List(a) => {
                out.push(5);
                let (start, end) = (a.value_offsets()[i] as usize, a.value_offsets()[i + 1] as usize);
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                let values = a.values().as_string::<i32>();
                for j in start..end {
                    if values.is_null(j) {
                        out.push(0);
                    } else {
                        out.push(1);
                        str(out, values.value(j));
                    }
                }
            }
            Col::Map(m) if m.is_null(i) => out.push(0),
            Col::Map(m) => {
                out.push(6);
                let (start, end) = (m.value_offsets()[i] as usize, m.value_offsets()[i + 1] as usize);
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                let (keys, values) = (m.keys().as_string::<i32>(), m.values().as_string::<i32>());
                for j in start..end {
                    str(out, keys.value(j));
                    if values.is_null(j) {
                        out.push(0);
                    } else {
                        out.push(1);
                        str(out, values.value(j));
                    }
                }
            }
            Col::Other(a) if a.is_null(i) => out.push(0),
            Col::Other(a) => {
                // Not in kaq's schema: the value's debug form still tells values apart.
                out.push(7);
                str(out, &format!("{:?}{:?}", a.data_type(), a.slice(i, 1)));
            }
        }
    }
}

/// One 128-bit digest per row of `batch`, over every column (by name, so a file's column order
/// does not matter), nulls distinct from empty values: SipHash-1-3 with a 128-bit result, keyed
/// per process ([`KEY`]), of the column names (each with its length, once per batch: the state
/// after them is where every row's hashing starts) followed by the row's cells in that order.
pub(crate) fn digests(batch: &RecordBatch) -> Vec<u128> {
    let mut cols: Vec<(&str, Col<'_>)> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .zip(batch.columns().iter().map(|c| Col::of(c.as_ref())))
        .collect();
    cols.sort_by_key(|(name, _)| *name);
    let mut names = siphasher::sip128::SipHasher13::new_with_keys(KEY.0, KEY.1);
    names.write_usize(cols.len());
    for (name, _) in &cols {
        names.write_usize(name.len());
        names.write(name.as_bytes());
    }
    let mut buf = Vec::with_capacity(4096);
    (0..batch.num_rows())
        .map(|i| {
            buf.clear();
            for (_, c) in &cols {
                c.encode(i, &mut buf);
            }
            let mut h = names;
            h.write(&buf);
            h.finish128().as_u128()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rows_equal_digests_and_any_difference_tells() {
        let line = |verb: &str, extra: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","stage":"ResponseComplete","verb":"{verb}","user":{{"username":"u","groups":["g"]}},"annotations":{{"k":"v"}}{extra},"requestReceivedTimestamp":"2026-11-20T05:00:00Z"}}"#
            )
        };
        let mut b = kaq_columnar::EventBatchBuilder::with_capacity(8);
        for l in [line("get", ""), line("get", ""), line("list", ""), line("get", r#","sourceIPs":["1.2.3.4"]"#)] {
            kaq_schema::decode_records_with_text(&l, &Default::default(), &mut |r| b.append(&r.unwrap().0));
        }
        let d = digests(&b.finish());
        assert_eq!(d[0], d[1]);
        assert_ne!(d[0], d[2]);
        assert_ne!(d[0], d[3]);
    }

    /// A row's digest does not depend on the order of the batch's columns, and does on their
    /// names, on where one cell ends and the next begins, and on null against empty.
    #[test]
    fn digests_follow_names_not_positions() {
        use arrow_array::{ArrayRef, StringArray};
        use arrow_schema::{Field, Schema};
        let batch = |cols: &[(&str, &[Option<&str>])]| {
            let schema =
                Schema::new(cols.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>());
            let arrays: Vec<ArrayRef> =
                cols.iter().map(|(_, v)| std::sync::Arc::new(StringArray::from(v.to_vec())) as ArrayRef).collect();
            RecordBatch::try_new(std::sync::Arc::new(schema), arrays).unwrap()
        };
        let a: &[Option<&str>] = &[Some("ab"), Some("a"), None, Some("")];
        let b: &[Option<&str>] = &[Some("c"), Some("bc"), Some(""), None];
        let ab = digests(&batch(&[("a", a), ("b", b)]));
        assert_eq!(ab, digests(&batch(&[("b", b), ("a", a)])), "column order");
        assert_ne!(ab[0], ab[1], "\"ab\",\"c\" against \"a\",\"bc\"");
        assert_ne!(ab[2], ab[3], "null,\"\" against \"\",null");
        let renamed = digests(&batch(&[("a", a), ("c", b)]));
        assert!(ab.iter().zip(&renamed).all(|(x, y)| x != y), "names");
        // Where a string ends is its length, not the next cell's tag.
        let c = digests(&batch(&[("a", &[Some("a\u{1}b"), Some("a")]), ("b", &[Some("c"), Some("b\u{1}c")])]));
        assert_ne!(c[0], c[1]);
        // The names' own boundaries: ("ab", "c") is not ("a", "bc").
        let x = digests(&batch(&[("ab", &[Some("v")]), ("c", &[Some("w")])]));
        let y = digests(&batch(&[("a", &[Some("v")]), ("bc", &[Some("w")])]));
        assert_ne!(x, y);
    }

    /// Lists and maps: elements' and entries' boundaries, null elements against empty ones, an
    /// empty list against none.
    #[test]
    fn digests_tell_lists_and_maps_apart() {
        use arrow_array::builder::{ListBuilder, MapBuilder, StringBuilder};
        use arrow_array::{ArrayRef, RecordBatch};
        let mut l = ListBuilder::new(StringBuilder::new());
        for row in [Some(vec![Some("a"), Some("b")]), Some(vec![Some("ab")]), Some(vec![None]), Some(vec![Some("")])] {
            l.append_option(row);
        }
        l.append(true); // []
        l.append(false); // null
        let lists: ArrayRef = std::sync::Arc::new(l.finish());
        let d = digests(&RecordBatch::try_from_iter([("l", lists)]).unwrap());
        for i in 0..d.len() {
            for j in 0..i {
                assert_ne!(d[i], d[j], "list rows {j} and {i}");
            }
        }
        let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for entries in [&[("a", Some("bc"))][..], &[("ab", Some("c"))], &[("a", None)], &[("a", Some(""))], &[]] {
            for (k, v) in entries {
                m.keys().append_value(k);
                m.values().append_option(*v);
            }
            m.append(true).unwrap();
        }
        m.append(false).unwrap();
        let maps: ArrayRef = std::sync::Arc::new(m.finish());
        let d = digests(&RecordBatch::try_from_iter([("m", maps)]).unwrap());
        for i in 0..d.len() {
            for j in 0..i {
                assert_ne!(d[i], d[j], "map rows {j} and {i}");
            }
        }
    }

    /// The set answers as a `HashSet` does, for keys spread over the buckets and keys crowded
    /// into one.
    #[test]
    fn key_set_is_a_set() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut set = KeySet::<u128>::default();
        let mut reference = std::collections::HashSet::new();
        for i in 0..50_000u64 {
            let r = next();
            // Every third key in one bucket, and some keys again.
            let k = if i % 3 == 0 { u128::from(r % 1000) } else { (u128::from(r) << 64) | u128::from(next()) };
            assert_eq!(set.insert(k), reference.insert(k), "insert {k}");
        }
        assert_eq!(set.len(), reference.len());
        for k in &reference {
            assert!(set.contains(*k));
        }
        assert!(!set.contains(u128::MAX));
        let mut ids = KeySet::<u64>::default();
        assert!(ids.insert(7) && ids.insert(u64::MAX) && !ids.insert(7) && ids.contains(u64::MAX));
        ids.clear();
        assert!(!ids.contains(7) && ids.len() == 0);
    }

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
        let mut own = KeySet::default();
        // One timed record held: one row group read.
        assert_eq!(
            {
                let b = batch(&mut std::iter::once(11));
                d.keep(&b, digests(&b), &mut own)
            }
            .unwrap(),
            [false]
        );
        assert_eq!(d.loaded.len(), 1);
        assert_eq!(d.footers[&1].groups.len(), 13);
        // Every record again, in small batches from the last; and ten new ones.
        let mut ids: Vec<u32> = (0..200).rev().collect();
        ids.extend(1000..1010);
        for chunk in ids.chunks(7) {
            let b = batch(&mut chunk.iter().copied());
            let keep = d.keep(&b, digests(&b), &mut own).unwrap();
            assert_eq!(keep, chunk.iter().map(|i| *i >= 1000).collect::<Vec<_>>(), "{chunk:?}");
            assert!(d.loaded.values().map(|l| l.digests.len()).sum::<usize>() <= 20 + 16 * 7);
        }
        assert_eq!(own.len(), 10);
    }
}
