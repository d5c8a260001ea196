//! No input makes decoding panic, and any event that decodes gives back its JSON.

use kaq_schema::{DecodeOptions, decode_records};
use proptest::prelude::*;
use serde_json::Value;

const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"7c1a","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/web/exec?command=sh&command=-c","verb":"create","user":{"username":"alice","uid":"u1","groups":["a","b"],"extra":{"k":["v"]}},"impersonatedUser":{"username":"bob"},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl","objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":201,"status":"Success"},"requestObject":{"kind":"Secret","data":{"k":"djE="},"spec":{"containers":[{"securityContext":{"privileged":true}}]}},"responseObject":{"kind":"Status"},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:00.250000Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#;

fn decode_all(text: &str, opts: &DecodeOptions) -> usize {
    let mut n = 0;
    decode_records(text, opts, &mut |r| {
        if let Ok(ev) = r {
            // Whatever decodes must print back to JSON without panicking.
            let _ = ev.to_json();
        }
        n += 1;
    });
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        decode_all(&s, &DecodeOptions::default());
    }

    #[test]
    fn damaged_events_never_panic(cut in 0usize..LINE.len(), len in 0usize..40, insert in "[\\[\\]{}\":,0-9a-z\\\\ ]{0,8}") {
        let mut s = LINE.to_string();
        let end = (cut + len).min(s.len());
        if s.is_char_boundary(cut) && s.is_char_boundary(end) {
            s.replace_range(cut..end, &insert);
        }
        decode_all(&s, &DecodeOptions::default());
        decode_all(&s, &DecodeOptions::keeping_secrets(true));
    }

    /// Any JSON object with an auditID and well-typed known fields decodes, and converts back
    /// to exactly itself (with secrets kept).
    #[test]
    fn decoded_events_convert_back_exactly(
        id in "[a-z0-9-]{1,12}",
        verb in proptest::option::of("[a-z]{1,10}"),
        groups in proptest::option::of(proptest::collection::vec("[a-z:]{0,8}", 0..4)),
        code in proptest::option::of(100i32..600),
        // A field no audit event or objectRef has (an `x` first): `uid` (drawn once in a local
        // run) or `verb` with a number is rightly refused.
        extra_key in "x[a-zA-Z]{0,7}",
        extra_val in proptest::option::of(prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), "[ -~]{0,10}".prop_map(Value::from)]),
        annotations in proptest::option::of(proptest::collection::btree_map("[a-z./]{1,12}", "[ -~]{0,12}", 0..4)),
        micros in 0i64..4_000_000_000_000_000,
    ) {
        let mut m = serde_json::Map::new();
        m.insert("auditID".into(), id.into());
        if let Some(v) = verb { m.insert("verb".into(), v.into()); }
        if let Some(g) = groups { m.insert("user".into(), serde_json::json!({"username": "u", "groups": g})); }
        if let Some(c) = code { m.insert("responseStatus".into(), serde_json::json!({"code": c})); }
        if let Some(v) = extra_val { m.insert(extra_key.clone(), v.clone()); m.insert("objectRef".into(), serde_json::json!({ extra_key: v })); }
        if let Some(a) = annotations { m.insert("annotations".into(), serde_json::to_value(a).unwrap()); }
        m.insert("requestReceivedTimestamp".into(), kaq_schema::time::format_micros(micros).into());
        let v = Value::Object(m);
        let text = v.to_string();
        let ev = kaq_schema::decode_event(&text, &DecodeOptions::keeping_secrets(true)).unwrap();
        prop_assert_eq!(ev.to_json(), v);
    }
}

/// Numbers in unknown fields survive a round trip exactly (serde_json's `float_roundtrip`; found
/// by the decode_records fuzz target).
#[test]
fn floats_in_unknown_fields_round_trip() {
    let line = r#"{"auditID":"a","x":{"code":20044444444444000000000000000000000000000000000000000000000000000000000000000000000000000000000000010248191152060862008}}"#;
    let ev = kaq_schema::decode_event(line, &DecodeOptions::default()).unwrap();
    let printed = ev.to_json().to_string();
    let again = kaq_schema::decode_event(&printed, &DecodeOptions::default()).unwrap();
    assert_eq!(again.to_json(), ev.to_json());
}
