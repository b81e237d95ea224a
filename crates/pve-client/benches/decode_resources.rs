//! Decoding a `GET /cluster/resources?type=vm` answer of 10,000 VMs (target: under 10 ms).
//!
//! Run: `cargo bench -p pve-client --bench decode_resources`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/resources_body.rs"]
mod resources_body;
use resources_body::cluster_resources_body;

fn decode_resources(c: &mut Criterion) {
    let body = cluster_resources_body(10_000);
    let decoded =
        pve_client::decode::cluster_resources(body.as_bytes()).expect("bench body decodes");
    assert_eq!(decoded.len(), 10_000);

    let mut group = c.benchmark_group("cluster_resources");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_10000_vms", |b| {
        b.iter(|| {
            let vms =
                pve_client::decode::cluster_resources(black_box(body.as_bytes())).expect("decodes");
            black_box(vms)
        });
    });
    // The serde_json path alone (the decoder before the single-pass scanner; still the fallback).
    group.bench_function("serde_path_10000_vms", |b| {
        b.iter(|| {
            let vms = pve_client::decode::cluster_resources_serde_path(black_box(body.as_bytes()))
                .expect("decodes");
            black_box(vms)
        });
    });
    // serde_json only scanning the same body, decoding nothing.
    group.bench_function("scan_only_10000_vms", |b| {
        b.iter(|| {
            let scanned: serde::de::IgnoredAny =
                serde_json::from_slice(black_box(body.as_bytes())).expect("valid JSON");
            black_box(scanned)
        });
    });
    group.finish();
}

criterion_group!(benches, decode_resources);
criterion_main!(benches);
