//! No value of a generated Secret is visible in what kaq shows of an event without
//! `--keep-secrets`: the event as a query prints it (its text as read unless decoding rewrote
//! it), and the event restored from the Parquet file `convert` writes, both from the log and
//! from a Parquet file written with `--keep-secrets` then read again.
//!
//! The input bytes drive a generator: Secrets with random values, `kind`/`data` keys and values
//! spelled in random case or with `\u` escapes, duplicated kinds, siblings nested past the depth
//! limit, wrapped in Lists, SecretLists, Tables, ConfigMaps holding the Secret as JSON text, the
//! last-applied annotation, merge and JSON patches (on the secrets resource, named by objectRef or
//! by the request path alone), as a request or response body or under an unknown key.
#![no_main]

use arrow_array::RecordBatch;
use kaq_columnar::{Columns, EventBatchBuilder};
use kaq_schema::{DecodeOptions, decode_event};
use libfuzzer_sys::fuzz_target;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Choices read from the fuzzer's bytes (zeros once they run out).
struct G<'a>(&'a [u8], usize);

impl G<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.0.get(self.1).copied().unwrap_or(0);
        self.1 += 1;
        b
    }
    fn pick(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }
    fn chance(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

/// `word` as a JSON string's content: each letter kept, its case flipped, or `\u`-escaped.
fn spell(g: &mut G<'_>, word: &str, flip_case: bool) -> String {
    let mut out = String::new();
    for c in word.chars() {
        match g.pick(6) {
            0 => out.push_str(&format!("\\u{:04x}", c as u32)),
            1 => out.push_str(&format!("\\u{:04X}", c as u32)),
            2 if flip_case && c.is_ascii_lowercase() => out.push(c.to_ascii_uppercase()),
            2 if flip_case => out.push(c.to_ascii_lowercase()),
            _ => out.push(c),
        }
    }
    out
}

fn nest(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

/// A Secret object's JSON text holding `values` (kind left out when `kindless`).
fn secret(g: &mut G<'_>, values: &[String], kindless: bool, level: u32) -> String {
    let mut fields = Vec::new();
    if !kindless {
        let kind = format!(r#""{}":"{}""#, spell(g, "kind", true), spell(g, "Secret", true));
        fields.push(kind);
        if g.pick(4) == 0 {
            fields.push(r#""kind":"ConfigMap""#.to_string()); // duplicated: serde keeps this one
        }
    }
    let key = if g.chance() { "data" } else { "stringData" };
    let entries: Vec<String> =
        values.iter().enumerate().map(|(i, v)| format!(r#""k{i}":"{}""#, spell(g, v, false))).collect();
    fields.push(format!(r#""{}":{{{}}}"#, spell(g, key, true), entries.join(",")));
    if g.pick(4) == 0 {
        fields.push(format!(r#""type":"Opaque","x":{}"#, nest(90 + g.pick(60))));
    }
    if level < 2 && g.pick(4) == 0 {
        // The last-applied annotation repeating the Secret.
        let inner = secret(g, values, false, level + 1);
        fields.push(format!(
            r#""metadata":{{"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":{}}}}}"#,
            serde_json::to_string(&inner).unwrap()
        ));
    }
    for i in (1..fields.len()).rev() {
        let j = g.pick(i + 1);
        fields.swap(i, j);
    }
    format!("{{{}}}", fields.join(","))
}

/// A body holding the values, and whether it needs the secrets resource to be recognised.
fn body(g: &mut G<'_>, values: &[String]) -> (String, bool) {
    match g.pick(10) {
        0 => (format!(r#"{{"kind":"List","items":[{{"kind":"ConfigMap"}},{}]}}"#, secret(g, values, false, 0)), false),
        1 => {
            let list = spell(g, "SecretList", true);
            (format!(r#"{{"kind":"{list}","items":[{}]}}"#, secret(g, values, true, 0)), false)
        }
        2 => {
            let text = serde_json::to_string(&secret(g, values, false, 0)).unwrap();
            (format!(r#"{{"kind":"ConfigMap","data":{{"manifest.json":{text}}}}}"#), false)
        }
        3 => (
            format!(r#"{{"kind":"Table","rows":[{{"cells":["a"],"object":{}}}]}}"#, secret(g, values, false, 0)),
            false,
        ),
        4 => (format!(r#"{{"spec":{{"template":{}}}}}"#, secret(g, values, false, 0)), false),
        5 => (secret(g, values, true, 0), true), // a merge or strategic merge patch
        6 => {
            // A JSON patch: one op per value, or a whole map, or the whole document.
            let ops = match g.pick(3) {
                0 => values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        format!(
                            r#"{{"op":"add","path":"/{}/k{i}","value":"{}"}}"#,
                            spell(g, "data", true),
                            spell(g, v, false)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                1 => {
                    let map: Vec<String> = values.iter().enumerate().map(|(i, v)| format!(r#""k{i}":"{v}""#)).collect();
                    format!(r#"{{"op":"replace","path":"/stringData","value":{{{}}}}}"#, map.join(","))
                }
                _ => format!(r#"{{"op":"replace","path":"","value":{}}}"#, secret(g, values, true, 0)),
            };
            (format!("[{ops}]"), true)
        }
        7 => (
            format!(
                r#"{{"kind":"SecretList","items":[{}],"x":{}}}"#,
                secret(g, values, true, 0),
                nest(120 + g.pick(20))
            ),
            false,
        ),
        _ => (secret(g, values, false, 0), false),
    }
}

/// One audit event holding the body.
fn event(g: &mut G<'_>, body: &str, needs_secrets: bool) -> String {
    let (object_ref, uri) = match (needs_secrets, g.pick(3)) {
        (true, 0) => ("", "/api/v1/namespaces/a/secrets/b"), // no objectRef: the path says it
        (true, _) => {
            (r#""objectRef":{"resource":"secrets","namespace":"a","name":"b"},"#, "/api/v1/namespaces/a/secrets/b")
        }
        (false, 0) => (
            r#""objectRef":{"resource":"configmaps","namespace":"a","name":"b"},"#,
            "/api/v1/namespaces/a/configmaps/b",
        ),
        (false, _) => {
            (r#""objectRef":{"resource":"secrets","namespace":"a","name":"b"},"#, "/api/v1/namespaces/a/secrets/b")
        }
    };
    // Under an unknown key, a value nested too deep rejects the event (a body is replaced).
    let unknown_ok = !needs_secrets && !body.contains("[[[[");
    let key = match (unknown_ok, g.pick(3)) {
        (_, 0) => "requestObject",
        (true, 1) => "someVendorField", // not a body: decoding keeps it as an unknown key
        _ => "responseObject",
    };
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a1","stage":"ResponseComplete","verb":"patch","requestURI":"{uri}",{object_ref}"{key}":{body},"requestReceivedTimestamp":"2026-11-20T05:00:00.000000Z","stageTimestamp":"2026-11-20T05:00:00.100000Z"}}"#
    )
}

/// Every string of a JSON text, keys included, whatever their escapes, duplicated keys kept, and
/// the strings inside strings that are JSON text themselves.
fn strings(text: &str, out: &mut Vec<String>) {
    struct All<'o>(&'o mut Vec<String>);
    impl<'de> serde::de::DeserializeSeed<'de> for All<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for All<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.0.push(v.to_string());
            if v.trim_start().starts_with(['{', '[']) {
                strings(v, self.0);
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
            while s.next_element_seed(All(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            while m.next_key_seed(All(&mut *self.0))?.is_some() {
                m.next_value_seed(All(&mut *self.0))?;
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    // Text kaq shows must parse (that too is promised); strings that merely look like JSON need not.
    let _ = serde::de::DeserializeSeed::deserialize(All(out), &mut de);
}

fn assert_hidden(what: &str, shown: &str, values: &[String], line: &str) {
    let mut all = vec![shown.to_string()];
    strings(shown, &mut all);
    for v in values {
        if let Some(s) = all.iter().find(|s| s.contains(v.as_str())) {
            panic!("{v} visible in {what}: {s}\nline: {line}");
        }
    }
}

/// The batch through a Parquet file in memory, as `convert` writes and readers read it.
fn parquet_round_trip(batch: RecordBatch) -> RecordBatch {
    let mut buf = Vec::new();
    // Plain pages: encodings do not change the strings stored, and dictionaries cost most.
    let props = parquet::file::properties::WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let mut r = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf)).unwrap().build().unwrap();
    r.next().unwrap().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut g = G(data, 0);
    let n = 1 + g.pick(3);
    // Values no other text of the event can contain (an upper-case Z is in no marker or key).
    let values: Vec<String> = (0..n)
        .map(|_| {
            let len = 8 + g.pick(8);
            "Zq".to_string() + &(0..len).map(|_| (b'a' + g.pick(26) as u8) as char).collect::<String>()
        })
        .collect();
    let (body, needs_secrets) = body(&mut g, &values);
    let line = event(&mut g, &body, needs_secrets);

    // What a query prints: the line as read, unless decoding rewrote the event.
    let ev = decode_event(&line, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{e}: {line}"));
    let printed = if ev.rewritten { ev.to_json().to_string() } else { line.clone() };
    serde_json::from_str::<serde_json::Value>(&printed).unwrap_or_else(|e| panic!("printed event: {e}: {printed}"));
    assert_hidden("the printed event", &printed, &values, &line);

    // convert's Parquet, restored.
    let mut b = EventBatchBuilder::new();
    b.append(&ev);
    let batch = parquet_round_trip(b.finish());
    let restored = Columns::new(&batch).unwrap().event(0).unwrap().to_json().to_string();
    assert_hidden("convert's Parquet", &restored, &values, &line);

    // A Parquet file written with --keep-secrets, read without it (query, REPL, store, convert).
    let kept = decode_event(&line, &DecodeOptions::keeping_secrets(true)).unwrap();
    let mut b = EventBatchBuilder::new();
    b.append(&kept);
    let batch = parquet_round_trip(b.finish());
    let mut ev = Columns::new(&batch).unwrap().event(0).unwrap();
    kaq_schema::redact::sanitize(&mut ev, false);
    assert_hidden("a kept Parquet read again", &ev.to_json().to_string(), &values, &line);
});
