//! What the rule tests share: a seeded random number generator and audit records as JSON.

#![allow(dead_code)]

use serde_json::{Value, json};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub fn ts(us: i64) -> String {
    kaq_detect::source::time_literal(us)
}

/// One record as JSON.
#[allow(clippy::too_many_arguments)]
pub fn record(id: &str, stage: &str, t: i64, verb: &str, user: &str, name: &str, code: Option<i64>) -> Value {
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": id, "stage": stage,
        "requestURI": format!("/api/v1/namespaces/ns/secrets/{name}"),
        "verb": verb, "user": {"username": user}, "sourceIPs": ["10.0.0.1"],
        "objectRef": {"resource": "secrets", "namespace": "ns", "name": name},
        "requestReceivedTimestamp": ts(t),
        "stageTimestamp": ts(t + if stage == "RequestReceived" { 0 } else { 1000 }),
    });
    if let Some(c) = code {
        e["responseStatus"] = json!({"code": c});
    }
    e
}
