//! Query errors, warnings and notes on a terminal (stderr), for `kaq query` and the REPL alike.

use std::io::{IsTerminal, Write};

use kaq_syntax::Diagnostic;

use super::report::thousands;

/// Prints warnings to stderr (see [`warning_text`]).
/// What to say when `n` of the requests matched carry an auditID another request also carries
/// (`kaq query` on stderr, the REPL after the answer).
pub(crate) fn reuse_note(n: u64) -> String {
    format!(
        "{} of the requests matched carr{} an auditID that another request also carries (`id_reused:true` finds them all)",
        thousands(n),
        if n == 1 { "ies" } else { "y" }
    )
}

pub(crate) fn print_warnings(src: &str, warnings: &[kaq_query::Warning]) {
    let mut err = std::io::stderr().lock();
    for w in warnings {
        let _ = write!(err, "{}", warning_text(src, w));
    }
}

/// `kaq: warning: …`, then, when it is about a part of the query, that line of the query with
/// carets under the part.
pub(crate) fn warning_text(src: &str, w: &kaq_query::Warning) -> String {
    let mut out = format!("kaq: warning: {}\n", w.text());
    let Some(span) = w.span else { return out };
    let start = span.start.min(src.len());
    if !src.is_char_boundary(start) {
        return out;
    }
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    let end = span.end.clamp(start, line_end);
    let (Some(line), Some(before), Some(under)) =
        (src.get(line_start..line_end), src.get(line_start..start), src.get(start..end))
    else {
        return out;
    };
    let pad = " ".repeat(before.chars().count());
    let carets = "^".repeat(under.chars().count().max(1));
    out.push_str(&format!("  | {line}\n  | {pad}{carets}\n"));
    out
}

/// Renders a query error with a caret under the spot (ariadne), to stderr.
pub(crate) fn render_diagnostic(src: &str, d: &Diagnostic) {
    use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let len = src.len();
    let clamp = |s: kaq_syntax::Span| s.start.min(len)..s.end.min(len).max(s.start.min(len));
    let mut report = Report::build(ReportKind::Error, ("query", clamp(d.span)))
        .with_config(Config::default().with_color(color).with_index_type(IndexType::Byte))
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_label(Label::new(("query", clamp(d.span))).with_message(short_label(d)));
    for (span, text) in &d.labels {
        report = report.with_label(Label::new(("query", clamp(*span))).with_message(text));
    }
    for h in d.hints.iter().filter(|h| !h.starts_with("did you mean")) {
        report = report.with_help(h);
    }
    let mut err = std::io::stderr().lock();
    if report.finish().write(("query", Source::from(src)), &mut err).is_err() {
        let _ = write!(err, "{}", d.render(src));
    }
}

fn short_label(d: &Diagnostic) -> String {
    match d.hints.first() {
        Some(h) if h.starts_with("did you mean") => h.clone(),
        _ => "here".into(),
    }
}
