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
    /// How long after reborn changed a VM its power state and name are read from
    /// `status/current` rather than trusted from `cluster/resources`, which shows what
    /// pvestatd sampled up to 10 s ago (default 15 s; 0 when the listing is never stale, as
    /// with the simulator's `--fast`). A steady state makes one request per pass only once
    /// this long has passed since the last change.
    pub listing_lag_ms: u64,
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
            listing_lag_ms: 15_000,
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
                give_up_backoff: BackoffConfig {
                    initial_ms: 10,
                    max_ms: 200,
                },
                ..ReadinessConfig::default()
            },
            backoff: BackoffConfig {
                initial_ms: 10,
                max_ms: 200,
            },
            intent_grace_ms: 1_000,
            listing_lag_ms: 0,
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

/// How readiness is polled, and when reborn gives up on a new instance that never becomes
/// ready (decision 0014).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Interval between probes (default 2 s).
    pub poll_ms: u64,
    /// Timeout of one TCP connect attempt (default 2 s).
    pub tcp_connect_ms: u64,
    /// Overrides every node's `readiness.timeout` when set (tests, the demo).
    pub default_timeout_ms: Option<u64>,
    /// Failed readiness waits (each bounded by the node's `readiness.timeout`, retried with
    /// the per-node backoff) after which reborn gives up on a new instance: destroys it and
    /// lets the old instance serve again where that is safe (default 3; 0: never give up, the
    /// replacement is held until a person looks).
    pub max_attempts: u32,
    /// Also give up once this long has passed since the instance's first readiness wait
    /// began, whatever the attempts (default: no deadline).
    pub give_up_after_ms: Option<u64>,
    /// The delay before the next attempt (replacement, or create of a new node) after a
    /// give-up, doubling with each give-up of the node in a row (default 1 min → 30 min).
    pub give_up_backoff: BackoffConfig,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            poll_ms: 2_000,
            tcp_connect_ms: 2_000,
            default_timeout_ms: None,
            max_attempts: 3,
            give_up_after_ms: None,
            give_up_backoff: BackoffConfig {
                initial_ms: 60_000,
                max_ms: 30 * 60_000,
            },
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
    fn example_daemon_config_spells_out_the_readiness_defaults() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reborn.yaml");
        let text = std::fs::read_to_string(path).expect("examples/reborn.yaml");
        let daemon: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid yaml");
        let cfg: ControllerConfig =
            serde_yaml::from_value(daemon["controller"].clone()).expect("valid controller");
        assert_eq!(cfg.readiness, ReadinessConfig::default());
        assert_eq!(cfg.readiness.max_attempts, 3);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<ControllerConfig>(r#"{"resyncSecs": 3}"#).is_err());
    }
}
