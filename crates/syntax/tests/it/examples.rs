//! Folder-driven tests joining the grammar directory to the parser:
//! every `grammar/examples/valid/*.kaq` parses and round-trips through the printer; every
//! `grammar/examples/invalid/*.kaq` fails with the code its first line names, rendered exactly as
//! the `NAME.kaq.out` snapshot beside it. Run with `KAQ_BLESS=1` to (re)write snapshots, then read
//! them: the caret must sit under the right spot.

use std::fs;
use std::path::{Path, PathBuf};

use kaq_syntax::{Code, parse};

fn grammar_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grammar")
}

fn kaq_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(grammar_dir().join(dir))
        .expect("examples directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kaq"))
        .collect();
    files.sort();
    files
}

/// The query text of an example file: the file minus one trailing newline.
fn query_text(raw: &str) -> &str {
    raw.strip_suffix('\n').unwrap_or(raw)
}

#[test]
fn valid_examples_parse_and_round_trip() {
    let files = kaq_files("examples/valid");
    assert!(files.len() >= 50, "expected the product examples and edge cases, found {}", files.len());
    for path in files {
        let raw = fs::read_to_string(&path).expect("read example");
        let src = query_text(&raw);
        let q = parse(src).unwrap_or_else(|d| panic!("{}:\n{}", path.display(), d[0].render(src)));
        let printed = q.to_string();
        let again =
            parse(&printed).unwrap_or_else(|d| panic!("{}: reprint fails:\n{}", path.display(), d[0].render(&printed)));
        assert!(q.eq_ignoring_spans(&again), "{}: `{printed}` parses differently", path.display());
        assert_eq!(again.to_string(), printed, "{}: printing is not idempotent", path.display());
    }
}

#[test]
fn every_product_example_is_in_valid() {
    let spec = grammar_dir().join("../../shared/PRODUCT.md");
    let Ok(text) = fs::read_to_string(&spec) else {
        // Written past the harness's capture so that the skip shows in every run.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {} not found", spec.display());
        return;
    };
    let mut section = text.split("## 4. The query language").nth(1).unwrap_or_default().split("```");
    let block = section.nth(1).unwrap_or_default();
    let valid: Vec<String> = kaq_files("examples/valid")
        .iter()
        .map(|p| query_text(&fs::read_to_string(p).expect("read")).to_string())
        .collect();
    let mut n = 0;
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(valid.iter().any(|v| v == line), "PRODUCT.md example missing from valid/: {line}");
        n += 1;
    }
    assert_eq!(n, 16);
}

#[test]
fn invalid_examples_fail_with_their_code_and_snapshot() {
    let bless = std::env::var_os("KAQ_BLESS").is_some_and(|v| !v.is_empty());
    let files = kaq_files("examples/invalid");
    assert!(files.len() >= 40);
    let mut seen = Vec::new();
    for path in files {
        let raw = fs::read_to_string(&path).expect("read example");
        let (first, rest) = raw.split_once('\n').unwrap_or((&raw, ""));
        let want = first.strip_prefix("# error: ").unwrap_or_else(|| panic!("{}: no `# error:` line", path.display()));
        let want =
            Code::from_code_str(want.trim()).unwrap_or_else(|| panic!("{}: unknown code {want}", path.display()));
        let src = query_text(rest);
        if !want.is_parser() {
            // Resolution errors: the query parses; kaq-query's tests check the code and snapshot.
            assert!(parse(src).is_ok(), "{}: {want} is a planner code but the query does not parse", path.display());
            continue;
        }
        let diags = match parse(src) {
            Ok(q) => panic!("{}: parsed as `{q}`", path.display()),
            Err(d) => d,
        };
        assert_eq!(diags[0].code, want, "{}: {}", path.display(), diags[0].render(src));
        seen.push(want);
        let rendered: String = diags.iter().map(|d| d.render(src)).collect();
        let snap = path.with_extension("kaq.out");
        if bless {
            fs::write(&snap, &rendered).expect("write snapshot");
        } else {
            let stored = fs::read_to_string(&snap).unwrap_or_else(|_| panic!("{}: no snapshot", snap.display()));
            assert_eq!(rendered, stored, "{}: rendering changed", path.display());
        }
    }
    for code in Code::ALL {
        if *code != Code::QueryTooLong && code.is_parser() {
            assert!(seen.contains(code), "no invalid example for {code}");
        }
    }
}

#[test]
fn grammar_productions_are_parser_functions() {
    let ebnf = fs::read_to_string(grammar_dir().join("kaq.ebnf")).expect("kaq.ebnf");
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources: String = ["lex.rs", "expr.rs", "stage.rs", "query.rs"]
        .iter()
        .map(|f| fs::read_to_string(src_dir.join(f)).expect("source"))
        .collect();
    let names: Vec<&str> = ebnf
        .lines()
        .filter_map(|l| l.split_once("::=").map(|(name, _)| name.trim()))
        .filter(|n| !n.is_empty() && !n.contains(' '))
        .collect();
    assert!(names.len() >= 40, "found only {} productions", names.len());
    for name in names {
        assert!(
            sources.contains(&format!("fn {name}(")) || sources.contains(&format!("fn {name}<")),
            "production `{name}` has no nom function"
        );
        assert!(sources.contains(&format!("`{name} ::=")), "function `{name}` does not quote its production");
    }
}

#[test]
fn readme_lists_every_code() {
    let readme = fs::read_to_string(grammar_dir().join("README.md")).expect("grammar/README.md");
    for code in Code::ALL {
        assert!(readme.contains(&format!("| {} |", code.as_str())), "grammar/README.md lacks {code}");
    }
}
