//! Per-node exponential backoff with jitter, reset on success.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::config::BackoffConfig;

/// The failure count and the earliest next attempt of each node.
#[derive(Debug)]
pub(crate) struct Backoff {
    nodes: HashMap<String, Entry>,
    rng: SmallRng,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            nodes: HashMap::new(),
            rng: SmallRng::from_os_rng(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    not_before: Instant,
}

/// The delay after `failures` consecutive failures: `initial * 2^(failures-1)`, capped, then
/// "equal jitter" (a random point in the upper half) so nodes that failed together spread out.
pub(crate) fn delay(cfg: &BackoffConfig, failures: u32, rng: &mut impl Rng) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = failures.saturating_sub(1).min(20);
    let base = cfg.initial_ms.saturating_mul(1u64 << exp).min(cfg.max_ms);
    let half = base / 2;
    let jitter = if half == 0 {
        0
    } else {
        rng.random_range(0..=half)
    };
    Duration::from_millis(half + jitter)
}

impl Backoff {
    /// Records a failure of `node`; returns the delay before its next attempt.
    pub(crate) fn failed(&mut self, cfg: &BackoffConfig, node: &str) -> Duration {
        let entry = self.nodes.entry(node.to_owned()).or_insert(Entry {
            failures: 0,
            not_before: Instant::now(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let d = delay(cfg, entry.failures, &mut self.rng);
        entry.not_before = Instant::now() + d;
        d
    }

    /// The delay after `failures` failures under `cfg`, jittered with this backoff's RNG.
    pub(crate) fn delay_for(&mut self, cfg: &BackoffConfig, failures: u32) -> Duration {
        delay(cfg, failures, &mut self.rng)
    }

    /// Forgets the failures of `node`.
    pub(crate) fn succeeded(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    /// Whether `node` may act now.
    pub(crate) fn ready(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_none_or(|e| e.not_before <= Instant::now())
    }

    /// Consecutive failures of `node`.
    #[cfg(test)]
    pub(crate) fn failures(&self, node: &str) -> u32 {
        self.nodes.get(node).map_or(0, |e| e.failures)
    }

    /// The earliest time any backed-off node may act again.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.nodes.values().map(|e| e.not_before).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_the_cap_and_stays_in_the_upper_half() {
        let cfg = BackoffConfig {
            initial_ms: 100,
            max_ms: 1_000,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (failures, base) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let d = delay(&cfg, failures, &mut rng).as_millis() as u64;
            assert!(
                d >= base / 2 && d <= base,
                "{failures}: {d} not in [{}, {base}]",
                base / 2
            );
        }
        assert_eq!(delay(&cfg, 0, &mut rng), Duration::ZERO);
    }

    #[test]
    fn success_resets_a_node_without_touching_others() {
        let cfg = BackoffConfig {
            initial_ms: 60_000,
            max_ms: 60_000,
        };
        let mut b = Backoff::default();
        b.failed(&cfg, "a");
        b.failed(&cfg, "b");
        assert!(!b.ready("a"));
        assert_eq!(b.failures("a"), 1);
        b.succeeded("a");
        assert!(b.ready("a"));
        assert!(!b.ready("b"));
        assert_eq!(b.failures("a"), 0);
    }
}
