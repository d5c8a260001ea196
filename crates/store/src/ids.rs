//! Rows by auditID, through the Parquet bloom filter of `id` each row group of a segment has
//! (auditIDs are random and nearly all distinct: as index terms they would be most of the
//! index's size and build time). A row group whose filter says "maybe" has its `id` column read
//! and compared, so the answer is exact.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{At, Error};

/// The rows (sorted) of the segment file at `path` whose auditID is one of `ids`.
pub fn rows_with_ids(path: &Path, ids: &[String]) -> Result<Vec<u64>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let perr = |e: parquet::errors::ParquetError| crate::segment_error(path, e.into());
    let file = File::open(path).at(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let leaf = builder.parquet_schema().columns().iter().position(|c| c.name() == "id").expect("id leaf");
    let meta = builder.metadata().clone();
    let mut groups = Vec::new();
    let mut starts = Vec::new();
    let mut start = 0u64;
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let maybe = match builder.get_row_group_column_bloom_filter(g, leaf).map_err(perr)? {
            Some(bloom) => ids.iter().any(|id| bloom.check(id.as_str())),
            None => true, // a file without filters: read the column
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
