//! Starting and stopping the simulator: TLS setup, listener, background samplers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::SimAdmin;
use crate::config::SimConfig;
use crate::error::SimError;
use crate::model::{Cluster, Shared};

/// A running simulator.
pub struct SimServer {
    addr: SocketAddr,
    tls: bool,
    cert_pem: Option<String>,
    fingerprint: Option<String>,
    token: (String, String),
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    pem: String,
    fingerprint: String,
}

fn make_tls() -> Result<Tls, SimError> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(SimError::Certificate)?;
    let der = ck.cert.der().clone();
    let fingerprint = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SimError::Tls)?
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .map_err(SimError::Tls)?;
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        pem: ck.cert.pem(),
        fingerprint,
    })
}

/// Start the simulator on `listen` (port 0 picks a free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> Result<SimServer, SimError> {
    let cluster = Cluster::from_config(&config).map_err(SimError::Config)?;
    let tls = if config.tls { Some(make_tls()?) } else { None };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen,
        source,
    })?;
    let mut key_rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ 0x7469_636b_6574);
    let ticket_key: [u8; 32] = key_rng.random();
    let token = config
        .tokens
        .first()
        .map(|t| (t.id.clone(), t.secret.clone()))
        .unwrap_or_default();
    let (hold_tx, _) = tokio::sync::watch::channel(false);
    let lag = Duration::from_millis(config.resources_lag_ms);
    let initial_faults = config.faults.clone();
    let shared = Arc::new(Shared {
        cluster: Mutex::new(cluster),
        fingerprint: tls.as_ref().map(|t| t.fingerprint.clone()),
        config,
        ticket_key,
        hold_tasks: hold_tx,
    });
    let admin = SimAdmin {
        shared: Arc::clone(&shared),
    };
    for f in initial_faults {
        admin.inject(f);
    }
    shared.lock().sample_rrd();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if !lag.is_zero() {
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lag).await;
                shared.lock().sample_rrd();
            }
        }));
    }
    let (acceptor, cert_pem, fingerprint) = match tls {
        Some(t) => (Some(t.acceptor), Some(t.pem), Some(t.fingerprint)),
        None => (None, None, None),
    };
    tasks.push(tokio::spawn(crate::http::serve(
        listener,
        Arc::clone(&shared),
        acceptor,
        stop_rx,
    )));
    tracing::info!(%addr, tls = cert_pem.is_some(), "PVE simulator listening");
    Ok(SimServer {
        addr,
        tls: cert_pem.is_some(),
        cert_pem,
        fingerprint,
        token,
        shared,
        stop,
        tasks,
    })
}

impl SimServer {
    /// `https://127.0.0.1:PORT` (or `http://...` without TLS). Unspecified listen addresses
    /// are reported as loopback.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let ip = match self.addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        format!("{scheme}://{ip}:{}", self.addr.port())
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint of the served certificate, `AB:CD:...` like PVE shows it.
    pub fn cert_fingerprint_sha256(&self) -> Option<String> {
        self.fingerprint.clone()
    }

    /// The served certificate in PEM.
    pub fn cert_pem(&self) -> Option<String> {
        self.cert_pem.clone()
    }

    /// The first configured token: `(id, secret)`, e.g. `("root@pam!reborn", "...")`.
    pub fn token(&self) -> (String, String) {
        self.token.clone()
    }

    /// In-process control handle.
    pub fn admin(&self) -> SimAdmin {
        SimAdmin {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stop accepting, close connections, stop background work.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        self.shared.hold_tasks.send_replace(false);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}
