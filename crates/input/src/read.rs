//! The reading pipeline: one thread reads and frames the input, worker threads decode, and the
//! caller receives the results in input order.
//!
//! ```text
//! reader thread ──jobs──▶ N decode workers ──results──▶ caller (reordered by sequence number)
//! ```
//!
//! Memory stays bounded: the job channel holds a few chunks, so a slow consumer slows the reader.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use flate2::bufread::MultiGzDecoder;
use kaq_schema::{DecodeOptions, Event};
use serde::de::IgnoredAny;

use crate::error::InputError;
use crate::formats::{InputFormat, decode_input, raw_text_is_native};
use crate::sources::{FilePart, Source};

/// How to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub decode: DecodeOptions,
    /// The input's format: `Auto` (the default) detects native Events and the GKE, EKS and AKS
    /// wrappers record by record; the others accept that format only (crate::formats).
    pub input_format: InputFormat,
    /// Decode threads (default: the number of cores).
    pub threads: usize,
    /// Bytes per chunk of lines handed to a worker.
    pub chunk_bytes: usize,
    /// Set from another thread (a REPL's Ctrl-C) to stop reading: checked before each chunk, so
    /// the read ends within a chunk per worker. Callers learn of it by testing the flag.
    pub cancel: Option<Arc<AtomicBool>>,
    /// The largest record read, in bytes (default [`DEFAULT_MAX_RECORD_SIZE`], 64 MiB): a longer
    /// line is rejected ("record of N bytes exceeds the limit of …") and read past to its end
    /// without being held, and the next lines are read; a file of whole documents (pretty-printed
    /// JSON, read whole) larger than this is read as JSON lines instead. No more than this, plus a
    /// chunk, is held of any one line; memory stays within a small multiple of it (docs/inputs.md).
    pub max_record_size: usize,
    /// Stop at the first input that cannot be opened or that breaks off (the read ends there;
    /// [`Report::check`] turns it into an error). By default such an input is reported in
    /// [`Report::read_errors`] and the read goes on with the next.
    pub strict: bool,
}

/// The default of [`ReadOptions::max_record_size`]: 64 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 64 << 20;

/// A size in the largest binary unit that divides it (`64 MiB`, `1 KiB`), else in bytes.
pub fn format_size(n: usize) -> String {
    for (unit, name) in [(1usize << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} bytes")
}

/// Parses a size: a number of bytes, or one with a unit (`KiB`, `MiB`, `GiB` or `K`, `M`, `G`:
/// binary; `KB`, `MB`, `GB`: decimal; `B`), as in `64MiB`, `1KiB`, `500MB`.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: usize = t[..digits].parse().ok()?;
    let mult: usize = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Why a record is rejected for its size.
fn too_long(bytes: u64, max: usize) -> String {
    format!("record of {bytes} bytes exceeds the limit of {} (--max-record-size)", format_size(max))
}

impl ReadOptions {
    /// Whether [`ReadOptions::cancel`] has been set.
    pub fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            decode: DecodeOptions::default(),
            input_format: InputFormat::Auto,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            chunk_bytes: 2 << 20,
            cancel: None,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            strict: false,
        }
    }
}

/// A record that is not an audit event, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The input it came from.
    pub source: Arc<str>,
    /// 1-based line number (of the start of the document, for multi-line documents).
    pub line: u64,
    pub reason: String,
    /// The text of the line (or document), whole; empty for a record longer than
    /// [`ReadOptions::max_record_size`] (never held).
    pub raw: Vec<u8>,
}

/// What was read. Every record is either an event or a reject: `records() == events + rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Physical lines read.
    pub lines: u64,
    /// Lines with no record: blank, or an empty EventList, array or wrapper (skipped).
    pub blank: u64,
    /// Lines the handler ruled out before decoding ([`EventHandler::skip`]); not validated.
    pub skipped: u64,
    pub events: u64,
    pub rejected: u64,
    /// Bytes read (after decompression).
    pub bytes: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.lines += o.lines;
        self.blank += o.blank;
        self.skipped += o.skipped;
        self.events += o.events;
        self.rejected += o.rejected;
        self.bytes += o.bytes;
    }

    /// Records seen: events plus rejects.
    pub fn records(&self) -> u64 {
        self.events + self.rejected
    }
}

/// Turns the events of one chunk into something to send back (e.g. an Arrow batch). Runs on the
/// worker threads: [`start`](Self::start) once per chunk, [`event`](Self::event) for each event
/// as it is decoded (events are not collected first: they are large, and moving them costs),
/// [`finish`](Self::finish) at the end of the chunk.
pub trait EventHandler: Sync {
    type State;
    type Output: Send;
    fn start(&self) -> Self::State;
    fn event(&self, state: &mut Self::State, event: &Event<'_>);
    fn finish(&self, state: Self::State) -> Self::Output;

    /// Like [`event`](Self::event), with the event's own JSON text (its line, or its item of an
    /// EventList or array). By default calls `event`.
    fn event_with_text(&self, state: &mut Self::State, event: &Event<'_>, text: &str) {
        let _ = text;
        self.event(state, event)
    }

    /// Called with each non-blank line of JSON-lines input before it is decoded (only lines whose
    /// text is a native Event's, [`crate::formats::raw_text_is_native`]); `true` means the
    /// handler has dealt with it (e.g. a prefilter proved no event of it can matter) and it is not
    /// decoded, only counted in [`Counts::skipped`]. By default nothing is skipped.
    fn skip(&self, state: &mut Self::State, line: &[u8]) -> bool {
        let _ = (state, line);
        false
    }

    /// The parts of each event this handler reads ([`kaq_schema::Fields`]): the reader decodes
    /// only those (every record is still validated whole). By default all of them.
    fn fields(&self) -> kaq_schema::Fields {
        kaq_schema::Fields::ALL
    }
}

/// One chunk's results, given to the caller in input order.
pub struct Chunk<O> {
    /// The input it came from.
    pub source: Arc<str>,
    /// The handler's output, when the chunk held events.
    pub output: Option<O>,
    pub rejects: Vec<Reject>,
    pub counts: Counts,
}

/// The totals of a read.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub counts: Counts,
    pub sources: usize,
    /// Inputs that broke off or could not be read, as messages (`file: what happened`).
    pub read_errors: Vec<String>,
    /// What inputs that broke off (a truncated gzip, a failing read) ended with after their last
    /// complete line: a half line, rejected as incomplete. Included in `counts`; a caller that
    /// records how far it read, to resume later, leaves it out: it was not read whole.
    pub incomplete: Counts,
}

impl Report {
    /// With `strict`, the first read error as an error ([`InputError::Strict`]).
    pub fn check(&self, strict: bool) -> Result<(), InputError> {
        match self.read_errors.first() {
            Some(e) if strict => Err(InputError::Strict(e.trim_end_matches("; skipped").to_string())),
            _ => Ok(()),
        }
    }
}

enum Job {
    Lines { source: Arc<str>, data: Vec<u8> },
    Doc { source: Arc<str>, data: Vec<u8> },
    Ready { source: Arc<str>, rejects: Vec<Reject>, counts: Counts },
}

/// Chunk buffers go back to the reader once decoded: fresh multi-megabyte buffers would cost a
/// page fault per page each time.
struct Pool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    /// Buffers larger than this (grown by a long line) are not kept.
    keep: usize,
}

impl Pool {
    fn new(capacity: usize, chunk_bytes: usize) -> Pool {
        let (tx, rx) = bounded(capacity);
        Pool { tx, rx, keep: 2 * chunk_bytes + (64 << 10) }
    }

    fn get(&self, chunk_bytes: usize) -> Vec<u8> {
        let mut v = self.rx.try_recv().unwrap_or_default();
        v.clear();
        v.reserve(chunk_bytes + (64 << 10));
        v
    }

    fn put(&self, v: Vec<u8>) {
        if v.capacity() > self.keep {
            return;
        }
        let _ = self.tx.try_send(v); // a full pool drops it
    }
}

enum Msg<O> {
    Chunk(u64, Chunk<O>),
    /// A read error, and the counts of the partial line it left (in the chunk before it).
    ReadError(u64, String, Counts),
}

/// Reads every source, decoding on `opts.threads` threads; `consume` gets each chunk in order.
/// An error from `consume` stops the read and is returned.
pub fn read<H, E>(
    sources: &[Source],
    opts: &ReadOptions,
    handler: &H,
    mut consume: impl FnMut(Chunk<H::Output>) -> Result<(), E>,
) -> Result<Report, E>
where
    H: EventHandler,
{
    let threads = opts.threads.max(1);
    let (job_tx, job_rx) = bounded::<(u64, Job)>(threads * 2);
    // Bounded too: when the consumer is the slowest stage, decoding waits for it.
    let (res_tx, res_rx) = bounded::<Msg<H::Output>>(threads * 2);
    let mut report = Report { sources: sources.len(), ..Report::default() };
    let pool = &Pool::new(threads * 4, opts.chunk_bytes);
    std::thread::scope(|s| {
        let reader_res = res_tx.clone();
        let named = |name: String| std::thread::Builder::new().name(name);
        named("kaq-reader".into())
            .spawn_scoped(s, move || reader(sources, opts, pool, job_tx, reader_res))
            .expect("spawning a thread");
        for i in 0..threads {
            let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
            named(format!("kaq-decode-{i}"))
                .spawn_scoped(s, move || worker(job_rx, res_tx, pool, handler, opts))
                .expect("spawning a thread");
        }
        drop(res_tx);
        drop(job_rx);
        collect(res_rx, sources, &mut report, &mut consume)
    })?;
    Ok(report)
}

fn collect<O, E>(
    rx: Receiver<Msg<O>>,
    sources: &[Source],
    report: &mut Report,
    consume: &mut impl FnMut(Chunk<O>) -> Result<(), E>,
) -> Result<(), E> {
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Msg<O>> = BTreeMap::new();
    // Workers number lines within their chunk; here, in input order, they become line numbers
    // of the input.
    let mut source: Option<Arc<str>> = None;
    let mut base = 0u64;
    for msg in rx {
        let seq = match &msg {
            Msg::Chunk(seq, _) | Msg::ReadError(seq, ..) => *seq,
        };
        waiting.insert(seq, msg);
        while let Some(msg) = waiting.remove(&next) {
            next += 1;
            match msg {
                Msg::Chunk(_, mut chunk) => {
                    if source.as_ref() != Some(&chunk.source) {
                        source = Some(chunk.source.clone());
                        // A part of a file numbers its lines from where it starts.
                        base = sources
                            .iter()
                            .find_map(|s| match s {
                                Source::Part(part) if *s.display_name() == *chunk.source => Some(part.lines_before),
                                _ => None,
                            })
                            .unwrap_or(0);
                    }
                    for r in &mut chunk.rejects {
                        r.line += base;
                    }
                    base += chunk.counts.lines;
                    report.counts.add(&chunk.counts);
                    consume(chunk)?;
                }
                Msg::ReadError(_, e, tail) => {
                    report.read_errors.push(e);
                    report.incomplete.add(&tail);
                }
            }
        }
    }
    Ok(())
}

fn worker<H: EventHandler>(
    jobs: Receiver<(u64, Job)>,
    out: Sender<Msg<H::Output>>,
    pool: &Pool,
    handler: &H,
    read: &ReadOptions,
) {
    let (opts, format) = (&read.decode, read.input_format);
    for (seq, job) in jobs {
        let chunk = match job {
            Job::Lines { source, data } => {
                let chunk = decode_lines(source, &data, handler, opts, format, read.max_record_size);
                pool.put(data);
                chunk
            }
            Job::Doc { source, data } => decode_documents(source, &data, handler, opts, format),
            Job::Ready { source, rejects, counts } => Chunk { source, output: None, rejects, counts },
        };
        if out.send(Msg::Chunk(seq, chunk)).is_err() {
            return; // the caller stopped
        }
    }
}

impl Reject {
    /// A reject whose text is kept whole, Secret values aside unless they are to be kept.
    fn new(source: &Arc<str>, line: u64, reason: String, raw: &[u8], opts: &DecodeOptions) -> Reject {
        let raw = match opts.keep_secrets {
            true => raw.to_vec(),
            false => kaq_schema::redact::redact_raw(raw).unwrap_or_else(|| raw.to_vec()),
        };
        Reject { source: source.clone(), line, reason, raw }
    }
}

/// The lines of `body` (split at `\n`, found with memchr: a byte-by-byte split costs 6% of a
/// conversion).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    ends.map(move |end| {
        let line = &body[start..end];
        start = end + 1;
        line
    })
}

/// `bytes` as UTF-8 text: checked with SIMD (std's check was a twentieth of the CPU of a question
/// that decodes every line), and by std again only to say where invalid text goes wrong.
fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Decodes a chunk of whole lines. Line numbers in rejects count from 1 at the chunk's start.
fn decode_lines<H: EventHandler>(
    source: Arc<str>,
    data: &[u8],
    handler: &H,
    opts: &DecodeOptions,
    format: InputFormat,
    max_record: usize,
) -> Chunk<H::Output> {
    let opts = &DecodeOptions { fields: handler.fields(), ..*opts };
    let mut counts = Counts { bytes: data.len() as u64, ..Counts::default() };
    let mut state = handler.start();
    let mut rejects = Vec::new();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if !data.is_empty() {
        for (i, line) in lines(body).enumerate() {
            counts.lines += 1;
            let n = 1 + i as u64;
            if line.len() > max_record {
                // Measured as the reader measures a line it reads past (all but the newline).
                // Not kept: nothing of a record past the limit is held or written.
                let reason = too_long(line.len() as u64, max_record);
                rejects.push(Reject { source: source.clone(), line: n, reason, raw: Vec::new() });
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if is_blank(line) {
                counts.blank += 1;
                continue;
            }
            // A prefilter may judge a native line by its text; a wrapped event's text is escaped,
            // compressed or spelled otherwise (GKE), so such lines are always decoded.
            if raw_text_is_native(format, line) && handler.skip(&mut state, line) {
                counts.skipped += 1;
                continue;
            }
            match utf8(line) {
                Ok(text) => {
                    let records = decode_input(text, opts, format, &mut |r| match r {
                        Ok((ev, text)) => {
                            counts.events += 1;
                            handler.event_with_text(&mut state, ev, text);
                        }
                        Err(r) => rejects.push(Reject::new(&source, n, r.error.0, r.text.as_bytes(), opts)),
                    });
                    if records == 0 {
                        counts.blank += 1; // an empty EventList, array or wrapper
                    }
                }
                Err(e) => {
                    let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to());
                    rejects.push(Reject::new(&source, n, reason, line, opts));
                }
            }
        }
    }
    counts.rejected = rejects.len() as u64;
    let output = (counts.events + counts.skipped > 0).then(|| handler.finish(state));
    Chunk { source, output, rejects, counts }
}

/// A file of whole JSON documents (pretty-printed events, an EventList, an array…), one after
/// another.
fn decode_documents<H: EventHandler>(
    source: Arc<str>,
    data: &[u8],
    handler: &H,
    opts: &DecodeOptions,
    format: InputFormat,
) -> Chunk<H::Output> {
    let opts = &DecodeOptions { fields: handler.fields(), ..*opts };
    let mut counts = Counts { bytes: data.len() as u64, ..Counts::default() };
    counts.lines = memchr::memchr_iter(b'\n', data).count() as u64 + u64::from(!data.ends_with(b"\n"));
    let mut state = handler.start();
    let mut rejects = Vec::new();
    let line_at = |off: usize| 1 + memchr::memchr_iter(b'\n', &data[..off]).count() as u64;
    match utf8(data) {
        Err(e) => {
            let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to());
            rejects.push(Reject::new(&source, line_at(e.valid_up_to()), reason, data, opts));
        }
        Ok(text) => {
            let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&serde_json::value::RawValue>();
            loop {
                let before = stream.byte_offset();
                let start = before + text[before..].len() - text[before..].trim_start().len();
                match stream.next() {
                    None => break,
                    Some(Ok(raw)) => {
                        let line = line_at(start);
                        decode_input(raw.get(), opts, format, &mut |r| match r {
                            Ok((ev, text)) => {
                                counts.events += 1;
                                handler.event_with_text(&mut state, ev, text);
                            }
                            Err(r) => rejects.push(Reject::new(&source, line, r.error.0, r.text.as_bytes(), opts)),
                        });
                    }
                    Some(Err(e)) => {
                        let reason = format!("invalid JSON: {e} (the rest of the input from here is rejected)");
                        rejects.push(Reject::new(&source, line_at(start), reason, &text.as_bytes()[start..], opts));
                        break;
                    }
                }
            }
        }
    }
    counts.rejected = rejects.len() as u64;
    let output = (counts.events + counts.skipped > 0).then(|| handler.finish(state));
    Chunk { source, output, rejects, counts }
}

/// Reads until `buf` has grown by `want` bytes or the input ends. Returns (ended, error).
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> (bool, Option<std::io::Error>) {
    let target = buf.len() + want;
    buf.reserve(want);
    while buf.len() < target {
        // `take(..).read_to_end` reads straight into the spare capacity: no second copy.
        match r.take((target - buf.len()) as u64).read_to_end(buf) {
            Ok(0) => return (true, None),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (true, Some(e)),
        }
    }
    (false, None)
}

/// The first bytes a part's file began with when the part was chosen, and a handle of its own
/// on the file to see whether it still does.
struct HeadGuard {
    file: Option<File>,
    head: Arc<[u8]>,
    now: Vec<u8>,
}

impl HeadGuard {
    fn new(path: &std::path::Path, head: Arc<[u8]>) -> HeadGuard {
        HeadGuard { file: File::open(path).ok(), head, now: Vec::new() }
    }

    /// Whether the file still begins with the bytes (what cannot be read does not).
    fn holds(&mut self) -> bool {
        use std::io::{Seek, SeekFrom};
        let Some(f) = self.file.as_mut() else { return false };
        self.now.clear();
        let n = self.head.len() as u64;
        let read = f.seek(SeekFrom::Start(0)).and_then(|_| f.take(n).read_to_end(&mut self.now));
        read.is_ok() && self.now[..] == self.head[..]
    }
}

/// Whether a file starts with gzip's magic bytes.
pub fn is_gzip(path: &std::path::Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == [0x1f, 0x8b]
}

fn open(source: &Source) -> std::io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match source {
        Source::Stdin => Box::new(std::io::stdin()),
        Source::File(p) => Box::new(File::open(p)?),
        Source::Part(part) => return open_part(&part.path, part.start, part.end),
    };
    let mut r = BufReader::with_capacity(256 << 10, raw);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz { Box::new(BufReader::with_capacity(256 << 10, MultiGzDecoder::new(r))) } else { Box::new(r) })
}

/// The content of `path` from `start` to `end`: a seek in a plain file; in a gzip file, the
/// decompressed bytes before `start` are skipped.
fn open_part(path: &std::path::Path, start: u64, end: Option<u64>) -> std::io::Result<Box<dyn Read + Send>> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    let content: Box<dyn Read + Send> = if is_gzip(path) {
        let mut r = BufReader::with_capacity(256 << 10, MultiGzDecoder::new(BufReader::with_capacity(256 << 10, f)));
        let skipped = std::io::copy(&mut (&mut r).take(start), &mut std::io::sink())?;
        if skipped < start {
            let why = format!("holds {skipped} bytes once decompressed, fewer than the {start} to skip");
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why));
        }
        Box::new(r)
    } else {
        f.seek(SeekFrom::Start(start))?;
        Box::new(BufReader::with_capacity(256 << 10, f))
    };
    Ok(match end {
        Some(end) => Box::new(content.take(end.saturating_sub(start))),
        None => content,
    })
}

#[derive(PartialEq, Clone, Copy)]
enum Mode {
    Lines,
    Documents,
}

fn parses(text: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(text).is_ok()
}

/// Decides how an input is framed from its start. A first line that is a JSON value, or that
/// is followed by an unindented line, makes JSON lines (a bad first line is then just rejected).
/// A first line followed by indented lines may open a pretty-printed document: that is decided
/// once the input is whole (`None` until then).
fn sniff(buf: &[u8], ended: bool) -> Option<Mode> {
    let Some(start) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
        return ended.then_some(Mode::Lines);
    };
    let rest = &buf[start..];
    let Some(nl) = memchr::memchr(b'\n', rest) else {
        return ended.then_some(Mode::Lines);
    };
    if parses(&rest[..nl]) {
        return Some(Mode::Lines);
    }
    let next = &rest[nl + 1..];
    if next.is_empty() && !ended {
        return None;
    }
    // Pretty-printed JSON indents what follows its first line; JSON lines do not.
    if !next.first().is_some_and(|b| matches!(b, b' ' | b'\t' | b'}' | b']')) {
        return Some(Mode::Lines);
    }
    if !ended {
        return None;
    }
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
    match stream.next() {
        Some(Ok(_)) => Some(Mode::Documents),
        _ => Some(Mode::Lines),
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn reader<O>(sources: &[Source], opts: &ReadOptions, pool: &Pool, jobs: Sender<(u64, Job)>, errors: Sender<Msg<O>>) {
    let (chunk_bytes, decode) = (opts.chunk_bytes, &opts.decode);
    let max_record = opts.max_record_size.max(1);
    let mut seq = 0u64;
    let mut next_seq = || {
        seq += 1;
        seq - 1
    };
    for source in sources {
        let name: Arc<str> = source.display_name().into();
        let mut r = match open(source) {
            Ok(r) => r,
            Err(e) => {
                let _ = errors.send(Msg::ReadError(
                    next_seq(),
                    format!("{name}: cannot be opened ({e}); skipped"),
                    Counts::default(),
                ));
                if opts.strict {
                    return;
                }
                continue;
            }
        };
        let mut buf: Vec<u8> = pool.get(chunk_bytes);
        let mut mode: Option<Mode> = None;
        // A part that ends before its end shrank while read (copy-and-truncate): its last partial
        // line is not read (the caller finds it, whole, in the copy).
        let expected = match source {
            Source::Part(part) => part.end.map(|end| end.saturating_sub(part.start)),
            _ => None,
        };
        let mut got = 0u64;
        // A part whose file no longer begins as it did when the part was chosen was truncated
        // (and maybe written again) meanwhile: what was read since the last look at its head may
        // be other bytes, and is dropped; the part ends there, as a part that shrank.
        let mut guard = match source {
            Source::Part(FilePart { head: Some(head), path, .. }) => Some(HeadGuard::new(path, head.clone())),
            _ => None,
        };
        // A byte-order mark can only open a file.
        let mut bom_checked = matches!(source, Source::Part(part) if part.start > 0);
        // The bytes so far of a line longer than `max_record`, read past without being held.
        let mut skipping: Option<u64> = None;
        loop {
            if opts.cancelled() {
                return;
            }
            let before = buf.len();
            let (mut ended, mut err) = fill(&mut *r, &mut buf, chunk_bytes);
            let changed = guard.as_mut().is_some_and(|g| !g.holds());
            if changed {
                buf.truncate(before);
                (ended, err) = (true, None);
            }
            got += (buf.len() - before) as u64;
            let short = changed || (ended && err.is_none() && expected.is_some_and(|e| got < e));
            if !bom_checked && (buf.len() >= 3 || ended) {
                if buf.starts_with(BOM) {
                    buf.drain(..3);
                }
                bom_checked = true;
            }
            if let Some(before) = skipping {
                // The over-long line ends at the next newline (or with the input): reject it,
                // counting all its bytes, and go on with what follows.
                let (len, bytes) = match memchr::memchr(b'\n', &buf) {
                    Some(i) => {
                        buf.drain(..=i);
                        (before + i as u64, before + i as u64 + 1)
                    }
                    None if !ended => {
                        skipping = Some(before + buf.len() as u64);
                        buf.clear();
                        continue;
                    }
                    // Cut by the part's shrinking: not read (the copy has it whole).
                    None if short => break,
                    None => {
                        let len = before + std::mem::take(&mut buf).len() as u64;
                        buf = pool.get(chunk_bytes);
                        (len, len)
                    }
                };
                skipping = None;
                let counts = Counts { lines: 1, rejected: 1, bytes, ..Counts::default() };
                let reason = too_long(len, max_record);
                let rejects = vec![Reject { source: name.clone(), line: 1, reason, raw: Vec::new() }];
                if jobs.send((next_seq(), Job::Ready { source: name.clone(), rejects, counts })).is_err() {
                    return;
                }
            }
            if mode.is_none() {
                mode = sniff(&buf, ended);
                if mode.is_none() {
                    // A whole-document file is held whole: no more than a record's limit.
                    if buf.len() <= max_record {
                        continue;
                    }
                    mode = Some(Mode::Lines);
                }
                if mode == Some(Mode::Documents) && buf.len() > max_record {
                    mode = Some(Mode::Lines);
                }
            }
            let mode = mode.expect("decided above");
            if mode == Mode::Documents && !ended {
                continue; // documents are decoded once the input is whole
            }
            let cut = if ended && err.is_none() && !short {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => i + 1,
                    None if ended => 0,
                    None if buf.len() > max_record => {
                        // Too long to be a record: read past it to its end without holding it.
                        skipping = Some(buf.len() as u64);
                        buf.clear();
                        buf.shrink_to(chunk_bytes + (64 << 10));
                        continue;
                    }
                    None => continue, // a line longer than a chunk: read on
                }
            };
            let mut next = pool.get(chunk_bytes);
            next.extend_from_slice(&buf[cut..]);
            buf.truncate(cut);
            let data = std::mem::replace(&mut buf, next);
            if !data.is_empty() {
                let source = name.clone();
                let job = match mode {
                    Mode::Documents => Job::Doc { source, data },
                    Mode::Lines => Job::Lines { source, data },
                };
                if jobs.send((next_seq(), job)).is_err() {
                    return; // the caller stopped
                }
            }
            if let Some(e) = err {
                // The input broke off (a truncated gzip, a failing disk): keep what came before,
                // reject the partial line, and say so.
                let tail = std::mem::take(&mut buf);
                let mut counts = Counts { bytes: tail.len() as u64, ..Counts::default() };
                let mut rejects = Vec::new();
                if !is_blank(&tail) {
                    counts.lines = 1;
                    counts.rejected = 1;
                    let reason = format!("incomplete line: the input broke off here ({e})");
                    rejects.push(Reject::new(&name, 1, reason, &tail, decode));
                }
                if jobs.send((next_seq(), Job::Ready { source: name.clone(), rejects, counts })).is_err() {
                    return;
                }
                let msg = format!("{name}: the input broke off ({e}); everything before the break was read");
                let _ = errors.send(Msg::ReadError(next_seq(), msg, counts));
                if opts.strict {
                    return;
                }
                break;
            }
            if ended {
                break; // a short part's partial line is dropped with `buf`
            }
        }
    }
}
