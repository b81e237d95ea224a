//! Command-line definitions (clap derive). Parsing does no I/O.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// reborn: a self-healing operator for Proxmox VE.
#[derive(Debug, Parser)]
#[command(name = "reborn", version, about)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `debug` or `reborn=debug`. Default: RUST_LOG, else info.
    #[arg(long, global = true, env = "REBORN_LOG")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process on the embedded defaults: a simulated PVE cluster and a
    /// walk through clone, start, readiness, stop and destroy of one VM, printing each PVE task.
    Demo(DemoArgs),
    /// Run the PVE 8.x compatible simulator (HTTP or HTTPS) until interrupted.
    Sim(SimArgs),
    /// Check manifests offline: exit 0 with a summary if valid, exit 2 with every diagnostic if not.
    Validate(ValidateArgs),
    /// Print the JSON Schema of reborn's manifests.
    Schema,
}

/// Flags of `reborn demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Zero task durations and no lag: the walk-through finishes at once (for tests).
    #[arg(long)]
    pub fast: bool,
}

/// Flags of `reborn sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8006")]
    pub listen: SocketAddr,
    /// YAML file with the simulated cluster (nodes, storages, templates, tokens, durations,
    /// faults); fields left out keep their defaults. See crates/pve-sim/README.md.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Serve HTTPS with a fresh self-signed certificate (its SHA-256 fingerprint is printed).
    #[arg(long)]
    pub tls: bool,
    /// Zero task durations, no 401 delay and no cluster/resources lag.
    #[arg(long)]
    pub fast: bool,
    /// Seed for MACs, UUIDs, DHCP addresses and injected faults (deterministic runs).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Flags of `reborn validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Manifest files or directories (*.yaml, *.yml, searched recursively).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}
