//! `kaq sql` against `kaq query`: the SQL it writes, run by DuckDB (and Spark) over the Parquet
//! `kaq convert` makes of a log, must give the rows `kaq query` gives over that log — for the
//! oracle's random queries and every PRODUCT.md example, with and without --all-stages
//! (tests/python/sql_diff.py runs and compares). Skips when KAQ_PYTHON is not set; the Spark run
//! also when java or pyspark is missing.

use std::path::Path;
use std::process::Command;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::common::*;

/// The query forms of PRODUCT.md §4.
const EXAMPLES: &[&str] = &[
    "verb:delete ns:prod*",
    "verb:(delete OR deletecollection) ns:(prod OR prod-payments) | table time, user, verb, resource, ns, name",
    "code:401 | count by ip | where count > 20 | sort -count",
    "code>=400 NOT user:system:* | top 10 user",
    "resource:secrets verb:(get OR list) -user_kind:node | stats count, dc(name) as secrets by user, ip",
    "subresource:exec | table time, user, ns, name, uri",
    "latency>1s | stats count, p50(latency), p99(latency), max(latency) by verb, resource",
    "\"is forbidden\" | timeline 5m",
    "decision:forbid user:system:serviceaccount:* | count by user",
    "verb:create resource:clusterrolebindings request.roleRef.name:cluster-admin",
    "request.spec.template.spec.hostNetwork:true",
    "ip:203.0.113.0/24 | count by code",
    "as:* | table time, user, as, verb, resource, name",
    "time>=2026-11-20T05:00:00Z time<2026-11-20T06:00:00Z | count by verb",
    "id:0b2f1c7e-1111-4a2b-9c3d-000000000001",
    "@prod-deletes | table time, user, resource, name",
];

/// Further forms the random queries do not reach: every stage and aggregate on lists, times and
/// counts, empty groups, macros.
const MORE: &[&str] = &[
    "| stats values(groups) as g, dc(groups), count(groups), min(ip), max(ip) by user_kind",
    "| stats sum(latency), avg(latency), p95(latency), p90(code), min(stage_time), values(code) by ns",
    "| top 3 ip by verb",
    "| rare 3 groups",
    "| timeline 10m by ip",
    "| count by groups, ip | sort -count",
    "| dedup ip | table id, ip, client_ip, peer_ip",
    "verb:nothing | stats count, sum(code), avg(code), values(verb), dc(user)",
    "verb:nothing | timeline 5m",
    "@exec OR @forbidden OR @slow | count by user",
    "uri:/exec/ | count",
    "ua:\"kubectl v1\" OR message:\"is forbidden: user\"",
    "-ip:* | count",
    "code:(4xx AND NOT 404) | count by code",
    "latency:1s OR latency>=2.5",
    "extra.nothing:* OR request.spec.template.spec.containers.name:a | count",
    "response.spec.replicas>=2.5 | table id, code",
    "name>db name<web | count by name",
    "| sort -groups, ip | head 7 | table id, groups, ip",
    "| table time, latency, code | where latency > 1s | timeline 15m",
];

/// Events from the oracle's generator (a fixed seed).
fn events(n: usize) -> Vec<Value> {
    let mut runner = TestRunner::deterministic();
    let strategy = kaq_oracle::arb::event();
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("an event").current()).collect()
}

fn random_queries(n: usize) -> Vec<String> {
    let mut runner = TestRunner::deterministic();
    let strategy = kaq_oracle::arb::query();
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("a query").current()).collect()
}

fn python() -> Option<String> {
    match std::env::var("KAQ_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            skip("KAQ_PYTHON is not set (run `export KAQ_PYTHON=$(scripts/pyenv.sh | tail -n1)`)");
            None
        }
    }
}

/// The cases: each query's SQL and kaq's answer over `log`. Queries the dialect cannot express
/// are counted and left out (their error must name the dialect).
fn manifest(queries: &[String], log: &Path, from: &str, dialect: &str, extra: &[&str]) -> (Vec<Value>, usize) {
    let mut cases = Vec::new();
    let mut refused = 0;
    for q in queries {
        for all in [false, true] {
            let mut args = vec!["sql", "--dialect", dialect, "--from", from];
            args.extend_from_slice(extra);
            if all {
                args.push("--all-stages");
            }
            args.extend(["--", q.as_str()]);
            let o = run(&args);
            if o.status.code() == Some(2) && stderr(&o).contains(&format!("not expressible in {dialect} SQL")) {
                refused += 1;
                continue;
            }
            assert!(o.status.success(), "kaq sql {q:?}: {}", stderr(&o));
            let sql = String::from_utf8(o.stdout).unwrap();
            let mut args = vec!["query", "--format", "json", "-q"];
            if all {
                args.push("--all-stages");
            }
            args.extend(["--", q.as_str(), log.to_str().unwrap()]);
            let o = run(&args);
            assert!(o.status.success(), "kaq query {q:?}: {}", stderr(&o));
            let expected: Vec<Value> = String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON lines"))
                .collect();
            cases.push(json!({"query": q, "all_stages": all, "sql": sql, "expected": expected}));
        }
    }
    (cases, refused)
}

fn diff(py: &str, engine: &str, cases: &[Value], dir: &Path) -> String {
    let path = dir.join(format!("{engine}-cases.json"));
    std::fs::write(&path, serde_json::to_vec(cases).unwrap()).unwrap();
    let script = repo().join("tests/python/sql_diff.py");
    let o = Command::new(py).arg(&script).arg(engine).arg(&path).output().expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{engine} differs from kaq query:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn write_log(dir: &Path, events: &[Value]) -> std::path::PathBuf {
    let log = dir.join("audit.log");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&log, text).unwrap();
    log
}

#[test]
fn duckdb_answers_as_kaq_query_does() {
    let Some(py) = python() else { return };
    let dir = tmp();
    let log = write_log(dir.path(), &events(400));
    let pq = dir.path().join("audit.parquet");
    assert!(convert(&log, &pq, &["-q"]).status.success());
    let mut queries: Vec<String> = EXAMPLES.iter().chain(MORE).map(|s| s.to_string()).collect();
    queries.extend(random_queries(150));
    // kaq query over the same Parquet file: whole events come in its (time) order.
    let (cases, refused) = manifest(&queries, &pq, pq.to_str().unwrap(), "duckdb", &[]);
    assert_eq!(refused, 0, "DuckDB expresses every query");
    let out = diff(&py, "duckdb", &cases, dir.path());
    let answered = cases.iter().filter(|c| c["expected"].as_array().is_some_and(|r| !r.is_empty())).count();
    eprintln!("{out}{answered} of the cases have rows");
    assert!(answered * 2 > cases.len(), "most queries find something");
    assert!(out.contains(&format!("{} passed, 0 failed", cases.len())), "{out}");
}

#[test]
fn refusals_name_the_construct_and_the_dialect() {
    let o = run(&["sql", "request.spec.replicas>2", "--dialect", "trino", "--from", "audit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`request.spec.replicas` (a path into a JSON body): not expressible in trino SQL"),
        "{}",
        stderr(&o)
    );
    let o = run(&["sql", "ip:2001:db8::/32", "--dialect", "duckdb"]);
    assert!(stderr(&o).contains("an IPv6 CIDR block"), "{}", stderr(&o));
    let o = run(&["sql", "| table request.kind", "--dialect", "duckdb"]);
    assert!(stderr(&o).contains("`request.kind` as a column of `table`"), "{}", stderr(&o));
    let o = run(&["sql", "verb:get", "--dialect", "trino", "--from", "out/audit.parquet"]);
    assert!(stderr(&o).contains("trino reads tables"), "{}", stderr(&o));
    let o = run(&["sql", "verb:get", "--dialect", "oracle"]);
    assert!(!o.status.success());
    let o = run(&["sql", "verb:", "--dialect", "duckdb"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn since_and_until_prune_hive_partitions() {
    let dir = tmp();
    let day = dir.path().join("archive/date=2026-11-20/hour=05");
    std::fs::create_dir_all(&day).unwrap();
    let from = dir.path().join("archive");
    let o = run(&[
        "sql",
        "verb:get",
        "--dialect",
        "duckdb",
        "--from",
        from.to_str().unwrap(),
        "--since",
        "2026-11-20T05:30:00Z",
        "--until",
        "2026-11-21T02:00:00Z",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sql = String::from_utf8(o.stdout).unwrap();
    assert!(sql.contains("hive_partitioning = true"), "{sql}");
    assert!(sql.contains(r#"CAST("date" AS VARCHAR) >= '2026-11-20'"#), "{sql}");
    assert!(sql.contains(r#"CAST("hour" AS INT) >= 5"#), "{sql}");
    assert!(sql.contains(r#"CAST("date" AS VARCHAR) <= '2026-11-21'"#), "{sql}");
    // The until bound is exclusive: 02:00 itself is not in, so the last hour is 01.
    assert!(sql.contains(r#"CAST("hour" AS INT) <= 1"#), "{sql}");
    let o = run(&[
        "sql",
        "verb:get",
        "--dialect",
        "spark",
        "--from",
        "audit",
        "--partitioned-by",
        "day",
        "--since",
        "2026-11-20",
    ]);
    let sql = String::from_utf8(o.stdout).unwrap();
    assert!(sql.contains("CAST(`date` AS STRING) >= '2026-11-20'") && !sql.contains("hour"), "{sql}");
}

/// The same events spread over three days (each auditID's records moved together, so requests
/// keep their stages).
fn over_days(events: Vec<Value>) -> Vec<Value> {
    let mut ids: Vec<String> = Vec::new();
    events
        .into_iter()
        .map(|mut e| {
            let id = e["auditID"].as_str().unwrap_or("").to_string();
            let i = ids.iter().position(|x| *x == id).unwrap_or_else(|| {
                ids.push(id);
                ids.len() - 1
            });
            let shift = (i % 3) as i64 * 86_400_000_000;
            for k in ["requestReceivedTimestamp", "stageTimestamp"] {
                if let Some(t) = e[k].as_str().and_then(kaq_schema::time::parse_rfc3339) {
                    e[k] = json!(kaq_schema::time::format_micros(t.micros + shift));
                }
            }
            e
        })
        .collect()
}

fn has_spark(py: &str) -> bool {
    if Command::new("java").arg("-version").output().is_err() {
        skip("java is not installed (.ci/run installs openjdk-17-jre-headless)");
        return false;
    }
    let ok = Command::new(py).args(["-c", "import pyspark"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        skip("pyspark is not installed in KAQ_PYTHON's environment (.ci/run installs it)");
    }
    ok
}

#[test]
fn spark_answers_as_kaq_query_does_over_a_hive_archive() {
    let Some(py) = python() else { return };
    if !has_spark(&py) {
        return;
    }
    let dir = tmp();
    let log = write_log(dir.path(), &over_days(events(400)));
    let pq = dir.path().join("audit.parquet");
    assert!(convert(&log, &pq, &["-q"]).status.success());
    let hive = dir.path().join("archive");
    let o =
        run(&["convert", log.to_str().unwrap(), "--out-dir", hive.to_str().unwrap(), "--partition-by", "hour", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&hive).unwrap().count(), 3, "three days");
    // Spark takes seconds a statement: the PRODUCT.md examples, the other forms, and as many
    // random queries as KAQ_SPARK_QUERIES says (8).
    let n = std::env::var("KAQ_SPARK_QUERIES").ok().and_then(|n| n.parse().ok()).unwrap_or(8);
    let mut queries: Vec<String> = EXAMPLES.iter().chain(MORE).map(|s| s.to_string()).collect();
    queries.extend(random_queries(n));
    let (cases, refused) = manifest(&queries, &pq, hive.to_str().unwrap(), "spark", &[]);
    let out = diff(&py, "spark", &cases, dir.path());
    eprintln!("{out}");
    assert_eq!(refused, 0, "Spark expresses every query");
    assert!(out.contains(&format!("{} passed, 0 failed", cases.len())), "{out}");
}

#[test]
fn trino_statements_parse_as_trino() {
    let Some(py) = python() else { return };
    let ok = Command::new(&py).args(["-c", "import sqlglot"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        skip("sqlglot is not installed in KAQ_PYTHON's environment (.ci/run installs it)");
        return;
    }
    let mut queries: Vec<String> = EXAMPLES.iter().chain(MORE).map(|s| s.to_string()).collect();
    queries.extend(random_queries(150));
    let mut statements = Vec::new();
    for q in &queries {
        for all in [false, true] {
            let mut args = vec!["sql", "--dialect", "trino", "--from", "hive.audit.events", "--partitioned-by", "hour"];
            if all {
                args.push("--all-stages");
            }
            args.extend(["--since", "2026-11-19", "--", q.as_str()]);
            let o = run(&args);
            if o.status.code() == Some(2) && stderr(&o).contains("not expressible in trino SQL") {
                continue;
            }
            assert!(o.status.success(), "kaq sql {q:?}: {}", stderr(&o));
            statements.push(json!({"query": q, "sql": String::from_utf8(o.stdout).unwrap()}));
        }
    }
    assert!(statements.len() > queries.len(), "most queries translate");
    let dir = tmp();
    let path = dir.path().join("trino.json");
    std::fs::write(&path, serde_json::to_vec(&statements).unwrap()).unwrap();
    let o = Command::new(&py).arg(repo().join("tests/python/sql_parse.py")).arg("trino").arg(&path).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("{} passed, 0 failed", statements.len())),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn duckdb_answers_as_kaq_query_does_over_a_hive_archive() {
    let Some(py) = python() else { return };
    let dir = tmp();
    let log = write_log(dir.path(), &over_days(events(400)));
    let pq = dir.path().join("audit.parquet");
    assert!(convert(&log, &pq, &["-q"]).status.success());
    let hive = dir.path().join("archive");
    let o =
        run(&["convert", log.to_str().unwrap(), "--out-dir", hive.to_str().unwrap(), "--partition-by", "hour", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut queries: Vec<String> = EXAMPLES.iter().chain(MORE).map(|s| s.to_string()).collect();
    // Time bounds that prune partitions: within a day, across days, and from the search.
    queries.extend(
        [
            "time>=2026-11-20T05:30:00Z time<2026-11-22T04:15:00Z | count by verb",
            "time:2026-11-21 | timeline 1h",
            "time>2026-11-21T05 | count by verb",
        ]
        .map(String::from),
    );
    queries.extend(random_queries(40));
    let (cases, refused) = manifest(&queries, &pq, hive.to_str().unwrap(), "duckdb", &[]);
    assert_eq!(refused, 0);
    let out = diff(&py, "duckdb", &cases, dir.path());
    eprintln!("{out}");
    assert!(out.contains(&format!("{} passed, 0 failed", cases.len())), "{out}");
}
