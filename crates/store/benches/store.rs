//! Store benchmarks: apply 10,000 nodes in one transaction, list 10,000 nodes, append 100,000
//! events, and one durable single-event commit. Run: `cargo bench -p store --bench store`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use store::{NewEvent, Op, SqliteStore, Store, Txn};

#[path = "nodes/mod.rs"]
mod nodes;

use nodes::{NODES, node_spec, node_writes};
const EVENTS: usize = 100_000;

fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("bench.db")).expect("open store");
    (dir, store)
}

fn new_event(i: usize) -> NewEvent {
    NewEvent {
        at: chrono::Utc::now(),
        node: Some(format!("worker-{:05}", i % NODES)),
        kind: "CloneFinished".into(),
        message: format!("cloned VM {} from template 9000", 4000 + i),
        data: json!({"vmid": 4000 + i, "upid": "UPID:pve1:0000C0DE:0001:65A0:qmclone:4101:root@pam:", "ms": 8123}),
    }
}

fn apply_10k_nodes(c: &mut Criterion) {
    let writes = node_writes();
    let mut group = c.benchmark_group("store");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("apply_10k_nodes_one_txn", |b| {
        b.iter_batched(
            || (fresh(), writes.clone()),
            |((dir, store), writes)| {
                black_box(store.apply(writes).expect("apply"));
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn list_10k_nodes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = nodes::fleet_store(dir.path());
    let mut group = c.benchmark_group("store");
    group.sample_size(20);
    // What a reconcile pass takes: shared snapshots, only changed rows decoded.
    group.bench_function("list_shared_10k_nodes", |b| {
        b.iter(|| {
            let listing = store.list_shared("Node").expect("list");
            assert_eq!(listing.items.len(), NODES);
            black_box(listing)
        })
    });
    // Owned copies of every spec and status (the API's `get nodes`).
    group.bench_function("list_10k_nodes", |b| {
        b.iter(|| {
            let listing = store.list("Node").expect("list");
            assert_eq!(listing.items.len(), NODES);
            black_box(listing)
        })
    });
    // Baseline: the same rows fetched with plain rusqlite, JSON left undecoded.
    group.bench_function("list_10k_nodes_raw_rows", |b| {
        let conn = rusqlite::Connection::open(store.path()).expect("raw open");
        b.iter(|| {
            let mut stmt = conn
                .prepare_cached("SELECT kind, name, uid, labels, spec, status FROM resources WHERE kind = 'Node' ORDER BY name")
                .expect("prepare");
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(4)?)))
                .expect("query");
            black_box(rows.count())
        })
    });
    // Baseline: decoding the specs alone.
    let specs: Vec<String> = (0..NODES).map(|i| node_spec(i).to_string()).collect();
    group.bench_function("decode_10k_specs", |b| {
        b.iter(|| {
            for s in &specs {
                black_box(serde_json::from_str::<Value>(s).expect("json"));
            }
        })
    });
    group.finish();
}

fn append_100k_events(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("append_100k_events_one_txn", |b| {
        b.iter_batched(
            || {
                (
                    fresh(),
                    (0..EVENTS)
                        .map(|i| Op::AppendEvent(new_event(i)))
                        .collect::<Txn>(),
                )
            },
            |((dir, store), txn)| {
                black_box(store.commit(txn).expect("commit"));
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("append_100k_events_txns_of_1000", |b| {
        b.iter_batched(
            fresh,
            |(dir, store)| {
                for chunk in 0..EVENTS / 1000 {
                    let txn: Txn = (chunk * 1000..(chunk + 1) * 1000)
                        .map(|i| Op::AppendEvent(new_event(i)))
                        .collect();
                    store.commit(txn).expect("commit");
                }
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn append_one_event_durably(c: &mut Criterion) {
    let (_dir, store) = fresh();
    let mut group = c.benchmark_group("store");
    group.sample_size(50);
    let mut i = 0;
    group.bench_function("append_1_event_own_txn_fsync", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.append_event(new_event(i)).expect("append"))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    apply_10k_nodes,
    list_10k_nodes,
    append_100k_events,
    append_one_event_durably
);
criterion_main!(benches);
