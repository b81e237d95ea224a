//! The executor: the only code that mutates PVE. One planner action at a time, journaled
//! before the PVE call, tracked to completion, completed in the store with an event.

mod create;
mod destroy;
mod error;
mod records;
mod recovery;
mod simple;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use planner::{Action, ActionKind, OperatorId};
use pve_client::{NodeName, PveClient, VmId};
use serde_json::{Value, json};
use store::{JournalEntry, JournalState, JournalUpdate, NewEvent, Op, Store, StoreError, Txn};

pub use error::{ErrorClass, ExecError};

use crate::controller::ControllerConfig;

/// What an executed action leaves for the controller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// Done; nothing follows.
    Done,
    /// Done, and this started instance now needs a readiness check.
    NeedsReadiness {
        /// The instance.
        instance_id: String,
        /// Its VMID.
        vmid: u32,
        /// Its PVE node.
        pve_node: String,
    },
}

/// Runs planner actions against PVE, recording every step in the store.
#[derive(Clone)]
pub struct Executor {
    pub(crate) client: PveClient,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<ControllerConfig>,
    pub(crate) operator: OperatorId,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor acting as `operator`.
    pub fn new(
        client: PveClient,
        store: Arc<dyn Store>,
        config: Arc<ControllerConfig>,
        operator: OperatorId,
    ) -> Self {
        Self {
            client,
            store,
            config,
            operator,
        }
    }

    /// Executes one action. Errors are already recorded (journal, event) when this returns.
    pub async fn execute(&self, action: &Action) -> Result<Executed, ExecError> {
        let node = action.node.as_str();
        let reason = action.reason.to_string();
        match &action.kind {
            ActionKind::Create(c) => self.create(node, c, &reason).await,
            ActionKind::Start(r) => self.start(node, r, &reason).await,
            ActionKind::Stop(r) => self.stop(node, r, &reason).await,
            ActionKind::Isolate(r) => self.isolate(node, r, &reason).await,
            ActionKind::Destroy(id) => self.destroy(node, id, &reason).await,
            ActionKind::PromoteIncoming {
                instance_id,
                vmid,
                supersedes,
            } => self
                .promote(
                    node,
                    instance_id,
                    vmid.get(),
                    supersedes.as_deref(),
                    &reason,
                )
                .map(|()| Executed::Done),
            ActionKind::ForgetInstance { instance_id, vmid } => self
                .forget(node, instance_id, vmid.get(), &reason)
                .map(|()| Executed::Done),
            ActionKind::AdoptInstance { record } => {
                self.adopt(node, record, &reason).map(|()| Executed::Done)
            }
        }
    }

    pub(crate) fn tasks_timeout(&self, ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Commits a transaction, mapping the error to the node.
    pub(crate) fn commit(&self, node: &str, txn: Txn) -> Result<store::TxnOutcome, ExecError> {
        self.store.commit(txn).map_err(|source| ExecError::Store {
            node: node.to_owned(),
            source,
        })
    }

    /// Writes the intent (plus `extra` ops in the same transaction) and returns the entry.
    pub(crate) fn begin(
        &self,
        node: &str,
        action: &str,
        vmid: u32,
        pve_node: &str,
        detail: Value,
        extra: Vec<Op>,
    ) -> Result<JournalEntry, ExecError> {
        let mut txn: Txn = extra.into_iter().collect();
        txn.push(Op::JournalBegin(store::NewJournalEntry {
            node: node.to_owned(),
            action: action.to_owned(),
            vmid: Some(vmid),
            pve_node: Some(pve_node.to_owned()),
            detail,
        }));
        let outcome = self.commit(node, txn)?;
        outcome
            .results
            .into_iter()
            .find_map(|r| match r {
                store::OpResult::Journal(e) => Some(e),
                _ => None,
            })
            .ok_or_else(|| ExecError::Store {
                node: node.to_owned(),
                source: StoreError::UnexpectedResult { op: "JournalBegin" },
            })
    }

    /// Records the UPID of a running step (the entry stays in flight).
    pub(crate) fn record_upid(&self, entry: &JournalEntry, upid: Option<&pve_client::Upid>) {
        let Some(upid) = upid else { return };
        let update = JournalUpdate {
            id: entry.id,
            state: JournalState::Intent,
            upid: Some(upid.to_string()),
            detail: None,
        };
        if let Err(e) = self.store.journal_update(update) {
            tracing::warn!(node = %entry.node, error = %e, "could not record UPID");
        }
    }

    /// Finishes a journal entry, with extra ops and an event, in one transaction.
    pub(crate) fn finish(
        &self,
        entry: &JournalEntry,
        state: JournalState,
        detail: Value,
        extra: Vec<Op>,
        event: NewEvent,
    ) -> Result<(), ExecError> {
        let mut txn: Txn = extra.into_iter().collect();
        txn.push(Op::JournalUpdate(JournalUpdate {
            id: entry.id,
            state,
            upid: None,
            detail: Some(detail),
        }));
        txn.push(Op::AppendEvent(event));
        self.commit(&entry.node, txn).map(|_| ())
    }

    /// Marks the entry failed and appends an event; store errors are logged (the original
    /// error matters more).
    pub(crate) fn fail(&self, entry: &JournalEntry, err: &ExecError, extra: Vec<Op>) {
        let detail = json!({"error": err.chain(), "step": entry.action});
        let event = event(
            &entry.node,
            "ActionFailed",
            format!(
                "{} of VM {} failed: {}",
                entry.action,
                vmid_text(entry.vmid),
                err.chain()
            ),
            json!({"action": entry.action, "vmid": entry.vmid, "error": err.chain(), "class": err.class().as_str()}),
        );
        if let Err(e) = self.finish(entry, JournalState::Failed, detail, extra, event) {
            tracing::warn!(node = %entry.node, error = %e, "could not record failure");
        }
    }

    /// Appends an event, logging (not failing) on a store error.
    pub(crate) fn emit(&self, event: NewEvent) {
        if let Err(e) = self.store.append_event(event) {
            tracing::warn!(error = %e, "could not append event");
        }
    }

    /// The node's lease on `vmid`, if it holds one.
    pub(crate) fn holds_lease(&self, node: &str, vmid: u32) -> Result<bool, ExecError> {
        let leases = self
            .store
            .vmid_leases()
            .map_err(|source| ExecError::Store {
                node: node.to_owned(),
                source,
            })?;
        Ok(leases.iter().any(|l| l.vmid == vmid && l.node == node))
    }
}

/// A new event stamped now.
pub(crate) fn event_now(node: &str, kind: &str, message: String, data: Value) -> NewEvent {
    event(node, kind, message, data)
}

/// A new event stamped now.
pub(crate) fn event(node: &str, kind: &str, message: String, data: Value) -> NewEvent {
    NewEvent {
        at: Utc::now(),
        node: Some(node.to_owned()),
        kind: kind.to_owned(),
        message,
        data,
    }
}

fn vmid_text(vmid: Option<u32>) -> String {
    vmid.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

/// pve-client ids from the planner's.
pub(crate) fn pve_ids(
    node: &str,
    pve_node: &str,
    vmid: u32,
) -> Result<(NodeName, VmId), ExecError> {
    let n = NodeName::new(pve_node).map_err(|e| ExecError::Invalid {
        node: node.to_owned(),
        what: format!("PVE node name {pve_node:?}: {e}"),
    })?;
    let v = VmId::new(vmid).map_err(|e| ExecError::Invalid {
        node: node.to_owned(),
        what: format!("vmid {vmid}: {e}"),
    })?;
    Ok((n, v))
}

/// Milliseconds since `start`.
pub(crate) fn ms_since(start: tokio::time::Instant) -> u64 {
    start.elapsed().as_millis() as u64
}
