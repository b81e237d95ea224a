//! Serde helpers for what PVE really sends: numbers as strings, 0/1 booleans, absent fields.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

pub(crate) struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer, possibly as a string")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v).map(Some).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() && v >= 0.0 {
            // PVE sometimes numifies byte counters through floating point.
            Ok(Some(v.round() as u64))
        } else {
            Err(E::custom("negative or non-finite number"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<u64>().map(Some).or_else(|_| {
            v.parse::<f64>()
                .map_err(E::custom)
                .and_then(|f| self.visit_f64(f))
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `u64` from a number or a numeric string; `null`/absent give `None`.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(U64Visitor)
}

/// `u64` from a number or a numeric string; `null` gives 0.
pub(crate) fn u64_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(opt_u64(d)?.unwrap_or(0))
}

pub(crate) struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, possibly as a string")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse().map(Some).map_err(E::custom)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `f64` from a number or a numeric string; `null`/absent give `None`.
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(F64Visitor)
}

pub(crate) struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean as 0/1, \"0\"/\"1\" or true/false")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Ok(v != 0)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Ok(v != 0)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        Ok(v != 0.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v.trim() {
            "1" | "true" | "on" | "yes" => Ok(true),
            "0" | "false" | "off" | "no" | "" => Ok(false),
            other => Err(E::custom(format_args!("not a boolean: {other:?}"))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A PVE boolean (`0`/`1`, also as strings or JSON booleans); `null`/absent give `false`.
pub(crate) fn bool01<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolVisitor)
}

pub(crate) struct StringVisitor;

impl Visitor<'_> for StringVisitor {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A string that PVE may also send as a number (a VM named `123`); `null`/absent give `None`.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(StringVisitor)
}

/// A required string that PVE may also send as a number.
pub(crate) fn req_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_string(d)?.ok_or_else(|| de::Error::custom("expected a string, got null"))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "super::opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "super::bool01")]
        b: bool,
        #[serde(default, deserialize_with = "super::opt_f64")]
        f: Option<f64>,
        #[serde(default, deserialize_with = "super::opt_string")]
        s: Option<String>,
    }

    fn parse(json: &str) -> Sample {
        serde_json::from_str(json).expect("decodes")
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        assert_eq!(parse(r#"{"n": 2048}"#).n, Some(2048));
        assert_eq!(parse(r#"{"n": "2048"}"#).n, Some(2048));
        assert_eq!(parse(r#"{"n": 8589934592}"#).n, Some(8_589_934_592));
        assert_eq!(parse(r#"{"n": null}"#).n, None);
        assert_eq!(parse(r#"{}"#).n, None);
        assert_eq!(parse(r#"{"f": "0.25"}"#).f, Some(0.25));
        assert!(serde_json::from_str::<Sample>(r#"{"n": "lots"}"#).is_err());
    }

    #[test]
    fn booleans_arrive_as_zero_one() {
        assert!(parse(r#"{"b": 1}"#).b);
        assert!(!parse(r#"{"b": 0}"#).b);
        assert!(parse(r#"{"b": "1"}"#).b);
        assert!(parse(r#"{"b": true}"#).b);
        assert!(!parse(r#"{}"#).b);
    }

    #[test]
    fn strings_may_arrive_as_numbers() {
        assert_eq!(parse(r#"{"s": 123}"#).s.as_deref(), Some("123"));
        assert_eq!(parse(r#"{"s": "web"}"#).s.as_deref(), Some("web"));
    }
}
