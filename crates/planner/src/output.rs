//! The planner's output: a `Plan` of actions (each with its reason), holds and breaker status.

use crate::config::VmConfig;
use crate::inputs::InstanceRole;
use crate::reason::{BlockedBy, Reason};
use chrono::{DateTime, Utc};
use model::{CloneMode, Name, NodeName, PveNodeName, Sha256Digest, StorageId, VmId};
use serde::{Deserialize, Serialize};

/// What the next pass does and why, and what it cannot do and why not.
///
/// Per node, actions are a sequence: the executor runs them in order and stops that node's
/// sequence at the first failure (e.g. a StopFirst `Stop` then `Create`). Different nodes are
/// independent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// When it was planned (the `now` input).
    pub planned_at: DateTime<Utc>,
    /// Actions in execution order.
    pub actions: Vec<Action>,
    /// Wanted actions that are blocked.
    pub holds: Vec<Hold>,
    /// The circuit breaker.
    pub breaker: BreakerStatus,
    /// Per budget: unavailable nodes it covers after this plan, and its limit.
    pub budgets: Vec<BudgetUsage>,
}

impl Plan {
    /// Whether there is nothing to do (holds may remain).
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// The node it is for.
    pub node: NodeName,
    /// What to do.
    pub kind: ActionKind,
    /// Why.
    pub reason: Reason,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ActionKind {
    /// Lease the VMID, clone, configure, start, record the instance: one bounded saga.
    Create(Box<CreateInstance>),
    /// Start a stopped instance.
    Start(VmRef),
    /// Stop an instance (StopFirst replacement).
    Stop(VmRef),
    /// Set `link_down=1` on every interface of a compromised instance.
    Isolate(VmRef),
    /// Stop and destroy (purge) a VM after re-reading it and proving its identity.
    Destroy(ExpectedIdentity),
    /// Record: the incoming instance becomes the current one; the previous current one (if
    /// any) becomes retiring.
    PromoteIncoming {
        /// The incoming instance.
        instance_id: String,
        /// Its VMID.
        vmid: VmId,
        /// The current instance it supersedes.
        supersedes: Option<String>,
    },
    /// Record: drop an instance record (and its lease) whose VM is gone. Touches no VM.
    ForgetInstance {
        /// The instance.
        instance_id: String,
        /// Its VMID.
        vmid: VmId,
    },
    /// Record: write the instance record of an owned VM whose create was interrupted before
    /// its record was written. Touches no VM.
    AdoptInstance {
        /// The record to write.
        record: AdoptedInstance,
    },
}

impl ActionKind {
    /// A short verb: `create`, `start`, `stop`, `isolate`, `destroy`, `promote`, `forget`, `adopt`.
    pub fn verb(&self) -> &'static str {
        match self {
            ActionKind::Create(_) => "create",
            ActionKind::Start(_) => "start",
            ActionKind::Stop(_) => "stop",
            ActionKind::Isolate(_) => "isolate",
            ActionKind::Destroy(_) => "destroy",
            ActionKind::PromoteIncoming { .. } => "promote",
            ActionKind::ForgetInstance { .. } => "forget",
            ActionKind::AdoptInstance { .. } => "adopt",
        }
    }

    /// The VMID of the existing VM this action touches in PVE (none for record-only actions
    /// and for `Create`, whose VMID is new).
    pub fn touched_vmid(&self) -> Option<VmId> {
        match self {
            ActionKind::Start(r) | ActionKind::Stop(r) | ActionKind::Isolate(r) => Some(r.vmid),
            ActionKind::Destroy(id) => Some(id.vmid),
            _ => None,
        }
    }
}

/// An existing instance an action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRef {
    /// VMID.
    pub vmid: VmId,
    /// PVE node.
    pub pve_node: PveNodeName,
    /// Instance id (from the record and marker).
    pub instance_id: String,
}

/// What the live VM must be before it may be destroyed: re-read it immediately before the
/// destroy and refuse unless vmid, name, SMBIOS uuid and the marker's instance id all match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedIdentity {
    /// VMID.
    pub vmid: VmId,
    /// PVE node.
    pub pve_node: PveNodeName,
    /// VM name.
    pub name: String,
    /// SMBIOS uuid.
    pub smbios_uuid: String,
    /// Instance id in the ownership marker.
    pub instance_id: String,
    /// The record to remove afterwards (`None` for an orphan without record).
    pub recorded: bool,
}

/// A record to write for an owned VM found without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedInstance {
    /// Role it gets.
    pub role: InstanceRole,
    /// Instance id.
    pub instance_id: String,
    /// VMID.
    pub vmid: VmId,
    /// PVE node.
    pub pve_node: PveNodeName,
    /// VM name.
    pub name: String,
    /// SMBIOS uuid.
    pub smbios_uuid: String,
    /// Spec hash from its marker.
    pub spec_hash: String,
}

/// Everything the create saga needs; nothing is left to decide at execution time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateInstance {
    /// Role of the new instance (`Current` for a missing node, `Incoming` for a replacement).
    pub role: InstanceRole,
    /// New instance id (written into the marker).
    pub instance_id: String,
    /// VMID to lease and clone into.
    pub vmid: VmId,
    /// PVE node the VM is placed on (clone `target` when it differs from the template's node).
    pub pve_node: PveNodeName,
    /// The gold template.
    pub template: TemplateSource,
    /// Linked or full.
    pub clone_mode: CloneMode,
    /// Target storage (full clones only).
    pub storage: Option<StorageId>,
    /// VM name.
    pub name: String,
    /// Spec hash (also in the marker).
    pub spec_hash: String,
    /// Store generation of the spec.
    pub generation: u64,
    /// Config to set after the clone.
    pub config: VmConfig,
    /// Start after configuring.
    pub start: bool,
}

/// The verified template to clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSource {
    /// Gold image name.
    pub gold_image: Name,
    /// Template VMID.
    pub vmid: VmId,
    /// PVE node holding it (where the clone task runs).
    pub pve_node: PveNodeName,
    /// Expected digest (re-checked by the executor before cloning).
    pub digest: Sha256Digest,
}

/// A wanted action that is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The node.
    pub node: NodeName,
    /// What would be done (`create`, `stop`, `destroy`, ...).
    pub wanted: String,
    /// What blocks it.
    pub blocked_by: BlockedBy,
    /// Why it is wanted.
    pub reason: Reason,
}

/// The circuit breaker after this plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStatus {
    /// Its state.
    pub state: BreakerState,
    /// Automatic destroys counted in the window (before this plan).
    pub destroys_in_window: u32,
    /// Destroys this plan emits.
    pub destroys_planned: u32,
    /// The limit.
    pub max_destroys: u32,
}

impl BreakerStatus {
    /// Whether automatic destruction is held.
    pub fn is_tripped(&self) -> bool {
        matches!(self.state, BreakerState::Tripped { .. })
    }
}

/// Breaker state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum BreakerState {
    /// The breaker is off by policy.
    Disabled,
    /// Armed, not tripped.
    Armed,
    /// Released by a human; counting restarts at `at`.
    Released {
        /// Who.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Tripped: no automatic destruction until released.
    Tripped {
        /// Why.
        detail: String,
        /// `true` when this plan trips it: the operator records the trip, emits an event and
        /// sets a condition.
        newly: bool,
    },
}

/// A budget's use after the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUsage {
    /// Budget name.
    pub budget: String,
    /// Nodes it covers.
    pub nodes: u32,
    /// Unavailable nodes it covers once this plan's actions ran.
    pub unavailable: u32,
    /// Its `maxUnavailable`.
    pub max: u32,
}
