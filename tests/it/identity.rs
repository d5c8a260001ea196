//! Request identity from the command line: two requests under one auditID (the real corpus's
//! falco-trace-files reuse one) are both found, raw and from a store; `kaq query` notes the reuse
//! on stderr, `kaq info` counts records, requests and reused auditIDs.

use crate::common::{kaq, run, shared, stderr, tmp};

/// The falco trace files in which an anonymous namespace creation shares its auditID with
/// some-user's.
fn falco_pair() -> Option<[String; 2]> {
    let s = shared("corpus/falco-trace-files/anonymous_creates_namespace_foo.json")?;
    let d = s.join("corpus/falco-trace-files");
    Some([
        d.join("anonymous_creates_namespace_foo.json").to_string_lossy().into_owned(),
        d.join("some-user_creates_namespace_foo.json").to_string_lossy().into_owned(),
    ])
}

fn users(stdout: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["user"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn both_requests_under_one_audit_id_are_found() {
    let Some([a, b]) = falco_pair() else { return };
    let q = "verb:create resource:namespaces | table user, id";
    let o = run(&["query", q, &a, &b, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(users(&o.stdout), ["some-user", "system:anonymous"]);
    assert!(
        stderr(&o).contains(
            "kaq: note: 2 of the requests matched carry an auditID that another request also carries (`id_reused:true` finds them all)"
        ),
        "{}",
        stderr(&o)
    );
    // --quiet: no note.
    let o = run(&["query", q, &a, &b, "--format", "json", "--quiet"]);
    assert_eq!(stderr(&o), "");

    // The same from a store, and `kaq info` says what it holds.
    let dir = tmp();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let o = run(&["ingest", &a, &b, "--store", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["query", "--store", s, q, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(users(&o.stdout), ["some-user", "system:anonymous"]);
    assert!(stderr(&o).contains("kaq: note: 2 of the requests matched"), "{}", stderr(&o));
    let o = run(&["query", "--store", s, "id_reused:true | count"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), r#"{"count":2}"#, "{}", stderr(&o));
    let o = run(&["info", "--store", s]);
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(info.contains("records:   2 (every stage of every request)"), "{info}");
    assert!(info.contains("requests:  2 (what `| count` counts"), "{info}");
    assert!(info.contains("reused auditIDs: 2 requests carry an auditID another request also carries"), "{info}");
}

#[test]
fn id_reused_needs_files_it_can_read_twice() {
    let Some([a, _]) = falco_pair() else { return };
    let o = kaq().args(["query", "id_reused:true", "-"]).stdin(std::fs::File::open(&a).unwrap()).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("`id_reused` reads the input twice"), "{}", stderr(&o));
}

/// A Parquet converted from a log already ingested, and the log piped in again, add nothing: the
/// store recognises records it holds, not only files it has read.
#[test]
fn records_held_are_not_added_again_however_they_arrive() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    let Some(_) = crate::common::gen_audit(&["--events", "300", "--seed", "5"], &log) else { return };
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let l = log.to_str().unwrap();
    let o = run(&["ingest", l, "--store", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let held = |s: &str| {
        let o = run(&["info", "--store", s]);
        let info = String::from_utf8_lossy(&o.stdout).into_owned();
        info.lines().find(|l| l.starts_with("records:")).unwrap().to_string()
    };
    let before = held(s);
    let pq = dir.path().join("audit.parquet");
    let o = run(&["convert", l, "-o", pq.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["ingest", pq.to_str().unwrap(), "--store", s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("records already held, not added again"), "{}", stderr(&o));
    assert_eq!(held(s), before);
    let o = kaq().args(["ingest", "-", "--store", s]).stdin(std::fs::File::open(&log).unwrap()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(held(s), before);
}
