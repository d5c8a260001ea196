//! The manifest: the live segments, the ingested sources, and how it is read and checked.

use super::*;

/// One live segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    pub id: u64,
    /// File name under `segments/`.
    pub file: String,
    pub rows: u64,
    /// Rows that have a `time` (absent in stores written before this field: then unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_rows: Option<u64>,
    /// Directory of its tantivy index under `segments/` (absent in stores written before indexes:
    /// those segments are scanned whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// What the index holds ([`index::VERSION`]; absent: version 1). An index this kaq cannot use
    /// ([`index::usable`]) is not: its segment is scanned until `kaq compact` rebuilds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_version: Option<u32>,
    /// The Unicode version of the kaq that built the index ([`index::unicode`]: which characters
    /// are letters, and their lowercase, in its words; absent: unknown, as in stores written
    /// before this field). Words outside ASCII are looked up only in indexes of this kaq's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_unicode: Option<String>,
    /// No auditID is on two of its rows (known from the index build; false when unknown).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ids_unique: bool,
    /// Earliest and latest `time` (µs since the epoch), when any row has one.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub bytes: u64,
    /// Every file of the segment (the Parquet file, then its index's) with its size and CRC-32,
    /// recorded at commit (the `verify` module; absent in stores written before: "no digest recorded").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSum>,
}

impl Segment {
    /// The segment's index directory name, when it has an index this kaq can use.
    pub fn usable_index(&self) -> Option<&str> {
        self.index.as_deref().filter(|_| index::usable(self.index_version.unwrap_or(1)))
    }

    /// Rows with a `time`; when unknown, assume some have none (so prune keeps the segment whole).
    pub fn rows_with_time(&self) -> u64 {
        self.timed_rows.unwrap_or(0)
    }
}

/// One ingested input file (see the `inputs` module for how files are recognised).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ingested {
    /// The path as given, made absolute (when it was last read).
    pub path: String,
    /// Bytes of its content read (decompressed, for gzip): of a log still being written, up to its
    /// last complete line.
    pub size: u64,
    /// SHA-256 of its first `min(64 KiB, size)` bytes, hex.
    pub head: String,
    pub events: u64,
    pub rejected: u64,
    /// The segment its (latest) events went into (none when it had none, or every one was already
    /// held by a committed segment). Records that repeat ones of the same segment are left out
    /// when it is written, and the source still names it: its records are there.
    pub segment: Option<u64>,
    /// Lines read (numbering the lines of what follows, when it grows).
    #[serde(default)]
    pub lines: u64,
    /// A JSON document or a Parquet file: remembered by its own bytes, it cannot grow (a changed
    /// one is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
    /// A gzip file's own size and head hash (`size` and `head` are of its decompressed content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_head: Option<String>,
}

/// The manifest: what the store holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// Incremented by every commit.
    pub generation: u64,
    pub next_segment: u64,
    pub segments: Vec<Segment>,
    pub sources: Vec<Ingested>,
    /// The paths `follow` reads (absolute, as records name them), each with when it last looked
    /// at it before this commit (µs since the epoch): a restart takes the files beside a path
    /// written since for rotations it may not have read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub followed: std::collections::BTreeMap<String, i64>,
    /// CRC-32 of the manifest's text without this value (the `verify` module; absent in older stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    pub(crate) fn empty() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            generation: 0,
            next_segment: 1,
            segments: Vec::new(),
            sources: Vec::new(),
            followed: Default::default(),
            checksum: None,
        }
    }

    /// Events in the store (rows of all live segments).
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    pub fn time_range(&self) -> (Option<i64>, Option<i64>) {
        (self.segments.iter().filter_map(|s| s.min_time).min(), self.segments.iter().filter_map(|s| s.max_time).max())
    }
}

/// The manifest, refused when its text does not match its checksum.
pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let (m, text) = read_manifest_text(dir)?;
    let found = verify::check_manifest(&text, &m);
    if found.damaged() {
        let why = format!("damaged: {found}; `kaq verify` checks the whole store");
        return Err(Error::BadManifest { path: dir.join(MANIFEST), why });
    }
    Ok(m)
}

/// The manifest and its text, unchecked.
pub(crate) fn read_manifest_text(dir: &Path) -> Result<(Manifest, Vec<u8>), Error> {
    let path = dir.join(MANIFEST);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotAStore(dir.to_path_buf())),
        Err(e) => return Err(Error::Io { path, error: e }),
    };
    #[derive(Deserialize)]
    struct Head {
        format: String,
        version: u32,
    }
    let head: Head =
        serde_json::from_slice(&text).map_err(|e| Error::BadManifest { path: path.clone(), why: e.to_string() })?;
    if head.format != FORMAT {
        return Err(Error::BadManifest { path, why: format!("format is `{}`, not `{FORMAT}`", head.format) });
    }
    if head.version > VERSION {
        return Err(Error::TooNew { path, found: head.version });
    }
    let m = serde_json::from_slice(&text).map_err(|e| Error::BadManifest { path, why: e.to_string() })?;
    Ok((m, text))
}
