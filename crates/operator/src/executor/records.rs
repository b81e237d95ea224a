//! Record-only actions: promote an incoming instance, forget a gone one, adopt an orphan.

use chrono::Utc;
use planner::{AdoptedInstance, InstanceRole};
use serde_json::json;
use store::{InstanceRecord, LeaseState, Op, Txn};

use super::{ExecError, Executor, event};

impl Executor {
    /// The incoming instance becomes current (the previous current one becomes retiring).
    /// The event carries the recovery time when a taint started the replacement.
    pub(crate) fn promote(
        &self,
        node: &str,
        instance_id: &str,
        vmid: u32,
        supersedes: Option<&str>,
        reason: &str,
    ) -> Result<(), ExecError> {
        let store_err = |source| ExecError::Store {
            node: node.to_owned(),
            source,
        };
        let records = self.store.instances(Some(node)).map_err(store_err)?;
        let mut record = records
            .iter()
            .find(|r| r.instance_id == instance_id)
            .cloned()
            .ok_or_else(|| ExecError::Invalid {
                node: node.to_owned(),
                what: format!("no record of incoming instance {instance_id}"),
            })?;
        record.current = true;
        let recovery = self.recovery_seconds(node, supersedes);
        let data = json!({
            "vmid": vmid, "instance": instance_id, "supersedes": supersedes,
            "recoverySeconds": recovery,
        });
        let message = match recovery {
            Some(s) => format!(
                "VM {vmid} (instance {instance_id}) is now current; recovered in {s:.1}s: {reason}"
            ),
            None => format!("VM {vmid} (instance {instance_id}) is now current: {reason}"),
        };
        let txn = Txn::new()
            .with(Op::PutInstance(record))
            .with(Op::AppendEvent(event(node, "Promoted", message, data)));
        self.commit(node, txn)?;
        Ok(())
    }

    /// Seconds from the oldest active taint on the superseded instance (or the node) to now.
    fn recovery_seconds(&self, node: &str, supersedes: Option<&str>) -> Option<f64> {
        let now = Utc::now();
        let taints = self.store.taint_history(Some(node)).ok()?;
        let started = taints
            .iter()
            .filter(|t| match (&t.instance_id, supersedes) {
                (Some(i), Some(s)) => i == s,
                (None, _) => t.is_active(now),
                _ => false,
            })
            .map(|t| t.created_at)
            .min()?;
        Some((now - started).num_milliseconds() as f64 / 1000.0)
    }

    /// Drops the record (and lease) of an instance whose VM is gone. Touches no VM.
    pub(crate) fn forget(
        &self,
        node: &str,
        instance_id: &str,
        vmid: u32,
        reason: &str,
    ) -> Result<(), ExecError> {
        let mut txn = Txn::new().with(Op::RemoveInstance {
            instance_id: instance_id.to_owned(),
        });
        if self.holds_lease(node, vmid)? {
            txn.push(Op::ReleaseVmid { vmid });
        }
        txn.push(Op::AppendEvent(event(
            node,
            "Forgotten",
            format!("forgot instance {instance_id} (VM {vmid} is gone): {reason}"),
            json!({"vmid": vmid, "instance": instance_id}),
        )));
        self.commit(node, txn)?;
        Ok(())
    }

    /// Writes the record of an owned VM found without one. Touches no VM.
    pub(crate) fn adopt(
        &self,
        node: &str,
        a: &AdoptedInstance,
        reason: &str,
    ) -> Result<(), ExecError> {
        let vmid = a.vmid.get();
        let leases = self
            .store
            .vmid_leases()
            .map_err(|source| ExecError::Store {
                node: node.to_owned(),
                source,
            })?;
        let mut txn = Txn::new();
        match leases.iter().find(|l| l.vmid == vmid) {
            Some(l) if l.node != node => {
                return Err(ExecError::Invalid {
                    node: node.to_owned(),
                    what: format!("vmid {vmid} is leased to node {}", l.node),
                });
            }
            Some(_) => {}
            None => {
                txn.push(Op::LeaseVmid {
                    vmid,
                    node: node.to_owned(),
                });
            }
        }
        txn.push(Op::SetLeaseState {
            vmid,
            state: LeaseState::Active,
        });
        txn.push(Op::PutInstance(InstanceRecord {
            instance_id: a.instance_id.clone(),
            node: node.to_owned(),
            vmid,
            pve_node: a.pve_node.as_str().to_owned(),
            name: a.name.clone(),
            smbios_uuid: a.smbios_uuid.clone(),
            spec_hash: a.spec_hash.clone(),
            gold_digest: String::new(),
            // Roles are derived from creation order (see docs/decisions/0007-executor.md):
            // a retiring record must be older than the node's current one.
            created_at: if a.role == InstanceRole::Retiring {
                chrono::DateTime::<Utc>::UNIX_EPOCH
            } else {
                Utc::now()
            },
            current: a.role == InstanceRole::Current,
        }));
        txn.push(Op::AppendEvent(event(
            node,
            "Adopted",
            format!(
                "adopted VM {vmid} as {} instance {}: {reason}",
                a.role, a.instance_id
            ),
            json!({"vmid": vmid, "instance": a.instance_id}),
        )));
        self.commit(node, txn)?;
        Ok(())
    }
}
