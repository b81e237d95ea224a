//! `Duration`: a span of time written like `30s`, `5m`, `1h30m`, whole seconds.

use super::{ValueError, string_value};
use std::fmt;
use std::str::FromStr;

/// A positive span of time in whole seconds, written as one or more `<number><unit>` parts
/// with units `s`, `m`, `h`, `d`: `30s`, `5m`, `1h30m`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    secs: u64,
}

impl Duration {
    /// The longest duration accepted: 10 years, in seconds.
    pub const MAX_SECS: u64 = 10 * 365 * 86_400;

    /// A duration of `secs` seconds, if positive and at most [`Duration::MAX_SECS`].
    pub fn from_secs(secs: u64) -> Option<Self> {
        (1..=Self::MAX_SECS)
            .contains(&secs)
            .then_some(Duration { secs })
    }

    /// Whole seconds.
    pub fn as_secs(self) -> u64 {
        self.secs
    }

    /// As a [`std::time::Duration`].
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.secs)
    }
}

impl FromStr for Duration {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ValueError::new("duration", s, reason);
        if s.is_empty() {
            return Err(err("must not be empty"));
        }
        let mut total: u64 = 0;
        let mut rest = s;
        let mut last_unit_rank = usize::MAX;
        while !rest.is_empty() {
            let digits_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits_end == 0 {
                return Err(err(
                    "expected a number before each unit, as in `30s` or `1h30m`",
                ));
            }
            let n: u64 = rest[..digits_end]
                .parse()
                .map_err(|_| err("number is too large"))?;
            let after = &rest[digits_end..];
            let unit = after
                .chars()
                .next()
                .ok_or_else(|| err("missing unit (s, m, h or d)"))?;
            let (rank, secs) = match unit {
                'd' => (0, 86_400),
                'h' => (1, 3_600),
                'm' => (2, 60),
                's' => (3, 1),
                other => return Err(err(&format!("unknown unit `{other}` (use s, m, h or d)"))),
            };
            if last_unit_rank != usize::MAX && rank <= last_unit_rank {
                return Err(err(
                    "units must go from largest to smallest, each once (e.g. `1h30m`)",
                ));
            }
            last_unit_rank = rank;
            total = n
                .checked_mul(secs)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("too large"))?;
            rest = &after[unit.len_utf8()..];
        }
        Duration::from_secs(total).ok_or_else(|| err("must be at least 1s and at most 3650d"))
    }
}

impl fmt::Display for Duration {
    /// Canonical form, largest units first: `90s` → `1m30s`, `3600s` → `1h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.secs;
        for (unit, secs) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
            let n = rest / secs;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest -= n * secs;
            }
        }
        Ok(())
    }
}

impl crate::decode::ScalarValue for Duration {
    const EXPECTED: &'static str = "a duration such as `30s`, `5m` or `1h30m`";
}

string_value!(Duration, "Duration", {
    "type": "string",
    "description": "A duration: one or more <number><unit> parts, units d, h, m, s (largest first): `30s`, `5m`, `1h30m`.",
    "pattern": "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_to_seconds() {
        let secs = |t: &str| t.parse::<Duration>().map(Duration::as_secs);
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("5m"), Ok(300));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2d"), Ok(172_800));
    }

    #[test]
    fn display_is_canonical() {
        let show = |t: &str| t.parse::<Duration>().map(|d| d.to_string());
        assert_eq!(show("90s"), Ok("1m30s".to_string()));
        assert_eq!(show("3600s"), Ok("1h".to_string()));
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "0s",
            "5m1h",
            "1.5h",
            "5 m",
            "99999999999999999999s",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }
}
