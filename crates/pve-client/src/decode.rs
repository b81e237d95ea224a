//! Decoding raw PVE answers without a connection (used by benchmarks and contract tests).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::client::Envelope;
use crate::types::ClusterVm;

/// Decodes the `data` of a successful PVE answer body (`{"data": ...}`).
pub fn data<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    envelope::<T>(body).map(|e| e.data)
}

/// Decodes a whole answer body. UTF-8 is validated once for the body (fast, vectorised) instead
/// of once per JSON string, which is most of serde_json's cost on `/cluster/resources`.
pub(crate) fn envelope<T: DeserializeOwned>(body: &[u8]) -> Result<Envelope<T>, serde_json::Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!("body is not UTF-8: {e}"))
    })?;
    serde_json::from_str(text)
}

/// Decodes a `GET /cluster/resources?type=vm` answer body.
///
/// The common shape (flat entries, no string escapes) goes through a single-pass scanner that
/// applies the same lenient rules as the serde types (see `fast_resources`); anything else, and
/// every error, goes through serde_json. The result vector is pre-sized from the body length (PVE
/// sends roughly 300 bytes per guest), which saves the grow-and-copy of a 10,000-entry vector.
pub fn cluster_resources(body: &[u8]) -> Result<Vec<ClusterVm>, serde_json::Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!("body is not UTF-8: {e}"))
    })?;
    let capacity = resources_capacity(body.len());
    match crate::fast_resources::cluster_resources(text, capacity) {
        Some(vms) => Ok(vms),
        None => cluster_resources_serde(text, capacity),
    }
}

fn resources_capacity(body_len: usize) -> usize {
    (body_len / 256 + 1).min(1 << 20)
}

/// The serde_json path of [`cluster_resources`] alone: the reference the fast path is tested
/// against, and what every body the fast path declines costs. For benchmarks; use
/// [`cluster_resources`].
#[doc(hidden)]
pub fn cluster_resources_serde_path(body: &[u8]) -> Result<Vec<ClusterVm>, serde_json::Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!("body is not UTF-8: {e}"))
    })?;
    cluster_resources_serde(text, resources_capacity(body.len()))
}

/// The serde_json path of [`cluster_resources`] (the reference the fast path is tested against).
pub(crate) fn cluster_resources_serde(
    text: &str,
    capacity: usize,
) -> Result<Vec<ClusterVm>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let vms = de.deserialize_map(DataField(SizedVec::<ClusterVm>(capacity, PhantomData)))?;
    de.end()?;
    Ok(vms)
}

/// Visits the envelope object, decoding `data` with the inner seed and skipping other keys.
struct DataField<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for DataField<S> {
    type Value = S::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a `data` field")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S::Value, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" && data.is_none() {
                data = Some(map.next_value_seed(self.0)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        data.ok_or_else(|| serde::de::Error::missing_field("data"))
    }
}

/// A `Vec<T>` seed with an initial capacity.
struct SizedVec<T>(usize, PhantomData<T>);

impl<T> Clone for SizedVec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SizedVec<T> {}

impl<'de, T: serde::Deserialize<'de>> DeserializeSeed<'de> for SizedVec<T> {
    type Value = Vec<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for SizedVec<T> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(self.0);
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VmId;
    use crate::upid::Upid;

    #[test]
    fn cluster_resources_needs_data_and_ignores_other_keys() {
        let vms =
            cluster_resources(br#"{"total":1,"data":[{"vmid":100,"node":"pve1","type":"qemu"}]}"#)
                .expect("decodes");
        assert_eq!(vms.len(), 1);
        assert!(cluster_resources(br#"{"total":1}"#).is_err());
        assert!(cluster_resources(br#"{"data":[]} trailing"#).is_err());
        assert!(
            cluster_resources(b"{\"data\":[]}")
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn non_utf8_body_is_a_decode_error() {
        assert!(data::<u32>(b"{\"data\":\"\xff\"}").is_err());
    }

    #[test]
    fn nextid_arrives_as_string_or_number() {
        assert_eq!(
            data::<VmId>(br#"{"data":"100"}"#).map(VmId::get).ok(),
            Some(100)
        );
        assert_eq!(
            data::<VmId>(br#"{"data":4103}"#).map(VmId::get).ok(),
            Some(4103)
        );
    }

    #[test]
    fn null_or_upid_where_either_is_documented() {
        assert_eq!(data::<Option<Upid>>(br#"{"data":null}"#).ok(), Some(None));
        let u = data::<Option<Upid>>(
            br#"{"data":"UPID:pve1:00001234:00ABCDEF:67000000:qmconfig:101:root@pam!reborn:"}"#,
        )
        .expect("decodes");
        assert_eq!(
            u.map(|u| u.task_type().to_owned()).as_deref(),
            Some("qmconfig")
        );
    }

    #[test]
    fn cluster_resources_envelope_with_extra_fields() {
        let vms = cluster_resources(
            br#"{"data":[{"id":"qemu/9000","vmid":9000,"node":"pve1","type":"qemu","status":"stopped","name":"debian-12-gold","template":1,"maxmem":"2147483648"}],"extra":true}"#,
        )
        .expect("decodes");
        assert_eq!(vms.len(), 1);
        assert!(vms[0].template);
        assert_eq!(vms[0].maxmem, Some(2_147_483_648));
    }
}
