//! AKS: Azure diagnostic-settings records and Log Analytics rows.
//!
//! - Diagnostic records, as Event Hubs and storage accounts get them: `{"records":[…]}`, or one
//!   record per line (storage's `PT1H.json`). A record of category `kube-audit` or
//!   `kube-audit-admin` holds one audit Event in `properties.log`, as a JSON string (usually) or
//!   an object. Records of other categories (`kube-apiserver`, `guard`…) are logs, not events,
//!   and are rejected with their category named.
//! - `AzureDiagnostics` rows (the legacy Log Analytics table): the Event in `log_s`.
//! - `AKSAudit` / `AKSAuditAdmin` rows (resource-specific Log Analytics tables), as `az monitor
//!   log-analytics query` prints them (a JSON array of objects) or as the query API returns them
//!   (`{"tables":[{"columns":[…],"rows":[[…]]}]}`): one column per Event field, dynamic columns as
//!   objects or as JSON text.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Ctx, Emit, Obj, as_array, as_object, as_str, embedded_event, join, type_name};

const AUDIT_CATEGORIES: [&str; 2] = ["kube-audit", "kube-audit-admin"];

/// `{"records":[…]}`.
pub(crate) fn records(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let Some(list) = m.get("records").and_then(|r| as_array(r)) else {
        return emit.reject(what, "`records` is not an array (not an AKS diagnostic batch)", text);
    };
    for (i, rec) in list.into_iter().enumerate() {
        let what = join(what, format_args!("AKS records[{i}]"));
        match as_object(rec) {
            // Firehose's transformation events also say `records`, each with base64 `data`.
            Some(r)
                if !r.contains_key("properties") && r.contains_key("data") && ctx.format != super::InputFormat::Aks =>
            {
                match r.get("data").and_then(|d| as_str(d)) {
                    Some(d) if super::eks::looks_like_blob(&d) => super::eks::blob(ctx, d.trim(), emit, &what),
                    _ => emit.reject(&what, "expected an AKS diagnostic record (`properties.log`)", rec.get()),
                }
            }
            Some(r) => record(ctx, &r, rec.get(), emit, &what),
            None => {
                emit.reject(&what, format!("expected an AKS diagnostic record, found {}", type_name(rec)), rec.get())
            }
        }
    }
}

/// One diagnostic record.
pub(crate) fn record(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let category = m.get("category").and_then(|c| as_str(c));
    if let Some(c) = &category
        && !AUDIT_CATEGORIES.contains(&c.as_ref())
    {
        let reason = format!(
            "an AKS diagnostic record of category `{c}`, not an audit event (only kube-audit and kube-audit-admin records are)"
        );
        return emit.reject(what, reason, text);
    }
    let log = m.get("properties").and_then(|p| as_object(p)).and_then(|p| p.get("log").copied());
    match log {
        Some(log) => embedded_event(ctx, log, emit, &join(what, "properties.log")),
        None => emit.reject(what, "an AKS diagnostic record without `properties.log`", text),
    }
}

/// A row of the legacy `AzureDiagnostics` table.
pub(crate) fn azure_diagnostics(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let category = m.get("Category").or_else(|| m.get("category")).and_then(|c| as_str(c));
    if let Some(c) = &category
        && !AUDIT_CATEGORIES.contains(&c.as_ref())
    {
        let reason = format!(
            "an AzureDiagnostics row of category `{c}`, not an audit event (only kube-audit and kube-audit-admin rows are)"
        );
        return emit.reject(what, reason, text);
    }
    let log = m.get("log_s").copied().expect("the shape says log_s");
    embedded_event(ctx, log, emit, &join(what, "log_s"))
}

/// `AKSAudit` columns → audit Event fields.
const COLUMNS: [(&str, &str, Kind); 16] = [
    ("AuditId", "auditID", Kind::Str),
    ("Level", "level", Kind::Str),
    ("Stage", "stage", Kind::Str),
    ("RequestUri", "requestURI", Kind::Str),
    ("Verb", "verb", Kind::Str),
    ("User", "user", Kind::Json),
    ("ImpersonatedUser", "impersonatedUser", Kind::Json),
    ("SourceIps", "sourceIPs", Kind::Json),
    ("UserAgent", "userAgent", Kind::Str),
    ("ObjectRef", "objectRef", Kind::Json),
    ("ResponseStatus", "responseStatus", Kind::Json),
    ("RequestObject", "requestObject", Kind::Json),
    ("ResponseObject", "responseObject", Kind::Json),
    ("RequestReceivedTime", "requestReceivedTimestamp", Kind::Time),
    ("StageReceivedTime", "stageTimestamp", Kind::Time),
    ("Annotations", "annotations", Kind::Json),
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// A `dynamic` column: an object or array, or its JSON text.
    Json,
    Time,
}

/// The audit Event (as JSON) of one `AKSAudit` row.
pub fn row_to_event(row: &Map<String, Value>) -> Value {
    let mut ev = Map::new();
    for (col, field, kind) in COLUMNS {
        let Some(v) = row.get(col) else { continue };
        let v = match (kind, v) {
            // Log Analytics has no null for strings: an empty cell is an absent field.
            (_, Value::Null) => continue,
            (_, Value::String(s)) if s.is_empty() => continue,
            (Kind::Json, Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(j @ (Value::Object(_) | Value::Array(_))) => j,
                // "skipped-too-big-size-object" and the like: kept as the string it is.
                _ => v.clone(),
            },
            (Kind::Json, Value::Object(o)) if o.is_empty() && field != "responseStatus" => continue,
            (Kind::Time, Value::String(s)) => {
                let t = kaq_schema::time::parse_rfc3339(s)
                    .map_or_else(|| s.clone(), |p| kaq_schema::time::format_micros(p.micros));
                Value::String(t)
            }
            _ => v.clone(),
        };
        ev.insert(field.into(), v);
    }
    Value::Object(ev)
}

/// One `AKSAudit` row.
pub(crate) fn audit_row(ctx: &Ctx<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    let what = join(what, "AKSAudit row");
    match serde_json::from_str::<Map<String, Value>>(text) {
        Ok(row) => emit.event(ctx, &what, &row_to_event(&row).to_string()),
        Err(e) => emit.reject(&what, format!("invalid JSON: {e}"), text),
    }
}

/// A Log Analytics query result: `{"tables":[{"name","columns":[{"name","type"}],"rows":[[…]]}]}`.
pub(crate) fn tables(ctx: &Ctx<'_>, m: &Obj<'_>, text: &str, emit: &mut Emit<'_>, what: &str) {
    #[derive(serde::Deserialize)]
    struct Column {
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct Table<'a> {
        #[serde(default)]
        columns: Vec<Column>,
        #[serde(borrow, default)]
        rows: Vec<Vec<&'a RawValue>>,
    }
    let tables = m.get("tables").map(|t| serde_json::from_str::<Vec<Table<'_>>>(t.get()));
    let Some(Ok(tables)) = tables else {
        return emit.reject(what, "`tables` is not a list of Log Analytics tables (columns and rows)", text);
    };
    for (t, table) in tables.iter().enumerate() {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        for (r, row) in table.rows.iter().enumerate() {
            let what = join(what, format_args!("tables[{t}].rows[{r}]"));
            let raw = format!("[{}]", row.iter().map(|c| c.get()).collect::<Vec<_>>().join(","));
            if !names.contains(&"AuditId") {
                emit.reject(&what, "a Log Analytics row without an AuditId column (not an AKSAudit row)", &raw);
                continue;
            }
            let mut obj = Map::new();
            for (name, cell) in names.iter().zip(row) {
                obj.insert((*name).to_string(), serde_json::from_str(cell.get()).unwrap_or(Value::Null));
            }
            emit.event(ctx, &join(&what, "AKSAudit row"), &row_to_event(&obj).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::InputFormat;
    use super::super::tests::run;
    use super::*;

    #[test]
    fn records_strings_objects_and_categories() {
        let text = r#"{"records":[
            {"category":"kube-audit","properties":{"log":"{\"kind\":\"Event\",\"auditID\":\"s\"}\n","stream":"stdout"}},
            {"category":"kube-audit-admin","properties":{"log":{"kind":"Event","auditID":"o"}}},
            {"category":"kube-apiserver","properties":{"log":"I0505 16:16:37 trace.go] hello"}},
            {"category":"kube-audit","properties":{"stream":"stdout"}},
            {"category":"kube-audit","properties":{"log":"{\"kind\":\"Event\",\"auditID\":7}"}},
            {"category":"kube-audit","properties":{"log":42}}
        ]}"#;
        let (n, ids, r) = run(text, InputFormat::Auto);
        assert_eq!((n, ids), (6, vec!["s".to_string(), "o".to_string()]));
        assert_eq!(
            r[0],
            "AKS records[2]: an AKS diagnostic record of category `kube-apiserver`, not an audit event (only kube-audit and kube-audit-admin records are)"
        );
        assert_eq!(r[1], "AKS records[3]: an AKS diagnostic record without `properties.log`");
        assert!(r[2].starts_with("AKS records[4]: properties.log: `auditID`: invalid type"), "{}", r[2]);
        assert_eq!(
            r[3],
            "AKS records[5]: properties.log: expected an audit Event (a JSON string or object), found a number"
        );
        assert_eq!(run(r#"{"records":[]}"#, InputFormat::Auto).0, 0);
        let (_, _, r) = run(r#"{"records":{}}"#, InputFormat::Auto);
        assert_eq!(r, ["`records` is not an array (not an AKS diagnostic batch)"]);
    }

    #[test]
    fn aks_audit_rows() {
        let row = r#"{"TimeGenerated":"2024-01-02T03:04:05.1234567Z","AuditId":"r1","Level":"Metadata","Stage":"ResponseComplete",
            "RequestUri":"/api/v1/namespaces/prod/secrets/db","Verb":"get",
            "User":"{\"username\":\"alice\",\"groups\":[\"system:authenticated\"]}","SourceIps":["10.0.0.1"],
            "UserAgent":"kubectl","ObjectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},
            "ResponseStatus":{"metadata":{},"code":200},"RequestObject":"skipped-too-big-size-object","ResponseObject":"",
            "RequestReceivedTime":"2024-01-02T03:04:05.1234567Z","StageReceivedTime":"2024-01-02T03:04:05.2Z",
            "Annotations":"{\"authorization.k8s.io/decision\":\"allow\"}","ImpersonatedUser":{},"PodName":"kube-apiserver-1","Type":"AKSAudit"}"#;
        let ev = row_to_event(&serde_json::from_str(row).unwrap());
        assert_eq!(
            ev,
            serde_json::json!({
                "auditID":"r1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/secrets/db",
                "verb":"get","user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["10.0.0.1"],
                "userAgent":"kubectl","objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},
                "responseStatus":{"metadata":{},"code":200},"requestObject":"skipped-too-big-size-object",
                "requestReceivedTimestamp":"2024-01-02T03:04:05.123456Z","stageTimestamp":"2024-01-02T03:04:05.200000Z",
                "annotations":{"authorization.k8s.io/decision":"allow"}
            })
        );
        assert_eq!(run(row, InputFormat::Auto).1, ["r1"]);
        assert_eq!(run(&format!("[{row},{row}]"), InputFormat::Aks).1, ["r1", "r1"]);
        let tables = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"AuditId","type":"string"},{"name":"Verb","type":"string"}],
            "rows":[["t1","get"],["t2","list"]]},{"name":"x","columns":[{"name":"Foo"}],"rows":[[1]]}]}"#;
        let (n, ids, r) = run(tables, InputFormat::Auto);
        assert_eq!((n, ids), (3, vec!["t1".to_string(), "t2".to_string()]));
        assert_eq!(r, ["tables[1].rows[0]: a Log Analytics row without an AuditId column (not an AKSAudit row)"]);
    }

    #[test]
    fn azure_diagnostics_rows() {
        let row = r#"{"Category":"kube-audit","log_s":"{\"auditID\":\"d1\"}","ResourceId":"/SUBSCRIPTIONS/X"}"#;
        assert_eq!(run(row, InputFormat::Auto).1, ["d1"]);
        let (_, _, r) = run(r#"{"Category":"guard","log_s":"hello"}"#, InputFormat::Auto);
        assert!(r[0].contains("category `guard`"), "{r:?}");
    }
}
