//! `reborn gold keygen → attest → verify` through the real binary: key file modes, the
//! attestation file, exit 0 for a valid attestation and exit 8 for each tampering.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

const NOT_VERIFIED: i32 = 8;

fn reborn(args: &[&str]) -> Output {
    Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(args)
        .output()
        .expect("run reborn")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A key pair and an attested 3 MiB image in a fresh directory.
struct Fixture {
    _dir: tempfile::TempDir,
    key: std::path::PathBuf,
    public: std::path::PathBuf,
    image: std::path::PathBuf,
    attestation: std::path::PathBuf,
    keygen_stdout: String,
    attest_stdout: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("gold.key");
    let public = dir.path().join("gold.key.pub");
    let image = dir.path().join("worker.qcow2");
    let attestation = dir.path().join("worker.attestation.json");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    std::fs::write(&image, data).expect("write image");

    let out = reborn(&["gold", "keygen", "--out", s(&key)]);
    assert!(out.status.success(), "keygen: {}", text(&out.stderr));
    let keygen_stdout = text(&out.stdout);

    let out = reborn(&[
        "gold",
        "attest",
        "--image",
        s(&image),
        "--name",
        "jsonrag-worker",
        "--key",
        s(&key),
        "--image-version",
        "2026.11.21-1",
        "--builder",
        "test-suite",
        "--out",
        s(&attestation),
    ]);
    assert!(out.status.success(), "attest: {}", text(&out.stderr));
    Fixture {
        _dir: dir,
        key,
        public,
        image,
        attestation,
        keygen_stdout,
        attest_stdout: text(&out.stdout),
    }
}

fn verify(f: &Fixture, extra: &[&str]) -> Output {
    let mut args = vec![
        "gold",
        "verify",
        "--attestation",
        s(&f.attestation),
        "--key",
        s(&f.public),
    ];
    args.extend_from_slice(extra);
    reborn(&args)
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read_and_prints_the_public_key() {
    let f = fixture();
    let mode = std::fs::metadata(&f.key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode {mode:o}");
    let public = std::fs::read_to_string(&f.public).expect("public key file");
    assert_eq!(f.keygen_stdout.trim(), public.trim());
    public
        .trim()
        .parse::<model::Ed25519PublicKey>()
        .expect("the manifest's trustedKeys form");
    // The private key never appears on stdout.
    let secret = std::fs::read_to_string(&f.key).expect("key");
    let secret_hex = secret.trim().trim_start_matches("ed25519-secret:");
    assert!(!f.keygen_stdout.contains(secret_hex));
}

#[test]
fn keygen_refuses_to_overwrite_a_key_without_force() {
    let f = fixture();
    let before = std::fs::read(&f.key).expect("key");
    let out = reborn(&["gold", "keygen", "--out", s(&f.key)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&f.key).expect("key"), before);
    let out = reborn(&["gold", "keygen", "--out", s(&f.key), "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&f.key).expect("key"), before);
}

#[test]
fn attest_prints_and_writes_the_signed_statement_with_the_files_sha256() {
    let f = fixture();
    let written = std::fs::read_to_string(&f.attestation).expect("attestation file");
    assert_eq!(written.trim(), f.attest_stdout.trim());
    let signed = model::SignedStatement::from_json(&written).expect("parses");
    let expected = model::attestation::digest_reader(std::fs::File::open(&f.image).expect("open"))
        .expect("hash");
    assert_eq!(signed.statement.digest, expected);
    assert_eq!(signed.statement.name.as_str(), "jsonrag-worker");
    assert_eq!(signed.statement.version, "2026.11.21-1");
    assert_eq!(signed.statement.builder, "test-suite");
}

#[test]
fn verify_accepts_the_untouched_attestation_and_image() {
    let f = fixture();
    let out = verify(&f, &["--image", s(&f.image)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("verified: jsonrag-worker version 2026.11.21-1"),
        "{stdout}"
    );
    assert!(stdout.contains("image digest matches"), "{stdout}");
}

#[test]
fn verify_refuses_a_tampered_image_with_exit_8() {
    let f = fixture();
    let mut data = std::fs::read(&f.image).expect("image");
    data[2 * 1024 * 1024] ^= 1;
    std::fs::write(&f.image, data).expect("tamper");
    let out = verify(&f, &["--image", s(&f.image)]);
    assert_eq!(
        out.status.code(),
        Some(NOT_VERIFIED),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("NOT VERIFIED"));
}

#[test]
fn verify_refuses_an_edited_attestation_with_exit_8() {
    let f = fixture();
    let json = std::fs::read_to_string(&f.attestation).expect("attestation");
    let edited = json.replace("jsonrag-worker", "jsonrag-ingress");
    assert_ne!(edited, json);
    std::fs::write(&f.attestation, edited).expect("edit");
    let out = verify(&f, &[]);
    assert_eq!(
        out.status.code(),
        Some(NOT_VERIFIED),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn verify_refuses_a_key_it_was_not_told_to_trust_with_exit_8() {
    let f = fixture();
    let other = format!("ed25519:{}", "11".repeat(32));
    let out = reborn(&[
        "gold",
        "verify",
        "--attestation",
        s(&f.attestation),
        "--key",
        &other,
    ]);
    assert_eq!(
        out.status.code(),
        Some(NOT_VERIFIED),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("not a trusted key"));
}

#[test]
fn verify_refuses_garbage_with_exit_8_and_bad_flags_with_exit_2() {
    let f = fixture();
    std::fs::write(&f.attestation, "{\"statement\": 1}").expect("garbage");
    assert_eq!(verify(&f, &[]).status.code(), Some(NOT_VERIFIED));
    let out = reborn(&[
        "gold",
        "verify",
        "--attestation",
        s(&f.attestation),
        "--key",
        "ed25519:nothex",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn attest_refuses_a_private_key_readable_by_others() {
    let f = fixture();
    std::fs::set_permissions(&f.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = reborn(&[
        "gold",
        "attest",
        "--image",
        s(&f.image),
        "--name",
        "jsonrag-worker",
        "--key",
        s(&f.key),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("chmod 600"));
}
