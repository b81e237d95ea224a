//! More power management: `status/reboot`, `status/reset`, `status/suspend`, `status/resume`
//! (qemu-server `API2/Qemu.pm` `vm_reboot`, `vm_reset`, `vm_suspend`, `vm_resume`).

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::api_vm::{boot_vm, stop_vm};
use crate::dispatch::{Ctx, check_lock};
use crate::http::Reply;
use crate::model::{Cluster, Vm};
use crate::params::{ApiError, flag};
use crate::tasks::{self, TaskSpec};

fn task(ctx: &Ctx, kind: &'static str, duration: u64, finish: tasks::Finish) -> TaskSpec {
    TaskSpec {
        node: ctx.node.clone(),
        kind,
        id: ctx.vmid().to_string(),
        user: ctx.ident.full(),
        duration: Duration::from_millis(duration),
        log: Vec::new(),
        finish,
        rollback: Box::new(|_| {}),
    }
}

/// `check_running`: the VM's process exists on this node. PVE answers `VM <vmid> not running`
/// for a missing config as well (no config file, no process).
fn running_here<'c>(cl: &'c Cluster, node: &str, vmid: u32) -> Option<&'c Vm> {
    cl.vms.get(&vmid).filter(|vm| vm.node == node && vm.running)
}

fn not_running(vmid: u32) -> String {
    format!("VM {vmid} not running")
}

fn missing(node: &str, vmid: u32) -> String {
    format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
}

fn is_paused(vm: &Vm) -> bool {
    matches!(vm.qmpstatus.as_str(), "paused" | "prelaunch" | "suspended")
}

/// `POST …/status/reboot` (`qmreboot`): shut down and start again, applying pending changes.
/// Sync: `VM is paused - cannot shutdown`, `VM <vmid> not running`.
pub(crate) fn reboot(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.PowerMgmt")?;
    let node = ctx.node.clone();
    let agent_delay = Duration::from_millis(ctx.shared.config.agent_delay_ms);
    let pool = ctx.shared.config.dhcp_pool.clone();
    let mut cl = ctx.shared.lock();
    if cl
        .vms
        .get(&vmid)
        .is_some_and(|vm| vm.node == node && vm.running && is_paused(vm))
    {
        return Err(ApiError::internal("VM is paused - cannot shutdown"));
    }
    if running_here(&cl, &node, vmid).is_none() {
        return Err(ApiError::internal(not_running(vmid)));
    }
    let finish: tasks::Finish = Box::new(move |cl, log| {
        let Some(vm) = cl.vms.get(&vmid).filter(|vm| vm.node == node) else {
            return Err(missing(&node, vmid));
        };
        // qemu-server only reboots a running VM (qmeventd starts it again on the stop event).
        if !vm.running {
            return Ok(());
        }
        check_lock(vm)?;
        log.push(format!("VM {vmid} is shutting down for a reboot"));
        if let Some(vm) = cl.vms.get_mut(&vmid) {
            vm.running = false;
            vm.qmpstatus = "stopped".into();
            vm.pid = None;
        }
        boot_vm(cl, vmid, agent_delay, &pool);
        Ok(())
    });
    let duration = cl.durations.shutdown_ms + cl.durations.start_ms;
    let upid = tasks::spawn(ctx.shared, &mut cl, task(ctx, "qmreboot", duration, finish));
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/reset` (`qmreset`): a hard reset of the guest; the QEMU process (pid,
/// uptime) stays, the guest agent goes away while the guest boots again.
pub(crate) fn reset(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.PowerMgmt")?;
    let skiplock = ctx.skiplock()?;
    let node = ctx.node.clone();
    let agent_delay = Duration::from_millis(ctx.shared.config.agent_delay_ms);
    let mut cl = ctx.shared.lock();
    if running_here(&cl, &node, vmid).is_none() {
        return Err(ApiError::internal(not_running(vmid)));
    }
    let finish: tasks::Finish = Box::new(move |cl, _log| {
        let Some(vm) = cl.vms.get_mut(&vmid).filter(|vm| vm.node == node) else {
            return Err(missing(&node, vmid));
        };
        if !skiplock {
            check_lock(vm)?;
        }
        if !vm.running {
            return Err(not_running(vmid));
        }
        vm.agent_ready = Some(Instant::now() + agent_delay);
        Ok(())
    });
    let duration = cl.durations.stop_ms;
    let upid = tasks::spawn(ctx.shared, &mut cl, task(ctx, "qmreset", duration, finish));
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/suspend`: `qmpause` pauses the vCPUs (`qmpstatus: paused`, `status` stays
/// `running`); with `todisk=1`, `qmsuspend` saves the state, stops the VM and leaves
/// `lock: suspended` (the next start resumes it).
pub(crate) fn suspend(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.PowerMgmt")?;
    let todisk = flag(&ctx.p, "todisk");
    let skiplock = ctx.skiplock()?;
    let node = ctx.node.clone();
    let mut cl = ctx.shared.lock();
    if running_here(&cl, &node, vmid).is_none() {
        return Err(ApiError::internal(not_running(vmid)));
    }
    if todisk {
        ctx.require_vm(vmid, "VM.Config.Disk")?;
    }
    let finish: tasks::Finish = Box::new(move |cl, log| {
        let Some(vm) = cl.vms.get_mut(&vmid).filter(|vm| vm.node == node) else {
            return Err(missing(&node, vmid));
        };
        if !skiplock && vm.lock() != Some("backup") {
            check_lock(vm)?;
        }
        if !vm.running {
            return Err(not_running(vmid));
        }
        if todisk {
            log.push("suspending to disk".into());
            vm.config.insert("lock".into(), "suspended".into());
            stop_vm(cl, vmid);
        } else {
            vm.qmpstatus = "paused".into();
        }
        Ok(())
    });
    let (kind, duration) = if todisk {
        ("qmsuspend", cl.durations.shutdown_ms)
    } else {
        ("qmpause", cl.durations.config_ms)
    };
    let upid = tasks::spawn(ctx.shared, &mut cl, task(ctx, kind, duration, finish));
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/resume` (`qmresume`): continue a paused VM, or start one suspended to disk.
pub(crate) fn resume(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.PowerMgmt")?;
    let skiplock = ctx.skiplock()?;
    if flag(&ctx.p, "nocheck") && !ctx.ident.is_root() {
        return Err(ApiError::param("nocheck", "Only root may use this option."));
    }
    let node = ctx.node.clone();
    let agent_delay = Duration::from_millis(ctx.shared.config.agent_delay_ms);
    let pool = ctx.shared.config.dhcp_pool.clone();
    let mut cl = ctx.shared.lock();
    let to_disk = cl
        .vms
        .get(&vmid)
        .is_some_and(|vm| vm.node == node && vm.lock() == Some("suspended"));
    if !to_disk && running_here(&cl, &node, vmid).is_none() {
        return Err(ApiError::internal(not_running(vmid)));
    }
    let finish: tasks::Finish = Box::new(move |cl, _log| {
        let Some(vm) = cl.vms.get_mut(&vmid).filter(|vm| vm.node == node) else {
            return Err(missing(&node, vmid));
        };
        if to_disk {
            if vm.running {
                return Err(format!("VM {vmid} already running"));
            }
            boot_vm(cl, vmid, agent_delay, &pool);
            return Ok(());
        }
        if vm.qmpstatus == "running" {
            return Ok(());
        }
        if !skiplock && vm.lock() != Some("backup") {
            check_lock(vm)?;
        }
        vm.qmpstatus = "running".into();
        Ok(())
    });
    let duration = if to_disk {
        cl.durations.start_ms
    } else {
        cl.durations.config_ms
    };
    let upid = tasks::spawn(ctx.shared, &mut cl, task(ctx, "qmresume", duration, finish));
    Ok(Reply::data(json!(upid)))
}
