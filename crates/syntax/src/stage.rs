//! Pipeline stages after `|`. Each `*_stage` function is the production of the same name in
//! grammar/kaq.ebnf; it starts at the stage name and stops after its last argument.

use nom::Parser;
use nom::bytes::complete::tag;
use nom::character::complete::char;

use crate::ast::{AggFunc, Aggregate, FieldRef, STAGE_NAMES, SortKey, Stage, Term};
use crate::diag::{Code, Diagnostic};
use crate::expr::{or_expr, starts_operand};
use crate::input::{In, PResult, fail, span, token_at};
use crate::lex::{field_ref, ident, interval, is_delim, number, word, ws};
use crate::span::Spanned;
use crate::suggest::did_you_mean;

fn bad_arg(i: &In, msg: &str, example: &str) -> Diagnostic {
    let (tok, at) = token_at(i);
    Diagnostic::new(Code::BadStageArgument, at, format!("{msg}, found {tok}"))
        .with_hint(format!("for example `{example}`"))
}

/// `stage ::= where_stage | table_stage | sort_stage | head_stage | count_stage | stats_stage
///          | top_stage | rare_stage | timeline_stage | dedup_stage`
pub(crate) fn stage(i: In) -> PResult<Stage> {
    let Ok((j, name)) = word(i) else {
        let (tok, at) = token_at(&i);
        let d = Diagnostic::new(Code::UnknownStage, at, format!("expected a stage name after `|`, found {tok}"))
            .with_hint(format!("the stages are: {}", STAGE_NAMES.join(", ")));
        return fail(d);
    };
    match name.text {
        "where" => where_stage(i),
        "table" | "fields" => table_stage(i),
        "sort" => sort_stage(i),
        "head" => head_stage(i),
        "count" => count_stage(i),
        "stats" => stats_stage(i),
        "top" | "rare" => top_stage(i),
        "timeline" => timeline_stage(i),
        "dedup" => dedup_stage(i),
        other => {
            let mut d = Diagnostic::new(Code::UnknownStage, span(i, j), format!("unknown stage `{other}`"));
            if let Some(s) = did_you_mean(other, STAGE_NAMES) {
                d = d.with_hint(format!("did you mean `{s}`?"));
            } else if j.peek().is_some_and(|c| matches!(c, ':' | '<' | '>' | '=' | '!' | '.')) {
                let cond: String = i.text.chars().take_while(|c| !c.is_whitespace() && *c != '|').take(40).collect();
                d = d.with_hint(format!("to filter after `|`, use `where`: `| where {cond}`"));
            } else {
                d = d.with_hint(format!("the stages are: {}", STAGE_NAMES.join(", ")));
            }
            fail(d)
        }
    }
}

/// `where_stage ::= 'where' or_expr` — leaves must be `field:value` or comparisons.
pub(crate) fn where_stage(i: In) -> PResult<Stage> {
    let (j, _) = tag("where").parse(i)?;
    let (j, ()) = ws(j)?;
    if !starts_operand(j) {
        return fail(bad_arg(&j, "`where` needs a condition", "where count > 20"));
    }
    let (k, expr) = or_expr(j.at_depth(0))?;
    let mut bad = None;
    expr.for_each_leaf(&mut |t| {
        if bad.is_none() && matches!(t, Term::Text(_) | Term::Macro(_)) {
            bad = Some(t.span());
        }
    });
    if let Some(at) = bad {
        let d = Diagnostic::new(Code::TextInWhere, at, "`where` takes field conditions, not free text or macros")
            .with_hint("compare a field or column, e.g. `where user:alice` or `where count > 20`; put free text before the first `|`");
        return fail(d);
    }
    Ok((k, Stage::Where { expr, span: span(i, k) }))
}

/// `table_stage ::= ( 'table' | 'fields' ) field_list`
pub(crate) fn table_stage(i: In) -> PResult<Stage> {
    let (j, name) = word(i)?;
    let (j, ()) = ws(j)?;
    let (k, fields) = field_list(j, &format!("`{}` needs a field", name.text), "table time, user, verb")?;
    Ok((k, Stage::Table { fields, span: span(i, k) }))
}

/// `dedup_stage ::= 'dedup' field_list`
pub(crate) fn dedup_stage(i: In) -> PResult<Stage> {
    let (j, _) = tag("dedup").parse(i)?;
    let (j, ()) = ws(j)?;
    let (k, fields) = field_list(j, "`dedup` needs a field", "dedup user, ip")?;
    Ok((k, Stage::Dedup { fields, span: span(i, k) }))
}

/// `sort_stage ::= 'sort' sort_key ( ',' sort_key )*`
pub(crate) fn sort_stage(i: In) -> PResult<Stage> {
    let (j, _) = tag("sort").parse(i)?;
    let (j, ()) = ws(j)?;
    let (mut end, first) = sort_key(j)?;
    let mut keys = vec![first];
    while let Some(after) = comma(end)?.1 {
        let (k, key) = sort_key(after)?;
        keys.push(key);
        end = k;
    }
    Ok((end, Stage::Sort { keys, span: span(i, end) }))
}

/// `sort_key ::= ( '-' | '+' )? field_ref`
pub(crate) fn sort_key(i: In) -> PResult<SortKey> {
    let (j, descending) = match i.peek() {
        Some('-') => (i.skip(1), true),
        Some('+') => (i.skip(1), false),
        _ => (i, false),
    };
    let (k, field) = stage_field(j, "`sort` needs a field", "sort -count, user")?;
    Ok((k, SortKey { field, descending, span: span(i, k) }))
}

/// `head_stage ::= 'head' count_arg?`
pub(crate) fn head_stage(i: In) -> PResult<Stage> {
    let (j, _) = tag("head").parse(i)?;
    let (k, ()) = ws(j)?;
    if k.peek().is_none_or(|c| c == '|') {
        return Ok((j, Stage::Head { limit: None, span: span(i, j) }));
    }
    let (k, n) = count_arg(k, "`head` takes a number of rows", "head 20")?;
    Ok((k, Stage::Head { limit: Some(n), span: span(i, k) }))
}

/// `count_stage ::= 'count' by_clause?`
pub(crate) fn count_stage(i: In) -> PResult<Stage> {
    let (j, _) = tag("count").parse(i)?;
    let (end, by) = by_clause(j)?;
    Ok((end, Stage::Count { by, span: span(i, end) }))
}

/// `stats_stage ::= 'stats' aggregate ( ',' aggregate )* by_clause?`
pub(crate) fn stats_stage(i: In) -> PResult<Stage> {
    let (j, _) = tag("stats").parse(i)?;
    let (j, ()) = ws(j)?;
    let (mut end, first) = aggregate(j)?;
    let mut aggregates = vec![first];
    while let Some(after) = comma(end)?.1 {
        let (k, agg) = aggregate(after)?;
        aggregates.push(agg);
        end = k;
    }
    let (end, by) = by_clause(end)?;
    Ok((end, Stage::Stats { aggregates, by, span: span(i, end) }))
}

/// `aggregate ::= agg_name ( '(' field_ref ')' )? ( 'as' ident )?` — only `count` may omit the field.
pub(crate) fn aggregate(i: In) -> PResult<Aggregate> {
    const EXAMPLE: &str = "stats count, p99(latency) by verb";
    let name = match word(i) {
        Ok((j, w)) if w.text != "by" => (j, w),
        _ => return fail(bad_arg(&i, "`stats` needs an aggregate", EXAMPLE)),
    };
    let (j, w) = name;
    let Some(func) = AggFunc::from_name(w.text) else {
        let names: Vec<&str> = AggFunc::ALL.iter().map(|f| f.as_str()).collect();
        let mut d = Diagnostic::new(Code::UnknownAggregate, span(i, j), format!("unknown aggregate `{}`", w.text));
        d = match did_you_mean(w.text, &names) {
            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
            None => d.with_hint(format!("the aggregates are: {}", names.join(", "))),
        };
        return fail(d);
    };
    let func = Spanned::new(func, span(i, j));
    let (mut end, mut field) = (j, None);
    if j.peek() == Some('(') {
        let (k, ()) = ws(j.skip(1))?;
        let what = format!("`{}(` needs a field", w.text);
        let (k, f) = stage_field(k, &what, "dc(user)")?;
        let (k, ()) = ws(k)?;
        let Ok((k, _)) = char::<_, crate::input::PErr>(')').parse(k) else {
            return fail(bad_arg(&k, &format!("expected `)` to close `{}(`", w.text), "p99(latency)"));
        };
        (end, field) = (k, Some(f));
    } else if func.node != AggFunc::Count {
        let d = Diagnostic::new(Code::BadStageArgument, func.span, format!("`{}` needs a field", w.text))
            .with_hint(format!("for example `{}(latency)`", w.text));
        return fail(d);
    }
    let (k, ()) = ws(end)?;
    let mut alias = None;
    if let Ok((after_as, kw)) = word(k)
        && kw.text == "as"
    {
        let (n, ()) = ws(after_as)?;
        match ident(n) {
            Ok((m, name)) if name.text != "by" => {
                alias = Some(Spanned::new(name.text.to_string(), span(n, m)));
                end = m;
            }
            _ => return fail(bad_arg(&n, "expected a column name after `as`", "dc(name) as secrets")),
        }
    }
    Ok((end, Aggregate { func, field, alias, span: span(i, end) }))
}

/// `top_stage ::= ( 'top' | 'rare' ) count_arg field_ref by_clause?`
pub(crate) fn top_stage(i: In) -> PResult<Stage> {
    let (j, name) = word(i)?;
    let is_top = name.text == "top";
    let example = if is_top { "top 10 user" } else { "rare 5 user" };
    let (j, ()) = ws(j)?;
    let (j, limit) = count_arg(j, &format!("`{}` needs a number first", name.text), example)?;
    let (j, ()) = ws(j)?;
    let (j, field) = stage_field(j, &format!("`{} {}` needs a field", name.text, limit.node), example)?;
    let (end, by) = by_clause(j)?;
    let sp = span(i, end);
    let stage =
        if is_top { Stage::Top { limit, field, by, span: sp } } else { Stage::Rare { limit, field, by, span: sp } };
    Ok((end, stage))
}

/// `timeline_stage ::= 'timeline' interval ( 'by' field_ref )?`
pub(crate) fn timeline_stage(i: In) -> PResult<Stage> {
    const EXAMPLE: &str = "timeline 5m by verb";
    let (j, _) = tag("timeline").parse(i)?;
    let (j, ()) = ws(j)?;
    let Ok((after, interval)) = interval(j) else {
        return fail(bad_arg(&j, "`timeline` needs an interval such as `5m`", EXAMPLE));
    };
    let (k, ()) = ws(after)?;
    let (end, by) = match word(k) {
        Ok((l, w)) if w.text == "by" => {
            let (l, ()) = ws(l)?;
            let (l, f) = stage_field(l, "`by` needs a field", EXAMPLE)?;
            (l, Some(f))
        }
        _ => (after, None),
    };
    Ok((end, Stage::Timeline { interval, by, span: span(i, end) }))
}

/// `by_clause ::= 'by' field_list` — returns the input unchanged (and no fields) when absent.
pub(crate) fn by_clause(i: In) -> PResult<Vec<FieldRef>> {
    let (j, ()) = ws(i)?;
    match word(j) {
        Ok((k, w)) if w.text == "by" => {
            let (k, ()) = ws(k)?;
            field_list(k, "`by` needs a field", "count by user, verb")
        }
        _ => Ok((i, Vec::new())),
    }
}

/// `field_list ::= field_ref ( ',' field_ref )*`
pub(crate) fn field_list<'a>(i: In<'a>, what: &str, example: &str) -> PResult<'a, Vec<FieldRef>> {
    let (mut end, first) = stage_field(i, what, example)?;
    let mut fields = vec![first];
    while let Some(after) = comma(end)?.1 {
        let (k, f) = stage_field(after, "expected a field after `,`", example)?;
        fields.push(f);
        end = k;
    }
    Ok((end, fields))
}

/// After optional whitespace, a `,` and more whitespace: the input after them, or `None`.
fn comma(i: In) -> PResult<Option<In>> {
    let (j, ()) = ws(i)?;
    if j.peek() != Some(',') {
        return Ok((i, None));
    }
    let (k, ()) = ws(j.skip(1))?;
    Ok((k, Some(k)))
}

/// A field in a stage argument. An unquoted `by` is never a field here (quote it: `"by"`).
fn stage_field<'a>(i: In<'a>, what: &str, example: &str) -> PResult<'a, FieldRef> {
    match field_ref(i) {
        Ok((j, f)) if !(f.span.len() == 2 && f.segments == ["by"]) => Ok((j, f)),
        Err(nom::Err::Failure(e)) => Err(nom::Err::Failure(e)),
        _ => fail(bad_arg(&i, what, example)),
    }
}

/// `count_arg ::= number` followed by a delimiter.
fn count_arg<'a>(i: In<'a>, what: &str, example: &str) -> PResult<'a, Spanned<u64>> {
    match number(i) {
        Ok((j, n)) if j.peek().is_none_or(is_delim) => Ok((j, n)),
        Err(nom::Err::Failure(e)) => Err(nom::Err::Failure(e)),
        _ => fail(bad_arg(&i, what, example)),
    }
}
