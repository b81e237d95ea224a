//! Test fixtures: a `Scenario` builder for planner inputs and a pure simulator applying a plan.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use model::{
    ApiVersion, CloneMode, CloneSpec, DisruptionBudget, DisruptionBudgetSpec, DriftPolicy,
    GoldImage, GoldImageSpec, LabelSelector, Labels, Metadata, Node, NodeSpec, Placement,
    Readiness, Replacement, ReplacementStrategy, Resources, Severity, TaintAction, TemplateRef,
    VmId, VmIdRange,
};
use planner::{
    ActionKind, BreakerRecord, Desired, DesiredNode, InstanceRecord, InstanceRole, ManagedConfig,
    Observed, ObservedVm, OperatorId, OwnedVmConfig, OwnershipMarker, Plan, Policy, PveNodeInfo,
    Records, Taint, TaintSource, Taints, TemplateStatus, Verification, VmStatus, VmidLease,
    parse_marker, spec_hash,
};

pub fn vmid(n: u32) -> VmId {
    VmId::new(n).expect("test vmid in range")
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0)
        .single()
        .expect("valid time")
}

pub fn digest() -> model::Sha256Digest {
    format!("sha256:{}", "ab".repeat(32))
        .parse()
        .expect("valid digest")
}

pub fn operator() -> OperatorId {
    "test".parse().expect("valid operator id")
}

pub fn instance_id(vmid: u32) -> String {
    format!("i{vmid}-20261101000000")
}

/// Planner inputs under construction; also the simulated world `apply` mutates.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub desired: Desired,
    pub observed: Observed,
    pub records: Records,
    pub taints: Taints,
    pub policy: Policy,
    pub now: DateTime<Utc>,
    next_taint: i64,
    next_uuid: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

impl Scenario {
    /// Two online PVE nodes with 64 GiB free, one verified gold image `base` (template 9000 on
    /// pve1), no nodes.
    pub fn new() -> Self {
        let gold = GoldImage {
            api_version: ApiVersion::V1alpha1,
            metadata: Metadata::named("base".parse().expect("valid")),
            spec: GoldImageSpec {
                template: TemplateRef {
                    pve_node: "pve1".parse().expect("valid"),
                    vmid: Some(vmid(9000)),
                    name: None,
                },
                digest: digest(),
                trusted_keys: vec![
                    format!("ed25519:{}", "0f".repeat(32))
                        .parse()
                        .expect("valid"),
                ],
            },
        };
        let pve = |n: &str| PveNodeInfo {
            name: n.parse().expect("valid"),
            online: true,
            free_memory_mib: 65536,
        };
        Scenario {
            desired: Desired {
                nodes: vec![],
                gold_images: vec![gold],
                budgets: vec![],
            },
            observed: Observed {
                pve_nodes: vec![pve("pve1"), pve("pve2")],
                vms: vec![ObservedVm {
                    vmid: vmid(9000),
                    pve_node: "pve1".parse().expect("valid"),
                    name: Some("base".into()),
                    status: VmStatus::Stopped,
                    tags: vec![],
                    lock: None,
                    template: true,
                    config: None,
                }],
                templates: vec![TemplateStatus {
                    gold_image: "base".parse().expect("valid"),
                    vmid: Some(vmid(9000)),
                    pve_node: "pve1".parse().expect("valid"),
                    verification: Verification::Verified,
                }],
            },
            records: Records::default(),
            taints: Taints::default(),
            policy: Policy::new(operator()),
            now: t0(),
            next_taint: 1,
            next_uuid: 1,
        }
    }

    /// Adds a node; its `role` label is the name up to the last `-` (`worker-1` → `worker`),
    /// its VMID range `4100 + 100*i ..= 4199 + 100*i`.
    pub fn node(mut self, name: &str) -> Self {
        let i = u32::try_from(self.desired.nodes.len()).expect("few nodes");
        let role = name.rsplit_once('-').map(|(r, _)| r).unwrap_or(name);
        let mut labels = Labels::new();
        labels.insert("role".into(), role.into());
        let node = Node {
            api_version: ApiVersion::V1alpha1,
            metadata: Metadata {
                name: name.parse().expect("valid node name"),
                labels,
            },
            spec: NodeSpec {
                gold_image: "base".parse().expect("valid"),
                vmids: VmIdRange {
                    from: vmid(4100 + 100 * i),
                    to: vmid(4199 + 100 * i),
                },
                placement: Placement {
                    pve_nodes: vec![
                        "pve1".parse().expect("valid"),
                        "pve2".parse().expect("valid"),
                    ],
                },
                clone: CloneSpec {
                    mode: CloneMode::Linked,
                    storage: None,
                },
                resources: Resources {
                    cores: 2,
                    memory: "4GiB".parse().expect("valid"),
                },
                network: vec![],
                cloud_init: None,
                readiness: Readiness::default(),
                replacement: Replacement {
                    strategy: ReplacementStrategy::StopFirst,
                },
                drift: DriftPolicy::Replace,
                tags: vec!["jsonrag".parse().expect("valid")],
            },
        };
        self.desired.nodes.push(DesiredNode {
            node,
            generation: 1,
            spec_hash: None,
        });
        self
    }

    fn last(&mut self) -> &mut Node {
        &mut self
            .desired
            .nodes
            .last_mut()
            .expect("add a node first")
            .node
    }

    pub fn surge_first(mut self) -> Self {
        self.last().spec.replacement.strategy = ReplacementStrategy::SurgeFirst;
        self
    }

    pub fn drift_report(mut self) -> Self {
        self.last().spec.drift = DriftPolicy::Report;
        self
    }

    pub fn memory(mut self, m: &str) -> Self {
        self.last().spec.resources.memory = m.parse().expect("valid memory");
        self
    }

    /// A budget over nodes with `role=<role>`.
    pub fn budget(mut self, name: &str, role: &str, max: u32) -> Self {
        let mut match_labels = Labels::new();
        match_labels.insert("role".into(), role.into());
        self.desired.budgets.push(DisruptionBudget {
            api_version: ApiVersion::V1alpha1,
            metadata: Metadata::named(name.parse().expect("valid")),
            spec: DisruptionBudgetSpec {
                selector: LabelSelector {
                    match_labels,
                    match_expressions: vec![],
                },
                max_unavailable: max,
            },
        });
        self
    }

    fn last_name(&self) -> model::NodeName {
        self.desired
            .nodes
            .last()
            .expect("add a node first")
            .node
            .name()
            .clone()
    }

    fn spec_hash_of(&self, name: &model::NodeName) -> String {
        let dn = self
            .desired
            .nodes
            .iter()
            .find(|n| n.node.name() == name)
            .expect("declared node");
        spec_hash(&dn.node.spec, &digest())
    }

    /// An owned VM plus its record, for node `node` (declared or not).
    pub fn instance_of(
        mut self,
        node: &str,
        n: u32,
        role: InstanceRole,
        status: VmStatus,
        ready: Option<bool>,
    ) -> Self {
        let node_name: model::NodeName = node.parse().expect("valid");
        let hash = if self
            .desired
            .nodes
            .iter()
            .any(|d| *d.node.name() == node_name)
        {
            self.spec_hash_of(&node_name)
        } else {
            "0".repeat(64)
        };
        let live = self
            .desired
            .nodes
            .iter()
            .find(|d| *d.node.name() == node_name)
            .map(|d| ManagedConfig::from_spec(&d.node.spec));
        let id = instance_id(n);
        let marker = OwnershipMarker {
            node: node_name.clone(),
            instance_id: id.clone(),
            spec_hash: hash.clone(),
            gold_digest: digest(),
            operator: operator(),
        };
        self.observed.vms.push(ObservedVm {
            vmid: vmid(n),
            pve_node: "pve1".parse().expect("valid"),
            name: Some(node.to_string()),
            status,
            tags: vec![self.policy.operator_id.ownership_tag(), "jsonrag".into()],
            lock: None,
            template: false,
            config: Some(OwnedVmConfig {
                marker: Some(marker),
                smbios_uuid: Some(format!("uuid-{n}")),
                ready,
                isolated: false,
                live,
            }),
        });
        self.records.instances.push(InstanceRecord {
            node: node_name.clone(),
            role,
            instance_id: id,
            vmid: vmid(n),
            pve_node: "pve1".parse().expect("valid"),
            name: node.to_string(),
            smbios_uuid: format!("uuid-{n}"),
            spec_hash: hash,
        });
        self.records.leases.push(VmidLease {
            vmid: vmid(n),
            node: node_name,
        });
        self
    }

    /// The last node's current instance: running and ready.
    pub fn running(self, n: u32) -> Self {
        let node = self.last_name().to_string();
        self.instance_of(
            &node,
            n,
            InstanceRole::Current,
            VmStatus::Running,
            Some(true),
        )
    }

    /// The last node's current instance: stopped.
    pub fn stopped(self, n: u32) -> Self {
        let node = self.last_name().to_string();
        self.instance_of(&node, n, InstanceRole::Current, VmStatus::Stopped, None)
    }

    /// The last node's incoming instance.
    pub fn incoming(self, n: u32, ready: Option<bool>) -> Self {
        let node = self.last_name().to_string();
        self.instance_of(&node, n, InstanceRole::Incoming, VmStatus::Running, ready)
    }

    fn vm_mut(&mut self, n: u32) -> &mut ObservedVm {
        self.observed
            .vms
            .iter_mut()
            .find(|v| v.vmid.get() == n)
            .expect("observed VM")
    }

    /// The VM keeps its ownership tag but its config was not read this pass (a failed or
    /// skipped read): the planner does not know whose instance it is.
    pub fn config_unread(mut self, n: u32) -> Self {
        self.vm_mut(n).config = None;
        self
    }

    pub fn locked(mut self, n: u32, lock: &str) -> Self {
        self.vm_mut(n).lock = Some(lock.into());
        self
    }

    pub fn isolated(mut self, n: u32) -> Self {
        if let Some(c) = self.vm_mut(n).config.as_mut() {
            c.isolated = true;
        }
        self
    }

    /// The VM's marker records another spec hash (the declaration changed since).
    pub fn built_from_old_spec(mut self, n: u32) -> Self {
        if let Some(m) = self
            .vm_mut(n)
            .config
            .as_mut()
            .and_then(|c| c.marker.as_mut())
        {
            m.spec_hash = "1".repeat(64);
        }
        self
    }

    /// Someone changed the VM's cores outside reborn.
    pub fn cores_edited(mut self, n: u32, cores: u16) -> Self {
        if let Some(live) = self.vm_mut(n).config.as_mut().and_then(|c| c.live.as_mut()) {
            live.cores = cores;
        }
        self
    }

    /// Taints the last node's current instance.
    pub fn tainted(
        mut self,
        source: TaintSource,
        severity: Severity,
        action: TaintAction,
        reason: &str,
    ) -> Self {
        let node = self.last_name();
        let instance = self
            .records
            .instances
            .iter()
            .find(|r| r.node == node && r.role == InstanceRole::Current)
            .map(|r| r.instance_id.clone());
        let id = self.next_taint;
        self.next_taint += 1;
        self.taints.active.push(Taint {
            id,
            node,
            instance_id: instance,
            source,
            severity,
            action,
            quarantine_retention: None,
            reason: reason.into(),
            created_at: self.now,
        });
        self
    }

    /// Taints the last node's current instance for quarantine (critical, from Cerbos): replace
    /// it, and keep the old instance stopped and isolated for `retention` (e.g. `24h`).
    pub fn quarantined(self, retention: &str) -> Self {
        let mut s = self.tainted(
            TaintSource::Cerbos,
            Severity::Critical,
            TaintAction::Quarantine,
            "cross-tenant reads",
        );
        if let Some(t) = s.taints.active.last_mut() {
            t.quarantine_retention = Some(retention.parse().expect("valid duration"));
        }
        s
    }

    /// A VM that is not ours.
    pub fn foreign(mut self, n: u32, name: &str, tags: &[&str]) -> Self {
        self.observed.vms.push(ObservedVm {
            vmid: vmid(n),
            pve_node: "pve2".parse().expect("valid"),
            name: Some(name.into()),
            status: VmStatus::Running,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            lock: None,
            template: false,
            config: None,
        });
        self
    }

    pub fn breaker_tripped(mut self, reason: &str) -> Self {
        self.records.breaker = BreakerRecord::Tripped {
            at: self.now,
            reason: reason.into(),
        };
        self
    }

    pub fn destroyed_minutes_ago(mut self, mins: &[i64]) -> Self {
        for m in mins {
            self.records
                .recent_destroys
                .push(self.now - chrono::Duration::minutes(*m));
        }
        self
    }

    pub fn template_unverified(mut self, why: &str) -> Self {
        self.observed.templates[0].verification = Verification::Failed(why.into());
        self
    }

    pub fn plan(&self) -> Plan {
        planner::plan(
            &self.desired,
            &self.observed,
            &self.records,
            &self.taints,
            &self.policy,
            self.now,
        )
    }

    /// Simulates a successful execution of every action (instances become ready at once).
    pub fn apply(&mut self, plan: &Plan) {
        for a in &plan.actions {
            match &a.kind {
                ActionKind::Create(c) => {
                    let marker = parse_marker(&c.config.description)
                        .expect("valid marker")
                        .expect("marker present");
                    let uuid = format!("uuid-{}-{}", c.vmid, self.next_uuid);
                    self.next_uuid += 1;
                    self.observed.vms.push(ObservedVm {
                        vmid: c.vmid,
                        pve_node: c.pve_node.clone(),
                        name: Some(c.name.clone()),
                        status: if c.start {
                            VmStatus::Running
                        } else {
                            VmStatus::Stopped
                        },
                        tags: c.config.tags.clone(),
                        lock: None,
                        template: false,
                        config: Some(OwnedVmConfig {
                            marker: Some(marker),
                            smbios_uuid: Some(uuid.clone()),
                            ready: Some(c.start),
                            isolated: false,
                            live: Some(c.config.managed.clone()),
                        }),
                    });
                    if let Some(n) = self
                        .observed
                        .pve_nodes
                        .iter_mut()
                        .find(|n| n.name == c.pve_node)
                    {
                        n.free_memory_mib = n
                            .free_memory_mib
                            .saturating_sub(c.config.managed.memory_mib);
                    }
                    self.records.leases.push(VmidLease {
                        vmid: c.vmid,
                        node: a.node.clone(),
                    });
                    self.records.instances.push(InstanceRecord {
                        node: a.node.clone(),
                        role: c.role,
                        instance_id: c.instance_id.clone(),
                        vmid: c.vmid,
                        pve_node: c.pve_node.clone(),
                        name: c.name.clone(),
                        smbios_uuid: uuid,
                        spec_hash: c.spec_hash.clone(),
                    });
                }
                ActionKind::Start(r) => {
                    let vm = self.vm_mut(r.vmid.get());
                    vm.status = VmStatus::Running;
                    if let Some(c) = vm.config.as_mut() {
                        c.ready = Some(true);
                    }
                }
                ActionKind::Stop(r) => {
                    let vm = self.vm_mut(r.vmid.get());
                    vm.status = VmStatus::Stopped;
                    if let Some(c) = vm.config.as_mut() {
                        c.ready = None;
                    }
                }
                ActionKind::Isolate(r) => {
                    if let Some(c) = self.vm_mut(r.vmid.get()).config.as_mut() {
                        c.isolated = true;
                    }
                }
                ActionKind::Destroy(id) => {
                    self.observed.vms.retain(|v| v.vmid != id.vmid);
                    self.records
                        .instances
                        .retain(|r| !(r.vmid == id.vmid && r.instance_id == id.instance_id));
                    self.records.leases.retain(|l| l.vmid != id.vmid);
                    self.records.recent_destroys.push(self.now);
                }
                ActionKind::PromoteIncoming {
                    instance_id,
                    supersedes,
                    ..
                } => {
                    for r in &mut self.records.instances {
                        if r.node == a.node && Some(&r.instance_id) == supersedes.as_ref() {
                            r.role = InstanceRole::Retiring;
                        }
                        if r.node == a.node && r.instance_id == *instance_id {
                            r.role = InstanceRole::Current;
                        }
                    }
                }
                ActionKind::ForgetInstance { instance_id, vmid } => {
                    self.records
                        .instances
                        .retain(|r| !(r.vmid == *vmid && r.instance_id == *instance_id));
                    self.records.leases.retain(|l| l.vmid != *vmid);
                }
                ActionKind::AdoptInstance { record } => {
                    self.records.instances.push(InstanceRecord {
                        node: a.node.clone(),
                        role: record.role,
                        instance_id: record.instance_id.clone(),
                        vmid: record.vmid,
                        pve_node: record.pve_node.clone(),
                        name: record.name.clone(),
                        smbios_uuid: record.smbios_uuid.clone(),
                        spec_hash: record.spec_hash.clone(),
                    });
                }
            }
        }
        if let planner::BreakerState::Tripped {
            detail,
            newly: true,
        } = &plan.breaker.state
        {
            self.records.breaker = BreakerRecord::Tripped {
                at: self.now,
                reason: detail.clone(),
            };
        }
    }

    /// Plans and applies until a plan is empty; returns the plans (the last one empty).
    pub fn converge(&mut self, max_rounds: usize) -> Vec<Plan> {
        let mut plans = Vec::new();
        for _ in 0..max_rounds {
            let p = self.plan();
            let done = p.is_empty();
            self.apply(&p);
            plans.push(p);
            if done {
                return plans;
            }
            self.now += chrono::Duration::minutes(1);
        }
        plans
    }
}
