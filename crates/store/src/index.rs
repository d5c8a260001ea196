//! A tantivy index per segment, over the same rows (a document per block of up to [`BLOCK`]
//! adjacent rows, its `row` the block's first Parquet row number): keyword fields as whole terms,
//! text fields as words, request and response values by path. It stores nothing the Parquet file
//! has — only postings and the `row` number.
//!
//! The index only narrows: a query's condition is translated where every part can be (equality
//! on keywords, words and phrases in text, code ranges, addresses), into a query whose rows are a
//! superset of the matches; the full condition is then tested on those rows, read from Parquet
//! (kaq-query's residual filter). Anything else (negations, wildcards, comparisons on other
//! fields…) reads the whole segment.

use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ListArray, RecordBatch, StringArray};
use kaq_columnar::{RowSink, column_index};
use kaq_query::plan::{FieldKey, Plan, Pred, Test};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{BooleanQuery, Query, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{DocId, Index, IndexWriter, Score, SegmentOrdinal, SegmentReader, Term};

/// The version of what the index holds (the manifest records it per segment; an index of another
/// version is not used, its segment is scanned). 1: built from restored events, with `client_ip`
/// and `peer_ip` fields and addresses as written. 2: built from the Arrow batches as they are
/// written; addresses normalised, one `ip` field for every address. 3: without the dense keyword
/// fields and `code`. 4: values too long for a term also get the `LONG` term. 5: the request and
/// response objects' values by path (`BODIES`). 6: text fields' words lowercased as the language
/// lowercases them (the tokenizer `Words`). 7: a document per block of up to 8 adjacent rows
/// (see [`block_rows`]). 8: blocks of 32 rows, and the denser keywords (`ONCE_A_BLOCK`) entered
/// once a block, without frequencies. 9: the same terms, each field's term dictionary an sstable
/// instead of an FST (tantivy's `quickwit` feature): building the FSTs was 5.5% of an ingest's
/// instructions and most of the index's memory.
///
/// Only version 9 is used: tantivy reads the one kind of term dictionary it was built for, so an
/// index of versions 4 to 8 (FSTs) is not opened and its segment is scanned (the same answers,
/// slower) until `kaq compact` rewrites it.
pub const VERSION: u32 = 9;

/// Whether an index of this version is used.
pub fn usable(version: u32) -> bool {
    version == VERSION
}

/// The rows of a document: up to this many adjacent rows of one batch, its `row` the first. A
/// search finds blocks, and takes every row of each (the columns of the filter, read for those
/// rows, then keep the matches): a needle costs a few more rows tested, from the same pages.
/// Indexing a block costs about what indexing one row did (a document's fixed costs, and each
/// term once a block where its rows share it: user, namespace, user agent, the URI's common
/// words), and the index is smaller. Version 7's blocks were 8 rows (BENCHMARKS.md, issue 17,
/// stops 26 and 29).
pub const BLOCK: u64 = 32;

/// How many rows a document of an index of `version` may cover, from its `row`: a search takes
/// `row .. row + block_rows` of each document found (clipped to the segment).
pub fn block_rows(version: u32) -> u64 {
    match version {
        8.. => BLOCK,
        7 => 8,
        _ => 1,
    }
}

/// What the indexes of the segments a query searches all hold, by their versions and the Unicode
/// tables they were built with: what they can narrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holds {
    /// The request and response objects' values (version 5 on); without them, no body condition
    /// is narrowed.
    pub bodies: bool,
    /// Text words exactly as this kaq makes them: version 6 on (before, a word-final `Σ` was
    /// indexed as `σ`, see the tokenizer `Words`), built with this kaq's Unicode tables (which letters
    /// there are, and their lowercase). Without, a word with a character outside ASCII is not
    /// looked up: ASCII letters, digits and their lowercase are the same in every version.
    pub words: bool,
}

/// The Unicode version of this kaq's letters and lowercase, as the manifest records it with an
/// index (`Segment::index_unicode`).
pub fn unicode() -> &'static str {
    static UNICODE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let (a, b, c) = char::UNICODE_VERSION;
        format!("{a}.{b}.{c}")
    });
    &UNICODE
}

impl Holds {
    /// What an index of `version`, built with the Unicode tables `unicode` (when known), holds.
    pub fn of(version: u32, unicode: Option<&str>) -> Holds {
        Holds { bodies: version >= 5, words: version >= 6 && unicode == Some(self::unicode()) }
    }

    /// What the indexes of every (version, Unicode) in `indexes` hold.
    pub fn all<'a>(indexes: impl IntoIterator<Item = (u32, Option<&'a str>)>) -> Holds {
        indexes.into_iter().map(|(v, u)| Holds::of(v, u)).fold(Holds::of(VERSION, Some(unicode())), |a, b| Holds {
            bodies: a.bodies && b.bodies,
            words: a.words && b.words,
        })
    }
}

/// Keyword fields indexed whole; each is the column of the same name (list columns: each
/// element). `ip` holds every source address, normalised (`client_ip` and `peer_ip` are narrowed
/// by it). Dense fields with few values (verb, stage, resource, code, decision…) are not here: a
/// term on every row costs as much to index as the rest together, and their columns are read
/// quicker than their postings (dictionary pages; `kaq_query::columnar`).
const KEYWORDS: &[&str] = &["user", "as", "ip", "subresource", "ns", "name", "reason"];
/// Text fields indexed as words (the free-text fields); each is the column of the same name.
const TEXTS: &[&str] = &["uri", "message", "exec_command"];
/// Text fields with few distinct values, indexed whole: a search for words looks them up in the
/// field's term dictionary (a few hundred values) and takes the values that have them. Each row
/// costs one term instead of ten or twenty words.
const VALUE_TEXTS: &[&str] = &["ua", "authz_reason"];
/// Keyword fields (and [`VALUE_TEXTS`]) whose values a block's rows share more often than not
/// (a few to a few thousand values, in runs): each value is entered once a document, whatever its
/// rows, and the index keeps no frequencies. Their rows per value are counted from their columns
/// (`Store::top_terms`), which are dictionary-encoded and quick to read. The others (`name`,
/// `ip`: values nearly every object or client has its own) are entered once a row with their
/// frequencies, whose sum is a value's rows.
pub(crate) const ONCE_A_BLOCK: &[&str] = &["user", "as", "subresource", "ns", "reason", "ua", "authz_reason"];
const TOKENIZER: &str = "kaq_words";
/// tantivy drops terms longer than this silently; a value this long is indexed as [`LONG`] too
/// (a raw value would be lost whole, a text could hold a word that long).
const MAX_TERM: usize = 65_530;
/// The term a too-long value also gets, in its field: every search of that field also takes the
/// rows that have it (letters and digits only, so the word tokenizer keeps it whole; a real word
/// equal to it only adds candidates, which the filter then tests).
const LONG: &str = "kaq0value0too0long0for0the0index";
/// Whether a term is one of the index's markers ([`LONG`], [`BODY_UNINDEXED`]), not a value.
pub(crate) fn is_marker(term: &[u8]) -> bool {
    term == LONG.as_bytes() || term == BODY_UNINDEXED.as_bytes()
}

/// The request and response objects (columns of JSON text): every scalar value as the term
/// `PATH=VALUE` (strings and booleans as written) or `PATH#NUMBER` (numbers as `f64`, as the
/// language compares them), with arrays entered element by element, as `request.PATH` reaches
/// them; an object with no such value under it is `PATH={}`, an array in an array with none
/// `PATH=[]` (both are present, as their text). A body with more than [`BODY_TERMS`] values, or a value too long for a term, gets
/// [`BODY_UNINDEXED`] instead, which every body search takes.
const BODIES: &[&str] = &["request", "response"];
const BODY_TERMS: usize = 4096;
const BODY_UNINDEXED: &str = "\u{0}kaq body not indexed";

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_u64_field("row", FAST);
    // Only postings: no field norms (nothing is scored), no positions (a phrase is narrowed by
    // its words; the residual filter checks the order). `name` and `ip` with their frequencies:
    // a value is entered once for each row of a block that has it, so that the sum of its
    // frequencies is its rows (`Store::top_terms`); the others once a block ([`ONCE_A_BLOCK`]).
    let raw = |option| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer("raw").set_fieldnorms(false).set_index_option(option),
        )
    };
    let keyword = raw(IndexRecordOption::Basic);
    for k in KEYWORDS.iter().chain(VALUE_TEXTS) {
        let option = if ONCE_A_BLOCK.contains(k) { IndexRecordOption::Basic } else { IndexRecordOption::WithFreqs };
        b.add_text_field(k, raw(option));
    }
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    );
    for t in TEXTS {
        b.add_text_field(t, words.clone());
    }
    for k in BODIES {
        b.add_text_field(k, keyword.clone());
    }
    b.build()
}

/// The tokenizer of text fields: the words of `kaq_query::plan::literal::words`, exactly — split
/// at every character that is not a letter or digit, each word lowercased as `str::to_lowercase`
/// does, with no length limit (tantivy's default drops words over 40 bytes, which would lose
/// matches). Indexes before version 6 used tantivy's `LowerCaser`, which lowercases a character
/// at a time: a word-final `Σ` became `σ` where the language's words make it `ς`.
fn register(index: &Index) {
    index.tokenizers().register(TOKENIZER, Words::default());
}

/// See [`register`].
#[derive(Clone, Default)]
struct Words {
    token: Token,
}

struct WordStream<'a> {
    text: &'a str,
    /// Where the next word is looked for.
    at: usize,
    token: &'a mut Token,
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        self.token.reset();
        WordStream { text, at: 0, token: &mut self.token }
    }
}

/// Whether the character at `i` of `text` (a character boundary, not ASCII) is a letter or digit,
/// and its length.
#[cold]
fn wide_char(text: &str, i: usize) -> (bool, usize) {
    text[i..].chars().next().map_or((false, 1), |c| (c.is_alphanumeric(), c.len_utf8()))
}

/// The next word of `text` at or after byte `at` (a character boundary): a longest run of letters
/// and digits (for ASCII, `char::is_alphanumeric` is `is_ascii_alphanumeric`). Its range, and
/// whether it is all ASCII.
#[inline]
fn next_word(text: &str, at: usize) -> Option<(usize, usize, bool)> {
    let bytes = text.as_bytes();
    let len = bytes.len();
    let mut i = at;
    // To the next letter or digit.
    while i < len {
        let b = bytes[i];
        if b.is_ascii() {
            if b.is_ascii_alphanumeric() {
                break;
            }
            i += 1;
        } else {
            let (word, n) = wide_char(text, i);
            if word {
                break;
            }
            i += n;
        }
    }
    if i >= len {
        return None;
    }
    let start = i;
    let mut ascii = true;
    while i < len {
        let b = bytes[i];
        if b.is_ascii() {
            if !b.is_ascii_alphanumeric() {
                break;
            }
            i += 1;
        } else {
            ascii = false;
            let (word, n) = wide_char(text, i);
            if !word {
                break;
            }
            i += n;
        }
    }
    Some((start, i, ascii))
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        let Some((start, end, ascii)) = next_word(self.text, self.at) else {
            self.at = self.text.len();
            return false;
        };
        let w = &self.text[start..end];
        self.at = end;
        let t = &mut *self.token;
        t.text.clear();
        if ascii {
            t.text.push_str(w);
            t.text.make_ascii_lowercase();
        } else {
            t.text.push_str(&w.to_lowercase());
        }
        t.offset_from = start;
        t.offset_to = end;
        t.position = t.position.wrapping_add(1);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

fn field(s: &Schema, name: &str) -> Field {
    s.get_field(name).expect("a field of the index schema")
}

/// An address as the index holds it: parsed and normalised (`::ffff:a.b.c.d` is `a.b.c.d`, IPv6
/// in its canonical spelling), or as written when it is not an address.
pub(crate) fn ip_term(s: &str) -> std::borrow::Cow<'_, str> {
    // A dotted quad that parses is already canonical (std takes no leading zeros, no spaces):
    // nearly every address, kept without formatting it again.
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return s.into();
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => normalize(ip).to_string().into(),
        Err(_) => s.into(),
    }
}

fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What went wrong with a segment's index (the store's [`Error::Index`](crate::Error::Index)
/// names the directory).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the index builder panicked")]
    Panicked,
    /// The index and its segment disagree.
    #[error("holds {indexed} rows, the segment {rows}")]
    Rows { indexed: u64, rows: u64 },
    /// A row the index pointed to was skipped without being read (never happens on segments).
    #[error("a row was skipped without being read")]
    Skipped,
    /// Looking up the rows of auditIDs in the segment (its bloom filters) failed.
    #[error("{0}")]
    Lookup(Box<crate::Error>),
}

/// Builds a segment's index from its rows as the segment file is written ([`RowSink`]): the
/// rows go to a thread that makes the documents and feeds tantivy, in parallel with the Parquet
/// encoding.
pub struct Builder {
    tx: Option<SyncSender<Msg>>,
    thread: Option<std::thread::JoinHandle<Result<Built, IndexError>>>,
}

/// What a [`Builder`] indexed.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    pub rows: u64,
    /// No auditID is on two rows (so a row's other stages are in other segments, if anywhere).
    pub ids_unique: bool,
}

enum Msg {
    Rows(RecordBatch),
    Reset,
}

/// The writer's end of a [`Builder`].
struct Sink(SyncSender<Msg>);

impl RowSink for Sink {
    fn rows(&mut self, batch: &RecordBatch) -> Result<(), kaq_columnar::Error> {
        self.0.send(Msg::Rows(batch.clone())).map_err(|_| stopped())
    }

    fn reset(&mut self) -> Result<(), kaq_columnar::Error> {
        self.0.send(Msg::Reset).map_err(|_| stopped())
    }
}

fn stopped() -> kaq_columnar::Error {
    kaq_columnar::Error::Sink("the index builder stopped (its error follows when the segment closes)".into())
}

impl Builder {
    /// Starts an index in `dir` (which must not exist).
    pub fn start(dir: &Path) -> Builder {
        Builder::with_blocks(dir, BLOCK as usize)
    }

    /// An index whose documents are up to `block` rows (1: as before version 7).
    fn with_blocks(dir: &Path, block: usize) -> Builder {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("kaq-index".into())
            .spawn(move || build_from(&dir, rx, block))
            .expect("a thread");
        Builder { tx: Some(tx), thread: Some(thread) }
    }

    /// The sink to give the segment's writer.
    pub fn sink(&self) -> Box<dyn RowSink> {
        Box::new(Sink(self.tx.clone().expect("running")))
    }

    /// Waits for the index to be written (after the writer, and so every sink, is gone).
    pub fn finish(mut self) -> Result<Built, IndexError> {
        drop(self.tx.take());
        match self.thread.take().expect("running").join() {
            Ok(r) => r,
            Err(_) => Err(IndexError::Panicked),
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The memory tantivy's two indexing threads take before each writes what it holds as an index
/// segment (it flushes a thread's segment when its half is full). Their memory grew with the
/// segment under the 1 GiB this was: a 5M-event ingest held 2.5M documents a thread, 320 MB, and
/// peaked at 930 MB RSS; with 128 MiB, 735 MB and six index segments instead of two, at no
/// measurable cost to queries (BENCHMARKS.md, "A store that stays fast as it grows"). With
/// 64 MiB, fifteen index segments for 5M events; with 48 MiB, 24, and needle questions over the
/// 5M store about a millisecond slower (21 → 22 ms), for a peak some 15 MB lower. (32 MiB made 70
/// and cost 5 ms.)
const INDEX_MEMORY: usize = 48 << 20;

fn build_from(dir: &Path, rx: Receiver<Msg>, block: usize) -> Result<Built, IndexError> {
    let s = schema();
    let start = || -> Result<IndexWriter<RowDoc>, IndexError> {
        let _ = std::fs::remove_dir_all(dir);
        // Private from the start (the store's own directories are 0700): what tantivy writes in
        // it is out of reach of others until the segment is committed and its files made 0600.
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let index = Index::create_in_dir(dir, schema())?;
        register(&index);
        let w: IndexWriter<RowDoc> = index.writer_with_num_threads(2, INDEX_MEMORY)?;
        w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        Ok(w)
    };
    let mut w = start()?;
    // Each indexed field: its column, and how its values are entered.
    let keywords: Vec<(Field, usize, Kind)> = KEYWORDS
        .iter()
        .chain(VALUE_TEXTS)
        .chain(TEXTS)
        .map(|k| {
            let kind = match *k {
                "ip" => Kind::Addresses,
                k if TEXTS.contains(&k) => Kind::Words,
                k if ONCE_A_BLOCK.contains(&k) => Kind::OnceABlock,
                _ => Kind::EveryRow,
            };
            (field(&s, k), column_index(k).expect("an indexed field is a column"), kind)
        })
        .collect();
    let row_f = field(&s, "row");
    let bodies: Vec<(Field, usize)> =
        BODIES.iter().map(|k| (field(&s, k), column_index(k).expect("a body is a column"))).collect();
    let id_col = column_index("id").expect("id column");
    let mut row = 0u64;
    // auditIDs seen, by a 64-bit hash (a collision only makes `ids_unique` false: slower, exact),
    // in about 9 bytes an ID; let go once one is seen twice. aHash, keyed per process (a
    // collision costs speed, never an answer: SipHash's strength bought nothing here).
    let mut ids: kaq_columnar::digest::KeySet<u64> = Default::default();
    let id_hash = ahash::RandomState::new();
    let mut ids_unique = true;
    // Whatever happens, the channel is drained so that the writer never blocks on it.
    let mut failed: Option<IndexError> = None;
    for msg in rx {
        if failed.is_some() {
            continue;
        }
        let r = match msg {
            Msg::Reset => {
                // The old writer (its threads, its lock) goes before `start` empties the directory.
                drop(w);
                w = start()?;
                row = 0;
                ids.clear();
                ids_unique = true;
                Ok(())
            }
            Msg::Rows(batch) => {
                if ids_unique {
                    let a = batch.column(id_col).as_string::<i32>();
                    ids_unique = a.iter().flatten().all(|id| ids.insert(id_hash.hash_one(id)));
                    if !ids_unique {
                        ids.clear();
                    }
                }
                add_batch(&w, &batch, &keywords, &bodies, row_f, &mut row, block)
            }
        };
        if let Err(e) = r {
            failed = Some(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    w.commit()?;
    w.wait_merging_threads()?;
    Ok(Built { rows: row, ids_unique })
}

/// One document per block of up to `block` rows of `batch` ([`BLOCK`]), numbered from `row`: each a
/// [`RowDoc`] that borrows its values from the batch (tantivy's indexing threads read them in
/// place; nothing is copied into a document). Only the body terms, made from the bodies' JSON,
/// and each block's text words ([`BlockWords`]) are built here.
fn add_batch(
    w: &IndexWriter<RowDoc>,
    batch: &RecordBatch,
    fields: &[(Field, usize, Kind)],
    bodies: &[(Field, usize)],
    row_f: Field,
    row: &mut u64,
    block: usize,
) -> Result<(), IndexError> {
    let n = batch.num_rows();
    let cols: Vec<(Field, Col)> = fields
        .iter()
        .map(|&(f, c, kind)| {
            let a = batch.column(c);
            let col = match a.as_list_opt::<i32>() {
                Some(l) => {
                    let values = l.values().as_string::<i32>();
                    let values = if kind == Kind::Addresses { ip_terms(values) } else { values.clone() };
                    Col::List(l.clone(), values)
                }
                None if kind == Kind::Words => Col::Words(block_words(a.as_string::<i32>(), block)),
                None => Col::Str(a.as_string::<i32>().clone(), kind == Kind::OnceABlock),
            };
            (f, col)
        })
        .collect();
    // Each body field's terms, row after row.
    let bodies = bodies
        .iter()
        .map(|&(field, c)| {
            let a = batch.column(c).as_string::<i32>();
            let (mut terms, mut one) = (Vec::new(), Vec::new());
            let mut ends = Vec::with_capacity(n);
            for i in 0..n {
                if a.is_valid(i) {
                    one.clear();
                    if !body_terms(a.value(i), &mut one) {
                        one.clear();
                        one.push(BODY_UNINDEXED.to_string());
                    }
                    terms.append(&mut one);
                }
                ends.push(terms.len());
            }
            BodyTerms { field, terms, ends }
        })
        .collect();
    let rows = std::sync::Arc::new(BatchRows { first: *row, block, row_f, cols, bodies });
    for i in (0..n).step_by(block) {
        w.add_document(RowDoc { rows: rows.clone(), start: i, end: (i + block).min(n), given: Default::default() })?;
    }
    *row += n as u64;
    Ok(())
}

/// An address list's values as the index holds them ([`ip_term`]): the same array when every
/// one already is (nearly always).
fn ip_terms(values: &StringArray) -> StringArray {
    if values.iter().flatten().all(|v| matches!(ip_term(v), std::borrow::Cow::Borrowed(_))) {
        return values.clone();
    }
    values.iter().map(|v| v.map(ip_term)).collect()
}

/// A text field's words in each block of a batch ([`BlockWords`]).
fn block_words(a: &StringArray, block: usize) -> BlockWords {
    let (n, block) = (a.len(), block.max(1));
    let mut seen: ahash::HashSet<&str> = Default::default();
    let mut text = String::with_capacity(a.values().len() / 2);
    let mut blocks = Vec::with_capacity(n.div_ceil(block));
    for start in (0..n).step_by(block) {
        seen.clear();
        let (from, mut long) = (text.len(), false);
        let mut before: Option<&str> = None;
        for i in start..(start + block).min(n) {
            if a.is_null(i) {
                continue;
            }
            let v = a.value(i);
            // A value equal to the row before's has no word the block lacks.
            if before == Some(v) {
                continue;
            }
            before = Some(v);
            long |= v.len() > MAX_TERM;
            let mut at = 0;
            while let Some((s, e, _)) = next_word(v, at) {
                at = e;
                let w = &v[s..e];
                if seen.insert(w) {
                    if text.len() > from {
                        text.push(' ');
                    }
                    text.push_str(w);
                }
            }
        }
        blocks.push((from, text.len(), long));
    }
    BlockWords { text, blocks }
}

/// A text field's words, block by block: for each block, each word of its rows' values once, as
/// written (a word is a longest run of letters and digits, so the tokenizer finds each again,
/// whole, and lowercases it as it would have in the value), separated by spaces; and whether a
/// value was longer than [`MAX_TERM`] (the block then gets [`LONG`] too).
///
/// The document's terms are the same as when each row's value is given: a word repeated in a
/// block is one term of it all the same. Given once, tantivy looks each up once: the URI's
/// words, half of what the index is given, are half as many (9.4 a row, 4.7 distinct a row
/// in version 7's blocks of 8 rows, on a generated log).
struct BlockWords {
    /// Every block's words, one after the other.
    text: String,
    /// The `i`th block's: its range of `text`, and whether a value was too long.
    blocks: Vec<(usize, usize, bool)>,
}

/// How an indexed field's values are entered in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Each row's value (the sum of a value's frequencies is its rows).
    EveryRow,
    /// Each value once a block ([`ONCE_A_BLOCK`]).
    OnceABlock,
    /// Each address of each row, once a row, normalised ([`ip_term`]).
    Addresses,
    /// The words of a text field, once a block ([`BlockWords`]).
    Words,
}

/// A column an indexed field takes its values from.
enum Col {
    /// A keyword column; whether its values are entered once a block.
    Str(StringArray, bool),
    /// A list column and its values (addresses already as [`ip_term`] makes them).
    List(ListArray, StringArray),
    /// A text field's words, block by block.
    Words(BlockWords),
}

/// The rows of a batch, shared by their documents.
struct BatchRows {
    /// The row number of the batch's first row.
    first: u64,
    row_f: Field,
    /// The rows of a document (the last one's may be fewer).
    block: usize,
    /// Each field's column.
    cols: Vec<(Field, Col)>,
    bodies: Vec<BodyTerms>,
}

/// A body field's terms in a batch: row `i`'s are `terms[ends[i - 1]..ends[i]]`.
struct BodyTerms {
    field: Field,
    terms: Vec<String>,
    ends: Vec<usize>,
}

/// Rows `start..end` of a batch as a tantivy document: the first's `row` number, then each
/// row's values of each indexed field (a value longer than [`MAX_TERM`] followed by [`LONG`]) and
/// its body terms.
///
/// tantivy reads a document's values four times: for its postings, for its fast fields, and
/// twice to store what is stored (nothing here). Only the postings need more than `row` (the
/// only fast field), and they are made first (`SegmentWriter::add_document`), so every read after
/// the first gives `row` alone. The three other reads of every value were 6% of an ingest's
/// instructions (callgrind). Should a tantivy ever make the postings in another read than the
/// first, the index would hold no terms, which every test of the index would show
/// (`index::tests`, the store's tests).
struct RowDoc {
    rows: std::sync::Arc<BatchRows>,
    start: usize,
    end: usize,
    /// Whether its values were given once.
    given: std::sync::atomic::AtomicBool,
}

/// A value of a [`RowDoc`].
#[derive(Debug, Clone, Copy)]
enum RowValue<'a> {
    Str(&'a str),
    U64(u64),
}

impl<'a> tantivy::schema::Value<'a> for RowValue<'a> {
    type ArrayIter = std::iter::Empty<Self>;
    type ObjectIter = std::iter::Empty<(&'a str, Self)>;

    fn as_value(&self) -> tantivy::schema::document::ReferenceValue<'a, Self> {
        use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf};
        match *self {
            RowValue::Str(s) => ReferenceValue::Leaf(ReferenceValueLeaf::Str(s)),
            RowValue::U64(n) => ReferenceValue::Leaf(ReferenceValueLeaf::U64(n)),
        }
    }
}

impl tantivy::schema::Document for RowDoc {
    type Value<'a> = RowValue<'a>;
    type FieldsValuesIter<'a> = RowValues<'a>;

    fn iter_fields_and_values(&self) -> RowValues<'_> {
        let again = self.given.swap(true, std::sync::atomic::Ordering::Relaxed);
        RowValues { rows: &self.rows, start: self.start, end: self.end, at: At::Row, long: None, row_only: again }
    }
}

/// Where a [`RowValues`] is.
#[derive(Clone, Copy)]
enum At {
    Row,
    /// At column `c`, row `i`; in a list (from `from`), at its value `j` of those before `end`.
    Col {
        c: usize,
        i: usize,
        list: Option<(usize, usize, usize)>,
    },
    /// At term `t` of body field `k`, of those before `stop`.
    Body {
        k: usize,
        t: usize,
        stop: usize,
    },
    Done,
}

/// The fields and values of a [`RowDoc`], field by field (the order tantivy groups them in):
/// `row`, then each column's values row by row, then the body terms. A `name` or `ip` value is
/// given for each row that has it (its frequency in the document is its rows), the other keywords
/// once a block, at the first row that has them ([`ONCE_A_BLOCK`]); a text field's words once for
/// the block ([`BlockWords`]).
struct RowValues<'a> {
    rows: &'a BatchRows,
    start: usize,
    end: usize,
    at: At,
    /// The field of a too-long value just given, which gets [`LONG`] next.
    long: Option<Field>,
    /// Gives `row` only ([`RowDoc`]).
    row_only: bool,
}

impl RowValues<'_> {
    /// Where body field `k`'s terms are.
    fn body(&self, k: usize) -> At {
        match self.rows.bodies.get(k) {
            None => At::Done,
            Some(b) => {
                let t = if self.start == 0 { 0 } else { b.ends[self.start - 1] };
                At::Body { k, t, stop: b.ends[self.end - 1] }
            }
        }
    }
}

impl<'a> Iterator for RowValues<'a> {
    type Item = (Field, RowValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rows;
        let str_value = |long: &mut Option<Field>, f: Field, v: &'a str| {
            if v.len() > MAX_TERM {
                *long = Some(f);
            }
            Some((f, RowValue::Str(v)))
        };
        loop {
            if let Some(f) = self.long.take() {
                return Some((f, RowValue::Str(LONG)));
            }
            match self.at {
                At::Row => {
                    self.at = if self.row_only { At::Done } else { At::Col { c: 0, i: self.start, list: None } };
                    return Some((r.row_f, RowValue::U64(r.first + self.start as u64)));
                }
                At::Col { c, i, list } => {
                    let Some((f, col)) = r.cols.get(c) else {
                        self.at = self.body(0);
                        continue;
                    };
                    if i >= self.end {
                        self.at = At::Col { c: c + 1, i: self.start, list: None };
                        continue;
                    }
                    let f = *f;
                    match col {
                        Col::Str(a, once) => {
                            self.at = At::Col { c, i: i + 1, list: None };
                            if a.is_valid(i) {
                                let v = a.value(i);
                                // Once a block: given at the first row that has it.
                                if *once && (self.start..i).any(|k| a.is_valid(k) && a.value(k) == v) {
                                    continue;
                                }
                                return str_value(&mut self.long, f, v);
                            }
                        }
                        Col::Words(w) => {
                            self.at = At::Col { c: c + 1, i: self.start, list: None };
                            let (from, to, long) = w.blocks[self.start / r.block];
                            if long {
                                self.long = Some(f);
                            }
                            if to > from {
                                return Some((f, RowValue::Str(&w.text[from..to])));
                            }
                        }
                        Col::List(l, values) => {
                            // On entering the list, its values' range (none when null).
                            let (from, j, end) = list.unwrap_or_else(|| {
                                let o = l.value_offsets();
                                let (a, b) = if l.is_valid(i) { (o[i] as usize, o[i + 1] as usize) } else { (0, 0) };
                                (a, a, b)
                            });
                            if j >= end {
                                self.at = At::Col { c, i: i + 1, list: None };
                                continue;
                            }
                            self.at = At::Col { c, i, list: Some((from, j + 1, end)) };
                            if values.is_valid(j) {
                                // Once a row (an address both claimed and the peer is one row's).
                                let v = values.value(j);
                                if (from..j).any(|k| values.is_valid(k) && values.value(k) == v) {
                                    continue;
                                }
                                return str_value(&mut self.long, f, v);
                            }
                        }
                    }
                }
                At::Body { k, t, stop } => {
                    if t < stop {
                        self.at = At::Body { k, t: t + 1, stop };
                        let b = &r.bodies[k];
                        return Some((b.field, RowValue::Str(&b.terms[t])));
                    }
                    self.at = self.body(k + 1);
                }
                At::Done => return None,
            }
        }
    }
}

/// The terms of a body ([`BODIES`]) into `out`; false when it has too many values, a value too
/// long, or is not JSON.
fn body_terms(text: &str, out: &mut Vec<String>) -> bool {
    fn walk(v: &serde_json::Value, path: &mut String, out: &mut Vec<String>) -> bool {
        use serde_json::Value;
        let before = out.len();
        let term = match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let len = path.len();
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(k);
                    let ok = walk(c, path, out);
                    path.truncate(len);
                    if !ok {
                        return false;
                    }
                }
                if out.len() > before {
                    return true;
                }
                // Present all the same (its text is `{…}`): empty, or of nulls and empty arrays.
                format!("{path}={{}}")
            }
            Value::Array(items) => {
                for c in items {
                    if !walk(c, path, out) {
                        return false;
                    }
                    if matches!(c, Value::Array(_)) && out.len() == before {
                        // An array in an array is an element present as its text (`[…]`).
                        out.push(format!("{path}=[]"));
                    }
                }
                return true;
            }
            Value::String(s) => format!("{path}={s}"),
            Value::Bool(b) => format!("{path}={b}"),
            Value::Number(n) => match n.as_f64() {
                Some(x) => format!("{path}#{}", number(x)),
                None => return false,
            },
            Value::Null => return true,
        };
        if term.len() > MAX_TERM || out.len() >= BODY_TERMS {
            return false;
        }
        out.push(term);
        true
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => walk(&v, &mut String::new(), out),
        Err(_) => false,
    }
}

/// A number as body terms spell it (`-0` is `0`).
fn number(x: f64) -> String {
    if x == 0.0 { "0".into() } else { x.to_string() }
}

/// Gives the rows (sorted) holding some auditIDs.
pub type IdRows<'a> = dyn FnMut(&[String]) -> Result<Vec<u64>, IndexError> + 'a;

/// An opened segment index.
pub struct SegmentIndex {
    index: Index,
    schema: Schema,
    /// The rows a document covers ([`block_rows`]) and the segment's.
    block: u64,
    rows: u64,
}

/// What narrows a filter: a tantivy query, words to look up in the whole values of a field, or
/// auditIDs (found through the segment's Parquet bloom filters, not the index), combined.
pub enum Cand {
    Query(Box<dyn Query>),
    /// Rows whose value of the field (a term) has every one of these words.
    ValueWords(&'static str, Vec<String>),
    /// Rows with a term of the field that starts with one of these prefixes, or is one of the
    /// exact terms.
    Prefixes(&'static str, Vec<String>, Vec<String>),
    Ids(Vec<String>),
    And(Vec<Cand>),
    Or(Vec<Cand>),
}

impl SegmentIndex {
    /// Opens the index in `dir`, of `version`, over a segment of `rows` rows.
    pub fn open(dir: &Path, version: u32, rows: u64) -> Result<SegmentIndex, IndexError> {
        let index = Index::open_in_dir(dir)?;
        register(&index);
        let schema = index.schema();
        Ok(SegmentIndex { index, schema, block: block_rows(version), rows })
    }

    /// The rows that may match `plan`'s filter, or `None` when the index cannot narrow it;
    /// `ids` gives the rows holding some auditIDs; `holds`, what the indexes searched hold.
    pub fn candidates(&self, plan: &Plan, holds: Holds, ids: &mut IdRows<'_>) -> Result<Option<Vec<u64>>, IndexError> {
        let Some(cand) = translate(&plan.filter, plan, holds) else { return Ok(None) };
        let searcher = self.index.reader()?.searcher();
        self.rows(&searcher, cand, ids).map(Some)
    }

    fn rows(&self, searcher: &tantivy::Searcher, cand: Cand, ids: &mut IdRows<'_>) -> Result<Vec<u64>, IndexError> {
        // The rows of the documents found: every row of each block.
        let search = |q: &dyn Query| Ok(blocks_rows(searcher.search(q, &Rows)?, self.block, self.rows));
        match cand {
            c if !c.has_ids() => search(self.query(searcher, c)?.as_ref()),
            Cand::Ids(list) => ids(&list),
            Cand::And(items) => {
                let mut out: Option<Vec<u64>> = None;
                for c in items {
                    let r = self.rows(searcher, c, ids)?;
                    out = Some(match out {
                        None => r,
                        Some(o) => o.into_iter().filter(|x| r.binary_search(x).is_ok()).collect(),
                    });
                }
                Ok(out.unwrap_or_default())
            }
            Cand::Or(items) => {
                let mut out = Vec::new();
                for c in items {
                    out.extend(self.rows(searcher, c, ids)?);
                }
                out.sort_unstable();
                out.dedup();
                Ok(out)
            }
            Cand::Query(_) | Cand::ValueWords(..) | Cand::Prefixes(..) => unreachable!("no auditIDs"),
        }
    }

    /// The tantivy query of a candidate tree without auditIDs.
    fn query(&self, searcher: &tantivy::Searcher, cand: Cand) -> Result<Box<dyn Query>, IndexError> {
        Ok(match cand {
            Cand::Query(q) => q,
            Cand::ValueWords(name, words) => {
                let f = field(&self.schema, name);
                let mut terms = Vec::new();
                for seg in searcher.segment_readers() {
                    let inv = seg.inverted_index(f)?;
                    let mut stream = inv.terms().stream()?;
                    while stream.advance() {
                        let Ok(value) = std::str::from_utf8(stream.key()) else { continue };
                        let have: Vec<String> = kaq_query::plan::literal::words(value).collect();
                        if words.iter().all(|w| have.contains(w)) {
                            terms.push(Term::from_field_text(f, value));
                        }
                    }
                }
                terms.push(Term::from_field_text(f, LONG));
                Box::new(TermSetQuery::new(terms))
            }
            Cand::Prefixes(name, prefixes, exact) => {
                let f = field(&self.schema, name);
                let mut terms: Vec<Term> = exact.iter().map(|t| Term::from_field_text(f, t)).collect();
                for seg in searcher.segment_readers() {
                    let inv = seg.inverted_index(f)?;
                    for p in &prefixes {
                        let range = inv.terms().range().ge(p.as_bytes());
                        let range = match crate::terms::prefix_end(p.as_bytes()) {
                            Some(end) => range.lt(end),
                            None => range,
                        };
                        let mut stream = range.into_stream()?;
                        while stream.advance() {
                            if let Ok(t) = std::str::from_utf8(stream.key()) {
                                terms.push(Term::from_field_text(f, t));
                            }
                        }
                    }
                }
                Box::new(TermSetQuery::new(terms))
            }
            Cand::And(items) => Box::new(BooleanQuery::intersection(
                items.into_iter().map(|c| self.query(searcher, c)).collect::<Result<_, _>>()?,
            )),
            Cand::Or(items) => Box::new(BooleanQuery::union(
                items.into_iter().map(|c| self.query(searcher, c)).collect::<Result<_, _>>()?,
            )),
            Cand::Ids(_) => unreachable!("auditIDs are looked up apart"),
        })
    }
}

impl Cand {
    fn has_ids(&self) -> bool {
        match self {
            Cand::Ids(_) => true,
            Cand::And(items) | Cand::Or(items) => items.iter().any(Cand::has_ids),
            _ => false,
        }
    }
}

/// Whether a plan's filter can be narrowed by indexes that hold `holds` at all.
pub fn indexable(plan: &Plan, holds: Holds) -> bool {
    translate(&plan.filter, plan, holds).is_some()
}

/// What narrows `p` to a superset of the rows where it holds, or `None`.
fn translate(p: &Pred, plan: &Plan, holds: Holds) -> Option<Cand> {
    match p {
        Pred::And(items) => {
            let qs: Vec<Cand> = items.iter().filter_map(|i| translate(i, plan, holds)).collect();
            (!qs.is_empty()).then_some(Cand::And(qs))
        }
        Pred::Or(items) => items.iter().map(|i| translate(i, plan, holds)).collect::<Option<Vec<_>>>().map(Cand::Or),
        Pred::Field { col, test } => {
            let name = match &plan.slots[*col].key {
                Some(FieldKey::Field(f)) => f.name,
                Some(FieldKey::Json { response, path }) if holds.bodies => return body_leaf(*response, path, test),
                _ => return None,
            };
            leaf(name, test, holds)
        }
        Pred::Text { test, .. } => {
            TEXTS.iter().chain(VALUE_TEXTS).map(|t| leaf(t, test, holds)).collect::<Option<Vec<_>>>().map(Cand::Or)
        }
        Pred::Not(_) | Pred::Const(_) => None,
    }
}

fn leaf(name: &str, test: &Test, holds: Holds) -> Option<Cand> {
    let s = schema_ref();
    // The term, or a value too long to be indexed.
    let term = |f: Field, t: &str| {
        let q =
            |t: &str| Box::new(TermQuery::new(Term::from_field_text(f, t), IndexRecordOption::Basic)) as Box<dyn Query>;
        Cand::Query(Box::new(BooleanQuery::union(vec![q(t), q(LONG)])))
    };
    if name == "id" {
        return match test {
            Test::Eq(v) => Some(Cand::Ids(vec![v.clone()])),
            _ => None,
        };
    }
    if matches!(name, "ip" | "client_ip" | "peer_ip") {
        // Every address of a row is in `ip`, normalised: a superset for the first and the last.
        let f = field(s, "ip");
        return match test {
            Test::Ip(ip) => Some(term(f, &normalize(*ip).to_string())),
            Test::Eq(v) => Some(term(f, &ip_term(v))),
            _ => None,
        };
    }
    if KEYWORDS.contains(&name) {
        let f = field(s, name);
        return match test {
            Test::Eq(v) => Some(term(f, v)),
            _ => None,
        };
    }
    if let Some(name) = VALUE_TEXTS.iter().find(|t| **t == name) {
        return match test {
            Test::Words(w) => Some(Cand::ValueWords(name, w.clone())),
            _ => None,
        };
    }
    if TEXTS.contains(&name) {
        let f = field(s, name);
        let Test::Words(w) = test else { return None };
        // Every word of the phrase, in any order (a superset: the filter checks the order). Not a
        // word longer than a term: tantivy dropped it (lowercase can be longer than the text, so
        // its value may have no `LONG`); nor, unless `holds.words`, one outside ASCII.
        let mut w: Vec<Cand> =
            w.iter().filter(|x| x.len() <= MAX_TERM && (holds.words || x.is_ascii())).map(|x| term(f, x)).collect();
        return match w.len() {
            0 => None,
            1 => w.pop(),
            _ => Some(Cand::And(w)),
        };
    }
    None
}

/// `request.PATH:VALUE` / `response.PATH:VALUE`: the rows whose body has VALUE at PATH as a string
/// or boolean, or as a number equal to it, and those whose body was not indexed. Not narrowed:
/// the whole body, numbered paths (`containers.0.image`: an index or a key), and values that
/// could equal an object's or array's text, or a missing value's.
fn body_leaf(response: bool, path: &[String], test: &Test) -> Option<Cand> {
    if path.is_empty() || path.iter().any(|p| p.parse::<usize>().is_ok()) {
        return None;
    }
    let name = if response { "response" } else { "request" };
    let p = path.join(".");
    if let Test::Exists = test {
        // A value at PATH, or under it (an object); an empty object is the term `PATH={}`.
        let prefixes = vec![format!("{p}="), format!("{p}#"), format!("{p}.")];
        return Some(Cand::Prefixes(name, prefixes, vec![BODY_UNINDEXED.to_string()]));
    }
    let Test::Dynamic(v) = test else { return None };
    if v.is_empty() || v.starts_with(['{', '[']) {
        return None;
    }
    let f = field(schema_ref(), name);
    let mut terms = vec![Term::from_field_text(f, &format!("{p}={v}")), Term::from_field_text(f, BODY_UNINDEXED)];
    if let Ok(x) = v.trim().parse::<f64>()
        && x.is_finite()
    {
        terms.push(Term::from_field_text(f, &format!("{p}#{}", number(x))));
    }
    Some(Cand::Query(Box::new(TermSetQuery::new(terms))))
}

fn schema_ref() -> &'static Schema {
    static S: std::sync::LazyLock<Schema> = std::sync::LazyLock::new(schema);
    &S
}

/// Every row of the documents that start at `found` (sorted), each covering up to `block` rows
/// of a segment of `rows`: sorted and distinct (a block cut short by the end of its batch is
/// followed by one that starts sooner than `block` rows on).
fn blocks_rows(found: Vec<u64>, block: u64, rows: u64) -> Vec<u64> {
    if block == 1 {
        return found;
    }
    let mut out = Vec::with_capacity(found.len() * block as usize);
    let mut next = 0;
    for r in found {
        let end = (r + block).min(rows);
        out.extend(r.max(next)..end);
        next = next.max(end);
    }
    out
}

/// Collects the `row` numbers of matching documents, sorted.
struct Rows;

struct SegmentRows {
    col: tantivy::columnar::Column<u64>,
    rows: Vec<u64>,
}

impl Collector for Rows {
    type Fruit = Vec<u64>;
    type Child = SegmentRows;

    fn for_segment(&self, _: SegmentOrdinal, seg: &SegmentReader) -> tantivy::Result<SegmentRows> {
        Ok(SegmentRows { col: seg.fast_fields().u64("row")?, rows: Vec::new() })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut v: Vec<u64> = fruits.into_iter().flatten().collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }
}

impl SegmentCollector for SegmentRows {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(r) = self.col.first(doc) {
            self.rows.push(r);
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_give_their_rows_sorted_once_within_the_segment() {
        assert_eq!(blocks_rows(vec![0, 3, 9], 1, 10), [0, 3, 9]);
        // Blocks at 0 (cut short at 5 by its batch's end), 5 and 13; the segment ends at 15.
        assert_eq!(blocks_rows(vec![0, 5, 13], 8, 15), (0..15).collect::<Vec<_>>());
        assert_eq!(blocks_rows(vec![2, 16], 8, 20), [2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19]);
        assert!(blocks_rows(vec![], 8, 20).is_empty());
    }

    /// An index built from batches of uneven sizes (blocks cut short at each batch's end), asked
    /// for every row's own values: each row is among the candidates, which are few, sorted,
    /// distinct and rows of the segment. A body on every row keeps its own terms (a batch's
    /// bodies hold far more than [`BODY_TERMS`] values together).
    #[test]
    fn every_row_is_found_through_its_block() {
        let event = |i: usize| {
            let request: serde_json::Value = (0..12).map(|k| (format!("k{k}"), format!("v{i}-{k}"))).collect();
            serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
                "auditID": format!("0b2f1c7e-1111-4a2b-9c3d-{i:012}"), "stage": "ResponseComplete",
                "requestURI": format!("/api/v1/namespaces/ns{}/pods/q{}", i % 3, i / 3), "verb": "get",
                "userAgent": format!("agent{}/1.0", i / 6),
                "user": {"username": format!("u{}", i / 4)}, "sourceIPs": [format!("10.0.{}.{}", i / 250, i % 250)],
                "objectRef": {"resource": "pods", "namespace": format!("ns{}", i % 3), "name": format!("p{i}")},
                "responseStatus": if i % 5 == 2 { serde_json::json!({"code": 200}) } else {
                    serde_json::json!({"code": 403, "message": format!("denied r{}", i / 5)})
                },
                "requestObject": request,
                "requestReceivedTimestamp": "2026-11-20T05:00:00Z",
            })
            .to_string()
        };
        let sizes = [5, 3, 11, 1, 8, 600, 9];
        let dir = tempfile::tempdir().unwrap();
        // An index in `dir` of documents of up to `block` rows, from batches of `sizes` rows; the
        // rows it holds.
        let build = |dir: &Path, block: usize| {
            let builder = Builder::with_blocks(dir, block);
            let mut sink = builder.sink();
            let mut i = 0;
            for n in sizes {
                let mut b = kaq_columnar::EventBatchBuilder::with_capacity(n);
                for _ in 0..n {
                    kaq_schema::decode_records_with_text(&event(i), &Default::default(), &mut |r| {
                        b.append(&r.unwrap().0)
                    });
                    i += 1;
                }
                sink.rows(&b.finish()).unwrap();
            }
            drop(sink);
            let built = builder.finish().unwrap();
            assert_eq!(built.rows, i as u64);
            built.rows
        };
        let mut no_ids = |_: &[String]| -> Result<Vec<u64>, IndexError> { unreachable!() };
        // An index of rows, as versions 4 to 6 wrote them, read as one of version 6: every row's
        // own value finds that row alone.
        let rows_dir = dir.path().join("rows");
        let total = build(&rows_dir, 1);
        let idx = SegmentIndex::open(&rows_dir, 6, total).unwrap();
        let holds = Holds::of(6, Some(unicode()));
        for row in 0..total {
            for q in [format!("name:p{row}"), format!("uri:q{}", row / 3), format!("request.k3:v{row}-3")] {
                let plan = kaq_query::compile(&q, &Default::default()).unwrap();
                let rows = idx.candidates(&plan, holds, &mut no_ids).unwrap().expect("narrowed");
                let want: Vec<u64> = if q.starts_with("uri") {
                    (row / 3 * 3..(row / 3 * 3 + 3).min(total)).collect()
                } else {
                    vec![row]
                };
                assert_eq!(rows, want, "`{q}`");
            }
        }

        let idx_dir = dir.path().join("index");
        let total = build(&idx_dir, BLOCK as usize);
        let idx = SegmentIndex::open(&idx_dir, VERSION, total).unwrap();
        let holds = Holds::of(VERSION, Some(unicode()));
        for row in 0..total {
            for q in
                [format!("name:p{row}"), format!("ip:10.0.{}.{}", row / 250, row % 250), format!("request.k7:v{row}-7")]
            {
                let plan = kaq_query::compile(&q, &Default::default()).unwrap();
                let rows = idx.candidates(&plan, holds, &mut no_ids).unwrap().expect("narrowed");
                assert!(rows.contains(&row), "`{q}`: {rows:?}");
                assert!(rows.len() <= BLOCK as usize, "`{q}`: {rows:?}");
                assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows.iter().all(|r| *r < total), "`{q}`: {rows:?}");
            }
        }
        // Text adjacent rows share (given once a block; a null between equal messages), and
        // words of a value adjacent rows share (`ua`, looked up in its values).
        for row in 0..total {
            let mut queries = vec![(format!("uri:q{}", row / 3), 3), (format!("ua:agent{}", row / 6), 6)];
            if row % 5 != 2 {
                queries.push((format!("message:r{}", row / 5), 5));
            }
            for (q, run) in queries {
                let plan = kaq_query::compile(&q, &Default::default()).unwrap();
                let rows = idx.candidates(&plan, holds, &mut no_ids).unwrap().expect("narrowed");
                assert!(rows.contains(&row), "`{q}`: {rows:?}");
                // A run of rows is in as many blocks at most (blocks are cut short at a batch's end).
                assert!(rows.len() <= run * BLOCK as usize, "`{q}`: {rows:?}");
            }
        }
        // Values adjacent rows share (a block's rows give each once): every row that has them.
        for user in 0..total.div_ceil(4) {
            let plan = kaq_query::compile(&format!("user:u{user}"), &Default::default()).unwrap();
            let rows = idx.candidates(&plan, holds, &mut no_ids).unwrap().expect("narrowed");
            assert!((user * 4..(user * 4 + 4).min(total)).all(|r| rows.contains(&r)), "u{user}: {rows:?}");
            assert!(rows.len() <= 2 * BLOCK as usize, "u{user}: {rows:?}");
        }
        // A value many rows share: every one of them.
        let plan = kaq_query::compile("ns:ns1", &Default::default()).unwrap();
        let rows = idx.candidates(&plan, holds, &mut no_ids).unwrap().expect("narrowed");
        assert!((0..total).filter(|r| r % 3 == 1).all(|r| rows.contains(&r)));
    }

    /// The text fields' tokenizer gives the language's words (`literal::words`) of any text: the
    /// index and the query agree on every word, a word-final `Σ` included.
    #[test]
    fn tokens_are_the_languages_words() {
        let tokens = |text: &str| {
            let mut w = Words::default();
            let mut stream = w.token_stream(text);
            let mut out = Vec::new();
            while stream.advance() {
                let t = stream.token();
                assert!(text.is_char_boundary(t.offset_from) && text.is_char_boundary(t.offset_to));
                out.push(t.text.clone());
            }
            out
        };
        let alphabet: Vec<char> = "aZ09 -_/.:?=&ΣσςΟΔßİıŉǅẞΐⅫ٣一😀\u{301}\u{0}\t\n\"'%".chars().collect();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let text: String = (0..len).map(|k| alphabet[((x >> (5 * k)) % alphabet.len() as u64) as usize]).collect();
            let want: Vec<String> = kaq_query::plan::literal::words(&text).collect();
            assert_eq!(tokens(&text), want, "{text:?}");
        }
        assert_eq!(tokens("/api/v1/namespaces/ΟΔΟΣ/pods"), ["api", "v1", "namespaces", "οδος", "pods"]);
        assert_eq!(tokens(""), Vec::<String>::new());
        assert_eq!(tokens(&"A".repeat(100)), ["a".repeat(100)]);
    }

    /// A block's words, given to the tokenizer as one text, are the words of its rows' values:
    /// the same set of terms, whatever the values (letters that lowercase to more than one
    /// character, a word-final `Σ`, marks, nulls, values repeated or differing in case), and the
    /// block knows when a value was too long for a term.
    #[test]
    fn a_blocks_words_are_its_rows_words() {
        use std::collections::BTreeSet;
        let tokens = |text: &str| -> BTreeSet<String> {
            let mut w = Words::default();
            let mut stream = w.token_stream(text);
            let mut out = BTreeSet::new();
            while stream.advance() {
                out.insert(stream.token().text.clone());
            }
            out
        };
        let alphabet: Vec<char> = "aAZ09 -_/.:?=&ΣσςΟΔßİıŉǅẞΐⅫ٣一😀\u{301}\u{0}\t\n\"'%".chars().collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..400 {
            let n = (next() % 40) as usize;
            let mut values: Vec<Option<String>> = Vec::with_capacity(n);
            for i in 0..n {
                let r = next();
                values.push(match r % 7 {
                    0 => None,
                    // The row before's value again, or in other case.
                    1 if i > 0 => values[i - 1].clone(),
                    2 if i > 0 => values[i - 1].as_ref().map(|v| v.to_uppercase()),
                    _ => {
                        let len = (r >> 3) as usize % 24;
                        Some((0..len).map(|k| alphabet[((r >> (2 * k)) % alphabet.len() as u64) as usize]).collect())
                    }
                });
            }
            if round % 50 == 0 && n > 0 {
                values[n / 2] = Some(format!("{} tail", "b".repeat(MAX_TERM)));
            }
            let array: StringArray = values.iter().map(|v| v.as_deref()).collect();
            for block in [1, 3, 8] {
                let w = block_words(&array, block);
                assert_eq!(w.blocks.len(), n.div_ceil(block), "{values:?}");
                for (k, &(from, to, long)) in w.blocks.iter().enumerate() {
                    let rows = &values[k * block..((k + 1) * block).min(n)];
                    let want: BTreeSet<String> = rows.iter().flatten().flat_map(|v| tokens(v)).collect();
                    assert_eq!(tokens(&w.text[from..to]), want, "block {k} of {block}: {rows:?}");
                    assert_eq!(long, rows.iter().flatten().any(|v| v.len() > MAX_TERM), "block {k} of {block}");
                }
            }
        }
    }

    /// An index before version 6, or built with other Unicode tables, is not asked for a word
    /// outside ASCII (it may hold it otherwise lowercased, or split); its other words still
    /// narrow. No index is asked for a word longer than a term.
    #[test]
    fn indexes_are_asked_only_for_words_they_hold_as_the_language_does() {
        let now = unicode();
        let new = Holds::of(VERSION, Some(now));
        for old in [Holds::of(5, None), Holds::of(6, None), Holds::of(6, Some("1.0.0"))] {
            assert!(!old.words);
            let plan = |q: &str| kaq_query::compile(q, &Default::default()).unwrap();
            assert!(indexable(&plan("message:ΟΔΟΣ"), new));
            assert!(!indexable(&plan("message:ΟΔΟΣ"), old));
            assert!(!indexable(&plan("message:οδοσ"), old));
            assert!(!indexable(&plan("ΟΔΟΣ"), old));
            assert!(indexable(&plan("message:\"ΟΔΟΣ blocked\""), old));
            assert!(indexable(&plan("message:blocked"), old));
        }
        assert_eq!(Holds::all([(4, Some(now)), (6, Some(now))]), Holds { bodies: false, words: false });
        assert_eq!(Holds::all([(5, None), (6, Some(now))]), Holds { bodies: true, words: false });
        assert_eq!(Holds::all([(6, Some(now))]), new);
        assert_eq!(Holds::all([]), new);
        // 43,690 bytes in the query, 65,535 lowercased (`i̇`).
        let long = format!("message:{}", "İ".repeat(21_845));
        assert!(!indexable(&kaq_query::compile(&long, &Default::default()).unwrap(), new));
        let fits = format!("message:{}", "İ".repeat(21_843));
        assert!(indexable(&kaq_query::compile(&fits, &Default::default()).unwrap(), new));
    }

    /// The index's term of an address is its normalised spelling whenever it parses, however it
    /// is written, and the text as written otherwise (the shortcut for dotted quads included).
    #[test]
    fn ip_terms_are_normalised_addresses() {
        let full = |s: &str| match s.parse::<IpAddr>() {
            Ok(ip) => normalize(ip).to_string(),
            Err(_) => s.to_string(),
        };
        let mut cases: Vec<String> = [
            "10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "010.0.0.1",
            "10.0.0.01",
            " 10.0.0.1",
            "10.0.0.1 ",
            "10.0.0",
            "10.0.0.256",
            "::ffff:10.0.0.1",
            "::FFFF:0a00:0001",
            "2001:DB8:0:0:0:0:0:1",
            "2001:db8::1",
            "fe80::1%eth0",
            "",
            "not an address",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u32 = 0x9E37_79B9;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            cases.push(std::net::Ipv4Addr::from(x).to_string());
        }
        for s in &cases {
            assert_eq!(ip_term(s), full(s), "{s:?}");
        }
        assert_eq!(ip_term("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(ip_term("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(ip_term("010.0.0.1"), "010.0.0.1");
    }
}
