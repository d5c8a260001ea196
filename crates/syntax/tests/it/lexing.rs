//! Tricky lexing, asserted on the tree (and on spans where they matter).

use kaq_syntax::{AggFunc, BoolExpr, CmpOp, Query, Search, Span, Stage, Term, Value, ValueKind, parse};

fn q(src: &str) -> Query {
    parse(src).unwrap_or_else(|d| panic!("{src}:\n{}", d[0].render(src)))
}

fn search(src: &str) -> Search {
    q(src).search.expect("a search")
}

fn bare(text: &str) -> ValueKind {
    ValueKind::Bare { text: text.into(), has_wildcard: text.contains(['*', '?']) }
}

/// The single `field:value` of `src`, as (dotted field, value kind, value span text).
fn single_match(src: &str) -> (String, ValueKind, String) {
    match search(src) {
        BoolExpr::Leaf(Term::Match { field, value: BoolExpr::Leaf(Value { kind, span }), .. }) => {
            (field.dotted(), kind, span.text(src).unwrap_or_default().to_string())
        }
        other => panic!("{src}: not a single match: {other:?}"),
    }
}

#[test]
fn value_may_contain_colons() {
    let (f, v, text) = single_match("user:system:serviceaccount:ci:deployer");
    assert_eq!((f.as_str(), v), ("user", bare("system:serviceaccount:ci:deployer")));
    assert_eq!(text, "system:serviceaccount:ci:deployer");
}

#[test]
fn minus_prefix_negates_a_field_term() {
    let src = "-user_kind:node";
    let BoolExpr::Not { inner, span } = search(src) else { panic!("not a NOT") };
    assert_eq!(span, Span::new(0, 15));
    let BoolExpr::Leaf(Term::Match { field, value, span }) = *inner else { panic!("not a match") };
    assert_eq!(field.segments, ["user_kind"]);
    assert_eq!(field.span, Span::new(1, 10));
    assert_eq!(span, Span::new(1, 15));
    assert_eq!(value, BoolExpr::Leaf(Value { kind: bare("node"), span: Span::new(11, 15) }));
}

#[test]
fn wildcard_prefix_is_flagged() {
    assert_eq!(single_match("ns:prod*").1, ValueKind::Bare { text: "prod*".into(), has_wildcard: true });
    assert_eq!(single_match("name:?x").1, ValueKind::Bare { text: "?x".into(), has_wildcard: true });
    assert_eq!(single_match("ns:\"prod*\"").1, ValueKind::Quoted { text: "prod*".into() });
    assert_eq!(single_match("as:*").1, ValueKind::Exists);
}

#[test]
fn status_class_and_cidr_stay_raw_text() {
    assert_eq!(single_match("code:4xx").1, bare("4xx"));
    let (f, v, text) = single_match("ip:203.0.113.0/24");
    assert_eq!((f.as_str(), v, text.as_str()), ("ip", bare("203.0.113.0/24"), "203.0.113.0/24"));
}

#[test]
fn phrase_then_timeline() {
    let src = "\"is forbidden\" | timeline 5m";
    let q = q(src);
    assert_eq!(
        q.search,
        Some(BoolExpr::Leaf(Term::Text(Value {
            kind: ValueKind::Quoted { text: "is forbidden".into() },
            span: Span::new(0, 14)
        })))
    );
    let [Stage::Timeline { interval, by: None, span }] = q.stages.as_slice() else { panic!("{:?}", q.stages) };
    assert_eq!((interval.node.as_str(), interval.span.text(src)), ("5m", Some("5m")));
    assert_eq!(span.text(src), Some("timeline 5m"));
}

#[test]
fn quoted_field_segment() {
    let src = "annotations.\"authorization.k8s.io/decision\":forbid";
    let (f, v, _) = single_match(src);
    assert_eq!(f, "annotations.authorization.k8s.io/decision");
    assert_eq!(v, bare("forbid"));
    let BoolExpr::Leaf(Term::Match { field, .. }) = search(src) else { panic!() };
    assert_eq!(field.segments, ["annotations", "authorization.k8s.io/decision"]);
    assert_eq!(field.span.text(src), Some("annotations.\"authorization.k8s.io/decision\""));
    assert_eq!(q(src).to_string(), src);
}

#[test]
fn dotted_path_with_dashed_value() {
    let BoolExpr::Leaf(Term::Match { field, value, .. }) = search("request.roleRef.name:cluster-admin") else {
        panic!()
    };
    assert_eq!(field.segments, ["request", "roleRef", "name"]);
    assert!(
        matches!(value, BoolExpr::Leaf(Value { kind: ValueKind::Bare { ref text, has_wildcard: false }, .. }) if text == "cluster-admin")
    );
}

#[test]
fn value_group_or() {
    let src = "verb:(delete OR deletecollection)";
    let BoolExpr::Leaf(Term::Match { value: BoolExpr::Or { items, span }, .. }) = search(src) else { panic!() };
    assert_eq!(span.text(src), Some("delete OR deletecollection"));
    let kinds: Vec<_> = items
        .iter()
        .map(|e| match e {
            BoolExpr::Leaf(v) => v.kind.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [bare("delete"), bare("deletecollection")]);
}

#[test]
fn comparison_then_stats() {
    let src = "latency>1s | stats count, p50(latency), p99(latency), max(latency) by verb, resource";
    let q = q(src);
    let Some(BoolExpr::Leaf(Term::Compare { field, op, value, .. })) = &q.search else { panic!() };
    assert_eq!((field.dotted().as_str(), op.node, &value.kind), ("latency", CmpOp::Gt, &bare("1s")));
    let [Stage::Stats { aggregates, by, .. }] = q.stages.as_slice() else { panic!() };
    let funcs: Vec<(AggFunc, Option<String>)> =
        aggregates.iter().map(|a| (a.func.node, a.field.as_ref().map(|f| f.dotted()))).collect();
    let lat = || Some("latency".to_string());
    assert_eq!(funcs, [(AggFunc::Count, None), (AggFunc::P50, lat()), (AggFunc::P99, lat()), (AggFunc::Max, lat())]);
    assert_eq!(by.iter().map(|f| f.dotted()).collect::<Vec<_>>(), ["verb", "resource"]);
}

#[test]
fn stats_alias() {
    let src = "| stats count, dc(name) as secrets by user, ip";
    let q = q(src);
    assert!(q.search.is_none());
    let [Stage::Stats { aggregates, by, span }] = q.stages.as_slice() else { panic!() };
    assert_eq!(span.text(src), Some("stats count, dc(name) as secrets by user, ip"));
    let alias = aggregates[1].alias.as_ref().expect("alias");
    assert_eq!((alias.node.as_str(), alias.span.text(src)), ("secrets", Some("secrets")));
    assert_eq!(aggregates[1].span.text(src), Some("dc(name) as secrets"));
    assert_eq!(by.len(), 2);
}

#[test]
fn where_compares_an_output_column() {
    let q = q("| where count > 20");
    let [Stage::Where { expr: BoolExpr::Leaf(Term::Compare { field, op, value, .. }), .. }] = q.stages.as_slice()
    else {
        panic!()
    };
    assert_eq!((field.dotted().as_str(), op.node, &value.kind), ("count", CmpOp::Gt, &bare("20")));
}

#[test]
fn sort_descending() {
    let q = q("| sort -count, +user, verb");
    let [Stage::Sort { keys, .. }] = q.stages.as_slice() else { panic!() };
    let got: Vec<(String, bool)> = keys.iter().map(|k| (k.field.dotted(), k.descending)).collect();
    assert_eq!(got, [("count".into(), true), ("user".into(), false), ("verb".into(), false)]);
    assert_eq!(q.to_string(), "| sort -count, user, verb");
}

#[test]
fn top_n_field() {
    let q = q("| top 10 user");
    let [Stage::Top { limit, field, by, .. }] = q.stages.as_slice() else { panic!() };
    assert_eq!((limit.node, field.dotted().as_str(), by.len()), (10, "user", 0));
}

#[test]
fn keywords_are_case_insensitive_and_quotable() {
    assert!(matches!(search("a or b"), BoolExpr::Or { .. }));
    assert!(matches!(search("NoT a"), BoolExpr::Not { .. }));
    let BoolExpr::And { items, .. } = search("\"and\" \"OR\"") else { panic!() };
    assert_eq!(items.len(), 2);
    // A keyword glued to ':' is a field name.
    assert!(matches!(search("and:x"), BoolExpr::Leaf(Term::Match { .. })));
}

#[test]
fn precedence_not_and_or() {
    assert_eq!(q("a b OR NOT c d").to_string(), "a b OR NOT c d");
    let BoolExpr::Or { items, .. } = search("a b OR NOT c d") else { panic!() };
    assert!(matches!(&items[0], BoolExpr::And { items, .. } if items.len() == 2));
    let BoolExpr::And { items: right, .. } = &items[1] else { panic!() };
    assert!(matches!(right[0], BoolExpr::Not { .. }));
    assert_eq!(q("a (b OR c)").to_string(), "a (b OR c)");
    assert_eq!(q("(a b) c").to_string(), "(a b) c");
    assert_eq!(q("-(a OR b)").to_string(), "NOT (a OR b)");
}

#[test]
fn free_text_and_comparison_spacing() {
    assert!(matches!(search("code >= 400"), BoolExpr::Leaf(Term::Compare { .. })));
    assert!(matches!(search("foo-bar"), BoolExpr::Leaf(Term::Text(_))));
    assert!(matches!(search("a..b:c"), BoolExpr::Leaf(Term::Text(_))));
    assert_eq!(q("code >= 400").to_string(), "code>=400");
}

#[test]
fn escapes() {
    assert_eq!(single_match(r#"m:"a \"b\" \\ c""#).1, ValueKind::Quoted { text: r#"a "b" \ c"#.into() });
    assert_eq!(single_match(r"uri:/a\/b\d/").1, ValueKind::Regex { pattern: r"a/b\d".into() });
    assert_eq!(q(r"uri:/a\/b\d/").to_string(), r"uri:/a\/b\d/");
}

#[test]
fn macro_reference() {
    let src = "@prod-deletes | head";
    let Some(BoolExpr::Leaf(Term::Macro(m))) = q(src).search else { panic!() };
    assert_eq!((m.node.as_str(), m.span), ("prod-deletes", Span::new(0, 13)));
}

#[test]
fn query_may_start_with_a_stage_or_be_empty() {
    let q0 = q("| count");
    assert!(q0.search.is_none() && matches!(q0.stages.as_slice(), [Stage::Count { .. }]));
    let empty = q("  ");
    assert!(empty.search.is_none() && empty.stages.is_empty());
    assert_eq!(empty.to_string(), "");
    // Without `|` a stage name is just a word to search for.
    assert!(matches!(q("count").search, Some(BoolExpr::Leaf(Term::Text(_)))));
}
