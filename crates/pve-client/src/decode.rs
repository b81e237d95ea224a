//! Decoding raw PVE answers without a connection (used by benchmarks and contract tests).

use serde::de::DeserializeOwned;

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
pub fn cluster_resources(body: &[u8]) -> Result<Vec<ClusterVm>, serde_json::Error> {
    data(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VmId;
    use crate::upid::Upid;

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
