//! `reborn demo`: everything in one process on the embedded defaults. A simulated two-node PVE
//! cluster (HTTPS, self-signed certificate pinned by fingerprint) and a walk through one VM's
//! life as the operator drives it: allocate a VMID from a range, clone the gold template, set
//! cloud-init, start, wait for the guest agent, stop, destroy. Every PVE task is printed.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pve_client::{
    CloneParams, ConfigUpdate, DestroyParams, Error as PveError, NodeName, PveClient, Secret,
    TlsMode, TokenId, Upid, VmId,
};
use pve_sim::SimConfig;

use crate::cli::DemoArgs;
use crate::exit_code::ExitStatus;

/// VMIDs the demo may use: never `/cluster/nextid` alone (it does not reserve).
const VMID_RANGE: std::ops::RangeInclusive<u32> = 4100..=4199;
const TEMPLATE: u32 = 9000;
const TASK_TIMEOUT: Duration = Duration::from_secs(120);
const AGENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the walk-through; exit 0 when the VM went through its whole life.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitStatus> {
    let mut config = if args.fast {
        SimConfig::fast()
    } else {
        SimConfig::default()
    };
    config.tls = true;
    let server = pve_sim::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the simulated PVE cluster")?;
    let fingerprint = server
        .cert_fingerprint_sha256()
        .context("the TLS simulator has a certificate")?;
    println!("simulated PVE cluster at {}", server.base_url());
    println!("  certificate SHA-256 {fingerprint} (pinned by the client)");

    let (token_id, secret) = server.token();
    let client = PveClient::builder(server.base_url())
        .token(token_id.parse::<TokenId>()?, Secret::new(secret))
        .tls(TlsMode::PinSha256(fingerprint.parse()?))
        .build()
        .context("building the PVE client")?;

    let outcome = walk_through(&client).await;
    server.shutdown().await;
    outcome?;
    println!("\ndemo finished: one VM cloned, started, ready, stopped and destroyed");
    Ok(ExitStatus::Success)
}

async fn walk_through(client: &PveClient) -> anyhow::Result<()> {
    let version = client.version().await?;
    println!("  PVE {} (release {})", version.version, version.release);
    let nodes = client.nodes().await?;
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    println!("  nodes: {}", names.join(", "));

    let template = VmId::new(TEMPLATE)?;
    let vms = client.cluster_vms().await?;
    let gold = vms
        .iter()
        .find(|vm| vm.vmid == template)
        .context("the gold template 9000 is listed in cluster/resources")?;
    let node: NodeName = gold.node.clone();
    println!(
        "  gold template {} ({}) on {}",
        gold.vmid,
        gold.name.as_deref().unwrap_or("name not yet reported"),
        node
    );

    let vmid = allocate_vmid(client).await?;
    println!(
        "\n1. VMID {vmid} allocated from the range {VMID_RANGE:?} (checked free with nextid?vmid=)"
    );

    let upid = client
        .clone_vm(
            &node,
            template,
            &CloneParams::new(vmid).name("demo-worker-1").full(false),
        )
        .await?;
    wait(client, "2. clone (linked) from the gold template", upid).await?;

    let update = ConfigUpdate::new()
        .cores(2)
        .memory_mib(2048)
        .ipconfig(0, "ip=10.0.10.21/24,gw=10.0.10.1")
        .ciuser("app")
        .tags(&["reborn", "demo"]);
    client.update_config(&node, vmid, &update).await?;
    let config = client.vm_config(&node, vmid).await?;
    println!(
        "3. configured: cores 2, memory 2048 MiB, ipconfig0, tags {} (config digest {})",
        config.get_str("tags").unwrap_or_default(),
        config.digest.as_deref().unwrap_or("-")
    );

    let upid = client.start(&node, vmid).await?;
    wait(client, "4. start", upid).await?;

    let started = Instant::now();
    loop {
        match client.agent_ping(&node, vmid).await {
            Ok(()) => break,
            Err(err) if started.elapsed() < AGENT_TIMEOUT => {
                tracing::debug!(%err, "guest agent not ready yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(err).context("the guest agent never answered"),
        }
    }
    let interfaces = client.agent_network_interfaces(&node, vmid).await?;
    let addresses: Vec<String> = interfaces
        .iter()
        .filter(|i| i.name != "lo")
        .flat_map(|i| {
            i.ip_addresses
                .iter()
                .map(|a| format!("{}/{}", a.ip_address, a.prefix.unwrap_or(32)))
        })
        .collect();
    println!(
        "5. ready: guest agent answered after {:.1} s, addresses {}",
        started.elapsed().as_secs_f64(),
        addresses.join(", ")
    );

    let upid = client.stop(&node, vmid).await?;
    wait(client, "6. stop", upid).await?;
    let upid = client
        .destroy(&node, vmid, &DestroyParams::thorough())
        .await?;
    wait(client, "7. destroy (purge)", upid).await?;

    match client.vm_config(&node, vmid).await {
        Err(PveError::ConfigNotFound { .. }) => {
            println!("8. VM {vmid} is gone (config read answers 'does not exist')")
        }
        Ok(_) => bail!("VM {vmid} still exists after destroy"),
        Err(err) => return Err(err).context("re-reading the destroyed VM"),
    }
    Ok(())
}

/// The first VMID of the range that PVE reports free.
async fn allocate_vmid(client: &PveClient) -> anyhow::Result<VmId> {
    for id in VMID_RANGE {
        let vmid = VmId::new(id)?;
        if client.vmid_is_free(vmid).await? {
            return Ok(vmid);
        }
    }
    bail!("no free VMID in {VMID_RANGE:?}")
}

/// Waits for a task and prints it: UPID, duration, exit status and log.
async fn wait(client: &PveClient, step: &str, upid: Option<Upid>) -> anyhow::Result<()> {
    let Some(upid) = upid else {
        println!("{step}: done (PVE answered synchronously)");
        return Ok(());
    };
    let started = Instant::now();
    let status = client.wait_task(&upid, TASK_TIMEOUT).await?;
    println!(
        "{step}: {} in {:.1} s\n   task {upid}",
        status.exitstatus.as_deref().unwrap_or("?"),
        started.elapsed().as_secs_f64()
    );
    let log = client.task_log(&upid, 0, 0).await?;
    for line in &log.lines {
        println!("   | {}", line.t);
    }
    Ok(())
}
