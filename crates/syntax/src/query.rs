//! The top level: `query ::= search? ( '|' stage )*`, the length limit, and the two entry points.

use crate::ast::{Query, Stage};
use crate::diag::{Code, Diagnostic};
use crate::expr::{search, unmatched};
use crate::input::{In, PErr, PResult, fail, unexpected};
use crate::lex::ws;
use crate::span::Span;
use crate::stage::stage;

/// `query ::= search? ( '|' stage )*` — a query may start with `|` (empty search: every event).
pub(crate) fn query(i: In) -> PResult<Query> {
    let whole = Span::new(i.offset, i.offset + i.text.len());
    let (mut i, ()) = ws(i)?;
    let mut found = None;
    if i.peek().is_some_and(|c| c != '|') {
        let (j, s) = search(i)?;
        found = Some(s);
        i = j;
    }
    let mut stages = Vec::new();
    loop {
        let (j, ()) = ws(i)?;
        match j.peek() {
            None => break,
            Some('|') => {}
            Some(')') => return fail(unmatched(&j)),
            Some(_) => return fail(after_stage(&j, stages.last())),
        }
        let pipe = Span::new(j.offset, j.offset + 1);
        let (k, ()) = ws(j.skip(1))?;
        if k.peek().is_none_or(|c| c == '|') {
            let d = Diagnostic::new(Code::EmptyStage, pipe, "empty stage after `|`");
            let hint = if k.is_empty() { "add a stage after `|`, e.g. `| count`" } else { "remove the extra `|`" };
            return fail(d.with_hint(hint));
        }
        let (k, st) = stage(k)?;
        stages.push(st);
        i = k;
    }
    Ok((i, Query { search: found, stages, span: whole }))
}

/// E001 for text left over after a stage, with a hint matching the likely mistake.
fn after_stage(i: &In, last: Option<&Stage>) -> Diagnostic {
    let Some(last) = last else { return unexpected(i, "") };
    let d = unexpected(i, &format!("after `{}`", last.name()));
    let word: String = i.text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').take(30).collect();
    match last {
        Stage::Count { by, .. } if by.is_empty() && !word.is_empty() => {
            d.with_hint(format!("to group, write `count by {word}`"))
        }
        Stage::Table { .. } | Stage::Dedup { .. } | Stage::Sort { .. } | Stage::Count { .. } | Stage::Stats { .. } => {
            d.with_hint("separate fields with `,`")
        }
        _ => d.with_hint("stages are separated by `|`"),
    }
}

fn to_diagnostic(e: nom::Err<PErr>, src: &str) -> Diagnostic {
    match e {
        nom::Err::Error(PErr::Diag(d)) | nom::Err::Failure(PErr::Diag(d)) => *d,
        nom::Err::Error(PErr::Backtrack(at)) | nom::Err::Failure(PErr::Backtrack(at)) => {
            let at = (0..=at.min(src.len())).rev().find(|n| src.is_char_boundary(*n)).unwrap_or(0);
            unexpected(&In::new(src).skip(at), "")
        }
        nom::Err::Incomplete(_) => unexpected(&In::new(src).skip(src.len()), ""),
    }
}

/// Parses a whole query. On failure returns the first error (the list leaves room for more).
///
/// ```
/// let q = kaq_syntax::parse("code:401 | count by ip | where count > 20 | sort -count").unwrap();
/// assert_eq!(q.stages.len(), 3);
/// let err = kaq_syntax::parse("verb:get | cout").unwrap_err();
/// assert_eq!(err[0].code.as_str(), "E010");
/// ```
pub fn parse(src: &str) -> Result<Query, Vec<Diagnostic>> {
    if src.len() > crate::MAX_QUERY_LEN {
        let msg = format!("query is {} bytes long; the limit is {}", src.len(), crate::MAX_QUERY_LEN);
        let at = (crate::MAX_QUERY_LEN..=src.len()).find(|n| src.is_char_boundary(*n)).unwrap_or(src.len());
        return Err(vec![Diagnostic::new(Code::QueryTooLong, Span::new(at, src.len()), msg)]);
    }
    match query(In::new(src)) {
        Ok((_, q)) => Ok(q),
        Err(e) => Err(vec![to_diagnostic(e, src)]),
    }
}

/// Parses as much as possible, for editors and a REPL that highlight while the user types.
///
/// Returns the diagnostics of [`parse`] and, even when there are some, the query parsed from the
/// longest prefix that is free of errors (cut before the earliest span of each error in turn), so
/// `verb:get | count by` still yields `verb:get`, and `verb:get (ns:prod` yields `verb:get`.
/// Spans in the partial query point into `src`. `None` only when the query is too long.
///
/// ```
/// let (partial, diags) = kaq_syntax::parse_lenient("verb:delete | count by verb |");
/// assert_eq!(diags[0].code.as_str(), "E009");
/// assert_eq!(partial.unwrap().stages.len(), 1);
/// ```
pub fn parse_lenient(src: &str) -> (Option<Query>, Vec<Diagnostic>) {
    let diags = match parse(src) {
        Ok(q) => return (Some(q), Vec::new()),
        Err(d) => d,
    };
    if diags.iter().any(|d| d.code == Code::QueryTooLong) {
        return (None, diags);
    }
    let mut cut = src.len();
    let mut errs = diags.clone();
    // Each round cuts strictly earlier, so this ends; the bound keeps the cost a small multiple of one parse.
    for _ in 0..16 {
        let earliest = errs.iter().flat_map(|d| std::iter::once(d.span).chain(d.labels.iter().map(|l| l.0)));
        let mut next = earliest.map(|s| s.start).min().unwrap_or(0).min(cut);
        if next == cut {
            next = cut.saturating_sub(1);
        }
        while !src.is_char_boundary(next) {
            next -= 1;
        }
        cut = next;
        match parse(&src[..cut]) {
            Ok(mut q) => {
                q.span = Span::new(0, src.len());
                return (Some(q), diags);
            }
            Err(e) => errs = e,
        }
    }
    (None, diags)
}
