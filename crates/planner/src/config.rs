//! The VM config keys reborn manages, how they are rendered for PVE, and the spec hash over them.

use model::{BridgeName, Cidr, NetworkInterface, NodeSpec, PveTag, Sha256Digest};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
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
        let tags = sorted_tags(&spec.tags).into_owned();
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

    /// [`ManagedConfig::differing_keys`] against [`ManagedConfig::from_spec`] of `spec`,
    /// without building that config (drift detection runs this for every node, every pass).
    pub(crate) fn differing_keys_from_spec(&self, spec: &NodeSpec) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.cores != spec.resources.cores {
            keys.push("cores");
        }
        if self.memory_mib != spec.resources.memory.mib() {
            keys.push("memory");
        }
        let same_networks = self.networks.len() == spec.network.len()
            && self.networks.iter().zip(&spec.network).all(|(a, b)| {
                a.bridge == b.bridge && a.address == b.address && a.gateway == b.gateway
            });
        if !same_networks {
            keys.push("network");
        }
        let same_cloud_init = match (&self.cloud_init, &spec.cloud_init) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.user == b.user && a.ssh_keys == b.ssh_keys && a.user_data == b.user_data
            }
            _ => false,
        };
        if !same_cloud_init {
            keys.push("cloud-init");
        }
        if self.tags[..] != sorted_tags(&spec.tags)[..] {
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

/// A node's tags sorted and de-duplicated; borrowed when they already are (the usual case).
fn sorted_tags(tags: &[PveTag]) -> Cow<'_, [PveTag]> {
    if tags.windows(2).all(|w| w[0] < w[1]) {
        Cow::Borrowed(tags)
    } else {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        Cow::Owned(tags)
    }
}

/// A gold digest as the spec hash input writes it: exactly `Sha256Digest`'s `Display` text
/// (`sha256:<64 lower-case hex digits>`), without formatting byte by byte.
pub(crate) fn gold_text(gold: &Sha256Digest) -> String {
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    push_hex(&mut text, gold.as_bytes());
    text
}

/// Appends `bytes` as lower-case hex digits (what `hex::encode` writes).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Lower-case hex of a SHA-256 digest.
fn hex_digest(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    push_hex(&mut out, digest);
    out
}

#[derive(Serialize)]
struct HashInput<'a, C> {
    v: u32,
    gold: &'a str,
    config: C,
}

/// [`ManagedConfig::from_spec`] borrowed from the spec: it serialises to the same JSON as that
/// config (same field names, order and values) without copying the spec.
#[derive(Serialize)]
struct SpecConfig<'a> {
    cores: u16,
    memory_mib: u64,
    networks: SpecNetworks<'a>,
    cloud_init: Option<SpecCloudInit<'a>>,
    tags: Cow<'a, [PveTag]>,
}

/// The interfaces, serialised as [`NetConfig`]s.
struct SpecNetworks<'a>(&'a [NetworkInterface]);

impl Serialize for SpecNetworks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|n| SpecNet {
            bridge: &n.bridge,
            address: &n.address,
            gateway: &n.gateway,
        }))
    }
}

/// One interface, serialised as a [`NetConfig`].
#[derive(Serialize)]
struct SpecNet<'a> {
    bridge: &'a BridgeName,
    address: &'a Option<Cidr>,
    gateway: &'a Option<IpAddr>,
}

/// Cloud-init keys, serialised as a [`CloudInitConfig`].
#[derive(Serialize)]
struct SpecCloudInit<'a> {
    user: &'a Option<String>,
    ssh_keys: &'a [String],
    user_data: &'a Option<String>,
}

/// Lower-case hex SHA-256 of the canonical JSON of `input`, or `None` if it does not serialise.
fn hash_json<T: Serialize>(input: &T) -> Option<String> {
    let mut bytes = Vec::with_capacity(256);
    serde_json::to_writer(&mut bytes, input).ok()?;
    Some(hex_digest(&Sha256::digest(&bytes)))
}

/// The hash of a managed config and the gold image it is cloned from: lower-case hex SHA-256 of
/// a canonical JSON document (`{"v":1,"gold":"sha256:..","config":{...}}`, fields in declaration
/// order). Stable across runs and platforms; changes when any managed key or the gold image does.
pub fn config_hash(config: &ManagedConfig, gold: &Sha256Digest) -> String {
    let gold_text = gold_text(gold);
    let input = HashInput {
        v: 1,
        gold: &gold_text,
        config,
    };
    // Serialising plain data with string keys cannot fail; fall back to Debug text if it ever did
    // so that the hash stays a pure function of its input.
    hash_json(&input)
        .unwrap_or_else(|| hex_digest(&Sha256::digest(format!("{config:?}{gold_text}").as_bytes())))
}

/// The spec hash recorded in a VM's marker: [`config_hash`] of the managed keys the spec asks
/// for. Placement, readiness, replacement strategy and VMID range are not part of it: changing
/// them does not replace running VMs.
pub fn spec_hash(spec: &NodeSpec, gold: &Sha256Digest) -> String {
    SpecHasher::new(gold).hash(spec)
}

/// [`spec_hash`] for many specs of one gold image: the SHA-256 state after the input's constant
/// head (`{"v":1,"gold":"sha256:..","config":`, more than one 64-byte block) is computed once,
/// so each spec costs the hash of its config only.
#[derive(Clone)]
pub(crate) struct SpecHasher {
    gold: Sha256Digest,
    head: Sha256,
}

impl SpecHasher {
    pub fn new(gold: &Sha256Digest) -> Self {
        // The compact JSON `serde_json` writes for `HashInput` up to its `config` value (the
        // digest's text is `sha256:` and hex digits: nothing to escape).
        let mut head = Sha256::new();
        head.update(br#"{"v":1,"gold":""#);
        head.update(gold_text(gold).as_bytes());
        head.update(br#"","config":"#);
        SpecHasher { gold: *gold, head }
    }

    /// The spec hash of `spec` with this gold image.
    pub fn hash(&self, spec: &NodeSpec) -> String {
        let config = SpecConfig {
            cores: spec.resources.cores,
            memory_mib: spec.resources.memory.mib(),
            networks: SpecNetworks(&spec.network),
            cloud_init: spec.cloud_init.as_ref().map(|c| SpecCloudInit {
                user: &c.user,
                ssh_keys: &c.ssh_keys,
                user_data: &c.user_data,
            }),
            tags: sorted_tags(&spec.tags),
        };
        let mut bytes = Vec::with_capacity(192);
        match serde_json::to_writer(&mut bytes, &config) {
            Ok(()) => {
                bytes.push(b'}');
                let mut hasher = self.head.clone();
                hasher.update(&bytes);
                hex_digest(&hasher.finalize())
            }
            // Cannot happen (plain data); the reference path keeps the result a pure function.
            Err(_) => config_hash(&ManagedConfig::from_spec(spec), &self.gold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec hash as first defined: serde_json of `{v, gold, config}` with the gold digest's
    /// `Display` text and `ManagedConfig::from_spec`, SHA-256, `hex::encode`.
    fn reference_hash(spec: &NodeSpec, gold: &Sha256Digest) -> String {
        #[derive(Serialize)]
        struct Input {
            v: u32,
            gold: String,
            config: ManagedConfig,
        }
        let input = Input {
            v: 1,
            gold: gold.to_string(),
            config: ManagedConfig::from_spec(spec),
        };
        hex::encode(Sha256::digest(
            serde_json::to_vec(&input).expect("serialises"),
        ))
    }

    fn spec(json: serde_json::Value) -> NodeSpec {
        serde_json::from_value(json).expect("valid spec")
    }

    fn specs() -> Vec<NodeSpec> {
        let base = serde_json::json!({
            "goldImage": "base",
            "vmids": {"from": 100, "to": 110},
            "placement": {"pveNodes": ["pve1"]},
            "resources": {"cores": 2, "memory": "4GiB"},
        });
        let mut full = base.clone();
        full["network"] = serde_json::json!([
            {"bridge": "vmbr0", "address": "10.0.0.5/24", "gateway": "10.0.0.1"},
            {"bridge": "vmbr1"},
        ]);
        full["cloudInit"] = serde_json::json!({
            "user": "ops \"quoted\"",
            "sshKeys": ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"],
            "userData": "local:snippets/user.yaml",
        });
        full["tags"] = serde_json::json!(["zeta", "alpha", "alpha", "jsonrag"]);
        let mut sorted = base.clone();
        sorted["tags"] = serde_json::json!(["alpha", "zeta"]);
        let mut empty_ci = base.clone();
        empty_ci["cloudInit"] = serde_json::json!({});
        vec![spec(base), spec(full), spec(sorted), spec(empty_ci)]
    }

    fn digests() -> Vec<Sha256Digest> {
        vec![
            Sha256Digest::from_bytes([0xab; 32]),
            Sha256Digest::from_bytes(std::array::from_fn(|i| u8::try_from(i * 8).unwrap_or(0))),
        ]
    }

    #[test]
    fn spec_hash_is_the_hash_of_the_canonical_document() {
        for gold in digests() {
            for spec in specs() {
                let expected = reference_hash(&spec, &gold);
                assert_eq!(spec_hash(&spec, &gold), expected);
                assert_eq!(
                    config_hash(&ManagedConfig::from_spec(&spec), &gold),
                    expected
                );
            }
        }
    }

    #[test]
    fn gold_text_is_the_digest_display() {
        for gold in digests() {
            assert_eq!(gold_text(&gold), gold.to_string());
        }
    }

    #[test]
    fn drift_keys_from_spec_match_a_comparison_with_the_built_config() {
        let specs = specs();
        for live in &specs {
            let live = ManagedConfig::from_spec(live);
            for spec in &specs {
                assert_eq!(
                    live.differing_keys_from_spec(spec),
                    live.differing_keys(&ManagedConfig::from_spec(spec))
                );
            }
        }
    }
}
