//! The report as one self-contained HTML page: inline CSS and SVG charts, no script, no
//! network (a Content-Security-Policy forbids both, should anything slip through). Every text
//! goes through [`escape::html`].

use std::fmt::Write;

use super::escape::html as esc;
use super::model::{Cell, Chart, Grid, Report, Section, Tone, thousands};

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d232a;margin:0;background:#f6f7f9}
main{max-width:1320px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:26px;margin:0 0 8px}h2{font-size:20px;border-bottom:2px solid #d8dde3;padding-bottom:4px;margin-top:36px}
h3{font-size:15px;margin:22px 0 6px}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0 16px}dl.meta dt{color:#5a6572}dl.meta dd{margin:0}
nav ol{columns:2;margin:0 0 8px}
table{border-collapse:collapse;width:100%;margin:4px 0;font-size:12.5px}
th,td{border:1px solid #d8dde3;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:break-word}
.tw{overflow-x:auto}
th{background:#eef1f4;overflow-wrap:normal}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
p.src{color:#5a6572;font-size:12px;margin:2px 0 0}p.note{color:#5a6572;font-size:12px;margin:2px 0}
.notes{background:#fff6e0;border-left:4px solid #f2a541;padding:6px 12px}
.st{font-weight:600;padding:1px 6px;border-radius:3px;white-space:nowrap}
.st.pass{background:#dff3dc;color:#1e6b17}.st.fail{background:#fbdcdc;color:#a01515}
.st.partial{background:#fff0cf;color:#8a5a00}.st.unknown{background:#e8eaee;color:#3b4450}.st.info{background:#e0ecfa;color:#1b4f8a}
svg{display:block;margin:6px 0;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#3b4450}
td.nw{white-space:nowrap}td.q code{white-space:pre-wrap}td.qn{white-space:nowrap}
@media print{body{background:#fff}main{padding:0}h2{break-after:avoid}table{break-inside:auto}}
";

pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 << 10);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"kaq {}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n<dl class=\"meta\">\n",
        env!("CARGO_PKG_VERSION"),
        esc(&r.title),
        esc(&r.title)
    );
    for (k, v) in &r.meta {
        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", esc(k), prose(v));
    }
    o.push_str("</dl>\n<nav><ol>\n<li><a href=\"#summary\">Summary</a></li>\n");
    for s in &r.sections {
        let _ = writeln!(o, "<li><a href=\"#{}\">{}</a></li>", esc(&s.id), esc(&s.title));
    }
    o.push_str("<li><a href=\"#queries\">Queries</a></li>\n</ol></nav>\n<section id=\"summary\">\n<h2>Summary</h2>\n");
    if !r.notes.is_empty() {
        o.push_str("<div class=\"notes\">\n");
        for n in &r.notes {
            let _ = writeln!(o, "<p>{}</p>", prose(n));
        }
        o.push_str("</div>\n");
    }
    if let Some(c) = &r.summary_chart {
        chart(&mut o, c);
    }
    for g in &r.summary {
        grid(&mut o, g);
    }
    o.push_str("</section>\n");
    for s in &r.sections {
        section(&mut o, s);
    }
    o.push_str(
        "<section id=\"queries\">\n<h2>Queries</h2>\n<p>Every number above is a cell of one of these queries' answers, \
         run by kaq's query engine over the same events. Each command re-runs one with <code>kaq query</code> \
         (add <code>--format json</code> or <code>--format csv</code> for machine-readable output).</p>\n\
         <table id=\"queries-list\"><thead><tr><th>#</th><th>What it answers</th><th>Command</th></tr></thead><tbody>\n",
    );
    for (i, q) in r.queries.iter().enumerate() {
        let _ = writeln!(
            o,
            "<tr id=\"q{n}\"><td class=\"qn\">Q{n}</td><td>{}</td><td class=\"q\"><code>{}</code></td></tr>",
            esc(&q.purpose),
            esc(&q.command),
            n = i + 1
        );
    }
    let _ = write!(
        o,
        "</tbody></table>\n</section>\n<p class=\"note\">Made by kaq {}.</p>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// Prose (the report's own sentences, which may quote values): escaped, then each `…` pair of
/// backticks made a `<code>` element (the text inside is escaped already).
fn prose(s: &str) -> String {
    let e = link_queries(&esc(s));
    let parts: Vec<&str> = e.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return e; // an odd number of backticks: leave them as they are
    }
    let mut out = String::with_capacity(e.len() + 16);
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(p);
            out.push_str("</code>");
        } else {
            out.push_str(p);
        }
    }
    out
}

/// `Q12` (a query's number, as a word) as a link to that query.
fn link_queries(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let word_end = b.get(i + 1 + digits).is_none_or(|c| !c.is_ascii_alphanumeric());
        if b[i] == b'Q' && word_start && digits > 0 && word_end {
            let n = &s[i + 1..i + 1 + digits];
            out.push_str(&format!("<a href=\"#q{n}\">Q{n}</a>"));
            i += 1 + digits;
        } else {
            let ch = s[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn section(o: &mut String, s: &Section) {
    let _ = writeln!(o, "<section id=\"{}\">\n<h2>{}</h2>", esc(&s.id), esc(&s.title));
    for p in &s.paras {
        let _ = writeln!(o, "<p>{}</p>", prose(p));
    }
    if let Some(c) = &s.chart {
        chart(o, c);
    }
    for g in &s.grids {
        grid(o, g);
    }
    o.push_str("</section>\n");
}

fn grid(o: &mut String, g: &Grid) {
    let _ = writeln!(o, "<h3>{}</h3>", esc(&g.title));
    if g.rows.is_empty() && !g.empty.is_empty() {
        let _ = writeln!(o, "<p id=\"{}\">{}</p>", esc(&g.id), esc(&g.empty));
    } else {
        let _ = write!(o, "<div class=\"tw\"><table id=\"{}\"><thead><tr>", esc(&g.id));
        for h in &g.header {
            let _ = write!(o, "<th>{}</th>", esc(h));
        }
        o.push_str("</tr></thead><tbody>\n");
        for row in &g.rows {
            o.push_str("<tr>");
            for c in row {
                cell(o, c);
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody></table></div>\n");
    }
    if let Some(n) = &g.note {
        let _ = writeln!(o, "<p class=\"note\">{}</p>", prose(n));
    }
    sources(o, &g.queries);
}

fn sources(o: &mut String, qs: &[usize]) {
    if qs.is_empty() {
        return;
    }
    let links: Vec<String> = qs.iter().map(|q| format!("<a href=\"#q{q}\">Q{q}</a>")).collect();
    let _ = writeln!(o, "<p class=\"src\">From {}.</p>", links.join(", "));
}

fn cell(o: &mut String, c: &Cell) {
    match c {
        Cell::Text(t) => {
            // Names such as system:serviceaccount:ns:name may break after their colons.
            let _ = write!(o, "<td>{}</td>", esc(&cut(t)).replace(':', ":<wbr>"));
        }
        Cell::Mono(t) => {
            // A time or an auditID stays on one line.
            let nw = if t.len() <= 40 && !t.contains(char::is_whitespace) { " nw" } else { "" };
            let _ = write!(o, "<td class=\"mono{nw}\">{}</td>", esc(&cut(t)));
        }
        Cell::Num(n, Some(id)) => {
            let _ = write!(o, "<td class=\"n\" id=\"{}\">{}</td>", esc(id), thousands(*n));
        }
        Cell::Num(n, None) => {
            let _ = write!(o, "<td class=\"n\">{}</td>", thousands(*n));
        }
        Cell::Pct(p) => {
            let _ = write!(o, "<td class=\"n\">{p:.2}%</td>");
        }
        Cell::Status(s) => {
            let _ = write!(o, "<td><span class=\"st {}\">{}</span></td>", s.class(), esc(s.label()));
        }
    }
}

/// Characters of a cell shown at most: a longer value (a hostile one, most likely) is cut with `…`
/// rather than stretching the table; the query gives it whole.
const CELL_MAX: usize = 200;

fn cut(t: &str) -> std::borrow::Cow<'_, str> {
    match t.char_indices().nth(CELL_MAX) {
        Some((i, _)) => format!("{}…", &t[..i]).into(),
        None => t.into(),
    }
}

fn color(t: Tone) -> &'static str {
    match t {
        Tone::Plain => "#4c78a8",
        Tone::Good => "#54a24b",
        Tone::Bad => "#e45756",
        Tone::Warn => "#f2a541",
    }
}

/// A time on an axis: `2026-11-20 05:00Z`.
fn short(t: i64) -> String {
    let s = super::gather::when(t);
    format!("{} {}Z", &s[..10.min(s.len())], s.get(11..16).unwrap_or(""))
}

fn chart(o: &mut String, c: &Chart) {
    match c {
        Chart::Timeline { buckets, interval_us, interval, lo, hi, q, what } => {
            let (w, h, ml, mr, mt, mb) = (760.0, 170.0, 56.0, 12.0, 10.0, 30.0);
            let (pw, ph) = (w - ml - mr, h - mt - mb);
            let max = buckets.iter().map(|b| b.1).max().unwrap_or(0);
            let span = (hi - lo).max(1) as f64;
            let _ = writeln!(
                o,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\n<title>{}</title>",
                esc(what),
                esc(what)
            );
            let _ = writeln!(
                o,
                "<line x1=\"{ml}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#8a94a0\"/><line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{y}\" stroke=\"#8a94a0\"/>",
                y = mt + ph,
                x2 = ml + pw
            );
            let _ = writeln!(
                o,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
                ml - 6.0,
                mt + 9.0,
                thousands(max),
                ml - 6.0,
                mt + ph
            );
            if max == 0 {
                let _ = writeln!(
                    o,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No request in the period</text>",
                    ml + pw / 2.0,
                    mt + ph / 2.0
                );
            }
            let bw = ((*interval_us as f64) / span * pw - 1.0).max(1.0);
            for &(t, n) in buckets.iter().filter(|b| b.1 > 0) {
                let x = ml + (t - lo) as f64 / span * pw;
                let bh = (n as f64 / max.max(1) as f64 * ph).max(1.0);
                let _ = writeln!(
                    o,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"#4c78a8\"><title>{} (+{}): {}</title></rect>",
                    mt + ph - bh,
                    esc(&short(t)),
                    esc(interval),
                    thousands(n)
                );
            }
            for (x, anchor, t) in
                [(ml, "start", *lo), (ml + pw / 2.0, "middle", lo + (hi - lo) / 2), (ml + pw, "end", *hi)]
            {
                let _ = writeln!(
                    o,
                    "<text x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                    h - 10.0,
                    esc(&short(t))
                );
            }
            o.push_str("</svg>\n");
            let _ = writeln!(
                o,
                "<p class=\"src\">Requests per {} (hover a bar for its count). From <a href=\"#q{q}\">Q{q}</a>.</p>",
                esc(interval)
            );
        }
        Chart::Bars { items, max, q, what } => {
            if items.is_empty() {
                return;
            }
            let top = if *max > 0 { *max } else { items.iter().map(|i| i.1).max().unwrap_or(1).max(1) };
            let (lw, bwid, rh) = (300.0, 360.0, 22.0);
            let w = lw + bwid + 90.0;
            let h = rh * items.len() as f64 + 8.0;
            let _ = writeln!(
                o,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\n<title>{}</title>",
                esc(what),
                esc(what)
            );
            for (i, (label, n, tone)) in items.iter().enumerate() {
                let y = 4.0 + i as f64 * rh;
                // Any count shows: a bar of at least 2 px.
                let len = if *n > 0 { (*n as f64 / top as f64 * bwid).clamp(2.0, bwid) } else { 0.0 };
                let shown: String = if label.chars().count() > 46 {
                    label.chars().take(45).chain(std::iter::once('…')).collect()
                } else {
                    label.clone()
                };
                let _ = writeln!(
                    o,
                    "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{lw}\" y=\"{:.1}\" width=\"{bwid}\" height=\"14\" fill=\"#eef1f4\"/><rect x=\"{lw}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"14\" fill=\"{}\"><title>{}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    lw - 8.0,
                    y + 11.0,
                    esc(&shown),
                    y,
                    y,
                    color(*tone),
                    esc(label),
                    thousands(*n),
                    lw + bwid + 6.0,
                    y + 11.0,
                    thousands(*n)
                );
            }
            o.push_str("</svg>\n");
            sources(o, q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prose;

    #[test]
    fn prose_makes_code_of_backticks_and_nothing_else() {
        assert_eq!(prose("run `kaq query` on <b>"), "run <code>kaq query</code> on &lt;b&gt;");
        assert_eq!(prose("a `<i>` b `c"), "a `&lt;i&gt;` b `c");
        assert_eq!(prose("see Q12, not SQ1 or Q1x"), "see <a href=\"#q12\">Q12</a>, not SQ1 or Q1x");
    }
}
