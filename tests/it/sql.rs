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

// ---- kaq detect --sql ----

/// Rules at the edges of each kind (tests/rules/detect-sql-edges.toml).
fn edge_rules() -> String {
    repo().join("tests/rules/detect-sql-edges.toml").to_str().unwrap().to_string()
}

/// The statements of `kaq detect --sql` split by their `-- rule:` lines: (rule, SQL) for each
/// translated rule, and the refusal lines.
fn rule_statements(out: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for chunk in out.split("-- rule: ").skip(1) {
        let (head, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let id = head.split([' ', ':']).next().unwrap().to_string();
        if head.contains(": not translated: ") {
            refused.push(head.to_string());
        } else {
            assert!(head.ends_with(')'), "a header `ID (kind, severity)`: {head}");
            done.push((id, body.trim().to_string()));
        }
    }
    (done, refused)
}

/// `kaq detect --format json` over `data` and `kaq detect --sql` for `dialect` over `from`, with
/// the same rule arguments; the manifest tests/python/detect_sql_diff.py reads.
fn detect_manifest(data: &Path, dialect: &str, from: &str, rule_args: &[&str]) -> (Value, Vec<String>) {
    let mut args = vec!["detect", "--format", "json", "--max-evidence", "10000000", "--no-user-rules", "-q"];
    args.extend_from_slice(rule_args);
    args.push(data.to_str().unwrap());
    let o = run(&args);
    assert!(matches!(o.status.code(), Some(0 | 4)), "kaq detect: {}", stderr(&o));
    let expected: Vec<Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    let mut args = vec!["detect", "--sql", "--dialect", dialect, "--from", from, "--no-user-rules"];
    args.extend_from_slice(rule_args);
    let o = run(&args);
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    let (done, refused) = rule_statements(&out);
    assert_eq!(o.status.code(), Some(if refused.is_empty() { 0 } else { 2 }), "{}", stderr(&o));
    let statements: Vec<Value> = done.iter().map(|(r, s)| json!({"rule": r, "sql": s})).collect();
    (json!({"statements": statements, "expected": expected}), refused)
}

fn detect_diff(py: &str, engine: &str, manifest: &Value, dir: &Path) -> String {
    let path = dir.join(format!("{engine}-detect.json"));
    std::fs::write(&path, serde_json::to_vec(manifest).unwrap()).unwrap();
    let o = Command::new(py)
        .arg(repo().join("tests/python/detect_sql_diff.py"))
        .arg(engine)
        .arg(&path)
        .output()
        .expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{engine} differs from kaq detect:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Every alert kind fires in `expected` (so that the comparison is not of empty sets).
fn assert_every_kind_fires(manifest: &Value) {
    let kinds: std::collections::BTreeSet<&str> =
        manifest["expected"].as_array().unwrap().iter().filter_map(|a| a["kind"].as_str()).collect();
    for k in ["single", "threshold", "first_seen", "spike", "sequence"] {
        assert!(kinds.contains(k), "no {k} alert fired: {kinds:?}");
    }
}

#[test]
fn detect_sql_on_duckdb_gives_kaq_detects_alerts() {
    let Some(py) = python() else { return };
    let dir = tmp();
    let log = dir.path().join("audit.log");
    if gen_audit(&["--events", "8000", "--seed", "5", "--hours", "4", "--extra-incidents", "--stages"], &log).is_none()
    {
        return;
    }
    let pq = dir.path().join("audit.parquet");
    assert!(convert(&log, &pq, &["-q"]).status.success());
    let rules = edge_rules();
    let from = pq.to_str().unwrap();
    // The whole pack and the edge rules, over all the data and between two instants (windows and
    // first-seen history reach back before --since).
    for bounds in [&[][..], &["--since", "2026-11-20T01:10:00Z", "--until", "2026-11-20T03:20:00Z"][..]] {
        let mut args = vec!["--rules", rules.as_str()];
        args.extend_from_slice(bounds);
        let (manifest, refused) = detect_manifest(&pq, "duckdb", from, &args);
        assert!(refused.is_empty(), "DuckDB expresses every rule: {refused:?}");
        assert_every_kind_fires(&manifest);
        let n = manifest["statements"].as_array().unwrap().len();
        let out = detect_diff(&py, "duckdb", &manifest, dir.path());
        eprintln!("{}", out.lines().rev().take(2).collect::<Vec<_>>().join("\n"));
        assert!(out.contains(&format!("{n} passed, 0 failed")), "{out}");
    }
}

#[test]
fn detect_sql_on_spark_gives_kaq_detects_alerts_over_a_hive_archive() {
    let Some(py) = python() else { return };
    if !has_spark(&py) {
        return;
    }
    let dir = tmp();
    let log = dir.path().join("audit.log");
    if gen_audit(&["--events", "3000", "--seed", "9", "--hours", "3", "--extra-incidents"], &log).is_none() {
        return;
    }
    let pq = dir.path().join("audit.parquet");
    assert!(convert(&log, &pq, &["-q"]).status.success());
    let hive = dir.path().join("archive");
    let o =
        run(&["convert", log.to_str().unwrap(), "--out-dir", hive.to_str().unwrap(), "--partition-by", "hour", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Spark takes seconds a statement: the edge rules and one built-in rule of each kind.
    let rules = edge_rules();
    let mut args = vec!["--no-builtin", "--rules", rules.as_str()];
    let (manifest, refused) = detect_manifest(&pq, "spark", hive.to_str().unwrap(), &args);
    assert!(refused.is_empty(), "{refused:?}");
    assert_every_kind_fires(&manifest);
    let n = manifest["statements"].as_array().unwrap().len();
    let out = detect_diff(&py, "spark", &manifest, dir.path());
    eprintln!("{out}");
    assert!(out.contains(&format!("{n} passed, 0 failed")), "{out}");
    args.clear();
    for r in ["unauthorized-burst", "secret-burst", "secret-read-new-identity", "request-spike", "rbac-then-workload"] {
        args.extend(["--rule", r]);
    }
    let (manifest, refused) = detect_manifest(&pq, "spark", hive.to_str().unwrap(), &args);
    assert!(refused.is_empty(), "{refused:?}");
    let out = detect_diff(&py, "spark", &manifest, dir.path());
    eprintln!("{out}");
    assert!(out.contains("5 passed, 0 failed"), "{out}");
}

#[test]
fn detect_sql_trino_statements_parse_as_trino() {
    let Some(py) = python() else { return };
    let ok = Command::new(&py).args(["-c", "import sqlglot"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        skip("sqlglot is not installed in KAQ_PYTHON's environment (.ci/run installs it)");
        return;
    }
    let rules = edge_rules();
    let o = run(&[
        "detect",
        "--sql",
        "--dialect",
        "trino",
        "--from",
        "hive.audit.events",
        "--partitioned-by",
        "hour",
        "--since",
        "2026-11-20T01:00:00Z",
        "--no-user-rules",
        "--rules",
        rules.as_str(),
    ]);
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    let (done, refused) = rule_statements(&out);
    // Trino has no JSON paths in kaq sql: the rules reading request bodies are refused by name.
    assert_eq!(o.status.code(), Some(2));
    assert!(!refused.is_empty());
    for r in &refused {
        assert!(r.contains("(a path into a JSON body): not expressible in trino SQL"), "{r}");
    }
    for r in &refused {
        let id = r.split([' ', ':']).next().unwrap();
        assert!(stderr(&o).contains(&format!("kaq: error: rule `{id}`: ")), "{}", stderr(&o));
    }
    assert!(done.len() >= 35, "{} translated", done.len());
    let statements: Vec<Value> = done.iter().map(|(r, s)| json!({"query": r, "sql": s})).collect();
    let dir = tmp();
    let path = dir.path().join("trino-detect.json");
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
fn detect_sql_refusals_and_usage() {
    // --sql needs a dialect, and reads no INPUT.
    let o = run(&["detect", "--sql", "--no-user-rules"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--dialect"), "{}", stderr(&o));
    let o = run(&["detect", "--sql", "--dialect", "duckdb", "--no-user-rules", "audit.log"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--sql reads no INPUT"), "{}", stderr(&o));
    // A spike whose baseline could not be decayed exactly is refused, naming the rule.
    let dir = tmp();
    let f = dir.path().join("r.toml");
    std::fs::write(
        &f,
        "[[rule]]\nid = \"slow-ewma\"\nseverity = \"low\"\nquery = \"*\"\ngroup_by = [\"user\"]\nspike = { alpha = 0.0001 }\n",
    )
    .unwrap();
    let o = run(&[
        "detect",
        "--sql",
        "--dialect",
        "duckdb",
        "--no-builtin",
        "--no-user-rules",
        "--rules",
        f.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(out.starts_with("-- rule: slow-ewma (spike, low): not translated: spike: alpha 0.0001"), "{out}");
    assert!(stderr(&o).contains("kaq: error: rule `slow-ewma`: spike: alpha 0.0001"), "{}", stderr(&o));
    // Each statement starts with its rule's header, and its rows are named as documented.
    let o =
        run(&["detect", "--sql", "--dialect", "duckdb", "--no-user-rules", "--rule", "secret-burst", "--from", "t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(out.starts_with("-- rule: secret-burst (threshold, high)\nWITH\n"), "{out}");
    assert!(
        out.contains(r#"AS "user", _al._n AS "count", '5m' AS "window", make_timestamp(_al._first) AS "first""#),
        "{out}"
    );
    assert!(out.contains("RANGE BETWEEN 299999999 PRECEDING AND CURRENT ROW"), "{out}");
}

/// The oracle's events (whole seconds over two hours, many at one instant and many exactly a
/// window or a suppression apart, requests with several stages, reused auditIDs): the edge rules
/// and the pack on DuckDB, against `kaq detect`.
#[test]
fn detect_sql_on_duckdb_at_the_edges_of_windows() {
    let Some(py) = python() else { return };
    let dir = tmp();
    let log = write_log(dir.path(), &events(3000));
    let pq = dir.path().join("audit.parquet");
    assert!(convert(&log, &pq, &["-q"]).status.success());
    let rules = edge_rules();
    let from = pq.to_str().unwrap();
    for bounds in [&[][..], &["--since", "2026-11-20T04:40:00Z", "--until", "2026-11-20T05:30:00Z"][..]] {
        let mut args = vec!["--rules", rules.as_str()];
        args.extend_from_slice(bounds);
        let (manifest, refused) = detect_manifest(&pq, "duckdb", from, &args);
        assert!(refused.is_empty(), "{refused:?}");
        let n = manifest["statements"].as_array().unwrap().len();
        let out = detect_diff(&py, "duckdb", &manifest, dir.path());
        eprintln!("{}", out.lines().rev().take(2).collect::<Vec<_>>().join("\n"));
        assert!(out.contains(&format!("{n} passed, 0 failed")), "{out}");
        let fired = manifest["expected"].as_array().unwrap().len();
        assert!(fired > 100, "{fired} alerts");
    }
}
