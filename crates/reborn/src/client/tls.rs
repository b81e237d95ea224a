//! TLS for `https://` servers: rustls with the ring provider and the system's trust store
//! (plain `http://` to 127.0.0.1 is the default and uses no TLS at all).

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_platform_verifier::BuilderVerifierExt;

/// The rustls configuration the CLI's HTTP client uses.
pub(super) fn client_config() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol set-up failed: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("system trust store unavailable: {e}"))
        .map(|b| b.with_no_client_auth())
}
