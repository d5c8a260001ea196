//! The reference evaluator: the plain definition of what a kaq query answers, written as obvious,
//! slow code over `serde_json::Value` events, independent of kaq-query's planner, extractor,
//! prefilter, scan and stages. Tests require the fast path to give exactly its answer.
//!
//! It reuses only the parser (kaq-syntax), the field names of the catalogue, the literal readers of
//! kaq-query (`500ms`, `2026-11-20`, `4xx`, CIDR — unit-tested on their own) and the texts of the
//! built-in named queries.
//!
//! Definition, in order:
//! 1. The events are the input records that decode as audit events.
//! 2. Unless every stage is asked for (`--all-stages`, or `stage` in the search), each auditID
//!    keeps only its latest record: highest stage rank (RequestReceived 0, ResponseStarted 1,
//!    ResponseComplete or anything else 2, Panic 3), then latest stageTimestamp, then latest
//!    time (absent ones first), then last in input order.
//! 3. The search and leading `where`s keep the events they hold for, in input order.
//! 4. The stages run in order over the rows.

pub mod arb;
pub mod corpus;

use std::collections::HashMap;

use kaq_query::plan::literal::{Cidr, normalize, parse_code_class, parse_duration, parse_time};
use kaq_syntax::{AggFunc, BoolExpr, CmpOp, FieldRef, Search, Stage, Term, Value as Lit, ValueExpr, ValueKind};
use regex::Regex;
use serde_json::Value as J;

/// A value in the oracle.
#[derive(Debug, Clone)]
pub enum O {
    Null,
    B(bool),
    I(i64),
    F(f64),
    S(String),
    /// Time, µs since the epoch.
    T(i64),
    /// Duration, µs.
    D(i64),
    L(Vec<O>),
}

impl O {
    fn kind(&self) -> u8 {
        match self {
            O::B(_) => 0,
            O::I(_) | O::F(_) => 1,
            O::D(_) => 2,
            O::T(_) => 3,
            O::S(_) => 4,
            O::L(_) => 5,
            O::Null => 6,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            O::I(i) => Some(*i as f64),
            O::F(f) => Some(*f),
            _ => None,
        }
    }

    /// The total order of the language: kinds in the order above, null last.
    pub fn order(&self, o: &O) -> std::cmp::Ordering {
        use std::cmp::Ordering::Equal;
        if self.kind() != o.kind() {
            return self.kind().cmp(&o.kind());
        }
        match (self, o) {
            (O::B(a), O::B(b)) => a.cmp(b),
            (O::I(a), O::I(b)) => a.cmp(b),
            (O::T(a), O::T(b)) | (O::D(a), O::D(b)) => a.cmp(b),
            (O::S(a), O::S(b)) => a.cmp(b),
            (O::L(a), O::L(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let c = x.order(y);
                    if c != Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (O::Null, O::Null) => Equal,
            _ => self.num().unwrap().total_cmp(&o.num().unwrap()),
        }
    }

    fn same(&self, o: &O) -> bool {
        self.order(o) == std::cmp::Ordering::Equal
    }

    fn text(&self) -> String {
        match self {
            O::Null => String::new(),
            O::B(b) => b.to_string(),
            O::I(i) => i.to_string(),
            O::F(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            O::F(f) => f.to_string(),
            O::S(s) => s.clone(),
            O::T(t) => kaq_schema::time::format_micros(*t),
            O::D(d) => O::F(*d as f64 / 1e6).text(),
            O::L(l) => l.iter().map(O::text).collect::<Vec<_>>().join(","),
        }
    }

    /// As the JSON the CLI prints.
    pub fn json(&self) -> J {
        match self {
            O::Null => J::Null,
            O::B(b) => J::Bool(*b),
            O::I(i) => J::from(*i),
            O::F(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            O::S(s) => J::String(s.clone()),
            O::T(t) => J::String(kaq_schema::time::format_micros(*t)),
            O::D(d) if d % 1_000_000 == 0 => J::from(d / 1_000_000),
            O::D(d) => serde_json::Number::from_f64(*d as f64 / 1e6).map_or(J::Null, J::Number),
            O::L(l) => J::Array(l.iter().map(O::json).collect()),
        }
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub now_us: i64,
    pub all_stages: bool,
}

/// The answer: whole events (as JSON) or rows of named columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Events(Vec<J>),
    Rows(Vec<Vec<(String, J)>>),
}

/// Whether two answers' JSON values are equal, numbers to 1e-9 relative (sums taken in the same
/// order agree exactly; this only forgives printing). For comparing kaq's output with the oracle's.
pub fn same_json(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The oracle's answer as JSON values: whole events, or each row as an object of its columns.
pub fn answer(query: &str, events: &[J], opts: &Options) -> Vec<J> {
    match run(query, events, opts) {
        Answer::Events(e) => e,
        Answer::Rows(rows) => rows.into_iter().map(|r| J::Object(r.into_iter().collect())).collect(),
    }
}

/// The events of some JSON-lines text: each record (EventList and array items included) that
/// kaq's decoder accepts, as JSON.
pub fn events_of(text: &str) -> Vec<J> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        kaq_schema::decode_records_with_text(line, &Default::default(), &mut |r| {
            if let Ok((_, t)) = r {
                out.push(serde_json::from_str(t).expect("an accepted record is JSON"));
            }
        });
    }
    out
}

/// A request's identity: auditID, requestReceivedTimestamp (as an instant), verb, requestURI and
/// user.username.
type Request<'e> = (&'e str, Option<i64>, Option<&'e str>, Option<&'e str>, Option<&'e str>);

thread_local! {
    /// The auditIDs several requests carry in the events of the running query (`id_reused`).
    static REUSED: std::cell::RefCell<std::collections::HashSet<String>> = Default::default();
}

fn request_of(e: &J) -> Request<'_> {
    (
        e["auditID"].as_str().unwrap_or(""),
        time_of(&e["requestReceivedTimestamp"]),
        e["verb"].as_str(),
        e["requestURI"].as_str(),
        e["user"]["username"].as_str(),
    )
}

/// Runs `query` over `events`. Panics on queries kaq-query rejects (callers compile first).
pub fn run(query: &str, events: &[J], opts: &Options) -> Answer {
    let q = kaq_syntax::parse(query).expect("the oracle runs valid queries");
    let search = q.search.as_ref().map(|s| expand(s, 0));
    let uses_stage = search.as_ref().is_some_and(mentions_stage)
        || q.stages.iter().take_while(|s| matches!(s, Stage::Where { .. })).any(|s| match s {
            Stage::Where { expr, .. } => mentions_stage(expr),
            _ => false,
        });
    // `id_reused`: the auditIDs that more than one request carries, over every event.
    let mut requests: HashMap<&str, Vec<Request>> = HashMap::new();
    for e in events {
        let r = request_of(e);
        let v = requests.entry(r.0).or_default();
        if !v.contains(&r) {
            v.push(r);
        }
    }
    REUSED
        .with(|s| *s.borrow_mut() = requests.iter().filter(|(_, v)| v.len() > 1).map(|(k, _)| k.to_string()).collect());
    // 2. Latest stage per request: the auditID and what every stage of a request repeats (its
    // received time, verb, URI and user), compared whole.
    let mut pool: Vec<&J> = events.iter().collect();
    if !(opts.all_stages || uses_stage) {
        // Highest stage rank, then latest stageTimestamp, then latest time (absent first), then
        // the last read.
        let key = |i: usize, e: &J| {
            let t = |v: O| if let O::T(t) = v { t } else { i64::MIN };
            (rank(e["stage"].as_str()), t(field(e, "stage_time")), t(field(e, "time")), i)
        };
        let mut latest: HashMap<Request, (u8, i64, i64, usize)> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let k = key(i, e);
            let slot = latest.entry(request_of(e)).or_insert(k);
            if k >= *slot {
                *slot = k;
            }
        }
        pool = events.iter().enumerate().filter(|(i, e)| latest[&request_of(e)].3 == *i).map(|(_, e)| e).collect();
    }
    // 3. The search and leading wheres.
    let mut stages = q.stages.as_slice();
    let mut conds: Vec<Search> = search.into_iter().collect();
    while let Some(Stage::Where { expr, .. }) = stages.first() {
        conds.push(expr.clone());
        stages = &stages[1..];
    }
    let hits: Vec<&J> = pool.into_iter().filter(|e| conds.iter().all(|c| holds_event(c, e, opts.now_us))).collect();
    // 4. Stages. Rows start as events; the first shaping stage turns them into named columns.
    let mut events_rows: Option<Vec<&J>> = Some(hits);
    let mut rows: Vec<Vec<(String, O)>> = Vec::new();
    for st in stages {
        if let Some(evs) = events_rows.take() {
            match st {
                Stage::Where { expr, .. } => {
                    events_rows = Some(evs.into_iter().filter(|e| holds_event(expr, e, opts.now_us)).collect())
                }
                Stage::Sort { keys, .. } => {
                    let mut evs = evs;
                    evs.sort_by(|a, b| {
                        for k in keys {
                            let (x, y) = (get(a, &k.field), get(b, &k.field));
                            let o = sort_cmp(&x, &y, k.descending);
                            if o.is_ne() {
                                return o;
                            }
                        }
                        std::cmp::Ordering::Equal
                    });
                    events_rows = Some(evs);
                }
                Stage::Head { limit, .. } => {
                    events_rows = Some(evs.into_iter().take(limit.as_ref().map_or(10, |l| l.node as usize)).collect())
                }
                Stage::Dedup { fields, .. } => {
                    let mut seen: Vec<Vec<O>> = Vec::new();
                    let mut kept = Vec::new();
                    for e in evs {
                        let k: Vec<O> = fields.iter().map(|f| get(e, f)).collect();
                        if !seen.iter().any(|s| s.iter().zip(&k).all(|(a, b)| a.same(b))) {
                            seen.push(k);
                            kept.push(e);
                        }
                    }
                    events_rows = Some(kept);
                }
                _ => {
                    // Shaping: evaluate on rows holding every field by name.
                    let named: Vec<Vec<(String, O)>> = evs.iter().map(|e| EventRow(e).all_for(st)).collect();
                    rows = shape(st, named, opts.now_us);
                }
            }
        } else {
            rows = match st {
                Stage::Where { expr, .. } => rows.into_iter().filter(|r| holds_row(expr, r, opts.now_us)).collect(),
                Stage::Sort { keys, .. } => {
                    let mut rows = rows;
                    rows.sort_by(|a, b| {
                        for k in keys {
                            let o = sort_cmp(&col(a, &k.field), &col(b, &k.field), k.descending);
                            if o.is_ne() {
                                return o;
                            }
                        }
                        std::cmp::Ordering::Equal
                    });
                    rows
                }
                Stage::Head { limit, .. } => {
                    rows.into_iter().take(limit.as_ref().map_or(10, |l| l.node as usize)).collect()
                }
                Stage::Dedup { fields, .. } => {
                    let mut seen: Vec<Vec<O>> = Vec::new();
                    rows.into_iter()
                        .filter(|r| {
                            let k: Vec<O> = fields.iter().map(|f| col(r, f)).collect();
                            let new = !seen.iter().any(|s| s.iter().zip(&k).all(|(a, b)| a.same(b)));
                            if new {
                                seen.push(k);
                            }
                            new
                        })
                        .collect()
                }
                _ => shape(st, rows, opts.now_us),
            };
        }
    }
    match events_rows {
        Some(evs) => Answer::Events(evs.into_iter().cloned().collect()),
        None => Answer::Rows(rows.into_iter().map(|r| r.into_iter().map(|(n, v)| (n, v.json())).collect()).collect()),
    }
}

fn sort_cmp(x: &O, y: &O, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (matches!(x, O::Null), matches!(y, O::Null)) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ if desc => y.order(x),
        _ => x.order(y),
    }
}

fn rank(stage: Option<&str>) -> u8 {
    match stage {
        Some("RequestReceived") => 0,
        Some("ResponseStarted") => 1,
        Some("Panic") => 3,
        _ => 2,
    }
}

fn expand(s: &Search, depth: usize) -> Search {
    assert!(depth < 10, "macro cycle");
    match s {
        BoolExpr::Leaf(Term::Macro(m)) => {
            let text = kaq_query::plan::macros::BUILTIN.iter().find(|(n, _, _)| *n == m.node).expect("known macro").1;
            expand(&kaq_syntax::parse(text).expect("macro parses").search.expect("macro search"), depth + 1)
        }
        BoolExpr::Leaf(t) => BoolExpr::Leaf(t.clone()),
        BoolExpr::Not { inner, span } => BoolExpr::Not { inner: Box::new(expand(inner, depth)), span: *span },
        BoolExpr::And { items, span } => {
            BoolExpr::And { items: items.iter().map(|i| expand(i, depth)).collect(), span: *span }
        }
        BoolExpr::Or { items, span } => {
            BoolExpr::Or { items: items.iter().map(|i| expand(i, depth)).collect(), span: *span }
        }
    }
}

fn mentions_stage(s: &Search) -> bool {
    let mut found = false;
    s.for_each_leaf(&mut |t| match t {
        Term::Match { field, .. } | Term::Compare { field, .. }
            if kaq_schema::lookup(&field.dotted()).is_some_and(|f| f.name == "stage") =>
        {
            found = true;
        }
        _ => {}
    });
    found
}

/// The type of a field as the definition uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Time,
    Dur,
    Kw,
    Text,
    Int,
    Num,
    Bool,
    Ip,
    Obj,
    Json,
}

fn canonical(f: &FieldRef) -> String {
    let d = f.dotted();
    match kaq_schema::lookup(&d) {
        Some(field) => field.name.to_string(),
        None => {
            let s = &f.segments;
            match s[0].as_str() {
                "requestObject" => format!("request.{}", s[1..].join(".")),
                "responseObject" => format!("response.{}", s[1..].join(".")),
                "user" if s.len() > 2 && s[1] == "extra" => format!("extra.{}", s[2..].join(".")),
                "impersonatedUser" if s.len() > 2 && s[1] == "extra" => format!("as_extra.{}", s[2..].join(".")),
                _ => d,
            }
        }
    }
}

fn ty_of(name: &str) -> Ty {
    if let Some(f) = kaq_schema::lookup(name) {
        use kaq_schema::FieldType as F;
        return match f.ty {
            F::Timestamp => Ty::Time,
            F::Duration => Ty::Dur,
            F::Keyword => Ty::Kw,
            F::Text => Ty::Text,
            F::Integer => Ty::Int,
            F::Bool => Ty::Bool,
            F::Ip => Ty::Ip,
            F::KeywordMap | F::Json => Ty::Obj,
        };
    }
    let head = name.split('.').next().unwrap_or("");
    match head {
        "annotations" | "extra" | "as_extra" => Ty::Kw,
        "request" | "response" if name.contains('.') => Ty::Json,
        _ => Ty::Obj,
    }
}

fn time_of(v: &J) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok().map(|t| t.timestamp_micros())
}

fn s_of(v: &J) -> O {
    v.as_str().map_or(O::Null, |s| O::S(s.to_string()))
}

fn list_of(v: &J) -> O {
    match v.as_array() {
        Some(a) => O::L(a.iter().map(s_of).collect()),
        None => O::Null,
    }
}

fn json_leaf(v: &J) -> O {
    match v {
        J::Null => O::Null,
        J::Bool(b) => O::B(*b),
        J::Number(n) => n.as_i64().map_or_else(|| n.as_f64().map_or(O::Null, O::F), O::I),
        J::String(s) => O::S(s.clone()),
        other => O::S(other.to_string()),
    }
}

/// Follows a path; arrays are entered element by element (the result is then a list).
fn path(v: &J, p: &[&str], out: &mut Vec<O>) -> bool {
    match p.split_first() {
        None => match v {
            J::Array(a) => {
                out.extend(a.iter().map(json_leaf));
                true
            }
            v => {
                out.push(json_leaf(v));
                false
            }
        },
        Some((h, rest)) => match v {
            J::Object(m) => m.get(*h).is_some_and(|c| path(c, rest, out)),
            J::Array(a) => match h.parse::<usize>() {
                Ok(i) => a.get(i).is_some_and(|x| path(x, rest, out)),
                Err(_) => {
                    for x in a {
                        path(x, p, out);
                    }
                    true
                }
            },
            _ => false,
        },
    }
}

fn pod_spec(v: &J) -> Option<&J> {
    let spec = v.get("spec")?;
    if spec.get("containers").is_some() {
        return Some(spec);
    }
    fn t(s: &J) -> Option<&J> {
        s.get("template").and_then(|t| t.get("spec")).filter(|s| s.get("containers").is_some())
    }
    t(spec).or_else(|| t(spec.get("jobTemplate")?.get("spec")?))
}

/// The value of a field (by canonical name) in an event.
fn field(e: &J, name: &str) -> O {
    let u = &e["user"];
    let iu = &e["impersonatedUser"];
    let o = &e["objectRef"];
    let rs = &e["responseStatus"];
    let ann = |k: &str| s_of(&e["annotations"][k]);
    let received = time_of(&e["requestReceivedTimestamp"]);
    let staged = time_of(&e["stageTimestamp"]);
    let req = &e["requestObject"];
    let pod = if req.to_string().contains("\"containers\"") { pod_spec(req) } else { None };
    let flag = |k: &str| pod.map_or(O::Null, |p| O::B(p[k].as_bool().unwrap_or(false)));
    match name {
        "time" => received
            .or(staged)
            .or_else(|| time_of(&e["timestamp"]))
            .or_else(|| time_of(&e["metadata"]["creationTimestamp"]))
            .map_or(O::Null, O::T),
        "stage_time" => staged.map_or(O::Null, O::T),
        "latency" => match (received, staged) {
            (Some(a), Some(b)) => O::D(b - a),
            _ => O::Null,
        },
        "id" => s_of(&e["auditID"]),
        "id_reused" => O::B(REUSED.with(|s| s.borrow().contains(e["auditID"].as_str().unwrap_or("")))),
        "stage" | "level" | "verb" => s_of(&e[name]),
        "uri" => s_of(&e["requestURI"]),
        "user" => s_of(&u["username"]),
        "uid" => s_of(&u["uid"]),
        "groups" => list_of(&u["groups"]),
        "as" => s_of(&iu["username"]),
        "as_uid" => s_of(&iu["uid"]),
        "as_groups" => list_of(&iu["groups"]),
        "ip" => list_of(&e["sourceIPs"]),
        "client_ip" => e["sourceIPs"].as_array().and_then(|a| a.first()).map_or(O::Null, s_of),
        "peer_ip" => e["sourceIPs"].as_array().and_then(|a| a.last()).map_or(O::Null, s_of),
        "ua" => s_of(&e["userAgent"]),
        "resource" | "subresource" | "name" => s_of(&o[name]),
        "ns" => s_of(&o["namespace"]),
        "apigroup" => s_of(&o["apiGroup"]),
        "apiversion" => s_of(&o["apiVersion"]),
        "object_uid" => s_of(&o["uid"]),
        "resource_version" => s_of(&o["resourceVersion"]),
        "code" => rs["code"].as_i64().map_or(O::Null, O::I),
        "status" | "reason" | "message" => s_of(&rs[name]),
        "decision" => ann("authorization.k8s.io/decision"),
        "authz_reason" => ann("authorization.k8s.io/reason"),
        "user_kind" => {
            let Some(name) = u["username"].as_str() else { return O::Null };
            let groups: Vec<&str> =
                u["groups"].as_array().map(|a| a.iter().filter_map(J::as_str).collect()).unwrap_or_default();
            let g = |x: &str| groups.contains(&x);
            O::S(
                if name == "system:anonymous" || g("system:unauthenticated") {
                    "anonymous"
                } else if name.starts_with("system:node:") || g("system:nodes") {
                    "node"
                } else if name.starts_with("system:serviceaccount:") || g("system:serviceaccounts") {
                    "serviceaccount"
                } else if name.starts_with("system:") || name.starts_with("eks:") {
                    "system"
                } else {
                    "human"
                }
                .into(),
            )
        }
        "exec_command" => {
            if o["subresource"].as_str() != Some("exec") {
                return O::Null;
            }
            let Some((_, q)) = e["requestURI"].as_str().unwrap_or("").split_once('?') else { return O::Null };
            let parts: Vec<String> = q
                .split('&')
                .filter_map(|p| p.strip_prefix("command="))
                .map(kaq_schema::derive::percent_decode)
                .collect();
            if parts.is_empty() { O::Null } else { O::S(parts.join(" ")) }
        }
        "privileged" => match pod {
            None => O::Null,
            Some(p) => O::B(["containers", "initContainers", "ephemeralContainers"].iter().any(|l| {
                p[*l]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["securityContext"]["privileged"] == J::Bool(true)))
            })),
        },
        "host_network" => flag("hostNetwork"),
        "host_pid" => flag("hostPID"),
        "host_ipc" => flag("hostIPC"),
        "host_path" => match pod {
            None => O::Null,
            Some(p) => O::L(
                p["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["hostPath"]["path"].as_str().map(|s| O::S(s.into())))
                    .collect(),
            ),
        },
        "annotations" | "extra" | "as_extra" | "request" | "response" => {
            let v = match name {
                "annotations" => &e["annotations"],
                "extra" => &u["extra"],
                "as_extra" => &iu["extra"],
                "request" => &e["requestObject"],
                _ => &e["responseObject"],
            };
            if v.is_null() { O::Null } else { O::S(v.to_string()) }
        }
        other => {
            let (head, rest) = other.split_once('.').expect("a path field");
            let root = match head {
                "annotations" => return s_of(&e["annotations"][rest]),
                "extra" => &u["extra"],
                "as_extra" => &iu["extra"],
                "request" => &e["requestObject"],
                "response" => &e["responseObject"],
                _ => panic!("oracle: unknown field {other}"),
            };
            let segs: Vec<&str> = match head {
                "extra" | "as_extra" => vec![rest], // one key, which may hold dots
                _ => rest.split('.').collect(),
            };
            let mut out = Vec::new();
            if path(root, &segs, &mut out) { O::L(out) } else { out.pop().unwrap_or(O::Null) }
        }
    }
}

fn get(e: &J, f: &FieldRef) -> O {
    field(e, &canonical(f))
}

struct EventRow<'a>(&'a J);

impl EventRow<'_> {
    /// The named values a shaping stage reads, under the names the stage gives them.
    fn all_for(&self, st: &Stage) -> Vec<(String, O)> {
        let mut refs: Vec<&FieldRef> = Vec::new();
        match st {
            Stage::Table { fields, .. } | Stage::Count { by: fields, .. } => refs.extend(fields),
            Stage::Stats { aggregates, by, .. } => {
                refs.extend(by);
                refs.extend(aggregates.iter().filter_map(|a| a.field.as_ref()));
            }
            Stage::Top { field, by, .. } | Stage::Rare { field, by, .. } => {
                refs.extend(by);
                refs.push(field);
            }
            Stage::Timeline { by, .. } => refs.extend(by),
            _ => {}
        }
        let mut row: Vec<(String, O)> = refs.iter().map(|f| (f.dotted(), get(self.0, f))).collect();
        row.push(("\u{0}time".into(), field(self.0, "time")));
        row
    }
}

fn col(r: &[(String, O)], f: &FieldRef) -> O {
    let d = f.dotted();
    if let Some((_, v)) = r.iter().find(|(n, _)| *n == d) {
        return v.clone();
    }
    // A reference by another name of the same field.
    let c = canonical(f);
    r.iter().find(|(n, _)| canonical_str(n) == c).map_or(O::Null, |(_, v)| v.clone())
}

fn canonical_str(n: &str) -> String {
    let segs: Vec<String> = n.split('.').map(str::to_string).collect();
    canonical(&FieldRef { segments: segs, span: kaq_syntax::Span::new(0, 0) })
}

/// `count`, `stats`, `top`, `rare`, `timeline`, `table`.
fn shape(st: &Stage, rows: Vec<Vec<(String, O)>>, _now: i64) -> Vec<Vec<(String, O)>> {
    let fan = |v: O| -> Vec<O> {
        match v {
            O::L(l) if l.is_empty() => vec![O::Null],
            O::L(l) => {
                let mut out: Vec<O> = Vec::new();
                for x in l {
                    if !out.iter().any(|y| y.same(&x)) {
                        out.push(x);
                    }
                }
                out
            }
            v => vec![v],
        }
    };
    // Groups: key → row indices, keys sorted.
    let groups = |by: &[FieldRef]| -> Vec<(Vec<O>, Vec<usize>)> {
        let mut g: Vec<(Vec<O>, Vec<usize>)> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let mut keys: Vec<Vec<O>> = vec![vec![]];
            for f in by {
                let vals = fan(col(r, f));
                keys = keys
                    .into_iter()
                    .flat_map(|k| vals.iter().map(move |v| [k.clone(), vec![v.clone()]].concat()))
                    .collect();
            }
            for k in keys {
                match g.iter_mut().find(|(gk, _)| gk.iter().zip(&k).all(|(a, b)| a.same(b))) {
                    Some((_, m)) => m.push(i),
                    None => g.push((k, vec![i])),
                }
            }
        }
        if by.is_empty() && g.is_empty() {
            g.push((vec![], vec![]));
        }
        g.sort_by(|a, b| {
            a.0.iter().zip(&b.0).map(|(x, y)| x.order(y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
        });
        g
    };
    let named = |by: &[FieldRef], k: Vec<O>| -> Vec<(String, O)> { by.iter().map(|f| f.dotted()).zip(k).collect() };
    match st {
        Stage::Table { fields, .. } => {
            rows.iter().map(|r| fields.iter().map(|f| (f.dotted(), col(r, f))).collect()).collect()
        }
        Stage::Count { by, .. } => groups(by)
            .into_iter()
            .map(|(k, m)| {
                let mut r = named(by, k);
                r.push(("count".into(), O::I(m.len() as i64)));
                r
            })
            .collect(),
        Stage::Stats { aggregates, by, .. } => groups(by)
            .into_iter()
            .map(|(k, m)| {
                let mut r = named(by, k);
                for a in aggregates {
                    let name = match (&a.alias, &a.field) {
                        (Some(al), _) => al.node.clone(),
                        (None, Some(f)) => format!("{}({})", a.func.node.as_str(), f.dotted()),
                        (None, None) => "count".into(),
                    };
                    let v = match &a.field {
                        None => O::I(m.len() as i64),
                        Some(f) => aggregate(a.func.node, m.iter().map(|&i| col(&rows[i], f)).collect()),
                    };
                    r.push((name, v));
                }
                r
            })
            .collect(),
        Stage::Top { limit, field, by, .. } | Stage::Rare { limit, field, by, .. } => {
            let rare = matches!(st, Stage::Rare { .. });
            let mut out = Vec::new();
            for (k, m) in groups(by) {
                let mut counts: Vec<(O, usize)> = Vec::new();
                for &i in &m {
                    for v in fan(col(&rows[i], field)) {
                        if matches!(v, O::Null) {
                            continue;
                        }
                        match counts.iter_mut().find(|(x, _)| x.same(&v)) {
                            Some(c) => c.1 += 1,
                            None => counts.push((v, 1)),
                        }
                    }
                }
                counts.sort_by(|a, b| if rare { a.1.cmp(&b.1) } else { b.1.cmp(&a.1) }.then_with(|| a.0.order(&b.0)));
                for (v, n) in counts.into_iter().take(limit.node as usize) {
                    let mut r = named(by, k.clone());
                    r.push((field.dotted(), v));
                    r.push(("count".into(), O::I(n as i64)));
                    r.push(("percent".into(), O::F((n as f64 * 10000.0 / m.len() as f64).round() / 100.0)));
                    out.push(r);
                }
            }
            out
        }
        Stage::Timeline { interval, by, .. } => {
            let w = parse_duration(&interval.node).expect("valid interval");
            let mut buckets: Vec<(i64, O, i64)> = Vec::new();
            for r in &rows {
                let t = match r.iter().find(|(n, _)| n == "\u{0}time" || n == "time") {
                    Some((_, O::T(t))) => *t,
                    _ => continue,
                };
                let b = t.div_euclid(w) * w;
                let series = match by {
                    Some(f) => fan(col(r, f)),
                    None => vec![O::Null],
                };
                for s in series {
                    match buckets.iter_mut().find(|(x, y, _)| *x == b && y.same(&s)) {
                        Some(e) => e.2 += 1,
                        None => buckets.push((b, s, 1)),
                    }
                }
            }
            buckets.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.order(&b.1)));
            match by {
                Some(f) => buckets
                    .into_iter()
                    .map(|(b, s, n)| vec![("time".into(), O::T(b)), (f.dotted(), s), ("count".into(), O::I(n))])
                    .collect(),
                None => {
                    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else { return vec![] };
                    let (lo, hi) = (first.0, last.0);
                    if (hi - lo) / w >= 100_000 {
                        return buckets
                            .into_iter()
                            .map(|(b, _, n)| vec![("time".into(), O::T(b)), ("count".into(), O::I(n))])
                            .collect();
                    }
                    (0..=(hi - lo) / w)
                        .map(|i| {
                            let b = lo + i * w;
                            let n = buckets.iter().find(|x| x.0 == b).map_or(0, |x| x.2);
                            vec![("time".into(), O::T(b)), ("count".into(), O::I(n))]
                        })
                        .collect()
                }
            }
        }
        _ => unreachable!("not a shaping stage"),
    }
}

fn aggregate(f: AggFunc, vals: Vec<O>) -> O {
    let present = |v: &O| match v {
        O::Null => false,
        O::S(s) => !s.is_empty(),
        O::L(l) => l.iter().any(|x| !matches!(x, O::Null) && !matches!(x, O::S(s) if s.is_empty())),
        _ => true,
    };
    if f == AggFunc::Count {
        return O::I(vals.iter().filter(|v| present(v)).count() as i64);
    }
    let mut flat: Vec<O> = Vec::new();
    for v in vals {
        match v {
            O::Null => {}
            O::L(l) => flat.extend(l.into_iter().filter(|x| !matches!(x, O::Null))),
            v => flat.push(v),
        }
    }
    let distinct = |flat: &[O]| {
        let mut d: Vec<O> = Vec::new();
        for x in flat {
            if !d.iter().any(|y| y.same(x)) {
                d.push(x.clone());
            }
        }
        d
    };
    match f {
        AggFunc::Dc => O::I(distinct(&flat).len() as i64),
        AggFunc::Values => {
            let mut d = distinct(&flat);
            d.sort_by(|a, b| a.order(b));
            O::L(d)
        }
        AggFunc::Min => flat.iter().min_by(|a, b| a.order(b)).cloned().unwrap_or(O::Null),
        AggFunc::Max => flat.iter().max_by(|a, b| a.order(b)).cloned().unwrap_or(O::Null),
        AggFunc::Sum | AggFunc::Avg => {
            let nums: Vec<&O> = flat.iter().filter(|v| matches!(v, O::I(_) | O::F(_) | O::D(_))).collect();
            if nums.is_empty() {
                return if f == AggFunc::Sum { O::I(0) } else { O::Null };
            }
            if nums.iter().all(|v| matches!(v, O::D(_))) {
                let s: i128 = nums.iter().map(|v| if let O::D(d) = v { *d as i128 } else { 0 }).sum();
                return if f == AggFunc::Sum {
                    O::D(s.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
                } else {
                    O::D((s as f64 / nums.len() as f64).round() as i64)
                };
            }
            if f == AggFunc::Sum && nums.iter().all(|v| matches!(v, O::I(_))) {
                let s: i128 = nums.iter().map(|v| if let O::I(i) = v { *i as i128 } else { 0 }).sum();
                return O::I(s.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
            }
            let s: f64 = nums
                .iter()
                .map(|v| match v {
                    O::D(d) => *d as f64 / 1e6,
                    v => v.num().unwrap(),
                })
                .sum();
            O::F(if f == AggFunc::Sum { s } else { s / nums.len() as f64 })
        }
        _ => {
            let p = match f {
                AggFunc::P50 => 50,
                AggFunc::P90 => 90,
                AggFunc::P95 => 95,
                _ => 99,
            };
            if flat.is_empty() {
                return O::Null;
            }
            flat.sort_by(|a, b| a.order(b));
            // Nearest rank: the smallest value with at least p% of the values at or below it.
            let mut k = 1;
            while k * 100 < p * flat.len() {
                k += 1;
            }
            flat[k - 1].clone()
        }
    }
}

fn holds_event(s: &Search, e: &J, now: i64) -> bool {
    holds(s, &mut |f: &FieldRef| (canonical(f), get(e, f)), Some(e), now)
}

fn holds_row(s: &Search, r: &[(String, O)], now: i64) -> bool {
    // Column types: what the value holds (rows carry typed values).
    holds(s, &mut |f: &FieldRef| (String::new(), col(r, f)), None, now)
}

fn holds(s: &Search, get: &mut dyn FnMut(&FieldRef) -> (String, O), event: Option<&J>, now: i64) -> bool {
    match s {
        BoolExpr::Not { inner, .. } => !holds(inner, get, event, now),
        BoolExpr::And { items, .. } => items.iter().all(|i| holds(i, get, event, now)),
        BoolExpr::Or { items, .. } => items.iter().any(|i| holds(i, get, event, now)),
        BoolExpr::Leaf(t) => match t {
            Term::Match { field, value, .. } => {
                let (name, v) = get(field);
                let ty = if name.is_empty() { ty_of_value(&v, field) } else { ty_of(&name) };
                value_holds(value, &v, ty, now)
            }
            Term::Compare { field, op, value, .. } => {
                let (name, v) = get(field);
                let ty = if name.is_empty() { ty_of_value(&v, field) } else { ty_of(&name) };
                let text = match &value.kind {
                    ValueKind::Bare { text, .. } | ValueKind::Quoted { text } => text.clone(),
                    _ => unreachable!(),
                };
                let r = any(&v, &mut |x| compare(x, ty, op.node, &text, now));
                if op.node == CmpOp::Ne { !any(&v, &mut |x| compare(x, ty, CmpOp::Eq, &text, now)) } else { r }
            }
            Term::Text(value) => {
                let e = event.expect("free text only over events");
                ["uri", "ua", "message", "authz_reason", "exec_command"].iter().any(|f| {
                    let v = field(e, f);
                    one_value_holds(value, &v, Ty::Text, now)
                })
            }
            Term::Macro(_) => unreachable!("expanded"),
        },
    }
}

/// After a shaping stage, a column's type: that of the field it holds when its name is a field,
/// else what its values are.
fn ty_of_value(v: &O, f: &FieldRef) -> Ty {
    let c = canonical(f);
    if kaq_schema::lookup(&c).is_some() || c.contains('.') {
        return ty_of(&c);
    }
    match v {
        O::I(_) => Ty::Int,
        O::F(_) => Ty::Num,
        O::D(_) => Ty::Dur,
        O::T(_) => Ty::Time,
        O::B(_) => Ty::Bool,
        _ => Ty::Kw,
    }
}

fn any(v: &O, f: &mut dyn FnMut(&O) -> bool) -> bool {
    match v {
        O::L(l) => l.iter().any(|x| any(x, f)),
        O::Null => false,
        v => f(v),
    }
}

fn value_holds(ve: &ValueExpr, v: &O, ty: Ty, now: i64) -> bool {
    match ve {
        BoolExpr::Leaf(lit) => one_value_holds(lit, v, ty, now),
        BoolExpr::Not { inner, .. } => !value_holds(inner, v, ty, now),
        BoolExpr::And { items, .. } => items.iter().all(|i| value_holds(i, v, ty, now)),
        BoolExpr::Or { items, .. } => items.iter().any(|i| value_holds(i, v, ty, now)),
    }
}

fn glob_re(p: &str) -> Regex {
    let mut re = String::from("(?s)^");
    for c in p.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).unwrap()
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn one_value_holds(lit: &Lit, v: &O, ty: Ty, now: i64) -> bool {
    if let ValueKind::Exists = lit.kind {
        return any(v, &mut |x| !matches!(x, O::S(s) if s.is_empty()));
    }
    any(v, &mut |x| scalar_holds(lit, x, ty, now))
}

fn scalar_holds(lit: &Lit, x: &O, ty: Ty, now: i64) -> bool {
    match &lit.kind {
        ValueKind::Exists => unreachable!(),
        ValueKind::Regex { pattern } => Regex::new(pattern).unwrap().is_match(&x.text()),
        ValueKind::Bare { text, has_wildcard: true } => {
            if ty == Ty::Text {
                let g = glob_re(&text.to_lowercase());
                g.is_match(&x.text().to_lowercase()) || words(&x.text()).iter().any(|w| g.is_match(w))
            } else {
                glob_re(text).is_match(&x.text())
            }
        }
        ValueKind::Bare { text, .. } | ValueKind::Quoted { text } => {
            let quoted = matches!(lit.kind, ValueKind::Quoted { .. });
            match ty {
                Ty::Kw => x.text() == *text,
                Ty::Text => {
                    let w = words(text);
                    if w.is_empty() {
                        return x.text() == *text;
                    }
                    let have = words(&x.text());
                    have.windows(w.len()).any(|s| s == w.as_slice())
                }
                Ty::Ip if quoted => x.text() == *text,
                Ty::Json => dynamic_eq(x, text),
                Ty::Int => match (text.parse::<i64>(), parse_code_class(text)) {
                    (Ok(n), _) => matches!(x, O::I(i) if *i == n),
                    (_, Some((lo, hi))) => matches!(x, O::I(i) if lo <= *i && *i <= hi),
                    _ => text.parse::<f64>().is_ok_and(|f| x.num() == Some(f)),
                },
                Ty::Num => text.parse::<f64>().is_ok_and(|f| x.num() == Some(f)),
                Ty::Dur => matches!(x, O::D(d) if Some(*d) == parse_duration(text)),
                Ty::Time => matches!((x, parse_time(text, now)), (O::T(t), Some((lo, hi))) if lo <= *t && *t < hi),
                Ty::Bool => matches!(x, O::B(b) if b.to_string() == text.to_lowercase()),
                Ty::Ip => {
                    let ip = x.text().parse::<std::net::IpAddr>().ok().map(normalize);
                    match (text.parse::<std::net::IpAddr>(), Cidr::parse(text)) {
                        (Ok(want), _) => ip == Some(normalize(want)),
                        (_, Some(c)) => ip.is_some_and(|a| c.contains(a)),
                        _ => false,
                    }
                }
                Ty::Obj => false,
            }
        }
    }
}

fn dynamic_eq(x: &O, text: &str) -> bool {
    match x {
        O::S(s) => s == text,
        O::I(_) | O::F(_) => text.parse::<f64>().is_ok_and(|f| x.num() == Some(f)),
        O::B(b) => b.to_string() == text,
        other => other.text() == text,
    }
}

fn compare(x: &O, ty: Ty, op: CmpOp, text: &str, now: i64) -> bool {
    use std::cmp::Ordering;
    let holds = |o: Ordering| match op {
        CmpOp::Eq | CmpOp::Ne => o == Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    };
    match ty {
        Ty::Int | Ty::Num => match (x.num(), text.parse::<f64>()) {
            (Some(a), Ok(b)) => a.partial_cmp(&b).is_some_and(holds),
            _ => false,
        },
        Ty::Dur => matches!((x, parse_duration(text)), (O::D(a), Some(b)) if holds(a.cmp(&b))),
        Ty::Time => {
            let (O::T(t), Some((lo, hi))) = (x, parse_time(text, now)) else { return false };
            match op {
                CmpOp::Eq | CmpOp::Ne => lo <= *t && *t < hi,
                CmpOp::Lt => *t < lo,
                CmpOp::Ge => *t >= lo,
                CmpOp::Gt => *t >= hi,
                CmpOp::Le => *t < hi,
            }
        }
        Ty::Bool => matches!(x, O::B(b) if b.to_string() == text.to_lowercase()),
        Ty::Ip if matches!(op, CmpOp::Eq | CmpOp::Ne) => match text.parse::<std::net::IpAddr>() {
            Ok(want) => x.text().parse::<std::net::IpAddr>().ok().map(normalize) == Some(normalize(want)),
            Err(_) => x.text() == text,
        },
        Ty::Json => match x {
            O::I(_) | O::F(_) => text.parse::<f64>().is_ok_and(|b| x.num().unwrap().partial_cmp(&b).is_some_and(holds)),
            O::S(s) => holds(s.as_str().cmp(text)),
            O::B(b) => matches!(text, "true" | "false") && holds(b.cmp(&(text == "true"))),
            _ => false,
        },
        _ => match x {
            O::S(s) => holds(s.as_str().cmp(text)),
            other => holds(other.text().as_str().cmp(text)),
        },
    }
}
