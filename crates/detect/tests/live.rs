//! Live detection (`kaq watch`, `kaq serve`) from the hits held in memory against its
//! definition: random requests arrive in time order in small commits (a request's two stages
//! often in different commits, some auditIDs reused by a later request, hours of data so that
//! held hits are let go and a first-seen rule relies on what it summarized), and each commit is
//! evaluated as it lands. The reference runs every rule over the whole store after each commit
//! and sends what no alert sent before covers: the alerts sent must be the same (rule, group,
//! first time), none twice, and nearly every evaluation must come from memory.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Rng, record};
use kaq_detect::live::Live;
use kaq_detect::{Bounds, Data, Loader};
use serde_json::Value;

const T0: i64 = 1_795_000_000_000_000; // 2026-11-19
const STEP: i64 = 60_000_000;

const RULES: &str = r#"
[[rule]]
id = "thr"
severity = "low"
query = "verb:get code:200"
group_by = ["user"]
window = "5m"
threshold = "count >= 3"
suppress = "2m"

[[rule]]
id = "dc"
severity = "low"
query = "verb:get"
group_by = ["user"]
window = "10m"
threshold = "dc(name) >= 3"

[[rule]]
id = "fs"
severity = "low"
query = "verb:get code:200"
group_by = ["user"]
first_seen = ["name"]
lookback = "2h"
learn = "20m"
window = "5m"
suppress = "0s"

[[rule]]
id = "spk"
severity = "low"
query = "verb:(get OR list)"
group_by = ["user"]
spike = { bucket = "2m", factor = 2.0, min_count = 3, alpha = 1.0 }

[[rule]]
id = "seq"
severity = "low"
sequence = ["verb:list", "verb:delete"]
group_by = ["user"]
window = "6m"

[[rule]]
id = "one"
severity = "low"
query = "verb:delete code:403"
group_by = ["user"]

[[rule]]
id = "forged"
severity = "low"
query = "id_reused:true"
group_by = ["user"]
"#;

/// Requests over about five hours, in time order; each commit a run of them. A request logged in
/// two stages has its second one a few records later (often in the next commit).
fn commits(seed: u64, n: usize) -> Vec<Vec<Value>> {
    let mut r = Rng(seed);
    let users = ["u1", "u2", "u3"];
    let verbs = ["get", "get", "list", "delete"];
    let names = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let mut t = T0;
    let mut records: Vec<Value> = Vec::new();
    let mut late: Vec<(usize, Value)> = Vec::new();
    for i in 0..n {
        t += r.below(3) as i64 * STEP / 2 + if r.below(80) == 0 { 30 * STEP } else { 0 };
        let (verb, user, name) = (r.pick(&verbs), r.pick(&users), r.pick(&names));
        let code = if r.below(4) == 0 { 403 } else { 200 };
        let id = format!("{seed}-{i}");
        match r.below(12) {
            0..=2 => {
                records.push(record(&id, "RequestReceived", t, verb, user, name, None));
                late.push((
                    i + 1 + r.below(6) as usize,
                    record(&id, "ResponseComplete", t, verb, user, name, Some(code)),
                ));
            }
            // The auditID of a request some time before (which becomes evidence only now: close
            // to an alert already sent, it would join that alert, not be sent again).
            3 if i > 100 && r.below(4) == 0 => {
                let reused = format!("{seed}-{}", i - 30 - r.below(30) as usize);
                records.push(record(&reused, "ResponseComplete", t, verb, user, name, Some(code)));
            }
            _ => records.push(record(&id, "ResponseComplete", t, verb, user, name, Some(code))),
        }
        let (due, rest): (Vec<_>, Vec<_>) = late.drain(..).partition(|(at, _)| *at <= i);
        records.extend(due.into_iter().map(|(_, e)| e));
        late = rest;
    }
    records.extend(late.into_iter().map(|(_, e)| e));
    let mut out = Vec::new();
    let mut rest = records.as_slice();
    while !rest.is_empty() {
        let k = (1 + r.below(20) as usize).min(rest.len());
        out.push(rest[..k].to_vec());
        rest = &rest[k..];
    }
    out
}

fn time_of(e: &Value) -> i64 {
    kaq_schema::time::parse_rfc3339(e["requestReceivedTimestamp"].as_str().unwrap()).unwrap().micros
}

type Key = (String, Vec<(String, String)>, i64);

/// One alert sent by the reference: its key and span.
struct Sent {
    rule: String,
    group: Vec<(String, String)>,
    first: i64,
    last: i64,
}

/// What live detection would send if it ran every rule over the whole store after each commit
/// and sent the alerts no alert sent before covers (same rule and group, spans within the rule's
/// `suppress` of each other), as the alert state does.
fn reference(set: &kaq_detect::RuleSet, sdir: &Path, sent: &mut Vec<Sent>) -> Vec<Key> {
    let mut p = kaq_detect::prepare(set, &[]).unwrap();
    let data = Data::open_store(sdir).unwrap();
    let (alerts, _) = kaq_detect::run(&mut p, set, &data, &Bounds::default(), usize::MAX).unwrap();
    let mut new = Vec::new();
    for a in alerts {
        let sup = set.rule(&a.rule).unwrap().suppress;
        match sent
            .iter_mut()
            .find(|s| s.rule == a.rule && s.group == a.group && a.first <= s.last + sup && s.first <= a.last + sup)
        {
            Some(s) => s.last = s.last.max(a.last),
            None => {
                sent.push(Sent { rule: a.rule.clone(), group: a.group.clone(), first: a.first, last: a.last });
                new.push((a.rule, a.group, a.first));
            }
        }
    }
    new
}

fn run_live(dir: &Path, seed: u64) -> (Vec<Key>, Vec<Key>, usize, usize) {
    let mut l = Loader::default();
    l.add("test.toml", RULES).unwrap();
    let set = l.finish().unwrap();
    let sdir = dir.join("store");
    let mut store = kaq_store::Store::create(&sdir).unwrap();
    let prepared = kaq_detect::prepare(&set, &[]).unwrap();
    let mut live = Live::open(&set, prepared, &sdir, None, usize::MAX).unwrap();
    let mut sent: Vec<Key> = Vec::new();
    let (mut want, mut reference_sent) = (Vec::new(), Vec::new());
    let (mut evaluations, mut from_memory) = (0, 0);
    for (i, commit) in commits(seed, 320).iter().enumerate() {
        let p = dir.join(format!("part{i}.log"));
        std::fs::write(&p, commit.iter().map(|e| format!("{e}\n")).collect::<String>()).unwrap();
        store.ingest_path(&p).unwrap();
        let times: Vec<i64> = commit.iter().map(time_of).collect();
        let ids: BTreeSet<String> = commit.iter().map(|e| e["auditID"].as_str().unwrap().to_string()).collect();
        live.committed(
            Some((*times.iter().min().unwrap(), *times.iter().max().unwrap())),
            Some(ids.into_iter().collect()),
        );
        live.evaluate(&mut |alerts| sent.extend(alerts.iter().map(|a| (a.rule.clone(), a.group.clone(), a.first))))
            .unwrap();
        evaluations += 1;
        let n_rules = live.prepared().len();
        from_memory += usize::from(live.last_stats.from_memory == n_rules);
        want.extend(reference(&set, &sdir, &mut reference_sent));
    }
    (sent, want, evaluations, from_memory)
}
#[test]
fn live_alerts_from_memory_are_those_of_runs_over_the_whole_store() {
    let mut kinds = BTreeSet::new();
    for seed in 1..=2u64 {
        let tmp = tempfile::tempdir().unwrap();
        let (sent, want, evaluations, from_memory) = run_live(tmp.path(), seed);
        let once: BTreeSet<&Key> = sent.iter().collect();
        assert_eq!(once.len(), sent.len(), "seed {seed}: an alert sent twice: {sent:?}");
        let want: BTreeSet<&Key> = want.iter().collect();
        assert_eq!(
            once.difference(&want).collect::<Vec<_>>(),
            Vec::<&&Key>::new(),
            "seed {seed}: sent live, not by the reference"
        );
        assert_eq!(
            want.difference(&once).collect::<Vec<_>>(),
            Vec::<&&Key>::new(),
            "seed {seed}: sent by the reference, never live"
        );
        // The first evaluation reads the store (nothing held yet), and so does a rule whose new
        // evidence is older than what it holds (a request whose auditID, reused now, is from
        // more than an hour before); the others come from memory.
        assert!(from_memory * 10 >= evaluations * 8, "seed {seed}: {from_memory} of {evaluations} from memory");
        kinds.extend(sent.iter().map(|k| k.0.clone()));
    }
    let all: BTreeSet<String> = ["thr", "dc", "fs", "spk", "seq", "one", "forged"].map(String::from).into();
    assert_eq!(kinds, all, "every kind fired");
}
