//! Decode + join + evaluate throughput on real Cerbos 0.55 decision lines (one core).
//!
//! `cargo bench -p audit --bench decode_evaluate`. The input repeats the 12 CheckResources
//! decision lines of `tests/data/audit.log` (recorded from the real PDP) with fresh callIds
//! and timestamps, so every line is decoded, joined and evaluated against the jsonRAG worker
//! policy (and a catch-all deny policy), with attribution by peer address.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use audit::{AddressBook, CompiledPolicy, IngestReport, Ingestor, NodeAddresses};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SAMPLE: &str = include_str!("../tests/data/audit.log");
const LINES: usize = 20_000;

fn policies() -> Vec<CompiledPolicy> {
    let yaml = "apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: worker-cross-tenant}
spec:
  match:
    principalIds: [svc-reports]
    resourceKinds: [tenant_document]
    rules: [\"resource.tenant_document.vdefault#deny-cross-tenant\"]
  threshold: {count: 3, window: 5m}
  severity: Critical
  action: Replace
---
apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: any-deny}
spec:
  match: {}
  threshold: {count: 1000000, window: 1h}
  severity: Low
  action: Report
";
    let set = model::load_str("bench.yaml", yaml).expect("bench policies load");
    set.taint_policies.iter().map(CompiledPolicy::new).collect()
}

fn input() -> Vec<u8> {
    let decisions: Vec<&str> = SAMPLE
        .lines()
        .filter(|l| l.contains("\"checkResources\""))
        .collect();
    let mut out = Vec::new();
    for i in 0..LINES {
        let line = decisions[i % decisions.len()];
        // Fresh callId and timestamp so every call is new to the joiner and the windows.
        let v: serde_json::Value = serde_json::from_str(line).expect("sample is JSON");
        let mut v = v;
        v["callId"] = format!("01M7ZT1K{i:018}").into();
        v["timestamp"] = format!(
            "2026-11-21T19:{:02}:{:02}.{:06}Z",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000
        )
        .into();
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn bench(c: &mut Criterion) {
    let data = input();
    let mut map = NodeAddresses::new();
    map.insert("worker-1", "127.0.0.1".parse().expect("ip"));
    let book = AddressBook::new(map);
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(LINES as u64));
    group.sample_size(20);
    group.bench_function("decode_join_evaluate_decision_lines", |b| {
        b.iter(|| {
            let mut ing = Ingestor::new(policies(), book.clone());
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
