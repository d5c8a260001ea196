//! What the store's tests over generated logs share: gen-audit (skipped with a printed reason
//! when absent) and the raw scan's answer as JSON, compared without regard to row order.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

pub const NOW: i64 = 1_795_154_400_000_000; // 2026-11-20T06:00:00Z

/// ../shared/tools/gen-audit; `None`, saying why, when it is not there.
pub fn gen_audit() -> Option<PathBuf> {
    let gen_audit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gen-audit");
    if !gen_audit.exists() {
        println!("SKIPPED: {} not found (the test needs ../shared/tools/gen-audit)", gen_audit.display());
        return None;
    }
    Some(gen_audit)
}

pub fn json_rows(rows: &[kaq_query::Row], columns: &[kaq_query::Column]) -> Vec<Value> {
    rows.iter().map(|r| serde_json::from_str(&kaq_query::output::json_line(r, columns)).unwrap()).collect()
}

/// The raw scan's answer over `log`.
pub fn raw(plan: &kaq_query::Plan, log: &Path) -> Vec<Value> {
    let scanned = kaq_query::scan::scan(plan, &[log.to_path_buf()], &Default::default(), 0, &mut |_| {}).unwrap();
    let steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
    json_rows(&kaq_query::pipeline::run(&steps, scanned.rows), plan.output_columns())
}

pub fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_cached_key(|x| x.to_string());
    v
}

/// The same rows, in any order.
pub fn assert_same(what: &str, got: &[Value], want: &[Value]) {
    let (got, want) = (sorted(got.to_vec()), sorted(want.to_vec()));
    assert_eq!(got.len(), want.len(), "{what}: {} rows, the reference {}", got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(kaq_oracle::same_json(g, w), "{what}: {g} vs {w}");
    }
}
