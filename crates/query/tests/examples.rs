//! The planner against the grammar's example folders and the documentation: planner errors
//! (E017 and up) give their code with the snapshot beside the example; every `kaq` block in the
//! README and docs compiles.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use kaq_query::{Options, compile};
use kaq_syntax::Code;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kaq_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("examples directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kaq"))
        .collect();
    files.sort();
    files
}

#[test]
fn planner_errors_have_their_code_and_snapshot() {
    let bless = std::env::var_os("KAQ_BLESS").is_some_and(|v| !v.is_empty());
    let mut seen = Vec::new();
    for path in kaq_files(&repo().join("grammar/examples/invalid")) {
        let raw = fs::read_to_string(&path).unwrap();
        let (first, rest) = raw.split_once('\n').unwrap_or((&raw, ""));
        let want = Code::from_code_str(first.trim_start_matches("# error: ").trim()).expect("a code");
        if want.is_parser() {
            continue; // kaq-syntax's tests
        }
        let src = rest.strip_suffix('\n').unwrap_or(rest);
        let diags = match compile(src, &Options::default()) {
            Ok(_) => panic!("{}: compiles", path.display()),
            Err(d) => d,
        };
        assert_eq!(diags[0].code, want, "{}: {}", path.display(), diags[0].render(src));
        seen.push(want);
        let rendered: String = diags.iter().map(|d| d.render(src)).collect();
        let snap = path.with_extension("kaq.out");
        if bless {
            fs::write(&snap, &rendered).unwrap();
        } else {
            let stored = fs::read_to_string(&snap).unwrap_or_else(|_| panic!("{}: no snapshot", snap.display()));
            assert_eq!(rendered, stored, "{}: rendering changed (KAQ_BLESS=1 to accept)", path.display());
        }
    }
    for code in Code::ALL.iter().filter(|c| !c.is_parser() && **c != Code::BadMacro) {
        assert!(seen.contains(code), "no invalid example for {code}");
    }
}

#[test]
fn user_macros_expand_and_bad_ones_are_refused() {
    let mut macros = HashMap::new();
    macros.insert("loop".to_string(), "verb:get @loop".to_string());
    macros.insert("staged".to_string(), "verb:get | count".to_string());
    macros.insert("mine".to_string(), "user:alice ns:prod*".to_string());
    macros.insert("broken".to_string(), "usr:alice".to_string());
    let opts = Options { macros, ..Options::default() };
    let err = |q: &str| compile(q, &opts).unwrap_err().remove(0);
    let d = err("@loop");
    assert_eq!(
        (d.code, d.message.as_str()),
        (Code::BadMacro, "in `@loop` (`verb:get @loop`): `@loop` refers to itself")
    );
    assert_eq!(err("@staged").code, Code::BadMacro);
    let d = err("verb:get @broken");
    assert_eq!(d.code, Code::UnknownField);
    assert_eq!((d.span.start, d.span.end), (9, 16), "points at the @name");
    let plan = compile("@mine | count", &opts).unwrap();
    assert_eq!(plan.canonical, "user:alice ns:prod* | count");
    assert_eq!(err("@mnie").hints, ["did you mean `@mine`?"]);
}

#[test]
fn product_examples_in_the_grammar_compile() {
    // Every valid example that uses only catalogue fields compiles; the others are syntax edge
    // cases (quoted odd field names, keywords as fields) and must fail only with E017, E020 or E022.
    let mut compiled = 0;
    for path in kaq_files(&repo().join("grammar/examples/valid")) {
        let raw = fs::read_to_string(&path).unwrap();
        let src = raw.strip_suffix('\n').unwrap_or(&raw);
        match compile(src, &Options::default()) {
            Ok(_) => compiled += 1,
            Err(d) => assert!(
                matches!(d[0].code, Code::UnknownField | Code::UnknownColumn | Code::UnknownMacro),
                "{}: {}",
                path.display(),
                d[0].render(src)
            ),
        }
    }
    assert!(compiled >= 40, "only {compiled} valid examples compile");
}

#[test]
fn every_kaq_block_in_the_docs_compiles() {
    let mut docs = vec![repo().join("README.md"), repo().join("grammar/README.md")];
    docs.extend(fs::read_dir(repo().join("docs")).unwrap().flatten().map(|e| e.path()));
    let mut n = 0;
    for doc in docs.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let text = fs::read_to_string(doc).unwrap();
        let mut in_block = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block && line.trim() == "```kaq";
                continue;
            }
            if in_block && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                compile(line, &Options::default())
                    .unwrap_or_else(|d| panic!("{}: `{line}`:\n{}", doc.display(), d[0].render(line)));
                n += 1;
            }
        }
    }
    assert!(n >= 10, "found only {n} kaq lines in the docs");
}
