//! Limits give their codes instead of crashing.

use kaq_syntax::{Code, MAX_DEPTH, MAX_QUERY_LEN, MAX_REGEX_LEN, Span, parse, parse_lenient};

fn code(src: &str) -> Code {
    parse(src).expect_err("should fail")[0].code
}

#[test]
fn hundred_thousand_parens_gives_a_limit_code_not_a_stack_overflow() {
    // 100 000 bytes is over the length limit, which is checked first and costs nothing.
    let src = "(".repeat(100_000);
    assert_eq!(parse(&src).expect_err("too long")[0].code, Code::QueryTooLong);
    assert_eq!(parse_lenient(&src).1[0].code, Code::QueryTooLong);
    // The longest accepted input made only of `(` reaches the depth check at the 65th paren.
    let src = "(".repeat(MAX_QUERY_LEN);
    let d = &parse(&src).expect_err("too deep")[0];
    assert_eq!(d.code, Code::NestingTooDeep);
    assert_eq!(d.span, Span::new(MAX_DEPTH, MAX_DEPTH + 1), "points at the first `(` past the limit");
    let (partial, diags) = parse_lenient(&src);
    assert_eq!(diags[0].code, Code::NestingTooDeep);
    assert!(partial.is_none(), "no prefix of unclosed parens parses");
}

#[test]
fn deep_not_and_value_groups_are_limited_too() {
    assert_eq!(code(&format!("{}x", "NOT ".repeat(10_000))), Code::NestingTooDeep);
    assert_eq!(code(&format!("{}x", "-".repeat(10_000))), Code::NestingTooDeep);
    assert_eq!(code(&format!("f:{}x", "(".repeat(10_000))), Code::NestingTooDeep);
    assert_eq!(code(&format!("| where {}x:1", "(".repeat(10_000))), Code::NestingTooDeep);
}

#[test]
fn depth_exactly_at_the_limit_parses() {
    let ok = format!("{}x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = format!("{}x{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert_eq!(code(&deep), Code::NestingTooDeep);
}

#[test]
fn one_mebibyte_is_too_long() {
    let src = "a ".repeat(512 * 1024);
    let d = &parse(&src).expect_err("too long")[0];
    assert_eq!(d.code, Code::QueryTooLong);
    assert_eq!(d.span, Span::new(MAX_QUERY_LEN, src.len()));
    assert!(d.render(&src).len() < 1000, "the renderer cuts long lines");
    let (partial, diags) = parse_lenient(&src);
    assert!(partial.is_none());
    assert_eq!(diags[0].code, Code::QueryTooLong);
}

#[test]
fn exactly_the_maximum_length_parses() {
    let src = "a ".repeat(MAX_QUERY_LEN / 2);
    assert_eq!(src.len(), MAX_QUERY_LEN);
    let q = parse(&src).expect("at the limit");
    assert!(matches!(q.search, Some(kaq_syntax::BoolExpr::And { ref items, .. }) if items.len() == MAX_QUERY_LEN / 2));
}

#[test]
fn long_multibyte_input_cuts_on_a_char_boundary() {
    let src = "é".repeat(MAX_QUERY_LEN);
    let d = &parse(&src).expect_err("too long")[0];
    assert_eq!(d.code, Code::QueryTooLong);
    assert!(src.is_char_boundary(d.span.start));
    let _ = d.render(&src);
}

#[test]
fn regex_length_limit() {
    let at = format!("uri:/{}/", "a".repeat(MAX_REGEX_LEN));
    assert!(parse(&at).is_ok());
    let over = format!("uri:/{}/", "a".repeat(MAX_REGEX_LEN + 1));
    assert_eq!(code(&over), Code::RegexTooLong);
}

#[test]
fn maximum_depth_fits_a_small_stack() {
    // Mixed NOT, parentheses and a value group at the full depth, in a where stage too, parsed and
    // printed on a thread with half the default test stack. Measured when written: this needs
    // 512–640 KiB in a debug build and 64–128 KiB in release.
    let half = MAX_DEPTH / 2;
    let search = format!("{}x{}", "NOT (".repeat(half), ")".repeat(half));
    let group = format!("f:{}x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    let queries = [search.clone(), group, format!("{search} | where {}", search.replace('x', "c>1"))];
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            for q in &queries {
                let parsed = parse(q).unwrap_or_else(|d| panic!("{}", d[0].render(q)));
                assert!(parse(&parsed.to_string()).is_ok_and(|p| p.eq_ignoring_spans(&parsed)));
            }
        })
        .expect("spawn")
        .join()
        .expect("no stack overflow");
}
