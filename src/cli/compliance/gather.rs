//! What the report asks the log, and the report made of the answers. Every number shown is a
//! cell of a query's answer (or, for alerts, of the alerts file), never a sum kaq made apart.

use kaq_query::Val;
use kaq_schema::time::format_micros;

use super::alerts::Alerts;
use super::engine::Runner;
use super::model::{Cell, Chart, Grid, Report, Section, Tone};

/// What the report covers, decided before running.
pub struct Scope {
    pub title: String,
    /// Rows of each evidence table, at most.
    pub evidence: usize,
    /// Rows of each "by user" and "by namespace" table, at most.
    pub top: usize,
    pub alerts: Option<Alerts>,
    pub meta: Vec<(String, String)>,
    /// Arguments after the query in each printed `kaq query` command.
    pub rerun: String,
    pub since: Option<i64>,
    pub until: i64,
}

/// An area of access the report follows.
struct Area {
    id: &'static str,
    title: &'static str,
    about: &'static str,
    base: &'static str,
    /// Extra columns of its evidence tables.
    extra: &'static [&'static str],
    /// Whether its evidence is split into changes and reads.
    split: bool,
}

const AREAS: &[Area] = &[
    Area {
        id: "secrets",
        title: "Secrets",
        about: "Who read, listed, watched, changed or deleted Secrets.",
        base: "resource:secrets",
        extra: &[],
        split: true,
    },
    Area {
        id: "configmaps",
        title: "ConfigMaps",
        about: "Who read, listed, watched, changed or deleted ConfigMaps.",
        base: "resource:configmaps",
        extra: &[],
        split: true,
    },
    Area {
        id: "rbac",
        title: "RBAC objects",
        about: "Who read, listed, changed or deleted Roles, ClusterRoles, RoleBindings and ClusterRoleBindings.",
        base: "resource:(roles OR clusterroles OR rolebindings OR clusterrolebindings)",
        extra: &["resource"],
        split: true,
    },
    Area {
        id: "sessions",
        title: "Exec, attach and port-forward into pods",
        about: "Who opened a shell or command in a pod (exec), attached to one, or forwarded its ports.",
        base: "resource:pods subresource:(exec OR attach OR portforward)",
        extra: &["subresource", "exec_command"],
        split: false,
    },
];

const CHANGES: &str = "verb:(create OR update OR patch OR delete OR deletecollection)";
const READS: &str = "verb:(get OR list OR watch)";

/// Timeline intervals, smallest first, with their length.
const INTERVALS: &[(&str, i64)] = &[
    ("1m", 60),
    ("5m", 300),
    ("10m", 600),
    ("30m", 1800),
    ("1h", 3600),
    ("3h", 3 * 3600),
    ("6h", 6 * 3600),
    ("12h", 12 * 3600),
    ("1d", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
];
/// Buckets a timeline may have at most (the interval grows past it).
const MAX_BUCKETS: i64 = 72;

pub fn gather(run: &mut Runner, scope: Scope) -> anyhow::Result<Report> {
    let mut notes = Vec::new();
    let all =
        run.run("| stats count, min(time) as first, max(time) as last", "requests in the period, first and last")?;
    // Identities as the areas count them: one row per user name, requests without one a row too.
    let who = run.run("| count by user", "requests by identity")?;
    let events = all.num(0, "count");
    let (first, last) = match (all.val(0, "first"), all.val(0, "last")) {
        (Val::Time(a), Val::Time(b)) => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    if events == 0 {
        notes
            .push("No request in the period: every table below is empty. Check --since/--until and the source.".into());
    }
    // One interval for every timeline, so that their bars line up.
    let (lo, hi) = (first.or(scope.since).unwrap_or(scope.until), last.unwrap_or(scope.until));
    let span = (hi - lo).max(0) / 1_000_000;
    let &(interval, secs) =
        INTERVALS.iter().find(|(_, s)| span / s < MAX_BUCKETS).unwrap_or(INTERVALS.last().expect("intervals"));
    let iv = secs * 1_000_000;
    let axis = (lo.div_euclid(iv) * iv, hi.div_euclid(iv) * iv + iv);

    let mut summary_rows = vec![vec![
        Cell::Text("All requests".into()),
        Cell::Num(events, Some("n-all-total".into())),
        Cell::Num(who.rows.len() as u64, Some("n-all-users".into())),
        Cell::Text("—".into()),
    ]];
    let mut summary_q = vec![all.q, who.q];
    let mut sections = Vec::new();
    let (mut bars, mut bar_q) = (Vec::new(), Vec::new());
    for area in AREAS {
        let (section, row, qs) = access(run, area, &scope, interval, iv, axis)?;
        // The area's total: the second cell of its row, from its first query (`… | count`).
        if let (Some(Cell::Num(n, _)), Some(q)) = (row.get(1), qs.first()) {
            bars.push((area.title.to_string(), *n, Tone::Plain));
            bar_q.push(*q);
        }
        summary_rows.push(row);
        summary_q.extend(qs);
        sections.push(section);
    }
    let au3 = super::checks::au3(run, events, all.q)?;
    let (cis, checks) = super::checks::cis(run, &scope)?;
    let (alerts, alert_status) = alerts_section(&scope);
    let mut status_rows = checks;
    status_rows.push(au3.1);
    status_rows.push(alert_status);
    sections.push(au3.0);
    sections.push(cis);
    sections.push(alerts);

    let summary = vec![
        Grid {
            id: "summary-figures".into(),
            title: "Key figures".into(),
            header: vec!["Area".into(), "Requests".into(), "Identities".into(), "Changes and deletions".into()],
            rows: summary_rows,
            queries: summary_q,
            note: Some(
                "Each request counts once, at its latest stage, as `kaq query` counts it. Identities are user names \
                 (one row of the area's \"by identity\" table each)."
                    .into(),
            ),
            empty: String::new(),
        },
        Grid {
            id: "summary-checks".into(),
            title: "Checks".into(),
            header: vec!["Check".into(), "Outcome".into(), "Why".into()],
            rows: status_rows,
            queries: Vec::new(),
            note: None,
            empty: String::new(),
        },
    ];
    if let Some(n) = run.rejected.filter(|&n| n > 0) {
        notes.push(if n == 1 {
            "1 line of the inputs is not an audit event and is not counted (`kaq query` shows it on stderr).".into()
        } else {
            format!(
                "{} lines of the inputs are not audit events and are not counted (`kaq query` shows them on stderr).",
                super::model::thousands(n)
            )
        });
    }
    let reused = run.run("id_reused:true | count", "requests whose auditID another request also carries")?;
    if reused.count() > 0 {
        notes.push(format!(
            "{} in the period {} an auditID that another request also carries (Q{}): clients can choose \
             auditIDs (the Audit-ID header), and merged logs repeat them. Each is still counted as the request \
             it is; `id_reused:true` lists them.",
            requests(reused.count()),
            if reused.count() == 1 { "carries" } else { "carry" },
            reused.q
        ));
    }
    let queries = run
        .queries
        .iter()
        .map(|r| super::model::Query {
            purpose: r.purpose.clone(),
            command: format!("kaq query {}{}", shell_quote(&r.text), scope.rerun),
        })
        .collect();
    let summary_chart = Some(Chart::Bars { items: bars, max: 0, q: bar_q, what: "requests per area".into() });
    Ok(Report { title: scope.title, meta: scope.meta, notes, summary_chart, summary, sections, queries })
}

/// One area's section, its row of the summary and the queries that row's numbers come from.
fn access(
    run: &mut Runner,
    area: &Area,
    scope: &Scope,
    interval: &str,
    iv: i64,
    axis: (i64, i64),
) -> anyhow::Result<(Section, Vec<Cell>, Vec<usize>)> {
    let id = area.id;
    let base = area.base;
    let what = area.title;
    let total = run.run(&format!("{base} | count"), &format!("{what}: requests"))?;
    let n = total.count();
    let verbs = run.run(&format!("{base} | count by verb"), &format!("{what}: requests by verb"))?;
    let kinds = run.run(&format!("{base} | count by user_kind"), &format!("{what}: requests by kind of identity"))?;
    let users = run.run(
        &format!(
            "{base} | stats count, dc(name) as objects, dc(ns) as namespaces, min(time) as first, max(time) as last by user | sort -count, user"
        ),
        &format!("{what}: by identity"),
    )?;
    let user_verbs = run.run(&format!("{base} | count by user, verb"), &format!("{what}: by identity and verb"))?;
    let spaces = run.run(
        &format!("{base} | stats count, dc(user) as identities, dc(name) as objects by ns | sort -count, ns"),
        &format!("{what}: by namespace"),
    )?;
    let line = run.run(&format!("{base} | timeline {interval}"), &format!("{what}: requests per {interval}"))?;
    let changes = if area.split {
        Some(run.run(&format!("{base} {CHANGES} | count"), &format!("{what}: changes and deletions"))?)
    } else {
        None
    };

    let mut paras = vec![area.about.to_string()];
    if n == 0 {
        paras.push("No such request in the period.".into());
    }
    let buckets: Vec<(i64, u64)> = (0..line.rows.len())
        .filter_map(|i| match line.val(i, "time") {
            Val::Time(t) => Some((*t, line.num(i, "count"))),
            _ => None,
        })
        .collect();
    let chart = Chart::Timeline {
        buckets,
        interval_us: iv,
        interval: interval.to_string(),
        lo: axis.0,
        hi: axis.1,
        q: line.q,
        what: format!("{what}: requests per {interval}"),
    };

    // By verb, with what the verb does to the object.
    let verb_rows = (0..verbs.rows.len())
        .map(|i| {
            let v = verbs.text(i, "verb");
            vec![
                Cell::Mono(v.clone()),
                Cell::Text(action(&v).into()),
                Cell::Num(verbs.num(i, "count"), Some(format!("n-{id}-verb-{}", id_part(&v)))),
            ]
        })
        .collect();
    let kind_rows = (0..kinds.rows.len())
        .map(|i| {
            let k = kinds.text(i, "user_kind");
            vec![
                Cell::Text(or_absent(&k)),
                Cell::Num(kinds.num(i, "count"), Some(format!("n-{id}-kind-{}", id_part(&k)))),
            ]
        })
        .collect();

    // By identity, with a column per verb (from `count by user, verb`).
    let mut verb_cols: Vec<String> = (0..verbs.rows.len()).map(|i| verbs.text(i, "verb")).collect();
    verb_cols.sort_by_key(|v| (verb_rank(v), v.clone()));
    let mut header = vec!["Identity".to_string(), "Requests".to_string()];
    header.extend(verb_cols.iter().map(|v| if v.is_empty() { "(no verb)".to_string() } else { v.clone() }));
    header.extend(["Objects", "Namespaces", "First", "Last"].map(String::from));
    let shown = users.rows.len().min(scope.top);
    let user_rows = (0..shown)
        .map(|i| {
            let u = users.text(i, "user");
            let mut row = vec![
                Cell::Text(if u.is_empty() { "(no user: unauthenticated)".into() } else { u.clone() }),
                Cell::Num(users.num(i, "count"), Some(format!("n-{id}-user-{}", id_part(&u)))),
            ];
            for v in &verb_cols {
                let c = (0..user_verbs.rows.len())
                    .find(|&j| user_verbs.text(j, "user") == u && &user_verbs.text(j, "verb") == v)
                    .map_or(0, |j| user_verbs.num(j, "count"));
                row.push(Cell::Num(c, None));
            }
            row.push(Cell::Num(users.num(i, "objects"), None));
            row.push(Cell::Num(users.num(i, "namespaces"), None));
            row.push(Cell::Mono(to_second(users.val(i, "first"))));
            row.push(Cell::Mono(to_second(users.val(i, "last"))));
            row
        })
        .collect();
    let shown_ns = spaces.rows.len().min(scope.top);
    let ns_rows = (0..shown_ns)
        .map(|i| {
            let ns = spaces.text(i, "ns");
            vec![
                Cell::Text(if ns.is_empty() { "(cluster-wide)".into() } else { ns.clone() }),
                Cell::Num(spaces.num(i, "count"), Some(format!("n-{id}-ns-{}", id_part(&ns)))),
                Cell::Num(spaces.num(i, "identities"), None),
                Cell::Num(spaces.num(i, "objects"), None),
            ]
        })
        .collect();

    let mut grids = vec![
        Grid {
            id: format!("{id}-verbs"),
            title: "By verb".into(),
            header: vec!["Verb".into(), "Action".into(), "Requests".into()],
            rows: verb_rows,
            queries: vec![verbs.q],
            note: None,
            empty: "No request.".into(),
        },
        Grid {
            id: format!("{id}-users"),
            title: "By identity".into(),
            header,
            rows: user_rows,
            queries: vec![users.q, user_verbs.q],
            note: more(users.rows.len(), shown, "identities"),
            empty: "No request.".into(),
        },
        Grid {
            id: format!("{id}-kinds"),
            title: "By kind of identity".into(),
            header: vec!["Kind".into(), "Requests".into()],
            rows: kind_rows,
            queries: vec![kinds.q],
            note: None,
            empty: "No request.".into(),
        },
        Grid {
            id: format!("{id}-namespaces"),
            title: "By namespace".into(),
            header: vec!["Namespace".into(), "Requests".into(), "Identities".into(), "Objects".into()],
            rows: ns_rows,
            queries: vec![spaces.q],
            note: more(spaces.rows.len(), shown_ns, "namespaces"),
            empty: "No request.".into(),
        },
    ];
    let mut columns = vec!["time", "id", "user", "verb"];
    columns.extend(area.extra);
    columns.extend(["ns", "name", "code", "client_ip"]);
    match &changes {
        Some(c) => {
            let reads = run.run(&format!("{base} {READS} | count"), &format!("{what}: reads, lists and watches"))?;
            let cols = &columns;
            let cap = scope.evidence;
            let changed = format!("{base} {CHANGES}");
            grids.push(evidence_grid(run, id, what, "Changes and deletions", &changed, c.count(), c.q, cols, cap)?);
            let read = format!("{base} {READS}");
            grids.push(evidence_grid(
                run,
                id,
                what,
                "Reads, lists and watches",
                &read,
                reads.count(),
                reads.q,
                cols,
                cap,
            )?);
        }
        None => grids.push(evidence_grid(run, id, what, "Requests", base, n, total.q, &columns, scope.evidence)?),
    }

    let mut row = vec![
        Cell::Text(what.to_string()),
        Cell::Num(n, Some(format!("n-{id}-total"))),
        Cell::Num(users.rows.len() as u64, Some(format!("n-{id}-users"))),
    ];
    let mut qs = vec![total.q, users.q];
    match &changes {
        Some(c) => {
            row.push(Cell::Num(c.count(), Some(format!("n-{id}-changes"))));
            qs.push(c.q);
        }
        None => row.push(Cell::Text("—".into())),
    }
    let section = Section { id: id.to_string(), title: what.to_string(), paras, chart: Some(chart), grids };
    Ok((section, row, qs))
}

/// An evidence table: the first `cap` requests of `search` by time, with their auditIDs.
#[allow(clippy::too_many_arguments)]
pub(super) fn evidence_grid(
    run: &mut Runner,
    id: &str,
    what: &str,
    title: &str,
    search: &str,
    total: u64,
    total_q: usize,
    columns: &[&str],
    cap: usize,
) -> anyhow::Result<Grid> {
    let ev = run.run(
        &format!("{search} | sort time | table {} | head {cap}", columns.join(", ")),
        &format!("{what}: {} (evidence)", title.to_lowercase()),
    )?;
    let rows = (0..ev.rows.len())
        .map(|i| {
            columns
                .iter()
                .map(|c| match *c {
                    "time" | "id" => Cell::Mono(ev.text(i, c)),
                    "code" => match ev.val(i, c) {
                        Val::Int(n) => Cell::Num((*n).max(0) as u64, None),
                        _ => Cell::Text(String::new()),
                    },
                    _ => Cell::Text(ev.text(i, c)),
                })
                .collect()
        })
        .collect();
    let shown = ev.rows.len() as u64;
    let note = if total > shown {
        Some(format!(
            "The first {} of {} requests by time; {} more are not shown (Q{} lists them without `| head {cap}`).",
            super::model::thousands(shown),
            super::model::thousands(total),
            super::model::thousands(total - shown),
            ev.q
        ))
    } else {
        None
    };
    let slug = title.split_whitespace().next().unwrap_or("rows").to_lowercase().replace(',', "");
    Ok(Grid {
        id: format!("{id}-evidence-{slug}"),
        title: format!("Evidence: {}", title.to_lowercase()),
        header: columns.iter().map(|c| column_title(c).to_string()).collect(),
        rows,
        queries: vec![ev.q, total_q],
        note,
        empty: "No request.".into(),
    })
}

fn alerts_section(scope: &Scope) -> (Section, Vec<Cell>) {
    super::alerts::section(scope.alerts.as_ref(), scope.since, scope.until, scope.evidence)
}

/// What a verb does to an object.
fn action(verb: &str) -> &'static str {
    match verb {
        "get" => "read",
        "list" => "list",
        "watch" => "watch",
        "create" | "update" | "patch" => "change",
        "delete" | "deletecollection" => "delete",
        _ => "other",
    }
}

fn verb_rank(verb: &str) -> u8 {
    match action(verb) {
        "read" => 0,
        "list" => 1,
        "watch" => 2,
        "change" => 3,
        "delete" => 4,
        _ => 5,
    }
}

fn column_title(c: &str) -> &str {
    match c {
        "time" => "Time",
        "id" => "auditID",
        "user" => "Identity",
        "verb" => "Verb",
        "ns" => "Namespace",
        "name" => "Name",
        "code" => "Code",
        "client_ip" => "Source",
        "resource" => "Resource",
        "subresource" => "Subresource",
        "exec_command" => "Command",
        "level" => "Level",
        other => other,
    }
}

pub(super) fn or_absent(s: &str) -> String {
    if s.is_empty() { "(none)".into() } else { s.to_string() }
}

/// A time to the second (`2026-11-20 05:02:24Z`), for tables where the evidence gives the exact one.
fn to_second(v: &Val<'_>) -> String {
    match v {
        Val::Time(t) => {
            let s = format_micros(*t);
            format!("{} {}Z", &s[..10], &s[11..19])
        }
        other => other.to_display(),
    }
}

fn more(all: usize, shown: usize, what: &str) -> Option<String> {
    (all > shown).then(|| format!("The first {shown} of {all} {what}; the query lists them all."))
}

/// A value made fit for an element id: whitespace and control characters as `_`.
pub(super) fn id_part(s: &str) -> String {
    if s.is_empty() {
        return "none".into();
    }
    s.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect()
}

/// `text` quoted for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A time for people: RFC 3339.
pub fn when(t: i64) -> String {
    format_micros(t)
}

/// `1 request`, `2,345 requests`.
pub(super) fn requests(n: u64) -> String {
    format!("{} request{}", super::model::thousands(n), if n == 1 { "" } else { "s" })
}
