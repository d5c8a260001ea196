//! Matching rows held for the latest-stage rule, in bounded memory: while a scan runs, a row may
//! still be superseded by a later stage of its request, so it is kept until the input is read.
//! A `RowSpill` keeps rows in memory up to a budget, then writes them (and every later one) to
//! an unnamed temporary file, in the order given; `RowSpill::rows` reads them back in that
//! order. Only what decides the latest stage (position, identity, stage) stays in memory.

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
    /// whatever the caller does with each (writing it out).
    pub(crate) fn rows(self) -> io::Result<impl Iterator<Item = io::Result<Row>>> {
        let from_file = match self.file {
            None => None,
            Some(f) => {
                let mut file = f.into_inner().map_err(|e| spill_error(e.into_error()))?;
                use std::io::Seek;
                file.seek(io::SeekFrom::Start(0)).map_err(spill_error)?;
                let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Row>>(4096);
                let left = self.spilled;
                std::thread::Builder::new()
                    .name("kaq-spill".into())
                    .spawn(move || {
                        let mut r = BufReader::with_capacity(1 << 20, file);
                        for _ in 0..left {
                            let row = decode_row(&mut r).map_err(spill_error);
                            let failed = row.is_err();
                            // The receiver gone (the caller stopped at an error): stop too.
                            if tx.send(row).is_err() || failed {
                                return;
                            }
                        }
                    })
                    .map_err(spill_error)?;
                Some(rx.into_iter())
            }
        };
        Ok(self.held.into_iter().map(Ok).chain(from_file.into_iter().flatten()))
    }
}

fn spill_error(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("holding the matching rows in a temporary file in {} (TMPDIR): {e}", std::env::temp_dir().display()),
    )
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
    io::Error::new(io::ErrorKind::InvalidData, format!("the temporary file of rows was changed: {what}"))
}

fn decode_str(r: &mut impl Read) -> io::Result<String> {
    let n = read_u64(r)?;
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

fn decode_val(r: &mut impl Read) -> io::Result<Val<'static>> {
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
        7 => {
            let n = read_u64(r)?;
            Val::List((0..n).map(|_| decode_val(r)).collect::<io::Result<Vec<_>>>()?)
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
    }
}
