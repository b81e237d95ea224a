//! `pve-client`: an async client for the Proxmox VE REST API (reqwest + rustls): API-token and
//! ticket auth, TLS with CA files or certificate pinning, typed calls, task (UPID) waiting and
//! typed errors.
//!
//! Must not depend on: manifests (`model`), the store, or `pve-sim`. It knows PVE, nothing else.
//!
//! Start with [`PveClient::builder`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use pve_client::{CloneParams, PveClient, Secret, TlsMode, VmId, NodeName};
//!
//! let client = PveClient::builder("https://pve1.example:8006")
//!     .token("root@pam!reborn".parse()?, Secret::new("xxxxxxxx-xxxx"))
//!     .tls(TlsMode::PinSha256("AB:CD:...".parse()?))
//!     .build()?;
//! let node: NodeName = "pve1".parse()?;
//! let newid = VmId::new(4103)?;
//! let task = client
//!     .clone_vm(&node, VmId::new(9000)?, &CloneParams::new(newid).name("worker-1"))
//!     .await?;
//! client.wait_task_opt(task.as_ref(), Duration::from_secs(300)).await?;
//! # Ok(()) }
//! ```
//!
//! Mutating calls return `Option<Upid>`: PVE documents a UPID for them but may answer `null`
//! when the work finished synchronously (and vice versa), so both are accepted.

mod calls;
mod client;
pub mod decode;
mod error;
mod fast_resources;
mod form;
mod ids;
mod lenient;
mod task;
mod tls;
mod types;
mod upid;

pub use client::{BuildError, PveClient, PveClientBuilder};
pub use error::{Endpoint, Error};
pub use form::{CloneParams, ConfigUpdate, DestroyParams, pve_urlencode};
pub use ids::{InvalidId, NodeName, Secret, TokenId, VmId};
pub use tls::{CertFingerprint, InvalidFingerprint, TlsError, TlsMode};
pub use types::{
    AgentInterface, AgentIpAddress, ClusterVm, GuestType, HaStatus, NodeInfo, QemuVm, TaskLog,
    TaskLogLine, TaskState, TaskStatus, Version, VmConfig, VmStatus,
};
pub use upid::Upid;
