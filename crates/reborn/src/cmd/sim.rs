//! `reborn sim`: the PVE simulator as a standalone server.

use anyhow::Context;
use pve_sim::{Durations, SimConfig};

use crate::cli::SimArgs;
use crate::exit_code::ExitStatus;

/// Builds the simulator's configuration from the flags (and the optional YAML file).
pub fn config_from_args(args: &SimArgs) -> anyhow::Result<SimConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading simulator config {}", path.display()))?;
            serde_yaml::from_str::<SimConfig>(&text)
                .with_context(|| format!("parsing simulator config {}", path.display()))?
        }
        None => SimConfig::default(),
    };
    if args.fast {
        config.durations = Durations::zero();
        config.resources_lag_ms = 0;
        config.agent_delay_ms = 0;
        config.auth_failure_delay_ms = 0;
    }
    if args.tls {
        config.tls = true;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    Ok(config)
}

/// Serves until Ctrl-C. The first stdout line is `listening: <base url>`, so scripts and tests
/// can find a port chosen with `--listen 127.0.0.1:0`.
pub async fn run(args: SimArgs) -> anyhow::Result<ExitStatus> {
    let config = config_from_args(&args)?;
    let server = pve_sim::start(config, args.listen)
        .await
        .with_context(|| format!("starting the simulator on {}", args.listen))?;
    let (token_id, secret) = server.token();
    println!("listening: {}", server.base_url());
    // The simulator's own credential, printed so a person or test can use it; a real PVE token
    // secret is never printed by reborn.
    println!("token: PVEAPIToken={token_id}={secret}");
    if let Some(fingerprint) = server.cert_fingerprint_sha256() {
        println!("fingerprint: {fingerprint}");
    }
    println!("admin: {}/_sim/", server.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(ExitStatus::Success)
}
