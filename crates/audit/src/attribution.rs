//! Attributes a decision to a node: by the caller's address (`peer.address`) or, optionally and spoofably, by a metadata key.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use model::{Attribution, AttributionSource};

use crate::decode::{DecisionEntry, RequestMetadata};

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
    let ip = peer_ip(&entry.peer.address);
    match attribute_with(
        &entry.peer.address,
        ip,
        || Cow::Borrowed(&entry.metadata),
        how,
        map,
    ) {
        Ok((node, via)) => Attributed::Node {
            node: node.to_owned(),
            via: via.to_string(),
        },
        Err(why) => Attributed::Unattributed(why.to_string()),
    }
}

/// What identified the node of an attributed decision (`peer:<ip>` or `metadata:<key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    /// The peer address.
    Peer(IpAddr),
    /// A metadata key (lower-case).
    Metadata(String),
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Peer(ip) => write!(f, "peer:{ip}"),
            Via::Metadata(key) => write!(f, "metadata:{key}"),
        }
    }
}

/// Why a decision was not attributed (displayed only when logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal<'a> {
    NotAnIp(&'a str),
    NoNode(IpAddr),
    SharedAddress(IpAddr, Vec<String>),
    NoMetadataKey,
    UnknownNode(String, String),
    MetadataAbsent(String),
    SeveralValues(String),
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAnIp(a) => write!(f, "peer address {a:?} is not an IP address"),
            Refusal::NoNode(ip) => write!(f, "no node has address {ip}"),
            Refusal::SharedAddress(ip, owners) => write!(
                f,
                "address {ip} is claimed by several nodes: {}",
                owners.join(", ")
            ),
            Refusal::NoMetadataKey => f.write_str("no metadataKey configured"),
            Refusal::UnknownNode(key, one) => {
                write!(f, "metadata {key} names unknown node {one:?}")
            }
            Refusal::MetadataAbsent(key) => write!(f, "metadata {key} is absent"),
            Refusal::SeveralValues(key) => {
                write!(f, "metadata {key} has several values (refused)")
            }
        }
    }
}

/// [`attribute`] from the parts it reads: the peer address and its parsed IP, and the
/// metadata (only read for `MetadataKey` attribution). The node name is borrowed from `map`.
pub(crate) fn attribute_with<'a, 'm, 'd>(
    peer_address: &'a str,
    peer_ip: Option<IpAddr>,
    metadata: impl FnOnce() -> Cow<'d, RequestMetadata>,
    how: &Attribution,
    map: &'m NodeAddresses,
) -> Result<(&'m str, Via), Refusal<'a>> {
    match how.by {
        AttributionSource::PeerAddress => {
            let ip = peer_ip.ok_or(Refusal::NotAnIp(peer_address))?;
            match map.node_for_ip(ip) {
                Ok(Some(node)) => Ok((node, Via::Peer(ip))),
                Ok(None) => Err(Refusal::NoNode(ip)),
                Err(owners) => Err(Refusal::SharedAddress(ip, owners)),
            }
        }
        AttributionSource::MetadataKey => {
            let key = how
                .metadata_key
                .as_deref()
                .ok_or(Refusal::NoMetadataKey)?
                .to_ascii_lowercase();
            let metadata = metadata();
            let values = metadata.get(&key).map(|v| v.values.as_slice());
            match values {
                Some([one]) => match map.nodes.get(one.as_str()) {
                    Some(node) => Ok((node.as_str(), Via::Metadata(key))),
                    None => Err(Refusal::UnknownNode(key, one.clone())),
                },
                Some([]) | None => Err(Refusal::MetadataAbsent(key)),
                Some(_) => Err(Refusal::SeveralValues(key)),
            }
        }
    }
}
