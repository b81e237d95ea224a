//! Decode + join + evaluate throughput on real Cerbos 0.55 decision lines (one core).
//!
//! `cargo bench -p audit --bench decode_evaluate`. The input repeats the 12 CheckResources
//! decision lines of `tests/data/audit.log` (recorded from the real PDP) with fresh callIds
//! and timestamps, so every line is decoded, joined and evaluated against the jsonRAG worker
//! policy (and a catch-all deny policy), with attribution by peer address.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use audit::{IngestReport, Ingestor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/workload.rs"]
mod workload;

use workload::LINES;

fn bench(c: &mut Criterion) {
    let data = workload::input();
    let book = workload::addresses();
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(LINES as u64));
    group.sample_size(20);
    group.bench_function("decode_join_evaluate_decision_lines", |b| {
        b.iter(|| {
            let mut ing = Ingestor::new(workload::policies(), book.clone());
            let mut report = IngestReport::default();
            let taints = ing.process(black_box(&data), &mut report);
            assert_eq!(report.check_decisions, LINES as u64);
            black_box(taints)
        })
    });
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for line in data.split(|c| *c == b'\n') {
                if let Ok(audit::Entry::Decision(_)) = audit::decode_line(black_box(line)) {
                    n += 1;
                }
            }
            assert_eq!(n, LINES as u64);
        })
    });
    // Reference point for this machine: parsing the same lines into untyped JSON.
    group.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| {
            for line in data.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(black_box(line)).expect("json");
                black_box(v);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
