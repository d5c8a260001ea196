//! How each engine spells what the translation needs: quoting, lists, lambdas, regexes, times.

use std::fmt;

/// The SQL engine a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// DuckDB 1.3 or later (the `lambda x: …` syntax).
    DuckDb,
    /// Apache Spark SQL 3.5 or later (Databricks, EMR), with `spark.sql.session.timeZone=UTC`.
    Spark,
    /// Trino (and Athena engine 3): checked by a parser only, never run here.
    Trino,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "duckdb" => Ok(Dialect::DuckDb),
            "spark" | "sparksql" | "databricks" => Ok(Dialect::Spark),
            "trino" | "athena" | "presto" => Ok(Dialect::Trino),
            _ => Err(format!("unknown dialect `{s}` (duckdb, spark or trino)")),
        }
    }
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::DuckDb => "duckdb",
            Dialect::Spark => "spark",
            Dialect::Trino => "trino",
        }
    }

    /// An identifier, quoted.
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Spark => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A string literal. Spark reads backslash escapes in literals, the others do not.
    pub fn str(self, s: &str) -> String {
        match self {
            Dialect::Spark => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            _ => format!("'{}'", s.replace('\'', "''")),
        }
    }

    /// The name of the string type.
    pub fn string_type(self) -> &'static str {
        match self {
            Dialect::Spark => "STRING",
            _ => "VARCHAR",
        }
    }

    /// A typed NULL string.
    pub fn null_str(self) -> String {
        format!("CAST(NULL AS {})", self.string_type())
    }

    /// A DOUBLE literal.
    pub fn double(self, f: f64) -> String {
        if f.is_finite() {
            format!("CAST({} AS DOUBLE)", self.str(&format!("{f:e}")))
        } else if f.is_nan() {
            "CAST('NaN' AS DOUBLE)".into()
        } else if f > 0.0 {
            "CAST('Infinity' AS DOUBLE)".into()
        } else {
            "CAST('-Infinity' AS DOUBLE)".into()
        }
    }

    /// A one-argument lambda.
    pub fn lambda(self, var: &str, body: &str) -> String {
        match self {
            Dialect::DuckDb => format!("lambda {var}: {body}"),
            _ => format!("{var} -> {body}"),
        }
    }

    /// Whether some element of `list` satisfies `pred(var)`; FALSE for a NULL or empty list.
    pub fn any(self, list: &str, var: &str, pred: &str) -> String {
        let lam = self.lambda(var, pred);
        match self {
            Dialect::DuckDb => format!("coalesce(len(list_filter({list}, {lam})) > 0, FALSE)"),
            Dialect::Spark => format!("coalesce(exists({list}, {lam}), FALSE)"),
            Dialect::Trino => format!("coalesce(any_match({list}, {lam}), FALSE)"),
        }
    }

    pub fn filter(self, list: &str, var: &str, pred: &str) -> String {
        let lam = self.lambda(var, pred);
        match self {
            Dialect::DuckDb => format!("list_filter({list}, {lam})"),
            _ => format!("filter({list}, {lam})"),
        }
    }

    pub fn transform(self, list: &str, var: &str, body: &str) -> String {
        let lam = self.lambda(var, body);
        match self {
            Dialect::DuckDb => format!("list_transform({list}, {lam})"),
            _ => format!("transform({list}, {lam})"),
        }
    }

    pub fn len(self, list: &str) -> String {
        match self {
            Dialect::DuckDb => format!("len({list})"),
            Dialect::Spark => format!("size({list})"),
            Dialect::Trino => format!("cardinality({list})"),
        }
    }

    /// Element `i` (1-based; negative from the end), NULL when out of range.
    pub fn at(self, list: &str, i: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list_extract({list}, {i})"),
            Dialect::Spark => format!("try_element_at({list}, {i})"),
            Dialect::Trino => format!("element_at({list}, {i})"),
        }
    }

    pub fn distinct(self, list: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list_distinct({list})"),
            _ => format!("array_distinct({list})"),
        }
    }

    pub fn flatten(self, list: &str) -> String {
        format!("flatten({list})")
    }

    /// Sorted ascending (elements are never NULL here).
    pub fn sort(self, list: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list_sort({list})"),
            _ => format!("array_sort({list})"),
        }
    }

    pub fn list_min(self, list: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list_min({list})"),
            _ => format!("array_min({list})"),
        }
    }

    pub fn list_max(self, list: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list_max({list})"),
            _ => format!("array_max({list})"),
        }
    }

    /// The list aggregate (keeps NULLs in DuckDB and Trino, drops them in Spark: callers filter).
    pub fn collect(self, x: &str) -> String {
        match self {
            Dialect::DuckDb => format!("list({x})"),
            Dialect::Spark => format!("collect_list({x})"),
            Dialect::Trino => format!("array_agg({x})"),
        }
    }

    /// A list literal of typed expressions.
    pub fn list_of(self, items: &[String]) -> String {
        match self {
            Dialect::DuckDb => format!("[{}]", items.join(", ")),
            Dialect::Spark => format!("array({})", items.join(", ")),
            Dialect::Trino => format!("ARRAY[{}]", items.join(", ")),
        }
    }

    /// An empty list of strings.
    pub fn empty_strs(self) -> String {
        match self {
            Dialect::DuckDb => "CAST([] AS VARCHAR[])".into(),
            Dialect::Spark => "CAST(array() AS ARRAY<STRING>)".into(),
            Dialect::Trino => "CAST(ARRAY[] AS ARRAY(VARCHAR))".into(),
        }
    }

    /// The elements of a list of strings joined with `sep` (NULL elements left out).
    pub fn join(self, list: &str, sep: &str) -> String {
        match self {
            Dialect::DuckDb => format!("array_to_string({list}, {})", self.str(sep)),
            _ => format!("array_join({list}, {})", self.str(sep)),
        }
    }

    /// The regex searches `x` (unanchored).
    pub fn regex(self, x: &str, re: &str) -> String {
        let re = self.str(re);
        match self {
            Dialect::DuckDb => format!("regexp_matches({x}, {re})"),
            Dialect::Spark => format!("({x} RLIKE {re})"),
            Dialect::Trino => format!("regexp_like({x}, {re})"),
        }
    }

    /// `x` with every match of `re` replaced by `with`.
    pub fn replace_all(self, x: &str, re: &str, with: &str) -> String {
        let (re, with) = (self.str(re), self.str(with));
        match self {
            Dialect::DuckDb => format!("regexp_replace({x}, {re}, {with}, 'g')"),
            _ => format!("regexp_replace({x}, {re}, {with})"),
        }
    }

    /// `x` split at the matches of `re`.
    pub fn split_re(self, x: &str, re: &str) -> String {
        let re = self.str(re);
        match self {
            Dialect::DuckDb => format!("regexp_split_to_array({x}, {re})"),
            Dialect::Spark => format!("split({x}, {re})"),
            Dialect::Trino => format!("regexp_split({x}, {re})"),
        }
    }

    /// Whether `needle` occurs in `x`.
    pub fn contains(self, x: &str, needle: &str) -> String {
        match self {
            Dialect::Spark => format!("(instr({x}, {needle}) > 0)"),
            _ => format!("(strpos({x}, {needle}) > 0)"),
        }
    }

    /// Microseconds since the epoch of a timestamp.
    pub fn micros(self, ts: &str) -> String {
        match self {
            Dialect::DuckDb => format!("epoch_us({ts})"),
            Dialect::Spark => format!("unix_micros({ts})"),
            Dialect::Trino => format!("CAST(round(to_unixtime({ts}) * 1000000) AS BIGINT)"),
        }
    }

    /// A timestamp from microseconds since the epoch.
    pub fn timestamp(self, us: &str) -> String {
        match self {
            Dialect::DuckDb => format!("make_timestamp({us})"),
            Dialect::Spark => format!("timestamp_micros({us})"),
            Dialect::Trino => format!("from_unixtime_nanos({us} * 1000)"),
        }
    }

    /// RFC 3339 text of microseconds since the epoch, as kaq prints times.
    pub fn time_text(self, us: &str) -> String {
        match self {
            Dialect::DuckDb => format!("strftime(make_timestamp({us}), '%Y-%m-%dT%H:%M:%S.%fZ')"),
            Dialect::Spark => format!("date_format(timestamp_micros({us}), 'yyyy-MM-dd\\'T\\'HH:mm:ss.SSSSSS\\'Z\\'')"),
            Dialect::Trino => {
                format!("format_datetime(from_unixtime_nanos({us} * 1000), 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''')")
            }
        }
    }

    /// Integer division of non-negative numbers.
    pub fn int_div(self, a: &str, b: &str) -> String {
        match self {
            Dialect::DuckDb => format!("({a} // {b})"),
            Dialect::Spark => format!("({a} div {b})"),
            Dialect::Trino => format!("({a} / {b})"),
        }
    }

    /// `lo, lo+step, …, hi` as a list.
    pub fn range(self, lo: &str, hi: &str, step: &str) -> String {
        match self {
            Dialect::DuckDb => format!("range({lo}, {hi} + 1, {step})"),
            _ => format!("sequence({lo}, {hi}, {step})"),
        }
    }

    /// `FROM t` joined with one row per element of `list` (as column `col` of alias `alias`).
    pub fn unnest_join(self, list: &str, alias: &str, col: &str) -> String {
        match self {
            Dialect::DuckDb => format!(", unnest({list}) AS {alias}({col})"),
            Dialect::Spark => format!(" LATERAL VIEW explode({list}) {alias} AS {col}"),
            Dialect::Trino => format!(" CROSS JOIN UNNEST({list}) AS {alias}({col})"),
        }
    }
}
