//! The `[PENDING]` section, reboot/reset/suspend/resume, the other guest agent commands and
//! in-band QGA errors: what Ansible's `community.proxmox` modules use besides the basics.

mod common;

use common::{Client, fast};
use pve_sim::Fault;
use serde_json::Value;

async fn clone_and_start(c: &Client, newid: &str) {
    c.ok_task(
        c.post("/nodes/pve1/qemu/9000/clone", &[("newid", newid)])
            .await,
    )
    .await;
    c.ok_task(
        c.post(&format!("/nodes/pve1/qemu/{newid}/status/start"), &[])
            .await,
    )
    .await;
}

fn entry<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["key"] == key))
        .unwrap_or_else(|| panic!("no pending entry for {key}: {list}"))
}

#[tokio::test]
async fn running_vm_keeps_cold_changes_pending_until_reboot() {
    let (sim, c) = fast().await;
    clone_and_start(&c, "101").await;
    let before = c.get("/nodes/pve1/qemu/101/config").await.data();
    let r = c
        .put(
            "/nodes/pve1/qemu/101/config",
            &[("cores", "4"), ("memory", "4096"), ("tags", "web")],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let pending = c.get("/nodes/pve1/qemu/101/pending").await.data();
    assert_eq!(entry(&pending, "cores")["value"], 2);
    assert_eq!(entry(&pending, "cores")["pending"], 4);
    assert_eq!(entry(&pending, "memory")["pending"], "4096");
    // Fast-plug key: applied at once, nothing pending.
    assert_eq!(entry(&pending, "tags")["value"], "web");
    assert!(entry(&pending, "tags").get("pending").is_none());
    let digest = entry(&pending, "digest")["value"].as_str().unwrap();
    assert_eq!(digest.len(), 40);
    assert_ne!(digest, before["digest"].as_str().unwrap());

    let merged = c.get("/nodes/pve1/qemu/101/config").await.data();
    assert_eq!(merged["cores"], 4);
    assert_eq!(merged["digest"], digest);
    let current = c.get("/nodes/pve1/qemu/101/config?current=1").await.data();
    assert_eq!(current["cores"], 2);
    let status = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(status["cpus"], 2, "the running VM still has the old CPUs");
    assert!(status["nics"]["tap101i0"].is_object(), "{status}");
    assert!(status["blockstat"]["scsi0"].is_object(), "{status}");
    assert!(status["ballooninfo"]["actual"].is_u64(), "{status}");

    // A delete of a cold key is pending too.
    c.put("/nodes/pve1/qemu/101/config", &[("delete", "ostype")])
        .await;
    let pending = c.get("/nodes/pve1/qemu/101/pending").await.data();
    assert_eq!(entry(&pending, "ostype")["delete"], 1);

    let upid = c
        .ok_task(c.post("/nodes/pve1/qemu/101/status/reboot", &[]).await)
        .await;
    assert!(upid.contains(":qmreboot:101:"), "{upid}");
    let current = c.get("/nodes/pve1/qemu/101/config?current=1").await.data();
    assert_eq!(current["cores"], 4);
    assert!(current.get("ostype").is_none());
    let pending = c.get("/nodes/pve1/qemu/101/pending").await.data();
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("pending").is_none() && e.get("delete").is_none()),
        "{pending}"
    );
    let status = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(
        (status["status"].as_str(), status["cpus"].as_u64()),
        (Some("running"), Some(4))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn revert_drops_a_pending_change() {
    let (sim, c) = fast().await;
    clone_and_start(&c, "101").await;
    c.put("/nodes/pve1/qemu/101/config", &[("cores", "8")])
        .await;
    c.put("/nodes/pve1/qemu/101/config", &[("revert", "cores")])
        .await;
    let cfg = c.get("/nodes/pve1/qemu/101/config").await.data();
    assert_eq!(cfg["cores"], 2);
    // Setting the running value again is no pending change (`cleanup_pending`).
    c.put("/nodes/pve1/qemu/101/config", &[("cores", "2")])
        .await;
    let pending = c.get("/nodes/pve1/qemu/101/pending").await.data();
    assert!(
        entry(&pending, "cores").get("pending").is_none(),
        "{pending}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn power_operations_on_a_stopped_vm_are_refused_synchronously() {
    let (sim, c) = fast().await;
    c.ok_task(
        c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    for op in ["reboot", "reset", "suspend", "resume"] {
        let r = c
            .post(&format!("/nodes/pve1/qemu/101/status/{op}"), &[])
            .await;
        assert_eq!(
            (r.status, r.reason.as_str()),
            (500, "VM 101 not running"),
            "{op}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn pause_resume_and_suspend_to_disk() {
    let (sim, c) = fast().await;
    clone_and_start(&c, "101").await;
    let upid = c
        .ok_task(c.post("/nodes/pve1/qemu/101/status/suspend", &[]).await)
        .await;
    assert!(upid.contains(":qmpause:101:"), "{upid}");
    let st = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(
        (st["status"].as_str(), st["qmpstatus"].as_str()),
        (Some("running"), Some("paused"))
    );
    let r = c.post("/nodes/pve1/qemu/101/status/reboot", &[]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "VM is paused - cannot shutdown")
    );
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/resume", &[]).await)
        .await;
    let st = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(st["qmpstatus"], "running");

    let upid = c
        .ok_task(
            c.post("/nodes/pve1/qemu/101/status/suspend", &[("todisk", "1")])
                .await,
        )
        .await;
    assert!(upid.contains(":qmsuspend:101:"), "{upid}");
    let st = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(
        (st["status"].as_str(), st["lock"].as_str()),
        (Some("stopped"), Some("suspended"))
    );
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/resume", &[]).await)
        .await;
    let st = c.get("/nodes/pve1/qemu/101/status/current").await.data();
    assert_eq!(st["status"], "running");
    assert!(st.get("lock").is_none(), "{st}");
    sim.shutdown().await;
}

#[tokio::test]
async fn agent_commands_and_in_band_errors() {
    let (sim, c) = fast().await;
    clone_and_start(&c, "101").await;
    let host = c
        .get("/nodes/pve1/qemu/101/agent/get-host-name")
        .await
        .data();
    assert!(host["result"]["host-name"].is_string(), "{host}");
    let os = c
        .post("/nodes/pve1/qemu/101/agent", &[("command", "get-osinfo")])
        .await;
    assert_eq!(os.data()["result"]["id"], "debian");
    // A command PVE registers as POST is not served on GET.
    let r = c.get("/nodes/pve1/qemu/101/agent/fstrim").await;
    assert_eq!(r.status, 501, "{r:?}");

    sim.admin().inject(Fault::AgentError {
        vmid: Some(101),
        command: "network-get-interfaces".into(),
        class: "GenericError".into(),
        desc: "Guest agent command failed".into(),
        count: Some(1),
    });
    let r = c
        .get("/nodes/pve1/qemu/101/agent/network-get-interfaces")
        .await;
    assert_eq!(r.status, 200, "in-band: {r:?}");
    assert_eq!(r.data()["result"]["error"]["class"], "GenericError");
    let r = c
        .get("/nodes/pve1/qemu/101/agent/network-get-interfaces")
        .await;
    assert!(r.data()["result"].is_array(), "fault used up: {r:?}");

    // Stopped VM: the HTTP 500s come back.
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/stop", &[]).await)
        .await;
    let r = c.post("/nodes/pve1/qemu/101/agent/ping", &[]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "VM 101 is not running")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn small_indexes_ansible_touches() {
    let (sim, c) = fast().await;
    let r = c.get("/nodes/pve1/lxc").await;
    assert_eq!(r.data(), serde_json::json!([]));
    let r = c.get("/nodes/pve1/qemu/9000/status").await;
    assert!(
        r.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subdir"] == "reboot")
    );
    let r = c.get("/pools/lab").await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "pool 'lab' does not exist")
    );
    let r = c.get("/cluster/nextid?vmid=9000").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error("vmid"), "VM 9000 already exists");
    let r = c.get("/nodes/pve1/storage/local-lvm/content").await;
    let list = r.data();
    let base = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["volid"] == "local-lvm:base-9000-disk-0")
        .unwrap_or_else(|| panic!("template disk listed: {list}"));
    assert_eq!(
        (&base["content"], &base["format"], &base["vmid"]),
        (
            &serde_json::json!("images"),
            &serde_json::json!("raw"),
            &serde_json::json!(9000)
        )
    );
    let r = c
        .get("/nodes/pve1/storage/local/content?content=vztmpl")
        .await;
    assert_eq!(r.data(), serde_json::json!([]));
    let r = c.get("/nodes/pve1/storage/nope/content").await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "storage 'nope' does not exist")
    );
    let r = c.get("/cluster/nextid?vmid=150").await;
    assert_eq!(r.data(), "150");
    sim.shutdown().await;
}

#[tokio::test]
async fn pools_from_the_config_collect_cloned_vms() {
    let mut cfg = pve_sim::SimConfig::fast();
    cfg.pools = vec!["lab".into()];
    let (sim, c) = common::start(cfg).await;
    let r = c
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("pool", "nope")],
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Permission check failed (pool 'nope' does not exist)")
    );
    c.ok_task(
        c.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("pool", "lab")],
        )
        .await,
    )
    .await;
    assert_eq!(
        c.get("/pools").await.data(),
        serde_json::json!([{"poolid": "lab"}])
    );
    let members = c.get("/pools/lab").await.data()["members"].clone();
    assert_eq!(members[0]["vmid"], 101, "{members}");
    let all = c.get("/cluster/resources").await.data();
    assert_eq!(all[0]["type"], "pool", "pool entries come first: {all}");
    assert_eq!(all[0]["id"], "/pool/lab");
    let vm = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == 101)
        .unwrap();
    assert_eq!(vm["pool"], "lab");
    c.ok_task(c.delete("/nodes/pve1/qemu/101").await).await;
    let members = c.get("/pools/lab").await.data()["members"].clone();
    assert_eq!(members, serde_json::json!([]));
    sim.shutdown().await;
}
