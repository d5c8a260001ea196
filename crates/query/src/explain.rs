//! `--explain`: a plan in words — the fields read, the filter, the prefilter, the stage rule and
//! each step with the columns it makes.

use crate::plan::{Plan, Pred, Step, Test};

/// The plan in words: what is read, how it is filtered, what follows.
pub fn explain(plan: &Plan) -> String {
    let mut s = String::new();
    s.push_str(&format!("query:     {}\n", plan.canonical));
    let fields: Vec<String> = plan
        .slots
        .iter()
        .map(|c| format!("{} ({}{})", c.name, c.ty.name(), if c.list { " list" } else { "" }))
        .collect();
    s.push_str(&format!("fields:    {}\n", fields.join(", ")));
    s.push_str(&format!("filter:    {}\n", pred_text(&plan.filter, plan)));
    if plan.prefilter.is_empty() {
        s.push_str("prefilter: none (every line is decoded)\n");
    } else {
        let alts: Vec<String> = plan.prefilter[0].iter().map(|a| format!("{:?}", String::from_utf8_lossy(a))).collect();
        s.push_str(&format!("prefilter: lines without {} are skipped before decoding\n", alts.join(" or ")));
    }
    s.push_str(if plan.all_stages {
        "stages:    every stage of each request\n"
    } else {
        "stages:    the latest stage of each request (RequestReceived < ResponseStarted < ResponseComplete < Panic)\n"
    });
    for (i, (step, cols)) in plan.steps.iter().enumerate() {
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        let what = match step {
            Step::Where(p) => format!("where {}", pred_text(p, plan)),
            Step::Table(_) => "table".into(),
            Step::Sort(_) => "sort (stable, nulls last)".into(),
            Step::Head(n) => format!("head {n}"),
            Step::Dedup(_) => "dedup (first row of each combination)".into(),
            Step::Aggregate { .. } => "aggregate (groups ordered by key; list values count once per element)".into(),
            Step::Top { rare: false, limit, .. } => format!("top {limit} by count"),
            Step::Top { rare: true, limit, .. } => format!("rare {limit} by count"),
            Step::Timeline { interval, .. } => {
                format!("timeline, buckets of {}", crate::value::format_duration(*interval))
            }
        };
        let out = if plan.whole_events { "whole events".to_string() } else { names.join(", ") };
        s.push_str(&format!("step {}:    {what} → {out}\n", i + 1));
    }
    if plan.whole_events {
        s.push_str(
            "output:    whole events (JSON as read; table/CSV show time, user, verb, resource, ns, name, code)\n",
        );
    }
    s
}

fn pred_text(p: &Pred, plan: &Plan) -> String {
    let name = |c: usize| plan.slots.get(c).map_or_else(|| format!("#{c}"), |s| s.name.clone());
    match p {
        Pred::Const(b) => b.to_string(),
        Pred::And(items) => format!("({})", items.iter().map(|i| pred_text(i, plan)).collect::<Vec<_>>().join(" AND ")),
        Pred::Or(items) => format!("({})", items.iter().map(|i| pred_text(i, plan)).collect::<Vec<_>>().join(" OR ")),
        Pred::Not(i) => format!("NOT {}", pred_text(i, plan)),
        Pred::Field { col, test } => format!("{} {}", name(*col), test_text(test)),
        Pred::Text { test, .. } => format!("text {}", test_text(test)),
    }
}

fn test_text(t: &Test) -> String {
    use crate::value::Val;
    match t {
        Test::Exists => "exists".into(),
        Test::Eq(s) => format!("= {s:?}"),
        Test::Glob(g) => format!("matches {g}"),
        Test::Regex(r) => format!("~ /{}/", r.as_str()),
        Test::Words(w) => format!("has the words {:?} in a row (any case)", w.join(" ")),
        Test::WordGlob(g) => format!("has a word matching {g} (any case)"),
        Test::IntRange(a, b) if a == b => format!("= {a}"),
        Test::IntRange(a, b) => format!("in {a}..={b}"),
        Test::Time(op, lo, hi) => {
            format!("{} [{}, {})", op.as_str(), Val::Time(*lo).to_text(), Val::Time(*hi).to_text())
        }
        Test::Cmp(op, lit) => format!("{} {lit:?}", op.as_str()),
        Test::Ip(ip) => format!("= {ip}"),
        Test::Cidr(c) => format!("in {}/{}", c.net, c.prefix),
        Test::Bool(b) => format!("= {b}"),
        Test::Dynamic(s) => format!("= {s:?} (as JSON)"),
    }
}
