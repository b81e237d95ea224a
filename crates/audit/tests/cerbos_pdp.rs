//! End to end with the REAL Cerbos PDP 0.55.0 (npm `@cerbos/cerbos-linux-x64`): a compromised
//! worker at 127.0.0.21 reads another tenant's documents; the tailer, reading the PDP's real
//! audit log, writes exactly one taint for it to a real SQLite store. A benign worker at
//! 127.0.0.22, whose user is denied the same way, gets none.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use audit::{AddressBook, FileSourceConfig, Ingestor, NodeAddresses, run_file_source};
use serde_json::{Value, json};
use store::{SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VERSION: &str = "0.55.0";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<target>/cerbos-<version>`: the test binary lives in `<target>/<profile>/deps/`.
fn install_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("test binary is not under <target>/<profile>/deps")?;
    Ok(target.join(format!("cerbos-{VERSION}")))
}

/// Installs the PDP from npm unless it is already there.
fn cerbos_binary() -> Result<PathBuf> {
    let dir = install_dir()?;
    let bin = dir.join("node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64");
    if !bin.exists() {
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("npm")
            .args(["install", "--prefix"])
            .arg(&dir)
            .args(["--no-audit", "--no-fund", "--no-save", "--loglevel=error"])
            .arg(format!("@cerbos/cerbos-linux-x64@{VERSION}"))
            .status()
            .context("running npm (needed to install the Cerbos PDP)")?;
        ensure!(
            status.success(),
            "npm install of the Cerbos PDP failed: {status}"
        );
    }
    ensure!(bin.exists(), "no Cerbos binary at {}", bin.display());
    Ok(bin)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Pdp {
    child: Child,
    http: u16,
}

impl Pdp {
    fn stop(&mut self) -> Result<()> {
        // SIGTERM: Cerbos drains and syncs the audit writer before exiting.
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let exit = self.child.wait()?;
        ensure!(exit.success(), "cerbos exited with {exit}");
        Ok(())
    }
}

impl Drop for Pdp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request from a client socket bound to `from` (so `peer.address` names it).
async fn http(
    from: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse()?)?;
    let mut stream = socket.connect(format!("127.0.0.1:{port}").parse()?).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw)?;
    let (head, rest) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)?
    } else {
        rest.to_owned()
    };
    let json = if payload.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&payload)?
    };
    Ok((status, json))
}

fn dechunk(mut s: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").context("bad chunk")?;
        let n = usize::from_str_radix(size.trim(), 16)?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).context("short chunk")?);
        s = rest.get(n + 2..).context("short chunk")?;
    }
}

async fn start_pdp(bin: &Path, audit_log: &Path, dir: &Path) -> Result<Pdp> {
    let cerbos = workspace().join("examples/jsonrag/cerbos");
    let http_port = free_port()?;
    let grpc_port = free_port()?;
    let log = std::fs::File::create(dir.join("server.log"))?;
    let child = Command::new(bin)
        .arg("server")
        .arg(format!("--config={}", cerbos.join("config.yaml").display()))
        .env("CERBOS_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("CERBOS_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
        .env("CERBOS_POLICY_DIR", cerbos.join("policies"))
        .env("CERBOS_AUDIT_LOG", audit_log)
        .env("CERBOS_NO_TELEMETRY", "1")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting cerbos")?;
    let mut pdp = Pdp {
        child,
        http: http_port,
    };
    for _ in 0..400 {
        if let Some(status) = pdp.child.try_wait()? {
            bail!(
                "cerbos exited during start-up ({status}): {}",
                std::fs::read_to_string(dir.join("server.log"))?
            );
        }
        if let Ok((200, v)) =
            http("127.0.0.1", http_port, "GET", "/_cerbos/health", None, &[]).await
            && v["status"] == "SERVING"
        {
            return Ok(pdp);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("cerbos not serving after 20 s")
}

fn check(principal: &str, role: &str, tenant: &str, doc: &str, doc_tenant: &str) -> Value {
    json!({"requestId": "it", "principal": {"id": principal, "roles": [role], "attr": {"tenant": tenant}},
        "resources": [{"actions": ["read"], "resource": {"kind": "tenant_document", "id": doc, "attr": {"tenant": doc_tenant}}}]})
}

async fn check_from(
    from: &str,
    port: u16,
    body: &Value,
    node_header: &str,
) -> Result<(String, String)> {
    let (status, v) = http(
        from,
        port,
        "POST",
        "/api/check/resources",
        Some(body),
        &[("x-node-id", node_header)],
    )
    .await?;
    ensure!(status == 200, "CheckResources answered {status}: {v}");
    let effect = v["results"][0]["actions"]["read"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let call_id = v["cerbosCallId"]
        .as_str()
        .context("no cerbosCallId")?
        .to_owned();
    Ok((call_id, effect))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compromised_worker_is_tainted_from_the_real_pdp_audit_log_and_benign_one_is_not()
-> Result<()> {
    let bin = tokio::task::spawn_blocking(cerbos_binary).await??;
    let cerbos = workspace().join("examples/jsonrag/cerbos");

    // The example policies and their tests compile.
    let out = Command::new(&bin)
        .arg("compile")
        .arg(cerbos.join("policies"))
        .output()?;
    ensure!(
        out.status.success(),
        "cerbos compile failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let dir = tempfile::tempdir()?;
    let audit_log = dir.path().join("audit.log");
    let mut pdp = start_pdp(&bin, &audit_log, dir.path()).await?;

    // reborn's side: the store, the worker policy of examples/jsonrag, addresses as learned
    // from the guest agents, the tailer.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("reborn.db"))?);
    let mut map = NodeAddresses::new();
    map.set_node_ips("worker-1", ["127.0.0.21".parse()?]);
    map.set_node_ips("worker-2", ["127.0.0.22".parse()?]);
    let example = model::load_str(
        "taint-policy.yaml",
        &std::fs::read_to_string(workspace().join("examples/jsonrag/taint-policy.yaml"))?,
    )
    .map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let policy = example
        .taint_policies
        .first()
        .context("no TaintPolicy in the example")?;
    ensure!(
        policy.spec.threshold.count == 3,
        "the test sends three forbidden reads"
    );
    let ingestor = Arc::new(Mutex::new(Ingestor::new(
        vec![audit::CompiledPolicy::new(policy)],
        AddressBook::new(map),
    )));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = FileSourceConfig::new("cerbos-file", &audit_log);
    config.poll_interval = Duration::from_millis(50);
    let tailer = tokio::spawn(run_file_source(
        config,
        store.clone(),
        ingestor,
        shutdown,
        Some(tx),
    ));

    // The compromised worker (worker-1) reads globex documents with its own identity, three
    // times, and names worker-2 in the spoofable header.
    let mut forbidden = Vec::new();
    for doc in ["doc-9", "doc-10", "doc-11"] {
        let (id, effect) = check_from(
            "127.0.0.21",
            pdp.http,
            &check("svc-worker", "workload", "acme", doc, "globex"),
            "worker-2",
        )
        .await?;
        ensure!(effect == "EFFECT_DENY", "cross-tenant read allowed?");
        forbidden.push(id);
    }
    // Its legitimate reads are allowed and do not count.
    check_from(
        "127.0.0.21",
        pdp.http,
        &check("svc-worker", "workload", "acme", "doc-1", "acme"),
        "worker-1",
    )
    .await?;
    // The benign worker (worker-2) reads its own tenant's documents, and checks for its user
    // alice, who tries another tenant's documents three times: her denials, not the worker's.
    for doc in ["doc-1", "doc-2"] {
        check_from(
            "127.0.0.22",
            pdp.http,
            &check("svc-worker", "workload", "acme", doc, "acme"),
            "worker-2",
        )
        .await?;
    }
    for doc in ["doc-9", "doc-10", "doc-11"] {
        let (_, effect) = check_from(
            "127.0.0.22",
            pdp.http,
            &check("alice", "user", "acme", doc, "globex"),
            "worker-2",
        )
        .await?;
        ensure!(
            effect == "EFFECT_DENY",
            "alice's cross-tenant read allowed?"
        );
    }
    pdp.stop()?;

    // Wait until the tailer has read every line the PDP wrote (bounded, not timed).
    let written = std::fs::read_to_string(&audit_log)?.lines().count() as u64;
    ensure!(
        written == 2 * 9,
        "expected an access and a decision line per call, got {written}"
    );
    let mut read = 0;
    let mut taints = Vec::new();
    while read < written {
        let report = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .context("tailer did not read the whole log")?
            .context("tailer stopped")?;
        read += report.lines;
        ensure!(report.malformed == 0, "real lines must decode");
        taints.extend(report.taints);
    }
    stop.send(true)?;
    tailer.await??;

    assert_eq!(taints.len(), 1, "exactly one taint: {taints:?}");
    let stored = store.active_taints(None, chrono::Utc::now())?;
    assert_eq!(stored.len(), 1);
    let t = &stored[0];
    assert_eq!(
        t.node, "worker-1",
        "attributed by peer address, not by the forged header"
    );
    assert_eq!(t.source, store::TaintSource::Cerbos);
    assert_eq!(t.key, "cerbos/worker-cross-tenant");
    let mut evidence: Vec<String> = serde_json::from_value(t.evidence["callIds"].clone())?;
    evidence.sort();
    forbidden.sort();
    assert_eq!(
        evidence, forbidden,
        "the evidence holds the callIds Cerbos returned"
    );
    assert_eq!(
        t.evidence["rules"],
        json!(["resource.tenant_document.vdefault#deny-cross-tenant"])
    );
    assert!(
        store
            .active_taints(Some("worker-2"), chrono::Utc::now())?
            .is_empty()
    );
    let cursor = store
        .audit_cursor("cerbos-file")?
        .context("cursor stored")?;
    let size = std::fs::metadata(&audit_log)?.len();
    assert!(
        matches!(cursor.position, store::CursorPosition::File { offset, .. } if offset == size)
    );
    Ok(())
}
