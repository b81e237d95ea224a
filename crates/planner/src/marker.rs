//! The ownership marks reborn puts on every VM it creates: the PVE tag and the description marker.

use model::{NodeName, Sha256Digest};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The first word of the marker line in a VM's description.
pub const MARKER_PREFIX: &str = "reborn:v1";

/// The id of one operator instance. It names the ownership tag `reborn-<id>`, so it uses the
/// characters a PVE tag allows: lower-case letters, digits and `-`, starting with a letter or
/// digit, at most 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorId(String);

impl OperatorId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The PVE tag marking a VM as managed by this operator instance: `reborn-<id>`.
    pub fn ownership_tag(&self) -> String {
        format!("reborn-{}", self.0)
    }
}

/// Why a text is not a valid [`OperatorId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid operator id `{text}`: use 1-40 lower-case letters, digits and `-`, starting with a letter or digit"
)]
pub struct OperatorIdError {
    /// The rejected text.
    pub text: String,
}

impl FromStr for OperatorId {
    type Err = OperatorIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=40).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(OperatorId(s.to_string()))
        } else {
            Err(OperatorIdError {
                text: s.chars().take(60).collect(),
            })
        }
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OperatorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OperatorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The machine-readable line reborn writes into the description of every VM it creates:
/// `reborn:v1 node=<node> instance=<id> spec=<hash> gold=<digest> operator=<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipMarker {
    /// The node (logical name) the VM is an instance of.
    pub node: NodeName,
    /// reborn's id for this instance.
    pub instance_id: String,
    /// [`crate::spec_hash`] of the spec the VM was created from.
    pub spec_hash: String,
    /// Digest of the gold image it was cloned from.
    pub gold_digest: Sha256Digest,
    /// The operator instance that created it.
    pub operator: OperatorId,
}

/// Why a description's marker line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// The line starts with `reborn:` but not `reborn:v1`.
    #[error("unknown marker version in `{line}`")]
    UnknownVersion {
        /// The offending line (shortened).
        line: String,
    },
    /// A field is missing, repeated, unknown or has an invalid value.
    #[error("invalid marker field `{field}` in `{line}`: {problem}")]
    Field {
        /// The field name.
        field: String,
        /// What is wrong.
        problem: String,
        /// The offending line (shortened).
        line: String,
    },
}

/// Whether a text is usable as an instance id or spec hash inside the marker (no spaces, no
/// `=`, printable ASCII, 1-80 characters).
fn token_ok(s: &str) -> bool {
    (1..=80).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Renders the marker line (no trailing newline).
pub fn format_marker(marker: &OwnershipMarker) -> String {
    format!(
        "{MARKER_PREFIX} node={} instance={} spec={} gold={} operator={}",
        marker.node, marker.instance_id, marker.spec_hash, marker.gold_digest, marker.operator
    )
}

/// Finds and parses the marker line in a VM description (PVE returns the description decoded,
/// one comment line per line). `Ok(None)`: no line starts with `reborn:`.
///
/// # Errors
/// A line starting with `reborn:` that is not a well-formed `reborn:v1` marker.
pub fn parse_marker(description: &str) -> Result<Option<OwnershipMarker>, MarkerError> {
    let Some(line) = description
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("reborn:"))
    else {
        return Ok(None);
    };
    let short: String = line.chars().take(200).collect();
    let rest = match line.strip_prefix(MARKER_PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest,
        _ => return Err(MarkerError::UnknownVersion { line: short }),
    };
    let field_err = |field: &str, problem: &str| MarkerError::Field {
        field: field.to_string(),
        problem: problem.to_string(),
        line: short.clone(),
    };
    let mut fields: [Option<&str>; 5] = [None; 5];
    const NAMES: [&str; 5] = ["node", "instance", "spec", "gold", "operator"];
    for part in rest.split_whitespace() {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| field_err(part, "expected `key=value`"))?;
        let i = NAMES
            .iter()
            .position(|n| *n == key)
            .ok_or_else(|| field_err(key, "unknown field"))?;
        if fields[i].replace(value).is_some() {
            return Err(field_err(key, "repeated"));
        }
    }
    let get = |i: usize| fields[i].ok_or_else(|| field_err(NAMES[i], "missing"));
    let node = get(0)?
        .parse::<NodeName>()
        .map_err(|e| field_err("node", &e.reason))?;
    let instance_id = get(1)?;
    if !token_ok(instance_id) {
        return Err(field_err("instance", "not a valid instance id"));
    }
    let spec_hash = get(2)?;
    if !token_ok(spec_hash) {
        return Err(field_err("spec", "not a valid hash"));
    }
    let gold_digest = get(3)?
        .parse::<Sha256Digest>()
        .map_err(|e| field_err("gold", &e.reason))?;
    let operator = get(4)?
        .parse::<OperatorId>()
        .map_err(|_| field_err("operator", "not a valid operator id"))?;
    Ok(Some(OwnershipMarker {
        node,
        instance_id: instance_id.to_string(),
        spec_hash: spec_hash.to_string(),
        gold_digest,
        operator,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> OwnershipMarker {
        OwnershipMarker {
            node: "worker-1".parse().expect("valid"),
            instance_id: "i4101-20261121100000".to_string(),
            spec_hash: "ab".repeat(32),
            gold_digest: format!("sha256:{}", "cd".repeat(32))
                .parse()
                .expect("valid"),
            operator: "prod".parse().expect("valid"),
        }
    }

    #[test]
    fn marker_round_trips_through_a_multi_line_description() {
        let m = marker();
        let description = format!("managed by reborn\n{}\nnotes", format_marker(&m));
        assert_eq!(parse_marker(&description), Ok(Some(m)));
    }

    #[test]
    fn description_without_marker_has_no_owner() {
        assert_eq!(parse_marker("web server\nowner: ops"), Ok(None));
    }

    #[test]
    fn malformed_markers_are_errors_not_ownership() {
        let good = format_marker(&marker());
        for bad in [
            good.replace("reborn:v1", "reborn:v2"),
            good.replace(" operator=prod", ""),
            format!("{good} node=worker-2"),
            good.replace("gold=sha256:", "gold=md5:"),
            good.replace("operator=prod", "operator=Prod"),
            format!("{good} extra=1"),
        ] {
            assert!(parse_marker(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ownership_tag_is_a_valid_pve_tag() {
        let id: OperatorId = "prod-1".parse().expect("valid");
        assert_eq!(id.ownership_tag(), "reborn-prod-1");
        assert!(id.ownership_tag().parse::<model::PveTag>().is_ok());
        assert!("".parse::<OperatorId>().is_err());
        assert!("-x".parse::<OperatorId>().is_err());
        assert!("a;b".parse::<OperatorId>().is_err());
    }
}
