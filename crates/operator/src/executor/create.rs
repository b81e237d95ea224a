//! The create saga: lease → clone → record → configure → start, each step journaled.

use std::time::Duration;

use model::CloneMode;
use planner::{CreateInstance, InstanceRole};
use pve_client::{CloneParams, ConfigUpdate, NodeName, VmConfig, VmId};
use serde_json::json;
use store::{
    InstanceRecord, JournalEntry, JournalState, JournalUpdate, LeaseState, Op, StoreError,
};
use tokio::time::Instant;

use super::{ExecError, Executed, Executor, event, ms_since, pve_ids};

/// How the VM behind a create intent looks when re-read.
pub(crate) enum CloneState {
    /// No config at the target (nor at the template's node).
    Missing,
    /// A VM with our marker for this instance; `locked` while the clone still runs.
    Ours {
        /// A config lock is present.
        locked: bool,
    },
    /// A VM at this VMID that is not this instance.
    Foreign,
}

impl Executor {
    /// Refuses a create the store already contradicts: a new current instance for a node that
    /// has one, or a second incoming one. Per-node exclusivity makes this check race-free; it
    /// catches a plan made before the node's previous task recorded its instance.
    fn refuse_stale_create(&self, node: &str, c: &CreateInstance) -> Result<(), ExecError> {
        let records = self
            .store
            .instances(Some(node))
            .map_err(|source| ExecError::Store {
                node: node.to_owned(),
                source,
            })?;
        let current = records.iter().find(|r| r.current);
        let conflict = match c.role {
            InstanceRole::Current => current.map(|r| format!("current instance {}", r.instance_id)),
            InstanceRole::Incoming | InstanceRole::Retiring => records
                .iter()
                .filter(|r| !r.current && r.instance_id != c.instance_id)
                .find(|r| current.is_none_or(|cur| r.created_at > cur.created_at))
                .map(|r| format!("incoming instance {}", r.instance_id)),
        };
        match conflict {
            Some(existing) => Err(ExecError::StalePlan {
                node: node.to_owned(),
                what: format!(
                    "a {} create of {} while the store records {existing}",
                    c.role, c.instance_id
                ),
            }),
            None => Ok(()),
        }
    }

    /// Runs the whole create saga for `c`.
    pub(crate) async fn create(
        &self,
        node: &str,
        c: &CreateInstance,
        reason: &str,
    ) -> Result<Executed, ExecError> {
        let started = Instant::now();
        let vmid = c.vmid.get();
        let (target, newid) = pve_ids(node, c.pve_node.as_str(), vmid)?;
        let (tpl_node, tpl_vmid) =
            pve_ids(node, c.template.pve_node.as_str(), c.template.vmid.get())?;

        self.refuse_stale_create(node, c)?;
        let mut extra = Vec::new();
        if !self.holds_lease(node, vmid)? {
            extra.push(Op::LeaseVmid {
                vmid,
                node: node.to_owned(),
            });
        }
        let detail = json!({"create": c, "reason": reason, "step": "clone"});
        let entry = match self.begin(node, "create", vmid, c.pve_node.as_str(), detail, extra) {
            Err(ExecError::Store {
                source: StoreError::VmidLeased { .. },
                ..
            }) => {
                return Err(ExecError::VmidTaken {
                    node: node.to_owned(),
                    vmid,
                });
            }
            other => other?,
        };
        self.emit(event(
            node,
            "CreateStarted",
            format!(
                "cloning {} (VM {}) into VM {vmid} on {}: {reason}",
                c.template.gold_image, c.template.vmid, c.pve_node
            ),
            json!({"vmid": vmid, "pveNode": c.pve_node, "instance": c.instance_id, "template": c.template.vmid, "mode": c.clone_mode, "role": c.role}),
        ));

        let mut params = CloneParams::new(newid)
            .name(c.name.clone())
            .description(c.config.description.clone());
        if target != tpl_node {
            params = params.target(target.clone());
        }
        params = match c.clone_mode {
            CloneMode::Linked => params.full(false),
            CloneMode::Full => {
                let p = params.full(true);
                match &c.storage {
                    Some(s) => p.storage(s.as_str()),
                    None => p,
                }
            }
        };
        let release = || vec![Op::ReleaseVmid { vmid }];
        let upid = match self.client.clone_vm(&tpl_node, tpl_vmid, &params).await {
            Ok(upid) => upid,
            Err(pve_client::Error::AlreadyExists { .. }) => {
                let err = ExecError::VmidTaken {
                    node: node.to_owned(),
                    vmid,
                };
                self.fail(&entry, &err, release());
                return Err(err);
            }
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(node, vmid, error = %e, "clone outcome unknown; re-reading");
                match self.clone_state(c, &target, &tpl_node, newid).await {
                    Ok(CloneState::Ours { .. }) => None,
                    Ok(CloneState::Missing) => {
                        let err = ExecError::Pve {
                            node: node.to_owned(),
                            vmid,
                            step: "clone",
                            source: Box::new(e),
                        };
                        self.fail(&entry, &err, release());
                        return Err(err);
                    }
                    Ok(CloneState::Foreign) => {
                        let err = ExecError::VmidTaken {
                            node: node.to_owned(),
                            vmid,
                        };
                        self.fail(&entry, &err, release());
                        return Err(err);
                    }
                    // Still unknown: leave the intent; the next pass re-reads it.
                    Err(_) => {
                        return Err(ExecError::OutcomeUnknown {
                            node: node.to_owned(),
                            vmid,
                            step: "clone",
                        });
                    }
                }
            }
            Err(e) => {
                let err = match e {
                    pve_client::Error::Locked { reason, .. } => ExecError::Locked {
                        node: node.to_owned(),
                        vmid: c.template.vmid.get(),
                        reason,
                    },
                    other => ExecError::Pve {
                        node: node.to_owned(),
                        vmid,
                        step: "clone",
                        source: Box::new(other),
                    },
                };
                self.fail(&entry, &err, release());
                return Err(err);
            }
        };
        self.record_upid(&entry, upid.as_ref());
        let clone_started = Instant::now();
        let timeout = self.tasks_timeout(self.config.tasks.clone_ms);
        let waited = match &upid {
            Some(upid) => self.client.wait_task(upid, timeout).await.map(|_| true),
            None => {
                self.wait_unlocked(c, &target, &tpl_node, newid, timeout)
                    .await
            }
        };
        match waited {
            Ok(true) => {}
            Ok(false) => {
                return Err(ExecError::OutcomeUnknown {
                    node: node.to_owned(),
                    vmid,
                    step: "clone",
                });
            }
            Err(e) => {
                let failed = matches!(e, pve_client::Error::TaskFailed { .. });
                let err = ExecError::Pve {
                    node: node.to_owned(),
                    vmid,
                    step: "clone",
                    source: Box::new(e),
                };
                // PVE rolls a failed clone back; release the lease only once it is gone.
                // Anything else (a wait that timed out) leaves the intent for the next pass.
                if failed
                    && matches!(
                        self.clone_state(c, &target, &tpl_node, newid).await,
                        Ok(CloneState::Missing)
                    )
                {
                    self.fail(&entry, &err, release());
                }
                return Err(err);
            }
        }
        let clone_ms = ms_since(clone_started);
        self.finish_create(node, c, &entry, started, clone_ms).await
    }

    /// Steps after the clone: record the instance, configure, start. Also resumes an
    /// interrupted create found in the journal.
    pub(crate) async fn finish_create(
        &self,
        node: &str,
        c: &CreateInstance,
        entry: &JournalEntry,
        started: Instant,
        clone_ms: u64,
    ) -> Result<Executed, ExecError> {
        let vmid = c.vmid.get();
        let (target, newid) = pve_ids(node, c.pve_node.as_str(), vmid)?;
        let pve_err = |step, source| ExecError::Pve {
            node: node.to_owned(),
            vmid,
            step,
            source: Box::new(source),
        };
        let live = self
            .client
            .vm_config(&target, newid)
            .await
            .map_err(|e| pve_err("read config", e))?;
        if !self.marker_matches(&live, node, &c.instance_id) {
            return Err(ExecError::IdentityMismatch {
                node: node.to_owned(),
                vmid,
                mismatch: "the clone does not carry this instance's marker".to_owned(),
            });
        }
        let smbios_uuid = live
            .smbios_uuid()
            .ok_or_else(|| ExecError::IdentityMismatch {
                node: node.to_owned(),
                vmid,
                mismatch: "the clone has no SMBIOS uuid".to_owned(),
            })?;
        let record = InstanceRecord {
            instance_id: c.instance_id.clone(),
            node: node.to_owned(),
            vmid,
            pve_node: c.pve_node.as_str().to_owned(),
            name: c.name.clone(),
            smbios_uuid: smbios_uuid.clone(),
            spec_hash: c.spec_hash.clone(),
            gold_digest: c.template.digest.to_string(),
            created_at: chrono::Utc::now(),
            current: c.role == InstanceRole::Current,
        };
        let mut txn = store::Txn::new().with(Op::PutInstance(record));
        if self.holds_lease(node, vmid)? {
            txn.push(Op::SetLeaseState {
                vmid,
                state: LeaseState::Active,
            });
        }
        txn.push(Op::JournalUpdate(JournalUpdate {
            id: entry.id,
            state: JournalState::Intent,
            upid: None,
            detail: Some(json!({"create": c, "step": "configure", "smbiosUuid": smbios_uuid})),
        }));
        self.commit(node, txn)?;

        let configure_started = Instant::now();
        let update = configure_update(c, &live);
        if let Err(e) = self.client.update_config(&target, newid, &update).await {
            let settled = e.outcome_unknown()
                && self
                    .client
                    .vm_config(&target, newid)
                    .await
                    .is_ok_and(|cfg| self.is_configured(&cfg, c));
            if !settled {
                return Err(match e {
                    pve_client::Error::Locked { reason, .. } => ExecError::Locked {
                        node: node.to_owned(),
                        vmid,
                        reason,
                    },
                    other => pve_err("configure", other),
                });
            }
        }
        let configure_ms = ms_since(configure_started);

        let start_started = Instant::now();
        let mut start_error = None;
        if c.start {
            if let Err(e) = self.power_on(&target, newid).await {
                start_error = Some(pve_err("start", e));
            }
        }
        let start_ms = ms_since(start_started);
        let timings = json!({
            "cloneMs": clone_ms, "configureMs": configure_ms, "startMs": start_ms,
            "totalMs": ms_since(started),
        });
        let ev = event(
            node,
            "Created",
            format!(
                "created VM {vmid} ({}) on {} as {} instance {}",
                c.name, c.pve_node, c.role, c.instance_id
            ),
            json!({"vmid": vmid, "pveNode": c.pve_node, "instance": c.instance_id, "smbiosUuid": smbios_uuid, "timings": timings}),
        );
        self.finish(
            entry,
            JournalState::Done,
            json!({"create": c, "step": "done", "timings": timings}),
            Vec::new(),
            ev,
        )?;
        match start_error {
            Some(err) => Err(err),
            None if c.start => Ok(Executed::NeedsReadiness {
                instance_id: c.instance_id.clone(),
                vmid,
                pve_node: c.pve_node.as_str().to_owned(),
            }),
            None => Ok(Executed::Done),
        }
    }

    /// Re-reads the VMID of a create: at the target, then at the template's node (where the
    /// clone's placeholder lives until a cross-node clone finishes).
    pub(crate) async fn clone_state(
        &self,
        c: &CreateInstance,
        target: &NodeName,
        tpl_node: &NodeName,
        newid: VmId,
    ) -> Result<CloneState, pve_client::Error> {
        let mut nodes = vec![target.clone()];
        if tpl_node != target {
            nodes.push(tpl_node.clone());
        }
        for n in nodes {
            match self.client.vm_config(&n, newid).await {
                Ok(cfg) => {
                    let ours = cfg
                        .description()
                        .and_then(|d| planner::parse_marker(&d).ok().flatten())
                        .is_some_and(|m| {
                            m.instance_id == c.instance_id && m.operator == self.operator
                        });
                    // A clone in flight shows a placeholder (lock `clone`) without our
                    // description yet: wait for it rather than call it foreign.
                    if !ours && cfg.lock().is_none() {
                        return Ok(CloneState::Foreign);
                    }
                    return Ok(CloneState::Ours {
                        locked: cfg.lock().is_some(),
                    });
                }
                Err(pve_client::Error::ConfigNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(CloneState::Missing)
    }

    /// Waits (bounded) until a clone whose UPID is unknown has released its lock; `false`
    /// when it is still locked (or absent) at the deadline.
    async fn wait_unlocked(
        &self,
        c: &CreateInstance,
        target: &NodeName,
        tpl_node: &NodeName,
        newid: VmId,
        timeout: Duration,
    ) -> Result<bool, pve_client::Error> {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(100);
        loop {
            if let CloneState::Ours { locked: false, .. } =
                self.clone_state(c, target, tpl_node, newid).await?
            {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_secs(1));
        }
    }

    /// Starts a VM and waits; "already running" counts as success.
    pub(crate) async fn power_on(&self, n: &NodeName, v: VmId) -> Result<(), pve_client::Error> {
        let upid = self.client.start(n, v).await?;
        let timeout = self.tasks_timeout(self.config.tasks.power_ms);
        match self.client.wait_task_opt(upid.as_ref(), timeout).await {
            Ok(_) => Ok(()),
            Err(pve_client::Error::TaskFailed { exitstatus, .. })
                if exitstatus.contains("already running") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `cfg`'s description marker names `instance_id` of `node` and this operator.
    pub(crate) fn marker_matches(&self, cfg: &VmConfig, node: &str, instance_id: &str) -> bool {
        cfg.description()
            .and_then(|d| planner::parse_marker(&d).ok().flatten())
            .is_some_and(|m| {
                m.instance_id == instance_id
                    && m.node.as_str() == node
                    && m.operator == self.operator
            })
    }

    fn is_configured(&self, cfg: &VmConfig, c: &CreateInstance) -> bool {
        let tag = self.operator.ownership_tag();
        cfg.tags().contains(&tag)
            && cfg.description().as_deref().map(str::trim) == Some(c.config.description.trim())
    }
}

/// The config update for a fresh clone: the planner's parameters, with `sshkeys` encoded the
/// PVE way and each interface keeping the MAC the clone got.
pub(crate) fn configure_update(c: &CreateInstance, live: &VmConfig) -> ConfigUpdate {
    let mut update = ConfigUpdate::new();
    for (key, value) in c.config.to_pve_params() {
        if key == "sshkeys" {
            let keys: Vec<&str> = value.lines().collect();
            update = update.sshkeys(&keys);
        } else if is_net_key(&key) {
            update = update.set(key.clone(), keep_mac(&value, live.get_str(&key).as_deref()));
        } else {
            update = update.set(key, value);
        }
    }
    update
}

/// `net0`, `net1`, ...
pub(crate) fn is_net_key(key: &str) -> bool {
    key.strip_prefix("net")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `virtio,bridge=vmbr1` + live `virtio=BC:24:11:00:00:01,bridge=vmbr0` →
/// `virtio=BC:24:11:00:00:01,bridge=vmbr1`.
pub(crate) fn keep_mac(wanted: &str, live: Option<&str>) -> String {
    let Some(live_model) = live.and_then(|l| l.split(',').next()) else {
        return wanted.to_owned();
    };
    let Some((model, _mac)) = live_model.split_once('=') else {
        return wanted.to_owned();
    };
    let mut parts = wanted.splitn(2, ',');
    let wanted_model = parts.next().unwrap_or_default();
    if wanted_model != model {
        return wanted.to_owned();
    }
    match parts.next() {
        Some(rest) => format!("{live_model},{rest}"),
        None => live_model.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_of_the_clone_is_kept_when_the_model_matches() {
        assert_eq!(
            keep_mac(
                "virtio,bridge=vmbr1",
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr0")
            ),
            "virtio=BC:24:11:00:00:01,bridge=vmbr1"
        );
        assert_eq!(
            keep_mac(
                "e1000,bridge=vmbr1",
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr0")
            ),
            "e1000,bridge=vmbr1"
        );
        assert_eq!(keep_mac("virtio,bridge=vmbr1", None), "virtio,bridge=vmbr1");
    }

    #[test]
    fn net_keys_are_recognised() {
        assert!(is_net_key("net0"));
        assert!(is_net_key("net12"));
        assert!(!is_net_key("net"));
        assert!(!is_net_key("netx"));
        assert!(!is_net_key("ipconfig0"));
    }
}
