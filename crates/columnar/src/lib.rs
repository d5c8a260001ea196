//! Audit events as Arrow record batches and Parquet files.
//!
//! Roles:
//! - [`audit_schema`]: the typed columns (docs/schema.md tells users what each holds);
//! - [`EventBatchBuilder`]: decoded events → a `RecordBatch`; [`ToBatch`] does it per chunk of
//!   the kaq-input reading pipeline;
//! - [`SortedParquetWriter`]: batches in any order → one Parquet file sorted by time, zstd,
//!   dictionary-encoded, with row-group statistics, in bounded memory;
//! - [`PartitionedWriter`]: the same into Hive partitions (`date=…/hour=…/part-N.parquet`);
//! - [`Columns`] and [`batch_to_json`]: the way back, rows → events → audit JSON;
//! - [`digest`]: rows known by a keyed digest of every column (the store holds each record once).
//!
//! ```
//! use kaq_columnar::{batch_to_json, EventBatchBuilder};
//! use kaq_schema::{decode_event, DecodeOptions};
//!
//! let line = r#"{"kind":"Event","auditID":"1","verb":"get","requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z"}"#;
//! let mut b = EventBatchBuilder::new();
//! b.append(&decode_event(line, &DecodeOptions::default()).unwrap());
//! let batch = b.finish();
//! assert_eq!(batch.num_rows(), 1);
//! let back = batch_to_json(&batch).unwrap();
//! assert_eq!(back[0], serde_json::from_str::<serde_json::Value>(line).unwrap());
//! ```

mod build;
pub mod digest;
mod encode;
mod error;
mod handler;
mod partition;
pub mod prune;
pub mod read;
mod restore;
mod schema;
mod write;

pub use build::{BatchSizes, EventBatchBuilder};
pub use digest::Repeats;
pub use error::Error;
pub use handler::ToBatch;
pub use partition::{DEFAULT_PARTITION, PartitionedWriter, Partitioning};
pub use restore::{Columns, batch_to_json};
pub use schema::{ABSENT_KEY, COLUMNS, Col, SCHEMA_VERSION, SCHEMA_VERSION_KEY, audit_schema, column_index, data_type};
pub use write::{RowSink, SortedParquetWriter, Staged, WriteOptions, Written};
