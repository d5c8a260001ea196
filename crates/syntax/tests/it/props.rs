//! Property tests (fixed seed, bounded sizes): random trees print and parse back to themselves;
//! random and mutated text never panics, never hangs, and whatever parses round-trips.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use kaq_syntax::{
    AggFunc, Aggregate, BoolExpr, CmpOp, FieldRef, Query, SortKey, Span, Spanned, Stage, Term, Value, ValueKind, parse,
    parse_lenient,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// A fixed seed and case count, so runs are reproducible; for a longer fuzzing session set
/// `KAQ_PROPTEST_CASES` and/or `PROPTEST_RNG_SEED`.
fn config(cases: u32) -> Config {
    let defaults = Config::default();
    let cases = std::env::var("KAQ_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let rng_seed =
        if std::env::var_os("PROPTEST_RNG_SEED").is_some() { defaults.rng_seed } else { RngSeed::Fixed(0x6b61_7121) };
    Config { cases, rng_seed, failure_persistence: None, ..defaults }
}

const NO: Span = Span { start: 0, end: 0 };

fn not_reserved(s: &str) -> bool {
    !["and", "or", "not", "by"].iter().any(|k| s.eq_ignore_ascii_case(k))
}

fn any_text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\|()/:.é\n*?-]{0,8}"
}

fn field_ref() -> impl Strategy<Value = FieldRef> {
    let first = prop_oneof![4 => "[a-z_][a-zA-Z0-9_-]{0,6}".prop_filter("reserved", |s: &String| not_reserved(s)), 1 => any_text()];
    let rest = prop_oneof![4 => "[a-z0-9_-]{1,6}", 1 => any_text()];
    (first, prop::collection::vec(rest, 0..3)).prop_map(|(f, r)| {
        let mut segments = vec![f];
        segments.extend(r);
        FieldRef { segments, span: NO }
    })
}

fn bare(alphabet_rest: &'static str) -> impl Strategy<Value = ValueKind> {
    let pattern = format!("[a-z0-9][{alphabet_rest}]{{0,8}}");
    let strategy = proptest::string::string_regex(&pattern).expect("valid pattern");
    strategy
        .prop_filter("keyword", |s: &String| not_reserved(s))
        .prop_map(|text| ValueKind::Bare { has_wildcard: text.contains(['*', '?']), text })
}

fn regex_pattern() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &["a", "b", ".", "*", "/", r"\d", r"\.", r"\\", "[0-9]", "|", "(", ")", " ", "é", "\""];
    prop::collection::vec(prop::sample::select(TOKENS), 1..6).prop_map(|t| t.concat())
}

fn quoted() -> impl Strategy<Value = ValueKind> {
    any_text().prop_map(|text| ValueKind::Quoted { text })
}

fn value(bare_alphabet: &'static str, regex_and_exists: bool) -> BoxedStrategy<Value> {
    let kind = if regex_and_exists {
        prop_oneof![
            4 => bare(bare_alphabet),
            2 => quoted(),
            1 => regex_pattern().prop_map(|pattern| ValueKind::Regex { pattern }),
            1 => Just(ValueKind::Exists),
        ]
        .boxed()
    } else {
        prop_oneof![bare(bare_alphabet), quoted()].boxed()
    };
    kind.prop_map(|kind| Value { kind, span: NO }).boxed()
}

fn bool_expr<T: std::fmt::Debug + Clone + 'static>(leaf: BoxedStrategy<T>) -> BoxedStrategy<BoolExpr<T>> {
    leaf.prop_map(BoolExpr::Leaf)
        .prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| BoolExpr::Not { inner: Box::new(e), span: NO }),
                prop::collection::vec(inner.clone(), 2..4).prop_map(|items| BoolExpr::And { items, span: NO }),
                prop::collection::vec(inner, 2..4).prop_map(|items| BoolExpr::Or { items, span: NO }),
            ]
        })
        .boxed()
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge])
}

fn field_term(with_text: bool) -> BoxedStrategy<Term> {
    let m = (field_ref(), bool_expr(value("a-z0-9:./*?<>=@-", true))).prop_map(|(field, value)| Term::Match {
        field,
        value,
        span: NO,
    });
    let c = (field_ref(), cmp_op(), value("a-z0-9:./*?-", false)).prop_map(|(field, op, value)| Term::Compare {
        field,
        op: Spanned::new(op, NO),
        value,
        span: NO,
    });
    if !with_text {
        return prop_oneof![m, c].boxed();
    }
    let t = value("a-z0-9./*?-", true).prop_map(Term::Text);
    let mac = "[a-z0-9_][a-z0-9_.-]{0,8}".prop_map(|n| Term::Macro(Spanned::new(n, NO)));
    prop_oneof![3 => m, 1 => c, 2 => t, 1 => mac].boxed()
}

fn fields(min: usize) -> impl Strategy<Value = Vec<FieldRef>> {
    prop::collection::vec(field_ref(), min..3)
}

fn num() -> impl Strategy<Value = Spanned<u64>> {
    prop_oneof![0..100u64, Just(u64::MAX)].prop_map(|n| Spanned::new(n, NO))
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    let alias =
        prop::option::of("[a-z_][a-z0-9_]{0,5}".prop_filter("by", |s| s != "by").prop_map(|a| Spanned::new(a, NO)));
    (prop::sample::select(AggFunc::ALL), prop::option::of(field_ref()), alias).prop_map(|(func, field, alias)| {
        let field = if func == AggFunc::Count {
            field
        } else {
            Some(field.unwrap_or(FieldRef { segments: vec!["x".into()], span: NO }))
        };
        Aggregate { func: Spanned::new(func, NO), field, alias, span: NO }
    })
}

fn stage() -> impl Strategy<Value = Stage> {
    let sort_key = (field_ref(), any::<bool>()).prop_map(|(field, descending)| SortKey { field, descending, span: NO });
    let interval = "[1-9][0-9]?(s|m|h|d|\\.5h)".prop_map(|s| Spanned::new(s, NO));
    prop_oneof![
        bool_expr(field_term(false)).prop_map(|expr| Stage::Where { expr, span: NO }),
        fields(1).prop_map(|fields| Stage::Table { fields, span: NO }),
        prop::collection::vec(sort_key, 1..3).prop_map(|keys| Stage::Sort { keys, span: NO }),
        prop::option::of(num()).prop_map(|limit| Stage::Head { limit, span: NO }),
        fields(0).prop_map(|by| Stage::Count { by, span: NO }),
        (prop::collection::vec(aggregate(), 1..4), fields(0)).prop_map(|(aggregates, by)| Stage::Stats {
            aggregates,
            by,
            span: NO
        }),
        (num(), field_ref(), fields(0)).prop_map(|(limit, field, by)| Stage::Top { limit, field, by, span: NO }),
        (num(), field_ref(), fields(0)).prop_map(|(limit, field, by)| Stage::Rare { limit, field, by, span: NO }),
        (interval, prop::option::of(field_ref())).prop_map(|(interval, by)| Stage::Timeline { interval, by, span: NO }),
        fields(1).prop_map(|fields| Stage::Dedup { fields, span: NO }),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    (prop::option::of(bool_expr(field_term(true))), prop::collection::vec(stage(), 0..4))
        .prop_map(|(search, stages)| Query { search, stages, span: NO })
}

/// Parses `src` both ways; if it parses, checks the printer round-trip. Returns the time taken.
fn check_text(src: &str) -> Duration {
    let start = Instant::now();
    let strict = parse(src);
    let (partial, diags) = parse_lenient(src);
    let took = start.elapsed();
    match strict {
        Ok(q) => {
            assert!(diags.is_empty());
            let printed = q.to_string();
            // Canonical spacing can make a query longer (`""""` prints as `"" ""`); past the length
            // limit the printed form is rightly rejected, so the round-trip is only claimed below it.
            if printed.len() > kaq_syntax::MAX_QUERY_LEN {
                return took;
            }
            let again =
                parse(&printed).unwrap_or_else(|d| panic!("{src:?} printed as {printed:?}: {}", d[0].render(&printed)));
            assert!(q.eq_ignoring_spans(&again), "{src:?} printed as {printed:?} parses differently");
        }
        Err(d) => {
            assert_eq!(d, diags);
            for diag in &d {
                assert!(diag.span.start <= src.len() && diag.span.end <= src.len(), "{src:?}: span {:?}", diag.span);
                let _ = diag.render(src);
            }
            if let Some(p) = partial {
                assert!(parse(&p.to_string()).is_ok(), "{src:?}: partial does not print back");
            }
        }
    }
    took
}

/// A hang detector, not a benchmark: any one parse of these small inputs takes well under a millisecond.
const HANG: Duration = Duration::from_secs(2);

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_trees_round_trip(q in query()) {
        let printed = q.to_string();
        let parsed = parse(&printed).unwrap_or_else(|d| panic!("{printed:?}: {}", d[0].render(&printed)));
        prop_assert_eq!(parsed.without_spans(), q, "printed: {}", printed);
    }

    #[test]
    fn random_text_never_panics(src in "[a-zA-Z0-9:()|\"\\\\/*?@<>=! .,+\\-\t\né]{0,120}") {
        prop_assert!(check_text(&src) < HANG);
    }

    #[test]
    fn arbitrary_unicode_never_panics(src in any::<String>()) {
        prop_assert!(check_text(&src) < HANG);
    }
}

fn valid_examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grammar/examples/valid");
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("valid dir")
        .map(|e| fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
}

fn apply(src: &str, edits: &[Edit]) -> String {
    let mut s = src.to_string();
    let floor = |s: &str, mut n: usize| {
        n = n.min(s.len());
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        n
    };
    for e in edits {
        match e {
            Edit::Insert(at, t) => {
                let at = floor(&s, *at);
                s.insert_str(at, t);
            }
            Edit::Delete(at, len) => {
                let a = floor(&s, *at);
                let b = floor(&s, a + len);
                s.replace_range(a..b, "");
            }
            Edit::Duplicate(at, len, to) => {
                let a = floor(&s, *at);
                let b = floor(&s, a + len);
                let piece = s[a..b].to_string();
                let to = floor(&s, *to);
                s.insert_str(to, &piece);
            }
        }
    }
    s
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop::sample::select(vec![
        "(", ")", "|", "\"", "/", "\\", ":", "-", "*", "NOT ", " OR ", ",", " by ", "@", ">=", " ", "é",
    ]);
    prop_oneof![
        (0..200usize, token).prop_map(|(a, t)| Edit::Insert(a, t.to_string())),
        (0..200usize, 1..6usize).prop_map(|(a, l)| Edit::Delete(a, l)),
        (0..200usize, 1..40usize, 0..200usize).prop_map(|(a, l, t)| Edit::Duplicate(a, l, t)),
    ]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn mutated_examples_never_panic(pick in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..5)) {
        let examples = valid_examples();
        let example: &String = pick.get(&examples);
        let src = apply(example, &edits);
        prop_assert!(check_text(&src) < HANG);
    }
}

#[test]
fn adversarial_inputs_stay_fast() {
    let cases = [
        "(".repeat(64) + &"a ".repeat(30_000),
        "a:(".repeat(20_000),
        "\"".repeat(60_000),
        "NOT ".repeat(16_000),
        "a OR ".repeat(13_000),
        "x:/".repeat(20_000),
        "| ".repeat(30_000),
        "a".repeat(65_536),
        "@".repeat(65_536),
        format!("{}{}", "(a ".repeat(63), "b ".repeat(30_000)),
        "| stats ".to_string() + &"count, ".repeat(9_000),
        "-(".repeat(32) + &"a b ".repeat(15_000),
    ];
    for src in &cases {
        let src = &src[..src.len().min(kaq_syntax::MAX_QUERY_LEN)];
        assert!(check_text(src) < HANG * 5, "slow on {:?}…", &src[..20]);
    }
}
