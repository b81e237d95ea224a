//! The circuit breaker: too many nodes tainted at once, or too many destroys in a window.

use crate::inputs::{BreakerRecord, Desired, Policy, Records, Taint};
use chrono::{DateTime, Utc};
use model::TaintAction;
use std::collections::HashSet;

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
    desired: &Desired,
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
    let tainted: HashSet<&str> = taints
        .iter()
        .filter(|t| t.action != TaintAction::Report && t.instance_id.is_some())
        .filter(|t| since.is_none_or(|s| t.created_at >= s))
        .map(|t| t.node.as_str())
        .collect();
    let mut groups: Vec<(String, Vec<&str>)> = desired
        .budgets
        .iter()
        .map(|b| {
            let nodes = desired
                .nodes
                .iter()
                .filter(|n| b.spec.selector.matches(&n.node.metadata.labels))
                .map(|n| n.node.name().as_str())
                .collect();
            (format!("budget {}", b.name()), nodes)
        })
        .collect();
    groups.push((
        "all nodes".to_string(),
        desired
            .nodes
            .iter()
            .map(|n| n.node.name().as_str())
            .collect(),
    ));
    let rule = &policy.breaker;
    for (group, nodes) in groups {
        let total = u64::try_from(nodes.len()).unwrap_or(u64::MAX);
        let count = nodes.iter().filter(|n| tainted.contains(*n)).count();
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        if count >= u64::from(rule.min_tainted)
            && count.saturating_mul(100) > u64::from(rule.max_tainted_percent).saturating_mul(total)
        {
            return Before {
                tripped: Some((format!("{count} of {total} nodes tainted ({group})"), true)),
                destroys_in_window,
            };
        }
    }
    Before {
        tripped: None,
        destroys_in_window,
    }
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
