//! Attestation values of a GoldImage: the image's SHA-256 digest and trusted ed25519 public keys.

use super::{ValueError, string_value};
use std::fmt;
use std::str::FromStr;

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2)?;
        if !pair
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 digest written `sha256:<64 lower-case hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// A digest from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Sha256Digest {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| ValueError::new("digest", s, "must start with `sha256:`"))?;
        decode_hex32(hex).map(Sha256Digest).ok_or_else(|| {
            ValueError::new(
                "digest",
                s,
                "expected 64 lower-case hex digits after `sha256:`",
            )
        })
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", encode_hex(&self.0))
    }
}

impl crate::decode::ScalarValue for Sha256Digest {
    const EXPECTED: &'static str = "`sha256:` followed by 64 lower-case hex digits";
}

string_value!(Sha256Digest, "Sha256Digest", {
    "type": "string",
    "description": "A SHA-256 digest: `sha256:<64 lower-case hex digits>`.",
    "pattern": "^sha256:[0-9a-f]{64}$"
});

/// An ed25519 public key trusted to sign gold images, written `ed25519:<64 lower-case hex digits>`
/// (the 32 raw key bytes). Public keys are not secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ed25519PublicKey([u8; 32]);

impl Ed25519PublicKey {
    /// A key from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Ed25519PublicKey(bytes)
    }

    /// The raw 32 key bytes (for `ed25519_dalek::VerifyingKey::from_bytes`).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Ed25519PublicKey {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("ed25519:")
            .ok_or_else(|| ValueError::new("public key", s, "must start with `ed25519:`"))?;
        decode_hex32(hex).map(Ed25519PublicKey).ok_or_else(|| {
            ValueError::new(
                "public key",
                s,
                "expected 64 lower-case hex digits after `ed25519:`",
            )
        })
    }
}

impl fmt::Display for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", encode_hex(&self.0))
    }
}

impl crate::decode::ScalarValue for Ed25519PublicKey {
    const EXPECTED: &'static str =
        "`ed25519:` followed by 64 lower-case hex digits (the 32 key bytes)";
}

string_value!(Ed25519PublicKey, "Ed25519PublicKey", {
    "type": "string",
    "description": "An ed25519 public key: `ed25519:<64 lower-case hex digits>`.",
    "pattern": "^ed25519:[0-9a-f]{64}$"
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_text() {
        let text = format!("sha256:{}", "ab".repeat(32));
        let d: Sha256Digest = text.parse().expect("valid");
        assert_eq!(d.to_string(), text);
        assert_eq!(d.as_bytes()[0], 0xab);
    }

    #[test]
    fn malformed_digests_and_keys_are_rejected() {
        for bad in [
            "ab".repeat(32),
            format!("sha256:{}", "AB".repeat(32)),
            "sha256:abc".to_string(),
            format!("sha512:{}", "ab".repeat(32)),
        ] {
            assert!(bad.parse::<Sha256Digest>().is_err(), "{bad}");
        }
        assert!(
            format!("ed25519:{}", "0f".repeat(32))
                .parse::<Ed25519PublicKey>()
                .is_ok()
        );
        assert!("ssh-ed25519 AAAA".parse::<Ed25519PublicKey>().is_err());
    }
}
