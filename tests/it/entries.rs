//! Bad inputs do not stop a run (issue 13 items 5 and 6): a directory entry that cannot be read
//! (a dangling symbolic link, a symbolic link loop, a directory loop, a file or subdirectory that
//! cannot be opened) is reported by its own path and skipped, the same in `query`, `convert` and
//! `ingest`; `--strict` stops there. A line longer than `--max-record-size` is rejected with its
//! size and the lines after it are read.

use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{read_jsonl, run, skip, stderr, tmp};

/// A small valid audit event.
fn event(id: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"list","user":{{"username":"alice"}},"objectRef":{{"resource":"pods","namespace":"default","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T10:00:00.000000Z","stageTimestamp":"2026-11-20T10:00:00.001000Z"}}"#
    )
}

/// Writes `n` events named `{prefix}-{i}` to `path`; returns their auditIDs.
fn write_events(path: &Path, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let text: String = ids.iter().map(|id| event(id) + "\n").collect();
    std::fs::write(path, text).unwrap();
    ids
}

fn ids_of(events: &[serde_json::Value]) -> BTreeSet<String> {
    events.iter().map(|e| e["auditID"].as_str().expect("an auditID").to_string()).collect()
}

/// The auditIDs each command finds in `input` with `extra` arguments, and its output: the
/// whole events of `kaq query`, of `kaq convert` to JSON lines, and of a store after `kaq ingest`.
fn every_command(dir: &Path, input: &Path, extra: &[&str]) -> Vec<(&'static str, Output, BTreeSet<String>)> {
    let input = input.to_str().unwrap();
    let mut out = Vec::new();
    let query = dir.join("query.jsonl");
    let mut args = vec!["query", "*", input, "--format", "json", "-o", query.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    let ids = if query.exists() { ids_of(&read_jsonl(&query)) } else { BTreeSet::new() };
    out.push(("query", o, ids));
    let converted = dir.join("converted.jsonl");
    let mut args = vec!["convert", input, "-o", converted.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    let ids = if converted.exists() { ids_of(&read_jsonl(&converted)) } else { BTreeSet::new() };
    out.push(("convert", o, ids));
    let store = dir.join("store");
    let _ = std::fs::remove_dir_all(&store);
    let mut args = vec!["ingest", input, "--store", store.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    let stored = dir.join("stored.jsonl");
    let q =
        run(&["query", "*", "--store", store.to_str().unwrap(), "--format", "json", "-o", stored.to_str().unwrap()]);
    let ids = if q.status.success() && stored.exists() { ids_of(&read_jsonl(&stored)) } else { BTreeSet::new() };
    out.push(("ingest", o, ids));
    for p in [&query, &converted, &stored] {
        let _ = std::fs::remove_file(p);
    }
    out
}

/// A file, named like a log, that cannot be opened for reading: mode 0000, or, for root (who
/// reads those), a link to a sysctl file only root may write (0200), which root cannot read
/// either. `None` (saying why) when neither works here.
fn unreadable_file(path: &Path) -> Option<PathBuf> {
    std::fs::write(path, event("never") + "\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(path).is_err() {
        return Some(path.to_path_buf());
    }
    std::fs::remove_file(path).unwrap();
    let target = Path::new("/proc/sys/vm/compact_memory");
    if target.is_file() && std::fs::File::open(target).is_err() {
        symlink(target, path).unwrap();
        return Some(path.to_path_buf());
    }
    skip(
        "no file here cannot be read (running as root, without /proc/sys/vm/compact_memory): the unreadable file case is left out",
    );
    None
}

/// A subdirectory that cannot be listed: mode 0000, or for root a link to another process's
/// `map_files` (refused without CAP_SYS_ADMIN). `None` (saying why) when neither works here.
fn unreadable_dir(path: &Path) -> Option<PathBuf> {
    let listable = |p: &Path| std::fs::read_dir(p).and_then(|d| d.collect::<Result<Vec<_>, _>>()).is_ok();
    std::fs::create_dir(path).unwrap();
    std::fs::write(path.join("hidden.log"), event("never-dir") + "\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if !listable(path) {
        return Some(path.to_path_buf());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_dir_all(path).unwrap();
    let target = Path::new("/proc/1/map_files");
    if target.is_dir() && !listable(target) {
        symlink(target, path).unwrap();
        return Some(path.to_path_buf());
    }
    skip(
        "no directory here cannot be listed (running as root with CAP_SYS_ADMIN): the unreadable directory case is left out",
    );
    None
}

#[test]
fn a_bad_directory_entry_is_reported_and_skipped_by_every_command() {
    let t = tmp();
    let d = t.path().join("logs");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    let mut want: BTreeSet<String> = write_events(&d.join("a.log"), "a", 30).into_iter().collect();
    want.extend(write_events(&d.join("sub/b.log"), "b", 20));
    want.extend(write_events(&d.join("z.log"), "z", 10));
    symlink(d.join("nowhere/gone.log"), d.join("dangling.log")).unwrap();
    symlink("loop2.log", d.join("loop1.log")).unwrap();
    symlink("loop1.log", d.join("loop2.log")).unwrap();
    symlink("..", d.join("sub/up")).unwrap();
    // (the entry, what its report says)
    let mut bad = vec![
        (d.join("dangling.log"), "dangling symbolic link"),
        (d.join("loop1.log"), "symbolic link loop"),
        (d.join("loop2.log"), "symbolic link loop"),
        (d.join("sub/up"), "symbolic link loop: leads back to"),
    ];
    if let Some(p) = unreadable_file(&d.join("m.log")) {
        bad.push((p, "cannot be opened"));
    }
    if let Some(p) = unreadable_dir(&d.join("private")) {
        bad.push((p, "cannot list"));
    }
    for (cmd, o, ids) in every_command(t.path(), &d, &[]) {
        let err = stderr(&o);
        assert!(o.status.success(), "{cmd}: {err}");
        for (path, why) in &bad {
            let line = err.lines().find(|l| l.contains(&format!("{}: ", path.display())));
            let line = line.unwrap_or_else(|| panic!("{cmd} does not name {}: {err}", path.display()));
            assert!(
                line.starts_with("kaq: warning: ") && line.contains(why) && line.ends_with("; skipped"),
                "{cmd}: {line}"
            );
        }
        assert_eq!(ids, want, "{cmd}: {err}");
    }
    // --strict: a clear error naming the entry, exit 1, nothing written.
    for (cmd, o, ids) in every_command(t.path(), &d, &["--strict"]) {
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {err}");
        let line = err.lines().find(|l| l.starts_with("kaq: error: ")).unwrap_or_else(|| panic!("{cmd}: {err}"));
        assert!(
            bad.iter().any(|(p, why)| line.contains(&format!("{}: ", p.display())) && line.contains(why)),
            "{cmd}: {line}"
        );
        assert!(line.ends_with("stopped there (--strict)"), "{cmd}: {line}");
        assert!(ids.is_empty(), "{cmd} wrote {} events", ids.len());
    }
    if let Some((p, _)) = bad.iter().find(|(_, why)| *why == "cannot list") {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
    }
}

/// An unreadable file (found while reading, not while listing) does not stop `ingest DIR` with 0
/// events: every command reads the rest; --strict stops at it.
#[test]
fn an_unreadable_file_is_skipped_by_every_command() {
    let t = tmp();
    let d = t.path().join("logs");
    std::fs::create_dir_all(&d).unwrap();
    let mut want: BTreeSet<String> = write_events(&d.join("a.log"), "a", 25).into_iter().collect();
    want.extend(write_events(&d.join("c.log"), "c", 5));
    let Some(bad) = unreadable_file(&d.join("b.log")) else { return };
    for (cmd, o, ids) in every_command(t.path(), &d, &[]) {
        let err = stderr(&o);
        assert!(o.status.success(), "{cmd}: {err}");
        let msg = format!("kaq: warning: {}: cannot be opened (", bad.display());
        assert!(err.lines().any(|l| l.starts_with(&msg) && l.ends_with("; skipped")), "{cmd}: {err}");
        assert_eq!(ids, want, "{cmd}: {err}");
    }
    for (cmd, o, ids) in every_command(t.path(), &d, &["--strict"]) {
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {err}");
        let msg = format!("kaq: error: {}: cannot be opened (", bad.display());
        assert!(err.lines().any(|l| l.starts_with(&msg) && l.ends_with("; stopped there (--strict)")), "{cmd}: {err}");
        assert!(ids.is_empty(), "{cmd} wrote {} events", ids.len());
    }
}

/// A line past --max-record-size is rejected with its file, line and size, and every line after
/// it is read, in every command.
#[test]
fn a_record_past_the_limit_is_rejected_and_the_rest_read() {
    let t = tmp();
    let log = t.path().join("big.log");
    let mut want = BTreeSet::new();
    let mut text = String::new();
    for i in 0..3 {
        want.insert(format!("before-{i}"));
        text += &(event(&format!("before-{i}")) + "\n");
    }
    // Line 4: an event with a 5000-byte field; line 5: 100 KB of zeros with no JSON in it.
    let long = event("too-long").replace(r#""verb":"list""#, &format!(r#""verb":"list","x":"{}""#, "y".repeat(5000)));
    text += &(long.clone() + "\n");
    text += &("0".repeat(100_000) + "\n");
    for i in 0..40 {
        want.insert(format!("after-{i}"));
        text += &(event(&format!("after-{i}")) + "\n");
    }
    std::fs::write(&log, &text).unwrap();
    for (cmd, o, ids) in every_command(t.path(), &log, &["--max-record-size", "1KiB"]) {
        let err = stderr(&o);
        assert!(o.status.success(), "{cmd}: {err}");
        let name = log.display();
        for want in [
            format!(
                "kaq: rejected {name}:4: record of {} bytes exceeds the limit of 1 KiB (--max-record-size)",
                long.len()
            ),
            format!("kaq: rejected {name}:5: record of 100000 bytes exceeds the limit of 1 KiB (--max-record-size)"),
        ] {
            assert!(err.lines().any(|l| l.ends_with(&want)), "{cmd}: no {want:?} in {err}");
        }
        assert_eq!(ids, want, "{cmd}: {err}");
    }
    // The default limit (64 MiB) takes the long event.
    let (_, o, ids) = every_command(t.path(), &log, &[]).remove(0);
    assert!(ids.contains("too-long"), "{}", stderr(&o));
    assert!(run(&["query", "*", log.to_str().unwrap(), "--max-record-size", "lots"]).status.code() == Some(2));
}
