//! The controller: level-triggered passes (observe → plan → execute), per-node exclusivity,
//! bounded concurrency, per-node backoff, readiness checks, status and crash recovery.

mod backoff;
mod config;
mod give_up;
mod gold;
mod handle_impl;
mod inputs;
mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use planner::{Action, ActionKind, BlockedBy, BreakerState, OperatorId, Plan, Policy, PveNodeInfo};
use pve_client::PveClient;
use serde_json::json;
use store::{JournalEntry, NewEvent, Store};
use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub use config::{BackoffConfig, BreakerConfig, ControllerConfig, ReadinessConfig, TaskTimeouts};

use crate::executor::{ErrorClass, ExecError, Executed, Executor};
use crate::handle::ControllerHandle;
use crate::metrics::Metrics;
use crate::observe::{self, Observer};
use crate::readiness::{ReadinessTarget, wait_ready};
use backoff::Backoff;

/// How long PVE node info (free memory) is reused before placement needs a fresh read.
const NODE_INFO_TTL: Duration = Duration::from_secs(10);

/// Why the controller could not be built or a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The configured operator id is not usable as a PVE tag.
    #[error("invalid controller config")]
    Config(#[source] planner::OperatorIdError),
    /// PVE could not be read; nothing was planned.
    #[error("reading PVE failed")]
    Pve(#[source] Box<pve_client::Error>),
    /// The store failed.
    #[error("store failed")]
    Store(#[source] store::StoreError),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Actions the plan contained.
    pub planned: usize,
    /// Node tasks started (actions, recoveries, readiness checks).
    pub started: usize,
    /// Holds the plan contained.
    pub holds: usize,
    /// Config reads observe made of owned VMs.
    pub config_reads: usize,
    /// Config reads of gold templates (their attestation checks; 0 in a steady state).
    pub template_reads: usize,
}

/// The running controller's state shared with its tasks and the handle.
pub(crate) struct Inner {
    pub(crate) config: Arc<ControllerConfig>,
    pub(crate) operator: OperatorId,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) client: PveClient,
    pub(crate) executor: Executor,
    pub(crate) observer: Observer,
    pub(crate) template_checks: gold::TemplateChecks,
    pub(crate) wake: Notify,
    pub(crate) state: Mutex<State>,
    /// Decoded node specs, reused across passes while unchanged (apart from `state`: a pass
    /// holds it while it lists the nodes).
    pub(crate) node_cache: Mutex<inputs::NodeCache>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) active: AtomicUsize,
    pub(crate) idle: Notify,
    pub(crate) metrics: std::sync::OnceLock<Metrics>,
}

/// Mutable controller state (never held across an await).
#[derive(Default)]
pub(crate) struct State {
    /// Nodes with a task running (per-node exclusivity), and what it does.
    pub(crate) running: HashMap<String, String>,
    /// Counts finished node tasks; a pass notes it before reading its inputs.
    pub(crate) epoch: u64,
    /// The epoch at which each node's last task finished. A pass whose inputs were read
    /// before that starts nothing for the node: its plan may predate the task's writes.
    pub(crate) finished_at: HashMap<String, u64>,
    pub(crate) backoff: Backoff,
    /// Nodes held until a human looks, with why.
    pub(crate) held: BTreeMap<String, String>,
    /// Readiness results by instance id.
    pub(crate) ready: HashMap<String, bool>,
    /// Addresses found by readiness, by instance id.
    pub(crate) addresses: HashMap<String, String>,
    /// Failed readiness waits by instance id (until it is ready or given up on).
    pub(crate) readiness_failures: HashMap<String, give_up::Failures>,
    /// New instances reborn gave up on (never ready), by node.
    pub(crate) gave_up: HashMap<String, give_up::GiveUp>,
    pub(crate) pve_nodes: Option<(Instant, Vec<PveNodeInfo>)>,
    pub(crate) last_plan: Option<Plan>,
    pub(crate) aborts: Vec<AbortHandle>,
    /// Last error per node, for status.
    pub(crate) last_error: HashMap<String, String>,
    /// Recovery time of the last replacement per node, in seconds.
    pub(crate) recovery: HashMap<String, f64>,
    /// Spec hashes by (node, generation, gold digest): hashing 10,000 specs every pass is
    /// wasted work when nothing changed.
    pub(crate) spec_hashes: HashMap<(String, u64, String), String>,
}

/// The reconcile loop. Build with [`Controller::new`], drive with [`Controller::run`] (or
/// [`Controller::run_pass`] in tests).
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("operator", &self.inner.operator)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Builds the controller and the handle the API uses to reach it.
    ///
    /// # Errors
    /// [`ControllerError::Config`] when the operator id is not a valid tag suffix.
    pub fn new(
        config: ControllerConfig,
        store: Arc<dyn Store>,
        client: PveClient,
    ) -> Result<(Controller, Arc<dyn ControllerHandle>), ControllerError> {
        let operator: OperatorId = config
            .operator_id
            .parse()
            .map_err(ControllerError::Config)?;
        let config = Arc::new(config);
        let executor = Executor::new(
            client.clone(),
            store.clone(),
            config.clone(),
            operator.clone(),
        );
        let permits = Arc::new(Semaphore::new(config.max_concurrent_actions.max(1)));
        let inner = Arc::new(Inner {
            observer: Observer::new(
                client.clone(),
                operator.clone(),
                Duration::from_millis(config.listing_lag_ms),
            ),
            template_checks: gold::TemplateChecks::default(),
            config,
            operator,
            store,
            client,
            executor,
            wake: Notify::new(),
            state: Mutex::new(State::default()),
            node_cache: Mutex::new(inputs::NodeCache::default()),
            permits,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            metrics: std::sync::OnceLock::new(),
        });
        inner.load_readiness();
        let handle: Arc<dyn ControllerHandle> = Arc::new(handle_impl::Handle {
            inner: inner.clone(),
        });
        Ok((Controller { inner }, handle))
    }

    /// Reports pass durations, actions, recovery times and the breaker to `metrics` (the
    /// first call wins).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        let _ = self.inner.metrics.set(metrics);
        self
    }

    /// Runs passes until `shutdown` resolves: woken by store changes, [`ControllerHandle::wake`],
    /// finished tasks, backoff expiry and the resync timer. Running tasks are aborted on
    /// shutdown; their journal entries are settled on the next start.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut changes = self.inner.store.subscribe();
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_pass().await {
                tracing::warn!(error = %error_chain(&e), "reconcile pass failed");
            }
            let resync = tokio::time::sleep(self.inner.config.resync());
            let backoff_at = {
                let now = Instant::now();
                let backoff = self.inner.lock().backoff.next_deadline();
                [backoff, self.inner.next_retry()]
                    .into_iter()
                    .flatten()
                    .filter(|at| *at > now)
                    .min()
            };
            let backoff = async {
                match backoff_at {
                    Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                    _ => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                _ = changes.changed() => {}
                () = self.inner.wake.notified() => {}
                () = resync => {}
                () = backoff => {}
            }
        }
        let aborts = std::mem::take(&mut self.inner.lock().aborts);
        for a in aborts {
            a.abort();
        }
    }

    /// One pass: settle stale journal entries, observe, plan, start node tasks. Returns once
    /// the tasks are started (see [`Controller::settle`]).
    ///
    /// # Errors
    /// PVE or the store could not be read; nothing was started.
    pub async fn run_pass(&self) -> Result<PassReport, ControllerError> {
        self.inner.clone().pass().await
    }

    /// Waits until no node task is running.
    pub async fn settle(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Runs passes (settling after each) until a pass starts nothing, at most `max` passes.
    /// Returns the number of passes run. For tests and the demo.
    ///
    /// # Errors
    /// The last pass's error, if the last pass failed.
    pub async fn converge(&self, max: usize) -> Result<usize, ControllerError> {
        for i in 1..=max {
            let report = self.run_pass().await;
            self.settle().await;
            match report {
                Ok(r) if r.started == 0 => return Ok(i),
                Ok(_) => {}
                Err(e) if i == max => return Err(e),
                Err(_) => {}
            }
        }
        Ok(max)
    }

    /// The last plan a pass made.
    pub fn last_plan(&self) -> Option<Plan> {
        self.inner.lock().last_plan.clone()
    }

    /// Nodes held until a human looks, with why.
    pub fn held(&self) -> BTreeMap<String, String> {
        self.inner.lock().held.clone()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// What one observation and plan produced (the plan and the inputs status needs).
pub(crate) struct PlanInputs {
    pub(crate) plan: Plan,
    pub(crate) config_reads: usize,
    pub(crate) template_reads: usize,
    pub(crate) desired: planner::Desired,
    pub(crate) records: planner::Records,
    pub(crate) observed: planner::Observed,
    pub(crate) statuses: inputs::StoredStatuses,
    pub(crate) golds: inputs::StoredGolds,
    pub(crate) gold_outcomes: Vec<gold::GoldOutcome>,
}

/// A node task.
enum Work {
    Actions(Vec<Action>),
    Recover(JournalEntry),
    Readiness {
        instance_id: String,
        vmid: u32,
        pve_node: String,
    },
}

impl Inner {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn policy(&self) -> Policy {
        let mut p = Policy::new(self.operator.clone());
        p.max_replacements_in_flight = self.config.max_replacements_in_flight;
        p.clones_per_pve_node = self.config.clones_per_pve_node;
        p.clones_per_storage = self.config.clones_per_storage;
        let b = &self.config.breaker;
        p.breaker.enabled = b.enabled;
        p.breaker.max_tainted_percent = b.max_tainted_percent;
        p.breaker.min_tainted = b.min_tainted;
        p.breaker.max_destroys = b.max_destroys;
        if let Some(w) = model::Duration::from_secs(b.window_secs) {
            p.breaker.window = w;
        }
        p
    }

    /// Fills each node's spec hash from the cache (computing the missing ones).
    fn fill_spec_hashes(&self, desired: &mut planner::Desired) {
        let digests: HashMap<&str, &model::Sha256Digest> = desired
            .gold_images
            .iter()
            .map(|g| (g.name().as_str(), &g.spec.digest))
            .collect();
        let mut s = self.lock();
        let mut used = HashSet::new();
        for dn in &mut desired.nodes {
            let Some(digest) = digests.get(dn.node.spec.gold_image.as_str()) else {
                continue;
            };
            let key = (
                dn.node.name().as_str().to_owned(),
                dn.generation,
                digest.to_string(),
            );
            let hash = s
                .spec_hashes
                .entry(key.clone())
                .or_insert_with(|| planner::spec_hash(&dn.node.spec, digest))
                .clone();
            used.insert(key);
            dn.spec_hash = Some(hash);
        }
        s.spec_hashes.retain(|k, _| used.contains(k));
    }

    /// Restores readiness results recorded in node status (so a restart does not re-probe).
    fn load_readiness(&self) {
        let Ok(listing) = self.store.list(inputs::NODE_KIND) else {
            return;
        };
        let mut state = self.lock();
        for r in listing.items {
            let inst = &r.status["instance"];
            if let (Some(id), Some(true)) = (inst["instanceId"].as_str(), inst["ready"].as_bool()) {
                state.ready.insert(id.to_owned(), true);
            }
        }
    }

    /// Observes, plans (without executing). Also used by `ControllerHandle::plan`.
    pub(crate) async fn observe_and_plan(&self) -> Result<PlanInputs, ControllerError> {
        let now = Utc::now();
        let store = self.store.as_ref();
        let (mut desired, statuses, golds) = inputs::desired(
            store,
            &mut self.node_cache.lock().unwrap_or_else(|e| e.into_inner()),
        )
        .map_err(ControllerError::Store)?;
        self.fill_spec_hashes(&mut desired);
        let window = chrono::Duration::seconds(self.config.breaker.window_secs as i64);
        let mut records = inputs::records(store, now, window).map_err(ControllerError::Store)?;
        records.gave_up = self.gave_up_inputs();
        let taints = inputs::taints(store, now).map_err(ControllerError::Store)?;
        let known: HashSet<u32> = records
            .instances
            .iter()
            .map(|r| r.vmid.get())
            .chain(records.leases.iter().map(|l| l.vmid.get()))
            .collect();
        let ready = self.lock().ready.clone();
        let obs = self
            .observer
            .observe(&known, &ready)
            .await
            .map_err(|e| ControllerError::Pve(Box::new(e)))?;
        // Gold templates: those due are checked now; a clone from any other is planned only
        // after its own fresh check below (never from what an earlier pass saw).
        let mut templates = observe::templates(&desired.gold_images, &obs.vms);
        let mut gold_outcomes = self
            .check_templates(
                &desired.gold_images,
                &golds,
                &obs.vms,
                &obs.template_fingerprints,
                None,
            )
            .await;
        gold::apply(&mut templates, &gold_outcomes);
        let cached = self.lock().pve_nodes.clone();
        let mut observed = planner::Observed {
            pve_nodes: cached.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
            vms: obs.vms,
            templates,
        };
        let policy = self.policy();
        let mut plan = planner::plan(&desired, &observed, &records, &taints, &policy, now);
        let wanted = gold::wanted(&plan, &gold_outcomes);
        if !wanted.is_empty() {
            let more = self
                .check_templates(
                    &desired.gold_images,
                    &golds,
                    &observed.vms,
                    &obs.template_fingerprints,
                    Some(&wanted),
                )
                .await;
            gold::apply(&mut observed.templates, &more);
            gold_outcomes.extend(more);
            plan = planner::plan(&desired, &observed, &records, &taints, &policy, now);
        }
        let stale = cached.is_none_or(|(at, _)| at.elapsed() > NODE_INFO_TTL);
        if stale && needs_placement(&plan) {
            let nodes = self
                .observer
                .pve_nodes()
                .await
                .map_err(|e| ControllerError::Pve(Box::new(e)))?;
            self.lock().pve_nodes = Some((Instant::now(), nodes.clone()));
            observed.pve_nodes = nodes;
            plan = planner::plan(&desired, &observed, &records, &taints, &policy, now);
        }
        Ok(PlanInputs {
            plan,
            config_reads: obs.config_reads,
            template_reads: gold_outcomes.iter().filter(|o| o.read).count(),
            desired,
            records,
            observed,
            statuses,
            golds,
            gold_outcomes,
        })
    }

    async fn pass(self: Arc<Self>) -> Result<PassReport, ControllerError> {
        let pass_started = Instant::now();
        let read_at = self.lock().epoch;
        // 1. Journal entries in flight with no task of ours running: settle them first.
        let running: HashSet<String> = self.lock().running.keys().cloned().collect();
        let stale: Vec<JournalEntry> = self
            .store
            .journal_in_flight()
            .map_err(ControllerError::Store)?
            .into_iter()
            .filter(|e| !running.contains(&e.node))
            .collect();
        let mut report = PassReport::default();
        let mut recovering = HashSet::new();
        for entry in stale {
            if !self.lock().backoff.ready(&entry.node) {
                recovering.insert(entry.node.clone());
                continue;
            }
            if recovering.insert(entry.node.clone()) {
                let node = entry.node.clone();
                if self.try_spawn(&node, "recover", Work::Recover(entry), read_at) {
                    report.started += 1;
                }
            }
        }

        // 2. Observe and plan.
        let PlanInputs {
            plan,
            config_reads,
            template_reads,
            desired,
            records,
            observed,
            statuses,
            golds,
            gold_outcomes,
        } = self.observe_and_plan().await?;
        self.prune_give_ups(&records, &desired);
        report.planned = plan.actions.len();
        report.holds = plan.holds.len();
        report.config_reads = config_reads;
        report.template_reads = template_reads;
        // What was verified is remembered before any clone from it starts.
        gold::write_statuses(&self, &golds, &gold_outcomes, &desired.nodes);
        if let BreakerState::Tripped {
            detail,
            newly: true,
        } = &plan.breaker.state
        {
            self.emit(NewEvent {
                at: Utc::now(),
                node: None,
                kind: inputs::BREAKER_TRIPPED.to_owned(),
                message: format!("circuit breaker tripped: {detail}"),
                data: json!({"detail": detail}),
            });
        }

        // 3. Start each node's action sequence (one task per node).
        let mut by_node: BTreeMap<String, Vec<Action>> = BTreeMap::new();
        for a in &plan.actions {
            by_node
                .entry(a.node.as_str().to_owned())
                .or_default()
                .push(a.clone());
        }
        for (node, actions) in by_node {
            if recovering.contains(&node) {
                continue;
            }
            let (held, backing_off) = {
                let s = self.lock();
                (s.held.contains_key(&node), !s.backoff.ready(&node))
            };
            // A held node still gets isolated: isolation is never destructive.
            let actions: Vec<Action> = if held {
                actions
                    .into_iter()
                    .filter(|a| matches!(a.kind, ActionKind::Isolate(_)))
                    .collect()
            } else {
                actions
            };
            if actions.is_empty() || backing_off {
                continue;
            }
            let what = actions
                .iter()
                .map(|a| a.kind.verb())
                .collect::<Vec<_>>()
                .join("+");
            if self.try_spawn(&node, &what, Work::Actions(actions), read_at) {
                report.started += 1;
            }
        }

        // 4. Readiness checks for running instances whose readiness is not known yet.
        for (node, instance_id, vmid, pve_node) in readiness_needed(&records, &observed, &self) {
            if self.lock().backoff.ready(&node)
                && self.try_spawn(
                    &node,
                    "readiness",
                    Work::Readiness {
                        instance_id,
                        vmid,
                        pve_node,
                    },
                    read_at,
                )
            {
                report.started += 1;
            }
        }

        // 5. Status.
        status::write_all(&self, &desired, &statuses, &records, &observed, &plan);
        tracing::debug!(
            planned = report.planned,
            started = report.started,
            holds = report.holds,
            elapsed_ms = pass_started.elapsed().as_millis() as u64,
            "reconcile pass"
        );
        if let Some(m) = self.metrics.get() {
            m.observe_pass(pass_started.elapsed());
            m.breaker(plan.breaker.is_tripped());
        }
        self.lock().last_plan = Some(plan);
        Ok(report)
    }

    /// Starts a task for `node` unless one is running or one finished after the pass read its
    /// inputs at epoch `read_at` (the plan may not include that task's writes: a second create
    /// of a node whose first create just finished). Returns whether it started; a skipped node
    /// is planned again by the pass the finished task wakes.
    fn try_spawn(self: &Arc<Self>, node: &str, what: &str, work: Work, read_at: u64) -> bool {
        {
            let mut s = self.lock();
            if s.running.contains_key(node) || s.finished_at.get(node).is_some_and(|&f| f > read_at)
            {
                return false;
            }
            s.running.insert(node.to_owned(), what.to_owned());
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        let node = node.to_owned();
        let handle = tokio::spawn(async move {
            let permit = inner.permits.clone().acquire_owned().await;
            inner.run_work(&node, work).await;
            drop(permit);
            {
                let mut s = inner.lock();
                s.running.remove(&node);
                s.epoch += 1;
                let epoch = s.epoch;
                s.finished_at.insert(node.clone(), epoch);
            }
            if inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
            inner.wake.notify_one();
        });
        let mut s = self.lock();
        s.aborts.retain(|a| !a.is_finished());
        s.aborts.push(handle.abort_handle());
        true
    }

    async fn run_work(self: &Arc<Self>, node: &str, work: Work) {
        match work {
            Work::Recover(entry) => {
                let vmid = entry.vmid;
                let result = self.executor.recover(&entry).await;
                if let Some(v) = vmid {
                    self.observer.invalidate(v);
                }
                self.after(node, result).await;
            }
            Work::Actions(actions) => {
                for action in actions {
                    let touched = match &action.kind {
                        ActionKind::Create(c) => Some(c.vmid.get()),
                        other => other.touched_vmid().map(|v| v.get()),
                    };
                    let result = self.executor.execute(&action).await;
                    if let Some(v) = touched {
                        self.observer.invalidate(v);
                    }
                    if let Some(m) = self.metrics.get() {
                        let outcome = match &result {
                            Ok(_) => "ok",
                            Err(e) => e.class().as_str(),
                        };
                        m.action(action.kind.verb(), outcome);
                    }
                    if matches!(action.kind, ActionKind::PromoteIncoming { .. }) && result.is_ok() {
                        self.remember_recovery(node);
                    }
                    if !self.after(node, result).await {
                        break;
                    }
                }
            }
            Work::Readiness {
                instance_id,
                vmid,
                pve_node,
            } => {
                self.check_readiness(node, &instance_id, vmid, &pve_node)
                    .await;
            }
        }
    }

    /// Books an action's result; `false` stops the node's sequence.
    async fn after(self: &Arc<Self>, node: &str, result: Result<Executed, ExecError>) -> bool {
        match result {
            Ok(Executed::Done) => {
                let mut s = self.lock();
                s.backoff.succeeded(node);
                s.last_error.remove(node);
                true
            }
            Ok(Executed::NeedsReadiness {
                instance_id,
                vmid,
                pve_node,
            }) => {
                {
                    let mut s = self.lock();
                    s.last_error.remove(node);
                    s.ready.remove(&instance_id);
                }
                self.check_readiness(node, &instance_id, vmid, &pve_node)
                    .await
            }
            Err(err) => {
                let chain = err.chain();
                let class = err.class();
                let mut s = self.lock();
                s.last_error.insert(node.to_owned(), chain.clone());
                match &class {
                    ErrorClass::Transient => {
                        let delay = s.backoff.failed(&self.config.backoff, node);
                        tracing::warn!(node, error = %chain, ?delay, "action failed; backing off");
                    }
                    ErrorClass::Replan => {
                        tracing::info!(node, error = %chain, "plan was stale; re-planning");
                    }
                    ErrorClass::Hold(why) => {
                        tracing::error!(node, error = %chain, "node held");
                        s.held.insert(node.to_owned(), why.clone());
                        drop(s);
                        self.emit(crate::executor::event_now(
                            node,
                            "Held",
                            format!("node held until a human looks: {why}"),
                            json!({"reason": why, "error": chain}),
                        ));
                    }
                }
                false
            }
        }
    }

    /// Runs a readiness wait and books it; `true` when ready.
    async fn check_readiness(
        self: &Arc<Self>,
        node: &str,
        instance_id: &str,
        vmid: u32,
        pve_node: &str,
    ) -> bool {
        let spec = match self
            .store
            .get(&store::ResourceKey::new(inputs::NODE_KIND, node))
        {
            Ok(Some(r)) => serde_json::from_value::<model::NodeSpec>(r.spec).ok(),
            _ => None,
        };
        let Some(spec) = spec else {
            // Deleted node: its instance is not waited for.
            return true;
        };
        let (Ok(pn), Ok(v)) = (
            pve_client::NodeName::new(pve_node),
            pve_client::VmId::new(vmid),
        ) else {
            return false;
        };
        let rc = &self.config.readiness;
        let timeout = rc
            .default_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| spec.readiness.timeout.to_std());
        let target = ReadinessTarget {
            pve_node: pn,
            vmid: v,
            declared_address: spec
                .network
                .first()
                .and_then(|n| n.address)
                .map(|c| c.addr()),
            spec: spec.readiness.clone(),
            timeout,
            poll: Duration::from_millis(rc.poll_ms),
            connect_timeout: Duration::from_millis(rc.tcp_connect_ms),
        };
        let outcome = wait_ready(&self.client, &target).await;
        let failure = outcome.last_failure.as_deref().unwrap_or("unknown");
        if outcome.ready {
            self.readiness_passed(node, instance_id);
        }
        {
            let mut s = self.lock();
            s.ready.insert(instance_id.to_owned(), outcome.ready);
            if let Some(a) = outcome.address {
                s.addresses.insert(instance_id.to_owned(), a.to_string());
            }
            if outcome.ready {
                s.backoff.succeeded(node);
            } else {
                s.backoff.failed(&self.config.backoff, node);
            }
        }
        let (kind, message) = if outcome.ready {
            (
                "Ready",
                format!("VM {vmid} (instance {instance_id}) is ready"),
            )
        } else {
            (
                "NotReady",
                format!(
                    "VM {vmid} (instance {instance_id}) not ready within {}s: {}",
                    timeout.as_secs(),
                    failure
                ),
            )
        };
        self.emit(crate::executor::event_now(
            node,
            kind,
            message,
            json!({"vmid": vmid, "instance": instance_id, "address": outcome.address,
                   "timings": {"readinessMs": outcome.waited_ms}, "attempts": outcome.attempts}),
        ));
        if !outcome.ready {
            // After its NotReady event: a give-up is reported after the failure that caused it.
            self.readiness_failed(
                node,
                instance_id,
                vmid,
                failure,
                Duration::from_millis(outcome.waited_ms),
            );
        }
        outcome.ready
    }

    /// Copies the recovery time of the node's last promotion into the status state.
    fn remember_recovery(&self, node: &str) {
        let q = store::EventQuery {
            node: Some(node.to_owned()),
            kind: Some("Promoted".to_owned()),
            limit: Some(1),
            ..store::EventQuery::default()
        };
        if let Some(secs) = self
            .store
            .events(&q)
            .ok()
            .and_then(|mut e| e.pop())
            .and_then(|e| e.data["recoverySeconds"].as_f64())
        {
            self.lock().recovery.insert(node.to_owned(), secs);
            if let Some(m) = self.metrics.get() {
                m.recovery(secs);
            }
        }
    }

    pub(crate) fn emit(&self, event: NewEvent) {
        if let Err(e) = self.store.append_event(event) {
            tracing::warn!(error = %e, "could not append event");
        }
    }
}

/// Whether the plan wants PVE node info (placement) it may not have fresh.
fn needs_placement(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a.kind, ActionKind::Create(_)))
        || plan
            .holds
            .iter()
            .any(|h| matches!(h.blocked_by, BlockedBy::NoPveNodeCapacity { .. }))
}

/// Current and incoming instances that run but whose readiness is unknown (or failed and due
/// for another try), with their node.
fn readiness_needed(
    records: &planner::Records,
    observed: &planner::Observed,
    inner: &Inner,
) -> Vec<(String, String, u32, String)> {
    let vms: HashMap<model::VmId, &planner::ObservedVm> =
        observed.vms.iter().map(|v| (v.vmid, v)).collect();
    let s = inner.lock();
    records
        .instances
        .iter()
        .filter(|r| r.role != planner::InstanceRole::Retiring)
        .filter(|r| s.ready.get(&r.instance_id) != Some(&true))
        .filter(|r| !s.gave_up.values().any(|g| g.instance_id == r.instance_id))
        .filter(|r| {
            vms.get(&r.vmid).is_some_and(|vm| {
                vm.status == planner::VmStatus::Running
                    && vm.config.as_ref().is_some_and(|c| {
                        !c.isolated
                            && c.marker
                                .as_ref()
                                .is_some_and(|m| m.instance_id == r.instance_id)
                    })
            })
        })
        .map(|r| {
            (
                r.node.as_str().to_owned(),
                r.instance_id.clone(),
                r.vmid.get(),
                r.pve_node.as_str().to_owned(),
            )
        })
        .collect()
}
