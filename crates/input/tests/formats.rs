//! Wrapper decoding never panics, and every record it counts is given as an event or a reject,
//! whatever the input: values built from the keys and values the wrappers use, nested at random,
//! sometimes as JSON text inside strings, sometimes cut short.

use kaq_input::{InputFormat, decode_input};
use kaq_schema::DecodeOptions;
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "auditID",
    "kind",
    "verb",
    "objectRef",
    "resource",
    "records",
    "properties",
    "log",
    "category",
    "log_s",
    "Category",
    "protoPayload",
    "serviceName",
    "methodName",
    "resourceName",
    "status",
    "code",
    "operation",
    "id",
    "first",
    "last",
    "insertId",
    "timestamp",
    "labels",
    "request",
    "response",
    "authorizationInfo",
    "granted",
    "Entry",
    "AuditPayload",
    "logEvents",
    "messageType",
    "message",
    "awslogs",
    "data",
    "events",
    "results",
    "field",
    "value",
    "@message",
    "Records",
    "Data",
    "tables",
    "columns",
    "rows",
    "name",
    "AuditId",
    "User",
    "ObjectRef",
    "items",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "k8s.io",
            "io.k8s.core.v1.pods.exec.create",
            "io.k8s.get",
            "io.k8s.v1",
            "core/v1/namespaces/a/pods/b/exec/b",
            "core/v1/namespaces",
            "/",
            "kube-audit",
            "DATA_MESSAGE",
            "CONTROL_MESSAGE",
            "EventList",
            "secrets",
            "H4sIAAAAAAAA/wMAAAAAAAAAAAA=",
            "H4sI",
            "@message",
            "AuditId",
            "",
        ])
        .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())),
            // JSON text in a string, as AKS and EKS carry events.
            inner.prop_map(|v| Value::String(v.to_string())),
        ]
    })
}

fn check(text: &str) {
    for format in InputFormat::ALL {
        let mut given = 0;
        let n = decode_input(text, &DecodeOptions::default(), format, &mut |r| {
            given += 1;
            if let Err(r) = r {
                assert!(!r.error.0.is_empty(), "a reject says why");
            }
        });
        assert_eq!(n, given, "{format}: {text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_counts_add_up(v in value(), cut in 0usize..64, twice: bool) {
        let text = v.to_string();
        check(&text);
        if twice {
            check(&format!("{text}{text}"));
        }
        // Cut short, at a char boundary.
        let mut at = text.len().saturating_sub(cut);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        check(&text[..at]);
    }
}
