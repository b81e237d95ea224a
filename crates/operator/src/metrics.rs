//! Prometheus metrics (text format at `/metrics`): one [`Metrics`] shared by the controller,
//! executor, audit ingestion and API.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use store::TaintSource;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kind: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    pass_duration: Histogram,
    actions: Family<ActionLabels, Counter>,
    recovery: Histogram,
    pve_latency: HistogramFamily<EndpointLabels>,
    pve_errors: Family<EndpointLabels, Counter>,
    taints: Family<SourceLabels, Counter>,
    breaker_tripped: Gauge,
    audit_read: Counter,
    audit_rejected: Counter,
    give_ups: Counter,
}

/// The operator's metrics. Cheap to clone (an `Arc` inside); every method is thread-safe and
/// never blocks on I/O.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn pve_histogram() -> Histogram {
    // 5 ms .. ~20 s
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Metrics {
    /// Fresh metrics, all at zero, registered under the `reborn_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("reborn");
        // 1 ms .. ~16 s
        let pass_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        // 5 s .. ~1.4 h
        let recovery = Histogram::new(exponential_buckets(5.0, 2.0, 11));
        let actions = Family::<ActionLabels, Counter>::default();
        let pve_latency: HistogramFamily<EndpointLabels> =
            Family::new_with_constructor(pve_histogram as fn() -> Histogram);
        let pve_errors = Family::<EndpointLabels, Counter>::default();
        let taints = Family::<SourceLabels, Counter>::default();
        let breaker_tripped = Gauge::default();
        let audit_read = Counter::default();
        let audit_rejected = Counter::default();
        let give_ups = Counter::default();
        registry.register(
            "pass_duration_seconds",
            "Duration of one reconcile pass (observe, plan, execute)",
            pass_duration.clone(),
        );
        registry.register(
            "actions",
            "Executed plan actions by kind and result",
            actions.clone(),
        );
        registry.register(
            "recovery_seconds",
            "Time from a taint to its replacement instance being Ready",
            recovery.clone(),
        );
        registry.register(
            "pve_request_duration_seconds",
            "Latency of PVE API requests by endpoint",
            pve_latency.clone(),
        );
        registry.register(
            "pve_request_errors",
            "Failed PVE API requests by endpoint",
            pve_errors.clone(),
        );
        registry.register("taints", "Taints added, by source", taints.clone());
        registry.register(
            "breaker_tripped",
            "1 while the circuit breaker holds automatic destruction, else 0",
            breaker_tripped.clone(),
        );
        registry.register(
            "audit_lines_read",
            "Cerbos audit-log lines read",
            audit_read.clone(),
        );
        registry.register(
            "audit_lines_rejected",
            "Cerbos audit-log lines that could not be decoded",
            audit_rejected.clone(),
        );
        registry.register(
            "readiness_give_ups",
            "New instances given up on because they never became ready (decision 0014)",
            give_ups.clone(),
        );
        for source in TaintSource::ALL {
            // Every source appears (at 0) from the start, so rate() works on the first taint.
            let _ = taints.get_or_create(&SourceLabels {
                source: source.as_str().to_owned(),
            });
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                pass_duration,
                actions,
                recovery,
                pve_latency,
                pve_errors,
                taints,
                breaker_tripped,
                audit_read,
                audit_rejected,
                give_ups,
            }),
        }
    }

    /// One reconcile pass finished after `duration`.
    pub fn observe_pass(&self, duration: Duration) {
        self.inner.pass_duration.observe(duration.as_secs_f64());
    }

    /// One plan action was executed: `kind` e.g. `clone`, `destroy`; `result` e.g. `ok`,
    /// `error`, `held`.
    pub fn action(&self, kind: &str, result: &str) {
        self.inner
            .actions
            .get_or_create(&ActionLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// A replacement became Ready `seconds` after the taint that caused it.
    pub fn recovery(&self, seconds: f64) {
        self.inner.recovery.observe(seconds);
    }

    /// One PVE request to `endpoint` (a route template such as `nodes/{node}/qemu/{vmid}/clone`,
    /// never a concrete id, to keep the label set small) took `duration`; `ok` false counts an
    /// error.
    pub fn pve_request(&self, endpoint: &str, duration: Duration, ok: bool) {
        let labels = EndpointLabels {
            endpoint: endpoint.to_owned(),
        };
        self.inner
            .pve_latency
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        if !ok {
            self.inner.pve_errors.get_or_create(&labels).inc();
        }
    }

    /// A taint was added from `source`.
    pub fn taint(&self, source: TaintSource) {
        self.inner
            .taints
            .get_or_create(&SourceLabels {
                source: source.as_str().to_owned(),
            })
            .inc();
    }

    /// The breaker's state changed (or was re-read).
    pub fn breaker(&self, tripped: bool) {
        self.inner.breaker_tripped.set(i64::from(tripped));
    }

    /// Audit ingestion read `read` lines, of which `rejected` could not be decoded.
    pub fn audit_lines(&self, read: u64, rejected: u64) {
        self.inner.audit_read.inc_by(read);
        self.inner.audit_rejected.inc_by(rejected);
    }

    /// reborn gave up on a new instance that never became ready.
    pub fn readiness_give_up(&self) {
        self.inner.give_ups.inc();
    }

    /// Everything in the OpenMetrics text format (which Prometheus reads), ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoding error would be a bug in the metric types.
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let m = Metrics::new();
        m.action("destroy", "ok");
        m.action("destroy", "ok");
        m.taint(TaintSource::Cerbos);
        m.breaker(true);
        m.pve_request("cluster/resources", Duration::from_millis(12), false);
        m.audit_lines(10, 2);
        m.readiness_give_up();
        let text = m.render();
        assert!(
            text.contains(r#"reborn_actions_total{kind="destroy",result="ok"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"reborn_taints_total{source="cerbos"} 1"#));
        assert!(text.contains(r#"reborn_taints_total{source="cli"} 0"#));
        assert!(text.contains("reborn_breaker_tripped 1"));
        assert!(
            text.contains(r#"reborn_pve_request_errors_total{endpoint="cluster/resources"} 1"#)
        );
        assert!(text.contains("reborn_audit_lines_read_total 10"));
        assert!(text.contains("reborn_audit_lines_rejected_total 2"));
        assert!(text.contains("reborn_readiness_give_ups_total 1"));
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
