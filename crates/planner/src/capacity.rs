//! Mutable accounting during one planning run: budgets, caps, clone slots, VMIDs and placement.

use crate::fasthash::{FastMap, FastSet};
use crate::inputs::{Desired, InFlightKind, Records};
use crate::output::BudgetUsage;
use crate::reason::BlockedBy;
use crate::view::View;
use model::{Node, NodeName, PveNodeName, VmId, VmIdRange};

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
    /// Budget indices per node.
    pub node_budgets: FastMap<&'a NodeName, Vec<usize>>,
    pub replacements: u32,
    pub clones_on: FastMap<PveNodeName, u32>,
    pub clones_to: FastMap<String, u32>,
    /// VMIDs this plan creates.
    pub planned_vmids: FastSet<VmId>,
    pub planned_mib: FastMap<PveNodeName, u64>,
    /// Instances per (role label, PVE node), for spreading.
    pub spread: FastMap<(&'a str, &'a PveNodeName), u32>,
    pub destroys: u32,
}

impl<'a> Capacity<'a> {
    pub fn new(desired: &'a Desired, records: &'a Records) -> Self {
        let mut budgets: Vec<BudgetCount> = desired
            .budgets
            .iter()
            .map(|b| BudgetCount {
                name: b.name().to_string(),
                nodes: 0,
                unavailable: 0,
                max: b.spec.max_unavailable,
            })
            .collect();
        let mut node_budgets: FastMap<&NodeName, Vec<usize>> = FastMap::default();
        for dn in &desired.nodes {
            let idx: Vec<usize> = desired
                .budgets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.spec.selector.matches(&dn.node.metadata.labels))
                .map(|(i, _)| i)
                .collect();
            for &i in &idx {
                budgets[i].nodes += 1;
            }
            node_budgets.insert(dn.node.name(), idx);
        }
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
            node_budgets,
            replacements: 0,
            clones_on,
            clones_to,
            planned_vmids: FastSet::default(),
            planned_mib: FastMap::default(),
            spread: FastMap::default(),
            destroys: 0,
        }
    }

    /// The first budget that cannot take one more unavailable node, if any.
    pub fn budget_block(&self, node: &NodeName) -> Option<BlockedBy> {
        let idx = self.node_budgets.get(node)?;
        idx.iter().map(|&i| &self.budgets[i]).find_map(|b| {
            (b.unavailable + 1 > b.max).then(|| BlockedBy::Budget {
                budget: b.name.clone(),
                unavailable: b.unavailable,
                max: b.max,
            })
        })
    }

    /// Counts the node as unavailable in every budget covering it.
    pub fn mark_unavailable(&mut self, node: &NodeName) {
        if let Some(idx) = self.node_budgets.get(node) {
            for &i in idx {
                self.budgets[i].unavailable += 1;
            }
        }
    }

    /// The lowest VMID in the range not seen in PVE, not leased, not recorded, not in flight
    /// and not planned.
    pub fn pick_vmid(&self, view: &View<'_>, range: &VmIdRange) -> Option<VmId> {
        range.iter().find(|v| {
            !(view.vms.contains_key(v)
                || view.leases.contains_key(v)
                || view.record_vmids.contains(v)
                || view.in_flight_vmids.contains(v)
                || self.planned_vmids.contains(v))
        })
    }

    /// The allowed PVE node for a new instance: online, enough free memory after this plan's
    /// other creates; fewest instances of the same role, then most free memory, then name.
    pub fn pick_pve_node(&self, view: &View<'_>, node: &Node) -> Option<PveNodeName> {
        let need = node.spec.resources.memory.mib();
        let role = node.metadata.labels.get("role");
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
                    role.and_then(|r| self.spread.get(&(r.as_str(), n)))
                        .copied()
                        .unwrap_or(0)
                };
                (same(a), std::cmp::Reverse(*fa), *a).cmp(&(same(b), std::cmp::Reverse(*fb), *b))
            })
            .map(|(n, _)| n.clone())
    }

    /// Records an instance of `node` on `pve_node` for spreading.
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
