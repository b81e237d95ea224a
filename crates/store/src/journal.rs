//! The operation journal: the intent of each destructive or creating PVE step, written before
//! the call and completed after, so a restarted operator knows what was in flight.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The life of a journal entry: `Intent`, then exactly one of the final states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalState {
    /// Written before the PVE call; still in flight (or interrupted by a crash).
    Intent,
    /// The step completed.
    Done,
    /// The step failed.
    Failed,
    /// Recovery decided the step will not be resumed (e.g. the VM it targeted is gone).
    Abandoned,
}

impl JournalState {
    /// Every state.
    pub const ALL: [JournalState; 4] = [
        JournalState::Intent,
        JournalState::Done,
        JournalState::Failed,
        JournalState::Abandoned,
    ];

    /// The lowercase name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalState::Intent => "intent",
            JournalState::Done => "done",
            JournalState::Failed => "failed",
            JournalState::Abandoned => "abandoned",
        }
    }

    /// Whether the entry is finished (no further transitions allowed).
    pub fn is_final(self) -> bool {
        self != JournalState::Intent
    }
}

impl fmt::Display for JournalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JournalState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JournalState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown journal state {s:?}"))
    }
}

/// The intent to record before a PVE call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJournalEntry {
    /// The node the step is for.
    pub node: String,
    /// The step, e.g. `clone`, `start`, `stop`, `destroy`, `isolate`.
    pub action: String,
    /// The VMID the step acts on or creates.
    pub vmid: Option<u32>,
    /// The PVE node the step runs on.
    pub pve_node: Option<String>,
    /// Anything recovery needs to finish or undo the step (serialized step parameters).
    pub detail: Value,
}

/// A change to a journal entry: a UPID learned, a final state reached, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalUpdate {
    /// The entry to change.
    pub id: i64,
    /// The new state; `Intent` keeps it in flight (e.g. to record the UPID).
    pub state: JournalState,
    /// The PVE task id, once PVE returned one.
    pub upid: Option<String>,
    /// Replaces the detail when set (e.g. with the error or the task's exit status).
    pub detail: Option<Value>,
}

/// A stored journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Store-assigned id.
    pub id: i64,
    /// The node the step is for.
    pub node: String,
    /// The step.
    pub action: String,
    /// The VMID it acts on or creates.
    pub vmid: Option<u32>,
    /// The PVE node it runs on.
    pub pve_node: Option<String>,
    /// The PVE task id, once known.
    pub upid: Option<String>,
    /// Where the step is.
    pub state: JournalState,
    /// Step parameters and outcome details.
    pub detail: Value,
    /// When the intent was written (store clock).
    pub created_at: DateTime<Utc>,
    /// When the entry last changed (store clock).
    pub updated_at: DateTime<Utc>,
}
