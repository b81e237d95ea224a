//! Fault injection: what can go wrong on purpose, and the bookkeeping of active faults.

use serde::{Deserialize, Serialize};

/// One injected fault. Endpoints are keys like `POST /nodes/{node}/qemu/{vmid}/clone`
/// (method + path template, as counted by the request counter) or `*` for every endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer a fraction of requests to `endpoint` with `status` and `message` (JSON
    /// envelope, reason phrase = first line of `message`) instead of handling them.
    ErrorRate {
        /// Endpoint key or `*`.
        endpoint: String,
        /// Probability in `[0, 1]` (decided with the seeded RNG).
        rate: f64,
        /// HTTP status, e.g. 500.
        status: u16,
        /// Error text.
        message: String,
        /// Fire at most this many times (unlimited if absent).
        #[serde(default)]
        count: Option<u32>,
    },
    /// Delay every request to `endpoint` by `millis` before handling it.
    Latency {
        /// Endpoint key or `*`.
        endpoint: String,
        /// Added latency in milliseconds.
        millis: u64,
    },
    /// pveproxy's `596 Connection timed out` for a fraction of requests to `endpoint`,
    /// sent after `after_ms`. With `apply` the request is still carried out (the outcome is
    /// unknown to the client, like the real thing).
    Timeout {
        /// Endpoint key or `*`.
        endpoint: String,
        /// Probability in `[0, 1]`.
        rate: f64,
        /// Delay before the 596 in milliseconds (PVE: 30000).
        #[serde(default)]
        after_ms: u64,
        /// Carry the request out anyway.
        #[serde(default)]
        apply: bool,
        /// Fire at most this many times.
        #[serde(default)]
        count: Option<u32>,
    },
    /// Make worker tasks of `task_type` (`qmclone`, `qmstart`, ...) fail with `message`
    /// after their normal duration (the operation is rolled back).
    TaskFailure {
        /// Task type.
        task_type: String,
        /// Exit status text, e.g. `clone failed: can't lock file ... - got timeout`.
        message: String,
        /// Fail at most this many tasks.
        #[serde(default)]
        count: Option<u32>,
    },
    /// Set config `lock: <lock>` on a VM (as if a backup were running); cleared with the faults.
    HoldLock {
        /// VMID.
        vmid: u32,
        /// Lock reason (`backup`, `migrate`, ...).
        lock: String,
    },
    /// Hold the file lock `/var/lock/qemu-server/lock-<vmid>.conf`: config updates fail with
    /// `can't lock file ... - got timeout`, clones to/from it fail in the task.
    HoldFileLock {
        /// VMID.
        vmid: u32,
    },
    /// The guest agent answers `command` (`ping`, `network-get-interfaces`, … or `*`) with a
    /// QGA error object, which PVE passes through in-band: HTTP 200
    /// `{"data":{"result":{"error":{"class":…,"desc":…}}}}`.
    AgentError {
        /// Only this VM (every VM if absent).
        #[serde(default)]
        vmid: Option<u32>,
        /// QGA command without the `guest-` prefix, or `*`.
        command: String,
        /// QGA error class, e.g. `GenericError`.
        class: String,
        /// Error description.
        desc: String,
        /// Fire at most this many times.
        #[serde(default)]
        count: Option<u32>,
    },
    /// Create a foreign VM with this vmid (a VMID taken behind the operator's back).
    TakeVmid {
        /// Node of the foreign VM.
        node: String,
        /// VMID.
        vmid: u32,
        /// Its name.
        #[serde(default = "default_foreign_name")]
        name: String,
    },
}

fn default_foreign_name() -> String {
    "foreign".into()
}

/// An active fault with its remaining budget.
#[derive(Clone, Debug)]
pub(crate) struct ActiveFault {
    pub fault: Fault,
    pub remaining: Option<u32>,
}

pub(crate) fn endpoint_matches(pattern: &str, endpoint: &str) -> bool {
    pattern == "*" || pattern == endpoint
}

impl ActiveFault {
    pub fn new(fault: Fault) -> Self {
        let remaining = match &fault {
            Fault::ErrorRate { count, .. }
            | Fault::Timeout { count, .. }
            | Fault::TaskFailure { count, .. }
            | Fault::AgentError { count, .. } => *count,
            _ => None,
        };
        Self { fault, remaining }
    }

    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    pub fn consume(&mut self) {
        if let Some(n) = self.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
    }
}
