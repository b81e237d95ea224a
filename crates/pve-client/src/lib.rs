//! `pve-client`: an async client for the Proxmox VE REST API (reqwest + rustls): API-token and
//! ticket auth, TLS with CA files or certificate pinning, typed calls, task (UPID) waiting and
//! typed errors.
//!
//! Must not depend on: manifests (`model`), the store, or `pve-sim`. It knows PVE, nothing else.
