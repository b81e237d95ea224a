//! Reads the store into the planner's inputs: desired state, records and taints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::{ApiVersion, DisruptionBudget, GoldImage, Metadata, Node, Severity, TaintAction};
use planner::{
    BreakerRecord, Desired, DesiredNode, InFlight, InFlightKind, InstanceRecord, InstanceRole,
    Records, Taint, TaintSource, Taints, VmidLease,
};
use serde::de::DeserializeOwned;
use store::{EventQuery, Resource, Store, StoreError};

/// Event kinds the breaker's record is derived from.
pub(crate) const BREAKER_TRIPPED: &str = "BreakerTripped";
/// A human released the breaker.
pub(crate) const BREAKER_RELEASED: &str = "BreakerReleased";
/// A VM was destroyed (counted in the breaker window).
pub(crate) const DESTROYED: &str = "Destroyed";

/// Store kinds.
pub(crate) const NODE_KIND: &str = "Node";
pub(crate) const GOLD_KIND: &str = "GoldImage";
const BUDGET_KIND: &str = "DisruptionBudget";

fn decode<T: DeserializeOwned>(r: &Resource) -> Option<(Metadata, T)> {
    let name = r.key.name.parse().ok()?;
    let spec = match serde_json::from_value(r.spec.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(resource = %r.key, error = %e, "stored spec does not decode; skipped");
            return None;
        }
    };
    let metadata = Metadata {
        name,
        labels: r.labels.clone(),
    };
    Some((metadata, spec))
}

/// Node statuses as stored, by node name (read with the desired state, reused for status):
/// shared snapshots from [`Store::list_shared`], not copies.
#[derive(Default)]
pub(crate) struct StoredStatuses(HashMap<String, Arc<Resource>>);

impl StoredStatuses {
    /// The stored status of `node`, if the node exists.
    pub(crate) fn get(&self, node: &str) -> Option<&serde_json::Value> {
        self.0.get(node).map(|r| &r.status)
    }
}

/// Decoded node specs by name, reused while the stored node keeps its uid, generation and
/// labels: decoding 10,000 specs on every pass is wasted work when nothing changed.
#[derive(Default)]
pub(crate) struct NodeCache(HashMap<String, (String, u64, Node)>);

impl NodeCache {
    /// The node `r` declares, decoded at most once per uid, generation and labels.
    fn node(&mut self, r: &Resource) -> Option<Node> {
        if let Some((uid, generation, node)) = self.0.get(&r.key.name)
            && *uid == r.uid
            && *generation == r.generation
            && node.metadata.labels == r.labels
        {
            return Some(node.clone());
        }
        let (metadata, spec) = decode(r)?;
        let node = Node {
            api_version: ApiVersion::V1alpha1,
            metadata,
            spec,
        };
        self.0.insert(
            r.key.name.clone(),
            (r.uid.clone(), r.generation, node.clone()),
        );
        Some(node)
    }
}

/// A GoldImage as stored: what its template verification is remembered under (uid and
/// generation) and its status (which holds the remembered verified config digest).
#[derive(Debug, Clone)]
pub(crate) struct StoredGold {
    /// Changes when the GoldImage is deleted and applied again.
    pub(crate) uid: String,
    /// Bumped by every spec change.
    pub(crate) generation: u64,
    /// As last written by the controller.
    pub(crate) status: serde_json::Value,
}

/// Stored GoldImages by name.
pub(crate) type StoredGolds = std::collections::HashMap<String, StoredGold>;

/// The declared nodes, gold images and budgets, the nodes' stored statuses and the stored
/// GoldImages.
pub(crate) fn desired(
    store: &dyn Store,
    cache: &mut NodeCache,
) -> Result<(Desired, StoredStatuses, StoredGolds), StoreError> {
    let listing = store.list_shared(NODE_KIND)?;
    let nodes = listing
        .items
        .iter()
        .filter_map(|r| {
            Some(DesiredNode {
                node: cache.node(r)?,
                generation: r.generation,
                spec_hash: None,
            })
        })
        .collect();
    if cache.0.len() > listing.items.len() {
        let listed: std::collections::HashSet<&str> =
            listing.items.iter().map(|r| r.key.name.as_str()).collect();
        cache.0.retain(|name, _| listed.contains(name.as_str()));
    }
    let statuses = StoredStatuses(
        listing
            .items
            .into_iter()
            .map(|r| (r.key.name.clone(), r))
            .collect(),
    );
    let gold_listing = store.list(GOLD_KIND)?;
    let golds = gold_listing
        .items
        .iter()
        .map(|r| {
            (
                r.key.name.clone(),
                StoredGold {
                    uid: r.uid.clone(),
                    generation: r.generation,
                    status: r.status.clone(),
                },
            )
        })
        .collect();
    let gold_images = gold_listing
        .items
        .iter()
        .filter_map(|r| {
            let (metadata, spec) = decode(r)?;
            Some(GoldImage {
                api_version: ApiVersion::V1alpha1,
                metadata,
                spec,
            })
        })
        .collect();
    let budgets = store
        .list(BUDGET_KIND)?
        .items
        .iter()
        .filter_map(|r| {
            let (metadata, spec) = decode(r)?;
            Some(DisruptionBudget {
                api_version: ApiVersion::V1alpha1,
                metadata,
                spec,
            })
        })
        .collect();
    Ok((
        Desired {
            nodes,
            gold_images,
            budgets,
        },
        statuses,
        golds,
    ))
}

/// The role of each stored instance. The store knows only `current`; a non-current record is
/// incoming when it is newer than the node's current record (or the node has none), and
/// retiring otherwise (promotion makes the old current record older than the new one).
pub(crate) fn roles(
    records: &[store::InstanceRecord],
) -> Vec<(InstanceRole, &store::InstanceRecord)> {
    let mut current: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.current) {
        current.insert(&r.node, r.created_at);
    }
    records
        .iter()
        .map(|r| {
            let role = if r.current {
                InstanceRole::Current
            } else {
                match current.get(r.node.as_str()) {
                    Some(c) if r.created_at <= *c => InstanceRole::Retiring,
                    _ => InstanceRole::Incoming,
                }
            };
            (role, r)
        })
        .collect()
}

/// The store's records in the planner's terms.
pub(crate) fn records(
    store: &dyn Store,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> Result<Records, StoreError> {
    let stored = store.instances(None)?;
    let instances = roles(&stored)
        .into_iter()
        .filter_map(|(role, r)| {
            Some(InstanceRecord {
                node: r.node.parse().ok()?,
                role,
                instance_id: r.instance_id.clone(),
                vmid: model::VmId::new(r.vmid)?,
                pve_node: r.pve_node.parse().ok()?,
                name: r.name.clone(),
                smbios_uuid: r.smbios_uuid.clone(),
                spec_hash: r.spec_hash.clone(),
            })
        })
        .collect();
    let leases = store
        .vmid_leases()?
        .into_iter()
        .filter_map(|l| {
            Some(VmidLease {
                vmid: model::VmId::new(l.vmid)?,
                node: l.node.parse().ok()?,
            })
        })
        .collect();
    let recent_destroys = store
        .events(&EventQuery {
            kind: Some(DESTROYED.to_owned()),
            since: Some(now - window),
            ..EventQuery::default()
        })?
        .into_iter()
        .map(|e| e.at)
        .collect();
    let in_flight = store
        .journal_in_flight()?
        .into_iter()
        .filter_map(|e| {
            Some(InFlight {
                node: e.node.parse().ok()?,
                vmid: e.vmid.and_then(model::VmId::new),
                kind: match e.action.as_str() {
                    "create" => InFlightKind::Create,
                    "start" => InFlightKind::Start,
                    "stop" => InFlightKind::Stop,
                    "isolate" => InFlightKind::Isolate,
                    "destroy" => InFlightKind::Destroy,
                    other => InFlightKind::Other(other.to_owned()),
                },
                pve_node: e.pve_node.as_deref().and_then(|p| p.parse().ok()),
                storage: e
                    .detail
                    .pointer("/create/storage")
                    .and_then(|s| s.as_str())
                    .and_then(|s| s.parse().ok()),
            })
        })
        .collect();
    Ok(Records {
        instances,
        leases,
        recent_destroys,
        breaker: breaker_record(store)?,
        in_flight,
        // Filled by the controller from its readiness state.
        gave_up: Vec::new(),
    })
}

/// The breaker as the latest trip/release event says.
pub(crate) fn breaker_record(store: &dyn Store) -> Result<BreakerRecord, StoreError> {
    let last = |kind: &str| {
        store.events(&EventQuery {
            kind: Some(kind.to_owned()),
            limit: Some(1),
            ..EventQuery::default()
        })
    };
    let tripped = last(BREAKER_TRIPPED)?.pop();
    let released = last(BREAKER_RELEASED)?.pop();
    Ok(match (tripped, released) {
        (Some(t), Some(r)) if r.id > t.id => BreakerRecord::Released {
            by: r.data["by"].as_str().unwrap_or("unknown").to_owned(),
            at: r.at,
        },
        (Some(t), _) => BreakerRecord::Tripped {
            at: t.at,
            reason: t.message,
        },
        (None, Some(r)) => BreakerRecord::Released {
            by: r.data["by"].as_str().unwrap_or("unknown").to_owned(),
            at: r.at,
        },
        (None, None) => BreakerRecord::Armed,
    })
}

/// A taint's action and quarantine retention from its evidence's `action`: a word (`replace`,
/// `isolate`, `report`, `quarantine`) or, as audit and the taint API write it, an object
/// `{"kind": "Quarantine", "retentionSecs": 86400}`. Without one: from the severity (info →
/// report, otherwise replace; critical is treated as compromised).
pub(crate) fn taint_action(
    evidence: &serde_json::Value,
    severity: store::Severity,
) -> (TaintAction, Option<model::Duration>) {
    let action = evidence.get("action");
    let kind = action
        .and_then(|a| {
            a.as_str()
                .or_else(|| a.get("kind").and_then(|k| k.as_str()))
        })
        .map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("isolate") => (TaintAction::Isolate, None),
        Some("report") => (TaintAction::Report, None),
        Some("replace") => (TaintAction::Replace, None),
        Some("quarantine") => {
            let retention = action
                .and_then(|a| a.get("retentionSecs"))
                .and_then(serde_json::Value::as_u64)
                .and_then(model::Duration::from_secs);
            (TaintAction::Quarantine, retention)
        }
        _ if severity == store::Severity::Info => (TaintAction::Report, None),
        _ => (TaintAction::Replace, None),
    }
}

/// Active taints in the planner's terms (the action from [`taint_action`]).
pub(crate) fn taints(store: &dyn Store, now: DateTime<Utc>) -> Result<Taints, StoreError> {
    let active = store
        .active_taints(None, now)?
        .into_iter()
        .filter_map(|t| {
            let (action, quarantine_retention) = taint_action(&t.evidence, t.severity);
            Some(Taint {
                id: t.id,
                node: t.node.parse().ok()?,
                instance_id: t.instance_id,
                source: match t.source {
                    store::TaintSource::Cli => TaintSource::Cli,
                    store::TaintSource::Cerbos => TaintSource::Cerbos,
                    store::TaintSource::Webhook => TaintSource::Webhook,
                    store::TaintSource::Drift => TaintSource::Drift,
                    store::TaintSource::Health => TaintSource::Health,
                },
                severity: match t.severity {
                    store::Severity::Info => Severity::Low,
                    store::Severity::Warning => Severity::High,
                    store::Severity::Critical => Severity::Critical,
                },
                action,
                quarantine_retention,
                reason: t.reason,
                created_at: t.created_at,
            })
        })
        .collect();
    Ok(Taints { active })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, node: &str, current: bool, secs: i64) -> store::InstanceRecord {
        store::InstanceRecord {
            instance_id: id.to_owned(),
            node: node.to_owned(),
            vmid: 100,
            pve_node: "pve1".to_owned(),
            name: node.to_owned(),
            smbios_uuid: "u".to_owned(),
            spec_hash: "h".to_owned(),
            gold_digest: String::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs),
            current,
        }
    }

    #[test]
    fn taint_action_is_read_from_a_word_or_an_audit_object() {
        use serde_json::json;
        let warning = store::Severity::Warning;
        assert_eq!(
            taint_action(&json!({"action": "isolate"}), warning).0,
            TaintAction::Isolate
        );
        assert_eq!(
            taint_action(&json!({"action": {"kind": "Isolate"}}), warning).0,
            TaintAction::Isolate
        );
        let (action, retention) = taint_action(
            &json!({"action": {"kind": "Quarantine", "retentionSecs": 7200}}),
            warning,
        );
        assert_eq!(action, TaintAction::Quarantine);
        assert_eq!(retention.map(model::Duration::as_secs), Some(7200));
        assert_eq!(
            taint_action(&json!({}), store::Severity::Info).0,
            TaintAction::Report
        );
        assert_eq!(taint_action(&json!({}), warning).0, TaintAction::Replace);
    }

    #[test]
    fn non_current_records_are_incoming_when_newer_and_retiring_when_older() {
        let records = vec![
            rec("old", "a", false, 1),
            rec("cur", "a", true, 2),
            rec("new", "a", false, 3),
            rec("lonely", "b", false, 5),
        ];
        let roles: Vec<(InstanceRole, &str)> = roles(&records)
            .into_iter()
            .map(|(role, r)| (role, r.instance_id.as_str()))
            .collect();
        assert_eq!(
            roles,
            vec![
                (InstanceRole::Retiring, "old"),
                (InstanceRole::Current, "cur"),
                (InstanceRole::Incoming, "new"),
                (InstanceRole::Incoming, "lonely"),
            ]
        );
    }
}
