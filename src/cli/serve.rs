//! `kaq serve`: the audit webhook backend, the query API and the web page (crates/serve).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;

/// Receive audit events from kube-apiserver's webhook backend, and search them over HTTP.
///
/// Point the API server's --audit-webhook-config-file at http://HOST:PORT/ (docs/serve.md has
/// a working kubeconfig). Each POSTed EventList is checked, appended to a write-ahead log and
/// synced to disk before the 200: a batch acknowledged is a batch kept, across a crash. The log
/// is committed into the store every --commit-every; a batch sent again (its 200 lost) is held
/// once. When the server cannot keep up it answers 503 or 429 with Retry-After, and the API
/// server retries; a body over --max-body is refused with 413, a malformed one with 400.
///
/// The same server answers queries, as `kaq query --store` does:
///
///   GET  /api/query?q=verb:delete ns:prod*   JSON lines, as `kaq query --format json` prints
///                                            (Accept: application/vnd.apache.arrow.stream for
///                                            Arrow IPC); errors as JSON with code, message, span
///   GET  /api/explain?q=…                    the plan and what it read
///   GET  /api/fields                         the fields and their most frequent values
///   GET  /api/alerts?since=24h               `kaq detect`'s pack over the store, and under
///                                            "live" the alerts fired as events arrived
///   GET  /metrics                            Prometheus text;  GET /healthz: "ok"
///   GET  /                                   a search page (query box, histogram, top values)
///
/// Rules run on arriving events as `kaq watch` runs them (the built-in pack, your rules.toml and
/// each --rules FILE): after each commit, beside ingest; each alert is kept for /api/alerts and
/// POSTed to --alert-webhook (JSON, or --alert-webhook-format slack), with retries. Their state
/// is alerts.state.json in the store: a restart sends no alert twice.
///
/// It listens on 127.0.0.1 unless told otherwise, and refuses any other address without
/// --auth-token-file: then every request but /healthz must carry `Authorization: Bearer TOKEN`
/// (a browser asks for it: any user name, the token as password). Use --tls-cert/--tls-key for
/// HTTPS. Queries run while events arrive; `kaq ingest` into the same store is refused while
/// the server runs (it holds the store's writer lock).
///
/// Examples:
///
///   kaq serve --store /srv/kaq                          (http://127.0.0.1:8080/)
///
///   kaq serve --store /srv/kaq --listen 0.0.0.0:8443 --auth-token-file /etc/kaq/token \
///             --tls-cert /etc/kaq/tls.crt --tls-key /etc/kaq/tls.key
///
///   curl -s -H "Authorization: Bearer $(cat /etc/kaq/token)" \
///        'https://kaq.example:8443/api/query?q=verb:delete%20ns:prod*'
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// The store [default: $KAQ_STORE, else ./kaq-store]; created when missing.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A file whose first line is the token every request must carry (Authorization: Bearer).
    /// Needed to listen on anything but loopback.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The write-ahead log's directory [default: the store's path with .wal added].
    #[arg(long, value_name = "DIR")]
    wal: Option<PathBuf>,
    /// Largest webhook body accepted (K, M, G suffixes); larger ones get 413.
    #[arg(long, value_name = "SIZE", default_value = "32M", value_parser = parse_size)]
    max_body: usize,
    /// How often what arrived is committed into the store (and becomes searchable), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    commit_every: f64,
    /// A query running longer is stopped (answered 503 with code "timeout"), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    query_timeout: f64,
    /// Most rows a query answers; past it the rest are left out and X-Kaq-Rows-Cut says how many.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_rows: usize,
    /// Bytes of the log not yet in the store before batches get 429 (K, M, G suffixes).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    max_pending: usize,
    /// A rule file read after the built-in pack and the user's rules.toml, for the rules run
    /// on arriving events (repeatable).
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Do not read $KAQ_CONFIG_DIR/rules.toml.
    #[arg(long)]
    no_user_rules: bool,
    /// Run no rules on arriving events (/api/alerts still runs the pack on request).
    #[arg(long)]
    no_live_rules: bool,
    /// POST each alert fired on arriving events to this URL (http://HOST[:PORT][/PATH]), as
    /// `kaq watch --webhook` does.
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// The webhook body: the alert's JSON line, or Slack's {"text": …}.
    #[arg(long, value_enum, default_value = "json", requires = "alert_webhook")]
    alert_webhook_format: super::watch::WebhookFormat,
    /// Attempts after a failed delivery (connection refused, timeout, 408, 429, 5xx).
    #[arg(long, value_name = "N", default_value_t = 5, requires = "alert_webhook")]
    alert_webhook_retries: u32,
    /// Where the alert state is kept [default: alerts.state.json in the store].
    #[arg(long, value_name = "FILE")]
    alert_state: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    kaq_input::parse_size(s).ok_or_else(|| format!("{s:?} is not a size (e.g. 32M, 512K, 1G)"))
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("--{name} must be a positive number of seconds"))
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = super::store::store_dir(args.store.as_ref());
    let mut cfg = kaq_serve::Config::new(store.clone(), args.listen);
    cfg.wal = args.wal;
    cfg.max_body = args.max_body;
    cfg.max_pending = args.max_pending as u64;
    cfg.max_rows = args.max_rows.max(1);
    cfg.commit_every = seconds("commit-every", args.commit_every)?;
    cfg.query_timeout = seconds("query-timeout", args.query_timeout)?;
    if let Some(f) = &args.auth_token_file {
        cfg.token = Some(kaq_serve::read_token(f).map_err(|e| anyhow!(e)).context("--auth-token-file")?);
    }
    cfg.tls = args.tls_cert.zip(args.tls_key);
    // `/report/compliance`: `kaq report compliance` over the served store.
    cfg.report = Some(kaq_serve::ReportMaker(std::sync::Arc::new(|dir, since, until| {
        super::compliance::html_for_store(dir, since, until).map_err(|e| format!("{e:#}"))
    })));
    if !args.no_live_rules {
        let rules = match super::detect::load_rules(false, args.no_user_rules, &args.rules)? {
            Ok(s) => s,
            Err(e) => {
                super::detect::print_rule_error(&e);
                return Ok(ExitCode::from(super::detect::BAD_RULES));
            }
        };
        if let Err(e) = kaq_detect::prepare(&rules, &[]) {
            super::detect::print_rule_error(&e);
            return Ok(ExitCode::from(super::detect::BAD_RULES));
        }
        let webhook = match &args.alert_webhook {
            Some(url) => Some((
                kaq_detect::deliver::Target::parse(url)
                    .map_err(|e| anyhow!("--alert-webhook {}", kaq_schema::visible(&e)))?,
                args.alert_webhook_format.shape(),
            )),
            None => None,
        };
        let retry = kaq_detect::deliver::Retry { retries: args.alert_webhook_retries, ..Default::default() };
        cfg.alerts = Some(kaq_serve::Alerts { rules, state: args.alert_state, webhook, retry });
    } else if args.alert_webhook.is_some() {
        return Err(anyhow!("--alert-webhook needs the rules run on arriving events: leave out --no-live-rules"));
    }
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let auth = if cfg.token.is_some() { "token required" } else { "no token: loopback only" };
    let wal = cfg.wal_dir();
    kaq_serve::run(cfg, move |addr| {
        eprintln!(
            "kaq serve: listening on {scheme}://{addr}/ (store {}, write-ahead log {}, {auth})",
            super::report::shown(&store),
            super::report::shown(&wal)
        );
    })
    .map_err(|e| anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}
