//! VM endpoints: list, create, config (GET/POST/PUT), status, start/stop/shutdown, template, destroy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::dispatch::{Ctx, check_lock, file_lock_timeout, vm_on, vm_on_mut};
use crate::http::Reply;
use crate::model::{Cluster, Vm};
use crate::params::{ApiError, Params, flag};
use crate::tasks::{self, TaskSpec};
use crate::vmconf;

const CONTROL: &[&str] = &[
    "node",
    "vmid",
    "skiplock",
    "digest",
    "delete",
    "revert",
    "force",
    "background_delay",
    "import-working-storage",
    "pool",
    "storage",
    "start",
    "unique",
    "archive",
    "bwlimit",
    "live-restore",
];

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn vm_summary(vm: &Vm, full: bool) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("vmid".into(), json!(vm.vmid));
    e.insert("status".into(), json!(vm.status()));
    e.insert("name".into(), json!(vm.name()));
    e.insert("cpus".into(), json!(vm.cpus()));
    e.insert("maxmem".into(), json!(vm.maxmem()));
    e.insert("maxdisk".into(), json!(vm.maxdisk()));
    e.insert("disk".into(), json!(0));
    e.insert(
        "mem".into(),
        json!(if vm.running { vm.maxmem() / 3 } else { 0 }),
    );
    e.insert("cpu".into(), json!(if vm.running { 0.01 } else { 0.0 }));
    e.insert("uptime".into(), json!(vm.uptime()));
    for k in ["netin", "netout", "diskread", "diskwrite"] {
        e.insert(k.into(), json!(0));
    }
    if let Some(pid) = vm.pid {
        e.insert("pid".into(), json!(pid));
    }
    if vm.is_template() {
        e.insert("template".into(), json!(1));
    }
    if let Some(l) = vm.lock() {
        e.insert("lock".into(), json!(l));
    }
    if let Some(t) = vm.config.get("tags").filter(|t| !t.is_empty()) {
        e.insert("tags".into(), json!(t));
    }
    if vm.config.keys().any(|k| k.starts_with("serial")) {
        e.insert("serial".into(), json!(1));
    }
    if full {
        e.insert(
            "qmpstatus".into(),
            json!(if vm.running {
                vm.qmpstatus.as_str()
            } else {
                "stopped"
            }),
        );
        if vm.running {
            e.insert("running-machine".into(), json!("pc-i440fx-9.2+pve1"));
            e.insert("running-qemu".into(), json!("9.2.0"));
            e.insert(
                "proxmox-support".into(),
                json!({"pbs-library-version": "1.5.1", "query-bitmap-info": true}),
            );
            // Per-device counters (QMP `query-blockstats`, tap interfaces) and the balloon.
            let mut nics = Map::new();
            let mut blockstat = Map::new();
            for k in vm.config.keys() {
                if let Some(n) = k
                    .strip_prefix("net")
                    .filter(|_| vmconf::key_type(k).is_some())
                {
                    nics.insert(
                        format!("tap{}i{n}", vm.vmid),
                        json!({"netin": 0, "netout": 0}),
                    );
                } else if vmconf::is_drive_key(k) {
                    blockstat.insert(
                        k.clone(),
                        json!({"rd_bytes": 0, "wr_bytes": 0, "rd_operations": 0,
                               "wr_operations": 0, "flush_operations": 0}),
                    );
                }
            }
            e.insert("nics".into(), Value::Object(nics));
            e.insert("blockstat".into(), Value::Object(blockstat));
            if vm.config.get("balloon").map(String::as_str) != Some("0") {
                let max = vm.maxmem();
                e.insert("balloon".into(), json!(max));
                e.insert(
                    "ballooninfo".into(),
                    json!({"actual": max, "max_mem": max, "total_mem": max,
                           "free_mem": max / 2, "mem_swapped_in": 0, "mem_swapped_out": 0}),
                );
                e.insert("freemem".into(), json!(max / 2));
            }
        }
    }
    e
}

pub(crate) fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let cl = ctx.shared.lock();
    let full = flag(&ctx.p, "full");
    let list: Vec<Value> = cl
        .vms
        .values()
        .filter(|vm| vm.node == ctx.node && ctx.ident.has("VM.Audit"))
        .map(|vm| Value::Object(vm_summary(vm, full)))
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

pub(crate) fn index(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Audit")?;
    let cl = ctx.shared.lock();
    vm_on(&cl, &ctx.node, vmid)?;
    let dirs = [
        "config",
        "pending",
        "status",
        "unlink",
        "vncproxy",
        "termproxy",
        "migrate",
        "resize",
        "move",
        "rrd",
        "rrddata",
        "monitor",
        "agent",
        "snapshot",
        "spiceproxy",
        "sendkey",
        "firewall",
        "mtunnel",
        "remote_migrate",
    ];
    Ok(Reply::data(Value::Array(
        dirs.iter().map(|d| json!({"subdir": d})).collect(),
    )))
}

pub(crate) fn status_current(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Audit")?;
    let cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    let mut e = vm_summary(vm, true);
    e.insert("ha".into(), json!({"managed": 0}));
    if vmconf::agent_enabled(&vm.config) {
        e.insert("agent".into(), json!(1));
    }
    if vm.config.contains_key("vga") {
        e.insert("clipboard".into(), Value::Null);
    }
    Ok(Reply::data(Value::Object(e)))
}

pub(crate) fn config_get(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Audit")?;
    if ctx.p.contains_key("snapshot") && ctx.p.contains_key("current") {
        let mut m = BTreeMap::new();
        m.insert(
            "snapshot".to_string(),
            "option conflicts with other option 'current'".to_string(),
        );
        m.insert(
            "current".to_string(),
            "option conflicts with other option 'snapshot'".to_string(),
        );
        return Err(ApiError::Params(m));
    }
    let cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    if let Some(s) = ctx.p.get("snapshot") {
        return Err(ApiError::internal(format!("snapshot '{s}' does not exist")));
    }
    let current = flag(&ctx.p, "current");
    let config = if current {
        vm.config.clone()
    } else {
        vm.merged_config()
    };
    let mut out = Map::new();
    for (k, v) in &config {
        let val = if k == "cipassword" {
            json!("**********")
        } else {
            vmconf::json_value(k, v)
        };
        out.insert(k.clone(), val);
    }
    out.insert("digest".into(), json!(vm.digest()));
    Ok(Reply::data(Value::Object(out)))
}

/// `GET …/pending`: every key with its current `value`, its `pending` value and a pending
/// `delete` flag (1, or 2 for a forced delete), like `GuestHelpers::config_with_pending_array`;
/// `digest` is listed as a key too.
pub(crate) fn pending(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Audit")?;
    let cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    let shown = |k: &str, v: &str| {
        if k == "cipassword" {
            json!("**********")
        } else {
            vmconf::json_value(k, v)
        }
    };
    let mut keys: std::collections::BTreeSet<&str> = vm.config.keys().map(String::as_str).collect();
    keys.extend(vm.pending.keys().map(String::as_str));
    keys.extend(vm.pending_delete.keys().map(String::as_str));
    let digest = vm.digest();
    keys.insert("digest");
    let mut out = Vec::new();
    for k in keys {
        let mut e = Map::new();
        e.insert("key".into(), json!(k));
        if k == "digest" {
            e.insert("value".into(), json!(digest));
        } else if let Some(v) = vm.config.get(k) {
            e.insert("value".into(), shown(k, v));
        }
        if let Some(p) = vm.pending.get(k) {
            e.insert("pending".into(), shown(k, p));
        }
        if let Some(force) = vm.pending_delete.get(k) {
            e.insert("delete".into(), json!(if *force { 2 } else { 1 }));
        }
        out.push(Value::Object(e));
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET …/status`: the directory index.
pub(crate) fn status_index(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    let cl = ctx.shared.lock();
    vm_on(&cl, &ctx.node, vmid)?;
    let dirs = [
        "current", "start", "stop", "reset", "shutdown", "suspend", "reboot", "resume",
    ];
    Ok(Reply::data(Value::Array(
        dirs.iter().map(|d| json!({"subdir": d})).collect(),
    )))
}

/// The privilege a config key needs (`None` = root only).
fn key_privileges(key: &str, value: Option<&str>) -> Option<&'static [&'static str]> {
    if vmconf::root_only_key(key) {
        return None;
    }
    let p: &'static [&'static str] = match key {
        "cores" | "sockets" | "vcpus" | "cpu" | "cpulimit" | "cpuunits" | "numa" | "smp"
        | "affinity" => &["VM.Config.CPU"],
        "memory" | "balloon" | "shares" => &["VM.Config.Memory"],
        "ciuser" | "cipassword" | "sshkeys" | "cicustom" | "citype" | "ciupgrade"
        | "nameserver" | "searchdomain" => &["VM.Config.Cloudinit", "VM.Config.Network"],
        "boot" | "bootdisk" | "vmstatestorage" => &["VM.Config.Disk"],
        "acpi" | "hotplug" | "kvm" | "machine" | "scsihw" | "smbios1" | "tablet" | "vga"
        | "watchdog" | "audio0" | "rng0" => &["VM.Config.HWType"],
        k if k.starts_with("net") => &["VM.Config.Network"],
        k if k.starts_with("ipconfig") => &["VM.Config.Cloudinit", "VM.Config.Network"],
        k if vmconf::is_drive_key(k) => {
            if value.is_some_and(vmconf::is_cloudinit) {
                &["VM.Config.Cloudinit"]
            } else if value.is_some_and(vmconf::is_cdrom) {
                &["VM.Config.CDROM"]
            } else {
                &["VM.Config.Disk"]
            }
        }
        _ => &["VM.Config.Options"],
    };
    Some(p)
}

const ANY_CONFIG: &str = "VM.Config.Disk|VM.Config.CDROM|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.HWType|VM.Config.Options|VM.Config.Cloudinit";

fn check_key_perms(ctx: &Ctx, vmid: u32, key: &str, value: Option<&str>) -> Result<(), ApiError> {
    match key_privileges(key, value) {
        None if !ctx.ident.is_root() => Err(ApiError::internal(format!(
            "only root can set '{key}' config"
        ))),
        None => Ok(()),
        Some(privs) => {
            if privs.iter().any(|p| ctx.ident.has(p)) {
                Ok(())
            } else {
                Err(ApiError::forbidden(
                    &format!("/vms/{vmid}"),
                    &privs.join("|"),
                ))
            }
        }
    }
}

/// Config keys among the params (everything not a control parameter).
fn config_params(p: &Params) -> BTreeMap<String, String> {
    p.iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Per-value work that needs state: MACs for `net[n]`, sshkeys decoding check.
fn finalize_values(cl: &mut Cluster, set: &mut BTreeMap<String, String>) -> Result<(), ApiError> {
    if let Some(keys) = set.get("sshkeys") {
        vmconf::check_ssh_keys(keys).map_err(ApiError::internal)?;
    }
    for (k, v) in set.iter_mut() {
        if k.starts_with("net") && vmconf::net_needs_mac(v) {
            let mac = cl.random_mac();
            *v = vmconf::net_with_mac(v, &mac);
        }
    }
    Ok(())
}

fn check_balloon(config: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if let Some(b) = config.get("balloon").and_then(|b| b.parse::<u64>().ok()) {
        if b > vmconf::memory_mib(config) {
            return Err(ApiError::param(
                "balloon",
                "balloon value too large (must be smaller than assigned memory)",
            ));
        }
    }
    Ok(())
}

/// PUT/POST config. With `as_task`, returns the UPID of a `qmconfig` task.
pub(crate) fn config_update(ctx: &Ctx, as_task: bool) -> Result<Option<String>, ApiError> {
    let vmid = ctx.vmid();
    let skiplock = ctx.skiplock()?;
    let mut set = config_params(&ctx.p);
    let delete: Vec<String> = ctx
        .p
        .get("delete")
        .map(|d| vmconf::split_list(d))
        .unwrap_or_default();
    let revert: Vec<String> = ctx
        .p
        .get("revert")
        .map(|d| vmconf::split_list(d))
        .unwrap_or_default();
    for k in &delete {
        if vmconf::key_type(k).is_none() {
            return Err(ApiError::param("delete", format!("unknown option '{k}'")));
        }
        if set.contains_key(k) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{k}' and -delete {k}' at the same time"),
            ));
        }
    }
    if let Some(keys) = set.get("sshkeys") {
        vmconf::check_ssh_keys(keys).map_err(ApiError::internal)?;
    }
    if set.is_empty() && delete.is_empty() && revert.is_empty() {
        return Err(ApiError::internal("no options specified"));
    }
    if !ANY_CONFIG.split('|').any(|p| ctx.ident.has(p)) {
        return Err(ApiError::forbidden(&format!("/vms/{vmid}"), ANY_CONFIG));
    }
    for (k, v) in &set {
        check_key_perms(ctx, vmid, k, Some(v))?;
    }
    for k in &delete {
        check_key_perms(ctx, vmid, k, None)?;
    }
    let mut cl = ctx.shared.lock();
    if cl.file_locks.contains(&vmid) {
        return Err(ApiError::internal(file_lock_timeout(vmid)));
    }
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    if let Some(d) = ctx.p.get("digest") {
        if *d != vm.digest() {
            return Err(ApiError::internal(
                "checksum mismatch (file change by other user?)",
            ));
        }
    }
    if !skiplock {
        check_lock(vm).map_err(ApiError::internal)?;
    }
    let running = vm.running;
    let mut config = vm.config.clone();
    let mut pending = vm.pending.clone();
    let mut pending_delete = vm.pending_delete.clone();
    finalize_values(&mut cl, &mut set)?;
    let force = flag(&ctx.p, "force");
    let mut log = vec![];
    let mut summary = format!("update VM {vmid}:");
    for k in &revert {
        pending.remove(k);
        pending_delete.remove(k);
    }
    for k in &delete {
        pending.remove(k);
        if config.contains_key(k) {
            pending_delete.insert(k.clone(), force);
        }
        summary.push_str(&format!(" -delete {k}"));
    }
    for (k, v) in &set {
        pending.insert(k.clone(), v.clone());
        pending_delete.remove(k);
        let shown = if k == "cipassword" {
            "<hidden>"
        } else {
            v.as_str()
        };
        summary.push_str(&format!(" -{k} {shown}"));
    }
    // Stopped: everything is applied; running: fast-plug and hotpluggable keys only.
    let live_deletes: Vec<String> = pending_delete
        .keys()
        .filter(|k| !running || vmconf::applies_live(k, None, &config))
        .cloned()
        .collect();
    for k in live_deletes {
        pending_delete.remove(&k);
        config.remove(&k);
    }
    let live_sets: Vec<String> = pending
        .iter()
        .filter(|(k, v)| !running || vmconf::applies_live(k, Some(v), &config))
        .map(|(k, _)| k.clone())
        .collect();
    for k in live_sets {
        if let Some(v) = pending.remove(&k) {
            config.insert(k, v);
        }
    }
    // `cleanup_pending`: a pending value equal to the current one, or a pending delete of a key
    // that is not set, is no change.
    pending.retain(|k, v| config.get(k) != Some(v));
    pending_delete.retain(|k, _| config.contains_key(k));
    let mut merged = config.clone();
    for k in pending_delete.keys() {
        merged.remove(k);
    }
    merged.extend(pending.clone());
    check_balloon(&merged)?;
    log.push(summary);
    if config.get("tags").is_some_and(String::is_empty) {
        config.remove("tags");
    }
    let vm = vm_on_mut(&mut cl, &ctx.node, vmid)?;
    vm.config = config;
    vm.pending = pending;
    vm.pending_delete = pending_delete;
    if !as_task {
        return Ok(None);
    }
    let spec = TaskSpec {
        node: ctx.node.clone(),
        kind: "qmconfig",
        id: vmid.to_string(),
        user: ctx.ident.full(),
        duration: ms(cl.durations.config_ms),
        log,
        finish: Box::new(|_, _| Ok(())),
        rollback: Box::new(|_| {}),
    };
    Ok(Some(tasks::spawn(ctx.shared, &mut cl, spec)))
}

pub(crate) async fn config_post(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let upid = config_update(ctx, true)?.unwrap_or_default();
    let Some(delay) = ctx
        .p
        .get("background_delay")
        .and_then(|d| d.parse::<u64>().ok())
    else {
        return Ok(Reply::data(json!(upid)));
    };
    let deadline = Instant::now() + Duration::from_secs(delay);
    loop {
        {
            let cl = ctx.shared.lock();
            if let Some(t) = cl.task(&upid) {
                match t.exitstatus.as_deref() {
                    Some("OK") => return Ok(Reply::data(Value::Null)),
                    Some(x) => {
                        return Err(ApiError::internal(format!(
                            "failed to update VM {}: {x}",
                            ctx.vmid()
                        )));
                    }
                    None => {}
                }
            }
        }
        if Instant::now() >= deadline {
            return Ok(Reply::data(json!(upid)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spec(
    ctx: &Ctx,
    kind: &'static str,
    duration: u64,
    log: Vec<String>,
    finish: tasks::Finish,
) -> TaskSpec {
    TaskSpec {
        node: ctx.node.clone(),
        kind,
        id: ctx.vmid().to_string(),
        user: ctx.ident.full(),
        duration: ms(duration),
        log,
        finish,
        rollback: Box::new(|_| {}),
    }
}

pub(crate) fn start(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.PowerMgmt")?;
    let skiplock = ctx.skiplock()?;
    let node = ctx.node.clone();
    let agent_delay = ms(ctx.shared.config.agent_delay_ms);
    let pool = ctx.shared.config.dhcp_pool.clone();
    let mut cl = ctx.shared.lock();
    // The worker checks config, template and lock right when it starts; the task duration is
    // the QEMU start after that. Everything is checked again when the duration is over
    // (`already running` only then: a stop still in progress may finish first).
    let early = start_checks(&cl, &node, vmid, skiplock, false).err();
    let finish: tasks::Finish = Box::new(move |cl, log| {
        if let Some(e) = early {
            return Err(e);
        }
        start_checks(cl, &node, vmid, skiplock, true)?;
        if cl
            .vms
            .get(&vmid)
            .is_some_and(|vm| vm.config.values().any(|v| vmconf::is_cloudinit(v)))
        {
            log.push("generating cloud-init ISO".into());
        }
        boot_vm(cl, vmid, agent_delay, &pool);
        Ok(())
    });
    let duration = cl.durations.start_ms;
    let upid = tasks::spawn(
        ctx.shared,
        &mut cl,
        spec(ctx, "qmstart", duration, vec![], finish),
    );
    Ok(Reply::data(json!(upid)))
}

/// `vm_start`'s checks, in PVE's order: config, template, lock (a `suspended` lock is resumed),
/// and with `running_check`, already running.
fn start_checks(
    cl: &Cluster,
    node: &str,
    vmid: u32,
    skiplock: bool,
    running_check: bool,
) -> Result<(), String> {
    let vm = cl
        .vms
        .get(&vmid)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| {
            format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        })?;
    if vm.is_template() {
        return Err("you can't start a vm if it's a template".into());
    }
    if !skiplock && vm.lock() != Some("suspended") {
        check_lock(vm)?;
    }
    if running_check && vm.running {
        return Err(format!("VM {vmid} already running"));
    }
    Ok(())
}

/// Start the VM process: pending changes are applied first (qemu-server `vm_start`), a
/// to-disk suspension (`lock: suspended`) is resumed, the agent answers after `agent_delay`.
pub(crate) fn boot_vm(
    cl: &mut Cluster,
    vmid: u32,
    agent_delay: Duration,
    pool: &crate::config::DhcpPool,
) {
    let Some(vm) = cl.vms.get_mut(&vmid) else {
        return;
    };
    vm.apply_pending();
    if vm.lock() == Some("suspended") {
        vm.config.remove("lock");
        vm.config.remove("vmstate");
    }
    let needs_dhcp = vmconf::static_ip(&vm.config).is_none() && vm.dhcp_ip.is_none();
    let pid = cl.alloc_pid();
    let ip = if needs_dhcp {
        cl.alloc_dhcp(pool)
    } else {
        None
    };
    if let Some(vm) = cl.vms.get_mut(&vmid) {
        let now = Instant::now();
        vm.running = true;
        vm.qmpstatus = "running".into();
        vm.started = Some(now);
        vm.agent_ready = Some(now + agent_delay);
        vm.pid = Some(pid);
        if ip.is_some() {
            vm.dhcp_ip = ip;
        }
    }
}

pub(crate) fn stop_vm(cl: &mut Cluster, vmid: u32) {
    if let Some(vm) = cl.vms.get_mut(&vmid) {
        vm.running = false;
        vm.qmpstatus = "stopped".into();
        vm.started = None;
        vm.agent_ready = None;
        vm.pid = None;
        if let Some(ip) = vm.dhcp_ip.take() {
            cl.dhcp_used.remove(&ip);
        }
    }
}

pub(crate) fn stop(ctx: &Ctx, shutdown: bool) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.PowerMgmt")?;
    let skiplock = ctx.skiplock()?;
    let node = ctx.node.clone();
    let mut cl = ctx.shared.lock();
    if shutdown && !flag(&ctx.p, "forceStop") {
        if let Some(vm) = cl.vms.get(&vmid).filter(|vm| vm.node == node) {
            if vm.running && matches!(vm.qmpstatus.as_str(), "paused" | "prelaunch" | "suspended") {
                return Err(ApiError::internal("VM is paused - cannot shutdown"));
            }
        }
    }
    let finish: tasks::Finish = Box::new(move |cl, _log| {
        let vm = cl
            .vms
            .get(&vmid)
            .filter(|vm| vm.node == node)
            .ok_or_else(|| {
                format!("unable to find configuration file for VM {vmid} on node '{node}'")
            })?;
        if !vm.running {
            return Ok(());
        }
        if !skiplock {
            check_lock(vm)?;
        }
        stop_vm(cl, vmid);
        Ok(())
    });
    let (kind, duration) = if shutdown {
        ("qmshutdown", cl.durations.shutdown_ms)
    } else {
        ("qmstop", cl.durations.stop_ms)
    };
    let upid = tasks::spawn(
        ctx.shared,
        &mut cl,
        spec(ctx, kind, duration, vec![], finish),
    );
    Ok(Reply::data(json!(upid)))
}

pub(crate) fn destroy(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Allocate")?;
    let skiplock = ctx.skiplock()?;
    let node = ctx.node.clone();
    let mut cl = ctx.shared.lock();
    let vm = vm_on(&cl, &node, vmid)?;
    if vm.config.get("protection").map(String::as_str) == Some("1") {
        return Err(ApiError::internal(format!(
            "can't remove VM {vmid} - protection mode enabled"
        )));
    }
    if vm.running {
        return Err(ApiError::internal(format!(
            "VM {vmid} is running - destroy failed"
        )));
    }
    let finish: tasks::Finish = Box::new(move |cl, log| {
        let vm = cl
            .vms
            .get(&vmid)
            .filter(|vm| vm.node == node)
            .ok_or_else(|| {
                format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
            })?;
        if !skiplock && vm.lock() != Some("suspended") {
            check_lock(vm)?;
        }
        if vm.running {
            return Err(format!("VM {vmid} is running - destroy failed"));
        }
        if cl.vms.values().any(|v| v.linked_base == Some(vmid)) {
            let volid = vm
                .config
                .iter()
                .filter(|(k, v)| vmconf::is_drive_key(k) && !vmconf::is_cdrom(v))
                .find_map(|(_, v)| v.split(',').next().map(str::to_string))
                .unwrap_or_default();
            return Err(format!(
                "base volume '{volid}' is still in use by linked cloned"
            ));
        }
        for (_, v) in vm.config.iter().filter(|(k, _)| vmconf::is_drive_key(k)) {
            let Some((storage, vol)) = vmconf::volume_of(v) else {
                continue;
            };
            if vmconf::is_cdrom(v) && !vmconf::is_cloudinit(v) {
                continue;
            }
            if cl.storage_kind(storage) == crate::config::StorageKind::Lvmthin {
                let lv = vol.rsplit('/').next().unwrap_or(vol);
                log.push(format!("  Logical volume \"{lv}\" successfully removed."));
            } else {
                log.push("Removing image: 100% complete...done.".into());
            }
        }
        cl.vms.remove(&vmid);
        cl.rrd.remove(&vmid);
        cl.leave_pools(vmid);
        Ok(())
    });
    let duration = cl.durations.destroy_ms;
    let upid = tasks::spawn(
        ctx.shared,
        &mut cl,
        spec(ctx, "qmdestroy", duration, vec![], finish),
    );
    Ok(Reply::data(json!(upid)))
}

pub(crate) fn template(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Allocate")?;
    let node = ctx.node.clone();
    let mut cl = ctx.shared.lock();
    let vm = vm_on(&cl, &node, vmid)?;
    check_lock(vm).map_err(ApiError::internal)?;
    if vm.is_template() && !ctx.p.contains_key("disk") {
        return Err(ApiError::internal(
            "you can't convert a template to a template",
        ));
    }
    if vm.running {
        return Err(ApiError::internal(
            "you can't convert a VM to template if VM is running",
        ));
    }
    let finish: tasks::Finish = Box::new(move |cl, _log| {
        let vm = cl
            .vms
            .get_mut(&vmid)
            .filter(|vm| vm.node == node)
            .ok_or_else(|| {
                format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
            })?;
        vm.config.insert("template".into(), "1".into());
        let from = format!("vm-{vmid}-disk-");
        let to = format!("base-{vmid}-disk-");
        for (k, v) in vm.config.iter_mut() {
            if vmconf::is_drive_key(k) && !vmconf::is_cdrom(v) {
                *v = v.replace(&from, &to);
            }
        }
        Ok(())
    });
    let duration = cl.durations.template_ms;
    let upid = tasks::spawn(
        ctx.shared,
        &mut cl,
        spec(ctx, "qmtemplate", duration, vec![], finish),
    );
    Ok(Reply::data(json!(upid)))
}

/// Turn `storage:size` / `storage:cloudinit` drive values into allocated volumes.
fn allocate_drives(
    cl: &Cluster,
    node: &str,
    vmid: u32,
    set: &mut BTreeMap<String, String>,
) -> Result<Vec<String>, ApiError> {
    let mut log = Vec::new();
    let mut n = 0;
    for (k, v) in set.iter_mut() {
        if !vmconf::is_drive_key(k) {
            continue;
        }
        let Some((storage, what)) = vmconf::volume_of(v) else {
            continue;
        };
        let (storage, what) = (storage.to_string(), what.to_string());
        let Some(st) = cl.storage_on(&storage, node) else {
            return Err(ApiError::internal(format!(
                "storage '{storage}' does not exist"
            )));
        };
        let opts: String = v
            .split(',')
            .skip(1)
            .filter(|o| !o.starts_with("size="))
            .map(|o| format!(",{o}"))
            .collect();
        if what == "cloudinit" {
            let vol = vmconf::volume_name(st.kind, vmid, &format!("vm-{vmid}-cloudinit"));
            *v = format!("{storage}:{vol},media=cdrom");
        } else if let Ok(size) = what.parse::<f64>() {
            if !st.content.split(',').any(|c| c == "images") {
                return Err(ApiError::param(
                    "storage",
                    format!("storage '{storage}' does not support vm images"),
                ));
            }
            let vol = vmconf::volume_name(st.kind, vmid, &format!("vm-{vmid}-disk-{n}"));
            n += 1;
            log.push(format!("allocated volume {storage}:{vol}"));
            *v = format!("{storage}:{vol}{opts},size={size}G");
        }
    }
    Ok(log)
}

pub(crate) fn create(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Allocate")?;
    if ctx.p.contains_key("archive") {
        return Err(ApiError::internal(
            "restore from archive is not supported by the simulator",
        ));
    }
    let mut set = config_params(&ctx.p);
    for (k, v) in &set {
        check_key_perms(ctx, vmid, k, Some(v))?;
    }
    let node = ctx.node.clone();
    let mut cl = ctx.shared.lock();
    crate::api_cluster::check_pool_exists(&cl, ctx.p.get("pool"))?;
    if let Some(existing) = cl.vms.get(&vmid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
            existing.node
        )));
    }
    finalize_values(&mut cl, &mut set)?;
    check_balloon(&set)?;
    let log = allocate_drives(&cl, &node, vmid, &mut set)?;
    if !set.contains_key("smbios1") {
        let uuid = cl.random_uuid();
        set.insert("smbios1".into(), format!("uuid={uuid}"));
    }
    if set.get("vmgenid").is_none_or(|g| g == "1") {
        let g = cl.random_uuid();
        set.insert("vmgenid".into(), g);
    }
    let mut placeholder = BTreeMap::new();
    placeholder.insert("lock".to_string(), "create".to_string());
    cl.vms.insert(vmid, Vm::new(vmid, &node, placeholder));
    let start_after = flag(&ctx.p, "start");
    let resource_pool = ctx.p.get("pool").cloned();
    let agent_delay = ms(ctx.shared.config.agent_delay_ms);
    let pool = ctx.shared.config.dhcp_pool.clone();
    let finish: tasks::Finish = Box::new(move |cl, _log| {
        let Some(vm) = cl.vms.get_mut(&vmid) else {
            return Err(format!("unable to create VM {vmid} - config vanished"));
        };
        vm.config = set;
        if let Some(members) = resource_pool.and_then(|p| cl.pools.get_mut(&p)) {
            members.insert(vmid);
        }
        if start_after {
            boot_vm(cl, vmid, agent_delay, &pool);
        }
        Ok(())
    });
    let duration = cl.durations.create_ms;
    let mut s = spec(ctx, "qmcreate", duration, log, finish);
    s.rollback = Box::new(move |cl| {
        cl.vms.remove(&vmid);
    });
    let upid = tasks::spawn(ctx.shared, &mut cl, s);
    Ok(Reply::data(json!(upid)))
}
