//! Journal recovery: an intent with no task running (a crash, or an unknown outcome) is
//! settled against PVE: adopted and finished, or abandoned with its lease released.

use planner::CreateInstance;
use serde_json::json;
use store::{JournalEntry, JournalState, LeaseState, Op};
use tokio::time::Instant;

use super::create::CloneState;
use super::{ExecError, Executed, Executor, event, pve_ids};

impl Executor {
    /// Settles one in-flight journal entry.
    pub async fn recover(&self, entry: &JournalEntry) -> Result<Executed, ExecError> {
        match entry.action.as_str() {
            "create" => self.recover_create(entry).await,
            "destroy" => self.recover_destroy(entry).await,
            // Start, stop, isolate: level-triggered; the planner asks again if still needed.
            _ => {
                self.abandon(
                    entry,
                    "interrupted; re-planned from a fresh read",
                    Vec::new(),
                )?;
                Ok(Executed::Done)
            }
        }
    }

    fn abandon(&self, entry: &JournalEntry, why: &str, extra: Vec<Op>) -> Result<(), ExecError> {
        let ev = event(
            &entry.node,
            "JournalAbandoned",
            format!(
                "{} of VM {} abandoned: {why}",
                entry.action,
                entry.vmid.map_or_else(|| "?".to_owned(), |v| v.to_string())
            ),
            json!({"journal": entry.id, "action": entry.action, "vmid": entry.vmid}),
        );
        self.finish(
            entry,
            JournalState::Abandoned,
            json!({"abandoned": why}),
            extra,
            ev,
        )
    }

    async fn recover_create(&self, entry: &JournalEntry) -> Result<Executed, ExecError> {
        let node = entry.node.as_str();
        let Some(c) = entry
            .detail
            .get("create")
            .and_then(|c| serde_json::from_value::<CreateInstance>(c.clone()).ok())
        else {
            self.abandon(entry, "journal detail unreadable", Vec::new())?;
            return Ok(Executed::Done);
        };
        let vmid = c.vmid.get();
        let (target, newid) = pve_ids(node, c.pve_node.as_str(), vmid)?;
        let (tpl_node, _) = pve_ids(node, c.template.pve_node.as_str(), c.template.vmid.get())?;
        let state = self
            .clone_state(&c, &target, &tpl_node, newid)
            .await
            .map_err(|source| ExecError::Pve {
                node: node.to_owned(),
                vmid,
                step: "re-read",
                source: Box::new(source),
            })?;
        let mut release = Vec::new();
        if self.holds_lease(node, vmid)? {
            release.push(Op::ReleaseVmid { vmid });
        }
        let recorded = self
            .store
            .instances(Some(node))
            .map_err(|source| ExecError::Store {
                node: node.to_owned(),
                source,
            })?
            .iter()
            .any(|r| r.instance_id == c.instance_id);
        let age = chrono::Utc::now() - entry.created_at;
        let grace = chrono::Duration::milliseconds(self.config.intent_grace_ms as i64);
        match state {
            // The clone request may still be on its way to PVE (a crash mid-request, a 596):
            // give it the grace period before deciding nothing was created.
            CloneState::Missing if age < grace => Err(ExecError::OutcomeUnknown {
                node: node.to_owned(),
                vmid,
                step: "clone",
            }),
            CloneState::Missing => {
                let mut ops = Vec::new();
                if recorded {
                    ops.push(Op::RemoveInstance {
                        instance_id: c.instance_id.clone(),
                    });
                }
                ops.extend(release);
                self.abandon(entry, "no VM was created", ops)?;
                Ok(Executed::Done)
            }
            CloneState::Foreign => {
                // Someone else's VM holds the VMID: never touch it, give the VMID up.
                let mut ops = Vec::new();
                if recorded {
                    ops.push(Op::RemoveInstance {
                        instance_id: c.instance_id.clone(),
                    });
                }
                ops.extend(release);
                self.abandon(entry, "the VMID holds a VM that is not this instance", ops)?;
                Ok(Executed::Done)
            }
            CloneState::Ours { locked: true, .. } => Err(ExecError::Locked {
                node: node.to_owned(),
                vmid,
                reason: "clone".to_owned(),
            }),
            CloneState::Ours { locked: false, .. } => {
                self.emit(event(
                    node,
                    "CreateResumed",
                    format!(
                        "resuming the create of VM {vmid} (instance {})",
                        c.instance_id
                    ),
                    json!({"vmid": vmid, "instance": c.instance_id, "journal": entry.id}),
                ));
                self.finish_create(node, &c, entry, Instant::now(), 0).await
            }
        }
    }

    async fn recover_destroy(&self, entry: &JournalEntry) -> Result<Executed, ExecError> {
        let node = entry.node.as_str();
        let (Some(vmid), Some(pve_node)) = (entry.vmid, entry.pve_node.as_deref()) else {
            self.abandon(entry, "journal entry without VM", Vec::new())?;
            return Ok(Executed::Done);
        };
        let (n, v) = pve_ids(node, pve_node, vmid)?;
        let leased = self.holds_lease(node, vmid)?;
        let instance = entry
            .detail
            .pointer("/identity/instance_id")
            .and_then(|i| i.as_str())
            .map(str::to_owned);
        match self.client.vm_config(&n, v).await {
            Err(pve_client::Error::ConfigNotFound { .. }) => {
                let mut ops = Vec::new();
                if let Some(instance_id) = instance {
                    ops.push(Op::RemoveInstance { instance_id });
                }
                if leased {
                    ops.push(Op::ReleaseVmid { vmid });
                }
                let ev = event(
                    node,
                    "Destroyed",
                    format!("destroy of VM {vmid} completed before a restart"),
                    json!({"vmid": vmid, "journal": entry.id, "recovered": true}),
                );
                self.finish(
                    entry,
                    JournalState::Done,
                    json!({"recovered": true}),
                    ops,
                    ev,
                )?;
                Ok(Executed::Done)
            }
            Ok(_) => {
                // Still there: the planner proves identity again and re-plans the destroy.
                let ops = if leased {
                    vec![Op::SetLeaseState {
                        vmid,
                        state: LeaseState::Active,
                    }]
                } else {
                    Vec::new()
                };
                self.abandon(entry, "VM still exists; destroy re-planned", ops)?;
                Ok(Executed::Done)
            }
            Err(source) => Err(ExecError::Pve {
                node: node.to_owned(),
                vmid,
                step: "re-read",
                source: Box::new(source),
            }),
        }
    }
}
