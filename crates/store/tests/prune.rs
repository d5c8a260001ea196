//! Time pruning under the latest-stage rule: a segment outside a query's time bounds is not
//! searched for matches, but a later stage of a matching request may lie in it, and must still
//! supersede the earlier stage (which then is not returned).

use kaq_oracle::Answer;
use kaq_store::{IngestOptions, QueryResult, Store};
use serde_json::{Value, json};

const NOW: i64 = 1_795_154_400_000_000; // 2026-11-20T06:00:00Z

/// One event; `received`/`done` as `HH:MM:SS` on 2026-11-20 (absent: no such timestamp).
fn ev(id: &str, stage: &str, verb: &str, received: Option<&str>, done: Option<&str>) -> Value {
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": id, "stage": stage, "verb": verb, "requestURI": "/api/v1/namespaces/prod/pods",
        "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"],
        "objectRef": {"resource": "pods", "namespace": "prod", "apiVersion": "v1",
            "name": if verb == "delete" { "web" } else { "db" }},
        "responseStatus": {"code": 200},
    });
    if let Some(t) = received {
        e["requestReceivedTimestamp"] = json!(format!("2026-11-20T{t}.000000Z"));
    }
    if let Some(t) = done {
        e["stageTimestamp"] = json!(format!("2026-11-20T{t}.500000Z"));
    }
    e
}

/// Three segments: 05:00-05:10 (earlier stages of A and B, and D's only record), 05:20-05:30,
/// and 06:05-06:08, outside `time<05:30`: A's later stage, F, and B's later stage, which has no
/// timestamp at all (so no `time`). A's and B's records have no requestReceivedTimestamp (so the
/// stages of one request share it, absent, while their `time`, taken from stageTimestamp, lies far
/// apart). Filler `get`s keep the index's candidates few.
fn store(dir: &std::path::Path) -> (Store, Vec<Value>) {
    let mut parts: Vec<Vec<Value>> = vec![
        vec![
            ev("a", "RequestReceived", "delete", None, Some("05:01:00")),
            ev("b", "RequestReceived", "delete", None, Some("05:02:00")),
            ev("d", "ResponseComplete", "delete", Some("05:03:00"), Some("05:03:00")),
        ],
        Vec::new(),
        vec![
            ev("a", "ResponseComplete", "delete", None, Some("06:05:00")),
            ev("f", "ResponseComplete", "get", Some("06:08:00"), Some("06:08:00")),
            ev("b", "ResponseComplete", "delete", None, None),
        ],
    ];
    for i in 0..100 {
        let t = format!("05:0{}:{:02}", 4 + i / 60, i % 60);
        parts[0].push(ev(&format!("g{i}"), "ResponseComplete", "get", Some(&t), Some(&t)));
        let t = format!("05:2{}:{:02}", i / 60, i % 60);
        parts[1].push(ev(&format!("h{i}"), "ResponseComplete", "get", Some(&t), Some(&t)));
    }
    let mut store = Store::create(dir.join("store")).unwrap();
    for (i, part) in parts.iter().enumerate() {
        let f = dir.join(format!("part-{i}.log"));
        std::fs::write(&f, part.iter().map(|e| format!("{e}\n")).collect::<String>()).unwrap();
        store.ingest_paths(&[f], &IngestOptions::default()).unwrap();
    }
    let store = Store::open(dir.join("store")).unwrap();
    assert_eq!(store.manifest().segments.len(), 3);
    (store, parts.concat())
}

fn run(store: &Store, q: &str, all: bool) -> QueryResult {
    let opts = kaq_query::Options { now_us: NOW, all_stages: all, ..Default::default() };
    store.run(&kaq_query::compile(q, &opts).unwrap(), &Default::default()).unwrap()
}

/// (auditID, stage) of the rows found, sorted.
fn records(r: &QueryResult) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r
        .rows
        .iter()
        .map(|row| {
            let e: Value = serde_json::from_str(&kaq_query::output::json_line(row, &r.columns)).unwrap();
            (e["auditID"].as_str().unwrap().to_string(), e["stage"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

/// The oracle's (auditID, stage) pairs for `q` over `events`.
fn oracle(q: &str, events: &[Value], all: bool) -> Vec<(String, String)> {
    let Answer::Events(e) = kaq_oracle::run(q, events, &kaq_oracle::Options { now_us: NOW, all_stages: all }) else {
        panic!("whole events")
    };
    let mut v: Vec<(String, String)> = e
        .iter()
        .map(|e| (e["auditID"].as_str().unwrap().to_string(), e["stage"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn ids(r: &QueryResult) -> Vec<String> {
    records(r).into_iter().map(|(id, _)| id).collect()
}

#[test]
fn a_later_stage_in_a_pruned_segment_supersedes_the_match() {
    let dir = tempfile::tempdir().unwrap();
    let (store, events) = store(dir.path());
    // Path 2 (the index), path 3 (the filter's columns), path 4 (the full scan).
    for (q, path) in [
        ("name:web time<2026-11-20T05:30Z", "index:"),
        ("code:200 verb:(delete OR get) time<2026-11-20T05:30Z", "columns:"),
        ("-request.spec.replicas:* time<2026-11-20T05:30Z", "scan:"),
    ] {
        let r = run(&store, q, false);
        let trace = r.trace.iter().map(|t| t.to_string()).collect::<Vec<_>>().join("\n");
        assert!(trace.lines().any(|l| l.starts_with(path)), "`{q}` takes {path}:\n{trace}");
        let got = ids(&r);
        // A's and B's latest stages (in the third segment) are outside the bounds: neither is
        // returned, though their earlier stages match.
        assert!(!got.contains(&"a".to_string()) && !got.contains(&"b".to_string()), "`{q}`: {got:?}\n{trace}");
        assert_eq!(records(&r), oracle(q, &events, false), "`{q}`\n{trace}");
        if path == "scan:" {
            // The full scan reads every segment.
            assert_eq!((r.segments_read, r.segments_pruned), (3, 0), "`{q}`\n{trace}");
            assert!(trace.contains("segments: 3 of 3 read (1 outside the time bounds"), "`{q}`\n{trace}");
        } else {
            assert!(got.contains(&"d".to_string()), "`{q}`: {got:?}");
            // The third segment is not searched for matches, but A's and B's later stages are
            // read from it.
            assert_eq!((r.segments_read, r.segments_pruned), (2, 1), "`{q}`\n{trace}");
            assert!(trace.contains("segments: 2 of 3 searched for matches (1 pruned by time)"), "`{q}`\n{trace}");
            assert!(trace.contains("2 rows from 1 of the 1 pruned by time"), "`{q}`\n{trace}");
        }
    }
    // With every stage kept, the earlier stages are answers, and the third segment is not read.
    let q = "verb:delete time<2026-11-20T05:30Z";
    let r = run(&store, q, true);
    assert_eq!(records(&r), oracle(q, &events, true));
    assert_eq!(ids(&r), ["a", "b", "d"]);
    assert_eq!((r.segments_read, r.segments_pruned), (2, 1));
    // Bounds that take in the third segment: A's latest stage matches there.
    let q = "verb:delete time>=2026-11-20T05:00Z";
    let r = run(&store, q, false);
    assert_eq!(records(&r), oracle(q, &events, false));
    assert_eq!(ids(&r), ["a", "d"]);
    // Bounds that take in the third segment only: nothing from the first two is searched.
    let q = "verb:delete time>=2026-11-20T06:00Z";
    let r = run(&store, q, false);
    assert_eq!(records(&r), oracle(q, &events, false));
    assert_eq!(
        (r.segments_read, r.segments_pruned),
        (1, 2),
        "{}",
        r.trace.iter().map(|t| t.to_string()).collect::<Vec<_>>().join("\n")
    );
}
