//! Checksums: every file of a segment (its Parquet file and each file of its index directory) is
//! recorded in the manifest at commit with its size and CRC-32 ([`FileSum`]), and the manifest
//! carries a CRC-32 of its own text (`checksum`). What is checked, and when:
//!
//! - the manifest's checksum, every time it is read (a damaged manifest is refused, naming it);
//! - the size of every recorded file of every live segment, before every query (a `stat` each);
//! - the whole Parquet file's CRC-32, before a query reads it whole (the full scan) and before
//!   compaction, prune or `--follow`'s merge copy its rows into a new segment (so damage is never
//!   copied);
//! - everything, by [`Store::verify`] (`kaq verify`).
//!
//! Queries answered from the index or from some columns read only parts of a file: they rely on
//! the size check and on Parquet's own structure (a damaged footer, page header or compressed
//! page fails to decode, and the error names the file); a flipped bit in a value is found by
//! `kaq verify`. Parquet page CRCs would cover those reads, but arrow-rs's writer does not write
//! them.
//!
//! Segments committed before checksums were recorded (no `files` in the manifest) have their
//! Parquet file's size checked (`bytes`) and are reported as having no digest.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{At, Error, MANIFEST, Manifest, SEGMENTS, Segment, Store};

/// One file of a segment as committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSum {
    /// Its path under `segments/` (`seg-000001.parquet`, `seg-000001.index/meta.json`).
    pub name: String,
    pub size: u64,
    /// `crc32:` and 8 hex digits.
    pub digest: String,
}

/// The digest of a file's bytes: `crc32:` and 8 hex digits.
pub fn digest_file(path: &Path) -> Result<(u64, String), Error> {
    let mut f = File::open(path).at(path)?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io { path: path.to_path_buf(), error: e }),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, format!("crc32:{:08x}", h.finalize())))
}

/// The files of a committed segment, digested: its Parquet file `file`, then every file of its
/// index directory `index` (both under `seg_dir`), by name. Lock files tantivy may leave are not
/// part of the index.
pub(crate) fn record(seg_dir: &Path, file: &str, index: Option<&str>) -> Result<Vec<FileSum>, Error> {
    let mut names = vec![file.to_string()];
    if let Some(index) = index {
        let dir = seg_dir.join(index);
        let mut inner: Vec<String> = Vec::new();
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().at(&dir)?.is_file() && !name.ends_with(".lock") {
                inner.push(name);
            }
        }
        inner.sort();
        names.extend(inner.into_iter().map(|n| format!("{index}/{n}")));
    }
    names
        .into_iter()
        .map(|name| {
            let (size, digest) = digest_file(&seg_dir.join(&name))?;
            Ok(FileSum { name, size, digest })
        })
        .collect()
}

/// What was found of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// As committed.
    Intact,
    /// Committed before digests were recorded: its size (when known) matches, its content is not
    /// checked.
    NoDigest,
    Missing,
    /// Its size differs from the recorded one.
    Size {
        expected: u64,
        found: u64,
    },
    /// Its CRC-32 differs from the recorded one.
    Digest {
        expected: String,
        found: String,
    },
    /// It could not be read.
    Unreadable(String),
}

impl Found {
    /// Whether the file is not as committed.
    pub fn damaged(&self) -> bool {
        !matches!(self, Found::Intact | Found::NoDigest)
    }
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Intact => write!(f, "intact"),
            Found::NoDigest => write!(f, "no digest recorded (committed by an older kaq; size checked)"),
            Found::Missing => write!(f, "missing"),
            Found::Size { expected, found } => write!(f, "size {found} bytes, expected {expected}"),
            Found::Digest { expected, found } => write!(f, "content changed: {found}, expected {expected}"),
            Found::Unreadable(why) => write!(f, "unreadable: {why}"),
        }
    }
}

/// One file checked by [`Store::verify`].
#[derive(Debug, Clone)]
pub struct Checked {
    pub path: PathBuf,
    /// The segment it belongs to (none for the manifest).
    pub segment: Option<u64>,
    pub found: Found,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest, then every file of every live segment, in manifest order.
    pub files: Vec<Checked>,
    /// Live segments.
    pub segments: usize,
}

impl Verified {
    pub fn damaged(&self) -> impl Iterator<Item = &Checked> {
        self.files.iter().filter(|c| c.found.damaged())
    }

    pub fn intact(&self) -> bool {
        self.damaged().next().is_none()
    }
}

/// Checks `path` against its record (`size`, and `digest` when given) by reading it whole.
fn check_file(path: &Path, size: Option<u64>, digest: Option<&str>) -> Found {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Missing,
        Err(e) => return Found::Unreadable(e.to_string()),
    };
    if let Some(expected) = size.filter(|&s| s != meta.len()) {
        return Found::Size { expected, found: meta.len() };
    }
    let Some(expected) = digest else { return Found::NoDigest };
    match digest_file(path) {
        Ok((_, found)) if found == expected => Found::Intact,
        Ok((_, found)) => Found::Digest { expected: expected.to_string(), found },
        Err(Error::Io { error, .. }) => Found::Unreadable(error.to_string()),
        Err(e) => Found::Unreadable(e.to_string()),
    }
}

/// The byte range of the manifest checksum's value in the manifest's text (the top-level key
/// `checksum`, as `serde_json::to_vec_pretty` writes it; a string cannot hold a line break, so
/// nothing else matches).
fn checksum_span(text: &[u8]) -> Option<std::ops::Range<usize>> {
    const KEY: &[u8] = b"\n  \"checksum\": \"";
    let at = text.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let len = text[at..].iter().position(|&b| b == b'"')?;
    Some(at..at + len)
}

/// The CRC-32 of a manifest's text without its checksum's value.
fn manifest_digest(text: &[u8], span: std::ops::Range<usize>) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(&text[..span.start]);
    h.update(&text[span.end..]);
    format!("crc32:{:08x}", h.finalize())
}

/// The manifest's text, with its checksum (`m.checksum` is set to it).
pub(crate) fn seal_manifest(m: &mut Manifest) -> Vec<u8> {
    m.checksum = Some(String::new());
    let mut text = serde_json::to_vec_pretty(m).expect("a manifest serialises");
    text.push(b'\n');
    let span = checksum_span(&text).expect("the checksum key is written");
    let sum = manifest_digest(&text, span.clone());
    text.splice(span, sum.bytes());
    m.checksum = Some(sum);
    text
}

/// Checks a manifest's text against its checksum.
pub(crate) fn check_manifest(text: &[u8], m: &Manifest) -> Found {
    let Some(expected) = &m.checksum else {
        // Checksums came with file digests: digests without one mean its key was damaged.
        return if m.segments.iter().any(|s| !s.files.is_empty()) {
            Found::Unreadable("its checksum is missing, though its segments have digests".into())
        } else {
            Found::NoDigest
        };
    };
    match checksum_span(text) {
        Some(span) => {
            let found = manifest_digest(text, span);
            if &found == expected { Found::Intact } else { Found::Digest { expected: expected.clone(), found } }
        }
        None => Found::Unreadable("its checksum cannot be found in its text".into()),
    }
}

/// A damaged store file as an error.
fn damaged(path: PathBuf, found: &Found) -> Error {
    Error::Damaged { path, why: found.to_string() }
}

impl Store {
    /// Checks every file of every live segment against the manifest (sizes and CRC-32s, reading
    /// each file whole) and the manifest against its own checksum. Only a store that cannot be
    /// opened at all (no manifest, or one newer than this kaq) is an error; damage, a manifest
    /// that does not parse included, is reported in the result. Needs no lock: segment files never change once committed.
    pub fn verify(dir: impl AsRef<Path>) -> Result<Verified, Error> {
        let dir = dir.as_ref();
        // A writer may replace segments meanwhile: then check the new manifest's.
        let mut tries = 0;
        loop {
            let (m, text) = match crate::read_manifest_text(dir) {
                Ok(x) => x,
                // Not JSON, or not a manifest: damaged, and nothing else can be checked.
                Err(Error::BadManifest { path, why }) => {
                    let files = vec![Checked { path, segment: None, found: Found::Unreadable(why) }];
                    return Ok(Verified { files, segments: 0 });
                }
                Err(e) => return Err(e),
            };
            let mut files = vec![Checked { path: dir.join(MANIFEST), segment: None, found: check_manifest(&text, &m) }];
            let seg_dir = dir.join(SEGMENTS);
            for s in &m.segments {
                files.extend(check_segment(&seg_dir, s));
            }
            tries += 1;
            let missing = files.iter().any(|c| c.found == Found::Missing);
            if missing && tries < 3 && crate::read_manifest_text(dir).is_ok_and(|(n, _)| n.generation != m.generation) {
                continue;
            }
            return Ok(Verified { files, segments: m.segments.len() });
        }
    }

    /// Checks the sizes of the live segments' recorded files (a `stat` each): a file truncated
    /// or extended is refused before it is read.
    pub(crate) fn check_sizes(&self) -> Result<(), Error> {
        let seg_dir = self.dir.join(SEGMENTS);
        for s in &self.manifest.segments {
            let sizes =
                std::iter::once((s.file.as_str(), s.bytes)).chain(s.files.iter().map(|f| (f.name.as_str(), f.size)));
            for (name, expected) in sizes {
                let path = seg_dir.join(name);
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.len() != expected => {
                        return Err(damaged(path, &Found::Size { expected, found: meta.len() }));
                    }
                    // Gone: replaced by a compaction since (`Store::run` rereads the manifest).
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Checks the whole Parquet file of each live segment among `paths` against its recorded
    /// CRC-32, before it is read whole (a full scan, a rewrite). Segments without a digest pass.
    pub(crate) fn check_whole(&self, paths: &[PathBuf]) -> Result<(), Error> {
        let seg_dir = self.dir.join(SEGMENTS);
        for s in &self.manifest.segments {
            let path = seg_dir.join(&s.file);
            if !paths.contains(&path) {
                continue;
            }
            if let Some(sum) = s.files.iter().find(|f| f.name == s.file) {
                let found = check_file(&path, Some(sum.size), Some(&sum.digest));
                if found.damaged() {
                    return Err(damaged(path, &found));
                }
            }
        }
        Ok(())
    }
}

/// Every file of one segment, checked.
fn check_segment(seg_dir: &Path, s: &Segment) -> Vec<Checked> {
    let checked = |name: &str, found| Checked { path: seg_dir.join(name), segment: Some(s.id), found };
    if s.files.is_empty() {
        let mut out = vec![checked(&s.file, check_file(&seg_dir.join(&s.file), Some(s.bytes), None))];
        if let Some(index) = &s.index {
            let dir = seg_dir.join(index);
            let found = if dir.is_dir() { Found::NoDigest } else { Found::Missing };
            out.push(checked(index, found));
        }
        return out;
    }
    let mut out: Vec<Checked> = s
        .files
        .iter()
        .map(|f| checked(&f.name, check_file(&seg_dir.join(&f.name), Some(f.size), Some(&f.digest))))
        .collect();
    if !s.files.iter().any(|f| f.name == s.file) {
        out.insert(0, checked(&s.file, Found::Unreadable("no digest recorded for it, though for its index".into())));
    }
    out
}
