//! # kaq: questions over Kubernetes audit logs, as a library
//!
//! kaq answers questions about Kubernetes API-server audit logs ("who deleted the payments
//! deployment?", "which address is hammering us with 401s?") in a small query language, over log
//! files read directly or over an indexed store built from them. This crate is all an embedder
//! needs: add `kaq` to `Cargo.toml` and use the four types below.
//!
//! | type | what it is |
//! |---|---|
//! | [`Query`] | a query, compiled once (its text checked, fields resolved, `@names` expanded) and run any number of times |
//! | [`Source`] | where a query runs: log files (JSON lines, gzip, cloud exports, kaq Parquet) or a [`Store`] |
//! | [`QueryResult`] | typed rows ([`Row`], [`Val`]), with JSON lines and Arrow batches, and what was read |
//! | [`Store`] | an indexed store: create, ingest, query, explain, compact, prune |
//!
//! ## Asking log files
//!
//! ```
//! use kaq::{Query, Source, Val};
//!
//! # let dir = tempfile::tempdir()?;
//! let log = dir.path().join("audit.log");
//! std::fs::write(&log, concat!(
//!     r#"{"auditID":"a1","stage":"ResponseComplete","verb":"delete","user":{"username":"alice"},"#,
//!     r#""objectRef":{"resource":"deployments","namespace":"prod","name":"payments"},"responseStatus":{"code":200}}"#, "\n",
//!     r#"{"auditID":"a2","stage":"ResponseComplete","verb":"get","user":{"username":"bob"},"#,
//!     r#""objectRef":{"resource":"pods","namespace":"prod"},"responseStatus":{"code":200}}"#, "\n",
//! ))?;
//!
//! // Compile once: a mistake comes back with its place in the text.
//! let query = Query::new("verb:delete ns:prod* | table user, name")?;
//! assert_eq!(query.fields(), ["verb", "ns", "user", "name"]);
//!
//! let result = Source::files([&log]).run(&query)?;
//! assert_eq!(result.rows.len(), 1);
//! assert_eq!(result.rows[0].vals, [Val::Str("alice".into()), Val::Str("payments".into())]);
//! assert_eq!(result.json_lines(), [r#"{"user":"alice","name":"payments"}"#]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Only the latest stage of each request counts, as in every kaq answer: a request logged at
//! `RequestReceived` and `ResponseComplete` is one row ([`QueryOptions::all_stages`] keeps every
//! record). Records are stages of one request when they share the auditID and the request's
//! identity (received time, verb, URI, user), so a client that reuses an auditID hides nothing.
//!
//! ## A store
//!
//! A store indexes the events once; a question then reads only what it needs.
//!
//! ```
//! use kaq::{Query, Store};
//!
//! # let dir = tempfile::tempdir()?;
//! # let log = dir.path().join("audit.log");
//! # std::fs::write(&log, concat!(r#"{"auditID":"a1","stage":"ResponseComplete","verb":"get","sourceIPs":["203.0.113.9"],"responseStatus":{"code":401}}"#, "\n"))?;
//! let mut store = Store::create(dir.path().join("kaq-store"))?;
//! let ingested = store.ingest(&[&log])?;
//! assert_eq!(ingested.counts.events, 1);
//!
//! let by_ip = store.query(&Query::new("code:401 | count by ip")?)?;
//! assert_eq!(by_ip.json_lines(), [r#"{"ip":"203.0.113.9","count":1}"#]);
//!
//! // How it ran, as data: the physical plan's steps with their row counts.
//! let explained = store.explain(&Query::new("code:401")?)?;
//! assert!(explained.physical.is_some() && !explained.trace.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Errors
//!
//! [`Error`] has one variant per layer: the query ([`QueryError`], which keeps each mistake's
//! span and renders it under the text), reading inputs, the store, Parquet.
//!
//! ```
//! let err = kaq::Query::new("usr:alice").unwrap_err();
//! assert_eq!(err.diagnostics()[0].span.start, 0);
//! assert!(err.render().contains("did you mean `user`?"));
//! ```
//!
//! ## Where things are
//!
//! kaq is a workspace of crates, each with one job; this one puts them together. The language
//! (`kaq-syntax`: parser, diagnostics), planning and scanning (`kaq-query`), reading inputs
//! (`kaq-input`), the Parquet schema (`kaq-columnar`), and the store (`kaq-store`, where
//! [`Store::physical_plan`](kaq_store::Store::physical_plan) decides how each query runs). See
//! docs/ARCHITECTURE.md in the repository.

mod convert;
mod error;
mod parquet_out;
mod query;
mod source;
mod store;

pub use convert::{Converted, convert};
pub use error::Error;
pub use parquet_out::write_parquet;
pub use query::{Query, QueryError, QueryOptions};
pub use source::{DataRange, Explain, QueryResult, Source, Stats};
pub use store::Store;

/// What was read of the inputs: events, rejects, skipped lines, bytes.
pub use kaq_input::{Counts, Report};
/// How inputs are read: format, threads, record size limit, secrets, cancellation.
pub use kaq_input::{InputFormat, ReadOptions, Reject};
/// An output column: its name and type.
pub use kaq_query::Column;
/// A row of an answer: its cells in the order of [`Query::columns`].
pub use kaq_query::Row;
/// A cell: text, number, time (µs since the epoch), duration, list, or null.
pub use kaq_query::Val;
/// What a step did that its rows do not show (a timeline too long to fill).
pub use kaq_query::pipeline::Note;
/// Where [`Source::run_streaming`] hands its rows, and what it handed on; the memory held for
/// matching rows before a temporary file takes the rest.
pub use kaq_query::scan::{Stream, Streamed};
pub use kaq_query::spill::SPILL_AFTER;
/// How a query runs over a store, and what each step read and kept.
pub use kaq_store::{Access, Fallback, Latest, PhysicalPlan, Projection, SegmentPlan, TraceStep};
/// How to ingest, and what an ingest or a rewrite (compact, prune) did.
pub use kaq_store::{IngestOptions, IngestReport, Rewrite};
/// A mistake in a query, with its span.
pub use kaq_syntax::Diagnostic;

/// Times: kaq's values are µs since the Unix epoch, shown as RFC 3339 in UTC.
pub mod time {
    pub use kaq_schema::time::format_micros;
}
