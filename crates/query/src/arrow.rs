//! Result rows as Arrow: whole events in kaq's audit schema, other rows as a flat typed table
//! (for embedding in other engines, and `--format parquet`).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use kaq_columnar::EventBatchBuilder;
use kaq_schema::{DecodeOptions, decode_event};

use crate::pipeline::Row;
use crate::plan::{Column, Ty};
use crate::value::Val;

/// Whole-event rows as one batch of [`kaq_columnar::audit_schema`] (their JSON decoded again, as
/// it was printed: redacted unless secrets were kept).
pub fn events_batch(rows: &[Row]) -> Result<RecordBatch, ArrowError> {
    let opts = DecodeOptions::keeping_secrets(true);
    let mut b = EventBatchBuilder::with_capacity(rows.len());
    for r in rows {
        let raw = r.raw.as_deref().ok_or_else(|| ArrowError::InvalidArgumentError("not a whole-event row".into()))?;
        let ev = decode_event(raw, &opts).map_err(|e| ArrowError::ParseError(e.0))?;
        b.append(&ev);
    }
    Ok(b.finish())
}

/// Rows of named columns as one batch: integers as Int64, numbers and durations (in seconds) as
/// Float64, times as UTC microsecond timestamps, booleans, lists as lists of text, the rest as text.
pub fn rows_batch(columns: &[Column], rows: &[Row]) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let cells = rows.iter().map(|r| &r.vals[i]);
        let (dt, array): (DataType, ArrayRef) = match c.ty {
            Ty::Int => {
                let mut b = Int64Builder::new();
                cells.for_each(|v| b.append_option(if let Val::Int(x) = v { Some(*x) } else { None }));
                (DataType::Int64, Arc::new(b.finish()))
            }
            Ty::Float | Ty::Dur => {
                let mut b = Float64Builder::new();
                cells.for_each(|v| b.append_option(v.as_f64()));
                (DataType::Float64, Arc::new(b.finish()))
            }
            Ty::Bool => {
                let mut b = BooleanBuilder::new();
                cells.for_each(|v| b.append_option(if let Val::Bool(x) = v { Some(*x) } else { None }));
                (DataType::Boolean, Arc::new(b.finish()))
            }
            Ty::Time => {
                let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                cells.for_each(|v| b.append_option(if let Val::Time(x) = v { Some(*x) } else { None }));
                (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), Arc::new(b.finish()))
            }
            // `values(f)` columns, and list fields kept whole by `table`: lists of text.
            _ if c.ty == Ty::List || c.list => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for v in cells {
                    match v {
                        Val::List(items) => {
                            items.iter().for_each(|x| b.values().append_value(x.to_text()));
                            b.append(true);
                        }
                        Val::Null => b.append(false),
                        other => {
                            b.values().append_value(other.to_text());
                            b.append(true);
                        }
                    }
                }
                let array = b.finish();
                (array.data_type().clone(), Arc::new(array))
            }
            _ => {
                let mut b = StringBuilder::new();
                cells.for_each(|v| b.append_option((!v.is_null()).then(|| v.to_text())));
                (DataType::Utf8, Arc::new(b.finish()))
            }
        };
        fields.push(Field::new(&c.name, dt, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// The result as Arrow: [`events_batch`] for whole events, [`rows_batch`] otherwise.
pub fn record_batch(columns: &[Column], rows: &[Row], whole_events: bool) -> Result<RecordBatch, ArrowError> {
    if whole_events { events_batch(rows) } else { rows_batch(columns, rows) }
}
