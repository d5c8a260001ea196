//! Result rows as JSON lines and CSV (PRODUCT.md §5): whole events print their JSON; other rows are
//! objects keyed by column name, durations in seconds, times in RFC 3339.

use std::io::{self, Write};

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

/// Writes rows as JSON lines.
pub fn write_json(out: &mut dyn Write, rows: &[Row], columns: &[Column]) -> io::Result<()> {
    for r in rows {
        out.write_all(json_line(r, columns).as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Quotes a CSV cell when needed (RFC 4180).
pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Writes a header and the rows as CSV; `cols` picks the cells shown.
pub fn write_csv(out: &mut dyn Write, rows: &[Row], columns: &[Column], cols: &[usize]) -> io::Result<()> {
    let header: Vec<String> = cols.iter().map(|&c| csv_cell(&columns[c].name)).collect();
    writeln!(out, "{}", header.join(","))?;
    for r in rows {
        let cells: Vec<String> = cols.iter().map(|&c| csv_cell(&r.vals[c].to_text())).collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}
