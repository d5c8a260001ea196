//! The values a store holds: what a REPL completes after `ns:`, `user:` or `verb:`, most frequent
//! first. `name` and `ip` are read from the index's term dictionaries, no Parquet (an index whose
//! documents are blocks of rows also reads each value's postings, whose frequencies sum to its
//! rows: a pass over the field's postings). Dense fields the index leaves out (`verb`,
//! `resource`, `stage`, `decision`…), and those it enters once a block without counting their
//! rows (`user`, `ns`, `ua`…), are counted once from their dictionary-encoded
//! columns ([`kaq_query::columnar`]) and kept for the next look-up.
//!
//! Counts are rows per value summed over segments: every stage of a request counts, so they rank
//! values rather than count requests. When a segment has no index this kaq uses (one written by a
//! kaq before index version 9, not yet compacted), `name` and `ip` are counted from the columns
//! too.

use std::collections::HashMap;

use tantivy::Index;

use crate::{Error, SEGMENTS, Store};

/// Terms scanned at most per segment and field when looking for values that contain the prefix
/// (after those that start with it): enough for names and users, bounded for `id`-like fields.
const SUBSTRING_SCAN: usize = 200_000;

/// Keyword fields the index leaves out whose values are few (tens to thousands): a query's value
/// for one of them is checked against the values counted from their columns (once per [`Terms`]).
/// Not `id`, `uid`, `object_uid` or `resource_version`: nearly every row has its own.
const COUNTED: &[&str] = &[
    "verb",
    "resource",
    "stage",
    "level",
    "decision",
    "user_kind",
    "status",
    "apigroup",
    "apiversion",
    "groups",
    "as_groups",
];
/// Longer values are indexed as a marker term, not as themselves: no look-up can tell.
const MAX_TERM: usize = 65_530;

/// The term dictionaries of a store's segments, opened once for many look-ups.
pub struct Terms {
    readers: Vec<tantivy::Searcher>,
    segments: Vec<std::path::PathBuf>,
    /// Counts of fields read from columns, by field.
    counted: std::sync::Mutex<HashMap<String, HashMap<Vec<u8>, u64>>>,
}

impl Store {
    /// The most frequent values of the keyword `field` (a field's short name: `ns`, `user`,
    /// `verb`, `resource`…) that start with `prefix`, with their row counts, most frequent first
    /// (ties by value); when fewer than `limit` start with it, values that contain it in any case
    /// follow. Unknown or unindexed fields give nothing.
    ///
    /// ```no_run
    /// let store = kaq_store::Store::open("kaq-store")?;
    /// for (ns, rows) in store.top_terms("ns", "prod", 5)? {
    ///     println!("{ns}: {rows} rows");
    /// }
    /// # Ok::<(), kaq_store::Error>(())
    /// ```
    pub fn top_terms(&self, field: &str, prefix: &str, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        Ok(self.terms()?.top(field, prefix, limit))
    }

    /// Opens the term dictionaries of every live, indexed segment (of the current manifest, when
    /// a compaction or prune deleted files of this handle's).
    pub fn terms(&self) -> Result<Terms, Error> {
        match self.terms_of_manifest() {
            Err(_) if self.files_missing() => Store::open(&self.dir)?.terms_of_manifest(),
            r => r,
        }
    }

    fn terms_of_manifest(&self) -> Result<Terms, Error> {
        let mut readers = Vec::new();
        for s in &self.manifest.segments {
            // An index of another version is not opened (one of FSTs, before version 9, cannot be).
            let Some(name) = s.usable_index() else { continue };
            let dir = self.dir.join(SEGMENTS).join(name);
            let ierr = |e: tantivy::TantivyError| Error::Index { path: dir.clone(), error: e.into() };
            let index = Index::open_in_dir(&dir).map_err(ierr)?;
            readers.push(index.reader().map_err(ierr)?.searcher());
        }
        Ok(Terms { readers, segments: self.segment_paths(), counted: Default::default() })
    }
}

impl Terms {
    /// See [`Store::top_terms`].
    pub fn top(&self, field: &str, prefix: &str, limit: usize) -> Vec<(String, u64)> {
        let mut starts: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut contains: HashMap<Vec<u8>, u64> = HashMap::new();
        let needle = prefix.to_lowercase();
        if self.readers.first().is_some_and(|r| r.schema().get_field(field).is_err()) {
            return self.top_counted(field, prefix, limit);
        }
        // A segment without an index this kaq uses (written by a kaq before index version 9, not
        // yet compacted): every value of the field from the columns, where it is a keyword.
        if self.readers.len() < self.segments.len() && self.count_by(field).is_some() {
            return self.top_counted(field, prefix, limit);
        }
        // An index that does not count the field's rows (the keywords entered once a block,
        // `ONCE_A_BLOCK`) leaves them to its column.
        if crate::index::ONCE_A_BLOCK.contains(&field)
            && self.readers.iter().any(|r| r.schema().get_field(field).is_ok_and(|f| !has_freqs(r, f)))
        {
            return self.top_counted(field, prefix, limit);
        }
        for searcher in &self.readers {
            let Ok(f) = searcher.schema().get_field(field) else { return Vec::new() };
            if !is_raw(searcher, f) {
                return Vec::new();
            }
            // A value's rows: the sum of its frequencies where the index keeps them (`name` and
            // `ip`: documents of blocks of rows), else its documents (the bodies').
            let freqs = has_freqs(searcher, f);
            for seg in searcher.segment_readers() {
                let Ok(inverted) = seg.inverted_index(f) else { continue };
                let rows = |ti: &tantivy::postings::TermInfo| {
                    if freqs { rows_of(&inverted, ti) } else { u64::from(ti.doc_freq) }
                };
                let dict = inverted.terms();
                let mut range = dict.range().ge(prefix.as_bytes());
                if let Some(end) = prefix_end(prefix.as_bytes()) {
                    range = range.lt(end);
                }
                if let Ok(mut stream) = range.into_stream() {
                    while stream.advance() {
                        if crate::index::is_marker(stream.key()) {
                            continue;
                        }
                        *starts.entry(stream.key().to_vec()).or_default() += rows(stream.value());
                    }
                }
                if starts.len() >= limit || needle.is_empty() {
                    continue;
                }
                let Ok(mut stream) = dict.stream() else { continue };
                let mut n = 0;
                while n < SUBSTRING_SCAN && stream.advance() {
                    n += 1;
                    let key = stream.key();
                    if !crate::index::is_marker(key)
                        && !key.starts_with(prefix.as_bytes())
                        && String::from_utf8_lossy(key).to_lowercase().contains(&needle)
                    {
                        *contains.entry(key.to_vec()).or_default() += rows(stream.value());
                    }
                }
            }
        }
        first_then(starts, contains, limit)
    }

    /// [`top`](Self::top) for a keyword field the index does not hold, or holds without its rows:
    /// its values counted from its column (every row of every segment, once).
    fn top_counted(&self, field: &str, prefix: &str, limit: usize) -> Vec<(String, u64)> {
        let mut counted = self.counted.lock().expect("unpoisoned");
        if !counted.contains_key(field) {
            // Not kept when the columns could not be read: the next look-up tries again.
            let Some(counts) = self.count(field) else { return Vec::new() };
            counted.insert(field.to_string(), counts);
        }
        let needle = prefix.to_lowercase();
        let (mut starts, mut contains) = (HashMap::new(), HashMap::new());
        for (k, n) in &counted[field] {
            if k.starts_with(prefix.as_bytes()) {
                starts.insert(k.clone(), *n);
            } else if !needle.is_empty() && String::from_utf8_lossy(k).to_lowercase().contains(&needle) {
                contains.insert(k.clone(), *n);
            }
        }
        first_then(starts, contains, limit)
    }

    /// Rows per value of a keyword or address field (or of `ua` and `authz_reason`, text fields
    /// the index holds whole), from the columns (addresses as written); `None` for other fields,
    /// or when a column cannot be read.
    fn count(&self, field: &str) -> Option<HashMap<Vec<u8>, u64>> {
        let f = self.count_by(field)?;
        let opts = kaq_query::Options { all_stages: true, ..Default::default() };
        let plan = kaq_query::compile(&format!("| count by {}", f.name), &opts).ok()?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let scanned = kaq_query::columnar::scan(&plan, &self.segments, threads, None)?.ok()?;
        let mut rows = scanned.rows;
        if !scanned.first_step_done {
            let steps: Vec<kaq_query::plan::Step> = plan.steps.iter().map(|s| s.0.clone()).collect();
            rows = kaq_query::pipeline::run(&steps, rows);
        }
        Some(
            rows.into_iter()
                .filter_map(|r| match (&r.vals[0], &r.vals[1]) {
                    (kaq_query::Val::Str(v), kaq_query::Val::Int(n)) => Some((v.as_bytes().to_vec(), *n as u64)),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The field [`count`](Self::count) counts for `field`, when it can.
    fn count_by(&self, field: &str) -> Option<&'static kaq_schema::Field> {
        let whole = |f: &kaq_schema::Field| {
            matches!(f.ty, kaq_schema::FieldType::Keyword | kaq_schema::FieldType::Ip)
                || crate::index::ONCE_A_BLOCK.contains(&f.name)
        };
        kaq_schema::lookup(field).filter(|f| whole(f) && f.column.is_some())
    }
}

/// What a query's warnings ask of a store: whether a keyword value occurs in it, from the term
/// dictionaries for indexed fields (every live segment must have its index) and from the columns
/// for the fields in `COUNTED`. Other fields: `None`.
impl kaq_query::KnownValues for Terms {
    fn holds(&self, field: &str, value: &str) -> Option<bool> {
        if self.segments.is_empty() || value.len() > MAX_TERM || field == "ip" {
            return None;
        }
        if COUNTED.contains(&field) {
            let mut counted = self.counted.lock().expect("unpoisoned");
            if !counted.contains_key(field) {
                counted.insert(field.to_string(), self.count(field)?);
            }
            return Some(counted[field].contains_key(value.as_bytes()));
        }
        if self.readers.len() != self.segments.len() {
            return None; // a segment without an index could hold it
        }
        for searcher in &self.readers {
            let f = searcher.schema().get_field(field).ok().filter(|f| is_raw(searcher, *f))?;
            for seg in searcher.segment_readers() {
                let dict = seg.inverted_index(f).ok()?;
                if dict.terms().get(value.as_bytes()).ok()?.is_some() {
                    return Some(true);
                }
            }
        }
        Some(false)
    }

    fn near(&self, field: &str, value: &str) -> Vec<String> {
        if COUNTED.contains(&field) {
            return self.top(field, "", 100_000).into_iter().map(|(v, _)| v).collect();
        }
        // Values sharing the first letter (in either case), then those containing it: a typo
        // seldom starts a word.
        let Some(first) = value.chars().next() else { return Vec::new() };
        let mut out: Vec<String> = Vec::new();
        for c in [first.to_lowercase().to_string(), first.to_uppercase().to_string()] {
            for (v, _) in self.top(field, &c, 2_000) {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    }

    fn describe(&self) -> &str {
        "the store"
    }
}

/// [`Terms`] opened on the first question: a query whose values need no look-up opens no index.
pub struct StoreValues<'s> {
    store: &'s Store,
    terms: std::sync::OnceLock<Option<Terms>>,
}

impl Store {
    /// The values this store holds, for [`kaq_query::query_warnings`].
    pub fn known_values(&self) -> StoreValues<'_> {
        StoreValues { store: self, terms: std::sync::OnceLock::new() }
    }
}

impl StoreValues<'_> {
    fn terms(&self) -> Option<&Terms> {
        self.terms.get_or_init(|| self.store.terms().ok()).as_ref()
    }
}

impl kaq_query::KnownValues for StoreValues<'_> {
    fn holds(&self, field: &str, value: &str) -> Option<bool> {
        self.terms()?.holds(field, value)
    }

    fn near(&self, field: &str, value: &str) -> Vec<String> {
        self.terms().map(|t| t.near(field, value)).unwrap_or_default()
    }

    fn describe(&self) -> &str {
        "the store"
    }
}

/// The values that start with the text, most frequent first; when fewer than `limit`, those that
/// contain it follow.
fn first_then(starts: HashMap<Vec<u8>, u64>, contains: HashMap<Vec<u8>, u64>, limit: usize) -> Vec<(String, u64)> {
    let mut out = ranked(starts);
    out.truncate(limit);
    if out.len() < limit {
        let mut more = ranked(contains);
        more.truncate(limit - out.len());
        out.extend(more);
    }
    out
}

/// The rows of a term of a field kept with frequencies: its frequencies summed (a keyword value is
/// entered once for each row of a block that has it).
fn rows_of(inverted: &tantivy::InvertedIndexReader, ti: &tantivy::postings::TermInfo) -> u64 {
    let Ok(mut postings) =
        inverted.read_block_postings_from_terminfo(ti, tantivy::schema::IndexRecordOption::WithFreqs)
    else {
        return u64::from(ti.doc_freq);
    };
    let mut n = 0;
    while !postings.docs().is_empty() {
        n += postings.freqs().iter().map(|&f| u64::from(f)).sum::<u64>();
        postings.advance();
    }
    n
}

/// Whether the index keeps the field's term frequencies.
fn has_freqs(searcher: &tantivy::Searcher, f: tantivy::schema::Field) -> bool {
    match searcher.schema().get_field_entry(f).field_type() {
        tantivy::schema::FieldType::Str(o) => o.get_indexing_options().is_some_and(|i| i.index_option().has_freq()),
        _ => false,
    }
}

/// Whether the field holds whole values (keywords), not words (text fields, whose terms are
/// lowercased pieces: not values a user could type whole).
fn is_raw(searcher: &tantivy::Searcher, f: tantivy::schema::Field) -> bool {
    match searcher.schema().get_field_entry(f).field_type() {
        tantivy::schema::FieldType::Str(o) => o.get_indexing_options().is_some_and(|i| i.tokenizer() == "raw"),
        _ => false,
    }
}

/// Highest count first, then by value.
fn ranked(m: HashMap<Vec<u8>, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> =
        m.into_iter().filter_map(|(k, n)| String::from_utf8(k).ok().map(|k| (k, n))).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The smallest byte string greater than every string starting with `prefix` (`None`: no bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_end_bounds_the_range() {
        assert_eq!(super::prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(super::prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(super::prefix_end(b""), None);
    }
}
