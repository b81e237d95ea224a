//! A large, already converged fleet built directly (simulator VMs + store records), for the
//! steady-state request-count test and the pass benchmark.

use std::sync::Arc;
use std::time::Duration;

use model::attestation::{self, AttestationKey, Statement};
use pve_client::{PveClient, Secret};
use pve_sim::{SimConfig, SimServer, TemplateConfig};
use store::{InstanceRecord, LeaseState, Op, ResourceKey, ResourceWrite, SqliteStore, Store, Txn};

pub const FLEET_OPERATOR: &str = "bench";
const DIGEST: &str = "sha256:3b1f8a6c0e2d4f5a7b9c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192";
const FIRST_VMID: u32 = 100_000;

const NODE: &str = r#"
apiVersion: reborn.dev/v1alpha1
kind: GoldImage
metadata: {name: gold}
spec:
  template: {pveNode: pve1, vmid: 9000}
  digest: sha256:3b1f8a6c0e2d4f5a7b9c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192
  trustedKeys: ["ed25519:8146640f02493af4fbc54fe33388e75dc2c937ae0b7727cc2b2afb1b75199a3e"]
---
apiVersion: reborn.dev/v1alpha1
kind: Node
metadata: {name: n0, labels: {role: fleet}}
spec:
  goldImage: gold
  vmids: {from: 100000, to: 100001}
  placement: {pveNodes: [pve1]}
  clone: {mode: linked}
  resources: {cores: 2, memory: 1GiB}
  network: [{bridge: vmbr0}]
  readiness: {guestAgent: true, timeout: 5m}
  replacement: {strategy: SurgeFirst}
"#;

/// The fast simulator with its templates attested as image `gold` ([`DIGEST`]), signed by
/// the key the fleet's GoldImage trusts (the same key as the scenario support's test key).
fn attested_fast_sim() -> SimConfig {
    let key = AttestationKey::from_seed(&[0x5e; 32]);
    let statement = Statement {
        name: "gold".parse().expect("name"),
        version: "20260101.000000".to_owned(),
        digest: DIGEST.parse().expect("digest"),
        created: "2026-01-01T00:00:00Z".parse().expect("time"),
        builder: "operator tests".to_owned(),
    };
    let signed = attestation::sign(statement, &key).expect("signs");
    let mut sim = SimConfig::fast();
    for t in sim.templates.iter_mut().filter(|t| t.template) {
        let existing = t.config.get("description").cloned().unwrap_or_default();
        t.config.insert(
            "description".into(),
            attestation::description_with_attestation(&existing, &signed),
        );
    }
    sim
}

pub struct Fleet {
    pub sim: SimServer,
    pub store: Arc<SqliteStore>,
    /// Keeps the store's directory alive.
    pub _dir: tempfile::TempDir,
}

pub fn client(sim: &SimServer) -> PveClient {
    let (id, secret) = sim.token();
    PveClient::builder(sim.base_url())
        .token(id.parse().expect("token id"), Secret::new(secret))
        .retry_min_delay(Duration::from_millis(5))
        .build()
        .expect("client builds")
}

/// `n` nodes `n0..`, each with one running, ready, recorded VM.
pub async fn build(n: u32) -> Fleet {
    let set = model::load_str("fleet.yaml", NODE).expect("valid");
    let spec = &set.nodes[0].spec;
    let gold: model::Sha256Digest = DIGEST.parse().expect("digest");
    let spec_hash = planner::spec_hash(spec, &gold);
    let operator: planner::OperatorId = FLEET_OPERATOR.parse().expect("id");
    let base_spec = serde_json::to_value(spec).expect("spec");

    let mut sim_config = attested_fast_sim();
    for i in 0..n {
        let vmid = FIRST_VMID + 2 * i;
        let name = format!("n{i}");
        let marker = planner::format_marker(&planner::OwnershipMarker {
            node: name.parse().expect("node name"),
            instance_id: format!("i{vmid}-bench"),
            spec_hash: spec_hash.clone(),
            gold_digest: gold,
            operator: operator.clone(),
        });
        let mut t = TemplateConfig {
            vmid,
            name: name.clone(),
            template: false,
            memory_mib: 1024,
            cores: 2,
            ..TemplateConfig::default()
        };
        t.config.insert("tags".into(), operator.ownership_tag());
        t.config.insert("description".into(), marker);
        sim_config.templates.push(t);
    }
    let sim = pve_sim::start(sim_config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let admin = sim.admin();
    let pve = client(&sim);
    let node: pve_client::NodeName = "pve1".parse().expect("node");
    let vmids: Vec<u32> = (0..n).map(|i| FIRST_VMID + 2 * i).collect();
    for chunk in vmids.chunks(32) {
        let starts = chunk.iter().map(|v| {
            let pve = pve.clone();
            let node = node.clone();
            async move {
                let v = pve_client::VmId::new(*v).expect("vmid");
                let upid = pve.start(&node, v).await.expect("start");
                pve.wait_task_opt(upid.as_ref(), Duration::from_secs(30))
                    .await
                    .expect("started");
            }
        });
        futures_util::future::join_all(starts).await;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path().join("reborn.db")).expect("store"));
    let mut writes = vec![ResourceWrite::new(
        ResourceKey::new("GoldImage", "gold"),
        serde_json::to_value(&set.gold_images[0].spec).expect("gold"),
    )];
    let mut txn = Txn::new();
    for i in 0..n {
        let vmid = FIRST_VMID + 2 * i;
        let name = format!("n{i}");
        let mut spec = base_spec.clone();
        spec["vmids"] = serde_json::json!({"from": vmid, "to": vmid + 1});
        writes.push(
            ResourceWrite::new(ResourceKey::new("Node", name.clone()), spec)
                .with_labels([("role".to_owned(), "fleet".to_owned())].into()),
        );
        let smbios = admin
            .vm(vmid)
            .and_then(|vm| vm.config.get("smbios1").cloned())
            .and_then(|s| {
                s.split(',')
                    .find_map(|p| p.strip_prefix("uuid=").map(str::to_owned))
            })
            .expect("smbios uuid");
        let instance_id = format!("i{vmid}-bench");
        txn.push(Op::PutInstance(InstanceRecord {
            instance_id: instance_id.clone(),
            node: name.clone(),
            vmid,
            pve_node: "pve1".into(),
            name: name.clone(),
            smbios_uuid: smbios,
            spec_hash: spec_hash.clone(),
            gold_digest: DIGEST.into(),
            created_at: chrono::Utc::now(),
            current: true,
        }));
        txn.push(Op::LeaseVmid {
            vmid,
            node: name.clone(),
        });
        txn.push(Op::SetLeaseState {
            vmid,
            state: LeaseState::Active,
        });
    }
    store.apply(writes).expect("apply");
    for i in 0..n {
        txn.push(Op::PutStatus {
            key: ResourceKey::new("Node", format!("n{i}")),
            status: serde_json::json!({"instance": {"instanceId": format!("i{}-bench", FIRST_VMID + 2 * i), "ready": true}}),
            expect: store::Expect::Any,
        });
    }
    store.commit(txn).expect("records");
    Fleet {
        sim,
        store,
        _dir: dir,
    }
}
