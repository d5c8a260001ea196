//! Reading Kubernetes audit logs.
//!
//! Roles:
//! - [`expand`]: command-line inputs → [`Source`]s (files, directories in rotation order, `-`);
//! - [`read`]: the pipeline — plain or gzip (detected by content, multi-member, truncation
//!   reported), JSON lines or whole documents (pretty-printed events, `EventList`s, arrays; a
//!   UTF-8 byte-order mark is skipped), decoded in parallel, results in input order;
//! - [`formats`]: native Events and the exports of managed clusters (GKE Cloud Logging entries,
//!   EKS CloudWatch Logs exports, AKS diagnostic records and AKSAudit rows), detected per record
//!   or forced with [`ReadOptions::input_format`];
//! - [`Reject`] and [`Counts`]: the accounting — every record is an event or a reject with its
//!   source, line and reason.
//!
//! ```no_run
//! use kaq_input::{expand, read, EventHandler, ReadOptions};
//! use kaq_schema::Event;
//!
//! struct CountDeletes;
//! impl EventHandler for CountDeletes {
//!     type State = usize;
//!     type Output = usize;
//!     fn start(&self) -> usize {
//!         0
//!     }
//!     fn event(&self, n: &mut usize, e: &Event<'_>) {
//!         *n += usize::from(e.verb.as_deref() == Some("delete"));
//!     }
//!     fn finish(&self, n: usize) -> usize {
//!         n
//!     }
//! }
//!
//! let sources = expand(&["audit.log"]).unwrap().sources;
//! let mut deletes = 0;
//! let report = read(&sources, &ReadOptions::default(), &CountDeletes, |chunk| {
//!     deletes += chunk.output.unwrap_or(0);
//!     Ok::<(), std::convert::Infallible>(())
//! })
//! .unwrap();
//! println!("{deletes} deletes in {} events ({} rejected)", report.counts.events, report.counts.rejected);
//! ```

mod error;
pub mod formats;
mod read;
mod sources;

pub use error::InputError;
pub use formats::{InputFormat, Record, decode_input};
pub use read::{
    Chunk, Counts, DEFAULT_MAX_RECORD_SIZE, EventHandler, ReadOptions, Reject, Report, format_size, is_gzip,
    parse_size, read,
};
pub use sources::{Expanded, FilePart, Source, Unreadable, expand, looks_like_log, rotation_key};
