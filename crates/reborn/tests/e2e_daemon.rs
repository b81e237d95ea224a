//! End to end through the real binary, as an operator would run it: `reborn sim` (HTTPS, its
//! certificate pinned by fingerprint), `reborn run` with a config file and secrets from the
//! environment, then `reborn apply`, `reborn taint`, and waiting on `reborn get` and
//! `reborn events` until the tainted node runs on a fresh VM and the old one is gone.

mod e2e_support;

use e2e_support::{
    GOLD_DIGEST, KEY_SEED, apply, cli, cli_json, nodes, start_daemon, start_sim, vmid_of, wait_for,
};
use model::attestation::AttestationKey;

fn manifest_text() -> String {
    let public = AttestationKey::from_seed(&KEY_SEED).public_key();
    format!(
        r#"
apiVersion: reborn.dev/v1alpha1
kind: GoldImage
metadata: {{name: gold}}
spec:
  template: {{pveNode: pve1, vmid: 9001}}
  digest: {GOLD_DIGEST}
  trustedKeys: ["{public}"]
---{MANIFESTS}"#
    )
}

const MANIFESTS: &str = r#"
apiVersion: reborn.dev/v1alpha1
kind: Node
metadata: {name: web-a, labels: {role: web}}
spec:
  goldImage: gold
  vmids: {from: 5000, to: 5009}
  placement: {pveNodes: [pve1, pve2]}
  resources: {cores: 1, memory: 1GiB}
  network: [{bridge: vmbr0, address: 10.0.20.11/24, gateway: 10.0.20.1}]
  readiness: {guestAgent: true, timeout: 1m}
---
apiVersion: reborn.dev/v1alpha1
kind: Node
metadata: {name: web-b, labels: {role: web}}
spec:
  goldImage: gold
  vmids: {from: 5010, to: 5019}
  placement: {pveNodes: [pve1, pve2]}
  resources: {cores: 1, memory: 1GiB}
  network: [{bridge: vmbr0, address: 10.0.20.12/24, gateway: 10.0.20.1}]
  readiness: {guestAgent: true, timeout: 1m}
"#;

#[test]
fn taint_through_the_cli_replaces_the_node_through_the_real_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path());
    let daemon = start_daemon(dir.path(), &sim, "");
    let server = daemon.server.clone();
    apply(&server, dir.path(), "web.yaml", &manifest_text());

    let before = wait_for("both nodes Ready", || {
        let n = nodes(&server);
        (n.len() == 2 && n.iter().all(|(_, ready, vmid)| *ready && vmid.is_some())).then_some(n)
    });
    let old = vmid_of(&before, "web-a").expect("web-a's VM");
    let other = vmid_of(&before, "web-b").expect("web-b's VM");

    let out = cli(&server, &["taint", "web-a", "--reason", "e2e: compromised"]);
    assert!(
        out.status.success(),
        "taint: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    wait_for("the old VM of web-a destroyed", || {
        let events = cli_json(&server, &["events", "--node", "web-a", "-o", "json"]);
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "Destroyed" && e["data"]["vmid"].as_u64() == Some(old))
            .then_some(())
    });
    let after = wait_for("web-a Ready on a new VM", || {
        let n = nodes(&server);
        n.iter()
            .all(|(_, ready, _)| *ready)
            .then_some(n)
            .filter(|n| {
                n.iter()
                    .any(|(name, _, v)| name == "web-a" && *v != Some(old))
            })
    });
    let new = after
        .iter()
        .find(|(n, ..)| n == "web-a")
        .and_then(|(.., v)| *v)
        .unwrap();
    assert!(
        (5000..=5009).contains(&new),
        "new VMID {new} comes from web-a's range"
    );
    assert_eq!(
        after
            .iter()
            .find(|(n, ..)| n == "web-b")
            .and_then(|(.., v)| *v),
        Some(other),
        "the untainted node keeps its VM"
    );

    let taints = cli_json(&server, &["get", "taints", "-o", "json"]);
    assert_eq!(
        taints["items"].as_array().map(Vec::len),
        Some(0),
        "the taint ends with the instance it marked: {taints}"
    );
}
