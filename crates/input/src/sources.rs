//! Naming inputs: files, directories (expanded in rotation order) and `-` for standard input.

use std::path::{Path, PathBuf};

use crate::error::InputError;

/// One stream of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
    /// Part of a file: how a store resumes a file that grew, or reads only the complete lines of
    /// a file still being written.
    Part(FilePart),
}

/// Part of a file's content (decompressed, for gzip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The file to open (may be `/proc/self/fd/N`, to read a file that was renamed since).
    pub path: PathBuf,
    /// Its bytes from `start` to `end` (to the end of the file when `None`).
    pub start: u64,
    pub end: Option<u64>,
    /// Lines before `start`, so that lines are numbered as in the whole file.
    pub lines_before: u64,
    /// The name used in messages and rejects, when not `path`.
    pub name: Option<String>,
    /// For a plain file: the bytes it began with when the part was chosen (its first 64 KiB, say).
    /// They are checked after every read: a file that no longer begins with them was truncated,
    /// and maybe written again, meanwhile (copy-and-truncate rotation), so the bytes read since
    /// the last check may not be the ones chosen; they are dropped, and the part ends there, as a
    /// part that shrank does (the caller finds the rest in the copy).
    pub head: Option<std::sync::Arc<[u8]>>,
}

impl Source {
    /// The name used in messages (`<stdin>` for standard input).
    pub fn display_name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
            Source::Part(part) => part.name.clone().unwrap_or_else(|| part.path.display().to_string()),
        }
    }

    /// The size on disk, when known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Source::Stdin => None,
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Part(part) => {
                let len = std::fs::metadata(&part.path).ok()?.len();
                Some(part.end.unwrap_or(len).min(len).saturating_sub(part.start))
            }
        }
    }
}

/// The inputs named on a command line.
#[derive(Debug, Clone, Default)]
pub struct Expanded {
    pub sources: Vec<Source>,
    /// Files found in directories that were passed over because their names do not look like
    /// logs (`README.md`, `notes.txt`); named explicitly, they would be read.
    pub skipped: Vec<PathBuf>,
    /// Entries of the input directories that could not be read (a dangling symbolic link, a
    /// symbolic link loop, a directory that cannot be listed), in the order found: passed over,
    /// for the caller to report ([`Expanded::check`] makes the first an error).
    pub unreadable: Vec<Unreadable>,
}

impl Expanded {
    /// With `strict`, the first unreadable entry as an error ([`InputError::Strict`]).
    pub fn check(&self, strict: bool) -> Result<(), InputError> {
        match self.unreadable.first() {
            Some(u) if strict => Err(InputError::Strict(u.to_string())),
            _ => Ok(()),
        }
    }

    /// The unreadable entries as messages (`path: why; skipped`), the form of
    /// [`crate::Report::read_errors`].
    pub fn messages(&self) -> Vec<String> {
        self.unreadable.iter().map(|u| format!("{u}; skipped")).collect()
    }
}

/// An entry of an input directory that could not be read: its own path, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Whether a file found in a directory looks like an audit log (or a rotation of one, or kaq
/// Parquet), by its name.
pub fn looks_like_log(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    let ext = stem.rsplit_once('.').map(|(_, e)| e);
    match ext {
        None => true,
        Some(e) if e.chars().all(|c| c.is_ascii_digit()) => true, // audit.log.1
        Some("log" | "json" | "jsonl" | "ndjson" | "audit" | "parquet" | "gz") => true,
        Some(_) => stem.contains(".log"),
    }
}

/// Turns command-line arguments into sources: `-` is standard input, a directory gives every
/// regular, non-hidden file below it whose name looks like a log (rotated logs oldest first),
/// anything else must be a file. A named path that does not exist is an error; an entry found in
/// a directory that cannot be read (a dangling symbolic link, a symbolic link loop, a directory
/// that cannot be listed) is passed over and listed in [`Expanded::unreadable`]. A directory
/// reached twice (through a symbolic link) is read once.
pub fn expand(args: &[impl AsRef<Path>]) -> Result<Expanded, InputError> {
    let mut out = Expanded::default();
    for a in args {
        let p = a.as_ref();
        if p == Path::new("-") {
            out.sources.push(Source::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| InputError::Open { path: p.to_path_buf(), error: e })?;
        if meta.is_dir() {
            let mut walk = Walk { files: Vec::new(), unreadable: Vec::new(), seen: Vec::new(), path: Vec::new() };
            walk.dir(p, &meta);
            let (logs, other): (Vec<_>, Vec<_>) = walk.files.into_iter().partition(|f| looks_like_log(f));
            out.sources.extend(logs.into_iter().map(Source::File));
            out.skipped.extend(other);
            out.unreadable.extend(walk.unreadable);
        } else {
            out.sources.push(Source::File(p.to_path_buf()));
        }
    }
    Ok(out)
}

/// A directory's identity (device, inode): how a directory reached again is recognised.
#[cfg(unix)]
fn dir_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn dir_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

struct Walk {
    files: Vec<PathBuf>,
    unreadable: Vec<Unreadable>,
    /// Directories read so far.
    seen: Vec<(u64, u64)>,
    /// The directories being read (the current one last), with their identities.
    path: Vec<((u64, u64), PathBuf)>,
}

impl Walk {
    fn bad(&mut self, path: &Path, reason: String) {
        self.unreadable.push(Unreadable { path: path.to_path_buf(), reason });
    }

    fn dir(&mut self, dir: &Path, meta: &std::fs::Metadata) {
        let id = dir_id(meta);
        if let Some(id) = id {
            if let Some((_, ancestor)) = self.path.iter().find(|(a, _)| *a == id) {
                let why = format!("symbolic link loop: leads back to {}", ancestor.display());
                self.bad(dir, why);
                return;
            }
            if self.seen.contains(&id) {
                return; // read already, under another name
            }
            self.seen.push(id);
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.bad(dir, format!("cannot list the directory ({e})")),
        };
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.bad(dir, format!("cannot list the whole directory ({e})"));
                    break;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let link = entry.file_type().is_ok_and(|t| t.is_symlink());
                    dirs.push((link, path, m));
                }
                Ok(m) if m.is_file() => files.push(path),
                Ok(_) => {} // sockets, FIFOs, devices: not logs
                Err(e) => {
                    let why = why_unreadable(&path, &e);
                    self.bad(&path, why);
                }
            }
        }
        files.sort_by_key(|p| rotation_key(p));
        self.files.extend(files);
        // Real subdirectories before links to directories: one reached both ways is named by its
        // own path.
        dirs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        if let Some(id) = id {
            self.path.push((id, dir.to_path_buf()));
        }
        for (_, d, m) in dirs {
            self.dir(&d, &m);
        }
        if id.is_some() {
            self.path.pop();
        }
    }
}

/// Why an entry's metadata could not be read: a dangling or looping symbolic link, or the error.
fn why_unreadable(path: &Path, e: &std::io::Error) -> String {
    let target = std::fs::read_link(path).ok();
    let to = target.as_ref().map(|t| format!(" (to {})", t.display())).unwrap_or_default();
    match (target.is_some(), e.kind()) {
        (true, std::io::ErrorKind::NotFound) => format!("dangling symbolic link{to}: its target does not exist"),
        (true, _) if e.raw_os_error() == Some(40) => format!("symbolic link loop{to}"),
        (true, _) => format!("symbolic link{to} cannot be followed ({e})"),
        (false, _) => format!("cannot be read ({e})"),
    }
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
    fn log_names() {
        for n in [
            "audit.log",
            "audit.log.1",
            "audit.log.2.gz",
            "kube-apiserver-audit",
            "a.json",
            "x.jsonl.gz",
            "part-0.parquet",
            "audit-2026-11-20T10-00-00.000.log.gz",
        ] {
            assert!(looks_like_log(Path::new(n)), "{n}");
        }
        for n in ["README.md", "SOURCES.md", "notes.txt", "truth.yaml"] {
            assert!(!looks_like_log(Path::new(n)), "{n}");
        }
    }

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

    #[cfg(unix)]
    #[test]
    fn bad_entries_are_listed_by_their_own_path_and_passed_over() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("a.log"), "").unwrap();
        std::fs::write(d.join("sub/b.log"), "").unwrap();
        symlink(d.join("gone.log"), d.join("dangling.log")).unwrap();
        symlink("loop2.log", d.join("loop1.log")).unwrap();
        symlink("loop1.log", d.join("loop2.log")).unwrap();
        symlink("..", d.join("sub/up")).unwrap();
        symlink("sub", d.join("again")).unwrap(); // the same directory twice: read once
        let e = expand(&[d]).unwrap();
        assert_eq!(e.sources, [Source::File(d.join("a.log")), Source::File(d.join("sub/b.log"))]);
        let mut bad: Vec<(String, String)> = e
            .unreadable
            .iter()
            .map(|u| (u.path.strip_prefix(d).unwrap().display().to_string(), u.reason.clone()))
            .collect();
        bad.sort();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert_eq!(bad[0].0, "dangling.log");
        assert!(bad[0].1.starts_with("dangling symbolic link (to "), "{}", bad[0].1);
        assert_eq!((bad[1].0.as_str(), bad[1].1.as_str()), ("loop1.log", "symbolic link loop (to loop2.log)"));
        assert_eq!((bad[2].0.as_str(), bad[2].1.as_str()), ("loop2.log", "symbolic link loop (to loop1.log)"));
        assert_eq!(bad[3].0, "sub/up");
        assert_eq!(bad[3].1, format!("symbolic link loop: leads back to {}", d.display()));
        assert!(e.check(false).is_ok());
        let err = e.check(true).unwrap_err().to_string();
        assert!(err.ends_with("; stopped there (--strict)"), "{err}");
    }
}
