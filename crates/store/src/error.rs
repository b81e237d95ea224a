//! The store's error type.

use std::path::PathBuf;

use crate::{Expect, JournalState, ResourceKey, Revision};

/// Everything a store operation can fail with. A failed transaction changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stored version is not the one the writer expected.
    #[error("conflict on {key}: expected {expected}, found {}", describe_actual(*actual))]
    Conflict {
        /// The resource.
        key: ResourceKey,
        /// What the writer expected.
        expected: Expect,
        /// The stored `resource_version`, or `None` if the resource does not exist.
        actual: Option<Revision>,
    },
    /// The thing a write refers to does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What kind of thing: `resource`, `taint`, `journal entry`, `instance`, `vmid lease`.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// The VMID is already leased.
    #[error("vmid {vmid} is already leased to node {holder}")]
    VmidLeased {
        /// The VMID.
        vmid: u32,
        /// The node holding it.
        holder: String,
    },
    /// Every VMID in the configured range is leased or excluded.
    #[error("no free vmid in {start}..={end}")]
    VmidRangeExhausted {
        /// First VMID of the range.
        start: u32,
        /// Last VMID of the range.
        end: u32,
    },
    /// A journal entry already in a final state was asked to change.
    #[error("journal entry {id} is {from} and cannot become {to}")]
    InvalidTransition {
        /// The entry.
        id: i64,
        /// Its stored state.
        from: JournalState,
        /// The requested state.
        to: JournalState,
    },
    /// The caller passed something the store cannot hold.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// SQLite reported an error.
    #[error("sqlite: {op}")]
    Sqlite {
        /// What the store was doing.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file could not be opened or its directory created.
    #[error("cannot open store at {}", path.display())]
    Open {
        /// The database path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A schema migration step failed (the database stays at the previous version).
    #[error("schema migration to version {version} failed")]
    Migration {
        /// The version being migrated to.
        version: u32,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer reborn; refusing to touch it.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); upgrade reborn"
    )]
    NewerSchema {
        /// The version in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A stored value does not decode (manual edit, disk corruption or a bug).
    #[error("corrupt stored data: {what}")]
    Corrupt {
        /// What failed to decode, with its id.
        what: String,
    },
    /// A value could not be encoded for storage.
    #[error("cannot encode {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A backend returned a result of the wrong shape for an op (a backend bug).
    #[error("backend returned an unexpected result for {op}")]
    UnexpectedResult {
        /// The op.
        op: &'static str,
    },
}

fn describe_actual(actual: Option<Revision>) -> String {
    match actual {
        Some(v) => format!("resourceVersion {v}"),
        None => "no such resource".to_owned(),
    }
}

impl StoreError {
    /// Whether this is an optimistic-concurrency conflict (re-read and retry).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether this is a not-found error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}
