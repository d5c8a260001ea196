//! `kaq report compliance` (issue 15, item 4): its numbers are `kaq query`'s, over files and over
//! a store; the commands it prints re-run as printed; values from the log never become markup;
//! alerts come from a JSON-lines file; and the page renders in a real headless browser with the
//! same numbers in its DOM.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::*;

/// The text of the element whose id is `id` (the report's numbers carry ids), without its
/// thousands separators.
fn number(html: &str, id: &str) -> Option<u64> {
    let at = html.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    let text: String = html[at..].chars().take_while(|&c| c != '<').filter(|&c| c != ',').collect();
    text.trim().parse().ok()
}

/// `kaq query QUERY ARGS… --format json` as JSON rows.
fn query(q: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["query", q, "--format", "json", "-q"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "`{q}`: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn count(q: &str, args: &[&str]) -> u64 {
    query(&format!("{q} | count"), args)[0]["count"].as_u64().unwrap()
}

/// `kaq report compliance ARGS…`, which must succeed; the report's text.
fn report(args: &[&str], out: &Path) -> String {
    let mut all = vec!["report", "compliance", "-o", out.to_str().unwrap(), "-q"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "kaq report compliance {args:?}: {}", stderr(&o));
    std::fs::read_to_string(out).unwrap()
}

/// A gen-audit log with its extra incidents (1,500 background events), or `None` (printed why).
fn gen_log(dir: &Path) -> Option<PathBuf> {
    let log = dir.join("audit.log");
    gen_audit(&["--events", "1500", "--seed", "11", "--extra-incidents"], &log)?;
    Some(log)
}

/// Every number the report shows for an area, a check and AU-3 equals the matching `kaq query`
/// over the same source and period (`src`: the source and period arguments of both).
fn assert_numbers_match(html: &str, src: &[&str]) {
    assert_eq!(number(html, "n-all-total"), Some(count("", src)));
    let users = query("| count by user", src).len() as u64;
    assert_eq!(number(html, "n-all-users"), Some(users), "identities");
    let areas = [
        ("secrets", "resource:secrets"),
        ("configmaps", "resource:configmaps"),
        ("rbac", "resource:(roles OR clusterroles OR rolebindings OR clusterrolebindings)"),
        ("sessions", "resource:pods subresource:(exec OR attach OR portforward)"),
    ];
    let mut nonzero = 0;
    for (id, base) in areas {
        let total = count(base, src);
        nonzero += usize::from(total > 0);
        assert_eq!(number(html, &format!("n-{id}-total")), Some(total), "{id} total");
        let by_user = query(&format!("{base} | count by user"), src);
        assert_eq!(number(html, &format!("n-{id}-users")), Some(by_user.len() as u64), "{id} identities");
        for row in &by_user {
            let user = row["user"].as_str().unwrap_or("none");
            let user = if user.is_empty() { "none" } else { user };
            // The table shows the 25 busiest identities: those shown must agree.
            if let Some(n) = number(html, &format!("n-{id}-user-{user}")) {
                assert_eq!(n, row["count"].as_u64().unwrap(), "{id} by {user}");
            }
        }
        for row in query(&format!("{base} | count by verb"), src) {
            let verb = row["verb"].as_str().unwrap();
            assert_eq!(number(html, &format!("n-{id}-verb-{verb}")), row["count"].as_u64(), "{id} {verb}");
        }
        if id != "sessions" {
            let changes = count(&format!("{base} verb:(create OR update OR patch OR delete OR deletecollection)"), src);
            assert_eq!(number(html, &format!("n-{id}-changes")), Some(changes), "{id} changes");
        }
    }
    assert!(nonzero >= 3, "the log has too few areas to test");
    for (key, field) in
        [("what", "verb"), ("when", "time"), ("source", "ip"), ("outcome", "code"), ("identity", "user")]
    {
        assert_eq!(number(html, &format!("n-au3-{key}")), Some(count(&format!("{field}:*"), src)), "AU-3 {key}");
    }
    for row in query("resource:(secrets OR configmaps OR tokenreviews) | count by resource, level", src) {
        let id = format!("n-cis-level-{}-{}", row["resource"].as_str().unwrap(), row["level"].as_str().unwrap());
        assert_eq!(number(html, &id), row["count"].as_u64(), "{id}");
    }
    let bodies = count("resource:secrets (request:* OR response:*)", src);
    assert_eq!(number(html, "n-cis-secret-bodies"), Some(bodies));
    // gen-audit's forged Audit-ID: the note gives the count of `id_reused:true`.
    let reused = count("id_reused:true", src);
    let said = format!("{} request{} in the period carr", thousands(reused), if reused == 1 { "" } else { "s" });
    assert_eq!(html.contains(&said), reused > 0, "{said}");
}

#[test]
fn report_numbers_equal_kaq_query_over_files_and_a_store() {
    let dir = tmp();
    let Some(log) = gen_log(dir.path()) else { return };
    let log_s = log.to_str().unwrap();
    // Over the files, the whole log: until a fixed time, so `kaq query` sees the same period.
    let until = "2026-12-01T00:00:00Z";
    let html = report(&[log_s, "--since", "all", "--until", until], &dir.path().join("files.html"));
    assert_numbers_match(&html, &["--until", until, log_s]);

    // Over a store, a part of the day.
    let store = dir.path().join("store");
    let o = run(&["ingest", log_s, "--store", store.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (since, until) = ("2026-11-20T04:00:00Z", "2026-11-20T18:00:00Z");
    let st = store.to_str().unwrap();
    let part = report(&["--store", st, "--since", since, "--until", until], &dir.path().join("store.html"));
    assert_numbers_match(&part, &["--since", since, "--until", until, "--store", st]);
    let all = count("", &["--store", st]);
    assert!(number(&part, "n-all-total").unwrap() < all, "the period must leave events out");
}

#[test]
fn printed_commands_rerun_as_printed_and_markdown_has_the_same_numbers() {
    let dir = tmp();
    let Some(log) = gen_log(dir.path()) else { return };
    let store = dir.path().join("store");
    assert!(run(&["ingest", log.to_str().unwrap(), "--store", store.to_str().unwrap(), "-q"]).status.success());
    let st = store.to_str().unwrap();
    let md = report(&["--store", st, "--since", "2026-11-20", "--until", "2026-11-21"], &dir.path().join("r.md"));
    let html = report(&["--store", st, "--since", "2026-11-20", "--until", "2026-11-21"], &dir.path().join("r.html"));
    let secrets = count("resource:secrets", &["--store", st, "--since", "2026-11-20", "--until", "2026-11-21"]);
    assert!(secrets > 0);
    assert!(md.contains(&format!("| Secrets | {} |", thousands(secrets))), "{md}");
    assert_eq!(number(&html, "n-secrets-total"), Some(secrets));

    // The queries section: one shell command per query, run here as printed (by sh, with kaq on
    // the PATH) for the first ones and the secrets count.
    let commands: Vec<&str> = md.split("```sh\n").skip(1).map(|b| b.split('\n').next().unwrap()).collect();
    assert!(commands.len() > 40, "{} commands", commands.len());
    assert!(commands.iter().all(|c| c.starts_with("kaq query ")), "{commands:?}");
    assert_eq!(md.matches("**Q").count(), commands.len());
    let secrets_cmd =
        commands.iter().find(|c| c.starts_with("kaq query 'resource:secrets | count' ")).expect("secrets count");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kaq"));
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    for cmd in commands.iter().take(3).chain([secrets_cmd]) {
        let o =
            Command::new("sh").arg("-c").arg(format!("{cmd} --format json -q")).env("PATH", &path).output().unwrap();
        assert!(o.status.success(), "`{cmd}`: {}", stderr(&o));
        let first: serde_json::Value = serde_json::from_slice(o.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
        if cmd == secrets_cmd {
            assert_eq!(first["count"].as_u64(), Some(secrets), "`{cmd}`");
        }
        if cmd.starts_with("kaq query '| stats count") {
            assert_eq!(first["count"].as_u64(), number(&html, "n-all-total"), "`{cmd}`");
        }
    }
}

/// A Secret read, an exec and a RoleBinding change whose user, names, namespace and command
/// carry markup, Markdown and terminal escapes.
fn hostile_log(dir: &Path) -> PathBuf {
    let user = "<script>alert(1)</script>\x1b[31mred";
    let ev = |i: u32, verb: &str, resource: &str, sub: Option<&str>, name: &str, uri: &str| {
        let mut o = json!({"resource": resource, "namespace": "prod|*x*|", "name": name});
        if let Some(s) = sub {
            o["subresource"] = json!(s);
        }
        json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":format!("a\"><b>{i}"),
            "stage":"ResponseComplete","verb":verb,"requestURI":uri,"user":{"username":user,"groups":["g</td>"]},
            "sourceIPs":["10.0.0.1"],"userAgent":"ua<i>","objectRef":o,"responseStatus":{"code":200},
            "requestReceivedTimestamp":format!("2026-11-20T05:00:0{i}.000000Z"),
            "stageTimestamp":format!("2026-11-20T05:00:0{i}.100000Z")})
        .to_string()
    };
    let lines = [
        ev(1, "get", "secrets", None, "\"><img src=x onerror=alert(1)>", "/api/v1/namespaces/prod/secrets/x"),
        ev(
            2,
            "create",
            "pods",
            Some("exec"),
            "[link](javascript:alert(1))",
            "/api/v1/namespaces/prod/pods/p/exec?command=%3C%2Fcode%3E&command=%60id%60",
        ),
        ev(
            3,
            "patch",
            "rolebindings",
            None,
            "```\n# heading\n",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings/r",
        ),
    ];
    let p = dir.join("hostile.log");
    // And a line that is not an audit event.
    std::fs::write(&p, lines.join("\n") + "\n{\"kind\":\"Event\",<i>not json\n").unwrap();
    p
}

/// The `|` of a Markdown table row that separate cells: those not escaped by a backslash (itself
/// not escaped).
fn cell_bars(line: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' => escaped = !escaped,
            '|' if !escaped => n += 1,
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    n
}

/// Raw control characters (a terminal's escape sequences) left in a text.
fn has_raw_controls(text: &str) -> bool {
    text.chars().any(|c| matches!(c, '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}'))
}

#[test]
fn values_from_the_log_and_the_alerts_file_never_become_markup() {
    let dir = tmp();
    let log = hostile_log(dir.path());
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(
        &alerts,
        json!({"rule":"<script>x</script>","severity":"high","group":{"user":"<b>u</b>"},"count":1,
            "first":"2026-11-20T05:00:01Z","last":"2026-11-20T05:00:01Z","ids":["<i>id</i>"]})
        .to_string()
            + "\n",
    )
    .unwrap();
    let args = [log.to_str().unwrap(), "--since", "all", "--alerts", alerts.to_str().unwrap(), "--title", "<h1>t</h1>"];
    let html = report(&args, &dir.path().join("r.html"));
    // The page's own markup has no script, img, b or i element: any in it came from the log.
    for tag in ["<script", "<img", "<b>", "<i>", "<h1>t", "</td>\"", "\"><b>"] {
        assert!(!html.contains(tag), "{tag} in the page");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31mred"), "the user, escaped and visible");
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "the alert's rule");
    assert!(!has_raw_controls(&html));
    assert!(html.contains("1 line of the inputs is not an audit event and is not counted"), "the reject said");
    assert_eq!(number(&html, "n-all-total"), Some(3));
    assert_eq!(number(&html, "n-secrets-total"), Some(1));
    assert_eq!(number(&html, "n-sessions-total"), Some(1));

    let md = report(&args, &dir.path().join("r.md"));
    for tag in ["<script", "<img", "<b>", "<i>", "](javascript", "\n# heading", "\n```\n# "] {
        assert!(!md.contains(tag), "{tag:?} in the Markdown");
    }
    assert!(md.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt;\\\\x1b\\[31mred"), "the user, escaped");
    assert!(!has_raw_controls(&md));
    // Every table row stays one row: the namespace's `|` is escaped.
    // Every row of every table has its header's number of cells: no value split a row.
    let mut header_cells = None;
    for line in md.lines() {
        if !line.starts_with('|') {
            header_cells = None;
            continue;
        }
        let cells = cell_bars(line);
        assert_eq!(*header_cells.get_or_insert(cells), cells, "a row split: {line}");
    }
    assert!(md.contains("prod\\|\\*x\\*\\|"), "the namespace, escaped");
}

#[test]
fn alerts_are_read_from_a_file_and_their_absence_is_said() {
    let dir = tmp();
    let log = hostile_log(dir.path());
    let l = log.to_str().unwrap();
    let none = report(&[l, "--since", "all"], &dir.path().join("none.html"));
    assert!(none.contains("No alerts file was given"), "absence said");

    let alerts = dir.path().join("alerts.jsonl");
    let lines = [
        json!({"rule":"exec","severity":"medium","group":{"user":"alice"},"count":3,"first":"2026-11-20T05:00:01Z",
            "last":"2026-11-20T05:00:02Z","ids":["i1","i2","i3","i4","i5","i6","i7"],"window":"5m","extra":{"x":1}}),
        json!({"rule":"secret-burst","severity":"critical","group":"bob","count":12,"first":"2026-11-20T05:00:03Z","last":"2026-11-20T05:00:04Z","ids":["s1"]}),
        json!({"rule":"old","severity":"low","first":"2020-01-01T00:00:00Z","last":"2020-01-01T00:01:00Z"}),
    ];
    let text = lines.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n") + "\n\n";
    std::fs::write(&alerts, text).unwrap();
    let a = alerts.to_str().unwrap();
    let html =
        report(&[l, "--since", "2026-11-01", "--until", "2026-12-01", "--alerts", a], &dir.path().join("a.html"));
    assert!(html.contains("2 alerts in the period; 1 outside it left out"), "counted");
    let table = &html[html.find("id=\"alerts-list\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(table.find("secret-burst").unwrap() < table.find("exec").unwrap(), "critical first");
    assert!(table.contains("i1 i2 i3 i4 i5 and 2 more"), "ids capped");
    assert!(table.contains("user=alice") && !table.contains(">old<"));

    // A bad line is an error naming the file, the line and what is wrong.
    std::fs::write(&alerts, "{\"rule\":\"a\"}\n{\"severity\":\"high\"}\n").unwrap();
    let o = run(&["report", "compliance", l, "--alerts", a, "-o", dir.path().join("x.html").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&format!("{a}:2: an alert needs `rule`")), "{}", stderr(&o));
    std::fs::write(&alerts, "{\"rule\":\"a\",\"count\":\"many\"}\n").unwrap();
    let o = run(&["report", "compliance", l, "--alerts", a, "-o", dir.path().join("x.html").to_str().unwrap()]);
    assert!(stderr(&o).contains(&format!("{a}:1: `count` must be a whole number")), "{}", stderr(&o));
}

#[test]
fn an_empty_period_gives_a_report_that_says_so() {
    let dir = tmp();
    let log = hostile_log(dir.path());
    let args = [log.to_str().unwrap(), "--since", "2030-01-01", "--until", "2030-02-01"];
    let html = report(&args, &dir.path().join("r.html"));
    assert_eq!(number(&html, "n-all-total"), Some(0));
    assert_eq!(number(&html, "n-secrets-total"), Some(0));
    assert!(html.contains("No request in the period"));
    let checks = &html[html.find("id=\"summary-checks\"").unwrap()..];
    let checks = &checks[..checks.find("</table>").unwrap()];
    assert_eq!(checks.matches("Not shown by the log").count(), 5, "{checks}");
    assert!(!checks.contains(">Pass<") && !checks.contains(">Fail<"), "{checks}");
}

#[test]
fn errors_say_what_to_do() {
    let dir = tmp();
    let log = hostile_log(dir.path());
    let l = log.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&[l, "-o", "r.txt"], "name it .html or .md, or give --format html|md"),
        (&["-", "-o", "r.html"], "cannot read them from stdin"),
        (&[l, "--since", "2026-11-21", "--until", "2026-11-20", "-o", "r.html"], "the period is empty"),
        (&[l, "--since", "yesterday", "-o", "r.html"], "--since/--until"),
    ];
    for (args, want) in cases {
        let mut all = vec!["report", "compliance"];
        all.extend_from_slice(args);
        let o = kaq().args(&all).current_dir(dir.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

/// Debian's chromium (or another Chromium) on the PATH, or `None` (printed why).
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output()
            && o.status.success()
        {
            return Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
    }
    skip("no chromium on the PATH (.ci/run installs Debian's): the report is not checked in a browser");
    None
}

/// Runs headless chromium on `page` with `args`; its stdout.
fn headless(chromium: &Path, profile: &Path, page: &Path, args: &[&str]) -> Vec<u8> {
    let o = Command::new("timeout")
        .arg("180")
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "chromium failed: {}", stderr(&o));
    o.stdout
}

#[test]
fn a_headless_browser_renders_the_report_with_the_queries_numbers() {
    let dir = tmp();
    let Some(browser) = chromium() else { return };
    let Some(log) = gen_log(dir.path()) else { return };
    let l = log.to_str().unwrap();
    let page = dir.path().join("report.html");
    let html = report(&[l, "--since", "all", "--until", "2026-12-01"], &page);
    let dom = String::from_utf8(headless(&browser, &dir.path().join("profile"), &page, &["--dump-dom"])).unwrap();
    // The DOM chromium built (not the file's text) holds the sections, the charts and the
    // numbers of the matching queries.
    let src = ["--until", "2026-12-01", l];
    for (id, q) in [
        ("n-all-total", ""),
        ("n-secrets-total", "resource:secrets"),
        ("n-configmaps-total", "resource:configmaps"),
        ("n-sessions-total", "resource:pods subresource:(exec OR attach OR portforward)"),
        ("n-au3-identity", "user:*"),
    ] {
        let want = count(q, &src);
        assert_eq!(number(&dom, id), Some(want), "{id} in the rendered DOM");
    }
    for (user, n) in query("resource:secrets | count by user | sort -count | head 3", &src)
        .iter()
        .map(|r| (r["user"].as_str().unwrap_or("").to_string(), r["count"].as_u64().unwrap()))
    {
        let user = if user.is_empty() { "none".to_string() } else { user };
        assert_eq!(number(&dom, &format!("n-secrets-user-{user}")), Some(n), "{user} in the rendered DOM");
    }
    assert_eq!(
        dom.matches("<svg").count(),
        7,
        "a chart per section (the summary, four areas, AU-3, CIS; no alerts file)"
    );
    assert!(dom.contains("<section id=\"cis\">") && dom.contains("<section id=\"au3\">"));
    assert!(!dom.contains("<script"), "no script");
    assert!(html.len() < 400_000, "{} bytes", html.len());

    // And it paints: a screenshot is a PNG of the page.
    let shot = dir.path().join("shot.png");
    headless(
        &browser,
        &dir.path().join("profile"),
        &page,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1200,1600"],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "{} bytes", png.len());
}
