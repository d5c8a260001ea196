//! Request identity: records are stages of one request only when they share the auditID *and* the
//! request (received time, verb, URI, user). A log with a forged `Audit-ID` (gen-audit's
//! `--extra-incidents`: Mallory's delete of a Secret, then a `get` under the same auditID) answers
//! every query as the oracle keyed by request identity does — from the raw log and from a store,
//! with and without every stage — and the hidden delete is found.

use std::path::{Path, PathBuf};

use kaq_store::{IngestOptions, Store};
use serde_json::Value;

mod common;
use common::{NOW, assert_same, gen_audit, json_rows, raw};

/// A generated log with the extra incidents, and its truth file; `None` (with a printed reason)
/// without the generator.
fn generated(dir: &Path) -> Option<(PathBuf, Value)> {
    let gen_audit = gen_audit()?;
    let (log, truth) = (dir.join("audit.log"), dir.join("truth.json"));
    let out = std::process::Command::new(&gen_audit)
        .args(["--events", "400", "--seed", "3", "--extra-incidents", "--stages", "--out"])
        .arg(&log)
        .arg("--truth")
        .arg(&truth)
        .output()
        .expect("gen-audit runs");
    assert!(out.status.success(), "gen-audit: {}", String::from_utf8_lossy(&out.stderr));
    Some((log, serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap()))
}

#[test]
fn a_reused_audit_id_hides_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let Some((log, truth)) = generated(dir.path()) else { return };
    let text = std::fs::read_to_string(&log).unwrap();
    let events = kaq_oracle::events_of(&text);
    let forged = truth["forged_audit_id"]["auditID"].as_str().unwrap().to_string();
    let hidden = &truth["forged_audit_id"]["hidden"];

    // The store: the log in three ingests (several segments; stages of a request may be split).
    let lines: Vec<&str> = text.lines().collect();
    let mut store = Store::create(dir.path().join("store")).unwrap();
    for part in lines.chunks(lines.len() / 3 + 1) {
        let t: String = part.iter().map(|l| format!("{l}\n")).collect();
        store.ingest_reader("log", t.as_bytes(), &IngestOptions::default()).unwrap();
    }
    let store = Store::open(dir.path().join("store")).unwrap();
    assert!(store.manifest().segments.len() >= 3);

    // Every PRODUCT.md example, and questions the forged auditID would have hidden.
    let mut queries: Vec<String> =
        kaq_oracle::corpus::product_examples().into_iter().filter(|q| !q.starts_with('@')).collect();
    queries.extend(
        [
            "verb:delete resource:secrets",
            "user:mallory* | table time, verb, resource, name",
            "user:mallory* | count by verb",
            "| count",
            "| count by verb, stage",
            "id_reused:true | table id, verb, resource, name, stage",
            "-id_reused:true | count",
            "id_reused:true verb:delete",
            "| stats dc(id) as ids, count",
        ]
        .map(str::to_string),
    );
    for q in &queries {
        for all in [false, true] {
            let opts = kaq_query::Options { now_us: NOW, all_stages: all, ..Default::default() };
            let plan = kaq_query::compile(q, &opts).unwrap();
            let want = kaq_oracle::answer(q, &events, &kaq_oracle::Options { now_us: NOW, all_stages: all });
            assert_same(&format!("raw `{q}` (all stages: {all})"), &raw(&plan, &log), &want);
            let r = store.run(&plan, &Default::default()).unwrap();
            assert_same(&format!("store `{q}` (all stages: {all})"), &json_rows(&r.rows, &r.columns), &want);
        }
    }

    // The delete hidden behind the forged auditID is found, raw and from the store.
    let plan = kaq_query::compile(
        "verb:delete resource:secrets | table id, user, ns, name",
        &kaq_query::Options { now_us: NOW, ..Default::default() },
    )
    .unwrap();
    for (how, rows) in [
        ("raw", raw(&plan, &log)),
        ("store", {
            let r = store.run(&plan, &Default::default()).unwrap();
            json_rows(&r.rows, &r.columns)
        }),
    ] {
        let found: Vec<&Value> = rows.iter().filter(|r| r["id"] == forged.as_str()).collect();
        assert_eq!(found.len(), 1, "{how}: {rows:?}");
        assert_eq!(found[0]["name"], hidden["name"], "{how}");
        assert_eq!(found[0]["ns"], hidden["namespace"], "{how}");
    }

    // `id_reused` finds both requests of the forged auditID, and nothing else in this log.
    let plan = kaq_query::compile("id_reused:true | table id, verb", &Default::default()).unwrap();
    let rows = raw(&plan, &log);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["id"] == forged.as_str()), "{rows:?}");
    let mut verbs: Vec<&str> = rows.iter().map(|r| r["verb"].as_str().unwrap()).collect();
    verbs.sort();
    assert_eq!(verbs, ["delete", "get"]);

    // Records and requests: the store counts both; two requests share one auditID.
    let ids = store.identities(&Default::default()).unwrap();
    assert_eq!(ids.records, events.len() as u64);
    let count = kaq_oracle::answer("| count", &events, &Default::default());
    assert_eq!(ids.requests(), count[0]["count"].as_u64().unwrap());
    assert!(ids.records > ids.requests(), "--stages: requests have several records");
    assert_eq!(ids.requests_sharing_an_id(), 2);
    let r = store.run(&kaq_query::compile("user:mallory*", &Default::default()).unwrap(), &Default::default()).unwrap();
    assert_eq!(r.ids_reused, 2, "{:?}", r.trace);
}

/// Stages of one request are still one request (counted once, at its latest stage), while a
/// record with the same auditID and another verb, URI, user or received time is another request.
#[test]
fn stages_are_one_request_and_reuses_are_not() {
    let ev = |stage: &str, verb: &str, user: &str, uri: &str, received: &str| {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"same","stage":"{stage}","verb":"{verb}","requestURI":"{uri}","user":{{"username":"{user}"}},"objectRef":{{"resource":"secrets","namespace":"prod","name":"x"}},"requestReceivedTimestamp":"2026-11-20T05:00:{received}.000000Z","stageTimestamp":"2026-11-20T05:00:{received}.500000Z"}}"#
        )
    };
    let log = [
        ev("RequestReceived", "delete", "mallory", "/api/v1/namespaces/prod/secrets/x", "01"),
        ev("ResponseComplete", "delete", "mallory", "/api/v1/namespaces/prod/secrets/x", "01"),
        ev("ResponseComplete", "get", "mallory", "/api/v1/namespaces/prod/secrets/x", "01"),
        ev("ResponseComplete", "delete", "bob", "/api/v1/namespaces/prod/secrets/x", "01"),
        ev("ResponseComplete", "delete", "mallory", "/api/v1/namespaces/prod/secrets/x?dryRun=All", "01"),
        ev("ResponseComplete", "delete", "mallory", "/api/v1/namespaces/prod/secrets/x", "02"),
    ]
    .join("\n");
    let events = kaq_oracle::events_of(&log);
    for (q, n) in [
        ("| count", 5),
        ("verb:delete | count", 4),
        ("stage:RequestReceived | count", 1),
        ("id_reused:true | count", 5),
    ] {
        let plan = kaq_query::compile(q, &Default::default()).unwrap();
        let got = json_rows(&kaq_query::run_on_text(&plan, &log), plan.output_columns());
        assert_eq!(got[0]["count"], n, "`{q}`");
        assert_eq!(got, kaq_oracle::answer(q, &events, &Default::default()), "`{q}`");
    }
}
