//! Typed answers of the PVE calls, decoded tolerantly (strings for numbers, 0/1 booleans,
//! absent optional fields, unknown extra fields ignored).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ids::{NodeName, VmId};
use crate::lenient::{bool01, opt_f64, opt_string, opt_u64};
use crate::upid::Upid;

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// Full pve-manager version, e.g. `8.4.1`.
    #[serde(deserialize_with = "crate::lenient::req_string")]
    pub version: String,
    /// Major.minor, e.g. `8.4`.
    #[serde(deserialize_with = "crate::lenient::req_string")]
    pub release: String,
    /// Git revision.
    #[serde(default)]
    pub repoid: Option<String>,
    /// Default console, if configured.
    #[serde(default)]
    pub console: Option<String>,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub node: NodeName,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: String,
    /// Uptime in seconds (absent without Sys.Audit).
    #[serde(default, deserialize_with = "opt_u64")]
    pub uptime: Option<u64>,
    /// CPU usage 0..1.
    #[serde(default, deserialize_with = "opt_f64")]
    pub cpu: Option<f64>,
    /// Number of CPUs.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxcpu: Option<u64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub mem: Option<u64>,
    /// Total memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxmem: Option<u64>,
    /// SHA-256 fingerprint of the node's certificate.
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
}

impl NodeInfo {
    /// True when PVE reports the node `online`.
    pub fn is_online(&self) -> bool {
        self.status == "online"
    }
}

/// Guest kind in `/cluster/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    /// A QEMU VM.
    Qemu,
    /// An LXC container.
    Lxc,
    /// Anything else (forward compatibility).
    #[serde(other)]
    Other,
}

/// One guest of `GET /cluster/resources?type=vm`.
///
/// Right after a clone, PVE lists the VM with `status: "unknown"` and without `name`,
/// `template` and the stats until `pvestatd` has sampled it (up to ~10 s).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClusterVm {
    /// VM id.
    pub vmid: VmId,
    /// The node the guest lives on.
    pub node: NodeName,
    /// `qemu` or `lxc`.
    #[serde(rename = "type")]
    pub kind: GuestType,
    /// `running`, `stopped`, `paused`, ..., or `unknown` (no sample yet).
    #[serde(default = "unknown_status")]
    pub status: String,
    /// Name (absent until sampled).
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// Template flag (0/1; absent until sampled).
    #[serde(default, deserialize_with = "bool01")]
    pub template: bool,
    /// Raw `;`-separated tags (always current); see [`ClusterVm::tags`].
    #[serde(default, rename = "tags")]
    pub tags_raw: Option<String>,
    /// Config lock (`clone`, `backup`, ...), always current.
    #[serde(default)]
    pub lock: Option<String>,
    /// Pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// HA state, if HA-managed.
    #[serde(default)]
    pub hastate: Option<String>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "opt_u64")]
    pub uptime: Option<u64>,
    /// CPU usage 0..maxcpu.
    #[serde(default, deserialize_with = "opt_f64")]
    pub cpu: Option<f64>,
    /// vCPUs.
    #[serde(default, deserialize_with = "opt_f64")]
    pub maxcpu: Option<f64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub mem: Option<u64>,
    /// Memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxmem: Option<u64>,
    /// Boot disk size, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxdisk: Option<u64>,
    /// Network bytes in.
    #[serde(default, deserialize_with = "opt_u64")]
    pub netin: Option<u64>,
    /// Network bytes out.
    #[serde(default, deserialize_with = "opt_u64")]
    pub netout: Option<u64>,
}

fn unknown_status() -> String {
    "unknown".to_owned()
}

/// Splits PVE's tag list (`;`, `,` or whitespace separated).
pub(crate) fn split_tags(raw: Option<&str>) -> Vec<&str> {
    raw.map(|t| {
        t.split([';', ',', ' ', '\t', '\n'])
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

impl ClusterVm {
    /// Tags as a list.
    pub fn tags(&self) -> Vec<&str> {
        split_tags(self.tags_raw.as_deref())
    }

    /// True for QEMU VMs (not containers).
    pub fn is_qemu(&self) -> bool {
        self.kind == GuestType::Qemu
    }

    /// True when PVE has not sampled the VM yet (freshly created).
    pub fn is_unsampled(&self) -> bool {
        self.status == "unknown"
    }
}

/// One entry of `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QemuVm {
    /// VM id.
    pub vmid: VmId,
    /// `running` or `stopped`.
    #[serde(default = "unknown_status")]
    pub status: String,
    /// Name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "bool01")]
    pub template: bool,
    /// Config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Raw `;`-separated tags.
    #[serde(default, rename = "tags")]
    pub tags_raw: Option<String>,
    /// vCPUs.
    #[serde(default, deserialize_with = "opt_u64")]
    pub cpus: Option<u64>,
    /// Memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxmem: Option<u64>,
    /// Boot disk size, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxdisk: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "opt_u64")]
    pub uptime: Option<u64>,
    /// QEMU process id (running only).
    #[serde(default, deserialize_with = "opt_u64")]
    pub pid: Option<u64>,
}

impl QemuVm {
    /// Tags as a list.
    pub fn tags(&self) -> Vec<&str> {
        split_tags(self.tags_raw.as_deref())
    }
}

/// HA part of `status/current`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct HaStatus {
    /// HA-managed.
    #[serde(default, deserialize_with = "bool01")]
    pub managed: bool,
    /// HA state (`started`, ...).
    #[serde(default)]
    pub state: Option<String>,
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmStatus {
    /// VM id (absent in some versions; filled from the request then).
    #[serde(default)]
    pub vmid: Option<VmId>,
    /// `running` or `stopped`.
    pub status: String,
    /// QMP run state (`running`, `paused`, `prelaunch`, ...), when known.
    #[serde(default)]
    pub qmpstatus: Option<String>,
    /// Name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// Config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "bool01")]
    pub template: bool,
    /// Guest agent enabled in config.
    #[serde(default, deserialize_with = "bool01")]
    pub agent: bool,
    /// Raw `;`-separated tags.
    #[serde(default, rename = "tags")]
    pub tags_raw: Option<String>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "opt_u64")]
    pub uptime: Option<u64>,
    /// QEMU process id.
    #[serde(default, deserialize_with = "opt_u64")]
    pub pid: Option<u64>,
    /// vCPUs.
    #[serde(default, deserialize_with = "opt_u64")]
    pub cpus: Option<u64>,
    /// Memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub maxmem: Option<u64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub mem: Option<u64>,
    /// HA state.
    #[serde(default)]
    pub ha: Option<HaStatus>,
}

impl VmStatus {
    /// True when the VM process runs (it may still be paused: see `qmpstatus`).
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// Tags as a list.
    pub fn tags(&self) -> Vec<&str> {
        split_tags(self.tags_raw.as_deref())
    }
}

/// `GET /nodes/{node}/qemu/{vmid}/config`: the flat key/value config plus its digest.
///
/// Values keep PVE's JSON types (numbers, strings); the accessors convert tolerantly.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmConfig {
    /// SHA-1 of the raw config file; pass it to [`crate::ConfigUpdate::digest`].
    #[serde(default)]
    pub digest: Option<String>,
    /// Every other key.
    #[serde(flatten)]
    pub values: BTreeMap<String, serde_json::Value>,
}

impl VmConfig {
    /// A value as text (numbers are formatted), if present.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.values.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
            _ => None,
        }
    }

    /// A value as an integer (number or numeric string), if present and numeric.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        match self.values.get(key)? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A PVE boolean (0/1), `false` when absent.
    pub fn get_bool(&self, key: &str) -> bool {
        match self.values.get(key) {
            Some(serde_json::Value::Number(n)) => n.as_u64().is_some_and(|v| v != 0),
            Some(serde_json::Value::String(s)) => s.trim() == "1",
            Some(serde_json::Value::Bool(b)) => *b,
            _ => false,
        }
    }

    /// `name`.
    pub fn name(&self) -> Option<String> {
        self.get_str("name")
    }

    /// `cores` (PVE default 1 when absent).
    pub fn cores(&self) -> u64 {
        self.get_u64("cores").unwrap_or(1)
    }

    /// `memory` in MiB (a string since qemu-server 8.0.8, possibly `current=2048`); PVE
    /// default 512 when absent.
    pub fn memory_mib(&self) -> Option<u64> {
        let Some(raw) = self.get_str("memory") else {
            return Some(512);
        };
        let current = raw.split(',').find_map(|part| match part.split_once('=') {
            Some(("current", v)) => Some(v),
            Some(_) => None,
            None => Some(part),
        })?;
        current.trim().parse().ok()
    }

    /// `description`.
    pub fn description(&self) -> Option<String> {
        self.get_str("description")
    }

    /// `lock`.
    pub fn lock(&self) -> Option<String> {
        self.get_str("lock")
    }

    /// `template`.
    pub fn is_template(&self) -> bool {
        self.get_bool("template")
    }

    /// Tags as a list.
    pub fn tags(&self) -> Vec<String> {
        let raw = self.get_str("tags");
        split_tags(raw.as_deref())
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The SMBIOS UUID from `smbios1` (`uuid=...`), the second identity of a VM.
    pub fn smbios_uuid(&self) -> Option<String> {
        let raw = self.get_str("smbios1")?;
        raw.split(',')
            .find_map(|p| p.strip_prefix("uuid="))
            .map(str::to_owned)
    }

    /// `sshkeys`, decoded (PVE returns them still percent-encoded), one key per entry.
    pub fn sshkeys(&self) -> Vec<String> {
        let Some(raw) = self.get_str("sshkeys") else {
            return Vec::new();
        };
        let decoded = percent_encoding::percent_decode_str(&raw).decode_utf8_lossy();
        decoded
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `status` of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// The worker is still running.
    Running,
    /// The worker ended; see `exitstatus`.
    Stopped,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub upid: Upid,
    /// Running or stopped.
    pub status: TaskState,
    /// `OK`, `WARNINGS: n`, or the error text (only when stopped).
    #[serde(default)]
    pub exitstatus: Option<String>,
    /// Task type (`qmclone`, ...).
    #[serde(default, rename = "type")]
    pub task_type: Option<String>,
    /// Task id (the vmid for VM tasks; the source for clones).
    #[serde(default, deserialize_with = "opt_string")]
    pub id: Option<String>,
    /// User that started it.
    #[serde(default)]
    pub user: Option<String>,
    /// Token name, for token-started tasks.
    #[serde(default)]
    pub tokenid: Option<String>,
    /// Start time, unix seconds.
    #[serde(default, deserialize_with = "opt_u64")]
    pub starttime: Option<u64>,
}

impl TaskStatus {
    /// True while the worker runs.
    pub fn is_running(&self) -> bool {
        self.status == TaskState::Running
    }

    /// PVE's own success rule: stopped with `OK` or `WARNINGS: <n>`.
    pub fn is_success(&self) -> bool {
        self.status == TaskState::Stopped
            && self
                .exitstatus
                .as_deref()
                .is_some_and(exit_status_is_success)
    }

    /// The warning count of a `WARNINGS: n` exit.
    pub fn warnings(&self) -> Option<u32> {
        self.exitstatus
            .as_deref()?
            .strip_prefix("WARNINGS: ")?
            .parse()
            .ok()
    }
}

/// `OK` or `WARNINGS: <digits>`.
pub(crate) fn exit_status_is_success(exit: &str) -> bool {
    exit == "OK"
        || exit
            .strip_prefix("WARNINGS: ")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One line of a task log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskLogLine {
    /// 1-based line number.
    #[serde(deserialize_with = "crate::lenient::u64_or_zero")]
    pub n: u64,
    /// Text.
    #[serde(default)]
    pub t: String,
}

/// A page of a task log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLog {
    /// The lines.
    pub lines: Vec<TaskLogLine>,
    /// Total line count, when PVE sent it.
    pub total: Option<u64>,
}

/// One IP address reported by the guest agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentIpAddress {
    /// `ipv4` or `ipv6`.
    #[serde(rename = "ip-address-type", default)]
    pub ip_address_type: String,
    /// The address.
    #[serde(rename = "ip-address")]
    pub ip_address: String,
    /// Prefix length.
    #[serde(default, deserialize_with = "opt_u64")]
    pub prefix: Option<u64>,
}

/// One interface reported by `agent/network-get-interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentInterface {
    /// Interface name (`eth0`, `lo`).
    pub name: String,
    /// MAC address.
    #[serde(rename = "hardware-address", default)]
    pub hardware_address: Option<String>,
    /// Addresses (may be empty early in boot).
    #[serde(rename = "ip-addresses", default)]
    pub ip_addresses: Vec<AgentIpAddress>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_vm_decodes_reference_entry() {
        let json = r#"{"id":"qemu/101","vmid":101,"node":"pve","type":"qemu","status":"running","name":"web01","template":0,"uptime":3600,"maxcpu":2,"cpu":0.012,"maxmem":2147483648,"mem":734003200,"maxdisk":34359738368,"disk":0,"netin":1234,"netout":5678,"diskread":1048576,"diskwrite":2097152,"tags":"prod;web","pool":"lab"}"#;
        let vm: ClusterVm = serde_json::from_str(json).expect("decodes");
        assert_eq!(vm.vmid.get(), 101);
        assert_eq!(vm.kind, GuestType::Qemu);
        assert_eq!(vm.name.as_deref(), Some("web01"));
        assert!(!vm.template);
        assert_eq!(vm.maxmem, Some(2_147_483_648));
        assert_eq!(vm.tags(), vec!["prod", "web"]);
        assert_eq!(vm.pool.as_deref(), Some("lab"));
    }

    #[test]
    fn freshly_cloned_vm_without_rrd_sample_decodes() {
        let json = r#"{"id":"qemu/4103","vmid":4103,"node":"pve1","type":"qemu","status":"unknown","lock":"clone","futurefield":{"x":1}}"#;
        let vm: ClusterVm = serde_json::from_str(json).expect("decodes");
        assert!(vm.is_unsampled());
        assert_eq!(vm.name, None);
        assert_eq!(vm.lock.as_deref(), Some("clone"));
        assert!(vm.tags().is_empty());
    }

    #[test]
    fn lxc_and_unknown_guest_types_are_kept_apart() {
        let vm: ClusterVm = serde_json::from_str(
            r#"{"vmid":"200","node":"pve1","type":"lxc","status":"stopped","template":"1"}"#,
        )
        .expect("decodes");
        assert_eq!(vm.kind, GuestType::Lxc);
        assert!(vm.template);
        assert!(!vm.is_qemu());
    }

    #[test]
    fn config_memory_as_string_or_number_and_helpers() {
        let cfg: VmConfig = serde_json::from_str(
            r#"{"digest":"d1","name":"worker-1","memory":"4096","cores":2,"onboot":1,"tags":"reborn;role-worker","smbios1":"uuid=7b0c-11,manufacturer=x","sshkeys":"ssh-ed25519%20AAAA%2Bx%20a%40b%0A"}"#,
        )
        .expect("decodes");
        assert_eq!(cfg.digest.as_deref(), Some("d1"));
        assert_eq!(cfg.memory_mib(), Some(4096));
        assert_eq!(cfg.cores(), 2);
        assert!(cfg.get_bool("onboot"));
        assert!(!cfg.is_template());
        assert_eq!(cfg.tags(), vec!["reborn", "role-worker"]);
        assert_eq!(cfg.smbios_uuid().as_deref(), Some("7b0c-11"));
        assert_eq!(cfg.sshkeys(), vec!["ssh-ed25519 AAAA+x a@b"]);
        let old: VmConfig = serde_json::from_str(r#"{"memory":2048}"#).expect("decodes");
        assert_eq!(old.memory_mib(), Some(2048));
        let prop: VmConfig = serde_json::from_str(r#"{"memory":"current=1024"}"#).expect("decodes");
        assert_eq!(prop.memory_mib(), Some(1024));
        let none: VmConfig = serde_json::from_str(r#"{}"#).expect("decodes");
        assert_eq!(none.memory_mib(), Some(512));
    }

    #[test]
    fn task_success_is_ok_or_warnings() {
        for (exit, ok) in [
            ("OK", true),
            ("WARNINGS: 2", true),
            ("WARNINGS: ", false),
            ("VM is locked (clone)", false),
            ("unexpected status", false),
        ] {
            assert_eq!(exit_status_is_success(exit), ok, "{exit}");
        }
        let st: TaskStatus = serde_json::from_str(
            r#"{"upid":"UPID:pve1:00000001:00000002:00000003:qmstart:101:root@pam:","status":"stopped","exitstatus":"WARNINGS: 1","pid":1,"pstart":2,"starttime":3,"type":"qmstart","id":"101","user":"root@pam","tokenid":"reborn","node":"pve1"}"#,
        )
        .expect("decodes");
        assert!(st.is_success());
        assert_eq!(st.warnings(), Some(1));
        assert_eq!(st.tokenid.as_deref(), Some("reborn"));
    }

    #[test]
    fn node_and_version_tolerate_extra_and_missing_fields() {
        let n: NodeInfo = serde_json::from_str(
            r#"{"node":"pve1","status":"online","id":"node/pve1","type":"node","level":""}"#,
        )
        .expect("decodes");
        assert!(n.is_online());
        assert_eq!(n.maxmem, None);
        let v: Version = serde_json::from_str(
            r#"{"version":"8.4.1","release":"8.4","repoid":"2a5fa54a8503f96d","extra":1}"#,
        )
        .expect("decodes");
        assert_eq!(v.release, "8.4");
    }

    #[test]
    fn agent_interfaces_decode() {
        let ifs: Vec<AgentInterface> = serde_json::from_str(
            r#"[{"name":"lo","hardware-address":"00:00:00:00:00:00","ip-addresses":[{"ip-address-type":"ipv4","ip-address":"127.0.0.1","prefix":8}]},{"name":"eth0","statistics":{"rx-bytes":1}}]"#,
        )
        .expect("decodes");
        assert_eq!(ifs[0].ip_addresses[0].ip_address, "127.0.0.1");
        assert!(ifs[1].ip_addresses.is_empty());
    }
}
