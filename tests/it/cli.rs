//! The command line: help, errors for bad usage, stdin, gzip, directories, pipes.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;

const EV: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"@ID@","stage":"ResponseComplete","verb":"delete","objectRef":{"resource":"pods","namespace":"prod","name":"web"},"requestReceivedTimestamp":"@T@","stageTimestamp":"@T@"}"#;

fn ev(id: &str, time: &str) -> String {
    EV.replace("@ID@", id).replace("@T@", time)
}

#[test]
fn help_teaches() {
    let o = run(&["convert", "--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for s in [
        "--out-dir",
        "--partition-by",
        "--rejects",
        "--strict",
        "--keep-secrets",
        "kaq convert audit.log -o audit.parquet",
    ] {
        assert!(out.contains(s), "{s} missing from help:\n{out}");
    }
    let o = run(&["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("convert"));
}

#[test]
fn usage_errors_are_clear() {
    let dir = tmp();
    let log = dir.path().join("a.log");
    std::fs::write(&log, ev("1", "2026-11-20T05:00:00.000000Z")).unwrap();
    let o = run(&["convert", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(stderr(&o).contains("--output"), "{}", stderr(&o));

    let o = run(&["convert", log.to_str().unwrap(), "-o", dir.path().join("x.csv").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown output type; name it .parquet"), "{}", stderr(&o));

    let o = run(&["convert", "/nonexistent/audit.log", "-o", dir.path().join("x.parquet").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/audit.log: No such file or directory"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));

    let o = convert(&log, &dir.path().join("y.parquet"), &["--partition-by", "hour"]);
    assert_eq!(o.status.code(), Some(2), "--partition-by needs --out-dir");
}

#[test]
fn stdin_gzip_and_event_lists() {
    let dir = tmp();
    // An EventList (the webhook backend's batch) on stdin, gzip-compressed.
    let list = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{},{}]}}"#,
        ev("1", "2026-11-20T05:00:01.000000Z"),
        ev("2", "2026-11-20T05:00:00.000000Z")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(list.as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    let out = dir.path().join("o.parquet");
    let mut child = kaq()
        .args(["convert", "-", "-o", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<String> = parquet_events(&out).iter().map(|e| e["auditID"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["2", "1"], "Parquet is sorted by time");
}

#[test]
fn pretty_printed_and_bom_files() {
    let dir = tmp();
    let f = dir.path().join("pretty.json");
    let v: serde_json::Value = serde_json::from_str(&ev("p", "2026-11-20T05:00:00.000000Z")).unwrap();
    let text = format!(
        "\u{feff}{}\n{}\n",
        serde_json::to_string_pretty(&v).unwrap(),
        serde_json::to_string_pretty(&v).unwrap()
    );
    std::fs::write(&f, text).unwrap();
    let out = dir.path().join("o.jsonl");
    let o = run(&["convert", f.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_jsonl(&out), vec![v.clone(), v]);
}

#[test]
fn directories_read_rotations_oldest_first() {
    let dir = tmp();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let write_gz = |name: &str, body: String| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body.as_bytes()).unwrap();
        std::fs::write(logs.join(name), gz.finish().unwrap()).unwrap();
    };
    // Same time everywhere: the output order is the reading order (a stable sort).
    let t = "2026-11-20T05:00:00.000000Z";
    write_gz("audit-2026-11-20T10-00-00.000.log.gz", ev("second", t) + "\n");
    write_gz("audit-2026-11-19T22-00-00.000.log.gz", ev("first", t) + "\n");
    std::fs::write(logs.join("audit.log"), ev("third", t) + "\n").unwrap();
    std::fs::write(logs.join("README.md"), "# not a log\n").unwrap();
    let out = dir.path().join("o.jsonl");
    let o = run(&["convert", logs.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<String> = read_jsonl(&out).iter().map(|e| e["auditID"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["first", "second", "third"]);
    assert!(stderr(&o).contains("README.md"), "the skipped file is named");
}

#[test]
fn closed_pipe_is_not_an_error() {
    let dir = tmp();
    let log = dir.path().join("a.log");
    let text: String = (0..20_000).map(|i| ev(&i.to_string(), "2026-11-20T05:00:00.000000Z") + "\n").collect();
    std::fs::write(&log, text).unwrap();
    let mut child = kaq()
        .args(["convert", log.to_str().unwrap(), "-o", "-", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout); // like `| head -c 100`
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn json_lines_output_can_be_gzipped() {
    let dir = tmp();
    let log = dir.path().join("a.log");
    std::fs::write(&log, ev("1", "2026-11-20T05:00:00.000000Z")).unwrap();
    let out = dir.path().join("o.jsonl.gz");
    let o = run(&["convert", log.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()), &mut text)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(text.trim()).unwrap(),
        serde_json::from_str::<serde_json::Value>(&ev("1", "2026-11-20T05:00:00.000000Z")).unwrap()
    );
}
