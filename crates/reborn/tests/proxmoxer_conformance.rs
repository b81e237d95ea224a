//! The simulator driven by an independent PVE client, Python's `proxmoxer`, which was written
//! against real Proxmox VE. The venv is created under `target/` on first use (PyPI only).

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_can_drive_a_vm_lifecycle_on_the_simulator() -> Result<()> {
    let python = tokio::task::spawn_blocking(ensure_venv).await??;

    let mut config = pve_sim::SimConfig::fast();
    config.tls = true;
    let config_user = config
        .users
        .first()
        .context("the default config has a user")?
        .clone();
    let server = pve_sim::start(config, "127.0.0.1:0".parse()?).await?;
    let cert = tempfile::NamedTempFile::new()?;
    std::fs::write(
        cert.path(),
        server
            .cert_pem()
            .context("TLS simulator has a certificate")?,
    )?;
    let (token_id, secret) = server.token();
    let user = config_user.userid.clone();
    let password = config_user.password.clone();
    let host = format!("127.0.0.1:{}", server.local_addr().port());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxmoxer/conformance.py");

    let cert_path = cert.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .args([&host, &token_id, &secret])
            .arg(&cert_path)
            .args([&user, &password])
            .output()
    })
    .await?
    .context("running the proxmoxer conformance script")?;
    server.shutdown().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "proxmoxer conformance failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("proxmoxer conformance: OK"), "{stdout}");
    Ok(())
}
