//! `--out-dir` writes Hive partitions: every row in the partition of its time, each file sorted.

use crate::common::*;

#[test]
fn hourly_partitions_hold_their_hours() {
    let dir = tmp();
    let log = dir.path().join("g.log");
    let Some(_) = gen_audit(&["--events", "20000", "--seed", "4", "--hours", "5", "--stages"], &log) else { return };
    let out = dir.path().join("archive");
    let o =
        run(&["convert", log.to_str().unwrap(), "--out-dir", out.to_str().unwrap(), "--partition-by", "hour", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut files = Vec::new();
    collect_parquet(&out, &mut files);
    assert!(files.len() >= 5, "{files:?}");
    let mut total = 0;
    for f in &files {
        let rel = f.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
        let events = parquet_events(f);
        assert!(!events.is_empty());
        let times: Vec<&str> = events.iter().map(|e| e["requestReceivedTimestamp"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{rel} not sorted");
        for t in times {
            // 2026-11-20T05:… → date=2026-11-20/hour=05/part-0.parquet
            let want = format!("date={}/hour={}/", &t[..10], &t[11..13]);
            assert!(rel.starts_with(&want), "{t} in {rel}");
        }
        total += events.len();
    }
    assert_eq!(total, reference_events(&log).len());

    // A second run into the same directory is refused unless --append.
    let o = run(&["convert", log.to_str().unwrap(), "--out-dir", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not empty (use --append"), "{}", stderr(&o));
    let o = run(&[
        "convert",
        log.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--partition-by",
        "hour",
        "--append",
        "-q",
    ]);
    assert!(o.status.success());
    let mut again = Vec::new();
    collect_parquet(&out, &mut again);
    assert_eq!(again.len(), files.len() * 2, "appended files beside, none overwritten");
    assert!(again.iter().any(|p| p.ends_with("part-1.parquet")));
}

#[test]
fn daily_partitions_and_rows_without_time() {
    let dir = tmp();
    let log = dir.path().join("t.log");
    std::fs::write(
        &log,
        [
            r#"{"auditID":"a","requestReceivedTimestamp":"2026-11-20T23:59:59.999999Z"}"#,
            r#"{"auditID":"b","requestReceivedTimestamp":"2026-11-21T00:00:00.000000Z"}"#,
            r#"{"auditID":"c"}"#,
            r#"{"auditID":"d","timestamp":"2026-11-19T10:00:00Z"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = dir.path().join("d");
    let o = run(&["convert", log.to_str().unwrap(), "--out-dir", out.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = |p: &str| -> Vec<String> {
        parquet_events(&out.join(p)).iter().map(|e| e["auditID"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("date=2026-11-20"), ["a"]);
    assert_eq!(ids("date=2026-11-21"), ["b"]);
    assert_eq!(ids("date=__HIVE_DEFAULT_PARTITION__"), ["c"]);
    // v1beta1's `timestamp` places an event without requestReceivedTimestamp, and converting
    // back does not invent one.
    let d = parquet_events(&out.join("date=2026-11-19"));
    assert_eq!(d[0], serde_json::json!({"auditID":"d","timestamp":"2026-11-19T10:00:00Z"}));
}
