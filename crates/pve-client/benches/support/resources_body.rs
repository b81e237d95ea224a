//! A synthetic `GET /cluster/resources?type=vm` answer, shared by the bench and the CPU-time example.

use std::fmt::Write as _;

/// A body shaped like PVE 8.4's: numbers numified, `tags`/`lock`/`pool` only when set, a mix of
/// running, stopped, unsampled (`unknown`, no name/stats) VMs, templates and containers.
pub fn cluster_resources_body(count: u32) -> String {
    let mut body = String::with_capacity(count as usize * 400);
    body.push_str("{\"data\":[");
    for i in 0..count {
        let vmid = 100 + i;
        let node = if i % 2 == 0 { "pve1" } else { "pve2" };
        let kind = if i % 50 == 0 { "lxc" } else { "qemu" };
        if i > 0 {
            body.push(',');
        }
        if i % 97 == 0 {
            // Freshly cloned: listed, but no RRD sample yet.
            let _ = write!(
                body,
                r#"{{"id":"{kind}/{vmid}","vmid":{vmid},"node":"{node}","type":"{kind}","status":"unknown","lock":"clone"}}"#
            );
            continue;
        }
        let running = i % 3 != 0;
        let status = if running { "running" } else { "stopped" };
        let uptime = if running { 3600 + u64::from(i) } else { 0 };
        let template = u8::from(i % 200 == 1);
        let _ = write!(
            body,
            r#"{{"id":"{kind}/{vmid}","vmid":{vmid},"node":"{node}","type":"{kind}","status":"{status}","name":"worker-{i}","template":{template},"uptime":{uptime},"maxcpu":2,"cpu":0.0123,"maxmem":4294967296,"mem":1734003200,"maxdisk":34359738368,"disk":0,"netin":123456789,"netout":98765432,"diskread":1048576000,"diskwrite":2097152000"#
        );
        if i % 4 == 0 {
            body.push_str(r#","tags":"reborn;role-worker;app-jsonrag""#);
        }
        if i % 10 == 0 {
            body.push_str(r#","pool":"reborn""#);
        }
        if i % 11 == 0 {
            body.push_str(r#","hastate":"started""#);
        }
        body.push('}');
    }
    body.push_str("]}");
    body
}
