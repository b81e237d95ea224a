//! `ControllerConfig`: the controller's settings, embedded in the daemon's config file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The controller's settings. Every field has a default (`#[serde(default)]`), so an empty
/// `controller:` section is valid. Durations are whole milliseconds so tests can use zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerConfig {
    /// This operator instance's id: names the ownership tag `reborn-<id>` and is written into
    /// every VM's description marker. Two operators sharing a cluster need different ids.
    pub operator_id: String,
    /// Resync period: a pass runs at least this often even without a trigger (default 30 s).
    pub resync_ms: u64,
    /// Actions running at once across all nodes (default 4).
    pub max_concurrent_actions: usize,
    /// Global cap of replacements in flight, passed to the planner (default 2).
    pub max_replacements_in_flight: u32,
    /// Clones at once per PVE node (default 2).
    pub clones_per_pve_node: u32,
    /// Clones at once per target storage (default 4).
    pub clones_per_storage: u32,
    /// Circuit breaker thresholds.
    pub breaker: BreakerConfig,
    /// Bounded waits on PVE tasks.
    pub tasks: TaskTimeouts,
    /// Readiness polling.
    pub readiness: ReadinessConfig,
    /// Per-node backoff after a failed action.
    pub backoff: BackoffConfig,
    /// How long an interrupted create whose VM is not (yet) visible stays in flight before it
    /// is abandoned: a request cut by a crash or a 596 may still reach PVE (default 60 s,
    /// twice pveproxy's 30 s proxy timeout).
    pub intent_grace_ms: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            operator_id: "default".to_owned(),
            resync_ms: 30_000,
            max_concurrent_actions: 4,
            max_replacements_in_flight: 2,
            clones_per_pve_node: 2,
            clones_per_storage: 4,
            breaker: BreakerConfig::default(),
            tasks: TaskTimeouts::default(),
            readiness: ReadinessConfig::default(),
            backoff: BackoffConfig::default(),
            intent_grace_ms: 60_000,
        }
    }
}

impl ControllerConfig {
    /// A config for tests and the demo: every wait and interval zero or tiny, the given id.
    pub fn fast(operator_id: &str) -> Self {
        Self {
            operator_id: operator_id.to_owned(),
            resync_ms: 200,
            tasks: TaskTimeouts {
                clone_ms: 10_000,
                power_ms: 10_000,
                destroy_ms: 10_000,
                config_ms: 10_000,
            },
            readiness: ReadinessConfig {
                poll_ms: 10,
                tcp_connect_ms: 200,
                default_timeout_ms: None,
            },
            backoff: BackoffConfig {
                initial_ms: 10,
                max_ms: 200,
            },
            intent_grace_ms: 1_000,
            ..Self::default()
        }
    }

    /// The resync period.
    pub fn resync(&self) -> Duration {
        Duration::from_millis(self.resync_ms)
    }
}

/// Breaker thresholds (see the planner's breaker rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakerConfig {
    /// On by default.
    pub enabled: bool,
    /// Trip when more than this percentage of a budget's nodes are tainted at once (default 50).
    pub max_tainted_percent: u32,
    /// ... and at least this many are tainted (default 2).
    pub min_tainted: u32,
    /// Trip when more than this many automatic destroys fall in the window (default 3).
    pub max_destroys: u32,
    /// The destroy window in seconds (default 600).
    pub window_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_tainted_percent: 50,
            min_tainted: 2,
            max_destroys: 3,
            window_secs: 600,
        }
    }
}

/// Upper bounds on waiting for PVE tasks. A task still running at its bound is not retried:
/// its journal entry stays in flight and the next pass re-reads the VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskTimeouts {
    /// Clone (default 30 min: full clones of large disks are slow).
    pub clone_ms: u64,
    /// Start / stop (default 5 min).
    pub power_ms: u64,
    /// Destroy (default 10 min).
    pub destroy_ms: u64,
    /// Asynchronous config updates (default 2 min).
    pub config_ms: u64,
}

impl Default for TaskTimeouts {
    fn default() -> Self {
        Self {
            clone_ms: 30 * 60_000,
            power_ms: 5 * 60_000,
            destroy_ms: 10 * 60_000,
            config_ms: 2 * 60_000,
        }
    }
}

/// How readiness is polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Interval between probes (default 2 s).
    pub poll_ms: u64,
    /// Timeout of one TCP connect attempt (default 2 s).
    pub tcp_connect_ms: u64,
    /// Overrides every node's `readiness.timeout` when set (tests, the demo).
    pub default_timeout_ms: Option<u64>,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            poll_ms: 2_000,
            tcp_connect_ms: 2_000,
            default_timeout_ms: None,
        }
    }
}

/// Per-node exponential backoff with jitter, reset on success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay after a failure (default 5 s).
    pub initial_ms: u64,
    /// Cap (default 5 min).
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_ms: 5_000,
            max_ms: 300_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_defaults() {
        let cfg: ControllerConfig = serde_json::from_str("{}").expect("valid");
        assert_eq!(cfg, ControllerConfig::default());
        assert_eq!(cfg.resync(), Duration::from_secs(30));
        assert!(cfg.breaker.enabled);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<ControllerConfig>(r#"{"resyncSecs": 3}"#).is_err());
    }
}
