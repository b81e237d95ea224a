//! Audit windows: the calls a TaintPolicy has counted towards its threshold on one node, kept
//! with the audit cursors so that a restart neither forgets nor re-counts them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The counted calls of one (policy, node) window of one evaluator.
///
/// The store does not interpret `calls` or `fingerprint`: the audit crate writes them and reads
/// them back. Write it with [`Op::SetAuditWindow`](crate::Op::SetAuditWindow) in the same
/// transaction as the cursor(s) of the lines that changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditWindow {
    /// The evaluator the window belongs to (several audit sources may share one).
    pub scope: String,
    /// The TaintPolicy name.
    pub policy: String,
    /// The node the calls are attributed to.
    pub node: String,
    /// Identifies the policy's spec the calls were counted under (a changed spec drops them).
    pub fingerprint: String,
    /// The counted calls, oldest first: a JSON array. An empty array deletes the window.
    pub calls: Value,
    /// When it was last written (store clock; ignored on write).
    pub updated_at: Option<DateTime<Utc>>,
}

impl AuditWindow {
    /// A window to write (`updated_at` is set by the store).
    pub fn new(
        scope: impl Into<String>,
        policy: impl Into<String>,
        node: impl Into<String>,
        fingerprint: impl Into<String>,
        calls: Value,
    ) -> Self {
        Self {
            scope: scope.into(),
            policy: policy.into(),
            node: node.into(),
            fingerprint: fingerprint.into(),
            calls,
            updated_at: None,
        }
    }

    /// Whether writing it deletes the window (no calls left).
    pub fn is_empty(&self) -> bool {
        match &self.calls {
            Value::Array(a) => a.is_empty(),
            Value::Null => true,
            _ => false,
        }
    }
}
