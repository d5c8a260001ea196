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
    read_limited(path, chunk_bytes, threads, ReadOptions::default().max_record_size)
}

fn read_limited(
    path: &std::path::Path,
    chunk_bytes: usize,
    threads: usize,
    max_record_size: usize,
) -> (Vec<String>, Vec<(u64, String)>, Counts) {
    let sources = expand(&[path]).unwrap().sources;
    let opts = ReadOptions { chunk_bytes, threads, max_record_size, ..ReadOptions::default() };
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

fn read_sources(sources: &[kaq_input::Source], chunk_bytes: usize) -> (Vec<String>, kaq_input::Report) {
    let opts = ReadOptions { chunk_bytes, threads: 2, ..ReadOptions::default() };
    let mut ids = Vec::new();
    let report = read(sources, &opts, &Ids, |c| {
        ids.extend(c.output.unwrap_or_default());
        Ok::<(), Infallible>(())
    })
    .unwrap();
    (ids, report)
}

/// A part of a file that ends before its end (the file shrank while read: copy-and-truncate) is
/// read to its last complete line; the half line after it is not read (its copy has it whole).
#[test]
fn a_part_that_shrank_is_read_to_its_last_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let text =
        "{\"kind\":\"Event\",\"auditID\":\"a\"}\n{\"kind\":\"Event\",\"auditID\":\"b\"}\n{\"kind\":\"Event\",\"audi";
    std::fs::write(&path, text).unwrap();
    for chunk in [8, 40, 1 << 20] {
        let part = kaq_input::FilePart {
            path: path.clone(),
            start: 0,
            end: Some(text.len() as u64 + 100),
            lines_before: 0,
            name: None,
            head: None,
        };
        let (ids, report) = read_sources(&[kaq_input::Source::Part(part)], chunk);
        assert_eq!(ids, ["a", "b"], "chunk {chunk}");
        let c = report.counts;
        let whole = text.rfind('\n').unwrap() as u64 + 1;
        assert_eq!((c.lines, c.rejected, c.bytes), (2, 0, whole), "chunk {chunk}: {report:?}");
        assert!(report.read_errors.is_empty());
    }
}

/// A part given the bytes its file began with (`head`) reads only while the file still begins
/// with them: a file truncated and written again (copy-and-truncate rotation, then new lines)
/// before or while it is read gives none of its new bytes, and no half line, as read at the
/// part's offsets; what was read before is whole lines of the file as it was.
#[test]
fn a_part_whose_file_was_truncated_and_written_again_reads_none_of_the_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let old: Vec<String> = (0..3000).map(|i| format!("{{\"kind\":\"Event\",\"auditID\":\"old-{i:05}\"}}\n")).collect();
    let new: String =
        (0..3000).map(|i| format!("{{\"kind\":\"Event\",\"auditID\":\"new-{i:05}-longer\"}}\n")).collect();
    let text = old.concat();
    let part = |start: usize| {
        kaq_input::Source::Part(kaq_input::FilePart {
            path: path.clone(),
            start: start as u64,
            end: Some(text.len() as u64),
            lines_before: 0,
            name: None,
            head: Some(text.as_bytes()[..1000].into()),
        })
    };
    // As it was: read whole.
    std::fs::write(&path, &text).unwrap();
    let (ids, report) = read_sources(&[part(0)], 4096);
    assert_eq!(ids.len(), 3000);
    assert_eq!(report.counts.bytes, text.len() as u64);
    // Written again before the read: nothing, whatever the offsets.
    for start in [0, old[0].len(), 17] {
        std::fs::write(&path, &new).unwrap();
        let (ids, report) = read_sources(&[part(start)], 4096);
        assert_eq!((ids.len(), report.counts.lines, report.counts.bytes), (0, 0, 0), "from {start}: {report:?}");
    }
    // Truncated and written again while read (at the first chunk handed on; the reader is ahead
    // by a few chunks at most): a prefix of the old lines, whole, and nothing after.
    std::fs::write(&path, &text).unwrap();
    let opts = ReadOptions { chunk_bytes: 256, threads: 2, ..ReadOptions::default() };
    let (mut ids, mut rejects, mut first) = (Vec::new(), 0, true);
    let report = read(&[part(0)], &opts, &Ids, |c| {
        if std::mem::take(&mut first) {
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
            std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(new.as_bytes()).unwrap();
        }
        ids.extend(c.output.unwrap_or_default());
        rejects += c.rejects.len();
        Ok::<(), Infallible>(())
    })
    .unwrap();
    assert!(!ids.is_empty() && ids.len() < 3000, "{} read", ids.len());
    let want: Vec<String> = (0..ids.len()).map(|i| format!("old-{i:05}")).collect();
    assert_eq!(ids, want);
    assert_eq!(rejects, 0);
    assert_eq!(report.counts.bytes, old[..ids.len()].concat().len() as u64, "{report:?}");
}

/// A gzip input cut short: what came before the break is read, the half line at the break is
/// rejected, and `Report::incomplete` says what it was (a store does not count it as read).
#[test]
fn a_cut_gzip_reports_its_half_line_as_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log.gz");
    let lines: String = (0..2000).map(|i| format!("{{\"kind\":\"Event\",\"auditID\":\"id-{i:05}\"}}\n")).collect();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(lines.as_bytes()).unwrap();
    let gz = e.finish().unwrap();
    std::fs::write(&path, &gz[..gz.len() * 2 / 3]).unwrap();
    let (ids, report) = read_sources(&expand(&[&path]).unwrap().sources, 4096);
    assert_eq!(report.read_errors.len(), 1, "{report:?}");
    let (c, inc) = (report.counts, report.incomplete);
    assert_eq!(c.events, ids.len() as u64);
    assert_eq!((inc.lines, inc.rejected), (1, 1), "{report:?}");
    // What is whole is exactly the events' lines.
    assert_eq!(c.bytes - inc.bytes, lines.lines().take(ids.len()).map(|l| l.len() as u64 + 1).sum::<u64>());
    assert!(inc.bytes > 0 && inc.bytes < 40, "{inc:?}");
}

/// A line of `n` bytes or more that is an event (were it not too long).
fn long_event(id: &str, n: usize) -> String {
    let pad = n.saturating_sub(40);
    format!(r#"{{"kind":"Event","auditID":"{id}","verb":"get","x":"{}"}}"#, "a".repeat(pad))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Lines past the limit are rejected with their size, wherever chunks are cut (a long line
    /// may be read past across many chunks, or found whole in one), and nothing else changes.
    #[test]
    fn over_long_lines_are_rejected_wherever_chunks_are_cut(
        lines in proptest::collection::vec(prop_oneof![
            3 => line(),
            1 => ("[a-z0-9]{1,8}", 90usize..400).prop_map(|(id, n)| long_event(&id, n)),
            1 => (90usize..400).prop_map(|n| " ".repeat(n)),
        ], 0..30),
        chunk in 1usize..200,
        crlf: bool,
    ) {
        const MAX: usize = 80;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let sep = if crlf { "\r\n" } else { "\n" };
        let text = lines.join(sep);
        std::fs::write(&path, &text).unwrap();
        let whole = read_limited(&path, 1 << 20, 1, MAX);
        let cut = read_limited(&path, chunk, 3, MAX);
        prop_assert_eq!(&whole, &cut);
        let (_, rejects, counts) = whole;
        // Every byte is counted, and every line.
        prop_assert_eq!(counts.bytes, text.len() as u64);
        // The lines rejected for their size are exactly those past the limit (a line is its
        // bytes but the newline: with CRLF, its `\r` too), with their size.
        let want: Vec<(u64, String)> = text
            .split('\n')
            .enumerate()
            .filter(|(_, l)| l.len() > MAX)
            .map(|(i, l)| (1 + i as u64, format!("record of {} bytes exceeds the limit of 80 bytes (--max-record-size)", l.len())))
            .collect();
        let got: Vec<(u64, String)> = rejects.iter().filter(|r| r.1.contains("exceeds the limit")).cloned().collect();
        prop_assert_eq!(got, want);
    }
}

/// A line far longer than the limit (many chunks, in a gzip, then a last one without a newline)
/// is read past without being held: the lines after it are all read, bytes and lines all counted.
#[test]
fn a_long_line_is_read_past_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let path = dir.path().join(if gzip { "a.log.gz" } else { "a.log" });
        let mut text = String::new();
        text.push_str(&long_event("first", 10));
        text.push('\n');
        text.push_str(&"0".repeat(300_000));
        text.push('\n');
        for i in 0..50 {
            text.push_str(&long_event(&format!("after{i}"), 10));
            text.push('\n');
        }
        text.push_str(&"z".repeat(5_000)); // the last line, with no newline
        let bytes = if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        } else {
            text.clone().into_bytes()
        };
        std::fs::write(&path, bytes).unwrap();
        let (ids, rejects, counts) = read_limited(&path, 4096, 2, 1024);
        assert_eq!(ids.len(), 51, "{ids:?}");
        assert_eq!(ids[0], "first");
        assert_eq!(ids[50], "after49");
        assert_eq!(
            rejects,
            [
                (2, "record of 300000 bytes exceeds the limit of 1 KiB (--max-record-size)".to_string()),
                (53, "record of 5000 bytes exceeds the limit of 1 KiB (--max-record-size)".to_string()),
            ]
        );
        assert_eq!((counts.lines, counts.events, counts.rejected), (53, 51, 2));
        assert_eq!(counts.bytes, text.len() as u64);
    }
}
