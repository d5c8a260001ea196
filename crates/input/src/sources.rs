//! Naming inputs: files, directories (expanded in rotation order) and `-` for standard input.

use std::path::{Path, PathBuf};

use crate::error::InputError;

/// One stream of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// The name used in messages (`<stdin>` for standard input).
    pub fn display_name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// The size on disk, when known.
    pub fn len(&self) -> Option<u64> {
        match self {
            Source::Stdin => None,
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }
}

/// Turns command-line arguments into sources: `-` is standard input, a directory gives every
/// regular, non-hidden file below it (rotated logs oldest first), anything else must be a file.
pub fn expand(args: &[impl AsRef<Path>]) -> Result<Vec<Source>, InputError> {
    let mut out = Vec::new();
    for a in args {
        let p = a.as_ref();
        if p == Path::new("-") {
            out.push(Source::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| InputError::Open { path: p.to_path_buf(), source: e })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            out.extend(files.into_iter().map(Source::File));
        } else {
            out.push(Source::File(p.to_path_buf()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let err = |e| InputError::Open { path: dir.to_path_buf(), source: e };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let ty = std::fs::metadata(entry.path()).map_err(err)?;
        if ty.is_dir() {
            dirs.push(entry.path());
        } else if ty.is_file() {
            files.push(entry.path());
        }
    }
    files.sort_by_key(|p| rotation_key(p));
    out.extend(files);
    dirs.sort();
    for d in dirs {
        walk(&d, out)?;
    }
    Ok(())
}

/// Orders a directory's files as they were written:
/// - lumberjack backups (`audit-2026-11-20T10-00-00.000.log.gz`, what kube-apiserver's
///   `--audit-log-maxbackup` leaves) by the time in their name;
/// - logrotate backups (`audit.log.2.gz`, `audit.log.1`) highest number first;
/// - then the rest, the live file (`audit.log`) among them, by name.
pub fn rotation_key(p: &Path) -> (u8, String, i64) {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(ts) = lumberjack_time(&name) {
        return (0, ts, 0);
    }
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    if let Some((base, n)) = stem.rsplit_once('.')
        && let Ok(n) = n.parse::<i64>()
    {
        return (1, base.to_string(), -n);
    }
    (2, name, 0)
}

/// The `YYYY-MM-DDTHH-MM-SS(.mmm)` timestamp in a file name, if any.
fn lumberjack_time(name: &str) -> Option<String> {
    let b = name.as_bytes();
    (0..b.len().saturating_sub(18)).find_map(|i| {
        let w = &b[i..i + 19];
        let shape = w.iter().enumerate().all(|(j, c)| match j {
            4 | 7 | 13 | 16 => *c == b'-',
            10 => *c == b'T',
            _ => c.is_ascii_digit(),
        });
        shape.then(|| name[i..].chars().take_while(|c| c.is_ascii_digit() || "-T.".contains(*c)).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_come_oldest_first() {
        let mut names = vec![
            "audit.log",
            "audit-2026-11-20T10-00-00.000.log.gz",
            "audit-2026-11-19T22-30-00.000.log.gz",
            "audit.log.1",
            "audit.log.2.gz",
        ];
        names.sort_by_key(|n| rotation_key(Path::new(n)));
        assert_eq!(
            names,
            [
                "audit-2026-11-19T22-30-00.000.log.gz",
                "audit-2026-11-20T10-00-00.000.log.gz",
                "audit.log.2.gz",
                "audit.log.1",
                "audit.log"
            ]
        );
    }
}
