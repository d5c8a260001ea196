//! The values a store holds, read from its indexes' term dictionaries: what a REPL completes after
//! `ns:`, `user:` or `verb:`, most frequent first. Only the dictionaries are read (no postings,
//! no Parquet), so a lookup costs milliseconds whatever the store's size.
//!
//! Counts are documents (rows) per value summed over segments: every stage of a request counts,
//! so they rank values rather than count requests. Segments without an index add nothing.

use std::collections::HashMap;

use tantivy::Index;

use crate::{Error, SEGMENTS, Store};

/// Terms scanned at most per segment and field when looking for values that contain the prefix
/// (after those that start with it): enough for names and users, bounded for `id`-like fields.
const SUBSTRING_SCAN: usize = 200_000;

/// The term dictionaries of a store's segments, opened once for many look-ups.
pub struct Terms {
    readers: Vec<tantivy::Searcher>,
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

    /// Opens the term dictionaries of every live, indexed segment.
    pub fn terms(&self) -> Result<Terms, Error> {
        let mut readers = Vec::new();
        for s in &self.manifest.segments {
            let Some(name) = &s.index else { continue };
            let dir = self.dir.join(SEGMENTS).join(name);
            let ierr = |e: tantivy::TantivyError| Error::Index { path: dir.clone(), why: e.to_string() };
            let index = Index::open_in_dir(&dir).map_err(ierr)?;
            readers.push(index.reader().map_err(ierr)?.searcher());
        }
        Ok(Terms { readers })
    }
}

impl Terms {
    /// See [`Store::top_terms`].
    pub fn top(&self, field: &str, prefix: &str, limit: usize) -> Vec<(String, u64)> {
        let mut starts: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut contains: HashMap<Vec<u8>, u64> = HashMap::new();
        let needle = prefix.to_lowercase();
        for searcher in &self.readers {
            let Ok(f) = searcher.schema().get_field(field) else { return Vec::new() };
            if !is_raw(searcher, f) {
                return Vec::new();
            }
            for seg in searcher.segment_readers() {
                let Ok(inverted) = seg.inverted_index(f) else { continue };
                let dict = inverted.terms();
                let mut range = dict.range().ge(prefix.as_bytes());
                if let Some(end) = prefix_end(prefix.as_bytes()) {
                    range = range.lt(end);
                }
                if let Ok(mut stream) = range.into_stream() {
                    while stream.advance() {
                        *starts.entry(stream.key().to_vec()).or_default() += u64::from(stream.value().doc_freq);
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
                    if !key.starts_with(prefix.as_bytes())
                        && String::from_utf8_lossy(key).to_lowercase().contains(&needle)
                    {
                        *contains.entry(key.to_vec()).or_default() += u64::from(stream.value().doc_freq);
                    }
                }
            }
        }
        let mut out = ranked(starts);
        out.truncate(limit);
        if out.len() < limit {
            let mut more = ranked(contains);
            more.truncate(limit - out.len());
            out.extend(more);
        }
        out
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
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
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
