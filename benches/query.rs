//! Criterion benches of the query path on the shipped sample log (examples/data/sample-audit.log.gz:
//! 7,694 events of a generated cluster day): compiling, the prefiltered scan, a full-decode scan,
//! and the stages.
//!
//!   cargo bench --bench query
//!
//! The end-to-end comparison with jq and DuckDB is benches/compare.sh.

use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_query::{Options, compile, run_on_text};

fn sample() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample-audit.log.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text
}

fn benches(c: &mut Criterion) {
    let text = sample();
    let opts = Options::default();
    let mut g = c.benchmark_group("query");
    g.sample_size(20);

    g.bench_function("compile", |b| {
        b.iter(|| {
            compile(
                "resource:secrets verb:(get OR list) -user_kind:node | stats count, dc(name) as secrets by user, ip",
                &opts,
            )
            .unwrap()
            .slots
            .len()
        })
    });

    g.throughput(Throughput::Bytes(text.len() as u64));
    for (name, q) in [
        ("deletes (prefiltered)", "verb:delete ns:prod*"),
        ("401 by ip (prefiltered)", "code:401 | count by ip"),
        ("user_kind (full decode)", "user_kind:human | count by user"),
        ("latency stats (full decode)", "latency>1s | stats count, p50(latency), p99(latency) by verb, resource"),
        ("timeline by verb", "| timeline 5m by verb"),
    ] {
        let plan = compile(q, &opts).unwrap();
        g.bench_function(name, |b| b.iter(|| run_on_text(&plan, &text).len()));
    }
    g.finish();
}

criterion_group!(query, benches);
criterion_main!(query);
