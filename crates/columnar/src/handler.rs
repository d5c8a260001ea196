//! The bridge from the reading pipeline (kaq-input) to Arrow: one batch per chunk of input.

use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::RecordBatch;
use kaq_input::EventHandler;
use kaq_schema::Event;

use crate::build::EventBatchBuilder;

/// An [`EventHandler`] that builds an Arrow batch of [`audit_schema`](crate::audit_schema) from
/// each chunk of decoded events, on the decode threads. It remembers the largest chunk so far to
/// size the next builders from the start (growing buffers costs copies).
#[derive(Debug, Default)]
pub struct ToBatch {
    rows: AtomicUsize,
}

impl EventHandler for ToBatch {
    type State = EventBatchBuilder;
    type Output = RecordBatch;

    fn start(&self) -> EventBatchBuilder {
        EventBatchBuilder::with_capacity(self.rows.load(Ordering::Relaxed))
    }

    fn event(&self, b: &mut EventBatchBuilder, e: &Event<'_>) {
        b.append(e);
    }

    fn finish(&self, mut b: EventBatchBuilder) -> RecordBatch {
        self.rows.fetch_max(b.len(), Ordering::Relaxed);
        b.finish()
    }
}
