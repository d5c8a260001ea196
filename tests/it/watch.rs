//! `kaq watch`: live detection over a followed log gives the alerts `kaq detect` gives over the
//! final store, quickly, once each across restarts; alerts reach a webhook (with retries).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{gen_audit, kaq, stderr};

fn rows(store: &Path) -> u64 {
    match kaq_store::Store::open(store) {
        Ok(s) => s.manifest().rows(),
        Err(_) => 0,
    }
}

fn wait_rows(store: &Path, n: u64, child: &mut Child, errors: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(180) {
        if rows(store) == n {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kaq watch exited ({status}): {}", std::fs::read_to_string(errors).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the store never held {n} rows (holds {})", rows(store));
}

/// SIGINT; waits for the exit and returns its code.
fn interrupt(child: &mut Child) -> Option<i32> {
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    child.wait().unwrap().code()
}

fn append(log: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn key(a: &Value) -> (String, String, String) {
    (a["rule"].as_str().unwrap().into(), a["group"].to_string(), a["first"].as_str().unwrap().into())
}

fn ids(a: &Value) -> Vec<String> {
    a["auditIDs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `kaq detect --store STORE` (no user rules) as JSON alerts.
fn detect(store: &Path, config: &Path) -> Vec<Value> {
    let o = kaq()
        .env("KAQ_CONFIG_DIR", config)
        .args(["detect", "--no-user-rules", "--format", "json", "--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 4)), "{}", stderr(&o));
    json_lines(&String::from_utf8_lossy(&o.stdout))
}

struct Watch {
    store: PathBuf,
    config: PathBuf,
    out: PathBuf,
    errors: PathBuf,
    extra: Vec<String>,
}

impl Watch {
    fn new(dir: &Path) -> Watch {
        let config = dir.join("config");
        std::fs::create_dir_all(&config).unwrap();
        Watch {
            store: dir.join("store"),
            config,
            out: dir.join("alerts.jsonl"),
            errors: dir.join("stderr.txt"),
            extra: Vec::new(),
        }
    }

    /// Starts `kaq watch LOG` appending its alerts to `out`.
    fn spawn(&self, log: &Path) -> Child {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.out).unwrap();
        let err = std::fs::OpenOptions::new().create(true).append(true).open(&self.errors).unwrap();
        kaq()
            .env("KAQ_CONFIG_DIR", &self.config)
            .args(["watch", "--no-user-rules", "--format", "json", "--store", self.store.to_str().unwrap()])
            .args(&self.extra)
            .arg(log)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap()
    }

    fn alerts(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(&self.errors).unwrap_or_default()
    }
}

/// Compares what watch sent with what `kaq detect` reports over the final store: the same
/// alerts (rule, group, first), none twice, and each sent with evidence the final alert holds.
/// Returns how many were sent with the final alert's count and auditIDs exactly.
fn same_alerts(sent: &[Value], want: &[Value], errors: &str) -> usize {
    let mut seen = BTreeSet::new();
    for a in sent {
        assert!(seen.insert(key(a)), "sent twice: {a}\n{errors}");
    }
    let want_keys: BTreeSet<_> = want.iter().map(key).collect();
    assert_eq!(
        seen.iter().filter(|k| !want_keys.contains(*k)).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "sent by kaq watch, not reported by kaq detect\n{errors}"
    );
    assert_eq!(
        want_keys.iter().filter(|k| !seen.contains(*k)).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "reported by kaq detect, never sent by kaq watch\n{errors}"
    );
    let by_key: BTreeMap<_, _> = want.iter().map(|a| (key(a), a)).collect();
    let mut exact = 0;
    for a in sent {
        let w = by_key[&key(a)];
        assert!(a["count"].as_u64() <= w["count"].as_u64(), "sent {a}\nfinal {w}");
        let final_ids: BTreeSet<String> = ids(w).into_iter().collect();
        if w["count"].as_u64().unwrap() as usize == final_ids.len() {
            for i in ids(a) {
                assert!(final_ids.contains(&i), "sent {a}\nfinal {w}");
            }
        }
        exact += usize::from(a["count"] == w["count"] && a["auditIDs"] == w["auditIDs"]);
    }
    exact
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect()
}

#[test]
fn watch_sends_what_detect_reports_through_rotation_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source.log");
    if gen_audit(&["--seed", "7", "--events", "6000", "--stages", "--extra-incidents"], &src).is_none() {
        return;
    }
    let all = lines_of(&src);
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("audit.log");
    let w = Watch::new(tmp.path());
    let mut child = w.spawn(&log);
    let chunks = 10;
    let per = all.len().div_ceil(chunks);
    let mut written = 0;
    let (mut kills, mut stopped) = (0, 0);
    for (i, part) in all.chunks(per).enumerate() {
        match i {
            // Rotation by rename while watching: the old file is read to its end, then the new.
            3 => std::fs::rename(&log, logs.join("audit-1.log")).unwrap(),
            // Killed (SIGKILL) wherever it is; lines written while it is down.
            5 => {
                let _ = child.kill();
                let _ = child.wait();
                kills += 1;
            }
            // Stopped cleanly (SIGINT), rotated while stopped.
            8 => {
                wait_rows(&w.store, written as u64, &mut child, &w.errors);
                let code = interrupt(&mut child);
                assert!(matches!(code, Some(0 | 4)), "SIGINT: {code:?}: {}", w.errors());
                stopped += 1;
                std::fs::rename(&log, logs.join("audit-2.log")).unwrap();
            }
            _ => {}
        }
        // Half a line now and then: it waits for the rest.
        let text = part.concat();
        let cut = if i % 3 == 1 { text.len() - part.last().unwrap().len() / 2 } else { text.len() };
        append(&log, &text[..cut]);
        std::thread::sleep(Duration::from_millis(150));
        append(&log, &text[cut..]);
        written += part.len();
        if i == 5 || i == 8 {
            child = w.spawn(&log);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_rows(&w.store, all.len() as u64, &mut child, &w.errors);
    let code = interrupt(&mut child);
    assert!(matches!(code, Some(0 | 4)), "SIGINT ends kaq watch cleanly: {code:?}: {}", w.errors());
    let sent = w.alerts();
    let want = detect(&w.store, &w.config);
    assert!(want.len() > 20, "the generated log's incidents fire rules: {want:?}");
    let exact = same_alerts(&sent, &want, &w.errors());
    let _ = writeln!(
        std::io::stderr(),
        "watch: {} alerts over {} events in {chunks} chunks ({kills} kill, {stopped} stop, 2 rotations), all as kaq detect reports them; {exact} with the final count and auditIDs (the others were sent before their burst ended)",
        sent.len(),
        all.len()
    );
    // Compacted meanwhile (every segment new), started again with nothing new: nothing is sent
    // again.
    let o = kaq().args(["compact", "--store", w.store.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = w.spawn(&log);
    std::thread::sleep(Duration::from_millis(1500));
    let code = interrupt(&mut child);
    assert_eq!(code, Some(0), "nothing new fired: {}", w.errors());
    assert_eq!(w.alerts().len(), sent.len(), "a restart sends nothing again");
}

#[test]
fn watch_from_memory_sends_what_detect_reports_over_small_commits() {
    // Small commits are evaluated from the hits held in memory and the new requests' records
    // (read again from the store by auditID): stages split across commits, bursts growing across
    // them, and an auditID reused by a later request (whose earlier request becomes a forgery's
    // evidence too) must give what `kaq detect` reports over the final store.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source.log");
    if gen_audit(&["--seed", "11", "--events", "4000", "--stages", "--extra-incidents"], &src).is_none() {
        return;
    }
    let mut all = lines_of(&src);
    // A different request (another user, another URI) carrying the auditID of an early one.
    let mut forged: Value = serde_json::from_str(&all[40]).unwrap();
    let last: Value = serde_json::from_str(all.last().unwrap()).unwrap();
    forged["user"] = serde_json::json!({"username": "mallory@example.com", "groups": ["system:authenticated"]});
    forged["requestURI"] = "/api/v1/namespaces/prod/secrets".into();
    forged["stage"] = "ResponseComplete".into();
    forged["requestReceivedTimestamp"] = last["requestReceivedTimestamp"].clone();
    forged["stageTimestamp"] = last["stageTimestamp"].clone();
    all.push(format!("{forged}\n"));
    let log = tmp.path().join("audit.log");
    let w = Watch::new(tmp.path());
    let mut child = w.spawn(&log);
    let chunks = 30;
    for part in all.chunks(all.len().div_ceil(chunks)) {
        append(&log, &part.concat());
        std::thread::sleep(Duration::from_millis(400));
    }
    wait_rows(&w.store, all.len() as u64, &mut child, &w.errors);
    let code = interrupt(&mut child);
    assert!(matches!(code, Some(0 | 4)), "SIGINT ends kaq watch cleanly: {code:?}: {}", w.errors());
    let sent = w.alerts();
    let want = detect(&w.store, &w.config);
    let forgeries: Vec<&Value> = want.iter().filter(|a| a["rule"] == "forged-audit-id").collect();
    assert!(
        forgeries.iter().any(|a| a["group"]["user"] == "mallory@example.com") && forgeries.len() >= 2,
        "both requests of the reused auditID are forgery evidence: {forgeries:?}"
    );
    let exact = same_alerts(&sent, &want, &w.errors());
    // Evaluations of small commits after the first: every rule from memory.
    let errors = w.errors();
    let evaluations: Vec<(usize, usize)> = errors
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(" events; ")?;
            let (ran, rest) = rest.split_once(" of ")?;
            let (_, rest) = rest.split_once(" rules ran (")?;
            let (memory, _) = rest.split_once(" from memory")?;
            Some((ran.parse().ok()?, memory.parse().ok()?))
        })
        .collect();
    let whole = evaluations.iter().filter(|(ran, memory)| ran == memory && *ran > 0).count();
    assert!(
        evaluations.len() >= 10 && whole + 2 >= evaluations.len(),
        "after the first, commits are evaluated from memory: {evaluations:?}\n{errors}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "watch from memory: {} alerts over {} events, {} of {} evaluations wholly from memory; {exact} with the final count and auditIDs",
        sent.len(),
        all.len(),
        whole,
        evaluations.len()
    );
}

/// An exec into a pod by `user` at `time`: fires `exec-into-pod` for that user.
fn exec_event(user: &str, time: &str, n: usize) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("00000000-0000-4000-8000-{n:012}"), "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/dev/pods/web-1/exec?command=sh",
        "verb": "create", "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.9.9.9"], "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "pods", "namespace": "dev", "name": "web-1", "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": time, "stageTimestamp": time
    })
    .to_string()
        + "\n"
}

#[test]
fn an_alert_is_printed_soon_after_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source.log");
    if gen_audit(&["--seed", "3", "--events", "3000", "--start", "2026-11-20T00:00:00Z", "--hours", "2"], &src)
        .is_none()
    {
        return;
    }
    let log = tmp.path().join("audit.log");
    std::fs::copy(&src, &log).unwrap();
    let w = Watch::new(tmp.path());
    let mut child = kaq()
        .env("KAQ_CONFIG_DIR", &w.config)
        .args(["watch", "--no-user-rules", "--format", "json", "--store", w.store.to_str().unwrap()])
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&w.errors).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let total = lines_of(&src).len() as u64;
    wait_rows(&w.store, total, &mut child, &w.errors);
    std::thread::sleep(Duration::from_millis(500));
    while rx.try_recv().is_ok() {} // the catch-up's alerts
    let mut took = Vec::new();
    for n in 0..5 {
        // Later than the log, an hour apart: a new alert each time.
        let time = format!("2026-11-20T{:02}:30:00.000000Z", 3 + n);
        let user = format!("latency-{n}@example.com");
        let appended = Instant::now();
        append(&log, &exec_event(&user, &time, n));
        let deadline = appended + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no alert for {user} within 60 s of its line: {}", std::fs::read_to_string(&w.errors).unwrap())
            });
            let a: Value = serde_json::from_str(&line).unwrap();
            if a["rule"] == "exec-into-pod" && a["group"]["user"] == user.as_str() {
                took.push(appended.elapsed());
                break;
            }
        }
    }
    let _ = interrupt(&mut child);
    reader.join().unwrap();
    took.sort();
    let ms: Vec<u128> = took.iter().map(|d| d.as_millis()).collect();
    let _ = writeln!(
        std::io::stderr(),
        "watch latency (line appended → alert printed), 5 alerts over a {total}-event store: {ms:?} ms, median {} ms",
        ms[2]
    );
    // Generous for a loaded machine and a debug build; the typical figure is printed above.
    assert!(took[2] < Duration::from_secs(20), "median {:?}", took[2]);
}

/// A loopback HTTP receiver: answers 503 to the first `fail` requests, then 200; keeps the
/// bodies it answered 200 to, and counts every request.
pub struct Receiver {
    pub url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    pub fn start(fail: usize) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/kaq", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = conn.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        assert!(head.starts_with("POST /hooks/kaq HTTP/1.1"), "{head}");
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse().ok())
                            .unwrap();
                        while buf.len() < end + 4 + len {
                            let n = conn.read(&mut chunk).unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break Some(String::from_utf8_lossy(&buf[end + 4..]).to_string());
                    }
                };
                let i = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = if i < fail { "503 Service Unavailable" } else { "200 OK" };
                if i >= fail
                    && let Some(body) = body
                {
                    b.lock().unwrap().push(body);
                }
                let _ = conn.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                );
            }
        });
        Receiver { url, bodies, requests }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn alerts_reach_a_webhook_as_json_or_slack_text_after_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    if gen_audit(&["--seed", "11", "--events", "3000", "--extra-incidents"], &log).is_none() {
        return;
    }
    let total = lines_of(&log).len() as u64;
    for (shape, fail) in [("json", 2usize), ("slack", 0)] {
        let dir = tmp.path().join(shape);
        std::fs::create_dir(&dir).unwrap();
        let receiver = Receiver::start(fail);
        let mut w = Watch::new(&dir);
        w.extra = vec!["--webhook".into(), receiver.url.clone(), "--webhook-format".into(), shape.into()];
        let mut child = w.spawn(&log);
        wait_rows(&w.store, total, &mut child, &w.errors);
        // Stopped: what is queued is delivered first (retries included).
        let code = interrupt(&mut child);
        assert_eq!(code, Some(4), "{}", w.errors());
        let sent = w.alerts();
        assert!(!sent.is_empty());
        let bodies = receiver.bodies();
        match shape {
            "json" => {
                let got: Vec<Value> = bodies.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
                assert_eq!(got, sent, "the webhook gets each alert line, in order: {}", w.errors());
                // The first two attempts were refused (503) and retried.
                assert_eq!(receiver.requests.load(std::sync::atomic::Ordering::SeqCst), sent.len() + fail);
                assert!(w.errors().contains(&format!("{} delivered, {fail} retried", sent.len())), "{}", w.errors());
            }
            _ => {
                assert_eq!(bodies.len(), sent.len(), "{}", w.errors());
                for (b, a) in bodies.iter().zip(&sent) {
                    let v: Value = serde_json::from_str(b).unwrap();
                    let text = v["text"].as_str().unwrap();
                    let head = format!(
                        "[{}] {}:",
                        a["severity"].as_str().unwrap().to_uppercase(),
                        a["rule"].as_str().unwrap()
                    );
                    assert!(text.starts_with(&head), "{text}");
                    assert_eq!(v.as_object().unwrap().len(), 1, "{b}");
                }
            }
        }
    }
}

#[test]
fn an_endpoint_that_never_answers_well_costs_alerts_said_on_stderr_not_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    if gen_audit(&["--seed", "5", "--events", "2000", "--extra-incidents"], &log).is_none() {
        return;
    }
    let total = lines_of(&log).len() as u64;
    let receiver = Receiver::start(usize::MAX);
    let mut w = Watch::new(tmp.path());
    w.extra = vec!["--webhook".into(), receiver.url.clone(), "--webhook-retries".into(), "1".into()];
    let mut child = w.spawn(&log);
    wait_rows(&w.store, total, &mut child, &w.errors);
    let code = interrupt(&mut child);
    assert_eq!(code, Some(4), "{}", w.errors());
    let sent = w.alerts();
    let errors = w.errors();
    let dropped = errors.lines().filter(|l| l.starts_with("kaq: webhook: alert not delivered:")).count();
    assert_eq!(dropped, sent.len(), "every undelivered alert is named: {errors}");
    assert!(errors.contains("answered 503 (2 attempts)"), "{errors}");
}

#[test]
fn watch_help_teaches_and_bad_input_is_refused_clearly() {
    let o = kaq().args(["watch", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for want in ["kaq detect", "--webhook", "alerts.state.json", "Exit status", "slack"] {
        assert!(help.contains(want), "{want} in:\n{help}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = kaq()
        .args([
            "watch",
            "--store",
            tmp.path().join("s").to_str().unwrap(),
            "--webhook",
            "https://hooks.example/x",
            "x.log",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTPS is not supported"), "{}", stderr(&o));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[rule]]\nid = \"x\"\nseverity = \"high\"\nquery = \"usr:alice\"\n").unwrap();
    let o = kaq()
        .args(["watch", "--no-user-rules", "--rules", bad.to_str().unwrap(), "--store"])
        .arg(tmp.path().join("s"))
        .arg("x.log")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.toml") && stderr(&o).contains("usr"), "{}", stderr(&o));
}
