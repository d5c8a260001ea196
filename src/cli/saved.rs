//! Saved searches: a search named with `.save NAME SEARCH` in `kaq repl` is `@NAME` in every
//! later session, in `kaq query`, in `kaq sql` and in the detection rules. They live in the
//! `[queries]` table of the user's rule file, `rules.toml` in kaq's configuration directory
//! ([`config_dir`]), beside the lists, rules and exceptions that tune `kaq detect`
//! (docs/detect.md):
//!
//! ```toml
//! [queries]
//! dels = "verb:(delete OR deletecollection) ns:prod*"
//! ```
//!
//! The file is read again before each change (another session may have saved meanwhile), edited
//! in place with `toml_edit` (its comments, order and layout kept), checked to still load as a
//! rule file, and written whole, atomically (a temporary file renamed over it), private (0600). A
//! file kaq cannot read is an error naming its line, never overwritten.
//!
//! Earlier versions of kaq saved to `queries.toml` in the same directory ([`LEGACY`]): it is still
//! read (its searches win over rules.toml's, as before), and `.forget` removes names from it too.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use kaq_query::plan::macros::BUILTIN;

/// The file `.save` writes, in [`config_dir`]: the user's rule file.
pub const FILE: &str = "rules.toml";

/// Where earlier versions of kaq saved searches, in [`config_dir`]: read, never added to.
pub const LEGACY: &str = "queries.toml";

const HEADER: &str = "# kaq's rules, lists and named queries (docs/detect.md). `.save NAME SEARCH` and\n\
                      # `.forget NAME` in `kaq repl` edit the [queries] table; comments are kept.\n\n";

/// kaq's configuration directory: `$KAQ_CONFIG_DIR`, else `$XDG_CONFIG_HOME/kaq`, else
/// `~/.config/kaq` (none without `HOME`).
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KAQ_CONFIG_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("kaq"))
}

/// Where `.save` keeps searches: [`FILE`] in [`config_dir`].
pub fn path() -> Option<PathBuf> {
    config_dir().map(|d| d.join(FILE))
}

/// [`LEGACY`] in [`config_dir`].
pub fn legacy_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join(LEGACY))
}

/// Every `@NAME` a query can use besides the built-in ones: the named queries of the rule pack
/// and of rules.toml (lists expanded; a rules.toml kaq cannot read is a warning and left out),
/// then queries.toml's, which win. A queries.toml kaq cannot read is an error naming its line.
pub fn named() -> anyhow::Result<HashMap<String, String>> {
    let mut all = super::detect::rule_queries();
    if let Some(p) = legacy_path().filter(|p| p.exists()) {
        all.extend(load(&p)?);
    }
    Ok(all)
}

/// The searches the user saved, as written: rules.toml's `[queries]` and queries.toml's.
pub fn user_saved() -> anyhow::Result<HashMap<String, String>> {
    let mut all = HashMap::new();
    for p in [path(), legacy_path()].into_iter().flatten().filter(|p| p.exists()) {
        all.extend(load(&p)?);
    }
    Ok(all)
}

/// The named queries of the built-in rule pack.
fn pack_queries() -> std::collections::BTreeMap<String, String> {
    kaq_detect::Loader::with_builtin().finish().map(|set| set.queries).unwrap_or_default()
}

/// Whether `name` can be saved: letters, digits, `_` and `-`, and not a built-in named query nor
/// one of the rule pack's (which it would hide, or change under the rules that use it); else why
/// not.
pub fn check_name(name: &str) -> Result<(), String> {
    check_syntax(name)?;
    if pack_queries().contains_key(name) {
        return Err(format!(
            "`@{name}` is a named query of the built-in rule pack; choose another name (to change it for the \
             rules, set it in rules.toml's [queries]: docs/detect.md)"
        ));
    }
    Ok(())
}

/// [`check_name`] without the rule pack: what a `[queries]` name in a file must be.
fn check_syntax(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{name}`: a name is letters, digits, `_` and `-`"));
    }
    if BUILTIN.iter().any(|(n, _, _)| *n == name) {
        return Err(format!("`@{name}` is a built-in named query; choose another name"));
    }
    Ok(())
}

/// Whether `name` is one of the rule pack's named queries (which `.forget` cannot remove).
pub fn in_pack(name: &str) -> bool {
    pack_queries().contains_key(name)
}

/// The searches in the `[queries]` of `path` (none when it does not exist); an error names the
/// file and line of what cannot be read.
pub fn load(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = read(path)?;
    parse(&text).map_err(|(at, msg)| located(path, &text, at, &msg))
}

/// Saves `search` as `name` in the rule file `path` (and removes the name from `legacy`, where it
/// would win); with `None`, removes `name` from both. Each file is read again first and edited in
/// place; rules.toml must still load as a rule file afterwards, or nothing is written.
pub fn update(path: &Path, legacy: Option<&Path>, name: &str, search: Option<&str>) -> anyhow::Result<()> {
    // Both files must read before either is written.
    let legacy = legacy.filter(|l| l.exists());
    let in_legacy = match legacy {
        Some(l) => load(l)?.contains_key(name),
        None => false,
    };
    if search.is_some() || load(path)?.contains_key(name) {
        edit(path, name, search, true)?;
    }
    if let Some(l) = legacy.filter(|_| in_legacy) {
        edit(l, name, None, false)?;
    }
    Ok(())
}

/// Sets (or with `None` removes) `name` in the `[queries]` of `path`, keeping the rest of the
/// file as it is; `rules` checks that the result loads as a rule file.
fn edit(path: &Path, name: &str, search: Option<&str>, rules: bool) -> anyhow::Result<()> {
    let text = read(path)?;
    parse(&text).map_err(|(at, msg)| located(path, &text, at, &msg))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let queries = doc
        .entry("queries")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| anyhow!("{}: `queries` must be a table", path.display()))?;
    match search {
        Some(s) => {
            queries.insert(name, toml_edit::value(s));
        }
        None => {
            queries.remove(name);
        }
    }
    let mut body = doc.to_string();
    if text.trim().is_empty() {
        body = format!("{HEADER}{}", body.trim_start());
    }
    if rules {
        let mut loader = kaq_detect::Loader::with_builtin();
        let shown = path.display().to_string();
        if let Err(e) = loader.add(&shown, &body).and_then(|()| loader.finish().map(drop)) {
            bail!("{shown} would not load as a rule file after this change, so it was left as it is: {e}");
        }
    }
    write_private(path, &body).with_context(|| format!("writing {}", path.display()))
}

fn read(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `FILE:LINE: message` for the byte offset `at` of `text`.
fn located(path: &Path, text: &str, at: usize, msg: &str) -> anyhow::Error {
    let line = 1 + text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count();
    anyhow!("{}:{line}: {msg}", path.display())
}

/// The `[queries]` of a file's text, or the byte offset and reason of what is wrong.
fn parse(text: &str) -> Result<HashMap<String, String>, (usize, String)> {
    let doc = toml::de::DeTable::parse(text)
        .map_err(|e| (e.span().map_or(0, |s| s.start), format!("not valid TOML: {}", e.message().trim_end())))?;
    let mut out = HashMap::new();
    for (key, value) in doc.get_ref().iter().filter(|(k, _)| k.get_ref() == "queries") {
        let Some(table) = value.get_ref().as_table() else {
            return Err((key.span().start, "`queries` must be a table: [queries] then NAME = \"SEARCH\"".into()));
        };
        for (name, search) in table {
            let n = name.get_ref().as_ref();
            check_syntax(n).map_err(|why| (name.span().start, why))?;
            let Some(s) = search.get_ref().as_str() else {
                let kind = search.get_ref().type_str();
                return Err((search.span().start, format!("`{n}`: the search must be a string, not {kind}")));
            };
            out.insert(n.to_string(), s.to_string());
        }
    }
    Ok(out)
}

/// Writes `text` to `path` through a private temporary file renamed over it; the directory is
/// made (0700) when missing.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let name = path.file_name().map_or_else(|| FILE.into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.kaq-tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_queries_and_names_the_line_of_what_is_wrong() {
        let ok = "[lists]\nadmins = [\"a\"]\n\n[queries]\ndels = \"verb:delete\"\n\"with-dash\" = 'ns:prod*'\n";
        let q = parse(ok).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q["dels"], "verb:delete");
        assert_eq!(parse("").unwrap().len(), 0);
        let err = |t: &str| {
            let (at, msg) = parse(t).unwrap_err();
            (1 + t[..at].matches('\n').count(), msg)
        };
        let (line, msg) = err("[queries]\na = \"x\"\nb = 3\n");
        assert_eq!((line, msg.as_str()), (3, "`b`: the search must be a string, not integer"));
        let (line, msg) = err("[queries]\na = \"x\"\nc = \"unterminated\n");
        assert_eq!(line, 3);
        assert!(msg.starts_with("not valid TOML"), "{msg}");
        let (line, msg) = err("\n[queries]\nslow = \"latency>5s\"\n");
        assert_eq!((line, msg.as_str()), (3, "`@slow` is a built-in named query; choose another name"));
        let (line, msg) = err("queries = 1\n");
        assert_eq!(line, 1);
        assert!(msg.contains("must be a table"), "{msg}");
        let (line, _) = err("[queries]\n\"a b\" = \"x\"\n");
        assert_eq!(line, 2);
    }
}
