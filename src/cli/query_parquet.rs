//! `kaq query --format parquet`: whole events as kaq's audit Parquet (what `kaq convert` writes),
//! other rows as a flat table typed from the query's columns.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use kaq_columnar::{EventBatchBuilder, SortedParquetWriter, WriteOptions};
use kaq_query::plan::Ty;
use kaq_query::{Plan, Row, Val};
use kaq_schema::{DecodeOptions, decode_event};

pub fn write(path: &Path, plan: &Plan, rows: &[Row]) -> anyhow::Result<()> {
    if plan.whole_events {
        let mut w = SortedParquetWriter::create(path, WriteOptions::default())?;
        // Events were redacted when read; keep them as they are now.
        let opts = DecodeOptions { keep_secrets: true };
        for chunk in rows.chunks(8192) {
            let mut b = EventBatchBuilder::with_capacity(chunk.len());
            for r in chunk {
                let raw = r.raw.as_deref().context("whole-event row without its JSON")?;
                b.append(&decode_event(raw, &opts).map_err(|e| anyhow::anyhow!("re-reading a result event: {e}"))?);
            }
            w.write(b.finish())?;
        }
        w.finish()?;
        return Ok(());
    }
    let columns = plan.output_columns();
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
            Ty::List => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for v in cells {
                    match v {
                        Val::List(items) => {
                            items.iter().for_each(|x| b.values().append_value(x.to_text()));
                            b.append(true);
                        }
                        _ => b.append(false),
                    }
                }
                let array = b.finish();
                (array.data_type().clone(), Arc::new(array))
            }
            _ if c.list => {
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
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let tmp = path.with_file_name(format!(".{}.kaq-tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))?;
    w.write(&batch)?;
    w.close()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
