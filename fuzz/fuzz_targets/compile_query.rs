//! The planner must never panic or hang: any text either compiles or gives diagnostics whose spans
//! fall inside the query, and a compiled query runs over a few real events without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Three events with stages, bodies, lists and annotations, so that plans have something to chew.
const EVENTS: &str = concat!(
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"33dcd77f-f179-42d2-a48b-96628f3c4be3","stage":"RequestReceived","requestURI":"/apis/apps/v1/namespaces/prod/deployments/payments","verb":"delete","user":{"username":"carol@example.com","groups":["system:authenticated","dev"],"extra":{"k":["v1","v2"]}},"sourceIPs":["203.0.113.45","10.0.0.1"],"userAgent":"kubectl/v1.29.0","objectRef":{"resource":"deployments","namespace":"prod","name":"payments","apiGroup":"apps","apiVersion":"v1"},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:00.000000Z"}"#,
    "\n",
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"33dcd77f-f179-42d2-a48b-96628f3c4be3","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/prod/deployments/payments","verb":"delete","user":{"username":"carol@example.com","groups":["system:authenticated","dev"]},"sourceIPs":["203.0.113.45","10.0.0.1"],"userAgent":"kubectl/v1.29.0","objectRef":{"resource":"deployments","namespace":"prod","name":"payments","apiGroup":"apps","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestObject":{"kind":"DeleteOptions","spec":{"replicas":3,"containers":[{"image":"nginx","securityContext":{"privileged":true}}]}},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:01.250000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed"}}"#,
    "\n",
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"req-2","stage":"ResponseStarted","requestURI":"/api/v1/secrets?watch=true","verb":"watch","user":{"username":"system:anonymous"},"sourceIPs":["::ffff:198.51.100.23"],"objectRef":{"resource":"secrets","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":401,"message":"Unauthorized"},"requestReceivedTimestamp":"2026-11-20T06:00:00.000000Z","stageTimestamp":"2026-11-20T06:10:00.000000Z"}"#,
    "\n",
);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = kaq_query::Options { now_us: 1_795_154_400_000_000, ..Default::default() };
    match kaq_query::compile(text, &opts) {
        Ok(plan) => {
            let rows = kaq_query::run_on_text(&plan, EVENTS);
            for r in &rows {
                let _ = kaq_query::output::json_line(r, plan.output_columns());
            }
        }
        Err(diags) => {
            for d in diags {
                assert!(d.span.start <= d.span.end && d.span.end <= text.len().max(d.span.end.min(text.len())));
                let _ = d.render(text);
            }
        }
    }
});
