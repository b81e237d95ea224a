//! End to end with the REAL Cerbos PDP 0.55.0 (npm `@cerbos/cerbos-linux-x64`, installed once
//! into `<target>/cerbos-0.55.0`) and the real binaries: `reborn sim` (HTTPS, an attested gold
//! template), `reborn run` tailing the PDP's file audit log, and the CLI. A compromised worker
//! at 127.0.0.21 reads another tenant's documents with its own service identity; reborn taints
//! exactly that worker (evidence: the callIds Cerbos returned) and replaces its VM. The benign
//! worker at 127.0.0.22 keeps its VM.

mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e_support::{
    GOLD_DIGEST, KEY_SEED, Running, apply, cli_json, free_port, nodes, start_daemon, start_sim,
    vmid_of, wait_for,
};
use model::attestation::AttestationKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CERBOS_VERSION: &str = "0.55.0";
const COMPROMISED: &str = "127.0.0.21";
const BENIGN: &str = "127.0.0.22";
const DENY_RULE: &str = "resource.tenant_document.vdefault#deny-cross-tenant";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs the PDP from npm into `<target>/cerbos-<version>` unless it is already there.
fn cerbos_binary() -> PathBuf {
    // The test binary lives in `<target>/<profile>/deps/`.
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binary is under <target>/<profile>/deps");
    let dir = target.join(format!("cerbos-{CERBOS_VERSION}"));
    let bin = dir.join("node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).expect("create the Cerbos install folder");
        let status = Command::new("npm")
            .args(["install", "--prefix"])
            .arg(&dir)
            .args(["--no-audit", "--no-fund", "--no-save", "--loglevel=error"])
            .arg(format!("@cerbos/cerbos-linux-x64@{CERBOS_VERSION}"))
            .status()
            .expect("running npm (needed to install the Cerbos PDP)");
        assert!(
            status.success(),
            "npm install of the Cerbos PDP failed: {status}"
        );
    }
    assert!(bin.exists(), "no Cerbos binary at {}", bin.display());
    bin
}

fn manifests() -> String {
    let public = AttestationKey::from_seed(&KEY_SEED).public_key();
    let policy = std::fs::read_to_string(workspace().join("examples/jsonrag/taint-policy.yaml"))
        .expect("the example TaintPolicy");
    format!(
        r#"
apiVersion: reborn.dev/v1alpha1
kind: GoldImage
metadata: {{name: gold}}
spec:
  template: {{pveNode: pve1, vmid: 9001}}
  digest: {GOLD_DIGEST}
  trustedKeys: ["{public}"]
---
apiVersion: reborn.dev/v1alpha1
kind: Node
metadata: {{name: worker-1, labels: {{app: jsonrag, role: worker}}}}
spec:
  goldImage: gold
  vmids: {{from: 4120, to: 4129}}
  placement: {{pveNodes: [pve1, pve2]}}
  resources: {{cores: 1, memory: 1GiB}}
  network: [{{bridge: vmbr0, address: {COMPROMISED}/8, gateway: 127.0.0.1}}]
  readiness: {{guestAgent: true, timeout: 1m}}
---
apiVersion: reborn.dev/v1alpha1
kind: Node
metadata: {{name: worker-2, labels: {{app: jsonrag, role: worker}}}}
spec:
  goldImage: gold
  vmids: {{from: 4130, to: 4139}}
  placement: {{pveNodes: [pve1, pve2]}}
  resources: {{cores: 1, memory: 1GiB}}
  network: [{{bridge: vmbr0, address: {BENIGN}/8, gateway: 127.0.0.1}}]
  readiness: {{guestAgent: true, timeout: 1m}}
---
{policy}"#
    )
}

/// One HTTP/1.1 request from a client socket bound to `from` (so `peer.address` names it).
async fn http(
    from: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().expect("client address"))?;
    let mut stream = socket
        .connect(format!("127.0.0.1:{port}").parse().expect("PDP address"))
        .await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-node-id: worker-2\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw).map_err(|e| bad(e.to_string()))?;
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad(format!("no HTTP header end: {text:?}")))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no status: {head:?}")))?;
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest).ok_or_else(|| bad(format!("bad chunked body: {rest:?}")))?
    } else {
        rest.to_owned()
    };
    let json = if payload.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&payload).map_err(|e| bad(e.to_string()))?
    };
    Ok((status, json))
}

fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        s = rest.get(n + 2..)?;
    }
}

/// Starts the PDP with the jsonRAG example config and policies, audit log at `audit_log`.
fn start_pdp(rt: &tokio::runtime::Runtime, audit_log: &Path, dir: &Path) -> (Running, u16) {
    let cerbos = workspace().join("examples/jsonrag/cerbos");
    let http_port = free_port();
    let grpc_port = free_port();
    let log = std::fs::File::create(dir.join("cerbos.log")).expect("cerbos log file");
    let child = Command::new(cerbos_binary())
        .arg("server")
        .arg(format!("--config={}", cerbos.join("config.yaml").display()))
        .env("CERBOS_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("CERBOS_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
        .env("CERBOS_POLICY_DIR", cerbos.join("policies"))
        .env("CERBOS_AUDIT_LOG", audit_log)
        .env("CERBOS_NO_TELEMETRY", "1")
        .stdout(Stdio::from(log.try_clone().expect("log handle")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("starting cerbos");
    let mut pdp = Running(child);
    wait_for("the Cerbos PDP serving", || {
        if let Ok(Some(status)) = pdp.0.try_wait() {
            panic!(
                "cerbos exited during start-up ({status}): {}",
                std::fs::read_to_string(dir.join("cerbos.log")).unwrap_or_default()
            );
        }
        match rt.block_on(http("127.0.0.1", http_port, "GET", "/_cerbos/health", None)) {
            Ok((200, v)) if v["status"] == "SERVING" => Some(()),
            _ => None,
        }
    });
    (pdp, http_port)
}

/// CheckResources for `svc-worker` of tenant acme reading `doc` of `doc_tenant`, sent from
/// `from`; returns (cerbosCallId, effect).
fn check(
    rt: &tokio::runtime::Runtime,
    from: &str,
    port: u16,
    doc: &str,
    doc_tenant: &str,
) -> (String, String) {
    let body = json!({"requestId": "e2e",
        "principal": {"id": "svc-worker", "roles": ["workload"], "attr": {"tenant": "acme"}},
        "resources": [{"actions": ["read"],
            "resource": {"kind": "tenant_document", "id": doc, "attr": {"tenant": doc_tenant}}}]});
    let (status, v) = rt
        .block_on(http(
            from,
            port,
            "POST",
            "/api/check/resources",
            Some(&body),
        ))
        .expect("CheckResources call");
    assert_eq!(status, 200, "CheckResources answered {status}: {v}");
    let effect = v["results"][0]["actions"]["read"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let call_id = v["cerbosCallId"]
        .as_str()
        .unwrap_or_else(|| panic!("no cerbosCallId in {v}"))
        .to_owned();
    (call_id, effect)
}

#[test]
fn compromised_worker_seen_by_the_real_pdp_is_tainted_and_replaced_by_the_daemon() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    let sim = start_sim(dir.path());

    let audit_log = dir.path().join("cerbos-audit.log");
    let (_pdp, pdp_port) = start_pdp(&rt, &audit_log, dir.path());

    let daemon = start_daemon(
        dir.path(),
        &sim,
        &format!(
            "audit:\n  sources: [{{path: \"{}\"}}]\n",
            audit_log.display()
        ),
    );
    let server = daemon.server.clone();
    apply(&server, dir.path(), "jsonrag.yaml", &manifests());
    let before = wait_for("both workers Ready", || {
        let n = nodes(&server);
        (n.len() == 2 && n.iter().all(|(_, ready, vmid)| *ready && vmid.is_some())).then_some(n)
    });
    let old = vmid_of(&before, "worker-1").expect("worker-1's VM");
    let other = vmid_of(&before, "worker-2").expect("worker-2's VM");

    // The benign worker reads its own tenant's documents.
    for doc in ["doc-1", "doc-2"] {
        let (_, effect) = check(&rt, BENIGN, pdp_port, doc, "acme");
        assert_eq!(effect, "EFFECT_ALLOW", "same-tenant read denied?");
    }
    // The compromised worker reads another tenant's documents with its own identity, as often
    // as the example policy's threshold (it names worker-2 in the spoofable x-node-id header).
    let mut forbidden = Vec::new();
    for doc in ["doc-9", "doc-10", "doc-11"] {
        let (id, effect) = check(&rt, COMPROMISED, pdp_port, doc, "globex");
        assert_eq!(effect, "EFFECT_DENY", "cross-tenant read allowed?");
        forbidden.push(id);
    }
    forbidden.sort();

    let taint = wait_for("a cerbos taint", || {
        let taints = cli_json(&server, &["get", "taints", "--all", "-o", "json"]);
        let items = taints["items"].as_array().cloned().unwrap_or_default();
        items.into_iter().find(|t| t["source"] == "cerbos")
    });
    assert_eq!(
        taint["node"], "worker-1",
        "attributed by peer address, not by the forged header: {taint}"
    );
    let mut evidence: Vec<String> = serde_json::from_value(taint["evidence"]["callIds"].clone())
        .unwrap_or_else(|e| panic!("no callIds in the evidence ({e}): {taint}"));
    evidence.sort();
    assert_eq!(
        evidence, forbidden,
        "the evidence holds the callIds Cerbos returned"
    );
    assert_eq!(taint["evidence"]["rules"], json!([DENY_RULE]), "{taint}");

    wait_for("the old VM of worker-1 destroyed", || {
        let events = cli_json(&server, &["events", "--node", "worker-1", "-o", "json"]);
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "Destroyed" && e["data"]["vmid"].as_u64() == Some(old))
            .then_some(())
    });
    let after = wait_for("worker-1 Ready on a new VM", || {
        let n = nodes(&server);
        (n.iter().all(|(_, ready, _)| *ready) && vmid_of(&n, "worker-1") != Some(old)).then_some(n)
    });
    let new = vmid_of(&after, "worker-1").expect("worker-1's new VM");
    assert!(
        (4120..=4129).contains(&new),
        "new VMID {new} comes from worker-1's range"
    );
    assert_eq!(
        vmid_of(&after, "worker-2"),
        Some(other),
        "the benign worker keeps its VM"
    );

    let taints = cli_json(&server, &["get", "taints", "--all", "-o", "json"]);
    let cerbos: Vec<&Value> = taints["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["source"] == "cerbos")
        .collect();
    assert_eq!(cerbos.len(), 1, "exactly one cerbos taint: {taints}");
    assert!(
        taints["items"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["node"] != "worker-2"),
        "the benign worker is never tainted: {taints}"
    );
    let events = cli_json(&server, &["events", "--node", "worker-2", "-o", "json"]);
    assert!(
        !events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "Destroyed"),
        "the benign worker's VM is not destroyed: {events}"
    );
}
