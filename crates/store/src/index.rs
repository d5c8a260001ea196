//! A tantivy index per segment, over the same rows (document `row` = Parquet row number): keyword
//! fields as whole terms, text fields as words, `code` as a number. It stores nothing the Parquet
//! file has — only postings and the `row` number.
//!
//! The index only narrows: a query's condition is translated where every part can be (equality
//! on keywords, words and phrases in text, code ranges, addresses), into a query whose rows are a
//! superset of the matches; the full condition is then tested on those rows, read from Parquet
//! (kaq-query's residual filter). Anything else (negations, wildcards, comparisons on other
//! fields…) reads the whole segment.

use std::ops::Bound;
use std::path::Path;

use kaq_query::Val;
use kaq_query::extract::Getter;
use kaq_query::plan::{FieldKey, Plan, Pred, Test};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{BooleanQuery, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{DocId, Index, IndexWriter, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

/// Keyword fields indexed whole (list fields: each element).
const KEYWORDS: &[&str] = &[
    "id",
    "stage",
    "verb",
    "user",
    "groups",
    "as",
    "ip",
    "client_ip",
    "peer_ip",
    "resource",
    "subresource",
    "ns",
    "name",
    "apigroup",
    "status",
    "reason",
    "decision",
    "user_kind",
];
/// Text fields indexed as words (the free-text fields).
const TEXTS: &[&str] = &["uri", "ua", "message", "authz_reason", "exec_command"];
const TOKENIZER: &str = "kaq_words";

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_u64_field("row", FAST);
    // Only postings: no field norms or frequencies (nothing is scored), no positions (a phrase is
    // narrowed by its words; the residual filter checks the order).
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    );
    for k in KEYWORDS {
        b.add_text_field(k, keyword.clone());
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
    b.add_i64_field("code", INDEXED | FAST);
    b.build()
}

/// The tokenizer of text fields: split at every character that is not a letter or digit, then
/// lowercase — `kaq_query::plan::literal::words`, with no length limit (tantivy's default drops
/// words over 40 bytes, which would lose matches).
fn register(index: &Index) {
    index
        .tokenizers()
        .register(TOKENIZER, TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).build());
}

fn field(s: &Schema, name: &str) -> Field {
    s.get_field(name).expect("a field of the index schema")
}

/// Builds the index of a finished segment file in `dir` (which must not exist).
pub fn build(segment: &Path, dir: &Path) -> Result<(), String> {
    let s = schema();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let index = Index::create_in_dir(dir, s.clone()).map_err(|e| e.to_string())?;
    register(&index);
    let mut w: IndexWriter = index.writer_with_num_threads(2, 512 << 20).map_err(|e| e.to_string())?;
    w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    let getters: Vec<(Field, Getter, bool)> = KEYWORDS
        .iter()
        .map(|k| (field(&s, k), getter(k), false))
        .chain(TEXTS.iter().map(|t| (field(&s, t), getter(t), true)))
        .collect();
    let (row_f, code_f, code_g) = (field(&s, "row"), field(&s, "code"), getter("code"));
    let mut row = 0u64;
    for batch in kaq_columnar::read::open(segment, 8192).map_err(|e| e.to_string())? {
        let batch = batch.map_err(|e| e.to_string())?;
        let cols = kaq_columnar::Columns::new(&batch).map_err(|e| e.to_string())?;
        for i in 0..batch.num_rows() {
            let ev = cols.event(i).map_err(|e| e.to_string())?;
            let mut doc = TantivyDocument::new();
            doc.add_u64(row_f, row);
            for (f, g, _) in &getters {
                for v in values(g.get(&ev)) {
                    doc.add_text(*f, &v);
                }
            }
            if let Val::Int(c) = code_g.get(&ev) {
                doc.add_i64(code_f, c);
            }
            w.add_document(doc).map_err(|e| e.to_string())?;
            row += 1;
        }
    }
    w.commit().map_err(|e| e.to_string())?;
    w.wait_merging_threads().map_err(|e| e.to_string())?;
    Ok(())
}

fn getter(name: &str) -> Getter {
    Getter::new(&FieldKey::Field(kaq_schema::lookup(name).expect("a catalogue field")))
}

/// The strings to index for a value (addresses normalised as the query side reads them).
fn values(v: Val<'_>) -> Vec<String> {
    match v {
        Val::Null => Vec::new(),
        Val::List(l) => l.into_iter().flat_map(values).collect(),
        Val::Str(s) => vec![s.into_owned()],
        other => vec![other.to_text()],
    }
}

/// An opened segment index.
pub struct SegmentIndex {
    index: Index,
    schema: Schema,
}

impl SegmentIndex {
    pub fn open(dir: &Path) -> Result<SegmentIndex, String> {
        let index = Index::open_in_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        register(&index);
        let schema = index.schema();
        Ok(SegmentIndex { index, schema })
    }

    fn search(&self, q: &dyn Query) -> Result<Vec<u64>, String> {
        let reader = self.index.reader().map_err(|e| e.to_string())?;
        reader.searcher().search(q, &Rows).map_err(|e| e.to_string())
    }

    /// The rows that may match `plan`'s filter, or `None` when the index cannot narrow it.
    pub fn candidates(&self, plan: &Plan) -> Result<Option<Vec<u64>>, String> {
        match translate(&plan.filter, plan, &self.schema) {
            Some(q) => self.search(q.as_ref()).map(Some),
            None => Ok(None),
        }
    }

    /// The rows whose auditID is one of `ids`.
    pub fn rows_with_ids(&self, ids: &[String]) -> Result<Vec<u64>, String> {
        let f = field(&self.schema, "id");
        self.search(&TermSetQuery::new(ids.iter().map(|i| Term::from_field_text(f, i))))
    }
}

/// Whether a plan's filter can be narrowed by the index at all.
pub fn indexable(plan: &Plan) -> bool {
    translate(&plan.filter, plan, &schema()).is_some()
}

/// A query whose rows include every row where `p` holds, or `None`.
fn translate(p: &Pred, plan: &Plan, s: &Schema) -> Option<Box<dyn Query>> {
    match p {
        Pred::And(items) => {
            let qs: Vec<Box<dyn Query>> = items.iter().filter_map(|i| translate(i, plan, s)).collect();
            (!qs.is_empty()).then(|| Box::new(BooleanQuery::intersection(qs)) as Box<dyn Query>)
        }
        Pred::Or(items) => {
            let qs: Option<Vec<Box<dyn Query>>> = items.iter().map(|i| translate(i, plan, s)).collect();
            qs.map(|qs| Box::new(BooleanQuery::union(qs)) as Box<dyn Query>)
        }
        Pred::Field { col, test } => {
            let name = match &plan.slots[*col].key {
                Some(FieldKey::Field(f)) => f.name,
                _ => return None,
            };
            leaf(name, test, s)
        }
        Pred::Text { test, .. } => {
            let qs: Option<Vec<Box<dyn Query>>> = TEXTS.iter().map(|t| leaf(t, test, s)).collect();
            qs.map(|qs| Box::new(BooleanQuery::union(qs)) as Box<dyn Query>)
        }
        Pred::Not(_) | Pred::Const(_) => None,
    }
}

fn leaf(name: &str, test: &Test, s: &Schema) -> Option<Box<dyn Query>> {
    let term = |f: Field, t: &str| Box::new(TermQuery::new(Term::from_field_text(f, t), IndexRecordOption::Basic));
    if KEYWORDS.contains(&name) {
        let f = field(s, name);
        return match test {
            Test::Eq(v) => Some(term(f, v)),
            Test::Ip(ip) if matches!(name, "ip" | "client_ip" | "peer_ip") => {
                // Indexed as written; `::ffff:a.b.c.d` and `a.b.c.d` are the same address.
                let mut alts: Vec<Box<dyn Query>> = vec![term(f, &ip.to_string())];
                if let std::net::IpAddr::V4(v4) = ip {
                    alts.push(term(f, &format!("::ffff:{v4}")));
                }
                Some(Box::new(BooleanQuery::union(alts)))
            }
            _ => None,
        };
    }
    if TEXTS.contains(&name) {
        let f = field(s, name);
        return match test {
            Test::Words(w) if w.len() == 1 => Some(term(f, &w[0])),
            // Every word of the phrase, in any order (a superset: the filter checks the order).
            Test::Words(w) => {
                Some(Box::new(BooleanQuery::intersection(w.iter().map(|x| term(f, x) as Box<dyn Query>).collect())))
            }
            _ => None,
        };
    }
    if name == "code"
        && let Test::IntRange(lo, hi) = test
    {
        let f = field(s, "code");
        return Some(Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_i64(f, *lo)),
            Bound::Included(Term::from_field_i64(f, *hi)),
        )));
    }
    None
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
