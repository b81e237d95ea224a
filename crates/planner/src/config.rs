//! The VM config keys reborn manages, how they are rendered for PVE, and the spec hash over them.

use model::{BridgeName, Cidr, NodeSpec, PveTag, Sha256Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The config keys reborn manages on a VM (cores, memory, network, cloud-init, tags), in a
/// normalised form: what [`spec_hash`] hashes and what drift detection compares. The operator
/// fills it from a live config read to detect out-of-band edits (MAC addresses, `link_down` and
/// reborn's own ownership tag are not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedConfig {
    /// CPU cores (`cores`).
    pub cores: u16,
    /// Memory in MiB (`memory`).
    pub memory_mib: u64,
    /// Interfaces in order (`net<i>` bridge and `ipconfig<i>`).
    pub networks: Vec<NetConfig>,
    /// Cloud-init keys (`ciuser`, `sshkeys`, `cicustom user=`); `None` when not declared.
    pub cloud_init: Option<CloudInitConfig>,
    /// The node's own tags, sorted and de-duplicated (without the ownership tag).
    pub tags: Vec<PveTag>,
}

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Bridge (`net<i>: virtio,bridge=<bridge>`).
    pub bridge: BridgeName,
    /// Fixed address (`ipconfig<i>: ip=<cidr>`); `None` = DHCP.
    pub address: Option<Cidr>,
    /// Gateway (`gw=`).
    pub gateway: Option<IpAddr>,
}

/// Cloud-init keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudInitConfig {
    /// `ciuser`.
    pub user: Option<String>,
    /// `sshkeys`, one key per entry.
    pub ssh_keys: Vec<String>,
    /// `cicustom user=<volume>`.
    pub user_data: Option<String>,
}

impl ManagedConfig {
    /// The managed config a node's spec asks for.
    pub fn from_spec(spec: &NodeSpec) -> Self {
        let mut tags = spec.tags.clone();
        tags.sort();
        tags.dedup();
        ManagedConfig {
            cores: spec.resources.cores,
            memory_mib: spec.resources.memory.mib(),
            networks: spec
                .network
                .iter()
                .map(|n| NetConfig {
                    bridge: n.bridge.clone(),
                    address: n.address,
                    gateway: n.gateway,
                })
                .collect(),
            cloud_init: spec.cloud_init.as_ref().map(|c| CloudInitConfig {
                user: c.user.clone(),
                ssh_keys: c.ssh_keys.clone(),
                user_data: c.user_data.clone(),
            }),
            tags,
        }
    }

    /// Names of the keys whose values differ between `self` and `other`
    /// (`cores`, `memory`, `network`, `cloud-init`, `tags`), in that order.
    pub fn differing_keys(&self, other: &ManagedConfig) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.cores != other.cores {
            keys.push("cores");
        }
        if self.memory_mib != other.memory_mib {
            keys.push("memory");
        }
        if self.networks != other.networks {
            keys.push("network");
        }
        if self.cloud_init != other.cloud_init {
            keys.push("cloud-init");
        }
        if self.tags != other.tags {
            keys.push("tags");
        }
        keys
    }

    /// The PVE config parameters that set these keys, in a fixed order: `cores`, `memory`,
    /// `net<i>`, `ipconfig<i>`, `ciuser`, `sshkeys` (newline-joined, NOT yet URL-encoded: PVE
    /// wants `sshkeys` URL-encoded, which is the executor's job), `cicustom`.
    pub fn to_pve_params(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("cores".to_string(), self.cores.to_string()),
            ("memory".to_string(), self.memory_mib.to_string()),
        ];
        for (i, n) in self.networks.iter().enumerate() {
            out.push((format!("net{i}"), format!("virtio,bridge={}", n.bridge)));
        }
        for (i, n) in self.networks.iter().enumerate() {
            let mut ip = match n.address {
                Some(a) => format!("ip={a}"),
                None => "ip=dhcp".to_string(),
            };
            if let Some(gw) = n.gateway {
                ip.push_str(&format!(",gw={gw}"));
            }
            out.push((format!("ipconfig{i}"), ip));
        }
        if let Some(ci) = &self.cloud_init {
            if let Some(user) = &ci.user {
                out.push(("ciuser".to_string(), user.clone()));
            }
            if !ci.ssh_keys.is_empty() {
                out.push(("sshkeys".to_string(), ci.ssh_keys.join("\n")));
            }
            if let Some(ud) = &ci.user_data {
                out.push(("cicustom".to_string(), format!("user={ud}")));
            }
        }
        out
    }
}

/// Everything the executor sets on a fresh clone: the managed keys, the tags (ownership tag
/// first, then the node's tags) and the description holding the ownership marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    /// The managed keys.
    pub managed: ManagedConfig,
    /// Every PVE tag to set, ownership tag first.
    pub tags: Vec<String>,
    /// The description: the marker line from [`crate::format_marker`].
    pub description: String,
}

impl VmConfig {
    /// All PVE config parameters: [`ManagedConfig::to_pve_params`], then `tags` (joined with
    /// `;`) and `description`.
    pub fn to_pve_params(&self) -> Vec<(String, String)> {
        let mut out = self.managed.to_pve_params();
        out.push(("tags".to_string(), self.tags.join(";")));
        out.push(("description".to_string(), self.description.clone()));
        out
    }
}

#[derive(Serialize)]
struct HashInput<'a> {
    v: u32,
    gold: String,
    config: &'a ManagedConfig,
}

/// The hash of a managed config and the gold image it is cloned from: lower-case hex SHA-256 of
/// a canonical JSON document (`{"v":1,"gold":"sha256:..","config":{...}}`, fields in declaration
/// order). Stable across runs and platforms; changes when any managed key or the gold image does.
pub fn config_hash(config: &ManagedConfig, gold: &Sha256Digest) -> String {
    let input = HashInput {
        v: 1,
        gold: gold.to_string(),
        config,
    };
    // Serialising plain data with string keys cannot fail; fall back to Debug text if it ever did
    // so that the hash stays a pure function of its input.
    let bytes =
        serde_json::to_vec(&input).unwrap_or_else(|_| format!("{config:?}{gold}").into_bytes());
    hex::encode(Sha256::digest(&bytes))
}

/// The spec hash recorded in a VM's marker: [`config_hash`] of the managed keys the spec asks
/// for. Placement, readiness, replacement strategy and VMID range are not part of it: changing
/// them does not replace running VMs.
pub fn spec_hash(spec: &NodeSpec, gold: &Sha256Digest) -> String {
    config_hash(&ManagedConfig::from_spec(spec), gold)
}
