//! EKS: the control plane's audit log in CloudWatch Logs (log group `/aws/eks/<cluster>/cluster`,
//! streams `kube-apiserver-audit-…`), each log event's `message` one audit Event as JSON text.
//!
//! - Subscription-filter payloads: `{"messageType":"DATA_MESSAGE","owner","logGroup",
//!   "logStream","subscriptionFilters","logEvents":[{"id","timestamp","message"}]}`. Kinesis
//!   Data Streams and Firehose carry them gzip-compressed; read as base64 text (a line that is
//!   base64 of gzip of a payload, `{"awslogs":{"data":…}}` as Lambda gets it, `aws kinesis
//!   get-records` output `{"Records":[{"Data":…}]}`, Firehose transformation `records[].data`), or
//!   as gzip files (Firehose to S3: payloads concatenated, `{…}{…}`, no separator). A
//!   `CONTROL_MESSAGE` (CloudWatch checking the destination) holds no event.
//! - `aws logs filter-log-events` / `get-log-events` output: `{"events":[{"message",…}]}`.
//! - Logs Insights: `aws logs get-query-results` output (`{"results":[[{"field","value"}…]]}`,
//!   the event in the `@message` field), and the console's JSON export (rows with `@message`).

use std::io::Read;

use base64::Engine;

use super::{Ctx, Emit, MAX_BLOB_BYTES, Obj, as_array, as_object, as_str, embedded_event, join, type_name, value};

/// Whether text looks like base64 of gzip (`H4sI` is base64 of gzip's magic bytes and method).
pub(crate) fn looks_like_blob(t: &str) -> bool {
    t.starts_with("H4sI")
}

/// base64 → gzip → the payloads inside, each read as input of its own.
pub(crate) fn blob(ctx: &Ctx<'_>, b64: &str, emit: &mut Emit<'_>, what: &str) {
    let what = join(what, "base64 gzip payload");
    let bytes = match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
        Ok(b) => b,
        Err(e) => return emit.reject(&what, format!("invalid base64: {e}"), b64),
    };
    let mut text = Vec::new();
    let read = flate2::read::MultiGzDecoder::new(&bytes[..]).take(MAX_BLOB_BYTES + 1).read_to_end(&mut text);
    if let Err(e) = read {
        // Say what broke; keep what came out (redacted like any rejected text), not the blob.
        let reason = format!("invalid gzip after {} bytes: {e}", text.len());
        let raw = String::from_utf8_lossy(&text).into_owned();
        return emit.reject(&what, reason, if raw.is_empty() { b64 } else { &raw });
    }
    if text.len() as u64 > MAX_BLOB_BYTES {
        return emit.reject(&what, format!("decompresses to more than {MAX_BLOB_BYTES} bytes"), b64);
    }
    match String::from_utf8(text) {
        Ok(t) if t.trim().is_empty() => emit.reject(&what, "empty after decompression", b64),
        Ok(t) => value(ctx, &t, emit, &what),
        Err(e) => emit.reject(
            &what,
            format!("invalid UTF-8 at byte {} after decompression", e.utf8_error().valid_up_to()),
            b64,
        ),
    }
}

/// A subscription-filter payload.
pub(crate) fn payload(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let kind = m.get("messageType").and_then(|t| as_str(t));
    if kind.as_deref() == Some("CONTROL_MESSAGE") {
        return; // CloudWatch checking the destination: no record.
    }
    if let Some(k) = &kind
        && k != "DATA_MESSAGE"
    {
        return emit.reject(
            what,
            format!("a CloudWatch Logs payload of messageType `{k}` (expected DATA_MESSAGE)"),
            text,
        );
    }
    let Some(events) = m.get("logEvents").and_then(|e| as_array(e)) else {
        return emit.reject(what, "a CloudWatch Logs payload without a `logEvents` list", text);
    };
    for (i, ev) in events.into_iter().enumerate() {
        let what = join(what, format_args!("logEvents[{i}]"));
        message(ctx, ev, "message", emit, &what);
    }
}

/// `obj[key]` of one log event: the audit Event.
fn message(ctx: &Ctx<'_>, ev: &serde_json::value::RawValue, key: &str, emit: &mut Emit<'_>, what: &str) {
    let Some(obj) = as_object(ev) else {
        return emit.reject(what, format!("expected a log event object, found {}", type_name(ev)), ev.get());
    };
    match obj.get(key) {
        Some(msg) => embedded_event(ctx, msg, emit, &join(what, key)),
        None => emit.reject(what, format!("a log event without `{key}`"), ev.get()),
    }
}

/// `{"awslogs":{"data":"<base64 gzip payload>"}}`, the event a Lambda subscription receives.
pub(crate) fn lambda(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let data = m.get("awslogs").and_then(|a| as_object(a)).and_then(|a| a.get("data").and_then(|d| as_str(d)));
    match data {
        Some(d) => blob(ctx, d.trim(), emit, &join(what, "awslogs.data")),
        None => emit.reject(what, "`awslogs` without a base64 `data` string", text),
    }
}

/// `aws kinesis get-records` output: `{"Records":[{"Data":"<base64 gzip payload>",…}]}`.
pub(crate) fn kinesis(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let Some(records) = m.get("Records").and_then(|r| as_array(r)) else {
        return emit.reject(what, "`Records` is not a list of Kinesis records", text);
    };
    for (i, r) in records.into_iter().enumerate() {
        let what = join(what, format_args!("Records[{i}]"));
        match as_object(r).and_then(|o| o.get("Data").and_then(|d| as_str(d))) {
            Some(d) => blob(ctx, d.trim(), emit, &join(&what, "Data")),
            None => emit.reject(&what, "a Kinesis record without a base64 `Data` string", r.get()),
        }
    }
}

/// `aws logs filter-log-events` / `get-log-events`: `{"events":[{"message",…}]}`.
pub(crate) fn events(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let Some(list) = m.get("events").and_then(|e| as_array(e)) else {
        return emit.reject(what, "`events` is not a list of CloudWatch log events", text);
    };
    for (i, ev) in list.into_iter().enumerate() {
        message(ctx, ev, "message", emit, &join(what, format_args!("events[{i}]")));
    }
}

/// `aws logs get-query-results`: `{"results":[[{"field":"@message","value":"…"},…],…]}`.
pub(crate) fn insights(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    #[derive(serde::Deserialize)]
    struct Field<'a> {
        field: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        value: Option<&'a serde_json::value::RawValue>,
    }
    let Some(rows) = m.get("results").and_then(|r| as_array(r)) else {
        return emit.reject(what, "`results` is not a list of Logs Insights rows", text);
    };
    for (i, row) in rows.into_iter().enumerate() {
        let what = join(what, format_args!("results[{i}]"));
        let Ok(fields) = serde_json::from_str::<Vec<Field<'_>>>(row.get()) else {
            emit.reject(&what, "expected a Logs Insights row (a list of {field, value})", row.get());
            continue;
        };
        match fields.iter().find(|f| f.field == "@message").and_then(|f| f.value) {
            Some(msg) => embedded_event(ctx, msg, emit, &join(&what, "@message")),
            None => emit.reject(
                &what,
                "a Logs Insights row without @message (the query must return it: `fields @message`)",
                row.get(),
            ),
        }
    }
}

/// One row of a Logs Insights export: `{"@timestamp":…,"@message":…}`.
pub(crate) fn insights_row(ctx: &Ctx<'_>, m: &Obj<'_>, _text: &str, emit: &mut Emit<'_>, what: &str) {
    let msg = m.get("@message").copied().expect("the shape says @message");
    embedded_event(ctx, msg, emit, &join(what, "@message"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::InputFormat;
    use super::super::tests::run;
    use super::*;

    pub(crate) fn gzip_b64(text: &str) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    fn payload_of(msgs: &[&str]) -> String {
        let events: Vec<_> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| serde_json::json!({"id": i.to_string(), "timestamp": 1_700_000_000_000u64, "message": m}))
            .collect();
        serde_json::json!({"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/demo/cluster",
            "logStream":"kube-apiserver-audit-0123","subscriptionFilters":["kaq"],"logEvents":events})
        .to_string()
    }

    #[test]
    fn payloads_plain_compressed_and_concatenated() {
        let p = payload_of(&[r#"{"kind":"Event","auditID":"e1"}"#, r#"{"kind":"Event","auditID":"e2"}"#, "not json"]);
        let (n, ids, r) = run(&p, InputFormat::Auto);
        assert_eq!((n, ids), (3, vec!["e1".to_string(), "e2".to_string()]));
        assert!(r[0].starts_with("logEvents[2]: message: invalid JSON"), "{r:?}");
        // base64 of gzip, as Kinesis and Firehose carry it; and Lambda's envelope.
        assert_eq!(run(&gzip_b64(&p), InputFormat::Eks).1, ["e1", "e2"]);
        let lambda = serde_json::json!({"awslogs":{"data": gzip_b64(&p)}}).to_string();
        assert_eq!(run(&lambda, InputFormat::Auto).1, ["e1", "e2"]);
        // Firehose to S3: payloads one after another, gzip of all of them.
        let q = payload_of(&[r#"{"kind":"Event","auditID":"e3"}"#]);
        assert_eq!(run(&format!("{p}{q}"), InputFormat::Auto).1, ["e1", "e2", "e3"]);
        assert_eq!(run(&gzip_b64(&format!("{p}{q}")), InputFormat::Auto).1, ["e1", "e2", "e3"]);
        let (n, ids, r) = run(&format!("{p}{q}{{\"logEv"), InputFormat::Auto);
        assert_eq!((n, ids.len()), (5, 3));
        assert!(r[1].starts_with("payload 2: invalid JSON"), "{r:?}");
        // Health checks hold no event.
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#;
        assert_eq!(run(control, InputFormat::Auto).0, 0);
        let kin =
            serde_json::json!({"Records":[{"SequenceNumber":"1","Data": gzip_b64(&q),"PartitionKey":"k"}]}).to_string();
        assert_eq!(run(&kin, InputFormat::Auto).1, ["e3"]);
        let firehose =
            serde_json::json!({"invocationId":"i","records":[{"recordId":"r","data": gzip_b64(&q)}]}).to_string();
        assert_eq!(run(&firehose, InputFormat::Auto).1, ["e3"]);
    }

    #[test]
    fn bad_blobs_say_why() {
        let (_, _, r) = run("H4sI!!!notbase64", InputFormat::Auto);
        assert!(r[0].starts_with("base64 gzip payload: invalid base64"), "{r:?}");
        let full = gzip_b64(&payload_of(&[r#"{"auditID":"x"}"#]));
        let cut = base64::engine::general_purpose::STANDARD
            .encode(&base64::engine::general_purpose::STANDARD.decode(&full).unwrap()[..30]);
        let (_, _, r) = run(&cut, InputFormat::Auto);
        assert!(r[0].starts_with("base64 gzip payload: invalid gzip after"), "{r:?}");
        let (_, _, r) = run(&gzip_b64("   "), InputFormat::Auto);
        assert_eq!(r, ["base64 gzip payload: empty after decompression"]);
        // Not read as EKS when another format is forced.
        let (_, _, r) = run(&full, InputFormat::Aks);
        assert!(r[0].starts_with("invalid JSON"), "{r:?}");
    }

    #[test]
    fn cli_and_insights_output() {
        let fle = r#"{"events":[{"logStreamName":"kube-apiserver-audit-1","timestamp":1,"message":"{\"auditID\":\"f1\"}","ingestionTime":2,"eventId":"3"},{"timestamp":1}],"searchedLogStreams":[]}"#;
        let (n, ids, r) = run(fle, InputFormat::Auto);
        assert_eq!((n, ids), (2, vec!["f1".to_string()]));
        assert_eq!(r, ["events[1]: a log event without `message`"]);
        let gqr = r#"{"results":[[{"field":"@timestamp","value":"2024-01-01 00:00:00.000"},{"field":"@message","value":"{\"auditID\":\"q1\"}"}],[{"field":"verb","value":"get"}]],"statistics":{},"status":"Complete"}"#;
        let (_, ids, r) = run(gqr, InputFormat::Eks);
        assert_eq!(ids, ["q1"]);
        assert!(r[0].starts_with("results[1]: a Logs Insights row without @message"), "{r:?}");
        let export = r#"[{"@timestamp":"2024-01-01 00:00:00.000","@message":"{\"auditID\":\"x1\"}"},{"@message":{"auditID":"x2"}}]"#;
        assert_eq!(run(export, InputFormat::Auto).1, ["x1", "x2"]);
    }
}
