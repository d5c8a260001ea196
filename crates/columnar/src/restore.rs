//! Arrow record batches → events and audit JSON: the way back from Parquet.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMicrosecondType};
use arrow_array::{
    Array, BooleanArray, DictionaryArray, Int32Array, ListArray, MapArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use kaq_schema::{Derived, Event, ObjectRef, PodFlags, Status, UserInfo, UserKind};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::schema::ABSENT_KEY;

/// A string column, plain or dictionary-encoded.
enum Str<'a> {
    Plain(&'a StringArray),
    Dict(&'a DictionaryArray<Int32Type>, &'a StringArray),
    Missing,
}

impl<'a> Str<'a> {
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Str::Plain(a) => a.is_valid(i).then(|| a.value(i)),
            Str::Dict(d, v) => d.is_valid(i).then(|| v.value(d.keys().value(i) as usize)),
            Str::Missing => None,
        }
    }
    fn cow(&self, i: usize) -> Option<Cow<'a, str>> {
        self.get(i).map(Cow::Borrowed)
    }
}

/// Typed views of a batch's columns, found by name so that files from older or other writers
/// (missing columns, plain strings instead of dictionaries) still read.
pub struct Columns<'a> {
    time: Option<&'a TimestampMicrosecondArray>,
    stage_time: Option<&'a TimestampMicrosecondArray>,
    code: Option<&'a Int32Array>,
    strs: Vec<Str<'a>>,
    lists: Vec<Option<&'a ListArray>>,
    bools: Vec<Option<&'a BooleanArray>>,
    annotations: Option<&'a MapArray>,
}

const STRS: &[&str] = &[
    "id",
    "stage",
    "level",
    "verb",
    "uri",
    "user",
    "uid",
    "user_extra",
    "as",
    "as_uid",
    "as_extra",
    "ua",
    "resource",
    "subresource",
    "ns",
    "name",
    "apigroup",
    "apiversion",
    "object_uid",
    "resource_version",
    "status",
    "reason",
    "message",
    "status_metadata",
    "status_details",
    "request",
    "response",
    "user_kind",
    "exec_command",
    "event_kind",
    "event_version",
    "unmapped",
];
const LISTS: &[&str] = &["groups", "as_groups", "ip", "host_paths"];
const BOOLS: &[&str] = &["privileged", "host_network", "host_pid", "host_ipc"];

/// The position of `name` in `list`, found at compile time (a name missing from the list does
/// not compile).
const fn position(list: &[&str], name: &str) -> usize {
    let mut k = 0;
    while k < list.len() {
        let (a, b) = (list[k].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return k;
            }
        }
        k += 1;
    }
    panic!("not a known column name")
}

macro_rules! at {
    ($list:ident, $name:literal) => {{
        const K: usize = position($list, $name);
        K
    }};
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a dyn Array> {
    b.column_by_name(name).map(|a| a.as_ref())
}

fn bad(name: &str, t: &DataType) -> Error {
    Error::NotKaqParquet(format!("column `{name}` has type {t}"))
}

impl<'a> Columns<'a> {
    pub fn new(b: &'a RecordBatch) -> Result<Self, Error> {
        if b.column_by_name("id").is_none() {
            return Err(Error::NotKaqParquet("it has no `id` column".into()));
        }
        Self::projected(b)
    }

    /// Views of a batch read with a projection: only some of the columns, the others are
    /// absent from the events (a query reads the columns its fields need).
    pub fn projected(b: &'a RecordBatch) -> Result<Self, Error> {
        let time = |name: &str| -> Result<Option<&'a TimestampMicrosecondArray>, Error> {
            col(b, name)
                .map(|a| match a.data_type() {
                    DataType::Timestamp(TimeUnit::Microsecond, _) => Ok(a.as_primitive::<TimestampMicrosecondType>()),
                    t => Err(bad(name, t)),
                })
                .transpose()
        };
        let mut strs = Vec::with_capacity(STRS.len());
        for name in STRS {
            strs.push(match col(b, name) {
                None => Str::Missing,
                Some(a) => match a.data_type() {
                    DataType::Utf8 => Str::Plain(a.as_string::<i32>()),
                    DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                        let d = a.as_dictionary::<Int32Type>();
                        Str::Dict(d, d.values().as_string::<i32>())
                    }
                    t => return Err(bad(name, t)),
                },
            });
        }
        let lists = LISTS
            .iter()
            .map(|name| match col(b, name) {
                None => Ok(None),
                Some(a) => match a.data_type() {
                    DataType::List(f) if *f.data_type() == DataType::Utf8 => Ok(Some(a.as_list::<i32>())),
                    t => Err(bad(name, t)),
                },
            })
            .collect::<Result<_, _>>()?;
        let bools = BOOLS
            .iter()
            .map(|name| match col(b, name) {
                None => Ok(None),
                Some(a) => a.as_boolean_opt().map(Some).ok_or_else(|| bad(name, a.data_type())),
            })
            .collect::<Result<_, _>>()?;
        let code = match col(b, "code") {
            None => None,
            Some(a) => Some(a.as_primitive_opt::<Int32Type>().ok_or_else(|| bad("code", a.data_type()))?),
        };
        let annotations = match col(b, "annotations") {
            None => None,
            Some(a) => Some(a.as_map_opt().ok_or_else(|| bad("annotations", a.data_type()))?),
        };
        Ok(Columns { time: time("time")?, stage_time: time("stage_time")?, code, strs, lists, bools, annotations })
    }

    /// Latency is not stored: it is `stage_time − time` when `time` is the received timestamp.
    fn request_received_for_latency(&self, time: Option<i64>, absent: bool) -> Option<i64> {
        if absent { None } else { time }
    }

    fn s(&self, k: usize, i: usize) -> Option<Cow<'a, str>> {
        self.strs[k].cow(i)
    }

    fn list(&self, k: usize, i: usize) -> Option<Vec<Cow<'a, str>>> {
        let l = self.lists[k]?;
        if !l.is_valid(i) {
            return None;
        }
        let (start, end) = (l.value_offsets()[i] as usize, l.value_offsets()[i + 1] as usize);
        let values = l.values().as_string::<i32>();
        Some((start..end).map(|j| Cow::Borrowed(values.value(j))).collect())
    }

    fn flag(&self, k: usize, i: usize) -> Option<bool> {
        let a = self.bools[k]?;
        a.is_valid(i).then(|| a.value(i))
    }

    /// The event at row `i`.
    pub fn event(&self, i: usize) -> Result<Event<'a>, Error> {
        let prim = |a: Option<&TimestampMicrosecondArray>| a.and_then(|a| a.is_valid(i).then(|| a.value(i)));
        let time = prim(self.time);
        let mut unmapped: Option<Map<String, Value>> = match self.s(at!(STRS, "unmapped"), i) {
            None => None,
            Some(t) => match serde_json::from_str(&t) {
                Ok(Value::Object(m)) => Some(m),
                _ => return Err(Error::NotKaqParquet(format!("row {i}: `unmapped` is not a JSON object"))),
            },
        };
        let mut absent_time = false;
        if let Some(m) = &mut unmapped
            && let Some(a) = m.remove(ABSENT_KEY)
        {
            absent_time = a.as_array().is_some_and(|a| a.iter().any(|x| x == "requestReceivedTimestamp"));
            if m.is_empty() {
                unmapped = None;
            }
        }
        let user = |name: usize, uid: usize, groups: usize, extra: usize| {
            let u = UserInfo {
                username: self.s(name, i),
                uid: self.s(uid, i),
                groups: self.list(groups, i),
                extra: self.s(extra, i),
            };
            (u != UserInfo::default()).then_some(u)
        };
        let object_ref = ObjectRef {
            resource: self.s(at!(STRS, "resource"), i),
            namespace: self.s(at!(STRS, "ns"), i),
            name: self.s(at!(STRS, "name"), i),
            uid: self.s(at!(STRS, "object_uid"), i),
            api_group: self.s(at!(STRS, "apigroup"), i),
            api_version: self.s(at!(STRS, "apiversion"), i),
            resource_version: self.s(at!(STRS, "resource_version"), i),
            subresource: self.s(at!(STRS, "subresource"), i),
        };
        let status = Status {
            metadata: self.s(at!(STRS, "status_metadata"), i),
            status: self.s(at!(STRS, "status"), i),
            message: self.s(at!(STRS, "message"), i),
            reason: self.s(at!(STRS, "reason"), i),
            details: self.s(at!(STRS, "status_details"), i),
            code: self.code.and_then(|c| c.is_valid(i).then(|| c.value(i))),
        };
        let annotations = self.annotations.and_then(|m| {
            if !m.is_valid(i) {
                return None;
            }
            let (start, end) = (m.value_offsets()[i] as usize, m.value_offsets()[i + 1] as usize);
            let keys = m.keys().as_string::<i32>();
            let values = m.values().as_string::<i32>();
            Some((start..end).map(|j| (Cow::Borrowed(keys.value(j)), Cow::Borrowed(values.value(j)))).collect())
        });
        let pod = self.flag(at!(BOOLS, "privileged"), i).map(|privileged| PodFlags {
            privileged,
            host_network: self.flag(at!(BOOLS, "host_network"), i).unwrap_or(false),
            host_pid: self.flag(at!(BOOLS, "host_pid"), i).unwrap_or(false),
            host_ipc: self.flag(at!(BOOLS, "host_ipc"), i).unwrap_or(false),
            host_paths: self
                .list(at!(LISTS, "host_paths"), i)
                .unwrap_or_default()
                .into_iter()
                .map(Cow::into_owned)
                .collect(),
        });
        let derived = Derived {
            time,
            latency_us: match (self.request_received_for_latency(time, absent_time), prim(self.stage_time)) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            user_kind: self
                .s(at!(STRS, "user_kind"), i)
                .and_then(|k| UserKind::ALL.into_iter().find(|u| u.as_str() == k)),
            exec_command: self.s(at!(STRS, "exec_command"), i).map(Cow::into_owned),
            pod,
        };
        Ok(Event {
            kind: self.s(at!(STRS, "event_kind"), i),
            api_version: self.s(at!(STRS, "event_version"), i),
            level: self.s(at!(STRS, "level"), i),
            audit_id: self.s(at!(STRS, "id"), i),
            stage: self.s(at!(STRS, "stage"), i),
            request_uri: self.s(at!(STRS, "uri"), i),
            verb: self.s(at!(STRS, "verb"), i),
            user: user(at!(STRS, "user"), at!(STRS, "uid"), at!(LISTS, "groups"), at!(STRS, "user_extra")),
            impersonated_user: user(
                at!(STRS, "as"),
                at!(STRS, "as_uid"),
                at!(LISTS, "as_groups"),
                at!(STRS, "as_extra"),
            ),
            source_ips: self.list(at!(LISTS, "ip"), i),
            user_agent: self.s(at!(STRS, "ua"), i),
            object_ref: (object_ref != ObjectRef::default()).then_some(object_ref),
            response_status: (status != Status::default()).then_some(status),
            request_object: self.s(at!(STRS, "request"), i),
            response_object: self.s(at!(STRS, "response"), i),
            request_received: if absent_time { None } else { time },
            stage_timestamp: prim(self.stage_time),
            annotations,
            unmapped,
            derived,
            rewritten: false,
        })
    }
}

/// Every row of a batch as audit JSON, in order.
pub fn batch_to_json(batch: &RecordBatch) -> Result<Vec<Value>, Error> {
    let cols = Columns::new(batch)?;
    (0..batch.num_rows()).map(|i| Ok(cols.event(i)?.to_json())).collect()
}
