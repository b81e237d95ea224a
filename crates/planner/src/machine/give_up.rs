//! Readiness give-up (see `docs/decisions/0014-readiness-give-up.md`): the operator gave up
//! waiting for a node's new instance. Destroy that instance (identity-proven, like any
//! destroy), let the old instance serve again where that is safe, and start no new instance
//! before the retry time.

use super::{Machine, NodeState, vm_ref};
use crate::inputs::{GaveUp, VmStatus};
use crate::output::ActionKind;
use crate::reason::{BlockedBy, Reason};
use crate::view::{Live, compromising};
use model::{NodeName, TaintAction};

/// Why the abandoned instance is destroyed and the old one started again.
fn abandoned(g: &GaveUp) -> Reason {
    Reason::ReadinessAbandoned {
        instance_id: g.instance_id.clone(),
        vmid: g.vmid,
        count: g.count,
        detail: g.detail.clone(),
    }
}

impl<'a> Machine<'_, 'a> {
    /// Plans a node while the instance the operator gave up on still exists: destroys it and,
    /// when it was the incoming one, starts the old instance again (after the destroy: a
    /// `StopFirst` pair shares its address). `false`: the instance is gone (or became ready
    /// after all), and the node is planned as usual, new instances gated by
    /// [`Machine::retry_pending`].
    pub(super) fn plan_gave_up(&mut self, st: &NodeState<'a>, g: &GaveUp) -> bool {
        let name = st.dn.node.name();
        let incoming = st.incoming.filter(|i| i.rec.instance_id == g.instance_id);
        let current = st
            .current
            .filter(|c| c.rec.instance_id == g.instance_id && st.incoming.is_none());
        let Some(target) = incoming.or(current) else {
            return false;
        };
        if target.ready() {
            return false;
        }
        // A first instance that is compromised is handled by the usual rules (isolated, kept
        // or replaced per its taint), not destroyed as merely never ready.
        if current.is_some() && (st.compromised || target.cfg.isolated) {
            return false;
        }
        let before = self.actions.len();
        self.destroy_recorded(name, target, abandoned(g));
        let destroyed = self.actions.len() > before;
        if let (Some(_), Some(cur), true) = (incoming, st.current, destroyed) {
            self.restore(st, cur, g);
        }
        true
    }

    /// The give-up whose retry time has not come yet: no new instance of `name` starts.
    pub(super) fn retry_pending(&self, name: &NodeName) -> Option<&'a GaveUp> {
        self.view.gave_up_of(name).filter(|g| self.now < g.retry_at)
    }

    /// Holds a wanted replacement of `cur` until the retry time; meanwhile the old instance
    /// serves again if it is stopped and may be started.
    pub(super) fn wait_for_retry(
        &mut self,
        st: &NodeState<'a>,
        cur: Live<'a>,
        g: &GaveUp,
        reason: Reason,
    ) {
        self.restore(st, cur, g);
        self.hold(st.dn.node.name(), "replace", retry_block(g), reason);
    }

    /// Starts the old instance again when it is stopped and may serve: never a compromised
    /// or quarantined one (it stays stopped and isolated, and the node stays unavailable).
    fn restore(&mut self, st: &NodeState<'a>, cur: Live<'a>, g: &GaveUp) {
        if cur.vm.status != VmStatus::Stopped {
            return;
        }
        let name = st.dn.node.name();
        let reason = abandoned(g);
        let unsafe_taint = self
            .view
            .taints_of(name, &cur.rec.instance_id)
            .iter()
            .any(|t| {
                compromising(t) || !matches!(t.action, TaintAction::Replace | TaintAction::Report)
            });
        if st.compromised || cur.cfg.isolated || unsafe_taint {
            let blocked = BlockedBy::Compromised { vmid: cur.rec.vmid };
            self.hold(name, "start", blocked, reason);
            return;
        }
        match &cur.vm.lock {
            Some(lock) => {
                let blocked = BlockedBy::Locked {
                    vmid: cur.rec.vmid,
                    lock: lock.clone(),
                };
                self.hold(name, "start", blocked, reason);
            }
            None => self.act(name, ActionKind::Start(vm_ref(&cur)), reason),
        }
    }
}

/// The hold of a new instance while the retry after a give-up is pending.
pub(super) fn retry_block(g: &GaveUp) -> BlockedBy {
    BlockedBy::RetryBackoff {
        count: g.count,
        until: g.retry_at,
    }
}
