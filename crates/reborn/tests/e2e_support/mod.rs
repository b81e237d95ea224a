//! What the end-to-end tests share: the real `reborn` binary as a child process (killed on
//! drop), the CLI against a running daemon, polling helpers, and the simulator's config with a
//! template attested the way `reborn gold register` writes it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use model::attestation::{self, AttestationKey, Statement};
use serde_json::Value;

/// The operator-role API token the tests' daemon configs declare.
pub const API_TOKEN: &str = "e2e-operator-token-0123456789";

/// Kills the child when dropped, so a failing assertion leaves no process behind.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `reborn ARGS`, returns it and its stdout lines until `until` matched (inclusive).
pub fn spawn_until(args: &[&str], envs: &[(&str, &str)], until: &str) -> (Running, Vec<String>) {
    let mut cmd = Command::cargo_bin("reborn").expect("reborn binary");
    cmd.args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn reborn");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout).lines();
    for line in reader.by_ref() {
        let line = line.expect("utf-8 line");
        let done = line.starts_with(until);
        lines.push(line);
        if done {
            // Keep draining: a closed pipe would fail the child's next print.
            std::thread::spawn(move || reader.for_each(drop));
            return (running, lines);
        }
    }
    panic!("reborn {args:?} ended before printing {until:?}: {lines:?}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn cli(server: &str, args: &[&str]) -> Output {
    Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(args)
        .env("REBORN_SERVER", server)
        .env("REBORN_TOKEN", API_TOKEN)
        .output()
        .expect("run the reborn CLI")
}

pub fn cli_json(server: &str, args: &[&str]) -> Value {
    let out = cli(server, args);
    assert!(
        out.status.success(),
        "reborn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// (node name, ready, vmid) from `reborn get nodes -o json`.
pub fn nodes(server: &str) -> Vec<(String, bool, Option<u64>)> {
    let list = cli_json(server, &["get", "nodes", "-o", "json"]);
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                n["name"].as_str().unwrap_or_default().to_owned(),
                ready,
                n["instance"]["vmid"].as_u64(),
            )
        })
        .collect()
}

pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub const GOLD_DIGEST: &str =
    "sha256:3b1f8a6c0e2d4f5a7b9c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192";
/// The seed of the key that signs the sim's template (its public key is the GoldImage's).
pub const KEY_SEED: [u8; 32] = [0x2a; 32];

/// The simulator's config: template 9001 attested as image `gold` (signed statement in the
/// description, image tag), the way `reborn gold register` writes it.
pub fn sim_config() -> String {
    let statement = Statement {
        name: "gold".parse().expect("image name"),
        version: "20260101.000000".to_owned(),
        digest: GOLD_DIGEST.parse().expect("digest"),
        created: "2026-01-01T00:00:00Z".parse().expect("time"),
        builder: "reborn e2e tests".to_owned(),
    };
    let signed =
        attestation::sign(statement, &AttestationKey::from_seed(&KEY_SEED)).expect("signs");
    let description = attestation::description_with_attestation("", &signed);
    let tag = signed.statement.tag().expect("image tag").to_string();
    let config = serde_json::json!({"templates": [{
        "vmid": 9001, "name": "debian-12-shared", "node": "pve1", "storage": "shared",
        "config": {"description": description, "tags": tag},
    }]});
    serde_yaml::to_string(&config).expect("sim config as YAML")
}

/// A running `reborn sim --tls --fast` on the attested template of [`sim_config`], and what a
/// daemon config needs to reach it.
pub struct Sim {
    /// Killed when dropped.
    pub process: Running,
    /// The API's base URL.
    pub url: String,
    /// `USER@REALM!TOKENID`.
    pub token_id: String,
    /// The token's secret.
    pub token_secret: String,
    /// The certificate's SHA-256 fingerprint, to pin.
    pub fingerprint: String,
}

/// Starts the simulator with its config written into `dir`.
pub fn start_sim(dir: &std::path::Path) -> Sim {
    let sim_path = dir.join("sim.yaml");
    std::fs::write(&sim_path, sim_config()).expect("write sim config");
    let (process, out) = spawn_until(
        &[
            "sim",
            "--config",
            sim_path.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--fast",
            "--tls",
        ],
        &[],
        "fingerprint: ",
    );
    let field = |prefix: &str| -> String {
        out.iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {out:?}"))
            .to_owned()
    };
    let token = field("token: PVEAPIToken=");
    let (token_id, token_secret) = token.rsplit_once('=').expect("id=secret");
    Sim {
        process,
        url: field("listening: "),
        token_id: token_id.to_owned(),
        token_secret: token_secret.to_owned(),
        fingerprint: field("fingerprint: "),
    }
}

/// A running `reborn run` and the URL of its operator API.
pub struct Daemon {
    /// Killed when dropped.
    pub process: Running,
    /// `http://127.0.0.1:<port>`.
    pub server: String,
}

/// Starts `reborn run` against `sim`, its store in `dir`, with the config's `extra` top-level
/// sections appended (e.g. an `audit:` source); secrets come from the environment.
pub fn start_daemon(dir: &std::path::Path, sim: &Sim, extra: &str) -> Daemon {
    let port = free_port();
    let config = format!(
        r#"
pve:
  endpoint: {url}
  tokenId: "{token_id}"
  tokenSecret: {{env: E2E_PVE_SECRET}}
  tls: {{fingerprint: "{fingerprint}"}}
store: {{path: "{store}"}}
api:
  listen: 127.0.0.1:{port}
  tokens: [{{name: e2e, role: operator, secret: {{env: E2E_API_TOKEN}}}}]
resyncPeriod: 1s
controller:
  operatorId: e2e
  readiness: {{pollMs: 20}}
  backoff: {{initialMs: 20, maxMs: 500}}
{extra}"#,
        url = sim.url,
        token_id = sim.token_id,
        fingerprint = sim.fingerprint,
        store = dir.join("reborn.db").display(),
    );
    let config_path = dir.join("reborn.yaml");
    std::fs::write(&config_path, config).expect("write config");
    let (process, _) = spawn_until(
        &["run", "--config", config_path.to_str().expect("utf-8 path")],
        &[
            ("E2E_PVE_SECRET", sim.token_secret.as_str()),
            ("E2E_API_TOKEN", API_TOKEN),
        ],
        "reborn operator API on ",
    );
    Daemon {
        process,
        server: format!("http://127.0.0.1:{port}"),
    }
}

/// Writes `manifests` to `dir/file` and applies them with `reborn apply -f`.
pub fn apply(server: &str, dir: &std::path::Path, file: &str, manifests: &str) {
    let path = dir.join(file);
    std::fs::write(&path, manifests).expect("write manifests");
    let out = cli(server, &["apply", "-f", path.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The VMID of `name` in a [`nodes`] listing.
pub fn vmid_of(nodes: &[(String, bool, Option<u64>)], name: &str) -> Option<u64> {
    nodes
        .iter()
        .find(|(n, ..)| n == name)
        .and_then(|(.., v)| *v)
}
