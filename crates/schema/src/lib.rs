//! The Kubernetes audit event model and the field catalogue.
//!
//! Roles:
//! - [`Event`]: one `audit.k8s.io/v1` (or `v1beta1`) Event, borrowing from its JSON text;
//! - [`decode_event`] / [`decode_records`]: JSON text → events (EventList and arrays included),
//!   strict about known fields, keeping unknown ones, redacting secrets ([`redact`]) and computing
//!   the derived fields ([`Derived`]);
//! - [`Event::to_json`]: back to audit JSON, semantically equal to the input;
//! - [`FIELDS`]: the one catalogue of queryable fields;
//! - [`visible`](mod@visible): log text made safe to show on a terminal (control characters and bidi overrides
//!   as escapes), JSON kept JSON, CSV cells kept from running as formulas.
//!
//! ```
//! use kaq_schema::{decode_event, DecodeOptions, UserKind};
//!
//! let line = r#"{"kind":"Event","auditID":"1","verb":"delete","user":{"username":"system:serviceaccount:ci:deployer"},
//!   "objectRef":{"resource":"deployments","namespace":"prod","name":"payments"},
//!   "requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:00.250000Z"}"#;
//! let ev = decode_event(line, &DecodeOptions::default()).unwrap();
//! assert_eq!(ev.verb.as_deref(), Some("delete"));
//! assert_eq!(ev.derived.user_kind, Some(UserKind::ServiceAccount));
//! assert_eq!(ev.derived.latency_us, Some(250_000));
//! ```

pub mod decode;
pub mod derive;
pub mod event;
mod fast;
pub mod fields;
pub mod json;
pub mod redact;
pub mod time;
pub mod visible;

pub use decode::{
    DecodeError, DecodeOptions, Fields, Rejected, decode_event, decode_event_into, decode_full, decode_records,
    decode_records_with_text,
};
pub use derive::{Derived, PodFlags, UserKind};
pub use event::{Event, ObjectRef, Status, UserInfo, merge};
pub use fields::{FIELDS, Field, FieldType, lookup, vocabulary};
pub use visible::visible;
