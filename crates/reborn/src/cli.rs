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
    /// Run the operator daemon: the reconcile loop, the operator API and audit ingestion.
    Run(RunArgs),
    /// Run everything in one process on the embedded defaults: a simulated PVE cluster and a
    /// walk through clone, start, readiness, stop and destroy of one VM, printing each PVE task.
    Demo(DemoArgs),
    /// Run the PVE 8.x compatible simulator (HTTP or HTTPS) until interrupted.
    Sim(SimArgs),
    /// Check manifests offline: exit 0 with a summary if valid, exit 2 with every diagnostic if not.
    Validate(ValidateArgs),
    /// Print the JSON Schema of reborn's manifests.
    Schema,
    /// Validate manifests locally, then send them to the daemon (all or nothing).
    Apply(ApplyArgs),
    /// List resources: nodes, goldimages, budgets, taintpolicies or taints.
    Get(GetArgs),
    /// Show everything about one node: spec, instance, conditions, taints with evidence, events.
    Describe(DescribeArgs),
    /// Delete a declared resource (a deleted node's VMs are destroyed by the controller).
    Delete(DeleteArgs),
    /// Taint a node's current instance: the controller replaces it.
    Taint(TaintArgs),
    /// Clear every active taint of a node (they stay in the history).
    Untaint(UntaintArgs),
    /// Show what the next reconcile pass would do, and why.
    Plan(PlanArgs),
    /// Show the event log, optionally following new events.
    Events(EventsArgs),
    /// Show the circuit breaker, or release it.
    Breaker(BreakerArgs),
    /// Gold images: make a signing key, attest an image, verify an attestation, register it on a template.
    Gold(crate::cmd::gold::GoldArgs),
}

/// How client commands reach the daemon and print results.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The reborn API.
    #[arg(long, env = "REBORN_SERVER", default_value = crate::cmd::client::DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token for the API (role viewer for reads, operator for writes).
    #[arg(long, env = "REBORN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Output formats of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// The API's JSON.
    Json,
    /// The API's data as YAML.
    Yaml,
}

/// Flags of `reborn apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Manifest files or directories (a directory's own *.yaml, *.yml; subdirectories are not read).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Wait until every applied node is Ready, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits, e.g. `10m`.
    #[arg(long, default_value = "10m")]
    pub timeout: model::Duration,
    /// Validate on the server and show what would change, without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// nodes, goldimages, budgets, taintpolicies or taints.
    pub kind: String,
    /// One resource by name (not for taints).
    pub name: Option<String>,
    /// For taints: include cleared and expired ones.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// What to describe: `node`.
    pub kind: String,
    /// The node's name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// node, goldimage, budget or taintpolicy (singular or plural).
    pub kind: String,
    /// The name.
    pub name: String,
    /// Delete only if the stored resourceVersion is this (exit 5 otherwise).
    #[arg(long)]
    pub resource_version: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn taint`.
#[derive(Debug, clap::Args)]
pub struct TaintArgs {
    /// The node.
    pub node: String,
    /// Why (recorded with your token's name).
    #[arg(long, required = true)]
    pub reason: String,
    /// info, warning (replace within budgets) or critical (also isolate at once); default
    /// warning, or critical with `--quarantine`.
    #[arg(long)]
    pub severity: Option<String>,
    /// How long the taint lives, e.g. `24h`; default until cleared.
    #[arg(long)]
    pub ttl: Option<model::Duration>,
    /// Quarantine, e.g. `24h`: isolate at once and replace, then keep the old VM stopped and
    /// isolated this long (for inspection) before destroying it.
    #[arg(long, value_name = "RETENTION")]
    pub quarantine: Option<model::Duration>,
    /// The taint key.
    #[arg(long, default_value = "manual")]
    pub key: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn untaint`.
#[derive(Debug, clap::Args)]
pub struct UntaintArgs {
    /// The node.
    pub node: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only events about this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Only events of this kind (e.g. `TaintAdded`).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events since this RFC 3339 time or this long ago (`10m`).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many (the most recent).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Keep printing new events as they happen (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `reborn breaker`.
#[derive(Debug, clap::Args)]
pub struct BreakerArgs {
    /// `release` lets automatic destruction resume (within budgets); without it, show state.
    pub action: Option<BreakerAction>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `reborn breaker` can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BreakerAction {
    /// Release the breaker.
    Release,
}

/// Flags of `reborn run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The daemon's config file (see examples/reborn.yaml).
    #[arg(long, short = 'c', env = "REBORN_CONFIG")]
    pub config: PathBuf,
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
    /// Manifest files or directories (a directory's own *.yaml, *.yml; subdirectories are not read).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}
