//! The prefilter: byte strings that every matching line must contain, found before any JSON is
//! decoded. A line with none of them cannot match, so it is not decoded.
//!
//! Only conditions on values copied verbatim from the JSON text qualify (not derived fields such as
//! `user_kind`, not request/response bodies, which redaction rewrites, not addresses, which have
//! several spellings, not case-insensitive text search), and only literals that JSON writers never
//! escape
//! (Go's encoder escapes `<`, `>`, `&`; anything may write non-ASCII as `\uXXXX`).

use crate::plan::{Cmp, Column, FieldKey, Lit, Pred, Test};

/// Alternatives: at least one of these must occur in the line.
type Need = Vec<Vec<u8>>;

/// What `p` needs, or `None` when it needs nothing that can be checked in the raw text.
pub fn required(p: &Pred, slots: &[Column]) -> Option<Vec<Need>> {
    need(p, slots).map(|n| vec![n])
}

fn need(p: &Pred, slots: &[Column]) -> Option<Need> {
    match p {
        Pred::Field { col, test } => {
            if !verbatim(slots[*col].key.as_ref()?) {
                return None;
            }
            let lit = match test {
                Test::Eq(s) | Test::Cmp(Cmp::Eq, Lit::Str(s)) => s.clone(),
                // A JSON number may be written differently (`3` for `3.0`): only text qualifies.
                Test::Dynamic(s) | Test::Cmp(Cmp::Eq, Lit::Dynamic(s)) if s.parse::<f64>().is_err() => s.clone(),
                Test::Glob(g) => g.literals().into_iter().max_by_key(String::len)?,
                Test::IntRange(lo, hi) if lo == hi => lo.to_string(),
                // Not addresses: `::ffff:a00:1` is 10.0.0.1 written without the dotted text.
                _ => return None,
            };
            safe(&lit).then(|| vec![lit.into_bytes()])
        }
        Pred::And(items) => {
            // The most selective single need: the one whose shortest spelling is longest.
            items.iter().filter_map(|i| need(i, slots)).max_by_key(|n| n.iter().map(Vec::len).min().unwrap_or(0))
        }
        Pred::Or(items) => {
            let mut all = Vec::new();
            for i in items {
                all.extend(need(i, slots)?);
            }
            Some(all)
        }
        Pred::Not(_) | Pred::Text { .. } | Pred::Const(_) => None,
    }
}

/// Fields whose values appear in the line as written.
fn verbatim(key: &FieldKey) -> bool {
    match key {
        FieldKey::Field(f) => {
            !matches!(f.ty, kaq_schema::FieldType::Timestamp | kaq_schema::FieldType::Duration)
                && (!f.derived || matches!(f.name, "decision" | "authz_reason" | "client_ip" | "peer_ip"))
        }
        FieldKey::Annotation(_) | FieldKey::Extra { .. } => true,
        // Bodies are redacted after decoding (a Secret's values become hash markers), so what a
        // query compares may not be in the line.
        FieldKey::Json { .. } => false,
    }
}

/// Long enough to be worth it, and written the same by any JSON encoder (`/` may be written `\/`).
fn safe(s: &str) -> bool {
    s.len() >= 3
        && s.bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&' | b'/')))
}

/// A line passes when, for each need, one of its alternatives occurs.
#[derive(Debug, Clone)]
pub struct Prefilter {
    needs: Vec<Vec<memchr::memmem::Finder<'static>>>,
}

impl Prefilter {
    pub fn new(needs: &[Vec<Vec<u8>>]) -> Option<Prefilter> {
        if needs.is_empty() {
            return None;
        }
        let needs = needs
            .iter()
            .map(|alts| alts.iter().map(|a| memchr::memmem::Finder::new(a).into_owned()).collect())
            .collect();
        Some(Prefilter { needs })
    }

    /// Whether the line may match.
    pub fn may_match(&self, line: &[u8]) -> bool {
        self.needs.iter().all(|alts| alts.iter().any(|f| f.find(line).is_some()))
    }
}
