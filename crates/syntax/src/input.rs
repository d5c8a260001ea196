//! The parser's input type: a slice of the source that knows its byte offset (for spans) and the
//! current nesting depth (for the depth limit), plus the error type threaded through nom.

use std::str::{CharIndices, Chars};

use nom::error::{ErrorKind, ParseError};
use nom::{Compare, CompareResult, IResult, Input, Needed, Offset};

use crate::diag::{Code, Diagnostic};
use crate::span::Span;

/// The remaining source text, its offset in the whole query, and the nesting depth.
#[derive(Clone, Copy, Debug)]
pub(crate) struct In<'a> {
    pub text: &'a str,
    pub offset: usize,
    pub depth: usize,
}

impl<'a> In<'a> {
    pub fn new(text: &'a str) -> In<'a> {
        In { text, offset: 0, depth: 0 }
    }

    /// The next char, if any.
    pub fn peek(&self) -> Option<char> {
        self.text.chars().next()
    }

    /// The char after the next one.
    pub fn peek2(&self) -> Option<char> {
        self.text.chars().nth(1)
    }

    /// Skips `n` bytes (clamped, and moved forward to a char boundary so it can never panic).
    pub fn skip(self, n: usize) -> In<'a> {
        let mut n = n.min(self.text.len());
        while !self.text.is_char_boundary(n) {
            n += 1;
        }
        In { text: &self.text[n..], offset: self.offset + n, depth: self.depth }
    }

    /// The same position at another depth.
    pub fn at_depth(self, depth: usize) -> In<'a> {
        In { depth, ..self }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// An empty span here.
    pub fn here(&self) -> Span {
        Span::at(self.offset)
    }
}

/// The span from `a`'s position to `b`'s.
pub(crate) fn span(a: In, b: In) -> Span {
    Span::new(a.offset, b.offset)
}

/// Parse errors. `Backtrack` is nom's recoverable "not this alternative"; it only becomes a
/// diagnostic (E001 at that offset) if nothing else matched. `Diag` is a committed error.
#[derive(Debug)]
pub(crate) enum PErr {
    Backtrack(usize),
    Diag(Box<Diagnostic>),
}

impl<'a> ParseError<In<'a>> for PErr {
    fn from_error_kind(input: In<'a>, _kind: ErrorKind) -> Self {
        PErr::Backtrack(input.offset)
    }

    fn append(_: In<'a>, _: ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type PResult<'a, T> = IResult<In<'a>, T, PErr>;

/// A committed failure: stops parsing with this diagnostic.
pub(crate) fn fail<'a, T>(d: Diagnostic) -> PResult<'a, T> {
    Err(nom::Err::Failure(PErr::Diag(Box::new(d))))
}

/// A recoverable "this alternative does not apply here".
pub(crate) fn backtrack<'a, T>(i: In<'a>) -> PResult<'a, T> {
    Err(nom::Err::Error(PErr::Backtrack(i.offset)))
}

/// The text of the token starting at `i` for messages: one delimiter char, or a word (≤ 24 chars).
pub(crate) fn token_at(i: &In) -> (String, Span) {
    let Some(c) = i.peek() else { return ("end of query".into(), i.here()) };
    if c.is_whitespace() {
        let len = i.text.find(|c: char| !c.is_whitespace()).unwrap_or(i.text.len());
        return ("whitespace".into(), Span::new(i.offset, i.offset + len));
    }
    let len = if crate::lex::is_delim(c) || !c.is_alphanumeric() {
        c.len_utf8()
    } else {
        i.text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.')).unwrap_or(i.text.len())
    };
    let word = &i.text[..len];
    let shown: String = word.chars().take(24).collect();
    let suffix = if shown.len() < word.len() { "…" } else { "" };
    (format!("`{shown}{suffix}`"), Span::new(i.offset, i.offset + len))
}

/// E001 at `i`: "unexpected X" plus `context` (e.g. "after stage `head`").
pub(crate) fn unexpected(i: &In, context: &str) -> Diagnostic {
    let (tok, sp) = token_at(i);
    let msg = if context.is_empty() { format!("unexpected {tok}") } else { format!("unexpected {tok} {context}") };
    Diagnostic::new(Code::UnexpectedToken, sp, msg)
}

impl<'a> Input for In<'a> {
    type Item = char;
    type Iter = Chars<'a>;
    type IterIndices = CharIndices<'a>;

    fn input_len(&self) -> usize {
        self.text.len()
    }

    fn take(&self, index: usize) -> Self {
        In { text: self.text.get(..index).unwrap_or(self.text), ..*self }
    }

    fn take_from(&self, index: usize) -> Self {
        self.skip(index)
    }

    fn take_split(&self, index: usize) -> (Self, Self) {
        (self.take_from(index), self.take(index))
    }

    fn position<P>(&self, predicate: P) -> Option<usize>
    where
        P: Fn(Self::Item) -> bool,
    {
        self.text.find(predicate)
    }

    fn iter_elements(&self) -> Self::Iter {
        self.text.chars()
    }

    fn iter_indices(&self) -> Self::IterIndices {
        self.text.char_indices()
    }

    fn slice_index(&self, count: usize) -> Result<usize, Needed> {
        self.text.slice_index(count)
    }
}

impl<'a, 'b> Compare<&'b str> for In<'a> {
    fn compare(&self, t: &'b str) -> CompareResult {
        self.text.compare(t)
    }

    fn compare_no_case(&self, t: &'b str) -> CompareResult {
        self.text.compare_no_case(t)
    }
}

impl Offset for In<'_> {
    fn offset(&self, second: &Self) -> usize {
        second.offset.saturating_sub(self.offset)
    }
}
