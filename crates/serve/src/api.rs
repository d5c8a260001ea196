//! The query API: `/api/query`, `/api/explain`, `/api/fields`, `/api/alerts`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::{self, Ask, Failed, Limits};
use crate::{AppState, Shared, error};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// A query's parameters: in the URL (`?q=…&since=…&until=…&all_stages=true`), or for POST in a
/// JSON body (`{"q": …, "since": …}`) or as the body's text (the query alone).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    all_stages: Option<bool>,
}

/// A request refused before it runs: 400 with this code and message.
pub struct BadRequest(&'static str, String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0, &self.1)
    }
}

impl Params {
    fn ask(self) -> Result<Ask, BadRequest> {
        let Some(q) = self.q else {
            return Err(BadRequest("no_query", "give the query as q (…/api/query?q=verb:delete)".into()));
        };
        let blank = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(Ask { q, since: blank(self.since), until: blank(self.until), all_stages: self.all_stages.unwrap_or(false) })
    }

    /// A POST's parameters: the URL's, with the body's (JSON, or the query as text) over them.
    fn with_body(mut self, body: &[u8]) -> Result<Params, BadRequest> {
        let text =
            std::str::from_utf8(body).map_err(|_| BadRequest("malformed", "the body is not UTF-8".into()))?.trim();
        if text.starts_with('{') {
            let b: Params = serde_json::from_str(text)
                .map_err(|e| BadRequest("malformed", format!("the body is not JSON parameters: {e}")))?;
            self.q = b.q.or(self.q);
            self.since = b.since.or(self.since);
            self.until = b.until.or(self.until);
            self.all_stages = b.all_stages.or(self.all_stages);
        } else if !text.is_empty() {
            self.q = Some(text.to_string());
        }
        Ok(self)
    }
}

fn limits(s: &Shared) -> Limits {
    Limits { timeout: s.cfg.query_timeout, rows: s.cfg.max_rows }
}

/// A query failure as JSON: the first problem's code, message and span (bytes, and UTF-16 units
/// for JavaScript), with every problem in `errors`.
fn failed(s: &Shared, q: &str, f: Failed) -> Response {
    match f {
        Failed::Query(diags) => {
            s.metrics.query_errors.fetch_add(1, Ordering::Relaxed);
            let utf16 = |b: usize| q.get(..b.min(q.len())).map_or(0, |p| p.encode_utf16().count());
            let all: Vec<serde_json::Value> = diags
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "code": d.code.as_str(),
                        "message": d.message,
                        "span": { "start": d.span.start, "end": d.span.end },
                        "span_utf16": { "start": utf16(d.span.start), "end": utf16(d.span.end) },
                        "hints": d.hints,
                    })
                })
                .collect();
            let mut first = all.first().cloned().unwrap_or_else(|| serde_json::json!({"code": "query"}));
            first["errors"] = serde_json::Value::Array(all);
            (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], format!("{first}\n"))
                .into_response()
        }
        Failed::Timeout => {
            s.metrics.query_timeouts.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "the query ran past the time limit of {}s (--query-timeout) and was stopped; narrow it (a field, a time range)",
                s.cfg.query_timeout.as_secs_f64()
            );
            error(StatusCode::SERVICE_UNAVAILABLE, "timeout", &msg)
        }
        Failed::Store(e) => {
            s.metrics.query_errors.fetch_add(1, Ordering::Relaxed);
            error(StatusCode::INTERNAL_SERVER_ERROR, "store", &e)
        }
    }
}

/// Runs `f` on a blocking thread under a query permit: 503 with Retry-After when none frees up
/// within 10 s.
async fn blocking<T: Send + 'static>(s: &Arc<Shared>, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    // Wait a while for a permit (a page asks several queries at once), then refuse.
    let permit = tokio::time::timeout(std::time::Duration::from_secs(10), s.queries.acquire()).await;
    let Ok(Ok(_permit)) = permit else {
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many queries are running; retry shortly");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        return Err(r);
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "panic", "the query failed unexpectedly"))
}

pub async fn query_get(State(s): AppState, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    run_query(s, headers, p).await
}

pub async fn query_post(
    State(s): AppState,
    headers: HeaderMap,
    Query(p): Query<Params>,
    body: axum::body::Bytes,
) -> Response {
    match p.with_body(&body) {
        Ok(p) => run_query(s, headers, p).await,
        Err(r) => r.into_response(),
    }
}

async fn run_query(s: Arc<Shared>, headers: HeaderMap, p: Params) -> Response {
    let ask = match p.ask() {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let arrow = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains(ARROW_STREAM));
    let (dir, lim, q) = (s.cfg.store.clone(), limits(&s), ask.q.clone());
    let answer = match blocking(&s, move || store::query(&dir, &ask, &lim)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let answer = match answer {
        Ok(a) => a,
        Err(f) => return failed(&s, &q, f),
    };
    s.metrics.queries.fetch_add(1, Ordering::Relaxed);
    let mut r = if arrow {
        match answer.arrow_stream() {
            Ok(b) => (StatusCode::OK, [(header::CONTENT_TYPE, ARROW_STREAM)], b).into_response(),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "arrow", &e),
        }
    } else {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-ndjson")], answer.json_lines()).into_response()
    };
    let h = r.headers_mut();
    h.insert("x-kaq-rows", HeaderValue::from(answer.rows.len()));
    if answer.cut > 0 {
        // The rows past the limit are left out; the header says how many.
        h.insert("x-kaq-rows-cut", HeaderValue::from(answer.cut));
    }
    let cols: Vec<&str> = answer.columns().iter().map(|c| c.name.as_str()).collect();
    if let Ok(v) = HeaderValue::from_str(&serde_json::to_string(&cols).unwrap_or_default()) {
        h.insert("x-kaq-columns", v);
    }
    if answer.plan.whole_events {
        h.insert("x-kaq-whole-events", HeaderValue::from_static("true"));
    }
    for n in &answer.notes {
        if let Ok(v) = HeaderValue::from_str(&kaq_schema::visible(n)) {
            h.append("x-kaq-note", v);
        }
    }
    r
}

pub async fn explain_get(State(s): AppState, Query(p): Query<Params>) -> Response {
    run_explain(s, p).await
}

pub async fn explain_post(State(s): AppState, Query(p): Query<Params>, body: axum::body::Bytes) -> Response {
    match p.with_body(&body) {
        Ok(p) => run_explain(s, p).await,
        Err(r) => r.into_response(),
    }
}

async fn run_explain(s: Arc<Shared>, p: Params) -> Response {
    let ask = match p.ask() {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let (dir, lim, q) = (s.cfg.store.clone(), limits(&s), ask.q.clone());
    match blocking(&s, move || store::explain(&dir, &ask, &lim)).await {
        Ok(Ok(text)) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Ok(Err(f)) => failed(&s, &q, f),
        Err(r) => r,
    }
}

/// `/api/fields`: the field catalogue, and each completed field's most frequent values.
pub async fn fields(State(s): AppState) -> Response {
    let dir = s.cfg.store.clone();
    let values = match blocking(&s, move || store::top_values(&dir, 20)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let fields: Vec<serde_json::Value> = kaq_schema::FIELDS
        .iter()
        .map(|f| {
            let top = values.iter().find(|(n, _)| *n == f.name).map(|(_, v)| v.clone()).unwrap_or_default();
            serde_json::json!({
                "name": f.name,
                "aliases": f.aliases,
                "type": format!("{:?}", f.ty).to_lowercase(),
                "list": f.list,
                "doc": f.doc,
                "values": top.iter().map(|(v, n)| serde_json::json!({"value": v, "count": n})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = serde_json::json!({ "fields": fields });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

/// `/api/alerts`'s parameters: the period the alerts fire in (default the last 24 hours).
#[derive(Debug, Default, serde::Deserialize)]
pub struct AlertParams {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

/// Alerts shown at most (the most recent).
const ALERTS_SHOWN: usize = 200;

/// `/api/alerts?since=24h&until=…`: `kaq detect`'s built-in rule pack run over the store (as
/// `kaq detect --store DIR --since 24h` does), the most recent alerts first, each as `kaq detect`
/// prints it. A store not made yet has none.
pub async fn alerts(State(s): AppState, Query(p): Query<AlertParams>) -> Response {
    let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let since = blank(p.since).unwrap_or_else(|| "24h".into());
    let until = blank(p.until);
    let dir = s.cfg.store.clone();
    let live = live_alerts(&s);
    let run = move || detect(&dir, &since, until.as_deref());
    match blocking(&s, run).await {
        Ok(Ok(mut body)) => {
            body["live"] = live;
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
        }
        Ok(Err((code, msg))) => error(StatusCode::BAD_REQUEST, code, &msg),
        Err(r) => r,
    }
}

/// The alerts fired on arriving events (the server's rules, as `kaq watch` runs them), the most
/// recent first, at most [`ALERTS_SHOWN`]; `null` when the server runs no rules.
fn live_alerts(s: &Shared) -> serde_json::Value {
    let Some(live) = &s.live else { return serde_json::Value::Null };
    let k = live.lock().unwrap_or_else(|e| e.into_inner());
    let list: Vec<serde_json::Value> =
        k.recent.iter().rev().take(ALERTS_SHOWN).filter_map(|a| serde_json::from_str(&a.to_json()).ok()).collect();
    serde_json::json!({ "alerts": list, "fired": k.fired, "rules": k.rules })
}

/// The built-in pack over the store in `dir`, alerts firing in `since..until`.
fn detect(
    dir: &std::path::Path,
    since: &str,
    until: Option<&str>,
) -> Result<serde_json::Value, (&'static str, String)> {
    let (since_us, until_us) = kaq_detect::source::time_bounds(Some(since), until).map_err(|e| ("bad_time", e))?;
    if !dir.join("MANIFEST.json").exists() {
        return Ok(serde_json::json!({ "alerts": [], "since": since, "note": "no events stored yet" }));
    }
    let set = kaq_detect::Loader::with_builtin().finish().map_err(|e| ("rules", e.to_string()))?;
    let mut prepared = kaq_detect::prepare(&set, &[]).map_err(|e| ("rules", e.to_string()))?;
    let data = kaq_detect::Data::open_store(dir).map_err(|e| ("store", e.to_string()))?;
    let bounds = kaq_detect::Bounds { since: since_us, until: until_us };
    let (mut alerts, _) =
        kaq_detect::run(&mut prepared, &set, &data, &bounds, 20).map_err(|e| ("store", e.to_string()))?;
    let total = alerts.len();
    alerts.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.rule.cmp(&b.rule)));
    alerts.truncate(ALERTS_SHOWN);
    let list: Vec<serde_json::Value> = alerts.iter().filter_map(|a| serde_json::from_str(&a.to_json()).ok()).collect();
    Ok(serde_json::json!({ "alerts": list, "total": total, "since": since, "rules": prepared.len() }))
}

/// `/report/compliance?since=30d&until=…`: the compliance report over the store, as
/// `kaq report compliance --store DIR --since … -o report.html` writes it (docs/report.md).
pub async fn report(State(s): AppState, Query(p): Query<AlertParams>) -> Response {
    let Some(make) = s.cfg.report.clone() else {
        return error(StatusCode::NOT_FOUND, "no_report", "this server was started without the compliance report");
    };
    let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let since = blank(p.since).unwrap_or_else(|| "30d".into());
    let until = blank(p.until);
    let dir = s.cfg.store.clone();
    if !dir.join("MANIFEST.json").exists() {
        return error(StatusCode::NOT_FOUND, "no_events", "no events are stored yet: the report has nothing to show");
    }
    match blocking(&s, move || (make.0)(&dir, &since, until.as_deref())).await {
        // The report is self-contained: inline style and SVG, no script, nothing fetched.
        Ok(Ok(html)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
            ],
            html,
        )
            .into_response(),
        Ok(Err(msg)) => error(StatusCode::BAD_REQUEST, "report", &msg),
        Err(r) => r,
    }
}
