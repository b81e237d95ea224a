//! Gold image attestation: signed statements (name, version, digest, created, builder), their ed25519 signatures, how they travel in a PVE template's description, and the checks before a clone.
//!
//! Everything here is pure: no clock, no randomness, no file or network access. The caller
//! supplies the creation time, the 32-byte key seed (from the OS random source) and the image
//! bytes (as any [`std::io::Read`], hashed in constant memory by [`digest_reader`]).
//!
//! # What is signed
//!
//! The ed25519 signature covers `reborn-attestation:v1\n` followed by the compact JSON of the
//! [`Statement`] (fields in declaration order, as serde writes them). Verification re-serialises
//! the parsed statement, so any change to any field — including re-encoding the timestamp —
//! breaks the signature.
//!
//! # How it travels with the template
//!
//! [`to_description_line`] renders one line `reborn-attestation:v1 <compact JSON>` for the PVE
//! template's `description` (PVE stores the description as `#` comment lines and returns it
//! decoded; the line is pure printable JSON with no leading or trailing blanks, so it survives).
//! [`image_tag`] gives the tag naming the image version (`gold-<name>-<version>`).
//!
//! # What the operator checks before every clone
//!
//! [`verify_template`] (template flag, attestation present and well-formed, key trusted,
//! signature valid, digest equal to the GoldImage manifest's) and [`check_config_unchanged`]
//! (the template's PVE config `digest` equals the one remembered when it was verified). The
//! memory is the operator's: on the first successful `verify_template` for a GoldImage
//! (keyed by its name, generation and template vmid) it records the config digest it read in
//! the same GET; on every later pass it calls [`check_config_unchanged`] first. Any edit to the
//! template (a swapped disk, a changed description) changes PVE's config digest and is refused
//! until a person re-applies the GoldImage (a new generation starts a fresh verification).

use crate::values::{Ed25519PublicKey, Name, PveTag, Sha256Digest, ValueError};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

/// The prefix of the description line (and the domain separator of the signed bytes).
pub const DESCRIPTION_PREFIX: &str = "reborn-attestation:v1";

/// Prefix of the tag naming the image version on the template.
pub const TAG_PREFIX: &str = "gold-";

/// Size of the read buffer used by [`digest_reader`] (memory use is constant, whatever the image size).
pub const HASH_CHUNK_BYTES: usize = 1024 * 1024;

/// What a builder asserts about an image: its name, version, SHA-256 digest, when and by whom it was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Statement {
    /// The image's name (usually the GoldImage's name, e.g. `jsonrag-worker`).
    pub name: Name,
    /// The image version; part of the template tag, so PVE-tag characters only (see [`image_tag`]).
    pub version: String,
    /// SHA-256 of the disk image file (qcow2 or raw) as built.
    pub digest: Sha256Digest,
    /// When the statement was made (UTC).
    pub created: DateTime<Utc>,
    /// Who or what built the image (free text, e.g. `ci@build-host gold-images/worker/build.sh`).
    pub builder: String,
}

impl Statement {
    /// The tag naming this image version on the template (see [`image_tag`]).
    pub fn tag(&self) -> Result<PveTag, ValueError> {
        image_tag(&self.name, &self.version)
    }

    /// The exact bytes the signature covers.
    fn signed_bytes(&self) -> Result<Vec<u8>, AttestationError> {
        let json = serde_json::to_vec(self).map_err(|e| AttestationError::Encode {
            reason: e.to_string(),
        })?;
        let mut bytes = Vec::with_capacity(DESCRIPTION_PREFIX.len() + 1 + json.len());
        bytes.extend_from_slice(DESCRIPTION_PREFIX.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&json);
        Ok(bytes)
    }
}

/// An ed25519 signature (64 bytes), written as 128 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureBytes([u8; 64]);

impl SignatureBytes {
    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureBytes({self})")
    }
}

impl fmt::Display for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for SignatureBytes {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ValueError::new("signature", s, "expected 128 lower-case hex digits");
        if s.len() != 128 || s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad());
        }
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(SignatureBytes(out))
    }
}

impl Serialize for SignatureBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A statement with the public key that signed it and the signature: the attestation file's
/// content and what the template description carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedStatement {
    /// What is asserted.
    pub statement: Statement,
    /// The public key of the signer (must be among the trusted keys to verify).
    pub key: Ed25519PublicKey,
    /// The ed25519 signature over the statement.
    pub signature: SignatureBytes,
}

impl SignedStatement {
    /// Pretty JSON, as written to attestation files.
    pub fn to_json_pretty(&self) -> String {
        // A struct of strings and fixed-size values: serialising it cannot fail.
        serde_json::to_string_pretty(self).expect("a signed statement serialises to JSON")
    }

    /// Parses an attestation file's JSON.
    pub fn from_json(text: &str) -> Result<Self, AttestationError> {
        serde_json::from_str(text).map_err(|e| AttestationError::Malformed {
            reason: e.to_string(),
        })
    }
}

/// An ed25519 private key that signs statements. Its `Debug` output never shows the key.
///
/// Stored on disk as one line `ed25519-secret:<64 hex digits of the 32-byte seed>`
/// ([`AttestationKey::to_text`] / [`AttestationKey::from_text`]).
pub struct AttestationKey(SigningKey);

/// Prefix of a private key file's line.
pub const SECRET_KEY_PREFIX: &str = "ed25519-secret:";

impl AttestationKey {
    /// The key whose 32-byte seed is `seed` (take it from the OS random source).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        AttestationKey(SigningKey::from_bytes(seed))
    }

    /// Parses the private key file's content (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Self, AttestationError> {
        let bad = || AttestationError::MalformedSecretKey;
        let hex_part = text
            .trim()
            .strip_prefix(SECRET_KEY_PREFIX)
            .ok_or_else(bad)?;
        if hex_part.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut seed).map_err(|_| bad())?;
        let key = AttestationKey::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// The private key file's content (one line, with a trailing newline). Secret!
    pub fn to_text(&self) -> String {
        format!("{SECRET_KEY_PREFIX}{}\n", hex::encode(self.0.as_bytes()))
    }

    /// The public key, as GoldImage manifests list it in `trustedKeys`.
    pub fn public_key(&self) -> Ed25519PublicKey {
        Ed25519PublicKey::from_bytes(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for AttestationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationKey")
            .field("public", &self.public_key().to_string())
            .finish_non_exhaustive()
    }
}

/// Signs `statement` with `key`.
pub fn sign(
    statement: Statement,
    key: &AttestationKey,
) -> Result<SignedStatement, AttestationError> {
    let bytes = statement.signed_bytes()?;
    let signature = key.0.sign(&bytes);
    Ok(SignedStatement {
        statement,
        key: key.public_key(),
        signature: SignatureBytes(signature.to_bytes()),
    })
}

/// A statement whose signature was checked against a trusted key. Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatement {
    statement: Statement,
    key: Ed25519PublicKey,
}

impl VerifiedStatement {
    /// The verified statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The trusted key that signed it.
    pub fn key(&self) -> &Ed25519PublicKey {
        &self.key
    }
}

/// Why an attestation could not be made, read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The signing key is not among the trusted keys.
    #[error("the attestation is signed by {key}, which is not a trusted key")]
    UntrustedKey {
        /// The key named in the attestation.
        key: Ed25519PublicKey,
    },
    /// The signature does not match the statement (tampered statement or forged signature).
    #[error("the signature by {key} does not match the statement")]
    BadSignature {
        /// The (trusted) key that supposedly signed it.
        key: Ed25519PublicKey,
    },
    /// The attestation text is not a signed statement.
    #[error("malformed attestation: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The private key file does not hold `ed25519-secret:<64 hex digits>` (its content is never shown).
    #[error("malformed private key: expected one line `{SECRET_KEY_PREFIX}<64 hex digits>`")]
    MalformedSecretKey,
    /// The statement could not be serialised (should not happen).
    #[error("cannot encode the statement: {reason}")]
    Encode {
        /// The serialiser's message.
        reason: String,
    },
}

/// Verifies `signed` against `trusted_keys`: the signing key must be trusted and the
/// signature valid (strict ed25519 verification: no malleable or weak-key signatures).
pub fn verify(
    signed: &SignedStatement,
    trusted_keys: &[Ed25519PublicKey],
) -> Result<VerifiedStatement, AttestationError> {
    if !trusted_keys.contains(&signed.key) {
        return Err(AttestationError::UntrustedKey { key: signed.key });
    }
    let bad = || AttestationError::BadSignature { key: signed.key };
    let key = VerifyingKey::from_bytes(signed.key.as_bytes()).map_err(|_| bad())?;
    let signature = ed25519_dalek::Signature::from_bytes(signed.signature.as_bytes());
    let bytes = signed.statement.signed_bytes()?;
    key.verify_strict(&bytes, &signature).map_err(|_| bad())?;
    Ok(VerifiedStatement {
        statement: signed.statement.clone(),
        key: signed.key,
    })
}

/// The description line carrying `signed`: `reborn-attestation:v1 <compact JSON>`.
pub fn to_description_line(signed: &SignedStatement) -> String {
    // A struct of strings and fixed-size values: serialising it cannot fail.
    let json = serde_json::to_string(signed).expect("a signed statement serialises to JSON");
    format!("{DESCRIPTION_PREFIX} {json}")
}

/// `existing` description with its attestation line(s) replaced by `signed`'s line (placed
/// first); other lines (a person's notes) are kept in order.
pub fn description_with_attestation(existing: &str, signed: &SignedStatement) -> String {
    let mut lines = vec![to_description_line(signed)];
    lines.extend(
        existing
            .lines()
            .filter(|l| !is_attestation_line(l))
            .map(str::to_string),
    );
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

fn is_attestation_line(line: &str) -> bool {
    line.trim_start().starts_with("reborn-attestation:")
}

/// Why a description yields no signed statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    /// No `reborn-attestation:` line.
    #[error("the description has no `{DESCRIPTION_PREFIX}` line")]
    Missing,
    /// More than one attestation line: ambiguous, so none is used.
    #[error("the description has {count} attestation lines; exactly one is allowed")]
    Multiple {
        /// How many.
        count: usize,
    },
    /// The line does not parse (unknown version, bad JSON, truncated signature, ...).
    #[error("the attestation line is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

/// Finds and parses the one attestation line of a template description.
pub fn parse_description(description: &str) -> Result<SignedStatement, DescriptionError> {
    let lines: Vec<&str> = description
        .lines()
        .filter(|l| is_attestation_line(l))
        .collect();
    let line = match lines.as_slice() {
        [] => return Err(DescriptionError::Missing),
        [one] => one.trim(),
        many => return Err(DescriptionError::Multiple { count: many.len() }),
    };
    let json = line
        .strip_prefix(DESCRIPTION_PREFIX)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| DescriptionError::Malformed {
            reason: format!("expected `{DESCRIPTION_PREFIX} <JSON>`"),
        })?;
    serde_json::from_str(json).map_err(|e| DescriptionError::Malformed {
        reason: e.to_string(),
    })
}

/// The signed statement in a template description, if there is exactly one well-formed one.
pub fn from_description(description: &str) -> Option<SignedStatement> {
    parse_description(description).ok()
}

/// The tag naming an image version on its template: `gold-<name>-<version>`. `version` must be
/// made of PVE tag characters (`a-z`, `0-9`, `_`, `-`, `+`, `.`; upper case is refused because
/// PVE lower-cases tags).
pub fn image_tag(name: &Name, version: &str) -> Result<PveTag, ValueError> {
    if version.is_empty() {
        return Err(ValueError::new(
            "image version",
            version,
            "must not be empty",
        ));
    }
    if let Some(c) = version.chars().find(|c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '.'))
    }) {
        return Err(ValueError::new(
            "image version",
            version,
            format!("`{c}` is not allowed in a PVE tag (use a-z, 0-9, `_`, `-`, `+`, `.`)"),
        ));
    }
    format!("{TAG_PREFIX}{name}-{version}").parse()
}

/// SHA-256 of everything `reader` yields, read in [`HASH_CHUNK_BYTES`] chunks (constant memory;
/// images of any size). Interrupted reads are retried.
pub fn digest_reader<R: Read>(mut reader: R) -> io::Result<Sha256Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK_BYTES];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Sha256Digest::from_bytes(hasher.finalize().into()))
}

/// Why the operator must not clone from a template. Each case has a stable [`code`](Self::code)
/// for events and status conditions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateRejection {
    /// The VM is not a PVE template (`template: 1` missing).
    #[error("VM is not a template")]
    NotATemplate,
    /// The description carries no attestation line (an unsigned template).
    #[error("template has no attestation (no `{DESCRIPTION_PREFIX}` line in its description)")]
    NoAttestation,
    /// The attestation line is there but does not parse, or there are several.
    #[error("template attestation is malformed: {reason}")]
    MalformedAttestation {
        /// What is wrong.
        reason: String,
    },
    /// Signed by a key the GoldImage does not trust.
    #[error("template attestation is signed by untrusted key {key}")]
    UntrustedKey {
        /// The key named in the attestation.
        key: Ed25519PublicKey,
    },
    /// The signature does not match the statement.
    #[error("template attestation signature by {key} is invalid")]
    BadSignature {
        /// The key named in the attestation.
        key: Ed25519PublicKey,
    },
    /// The signed digest is not the one the GoldImage manifest expects.
    #[error("template image digest {attested} differs from the manifest's {expected}")]
    DigestMismatch {
        /// From the GoldImage manifest.
        expected: Sha256Digest,
        /// From the verified attestation.
        attested: Sha256Digest,
    },
    /// The template's PVE config changed after it was verified (e.g. a disk was swapped).
    #[error("template config changed since it was verified (digest {verified} → {current})")]
    ConfigChanged {
        /// PVE config digest when verified.
        verified: String,
        /// PVE config digest now.
        current: String,
    },
}

impl TemplateRejection {
    /// A stable CamelCase code: the event/condition reason.
    pub fn code(&self) -> &'static str {
        match self {
            TemplateRejection::NotATemplate => "NotATemplate",
            TemplateRejection::NoAttestation => "NoAttestation",
            TemplateRejection::MalformedAttestation { .. } => "MalformedAttestation",
            TemplateRejection::UntrustedKey { .. } => "UntrustedKey",
            TemplateRejection::BadSignature { .. } => "BadSignature",
            TemplateRejection::DigestMismatch { .. } => "DigestMismatch",
            TemplateRejection::ConfigChanged { .. } => "TemplateConfigChanged",
        }
    }
}

/// The checks before a clone that need only what one config GET of the template returns:
/// it is a template, its description carries exactly one well-formed attestation, signed by a
/// trusted key with a valid signature, over the digest the GoldImage manifest expects.
pub fn verify_template(
    description: &str,
    is_template: bool,
    expected_digest: &Sha256Digest,
    trusted_keys: &[Ed25519PublicKey],
) -> Result<VerifiedStatement, TemplateRejection> {
    if !is_template {
        return Err(TemplateRejection::NotATemplate);
    }
    let signed = parse_description(description).map_err(|e| match e {
        DescriptionError::Missing => TemplateRejection::NoAttestation,
        other => TemplateRejection::MalformedAttestation {
            reason: other.to_string(),
        },
    })?;
    let verified = verify(&signed, trusted_keys).map_err(|e| match e {
        AttestationError::UntrustedKey { key } => TemplateRejection::UntrustedKey { key },
        AttestationError::BadSignature { key } => TemplateRejection::BadSignature { key },
        other => TemplateRejection::MalformedAttestation {
            reason: other.to_string(),
        },
    })?;
    let attested = verified.statement.digest;
    if attested != *expected_digest {
        return Err(TemplateRejection::DigestMismatch {
            expected: *expected_digest,
            attested,
        });
    }
    Ok(verified)
}

/// The last check before a clone: the template's PVE config `digest` (from the same config GET)
/// equals the one the operator remembered when it verified the template.
pub fn check_config_unchanged(
    verified_config_digest: &str,
    current_config_digest: &str,
) -> Result<(), TemplateRejection> {
    if verified_config_digest == current_config_digest {
        Ok(())
    } else {
        Err(TemplateRejection::ConfigChanged {
            verified: verified_config_digest.to_string(),
            current: current_config_digest.to_string(),
        })
    }
}
