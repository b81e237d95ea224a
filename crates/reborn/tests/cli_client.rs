//! The client commands through the real binary against an in-process API server; tables and
//! `describe` are compared with golden files.

mod cli_support;

use cli_support::{OPERATOR_TOKEN, Server, VIEWER_TOKEN, code, examples_arg, start_time, stderr};
use store::{InstanceRecord, NewEvent, Op, ResourceKey, Txn};

fn seed_worker_1(server: &Server) {
    let record = InstanceRecord {
        instance_id: "i-7f3a".to_owned(),
        node: "worker-1".to_owned(),
        vmid: 4121,
        pve_node: "pve2".to_owned(),
        name: "worker-1".to_owned(),
        smbios_uuid: "6f1c2a9e-4b7d-4e21-9a0f-3c5d7e9b1a24".to_owned(),
        spec_hash: "sha256:5be0c2d1".to_owned(),
        gold_digest: "sha256:9e8d7c6b5a4f".to_owned(),
        created_at: start_time() + chrono::Duration::minutes(2),
        current: true,
    };
    let ready = NewEvent {
        at: start_time() + chrono::Duration::minutes(3),
        node: Some("worker-1".to_owned()),
        kind: "Ready".to_owned(),
        message: "VM 4121 is Ready (guest agent, tcp/8080) after 61s".to_owned(),
        data: serde_json::json!({"vmid": 4121}),
    };
    server
        .store
        .commit(
            Txn::new()
                .with(Op::PutInstance(record))
                .with(Op::AppendEvent(ready)),
        )
        .expect("seed instance");
    server
        .store
        .put_status(
            &ResourceKey::new("Node", "worker-1"),
            serde_json::json!({"conditions": [
                {"type": "Ready", "status": "True", "reason": "ProbeSucceeded",
                 "message": "guest agent and tcp/8080 answered", "observedGeneration": 1},
                {"type": "Tainted", "status": "False", "observedGeneration": 1}
            ]}),
            store::Expect::Any,
        )
        .expect("status");
}

#[test]
fn apply_then_get_prints_tables() {
    let server = Server::start();
    let applied = server.ok(&["apply", "-f", &examples_arg()]);
    insta::assert_snapshot!("apply_jsonrag", applied);
    seed_worker_1(&server);
    insta::assert_snapshot!("get_nodes", server.ok(&["get", "nodes"]));
    insta::assert_snapshot!("get_goldimages", server.ok(&["get", "goldimages"]));
    insta::assert_snapshot!("get_budgets", server.ok(&["get", "budgets"]));
    insta::assert_snapshot!("get_taintpolicies", server.ok(&["get", "taintpolicies"]));
    // Applying the same files again changes nothing.
    let again = server.ok(&["apply", "-f", &examples_arg()]);
    assert!(again.lines().all(|l| l.contains(" unchanged ")), "{again}");
}

#[test]
fn describe_node_shows_instance_conditions_taints_and_events() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    seed_worker_1(&server);
    server.clock.advance(chrono::Duration::minutes(10));
    let tainted = server.ok(&[
        "taint",
        "worker-1",
        "--reason",
        "svc-worker denied on tenant-b documents",
        "--severity",
        "critical",
    ]);
    assert_eq!(
        tainted,
        "node/worker-1 tainted: taint 1 (manual, critical)\n"
    );
    insta::assert_snapshot!(
        "describe_worker_1",
        server.ok(&["describe", "node", "worker-1"])
    );
    insta::assert_snapshot!("get_taints", server.ok(&["get", "taints"]));

    let untainted = server.ok(&["untaint", "worker-1"]);
    assert_eq!(untainted, "node/worker-1 untainted: 1 taint(s) cleared\n");
    assert_eq!(server.ok(&["get", "taints"]), "No taints.\n");
    let history = server.ok(&["get", "taints", "--all"]);
    assert!(history.contains("cleared by alice"), "{history}");
}

#[test]
fn json_and_yaml_output_carry_the_api_data() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&["get", "nodes", "-o", "json"])).expect("JSON");
    assert_eq!(json["items"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["items"][2]["name"], "worker-1");
    let yaml: serde_json::Value =
        serde_yaml::from_str(&server.ok(&["get", "node", "worker-2", "-o", "yaml"])).expect("YAML");
    assert_eq!(yaml["spec"]["goldImage"], "jsonrag-worker");
    assert_eq!(yaml["generation"], 1);
}

#[test]
fn events_plan_and_breaker() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    let events = server.ok(&["events", "--node", "worker-2"]);
    insta::assert_snapshot!("events_worker_2", events);
    let plan = server.ok(&["plan"]);
    assert!(plan.starts_with("1 action\n  clone worker-1"), "{plan}");
    let breaker = server.ok(&["breaker"]);
    assert!(breaker.starts_with("breaker: TRIPPED"), "{breaker}");
    assert!(breaker.contains("3 of 4 nodes tainted"), "{breaker}");
    let released = server.ok(&["breaker", "release"]);
    assert!(released.contains("last released by: alice"), "{released}");
}

#[test]
fn delete_removes_and_reports_conflicts_and_unknown_names_by_exit_code() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    let out = server.reborn(
        Some(OPERATOR_TOKEN),
        &["delete", "node", "worker-2", "--resource-version", "999"],
    );
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    assert_eq!(
        server.ok(&["delete", "node", "worker-2"]),
        "Node/worker-2 deleted\n"
    );
    let out = server.reborn(Some(OPERATOR_TOKEN), &["get", "node", "worker-2"]);
    assert_eq!(code(&out), Some(4));
    let out = server.reborn(Some(OPERATOR_TOKEN), &["describe", "node", "nobody"]);
    assert_eq!(code(&out), Some(4));
    assert!(stderr(&out).contains("nobody"));
}

#[test]
fn tokens_and_roles_map_to_exit_code_6() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    let out = server.reborn(None, &["get", "nodes"]);
    assert_eq!(code(&out), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing or invalid bearer token"));
    let out = server.reborn(Some("not-a-token"), &["get", "nodes"]);
    assert_eq!(code(&out), Some(6));
    let out = server.reborn(Some(VIEWER_TOKEN), &["get", "nodes"]);
    assert_eq!(code(&out), Some(0));
    let out = server.reborn(Some(VIEWER_TOKEN), &["taint", "worker-1", "--reason", "x"]);
    assert_eq!(code(&out), Some(6));
    assert!(stderr(&out).contains("role viewer"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains(VIEWER_TOKEN),
        "the token is never printed"
    );
}

#[test]
fn invalid_manifests_exit_2_before_any_network_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: reborn.dev/v1alpha1\nkind: GoldImage\nmetadata: {name: g}\nspec: {tempalte: {}}\n",
    )
    .expect("write");
    // Nothing listens here: local validation must fail first.
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("reborn"))
        .args(["apply", "-f"])
        .arg(&bad)
        .env("REBORN_SERVER", "http://127.0.0.1:9")
        .output()
        .expect("run");
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("tempalte"), "{}", stderr(&out));
}

#[test]
fn unreachable_server_exits_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("reborn"))
        .args([
            "get",
            "nodes",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("REBORN_TOKEN", "x")
        .output()
        .expect("run");
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the reborn API"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn node_referring_to_a_gold_image_applied_earlier_is_accepted() {
    let server = Server::start();
    let dir = examples_arg();
    server.ok(&["apply", "-f", &format!("{dir}/gold-images.yaml")]);
    let out = server.ok(&["apply", "-f", &format!("{dir}/workers.yaml")]);
    assert_eq!(
        out,
        "Node/worker-1 created (generation 1)\nNode/worker-2 created (generation 1)\n"
    );
}

#[test]
fn taint_with_quarantine_records_it_and_describe_shows_the_kept_vm() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    seed_worker_1(&server);
    let tainted = server.ok(&[
        "taint",
        "worker-1",
        "--reason",
        "keep it for forensics",
        "--quarantine",
        "24h",
    ]);
    assert_eq!(
        tainted,
        "node/worker-1 tainted: taint 1 (manual, critical)\n"
    );
    let taints: serde_json::Value =
        serde_json::from_str(&server.ok(&["get", "taints", "-o", "json"])).expect("JSON");
    assert_eq!(
        taints["items"][0]["evidence"]["action"],
        serde_json::json!({"kind": "Quarantine", "retentionSecs": 86400})
    );
    // What the controller writes once the replacement was promoted.
    server
        .store
        .put_status(
            &ResourceKey::new("Node", "worker-1"),
            serde_json::json!({"conditions": [
                {"type": "Ready", "status": "True", "reason": "ReadinessPassed",
                 "message": "VM 4121 is running and ready"}
            ], "quarantined": [
                {"vmid": 4120, "instanceId": "i-5c21", "pveNode": "pve1", "name": "worker-1",
                 "taint": 1, "until": "2026-03-02T12:00:00Z"}
            ]}),
            store::Expect::Any,
        )
        .expect("status");
    let described = server.ok(&["describe", "node", "worker-1"]);
    assert!(described.contains("Quarantined:"), "{described}");
    insta::assert_snapshot!("describe_worker_1_quarantined", described);
}

#[test]
fn get_taintpolicies_shows_the_quarantine_retention() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("quarantine.yaml");
    std::fs::write(
        &file,
        "apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: keep-for-forensics}
spec:
  match: {principalIds: [svc-worker]}
  threshold: {count: 3, window: 5m}
  severity: Critical
  action: Quarantine
  quarantineRetention: 24h
",
    )
    .expect("write");
    server.ok(&["apply", "-f", &file.display().to_string()]);
    let table = server.ok(&["get", "taintpolicies"]);
    assert!(table.contains("Quarantine 1d"), "{table}");
}

#[test]
fn taint_refuses_a_ttl_shorter_than_the_quarantine() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    let out = server.reborn(
        Some(OPERATOR_TOKEN),
        &[
            "taint",
            "worker-1",
            "--reason",
            "x",
            "--quarantine",
            "24h",
            "--ttl",
            "1h",
        ],
    );
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("shorter than the quarantine"),
        "{}",
        stderr(&out)
    );
}
