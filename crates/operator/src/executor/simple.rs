//! Single-task actions on an existing instance: start, stop, isolate (NIC link down).

use planner::VmRef;
use pve_client::{ConfigUpdate, NodeName, VmConfig, VmId};
use serde_json::json;
use store::JournalState;
use tokio::time::Instant;

use super::create::is_net_key;
use super::{ExecError, Executed, Executor, event, ms_since, pve_ids};

impl Executor {
    /// Reads the VM's config and checks that its marker names `r`'s instance of `node`.
    async fn owned_config(
        &self,
        node: &str,
        r: &VmRef,
        n: &NodeName,
        v: VmId,
    ) -> Result<VmConfig, ExecError> {
        let vmid = r.vmid.get();
        let cfg = self
            .client
            .vm_config(n, v)
            .await
            .map_err(|source| ExecError::Pve {
                node: node.to_owned(),
                vmid,
                step: "read config",
                source: Box::new(source),
            })?;
        let tag = self.operator.ownership_tag();
        if !self.marker_matches(&cfg, node, &r.instance_id) || !cfg.tags().contains(&tag) {
            return Err(ExecError::IdentityMismatch {
                node: node.to_owned(),
                vmid,
                mismatch: format!(
                    "VM does not carry instance {}'s ownership marks",
                    r.instance_id
                ),
            });
        }
        if let Some(reason) = cfg.lock() {
            return Err(ExecError::Locked {
                node: node.to_owned(),
                vmid,
                reason,
            });
        }
        Ok(cfg)
    }

    /// Starts a stopped instance.
    pub(crate) async fn start(
        &self,
        node: &str,
        r: &VmRef,
        reason: &str,
    ) -> Result<Executed, ExecError> {
        let vmid = r.vmid.get();
        let (n, v) = pve_ids(node, r.pve_node.as_str(), vmid)?;
        self.owned_config(node, r, &n, v).await?;
        // `cluster/resources` reports a VM started seconds ago as stopped until pvestatd's next
        // sample (up to 10 s): ask the VM itself before starting it again.
        if self
            .client
            .vm_status(&n, v)
            .await
            .is_ok_and(|s| s.status == "running")
        {
            // Nothing to do and nothing to record: the next passes see it running once the
            // listing catches up, and readiness is tracked as before.
            tracing::debug!(
                node,
                vmid,
                "already running (the listing lags); not started again"
            );
            return Ok(Executed::Done);
        }
        let started = Instant::now();
        let entry = self.begin(
            node,
            "start",
            vmid,
            r.pve_node.as_str(),
            json!({"instance": r.instance_id, "reason": reason}),
            Vec::new(),
        )?;
        if let Err(source) = self.power_on(&n, v).await {
            let err = ExecError::Pve {
                node: node.to_owned(),
                vmid,
                step: "start",
                source: Box::new(source),
            };
            self.fail(&entry, &err, Vec::new());
            return Err(err);
        }
        let ms = ms_since(started);
        self.finish(
            &entry,
            JournalState::Done,
            json!({"startMs": ms}),
            Vec::new(),
            event(
                node,
                "Started",
                format!("started VM {vmid}: {reason}"),
                json!({"vmid": vmid, "instance": r.instance_id, "timings": {"startMs": ms}}),
            ),
        )?;
        Ok(Executed::NeedsReadiness {
            instance_id: r.instance_id.clone(),
            vmid,
            pve_node: r.pve_node.as_str().to_owned(),
        })
    }

    /// Stops an instance (hard stop) and waits for it.
    pub(crate) async fn stop(
        &self,
        node: &str,
        r: &VmRef,
        reason: &str,
    ) -> Result<Executed, ExecError> {
        let vmid = r.vmid.get();
        let (n, v) = pve_ids(node, r.pve_node.as_str(), vmid)?;
        self.owned_config(node, r, &n, v).await?;
        let started = Instant::now();
        let entry = self.begin(
            node,
            "stop",
            vmid,
            r.pve_node.as_str(),
            json!({"instance": r.instance_id, "reason": reason}),
            Vec::new(),
        )?;
        let stop = async {
            let upid = self.client.stop(&n, v).await?;
            self.record_upid(&entry, upid.as_ref());
            let timeout = self.tasks_timeout(self.config.tasks.power_ms);
            self.client.wait_task_opt(upid.as_ref(), timeout).await
        };
        if let Err(source) = stop.await {
            let err = ExecError::Pve {
                node: node.to_owned(),
                vmid,
                step: "stop",
                source: Box::new(source),
            };
            self.fail(&entry, &err, Vec::new());
            return Err(err);
        }
        let ms = ms_since(started);
        self.finish(
            &entry,
            JournalState::Done,
            json!({"stopMs": ms}),
            Vec::new(),
            event(
                node,
                "Stopped",
                format!("stopped VM {vmid}: {reason}"),
                json!({"vmid": vmid, "instance": r.instance_id, "timings": {"stopMs": ms}}),
            ),
        )?;
        Ok(Executed::Done)
    }

    /// Sets `link_down=1` on every `net<n>` of the instance, keeping MACs and other keys.
    pub(crate) async fn isolate(
        &self,
        node: &str,
        r: &VmRef,
        reason: &str,
    ) -> Result<Executed, ExecError> {
        let vmid = r.vmid.get();
        let (n, v) = pve_ids(node, r.pve_node.as_str(), vmid)?;
        let cfg = self.owned_config(node, r, &n, v).await?;
        let started = Instant::now();
        let update = isolate_update(&cfg);
        let entry = self.begin(
            node,
            "isolate",
            vmid,
            r.pve_node.as_str(),
            json!({"instance": r.instance_id, "reason": reason}),
            Vec::new(),
        )?;
        if !update.is_empty() {
            if let Err(source) = self.client.update_config(&n, v, &update).await {
                // A 596 may have applied it: re-read before deciding.
                let applied = source.outcome_unknown()
                    && self
                        .client
                        .vm_config(&n, v)
                        .await
                        .is_ok_and(|c| isolate_update(&c).is_empty());
                if !applied {
                    let err = match source {
                        pve_client::Error::Locked { reason, .. } => ExecError::Locked {
                            node: node.to_owned(),
                            vmid,
                            reason,
                        },
                        other => ExecError::Pve {
                            node: node.to_owned(),
                            vmid,
                            step: "isolate",
                            source: Box::new(other),
                        },
                    };
                    self.fail(&entry, &err, Vec::new());
                    return Err(err);
                }
            }
        }
        let ms = ms_since(started);
        self.finish(
            &entry,
            JournalState::Done,
            json!({"isolateMs": ms}),
            Vec::new(),
            event(
                node,
                "Isolated",
                format!("isolated VM {vmid} (link_down on every NIC): {reason}"),
                json!({"vmid": vmid, "instance": r.instance_id, "timings": {"isolateMs": ms}}),
            ),
        )?;
        Ok(Executed::Done)
    }
}

/// `link_down=1` on every interface that does not have it yet, guarded by the digest.
pub(crate) fn isolate_update(cfg: &VmConfig) -> ConfigUpdate {
    let mut update = ConfigUpdate::new();
    let mut changed = false;
    for key in cfg.values.keys().filter(|k| is_net_key(k)) {
        let Some(value) = cfg.get_str(key) else {
            continue;
        };
        if let Some(new) = link_down(&value) {
            update = update.set(key.clone(), new);
            changed = true;
        }
    }
    match (&cfg.digest, changed) {
        (Some(d), true) => update.digest(d.clone()),
        _ => update,
    }
}

/// The interface value with `link_down=1`, or `None` when it is already down.
pub(crate) fn link_down(value: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut found = false;
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("link_down", v)) => {
                if v == "1" {
                    return None;
                }
                found = true;
                parts.push("link_down=1".to_owned());
            }
            _ => parts.push(part.to_owned()),
        }
    }
    if !found {
        parts.push("link_down=1".to_owned());
    }
    Some(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_down_keeps_mac_and_other_keys() {
        assert_eq!(
            link_down("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1").as_deref(),
            Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,link_down=1")
        );
        assert_eq!(
            link_down("virtio=BC:24:11:00:00:01,bridge=vmbr0,link_down=0").as_deref(),
            Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,link_down=1")
        );
        assert_eq!(link_down("virtio=BC:24:11:00:00:01,link_down=1"), None);
    }
}
