//! Each rule kind against a plain evaluation: random requests (some logged in two stages, in
//! different files; some sharing an auditID with another request; many at the same instant and
//! exactly a window apart), ingested into a store of several segments, run by `kaq_detect::run`;
//! the reference reads the same JSON with serde_json, keeps each request's latest stage by hand
//! and evaluates each kind by its definition (docs/detect.md), brute force.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kaq_detect::{Alert, Bounds, Data, Loader};
use serde_json::Value;

const T0: i64 = 1_795_000_000_000_000; // 2026-11-19
const STEP: i64 = 30_000_000; // times fall on a 30 s grid: ties and exact window edges

mod common;
use common::{Rng, record};

/// Random records spread over `files` files (a request's stages may land in different files).
fn events(seed: u64, n: usize, files: usize) -> Vec<Vec<Value>> {
    let mut r = Rng(seed);
    let mut out = vec![Vec::new(); files];
    let users = ["u1", "u2", "u3"];
    let verbs = ["get", "get", "list", "delete"];
    let names = ["s1", "s2", "s3", "s4", "s5"];
    let span = 1 + r.below(200) as i64;
    for i in 0..n {
        let t = T0 + r.below(span as u64) as i64 * STEP;
        let (verb, user, name) = (r.pick(&verbs), r.pick(&users), r.pick(&names));
        let code = if r.below(5) == 0 { 403 } else { 200 };
        let id = format!("id-{seed}-{i}");
        let f = r.below(files as u64) as usize;
        match r.below(20) {
            // Received, then completed (maybe in another file).
            0..=2 => {
                out[f].push(record(&id, "RequestReceived", t, verb, user, name, None));
                let g = r.below(files as u64) as usize;
                out[g].push(record(&id, "ResponseComplete", t, verb, user, name, Some(code)));
            }
            // Only received (no code: its latest stage matches no `code:` condition).
            3 => out[f].push(record(&id, "RequestReceived", t, verb, user, name, None)),
            // A different request reusing the auditID of an earlier one.
            4 if i > 0 => {
                let reused = format!("id-{seed}-{}", r.below(i as u64));
                out[f].push(record(&reused, "ResponseComplete", t, verb, user, name, Some(code)));
            }
            _ => out[f].push(record(&id, "ResponseComplete", t, verb, user, name, Some(code))),
        }
    }
    out
}

/// The store: each file ingested on its own (one segment each).
fn store(dir: &Path, files: &[Vec<Value>]) -> Data {
    let sdir = dir.join("store");
    let mut s = kaq_store::Store::create(&sdir).unwrap();
    for (i, f) in files.iter().enumerate() {
        let p = dir.join(format!("part{i}.log"));
        let text: String = f.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(&p, text).unwrap();
        s.ingest_path(&p).unwrap();
    }
    drop(s);
    Data::open_store(&sdir).unwrap()
}

/// A request as the reference sees it: its latest stage.
#[derive(Clone, Debug)]
struct Req {
    time: i64,
    id: String,
    verb: String,
    user: String,
    name: String,
    code: Option<i64>,
}

fn stage_rank(s: &str) -> u8 {
    match s {
        "RequestReceived" => 0,
        "ResponseStarted" => 1,
        "ResponseComplete" => 2,
        _ => 3,
    }
}

/// A request's identity: auditID, received time, verb, URI, user.
type Identity = (String, String, String, String, String);

/// Requests by identity, at their latest stage.
fn requests(files: &[Vec<Value>]) -> Vec<Req> {
    let mut by: BTreeMap<Identity, (u8, Value)> = BTreeMap::new();
    for e in files.iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        let key = (
            s("auditID"),
            s("requestReceivedTimestamp"),
            s("verb"),
            s("requestURI"),
            e["user"]["username"].as_str().unwrap().to_string(),
        );
        let rank = stage_rank(e["stage"].as_str().unwrap());
        match by.get(&key) {
            Some((r, _)) if *r >= rank => {}
            _ => {
                by.insert(key, (rank, e.clone()));
            }
        }
    }
    by.into_values()
        .map(|(_, e)| Req {
            time: kaq_schema::time::parse_rfc3339(e["requestReceivedTimestamp"].as_str().unwrap()).unwrap().micros,
            id: e["auditID"].as_str().unwrap().to_string(),
            verb: e["verb"].as_str().unwrap().to_string(),
            user: e["user"]["username"].as_str().unwrap().to_string(),
            name: e["objectRef"]["name"].as_str().unwrap().to_string(),
            code: e["responseStatus"]["code"].as_i64(),
        })
        .collect()
}

/// A hit of the reference: a request, its group, its value, its step.
#[derive(Clone)]
struct H {
    time: i64,
    id: String,
    group: Vec<String>,
    value: String,
    step: usize,
}

/// Alerts from triggers `(position, evidence positions)` of one group's hits, by the definition:
/// triggers in order; one whose earliest evidence is within `suppress` of the alert's latest
/// joins it.
fn clusters(rule: &str, hits: &[H], trig: Vec<(usize, BTreeSet<usize>)>, suppress: i64, names: &[&str]) -> Vec<Key> {
    let mut out: Vec<BTreeSet<usize>> = Vec::new();
    let mut last = i64::MIN;
    for (_, ev) in trig {
        let lo = hits[*ev.first().unwrap()].time;
        let hi = hits[*ev.last().unwrap()].time;
        if !out.is_empty() && lo <= last.saturating_add(suppress) {
            out.last_mut().unwrap().extend(ev);
            last = last.max(hi);
        } else {
            out.push(ev);
            last = hi;
        }
    }
    out.into_iter()
        .map(|set| {
            let ps: Vec<usize> = set.into_iter().collect();
            Key {
                rule: rule.to_string(),
                group: names.iter().map(|s| s.to_string()).zip(hits[ps[0]].group.iter().cloned()).collect(),
                count: ps.len(),
                first: hits[ps[0]].time,
                last: hits[*ps.last().unwrap()].time,
                ids: ps.iter().map(|&p| hits[p].id.clone()).collect(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    first: i64,
    rule: String,
    group: Vec<(String, String)>,
    count: usize,
    last: i64,
    ids: Vec<String>,
}

fn key(a: &Alert) -> Key {
    Key {
        first: a.first,
        rule: a.rule.clone(),
        group: a.group.clone(),
        count: a.count,
        last: a.last,
        ids: a.ids.clone(),
    }
}

/// Runs the rule file `toml` over `data`.
fn detect(toml: &str, data: &Data, bounds: &Bounds) -> Vec<Key> {
    let mut l = Loader::default();
    l.add("test.toml", toml).unwrap();
    let set = l.finish().unwrap();
    let mut p = kaq_detect::prepare(&set, &[]).unwrap();
    let (alerts, _) = kaq_detect::run(&mut p, &set, data, bounds, usize::MAX).unwrap();
    let mut k: Vec<Key> = alerts.iter().map(key).collect();
    k.sort();
    k
}

/// Hits of `pred` (sorted as the engine sorts: time, step, id), grouped by user.
fn hits_by_user(reqs: &[Req], pred: &dyn Fn(&Req) -> bool, step: usize, lo: i64, hi: i64) -> Vec<H> {
    reqs.iter()
        .filter(|r| pred(r) && r.time >= lo && r.time < hi)
        .map(|r| H { time: r.time, id: r.id.clone(), group: vec![r.user.clone()], value: r.name.clone(), step })
        .collect()
}

fn per_group(mut hits: Vec<H>) -> Vec<Vec<H>> {
    hits.sort_by(|a, b| a.time.cmp(&b.time).then(a.step.cmp(&b.step)).then(a.id.cmp(&b.id)));
    let mut g: BTreeMap<Vec<String>, Vec<H>> = BTreeMap::new();
    for h in hits {
        g.entry(h.group.clone()).or_default().push(h);
    }
    g.into_values().collect()
}

fn get_ok(r: &Req) -> bool {
    r.verb == "get" && r.code == Some(200)
}

fn bounds_for(r: &mut Rng) -> (Bounds, i64, i64) {
    if r.below(3) == 0 {
        let since = T0 + r.below(60) as i64 * STEP;
        let until = since + (20 + r.below(200) as i64) * STEP;
        (Bounds { since: Some(since), until: Some(until) }, since, until)
    } else {
        (Bounds::default(), i64::MIN, i64::MAX)
    }
}

/// Asserts equal answers; gives how many alerts there were (tests require some).
fn check(seed: u64, label: &str, got: Vec<Key>, mut want: Vec<Key>) -> usize {
    want.sort();
    assert_eq!(got, want, "seed {seed}: {label}");
    want.len()
}

#[test]
fn thresholds_count_and_distinct_count_exactly_as_defined() {
    let mut total = 0;
    for seed in 1..=6u64 {
        let tmp = tempfile::tempdir().unwrap();
        let files = events(seed, 150 + seed as usize * 20, 3);
        let data = store(tmp.path(), &files);
        let reqs = requests(&files);
        let mut r = Rng(seed * 7);
        for dc in [false, true] {
            let n = 2 + r.below(3);
            let window = (1 + r.below(12) as i64) * STEP; // often exactly a few grid steps: edges
            let suppress = r.below(3) as i64 * 5 * STEP;
            let (bounds, since, until) = bounds_for(&mut r);
            let metric = if dc { "dc(name)" } else { "count" };
            let toml = format!(
                "[[rule]]\nid = \"t\"\nseverity = \"low\"\nquery = \"verb:get code:200\"\ngroup_by = [\"user\"]\nwindow = \"{}s\"\nthreshold = \"{metric} >= {n}\"\nsuppress = \"{}s\"\n",
                window / 1_000_000,
                suppress / 1_000_000
            );
            let got = detect(&toml, &data, &bounds);
            let mut want = Vec::new();
            for hits in per_group(hits_by_user(&reqs, &get_ok, 0, since.saturating_sub(window), until)) {
                let mut trig = Vec::new();
                for (j, h) in hits.iter().enumerate() {
                    if h.time < since {
                        continue;
                    }
                    let inside: BTreeSet<usize> =
                        (0..hits.len()).filter(|&i| hits[i].time > h.time - window && hits[i].time <= h.time).collect();
                    let m = if dc {
                        inside.iter().map(|&i| hits[i].value.as_str()).collect::<BTreeSet<_>>().len() as u64
                    } else {
                        inside.len() as u64
                    };
                    if m >= n {
                        trig.push((j, inside));
                    }
                }
                want.extend(clusters("t", &hits, trig, suppress, &["user"]));
            }
            total += check(seed, &toml, got, want);
        }
    }
    assert!(total > 0, "no seed fired: the test tests nothing");
}

#[test]
fn first_seen_across_segments_exactly_as_defined() {
    let mut total = 0;
    for seed in 11..=16u64 {
        let tmp = tempfile::tempdir().unwrap();
        let files = events(seed, 150, 3);
        let data = store(tmp.path(), &files);
        let reqs = requests(&files);
        let data_start = files
            .iter()
            .flatten()
            .map(|e| kaq_schema::time::parse_rfc3339(e["requestReceivedTimestamp"].as_str().unwrap()).unwrap().micros)
            .min()
            .unwrap();
        let mut r = Rng(seed);
        let lookback = (1 + r.below(20) as i64) * STEP;
        let learn = r.below(3) as i64 * 4 * STEP;
        let window = r.below(4) as i64 * STEP;
        let (bounds, since, until) = bounds_for(&mut r);
        let toml = format!(
            "[[rule]]\nid = \"f\"\nseverity = \"low\"\nquery = \"verb:get code:200\"\ngroup_by = [\"user\"]\nfirst_seen = [\"name\"]\nlookback = \"{}s\"\nlearn = \"{}s\"\nwindow = \"{}s\"\nsuppress = \"0s\"\n",
            lookback / 1_000_000,
            learn / 1_000_000,
            window / 1_000_000
        );
        let got = detect(&toml, &data, &bounds);
        let learn_from = if bounds.since.is_some() { since } else { data_start + learn };
        let mut hits = hits_by_user(&reqs, &get_ok, 0, since.saturating_sub(lookback), until);
        for h in &mut hits {
            h.group.push(h.value.clone());
        }
        let mut want = Vec::new();
        for hits in per_group(hits) {
            let mut trig = Vec::new();
            for (j, h) in hits.iter().enumerate() {
                let seen = hits.iter().any(|x| x.time >= h.time - lookback && x.time < h.time);
                if !seen && h.time >= learn_from && h.time >= since {
                    let ev: BTreeSet<usize> = (0..hits.len())
                        .filter(|&i| hits[i].time >= h.time && hits[i].time <= h.time + window)
                        .collect();
                    trig.push((j, ev));
                }
            }
            want.extend(clusters("f", &hits, trig, 0, &["user", "name"]));
        }
        total += check(seed, &toml, got, want);
    }
    assert!(total > 0, "no seed fired: the test tests nothing");
}

#[test]
fn spikes_exactly_as_defined() {
    let mut total = 0;
    for seed in 21..=26u64 {
        let tmp = tempfile::tempdir().unwrap();
        let files = events(seed, 300, 2);
        let data = store(tmp.path(), &files);
        let reqs = requests(&files);
        let mut r = Rng(seed);
        let bucket = (1 + r.below(4) as i64) * STEP;
        let factor = 1.0 + r.below(4) as f64 * 0.5;
        let min_count = 1 + r.below(3);
        let alpha = [0.25, 0.5, 1.0][r.below(3) as usize];
        let (bounds, since, until) = bounds_for(&mut r);
        let history = bucket * (5.0f64 / alpha).ceil() as i64;
        let toml = format!(
            "[[rule]]\nid = \"s\"\nseverity = \"low\"\nquery = \"verb:get code:200\"\ngroup_by = [\"user\"]\nspike = {{ bucket = \"{}s\", factor = {factor}, min_count = {min_count}, alpha = {alpha} }}\nsuppress = \"0s\"\n",
            bucket / 1_000_000
        );
        let got = detect(&toml, &data, &bounds);
        let mut want = Vec::new();
        for hits in per_group(hits_by_user(&reqs, &get_ok, 0, since.saturating_sub(history), until)) {
            // Dense: every bucket from the group's first to its last, empty ones included.
            let mut counts: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
            for (i, h) in hits.iter().enumerate() {
                counts.entry(h.time.div_euclid(bucket)).or_default().push(i);
            }
            let (b0, b1) = (*counts.keys().next().unwrap(), *counts.keys().last().unwrap());
            let mut base = 0.0f64;
            let mut trig = Vec::new();
            for b in b0..=b1 {
                let members = counts.get(&b).cloned().unwrap_or_default();
                let c = members.len() as u64;
                if c > 0 && c >= min_count && c as f64 >= factor * base {
                    let ev: BTreeSet<usize> = members.iter().copied().collect();
                    for &p in &members {
                        if hits[p].time >= since {
                            trig.push((p, ev.clone()));
                        }
                    }
                }
                base = alpha * c as f64 + (1.0 - alpha) * base;
            }
            want.extend(clusters("s", &hits, trig, 0, &["user"]));
        }
        total += check(seed, &toml, got, want);
    }
    assert!(total > 0, "no seed fired: the test tests nothing");
}

#[test]
fn sequences_across_files_exactly_as_defined() {
    let mut total = 0;
    for seed in 31..=36u64 {
        let tmp = tempfile::tempdir().unwrap();
        let files = events(seed, 200, 3);
        let data = store(tmp.path(), &files);
        let reqs = requests(&files);
        let mut r = Rng(seed);
        let window = (1 + r.below(10) as i64) * STEP;
        let suppress = r.below(2) as i64 * 3 * STEP;
        let (bounds, since, until) = bounds_for(&mut r);
        let toml = format!(
            "[[rule]]\nid = \"q\"\nseverity = \"low\"\nsequence = [\"verb:list code:200\", \"verb:delete\"]\ngroup_by = [\"user\"]\nwindow = \"{}s\"\nsuppress = \"{}s\"\n",
            window / 1_000_000,
            suppress / 1_000_000
        );
        let got = detect(&toml, &data, &bounds);
        let mut all =
            hits_by_user(&reqs, &|r| r.verb == "list" && r.code == Some(200), 0, since.saturating_sub(window), until);
        all.extend(hits_by_user(&reqs, &|r| r.verb == "delete", 1, since.saturating_sub(window), until));
        let mut want = Vec::new();
        for hits in per_group(all) {
            let mut trig = Vec::new();
            for (j, b) in hits.iter().enumerate() {
                if b.step != 1 || b.time < since {
                    continue;
                }
                // The latest A strictly before B (the largest auditID among ties), within the window.
                let a = (0..hits.len())
                    .filter(|&i| hits[i].step == 0 && hits[i].time < b.time && b.time - hits[i].time <= window)
                    .max_by(|&x, &y| hits[x].time.cmp(&hits[y].time).then(hits[x].id.cmp(&hits[y].id)));
                if let Some(a) = a {
                    trig.push((j, BTreeSet::from([a, j])));
                }
            }
            want.extend(clusters("q", &hits, trig, suppress, &["user"]));
        }
        total += check(seed, &toml, got, want);
    }
    assert!(total > 0, "no seed fired: the test tests nothing");
}

#[test]
fn single_events_with_exceptions_and_lists_exactly_as_defined() {
    for seed in 41..=44u64 {
        let tmp = tempfile::tempdir().unwrap();
        let files = events(seed, 120, 2);
        let data = store(tmp.path(), &files);
        let reqs = requests(&files);
        let toml = "[lists]\nquiet = [\"u1\"]\n\n[[rule]]\nid = \"e\"\nseverity = \"low\"\nquery = \"verb:delete\"\ngroup_by = [\"user\"]\nsuppress = \"60s\"\nexceptions = [{ user = \"$quiet\" }, { user = \"u2\", name = [\"s1\", \"s2\"] }]\n";
        let got = detect(toml, &data, &Bounds::default());
        let pred =
            |r: &Req| r.verb == "delete" && r.user != "u1" && !(r.user == "u2" && (r.name == "s1" || r.name == "s2"));
        let mut want = Vec::new();
        for hits in per_group(hits_by_user(&reqs, &pred, 0, i64::MIN, i64::MAX)) {
            let trig = (0..hits.len()).map(|j| (j, BTreeSet::from([j]))).collect();
            want.extend(clusters("e", &hits, trig, 60_000_000, &["user"]));
        }
        assert!(!want.is_empty(), "seed {seed}: the test needs some deletes");
        check(seed, toml, got, want);
    }
}

#[test]
fn a_reused_audit_id_never_hides_a_request() {
    // Two different requests under one auditID, and a request logged in two stages in two files:
    // the threshold counts three requests.
    let tmp = tempfile::tempdir().unwrap();
    let files = vec![
        vec![
            record("a", "ResponseComplete", T0, "get", "u", "s1", Some(200)),
            record("b", "RequestReceived", T0 + STEP, "get", "u", "s2", None),
        ],
        vec![
            record("a", "ResponseComplete", T0 + 2 * STEP, "get", "u", "s3", Some(200)),
            record("b", "ResponseComplete", T0 + STEP, "get", "u", "s2", Some(200)),
        ],
    ];
    let data = store(tmp.path(), &files);
    let toml = "[[rule]]\nid = \"t\"\nseverity = \"low\"\nquery = \"verb:get code:200\"\ngroup_by = [\"user\"]\nwindow = \"5m\"\nthreshold = \"count >= 3\"\n";
    let got = detect(toml, &data, &Bounds::default());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].count, 3);
    assert_eq!(got[0].ids, ["a", "b", "a"]);
}
