//! Shared fixtures of the controller scenario tests: a fast simulator, a SQLite store in a
//! temporary directory, the controller, and helpers to apply manifests, taint and read events.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use model::attestation::{self, AttestationKey, SignedStatement, Statement};
use operator::{Controller, ControllerConfig, ControllerHandle};
use pve_client::{PveClient, Secret};
use pve_sim::{SimAdmin, SimConfig, SimServer, TemplateConfig};
use store::{
    EventQuery, NewTaint, ResourceKey, ResourceWrite, Severity, SqliteStore, Store, TaintSource,
};

pub const OPERATOR: &str = "test";
pub const TAG: &str = "reborn-test";

/// The seed of the key that signs the test templates (its public key is `GOLD`'s trusted key).
pub const TEST_KEY_SEED: [u8; 32] = [0x5e; 32];
/// The public key of [`TEST_KEY_SEED`], as manifests list it.
pub const TEST_PUBLIC_KEY: &str =
    "ed25519:8146640f02493af4fbc54fe33388e75dc2c937ae0b7727cc2b2afb1b75199a3e";
/// A key no test manifest trusts.
pub const UNTRUSTED_KEY_SEED: [u8; 32] = [0x0b; 32];
/// The image digest `GOLD` expects.
pub const GOLD_DIGEST: &str =
    "sha256:3b1f8a6c0e2d4f5a7b9c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192";

pub const GOLD: &str = r#"
apiVersion: reborn.dev/v1alpha1
kind: GoldImage
metadata: {name: gold}
spec:
  template: {pveNode: pve1, vmid: 9000}
  digest: sha256:3b1f8a6c0e2d4f5a7b9c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192
  trustedKeys: ["ed25519:8146640f02493af4fbc54fe33388e75dc2c937ae0b7727cc2b2afb1b75199a3e"]
"#;

/// A statement about image `name` with `digest`, signed by the key of `seed`.
pub fn attestation(name: &str, digest: &str, seed: &[u8; 32]) -> SignedStatement {
    let statement = Statement {
        name: name.parse().expect("image name"),
        version: "20260101.000000".to_owned(),
        digest: digest.parse().expect("digest"),
        created: "2026-01-01T00:00:00Z".parse().expect("time"),
        builder: "operator tests".to_owned(),
    };
    attestation::sign(statement, &AttestationKey::from_seed(seed)).expect("signs")
}

/// `template` with `signed` in its description (other notes kept) and the image tag, the way
/// `reborn gold register` writes them.
pub fn with_attestation(mut template: TemplateConfig, signed: &SignedStatement) -> TemplateConfig {
    let existing = template
        .config
        .get("description")
        .cloned()
        .unwrap_or_default();
    template.config.insert(
        "description".into(),
        attestation::description_with_attestation(&existing, signed),
    );
    let tag = signed.statement.tag().expect("image tag").to_string();
    let tags = match template.config.get("tags") {
        Some(t) if !t.is_empty() => format!("{t};{tag}"),
        _ => tag,
    };
    template.config.insert("tags".into(), tags);
    template
}

/// `template` attested as image `gold` with [`GOLD_DIGEST`], signed by the test key.
pub fn attested_template(template: TemplateConfig) -> TemplateConfig {
    with_attestation(template, &attestation("gold", GOLD_DIGEST, &TEST_KEY_SEED))
}

/// `sim` with every template attested by [`attested_template`] (the plain VMs left alone).
pub fn attested_sim(mut sim: SimConfig) -> SimConfig {
    sim.templates = sim
        .templates
        .into_iter()
        .map(|t| if t.template { attested_template(t) } else { t })
        .collect();
    sim
}

/// The fast simulator with attested templates: what every scenario clones from.
pub fn attested_fast_sim() -> SimConfig {
    attested_sim(SimConfig::fast())
}

/// A node manifest on pve1 with the given strategy and VMID range start; `ip` 0 = DHCP,
/// otherwise the fixed address `10.0.10.<ip>`.
pub fn node(name: &str, role: &str, from: u32, strategy: &str, ip: u8) -> String {
    let network = if ip == 0 {
        "[{bridge: vmbr0}]".to_owned()
    } else {
        format!("[{{bridge: vmbr0, address: 10.0.10.{ip}/24, gateway: 10.0.10.1}}]")
    };
    format!(
        r#"
---
apiVersion: reborn.dev/v1alpha1
kind: Node
metadata: {{name: {name}, labels: {{app: t, role: {role}}}}}
spec:
  goldImage: gold
  vmids: {{from: {from}, to: {to}}}
  placement: {{pveNodes: [pve1]}}
  clone: {{mode: linked}}
  resources: {{cores: 2, memory: 1GiB}}
  network: {network}
  cloudInit: {{user: app, sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsQ3Fm4GkJbXhZ0vJ2o3Bq8dXr6nY7kLw1tPz9aRcE ops@t"]}}
  readiness: {{guestAgent: true, timeout: 5m}}
  replacement: {{strategy: {strategy}}}
"#,
        to = from + 9
    )
}

pub fn budget(name: &str, role: &str, max: u32) -> String {
    format!(
        r#"
---
apiVersion: reborn.dev/v1alpha1
kind: DisruptionBudget
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{role: {role}}}}}
  maxUnavailable: {max}
"#
    )
}

/// Writes manifests into the store the way the API does: kind/name, labels, spec as JSON.
pub fn apply(store: &dyn Store, yaml: &str) {
    let set = model::load_str("test.yaml", yaml).expect("valid manifests");
    let mut writes = Vec::new();
    for n in &set.nodes {
        writes.push(
            ResourceWrite::new(
                ResourceKey::new("Node", n.metadata.name.as_str()),
                serde_json::to_value(&n.spec).expect("spec"),
            )
            .with_labels(n.metadata.labels.clone()),
        );
    }
    for g in &set.gold_images {
        writes.push(ResourceWrite::new(
            ResourceKey::new("GoldImage", g.metadata.name.as_str()),
            serde_json::to_value(&g.spec).expect("spec"),
        ));
    }
    for b in &set.budgets {
        writes.push(ResourceWrite::new(
            ResourceKey::new("DisruptionBudget", b.metadata.name.as_str()),
            serde_json::to_value(&b.spec).expect("spec"),
        ));
    }
    store.apply(writes).expect("apply");
}

pub fn client(sim: &SimServer) -> PveClient {
    let (id, secret) = sim.token();
    PveClient::builder(sim.base_url())
        .token(id.parse().expect("token id"), Secret::new(secret))
        .retry_min_delay(Duration::from_millis(5))
        .build()
        .expect("client builds")
}

pub struct Harness {
    pub sim: SimServer,
    pub admin: SimAdmin,
    pub store: Arc<SqliteStore>,
    pub ctl: Controller,
    pub handle: Arc<dyn ControllerHandle>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new(manifests: &str) -> Self {
        Self::with_config(manifests, ControllerConfig::fast(OPERATOR)).await
    }

    pub async fn with_config(manifests: &str, config: ControllerConfig) -> Self {
        Self::with_sim(manifests, config, attested_fast_sim()).await
    }

    /// A harness on exactly `sim` (its templates as given: see [`attested_sim`]).
    pub async fn with_sim(manifests: &str, config: ControllerConfig, sim: SimConfig) -> Self {
        let sim = pve_sim::start(sim, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(dir.path().join("reborn.db")).expect("store"));
        apply(store.as_ref(), manifests);
        let (ctl, handle) =
            Controller::new(config, store.clone(), client(&sim)).expect("controller");
        let admin = sim.admin();
        Harness {
            sim,
            admin,
            store,
            ctl,
            handle,
            dir,
        }
    }

    /// A new controller on the same store and simulator (a restart).
    pub fn restart(&mut self) {
        let (ctl, handle) = Controller::new(
            ControllerConfig::fast(OPERATOR),
            self.store.clone(),
            client(&self.sim),
        )
        .expect("controller");
        self.ctl = ctl;
        self.handle = handle;
    }

    pub async fn converge(&self) -> usize {
        self.ctl.converge(40).await.expect("converges")
    }

    pub fn taint(&self, node: &str, severity: Severity) {
        self.taint_with(node, severity, serde_json::json!({}));
    }

    pub fn taint_with(&self, node: &str, severity: Severity, evidence: serde_json::Value) {
        self.store
            .add_taint(NewTaint {
                node: node.to_owned(),
                instance_id: None,
                key: "manual".to_owned(),
                source: TaintSource::Cli,
                severity,
                reason: "test taint".to_owned(),
                evidence,
                created_at: chrono::Utc::now(),
                created_by: "tester".to_owned(),
                expires_at: None,
            })
            .expect("taint");
    }

    /// VMs carrying the ownership tag, as (vmid, name).
    pub fn owned_vms(&self) -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = self
            .admin
            .vms()
            .into_iter()
            .filter(|v| {
                v.config
                    .get("tags")
                    .map(|t| t.as_str())
                    .is_some_and(|t| t.split(';').any(|x| x == TAG))
            })
            .map(|v| {
                let name = v
                    .config
                    .get("name")
                    .map(|n| n.as_str())
                    .unwrap_or_default()
                    .to_owned();
                (v.vmid, name)
            })
            .collect();
        out.sort();
        out
    }

    /// The event log in a stable form: per node (sorted), in append order, kind and vmid.
    pub fn golden(&self) -> String {
        let events = self.store.events(&EventQuery::default()).expect("events");
        let mut nodes: Vec<String> = events
            .iter()
            .map(|e| e.node.clone().unwrap_or_else(|| "-".to_owned()))
            .collect();
        nodes.sort();
        nodes.dedup();
        let mut out = String::new();
        for n in nodes {
            out.push_str(&format!("{n}:\n"));
            for e in events
                .iter()
                .filter(|e| e.node.clone().unwrap_or_else(|| "-".to_owned()) == n)
            {
                let vmid = e.data.get("vmid").and_then(|v| v.as_u64());
                match vmid {
                    Some(v) => out.push_str(&format!("  {} vm={v}\n", e.kind)),
                    None => out.push_str(&format!("  {}\n", e.kind)),
                }
            }
        }
        out
    }

    pub fn event_kinds(&self, node: &str) -> Vec<String> {
        self.store
            .events(&EventQuery {
                node: Some(node.to_owned()),
                ..EventQuery::default()
            })
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    pub fn status(&self, node: &str) -> serde_json::Value {
        self.store
            .get(&ResourceKey::new("Node", node))
            .expect("get")
            .expect("node exists")
            .status
    }

    /// The status of GoldImage `name` as stored (what `reborn get goldimages` shows).
    pub fn gold_status(&self, name: &str) -> serde_json::Value {
        self.store
            .get(&ResourceKey::new("GoldImage", name))
            .expect("get")
            .expect("gold image exists")
            .status
    }

    /// The `Verified` condition of GoldImage `name`: (status, reason, message).
    pub fn gold_condition(&self, name: &str) -> (String, String, String) {
        let status = self.gold_status(name);
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Verified"))
            .cloned()
            .unwrap_or_default();
        let field = |k: &str| c[k].as_str().unwrap_or("missing").to_owned();
        (field("status"), field("reason"), field("message"))
    }

    /// Every event of `kind`, oldest first.
    pub fn events_of(&self, kind: &str) -> Vec<store::Event> {
        self.store
            .events(&EventQuery {
                kind: Some(kind.to_owned()),
                ..EventQuery::default()
            })
            .expect("events")
    }

    /// The message of a node's condition.
    pub fn condition_message(&self, node: &str, kind: &str) -> String {
        let status = self.status(node);
        status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .and_then(|c| c["message"].as_str())
            .unwrap_or("missing")
            .to_owned()
    }

    pub fn condition(&self, node: &str, kind: &str) -> String {
        let status = self.status(node);
        status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .and_then(|c| c["status"].as_str())
            .unwrap_or("missing")
            .to_owned()
    }
}
