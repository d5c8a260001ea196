//! Events → Arrow record batches.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int32Builder, ListBuilder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use kaq_schema::Event;
use serde_json::Value;

use crate::schema::{ABSENT_KEY, audit_schema};

/// Low-cardinality columns are plain strings in Arrow too (see [`Col::Dict`](crate::Col::Dict)).
type Dict = StringBuilder;
type List = ListBuilder<StringBuilder>;

/// Accumulates events; [`EventBatchBuilder::finish`] gives a batch of [`audit_schema`].
pub struct EventBatchBuilder {
    time: TimestampMicrosecondBuilder,
    stage_time: TimestampMicrosecondBuilder,
    id: StringBuilder,
    stage: Dict,
    level: Dict,
    verb: Dict,
    uri: StringBuilder,
    user: Dict,
    uid: StringBuilder,
    groups: List,
    user_extra: StringBuilder,
    as_: StringBuilder,
    as_uid: StringBuilder,
    as_groups: List,
    as_extra: StringBuilder,
    ip: List,
    ua: Dict,
    resource: Dict,
    subresource: Dict,
    ns: Dict,
    name: StringBuilder,
    apigroup: Dict,
    apiversion: Dict,
    object_uid: StringBuilder,
    resource_version: StringBuilder,
    code: Int32Builder,
    status: Dict,
    reason: Dict,
    message: StringBuilder,
    status_metadata: Dict,
    status_details: StringBuilder,
    decision: Dict,
    authz_reason: StringBuilder,
    annotations: MapBuilder<StringBuilder, StringBuilder>,
    request: StringBuilder,
    response: StringBuilder,
    user_kind: Dict,
    exec_command: StringBuilder,
    privileged: BooleanBuilder,
    host_network: BooleanBuilder,
    host_pid: BooleanBuilder,
    host_ipc: BooleanBuilder,
    host_paths: List,
    event_kind: Dict,
    event_version: Dict,
    unmapped: StringBuilder,
    rows: usize,
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
        let n = rows;
        let s = |bytes_per_row: usize| StringBuilder::with_capacity(n, n * bytes_per_row);
        let d = || Dict::with_capacity(n, n * 16);
        let l = |items_per_row: usize, bytes: usize| {
            List::with_capacity(StringBuilder::with_capacity(n * items_per_row, n * bytes), n)
        };
        let names =
            arrow_array::builder::MapFieldNames { entry: "entries".into(), key: "keys".into(), value: "values".into() };
        EventBatchBuilder {
            time: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            stage_time: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            id: s(36),
            stage: d(),
            level: d(),
            verb: d(),
            uri: s(72),
            user: d(),
            uid: s(36),
            groups: l(2, 40),
            user_extra: StringBuilder::new(),
            as_: StringBuilder::new(),
            as_uid: s(36),
            as_groups: l(2, 40),
            as_extra: StringBuilder::new(),
            ip: l(1, 12),
            ua: d(),
            resource: d(),
            subresource: d(),
            ns: d(),
            name: s(24),
            apigroup: d(),
            apiversion: d(),
            object_uid: s(36),
            resource_version: s(8),
            code: Int32Builder::with_capacity(n),
            status: d(),
            reason: d(),
            message: StringBuilder::new(),
            status_metadata: d(),
            status_details: StringBuilder::new(),
            decision: d(),
            authz_reason: StringBuilder::new(),
            annotations: MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new()),
            request: StringBuilder::new(),
            response: StringBuilder::new(),
            user_kind: d(),
            exec_command: StringBuilder::new(),
            privileged: BooleanBuilder::with_capacity(n),
            host_network: BooleanBuilder::with_capacity(n),
            host_pid: BooleanBuilder::with_capacity(n),
            host_ipc: BooleanBuilder::with_capacity(n),
            host_paths: List::new(StringBuilder::new()),
            event_kind: d(),
            event_version: d(),
            unmapped: StringBuilder::new(),
            rows: 0,
        }
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
        list_append(&mut self.as_groups, a.and_then(|u| u.groups.as_deref()));
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
        list_append(&mut self.host_paths, pod.map(|p| p.host_paths.as_slice()));
        self.event_kind.append_option(ev.kind.as_deref());
        self.event_version.append_option(ev.api_version.as_deref());

        let absent_time = ev.request_received.is_none() && d.time.is_some();
        if ev.unmapped.is_none() && !absent_time {
            self.unmapped.append_null();
        } else {
            let mut m = ev.unmapped.clone().unwrap_or_default();
            if absent_time {
                m.insert(ABSENT_KEY.into(), Value::from(vec!["requestReceivedTimestamp"]));
            }
            self.unmapped.append_value(Value::Object(m).to_string());
        }
        self.rows += 1;
    }

    /// The batch of everything appended; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.stage_time.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.verb.finish()),
            Arc::new(self.uri.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.groups.finish()),
            Arc::new(self.user_extra.finish()),
            Arc::new(self.as_.finish()),
            Arc::new(self.as_uid.finish()),
            Arc::new(self.as_groups.finish()),
            Arc::new(self.as_extra.finish()),
            Arc::new(self.ip.finish()),
            Arc::new(self.ua.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.subresource.finish()),
            Arc::new(self.ns.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.apigroup.finish()),
            Arc::new(self.apiversion.finish()),
            Arc::new(self.object_uid.finish()),
            Arc::new(self.resource_version.finish()),
            Arc::new(self.code.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.status_metadata.finish()),
            Arc::new(self.status_details.finish()),
            Arc::new(self.decision.finish()),
            Arc::new(self.authz_reason.finish()),
            Arc::new(self.annotations.finish()),
            Arc::new(self.request.finish()),
            Arc::new(self.response.finish()),
            Arc::new(self.user_kind.finish()),
            Arc::new(self.exec_command.finish()),
            Arc::new(self.privileged.finish()),
            Arc::new(self.host_network.finish()),
            Arc::new(self.host_pid.finish()),
            Arc::new(self.host_ipc.finish()),
            Arc::new(self.host_paths.finish()),
            Arc::new(self.event_kind.finish()),
            Arc::new(self.event_version.finish()),
            Arc::new(self.unmapped.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(audit_schema(), columns).expect("builder columns match audit_schema")
    }
}
