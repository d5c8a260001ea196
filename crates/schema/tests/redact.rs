//! Redaction fails closed: hostile shapes of Secret bodies, each of which once let a value
//! through decoding (issue 13), and the rule for JSON nested too deep.

use kaq_schema::json::MAX_DEPTH;
use kaq_schema::redact::{DEEP_MARKER, MARKER_PREFIX, sanitize};
use kaq_schema::{DecodeOptions, Event, decode_event};
use serde_json::Value;

const REDACT: DecodeOptions = DecodeOptions::keeping_secrets(false);
const KEEP: DecodeOptions = DecodeOptions::keeping_secrets(true);

/// An event about `resource` (no objectRef when `None`) with this request body.
fn event(resource: Option<&str>, uri: &str, body: &str) -> String {
    let object_ref = resource.map(|r| format!(r#""objectRef":{{"resource":"{r}","namespace":"a","name":"b"}},"#));
    format!(
        r#"{{"kind":"Event","auditID":"x","stage":"ResponseComplete","verb":"update","requestURI":"{uri}",{}"requestObject":{body}}}"#,
        object_ref.unwrap_or_default()
    )
}

/// What a reader of the decoded event sees: its JSON as kaq prints and stores it.
fn printed(line: &str, opts: &DecodeOptions) -> String {
    let ev = decode_event(line, opts).unwrap_or_else(|e| panic!("{e}: {line}"));
    let json = ev.to_json().to_string();
    // Whatever kaq prints parses again (with serde_json's default limits).
    serde_json::from_str::<Value>(&json).unwrap_or_else(|e| panic!("printed event does not parse: {e}"));
    json
}

fn assert_hidden(line: &str, secret: &str) {
    let out = printed(line, &REDACT);
    assert!(!out.contains(secret), "{secret} leaked: {out}");
    assert!(printed(line, &KEEP).contains(secret) || out.contains("kaq-redacted"), "control: {line}");
}

fn nest(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

#[test]
fn a_secret_with_a_sibling_nested_too_deep_is_replaced_whole() {
    for depth in [MAX_DEPTH, 127, 128, 5000] {
        let body = format!(r#"{{"kind":"Secret","data":{{"k":"REVFUC1TRUNSRVQ="}},"deep":{}}}"#, nest(depth));
        let line = event(Some("configmaps"), "/api/v1/namespaces/a/configmaps/b", &body);
        let ev = decode_event(&line, &REDACT).unwrap();
        assert_eq!(ev.request_object.as_deref(), Some(DEEP_MARKER), "depth {depth}");
        assert!(ev.rewritten);
        assert_hidden(&line, "REVFUC1TRUNSRVQ=");
        // A patch to a secret (no kind) the same way.
        let patch = format!(r#"{{"data":{{"k":"UEFUQ0gtU0VDUkVU"}},"deep":{}}}"#, nest(depth));
        assert_hidden(&event(Some("secrets"), "/api/v1/namespaces/a/secrets/b", &patch), "UEFUQ0gtU0VDUkVU");
    }
}

#[test]
fn values_nested_too_deep_are_replaced_whatever_they_hold() {
    // The same with and without --keep-secrets, in every JSON field kept as text: nothing
    // downstream could read them (queries, Parquet round trips, other JSON readers).
    let deep = format!(r#"{{"a":{}}}"#, nest(MAX_DEPTH));
    let ok = format!(r#"{{"a":{}}}"#, nest(MAX_DEPTH - 1));
    for opts in [REDACT, KEEP] {
        let line = event(None, "/apis/x/v1/things", &deep);
        let ev = decode_event(&line, &opts).unwrap();
        assert_eq!(ev.request_object.as_deref(), Some(DEEP_MARKER));
        let line = event(None, "/apis/x/v1/things", &ok);
        let ev = decode_event(&line, &opts).unwrap();
        assert_eq!(ev.request_object.as_deref(), Some(ok.as_str()), "{} levels are kept", MAX_DEPTH);
        assert!(!ev.rewritten);
        let line = format!(
            r#"{{"auditID":"x","user":{{"username":"u","extra":{deep}}},"responseStatus":{{"code":200,"details":{deep},"metadata":{deep}}},"responseObject":{deep}}}"#
        );
        let ev = decode_event(&line, &opts).unwrap();
        let u = ev.user.as_ref().unwrap();
        let st = ev.response_status.as_ref().unwrap();
        for v in [&u.extra, &st.details, &st.metadata, &ev.response_object] {
            assert_eq!(v.as_deref(), Some(DEEP_MARKER));
        }
    }
    let marker: Value = serde_json::from_str(DEEP_MARKER).unwrap();
    assert!(marker["kaq-redacted"].as_str().unwrap().contains(&format!("deeper than {MAX_DEPTH} levels")));
}

#[test]
fn escaped_and_odd_cased_kinds_are_secrets() {
    let cm = |body: &str| event(Some("configmaps"), "/api/v1/namespaces/a/configmaps/b", body);
    for (body, secret) in [
        (r#"{"kind":"Secr\u0065t","data":{"k":"RVNDQVBFRA=="}}"#, "RVNDQVBFRA=="),
        (r#"{"k\u0069nd":"Secret","data":{"k":"RVNDQVBFRC1LRVk="}}"#, "RVNDQVBFRC1LRVk="),
        (r#"{"kind":"Secret","d\u0061ta":{"k":"RVNDQVBFRC1EQVRB"}}"#, "RVNDQVBFRC1EQVRB"),
        (r#"{"kind":"List","items":[{"kind":"Secr\u0065t","stringData":{"k":"TElTVC1JVEVN"}}]}"#, "TElTVC1JVEVN"),
        (r#"{"kind":"\u0053ecretList","items":[{"data":{"k":"U0VDUkVULUxJU1Q="}}]}"#, "U0VDUkVULUxJU1Q="),
        (r#"{"kind":"secret","data":{"k":"bG93ZXItY2FzZQ=="}}"#, "bG93ZXItY2FzZQ=="),
        (r#"{"Kind":"SECRET","Data":{"k":"dXBwZXItY2FzZQ=="}}"#, "dXBwZXItY2FzZQ=="),
        (r#"{"kind" :  "Secret" ,"StringData":{"k":"c3BhY2Vk"}}"#, "c3BhY2Vk"),
    ] {
        let line = cm(body);
        assert_hidden(&line, secret);
        assert!(printed(&line, &REDACT).contains(MARKER_PREFIX), "{body}");
    }
}

#[test]
fn duplicated_keys_cannot_hide_a_secret() {
    let cm = |body: &str| event(Some("configmaps"), "/api/v1/namespaces/a/configmaps/b", body);
    // serde keeps the last `kind`; a reader keeping the first would see a Secret.
    let line = cm(r#"{"kind":"Secret","kind":"ConfigMap","data":{"k":"RFVQLUtJTkQ="}}"#);
    assert_hidden(&line, "RFVQLUtJTkQ=");
    let ev = decode_event(&line, &REDACT).unwrap();
    assert!(ev.rewritten, "printed re-encoded, without the duplicate");
    assert_eq!(ev.request_object.as_deref().unwrap().matches("\"kind\"").count(), 1);
    // Two request bodies: the first, dropped by decoding, must not be shown as written.
    let line = r#"{"auditID":"x","objectRef":{"resource":"configmaps"},"requestObject":{"kind":"Secret","data":{"k":"RklSU1QtQk9EWQ=="}},"requestObject":{"kind":"ConfigMap"}}"#;
    let ev = decode_event(line, &REDACT).unwrap();
    assert!(ev.rewritten);
    assert!(!ev.to_json().to_string().contains("RklSU1QtQk9EWQ=="));
    // A JSON patch op with two paths: the one into data counts.
    let patch = r#"[{"op":"add","path":"/data/k","path":"/metadata/x","value":"RFVQLVBBVEg="}]"#;
    assert_hidden(&event(Some("secrets"), "/api/v1/namespaces/a/secrets/b", patch), "RFVQLVBBVEg=");
    // Two resources: `secrets` is kept.
    let line = r#"{"auditID":"x","objectRef":{"resource":"secrets","resource":"configmaps"},"requestObject":{"data":{"k":"RFVQLVJFU09VUkNF"}}}"#;
    assert_hidden(line, "RFVQLVJFU09VUkNF");
    // Keys given twice elsewhere: no redaction, but the text as written is not the event.
    assert!(decode_event(r#"{"auditID":"x","verb":"get","verb":"list"}"#, &KEEP).unwrap().rewritten);
    assert!(decode_event(r#"{"auditID":"x","x":{"a":1,"a":2}}"#, &KEEP).unwrap().rewritten);
    assert!(!decode_event(r#"{"auditID":"x","x":{"a":1,"b":{"a":2}}}"#, &KEEP).unwrap().rewritten);
}

#[test]
fn patches_and_bodies_without_kind_on_the_secrets_resource() {
    let s = |body: &str| event(Some("secrets"), "/api/v1/namespaces/a/secrets/b", body);
    for (body, secret) in [
        // Merge and strategic merge patches.
        (r#"{"data":{"k":"TUVSR0U="},"$setElementOrder/data":[{"k":1}]}"#, "TUVSR0U="),
        (r#"{"stringData":{"password":"c3RyYXRlZ2lj"}}"#, "c3RyYXRlZ2lj"),
        // JSON patches: a value, a whole map, the whole document, a test op, odd case.
        (r#"[{"op":"replace","path":"/data/k","value":"SlNPTi1QQVRDSA=="}]"#, "SlNPTi1QQVRDSA=="),
        (r#"[{"op":"add","path":"/stringData","value":{"a":"V0hPTEUtTUFQ"}}]"#, "V0hPTEUtTUFQ"),
        (r#"[{"op":"replace","path":"","value":{"data":{"a":"Uk9PVC1QQVRI"}}}]"#, "Uk9PVC1QQVRI"),
        (r#"[{"op":"test","path":"/data/a","value":"VEVTVC1PUA=="}]"#, "VEVTVC1PUA=="),
        (r#"[{"op":"add","path":"/Data/a","value":"Q0FTRS1QQVRI"}]"#, "Q0FTRS1QQVRI"),
        // A kind that is not a string, and a List of kindless items.
        (r#"{"kind":7,"data":{"k":"Tk9ULUEtU1RSSU5H"}}"#, "Tk9ULUEtU1RSSU5H"),
        (r#"{"kind":"List","items":[{"data":{"k":"TElTVC1PRi1TRUNSRVRT"}}]}"#, "TElTVC1PRi1TRUNSRVRT"),
    ] {
        assert_hidden(&s(body), secret);
    }
    // No objectRef: the request path says secrets (percent-encoded too).
    for uri in ["/api/v1/namespaces/a/secrets/b", "/api/v1/namespaces/a/%73ecrets/b", "/api/v1/watch/secrets"] {
        assert_hidden(&event(None, uri, r#"{"data":{"k":"VVJJLVBBVEg="}}"#), "VVJJLVBBVEg=");
    }
    // A namespace named `secrets` is not the resource.
    let line = event(None, "/api/v1/namespaces/secrets/configmaps/b", r#"{"data":{"k":"visible"}}"#);
    assert!(printed(&line, &REDACT).contains("visible"));
}

#[test]
fn secrets_held_as_json_text_in_strings() {
    let cm = |body: &str| event(Some("configmaps"), "/api/v1/namespaces/a/configmaps/b", body);
    let applied = |inner: &str| {
        format!(
            r#"{{"kind":"ConfigMap","metadata":{{"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":{}}}}}}}"#,
            serde_json::to_string(inner).unwrap()
        )
    };
    // The annotation with an escaped kind, and with a sibling too deep to parse.
    assert_hidden(&cm(&applied(r#"{"kind":"Secr\u0065t","data":{"k":"QVBQTElFRA=="}}"#)), "QVBQTElFRA==");
    let deep = format!(r#"{{"kind":"Secret","data":{{"k":"REVFUC1BUFBMSUVE"}},"x":{}}}"#, nest(200));
    let out = printed(&cm(&applied(&deep)), &REDACT);
    assert!(!out.contains("REVFUC1BUFBMSUVE") && out.contains("not checked for secrets"), "{out}");
    // A manifest kept in a ConfigMap's data, as JSON text.
    let kept = format!(
        r#"{{"kind":"ConfigMap","data":{{"secret.json":{}}}}}"#,
        serde_json::to_string(r#"{"apiVersion":"v1","kind":"Secret","stringData":{"p":"SU4tQS1DT05GSUdNQVA="}}"#)
            .unwrap()
    );
    assert_hidden(&cm(&kept), "SU4tQS1DT05GSUdNQVA=");
    // A JSON patch setting the annotation.
    let patch = format!(
        r#"[{{"op":"add","path":"/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration","value":{}}}]"#,
        serde_json::to_string(r#"{"kind":"Secret","data":{"k":"UEFUQ0hFRC1BTk5PVEFUSU9O"}}"#).unwrap()
    );
    assert_hidden(&event(Some("secrets"), "/api/v1/namespaces/a/secrets/b", &patch), "UEFUQ0hFRC1BTk5PVEFUSU9O");
}

#[test]
fn bodies_that_do_not_parse_are_replaced() {
    // A number serde_json cannot hold: the body cannot be checked.
    let line =
        event(Some("secrets"), "/api/v1/namespaces/a/secrets/b", r#"{"data":{"k":"QklHLU5VTUJFUg=="},"n":1e400}"#);
    let out = printed(&line, &REDACT);
    assert!(!out.contains("QklHLU5VTUJFUg==") && out.contains("not checked for secrets"), "{out}");
}

#[test]
fn keys_decoding_did_not_know_are_redacted_too() {
    let line = r#"{"auditID":"x","requestObjectCopy":{"kind":"Secret","data":{"k":"VU5NQVBQRUQ="}}}"#;
    let ev = decode_event(line, &REDACT).unwrap();
    assert!(ev.rewritten);
    assert!(!ev.to_json().to_string().contains("VU5NQVBQRUQ="));
}

#[test]
fn sanitize_checks_restored_events_as_decoding_does() {
    // What a Parquet reader does with an event written with --keep-secrets.
    let line = event(Some("configmaps"), "/x", r#"{"kind":"Secr\u0065t","data":{"k":"UEFSUVVFVA=="}}"#);
    let mut ev: Event<'_> = decode_event(&line, &KEEP).unwrap();
    assert!(ev.to_json().to_string().contains("UEFSUVVFVA=="));
    assert!(!sanitize(&mut ev.clone(), true));
    assert!(sanitize(&mut ev, false));
    assert!(!ev.to_json().to_string().contains("UEFSUVVFVA=="));
    assert!(!sanitize(&mut ev, false), "idempotent");
}
