//! Helpers shared by the integration tests: running kaq, finding ../shared, reference readers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Says why a test skips. Written to stderr directly, not with `eprintln!`, so that the test
/// harness does not capture it: a skip shows in every run.
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

pub fn kaq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaq"));
    c.env("RUST_BACKTRACE", "0");
    c
}

/// `kaq convert INPUT -o OUT EXTRA…`; returns the output (any exit status).
pub fn convert(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["convert", input.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

/// Runs kaq with `args`; returns the output (any exit status).
pub fn run(args: &[&str]) -> Output {
    kaq().args(args).output().expect("kaq runs")
}

/// Runs `cmd` (made by [`kaq`], with its arguments and environment) with `input` on stdin; returns
/// the output (any exit status).
pub fn with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kaq runs");
    child.stdin.take().expect("piped").write_all(input).expect("kaq reads its input");
    child.wait_with_output().expect("kaq runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, when it is there (CI has it); otherwise prints why the caller skips.
pub fn shared(what: &str) -> Option<PathBuf> {
    let p = repo().join("../shared");
    if p.join(what).exists() {
        Some(p)
    } else {
        skip(&format!("{} not found (the test needs ../shared/{what})", p.join(what).display()));
        None
    }
}

/// Runs ../shared/tools/gen-audit with `args` (plus `--out OUT`); returns its stderr summary, or
/// `None` (printing why) when the generator is not available.
pub fn gen_audit(args: &[&str], out: &Path) -> Option<String> {
    let shared = shared("tools/gen-audit")?;
    let o = Command::new("python3")
        .arg(shared.join("tools/gen-audit"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "gen-audit failed: {}", String::from_utf8_lossy(&o.stderr));
    Some(String::from_utf8_lossy(&o.stderr).into_owned())
}

/// gen-audit's "N lines (M corrupted)" summary.
pub fn gen_counts(summary: &str) -> (u64, u64) {
    let num = |after: &str, before: &str| -> u64 {
        let s = summary.split(after).nth(1).unwrap_or("");
        s.split(before).next().unwrap_or("").trim().parse().unwrap_or_else(|_| panic!("bad summary {summary:?}"))
    };
    (num("gen-audit:", "lines"), num("(", "corrupted"))
}

/// The reference reading of a file: every JSON document in it (JSON lines or whole documents,
/// BOM skipped), arrays and EventLists flattened, kept when it is an object whose `kind` is
/// absent or "Event" and whose `auditID` is a string. Plain serde_json, nothing of kaq's.
pub fn reference_events(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut docs = Vec::new();
    let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    for v in stream {
        match v {
            Ok(v) => docs.push(v),
            Err(_) => {
                // Not a stream of documents: go line by line, skipping lines that do not parse.
                docs = bytes.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice::<Value>(l).ok()).collect();
                break;
            }
        }
    }
    let mut out = Vec::new();
    for d in docs {
        let items = match &d {
            Value::Array(a) => a.clone(),
            Value::Object(m) if m.get("kind") == Some(&Value::from("EventList")) => {
                m.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
            }
            _ => vec![d],
        };
        for it in items {
            let kind_ok =
                matches!(it.get("kind"), None | Some(Value::String(_))) && it.get("kind").is_none_or(|k| k == "Event");
            if it.is_object() && kind_ok && it.get("auditID").is_some_and(Value::is_string) {
                out.push(it);
            }
        }
    }
    out
}

/// JSON lines, one value per non-blank line.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every row of a kaq Parquet file (or every file under a directory) as audit JSON.
pub fn parquet_events(path: &Path) -> Vec<Value> {
    let mut files = Vec::new();
    collect_parquet(path, &mut files);
    let mut out = Vec::new();
    for f in files {
        for b in kaq_columnar::read::open(&f, 4096).unwrap() {
            out.extend(kaq_columnar::batch_to_json(&b.unwrap()).unwrap());
        }
    }
    out
}

pub fn collect_parquet(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            collect_parquet(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "parquet") {
        out.push(path.to_path_buf());
    }
}

/// Whether `back` equals `orig` but for values kaq redacted (a redaction marker where the
/// original had a value; last-applied-configuration annotations compared as the JSON they hold).
pub fn equal_but_redacted(orig: &Value, back: &Value) -> Result<(), String> {
    equal_at(orig, back, "")
}

fn equal_at(orig: &Value, back: &Value, path: &str) -> Result<(), String> {
    if orig == back {
        return Ok(());
    }
    match (orig, back) {
        (_, Value::String(s)) if s.starts_with(kaq_schema::redact::MARKER_PREFIX) => Ok(()),
        (Value::String(a), Value::String(b)) => {
            match (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)) {
                (Ok(x @ Value::Object(_)), Ok(y @ Value::Object(_))) => equal_at(&x, &y, path),
                _ => Err(format!("{path}: {a:?} became {b:?}")),
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<_> = a.keys().collect();
            let mut kb: Vec<_> = b.keys().collect();
            ka.sort();
            kb.sort();
            if ka != kb {
                return Err(format!("{path}: keys {ka:?} became {kb:?}"));
            }
            for (k, v) in a {
                equal_at(v, &b[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                equal_at(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Err(format!("{path}: {orig} became {back}")),
    }
}

/// Matches each converted event to an original it equals (redactions aside); panics naming the
/// first event that has no match.
pub fn assert_same_events(originals: &[Value], back: &[Value]) {
    assert_eq!(originals.len(), back.len(), "event counts differ");
    let mut used = vec![false; originals.len()];
    // Index originals by auditID+stage to keep this linear on big logs.
    let key = |v: &Value| format!("{}|{}", v["auditID"], v.get("stage").cloned().unwrap_or(Value::Null));
    let mut by_key: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
    for (i, o) in originals.iter().enumerate() {
        by_key.entry(key(o)).or_default().push(i);
    }
    for b in back {
        let candidates = by_key.get(&key(b)).unwrap_or_else(|| panic!("no original with the key of {b}"));
        let mut last_err = String::new();
        let found = candidates.iter().find(|&&i| {
            !used[i]
                && match equal_but_redacted(&originals[i], b) {
                    Ok(()) => true,
                    Err(e) => {
                        last_err = e;
                        false
                    }
                }
        });
        match found {
            Some(&i) => used[i] = true,
            None => panic!("converted event matches no original: {last_err}\n{b}"),
        }
    }
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `1234567` → `1,234,567`, as kaq prints counts.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
