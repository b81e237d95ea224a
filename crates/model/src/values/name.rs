//! `Name`: the name of any resource, a DNS label (RFC 1123).

use super::{ValueError, string_value};
use std::fmt;
use std::str::FromStr;

/// The name of a resource (`metadata.name`), and of the VM a Node becomes in PVE: a DNS label,
/// 1 to 63 characters of `a-z`, `0-9` and `-`, starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

/// The name of a Node (its logical identity; the VM behind it changes on every replacement).
pub type NodeName = Name;

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| Err(ValueError::new("name", s, reason));
        if s.is_empty() {
            return err("must not be empty");
        }
        if s.len() > 63 {
            return err("must be at most 63 characters");
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return err(&format!(
                "`{c}` is not allowed (use lower-case letters, digits and `-`)"
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return err("must start and end with a letter or digit");
        }
        Ok(Name(s.to_string()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl crate::decode::ScalarValue for Name {
    const EXPECTED: &'static str = "a DNS label such as `worker-1` (a-z, 0-9, `-`, at most 63)";
}

string_value!(Name, "Name", {
    "type": "string",
    "description": "A DNS label (RFC 1123): lower-case letters, digits and `-`, 1-63 characters.",
    "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_accepted() {
        for ok in ["worker-1", "a", "0", "jsonrag-ingress"] {
            assert_eq!(
                ok.parse::<Name>().map(|n| n.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn upper_case_underscores_and_edge_dashes_are_rejected() {
        for bad in ["Worker", "worker_1", "-a", "a-", "", &"a".repeat(64), "a.b"] {
            assert!(bad.parse::<Name>().is_err(), "{bad}");
        }
    }
}
