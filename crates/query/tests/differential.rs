//! The fast path (planner, prefilter, scan, stages) against the reference evaluator (kaq-oracle):
//! random queries over random events, and every PRODUCT.md example over the real corpus.

use kaq_oracle::Answer;
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
    let want: Vec<Value> = match kaq_oracle::run(query, &events, &kaq_oracle::Options { now_us: NOW, all_stages }) {
        Answer::Events(e) => e,
        Answer::Rows(rows) => rows.into_iter().map(|r| Value::Object(r.into_iter().collect())).collect(),
    };
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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let mut text = String::new();
    for dir in [&root, &data] {
        for f in walk(dir) {
            if let Ok(t) = std::fs::read_to_string(&f) {
                // One event per line: the pretty-printed corpus files are read by the CLI tests.
                text.extend(t.lines().filter(|l| l.trim_start().starts_with('{')).map(|l| format!("{l}\n")));
            }
        }
    }
    if text.is_empty() {
        println!("SKIPPED: no corpus at {} and no tests/data", root.display());
        return;
    }
    let examples =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grammar/examples/valid"))
            .map(|_| ())
            .ok();
    let _ = examples;
    for q in product_examples() {
        check(&q, &text, false);
        check(&q, &text, true);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_none_or(|e| e != "md" && e != "gz") {
            out.push(p);
        }
    }
    out
}

/// The query lines of PRODUCT.md §4 (from the grammar's valid examples, which hold each of them).
fn product_examples() -> Vec<String> {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/PRODUCT.md");
    let text = std::fs::read_to_string(spec).unwrap_or_default();
    let mut out: Vec<String> = match text.split_once("These forms must work") {
        Some((_, rest)) => rest
            .split("```")
            .nth(1)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    out.extend(
        [
            "verb:delete ns:prod*",
            "code:401 | count by ip | where count > 20 | sort -count",
            "resource:secrets verb:(get OR list) -user_kind:node | stats count, dc(name) as secrets by user, ip",
            "latency>1s | stats count, p50(latency), p99(latency), max(latency) by verb, resource",
            "\"is forbidden\" | timeline 5m",
            "as:* | table time, user, as, verb, resource, name",
            "code>=400 NOT user:system:* | top 10 user",
        ]
        .map(str::to_string),
    );
    out
}
