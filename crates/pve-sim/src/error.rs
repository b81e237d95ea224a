//! Errors returned by the simulator's library API.

/// Failure to start the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is inconsistent (unknown node of a template, duplicate vmid, ...).
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Requested address.
        addr: std::net::SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot generate the self-signed certificate")]
    Certificate(#[source] rcgen::Error),
    /// Building the TLS server configuration failed.
    #[error("cannot configure TLS")]
    Tls(#[source] rustls::Error),
}
