//! Node status: conditions (Ready, Tainted, Drifted, Replacing, Held), observedGeneration, the
//! instance, written to the store only when it changed.

use std::collections::{BTreeMap, HashMap, HashSet};

use planner::{BlockedBy, Desired, InstanceRole, Observed, Plan, Reason, Records, VmStatus};
use serde_json::{Value, json};
use store::{Expect, ResourceKey};

use super::Inner;
use super::inputs::NODE_KIND;

fn condition(kind: &str, on: bool, reason: &str, message: String) -> Value {
    json!({"type": kind, "status": if on { "True" } else { "False" }, "reason": reason, "message": message})
}

/// Writes every declared node's status (skipping unchanged ones).
pub(crate) fn write_all(
    inner: &Inner,
    desired: &Desired,
    stored: &super::inputs::StoredStatuses,
    records: &Records,
    observed: &Observed,
    plan: &Plan,
) {
    // Indexes: one pass over 10,000 nodes must stay linear.
    let mut by_role: BTreeMap<(&str, InstanceRole), &planner::InstanceRecord> = BTreeMap::new();
    for r in &records.instances {
        by_role.entry((r.node.as_str(), r.role)).or_insert(r);
    }
    let vms: HashMap<model::VmId, &planner::ObservedVm> =
        observed.vms.iter().map(|v| (v.vmid, v)).collect();
    let mut planned: HashSet<&str> = HashSet::new();
    for a in &plan.actions {
        planned.insert(a.node.as_str());
    }
    for h in &plan.holds {
        planned.insert(h.node.as_str());
    }
    let state = inner.lock();
    let mut writes = Vec::new();
    // `Quarantined` events for instances newly kept in quarantine, committed with the status.
    let mut events: Vec<store::NewEvent> = Vec::new();
    for dn in &desired.nodes {
        let name = dn.node.name().as_str();
        let mine = |n: &model::NodeName| n.as_str() == name;
        let current = by_role.get(&(name, InstanceRole::Current)).copied();
        let incoming = by_role.get(&(name, InstanceRole::Incoming)).copied();
        let vm = current.and_then(|c| vms.get(&c.vmid).copied());
        let in_plan = planned.contains(name);
        let running = vm.is_some_and(|v| v.status == VmStatus::Running);
        let ready =
            current.is_some_and(|c| state.ready.get(&c.instance_id) == Some(&true)) && running;
        let reasons: Vec<&Reason> = plan
            .actions
            .iter()
            .filter(|a| mine(&a.node))
            .map(|a| &a.reason)
            .chain(
                plan.holds
                    .iter()
                    .filter(|h| in_plan && mine(&h.node))
                    .map(|h| &h.reason),
            )
            .collect();
        let taint = reasons
            .iter()
            .find(|r| matches!(r, Reason::Tainted { .. } | Reason::Compromised { .. }));
        let drift = reasons
            .iter()
            .find(|r| matches!(r, Reason::SpecChanged { .. } | Reason::ConfigEdited { .. }));
        let replacing = incoming.is_some()
            || in_plan && plan.actions.iter().any(|a| {
                mine(&a.node)
                    && matches!(&a.kind, planner::ActionKind::Create(c) if c.role == InstanceRole::Incoming)
            });
        let hold_msgs: Vec<String> = state
            .held
            .get(name)
            .cloned()
            .into_iter()
            .chain(
                plan.holds
                    .iter()
                    .filter(|h| in_plan && mine(&h.node))
                    .filter(|h| !matches!(h.blocked_by, BlockedBy::Quarantined { .. }))
                    .map(|h| format!("{} blocked by {:?}", h.wanted, h.blocked_by)),
            )
            .collect();
        // Superseded instances kept in quarantine (not a hold of the node: it is served by
        // its new instance), so a person can find the VM to inspect.
        let quarantined: Vec<Value> = plan
            .holds
            .iter()
            .filter(|h| in_plan && mine(&h.node))
            .filter_map(|h| match &h.blocked_by {
                BlockedBy::Quarantined { vmid, taint, until } => {
                    // Listed once the promotion is recorded (the plan holds the destroy in
                    // the promoting pass already), so `Quarantined` follows `Promoted`.
                    let rec = records.instances.iter().find(|r| {
                        r.vmid == *vmid && mine(&r.node) && r.role == InstanceRole::Retiring
                    })?;
                    Some(json!({
                        "vmid": vmid.get(),
                        "instanceId": rec.instance_id,
                        "pveNode": rec.pve_node.as_str(),
                        "name": rec.name,
                        "taint": taint,
                        "until": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    }))
                }
                _ => None,
            })
            .collect();
        // A give-up is news while its VM exists or its retry is ahead; the count stays after.
        let gave_up = state.gave_up.get(name).filter(|g| {
            g.retry_at > chrono::Utc::now()
                || [current, incoming]
                    .into_iter()
                    .flatten()
                    .any(|r| r.instance_id == g.instance_id)
        });
        let not_ready = |id: &str| super::give_up::not_ready_note(&state, id);
        let conditions = json!([
            condition(
                "Ready",
                ready,
                if ready { "ReadinessPassed" } else { "NotReady" },
                match (current, ready) {
                    (None, _) => "no instance".to_owned(),
                    (Some(c), true) => format!("VM {} is running and ready", c.vmid),
                    (Some(c), false) =>
                        format!("VM {} is not ready{}", c.vmid, not_ready(&c.instance_id)),
                }
            ),
            condition(
                "Tainted",
                taint.is_some(),
                "Taint",
                taint.map(ToString::to_string).unwrap_or_default()
            ),
            condition(
                "Drifted",
                drift.is_some(),
                "Drift",
                drift.map(ToString::to_string).unwrap_or_default()
            ),
            condition(
                "Replacing",
                replacing,
                "Replacement",
                incoming
                    .map(|i| format!("incoming VM {}{}", i.vmid, not_ready(&i.instance_id)))
                    .unwrap_or_default()
            ),
            condition("Held", !hold_msgs.is_empty(), "Held", hold_msgs.join("; ")),
            condition(
                "ReadinessGaveUp",
                gave_up.is_some(),
                "ReplacementAbandoned",
                gave_up.map(|g| g.message()).unwrap_or_default()
            ),
        ]);
        let previous = stored.get(name).unwrap_or(&Value::Null);
        let instance = current.map(|c| {
            json!({
                "instanceId": c.instance_id,
                "vmid": c.vmid.get(),
                "pveNode": c.pve_node.as_str(),
                "name": c.name,
                "ready": ready,
                "address": state.addresses.get(&c.instance_id),
            })
        });
        let mut status = json!({
            "observedGeneration": dn.generation,
            "conditions": conditions,
            "instance": instance,
            "lastError": state.last_error.get(name),
        });
        if !quarantined.is_empty() {
            for q in &quarantined {
                let known = previous["quarantined"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|p| p["vmid"] == q["vmid"]));
                if !known {
                    let text = |k: &str| q[k].as_str().unwrap_or("?").to_owned();
                    events.push(store::NewEvent {
                        at: chrono::Utc::now(),
                        node: Some(name.to_owned()),
                        kind: "Quarantined".to_owned(),
                        message: format!(
                            "VM {} (instance {}) kept stopped and isolated until {} (taint {})",
                            q["vmid"],
                            text("instanceId"),
                            text("until"),
                            q["taint"]
                        ),
                        data: q.clone(),
                    });
                }
            }
            status["quarantined"] = Value::Array(quarantined);
        }
        let recovery = previous.get("lastRecoverySeconds").cloned();
        if let Some(r) = state.recovery.get(name).map(|r| json!(r)).or(recovery) {
            status["lastRecoverySeconds"] = r;
        }
        if &status != previous {
            writes.push((name.to_owned(), status));
        }
    }
    drop(state);
    if writes.is_empty() {
        return;
    }
    // One transaction for every changed status: one durable commit per pass, not per node.
    let mut txn: store::Txn = writes
        .into_iter()
        .map(|(name, status)| store::Op::PutStatus {
            key: ResourceKey::new(NODE_KIND, name),
            status,
            expect: Expect::Any,
        })
        .collect();
    for e in events {
        txn.push(store::Op::AppendEvent(e));
    }
    if let Err(e) = inner.store.commit(txn) {
        tracing::warn!(error = %e, "node status not written");
    }
}
