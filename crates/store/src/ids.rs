//! Rows by auditID, through the Parquet bloom filter of `id` each row group of a segment has
//! (auditIDs are random and nearly all distinct: as index terms they would be most of the
//! index's size and build time). A row group whose filter says "maybe" has its `id` column read
//! and compared, so the answer is exact.
//!
//! A filter is a few hundred KiB and an ID is looked up in one 32-byte block of it: for a few
//! IDs, only the filter's header and those blocks are read ([`Probe`]), so a lookup costs a few
//! small reads a row group, not the filters' whole size (2 MB a million rows).

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::ColumnChunkMetaData;

use crate::{At, Error};

/// Past this many IDs the whole filter is read (one read instead of one a block).
const PROBE_MAX_IDS: usize = 64;

/// The rows (sorted) of the segment file at `path` whose auditID is one of `ids`.
pub fn rows_with_ids(path: &Path, ids: &[String]) -> Result<Vec<u64>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let perr = |e: parquet::errors::ParquetError| crate::segment_error(path, e.into());
    let file = File::open(path).at(path)?;
    let probe_file = file.try_clone().at(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let leaf = builder.parquet_schema().columns().iter().position(|c| c.name() == "id").expect("id leaf");
    let meta = builder.metadata().clone();
    let hashes: Vec<u64> = ids.iter().map(|id| xxhash(id.as_bytes())).collect();
    let mut groups = Vec::new();
    let mut starts = Vec::new();
    let mut start = 0u64;
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let probed = if ids.len() <= PROBE_MAX_IDS {
            Probe::of(rg.column(leaf)).map(|p| p.any(&probe_file, ids, &hashes)).transpose().at(path)?.flatten()
        } else {
            None
        };
        let maybe = match probed {
            Some(m) => m,
            None => match builder.get_row_group_column_bloom_filter(g, leaf).map_err(perr)? {
                Some(bloom) => ids.iter().any(|id| bloom.check(id.as_str())),
                None => true, // a file without filters: read the column
            },
        };
        if maybe {
            groups.push(g);
            starts.push(start);
        }
        start += rg.num_rows() as u64;
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
    let reader =
        builder.with_projection(mask).with_row_groups(groups.clone()).with_batch_size(8192).build().map_err(perr)?;
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let (mut g, mut in_group) = (0usize, 0u64);
    for batch in reader {
        let batch = batch.map_err(|e| crate::segment_error(path, e.into()))?;
        let a = batch.column(0).as_string::<i32>();
        for i in 0..a.len() {
            while in_group >= meta.row_group(groups[g]).num_rows() as u64 {
                g += 1;
                in_group = 0;
            }
            if a.is_valid(i) && wanted.contains(a.value(i)) {
                out.push(starts[g] + in_group);
            }
            in_group += 1;
        }
    }
    Ok(out)
}

/// The distinct auditIDs of the segment file at `path`, in the order first met; a row without
/// one (or with an empty one) gives `""`.
pub fn ids_in(path: &Path) -> Result<Vec<String>, Error> {
    let perr = |e: parquet::errors::ParquetError| crate::segment_error(path, e.into());
    let file = File::open(path).at(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let leaf = builder.parquet_schema().columns().iter().position(|c| c.name() == "id").expect("id leaf");
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
    let reader = builder.with_projection(mask).with_batch_size(8192).build().map_err(perr)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| crate::segment_error(path, e.into()))?;
        let a = batch.column(0).as_string::<i32>();
        for i in 0..a.len() {
            let id = if a.is_valid(i) { a.value(i) } else { "" };
            if seen.insert(id.to_string()) {
                out.push(id.to_string());
            }
        }
    }
    Ok(out)
}

/// The hash a Parquet bloom filter takes of a byte array: XXH64, seed 0, of its bytes.
pub(crate) fn xxhash(bytes: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, bytes)
}

/// Where a column chunk's split-block bloom filter lies: its bitset's offset and number of
/// 32-byte blocks, known once its header is read and found to be exactly the one kaq's writer
/// writes (block algorithm, XXH64, uncompressed). Anything else is read by parquet instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    offset: u64,
    length: u64,
}

/// The header after its first field (`numBytes`): the block algorithm, XXH64 and no compression,
/// each a union holding an empty struct (Thrift compact protocol), then the end of the header.
const HEADER_TAIL: [u8; 13] = [0x1c, 0x1c, 0x00, 0x00, 0x1c, 0x1c, 0x00, 0x00, 0x1c, 0x1c, 0x00, 0x00, 0x00];

impl Probe {
    /// The filter of a column chunk, when its offset and length are recorded.
    pub(crate) fn of(column: &ColumnChunkMetaData) -> Option<Probe> {
        let offset = u64::try_from(column.bloom_filter_offset()?).ok()?;
        let length = u64::try_from(column.bloom_filter_length()?).ok()?;
        Some(Probe { offset, length })
    }

    /// Whether any of `hashes` may be in the filter: `None` when its header is not the one
    /// expected (then the caller reads the filter through parquet).
    pub(crate) fn any(&self, file: &File, ids: &[String], hashes: &[u64]) -> std::io::Result<Option<bool>> {
        let mut head = [0u8; 32];
        let n = (self.length as usize).min(head.len());
        file.read_exact_at(&mut head[..n], self.offset)?;
        let Some((blocks, bitset)) = parse_header(&head[..n], self.length) else { return Ok(None) };
        let mut block = [0u8; 32];
        for (id, &h) in ids.iter().zip(hashes) {
            // The block the whole filter checks (`Sbbf::hash_to_block_index`)...
            let b = ((h >> 32) * blocks) >> 32;
            file.read_exact_at(&mut block, self.offset + bitset + b * 32)?;
            // ...and a filter of that block alone checks the same eight bits of it.
            if Sbbf::new(&block).check(id.as_str()) {
                return Ok(Some(true));
            }
        }
        Ok(Some(false))
    }
}

/// The number of blocks of a filter whose header begins `head` and whose header and bitset take
/// `length` bytes, and where its bitset begins (the header's length).
fn parse_header(head: &[u8], length: u64) -> Option<(u64, u64)> {
    // Field 1, an i32 (compact type 5): a zigzag varint.
    let (&first, rest) = head.split_first()?;
    if first != 0x15 {
        return None;
    }
    let (mut v, mut shift, mut used) = (0u64, 0u32, 0usize);
    loop {
        let &b = rest.get(used)?;
        used += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    let num_bytes = (v >> 1) ^ (v & 1).wrapping_neg();
    let tail = rest.get(used..used + HEADER_TAIL.len())?;
    let header = (1 + used + HEADER_TAIL.len()) as u64;
    (tail == HEADER_TAIL && num_bytes >= 32 && num_bytes % 32 == 0 && header + num_bytes == length)
        .then_some((num_bytes / 32, header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaq_columnar::{EventBatchBuilder, SortedParquetWriter, WriteOptions};

    /// A kaq Parquet file of `n` events with bloom filters of `id`, in row groups of 100.
    fn file(dir: &Path, n: usize) -> std::path::PathBuf {
        let mut b = EventBatchBuilder::with_capacity(n);
        for i in 0..n {
            let line = format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a{i:05}-{}","stage":"ResponseComplete","requestURI":"/api","verb":"get","requestReceivedTimestamp":"2026-11-20T06:00:{:02}.{i:06}Z"}}"#,
                i * 7919 % 1000,
                i % 60,
            );
            b.append(&kaq_schema::decode_event(&line, &Default::default()).unwrap());
        }
        let path = dir.join("s.parquet");
        let opts =
            WriteOptions { row_group_rows: 100, run_rows: 100, id_bloom_filter: true, ..WriteOptions::default() };
        let mut w = SortedParquetWriter::create(&path, opts).unwrap();
        w.write(b.finish()).unwrap();
        w.finish().unwrap();
        path
    }

    /// Every row's auditID, in file order: the plain reference.
    fn all_ids(path: &Path) -> Vec<String> {
        let b = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let leaf = b.parquet_schema().columns().iter().position(|c| c.name() == "id").unwrap();
        let mask = ProjectionMask::leaves(b.parquet_schema(), [leaf]);
        let mut out = Vec::new();
        for batch in b.with_projection(mask).build().unwrap() {
            let batch = batch.unwrap();
            out.extend(batch.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()));
        }
        out
    }

    /// Reading a filter's header and the blocks of the IDs asked gives parquet's answer from the
    /// whole filter, for IDs present and absent (false positives included), in every row group.
    #[test]
    fn probing_blocks_answers_as_the_whole_filter() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 1000);
        let ids = all_ids(&path);
        let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let leaf = b.parquet_schema().columns().iter().position(|c| c.name() == "id").unwrap();
        let f = File::open(&path).unwrap();
        let absent: Vec<String> = (0..3000).map(|i| format!("b{i}-absent")).collect();
        let mut positives = 0;
        for (g, rg) in b.metadata().row_groups().iter().enumerate() {
            let probe = Probe::of(rg.column(leaf)).expect("the filter's offset and length are recorded");
            let whole = b.get_row_group_column_bloom_filter(g, leaf).unwrap().unwrap();
            for id in ids.iter().chain(&absent) {
                let one = std::slice::from_ref(id);
                let got = probe.any(&f, one, &[xxhash(id.as_bytes())]).unwrap();
                assert_eq!(got, Some(whole.check(id.as_str())), "row group {g}, `{id}`");
                positives += usize::from(got == Some(true));
            }
        }
        // Each ID is in one group: 1000 true positives, and some false ones among 10 × 4000 asks.
        assert!(positives >= 1000, "{positives}");
    }

    /// The rows found by auditID equal those found by comparing every row's: few IDs (blocks
    /// probed), many (whole filters read), absent ones, none.
    #[test]
    fn rows_with_ids_equal_a_plain_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 1000);
        let all = all_ids(&path);
        let sets: Vec<Vec<String>> = vec![
            vec![],
            vec![all[0].clone()],
            vec![all[999].clone(), "nope".into()],
            vec!["nope".into(), "a-absent".into()],
            all.iter().step_by(97).cloned().collect(),
            all.iter().step_by(7).cloned().collect(), // 143 IDs: past PROBE_MAX_IDS
        ];
        for ids in sets {
            let want: Vec<u64> =
                all.iter().enumerate().filter(|(_, id)| ids.contains(id)).map(|(i, _)| i as u64).collect();
            assert_eq!(rows_with_ids(&path, &ids).unwrap(), want, "{} IDs", ids.len());
        }
    }

    #[test]
    fn only_the_header_kaq_writes_is_probed() {
        // numBytes 128 (zigzag 256: varint 0x80 0x02), then the tail: 16 bytes of header.
        let mut head = vec![0x15, 0x80, 0x02];
        head.extend(HEADER_TAIL);
        assert_eq!(parse_header(&head, 16 + 128), Some((4, 16)));
        assert_eq!(parse_header(&head, 16 + 127), None, "length disagrees");
        let mut other = head.clone();
        other[4] = 0x2c; // another algorithm
        assert_eq!(parse_header(&other, 16 + 128), None);
        assert_eq!(parse_header(&head[..8], 16 + 128), None, "cut short");
        assert_eq!(parse_header(&[0x16, 0x80, 0x02], 144), None, "not an i32 first");
    }
}
