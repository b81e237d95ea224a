//! The simulated cluster's state: nodes, storages, VMs, tasks, RRD samples, RNG.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::config::{Durations, SimConfig, StorageConfig, StorageKind};
use crate::fault::ActiveFault;
use crate::vmconf;

/// One node at run time.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub name: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub online: bool,
}

/// One VM at run time.
#[derive(Clone, Debug)]
pub(crate) struct Vm {
    pub vmid: u32,
    pub node: String,
    /// The config file's main section, sorted like PVE writes it: the values in effect.
    pub config: BTreeMap<String, String>,
    /// The `[PENDING]` section: values set on a running VM that wait for the next start.
    pub pending: BTreeMap<String, String>,
    /// Pending deletions (`delete:` line of `[PENDING]`), key → force flag.
    pub pending_delete: BTreeMap<String, bool>,
    pub running: bool,
    pub qmpstatus: String,
    pub started: Option<Instant>,
    pub agent_ready: Option<Instant>,
    pub pid: Option<u32>,
    /// Template this VM is a linked clone of.
    pub linked_base: Option<u32>,
    /// Address handed out by the DHCP pool while running.
    pub dhcp_ip: Option<Ipv4Addr>,
}

impl Vm {
    pub fn new(vmid: u32, node: &str, config: BTreeMap<String, String>) -> Self {
        Self {
            vmid,
            node: node.to_string(),
            config,
            pending: BTreeMap::new(),
            pending_delete: BTreeMap::new(),
            running: false,
            qmpstatus: "stopped".into(),
            started: None,
            agent_ready: None,
            pid: None,
            linked_base: None,
            dhcp_ip: None,
        }
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").map(String::as_str) == Some("1")
    }

    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    pub fn name(&self) -> String {
        self.config
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }

    pub fn maxmem(&self) -> u64 {
        vmconf::memory_mib(&self.config) * 1024 * 1024
    }

    pub fn cpus(&self) -> u64 {
        let get = |k: &str| {
            self.config
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
        };
        self.config
            .get("vcpus")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| get("cores") * get("sockets"))
    }

    pub fn maxdisk(&self) -> u64 {
        vmconf::boot_disk_bytes(&self.config)
    }

    pub fn uptime(&self) -> u64 {
        self.started.map(|s| s.elapsed().as_secs()).unwrap_or(0)
    }

    /// SHA-1 of the whole config file, `[PENDING]` section included.
    pub fn digest(&self) -> String {
        vmconf::digest_with_pending(&self.config, &self.pending, &self.pending_delete)
    }

    /// The config with pending changes merged (what `GET config` shows by default).
    pub fn merged_config(&self) -> BTreeMap<String, String> {
        let mut c = self.config.clone();
        for k in self.pending_delete.keys() {
            c.remove(k);
        }
        for (k, v) in &self.pending {
            c.insert(k.clone(), v.clone());
        }
        c
    }

    /// Apply the `[PENDING]` section (VM start, update of a stopped VM).
    pub fn apply_pending(&mut self) {
        self.config = self.merged_config();
        self.pending.clear();
        self.pending_delete.clear();
    }

    pub fn status(&self) -> &'static str {
        if self.running { "running" } else { "stopped" }
    }
}

/// What pvestatd last broadcast for a VM.
#[derive(Clone, Debug)]
pub(crate) struct RrdSample {
    pub name: String,
    pub template: bool,
    pub status: String,
    pub maxmem: u64,
    pub maxcpu: u64,
    pub maxdisk: u64,
    pub uptime: u64,
}

impl RrdSample {
    pub fn of(vm: &Vm) -> Self {
        Self {
            name: vm.name(),
            template: vm.is_template(),
            status: if vm.running {
                vm.qmpstatus.clone()
            } else {
                "stopped".into()
            },
            maxmem: vm.maxmem(),
            maxcpu: vm.cpus(),
            maxdisk: vm.maxdisk(),
            uptime: vm.uptime(),
        }
    }
}

/// A worker task.
#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: i64,
    pub endtime: Option<i64>,
    pub kind: String,
    pub id: String,
    /// Full authenticated id (`root@pam!reborn` for tokens).
    pub user: String,
    pub log: Vec<String>,
    pub exitstatus: Option<String>,
}

/// Mutable state of the whole cluster.
pub(crate) struct Cluster {
    pub nodes: Vec<Node>,
    pub storages: Vec<StorageConfig>,
    pub vms: BTreeMap<u32, Vm>,
    pub tasks: Vec<Task>,
    pub rrd: HashMap<u32, RrdSample>,
    pub rng: StdRng,
    pub next_pid: u32,
    pub boot: Instant,
    pub dhcp_used: BTreeSet<Ipv4Addr>,
    pub faults: Vec<ActiveFault>,
    pub counts: BTreeMap<String, u64>,
    pub durations: Durations,
    pub file_locks: BTreeSet<u32>,
    /// Resource pools and their member VMs.
    pub pools: BTreeMap<String, BTreeSet<u32>>,
    /// UPIDs of tasks that reached their end while tasks were held, in arrival order.
    pub held_queue: std::collections::VecDeque<String>,
}

impl Cluster {
    pub fn from_config(cfg: &SimConfig) -> Result<Self, String> {
        if cfg.nodes.is_empty() {
            return Err("at least one node is required".into());
        }
        let mut cl = Cluster {
            nodes: cfg
                .nodes
                .iter()
                .map(|n| Node {
                    name: n.name.clone(),
                    cores: n.cores,
                    memory_mib: n.memory_mib,
                    online: n.online,
                })
                .collect(),
            storages: cfg.storages.clone(),
            vms: BTreeMap::new(),
            tasks: Vec::new(),
            rrd: HashMap::new(),
            rng: StdRng::seed_from_u64(cfg.seed),
            next_pid: 0,
            boot: Instant::now(),
            dhcp_used: BTreeSet::new(),
            faults: Vec::new(),
            counts: BTreeMap::new(),
            durations: cfg.durations.clone(),
            file_locks: BTreeSet::new(),
            held_queue: std::collections::VecDeque::new(),
            pools: cfg
                .pools
                .iter()
                .map(|p| (p.clone(), BTreeSet::new()))
                .collect(),
        };
        cl.next_pid = cl.rng.random_range(0x0001_0000..0x0030_0000);
        for t in &cfg.templates {
            if !cl.node_exists(&t.node) {
                return Err(format!("VM {}: unknown node '{}'", t.vmid, t.node));
            }
            let Some(st) = cl.storage(&t.storage).cloned() else {
                return Err(format!("VM {}: unknown storage '{}'", t.vmid, t.storage));
            };
            if cl.vms.contains_key(&t.vmid) {
                return Err(format!("duplicate vmid {}", t.vmid));
            }
            let mut c = BTreeMap::new();
            let prefix = if t.template { "base" } else { "vm" };
            c.insert(
                "scsi0".into(),
                format!(
                    "{}:{},size={}G",
                    st.id,
                    vmconf::volume_name(st.kind, t.vmid, &format!("{prefix}-{}-disk-0", t.vmid)),
                    t.disk_gib
                ),
            );
            c.insert(
                "ide2".into(),
                format!(
                    "{}:{},media=cdrom",
                    st.id,
                    vmconf::volume_name(st.kind, t.vmid, &format!("vm-{}-cloudinit", t.vmid))
                ),
            );
            c.insert("name".into(), t.name.clone());
            c.insert("cores".into(), t.cores.to_string());
            c.insert("memory".into(), t.memory_mib.to_string());
            c.insert("agent".into(), "1".into());
            c.insert("ostype".into(), "l26".into());
            c.insert("scsihw".into(), "virtio-scsi-single".into());
            c.insert("boot".into(), "order=scsi0".into());
            c.insert("serial0".into(), "socket".into());
            c.insert("vga".into(), "serial0".into());
            let mac = cl.random_mac();
            c.insert("net0".into(), format!("virtio={mac},bridge=vmbr0"));
            let uuid = cl.random_uuid();
            c.insert("smbios1".into(), format!("uuid={uuid}"));
            let genid = cl.random_uuid();
            c.insert("vmgenid".into(), genid);
            if t.template {
                c.insert("template".into(), "1".into());
            }
            for (k, v) in &t.config {
                c.insert(k.clone(), v.clone());
            }
            cl.vms.insert(t.vmid, Vm::new(t.vmid, &t.node, c));
        }
        Ok(cl)
    }

    /// The pool a VM belongs to.
    pub fn pool_of(&self, vmid: u32) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, m)| m.contains(&vmid))
            .map(|(p, _)| p.as_str())
    }

    /// Remove a VM from every pool (`remove_vm_access` on destroy).
    pub fn leave_pools(&mut self, vmid: u32) {
        for m in self.pools.values_mut() {
            m.remove(&vmid);
        }
    }

    pub fn node_exists(&self, name: &str) -> bool {
        self.nodes.iter().any(|n| n.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn storage(&self, id: &str) -> Option<&StorageConfig> {
        self.storages.iter().find(|s| s.id == id)
    }

    /// Storage `id` if it is enabled on `node`.
    pub fn storage_on(&self, id: &str, node: &str) -> Option<&StorageConfig> {
        self.storage(id)
            .filter(|s| s.nodes.is_empty() || s.nodes.iter().any(|n| n == node))
    }

    pub fn storages_on(&self, node: &str) -> Vec<&StorageConfig> {
        self.storages
            .iter()
            .filter(|s| s.nodes.is_empty() || s.nodes.iter().any(|n| n == node))
            .collect()
    }

    pub fn random_mac(&mut self) -> String {
        let b: [u8; 3] = self.rng.random();
        format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
    }

    pub fn random_uuid(&mut self) -> String {
        let mut b: [u8; 16] = self.rng.random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    pub fn alloc_pid(&mut self) -> u32 {
        let step: u32 = self.rng.random_range(1..64);
        self.next_pid = self.next_pid.wrapping_add(step) & 0x003f_ffff;
        self.next_pid
    }

    /// Clock ticks since "boot" (the sim pretends nodes booted 3 days before it started).
    pub fn pstart(&self) -> u64 {
        let base: u64 = 3 * 24 * 3600 * 100;
        base + (self.boot.elapsed().as_millis() as u64) / 10
    }

    pub fn task(&self, upid: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.upid == upid)
    }

    pub fn task_mut(&mut self, upid: &str) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.upid == upid)
    }

    /// Storage ids used by a config's volumes (disks, cloud-init, ISOs).
    pub fn used_storages(config: &BTreeMap<String, String>) -> Vec<String> {
        config
            .iter()
            .filter(|(k, _)| vmconf::is_drive_key(k))
            .filter_map(|(_, v)| vmconf::volume_of(v).map(|(s, _)| s.to_string()))
            .collect()
    }

    pub fn sample_rrd(&mut self) {
        self.rrd = self
            .vms
            .iter()
            .map(|(id, vm)| (*id, RrdSample::of(vm)))
            .collect();
    }

    pub fn alloc_dhcp(&mut self, pool: &crate::config::DhcpPool) -> Option<Ipv4Addr> {
        let first = u32::from(pool.first);
        let last = u32::from(pool.last);
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !self.dhcp_used.contains(ip))
            .inspect(|ip| {
                self.dhcp_used.insert(*ip);
            })
    }

    pub fn storage_kind(&self, id: &str) -> StorageKind {
        self.storage(id)
            .map(|s| s.kind)
            .unwrap_or(StorageKind::Lvmthin)
    }
}

/// State shared between connections, tasks and the admin handle.
pub(crate) struct Shared {
    pub cluster: Mutex<Cluster>,
    pub config: SimConfig,
    pub ticket_key: [u8; 32],
    pub fingerprint: Option<String>,
    pub hold_tasks: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Lock the cluster state. A poisoned lock (a panic elsewhere) is recovered: the state is
    /// plain data and stays usable.
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
