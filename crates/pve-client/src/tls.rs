//! TLS set-up: rustls with the ring provider; system roots, a CA, a SHA-256 pin, or (explicitly)
//! no verification.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// A SHA-256 certificate fingerprint (`AB:CD:...` or plain hex, any case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = Sha256::digest(der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_slice());
        Self(out)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a fingerprint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SHA-256 fingerprint: expected 64 hex digits, optionally ':'-separated")]
pub struct InvalidFingerprint;

impl FromStr for CertFingerprint {
    type Err = InvalidFingerprint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_only: String = s.trim().chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&hex_only, &mut out).map_err(|_| InvalidFingerprint)?;
        Ok(Self(out))
    }
}

impl fmt::Display for CertFingerprint {
    /// PVE's spelling: uppercase, `:`-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

/// How the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The operating system's trust store (rustls-platform-verifier).
    System,
    /// Trust only the CA certificates in this PEM file (e.g. PVE's `pve-root-ca.pem`).
    CaFile(PathBuf),
    /// Trust only the CA certificates in this PEM text.
    CaPem(String),
    /// Accept exactly the server certificate with this SHA-256 fingerprint (hostname and
    /// expiry are not checked; handshake signatures are).
    PinSha256(CertFingerprint),
    /// Accept any certificate. Only for labs; logs a warning every time a client is built.
    Insecure,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// The I/O or PEM error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The CA PEM contained no usable certificate.
    #[error("no usable CA certificate in {origin}")]
    NoCaCertificate {
        /// File path or `PEM text`.
        origin: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected")]
    Rustls(#[source] rustls::Error),
}

/// Builds the rustls client configuration for `mode` with the ring provider, HTTP/1.1 only
/// (PVE speaks HTTP/1.1; its reason phrases carry error text).
pub(crate) fn client_config(mode: &TlsMode) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let mut config = match mode {
        TlsMode::System => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(TlsError::Rustls)?
                .with_no_client_auth()
        }
        TlsMode::CaFile(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect())
                .map_err(|source| TlsError::ReadCa {
                    path: path.clone(),
                    source,
                })?;
            builder
                .with_root_certificates(roots(certs, &path.display().to_string())?)
                .with_no_client_auth()
        }
        TlsMode::CaPem(pem) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|_| TlsError::NoCaCertificate {
                        origin: "PEM text".to_owned(),
                    })?;
            builder
                .with_root_certificates(roots(certs, "PEM text")?)
                .with_no_client_auth()
        }
        TlsMode::PinSha256(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: *pin,
                provider,
            }))
            .with_no_client_auth(),
        TlsMode::Insecure => {
            tracing::warn!(
                "TLS certificate verification is DISABLED for the PVE API (TlsMode::Insecure); \
                 use a CA file or a SHA-256 pin outside of labs"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertVerifier { provider }))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn roots(certs: Vec<CertificateDer<'static>>, origin: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoCaCertificate {
            origin: origin.to_owned(),
        });
    }
    Ok(store)
}

/// Accepts exactly one end-entity certificate (by SHA-256 of its DER) and still verifies the
/// handshake signatures with it, so the peer must hold the matching private key.
#[derive(Debug)]
struct PinVerifier {
    pin: CertFingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = CertFingerprint::of_der(end_entity.as_ref());
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::warn!(expected = %self.pin, seen = %seen, "PVE server certificate does not match the pinned fingerprint");
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any certificate (signatures are still checked against it). `TlsMode::Insecure` only.
#[derive(Debug)]
struct AnyCertVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_accepts_colons_and_any_case() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        let a: CertFingerprint = plain.parse().expect("plain hex");
        let b: CertFingerprint = colons.parse().expect("colon hex");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), colons);
        assert!("abcd".parse::<CertFingerprint>().is_err());
        assert!("zz".repeat(32).parse::<CertFingerprint>().is_err());
    }

    #[test]
    fn fingerprint_of_der_is_sha256() {
        // SHA-256("abc")
        let fp = CertFingerprint::of_der(b"abc");
        assert_eq!(
            hex::encode(fp.as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_mode_but_bad_ca_builds_a_config() {
        let pin = TlsMode::PinSha256(CertFingerprint::of_der(b"x"));
        assert!(client_config(&pin).is_ok());
        assert!(client_config(&TlsMode::Insecure).is_ok());
        assert!(matches!(
            client_config(&TlsMode::CaPem("not a pem".into())),
            Err(TlsError::NoCaCertificate { .. })
        ));
        assert!(matches!(
            client_config(&TlsMode::CaFile("/nonexistent/ca.pem".into())),
            Err(TlsError::ReadCa { .. })
        ));
    }
}
