//! The planner's inputs: plain data the operator fills from the store, PVE and its checks.

use crate::config::ManagedConfig;
use crate::marker::{OperatorId, OwnershipMarker};
use chrono::{DateTime, Utc};
use model::{
    DisruptionBudget, GoldImage, Node, NodeName, PveNodeName, Severity, StorageId, TaintAction,
    VmId,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What is declared: nodes (with their store generation), gold images and budgets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// Declared nodes.
    pub nodes: Vec<DesiredNode>,
    /// Declared gold images.
    pub gold_images: Vec<GoldImage>,
    /// Declared disruption budgets.
    pub budgets: Vec<DisruptionBudget>,
}

/// One declared node and the store generation of its spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredNode {
    /// The manifest.
    pub node: Node,
    /// The store generation of the spec (recorded on instances the plan creates).
    pub generation: u64,
    /// [`crate::spec_hash`] of this spec and its gold image's digest, if the operator cached it
    /// (e.g. per store revision); `None`: the planner computes it. A cached value MUST come from
    /// `spec_hash` with the current gold digest, or drift detection is wrong.
    #[serde(default)]
    pub spec_hash: Option<String>,
}

/// What one pass read from PVE (one `GET /cluster/resources`, plus config reads of our VMs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// PVE cluster nodes.
    pub pve_nodes: Vec<PveNodeInfo>,
    /// Every VM in the cluster, ours or not.
    pub vms: Vec<ObservedVm>,
    /// The gold templates as resolved and verified by the operator, one per gold image.
    pub templates: Vec<TemplateStatus>,
}

/// One PVE cluster node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PveNodeInfo {
    /// Its name.
    pub name: PveNodeName,
    /// Whether it is online.
    pub online: bool,
    /// Free memory in MiB (`maxmem - mem` from `cluster/resources`).
    pub free_memory_mib: u64,
}

/// A VM's power state as `cluster/resources` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Unknown (node offline, or freshly created and not yet seen by pvestatd).
    Unknown,
}

/// One VM from `cluster/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedVm {
    /// Its VMID.
    pub vmid: VmId,
    /// The PVE node it is on.
    pub pve_node: PveNodeName,
    /// Its name; absent right after a clone (PVE lags up to ~10 s).
    pub name: Option<String>,
    /// Power state.
    pub status: VmStatus,
    /// Its tags (split on `;`).
    pub tags: Vec<String>,
    /// The config lock, e.g. `backup` or `clone`.
    pub lock: Option<String>,
    /// Whether it is a template.
    pub template: bool,
    /// For VMs carrying this operator's ownership tag: what a config read gave.
    pub config: Option<OwnedVmConfig>,
}

/// What the operator read from the config of a VM carrying our ownership tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedVmConfig {
    /// The parsed description marker; `None` if absent or malformed (the VM is then not ours).
    pub marker: Option<OwnershipMarker>,
    /// The `smbios1` uuid.
    pub smbios_uuid: Option<String>,
    /// Readiness: `Some(true)` passed, `Some(false)` failed or timed out, `None` not checked yet.
    pub ready: Option<bool>,
    /// Whether every network interface has `link_down=1` (the instance is isolated).
    pub isolated: bool,
    /// The live managed keys, if the operator parsed them (drift detection compares them).
    pub live: Option<ManagedConfig>,
}

/// A gold image's template as the operator resolved and verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateStatus {
    /// The gold image name.
    pub gold_image: model::Name,
    /// The template's VMID, once resolved.
    pub vmid: Option<VmId>,
    /// The PVE node holding it.
    pub pve_node: PveNodeName,
    /// The outcome of the attestation check.
    pub verification: Verification,
}

/// Whether a template is the image that was built and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verification {
    /// Digest and signature match.
    Verified,
    /// Verification failed: why.
    Failed(String),
    /// Not checked yet.
    Unknown,
}

/// The store's view of instances, leases, destroys, the breaker and in-flight work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Records {
    /// Every instance record, of declared and deleted nodes.
    pub instances: Vec<InstanceRecord>,
    /// Every VMID lease.
    pub leases: Vec<VmidLease>,
    /// When recent automatic destroys happened (at least those within the breaker window).
    pub recent_destroys: Vec<DateTime<Utc>>,
    /// The breaker as last recorded.
    pub breaker: BreakerRecord,
    /// Journal entries still in `Intent`.
    pub in_flight: Vec<InFlight>,
    /// Nodes whose instance the operator gave up waiting for (at most one per node).
    #[serde(default)]
    pub gave_up: Vec<GaveUp>,
}

/// The operator gave up waiting for an instance of `node` to become ready: too many failed
/// readiness waits, or past the deadline. The operator decides it (it counts attempts and
/// time); the planner destroys that instance (identity-proven, like any destroy), restores
/// the old instance where it safely can, and starts no new instance before `retry_at`.
/// See `docs/decisions/0014-readiness-give-up.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaveUp {
    /// The node.
    pub node: NodeName,
    /// The instance given up on (incoming, or a first instance that never was ready). Never
    /// promoted; destroyed while it exists.
    pub instance_id: String,
    /// Its VMID.
    pub vmid: VmId,
    /// Give-ups of this node in a row (1 for the first).
    pub count: u32,
    /// No replacement (or, for a node without instance, no create) starts before this.
    pub retry_at: DateTime<Utc>,
    /// The node never had a ready instance (brand-new): it does not count against its
    /// disruption budgets, so it cannot hold up the other nodes' replacements.
    pub never_available: bool,
    /// The last readiness failure.
    pub detail: String,
}

/// Which part an instance plays for its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceRole {
    /// The instance serving the node.
    Current,
    /// A replacement being built.
    Incoming,
    /// A superseded instance waiting for its destroy.
    Retiring,
}

impl fmt::Display for InstanceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstanceRole::Current => "current",
            InstanceRole::Incoming => "incoming",
            InstanceRole::Retiring => "retiring",
        })
    }
}

/// The store's record of one instance: everything identity-proven destroy compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The node it backs.
    pub node: NodeName,
    /// Its role.
    pub role: InstanceRole,
    /// reborn's instance id (also in the marker).
    pub instance_id: String,
    /// VMID.
    pub vmid: VmId,
    /// PVE node.
    pub pve_node: PveNodeName,
    /// VM name.
    pub name: String,
    /// SMBIOS uuid read after the clone.
    pub smbios_uuid: String,
    /// Spec hash it was created with.
    pub spec_hash: String,
}

/// A VMID held for a node (any lease state: reserved, active or releasing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmidLease {
    /// The VMID.
    pub vmid: VmId,
    /// The node holding it.
    pub node: NodeName,
}

/// The breaker as recorded in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerRecord {
    /// Never tripped (or reset).
    #[default]
    Armed,
    /// Tripped: automatic destruction is held until a human releases it.
    Tripped {
        /// When.
        at: DateTime<Utc>,
        /// Why, as the plan reported it.
        reason: String,
    },
    /// Released by a human: taints and destroys from before `at` no longer count.
    Released {
        /// Who released it.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// The step of an in-flight journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InFlightKind {
    /// Clone → configure → start saga.
    Create,
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Network isolation.
    Isolate,
    /// Stop → destroy with purge.
    Destroy,
    /// Anything else the journal records.
    Other(String),
}

impl fmt::Display for InFlightKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InFlightKind::Create => f.write_str("create"),
            InFlightKind::Start => f.write_str("start"),
            InFlightKind::Stop => f.write_str("stop"),
            InFlightKind::Isolate => f.write_str("isolate"),
            InFlightKind::Destroy => f.write_str("destroy"),
            InFlightKind::Other(s) => f.write_str(s),
        }
    }
}

/// A journal entry still in `Intent`: the planner does not emit an action already running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// The node it is for.
    pub node: NodeName,
    /// The VMID it acts on or creates.
    pub vmid: Option<VmId>,
    /// The step.
    pub kind: InFlightKind,
    /// The PVE node the task runs on (for clone concurrency).
    pub pve_node: Option<PveNodeName>,
    /// The target storage of a clone (for per-storage concurrency).
    pub storage: Option<StorageId>,
}

/// Where a taint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaintSource {
    /// `reborn taint`.
    Cli,
    /// A Cerbos-derived TaintPolicy.
    Cerbos,
    /// The monitoring webhook.
    Webhook,
    /// Drift detection.
    Drift,
    /// A health check.
    Health,
}

impl fmt::Display for TaintSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaintSource::Cli => "cli",
            TaintSource::Cerbos => "cerbos",
            TaintSource::Webhook => "webhook",
            TaintSource::Drift => "drift",
            TaintSource::Health => "health",
        })
    }
}

/// One active taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    /// Store id.
    pub id: i64,
    /// The node.
    pub node: NodeName,
    /// The instance it marks; `None` = the node's current instance.
    pub instance_id: Option<String>,
    /// Where it came from.
    pub source: TaintSource,
    /// How serious it is (`Critical` means compromised: isolate at once).
    pub severity: Severity,
    /// What to do.
    pub action: TaintAction,
    /// With `Quarantine`: how long the replaced instance is kept stopped and isolated after
    /// `created_at` before it is destroyed (`None`: destroyed at once, as with `Replace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_retention: Option<model::Duration>,
    /// Human-readable reason (with evidence summary, e.g. Cerbos callIds).
    pub reason: String,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
}

/// The active taints (the operator passes only active ones: not cleared, not expired).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taints {
    /// Active taints.
    pub active: Vec<Taint>,
}

/// Breaker thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// Whether the breaker is on (default true).
    pub enabled: bool,
    /// Trip when more than this percentage of a budget's nodes (or of all nodes) are tainted
    /// at once (default 50).
    pub max_tainted_percent: u32,
    /// ... and at least this many of them are tainted (default 2: one tainted node alone never
    /// trips the breaker, whatever the budget's size).
    pub min_tainted: u32,
    /// Trip when more than this many automatic destroys would fall in the window (default 3).
    pub max_destroys: u32,
    /// The destroy window (default 10 minutes).
    pub window: model::Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            enabled: true,
            max_tainted_percent: 50,
            min_tainted: 2,
            max_destroys: 3,
            window: model::Duration::from_secs(600).expect("600s is a valid duration"),
        }
    }
}

/// Operator-wide policy: ownership, caps and breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// This operator instance (ownership tag `reborn-<id>`).
    pub operator_id: OperatorId,
    /// Global cap of replacements in flight (default 2).
    pub max_replacements_in_flight: u32,
    /// Clones at once per PVE node running the clone task (default 2).
    pub clones_per_pve_node: u32,
    /// Clones at once per target storage (default 4).
    pub clones_per_storage: u32,
    /// Breaker thresholds.
    pub breaker: BreakerPolicy,
}

impl Policy {
    /// The default policy for an operator instance.
    pub fn new(operator_id: OperatorId) -> Self {
        Policy {
            operator_id,
            max_replacements_in_flight: 2,
            clones_per_pve_node: 2,
            clones_per_storage: 4,
            breaker: BreakerPolicy::default(),
        }
    }
}
