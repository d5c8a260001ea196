//! The store: `kaq ingest`, `kaq info`, `kaq query --store` — the same answers as over the files,
//! across segments and runs; re-ingesting adds nothing; one writer; private files; kill -9 at any
//! moment leaves a readable store with every committed event once; a v1 store keeps opening.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::common::{gen_audit, kaq, repo, run, stderr, tmp};

fn ingest(store: &Path, inputs: &[&Path]) -> std::process::Output {
    let mut args = vec!["ingest".to_string(), "--store".into(), store.display().to_string(), "--quiet".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    kaq().args(&args).output().unwrap()
}

fn lines(o: &std::process::Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", stderr(o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn query_store(store: &Path, q: &str) -> Vec<Value> {
    lines(&run(&["query", q, "--store", store.to_str().unwrap(), "--format", "json"]))
}

fn query_files(files: &[&Path], q: &str) -> Vec<Value> {
    let mut args = vec!["query".to_string(), q.to_string(), "--format".into(), "json".into()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    lines(&kaq().args(&args).output().unwrap())
}

fn manifest(store: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(store.join("MANIFEST.json")).unwrap()).unwrap()
}

fn rows(store: &Path) -> u64 {
    manifest(store)["segments"].as_array().unwrap().iter().map(|s| s["rows"].as_u64().unwrap()).sum()
}

const QUERIES: &[&str] = &[
    "verb:delete ns:prod*",
    "code:401 | count by ip | where count > 20 | sort -count",
    "resource:secrets verb:(get OR list) -user_kind:node | stats count, dc(name) as secrets by user, ip",
    "latency>1s | stats count, p50(latency), p99(latency), max(latency) by verb, resource",
    "| timeline 1h by verb",
    "stage:RequestReceived | count by verb",
    "| count",
];

/// Whole events from a store come back through Parquet (sorted by time): compare as sorted sets.
fn same(a: Vec<Value>, b: Vec<Value>, q: &str) {
    if q.contains('|') {
        assert_eq!(a, b, "`{q}`");
    } else {
        let key = |v: &Vec<Value>| {
            let mut k: Vec<String> = v.iter().map(Value::to_string).collect();
            k.sort();
            k
        };
        assert_eq!(key(&a), key(&b), "`{q}`");
    }
}

#[test]
fn store_answers_equal_the_files_across_runs_and_segments() {
    let dir = tmp();
    let log = dir.path().join("audit.log");
    if gen_audit(&["--events", "4000", "--seed", "3", "--stages"], &log).is_none() {
        return;
    }
    // Split the log in two files: stages of one request land in different files, runs and segments.
    let text = std::fs::read_to_string(&log).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    std::fs::write(&a, all[..all.len() / 2].join("\n") + "\n").unwrap();
    std::fs::write(&b, all[all.len() / 2..].join("\n") + "\n").unwrap();
    let store = dir.path().join("store");
    assert!(ingest(&store, &[&a]).status.success());
    let data = repo().join("tests/data/audit2rbac_demo.log");
    let o = ingest(&store, &[&b, &data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&store);
    assert_eq!(m["segments"].as_array().unwrap().len(), 2);
    for q in QUERIES {
        same(query_store(&store, q), query_files(&[&a, &b, &data], q), q);
    }
    // Ingesting the same files again adds nothing.
    let before = rows(&store);
    let o = kaq().args(["ingest", "--store", store.to_str().unwrap()]).arg(&a).arg(&b).output().unwrap();
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("ingested 0 events from 0 input(s)") && stderr(&o).contains("2 input(s) already"),
        "{}",
        stderr(&o)
    );
    assert_eq!(rows(&store), before);
    assert_eq!(manifest(&store)["sources"].as_array().unwrap().len(), 3);

    // `kaq info` says what is there.
    let info = run(&["info", "--store", store.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&info.stdout);
    assert!(out.contains("segments:  2") && out.contains(&crate::common::thousands(before)), "{out}");

    // Compaction merges the two segments; every answer stays the same.
    let o = run(&["compact", "--store", store.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest(&store)["segments"].as_array().unwrap().len(), 1);
    assert_eq!(rows(&store), before);
    // The replaced files (a Parquet file and an index directory per segment) are deleted by the
    // compaction itself, which says so.
    assert_eq!(std::fs::read_dir(store.join("segments")).unwrap().count(), 2, "old segments removed");
    assert!(stderr(&o).contains("2 segment(s) → 1") && stderr(&o).contains("; deleted 2 segments ("), "{}", stderr(&o));
    for q in QUERIES {
        same(query_store(&store, q), query_files(&[&a, &b, &data], q), q);
    }

    // Prune: the events before the cutoff go, the others stay exactly.
    let cutoff = "2026-11-20T12:00:00Z";
    let keep_q = format!("time>={cutoff} | count");
    let keep = query_files(&[&a, &b, &data], &keep_q);
    let all_rows_after = lines(
        &kaq()
            .args(["query", &keep_q, "--all-stages", "--format", "json"])
            .arg(&a)
            .arg(&b)
            .arg(&data)
            .output()
            .unwrap(),
    );
    let o = run(&["prune", "--before", cutoff, "--store", store.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rows(&store), all_rows_after[0]["count"].as_u64().unwrap(), "rows left = events at or after the cutoff");
    assert_eq!(query_store(&store, &keep_q), keep);
    let o = run(&["prune", "--older-than", "nonsense", "--store", store.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a duration"), "{}", stderr(&o));

    // Private files.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&store.join("segments")), 0o700);
    assert_eq!(mode(&store.join("MANIFEST.json")), 0o600);
    for e in std::fs::read_dir(store.join("segments")).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
            for f in std::fs::read_dir(&p).unwrap().flatten() {
                assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
            }
        } else {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[test]
fn a_second_writer_is_refused_and_readers_are_not() {
    let dir = tmp();
    let store = dir.path().join("store");
    let data = repo().join("tests/data/audit2rbac_demo.log");
    assert!(ingest(&store, &[&data]).status.success());
    let writer = kaq_store::Store::open_writer(&store).unwrap();
    let o = ingest(&store, &[&repo().join("tests/data/kube-audit-log-tool_single-event.json")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("another kaq is writing to this store"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("process {}", std::process::id())), "{}", stderr(&o));
    assert_eq!(query_store(&store, "| count")[0]["count"], 37, "readers read while a writer holds the lock");
    drop(writer);
    assert!(ingest(&store, &[&repo().join("tests/data/kube-audit-log-tool_single-event.json")]).status.success());
    assert_eq!(rows(&store), 38);
}

#[test]
fn kill_9_during_ingest_never_loses_or_duplicates() {
    let dir = tmp();
    let mut files: Vec<PathBuf> = Vec::new();
    for i in 0..4 {
        let f = dir.path().join(format!("part-{i}.log"));
        if gen_audit(&["--events", "3000", "--seed", &(20 + i).to_string()], &f).is_none() {
            return;
        }
        files.push(f);
    }
    let expected: u64 = files.iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count() as u64).sum();
    let store = dir.path().join("store");
    let kills = std::env::var("KAQ_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(12u64);
    // One commit per input file, so that a kill can fall between commits.
    let ingest_cmd = |store: &Path| {
        let mut c = kaq();
        c.args(["ingest", "--quiet", "--threads", "2", "--segment-events", "1", "--store", store.to_str().unwrap()])
            .args(&files)
            .stderr(Stdio::null());
        c
    };
    // How long an uninterrupted ingest takes: kills fall uniformly within it.
    let t0 = std::time::Instant::now();
    assert!(ingest_cmd(&dir.path().join("timing")).status().unwrap().success());
    let full = t0.elapsed().as_millis().max(10) as u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut killed_mid = 0;
    let mut partial = 0;
    for round in 0..kills {
        // (A kill before the first commit can leave the directory without a manifest.)
        if store.join("MANIFEST.json").exists() && rows(&store) == expected {
            std::fs::remove_dir_all(&store).unwrap(); // complete: start again, so every round has work
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = ingest_cmd(&store).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(seed % (full + full / 5)));
        if child.try_wait().unwrap().is_none() {
            killed_mid += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !store.join("MANIFEST.json").exists() {
            continue; // killed before the store existed
        }
        // The store opens, and what it holds is exactly the files its manifest names.
        let s = kaq_store::Store::open(&store).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let m = s.manifest();
        let listed: u64 = m.sources.iter().map(|x| x.events).sum();
        assert_eq!(m.rows(), listed, "round {round}: rows vs sources");
        let mut paths: Vec<&str> = m.sources.iter().map(|x| x.path.as_str()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), m.sources.len(), "round {round}: a file ingested twice");
        assert_eq!(query_store(&store, "| count")[0]["count"].as_u64().unwrap(), m.rows(), "round {round}");
        if m.rows() > 0 && m.rows() < expected {
            partial += 1;
        }
    }
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "kill -9 test: {kills} kills, {killed_mid} during an ingest, {partial} leaving part of the files committed"
        );
    }
    assert!(killed_mid > 0, "no kill landed during an ingest");
    // Resume: the files not yet committed, each once.
    let o = ingest(&store, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rows(&store), expected, "every event once after {kills} kills ({killed_mid} mid-run)");
    // No duplicates: each (auditID, stage) once, as in the input.
    let distinct = query_store(&store, "| stats dc(id) as ids");
    assert_eq!(distinct[0]["ids"].as_u64().unwrap(), expected);
    // Nothing but live segments (file and index) is left once a writer has opened the store.
    let live = manifest(&store)["segments"].as_array().unwrap().len();
    assert_eq!(std::fs::read_dir(store.join("segments")).unwrap().count(), 2 * live);
}

#[test]
fn a_committed_v1_store_keeps_opening() {
    let store = repo().join("tests/data/store-v1");
    let m = kaq_store::Store::open(&store).unwrap();
    assert_eq!(m.manifest().version, 1);
    assert_eq!(query_store(&store, "| count")[0]["count"], 37);
    let got = query_store(&store, "code:403 | count by user");
    assert_eq!(got, vec![serde_json::json!({"user": "system:admin", "count": 11})]);
}

/// A store written by the kaq before index version 9 (`tests/data/store-v8`: index version 8, its
/// term dictionaries FSTs, which this kaq's tantivy cannot open): its segment is searched through
/// its columns, with the logs' own answers, and `kaq info` says so; the values the REPL completes
/// come from its columns; `kaq compact` rebuilds its index as version 9, which is then used.
#[test]
fn a_store_of_index_version_8_is_searched_by_its_columns_until_compacted() {
    let dir = tmp();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("segments/seg-000001.index")).unwrap();
    let from = repo().join("tests/data/store-v8");
    for f in walk(&from) {
        std::fs::copy(&f, store.join(f.strip_prefix(&from).unwrap())).unwrap();
    }
    let logs = [
        repo().join("tests/data/audit2rbac_demo.log"),
        repo().join("tests/data/falco-trace-files_create_configmap_sensitive_values.json"),
    ];
    let logs: Vec<&Path> = logs.iter().map(|p| p.as_path()).collect();
    let questions = [
        "| count",
        "name:my-config | count by verb",
        "user:minikube-user | count",
        "ip:\"::1\" | count",
        "code:403 | count by user",
    ];
    let answers: Vec<Vec<Value>> = questions.iter().map(|q| query_files(&logs, q)).collect();
    assert_eq!(answers[1], vec![serde_json::json!({"verb": "create", "count": 6})]);
    let out = |args: &[&str]| String::from_utf8_lossy(&run(args).stdout).into_owned();
    let explain = |q: &str| out(&["query", q, "--store", store.to_str().unwrap(), "--explain"]);
    let info = || out(&["info", "--store", store.to_str().unwrap()]);
    for (q, a) in questions.iter().zip(&answers) {
        assert_eq!(&query_store(&store, q), a, "`{q}` over the version-8 store");
    }
    assert!(explain(questions[1]).contains("answered from columns"), "{}", explain(questions[1]));
    assert!(info().contains("index:     1 of 1 segment(s) without an index this kaq uses"), "{}", info());
    let values = |s: &kaq_store::Store, field: &str| s.top_terms(field, "", 5).unwrap();
    let s = kaq_store::Store::open(&store).unwrap();
    assert_eq!(values(&s, "name"), [("my-config".to_string(), 6)]);
    assert_eq!(values(&s, "ip"), [("::1".to_string(), 37), ("192.168.99.1".to_string(), 6)]);
    drop(s);

    let o = run(&["compact", "--store", store.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = kaq_store::Store::open(&store).unwrap();
    assert!(s.manifest().segments.iter().all(|s| s.index_version == Some(kaq_store::index::VERSION)));
    assert_eq!(values(&s, "name"), [("my-config".to_string(), 6)]);
    assert_eq!(values(&s, "ip"), [("::1".to_string(), 37), ("192.168.99.1".to_string(), 6)]);
    for (q, a) in questions.iter().zip(&answers) {
        assert_eq!(&query_store(&store, q), a, "`{q}` once compacted");
    }
    assert!(explain(questions[1]).contains("index postings"), "{}", explain(questions[1]));
    assert!(!info().contains("index:"), "{}", info());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn cloud_exports_ingest_like_files() {
    let Some(shared) = crate::common::shared("corpus/sysdig-aks-audit-log") else { return };
    let dir = tmp();
    let store = dir.path().join("store");
    let aks = shared.join("corpus/sysdig-aks-audit-log");
    let gke = shared.join("corpus/sysdig-stackdriver-bridge");
    let o = kaq().args(["ingest", "--quiet", "--store", store.to_str().unwrap()]).arg(&aks).arg(&gke).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for q in ["| count by verb, user", "resource:pods | table user, verb, name, code"] {
        let mut a = query_store(&store, q);
        let mut b = query_files(&[&aks, &gke], q);
        a.sort_by_key(|v| v.to_string());
        b.sort_by_key(|v| v.to_string());
        assert!(!a.is_empty());
        assert_eq!(a, b, "`{q}`");
    }
}

/// `kaq ingest --follow`, killed with SIGKILL again and again while a writer appends to the log
/// and rotates it: each restart resumes where the last commit ended, finishing first a file
/// rotated away meanwhile; at the end every line written is in the store exactly once. Then
/// SIGINT stops it cleanly, after a last commit.
#[test]
fn follow_killed_and_restarted_never_loses_or_duplicates() {
    let dir = tmp();
    let src = dir.path().join("source.log");
    if gen_audit(&["--events", "6000", "--seed", "41", "--stages"], &src).is_none() {
        return;
    }
    let all: Vec<String> =
        std::fs::read_to_string(&src).unwrap().lines().filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect();
    let log = dir.path().join("audit.log");
    let store = dir.path().join("store");
    let errors = dir.path().join("stderr.txt");
    let follow = || {
        kaq()
            .args(["ingest", "--follow", "--threads", "2", "--poll", "20ms", "--commit-every", "50ms"])
            .args(["--store", store.to_str().unwrap(), log.to_str().unwrap()])
            .stderr(std::fs::File::create(&errors).unwrap())
            .spawn()
            .unwrap()
    };
    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let rounds = std::env::var("KAQ_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(8usize).max(2);
    let per = all.len() / rounds;
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let wait_for = |n: usize| {
        for _ in 0..1500 {
            if store.join("MANIFEST.json").exists() && rows(&store) == n as u64 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the store never held {n} rows");
    };
    let mut child = follow();
    let mut written = 0;
    let mut mid_commit = 0;
    for round in 0..rounds {
        let part = &all[written..if round + 1 == rounds { all.len() } else { (round + 1) * per }];
        // Written in bursts, some ending in half a line.
        for burst in part.chunks(per / 4 + 1) {
            let text = burst.concat();
            let cut = if rng() % 3 == 0 { text.len() - burst.last().unwrap().len() / 2 } else { text.len() };
            append(&text[..cut]);
            std::thread::sleep(std::time::Duration::from_millis(rng() % 40));
            append(&text[cut..]);
        }
        written += part.len();
        std::thread::sleep(std::time::Duration::from_millis(rng() % 500));
        let _ = child.kill(); // SIGKILL, wherever it is
        let _ = child.wait();
        if store.join("MANIFEST.json").exists() {
            let s = kaq_store::Store::open(&store).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let held = s.manifest().rows();
            assert!(held <= written as u64, "round {round}: {held} rows, {written} lines written");
            mid_commit += usize::from(held > 0 && held < written as u64);
        }
        child = follow();
        if round % 3 == 1 && round + 1 < rounds {
            // Rotation by rename (once the store knows the file), now and then while kaq is not
            // running: the next round writes a new audit.log.
            wait_for(written);
            let rotated = dir.path().join(format!("audit-{round}.log"));
            if rng() % 2 == 0 {
                let _ = child.kill();
                let _ = child.wait();
                std::fs::rename(&log, rotated).unwrap();
                append(&all[written..written + 10].concat()); // a new file, then a restart
                written += 10;
                child = follow();
            } else {
                std::fs::rename(&log, rotated).unwrap();
            }
        }
    }
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "follow kill test: {rounds} kills, {mid_commit} with part of the lines committed"
        );
    }
    // Let it catch up, then stop it with SIGINT: it commits and exits 0. It says it is following
    // once it handles SIGINT: before, the signal ends it as any process (the store may already
    // hold every line, committed by the one killed last).
    wait_for(all.len());
    for _ in 0..1500 {
        if std::fs::read_to_string(&errors).is_ok_and(|e| e.contains("kaq: following")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGINT ends a follow cleanly: {status}: {}", std::fs::read_to_string(&errors).unwrap());
    assert_eq!(
        rows(&store),
        all.len() as u64,
        "every line once after {rounds} kills: {}\n{}",
        std::fs::read_to_string(&errors).unwrap(),
        std::fs::read_to_string(store.join("MANIFEST.json")).unwrap()
    );
    let distinct = query_store(&store, "| stats dc(id) as ids");
    let ids: std::collections::HashSet<String> = all
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["auditID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(distinct[0]["ids"].as_u64().unwrap(), ids.len() as u64);
    let per_stage = query_store(&store, "| count by id, stage | where count > 1 | count");
    assert_eq!(per_stage[0]["count"].as_u64().unwrap(), 0, "no (auditID, stage) twice");
}

/// kaq Parquet (from `kaq convert`) ingests as the log it came from would, once.
#[test]
fn converted_parquet_ingests_like_its_log() {
    let dir = tmp();
    let log = repo().join("tests/data/audit2rbac_demo.log");
    let pq = dir.path().join("demo.parquet");
    let o = run(&["convert", log.to_str().unwrap(), "-o", pq.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = dir.path().join("store");
    let o = ingest(&store, &[&pq]);
    assert!(o.status.success(), "{}", stderr(&o));
    for q in QUERIES {
        same(query_store(&store, q), query_files(&[&log], q), q);
    }
    let before = rows(&store);
    assert!(before > 0);
    let o = kaq().args(["ingest", "--store", store.to_str().unwrap()]).arg(&pq).output().unwrap();
    assert!(o.status.success() && stderr(&o).contains("1 input(s) already"), "{}", stderr(&o));
    assert_eq!(rows(&store), before);
}

/// `kaq verify`: a clean store exits 0; a flipped bit in a segment file or in a file of its index
/// is reported with the file, what was expected and what was found, exit 3; a query that reads
/// the damaged segment whole errors naming it instead of answering; a store committed before
/// checksums verifies, saying what has no digest.
#[test]
fn verify_reports_damage_by_file_and_queries_refuse_it() {
    let dir = tmp();
    let store = dir.path().join("store");
    assert!(ingest(&store, &[&repo().join("examples/data/sample-audit.log.gz")]).status.success());
    let s = store.to_str().unwrap();
    let o = run(&["verify", "--store", s]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("all intact") && !out.contains("DAMAGED"), "{out}");

    let seg = store.join("segments/seg-000001.parquet");
    let clean = std::fs::read(&seg).unwrap();
    let mut bytes = clean.clone();
    bytes[clean.len() / 3] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let o = run(&["verify", "--store", s]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(3), "{out}{}", stderr(&o));
    let line = out.lines().find(|l| l.contains("DAMAGED")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with(&format!("{}: DAMAGED: content changed: crc32:", seg.display())), "{out}");
    assert!(line.contains(", expected crc32:"), "{out}");
    assert_eq!(out.matches("DAMAGED").count(), 1, "{out}");
    assert!(out.contains("1 damaged"), "{out}");
    // Every row restored (the full scan): the segment's checksum is checked first.
    let o = run(&["query", "request.spec.replicas>=0 | count", "--store", s]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.contains(&format!("{}: damaged: content changed", seg.display())), "{err}");

    // A file of the index.
    std::fs::write(&seg, &clean).unwrap();
    let index = store.join("segments/seg-000001.index");
    let largest = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&largest, &bytes).unwrap();
    let o = run(&["verify", "--store", s]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains(&format!("{}: DAMAGED: content changed", largest.display())), "{out}");

    // Committed before checksums: intact as far as can be told, saying so.
    let o = run(&["verify", "--store", repo().join("tests/data/store-v1").to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("seg-000001.parquet: no digest recorded"), "{out}");
    assert!(out.contains("MANIFEST.json: no digest recorded"), "{out}");
    assert!(out.contains("all intact (2 with no digest recorded)"), "{out}");
}
