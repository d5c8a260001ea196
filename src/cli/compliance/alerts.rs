//! The alerts that fired: read from a JSON-lines file (`--alerts`, as `kaq detect` writes), not
//! computed here, so that the report does not depend on how detection runs.
//!
//! Each non-blank line is one alert, a JSON object:
//!
//! | field | type | |
//! |---|---|---|
//! | `rule` | string | required: the rule that fired |
//! | `severity` | string | `critical`, `high`, `medium`, `low`, `info` (others shown as given) |
//! | `group` | any | what the rule grouped by: a string, or an object such as `{"user": "…"}` |
//! | `count` | integer ≥ 0 | events (or distinct values) that made it fire |
//! | `first`, `last` | string (RFC 3339) | the time of its first and last event |
//! | `ids` | array of strings | the auditIDs of its evidence (`audit_ids`, `auditIDs` also read) |
//!
//! Other fields are allowed and ignored. A line that is not a JSON object, lacks `rule`, or gives
//! one of these fields with another type is an error naming the file, the line and the field.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use super::model::{Cell, Chart, Grid, Section, Status, Tone, thousands};

pub struct Alert {
    pub rule: String,
    pub severity: String,
    pub group: String,
    pub count: Option<u64>,
    pub first: Option<String>,
    pub last: Option<String>,
    pub ids: Vec<String>,
}

pub struct Alerts {
    pub path: String,
    pub list: Vec<Alert>,
}

/// Reads an alerts file.
pub fn read(path: &Path) -> anyhow::Result<Alerts> {
    let text = std::fs::read(path).with_context(|| format!("reading the alerts file {}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let mut list = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let Value::Object(m) = v else { bail!("{}: an alert is a JSON object, not {}", at(), kind(&v)) };
        let string = |k: &str| -> anyhow::Result<Option<String>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => bail!("{}: `{k}` must be a string, not {}", at(), kind(other)),
            }
        };
        let Some(rule) = string("rule")? else { bail!("{}: an alert needs `rule` (the rule that fired)", at()) };
        let count = match m.get("count") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(other) => bail!("{}: `count` must be a whole number ≥ 0, not {other}", at()),
        };
        let group = match m.get("group") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect::<Vec<_>>()
                .join(", "),
            Some(other) => other.to_string(),
        };
        let ids_key = ["ids", "audit_ids", "auditIDs"].into_iter().find(|k| m.contains_key(*k));
        let ids = match ids_key.and_then(|k| m.get(k).map(|v| (k, v))) {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((k, Value::Array(a))) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => bail!("{}: `{k}` must hold strings (auditIDs), not {}", at(), kind(other)),
                })
                .collect::<anyhow::Result<_>>()?,
            Some((k, other)) => bail!("{}: `{k}` must be an array of auditIDs, not {}", at(), kind(other)),
        };
        list.push(Alert {
            rule,
            severity: string("severity")?.unwrap_or_default(),
            group,
            count,
            first: string("first")?,
            last: string("last")?,
            ids,
        });
    }
    Ok(Alerts { path: path.display().to_string(), list })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn rank(severity: &str) -> u8 {
    match severity.to_ascii_lowercase().as_str() {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        "low" => 3,
        "info" => 4,
        _ => 5,
    }
}

/// AuditIDs shown per alert.
const IDS_SHOWN: usize = 5;

/// The alerts section and its row of the summary's checks. Alerts whose times lie wholly outside
/// the period (last before `since`, or first at or after `until`) are left out, and counted.
pub fn section(alerts: Option<&Alerts>, since: Option<i64>, until: i64, cap: usize) -> (Section, Vec<Cell>) {
    let title = "Alerts that fired".to_string();
    let Some(alerts) = alerts else {
        let why = "No alerts file was given (--alerts ALERTS.jsonl, as `kaq detect` writes it): this report does not say \
                   whether any detection rule fired.";
        let section = Section { id: "alerts".into(), title, paras: vec![why.into()], chart: None, grids: Vec::new() };
        return (
            section,
            vec![Cell::Text("Alerts".into()), Cell::Status(Status::Info), Cell::Text("no alerts file given".into())],
        );
    };
    let time = |t: &Option<String>| t.as_deref().and_then(kaq_schema::time::parse_rfc3339).map(|p| p.micros);
    let inside = |a: &&Alert| {
        let before = since.is_some_and(|s| time(&a.last).or(time(&a.first)).is_some_and(|l| l < s));
        let after = time(&a.first).or(time(&a.last)).is_some_and(|f| f >= until);
        !before && !after
    };
    let mut list: Vec<&Alert> = alerts.list.iter().filter(inside).collect();
    let outside = alerts.list.len() - list.len();
    list.sort_by(|a, b| rank(&a.severity).cmp(&rank(&b.severity)).then_with(|| a.first.cmp(&b.first)));
    let mut by_sev: Vec<(String, u64)> = Vec::new();
    for a in &list {
        let s = if a.severity.is_empty() { "(none)".to_string() } else { a.severity.to_ascii_lowercase() };
        match by_sev.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => by_sev.push((s, 1)),
        }
    }
    let mut paras = vec![format!(
        "Read from {} ({} alert{} in the period{}). These numbers come from that file, not from a query.",
        alerts.path,
        thousands(list.len() as u64),
        if list.len() == 1 { "" } else { "s" },
        if outside > 0 { format!("; {} outside it left out", thousands(outside as u64)) } else { String::new() }
    )];
    if list.is_empty() {
        paras.push("No alert fired in the period.".into());
    }
    let items = by_sev
        .iter()
        .map(|(s, n)| {
            (
                s.clone(),
                *n,
                if rank(s) <= 1 {
                    Tone::Bad
                } else if rank(s) == 2 {
                    Tone::Warn
                } else {
                    Tone::Plain
                },
            )
        })
        .collect();
    let rows = list
        .iter()
        .take(cap)
        .map(|a| {
            let mut ids: Vec<String> = a.ids.iter().take(IDS_SHOWN).cloned().collect();
            if a.ids.len() > IDS_SHOWN {
                ids.push(format!("and {} more", a.ids.len() - IDS_SHOWN));
            }
            vec![
                Cell::Text(a.severity.clone()),
                Cell::Text(a.rule.clone()),
                Cell::Text(a.group.clone()),
                a.count.map_or(Cell::Text(String::new()), |c| Cell::Num(c, None)),
                Cell::Mono(a.first.clone().unwrap_or_default()),
                Cell::Mono(a.last.clone().unwrap_or_default()),
                Cell::Mono(ids.join(" ")),
            ]
        })
        .collect();
    let note = (list.len() > cap).then(|| format!("The first {cap} of {} alerts (most severe first).", list.len()));
    let high = list.iter().filter(|a| rank(&a.severity) <= 1).count();
    let section = Section {
        id: "alerts".into(),
        title,
        paras,
        chart: Some(Chart::Bars { items, max: 0, q: Vec::new(), what: "alerts by severity".into() }),
        grids: vec![Grid {
            id: "alerts-list".into(),
            title: "Alerts".into(),
            header: ["Severity", "Rule", "Group", "Count", "First", "Last", "auditIDs"].map(String::from).to_vec(),
            rows,
            queries: Vec::new(),
            note,
            empty: "No alert in the period.".into(),
        }],
    };
    let why = format!(
        "{} alert{} in the period ({high} critical or high)",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    let st = if list.is_empty() { Status::Pass } else { Status::Info };
    (section, vec![Cell::Text("Alerts".into()), Cell::Status(st), Cell::Text(why)])
}
