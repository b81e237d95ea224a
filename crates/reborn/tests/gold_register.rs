//! `reborn gold register` against the simulator over pinned TLS: the attestation lands in the
//! template's description and the version tag is set, and the result passes the operator's check.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;

struct Sim {
    child: Child,
    url: String,
    token_id: String,
    secret: String,
    fingerprint: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim() -> Sim {
    let mut child = Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(["sim", "--listen", "127.0.0.1:0", "--fast", "--tls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start reborn sim");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().expect("a line").expect("utf-8");
    let url = next()
        .strip_prefix("listening: ")
        .expect("listening")
        .to_owned();
    let token = next();
    let token = token.strip_prefix("token: PVEAPIToken=").expect("token");
    let (token_id, secret) = token.rsplit_once('=').expect("id=secret");
    let fingerprint = next()
        .strip_prefix("fingerprint: ")
        .expect("fingerprint")
        .to_owned();
    // Keep reading: a closed pipe would make the simulator's next print fail and end it.
    std::thread::spawn(move || lines.for_each(drop));
    Sim {
        child,
        url,
        token_id: token_id.to_owned(),
        secret: secret.to_owned(),
        fingerprint,
    }
}

fn reborn(args: &[&str]) -> Output {
    Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(args)
        .output()
        .expect("run reborn")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn attest(dir: &Path, key: &Path, version: &str) -> std::path::PathBuf {
    let image = dir.join(format!("image-{version}.raw"));
    std::fs::write(&image, format!("image bytes {version}")).expect("image");
    let out = dir.join(format!("{version}.attestation.json"));
    let o = reborn(&[
        "gold",
        "attest",
        "--image",
        s(&image),
        "--name",
        "debian-gold",
        "--key",
        s(key),
        "--image-version",
        version,
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn register(sim: &Sim, dir: &Path, attestation: &Path, vmid: &str) -> Output {
    let secret_file = dir.join("token-secret");
    std::fs::write(&secret_file, format!("{}\n", sim.secret)).expect("secret");
    reborn(&[
        "gold",
        "register",
        "--node",
        "pve1",
        "--vmid",
        vmid,
        "--attestation",
        s(attestation),
        "--pve-url",
        &sim.url,
        "--token-id",
        &sim.token_id,
        "--token-secret-file",
        s(&secret_file),
        "--fingerprint",
        &sim.fingerprint,
    ])
}

#[tokio::test]
async fn register_writes_the_attestation_and_version_tag_that_the_operator_check_accepts() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("gold.key");
    assert!(
        reborn(&["gold", "keygen", "--out", s(&key)])
            .status
            .success()
    );
    let first = attest(dir.path(), &key, "1.0");
    let second = attest(dir.path(), &key, "1.1");

    for attestation in [&first, &second] {
        let out = register(&sim, dir.path(), attestation, "9000");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("template config digest: "));
    }

    // Read back with the library client, independently of what `register` printed.
    let client = pve_client::PveClient::builder(&sim.url)
        .token(
            sim.token_id.parse().expect("token id"),
            pve_client::Secret::new(sim.secret.clone()),
        )
        .tls(pve_client::TlsMode::PinSha256(
            sim.fingerprint.parse().expect("fingerprint"),
        ))
        .build()
        .expect("client");
    let config = client
        .vm_config(
            &"pve1".parse().expect("node"),
            pve_client::VmId::new(9000).expect("vmid"),
        )
        .await
        .expect("config");
    let description = config.get_str("description").expect("description");
    let signed =
        model::SignedStatement::from_json(&std::fs::read_to_string(&second).expect("attestation"))
            .expect("parses");
    let verified = model::attestation::verify_template(
        &description,
        config.get_bool("template"),
        &signed.statement.digest,
        &[signed.key],
    )
    .expect("the operator's check accepts the registered template");
    assert_eq!(verified.statement().version, "1.1");
    // The simulator's original note is kept; the first attestation line was replaced.
    assert!(description.contains("reborn gold image"), "{description}");
    assert_eq!(description.matches("reborn-attestation:v1").count(), 1);
    let tags = config.get_str("tags").unwrap_or_default();
    assert!(tags.contains("gold-debian-gold-1.1"), "{tags}");
    assert!(!tags.contains("gold-debian-gold-1.0"), "{tags}");
}

#[test]
fn register_refuses_an_attestation_that_does_not_verify() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("gold.key");
    assert!(
        reborn(&["gold", "keygen", "--out", s(&key)])
            .status
            .success()
    );
    let attestation = attest(dir.path(), &key, "1.0");
    let json = std::fs::read_to_string(&attestation).expect("read");
    std::fs::write(&attestation, json.replace("\"1.0\"", "\"6.6\"")).expect("tamper");
    let out = register(&sim, dir.path(), &attestation, "9000");
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
