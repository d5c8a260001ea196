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
//! Each record is known by a 128-bit digest of its row: SipHash-1-3 and aHash, each under a key
//! drawn at random per process, so a log cannot be written to make two different records collide. Equal records have
//! equal `time`s, so only the segments whose time range takes in an arriving record's time (or
//! that hold rows without a time, for one without) are read for their digests, once per writer:
//! an ingest of new logs, later than what the store holds, reads none.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::LazyLock;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

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

/// The digests of the records held, loaded segment by segment as arriving records need them.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    live: Vec<Held>,
    loaded: HashMap<u64, HashSet<u128>>,
    /// Records added through this writer (in open segments, or committed since).
    added: HashSet<u128>,
    /// Segments this writer wrote: their records are in `added`, never read back.
    written: HashSet<u64>,
}

impl Dedup {
    /// The live segments now (after a commit, a compaction or a prune).
    pub fn set_live(&mut self, live: Vec<Held>) {
        self.loaded.retain(|id, _| live.iter().any(|h| h.id == *id));
        self.live = live;
    }

    /// Forgets what this writer added (after a rewrite that may have dropped records).
    pub fn forget_added(&mut self) {
        self.added.clear();
        self.written.clear();
    }

    /// A segment of new records this writer committed (its records are in `added`).
    pub fn wrote(&mut self, id: u64) {
        self.written.insert(id);
    }

    /// Which rows of `batch` are records not held yet (each then counts as held).
    pub fn keep(&mut self, batch: &RecordBatch) -> Result<Vec<bool>, Error> {
        let digests = digests(batch);
        let col = kaq_columnar::column_index("time").expect("time column");
        let times = batch.column(col).as_primitive_opt::<TimestampMicrosecondType>();
        let time = |i: usize| times.and_then(|t| t.is_valid(i).then(|| t.value(i)));
        // Load the segments any of these rows could be in: first by the batch's time range, then
        // row by row.
        let (mut lo, mut hi, mut untimed) = (i64::MAX, i64::MIN, false);
        for i in 0..batch.num_rows() {
            match time(i) {
                Some(t) => (lo, hi) = (lo.min(t), hi.max(t)),
                None => untimed = true,
            }
        }
        let mut need: Vec<usize> = Vec::new();
        for (k, h) in self.live.iter().enumerate() {
            if self.loaded.contains_key(&h.id) || self.written.contains(&h.id) {
                continue;
            }
            let meets = h.min.is_some_and(|m| m <= hi) && h.max.is_some_and(|m| lo <= m);
            if !(meets || untimed && h.untimed) {
                continue;
            }
            let overlaps = (0..batch.num_rows()).any(|i| match time(i) {
                Some(t) => h.min.is_some_and(|lo| lo <= t) && h.max.is_some_and(|hi| t <= hi),
                None => h.untimed,
            });
            if overlaps {
                need.push(k);
            }
        }
        for k in need {
            let h = self.live[k].clone();
            self.loaded.insert(h.id, segment_digests(&h.path)?);
        }
        Ok(digests.into_iter().map(|d| !self.loaded.values().any(|s| s.contains(&d)) && self.added.insert(d)).collect())
    }
}

/// Every row digest of a segment file.
fn segment_digests(path: &std::path::Path) -> Result<HashSet<u128>, Error> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).at(path)?;
    let perr = |e: parquet::errors::ParquetError| Error::Columnar(e.into());
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?.with_batch_size(8192).build().map_err(perr)?;
    let mut out = HashSet::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::Columnar(e.into()))?;
        out.extend(digests(&batch));
    }
    Ok(out)
}

/// The two keys: SipHash-1-3 (std) and aHash, each drawn at random per process.
static KEYS: LazyLock<(std::collections::hash_map::RandomState, ahash::RandomState)> =
    LazyLock::new(|| (Default::default(), ahash::RandomState::new()));

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

    /// Appends cell `i`: a tag (0 for null), then the value, strings with their lengths.
    fn encode(&self, i: usize, out: &mut Vec<u8>) {
        let str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        let a: &dyn Array = match self {
            Col::Str(a) => *a,
            Col::Time(a) => *a,
            Col::I32(a) => *a,
            Col::Bool(a) => *a,
            Col::List(a) => *a,
            Col::Map(a) => *a,
            Col::Other(a) => *a,
        };
        if a.is_null(i) {
            out.push(0);
            return;
        }
        match self {
            Col::Str(a) => {
                out.push(1);
                str(out, a.value(i));
            }
            Col::Time(a) => {
                out.push(2);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Col::I32(a) => {
                out.push(3);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Col::Bool(a) => out.extend_from_slice(&[4, u8::from(a.value(i))]),
            Col::List(a) => {
                out.push(5);
                let (start, end) = (a.value_offsets()[i] as usize, a.value_offsets()[i + 1] as usize);
                out.extend_from_slice(&((end - start) as u64).to_le_bytes());
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
            Col::Map(m) => {
                out.push(6);
                let (start, end) = (m.value_offsets()[i] as usize, m.value_offsets()[i + 1] as usize);
                out.extend_from_slice(&((end - start) as u64).to_le_bytes());
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
            Col::Other(a) => {
                // Not in kaq's schema: the value's debug form still tells values apart.
                out.push(7);
                str(out, &format!("{:?}{:?}", a.data_type(), a.slice(i, 1)));
            }
        }
    }
}

/// One 128-bit digest per row of `batch`, over every column (by name, so a file's column order
/// does not matter), nulls distinct from empty values. Each row is encoded once into a buffer and
/// hashed with both keys.
pub(crate) fn digests(batch: &RecordBatch) -> Vec<u128> {
    let mut cols: Vec<(&str, Col<'_>)> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .zip(batch.columns().iter().map(|c| Col::of(c.as_ref())))
        .collect();
    cols.sort_by_key(|(name, _)| *name);
    let mut buf = Vec::with_capacity(4096);
    (0..batch.num_rows())
        .map(|i| {
            buf.clear();
            for (name, c) in &cols {
                buf.extend_from_slice(name.as_bytes());
                buf.push(b'=');
                c.encode(i, &mut buf);
            }
            let mut a = KEYS.0.build_hasher();
            a.write(&buf);
            let b = KEYS.1.hash_one(&buf[..]);
            (u128::from(a.finish()) << 64) | u128::from(b)
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
}
