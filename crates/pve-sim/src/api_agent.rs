//! Guest agent endpoints: `agent/ping` and `agent/network-get-interfaces`.

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::dispatch::{Ctx, vm_on};
use crate::http::Reply;
use crate::model::Vm;
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

pub(crate) fn ping(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Monitor")?;
    let cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    ready_vm(vm)?;
    Ok(Reply::data(json!({"result": {}})))
}

pub(crate) fn network(ctx: &Ctx) -> Result<Reply, ApiError> {
    let vmid = ctx.vmid();
    ctx.require_vm(vmid, "VM.Monitor")?;
    let cl = ctx.shared.lock();
    let vm = vm_on(&cl, &ctx.node, vmid)?;
    ready_vm(vm)?;
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
