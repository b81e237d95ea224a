//! Instance records (which VM currently backs a node) and VMID leases.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The identity of one VM instance reborn created for a node: everything identity-proven
/// destroy compares with the live VM before touching it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// reborn's id for this instance (also written into the VM's description marker).
    pub instance_id: String,
    /// The node (logical name) it backs.
    pub node: String,
    /// The PVE VMID.
    pub vmid: u32,
    /// The PVE node it lives on.
    pub pve_node: String,
    /// The VM name in PVE.
    pub name: String,
    /// The SMBIOS UUID PVE generated at clone time.
    pub smbios_uuid: String,
    /// Hash of the spec it was created from.
    pub spec_hash: String,
    /// Digest of the gold image it was cloned from.
    pub gold_digest: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether it is the node's current instance. At most one per node; a superseded record
    /// stays until [`Op::RemoveInstance`](crate::Op::RemoveInstance) (after its destroy).
    pub current: bool,
}

/// Where a VMID lease is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Recorded before the clone; the VM may or may not exist yet.
    Reserved,
    /// The clone finished and the VM is the node's instance.
    Active,
    /// The VM is being destroyed; the VMID is not reusable until the lease is released.
    Releasing,
}

impl LeaseState {
    /// Every state.
    pub const ALL: [LeaseState; 3] = [
        LeaseState::Reserved,
        LeaseState::Active,
        LeaseState::Releasing,
    ];

    /// The lowercase name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Reserved => "reserved",
            LeaseState::Active => "active",
            LeaseState::Releasing => "releasing",
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeaseState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LeaseState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown lease state {s:?}"))
    }
}

/// A VMID held for a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmidLease {
    /// The leased VMID.
    pub vmid: u32,
    /// The node holding it.
    pub node: String,
    /// When it was leased (store clock).
    pub leased_at: DateTime<Utc>,
    /// Where the lease is.
    pub state: LeaseState,
}
