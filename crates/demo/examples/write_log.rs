//! Writes the demo log to a file, to query it with `kaq query` or feed it to other tools:
//!
//! ```sh
//! cargo run -p kaq-demo --example write_log -- demo-audit.log [EVENTS [SEED]]
//! kaq query 'verb:delete ns:prod* user_kind:human | table time, user, resource, ns, name' demo-audit.log
//! ```

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: write_log FILE [EVENTS [SEED]]");
        std::process::exit(2);
    };
    let mut opts = kaq_demo::DemoOptions::default();
    if let Some(n) = args.get(1) {
        opts.events = n.parse().expect("EVENTS is a number");
    }
    if let Some(s) = args.get(2) {
        opts.seed = s.parse().expect("SEED is a number");
    }
    let demo = kaq_demo::generate(&opts);
    std::fs::write(path, &demo.log)?;
    eprintln!("wrote {} events ({} bytes) to {path}", opts.events.max(kaq_demo::INCIDENT_EVENTS), demo.log.len());
    for i in &demo.incidents {
        eprintln!("{:>22}  {}  ({} rows)\n{:>22}  {}", i.name, i.question, i.expected_rows, "", i.query);
    }
    Ok(())
}
