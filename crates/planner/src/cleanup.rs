//! VMs outside the declared nodes: deleted nodes' instances, unrecorded owned VMs (adopted or
//! destroyed as orphans).

use crate::fasthash::FastMap;
use crate::inputs::{InstanceRecord, InstanceRole, Records};
use crate::machine::Machine;
use crate::output::{Action, ActionKind, AdoptedInstance, ExpectedIdentity, Hold};
use crate::reason::{BlockedBy, Reason};
use crate::view::View;
use model::NodeName;
use std::collections::BTreeMap;

/// Owned VMs without a record whose VMID is leased to their (declared) node: records to adopt,
/// the adopt actions, and holds for those that cannot be adopted.
pub(crate) fn adoptions<'a>(
    view: &View<'a>,
    records: &'a Records,
) -> (Vec<InstanceRecord>, Vec<Action>, Vec<Hold>) {
    let (mut adopted, mut actions, mut holds) = (Vec::new(), Vec::new(), Vec::new());
    // Roles held per node, built on the first candidate (a converged fleet has none).
    let mut roles: Option<FastMap<&'a NodeName, [bool; 3]>> = None;
    for (vm, cfg, marker) in view.unrecorded() {
        if !view.is_declared(&marker.node) {
            continue;
        }
        let node = &marker.node;
        let reason = Reason::Unrecorded {
            instance_id: marker.instance_id.clone(),
        };
        let roles = roles.get_or_insert_with(|| {
            let mut roles: FastMap<&'a NodeName, [bool; 3]> = FastMap::default();
            for r in &records.instances {
                roles.entry(&r.node).or_default()[r.role as usize] = true;
            }
            roles
        });
        let has = roles.get(node).copied().unwrap_or_default();
        let role = if !has[InstanceRole::Current as usize] {
            Some(InstanceRole::Current)
        } else if !has[InstanceRole::Incoming as usize] {
            Some(InstanceRole::Incoming)
        } else {
            None
        };
        let leased = view.leased_to(vm.vmid, node);
        let problem = match (leased, role, &vm.name, &cfg.smbios_uuid) {
            (false, ..) => Some(format!("VMID {} is not leased to {node}", vm.vmid)),
            (_, None, ..) => Some("the node already has current and incoming instances".into()),
            (_, _, None, _) | (_, _, _, None) => Some("name or SMBIOS uuid not visible yet".into()),
            _ => None,
        };
        match (problem, role, &vm.name, &cfg.smbios_uuid) {
            (None, Some(role), Some(name), Some(uuid)) => {
                let record = InstanceRecord {
                    node: node.clone(),
                    role,
                    instance_id: marker.instance_id.clone(),
                    vmid: vm.vmid,
                    pve_node: vm.pve_node.clone(),
                    name: name.clone(),
                    smbios_uuid: uuid.clone(),
                    spec_hash: marker.spec_hash.clone(),
                };
                actions.push(Action {
                    node: node.clone(),
                    kind: ActionKind::AdoptInstance {
                        record: AdoptedInstance {
                            role,
                            instance_id: record.instance_id.clone(),
                            vmid: record.vmid,
                            pve_node: record.pve_node.clone(),
                            name: record.name.clone(),
                            smbios_uuid: record.smbios_uuid.clone(),
                            spec_hash: record.spec_hash.clone(),
                        },
                    },
                    reason,
                });
                roles.entry(&marker.node).or_default()[role as usize] = true;
                adopted.push(record);
            }
            (problem, ..) => holds.push(Hold {
                node: node.clone(),
                wanted: "adopt".to_string(),
                blocked_by: BlockedBy::CannotAdopt {
                    vmid: vm.vmid,
                    detail: problem.unwrap_or_default(),
                },
                reason,
            }),
        }
    }
    (adopted, actions, holds)
}

/// Destroys the instances of deleted nodes and owned orphans whose node was deleted.
pub(crate) fn plan_deleted(m: &mut Machine<'_, '_>) {
    let view = m.view;
    let mut deleted: BTreeMap<&NodeName, Vec<&InstanceRecord>> = BTreeMap::new();
    for &r in &view.deleted {
        deleted.entry(&r.node).or_default().push(r);
    }
    for (node, mut recs) in deleted {
        recs.sort_by(|a, b| (a.role, &a.instance_id).cmp(&(b.role, &b.instance_id)));
        if let Some(f) = view.in_flight_of(node).first() {
            let blocked = BlockedBy::InFlight {
                kind: f.kind.clone(),
                vmid: f.vmid,
            };
            m.hold(node, "destroy", blocked, Reason::NodeDeleted);
            continue;
        }
        for rec in recs {
            match view.resolve(rec) {
                Some(live) => {
                    let mismatch = match (&live.vm.name, &live.cfg.smbios_uuid) {
                        (Some(n), Some(u)) if *n == rec.name && *u == rec.smbios_uuid => None,
                        (n, u) => Some(format!(
                            "live name {} / SMBIOS uuid {}, recorded {} / {}",
                            n.as_deref().unwrap_or("?"),
                            u.as_deref().unwrap_or("?"),
                            rec.name,
                            rec.smbios_uuid
                        )),
                    };
                    if let Some(detail) = mismatch {
                        let blocked = BlockedBy::IdentityMismatch {
                            vmid: rec.vmid,
                            detail,
                        };
                        m.hold(node, "destroy", blocked, Reason::NodeDeleted);
                        continue;
                    }
                    // A quarantined instance is kept even when its node is deleted.
                    if let Some((until, taint)) =
                        crate::quarantine::until(view, node, &rec.instance_id)
                        && until > m.now
                    {
                        m.keep_quarantined(node, live, until, taint);
                        let blocked = BlockedBy::Quarantined {
                            vmid: rec.vmid,
                            taint,
                            until,
                        };
                        m.hold(node, "destroy", blocked, Reason::NodeDeleted);
                        continue;
                    }
                    let identity = ExpectedIdentity {
                        vmid: rec.vmid,
                        pve_node: live.vm.pve_node.clone(),
                        name: rec.name.clone(),
                        smbios_uuid: rec.smbios_uuid.clone(),
                        instance_id: rec.instance_id.clone(),
                        recorded: true,
                    };
                    let lock = live.vm.lock.as_deref();
                    m.destroy(node, identity, lock, live.vm.status, Reason::NodeDeleted);
                }
                None if view.in_flight_vmids.contains(&rec.vmid) => {}
                None => {
                    let kind = ActionKind::ForgetInstance {
                        instance_id: rec.instance_id.clone(),
                        vmid: rec.vmid,
                    };
                    let reason = Reason::InstanceGone {
                        instance_id: rec.instance_id.clone(),
                        vmid: rec.vmid,
                        role: rec.role,
                    };
                    m.act(node, kind, reason);
                }
            }
        }
    }
    // Owned VMs with no record at all whose node is no longer declared.
    for &(vm, cfg, marker) in &view.orphans {
        let node = &marker.node;
        let (Some(name), Some(uuid)) = (&vm.name, &cfg.smbios_uuid) else {
            let blocked = BlockedBy::IdentityMismatch {
                vmid: vm.vmid,
                detail: "name or SMBIOS uuid not visible yet".to_string(),
            };
            m.hold(node, "destroy", blocked, Reason::NodeDeleted);
            continue;
        };
        let identity = ExpectedIdentity {
            vmid: vm.vmid,
            pve_node: vm.pve_node.clone(),
            name: name.clone(),
            smbios_uuid: uuid.clone(),
            instance_id: marker.instance_id.clone(),
            recorded: false,
        };
        m.destroy(
            node,
            identity,
            vm.lock.as_deref(),
            vm.status,
            Reason::NodeDeleted,
        );
    }
}
