//! Diagnostics as plain data: a stable code, a message, a primary span, labelled secondary spans and
//! hints. Rendering belongs to hosts; [`Diagnostic::render`] is a tiny dependency-free fallback.

use crate::span::Span;

/// Stable error codes. The number of a code never changes meaning; new codes get new numbers.
/// Each variant names an input that triggers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// E001 — a character or word that cannot appear here: `!verb:get`, `head 10 20`, `count verb`.
    UnexpectedToken,
    /// E002 — a `"` with no closing `"`: `"is forbidden`.
    UnterminatedString,
    /// E003 — a backslash escape other than `\"` and `\\` inside quotes: `"a\q"`.
    InvalidEscape,
    /// E004 — a `/` regex with no closing `/`: `uri:/api`.
    UnterminatedRegex,
    /// E005 — a malformed regex literal: empty (`name://`) or glued to more text (`uri:/api/v1`).
    InvalidRegex,
    /// E006 — a `(` never closed, or a `)` never opened: `(verb:get`, `verb:get)`.
    UnbalancedParen,
    /// E007 — `:` or a comparison operator with no usable value after it: `user:`, `user: alice`, `code>=`.
    MissingValue,
    /// E008 — an operator or parenthesis with a missing operand: `a OR`, `NOT`, `- a`, `()`, `AND a`.
    MissingOperand,
    /// E009 — nothing between two `|`, or after a trailing `|`: `a || b`, `a |`.
    EmptyStage,
    /// E010 — a stage name that does not exist: `| cout`.
    UnknownStage,
    /// E011 — a stage with missing or malformed arguments: `head x`, `top user`, `stats`, `table a,`.
    BadStageArgument,
    /// E012 — an aggregate function that does not exist: `stats avgg(latency)`.
    UnknownAggregate,
    /// E013 — free text or a macro inside `where`: `where alice`.
    TextInWhere,
    /// E014 — the query exceeds [`crate::MAX_QUERY_LEN`] bytes.
    QueryTooLong,
    /// E015 — parentheses or `NOT`s nested deeper than [`crate::MAX_DEPTH`]: 100 000 `(`.
    NestingTooDeep,
    /// E016 — a regex longer than [`crate::MAX_REGEX_LEN`] bytes.
    RegexTooLong,
    /// E017 — a field the catalogue does not know: `usr:alice` (planner).
    UnknownField,
    /// E018 — a value that does not fit the field's type: `code:abc`, `latency>fast`,
    /// `time>yesterday`, `ip:300.1.2.3/8`, `uri:/(/`, `timeline 5x` (planner).
    InvalidValue,
    /// E019 — an operation the field's type does not support: `privileged>true`,
    /// `annotations:forbid` (no key), `sum(user)` (planner).
    UnsupportedOperation,
    /// E020 — `@name` names no known query: `@prod-delets` (planner).
    UnknownMacro,
    /// E021 — a named query that cannot be used: it refers to itself, or has stages (planner).
    BadMacro,
    /// E022 — a stage refers to a column the previous stage does not produce:
    /// `count by ip | where user:alice` (planner).
    UnknownColumn,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: &[Code] = &[
        Code::UnexpectedToken,
        Code::UnterminatedString,
        Code::InvalidEscape,
        Code::UnterminatedRegex,
        Code::InvalidRegex,
        Code::UnbalancedParen,
        Code::MissingValue,
        Code::MissingOperand,
        Code::EmptyStage,
        Code::UnknownStage,
        Code::BadStageArgument,
        Code::UnknownAggregate,
        Code::TextInWhere,
        Code::QueryTooLong,
        Code::NestingTooDeep,
        Code::RegexTooLong,
        Code::UnknownField,
        Code::InvalidValue,
        Code::UnsupportedOperation,
        Code::UnknownMacro,
        Code::BadMacro,
        Code::UnknownColumn,
    ];

    /// The stable `E0NN` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::UnexpectedToken => "E001",
            Code::UnterminatedString => "E002",
            Code::InvalidEscape => "E003",
            Code::UnterminatedRegex => "E004",
            Code::InvalidRegex => "E005",
            Code::UnbalancedParen => "E006",
            Code::MissingValue => "E007",
            Code::MissingOperand => "E008",
            Code::EmptyStage => "E009",
            Code::UnknownStage => "E010",
            Code::BadStageArgument => "E011",
            Code::UnknownAggregate => "E012",
            Code::TextInWhere => "E013",
            Code::QueryTooLong => "E014",
            Code::NestingTooDeep => "E015",
            Code::RegexTooLong => "E016",
            Code::UnknownField => "E017",
            Code::InvalidValue => "E018",
            Code::UnsupportedOperation => "E019",
            Code::UnknownMacro => "E020",
            Code::BadMacro => "E021",
            Code::UnknownColumn => "E022",
        }
    }

    /// Whether the parser reports this code; the others (E017 and up) come from resolving a parsed
    /// query against the field catalogue (kaq-query's planner).
    pub const fn is_parser(self) -> bool {
        !matches!(
            self,
            Code::UnknownField
                | Code::InvalidValue
                | Code::UnsupportedOperation
                | Code::UnknownMacro
                | Code::BadMacro
                | Code::UnknownColumn
        )
    }

    /// Looks up a code by its `E0NN` string.
    pub fn from_code_str(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// One sentence, lowercase first letter, no trailing period.
    pub message: String,
    /// The primary location (may be empty, e.g. "expected something at end of input").
    pub span: Span,
    /// Secondary locations with a short note each (e.g. where an unclosed `(` was opened).
    pub labels: Vec<(Span, String)>,
    /// Suggestions, e.g. "did you mean `count`?".
    pub hints: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic with no labels or hints.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), span, labels: Vec::new(), hints: Vec::new() }
    }

    /// Adds a labelled secondary span.
    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push((span, text.into()));
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hints.push(hint.into());
        self
    }

    /// Renders as plain text: `error[E0NN]: message`, then each source line involved with a caret
    /// line under the primary span (`^`) and the labels (`-`), then the hints. Never panics, even for
    /// spans that do not fit `src`.
    pub fn render(&self, src: &str) -> String {
        let mut out = format!("error[{}]: {}\n", self.code, self.message);
        let mut marks: Vec<(Span, char, &str)> = vec![(self.span, '^', "")];
        marks.extend(self.labels.iter().map(|(s, t)| (*s, '-', t.as_str())));
        let mut lines: Vec<usize> = marks.iter().map(|m| line_of(src, m.0.start)).collect();
        lines.sort_unstable();
        lines.dedup();
        let width = lines.last().map_or(1, |l| (l + 1).to_string().len());
        for line in lines {
            let (line_start, text) = line_text(src, line);
            let (shown, skipped) = window(text, &marks, line_start);
            out.push_str(&format!("{:>width$} | {}\n", line + 1, shown));
            for (span, ch, label) in marks.iter().filter(|m| line_of(src, m.0.start) == line) {
                let start = char_col(text, span.start.saturating_sub(line_start)).saturating_sub(skipped);
                let end = char_col(text, span.end.saturating_sub(line_start)).saturating_sub(skipped);
                let room = shown.chars().count().saturating_sub(start) + 1;
                let n = end.saturating_sub(start).clamp(1, room.max(1));
                let mut caret = format!("{:>width$} | {}{}", "", " ".repeat(start), ch.to_string().repeat(n));
                if !label.is_empty() {
                    caret.push(' ');
                    caret.push_str(label);
                }
                out.push_str(caret.trim_end());
                out.push('\n');
            }
        }
        for hint in &self.hints {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

/// Longest source line shown; longer lines are cut to a window around the first mark on them.
const MAX_SHOWN: usize = 100;

/// Zero-based line number containing byte `at` (clamped to the source).
fn line_of(src: &str, at: usize) -> usize {
    src.bytes().take(at.min(src.len())).filter(|b| *b == b'\n').count()
}

/// Byte offset where line `n` starts, and its text without the newline.
fn line_text(src: &str, n: usize) -> (usize, &str) {
    let mut start = 0;
    for (i, line) in src.split('\n').enumerate() {
        if i == n {
            return (start, line.strip_suffix('\r').unwrap_or(line));
        }
        start += line.len() + 1;
    }
    (src.len(), "")
}

/// Column (in chars) of byte offset `at` within `line`, counting past the end as one column per byte.
fn char_col(line: &str, at: usize) -> usize {
    if at >= line.len() {
        return line.chars().count() + (at - line.len());
    }
    line.char_indices().take_while(|(i, _)| *i < at).count()
}

/// The part of `text` to print (tabs as spaces) and how many columns were cut from its left.
fn window(text: &str, marks: &[(Span, char, &str)], line_start: usize) -> (String, usize) {
    let chars: Vec<char> = text.chars().map(|c| if c == '\t' || c.is_control() { ' ' } else { c }).collect();
    if chars.len() <= MAX_SHOWN {
        return (chars.into_iter().collect(), 0);
    }
    let first = marks
        .iter()
        .filter(|m| m.0.start >= line_start && m.0.start <= line_start + text.len())
        .map(|m| char_col(text, m.0.start - line_start))
        .min()
        .unwrap_or(0);
    let from = first.saturating_sub(MAX_SHOWN / 2).min(chars.len().saturating_sub(MAX_SHOWN));
    let to = (from + MAX_SHOWN).min(chars.len());
    let mut shown: String = chars[from..to].iter().collect();
    if to < chars.len() {
        shown.push('…');
    }
    if from > 0 {
        // The leading ellipsis takes one column, so the cut is one column less.
        shown.insert(0, '…');
        return (shown, from - 1);
    }
    (shown, from)
}
