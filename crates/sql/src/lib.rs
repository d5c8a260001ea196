//! `kaq sql`: a compiled kaq query ([`kaq_query::Plan`]) as one SQL statement for DuckDB, Spark SQL
//! or Trino over kaq's Parquet schema (what `kaq convert` writes and store segments hold), with the
//! same meaning as `kaq query` — the latest-stage rule, list fields, wildcards, regexes, CIDR
//! blocks, text-field words, JSON paths and every stage included (docs/fleet.md).
//!
//! The statement is a chain of common table expressions:
//!
//! 1. `_src`: the source's rows (Hive partitions outside the time bounds pruned), with the file
//!    and row number each was read from (`_f`, `_r`: "the last one read" among ties);
//! 2. `_ev`: the latest stage of each request (auditID + received time, verb, URI, user) as a
//!    `row_number()` window, unless every stage is asked for;
//! 3. `_m`: every value the query reads as a column `sN` (times and durations in microseconds,
//!    list fields as lists, JSON paths as lists of JSON values);
//! 4. `_q0`: the filter, and each row's place in input order (`_o`, time then file order);
//! 5. one CTE per stage, each keeping `_o` as the order of its rows;
//!
//! then the final `SELECT` names the columns as kaq does (`count`, `p99(latency)`), times as
//! timestamps and durations in seconds, ordered by `_o`.
//!
//! What an engine cannot express exactly is an [`Error`] naming the construct and the dialect.

mod dialect;

use std::fmt;
use std::net::IpAddr;

use kaq_query::plan::{Cmp, FieldKey, Lit, Plan, Pred, Step, Test, Ty};
use kaq_syntax::AggFunc;

pub use dialect::Dialect;

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Parquet file, a glob of files, or a directory of Hive partitions (read recursively).
    Path { path: String, directory: bool },
    /// A table (or view) the engine knows, with kaq's columns.
    Table(String),
}

/// How a source is Hive-partitioned (`kaq convert --out-dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitions {
    /// `date=YYYY-MM-DD/`.
    Day,
    /// `date=YYYY-MM-DD/hour=HH/`.
    Hour,
}

/// What to translate for.
#[derive(Debug, Clone)]
pub struct Options {
    pub dialect: Dialect,
    pub source: Source,
    /// The source's Hive partitions, pruned by the query's time bounds.
    pub partitions: Option<Partitions>,
}

/// A query the dialect cannot express with kaq's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

type R<T> = Result<T, Error>;

/// The SQL statement that answers `plan` over the source.
pub fn translate(plan: &Plan, opts: &Options) -> R<String> {
    Tr { d: opts.dialect, opts, plan, ctes: Vec::new(), vars: 0, prefix: "_".into(), ordered: true }.run()
}

/// The rows of a query that ends in `| table time, id, F…` (what `kaq detect` runs for a rule),
/// as parts to build on: its common table expressions (named with `prefix`, so that several
/// queries share one `WITH`), the CTE that holds its rows, and for each column of the table the
/// value as `kaq detect` reads it — `time` in microseconds, every other column as kaq's display
/// text (lists joined with `, `), NULL when absent, empty or an empty list.
#[derive(Debug, Clone)]
pub struct Rows {
    pub ctes: Vec<(String, String)>,
    /// The CTE of the rows (one per matching request, latest stage).
    pub from: String,
    /// The time of each row in µs (NULL when absent), over `from`.
    pub time: String,
    /// Each other column of the table as text, over `from`.
    pub columns: Vec<String>,
    /// A scalar subquery: the earliest `time` of the whole source (µs), unpruned.
    pub data_start: String,
}

/// See [`Rows`]. The plan's last stage is a `table` whose first column is `time`.
pub fn translate_rows(plan: &Plan, opts: &Options, prefix: &str) -> R<Rows> {
    let mut tr =
        Tr { d: opts.dialect, opts, plan, ctes: Vec::new(), vars: 0, prefix: prefix.to_string(), ordered: false };
    let built = tr.build()?;
    if built.events || !matches!(plan.steps.last(), Some((Step::Table(_), _))) {
        return Err(Error { message: "a rule's rows end in `| table time, …` (kaq detect builds them)".into() });
    }
    let mut cols = Vec::new();
    for c in &built.scope {
        cols.push(tr.display_text(c)?);
    }
    if cols.is_empty() || built.scope[0].kind.ty != Ty::Time || built.scope[0].kind.list {
        return Err(Error { message: "a rule's rows begin with `time`".into() });
    }
    let time = built.scope[0].sql.clone();
    let (from, _, _) = tr.source()?;
    let data_start = format!("(SELECT min({}) FROM {from})", tr.d.micros(&tr.d.ident("time")));
    Ok(Rows { ctes: tr.ctes, from: built.prev, time, columns: cols.split_off(1), data_start })
}

/// What [`Tr::build`] leaves: the last CTE, its columns, and whether its rows are whole events.
struct Built {
    prev: String,
    scope: Vec<Col>,
    events: bool,
}

/// The type of a column as the SQL holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kind {
    /// The type of the value (of each element, for a list).
    ty: Ty,
    list: bool,
    /// Each value (element) is a JSON value (DuckDB's JSON type), tested by its JSON type.
    json: bool,
}

impl Kind {
    fn scalar(ty: Ty) -> Kind {
        Kind { ty, list: false, json: false }
    }
}

/// One column of a CTE: its SQL name, kind and name in the query (for messages).
#[derive(Debug, Clone)]
struct Col {
    sql: String,
    kind: Kind,
    name: String,
}

struct Tr<'a> {
    d: Dialect,
    opts: &'a Options,
    plan: &'a Plan,
    ctes: Vec<(String, String)>,
    vars: usize,
    /// The start of every CTE's name (`_` for a statement of its own).
    prefix: String,
    /// Whether rows keep kaq's order (`_o`); a rule's rows do not need it.
    ordered: bool,
}

const RANK_STAGES: &str = "RequestReceived";
/// Words are split at every character that is not a letter or digit.
const NOT_WORD: &str = r"[^\p{L}\p{N}]+";
const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";

impl Tr<'_> {
    fn err(&self, what: impl fmt::Display) -> Error {
        Error { message: format!("{what}: not expressible in {} SQL by kaq sql", self.d) }
    }

    fn var(&mut self) -> String {
        self.vars += 1;
        format!("_v{}", self.vars)
    }

    fn cte(&mut self, body: String) -> String {
        let name = format!("{}q{}", self.prefix, self.ctes.len());
        self.ctes.push((name.clone(), body));
        name
    }

    fn run(mut self) -> R<String> {
        let d = self.d;
        let base: Vec<String> = kaq_columnar::COLUMNS.iter().map(|(n, _)| d.ident(n)).collect();
        let Built { prev, scope, events } = self.build()?;
        // The result.
        let select = if events {
            base.join(", ")
        } else {
            let out = self.plan.output_columns();
            scope
                .iter()
                .zip(out)
                .map(|(c, o)| format!("{} AS {}", self.output(&c.sql, c.kind), d.ident(&o.name)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = String::from("WITH\n");
        let n = self.ctes.len();
        for (i, (name, body)) in self.ctes.iter().enumerate() {
            sql.push_str(&format!("{name} AS (\n  {body}\n){}\n", if i + 1 < n { "," } else { "" }));
        }
        sql.push_str(&format!("SELECT {select}\nFROM {prev}\nORDER BY _o"));
        Ok(sql)
    }

    /// Every CTE of the statement: the source, the latest stage, the slots, the filter and the
    /// stages.
    fn build(&mut self) -> R<Built> {
        let d = self.d;
        let px = self.prefix.clone();
        let (src_name, reused_name, ev_name, m_name) =
            (format!("{px}src"), format!("{px}reused"), format!("{px}ev"), format!("{px}m"));
        let base: Vec<String> = kaq_columnar::COLUMNS.iter().map(|(n, _)| d.ident(n)).collect();
        // 1. The source.
        let (from, f, r) = self.source()?;
        let mut prune = String::new();
        if let Some(p) = self.opts.partitions {
            prune = self.prune(p);
        }
        let src_cols = base.join(", ");
        let src = format!("SELECT {src_cols}, {f} AS _f, {r} AS _r FROM {from}{prune}");
        self.ctes.push((src_name.clone(), src));
        // id_reused: the auditIDs several requests carry, over the whole source.
        let reads_reused =
            self.plan.slots.iter().any(|s| matches!(&s.key, Some(FieldKey::Field(f)) if f.name == "id_reused"));
        let rt = self.received();
        if reads_reused {
            let (id, verb, uri, user) = (d.ident("id"), d.ident("verb"), d.ident("uri"), d.ident("user"));
            let body = format!(
                "SELECT {id} AS _rid FROM (SELECT DISTINCT {id}, {rt} AS _rt, {verb}, {uri}, {user} FROM {from}) _t GROUP BY {id} HAVING count(*) > 1"
            );
            self.ctes.push((reused_name.clone(), body));
        }
        // 2. The latest stage of each request.
        let mut cols: Vec<String> = base.clone();
        cols.extend(["_f".to_string(), "_r".to_string()]);
        let ev = if self.plan.all_stages {
            src_name.clone()
        } else {
            let (id, verb, uri, user, stage, st, time) = (
                d.ident("id"),
                d.ident("verb"),
                d.ident("uri"),
                d.ident("user"),
                d.ident("stage"),
                d.ident("stage_time"),
                d.ident("time"),
            );
            let rank = format!(
                "CASE {stage} WHEN '{RANK_STAGES}' THEN 0 WHEN 'ResponseStarted' THEN 1 WHEN 'Panic' THEN 3 ELSE 2 END"
            );
            let body = format!(
                "SELECT {} FROM (SELECT *, row_number() OVER (PARTITION BY {id}, {rt}, {verb}, {uri}, {user} ORDER BY {rank} DESC, {st} DESC NULLS LAST, {time} DESC NULLS LAST, _f DESC, _r DESC) AS _n FROM {src_name}) _t WHERE _n = 1",
                cols.join(", ")
            );
            self.ctes.push((ev_name.clone(), body));
            ev_name.clone()
        };
        // 3. The slots.
        let mut slots = Vec::new();
        let mut exprs = Vec::new();
        for (i, s) in self.plan.slots.iter().enumerate() {
            let key = s.key.as_ref().expect("slots hold event fields");
            let (e, kind) = self.slot(key)?;
            let sql = format!("s{i}");
            exprs.push(format!("{e} AS {sql}"));
            slots.push(Col { sql, kind, name: s.name.clone() });
        }
        let qualified: Vec<String> = cols.iter().map(|c| format!("{ev}.{c}")).collect();
        let mut m = format!(
            "SELECT {}{}{} FROM {ev}",
            qualified.join(", "),
            if exprs.is_empty() { "" } else { ", " },
            exprs.join(", ")
        );
        if reads_reused {
            m.push_str(&format!(" LEFT JOIN {reused_name} ON {ev}.{} = {reused_name}._rid", d.ident("id")));
        }
        self.ctes.push((m_name.clone(), m));
        cols.extend(slots.iter().map(|s| s.sql.clone()));
        // 4. The filter and the input order.
        let filter = self.pred(&self.plan.filter.clone(), &slots)?;
        let order = format!("{} ASC NULLS LAST, _f, _r", d.ident("time"));
        // (A rule's rows need no order: a window over the whole source would make Spark sort
        // it in one task.)
        let place = if self.ordered { format!("row_number() OVER (ORDER BY {order})") } else { "0".to_string() };
        let mut prev = self.cte(format!("SELECT {}, {place} AS _o FROM {m_name} WHERE {filter}", cols.join(", ")));
        // 5. The stages.
        let mut scope = slots.clone();
        let mut events = true;
        for (step, out) in &self.plan.steps {
            let (next, next_scope, shaped) = self.step(step, &prev, &cols, &scope, out)?;
            prev = next;
            if shaped {
                events = false;
                scope = next_scope;
                cols = scope.iter().map(|c| c.sql.clone()).collect();
            }
        }
        Ok(Built { prev, scope, events })
    }

    /// The FROM item, and the file and row number of each row.
    fn source(&self) -> R<(String, String, String)> {
        let d = self.d;
        Ok(match (&self.opts.source, d) {
            (Source::Table(t), _) => {
                let ok = !t.is_empty()
                    && t.split('.')
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
                if !ok {
                    return Err(Error {
                        message: format!(
                            "`{t}` is not a table name (letters, digits, `_` and `-`, parts joined by `.`); a file or URL needs a `/`"
                        ),
                    });
                }
                (t.clone(), "''".into(), "0".into())
            }
            (Source::Path { path, directory }, Dialect::DuckDb) => {
                let (glob, hive) = if *directory {
                    (format!("{}/**/*.parquet", path.trim_end_matches('/')), ", hive_partitioning = true")
                } else {
                    (path.clone(), "")
                };
                (
                    format!("read_parquet({}{hive}, filename = true, file_row_number = true)", d.str(&glob)),
                    "filename".into(),
                    "file_row_number".into(),
                )
            }
            (Source::Path { path, .. }, Dialect::Spark) => {
                (format!("parquet.{}", d.ident(path)), "_metadata.file_path".into(), "_metadata.row_index".into())
            }
            (Source::Path { path, .. }, Dialect::Trino) => {
                return Err(Error {
                    message: format!(
                        "trino reads tables, not files: give --from a table over `{path}` (docs/fleet.md shows one)"
                    ),
                });
            }
        })
    }

    /// `WHERE` on the Hive partition columns: the dates (and hours) the time bounds take in.
    fn prune(&self, p: Partitions) -> String {
        let (lo, hi) = kaq_query::plan::time_bounds(self.plan);
        let d = self.d;
        let date = format!("CAST({} AS {})", d.ident("date"), d.string_type());
        let hour = format!("CAST({} AS INT)", d.ident("hour"));
        let mut conds = Vec::new();
        let parts = |us: i64| {
            let t = kaq_schema::time::format_micros(us);
            (t[..10].to_string(), t[11..13].parse::<u32>().unwrap_or(0))
        };
        if let Some(lo) = lo {
            let (day, h) = parts(lo);
            conds.push(format!("{date} >= {}", d.str(&day)));
            if p == Partitions::Hour {
                conds.push(format!("({date} > {} OR {hour} >= {h})", d.str(&day)));
            }
        }
        if let Some(hi) = hi.and_then(|h| h.checked_sub(1)) {
            let (day, h) = parts(hi);
            conds.push(format!("{date} <= {}", d.str(&day)));
            if p == Partitions::Hour {
                conds.push(format!("({date} < {} OR {hour} <= {h})", d.str(&day)));
            }
        }
        if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) }
    }

    /// Whether requestReceivedTimestamp was absent (then `time` is another timestamp).
    fn absent(&self) -> String {
        let u = self.d.ident("unmapped");
        match self.d {
            Dialect::DuckDb => format!(
                "coalesce(strpos(json_extract_string({u}, '$.\"kaq:absent\"'), '\"requestReceivedTimestamp\"') > 0, FALSE)"
            ),
            _ => format!("coalesce({u} LIKE '%\"kaq:absent\":[%\"requestReceivedTimestamp\"%', FALSE)"),
        }
    }

    /// The request's received time as its identity uses it (absent is a value: NULL).
    fn received(&self) -> String {
        format!("CASE WHEN {} THEN NULL ELSE {} END", self.absent(), self.d.ident("time"))
    }

    /// A slot's SQL value and kind.
    fn slot(&mut self, key: &FieldKey) -> R<(String, Kind)> {
        let d = self.d;
        let c = |n: &str| d.ident(n);
        let k = Kind::scalar;
        let list = |ty| Kind { ty, list: true, json: false };
        let json_list = |ty| Kind { ty, list: true, json: true };
        Ok(match key {
            FieldKey::Annotation(a) => (self.annotation(a), k(Ty::Keyword)),
            FieldKey::Extra { impersonated, key } => {
                let col = c(if *impersonated { "as_extra" } else { "user_extra" });
                (self.json_path(&col, std::slice::from_ref(key), &key_name(key))?, json_list(Ty::Keyword))
            }
            FieldKey::Json { response, path } => {
                let col = c(if *response { "response" } else { "request" });
                if path.is_empty() {
                    (self.object_text(&col), k(Ty::Object))
                } else {
                    (self.json_path(&col, path, &key.to_string())?, json_list(Ty::Any))
                }
            }
            FieldKey::Field(f) => match f.name {
                "time" | "stage_time" => (d.micros(&c(f.name)), k(Ty::Time)),
                "latency" => (
                    format!(
                        "CASE WHEN {} THEN NULL ELSE {} - {} END",
                        self.absent(),
                        d.micros(&c("stage_time")),
                        d.micros(&c("time"))
                    ),
                    k(Ty::Dur),
                ),
                "id_reused" => (format!("({}reused._rid IS NOT NULL)", self.prefix), k(Ty::Bool)),
                "groups" | "as_groups" => (c(f.name), list(Ty::Keyword)),
                "ip" => (c("ip"), list(Ty::Ip)),
                "client_ip" => (d.at(&c("ip"), "1"), k(Ty::Ip)),
                "peer_ip" => (d.at(&c("ip"), "-1"), k(Ty::Ip)),
                "host_path" => (c("host_paths"), list(Ty::Keyword)),
                "code" => (format!("CAST({} AS BIGINT)", c("code")), k(Ty::Int)),
                "extra" => (self.object_text(&c("user_extra")), k(Ty::Object)),
                "as_extra" => (self.object_text(&c("as_extra")), k(Ty::Object)),
                "request" => (self.object_text(&c("request")), k(Ty::Object)),
                "response" => (self.object_text(&c("response")), k(Ty::Object)),
                "annotations" => {
                    (format!("CASE WHEN {} IS NULL THEN NULL ELSE '{{}}' END", c("annotations")), k(Ty::Object))
                }
                name => (c(name), k(Ty::of(f.ty))),
            },
        })
    }

    fn annotation(&self, key: &str) -> String {
        let d = self.d;
        match key {
            kaq_query::extract::DECISION => d.ident("decision"),
            kaq_query::extract::AUTHZ_REASON => d.ident("authz_reason"),
            _ => match d {
                Dialect::Trino => format!("element_at({}, {})", d.ident("annotations"), d.str(key)),
                _ => format!("{}[{}]", d.ident("annotations"), d.str(key)),
            },
        }
    }

    /// A JSON text column as a value that is present when kaq's is (`{}` for objects; only `:*`
    /// applies to it).
    fn object_text(&self, col: &str) -> String {
        let blank = self.d.regex(col, r"\A\s*(null)?\s*\z");
        format!("CASE WHEN {col} IS NULL OR {blank} THEN NULL ELSE '{{}}' END")
    }

    /// The JSON values at `path` in the JSON text `col`, as a list: objects entered by key, arrays
    /// entered element by element (or by a numbered segment), an array at the end giving its
    /// elements; JSON nulls left out (they match nothing). DuckDB's JSON type; Spark 4's VARIANT.
    fn json_path(&mut self, col: &str, path: &[String], name: &str) -> R<String> {
        if self.d == Dialect::Trino {
            return Err(self.err(format_args!("`{name}` (a path into a JSON body)")));
        }
        if path.iter().any(|s| s.contains('"') || s.contains('\\') || s.contains('\'')) {
            return Err(self.err(format_args!("`{name}` (a JSON key with a quote or backslash)")));
        }
        let none = self.j_none();
        let parsed = match self.d {
            Dialect::DuckDb => format!("json({col})"),
            _ => format!("try_parse_json({col})"),
        };
        let mut list = format!("CASE WHEN {col} IS NULL THEN {none} ELSE {} END", self.d.list_of(&[parsed]));
        for seg in path {
            let x = self.var();
            let step = match seg.parse::<usize>() {
                Ok(i) => format!(
                    "CASE WHEN {} THEN {} WHEN {} THEN {} ELSE {none} END",
                    self.j_is(&x, "OBJECT"),
                    self.d.list_of(&[self.j_member(&x, seg)]),
                    self.j_is(&x, "ARRAY"),
                    self.d.list_of(&[self.j_index(&x, i)]),
                ),
                Err(_) => self.enter(&x, seg, 3),
            };
            let mapped = self.d.transform(&list, &x, &step);
            let y = self.var();
            list = self.d.filter(&format!("flatten({mapped})"), &y, &format!("{y} IS NOT NULL"));
        }
        let x = self.var();
        let last = format!(
            "CASE WHEN {} THEN {} ELSE {} END",
            self.j_is(&x, "ARRAY"),
            self.j_elems(&x),
            self.d.list_of(std::slice::from_ref(&x))
        );
        let leaves = format!("flatten({})", self.d.transform(&list, &x, &last));
        let y = self.var();
        let keep = format!("{y} IS NOT NULL AND NOT {}", self.j_is(&y, "NULL"));
        Ok(self.d.filter(&leaves, &y, &keep))
    }

    /// The values under key `seg` of `x`: its member when an object, its elements' (entered
    /// again, to `depth` nested arrays) when an array.
    fn enter(&mut self, x: &str, seg: &str, depth: usize) -> String {
        let none = self.j_none();
        let array = if depth == 0 {
            none.clone()
        } else {
            let y = self.var();
            let inner = self.enter(&y, seg, depth - 1);
            format!("flatten({})", self.d.transform(&self.j_elems(x), &y, &inner))
        };
        format!(
            "CASE WHEN {} THEN {} WHEN {} THEN {array} ELSE {none} END",
            self.j_is(x, "OBJECT"),
            self.d.list_of(&[self.j_member(x, seg)]),
            self.j_is(x, "ARRAY"),
        )
    }

    /// An empty list of JSON values.
    fn j_none(&self) -> String {
        match self.d {
            Dialect::DuckDb => "CAST([] AS JSON[])".into(),
            _ => "filter(array(parse_json('null')), _z -> FALSE)".into(),
        }
    }

    /// Whether the JSON value `v` is of a kind: OBJECT, ARRAY, STRING, BOOLEAN, NULL or NUMBER.
    fn j_is(&self, v: &str, kind: &str) -> String {
        match self.d {
            Dialect::DuckDb => match kind {
                "NUMBER" => format!("json_type({v}) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"),
                "STRING" => format!("json_type({v}) = 'VARCHAR'"),
                k => format!("json_type({v}) = '{k}'"),
            },
            _ => {
                let t = format!("schema_of_variant({v})");
                match kind {
                    "OBJECT" | "ARRAY" => format!("{t} LIKE '{kind}%'"),
                    "NULL" => format!("{t} = 'VOID'"),
                    "NUMBER" => format!(
                        "({t} IN ('BIGINT', 'INT', 'SMALLINT', 'TINYINT', 'DOUBLE', 'FLOAT') OR {t} LIKE 'DECIMAL%')"
                    ),
                    k => format!("{t} = '{k}'"),
                }
            }
        }
    }

    fn j_member(&self, v: &str, key: &str) -> String {
        match self.d {
            Dialect::DuckDb => format!("json_extract({v}, '$.\"{key}\"')"),
            _ => format!("variant_get({v}, {})", self.d.str(&format!("$[\"{key}\"]"))),
        }
    }

    fn j_index(&self, v: &str, i: usize) -> String {
        match self.d {
            Dialect::DuckDb => format!("json_extract({v}, '$[{i}]')"),
            _ => format!("variant_get({v}, '$[{i}]')"),
        }
    }

    fn j_elems(&self, v: &str) -> String {
        match self.d {
            Dialect::DuckDb => format!("json_extract({v}, '$[*]')"),
            _ => format!("variant_get({v}, '$', 'array<variant>')"),
        }
    }

    /// A JSON string's, number's (as DOUBLE) or boolean's value.
    fn j_value(&self, v: &str, as_: &str) -> String {
        match (self.d, as_) {
            (Dialect::DuckDb, "string") => format!("({v}->>'$')"),
            (Dialect::DuckDb, "double") => format!("CAST({v} AS DOUBLE)"),
            (Dialect::DuckDb, _) => format!("CAST({v} AS BOOLEAN)"),
            (_, t) => format!("variant_get({v}, '$', '{t}')"),
        }
    }

    /// An object's or array's JSON text.
    fn j_json(&self, v: &str) -> String {
        match self.d {
            Dialect::DuckDb => format!("CAST({v} AS VARCHAR)"),
            _ => format!("to_json({v})"),
        }
    }

    // ---- conditions ----

    fn pred(&mut self, p: &Pred, cols: &[Col]) -> R<String> {
        Ok(match p {
            Pred::Const(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            Pred::And(items) if items.is_empty() => "TRUE".into(),
            Pred::Or(items) if items.is_empty() => "FALSE".into(),
            Pred::And(items) => {
                let parts = items.iter().map(|i| self.pred(i, cols)).collect::<R<Vec<_>>>()?;
                format!("({})", parts.join(" AND "))
            }
            Pred::Or(items) => {
                let parts = items.iter().map(|i| self.pred(i, cols)).collect::<R<Vec<_>>>()?;
                format!("({})", parts.join(" OR "))
            }
            Pred::Not(inner) => format!("(NOT {})", self.pred(inner, cols)?),
            Pred::Field { col, test } => {
                let c = cols[*col].clone();
                self.test(test, &c)?
            }
            Pred::Text { cols: tc, test } => {
                let parts = tc.iter().map(|i| self.test(test, &cols[*i].clone())).collect::<R<Vec<_>>>()?;
                format!("({})", parts.join(" OR "))
            }
        })
    }

    /// A test of a column: on a list, of any element. Never NULL.
    fn test(&mut self, t: &Test, c: &Col) -> R<String> {
        if c.kind.ty == Ty::Object {
            return match t {
                Test::Exists => Ok(format!("({} IS NOT NULL)", c.sql)),
                _ => Err(self.err(format_args!("a test other than `{}:*` on an object", c.name))),
            };
        }
        let scalar = Kind { list: false, ..c.kind };
        let inner = if c.kind.list {
            let v = self.var();
            let body = self.scalar(t, &v, scalar, &c.name)?;
            return Ok(self.d.any(&c.sql, &v, &body));
        } else {
            self.scalar(t, &c.sql, scalar, &c.name)?
        };
        Ok(format!("coalesce({inner}, FALSE)"))
    }

    /// Whether `x` holds a string (kaq's `Val::Str`).
    fn stringy(ty: Ty) -> bool {
        matches!(ty, Ty::Keyword | Ty::Text | Ty::Ip)
    }

    /// The text kaq compares for a value (`Val::to_text`).
    fn text(&self, x: &str, k: Kind) -> String {
        let d = self.d;
        let st = d.string_type();
        if k.json {
            return self.json_text(x);
        }
        let float = |f: &str| {
            format!(
                "CASE WHEN {f} = floor({f}) AND abs({f}) < 1e15 THEN CAST(CAST({f} AS BIGINT) AS {st}) ELSE CAST({f} AS {st}) END"
            )
        };
        match k.ty {
            Ty::Int => format!("CAST({x} AS {st})"),
            Ty::Bool => format!("CASE WHEN {x} THEN 'true' ELSE 'false' END"),
            Ty::Float => float(x),
            Ty::Dur => float(&format!("({x} / 1e6)")),
            Ty::Time => d.time_text(x),
            _ => x.to_string(),
        }
    }

    /// The text of a JSON value as kaq reads it: strings unquoted, numbers and booleans as
    /// written, objects and arrays as JSON.
    fn json_text(&self, v: &str) -> String {
        let st = self.d.string_type();
        let n = self.j_value(v, "double");
        let string = self.j_value(v, "string");
        format!(
            "CASE WHEN {} THEN NULL WHEN {} THEN {string} WHEN {} THEN (CASE WHEN {} THEN 'true' ELSE 'false' END) WHEN {} THEN (CASE WHEN {n} = floor({n}) AND abs({n}) < 1e15 THEN CAST(CAST({n} AS BIGINT) AS {st}) ELSE CAST({n} AS {st}) END) ELSE {} END",
            self.j_is(v, "NULL"),
            self.j_is(v, "STRING"),
            self.j_is(v, "BOOLEAN"),
            self.j_value(v, "boolean"),
            self.j_is(v, "NUMBER"),
            self.j_json(v),
        )
    }

    fn glob_re(pattern: &str) -> String {
        let mut re = String::from(r"\A(?s:");
        for ch in pattern.chars() {
            match ch {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c if "\\.+*?()|[]{}^$#&-~".contains(c) => {
                    re.push('\\');
                    re.push(c);
                }
                c => re.push(c),
            }
        }
        re.push_str(r")\z");
        re
    }

    fn scalar(&mut self, t: &Test, x: &str, k: Kind, name: &str) -> R<String> {
        let d = self.d;
        if k.json {
            return self.json_test(t, x, name);
        }
        let s = Self::stringy(k.ty);
        Ok(match t {
            Test::Exists if s => format!("({x} IS NOT NULL AND {x} <> '')"),
            Test::Exists => format!("({x} IS NOT NULL)"),
            Test::Eq(v) => format!("({} = {})", self.text(x, k), d.str(v)),
            Test::Glob(g) => d.regex(&self.text(x, k), &Self::glob_re(&g.pattern())),
            Test::Regex(r) => d.regex(&self.text(x, k), r.as_str()),
            Test::Words(w) => {
                let lower = format!("lower({})", self.text(x, k));
                let spaced = d.replace_all(&lower, NOT_WORD, " ");
                let needle = d.str(&format!(" {} ", w.join(" ")));
                d.contains(&format!("concat(' ', {spaced}, ' ')"), &needle)
            }
            Test::WordGlob(g) => {
                let re = Self::glob_re(&g.pattern());
                let lower = format!("lower({})", self.text(x, k));
                let w = self.var();
                let words = d.split_re(&lower, NOT_WORD);
                format!("({} OR {})", d.regex(&lower, &re), d.any(&words, &w, &d.regex(&w, &re)))
            }
            Test::IntRange(lo, hi) => match k.ty {
                Ty::Int => format!("({x} BETWEEN {lo} AND {hi})"),
                Ty::Float => format!("({x} = floor({x}) AND {x} BETWEEN {lo} AND {hi})"),
                _ => "FALSE".into(),
            },
            Test::Time(op, lo, hi) => match k.ty {
                Ty::Time => match op {
                    Cmp::Eq => format!("({x} >= {lo} AND {x} < {hi})"),
                    Cmp::Lt => format!("({x} < {lo})"),
                    Cmp::Ge => format!("({x} >= {lo})"),
                    Cmp::Gt => format!("({x} >= {hi})"),
                    Cmp::Le => format!("({x} < {hi})"),
                },
                _ => "FALSE".into(),
            },
            Test::Cmp(op, lit) => self.compare(*op, lit, x, k),
            Test::Ip(ip) if s => self.ip_eq(x, *ip),
            Test::Cidr(c) if s => self.cidr(x, c, name)?,
            Test::Ip(_) | Test::Cidr(_) => "FALSE".into(),
            Test::Bool(b) => match k.ty {
                Ty::Bool => format!("({x} = {})", if *b { "TRUE" } else { "FALSE" }),
                _ if s => format!("({x} = '{b}')"),
                _ => "FALSE".into(),
            },
            Test::Dynamic(v) => match k.ty {
                _ if s => format!("({x} = {})", d.str(v)),
                Ty::Int | Ty::Float => match v.parse::<f64>() {
                    Ok(n) if !n.is_nan() => format!("(CAST({x} AS DOUBLE) = {})", d.double(n)),
                    _ => "FALSE".into(),
                },
                Ty::Bool => match v.as_str() {
                    "true" => format!("({x} = TRUE)"),
                    "false" => format!("({x} = FALSE)"),
                    _ => "FALSE".into(),
                },
                _ => format!("({} = {})", self.text(x, k), d.str(v)),
            },
        })
    }

    fn compare(&self, op: Cmp, lit: &Lit, x: &str, k: Kind) -> String {
        let d = self.d;
        let o = op.as_str();
        let num = matches!(k.ty, Ty::Int | Ty::Float);
        match lit {
            Lit::Num(n) if num && !n.is_nan() => format!("(CAST({x} AS DOUBLE) {o} {})", d.double(*n)),
            Lit::Dur(v) if k.ty == Ty::Dur => format!("({x} {o} {v})"),
            Lit::Str(v) if Self::stringy(k.ty) => format!("({x} {o} {})", d.str(v)),
            Lit::Dynamic(v) if num => match v.parse::<f64>() {
                Ok(n) if !n.is_nan() => format!("(CAST({x} AS DOUBLE) {o} {})", d.double(n)),
                _ => "FALSE".into(),
            },
            Lit::Dynamic(v) if Self::stringy(k.ty) => format!("({x} {o} {})", d.str(v)),
            Lit::Dynamic(v) if k.ty == Ty::Bool => match v.as_str() {
                "true" | "false" => format!("({x} {o} {})", v.to_uppercase()),
                _ => "FALSE".into(),
            },
            _ => "FALSE".into(),
        }
    }

    /// A test of one JSON value.
    fn json_test(&mut self, t: &Test, v: &str, name: &str) -> R<String> {
        let d = self.d;
        let (is_str, is_num, is_bool, is_null) =
            (self.j_is(v, "STRING"), self.j_is(v, "NUMBER"), self.j_is(v, "BOOLEAN"), self.j_is(v, "NULL"));
        let string = self.j_value(v, "string");
        let number = self.j_value(v, "double");
        let boolean = self.j_value(v, "boolean");
        Ok(match t {
            Test::Exists => format!("(NOT {is_null} AND NOT ({is_str} AND {string} = ''))"),
            Test::Dynamic(s) => {
                let num = match s.parse::<f64>() {
                    Ok(n) if !n.is_nan() => format!("{number} = {}", d.double(n)),
                    _ => "FALSE".into(),
                };
                let b = match s.as_str() {
                    "true" | "false" => format!("{boolean} = {}", s.to_uppercase()),
                    _ => "FALSE".into(),
                };
                format!(
                    "(CASE WHEN {is_str} THEN {string} = {s_} WHEN {is_num} THEN {num} WHEN {is_bool} THEN {b} WHEN {is_null} THEN FALSE ELSE {} = {s_} END)",
                    self.j_json(v),
                    s_ = d.str(s)
                )
            }
            Test::Cmp(op, Lit::Dynamic(s)) => {
                let o = op.as_str();
                let num = match s.parse::<f64>() {
                    Ok(n) if !n.is_nan() => format!("{number} {o} {}", d.double(n)),
                    _ => "FALSE".into(),
                };
                let b = match s.as_str() {
                    "true" | "false" => format!("{boolean} {o} {}", s.to_uppercase()),
                    _ => "FALSE".into(),
                };
                format!(
                    "(CASE WHEN {is_num} THEN {num} WHEN {is_str} THEN {string} {o} {} WHEN {is_bool} THEN {b} ELSE FALSE END)",
                    d.str(s)
                )
            }
            Test::Cmp(op, Lit::Str(s)) => format!("({is_str} AND {string} {} {})", op.as_str(), d.str(s)),
            Test::Eq(_)
            | Test::Glob(_)
            | Test::Regex(_)
            | Test::Words(_)
            | Test::WordGlob(_)
            | Test::Ip(_)
            | Test::Cidr(_) => {
                // As on a string: the value's text.
                let text = self.json_text(v);
                let k = Kind::scalar(Ty::Keyword);
                let inner = self.scalar(t, &text, k, name)?;
                if matches!(t, Test::Ip(_) | Test::Cidr(_)) { format!("({is_str} AND {inner})") } else { inner }
            }
            _ => "FALSE".into(),
        })
    }

    /// The usual spellings of an address (kaq parses both sides; SQL compares text).
    fn ip_eq(&self, x: &str, ip: IpAddr) -> String {
        let mut forms: Vec<String> = Vec::new();
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, e] = v4.octets();
                let dotted = v4.to_string();
                let hex = format!("{:x}:{:x}", u16::from_be_bytes([a, b]), u16::from_be_bytes([c, e]));
                forms.push(dotted.clone());
                for pre in ["::ffff:", "0:0:0:0:0:ffff:", "0000:0000:0000:0000:0000:ffff:"] {
                    forms.push(format!("{pre}{dotted}"));
                    forms.push(format!("{pre}{hex}"));
                }
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                forms.push(v6.to_string());
                forms.push(s.iter().map(|x| format!("{x:x}")).collect::<Vec<_>>().join(":"));
                forms.push(s.iter().map(|x| format!("{x:04x}")).collect::<Vec<_>>().join(":"));
            }
        }
        forms.dedup();
        let list: Vec<String> = forms.iter().map(|f| self.d.str(f)).collect();
        format!("(lower({x}) IN ({}))", list.join(", "))
    }

    fn cidr(&self, x: &str, c: &kaq_query::plan::literal::Cidr, name: &str) -> R<String> {
        let IpAddr::V4(net) = c.net else {
            return Err(self.err(format_args!("`{name}:{}/{}` (an IPv6 CIDR block)", c.net, c.prefix)));
        };
        let mask: u32 = if c.prefix == 0 { 0 } else { u32::MAX << (32 - c.prefix) };
        let lo = u32::from(net) & mask;
        let hi = lo | !mask;
        let d = self.d;
        let shape = format!(r"\A(?i:::ffff:|0:0:0:0:0:ffff:)?{OCTET}\.{OCTET}\.{OCTET}\.{OCTET}\z");
        let dotted = d.replace_all(x, r"\A.*:", "");
        let parts = match d {
            Dialect::DuckDb => format!("string_split({dotted}, '.')"),
            Dialect::Spark => format!("split({dotted}, {})", d.str(r"\.")),
            Dialect::Trino => format!("split({dotted}, '.')"),
        };
        let num = (1..=4)
            .map(|i| format!("CAST({} AS BIGINT) * {}", d.at(&parts, &i.to_string()), 1u64 << (8 * (4 - i))))
            .collect::<Vec<_>>()
            .join(" + ");
        Ok(format!("({} AND ({num}) BETWEEN {lo} AND {hi})", d.regex(x, &shape)))
    }

    // ---- stages ----

    /// Refuses a column whose value the SQL does not hold as kaq shows it (JSON bodies, paths).
    fn plain(&self, c: &Col, stage: &str) -> R<()> {
        if c.kind.json || c.kind.ty == Ty::Object {
            return Err(self.err(format_args!(
                "`{}` as a column of `{stage}` (JSON values and objects are translated in conditions only)",
                c.name
            )));
        }
        Ok(())
    }

    /// One stage: its CTE, and (for a shaping stage) the columns it makes.
    fn step(
        &mut self,
        step: &Step,
        prev: &str,
        cols: &[String],
        scope: &[Col],
        out: &[kaq_query::plan::Column],
    ) -> R<(String, Vec<Col>, bool)> {
        let d = self.d;
        let all = cols.join(", ");
        let nulls_last = |c: &Col, desc: bool| format!("{} {} NULLS LAST", c.sql, if desc { "DESC" } else { "ASC" });
        Ok(match step {
            Step::Where(p) => {
                let cond = self.pred(p, scope)?;
                (self.cte(format!("SELECT {all}, _o FROM {prev} WHERE {cond}")), Vec::new(), false)
            }
            Step::Sort(keys) => {
                for (k, _) in keys {
                    self.plain(&scope[*k], "sort")?;
                }
                let order: Vec<String> = keys.iter().map(|(k, desc)| nulls_last(&scope[*k], *desc)).collect();
                let body =
                    format!("SELECT {all}, row_number() OVER (ORDER BY {}, _o) AS _o FROM {prev}", order.join(", "));
                (self.cte(body), Vec::new(), false)
            }
            Step::Head(n) => {
                (self.cte(format!("SELECT {all}, _o FROM {prev} ORDER BY _o LIMIT {n}")), Vec::new(), false)
            }
            Step::Dedup(keys) => {
                for k in keys {
                    self.plain(&scope[*k], "dedup")?;
                }
                let part: Vec<String> = keys.iter().map(|k| scope[*k].sql.clone()).collect();
                let body = format!(
                    "SELECT {all}, _o FROM (SELECT {all}, _o, row_number() OVER (PARTITION BY {} ORDER BY _o) AS _d FROM {prev}) _t WHERE _d = 1",
                    part.join(", ")
                );
                (self.cte(body), Vec::new(), false)
            }
            Step::Table(keys) => {
                let mut made = Vec::new();
                let mut sel = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    let c = &scope[*k];
                    self.plain(c, "table")?;
                    sel.push(format!("{} AS c{i}", c.sql));
                    made.push(Col { sql: format!("c{i}"), kind: c.kind, name: out[i].name.clone() });
                }
                (self.cte(format!("SELECT {}, _o FROM {prev}", sel.join(", "))), made, true)
            }
            Step::Aggregate { by, aggs } => {
                let (from, keys) = self.fan(prev, by, scope, "stats")?;
                let mut sel: Vec<String> = Vec::new();
                let mut made = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    sel.push(format!("{k} AS c{i}"));
                    let c = &scope[by[i]];
                    made.push(Col {
                        sql: format!("c{i}"),
                        kind: Kind { list: false, ..c.kind },
                        name: out[i].name.clone(),
                    });
                }
                for (j, a) in aggs.iter().enumerate() {
                    let i = keys.len() + j;
                    let (e, kind) = self.aggregate(a, scope, &out[i].name)?;
                    sel.push(format!("{e} AS c{i}"));
                    made.push(Col { sql: format!("c{i}"), kind, name: out[i].name.clone() });
                }
                let group = if keys.is_empty() { String::new() } else { format!(" GROUP BY {}", keys.join(", ")) };
                let g = self.cte(format!("SELECT {} FROM {from}{group}", sel.join(", ")));
                let order: Vec<String> = made[..keys.len()].iter().map(|c| nulls_last(c, false)).collect();
                let names: Vec<String> = made.iter().map(|c| c.sql.clone()).collect();
                let o = if order.is_empty() { "1".to_string() } else { order.join(", ") };
                let body = format!("SELECT {}, row_number() OVER (ORDER BY {o}) AS _o FROM {g}", names.join(", "));
                (self.cte(body), made, true)
            }
            Step::Top { limit, col, by, rare } => {
                let (from, keys) = self.fan(prev, by, scope, if *rare { "rare" } else { "top" })?;
                let c = scope[*col].clone();
                self.plain(&c, "top")?;
                let kn: Vec<String> = (0..keys.len()).map(|i| format!("_k{i}")).collect();
                let ksel: Vec<String> = keys.iter().zip(&kn).map(|(k, n)| format!("{k} AS {n}")).collect();
                let members = self.cte(format!(
                    "SELECT {}{}{} AS _val FROM {from}",
                    ksel.join(", "),
                    if ksel.is_empty() { "" } else { ", " },
                    c.sql
                ));
                let kl = kn.join(", ");
                let comma = if kn.is_empty() { "" } else { ", " };
                let group_k = if kn.is_empty() { String::new() } else { format!(" GROUP BY {kl}") };
                let totals = self.cte(format!("SELECT {kl}{comma}count(*) AS _m FROM {members}{group_k}"));
                let (vfrom, v) = if c.kind.list {
                    let list = self.distinct_non_null(&format!("{members}._val"));
                    (format!("{members}{}", d.unnest_join(&list, "_uv", "_e")), "_e".to_string())
                } else {
                    (members.clone(), "_val".to_string())
                };
                let counts = self.cte(format!(
                    "SELECT {kl}{comma}{v} AS _val, count(*) AS _n FROM {vfrom} WHERE {v} IS NOT NULL GROUP BY {kl}{comma}{v}"
                ));
                let join = if kn.is_empty() {
                    format!("{counts} CROSS JOIN {totals}")
                } else {
                    let on: Vec<String> =
                        kn.iter().map(|k| format!("{counts}.{k} IS NOT DISTINCT FROM {totals}.{k}")).collect();
                    format!("{counts} JOIN {totals} ON {}", on.join(" AND "))
                };
                let dir = if *rare { "ASC" } else { "DESC" };
                let qk: Vec<String> = kn.iter().map(|k| format!("{counts}.{k} AS {k}")).collect();
                let part = if kn.is_empty() {
                    String::new()
                } else {
                    format!(
                        "PARTITION BY {} ",
                        kn.iter().map(|k| format!("{counts}.{k}")).collect::<Vec<_>>().join(", ")
                    )
                };
                let ranked = self.cte(format!(
                    "SELECT {}{comma}_val, _n, _m, row_number() OVER ({part}ORDER BY _n {dir}, _val) AS _rk FROM {join}",
                    qk.join(", ")
                ));
                let mut sel = Vec::new();
                let mut made = Vec::new();
                let mut order = Vec::new();
                for (i, k) in kn.iter().enumerate() {
                    sel.push(format!("{k} AS c{i}"));
                    order.push(format!("{k} ASC NULLS LAST"));
                    made.push(Col {
                        sql: format!("c{i}"),
                        kind: Kind { list: false, ..scope[by[i]].kind },
                        name: out[i].name.clone(),
                    });
                }
                let n = kn.len();
                sel.push(format!("_val AS c{n}"));
                made.push(Col {
                    sql: format!("c{n}"),
                    kind: Kind { list: false, ..c.kind },
                    name: out[n].name.clone(),
                });
                sel.push(format!("_n AS c{}", n + 1));
                made.push(Col { sql: format!("c{}", n + 1), kind: Kind::scalar(Ty::Int), name: "count".into() });
                sel.push(format!("round(CAST(_n AS DOUBLE) * 10000 / CAST(_m AS DOUBLE)) / 100 AS c{}", n + 2));
                made.push(Col { sql: format!("c{}", n + 2), kind: Kind::scalar(Ty::Float), name: "percent".into() });
                order.push(format!("_n {dir}"));
                order.push("_val".into());
                let body = format!(
                    "SELECT {}, row_number() OVER (ORDER BY {}) AS _o FROM {ranked} WHERE _rk <= {limit}",
                    sel.join(", "),
                    order.join(", ")
                );
                (self.cte(body), made, true)
            }
            Step::Timeline { interval, col, by } => {
                let w = *interval;
                let t = scope[*col].sql.clone();
                let bucket = format!("({t} - ((({t} % {w}) + {w}) % {w}))");
                let mut made = vec![Col { sql: "c0".into(), kind: Kind::scalar(Ty::Time), name: "time".into() }];
                match by {
                    Some(b) => {
                        let (from, keys) = self.fan(prev, std::slice::from_ref(b), scope, "timeline")?;
                        let k = &keys[0];
                        made.push(Col {
                            sql: "c1".into(),
                            kind: Kind { list: false, ..scope[*b].kind },
                            name: out[1].name.clone(),
                        });
                        made.push(Col { sql: "c2".into(), kind: Kind::scalar(Ty::Int), name: "count".into() });
                        let g = self.cte(format!(
                            "SELECT {bucket} AS c0, {k} AS c1, count(*) AS c2 FROM {from} WHERE {t} IS NOT NULL GROUP BY {bucket}, {k}"
                        ));
                        let body = format!(
                            "SELECT c0, c1, c2, row_number() OVER (ORDER BY c0, c1 ASC NULLS LAST) AS _o FROM {g}"
                        );
                        (self.cte(body), made, true)
                    }
                    None => {
                        made.push(Col { sql: "c1".into(), kind: Kind::scalar(Ty::Int), name: "count".into() });
                        let counts = self.cte(format!(
                            "SELECT {bucket} AS _b, count(*) AS _n FROM {prev} WHERE {t} IS NOT NULL GROUP BY {bucket}"
                        ));
                        let bounds = self.cte(format!("SELECT min(_b) AS _lo, max(_b) AS _hi FROM {counts}"));
                        let few = format!("{} < 100000", d.int_div("(_hi - _lo)", &w.to_string()));
                        let range = d.range("_lo", "_hi", &w.to_string());
                        let filled = match d {
                            Dialect::DuckDb => {
                                format!("SELECT unnest({range}) AS _b FROM {bounds} WHERE _lo IS NOT NULL AND {few}")
                            }
                            Dialect::Spark => {
                                format!("SELECT explode({range}) AS _b FROM {bounds} WHERE _lo IS NOT NULL AND {few}")
                            }
                            Dialect::Trino => format!(
                                "SELECT _s._b FROM {bounds} CROSS JOIN UNNEST({range}) AS _s(_b) WHERE _lo IS NOT NULL AND {few}"
                            ),
                        };
                        let series = self.cte(format!(
                            "{filled} UNION ALL SELECT _b FROM {counts} WHERE NOT EXISTS (SELECT 1 FROM {bounds} WHERE {few})"
                        ));
                        let body = format!(
                            "SELECT {series}._b AS c0, coalesce({counts}._n, 0) AS c1, row_number() OVER (ORDER BY {series}._b) AS _o FROM {series} LEFT JOIN {counts} ON {series}._b = {counts}._b"
                        );
                        (self.cte(body), made, true)
                    }
                }
            }
        })
    }

    /// The distinct non-NULL elements of a list.
    fn distinct_non_null(&mut self, list: &str) -> String {
        let v = self.var();
        self.d.distinct(&self.d.filter(list, &v, &format!("{v} IS NOT NULL")))
    }

    /// The rows of `prev` with one row per group membership: list keys fanned out into their
    /// distinct elements (an empty or absent list is one NULL key). Gives the FROM text and the
    /// key expressions.
    fn fan(&mut self, prev: &str, by: &[usize], scope: &[Col], stage: &str) -> R<(String, Vec<String>)> {
        let d = self.d;
        let mut from = prev.to_string();
        let mut keys = Vec::new();
        for (i, b) in by.iter().enumerate() {
            let c = scope[*b].clone();
            self.plain(&c, stage)?;
            if c.kind.list {
                let elems = self.distinct_non_null(&c.sql);
                let list = format!(
                    "CASE WHEN {c} IS NULL OR {} = 0 THEN {} ELSE {elems} END",
                    d.len(&elems),
                    d.list_of(&[d.null_str()]),
                    c = c.sql
                );
                let alias = format!("_u{i}");
                from.push_str(&d.unnest_join(&list, &alias, &format!("_g{i}")));
                keys.push(format!("_g{i}"));
            } else {
                keys.push(c.sql.clone());
            }
        }
        Ok((from, keys))
    }

    /// One `stats` aggregate over a group's rows, and the kind of its result.
    fn aggregate(&mut self, a: &kaq_query::plan::Agg, scope: &[Col], name: &str) -> R<(String, Kind)> {
        let d = self.d;
        let Some(ci) = a.col else { return Ok(("count(*)".into(), Kind::scalar(Ty::Int))) };
        let c = scope[ci].clone();
        self.plain(&c, name)?;
        let x = c.sql.clone();
        let s = Self::stringy(c.kind.ty);
        // Every value of the group (list elements one by one), NULLs left out.
        let values = |this: &mut Self| {
            let collected = d.collect(&x);
            let flat = if c.kind.list {
                let v = this.var();
                d.flatten(&d.filter(&collected, &v, &format!("{v} IS NOT NULL")))
            } else {
                collected
            };
            let v = this.var();
            d.filter(&flat, &v, &format!("{v} IS NOT NULL"))
        };
        let elem = Kind { list: false, ..c.kind };
        Ok(match a.func {
            AggFunc::Count => {
                let present = if c.kind.list {
                    let v = self.var();
                    let test = if s { format!("{v} IS NOT NULL AND {v} <> ''") } else { format!("{v} IS NOT NULL") };
                    d.any(&x, &v, &test)
                } else if s {
                    format!("({x} IS NOT NULL AND {x} <> '')")
                } else {
                    format!("({x} IS NOT NULL)")
                };
                (format!("sum(CASE WHEN {present} THEN 1 ELSE 0 END)"), Kind::scalar(Ty::Int))
            }
            AggFunc::Dc if !c.kind.list => (format!("count(DISTINCT {x})"), Kind::scalar(Ty::Int)),
            AggFunc::Dc => {
                let vals = values(self);
                (format!("coalesce({}, 0)", d.len(&d.distinct(&vals))), Kind::scalar(Ty::Int))
            }
            AggFunc::Values => {
                let vals = values(self);
                (
                    format!("coalesce({}, {})", d.sort(&d.distinct(&vals)), self.empty_list(elem.ty)),
                    Kind { list: true, ..elem },
                )
            }
            AggFunc::Min if !c.kind.list => (format!("min({x})"), elem),
            AggFunc::Max if !c.kind.list => (format!("max({x})"), elem),
            AggFunc::Min => (d.list_min(&values(self)), elem),
            AggFunc::Max => (d.list_max(&values(self)), elem),
            AggFunc::Sum | AggFunc::Avg if c.kind.list => {
                return Err(self.err(format_args!("`{name}` over a list")));
            }
            AggFunc::Sum => match c.kind.ty {
                Ty::Int | Ty::Dur => (format!("coalesce(CAST(sum({x}) AS BIGINT), 0)"), elem),
                Ty::Float => (format!("coalesce(sum({x}), 0)"), elem),
                _ => return Err(self.err(format_args!("`{name}`"))),
            },
            AggFunc::Avg => match c.kind.ty {
                Ty::Dur => (format!("CAST(round(CAST(sum({x}) AS DOUBLE) / count({x})) AS BIGINT)"), elem),
                Ty::Int | Ty::Float => (format!("avg(CAST({x} AS DOUBLE))"), Kind::scalar(Ty::Float)),
                _ => return Err(self.err(format_args!("`{name}`"))),
            },
            AggFunc::P50 | AggFunc::P90 | AggFunc::P95 | AggFunc::P99 => {
                let p = match a.func {
                    AggFunc::P50 => 50,
                    AggFunc::P90 => 90,
                    AggFunc::P95 => 95,
                    _ => 99,
                };
                let sorted = d.sort(&values(self));
                let n = d.len(&sorted);
                let k = d.int_div(&format!("({p} * {n} + 99)"), "100");
                let at = d.at(&sorted, &format!("CAST({k} AS INT)"));
                (format!("CASE WHEN coalesce({n}, 0) = 0 THEN NULL ELSE {at} END"), elem)
            }
        })
    }

    fn empty_list(&self, ty: Ty) -> String {
        let t = match ty {
            Ty::Int | Ty::Time | Ty::Dur => "BIGINT",
            Ty::Float => "DOUBLE",
            Ty::Bool => "BOOLEAN",
            _ => self.d.string_type(),
        };
        match self.d {
            Dialect::DuckDb => format!("CAST([] AS {t}[])"),
            Dialect::Spark => format!("CAST(array() AS ARRAY<{t}>)"),
            Dialect::Trino => format!("CAST(ARRAY[] AS ARRAY({t}))"),
        }
    }

    /// A column as `kaq detect` reads it (`Val::to_display`): NULL when absent, empty or an
    /// empty list; lists joined with `, `. Kinds whose text the engines would spell differently
    /// from kaq (times, durations, floats, JSON) are refused.
    fn display_text(&mut self, c: &Col) -> R<String> {
        let d = self.d;
        let st = d.string_type();
        let one = |x: &str| -> Option<String> {
            match c.kind.ty {
                Ty::Keyword | Ty::Text | Ty::Ip => Some(x.to_string()),
                Ty::Int => Some(format!("CAST({x} AS {st})")),
                Ty::Bool => Some(format!("CASE WHEN {x} THEN 'true' ELSE 'false' END")),
                _ => None,
            }
        };
        if c.kind.ty == Ty::Time && !c.kind.list && c.name == "time" {
            return Ok(c.sql.clone());
        }
        if c.kind.json || c.kind.ty == Ty::Object {
            return Err(self.err(format_args!("`{}` (a JSON value) as a rule's group or counted field", c.name)));
        }
        if c.kind.list {
            let v = self.var();
            let Some(elem) = one(&v) else {
                return Err(self
                    .err(format_args!("`{}` (a list of {:?}) as a rule's group or counted field", c.name, c.kind.ty)));
            };
            let texts = d.transform(&c.sql, &v, &format!("coalesce({elem}, '')"));
            return Ok(format!(
                "CASE WHEN {x} IS NULL OR {} = 0 THEN NULL ELSE {} END",
                d.len(&c.sql),
                d.join(&texts, ", "),
                x = c.sql
            ));
        }
        match one(&c.sql) {
            Some(t) if Self::stringy(c.kind.ty) => Ok(format!("NULLIF({t}, '')")),
            Some(t) => Ok(t),
            None => Err(self.err(format_args!(
                "`{}` (a {} value, whose text the engine spells differently from kaq) as a rule's group or counted field",
                c.name,
                format!("{:?}", c.kind.ty).to_lowercase()
            ))),
        }
    }

    /// A result column as shown: times as timestamps, durations in seconds.
    fn output(&mut self, x: &str, k: Kind) -> String {
        let conv = |d: Dialect, v: &str| match k.ty {
            Ty::Time => d.timestamp(v),
            Ty::Dur => format!("({v} / 1e6)"),
            _ => v.to_string(),
        };
        if !matches!(k.ty, Ty::Time | Ty::Dur) {
            return x.to_string();
        }
        if k.list {
            let v = self.var();
            let body = conv(self.d, &v);
            self.d.transform(x, &v, &body)
        } else {
            conv(self.d, x)
        }
    }
}

fn key_name(key: &str) -> String {
    format!("extra.{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(q: &str, d: Dialect) -> R<String> {
        let plan = kaq_query::compile(q, &Default::default()).expect("compiles");
        translate(&plan, &Options { dialect: d, source: Source::Table("audit".into()), partitions: None })
    }

    #[test]
    fn values_are_quoted_for_each_dialect() {
        let q = r#"user:"it's \\ a" | count"#;
        assert!(sql(q, Dialect::DuckDb).unwrap().contains(r"= 'it''s \ a')"));
        assert!(sql(q, Dialect::Spark).unwrap().contains(r"= 'it\'s \\ a')"));
        assert!(sql(q, Dialect::Trino).unwrap().contains(r"= 'it''s \ a')"));
    }

    #[test]
    fn the_latest_stage_window_is_left_out_for_every_stage() {
        let latest = sql("verb:get", Dialect::DuckDb).unwrap();
        assert!(latest.contains("row_number() OVER (PARTITION BY \"id\""), "{latest}");
        let all = sql("stage:ResponseComplete verb:get", Dialect::DuckDb).unwrap();
        assert!(!all.contains("PARTITION BY \"id\""), "{all}");
    }

    #[test]
    fn rows_for_a_rule_are_prefixed_unordered_and_read_as_text() {
        let plan = kaq_query::compile("verb:get | table time, id, user, ip, code", &Default::default()).unwrap();
        let opts = Options { dialect: Dialect::DuckDb, source: Source::Table("audit".into()), partitions: None };
        let rows = translate_rows(&plan, &opts, "_s1_").unwrap();
        assert!(rows.ctes.iter().all(|(n, _)| n.starts_with("_s1_")), "{:?}", rows.ctes);
        assert!(rows.ctes.iter().any(|(n, b)| n == "_s1_ev" && b.contains("FROM _s1_src")));
        assert!(!rows.ctes.iter().any(|(_, b)| b.contains("row_number() OVER (ORDER BY")), "no global order");
        assert_eq!(rows.time, "c0");
        assert_eq!(rows.columns.len(), 4);
        assert_eq!(rows.columns[0], "NULLIF(c1, '')");
        assert!(
            rows.columns[2].contains("array_to_string(") && rows.columns[2].contains("', '"),
            "{}",
            rows.columns[2]
        );
        assert_eq!(rows.columns[3], "CAST(c4 AS VARCHAR)");
        assert_eq!(rows.data_start, "(SELECT min(epoch_us(\"time\")) FROM audit)");
        // Only a `table` beginning with `time` is a rule's rows; a duration has no common text.
        let plan = kaq_query::compile("verb:get | count by user", &Default::default()).unwrap();
        assert!(translate_rows(&plan, &opts, "_s0_").is_err());
        let plan = kaq_query::compile("verb:get | table time, id, latency", &Default::default()).unwrap();
        let e = translate_rows(&plan, &opts, "_s0_").unwrap_err();
        assert!(e.message.contains("`latency`") && e.message.contains("duckdb"), "{e}");
    }

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(Tr::glob_re("system:*:c?.x"), r"\A(?s:system:.*:c.\.x)\z");
        assert_eq!(Tr::glob_re("a[b]$"), r"\A(?s:a\[b\]\$)\z");
    }

    #[test]
    fn what_cannot_be_expressed_is_refused_by_name() {
        let e = sql("request.spec.replicas>2", Dialect::Trino).unwrap_err();
        assert_eq!(
            e.message,
            "`request.spec.replicas` (a path into a JSON body): not expressible in trino SQL by kaq sql"
        );
        let e = sql("ip:2001:db8::/32", Dialect::Spark).unwrap_err();
        assert!(e.message.contains("IPv6 CIDR block") && e.message.contains("spark"), "{e}");
        let plan = kaq_query::compile("verb:get", &Default::default()).unwrap();
        let bad =
            Options { dialect: Dialect::DuckDb, source: Source::Table("t; DROP TABLE x".into()), partitions: None };
        assert!(translate(&plan, &bad).unwrap_err().message.contains("is not a table name"));
    }
}
