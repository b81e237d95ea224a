//! Clone rules, config updates (digest, tags, net, name, sshkeys), protection, destroy.

mod common;

use common::{enc, fast};

async fn clone(c: &common::Client, src: u32, pairs: &[(&str, &str)]) -> common::Resp {
    c.post(&format!("/nodes/pve1/qemu/{src}/clone"), pairs)
        .await
}

#[tokio::test]
async fn clone_of_template_is_linked_by_default_with_new_mac_and_uuid() {
    let (sim, c) = fast().await;
    let upid = c
        .ok_task(clone(&c, 9000, &[("newid", "101"), ("name", "worker-1")]).await)
        .await;
    assert_eq!(
        upid.split(':').nth(6),
        Some("9000"),
        "qmclone id is the source vmid"
    );
    let src = sim.admin().vm(9000).unwrap();
    let new = sim.admin().vm(101).unwrap();
    assert_eq!(new.linked_base, Some(9000));
    assert_eq!(new.config["name"], "worker-1");
    assert_eq!(new.config["scsi0"], "local-lvm:vm-101-disk-0,size=8G");
    assert_eq!(new.config["ide2"], "local-lvm:vm-101-cloudinit,media=cdrom");
    assert!(!new.template);
    assert_eq!(new.lock, None);
    assert_ne!(new.config["net0"], src.config["net0"]);
    assert!(new.config["net0"].starts_with("virtio=BC:24:11:"));
    assert!(new.config["net0"].ends_with(",bridge=vmbr0"));
    assert_ne!(new.config["smbios1"], src.config["smbios1"]);
    assert_ne!(new.config["vmgenid"], src.config["vmgenid"]);
    let log = c
        .get(&format!("/nodes/pve1/tasks/{}/log", enc(&upid)))
        .await;
    let lines: Vec<String> = log
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["t"].as_str().unwrap().to_string())
        .collect();
    assert!(
        lines.contains(
            &"create linked clone of drive scsi0 (local-lvm:base-9000-disk-0)".to_string()
        ),
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("TASK OK"));
    sim.shutdown().await;
}

#[tokio::test]
async fn default_clone_name_is_copy_of_vm() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    assert_eq!(
        sim.admin().vm(101).unwrap().config["name"],
        "Copy-of-VM-debian-12-gold"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn clone_name_must_be_a_dns_name_and_every_bad_parameter_is_reported() {
    let (sim, c) = fast().await;
    let r = clone(&c, 9000, &[("newid", "5"), ("name", "worker_1")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (400, "Parameter verification failed.")
    );
    assert_eq!(
        r.error("name").trim_end(),
        "invalid format - value does not look like a valid DNS name"
    );
    assert_eq!(
        r.error("newid").trim_end(),
        "invalid format - value does not look like a valid VM ID"
    );
    assert!(sim.admin().vm(5).is_none() && sim.admin().vms().len() == 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn storage_is_not_allowed_for_linked_clones() {
    let (sim, c) = fast().await;
    let r = clone(&c, 9000, &[("newid", "101"), ("storage", "local-lvm")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "parameter 'storage' not allowed for linked clones")
    );
    let r = clone(
        &c,
        9000,
        &[("newid", "101"), ("storage", "shared"), ("full", "1")],
    )
    .await;
    c.ok_task(r).await;
    assert_eq!(
        sim.admin().vm(101).unwrap().config["scsi0"],
        "shared:101/vm-101-disk-0.qcow2,size=8G"
    );
    let r = clone(
        &c,
        9000,
        &[("newid", "102"), ("storage", "local"), ("full", "1")],
    )
    .await;
    assert_eq!(
        (r.status, r.error("storage").as_str()),
        (400, "storage 'local' does not support vm images")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn target_node_requires_shared_storage() {
    let (sim, c) = fast().await;
    let r = clone(&c, 9000, &[("newid", "101"), ("target", "pve2")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "can't clone VM to node 'pve2' (VM uses local storage)")
    );
    let r = clone(&c, 9001, &[("newid", "102"), ("target", "pve2")]).await;
    c.ok_task(r).await;
    let vm = sim.admin().vm(102).unwrap();
    assert_eq!(vm.node, "pve2");
    assert_eq!(
        vm.config["scsi0"],
        "shared:9001/base-9001-disk-0.qcow2/102/vm-102-disk-0.qcow2,size=8G"
    );
    let r = clone(&c, 9001, &[("newid", "103"), ("target", "pve9")]).await;
    assert_eq!(r.reason, "no such cluster node 'pve9'");
    let r = clone(
        &c,
        9001,
        &[
            ("newid", "104"),
            ("target", "pve2"),
            ("full", "1"),
            ("storage", "local-lvm"),
        ],
    )
    .await;
    assert_eq!(r.reason, "can't clone to non-shared storage 'local-lvm'");
    sim.shutdown().await;
}

#[tokio::test]
async fn new_vm_is_locked_clone_while_cloning() {
    let mut cfg = pve_sim::SimConfig::fast();
    cfg.durations.clone_ms = 10;
    let (sim, c) = common::start(cfg).await;
    sim.admin().hold_tasks(true);
    let r = clone(&c, 9000, &[("newid", "101")]).await;
    let upid = r.data().as_str().unwrap().to_string();
    let cfg = c.get("/nodes/pve1/qemu/101/config").await.data();
    assert_eq!(cfg["lock"], "clone");
    let res = c.get("/cluster/resources?type=vm").await.data();
    let e = res
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == 101)
        .unwrap()
        .clone();
    assert_eq!(e["lock"], "clone");
    let st = c
        .get(&format!("/nodes/pve1/tasks/{}/status", enc(&upid)))
        .await
        .data();
    assert_eq!(st["status"], "running");
    assert!(st.get("exitstatus").is_none());
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("cores", "4")])
        .await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM is locked (clone)"));
    let r = c.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    let upid_start = r.data().as_str().unwrap().to_string();
    sim.admin().hold_tasks(false);
    assert_eq!(c.wait_task(&upid).await["exitstatus"], "OK");
    let start = c.wait_task(&upid_start).await;
    assert_eq!(start["exitstatus"], "VM is locked (clone)");
    assert_eq!(sim.admin().vm(101).unwrap().lock, None);
    sim.shutdown().await;
}

#[tokio::test]
async fn clone_onto_existing_vmid_on_same_node_fails_synchronously() {
    let (sim, c) = fast().await;
    let r = clone(&c, 9000, &[("newid", "9001")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "unable to create VM 9001: config file already exists")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn full_clone_of_a_template_copies_disks() {
    let (sim, c) = fast().await;
    let upid = c
        .ok_task(clone(&c, 9000, &[("newid", "101"), ("full", "1")]).await)
        .await;
    let vm = sim.admin().vm(101).unwrap();
    assert_eq!(vm.linked_base, None);
    assert_eq!(vm.config["scsi0"], "local-lvm:vm-101-disk-0,size=8G");
    let log = c
        .get(&format!("/nodes/pve1/tasks/{}/log", enc(&upid)))
        .await;
    assert!(
        log.body
            .contains("create full clone of drive scsi0 (local-lvm:base-9000-disk-0)")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn digest_mismatch_is_rejected() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    let digest = c.get("/nodes/pve1/qemu/101/config").await.data()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(digest.len(), 40);
    let r = c
        .put(
            "/nodes/pve1/qemu/101/config",
            &[("cores", "4"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = c
        .put(
            "/nodes/pve1/qemu/101/config",
            &[("cores", "8"), ("digest", &digest)],
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "checksum mismatch (file change by other user?)")
    );
    let cfg = c.get("/nodes/pve1/qemu/101/config").await.data();
    assert_eq!(cfg["cores"], 4, "integers are JSON numbers");
    assert_eq!(cfg["memory"], "2048", "memory is a string");
    assert_ne!(cfg["digest"], digest.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn config_values_are_validated_and_normalised() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    let r = c
        .put(
            "/nodes/pve1/qemu/101/config",
            &[
                ("tags", "Web, prod web"),
                ("net1", "bridge=vmbr1,model=virtio,firewall=1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, r#"{"data":null}"#);
    let cfg = c.get("/nodes/pve1/qemu/101/config").await.data();
    assert_eq!(cfg["tags"], "prod;web");
    let net1 = cfg["net1"].as_str().unwrap();
    assert!(
        net1.starts_with("virtio=BC:24:11:") && net1.ends_with(",bridge=vmbr1,firewall=1"),
        "{net1}"
    );
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("name", "bad_name")])
        .await;
    assert_eq!(
        r.error("name"),
        "invalid format - value does not look like a valid DNS name\n"
    );
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("tags", "no!")])
        .await;
    assert_eq!(
        r.error("tags"),
        "invalid format - invalid characters in tag\n"
    );
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("onboot", "true")])
        .await;
    assert_eq!(
        r.error("onboot"),
        "type check ('boolean') failed - got 'true'"
    );
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host";
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("sshkeys", key)])
        .await;
    assert!(
        r.error("sshkeys")
            .starts_with("invalid format - invalid urlencoded string:"),
        "{r:?}"
    );
    let strict = enc(key)
        .replace("%2D", "-")
        .replace("%2E", ".")
        .replace("%5F", "_");
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("sshkeys", &strict)])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.get("/nodes/pve1/qemu/101/config").await.data()["sshkeys"],
        strict.as_str()
    );
    let r = c
        .put(
            "/nodes/pve1/qemu/101/config",
            &[("sshkeys", "not%20a%20key")],
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "SSH public key validation error")
    );
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("delete", "tags,net1")])
        .await;
    assert_eq!(r.status, 200);
    let cfg = c.get("/nodes/pve1/qemu/101/config").await.data();
    assert!(cfg.get("tags").is_none() && cfg.get("net1").is_none());
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("delete", "nonsense")])
        .await;
    assert_eq!(r.error("delete"), "unknown option 'nonsense'");
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("lock", "backup")])
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "only root can set 'lock' config")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn post_config_returns_a_qmconfig_upid() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    let r = c
        .post(
            "/nodes/pve1/qemu/101/config",
            &[("ipconfig0", "ip=10.0.10.21/24,gw=10.0.10.1")],
        )
        .await;
    let upid = c.ok_task(r).await;
    assert!(upid.contains(":qmconfig:101:"));
    let r = c
        .post(
            "/nodes/pve1/qemu/101/config",
            &[("cores", "2"), ("background_delay", "5")],
        )
        .await;
    assert_eq!(r.body, r#"{"data":null}"#);
    let r = c
        .post(
            "/nodes/pve1/qemu/101/config",
            &[("ipconfig0", "gw=10.0.10.1")],
        )
        .await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn protection_blocks_destroy() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    c.put("/nodes/pve1/qemu/101/config", &[("protection", "1")])
        .await;
    let r = c.delete("/nodes/pve1/qemu/101").await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "can't remove VM 101 - protection mode enabled")
    );
    c.put("/nodes/pve1/qemu/101/config", &[("delete", "protection")])
        .await;
    c.ok_task(
        c.delete("/nodes/pve1/qemu/101?purge=1&destroy-unreferenced-disks=1")
            .await,
    )
    .await;
    assert!(sim.admin().vm(101).is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn destroying_a_running_vm_is_refused() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/start", &[]).await)
        .await;
    let r = c.delete("/nodes/pve1/qemu/101").await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "VM 101 is running - destroy failed")
    );
    c.ok_task(c.post("/nodes/pve1/qemu/101/status/stop", &[]).await)
        .await;
    c.ok_task(c.delete("/nodes/pve1/qemu/101").await).await;
    let r = c.get("/nodes/pve1/qemu/101/config").await;
    assert_eq!(r.status, 500);
    sim.shutdown().await;
}

#[tokio::test]
async fn template_with_linked_clones_cannot_be_destroyed() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101")]).await).await;
    let r = c.delete("/nodes/pve1/qemu/9000").await;
    let st = c.wait_task(r.data().as_str().unwrap()).await;
    assert_eq!(
        st["exitstatus"],
        "base volume 'local-lvm:base-9000-disk-0' is still in use by linked cloned"
    );
    assert!(sim.admin().vm(9000).is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn template_conversion_renames_disks_and_blocks_start() {
    let (sim, c) = fast().await;
    c.ok_task(clone(&c, 9000, &[("newid", "101"), ("full", "1")]).await)
        .await;
    c.ok_task(c.post("/nodes/pve1/qemu/101/template", &[]).await)
        .await;
    let vm = sim.admin().vm(101).unwrap();
    assert!(vm.template);
    assert_eq!(vm.config["scsi0"], "local-lvm:base-101-disk-0,size=8G");
    let r = c.post("/nodes/pve1/qemu/101/template", &[]).await;
    assert_eq!(r.reason, "you can't convert a template to a template");
    let st = c
        .wait_task(
            c.post("/nodes/pve1/qemu/101/status/start", &[])
                .await
                .data()
                .as_str()
                .unwrap(),
        )
        .await;
    assert_eq!(st["exitstatus"], "you can't start a vm if it's a template");
    sim.shutdown().await;
}

#[tokio::test]
async fn create_allocates_disks_and_rejects_existing_ids() {
    let (sim, c) = fast().await;
    let r = c
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "300"),
                ("name", "fresh"),
                ("scsi0", "local-lvm:4"),
                ("net0", "virtio,bridge=vmbr0"),
                ("memory", "1024"),
            ],
        )
        .await;
    c.ok_task(r).await;
    let vm = sim.admin().vm(300).unwrap();
    assert_eq!(vm.config["scsi0"], "local-lvm:vm-300-disk-0,size=4G");
    assert!(vm.config["net0"].starts_with("virtio=BC:24:11:"));
    let r = c.post("/nodes/pve2/qemu", &[("vmid", "300")]).await;
    assert_eq!(
        r.reason,
        "unable to create VM 300 - VM 300 already exists on node 'pve1'"
    );
    sim.shutdown().await;
}
