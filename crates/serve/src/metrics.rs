//! Counters and request latencies, written as Prometheus text at `/metrics`.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What the server counts.
#[derive(Default)]
pub struct Metrics {
    /// Events in the batches accepted (acknowledged with 200).
    pub events_received: AtomicU64,
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Request bodies refused (400 malformed, 413 too large, 415 encoded): nothing of them kept.
    pub batches_rejected: AtomicU64,
    /// Batches refused for back-pressure (429, 503): the sender retries them.
    pub batches_throttled: AtomicU64,
    /// Events of accepted batches that do not decode as audit events (kept as rejects, counted).
    pub events_rejected_in_batches: AtomicU64,
    /// Events committed to the store (a record the store held already is counted and left out).
    pub events_ingested: AtomicU64,
    /// Commits of the write-ahead log into the store.
    pub commits: AtomicU64,
    /// Bytes appended to the write-ahead log, and read from it into the store, since start.
    pub wal_bytes_written: AtomicU64,
    pub wal_bytes_read: AtomicU64,
    /// Requests refused for want of the token.
    pub unauthorized: AtomicU64,
    /// Queries answered, failed (a query error), and stopped at the time limit.
    pub queries: AtomicU64,
    pub query_errors: AtomicU64,
    pub query_timeouts: AtomicU64,
    latency: Mutex<Vec<Histogram>>,
}

struct Histogram {
    route: &'static str,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Metrics {
    /// Bytes written to the log and not read into the store yet.
    pub fn wal_pending(&self) -> u64 {
        self.wal_bytes_written.load(Ordering::Relaxed).saturating_sub(self.wal_bytes_read.load(Ordering::Relaxed))
    }

    pub fn observe(&self, route: &'static str, took: Duration) {
        let s = took.as_secs_f64();
        let mut all = self.latency.lock().expect("unpoisoned");
        let h = match all.iter().position(|h| h.route == route) {
            Some(i) => &mut all[i],
            None => {
                all.push(Histogram { route, counts: vec![0; BUCKETS.len()], sum: 0.0, count: 0 });
                all.last_mut().expect("pushed")
            }
        };
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    /// Prometheus text format (version 0.0.4). `store` is the store's bytes and rows.
    pub fn render(&self, store: Option<(u64, u64)>) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        };
        counter(
            &mut o,
            "kaq_events_received_total",
            "Events in the webhook batches acknowledged.",
            &self.events_received,
        );
        counter(
            &mut o,
            "kaq_batches_total",
            "Webhook batches acknowledged (durable in the write-ahead log).",
            &self.batches,
        );
        counter(
            &mut o,
            "kaq_batches_rejected_total",
            "Webhook requests refused as malformed (400), too large (413) or encoded (415).",
            &self.batches_rejected,
        );
        counter(
            &mut o,
            "kaq_batches_throttled_total",
            "Webhook requests refused for back-pressure (429, 503 with Retry-After).",
            &self.batches_throttled,
        );
        counter(
            &mut o,
            "kaq_events_rejected_total",
            "Items of acknowledged batches that are not audit events (counted, not stored).",
            &self.events_rejected_in_batches,
        );
        counter(
            &mut o,
            "kaq_events_ingested_total",
            "Events committed to the store (those the store held already are left out).",
            &self.events_ingested,
        );
        counter(&mut o, "kaq_commits_total", "Commits of the write-ahead log into the store.", &self.commits);
        counter(&mut o, "kaq_unauthorized_total", "Requests refused without a valid token.", &self.unauthorized);
        counter(&mut o, "kaq_queries_total", "Queries answered.", &self.queries);
        counter(&mut o, "kaq_query_errors_total", "Queries refused with an error.", &self.query_errors);
        counter(&mut o, "kaq_query_timeouts_total", "Queries stopped at the time limit.", &self.query_timeouts);
        let _ = writeln!(
            o,
            "# HELP kaq_wal_pending_bytes Bytes of the write-ahead log not yet in the store.\n# TYPE kaq_wal_pending_bytes gauge\nkaq_wal_pending_bytes {}",
            self.wal_pending()
        );
        if let Some((bytes, rows)) = store {
            let _ = writeln!(
                o,
                "# HELP kaq_store_bytes Bytes of the store's live segments.\n# TYPE kaq_store_bytes gauge\nkaq_store_bytes {bytes}"
            );
            let _ = writeln!(
                o,
                "# HELP kaq_store_rows Rows in the store's live segments.\n# TYPE kaq_store_rows gauge\nkaq_store_rows {rows}"
            );
        }
        let all = self.latency.lock().expect("unpoisoned");
        let _ = writeln!(
            o,
            "# HELP kaq_request_duration_seconds Time to answer a request, by route.\n# TYPE kaq_request_duration_seconds histogram"
        );
        for h in all.iter() {
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(o, "kaq_request_duration_seconds_bucket{{route=\"{}\",le=\"{b}\"}} {c}", h.route);
            }
            let r = h.route;
            let _ = writeln!(o, "kaq_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(o, "kaq_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
            let _ = writeln!(o, "kaq_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
        }
        o
    }
}
