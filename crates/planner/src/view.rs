//! Indexed, read-only view of the inputs: ownership checks and each record resolved to its VM.

use crate::fasthash::{FastMap, FastSet};
use crate::inputs::{
    Desired, InFlight, InstanceRecord, Observed, ObservedVm, OwnedVmConfig, Policy, PveNodeInfo,
    Records, Taint, TemplateStatus, VmStatus,
};
use crate::marker::OwnershipMarker;
use model::{GoldImage, Name, NodeName, PveNodeName, Severity, TaintAction, VmId};
use std::collections::BTreeMap;

/// The inputs indexed for lookups.
pub(crate) struct View<'a> {
    pub policy: &'a Policy,
    pub tag: String,
    pub vms: FastMap<VmId, &'a ObservedVm>,
    pub pve_nodes: BTreeMap<&'a PveNodeName, &'a PveNodeInfo>,
    pub templates: FastMap<&'a Name, &'a TemplateStatus>,
    pub gold: FastMap<&'a Name, &'a GoldImage>,
    pub records: FastMap<&'a NodeName, Vec<&'a InstanceRecord>>,
    pub recorded: FastSet<(VmId, &'a str)>,
    pub record_vmids: FastSet<VmId>,
    pub leases: FastMap<VmId, &'a NodeName>,
    pub taints: FastMap<&'a NodeName, Vec<&'a Taint>>,
    pub in_flight: FastMap<&'a NodeName, Vec<&'a InFlight>>,
    pub in_flight_vmids: FastSet<VmId>,
    pub desired_names: FastSet<&'a NodeName>,
}

/// A recorded instance whose VM is present and carries the matching marker.
#[derive(Clone, Copy)]
pub(crate) struct Live<'a> {
    pub rec: &'a InstanceRecord,
    pub vm: &'a ObservedVm,
    pub cfg: &'a OwnedVmConfig,
    pub marker: &'a OwnershipMarker,
}

impl Live<'_> {
    /// Running, ready and not isolated.
    pub fn ready(&self) -> bool {
        self.vm.status == VmStatus::Running && self.cfg.ready == Some(true) && !self.cfg.isolated
    }
}

impl<'a> View<'a> {
    pub fn new(
        desired: &'a Desired,
        observed: &'a Observed,
        records: &'a Records,
        adopted: &'a [InstanceRecord],
        taints: &'a [Taint],
        policy: &'a Policy,
    ) -> Self {
        let mut view = View {
            policy,
            tag: policy.operator_id.ownership_tag(),
            vms: observed.vms.iter().map(|v| (v.vmid, v)).collect(),
            pve_nodes: observed.pve_nodes.iter().map(|n| (&n.name, n)).collect(),
            templates: observed
                .templates
                .iter()
                .map(|t| (&t.gold_image, t))
                .collect(),
            gold: desired.gold_images.iter().map(|g| (g.name(), g)).collect(),
            records: FastMap::default(),
            recorded: FastSet::default(),
            record_vmids: FastSet::default(),
            leases: records.leases.iter().map(|l| (l.vmid, &l.node)).collect(),
            taints: FastMap::default(),
            in_flight: FastMap::default(),
            in_flight_vmids: records.in_flight.iter().filter_map(|f| f.vmid).collect(),
            desired_names: desired.nodes.iter().map(|n| n.node.name()).collect(),
        };
        for r in records.instances.iter().chain(adopted) {
            view.records.entry(&r.node).or_default().push(r);
            view.recorded.insert((r.vmid, r.instance_id.as_str()));
            view.record_vmids.insert(r.vmid);
        }
        for list in view.records.values_mut() {
            list.sort_by(|a, b| (a.role, &a.instance_id).cmp(&(b.role, &b.instance_id)));
        }
        for t in taints {
            view.taints.entry(&t.node).or_default().push(t);
        }
        for list in view.taints.values_mut() {
            list.sort_by_key(|t| t.id);
        }
        for f in &records.in_flight {
            view.in_flight.entry(&f.node).or_default().push(f);
        }
        view
    }

    /// The marker of a VM that carries this operator's ownership tag and marker; `None` for
    /// every other VM (foreign, template, other operator, malformed marker).
    pub fn owned(&self, vm: &'a ObservedVm) -> Option<(&'a OwnedVmConfig, &'a OwnershipMarker)> {
        owned_by(vm, &self.tag, self.policy)
    }

    /// The live VM of a record, if it is present, ours, and the same instance.
    pub fn resolve(&self, rec: &'a InstanceRecord) -> Option<Live<'a>> {
        let vm = *self.vms.get(&rec.vmid)?;
        let (cfg, marker) = self.owned(vm)?;
        (marker.instance_id == rec.instance_id && marker.node == rec.node).then_some(Live {
            rec,
            vm,
            cfg,
            marker,
        })
    }

    /// Active taints that mark this instance.
    pub fn taints_of(&self, node: &NodeName, instance_id: &str) -> Vec<&'a Taint> {
        self.taints
            .get(node)
            .map(|l| {
                l.iter()
                    .copied()
                    .filter(|t| t.instance_id.as_deref() == Some(instance_id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// In-flight journal entries of a node.
    pub fn in_flight_of(&self, node: &NodeName) -> &[&'a InFlight] {
        self.in_flight.get(node).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Whether a taint means the instance is compromised: isolate at once.
pub(crate) fn compromising(t: &Taint) -> bool {
    t.severity == Severity::Critical || t.action == TaintAction::Isolate
}

/// The config and marker of a VM carrying this operator's ownership tag and a marker naming this
/// operator; `None` for every other VM (foreign, template, other operator, malformed marker).
pub(crate) fn owned_by<'a>(
    vm: &'a ObservedVm,
    tag: &str,
    policy: &Policy,
) -> Option<(&'a OwnedVmConfig, &'a OwnershipMarker)> {
    if vm.template || !vm.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
        return None;
    }
    let cfg = vm.config.as_ref()?;
    let marker = cfg.marker.as_ref()?;
    (marker.operator == policy.operator_id).then_some((cfg, marker))
}
