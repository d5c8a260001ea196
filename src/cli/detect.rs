//! `kaq detect`: runs detection rules (the built-in pack and the user's) over a store or logs.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kaq_detect::{Alert, Bounds, Data, Kind, Loader, Metric, RuleSet, Severity, rules};
use kaq_input::ReadOptions;
use kaq_schema::visible;

/// Run detection rules over a store or audit logs and print what fired.
///
/// The built-in pack (`kaq detect --list`) covers anonymous access, 401/403 bursts, deletions in
/// production, Secret reads by people never seen reading them and bursts of distinct Secrets, exec/attach/port-forward, privileged
/// and host-namespace pods, sensitive mounts, dangerous capabilities, cluster-admin bindings,
/// wildcard and escalating roles, token requests, impersonation, CSRs, admission webhooks,
/// deleted Events, nodes/proxy, slow calls, request-rate spikes, an RBAC change followed by a
/// workload change, and forged auditIDs.
///
///   kaq detect                                  (the store: --store, $KAQ_STORE, ./kaq-store)
///
///   kaq detect audit.log --since 24h
///
///   kaq detect --rules my-rules.toml --rule prod-delete --format json
///
///   kaq detect --list          kaq detect --explain --rule secret-burst
///
/// Rules are TOML: a search in the kaq language and what makes it fire: every match, a sliding
/// `threshold` (`count >= 20` or `dc(name) >= 10` per `group_by` in a `window`), `first_seen`
/// (a value never seen in a `lookback`), `spike` (a rate far above its own baseline) or a
/// `sequence` (step A then step B by the same group within a window). Tune the pack without
/// copying it: $KAQ_CONFIG_DIR/rules.toml (else $XDG_CONFIG_HOME/kaq/rules.toml, or
/// ~/.config/kaq/rules.toml) and each --rules FILE add rules, override a built-in rule's fields
/// by its `id`, add `[[exception]]`s (allow-lists on any field) or `disable = ["id"]`:
///
///   [[exception]]
///   rule = "exec-into-pod"
///   user = ["alice@example.com"]
///   ns = ["dev", "sandbox-*"]
///
/// Each rule's query runs once through the query engine (each request counted once, at its
/// latest stage, and a reused auditID never hides a request), then the windows are done in
/// memory. The same burst of one group is one alert: firings of a rule and group closer than its
/// `suppress` (10m by default) to the alert before are merged into it.
///
/// An alert is one JSON line (rule, severity, kind, group, count, window, first and last time,
/// the auditIDs of its evidence, description) when piped, an aligned table on a terminal.
///
/// Exit status: 0 when nothing fired, 4 when at least one alert fired, 2 for a bad rule file or
/// rule query (the message names the file, the rule and the spot), 1 for other errors.
///
/// Rules on a fleet's archive: `--sql --dialect duckdb|spark|trino [--from PATH_OR_TABLE]`
/// prints, for each selected rule, one SQL statement (after a `-- rule: ID (kind, severity)`
/// line) over kaq's Parquet schema (`kaq convert`, store segments) whose rows are that rule's
/// alerts — the same alerts as here: rule, severity, kind, the group's fields, count, window,
/// first, last, fired (when its first trigger fired) and auditIDs (all of the evidence, in time
/// order). Windows, thresholds, dc(), first-seen lookbacks, spikes (the same EWMA arithmetic,
/// step by step), sequences, exceptions and suppression are SQL; a rule a dialect cannot express
/// exactly gets a `-- rule: ID (kind, severity): not translated: …` line naming the construct and
/// the dialect, and exit status 2. --since/--until become fixed instants, as in `kaq sql`:
///
///   kaq detect --sql --dialect duckdb --from archive/ --since 24h --rule secret-burst | duckdb
///
/// docs/detect.md is the reference (rule format, kinds, the pack and its noise).
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct DetectArgs {
    /// Audit logs (plain, gzip, directories, `-` for stdin) or kaq Parquet files. Without any:
    /// the store.
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Run over a store made by `kaq ingest` [default without INPUT: $KAQ_STORE, else
    /// ./kaq-store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    #[command(flatten)]
    select: RuleSelection,

    /// Only requests at or after this time fire: a duration ago (2h, 7d) or a time. Windows and
    /// first-seen history read as far back before it as they need.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,

    /// Only requests before this time (same forms as --since).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,

    /// Output format [default: text on a terminal, json otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// The auditIDs listed per alert (its count is always exact).
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_evidence: usize,

    /// List the rules (id, severity, kind, where defined, what each catches) and exit.
    #[arg(long)]
    list: bool,

    /// Show how each rule runs (its query as run, its window, the query plan) and exit.
    #[arg(long)]
    explain: bool,

    /// Print each rule as a SQL statement for --dialect (its rows are its alerts) and exit.
    #[arg(long, requires = "dialect")]
    sql: bool,

    /// With --sql: duckdb, spark (Spark SQL, Databricks, EMR) or trino (Athena).
    #[arg(long, value_name = "DIALECT", requires = "sql")]
    dialect: Option<kaq_sql::Dialect>,

    /// With --sql: what to read, as `kaq sql --from` takes it (a Parquet file, a glob, a
    /// directory of `kaq convert --out-dir` partitions, an object-store URL, or a table).
    #[arg(long, value_name = "PATH_OR_TABLE", default_value = "audit", requires = "sql")]
    from: String,

    /// With --sql: the source's Hive partitions (day, hour or none), as `kaq sql` takes them.
    #[arg(long, value_name = "day|hour", requires = "sql")]
    partitioned_by: Option<String>,

    /// After the run, show on stderr each rule's matched requests and time, slowest first.
    #[arg(long)]
    timing: bool,

    #[command(flatten)]
    input: super::input::InputArgs,

    /// No summary on stderr.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Text,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityArg {
    pub fn severity(self) -> Severity {
        match self {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

/// Exit status when an alert fired.
pub const FIRED: u8 = 4;
/// Exit status for a bad rule file.
pub const BAD_RULES: u8 = 2;

/// The user's rule file: `rules.toml` in kaq's configuration directory.
pub fn user_rules_path() -> Option<PathBuf> {
    super::saved::config_dir().map(|d| d.join("rules.toml"))
}

/// The named queries of the built-in pack and the user's rules.toml, lists expanded, for `@name`
/// in `kaq query`; a rules.toml that cannot be read is reported as a warning and left out.
pub fn rule_queries() -> std::collections::HashMap<String, String> {
    let mut loader = Loader::with_builtin();
    if let Some(p) = user_rules_path().filter(|p| p.exists()) {
        let added = std::fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|text| loader.add(&p.display().to_string(), &text).map_err(|e| e.to_string()));
        if let Err(e) = added {
            eprintln!("kaq: warning: {}; its named queries are left out", visible(&e));
            loader = Loader::with_builtin();
        }
    }
    match loader.finish().map_err(|e| e.to_string()).and_then(|set| set.macros()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kaq: warning: rules: {}", visible(&e));
            Default::default()
        }
    }
}

/// Which rules run: the flags `kaq detect` and `kaq watch` share.
#[derive(Args)]
pub struct RuleSelection {
    /// A rule file read after the built-in pack and the user's rules.toml (repeatable; later
    /// files override earlier ones).
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,

    /// Run only this rule (repeatable), even if disabled.
    #[arg(long = "rule", value_name = "ID")]
    only: Vec<String>,

    /// Leave the built-in pack out: only the rules of your files.
    #[arg(long)]
    no_builtin: bool,

    /// Do not read $KAQ_CONFIG_DIR/rules.toml.
    #[arg(long)]
    no_user_rules: bool,

    /// Only rules at or above this severity.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    min_severity: Option<SeverityArg>,
}

impl RuleSelection {
    /// The rule set: the pack, the user's file, then `--rules` files. A bad rule file is said on
    /// stderr and gives the exit status to return ([`BAD_RULES`]).
    pub fn set(&self) -> anyhow::Result<Result<RuleSet, ExitCode>> {
        Ok(load_rules(self.no_builtin, self.no_user_rules, &self.rules)?.map_err(|e| {
            print_rule_error(&e);
            ExitCode::from(BAD_RULES)
        }))
    }

    /// The rules of `set` to run (`--rule`, or every enabled one), compiled, at or above
    /// `--min-severity`; a rule that does not compile is said on stderr, as [`Self::set`] does.
    pub fn prepare(&self, set: &RuleSet) -> Result<Vec<kaq_detect::Prepared>, ExitCode> {
        let mut prepared = kaq_detect::prepare(set, &self.only).map_err(|e| {
            print_rule_error(&e);
            ExitCode::from(BAD_RULES)
        })?;
        if let Some(min) = self.min_severity {
            prepared.retain(|p| p.rule.severity >= min.severity());
        }
        Ok(prepared)
    }
}

/// The rule set as `kaq detect` reads it: the pack (unless `no_builtin`), the user's rules.toml
/// (unless `no_user_rules`), then each of `rules`. The outer error is a file that cannot be
/// read; the inner one a bad rule file.
pub fn load_rules(
    no_builtin: bool,
    no_user_rules: bool,
    rules: &[PathBuf],
) -> anyhow::Result<Result<RuleSet, rules::RuleError>> {
    let mut loader = if no_builtin { Loader::default() } else { Loader::with_builtin() };
    let mut files: Vec<PathBuf> = Vec::new();
    if !no_user_rules
        && let Some(p) = user_rules_path()
        && p.exists()
    {
        files.push(p);
    }
    files.extend(rules.iter().cloned());
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        if let Err(e) = loader.add(&f.display().to_string(), &text) {
            return Ok(Err(e));
        }
    }
    Ok(loader.finish())
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let set = match args.select.set()? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if args.list {
        list(&set)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut prepared = match args.select.prepare(&set) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if args.explain {
        explain(&prepared)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (since, until) = match kaq_detect::source::time_bounds(args.since.as_deref(), args.until.as_deref()) {
        Ok(b) => b,
        Err(e) => bail!("{e}"),
    };
    if args.sql {
        return sql(&args, &set, &mut prepared, &Bounds { since, until });
    }
    if args.store.is_some() && !args.inputs.is_empty() {
        bail!("give either INPUT files or --store, not both");
    }
    let data = if args.inputs.is_empty() {
        let dir = super::store::store_dir(args.store.as_ref());
        if args.store.is_none() && std::env::var_os("KAQ_STORE").is_none() && !dir.join("MANIFEST.json").exists() {
            bail!(
                "no input: give audit logs, directories, `-` for stdin, or kaq Parquet files, or --store DIR (after `kaq ingest`)"
            );
        }
        Data::open_store(&dir)?
    } else {
        let read = ReadOptions {
            input_format: args.input.format(),
            max_record_size: args.input.max_record_size,
            ..ReadOptions::default()
        };
        Data::from_files(&args.inputs, read)?
    };
    let started = Instant::now();
    let bounds = Bounds { since, until };
    let (alerts, stats) = kaq_detect::run(&mut prepared, &set, &data, &bounds, args.max_evidence.max(1))?;
    let format = match args.format {
        Some(f) => f,
        None if std::io::stdout().is_terminal() => Format::Text,
        None => Format::Json,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => {
            for a in &alerts {
                writeln!(out, "{}", a.to_json())?;
            }
        }
        Format::Text => text(&mut out, &alerts)?,
    }
    out.flush()?;
    if args.timing {
        let mut m = stats.matched.clone();
        m.sort_by_key(|x| std::cmp::Reverse(x.2));
        for (id, n, t) in m {
            eprintln!("kaq: {:>8.3}s {n:>9} matched  {id}", t.as_secs_f64());
        }
    }
    if !args.quiet {
        let rejected = data.rejected();
        if rejected > 0 {
            eprintln!(
                "kaq: warning: {rejected} line{} of the input {} not audit events (`kaq ingest --rejects FILE` lists them)",
                if rejected == 1 { "" } else { "s" },
                if rejected == 1 { "is" } else { "are" }
            );
        }
        if std::io::stderr().is_terminal() {
            let fired = alerts.iter().map(|a| &a.rule).collect::<std::collections::BTreeSet<_>>().len();
            eprintln!(
                "kaq: {} alert{} from {fired} of {} rules in {:.2}s",
                alerts.len(),
                if alerts.len() == 1 { "" } else { "s" },
                prepared.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(if alerts.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(FIRED) })
}

/// `--sql`: each rule as a statement, or a comment saying why it is not translated.
fn sql(
    args: &DetectArgs,
    set: &RuleSet,
    prepared: &mut [kaq_detect::Prepared],
    bounds: &Bounds,
) -> anyhow::Result<ExitCode> {
    if !args.inputs.is_empty() || args.store.is_some() {
        bail!("--sql reads no INPUT or --store: give the archive or table to the SQL with --from");
    }
    let dialect = args.dialect.expect("clap requires --dialect with --sql");
    let (source, found) = super::sql::source(&args.from);
    let partitions = match args.partitioned_by.as_deref() {
        Some("day") => Some(kaq_sql::Partitions::Day),
        Some("hour") => Some(kaq_sql::Partitions::Hour),
        Some("none") => None,
        Some(other) => bail!("--partitioned-by `{other}`: day, hour or none"),
        None => found,
    };
    let opts = kaq_sql::Options { dialect, source, partitions };
    let macros = match set.macros() {
        Ok(m) => m,
        Err(e) => bail!("rules: {e}"),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut refused = 0;
    for p in prepared.iter_mut() {
        let head = kaq_detect::sql::header(p);
        match kaq_detect::sql::statement(p, &macros, bounds, &opts) {
            Ok(s) => writeln!(out, "{head}\n{s};\n")?,
            Err(e) => {
                refused += 1;
                let e = visible(&e).replace('\n', " ");
                writeln!(out, "{head}: not translated: {e}\n")?;
                eprintln!("kaq: error: rule `{}`: {e}", p.rule.id);
            }
        }
    }
    out.flush()?;
    Ok(if refused > 0 { ExitCode::from(BAD_RULES) } else { ExitCode::SUCCESS })
}

/// A rule error on stderr: each line made safe to show (a diagnostic spans several).
pub fn print_rule_error(e: &rules::RuleError) {
    let text = e.to_string();
    let mut lines = text.lines();
    eprintln!("kaq: error: {}", visible(lines.next().unwrap_or("")));
    for l in lines {
        eprintln!("{}", visible(l));
    }
}

/// The columns of an alert as text.
pub const TEXT_HEAD: [&str; 6] = ["FIRST", "SEVERITY", "RULE", "COUNT", "GROUP", "AUDIT IDS"];

/// An alert's cells in the text table (made safe to show).
pub fn text_cells(a: &Alert) -> [String; 6] {
    let group = a.group.iter().map(|(k, v)| format!("{k}={}", visible(v))).collect::<Vec<_>>().join(" ");
    let ids = match a.ids.len() {
        0 => String::new(),
        1 => a.ids[0].clone(),
        _ => format!("{} +{}", a.ids[0], a.count - 1),
    };
    [
        kaq_detect::source::time_literal(a.first),
        a.severity.to_string(),
        a.rule.clone(),
        a.count.to_string(),
        if group.is_empty() { "-".into() } else { group },
        visible(&ids).into_owned(),
    ]
}

/// Alerts as an aligned table.
fn text(out: &mut dyn Write, alerts: &[Alert]) -> std::io::Result<()> {
    if alerts.is_empty() {
        return writeln!(out, "no alerts");
    }
    let rows: Vec<[String; 6]> = alerts.iter().map(text_cells).collect();
    let head = TEXT_HEAD;
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count()).min(60);
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let c: String =
                if c.chars().count() > 60 { c.chars().take(59).chain(['…']).collect() } else { c.clone() };
            if i + 1 == cells.len() {
                s.push_str(&c);
            } else if i == 3 {
                s.push_str(&format!("{c:>w$}  ", w = width[i]));
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &head.map(String::from))?;
    for r in &rows {
        line(out, r)?;
    }
    Ok(())
}

/// What a rule does, in one line.
fn kind_text(kind: &Kind, group_by: &[String]) -> String {
    let per = if group_by.is_empty() { String::new() } else { format!(" per {}", group_by.join(", ")) };
    let d = kaq_detect::format_duration;
    match kind {
        Kind::Single => format!("every matching request{per}"),
        Kind::Threshold { window, metric, n } => {
            let m = match metric {
                Metric::Count => "count".to_string(),
                Metric::Dc(f) => format!("dc({f})"),
            };
            format!("{m} >= {n}{per} in a sliding {} window", d(*window))
        }
        Kind::FirstSeen { fields, lookback, learn, .. } => {
            let what: Vec<&str> = group_by.iter().chain(fields).map(String::as_str).collect();
            format!(
                "a {} not seen in the {} before (the first {} only learns)",
                what.join(" + "),
                d(*lookback),
                d(*learn)
            )
        }
        Kind::Spike(s) => format!(
            "{}-buckets{per} >= {} and >= {} x the EWMA (alpha {}) of earlier buckets",
            d(s.bucket),
            s.min_count,
            s.factor,
            s.alpha
        ),
        Kind::Sequence { steps, window } => format!("{} steps in order{per} within {}", steps.len(), d(*window)),
    }
}

fn list(set: &RuleSet) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let w = set.rules.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    writeln!(out, "{:<w$}  {:<8}  {:<10}  {:<8}  DESCRIPTION", "ID", "SEVERITY", "KIND", "STATUS")?;
    for r in &set.rules {
        let status = if !r.enabled {
            "disabled"
        } else if r.defined.file != rules::BUILTIN_NAME {
            "user"
        } else if !r.changed.is_empty() {
            "tuned"
        } else {
            "built-in"
        };
        let first = r.description.split(". ").next().unwrap_or("").trim_end_matches('.');
        let first: String = if first.chars().count() > 90 {
            first.chars().take(89).chain(['…']).collect()
        } else {
            first.to_string()
        };
        writeln!(out, "{:<w$}  {:<8}  {:<10}  {:<8}  {}", r.id, r.severity.as_str(), r.kind.name(), status, first)?;
    }
    writeln!(
        out,
        "\n{} rules ({} enabled); `kaq detect --explain --rule ID` shows one in full",
        set.rules.len(),
        set.rules.iter().filter(|r| r.enabled).count()
    )?;
    out.flush()?;
    Ok(())
}

fn explain(prepared: &[kaq_detect::Prepared]) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for p in prepared {
        let r = &p.rule;
        writeln!(out, "rule {} ({}, {})", r.id, r.severity, r.kind.name())?;
        writeln!(out, "  defined at {}", r.defined)?;
        for c in &r.changed {
            writeln!(out, "  changed at {c}")?;
        }
        writeln!(out, "  catches: {}", r.description)?;
        writeln!(out, "  false positives: {}", r.false_positives)?;
        for re in &r.references {
            writeln!(out, "  anchor: {re}")?;
        }
        writeln!(out, "  fires: {}", kind_text(&r.kind, &r.group_by))?;
        writeln!(
            out,
            "  one alert per group while firings are within {} of each other",
            kaq_detect::format_duration(r.suppress.max(1))
        )?;
        for (i, (text, plan)) in p.queries.iter().enumerate() {
            if p.queries.len() > 1 {
                writeln!(out, "  step {}: {text}", i + 1)?;
            } else {
                writeln!(out, "  query: {text}")?;
            }
            for l in kaq_detect::source::explain(plan).lines() {
                writeln!(out, "    {l}")?;
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}
