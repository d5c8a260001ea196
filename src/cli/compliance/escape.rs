//! Log text made inert for the page: every value from the log (and from an alerts file or a
//! file name) goes through these before it is written. Control characters and bidi overrides
//! are first shown as escapes (`kaq_schema::visible`: `\x1b`, `\u202e`), as everywhere in kaq.

use kaq_schema::visible;

/// Text for HTML element content and double-quoted attribute values.
pub fn html(s: &str) -> String {
    let v = visible(s);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for Markdown inline content (paragraphs, list items, table cells): characters that
/// would make markup (emphasis, links, code, tables, raw HTML, entities) are backslash-escaped
/// or written as entities, so a renderer shows them as they are.
pub fn md(s: &str) -> String {
    let v = visible(s);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '|' | '~' | '!' | '#' | '{' | '}' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for a fenced code block (` ``` `): control characters and line breaks are escapes, so a
/// value cannot end the block (a fence must begin a line).
pub fn code_block(s: &str) -> String {
    visible(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_leaves_no_markup() {
        let s = html("<script>alert('x')</script> & \"q\" \x1b[31mred\u{202e}");
        assert_eq!(s, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot; \\x1b[31mred\\u202e");
    }

    #[test]
    fn markdown_leaves_no_markup() {
        let s = md("<img src=x onerror=alert(1)> *a* [l](http://x) |c| `k`\n# h");
        assert!(!s.contains('<') && !s.contains('\n'), "{s}");
        assert_eq!(s, "&lt;img src=x onerror=alert\\(1\\)&gt; \\*a\\* \\[l\\]\\(http://x\\) \\|c\\| \\`k\\`\\\\n\\# h");
    }

    #[test]
    fn a_code_block_cannot_be_closed_from_inside() {
        assert_eq!(code_block("a\n```\n<b>"), "a\\n```\\n<b>");
    }
}
