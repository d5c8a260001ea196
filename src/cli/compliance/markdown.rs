//! The report as Markdown (GitHub-flavoured tables): the same sections as the HTML page, charts
//! drawn with block characters in code blocks. Every text goes through [`escape::md`] (or
//! [`escape::code_block`] inside code blocks).

use std::fmt::Write;

use super::escape::{code_block, md};
use super::model::{Cell, Chart, Grid, Report, Section, thousands};

pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(32 << 10);
    let _ = writeln!(o, "# {}\n", md(&r.title));
    for (k, v) in &r.meta {
        let _ = writeln!(o, "- **{}**: {}", md(k), md(v));
    }
    o.push_str("\n## Summary\n\n");
    for n in &r.notes {
        let _ = writeln!(o, "> {}\n", md(n));
    }
    if let Some(c) = &r.summary_chart {
        chart(&mut o, c);
    }
    for g in &r.summary {
        grid(&mut o, g);
    }
    for s in &r.sections {
        section(&mut o, s);
    }
    o.push_str(
        "## Queries\n\nEvery number above is a cell of one of these queries' answers, run by kaq's query engine over \
         the same events. Each command re-runs one with `kaq query`.\n\n",
    );
    for (i, q) in r.queries.iter().enumerate() {
        let _ = writeln!(
            o,
            "<a id=\"q{n}\"></a>**Q{n}**: {}\n\n```sh\n{}\n```\n",
            md(&q.purpose),
            code_block(&q.command),
            n = i + 1
        );
    }
    let _ = writeln!(o, "Made by kaq {}.", env!("CARGO_PKG_VERSION"));
    o
}

fn section(o: &mut String, s: &Section) {
    let _ = writeln!(o, "## {}\n", md(&s.title));
    for p in &s.paras {
        let _ = writeln!(o, "{}\n", md(p));
    }
    if let Some(c) = &s.chart {
        chart(o, c);
    }
    for g in &s.grids {
        grid(o, g);
    }
}

fn grid(o: &mut String, g: &Grid) {
    let _ = writeln!(o, "### {}\n", md(&g.title));
    if g.rows.is_empty() && !g.empty.is_empty() {
        let _ = writeln!(o, "{}\n", md(&g.empty));
    } else {
        let heads: Vec<String> = g.header.iter().map(|h| md(h)).collect();
        let _ = writeln!(o, "| {} |", heads.join(" | "));
        let aligns: Vec<&str> = (0..g.header.len())
            .map(|i| {
                if g.rows.first().is_some_and(|r| matches!(r.get(i), Some(Cell::Num(..) | Cell::Pct(_)))) {
                    "---:"
                } else {
                    "---"
                }
            })
            .collect();
        let _ = writeln!(o, "|{}|", aligns.join("|"));
        for row in &g.rows {
            let cells: Vec<String> = row.iter().map(cell).collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
        o.push('\n');
    }
    if let Some(n) = &g.note {
        let _ = writeln!(o, "{}\n", md(n));
    }
    if !g.queries.is_empty() {
        let qs: Vec<String> = g.queries.iter().map(|q| format!("[Q{q}](#q{q})")).collect();
        let _ = writeln!(o, "*From {}.*\n", qs.join(", "));
    }
}

fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(t) | Cell::Mono(t) => md(t),
        Cell::Num(n, _) => thousands(*n),
        Cell::Pct(p) => format!("{p:.2}%"),
        Cell::Status(s) => format!("**{}**", s.label()),
    }
}

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn chart(o: &mut String, c: &Chart) {
    match c {
        Chart::Timeline { buckets, interval_us, interval, lo, hi, q, .. } => {
            let max = buckets.iter().map(|b| b.1).max().unwrap_or(0);
            let n = ((hi - lo) / interval_us.max(&1)).clamp(1, 200) as usize;
            let mut line = vec![' '; n];
            for &(t, c) in buckets {
                let i = ((t - lo) / interval_us.max(&1)) as usize;
                if c > 0 && i < n {
                    line[i] = BLOCKS[((c * 7) / max.max(1)) as usize];
                }
            }
            let _ = writeln!(
                o,
                "```text\n{} {} {}\n```\n\nRequests per {} (highest: {}). *From [Q{q}](#q{q}).*\n",
                super::gather::when(*lo),
                line.into_iter().collect::<String>(),
                super::gather::when(*hi),
                code_block(interval),
                thousands(max)
            );
        }
        Chart::Bars { items, max, q, .. } => {
            if items.is_empty() {
                return;
            }
            let top = if *max > 0 { *max } else { items.iter().map(|i| i.1).max().unwrap_or(1).max(1) };
            let width = items.iter().map(|i| i.0.chars().count()).max().unwrap_or(0).min(48);
            o.push_str("```text\n");
            for (label, n, _) in items {
                let label: String = label.chars().take(48).collect();
                let bar = "█".repeat(((*n as f64 / top as f64) * 40.0).round() as usize);
                let pad = width.saturating_sub(label.chars().count());
                let _ = writeln!(o, "{}{} {bar} {}", code_block(&label), " ".repeat(pad), thousands(*n));
            }
            o.push_str("```\n\n");
            if !q.is_empty() {
                let qs: Vec<String> = q.iter().map(|q| format!("[Q{q}](#q{q})")).collect();
                let _ = writeln!(o, "*From {}.*\n", qs.join(", "));
            }
        }
    }
}
