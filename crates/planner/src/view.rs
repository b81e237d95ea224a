//! Indexed, read-only view of the inputs: ownership checks and each record resolved to its VM.
//!
//! Built once per plan with one pass over each input list. Lookups by VMID use integer-keyed
//! tables; a node's records are grouped by the node's position in `desired.nodes`, so planning a
//! node hashes no strings. Owned VMs that need a second look (unrecorded ones: adoption
//! candidates and orphans) are collected during the same pass.

use crate::config::SpecHasher;
use crate::fasthash::{FastMap, FastSet};
use crate::inputs::{
    Desired, GaveUp, InFlight, InstanceRecord, Observed, ObservedVm, OwnedVmConfig, Policy,
    PveNodeInfo, Records, Taint, TemplateStatus, VmStatus, VmidLease,
};
use crate::marker::OwnershipMarker;
use model::{GoldImage, Name, NodeName, PveNodeName, Severity, TaintAction, VmId};
use std::cell::OnceCell;
use std::collections::BTreeMap;

/// "No entry" in the `u32` index chains.
const NONE: u32 = u32::MAX;

/// A `u32` position, for lists far below four billion entries.
fn pos(i: usize) -> u32 {
    u32::try_from(i).expect("planner inputs hold fewer than 2^32 entries")
}

/// A multi-map from VMID to positions in a list: the newest position per VMID, chained to the
/// previous ones. No allocation per key.
#[derive(Default)]
pub(crate) struct ByVmid {
    first: FastMap<VmId, u32>,
    next: Vec<u32>,
}

impl ByVmid {
    /// The multi-map of a list of VMIDs.
    fn of(vmids: impl ExactSizeIterator<Item = VmId>) -> Self {
        let mut first = FastMap::default();
        first.reserve(vmids.len());
        let mut by = ByVmid {
            first,
            next: Vec::with_capacity(vmids.len()),
        };
        for vmid in vmids {
            by.push(vmid);
        }
        by
    }

    /// Appends the next position of the list, holding `vmid`.
    fn push(&mut self, vmid: VmId) {
        let at = pos(self.next.len());
        let prev = self.first.insert(vmid, at).unwrap_or(NONE);
        self.next.push(prev);
    }

    /// Whether any entry holds `vmid`.
    pub fn contains(&self, vmid: &VmId) -> bool {
        self.first.contains_key(vmid)
    }

    /// The positions holding `vmid`, newest first.
    fn positions(&self, vmid: &VmId) -> impl Iterator<Item = usize> + '_ {
        let mut at = self.first.get(vmid).copied().unwrap_or(NONE);
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let here = at as usize;
                at = self.next[here];
                here
            })
        })
    }
}

/// The inputs indexed for lookups.
pub(crate) struct View<'a> {
    pub policy: &'a Policy,
    pub tag: String,
    pub desired: &'a Desired,
    /// Declared node name → positions of its first and last entry in `desired.nodes`.
    names: FastMap<&'a NodeName, (u32, u32)>,
    /// Per position in `desired.nodes`: the position of the first node of that name.
    group: Vec<u32>,
    /// Every observed VM.
    observed_vms: &'a [ObservedVm],
    /// VMID → position in `observed_vms` (the last VM of that VMID).
    vms: FastMap<VmId, u32>,
    /// VMIDs held by more than one observed VM (PVE never reports that; handled exactly anyway).
    shared_vmids: FastSet<VmId>,
    /// Per position in `observed_vms`: its config and marker when this operator owns it.
    owned: Vec<Option<(&'a OwnedVmConfig, &'a OwnershipMarker)>>,
    pub pve_nodes: BTreeMap<&'a PveNodeName, &'a PveNodeInfo>,
    pub templates: FastMap<&'a Name, &'a TemplateStatus>,
    /// Declared gold images, each with the spec hasher for its digest.
    pub gold: FastMap<&'a Name, (&'a GoldImage, SpecHasher)>,
    /// Store records, then adopted ones.
    records: Vec<&'a InstanceRecord>,
    /// Per record: the position of its live VM (see [`View::resolve`]), or `NONE`.
    record_vm: Vec<u32>,
    /// Per record: the group of its node, or `NONE` when the node is not declared.
    record_group: Vec<u32>,
    /// VMIDs of `records`, position for position: built on first use, once every record is in.
    record_vmids: OnceCell<ByVmid>,
    /// Record positions of declared nodes by group: `grouped[group_start[g]..group_start[g + 1]]`,
    /// each group sorted by role, then instance id.
    grouped: Vec<u32>,
    group_start: Vec<u32>,
    /// Store records of nodes no longer declared.
    pub deleted: Vec<&'a InstanceRecord>,
    /// VMIDs of `lease_list`, built on first use (a converged fleet never asks).
    leases: OnceCell<ByVmid>,
    lease_list: &'a [VmidLease],
    pub taints: FastMap<&'a NodeName, Vec<&'a Taint>>,
    pub in_flight: FastMap<&'a NodeName, Vec<&'a InFlight>>,
    pub in_flight_vmids: FastSet<VmId>,
    /// Readiness give-ups by node (see [`GaveUp`]).
    gave_up: FastMap<&'a NodeName, &'a GaveUp>,
    /// Owned VMs without a store record and without a step in flight, by VMID (stable).
    unrecorded: Vec<u32>,
    /// Owned VMs recorded nowhere (store or adopted) whose node is not declared, by VMID.
    pub orphans: Vec<(&'a ObservedVm, &'a OwnedVmConfig, &'a OwnershipMarker)>,
    /// Per budget: how many declared nodes it covers.
    pub budget_nodes: Vec<u32>,
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
    /// Indexes the inputs; [`View::with_adopted`] completes it once adoptions are known.
    ///
    /// One pass per input list, each touching an item's strings once: declared nodes (names,
    /// budget coverage), observed VMs (ownership), store records (resolution to their VM, node
    /// group, and which VMs they record).
    pub fn new(
        desired: &'a Desired,
        observed: &'a Observed,
        records: &'a Records,
        taints: &'a [Taint],
        policy: &'a Policy,
    ) -> Self {
        let tag = policy.operator_id.ownership_tag();
        let n = desired.nodes.len();
        let mut names: FastMap<&NodeName, (u32, u32)> = FastMap::default();
        names.reserve(n);
        let mut group = Vec::with_capacity(n);
        let mut budget_nodes = vec![0u32; desired.budgets.len()];
        for (i, dn) in desired.nodes.iter().enumerate() {
            let i = pos(i);
            let entry = names.entry(dn.node.name()).or_insert((i, i));
            entry.1 = i;
            group.push(entry.0);
            for (count, b) in budget_nodes.iter_mut().zip(&desired.budgets) {
                if b.spec.selector.matches(&dn.node.metadata.labels) {
                    *count += 1;
                }
            }
        }
        let mut vms: FastMap<VmId, u32> = FastMap::default();
        vms.reserve(observed.vms.len());
        let mut shared_vmids = FastSet::default();
        let mut owned = Vec::with_capacity(observed.vms.len());
        for (i, vm) in observed.vms.iter().enumerate() {
            if vms.insert(vm.vmid, pos(i)).is_some() {
                shared_vmids.insert(vm.vmid);
            }
            owned.push(owned_by(vm, &tag, policy));
        }
        let mut view = View {
            policy,
            tag,
            desired,
            names,
            group,
            observed_vms: &observed.vms,
            vms,
            shared_vmids,
            owned,
            pve_nodes: observed.pve_nodes.iter().map(|n| (&n.name, n)).collect(),
            templates: observed
                .templates
                .iter()
                .map(|t| (&t.gold_image, t))
                .collect(),
            gold: desired
                .gold_images
                .iter()
                .map(|g| (g.name(), (g, SpecHasher::new(&g.spec.digest))))
                .collect(),
            records: Vec::with_capacity(records.instances.len()),
            record_vm: Vec::with_capacity(records.instances.len()),
            record_group: Vec::with_capacity(records.instances.len()),
            record_vmids: OnceCell::new(),
            grouped: Vec::new(),
            group_start: Vec::new(),
            deleted: Vec::new(),
            leases: OnceCell::new(),
            lease_list: &records.leases,
            taints: FastMap::default(),
            in_flight: FastMap::default(),
            in_flight_vmids: records.in_flight.iter().filter_map(|f| f.vmid).collect(),
            gave_up: records.gave_up.iter().map(|g| (&g.node, g)).collect(),
            unrecorded: Vec::new(),
            orphans: Vec::new(),
            budget_nodes,
        };
        // VMs (of a VMID held by one VM only) that a store record records.
        let mut recorded = vec![false; observed.vms.len()];
        for r in &records.instances {
            if let Some(vm) = view.add_record(r) {
                recorded[vm] = true;
            }
            if view.record_group.last() == Some(&NONE) {
                view.deleted.push(r);
            }
        }
        for (i, vm) in observed.vms.iter().enumerate() {
            let Some((_, marker)) = view.owned[i] else {
                continue;
            };
            let is_recorded = if view.shared_vmids.contains(&vm.vmid) {
                records
                    .instances
                    .iter()
                    .any(|r| r.vmid == vm.vmid && r.instance_id == marker.instance_id)
            } else {
                recorded[i]
            };
            if !is_recorded && !view.in_flight_vmids.contains(&vm.vmid) {
                view.unrecorded.push(pos(i));
            }
        }
        view.unrecorded
            .sort_by_key(|&i| observed.vms[i as usize].vmid);
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

    /// Adds a record: resolves it to its live VM and its node's group. Returns the position of
    /// the VM it records (same VMID and instance id), if that VM is the only one of its VMID.
    fn add_record(&mut self, r: &'a InstanceRecord) -> Option<usize> {
        self.records.push(r);
        let mut live = NONE;
        let mut records_vm = None;
        if let Some(&at) = self.vms.get(&r.vmid)
            && let Some((_, marker)) = self.owned[at as usize]
            && marker.instance_id == r.instance_id
        {
            if !self.shared_vmids.contains(&r.vmid) {
                records_vm = Some(at as usize);
            }
            if marker.node == r.node {
                live = at;
            }
        }
        self.record_vm.push(live);
        let group = self.names.get(&r.node).map_or(NONE, |&(first, _)| first);
        self.record_group.push(group);
        records_vm
    }

    /// The VMIDs of every record (stored and adopted).
    fn record_vmids(&self) -> &ByVmid {
        self.record_vmids
            .get_or_init(|| ByVmid::of(self.records.iter().map(|r| r.vmid)))
    }

    /// The VMIDs of every lease.
    fn leases(&self) -> &ByVmid {
        self.leases
            .get_or_init(|| ByVmid::of(self.lease_list.iter().map(|l| l.vmid)))
    }

    /// Whether a record (stored or adopted) has this VMID and instance id.
    fn is_recorded(&self, vmid: VmId, instance_id: &str) -> bool {
        self.record_vmids()
            .positions(&vmid)
            .any(|r| self.records[r].instance_id == instance_id)
    }

    /// Adds the records of adopted instances, groups every record by node and finds orphans.
    pub fn with_adopted(mut self, adopted: &'a [InstanceRecord]) -> Self {
        for r in adopted {
            self.add_record(r);
        }
        // Counting sort of the records into their node's group (stable: input order).
        let n = self.group.len();
        let mut start = vec![0u32; n + 1];
        for &g in &self.record_group {
            if g != NONE {
                start[g as usize + 1] += 1;
            }
        }
        for g in 0..n {
            start[g + 1] += start[g];
        }
        let mut fill = start.clone();
        self.grouped = vec![0; start[n] as usize];
        for (r, &g) in self.record_group.iter().enumerate() {
            if g != NONE {
                let at = &mut fill[g as usize];
                self.grouped[*at as usize] = pos(r);
                *at += 1;
            }
        }
        for g in 0..n {
            let list = &mut self.grouped[start[g] as usize..start[g + 1] as usize];
            if list.len() > 1 {
                let records = &self.records;
                list.sort_by(|&a, &b| {
                    let (a, b) = (records[a as usize], records[b as usize]);
                    (a.role, &a.instance_id).cmp(&(b.role, &b.instance_id))
                });
            }
        }
        self.group_start = start;
        let mut orphans = Vec::new();
        for &i in &self.unrecorded {
            let vm = &self.observed_vms[i as usize];
            let Some((cfg, marker)) = self.owned[i as usize] else {
                continue;
            };
            if !self.is_declared(&marker.node) && !self.is_recorded(vm.vmid, &marker.instance_id) {
                orphans.push((vm, cfg, marker));
            }
        }
        self.orphans = orphans;
        self
    }

    /// Whether a node of this name is declared.
    pub fn is_declared(&self, node: &NodeName) -> bool {
        self.names.contains_key(node)
    }

    /// Owned VMs without a store record and without a step in flight, by VMID.
    pub fn unrecorded(
        &self,
    ) -> impl Iterator<Item = (&'a ObservedVm, &'a OwnedVmConfig, &'a OwnershipMarker)> + '_ {
        self.unrecorded.iter().filter_map(|&i| {
            let (cfg, marker) = self.owned[i as usize]?;
            Some((&self.observed_vms[i as usize], cfg, marker))
        })
    }

    /// The records of the node at `position` in `desired.nodes` (of every node of its name),
    /// sorted by role, then instance id, each with its live VM when [`View::resolve`] finds one.
    pub fn records_of(
        &self,
        position: usize,
    ) -> impl Iterator<Item = (&'a InstanceRecord, Option<Live<'a>>)> + '_ {
        let g = self.group[position] as usize;
        let (from, to) = (
            self.group_start[g] as usize,
            self.group_start[g + 1] as usize,
        );
        self.grouped[from..to].iter().map(|&r| {
            let rec = self.records[r as usize];
            let at = self.record_vm[r as usize];
            let live = (at != NONE).then(|| self.live(rec, at as usize)).flatten();
            (rec, live)
        })
    }

    /// Whether a lease holds `vmid` for `node`.
    pub fn leased_to(&self, vmid: VmId, node: &NodeName) -> bool {
        self.leases()
            .positions(&vmid)
            .any(|l| self.lease_list[l].node == *node)
    }

    /// Whether an observed VM has this VMID.
    pub fn has_vm(&self, vmid: &VmId) -> bool {
        self.vms.contains_key(vmid)
    }

    /// Whether a VM at this VMID carries this operator's ownership tag (whatever its config
    /// read said, or whether it was read at all).
    pub fn listed_as_ours(&self, vmid: &VmId) -> bool {
        self.vms.get(vmid).is_some_and(|&at| {
            self.observed_vms[at as usize]
                .tags
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&self.tag))
        })
    }

    /// Whether a record (stored or adopted) has this VMID.
    pub fn has_record(&self, vmid: &VmId) -> bool {
        self.record_vmids().contains(vmid)
    }

    /// Whether a lease holds this VMID.
    pub fn is_leased(&self, vmid: &VmId) -> bool {
        self.leases().contains(vmid)
    }

    /// Indices of the budgets covering the declared node of this name (its last declaration).
    pub fn budgets_of(&self, node: &NodeName) -> impl Iterator<Item = usize> + '_ {
        let labels = self
            .names
            .get(node)
            .map(|&(_, last)| &self.desired.nodes[last as usize].node.metadata.labels);
        self.desired
            .budgets
            .iter()
            .enumerate()
            .filter(move |(_, b)| labels.is_some_and(|l| b.spec.selector.matches(l)))
            .map(|(i, _)| i)
    }

    /// The live VM of a record, if it is present, ours, and the same instance.
    pub fn resolve(&self, rec: &'a InstanceRecord) -> Option<Live<'a>> {
        let at = *self.vms.get(&rec.vmid)? as usize;
        let (_, marker) = self.owned[at]?;
        (marker.instance_id == rec.instance_id && marker.node == rec.node)
            .then(|| self.live(rec, at))
            .flatten()
    }

    /// The record with the owned VM at `at`, which carries the record's marker.
    fn live(&self, rec: &'a InstanceRecord, at: usize) -> Option<Live<'a>> {
        let (cfg, marker) = self.owned[at]?;
        Some(Live {
            rec,
            vm: &self.observed_vms[at],
            cfg,
            marker,
        })
    }

    /// Active taints that mark this instance.
    pub fn taints_of(&self, node: &NodeName, instance_id: &str) -> Vec<&'a Taint> {
        if self.taints.is_empty() {
            return Vec::new();
        }
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

    /// The readiness give-up of a node, if the operator gave up on one of its instances.
    pub fn gave_up_of(&self, node: &NodeName) -> Option<&'a GaveUp> {
        if self.gave_up.is_empty() {
            return None;
        }
        self.gave_up.get(node).copied()
    }

    /// Whether the node never had a ready instance and was given up on (it does not count
    /// against its budgets).
    pub fn never_available(&self, node: &NodeName) -> bool {
        self.gave_up_of(node).is_some_and(|g| g.never_available)
    }

    /// In-flight journal entries of a node.
    pub fn in_flight_of(&self, node: &NodeName) -> &[&'a InFlight] {
        if self.in_flight.is_empty() {
            return &[];
        }
        self.in_flight.get(node).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Whether a taint means the instance is compromised: isolate at once.
pub(crate) fn compromising(t: &Taint) -> bool {
    t.severity == Severity::Critical
        || matches!(t.action, TaintAction::Isolate | TaintAction::Quarantine)
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
