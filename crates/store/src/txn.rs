//! Transactions: an ordered batch of writes the store commits all together or not at all.

use std::ops::RangeInclusive;

use serde_json::Value;

use crate::{
    AuditCursor, AuditWindow, Expect, InstanceRecord, JournalEntry, JournalUpdate, LeaseState,
    NewEvent, NewJournalEntry, NewTaint, Resource, ResourceKey, ResourceWrite, Revision, Taint,
};

/// One write inside a [`Txn`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create or update a resource's labels and spec. The generation is bumped only if the
    /// spec changed; nothing changes (and the version stays) if labels and spec are identical.
    PutResource(ResourceWrite),
    /// Replace a resource's status. Never bumps the generation.
    PutStatus {
        /// The resource.
        key: ResourceKey,
        /// The new status.
        status: Value,
        /// Precondition on the stored version (`Absent` is meaningless here and conflicts).
        expect: Expect,
    },
    /// Delete a resource. Its taints, events and journal stay.
    DeleteResource {
        /// The resource.
        key: ResourceKey,
        /// Precondition on the stored version.
        expect: Expect,
    },
    /// Add a taint. If an active taint with the same node, instance and key exists, nothing is
    /// added and the existing taint is returned.
    AddTaint(NewTaint),
    /// Clear a taint (it stays in history with who cleared it and when).
    ClearTaint {
        /// The taint id.
        id: i64,
        /// Who clears it.
        by: String,
    },
    /// Append an event.
    AppendEvent(NewEvent),
    /// Record the intent of a PVE step before calling PVE.
    JournalBegin(NewJournalEntry),
    /// Record a UPID or a final state for a journal entry. A final entry cannot change again.
    JournalUpdate(JournalUpdate),
    /// Record (or replace) an instance record; a record with `current: true` supersedes the
    /// node's previous current instance.
    PutInstance(InstanceRecord),
    /// Forget an instance record (after its VM was destroyed).
    RemoveInstance {
        /// The instance id.
        instance_id: String,
    },
    /// Lease this exact VMID for a node. Fails if another lease holds it.
    LeaseVmid {
        /// The VMID.
        vmid: u32,
        /// The node.
        node: String,
    },
    /// Lease the lowest VMID in `range` that is neither leased nor in `exclude` (VMIDs seen in
    /// PVE that reborn does not own).
    LeaseFreeVmid {
        /// The configured range.
        range: RangeInclusive<u32>,
        /// VMIDs known to be in use outside the store.
        exclude: Vec<u32>,
        /// The node.
        node: String,
    },
    /// Move a lease to another state.
    SetLeaseState {
        /// The VMID.
        vmid: u32,
        /// The new state.
        state: LeaseState,
    },
    /// Release a lease; the VMID becomes free.
    ReleaseVmid {
        /// The VMID.
        vmid: u32,
    },
    /// Move an audit cursor. Put it in the same transaction as the taints derived from the
    /// lines it moves past.
    SetAuditCursor(AuditCursor),
    /// Replace one audit window (by scope, policy and node) with these calls; an empty
    /// `calls` array deletes it. Put it in the same transaction as the cursor of the lines
    /// that changed the window.
    SetAuditWindow(AuditWindow),
}

/// An ordered list of writes, committed atomically: every op applies, or none does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    /// The writes, applied in order (later ops see earlier ones).
    pub ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an op (builder style).
    pub fn with(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Appends an op.
    pub fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl FromIterator<Op> for Txn {
    fn from_iter<I: IntoIterator<Item = Op>>(iter: I) -> Self {
        Self {
            ops: iter.into_iter().collect(),
        }
    }
}

/// What one op did, in the same position as the op.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// `PutResource` / `PutStatus`: the resource after the write, and whether it changed.
    Resource {
        /// The stored resource.
        resource: Resource,
        /// False when the write was identical to what was stored.
        changed: bool,
    },
    /// `DeleteResource`: the resource as it was.
    Deleted(Resource),
    /// `AddTaint` / `ClearTaint`: the stored taint, and whether this op created or changed it.
    Taint {
        /// The stored taint.
        taint: Taint,
        /// False when an identical active taint already existed.
        changed: bool,
    },
    /// `AppendEvent`: the new event id.
    Event(i64),
    /// `JournalBegin` / `JournalUpdate`: the stored entry.
    Journal(JournalEntry),
    /// `PutInstance` / `RemoveInstance`.
    Instance,
    /// `LeaseVmid` / `LeaseFreeVmid`: the leased VMID. `SetLeaseState` / `ReleaseVmid`: the VMID.
    Vmid(u32),
    /// `SetAuditCursor`.
    Cursor,
    /// `SetAuditWindow`.
    Window,
}

/// The result of a committed transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOutcome {
    /// The store revision after the commit (unchanged if nothing changed).
    pub revision: Revision,
    /// Whether anything changed (and subscribers were woken).
    pub changed: bool,
    /// One result per op, in order.
    pub results: Vec<OpResult>,
}
