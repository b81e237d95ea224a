//! `store`: the desired-state store. A `Store` trait and its SQLite implementation: resources
//! with generation/resourceVersion, status, taints, events, the operation journal, audit
//! cursors and audit windows.
//!
//! Start with [`Store`] (the contract every backend meets) and [`SqliteStore`] (the embedded
//! default). Writes go through [`Store::commit`] with a [`Txn`] of [`Op`]s, committed all or
//! nothing; the conveniences (`apply`, `add_taint`, `journal_begin`, ...) are one-op
//! transactions. Kinds are plain strings and specs, status and evidence are
//! `serde_json::Value`: the store does not know the manifest types.
//!
//! Must not depend on: the PVE crates, the planner, the model crate or the operator runtime.

mod audit_cursor;
mod audit_window;
mod error;
mod event;
mod instance;
mod journal;
mod resource;
mod sqlite;
mod store;
mod taint;
mod txn;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use audit_cursor::{AuditCursor, CursorPosition};
pub use audit_window::AuditWindow;
pub use error::StoreError;
pub use event::{Event, EventQuery, EventRetention, NewEvent};
pub use instance::{InstanceRecord, LeaseState, VmidLease};
pub use journal::{JournalEntry, JournalState, JournalUpdate, NewJournalEntry};
pub use resource::{
    Expect, Listing, Resource, ResourceKey, ResourceWrite, Revision, SharedListing,
};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{Clock, ManualClock, Store, SystemClock};
pub use taint::{NewTaint, Severity, Taint, TaintSource};
pub use txn::{Op, OpResult, Txn, TxnOutcome};
