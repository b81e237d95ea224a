//! Taints: marks on one VM instance of a node, kept in history after they are cleared.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a taint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaintSource {
    /// `reborn taint` by a human.
    Cli,
    /// Derived from Cerbos decision logs by a TaintPolicy.
    Cerbos,
    /// Posted by external monitoring (e.g. Zabbix) to the webhook.
    Webhook,
    /// The live VM config drifted from the declared spec.
    Drift,
    /// A health or readiness check failed.
    Health,
}

impl TaintSource {
    /// Every source, in declaration order.
    pub const ALL: [TaintSource; 5] = [
        TaintSource::Cli,
        TaintSource::Cerbos,
        TaintSource::Webhook,
        TaintSource::Drift,
        TaintSource::Health,
    ];

    /// The lowercase name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintSource::Cli => "cli",
            TaintSource::Cerbos => "cerbos",
            TaintSource::Webhook => "webhook",
            TaintSource::Drift => "drift",
            TaintSource::Health => "health",
        }
    }
}

impl fmt::Display for TaintSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaintSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaintSource::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown taint source {s:?}"))
    }
}

/// How serious a taint is; the policy decides what each level triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording, no action by itself.
    Info,
    /// Replace when the budget allows.
    Warning,
    /// Treat the instance as compromised: isolate at once and replace.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// The lowercase name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown severity {s:?}"))
    }
}

/// A taint to add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTaint {
    /// The node (logical name) the taint is on.
    pub node: String,
    /// The VM instance it marks. `None`: the node's current instance record at commit time
    /// (and no instance if the node has none yet).
    pub instance_id: Option<String>,
    /// What is wrong, e.g. `compromised` or `drift/cores`.
    pub key: String,
    /// Where it came from.
    pub source: TaintSource,
    /// How serious it is.
    pub severity: Severity,
    /// Human-readable reason.
    pub reason: String,
    /// Machine-readable evidence, e.g. Cerbos callIds and the matched rule.
    pub evidence: Value,
    /// When the taint was raised.
    pub created_at: DateTime<Utc>,
    /// Who raised it (user, policy name, webhook client).
    pub created_by: String,
    /// When it stops counting; `None` means until cleared.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored taint, active or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Taint {
    /// Store-assigned id.
    pub id: i64,
    /// The node the taint is on.
    pub node: String,
    /// The VM instance it marks, if the node had one.
    pub instance_id: Option<String>,
    /// What is wrong.
    pub key: String,
    /// Where it came from.
    pub source: TaintSource,
    /// How serious it is.
    pub severity: Severity,
    /// Human-readable reason.
    pub reason: String,
    /// Machine-readable evidence.
    pub evidence: Value,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
    /// Who raised it.
    pub created_by: String,
    /// When it stops counting.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was cleared (store clock), if it was.
    pub cleared_at: Option<DateTime<Utc>>,
    /// Who cleared it, if it was.
    pub cleared_by: Option<String>,
}

impl Taint {
    /// Whether the taint counts at `now`: not cleared and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.cleared_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}
