//! The demo log: deterministic, every line an event kaq reads, and every incident found by its
//! query exactly as often as it says — by kaq-query and by the reference evaluator alike.

use std::time::Instant;

use kaq_demo::{Demo, DemoOptions, INCIDENT_EVENTS, SPAN_HOURS, generate, suggested};
use kaq_oracle::Answer;
use kaq_query::{Options, compile, output, run_on_text};
use serde_json::Value;

fn text(demo: &Demo) -> &str {
    std::str::from_utf8(&demo.log).expect("the log is UTF-8")
}

/// Runs `query` through kaq-query and through the oracle over `log`, asserts both give the same
/// rows, and returns them.
fn run_both(query: &str, log: &str, events: &[Value], now_us: i64, all_stages: bool) -> Vec<Value> {
    let opts = Options { now_us, all_stages, ..Options::default() };
    let plan = compile(query, &opts).unwrap_or_else(|e| panic!("`{query}` does not compile: {}", e[0].render(query)));
    let fast: Vec<Value> = run_on_text(&plan, log)
        .iter()
        .map(|r| serde_json::from_str(&output::json_line(r, plan.output_columns())).expect("output is JSON"))
        .collect();
    let want: Vec<Value> = match kaq_oracle::run(query, events, &kaq_oracle::Options { now_us, all_stages }) {
        Answer::Events(e) => e,
        Answer::Rows(rows) => rows.into_iter().map(|r| Value::Object(r.into_iter().collect())).collect(),
    };
    assert_eq!(fast.len(), want.len(), "`{query}`: kaq-query and the oracle count differently");
    for (f, w) in fast.iter().zip(&want) {
        assert!(kaq_oracle::same_json(f, w), "`{query}`: rows differ\nkaq-query: {f}\noracle:    {w}");
    }
    fast
}

/// Runs `query` through kaq-query alone.
fn run_fast(query: &str, log: &str, all_stages: bool) -> Vec<Value> {
    let opts = Options { all_stages, ..Options::default() };
    let plan = compile(query, &opts).unwrap_or_else(|e| panic!("`{query}` does not compile: {}", e[0].render(query)));
    run_on_text(&plan, log)
        .iter()
        .map(|r| serde_json::from_str(&output::json_line(r, plan.output_columns())).expect("output is JSON"))
        .collect()
}

fn now_us(opts: &DemoOptions) -> i64 {
    opts.end.timestamp_micros()
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() {
    let opts = DemoOptions { events: 5_000, ..DemoOptions::default() };
    let a = generate(&opts);
    let b = generate(&opts);
    assert!(a.log == b.log, "same options, different logs");
    assert_eq!(a.incidents, b.incidents);
    let c = generate(&DemoOptions { seed: 43, ..opts.clone() });
    assert!(a.log != c.log, "seeds 42 and 43 gave the same log");
    // Another end moves every timestamp by as much, and changes nothing else.
    let d = generate(&DemoOptions { end: opts.end + chrono::Duration::hours(1), ..opts.clone() });
    for (x, y) in text(&a).lines().zip(text(&d).lines()) {
        let (mut x, mut y): (Value, Value) = (serde_json::from_str(x).unwrap(), serde_json::from_str(y).unwrap());
        for k in ["requestReceivedTimestamp", "stageTimestamp"] {
            let t = |v: &Value| kaq_schema::time::parse_rfc3339(v[k].as_str().unwrap()).unwrap().micros;
            assert_eq!(t(&y) - t(&x), 3_600_000_000);
        }
        for v in [&mut x, &mut y] {
            let o = v.as_object_mut().unwrap();
            for k in ["requestReceivedTimestamp", "stageTimestamp", "requestObject", "responseObject"] {
                o.remove(k);
            }
        }
        assert_eq!(x, y);
    }
}

#[test]
fn the_log_has_exactly_the_events_asked_for_within_the_span() {
    for (seed, events) in [(42, 20_000), (7, 3_000), (1, INCIDENT_EVENTS + 1), (2, INCIDENT_EVENTS), (3, 0)] {
        let opts = DemoOptions { seed, events, ..DemoOptions::default() };
        let demo = generate(&opts);
        let log = text(&demo);
        assert!(log.ends_with('\n') || log.is_empty());
        let n = log.lines().count();
        assert_eq!(n, events.max(INCIDENT_EVENTS), "seed {seed}: lines");
        let end = now_us(&opts);
        let start = end - SPAN_HOURS * 3_600_000_000;
        let mut last = i64::MIN;
        for line in log.lines() {
            let ev: Value = serde_json::from_str(line).unwrap();
            let t = |k: &str| {
                kaq_schema::time::parse_rfc3339(ev[k].as_str().unwrap_or_else(|| panic!("no {k}: {line}")))
                    .unwrap()
                    .micros
            };
            let (received, stage) = (t("requestReceivedTimestamp"), t("stageTimestamp"));
            assert!(start <= received && received <= stage && stage <= end, "{line}");
            assert!(stage >= last, "lines are in stageTimestamp order: {line}");
            last = stage;
        }
    }
}

#[test]
fn every_line_decodes_with_kaqs_reader_and_none_is_rejected() {
    let opts = DemoOptions::default();
    let demo = generate(&opts);
    let log = text(&demo);
    let lines = log.lines().count();
    for line in log.lines() {
        if let Err(e) = kaq_schema::decode_event(line, &kaq_schema::DecodeOptions::default()) {
            panic!("rejected: {e}\n{line}");
        }
    }
    // And through the reader `kaq query`, `convert` and `ingest` use, from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo-audit.log");
    std::fs::write(&path, &demo.log).unwrap();
    struct Count;
    impl kaq_input::EventHandler for Count {
        type State = u64;
        type Output = u64;
        fn start(&self) -> u64 {
            0
        }
        fn event(&self, n: &mut u64, _: &kaq_schema::Event<'_>) {
            *n += 1;
        }
        fn finish(&self, n: u64) -> u64 {
            n
        }
    }
    let mut seen = 0;
    let mut rejects = Vec::new();
    let report =
        kaq_input::read(&[kaq_input::Source::File(path)], &kaq_input::ReadOptions::default(), &Count, |chunk| {
            seen += chunk.output.unwrap_or(0);
            rejects.extend(chunk.rejects);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    assert!(rejects.is_empty(), "rejected: {:?}", rejects.first().map(|r| &r.reason));
    assert_eq!((report.counts.events, report.counts.rejected, report.counts.blank), (lines as u64, 0, 0));
    assert_eq!(seen, lines as u64);
    assert!(report.read_errors.is_empty());
}

#[test]
fn each_incident_query_finds_it_exactly_and_agrees_with_the_oracle() {
    // The counts hold whatever the seed and size: the background never matches these queries.
    for (seed, events) in [(42, 20_000), (7, 6_000), (99, 0)] {
        let opts = DemoOptions { seed, events, ..DemoOptions::default() };
        let demo = generate(&opts);
        let log = text(&demo);
        let events = kaq_oracle::events_of(log);
        assert_eq!(demo.incidents.len(), 7);
        for inc in &demo.incidents {
            let rows = run_both(&inc.query, log, &events, now_us(&opts), false);
            assert_eq!(rows.len(), inc.expected_rows, "seed {seed}: incident {} (`{}`): {rows:?}", inc.name, inc.query);
        }
    }
}

#[test]
fn the_incidents_are_who_and_what_the_docs_say() {
    // (The oracle agrees on these queries: each_incident_query_finds_it_exactly_and_agrees_with_the_oracle.)
    let opts = DemoOptions::default();
    let demo = generate(&opts);
    let log = text(&demo);
    let rows = |name: &str| {
        let inc = demo.incidents.iter().find(|i| i.name == name).unwrap();
        run_fast(&inc.query, log, false)
    };
    let col = |rows: &[Value], c: &str| rows.iter().map(|r| r[c].clone()).collect::<Vec<_>>();
    let deletes = rows("prod-deletes");
    assert_eq!(col(&deletes, "user"), ["carol@example.com", "carol@example.com"]);
    assert_eq!(col(&deletes, "resource"), ["deployments", "secrets"]);
    assert_eq!(col(&deletes, "name"), ["payments-api", "payments-db-credentials"]);
    let burst = rows("401-burst");
    assert_eq!(burst, [serde_json::json!({"ip": "203.0.113.45", "count": 180})]);
    let anon = rows("anonymous-allowed");
    assert_eq!(col(&anon, "ip"), [serde_json::json!(["203.0.113.45"]), serde_json::json!(["203.0.113.45"])]);
    let exec = rows("prod-exec");
    assert_eq!(col(&exec, "user"), ["bob@example.com"]);
    assert_eq!(col(&exec, "exec_command"), ["/bin/sh -c env | grep -i db_"]);
    let secrets = rows("prod-secret-reads");
    assert!(secrets.iter().all(|r| r["user"] == "mallory@contractor.example.net"));
    assert_eq!(col(&secrets, "verb"), ["list", "get", "get", "get"]);
    let binding = rows("cluster-admin-binding");
    assert_eq!(col(&binding, "user"), ["alice@example.com"]);
    assert_eq!(col(&binding, "request.subjects.name"), [serde_json::json!(["dave@example.com"])]);
    let pod = rows("privileged-pod");
    assert_eq!(col(&pod, "user"), ["dave@example.com"]);
    assert_eq!(col(&pod, "host_path"), [serde_json::json!(["/"])]);
}

#[test]
fn the_suggested_queries_compile_return_rows_and_agree_with_the_oracle() {
    let opts = DemoOptions::default();
    let demo = generate(&opts);
    let log = text(&demo);
    let events = kaq_oracle::events_of(log);
    let [deletes, unauthorized, exec] = suggested();
    assert_eq!(deletes.0, "Who deleted things in prod?");
    let rows = run_both(deletes.1, log, &events, now_us(&opts), false);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let rows = run_both(unauthorized.1, log, &events, now_us(&opts), false);
    assert_eq!(rows[0], serde_json::json!({"ip": "203.0.113.45", "count": 180}));
    assert!(rows.len() > 1 && rows[1..].iter().all(|r| r["count"].as_u64().unwrap() < 20), "{rows:?}");
    let rows = run_both(exec.1, log, &events, now_us(&opts), false);
    assert!(rows.len() >= 2, "the two incident execs and people's execs in dev and staging: {rows:?}");
    assert!(rows.iter().any(|r| r["exec_command"] == "chroot /host /bin/bash"));
}

#[test]
fn the_log_looks_like_a_cluster() {
    // kaq-query alone here: the oracle checks the incidents and the suggested queries.
    let opts = DemoOptions { events: 8_000, ..DemoOptions::default() };
    let demo = generate(&opts);
    let log = text(&demo);
    let kinds = run_fast("| count by user_kind", log, false);
    let kinds: Vec<&str> = kinds.iter().filter_map(|r| r["user_kind"].as_str()).collect();
    assert_eq!(kinds, ["anonymous", "human", "node", "serviceaccount", "system"]);
    let verbs = run_fast("| count by verb", log, false);
    let verbs: Vec<&str> = verbs.iter().filter_map(|r| r["verb"].as_str()).collect();
    for v in ["create", "delete", "get", "list", "patch", "update", "watch"] {
        assert!(verbs.contains(&v), "{v} in {verbs:?}");
    }
    let levels = run_fast("| count by level", log, false);
    let levels: Vec<&str> = levels.iter().filter_map(|r| r["level"].as_str()).collect();
    assert_eq!(levels, ["Metadata", "Request", "RequestResponse"]);
    // Stages: counting every record gives more than counting each request once.
    let requests = run_fast("| count", log, false)[0]["count"].as_u64().unwrap();
    let records = run_fast("| count", log, true)[0]["count"].as_u64().unwrap();
    assert_eq!(records, log.lines().count() as u64);
    assert!(requests * 5 < records * 4, "{requests} requests in {records} records");
    let stages = run_fast("stage:* | count by stage", log, false);
    let stages: Vec<&str> = stages.iter().filter_map(|r| r["stage"].as_str()).collect();
    assert_eq!(stages, ["RequestReceived", "ResponseComplete", "ResponseStarted"]);
    // Namespaces, codes and slow calls a demo can ask about.
    let ns = run_fast("| count by ns", log, false);
    let ns: Vec<&str> = ns.iter().filter_map(|r| r["ns"].as_str()).collect();
    for n in ["kube-system", "default", "monitoring", "prod-payments", "prod-checkout", "staging-payments", "dev-bob"] {
        assert!(ns.contains(&n), "{n} in {ns:?}");
    }
    let codes = run_fast("| count by code", log, false);
    let codes: Vec<u64> = codes.iter().filter_map(|r| r["code"].as_u64()).collect();
    for c in [101, 200, 201, 401, 403, 404, 409] {
        assert!(codes.contains(&c), "{c} in {codes:?}");
    }
    let slow = run_fast("latency>1s -verb:watch | count", log, false)[0]["count"].as_u64().unwrap();
    assert!(slow > 10, "{slow} slow calls");
    // The built-in named queries all find something.
    for m in [
        "@prod-deletes",
        "@secret-reads",
        "@exec",
        "@unauthorized",
        "@forbidden",
        "@anonymous-allowed",
        "@privileged-pods",
        "@cluster-admin-bindings",
        "@token-requests",
        "@slow",
    ] {
        let n = run_fast(&format!("{m} | count"), log, false)[0]["count"].as_u64().unwrap();
        assert!(n > 0, "{m} finds nothing");
    }
}

#[test]
fn twenty_thousand_events_generate_quickly() {
    let t = Instant::now();
    let demo = generate(&DemoOptions::default());
    let took = t.elapsed();
    println!(
        "generated {} events, {} bytes, in {took:?}",
        demo.log.iter().filter(|&&b| b == b'\n').count(),
        demo.log.len()
    );
    // Well under a second on a laptop, even unoptimised; generous here for busy CI machines.
    assert!(took.as_secs_f64() < 5.0, "{took:?}");
}
