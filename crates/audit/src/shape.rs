//! Serde types that check a JSON value has the shape an owned type would need (`Value`, `String`, a map, a list) and keep nothing, or borrow a string.
//!
//! Each one accepts exactly the input its owned counterpart accepts from serde_json (the same
//! type checks, string escapes and number ranges), so the borrowed decoder rejects the same
//! lines as [`crate::decode::decode_line`] without building the parts evaluation never reads.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Any JSON value, checked like `serde_json::Value` (numbers in range, valid escapes), kept
/// nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AnyShape;

impl<'de> Deserialize<'de> for AnyShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

/// The visitor of [`AnyShape`], for visitors that accept any value.
pub(crate) struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = AnyShape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_i64<E>(self, _: i64) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_u64<E>(self, _: u64) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_f64<E>(self, _: f64) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_str<E>(self, _: &str) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_unit<E>(self) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_none<E>(self) -> Result<AnyShape, E> {
        Ok(AnyShape)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<AnyShape, D::Error> {
        AnyShape::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyShape, A::Error> {
        while seq.next_element::<AnyShape>()?.is_some() {}
        Ok(AnyShape)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyShape, A::Error> {
        while map.next_key::<StrShape>()?.is_some() {
            map.next_value::<AnyShape>()?;
        }
        Ok(AnyShape)
    }
}

/// A JSON string, checked like `String`, kept nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StrShape;

impl<'de> Deserialize<'de> for StrShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrShape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, _: &str) -> Result<StrShape, E> {
                Ok(StrShape)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<StrShape, E> {
                std::str::from_utf8(v)
                    .map(|_| StrShape)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_string(V)
    }
}

/// A JSON object whose keys and values have the shapes `K` and `V` (like `BTreeMap<K, V>` or
/// `serde_json::Map`), kept nowhere.
pub(crate) struct MapShape<K = StrShape, V = AnyShape>(PhantomData<(K, V)>);

impl<K, V> Default for MapShape<K, V> {
    fn default() -> Self {
        MapShape(PhantomData)
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for MapShape<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Vis<K, V> {
            type Value = MapShape<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_key::<K>()?.is_some() {
                    map.next_value::<V>()?;
                }
                Ok(MapShape::default())
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

/// A JSON array of `T` (like `Vec<T>`), kept nowhere.
pub(crate) struct SeqShape<T = AnyShape>(PhantomData<T>);

impl<T> Default for SeqShape<T> {
    fn default() -> Self {
        SeqShape(PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SeqShape<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Vis<T> {
            type Value = SeqShape<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(SeqShape::default())
            }
        }
        d.deserialize_seq(Vis(PhantomData))
    }
}

/// A JSON string, borrowed from the line when it has no escapes (checked like `String`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Str<'_> {
    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Str<'a>, E> {
                std::str::from_utf8(v)
                    .map(|s| Str(Cow::Owned(s.to_owned())))
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
        }
        d.deserialize_string(V(PhantomData))
    }
}
