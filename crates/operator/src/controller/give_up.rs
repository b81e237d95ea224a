//! Readiness give-up (decision 0014): failed readiness waits per instance, and per node the
//! new instance reborn gave up on, how many give-ups in a row, and when the next attempt may
//! start. The planner gets these as [`planner::GaveUp`] and plans the destroy, the restart
//! of the old instance and the hold; this module only decides and reports.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use planner::InstanceRole;
use serde_json::json;
use store::EventQuery;
use tokio::time::Instant;

use super::Inner;
use super::inputs;

/// The event kind of a give-up.
pub(crate) const REPLACEMENT_ABANDONED: &str = "ReplacementAbandoned";
/// The event kind of a passed readiness check.
const READY: &str = "Ready";

/// Failed readiness waits of one instance.
#[derive(Debug, Clone)]
pub(crate) struct Failures {
    /// Failed waits so far.
    pub(crate) attempts: u32,
    /// When its first wait began.
    pub(crate) first: Instant,
    /// The last failure.
    pub(crate) last: String,
}

/// The instance reborn gave up on for a node.
#[derive(Debug, Clone)]
pub(crate) struct GiveUp {
    pub(crate) instance_id: String,
    pub(crate) vmid: u32,
    /// Give-ups of the node in a row.
    pub(crate) count: u32,
    /// No new instance before this.
    pub(crate) retry_at: DateTime<Utc>,
    /// The same time on the loop's clock (to wake the loop).
    pub(crate) retry_instant: Instant,
    /// The node never had a ready instance.
    pub(crate) never_available: bool,
    /// The last readiness failure.
    pub(crate) detail: String,
}

impl GiveUp {
    /// What status and `describe` show.
    pub(crate) fn message(&self) -> String {
        format!(
            "gave up on VM {} (instance {}): never ready: {}; give-up {} in a row, next try after {}",
            self.vmid,
            self.instance_id,
            self.detail,
            self.count,
            self.retry_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// What status adds to "not ready" for an instance with failed readiness waits.
pub(crate) fn not_ready_note(state: &super::State, instance_id: &str) -> String {
    state
        .readiness_failures
        .get(instance_id)
        .map(|f| format!(" ({} failed readiness waits; last: {})", f.attempts, f.last))
        .unwrap_or_default()
}

impl Inner {
    /// The give-ups as the planner's input.
    pub(crate) fn gave_up_inputs(&self) -> Vec<planner::GaveUp> {
        let s = self.lock();
        let mut out: Vec<planner::GaveUp> = s
            .gave_up
            .iter()
            .filter_map(|(node, g)| {
                Some(planner::GaveUp {
                    node: node.parse().ok()?,
                    instance_id: g.instance_id.clone(),
                    vmid: model::VmId::new(g.vmid)?,
                    count: g.count,
                    retry_at: g.retry_at,
                    never_available: g.never_available,
                    detail: g.detail.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        out
    }

    /// Forgets readiness failures of instances no longer recorded, and give-ups of nodes no
    /// longer declared.
    pub(crate) fn prune_give_ups(&self, records: &planner::Records, desired: &planner::Desired) {
        let mut s = self.lock();
        if s.readiness_failures.is_empty() && s.gave_up.is_empty() {
            return;
        }
        let ids: HashSet<&str> = records
            .instances
            .iter()
            .map(|r| r.instance_id.as_str())
            .collect();
        s.readiness_failures
            .retain(|id, _| ids.contains(id.as_str()));
        let nodes: HashSet<&str> = desired
            .nodes
            .iter()
            .map(|d| d.node.name().as_str())
            .collect();
        s.gave_up.retain(|node, _| nodes.contains(node.as_str()));
    }

    /// The earliest retry time still ahead (the loop wakes for it).
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.lock()
            .gave_up
            .values()
            .map(|g| g.retry_instant)
            .filter(|t| *t > now)
            .min()
    }

    /// Whether a `Ready` event was ever recorded for the node (for `instance_id`, if given).
    fn was_ready(&self, node: &str, instance_id: Option<&str>) -> bool {
        let q = EventQuery {
            node: Some(node.to_owned()),
            kind: Some(READY.to_owned()),
            ..EventQuery::default()
        };
        match self.store.events(&q) {
            Ok(events) => events
                .iter()
                .any(|e| instance_id.is_none_or(|id| e.data["instance"].as_str() == Some(id))),
            // Unknown: treat as ready before (never give up on an instance that may have served).
            Err(_) => true,
        }
    }

    /// Books a passed readiness check. A new instance of a node reborn gave up on before (not
    /// the old instance started again) ends the give-ups in a row. Call before its `Ready`
    /// event is appended.
    pub(crate) fn readiness_passed(&self, node: &str, instance_id: &str) {
        let given_up_node = {
            let mut s = self.lock();
            s.readiness_failures.remove(instance_id);
            s.gave_up.contains_key(node)
        };
        if given_up_node && !self.was_ready(node, Some(instance_id)) {
            self.lock().gave_up.remove(node);
        }
    }

    /// Books a failed readiness wait of `instance_id` that took `waited`; gives up on the
    /// instance when the bound is reached and it is a new one (the node's incoming instance,
    /// or a current one that never was ready), and reports it.
    pub(crate) fn readiness_failed(
        &self,
        node: &str,
        instance_id: &str,
        vmid: u32,
        detail: &str,
        waited: Duration,
    ) {
        let rc = &self.config.readiness;
        let (attempts, elapsed) = {
            let mut s = self.lock();
            let f = s
                .readiness_failures
                .entry(instance_id.to_owned())
                .or_insert_with(|| Failures {
                    attempts: 0,
                    first: Instant::now()
                        .checked_sub(waited)
                        .unwrap_or_else(Instant::now),
                    last: String::new(),
                });
            f.attempts = f.attempts.saturating_add(1);
            f.last = detail.to_owned();
            (f.attempts, f.first.elapsed())
        };
        let by_attempts = rc.max_attempts > 0 && attempts >= rc.max_attempts;
        let by_deadline = rc
            .give_up_after_ms
            .is_some_and(|ms| elapsed >= Duration::from_millis(ms));
        if !(by_attempts || by_deadline) {
            return;
        }
        let role = match self.store.instances(Some(node)) {
            Ok(stored) => inputs::roles(&stored)
                .into_iter()
                .find(|(_, r)| r.instance_id == instance_id)
                .map(|(role, _)| role),
            Err(e) => {
                tracing::warn!(node, error = %e, "instance records unreadable; not giving up yet");
                return;
            }
        };
        let new_instance = match role {
            Some(InstanceRole::Incoming) => true,
            Some(InstanceRole::Current) => !self.was_ready(node, Some(instance_id)),
            _ => false,
        };
        if !new_instance {
            return;
        }
        let never_available = role == Some(InstanceRole::Current) && !self.was_ready(node, None);
        let (count, delay, retry_at) = {
            let mut s = self.lock();
            let count = s.gave_up.get(node).map_or(0, |g| g.count).saturating_add(1);
            let delay = s.backoff.delay_for(&rc.give_up_backoff, count);
            let retry_at =
                Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            s.gave_up.insert(
                node.to_owned(),
                GiveUp {
                    instance_id: instance_id.to_owned(),
                    vmid,
                    count,
                    retry_at,
                    retry_instant: Instant::now() + delay,
                    never_available,
                    detail: detail.to_owned(),
                },
            );
            s.readiness_failures.remove(instance_id);
            // The destroy and the old instance's start run at the next pass, not after the
            // readiness backoff; the next attempt waits for `retry_at` instead.
            s.backoff.succeeded(node);
            (count, delay, retry_at)
        };
        let why = if by_attempts {
            format!("{attempts} failed readiness waits")
        } else {
            format!("{}s since its first readiness wait", elapsed.as_secs())
        };
        let what = if role == Some(InstanceRole::Incoming) {
            "it is destroyed and the old instance serves again unless it is compromised"
        } else {
            "it is destroyed and the node is cloned again"
        };
        tracing::warn!(node, vmid, instance_id, %why, detail, "gave up on a new instance");
        if let Some(m) = self.metrics.get() {
            m.readiness_give_up();
        }
        self.emit(crate::executor::event_now(
            node,
            REPLACEMENT_ABANDONED,
            format!(
                "gave up on new VM {vmid} (instance {instance_id}) after {why}: {detail}; {what}; next try in {}s (give-up {count} in a row)",
                delay.as_secs()
            ),
            json!({"vmid": vmid, "instance": instance_id, "attempts": attempts,
                   "lastFailure": detail, "count": count, "retryAt": retry_at,
                   "role": role.map(|r| r.to_string()), "neverAvailable": never_available}),
        ));
    }
}
