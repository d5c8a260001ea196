//! Meta-commands (`.help`, `.fields`, `.format json`…): their names, parsing and help text.

/// `(command, arguments, what it does)`, in the order `.help` lists them.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (".help", "", "this help"),
    (".fields", "[PREFIX]", "the fields, their types and values seen in the data"),
    (".explain", "QUERY", "how a query runs: its plan, and over a store what each step read and kept"),
    (".format", "table|json|csv", "how results print (alone: the current one)"),
    (".since", "TIME|off", "only events at or after TIME (2h, 7d, 2026-11-20T05:00Z)"),
    (".until", "TIME|off", "only events before TIME"),
    (".timing", "[on|off]", "print how long each query took"),
    (".save", "NAME SEARCH", "name a search: @NAME here, later and in kaq query (alone: list them)"),
    (".forget", "NAME", "remove a saved search"),
    (".quit", "", "leave (also .exit, Ctrl-D)"),
];

/// A parsed meta-command.
#[derive(Debug, PartialEq, Eq)]
pub enum Meta {
    Help,
    Fields(String),
    Explain(String),
    Format(String),
    Since(String),
    Until(String),
    Timing(String),
    Save(String, String),
    Forget(String),
    Quit,
    Unknown(String),
}

/// Parses a line that starts with `.`.
pub fn parse(line: &str) -> Meta {
    let line = line.trim();
    let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim().to_string();
    match cmd {
        ".help" | ".h" | ".?" => Meta::Help,
        ".fields" => Meta::Fields(rest),
        ".explain" => Meta::Explain(rest),
        ".format" => Meta::Format(rest),
        ".since" => Meta::Since(rest),
        ".until" => Meta::Until(rest),
        ".timing" => Meta::Timing(rest),
        ".save" => {
            let (name, q) = rest.split_once(char::is_whitespace).unwrap_or((&rest, ""));
            Meta::Save(name.trim_start_matches('@').to_string(), q.trim().to_string())
        }
        ".forget" => Meta::Forget(rest),
        ".quit" | ".exit" | ".q" => Meta::Quit,
        other => Meta::Unknown(other.to_string()),
    }
}

pub fn help() -> String {
    let mut s = String::from(
        "Type a query and press Enter; Tab completes fields, values, stages and named queries.\n\
         \n  verb:delete ns:prod* | table time, user, resource, name\
         \n  code:401 | count by ip | sort -count\
         \n  resource:secrets verb:(get OR list) -user_kind:node | top 5 user\
         \n  | timeline 1h by verb\n\
         \nA query is a search (field:value, free text, @named), then stages after `|`:\n  ",
    );
    s.push_str(&kaq_syntax::STAGE_NAMES.join(", "));
    s.push_str(
        ".\nThe language: docs/query.md. A line ending in `|` or with an open `(` or `\"` goes on on\n\
         the next line (Alt-Enter starts a new line too).\n\nCommands:\n",
    );
    for (c, args, doc) in COMMANDS {
        s.push_str(&format!("  {:<24}{doc}\n", format!("{c} {args}").trim_end()));
    }
    s.push_str(
        "\nKeys: Tab complete · ↑/↓ history (Ctrl-R search) · → accept the grey hint from history\n\
         \x20     Ctrl-C cancel the running query (or clear the line) · Ctrl-D leave\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse(".format  json "), Meta::Format("json".into()));
        assert_eq!(parse(".save @mine verb:delete ns:prod*"), Meta::Save("mine".into(), "verb:delete ns:prod*".into()));
        assert_eq!(parse(".explain code:401 | count by ip"), Meta::Explain("code:401 | count by ip".into()));
        assert_eq!(parse(".exit"), Meta::Quit);
        assert_eq!(parse(".forget @mine"), Meta::Forget("@mine".into()));
        assert_eq!(parse(".frmat"), Meta::Unknown(".frmat".into()));
        assert!(help().contains(".save NAME SEARCH"));
    }
}
