//! Events → Arrow record batches.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Int32Builder, ListBuilder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use kaq_schema::Event;
use serde_json::Value;

use crate::schema::{ABSENT_KEY, audit_schema};

/// A string column. Low-cardinality columns are plain strings in Arrow too (see
/// [`Col::Dict`](crate::Col::Dict)).
type Str = Sparse<StringBuilder>;
type Dict = Str;
type List = ListBuilder<StringBuilder>;

/// A builder whose nulls are counted and appended together, a run of them in one call when the
/// next value comes (or at the end). Most of the schema's columns are null in most events (the
/// impersonation, the status's details, the pod fields, the bodies…); one call a row and a column
/// for each cost 3% of a conversion.
struct Sparse<B> {
    b: B,
    nulls: usize,
}

/// A builder that appends a run of nulls at once.
trait AppendNulls: ArrayBuilder {
    fn append_nulls(&mut self, n: usize);
}

impl AppendNulls for StringBuilder {
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n)
    }
}

impl AppendNulls for BooleanBuilder {
    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n)
    }
}

impl AppendNulls for List {
    fn append_nulls(&mut self, n: usize) {
        List::append_nulls(self, n)
    }
}

impl<B: AppendNulls> Sparse<B> {
    fn new(b: B) -> Self {
        Sparse { b, nulls: 0 }
    }

    fn null(&mut self) {
        self.nulls += 1;
    }

    /// The builder, its nulls appended: for a value.
    fn get(&mut self) -> &mut B {
        if self.nulls > 0 {
            self.b.append_nulls(std::mem::take(&mut self.nulls));
        }
        &mut self.b
    }

    fn finish(&mut self) -> ArrayRef {
        self.get().finish()
    }
}

impl Sparse<StringBuilder> {
    fn append_option(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.get().append_value(v),
            None => self.null(),
        }
    }
}

impl Sparse<BooleanBuilder> {
    fn append_option(&mut self, v: Option<bool>) {
        match v {
            Some(v) => self.get().append_value(v),
            None => self.null(),
        }
    }
}

impl Sparse<List> {
    fn append_option<S: AsRef<str>>(&mut self, v: Option<&[S]>) {
        match v {
            Some(items) => list_append(self.get(), Some(items)),
            None => self.null(),
        }
    }
}

/// Accumulates events; [`EventBatchBuilder::finish`] gives a batch of [`audit_schema`].
pub struct EventBatchBuilder {
    time: TimestampMicrosecondBuilder,
    stage_time: TimestampMicrosecondBuilder,
    id: Str,
    stage: Dict,
    level: Dict,
    verb: Dict,
    uri: Str,
    user: Dict,
    uid: Str,
    groups: List,
    user_extra: Str,
    as_: Str,
    as_uid: Str,
    as_groups: Sparse<List>,
    as_extra: Str,
    ip: List,
    ua: Dict,
    resource: Dict,
    subresource: Dict,
    ns: Dict,
    name: Str,
    apigroup: Dict,
    apiversion: Dict,
    object_uid: Str,
    resource_version: Str,
    code: Int32Builder,
    status: Dict,
    reason: Dict,
    message: Str,
    status_metadata: Dict,
    status_details: Str,
    decision: Dict,
    authz_reason: Str,
    annotations: MapBuilder<StringBuilder, StringBuilder>,
    request: Str,
    response: Str,
    user_kind: Dict,
    exec_command: Str,
    privileged: Sparse<BooleanBuilder>,
    host_network: Sparse<BooleanBuilder>,
    host_pid: Sparse<BooleanBuilder>,
    host_ipc: Sparse<BooleanBuilder>,
    host_paths: Sparse<List>,
    event_kind: Dict,
    event_version: Dict,
    unmapped: Str,
    rows: usize,
}

/// How much a batch's string columns held ([`EventBatchBuilder::sizes`]): the builders of the
/// next batches are made with room for as much ([`EventBatchBuilder::with_sizes`]). A buffer
/// grown while appending is copied, and its pages touched twice; the bodies, the annotations and
/// the authorization reason start with no room otherwise.
#[derive(Debug, Clone, Default)]
pub struct BatchSizes {
    rows: usize,
    /// Each column's name, items and bytes.
    strings: Vec<(&'static str, usize, usize)>,
}

/// The most room [`BatchSizes`] gives a column.
const MAX_ROOM: usize = 16 << 20;

impl BatchSizes {
    /// Room for column `name` in a batch of `rows` rows: its items and bytes scaled to them, and
    /// an eighth more.
    fn of(&self, name: &str, rows: usize) -> Option<(usize, usize)> {
        let &(_, items, bytes) = self.strings.iter().find(|s| s.0 == name)?;
        let scale = |x: usize| (x as u128 * rows as u128 / self.rows.max(1) as u128) as usize;
        // At most 16 MiB a column: a batch of a few huge values does not size every next one.
        let more = |x: usize| (x + x / 8).min(MAX_ROOM);
        Some((more(scale(items)), more(scale(bytes)) + 64))
    }
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn list_append<S: AsRef<str>>(b: &mut List, v: Option<&[S]>) {
    match v {
        Some(items) => {
            for s in items {
                b.values().append_value(s.as_ref());
            }
            b.append(true);
        }
        None => b.append(false),
    }
}

impl EventBatchBuilder {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A builder with room for `rows` rows (growing buffers costs copies).
    pub fn with_capacity(rows: usize) -> Self {
        Self::with_sizes(rows, None)
    }

    /// A builder with room for `rows` rows, its string columns for as many bytes a row as
    /// `like`'s held (an eighth more), or a guess without it ([`BatchSizes`]).
    pub fn with_sizes(rows: usize, like: Option<&BatchSizes>) -> Self {
        let n = rows;
        // Room for a string column (a list's values, a map's keys or values) of `name`: its
        // items and bytes.
        let room = |name: &str, items_per_row: usize, bytes_per_row: usize| match like.and_then(|l| l.of(name, n)) {
            Some((items, bytes)) => StringBuilder::with_capacity(items, bytes),
            None => StringBuilder::with_capacity(n * items_per_row, n * bytes_per_row),
        };
        let s = |name: &str, bytes_per_row: usize| Sparse::new(room(name, 1, bytes_per_row));
        let d = |name: &str| Sparse::new(room(name, 1, 16));
        let e = |name: &str| Sparse::new(room(name, 0, 0));
        let l =
            |name: &str, items_per_row: usize, bytes: usize| List::with_capacity(room(name, items_per_row, bytes), n);
        let names =
            arrow_array::builder::MapFieldNames { entry: "entries".into(), key: "keys".into(), value: "values".into() };
        EventBatchBuilder {
            time: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            stage_time: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            id: s("id", 36),
            stage: d("stage"),
            level: d("level"),
            verb: d("verb"),
            uri: s("uri", 72),
            user: d("user"),
            uid: s("uid", 36),
            groups: l("groups", 2, 40),
            user_extra: e("user_extra"),
            as_: e("as"),
            as_uid: s("as_uid", 36),
            as_groups: Sparse::new(l("as_groups", 2, 40)),
            as_extra: e("as_extra"),
            ip: l("ip", 1, 12),
            ua: d("ua"),
            resource: d("resource"),
            subresource: d("subresource"),
            ns: d("ns"),
            name: s("name", 24),
            apigroup: d("apigroup"),
            apiversion: d("apiversion"),
            object_uid: s("object_uid", 36),
            resource_version: s("resource_version", 8),
            code: Int32Builder::with_capacity(n),
            status: d("status"),
            reason: d("reason"),
            message: e("message"),
            status_metadata: d("status_metadata"),
            status_details: e("status_details"),
            decision: d("decision"),
            authz_reason: e("authz_reason"),
            annotations: MapBuilder::with_capacity(
                Some(names),
                room("annotations.keys", 0, 0),
                room("annotations.values", 0, 0),
                n,
            ),
            request: e("request"),
            response: e("response"),
            user_kind: d("user_kind"),
            exec_command: e("exec_command"),
            privileged: Sparse::new(BooleanBuilder::with_capacity(n)),
            host_network: Sparse::new(BooleanBuilder::with_capacity(n)),
            host_pid: Sparse::new(BooleanBuilder::with_capacity(n)),
            host_ipc: Sparse::new(BooleanBuilder::with_capacity(n)),
            host_paths: Sparse::new(List::new(room("host_paths", 0, 0))),
            event_kind: d("event_kind"),
            event_version: d("event_version"),
            unmapped: e("unmapped"),
            rows: 0,
        }
    }

    /// Each string column's items and bytes so far, by name (a list's values by the list's, a
    /// map's keys and values as `annotations.keys` and `annotations.values`): call before
    /// [`finish`](Self::finish), which starts over empty.
    pub fn sizes(&mut self) -> BatchSizes {
        let rows = self.rows;
        let strings = self
            .strings()
            .into_iter()
            .map(|(name, b)| (name, b.offsets_slice().len().saturating_sub(1), b.values_slice().len()))
            .collect();
        BatchSizes { rows, strings }
    }

    /// Every string builder, by the name [`BatchSizes`] knows it by.
    fn strings(&mut self) -> Vec<(&'static str, &StringBuilder)> {
        let (keys, values) = self.annotations.entries();
        vec![
            ("id", &self.id.b),
            ("stage", &self.stage.b),
            ("level", &self.level.b),
            ("verb", &self.verb.b),
            ("uri", &self.uri.b),
            ("user", &self.user.b),
            ("uid", &self.uid.b),
            ("groups", self.groups.values_ref()),
            ("user_extra", &self.user_extra.b),
            ("as", &self.as_.b),
            ("as_uid", &self.as_uid.b),
            ("as_groups", self.as_groups.b.values_ref()),
            ("as_extra", &self.as_extra.b),
            ("ip", self.ip.values_ref()),
            ("ua", &self.ua.b),
            ("resource", &self.resource.b),
            ("subresource", &self.subresource.b),
            ("ns", &self.ns.b),
            ("name", &self.name.b),
            ("apigroup", &self.apigroup.b),
            ("apiversion", &self.apiversion.b),
            ("object_uid", &self.object_uid.b),
            ("resource_version", &self.resource_version.b),
            ("status", &self.status.b),
            ("reason", &self.reason.b),
            ("message", &self.message.b),
            ("status_metadata", &self.status_metadata.b),
            ("status_details", &self.status_details.b),
            ("decision", &self.decision.b),
            ("authz_reason", &self.authz_reason.b),
            ("annotations.keys", keys),
            ("annotations.values", values),
            ("request", &self.request.b),
            ("response", &self.response.b),
            ("user_kind", &self.user_kind.b),
            ("exec_command", &self.exec_command.b),
            ("host_paths", self.host_paths.b.values_ref()),
            ("event_kind", &self.event_kind.b),
            ("event_version", &self.event_version.b),
            ("unmapped", &self.unmapped.b),
        ]
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event.
    pub fn append(&mut self, ev: &Event<'_>) {
        let d = &ev.derived;
        self.time.append_option(d.time);
        self.stage_time.append_option(ev.stage_timestamp);
        self.id.append_option(ev.audit_id.as_deref());
        self.stage.append_option(ev.stage.as_deref());
        self.level.append_option(ev.level.as_deref());
        self.verb.append_option(ev.verb.as_deref());
        self.uri.append_option(ev.request_uri.as_deref());

        let u = ev.user.as_ref();
        self.user.append_option(u.and_then(|u| u.username.as_deref()));
        self.uid.append_option(u.and_then(|u| u.uid.as_deref()));
        list_append(&mut self.groups, u.and_then(|u| u.groups.as_deref()));
        self.user_extra.append_option(u.and_then(|u| u.extra.as_deref()));
        let a = ev.impersonated_user.as_ref();
        self.as_.append_option(a.and_then(|u| u.username.as_deref()));
        self.as_uid.append_option(a.and_then(|u| u.uid.as_deref()));
        self.as_groups.append_option(a.and_then(|u| u.groups.as_deref()));
        self.as_extra.append_option(a.and_then(|u| u.extra.as_deref()));
        list_append(&mut self.ip, ev.source_ips.as_deref());
        self.ua.append_option(ev.user_agent.as_deref());

        let o = ev.object_ref.as_ref();
        self.resource.append_option(o.and_then(|o| o.resource.as_deref()));
        self.subresource.append_option(o.and_then(|o| o.subresource.as_deref()));
        self.ns.append_option(o.and_then(|o| o.namespace.as_deref()));
        self.name.append_option(o.and_then(|o| o.name.as_deref()));
        self.apigroup.append_option(o.and_then(|o| o.api_group.as_deref()));
        self.apiversion.append_option(o.and_then(|o| o.api_version.as_deref()));
        self.object_uid.append_option(o.and_then(|o| o.uid.as_deref()));
        self.resource_version.append_option(o.and_then(|o| o.resource_version.as_deref()));

        let s = ev.response_status.as_ref();
        self.code.append_option(s.and_then(|s| s.code));
        self.status.append_option(s.and_then(|s| s.status.as_deref()));
        self.reason.append_option(s.and_then(|s| s.reason.as_deref()));
        self.message.append_option(s.and_then(|s| s.message.as_deref()));
        self.status_metadata.append_option(s.and_then(|s| s.metadata.as_deref()));
        self.status_details.append_option(s.and_then(|s| s.details.as_deref()));

        self.decision.append_option(ev.annotation("authorization.k8s.io/decision"));
        self.authz_reason.append_option(ev.annotation("authorization.k8s.io/reason"));
        match &ev.annotations {
            Some(ann) => {
                for (k, v) in ann {
                    self.annotations.keys().append_value(k);
                    self.annotations.values().append_value(v);
                }
                self.annotations.append(true).expect("keys and values stay in step");
            }
            None => self.annotations.append(false).expect("keys and values stay in step"),
        }
        self.request.append_option(ev.request_object.as_deref());
        self.response.append_option(ev.response_object.as_deref());
        self.user_kind.append_option(d.user_kind.map(|k| k.as_str()));
        self.exec_command.append_option(d.exec_command.as_deref());
        let pod = d.pod.as_ref();
        self.privileged.append_option(pod.map(|p| p.privileged));
        self.host_network.append_option(pod.map(|p| p.host_network));
        self.host_pid.append_option(pod.map(|p| p.host_pid));
        self.host_ipc.append_option(pod.map(|p| p.host_ipc));
        self.host_paths.append_option(pod.map(|p| p.host_paths.as_slice()));
        self.event_kind.append_option(ev.kind.as_deref());
        self.event_version.append_option(ev.api_version.as_deref());

        let absent_time = ev.request_received.is_none() && d.time.is_some();
        if ev.unmapped.is_none() && !absent_time {
            self.unmapped.null();
        } else {
            let mut m = ev.unmapped.clone().unwrap_or_default();
            if absent_time {
                m.insert(ABSENT_KEY.into(), Value::from(vec!["requestReceivedTimestamp"]));
            }
            self.unmapped.get().append_value(Value::Object(m).to_string());
        }
        self.rows += 1;
    }

    /// The batch of everything appended; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.stage_time.finish()),
            self.id.finish(),
            self.stage.finish(),
            self.level.finish(),
            self.verb.finish(),
            self.uri.finish(),
            self.user.finish(),
            self.uid.finish(),
            Arc::new(self.groups.finish()),
            self.user_extra.finish(),
            self.as_.finish(),
            self.as_uid.finish(),
            self.as_groups.finish(),
            self.as_extra.finish(),
            Arc::new(self.ip.finish()),
            self.ua.finish(),
            self.resource.finish(),
            self.subresource.finish(),
            self.ns.finish(),
            self.name.finish(),
            self.apigroup.finish(),
            self.apiversion.finish(),
            self.object_uid.finish(),
            self.resource_version.finish(),
            Arc::new(self.code.finish()),
            self.status.finish(),
            self.reason.finish(),
            self.message.finish(),
            self.status_metadata.finish(),
            self.status_details.finish(),
            self.decision.finish(),
            self.authz_reason.finish(),
            Arc::new(self.annotations.finish()),
            self.request.finish(),
            self.response.finish(),
            self.user_kind.finish(),
            self.exec_command.finish(),
            self.privileged.finish(),
            self.host_network.finish(),
            self.host_pid.finish(),
            self.host_ipc.finish(),
            self.host_paths.finish(),
            self.event_kind.finish(),
            self.event_version.finish(),
            self.unmapped.finish(),
        ];
        self.rows = 0;
        RecordBatch::try_new(audit_schema(), columns).expect("builder columns match audit_schema")
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, StringArray};

    use super::*;
    use crate::column_index;

    /// A builder made with the sizes of a batch ([`EventBatchBuilder::sizes`]) takes the same
    /// events again without growing any string buffer; every string column is sized by its name.
    #[test]
    fn builders_sized_like_a_batch_do_not_grow() {
        let event = |i: usize| {
            serde_json::json!({
                "auditID": format!("id-{i}"), "stage": "ResponseComplete", "verb": "create",
                "requestURI": format!("/api/v1/namespaces/ns{i}/pods/pod-{i}/exec?command=ls&command=-l{i}"), "level": "RequestResponse",
                "user": {"username": format!("user-{i}"), "uid": "u", "groups": ["system:authenticated", format!("g{i}")],
                         "extra": {"k": [format!("v{i}")]}},
                "impersonatedUser": {"username": "as", "uid": "x", "groups": ["a"], "extra": {"e": ["f"]}},
                "sourceIPs": [format!("10.0.0.{}", i % 250)], "userAgent": format!("agent/{i}"),
                "objectRef": {"resource": "pods", "namespace": format!("ns{i}"), "name": format!("pod-{i}"),
                              "uid": "o", "apiGroup": "apps", "apiVersion": "v1", "resourceVersion": "7", "subresource": "exec"},
                "responseStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "message": format!("no {i}"),
                                   "details": {"name": "n"}, "code": 403},
                "requestObject": {"kind": "Pod", "spec": {"hostPID": true, "volumes": [{"hostPath": {"path": format!("/p{i}")}}],
                                  "containers": [{"securityContext": {"privileged": true}}]}},
                "responseObject": {"kind": "Status", "n": i},
                "annotations": {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": format!("because {i}")},
                "requestReceivedTimestamp": "2026-11-20T05:00:00.000000Z", "stageTimestamp": "2026-11-20T05:00:01.000000Z",
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "unknownKey": i,
            })
            .to_string()
        };
        let texts: Vec<String> = (0..300).map(event).collect();
        let events: Vec<Event<'_>> =
            texts.iter().map(|t| kaq_schema::decode_event(t, &Default::default()).unwrap()).collect();
        let mut first = EventBatchBuilder::with_capacity(1);
        events.iter().for_each(|e| first.append(e));
        let sizes = first.sizes();
        // Every column holds bytes here, so a name sized wrongly shows as growth below.
        for (name, _, bytes) in &sizes.strings {
            assert!(*bytes > 0, "{name} holds nothing in the test's events");
        }
        let strings = sizes.strings.iter().filter(|s| !s.0.starts_with("annotations.")).count();
        let schema_strings = crate::COLUMNS
            .iter()
            .filter(|(_, c)| matches!(c, crate::Col::Str | crate::Col::Dict | crate::Col::List))
            .count();
        assert_eq!(strings, schema_strings, "every string column is sized");
        let mut b = EventBatchBuilder::with_sizes(events.len(), Some(&sizes));
        let room = |b: &mut EventBatchBuilder| -> Vec<(&str, usize)> {
            b.strings().into_iter().map(|(n, s)| (n, s.values_capacity())).collect()
        };
        let before = room(&mut b);
        for ((name, cap), (_, _, bytes)) in before.iter().zip(&sizes.strings) {
            // The room asked for this column's name (Arrow rounds it up to 64 bytes).
            let want = sizes.of(name, events.len()).unwrap().1;
            assert!(cap >= bytes && *cap >= want && *cap < want + 64, "{name}: room for {cap} bytes, {bytes} needed");
        }
        events.iter().for_each(|e| b.append(e));
        assert_eq!(room(&mut b), before, "no buffer grew");
        let batch = first.finish();
        assert_eq!(b.finish(), batch);
        // The sizes are those of the batch's columns of the same names.
        let values = |a: &dyn Array| -> usize {
            let s = match a.as_list_opt::<i32>() {
                Some(l) => l.values().as_string::<i32>().clone(),
                None => a.as_string::<i32>().clone(),
            };
            s.values().len()
        };
        let map = batch.column(column_index("annotations").unwrap()).as_map().clone();
        for (name, _, bytes) in &sizes.strings {
            let held = match *name {
                "annotations.keys" => values(map.keys().as_ref()),
                "annotations.values" => values(map.values().as_ref()),
                _ => values(batch.column(column_index(name).unwrap()).as_ref()),
            };
            assert_eq!(held, *bytes, "{name}");
        }
        // Twice the rows: twice the room.
        let b = EventBatchBuilder::with_sizes(2 * events.len(), Some(&sizes));
        let ids = b.id.b.values_capacity();
        assert!(ids >= 2 * sizes.of("id", events.len()).unwrap().1 - 200, "{ids}");
    }

    /// Nulls held back and appended in runs land where they were: at the start, between values,
    /// at a batch's end, and none are left over for the next batch of the same builder.
    #[test]
    fn nulls_in_runs_stay_in_place() {
        let event = |i: usize| {
            let mut e = serde_json::json!({
                "auditID": format!("a{i}"), "stage": "ResponseComplete", "verb": "get",
                "requestURI": "/api", "user": {"username": "u"},
            });
            if i % 5 == 3 || i % 7 == 6 {
                e["impersonatedUser"] = serde_json::json!({"username": format!("as{i}"), "groups": [format!("g{i}")]});
            }
            if i % 11 == 10 {
                e["responseStatus"] = serde_json::json!({"code": 403, "message": format!("m{i}")});
            }
            e.to_string()
        };
        let mut b = EventBatchBuilder::new();
        let mut i = 0;
        for n in [1, 9, 30, 0, 17] {
            let first = i;
            for _ in 0..n {
                let text = event(i);
                b.append(&kaq_schema::decode_event(&text, &Default::default()).unwrap());
                i += 1;
            }
            let batch = b.finish();
            assert_eq!(batch.num_rows(), n);
            let col = |name: &str| batch.column(column_index(name).unwrap()).clone();
            let (as_, message) = (col("as"), col("message"));
            let (as_, message) = (as_.as_string::<i32>(), message.as_string::<i32>());
            let as_groups = col("as_groups");
            let as_groups = as_groups.as_list::<i32>();
            for r in 0..n {
                let k = first + r;
                let imp = k % 5 == 3 || k % 7 == 6;
                assert_eq!(as_.is_valid(r).then(|| as_.value(r)), imp.then(|| format!("as{k}")).as_deref(), "row {k}");
                assert_eq!(as_groups.is_valid(r), imp, "row {k}");
                if imp {
                    let g = as_groups.value(r);
                    let g: &StringArray = g.as_string();
                    assert_eq!(g.value(0), format!("g{k}"));
                }
                let m = (k % 11 == 10).then(|| format!("m{k}"));
                assert_eq!(message.is_valid(r).then(|| message.value(r)), m.as_deref(), "row {k}");
                // A column every event lacks is null throughout.
                assert!(col("exec_command").is_null(r));
            }
        }
    }
}
