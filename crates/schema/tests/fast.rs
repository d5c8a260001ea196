//! The common-case decoder, with or without a projection ([`Fields`]), against the full decoder
//! ([`decode_full`]) on hostile lines: the same rejections with the same reasons, and the same
//! event in every part asked for.

use kaq_schema::{DecodeOptions, Event, Fields, decode_event, decode_full};
use proptest::prelude::*;

/// The keys of an event, with values the API server writes (and some it does not).
const PAIRS: &[(&str, &str)] = &[
    ("kind", r#""Event""#),
    ("apiVersion", r#""audit.k8s.io/v1""#),
    ("level", r#""RequestResponse""#),
    ("auditID", r#""33dcd77f-f179-42d2-a48b-96628f3c4be3""#),
    ("stage", r#""ResponseComplete""#),
    ("requestURI", r#""/api/v1/namespaces/prod/pods/web-0/exec?command=sh&command=-c&command=id""#),
    ("verb", r#""create""#),
    (
        "user",
        r#"{"username":"alice@example.com","uid":"u1","groups":["system:authenticated","dev"],"extra":{"k":["v"]}}"#,
    ),
    ("impersonatedUser", r#"{"username":"system:serviceaccount:ci:bot","groups":["system:serviceaccounts"]}"#),
    ("sourceIPs", r#"["10.0.0.1","10.0.0.2"]"#),
    ("userAgent", r#""kubectl/v1.30.4""#),
    (
        "objectRef",
        r#"{"resource":"pods","namespace":"prod","name":"web-0","uid":"o1","apiGroup":"","apiVersion":"v1","resourceVersion":"7","subresource":"exec"}"#,
    ),
    (
        "responseStatus",
        r#"{"metadata":{},"status":"Failure","message":"no","reason":"Forbidden","details":{"a":1},"code":403}"#,
    ),
    (
        "requestObject",
        r#"{"kind":"Pod","spec":{"hostNetwork":true,"containers":[{"name":"c","securityContext":{"privileged":true}}]}}"#,
    ),
    ("responseObject", r#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#),
    ("requestReceivedTimestamp", r#""2026-11-20T05:00:00.000000Z""#),
    ("stageTimestamp", r#""2026-11-20T05:00:01.500000Z""#),
    ("annotations", r#"{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC"}"#),
];

/// Values that are wrong, odd or hostile somewhere.
const ODD: &[&str] = &[
    "null",
    "7",
    "-1.5e3",
    "1e999",
    "99999999999",
    r#""x""#,
    r#""""#,
    "{}",
    "[]",
    "true",
    r#"["a",1]"#,
    r#"["a",null]"#,
    r#"{"unknownKey":1}"#,
    r#"{"username":"bob","username":"eve"}"#,
    r#"{"username":null}"#,
    r#"{"resource":"secrets","resource":"pods"}"#,
    r#"{"code":"403"}"#,
    r#""2020-05-05T16:16:37Z""#,
    r#""2020-05-05T16:16:37.1234567+02:00""#,
    r#""not a time""#,
    r#""\ud800""#,
    r#""a\u0000b""#,
    r#""caf\u00e9""#,
    r#""bad \q escape""#,
    "\"raw\u{1}control\"",
    r#"{"kind":"Secret","data":{"k":"djE="},"data":{"k":"djI="}}"#,
    r#"{"a":{"a":{"a":{"a":[[[[[[1]]]]]]}}}}"#,
    r#"{"k":"v"}"#,
    r#""Event""#,
    r#""EventList""#,
    // Read byte by byte by the first common-case decoder (or left by it to the next).
    r#""RBAC: allowed by ClusterRoleBinding \"deployer\" of \\ \/ \b\f\n\r\t""#,
    r#""\ud83d\ude00 \u00E9""#,
    r#""\uDC00""#,
    r#"[true,false,null,-0,0.5e-3,1E+2,{"a":[]}]"#,
    r#"{"n":01}"#,
    r#"{"n":1.}"#,
    r#"{"n":-}"#,
    r#"[tru]"#,
    "2147483648",
    "-2147483648",
    "403.0",
    "{\"a\":\t1}",
    r#"{"a" : [ 1 , "b" ] }"#,
];

/// Keys nobody expects, or known keys spelled with escapes.
const ODD_KEYS: &[&str] = &[
    r#""timestamp""#,
    r#""metadata""#,
    r#""somethingNew""#,
    r#""\u0076erb""#,
    r#""au\u0064itID""#,
    r#""user ""#,
    r#""VERB""#,
];

#[derive(Debug, Clone)]
enum Op {
    /// Replace pair i's value by an odd one.
    Value(usize, usize),
    /// Give pair i twice (its own value, or an odd one).
    Duplicate(usize, Option<usize>),
    /// Add an odd key with an odd or an ordinary value.
    Key(usize, usize),
    /// Drop pair i.
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = PAIRS.len();
    prop_oneof![
        (0..n, 0..ODD.len()).prop_map(|(i, v)| Op::Value(i, v)),
        (0..n, proptest::option::of(0..ODD.len())).prop_map(|(i, v)| Op::Duplicate(i, v)),
        (0..ODD_KEYS.len(), 0..ODD.len()).prop_map(|(k, v)| Op::Key(k, v)),
        (0..n).prop_map(Op::Drop),
    ]
}

/// A line: the pairs after `ops`, in an order shuffled by `order`, maybe cut at `cut`.
fn line(ops: &[Op], order: &[usize], cut: Option<usize>, spaces: bool) -> String {
    let mut pairs: Vec<(String, String)> = PAIRS.iter().map(|(k, v)| (format!("\"{k}\""), v.to_string())).collect();
    for op in ops {
        match *op {
            Op::Value(i, v) => {
                let i = i % pairs.len().max(1);
                pairs[i].1 = ODD[v].to_string();
            }
            Op::Duplicate(i, v) => {
                let (k, old) = pairs[i % pairs.len().max(1)].clone();
                pairs.push((k, v.map_or(old, |v| ODD[v].to_string())));
            }
            Op::Key(k, v) => pairs.push((ODD_KEYS[k].to_string(), ODD[v].to_string())),
            Op::Drop(i) => {
                if pairs.len() > 1 {
                    pairs.remove(i % pairs.len());
                }
            }
        }
    }
    for (i, &o) in order.iter().enumerate() {
        let j = o % pairs.len();
        let i = i % pairs.len();
        pairs.swap(i, j);
    }
    let sep = if spaces { ", " } else { "," };
    let colon = if spaces { " : " } else { ":" };
    let mut s = format!("{{{}}}", pairs.iter().map(|(k, v)| format!("{k}{colon}{v}")).collect::<Vec<_>>().join(sep));
    if let Some(c) = cut {
        let mut c = c % (s.len() + 1);
        while !s.is_char_boundary(c) {
            c -= 1;
        }
        s.truncate(c);
    }
    s
}

const PROJECTIONS: &[Fields] = &[
    Fields::BASE,
    Fields::IMPERSONATED_USER,
    Fields::USER_GROUPS,
    Fields::SOURCE_IPS,
    Fields::OBJECT_REF,
    Fields::RESPONSE_STATUS,
    Fields::ANNOTATIONS,
    Fields::REQUEST_OBJECT,
    Fields::RESPONSE_OBJECT,
    Fields::ALL,
];

/// `ev` with only the parts `f` asks for (what a projected decode must equal).
fn restrict(mut ev: Event<'_>, f: Fields) -> Event<'_> {
    if f == Fields::ALL {
        return ev;
    }
    if !f.has(Fields::IMPERSONATED_USER) {
        ev.impersonated_user = None;
    }
    if !f.has(Fields::USER_GROUPS) {
        if let Some(u) = &mut ev.user {
            u.groups = None;
        }
        ev.derived.user_kind = None;
    }
    if !f.has(Fields::SOURCE_IPS) {
        ev.source_ips = None;
    }
    if !f.has(Fields::OBJECT_REF) {
        ev.object_ref = None;
        ev.derived.exec_command = None;
    }
    if !f.has(Fields::RESPONSE_STATUS) {
        ev.response_status = None;
    }
    if !f.has(Fields::ANNOTATIONS) {
        ev.annotations = None;
    }
    if !f.has(Fields::REQUEST_OBJECT) {
        ev.request_object = None;
        ev.derived.pod = None;
    }
    if !f.has(Fields::RESPONSE_OBJECT) {
        ev.response_object = None;
    }
    // Kept only with every part (and what a projected event says of them is not used).
    ev.unmapped = None;
    ev.rewritten = false;
    ev
}

fn check(text: &str) {
    for keep_secrets in [false, true] {
        let full = decode_full(text, &DecodeOptions::keeping_secrets(keep_secrets));
        for &fields in PROJECTIONS {
            let got = decode_event(text, &DecodeOptions { keep_secrets, fields });
            match (&full, got) {
                (Err(want), Err(got)) => assert_eq!(&got, want, "{text}"),
                (Ok(want), Ok(got)) => {
                    assert_eq!(restrict(got, fields), restrict(want.clone(), fields), "{fields:?} {text}")
                }
                (want, got) => panic!("{fields:?}: full {want:?}, fast {got:?}: {text}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn fast_equals_full_on_hostile_lines(
        ops in proptest::collection::vec(op(), 0..4),
        order in proptest::collection::vec(0..40usize, 0..6),
        cut in proptest::option::weighted(0.1, 0..2000usize),
        spaces in any::<bool>(),
    ) {
        check(&line(&ops, &order, cut, spaces));
    }
}

#[test]
fn fast_equals_full_on_every_single_odd_value() {
    check(&line(&[], &[], None, false));
    for i in 0..PAIRS.len() {
        for v in 0..ODD.len() {
            check(&line(&[Op::Value(i, v)], &[], None, false));
            check(&line(&[Op::Duplicate(i, Some(v))], &[], None, true));
        }
        check(&line(&[Op::Duplicate(i, None)], &[], None, false));
    }
    for k in 0..ODD_KEYS.len() {
        for v in 0..ODD.len() {
            check(&line(&[Op::Key(k, v)], &[], None, false));
        }
    }
    for text in
        ["", "[]", "[1]", "7", "null", r#"{"auditID":"a"} x"#, r#"{"auditID":"a"}{"#, "{", r#"{"auditID":"a",}"#]
    {
        check(text);
    }
}

#[test]
fn a_projection_leaves_out_what_was_not_asked_for() {
    let text = line(&[], &[], None, false);
    let ev = decode_event(&text, &DecodeOptions { keep_secrets: false, fields: Fields::BASE }).unwrap();
    assert_eq!(ev.username(), Some("alice@example.com"));
    // The groups (and `user_kind`, derived from them) only when asked for.
    assert_eq!((ev.user.as_ref().unwrap().groups.as_ref(), ev.derived.user_kind), (None, None));
    let with = decode_event(&text, &DecodeOptions { keep_secrets: false, fields: Fields::USER_GROUPS }).unwrap();
    assert_eq!(with.user.as_ref().unwrap().groups.as_ref().map(Vec::len), Some(2));
    assert_eq!(with.derived.user_kind, decode_full(&text, &DecodeOptions::default()).unwrap().derived.user_kind);
    assert!(with.derived.user_kind.is_some());
    assert_eq!((ev.verb.as_deref(), ev.stage_timestamp.is_some()), (Some("create"), true));
    assert!(ev.object_ref.is_none() && ev.source_ips.is_none() && ev.annotations.is_none());
    assert!(ev.request_object.is_none() && ev.response_object.is_none() && ev.derived.pod.is_none());
    // With the response body asked for, it is redacted as always (and objectRef comes with it).
    let ev = decode_event(&text, &DecodeOptions { keep_secrets: false, fields: Fields::RESPONSE_OBJECT }).unwrap();
    assert!(ev.response_object.as_deref().unwrap().contains("kaq-redacted:sha256:"), "{:?}", ev.response_object);
    assert_eq!(ev.object_ref.unwrap().resource.as_deref(), Some("pods"));
}
