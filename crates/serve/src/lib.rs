//! `kaq serve`: the kube-apiserver audit webhook backend, a query API and one web page over a kaq
//! store (PRODUCT.md §8, docs/serve.md).
//!
//! - `POST /`: an `audit.k8s.io/v1` `EventList` (the webhook backend's batch and blocking modes
//!   send the same body). Checked, appended to the write-ahead log ([`wal`]) and synced, then
//!   200. The store follows the log ([`store`]).
//! - `GET|POST /api/query`, `/api/explain`, `/api/fields`, `/api/alerts` ([`api`]), `/metrics`,
//!   `/healthz`, and the page at `/` ([`page`]).
//!
//! With `--auth-token-file`, every request but `/healthz` carries the token (`Authorization:
//! Bearer TOKEN`, or Basic with the token as password, which a browser asks for), compared in
//! constant time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

mod api;
mod metrics;
mod page;
mod store;
mod wal;

pub use metrics::Metrics;

/// How to serve.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: PathBuf,
    /// The write-ahead log's directory (default: the store's path with `.wal` added).
    pub wal: Option<PathBuf>,
    pub listen: SocketAddr,
    /// The token every request must carry.
    pub token: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest webhook body accepted.
    pub max_body: usize,
    /// Batches waiting for the log writer before 503.
    pub queue: usize,
    /// Bytes in the log not yet in the store before 429.
    pub max_pending: u64,
    /// How often what the log holds is committed to the store.
    pub commit_every: Duration,
    pub query_timeout: Duration,
    pub max_rows: usize,
    /// The live log is rotated past this size.
    pub rotate_bytes: u64,
    /// Rules run on arriving events (none: no live detection).
    pub alerts: Option<Alerts>,
    /// Makes the compliance report for `/report/compliance` (none: the page says it is not
    /// available). The report lives in the command line's code (`kaq report compliance`), which
    /// hands it in here.
    pub report: Option<ReportMaker>,
}

/// Makes the compliance report's HTML over the store in the given directory, for the period
/// `since` (a duration ago or a time, or `all`) to `until` (none: now); an error is a message for
/// the person asking (a bad time, a store that cannot be read).
#[derive(Clone)]
pub struct ReportMaker(pub Arc<MakeReport>);

/// The function behind a [`ReportMaker`]: the store's directory, `since`, `until`.
pub type MakeReport = dyn Fn(&Path, &str, Option<&str>) -> Result<String, String> + Send + Sync;

impl std::fmt::Debug for ReportMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReportMaker(..)")
    }
}

/// Rules run on arriving events, as `kaq watch` runs them (crates/detect's `live` and
/// `deliver`): after each commit, in a thread of their own; the alerts are kept for
/// `/api/alerts` and POSTed to the webhook, if any.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub rules: kaq_detect::RuleSet,
    /// The alert state (default: `alerts.state.json` in the store).
    pub state: Option<PathBuf>,
    pub webhook: Option<(kaq_detect::deliver::Target, kaq_detect::deliver::Shape)>,
    pub retry: kaq_detect::deliver::Retry,
}

/// Alerts fired on arriving events kept for `/api/alerts` (the most recent).
pub const LIVE_KEPT: usize = 1000;

impl Config {
    pub fn new(store: PathBuf, listen: SocketAddr) -> Config {
        Config {
            store,
            wal: None,
            listen,
            token: None,
            tls: None,
            max_body: 32 << 20,
            queue: 256,
            max_pending: 1 << 30,
            commit_every: Duration::from_secs(2),
            query_timeout: Duration::from_secs(30),
            max_rows: 100_000,
            rotate_bytes: 256 << 20,
            alerts: None,
            report: None,
        }
    }

    /// Where the write-ahead log lives.
    pub fn wal_dir(&self) -> PathBuf {
        self.wal.clone().unwrap_or_else(|| {
            let mut s = self.store.clone().into_os_string();
            s.push(".wal");
            PathBuf::from(s)
        })
    }
}

/// What every handler shares.
pub(crate) struct Shared {
    pub cfg: Config,
    pub wal: wal::Wal,
    pub metrics: Arc<Metrics>,
    /// Queries running at once are limited to this many permits.
    pub queries: tokio::sync::Semaphore,
    /// Alerts fired on arriving events, oldest first (at most [`LIVE_KEPT`]), and how many
    /// fired since the start; `None` without live detection.
    pub live: Option<Arc<std::sync::Mutex<LiveAlerts>>>,
}

/// Alerts fired on arriving events.
#[derive(Default)]
pub(crate) struct LiveAlerts {
    pub recent: std::collections::VecDeque<kaq_detect::Alert>,
    pub fired: u64,
    pub rules: usize,
}

/// Reads the token file: its first line, trimmed. An empty token is refused.
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("{}: the token file is empty", path.display()));
    }
    Ok(token)
}

/// Serves until SIGINT or SIGTERM; then stops taking requests and commits what the log holds.
/// `ready` is called with the address listened on (the port, when 0 was asked for).
pub fn run(cfg: Config, ready: impl FnOnce(SocketAddr) + Send + 'static) -> Result<(), String> {
    if !cfg.listen.ip().is_loopback() && cfg.token.is_none() {
        return Err(format!(
            "refusing to listen on {} without authentication: give --auth-token-file FILE (anyone who can reach it could write and read audit events), or listen on 127.0.0.1",
            cfg.listen
        ));
    }
    let metrics = Arc::new(Metrics::default());
    let writer = store::open_writer(&cfg.store)?;
    let wal_dir = cfg.wal_dir();
    let opened = wal::Wal::open(&wal_dir, cfg.queue, cfg.rotate_bytes, metrics.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let leftover = std::sync::Mutex::new(Some(opened.leftover.clone()));
    let dir = opened.dir.clone();
    let (live, background, sender) = match &cfg.alerts {
        Some(a) => {
            let (l, b, s) = start_live(&cfg.store, a)?;
            (Some(l), Some(b), s)
        }
        None => (None, None, None),
    };
    let notify = background.as_ref().map(|b| b.notifier());
    let follower = store::spawn_follow(
        writer,
        opened.live.clone(),
        store::Follow {
            commit_every: cfg.commit_every,
            poll: Duration::from_millis(200),
            commit_ids: notify.is_some(),
        },
        stop.clone(),
        metrics.clone(),
        move |rotated| {
            wal::delete_rotated(&dir, rotated);
            // Rotated files of an earlier run are read by the first commit's catch-up.
            if let Some(old) = leftover.lock().expect("unpoisoned").take() {
                let names: Vec<String> = old.iter().map(|p| p.display().to_string()).collect();
                wal::delete_rotated(&dir, &names);
            }
        },
        move |c| {
            if let Some(n) = &notify {
                n(c);
            }
        },
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        wal: opened.wal,
        metrics,
        queries: tokio::sync::Semaphore::new(cores * 2),
        live,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kaq-serve-http")
        .build()
        .map_err(|e| format!("starting the server: {e}"))?;
    let served = rt.block_on(serve(shared, ready));
    stop.store(true, Ordering::Relaxed);
    let followed = follower.join().unwrap_or_else(|_| Err("the ingest thread panicked".into()));
    // The last commit's rules, then what the webhook still has queued.
    if let Some(b) = background {
        b.finish();
    }
    if let Some(s) = sender {
        let d = s.lock().unwrap_or_else(|e| e.into_inner()).take().map(|s| s.finish(Duration::from_secs(10)));
        if let Some(d) = d.filter(|d| d.sent + d.dropped > 0) {
            eprintln!(
                "kaq serve: alert webhook: {} delivered, {} retried attempts, {} not delivered",
                d.sent, d.retried, d.dropped
            );
        }
    }
    served.and(followed)
}

type SharedSender = Arc<std::sync::Mutex<Option<kaq_detect::deliver::Sender>>>;

/// What live detection runs on: the alerts kept, the thread running the rules, the sender.
type LiveStarted = (Arc<std::sync::Mutex<LiveAlerts>>, kaq_detect::live::Background, Option<SharedSender>);

/// Live detection over the store: the rules prepared, their state opened, the webhook sender
/// started; alerts go to the list `/api/alerts` shows and to the webhook.
fn start_live(store: &Path, a: &Alerts) -> Result<LiveStarted, String> {
    let prepared = kaq_detect::prepare(&a.rules, &[]).map_err(|e| e.to_string())?;
    let n = prepared.len();
    let live = kaq_detect::live::Live::open(&a.rules, prepared, store, a.state.clone(), 100)
        .map_err(|e| format!("starting detection over {}: {e}", store.display()))?;
    let kept = Arc::new(std::sync::Mutex::new(LiveAlerts { rules: n, ..LiveAlerts::default() }));
    let sender: Option<SharedSender> = a.webhook.clone().map(|(target, shape)| {
        let s = kaq_detect::deliver::Sender::start(
            target,
            shape,
            a.retry.clone(),
            Box::new(|a, why| {
                eprintln!(
                    "kaq serve: alert webhook: alert not delivered: {} (first {}): {}",
                    a.rule,
                    kaq_detect::source::time_literal(a.first),
                    kaq_schema::visible(why)
                );
            }),
        );
        Arc::new(std::sync::Mutex::new(Some(s)))
    });
    let (k, s) = (kept.clone(), sender.clone());
    let background = kaq_detect::live::Background::spawn(
        live,
        move |alerts| {
            {
                let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
                k.fired += alerts.len() as u64;
                for a in alerts {
                    if k.recent.len() == LIVE_KEPT {
                        k.recent.pop_front();
                    }
                    k.recent.push_back(a.clone());
                }
            }
            if let Some(s) = &s
                && let Some(s) = s.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            {
                for a in alerts {
                    s.send(a);
                }
            }
        },
        |e| eprintln!("kaq serve: warning: detection after a commit: {}", kaq_schema::visible(&e.to_string())),
    );
    Ok((kept, background, sender))
}

async fn serve(shared: Arc<Shared>, ready: impl FnOnce(SocketAddr) + Send + 'static) -> Result<(), String> {
    let cfg = shared.cfg.clone();
    let app = router(shared);
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = h.listening().await {
            ready(addr);
        }
    });
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let service = app.into_make_service();
    let result = match &cfg.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| format!("reading --tls-cert {} / --tls-key {}: {e}", cert.display(), key.display()))?;
            axum_server::bind_rustls(cfg.listen, tls).handle(handle).serve(service).await
        }
        None => axum_server::bind(cfg.listen).handle(handle).serve(service).await,
    };
    result.map_err(|e| format!("listening on {}: {e}", cfg.listen))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub(crate) type AppState = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(webhook).get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/api/query", get(api::query_get).post(api::query_post))
        .route("/api/explain", get(api::explain_get).post(api::explain_post))
        .route("/api/fields", get(api::fields))
        .route("/api/alerts", get(api::alerts))
        .route("/report/compliance", get(api::report))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// Authentication (every route but `/healthz`) and request latency.
async fn guard(State(s): AppState, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let route: &'static str = match path.as_str() {
        "/" if req.method() == axum::http::Method::POST => "webhook",
        "/api/query" => "query",
        "/api/explain" => "explain",
        "/api/fields" => "fields",
        "/metrics" => "metrics",
        _ => "other",
    };
    if path != "/healthz"
        && let Some(token) = &s.cfg.token
        && !authorized(req.headers(), token)
    {
        s.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
        // A browser asks for Basic credentials (the token as password); programs send Bearer.
        let challenge =
            if route == "other" { "Basic realm=\"kaq\", charset=\"UTF-8\"" } else { "Bearer realm=\"kaq\"" };
        let mut r =
            error(StatusCode::UNAUTHORIZED, "unauthorized", "this server needs its token: Authorization: Bearer TOKEN");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        return r;
    }
    let r = next.run(req).await;
    s.metrics.observe(route, started.elapsed());
    r
}

/// Whether the request carries `token`: `Bearer TOKEN`, or Basic with TOKEN as the password.
/// Compared in constant time (the length aside).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let given = if let Some(t) = v.strip_prefix("Bearer ") {
        t.trim().as_bytes().to_vec()
    } else if let Some(b) = v.strip_prefix("Basic ") {
        match base64_decode(b.trim()) {
            Some(d) => match d.iter().position(|c| *c == b':') {
                Some(i) => d[i + 1..].to_vec(),
                None => return false,
            },
            None => return false,
        }
    } else {
        return false;
    };
    given.ct_eq(token.as_bytes()).into()
}

/// Standard base64 (for Basic credentials).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match chunk.len() {
            4 => out.extend_from_slice(&bytes),
            3 => out.extend_from_slice(&bytes[..2]),
            2 => out.extend_from_slice(&bytes[..1]),
            _ => return None,
        }
    }
    Some(out)
}

/// An error answer: `{"code": …, "message": …}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message });
    (status, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

/// A back-pressure answer: the sender tries again after `secs`.
fn retry_later(status: StatusCode, secs: u32, message: &str) -> Response {
    let mut r = error(status, "busy", message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// The body of a webhook POST: an `EventList`.
#[derive(serde::Deserialize)]
struct EventList<'a> {
    #[serde(borrow, default)]
    kind: Option<&'a str>,
    #[serde(rename = "apiVersion", borrow, default)]
    api_version: Option<&'a str>,
    #[serde(borrow)]
    items: Option<Vec<&'a serde_json::value::RawValue>>,
}

/// Checks a webhook body: the number of items of a well-formed `EventList`, or why not.
fn check_batch(body: &[u8]) -> Result<usize, String> {
    let list: EventList = serde_json::from_slice(body).map_err(|e| format!("the body is not a JSON EventList: {e}"))?;
    if let Some(k) = list.kind
        && k != "EventList"
    {
        return Err(format!("kind is {k:?}; the audit webhook sends an EventList"));
    }
    if let Some(v) = list.api_version
        && !v.starts_with("audit.k8s.io/")
    {
        return Err(format!("apiVersion is {v:?}; expected audit.k8s.io/v1"));
    }
    let items = list.items.ok_or("the EventList has no items array")?;
    Ok(items.len())
}

/// `POST /`: a batch of audit events from the API server, acknowledged once synced to the log.
async fn webhook(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    let m = &s.metrics;
    let refuse = |status: StatusCode, code: &str, msg: &str| {
        m.batches_rejected.fetch_add(1, Ordering::Relaxed);
        error(status, code, msg)
    };
    if headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "encoded", "send the EventList without Content-Encoding");
    }
    let limit = s.cfg.max_body;
    let too_large = || {
        format!(
            "the body is larger than the limit of {limit} bytes (--max-body); send smaller batches (the webhook's --audit-webhook-batch-max-size)"
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
    {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &too_large());
    }
    if m.wal_pending() > s.cfg.max_pending {
        m.batches_throttled.fetch_add(1, Ordering::Relaxed);
        return retry_later(StatusCode::TOO_MANY_REQUESTS, 5, "the store is behind the write-ahead log; retry later");
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &too_large()),
    };
    let items = match check_batch(&bytes) {
        Ok(n) => n,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "malformed", &why),
    };
    if items > 0 {
        // JSON has line breaks only as whitespace: as spaces the batch is one line.
        let line: Vec<u8> = bytes.iter().map(|b| if *b == b'\n' || *b == b'\r' { b' ' } else { *b }).collect();
        let done = match s.wal.append(line) {
            Ok(rx) => rx,
            Err(wal::Refused::Busy) => {
                m.batches_throttled.fetch_add(1, Ordering::Relaxed);
                return retry_later(StatusCode::SERVICE_UNAVAILABLE, 1, "the write-ahead log is busy; retry shortly");
            }
            Err(wal::Refused::Failed(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "wal", &e),
        };
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "wal", &e),
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "wal", "the log writer stopped"),
        }
    }
    m.batches.fetch_add(1, Ordering::Relaxed);
    m.events_received.fetch_add(items as u64, Ordering::Relaxed);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}\n").into_response()
}

async fn metrics_text(State(s): AppState) -> Response {
    let dir = s.cfg.store.clone();
    let size = tokio::task::spawn_blocking(move || store::size(&dir)).await.ok().flatten();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render(size)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_checked() {
        assert_eq!(check_batch(br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{},{}]}"#), Ok(2));
        assert!(check_batch(b"{not json").unwrap_err().contains("not a JSON EventList"));
        assert!(check_batch(br#"{"kind":"Event","items":[]}"#).unwrap_err().contains("kind is \"Event\""));
        assert!(check_batch(br#"{"kind":"EventList"}"#).unwrap_err().contains("no items"));
        assert!(check_batch(br#"{"apiVersion":"v1","items":[]}"#).unwrap_err().contains("apiVersion"));
    }

    #[test]
    fn tokens_are_checked() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert!(!authorized(&h, "s3cret"));
        // Basic "kaq:s3cret"
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic a2FxOnMzY3JldA=="));
        assert!(authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic a2FxOnMzY3JldA"));
        assert!(authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic a2FxOnMzY3JlWA=="));
        assert!(!authorized(&h, "s3cret"));
    }
}
