//! Audit cursors: how far each audit source has been ingested.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A position in an audit source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum CursorPosition {
    /// A byte offset in one file, identified so that a rotated file is not mistaken for it.
    File {
        /// The file identity (e.g. `dev:inode`, or a hash of its first line).
        identity: String,
        /// Bytes consumed so far.
        offset: u64,
    },
    /// The last ingested record id (HTTP ingest, ordered sources).
    LastId {
        /// The id.
        id: String,
    },
}

/// The cursor of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCursor {
    /// The source name from the configuration.
    pub source: String,
    /// How far it has been ingested.
    pub position: CursorPosition,
    /// When it last moved (store clock; ignored on write).
    pub updated_at: Option<DateTime<Utc>>,
}

impl AuditCursor {
    /// A cursor to write (`updated_at` is set by the store).
    pub fn new(source: impl Into<String>, position: CursorPosition) -> Self {
        Self {
            source: source.into(),
            position,
            updated_at: None,
        }
    }
}
