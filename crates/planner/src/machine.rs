//! The per-node state machine: derives each node's state from the inputs and plans its steps.

mod give_up;

use crate::capacity::Capacity;
use crate::config::{ManagedConfig, VmConfig, spec_hash};
use crate::inputs::{DesiredNode, InFlightKind, InstanceRole, Verification, VmStatus};
use crate::marker::{OwnershipMarker, format_marker};
use crate::output::{
    Action, ActionKind, CreateInstance, ExpectedIdentity, Hold, TemplateSource, VmRef,
};
use crate::reason::{BlockedBy, Reason};
use crate::view::{Live, View, compromising};
use chrono::{DateTime, Utc};
use model::{CloneMode, DriftPolicy, NodeName, ReplacementStrategy, TaintAction};
use std::borrow::Cow;

/// A node's state derived from the inputs, before planning.
pub(crate) struct NodeState<'a> {
    pub dn: &'a DesiredNode,
    pub current: Option<Live<'a>>,
    pub incoming: Option<Live<'a>>,
    pub retiring: Vec<Live<'a>>,
    /// Records whose VM is gone, with whether a step on their VMID is in flight.
    pub gone: Vec<(&'a crate::inputs::InstanceRecord, bool)>,
    /// Hash of the declared spec, when its gold image is declared (borrowed when cached).
    pub declared_hash: Option<Cow<'a, str>>,
    /// Whether the first active taint compromises the current instance (planning priority).
    pub compromised: bool,
    /// Whether the node has a ready instance (see [`Live::ready`]).
    pub available: bool,
    /// Whether the current instance is stopped and not isolated.
    pub current_stopped: bool,
    /// How the current instance differs from the declared spec.
    pub drift: Drift,
}

/// How the current instance differs from the declared spec (checked while its data is at hand;
/// the reason's text is only built when planning acts on it).
#[derive(Debug, PartialEq)]
pub(crate) enum Drift {
    /// Not drifted, or nothing to compare (no current instance, gold image undeclared, live
    /// config not read).
    None,
    /// The marker's spec hash is not the declared spec's.
    SpecChanged,
    /// These managed keys were edited out of band.
    ConfigEdited(Vec<&'static str>),
}

impl<'a> NodeState<'a> {
    /// The state of `dn`, the node at `position` in `desired.nodes`.
    pub fn derive(view: &View<'a>, position: usize, dn: &'a DesiredNode) -> Self {
        let name = dn.node.name();
        let mut st = NodeState {
            dn,
            current: None,
            incoming: None,
            retiring: Vec::new(),
            gone: Vec::new(),
            declared_hash: view.gold.get(&dn.node.spec.gold_image).map(|(_, hasher)| {
                match &dn.spec_hash {
                    Some(h) => Cow::Borrowed(h.as_str()),
                    None => Cow::Owned(hasher.hash(&dn.node.spec)),
                }
            }),
            compromised: false,
            available: false,
            current_stopped: false,
            drift: Drift::None,
        };
        for (rec, live) in view.records_of(position) {
            match live {
                Some(live) => match rec.role {
                    InstanceRole::Current if st.current.is_none() => st.current = Some(live),
                    InstanceRole::Incoming if st.incoming.is_none() => st.incoming = Some(live),
                    _ => st.retiring.push(live),
                },
                None => st
                    .gone
                    .push((rec, view.in_flight_vmids.contains(&rec.vmid))),
            }
        }
        st.compromised = st.current.is_some_and(|c| {
            view.taints_of(name, &c.rec.instance_id)
                .iter()
                .any(|t| compromising(t))
        });
        let serving = |l: &Live<'_>| crate::quarantine::serving(view, name, l);
        st.available =
            st.current.as_ref().is_some_and(serving) || st.incoming.as_ref().is_some_and(serving);
        if let Some(cur) = st.current {
            st.current_stopped = cur.vm.status == VmStatus::Stopped && !cur.cfg.isolated;
            st.drift = st.drift_of(cur);
        }
        st
    }

    /// Whether planning leaves the node alone and it takes no capacity: one live, ready,
    /// running current instance, nothing else recorded, no taint on it, nothing in flight, no
    /// drift. [`Machine::plan_node`] emits nothing for such a node, so it is not planned at all
    /// (a converged fleet is all quiet nodes).
    pub fn quiet(&self, view: &View<'a>) -> bool {
        let Some(cur) = self.current else {
            return false;
        };
        let name = self.dn.node.name();
        self.incoming.is_none()
            && self.retiring.is_empty()
            && self.gone.is_empty()
            && self.available
            && !self.current_stopped
            && self.drift == Drift::None
            && view.in_flight_of(name).is_empty()
            && view.taints_of(name, &cur.rec.instance_id).is_empty()
    }

    /// How `cur` differs from the declared spec.
    fn drift_of(&self, cur: Live<'_>) -> Drift {
        let Some(declared) = &self.declared_hash else {
            return Drift::None;
        };
        if cur.marker.spec_hash != **declared {
            return Drift::SpecChanged;
        }
        match &cur.cfg.live {
            Some(live) => {
                let keys = live.differing_keys_from_spec(&self.dn.node.spec);
                if keys.is_empty() {
                    Drift::None
                } else {
                    Drift::ConfigEdited(keys)
                }
            }
            None => Drift::None,
        }
    }
}

/// One planning run.
pub(crate) struct Machine<'v, 'a> {
    pub view: &'v View<'a>,
    pub cap: Capacity<'a>,
    pub now: DateTime<Utc>,
    pub breaker: Option<String>,
    pub actions: Vec<Action>,
    pub holds: Vec<Hold>,
}

fn vm_ref(l: &Live<'_>) -> VmRef {
    VmRef {
        vmid: l.rec.vmid,
        pve_node: l.vm.pve_node.clone(),
        instance_id: l.rec.instance_id.clone(),
    }
}

impl<'v, 'a> Machine<'v, 'a> {
    pub fn act(&mut self, node: &NodeName, kind: ActionKind, reason: Reason) {
        if matches!(kind, ActionKind::Destroy(_)) {
            self.cap.destroys += 1;
        }
        self.actions.push(Action {
            node: node.clone(),
            kind,
            reason,
        });
    }

    pub fn hold(&mut self, node: &NodeName, wanted: &str, blocked_by: BlockedBy, reason: Reason) {
        self.holds.push(Hold {
            node: node.clone(),
            wanted: wanted.to_string(),
            blocked_by,
            reason,
        });
    }

    /// Destroy a VM after the breaker, lock, state and identity checks.
    pub fn destroy(
        &mut self,
        node: &NodeName,
        identity: ExpectedIdentity,
        lock: Option<&str>,
        status: VmStatus,
        reason: Reason,
    ) {
        if let Some(detail) = &self.breaker {
            let blocked = BlockedBy::Breaker {
                detail: detail.clone(),
            };
            self.hold(node, "destroy", blocked, reason);
        } else if let Some(lock) = lock {
            let blocked = BlockedBy::Locked {
                vmid: identity.vmid,
                lock: lock.to_string(),
            };
            self.hold(node, "destroy", blocked, reason);
        } else if status == VmStatus::Unknown {
            let blocked = BlockedBy::StatusUnknown {
                vmid: identity.vmid,
            };
            self.hold(node, "destroy", blocked, reason);
        } else {
            self.act(node, ActionKind::Destroy(identity), reason);
        }
    }

    /// Destroy a recorded instance, proving its identity against the record first.
    pub(crate) fn destroy_recorded(&mut self, node: &NodeName, l: Live<'_>, reason: Reason) {
        let mismatch = match (&l.vm.name, &l.cfg.smbios_uuid) {
            (None, _) => Some("name not visible yet".to_string()),
            (Some(n), _) if *n != l.rec.name => {
                Some(format!("name is {n}, recorded {}", l.rec.name))
            }
            (_, None) => Some("SMBIOS uuid unknown".to_string()),
            (_, Some(u)) if *u != l.rec.smbios_uuid => Some(format!(
                "SMBIOS uuid is {u}, recorded {}",
                l.rec.smbios_uuid
            )),
            _ => None,
        };
        if let Some(detail) = mismatch {
            let blocked = BlockedBy::IdentityMismatch {
                vmid: l.rec.vmid,
                detail,
            };
            self.hold(node, "destroy", blocked, reason);
            return;
        }
        let identity = ExpectedIdentity {
            vmid: l.rec.vmid,
            pve_node: l.vm.pve_node.clone(),
            name: l.rec.name.clone(),
            smbios_uuid: l.rec.smbios_uuid.clone(),
            instance_id: l.rec.instance_id.clone(),
            recorded: true,
        };
        self.destroy(node, identity, l.vm.lock.as_deref(), l.vm.status, reason);
    }

    /// Everything a create needs, or what blocks it.
    fn prepare_create(
        &self,
        st: &NodeState<'a>,
        role: InstanceRole,
    ) -> Result<CreateInstance, BlockedBy> {
        let node = &st.dn.node;
        let spec = &node.spec;
        let gold_name = &spec.gold_image;
        let (gold, _) =
            self.view
                .gold
                .get(gold_name)
                .ok_or_else(|| BlockedBy::GoldImageUndeclared {
                    gold_image: gold_name.to_string(),
                })?;
        let unverified = |detail: &str| BlockedBy::TemplateUnverified {
            gold_image: gold_name.to_string(),
            detail: detail.to_string(),
        };
        let tmpl = self
            .view
            .templates
            .get(gold_name)
            .ok_or_else(|| unverified("template not found"))?;
        match &tmpl.verification {
            Verification::Verified => {}
            Verification::Failed(why) => return Err(unverified(why)),
            Verification::Unknown => return Err(unverified("not checked yet")),
        }
        let tmpl_vmid = tmpl
            .vmid
            .ok_or_else(|| unverified("template VMID unknown"))?;
        let vmid = self
            .cap
            .pick_vmid(self.view, &spec.vmids)
            .ok_or(BlockedBy::NoVmidLeft { range: spec.vmids })?;
        let pve_node =
            self.cap
                .pick_pve_node(self.view, node)
                .ok_or(BlockedBy::NoPveNodeCapacity {
                    memory_mib: spec.resources.memory.mib(),
                })?;
        let max_on = self.view.policy.clones_per_pve_node;
        let on = self.cap.clones_on.get(&tmpl.pve_node).copied().unwrap_or(0);
        if on >= max_on {
            return Err(BlockedBy::PveNodeClones {
                pve_node: tmpl.pve_node.clone(),
                in_flight: on,
                max: max_on,
            });
        }
        let storage = match spec.clone.mode {
            CloneMode::Full => spec.clone.storage.clone(),
            CloneMode::Linked => None,
        };
        if let Some(s) = &storage {
            let max_to = self.view.policy.clones_per_storage;
            let to = self.cap.clones_to.get(s.as_str()).copied().unwrap_or(0);
            if to >= max_to {
                return Err(BlockedBy::StorageClones {
                    storage: s.to_string(),
                    in_flight: to,
                    max: max_to,
                });
            }
        }
        let instance_id = format!("i{vmid}-{}", self.now.format("%Y%m%d%H%M%S"));
        let hash = st
            .declared_hash
            .as_deref()
            .map_or_else(|| spec_hash(spec, &gold.spec.digest), str::to_string);
        let marker = OwnershipMarker {
            node: node.name().clone(),
            instance_id: instance_id.clone(),
            spec_hash: hash.clone(),
            gold_digest: gold.spec.digest,
            operator: self.view.policy.operator_id.clone(),
        };
        let managed = ManagedConfig::from_spec(spec);
        let mut tags = vec![self.view.tag.clone()];
        tags.extend(managed.tags.iter().map(|t| t.to_string()));
        Ok(CreateInstance {
            role,
            instance_id,
            vmid,
            pve_node,
            template: TemplateSource {
                gold_image: gold_name.clone(),
                vmid: tmpl_vmid,
                pve_node: tmpl.pve_node.clone(),
                digest: gold.spec.digest,
            },
            clone_mode: spec.clone.mode,
            storage,
            name: node.name().to_string(),
            spec_hash: hash,
            generation: st.dn.generation,
            config: VmConfig {
                managed,
                tags,
                description: format_marker(&marker),
            },
            start: true,
        })
    }

    fn commit_create(&mut self, st: &NodeState<'a>, c: CreateInstance, reason: Reason) {
        let node = &st.dn.node;
        self.cap.planned_vmids.insert(c.vmid);
        *self.cap.planned_mib.entry(c.pve_node.clone()).or_default() +=
            node.spec.resources.memory.mib();
        *self
            .cap
            .clones_on
            .entry(c.template.pve_node.clone())
            .or_default() += 1;
        if let Some(s) = &c.storage {
            *self.cap.clones_to.entry(s.to_string()).or_default() += 1;
        }
        if let Some(p) = node
            .spec
            .placement
            .pve_nodes
            .iter()
            .find(|p| **p == c.pve_node)
        {
            self.cap.count_spread(node, p);
        }
        self.act(node.name(), ActionKind::Create(Box::new(c)), reason);
    }

    /// Plans one declared node.
    pub fn plan_node(&mut self, st: &NodeState<'a>) {
        let name = st.dn.node.name();
        let view = self.view;
        let busy = view.in_flight_of(name);
        // Records whose VM is gone are forgotten (unless a step on their VMID is running).
        for (rec, pending) in &st.gone {
            if view.listed_as_ours(&rec.vmid) {
                // A VM with our tag still holds the VMID, but its marker was not read or names
                // another instance: forgetting it would clone a duplicate beside it. Hold until
                // the next read settles it (or a person looks).
                self.hold(
                    name,
                    "forget",
                    BlockedBy::StatusUnknown { vmid: rec.vmid },
                    Reason::InstanceGone {
                        instance_id: rec.instance_id.clone(),
                        vmid: rec.vmid,
                        role: rec.role,
                    },
                );
                return;
            }
            if !pending {
                let kind = ActionKind::ForgetInstance {
                    instance_id: rec.instance_id.clone(),
                    vmid: rec.vmid,
                };
                let reason = Reason::InstanceGone {
                    instance_id: rec.instance_id.clone(),
                    vmid: rec.vmid,
                    role: rec.role,
                };
                self.act(name, kind, reason);
            }
        }
        // A compromised instance is isolated at once: no budget, breaker or cap applies.
        let was_available = st.available;
        let mut isolated_now = Vec::new();
        for live in [st.current, st.incoming].into_iter().flatten() {
            let taints = view.taints_of(name, &live.rec.instance_id);
            let Some(t) = taints.iter().find(|t| compromising(t)) else {
                continue;
            };
            if live.cfg.isolated {
                continue;
            }
            let reason = Reason::Compromised {
                taint: t.id,
                source: t.source,
                reason: t.reason.clone(),
            };
            let running = busy
                .iter()
                .any(|f| f.kind == InFlightKind::Isolate && f.vmid == Some(live.rec.vmid));
            if running {
                continue;
            }
            if let Some(lock) = &live.vm.lock {
                let blocked = BlockedBy::Locked {
                    vmid: live.rec.vmid,
                    lock: lock.clone(),
                };
                self.hold(name, "isolate", blocked, reason);
            } else if live.vm.status == VmStatus::Unknown {
                let blocked = BlockedBy::StatusUnknown {
                    vmid: live.rec.vmid,
                };
                self.hold(name, "isolate", blocked, reason);
            } else {
                isolated_now.push(live.rec.vmid);
                self.act(name, ActionKind::Isolate(vm_ref(&live)), reason);
            }
        }
        let ready_after = |l: &Option<Live<'_>>| {
            l.is_some_and(|l| l.ready() && !isolated_now.contains(&l.rec.vmid))
        };
        let available = if isolated_now.is_empty() {
            st.available
        } else {
            ready_after(&st.current) || ready_after(&st.incoming)
        };
        if was_available && !available {
            self.cap.mark_unavailable(view, name);
        }
        if let Some(f) = busy.first() {
            let blocked = BlockedBy::InFlight {
                kind: f.kind.clone(),
                vmid: f.vmid,
            };
            let reason = st
                .gone
                .first()
                .map(|(r, _)| Reason::InstanceGone {
                    instance_id: r.instance_id.clone(),
                    vmid: r.vmid,
                    role: r.role,
                })
                .unwrap_or(Reason::Missing);
            if st.current.is_none() && st.incoming.is_none() {
                self.hold(name, "create", blocked, reason);
            }
            return;
        }
        for l in &st.retiring {
            self.retire(name, *l);
        }
        if let Some(g) = view.gave_up_of(name)
            && self.plan_gave_up(st, g)
        {
            return;
        }
        if let Some(inc) = st.incoming {
            self.plan_incoming(st, inc);
            return;
        }
        let Some(cur) = st.current else {
            let reason = st
                .gone
                .iter()
                .find(|(r, _)| r.role == InstanceRole::Current)
                .map(|(r, _)| Reason::InstanceGone {
                    instance_id: r.instance_id.clone(),
                    vmid: r.vmid,
                    role: r.role,
                })
                .unwrap_or(Reason::Missing);
            if let Some(g) = self.retry_pending(name) {
                self.hold(name, "create", give_up::retry_block(g), reason);
                return;
            }
            match self.prepare_create(st, InstanceRole::Current) {
                Ok(c) => self.commit_create(st, c, reason),
                Err(b) => self.hold(name, "create", b, reason),
            }
            return;
        };
        let taints = view.taints_of(name, &cur.rec.instance_id);
        if let Some(t) = taints.iter().find(|t| t.action == TaintAction::Isolate) {
            let reason = Reason::Compromised {
                taint: t.id,
                source: t.source,
                reason: t.reason.clone(),
            };
            self.hold(
                name,
                "replace",
                BlockedBy::KeptForForensics { taint: t.id },
                reason,
            );
            return;
        }
        let tainted = taints
            .iter()
            .find(|t| matches!(t.action, TaintAction::Replace | TaintAction::Quarantine))
            .map(|t| {
                let (taint, source, reason) = (t.id, t.source, t.reason.clone());
                if compromising(t) {
                    Reason::Compromised {
                        taint,
                        source,
                        reason,
                    }
                } else {
                    Reason::Tainted {
                        taint,
                        source,
                        reason,
                    }
                }
            });
        let wanted = match tainted {
            Some(r) => Some(r),
            None => match self.drift(st, cur) {
                Some(r) if st.dn.node.spec.drift == DriftPolicy::Report => {
                    self.hold(name, "replace", BlockedBy::DriftReportOnly, r);
                    None
                }
                other => other,
            },
        };
        match wanted {
            Some(reason) => self.replace(st, cur, available, reason),
            // A compromised instance (one a taint marks compromised, even if its action only
            // reports, or one isolated) is never powered on again: the node says why it stays
            // down instead.
            None if cur.vm.status == VmStatus::Stopped => {
                match taints.iter().find(|t| compromising(t)) {
                    Some(t) => {
                        let blocked = BlockedBy::Compromised { vmid: cur.rec.vmid };
                        let reason = Reason::Compromised {
                            taint: t.id,
                            source: t.source,
                            reason: t.reason.clone(),
                        };
                        self.hold(name, "start", blocked, reason);
                    }
                    None if cur.cfg.isolated => {
                        let blocked = BlockedBy::Compromised { vmid: cur.rec.vmid };
                        let reason = Reason::Stopped {
                            role: InstanceRole::Current,
                        };
                        self.hold(name, "start", blocked, reason);
                    }
                    None => self.start(name, cur, InstanceRole::Current),
                }
            }
            None => {}
        }
    }

    fn start(&mut self, name: &NodeName, l: Live<'_>, role: InstanceRole) {
        let reason = Reason::Stopped { role };
        match &l.vm.lock {
            Some(lock) => {
                let blocked = BlockedBy::Locked {
                    vmid: l.rec.vmid,
                    lock: lock.clone(),
                };
                self.hold(name, "start", blocked, reason);
            }
            None => self.act(name, ActionKind::Start(vm_ref(&l)), reason),
        }
    }

    /// The drift of `cur` (the node's current instance) as a reason, if it drifted.
    fn drift(&self, st: &NodeState<'a>, cur: Live<'_>) -> Option<Reason> {
        match &st.drift {
            Drift::None => None,
            Drift::SpecChanged => Some(Reason::SpecChanged {
                recorded: cur.marker.spec_hash.clone(),
                declared: st.declared_hash.as_deref().unwrap_or_default().to_string(),
            }),
            Drift::ConfigEdited(keys) => Some(Reason::ConfigEdited {
                keys: keys.iter().map(|k| k.to_string()).collect(),
            }),
        }
    }

    fn plan_incoming(&mut self, st: &NodeState<'a>, inc: Live<'a>) {
        let name = st.dn.node.name();
        let promote_reason = Reason::IncomingReady {
            instance_id: inc.rec.instance_id.clone(),
            vmid: inc.rec.vmid,
        };
        match inc.vm.status {
            VmStatus::Unknown => {
                let blocked = BlockedBy::StatusUnknown { vmid: inc.rec.vmid };
                self.hold(name, "promote", blocked, promote_reason);
            }
            VmStatus::Stopped if !inc.cfg.isolated => self.start(name, inc, InstanceRole::Incoming),
            _ if inc.ready() => {
                let kind = ActionKind::PromoteIncoming {
                    instance_id: inc.rec.instance_id.clone(),
                    vmid: inc.rec.vmid,
                    supersedes: st.current.map(|c| c.rec.instance_id.clone()),
                };
                self.act(name, kind, promote_reason);
                if let Some(cur) = st.current {
                    self.retire(name, cur);
                }
            }
            _ => {
                let blocked = if inc.cfg.ready == Some(false) || inc.cfg.isolated {
                    BlockedBy::ReadinessFailed { vmid: inc.rec.vmid }
                } else {
                    BlockedBy::AwaitingReadiness { vmid: inc.rec.vmid }
                };
                self.hold(name, "promote", blocked, promote_reason);
            }
        }
    }

    fn replace(&mut self, st: &NodeState<'a>, cur: Live<'a>, available: bool, reason: Reason) {
        let name = st.dn.node.name();
        if let Some(g) = self.retry_pending(name) {
            self.wait_for_retry(st, cur, g, reason);
            return;
        }
        if let Some(detail) = &self.breaker {
            let blocked = BlockedBy::Breaker {
                detail: detail.clone(),
            };
            self.hold(name, "replace", blocked, reason);
            return;
        }
        let max = self.view.policy.max_replacements_in_flight;
        if self.cap.replacements >= max {
            let blocked = BlockedBy::ReplacementCap {
                in_flight: self.cap.replacements,
                max,
            };
            self.hold(name, "replace", blocked, reason);
            return;
        }
        let create = match self.prepare_create(st, InstanceRole::Incoming) {
            Ok(c) => c,
            Err(b) => {
                self.hold(name, "replace", b, reason);
                return;
            }
        };
        let stop_first = st.dn.node.spec.replacement.strategy == ReplacementStrategy::StopFirst;
        if stop_first && cur.vm.status != VmStatus::Stopped {
            if cur.vm.status == VmStatus::Unknown {
                let blocked = BlockedBy::StatusUnknown { vmid: cur.rec.vmid };
                self.hold(name, "stop", blocked, reason);
                return;
            }
            if let Some(lock) = &cur.vm.lock {
                let blocked = BlockedBy::Locked {
                    vmid: cur.rec.vmid,
                    lock: lock.clone(),
                };
                self.hold(name, "stop", blocked, reason);
                return;
            }
            if available {
                if let Some(b) = self.cap.budget_block(self.view, name) {
                    self.hold(name, "stop", b, reason);
                    return;
                }
                self.cap.mark_unavailable(self.view, name);
            }
            self.act(name, ActionKind::Stop(vm_ref(&cur)), reason.clone());
        }
        self.cap.replacements += 1;
        self.commit_create(st, create, reason);
    }
}
