//! The reader's answers do not depend on where chunks are cut.

use std::convert::Infallible;
use std::io::Write;

use kaq_input::{Counts, EventHandler, ReadOptions, expand, read};
use kaq_schema::Event;
use proptest::prelude::*;

struct Ids;
impl EventHandler for Ids {
    type State = Vec<String>;
    type Output = Vec<String>;
    fn start(&self) -> Vec<String> {
        Vec::new()
    }
    fn event(&self, s: &mut Vec<String>, e: &Event<'_>) {
        s.push(e.audit_id.as_deref().unwrap_or_default().to_string());
    }
    fn finish(&self, s: Vec<String>) -> Vec<String> {
        s
    }
}

fn read_with(path: &std::path::Path, chunk_bytes: usize, threads: usize) -> (Vec<String>, Vec<(u64, String)>, Counts) {
    let sources = expand(&[path]).unwrap().sources;
    let opts = ReadOptions { chunk_bytes, threads, ..ReadOptions::default() };
    let (mut ids, mut rejects) = (Vec::new(), Vec::new());
    let report = read(&sources, &opts, &Ids, |c| {
        ids.extend(c.output.unwrap_or_default());
        rejects.extend(c.rejects.into_iter().map(|r| (r.line, r.reason)));
        Ok::<(), Infallible>(())
    })
    .unwrap();
    (ids, rejects, report.counts)
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}".prop_map(|id| format!(r#"{{"kind":"Event","auditID":"{id}","verb":"get"}}"#)),
        "[a-z0-9]{1,8}"
            .prop_map(|id| format!(r#"{{"kind":"EventList","items":[{{"auditID":"{id}"}},{{"auditID":"{id}x"}}]}}"#)),
        Just(String::new()),
        Just("   ".to_string()),
        "[ -~]{0,30}",
        "[a-z0-9]{1,8}".prop_map(|id| format!(r#"{{"kind":"Event","auditID":"{id}","verb":"#)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn chunking_and_threads_change_nothing(lines in proptest::collection::vec(line(), 0..40), chunk in 1usize..200, crlf: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let sep = if crlf { "\r\n" } else { "\n" };
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(lines.join(sep).as_bytes()).unwrap();
        drop(f);
        let whole = read_with(&path, 1 << 20, 1);
        let cut = read_with(&path, chunk, 3);
        prop_assert_eq!(&whole, &cut);
        // Every line is an event line, a reject or empty.
        let c = whole.2;
        prop_assert_eq!(c.lines, lines.len() as u64 - u64::from(lines.last().is_some_and(|l| l.is_empty()) ));
    }
}
