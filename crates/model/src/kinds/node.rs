//! `Node`: one declared VM (gold image, VMID range, size, network, cloud-init, readiness, replacement).

use super::{ApiVersion, Metadata};
use crate::decode::{DResult, Decode, Decoder, Reported};
use crate::values::{
    BridgeName, Cidr, Duration, MemorySize, Name, PveNodeName, PveTag, StorageId, VmIdRange,
};
use crate::yaml::Yaml;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One declared VM. Its logical identity is `metadata.name`; the VM instance behind it (vmid,
/// SMBIOS UUID) changes on every replacement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Always `reborn.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Name and labels.
    pub metadata: Metadata,
    /// The desired VM.
    pub spec: NodeSpec,
}

impl Node {
    /// The node's name.
    pub fn name(&self) -> &Name {
        &self.metadata.name
    }
}

/// The desired state of a Node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Name of the GoldImage this node is cloned from (must be declared).
    pub gold_image: Name,
    /// VM ids this node's instances are allocated from; never overlapping another node's range.
    pub vmids: VmIdRange,
    /// Where the VM may run.
    pub placement: Placement,
    /// How the VM is cloned from the template.
    #[serde(default)]
    pub clone: CloneSpec,
    /// CPU and memory.
    pub resources: Resources,
    /// Network interfaces, in order (`net0`, `net1`, ...; `ipconfig0`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetworkInterface>,
    /// Cloud-init settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInit>,
    /// When a new instance counts as available.
    #[serde(default)]
    pub readiness: Readiness,
    /// How the node is replaced.
    #[serde(default)]
    pub replacement: Replacement,
    /// What to do when the live VM no longer matches this spec.
    #[serde(default)]
    pub drift: DriftPolicy,
    /// Extra PVE tags put on the VM (besides reborn's ownership tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<PveTag>,
}

/// Where a node's VM may be placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// PVE nodes the VM may run on (at least one). Nodes sharing a `role` label are spread across them.
    pub pve_nodes: Vec<PveNodeName>,
}

/// How a VM is cloned from its template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneSpec {
    /// `linked` (default; fast, shares the template's base disk) or `full`.
    #[serde(default)]
    pub mode: CloneMode,
    /// Target storage for a full clone; omitted = the template's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageId>,
}

/// Clone mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloneMode {
    /// A linked clone (PVE `full=0`).
    #[default]
    Linked,
    /// A full copy (PVE `full=1`).
    Full,
}

/// CPU and memory of the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (1-512).
    #[schemars(range(min = 1, max = 512))]
    pub cores: u16,
    /// Memory, e.g. `4GiB`.
    pub memory: MemorySize,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterface {
    /// The bridge, e.g. `vmbr0`.
    pub bridge: BridgeName,
    /// Fixed address with prefix, e.g. `10.0.10.21/24`; omitted = DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    /// Default gateway; must lie in `address`'s network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// Cloud-init settings (PVE `ciuser`, `sshkeys`, `cicustom user=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudInit {
    /// Default user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Authorised SSH public keys (one per entry, OpenSSH format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// User-data snippet as a PVE volume id, e.g. `local:snippets/worker.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

/// When a new instance counts as available: running, and every configured check passes within
/// `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Readiness {
    /// Require a guest-agent ping (default true).
    #[serde(default = "default_true")]
    pub guest_agent: bool,
    /// TCP port that must accept connections on the node's first address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tcp: Option<u16>,
    /// HTTP check: `GET http://<address>:<port><path>` must answer 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// How long to wait for readiness (default `5m`).
    #[serde(default = "default_readiness_timeout")]
    pub timeout: Duration,
}

fn default_true() -> bool {
    true
}

fn default_readiness_timeout() -> Duration {
    Duration::from_secs(300).expect("300s is a valid duration")
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            guest_agent: true,
            tcp: None,
            http: None,
            timeout: default_readiness_timeout(),
        }
    }
}

/// An HTTP readiness probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// Port.
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Path, starting with `/` (default `/`).
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/".to_string()
}

/// How a node is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replacement {
    /// `StopFirst` (default) or `SurgeFirst`.
    #[serde(default)]
    pub strategy: ReplacementStrategy,
}

/// Order of a replacement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReplacementStrategy {
    /// Stop the old instance, then clone and start the new one (for fixed addresses).
    #[default]
    StopFirst,
    /// Start the new instance and wait until Ready, then retire the old one (no fixed address).
    SurgeFirst,
}

/// What to do when the live VM has drifted from the spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DriftPolicy {
    /// Taint with source `drift` and replace (default: infrastructure is immutable).
    #[default]
    Replace,
    /// Only report the drift (event and status condition).
    Report,
}

impl Decode for NodeSpec {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(
            y,
            &[
                "goldImage",
                "vmids",
                "placement",
                "clone",
                "resources",
                "network",
                "cloudInit",
                "readiness",
                "replacement",
                "drift",
                "tags",
            ],
        )?;
        let gold_image = d.required(&m, "goldImage");
        let vmids = d.required(&m, "vmids");
        let placement = d.required(&m, "placement");
        let clone = d.or_default(&m, "clone");
        let resources = d.required(&m, "resources");
        let network: DResult<Vec<NetworkInterface>> = d.or_default(&m, "network");
        let cloud_init = d.optional(&m, "cloudInit");
        let readiness = d.or_default(&m, "readiness");
        let replacement: DResult<Replacement> = d.or_default(&m, "replacement");
        let drift = d.or_default(&m, "drift");
        let tags = d.or_default(&m, "tags");
        if let (Ok(network), Ok(replacement)) = (&network, &replacement)
            && replacement.strategy == ReplacementStrategy::SurgeFirst
            && let Some(i) = network.iter().position(|n| n.address.is_some())
        {
            let span = d
                .span_of(&format!("network[{i}].address"))
                .unwrap_or(y.span);
            let message = format!(
                "`{}.network[{i}].address`: a fixed address cannot be used with strategy SurgeFirst",
                d.path()
            );
            d.error(
                span,
                message,
                Some("old and new instance would hold the same address at once: use `strategy: StopFirst`, or drop the address (DHCP)".to_string()),
            );
            return Err(Reported);
        }
        let spec = NodeSpec {
            gold_image: gold_image?,
            vmids: vmids?,
            placement: placement?,
            clone: clone?,
            resources: resources?,
            network: network?,
            cloud_init: cloud_init?,
            readiness: readiness?,
            replacement: replacement?,
            drift: drift?,
            tags: tags?,
        };
        Ok(spec)
    }
}

impl Decode for Placement {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["pveNodes"])?;
        let pve_nodes: Vec<PveNodeName> = d.required(&m, "pveNodes")?;
        if pve_nodes.is_empty() {
            let message = format!("`{}.pveNodes` is empty", d.path());
            return Err(d.error(
                y.span,
                message,
                Some("list at least one PVE node, e.g. `[pve1]`".to_string()),
            ));
        }
        Ok(Placement { pve_nodes })
    }
}

impl Decode for CloneSpec {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["mode", "storage"])?;
        let mode = d.or_default(&m, "mode");
        let storage = d.optional(&m, "storage");
        Ok(CloneSpec {
            mode: mode?,
            storage: storage?,
        })
    }
}

impl Decode for CloneMode {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[("linked", CloneMode::Linked), ("full", CloneMode::Full)],
        )
    }
}

impl Decode for Resources {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["cores", "memory"])?;
        let cores = d.required_with(&m, "cores", |d, v| d.u16_in(v, 1, 512));
        let memory = d.required(&m, "memory");
        Ok(Resources {
            cores: cores?,
            memory: memory?,
        })
    }
}

impl Decode for NetworkInterface {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["bridge", "address", "gateway"])?;
        let bridge = d.required(&m, "bridge");
        let address: DResult<Option<Cidr>> = d.optional(&m, "address");
        let gateway: DResult<Option<IpAddr>> = d.optional(&m, "gateway");
        let (bridge, address, gateway) = (bridge?, address?, gateway?);
        if let Some(gw) = gateway {
            let span = d.span_of("gateway").unwrap_or(y.span);
            match address {
                None => {
                    let message = format!("`{}.gateway` is set but `address` is not", d.path());
                    return Err(d.error(
                        span,
                        message,
                        Some(
                            "a gateway needs a fixed address; add `address:` or remove `gateway:`"
                                .to_string(),
                        ),
                    ));
                }
                Some(addr) if !addr.contains(gw) => {
                    let message = format!(
                        "`{}.gateway`: {gw} is outside the network {} of address {addr}",
                        d.path(),
                        addr.network()
                    );
                    return Err(d.error(span, message, Some("the gateway must be reachable on the interface's own network; check the address's prefix length or the gateway".to_string())));
                }
                Some(addr) if addr.addr() == gw => {
                    let message = format!(
                        "`{}.gateway`: {gw} is the interface's own address",
                        d.path()
                    );
                    return Err(d.error(
                        span,
                        message,
                        Some("use the router's address as gateway".to_string()),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(NetworkInterface {
            bridge,
            address,
            gateway,
        })
    }
}

impl Decode for CloudInit {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["user", "sshKeys", "userData"])?;
        let user = d.optional(&m, "user");
        let ssh_keys: DResult<Vec<String>> = d.or_default(&m, "sshKeys");
        let user_data: DResult<Option<String>> = d.optional(&m, "userData");
        if let Ok(Some(volume)) = &user_data
            && !volume.contains(':')
        {
            let span = d.span_of("userData").unwrap_or(y.span);
            let message = format!("`{}.userData`: `{volume}` is not a PVE volume id", d.path());
            d.error(
                span,
                message,
                Some(
                    "write it as `<storage>:snippets/<file>`, e.g. `local:snippets/worker.yaml`"
                        .to_string(),
                ),
            );
            return Err(Reported);
        }
        Ok(CloudInit {
            user: user?,
            ssh_keys: ssh_keys?,
            user_data: user_data?,
        })
    }
}

impl Decode for Readiness {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["guestAgent", "tcp", "http", "timeout"])?;
        let guest_agent: DResult<Option<bool>> = d.optional(&m, "guestAgent");
        let tcp = d.optional_with(&m, "tcp", |d, v| d.u16_in(v, 1, 65535));
        let http = d.optional(&m, "http");
        let timeout: DResult<Option<Duration>> = d.optional(&m, "timeout");
        Ok(Readiness {
            guest_agent: guest_agent?.unwrap_or(true),
            tcp: tcp?,
            http: http?,
            timeout: timeout?.unwrap_or_else(default_readiness_timeout),
        })
    }
}

impl Decode for HttpProbe {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["port", "path"])?;
        let port = d.required_with(&m, "port", |d, v| d.u16_in(v, 1, 65535));
        let path: DResult<Option<String>> = d.optional(&m, "path");
        let (port, path) = (port?, path?.unwrap_or_else(default_path));
        if !path.starts_with('/') {
            let span = d.span_of("path").unwrap_or(y.span);
            let message = format!("`{}.path` must start with `/`", d.path());
            return Err(d.error(span, message, Some(format!("write `/{path}`"))));
        }
        Ok(HttpProbe { port, path })
    }
}

impl Decode for Replacement {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["strategy"])?;
        Ok(Replacement {
            strategy: d.or_default(&m, "strategy")?,
        })
    }
}

impl Decode for ReplacementStrategy {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[
                ("StopFirst", ReplacementStrategy::StopFirst),
                ("SurgeFirst", ReplacementStrategy::SurgeFirst),
            ],
        )
    }
}

impl Decode for DriftPolicy {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[
                ("Replace", DriftPolicy::Replace),
                ("Report", DriftPolicy::Report),
            ],
        )
    }
}
