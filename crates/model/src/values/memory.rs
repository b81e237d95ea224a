//! `MemorySize`: an amount of memory with a binary unit (`512MiB`, `4GiB`), kept in MiB for PVE.

use super::{ValueError, string_value};
use std::fmt;
use std::str::FromStr;

/// An amount of VM memory, written with a binary unit: `512MiB`, `4GiB`, `1TiB`.
/// Stored in MiB, the unit of PVE's `memory` option. At least 16 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize {
    mib: u64,
}

impl MemorySize {
    /// The smallest size PVE accepts, in MiB.
    pub const MIN_MIB: u64 = 16;

    /// A size of `mib` MiB, if at least [`MemorySize::MIN_MIB`].
    pub fn from_mib(mib: u64) -> Option<Self> {
        (Self::MIN_MIB..=u64::from(u32::MAX))
            .contains(&mib)
            .then_some(MemorySize { mib })
    }

    /// The size in MiB (PVE's `memory` value).
    pub fn mib(self) -> u64 {
        self.mib
    }

    /// The size in bytes (PVE's `maxmem`).
    pub fn bytes(self) -> u64 {
        self.mib.saturating_mul(1024 * 1024)
    }
}

impl FromStr for MemorySize {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ValueError::new("memory size", s, reason);
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits_end);
        if number.is_empty() {
            return Err(err("must start with a whole number"));
        }
        let n: u64 = number.parse().map_err(|_| err("number is too large"))?;
        let factor = match unit {
            "MiB" => 1,
            "GiB" => 1024,
            "TiB" => 1024 * 1024,
            "" => return Err(err("missing unit (MiB, GiB or TiB)")),
            "M" | "MB" | "Mi" | "m" | "mb" | "mib" => {
                return Err(err(&format!("unit `{unit}` is ambiguous; write `MiB`")));
            }
            "G" | "GB" | "Gi" | "g" | "gb" | "gib" => {
                return Err(err(&format!("unit `{unit}` is ambiguous; write `GiB`")));
            }
            other => {
                return Err(err(&format!(
                    "unknown unit `{other}` (use MiB, GiB or TiB)"
                )));
            }
        };
        let mib = n.checked_mul(factor).ok_or_else(|| err("too large"))?;
        MemorySize::from_mib(mib).ok_or_else(|| {
            err(&format!(
                "must be from {} MiB to {} MiB",
                MemorySize::MIN_MIB,
                u32::MAX
            ))
        })
    }
}

impl fmt::Display for MemorySize {
    /// The largest unit that represents the size exactly: `4GiB`, `1536MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mib % (1024 * 1024) == 0 {
            write!(f, "{}TiB", self.mib / (1024 * 1024))
        } else if self.mib % 1024 == 0 {
            write!(f, "{}GiB", self.mib / 1024)
        } else {
            write!(f, "{}MiB", self.mib)
        }
    }
}

impl crate::decode::ScalarValue for MemorySize {
    const EXPECTED: &'static str = "a memory size such as `512MiB` or `4GiB`";
}

string_value!(MemorySize, "MemorySize", {
    "type": "string",
    "description": "Memory with a binary unit: `512MiB`, `4GiB`, `1TiB` (at least 16MiB).",
    "pattern": "^[0-9]+(MiB|GiB|TiB)$"
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_stored_in_mib() {
        assert_eq!("512MiB".parse::<MemorySize>().map(MemorySize::mib), Ok(512));
        assert_eq!("4GiB".parse::<MemorySize>().map(MemorySize::mib), Ok(4096));
        assert_eq!(
            "1TiB".parse::<MemorySize>().map(MemorySize::mib),
            Ok(1024 * 1024)
        );
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        let s = |t: &str| t.parse::<MemorySize>().map(|m| m.to_string());
        assert_eq!(s("4096MiB"), Ok("4GiB".to_string()));
        assert_eq!(s("1536MiB"), Ok("1536MiB".to_string()));
    }

    #[test]
    fn decimal_or_missing_units_are_rejected() {
        for bad in [
            "4GB",
            "4G",
            "4096",
            "4.5GiB",
            "GiB",
            "8MiB",
            "-1GiB",
            "99999999999999999999GiB",
        ] {
            assert!(bad.parse::<MemorySize>().is_err(), "{bad}");
        }
    }
}
