//! `reborn demo`: everything in one process on the embedded defaults.
//!
//! A simulated two-node PVE 8.x cluster (HTTPS, certificate pinned by fingerprint) with the
//! jsonRAG gold templates; the operator (controller + API) on a temporary SQLite store; the
//! `examples/jsonrag` manifests applied through the API; a wait until every node is Ready; a
//! worker tainted as `reborn taint` would; the replacement as it happens (every event, with the
//! PVE tasks); and the measured recovery time. Exit 0 when the tainted worker runs on a fresh VM
//! and the old one is gone.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use model::attestation::{self, AttestationKey, Statement};
use operator::api::auth::{ApiToken, Role, TokenSet};
use operator::api::wire::{ApplyResponse, EventList, ResourceList, TaintRequest};
use operator::api::{ApiState, serve};
use operator::metrics::Metrics;
use operator::{Controller, ControllerConfig};
use pve_client::{PveClient, Secret, TlsMode, TokenId};
use pve_sim::{SimConfig, TemplateConfig};
use store::{SqliteStore, Store};
use tokio::sync::watch;

use super::client::Client;
use super::run::{spawn_audit_tailers, stopped};
use crate::cli::DemoArgs;
use crate::exit_code::ExitStatus;

/// The reference deployment, embedded so the demo runs from any directory.
const JSONRAG: [(&str, &str); 4] = [
    (
        "examples/jsonrag/gold-images.yaml",
        include_str!("../../../../examples/jsonrag/gold-images.yaml"),
    ),
    (
        "examples/jsonrag/ingress.yaml",
        include_str!("../../../../examples/jsonrag/ingress.yaml"),
    ),
    (
        "examples/jsonrag/workers.yaml",
        include_str!("../../../../examples/jsonrag/workers.yaml"),
    ),
    (
        "examples/jsonrag/taint-policy.yaml",
        include_str!("../../../../examples/jsonrag/taint-policy.yaml"),
    ),
];

/// The node the demo taints from the CLI.
const VICTIM: &str = "worker-1";
/// The node whose service identity misbehaves in the Cerbos audit log, and its declared
/// address (examples/jsonrag/workers.yaml): `peer.address` attributes decisions to nodes.
const CERBOS_VICTIM: &str = "worker-2";
const CERBOS_VICTIM_IP: &str = "10.0.10.22";
/// Give up (exit 1) if the demo has not converged by then.
const DEADLINE: Duration = Duration::from_secs(300);

/// Runs the demo; exit 0 when the tainted worker was replaced.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let set = demo_manifests()?;
    let manifests = set.to_yaml()?;

    // 1. A simulated PVE cluster with the jsonRAG gold templates on shared storage.
    let mut sim_config = if args.fast {
        SimConfig::fast()
    } else {
        SimConfig::default()
    };
    sim_config.tls = true;
    sim_config.templates = jsonrag_templates(&set)?;
    let sim = pve_sim::start(sim_config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the simulated PVE cluster")?;
    let fingerprint = sim.cert_fingerprint_sha256().context("TLS certificate")?;
    println!(
        "PVE (simulated, 8.4) at {}, certificate pinned by SHA-256",
        sim.base_url()
    );

    // 2. The operator: store, PVE client, controller and API, all in this process.
    let dir = std::env::temp_dir().join(format!("reborn-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the demo directory")?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("reborn.db"))?);
    let (token_id, secret) = sim.token();
    let pve = PveClient::builder(sim.base_url())
        .token(token_id.parse::<TokenId>()?, Secret::new(secret))
        .tls(TlsMode::PinSha256(fingerprint.parse()?))
        .build()?;
    let mut controller_config = ControllerConfig::fast("demo");
    controller_config.resync_ms = 1_000;
    if !args.fast {
        // The realistic simulator's listing lags like PVE's (pvestatd's 10 s cycle).
        controller_config.listing_lag_ms = ControllerConfig::default().listing_lag_ms;
    }
    let (controller, handle) = Controller::new(controller_config, store.clone(), pve)?;
    let metrics = Metrics::new();
    let controller = controller.with_metrics(metrics.clone());
    let api_secret = format!("demo-{:x}", rand_token());
    let tokens = TokenSet::new(vec![ApiToken::new(
        "demo",
        Role::Operator,
        Secret::new(api_secret.clone()),
    )]);
    let state = ApiState::new(store.clone(), handle, tokens, metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let api_task = tokio::spawn(serve(listener, state, stopped(stop_rx.clone())));
    let loop_controller = controller.clone();
    let loop_stop = stop_rx.clone();
    let loop_task = tokio::spawn(async move { loop_controller.run(stopped(loop_stop)).await });
    println!(
        "operator API at {api_url}, store {}",
        dir.join("reborn.db").display()
    );

    // A Cerbos PDP's file audit log, tailed like `audit.sources` of the daemon config.
    let audit_log = dir.join("cerbos-audit.log");
    std::fs::write(&audit_log, b"").context("creating the demo's audit log")?;
    let tailers = spawn_audit_tailers(
        std::slice::from_ref(&audit_log),
        store.clone(),
        stop_rx.clone(),
    );

    let client = Client::new(&api_url, Some(api_secret))?;
    let printer = tokio::spawn(print_events(client.clone()));

    let outcome = tokio::time::timeout(DEADLINE, scenario(&client, &manifests, &audit_log)).await;

    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    for tailer in tailers {
        let _ = tailer.await;
    }
    let _ = api_task.await;
    printer.abort();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    match outcome {
        Ok(Ok((recovery, cerbos_recovery))) => {
            println!(
                "\ndemo finished in {:.1} s: {VICTIM} (tainted from the CLI) recovered in {recovery}; \
                 {CERBOS_VICTIM} (tainted from Cerbos audit lines) recovered in {cerbos_recovery}",
                started.elapsed().as_secs_f64()
            );
            Ok(ExitStatus::Success)
        }
        Ok(Err(err)) => Err(err),
        Err(_) => bail!("the demo did not converge within {DEADLINE:?}"),
    }
}

/// Apply, wait Ready, taint from the CLI, wait for the replacement, then the same from Cerbos
/// audit lines. Returns both recovery times as text.
async fn scenario(
    client: &Client,
    manifests: &str,
    audit_log: &Path,
) -> anyhow::Result<(String, String)> {
    println!("\n== apply examples/jsonrag (ingress pair under a budget of 1, two workers)");
    let applied: ApplyResponse = client.post_yaml("/v1/apply", manifests.to_owned()).await?;
    for item in &applied.items {
        println!("   {} {}: {:?}", item.kind, item.name, item.action);
    }

    println!("\n== wait until every node is Ready");
    let before = wait_all_ready(client, None).await?;
    let old_vmid = before.get(VICTIM).copied().flatten();
    println!("   all nodes Ready: {}", summary(&before));

    println!("\n== taint {VICTIM} as `reborn taint {VICTIM} --reason ...` would");
    let request = TaintRequest {
        reason: "demo: service identity read another tenant's documents".to_owned(),
        severity: None,
        ttl: None,
        key: None,
        quarantine: None,
    };
    let _: serde_json::Value = client
        .post_json(&format!("/v1/nodes/{VICTIM}/taint"), &request)
        .await?;

    println!("\n== the replacement, as it happens");
    let recovery = wait_replaced(client, VICTIM, old_vmid).await?;

    println!(
        "\n== {CERBOS_VICTIM}'s service identity reads another tenant's documents: the PDP logs \
         3 denials by rule deny-cross-tenant from its address {CERBOS_VICTIM_IP}"
    );
    let before = wait_all_ready(client, None).await?;
    let old_vmid = before.get(CERBOS_VICTIM).copied().flatten();
    let mut log = std::fs::OpenOptions::new().append(true).open(audit_log)?;
    for n in 0..3 {
        let call = format!("01DEMO{:020}", n + 1);
        let at = chrono::Utc::now();
        // The PDP does not promise an order: decision first, then access.
        writeln!(log, "{}", cerbos_decision(&call, CERBOS_VICTIM_IP, at))?;
        writeln!(log, "{}", cerbos_access(&call, CERBOS_VICTIM_IP, at))?;
    }
    log.sync_all()?;
    let cerbos_recovery = wait_replaced(client, CERBOS_VICTIM, old_vmid).await?;
    Ok((recovery, cerbos_recovery))
}

/// Waits until `node` runs on a new VM, every node is Ready and the old VM is destroyed;
/// returns the recovery time as text.
async fn wait_replaced(
    client: &Client,
    node: &str,
    old_vmid: Option<u64>,
) -> anyhow::Result<String> {
    let after = wait_all_ready(client, Some((node, old_vmid))).await?;
    let old = old_vmid.context("the tainted node had an instance")?;
    let promoted = wait_event(client, node, "Promoted", |_| true).await?;
    wait_event(client, node, "Destroyed", |e| {
        e.data["vmid"].as_u64() == Some(old)
    })
    .await?;
    println!(
        "   all nodes Ready again, VM {old} destroyed: {}",
        summary(&after)
    );
    Ok(promoted.data["recoverySeconds"]
        .as_f64()
        .map(|s| format!("{s:.2} s (taint → new instance Ready)"))
        .unwrap_or_else(|| "an unrecorded time".to_owned()))
}

/// Polls the node list until every node is Ready (and, if asked, `changed` has a new vmid).
/// Returns node → current vmid.
async fn wait_all_ready(
    client: &Client,
    changed: Option<(&str, Option<u64>)>,
) -> anyhow::Result<BTreeMap<String, Option<u64>>> {
    loop {
        let list: ResourceList = client.get("/v1/nodes").await?;
        let mut vmids = BTreeMap::new();
        let mut all_ready = !list.items.is_empty();
        for node in &list.items {
            let ready = node.status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            all_ready &= ready;
            vmids.insert(
                node.name.clone(),
                node.instance.as_ref().map(|i| u64::from(i.vmid)),
            );
        }
        let replaced = match changed {
            Some((name, old)) => vmids
                .get(name)
                .copied()
                .flatten()
                .is_some_and(|v| Some(v) != old),
            None => true,
        };
        if all_ready && replaced {
            return Ok(vmids);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for an event of `kind` about `node` that satisfies `accept`.
async fn wait_event(
    client: &Client,
    node: &str,
    kind: &str,
    accept: impl Fn(&store::Event) -> bool,
) -> anyhow::Result<store::Event> {
    loop {
        let list: EventList = client
            .get_query("/v1/events", &[("node", node), ("kind", kind)])
            .await?;
        if let Some(event) = list.items.into_iter().find(|e| accept(e)) {
            return Ok(event);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn summary(vmids: &BTreeMap<String, Option<u64>>) -> String {
    vmids
        .iter()
        .map(|(n, v)| format!("{n}=VM {}", v.map_or("-".to_owned(), |v| v.to_string())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints every event as the operator records it.
async fn print_events(client: Client) {
    let result = client
        .stream_lines("/v1/events", &[("follow", "1")], |line| {
            if let Ok(event) = serde_json::from_str::<store::Event>(line) {
                println!(
                    "   {} {:<10} {:<22} {}",
                    event.at.format("%H:%M:%S%.3f"),
                    event.node.as_deref().unwrap_or("-"),
                    event.kind,
                    event.message
                );
            }
            true
        })
        .await;
    if let Err(err) = result {
        tracing::debug!(%err, "event stream ended");
    }
}

/// The access half of a CheckResources call, in the shape Cerbos 0.55's file backend writes.
fn cerbos_access(call: &str, ip: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "log.logger": "cerbos.audit",
        "log.kind": "access",
        "callId": call,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "peer": {"address": format!("{ip}:41000"), "userAgent": "jsonrag-worker/1.0"},
        "method": "/cerbos.svc.v1.CerbosService/CheckResources"
    })
    .to_string()
}

/// The decision half: the worker identity `svc-worker` (tenant acme) denied `read` on a globex
/// document by the explicit rule `deny-cross-tenant` of examples/jsonrag/cerbos.
fn cerbos_decision(call: &str, ip: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let rule = "resource.tenant_document.vdefault#deny-cross-tenant";
    serde_json::json!({
        "log.logger": "cerbos.audit",
        "log.kind": "decision",
        "callId": call,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "peer": {"address": format!("{ip}:41000"), "userAgent": "jsonrag-worker/1.0"},
        "checkResources": {
            "inputs": [{
                "requestId": "r1",
                "principal": {"id": "svc-worker", "roles": ["workload"], "attr": {"tenant": "acme"}},
                "resource": {"kind": "tenant_document", "id": "doc-9", "attr": {"tenant": "globex"}},
                "actions": ["read"]
            }],
            "outputs": [{
                "requestId": "r1",
                "resourceId": "doc-9",
                "actions": {"read": {"effect": "EFFECT_DENY", "policy": "resource.tenant_document.vdefault"}},
                "outputs": [{"src": rule, "action": "read", "val": {"taint": "cross_tenant_access"}}]
            }]
        }
    })
    .to_string()
}

/// The embedded jsonRAG manifests, adapted to the simulator: simulated VMs run no services, so
/// TCP/HTTP probes are dropped and readiness is the guest agent alone (said on screen).
fn demo_manifests() -> anyhow::Result<model::ManifestSet> {
    let mut text = String::new();
    for (_, content) in JSONRAG {
        text.push_str(content);
        text.push_str("\n---\n");
    }
    let mut set = model::load_str("examples/jsonrag", &text)
        .map_err(|d| anyhow::anyhow!("the embedded examples/jsonrag is invalid:\n{d}"))?;
    for node in &mut set.nodes {
        node.spec.readiness.tcp = None;
        node.spec.readiness.http = None;
    }
    println!(
        "demo: examples/jsonrag with TCP/HTTP readiness probes dropped (simulated VMs serve nothing)"
    );
    Ok(set)
}

/// The demo's attestation key. Its seed is in this source file, so it proves nothing outside
/// the demo: `examples/jsonrag/gold-images.yaml` trusts its public key only so that the demo
/// runs as shipped. Replace it with your own key (`reborn gold keygen`) before real use.
pub const DEMO_KEY_SEED: [u8; 32] = *b"reborn-demo-key:not-a-secret!!!!";

/// The gold templates named by examples/jsonrag/gold-images.yaml, on shared storage so clones
/// can land on either PVE node, each attested the way `reborn gold attest` + `register` do it:
/// a statement naming the manifest's digest, signed with the demo key, in the description, and
/// the image tag.
fn jsonrag_templates(set: &model::ManifestSet) -> anyhow::Result<Vec<TemplateConfig>> {
    let key = AttestationKey::from_seed(&DEMO_KEY_SEED);
    let mut templates = Vec::new();
    for gold in &set.gold_images {
        let vmid = gold
            .spec
            .template
            .vmid
            .context("the demo's gold images name their template by vmid")?;
        let statement = Statement {
            name: gold.metadata.name.clone(),
            version: "demo".to_owned(),
            digest: gold.spec.digest,
            created: chrono::Utc::now(),
            builder: "reborn demo".to_owned(),
        };
        let tag = statement.tag()?.to_string();
        let signed = attestation::sign(statement, &key)?;
        let description = attestation::description_with_attestation(
            &format!("{} gold image", gold.metadata.name),
            &signed,
        );
        templates.push(TemplateConfig {
            vmid: vmid.get(),
            name: gold.metadata.name.to_string(),
            storage: "shared".to_owned(),
            config: [
                ("agent".to_owned(), "1".to_owned()),
                ("description".to_owned(), description),
                ("tags".to_owned(), tag),
            ]
            .into_iter()
            .collect(),
            ..TemplateConfig::default()
        });
    }
    Ok(templates)
}

/// A random value for the demo's API token (not a secret worth protecting: the API lives as
/// long as the demo, on loopback).
fn rand_token() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (u128::from(h.finish()) << 64)
        | u128::from(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jsonrag_example_trusts_the_demo_key_and_names_templates_by_vmid() {
        let set = demo_manifests().expect("embedded manifests are valid");
        let public = AttestationKey::from_seed(&DEMO_KEY_SEED).public_key();
        for gold in &set.gold_images {
            assert!(
                gold.spec.trusted_keys.contains(&public),
                "{} must trust the demo key {public}",
                gold.metadata.name
            );
        }
        let templates = jsonrag_templates(&set).expect("templates");
        assert_eq!(templates.len(), set.gold_images.len());
        for t in &templates {
            let description = &t.config["description"];
            let gold = set
                .gold_images
                .iter()
                .find(|g| g.spec.template.vmid.map(|v| v.get()) == Some(t.vmid))
                .expect("a gold image per template");
            attestation::verify_template(
                description,
                true,
                &gold.spec.digest,
                &gold.spec.trusted_keys,
            )
            .expect("the demo's templates verify against the manifests");
        }
    }
}
