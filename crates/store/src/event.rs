//! Events: the append-only record of decisions, PVE tasks and outcomes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The node it concerns, if any.
    pub node: Option<String>,
    /// What happened, e.g. `TaintAdded`, `CloneStarted`, `Destroyed`, `Held`.
    pub kind: String,
    /// Human-readable message ("destroyed VM 4103: taint 7 from Cerbos").
    pub message: String,
    /// Machine-readable details: UPIDs, timings, ids.
    pub data: Value,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Store-assigned id, increasing in append order (use it to follow).
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The node it concerns, if any.
    pub node: Option<String>,
    /// What happened.
    pub kind: String,
    /// Human-readable message.
    pub message: String,
    /// Machine-readable details.
    pub data: Value,
}

/// A filter over events. All set fields must match; results are ordered by id (append order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events about this node.
    pub node: Option<String>,
    /// Only events of this kind.
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events strictly before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events with an id greater than this (for `events --follow`).
    pub after_id: Option<i64>,
    /// At most this many events: the most recent ones matching, still returned oldest first.
    pub limit: Option<usize>,
}

/// How long events are kept. Both limits apply when both are set. A node's newest event of each
/// kind is always kept (the last `Ready`, `Destroyed`, ... of a node stay readable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRetention {
    /// Drop events older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many of the newest events.
    pub max_count: Option<u64>,
}
