//! `kaq serve`: the webhook receiver (durable acknowledgement, under load and across kill -9),
//! authentication, refused bodies, and the query API against `kaq query`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{gen_audit, kaq};

/// A running `kaq serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `kaq serve --store STORE --listen 127.0.0.1:0 EXTRA…` and waits for its address.
    pub fn start(store: &Path, extra: &[&str]) -> Server {
        let mut child = kaq()
            .args(["serve", "--store", store.to_str().unwrap(), "--listen", "127.0.0.1:0", "--commit-every", "0.2"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("kaq serve starts");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        // Keep reading stderr so the server never blocks on it; echo it for failing tests.
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                eprintln!("[kaq serve] {l}");
            }
        });
        Server { child, addr }
    }

    /// kill -9: no chance to commit or flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    pub fn get(&self, path: &str, auth: Option<&str>) -> Reply {
        http(self.addr, "GET", path, auth, &[], &[])
    }

    pub fn post(&self, path: &str, auth: Option<&str>, body: &[u8]) -> Reply {
        http(self.addr, "POST", path, auth, &[], body)
    }

    /// A metric's value from /metrics.
    pub fn metric(&self, name: &str, auth: Option<&str>) -> u64 {
        let r = self.get("/metrics", auth);
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {}", r.text()))
    }

    /// Waits until the store holds `n` records (every stage), or panics after `secs`.
    pub fn wait_rows(&self, n: u64, auth: Option<&str>, secs: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let rows = self.metric("kaq_store_rows", auth);
            if rows >= n || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`): enough client for these tests.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = auth {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body and close: ignore a failed write.
    let _ = s.write_all(body);
    read_reply(&mut s)
}

pub fn read_reply(s: &mut impl Read) -> Reply {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply { status: 0, headers: Vec::new(), body: raw }; // no answer (the server died)
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else { return out };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// `n` distinct audit events as JSON lines: gen-audit's when it is there, else kaq's demo log.
pub fn events(n: usize, dir: &Path) -> Vec<String> {
    let log = dir.join("gen.log");
    let lines: Vec<String> = if gen_audit(&["--events", &n.to_string(), "--seed", "16"], &log).is_some() {
        std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect()
    } else {
        let text = kaq_demo::generate(&kaq_demo::DemoOptions { events: n, ..Default::default() });
        String::from_utf8_lossy(&text.log).lines().map(str::to_string).collect()
    };
    // The store holds each record once: the test counts distinct ones.
    let mut seen = HashSet::new();
    let out: Vec<String> =
        lines.into_iter().filter(|l| !l.trim().is_empty() && seen.insert(l.clone())).take(n).collect();
    assert!(out.len() >= n * 9 / 10, "too few distinct events: {}", out.len());
    out
}

/// Events as `EventList` bodies of `size` items each.
pub fn batches(events: &[String], size: usize) -> Vec<Vec<u8>> {
    events
        .chunks(size)
        .map(|c| {
            format!(
                r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
                c.join(",")
            )
            .into_bytes()
        })
        .collect()
}

/// Sends a batch until it is acknowledged (200), waiting out 429/503 as the API server does.
fn send(addr: SocketAddr, auth: Option<&str>, body: &[u8]) {
    for _ in 0..600 {
        let r = http(addr, "POST", "/", auth, &[("Content-Type", "application/json")], body);
        match r.status {
            200 => return,
            429 | 503 => {
                assert!(r.header("retry-after").is_some(), "{} without Retry-After", r.status);
                std::thread::sleep(Duration::from_millis(100));
            }
            s => panic!("batch answered {s}: {}", r.text()),
        }
    }
    panic!("batch never acknowledged");
}

/// A webhook POST to a server that may be killed meanwhile: the status, or `None`.
fn try_http(addr: SocketAddr, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head =
        format!("POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    Some(read_reply(&mut s).status).filter(|s| *s != 0)
}

fn all_records(s: &Server, auth: Option<&str>) -> u64 {
    let r = s.get("/api/query?q=*%20|%20count&all_stages=true", auth);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["count"].as_u64().unwrap()
}

fn store_in(dir: &Path) -> PathBuf {
    dir.join("store")
}

#[test]
fn load_from_concurrent_senders_is_stored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    const SENDERS: usize = 8;
    const PER_SENDER: usize = 4;
    const BATCH: usize = 500;
    let evs = events(SENDERS * PER_SENDER * BATCH, dir.path());
    let bodies = batches(&evs, BATCH);
    let server = Server::start(&store_in(dir.path()), &[]);
    let addr = server.addr;
    std::thread::scope(|sc| {
        for part in bodies.chunks(bodies.len().div_ceil(SENDERS)) {
            sc.spawn(move || {
                for b in part {
                    send(addr, None, b);
                }
            });
        }
    });
    let n = evs.len() as u64;
    assert_eq!(server.metric("kaq_events_received_total", None), n);
    assert_eq!(server.metric("kaq_batches_total", None), bodies.len() as u64);
    assert_eq!(server.wait_rows(n, None, 60), n, "the store holds every event acknowledged");
    assert_eq!(all_records(&server, None), n);
    // Every batch sent again (a sender that lost its 200s) adds nothing.
    for b in &bodies[..4] {
        send(addr, None, b);
    }
    std::thread::sleep(Duration::from_millis(800));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("kaq_wal_pending_bytes", None) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(all_records(&server, None), n, "a retried batch is held once");
    assert!(server.stop().success());
    // And `kaq query` over the store after the server stopped agrees.
    let o = kaq()
        .args([
            "query",
            "* | count",
            "--all-stages",
            "--format",
            "json",
            "--store",
            store_in(dir.path()).to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("{{\"count\":{n}}}"));
}

#[test]
fn kill_9_mid_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(24 * 250, dir.path());
    let bodies = batches(&evs, 250);
    let store = store_in(dir.path());
    let server = Server::start(&store, &[]);
    let addr = server.addr;
    // Four senders; each records what was acknowledged. The server is killed while they send.
    let acked = std::sync::Mutex::new(vec![false; bodies.len()]);
    std::thread::scope(|sc| {
        for k in 0..4 {
            let (bodies, acked) = (&bodies, &acked);
            sc.spawn(move || {
                for i in (k..bodies.len()).step_by(4) {
                    match try_http(addr, &bodies[i]) {
                        Some(200) => acked.lock().unwrap()[i] = true,
                        _ => return, // the server is gone
                    }
                }
            });
        }
        // Kill once about a third was acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().iter().filter(|a| **a).count() < bodies.len() / 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill9();
    });
    let acked = acked.into_inner().unwrap();
    let done = acked.iter().filter(|a| **a).count();
    assert!(done > 0 && done < bodies.len(), "the kill came mid-load ({done} of {} acknowledged)", bodies.len());
    // Restart; resend what was not acknowledged (some of it may have reached the log before the
    // kill: it must not be held twice).
    let server = Server::start(&store, &[]);
    for (b, _) in bodies.iter().zip(&acked).filter(|(_, a)| !**a) {
        send(server.addr, None, b);
    }
    let n = evs.len() as u64;
    assert_eq!(server.wait_rows(n, None, 60), n, "nothing acknowledged is lost");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(all_records(&server, None), n, "nothing is held twice");
    // Each event is there once, by auditID.
    let q = encode("* | count by id | where count > 1");
    let r = server.get(&format!("/api/query?q={q}&all_stages=true"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "", "no auditID held twice");
}

#[test]
fn token_is_required_for_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let evs = events(20, dir.path());
    let body = &batches(&evs, 20)[0];
    let server = Server::start(&store_in(dir.path()), &["--auth-token-file", token_file.to_str().unwrap()]);
    for path in ["/api/query?q=*", "/api/fields", "/api/explain?q=*", "/metrics", "/"] {
        let r = server.get(path, None);
        assert_eq!(r.status, 401, "GET {path} without the token");
        assert!(r.header("www-authenticate").is_some());
        assert_eq!(server.get(path, Some("s3cret-tokeX")).status, 401, "GET {path} with a wrong token");
    }
    assert_eq!(server.post("/", None, body).status, 401);
    assert_eq!(server.post("/", Some("wrong"), body).status, 401);
    assert_eq!(server.get("/healthz", None).status, 200, "health answers without the token");
    assert_eq!(server.post("/", Some("s3cret-token"), body).status, 200);
    let n = evs.len() as u64;
    assert_eq!(server.wait_rows(n, Some("s3cret-token"), 30), n);
    let r = server.get("/api/query?q=*%20|%20count&all_stages=true", Some("s3cret-token"));
    assert_eq!(r.text().trim(), format!("{{\"count\":{n}}}"));
    // The refused requests were counted, and stored nothing.
    assert_eq!(server.metric("kaq_unauthorized_total", Some("s3cret-token")), 12);
}

#[test]
fn refuses_to_listen_beyond_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let o = kaq()
        .args(["serve", "--store", store_in(dir.path()).to_str().unwrap(), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without authentication"), "{err}");
    assert!(err.contains("--auth-token-file"), "{err}");
}

#[test]
fn oversized_and_malformed_bodies_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(40, dir.path());
    let big = &batches(&evs, 40)[0];
    let small = &batches(&evs[..2], 2)[0];
    assert!(big.len() > 4096 && small.len() < 4096);
    let server = Server::start(&store_in(dir.path()), &["--max-body", "4K"]);
    let r = server.post("/", None, big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("larger than the limit of 4096 bytes"), "{}", r.text());
    let cases: &[&[u8]] = &[
        b"{not json",
        b"",
        br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1"}"#,
        br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":{}}"#,
        b"\xff\xfe\x00garbage",
    ];
    for body in cases {
        let r = server.post("/", None, body);
        assert_eq!(r.status, 400, "{:?}: {}", String::from_utf8_lossy(body), r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], "malformed");
    }
    // Still serving; the good batch is kept, the refused ones counted.
    assert_eq!(server.post("/", None, small).status, 200);
    assert_eq!(server.metric("kaq_batches_rejected_total", None), 1 + cases.len() as u64);
    assert_eq!(server.metric("kaq_batches_total", None), 1);
    assert_eq!(server.wait_rows(2, None, 30), 2);
    // An item that is not an audit event is a reject, counted, the rest kept.
    let mixed = format!(r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{},{{"verb":17}}]}}"#, evs[10]);
    assert_eq!(server.post("/", None, mixed.as_bytes()).status, 200);
    assert_eq!(server.wait_rows(3, None, 30), 3);
    assert_eq!(server.metric("kaq_events_rejected_total", None), 1);
}

#[test]
fn query_api_answers_as_kaq_query_does() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(3000, dir.path());
    let store = store_in(dir.path());
    let server = Server::start(&store, &["--max-rows", "100"]);
    for b in batches(&evs, 500) {
        send(server.addr, None, &b);
    }
    let n = evs.len() as u64;
    assert_eq!(server.wait_rows(n, None, 60), n);
    let cli = |q: &str| {
        let o = kaq().args(["query", q, "--format", "json", "--store", store.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    for q in
        ["verb:get | count by verb", "* | top 3 user", "code>=400 | table time, user, code | head 5", "* | timeline 1h"]
    {
        let r = server.get(&format!("/api/query?q={}", encode(q)), None);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert_eq!(r.text(), String::from_utf8_lossy(&cli(q)), "{q}");
        // POST with the query as the body answers the same.
        assert_eq!(server.post("/api/query", None, q.as_bytes()).body, r.body, "POST {q}");
    }
    // Whole events, cut at --max-rows: the first 100 lines of the CLI's answer.
    let r = server.get("/api/query?q=verb:get", None);
    let want: Vec<String> = String::from_utf8_lossy(&cli("verb:get")).lines().take(100).map(str::to_string).collect();
    assert_eq!(r.text().lines().collect::<Vec<_>>(), want);
    assert!(r.header("x-kaq-rows-cut").is_some_and(|c| c.parse::<u64>().unwrap() > 0));
    // An error: JSON with code, message and span.
    let r = server.get(&format!("/api/query?q={}", encode("verb:get | head x")), None);
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], "E011", "{v}");
    assert!(v["message"].as_str().unwrap().contains("head"), "{v}");
    let (start, end) = (v["span"]["start"].as_u64().unwrap(), v["span"]["end"].as_u64().unwrap());
    assert!(start >= 10 && end <= 17 && start < end, "{v}");
    // Arrow IPC.
    let r = http(
        server.addr,
        "GET",
        &format!("/api/query?q={}", encode("* | count by verb")),
        None,
        &[("Accept", "application/vnd.apache.arrow.stream")],
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.apache.arrow.stream"));
    let batches: Vec<_> = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let json_rows = String::from_utf8_lossy(&cli("* | count by verb")).lines().count();
    assert_eq!(rows, json_rows);
    // Explain, fields, alerts.
    let r = server.get("/api/explain?q=verb:delete", None);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("store:"), "{}", r.text());
    let r = server.get("/api/fields", None);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let verb = v["fields"].as_array().unwrap().iter().find(|f| f["name"] == "verb").unwrap();
    assert!(verb["values"].as_array().unwrap().iter().any(|x| x["value"] == "get"), "{verb}");
    // Alerts: `kaq detect`'s built-in pack over the store, the same alerts `kaq detect` reports.
    let r = server.get("/api/alerts?since=2000-01-01", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let o = kaq()
        .args(["detect", "--store", store.to_str().unwrap(), "--since", "2000-01-01", "--format", "json"])
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 4)), "{}", String::from_utf8_lossy(&o.stderr));
    let key = |a: &serde_json::Value| (a["rule"].to_string(), a["first"].to_string(), a["count"].as_u64());
    let mut want: Vec<_> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| key(&serde_json::from_str::<serde_json::Value>(l).unwrap()))
        .collect();
    want.sort();
    let mut got: Vec<_> = v["alerts"].as_array().unwrap().iter().map(key).collect();
    got.sort();
    assert!(!want.is_empty(), "the generated log's incidents fire rules");
    assert_eq!(v["total"].as_u64(), Some(want.len() as u64), "{v}");
    assert!(want.len() > 200 || got == want, "api: {got:?}\nkaq detect: {want:?}");
    let r = server.get("/api/alerts?since=yesterday-ish", None);
    assert_eq!(r.status, 400, "{}", r.text());
    // The compliance report (the page links to it): what `kaq report compliance --store` writes
    // for the same period, but for the time it was made.
    let r = server.get("/report/compliance?since=2000-01-01&until=2100-01-01", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let o = kaq()
        .args(["report", "compliance", "--store", store.to_str().unwrap()])
        .args(["--since", "2000-01-01", "--until", "2100-01-01", "-o", "-", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let made = |t: &str| t.lines().filter(|l| !l.starts_with("<dt>Generated</dt>")).collect::<Vec<_>>().join("\n");
    let cli = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(cli.contains("<dt>Generated</dt>") && cli.contains("<svg"), "{cli}");
    assert_eq!(made(&r.text()), made(&cli));
    let r = server.get("/report/compliance?since=soon-ish", None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(server.get("/healthz", None).text().starts_with("ok"));
}

/// Percent-encodes a query for a URL.
pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Chromium, when installed (`$KAQ_CHROMIUM`, else `chromium` on the PATH).
#[test]
fn rules_run_on_arriving_events_as_kaq_detect_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(3000, dir.path());
    let store = store_in(dir.path());
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let receiver = crate::watch::Receiver::start(1);
    let server = Server::start(&store, &["--no-user-rules", "--alert-webhook", &receiver.url]);
    for b in batches(&evs, 300) {
        send(server.addr, None, &b);
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = evs.len() as u64;
    assert_eq!(server.wait_rows(n, None, 60), n);
    let o = kaq()
        .env("KAQ_CONFIG_DIR", &config)
        .args(["detect", "--no-user-rules", "--format", "json", "--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    let key = |a: &serde_json::Value| (a["rule"].to_string(), a["group"].to_string(), a["first"].to_string());
    let mut want: Vec<_> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| key(&serde_json::from_str::<serde_json::Value>(l).unwrap()))
        .collect();
    want.sort();
    assert!(!want.is_empty(), "the generated log's incidents fire rules");
    // The rules run beside ingest: wait for them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        let r = server.get("/api/alerts?since=2000-01-01", None);
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        if v["live"]["fired"].as_u64() >= Some(want.len() as u64) || Instant::now() > deadline {
            break v["live"].clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut got: Vec<_> = live["alerts"].as_array().unwrap().iter().map(key).collect();
    got.sort();
    assert_eq!(live["fired"].as_u64(), Some(want.len() as u64), "{live}");
    assert!(want.len() > 200 || got == want, "live: {got:?}\nkaq detect: {want:?}");
    // The webhook got them (its first attempt refused, then retried).
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.bodies().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut hooked: Vec<_> =
        receiver.bodies().iter().map(|b| key(&serde_json::from_str::<serde_json::Value>(b).unwrap())).collect();
    hooked.sort();
    assert_eq!(hooked, want);
    assert!(server.stop().success());
    // Started again: nothing fires twice.
    let server = Server::start(&store, &["--no-user-rules"]);
    std::thread::sleep(Duration::from_millis(1500));
    let v: serde_json::Value = serde_json::from_slice(&server.get("/api/alerts", None).body).unwrap();
    assert_eq!(v["live"]["fired"].as_u64(), Some(0), "{v}");
    assert!(server.stop().success());
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KAQ_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| Path::new(d).join(n)))
        .find(|p| p.is_file())
}

#[test]
fn page_in_headless_chromium_finds_who_deleted_what() {
    let Some(chromium) = chromium() else {
        crate::common::skip("chromium not found (Debian: apt-get install chromium; or set KAQ_CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let evs = events(6000, dir.path());
    let server = Server::start(&store_in(dir.path()), &[]);
    for b in batches(&evs, 500) {
        send(server.addr, None, &b);
    }
    let n = evs.len() as u64;
    assert_eq!(server.wait_rows(n, None, 60), n);
    // What the page should show, from the API itself.
    let want = server.get(&format!("/api/query?q={}", encode("verb:delete ns:prod* | count")), None);
    let want: serde_json::Value = serde_json::from_slice(&want.body).unwrap();
    let want = want["count"].as_u64().unwrap();
    assert!(want >= 2, "the log has deletions in prod* ({want})");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/page.py");
    let url = format!("http://{}/", server.addr);
    let o = std::process::Command::new("python3")
        .args([script.as_os_str(), chromium.as_os_str(), url.as_ref(), shot.as_os_str()])
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "page.py: {}", String::from_utf8_lossy(&o.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("the page: {seen}\nscreenshot: {}", shot.display());
    // Completion offered namespaces while `ns:pro` was typed.
    let suggested = seen["suggested"].as_array().unwrap();
    assert!(!suggested.is_empty() && suggested.iter().all(|s| s.as_str().unwrap().starts_with("pro")), "{seen}");
    // Who and when: the rows, every one a delete in prod*, and the histogram.
    let first = &seen["first"];
    assert_eq!(first["query"], "verb:delete ns:prod*");
    assert_eq!(first["rows"].as_u64().unwrap(), want.min(200), "{first}");
    assert!(first["verbs"].as_array().unwrap().iter().all(|v| v == "delete"), "{first}");
    assert!(first["namespaces"].as_array().unwrap().iter().all(|v| v.as_str().unwrap().starts_with("prod")), "{first}");
    assert!(first["bars"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["summary"].as_str().unwrap(), format!("— {want} matches"));
    // A click on the first user narrows the query to that user.
    let user = first["top_users"][0].as_str().unwrap();
    let clicked = &seen["clicked"];
    assert!(clicked["query"].as_str().unwrap().starts_with("verb:delete ns:prod* user:"), "{clicked}");
    let rows = clicked["rows"].as_u64().unwrap();
    assert!(rows >= 1 && rows <= first["rows"].as_u64().unwrap(), "{clicked}");
    assert!(clicked["users"].as_array().unwrap().iter().all(|u| u == user), "{clicked}");
    // A broken query: the error under the box, its span underlined.
    let broken = &seen["broken"];
    assert!(broken["error"].as_str().unwrap().starts_with("E011"), "{broken}");
    assert_eq!(broken["underlined"], "x");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot");
}

#[test]
fn behind_the_log_it_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(1000, dir.path());
    let bodies = batches(&evs, 200);
    // One byte of log not yet in the store is already too much: the second quick batch waits.
    let server = Server::start(&store_in(dir.path()), &["--max-pending", "1"]);
    let mut throttled = 0;
    for b in &bodies {
        let r = server.post("/", None, b);
        match r.status {
            200 => {}
            429 => {
                throttled += 1;
                assert_eq!(r.header("retry-after"), Some("5"), "{}", r.text());
                // What the API server does: wait and send it again.
                send(server.addr, None, b);
            }
            s => panic!("answered {s}: {}", r.text()),
        }
    }
    assert!(throttled > 0, "no batch was told to wait");
    // Counted, the resends that were told to wait again included.
    assert!(server.metric("kaq_batches_throttled_total", None) >= throttled);
    let n = evs.len() as u64;
    assert_eq!(server.wait_rows(n, None, 60), n, "every batch is stored once it is accepted");
    assert_eq!(server.metric("kaq_batches_total", None), bodies.len() as u64);
}
