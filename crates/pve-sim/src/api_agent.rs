//! Guest agent endpoints: `agent/ping`, `agent/network-get-interfaces`, the other read-only
//! QGA commands (`agent/{command}`, `POST agent` with `command=`), and in-band QGA errors.

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::dispatch::{Ctx, vm_on};
use crate::fault::Fault;
use crate::http::Reply;
use crate::model::{Cluster, Vm};
use crate::params::ApiError;
use crate::vmconf;

fn ready_vm(vm: &Vm) -> Result<(), ApiError> {
    if !vm.config.contains_key("agent") {
        return Err(ApiError::internal("No QEMU guest agent configured"));
    }
    if !vm.running {
        return Err(ApiError::internal(format!("VM {} is not running", vm.vmid)));
    }
    let ready =
        vmconf::agent_enabled(&vm.config) && vm.agent_ready.is_some_and(|t| Instant::now() >= t);
    if !ready {
        return Err(ApiError::internal("QEMU guest agent is not running"));
    }
    Ok(())
}

/// QGA commands PVE exposes as `GET …/agent/<command>`.
pub(crate) const GET_COMMANDS: &[&str] = &[
    "get-fsinfo",
    "get-host-name",
    "get-memory-block-info",
    "get-memory-blocks",
    "get-osinfo",
    "get-time",
    "get-timezone",
    "get-users",
    "get-vcpus",
    "info",
    "network-get-interfaces",
];

/// QGA commands PVE exposes as `POST …/agent/<command>`.
pub(crate) const POST_COMMANDS: &[&str] = &[
    "fsfreeze-freeze",
    "fsfreeze-status",
    "fsfreeze-thaw",
    "fstrim",
    "ping",
    "shutdown",
    "suspend-disk",
    "suspend-hybrid",
    "suspend-ram",
];

/// An injected QGA error for `command` on `vmid`: PVE passes it through in-band, HTTP 200
/// `{"result":{"error":{"class":…,"desc":…}}}`.
fn injected_error(cl: &mut Cluster, vmid: u32, command: &str) -> Option<Value> {
    let f = cl.faults.iter_mut().find(|f| {
        !f.exhausted()
            && matches!(&f.fault, Fault::AgentError { vmid: v, command: c, .. }
                if v.is_none_or(|v| v == vmid) && (c == "*" || c == command))
    })?;
    f.consume();
    match &f.fault {
        Fault::AgentError { class, desc, .. } => {
            Some(json!({"result": {"error": {"class": class, "desc": desc}}}))
        }
        _ => None,
    }
}

/// Checks shared by every agent command, then the injected in-band error if any.
fn prepare(ctx: &Ctx, command: &str) -> Result<Option<Value>, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Monitor")?;
    let mut cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    ready_vm(vm)?;
    Ok(injected_error(&mut cl, vmid, command))
}

pub(crate) fn ping(ctx: &Ctx) -> Result<Reply, ApiError> {
    if let Some(e) = prepare(ctx, "ping")? {
        return Ok(Reply::data(e));
    }
    Ok(Reply::data(json!({"result": {}})))
}

/// How an agent command was called.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// `GET …/agent/{command}`.
    Get,
    /// `POST …/agent/{command}`.
    Post,
    /// `POST …/agent` with `command=` (any command; the enum is checked by the schema).
    Generic,
}

/// `GET|POST …/agent/{command}` and `POST …/agent` with `command=<name>`.
pub(crate) fn command(ctx: &Ctx, via: Via) -> Result<Reply, ApiError> {
    let cmd = ctx.p.get("command").cloned().unwrap_or_default();
    let post = via != Via::Get;
    let known = match via {
        Via::Get => GET_COMMANDS.contains(&cmd.as_str()),
        Via::Post => POST_COMMANDS.contains(&cmd.as_str()),
        Via::Generic => true,
    };
    if !known {
        return Err(ApiError::Status {
            code: 501,
            message: format!(
                "Method '{} /nodes/{}/qemu/{}/agent/{cmd}' not implemented",
                if post { "POST" } else { "GET" },
                ctx.node,
                ctx.vmid()
            ),
        });
    }
    match cmd.as_str() {
        "ping" => ping(ctx),
        "network-get-interfaces" => network(ctx),
        other => {
            if let Some(e) = prepare(ctx, other)? {
                return Ok(Reply::data(e));
            }
            let vmid = ctx.vmid();
            let mut cl = ctx.shared.lock();
            let vm = vm_on(&cl, &ctx.node, vmid)?;
            let result = command_result(vm, other);
            if other == "shutdown" {
                crate::api_vm::stop_vm(&mut cl, vmid);
            }
            Ok(Reply::data(json!({ "result": result })))
        }
    }
}

fn command_result(vm: &Vm, cmd: &str) -> Value {
    let host = vm.name();
    let disk = vm.maxdisk();
    let cpus = vm.cpus();
    match cmd {
        "get-host-name" => json!({"host-name": host}),
        "get-osinfo" => json!({
            "id": "debian", "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 12 (bookworm)",
            "version": "12 (bookworm)", "version-id": "12",
            "kernel-release": "6.1.0-28-amd64", "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
            "machine": "x86_64",
        }),
        "info" => json!({
            "version": "7.2.15",
            "supported_commands": GET_COMMANDS.iter().chain(POST_COMMANDS)
                .map(|c| json!({"name": format!("guest-{c}"), "enabled": true, "success-response": *c != "shutdown"}))
                .collect::<Vec<_>>(),
        }),
        "get-time" => json!(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()),
        "get-timezone" => json!({"zone": "UTC", "offset": 0}),
        "get-users" => json!([]),
        "get-vcpus" => Value::Array(
            (0..cpus)
                .map(|i| json!({"logical-id": i, "online": true, "can-offline": i != 0}))
                .collect(),
        ),
        "get-fsinfo" => json!([{
            "name": "sda1", "mountpoint": "/", "type": "ext4",
            "total-bytes": disk, "used-bytes": disk / 4,
            "disk": [{"bus-type": "scsi", "bus": 0, "target": 0, "unit": 0, "dev": "/dev/sda1",
                       "pci-controller": {"domain": 0, "bus": 1, "slot": 1, "function": 0}}],
        }]),
        "get-memory-block-info" => json!({"size": 134_217_728}),
        "get-memory-blocks" => Value::Array(
            (0..(vm.maxmem() / 134_217_728))
                .map(|i| json!({"phys-index": i, "online": true, "can-offline": i != 0}))
                .collect(),
        ),
        "fsfreeze-status" => json!("thawed"),
        "fsfreeze-freeze" | "fsfreeze-thaw" => json!(1),
        "fstrim" => json!({"paths": [{"path": "/", "trimmed": 0, "minimum": 0}]}),
        _ => json!({}),
    }
}

pub(crate) fn network(ctx: &Ctx) -> Result<Reply, ApiError> {
    if let Some(e) = prepare(ctx, "network-get-interfaces")? {
        return Ok(Reply::data(e));
    }
    let vmid = ctx.vmid();
    let cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    let stats = json!({"rx-bytes": 123456, "rx-packets": 1234, "rx-errs": 0, "rx-dropped": 0,
        "tx-bytes": 65432, "tx-packets": 654, "tx-errs": 0, "tx-dropped": 0});
    let mut ifaces = vec![json!({
        "name": "lo",
        "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
            {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128},
        ],
        "statistics": stats,
    })];
    let addr = vmconf::static_ip(&vm.config).or(vm
        .dhcp_ip
        .map(|ip| (ip, ctx.shared.config.dhcp_pool.prefix)));
    let mac = vm
        .config
        .get("net0")
        .and_then(|n| vmconf::net_mac(n))
        .map(|m| m.to_lowercase());
    if let Some(mac) = mac {
        let mut addrs: Vec<Value> = Vec::new();
        if let Some((ip, prefix)) = addr {
            addrs.push(
                json!({"ip-address-type": "ipv4", "ip-address": ip.to_string(), "prefix": prefix}),
            );
        }
        let m: Vec<&str> = mac.split(':').collect();
        if m.len() == 6 {
            addrs.push(json!({"ip-address-type": "ipv6", "ip-address": format!("fe80::{}{}:{}ff:fe{}:{}{}", m[0], m[1], m[2], m[3], m[4], m[5]), "prefix": 64}));
        }
        ifaces.push(json!({
            "name": "eth0",
            "hardware-address": mac,
            "ip-addresses": addrs,
            "statistics": stats,
        }));
    }
    Ok(Reply::data(json!({"result": ifaces})))
}
