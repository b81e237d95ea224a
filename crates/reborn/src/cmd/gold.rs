//! `reborn gold keygen|attest|verify|register`: sign gold images and put the attestation on their PVE template.
//!
//! The cryptography and the formats are `model::attestation`'s; this module reads and writes
//! the files, takes randomness from the OS, and talks to PVE for `register`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{SubsecRound as _, Utc};
use model::attestation::{self, AttestationError, AttestationKey, SignedStatement, Statement};
use model::{Ed25519PublicKey, Name};

use crate::exit_code::ExitStatus;

/// Flags of `reborn gold`.
#[derive(Debug, clap::Args)]
pub struct GoldArgs {
    #[command(subcommand)]
    pub command: GoldCommand,
}

/// The `reborn gold` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GoldCommand {
    /// Make an ed25519 key pair: the private key file (mode 0600) and KEY.pub; prints the public key.
    Keygen(KeygenArgs),
    /// Hash a disk image (qcow2 or raw, streamed) and sign a statement about it.
    Attest(AttestArgs),
    /// Check an attestation's signature against trusted keys (and optionally an image's digest).
    /// Exit 0 if valid, 8 if not.
    Verify(VerifyArgs),
    /// Write an attestation into a PVE template's description and tag it with the image version.
    Register(RegisterArgs),
}

/// Flags of `reborn gold keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (the public key goes to the same path plus `.pub`).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Flags of `reborn gold attest`.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// The disk image (qcow2 or raw) as built.
    #[arg(long)]
    pub image: PathBuf,
    /// The image's name, usually the GoldImage's name (e.g. `jsonrag-worker`).
    #[arg(long)]
    pub name: Name,
    /// The private key file made by `reborn gold keygen` (must not be readable by group or others).
    #[arg(long)]
    pub key: PathBuf,
    /// The image version, used in the template tag `gold-<name>-<version>` (a-z, 0-9, `_-+.`).
    /// Default: the creation time, `YYYYMMDD.HHMMSS` (UTC).
    #[arg(long = "image-version")]
    pub image_version: Option<String>,
    /// Who or what built the image. Default: `$USER@<hostname>`.
    #[arg(long)]
    pub builder: Option<String>,
    /// Where to write the attestation. Default: the image path plus `.attestation.json`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Flags of `reborn gold verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The attestation file.
    #[arg(long)]
    pub attestation: PathBuf,
    /// A trusted public key: `ed25519:<64 hex>` or a `.pub` file holding one. Repeatable.
    #[arg(long = "key", required = true, num_args = 1)]
    pub keys: Vec<String>,
    /// Also hash this image and require its digest to be the attested one.
    #[arg(long)]
    pub image: Option<PathBuf>,
}

/// Flags of `reborn gold register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The PVE node holding the template.
    #[arg(long)]
    pub node: String,
    /// The template's vmid.
    #[arg(long)]
    pub vmid: u32,
    /// The attestation file made by `reborn gold attest`.
    #[arg(long)]
    pub attestation: PathBuf,
    /// Require the attestation to be signed by this key (`ed25519:<hex>` or a `.pub` file). Repeatable.
    #[arg(long = "key", num_args = 1)]
    pub keys: Vec<String>,
    /// PVE API URL, e.g. `https://pve1.example.org:8006`.
    #[arg(long, env = "REBORN_PVE_URL")]
    pub pve_url: String,
    /// PVE API token id, `USER@REALM!TOKENID`.
    #[arg(long, env = "REBORN_PVE_TOKEN_ID")]
    pub token_id: String,
    /// File holding the token secret (the secret never goes on the command line).
    #[arg(long)]
    pub token_secret_file: PathBuf,
    /// Pin the PVE certificate's SHA-256 fingerprint (`AB:CD:...`).
    #[arg(long, conflicts_with = "ca_file")]
    pub fingerprint: Option<String>,
    /// Trust only this CA (PEM), e.g. a copy of `/etc/pve/pve-root-ca.pem`.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// Runs one `reborn gold` subcommand.
pub fn run(args: GoldArgs) -> anyhow::Result<ExitStatus> {
    match args.command {
        GoldCommand::Keygen(a) => keygen(&a),
        GoldCommand::Attest(a) => attest(&a),
        GoldCommand::Verify(a) => verify(&a),
        GoldCommand::Register(a) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(register(&a))
        }
    }
}

/// `KEY` plus `.pub`.
fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn invalid(message: impl std::fmt::Display) -> anyhow::Result<ExitStatus> {
    eprintln!("error: {message}");
    Ok(ExitStatus::InvalidInput)
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitStatus> {
    let public_path = pub_path(&args.out);
    if !args.force {
        for path in [&args.out, &public_path] {
            if path.exists() {
                return invalid(format_args!(
                    "{} exists; pass --force to replace it",
                    path.display()
                ));
            }
        }
    }
    let mut seed = [0u8; 32];
    {
        use rand::TryRngCore as _;
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| anyhow::anyhow!("reading the OS random source: {e}"))?;
    }
    let key = AttestationKey::from_seed(&seed);
    seed.fill(0);
    if args.force {
        // create_new below must not follow or reuse an existing file (its mode could be wider).
        for path in [&args.out, &public_path] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            }
        }
    }
    write_new(&args.out, 0o600, key.to_text().as_bytes())?;
    let public = key.public_key();
    write_new(&public_path, 0o644, format!("{public}\n").as_bytes())?;
    println!("{public}");
    eprintln!(
        "wrote {} (private, mode 0600) and {}",
        args.out.display(),
        public_path.display()
    );
    Ok(ExitStatus::Success)
}

/// Creates `path` (which must not exist) with `mode`, writes `bytes` and syncs it.
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode; it never widens it. Set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_private_key(path: &Path) -> anyhow::Result<Result<AttestationKey, String>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Ok(Err(format!(
            "private key {} is accessible by group or others (mode {mode:04o}); run `chmod 600` on it",
            path.display()
        )));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(AttestationKey::from_text(&text).map_err(|e| format!("{}: {e}", path.display())))
}

fn hash_file(path: &Path) -> anyhow::Result<model::Sha256Digest> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    attestation::digest_reader(file).with_context(|| format!("reading {}", path.display()))
}

fn default_builder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string());
    format!("{user}@{host}")
}

fn attest(args: &AttestArgs) -> anyhow::Result<ExitStatus> {
    let key = match read_private_key(&args.key)? {
        Ok(key) => key,
        Err(message) => return invalid(message),
    };
    let created = Utc::now().trunc_subsecs(0);
    let version = args
        .image_version
        .clone()
        .unwrap_or_else(|| created.format("%Y%m%d.%H%M%S").to_string());
    if let Err(e) = attestation::image_tag(&args.name, &version) {
        return invalid(format_args!("--image-version: {e}"));
    }
    let digest = hash_file(&args.image)?;
    let statement = Statement {
        name: args.name.clone(),
        version,
        digest,
        created,
        builder: args.builder.clone().unwrap_or_else(default_builder),
    };
    let signed = attestation::sign(statement, &key)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut s = args.image.as_os_str().to_owned();
        s.push(".attestation.json");
        PathBuf::from(s)
    });
    let json = signed.to_json_pretty();
    std::fs::write(&out, format!("{json}\n"))
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{json}");
    eprintln!(
        "{} {} signed by {}",
        signed.statement.name, digest, signed.key
    );
    eprintln!("wrote {}", out.display());
    Ok(ExitStatus::Success)
}

/// Parses `ed25519:<hex>` or reads it from a file.
fn parse_key(arg: &str) -> Result<Ed25519PublicKey, String> {
    if arg.starts_with("ed25519:") {
        return arg.parse().map_err(|e| format!("--key: {e}"));
    }
    let text =
        std::fs::read_to_string(arg).map_err(|e| format!("--key: cannot read {arg}: {e}"))?;
    text.trim().parse().map_err(|e| format!("--key {arg}: {e}"))
}

fn parse_keys(args: &[String]) -> Result<Vec<Ed25519PublicKey>, String> {
    args.iter().map(|a| parse_key(a)).collect()
}

fn read_attestation(path: &Path) -> anyhow::Result<Result<SignedStatement, AttestationError>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(SignedStatement::from_json(&text))
}

/// Prints why the attestation or image is not verified; the command ends with exit code 8.
fn not_verified(message: impl std::fmt::Display) -> anyhow::Result<ExitStatus> {
    eprintln!("error: NOT VERIFIED: {message}");
    Ok(ExitStatus::NotVerified)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitStatus> {
    let trusted = match parse_keys(&args.keys) {
        Ok(keys) => keys,
        Err(message) => return invalid(message),
    };
    let signed = match read_attestation(&args.attestation)? {
        Ok(signed) => signed,
        Err(e) => return not_verified(format_args!("{}: {e}", args.attestation.display())),
    };
    let verified = match attestation::verify(&signed, &trusted) {
        Ok(v) => v,
        Err(e) => return not_verified(e),
    };
    let statement = verified.statement();
    if let Some(image) = &args.image {
        let actual = hash_file(image)?;
        if actual != statement.digest {
            return not_verified(format_args!(
                "{} has digest {actual}, the attestation says {}",
                image.display(),
                statement.digest
            ));
        }
    }
    println!(
        "verified: {} version {} {} signed by {} (built {} by {})",
        statement.name,
        statement.version,
        statement.digest,
        verified.key(),
        statement.created.to_rfc3339(),
        statement.builder
    );
    if args.image.is_some() {
        println!("image digest matches");
    }
    Ok(ExitStatus::Success)
}

async fn register(args: &RegisterArgs) -> anyhow::Result<ExitStatus> {
    use pve_client::{ConfigUpdate, NodeName, PveClient, Secret, TlsMode, TokenId, VmId};

    let signed = match read_attestation(&args.attestation)? {
        Ok(signed) => signed,
        Err(e) => return invalid(format_args!("{}: {e}", args.attestation.display())),
    };
    // Never register something that does not verify: by the given keys, else by its own key.
    let trusted = if args.keys.is_empty() {
        vec![signed.key]
    } else {
        match parse_keys(&args.keys) {
            Ok(keys) => keys,
            Err(message) => return invalid(message),
        }
    };
    if let Err(e) = attestation::verify(&signed, &trusted) {
        return not_verified(e);
    }
    let tag = match signed.statement.tag() {
        Ok(tag) => tag,
        Err(e) => return invalid(format_args!("attestation version: {e}")),
    };
    let node: NodeName = match args.node.parse() {
        Ok(n) => n,
        Err(e) => return invalid(format_args!("--node: {e}")),
    };
    let vmid = match VmId::new(args.vmid) {
        Ok(v) => v,
        Err(e) => return invalid(format_args!("--vmid: {e}")),
    };
    let token_id: TokenId = match args.token_id.parse() {
        Ok(t) => t,
        Err(e) => return invalid(format_args!("--token-id: {e}")),
    };
    let secret = std::fs::read_to_string(&args.token_secret_file)
        .with_context(|| format!("reading {}", args.token_secret_file.display()))?;
    let tls = match (&args.fingerprint, &args.ca_file) {
        (Some(fp), _) => match fp.parse() {
            Ok(fp) => TlsMode::PinSha256(fp),
            Err(e) => return invalid(format_args!("--fingerprint: {e}")),
        },
        (None, Some(ca)) => TlsMode::CaFile(ca.clone()),
        (None, None) => TlsMode::System,
    };
    let client = PveClient::builder(&args.pve_url)
        .token(token_id, Secret::new(secret.trim()))
        .tls(tls)
        .build()
        .context("building the PVE client")?;

    let config = client
        .vm_config(&node, vmid)
        .await
        .with_context(|| format!("reading the config of VM {vmid} on {node}"))?;
    if !config.get_bool("template") {
        return invalid(format_args!(
            "VM {vmid} on {node} is not a template; run `qm template {vmid}` first"
        ));
    }
    let description = attestation::description_with_attestation(
        &config.get_str("description").unwrap_or_default(),
        &signed,
    );
    let stale_prefix = format!("{}{}-", attestation::TAG_PREFIX, signed.statement.name);
    let raw_tags = config.get_str("tags").unwrap_or_default();
    let mut tags: Vec<&str> = raw_tags
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty() && !t.starts_with(&stale_prefix))
        .collect();
    tags.push(tag.as_str());
    let mut update = ConfigUpdate::new().description(description).tags(&tags);
    if let Some(digest) = &config.digest {
        update = update.digest(digest.clone());
    }
    client
        .update_config(&node, vmid, &update)
        .await
        .with_context(|| format!("updating the config of VM {vmid} on {node}"))?;

    // Read back what PVE stored, and check it the way the operator will.
    let after = client
        .vm_config(&node, vmid)
        .await
        .with_context(|| format!("re-reading the config of VM {vmid} on {node}"))?;
    let stored = after.get_str("description").unwrap_or_default();
    if let Err(rejection) = attestation::verify_template(
        &stored,
        after.get_bool("template"),
        &signed.statement.digest,
        &trusted,
    ) {
        anyhow::bail!(
            "PVE stored the attestation but it does not verify on read-back: {rejection}"
        );
    }
    println!(
        "registered {} version {} ({}) on VM {vmid} at {node}, tag {tag}",
        signed.statement.name, signed.statement.version, signed.statement.digest
    );
    if let Some(digest) = after.digest {
        println!("template config digest: {digest}");
    }
    Ok(ExitStatus::Success)
}
