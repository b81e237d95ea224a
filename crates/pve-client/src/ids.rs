//! Validated identifiers: VM ids, node names, API token ids and secrets.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Why a string was rejected as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {why}")]
pub struct InvalidId {
    /// What was being parsed (`VM id`, `node name`, ...).
    pub kind: &'static str,
    /// The rejected input (never a secret).
    pub value: String,
    /// The rule it broke.
    pub why: &'static str,
}

impl InvalidId {
    fn new(kind: &'static str, value: impl Into<String>, why: &'static str) -> Self {
        Self {
            kind,
            value: value.into(),
            why,
        }
    }
}

/// A PVE guest id: `100..=999_999_999` (PVE format `pve-vmid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId(u32);

impl VmId {
    /// Smallest id PVE accepts.
    pub const MIN: u32 = 100;
    /// Largest id PVE accepts.
    pub const MAX: u32 = 999_999_999;

    /// Validates `id` against PVE's range.
    pub fn new(id: u32) -> Result<Self, InvalidId> {
        if (Self::MIN..=Self::MAX).contains(&id) {
            Ok(Self(id))
        } else {
            Err(InvalidId::new(
                "VM id",
                id.to_string(),
                "must be within 100..=999999999",
            ))
        }
    }

    /// The numeric id.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for VmId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // PVE's own pattern: ^[1-9][0-9]{2,8}$ (no sign, no leading zero).
        let valid_shape = s.len() >= 3
            && s.len() <= 9
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        if !valid_shape {
            return Err(InvalidId::new(
                "VM id",
                s,
                "must be 3 to 9 digits without a leading zero",
            ));
        }
        let n: u32 = s
            .parse()
            .map_err(|_| InvalidId::new("VM id", s, "not a number"))?;
        Self::new(n)
    }
}

impl TryFrom<u32> for VmId {
    type Error = InvalidId;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl Serialize for VmId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for VmId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = VmId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a VM id as a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VmId, E> {
                let n = u32::try_from(v).map_err(|_| E::custom("VM id out of range"))?;
                VmId::new(n).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VmId, E> {
                let n = u32::try_from(v).map_err(|_| E::custom("VM id out of range"))?;
                VmId::new(n).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VmId, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A PVE cluster node name (format `pve-node`: letters, digits and inner `-`).
///
/// Shared text: a cluster has a handful of nodes named by thousands of guests, so clones (and
/// the `/cluster/resources` decoder, which reuses one value per distinct name) do not allocate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// Validates a node name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidId> {
        Self::from_str_slice(&name.into())
    }

    /// Validates a node name, copying it once into shared storage.
    pub(crate) fn from_str_slice(name: &str) -> Result<Self, InvalidId> {
        let bytes = name.as_bytes();
        let ok = !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if ok {
            Ok(Self(Arc::from(name)))
        } else {
            Err(InvalidId::new(
                "node name",
                name,
                "must be letters, digits and inner '-'",
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeName {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NodeName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeName, E> {
                NodeName::from_str_slice(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// An API token id, `user@realm!tokenid` (e.g. `root@pam!reborn`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenId {
    full: String,
    at: usize,
    bang: usize,
}

impl TokenId {
    /// The user part including the realm (`root@pam`).
    pub fn user(&self) -> &str {
        &self.full[..self.bang]
    }

    /// The realm (`pam`).
    pub fn realm(&self) -> &str {
        &self.full[self.at + 1..self.bang]
    }

    /// The token name (`reborn`).
    pub fn token_name(&self) -> &str {
        &self.full[self.bang + 1..]
    }

    /// The full id as PVE spells it.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

fn is_pve_name(s: &str) -> bool {
    // PVE realm and token-id rule: [A-Za-z][A-Za-z0-9.\-_]+
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && s.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl FromStr for TokenId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| InvalidId::new("API token id", s, why);
        let bang = s.rfind('!').ok_or_else(|| bad("missing '!tokenid'"))?;
        let at = s[..bang]
            .rfind('@')
            .ok_or_else(|| bad("missing '@realm'"))?;
        let user = &s[..at];
        if user.is_empty()
            || user
                .chars()
                .any(|c| c.is_whitespace() || c == ':' || c == '/')
        {
            return Err(bad("user must be non-empty without whitespace, ':' or '/'"));
        }
        if !is_pve_name(&s[at + 1..bang]) || !is_pve_name(&s[bang + 1..]) {
            return Err(bad(
                "realm and token name must match [A-Za-z][A-Za-z0-9.-_]+",
            ));
        }
        Ok(Self {
            full: s.to_owned(),
            at,
            bang,
        })
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// A secret (API token secret or password). `Debug` and `Display` print `***`; the value is only
/// reachable through [`Secret::expose`], which the client calls when it builds a request header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_accepts_pve_range_only() {
        assert!(VmId::new(99).is_err());
        assert_eq!(VmId::new(100).map(VmId::get), Ok(100));
        assert!(VmId::new(999_999_999).is_ok());
        assert!(VmId::new(1_000_000_000).is_err());
        assert!("0100".parse::<VmId>().is_err());
        assert!("+100".parse::<VmId>().is_err());
        assert_eq!("4103".parse::<VmId>().map(VmId::get), Ok(4103));
    }

    #[test]
    fn vmid_decodes_from_number_or_string() {
        let a: VmId = serde_json::from_str("101").expect("number");
        let b: VmId = serde_json::from_str("\"101\"").expect("string");
        assert_eq!(a, b);
        assert!(serde_json::from_str::<VmId>("\"12\"").is_err());
        assert!(serde_json::from_str::<VmId>("-5").is_err());
    }

    #[test]
    fn node_name_decodes_from_a_string_only() {
        let n: NodeName = serde_json::from_str(r#""pve-a1""#).expect("valid");
        assert_eq!(n.as_str(), "pve-a1");
        assert_eq!(
            serde_json::to_string(&n).ok().as_deref(),
            Some(r#""pve-a1""#)
        );
        assert!(serde_json::from_str::<NodeName>(r#""pve_1""#).is_err());
        assert!(serde_json::from_str::<NodeName>("12").is_err());
    }

    #[test]
    fn node_name_follows_pve_node_format() {
        assert!(NodeName::new("pve1").is_ok());
        assert!(NodeName::new("pve-a-1").is_ok());
        for bad in ["", "-pve", "pve-", "pve_1", "pve 1", "pve/1"] {
            assert!(NodeName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn token_id_splits_user_realm_and_name() {
        let t: TokenId = "root@pam!reborn".parse().expect("valid");
        assert_eq!(t.user(), "root@pam");
        assert_eq!(t.realm(), "pam");
        assert_eq!(t.token_name(), "reborn");
        let t: TokenId = "ops@corp.example@pve!op-1"
            .parse()
            .expect("user may contain @");
        assert_eq!(t.user(), "ops@corp.example@pve");
        assert_eq!(t.realm(), "pve");
    }

    #[test]
    fn token_id_rejects_malformed_ids() {
        for bad in [
            "root@pam",
            "root!x",
            "@pam!x",
            "root@pam!",
            "root@pam!1abc",
            "ro ot@pam!x",
            "root@p!x",
        ] {
            assert!(bad.parse::<TokenId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("5e1f-very-secret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "5e1f-very-secret");
    }
}
