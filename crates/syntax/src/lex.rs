//! Token-level productions: whitespace, keywords, quoted strings, regex literals, bare words,
//! values, field references, numbers. Each `pub(crate) fn` is a production of grammar/kaq.ebnf.

use nom::Parser;
use nom::bytes::complete::{take_while, take_while1};
use nom::character::complete::{char, satisfy};
use nom::combinator::recognize;

use crate::ast::{FieldRef, Value, ValueKind};
use crate::diag::{Code, Diagnostic};
use crate::input::{In, PResult, backtrack, fail, span};
use crate::span::{Span, Spanned};

/// Characters that end a bare word.
pub(crate) fn is_delim(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '|' | '"')
}

/// True at end of input or before a delimiter.
pub(crate) fn at_delim(i: &In) -> bool {
    i.peek().is_none_or(is_delim)
}

/// `ws ::= whitespace*`
pub(crate) fn ws(i: In) -> PResult<()> {
    let (i, _) = take_while(char::is_whitespace).parse(i)?;
    Ok((i, ()))
}

/// The boolean keywords, recognised case-insensitively as whole words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::And => "AND",
            Keyword::Or => "OR",
            Keyword::Not => "NOT",
        }
    }
}

/// `keyword ::= AND | OR | NOT` — a whole word, any case, followed by a delimiter.
pub(crate) fn keyword(i: In) -> PResult<Spanned<Keyword>> {
    let (j, w) = take_while1(|c: char| c.is_ascii_alphabetic()).parse(i)?;
    let kw = match w.text.to_ascii_uppercase().as_str() {
        "AND" => Keyword::And,
        "OR" => Keyword::Or,
        "NOT" => Keyword::Not,
        _ => return backtrack(i),
    };
    if !at_delim(&j) {
        return backtrack(i);
    }
    Ok((j, Spanned::new(kw, span(i, j))))
}

/// `quoted ::= '"' ( [^"\\] | '\\' ( '"' | '\\' ) )* '"'`
pub(crate) fn quoted(i: In) -> PResult<String> {
    let (j, _) = char('"').parse(i)?;
    let mut out = String::new();
    let mut chars = j.text.char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((j.skip(k + 1), out)),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((k2, e)) => {
                    let at = Span::new(j.offset + k, j.offset + k2 + e.len_utf8());
                    return fail(
                        Diagnostic::new(Code::InvalidEscape, at, format!("invalid escape `\\{e}` in a quoted string"))
                            .with_hint(
                                "inside quotes only `\\\"` and `\\\\` are escapes; write `\\\\` for a backslash",
                            ),
                    );
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    let d = Diagnostic::new(Code::UnterminatedString, Span::new(i.offset, i.offset + 1), "unterminated quoted string")
        .with_label(Span::at(j.offset + j.text.len()), "expected `\"` before the end")
        .with_hint("close the string with `\"`; write `\\\"` for a quote inside it");
    fail(d)
}

/// `regex ::= '/' ( [^/\\] | '\\' any )+ '/'` followed by a delimiter; `\/` stands for `/`.
pub(crate) fn regex(i: In) -> PResult<String> {
    let (j, _) = char('/').parse(i)?;
    let mut out = String::new();
    let mut chars = j.text.char_indices();
    let mut end = None;
    while let Some((k, c)) = chars.next() {
        match c {
            '/' => {
                end = Some(k);
                break;
            }
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    let Some(end) = end else {
        let d = Diagnostic::new(Code::UnterminatedRegex, Span::new(i.offset, i.offset + 1), "unterminated regex")
            .with_label(Span::at(j.offset + j.text.len()), "expected `/` before the end")
            .with_hint("close the regex with `/`; write `\\/` for a slash inside it")
            .with_hint(quote_hint(i));
        return fail(d);
    };
    let rest = j.skip(end + 1);
    let whole = span(i, rest);
    if end > crate::MAX_REGEX_LEN {
        let msg = format!("regex is {end} bytes long; the limit is {}", crate::MAX_REGEX_LEN);
        return fail(Diagnostic::new(Code::RegexTooLong, whole, msg));
    }
    if out.is_empty() {
        return fail(
            Diagnostic::new(Code::InvalidRegex, whole, "empty regex").with_hint("use `field:*` to test presence"),
        );
    }
    if !rest.peek().is_none_or(|c| c.is_whitespace() || c == ')' || c == '|') {
        let (glued, _) = bare_value(rest).unwrap_or((rest, rest));
        let d = Diagnostic::new(Code::InvalidRegex, span(rest, glued), "text right after a regex literal")
            .with_label(whole, "this is a regex")
            .with_hint(quote_hint(i));
        return fail(d);
    }
    Ok((rest, out))
}

/// The hint for a value that starts with `/` but was meant as a path.
fn quote_hint(i: In) -> String {
    let word: String = i.text.chars().take_while(|c| !c.is_whitespace() && *c != '|').take(60).collect();
    format!("a value starting with `/` is a regex; to match a path, quote it: `\"{word}\"`")
}

/// `bare_value ::= [^ whitespace ( ) | "]+`
pub(crate) fn bare_value(i: In) -> PResult<In> {
    take_while1(|c: char| !is_delim(c)).parse(i)
}

/// `value ::= quoted | regex | exists | bare_value`, where `exists ::= '*'` alone.
pub(crate) fn value(i: In) -> PResult<Value> {
    let (j, kind) = match i.peek() {
        Some('"') => {
            let (j, text) = quoted(i)?;
            (j, ValueKind::Quoted { text })
        }
        Some('/') => {
            let (j, pattern) = regex(i)?;
            (j, ValueKind::Regex { pattern })
        }
        _ => {
            let (j, w) = bare_value(i)?;
            let kind = if w.text == "*" {
                ValueKind::Exists
            } else {
                ValueKind::Bare { text: w.text.to_string(), has_wildcard: w.text.contains(['*', '?']) }
            };
            (j, kind)
        }
    };
    Ok((j, Value { kind, span: span(i, j) }))
}

/// `ident ::= [A-Za-z_] [A-Za-z0-9_-]*`
pub(crate) fn ident(i: In) -> PResult<In> {
    recognize((
        satisfy(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
    ))
    .parse(i)
}

/// `key ::= [A-Za-z0-9_-]+` — a segment after a dot may start with a digit (`items.0`).
pub(crate) fn key(i: In) -> PResult<In> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-').parse(i)
}

/// `field_ref ::= (ident | quoted) ( '.' (key | quoted) )*`
pub(crate) fn field_ref(i: In) -> PResult<FieldRef> {
    let (mut j, first) = match i.peek() {
        Some('"') => quoted(i)?,
        _ => ident(i).map(|(j, w)| (j, w.text.to_string()))?,
    };
    let mut segments = vec![first];
    while j.peek() == Some('.') {
        let after = j.skip(1);
        let next = match after.peek() {
            Some('"') => quoted(after)?,
            _ => match key(after) {
                Ok((k, w)) => (k, w.text.to_string()),
                Err(_) => break,
            },
        };
        segments.push(next.1);
        j = next.0;
    }
    Ok((j, FieldRef { segments, span: span(i, j) }))
}

/// `number ::= [0-9]+` (fits in 64 bits).
pub(crate) fn number(i: In) -> PResult<Spanned<u64>> {
    let (j, digits) = take_while1(|c: char| c.is_ascii_digit()).parse(i)?;
    match digits.text.parse::<u64>() {
        Ok(n) => Ok((j, Spanned::new(n, span(i, j)))),
        Err(_) => fail(Diagnostic::new(Code::BadStageArgument, span(i, j), "number too large")),
    }
}

/// `word ::= [A-Za-z0-9_-]+` — stage names, aggregate names, `by`, `as`.
pub(crate) fn word(i: In) -> PResult<In> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-').parse(i)
}

/// `interval ::= [0-9] [A-Za-z0-9.]*` followed by a delimiter — raw text such as `5m`, `1h`, `30s`.
pub(crate) fn interval(i: In) -> PResult<Spanned<String>> {
    let len = i.text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(i.text.len());
    let j = i.skip(len);
    if !i.peek().is_some_and(|c| c.is_ascii_digit()) || !at_delim(&j) {
        return backtrack(i);
    }
    Ok((j, Spanned::new(i.text[..len].to_string(), span(i, j))))
}
