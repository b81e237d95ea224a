//! PVE identifiers used in manifests: tags, node names, storage ids and bridge names.

use super::{ValueError, string_value};
use std::fmt;
use std::str::FromStr;

/// Implements `as_str`, `Display` and `ScalarValue` for a string newtype.
macro_rules! text_newtype {
    ($t:ident, $expected:literal) => {
        impl $t {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl crate::decode::ScalarValue for $t {
            const EXPECTED: &'static str = $expected;
        }
    };
}

/// A PVE tag: `[a-z0-9_][a-z0-9_+.-]*`. PVE compares tags case-insensitively and stores them
/// lower-cased, so only lower case is accepted here (otherwise the VM would always look drifted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PveTag(String);

impl FromStr for PveTag {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| Err(ValueError::new("PVE tag", s, reason));
        let mut chars = s.chars();
        match chars.next() {
            None => return err("must not be empty"),
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') => {
                return err("must start with a lower-case letter, digit or `_`");
            }
            Some(_) => {}
        }
        if let Some(c) = chars.find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '.'))
        }) {
            return err(&format!(
                "`{c}` is not allowed (use a-z, 0-9, `_`, `-`, `+`, `.`)"
            ));
        }
        Ok(PveTag(s.to_string()))
    }
}
text_newtype!(
    PveTag,
    "a PVE tag such as `jsonrag` (a-z, 0-9, `_`, `-`, `+`, `.`)"
);
string_value!(PveTag, "PveTag", {
    "type": "string",
    "description": "A PVE tag (lower case): `[a-z0-9_][a-z0-9_+.-]*`.",
    "pattern": "^[a-z0-9_][a-z0-9_+.-]*$"
});

/// The name of a PVE cluster node (`pve-node` format), e.g. `pve1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PveNodeName(String);

impl FromStr for PveNodeName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(PveNodeName(s.to_string()))
        } else {
            Err(ValueError::new(
                "PVE node name",
                s,
                "use letters, digits and `-`, not starting or ending with `-`",
            ))
        }
    }
}
text_newtype!(PveNodeName, "a PVE node name such as `pve1`");
string_value!(PveNodeName, "PveNodeName", {
    "type": "string",
    "description": "A PVE cluster node name.",
    "pattern": "^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"
});

/// A PVE storage id (`pve-storage-id` format), e.g. `local-lvm`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageId(String);

impl FromStr for StorageId {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() >= 2
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if ok {
            Ok(StorageId(s.to_string()))
        } else {
            Err(ValueError::new(
                "storage id",
                s,
                "use a lower-case letter, then a-z, 0-9, `-`, `_`, `.`, ending in a letter or digit",
            ))
        }
    }
}
text_newtype!(StorageId, "a PVE storage id such as `local-lvm`");
string_value!(StorageId, "StorageId", {
    "type": "string",
    "description": "A PVE storage id.",
    "pattern": "^[a-z][a-z0-9._-]*[a-z0-9]$"
});

/// A Linux bridge name as PVE's `net[n]` `bridge=` takes it, e.g. `vmbr0` (1-15 characters of
/// letters, digits, `_`, `.`, `-`; anything else could inject options into the network string).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BridgeName(String);

impl FromStr for BridgeName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=15).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(BridgeName(s.to_string()))
        } else {
            Err(ValueError::new(
                "bridge name",
                s,
                "use 1-15 letters, digits, `_`, `.` or `-`",
            ))
        }
    }
}
text_newtype!(BridgeName, "a bridge name such as `vmbr0`");
string_value!(BridgeName, "BridgeName", {
    "type": "string",
    "description": "A Linux bridge name, e.g. `vmbr0`.",
    "pattern": "^[a-zA-Z0-9_.-]{1,15}$"
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pve_tags_follow_the_pve_charset_in_lower_case() {
        assert!("jsonrag".parse::<PveTag>().is_ok());
        assert!("reborn.managed-1+x_y".parse::<PveTag>().is_ok());
        for bad in ["", "-a", "Prod", "a b", "a;b", "a,b"] {
            assert!(bad.parse::<PveTag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bridge_names_cannot_inject_net_options() {
        assert!("vmbr0".parse::<BridgeName>().is_ok());
        assert!("vmbr0,tag=5".parse::<BridgeName>().is_err());
        assert!("averyveryverylongbridge".parse::<BridgeName>().is_err());
    }

    #[test]
    fn storage_and_node_names_are_checked() {
        assert!("local-lvm".parse::<StorageId>().is_ok());
        assert!("Local".parse::<StorageId>().is_err());
        assert!("pve1".parse::<PveNodeName>().is_ok());
        assert!("pve_1".parse::<PveNodeName>().is_err());
    }
}
