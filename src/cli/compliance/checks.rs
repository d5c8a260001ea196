//! The checks: what the records carry (NIST SP 800-53 AU-3) and what the log shows of the audit
//! policy's coverage (CIS Kubernetes Benchmark 3.2.2), each from kaq queries.

use super::engine::Runner;
use super::gather::{Scope, evidence_grid, id_part, or_absent, requests};
use super::model::{Cell, Chart, Grid, Section, Status, Tone};

/// NIST SP 800-53 AU-3: what each record must say, and how many records say it.
pub(super) fn au3(run: &mut Runner, events: u64, all_q: usize) -> anyhow::Result<(Section, Vec<Cell>)> {
    const ELEMENTS: &[(&str, &str, &str, &str, bool)] = &[
        ("what", "type of event", "verb", "verb (with the resource or path)", true),
        ("when", "when it occurred", "time", "requestReceivedTimestamp", true),
        ("where", "where it occurred", "uri", "requestURI (API path: group, namespace, resource, name)", true),
        ("source", "source of the event", "ip", "sourceIPs", true),
        ("outcome", "outcome", "code", "responseStatus.code", true),
        ("identity", "identity of the subject", "user", "user.username", true),
        ("source-ua", "source (client program)", "ua", "userAgent", false),
        ("outcome-authz", "outcome (authorization)", "decision", "annotation authorization.k8s.io/decision", false),
    ];
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    let mut qs = vec![all_q];
    let mut worst: Option<(f64, &str)> = None;
    for (key, asks, field, source, core) in ELEMENTS {
        let a = run.run(&format!("{field}:* | count"), &format!("AU-3 {asks}: records carrying {field}"))?;
        let n = a.count();
        qs.push(a.q);
        let pct = if events == 0 { 0.0 } else { n as f64 * 100.0 / events as f64 };
        if *core && events > 0 && worst.is_none_or(|(w, _)| pct < w) {
            worst = Some((pct, asks));
        }
        let tone = if events > 0 && n == events {
            Tone::Good
        } else if n == 0 {
            Tone::Bad
        } else {
            Tone::Warn
        };
        bars.push((format!("{asks} ({field})"), n, tone));
        rows.push(vec![
            Cell::Text(format!("{asks}{}", if *core { "" } else { " — supporting" })),
            Cell::Mono((*field).to_string()),
            Cell::Text((*source).to_string()),
            Cell::Num(n, Some(format!("n-au3-{key}"))),
            Cell::Num(events, None),
            Cell::Pct(pct),
        ]);
    }
    let levels = run.run("| count by level", "records by audit level")?;
    let level_rows = (0..levels.rows.len())
        .map(|i| {
            let l = levels.text(i, "level");
            vec![Cell::Mono(or_absent(&l)), Cell::Num(levels.num(i, "count"), Some(format!("n-level-{}", id_part(&l))))]
        })
        .collect();
    let status = match worst {
        None => (Status::NotShown, "no request in the period".to_string()),
        Some((w, _)) if w >= 100.0 => (Status::Pass, "every request carries all six elements".to_string()),
        Some((w, what)) => (Status::Partial, format!("the least carried element, {what}, is in {w:.2}% of requests")),
    };
    let section = Section {
        id: "au3".into(),
        title: "Record content (NIST SP 800-53 AU-3)".into(),
        paras: vec![
            "AU-3 asks every audit record to say what happened, when, where, from which source, with what outcome, \
             and who did it. Each row counts the requests whose record carries the field (a non-empty value, \
             `FIELD:*`). The audit log does not name the API server that wrote it: \"where\" is the API path."
                .into(),
        ],
        chart: Some(Chart::Bars {
            items: bars,
            max: events,
            q: qs.clone(),
            what: "records carrying each element".into(),
        }),
        grids: vec![
            Grid {
                id: "au3-elements".into(),
                title: "Elements".into(),
                header: ["AU-3 asks", "Field", "Audit event field", "Records", "Of", "Share"]
                    .map(String::from)
                    .to_vec(),
                rows,
                queries: qs,
                note: None,
                empty: String::new(),
            },
            Grid {
                id: "au3-levels".into(),
                title: "Records by audit level".into(),
                header: vec!["Level".into(), "Requests".into()],
                rows: level_rows,
                queries: vec![levels.q],
                note: Some("Metadata records carry no bodies; Request and RequestResponse records carry them.".into()),
                empty: "No request.".into(),
            },
        ],
    };
    let row = vec![Cell::Text("AU-3 record content".into()), Cell::Status(status.0), Cell::Text(status.1)];
    Ok((section, row))
}

/// The checks of CIS Kubernetes Benchmark 3.2.2 that the log itself can show.
pub(super) fn cis(run: &mut Runner, scope: &Scope) -> anyhow::Result<(Section, Vec<Vec<Cell>>)> {
    let mut grids = Vec::new();
    let mut checks = Vec::new();

    // 1. Secrets, ConfigMaps and TokenReviews at Metadata level.
    const SENSITIVE: &str = "resource:(secrets OR configmaps OR tokenreviews)";
    let levels = run
        .run(&format!("{SENSITIVE} | count by resource, level"), "CIS 3.2.2: Secret, ConfigMap, TokenReview levels")?;
    let mut bars = Vec::new();
    let mut body_rows = 0u64;
    let mut level_rows = Vec::new();
    for i in 0..levels.rows.len() {
        let (r, l, c) = (levels.text(i, "resource"), levels.text(i, "level"), levels.num(i, "count"));
        let bodies = matches!(l.as_str(), "Request" | "RequestResponse");
        if bodies {
            body_rows += c;
        }
        bars.push((format!("{r} · {}", or_absent(&l)), c, if bodies { Tone::Bad } else { Tone::Good }));
        level_rows.push(vec![
            Cell::Mono(r.clone()),
            Cell::Mono(or_absent(&l)),
            Cell::Num(c, Some(format!("n-cis-level-{}-{}", id_part(&r), id_part(&l)))),
        ]);
    }
    let seen: Vec<String> = (0..levels.rows.len()).map(|i| levels.text(i, "resource")).collect();
    let missing: Vec<&str> =
        ["secrets", "configmaps", "tokenreviews"].into_iter().filter(|r| !seen.iter().any(|s| s == r)).collect();
    let evidence = evidence_grid(
        run,
        "cis",
        "CIS 3.2.2",
        "Bodies logged",
        &format!("{SENSITIVE} level:(Request OR RequestResponse)"),
        body_rows,
        levels.q,
        &["time", "id", "user", "verb", "resource", "ns", "name", "level"],
        scope.evidence,
    )?;
    let (st, why) = if body_rows > 0 {
        (Status::Fail, format!("{} logged with bodies (Request or RequestResponse level)", requests(body_rows)))
    } else if seen.is_empty() {
        (Status::NotShown, "no Secret, ConfigMap or TokenReview request in the period".to_string())
    } else if missing.is_empty() {
        (Status::Pass, "all logged at Metadata level".to_string())
    } else {
        (Status::Pass, format!("all logged at Metadata level ({} not seen in the period)", missing.join(", ")))
    };
    checks.push((
        "cis-metadata",
        "Secret, ConfigMap and TokenReview requests are logged at Metadata level",
        st,
        why,
        vec![levels.q],
    ));
    grids.push(Grid {
        id: "cis-levels".into(),
        title: "Secret, ConfigMap and TokenReview requests by level".into(),
        header: vec!["Resource".into(), "Level".into(), "Requests".into()],
        rows: level_rows,
        queries: vec![levels.q],
        note: None,
        empty: "No such request in the period.".into(),
    });
    grids.push(evidence);

    // 2. No Secret bodies at all.
    let bodies =
        run.run("resource:secrets (request:* OR response:*) | count", "CIS 3.2.2: Secret records carrying a body")?;
    let nb = bodies.count();
    let (st, why) = if nb > 0 {
        (Status::Fail, format!("{} with a request or response body", requests(nb)))
    } else if !seen.iter().any(|s| s == "secrets") {
        (Status::NotShown, "no Secret request in the period".to_string())
    } else {
        (Status::Pass, "no Secret record carries a body".to_string())
    };
    checks.push(("cis-secret-bodies", "No Secret request or response body is in the log", st, why, vec![bodies.q]));

    // 3. exec, attach, port-forward and proxy are logged.
    let sess = run.run(
        "subresource:(exec OR attach OR portforward OR proxy) | count by resource, subresource, level",
        "CIS 3.2.2: exec, attach, port-forward and proxy requests",
    )?;
    let want = ["pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy"];
    let got: Vec<String> =
        (0..sess.rows.len()).map(|i| format!("{}/{}", sess.text(i, "resource"), sess.text(i, "subresource"))).collect();
    let (seen_w, unseen_w): (Vec<&str>, Vec<&str>) = want.iter().partition(|w| got.iter().any(|g| g == *w));
    let (st, why) = if unseen_w.is_empty() {
        (Status::Pass, "all logged".to_string())
    } else if seen_w.is_empty() {
        (Status::NotShown, format!("none in the period ({}): not made, or not logged", unseen_w.join(", ")))
    } else {
        (Status::Partial, format!("logged: {}; none in the period: {}", seen_w.join(", "), unseen_w.join(", ")))
    };
    checks.push(("cis-sessions", "exec, attach, port-forward and proxy requests are logged", st, why, vec![sess.q]));
    grids.push(Grid {
        id: "cis-sessions".into(),
        title: "exec, attach, port-forward and proxy requests".into(),
        header: vec!["Resource".into(), "Subresource".into(), "Level".into(), "Requests".into()],
        rows: (0..sess.rows.len())
            .map(|i| {
                let (r, s) = (sess.text(i, "resource"), sess.text(i, "subresource"));
                vec![
                    Cell::Mono(r.clone()),
                    Cell::Mono(s.clone()),
                    Cell::Mono(or_absent(&sess.text(i, "level"))),
                    Cell::Num(
                        sess.num(i, "count"),
                        Some(format!("n-cis-{}-{}-{}", id_part(&r), id_part(&s), id_part(&sess.text(i, "level")))),
                    ),
                ]
            })
            .collect(),
        queries: vec![sess.q],
        note: None,
        empty: "No such request in the period.".into(),
    });

    // 4. Changes to Pods and Deployments are logged.
    let mods = run.run(
        "resource:(pods OR deployments) verb:(create OR update OR patch OR delete OR deletecollection) -subresource:* | count by resource, verb",
        "CIS 3.2.2: Pod and Deployment changes",
    )?;
    let res: Vec<String> = (0..mods.rows.len()).map(|i| mods.text(i, "resource")).collect();
    let (st, why) = match (res.iter().any(|r| r == "pods"), res.iter().any(|r| r == "deployments")) {
        (true, true) => (Status::Pass, "both logged".to_string()),
        (false, false) => (Status::NotShown, "no Pod or Deployment change in the period".to_string()),
        (p, _) => (Status::Partial, format!("no {} change in the period", if p { "Deployment" } else { "Pod" })),
    };
    checks.push(("cis-changes", "Changes to Pods and Deployments are logged", st, why, vec![mods.q]));
    grids.push(Grid {
        id: "cis-changes".into(),
        title: "Pod and Deployment changes".into(),
        header: vec!["Resource".into(), "Verb".into(), "Requests".into()],
        rows: (0..mods.rows.len())
            .map(|i| {
                let (r, v) = (mods.text(i, "resource"), mods.text(i, "verb"));
                vec![
                    Cell::Mono(r.clone()),
                    Cell::Mono(v.clone()),
                    Cell::Num(mods.num(i, "count"), Some(format!("n-cis-{}-{}", id_part(&r), id_part(&v)))),
                ]
            })
            .collect(),
        queries: vec![mods.q],
        note: None,
        empty: "No such request in the period.".into(),
    });

    let check_grid = Grid {
        id: "cis-checks".into(),
        title: "Checks".into(),
        header: vec!["Check".into(), "Outcome".into(), "Why".into(), "Query".into()],
        rows: checks
            .iter()
            .map(|(_, what, st, why, q)| {
                vec![
                    Cell::Text((*what).into()),
                    Cell::Status(*st),
                    Cell::Text(why.clone()),
                    Cell::Mono(q.iter().map(|q| format!("Q{q}")).collect::<Vec<_>>().join(", ")),
                ]
            })
            .collect(),
        queries: checks.iter().flat_map(|c| c.4.clone()).collect(),
        note: None,
        empty: String::new(),
    };
    grids.insert(0, check_grid);
    grids.insert(
        3,
        Grid {
            id: "cis-secret-bodies".into(),
            title: "Secret records carrying a body".into(),
            header: vec!["Records".into()],
            rows: vec![vec![Cell::Num(nb, Some("n-cis-secret-bodies".into()))]],
            queries: vec![bodies.q],
            note: None,
            empty: String::new(),
        },
    );
    let section = Section {
        id: "cis".into(),
        title: "Audit policy coverage (CIS Kubernetes Benchmark 3.2.2)".into(),
        paras: vec![
            "CIS 3.2.2 asks the audit policy to cover key security concerns: Secret, ConfigMap and TokenReview \
             requests at Metadata level only (their bodies hold secrets), changes to Pods and Deployments, and \
             the use of pods/exec, pods/portforward, pods/proxy and services/proxy. The policy file itself is not \
             in the log; these checks judge what the log shows. \"Not shown\" means the period holds no such \
             request: none was made, or the policy drops them — read the policy to tell."
                .into(),
        ],
        chart: Some(Chart::Bars {
            items: bars,
            max: 0,
            q: vec![levels.q],
            what: "Secret, ConfigMap and TokenReview requests by level".into(),
        }),
        grids,
    };
    let rows = checks
        .into_iter()
        .map(|(_, what, st, why, _)| vec![Cell::Text(format!("CIS 3.2.2: {what}")), Cell::Status(st), Cell::Text(why)])
        .collect();
    Ok((section, rows))
}
