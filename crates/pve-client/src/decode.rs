//! Decoding raw PVE answers without a connection (used by benchmarks and contract tests).

use serde::de::DeserializeOwned;

use crate::client::Envelope;
use crate::types::ClusterVm;

/// Decodes the `data` of a successful PVE answer body (`{"data": ...}`).
pub fn data<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice::<Envelope<T>>(body).map(|e| e.data)
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
