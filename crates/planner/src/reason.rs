//! Why an action is planned or held: typed reasons and blockers with a human `Display`.

use crate::inputs::{InFlightKind, InstanceRole, TaintSource};
use chrono::{DateTime, Utc};
use model::{PveNodeName, VmId, VmIdRange};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an action is wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reason {
    /// The node has no instance.
    Missing,
    /// The recorded instance's VM is gone (or its VMID now holds another VM).
    InstanceGone {
        /// The record's instance id.
        instance_id: String,
        /// Its VMID.
        vmid: VmId,
        /// Its role.
        role: InstanceRole,
    },
    /// The instance is stopped.
    Stopped {
        /// Its role.
        role: InstanceRole,
    },
    /// A taint asks for replacement.
    Tainted {
        /// Taint id.
        taint: i64,
        /// Its source.
        source: TaintSource,
        /// Its reason.
        reason: String,
    },
    /// A critical or isolating taint: the instance is compromised.
    Compromised {
        /// Taint id.
        taint: i64,
        /// Its source.
        source: TaintSource,
        /// Its reason.
        reason: String,
    },
    /// The instance was created from a different spec or gold image than declared now.
    SpecChanged {
        /// Hash in the VM's marker.
        recorded: String,
        /// Hash of the current declaration.
        declared: String,
    },
    /// Managed config keys were edited outside reborn.
    ConfigEdited {
        /// The keys that differ.
        keys: Vec<String>,
    },
    /// The incoming instance is running and ready.
    IncomingReady {
        /// Its instance id.
        instance_id: String,
        /// Its VMID.
        vmid: VmId,
    },
    /// The instance was superseded by a replacement.
    Superseded {
        /// The superseded instance.
        instance_id: String,
    },
    /// The node was deleted from the desired state.
    NodeDeleted,
    /// A VM owned by this operator with no store record, whose VMID is leased to its node
    /// (a create interrupted before its record was written).
    Unrecorded {
        /// The instance id from its marker.
        instance_id: String,
    },
    /// The operator gave up waiting for this node's new instance to become ready: it is
    /// destroyed, and the old instance (if any, and not compromised) serves again.
    ReadinessAbandoned {
        /// The instance given up on.
        instance_id: String,
        /// Its VMID.
        vmid: VmId,
        /// Give-ups of the node in a row.
        count: u32,
        /// The last readiness failure.
        detail: String,
    },
    /// The superseded instance is quarantined (taint action `Quarantine`): it is kept
    /// isolated and stopped until the quarantine ends.
    Quarantined {
        /// The quarantined instance.
        instance_id: String,
        /// The taint asking for the quarantine.
        taint: i64,
        /// When the quarantine ends (taint raised + retention).
        until: DateTime<Utc>,
    },
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("node has no instance"),
            Reason::InstanceGone {
                instance_id,
                vmid,
                role,
            } => write!(f, "{role} instance {instance_id} (VM {vmid}) is gone"),
            Reason::Stopped { role } => write!(f, "{role} instance is stopped"),
            Reason::Tainted {
                taint,
                source,
                reason,
            } => write!(f, "taint {taint} from {source}: {reason}"),
            Reason::Compromised {
                taint,
                source,
                reason,
            } => write!(f, "compromised: taint {taint} from {source}: {reason}"),
            Reason::SpecChanged { recorded, declared } => write!(
                f,
                "drift: spec changed (VM built from {}, declared {})",
                short(recorded),
                short(declared)
            ),
            Reason::ConfigEdited { keys } => {
                write!(f, "drift: edited outside reborn: {}", keys.join(", "))
            }
            Reason::IncomingReady { instance_id, vmid } => {
                write!(f, "incoming instance {instance_id} (VM {vmid}) is ready")
            }
            Reason::Superseded { instance_id } => {
                write!(f, "instance {instance_id} was superseded")
            }
            Reason::NodeDeleted => f.write_str("node was deleted"),
            Reason::Unrecorded { instance_id } => write!(
                f,
                "owned VM of instance {instance_id} has no record (interrupted create)"
            ),
            Reason::ReadinessAbandoned {
                instance_id,
                vmid,
                count,
                detail,
            } => write!(
                f,
                "gave up on instance {instance_id} (VM {vmid}): never ready ({detail}); give-up {count} in a row"
            ),
            Reason::Quarantined {
                instance_id,
                taint,
                until,
            } => write!(
                f,
                "instance {instance_id} is quarantined until {} (taint {taint})",
                until.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        }
    }
}

/// Why a wanted action is not planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "blockedBy", rename_all = "camelCase")]
pub enum BlockedBy {
    /// A disruption budget is used up.
    Budget {
        /// Budget name.
        budget: String,
        /// Unavailable nodes it covers.
        unavailable: u32,
        /// Its `maxUnavailable`.
        max: u32,
    },
    /// The circuit breaker is tripped.
    Breaker {
        /// Why it tripped.
        detail: String,
    },
    /// The global cap of replacements in flight is reached.
    ReplacementCap {
        /// Replacements in flight.
        in_flight: u32,
        /// The cap.
        max: u32,
    },
    /// The PVE node running the clone has its clone slots in use.
    PveNodeClones {
        /// The PVE node.
        pve_node: PveNodeName,
        /// Clones in flight there.
        in_flight: u32,
        /// The cap.
        max: u32,
    },
    /// The target storage has its clone slots in use.
    StorageClones {
        /// The storage.
        storage: String,
        /// Clones in flight to it.
        in_flight: u32,
        /// The cap.
        max: u32,
    },
    /// The gold image is not declared.
    GoldImageUndeclared {
        /// Its name.
        gold_image: String,
    },
    /// The gold template is not verified.
    TemplateUnverified {
        /// The gold image.
        gold_image: String,
        /// Why.
        detail: String,
    },
    /// The VM has a config lock.
    Locked {
        /// VMID.
        vmid: VmId,
        /// Lock reason.
        lock: String,
    },
    /// No free VMID is left in the node's range.
    NoVmidLeft {
        /// The range.
        range: VmIdRange,
    },
    /// No allowed PVE node is online with enough free memory.
    NoPveNodeCapacity {
        /// Memory needed.
        memory_mib: u64,
    },
    /// A step for this node or VM is already running.
    InFlight {
        /// The step.
        kind: InFlightKind,
        /// The VMID, if any.
        vmid: Option<VmId>,
    },
    /// The new instance is not ready yet.
    AwaitingReadiness {
        /// Its VMID.
        vmid: VmId,
    },
    /// The new instance failed its readiness check; it is checked again with backoff until
    /// the operator gives up on it (then [`Reason::ReadinessAbandoned`]).
    ReadinessFailed {
        /// Its VMID.
        vmid: VmId,
    },
    /// The VM's state is unknown (PVE node offline or PVE lagging).
    StatusUnknown {
        /// VMID.
        vmid: VmId,
    },
    /// The live VM does not match the recorded identity; destroying it is refused.
    IdentityMismatch {
        /// VMID.
        vmid: VmId,
        /// What differs.
        detail: String,
    },
    /// The instance is isolated and kept for forensics (taint action `Isolate`).
    KeptForForensics {
        /// The taint.
        taint: i64,
    },
    /// Drift is only reported for this node (drift policy `Report`).
    DriftReportOnly,
    /// An owned VM with no record that cannot be adopted.
    CannotAdopt {
        /// VMID.
        vmid: VmId,
        /// Why.
        detail: String,
    },
    /// Earlier new instances of this node never became ready: the next one waits.
    RetryBackoff {
        /// Give-ups of the node in a row.
        count: u32,
        /// When the next attempt may start.
        until: DateTime<Utc>,
    },
    /// The instance is compromised (or quarantined): it is never started again.
    Compromised {
        /// VMID.
        vmid: VmId,
    },
    /// The superseded instance is quarantined: kept stopped and isolated, for a person to
    /// inspect, until the retention has passed since its taint was raised.
    Quarantined {
        /// VMID.
        vmid: VmId,
        /// The taint asking for the quarantine.
        taint: i64,
        /// When the quarantine ends; the destroy follows (identity-proven, breaker-checked).
        until: DateTime<Utc>,
    },
}

impl fmt::Display for BlockedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockedBy::Budget {
                budget,
                unavailable,
                max,
            } => write!(f, "budget {budget} {unavailable}/{max} used"),
            BlockedBy::Breaker { detail } => write!(f, "breaker tripped: {detail}"),
            BlockedBy::ReplacementCap { in_flight, max } => {
                write!(f, "replacements in flight {in_flight}/{max}")
            }
            BlockedBy::PveNodeClones {
                pve_node,
                in_flight,
                max,
            } => write!(f, "clones on {pve_node} {in_flight}/{max}"),
            BlockedBy::StorageClones {
                storage,
                in_flight,
                max,
            } => write!(f, "clones to storage {storage} {in_flight}/{max}"),
            BlockedBy::GoldImageUndeclared { gold_image } => {
                write!(f, "gold image {gold_image} is not declared")
            }
            BlockedBy::TemplateUnverified { gold_image, detail } => {
                write!(f, "template of {gold_image} not verified: {detail}")
            }
            BlockedBy::Locked { vmid, lock } => write!(f, "VM {vmid} is locked ({lock})"),
            BlockedBy::NoVmidLeft { range } => write!(f, "no free VMID left in {range}"),
            BlockedBy::NoPveNodeCapacity { memory_mib } => {
                write!(f, "no allowed PVE node online with {memory_mib} MiB free")
            }
            BlockedBy::InFlight { kind, vmid } => match vmid {
                Some(v) => write!(f, "{kind} of VM {v} in flight"),
                None => write!(f, "{kind} in flight"),
            },
            BlockedBy::AwaitingReadiness { vmid } => write!(f, "waiting for VM {vmid} to be ready"),
            BlockedBy::ReadinessFailed { vmid } => {
                write!(f, "VM {vmid} failed its readiness check (checked again)")
            }
            BlockedBy::StatusUnknown { vmid } => write!(f, "state of VM {vmid} unknown"),
            BlockedBy::IdentityMismatch { vmid, detail } => {
                write!(f, "VM {vmid} identity mismatch: {detail}")
            }
            BlockedBy::KeptForForensics { taint } => {
                write!(
                    f,
                    "isolated for forensics (taint {taint}); untaint to replace"
                )
            }
            BlockedBy::DriftReportOnly => f.write_str("drift policy is Report"),
            BlockedBy::CannotAdopt { vmid, detail } => {
                write!(f, "cannot adopt VM {vmid}: {detail}")
            }
            BlockedBy::RetryBackoff { count, until } => write!(
                f,
                "gave up on {count} new instance(s) in a row; next try after {}",
                until.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            BlockedBy::Compromised { vmid } => {
                write!(f, "VM {vmid} is compromised: never restarted")
            }
            BlockedBy::Quarantined { vmid, taint, until } => write!(
                f,
                "VM {vmid} quarantined until {} (taint {taint})",
                until.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        }
    }
}
