//! `POST /nodes/{node}/qemu/{vmid}/clone`: linked/full clone rules, placeholder lock, new ids.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::config::StorageKind;
use crate::dispatch::{Ctx, check_lock, file_lock_timeout, vm_on};
use crate::http::Reply;
use crate::model::{Cluster, Vm};
use crate::params::ApiError;
use crate::tasks::{self, TaskSpec};
use crate::vmconf;

/// Keys never copied to a clone.
const NOT_COPIED: &[&str] = &[
    "snapshots",
    "parent",
    "snaptime",
    "vmstate",
    "snapstate",
    "runningcpu",
    "runningmachine",
    "template",
    "lock",
];

struct Plan {
    full: bool,
    storage: Option<String>,
    target: Option<String>,
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// New drive values plus task log lines.
fn clone_drives(
    cl: &Cluster,
    src: &Vm,
    newid: u32,
    plan: &Plan,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut log = Vec::new();
    let mut n = 0;
    for (k, v) in src.config.iter().filter(|(k, _)| vmconf::is_drive_key(k)) {
        let Some((storage, vol)) = vmconf::volume_of(v) else {
            out.insert(k.clone(), v.clone());
            continue;
        };
        let opts: String = v.split(',').skip(1).map(|o| format!(",{o}")).collect();
        if vmconf::is_cloudinit(v) {
            let st = plan.storage.clone().unwrap_or_else(|| storage.to_string());
            let kind = cl.storage_kind(&st);
            let newvol = vmconf::volume_name(kind, newid, &format!("vm-{newid}-cloudinit"));
            log.push(format!("create full clone of drive {k} ({storage}:{vol})"));
            out.insert(k.clone(), format!("{st}:{newvol}{opts}"));
            continue;
        }
        if vmconf::is_cdrom(v) {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let disk = format!("vm-{newid}-disk-{n}");
        n += 1;
        if plan.full {
            let st = plan.storage.clone().unwrap_or_else(|| storage.to_string());
            let kind = cl.storage_kind(&st);
            let newvol = vmconf::volume_name(kind, newid, &disk);
            log.push(format!("create full clone of drive {k} ({storage}:{vol})"));
            if kind == StorageKind::Lvmthin {
                log.push(format!("  Logical volume \"{disk}\" created."));
            }
            let size = gib(vmconf::drive_size(v));
            log.push(format!(
                "transferred {size:.1} GiB of {size:.1} GiB (100.00%)"
            ));
            out.insert(k.clone(), format!("{st}:{newvol}{opts}"));
        } else {
            let kind = cl.storage_kind(storage);
            let newvol = if kind.file_based() {
                format!("{vol}/{}", vmconf::volume_name(kind, newid, &disk))
            } else {
                disk
            };
            log.push(format!(
                "create linked clone of drive {k} ({storage}:{vol})"
            ));
            out.insert(k.clone(), format!("{storage}:{newvol}{opts}"));
        }
    }
    (out, log)
}

fn check(ctx: &Ctx, cl: &Cluster, src: &Vm, newid: u32) -> Result<Plan, ApiError> {
    check_lock(src).map_err(ApiError::internal)?;
    if let Some(s) = ctx.p.get("snapname") {
        return Err(ApiError::internal(format!("snapshot '{s}' does not exist")));
    }
    let is_template = src.is_template();
    let full = match ctx.p.get("full").map(String::as_str) {
        Some("1") => true,
        Some(_) => false,
        None => !is_template,
    };
    if !full {
        if ctx.p.contains_key("storage") {
            return Err(ApiError::internal(
                "parameter 'storage' not allowed for linked clones",
            ));
        }
        if ctx.p.contains_key("format") {
            return Err(ApiError::internal(
                "parameter 'format' not allowed for linked clones",
            ));
        }
    }
    let target = ctx
        .p
        .get("target")
        .filter(|t| *t != "localhost" && **t != ctx.node)
        .cloned();
    let storage = ctx.p.get("storage").cloned();
    let target_node = target.clone().unwrap_or_else(|| ctx.node.clone());
    if let Some(t) = &target {
        if !cl.node_exists(t) {
            return Err(ApiError::internal(format!("no such cluster node '{t}'")));
        }
    }
    if let Some(s) = &storage {
        let st = cl
            .storage_on(s, &target_node)
            .ok_or_else(|| ApiError::internal(format!("storage '{s}' does not exist")))?;
        if !st.content.split(',').any(|c| c == "images") {
            return Err(ApiError::param(
                "storage",
                format!("storage '{s}' does not support vm images"),
            ));
        }
        if target.is_some() && !st.shared {
            return Err(ApiError::internal(format!(
                "can't clone to non-shared storage '{s}'"
            )));
        }
    }
    if let Some(t) = &target {
        let all_shared = Cluster::used_storages(&src.config)
            .iter()
            .all(|s| cl.storage(s).is_some_and(|st| st.shared));
        if !all_shared {
            return Err(ApiError::internal(format!(
                "can't clone VM to node '{t}' (VM uses local storage)"
            )));
        }
    }
    for (k, v) in src.config.iter().filter(|(k, _)| vmconf::is_drive_key(k)) {
        if vmconf::is_cdrom(v) {
            continue;
        }
        let Some((s, _)) = vmconf::volume_of(v) else {
            continue;
        };
        let volid = v.split(',').next().unwrap_or("");
        if !full && (!is_template || !cl.storage(s).is_some_and(|st| st.linked_clones)) {
            return Err(ApiError::internal(format!(
                "Linked clone feature is not supported for '{volid}' ({k})"
            )));
        }
    }
    if cl.vms.get(&newid).is_some_and(|vm| vm.node == ctx.node) {
        return Err(ApiError::internal(format!(
            "unable to create VM {newid}: config file already exists"
        )));
    }
    Ok(Plan {
        full,
        storage,
        target,
    })
}

pub(crate) fn clone_vm(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    let newid: u32 = ctx.p.get("newid").and_then(|v| v.parse().ok()).unwrap_or(0);
    ctx.require_vm(vmid, "VM.Clone")?;
    ctx.require_vm(newid, "VM.Allocate")?;
    let mut cl = ctx.shared.lock();
    crate::api_cluster::check_pool_exists(&cl, ctx.p.get("pool"))?;
    let src = vm_on(&cl, &ctx.node, vmid)?.clone();
    let plan = check(ctx, &cl, &src, newid)?;
    let node = ctx.node.clone();
    let (drives, mut log) = clone_drives(&cl, &src, newid, &plan);
    let pending: Vec<&str> = src
        .pending
        .keys()
        .chain(src.pending_delete.keys())
        .map(String::as_str)
        .collect();
    if !pending.is_empty() {
        log.insert(
            0,
            format!(
                "found pending changes for '{}', discarding for clone",
                pending.join(",")
            ),
        );
    }

    // Worker start: file locks (1 s), then the placeholder config `lock: clone`.
    let early_error = if cl.file_locks.contains(&vmid) {
        Some(file_lock_timeout(vmid))
    } else if cl.file_locks.contains(&newid) {
        Some(file_lock_timeout(newid))
    } else {
        cl.vms.get(&newid).map(|other| {
            format!(
                "close (rename) atomic file '/etc/pve/nodes/{}/qemu-server/{newid}.conf' failed: File exists",
                other.node
            )
        })
    };
    let log = if early_error.is_some() {
        Vec::new()
    } else {
        log
    };
    let duration = if early_error.is_some() {
        Duration::ZERO
    } else if plan.full {
        Duration::from_millis(cl.durations.full_clone_ms)
    } else {
        Duration::from_millis(cl.durations.clone_ms)
    };
    if early_error.is_none() {
        let mut placeholder = BTreeMap::new();
        placeholder.insert("lock".to_string(), "clone".to_string());
        cl.vms.insert(newid, Vm::new(newid, &node, placeholder));
    }
    let name = ctx.p.get("name").cloned();
    let description = ctx.p.get("description").cloned();
    let pool = ctx.p.get("pool").cloned();
    let finish: tasks::Finish = Box::new(move |cl, _log| {
        if let Some(e) = early_error {
            return Err(format!("clone failed: {e}"));
        }
        let mut config: BTreeMap<String, String> = src
            .config
            .iter()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()) && !k.starts_with("unused"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        config.extend(drives);
        let keys: Vec<String> = config
            .keys()
            .filter(|k| k.starts_with("net") && vmconf::key_type(k).is_some())
            .cloned()
            .collect();
        for k in keys {
            let mac = cl.random_mac();
            if let Some(v) = config.get_mut(&k) {
                *v = vmconf::net_with_mac(v, &mac);
            }
        }
        let uuid = cl.random_uuid();
        let smbios = vmconf::smbios_with_uuid(config.get("smbios1").map(String::as_str), &uuid);
        config.insert("smbios1".into(), smbios);
        if config.get("vmgenid").is_some_and(|g| g != "0") {
            let g = cl.random_uuid();
            config.insert("vmgenid".into(), g);
        }
        let name = name.unwrap_or_else(|| {
            format!(
                "Copy-of-VM-{}",
                src.config
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| vmid.to_string())
            )
        });
        config.insert("name".into(), name);
        if let Some(d) = description {
            config.insert("description".into(), d);
        }
        let mut vm = Vm::new(newid, plan.target.as_deref().unwrap_or(&node), config);
        if !plan.full {
            vm.linked_base = Some(vmid);
        }
        cl.vms.insert(newid, vm);
        if let Some(members) = pool.and_then(|p| cl.pools.get_mut(&p)) {
            members.insert(newid);
        }
        Ok(())
    });
    let spec = TaskSpec {
        node: ctx.node.clone(),
        kind: "qmclone",
        id: vmid.to_string(),
        user: ctx.ident.full(),
        duration,
        log,
        finish,
        rollback: Box::new(move |cl| {
            if cl.vms.get(&newid).and_then(|vm| vm.lock()) == Some("clone") {
                cl.vms.remove(&newid);
            }
        }),
    };
    let upid = tasks::spawn(ctx.shared, &mut cl, spec);
    Ok(Reply::data(json!(upid)))
}
