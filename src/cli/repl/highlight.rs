//! Colours as you type, from the parser: fields, values, stages, named queries and operators are
//! found in the tree that `parse_lenient` builds from the longest valid prefix; keywords, pipes and
//! parentheses by a small scan; the spot of the first error is underlined in red. Also when a
//! line is complete (the multi-line rule).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kaq_syntax::{BoolExpr, FieldRef, Query, Stage, Term, Value, ValueKind};
use nu_ansi_term::{Color, Style};
use reedline::{Highlighter, StyledText, ValidationResult, Validator};

/// What each part of a query is drawn as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Field,
    Value,
    Quoted,
    Regex,
    Macro,
    Stage,
    Keyword,
    Pipe,
    Paren,
    Meta,
    Error,
}

impl Kind {
    fn style(self) -> Style {
        match self {
            Kind::Plain => Style::new(),
            Kind::Field => Color::Cyan.normal(),
            Kind::Value => Color::Green.normal(),
            Kind::Quoted => Color::Yellow.normal(),
            Kind::Regex => Color::Purple.normal(),
            Kind::Macro => Color::Purple.bold(),
            Kind::Stage => Color::Blue.bold(),
            Kind::Keyword => Color::Yellow.bold(),
            Kind::Pipe => Color::Blue.bold(),
            Kind::Paren => Color::DarkGray.normal(),
            Kind::Meta => Color::Purple.bold(),
            Kind::Error => Color::Red.underline(),
        }
    }
}

/// The kind of each byte of `line`.
pub fn kinds(line: &str, macros: &HashMap<String, String>) -> Vec<Kind> {
    let mut k = vec![Kind::Plain; line.len()];
    let trimmed = line.trim_start();
    if trimmed.starts_with('.') {
        let lead = line.len() - trimmed.len();
        let end = trimmed.find(char::is_whitespace).map_or(line.len(), |i| lead + i);
        paint(&mut k, lead, end, Kind::Meta);
        let cmd = &line[lead..end];
        let query_at = match cmd {
            ".explain" => Some(end),
            // `.save NAME QUERY`: the query after the name.
            ".save" => {
                let rest = &line[end..];
                let name_start = end + (rest.len() - rest.trim_start().len());
                line[name_start..].find(char::is_whitespace).map(|i| name_start + i)
            }
            _ => None,
        };
        if let Some(at) = query_at {
            let sub = kinds(&line[at..], macros);
            k[at..].copy_from_slice(&sub);
        }
        return k;
    }
    lexical(line, &mut k);
    let (query, diags) = kaq_syntax::parse_lenient(line);
    if let Some(q) = &query {
        tree(q, line, &mut k);
    }
    let error = match diags.first() {
        Some(d) => Some(d.span),
        // Parsed: the planner's first complaint (an unknown field, a bad value), if any.
        None => {
            let opts = kaq_query::Options { macros: macros.clone(), ..Default::default() };
            kaq_query::compile(line, &opts).err().and_then(|d| d.first().map(|d| d.span))
        }
    };
    if let Some(s) = error {
        paint(&mut k, s.start.min(line.len()), s.end.min(line.len()), Kind::Error);
    }
    k
}

fn paint(k: &mut [Kind], start: usize, end: usize, kind: Kind) {
    let end = end.min(k.len());
    if start < end {
        k[start..end].fill(kind);
    }
}

/// Keywords, pipes, parentheses, and the words of stages (`by`, `as`), by a scan that skips quotes.
fn lexical(line: &str, k: &mut [Kind]) {
    let b = line.as_bytes();
    let mut i = 0;
    let mut after_pipe = false;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                paint(k, i, j + 1, Kind::Quoted);
                i = j + 1;
            }
            b'|' => {
                k[i] = Kind::Pipe;
                after_pipe = true;
                i += 1;
            }
            b'(' | b')' => {
                k[i] = Kind::Paren;
                i += 1;
            }
            c if c.is_ascii_alphabetic() => {
                let j = i + b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
                let whole = j >= b.len() || matches!(b[j], b' ' | b'\t' | b'\n' | b'(' | b')' | b'|');
                let word = &line[i..j];
                let starts = i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'(' | b',');
                if whole
                    && starts
                    && (["AND", "OR", "NOT"].contains(&word) || (after_pipe && matches!(word, "by" | "as")))
                {
                    paint(k, i, j, Kind::Keyword);
                }
                i = j;
            }
            _ => i += 1,
        }
    }
}

/// Spans from the parse tree.
fn tree(q: &Query, line: &str, k: &mut [Kind]) {
    if let Some(s) = &q.search {
        search(s, k);
    }
    for st in &q.stages {
        // The stage's first word is its name (as written: `fields` is a `table`).
        let at = st.span().start.min(line.len());
        let end = at + line[at..].bytes().take_while(u8::is_ascii_alphabetic).count();
        paint(k, at, end, Kind::Stage);
        match st {
            Stage::Where { expr, .. } => search(expr, k),
            Stage::Table { fields, .. } | Stage::Dedup { fields, .. } => fields.iter().for_each(|f| field(f, k)),
            Stage::Sort { keys, .. } => keys.iter().for_each(|s| field(&s.field, k)),
            Stage::Count { by, .. } => by.iter().for_each(|f| field(f, k)),
            Stage::Stats { aggregates, by, .. } => {
                for a in aggregates {
                    paint(k, a.func.span.start, a.func.span.end, Kind::Stage);
                    if let Some(f) = &a.field {
                        field(f, k);
                    }
                }
                by.iter().for_each(|f| field(f, k));
            }
            Stage::Top { field: f, by, .. } | Stage::Rare { field: f, by, .. } => {
                field(f, k);
                by.iter().for_each(|f| field(f, k));
            }
            Stage::Timeline { by, .. } => by.iter().for_each(|f| field(f, k)),
            Stage::Head { .. } => {}
        }
    }
}

fn field(f: &FieldRef, k: &mut [Kind]) {
    paint(k, f.span.start, f.span.end, Kind::Field);
}

fn value(v: &Value, k: &mut [Kind]) {
    let kind = match v.kind {
        ValueKind::Quoted { .. } => Kind::Quoted,
        ValueKind::Regex { .. } => Kind::Regex,
        _ => Kind::Value,
    };
    paint(k, v.span.start, v.span.end, kind);
}

fn search(s: &BoolExpr<Term>, k: &mut [Kind]) {
    match s {
        BoolExpr::Leaf(t) => match t {
            Term::Match { field: f, value: v, .. } => {
                field(f, k);
                v.for_each_leaf(&mut |v| value(v, k));
            }
            Term::Compare { field: f, op, value: v, .. } => {
                field(f, k);
                paint(k, op.span.start, op.span.end, Kind::Keyword);
                value(v, k);
            }
            Term::Text(v) => {
                if !matches!(v.kind, ValueKind::Bare { .. }) {
                    value(v, k);
                }
            }
            Term::Macro(m) => paint(k, m.span.start, m.span.end, Kind::Macro),
        },
        BoolExpr::Not { inner, span } => {
            if k.get(span.start) == Some(&Kind::Plain) {
                // The `-` of `-field:value` (a `NOT` is a keyword already).
                paint(k, span.start, span.start + 1, Kind::Keyword);
            }
            search(inner, k);
        }
        BoolExpr::And { items, .. } | BoolExpr::Or { items, .. } => items.iter().for_each(|i| search(i, k)),
    }
}

/// The REPL's highlighter (plain when colours are off).
pub struct KaqHighlighter {
    pub color: bool,
    pub macros: Arc<Mutex<HashMap<String, String>>>,
}

impl Highlighter for KaqHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut out = StyledText::new();
        if !self.color || line.len() > 4096 {
            out.push((Style::new(), line.to_string()));
            return out;
        }
        let macros = self.macros.lock().expect("unpoisoned").clone();
        let k = kinds(line, &macros);
        let mut start = 0;
        for (i, _) in line.char_indices().skip(1) {
            if k[i] != k[start] {
                out.push((k[start].style(), line[start..i].to_string()));
                start = i;
            }
        }
        if start < line.len() {
            out.push((k[start].style(), line[start..].to_string()));
        }
        out
    }
}

/// Whether `text` is a whole input: not ending in `|`, no open `(` or `"` (meta-commands always are).
pub fn is_complete(text: &str) -> bool {
    let t = text.trim();
    if t.starts_with('.') || t.is_empty() {
        return true;
    }
    if t.ends_with('|') {
        return false;
    }
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    let mut chars = t.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            // A value that starts with `/` is a regex: its brackets and quotes are its own.
            '/' if !quoted && (prev.is_whitespace() || matches!(prev, ':' | '(' | '=' | '<' | '>' | '!' | '~')) => {
                let mut esc = false;
                for r in chars.by_ref() {
                    match r {
                        _ if esc => esc = false,
                        '\\' => esc = true,
                        '/' => break,
                        _ => {}
                    }
                }
                prev = '/';
                continue;
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ => {}
        }
        prev = c;
    }
    !quoted && depth <= 0
}

pub struct KaqValidator;

impl Validator for KaqValidator {
    fn validate(&self, line: &str) -> ValidationResult {
        if is_complete(line) { ValidationResult::Complete } else { ValidationResult::Incomplete }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(line: &str) -> String {
        let k = kinds(line, &HashMap::new());
        let code = |k: Kind| match k {
            Kind::Plain => '.',
            Kind::Field => 'f',
            Kind::Value => 'v',
            Kind::Quoted => 'q',
            Kind::Regex => 'r',
            Kind::Macro => 'm',
            Kind::Stage => 's',
            Kind::Keyword => 'k',
            Kind::Pipe => '|',
            Kind::Paren => 'p',
            Kind::Meta => 'M',
            Kind::Error => 'E',
        };
        k.into_iter().map(code).collect()
    }

    #[test]
    fn highlights_from_the_tree() {
        assert_eq!(show("verb:delete ns:prod*"), "ffff.vvvvvv.ff.vvvvv");
        assert_eq!(show("verb:(get OR list) | count by user"), "ffff.pvvv.kk.vvvvp.|.sssss.kk.ffff");
        assert_eq!(show("-user_kind:node @exec"), "kfffffffff.vvvv.mmmmm");
        assert_eq!(show("code>=400 \"is forbidden\""), "ffffkkvvv.qqqqqqqqqqqqqq");
        // Errors: an unknown stage, an unknown field.
        assert_eq!(show("verb:get | cout"), "ffff.vvv.|.EEEE");
        assert_eq!(show("usr:alice"), "EEE.vvvvv");
        assert_eq!(show(".explain verb:get"), "MMMMMMMM.ffff.vvv");
        assert_eq!(show("| stats dc(name) as n by ns"), "|.sssss.sspffffp.kk...kk.ff");
    }

    #[test]
    fn multi_line() {
        assert!(is_complete("verb:get | count"));
        assert!(!is_complete("verb:get |"));
        assert!(!is_complete("verb:(get OR"));
        assert!(!is_complete("message:\"is forb"));
        assert!(is_complete("message:\"a ( b\""));
        // Brackets and quotes inside a regex are the regex's.
        assert!(is_complete("uri:/[(]/ | count"));
        assert!(is_complete(r"uri:/\(/"));
        assert!(is_complete("uri:/\"/ | count"));
        assert!(is_complete("/deni(ed|al/ OR forbidden"));
        assert!(!is_complete("(uri:/[)]/"));
        assert!(is_complete(".format json"));
    }
}
