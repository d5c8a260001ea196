//! Text from logs made safe to show: audit logs are written by whoever can reach the API server,
//! and file names by whoever can write to the log directory, so either may hold escape sequences
//! (a terminal would run them: set the window title, write the clipboard with OSC 52, clear the
//! screen) or bidirectional overrides (which reorder what is shown and can hide text).
//!
//! [`visible`] is the one function every human-facing output goes through (tables, the REPL,
//! summaries, warnings, reject messages, errors): it shows each such character as an escape, as
//! Python's `repr` does:
//!
//! | characters | shown as |
//! |---|---|
//! | tab, line feed, carriage return | `\t`, `\n`, `\r` |
//! | other C0 controls (U+0000–U+001F), DEL (U+007F), C1 controls (U+0080–U+009F) | `\x1b`, `\x7f`, `\x9b` |
//! | bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) | `\u202e` |
//!
//! A backslash already in the text is left as it is. [`visible_json`] does the same for JSON
//! text, where the result must stay JSON (equal to the input), and [`csv_formula_safe`] keeps a
//! spreadsheet from running a cell as a formula (OWASP's advice on CSV injection).
//!
//! ```
//! use kaq_schema::visible::visible;
//! assert_eq!(visible("a\x1b]0;pwned\x07b"), r"a\x1b]0;pwned\x07b");
//! assert_eq!(visible("invoice\u{202e}fdp.exe"), r"invoice\u202efdp.exe");
//! assert_eq!(visible("plain text"), "plain text");
//! ```

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is shown as an escape by [`visible`].
pub fn is_hidden(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `s` holds a character [`visible`] would escape.
pub fn has_hidden(s: &str) -> bool {
    s.chars().any(is_hidden)
}

/// `s` with every control character and bidi override shown as an escape (see the module
/// documentation); borrowed when there is none.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !has_hidden(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 && is_hidden(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`visible`] for an owned string (not copied when nothing is hidden).
pub fn visible_owned(s: String) -> String {
    if has_hidden(&s) { visible(&s).into_owned() } else { s }
}

/// JSON text with DEL, the C1 controls and the bidi overrides written as `\uXXXX` escapes, so
/// that JSON printed to a terminal cannot drive it. serde_json escapes the C0 controls in strings
/// already, and a parser accepts none unescaped there, so those are left alone (outside strings
/// JSON may only hold whitespace). The characters escaped can only be inside strings, where the
/// escape means the same character: the result is JSON equal to the input.
pub fn visible_json(s: &str) -> Cow<'_, str> {
    let hidden = |c: char| (c as u32) >= 0x7f && is_hidden(c);
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A CSV cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return gets a `'` in front (OWASP, "CSV Injection"). Text that is a plain
/// number (`-5`, `+1.5e3`) is left as it is, so that numbers stay numbers.
pub fn csv_formula_safe(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if !is_plain_number(s) => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// `-5`, `+12`, `-0.25`, `1e9`, `-.5`: an optional sign, digits with an optional fraction, an
/// optional exponent.
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_are_shown() {
        // OSC 0 (window title), OSC 52 (clipboard), CSI 2J (clear screen).
        assert_eq!(visible("\x1b]0;title\x07"), r"\x1b]0;title\x07");
        assert_eq!(visible("\x1b]52;c;cHduZWQ=\x1b\\"), r"\x1b]52;c;cHduZWQ=\x1b\");
        assert_eq!(visible("\x1b[2J"), r"\x1b[2J");
        assert_eq!(visible("a\nb\tc\rd\0e\x7f"), r"a\nb\tc\rd\x00e\x7f");
        // C1: CSI as one character, NEL.
        assert_eq!(visible("\u{9b}2J\u{85}"), r"\x9b2J\x85");
        for c in ['\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}'] {
            assert!(is_hidden(c), "{c:?}");
        }
        assert_eq!(visible("x\u{2069}y"), r"x\u2069y");
        // Untouched: printable text of any script, and the neighbours of the ranges.
        for s in ["kube-system", "ünïcødé 日本 🙂", "\u{a0}\u{2029}\u{202f}\u{2065}\u{206a}", "back\\slash"] {
            assert!(matches!(visible(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn json_stays_json() {
        let text = r#"{"a":"x\u001b[2J","b":"y"#.to_string() + "\u{9b}\u{202e}\u{7f}\"}";
        let shown = visible_json(&text);
        assert!(!shown.chars().any(|c| (c as u32) >= 0x7f && is_hidden(c)), "{shown}");
        let before: serde_json::Value = serde_json::from_str(&text).unwrap();
        let after: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(before, after);
        assert!(matches!(visible_json("{\n  \"a\": \"\\u001b\"\n}"), Cow::Borrowed(_)));
    }

    #[test]
    fn formulas_are_quoted_numbers_are_not() {
        for f in ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "-", "+"] {
            assert_eq!(csv_formula_safe(f), format!("'{f}"), "{f:?}");
        }
        for n in ["-5", "+12", "-0.25", "-.5", "1e9", "-1.5E-3", "get", "", "a=b"] {
            assert_eq!(csv_formula_safe(n), n, "{n:?}");
        }
        for f in ["-5x", "-1e", "-.", "-e5", "--5"] {
            assert_eq!(csv_formula_safe(f), format!("'{f}"), "{f:?}");
        }
    }
}
