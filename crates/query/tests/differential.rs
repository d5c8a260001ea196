//! The fast path (planner, prefilter, scan, stages) against the reference evaluator (kaq-oracle):
//! random queries over random events, and every PRODUCT.md example over the real corpus.

use kaq_oracle::arb::{NOW, event, query};
use kaq_query::{Options, compile, output, run_on_text};
use proptest::prelude::*;
use serde_json::Value;

/// Runs `query` both ways over `text` and asserts the answers are equal.
fn check(query: &str, text: &str, all_stages: bool) {
    let opts = Options { now_us: NOW, all_stages, ..Options::default() };
    let plan = compile(query, &opts).unwrap_or_else(|e| panic!("`{query}` does not compile: {}", e[0].render(query)));
    let rows = run_on_text(&plan, text);
    let fast: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&output::json_line(r, plan.output_columns())).expect("output is JSON"))
        .collect();
    let events = kaq_oracle::events_of(text);
    let want = kaq_oracle::answer(query, &events, &kaq_oracle::Options { now_us: NOW, all_stages });
    if plan.whole_events {
        // Events print as read; the oracle gives them as parsed JSON.
        assert_eq!(fast, want, "`{query}`: events differ");
    } else {
        assert_eq!(fast.len(), want.len(), "`{query}`: row counts differ\nfast: {fast:?}\noracle: {want:?}");
        for (f, w) in fast.iter().zip(&want) {
            assert!(kaq_oracle::same_json(f, w), "`{query}`: rows differ\nfast:   {f}\noracle: {w}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Random queries over random events: the same answer as the oracle, latest stages or all.
    #[test]
    fn fast_path_equals_oracle(q in query(), events in proptest::collection::vec(event(), 0..60), all in any::<bool>()) {
        let text: String = events.iter().map(|e| format!("{e}\n")).collect();
        check(&q, &text, all);
    }
}

/// The PRODUCT.md §4 examples (and more) over every real corpus file.
#[test]
fn examples_over_the_corpus_equal_the_oracle() {
    let (text, dirs) = kaq_oracle::corpus::lines();
    if text.is_empty() {
        println!("SKIPPED: no corpus in {dirs:?}");
        return;
    }
    for q in kaq_oracle::corpus::product_examples() {
        check(&q, &text, false);
        check(&q, &text, true);
    }
}
