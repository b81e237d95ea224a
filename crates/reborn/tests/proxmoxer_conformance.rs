//! The simulator driven by an independent PVE client, Python's `proxmoxer`, which was written
//! against real Proxmox VE, and by the call sequences of Ansible's `community.proxmox` modules
//! (replayed through proxmoxer, which they are built on). The venv is created under `target/`
//! on first use (PyPI only).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Pinned so that a new proxmoxer release cannot change what this test means.
const PROXMOXER: &str = "proxmoxer==2.3.0";
const REQUESTS: &str = "requests==2.32.3";

fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv-proxmoxer")
}

/// Creates the venv with proxmoxer unless it is already there; returns its python.
fn ensure_venv() -> Result<PathBuf> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python3");
    let ready = dir.join(".ready");
    if ready.exists() {
        return Ok(python);
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .context("running python3 -m venv (is Python 3 installed?)")?;
    if !status.success() {
        bail!("python3 -m venv {} failed: {status}", dir.display());
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PROXMOXER,
            REQUESTS,
        ])
        .status()
        .context("running pip install")?;
    if !status.success() {
        bail!("pip install {PROXMOXER} {REQUESTS} failed: {status}");
    }
    std::fs::write(&ready, PROXMOXER)?;
    Ok(python)
}

/// A running TLS simulator and the file holding its certificate.
struct TlsSim {
    server: pve_sim::SimServer,
    cert: tempfile::NamedTempFile,
}

impl TlsSim {
    async fn start(mut config: pve_sim::SimConfig) -> Result<Self> {
        config.tls = true;
        let server = pve_sim::start(config, "127.0.0.1:0".parse()?).await?;
        let cert = tempfile::NamedTempFile::new()?;
        std::fs::write(
            cert.path(),
            server
                .cert_pem()
                .context("TLS simulator has a certificate")?,
        )?;
        Ok(Self { server, cert })
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.local_addr().port())
    }

    /// Runs `tests/proxmoxer/<script>` with `args`, stops the simulator, and checks that the
    /// script succeeded and printed `ok_line`.
    async fn run_script(
        self,
        python: PathBuf,
        script: &str,
        args: Vec<String>,
        ok_line: &str,
    ) -> Result<()> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/proxmoxer")
            .join(script);
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&python).arg(&script).args(&args).output()
        })
        .await?
        .with_context(|| format!("running the proxmoxer script that prints '{ok_line}'"))?;
        self.server.shutdown().await;
        drop(self.cert);

        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{ok_line} failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        assert!(stdout.contains(ok_line), "{stdout}");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_can_drive_a_vm_lifecycle_on_the_simulator() -> Result<()> {
    let python = tokio::task::spawn_blocking(ensure_venv).await??;

    let config = pve_sim::SimConfig::fast();
    let config_user = config
        .users
        .first()
        .context("the default config has a user")?
        .clone();
    let sim = TlsSim::start(config).await?;
    let (token_id, secret) = sim.server.token();
    let args = vec![
        sim.host(),
        token_id,
        secret,
        sim.cert.path().display().to_string(),
        config_user.userid.clone(),
        config_user.password.clone(),
    ];
    sim.run_script(python, "conformance.py", args, "proxmoxer conformance: OK")
        .await
}

/// The API calls of Ansible's community.proxmox modules (proxmox_kvm, proxmox_vm_info,
/// proxmox_node_info, proxmox_tasks_info and their ProxmoxAnsible base), replayed through
/// proxmoxer against a simulator with PVE-like lag: tasks take a little time, cluster/resources
/// is sampled periodically, the guest agent answers some time after start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ansible_proxmox_module_call_sequence_on_the_simulator() -> Result<()> {
    let python = tokio::task::spawn_blocking(ensure_venv).await??;

    let mut config = pve_sim::SimConfig::fast();
    config.resources_lag_ms = 400;
    config.agent_delay_ms = 1500;
    config.pools = vec!["ansible".to_owned()];
    config.durations = pve_sim::Durations {
        clone_ms: 150,
        full_clone_ms: 250,
        start_ms: 100,
        stop_ms: 50,
        shutdown_ms: 100,
        destroy_ms: 100,
        template_ms: 50,
        create_ms: 100,
        config_ms: 20,
    };
    let lag = config.resources_lag_ms.to_string();
    let agent = config.agent_delay_ms.to_string();
    let sim = TlsSim::start(config).await?;
    let (token_id, secret) = sim.server.token();
    let args = vec![
        sim.host(),
        token_id,
        secret,
        sim.cert.path().display().to_string(),
        lag,
        agent,
        "ansible".to_owned(),
    ];
    sim.run_script(python, "ansible_kvm.py", args, "ansible call sequence: OK")
        .await
}
