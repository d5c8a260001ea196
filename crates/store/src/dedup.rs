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
//! Each record is known by a 128-bit digest of its row (two SipHash keys drawn at random per
//! process: a log cannot be written to make two different records collide). Equal records have
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
    }

    /// Which rows of `batch` are records not held yet (each then counts as held).
    pub fn keep(&mut self, batch: &RecordBatch) -> Result<Vec<bool>, Error> {
        let digests = digests(batch);
        let col = kaq_columnar::column_index("time").expect("time column");
        let times = batch.column(col).as_primitive_opt::<TimestampMicrosecondType>();
        let time = |i: usize| times.and_then(|t| t.is_valid(i).then(|| t.value(i)));
        // Load the segments any of these rows could be in.
        let mut need: Vec<usize> = Vec::new();
        for (k, h) in self.live.iter().enumerate() {
            if self.loaded.contains_key(&h.id) {
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

static KEYS: LazyLock<(std::collections::hash_map::RandomState, std::collections::hash_map::RandomState)> =
    LazyLock::new(|| (Default::default(), Default::default()));

/// One 128-bit digest per row of `batch`, over every column (by name, so a file's column order
/// does not matter), nulls distinct from empty values.
pub(crate) fn digests(batch: &RecordBatch) -> Vec<u128> {
    let n = batch.num_rows();
    let mut hs: Vec<(std::hash::DefaultHasher, std::hash::DefaultHasher)> =
        (0..n).map(|_| (KEYS.0.build_hasher(), KEYS.1.build_hasher())).collect();
    let mut cols: Vec<(&str, &dyn Array)> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .zip(batch.columns().iter().map(|c| c.as_ref()))
        .collect();
    cols.sort_by_key(|(name, _)| *name);
    for (name, a) in cols {
        for (i, h) in hs.iter_mut().enumerate() {
            write(h, name.as_bytes());
            hash_cell(h, a, i);
        }
    }
    hs.into_iter().map(|(a, b)| (u128::from(a.finish()) << 64) | u128::from(b.finish())).collect()
}

fn write(h: &mut (std::hash::DefaultHasher, std::hash::DefaultHasher), bytes: &[u8]) {
    for x in [&mut h.0, &mut h.1] {
        x.write_usize(bytes.len());
        x.write(bytes);
    }
}

fn tag(h: &mut (std::hash::DefaultHasher, std::hash::DefaultHasher), t: u8) {
    h.0.write_u8(t);
    h.1.write_u8(t);
}

/// Feeds one cell: a tag for null or the value's kind, then the value (strings with lengths).
fn hash_cell(h: &mut (std::hash::DefaultHasher, std::hash::DefaultHasher), a: &dyn Array, i: usize) {
    if a.is_null(i) {
        return tag(h, 0);
    }
    match a.data_type() {
        DataType::Utf8 => {
            tag(h, 1);
            write(h, a.as_string::<i32>().value(i).as_bytes());
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            tag(h, 2);
            write(h, &a.as_primitive::<TimestampMicrosecondType>().value(i).to_le_bytes());
        }
        DataType::Int32 => {
            tag(h, 3);
            write(h, &a.as_primitive::<Int32Type>().value(i).to_le_bytes());
        }
        DataType::Boolean => {
            tag(h, 4);
            write(h, &[u8::from(a.as_boolean().value(i))]);
        }
        DataType::List(_) => {
            tag(h, 5);
            let items = a.as_list::<i32>().value(i);
            write(h, &items.len().to_le_bytes());
            for j in 0..items.len() {
                hash_cell(h, items.as_ref(), j);
            }
        }
        DataType::Map(_, _) => {
            tag(h, 6);
            let m = a.as_map();
            let (start, end) = (m.value_offsets()[i] as usize, m.value_offsets()[i + 1] as usize);
            write(h, &(end - start).to_le_bytes());
            for j in start..end {
                hash_cell(h, m.keys().as_ref(), j);
                hash_cell(h, m.values().as_ref(), j);
            }
        }
        other => {
            // Not in kaq's schema: the value's debug form still tells values apart.
            tag(h, 7);
            write(h, format!("{other:?}{:?}", a.slice(i, 1)).as_bytes());
        }
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
