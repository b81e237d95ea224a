//! Benchmark: planning a converged fleet of 10,000 nodes (nothing to do). Target: under 20 ms.
#![allow(missing_docs)] // `criterion_group!` generates undocumented functions.

mod fleet;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet::{fleet, now, with_cached_hashes};
use planner::Taints;
use std::hint::black_box;

fn bench_plan(c: &mut Criterion) {
    let (desired, observed, records, policy) = fleet(10_000);
    let taints = Taints::default();
    let now = now();
    let p = planner::plan(&desired, &observed, &records, &taints, &policy, now);
    assert!(
        p.is_empty() && p.holds.is_empty(),
        "the benchmark fleet must be converged"
    );
    let cached = with_cached_hashes(&desired);
    assert_eq!(
        p,
        planner::plan(&cached, &observed, &records, &taints, &policy, now)
    );
    c.bench_function("plan_10000_nodes_nothing_to_do_cached_hashes", |b| {
        b.iter(|| {
            planner::plan(
                black_box(&cached),
                black_box(&observed),
                black_box(&records),
                black_box(&taints),
                black_box(&policy),
                now,
            )
        })
    });
    c.bench_function("plan_10000_nodes_nothing_to_do", |b| {
        b.iter(|| {
            planner::plan(
                black_box(&desired),
                black_box(&observed),
                black_box(&records),
                black_box(&taints),
                black_box(&policy),
                now,
            )
        })
    });
}

/// Calibration: cloning the inputs once (the planner must at least read all of them).
fn bench_baseline(c: &mut Criterion) {
    let (desired, observed, records, _) = fleet(10_000);
    c.bench_function("baseline_clone_10000_node_inputs", |b| {
        b.iter(|| black_box((desired.clone(), observed.clone(), records.clone())))
    });
}

criterion_group!(benches, bench_plan, bench_baseline);
criterion_main!(benches);
