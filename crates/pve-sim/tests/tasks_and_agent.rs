//! Task lifecycle (UPIDs, durations, logs), power operations, guest agent, resources lag.

mod common;

use common::{enc, fast, start};
use pve_sim::SimConfig;

fn is_upper_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
}

#[tokio::test]
async fn upid_has_the_real_format_and_token_user() {
    let (sim, c) = fast().await;
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
        .await;
    let upid = r.data().as_str().unwrap().to_string();
    let f: Vec<&str> = upid.split(':').collect();
    assert_eq!(f.len(), 9, "{upid}");
    assert_eq!(f[0], "UPID");
    assert_eq!(f[1], "pve1");
    assert!(
        is_upper_hex(f[2], &[8]) && is_upper_hex(f[3], &[8, 9]) && is_upper_hex(f[4], &[8]),
        "{upid}"
    );
    assert_eq!(
        (f[5], f[6], f[7], f[8]),
        ("qmclone", "9000", "root@pam!reborn", "")
    );
    let st = c.wait_task(&upid).await;
    assert_eq!(st["user"], "root@pam");
    assert_eq!(st["tokenid"], "reborn");
    assert_eq!(st["type"], "qmclone");
    assert_eq!(st["upid"], upid.as_str());
    assert_eq!(
        st["starttime"].as_i64(),
        Some(i64::from_str_radix(f[4], 16).unwrap())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn zero_durations_finish_before_the_first_poll() {
    let (sim, c) = fast().await;
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
        .await;
    let upid = r.data().as_str().unwrap().to_string();
    let st = c
        .get(&format!("/nodes/pve1/tasks/{}/status", enc(&upid)))
        .await
        .data();
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["exitstatus"], "OK");
    sim.shutdown().await;
}

#[tokio::test]
async fn tasks_run_for_their_duration_then_stop() {
    let mut cfg = SimConfig::fast();
    cfg.durations.clone_ms = 300;
    let (sim, c) = start(cfg).await;
    sim.admin().hold_tasks(true);
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
        .await;
    let upid = r.data().as_str().unwrap().to_string();
    let st = c
        .get(&format!("/nodes/pve1/tasks/{}/status", enc(&upid)))
        .await
        .data();
    assert_eq!(st["status"], "running");
    sim.admin().hold_tasks(false);
    let st = c.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    sim.shutdown().await;
}

#[tokio::test]
async fn task_log_pages_with_start_limit_and_total() {
    let (sim, c) = fast().await;
    let upid = c
        .ok_task(
            c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
                .await,
        )
        .await;
    let all = c
        .get(&format!("/nodes/pve1/tasks/{}/log", enc(&upid)))
        .await;
    let total = all.json()["total"].as_u64().unwrap();
    assert!(total >= 3, "{}", all.body);
    assert_eq!(all.data()[0]["n"], 1);
    let page = c
        .get(&format!(
            "/nodes/pve1/tasks/{}/log?start=1&limit=1",
            enc(&upid)
        ))
        .await;
    assert_eq!(page.data().as_array().unwrap().len(), 1);
    assert_eq!(page.data()[0]["n"], 2);
    assert_eq!(page.json()["total"].as_u64(), Some(total));
    let r = c.get("/nodes/pve1/tasks/garbage/status").await;
    assert_eq!(r.error("upid"), "unable to parse worker upid");
    let r = c
        .get(&format!(
            "/nodes/pve1/tasks/{}/status",
            enc("UPID:pve1:00000001:00000001:00000001:qmstart:1:root@pam:")
        ))
        .await;
    assert_eq!(r.error("upid"), "no such task");
    let tasks = c.get("/nodes/pve1/tasks?vmid=9000").await.data();
    assert_eq!(tasks[0]["upid"], upid.as_str());
    assert_eq!(tasks[0]["status"], "OK");
    sim.shutdown().await;
}

#[tokio::test]
async fn start_stop_and_shutdown_change_status() {
    let (sim, c) = fast().await;
    c.ok_task(
        c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/start", &[]).await)
        .await;
    let st = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(st["status"], "running");
    assert_eq!(st["qmpstatus"], "running");
    assert_eq!(st["agent"], 1);
    assert!(st["pid"].as_u64().is_some());
    let again = c.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    let st = c.wait_task(again.data().as_str().unwrap()).await;
    assert_eq!(st["exitstatus"], "VM 101 already running");
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/shutdown", &[]).await)
        .await;
    let st = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(st["status"], "stopped");
    assert!(st.get("pid").is_none());
    // Stopping a stopped VM is a successful no-op.
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/stop", &[]).await)
        .await;
    let missing = c.post("/nodes/pve1/qemu/777/status/stop", &[]).await;
    let st = c.wait_task(missing.data().as_str().unwrap()).await;
    assert_eq!(
        st["exitstatus"],
        "unable to find configuration file for VM 777 on node 'pve1'"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn guest_agent_answers_after_its_delay_with_the_ipconfig_address() {
    let mut cfg = SimConfig::fast();
    cfg.agent_delay_ms = 1500;
    let (sim, c) = start(cfg).await;
    c.ok_task(
        c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    c.put(
        "/nodes/pve1/qemu/101/config",
        &[("ipconfig0", "ip=10.0.10.21/24,gw=10.0.10.1")],
    )
    .await;
    let r = c.post("/nodes/pve1/qemu/101/agent/ping", &[]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "VM 101 is not running")
    );
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/start", &[]).await)
        .await;
    let r = c.post("/nodes/pve1/qemu/101/agent/ping", &[]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "QEMU guest agent is not running")
    );
    let mut ready = false;
    for _ in 0..500 {
        if c.post("/nodes/pve1/qemu/101/agent/ping", &[]).await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ready, "agent never became ready");
    let r = c
        .get("/nodes/pve1/qemu/101/agent/network-get-interfaces")
        .await;
    let ifs = r.data()["result"].clone();
    let eth0 = ifs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap()
        .clone();
    let v4 = eth0["ip-addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ip-address-type"] == "ipv4")
        .unwrap()
        .clone();
    assert_eq!(v4["ip-address"], "10.0.10.21");
    assert_eq!(v4["prefix"], 24);
    let mac = sim.admin().vm(101).unwrap().config["net0"]
        .split(['=', ','])
        .nth(1)
        .unwrap()
        .to_lowercase();
    assert_eq!(eth0["hardware-address"], mac.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn dhcp_vms_get_addresses_from_the_pool() {
    let (sim, c) = fast().await;
    for id in ["101", "102"] {
        c.ok_task(
            c.post("/nodes/pve1/qemu/9000/clone", &[("newid", id)])
                .await,
        )
        .await;
        c.ok_task(
            c.post(&format!("/nodes/pve1/qemu/{id}/status/start"), &[])
                .await,
        )
        .await;
    }
    assert_eq!(
        sim.admin().vm(101).unwrap().ip.as_deref(),
        Some("10.0.99.100/24")
    );
    assert_eq!(
        sim.admin().vm(102).unwrap().ip.as_deref(),
        Some("10.0.99.101/24")
    );
    let r = c
        .get("/nodes/pve1/qemu/102/agent/network-get-interfaces")
        .await;
    assert!(r.body.contains("10.0.99.101"));
    let r = c.post("/nodes/pve1/qemu/9000/agent/ping", &[]).await;
    assert_eq!(r.reason, "VM 9000 is not running");
    sim.shutdown().await;
}

fn vm_entry(res: &serde_json::Value, vmid: u64) -> serde_json::Value {
    res.as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == vmid)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn resources_lag_until_the_next_sample() {
    let mut cfg = SimConfig::fast();
    cfg.resources_lag_ms = 3_600_000;
    let (sim, c) = start(cfg).await;
    c.ok_task(
        c.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "old-name")],
        )
        .await,
    )
    .await;
    let e = vm_entry(&c.get("/cluster/resources?type=vm").await.data(), 101);
    assert_eq!(e["status"], "unknown");
    assert!(
        e.get("name").is_none() && e.get("template").is_none() && e.get("maxmem").is_none(),
        "{e}"
    );
    sim.admin().sample_resources_now();
    let e = vm_entry(&c.get("/cluster/resources?type=vm").await.data(), 101);
    assert_eq!(
        (e["status"].as_str(), e["name"].as_str()),
        (Some("stopped"), Some("old-name"))
    );
    c.put(
        "/nodes/pve1/qemu/101/config",
        &[("name", "new-name"), ("tags", "fresh")],
    )
    .await;
    let e = vm_entry(&c.get("/cluster/resources?type=vm").await.data(), 101);
    assert_eq!(
        e["name"], "old-name",
        "rename shows the old name until the next sample"
    );
    assert_eq!(e["tags"], "fresh", "tags are live");
    sim.admin().sample_resources_now();
    let e = vm_entry(&c.get("/cluster/resources?type=vm").await.data(), 101);
    assert_eq!(e["name"], "new-name");
    sim.shutdown().await;
}

#[tokio::test]
async fn resources_catch_up_on_their_own_with_a_small_interval() {
    let mut cfg = SimConfig::fast();
    cfg.resources_lag_ms = 50;
    let (sim, c) = start(cfg).await;
    c.ok_task(
        c.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "w1")],
        )
        .await,
    )
    .await;
    let mut seen = false;
    for _ in 0..200 {
        if vm_entry(&c.get("/cluster/resources?type=vm").await.data(), 101)["name"] == "w1" {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen);
    sim.shutdown().await;
}

#[tokio::test]
async fn lag_is_off_in_the_fast_config() {
    let (sim, c) = fast().await;
    c.ok_task(
        c.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "w1")],
        )
        .await,
    )
    .await;
    let e = vm_entry(&c.get("/cluster/resources?type=vm").await.data(), 101);
    assert_eq!(e["name"], "w1");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn paused_time_drives_task_durations() {
    // Default (realistic) durations: with paused tokio time they elapse instantly.
    let cfg = SimConfig {
        auth_failure_delay_ms: 0,
        ..SimConfig::default()
    };
    let (sim, c) = start(cfg).await;
    let upid = c
        .ok_task(
            c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
                .await,
        )
        .await;
    assert!(
        sim.admin()
            .tasks()
            .iter()
            .any(|t| t.upid == upid && t.exitstatus.as_deref() == Some("OK"))
    );
    sim.shutdown().await;
}
