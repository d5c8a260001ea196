//! `kaq repl`: ask questions interactively over a store or log files.
//!
//! On a terminal the line editor is reedline: history in a file, completion ([`complete`]),
//! colours from the parser ([`highlight`]), hints from history, multi-line input. Each query runs
//! on a worker thread while the main thread waits; Ctrl-C (SIGINT, as the terminal is in its
//! normal mode then) sets the read's cancel flag, and the scan stops within a chunk or a row
//! group. Without a terminal, queries are read from stdin line by line (same multi-line rule) and
//! answered in turn.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::bail;
use clap::{Args, ValueEnum};
use kaq_input::ReadOptions;
use kaq_query::{Options, compile, output};

mod complete;
mod edit;
mod highlight;
mod meta;
mod source;

pub use source::Source;

use super::render;
use super::report::thousands;
use meta::Meta;

/// Ask questions interactively: a query shell over a store or audit logs.
///
/// Type a query (the language of `kaq query`) and press Enter; the answer prints as a table
/// sized to the terminal, with bar charts for `count by`, `top` and `timeline`. Tab completes
/// field names, stages, aggregates, named queries, and values found in the data: after `ns:`,
/// `user:`, `verb:` or `resource:` it offers the values the store holds, most frequent first.
///
///   kaq repl                         (the store: --store, $KAQ_STORE, or ./kaq-store)
///
///   kaq repl /var/log/kubernetes/audit/     (log files, read again for each query)
///
///   kaq demo                         (a generated cluster's log, then this shell)
///
///   kaq> verb:delete ns:prod* | table time, user, resource, name
///
///   kaq> code:401 | count by ip | sort -count
///
/// Commands start with a dot: .help, .fields, .explain QUERY, .format table|json|csv,
/// .since 2h, .until TIME, .timing, .save NAME SEARCH (then @NAME in queries, here, in later
/// sessions and in `kaq query`), .forget NAME, .quit.
/// A line ending in `|` or with an open `(` or quote goes on on the next line.
///
/// Ctrl-C cancels a running query and returns to the prompt; Ctrl-D leaves. History is kept in
/// $XDG_STATE_HOME/kaq/history (~/.local/state/kaq/history; $KAQ_HISTORY to choose the file,
/// empty for none). Saved searches are kept in the [queries] of the user's rule file,
/// $KAQ_CONFIG_DIR/rules.toml, else $XDG_CONFIG_HOME/kaq/rules.toml (~/.config/kaq/rules.toml),
/// where `kaq query`, `kaq sql` and the detection rules find them too.
///
/// Without a terminal, queries are read from stdin, one per line, and answered in turn (JSON
/// lines when stdout is not a terminal either; tables as wide as $COLUMNS).
///
/// More: docs/repl.md, and the language in docs/query.md.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ReplArgs {
    /// Audit logs (plain, gzip, directories; GKE, EKS and AKS exports too) or kaq Parquet files,
    /// read again for each query. Without any: the store.
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// The store to query [default without INPUT: $KAQ_STORE, else ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    /// How results print [default: table on a terminal, json otherwise]; `.format` changes it.
    #[arg(long, value_enum)]
    format: Option<OutFormat>,

    /// Only events at or after this time (2h, 7d, 2026-11-20T05:00Z); `.since` changes it.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,

    /// Only events before this time; `.until` changes it.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,

    #[command(flatten)]
    input: super::input::InputArgs,

    /// Decoding threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    Table,
    Json,
    Csv,
}

impl OutFormat {
    fn name(self) -> &'static str {
        match self {
            OutFormat::Table => "table",
            OutFormat::Json => "json",
            OutFormat::Csv => "csv",
        }
    }
}

/// Rows drawn in a table before "N more rows".
const MAX_ROWS: usize = 50;

pub fn run(args: ReplArgs) -> anyhow::Result<ExitCode> {
    if args.store.is_some() && !args.inputs.is_empty() {
        bail!("give either INPUT files or --store, not both");
    }
    if args.inputs.iter().any(|p| p.as_os_str() == "-") {
        bail!("the REPL reads queries from stdin: give log files or a store, not `-`");
    }
    let source = if args.inputs.is_empty() {
        let dir = super::store::store_dir(args.store.as_ref());
        if !dir.join("MANIFEST.json").exists() {
            bail!(
                "{}: no store here; give audit logs (`kaq repl audit.log`), make a store with `kaq ingest`, or try `kaq demo`",
                dir.display()
            );
        }
        Source::store(kaq_store::Store::open(&dir)?)
    } else {
        for p in &args.inputs {
            if !p.exists() {
                bail!("{}: no such file or directory", p.display());
            }
        }
        Source::files(args.inputs.clone())
    };
    let settings = Settings {
        format: args.format,
        since: args.since,
        until: args.until,
        read: ReadOptions {
            input_format: args.input.format(),
            threads: args.threads.unwrap_or(ReadOptions::default().threads).max(1),
            max_record_size: args.input.max_record_size,
            ..ReadOptions::default()
        },
    };
    start(source, settings, None)
}

/// What a session starts with.
#[derive(Default)]
pub struct Settings {
    pub format: Option<OutFormat>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub read: ReadOptions,
}

/// Runs the REPL on `source` until `.quit`, Ctrl-D or the end of stdin; `welcome` is printed
/// after the banner on a terminal.
pub fn start(source: Source, settings: Settings, welcome: Option<String>) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let history = history_path();
    let saved = super::saved::path();
    // Saved searches and the rule files' named queries. A file that cannot be read is reported,
    // and left as it is: `.save` refuses to overwrite it.
    let loaded = super::saved::named().unwrap_or_else(|e| {
        eprintln!("kaq: warning: {e:#}; saved searches are unavailable until it is fixed");
        super::detect::rule_queries()
    });
    let macros = Arc::new(Mutex::new(loaded));
    let mut s = Session {
        source: Arc::new(source),
        format: settings.format.unwrap_or(if std::io::stdout().is_terminal() {
            OutFormat::Table
        } else {
            OutFormat::Json
        }),
        since: settings.since,
        until: settings.until,
        timing: false,
        read: settings.read,
        macros,
        saved,
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        warned_rejects: false,
        failed: false,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    s.read.cancel = Some(cancel.clone());
    install_ctrl_c(cancel, !interactive);
    if interactive {
        println!("kaq {} — {}", env!("CARGO_PKG_VERSION"), kaq_schema::visible(&s.source.describe()));
        println!("Type a query, .help for help; Tab completes fields and values; Ctrl-D leaves.");
        if let Some(w) = welcome {
            println!("\n{w}");
        }
        edit::run(&mut s, history)?;
        Ok(ExitCode::SUCCESS)
    } else {
        let mut pending = String::new();
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(&line);
            if highlight::is_complete(&pending) {
                let input = std::mem::take(&mut pending);
                if s.handle(&input) == Flow::Quit {
                    break;
                }
            }
        }
        if !pending.trim().is_empty() {
            s.handle(&pending);
        }
        Ok(if s.failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
    }
}

/// Whether a query (or a print) is under way: Ctrl-C then cancels it instead of ending kaq.
static BUSY: AtomicBool = AtomicBool::new(false);
static HANDLER: OnceLock<()> = OnceLock::new();
/// A directory removed when Ctrl-C ends kaq between queries (`kaq demo`'s temporary store).
static REMOVE_ON_INTERRUPT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Removes `dir` if Ctrl-C ends kaq between queries (a normal exit is the caller's to clean).
pub fn remove_on_interrupt(dir: &std::path::Path) {
    if let Ok(mut d) = REMOVE_ON_INTERRUPT.lock() {
        *d = Some(dir.to_path_buf());
    }
}

/// Ctrl-C cancels the running query. Between queries the line editor reads Ctrl-C as a key
/// (the terminal is in raw mode then), so a SIGINT there comes just before or after it reads:
/// ignored. Without a terminal, Ctrl-C between queries ends kaq.
fn install_ctrl_c(cancel: Arc<AtomicBool>, exit_when_idle: bool) {
    HANDLER.get_or_init(|| {
        let set = ctrlc::set_handler(move || {
            if BUSY.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            } else if exit_when_idle {
                // Exiting here runs no destructors: remove what must not outlive kaq first.
                if let Some(dir) = REMOVE_ON_INTERRUPT.lock().ok().and_then(|d| d.clone()) {
                    let _ = std::fs::remove_dir_all(dir);
                }
                std::process::exit(130);
            }
        });
        if let Err(e) = set {
            eprintln!("kaq: warning: Ctrl-C will not cancel queries: {e}");
        }
    });
}

/// The history file: $KAQ_HISTORY (empty: none), else $XDG_STATE_HOME/kaq/history, else
/// ~/.local/state/kaq/history.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KAQ_HISTORY") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("kaq").join("history"))
}

#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Session {
    source: Arc<Source>,
    format: OutFormat,
    since: Option<String>,
    until: Option<String>,
    timing: bool,
    read: ReadOptions,
    macros: Arc<Mutex<HashMap<String, String>>>,
    saved: Option<PathBuf>,
    color: bool,
    warned_rejects: bool,
    /// A query failed (the exit status without a terminal).
    failed: bool,
}

impl Session {
    fn options(&self) -> Options {
        Options {
            now_us: chrono::Utc::now().timestamp_micros(),
            all_stages: false,
            since: self.since.clone(),
            until: self.until.clone(),
            macros: self.macros.lock().expect("unpoisoned").clone(),
        }
    }

    /// One input: a meta-command or a query.
    pub fn handle(&mut self, input: &str) -> Flow {
        let text = input.trim();
        if text.is_empty() {
            return Flow::Continue;
        }
        if text.starts_with('.') {
            return self.meta(meta::parse(text));
        }
        self.query(text)
    }

    /// Runs a query and prints its answer; a closed stdout ends the session.
    fn query(&mut self, text: &str) -> Flow {
        let opts = self.options();
        let before = kaq_query::query_warnings(text, &opts, self.source.known_values());
        let mut plan = match compile(text, &opts) {
            Ok(p) => p,
            Err(diags) => {
                super::diagnostics::print_warnings(text, &before);
                for d in &diags {
                    super::diagnostics::render_diagnostic(text, d);
                }
                self.failed = true;
                return Flow::Continue;
            }
        };
        // Over files, the scan tells whether they hold a value outside a field's vocabulary.
        if self.source.is_files() && before.iter().any(|w| w.kind == kaq_query::WarningKind::UnknownValue) {
            plan.watch = kaq_query::vocabulary_slots(&plan);
        }
        let started = Instant::now();
        let cancel = self.read.cancel.clone().expect("set at start");
        cancel.store(false, Ordering::SeqCst);
        BUSY.store(true, Ordering::SeqCst);
        let source = &self.source;
        let read = &self.read;
        let result = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("kaq-query".into())
                .spawn_scoped(s, || source.run(&plan, read))
                .expect("spawning a thread")
                .join()
        });
        let answer = match result {
            Err(_) => {
                BUSY.store(false, Ordering::SeqCst);
                eprintln!("kaq: error: the query failed (an internal error; please report it)");
                self.failed = true;
                return Flow::Continue;
            }
            Ok(Err(_)) if cancel.load(Ordering::SeqCst) => {
                BUSY.store(false, Ordering::SeqCst);
                eprintln!("\ncancelled after {:.1}s", started.elapsed().as_secs_f64());
                return Flow::Continue;
            }
            Ok(Err(e)) => {
                BUSY.store(false, Ordering::SeqCst);
                eprintln!("kaq: error: {}", kaq_schema::visible(&format!("{e:#}")));
                self.failed = true;
                return Flow::Continue;
            }
            Ok(Ok(a)) => a,
        };
        let elapsed = started.elapsed();
        // Warnings come before the answer they are about.
        let mut warnings = match &answer.seen {
            Some((seen, all_read)) => {
                let seen = kaq_query::SeenValues { plan: &plan, seen, all_read: *all_read };
                kaq_query::query_warnings(text, &opts, Some(&seen))
            }
            None => before,
        };
        warnings.extend(answer.data_range.and_then(|(d, what)| kaq_query::time_warning(&plan, Some(d), what)));
        super::diagnostics::print_warnings(text, &warnings);
        let printed = self.print(&plan, &answer.rows, &answer.notes, &cancel);
        BUSY.store(false, Ordering::SeqCst);
        match printed {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Flow::Quit,
            Err(e) => eprintln!("kaq: error: {}", kaq_schema::visible(&e.to_string())),
            Ok(()) => {}
        }
        if answer.rejected > 0 && !self.warned_rejects {
            self.warned_rejects = true;
            eprintln!(
                "kaq: {} records in the inputs are not audit events and were skipped (`kaq query '*' --rejects FILE LOGS…` lists them)",
                thousands(answer.rejected)
            );
        }
        if answer.ids_reused > 0 {
            eprintln!("note: {}", super::diagnostics::reuse_note(answer.ids_reused));
        }
        if self.timing {
            eprintln!(
                "{} row{} in {:.3}s ({} records read)",
                thousands(answer.rows.len() as u64),
                if answer.rows.len() == 1 { "" } else { "s" },
                elapsed.as_secs_f64(),
                thousands(answer.read)
            );
        }
        Flow::Continue
    }

    /// Prints the rows, then the notes: under a table (dimmed), on stderr otherwise, where they
    /// stay out of JSON and CSV.
    fn print(
        &self,
        plan: &kaq_query::Plan,
        rows: &[kaq_query::Row],
        notes: &[kaq_query::pipeline::Note],
        cancel: &AtomicBool,
    ) -> std::io::Result<()> {
        let columns = plan.output_columns();
        let shown: Vec<usize> = if plan.whole_events { plan.display.clone() } else { (0..columns.len()).collect() };
        let mut out = BufWriter::new(std::io::stdout().lock());
        match self.format {
            OutFormat::Table => {
                let look = render::Look {
                    width: terminal_width(),
                    color: self.color,
                    charts: true,
                    max_rows: MAX_ROWS,
                    more: "add | head N or .format json",
                    footer: true,
                };
                render::table(&mut out, columns, rows, &shown, render::chart_for(plan), &look)?;
                for n in notes {
                    let text = format!("note: {n}");
                    let text = if self.color { nu_ansi_term::Color::Yellow.paint(text).to_string() } else { text };
                    writeln!(out, "{text}")?;
                }
            }
            // In slices, so that Ctrl-C stops a long print too.
            OutFormat::Json => {
                for chunk in rows.chunks(1000) {
                    if cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    output::write_json(&mut out, chunk, columns)?;
                }
            }
            OutFormat::Csv => {
                // Formulas guarded as `kaq query` does; escapes shown on a terminal.
                let csv = output::CsvOptions { raw: false, visible: std::io::stdout().is_terminal() };
                output::write_csv(&mut out, &rows[..rows.len().min(1000)], columns, &shown, csv)?;
                for chunk in rows.get(1000..).unwrap_or_default().chunks(1000) {
                    if cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    for r in chunk {
                        writeln!(out, "{}", output::csv_line(r, &shown, csv))?;
                    }
                }
            }
        }
        out.flush()?;
        if self.format != OutFormat::Table {
            for n in notes {
                eprintln!("kaq: warning: {n}");
            }
        }
        Ok(())
    }

    fn meta(&mut self, m: Meta) -> Flow {
        match m {
            Meta::Quit => return Flow::Quit,
            Meta::Help => print!("{}", meta::help()),
            Meta::Fields(prefix) => self.fields(&prefix),
            Meta::Explain(q) if q.is_empty() => eprintln!("usage: .explain QUERY"),
            Meta::Explain(q) => match compile(&q, &self.options()) {
                // Over a store, the query runs: each step's rows are counted.
                Ok(plan) => match self.source.explain(&plan) {
                    Ok(explained) => print!("{explained}"),
                    Err(e) => {
                        eprintln!("kaq: error: {}", kaq_schema::visible(&e.to_string()));
                        self.failed = true;
                    }
                },
                Err(diags) => {
                    diags.iter().for_each(|d| super::diagnostics::render_diagnostic(&q, d));
                    self.failed = true;
                }
            },
            Meta::Format(f) => match f.as_str() {
                "" => println!("format: {}", self.format.name()),
                "table" => self.format = OutFormat::Table,
                "json" => self.format = OutFormat::Json,
                "csv" => self.format = OutFormat::Csv,
                other => self.fail(&format!("unknown format `{other}`: table, json or csv")),
            },
            Meta::Since(t) => self.time_bound(t, true),
            Meta::Until(t) => self.time_bound(t, false),
            Meta::Timing(t) => match t.as_str() {
                "" => self.timing = !self.timing,
                "on" => self.timing = true,
                "off" => self.timing = false,
                other => self.fail(&format!("`.timing {other}`: on or off")),
            },
            Meta::Save(name, q) => self.save(name, q),
            Meta::Forget(name) => self.forget(name),
            Meta::Unknown(c) => {
                let names: Vec<&str> = meta::COMMANDS.iter().map(|(c, _, _)| *c).collect();
                let hint =
                    kaq_syntax::did_you_mean(&c, &names).map_or(String::new(), |s| format!("; did you mean {s}?"));
                self.fail(&format!("unknown command {c}{hint} (.help lists them)"));
            }
        }
        Flow::Continue
    }

    fn fail(&mut self, msg: &str) {
        eprintln!("kaq: {}", kaq_schema::visible(msg));
        self.failed = true;
    }

    fn time_bound(&mut self, t: String, since: bool) {
        let name = if since { "since" } else { "until" };
        let slot = if since { &self.since } else { &self.until };
        if t.is_empty() {
            println!("{name}: {}", slot.as_deref().unwrap_or("(none)"));
            return;
        }
        let value = (t != "off").then_some(t);
        let mut opts = self.options();
        if since {
            opts.since = value.clone();
        } else {
            opts.until = value.clone();
        }
        match compile("", &opts) {
            Ok(_) if since => self.since = value,
            Ok(_) => self.until = value,
            Err(d) => self.fail(&d[0].message.replace("--since", ".since").replace("--until", ".until")),
        }
    }

    /// `.save`: lists the saved searches (and names the rule pack's); `.save NAME`: shows one;
    /// `.save NAME SEARCH`: saves it in the user's rules.toml (and for this session, should
    /// writing fail).
    fn save(&mut self, name: String, q: String) {
        if name.is_empty() {
            let mine = super::saved::user_saved().unwrap_or_else(|e| {
                eprintln!("kaq: warning: {e:#}");
                HashMap::new()
            });
            let m = self.macros.lock().expect("unpoisoned");
            let mut names: Vec<_> =
                m.iter().filter(|(n, _)| mine.contains_key(*n) || !super::saved::in_pack(n)).collect();
            if names.is_empty() {
                println!("no saved searches; .save NAME SEARCH names one, used as @NAME");
            }
            names.sort();
            for (n, q) in names {
                println!("@{n:<20} {q}");
            }
            let mut pack: Vec<_> = m.keys().filter(|n| !mine.contains_key(*n) && super::saved::in_pack(n)).collect();
            if !pack.is_empty() {
                pack.sort();
                let pack: Vec<String> = pack.iter().map(|n| format!("@{n}")).collect();
                println!("and the rule pack's: {}", pack.join(" "));
            }
            return;
        }
        if q.is_empty() {
            let known = self.macros.lock().expect("unpoisoned").get(&name).cloned();
            return match known {
                Some(q) => println!("@{name} = {q}"),
                None => self.fail(&format!("no saved search @{name}; .save NAME SEARCH names one")),
            };
        }
        if let Err(why) = super::saved::check_name(&name) {
            return self.fail(&why);
        }
        match kaq_syntax::parse(&q) {
            Ok(p) if !p.stages.is_empty() || p.search.is_none() => {
                return self.fail("a saved query is a search, without stages: add the stages after @NAME");
            }
            Err(d) => {
                d.iter().for_each(|d| super::diagnostics::render_diagnostic(&q, d));
                self.failed = true;
                return;
            }
            Ok(_) => {}
        }
        if let Err(d) = compile(&q, &self.options()) {
            d.iter().for_each(|d| super::diagnostics::render_diagnostic(&q, d));
            self.failed = true;
            return;
        }
        self.store_saved(&name, Some(&q));
        println!("saved: @{name}");
    }

    /// `.forget NAME`: removes a saved search.
    fn forget(&mut self, name: String) {
        let name = name.trim_start_matches('@').to_string();
        if name.is_empty() {
            return self.fail("usage: .forget NAME");
        }
        let mine = super::saved::user_saved().map(|m| m.contains_key(&name));
        if !matches!(mine, Ok(true)) && super::saved::in_pack(&name) {
            return self.fail(&format!(
                "@{name} is a named query of the built-in rule pack, not a saved search (rules.toml's [queries] can change it)"
            ));
        }
        if !self.macros.lock().expect("unpoisoned").contains_key(&name) {
            return self.fail(&format!("no saved search @{name} (.save lists them)"));
        }
        self.store_saved(&name, None);
        println!("forgot @{name}");
    }

    /// Writes a change to the user's rules.toml (and queries.toml), then takes every named query
    /// again (other sessions' saves too); if it cannot be written, the change holds for this
    /// session only.
    fn store_saved(&mut self, name: &str, search: Option<&str>) {
        let legacy = super::saved::legacy_path();
        let updated = match &self.saved {
            Some(p) => super::saved::update(p, legacy.as_deref(), name, search)
                .and_then(|()| super::saved::named())
                .map_err(|e| format!("{e:#}")),
            None => Err("no configuration directory (set KAQ_CONFIG_DIR or HOME)".to_string()),
        };
        let mut m = self.macros.lock().expect("unpoisoned");
        match updated {
            Ok(all) => *m = all,
            Err(e) => {
                eprintln!("kaq: warning: {e} (this change holds for this session only)");
                match search {
                    Some(s) => m.insert(name.to_string(), s.to_string()),
                    None => m.remove(name),
                };
            }
        }
    }

    /// `.fields`: each field, its type, and the values seen most (or what it is).
    fn fields(&self, prefix: &str) {
        let width = match terminal_width() {
            0 => 120,
            w => w,
        };
        let known = self.source.has_values();
        println!(
            "{:<18}{:<14}{}",
            "field",
            "type",
            if known { "values seen (rows), or what it is" } else { "what it is" }
        );
        for f in kaq_schema::FIELDS.iter().filter(|f| f.name.starts_with(prefix)) {
            let ty = format!("{}{}", f.ty.name(), if f.list { " list" } else { "" });
            let values =
                if source::VALUE_FIELDS.contains(&f.name) { self.source.values(f.name, "", 4) } else { Vec::new() };
            let about = if values.is_empty() {
                f.doc.to_string()
            } else {
                values
                    .iter()
                    .map(|(v, n)| format!("{} ({})", if v.is_empty() { "\"\"" } else { v }, thousands(*n)))
                    .collect::<Vec<_>>()
                    .join(" · ")
            };
            let line = format!("{:<18}{:<14}{about}", f.name, ty);
            println!("{}", render::cut(&line, width.saturating_sub(1)));
        }
        println!("Aliases (namespace = ns…), JSON paths (request.spec…) and annotations.\"KEY\": docs/query.md");
    }
}

/// The width tables are drawn to: the terminal's; when stdout is not a terminal, `$COLUMNS` if it
/// is a number, else 0 (no limit; each cell cut at 60 characters).
pub fn terminal_width() -> usize {
    let columns = || std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&w| w > 0);
    if !std::io::stdout().is_terminal() {
        return columns().unwrap_or(0);
    }
    match crossterm::terminal::size() {
        Ok((w, _)) if w > 0 => w as usize,
        _ => columns().unwrap_or(80),
    }
}
