//! Planning and running kaq queries over audit logs and kaq Parquet files.
//!
//! Roles:
//! - [`compile`]: query text → [`Plan`] (parse with kaq-syntax, then resolve fields against the
//!   catalogue, type the values, expand `@name`s); errors are [`kaq_syntax::Diagnostic`]s with
//!   spans.
//! - [`scan`](scan::scan): reads inputs on all cores, tests each event on the decode threads (after
//!   a byte prefilter where the query has a literal), keeps the latest stage of each request.
//! - [`scan_counting`](scan::scan_counting): the same, running a first step that only counts
//!   (`count by …`, `timeline`) as the events are read, without a row per matching event, and a
//!   first step `stats`, `top` or `rare` as the rows kept are settled, without holding them.
//! - [`pipeline::run`]: the stages after the search (`where`, `table`, `sort`, `head`, `count`,
//!   `stats`, `top`, `rare`, `timeline`, `dedup`) over the rows found.
//! - [`output`]: rows as JSON lines or CSV; [`arrow`]: rows as Arrow record batches.
//!
//! ```
//! use kaq_query::{compile, Options, run_on_text};
//!
//! let log = r#"{"auditID":"1","stage":"ResponseComplete","verb":"delete","objectRef":{"resource":"deployments","namespace":"prod","name":"payments"},"user":{"username":"alice"},"responseStatus":{"code":200}}
//! {"auditID":"2","stage":"ResponseComplete","verb":"get","objectRef":{"resource":"pods","namespace":"prod"},"user":{"username":"bob"},"responseStatus":{"code":200}}"#;
//! let plan = compile("verb:delete ns:prod* | table user, name", &Options::default()).unwrap();
//! let rows = run_on_text(&plan, log);
//! assert_eq!(kaq_query::output::json_line(&rows[0], plan.output_columns()), r#"{"user":"alice","name":"payments"}"#);
//!
//! let err = compile("usr:alice", &Options::default()).unwrap_err();
//! assert_eq!(err[0].hints, ["did you mean `user`?"]);
//! ```

pub mod arrow;
pub mod columnar;
mod counting;
pub mod eval;
mod explain;
pub mod extract;
pub mod latest;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod prefilter;
pub mod scan;
pub mod spill;
pub mod value;

pub use explain::explain;
pub use pipeline::Row;
pub use plan::{
    Column, KnownValues, Options, Plan, SeenValues, Warning, WarningKind, compile, query_warnings, time_warning,
    vocabulary_slots,
};
pub use value::Val;

/// [`run_on_text`] for several plans at once: each line is decoded once (with every field any
/// of the plans reads) and tested by every plan; no prefilter. The rows of each plan, in order.
/// For a live detection's rules over the records of the new requests.
pub fn run_many_on_text(plans: &[Plan], text: &str) -> Vec<Vec<Row>> {
    use kaq_input::EventHandler;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // Which auditIDs several requests carry, once for every plan that reads `id_reused`.
    let reused = plans.iter().any(Plan::needs_reused_ids).then(|| {
        let mut ids = scan::Identities::default();
        let opts = kaq_schema::DecodeOptions { fields: kaq_schema::Fields::BASE, ..Default::default() };
        for line in &lines {
            kaq_schema::decode_records_with_text(line, &opts, &mut |r| {
                if let Ok((ev, _)) = r {
                    ids.add(&ev);
                }
            });
        }
        std::sync::Arc::new(ids.reused())
    });
    let plans: Vec<Plan> = plans
        .iter()
        .map(|p| if p.needs_reused_ids() { Plan { reused_ids: reused.clone(), ..p.clone() } } else { p.clone() })
        .collect();
    let handlers: Vec<scan::Scan<'_>> = plans.iter().map(|p| scan::Scan::new(p, false)).collect();
    let fields = handlers.iter().fold(kaq_schema::Fields::BASE, |f, h| f.with(h.fields()));
    let mut found: Vec<_> = handlers.iter().map(|h| h.start()).collect();
    let opts = kaq_schema::DecodeOptions { fields, ..Default::default() };
    for line in &lines {
        kaq_schema::decode_records_with_text(line, &opts, &mut |r| {
            if let Ok((ev, t)) = r {
                for (h, f) in handlers.iter().zip(found.iter_mut()) {
                    h.event_with_text(f, &ev, t);
                }
            }
        });
    }
    plans
        .iter()
        .zip(found)
        .map(|(plan, f)| {
            let rows = scan::finish_one(f, plan.all_stages).expect("no line skipped, no rescan");
            pipeline::run(&plan.steps.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), rows)
        })
        .collect()
}

/// Runs `plan` over native audit JSON lines in memory (single-threaded; for tests, examples and
/// embedding small inputs): every line goes through the prefilter as a native Event's would. Lines
/// that are not events are ignored. Files, directories and cloud exports go through [`scan::scan`].
pub fn run_on_text(plan: &Plan, text: &str) -> Vec<Row> {
    use kaq_input::EventHandler;
    let run = |handler: &scan::Scan<'_>| {
        let mut found = handler.start();
        let opts = kaq_schema::DecodeOptions { fields: handler.fields(), ..Default::default() };
        for line in text.lines() {
            if line.trim().is_empty() || handler.skip(&mut found, line.as_bytes()) {
                continue;
            }
            kaq_schema::decode_records_with_text(line, &opts, &mut |r| {
                if let Ok((ev, t)) = r {
                    handler.event_with_text(&mut found, &ev, t);
                }
            });
        }
        scan::finish_one(found, plan.all_stages)
    };
    let with_reused;
    let plan = if plan.needs_reused_ids() {
        let mut ids = scan::Identities::default();
        let opts = kaq_schema::DecodeOptions { fields: kaq_schema::Fields::BASE, ..Default::default() };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            kaq_schema::decode_records_with_text(line, &opts, &mut |r| {
                if let Ok((ev, _)) = r {
                    ids.add(&ev);
                }
            });
        }
        with_reused = Plan { reused_ids: Some(std::sync::Arc::new(ids.reused())), ..plan.clone() };
        &with_reused
    } else {
        plan
    };
    let handler = scan::Scan::new(plan, false);
    let rows = run(&handler).or_else(|_| run(&handler.without_prefilter())).expect("no prefilter, no rescan");
    pipeline::run(&plan.steps.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), rows)
}
