//! What the store knows of its input files: how much of each was read, recognised by content.
//!
//! A file is remembered ([`Ingested`]) by the bytes read of it (`size`) and a hash of its first
//! `min(64 KiB, size)` bytes (`head`). A file is the same as a remembered one when its first bytes
//! hash the same, whatever its name now: a log renamed by rotation (`audit.log` →
//! `audit-2026-11-20T10-00-00.000.log`), compressed (`….log.gz`) or copied is recognised, and
//! only what follows the bytes already read is new. Audit events carry unique auditIDs and times,
//! so two logs that share their first line are the same log.
//!
//! A plain file still being written may end in half a line: only complete lines are read
//! ([`readable_end`]); the rest waits for the next ingest, or for `--follow`'s next look.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{At, Error, HEAD_BYTES, Ingested};

/// A file about to be ingested: its name, the path it is read at, its raw size and raw head.
pub(crate) struct Identity {
    /// Its absolute path, as records name it.
    pub path: String,
    /// Where it is read (`/proc/self/fd/N` for a file kept open while followed).
    pub file: std::path::PathBuf,
    pub size: u64,
    /// SHA-256 of [`head_bytes`](Self::head_bytes).
    pub head: String,
    /// Its first `min(64 KiB, size)` bytes, read with `size` from one open handle.
    pub head_bytes: Vec<u8>,
    pub gzip: bool,
    /// kaq Parquet (from `kaq convert`): read whole, remembered by its bytes.
    pub parquet: bool,
}

impl Identity {
    /// The hash of its first `min(64 KiB, n)` bytes (`n` at most its size).
    pub fn head_of(&self, n: u64) -> String {
        let n = (n.min(HEAD_BYTES) as usize).min(self.head_bytes.len());
        hex(&Sha256::digest(&self.head_bytes[..n]))
    }
}

/// Identifies the file at `p`, named by its absolute path or by `name` (for a file read through
/// `/proc/self/fd/N`). The size and the head come from one handle, so that a file growing
/// meanwhile is not hashed past its size.
pub(crate) fn identify(p: &Path, name: Option<&str>) -> Result<Identity, Error> {
    let path = match name {
        Some(n) => n.to_string(),
        None => std::fs::canonicalize(p).at(p)?.display().to_string(),
    };
    let f = File::open(p).at(p)?;
    let mut size = f.metadata().at(p)?.len();
    let mut head_bytes = Vec::new();
    f.take(size.min(HEAD_BYTES)).read_to_end(&mut head_bytes).at(p)?;
    if (head_bytes.len() as u64) < size.min(HEAD_BYTES) {
        size = head_bytes.len() as u64; // truncated meanwhile
    }
    let gzip = head_bytes.starts_with(&[0x1f, 0x8b]);
    let parquet = kaq_columnar::read::is_parquet(p);
    let head = hex(&Sha256::digest(&head_bytes));
    Ok(Identity { path, file: p.to_path_buf(), size, head, head_bytes, gzip, parquet })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of the first `n` bytes of a file's content (decompressed, for gzip), or `None` when
/// it has fewer.
pub(crate) fn content_head(path: &Path, n: u64, gzip: bool) -> Result<Option<String>, Error> {
    let f = File::open(path).at(path)?;
    let mut head = Vec::with_capacity(n as usize);
    if gzip {
        let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
        gz.take(n).read_to_end(&mut head).at(path)?;
    } else {
        f.take(n).read_to_end(&mut head).at(path)?;
    }
    Ok((head.len() as u64 == n).then(|| hex(&Sha256::digest(&head))))
}

/// Where a file stands against what the store has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// All of it was read before.
    Already,
    /// The first `from` bytes of its content were read before (as `sources[rec]`, counting the
    /// records of the manifest then the pending ones); the rest is new.
    Grown { rec: usize, from: u64, lines: u64 },
    /// Nothing of it was read.
    New,
}

/// Finds what was read of the file `id` among `known` records.
pub(crate) fn standing<'a>(
    id: &Identity,
    known: impl Iterator<Item = &'a Ingested> + Clone,
) -> Result<Standing, Error> {
    // The same bytes, whole (gzip files are also remembered by their raw bytes).
    if known.clone().any(|r| {
        (r.head == id.head && r.size == id.size)
            || (r.raw_size == Some(id.size) && r.raw_head.as_deref() == Some(id.head.as_str()))
    }) {
        return Ok(Standing::Already);
    }
    // An earlier copy of a plain file read further (its first 64 KiB are the same).
    if !id.gzip && id.size >= HEAD_BYTES && known.clone().any(|r| r.head == id.head && r.size > id.size) {
        return Ok(Standing::Already);
    }
    // A JSON document or Parquet file read before and changed since cannot be resumed.
    if let Some(r) = known.clone().find(|r| r.sealed && r.head == id.head) {
        return Err(Error::Changed { path: id.path.clone().into(), was: r.size, now: id.size });
    }
    if id.parquet {
        return Ok(Standing::New);
    }
    // The beginning of a log read before (compressed or not): the longest one wins.
    let mut candidates: Vec<(usize, &Ingested)> =
        known.enumerate().filter(|(_, r)| !r.sealed && r.size > 0 && (id.gzip || r.size < id.size)).collect();
    candidates.sort_by_key(|(_, r)| std::cmp::Reverse(r.size));
    let mut hashed: Vec<(u64, Option<String>)> = Vec::new();
    for (i, r) in candidates {
        let n = r.size.min(HEAD_BYTES);
        let h = match hashed.iter().find(|(len, _)| *len == n) {
            Some((_, h)) => h.clone(),
            None => {
                let h = if id.gzip { content_head(&id.file, n, true)? } else { Some(id.head_of(n)) };
                hashed.push((n, h.clone()));
                h
            }
        };
        if h.as_deref() == Some(r.head.as_str()) {
            return Ok(Standing::Grown { rec: i, from: r.size, lines: r.lines });
        }
    }
    Ok(Standing::New)
}

/// Where reading a plain file that is `size` bytes long should stop, from `start`: after its last
/// complete line. A last line without its newline is read too when it is whole JSON (a file that
/// simply does not end in a newline); otherwise it is being written, and waits. With `whole`,
/// everything is read (a rotated file: nothing more will come). A file whose first line is not
/// JSON on its own but opens an object or array (a pretty-printed document) is read whole too, and
/// said to be one. A file found shorter than `size` (truncated meanwhile) has nothing readable now.
pub(crate) fn readable_end(path: &Path, start: u64, size: u64, whole: bool) -> Result<(u64, bool), Error> {
    if whole || size <= start {
        return Ok((size.max(start), false));
    }
    let mut f = File::open(path).at(path)?;
    if start == 0 && opens_a_document(&mut f).at(path)? {
        return Ok((size, true));
    }
    // The last newline, looked for backwards a block at a time.
    let mut end = size;
    let mut block = vec![0u8; 64 << 10];
    let last_nl = loop {
        if end == start {
            break None;
        }
        let from = end.saturating_sub(block.len() as u64).max(start);
        let buf = &mut block[..(end - from) as usize];
        f.seek(SeekFrom::Start(from)).at(path)?;
        match f.read_exact(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((start, false)),
            r => r.at(path)?,
        }
        if let Some(i) = memchr::memrchr(b'\n', buf) {
            break Some(from + i as u64);
        }
        end = from;
    };
    let tail_start = last_nl.map_or(start, |i| i + 1);
    if tail_start == size {
        return Ok((size, false));
    }
    // Parsed as it is read, not held: the tail may be a line of any length.
    f.seek(SeekFrom::Start(tail_start)).at(path)?;
    let tail = std::io::BufReader::with_capacity(64 << 10, (&mut f).take(size - tail_start));
    let whole_json = serde_json::from_reader::<_, serde::de::IgnoredAny>(tail).is_ok();
    Ok((if whole_json { size } else { tail_start }, false))
}

/// Whether a file opens a pretty-printed JSON document: its first non-blank line (after a
/// byte-order mark) starts with `{` or `[` and is not a JSON value by itself. A first line not yet
/// ended is taken for JSON lines.
fn opens_a_document(f: &mut File) -> std::io::Result<bool> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        let body = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf).trim_ascii_start();
        if !body.is_empty() && !matches!(body[0], b'{' | b'[') {
            return Ok(false);
        }
        if let Some(i) = memchr::memchr(b'\n', body) {
            return Ok(serde_json::from_slice::<serde::de::IgnoredAny>(&body[..i]).is_err());
        }
        if n == 0 || buf.len() > 16 << 20 {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_to_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"a\":1}\n{\"a\":2}\n{\"a\":";
        let p = write(dir.path(), "x.log", text);
        let n = text.len() as u64;
        assert_eq!(readable_end(&p, 0, n, false).unwrap().0, 16, "the half line waits");
        assert_eq!(readable_end(&p, 0, n, true).unwrap().0, n, "a rotated file is read whole");
        assert_eq!(readable_end(&p, 16, n, false).unwrap().0, 16, "nothing complete after 16");
        let p = write(dir.path(), "y.log", "{\"a\":1}\n{\"a\":2}");
        assert_eq!(readable_end(&p, 0, 15, false).unwrap().0, 15, "whole JSON without its newline");
        assert_eq!(readable_end(&p, 8, 15, false).unwrap().0, 15);
        let p = write(dir.path(), "z.json", "{\n  \"kind\": \"EventList\",\n  \"items\": []\n}");
        assert_eq!(readable_end(&p, 0, 40, false).unwrap(), (40, true), "a document is read whole");
        let text = "not json\n{\"a\":1}\n{\"a\":";
        let p = write(dir.path(), "v.log", text);
        assert_eq!(readable_end(&p, 0, text.len() as u64, false).unwrap(), (17, false), "lines, a bad first one");
        let p = write(dir.path(), "w.log", "{\"a\":");
        assert_eq!(readable_end(&p, 0, 5, false).unwrap().0, 0, "one half line: nothing yet");
    }

    #[test]
    fn recognises_a_file_by_its_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "audit.log", "{\"a\":1}\n");
        let id = identify(&p, None).unwrap();
        let rec = Ingested {
            path: id.path.clone(),
            size: id.size,
            head: id.head.clone(),
            events: 1,
            rejected: 0,
            segment: Some(1),
            lines: 1,
            sealed: false,
            raw_size: None,
            raw_head: None,
        };
        let known = [rec];
        assert_eq!(standing(&id, known.iter()).unwrap(), Standing::Already);
        let p2 = write(dir.path(), "audit-1.log", "{\"a\":1}\n{\"a\":2}\n");
        let grown = identify(&p2, None).unwrap();
        assert_eq!(standing(&grown, known.iter()).unwrap(), Standing::Grown { rec: 0, from: 8, lines: 1 });
        let other = identify(&write(dir.path(), "b.log", "{\"b\":1}\n{\"a\":2}\n"), None).unwrap();
        assert_eq!(standing(&other, known.iter()).unwrap(), Standing::New);
        // Compressed by rotation: recognised by its content.
        let gz = dir.path().join("audit-1.log.gz");
        let mut e = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        e.finish().unwrap();
        let gid = identify(&gz, None).unwrap();
        assert!(gid.gzip);
        assert_eq!(standing(&gid, known.iter()).unwrap(), Standing::Grown { rec: 0, from: 8, lines: 1 });
    }
}
