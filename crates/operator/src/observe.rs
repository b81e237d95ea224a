//! Observe: one `cluster/resources` read per pass, plus config reads of our VMs only where
//! the cached read is stale, mapped into the planner's `Observed`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use model::attestation::{self, TemplateRejection, VerifiedStatement};
use model::{GoldImage, GoldImageSpec, PveNodeName};
use planner::{
    CloudInitConfig, ManagedConfig, NetConfig, ObservedVm, OperatorId, OwnedVmConfig, PveNodeInfo,
    TemplateStatus, Verification, VmStatus,
};
use pve_client::{ClusterVm, PveClient, VmConfig};

/// Config reads running at once on a cold cache.
const CONFIG_READS_AT_ONCE: usize = 16;

/// What a config read of one owned VM gave, minus readiness (filled per pass).
#[derive(Debug, Clone)]
struct CachedConfig {
    pve_node: String,
    tags_raw: Option<String>,
    name: Option<String>,
    owned: OwnedVmConfig,
}

/// Reads PVE for the controller, remembering config reads between passes.
#[derive(Debug)]
pub struct Observer {
    client: PveClient,
    operator: OperatorId,
    cache: Mutex<HashMap<u32, CachedConfig>>,
    /// VMIDs the executor changed, and when.
    changed: Mutex<HashMap<u32, std::time::Instant>>,
    /// How long after a change the listing may still show the old power state and name: PVE's
    /// `cluster/resources` shows what pvestatd sampled, up to its 10 s cycle ago (and
    /// `unknown` for a VM cloned since), so a replacement trusting it would wait up to 10 s to
    /// see its new VM running.
    listing_lag: std::time::Duration,
}

/// The result of one observation.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The planner's input (without PVE node info, which the controller adds).
    pub vms: Vec<ObservedVm>,
    /// Config reads this observation made (0 in a steady state).
    pub config_reads: usize,
    /// `status/current` reads of VMs changed moments ago (0 in a steady state).
    pub status_reads: usize,
    /// [`template_fingerprint`] of every PVE template in the listing, by VMID.
    pub template_fingerprints: HashMap<u32, String>,
}

impl Observer {
    /// An observer for `operator`'s VMs that reads the power state of VMs changed within
    /// `listing_lag` from `status/current` (zero: always trusts the listing).
    pub fn new(client: PveClient, operator: OperatorId, listing_lag: std::time::Duration) -> Self {
        Self {
            client,
            operator,
            cache: Mutex::new(HashMap::new()),
            changed: Mutex::new(HashMap::new()),
            listing_lag,
        }
    }

    /// Forgets the cached config of `vmid` and reads its power state directly for a while
    /// (after the executor changed it).
    pub fn invalidate(&self, vmid: u32) {
        self.lock_cache().remove(&vmid);
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vmid, std::time::Instant::now());
    }

    /// VMIDs changed within the listing's lag (older entries are dropped).
    fn recently_changed(&self) -> HashSet<u32> {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        changed.retain(|_, at| at.elapsed() < self.listing_lag);
        changed.keys().copied().collect()
    }

    /// `status/current` of the listed VMs in `vmids`: their power state and name now, not as
    /// pvestatd last sampled them. A failed read leaves the listing's values.
    async fn current_statuses(
        &self,
        listing: &[ClusterVm],
        vmids: &HashSet<u32>,
    ) -> HashMap<u32, (VmStatus, Option<String>)> {
        let wanted: Vec<&ClusterVm> = listing
            .iter()
            .filter(|v| v.is_qemu() && !v.template && vmids.contains(&v.vmid.get()))
            .collect();
        let mut out = HashMap::new();
        for chunk in wanted.chunks(CONFIG_READS_AT_ONCE) {
            let reads = chunk.iter().map(|vm| async move {
                (
                    vm.vmid.get(),
                    self.client.vm_status(&vm.node, vm.vmid).await,
                )
            });
            for (vmid, result) in futures_util::future::join_all(reads).await {
                match result {
                    Ok(s) => {
                        out.insert(vmid, (power_state(&s.status), s.name));
                    }
                    Err(e) => {
                        tracing::debug!(vmid, error = %e, "status/current read failed; using the listing");
                    }
                }
            }
        }
        out
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<u32, CachedConfig>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One `GET /cluster/resources?type=vm`, then config reads for VMs that carry our
    /// ownership tag or whose VMID the store knows (`known`), only where the cache is stale.
    /// `ready` maps instance ids to readiness results.
    pub async fn observe(
        &self,
        known: &HashSet<u32>,
        ready: &HashMap<String, bool>,
    ) -> Result<Observation, pve_client::Error> {
        let listing = self.client.cluster_vms().await?;
        let tag = self.operator.ownership_tag();
        let mut to_read = Vec::new();
        {
            let cache = self.lock_cache();
            for vm in listing.iter().filter(|v| v.is_qemu() && !v.template) {
                let ours = vm.tags().contains(&tag.as_str());
                if !ours && !known.contains(&vm.vmid.get()) {
                    continue;
                }
                let fresh = vm.lock.is_none()
                    && cache.get(&vm.vmid.get()).is_some_and(|c| {
                        c.pve_node == vm.node.as_str()
                            && c.tags_raw == vm.tags_raw
                            && c.name == vm.name
                    });
                if !fresh {
                    to_read.push(vm);
                }
            }
        }
        let config_reads = to_read.len();
        let changed = self.recently_changed();
        let current = if changed.is_empty() {
            HashMap::new()
        } else {
            self.current_statuses(&listing, &changed).await
        };
        for chunk in to_read.chunks(CONFIG_READS_AT_ONCE) {
            let reads = chunk.iter().map(|vm| async move {
                let result = self.client.vm_config(&vm.node, vm.vmid).await;
                (*vm, result)
            });
            for (vm, result) in futures_util::future::join_all(reads).await {
                match result {
                    Ok(cfg) => {
                        let owned = owned_config(&cfg, &self.operator);
                        self.lock_cache().insert(
                            vm.vmid.get(),
                            CachedConfig {
                                pve_node: vm.node.as_str().to_owned(),
                                tags_raw: vm.tags_raw.clone(),
                                name: vm.name.clone(),
                                owned,
                            },
                        );
                    }
                    // Gone between the listing and the read: it has no config to report.
                    Err(pve_client::Error::ConfigNotFound { .. }) => {
                        self.lock_cache().remove(&vm.vmid.get());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let cache = self.lock_cache();
        let listed: HashSet<u32> = listing.iter().map(|v| v.vmid.get()).collect();
        let vms = listing
            .iter()
            .filter(|v| v.is_qemu())
            .filter_map(|vm| {
                let config = cache.get(&vm.vmid.get()).and_then(|c| {
                    (c.pve_node == vm.node.as_str()).then(|| {
                        let mut owned = c.owned.clone();
                        owned.ready = owned
                            .marker
                            .as_ref()
                            .and_then(|m| ready.get(&m.instance_id).copied());
                        owned
                    })
                });
                let mut observed = observed_vm(vm, config)?;
                if let Some((status, name)) = current.get(&vm.vmid.get()) {
                    observed.status = *status;
                    if name.is_some() {
                        observed.name.clone_from(name);
                    }
                }
                Some(observed)
            })
            .collect();
        drop(cache);
        self.lock_cache().retain(|vmid, _| listed.contains(vmid));
        let template_fingerprints = listing
            .iter()
            .filter(|v| v.is_qemu() && v.template)
            .map(|v| (v.vmid.get(), template_fingerprint(v)))
            .collect();
        Ok(Observation {
            vms,
            config_reads,
            status_reads: current.len(),
            template_fingerprints,
        })
    }

    /// `GET /nodes`: the PVE nodes with their free memory.
    pub async fn pve_nodes(&self) -> Result<Vec<PveNodeInfo>, pve_client::Error> {
        let nodes = self.client.nodes().await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let name: PveNodeName = n.node.as_str().parse().ok()?;
                let free = n.maxmem.unwrap_or(0).saturating_sub(n.mem.unwrap_or(0));
                Some(PveNodeInfo {
                    name,
                    online: n.is_online(),
                    free_memory_mib: free / (1024 * 1024),
                })
            })
            .collect())
    }
}

/// One `cluster/resources` entry in the planner's terms (`None` for ids the model rejects).
fn observed_vm(vm: &ClusterVm, config: Option<OwnedVmConfig>) -> Option<ObservedVm> {
    Some(ObservedVm {
        vmid: model::VmId::new(vm.vmid.get())?,
        pve_node: vm.node.as_str().parse().ok()?,
        name: vm.name.clone(),
        status: power_state(&vm.status),
        tags: vm.tags().into_iter().map(str::to_owned).collect(),
        lock: vm.lock.clone(),
        template: vm.template,
        config,
    })
}

/// PVE's `status` string in the planner's terms.
fn power_state(status: &str) -> VmStatus {
    match status {
        "running" => VmStatus::Running,
        "stopped" => VmStatus::Stopped,
        _ => VmStatus::Unknown,
    }
}

/// What the planner needs from an owned VM's config (readiness is filled later).
pub fn owned_config(cfg: &VmConfig, operator: &OperatorId) -> OwnedVmConfig {
    let nets: Vec<String> = cfg
        .values
        .keys()
        .filter(|k| is_net_key(k))
        .filter_map(|k| cfg.get_str(k))
        .collect();
    let isolated = !nets.is_empty()
        && nets
            .iter()
            .all(|v| v.split(',').any(|p| p == "link_down=1"));
    OwnedVmConfig {
        marker: cfg
            .description()
            .and_then(|d| planner::parse_marker(&d).ok().flatten()),
        smbios_uuid: cfg.smbios_uuid(),
        ready: None,
        isolated,
        live: managed_config(cfg, &operator.ownership_tag()),
    }
}

fn is_net_key(key: &str) -> bool {
    key.strip_prefix("net")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The managed keys as they are live (`None` when something does not parse: no drift is
/// claimed from a config the operator cannot read).
pub fn managed_config(cfg: &VmConfig, ownership_tag: &str) -> Option<ManagedConfig> {
    let cores = u16::try_from(cfg.cores()).ok()?;
    let memory_mib = cfg.memory_mib()?;
    let mut networks = Vec::new();
    for i in 0.. {
        let Some(net) = cfg.get_str(&format!("net{i}")) else {
            break;
        };
        let bridge = net
            .split(',')
            .find_map(|p| p.strip_prefix("bridge="))?
            .parse()
            .ok()?;
        let ip = cfg.get_str(&format!("ipconfig{i}")).unwrap_or_default();
        let mut address = None;
        let mut gateway = None;
        for part in ip.split(',') {
            match part.split_once('=') {
                Some(("ip", "dhcp")) | None => {}
                Some(("ip", a)) => address = Some(a.parse().ok()?),
                Some(("gw", g)) => gateway = Some(g.parse().ok()?),
                Some(_) => {}
            }
        }
        networks.push(NetConfig {
            bridge,
            address,
            gateway,
        });
    }
    let user = cfg.get_str("ciuser");
    let ssh_keys = cfg.sshkeys();
    let user_data = cfg.get_str("cicustom").and_then(|c| {
        c.split(',')
            .find_map(|p| p.strip_prefix("user=").map(str::to_owned))
    });
    let cloud_init = (user.is_some() || !ssh_keys.is_empty() || user_data.is_some()).then_some(
        CloudInitConfig {
            user,
            ssh_keys,
            user_data,
        },
    );
    let mut tags = Vec::new();
    for t in cfg.tags() {
        if t != ownership_tag {
            tags.push(t.parse().ok()?);
        }
    }
    tags.sort();
    tags.dedup();
    Some(ManagedConfig {
        cores,
        memory_mib,
        networks,
        cloud_init,
        tags,
    })
}

/// The VM in the listing a gold image's template reference points at (by vmid, or by name on
/// its PVE node), template or not.
pub fn find_template<'a>(gold: &GoldImage, vms: &'a [ObservedVm]) -> Option<&'a ObservedVm> {
    let t = &gold.spec.template;
    vms.iter().find(|vm| {
        vm.pve_node == t.pve_node
            && match (&t.vmid, &t.name) {
                (Some(id), _) => vm.vmid.get() == id.get(),
                (None, Some(name)) => vm.name.as_deref() == Some(name.as_str()),
                (None, None) => false,
            }
    })
}

/// Resolves each gold image's template from the listing: `Failed` when nothing is there,
/// `Unknown` otherwise. The listing cannot prove a template is the signed image: the
/// controller runs [`check_template`] on a fresh config read before any clone and replaces
/// `Unknown` with its outcome (see docs/decisions/0011-gold-verification.md).
pub fn templates(gold_images: &[GoldImage], vms: &[ObservedVm]) -> Vec<TemplateStatus> {
    gold_images
        .iter()
        .filter_map(|g| {
            let gold_image = g.name().as_str().parse().ok()?;
            let pve_node = g.spec.template.pve_node.clone();
            let (vmid, verification) = match find_template(g, vms) {
                Some(vm) => (Some(vm.vmid), Verification::Unknown),
                None => {
                    let problem = TemplateProblem::NotFound {
                        pve_node: pve_node.to_string(),
                    };
                    (None, problem.verification())
                }
            };
            Some(TemplateStatus {
                gold_image,
                vmid,
                pve_node,
                verification,
            })
        })
        .collect()
}

/// What the listing shows of a template: when it differs from the value seen at the last
/// config read, the template is read again (cores, memory, disk size, tags, name, lock and
/// node are visible here; the description is not, hence the read before every clone).
pub fn template_fingerprint(vm: &ClusterVm) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}",
        vm.node.as_str(),
        vm.name,
        vm.tags_raw,
        vm.lock,
        vm.template,
        vm.maxcpu,
        vm.maxmem,
        vm.maxdisk
    )
}

/// Why a gold image's template must not be cloned from. [`code`](Self::code) is the stable
/// reason of events and of the GoldImage's `Verified` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateProblem {
    /// No VM where the GoldImage says.
    #[error("template not found on {pve_node}")]
    NotFound {
        /// The PVE node the GoldImage names.
        pve_node: String,
    },
    /// PVE returned the template's config without its `digest` (nothing to remember).
    #[error("template {vmid}: PVE returned its config without a digest")]
    NoConfigDigest {
        /// The template's VMID.
        vmid: u32,
    },
    /// One of the attestation checks failed.
    #[error(transparent)]
    Rejected(#[from] TemplateRejection),
}

impl TemplateProblem {
    /// A stable CamelCase code (the rejection's own code for attestation failures).
    pub fn code(&self) -> &'static str {
        match self {
            TemplateProblem::NotFound { .. } => "TemplateNotFound",
            TemplateProblem::NoConfigDigest { .. } => "NoConfigDigest",
            TemplateProblem::Rejected(r) => r.code(),
        }
    }

    /// The planner's view: failed, with the code first (`DigestMismatch: ...`).
    pub fn verification(&self) -> Verification {
        Verification::Failed(format!("{}: {self}", self.code()))
    }
}

/// A template that passed every pre-clone check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVerified {
    /// The PVE config digest of the config that was checked.
    pub config_digest: String,
    /// The verified attestation.
    pub statement: VerifiedStatement,
}

/// The pre-clone checks on one config read of a GoldImage's template: the template flag, an
/// attestation signed by one of `trustedKeys` over the manifest's `digest`
/// ([`model::attestation::verify_template`]), then — when a verified config digest is
/// remembered for this GoldImage generation and template — that the config digest has not
/// changed since ([`model::attestation::check_config_unchanged`]). The attestation checks
/// run first so that a tampered description reports what is wrong with it rather than only
/// that something changed.
pub fn check_template(
    spec: &GoldImageSpec,
    vmid: u32,
    cfg: &VmConfig,
    remembered_digest: Option<&str>,
) -> Result<TemplateVerified, TemplateProblem> {
    let description = cfg.description().unwrap_or_default();
    let statement = attestation::verify_template(
        &description,
        cfg.is_template(),
        &spec.digest,
        &spec.trusted_keys,
    )?;
    let config_digest = cfg
        .digest
        .clone()
        .ok_or(TemplateProblem::NoConfigDigest { vmid })?;
    if let Some(remembered) = remembered_digest {
        attestation::check_config_unchanged(remembered, &config_digest)?;
    }
    Ok(TemplateVerified {
        config_digest,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, serde_json::Value)]) -> VmConfig {
        let mut values = serde_json::Map::new();
        for (k, v) in pairs {
            values.insert((*k).to_owned(), v.clone());
        }
        serde_json::from_value(serde_json::Value::Object(values)).expect("config")
    }

    #[test]
    fn live_managed_keys_are_read_back_from_a_config() {
        let cfg = config(&[
            ("cores", serde_json::json!(2)),
            ("memory", serde_json::json!("2048")),
            (
                "net0",
                serde_json::json!("virtio=BC:24:11:00:00:01,bridge=vmbr0"),
            ),
            (
                "ipconfig0",
                serde_json::json!("gw=10.0.10.1,ip=10.0.10.21/24"),
            ),
            ("ciuser", serde_json::json!("app")),
            ("tags", serde_json::json!("reborn-test;web")),
        ]);
        let m = managed_config(&cfg, "reborn-test").expect("parses");
        assert_eq!(m.cores, 2);
        assert_eq!(m.memory_mib, 2048);
        assert_eq!(m.networks.len(), 1);
        assert_eq!(m.networks[0].bridge.as_str(), "vmbr0");
        assert_eq!(
            m.networks[0].address.map(|a| a.to_string()).as_deref(),
            Some("10.0.10.21/24")
        );
        assert_eq!(m.tags.len(), 1, "the ownership tag is not a managed tag");
        assert_eq!(m.cloud_init.and_then(|c| c.user).as_deref(), Some("app"));
    }

    #[test]
    fn an_instance_is_isolated_only_when_every_nic_is_down() {
        let op: OperatorId = "test".parse().expect("id");
        let half = config(&[
            (
                "net0",
                serde_json::json!("virtio=A,bridge=vmbr0,link_down=1"),
            ),
            ("net1", serde_json::json!("virtio=B,bridge=vmbr1")),
        ]);
        assert!(!owned_config(&half, &op).isolated);
        let all = config(&[
            (
                "net0",
                serde_json::json!("virtio=A,bridge=vmbr0,link_down=1"),
            ),
            (
                "net1",
                serde_json::json!("virtio=B,bridge=vmbr1,link_down=1"),
            ),
        ]);
        assert!(owned_config(&all, &op).isolated);
        assert!(!owned_config(&config(&[]), &op).isolated);
    }

    fn gold_spec(key: &attestation::AttestationKey) -> GoldImageSpec {
        GoldImageSpec {
            template: serde_json::from_value(serde_json::json!({"pveNode": "pve1", "vmid": 9000}))
                .expect("template ref"),
            digest: DIGEST.parse().expect("digest"),
            trusted_keys: vec![key.public_key()],
        }
    }

    const DIGEST: &str = "sha256:3b1f8a6c0e2d4f5a7b9c1d3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192";

    fn signed_description(key: &attestation::AttestationKey) -> String {
        let statement = attestation::Statement {
            name: "gold".parse().expect("name"),
            version: "1".to_owned(),
            digest: DIGEST.parse().expect("digest"),
            created: "2026-01-01T00:00:00Z".parse().expect("time"),
            builder: "unit test".to_owned(),
        };
        let signed = attestation::sign(statement, key).expect("signs");
        attestation::description_with_attestation("notes", &signed)
    }

    #[test]
    fn a_signed_template_passes_and_reports_the_digest_it_checked() {
        let key = attestation::AttestationKey::from_seed(&[1; 32]);
        let cfg = config(&[
            ("template", serde_json::json!(1)),
            ("description", serde_json::json!(signed_description(&key))),
            ("digest", serde_json::json!("abc")),
        ]);
        let v = check_template(&gold_spec(&key), 9000, &cfg, None).expect("verified");
        assert_eq!(v.config_digest, "abc");
        assert_eq!(v.statement.key(), &key.public_key());
        assert!(check_template(&gold_spec(&key), 9000, &cfg, Some("abc")).is_ok());
    }

    #[test]
    fn a_changed_config_digest_is_refused_even_with_a_valid_signature() {
        let key = attestation::AttestationKey::from_seed(&[1; 32]);
        let cfg = config(&[
            ("template", serde_json::json!(1)),
            ("description", serde_json::json!(signed_description(&key))),
            ("digest", serde_json::json!("new")),
        ]);
        let err = check_template(&gold_spec(&key), 9000, &cfg, Some("old")).expect_err("changed");
        assert_eq!(err.code(), "TemplateConfigChanged");
        assert!(err.to_string().contains("old"), "{err}");
    }

    #[test]
    fn what_is_wrong_with_the_attestation_is_reported_before_the_config_change() {
        let key = attestation::AttestationKey::from_seed(&[1; 32]);
        let cfg = config(&[
            ("template", serde_json::json!(1)),
            ("description", serde_json::json!("notes only")),
            ("digest", serde_json::json!("new")),
        ]);
        let err = check_template(&gold_spec(&key), 9000, &cfg, Some("old")).expect_err("refused");
        assert_eq!(err.code(), "NoAttestation");
        let plain = config(&[
            ("description", serde_json::json!(signed_description(&key))),
            ("digest", serde_json::json!("old")),
        ]);
        let err = check_template(&gold_spec(&key), 9000, &plain, Some("old")).expect_err("refused");
        assert_eq!(err.code(), "NotATemplate");
    }

    #[test]
    fn a_config_without_a_digest_is_refused() {
        let key = attestation::AttestationKey::from_seed(&[1; 32]);
        let cfg = config(&[
            ("template", serde_json::json!(1)),
            ("description", serde_json::json!(signed_description(&key))),
        ]);
        let err = check_template(&gold_spec(&key), 9000, &cfg, None).expect_err("refused");
        assert_eq!(err.code(), "NoConfigDigest");
        assert!(
            matches!(err.verification(), Verification::Failed(m) if m.starts_with("NoConfigDigest: "))
        );
    }
}
