//! The `Store` trait every backend implements, and the clock it stamps records with.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use crate::{
    AuditCursor, AuditWindow, Event, EventQuery, EventRetention, Expect, InstanceRecord,
    JournalEntry, JournalUpdate, Listing, NewEvent, NewJournalEntry, NewTaint, Op, OpResult,
    Resource, ResourceKey, ResourceWrite, Revision, SharedListing, StoreError, Taint, Txn,
    TxnOutcome, VmidLease,
};

/// The source of the timestamps a store writes itself (`created_at`, `updated_at`,
/// `cleared_at`, `leased_at`). Caller-supplied times (a taint's `created_at`, an event's `at`)
/// are stored as given.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests, simulations, the demo).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Sets the time.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    /// Moves the time forward.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// reborn's desired-state store.
///
/// Methods are synchronous and take `&self`; implementations are `Send + Sync` and shared as
/// `Arc<dyn Store>`. Async callers use `spawn_blocking` for large reads and writes.
///
/// # Guarantees
///
/// - [`commit`](Store::commit) is atomic: every op of a [`Txn`] applies or none does.
/// - A write that returned `Ok` is durable (it survives a process kill and, for SQLite with the
///   default settings, a power loss).
/// - The revision is store-wide and increases by one per committed transaction that changed
///   something; a resource's `resource_version` is the revision of its last change.
/// - After every committed change, [`subscribe`](Store::subscribe) receivers see the new
///   revision (the value is the latest revision, not a queue of changes).
///
/// The shape follows etcd (revisions, compare-and-write transactions, watch) so a distributed
/// backend can implement it without changing callers.
pub trait Store: Send + Sync {
    /// Commits a transaction: all ops or none.
    fn commit(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// The current store revision.
    fn revision(&self) -> Result<Revision, StoreError>;

    /// A receiver that holds the latest committed revision and wakes on every change.
    fn subscribe(&self) -> watch::Receiver<Revision>;

    /// One resource, if it exists.
    fn get(&self, key: &ResourceKey) -> Result<Option<Resource>, StoreError>;

    /// Every resource of a kind, ordered by name, with the revision of the read.
    fn list(&self, kind: &str) -> Result<Listing, StoreError>;

    /// [`Store::list`] as shared snapshots: the same resources at the same revision, cheap to
    /// take repeatedly (for readers that only look, like a reconcile pass).
    fn list_shared(&self, kind: &str) -> Result<SharedListing, StoreError>;

    /// Taints active at `now` (not cleared, not expired), optionally only for one node,
    /// ordered by id.
    fn active_taints(
        &self,
        node: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Taint>, StoreError>;

    /// Every taint ever added (active, expired and cleared), optionally only for one node,
    /// ordered by id.
    fn taint_history(&self, node: Option<&str>) -> Result<Vec<Taint>, StoreError>;

    /// Events matching the query, oldest first.
    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    /// Deletes events beyond the retention limits; returns how many were removed.
    fn prune_events(
        &self,
        retention: &EventRetention,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// One journal entry.
    fn journal_entry(&self, id: i64) -> Result<Option<JournalEntry>, StoreError>;

    /// Journal entries still in `Intent` state (what was in flight at a crash), oldest first.
    fn journal_in_flight(&self) -> Result<Vec<JournalEntry>, StoreError>;

    /// The journal of one node, oldest first.
    fn journal_for_node(&self, node: &str) -> Result<Vec<JournalEntry>, StoreError>;

    /// The node's current instance record.
    fn current_instance(&self, node: &str) -> Result<Option<InstanceRecord>, StoreError>;

    /// Every instance record (current and superseded), optionally only for one node, ordered
    /// by node then creation.
    fn instances(&self, node: Option<&str>) -> Result<Vec<InstanceRecord>, StoreError>;

    /// Every VMID lease, ordered by VMID.
    fn vmid_leases(&self) -> Result<Vec<VmidLease>, StoreError>;

    /// The cursor of one audit source.
    fn audit_cursor(&self, source: &str) -> Result<Option<AuditCursor>, StoreError>;

    /// The audit windows of one scope (an evaluator shared by one or more audit sources),
    /// ordered by policy then node. Empty windows are never stored.
    fn audit_windows(&self, scope: &str) -> Result<Vec<AuditWindow>, StoreError>;

    // ---- conveniences built on `commit` ----

    /// Applies a set of resources in one transaction: all or nothing.
    fn apply(&self, writes: Vec<ResourceWrite>) -> Result<Vec<Resource>, StoreError> {
        let outcome = self.commit(writes.into_iter().map(Op::PutResource).collect())?;
        outcome
            .results
            .into_iter()
            .map(|r| match r {
                OpResult::Resource { resource, .. } => Ok(resource),
                _ => Err(StoreError::UnexpectedResult { op: "PutResource" }),
            })
            .collect()
    }

    /// Replaces a resource's status.
    fn put_status(
        &self,
        key: &ResourceKey,
        status: Value,
        expect: Expect,
    ) -> Result<Resource, StoreError> {
        let op = Op::PutStatus {
            key: key.clone(),
            status,
            expect,
        };
        match single(self.commit(Txn::new().with(op))?) {
            Some(OpResult::Resource { resource, .. }) => Ok(resource),
            _ => Err(StoreError::UnexpectedResult { op: "PutStatus" }),
        }
    }

    /// Deletes a resource, returning it as it was.
    fn delete(&self, key: &ResourceKey, expect: Expect) -> Result<Resource, StoreError> {
        let op = Op::DeleteResource {
            key: key.clone(),
            expect,
        };
        match single(self.commit(Txn::new().with(op))?) {
            Some(OpResult::Deleted(resource)) => Ok(resource),
            _ => Err(StoreError::UnexpectedResult {
                op: "DeleteResource",
            }),
        }
    }

    /// Adds a taint (or returns the identical active one).
    fn add_taint(&self, taint: NewTaint) -> Result<Taint, StoreError> {
        match single(self.commit(Txn::new().with(Op::AddTaint(taint)))?) {
            Some(OpResult::Taint { taint, .. }) => Ok(taint),
            _ => Err(StoreError::UnexpectedResult { op: "AddTaint" }),
        }
    }

    /// Clears a taint, recording who cleared it.
    fn clear_taint(&self, id: i64, by: &str) -> Result<Taint, StoreError> {
        let op = Op::ClearTaint {
            id,
            by: by.to_owned(),
        };
        match single(self.commit(Txn::new().with(op))?) {
            Some(OpResult::Taint { taint, .. }) => Ok(taint),
            _ => Err(StoreError::UnexpectedResult { op: "ClearTaint" }),
        }
    }

    /// Appends one event, returning its id.
    fn append_event(&self, event: NewEvent) -> Result<i64, StoreError> {
        match single(self.commit(Txn::new().with(Op::AppendEvent(event)))?) {
            Some(OpResult::Event(id)) => Ok(id),
            _ => Err(StoreError::UnexpectedResult { op: "AppendEvent" }),
        }
    }

    /// Records the intent of a PVE step.
    fn journal_begin(&self, entry: NewJournalEntry) -> Result<JournalEntry, StoreError> {
        match single(self.commit(Txn::new().with(Op::JournalBegin(entry)))?) {
            Some(OpResult::Journal(entry)) => Ok(entry),
            _ => Err(StoreError::UnexpectedResult { op: "JournalBegin" }),
        }
    }

    /// Records a UPID or a final state for a journal entry.
    fn journal_update(&self, update: JournalUpdate) -> Result<JournalEntry, StoreError> {
        match single(self.commit(Txn::new().with(Op::JournalUpdate(update)))?) {
            Some(OpResult::Journal(entry)) => Ok(entry),
            _ => Err(StoreError::UnexpectedResult {
                op: "JournalUpdate",
            }),
        }
    }
}

fn single(outcome: TxnOutcome) -> Option<OpResult> {
    outcome.results.into_iter().next()
}
