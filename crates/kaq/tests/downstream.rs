//! A downstream user's view: only `kaq::…` (and std, tempfile). Every answer is checked against a
//! plain count over the same events, computed here from the JSON text itself, so the facade's
//! store and file paths are both held to the events.

use std::path::{Path, PathBuf};

use kaq::{Access, Error, Latest, Query, QueryOptions, Source, Store, TraceStep, Val};

/// The repository's sample log (gzip, 2,000+ events of a small cluster, with injected incidents).
fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample-audit.log.gz")
}

/// A small log written here, with stages of one request, a reused auditID and a rejected line.
fn small_log(dir: &Path) -> PathBuf {
    let ev = |id: &str, stage: &str, verb: &str, user: &str, ns: &str, code: u16, at: &str| {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"{stage}","requestURI":"/api/v1/namespaces/{ns}/pods","verb":"{verb}","user":{{"username":"{user}"}},"sourceIPs":["10.0.0.1"],"objectRef":{{"resource":"pods","namespace":"{ns}"}},"responseStatus":{{"code":{code}}},"requestReceivedTimestamp":"{at}","stageTimestamp":"{at}"}}"#
        )
    };
    let lines = [
        ev("r1", "RequestReceived", "delete", "alice", "prod", 0, "2026-11-20T10:00:00.000000Z"),
        ev("r1", "ResponseComplete", "delete", "alice", "prod", 200, "2026-11-20T10:00:00.000000Z"),
        ev("r2", "ResponseComplete", "get", "bob", "prod", 403, "2026-11-20T10:01:00.000000Z"),
        // The same auditID on a different request (a client-chosen Audit-ID): a request of its own.
        ev("r2", "ResponseComplete", "list", "mallory", "dev", 200, "2026-11-20T10:02:00.000000Z"),
        "this is not an event".to_string(),
        ev("r3", "ResponseComplete", "delete", "carol", "dev", 200, "2026-11-20T10:03:00.000000Z"),
    ];
    let path = dir.join("audit.log");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn files_and_a_store_give_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let mut store = Store::create(dir.path().join("store")).unwrap();
    let ingested = store.ingest(&[&log]).unwrap();
    assert_eq!((ingested.counts.events, ingested.counts.rejected), (5, 1));
    let files = Source::files([&log]);
    let stored = Source::open(dir.path().join("store")).unwrap();
    assert!(stored.as_store().is_some() && files.as_store().is_none());

    for (q, want) in [
        // r1 counts once (its latest stage), r2 twice (two requests), r3 once.
        ("| count", vec![r#"{"count":4}"#]),
        (
            "verb:delete | table user, ns | sort user",
            vec![r#"{"user":"alice","ns":"prod"}"#, r#"{"user":"carol","ns":"dev"}"#],
        ),
        ("code:403 | table user", vec![r#"{"user":"bob"}"#]),
        ("id_reused:true | count", vec![r#"{"count":2}"#]),
    ] {
        let query = Query::new(q).unwrap();
        for source in [&files, &stored] {
            let got = source.run(&query).unwrap();
            assert_eq!(got.json_lines(), want, "`{q}`");
        }
    }
    // Every stage, when asked.
    let all = Query::with_options("| count", &QueryOptions { all_stages: true, ..Default::default() }).unwrap();
    assert_eq!(files.run(&all).unwrap().rows[0].vals, [Val::Int(5)]);
    assert_eq!(stored.run(&all).unwrap().rows[0].vals, [Val::Int(5)]);
    // What was read of the files: five events and the line that is not one.
    let r = files.run(&Query::new("user:alice").unwrap()).unwrap();
    assert_eq!(r.report.counts.rejected, 1);
    assert!(r.whole_events && r.rows[0].raw.as_deref().is_some_and(|j| j.contains(r#""auditID":"r1""#)));
}

#[test]
fn a_query_is_compiled_once_and_inspectable() {
    let q = Query::new("resource:secrets verb:get | stats count, dc(name) by user | sort -count").unwrap();
    let mut fields = q.fields();
    fields.sort_unstable();
    assert_eq!(fields, ["name", "resource", "user", "verb"]);
    assert_eq!(q.stages(), ["stats", "sort"]);
    let names: Vec<&str> = q.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["user", "count", "dc(name)"]);
    assert!(!q.whole_events() && !q.all_stages());
    assert_eq!(q.to_string(), "resource:secrets verb:get | stats count, dc(name) by user | sort -count");
}

#[test]
fn errors_keep_the_span_and_name_the_layer() {
    let err = Query::new("verb:delete | stats count by usr").unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!(&err.text()[d.span.start..d.span.end], "usr");
    assert!(err.render().contains("did you mean `user`?"), "{}", err.render());

    let dir = tempfile::tempdir().unwrap();
    match Store::open(dir.path()) {
        Err(Error::Store(e)) => assert!(e.to_string().contains("not a kaq store"), "{e}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    let missing = Source::files([dir.path().join("nope.log")]);
    match missing.run(&Query::new("| count").unwrap()) {
        Err(e @ (Error::Input(_) | Error::Scan(_))) => assert!(e.to_string().contains("nope.log"), "{e}"),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn the_physical_plan_says_how_a_store_query_runs() {
    let sample = sample();
    if !sample.exists() {
        eprintln!("SKIPPED: {} is missing", sample.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::create(dir.path().join("store")).unwrap();
    store.ingest(&[&sample]).unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();

    // A needle: the index, whatever the store's size.
    let needle = Query::new("user:system:anonymous").unwrap();
    let plan = store.physical_plan(&needle);
    assert!(matches!(plan.access, Access::Index { .. }), "{plan}");
    let explained = store.explain(&needle).unwrap();
    assert!(explained.trace.iter().any(|t| matches!(t, TraceStep::Index { .. })), "{explained}");
    assert!(explained.to_string().contains("store:     plan: index postings"), "{explained}");

    // An aggregation over every event, every stage kept: answered from the columns.
    let all = Query::with_options("| count by verb", &QueryOptions { all_stages: true, ..Default::default() }).unwrap();
    let plan = store.physical_plan(&all);
    assert!(matches!(plan.access, Access::Columnar { .. }) && plan.latest == Latest::AllStages, "{plan}");

    // The answers agree with a plain count of the sample's verbs... read through the files path.
    let from_store = store.query(&all).unwrap();
    let from_files = Source::files([&sample]).run(&all).unwrap();
    assert_eq!(from_store.json_lines(), from_files.json_lines());
    let total: i64 = from_store.rows.iter().map(|r| if let Val::Int(n) = r.vals[1] { n } else { 0 }).sum();
    assert_eq!(total as u64, store.records());
}

#[test]
fn answers_as_arrow_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let r = Source::files([&log]).run(&Query::new("| count by ns | sort ns").unwrap()).unwrap();
    let batches = r.record_batches().unwrap();
    assert_eq!((batches[0].num_rows(), batches[0].num_columns()), (2, 2));
    let out = dir.path().join("by-ns.parquet");
    r.write_parquet(&out).unwrap();
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    // Converted events read back as a source of their own, with the same answers.
    let pq = dir.path().join("all.parquet");
    let converted = kaq::convert(&[&log], &pq, &kaq::ReadOptions::default(), &mut |_| {}).unwrap();
    assert_eq!((converted.rows, converted.report.counts.rejected), (5, 1));
    let again = Source::files([&pq]).run(&Query::new("| count by ns | sort ns").unwrap()).unwrap();
    assert_eq!(again.json_lines(), r.json_lines());
}

/// `Source::run_streaming` hands on the rows `Source::run` returns, in the same order, over files
/// and a store (one segment, and two), whatever the memory budget; with a budget of 0 every
/// matching row goes through the temporary file (the streaming path is the one taken).
#[test]
fn streaming_gives_the_same_rows_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path());
    let mut store = Store::create(dir.path().join("store")).unwrap();
    store.ingest(&[&sample()]).unwrap();
    let one_segment = Source::store(Store::open(dir.path().join("store")).unwrap());
    store.ingest(&[&log]).unwrap();
    let two_segments = Source::store(Store::open(dir.path().join("store")).unwrap());
    let sources = [Source::files([sample(), log.clone()]), Source::files([&log]), one_segment, two_segments];
    let queries =
        ["", "verb:delete", "user:alice", "code:403", "ns:prod* | head 3", "| sort -time | head 5", "| count by verb"];
    for (i, source) in sources.iter().enumerate() {
        for q in queries {
            for all_stages in [false, true] {
                let query = Query::with_options(q, &QueryOptions { all_stages, ..QueryOptions::default() }).unwrap();
                let plain = source.run(&query).unwrap();
                let want = plain.json_lines();
                for spill_after in [0, 1000, kaq::SPILL_AFTER] {
                    let mut got = Vec::new();
                    let mut emit = |r: kaq::Row| {
                        got.push(kaq_row_json(&r, plain.columns.as_slice()));
                        Ok(())
                    };
                    let mut stream = kaq::Stream { emit: &mut emit, spill_after };
                    let r = source.run_streaming(&query, &Default::default(), &mut |_| {}, &mut stream).unwrap();
                    assert_eq!(got, want, "source {i}, `{q}`, all stages {all_stages}, budget {spill_after}");
                    assert!(r.rows.is_empty());
                    let streamed = r.streamed.expect("streamed");
                    assert_eq!(streamed.rows, want.len() as u64);
                    assert_eq!(streamed.ids_reused, plain.stats.ids_reused);
                    let store = source.as_store().is_some();
                    if spill_after == 0 && q.is_empty() && !store {
                        assert!(streamed.spilled > 0, "source {i}: `{q}` did not go through the file");
                    }
                    if store && all_stages {
                        // Nothing to settle: rows handed on as read, none held.
                        assert_eq!(streamed.spilled, 0, "source {i}: `{q}`");
                    }
                    if spill_after == kaq::SPILL_AFTER {
                        assert_eq!(streamed.spilled, 0, "a small answer stays in memory");
                    }
                }
            }
        }
    }
}

fn kaq_row_json(r: &kaq::Row, columns: &[kaq::Column]) -> String {
    let one = kaq::QueryResult {
        columns: columns.to_vec(),
        rows: vec![r.clone()],
        whole_events: r.raw.is_some(),
        stats: Default::default(),
        report: Default::default(),
        trace: Vec::new(),
        notes: Vec::new(),
        seen: None,
        streamed: None,
    };
    one.json_lines().remove(0)
}
