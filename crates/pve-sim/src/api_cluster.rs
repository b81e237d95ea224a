//! Cluster-wide and node endpoints: version, nodes, node status/storage, resources, nextid, pools.

use serde_json::{Map, Value, json};

use crate::config::StorageConfig;
use crate::dispatch::Ctx;
use crate::http::Reply;
use crate::model::{Cluster, Node, RrdSample, Vm};
use crate::params::ApiError;
use crate::vmconf;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

pub(crate) fn version(ctx: &Ctx) -> Result<Reply, ApiError> {
    let v = &ctx.shared.config.version;
    let release: String = v.split('.').take(2).collect::<Vec<_>>().join(".");
    Ok(Reply::data(json!({
        "version": v,
        "release": release,
        "repoid": "2a5fa54a8503f96d",
    })))
}

fn node_uptime(cl: &Cluster) -> u64 {
    cl.pstart() / 100
}

fn node_entry(ctx: &Ctx, cl: &Cluster, n: &Node, for_resources: bool) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(format!("node/{}", n.name)));
    e.insert("node".into(), json!(n.name));
    e.insert("type".into(), json!("node"));
    e.insert(
        "status".into(),
        json!(if n.online { "online" } else { "offline" }),
    );
    if ctx.ident.has("Sys.Audit") && n.online {
        let used_mem: u64 = cl
            .vms
            .values()
            .filter(|vm| vm.node == n.name && vm.running)
            .map(|vm| vm.maxmem() / 2)
            .sum::<u64>()
            + 2 * GIB;
        e.insert("level".into(), json!(""));
        e.insert("uptime".into(), json!(node_uptime(cl)));
        e.insert("cpu".into(), json!(0.0123));
        e.insert("maxcpu".into(), json!(n.cores));
        e.insert("mem".into(), json!(used_mem));
        e.insert("maxmem".into(), json!(n.memory_mib * MIB));
        e.insert("disk".into(), json!(4 * GIB));
        e.insert("maxdisk".into(), json!(100 * GIB));
        if for_resources {
            e.insert("cgroup-mode".into(), json!(2));
        } else {
            let fp = ctx.shared.fingerprint.clone().unwrap_or_else(|| {
                "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".into()
            });
            e.insert("ssl_fingerprint".into(), json!(fp));
        }
    }
    Value::Object(e)
}

pub(crate) fn nodes(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let list: Vec<Value> = cl
        .nodes
        .iter()
        .map(|n| node_entry(ctx, &cl, n, false))
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

pub(crate) fn node_status(ctx: &Ctx) -> Result<Reply, ApiError> {
    ctx.require(&format!("/nodes/{}", ctx.node), "Sys.Audit")?;
    let cl = ctx.shared.lock();
    let n = cl
        .node(&ctx.node)
        .ok_or_else(|| ApiError::internal("no such node"))?;
    let total = n.memory_mib * MIB;
    let used = 2 * GIB;
    Ok(Reply::data(json!({
        "uptime": node_uptime(&cl),
        "cpu": 0.0123,
        "wait": 0.0,
        "loadavg": ["0.12", "0.10", "0.08"],
        "memory": {"total": total, "used": used, "free": total.saturating_sub(used)},
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": 100 * GIB, "used": 4 * GIB, "free": 96 * GIB, "avail": 96 * GIB},
        "cpuinfo": {"cpus": n.cores, "cores": n.cores, "sockets": 1, "model": "Simulated CPU", "mhz": "2400.000", "hvm": "1", "flags": ""},
        "pveversion": format!("pve-manager/{}/2a5fa54a8503f96d", ctx.shared.config.version),
        "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4 x86_64",
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {"sysname": "Linux", "release": "6.8.12-4-pve", "machine": "x86_64"},
        "idle": 0,
        "ksm": {"shared": 0},
    })))
}

/// Bytes used on `storage` by VMs (on `node` unless the storage is shared).
fn storage_used(cl: &Cluster, storage: &str, node: &str, shared: bool) -> u64 {
    cl.vms
        .values()
        .filter(|vm| shared || vm.node == node)
        .flat_map(|vm| vm.config.iter())
        .filter(|(k, v)| {
            vmconf::is_drive_key(k) && vmconf::volume_of(v).is_some_and(|(s, _)| s == storage)
        })
        .map(|(_, v)| vmconf::drive_size(v))
        .sum()
}

pub(crate) fn node_storage(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let content = ctx.p.get("content");
    let only = ctx.p.get("storage");
    let list: Vec<Value> = cl
        .storages_on(&ctx.node)
        .into_iter()
        .filter(|s| only.is_none_or(|o| *o == s.id))
        .filter(|s| content.is_none_or(|c| s.content.split(',').any(|x| x == c)))
        .filter(|_| ctx.ident.has("Datastore.Audit") || ctx.ident.has("Datastore.AllocateSpace"))
        .map(|s| {
            let total = s.size_gib * GIB;
            let used = storage_used(&cl, &s.id, &ctx.node, s.shared);
            json!({
                "storage": s.id, "type": s.kind.as_str(), "content": s.content,
                "shared": u8::from(s.shared), "active": 1, "enabled": 1,
                "total": total, "used": used, "avail": total.saturating_sub(used),
                "used_fraction": used as f64 / total.max(1) as f64,
            })
        })
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// The `/cluster/resources` entry of a guest (`extract_vm_stats` + live `tags`, `lock`,
/// `pool`). Stats, name and template come from the last pvestatd sample when the lag is on.
fn vm_resource(ctx: &Ctx, cl: &Cluster, vm: &Vm) -> Map<String, Value> {
    let lag = ctx.shared.config.resources_lag_ms > 0;
    let sample = if lag {
        cl.rrd.get(&vm.vmid).cloned()
    } else {
        Some(RrdSample::of(vm))
    };
    let mut e = Map::new();
    e.insert("id".into(), json!(format!("qemu/{}", vm.vmid)));
    e.insert("vmid".into(), json!(vm.vmid));
    e.insert("node".into(), json!(vm.node));
    e.insert("type".into(), json!("qemu"));
    match sample {
        Some(s) => {
            let running = s.status != "stopped";
            e.insert("status".into(), json!(s.status));
            e.insert("name".into(), json!(s.name));
            e.insert("template".into(), json!(u8::from(s.template)));
            e.insert("uptime".into(), json!(s.uptime));
            e.insert("maxcpu".into(), json!(s.maxcpu));
            e.insert("cpu".into(), json!(if running { 0.01 } else { 0.0 }));
            e.insert("maxmem".into(), json!(s.maxmem));
            e.insert("mem".into(), json!(if running { s.maxmem / 3 } else { 0 }));
            e.insert("maxdisk".into(), json!(s.maxdisk));
            e.insert("disk".into(), json!(0));
            for k in ["netin", "netout", "diskread", "diskwrite"] {
                e.insert(k.into(), json!(0));
            }
        }
        None => {
            e.insert("status".into(), json!("unknown"));
        }
    }
    if let Some(t) = vm.config.get("tags").filter(|t| !t.is_empty()) {
        e.insert("tags".into(), json!(t));
    }
    if let Some(l) = vm.lock() {
        e.insert("lock".into(), json!(l));
    }
    if let Some(p) = cl.pool_of(vm.vmid).filter(|_| ctx.ident.has("Pool.Audit")) {
        e.insert("pool".into(), json!(p));
    }
    e
}

/// Guests in the order PVE walks the vmlist (`sort keys`: string order, 1000 before 101).
fn vms_in_pve_order(cl: &Cluster) -> Vec<&Vm> {
    let mut vms: Vec<&Vm> = cl.vms.values().collect();
    vms.sort_by_key(|vm| vm.vmid.to_string());
    vms
}

pub(crate) fn resources(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let ty = ctx.p.get("type").map(String::as_str);
    let mut out = Vec::new();
    if ty.is_none() && ctx.ident.has("Pool.Audit") {
        // Pool entries first, with the stats of their running members summed up.
        for (pool, members) in &cl.pools {
            let mut e = Map::new();
            e.insert("id".into(), json!(format!("/pool/{pool}")));
            e.insert("pool".into(), json!(pool));
            e.insert("type".into(), json!("pool"));
            for vm in members.iter().filter_map(|id| cl.vms.get(id)) {
                let v = vm_resource(ctx, &cl, vm);
                let uptime = v.get("uptime").and_then(Value::as_u64).unwrap_or(0);
                if uptime == 0 {
                    continue;
                }
                let old = e.get("uptime").and_then(Value::as_u64).unwrap_or(0);
                e.insert("uptime".into(), json!(old.max(uptime)));
                for k in ["mem", "maxmem", "maxcpu"] {
                    let sum = e.get(k).and_then(Value::as_u64).unwrap_or(0)
                        + v.get(k).and_then(Value::as_u64).unwrap_or(0);
                    e.insert(k.into(), json!(sum));
                }
                let cpu = e.get("cpu").and_then(Value::as_f64).unwrap_or(0.0)
                    + v.get("cpu").and_then(Value::as_f64).unwrap_or(0.0);
                e.insert("cpu".into(), json!(cpu));
            }
            out.push(Value::Object(e));
        }
    }
    if ty.is_none() || ty == Some("vm") {
        for vm in vms_in_pve_order(&cl) {
            if !ctx.ident.has("VM.Audit") {
                continue;
            }
            out.push(Value::Object(vm_resource(ctx, &cl, vm)));
        }
    }
    if ty.is_none() || ty == Some("node") {
        for n in &cl.nodes {
            out.push(node_entry(ctx, &cl, n, true));
        }
    }
    if (ty.is_none() || ty == Some("storage")) && ctx.ident.has("Datastore.Audit") {
        for n in &cl.nodes {
            for s in cl.storages_on(&n.name) {
                out.push(storage_resource(&cl, &n.name, n.online, s));
            }
        }
    }
    Ok(Reply::data(Value::Array(out)))
}

fn storage_resource(cl: &Cluster, node: &str, online: bool, s: &StorageConfig) -> Value {
    let used = storage_used(cl, &s.id, node, s.shared);
    json!({
        "id": format!("storage/{node}/{}", s.id),
        "storage": s.id, "node": node, "type": "storage",
        "plugintype": s.kind.as_str(),
        "status": if online { "available" } else { "unknown" },
        "shared": u8::from(s.shared), "content": s.content,
        "disk": used, "maxdisk": s.size_gib * GIB,
    })
}

pub(crate) fn nextid(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    if let Some(v) = ctx.p.get("vmid") {
        let id: u32 = v.parse().unwrap_or(0);
        if cl.vms.contains_key(&id) {
            return Err(ApiError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(Reply::data(json!(v)));
    }
    let lower = ctx.shared.config.nextid_lower.max(100);
    let upper = 1_000_000u32;
    (lower..upper)
        .find(|id| !cl.vms.contains_key(id))
        .map(|id| Reply::data(json!(id.to_string())))
        .ok_or_else(|| {
            ApiError::internal(format!(
                "unable to get any free VMID in range [{lower}, {upper}]"
            ))
        })
}

/// `GET /pools`: `[{poolid}]`; with `poolid`, that pool with its `members` (PVE 8.x).
pub(crate) fn pools(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    if let Some(id) = ctx.p.get("poolid") {
        let members = pool_members(ctx, &cl, id)?;
        return Ok(Reply::data(json!([{"poolid": id, "members": members}])));
    }
    let list: Vec<Value> = cl
        .pools
        .keys()
        .filter(|_| ctx.ident.has("Pool.Audit"))
        .map(|p| json!({ "poolid": p }))
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

fn pool_members(ctx: &Ctx, cl: &Cluster, id: &str) -> Result<Vec<Value>, ApiError> {
    ctx.require(&format!("/pool/{id}"), "Pool.Audit")?;
    let members = cl
        .pools
        .get(id)
        .ok_or_else(|| ApiError::internal(format!("pool '{id}' does not exist")))?;
    let want = ctx.p.get("type").map(String::as_str);
    Ok(members
        .iter()
        .filter_map(|vmid| cl.vms.get(vmid))
        .filter(|_| want.is_none_or(|w| w == "qemu"))
        .map(|vm| Value::Object(vm_resource(ctx, cl, vm)))
        .collect())
}

/// `GET /pools/{poolid}`: `{members: [...]}`, or 500 `pool '<id>' does not exist`.
pub(crate) fn pool(ctx: &Ctx) -> Result<Reply, ApiError> {
    let id = ctx.p.get("poolid").cloned().unwrap_or_default();
    let cl = ctx.shared.lock();
    let members = pool_members(ctx, &cl, &id)?;
    Ok(Reply::data(json!({ "members": members })))
}

/// `pool` parameter of create/clone: the pool must exist (`check_pool_exist`, a 403).
pub(crate) fn check_pool_exists(cl: &Cluster, pool: Option<&String>) -> Result<(), ApiError> {
    match pool {
        Some(p) if !cl.pools.contains_key(p) => Err(ApiError::Status {
            code: 403,
            message: format!("Permission check failed (pool '{p}' does not exist)"),
        }),
        _ => Ok(()),
    }
}

/// `GET /nodes/{node}/storage/{storage}/content`: the VM images on a storage (disks and
/// cloud-init drives of the VMs that use it; ISOs referenced by a VM are listed as `iso`).
/// The simulator keeps no other files, so `vztmpl`, `backup`, `snippets` lists are empty.
pub(crate) fn storage_content(ctx: &Ctx) -> Result<Reply, ApiError> {
    let sid = ctx.p.get("storage").cloned().unwrap_or_default();
    if !(ctx.ident.has("Datastore.Audit") || ctx.ident.has("Datastore.AllocateSpace")) {
        return Err(ApiError::forbidden(
            &format!("/storage/{sid}"),
            "Datastore.Audit|Datastore.AllocateSpace",
        ));
    }
    let cl = ctx.shared.lock();
    let Some(st) = cl.storage(&sid) else {
        return Err(ApiError::internal(format!(
            "storage '{sid}' does not exist"
        )));
    };
    if cl.storage_on(&sid, &ctx.node).is_none() {
        return Err(ApiError::internal(format!(
            "storage '{sid}' is not available on node '{}'",
            ctx.node
        )));
    }
    let want = ctx.p.get("content").map(String::as_str);
    let want_vmid: Option<u32> = ctx.p.get("vmid").and_then(|v| v.parse().ok());
    let format = if st.kind.file_based() { "qcow2" } else { "raw" };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for vm in cl
        .vms
        .values()
        .filter(|vm| st.shared || vm.node == ctx.node)
    {
        for (_, v) in vm.config.iter().filter(|(k, _)| vmconf::is_drive_key(k)) {
            let Some((s, vol)) = vmconf::volume_of(v) else {
                continue;
            };
            if s != sid {
                continue;
            }
            let volid = format!("{s}:{vol}");
            let iso = vol.starts_with("iso/");
            let content = if iso { "iso" } else { "images" };
            if want.is_some_and(|w| w != content) || !seen.insert(volid.clone()) {
                continue;
            }
            let mut e = Map::new();
            e.insert("volid".into(), json!(volid));
            e.insert("content".into(), json!(content));
            if iso {
                e.insert("format".into(), json!("iso"));
            } else {
                if want_vmid.is_some_and(|w| w != vm.vmid) {
                    continue;
                }
                e.insert("format".into(), json!(format));
                e.insert("vmid".into(), json!(vm.vmid));
            }
            let size = if vmconf::is_cloudinit(v) {
                4 * MIB
            } else {
                vmconf::drive_size(v)
            };
            e.insert("size".into(), json!(size));
            out.push(Value::Object(e));
        }
    }
    Ok(Reply::data(Value::Array(out)))
}
