//! The circuit breaker: too many nodes tainted at once, or too many destroys in a window.

use crate::fasthash::FastSet;
use crate::inputs::{BreakerRecord, InstanceRole, Policy, Records, Taint};
use crate::view::View;
use chrono::{DateTime, Utc};
use model::TaintAction;

/// The breaker before this plan's destroys are counted.
pub(crate) struct Before {
    /// `Some(detail)` when tripped; `newly` when this plan trips it.
    pub tripped: Option<(String, bool)>,
    /// Destroys in the window that count.
    pub destroys_in_window: u32,
}

/// Start of counting: the human release, if any.
fn counting_since(records: &Records) -> Option<DateTime<Utc>> {
    match &records.breaker {
        BreakerRecord::Released { at, .. } => Some(*at),
        _ => None,
    }
}

/// Evaluates the recorded state and the taint rule.
pub(crate) fn before(
    view: &View<'_>,
    records: &Records,
    taints: &[Taint],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Before {
    let since = counting_since(records);
    let window = chrono::Duration::seconds(
        i64::try_from(policy.breaker.window.as_secs()).unwrap_or(i64::MAX / 1000),
    );
    let destroys_in_window = records
        .recent_destroys
        .iter()
        .filter(|t| **t > now - window && since.is_none_or(|s| **t >= s))
        .count();
    let destroys_in_window = u32::try_from(destroys_in_window).unwrap_or(u32::MAX);
    if !policy.breaker.enabled {
        return Before {
            tripped: None,
            destroys_in_window,
        };
    }
    if let BreakerRecord::Tripped { reason, .. } = &records.breaker {
        return Before {
            tripped: Some((reason.clone(), false)),
            destroys_in_window,
        };
    }
    let tainted: FastSet<&str> = taints
        .iter()
        .filter(|t| t.action != TaintAction::Report && t.instance_id.is_some())
        .filter(|t| since.is_none_or(|s| t.created_at >= s))
        .filter(|t| !quarantined_and_replaced(t, records))
        .map(|t| t.node.as_str())
        .collect();
    let not_tripped = Before {
        tripped: None,
        destroys_in_window,
    };
    // With no tainted node no group can trip (the count must exceed a share of the total).
    if tainted.is_empty() {
        return not_tripped;
    }
    let desired = view.desired;
    let mut counts = vec![0u64; desired.budgets.len()];
    let mut all = 0u64;
    for dn in &desired.nodes {
        if tainted.contains(dn.node.name().as_str()) {
            all += 1;
            for (count, b) in counts.iter_mut().zip(&desired.budgets) {
                if b.spec.selector.matches(&dn.node.metadata.labels) {
                    *count += 1;
                }
            }
        }
    }
    let budget_groups = desired
        .budgets
        .iter()
        .zip(&view.budget_nodes)
        .zip(counts)
        .map(|((b, &total), count)| (Some(b), u64::from(total), count));
    let all_nodes = u64::try_from(desired.nodes.len()).unwrap_or(u64::MAX);
    let rule = &policy.breaker;
    for (budget, total, count) in budget_groups.chain([(None, all_nodes, all)]) {
        if count >= u64::from(rule.min_tainted)
            && count.saturating_mul(100) > u64::from(rule.max_tainted_percent).saturating_mul(total)
        {
            let group = match budget {
                Some(b) => format!("budget {}", b.name()),
                None => "all nodes".to_string(),
            };
            return Before {
                tripped: Some((format!("{count} of {total} nodes tainted ({group})"), true)),
                destroys_in_window,
            };
        }
    }
    not_tripped
}

/// A `Quarantine` taint on an instance already replaced (retiring): it is kept for the
/// retention by design and no longer serves its node, so the node does not count as tainted
/// for the whole retention (the node was healed).
fn quarantined_and_replaced(t: &Taint, records: &Records) -> bool {
    t.action == TaintAction::Quarantine
        && records.instances.iter().any(|r| {
            r.role == InstanceRole::Retiring
                && r.node == t.node
                && t.instance_id.as_deref() == Some(r.instance_id.as_str())
        })
}

/// The trip detail when this plan's destroys would exceed the window limit.
pub(crate) fn destroys_exceed(before: &Before, planned: u32, policy: &Policy) -> Option<String> {
    let total = before.destroys_in_window.saturating_add(planned);
    (policy.breaker.enabled && total > policy.breaker.max_destroys).then(|| {
        format!(
            "{total} destroys within {} (limit {})",
            policy.breaker.window, policy.breaker.max_destroys
        )
    })
}
