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
    let log = dir.path().join("a.log");
    std::fs::write(&log, &text).unwrap();
    let mut store = Store::create(dir.path().join("s")).unwrap();
    store.ingest_paths(std::slice::from_ref(&log), &IngestOptions::default()).unwrap();
    for (q, want) in
        [("ua:agent | count", 1), ("agent | count", 1), ("ua:kubectl | count", 301), ("name:web | count", 1)]
    {
        let got = store.query(q).unwrap();
        assert_eq!(got.rows[0].vals[0], kaq_query::Val::Int(want), "`{q}`: {:?}", got.trace);
        // The same answer as reading the log.
        let plan = kaq_query::compile(q, &Default::default()).unwrap();
        let scanned =
            kaq_query::scan::scan(&plan, std::slice::from_ref(&log), &Default::default(), 0, &mut |_| {}).unwrap();
        let steps: Vec<_> = plan.steps.iter().map(|s| s.0.clone()).collect();
        assert_eq!(kaq_query::pipeline::run(&steps, scanned.rows), got.rows);
    }
    // `decision` is not in the index: its values come from its column, most rows first.
    let terms = store.top_terms("decision", "", 5).unwrap();
    assert_eq!(terms, [("allow".to_string(), 202), ("forbid".to_string(), 100)]);
    assert_eq!(store.top_terms("decision", "fo", 5).unwrap(), [("forbid".to_string(), 100)]);
}
