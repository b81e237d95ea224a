//! Gold template verification per pass: which templates to read, the pre-clone checks, the remembered verified config digest (GoldImage status), the `Verified` condition and events.
//!
//! A template is read (one config GET) in a pass when a clone from it is wanted, when nothing
//! is known of it yet for its GoldImage's uid, generation and template VMID (after a start or
//! an apply), or when its listing entry changed since the last read. The first successful
//! verification for a (uid, generation, vmid) remembers the template's PVE config digest in
//! the GoldImage's status; from then on any other digest is `TemplateConfigChanged` until a
//! person changes the GoldImage's spec or deletes and re-applies it
//! (docs/decisions/0011-gold-verification.md).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use model::GoldImage;
use planner::{BlockedBy, DesiredNode, ObservedVm, Plan, TemplateStatus, Verification};
use serde_json::{Value, json};
use store::{Expect, NewEvent, ResourceKey};

use super::Inner;
use super::inputs::{GOLD_KIND, StoredGold, StoredGolds};
use crate::observe::{self, TemplateProblem, TemplateVerified};

/// Event kind: a template passed the checks (after having failed, or for the first time).
pub(crate) const TEMPLATE_VERIFIED: &str = "TemplateVerified";
/// Event kind: a template is refused; the data's `reason` is the rejection code.
pub(crate) const TEMPLATE_REJECTED: &str = "TemplateRejected";
/// The GoldImage status condition.
const CONDITION: &str = "Verified";

/// What a verification is remembered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoldKey {
    uid: String,
    generation: u64,
    vmid: u32,
}

impl GoldKey {
    /// Whether a stored `verified` record was made under this key.
    fn matches(&self, record: &Value) -> bool {
        record["uid"].as_str() == Some(self.uid.as_str())
            && record["generation"].as_u64() == Some(self.generation)
            && record["vmid"].as_u64() == Some(u64::from(self.vmid))
    }
}

/// The result of checking one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Every check passed.
    Verified(TemplateVerified),
    /// A check failed: no clone.
    Rejected(TemplateProblem),
    /// The config could not be read (transient): no clone this pass, status unchanged.
    Unreadable(String),
}

impl Checked {
    fn verification(&self) -> Verification {
        match self {
            Checked::Verified(_) => Verification::Verified,
            Checked::Rejected(p) => p.verification(),
            Checked::Unreadable(e) => {
                Verification::Failed(format!("template config could not be read: {e}"))
            }
        }
    }
}

/// One GoldImage's template as checked in this pass.
#[derive(Debug, Clone)]
pub(crate) struct GoldOutcome {
    name: String,
    /// `None` when the template was not found.
    key: Option<GoldKey>,
    pve_node: String,
    /// Whether a config read was made for it.
    pub(crate) read: bool,
    checked: Checked,
}

/// What the last config read of a GoldImage's template found.
#[derive(Debug, Clone)]
struct Seen {
    key: GoldKey,
    fingerprint: String,
    config_digest: Option<String>,
    remembered: Option<String>,
    checked: Checked,
}

/// The controller's memory of template reads (the durable part is the GoldImage status).
#[derive(Debug, Default)]
pub(crate) struct TemplateChecks {
    seen: Mutex<HashMap<String, Seen>>,
}

impl TemplateChecks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The listing's view of a VM that is not a template (its fingerprint changes with its state).
fn plain_fingerprint(vm: &ObservedVm) -> String {
    format!(
        "plain|{}|{:?}|{:?}|{:?}|{:?}",
        vm.pve_node, vm.name, vm.tags, vm.lock, vm.status
    )
}

/// The verified config digest remembered in a GoldImage's status for `key`, if any.
fn remembered_digest(status: &Value, key: &GoldKey) -> Option<String> {
    let record = &status["verified"];
    key.matches(record)
        .then(|| record["configDigest"].as_str().map(str::to_owned))
        .flatten()
}

/// Replaces the `Unknown` verification of each checked template with its outcome.
pub(crate) fn apply(templates: &mut [TemplateStatus], outcomes: &[GoldOutcome]) {
    for o in outcomes {
        if let Some(t) = templates
            .iter_mut()
            .find(|t| t.gold_image.as_str() == o.name)
        {
            t.verification = o.checked.verification();
        }
    }
}

/// Gold images the plan would clone from but could not because they were not checked in
/// this pass yet.
pub(crate) fn wanted(plan: &Plan, outcomes: &[GoldOutcome]) -> HashSet<String> {
    let checked: HashSet<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    plan.holds
        .iter()
        .filter_map(|h| match &h.blocked_by {
            BlockedBy::TemplateUnverified { gold_image, .. } => Some(gold_image),
            _ => None,
        })
        .filter(|g| !checked.contains(g.as_str()))
        .cloned()
        .collect()
}

impl Inner {
    /// Checks the templates of `gold_images`: with `wanted` `None`, those due (never read
    /// under their current key, or changed in the listing; a missing template is reported
    /// without a read); otherwise exactly the wanted ones. One config read per template.
    pub(crate) async fn check_templates(
        &self,
        gold_images: &[GoldImage],
        stored: &StoredGolds,
        vms: &[ObservedVm],
        fingerprints: &HashMap<u32, String>,
        wanted: Option<&HashSet<String>>,
    ) -> Vec<GoldOutcome> {
        let mut outcomes = Vec::new();
        let mut reads = Vec::new();
        for g in gold_images {
            let name = g.name().as_str();
            let Some(sg) = stored.get(name) else {
                continue;
            };
            let pve_node = g.spec.template.pve_node.to_string();
            let Some(vm) = observe::find_template(g, vms) else {
                if wanted.is_none() {
                    outcomes.push(GoldOutcome {
                        name: name.to_owned(),
                        key: None,
                        pve_node: pve_node.clone(),
                        read: false,
                        checked: Checked::Rejected(TemplateProblem::NotFound { pve_node }),
                    });
                }
                continue;
            };
            let key = GoldKey {
                uid: sg.uid.clone(),
                generation: sg.generation,
                vmid: vm.vmid.get(),
            };
            let fingerprint = fingerprints
                .get(&key.vmid)
                .cloned()
                .unwrap_or_else(|| plain_fingerprint(vm));
            let read = match wanted {
                Some(w) => w.contains(name),
                None => self
                    .template_checks
                    .lock()
                    .get(name)
                    .is_none_or(|s| s.key != key || s.fingerprint != fingerprint),
            };
            if read {
                reads.push((g, sg, vm, key, fingerprint));
            }
        }
        let results = futures_util::future::join_all(reads.into_iter().map(
            |(g, sg, vm, key, fingerprint)| async move {
                let checked = self.read_and_check(g, sg, vm, &key, fingerprint).await;
                GoldOutcome {
                    name: g.name().as_str().to_owned(),
                    key: Some(key),
                    pve_node: vm.pve_node.to_string(),
                    read: true,
                    checked,
                }
            },
        ))
        .await;
        outcomes.extend(results);
        outcomes
    }

    /// One config read of a template and the checks (reused when the config digest and the
    /// remembered digest are what the last read saw).
    async fn read_and_check(
        &self,
        g: &GoldImage,
        sg: &StoredGold,
        vm: &ObservedVm,
        key: &GoldKey,
        fingerprint: String,
    ) -> Checked {
        let name = g.name().as_str();
        let (Ok(node), Ok(vmid)) = (
            pve_client::NodeName::new(vm.pve_node.as_str()),
            pve_client::VmId::new(key.vmid),
        ) else {
            return Checked::Unreadable(format!(
                "VM {} on {} is not addressable",
                key.vmid, vm.pve_node
            ));
        };
        let cfg = match self.client.vm_config(&node, vmid).await {
            Ok(cfg) => cfg,
            Err(pve_client::Error::ConfigNotFound { .. }) => {
                self.template_checks.lock().remove(name);
                return Checked::Rejected(TemplateProblem::NotFound {
                    pve_node: vm.pve_node.to_string(),
                });
            }
            Err(e) => {
                tracing::warn!(gold_image = name, vmid = key.vmid, error = %e, "template config read failed");
                return Checked::Unreadable(e.to_string());
            }
        };
        let remembered = remembered_digest(&sg.status, key);
        let mut seen = self.template_checks.lock();
        let reuse = seen.get(name).and_then(|s| {
            (s.key == *key && s.config_digest == cfg.digest && s.remembered == remembered)
                .then(|| s.checked.clone())
        });
        let checked = reuse.unwrap_or_else(|| {
            match observe::check_template(&g.spec, key.vmid, &cfg, remembered.as_deref()) {
                Ok(v) => Checked::Verified(v),
                Err(p) => Checked::Rejected(p),
            }
        });
        seen.insert(
            name.to_owned(),
            Seen {
                key: key.clone(),
                fingerprint,
                config_digest: cfg.digest.clone(),
                remembered,
                checked: checked.clone(),
            },
        );
        checked
    }
}

/// The `Verified` condition of an outcome.
fn condition(o: &GoldOutcome) -> Option<Value> {
    let vmid = o.key.as_ref().map(|k| k.vmid);
    let at = match vmid {
        Some(v) => format!("template {v} on {}", o.pve_node),
        None => format!("template on {}", o.pve_node),
    };
    let (status, reason, message) = match &o.checked {
        Checked::Verified(v) => {
            let s = v.statement.statement();
            (
                "True",
                "Verified",
                format!(
                    "{at} is {} {} ({}), signed by {}; config digest {}",
                    s.name,
                    s.version,
                    s.digest,
                    v.statement.key(),
                    v.config_digest
                ),
            )
        }
        Checked::Rejected(p) => ("False", p.code(), format!("{at}: {p}")),
        Checked::Unreadable(_) => return None,
    };
    Some(json!({"type": CONDITION, "status": status, "reason": reason, "message": message}))
}

/// The GoldImage status after `o` (`None`: leave it as it is).
fn gold_status(sg: &StoredGold, o: &GoldOutcome, now: DateTime<Utc>) -> Option<Value> {
    let condition = condition(o)?;
    let previous = &sg.status["verified"];
    let record = match (&o.checked, &o.key) {
        (Checked::Verified(v), Some(key)) if !key.matches(previous) => {
            let s = v.statement.statement();
            json!({
                "uid": key.uid,
                "generation": key.generation,
                "vmid": key.vmid,
                "configDigest": v.config_digest,
                "at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
                "image": s.name,
                "version": s.version,
                "digest": s.digest,
                "key": v.statement.key(),
            })
        }
        // Never forgotten on a failure: a template changed while missing or broken must not
        // be re-trusted from scratch when it comes back.
        _ => previous.clone(),
    };
    let config_digest = match &o.checked {
        Checked::Verified(v) => Some(v.config_digest.clone()),
        Checked::Rejected(TemplateProblem::Rejected(model::TemplateRejection::ConfigChanged {
            current,
            ..
        })) => Some(current.clone()),
        _ => None,
    };
    Some(json!({
        "observedGeneration": sg.generation,
        "template": {
            "vmid": o.key.as_ref().map(|k| k.vmid),
            "pveNode": o.pve_node,
            "configDigest": config_digest,
        },
        "verified": record,
        "conditions": [condition],
    }))
}

/// Whether two conditions say the same (status, reason, message).
fn same_condition(a: &Value, b: &Value) -> bool {
    ["status", "reason", "message"]
        .iter()
        .all(|k| a.get(k) == b.get(k))
}

/// Writes the status of every GoldImage whose outcome changed it (one transaction), then
/// appends one event per changed `Verified` condition.
pub(crate) fn write_statuses(
    inner: &Inner,
    stored: &StoredGolds,
    outcomes: &[GoldOutcome],
    nodes: &[DesiredNode],
) {
    let now = Utc::now();
    let mut txn = store::Txn::new();
    let mut events = Vec::new();
    for o in outcomes {
        let Some(sg) = stored.get(&o.name) else {
            continue;
        };
        let Some(status) = gold_status(sg, o, now) else {
            continue;
        };
        if status == sg.status {
            continue;
        }
        let condition = &status["conditions"][0];
        if !same_condition(condition, &sg.status["conditions"][0]) {
            events.push(event(o, condition, nodes, now));
        }
        txn.push(store::Op::PutStatus {
            key: ResourceKey::new(GOLD_KIND, o.name.clone()),
            status,
            expect: Expect::Any,
        });
    }
    if txn.is_empty() {
        return;
    }
    if let Err(e) = inner.store.commit(txn) {
        tracing::warn!(error = %e, "gold image status not written");
        return;
    }
    for e in events {
        match e.kind.as_str() {
            TEMPLATE_REJECTED => tracing::warn!(message = %e.message, "gold template refused"),
            _ => tracing::info!(message = %e.message, "gold template verified"),
        }
        inner.emit(e);
    }
}

fn event(
    o: &GoldOutcome,
    condition: &Value,
    nodes: &[DesiredNode],
    now: DateTime<Utc>,
) -> NewEvent {
    let users: Vec<&str> = nodes
        .iter()
        .filter(|n| n.node.spec.gold_image.as_str() == o.name)
        .map(|n| n.node.name().as_str())
        .collect();
    let reason = condition["reason"].as_str().unwrap_or_default();
    let detail = condition["message"].as_str().unwrap_or_default();
    let verified = matches!(o.checked, Checked::Verified(_));
    let (kind, message) = if verified {
        (
            TEMPLATE_VERIFIED,
            format!("gold image {}: {detail}", o.name),
        )
    } else {
        (
            TEMPLATE_REJECTED,
            format!(
                "gold image {}: no clone from it ({reason}): {detail}",
                o.name
            ),
        )
    };
    NewEvent {
        at: now,
        node: None,
        kind: kind.to_owned(),
        message,
        data: json!({
            "goldImage": o.name,
            "vmid": o.key.as_ref().map(|k| k.vmid),
            "pveNode": o.pve_node,
            "reason": reason,
            "detail": detail,
            "nodes": users,
        }),
    }
}
