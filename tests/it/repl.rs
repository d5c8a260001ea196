//! `kaq repl` in a real pseudo-terminal (rexpect): Tab completes a value from the store's index,
//! the rows print; a bad query shows its caret error and the REPL goes on; Ctrl-C cancels a long
//! query and returns to the prompt; history persists across runs. And without a terminal: queries
//! piped on stdin are answered in turn.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{kaq, repo, run, stderr, thousands, tmp};

/// Long enough for a debug build on a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(90);

fn sample() -> PathBuf {
    repo().join("examples/data/sample-audit.log.gz")
}

/// A store holding the shipped sample.
fn sample_store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    let o = run(&["ingest", "--store", store.to_str().unwrap(), "--quiet", sample().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    store
}

fn json_rows(args: &[&str]) -> Vec<Value> {
    let o = run(args);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A terminal session: everything the program wrote, its escape sequences removed (answering the
/// cursor-position queries the line editor sends, as a terminal would), read up to a needle.
struct Term {
    session: rexpect::session::PtySession,
    /// The text so far, escape sequences removed.
    text: String,
    /// How far `expect` has read.
    pos: usize,
    /// Escape-sequence state: `None` outside one, else the bytes since ESC.
    esc: Option<Vec<u8>>,
    pending: Vec<u8>,
}

impl Term {
    /// Starts `kaq ARGS` in a 120×40 terminal with `env`.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Term {
        let mut cmd = Command::new("sh");
        // `stty` sizes the terminal (rexpect leaves it 0×0) before kaq starts in it.
        cmd.arg("-c").arg("stty cols 120 rows 40; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_kaq")).args(args);
        cmd.env("RUST_BACKTRACE", "0").env("TERM", "xterm-256color").env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let session = rexpect::session::spawn_command(cmd, Some(TIMEOUT.as_millis() as u64)).expect("a pty");
        Term { session, text: String::new(), pos: 0, esc: None, pending: Vec::new() }
    }

    /// Reads what is there; answers `ESC [ 6 n` with a position.
    fn pump(&mut self) -> bool {
        let mut any = false;
        while let Some(c) = self.session.try_read() {
            any = true;
            let b = c as u32 as u8; // rexpect hands out bytes as chars
            match &mut self.esc {
                None if b == 0x1b => self.esc = Some(Vec::new()),
                None => {
                    self.pending.push(b);
                    if let Ok(s) = std::str::from_utf8(&self.pending) {
                        self.text.push_str(s);
                        self.pending.clear();
                    } else if self.pending.len() > 4 {
                        self.pending.clear();
                    }
                }
                Some(seq) => {
                    seq.push(b);
                    let done = match seq[0] {
                        b'[' => seq.len() > 1 && (0x40..=0x7e).contains(&b),
                        b']' => b == 0x07 || seq.ends_with(b"\x1b\\"),
                        _ => seq.len() >= 2 || !(0x20..=0x2f).contains(&seq[0]),
                    };
                    if done {
                        if seq == b"[6n" {
                            self.send("\x1b[1;1R");
                        }
                        self.esc = None;
                    }
                }
            }
        }
        any
    }

    fn send(&mut self, s: &str) {
        self.session.send(s).unwrap();
        self.session.flush().unwrap();
    }

    /// Waits until `needle` appears after what was read before; returns the text up to it.
    fn expect(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(i) = self.text[self.pos..].find(needle) {
                let seen = self.text[self.pos..self.pos + i].to_string();
                self.pos += i + needle.len();
                return seen;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "timed out waiting for {needle:?}; the terminal showed:\n{}",
                &self.text[self.pos.saturating_sub(2000)..]
            );
            if !self.pump() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits for the prompt (keys sent before the line editor reads would meet the terminal's
    /// line discipline: Ctrl-D there is end-of-file, not a key), sends Ctrl-D and waits for the
    /// process to end; returns its status.
    fn quit(mut self) -> rexpect::process::WaitStatus {
        self.expect("kaq>");
        self.send("\x04");
        let start = Instant::now();
        loop {
            self.pump();
            if let Some(s) = self.session.process().status()
                && !matches!(s, rexpect::process::WaitStatus::StillAlive)
            {
                return s;
            }
            assert!(start.elapsed() < TIMEOUT, "kaq did not leave on Ctrl-D:\n{}", self.text);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn exited_ok(s: rexpect::process::WaitStatus) {
    assert!(matches!(s, rexpect::process::WaitStatus::Exited(_, 0)), "{s:?}");
}

#[test]
fn repl_completes_from_the_store_and_survives_errors() {
    let dir = tmp();
    let store = sample_store(dir.path());
    let s = store.to_str().unwrap();
    let history = dir.path().join("history");
    let want =
        json_rows(&["query", "ns:prod-payments resource:secrets | dedup user, name | table user, name", "--store", s]);
    assert!(!want.is_empty());
    let total = json_rows(&["query", "| count", "--store", s])[0]["count"].as_u64().unwrap();

    let mut t = Term::start(&["repl", "--store", s], &[("KAQ_HISTORY", history.to_str().unwrap())]);
    t.expect("kaq>");
    // Tab completes the namespace from the index: `prod-pa` can only be prod-payments.
    t.send("ns:prod-pa\t");
    t.expect("ns:prod-payments");
    t.send(" resource:secrets | dedup user, name | table user, name\r");
    let table = t.expect(&format!("({} row", want.len()));
    for row in &want {
        for cell in [&row["user"], &row["name"]].into_iter().filter_map(Value::as_str) {
            assert!(table.contains(cell), "{cell} missing from\n{table}");
        }
    }
    // A bad query: the caret error with its code, then the REPL answers the next one.
    t.expect("kaq>");
    t.send("verb:get | cout by user\r");
    t.expect("E010");
    t.expect("did you mean `count`?");
    t.expect("kaq>");
    t.send("| count\r");
    t.expect(&thousands(total));
    t.expect("(1 row)");
    // A meta-command, and a field completed from the catalogue.
    t.expect("kaq>");
    t.send(".format\r");
    t.expect("format: table");
    t.expect("kaq>");
    t.send("subreso\t");
    t.expect("subresource:");
    t.send("exec | count by user\r");
    t.expect("(1 row)");
    exited_ok(t.quit());
}

#[test]
fn repl_ctrl_c_cancels_a_long_query() {
    let dir = tmp();
    // A long query for real: the sample's gzip members repeated (about 250 MB of JSON lines,
    // every one decoded: `latency` cannot be prefiltered).
    let big = dir.path().join("big.log.gz");
    let member = std::fs::read(sample()).unwrap();
    let mut f = std::fs::File::create(&big).unwrap();
    for _ in 0..40 {
        f.write_all(&member).unwrap();
    }
    drop(f);
    let history = dir.path().join("history");
    let mut t = Term::start(&["repl", big.to_str().unwrap()], &[("KAQ_HISTORY", history.to_str().unwrap())]);
    t.expect("kaq>");
    t.send("latency>1h | count\r");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    t.send("\x03");
    let before = t.expect("cancelled after");
    assert!(!before.contains("(1 row)"), "the query finished before Ctrl-C: make the input longer\n{before}");
    t.expect("kaq>");
    assert!(started.elapsed() < Duration::from_secs(30), "cancelling took {:?}", started.elapsed());
    // Still alive: it answers a command.
    t.send(".timing on\r");
    t.expect("kaq>");
    t.send(".format\r");
    t.expect("format: table");
    exited_ok(t.quit());
}

#[test]
fn repl_history_persists_across_runs() {
    let dir = tmp();
    let store = sample_store(dir.path());
    let s = store.to_str().unwrap();
    let history = dir.path().join("state/kaq-history");
    let env = [("KAQ_HISTORY", history.to_str().unwrap())];
    let creates = json_rows(&["query", "verb:create | count", "--store", s])[0]["count"].as_u64().unwrap();

    let mut t = Term::start(&["repl", "--store", s], &env);
    t.expect("kaq>");
    t.send("verb:create | count\r");
    t.expect(&thousands(creates));
    exited_ok(t.quit());
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("verb:create | count"), "{text}");
    // Private, like a shell's history: the file 0600, the directory kaq made 0700.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&history), mode(history.parent().unwrap())), (0o600, 0o700));

    // A new run: Up brings the query back from the file.
    let mut t = Term::start(&["repl", "--store", s], &env);
    t.expect("kaq>");
    t.send("\x1b[A");
    t.expect("verb:create | count");
    t.send("\r");
    t.expect(&thousands(creates));
    t.expect("(1 row)");
    exited_ok(t.quit());
}

#[test]
fn repl_answers_queries_piped_on_stdin() {
    let dir = tmp();
    let store = sample_store(dir.path());
    let s = store.to_str().unwrap();
    let history = dir.path().join("h/history");
    let config = dir.path().join("config");
    let deletes = json_rows(&["query", "verb:delete ns:prod* | count by user", "--store", s]);
    let top = json_rows(&["query", "| top 2 verb", "--store", s]);
    let input = "verb:delete ns:prod* | count by user\n\
                 usr:alice\n\
                 | top 2 verb |\n  table verb, count\n\
                 .save dels verb:delete ns:prod*\n\
                 .format csv\n\
                 @dels | count by user\n\
                 .explain code:401 | count by ip\n\
                 .fields ns\n";
    let mut child = kaq()
        .args(["repl", "--store", s])
        .env("KAQ_HISTORY", &history)
        .env("KAQ_CONFIG_DIR", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "a query failed: status 2\n{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("E017") && err.contains("did you mean `user`?"), "{err}");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = out.lines();
    for row in &deletes {
        assert_eq!(serde_json::from_str::<Value>(lines.next().unwrap()).unwrap(), *row);
    }
    // The multi-line query (a line ending in `|` goes on).
    for row in &top {
        let got: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!((&got["verb"], &got["count"]), (&row["verb"], &row["count"]));
    }
    assert_eq!(lines.next(), Some("saved: @dels"));
    assert_eq!(lines.next(), Some("user,count"));
    let csv: Vec<&str> = lines.by_ref().take(deletes.len()).collect();
    assert_eq!(csv.len(), deletes.len(), "{out}");
    for (line, row) in csv.iter().zip(&deletes) {
        assert_eq!(*line, format!("{},{}", row["user"].as_str().unwrap(), row["count"]));
    }
    let rest: Vec<&str> = lines.collect();
    let explain = rest.join("\n");
    assert!(explain.contains("query:     code:401 | count by ip"), "{explain}");
    assert!(explain.contains("store:     segments: 1 of 1 read"), "{explain}");
    assert!(explain.contains("store:     step 1: "), "{explain}");
    // `.fields ns`: the namespaces seen most, with their rows.
    assert!(rest.iter().any(|l| l.starts_with("ns ") && l.contains("kube-system (")), "{explain}");
    // Saved searches are kept in the configuration directory.
    let saved = std::fs::read_to_string(config.join("rules.toml")).unwrap();
    assert!(saved.contains("[queries]\ndels = \"verb:delete ns:prod*\"\n"), "{saved}");
}

/// The README's first command: `kaq demo` lands in the REPL on the demo store, and "who deleted
/// things in prod?" is answered with Tab completing the words.
#[test]
fn demo_answers_who_deleted_things_in_prod_with_completion() {
    let dir = tmp();
    let history = dir.path().join("history");
    let tmpdir = dir.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let env = [("KAQ_HISTORY", history.to_str().unwrap()), ("TMPDIR", tmpdir.to_str().unwrap())];
    let mut t = Term::start(&["demo", "--events", "3000"], &env);
    t.expect("Who deleted things in prod?");
    t.expect("kaq>");
    let store = std::fs::read_dir(&tmpdir).unwrap().count();
    assert_eq!(store, 1, "the demo store is in TMPDIR while the REPL runs");
    t.send("ver\t");
    t.expect("verb:");
    t.send("delet\t");
    t.expect("verb:delete");
    t.send(" ns:prod-pay\t");
    t.expect("ns:prod-payments");
    t.send("user_k\t");
    t.expect("user_kind:");
    t.send("hum\t");
    t.expect("user_kind:human");
    t.send("| tab\t");
    t.expect("| table");
    t.send("time, user, resource, ns, name\r");
    let table = t.expect("(2 rows)");
    assert!(table.contains("carol@example.com") && table.contains("payments-db-credentials"), "{table}");
    exited_ok(t.quit());
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0, "the demo store is removed on exit");
}

#[test]
fn demo_answers_its_suggested_questions_on_stdin() {
    let dir = tmp();
    let keep = dir.path().join("demo-store");
    let mut child = kaq()
        .args(["demo", "--events", "2000", "--seed", "7", "--keep", keep.to_str().unwrap()])
        .env("KAQ_HISTORY", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = kaq_demo::suggested().iter().map(|(_, q)| format!("{q}\n")).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The same answers as `kaq query` over the kept store.
    let mut want = String::new();
    for (_, q) in kaq_demo::suggested() {
        let r = run(&["query", q, "--store", keep.to_str().unwrap(), "--format", "json"]);
        want.push_str(&String::from_utf8_lossy(&r.stdout));
    }
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
    assert!(want.contains("203.0.113.45"), "{want}");
    let o = run(&["demo", "--keep", keep.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
}
