//! Converting to Parquet and back gives the input events, semantically equal, every field
//! included (redacted secret values aside).

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Converts `inputs` to Parquet, then the Parquet back to JSON lines; returns the events.
pub fn there_and_back(inputs: &[&Path], dir: &Path) -> Vec<Value> {
    there_and_back_with(inputs, dir, &[])
}

/// [`there_and_back`] with more arguments for the first conversion.
pub fn there_and_back_with(inputs: &[&Path], dir: &Path, extra: &[&str]) -> Vec<Value> {
    let pq = dir.join("out.parquet");
    let back = dir.join("back.jsonl");
    let mut args: Vec<&str> = vec!["convert"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["-o", pq.to_str().unwrap(), "-q"]);
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["convert", pq.to_str().unwrap(), "-o", back.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    read_jsonl(&back)
}

#[test]
fn corpus_events_round_trip() {
    let Some(shared) = shared("corpus") else { return };
    let c = shared.join("corpus");
    let inputs = [
        c.join("falco-trace-files"),
        c.join("audit2rbac/demo.log"),
        c.join("kube-audit-log-tool/single-event.json"),
        c.join("sysdig-aks-audit-log/sample_KubeAuditLog_event.json"),
        c.join("sysdig-stackdriver-bridge/k8s_audit_events"),
        c.join("elastic-integrations/kubernetes-audit_logs/test-audit.log"),
    ];
    let mut originals = Vec::new();
    for i in &inputs {
        let files: Vec<_> = if i.is_dir() {
            std::fs::read_dir(i).unwrap().map(|e| e.unwrap().path()).collect()
        } else {
            vec![i.clone()]
        };
        for f in files {
            originals.extend(reference_events(&f));
        }
    }
    let dir = tmp();
    let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    // Native Events only: the mixed elastic file's GKE entry and AKS record are for inputs.rs.
    let back = there_and_back_with(&refs, dir.path(), &["--input-format", "k8s"]);
    assert_eq!(back.len(), 118);
    assert_same_events(&originals, &back);
}

#[test]
fn tests_data_fixtures_round_trip() {
    let data = repo().join("tests/data");
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    let originals: Vec<Value> = files.iter().flat_map(|f| reference_events(f)).collect();
    let dir = tmp();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let back = there_and_back(&refs, dir.path());
    assert_same_events(&originals, &back);
}

#[test]
fn generated_log_with_stages_and_malformed_lines_round_trips() {
    let dir = tmp();
    let log = dir.path().join("messy.log");
    let Some(_) = gen_audit(&["--events", "20000", "--seed", "3", "--stages", "--malformed", "0.01"], &log) else {
        return;
    };
    let originals = reference_events(&log);
    let back = there_and_back(&[&log], dir.path());
    assert_same_events(&originals, &back);
    // The output is sorted by time, and equal times keep their input order (RequestReceived
    // before ResponseComplete of the same request).
    let times: Vec<&str> = back.iter().map(|e| e["requestReceivedTimestamp"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let mut last_stage = std::collections::HashMap::new();
    let rank =
        |s: &str| ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"].iter().position(|x| *x == s);
    for e in &back {
        let r = rank(e["stage"].as_str().unwrap());
        if let Some(prev) = last_stage.insert(e["auditID"].to_string(), r) {
            assert!(prev <= r, "stages of {} out of order", e["auditID"]);
        }
    }
}

/// An out-of-order log (rotated files read in the wrong order, long watches) still gives a
/// time-sorted file: the spill-and-merge path.
#[test]
fn shuffled_log_comes_out_sorted() {
    let dir = tmp();
    let log = dir.path().join("g.log");
    let Some(_) = gen_audit(&["--events", "150000", "--seed", "5"], &log) else { return };
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // Reverse the order of blocks of 10,000 lines: every run overlaps what was written.
    let blocks: Vec<Vec<&str>> = lines.chunks(10_000).map(|c| c.to_vec()).rev().collect();
    lines = blocks.concat();
    let shuffled = dir.path().join("shuffled.log");
    std::fs::write(&shuffled, lines.join("\n") + "\n").unwrap();
    let originals = reference_events(&shuffled);
    let back = there_and_back(&[&shuffled], dir.path());
    assert_same_events(&originals, &back);
    let times: Vec<&str> = back.iter().map(|e| e["requestReceivedTimestamp"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    // No temporary files are left beside the output.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with('.')), "{left:?}");
}

/// The API server writes an event when the request completes: a log in `stageTimestamp` order
/// (watches minutes late in `time`) still gives a time-sorted file.
#[test]
fn log_in_completion_order_comes_out_sorted() {
    let dir = tmp();
    let log = dir.path().join("g.log");
    let Some(_) = gen_audit(&["--events", "30000", "--seed", "6", "--hours", "2"], &log) else { return };
    let mut events = reference_events(&log);
    events.sort_by(|a, b| a["stageTimestamp"].as_str().cmp(&b["stageTimestamp"].as_str()));
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let staged = dir.path().join("staged.log");
    std::fs::write(&staged, lines.join("\n") + "\n").unwrap();
    let back = there_and_back(&[&staged], dir.path());
    assert_same_events(&events, &back);
    let times: Vec<&str> = back.iter().map(|e| e["requestReceivedTimestamp"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    let late = events
        .windows(2)
        .filter(|w| w[0]["requestReceivedTimestamp"].as_str() > w[1]["requestReceivedTimestamp"].as_str())
        .count();
    assert!(late > 100, "the input really was out of order ({late} inversions)");
}
