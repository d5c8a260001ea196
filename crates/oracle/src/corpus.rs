//! The real events tests run on (the shared corpus, when present, and the repository's
//! tests/data), and the queries of PRODUCT.md §4.

use std::path::{Path, PathBuf};

/// Every line that opens a JSON object in the corpus files (one event per line: pretty-printed
/// files are read by the CLI tests), with the directories looked in; empty when none is there.
pub fn lines() -> (String, Vec<PathBuf>) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = vec![here.join("../../../shared/corpus"), here.join("../../tests/data")];
    let mut text = String::new();
    for dir in &dirs {
        for f in walk(dir) {
            if let Ok(t) = std::fs::read_to_string(&f) {
                text.extend(t.lines().filter(|l| l.trim_start().starts_with('{')).map(|l| format!("{l}\n")));
            }
        }
    }
    (text, dirs)
}

/// The files under `dir` (sorted), leaving out notes (`.md`) and gzip files.
fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// The query lines of PRODUCT.md §4 (when the specification is there), and the same examples
/// again in case it is not.
pub fn product_examples() -> Vec<String> {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/PRODUCT.md");
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
