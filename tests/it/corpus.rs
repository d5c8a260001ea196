//! Every file of ../shared/corpus converts, with the right number of events. The cloud-wrapped
//! files (GKE, AKS) are checked in detail in `inputs.rs`; here they count in the totals.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use kaq_input::{EventHandler, ReadOptions};
use kaq_schema::Event;

use crate::common::*;

/// The directories and files of the corpus holding native audit Events (SOURCES.md).
const NATIVE: &[&str] = &[
    "falco-trace-files",
    "audit2rbac/demo.log",
    "kube-audit-log-tool/single-event.json",
    "sysdig-aks-audit-log/sample_KubeAuditLog_event.json",
    "sysdig-stackdriver-bridge/k8s_audit_events",
    "elastic-integrations/kubernetes-audit_logs/test-audit.log",
];

struct Count;
impl EventHandler for Count {
    type State = u64;
    type Output = u64;
    fn start(&self) -> u64 {
        0
    }
    fn event(&self, n: &mut u64, _: &Event<'_>) {
        *n += 1;
    }
    fn finish(&self, n: u64) -> u64 {
        n
    }
}

fn native_files(shared: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for n in NATIVE {
        let p = shared.join("corpus").join(n);
        if p.is_dir() {
            let mut f: Vec<_> = std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).collect();
            f.sort();
            files.extend(f);
        } else {
            files.push(p);
        }
    }
    files
}

fn kaq_count(file: &Path) -> kaq_input::Report {
    kaq_count_as(file, kaq_input::InputFormat::Auto)
}

fn kaq_count_as(file: &Path, input_format: kaq_input::InputFormat) -> kaq_input::Report {
    let sources = kaq_input::expand(&[file]).unwrap().sources;
    let opts = ReadOptions { input_format, ..ReadOptions::default() };
    kaq_input::read(&sources, &opts, &Count, |_| Ok::<(), Infallible>(())).unwrap()
}

#[test]
fn every_native_corpus_file_converts_with_its_event_count() {
    let Some(shared) = shared("corpus") else { return };
    let mut total = 0;
    for f in native_files(&shared) {
        let expected = reference_events(&f).len() as u64;
        // Native Events only (the mixed elastic file also holds a GKE entry and an AKS record).
        let report = kaq_count_as(&f, kaq_input::InputFormat::K8s);
        assert_eq!(report.counts.events, expected, "{}", f.display());
        assert!(report.read_errors.is_empty(), "{}: {:?}", f.display(), report.read_errors);
        total += report.counts.events;
    }
    // SOURCES.md: 143 native-shaped events, of which 25 are inside AKS records (inputs.rs).
    assert_eq!(total, 118);
}

/// The wrapped files, with the events SOURCES.md counts in them: 25 AKS records (22 + 1 in
/// sysdig-aks-audit-log, 2 in elastic-integrations), 25 GKE Go dumps, 9 GKE REST entries (7 + 1
/// in gcp-audit, 1 in the mixed file, which also holds 3 native events and one of the AKS records).
#[test]
fn every_wrapped_corpus_file_converts_with_its_event_count() {
    let Some(shared) = shared("corpus") else { return };
    let c = shared.join("corpus");
    let expected = [
        ("sysdig-aks-audit-log/event.json", 22),
        ("sysdig-aks-audit-log/sample_EventHubs_event.json", 1),
        ("sysdig-stackdriver-bridge/log_entries", 25),
        ("elastic-integrations/kubernetes-audit_logs/test-audit.log", 5),
        ("elastic-integrations/kubernetes-audit_logs/test-kube-audit.log", 1),
        ("elastic-integrations/gcp-audit/test-audit.log", 7),
        ("elastic-integrations/gcp-audit/test-k8s-nonmatching-resourcename.log", 1),
    ];
    let mut total = 0;
    for (rel, n) in expected {
        let r = kaq_count(&c.join(rel));
        assert_eq!((r.counts.events, r.counts.rejected), (n, 0), "{rel}");
        total += n;
    }
    assert_eq!(total, 62);
}

#[test]
fn known_non_events_in_the_corpus_are_rejected_with_reasons() {
    let Some(shared) = shared("corpus") else { return };
    let r = kaq_count(&shared.join("corpus/falco-trace-files/fal_01_003.json"));
    assert_eq!((r.counts.events, r.counts.rejected), (0, 1));
    // Read as native Events only, the mixed file's GKE entry and AKS record are set aside.
    let mixed = shared.join("corpus/elastic-integrations/kubernetes-audit_logs/test-audit.log");
    let r = kaq_count(&mixed);
    assert_eq!((r.counts.events, r.counts.rejected), (5, 0));
    let r = kaq_count_as(&mixed, kaq_input::InputFormat::K8s);
    assert_eq!((r.counts.events, r.counts.rejected), (3, 2));
    let out = tmp();
    let rejects = out.path().join("rejects.jsonl");
    let o = convert(
        &mixed,
        &out.path().join("x.parquet"),
        &["--rejects", rejects.to_str().unwrap(), "--input-format", "k8s"],
    );
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("test-audit.log:4: not an audit Event: no auditID (this looks like a GKE Cloud Logging entry); --input-format k8s reads native Events only"),
        "{err}"
    );
    assert!(
        err.contains("test-audit.log:5: not an audit Event: no auditID (this looks like an AKS diagnostic record); --input-format k8s reads native Events only"),
        "{err}"
    );
    // The rejects file holds the two lines, whole.
    let lines: Vec<String> = std::fs::read_to_string(&rejects).unwrap().lines().map(String::from).collect();
    let originals: Vec<String> = std::fs::read_to_string(&mixed).unwrap().lines().map(String::from).collect();
    assert_eq!(lines, originals[3..5]);
}

#[test]
fn the_whole_corpus_directory_through_the_cli() {
    let Some(shared) = shared("corpus") else { return };
    let out = tmp();
    let pq = out.path().join("corpus.parquet");
    let o = run(&["convert", shared.join("corpus").to_str().unwrap(), "-o", pq.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("skipped 1 file(s)") && err.contains("SOURCES.md"), "{err}");
    // 118 native + 59 wrapped (the 62 of every_wrapped_corpus_file_converts_with_its_event_count
    // but the mixed file's 3 native ones); the one reject is falco's malformed fixture.
    assert!(err.contains("converted 177 events, rejected 1,"), "{err}");
    assert_eq!(parquet_events(&pq).len(), 177);
}

/// The fixtures copied into tests/data run everywhere, corpus or not.
#[test]
fn fixtures_in_tests_data_convert() {
    let data = repo().join("tests/data");
    let mut total = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let f = entry.unwrap().path();
        if f.is_dir() || f.extension().is_some_and(|e| e == "md") {
            continue; // store-v1/ is a store, read by store.rs
        }
        let r = kaq_count(&f);
        assert_eq!(r.counts.events, reference_events(&f).len() as u64, "{}", f.display());
        total += r.counts.events;
    }
    // demo.log 37, single-event 1, KubeAuditLog 1, configmaps 6, secret 1; fal_01_003 none.
    assert_eq!(total, 46);
}
