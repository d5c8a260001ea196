//! Records known by their digests: two rows are the same record when every column is equal,
//! and a 128-bit keyed digest of the whole row tells that without keeping the row. The store
//! holds each record once with them: [`SortedParquetWriter`](crate::SortedParquetWriter) leaves
//! out repeats among rows of one time ([`WriteOptions::drop_repeats`](crate::WriteOptions)), and
//! the store looks for arriving records in its committed segments by the same digests.
//!
//! The key is drawn at random per process, so a log cannot be written to make two different
//! records collide.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use siphasher::sip128::{Hasher128, SipHasher13};

/// The key of SipHash-1-3, drawn at random per process (from std's per-process random keys).
static KEY: LazyLock<(u64, u64)> = LazyLock::new(|| {
    let s = std::collections::hash_map::RandomState::new();
    (s.hash_one(0u8), s.hash_one(1u8))
});

/// A column as [`Digester`] reads it.
enum Cell<'a> {
    Str(&'a arrow_array::StringArray),
    Time(&'a arrow_array::TimestampMicrosecondArray),
    I32(&'a arrow_array::Int32Array),
    Bool(&'a arrow_array::BooleanArray),
    List(&'a arrow_array::ListArray),
    Map(&'a arrow_array::MapArray),
    Other(&'a dyn Array),
}

impl<'a> Cell<'a> {
    fn of(a: &'a dyn Array) -> Cell<'a> {
        match a.data_type() {
            DataType::Utf8 => Cell::Str(a.as_string::<i32>()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Cell::Time(a.as_primitive::<TimestampMicrosecondType>()),
            DataType::Int32 => Cell::I32(a.as_primitive::<Int32Type>()),
            DataType::Boolean => Cell::Bool(a.as_boolean()),
            DataType::List(f) if f.data_type() == &DataType::Utf8 => Cell::List(a.as_list::<i32>()),
            DataType::Map(_, _) if Self::string_map(a) => Cell::Map(a.as_map()),
            _ => Cell::Other(a),
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
        // one value, `Cell::Other`, which kaq's schema never makes).
        fn str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        // A string value that may be null: a string column's cell, a list's element, a map's
        // value (0 for null, else 1 and the string).
        fn opt_str(out: &mut Vec<u8>, a: &arrow_array::StringArray, j: usize) {
            if a.is_null(j) {
                out.push(0);
            } else {
                out.push(1);
                str(out, a.value(j));
            }
        }
        match self {
            Cell::Str(a) => opt_str(out, a, i),
            Cell::Time(a) if a.is_null(i) => out.push(0),
            Cell::Time(a) => {
                out.push(2);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Cell::I32(a) if a.is_null(i) => out.push(0),
            Cell::I32(a) => {
                out.push(3);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Cell::Bool(a) if a.is_null(i) => out.push(0),
            Cell::Bool(a) => out.extend_from_slice(&[4, u8::from(a.value(i))]),
            Cell::List(a) if a.is_null(i) => out.push(0),
            Cell::List(a) => {
                out.push(5);
                let (start, end) = (a.value_offsets()[i] as usize, a.value_offsets()[i + 1] as usize);
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                let values = a.values().as_string::<i32>();
                for j in start..end {
                    opt_str(out, values, j);
                }
            }
            Cell::Map(m) if m.is_null(i) => out.push(0),
            Cell::Map(m) => {
                out.push(6);
                let (start, end) = (m.value_offsets()[i] as usize, m.value_offsets()[i + 1] as usize);
                out.extend_from_slice(&((end - start) as u32).to_le_bytes());
                let (keys, values) = (m.keys().as_string::<i32>(), m.values().as_string::<i32>());
                for j in start..end {
                    str(out, keys.value(j));
                    opt_str(out, values, j);
                }
            }
            Cell::Other(a) if a.is_null(i) => out.push(0),
            Cell::Other(a) => {
                // Not in kaq's schema: the value's debug form still tells values apart.
                out.push(7);
                str(out, &format!("{:?}{:?}", a.data_type(), a.slice(i, 1)));
            }
        }
    }
}

/// Takes the digests of a batch's rows, one row at a time (of the rows that need one: the
/// others cost nothing). Each is 128 bits, over every column (by name, so a file's column order
/// does not matter), nulls distinct from empty values: SipHash-1-3 with a 128-bit result, keyed
/// per process, of the column names (each with its length, once per batch: the state
/// after them is where every row's hashing starts) followed by the row's cells in that order.
pub struct Digester<'a> {
    cells: Vec<Cell<'a>>,
    names: SipHasher13,
    buf: Vec<u8>,
}

impl<'a> Digester<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        let mut cols: Vec<(&str, Cell<'_>)> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .zip(batch.columns().iter().map(|c| Cell::of(c.as_ref())))
            .collect();
        cols.sort_by_key(|(name, _)| *name);
        let mut names = SipHasher13::new_with_keys(KEY.0, KEY.1);
        names.write_usize(cols.len());
        for (name, _) in &cols {
            names.write_usize(name.len());
            names.write(name.as_bytes());
        }
        Digester { cells: cols.into_iter().map(|(_, c)| c).collect(), names, buf: Vec::with_capacity(4096) }
    }

    /// The digest of row `i`.
    pub fn digest(&mut self, i: usize) -> u128 {
        self.buf.clear();
        for c in &self.cells {
            c.encode(i, &mut self.buf);
        }
        let mut h = self.names;
        h.write(&self.buf);
        h.finish128().as_u128()
    }
}

/// Every row's digest ([`Digester`]).
pub fn digests(batch: &RecordBatch) -> Vec<u128> {
    let mut d = Digester::new(batch);
    (0..batch.num_rows()).map(|i| d.digest(i)).collect()
}

/// A key that [`KeySet`] holds: random-looking bits (a keyed digest, a hash).
pub trait Key: Ord + Copy {
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
pub struct KeySet<T> {
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

    /// Whether `k` is in it.
    pub fn contains(&self, k: T) -> bool {
        self.buckets.get(k.top()).is_some_and(|b| b.binary_search(&k).is_ok())
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties it, giving its memory back.
    pub fn clear(&mut self) {
        *self = KeySet::default();
    }
}

/// Groups of rows with one time up to this many keep their digests in a sorted `Vec`; larger
/// ones (many records of one time, or without one: a hostile or a coarse log) in a [`KeySet`].
const SMALL_GROUP: usize = 1024;

/// The digests of a group's rows.
enum GroupSet {
    Small(Vec<u128>),
    Large(KeySet<u128>),
}

impl GroupSet {
    /// Adds `d`; false when it was there.
    fn insert(&mut self, d: u128) -> bool {
        match self {
            GroupSet::Small(v) => match v.binary_search(&d) {
                Ok(_) => false,
                Err(i) if v.len() < SMALL_GROUP => {
                    v.insert(i, d);
                    true
                }
                Err(_) => {
                    let mut set = KeySet::default();
                    for d in v.drain(..) {
                        set.insert(d);
                    }
                    set.insert(d);
                    *self = GroupSet::Large(set);
                    true
                }
            },
            GroupSet::Large(set) => set.insert(d),
        }
    }

    fn clear(&mut self) {
        match self {
            GroupSet::Small(v) => v.clear(),
            GroupSet::Large(_) => *self = GroupSet::Small(Vec::new()),
        }
    }
}

/// Rows left out because an equal row came before them ([`WriteOptions::drop_repeats`](crate::WriteOptions)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repeats {
    pub rows: u64,
    /// Of them, rows without a time.
    pub untimed: u64,
}

/// Leaves out of a stream of rows sorted by a key (their time) every row equal in every column to
/// one before it. Equal rows have equal keys, so in a sorted stream they are in one group of
/// equal keys: only the rows of groups of two or more are digested and compared, the others cost
/// one comparison of keys. A group may continue from one batch to the next.
pub(crate) struct RepeatFilter {
    /// The key of the group the last row seen is in.
    key: Option<i64>,
    /// The group's one row so far, not digested (a slice of one row).
    first: Option<RecordBatch>,
    /// The digests of the group's rows, once it has two.
    seen: GroupSet,
    pub(crate) left_out: Repeats,
}

impl Default for RepeatFilter {
    fn default() -> Self {
        RepeatFilter { key: None, first: None, seen: GroupSet::Small(Vec::new()), left_out: Repeats::default() }
    }
}

impl RepeatFilter {
    /// Starts a new stream (the rows counted as left out stay counted).
    pub(crate) fn restart(&mut self) {
        *self = RepeatFilter { left_out: self.left_out, ..RepeatFilter::default() };
    }

    /// The rows of `batch` that are not repeats (the same batch when all are), given the rows'
    /// keys, which continue the stream: no key is smaller than the last one seen.
    pub(crate) fn filter(&mut self, batch: &RecordBatch, keys: &[i64]) -> Result<RecordBatch, crate::Error> {
        let n = batch.num_rows();
        debug_assert_eq!(keys.len(), n, "a key a row");
        let mut drop: Vec<usize> = Vec::new();
        let mut digester: Option<Digester<'_>> = None;
        let mut i = 0;
        while i < n {
            let k = keys[i];
            let mut j = i + 1;
            while j < n && keys[j] == k {
                j += 1;
            }
            if self.key != Some(k) {
                debug_assert!(self.key.is_none_or(|last| last < k), "keys in order");
                self.key = Some(k);
                self.first = None;
                self.seen.clear();
                if j - i == 1 {
                    // One row so far: digested only if another of its key follows.
                    if j == n {
                        self.first = Some(batch.slice(i, 1));
                    }
                    i = j;
                    continue;
                }
            }
            // Rows i..j are in a group of two or more rows.
            if let Some(first) = self.first.take() {
                self.seen.insert(Digester::new(&first).digest(0));
            }
            let d = digester.get_or_insert_with(|| Digester::new(batch));
            for r in i..j {
                if !self.seen.insert(d.digest(r)) {
                    drop.push(r);
                }
            }
            i = j;
        }
        if drop.is_empty() {
            return Ok(batch.clone());
        }
        let times = crate::write::times(batch);
        self.left_out.rows += drop.len() as u64;
        self.left_out.untimed += drop.iter().filter(|&&r| times.is_null(r)).count() as u64;
        let mut keep = vec![true; n];
        for r in drop {
            keep[r] = false;
        }
        let mask = arrow_array::BooleanArray::from(keep);
        Ok(arrow_select::filter::filter_record_batch(batch, &mask)?)
    }
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
        let mut b = crate::EventBatchBuilder::with_capacity(8);
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
        assert!(!ids.contains(7) && ids.is_empty());
    }
}
