//! Mutable accounting during one planning run: budgets, caps, clone slots, VMIDs and placement.

use crate::fasthash::{FastMap, FastSet};
use crate::inputs::{InFlightKind, InstanceRole, Records};
use crate::output::BudgetUsage;
use crate::reason::BlockedBy;
use crate::view::View;
use model::{Node, NodeName, PveNodeName, VmId, VmIdRange};
use std::cell::OnceCell;

/// One budget's counters.
pub(crate) struct BudgetCount {
    pub name: String,
    pub nodes: u32,
    pub unavailable: u32,
    pub max: u32,
}

/// Counters consumed as actions are planned.
pub(crate) struct Capacity<'a> {
    pub budgets: Vec<BudgetCount>,
    pub replacements: u32,
    pub clones_on: FastMap<PveNodeName, u32>,
    pub clones_to: FastMap<String, u32>,
    /// VMIDs this plan creates.
    pub planned_vmids: FastSet<VmId>,
    pub planned_mib: FastMap<PveNodeName, u64>,
    /// Instances per (role label, PVE node) of the declared nodes, for spreading: built on the
    /// first placement (a converged fleet places nothing).
    spread_base: OnceCell<FastMap<(&'a str, &'a PveNodeName), u32>>,
    /// Instances per (role label, PVE node) this plan creates.
    spread: FastMap<(&'a str, &'a PveNodeName), u32>,
    pub destroys: u32,
}

impl<'a> Capacity<'a> {
    pub fn new(view: &View<'a>, records: &'a Records) -> Self {
        let budgets: Vec<BudgetCount> = view
            .desired
            .budgets
            .iter()
            .zip(&view.budget_nodes)
            .map(|(b, &nodes)| BudgetCount {
                name: b.name().to_string(),
                nodes,
                unavailable: 0,
                max: b.spec.max_unavailable,
            })
            .collect();
        let mut clones_on: FastMap<PveNodeName, u32> = FastMap::default();
        let mut clones_to: FastMap<String, u32> = FastMap::default();
        for f in &records.in_flight {
            if f.kind == InFlightKind::Create {
                if let Some(n) = &f.pve_node {
                    *clones_on.entry(n.clone()).or_default() += 1;
                }
                if let Some(s) = &f.storage {
                    *clones_to.entry(s.to_string()).or_default() += 1;
                }
            }
        }
        Capacity {
            budgets,
            replacements: 0,
            clones_on,
            clones_to,
            planned_vmids: FastSet::default(),
            planned_mib: FastMap::default(),
            spread_base: OnceCell::new(),
            spread: FastMap::default(),
            destroys: 0,
        }
    }

    /// The first budget that cannot take one more unavailable node, if any.
    pub fn budget_block(&self, view: &View<'_>, node: &NodeName) -> Option<BlockedBy> {
        view.budgets_of(node)
            .map(|i| &self.budgets[i])
            .find_map(|b| {
                (b.unavailable + 1 > b.max).then(|| BlockedBy::Budget {
                    budget: b.name.clone(),
                    unavailable: b.unavailable,
                    max: b.max,
                })
            })
    }

    /// Counts the node as unavailable in every budget covering it.
    pub fn mark_unavailable(&mut self, view: &View<'_>, node: &NodeName) {
        for i in view.budgets_of(node) {
            self.budgets[i].unavailable += 1;
        }
    }

    /// The lowest VMID in the range not seen in PVE, not leased, not recorded, not in flight
    /// and not planned.
    pub fn pick_vmid(&self, view: &View<'_>, range: &VmIdRange) -> Option<VmId> {
        range.iter().find(|v| {
            !(view.has_vm(v)
                || view.is_leased(v)
                || view.has_record(v)
                || view.in_flight_vmids.contains(v)
                || self.planned_vmids.contains(v))
        })
    }

    /// The allowed PVE node for a new instance: online, enough free memory after this plan's
    /// other creates; fewest instances of the same role, then most free memory, then name.
    pub fn pick_pve_node(&self, view: &View<'a>, node: &Node) -> Option<PveNodeName> {
        let need = node.spec.resources.memory.mib();
        let role = node.metadata.labels.get("role");
        let base = self.spread_base.get_or_init(|| spread_of(view));
        node.spec
            .placement
            .pve_nodes
            .iter()
            .filter_map(|name| {
                let info = view.pve_nodes.get(name)?;
                let planned = self.planned_mib.get(name).copied().unwrap_or(0);
                let free = info.free_memory_mib.saturating_sub(planned);
                (info.online && free >= need).then_some((name, free))
            })
            .min_by(|(a, fa), (b, fb)| {
                let same = |n: &PveNodeName| {
                    role.map_or(0, |r| {
                        let key = (r.as_str(), n);
                        base.get(&key).copied().unwrap_or(0)
                            + self.spread.get(&key).copied().unwrap_or(0)
                    })
                };
                (same(a), std::cmp::Reverse(*fa), *a).cmp(&(same(b), std::cmp::Reverse(*fb), *b))
            })
            .map(|(n, _)| n.clone())
    }

    /// Records a new instance of `node` on `pve_node` for spreading.
    pub fn count_spread(&mut self, node: &'a Node, pve_node: &'a PveNodeName) {
        if let Some(role) = node.metadata.labels.get("role") {
            *self.spread.entry((role.as_str(), pve_node)).or_default() += 1;
        }
    }

    /// The usage report.
    pub fn usage(&self) -> Vec<BudgetUsage> {
        self.budgets
            .iter()
            .map(|b| BudgetUsage {
                budget: b.name.clone(),
                nodes: b.nodes,
                unavailable: b.unavailable,
                max: b.max,
            })
            .collect()
    }
}

/// Instances per (role label, PVE node) of every declared node's current and incoming instance
/// (as [`NodeState::derive`] picks them: the first live record of each role).
fn spread_of<'a>(view: &View<'a>) -> FastMap<(&'a str, &'a PveNodeName), u32> {
    let mut spread: FastMap<(&'a str, &'a PveNodeName), u32> = FastMap::default();
    for (i, dn) in view.desired.nodes.iter().enumerate() {
        let Some(role) = dn.node.metadata.labels.get("role") else {
            continue;
        };
        let (mut current, mut incoming) = (None, None);
        for (rec, live) in view.records_of(i) {
            match (rec.role, live) {
                (InstanceRole::Current, Some(l)) if current.is_none() => current = Some(l),
                (InstanceRole::Incoming, Some(l)) if incoming.is_none() => incoming = Some(l),
                _ => {}
            }
        }
        for l in [current, incoming].into_iter().flatten() {
            *spread.entry((role.as_str(), &l.vm.pve_node)).or_default() += 1;
        }
    }
    spread
}
