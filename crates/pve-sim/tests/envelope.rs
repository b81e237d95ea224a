//! Envelope, headers, status codes and reason phrases, auth, parameter checks.

mod common;

use common::{Client, fast, start};
use pve_sim::{Role, SimConfig, TokenConfig};
use serde_json::json;

#[tokio::test]
async fn success_has_data_envelope_and_pve_headers() {
    let (sim, c) = fast().await;
    let r = c.get("/version").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "OK");
    assert_eq!(r.data()["version"], "8.4.1");
    assert_eq!(r.data()["release"], "8.4");
    assert_eq!(r.header("Server"), Some("pve-api-daemon/3.0"));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(r.header("Cache-Control"), Some("max-age=0"));
    assert_eq!(r.header("Pragma"), Some("no-cache"));
    assert!(r.header("Expires").is_some());
    assert!(r.header("Date").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_auth_is_401_no_ticket_with_empty_body() {
    let (sim, _) = fast().await;
    let r = Client::anonymous(sim.local_addr()).get("/version").await;
    assert_eq!((r.status, r.reason.as_str()), (401, "No ticket"));
    assert!(r.body.is_empty());
    assert_eq!(r.header("Content-Type"), None);
    assert_eq!(r.header("Connection"), Some("close"));
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_token_secret_is_401_authentication_failed() {
    let (sim, _) = fast().await;
    let c = Client::token(sim.local_addr(), "root@pam!reborn", "wrong");
    let r = c.get("/nodes").await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (401, "Authentication failed!")
    );
    assert!(r.body.is_empty());
    let c = Client::token(sim.local_addr(), "nobody@pam!x", "wrong");
    assert_eq!(c.get("/nodes").await.status, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_path_is_501_method_not_implemented() {
    let (sim, c) = fast().await;
    let r = c.get("/foo/bar").await;
    assert_eq!(r.status, 501);
    assert_eq!(r.reason, "Method 'GET /foo/bar' not implemented");
    assert_eq!(r.json()["data"], serde_json::Value::Null);
    let r = c.raw("PATCH", "/api2/json/version", None).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (501, "method 'PATCH' not available")
    );
    let r = c.raw("GET", "/version", None).await;
    assert_eq!((r.status, r.reason.as_str()), (501, "no such uri"));
    sim.shutdown().await;
}

#[tokio::test]
async fn get_with_a_body_is_501_unexpected_content() {
    let (sim, c) = fast().await;
    let r = c
        .raw(
            "GET",
            "/api2/json/version",
            Some(("application/x-www-form-urlencoded", "a=b".into())),
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (501, "Unexpected content for method 'GET'")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_vm_is_500_configuration_file_does_not_exist() {
    let (sim, c) = fast().await;
    let r = c.get("/nodes/pve1/qemu/999/config").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.reason,
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    );
    assert_eq!(
        r.json()["message"],
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n"
    );
    // Asking the wrong node gives the same error with that node.
    let r = c.get("/nodes/pve2/qemu/9000/config").await;
    assert_eq!(
        r.reason,
        "Configuration file 'nodes/pve2/qemu-server/9000.conf' does not exist"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_are_400_with_per_param_errors() {
    let (sim, c) = fast().await;
    let r = c
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "12"), ("full", "true"), ("bogus", "1")],
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (400, "Parameter verification failed.")
    );
    assert_eq!(
        r.error("newid"),
        "invalid format - value does not look like a valid VM ID\n"
    );
    assert_eq!(
        r.error("full"),
        "type check ('boolean') failed - got 'true'"
    );
    assert_eq!(
        r.error("bogus"),
        "property is not defined in schema and the schema does not allow additional properties"
    );
    let r = c.post("/nodes/pve1/qemu/9000/clone", &[]).await;
    assert_eq!(
        r.error("newid"),
        "property is missing and it is not optional"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn json_bodies_accept_json_booleans() {
    let (sim, c) = fast().await;
    let r = c
        .post_json(
            "/nodes/pve1/qemu/9000/clone",
            json!({"newid": 150, "full": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    c.wait_task(r.data().as_str().unwrap()).await;
    assert!(
        sim.admin().vm(150).unwrap().linked_base.is_none(),
        "full clone"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn query_wins_over_body_and_dc_is_dropped() {
    let (sim, c) = fast().await;
    let r = c
        .raw(
            "POST",
            "/api2/json/nodes/pve1/qemu/9000/clone?newid=151&_dc=12345",
            Some(("application/x-www-form-urlencoded", "newid=152".into())),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(sim.admin().vm(151).is_some());
    assert!(sim.admin().vm(152).is_none());
    let r = c
        .raw(
            "GET",
            "/api2/json/nodes/pve1/qemu/9000/config?vmid=9001",
            None,
        )
        .await;
    assert_eq!(
        r.error("vmid"),
        "duplicate parameter (already defined in URI) with conflicting values!"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn localhost_is_an_alias_and_unknown_nodes_fail_hostname_lookup() {
    let (sim, c) = fast().await;
    let r = c.get("/nodes/localhost/qemu/9000/config").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["name"], "debian-12-gold");
    let r = c.get("/nodes/nope/qemu").await;
    assert_eq!(r.status, 500);
    assert!(
        r.reason.starts_with("hostname lookup 'nope' failed"),
        "{}",
        r.reason
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn nextid_is_a_string_and_taken_ids_are_400() {
    let (sim, c) = fast().await;
    let r = c.get("/cluster/nextid").await;
    assert_eq!(r.body, r#"{"data":"100"}"#);
    let r = c.get("/cluster/nextid?vmid=9000").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error("vmid"), "VM 9000 already exists");
    let r = c.get("/cluster/nextid?vmid=4242").await;
    assert_eq!(r.data(), json!("4242"));
    sim.shutdown().await;
}

fn auditor_config() -> SimConfig {
    let mut cfg = SimConfig::fast();
    cfg.tokens.push(TokenConfig {
        id: "audit@pve!ro".into(),
        secret: "ro-secret".into(),
        role: Role::PVEAuditor,
        privsep: true,
    });
    cfg
}

#[tokio::test]
async fn auditor_token_gets_403_permission_check_failed() {
    let (sim, _) = start(auditor_config()).await;
    let ro = Client::token(sim.local_addr(), "audit@pve!ro", "ro-secret");
    assert_eq!(ro.get("/nodes/pve1/qemu/9000/config").await.status, 200);
    let r = ro.post("/nodes/pve1/qemu/9000/status/start", &[]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Permission check failed (/vms/9000, VM.PowerMgmt)")
    );
    assert_eq!(
        r.json()["message"],
        "Permission check failed (/vms/9000, VM.PowerMgmt)\n"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn skiplock_with_a_token_is_only_root() {
    let (sim, c) = fast().await;
    let r = c
        .put(
            "/nodes/pve1/qemu/9000/config",
            &[("skiplock", "1"), ("cores", "4")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error("skiplock"), "Only root may use this option.");
    sim.shutdown().await;
}

#[tokio::test]
async fn ticket_login_needs_csrf_for_writes() {
    let (sim, _) = fast().await;
    let anon = Client::anonymous(sim.local_addr());
    let r = anon
        .post(
            "/access/ticket",
            &[("username", "root@pam"), ("password", "wrong")],
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (401, "authentication failure")
    );
    let r = anon
        .post(
            "/access/ticket",
            &[("username", "root"), ("password", "demo")],
        )
        .await;
    assert_eq!(r.status, 200);
    let d = r.data();
    let ticket = d["ticket"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("PVE:root@pam:"));
    let csrf = d["CSRFPreventionToken"].as_str().unwrap().to_string();
    let mut c = Client::anonymous(sim.local_addr());
    c.headers.push((
        "Cookie".into(),
        format!("PVEAuthCookie={}", common::enc(&ticket)),
    ));
    assert_eq!(c.get("/nodes").await.status, 200);
    let r = c
        .put("/nodes/pve1/qemu/9000/config", &[("cores", "4")])
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (401, "Permission denied - invalid csrf token")
    );
    c.headers.push(("CSRFPreventionToken".into(), csrf));
    let r = c
        .put("/nodes/pve1/qemu/9000/config", &[("cores", "4")])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // root@pam with a ticket may use skiplock.
    let r = c
        .put(
            "/nodes/pve1/qemu/9000/config",
            &[("cores", "2"), ("skiplock", "1")],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut bad = Client::anonymous(sim.local_addr());
    bad.headers.push((
        "Cookie".into(),
        "PVEAuthCookie=PVE:root@pam:00000000::forged".into(),
    ));
    assert_eq!(bad.get("/nodes").await.reason, "Authentication failed!");
    sim.shutdown().await;
}

#[tokio::test]
async fn nodes_and_resources_list_the_cluster() {
    let (sim, c) = fast().await;
    let nodes = c.get("/nodes").await.data();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pve1", "pve2"]);
    assert_eq!(nodes[0]["type"], "node");
    let res = c.get("/cluster/resources?type=vm").await.data();
    let gold = res
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == 9000)
        .unwrap()
        .clone();
    assert_eq!(gold["id"], "qemu/9000");
    assert_eq!(gold["type"], "qemu");
    assert_eq!(gold["template"], 1);
    assert_eq!(gold["name"], "debian-12-gold");
    let storages = c.get("/cluster/resources?type=storage").await.data();
    assert!(
        storages
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "storage/pve2/shared" && s["shared"] == 1)
    );
    let all = c.get("/cluster/resources").await.data();
    assert!(all.as_array().unwrap().len() > res.as_array().unwrap().len());
    sim.shutdown().await;
}
