//! Simulator configuration: the cluster (nodes, storages, preloaded VMs), credentials, timings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fault::Fault;

/// Everything the simulator needs to start. Every field has a default, so a partial YAML/JSON
/// file is enough (`#[serde(default)]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Cluster nodes. The first one is the node the API is "served from" (`localhost` alias).
    pub nodes: Vec<NodeConfig>,
    /// Storages (each defined once, enabled on `nodes` or on every node).
    pub storages: Vec<StorageConfig>,
    /// VMs present at start (templates by default).
    pub templates: Vec<TemplateConfig>,
    /// API tokens.
    pub tokens: Vec<TokenConfig>,
    /// Users that may log in with a password (`POST /access/ticket`).
    pub users: Vec<UserConfig>,
    /// Worker task durations.
    pub durations: Durations,
    /// pvestatd sample interval for `GET /cluster/resources` in milliseconds (PVE: 10 s).
    /// 0 disables the lag: name/status are always current.
    pub resources_lag_ms: u64,
    /// Time from VM start until the guest agent answers, in milliseconds.
    pub agent_delay_ms: u64,
    /// Addresses handed to VMs whose `ipconfig0` does not set a static `ip=`.
    pub dhcp_pool: DhcpPool,
    /// Seed for every random choice (MACs, UUIDs, PIDs, fault rates).
    pub seed: u64,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    pub tls: bool,
    /// Delay before auth-stage 401 responses in milliseconds (PVE: 3000).
    pub auth_failure_delay_ms: u64,
    /// Faults active from the start.
    pub faults: Vec<Fault>,
    /// `version` reported by `GET /version`.
    pub version: String,
    /// Lifetime of tickets from `POST /access/ticket`, in seconds (PVE: 7200).
    pub ticket_lifetime_secs: u64,
    /// Lower bound (inclusive) for `/cluster/nextid`.
    pub nextid_lower: u32,
    /// Resource pools (ids) that exist from the start; VMs join them through the `pool`
    /// parameter of create/clone.
    pub pools: Vec<String>,
}

/// One PVE node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name (`pve1`).
    pub name: String,
    /// CPU cores (`maxcpu`).
    pub cores: u32,
    /// Memory in MiB (`maxmem` = this × 1 MiB).
    pub memory_mib: u64,
    /// Whether the node is up; requests proxied to an offline node get 595.
    pub online: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "pve1".into(),
            cores: 16,
            memory_mib: 65536,
            online: true,
        }
    }
}

/// Kind of storage plugin; decides volume naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Directory storage (qcow2 files, `<vmid>/vm-<vmid>-disk-N.qcow2`).
    Dir,
    /// LVM-thin (`vm-<vmid>-disk-N`).
    Lvmthin,
    /// NFS (file based like `dir`).
    Nfs,
}

impl StorageKind {
    /// The plugin name PVE reports (`plugintype`, `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Dir => "dir",
            StorageKind::Lvmthin => "lvmthin",
            StorageKind::Nfs => "nfs",
        }
    }

    /// File based storages name volumes `<vmid>/<name>.qcow2`.
    pub fn file_based(self) -> bool {
        matches!(self, StorageKind::Dir | StorageKind::Nfs)
    }
}

/// One storage definition.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Storage id (`local-lvm`).
    pub id: String,
    /// Plugin type.
    #[serde(rename = "type")]
    pub kind: StorageKind,
    /// Same storage visible from every node (required for cross-node clones).
    pub shared: bool,
    /// Supports the `clone` feature (linked clones of templates).
    pub linked_clones: bool,
    /// Content types, comma separated (`images,rootdir`); `images` is needed for VM disks.
    pub content: String,
    /// Nodes where the storage is enabled; empty = all nodes.
    pub nodes: Vec<String>,
    /// Size in GiB (`maxdisk`/`total`).
    pub size_gib: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            id: "local-lvm".into(),
            kind: StorageKind::Lvmthin,
            shared: false,
            linked_clones: true,
            content: "images,rootdir".into(),
            nodes: Vec::new(),
            size_gib: 512,
        }
    }
}

/// A VM present at start (a template unless `template: false`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// VMID.
    pub vmid: u32,
    /// `name`.
    pub name: String,
    /// Node the VM lives on.
    pub node: String,
    /// Storage of the boot disk and the cloud-init drive.
    pub storage: String,
    /// Boot disk size in GiB.
    pub disk_gib: u64,
    /// `cores`.
    pub cores: u32,
    /// `memory` in MiB.
    pub memory_mib: u64,
    /// Convert to a template (`template: 1`, base volumes).
    pub template: bool,
    /// Extra/overriding raw config keys (`tags`, `description`, `ipconfig0`, ...).
    pub config: BTreeMap<String, String>,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            vmid: 9000,
            name: "debian-12-gold".into(),
            node: "pve1".into(),
            storage: "local-lvm".into(),
            disk_gib: 8,
            cores: 2,
            memory_mib: 2048,
            template: true,
            config: BTreeMap::new(),
        }
    }
}

/// Built-in roles (a subset of PVE's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Every privilege.
    Administrator,
    /// Read only (`*.Audit`).
    PVEAuditor,
    /// Power management, console, cloud-init/CD-ROM config, audit.
    PVEVMUser,
    /// Every `VM.*` privilege plus datastore allocation.
    PVEVMAdmin,
    /// Nothing.
    NoAccess,
}

/// An API token `USER@REALM!TOKENID` with its secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Full token id, e.g. `root@pam!reborn`.
    pub id: String,
    /// The secret (a UUID in real PVE).
    pub secret: String,
    /// Effective role of the token on `/`.
    pub role: Role,
    /// Privilege separation flag (reported only; the effective rights are `role`).
    pub privsep: bool,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("role", &self.role)
            .field("privsep", &self.privsep)
            .finish()
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            id: "root@pam!reborn".into(),
            secret: DEFAULT_TOKEN_SECRET.into(),
            role: Role::Administrator,
            privsep: false,
        }
    }
}

/// The default admin token's secret (a simulator: not a real credential).
pub const DEFAULT_TOKEN_SECRET: &str = "5f0c6a8e-2b7d-4c1e-9a3f-7d8e1b2c3a4f";

/// A user that can log in with a password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// `user@realm`.
    pub userid: String,
    /// Password.
    pub password: String,
    /// Role on `/`.
    pub role: Role,
    /// Disabled users cannot log in and their tokens fail.
    pub enabled: bool,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("userid", &self.userid)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            userid: "root@pam".into(),
            password: "demo".into(),
            role: Role::Administrator,
            enabled: true,
        }
    }
}

/// Worker task durations in milliseconds. 0 = the task finishes before the UPID is returned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Durations {
    /// Linked clone (`qmclone`).
    pub clone_ms: u64,
    /// Full clone (`qmclone` with `full=1` or from a non-template).
    pub full_clone_ms: u64,
    /// `qmstart`.
    pub start_ms: u64,
    /// `qmstop`.
    pub stop_ms: u64,
    /// `qmshutdown`.
    pub shutdown_ms: u64,
    /// `qmdestroy`.
    pub destroy_ms: u64,
    /// `qmtemplate`.
    pub template_ms: u64,
    /// `qmcreate`.
    pub create_ms: u64,
    /// `qmconfig` (POST config).
    pub config_ms: u64,
}

impl Default for Durations {
    fn default() -> Self {
        Self {
            clone_ms: 3000,
            full_clone_ms: 6000,
            start_ms: 1500,
            stop_ms: 1000,
            shutdown_ms: 3000,
            destroy_ms: 1500,
            template_ms: 1000,
            create_ms: 1000,
            config_ms: 200,
        }
    }
}

impl Durations {
    /// Every duration zero.
    pub fn zero() -> Self {
        Self {
            clone_ms: 0,
            full_clone_ms: 0,
            start_ms: 0,
            stop_ms: 0,
            shutdown_ms: 0,
            destroy_ms: 0,
            template_ms: 0,
            create_ms: 0,
            config_ms: 0,
        }
    }
}

/// A range of IPv4 addresses handed out to DHCP VMs, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpPool {
    /// First address (`10.0.99.100`).
    pub first: std::net::Ipv4Addr,
    /// Last address (inclusive).
    pub last: std::net::Ipv4Addr,
    /// Prefix length reported by the agent.
    pub prefix: u8,
}

impl Default for DhcpPool {
    fn default() -> Self {
        Self {
            first: std::net::Ipv4Addr::new(10, 0, 99, 100),
            last: std::net::Ipv4Addr::new(10, 0, 99, 250),
            prefix: 24,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        let node = |name: &str| NodeConfig {
            name: name.into(),
            ..NodeConfig::default()
        };
        let mut gold_cfg = BTreeMap::new();
        gold_cfg.insert("description".into(), "reborn gold image".into());
        Self {
            nodes: vec![node("pve1"), node("pve2")],
            storages: vec![
                StorageConfig {
                    id: "local".into(),
                    kind: StorageKind::Dir,
                    shared: false,
                    linked_clones: false,
                    content: "iso,vztmpl,backup,snippets".into(),
                    nodes: Vec::new(),
                    size_gib: 100,
                },
                StorageConfig::default(),
                StorageConfig {
                    id: "shared".into(),
                    kind: StorageKind::Nfs,
                    shared: true,
                    linked_clones: true,
                    content: "images,iso,snippets".into(),
                    nodes: Vec::new(),
                    size_gib: 2048,
                },
            ],
            templates: vec![
                TemplateConfig {
                    config: gold_cfg,
                    ..TemplateConfig::default()
                },
                TemplateConfig {
                    vmid: 9001,
                    name: "debian-12-shared".into(),
                    storage: "shared".into(),
                    ..TemplateConfig::default()
                },
            ],
            tokens: vec![TokenConfig::default()],
            users: vec![UserConfig::default()],
            durations: Durations::default(),
            resources_lag_ms: 10_000,
            agent_delay_ms: 5_000,
            dhcp_pool: DhcpPool::default(),
            seed: 1,
            tls: false,
            auth_failure_delay_ms: 3_000,
            faults: Vec::new(),
            version: "8.4.1".into(),
            ticket_lifetime_secs: 7200,
            nextid_lower: 100,
            pools: Vec::new(),
        }
    }
}

impl SimConfig {
    /// The default cluster with every duration and delay zero, the resources lag off and a
    /// fixed seed: for fast tests.
    pub fn fast() -> Self {
        Self {
            durations: Durations::zero(),
            resources_lag_ms: 0,
            agent_delay_ms: 0,
            auth_failure_delay_ms: 0,
            seed: 42,
            ..Self::default()
        }
    }

    pub(crate) fn auth_failure_delay(&self) -> Duration {
        Duration::from_millis(self.auth_failure_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_config_files_fill_in_defaults() {
        let cfg: SimConfig =
            serde_json::from_str(r#"{"tls": true, "durations": {"clone_ms": 0}}"#).expect("parse");
        assert!(cfg.tls);
        assert_eq!(cfg.durations.clone_ms, 0);
        assert_eq!(cfg.durations.start_ms, Durations::default().start_ms);
        assert_eq!(cfg.nodes.len(), 2);
        assert_eq!(cfg.templates[0].vmid, 9000);
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        assert!(serde_json::from_str::<SimConfig>(r#"{"nodez": []}"#).is_err());
    }

    #[test]
    fn token_secrets_are_not_in_debug_output() {
        let out = format!("{:?}", SimConfig::default());
        assert!(!out.contains(DEFAULT_TOKEN_SECRET));
        assert!(!out.contains("\"demo\""));
    }
}
