//! The public API around the parser: lenient parsing, rendering, codes, suggestions.

use kaq_syntax::{BoolExpr, Code, Diagnostic, Span, Stage, Term, did_you_mean, edit_distance, parse, parse_lenient};

#[test]
fn lenient_keeps_the_prefix_before_a_trailing_pipe() {
    let (q, d) = parse_lenient("verb:delete | count by verb |");
    assert_eq!(d[0].code, Code::EmptyStage);
    let q = q.expect("partial");
    assert_eq!(q.to_string(), "verb:delete | count by verb");
}

#[test]
fn lenient_keeps_the_prefix_before_an_unclosed_paren() {
    let (q, d) = parse_lenient("verb:delete (ns:prod OR ns:dev");
    assert_eq!(d[0].code, Code::UnbalancedParen);
    assert_eq!(d[0].labels[0].0, Span::new(12, 13), "label on the opening paren");
    assert_eq!(q.expect("partial").to_string(), "verb:delete");
}

#[test]
fn lenient_keeps_stages_before_a_bad_one() {
    let (q, d) = parse_lenient("code:401 | count by ip | whre count > 20 | sort -count");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, Code::UnknownStage);
    let q = q.expect("partial");
    assert_eq!(q.stages.len(), 1);
    assert!(matches!(q.stages[0], Stage::Count { .. }));
    assert_eq!(q.span, Span::new(0, 54));
}

#[test]
fn lenient_on_valid_input_is_parse() {
    let (q, d) = parse_lenient("a | head");
    assert!(d.is_empty());
    assert_eq!(q.expect("query").to_string(), "a | head");
}

#[test]
fn lenient_mid_term_error() {
    let (q, d) = parse_lenient("verb:get ns:");
    assert_eq!(d[0].code, Code::MissingValue);
    assert_eq!(d[0].span, Span::new(9, 12), "the whole unfinished term `ns:`");
    let q = q.expect("partial");
    assert!(matches!(q.search, Some(BoolExpr::Leaf(Term::Match { .. }))));
    assert_eq!(q.to_string(), "verb:get");
}

#[test]
fn render_format() {
    let src = "verb:delete (ns:prod";
    let d = &parse(src).unwrap_err()[0];
    assert_eq!(
        d.render(src),
        "error[E006]: unclosed parenthesis: expected `)`\n\
         1 | verb:delete (ns:prod\n  \
           |                     ^\n  \
           |             - this `(` is never closed\n"
    );
}

#[test]
fn render_multiline_points_at_the_right_line() {
    let src = "verb:get\n| count by verb\n| hed 5";
    let d = &parse(src).unwrap_err()[0];
    assert_eq!(d.code, Code::UnknownStage);
    assert_eq!(d.render(src), "error[E010]: unknown stage `hed`\n3 | | hed 5\n  |   ^^^\nhint: did you mean `head`?\n");
}

#[test]
fn render_never_panics_on_foreign_spans() {
    let d = Diagnostic::new(Code::UnexpectedToken, Span::new(5, 400), "x").with_label(Span::new(900, 2), "y");
    for src in ["", "é", "ab\ncd", "\r\n\r\n"] {
        let out = d.render(src);
        assert!(out.starts_with("error[E001]: x\n"));
    }
}

#[test]
fn codes_are_stable_and_unique() {
    let strs: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(strs, (1..=22).map(|n| format!("E{n:03}")).collect::<Vec<_>>());
    for c in Code::ALL {
        assert_eq!(Code::from_code_str(c.as_str()), Some(*c));
    }
}

#[test]
fn suggestions() {
    assert_eq!(edit_distance("srot", "sort"), 1);
    assert_eq!(edit_distance("COUNT", "count"), 0);
    assert_eq!(did_you_mean("cout", &["count", "sort"]), Some("count"));
    assert_eq!(did_you_mean("xyz", &["count", "sort"]), None);
    let d = &parse("| srot -count").unwrap_err()[0];
    assert_eq!(d.hints, ["did you mean `sort`?"]);
    let d = &parse("| stats p98(latency)").unwrap_err()[0];
    assert_eq!((d.code, d.hints[0].as_str()), (Code::UnknownAggregate, "did you mean `p90`?"));
}

#[test]
fn eq_ignoring_spans_ignores_layout_only() {
    let a = parse("verb:get   -user:x | fields a,b").unwrap();
    let b = parse("verb:get NOT user:x | table a, b").unwrap();
    assert_ne!(a, b);
    assert!(a.eq_ignoring_spans(&b));
    assert!(!a.eq_ignoring_spans(&parse("verb:get user:x | table a, b").unwrap()));
}

#[test]
fn field_named_by_is_quoted_in_stages() {
    let q = parse("| count by \"by\", as").unwrap();
    assert_eq!(q.to_string(), "| count by \"by\", as");
    assert_eq!(parse("| top 10 by").unwrap_err()[0].code, Code::BadStageArgument);
}
