//! Quarantine: a replaced instance whose taint says `Quarantine` is kept stopped and isolated
//! until the retention has passed since the taint was raised, then destroyed like any retiring
//! instance (identity-proven, breaker-checked).

use crate::inputs::{InFlightKind, VmStatus};
use crate::output::{ActionKind, VmRef};
use crate::reason::{BlockedBy, Reason};
use crate::view::{Live, View};
use chrono::{DateTime, Utc};
use model::{NodeName, TaintAction};

use crate::machine::Machine;

/// When the quarantine of an instance ends, and the taint that asks for it: the latest end
/// among its active `Quarantine` taints (`created_at + retention`; no retention: at once).
pub(crate) fn until(
    view: &View<'_>,
    node: &NodeName,
    instance_id: &str,
) -> Option<(DateTime<Utc>, i64)> {
    view.taints_of(node, instance_id)
        .into_iter()
        .filter(|t| t.action == TaintAction::Quarantine)
        .map(|t| {
            let secs = t
                .quarantine_retention
                .map_or(0, |r| i64::try_from(r.as_secs()).unwrap_or(i64::MAX / 1000));
            let end = t
                .created_at
                .checked_add_signed(chrono::Duration::seconds(secs))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            (end, t.id)
        })
        .max()
}

/// Whether a live instance serves its node: ready (running, readiness passed, not isolated)
/// and not marked for quarantine (a quarantined instance never counts as available).
pub(crate) fn serving(view: &View<'_>, node: &NodeName, l: &Live<'_>) -> bool {
    l.ready()
        && !view
            .taints_of(node, &l.rec.instance_id)
            .iter()
            .any(|t| t.action == TaintAction::Quarantine)
}

fn vm_ref(l: &Live<'_>) -> VmRef {
    VmRef {
        vmid: l.rec.vmid,
        pve_node: l.vm.pve_node.clone(),
        instance_id: l.rec.instance_id.clone(),
    }
}

impl Machine<'_, '_> {
    /// A superseded instance: destroyed, unless it is quarantined. A quarantined one is
    /// isolated and stopped if it is not (no budget: it no longer serves), and its destroy is
    /// held until the quarantine ends.
    pub(crate) fn retire(&mut self, node: &NodeName, l: Live<'_>) {
        let superseded = Reason::Superseded {
            instance_id: l.rec.instance_id.clone(),
        };
        match until(self.view, node, &l.rec.instance_id) {
            Some((end, taint)) if end > self.now => {
                self.keep_quarantined(node, l, end, taint);
                let blocked = BlockedBy::Quarantined {
                    vmid: l.rec.vmid,
                    taint,
                    until: end,
                };
                self.hold(node, "destroy", blocked, superseded);
            }
            _ => self.destroy_recorded(node, l, superseded),
        }
    }

    /// Isolates and stops a quarantined instance that is not both already.
    pub(crate) fn keep_quarantined(
        &mut self,
        node: &NodeName,
        l: Live<'_>,
        until: DateTime<Utc>,
        taint: i64,
    ) {
        let reason = Reason::Quarantined {
            instance_id: l.rec.instance_id.clone(),
            taint,
            until,
        };
        let wants_isolate = !l.cfg.isolated;
        let wants_stop = l.vm.status == VmStatus::Running;
        if !wants_isolate && !wants_stop {
            return;
        }
        let running = |kind: InFlightKind| {
            self.view
                .in_flight_of(node)
                .iter()
                .any(|f| f.kind == kind && f.vmid == Some(l.rec.vmid))
        };
        if let Some(lock) = &l.vm.lock {
            let blocked = BlockedBy::Locked {
                vmid: l.rec.vmid,
                lock: lock.clone(),
            };
            let wanted = if wants_isolate { "isolate" } else { "stop" };
            self.hold(node, wanted, blocked, reason);
            return;
        }
        if l.vm.status == VmStatus::Unknown {
            let blocked = BlockedBy::StatusUnknown { vmid: l.rec.vmid };
            self.hold(node, "isolate", blocked, reason);
            return;
        }
        if wants_isolate && !running(InFlightKind::Isolate) {
            self.act(node, ActionKind::Isolate(vm_ref(&l)), reason.clone());
        }
        if wants_stop && !running(InFlightKind::Stop) {
            // No stop while the breaker is tripped (isolation, above, goes on).
            match &self.breaker {
                Some(detail) => {
                    let blocked = BlockedBy::Breaker {
                        detail: detail.clone(),
                    };
                    self.hold(node, "stop", blocked, reason);
                }
                None => self.act(node, ActionKind::Stop(vm_ref(&l)), reason),
            }
        }
    }
}
