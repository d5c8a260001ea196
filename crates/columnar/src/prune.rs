//! Pruning by statistics, one type for every level: a [`Pruning`] (the conditions every matching
//! row meets, as [`StatBound`]s on columns) is checked against the statistics of whatever holds
//! rows — a Parquet row group ([`RowGroupStats`]), a store segment (its manifest's time range) —
//! through [`PruningStats`], as DataFusion's `PruningPredicate` serves files and row groups alike.
//! The query planner makes the bounds (`kaq_query::columnar::pruning`); the store prunes segments
//! and the scans prune row groups with them.

use std::fmt;

use parquet::basic::{ColumnOrder, SortOrder};
use parquet::file::metadata::{FileMetaData, RowGroupMetaData};
use parquet::file::statistics::Statistics;

/// A condition every row that can pass a caller's filter meets, on one column (or two, for
/// latency): a container whose statistics prove no row meets it holds no match. Each holds on
/// the column values exactly as the caller's filter reads them.
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

/// What a container of rows knows of its columns. Each answer may be `None` (not known): then
/// nothing is proved by it.
pub trait PruningStats {
    /// Rows held.
    fn num_rows(&self) -> u64;
    /// Nulls in `column`.
    fn null_count(&self, column: &str) -> Option<u64>;
    /// The least and greatest value of an integer column, compared as signed numbers.
    fn int_range(&self, column: &str) -> Option<(i64, i64)>;
    /// The least and greatest value of a byte-array column in byte-wise order; a truncated
    /// minimum must be a prefix of the minimum, a truncated maximum rounded up.
    fn bytes_range(&self, column: &str) -> Option<(Vec<u8>, Vec<u8>)>;
}

impl StatBound {
    /// Whether `stats` prove that no row meets this bound.
    pub fn rules_out(&self, stats: &dyn PruningStats) -> bool {
        let rows = stats.num_rows();
        // Every row null: nothing is in any range, nothing is present.
        let all_null = |c: &str| rows > 0 && stats.null_count(c) == Some(rows);
        let outside = |(min, max): (i64, i64), lo: Option<i64>, hi: Option<i64>| {
            hi.is_some_and(|h| min > h) || lo.is_some_and(|l| max < l)
        };
        match self {
            StatBound::Present { column } => all_null(column),
            StatBound::Int { column, lo, hi } => {
                all_null(column) || stats.int_range(column).is_some_and(|mm| outside(mm, *lo, *hi))
            }
            StatBound::Bytes { column, lo, hi } => {
                if all_null(column) {
                    return true;
                }
                let Some((min, max)) = stats.bytes_range(column) else { return false };
                let above = hi.as_ref().is_some_and(|(h, incl)| if *incl { min > *h } else { min >= *h });
                let below = lo.as_ref().is_some_and(|(l, incl)| if *incl { max < *l } else { max <= *l });
                above || below
            }
            StatBound::Latency { lo, hi } => {
                if all_null("time") || all_null("stage_time") {
                    return true;
                }
                let (Some((t_min, t_max)), Some((s_min, s_max))) =
                    (stats.int_range("time"), stats.int_range("stage_time"))
                else {
                    return false;
                };
                // A row's latency is its stage_time − its time: within these.
                match (s_min.checked_sub(t_max), s_max.checked_sub(t_min)) {
                    (Some(min), Some(max)) => outside((min, max), *lo, *hi),
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for StatBound {
    /// The bound as a person reads it: `time from 2026-11-20T05:00:00Z to …`, `verb = "delete"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = |column: &str, v: i64| {
            if matches!(column, "time" | "stage_time") { kaq_schema::time::format_micros(v) } else { v.to_string() }
        };
        match self {
            StatBound::Int { column, lo: Some(l), hi: Some(h) } if l == h => {
                write!(f, "{column} = {}", int(column, *l))
            }
            StatBound::Int { column, lo, hi } => {
                write!(f, "{column}")?;
                if let Some(l) = lo {
                    write!(f, " ≥ {}", int(column, *l))?;
                }
                if let Some(h) = hi {
                    write!(f, "{} ≤ {}", if lo.is_some() { " and" } else { "" }, int(column, *h))?;
                }
                Ok(())
            }
            StatBound::Bytes { column, lo, hi } => {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                match (lo, hi) {
                    (Some((l, true)), Some((h, true))) if l == h => write!(f, "{column} = {:?}", text(l)),
                    _ => {
                        write!(f, "{column}")?;
                        if let Some((l, incl)) = lo {
                            write!(f, " {} {:?}", if *incl { "≥" } else { ">" }, text(l))?;
                        }
                        if let Some((h, incl)) = hi {
                            let and = if lo.is_some() { " and" } else { "" };
                            write!(f, "{and} {} {:?}", if *incl { "≤" } else { "<" }, text(h))?;
                        }
                        Ok(())
                    }
                }
            }
            StatBound::Present { column } => write!(f, "{column} present"),
            StatBound::Latency { lo, hi } => {
                let ms = |us: i64| format!("{}ms", us as f64 / 1000.0);
                match (lo, hi) {
                    (Some(l), Some(h)) => write!(f, "latency from {} to {}", ms(*l), ms(*h)),
                    (Some(l), None) => write!(f, "latency ≥ {}", ms(*l)),
                    (None, Some(h)) => write!(f, "latency ≤ {}", ms(*h)),
                    (None, None) => write!(f, "latency present"),
                }
            }
        }
    }
}

/// The conditions every matching row meets; a container whose statistics prove one of them
/// false for all its rows is skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruning {
    pub bounds: Vec<StatBound>,
}

impl Pruning {
    /// The first bound `stats` prove no row meets: why the container can be skipped.
    pub fn rules_out(&self, stats: &dyn PruningStats) -> Option<&StatBound> {
        self.bounds.iter().find(|b| b.rules_out(stats))
    }

    /// Whether there is nothing to prune by.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }
}

/// A Parquet row group's column statistics, read as kaq's columns are ordered: integers signed,
/// byte arrays byte-wise (statistics written in another order prove nothing).
pub struct RowGroupStats<'a> {
    pub group: &'a RowGroupMetaData,
    pub file: &'a FileMetaData,
}

impl RowGroupStats<'_> {
    fn stats(&self, name: &str) -> Option<(usize, &Statistics)> {
        let leaf = self.file.schema_descr().columns().iter().position(|c| c.path().string() == name)?;
        self.group.column(leaf).statistics().map(|s| (leaf, s))
    }

    fn unsigned(&self, leaf: usize) -> bool {
        matches!(self.file.column_order(leaf), ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::UNSIGNED))
    }
}

impl PruningStats for RowGroupStats<'_> {
    fn num_rows(&self) -> u64 {
        self.group.num_rows() as u64
    }

    fn null_count(&self, column: &str) -> Option<u64> {
        self.stats(column)?.1.null_count_opt()
    }

    fn int_range(&self, column: &str) -> Option<(i64, i64)> {
        let (leaf, st) = self.stats(column)?;
        if self.unsigned(leaf) {
            return None;
        }
        match st {
            Statistics::Int32(v) => Some((i64::from(*v.min_opt()?), i64::from(*v.max_opt()?))),
            Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
            _ => None,
        }
    }

    fn bytes_range(&self, column: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let (leaf, st) = self.stats(column)?;
        // Byte-wise (unsigned) order, in the current fields: a truncated min is a prefix of the
        // min, a truncated max is rounded up, so both still bound the values.
        let Statistics::ByteArray(v) = st else { return None };
        if !self.unsigned(leaf) || st.is_min_max_deprecated() {
            return None;
        }
        Some((v.min_opt()?.data().to_vec(), v.max_opt()?.data().to_vec()))
    }
}
