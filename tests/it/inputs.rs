//! Managed-cluster inputs: GKE, EKS and AKS exports read into the same events as native logs.
//!
//! The synthetic tests wrap native logs the way each cloud does (in the test, with plain
//! serde_json), read both, and compare: every field the wrapper keeps must be equal.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use kaq_input::{EventHandler, InputFormat, ReadOptions, Report};
use kaq_schema::Event;
use serde_json::{Value, json};

use crate::common::*;

/// Collects every event as audit JSON.
struct Collect;
impl EventHandler for Collect {
    type State = Vec<Value>;
    type Output = Vec<Value>;
    fn start(&self) -> Vec<Value> {
        Vec::new()
    }
    fn event(&self, s: &mut Vec<Value>, e: &Event<'_>) {
        s.push(e.to_json());
    }
    fn finish(&self, s: Vec<Value>) -> Vec<Value> {
        s
    }
}

/// (events, rejects as `line: reason`, report) of one file read with `format`.
fn read(path: &Path, format: InputFormat) -> (Vec<Value>, Vec<String>, Report) {
    let sources = kaq_input::expand(&[path]).unwrap().sources;
    let opts = ReadOptions { input_format: format, threads: 2, ..ReadOptions::default() };
    let (mut events, mut rejects) = (Vec::new(), Vec::new());
    let report = kaq_input::read(&sources, &opts, &Collect, |c| {
        events.extend(c.output.unwrap_or_default());
        rejects.extend(c.rejects.iter().map(|r| format!("{}: {}", r.line, r.reason)));
        Ok::<(), Infallible>(())
    })
    .unwrap();
    assert_eq!(report.counts.records(), events.len() as u64 + rejects.len() as u64);
    (events, rejects, report)
}

fn corpus(shared: &Path, rel: &str) -> PathBuf {
    shared.join("corpus").join(rel)
}

// ---------------------------------------------------------------------------------------------
// The real samples.

/// Events per wrapped file of the corpus (SOURCES.md).
const WRAPPED: &[(&str, u64)] = &[
    ("sysdig-aks-audit-log/event.json", 22),
    ("sysdig-aks-audit-log/sample_EventHubs_event.json", 1),
    ("elastic-integrations/kubernetes-audit_logs/test-kube-audit.log", 1),
    ("elastic-integrations/kubernetes-audit_logs/test-audit.log", 5), // 3 native, 1 GKE, 1 AKS
    ("elastic-integrations/gcp-audit/test-audit.log", 7),
    ("elastic-integrations/gcp-audit/test-k8s-nonmatching-resourcename.log", 1),
];

#[test]
fn every_wrapped_corpus_file_gives_its_events() {
    let Some(shared) = shared("corpus") else { return };
    for (rel, n) in WRAPPED {
        let (events, rejects, report) = read(&corpus(&shared, rel), InputFormat::Auto);
        assert_eq!((events.len() as u64, rejects.len()), (*n, 0), "{rel}: {rejects:?}");
        assert_eq!(report.counts.blank, 0, "{rel}");
    }
    let dumps = corpus(&shared, "sysdig-stackdriver-bridge/log_entries");
    let (events, rejects, _) = read(&dumps, InputFormat::Auto);
    assert_eq!((events.len(), rejects.len()), (25, 0), "{rejects:?}");
    // Forced to their own format, the same; to another, every record rejected and none lost.
    let aks = corpus(&shared, "sysdig-aks-audit-log/event.json");
    assert_eq!(read(&aks, InputFormat::Aks).0.len(), 22);
    let (events, rejects, _) = read(&aks, InputFormat::Gke);
    assert_eq!((events.len(), rejects.len()), (0, 1), "one line, one wrapper, rejected whole");
    assert_eq!(
        rejects[0],
        "1: an AKS diagnostic record or AKSAudit row, not a GKE Cloud Logging entry (--input-format gke)"
    );
    assert_eq!(read(&dumps, InputFormat::Gke).0.len(), 25);
    let (events, rejects, _) = read(&dumps, InputFormat::Eks);
    assert_eq!((events.len(), rejects.len()), (0, 25));
}

/// Wrapped events round trip like native ones: Parquet back to JSON gives the events as read.
#[test]
fn wrapped_corpus_events_round_trip() {
    let Some(shared) = shared("corpus") else { return };
    let mut files: Vec<PathBuf> = WRAPPED.iter().map(|(rel, _)| corpus(&shared, rel)).collect();
    files.push(corpus(&shared, "sysdig-stackdriver-bridge/log_entries"));
    let read_all: Vec<Value> = files.iter().flat_map(|f| read(f, InputFormat::Auto).0).collect();
    assert_eq!(read_all.len(), 62);
    let dir = tmp();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let back = crate::roundtrip::there_and_back(&refs, dir.path());
    assert_same_events(&read_all, &back);
}

/// The GKE entries of sysdig-stackdriver-bridge next to the Events the bridge derived from them:
/// every field both sides can know agrees, and where kaq differs it is on purpose.
#[test]
fn gke_dumps_agree_with_the_bridges_events() {
    let Some(shared) = shared("corpus") else { return };
    let dir = corpus(&shared, "sysdig-stackdriver-bridge");
    let mut names: Vec<_> =
        std::fs::read_dir(dir.join("log_entries")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names.len(), 25);
    for name in names {
        let (mine, _, _) = read(&dir.join("log_entries").join(&name), InputFormat::Auto);
        let bridge = reference_events(&dir.join("k8s_audit_events").join(&name));
        let (m, b) = (&mine[0], &bridge[0]);
        let n = name.to_string_lossy();
        for k in ["auditID", "verb", "user", "sourceIPs", "userAgent", "annotations", "requestReceivedTimestamp"] {
            assert_eq!(m.get(k), b.get(k), "{n}: {k}");
        }
        assert_eq!(m["responseStatus"]["code"], b["responseStatus"]["code"], "{n}");
        // The bridge writes apiGroup "core" for the core group; the API server writes none.
        let mut oref = b["objectRef"].clone();
        if oref["apiGroup"] == "core" {
            oref.as_object_mut().unwrap().remove("apiGroup");
        }
        // The API server gives a Namespace its own name as namespace; the bridge does not.
        if oref["resource"] == "namespaces" {
            oref["namespace"] = oref["name"].clone();
        }
        assert_eq!(m["objectRef"], oref, "{n}");
        // Bodies: the bridge keeps Cloud Logging's `@type`; kaq removes it.
        for k in ["requestObject", "responseObject"] {
            let mut body = b.get(k).cloned();
            if let Some(Value::Object(o)) = &mut body {
                o.remove("@type");
            }
            assert_eq!(m.get(k), body.as_ref(), "{n}: {k}");
        }
        // Inferred by the bridge, not known from GKE: kaq leaves them out.
        assert!(m.get("level").is_none() && m.get("stageTimestamp").is_none(), "{n}");
        // Stage from operation.first/last: they agree except on attach_pod (last only: the
        // bridge says ResponseStarted, kaq ResponseComplete; see docs/inputs.md).
        if n != "attach_pod.json" {
            assert_eq!(m["stage"], b["stage"], "{n}");
        }
        assert_eq!(m["kaq:gke"]["logName"], "projects/mstemm-gke-audit-logs/logs/cloudaudit.googleapis.com/activity");
    }
}

/// A few events checked field by field against values read by hand from the files.
#[test]
fn hand_checked_events() {
    let Some(shared) = shared("corpus") else { return };
    // GKE REST: a deployment patch by the addon manager, with a strategic-merge patch body.
    let (ev, _, _) = read(&corpus(&shared, "elastic-integrations/gcp-audit/test-audit.log"), InputFormat::Auto);
    let patch = ev.iter().find(|e| e["verb"] == "patch").unwrap();
    assert_eq!(patch["auditID"], "e5132c86-462b-41b3-9b6a-47966addbb0b");
    assert_eq!(patch["user"], json!({"username": "system:addon-manager"}));
    assert_eq!(patch["sourceIPs"], json!(["10.142.0.152"]));
    assert_eq!(patch["userAgent"], "kubectl/v1.20.2 (linux/amd64) kubernetes/faecb19");
    assert_eq!(
        patch["objectRef"],
        json!({"resource":"deployments","namespace":"kube-system","name":"konnectivity-agent","apiGroup":"apps","apiVersion":"v1"})
    );
    assert_eq!(patch["requestURI"], "/apis/apps/v1/namespaces/kube-system/deployments/konnectivity-agent");
    assert_eq!(patch["responseStatus"], json!({"metadata":{},"code":200}));
    assert_eq!(patch["stage"], "ResponseComplete");
    assert_eq!(patch["annotations"]["authorization.k8s.io/decision"], "allow");
    assert_eq!(patch["requestObject"]["spec"]["strategy"]["$retainKeys"], json!(["type"]));
    assert!(patch["requestObject"].get("@type").is_none());
    assert_eq!(patch["responseObject"]["kind"], "Deployment");
    assert_eq!(patch["kaq:gke"]["logName"], "projects/iammai-340819/logs/cloudaudit.googleapis.com%2Factivity");
    // The deprecated-API labels are annotations.
    let ingresses = ev.iter().find(|e| e["objectRef"]["resource"] == "ingresses").unwrap();
    assert_eq!(ingresses["annotations"]["k8s.io/removed-release"], "1.22");
    assert_eq!(ingresses["verb"], "list");
    assert_eq!(ingresses["requestURI"], "/apis/extensions/v1beta1/namespaces/cos-auditd/ingresses");
    // insertId and operation.id differ: the operation's id is the request's.
    assert!(ev.iter().any(|e| e["auditID"] == "924fbbf6-1982-4173-9355-3fca0ab7b0ee"));

    // GKE: an anonymous scan, denied (authorizationInfo granted false, status 7).
    let (ev, _, _) = read(
        &corpus(&shared, "elastic-integrations/gcp-audit/test-k8s-nonmatching-resourcename.log"),
        InputFormat::Auto,
    );
    let e = &ev[0];
    assert_eq!((e["verb"].as_str(), e["requestURI"].as_str()), (Some("get"), Some("/HNAP1")));
    assert!(e.get("objectRef").is_none());
    assert_eq!(e["responseStatus"], json!({"metadata":{},"status":"Failure","reason":"Forbidden","code":403}));
    assert_eq!(e["annotations"], json!({"authorization.k8s.io/decision": "forbid"}));
    assert_eq!(e["user"]["username"], "system:anonymous");

    // GKE Go dump: the delete of a missing service (status 5, a Status body with code 404).
    let (ev, _, _) = read(
        &corpus(&shared, "sysdig-stackdriver-bridge/log_entries/delete_service_failed_not_found.json"),
        InputFormat::Auto,
    );
    assert_eq!(
        ev[0]["responseStatus"],
        json!({"metadata":{},"status":"Failure","reason":"NotFound","message":"services \"vanilla-nginx-deployment\" not found","code":404})
    );
    assert_eq!(ev[0]["kaq:gke"]["status"], json!({"code":5,"message":"NOT_FOUND"}));

    // AKS: the first record of the Event Hubs batch, exactly the Event in properties.log.
    let path = corpus(&shared, "sysdig-aks-audit-log/event.json");
    let (ev, _, _) = read(&path, InputFormat::Auto);
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let inner: Value = serde_json::from_str(raw["records"][0]["properties"]["log"].as_str().unwrap()).unwrap();
    assert_eq!(ev[0], inner);
    assert_eq!(ev[0]["auditID"], "55ffceaa-b7c3-478e-98c6-e509cd2f0dd7");
    assert_eq!(ev[0]["requestURI"], "/apis/metrics.k8s.io/v1beta1?timeout=32s");
    assert_eq!(ev[0]["stageTimestamp"], "2020-05-05T16:16:37.663647Z");
    let codes: BTreeMap<i64, usize> = ev.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e["responseStatus"]["code"].as_i64().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(codes.get(&409), Some(&1), "the configmap AlreadyExists");
    assert_eq!(codes.get(&304), Some(&1), "openapi/v2 not modified");

    // AKS, properties.log as an object (elastic's mixed file, line 5).
    let (ev, _, _) =
        read(&corpus(&shared, "elastic-integrations/kubernetes-audit_logs/test-audit.log"), InputFormat::Auto);
    let aks = ev.iter().find(|e| e["verb"] == "update").unwrap();
    assert_eq!(
        aks["user"],
        json!({"username":"aksService","groups":["system:masters","system:authenticated"],"extra":{}})
    );
    assert_eq!(aks["objectRef"]["resource"], "leases");
}

// ---------------------------------------------------------------------------------------------
// Synthetic wrappers around native logs.

/// Native logs to wrap: the fixtures here always, a generated log when gen-audit is there.
fn native_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs = vec![
        repo().join("tests/data/audit2rbac_demo.log"),
        repo().join("tests/data/falco-trace-files_create_configmap_sensitive_values.json"),
    ];
    let g = dir.join("gen.log");
    if gen_audit(&["--events", "3000", "--seed", "5", "--stages"], &g).is_some() {
        logs.push(g);
    }
    logs
}

fn native_events(log: &Path) -> Vec<Value> {
    let (events, rejects, _) = read(log, InputFormat::K8s);
    assert!(rejects.is_empty(), "{rejects:?}");
    events
}

fn gzip_b64(text: &str) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
}

fn eks_payload(events: &[Value]) -> Value {
    let log_events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"id": format!("3{i:055}"), "timestamp": 1_700_000_000_000u64 + i as u64, "message": e.to_string()}))
        .collect();
    json!({"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/demo/cluster",
        "logStream":"kube-apiserver-audit-5f1b","subscriptionFilters":["to-firehose"],"logEvents":log_events})
}

fn aks_record(e: &Value) -> Value {
    json!({"operationName":"Microsoft.ContainerService/managedClusters/diagnosticLogs/Read","category":"kube-audit",
        "ccpNamespace":"5eb120ce57f96500011bde2d","resourceId":"/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/DEMO",
        "properties":{"log": format!("{e}\n"),"stream":"stdout","pod":"kube-apiserver-79599f95c7-qn557"},
        "time":"2020-05-05T16:16:37.0000000Z","Cloud":"AzureCloud","Environment":"prod"})
}

/// An `AKSAudit` row as `az monitor log-analytics query` prints it: dynamic columns as JSON text.
fn aks_audit_row(e: &Value) -> Value {
    let text = |k: &str| e.get(k).map_or(Value::String(String::new()), |v| Value::String(v.to_string()));
    let s = |k: &str| e.get(k).cloned().unwrap_or(Value::String(String::new()));
    json!({"TenantId":"t","TimeGenerated":s("stageTimestamp"),"Level":s("level"),"AuditId":s("auditID"),"Stage":s("stage"),
        "RequestUri":s("requestURI"),"Verb":s("verb"),"User":text("user"),"ImpersonatedUser":text("impersonatedUser"),
        "SourceIps":text("sourceIPs"),"UserAgent":s("userAgent"),"ObjectRef":text("objectRef"),
        "ResponseStatus":text("responseStatus"),"RequestObject":text("requestObject"),"ResponseObject":text("responseObject"),
        "RequestReceivedTime":s("requestReceivedTimestamp"),"StageReceivedTime":s("stageTimestamp"),
        "Annotations":text("annotations"),"PodName":"kube-apiserver-1","SourceSystem":"Azure","Type":"AKSAudit",
        "_ResourceId":"/subscriptions/x/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/demo"})
}

/// The gRPC code GKE writes for an HTTP status.
fn grpc(http: i64) -> i64 {
    match http {
        101 => 2, // no gRPC counterpart: UNKNOWN
        100..=299 => 0,
        400 | 422 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 10,
        429 => 8,
        500 => 13,
        503 => 14,
        504 => 4,
        _ => 2,
    }
}

/// A GKE LogEntry (REST JSON) for a native event, as Cloud Logging writes one.
fn gke_entry(e: &Value) -> Value {
    let o = e.get("objectRef");
    let verb = e["verb"].as_str().unwrap();
    let (method, resource_name) = match o.and_then(|o| o.get("resource")) {
        Some(resource) => {
            let o = o.unwrap();
            let group = o.get("apiGroup").and_then(Value::as_str).filter(|g| !g.is_empty());
            let version = o.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
            let sub = o.get("subresource").and_then(Value::as_str);
            let method_group = group.map_or("core".to_string(), |g| {
                g.trim_end_matches(".k8s.io").split('.').rev().collect::<Vec<_>>().join(".")
            });
            let mut method = format!("io.k8s.{method_group}.{version}.{}", resource.as_str().unwrap());
            if let Some(s) = sub {
                method.push_str(&format!(".{s}"));
            }
            method.push_str(&format!(".{verb}"));
            let mut rn = format!("{}/{version}", group.unwrap_or("core"));
            if let Some(ns) = o.get("namespace").and_then(Value::as_str).filter(|_| resource != "namespaces") {
                rn.push_str(&format!("/namespaces/{ns}"));
            }
            rn.push_str(&format!("/{}", resource.as_str().unwrap()));
            if let Some(n) = o.get("name").and_then(Value::as_str) {
                rn.push_str(&format!("/{n}"));
                if let Some(s) = sub {
                    rn.push_str(&format!("/{s}/{n}")); // GKE repeats the name
                }
            }
            (method, rn)
        }
        None => {
            let path = e["requestURI"].as_str().unwrap().split('?').next().unwrap().trim_start_matches('/');
            (format!("io.k8s.{verb}"), path.to_string())
        }
    };
    let stage = e["stage"].as_str().unwrap();
    let mut pp = json!({"@type":"type.googleapis.com/google.cloud.audit.AuditLog","serviceName":"k8s.io",
        "methodName": method, "resourceName": resource_name,
        "authenticationInfo":{"principalEmail": e["user"]["username"]},
        "authorizationInfo":[{"granted": with_decision(e)["annotations"]["authorization.k8s.io/decision"] != "forbid",
            "permission": method, "resource": resource_name}],
        "requestMetadata":{"callerIp": e["sourceIPs"][0], "callerSuppliedUserAgent": e.get("userAgent")}});
    if let Some(code) = e.pointer("/responseStatus/code").and_then(Value::as_i64) {
        pp["status"] = if grpc(code) == 0 { json!({}) } else { json!({"code": grpc(code), "message": "X"}) };
    }
    let mut typed = |k: &str, into: &str| {
        if let Some(Value::Object(b)) = e.get(k) {
            let mut b = b.clone();
            b.insert("@type".into(), json!("core.k8s.io/v1.Thing"));
            pp[into] = Value::Object(b);
        }
    };
    typed("requestObject", "request");
    typed("responseObject", "response");
    let id = e["auditID"].as_str().unwrap();
    json!({"insertId": format!("{id}-{stage}"), "logName":"projects/demo/logs/cloudaudit.googleapis.com%2Factivity",
        "operation":{"id": id, "producer":"k8s.io", "first": true, "last": stage == "ResponseComplete"},
        "protoPayload": pp, "receiveTimestamp":"2026-11-20T00:00:00.123456789Z",
        "resource":{"type":"k8s_cluster","labels":{"cluster_name":"demo","location":"europe-west1","project_id":"demo"}},
        "timestamp": e["requestReceivedTimestamp"], "labels": e.get("annotations").cloned().unwrap_or(json!({}))})
}

/// The event with an authorization decision annotation: its own, or what its code says (GKE
/// writes `authorizationInfo[].granted` for every request; kaq reads the decision from it when
/// the labels do not carry one, as in old logs without annotations).
fn with_decision(e: &Value) -> Value {
    let mut e = e.clone();
    if e.pointer("/annotations/authorization.k8s.io~1decision").is_none() {
        let d = if e.pointer("/responseStatus/code") == Some(&json!(403)) { "forbid" } else { "allow" };
        let a = e.as_object_mut().unwrap().entry("annotations").or_insert(json!({}));
        a["authorization.k8s.io/decision"] = json!(d);
    }
    e
}

/// What a GKE entry keeps of an event, for comparing.
fn gke_view(e: &Value) -> Value {
    let mut o = e.get("objectRef").cloned().unwrap_or(Value::Null);
    if let Value::Object(m) = &mut o {
        m.retain(|k, _| {
            ["resource", "subresource", "namespace", "name", "apiGroup", "apiVersion"].contains(&k.as_str())
        });
        if m.get("apiGroup") == Some(&json!("")) {
            m.remove("apiGroup");
        }
        if m.get("apiVersion").is_none() {
            m.insert("apiVersion".into(), json!("v1"));
        }
        if m.get("resource") == Some(&json!("namespaces")) {
            let name = m.get("name").cloned();
            if let Some(n) = name {
                m.insert("namespace".into(), n);
            }
        }
    }
    let strip = |k: &str| e.get(k).filter(|v| v.is_object()).cloned().unwrap_or(Value::Null);
    json!({"auditID": e["auditID"], "stage": e["stage"], "verb": e["verb"], "user": e["user"]["username"],
        "ip": e["sourceIPs"][0], "ua": e.get("userAgent"), "objectRef": o, "code": e.pointer("/responseStatus/code"),
        "time": e["requestReceivedTimestamp"], "annotations": e.get("annotations").cloned().unwrap_or(json!({})),
        "request": strip("requestObject"), "response": strip("responseObject")})
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[test]
fn eks_and_aks_wrappers_give_the_native_events_exactly() {
    let dir = tmp();
    for log in native_logs(dir.path()) {
        let native = native_events(&log);
        let name = log.file_name().unwrap().to_string_lossy().to_string();
        let w = |s: &str| dir.path().join(format!("{name}.{s}"));
        // EKS: payloads of up to 50 events; plain, base64 gzip (Kinesis), and concatenated (Firehose).
        let payloads: Vec<Value> = native.chunks(50).map(eks_payload).collect();
        write_lines(&w("eks.jsonl"), payloads.iter().map(Value::to_string));
        write_lines(&w("eks.b64"), payloads.iter().map(|p| gzip_b64(&p.to_string())));
        let concatenated: String = payloads.iter().map(Value::to_string).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(concatenated.as_bytes()).unwrap();
        std::fs::write(w("firehose.gz"), gz.finish().unwrap()).unwrap();
        // CLI output: one pretty-printed document.
        let fle = json!({"events": native.iter().map(|e| json!({"logStreamName":"kube-apiserver-audit-1","timestamp":1,"message":e.to_string(),"eventId":"1"})).collect::<Vec<_>>(),"searchedLogStreams":[]});
        std::fs::write(w("fle.json"), serde_json::to_string_pretty(&fle).unwrap()).unwrap();
        // AKS: Event Hubs batches of up to 20 records; one record per line (storage); AKSAudit rows.
        write_lines(
            &w("aks.json"),
            native.chunks(20).map(|c| json!({"records": c.iter().map(aks_record).collect::<Vec<_>>()}).to_string()),
        );
        write_lines(&w("aks-lines.json"), native.iter().map(|e| aks_record(e).to_string()));
        std::fs::write(w("aksaudit.json"), Value::Array(native.iter().map(aks_audit_row).collect()).to_string())
            .unwrap();

        // `kaq query` answers the same over the native log and each exact wrapper (the wrapped
        // lines skip the prefilter; their events are matched after unwrapping).
        for q in ["verb:get | count by user, verb", "code>=400 | table id, user, code", "verb:(create OR get) ns:*"] {
            let answer = |f: &Path| -> Vec<Value> {
                let o = crate::common::run(&["query", q, f.to_str().unwrap(), "--format", "json"]);
                assert!(o.status.success(), "{q}: {}", crate::common::stderr(&o));
                String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
            };
            let want = answer(&log);
            for file in ["eks.jsonl", "eks.b64", "firehose.gz", "fle.json", "aks.json", "aks-lines.json"] {
                assert_eq!(answer(&w(file)), want, "`{q}` over {name} {file}");
            }
        }

        for (file, format, exact) in [
            ("eks.jsonl", InputFormat::Eks, true),
            ("eks.b64", InputFormat::Eks, true),
            ("firehose.gz", InputFormat::Eks, true),
            ("fle.json", InputFormat::Eks, true),
            ("aks.json", InputFormat::Aks, true),
            ("aks-lines.json", InputFormat::Aks, true),
            ("aksaudit.json", InputFormat::Aks, false),
        ] {
            for f in [InputFormat::Auto, format] {
                let (events, rejects, _) = read(&w(file), f);
                assert!(rejects.is_empty(), "{name} {file} {f}: {:?}", &rejects[..rejects.len().min(3)]);
                assert_eq!(events.len(), native.len(), "{name} {file} {f}");
                for (a, b) in native.iter().zip(&events) {
                    if exact {
                        assert_eq!(a, b, "{name} {file}");
                    } else {
                        // AKSAudit has no kind/apiVersion columns, and v1beta1 leftovers are gone.
                        let mut a = a.clone();
                        for k in ["kind", "apiVersion", "timestamp", "metadata"] {
                            a.as_object_mut().unwrap().remove(k);
                        }
                        assert_eq!(&a, b, "{name} {file}");
                    }
                }
            }
        }
    }
}

#[test]
fn gke_wrappers_keep_what_gke_keeps() {
    let dir = tmp();
    for log in native_logs(dir.path()) {
        // GKE does not log the RequestReceived stage.
        let mut native = native_events(&log);
        native.retain(|e| e["stage"] != "RequestReceived");
        let name = log.file_name().unwrap().to_string_lossy().to_string();
        // gcloud logging read --format=json: one pretty-printed array; and JSON lines.
        let entries: Vec<Value> = native.iter().map(gke_entry).collect();
        let arr = dir.path().join(format!("{name}.gke.json"));
        std::fs::write(&arr, serde_json::to_string_pretty(&entries).unwrap()).unwrap();
        let lines = dir.path().join(format!("{name}.gke.jsonl"));
        write_lines(&lines, entries.iter().map(Value::to_string));
        for (file, format) in [(&arr, InputFormat::Auto), (&lines, InputFormat::Gke)] {
            let (events, rejects, _) = read(file, format);
            assert!(rejects.is_empty(), "{name}: {:?}", &rejects[..rejects.len().min(3)]);
            assert_eq!(events.len(), native.len());
            for (a, b) in native.iter().zip(&events) {
                assert_eq!(gke_view(&with_decision(a)), gke_view(b), "{name}");
                assert!(b.get("level").is_none() && b.get("stageTimestamp").is_none());
                if let Some(u) = b.get("user") {
                    assert_eq!(u.as_object().unwrap().len(), 1, "only the username: {b}");
                }
                // The path of the request, where the API server's URI names the object.
                let path = a["requestURI"].as_str().unwrap().split('?').next().unwrap();
                if ["get", "update", "patch", "delete"].contains(&a["verb"].as_str().unwrap()) {
                    assert_eq!(b["requestURI"], path, "{name}");
                }
            }
        }
        // "The same answer on the native log and on its wrapped form": counts by the fields
        // queries group on most.
        let key = |e: &Value| {
            let v = gke_view(e);
            format!(
                "{}|{}|{}|{}|{}|{}",
                v["verb"],
                v["objectRef"]["resource"],
                v["objectRef"]["namespace"],
                v["user"],
                v["code"],
                v["annotations"]["authorization.k8s.io/decision"]
            )
        };
        let count = |es: &[Value]| {
            es.iter().fold(BTreeMap::<String, usize>::new(), |mut m, e| {
                *m.entry(key(e)).or_default() += 1;
                m
            })
        };
        let native: Vec<Value> = native.iter().map(with_decision).collect();
        let (want, got) = (count(&native), count(&read(&lines, InputFormat::Auto).0));
        let differ: Vec<_> = want.iter().filter(|(k, n)| got.get(*k) != Some(n)).take(3).collect();
        assert!(differ.is_empty() && want.len() == got.len(), "{name}: {differ:?}");

        // And through `kaq query`: every record counted, by fields GKE keeps.
        let native_file = dir.path().join(format!("{name}.kept.jsonl"));
        write_lines(&native_file, native.iter().map(Value::to_string));
        // Namespaces differ by design (docs/inputs.md: GKE names a Namespace in its namespace too).
        let q = "NOT resource:namespaces | count by verb, resource, ns, user";
        let answer = |f: &Path| {
            let o = crate::common::run(&["query", q, f.to_str().unwrap(), "--all-stages", "--format", "json"]);
            assert!(o.status.success(), "{}", crate::common::stderr(&o));
            String::from_utf8(o.stdout).unwrap()
        };
        let (got, want) = (answer(&lines), answer(&native_file));
        let only = |a: &str, b: &str| {
            a.lines().filter(|l| !b.lines().any(|m| m == *l)).take(4).map(str::to_string).collect::<Vec<_>>()
        };
        assert!(
            got == want,
            "`{q}` over {name} as GKE entries: only wrapped {:?}, only native {:?}",
            only(&got, &want),
            only(&want, &got)
        );
    }
}

#[test]
fn mixed_shapes_in_one_file_and_bad_wrappers_have_reasons() {
    let dir = tmp();
    let native = native_events(&repo().join("tests/data/audit2rbac_demo.log"));
    let (a, b, c, d) = (&native[0], &native[1], &native[2], &native[3]);
    let log = dir.path().join("mixed.log");
    let lines = [
        a.to_string(),                                                            // 1 native
        gke_entry(b).to_string(),                                                 // 2 GKE
        gzip_b64(&eks_payload(&[c.clone(), d.clone()]).to_string()),              // 3 EKS, 2 events
        json!({"records":[aks_record(a), aks_record(b)]}).to_string(),             // 4 AKS, 2 events
        String::new(),                                                            // 5 blank
        json!({"records":[]}).to_string(),                                         // 6 empty wrapper
        r#"{"insertId":"x","protoPayload":{"serviceName":"compute.googleapis.com","methodName":"v1.compute.instances.insert"}}"#.into(), // 7
        json!({"records":[{"category":"kube-audit","properties":{"log":"{\"auditID\":\"cut"}}, aks_record(c)]}).to_string(), // 8: 1 bad, 1 good
        "H4sIAAAAAAAA/wMAAAAAAAAAAAA=garbage".into(),                              // 9 bad base64
        r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1}]}"#.into(), // 10
        r#"{"protoPayload":{"serviceName":"k8s.io","methodName":"io.k8s.get"}}"#.into(), // 11 no id
    ];
    write_lines(&log, lines);
    let (events, rejects, report) = read(&log, InputFormat::Auto);
    assert_eq!(events.len(), 7);
    assert_eq!(
        rejects,
        [
            "7: GKE entry: a Cloud Audit Logs entry of service `compute.googleapis.com`, not a Kubernetes audit event (only `serviceName: k8s.io` entries are; filter with protoPayload.serviceName=\"k8s.io\")",
            "8: AKS records[0]: properties.log: invalid JSON: EOF while parsing a string at column 15",
            "9: base64 gzip payload: invalid base64: Invalid symbol 61, offset 27.",
            "10: logEvents[0]: a log event without `message`",
            "11: GKE entry: no `operation.id` or `insertId` to use as the auditID",
        ]
    );
    assert_eq!(report.counts.blank, 2, "the blank line and the empty batch");
    assert_eq!(report.counts.lines, 11);
    // Through the CLI: the same, and the rejects file has each rejected record.
    let rj = dir.path().join("rejects.jsonl");
    let o = convert(&log, &dir.path().join("m.parquet"), &["--rejects", rj.to_str().unwrap()]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains("converted 7 events, rejected 5, skipped 2 empty lines"), "{err}");
    assert!(err.contains("mixed.log:10: logEvents[0]: a log event without `message`"), "{err}");
    let kept = std::fs::read_to_string(&rj).unwrap();
    assert_eq!(kept.lines().count(), 5);
    assert!(kept.lines().nth(1).unwrap().starts_with(r#"{"auditID":"cut"#), "the bad event alone: {kept}");
    // Forced k8s: the wrappers are rejected, the native line converts.
    let (events, rejects, _) = read(&log, InputFormat::K8s);
    assert_eq!((events.len(), rejects.len()), (1, 9));
    assert!(
        rejects[0].starts_with("2: not an audit Event: no auditID (this looks like a GKE Cloud Logging entry)"),
        "{rejects:?}"
    );
}

#[test]
fn input_format_flag() {
    let dir = tmp();
    let native = native_events(&repo().join("tests/data/audit2rbac_demo.log"));
    let log = dir.path().join("aks.json");
    write_lines(&log, [json!({"records": native.iter().map(aks_record).collect::<Vec<_>>()}).to_string()]);
    let out = dir.path().join("o.parquet");
    let o = convert(&log, &out, &["--input-format", "aks"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("converted 37 events, rejected 0"), "{}", stderr(&o));
    assert_eq!(parquet_events(&out).len(), 37);
    let o = convert(&log, &out, &["--input-format", "eks", "--strict"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("converted 0 events, rejected 1"), "{err}");
    assert!(
        err.contains("aks.json:1: an AKS diagnostic record or AKSAudit row, not an EKS CloudWatch Logs export (--input-format eks)"),
        "{err}"
    );
    let o = convert(&log, &out, &["--input-format", "gcp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("possible values: auto, k8s, gke, eks, aks"), "{}", stderr(&o));
    let help = String::from_utf8(run(&["convert", "--help"]).stdout).unwrap();
    assert!(help.contains("--input-format <FORMAT>") && help.contains("docs/inputs.md"), "{help}");
}

#[test]
fn secrets_in_wrapped_events_are_redacted() {
    let dir = tmp();
    let secret = json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"s1","stage":"ResponseComplete",
        "requestURI":"/api/v1/namespaces/prod/secrets","verb":"create","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],
        "objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},
        "requestObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"stringData":{"password":"V1JBUFBFRC1TRUNSRVQtMQ"}},
        "responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"V1JBUFBFRC1TRUNSRVQtMg"}},
        "requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:00.100000Z"});
    // A patch without kind: only the resource says it is a secret.
    let mut patch = secret.clone();
    patch["auditID"] = json!("s2");
    patch["verb"] = json!("patch");
    patch["requestObject"] = json!({"data":{"password":"V1JBUFBFRC1TRUNSRVQtMw"}});
    let bad = secret
        .to_string()
        .replace(r#""verb":"create""#, r#""verb":7"#)
        .replace("RVQtMQ", "RVQtNA")
        .replace("RVQtMg", "RVQtNQ");
    let log = dir.path().join("w.log");
    write_lines(
        &log,
        [
            gke_entry(&secret).to_string(),
            gke_entry(&patch).to_string(),
            json!({"records":[aks_record(&secret)]}).to_string(),
            gzip_b64(&eks_payload(&[secret.clone(), patch.clone()]).to_string()),
            aks_audit_row(&patch).to_string(),
            // Rejected: a bad event inside each wrapper.
            json!({"records":[{"category":"kube-audit","properties":{"log": bad}}]}).to_string(),
            gzip_b64(&json!({"logEvents":[{"id":"1","timestamp":1,"message": bad}]}).to_string()),
        ],
    );
    let secrets = [
        "V1JBUFBFRC1TRUNSRVQtMQ",
        "V1JBUFBFRC1TRUNSRVQtMg",
        "V1JBUFBFRC1TRUNSRVQtMw",
        "V1JBUFBFRC1TRUNSRVQtNA",
        "V1JBUFBFRC1TRUNSRVQtNQ",
    ];
    let pq = dir.path().join("w.parquet");
    let rj = dir.path().join("rejects.jsonl");
    let o = convert(&log, &pq, &["--rejects", rj.to_str().unwrap()]);
    assert!(stderr(&o).contains("converted 6 events, rejected 2"), "{}", stderr(&o));
    let mut seen: String = parquet_events(&pq).iter().map(|e| e.to_string() + "\n").collect();
    seen.push_str(&String::from_utf8_lossy(&std::fs::read(&pq).unwrap()));
    seen.push_str(&std::fs::read_to_string(&rj).unwrap());
    seen.push_str(&stderr(&o));
    for s in secrets {
        assert!(!seen.contains(s), "{s} leaked");
    }
    assert!(seen.matches(kaq_schema::redact::MARKER_PREFIX).count() >= 7);
    let o = convert(&log, &dir.path().join("k.parquet"), &["--keep-secrets"]);
    assert!(o.status.success());
    let kept: String = parquet_events(&dir.path().join("k.parquet")).iter().map(|e| e.to_string()).collect();
    for s in &secrets[..3] {
        assert!(kept.contains(s), "--keep-secrets keeps {s}");
    }
}
