//! A second opinion on the Parquet output: DuckDB (through tests/python/crosscheck.py) reads it
//! and must give the answers a plain evaluation of the raw JSON gives. Runs when KAQ_PYTHON names
//! a Python with duckdb (`.ci/run` sets it up with scripts/pyenv.sh); skips otherwise.

use std::process::Command;

use crate::common::*;

fn python() -> Option<String> {
    match std::env::var("KAQ_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            skip("KAQ_PYTHON is not set (run `export KAQ_PYTHON=$(scripts/pyenv.sh | tail -n1)`)");
            None
        }
    }
}

fn crosscheck(py: &str, args: &[&str]) {
    let script = repo().join("tests/python/crosscheck.py");
    let o = Command::new(py).arg(&script).args(args).output().expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "crosscheck failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn duckdb_reads_the_same_answers() {
    let Some(py) = python() else { return };
    let dir = tmp();
    let log = dir.path().join("g.log");
    let Some(_) = gen_audit(&["--events", "30000", "--seed", "8", "--stages", "--malformed", "0.01"], &log) else {
        return;
    };
    let pq = dir.path().join("o.parquet");
    let o = run(&["convert", log.to_str().unwrap(), "-o", pq.to_str().unwrap(), "-q"]);
    assert!(o.status.success());
    crosscheck(&py, &[log.to_str().unwrap(), pq.to_str().unwrap()]);

    let hive = dir.path().join("hive");
    let o =
        run(&["convert", log.to_str().unwrap(), "--out-dir", hive.to_str().unwrap(), "--partition-by", "hour", "-q"]);
    assert!(o.status.success());
    crosscheck(&py, &[log.to_str().unwrap(), hive.to_str().unwrap(), "--hive"]);
}
