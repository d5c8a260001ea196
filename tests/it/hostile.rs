//! Hostile input and surprises (issue 13): log text that would drive a terminal or a spreadsheet,
//! retention that must delete, files that must be private, output published all or nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;

/// An event whose strings are given; `code` may be negative (a number that must stay one).
fn event(i: u32, user: &str, ua: &str, name: &str, code: i64) -> String {
    event_at(i, user, ua, name, code, &format!("2026-11-20T05:00:{:02}.000000Z", i % 60))
}

fn event_at(i: u32, user: &str, ua: &str, name: &str, code: i64, t: &str) -> String {
    json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":format!("id-{i}"),
        "stage":"ResponseComplete","verb":"get","user":{"username":user},"userAgent":ua,
        "objectRef":{"resource":"pods","namespace":"prod","name":name},"responseStatus":{"code":code},
        "requestReceivedTimestamp":t,"stageTimestamp":t})
    .to_string()
}

/// Escape sequences a terminal runs (window title, OSC 52 clipboard write, CSI as one C1
/// character, DEL) and a right-to-left override, in three fields.
fn hostile_log(dir: &Path) -> std::path::PathBuf {
    let lines = [
        event(1, "\x1b]0;pwned\x07", "\x1b]52;c;cHduZWQ=\x07", "invoice\u{202e}fdp.exe", 200),
        event(2, "mallory", "\u{9b}2J\x7f", "\x1b[2Jweb", 403),
    ];
    let p = dir.join("hostile.log");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// Characters that must never reach a terminal raw.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            matches!(c, '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

#[test]
fn table_and_repl_show_escape_sequences_instead_of_running_them() {
    let dir = tmp();
    let log = hostile_log(dir.path());
    let l = log.to_str().unwrap();
    let o = run(&["query", "verb:get | table user, ua, name", l, "--format", "table"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(raw_controls(&out), Vec::<char>::new(), "{out}");
    for shown in [r"\x1b]0;pwned\x07", r"\x1b]52;c;cHduZWQ=\x07", r"invoice\u202efdp.exe", r"\x9b2J\x7f", r"\x1b[2Jweb"]
    {
        assert!(out.contains(shown), "{shown} not in\n{out}");
    }

    // The REPL's table (stdin mode draws the same tables) and its CSV.
    let o = with_stdin(
        kaq().args(["repl", l]).env("KAQ_HISTORY", dir.path().join("h/history")),
        b".format table\nverb:get | table user, ua, name\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(raw_controls(&out), Vec::<char>::new(), "{out}");
    assert!(out.contains(r"\x1b]0;pwned\x07") && out.contains(r"invoice\u202efdp.exe"), "{out}");
}

#[test]
fn json_output_escapes_what_serde_leaves_raw_and_stays_equal() {
    let dir = tmp();
    // Written raw in the input (JSON allows DEL, C1 and bidi characters unescaped in strings).
    let line = event(1, "eve", "x", "name", 200).replace("\"x\"", "\"\u{9b}2J\u{202e}\x7f\"");
    let log = dir.path().join("raw.log");
    std::fs::write(&log, format!("{line}\n")).unwrap();
    for q in ["verb:get", "verb:get | table ua"] {
        let o = run(&["query", q, log.to_str().unwrap(), "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert_eq!(raw_controls(&out), Vec::<char>::new(), "`{q}`: {out}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        let ua = if q == "verb:get" { &v["userAgent"] } else { &v["ua"] };
        assert_eq!(ua, "\u{9b}2J\u{202e}\x7f", "`{q}`: the same string, escaped");
    }
}

#[test]
fn reject_messages_show_file_names_and_reasons_escaped() {
    let dir = tmp();
    // A file name with an escape sequence and a newline; a kind with an escape in it.
    let log = dir.path().join("bad\x1b]0;t\x07\nx.log");
    std::fs::write(&log, "{\"kind\":\"Ev\\u001b[2Jnt\",\"auditID\":\"x\"}\n{\"verb\":1}\n").unwrap();
    let rejects = dir.path().join("rejects.txt");
    for args in [
        vec!["query", "", log.to_str().unwrap()],
        vec!["convert", log.to_str().unwrap(), "-o", "-", "--rejects", rejects.to_str().unwrap()],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(raw_controls(&err), Vec::<char>::new(), "{err}");
        let name = r"bad\x1b]0;t\x07\nx.log";
        assert!(err.contains(&format!("{name}:1: not an audit Event: kind is `Ev\\x1b[2Jnt`")), "{err}");
        assert!(err.contains(&format!("{name}:2: `verb`")), "{err}");
        // One line per reject: the newline in the name is shown, not printed.
        assert_eq!(err.lines().filter(|l| l.starts_with("kaq: rejected")).count(), 2, "{err}");
    }
    // An error naming a file is shown the same way.
    let missing = dir.path().join("gone\x1b]0;t\x07.log");
    let out = dir.path().join("out.parquet");
    let o = run(&["convert", missing.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(r"gone\x1b]0;t\x07.log"), "{}", stderr(&o));
    assert_eq!(raw_controls(&stderr(&o)), Vec::<char>::new(), "{}", stderr(&o));
}

#[test]
fn csv_cells_that_a_spreadsheet_would_run_get_a_quote_unless_csv_raw() {
    let dir = tmp();
    let users = [
        "=HYPERLINK(\"http://evil\",\"x\")",
        "+cmd|' /C calc'!A0",
        "@SUM(1)",
        "-x",
        "\tx",
        "\rx",
        "-5",
        "-0.5",
        "alice",
    ];
    let lines: Vec<String> = users.iter().enumerate().map(|(i, u)| event(i as u32, u, "kubectl", "web", -5)).collect();
    let log = dir.path().join("f.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let read = |extra: &[&str]| -> Vec<(String, String)> {
        let out = dir.path().join("out.csv");
        let mut args = vec!["query", "verb:get | sort time | table user, code", log.to_str().unwrap(), "-o"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        // A reader of RFC 4180 CSV (quotes, doubled quotes, quoted newlines).
        let text = std::fs::read_to_string(&out).unwrap();
        let (mut rows, mut row, mut cell, mut quoted, mut chars) =
            (Vec::new(), Vec::new(), String::new(), false, text.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => row.push(std::mem::take(&mut cell)),
                ('\n', false) => {
                    row.push(std::mem::take(&mut cell));
                    rows.push(std::mem::take(&mut row));
                }
                (c, _) => cell.push(c),
            }
        }
        assert_eq!(rows[0], ["user", "code"]);
        rows[1..].iter().map(|r| (r[0].clone(), r[1].clone())).collect()
    };
    let guarded = read(&[]);
    let want: Vec<(String, String)> = users
        .iter()
        .map(|u| {
            let formula = u.starts_with(['=', '+', '-', '@', '\t', '\r']) && u.parse::<f64>().is_err();
            (if formula { format!("'{u}") } else { u.to_string() }, "-5".to_string())
        })
        .collect();
    assert_eq!(guarded, want);
    assert_eq!(guarded[6], ("-5".into(), "-5".into()), "numbers stay numbers, as text or not");
    let raw = read(&["--csv-raw"]);
    assert_eq!(raw, users.iter().map(|u| (u.to_string(), "-5".to_string())).collect::<Vec<_>>());
}

/// The mode bits of a path.
fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Names under a store's `segments/`, and the ones its manifest names.
fn segment_files(store: &Path) -> (Vec<String>, Vec<String>) {
    let mut on_disk: Vec<String> = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let m: Value = serde_json::from_str(&std::fs::read_to_string(store.join("MANIFEST.json")).unwrap()).unwrap();
    let mut named: Vec<String> = m["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| [s["file"].as_str().unwrap().to_string(), s["index"].as_str().unwrap().to_string()])
        .collect();
    named.sort();
    (on_disk, named)
}

#[test]
fn prune_deletes_the_dropped_segments_and_says_what_it_freed() {
    let dir = tmp();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let mut inputs = Vec::new();
    for day in [18, 19, 20] {
        let lines: Vec<String> = (0..50)
            .map(|i| event_at(i, "alice", "kubectl", "web", 200, &format!("2026-11-{day}T05:00:{i:02}.000000Z")))
            .collect();
        let p = dir.path().join(format!("day-{day}.log"));
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        inputs.push(p);
    }
    for p in &inputs {
        let o = run(&["ingest", p.to_str().unwrap(), "--store", s]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (before, _) = segment_files(&store);
    assert_eq!(before.len(), 6, "{before:?}");
    let dropped: u64 = before
        .iter()
        .filter(|n| n.starts_with("seg-000001") || n.starts_with("seg-000002"))
        .map(|n| {
            let p = store.join("segments").join(n);
            if p.is_dir() {
                std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
            } else {
                std::fs::metadata(&p).unwrap().len()
            }
        })
        .sum();
    let o = run(&["prune", "--before", "2026-11-20", "--store", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (on_disk, named) = segment_files(&store);
    assert_eq!(on_disk, named, "the dropped segments' files are gone");
    assert_eq!(named.len(), 2);
    let err = stderr(&o);
    let freed = format!("deleted 2 segments ({})", human_bytes(dropped));
    assert!(err.contains("pruned 100 events") && err.contains(&freed), "{freed} not in {err}");
    // `kaq info` and the disk agree.
    let info = String::from_utf8(run(&["info", "--store", s]).stdout).unwrap();
    assert!(info.contains("records:   50 (") && info.contains("segments:  1 ("), "{info}");
}

/// Bytes as kaq's summaries show them (1000-based units, one decimal).
fn human_bytes(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB"];
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[u]) }
}

/// Every file under `dir`, relative, sorted (hidden ones too).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_failed_partitioned_convert_publishes_nothing() {
    let dir = tmp();
    // 70 hours: more hourly partitions than files kept open (64), so some are closed early.
    let lines: Vec<String> = (0..70)
        .map(|h| {
            let t = format!("2026-11-{:02}T{:02}:00:00.000000Z", 20 + h / 24, h % 24);
            event_at(h, "alice", "kubectl", "web", 200, &t)
        })
        .collect();
    let log = dir.path().join("a.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    // A Parquet input that cannot be read, after the log: the run fails at the end.
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1 not really parquet").unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "convert",
        log.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--partition-by",
        "hour",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!out.exists() || tree(&out).is_empty(), "a failed run left {:?}", tree(&out));
    assert!(!out.exists(), "the directories it made are removed too");

    // The same without the bad input: every partition, once.
    let o = run(&["convert", log.to_str().unwrap(), "--out-dir", out.to_str().unwrap(), "--partition-by", "hour"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = tree(&out);
    assert_eq!(files.len(), 70, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with("/part-0.parquet")), "{files:?}");
    // A failed --append leaves what was there as it was.
    let o = run(&[
        "convert",
        log.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--partition-by",
        "hour",
        "--append",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(tree(&out), files);
}

#[test]
fn rejects_files_saved_searches_and_new_stores_are_private() {
    let dir = tmp();
    let log = dir.path().join("a.log");
    std::fs::write(&log, event(1, "alice", "kubectl", "web", 200) + "\nnot json\n").unwrap();
    let rejects = dir.path().join("rejects.txt");
    let o = run(&["convert", log.to_str().unwrap(), "-o", "-", "--rejects", rejects.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), "not json\n");
    assert_eq!(mode(&rejects), 0o600, "raw log lines are private");

    // Saved searches (beside the history): the directory made 0700, the file 0600.
    let history = dir.path().join("state/kaq/history");
    let o = with_stdin(
        kaq()
            .args(["repl", log.to_str().unwrap()])
            .env("KAQ_HISTORY", &history)
            .env("KAQ_CONFIG_DIR", dir.path().join("state/kaq")),
        b".save mine user:alice\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = dir.path().join("state/kaq/rules.toml");
    assert!(std::fs::read_to_string(&saved).unwrap().contains("user:alice"));
    assert_eq!((mode(&saved), mode(saved.parent().unwrap())), (0o600, 0o700));

    // A store made in an existing directory: made private, and kaq says so, once.
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run(&["ingest", log.to_str().unwrap(), "--store", store.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&store), 0o700);
    let note = "was mode 0755; kaq made it 0700 (private to you)";
    assert_eq!(stderr(&o).matches(note).count(), 1, "{}", stderr(&o));
    let more = dir.path().join("b.log");
    std::fs::write(&more, event(2, "bob", "kubectl", "web", 200) + "\n").unwrap();
    let o = run(&["ingest", more.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert!(o.status.success() && !stderr(&o).contains("made it 0700"), "{}", stderr(&o));
}
