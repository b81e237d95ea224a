//! The client against the PVE simulator: every call, every error kind, task waits, locks,
//! lag, injected faults, ticket auth and TLS pinning.

use std::time::Duration;

use pve_client::{
    CertFingerprint, CloneParams, ConfigUpdate, DestroyParams, Error, GuestType, NodeName,
    PveClient, Secret, TlsMode, VmId,
};
use pve_sim::{Fault, Role, SimConfig, SimServer, TokenConfig};

const WAIT: Duration = Duration::from_secs(30);
const GOLD: u32 = 9000;
const SHARED_GOLD: u32 = 9001;

fn vmid(n: u32) -> VmId {
    VmId::new(n).expect("valid test vmid")
}

fn node(n: &str) -> NodeName {
    NodeName::new(n).expect("valid test node")
}

async fn start_sim(config: SimConfig) -> SimServer {
    pve_sim::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts")
}

fn token_client(sim: &SimServer) -> PveClient {
    let (id, secret) = sim.token();
    PveClient::builder(sim.base_url())
        .token(id.parse().expect("token id"), Secret::new(secret))
        .retry_min_delay(Duration::from_millis(10))
        .build()
        .expect("client builds")
}

async fn fast() -> (SimServer, PveClient) {
    let sim = start_sim(SimConfig::fast()).await;
    let client = token_client(&sim);
    (sim, client)
}

/// Clones the gold template to `newid` on pve1 and waits for the task.
async fn clone_gold(client: &PveClient, newid: u32, name: &str) -> pve_client::TaskStatus {
    let upid = client
        .clone_vm(
            &node("pve1"),
            vmid(GOLD),
            &CloneParams::new(vmid(newid)).name(name),
        )
        .await
        .expect("clone accepted")
        .expect("clone returns a UPID");
    client.wait_task(&upid, WAIT).await.expect("clone succeeds")
}

// ---------------------------------------------------------------- reads

#[tokio::test]
async fn version_nodes_and_cluster_listing_decode() {
    let (sim, client) = fast().await;
    let v = client.version().await.expect("version");
    assert!(v.version.starts_with("8."), "{v:?}");
    assert!(v.release.starts_with('8'));

    let nodes = client.nodes().await.expect("nodes");
    let mut names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["pve1", "pve2"]);
    assert!(nodes.iter().all(|n| n.is_online()));

    let vms = client.cluster_vms().await.expect("cluster resources");
    let gold = vms
        .iter()
        .find(|v| v.vmid.get() == GOLD)
        .expect("gold template listed");
    assert_eq!(gold.kind, GuestType::Qemu);
    assert_eq!(gold.node.as_str(), "pve1");
    assert_eq!(gold.name.as_deref(), Some("debian-12-gold"));
    assert!(gold.template);
    assert_eq!(sim.admin().request_count("GET /cluster/resources"), 1);
}

#[tokio::test]
async fn next_id_is_free_and_existing_ids_are_reported_taken() {
    let (_sim, client) = fast().await;
    let id = client.next_id().await.expect("nextid");
    assert!(id.get() >= 100);
    assert!(client.vmid_is_free(id).await.expect("check free"));
    assert!(!client.vmid_is_free(vmid(GOLD)).await.expect("check taken"));
}

#[tokio::test]
async fn qemu_list_and_config_and_status_of_template() {
    let (_sim, client) = fast().await;
    let list = client.qemu_list(&node("pve1")).await.expect("qemu list");
    let gold = list
        .iter()
        .find(|v| v.vmid.get() == GOLD)
        .expect("gold on pve1");
    assert!(gold.template);
    assert_eq!(gold.status, "stopped");

    let cfg = client
        .vm_config(&node("pve1"), vmid(GOLD))
        .await
        .expect("config");
    assert_eq!(cfg.name().as_deref(), Some("debian-12-gold"));
    assert!(cfg.is_template());
    assert_eq!(cfg.memory_mib(), Some(2048));
    assert_eq!(cfg.cores(), 2);
    assert!(cfg.digest.as_deref().is_some_and(|d| d.len() == 40));
    assert!(cfg.smbios_uuid().is_some());

    let st = client
        .vm_status(&node("pve1"), vmid(GOLD))
        .await
        .expect("status");
    assert!(!st.is_running());
    assert!(st.template);
    assert_eq!(st.vmid, Some(vmid(GOLD)));
}

// ---------------------------------------------------------------- clone, config, lifecycle

#[tokio::test]
async fn clone_of_template_is_linked_by_default_and_task_id_is_source() {
    let (sim, client) = fast().await;
    let upid = client
        .clone_vm(
            &node("pve1"),
            vmid(GOLD),
            &CloneParams::new(vmid(4103)).name("worker-1"),
        )
        .await
        .expect("clone accepted")
        .expect("UPID");
    assert_eq!(upid.task_type(), "qmclone");
    assert_eq!(upid.vmid(), Some(vmid(GOLD)), "clone task id is the source");
    assert_eq!(upid.node().as_str(), "pve1");
    assert_eq!(upid.user(), "root@pam!reborn");

    let done = client.wait_task(&upid, WAIT).await.expect("clone done");
    assert!(done.is_success());
    let new = sim.admin().vm(4103).expect("new VM exists");
    assert_eq!(new.linked_base, Some(GOLD));
    let cfg = client
        .vm_config(&node("pve1"), vmid(4103))
        .await
        .expect("config");
    assert_eq!(cfg.name().as_deref(), Some("worker-1"));
    assert!(!cfg.is_template());
}

#[tokio::test]
async fn full_cross_node_clone_into_pool_with_description() {
    let (sim, client) = fast().await;
    let params = CloneParams::new(vmid(4200))
        .name("ingress-1")
        .target(node("pve2"))
        .full(true)
        .storage("shared")
        .description("managed-by: reborn");
    let upid = client
        .clone_vm(&node("pve1"), vmid(SHARED_GOLD), &params)
        .await
        .expect("clone accepted")
        .expect("UPID");
    client.wait_task(&upid, WAIT).await.expect("clone done");
    let new = sim.admin().vm(4200).expect("exists");
    assert_eq!(new.node, "pve2");
    assert_eq!(new.linked_base, None, "full clone has no base");
    let cfg = client
        .vm_config(&node("pve2"), vmid(4200))
        .await
        .expect("config on target node");
    assert_eq!(cfg.description().as_deref(), Some("managed-by: reborn"));
}

#[tokio::test]
async fn put_config_round_trips_sshkeys_booleans_tags_and_delete() {
    let (_sim, client) = fast().await;
    clone_gold(&client, 4300, "worker-2").await;
    let n1 = node("pve1");
    let keys = [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@ctl",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC+/x= b@c",
    ];
    let before = client.vm_config(&n1, vmid(4300)).await.expect("config");
    let update = ConfigUpdate::new()
        .sshkeys(&keys)
        .onboot(true)
        .set_bool("protection", false)
        .tags(&["reborn", "Role-Worker"])
        .cores(4)
        .memory_mib(4096)
        .ipconfig(0, "ip=10.0.10.21/24,gw=10.0.10.1")
        .delete("description")
        .digest(before.digest.clone().expect("digest"));
    let out = client
        .update_config(&n1, vmid(4300), &update)
        .await
        .expect("PUT accepted");
    assert_eq!(out, None, "PUT config is synchronous");

    let cfg = client.vm_config(&n1, vmid(4300)).await.expect("config");
    assert_eq!(cfg.sshkeys(), keys);
    assert!(cfg.get_bool("onboot"));
    assert_eq!(cfg.tags(), ["reborn", "role-worker"]);
    assert_eq!(cfg.cores(), 4);
    assert_eq!(cfg.memory_mib(), Some(4096));
    assert_eq!(cfg.description(), None);
    assert_ne!(cfg.digest, before.digest);
}

#[tokio::test]
async fn stale_digest_is_rejected() {
    let (_sim, client) = fast().await;
    clone_gold(&client, 4301, "worker-3").await;
    let n1 = node("pve1");
    let old = client.vm_config(&n1, vmid(4301)).await.expect("config");
    client
        .update_config(&n1, vmid(4301), &ConfigUpdate::new().cores(3))
        .await
        .expect("first update");
    let err = client
        .update_config(
            &n1,
            vmid(4301),
            &ConfigUpdate::new()
                .cores(5)
                .digest(old.digest.expect("digest")),
        )
        .await
        .expect_err("stale digest");
    assert!(
        matches!(&err, Error::Api { status: 500, message, .. } if message.contains("checksum mismatch")),
        "{err:?}"
    );
}

#[tokio::test]
async fn post_config_returns_a_task_that_completes() {
    let (_sim, client) = fast().await;
    clone_gold(&client, 4302, "worker-4").await;
    let n1 = node("pve1");
    let upid = client
        .update_config_async(&n1, vmid(4302), &ConfigUpdate::new().name("worker-4b"))
        .await
        .expect("POST accepted");
    let status = client
        .wait_task_opt(upid.as_ref(), WAIT)
        .await
        .expect("task ok");
    if let Some(status) = status {
        assert!(status.is_success());
        assert_eq!(
            upid.map(|u| u.task_type().to_owned()).as_deref(),
            Some("qmconfig")
        );
    }
    let cfg = client.vm_config(&n1, vmid(4302)).await.expect("config");
    assert_eq!(cfg.name().as_deref(), Some("worker-4b"));
}

#[tokio::test]
async fn start_agent_shutdown_stop_destroy_lifecycle() {
    let (sim, client) = fast().await;
    clone_gold(&client, 4400, "worker-5").await;
    let n1 = node("pve1");
    let id = vmid(4400);

    let upid = client.start(&n1, id).await.expect("start").expect("UPID");
    assert_eq!(upid.task_type(), "qmstart");
    client.wait_task(&upid, WAIT).await.expect("started");
    let st = client.vm_status(&n1, id).await.expect("status");
    assert!(st.is_running());

    client.agent_ping(&n1, id).await.expect("agent answers");
    let ifs = client
        .agent_network_interfaces(&n1, id)
        .await
        .expect("interfaces");
    assert!(
        ifs.iter()
            .any(|i| i.name != "lo" && !i.ip_addresses.is_empty()),
        "{ifs:?}"
    );

    let running_destroy = client
        .destroy(&n1, id, &DestroyParams::thorough())
        .await
        .expect_err("running VM cannot be destroyed");
    assert!(
        matches!(running_destroy, Error::Api { status: 500, .. }),
        "{running_destroy:?}"
    );

    let upid = client
        .shutdown(&n1, id)
        .await
        .expect("shutdown")
        .expect("UPID");
    client.wait_task(&upid, WAIT).await.expect("shut down");
    let upid = client.stop(&n1, id).await.expect("stop").expect("UPID");
    let stopped = client
        .wait_task(&upid, WAIT)
        .await
        .expect("stop of stopped VM is OK");
    assert!(stopped.is_success());
    assert!(
        !client
            .vm_status(&n1, id)
            .await
            .expect("status")
            .is_running()
    );

    let log = client.task_log(&upid, 0, 0).await.expect("task log");
    assert!(!log.lines.is_empty());
    assert!(log.lines.iter().all(|l| l.n >= 1));

    let upid = client
        .destroy(&n1, id, &DestroyParams::thorough())
        .await
        .expect("destroy")
        .expect("UPID");
    assert_eq!(upid.task_type(), "qmdestroy");
    client.wait_task(&upid, WAIT).await.expect("destroyed");
    assert!(sim.admin().vm(4400).is_none());
}

#[tokio::test]
async fn template_conversion_marks_vm_as_template() {
    let (_sim, client) = fast().await;
    let n1 = node("pve1");
    let upid = client
        .clone_vm(
            &n1,
            vmid(GOLD),
            &CloneParams::new(vmid(4500)).name("gold-2").full(true),
        )
        .await
        .expect("clone")
        .expect("UPID");
    client.wait_task(&upid, WAIT).await.expect("cloned");
    let upid = client
        .template(&n1, vmid(4500))
        .await
        .expect("template")
        .expect("UPID");
    assert_eq!(upid.task_type(), "qmtemplate");
    client.wait_task(&upid, WAIT).await.expect("converted");
    assert!(
        client
            .vm_config(&n1, vmid(4500))
            .await
            .expect("config")
            .is_template()
    );
}

// ---------------------------------------------------------------- error kinds

#[tokio::test]
async fn wrong_token_secret_is_unauthenticated_and_secret_never_leaks() {
    let sim = start_sim(SimConfig::fast()).await;
    let (id, _) = sim.token();
    let client = PveClient::builder(sim.base_url())
        .token(id.parse().expect("id"), Secret::new("wrong-secret-4f1a"))
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("bad secret");
    match &err {
        Error::Unauthenticated { reason, endpoint } => {
            assert_eq!(reason, "Authentication failed!");
            assert_eq!(endpoint.path, "/version");
        }
        other => panic!("got {other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("wrong-secret-4f1a"));
    assert_eq!(
        sim.admin().request_count("GET /version"),
        1,
        "401 is not retried"
    );
}

#[tokio::test]
async fn token_without_privilege_gets_permission_denied() {
    let mut config = SimConfig::fast();
    config.tokens.push(TokenConfig {
        id: "audit@pve!ro".into(),
        secret: "ro-secret".into(),
        role: Role::PVEAuditor,
        privsep: false,
    });
    let sim = start_sim(config).await;
    let client = PveClient::builder(sim.base_url())
        .token(
            "audit@pve!ro".parse().expect("id"),
            Secret::new("ro-secret"),
        )
        .build()
        .expect("builds");
    assert!(
        client.vm_config(&node("pve1"), vmid(GOLD)).await.is_ok(),
        "auditor may read"
    );
    let err = client
        .clone_vm(&node("pve1"), vmid(GOLD), &CloneParams::new(vmid(4600)))
        .await
        .expect_err("auditor may not clone");
    assert!(
        matches!(&err, Error::PermissionDenied { message, .. } if message.contains("Permission check failed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_vm_is_config_not_found_with_ids() {
    let (_sim, client) = fast().await;
    let err = client
        .vm_config(&node("pve2"), vmid(777))
        .await
        .expect_err("no such VM");
    match err {
        Error::ConfigNotFound {
            vmid: v, node: n, ..
        } => {
            assert_eq!(v, Some(vmid(777)));
            assert_eq!(n.as_ref().map(NodeName::as_str), Some("pve2"));
        }
        other => panic!("got {other:?}"),
    }
    let err = client
        .vm_status(&node("pve1"), vmid(778))
        .await
        .expect_err("no such VM");
    assert!(matches!(err, Error::ConfigNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn locked_vm_reports_lock_reason_and_is_not_retried() {
    let (sim, client) = fast().await;
    clone_gold(&client, 4700, "worker-6").await;
    sim.admin().inject(Fault::HoldLock {
        vmid: 4700,
        lock: "backup".into(),
    });
    let err = client
        .update_config(&node("pve1"), vmid(4700), &ConfigUpdate::new().cores(2))
        .await
        .expect_err("locked");
    assert!(
        matches!(&err, Error::Locked { reason, .. } if reason == "backup"),
        "{err:?}"
    );
    assert_eq!(
        sim.admin()
            .request_count("PUT /nodes/{node}/qemu/{vmid}/config"),
        1
    );
    let seen = client.cluster_vms().await.expect("resources");
    let vm = seen.iter().find(|v| v.vmid.get() == 4700).expect("listed");
    assert_eq!(
        vm.lock.as_deref(),
        Some("backup"),
        "lock visible in cluster/resources"
    );

    sim.admin().clear_faults();
    client
        .update_config(&node("pve1"), vmid(4700), &ConfigUpdate::new().cores(2))
        .await
        .expect("unlocked again");
}

#[tokio::test]
async fn file_lock_timeout_is_lock_timeout() {
    let (sim, client) = fast().await;
    clone_gold(&client, 4701, "worker-7").await;
    sim.admin().inject(Fault::HoldFileLock { vmid: 4701 });
    let err = client
        .update_config(&node("pve1"), vmid(4701), &ConfigUpdate::new().cores(2))
        .await
        .expect_err("file lock held");
    assert!(matches!(err, Error::LockTimeout { .. }), "{err:?}");
}

#[tokio::test]
async fn clone_onto_existing_vmid_is_already_exists() {
    let (_sim, client) = fast().await;
    let err = client
        .clone_vm(
            &node("pve1"),
            vmid(GOLD),
            &CloneParams::new(vmid(SHARED_GOLD)),
        )
        .await
        .expect_err("9001 exists on pve1");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
}

#[tokio::test]
async fn invalid_values_are_parameter_verification_per_parameter() {
    let (_sim, client) = fast().await;
    clone_gold(&client, 4800, "worker-11").await;
    let update = ConfigUpdate::new()
        .name("bad_name")
        // Not percent-encoded: PVE's `urlencoded` format rejects the space.
        .set("sshkeys", "ssh-ed25519 AAAA ops@ctl");
    let err = client
        .update_config(&node("pve1"), vmid(4800), &update)
        .await
        .expect_err("invalid name and sshkeys");
    match err {
        Error::ParameterVerification { errors, endpoint } => {
            assert_eq!(endpoint.path, "/nodes/pve1/qemu/4800/config");
            let name = errors.get("name").expect("error for name");
            assert!(name.contains("DNS name"), "{name}");
            assert!(errors.contains_key("sshkeys"), "{errors:?}");
        }
        other => panic!("got {other:?}"),
    }
}

#[tokio::test]
async fn proxy_timeout_on_a_write_is_unknown_outcome_and_not_retried() {
    let (sim, client) = fast().await;
    clone_gold(&client, 4900, "worker-8").await;
    sim.admin().inject(Fault::Timeout {
        endpoint: "PUT /nodes/{node}/qemu/{vmid}/config".into(),
        rate: 1.0,
        after_ms: 0,
        apply: true,
        count: None,
    });
    let err = client
        .update_config(&node("pve1"), vmid(4900), &ConfigUpdate::new().cores(6))
        .await
        .expect_err("596");
    assert!(
        matches!(err, Error::ProxyTimeout { status: 596, .. }),
        "{err:?}"
    );
    assert!(err.outcome_unknown());
    assert_eq!(
        sim.admin()
            .request_count("PUT /nodes/{node}/qemu/{vmid}/config"),
        1
    );
    sim.admin().clear_faults();
    // The caller re-reads state: the change was applied despite the 596.
    let cfg = client
        .vm_config(&node("pve1"), vmid(4900))
        .await
        .expect("config");
    assert_eq!(cfg.cores(), 6);
}

#[tokio::test]
async fn reads_retry_through_transient_faults() {
    let (sim, client) = fast().await;
    sim.admin().inject(Fault::Timeout {
        endpoint: "GET /cluster/resources".into(),
        rate: 1.0,
        after_ms: 0,
        apply: false,
        count: Some(1),
    });
    sim.admin().inject(Fault::ErrorRate {
        endpoint: "GET /cluster/resources".into(),
        rate: 1.0,
        status: 500,
        message: "Internal Server Error".into(),
        count: Some(1),
    });
    let vms = client.cluster_vms().await.expect("succeeds on third try");
    assert!(!vms.is_empty());
    assert_eq!(sim.admin().request_count("GET /cluster/resources"), 3);
}

#[tokio::test]
async fn reads_give_up_after_the_configured_attempts() {
    let sim = start_sim(SimConfig::fast()).await;
    let (id, secret) = sim.token();
    let client = PveClient::builder(sim.base_url())
        .token(id.parse().expect("id"), Secret::new(secret))
        .read_attempts(2)
        .retry_min_delay(Duration::from_millis(5))
        .build()
        .expect("builds");
    sim.admin().inject(Fault::ErrorRate {
        endpoint: "GET /nodes".into(),
        rate: 1.0,
        status: 503,
        message: "service unavailable".into(),
        count: None,
    });
    let err = client.nodes().await.expect_err("always failing");
    assert!(matches!(err, Error::Api { status: 503, .. }), "{err:?}");
    assert_eq!(sim.admin().request_count("GET /nodes"), 2);
}

#[tokio::test]
async fn semantic_errors_and_mutations_are_never_retried() {
    let (sim, client) = fast().await;
    sim.admin().inject(Fault::ErrorRate {
        endpoint: "POST /nodes/{node}/qemu/{vmid}/status/start".into(),
        rate: 1.0,
        status: 500,
        message: "Internal Server Error".into(),
        count: Some(1),
    });
    let err = client
        .start(&node("pve1"), vmid(GOLD))
        .await
        .expect_err("fault");
    assert!(matches!(err, Error::Api { status: 500, .. }), "{err:?}");
    assert_eq!(
        sim.admin()
            .request_count("POST /nodes/{node}/qemu/{vmid}/status/start"),
        1
    );
    let _ = client
        .vm_config(&node("pve1"), vmid(555))
        .await
        .expect_err("missing");
    assert_eq!(
        sim.admin()
            .request_count("GET /nodes/{node}/qemu/{vmid}/config"),
        1,
        "does-not-exist is an answer, not a transient failure"
    );
}

#[tokio::test]
async fn failed_task_reports_exit_status_and_upid() {
    let (sim, client) = fast().await;
    sim.admin().inject(Fault::TaskFailure {
        task_type: "qmclone".into(),
        message: "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout".into(),
        count: Some(1),
    });
    let upid = client
        .clone_vm(&node("pve1"), vmid(GOLD), &CloneParams::new(vmid(5000)))
        .await
        .expect("accepted")
        .expect("UPID");
    let err = client.wait_task(&upid, WAIT).await.expect_err("task fails");
    match err {
        Error::TaskFailed {
            upid: u,
            exitstatus,
        } => {
            assert_eq!(u, upid);
            assert!(
                exitstatus.starts_with("clone failed: can't lock file"),
                "{exitstatus}"
            );
        }
        other => panic!("got {other:?}"),
    }
    assert!(sim.admin().vm(5000).is_none(), "failed clone rolled back");
}

#[tokio::test]
async fn starting_a_template_fails_in_the_task() {
    let (_sim, client) = fast().await;
    let upid = client
        .start(&node("pve1"), vmid(GOLD))
        .await
        .expect("start accepted")
        .expect("UPID");
    let err = client.wait_task(&upid, WAIT).await.expect_err("template");
    assert!(
        matches!(&err, Error::TaskFailed { exitstatus, .. } if exitstatus.contains("template")),
        "{err:?}"
    );
}

#[tokio::test]
async fn wait_task_times_out_while_task_is_held_then_completes() {
    let mut config = SimConfig::fast();
    config.durations.clone_ms = 50;
    let sim = start_sim(config).await;
    let client = token_client(&sim);
    sim.admin().hold_tasks(true);
    let upid = client
        .clone_vm(&node("pve1"), vmid(GOLD), &CloneParams::new(vmid(5100)))
        .await
        .expect("accepted")
        .expect("UPID");
    let err = client
        .wait_task(&upid, Duration::from_millis(400))
        .await
        .expect_err("still running");
    assert!(
        matches!(&err, Error::TaskTimeout { upid: u, .. } if *u == upid),
        "{err:?}"
    );
    let running = client.task_status(&upid).await.expect("status");
    assert!(running.is_running());
    // While the clone runs, the new VM carries `lock: clone`.
    let err = client
        .update_config(&node("pve1"), vmid(5100), &ConfigUpdate::new().cores(2))
        .await
        .expect_err("clone lock");
    assert!(
        matches!(&err, Error::Locked { reason, .. } if reason == "clone"),
        "{err:?}"
    );

    sim.admin().hold_tasks(false);
    let done = client.wait_task(&upid, WAIT).await.expect("completes");
    assert!(done.is_success());
}

#[tokio::test]
async fn agent_on_stopped_vm_is_an_api_error() {
    let (_sim, client) = fast().await;
    clone_gold(&client, 5200, "worker-9").await;
    let err = client
        .agent_ping(&node("pve1"), vmid(5200))
        .await
        .expect_err("not running");
    assert!(
        matches!(&err, Error::Api { status: 500, message, .. } if message.contains("not running")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = PveClient::builder(format!("http://{addr}"))
        .token("root@pam!reborn".parse().expect("id"), Secret::new("x"))
        .read_attempts(2)
        .retry_min_delay(Duration::from_millis(5))
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.outcome_unknown());
}

#[tokio::test]
async fn slow_server_beyond_request_timeout_is_transport_error() {
    let sim = start_sim(SimConfig::fast()).await;
    sim.admin().inject(Fault::Latency {
        endpoint: "GET /version".into(),
        millis: 2_000,
    });
    let (id, secret) = sim.token();
    let client = PveClient::builder(sim.base_url())
        .token(id.parse().expect("id"), Secret::new(secret))
        .request_timeout(Duration::from_millis(200))
        .read_attempts(1)
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("too slow");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    // Latency below the timeout is just latency.
    assert!(token_client(&sim).nodes().await.is_ok());
}

// ---------------------------------------------------------------- lag

#[tokio::test]
async fn fresh_clone_is_unsampled_in_cluster_resources_until_pvestatd_runs() {
    let mut config = SimConfig::fast();
    config.resources_lag_ms = 3_600_000;
    let sim = start_sim(config).await;
    let client = token_client(&sim);
    clone_gold(&client, 5300, "worker-10").await;
    let vms = client.cluster_vms().await.expect("resources");
    let fresh = vms
        .iter()
        .find(|v| v.vmid.get() == 5300)
        .expect("listed at once");
    assert!(fresh.is_unsampled(), "{fresh:?}");
    assert_eq!(fresh.name, None);

    sim.admin().sample_resources_now();
    let vms = client.cluster_vms().await.expect("resources");
    let sampled = vms.iter().find(|v| v.vmid.get() == 5300).expect("listed");
    assert_eq!(sampled.name.as_deref(), Some("worker-10"));
    assert_eq!(sampled.status, "stopped");
}

// ---------------------------------------------------------------- ticket auth

#[tokio::test]
async fn ticket_auth_reads_and_writes_with_csrf() {
    let sim = start_sim(SimConfig::fast()).await;
    let client = PveClient::builder(sim.base_url())
        .ticket("root@pam", Secret::new("demo"))
        .build()
        .expect("builds");
    client.version().await.expect("read with ticket");
    let upid = client
        .clone_vm(
            &node("pve1"),
            vmid(GOLD),
            &CloneParams::new(vmid(5400)).name("t-1"),
        )
        .await
        .expect("write with CSRF token")
        .expect("UPID");
    assert_eq!(upid.user(), "root@pam");
    client.wait_task(&upid, WAIT).await.expect("done");
    assert_eq!(
        sim.admin().request_count("POST /access/ticket"),
        1,
        "ticket reused"
    );
}

#[tokio::test]
async fn wrong_password_is_unauthenticated_without_echoing_it() {
    let sim = start_sim(SimConfig::fast()).await;
    let client = PveClient::builder(sim.base_url())
        .ticket("root@pam", Secret::new("not-the-password"))
        .build()
        .expect("builds");
    let err = client.version().await.expect_err("bad password");
    assert!(
        matches!(&err, Error::Unauthenticated { endpoint, .. } if endpoint.path == "/access/ticket"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-password"));
    assert_eq!(sim.admin().request_count("POST /access/ticket"), 1);
}

#[tokio::test]
async fn expired_ticket_is_replaced_transparently() {
    let mut config = SimConfig::fast();
    config.ticket_lifetime_secs = 1;
    let sim = start_sim(config).await;
    let client = PveClient::builder(sim.base_url())
        .ticket("root@pam", Secret::new("demo"))
        .build()
        .expect("builds");
    client.version().await.expect("first read");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    client.nodes().await.expect("read after expiry");
    assert_eq!(sim.admin().request_count("POST /access/ticket"), 2);
}

#[tokio::test]
async fn aged_ticket_is_renewed_before_use() {
    let sim = start_sim(SimConfig::fast()).await;
    let client = PveClient::builder(sim.base_url())
        .ticket("root@pam", Secret::new("demo"))
        .ticket_renew_after(Duration::ZERO)
        .build()
        .expect("builds");
    client.version().await.expect("first read logs in");
    client.nodes().await.expect("second read renews");
    let upid = client
        .stop(&node("pve1"), vmid(GOLD))
        .await
        .expect("write with the renewed ticket's CSRF token")
        .expect("UPID");
    client
        .wait_task(&upid, WAIT)
        .await
        .expect("stop of a stopped VM is OK");
    assert!(sim.admin().request_count("POST /access/ticket") >= 3);
}

// ---------------------------------------------------------------- TLS

async fn tls_sim() -> SimServer {
    let mut config = SimConfig::fast();
    config.tls = true;
    start_sim(config).await
}

fn tls_client(sim: &SimServer, mode: TlsMode) -> PveClient {
    let (id, secret) = sim.token();
    PveClient::builder(sim.base_url())
        .token(id.parse().expect("id"), Secret::new(secret))
        .tls(mode)
        .read_attempts(1)
        .build()
        .expect("builds")
}

#[tokio::test]
async fn right_pin_connects() {
    let sim = tls_sim().await;
    assert!(sim.base_url().starts_with("https://"));
    let pin: CertFingerprint = sim
        .cert_fingerprint_sha256()
        .expect("fingerprint")
        .parse()
        .expect("valid fingerprint");
    let v = tls_client(&sim, TlsMode::PinSha256(pin)).version().await;
    assert!(v.is_ok(), "{v:?}");
    // Lower-case plain hex is the same pin.
    let lower: CertFingerprint = hex_lower(&pin).parse().expect("plain hex");
    assert!(
        tls_client(&sim, TlsMode::PinSha256(lower))
            .version()
            .await
            .is_ok()
    );
}

fn hex_lower(fp: &CertFingerprint) -> String {
    fp.to_string().replace(':', "").to_lowercase()
}

#[tokio::test]
async fn wrong_pin_fails_with_a_tls_error() {
    let sim = tls_sim().await;
    let wrong = CertFingerprint::of_der(b"some other certificate");
    let err = tls_client(&sim, TlsMode::PinSha256(wrong))
        .version()
        .await
        .expect_err("pin mismatch");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    let chain = error_chain(&err);
    assert!(
        chain.to_lowercase().contains("certificate"),
        "TLS failure expected, got: {chain}"
    );
    assert_eq!(sim.admin().request_count("GET /version"), 0);
}

#[tokio::test]
async fn ca_pem_and_insecure_modes_connect_and_system_roots_reject_self_signed() {
    let sim = tls_sim().await;
    let pem = sim.cert_pem().expect("pem");
    assert!(
        tls_client(&sim, TlsMode::CaPem(pem.clone()))
            .version()
            .await
            .is_ok()
    );

    let dir = std::env::temp_dir().join(format!("pve-client-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("ca.pem");
    std::fs::write(&file, pem).expect("write pem");
    assert!(
        tls_client(&sim, TlsMode::CaFile(file.clone()))
            .version()
            .await
            .is_ok()
    );
    let _ = std::fs::remove_dir_all(&dir);

    assert!(tls_client(&sim, TlsMode::Insecure).version().await.is_ok());

    let err = tls_client(&sim, TlsMode::System)
        .version()
        .await
        .expect_err("self-signed is not trusted by the system");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

// ---------------------------------------------------------------- secrets in logs

#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_trace_logs() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start_sim(SimConfig::fast()).await;
    let (id, secret) = sim.token();
    let client = token_client(&sim);
    clone_gold(&client, 5500, "worker-12").await;
    let ticket_client = PveClient::builder(sim.base_url())
        .ticket("root@pam", Secret::new("demo"))
        .build()
        .expect("builds");
    ticket_client
        .update_config(
            &node("pve1"),
            vmid(5500),
            &ConfigUpdate::new().cipassword(&Secret::new("cloud-init-pw-91")),
        )
        .await
        .expect("update with ticket");
    let bad = PveClient::builder(sim.base_url())
        .token(id.parse().expect("id"), Secret::new("bad-secret-77"))
        .build()
        .expect("builds");
    let _ = bad.version().await.expect_err("bad secret");

    let text = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).into_owned();
    assert!(text.contains("PVE call"), "client logged its calls");
    for secret in [
        secret.as_str(),
        "bad-secret-77",
        "cloud-init-pw-91",
        "PVE:root@pam:",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked into logs");
    }
}
