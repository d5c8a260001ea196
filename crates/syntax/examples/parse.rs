//! Parses each argument (or each stdin line) and prints the canonical form or the rendered errors.
//!
//! `cargo run -p kaq-syntax --example parse -- 'verb:delete ns:prod* | count by user'`

use std::io::BufRead;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inputs: Vec<String> =
        if args.is_empty() { std::io::stdin().lock().lines().map_while(Result::ok).collect() } else { args };
    let debug = std::env::var_os("KAQ_SYNTAX_DEBUG").is_some();
    for src in inputs {
        match kaq_syntax::parse(&src) {
            Ok(q) if debug => println!("{q}\n{q:#?}"),
            Ok(q) => println!("{q}"),
            Err(diags) => diags.iter().for_each(|d| print!("{}", d.render(&src))),
        }
    }
}
