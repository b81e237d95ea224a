//! `planner`: the pure function `plan(desired, observed, taints, budgets, policy, now) -> Plan`.
//! Every action it emits carries its reason.
//!
//! Must not depend on: async, a clock, randomness of its own, the network, the store or the
//! filesystem. It depends on `model` only; purity is enforced by this dependency list.
//!
//! Start with [`plan`]: it takes [`Desired`] (nodes, gold images and budgets), [`Observed`]
//! (one `cluster/resources` read plus config reads of our VMs), [`Records`] (the store's
//! instances, leases, destroys, breaker and in-flight journal), [`Taints`], [`Policy`] and
//! `now`, and returns a [`Plan`]: [`Action`]s with typed [`Reason`]s, [`Hold`]s saying what
//! blocks a wanted action, budget usage and the [`BreakerStatus`]. The ownership marks operator
//! and planner share are here too: [`OperatorId::ownership_tag`], [`format_marker`] /
//! [`parse_marker`] and [`spec_hash`]. The state machine, budget accounting and breaker rules
//! are described in `docs/decisions/0005-planner.md`.
//!
//! # Guarantees
//! - A VM without this operator's ownership tag *and* a marker naming this operator is never
//!   the target of any action (templates never are).
//! - `Destroy` carries the full expected identity (vmid, name, SMBIOS uuid, instance id), taken
//!   from the store's record (or, for an orphan of a deleted node, from its marker).
//! - No action makes a budget exceed `maxUnavailable` (isolating a compromised instance is the
//!   one exception: security before availability). A node that never had a ready instance and
//!   whose instance the operator gave up on ([`GaveUp::never_available`]) is not counted.
//! - An instance the operator gave up on ([`Records::gave_up`]) is destroyed, never promoted
//!   unless ready; the old instance is started again only after that destroy and never when it
//!   is compromised; no new instance of the node starts before the retry time
//!   (`docs/decisions/0014-readiness-give-up.md`).
//! - With the breaker tripped there is no `Destroy` and no replacement start; `Isolate` stays.
//! - An instance marked for `Quarantine` never counts as available; once replaced it is kept
//!   stopped and isolated, and not destroyed before `taint.created_at + retention`
//!   (`docs/decisions/0013-quarantine.md`).
//! - Same input, same plan: the order of input lists does not matter.

mod breaker;
mod capacity;
mod cleanup;
mod config;
mod fasthash;
mod inputs;
mod machine;
mod marker;
mod output;
mod quarantine;
mod reason;
mod render;
mod view;

pub use config::{CloudInitConfig, ManagedConfig, NetConfig, VmConfig, config_hash, spec_hash};
pub use inputs::{
    BreakerPolicy, BreakerRecord, Desired, DesiredNode, GaveUp, InFlight, InFlightKind,
    InstanceRecord, InstanceRole, Observed, ObservedVm, OwnedVmConfig, Policy, PveNodeInfo,
    Records, Taint, TaintSource, Taints, TemplateStatus, Verification, VmStatus, VmidLease,
};
pub use marker::{
    MARKER_PREFIX, MarkerError, OperatorId, OperatorIdError, OwnershipMarker, format_marker,
    parse_marker,
};
pub use output::{
    Action, ActionKind, AdoptedInstance, BreakerState, BreakerStatus, BudgetUsage, CreateInstance,
    ExpectedIdentity, Hold, Plan, TemplateSource, VmRef,
};
pub use reason::{BlockedBy, Reason};

use capacity::Capacity;
use chrono::{DateTime, Utc};
use machine::{Machine, NodeState};
use view::View;

/// Plans the next pass. Pure: the result depends only on the arguments.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    records: &Records,
    taints: &Taints,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Plan {
    let index = View::new(desired, observed, records, &taints.active, policy);
    let (adopted, adopt_actions, adopt_holds) = cleanup::adoptions(&index, records);
    let view = index.with_adopted(&adopted);
    let before = breaker::before(&view, records, &taints.active, policy, now);
    // Only nodes with something to plan (or that take capacity) are kept.
    let states: Vec<NodeState<'_>> = desired
        .nodes
        .iter()
        .enumerate()
        .map(|(i, dn)| NodeState::derive(&view, i, dn))
        .filter(|st| !st.quiet(&view))
        .collect();
    let ordered = planning_order(&states);
    let run = |tripped: Option<String>| {
        let mut cap = Capacity::new(&view, records);
        for &st in &ordered {
            // A node that never had a ready instance and was given up on does not count: it
            // never was part of the serving capacity (decision 0014).
            if !st.available && !view.never_available(st.dn.node.name()) {
                cap.mark_unavailable(&view, st.dn.node.name());
            }
            let has_incoming = st.incoming.is_some()
                || st
                    .gone
                    .iter()
                    .any(|(r, p)| *p && r.role == InstanceRole::Incoming)
                || (st.current.is_some()
                    && view
                        .in_flight_of(st.dn.node.name())
                        .iter()
                        .any(|f| f.kind == InFlightKind::Create));
            if has_incoming {
                cap.replacements += 1;
            }
        }
        let mut m = Machine {
            view: &view,
            cap,
            now,
            breaker: tripped,
            actions: adopt_actions.clone(),
            holds: adopt_holds.clone(),
        };
        for &st in &ordered {
            m.plan_node(st);
        }
        cleanup::plan_deleted(&mut m);
        m
    };
    let mut tripped = before.tripped.clone();
    let mut m = run(tripped.as_ref().map(|(d, _)| d.clone()));
    if tripped.is_none()
        && let Some(detail) = breaker::destroys_exceed(&before, m.cap.destroys, policy)
    {
        tripped = Some((detail.clone(), true));
        m = run(Some(detail));
    }
    let state = match (&tripped, &records.breaker) {
        _ if !policy.breaker.enabled => BreakerState::Disabled,
        (Some((detail, newly)), _) => BreakerState::Tripped {
            detail: detail.clone(),
            newly: *newly,
        },
        (None, BreakerRecord::Released { by, at }) => BreakerState::Released {
            by: by.clone(),
            at: *at,
        },
        (None, _) => BreakerState::Armed,
    };
    Plan {
        planned_at: now,
        breaker: BreakerStatus {
            state,
            destroys_in_window: before.destroys_in_window,
            destroys_planned: m.cap.destroys,
            max_destroys: policy.breaker.max_destroys,
        },
        budgets: m.cap.usage(),
        actions: m.actions,
        holds: m.holds,
    }
}

/// The order nodes are planned in: compromised nodes first (they get caps and budgets first),
/// then by name; nodes of the same name in input order.
fn planning_order<'s, 'a>(states: &'s [NodeState<'a>]) -> Vec<&'s NodeState<'a>> {
    // Sort small keys (a name's first 16 bytes, zero-padded, order like the name itself) instead
    // of the states, and compare whole names only when those bytes are equal.
    let mut keys: Vec<(bool, u128, u32)> = states
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let name = st.dn.node.name().as_str().as_bytes();
            let mut head = [0u8; 16];
            let len = name.len().min(16);
            head[..len].copy_from_slice(&name[..len]);
            let i = u32::try_from(i).expect("fewer than 2^32 declared nodes");
            (!st.compromised, u128::from_be_bytes(head), i)
        })
        .collect();
    keys.sort_by(|a, b| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
            let name = |k: &(bool, u128, u32)| states[k.2 as usize].dn.node.name();
            name(a).cmp(name(b))
        })
    });
    keys.into_iter().map(|k| &states[k.2 as usize]).collect()
}
