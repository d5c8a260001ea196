//! The bridge from the reading pipeline (kaq-input) to Arrow: one batch per chunk of input.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::RecordBatch;
use kaq_input::EventHandler;
use kaq_schema::Event;

use crate::build::{BatchSizes, EventBatchBuilder};

/// An [`EventHandler`] that builds an Arrow batch of [`audit_schema`](crate::audit_schema) from
/// each chunk of decoded events, on the decode threads. It remembers the largest chunk so far,
/// and what the last one's string columns held, to size the next builders from the start
/// (growing buffers costs copies).
#[derive(Debug, Default)]
pub struct ToBatch {
    rows: AtomicUsize,
    sizes: Mutex<Option<BatchSizes>>,
}

impl EventHandler for ToBatch {
    type State = EventBatchBuilder;
    type Output = RecordBatch;

    fn start(&self) -> EventBatchBuilder {
        let sizes = self.sizes.lock().expect("unpoisoned").clone();
        EventBatchBuilder::with_sizes(self.rows.load(Ordering::Relaxed), sizes.as_ref())
    }

    fn event(&self, b: &mut EventBatchBuilder, e: &Event<'_>) {
        b.append(e);
    }

    fn finish(&self, mut b: EventBatchBuilder) -> RecordBatch {
        self.rows.fetch_max(b.len(), Ordering::Relaxed);
        if !b.is_empty() {
            *self.sizes.lock().expect("unpoisoned") = Some(b.sizes());
        }
        b.finish()
    }
}
