//! Criterion benches of the conversion path, stage by stage, on the shipped sample log
//! (examples/data/sample-audit.log.gz: 7,694 events of a generated cluster day).
//!
//!   cargo bench --bench convert
//!
//! The end-to-end comparison with DuckDB is benches/compare.sh.

use std::convert::Infallible;
use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_columnar::{EventBatchBuilder, SortedParquetWriter, ToBatch, WriteOptions};
use kaq_input::ReadOptions;
use kaq_schema::{DecodeOptions, decode_event};

fn sample() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample-audit.log.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text
}

fn benches(c: &mut Criterion) {
    let text = sample();
    let lines: Vec<&str> = text.lines().collect();
    let opts = DecodeOptions::default();
    let mut g = c.benchmark_group("convert");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(20);

    g.bench_function("decode", |b| {
        b.iter(|| lines.iter().map(|l| decode_event(l, &opts).unwrap().derived.time.unwrap_or(0)).sum::<i64>())
    });

    g.bench_function("decode+arrow", |b| {
        b.iter(|| {
            let mut builder = EventBatchBuilder::new();
            for l in &lines {
                builder.append(&decode_event(l, &opts).unwrap());
            }
            builder.finish().num_rows()
        })
    });

    let mut builder = EventBatchBuilder::new();
    for l in &lines {
        builder.append(&decode_event(l, &opts).unwrap());
    }
    let batch = builder.finish();
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("parquet-write", |b| {
        b.iter(|| {
            let mut w = SortedParquetWriter::create(&dir.path().join("b.parquet"), WriteOptions::default()).unwrap();
            w.write(batch.clone()).unwrap();
            w.finish().unwrap()
        })
    });

    let log = dir.path().join("sample.log");
    std::fs::write(&log, &text).unwrap();
    let sources = kaq_input::expand(&[&log]).unwrap().sources;
    g.bench_function("read-pipeline", |b| {
        b.iter(|| {
            let mut rows = 0;
            kaq_input::read(&sources, &ReadOptions::default(), &ToBatch::default(), |c| {
                rows += c.output.map_or(0, |b| b.num_rows());
                Ok::<(), Infallible>(())
            })
            .unwrap();
            rows
        })
    });
    g.finish();
}

criterion_group!(convert, benches);
criterion_main!(convert);
