//! `reborn run --config reborn.yaml`: the daemon. Composition only: the store, the PVE client,
//! the controller, the operator API and the audit tailers, wired together and stopped together
//! on SIGINT/SIGTERM.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use operator::api::audit_ingest::{AuditIngest, load_addresses, load_policies};
use operator::api::{ApiOptions, ApiState};
use operator::config::{DaemonConfig, ResolvedConfig};
use operator::metrics::Metrics;
use operator::{Controller, ControllerConfig};
use pve_client::{PveClient, TokenId};
use store::{SqliteStore, Store};
use tokio::sync::watch;

use crate::cli::RunArgs;
use crate::exit_code::ExitStatus;

/// Reads and checks the daemon config; every secret is resolved here, so a bad config fails
/// before anything starts.
pub fn load_config(path: &Path) -> anyhow::Result<(ResolvedConfig, ControllerConfig)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let config: DaemonConfig = serde_yaml::from_str(&text)
        .with_context(|| format!("parsing the config file {}", path.display()))?;
    let mut controller: ControllerConfig = if config.controller.is_null() {
        ControllerConfig::default()
    } else {
        serde_json::from_value(config.controller.clone())
            .with_context(|| format!("the `controller` section of {}", path.display()))?
    };
    // One source of truth for the resync period: the top-level `resyncPeriod`.
    controller.resync_ms = config.resync_period.to_std().as_millis() as u64;
    let resolved = config
        .resolve()
        .with_context(|| format!("checking the config file {}", path.display()))?;
    Ok((resolved, controller))
}

/// The parts of a running daemon, built from a resolved config.
pub struct Daemon {
    /// The controller (the only code that mutates PVE).
    pub controller: Controller,
    /// The API's shared state.
    pub api: ApiState,
    /// The store.
    pub store: Arc<dyn Store>,
}

/// Opens the store, builds the PVE client and the controller, and the API state.
pub fn build(
    resolved: &ResolvedConfig,
    controller_config: ControllerConfig,
) -> anyhow::Result<Daemon> {
    let store_path = &resolved.config.store.path;
    if let Some(dir) = store_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store directory {}", dir.display()))?;
    }
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(store_path)
            .with_context(|| format!("opening the store {}", store_path.display()))?,
    );
    let client = PveClient::builder(resolved.pve_endpoint.clone())
        .token(
            resolved
                .pve_token_id
                .parse::<TokenId>()
                .context("pve.tokenId")?,
            resolved.pve_token_secret.clone(),
        )
        .tls(resolved.pve_tls.clone())
        .build()
        .context("building the PVE client")?;
    let (controller, handle) = Controller::new(controller_config, store.clone(), client)
        .context("building the controller")?;
    let metrics = Metrics::new();
    let controller = controller.with_metrics(metrics.clone());
    let options = ApiOptions {
        max_body_bytes: resolved.config.api.max_body_bytes,
        metrics_auth: resolved.config.api.metrics_auth,
    };
    let api = ApiState::new(store.clone(), handle, resolved.api_tokens.clone(), metrics)
        .with_options(options)
        .with_webhook(resolved.webhook.clone())
        .with_audit_ingest(AuditIngest::new(resolved.audit_ingest.clone()));
    Ok(Daemon {
        controller,
        api,
        store,
    })
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitStatus> {
    let (resolved, controller_config) = load_config(&args.config)?;
    let listen = resolved.config.api.listen;
    let daemon = build(&resolved, controller_config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the operator API to {listen}"))?;
    println!("reborn operator API on http://{}", listener.local_addr()?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let api = tokio::spawn(operator::api::serve(
        listener,
        daemon.api.clone(),
        stopped(stop_rx.clone()),
    ));
    let controller = daemon.controller.clone();
    let loop_stop = stop_rx.clone();
    let loop_task = tokio::spawn(async move { controller.run(stopped(loop_stop)).await });
    let paths: Vec<_> = resolved
        .config
        .audit
        .sources
        .iter()
        .map(|s| s.path.clone())
        .collect();
    let tailers = spawn_audit_tailers(&paths, daemon.store.clone(), stop_rx.clone());
    let pruning = spawn_event_pruning(
        daemon.store.clone(),
        resolved.config.store.event_retention.retention(),
        PRUNE_EVERY,
        stop_rx,
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    loop_task.await.context("the controller task")?;
    for tailer in tailers {
        let _ = tailer.await;
    }
    let _ = pruning.await;
    api.await
        .context("the API task")?
        .context("the operator API")?;
    Ok(ExitStatus::Success)
}

/// One tailer per configured Cerbos audit log, sharing one ingestor (so sliding windows span
/// sources) whose TaintPolicies and node addresses follow the store.
pub fn spawn_audit_tailers(
    sources: &[std::path::PathBuf],
    store: Arc<dyn Store>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if sources.is_empty() {
        return Vec::new();
    }
    let ingestor = Arc::new(Mutex::new(audit::Ingestor::new(
        Vec::new(),
        audit::AddressBook::default(),
    )));
    refresh_ingestor(&*store, &ingestor);
    let mut tasks = vec![tokio::spawn(follow_store(
        store.clone(),
        ingestor.clone(),
        stop.clone(),
    ))];
    for path in sources {
        let config = audit::FileSourceConfig::new(format!("file:{}", path.display()), path.clone());
        let (store, ingestor, stop) = (store.clone(), ingestor.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let path = config.path.clone();
            if let Err(err) = audit::run_file_source(config, store, ingestor, stop, None).await {
                tracing::error!(path = %path.display(), error = %err, "audit tailer stopped");
            }
        }));
    }
    tasks
}

/// Reloads the TaintPolicies and node addresses into the ingestor.
fn refresh_ingestor(store: &dyn Store, ingestor: &Mutex<audit::Ingestor>) {
    match (load_policies(store), load_addresses(store)) {
        (Ok(policies), Ok(addresses)) => {
            let mut ing = ingestor.lock().unwrap_or_else(|e| e.into_inner());
            ing.set_policies(policies);
            ing.addresses().replace(addresses);
        }
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "could not reload taint policies for audit tailing");
        }
    }
}

/// Refreshes the ingestor after every committed store change until stopped.
async fn follow_store(
    store: Arc<dyn Store>,
    ingestor: Arc<Mutex<audit::Ingestor>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = store.subscribe();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                refresh_ingestor(&*store, &ingestor);
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often the daemon prunes events (and once at start).
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes events by `retention` now and then every `every` until stopped. A failure is logged
/// and tried again next time: pruning never stops the daemon.
pub fn spawn_event_pruning(
    store: Arc<dyn Store>,
    retention: store::EventRetention,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let s = store.clone();
            let pruned =
                tokio::task::spawn_blocking(move || s.prune_events(&retention, chrono::Utc::now()))
                    .await;
            match pruned {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!(removed, "old events pruned"),
                Ok(Err(e)) => tracing::warn!(error = %e, "pruning events failed"),
                Err(e) => tracing::warn!(error = %e, "the event pruning task failed"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Resolves when the stop flag is set.
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old_event(node: &str, kind: &str, days_ago: i64) -> store::NewEvent {
        store::NewEvent {
            at: chrono::Utc::now() - chrono::Duration::days(days_ago),
            node: Some(node.to_owned()),
            kind: kind.to_owned(),
            message: format!("{kind} {days_ago} days ago"),
            data: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn the_daemon_prunes_old_events_at_start_and_keeps_each_nodes_last_of_a_kind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("reborn.db")).expect("store"));
        for e in [
            old_event("worker-1", "Ready", 200),
            old_event("worker-1", "Stopped", 150),
            old_event("worker-1", "Stopped", 120),
            old_event("worker-1", "Stopped", 1),
        ] {
            store.append_event(e).expect("append");
        }
        let retention = operator::config::EventRetentionConfig::default().retention();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = spawn_event_pruning(
            store.clone(),
            retention,
            std::time::Duration::from_secs(3600),
            stop_rx,
        );
        let mut left = Vec::new();
        for _ in 0..200 {
            left = store
                .events(&store::EventQuery::default())
                .expect("events")
                .into_iter()
                .map(|e| e.message)
                .collect();
            if left.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(left, ["Ready 200 days ago", "Stopped 1 days ago"]);
        stop_tx.send(true).expect("stop");
        task.await.expect("the task ends when stopped");
    }
}
