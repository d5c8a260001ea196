//! Saved searches: a search named with `.save NAME SEARCH` in `kaq repl` is `@NAME` in every
//! later session and in `kaq query`. They live in `queries.toml` in kaq's configuration directory
//! ([`config_dir`]), a `[queries]` table of `NAME = "SEARCH"`:
//!
//! ```toml
//! [queries]
//! dels = "verb:(delete OR deletecollection) ns:prod*"
//! ```
//!
//! The file is read again before each change (another session may have saved meanwhile) and
//! rewritten whole, atomically (a temporary file renamed over it), private (0600). Other tables in
//! it are kept; comments are not. A file kaq cannot read is an error naming its line, never
//! overwritten.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use kaq_query::plan::macros::BUILTIN;

/// The file's name in [`config_dir`].
pub const FILE: &str = "queries.toml";

const HEADER: &str = "# kaq's saved searches: @NAME in queries (docs/repl.md). `.save NAME SEARCH` and\n\
                      # `.forget NAME` in `kaq repl` rewrite this file; comments are not kept.\n\n";

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

/// Where saved searches are kept: [`FILE`] in [`config_dir`].
pub fn path() -> Option<PathBuf> {
    config_dir().map(|d| d.join(FILE))
}

/// Whether `name` can be saved: letters, digits, `_` and `-`, and not a built-in named query
/// (which it would hide); else why not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{name}`: a name is letters, digits, `_` and `-`"));
    }
    if BUILTIN.iter().any(|(n, _, _)| *n == name) {
        return Err(format!("`@{name}` is a built-in named query; choose another name"));
    }
    Ok(())
}

/// The saved searches in `path` (none when it does not exist); an error names the file and line
/// of what cannot be read.
pub fn load(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = read(path)?;
    parse(&text).map_err(|(at, msg)| located(path, &text, at, &msg))
}

/// Saves `search` as `name` (`None`: removes it) in `path`, the file read again first; returns
/// every search saved there now.
pub fn update(path: &Path, name: &str, search: Option<&str>) -> anyhow::Result<HashMap<String, String>> {
    let text = read(path)?;
    let mut saved = parse(&text).map_err(|(at, msg)| located(path, &text, at, &msg))?;
    // The whole document, to keep its other tables; `parse` checked that it reads.
    let mut doc: toml::Table = text.parse().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let queries = doc
        .entry("queries")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("`parse` checked that `queries` is a table");
    match search {
        Some(s) => {
            queries.insert(name.to_string(), toml::Value::String(s.to_string()));
            saved.insert(name.to_string(), s.to_string());
        }
        None => {
            queries.remove(name);
            saved.remove(name);
        }
    }
    let body = toml::to_string(&doc).context("writing the saved searches as TOML")?;
    write_private(path, &format!("{HEADER}{body}")).with_context(|| format!("writing {}", path.display()))?;
    Ok(saved)
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
            check_name(n).map_err(|why| (name.span().start, why))?;
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
