//! Matching rows held for the latest-stage rule, in bounded memory: while a scan runs, a row may
//! still be superseded by a later stage of its request, so it is kept until the input is read.
//! A `RowSpill` keeps rows in memory up to a budget, then writes them (and every later one) to
//! an unnamed temporary file, in the order given; `RowSpill::rows` reads them back in that
//! order. What decides the latest stage (position, identity, stage: a record for every line read)
//! is held in memory up to [`SPILL_RECORDS`], then written by the hash of its auditID to another
//! unnamed temporary file (`RecordSpill`), and settled a partition at a time.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use crate::pipeline::Row;
use crate::value::Val;

/// The memory kept for matching rows before they go to a temporary file, in bytes (estimated):
/// 64 MiB.
pub const SPILL_AFTER: usize = 64 << 20;

/// Rows in order: in memory, then (past the budget) in an unnamed temporary file.
pub(crate) struct RowSpill {
    budget: usize,
    held: Vec<Row>,
    held_bytes: usize,
    file: Option<BufWriter<File>>,
    /// Rows written to the file.
    pub(crate) spilled: u64,
}

impl RowSpill {
    pub(crate) fn new(budget: usize) -> RowSpill {
        RowSpill { budget, held: Vec::new(), held_bytes: 0, file: None, spilled: 0 }
    }

    /// Adds the next row.
    pub(crate) fn push(&mut self, row: Row) -> io::Result<()> {
        if let Some(f) = &mut self.file {
            self.spilled += 1;
            return encode_row(f, &row);
        }
        self.held_bytes += row_size(&row);
        self.held.push(row);
        if self.held_bytes > self.budget {
            let file = tempfile::tempfile().map_err(spill_error)?;
            let mut f = BufWriter::with_capacity(1 << 20, file);
            for r in self.held.drain(..) {
                encode_row(&mut f, &r).map_err(spill_error)?;
                self.spilled += 1;
            }
            self.held = Vec::new();
            self.file = Some(f);
        }
        Ok(())
    }

    /// The rows, in the order pushed. Rows in the file are read and decoded on a thread of
    /// their own, a few thousand ahead of the caller, so that reading them back overlaps with
    /// whatever the caller does with each (writing it out). They are handed over a thousand at
    /// a time: one at a time, the two threads woke each other for every row.
    pub(crate) fn rows(self) -> io::Result<impl Iterator<Item = io::Result<Row>>> {
        let from_file = match self.file {
            None => None,
            Some(f) => {
                let mut file = f.into_inner().map_err(|e| spill_error(e.into_error()))?;
                use std::io::Seek;
                file.seek(io::SeekFrom::Start(0)).map_err(spill_error)?;
                const BATCH: u64 = 1024;
                let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<Row>>>(4);
                let left = self.spilled;
                std::thread::Builder::new()
                    .name("kaq-spill".into())
                    .spawn(move || {
                        let mut r = BufReader::with_capacity(1 << 20, file);
                        let mut sent = 0;
                        while sent < left {
                            let n = BATCH.min(left - sent);
                            sent += n;
                            let rows = (0..n).map(|_| decode_row(&mut r)).collect::<io::Result<Vec<_>>>();
                            let rows = rows.map_err(spill_error);
                            let failed = rows.is_err();
                            // The receiver gone (the caller stopped at an error): stop too.
                            if tx.send(rows).is_err() || failed {
                                return;
                            }
                        }
                    })
                    .map_err(spill_error)?;
                let batches = rx.into_iter().flat_map(|b| {
                    let (rows, error) = match b {
                        Ok(rows) => (rows, None),
                        Err(e) => (Vec::new(), Some(e)),
                    };
                    rows.into_iter().map(Ok).chain(error.map(Err))
                });
                Some(batches)
            }
        };
        Ok(self.held.into_iter().map(Ok).chain(from_file.into_iter().flatten()))
    }
}

/// How many records of the latest-stage rule (`Hit`s and `Stage`s,
/// 64 to 72 bytes each: one per line a raw scan reads) a scan keeps in memory before it writes
/// them to a temporary file (`RecordSpill`): about 140 MB. Lines a question decodes and does not
/// match are kept too (a later line may be a stage of a request that matches), so without a
/// bound a needle search of a 5M-event log held 390 MB, and `| count by user` 500 MB.
pub const SPILL_RECORDS: usize = 2 << 20;

/// Partitions of a `RecordSpill`: the records of one partition are settled together, in
/// memory, one partition a core at a time, so a scan holds about a 256th of its records a core
/// when it settles them (on 2 cores, past 128 times [`SPILL_RECORDS`] lines, a quarter of a
/// billion, that outgrows the budget). Every record of one auditID is in one partition: logs
/// whose records carry no auditID, or one auditID for all, are settled in memory as a whole.
pub(crate) const RECORD_PARTS: usize = 256;

/// Bytes a partition gathers before they are written as one block.
const RECORD_BLOCK: usize = 32 << 10;

/// The records of the latest-stage rule, past [`SPILL_RECORDS`], in one unnamed temporary file,
/// partitioned by a keyed hash of their auditID: every record of one auditID is in one partition,
/// so each partition is settled on its own ([`crate::latest::Collector`]). Each partition's
/// records are gathered in a buffer and written as blocks, whose places are kept.
pub(crate) struct RecordSpill {
    file: File,
    /// Bytes written.
    len: u64,
    /// Keyed at random per process: auditIDs come from a client header.
    state: ahash::RandomState,
    bufs: Vec<Vec<u8>>,
    /// Each partition's blocks: where each starts in the file, and its length.
    blocks: Vec<Vec<(u64, u64)>>,
    /// Each partition's hits: one without is not read back (nothing in it can be kept, nor ask
    /// for a rescan).
    pub(crate) hits: Vec<u64>,
}

/// A hit, a stage that did not match, or a line the prefilter skipped; with an auditID as text
/// (not a UUID).
const HIT: u8 = 1;
const QUICK: u8 = 2;
const TEXT_ID: u8 = 4;

/// One partition's records, read back: the hits with their indices among all hits, and the stages.
#[derive(Default)]
pub(crate) struct RecordPart {
    pub(crate) hits: Vec<crate::latest::Hit>,
    pub(crate) indices: Vec<u64>,
    pub(crate) stages: Vec<crate::latest::Stage>,
}

impl RecordSpill {
    pub(crate) fn new() -> io::Result<RecordSpill> {
        Ok(RecordSpill {
            file: tempfile::tempfile().map_err(record_error)?,
            len: 0,
            state: ahash::RandomState::new(),
            bufs: vec![Vec::new(); RECORD_PARTS],
            blocks: vec![Vec::new(); RECORD_PARTS],
            hits: vec![0; RECORD_PARTS],
        })
    }

    fn part(&self, id: &crate::latest::IdKey) -> usize {
        (self.state.hash_one(id) >> 56) as usize % RECORD_PARTS
    }

    /// Writes the hit that is `index`th among all hits.
    pub(crate) fn hit(&mut self, index: u64, h: &crate::latest::Hit) -> io::Result<()> {
        let p = self.part(&h.key.id);
        self.hits[p] += 1;
        let b = &mut self.bufs[p];
        encode_record(b, HIT, &h.key, h.pos, h.rank);
        b.extend(index.to_le_bytes());
        self.written(p)
    }

    /// Writes a stage that did not match, or a line skipped (of which only the auditID and the
    /// stage are kept: all settling reads of it).
    pub(crate) fn stage(&mut self, s: &crate::latest::Stage) -> io::Result<()> {
        let p = self.part(&s.key.id);
        encode_record(&mut self.bufs[p], if s.quick { QUICK } else { 0 }, &s.key, s.pos, s.rank);
        self.written(p)
    }

    fn written(&mut self, p: usize) -> io::Result<()> {
        if self.bufs[p].len() >= RECORD_BLOCK { self.flush(p) } else { Ok(()) }
    }

    fn flush(&mut self, p: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let b = &mut self.bufs[p];
        if b.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(b, self.len).map_err(record_error)?;
        self.blocks[p].push((self.len, b.len() as u64));
        self.len += b.len() as u64;
        b.clear();
        Ok(())
    }

    /// Writes what every partition has gathered; its buffers are let go.
    pub(crate) fn flush_all(&mut self) -> io::Result<()> {
        for p in 0..RECORD_PARTS {
            self.flush(p)?;
            self.bufs[p] = Vec::new();
        }
        Ok(())
    }

    /// Partition `p`'s records, in the order written (after [`RecordSpill::flush_all`]).
    pub(crate) fn read_part(&self, p: usize) -> io::Result<RecordPart> {
        use std::os::unix::fs::FileExt;
        let mut part = RecordPart::default();
        let mut buf = Vec::new();
        for &(at, len) in &self.blocks[p] {
            let len = usize::try_from(len).map_err(|_| records_corrupt("a block too large"))?;
            buf.resize(len, 0);
            self.file.read_exact_at(&mut buf, at).map_err(record_error)?;
            let mut r = buf.as_slice();
            while !r.is_empty() {
                decode_record(&mut r, &mut part).map_err(record_error)?;
            }
        }
        Ok(part)
    }
}

#[cfg(test)]
impl RecordSpill {
    /// Changes the index among all hits of the first hit written whose index `pick` takes to
    /// `change(index)` (after [`RecordSpill::flush_all`]), in the file: a damaged file, for tests.
    /// Returns the index it had.
    pub(crate) fn damage_hit(&self, pick: impl Fn(u64) -> bool, change: impl Fn(u64) -> u64) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        for blocks in &self.blocks {
            for &(at, len) in blocks {
                let mut buf = vec![0; len as usize];
                self.file.read_exact_at(&mut buf, at)?;
                let mut r = buf.as_slice();
                while !r.is_empty() {
                    let mut part = RecordPart::default();
                    decode_record(&mut r, &mut part)?;
                    if let Some(&index) = part.indices.first().filter(|&&i| pick(i)) {
                        // A hit ends with its index.
                        let end = (buf.len() - r.len()) as u64;
                        self.file.write_all_at(&change(index).to_le_bytes(), at + end - 8)?;
                        return Ok(index);
                    }
                }
            }
        }
        Err(io::Error::other("no hit written"))
    }
}

fn encode_record(b: &mut Vec<u8>, mut tag: u8, key: &crate::latest::RequestKey, pos: u64, rank: crate::latest::Latest) {
    use crate::latest::IdKey;
    if matches!(key.id, IdKey::Other(_)) {
        tag |= TEXT_ID;
    }
    b.push(tag);
    b.push(rank.0);
    b.extend(pos.to_le_bytes());
    // A skipped line is known by its auditID and stage only (settling reads nothing else of it):
    // most records of a search, written in 26 bytes instead of 50.
    if tag & QUICK == 0 {
        b.extend(key.request.to_le_bytes());
        b.extend(rank.1.to_le_bytes());
        b.extend(rank.2.to_le_bytes());
    }
    match &key.id {
        IdKey::Uuid([hi, lo]) => {
            b.extend(hi.to_le_bytes());
            b.extend(lo.to_le_bytes());
        }
        IdKey::Other(s) => {
            b.extend((s.len() as u64).to_le_bytes());
            b.extend(s.as_bytes());
        }
    }
}

fn decode_record(r: &mut &[u8], part: &mut RecordPart) -> io::Result<()> {
    use crate::latest::{Hit, IdKey, RequestKey, Stage};
    let tag = read_u8(r)?;
    if tag & !(HIT | QUICK | TEXT_ID) != 0 || tag & (HIT | QUICK) == HIT | QUICK {
        return Err(records_corrupt("an unknown tag"));
    }
    let stage = read_u8(r)?;
    let pos = read_u64(r)?;
    let (request, t1, t2) = match tag & QUICK {
        0 => (read_u64(r)?, read_u64(r)? as i64, read_u64(r)? as i64),
        _ => (0, i64::MIN, i64::MIN),
    };
    let id = if tag & TEXT_ID != 0 {
        let n = read_u64(r)?;
        let Some(text) = usize::try_from(n).ok().and_then(|n| r.get(..n)) else {
            return Err(records_corrupt("an auditID is cut short"));
        };
        let text = std::str::from_utf8(text).map_err(|_| records_corrupt("an auditID is not UTF-8"))?;
        *r = &r[text.len()..];
        IdKey::Other(text.into())
    } else {
        IdKey::Uuid([read_u64(r)?, read_u64(r)?])
    };
    let key = RequestKey { id, request };
    let rank = (stage, t1, t2);
    if tag & HIT != 0 {
        part.indices.push(read_u64(r)?);
        part.hits.push(Hit { pos, key, rank });
    } else {
        part.stages.push(Stage { pos, key, rank, quick: tag & QUICK != 0 });
    }
    Ok(())
}

/// The stages file read back is not what was written.
pub(crate) fn records_corrupt(what: &str) -> io::Error {
    damaged("stages", what)
}

fn record_error(e: io::Error) -> io::Error {
    temp_file_error("the stages of the records read", e)
}

fn spill_error(e: io::Error) -> io::Error {
    temp_file_error("the matching rows", e)
}

/// An error holding `what` in a temporary file, saying where.
fn temp_file_error(what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("holding {what} in a temporary file in {} (TMPDIR): {e}", std::env::temp_dir().display()),
    )
}

/// The temporary file of `which` (rows or stages) read back is not what was written.
fn damaged(which: &str, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("the temporary file of {which} was changed: {what}"))
}

/// Roughly the memory a row takes.
fn row_size(row: &Row) -> usize {
    fn val(v: &Val<'_>) -> usize {
        std::mem::size_of::<Val<'static>>()
            + match v {
                Val::Str(s) => s.len(),
                Val::List(l) => l.iter().map(val).sum(),
                _ => 0,
            }
    }
    std::mem::size_of::<Row>() + row.vals.iter().map(val).sum::<usize>() + row.raw.as_ref().map_or(0, |r| r.len())
}

fn encode_row(w: &mut impl Write, row: &Row) -> io::Result<()> {
    w.write_all(&(row.vals.len() as u64).to_le_bytes())?;
    for v in &row.vals {
        encode_val(w, v)?;
    }
    match &row.raw {
        None => w.write_all(&[0]),
        Some(raw) => {
            w.write_all(&[1])?;
            encode_str(w, raw)
        }
    }
}

fn encode_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn encode_val(w: &mut impl Write, v: &Val<'_>) -> io::Result<()> {
    match v {
        Val::Null => w.write_all(&[0]),
        Val::Bool(b) => w.write_all(&[1, u8::from(*b)]),
        Val::Int(i) => {
            w.write_all(&[2])?;
            w.write_all(&i.to_le_bytes())
        }
        Val::Float(f) => {
            w.write_all(&[3])?;
            w.write_all(&f.to_bits().to_le_bytes())
        }
        Val::Str(s) => {
            w.write_all(&[4])?;
            encode_str(w, s)
        }
        Val::Time(t) => {
            w.write_all(&[5])?;
            w.write_all(&t.to_le_bytes())
        }
        Val::Dur(d) => {
            w.write_all(&[6])?;
            w.write_all(&d.to_le_bytes())
        }
        Val::List(l) => {
            w.write_all(&[7])?;
            w.write_all(&(l.len() as u64).to_le_bytes())?;
            l.iter().try_for_each(|v| encode_val(w, v))
        }
    }
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn corrupt(what: &str) -> io::Error {
    damaged("rows", what)
}

fn decode_str(r: &mut impl Read) -> io::Result<String> {
    let n = read_u64(r)?;
    if n <= 4096 {
        // The usual text, read at once (`read_to_end` reads a short text in several calls).
        let mut b = vec![0; n as usize];
        r.read_exact(&mut b).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => corrupt("a text is cut short"),
            _ => e,
        })?;
        return String::from_utf8(b).map_err(|_| corrupt("a text is not UTF-8"));
    }
    let mut b = Vec::new();
    // `take` bounds the read by what the file holds, whatever the length says.
    r.take(n).read_to_end(&mut b)?;
    if b.len() as u64 != n {
        return Err(corrupt("a text is cut short"));
    }
    String::from_utf8(b).map_err(|_| corrupt("a text is not UTF-8"))
}

fn decode_row(r: &mut impl Read) -> io::Result<Row> {
    let n = read_u64(r)?;
    let vals = (0..n).map(|_| decode_val(r)).collect::<io::Result<Vec<_>>>()?;
    let raw = match read_u8(r)? {
        0 => None,
        1 => Some(decode_str(r)?.into_boxed_str()),
        _ => return Err(corrupt("an unknown tag")),
    };
    Ok(Row { vals, raw })
}

/// Lists nested deeper than this in a row read back are a damaged file (values come from JSON,
/// which kaq keeps to a depth of 100, `kaq_schema::json::MAX_DEPTH`): reading them would only
/// recurse until the stack ran out.
const MAX_DEPTH: usize = 200;

fn decode_val(r: &mut impl Read) -> io::Result<Val<'static>> {
    decode_val_at(r, 0)
}

fn decode_val_at(r: &mut impl Read, depth: usize) -> io::Result<Val<'static>> {
    let i64_of = |r: &mut dyn Read| {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map(|_| i64::from_le_bytes(b))
    };
    Ok(match read_u8(r)? {
        0 => Val::Null,
        1 => Val::Bool(read_u8(r)? != 0),
        2 => Val::Int(i64_of(r)?),
        3 => Val::Float(f64::from_bits(read_u64(r)?)),
        4 => Val::Str(decode_str(r)?.into()),
        5 => Val::Time(i64_of(r)?),
        6 => Val::Dur(i64_of(r)?),
        7 if depth >= MAX_DEPTH => return Err(corrupt("lists nested too deep")),
        7 => {
            let n = read_u64(r)?;
            Val::List((0..n).map(|_| decode_val_at(r, depth + 1)).collect::<io::Result<Vec<_>>>()?)
        }
        _ => return Err(corrupt("an unknown tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                vals: vec![
                    Val::Null,
                    Val::Bool(true),
                    Val::Int(-3),
                    Val::Float(1.5),
                    Val::Str("ü\n\"x".into()),
                    Val::Time(1_700_000_000_000_000),
                    Val::Dur(250),
                    Val::List(vec![Val::Str("a".into()), Val::List(vec![]), Val::Null]),
                ],
                raw: None,
            },
            Row { vals: vec![], raw: Some(r#"{"auditID":"1"}"#.into()) },
            Row { vals: vec![Val::Str(String::new().into())], raw: Some("".into()) },
        ]
    }

    fn same(a: &[Row], b: &[Row]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(format!("{:?}", x.vals), format!("{:?}", y.vals));
            assert_eq!(x.raw, y.raw);
        }
    }

    #[test]
    fn rows_come_back_in_order_in_memory_and_spilled() {
        for budget in [usize::MAX, 0, 3000] {
            let mut s = RowSpill::new(budget);
            let mut all = Vec::new();
            for _ in 0..50 {
                for r in rows() {
                    s.push(r).unwrap();
                }
                all.extend(rows());
            }
            let spilled = s.spilled;
            let back: Vec<Row> = s.rows().unwrap().collect::<io::Result<_>>().unwrap();
            same(&back, &all);
            // Past the budget, the rows held so far go to the file too, in order.
            assert_eq!(spilled, if budget == usize::MAX { 0 } else { 150 });
        }
    }

    /// Records of the latest-stage rule come back as written; cut anywhere but between two, or
    /// with a tag or a length changed, they are an error, never a panic.
    #[test]
    fn records_read_back_or_fail_cleanly() {
        use crate::latest::{Hit, IdKey, RequestKey, Stage};
        let key = |id: IdKey| RequestKey { id, request: 0xfeed };
        let quick_key = |id: IdKey| RequestKey { id, request: 0 };
        let mut b = Vec::new();
        let mut ends = Vec::new();
        encode_record(&mut b, HIT, &key(IdKey::uuid(7 << 64 | 9)), 3, (2, -1, i64::MIN));
        b.extend(41u64.to_le_bytes());
        ends.push(b.len());
        // A skipped line: its request digest and timestamps are not known (nor kept).
        encode_record(&mut b, QUICK, &key(IdKey::Other("client-ü".into())), 4, (0, 7, 8));
        ends.push(b.len());
        encode_record(&mut b, 0, &key(IdKey::Other(String::new().into())), u64::MAX, (3, 5, 6));
        ends.push(b.len());
        let read = |bytes: &[u8]| {
            let mut part = RecordPart::default();
            let mut r = bytes;
            while !r.is_empty() {
                decode_record(&mut r, &mut part)?;
            }
            Ok::<_, io::Error>(part)
        };
        let all = read(&b).unwrap();
        let hit = |h: &Hit| (h.pos, h.key.clone(), h.rank);
        let stage = |s: &Stage| (s.pos, s.key.clone(), s.rank, s.quick);
        assert_eq!(
            all.hits.iter().map(hit).collect::<Vec<_>>(),
            [(3, key(IdKey::uuid(7 << 64 | 9)), (2, -1, i64::MIN))]
        );
        assert_eq!(all.indices, [41]);
        assert_eq!(
            all.stages.iter().map(stage).collect::<Vec<_>>(),
            [
                (4, quick_key(IdKey::Other("client-ü".into())), (0, i64::MIN, i64::MIN), true),
                (u64::MAX, key(IdKey::Other(String::new().into())), (3, 5, 6), false)
            ]
        );
        for cut in 0..b.len() {
            assert_eq!(read(&b[..cut]).is_ok(), cut == 0 || ends.contains(&cut), "cut at {cut}");
        }
        let mut bad = b.clone();
        bad[0] = HIT | QUICK;
        assert!(read(&bad).is_err(), "a hit that is a skipped line");
        bad[0] = 0x40;
        assert!(read(&bad).is_err(), "an unknown tag");
        let mut long = b[..ends[0]].to_vec();
        let at = ends[0] + 10; // the second record's auditID length
        long.extend(&b[ends[0]..at]);
        long.extend(u64::MAX.to_le_bytes());
        assert!(read(&long).is_err(), "an auditID longer than the file");
    }

    #[test]
    fn a_damaged_spill_is_an_error_not_a_panic() {
        let mut b = Vec::new();
        encode_row(&mut b, &rows()[0]).unwrap();
        for cut in 0..b.len() {
            assert!(decode_row(&mut &b[..cut]).is_err());
        }
        let mut huge = Vec::new();
        huge.extend(0u64.to_le_bytes());
        huge.push(1);
        huge.extend(u64::MAX.to_le_bytes());
        assert!(decode_row(&mut &huge[..]).is_err());
        // Lists nested past any a row holds: an error, not a stack overflow.
        let mut deep = 1u64.to_le_bytes().to_vec();
        for _ in 0..100_000 {
            deep.push(7);
            deep.extend(1u64.to_le_bytes());
        }
        deep.push(0);
        assert!(decode_row(&mut &deep[..]).is_err());
    }
}
