//! Result tables for a terminal (the REPL's and `kaq query`'s): columns sized to the width, long
//! values cut with `…` (paths in the middle, the rest at the end), numbers right-aligned, and bar
//! charts next to the counts of `count by`, `top`, `rare` and `timeline` (with a sparkline over
//! time above a timeline).

use std::io::{self, Write};

use kaq_query::plan::Step;
use kaq_query::{Column, Plan, Row, Val};
use nu_ansi_term::{Color, Style};

use crate::cli::report::thousands;

/// How a table is drawn.
pub struct Look {
    /// Terminal width in columns; 0 when unknown (then each cell is cut at [`CELL`]).
    pub width: usize,
    pub color: bool,
    /// Bar charts next to counts, a sparkline above timelines.
    pub charts: bool,
    /// Rows drawn before "N more rows".
    pub max_rows: usize,
    /// How to see the rest, after "N more rows".
    pub more: &'static str,
    /// A last line with the number of rows.
    pub footer: bool,
}

/// Widest cell when the terminal width is unknown.
pub const CELL: usize = 60;
/// Narrowest a column is squeezed to (unless its values are narrower).
const MIN_CELL: usize = 8;
const BAR_MIN: usize = 10;
const BAR_MAX: usize = 50;

/// Which chart a result gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    None,
    /// Bars proportional to this (numeric) column.
    Bars(usize),
    /// A timeline: bars on the count, a sparkline above when there is no series column.
    Timeline {
        count: usize,
        series: bool,
    },
}

/// The chart for a plan's result: its last shaping stage is a grouped `count`/`stats`, `top`,
/// `rare` or `timeline`, possibly followed by `sort`, `head`, `where` or `dedup`.
pub fn chart_for(plan: &Plan) -> Chart {
    let Some((step, cols)) = plan
        .steps
        .iter()
        .rev()
        .find(|(s, _)| !matches!(s, Step::Sort(_) | Step::Head(_) | Step::Where(_) | Step::Dedup(_)))
    else {
        return Chart::None;
    };
    let count = cols.iter().position(|c| c.name == "count");
    match (step, count) {
        (Step::Timeline { by, .. }, Some(c)) => Chart::Timeline { count: c, series: by.is_some() },
        (Step::Top { .. }, Some(c)) => Chart::Bars(c),
        (Step::Aggregate { by, aggs }, _) if !by.is_empty() => match count {
            Some(c) => Chart::Bars(c),
            None if aggs.len() == 1 => Chart::Bars(cols.len() - 1),
            None => Chart::None,
        },
        _ => Chart::None,
    }
}

fn number(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        Val::Dur(d) => Some(*d as f64),
        _ => None,
    }
}

/// A value as a table shows it: counts with thousands separators, times to the millisecond in
/// UTC without the `T` and `Z` (JSON and CSV keep RFC 3339), the rest as `Val::to_display`, with
/// control characters and bidi overrides shown as escapes (`kaq_schema::visible`): a value from a
/// log must not drive the terminal.
pub fn cell(v: &Val<'_>) -> String {
    match v {
        Val::Int(i) => {
            format!("{}{}", if *i < 0 { "-" } else { "" }, thousands(i.unsigned_abs()))
        }
        Val::Time(us) => match chrono::DateTime::from_timestamp_micros(*us) {
            Some(t) if us % 1_000_000 == 0 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            None => v.to_display(),
        },
        v => kaq_schema::visible::visible_owned(v.to_display()),
    }
}

/// Cuts `s` to `w` characters with `…`: in the middle for paths and URLs (both ends tell), at the
/// end otherwise.
pub fn cut(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        return s.to_string();
    }
    if w <= 1 {
        return "…".repeat(w);
    }
    let path_like = s.starts_with('/') || s.contains("://");
    if path_like && w >= 12 {
        let head = (w - 1) / 2;
        let tail = w - 1 - head;
        let mut t: String = s.chars().take(head).collect();
        t.push('…');
        t.extend(s.chars().skip(n - tail));
        t
    } else {
        let mut t: String = s.chars().take(w - 1).collect();
        t.push('…');
        t
    }
}

/// A bar of `frac` (0..=1) of `width` cells, in eighths.
pub fn bar(frac: f64, width: usize) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (frac.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    s.push_str(EIGHTHS[eighths % 8]);
    if s.is_empty() && frac > 0.0 {
        s.push('▏'); // never hide a non-zero count
    }
    s
}

/// A sparkline of `values` in at most `width` characters (buckets merged by summing).
pub fn sparkline(values: &[f64], width: usize) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let per = values.len().div_ceil(width);
    let merged: Vec<f64> = values.chunks(per).map(|c| c.iter().sum()).collect();
    let max = merged.iter().cloned().fold(0.0, f64::max);
    merged.iter().map(|v| if max <= 0.0 { LEVELS[0] } else { LEVELS[((v / max) * 7.0).round() as usize] }).collect()
}

/// Writes `rows` (the cells `shown` of each) as a table.
pub fn table(
    out: &mut dyn Write,
    columns: &[Column],
    rows: &[Row],
    shown: &[usize],
    chart: Chart,
    look: &Look,
) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "(no rows)");
    }
    let paint = |style: Style, s: &str| if look.color { style.paint(s).to_string() } else { s.to_string() };
    let body_rows = &rows[..rows.len().min(look.max_rows)];
    let mut chart_col = match chart {
        Chart::Bars(c) | Chart::Timeline { count: c, .. } if look.charts => Some(c),
        _ => None,
    };
    // Times are never cut: other columns narrow first, then bars go, then columns from the right.
    let head_all: Vec<String> = shown.iter().map(|&c| kaq_schema::visible(&columns[c].name).into_owned()).collect();
    let body_all: Vec<Vec<String>> =
        body_rows.iter().map(|r| shown.iter().map(|&c| cell(&r.vals[c])).collect()).collect();
    let is_time: Vec<bool> =
        shown.iter().map(|&c| body_rows.iter().any(|r| matches!(r.vals[c], Val::Time(_)))).collect();
    let (natural, _) = natural_widths(&head_all, &body_all);
    let floor: Vec<usize> = natural
        .iter()
        .zip(&head_all)
        .zip(&is_time)
        .map(|((n, h), time)| if *time { *n } else { (*n).min(MIN_CELL.max(h.chars().count().min(12))) })
        .collect();
    let mut keep: Vec<usize> = (0..shown.len()).collect();
    if look.width > 0 {
        loop {
            let bars = chart_col.map_or(0, |_| BAR_MIN + 2);
            let need = keep.iter().map(|&i| floor[i]).sum::<usize>() + 2 * keep.len().saturating_sub(1) + bars;
            if need <= look.width {
                break;
            }
            if chart_col.is_some() {
                chart_col = None;
                continue;
            }
            let droppable = keep.iter().rposition(|&i| !is_time[i]);
            match droppable {
                Some(p) if keep.len() > 1 => {
                    keep.remove(p);
                }
                _ => break, // only times left: drawn whole, wider than the terminal
            }
        }
    }
    let dropped: Vec<&str> = (0..shown.len()).filter(|i| !keep.contains(i)).map(|i| head_all[i].as_str()).collect();
    let shown: Vec<usize> = keep.iter().map(|&i| shown[i]).collect();
    let head: Vec<String> = keep.iter().map(|&i| head_all[i].clone()).collect();
    let mut body: Vec<Vec<String>> = body_all.iter().map(|r| keep.iter().map(|&i| r[i].clone()).collect()).collect();
    let floor: Vec<usize> = keep.iter().map(|&i| floor[i]).collect();
    let right: Vec<bool> = shown.iter().map(|&c| body_rows.iter().any(|r| number(&r.vals[c]).is_some())).collect();
    let (_, mut width) = natural_widths(&head, &body);
    let gaps = 2 * shown.len().saturating_sub(1);
    let bar_width = chart_col.map(|_| match look.width {
        0 => 30,
        w => w.saturating_sub(width.iter().sum::<usize>() + gaps + 2).clamp(BAR_MIN, BAR_MAX),
    });
    if look.width == 0 {
        let time_cols: Vec<bool> = keep.iter().map(|&i| is_time[i]).collect();
        width.iter_mut().zip(time_cols).filter(|(_, t)| !t).for_each(|(w, _)| *w = (*w).min(CELL));
    } else {
        let budget = look.width.saturating_sub(gaps + bar_width.map_or(0, |b| b + 2));
        squeeze(&mut width, &floor, budget);
    }
    for r in &mut body {
        for (cell, w) in r.iter_mut().zip(&width) {
            *cell = cut(cell, *w);
        }
    }
    let line = |cells: &[String], style: Style| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .zip(&right)
            .map(|((c, w), r)| {
                let pad = " ".repeat(w - c.chars().count().min(*w));
                if *r { format!("{pad}{c}") } else { format!("{c}{pad}") }
            })
            .collect();
        paint(style, padded.join("  ").trim_end())
    };
    if let (Chart::Timeline { count, series: false }, true) = (chart, look.charts) {
        let values: Vec<f64> = rows.iter().map(|r| number(&r.vals[count]).unwrap_or(0.0)).collect();
        let max = values.iter().cloned().fold(0.0, f64::max);
        let w = if look.width == 0 { 60 } else { look.width.saturating_sub(16).min(120) };
        if values.len() > 1 {
            let spark = paint(Color::Cyan.normal(), &sparkline(&values, w));
            writeln!(out, "{spark}  max {}", thousands(max as u64))?;
        }
    }
    let head: Vec<String> = head.iter().zip(&width).map(|(h, w)| cut(h, *w)).collect();
    writeln!(out, "{}", line(&head, Style::new().bold()))?;
    writeln!(
        out,
        "{}",
        paint(Color::DarkGray.normal(), &width.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().join("  "))
    )?;
    let max = chart_col.map_or(0.0, |c| rows.iter().filter_map(|r| number(&r.vals[c])).fold(0.0, f64::max));
    for (r, cells) in body_rows.iter().zip(&body) {
        let mut text = line(cells, Style::new());
        if let (Some(c), Some(bw)) = (chart_col, bar_width)
            && let Some(v) = number(&r.vals[c])
        {
            // Pad to the full width first so the bars line up.
            let used: usize = width.iter().sum::<usize>() + gaps;
            let visible = strip_len(&text);
            text.push_str(&" ".repeat(used.saturating_sub(visible) + 2));
            let frac = if max > 0.0 { v / max } else { 0.0 };
            text.push_str(&paint(Color::Cyan.normal(), &bar(frac, bw)));
        }
        writeln!(out, "{text}")?;
    }
    if !dropped.is_empty() {
        let note = format!(
            "(left out to fit {} columns: {}; choose columns with | table, or --format json)",
            look.width,
            dropped.join(", ")
        );
        writeln!(out, "{}", paint(Color::DarkGray.normal(), &note))?;
    }
    if rows.len() > body_rows.len() {
        let more = format!("… {} more rows ({})", thousands((rows.len() - body_rows.len()) as u64), look.more);
        writeln!(out, "{}", paint(Color::DarkGray.normal(), &more))?;
    } else if look.footer {
        let n = format!("({} row{})", thousands(rows.len() as u64), if rows.len() == 1 { "" } else { "s" });
        writeln!(out, "{}", paint(Color::DarkGray.normal(), &n))?;
    }
    Ok(())
}

/// Visible characters of `s` (ANSI colour sequences aside).
fn strip_len(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in s.chars() {
        match c {
            '\x1b' => esc = true,
            'm' if esc => esc = false,
            _ if esc => {}
            _ => n += 1,
        }
    }
    n
}

/// The widths of the columns' longest values (and headers), and a copy to squeeze.
fn natural_widths(head: &[String], body: &[Vec<String>]) -> (Vec<usize>, Vec<usize>) {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in body {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    (w.clone(), w)
}

/// Narrows the widest columns until the row fits `budget`, none below its floor (for a time, its
/// whole width; else the narrower of its natural width and [`MIN_CELL`], or its header up to 12).
fn squeeze(width: &mut [usize], floor: &[usize], budget: usize) {
    while width.iter().sum::<usize>() > budget {
        let Some((i, _)) = width.iter().enumerate().filter(|(i, w)| **w > floor[*i]).max_by_key(|(_, w)| **w) else {
            return;
        };
        width[i] -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(cell(&Val::Int(200)), "200");
        assert_eq!(cell(&Val::Int(-3579)), "-3,579");
        assert_eq!(cell(&Val::Int(1234567)), "1,234,567");
        assert_eq!(cell(&Val::Time(1_795_150_800_000_000)), "2026-11-20 05:00:00");
        assert_eq!(cell(&Val::Time(1_795_150_800_250_000)), "2026-11-20 05:00:00.250");
        assert_eq!(cell(&Val::Str("\x1b]0;pwned\x07".into())), r"\x1b]0;pwned\x07");
        let list = Val::List(vec![Val::Str("a\u{202e}b".into()), Val::Str("c\n".into())]);
        assert_eq!(cell(&list), r"a\u202eb, c\n");
    }

    #[test]
    fn cuts() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("/api/v1/namespaces/prod/secrets/db-password", 21), "/api/v1/na…b-password");
        assert_eq!(cut("kubectl/v1.31.0 (linux/amd64) kubernetes/abc", 12), "kubectl/v1.…");
    }

    #[test]
    fn bars_and_sparklines() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 3), "█▌");
        assert_eq!(bar(0.001, 10), "▏");
        assert_eq!(bar(0.0, 10), "");
        assert_eq!(sparkline(&[0.0, 1.0, 7.0], 10), "▁▂█");
        assert_eq!(sparkline(&[1.0, 1.0, 2.0, 2.0], 2).chars().count(), 2);
    }

    #[test]
    fn squeezes_the_widest() {
        let mut w = vec![20, 60, 5];
        squeeze(&mut w, &[20, 8, 4], 50);
        assert_eq!(w, vec![20, 25, 5]);
        // A floor is never crossed: the row stays wider than the budget.
        let mut w = vec![23, 60];
        squeeze(&mut w, &[23, 8], 20);
        assert_eq!(w, vec![23, 8]);
    }
}
