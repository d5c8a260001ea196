//! Alerts POSTed to a webhook (`kaq watch --webhook URL`, `kaq serve --alert-webhook URL`).
//!
//! - The body is the alert's JSON line ([`Shape::Json`]) or a Slack-compatible `{"text": …}`
//!   ([`Shape::Slack`]; Slack incoming webhooks, Mattermost, Rocket.Chat and most chat bridges
//!   take it).
//! - Plain HTTP/1.1 (`http://HOST[:PORT][/PATH]`), one connection per alert; any 2xx is
//!   delivered. A connection error, a timeout, 408, 429 or 5xx is retried after 0.5 s, 1 s,
//!   2 s, 4 s … (at most 30 s apart), up to the retries given; another status is not retried.
//! - Delivery runs on a thread of its own behind a bounded queue: a slow or failing endpoint
//!   never holds up ingest. An alert the endpoint never took (retries spent, the queue full, or
//!   still queued at the stop's deadline) is reported through the `dropped` callback, never
//!   dropped silently.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::Alert;

/// The body an alert is POSTed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The alert's JSON line, as `kaq detect --format json` prints it.
    Json,
    /// `{"text": "…"}`: one readable message.
    Slack,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The request path and query (`/` at least).
    pub path: String,
    /// The URL as given (for messages).
    pub url: String,
}

impl Target {
    /// Reads `http://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(format!(
                    "{url}: HTTPS is not supported by kaq's webhook sender; use http:// (e.g. a local relay that forwards over TLS)"
                ));
            }
            _ => return Err(format!("{url}: a webhook URL is http://HOST[:PORT][/PATH]")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path };
        if authority.contains('@') {
            return Err(format!("{url}: user names and passwords in the URL are not supported"));
        }
        let bad = |why: &str| Err(format!("{url}: {why}"));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, "")) => (h.to_string(), 80),
                Some((h, p)) => match p.strip_prefix(':').and_then(|p| p.parse().ok()) {
                    Some(port) => (h.to_string(), port),
                    None => return bad("the port is not a number"),
                },
                None => return bad("an IPv6 address needs its closing `]`"),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => match p.parse() {
                    Ok(port) => (h.to_string(), port),
                    Err(_) => return bad("the port is not a number"),
                },
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() {
            return bad("no host");
        }
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return bad("the path holds spaces or control characters (percent-encode them)");
        }
        Ok(Target { host, port, path, url: url.to_string() })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == 80 { h } else { format!("{h}:{}", self.port) }
    }
}

/// The body of `alert` in `shape`.
pub fn body(alert: &Alert, shape: Shape) -> String {
    match shape {
        Shape::Json => alert.to_json(),
        Shape::Slack => serde_json::json!({ "text": slack_text(alert) }).to_string(),
    }
}

/// One message: `[HIGH] rule: group — N requests, first … last; auditIDs`, then the description.
pub fn slack_text(a: &Alert) -> String {
    // Slack's formatting: &, <, > are escaped; control characters are left out.
    let esc = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .map(|c| match c {
                '&' => "&amp;".to_string(),
                '<' => "&lt;".to_string(),
                '>' => "&gt;".to_string(),
                c => c.to_string(),
            })
            .collect()
    };
    let group = if a.group.is_empty() {
        String::new()
    } else {
        format!(" {}", a.group.iter().map(|(k, v)| format!("{k}={}", esc(v))).collect::<Vec<_>>().join(" "))
    };
    let ids = match a.ids.len() {
        0 => String::new(),
        1 => format!("; auditID {}", esc(&a.ids[0])),
        n => format!(
            "; auditIDs {}{}",
            a.ids.iter().take(3).map(|i| esc(i)).collect::<Vec<_>>().join(", "),
            if a.count > 3 { format!(" (+{} more)", a.count - n.min(3)) } else { String::new() }
        ),
    };
    format!(
        "[{}] {}:{group} — {} request{}, {} … {}{ids}\n{}",
        a.severity.as_str().to_uppercase(),
        esc(&a.rule),
        a.count,
        if a.count == 1 { "" } else { "s" },
        crate::source::time_literal(a.first),
        crate::source::time_literal(a.last),
        esc(&a.description)
    )
}

/// Why one POST failed.
#[derive(Debug)]
pub enum PostError {
    /// Worth trying again: no connection, a timeout, 408, 429, 5xx.
    Retry(String),
    /// Not: another status.
    Refused(String),
}

/// POSTs `body` (JSON) to `t` once.
pub fn post(t: &Target, body: &str, timeout: Duration) -> Result<u16, PostError> {
    let addrs: Vec<_> = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| PostError::Retry(format!("resolving {}: {e}", t.host)))?
        .collect();
    let mut last = format!("{}: no address", t.host);
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {a}: {e}"),
        }
    }
    let mut s = stream.ok_or(PostError::Retry(last))?;
    let io = |e: std::io::Error| PostError::Retry(format!("{}: {e}", t.url));
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kaq/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        t.path,
        t.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body.as_bytes()).map_err(io)?;
    s.flush().map_err(io)?;
    // The status line is all that is read (at most 8 KiB of the answer).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.contains(&b'\n') && buf.len() < 8192 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(io(e)),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or("");
    let code: u16 = line
        .strip_prefix("HTTP/")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| PostError::Retry(format!("{}: not an HTTP answer", t.url)))?;
    match code {
        200..=299 => Ok(code),
        408 | 429 | 500..=599 => Err(PostError::Retry(format!("{} answered {code}", t.url))),
        _ => Err(PostError::Refused(format!("{} answered {code}", t.url))),
    }
}

/// How hard delivery tries.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts after the first.
    pub retries: u32,
    /// The wait before the first retry; doubled each time, at most 30 s.
    pub backoff: Duration,
    /// Each attempt's connect, write and read time limit.
    pub timeout: Duration,
    /// Alerts waiting for delivery before new ones are dropped (and said so).
    pub queue: usize,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { retries: 5, backoff: Duration::from_millis(500), timeout: Duration::from_secs(5), queue: 10_000 }
    }
}

/// What delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u64,
    /// Attempts that failed and were tried again.
    pub retried: u64,
    pub dropped: u64,
}

/// Called with an alert that was not delivered and why.
pub type Dropped = Box<dyn Fn(&Alert, &str) + Send + Sync>;

enum Msg {
    Alert(Box<Alert>),
    Stop,
}

/// When delivery must end (set by [`Sender::finish`]).
type Deadline = std::sync::Arc<std::sync::Mutex<Option<Instant>>>;

/// Delivers alerts on a thread of its own.
pub struct Sender {
    tx: SyncSender<Msg>,
    thread: Option<std::thread::JoinHandle<Delivered>>,
    dropped: std::sync::Arc<Dropped>,
    full: std::sync::atomic::AtomicU64,
    deadline: Deadline,
}

impl Sender {
    pub fn start(target: Target, shape: Shape, retry: Retry, dropped: Dropped) -> Sender {
        let (tx, rx) = std::sync::mpsc::sync_channel(retry.queue.max(1));
        let dropped = std::sync::Arc::new(dropped);
        let deadline = Deadline::default();
        let (d, dl) = (dropped.clone(), deadline.clone());
        let thread = std::thread::Builder::new()
            .name("kaq-webhook".into())
            .spawn(move || deliver(rx, &target, shape, &retry, &d, &dl))
            .expect("a thread can be started");
        Sender { tx, thread: Some(thread), dropped, full: Default::default(), deadline }
    }

    /// Queues `alert`; never waits (a full queue drops it, through the callback).
    pub fn send(&self, alert: &Alert) {
        match self.tx.try_send(Msg::Alert(Box::new(alert.clone()))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (self.dropped)(alert, "the delivery queue is full (the endpoint is too slow or down)");
            }
            Err(TrySendError::Disconnected(_)) => (self.dropped)(alert, "the delivery thread has stopped"),
        }
    }

    /// Delivers what is queued, for at most `wait` (alerts left then are dropped, through the
    /// callback); returns what was done.
    pub fn finish(mut self, wait: Duration) -> Delivered {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + wait);
        let _ = self.tx.send(Msg::Stop);
        let mut d = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        d.dropped += self.full.load(std::sync::atomic::Ordering::Relaxed);
        d
    }
}

fn deliver(
    rx: Receiver<Msg>,
    t: &Target,
    shape: Shape,
    retry: &Retry,
    dropped: &Dropped,
    deadline: &Deadline,
) -> Delivered {
    let mut done = Delivered::default();
    let past =
        |wait: Duration| deadline.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|d| Instant::now() + wait > d);
    while let Ok(Msg::Alert(alert)) = rx.recv() {
        if past(Duration::ZERO) {
            done.dropped += 1;
            dropped(&alert, "still queued when kaq stopped");
            continue;
        }
        let body = body(&alert, shape);
        let mut wait = retry.backoff;
        let mut attempt = 0;
        loop {
            match post(t, &body, retry.timeout) {
                Ok(_) => {
                    done.sent += 1;
                    break;
                }
                Err(PostError::Refused(why)) => {
                    done.dropped += 1;
                    dropped(&alert, &why);
                    break;
                }
                Err(PostError::Retry(why)) => {
                    if attempt >= retry.retries || past(wait) {
                        done.dropped += 1;
                        let n = attempt + 1;
                        dropped(&alert, &format!("{why} ({n} attempt{})", if n == 1 { "" } else { "s" }));
                        break;
                    }
                    attempt += 1;
                    done.retried += 1;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:9000/hooks/a?x=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("127.0.0.1", 9000, "/hooks/a?x=1"));
        assert_eq!(t.host_header(), "127.0.0.1:9000");
        let t = Target::parse("http://example.invalid").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.host_header().as_str()), ("::1", 8080, "[::1]:8080"));
        assert!(Target::parse("https://hooks.slack.com/x").unwrap_err().contains("HTTPS"));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://u:p@x/").is_err());
        assert!(Target::parse("http://x:port/").is_err());
        assert!(Target::parse("http://x/a b").is_err());
    }
}
