//! Every native-shaped file of ../shared/corpus converts, with the right number of events.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use kaq_input::{EventHandler, ReadOptions};
use kaq_schema::Event;

use crate::common::*;

/// The directories and files of the corpus holding native audit Events (SOURCES.md); the
/// cloud-wrapped ones (GKE, AKS records) belong to the managed-cluster inputs.
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
    let sources = kaq_input::expand(&[file]).unwrap().sources;
    kaq_input::read(&sources, &ReadOptions::default(), &Count, |_| Ok::<(), Infallible>(())).unwrap()
}

#[test]
fn every_native_corpus_file_converts_with_its_event_count() {
    let Some(shared) = shared("corpus") else { return };
    let mut total = 0;
    for f in native_files(&shared) {
        let expected = reference_events(&f).len() as u64;
        let report = kaq_count(&f);
        assert_eq!(report.counts.events, expected, "{}", f.display());
        assert!(report.read_errors.is_empty(), "{}: {:?}", f.display(), report.read_errors);
        total += report.counts.events;
    }
    // SOURCES.md: 143 native-shaped events, of which 25 are inside AKS records (issue 5).
    assert_eq!(total, 118);
}

#[test]
fn known_non_events_in_the_corpus_are_rejected_with_reasons() {
    let Some(shared) = shared("corpus") else { return };
    let r = kaq_count(&shared.join("corpus/falco-trace-files/fal_01_003.json"));
    assert_eq!((r.counts.events, r.counts.rejected), (0, 1));
    let mixed = shared.join("corpus/elastic-integrations/kubernetes-audit_logs/test-audit.log");
    let r = kaq_count(&mixed);
    assert_eq!((r.counts.events, r.counts.rejected), (3, 2));
    let out = tmp();
    let rejects = out.path().join("rejects.jsonl");
    let o = convert(&mixed, &out.path().join("x.parquet"), &["--rejects", rejects.to_str().unwrap()]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("test-audit.log:4: not an audit Event: no auditID (this looks like a GKE Cloud Logging entry)"),
        "{err}"
    );
    assert!(
        err.contains("test-audit.log:5: not an audit Event: no auditID (this looks like an AKS diagnostic record)"),
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
    assert!(err.contains("converted 118 events"), "{err}");
    assert_eq!(parquet_events(&pq).len(), 118);
}

/// The fixtures copied into tests/data run everywhere, corpus or not.
#[test]
fn fixtures_in_tests_data_convert() {
    let data = repo().join("tests/data");
    let mut total = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let f = entry.unwrap().path();
        if f.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let r = kaq_count(&f);
        assert_eq!(r.counts.events, reference_events(&f).len() as u64, "{}", f.display());
        total += r.counts.events;
    }
    // demo.log 37, single-event 1, KubeAuditLog 1, configmaps 6, secret 1; fal_01_003 none.
    assert_eq!(total, 46);
}
