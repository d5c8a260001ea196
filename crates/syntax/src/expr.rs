//! Boolean expressions: the search, the condition of `where`, and value groups `field:(a OR b)`.
//! Both levels share one shape (OR of ANDs of NOTs of primaries), written once as generic helpers;
//! the productions of grammar/kaq.ebnf are the thin named wrappers below them.

use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::tag;
use nom::combinator::value as to;

use crate::ast::{BoolExpr, CmpOp, Search, Term, Value, ValueExpr, ValueKind};
use crate::diag::{Code, Diagnostic};
use crate::input::{In, PErr, PResult, backtrack, fail, span, token_at, unexpected};
use crate::lex::{Keyword, field_ref, keyword, value, ws};
use crate::span::{Span, Spanned};

/// A production returning a boolean expression over leaves `T`.
type Prod<'a, T> = fn(In<'a>) -> PResult<'a, BoolExpr<T>>;

/// True if an operand can start at `i`: not the end, `)`, `|`, `AND` or `OR`.
pub(crate) fn starts_operand(i: In) -> bool {
    match i.peek() {
        None | Some(')' | '|') => false,
        _ => !matches!(keyword(i), Ok((_, k)) if k.node != Keyword::Not),
    }
}

/// E008 unless an operand starts at `i`; `op` is the operator that needs it.
fn need_operand<'a>(i: In<'a>, op: Span, name: &str) -> PResult<'a, ()> {
    if starts_operand(i) {
        return Ok((i, ()));
    }
    let (tok, at) = token_at(&i);
    let d = Diagnostic::new(Code::MissingOperand, op, format!("`{name}` needs a term after it"))
        .with_label(at, format!("found {tok}"));
    fail(d)
}

/// One level deeper, or E015 past [`crate::MAX_DEPTH`].
fn deeper(i: In, at: Span) -> PResult<()> {
    if i.depth >= crate::MAX_DEPTH {
        let msg = format!("nesting deeper than {} levels", crate::MAX_DEPTH);
        return fail(Diagnostic::new(Code::NestingTooDeep, at, msg).with_hint("flatten the expression"));
    }
    Ok((i.at_depth(i.depth + 1), ()))
}

/// One operand stays itself; two or more become an `Or`/`And` node.
fn join<T>(mut items: Vec<BoolExpr<T>>, sp: Span, or: bool) -> BoolExpr<T> {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    if or { BoolExpr::Or { items, span: sp } } else { BoolExpr::And { items, span: sp } }
}

fn or_of<'a, T>(i: In<'a>, and: Prod<'a, T>) -> PResult<'a, BoolExpr<T>> {
    let (mut rest, first) = and(i)?;
    let mut items = vec![first];
    loop {
        let (j, ()) = ws(rest)?;
        let Ok((k, kw)) = keyword(j) else { break };
        if kw.node != Keyword::Or {
            break;
        }
        let (k, ()) = ws(k)?;
        need_operand(k, kw.span, "OR")?;
        let (k, e) = and(k)?;
        items.push(e);
        rest = k;
    }
    Ok((rest, join(items, span(i, rest), true)))
}

fn and_of<'a, T>(i: In<'a>, not: Prod<'a, T>) -> PResult<'a, BoolExpr<T>> {
    let (mut rest, first) = not(i)?;
    let mut items = vec![first];
    loop {
        let (j, ()) = ws(rest)?;
        let next = match keyword(j) {
            Ok((k, kw)) if kw.node == Keyword::And => {
                let (k, ()) = ws(k)?;
                need_operand(k, kw.span, "AND")?;
                k
            }
            _ if starts_operand(j) => j,
            _ => break,
        };
        let (k, e) = not(next)?;
        items.push(e);
        rest = k;
    }
    Ok((rest, join(items, span(i, rest), false)))
}

fn not_of<'a, T>(i: In<'a>, primary: Prod<'a, T>, not: Prod<'a, T>) -> PResult<'a, BoolExpr<T>> {
    let (after, op) = match keyword(i) {
        Ok((k, kw)) if kw.node == Keyword::Not => (ws(k)?.0, kw.span),
        Ok((_, kw)) => {
            let msg = format!("`{}` needs a term before it", kw.node.as_str());
            let word = i.text.get(..kw.span.len()).unwrap_or_default();
            let hint = format!("to search for the word itself, quote it: `\"{word}\"`");
            return fail(Diagnostic::new(Code::MissingOperand, kw.span, msg).with_hint(hint));
        }
        Err(_) if i.peek() == Some('-') => {
            let op = Span::new(i.offset, i.offset + 1);
            if i.peek2().is_some_and(char::is_whitespace) {
                let d = Diagnostic::new(Code::MissingOperand, op, "`-` must be followed directly by a term")
                    .with_hint("write `-verb:get` or `NOT verb:get`");
                return fail(d);
            }
            (i.skip(1), op)
        }
        Err(_) => return primary(i),
    };
    need_operand(after, op, if op.len() == 1 { "-" } else { "NOT" })?;
    let (inner_in, ()) = deeper(after, op)?;
    let (rest, inner) = not(inner_in)?;
    let rest = rest.at_depth(i.depth);
    Ok((rest, BoolExpr::Not { inner: Box::new(inner), span: span(i, rest) }))
}

fn group_of<'a, T>(i: In<'a>, or: Prod<'a, T>) -> PResult<'a, BoolExpr<T>> {
    if i.peek() != Some('(') {
        return backtrack(i);
    }
    let open = Span::new(i.offset, i.offset + 1);
    let (j, ()) = deeper(i.skip(1), open)?;
    let (j, ()) = ws(j)?;
    match j.peek() {
        Some(')') => {
            let d = Diagnostic::new(Code::MissingOperand, Span::new(open.start, j.offset + 1), "empty parentheses");
            return fail(d);
        }
        None | Some('|') => return unclosed(open, j),
        _ => {}
    }
    let (j, e) = or(j)?;
    let (k, ()) = ws(j)?;
    if k.peek() != Some(')') {
        return unclosed(open, k);
    }
    Ok((k.skip(1).at_depth(i.depth), e))
}

fn unclosed<'a, T>(open: Span, at: In<'a>) -> PResult<'a, T> {
    let d = Diagnostic::new(Code::UnbalancedParen, at.here(), "unclosed parenthesis: expected `)`")
        .with_label(open, "this `(` is never closed");
    fail(d)
}

/// E006 for a `)` that closes nothing.
pub(crate) fn unmatched(i: &In) -> Diagnostic {
    Diagnostic::new(Code::UnbalancedParen, Span::new(i.offset, i.offset + 1), "unmatched `)`")
        .with_hint("remove it, or add the `(` it should close")
}

/// `search ::= or_expr`
pub(crate) fn search(i: In) -> PResult<Search> {
    or_expr(i)
}

/// `or_expr ::= and_expr ( OR and_expr )*`
pub(crate) fn or_expr(i: In) -> PResult<Search> {
    or_of(i, and_expr)
}

/// `and_expr ::= not_expr ( AND? not_expr )*` — juxtaposition is AND.
pub(crate) fn and_expr(i: In) -> PResult<Search> {
    and_of(i, not_expr)
}

/// `not_expr ::= ( NOT | '-' ) not_expr | primary`
pub(crate) fn not_expr(i: In) -> PResult<Search> {
    not_of(i, primary, not_expr)
}

/// `primary ::= '(' or_expr ')' | term`
pub(crate) fn primary(i: In) -> PResult<Search> {
    if i.peek() == Some('(') { group_of(i, or_expr) } else { term(i).map(|(j, t)| (j, BoolExpr::Leaf(t))) }
}

/// `term ::= macro_ref | field_term | text_term`
pub(crate) fn term(i: In) -> PResult<Term> {
    match i.peek() {
        Some('@') => return macro_ref(i),
        Some(')') => return fail(unmatched(&i)),
        None | Some('|') => return fail(Diagnostic::new(Code::MissingOperand, i.here(), "expected a term")),
        Some('!') => return fail(unexpected(&i, "").with_hint("negate with `NOT` or a leading `-`: `-verb:get`")),
        Some(':' | '<' | '>' | '=') => {
            return fail(unexpected(&i, "").with_hint("write the field name right before it: `code>=400`"));
        }
        _ => {}
    }
    match field_term(i) {
        Err(nom::Err::Error(_)) => text_term(i),
        other => other,
    }
}

/// `field_term ::= field_ref ( ':' match_value | cmp_op cmp_value )`
pub(crate) fn field_term(i: In) -> PResult<Term> {
    let (j, field) = field_ref(i)?;
    if j.peek() == Some(':') {
        let (k, value) = match_value(j).map_err(|e| widen_missing_value(e, field.span.start))?;
        return Ok((k, Term::Match { field, value, span: span(i, k) }));
    }
    let (k, ()) = ws(j)?;
    let Ok((k, op)) = cmp_op(k) else { return backtrack(i) };
    let (k, ()) = ws(k)?;
    let (k, value) = cmp_value(k, op).map_err(|e| widen_missing_value(e, field.span.start))?;
    Ok((k, Term::Compare { field, op, value, span: span(i, k) }))
}

/// Stretches an E007 pointing at `:` or the operator back to the field, so the whole unfinished
/// term is underlined (and a lenient parse cuts before it).
fn widen_missing_value(mut e: nom::Err<PErr>, field_start: usize) -> nom::Err<PErr> {
    if let nom::Err::Failure(PErr::Diag(d)) = &mut e
        && d.code == Code::MissingValue
        && d.span.start > field_start
        && d.labels.iter().all(|(_, text)| !text.starts_with("compared"))
    {
        d.span.start = field_start;
    }
    e
}

/// `match_value ::= ':' ( value_group | value )` — no space after the colon.
pub(crate) fn match_value(i: In) -> PResult<ValueExpr> {
    let colon = Span::new(i.offset, i.offset + 1);
    let j = i.skip(1);
    match j.peek() {
        None | Some(')' | '|') => {
            fail(missing_value(colon, "`:`").with_hint("use `field:*` to test that a field is present"))
        }
        Some(c) if c.is_whitespace() => {
            let next = ws(j).map(|(k, ())| k.peek()).unwrap_or(None);
            let hint = match next {
                None | Some(')' | '|') => "use `field:*` to test that a field is present",
                _ => "write the value right after `:`, e.g. `user:alice`",
            };
            fail(missing_value(colon, "`:`").with_hint(hint))
        }
        Some('(') => value_group(j),
        _ => value(j).map(|(k, v)| (k, BoolExpr::Leaf(v))),
    }
}

fn missing_value(at: Span, after: &str) -> Diagnostic {
    Diagnostic::new(Code::MissingValue, at, format!("missing value after {after}"))
}

/// `cmp_op ::= '<=' | '>=' | '!=' | '<' | '>' | '='`
pub(crate) fn cmp_op(i: In) -> PResult<Spanned<CmpOp>> {
    let (j, op) = alt((
        to(CmpOp::Le, tag("<=")),
        to(CmpOp::Ge, tag(">=")),
        to(CmpOp::Ne, tag("!=")),
        to(CmpOp::Lt, tag("<")),
        to(CmpOp::Gt, tag(">")),
        to(CmpOp::Eq, tag("=")),
    ))
    .parse(i)?;
    Ok((j, Spanned::new(op, span(i, j))))
}

/// `cmp_value ::= quoted | bare_value` — not starting with an operator character.
pub(crate) fn cmp_value(i: In, op: Spanned<CmpOp>) -> PResult<Value> {
    let after = format!("`{}`", op.node.as_str());
    let op = op.span;
    match i.peek() {
        None | Some(')' | '|' | '(') => return fail(missing_value(op, &after)),
        Some('<' | '>' | '=' | '!') => {
            let (tok, at) = token_at(&i);
            let d = missing_value(op, &after).with_label(at, format!("found {tok}"));
            return fail(d.with_hint("the operators are `=`, `!=`, `<`, `<=`, `>`, `>=`"));
        }
        _ => {}
    }
    let (j, v) = value(i)?;
    if matches!(v.kind, ValueKind::Regex { .. } | ValueKind::Exists) {
        let d = Diagnostic::new(Code::MissingValue, v.span, "a comparison needs a plain value")
            .with_label(op, "compared here")
            .with_hint("use `field:/regex/` or `field:*` instead of an operator");
        return fail(d);
    }
    Ok((j, v))
}

/// `text_term ::= value` — free text: a word, phrase or regex with no field.
pub(crate) fn text_term(i: In) -> PResult<Term> {
    value(i).map(|(j, v)| (j, Term::Text(v)))
}

/// `macro_ref ::= '@' [A-Za-z0-9_] [A-Za-z0-9_.-]*`
pub(crate) fn macro_ref(i: In) -> PResult<Term> {
    let body = i.skip(1);
    let len = body
        .text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(body.text.len());
    let name = &body.text[..len];
    let end = body.skip(len);
    if name.is_empty() || name.starts_with(['.', '-']) || !crate::lex::at_delim(&end) {
        let d = unexpected(&i, "")
            .with_hint("a macro reference is `@` and a name of letters, digits, `_`, `.`, `-`: `@prod-deletes`");
        return fail(d);
    }
    Ok((end, Term::Macro(Spanned::new(name.to_string(), span(i, end)))))
}

/// `value_group ::= '(' value_or ')'`
pub(crate) fn value_group(i: In) -> PResult<ValueExpr> {
    group_of(i, value_or)
}

/// `value_or ::= value_and ( OR value_and )*`
pub(crate) fn value_or(i: In) -> PResult<ValueExpr> {
    or_of(i, value_and)
}

/// `value_and ::= value_not ( AND? value_not )*`
pub(crate) fn value_and(i: In) -> PResult<ValueExpr> {
    and_of(i, value_not)
}

/// `value_not ::= ( NOT | '-' ) value_not | value_primary`
pub(crate) fn value_not(i: In) -> PResult<ValueExpr> {
    not_of(i, value_primary, value_not)
}

/// `value_primary ::= value_group | value`
pub(crate) fn value_primary(i: In) -> PResult<ValueExpr> {
    if i.peek() == Some('(') { value_group(i) } else { value(i).map(|(j, v)| (j, BoolExpr::Leaf(v))) }
}
