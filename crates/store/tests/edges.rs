//! Edges of the index: values too long for a tantivy term, and fields the index leaves out but
//! completion still offers.

use kaq_store::{IngestOptions, Store};

fn event(i: usize, ua: &str, name: &str, decision: &str) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("0b2f1c7e-1111-4a2b-9c3d-{i:012}"), "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/default/pods/{name}"), "verb": "get",
        "user": {"username": "alice"}, "userAgent": ua,
        "objectRef": {"resource": "pods", "namespace": "default", "name": name},
        "responseStatus": {"code": 200},
        "annotations": {"authorization.k8s.io/decision": decision},
        "requestReceivedTimestamp": format!("2026-11-20T05:00:{:02}.000000Z", i % 60),
        "stageTimestamp": format!("2026-11-20T05:00:{:02}.100000Z", i % 60),
    })
    .to_string()
        + "\n"
}

/// `text` written as the log `dir/a.log`, and a new store `dir/s` that ingested it.
fn ingested(dir: &std::path::Path, text: &str) -> (std::path::PathBuf, Store) {
    let log = dir.join("a.log");
    std::fs::write(&log, text).unwrap();
    let mut store = Store::create(dir.join("s")).unwrap();
    store.ingest_paths(std::slice::from_ref(&log), &IngestOptions::default()).unwrap();
    (log, store)
}

/// What reading `log` answers to `q`: a scan, then every step.
fn read_log(q: &str, log: &std::path::Path) -> Vec<kaq_query::Row> {
    let plan = kaq_query::compile(q, &Default::default()).unwrap();
    let scanned = kaq_query::scan::scan(&plan, &[log.to_path_buf()], &Default::default(), 0, &mut |_| {}).unwrap();
    let steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
    kaq_query::pipeline::run(&steps, scanned.rows)
}

/// Whether a query's rows came through the index.
fn used_index(r: &kaq_store::QueryResult) -> bool {
    r.trace.iter().any(|t| matches!(t, kaq_store::TraceStep::Index { .. }))
}

/// A client chooses its user agent: one longer than a tantivy term (64 KiB) must not hide the
/// request from `ua:` or free-text searches (nor a name that long break the index).
#[test]
fn values_too_long_for_a_term_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let long_ua = format!("agent {}", "x".repeat(70_000));
    let long_name = "n".repeat(70_000);
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&event(i, "kubectl/v1.29.0", &format!("p{i}"), if i % 3 == 0 { "forbid" } else { "allow" }));
    }
    text.push_str(&event(300, &long_ua, "web", "allow"));
    text.push_str(&event(301, "kubectl/v1.29.0", &long_name, "allow"));
    let (log, store) = ingested(dir.path(), &text);
    for (q, want) in
        [("ua:agent | count", 1), ("agent | count", 1), ("ua:kubectl | count", 301), ("name:web | count", 1)]
    {
        let got = store.query(q).unwrap();
        assert_eq!(got.rows[0].vals[0], kaq_query::Val::Int(want), "`{q}`: {:?}", got.trace);
        // The same answer as reading the log.
        assert_eq!(read_log(q, &log), got.rows);
    }
    // `decision` is not in the index: its values come from its column, most rows first.
    let terms = store.top_terms("decision", "", 5).unwrap();
    assert_eq!(terms, [("allow".to_string(), 202), ("forbid".to_string(), 100)]);
    assert_eq!(store.top_terms("decision", "fo", 5).unwrap(), [("forbid".to_string(), 100)]);
}

/// Request and response objects are searched through the index (`request.PATH:VALUE`, `:*`), with
/// the language's comparisons: strings exactly, numbers by value (`2` finds `2.0`), booleans,
/// arrays entered, an empty object present; a body with too many values is still found.
#[test]
fn bodies_are_searched_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let bodies = [
        serde_json::json!({"kind": "Deployment", "spec": {"replicas": 2.0, "template": {"spec": {"hostNetwork": true,
            "containers": [{"image": "nginx:1.25"}, {"image": "busybox"}]}}}}),
        serde_json::json!({"kind": "Deployment", "spec": {"replicas": 3, "template": {"spec": {}}}}),
        serde_json::json!({"kind": "ClusterRoleBinding", "roleRef": {"name": "cluster-admin"}, "metadata": {"labels": {}}}),
        serde_json::json!({"kind": "ConfigMap", "data": {"replicas": "2", "flag": "true"}}),
        // Present without a value under them: objects of nulls or empty arrays, arrays in arrays.
        serde_json::json!({"kind": "Deployment", "spec": {"template": {"metadata": {"creationTimestamp": null}}},
            "a": [[]], "b": [{"x": null}], "c": {"d": []}}),
        // More values than the index takes for one body.
        serde_json::json!({"kind": "List", "items": (0..5000).map(|i| serde_json::json!({"n": i})).collect::<Vec<_>>()}),
    ];
    // Bodies on the first 14 rows of every seven blocks (each in a request and a response), so
    // that the index's documents, blocks of rows, narrow; a body it does not hold makes its block
    // a candidate for every body search: the first (rows 5 and 12).
    let period = 7 * kaq_store::index::BLOCK as usize;
    for i in 0..8 * period {
        let mut e: serde_json::Value =
            serde_json::from_str(&event(i, "kubectl/v1.29.0", &format!("p{i}"), "allow")).unwrap();
        if i % 7 < bodies.len() && i % period < 14 && (i % 7 != 5 || i < 14) {
            e[if i % 2 == 0 { "requestObject" } else { "responseObject" }] = bodies[i % 7].clone();
        }
        text.push_str(&format!("{e}\n"));
    }
    let (log, store) = ingested(dir.path(), &text);
    let total = store.manifest().rows();
    for q in [
        "request.kind:Deployment",
        "response.kind:Deployment",
        "request.spec.replicas:2",
        "request.spec.replicas:2.0",
        "response.spec.replicas:3",
        "request.data.replicas:2",
        "response.data.flag:true",
        "request.spec.template.spec.hostNetwork:true",
        "request.spec.template.spec.containers.image:busybox",
        "response.roleRef.name:cluster-admin",
        "request.metadata.labels:*",
        "response.spec.template.spec:*",
        "request.roleRef:*",
        "response.items.n:4321",
        "request.items.n:*",
        "request.nothing.here:*",
        "request.spec.template.metadata:*",
        "response.spec.template.metadata.creationTimestamp:*",
        "request.a:*",
        "response.b:*",
        "request.c:*",
        "response.c.d:*",
    ] {
        let got = store.query(q).unwrap();
        assert!(used_index(&got), "`{q}` uses the index: {:?}", got.trace);
        assert!(got.rows_read < total / 2, "`{q}`: {} rows read of {total}", got.rows_read);
        let mut want: Vec<String> = read_log(q, &log).iter().map(|r| format!("{:?}", r.vals)).collect();
        let mut have: Vec<String> = got.rows.iter().map(|r| format!("{:?}", r.vals)).collect();
        want.sort();
        have.sort();
        assert_eq!(have.len(), want.len(), "`{q}`");
        assert_eq!(have, want, "`{q}`");
        let found = want.len();
        assert!(
            found > 0 || q.contains("nothing") || q.ends_with("creationTimestamp:*") || q.ends_with("c.d:*"),
            "`{q}` finds something"
        );
    }
}

/// The language lowercases a word-final `Σ` to `ς` (`str::to_lowercase`); the index's words are
/// the language's, so a search through the index finds what reading the log finds.
#[test]
fn words_lowercased_in_context_are_found_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..200 {
        let name = if i % 50 == 0 { "ΟΔΟΣ" } else { "web" };
        let mut e: serde_json::Value = serde_json::from_str(&event(i, "kubectl/v1.29.0", name, "allow")).unwrap();
        if i % 40 == 0 {
            e["responseStatus"] = serde_json::json!({"code": 403, "message": format!("ΟΔΟΣ blocked {i}")});
        }
        text.push_str(&(e.to_string() + "\n"));
    }
    let (log, store) = ingested(dir.path(), &text);
    for (q, want) in [
        ("message:ΟΔΟΣ | count", 5),
        ("message:οδος | count", 5),
        ("message:\"ΟΔΟΣ blocked\" | count", 5),
        ("uri:ΟΔΟΣ | count", 4),
        ("ΟΔΟΣ | count", 8),
    ] {
        let got = store.query(q).unwrap();
        assert_eq!(got.rows[0].vals[0], kaq_query::Val::Int(want), "`{q}`: {:?}", got.trace);
        assert_eq!(read_log(q, &log), got.rows, "`{q}`");
    }
}

/// Lowercase can be longer than the text (`İ` is 2 bytes, `i̇` 3): a word that fits a term as
/// written but not lowercased was dropped by tantivy, with no `LONG` term for its value (which
/// fits); it is not looked up in the index, and the search still finds its row.
#[test]
fn words_longer_than_a_term_once_lowercased_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let word = "İ".repeat(30_000);
    let mut text = String::new();
    for i in 0..50 {
        let mut e: serde_json::Value = serde_json::from_str(&event(i, "kubectl/v1.29.0", "web", "allow")).unwrap();
        if i == 7 {
            e["responseStatus"] = serde_json::json!({"code": 403, "message": format!("{word} denied")});
        }
        text.push_str(&(e.to_string() + "\n"));
    }
    let (log, store) = ingested(dir.path(), &text);
    for (q, want) in [(format!("message:{word} | count"), 1), (format!("message:\"{word} denied\" | count"), 1)] {
        let got = store.query(&q).unwrap();
        assert_eq!(got.rows[0].vals[0], kaq_query::Val::Int(want), "{:?}", got.trace);
        assert_eq!(read_log(&q, &log), got.rows);
    }
}

/// A store whose index was built with other Unicode tables answers a word outside ASCII without
/// asking it, the same as reading the log; `compact` rebuilds even its single segment in this
/// kaq's form, which is asked.
#[test]
fn an_older_index_is_not_asked_for_words_outside_ascii_and_compact_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..100 {
        let name = if i % 25 == 0 { "ΟΔΟΣ" } else { "web" };
        text.push_str(&event(i, "kubectl/v1.29.0", name, "allow"));
    }
    drop(ingested(dir.path(), &text));
    let s = dir.path().join("s");
    // The manifest as a kaq with other Unicode tables wrote it (before checksums, which it cannot
    // fake). (An index of version 5 or 6 is not faked so: its documents were rows, not blocks.)
    let path = s.join("MANIFEST.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("checksum");
    for seg in m["segments"].as_array_mut().unwrap() {
        let seg = seg.as_object_mut().unwrap();
        seg.remove("files");
        seg.insert("index_unicode".into(), "1.0.0".into());
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let mut store = Store::open_writer(&s).unwrap();
    for (q, want, asked) in [("uri:ΟΔΟΣ | count", 4, false), ("uri:pods | count", 100, true)] {
        let got = store.query(q).unwrap();
        assert_eq!(got.rows[0].vals[0], kaq_query::Val::Int(want), "`{q}`: {:?}", got.trace);
        assert_eq!(used_index(&got), asked, "`{q}`: {:?}", got.trace);
    }
    let r = store.compact().unwrap();
    assert_eq!((r.segments_before, r.segments_after, r.rows_after), (1, 1, 100));
    let seg = &store.manifest().segments[0];
    assert_eq!(
        (seg.index_version, seg.index_unicode.as_deref()),
        (Some(kaq_store::index::VERSION), Some(kaq_store::index::unicode()))
    );
    let got = store.query("uri:ΟΔΟΣ | count").unwrap();
    assert_eq!(got.rows[0].vals[0], kaq_query::Val::Int(4));
    assert!(used_index(&got), "{:?}", got.trace);
    // Now current: nothing to do.
    let r = store.compact().unwrap();
    assert_eq!((r.segments_before, r.segments_after, r.bytes_written), (1, 1, 0));
}

/// The index's documents are blocks of rows, yet the values the REPL completes are counted in
/// rows: users on runs of adjacent rows, an address given twice in one row (claimed and the
/// peer) counted once, names and namespaces each on scattered rows.
#[test]
fn value_counts_are_rows_with_blocks_of_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let mut want: std::collections::BTreeMap<(&str, String), u64> = Default::default();
    for i in 0..203usize {
        let user = format!("u{}", i / 5 % 7);
        let ns = format!("ns{}", i % 3);
        let name = format!("p{}", i % 11);
        let ips = match i % 4 {
            0 => vec!["10.0.0.1".to_string(), "10.0.0.1".to_string()],
            1 => vec!["10.0.0.1".to_string(), "10.0.0.2".to_string()],
            _ => vec![format!("10.0.1.{}", i % 5)],
        };
        let e = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": format!("0b2f1c7e-2222-4a2b-9c3d-{i:012}"), "stage": "ResponseComplete",
            "requestURI": format!("/api/v1/namespaces/{ns}/pods/{name}"), "verb": "get",
            "user": {"username": user}, "sourceIPs": ips,
            "objectRef": {"resource": "pods", "namespace": ns, "name": name},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": format!("2026-11-20T05:{:02}:{:02}.000000Z", i / 60, i % 60),
        });
        text.push_str(&format!("{e}\n"));
        *want.entry(("user", user)).or_default() += 1;
        *want.entry(("ns", ns)).or_default() += 1;
        *want.entry(("name", name)).or_default() += 1;
        let mut distinct = ips.clone();
        distinct.dedup();
        for ip in distinct {
            *want.entry(("ip", ip)).or_default() += 1;
        }
    }
    let (_, store) = ingested(dir.path(), &text);
    for field in ["user", "ns", "name", "ip"] {
        let mut got = store.top_terms(field, "", 100).unwrap();
        got.sort();
        let expected: Vec<(String, u64)> =
            want.iter().filter(|((f, _), _)| *f == field).map(|((_, v), n)| (v.clone(), *n)).collect();
        assert_eq!(got, expected, "{field}");
    }
}

/// The filter tested on its columns for some rows of a segment (what a search through an index of
/// blocks reads whole) keeps exactly the rows among them that the whole-file column test finds.
#[test]
fn the_filter_on_its_columns_keeps_the_matching_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&event(
            i,
            if i % 3 == 0 { "kubectl/v1.29.0" } else { "curl/8" },
            &format!("p{}", i % 13),
            "allow",
        ));
    }
    let (_, store) = ingested(dir.path(), &text);
    let seg = dir.path().join("s/segments").join(&store.manifest().segments[0].file);
    let every: Vec<u64> = (0..500).collect();
    let some: Vec<u64> = (0..500).filter(|r| r % 7 < 3).collect();
    for q in ["name:p5", "ua:kubectl name:p1", "name:p2 OR name:p3", "NOT name:p4", "verb:get"] {
        let plan = kaq_query::compile(q, &Default::default()).unwrap();
        let all = kaq_query::columnar::matching_rows(&plan, &seg, 1, None).unwrap().unwrap().positions;
        assert!(!all.is_empty(), "`{q}`");
        assert_eq!(kaq_query::columnar::matching_among(&plan, &seg, &every).unwrap().unwrap(), all, "`{q}`");
        let want: Vec<u64> = all.iter().copied().filter(|r| some.binary_search(r).is_ok()).collect();
        assert_eq!(kaq_query::columnar::matching_among(&plan, &seg, &some).unwrap().unwrap(), want, "`{q}`");
    }
}

/// The index is passed over for the columns when what it finds is too many rows to read one by
/// one (a sixteenth of the store); a block it finds counts as 8 rows whatever its size, so that
/// a needle on scattered rows is still looked up through an index of larger blocks.
#[test]
fn scattered_needles_use_the_index_and_common_values_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let n = 4096;
    let name = |i: usize| match i {
        i if i % 256 == 0 => "rare".to_string(),
        i if i % 32 == 5 => "often".to_string(),
        i => format!("p{i}"),
    };
    let text: String = (0..n)
        .map(|i| {
            serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("0b2f1c7e-3333-4a2b-9c3d-{i:012}"), "stage": "ResponseComplete",
                "requestURI": "/api/v1/namespaces/default/pods", "verb": "get",
                "user": {"username": "alice"},
                "objectRef": {"resource": "pods", "namespace": "default", "name": name(i)},
                "requestReceivedTimestamp": format!("2026-11-20T05:00:00.{i:06}Z"),
            })
            .to_string()
                + "\n"
        })
        .collect();
    let (log, store) = ingested(dir.path(), &text);
    let too_many = |r: &kaq_store::QueryResult| {
        r.trace.iter().find_map(|t| match t {
            kaq_store::TraceStep::Index { too_many, .. } => Some(*too_many),
            _ => None,
        })
    };
    // 16 rows in 16 blocks: 512 rows of blocks of 32, 128 counted, under 4096 / 16.
    let got = store.query("name:rare").unwrap();
    assert_eq!(too_many(&got), Some(false), "{:?}", got.trace);
    assert_eq!(got.rows.len(), n / 256);
    assert_eq!(got.rows, read_log("name:rare", &log));
    // A row in every block: every row a candidate.
    let got = store.query("name:often").unwrap();
    assert_eq!(too_many(&got), Some(true), "{:?}", got.trace);
    assert_eq!(got.rows.len(), n / 32);
    assert_eq!(got.rows, read_log("name:often", &log));
}
