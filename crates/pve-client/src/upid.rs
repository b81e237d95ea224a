//! PVE task ids (UPIDs): `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{InvalidId, NodeName, VmId};

/// A parsed UPID. `Display` gives back the exact text PVE sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    node: NodeName,
    pid: u32,
    pstart: u64,
    starttime: i64,
    task_type: String,
    id: String,
    user: String,
}

impl Upid {
    /// The node the task runs on (task status and log must be read there).
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The worker's start time in clock ticks since boot.
    pub fn pstart(&self) -> u64 {
        self.pstart
    }

    /// The task's start time, unix seconds.
    pub fn starttime(&self) -> i64 {
        self.starttime
    }

    /// The task's start time.
    pub fn started_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp(self.starttime, 0)
    }

    /// The task type, e.g. `qmclone`, `qmstart`, `qmdestroy`.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }

    /// The free-text id; for VM tasks the vmid (for `qmclone`: the **source** vmid).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id as a VM id, if it is one.
    pub fn vmid(&self) -> Option<VmId> {
        self.id.parse().ok()
    }

    /// The authenticated identity that started the task (`root@pam!token` for tokens).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The UPID text exactly as PVE sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

fn hex_field(s: &str, min: usize, max: usize) -> Option<u64> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn text_field(s: &str, allow_empty: bool) -> bool {
    (allow_empty || !s.is_empty()) && !s.chars().any(|c| c == '/' || c.is_whitespace())
}

impl FromStr for Upid {
    type Err = InvalidId;

    /// Parses with PVE's own decoder rules (pve-common `Tools::upid_decode`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| InvalidId {
            kind: "UPID",
            value: s.to_owned(),
            why,
        };
        let rest = s
            .strip_prefix("UPID:")
            .ok_or_else(|| bad("must start with 'UPID:'"))?;
        let rest = rest
            .strip_suffix(':')
            .ok_or_else(|| bad("must end with ':'"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, task_type, id, user] = parts[..] else {
            return Err(bad("must have 7 ':'-separated fields"));
        };
        let node = NodeName::new(node).map_err(|_| bad("invalid node field"))?;
        let pid = hex_field(pid, 8, 8)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| bad("pid must be 8 hex digits"))?;
        let pstart = hex_field(pstart, 8, 9).ok_or_else(|| bad("pstart must be 8-9 hex digits"))?;
        let starttime = hex_field(starttime, 8, 8)
            .and_then(|v| i64::try_from(v).ok())
            .ok_or_else(|| bad("starttime must be 8 hex digits"))?;
        if !text_field(task_type, false) || !text_field(id, true) || !text_field(user, false) {
            return Err(bad("type, id or user contain '/' or whitespace"));
        }
        Ok(Self {
            raw: s.to_owned(),
            node,
            pid,
            pstart,
            starttime,
            task_type: task_type.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_clone_upid_with_source_vmid_as_id() {
        let u: Upid = "UPID:proxmox:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam:"
            .parse()
            .expect("valid");
        assert_eq!(u.node().as_str(), "proxmox");
        assert_eq!(u.pid(), 0x0035_D677);
        assert_eq!(u.pstart(), 0x03AB_00C3);
        assert_eq!(u.starttime(), 0x66DC_5987);
        assert_eq!(u.task_type(), "qmclone");
        assert_eq!(u.vmid().map(VmId::get), Some(132));
        assert_eq!(u.user(), "root@pam");
        assert_eq!(
            u.to_string(),
            "UPID:proxmox:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam:"
        );
    }

    #[test]
    fn accepts_token_user_empty_id_and_nine_digit_pstart() {
        let u: Upid = "UPID:pve1:000A1B2C:1ABCDEF01:6700AA00:vzdump::root@pam!reborn:"
            .parse()
            .expect("valid");
        assert_eq!(u.id(), "");
        assert_eq!(u.vmid(), None);
        assert_eq!(u.user(), "root@pam!reborn");
        assert_eq!(u.pstart(), 0x1_ABCD_EF01);
    }

    #[test]
    fn rejects_malformed_upids() {
        for bad in [
            "",
            "UPID:pve1:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam",
            "UPIX:pve1:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam:",
            "UPID:pve1:35D677:03AB00C3:66DC5987:qmclone:132:root@pam:",
            "UPID:pve1:0035D677:03AB00C3:66DC5987:qm clone:132:root@pam:",
            "UPID:pve_1:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam:",
            "UPID:pve1:0035D677:03AB00C3:66DC5987:qmclone:132::",
            "UPID:pve1:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam:extra:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn decodes_from_json_string() {
        let u: Upid =
            serde_json::from_str("\"UPID:pve2:00000001:00000002:00000003:qmstart:101:root@pam:\"")
                .expect("valid");
        assert_eq!(u.node().as_str(), "pve2");
    }
}
