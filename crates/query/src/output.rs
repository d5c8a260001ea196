//! Result rows as JSON lines and CSV (docs/query.md, "Output"): whole events print their JSON; other rows are
//! objects keyed by column name, durations in seconds, times in RFC 3339. CSV text cells that a
//! spreadsheet would run as formulas get a `'` in front unless asked not to ([`CsvOptions`]).

use std::borrow::Cow;
use std::io::{self, Write};

use kaq_schema::visible::{csv_formula_safe, visible, visible_json};

use crate::Val;
use crate::pipeline::Row;
use crate::plan::Column;

/// One row as a JSON line (without the newline).
pub fn json_line(row: &Row, columns: &[Column]) -> String {
    if let Some(raw) = &row.raw {
        return raw.to_string();
    }
    // Keys in column order (a serde_json Map would sort them).
    let mut s = String::from("{");
    for (i, (c, v)) in columns.iter().zip(&row.vals).enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::Value::String(c.name.clone()).to_string());
        s.push(':');
        s.push_str(&v.to_json().to_string());
    }
    s.push('}');
    s
}

/// Writes rows as JSON lines. DEL, C1 controls and bidi overrides in strings are written as
/// `\uXXXX` escapes (the same JSON), so that the lines are safe to print on a terminal
/// ([`kaq_schema::visible::visible_json`]; serde_json escapes the other controls already).
pub fn write_json(out: &mut dyn Write, rows: &[Row], columns: &[Column]) -> io::Result<()> {
    rows.iter().try_for_each(|r| write_json_row(out, r, columns))
}

/// Writes one row as [`write_json`] does (for rows handed on one at a time).
pub fn write_json_row(out: &mut dyn Write, row: &Row, columns: &[Column]) -> io::Result<()> {
    out.write_all(visible_json(&json_line(row, columns)).as_bytes())?;
    out.write_all(b"\n")
}

/// How CSV cells are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// Leave text that a spreadsheet would run as a formula as it is. By default a text cell
    /// starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'` in front, unless it
    /// is a plain number (OWASP's advice; [`csv_formula_safe`]).
    pub raw: bool,
    /// Show control characters and bidi overrides as escapes ([`visible`]): for CSV printed on a
    /// terminal.
    pub visible: bool,
}

/// Quotes a CSV cell when needed (RFC 4180).
pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// One value as a CSV cell: text guarded against formulas (numbers, times, booleans and
/// durations are never text a spreadsheet runs), made visible when asked, then quoted.
pub fn csv_value(v: &Val<'_>, opts: CsvOptions) -> String {
    let text = v.to_text();
    let guarded = match v {
        Val::Str(_) | Val::List(_) if !opts.raw => csv_formula_safe(&text),
        _ => Cow::Borrowed(text.as_str()),
    };
    if opts.visible { csv_cell(&visible(&guarded)) } else { csv_cell(&guarded) }
}

/// The cells `cols` of a row as a CSV line (without the newline).
pub fn csv_line(row: &Row, cols: &[usize], opts: CsvOptions) -> String {
    cols.iter().map(|&c| csv_value(&row.vals[c], opts)).collect::<Vec<_>>().join(",")
}

/// Writes a header and the rows as CSV; `cols` picks the cells shown.
pub fn write_csv(
    out: &mut dyn Write,
    rows: &[Row],
    columns: &[Column],
    cols: &[usize],
    opts: CsvOptions,
) -> io::Result<()> {
    write_csv_header(out, columns, cols, opts)?;
    for r in rows {
        writeln!(out, "{}", csv_line(r, cols, opts))?;
    }
    Ok(())
}

/// The header line of [`write_csv`] (for rows handed on one at a time, each written with
/// [`csv_line`]).
pub fn write_csv_header(out: &mut dyn Write, columns: &[Column], cols: &[usize], opts: CsvOptions) -> io::Result<()> {
    let header: Vec<String> =
        cols.iter().map(|&c| csv_value(&Val::Str(columns[c].name.as_str().into()), opts)).collect();
    writeln!(out, "{}", header.join(","))
}
