//! The benchmark fleet of Node resources, shared by the criterion bench and the CPU-time
//! example.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use store::{ResourceKey, ResourceWrite};

/// Nodes in the fleet.
pub const NODES: usize = 10_000;

/// A spec shaped like the design's Node example.
pub fn node_spec(i: usize) -> Value {
    json!({
        "goldImage": "jsonrag-worker",
        "placement": {"pveNodes": ["pve1", "pve2"]},
        "clone": {"mode": "linked", "storage": "local-lvm"},
        "resources": {"cores": 2, "memory": "4GiB"},
        "network": [{"bridge": "vmbr0", "address": format!("10.{}.{}.{}/16", i / 65536, (i / 256) % 256, i % 256), "gateway": "10.0.0.1"}],
        "cloudInit": {"user": "app", "sshKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"], "userData": "local:snippets/worker.yaml"},
        "readiness": {"guestAgent": true, "tcp": 8080, "timeout": "5m"},
        "replacement": {"strategy": "StopFirst"}
    })
}

pub fn node_writes() -> Vec<ResourceWrite> {
    (0..NODES)
        .map(|i| {
            let labels: BTreeMap<String, String> = [
                ("app".to_owned(), "jsonrag".to_owned()),
                ("role".to_owned(), "worker".to_owned()),
            ]
            .into_iter()
            .collect();
            ResourceWrite::new(
                ResourceKey::new("Node", format!("worker-{i:05}")),
                node_spec(i),
            )
            .with_labels(labels)
        })
        .collect()
}

/// A status shaped like the one the controller writes for a Ready node.
pub fn node_status(i: usize) -> Value {
    json!({
        "observedGeneration": 1,
        "phase": "Ready",
        "instance": {"instanceId": format!("i{}-20261121000000", 4000 + i), "vmid": 4000 + i,
                     "pveNode": "pve1", "ready": true, "address": format!("10.0.{}.{}", (i / 256) % 256, i % 256)},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "InstanceReady", "message": "VM is running and ready", "lastTransitionTime": "2026-11-21T00:00:00Z"},
            {"type": "Tainted", "status": "False", "reason": "NoTaints", "message": "", "lastTransitionTime": "2026-11-21T00:00:00Z"},
            {"type": "Drifted", "status": "False", "reason": "InSync", "message": "", "lastTransitionTime": "2026-11-21T00:00:00Z"}
        ]
    })
}

/// A store in `dir` holding the fleet, each node with its Ready status.
pub fn fleet_store(dir: &std::path::Path) -> store::SqliteStore {
    use store::Store;
    let store = store::SqliteStore::open(dir.join("bench.db")).expect("open store");
    store.apply(node_writes()).expect("apply");
    let statuses: store::Txn = (0..NODES)
        .map(|i| store::Op::PutStatus {
            key: ResourceKey::new("Node", format!("worker-{i:05}")),
            status: node_status(i),
            expect: store::Expect::Any,
        })
        .collect();
    store.commit(statuses).expect("statuses");
    store
}
