//! `VmId` (a PVE VM id) and `VmIdRange` (the ids a Node may allocate from).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A PVE VM id: an integer from 100 to 999 999 999 (PVE's `pve-vmid` format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct VmId(u32);

impl VmId {
    /// The smallest VM id PVE accepts.
    pub const MIN: u32 = 100;
    /// The largest VM id PVE accepts.
    pub const MAX: u32 = 999_999_999;

    /// A VM id, if `n` is within [`VmId::MIN`]..=[`VmId::MAX`].
    pub fn new(n: u32) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&n).then_some(VmId(n))
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for VmId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        VmId::new(n).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "VM id {n} is outside {}..={}",
                VmId::MIN,
                VmId::MAX
            ))
        })
    }
}

impl schemars::JsonSchema for VmId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VmId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "description": "A PVE VM id (100-999999999).",
            "minimum": VmId::MIN,
            "maximum": VmId::MAX
        })
    }
}

impl crate::decode::Decode for VmId {
    fn decode(
        y: &crate::yaml::Yaml,
        d: &mut crate::decode::Decoder<'_>,
    ) -> crate::decode::DResult<Self> {
        let n = d.integer(y, u64::from(VmId::MIN), u64::from(VmId::MAX))?;
        u32::try_from(n)
            .ok()
            .and_then(VmId::new)
            .ok_or(crate::decode::Reported)
    }
}

/// An inclusive range of VM ids a Node allocates its instances from, e.g. `{from: 4100, to: 4199}`.
/// It must hold at least two ids: during a replacement the old and the new instance coexist.
/// Ranges of different Nodes must not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmIdRange {
    /// First id of the range.
    pub from: VmId,
    /// Last id of the range (inclusive).
    pub to: VmId,
}

impl VmIdRange {
    /// Whether `id` lies in the range.
    pub fn contains(&self, id: VmId) -> bool {
        self.from <= id && id <= self.to
    }

    /// Whether the two ranges share at least one id.
    pub fn overlaps(&self, other: &VmIdRange) -> bool {
        self.from <= other.to && other.from <= self.to
    }

    /// How many ids the range holds.
    pub fn len(&self) -> u32 {
        self.to.get().saturating_sub(self.from.get()) + 1
    }

    /// Always false: a range holds at least one id. (Here for clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The ids of the range in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = VmId> + use<> {
        (self.from.get()..=self.to.get()).filter_map(VmId::new)
    }
}

impl fmt::Display for VmIdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

impl crate::decode::Decode for VmIdRange {
    fn decode(
        y: &crate::yaml::Yaml,
        d: &mut crate::decode::Decoder<'_>,
    ) -> crate::decode::DResult<Self> {
        let m = d.mapping(y, &["from", "to"])?;
        let from: crate::decode::DResult<VmId> = d.required(&m, "from");
        let to: crate::decode::DResult<VmId> = d.required(&m, "to");
        let (from, to) = (from?, to?);
        if from > to {
            let message = format!(
                "`{}`: VMID range {from}-{to} is empty (`from` is after `to`)",
                d.path()
            );
            return Err(d.error(y.span, message, Some("swap `from` and `to`".to_string())));
        }
        if from == to {
            let message = format!("`{}`: VMID range {from}-{to} holds a single id", d.path());
            return Err(d.error(
                y.span,
                message,
                Some(
                    "a replacement needs two ids at once (old and new instance): widen the range"
                        .to_string(),
                ),
            ));
        }
        Ok(VmIdRange { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: u32, b: u32) -> VmIdRange {
        VmIdRange {
            from: VmId::new(a).expect("valid"),
            to: VmId::new(b).expect("valid"),
        }
    }

    #[test]
    fn vmid_bounds_follow_pve() {
        assert!(VmId::new(99).is_none());
        assert!(VmId::new(100).is_some());
        assert!(VmId::new(999_999_999).is_some());
        assert!(VmId::new(1_000_000_000).is_none());
    }

    #[test]
    fn ranges_overlap_when_they_share_an_id() {
        assert!(range(4100, 4199).overlaps(&range(4199, 4299)));
        assert!(!range(4100, 4199).overlaps(&range(4200, 4299)));
        assert_eq!(range(4100, 4199).len(), 100);
        assert!(range(4100, 4199).contains(VmId::new(4150).expect("valid")));
    }

    #[test]
    fn vmid_deserialises_only_within_bounds() {
        assert!(serde_json::from_str::<VmId>("4100").is_ok());
        assert!(serde_json::from_str::<VmId>("42").is_err());
    }
}
