//! Identity-proven destroy: re-read, prove vmid + name + SMBIOS uuid + marker, stop, wait,
//! prove again, destroy with purge, wait, forget.

use planner::ExpectedIdentity;
use pve_client::{DestroyParams, NodeName, VmId};
use serde_json::json;
use store::{JournalState, LeaseState, Op};
use tokio::time::Instant;

use super::{ExecError, Executed, Executor, event, ms_since, pve_ids};

/// What a re-read of the VM to destroy found.
#[derive(Debug)]
pub(crate) enum Proof {
    /// No VM at that VMID on that node (or PVE is destroying it: lock `destroyed`).
    Gone,
    /// The VM is the recorded instance.
    Proven {
        /// It is running.
        running: bool,
    },
}

impl Executor {
    /// Destroys the VM `id` names, only after proving it is that instance.
    pub(crate) async fn destroy(
        &self,
        node: &str,
        id: &ExpectedIdentity,
        reason: &str,
    ) -> Result<Executed, ExecError> {
        let started = Instant::now();
        let vmid = id.vmid.get();
        let (n, v) = pve_ids(node, id.pve_node.as_str(), vmid)?;
        let forget_ops = |vmid: u32, leased: bool| {
            let mut ops = Vec::new();
            if id.recorded {
                ops.push(Op::RemoveInstance {
                    instance_id: id.instance_id.clone(),
                });
            }
            if leased {
                ops.push(Op::ReleaseVmid { vmid });
            }
            ops
        };
        let leased = self.holds_lease(node, vmid)?;

        match self.prove(node, id, &n, v).await {
            Ok(Proof::Gone) => {
                let mut txn: store::Txn = forget_ops(vmid, leased).into_iter().collect();
                txn.push(Op::AppendEvent(event(
                    node,
                    "AlreadyGone",
                    format!("VM {vmid} of instance {} is already gone", id.instance_id),
                    json!({"vmid": vmid, "instance": id.instance_id}),
                )));
                self.commit(node, txn)?;
                return Ok(Executed::Done);
            }
            Ok(Proof::Proven { .. }) => {}
            Err(err) => {
                if let ExecError::IdentityMismatch { mismatch, .. } = &err {
                    self.emit(event(
                        node,
                        "DestroyRefused",
                        format!("refused to destroy VM {vmid}: {mismatch}"),
                        json!({"vmid": vmid, "expected": id, "mismatch": mismatch}),
                    ));
                }
                return Err(err);
            }
        }

        let mut extra = Vec::new();
        if leased {
            extra.push(Op::SetLeaseState {
                vmid,
                state: LeaseState::Releasing,
            });
        }
        let entry = self.begin(
            node,
            "destroy",
            vmid,
            id.pve_node.as_str(),
            json!({"identity": id, "reason": reason}),
            extra,
        )?;
        self.emit(event(
            node,
            "DestroyStarted",
            format!("destroying VM {vmid} (identity proven): {reason}"),
            json!({"vmid": vmid, "instance": id.instance_id}),
        ));
        let pve_err = |step, source| ExecError::Pve {
            node: node.to_owned(),
            vmid,
            step,
            source: Box::new(source),
        };

        // Stop → wait (a running VM refuses destroy; not waiting orphans it).
        let stop_started = Instant::now();
        let stop = async {
            let upid = self.client.stop(&n, v).await?;
            self.record_upid(&entry, upid.as_ref());
            let timeout = self.tasks_timeout(self.config.tasks.power_ms);
            self.client.wait_task_opt(upid.as_ref(), timeout).await
        };
        if let Err(e) = stop.await {
            let err = pve_err("stop", e);
            self.fail(&entry, &err, restore_lease(leased, vmid));
            return Err(err);
        }
        let stop_ms = ms_since(stop_started);

        // Prove again immediately before the destroy.
        match self.prove(node, id, &n, v).await {
            Ok(Proof::Proven { running: false }) => {}
            Ok(Proof::Proven { running: true }) => {
                let err = ExecError::Invalid {
                    node: node.to_owned(),
                    what: format!("VM {vmid} is running again after its stop"),
                };
                self.fail(&entry, &err, restore_lease(leased, vmid));
                return Err(err);
            }
            Ok(Proof::Gone) => {
                let ev = event(
                    node,
                    "AlreadyGone",
                    format!("VM {vmid} disappeared before its destroy"),
                    json!({"vmid": vmid}),
                );
                self.finish(
                    &entry,
                    JournalState::Done,
                    json!({"gone": true}),
                    forget_ops(vmid, leased),
                    ev,
                )?;
                return Ok(Executed::Done);
            }
            Err(err) => {
                if let ExecError::IdentityMismatch { mismatch, .. } = &err {
                    self.emit(event(
                        node,
                        "DestroyRefused",
                        format!("refused to destroy VM {vmid}: {mismatch}"),
                        json!({"vmid": vmid, "expected": id, "mismatch": mismatch}),
                    ));
                }
                self.fail(&entry, &err, restore_lease(leased, vmid));
                return Err(err);
            }
        }

        let destroy_started = Instant::now();
        let upid = match self.client.destroy(&n, v, &DestroyParams::thorough()).await {
            Ok(upid) => upid,
            Err(e) if e.outcome_unknown() => {
                // Re-read instead of retrying: gone means it worked.
                match self.client.vm_config(&n, v).await {
                    Err(pve_client::Error::ConfigNotFound { .. }) => None,
                    _ => {
                        // Leave the intent; the next pass re-reads and re-plans.
                        return Err(ExecError::OutcomeUnknown {
                            node: node.to_owned(),
                            vmid,
                            step: "destroy",
                        });
                    }
                }
            }
            Err(e) => {
                let err = pve_err("destroy", e);
                self.fail(&entry, &err, restore_lease(leased, vmid));
                return Err(err);
            }
        };
        self.record_upid(&entry, upid.as_ref());
        let timeout = self.tasks_timeout(self.config.tasks.destroy_ms);
        if let Err(e) = self.client.wait_task_opt(upid.as_ref(), timeout).await {
            let failed = matches!(e, pve_client::Error::TaskFailed { .. });
            let err = pve_err("destroy", e);
            if failed {
                self.fail(&entry, &err, restore_lease(leased, vmid));
            }
            return Err(err);
        }
        let timings = json!({"stopMs": stop_ms, "destroyMs": ms_since(destroy_started), "totalMs": ms_since(started)});
        let ev = event(
            node,
            "Destroyed",
            format!(
                "destroyed VM {vmid} (instance {}): {reason}",
                id.instance_id
            ),
            json!({"vmid": vmid, "instance": id.instance_id, "smbiosUuid": id.smbios_uuid, "timings": timings}),
        );
        let mut ops = forget_ops(vmid, leased);
        ops.extend(self.clear_instance_taints(node, &id.instance_id));
        self.finish(
            &entry,
            JournalState::Done,
            json!({"identity": id, "timings": timings}),
            ops,
            ev,
        )?;
        Ok(Executed::Done)
    }

    /// A taint marks one instance: once that instance is destroyed, its active taints are
    /// cleared (they stay in the history, cleared by the operator) in the same transaction that
    /// records the destroy, so `reborn get taints` shows only what still needs action.
    fn clear_instance_taints(&self, node: &str, instance_id: &str) -> Vec<Op> {
        match self.store.active_taints(Some(node), chrono::Utc::now()) {
            Ok(taints) => taints
                .into_iter()
                .filter(|t| t.instance_id.as_deref() == Some(instance_id))
                .map(|t| Op::ClearTaint {
                    id: t.id,
                    by: format!("reborn: instance {instance_id} destroyed"),
                })
                .collect(),
            Err(err) => {
                tracing::warn!(node, instance_id, %err, "could not read the taints of a destroyed instance");
                Vec::new()
            }
        }
    }

    /// Re-reads the VM and compares it with the expected identity.
    pub(crate) async fn prove(
        &self,
        node: &str,
        id: &ExpectedIdentity,
        n: &NodeName,
        v: VmId,
    ) -> Result<Proof, ExecError> {
        let vmid = id.vmid.get();
        let pve_err = |step, source| ExecError::Pve {
            node: node.to_owned(),
            vmid,
            step,
            source: Box::new(source),
        };
        let cfg = match self.client.vm_config(n, v).await {
            Ok(cfg) => cfg,
            Err(pve_client::Error::ConfigNotFound { .. }) => return Ok(Proof::Gone),
            Err(e) => return Err(pve_err("read config", e)),
        };
        match cfg.lock().as_deref() {
            Some("destroyed") => return Ok(Proof::Gone),
            Some(reason) => {
                return Err(ExecError::Locked {
                    node: node.to_owned(),
                    vmid,
                    reason: reason.to_owned(),
                });
            }
            None => {}
        }
        let status = match self.client.vm_status(n, v).await {
            Ok(s) => s,
            Err(pve_client::Error::ConfigNotFound { .. }) => return Ok(Proof::Gone),
            Err(e) => return Err(pve_err("read status", e)),
        };
        let mismatch = identity_mismatch(self, node, id, &cfg, status.vmid.map(VmId::get));
        if let Some(mismatch) = mismatch {
            return Err(ExecError::IdentityMismatch {
                node: node.to_owned(),
                vmid,
                mismatch,
            });
        }
        Ok(Proof::Proven {
            running: status.is_running(),
        })
    }
}

/// What differs between the live VM and the expected identity (`None`: it is proven).
fn identity_mismatch(
    exec: &Executor,
    node: &str,
    id: &ExpectedIdentity,
    cfg: &pve_client::VmConfig,
    status_vmid: Option<u32>,
) -> Option<String> {
    let mut problems = Vec::new();
    if status_vmid.is_some_and(|v| v != id.vmid.get()) {
        problems.push(format!("vmid {status_vmid:?} != {}", id.vmid));
    }
    let name = cfg.name().unwrap_or_default();
    if name != id.name {
        problems.push(format!("name {name:?} != {:?}", id.name));
    }
    let uuid = cfg.smbios_uuid().unwrap_or_default();
    if !uuid.eq_ignore_ascii_case(&id.smbios_uuid) {
        problems.push(format!("SMBIOS uuid {uuid:?} != {:?}", id.smbios_uuid));
    }
    let tag = exec.operator.ownership_tag();
    if !cfg.tags().contains(&tag) {
        problems.push(format!("ownership tag {tag} missing"));
    }
    match cfg
        .description()
        .map(|d| planner::parse_marker(&d))
        .transpose()
        .map(Option::flatten)
    {
        Ok(Some(m)) => {
            if m.node.as_str() != node {
                problems.push(format!("marker node {} != {node}", m.node));
            }
            if m.instance_id != id.instance_id {
                problems.push(format!(
                    "marker instance {} != {}",
                    m.instance_id, id.instance_id
                ));
            }
            if m.operator != exec.operator {
                problems.push(format!(
                    "marker operator {} != {}",
                    m.operator, exec.operator
                ));
            }
        }
        Ok(None) => problems.push("no ownership marker".to_owned()),
        Err(e) => problems.push(format!("unreadable ownership marker: {e}")),
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// After a failed destroy the VM still exists: its lease goes back to active.
fn restore_lease(leased: bool, vmid: u32) -> Vec<Op> {
    if leased {
        vec![Op::SetLeaseState {
            vmid,
            state: LeaseState::Active,
        }]
    } else {
        Vec::new()
    }
}
