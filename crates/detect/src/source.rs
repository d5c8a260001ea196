//! Every call into the query engine and the store, in one place: compiling a rule's query, running
//! it over a store or over log files (latest stage per request and request identity, as `kaq
//! query` answers), and reading `--since/--until`.

use std::path::{Path, PathBuf};

use kaq_input::ReadOptions;
use kaq_query::{Options, Plan, Val};
use kaq_syntax::Diagnostic;

/// Where the events are.
pub enum Data {
    /// A store made by `kaq ingest`.
    Store(Box<kaq_store::Store>, Reused),
    /// Audit logs or kaq Parquet files, ingested once into a private temporary store (removed on
    /// drop), so that each rule's query runs on its columns and index instead of decoding every
    /// line again.
    Temp { store: Box<kaq_store::Store>, dir: PathBuf, report: Box<kaq_store::IngestReport>, reused: Reused },
}

/// The auditIDs several requests carry, found once per run for every rule that reads
/// `id_reused` (the store would find them again for each query).
type Reused = std::cell::OnceCell<std::sync::Arc<std::collections::HashSet<kaq_query::scan::IdKey>>>;

impl Drop for Data {
    fn drop(&mut self) {
        if let Data::Temp { dir, .. } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// An error reading the events.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Store(#[from] kaq_store::Error),
    #[error(transparent)]
    Scan(#[from] kaq_query::scan::ScanError),
    #[error("making a temporary store in {0}: {1}")]
    Temp(PathBuf, std::io::Error),
}

/// A query's matching requests: `time` (µs; absent: `None`), auditID and the requested columns as
/// text (absent: `None`; lists joined with `, `).
pub type Rows = Vec<(Option<i64>, String, Vec<Option<String>>)>;

impl Data {
    pub fn open_store(dir: &Path) -> Result<Data, DataError> {
        Ok(Data::Store(Box::new(kaq_store::Store::open(dir)?), Reused::new()))
    }

    /// Reads `inputs` into a temporary store in `$TMPDIR` (0700, removed when dropped).
    pub fn from_files(inputs: &[PathBuf], read: ReadOptions) -> Result<Data, DataError> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(".kaq-detect-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| DataError::Temp(base.clone(), e))?;
        let made = (|| {
            let mut store = kaq_store::Store::create(&dir)?;
            let opts = kaq_store::IngestOptions { read, ..kaq_store::IngestOptions::default() };
            let report = store.ingest_paths(inputs, &opts)?;
            Ok::<_, kaq_store::Error>((kaq_store::Store::open(&dir)?, report))
        })();
        match made {
            Ok((store, report)) => {
                Ok(Data::Temp { store: Box::new(store), dir, report: Box::new(report), reused: Reused::new() })
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e.into())
            }
        }
    }

    pub(crate) fn store(&self) -> &kaq_store::Store {
        match self {
            Data::Store(s, _) | Data::Temp { store: s, .. } => s,
        }
    }

    /// Lines of the inputs that were not audit events (inputs read into a temporary store).
    pub fn rejected(&self) -> u64 {
        match self {
            Data::Temp { report, .. } => report.counts.rejected,
            Data::Store(..) => 0,
        }
    }

    /// The events' time range.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        match self.store().manifest().time_range() {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        }
    }

    /// Runs `plan` (made by [`compile`] with `| table time, id, COLUMNS…` at its end) and gives
    /// its rows.
    pub fn rows(&self, plan: &Plan) -> Result<Rows, DataError> {
        let with_reused;
        let plan = if plan.needs_reused_ids() {
            let cell = match self {
                Data::Store(_, r) | Data::Temp { reused: r, .. } => r,
            };
            let reused = match cell.get() {
                Some(r) => r.clone(),
                None => {
                    let m = self.store().manifest();
                    // One segment whose auditIDs are all distinct (found when it was indexed)
                    // holds no auditID twice: nothing to read.
                    let r = if m.segments.len() == 1 && m.segments[0].ids_unique {
                        Default::default()
                    } else {
                        self.store().identities(&ReadOptions::default())?.reused()
                    };
                    let r = std::sync::Arc::new(r);
                    cell.get_or_init(|| r).clone()
                }
            };
            // No auditID is reused: a search that requires `id_reused:true` matches nothing.
            if reused.is_empty() && requires_reused(plan) {
                return Ok(Vec::new());
            }
            with_reused = Plan { reused_ids: Some(reused), ..plan.clone() };
            &with_reused
        } else {
            plan
        };
        let rows = self.store().run(plan, &ReadOptions::default())?.rows;
        Ok(rows_of(rows))
    }
}

/// A rule query's rows (`| table time, id, COLUMNS…`) as [`Rows`].
pub(crate) fn rows_of(rows: Vec<kaq_query::Row>) -> Rows {
    {
        // Text moved out of the rows (a string is its own display text).
        let text = |v: Val<'_>| match v {
            Val::Null => None,
            Val::List(l) if l.is_empty() => None,
            Val::Str(s) if s.is_empty() => None,
            Val::Str(s) => Some(s.into_owned()),
            v => Some(v.to_display()),
        };
        rows.into_iter()
            .map(|r| {
                let mut vals = r.vals.into_iter();
                let time = match vals.next() {
                    Some(Val::Time(t)) => Some(t),
                    _ => None,
                };
                let id = vals.next().and_then(text).unwrap_or_default();
                (time, id, vals.map(text).collect())
            })
            .collect()
    }
}

/// Whether `plan`'s filter holds only for requests with `id_reused` true (the condition, alone or
/// AND-ed at the top).
fn requires_reused(plan: &Plan) -> bool {
    use kaq_query::plan::{FieldKey, Pred, Test};
    let is_reused = |p: &Pred| match p {
        Pred::Field { col, test: Test::Bool(true) } => {
            matches!(plan.slots.get(*col).and_then(|c| c.key.as_ref()), Some(FieldKey::Field(f)) if f.name == "id_reused")
        }
        _ => false,
    };
    match &plan.filter {
        Pred::And(ps) => ps.iter().any(is_reused),
        p => is_reused(p),
    }
}

/// Compiles `text` with the rules' named queries.
pub fn compile(text: &str, macros: &std::collections::HashMap<String, String>) -> Result<Plan, Vec<Diagnostic>> {
    let opts = Options { macros: macros.clone(), now_us: now_us(), ..Options::default() };
    kaq_query::compile(text, &opts)
}

/// Whether `text` parses as a search alone (no `|` stages).
pub fn is_search(text: &str) -> bool {
    kaq_syntax::parse(text).map(|q| q.stages.is_empty()).unwrap_or(true)
}

/// How a plan runs (`kaq query --explain` without a store).
pub fn explain(plan: &Plan) -> String {
    kaq_query::explain(plan)
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `--since` / `--until` as µs bounds `[lo, hi)`, read as `kaq query` reads them; an error is the
/// rendered diagnostic.
pub fn time_bounds(since: Option<&str>, until: Option<&str>) -> Result<(Option<i64>, Option<i64>), String> {
    if since.is_none() && until.is_none() {
        return Ok((None, None));
    }
    let opts = Options {
        now_us: now_us(),
        since: since.map(str::to_string),
        until: until.map(str::to_string),
        ..Options::default()
    };
    let plan = kaq_query::compile("", &opts)
        .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?;
    Ok(kaq_query::plan::time_bounds(&plan))
}

/// A time as the language reads it.
pub fn time_literal(us: i64) -> String {
    kaq_schema::time::format_micros(us)
}
