//! Attributes a decision to a node: by the caller's address (`peer.address`) or, optionally and spoofably, by a metadata key.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use model::{Attribution, AttributionSource};

use crate::decode::DecisionEntry;

/// Which node owns which address. Addresses come from the declared `Node` manifests
/// (`spec.network[].address`) and from what the guest agent reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddresses {
    by_ip: HashMap<IpAddr, BTreeSet<String>>,
    nodes: BTreeSet<String>,
}

impl NodeAddresses {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The declared addresses of these nodes.
    pub fn from_nodes<'a>(nodes: impl IntoIterator<Item = &'a model::Node>) -> Self {
        let mut map = NodeAddresses::new();
        for node in nodes {
            let name = node.name().as_str();
            map.add_node(name);
            for nic in &node.spec.network {
                if let Some(cidr) = &nic.address {
                    map.insert(name, cidr.addr());
                }
            }
        }
        map
    }

    /// Records that `node` exists (so a metadata key naming it is accepted).
    pub fn add_node(&mut self, node: &str) {
        self.nodes.insert(node.to_owned());
    }

    /// Records that `node` uses `ip` (declared, or reported by the guest agent).
    pub fn insert(&mut self, node: &str, ip: IpAddr) {
        self.add_node(node);
        self.by_ip.entry(ip).or_default().insert(node.to_owned());
    }

    /// Replaces every address learned for `node` (e.g. from a fresh guest-agent report).
    pub fn set_node_ips(&mut self, node: &str, ips: impl IntoIterator<Item = IpAddr>) {
        self.by_ip.retain(|_, owners| {
            owners.remove(node);
            !owners.is_empty()
        });
        self.add_node(node);
        for ip in ips {
            self.insert(node, ip);
        }
    }

    /// Forgets a node and its addresses.
    pub fn remove_node(&mut self, node: &str) {
        self.set_node_ips(node, []);
        self.nodes.remove(node);
    }

    /// Whether a node of that name is known.
    pub fn knows(&self, node: &str) -> bool {
        self.nodes.contains(node)
    }

    /// The single node owning `ip`. `Err` when two nodes claim it (attribution refused).
    pub fn node_for_ip(&self, ip: IpAddr) -> Result<Option<&str>, Vec<String>> {
        let ip = canonical(ip);
        match self.by_ip.get(&ip) {
            None => Ok(None),
            Some(owners) if owners.len() == 1 => Ok(owners.iter().next().map(String::as_str)),
            Some(owners) => Err(owners.iter().cloned().collect()),
        }
    }
}

/// A shared, updatable [`NodeAddresses`] (the operator learns addresses while tailing runs).
#[derive(Debug, Clone, Default)]
pub struct AddressBook(Arc<RwLock<NodeAddresses>>);

impl AddressBook {
    /// A book holding `map`.
    pub fn new(map: NodeAddresses) -> Self {
        AddressBook(Arc::new(RwLock::new(map)))
    }

    /// Replaces the whole map.
    pub fn replace(&self, map: NodeAddresses) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// Applies a change.
    pub fn update(&self, f: impl FnOnce(&mut NodeAddresses)) {
        f(&mut self.0.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Reads the map.
    pub fn read<R>(&self, f: impl FnOnce(&NodeAddresses) -> R) -> R {
        f(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Parses `peer.address` (`ip:port`, `[v6]:port` or a bare IP).
pub fn peer_ip(address: &str) -> Option<IpAddr> {
    if let Ok(sa) = address.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(canonical)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The outcome of attributing one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributed {
    /// The decision belongs to this node.
    Node {
        /// The node name.
        node: String,
        /// What identified it: `peer:<ip>` or `metadata:<key>`.
        via: String,
    },
    /// No node could be named; the reason says why.
    Unattributed(String),
}

/// Attributes a decision entry per the policy's `attribution`.
pub fn attribute(entry: &DecisionEntry, how: &Attribution, map: &NodeAddresses) -> Attributed {
    match how.by {
        AttributionSource::PeerAddress => {
            let Some(ip) = peer_ip(&entry.peer.address) else {
                return Attributed::Unattributed(format!(
                    "peer address {:?} is not an IP address",
                    entry.peer.address
                ));
            };
            match map.node_for_ip(ip) {
                Ok(Some(node)) => Attributed::Node {
                    node: node.to_owned(),
                    via: format!("peer:{ip}"),
                },
                Ok(None) => Attributed::Unattributed(format!("no node has address {ip}")),
                Err(owners) => Attributed::Unattributed(format!(
                    "address {ip} is claimed by several nodes: {}",
                    owners.join(", ")
                )),
            }
        }
        AttributionSource::MetadataKey => {
            let Some(key) = how.metadata_key.as_deref() else {
                return Attributed::Unattributed("no metadataKey configured".to_owned());
            };
            let key = key.to_ascii_lowercase();
            let values = entry.metadata.get(&key).map(|v| v.values.as_slice());
            match values {
                Some([one]) if map.knows(one) => Attributed::Node {
                    node: one.clone(),
                    via: format!("metadata:{key}"),
                },
                Some([one]) => {
                    Attributed::Unattributed(format!("metadata {key} names unknown node {one:?}"))
                }
                Some([]) | None => Attributed::Unattributed(format!("metadata {key} is absent")),
                Some(_) => {
                    Attributed::Unattributed(format!("metadata {key} has several values (refused)"))
                }
            }
        }
    }
}
