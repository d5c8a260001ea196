//! The shipped sample as lines, and what a store holds of them: shared by the follow tests
//! (`tests/follow.rs`) and the unit tests of `src/follow.rs` (included there by `#[path]`, so
//! it names the store as its parent module does: `super::Store`).

use std::io::Read;
use std::path::Path;

use super::Store;

/// The shipped sample's lines, each with its newline.
pub fn sample_lines() -> Vec<String> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample-audit.log.gz");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(sample).unwrap()).read_to_string(&mut text).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{l}\n")).collect()
}

/// (auditID, stage) of each line, sorted.
pub fn keys_of(lines: &[String]) -> Vec<String> {
    sorted_keys(lines, "auditID")
}

/// (auditID, stage) of each row of the store, sorted.
pub fn keys_in(store: &Path) -> Vec<String> {
    let s = Store::open(store).unwrap();
    let opts = kaq_query::Options { all_stages: true, ..Default::default() };
    let plan = kaq_query::compile("| table id, stage", &opts).unwrap();
    sorted_keys(&s.run(&plan, &Default::default()).unwrap().json_lines(), "id")
}

/// `"<id> <stage>"` of each JSON line, the ID under `id`, sorted.
fn sorted_keys(lines: &[String], id: &str) -> Vec<String> {
    let mut k: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {}", v[id].as_str().unwrap(), v["stage"].as_str().unwrap())
        })
        .collect();
    k.sort();
    k
}
