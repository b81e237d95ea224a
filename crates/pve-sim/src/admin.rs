//! Test control surface: [`SimAdmin`] in process and the same operations over HTTP at `/_sim/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Durations;
use crate::fault::{ActiveFault, Fault};
use crate::http::response;
use crate::model::{Shared, Vm};

/// A VM as seen by tests (for assertions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSnapshot {
    /// VMID.
    pub vmid: u32,
    /// Node it lives on.
    pub node: String,
    /// Raw config (main section), as stored.
    pub config: BTreeMap<String, String>,
    /// `running` or `stopped`.
    pub status: String,
    /// QMP status (`running`, `stopped`, `paused`).
    pub qmpstatus: String,
    /// Config `lock`, if any.
    pub lock: Option<String>,
    /// Whether it is a template.
    pub template: bool,
    /// Config digest (SHA-1 hex).
    pub digest: String,
    /// Template this VM is a linked clone of.
    pub linked_base: Option<u32>,
    /// Address the guest agent reports for `eth0`, if running.
    pub ip: Option<String>,
}

impl VmSnapshot {
    fn of(vm: &Vm, prefix: u8) -> Self {
        let ip = crate::vmconf::static_ip(&vm.config)
            .map(|(ip, p)| format!("{ip}/{p}"))
            .or(vm.dhcp_ip.map(|ip| format!("{ip}/{prefix}")))
            .filter(|_| vm.running);
        Self {
            vmid: vm.vmid,
            node: vm.node.clone(),
            config: vm.config.clone(),
            status: vm.status().to_string(),
            qmpstatus: vm.qmpstatus.clone(),
            lock: vm.lock().map(str::to_string),
            template: vm.is_template(),
            digest: vm.digest(),
            linked_base: vm.linked_base,
            ip,
        }
    }
}

/// A task as seen by tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// The UPID.
    pub upid: String,
    /// Node.
    pub node: String,
    /// Task type (`qmclone`, ...).
    pub task_type: String,
    /// Task id (vmid; the source vmid for clones).
    pub id: String,
    /// Authenticated id incl. token.
    pub user: String,
    /// Exit status once stopped.
    pub exitstatus: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
}

/// In-process control of a running simulator; cheap to clone.
#[derive(Clone)]
pub struct SimAdmin {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAdmin").finish_non_exhaustive()
    }
}

impl SimAdmin {
    /// Requests received for `endpoint` (`"GET /cluster/resources"`: method + path template).
    pub fn request_count(&self, endpoint: &str) -> u64 {
        self.shared
            .lock()
            .counts
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// All request counters.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().counts.clone()
    }

    /// Total requests received on `/api2` paths.
    pub fn total_requests(&self) -> u64 {
        self.shared.lock().counts.values().sum()
    }

    /// Reset all request counters.
    pub fn reset_counts(&self) {
        self.shared.lock().counts.clear();
    }

    /// Activate a fault.
    pub fn inject(&self, fault: Fault) {
        let mut cl = self.shared.lock();
        match &fault {
            Fault::HoldLock { vmid, lock } => {
                if let Some(vm) = cl.vms.get_mut(vmid) {
                    vm.config.insert("lock".into(), lock.clone());
                }
            }
            Fault::HoldFileLock { vmid } => {
                cl.file_locks.insert(*vmid);
            }
            Fault::TakeVmid { node, vmid, name } => {
                drop(cl);
                self.create_foreign_vm(node, *vmid, name);
                return;
            }
            _ => {}
        }
        cl.faults.push(ActiveFault::new(fault));
    }

    /// Faults currently active (including exhausted counted ones).
    pub fn faults(&self) -> Vec<Fault> {
        self.shared
            .lock()
            .faults
            .iter()
            .map(|f| f.fault.clone())
            .collect()
    }

    /// Remove every fault; held locks are released.
    pub fn clear_faults(&self) {
        let mut cl = self.shared.lock();
        let faults = std::mem::take(&mut cl.faults);
        for f in faults {
            if let Fault::HoldLock { vmid, lock } = f.fault {
                if let Some(vm) = cl.vms.get_mut(&vmid) {
                    if vm.lock() == Some(lock.as_str()) {
                        vm.config.remove("lock");
                    }
                }
            }
        }
        cl.file_locks.clear();
    }

    /// One VM.
    pub fn vm(&self, vmid: u32) -> Option<VmSnapshot> {
        let prefix = self.shared.config.dhcp_pool.prefix;
        self.shared
            .lock()
            .vms
            .get(&vmid)
            .map(|vm| VmSnapshot::of(vm, prefix))
    }

    /// All VMs, by vmid.
    pub fn vms(&self) -> Vec<VmSnapshot> {
        let prefix = self.shared.config.dhcp_pool.prefix;
        self.shared
            .lock()
            .vms
            .values()
            .map(|vm| VmSnapshot::of(vm, prefix))
            .collect()
    }

    /// Create a VM "behind the operator's back" (stopped, one disk on `local-lvm`). Does
    /// nothing if the vmid is already used or the node is unknown.
    pub fn create_foreign_vm(&self, node: &str, vmid: u32, name: &str) {
        let mut cl = self.shared.lock();
        if cl.vms.contains_key(&vmid) || !cl.node_exists(node) {
            tracing::warn!(
                vmid,
                node,
                "foreign VM not created: vmid used or node unknown"
            );
            return;
        }
        let mac = cl.random_mac();
        let uuid = cl.random_uuid();
        let mut c = BTreeMap::new();
        c.insert("name".to_string(), name.to_string());
        c.insert("cores".to_string(), "1".to_string());
        c.insert("memory".to_string(), "1024".to_string());
        c.insert("net0".to_string(), format!("virtio={mac},bridge=vmbr0"));
        c.insert(
            "scsi0".to_string(),
            format!("local-lvm:vm-{vmid}-disk-0,size=4G"),
        );
        c.insert("smbios1".to_string(), format!("uuid={uuid}"));
        c.insert("ostype".to_string(), "l26".to_string());
        cl.vms.insert(vmid, Vm::new(vmid, node, c));
    }

    /// All tasks, oldest first.
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.shared
            .lock()
            .tasks
            .iter()
            .map(|t| TaskSnapshot {
                upid: t.upid.clone(),
                node: t.node.clone(),
                task_type: t.kind.clone(),
                id: t.id.clone(),
                user: t.user.clone(),
                exitstatus: t.exitstatus.clone(),
                log: t.log.clone(),
            })
            .collect()
    }

    /// Run a pvestatd cycle now: `/cluster/resources` catches up.
    pub fn sample_resources_now(&self) {
        self.shared.lock().sample_rrd();
    }

    /// Hold every task at the end of its duration (`true`) until released (`false`): a
    /// stepped mode for tests that must observe running tasks.
    pub fn hold_tasks(&self, hold: bool) {
        self.shared.hold_tasks.send_replace(hold);
    }

    /// Change task durations for tasks started from now on.
    pub fn set_durations(&self, durations: Durations) {
        self.shared.lock().durations = durations;
    }
}

#[derive(Deserialize)]
struct ForeignVm {
    node: String,
    vmid: u32,
    #[serde(default = "foreign")]
    name: String,
}

fn foreign() -> String {
    "foreign".into()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

#[derive(Deserialize)]
struct Hold {
    hold: bool,
}

fn ok(v: serde_json::Value) -> Response<Body> {
    response(200, "OK", Some((true, json!({ "data": v }).to_string())))
}

fn bad(code: u16, msg: &str) -> Response<Body> {
    response(
        code,
        msg,
        Some((true, json!({ "data": null, "message": msg }).to_string())),
    )
}

/// Serve `/_sim/<rest>`.
pub(crate) async fn handle_http(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    rest: String,
) -> Response<Body> {
    let admin = SimAdmin {
        shared: Arc::clone(shared),
    };
    let method = req.method().clone();
    let body = match axum::body::to_bytes(Body::new(req.into_body()), 1 << 20).await {
        Ok(b) => b,
        Err(_) => return bad(400, "body too large"),
    };
    let path = rest.trim_end_matches('/');
    match (method, path) {
        (Method::GET, "/requests") => ok(json!(admin.request_counts())),
        (Method::DELETE, "/requests") => {
            admin.reset_counts();
            ok(json!(null))
        }
        (Method::GET, "/faults") => ok(json!(admin.faults())),
        (Method::POST, "/faults") => match serde_json::from_slice::<OneOrMany>(&body) {
            Ok(OneOrMany::One(f)) => {
                admin.inject(f);
                ok(json!(null))
            }
            Ok(OneOrMany::Many(fs)) => {
                fs.into_iter().for_each(|f| admin.inject(f));
                ok(json!(null))
            }
            Err(e) => bad(400, &format!("invalid fault: {e}")),
        },
        (Method::DELETE, "/faults") => {
            admin.clear_faults();
            ok(json!(null))
        }
        (Method::GET, "/vms") => ok(json!(admin.vms())),
        (Method::POST, "/vms") => match serde_json::from_slice::<ForeignVm>(&body) {
            Ok(f) => {
                admin.create_foreign_vm(&f.node, f.vmid, &f.name);
                ok(json!(admin.vm(f.vmid)))
            }
            Err(e) => bad(400, &format!("invalid body: {e}")),
        },
        (Method::GET, "/tasks") => ok(json!(admin.tasks())),
        (Method::POST, "/resources/sample") => {
            admin.sample_resources_now();
            ok(json!(null))
        }
        (Method::POST, "/hold-tasks") => match serde_json::from_slice::<Hold>(&body) {
            Ok(h) => {
                admin.hold_tasks(h.hold);
                ok(json!(null))
            }
            Err(e) => bad(400, &format!("invalid body: {e}")),
        },
        (Method::PUT, "/durations") => match serde_json::from_slice::<Durations>(&body) {
            Ok(d) => {
                admin.set_durations(d);
                ok(json!(null))
            }
            Err(e) => bad(400, &format!("invalid body: {e}")),
        },
        (Method::GET, p) if p.starts_with("/vms/") => {
            match p["/vms/".len()..]
                .parse::<u32>()
                .ok()
                .and_then(|id| admin.vm(id))
            {
                Some(vm) => ok(json!(vm)),
                None => bad(404, "no such VM"),
            }
        }
        _ => bad(404, "unknown simulator admin endpoint"),
    }
}
