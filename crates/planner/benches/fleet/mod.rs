//! The benchmark fleet: 10,000 converged nodes (shared by `benches/plan.rs` and
//! `examples/plan_cpu_time.rs`).

use chrono::{DateTime, TimeZone, Utc};
use model::{
    ApiVersion, CloneSpec, DisruptionBudget, DisruptionBudgetSpec, DriftPolicy, GoldImage,
    GoldImageSpec, LabelSelector, Labels, Metadata, Node, NodeSpec, Placement, Readiness,
    Replacement, Resources, TemplateRef, VmId, VmIdRange,
};
use planner::{
    Desired, DesiredNode, InstanceRecord, InstanceRole, ManagedConfig, Observed, ObservedVm,
    OwnedVmConfig, OwnershipMarker, Policy, PveNodeInfo, Records, TemplateStatus, Verification,
    VmStatus, VmidLease, spec_hash,
};

/// The planning instant used by the benchmarks.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0)
        .single()
        .expect("time")
}

/// The same inputs with `DesiredNode.spec_hash` filled, as an operator caching hashes passes them.
pub fn with_cached_hashes(desired: &Desired) -> Desired {
    let mut cached = desired.clone();
    for dn in &mut cached.nodes {
        dn.spec_hash = Some(spec_hash(&dn.node.spec, &cached.gold_images[0].spec.digest));
    }
    cached
}

fn vmid(n: u32) -> VmId {
    VmId::new(n).expect("vmid in range")
}

/// A converged fleet of `n` nodes: desired, observed, records and policy.
pub fn fleet(n: u32) -> (Desired, Observed, Records, Policy) {
    let digest: model::Sha256Digest = format!("sha256:{}", "ab".repeat(32))
        .parse()
        .expect("digest");
    let policy = Policy::new("bench".parse().expect("operator id"));
    let pve_nodes: Vec<PveNodeInfo> = (1..=16)
        .map(|i| PveNodeInfo {
            name: format!("pve{i}").parse().expect("pve node"),
            online: true,
            free_memory_mib: 1 << 20,
        })
        .collect();
    let gold = GoldImage {
        api_version: ApiVersion::V1alpha1,
        metadata: Metadata::named("base".parse().expect("name")),
        spec: GoldImageSpec {
            template: TemplateRef {
                pve_node: "pve1".parse().expect("pve node"),
                vmid: Some(vmid(100)),
                name: None,
            },
            digest,
            trusted_keys: vec![format!("ed25519:{}", "0f".repeat(32)).parse().expect("key")],
        },
    };
    let budget = |name: &str, role: &str| {
        let mut match_labels = Labels::new();
        match_labels.insert("role".into(), role.into());
        DisruptionBudget {
            api_version: ApiVersion::V1alpha1,
            metadata: Metadata::named(name.parse().expect("name")),
            spec: DisruptionBudgetSpec {
                selector: LabelSelector {
                    match_labels,
                    match_expressions: vec![],
                },
                max_unavailable: 1,
            },
        }
    };
    let mut desired = Desired {
        nodes: Vec::new(),
        gold_images: vec![gold],
        budgets: vec![budget("ingress", "ingress"), budget("workers", "worker")],
    };
    let mut observed = Observed {
        pve_nodes: pve_nodes.clone(),
        vms: Vec::new(),
        templates: vec![TemplateStatus {
            gold_image: "base".parse().expect("name"),
            vmid: Some(vmid(100)),
            pve_node: "pve1".parse().expect("pve node"),
            verification: Verification::Verified,
        }],
    };
    let mut records = Records::default();
    for i in 0..n {
        let name = format!("worker-{i}");
        let role = if i % 10 == 0 { "ingress" } else { "worker" };
        let mut labels = Labels::new();
        labels.insert("role".into(), role.into());
        let base = 1000 + 10 * i;
        let node = Node {
            api_version: ApiVersion::V1alpha1,
            metadata: Metadata {
                name: name.parse().expect("node name"),
                labels,
            },
            spec: NodeSpec {
                gold_image: "base".parse().expect("name"),
                vmids: VmIdRange {
                    from: vmid(base),
                    to: vmid(base + 9),
                },
                placement: Placement {
                    pve_nodes: pve_nodes.iter().map(|p| p.name.clone()).collect(),
                },
                clone: CloneSpec::default(),
                resources: Resources {
                    cores: 2,
                    memory: "4GiB".parse().expect("memory"),
                },
                network: vec![],
                cloud_init: None,
                readiness: Readiness::default(),
                replacement: Replacement::default(),
                drift: DriftPolicy::Replace,
                tags: vec!["jsonrag".parse().expect("tag")],
            },
        };
        let hash = spec_hash(&node.spec, &digest);
        let instance_id = format!("i{base}-20261101000000");
        let pve_node = pve_nodes[(i % 16) as usize].name.clone();
        observed.vms.push(ObservedVm {
            vmid: vmid(base),
            pve_node: pve_node.clone(),
            name: Some(name.clone()),
            status: VmStatus::Running,
            tags: vec![policy.operator_id.ownership_tag(), "jsonrag".into()],
            lock: None,
            template: false,
            config: Some(OwnedVmConfig {
                marker: Some(OwnershipMarker {
                    node: node.name().clone(),
                    instance_id: instance_id.clone(),
                    spec_hash: hash.clone(),
                    gold_digest: digest,
                    operator: policy.operator_id.clone(),
                }),
                smbios_uuid: Some(format!("uuid-{base}")),
                ready: Some(true),
                isolated: false,
                live: Some(ManagedConfig::from_spec(&node.spec)),
            }),
        });
        records.instances.push(InstanceRecord {
            node: node.name().clone(),
            role: InstanceRole::Current,
            instance_id,
            vmid: vmid(base),
            pve_node,
            name,
            smbios_uuid: format!("uuid-{base}"),
            spec_hash: hash,
        });
        records.leases.push(VmidLease {
            vmid: vmid(base),
            node: node.name().clone(),
        });
        desired.nodes.push(DesiredNode {
            node,
            generation: 1,
            spec_hash: None,
        });
    }
    (desired, observed, records, policy)
}
