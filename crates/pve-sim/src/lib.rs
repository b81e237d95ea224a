//! `pve-sim`: a Proxmox VE 8.x compatible HTTP(S) server for tests, benchmarks and the demo,
//! written from PVE's documented behaviour (`shared/reference/pve-api.md`).
//!
//! Start with [`start`] and a [`SimConfig`] ([`SimConfig::fast`] for tests); drive faults and
//! read request counters through [`SimServer::admin`] (or HTTP under `/_sim/`).
//!
//! Besides what reborn uses, it serves what Ansible's `community.proxmox` modules
//! (`proxmox_kvm`, `proxmox_vm_info`, `proxmox_node_info`, `proxmox_tasks_info`) call for a VM
//! lifecycle: the `[PENDING]` section (`GET …/pending`, `current=1`, cold keys applied at the
//! next start), `status/reboot|reset|suspend|resume`, the read-only guest agent commands with
//! in-band QGA errors ([`Fault::AgentError`]), `GET /nodes/{node}/lxc`, `GET /pools/{poolid}`
//! and storage content. `crates/reborn/tests/proxmoxer_conformance.rs` replays those modules'
//! call sequences through proxmoxer; the crate's README lists what is covered and what not.
//!
//! Must not depend on: `pve-client` (a bug must not hide by being the same on both sides),
//! or any other reborn crate.

mod admin;
mod api_access;
mod api_agent;
mod api_clone;
mod api_cluster;
mod api_power;
mod api_tasks;
mod api_vm;
mod auth;
mod config;
mod dispatch;
mod error;
mod fault;
mod http;
mod model;
mod params;
mod routes;
mod server;
mod tasks;
mod vmconf;

pub use admin::{SimAdmin, TaskSnapshot, VmSnapshot};
pub use config::{
    DEFAULT_TOKEN_SECRET, DhcpPool, Durations, NodeConfig, Role, SimConfig, StorageConfig,
    StorageKind, TemplateConfig, TokenConfig, UserConfig,
};
pub use error::SimError;
pub use fault::Fault;
pub use server::{SimServer, start};
