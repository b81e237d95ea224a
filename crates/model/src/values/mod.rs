//! Typed values that manifests are made of; each parses from and serialises to a string (or integer).

mod crypto;
mod duration;
mod memory;
mod name;
mod net;
mod pve;
mod selector;
mod vmid;

pub use crypto::{Ed25519PublicKey, Sha256Digest};
pub use duration::Duration;
pub use memory::MemorySize;
pub use name::{Name, NodeName};
pub use net::Cidr;
pub use pve::{BridgeName, PveNodeName, PveTag, StorageId};
pub(crate) use selector::LabelsField;
pub use selector::{LabelRequirement, LabelSelector, Labels, SelectorOperator};
pub use vmid::{VmId, VmIdRange};

/// Error returned when a typed value cannot be parsed from its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{text}`: {reason}")]
pub struct ValueError {
    /// What kind of value was expected (e.g. "memory size").
    pub what: &'static str,
    /// The text that was given (shortened when long).
    pub text: String,
    /// Why it is not valid.
    pub reason: String,
}

impl ValueError {
    pub(crate) fn new(what: &'static str, text: &str, reason: impl Into<String>) -> Self {
        ValueError {
            what,
            text: crate::yaml::shorten(text),
            reason: reason.into(),
        }
    }
}

/// Implements `Serialize` (via `Display`), `Deserialize` (via `FromStr`) and `JsonSchema`
/// (a string with the given schema) for a string-valued newtype.
macro_rules! string_value {
    ($t:ty, $name:literal, $schema:tt) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
        crate::decode::decode_scalar!($t);
    };
}
pub(crate) use string_value;
