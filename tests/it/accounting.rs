//! Bad input never aborts a batch and is never silently dropped: every line is converted,
//! rejected or counted as blank, and the totals add up.

use std::io::Write;

use crate::common::*;

/// Parses the summary line: (events, rejected, blank).
fn summary(stderr: &str) -> (u64, u64, u64) {
    let line = stderr.lines().find(|l| l.starts_with("kaq: converted")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("empty lines"), "{line}");
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit() && c != ',')
        .filter(|s| !s.is_empty() && s.chars().any(|c| c.is_ascii_digit()))
        .take(3)
        .map(|s| s.replace(',', "").parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

#[test]
fn malformed_generated_log_is_fully_accounted_for() {
    let dir = tmp();
    let log = dir.path().join("messy.log");
    let Some(gen_summary) = gen_audit(&["--events", "20000", "--seed", "11", "--stages", "--malformed", "0.02"], &log)
    else {
        return;
    };
    let (lines, corrupted) = gen_counts(&gen_summary);
    assert!(corrupted > 100, "{gen_summary}");
    let rejects = dir.path().join("rejects.jsonl");
    let o = convert(&log, &dir.path().join("o.parquet"), &["--rejects", rejects.to_str().unwrap()]);
    assert!(o.status.success(), "no --strict: exit 0");
    let (events, rejected, blank) = summary(&stderr(&o));
    assert_eq!(events + rejected + blank, lines, "every line accounted for");
    assert_eq!(rejected + blank, corrupted, "exactly the corrupted lines are set aside");
    assert_eq!(events, reference_events(&log).len() as u64);
    let kept = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(kept.lines().count() as u64, rejected, "every reject is in the rejects file");
    let err = stderr(&o);
    assert_eq!(err.lines().filter(|l| l.starts_with("kaq: rejected ")).count(), 10, "the first 10 on stderr");
    assert!(err.contains(&format!("and {} more rejected", rejected - 10)), "{err}");

    // --strict turns rejects into a failing exit status, after writing everything.
    let o = run(&["convert", log.to_str().unwrap(), "-o", dir.path().join("s.parquet").to_str().unwrap(), "--strict"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(dir.path().join("s.parquet").exists());
}

#[test]
fn each_kind_of_bad_line_has_its_reason() {
    let dir = tmp();
    let log = dir.path().join("bad.log");
    let good = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"g1","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z"}"#;
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(f, "{good}").unwrap(); // 1
    writeln!(f).unwrap(); // 2 blank
    writeln!(f, "I1126 10:00:00.000000 1 trace.go:236] not an audit event").unwrap(); // 3
    writeln!(f, r#"{{"kind":"Event","auditID":"x","verb":7}}"#).unwrap(); // 4
    writeln!(f, r#"{{"kind":"Event","auditID":"x","requestReceivedTimestamp":"yesterday"}}"#).unwrap(); // 5
    writeln!(f, r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"t"#).unwrap(); // 6 truncated
    f.write_all(b"{\"kind\":\"Event\",\"auditID\":\"\xff\"}\n").unwrap(); // 7 invalid UTF-8
    writeln!(f, r#"{{"kind":"Pod","metadata":{{}}}}"#).unwrap(); // 8
    writeln!(f, r#"{{"kind":"Event","auditID":"x","user":{{"groups":"admins"}}}}"#).unwrap(); // 9
    write!(f, "{good}").unwrap(); // 10, no final newline
    drop(f);
    let o = run(&["convert", log.to_str().unwrap(), "-o", dir.path().join("o.parquet").to_str().unwrap()]);
    let err = stderr(&o);
    let name = log.display().to_string();
    for (line, reason) in [
        (3, "invalid JSON: expected value at column 1"),
        (4, "`verb`: invalid type: integer `7`, expected a string at column"),
        (5, "`requestReceivedTimestamp`: not an RFC 3339 timestamp: \"yesterday\""),
        (6, "invalid JSON: EOF while parsing a string"),
        (7, "invalid UTF-8 at byte 27"),
        (8, "not an audit Event: kind is `Pod`"),
        (9, "`user.groups`: invalid type: string \"admins\", expected a sequence"),
    ] {
        let want = format!("kaq: rejected {name}:{line}: {reason}");
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert_eq!(summary(&err), (2, 7, 1));
}

#[test]
fn truncated_gzip_keeps_what_came_before_and_says_so() {
    let dir = tmp();
    let full = dir.path().join("a.log.gz");
    let Some(summary_text) = gen_audit(&["--events", "3000", "--seed", "2"], &full) else { return };
    let (lines, _) = gen_counts(&summary_text);
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.log.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["convert", cut.to_str().unwrap(), "-o", dir.path().join("o.parquet").to_str().unwrap()]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains("the input broke off (") && err.contains("everything before the break was read"), "{err}");
    let (events, rejected, _) = summary(&err);
    assert!(events > lines / 4 && events < lines, "kept the part before the break: {events} of {lines}");
    assert!(rejected <= 1, "at most the partial line");
    assert_eq!(parquet_events(&dir.path().join("o.parquet")).len() as u64, events);
    let o = run(&["convert", cut.to_str().unwrap(), "-o", dir.path().join("p.parquet").to_str().unwrap(), "--strict"]);
    assert_eq!(o.status.code(), Some(1), "a broken input fails --strict");
}

#[test]
fn lists_are_accounted_item_by_item() {
    let dir = tmp();
    let log = dir.path().join("l.log");
    let lines = [
        r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"a"},{"auditID":7},{"auditID":"c"}]}"#,
        r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}"#,
        r#"[]"#,
        r#"[{"auditID":"d"},"not an event"]"#,
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let rejects = dir.path().join("rej.jsonl");
    let o = convert(&log, &dir.path().join("o.parquet"), &["--rejects", rejects.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(summary(&err), (3, 2, 2), "{err}");
    assert!(err.contains(":1: EventList item 1: `auditID`: invalid type: integer `7`"), "{err}");
    assert!(err.contains(":4: array element 1: invalid type: string \"not an event\""), "{err}");
    // Only the failing items go to the rejects file: feeding it back adds no duplicates.
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), "{\"auditID\":7}\n\"not an event\"\n");
}

/// A first line that is garbage must not make the reader wait for the whole input.
#[test]
fn a_bad_first_line_does_not_change_the_framing() {
    let dir = tmp();
    let log = dir.path().join("b.log");
    let good = r#"{"kind":"Event","auditID":"g","requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z"}"#;
    std::fs::write(&log, format!("{{\"kind\":\"Event\",\"audit\n{good}\n{good}\n")).unwrap();
    let o = run(&["convert", log.to_str().unwrap(), "-o", dir.path().join("o.parquet").to_str().unwrap()]);
    assert_eq!(summary(&stderr(&o)), (2, 1, 0), "{}", stderr(&o));
}
