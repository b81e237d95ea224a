//! Evaluates `model::TaintPolicy` rules over CheckResources decisions, with a sliding-window counter per policy and node.
//!
//! The threshold counts *calls* (decision entries, one per CheckResources call) with at least
//! one matching action result, per node, within the window measured in log time (the entries'
//! own timestamps). The same `callId` is never counted twice. When the count is reached, a
//! taint is drafted carrying every counted call as evidence and the window starts over.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use model::{AttributionSource, TaintAction, TaintPolicy, TaintPolicySpec};
use serde_json::{Value, json};
use store::{NewTaint, TaintSource};

use crate::attribution::{Attributed, NodeAddresses, attribute};
use crate::decode::{CheckInput, CheckOutput, DecisionEntry, Effect};

/// At most this many matching action results are kept as evidence per call.
pub const MAX_HITS_PER_CALL: usize = 16;

/// A TaintPolicy ready to evaluate, plus the options `model::TaintPolicySpec` has no field for.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    /// The policy name (the taint key is `cerbos/<name>`).
    pub name: String,
    /// The manifest's spec.
    pub spec: TaintPolicySpec,
    /// Rule-output values that must all be present in the matching output's `val`
    /// (`val[key] == value`), e.g. `taint = cross_tenant_access`. Not in the manifest yet.
    pub output_values: Vec<(String, Value)>,
    /// With `action: Isolate`: keep the isolated old instance stopped this long, then destroy
    /// it (quarantine). Not in the manifest yet; recorded in the taint's evidence.
    pub quarantine_retention: Option<std::time::Duration>,
}

impl CompiledPolicy {
    /// Compiles a manifest.
    pub fn new(policy: &TaintPolicy) -> Self {
        CompiledPolicy {
            name: policy.name().as_str().to_owned(),
            spec: policy.spec.clone(),
            output_values: Vec::new(),
            quarantine_retention: None,
        }
    }

    /// Also requires `val[key] == value` on the matching rule output.
    pub fn with_output_value(mut self, key: impl Into<String>, value: Value) -> Self {
        self.output_values.push((key.into(), value));
        self
    }

    /// Quarantine: the isolated instance is kept stopped for `retention`, then destroyed.
    pub fn with_quarantine_retention(mut self, retention: std::time::Duration) -> Self {
        self.quarantine_retention = Some(retention);
        self
    }

    /// The store key of the taints this policy raises.
    pub fn taint_key(&self) -> String {
        format!("cerbos/{}", self.name)
    }

    /// Whether this policy needs a rule output to match.
    fn needs_output(&self) -> bool {
        !self.spec.matching.rules.is_empty() || !self.output_values.is_empty()
    }

    /// The matching action results of one input/output pair.
    fn hits(&self, input: &CheckInput, output: &CheckOutput, out: &mut Vec<Hit>) {
        let m = &self.spec.matching;
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        if !any(&m.resource_kinds, &input.resource.kind)
            || !any(&m.principal_ids, &input.principal.id)
        {
            return;
        }
        if !m.principal_roles.is_empty()
            && !input
                .principal
                .roles
                .iter()
                .any(|r| m.principal_roles.contains(r))
        {
            return;
        }
        let want = match m.effect {
            model::Effect::Deny => Effect::Deny,
            model::Effect::Allow => Effect::Allow,
        };
        for (action, result) in &output.actions {
            if result.effect != want
                || !any(&m.actions, action)
                || !any(&m.policies, &result.policy)
            {
                continue;
            }
            let rule_output = output.outputs.iter().find(|o| {
                o.action == *action
                    && (m.rules.is_empty() || m.rules.contains(&o.src))
                    && self
                        .output_values
                        .iter()
                        .all(|(k, v)| o.val.get(k).is_some_and(|x| x == v))
            });
            if self.needs_output() && rule_output.is_none() {
                continue;
            }
            out.push(Hit {
                principal: input.principal.id.clone(),
                resource_kind: input.resource.kind.clone(),
                resource_id: input.resource.id.clone(),
                action: action.clone(),
                effect: result.effect,
                policy: result.policy.clone(),
                rule: rule_output.map(|o| o.src.clone()),
                output: rule_output.map(|o| o.val.clone()),
            });
        }
    }
}

/// One matching action result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// `principal.id`.
    pub principal: String,
    /// `resource.kind`.
    pub resource_kind: String,
    /// `resource.id`.
    pub resource_id: String,
    /// The action.
    pub action: String,
    /// Its effect.
    pub effect: Effect,
    /// The deciding policy FQN.
    pub policy: String,
    /// The rule output's `src` (`<policy>#<rule>`), when one matched.
    pub rule: Option<String>,
    /// The rule output's `val`.
    pub output: Option<Value>,
}

/// One counted call in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct CountedCall {
    /// The Cerbos call id.
    pub call_id: String,
    /// The decision timestamp.
    pub timestamp: DateTime<Utc>,
    /// `peer.address` as logged.
    pub peer_address: String,
    /// The matching action results (at most [`MAX_HITS_PER_CALL`]).
    pub hits: Vec<Hit>,
    /// How many matched in total.
    pub total_hits: usize,
}

/// Counters of one evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// Calls that matched a policy and were counted for a node.
    pub counted: u64,
    /// Calls that matched a policy but could not be attributed to a node.
    pub unattributed: u64,
    /// Calls already counted (same callId seen again).
    pub duplicates: u64,
    /// Taints drafted.
    pub taints: u64,
}

type WindowKey = (String, String);

/// The counted calls of one policy on one node, oldest first, with their ids for O(1)
/// duplicate checks.
#[derive(Debug, Clone, Default)]
struct Window {
    calls: VecDeque<CountedCall>,
    ids: HashSet<String>,
}

/// At most this many calls are detailed in a taint's evidence (the newest); `callIds` lists
/// up to [`MAX_EVIDENCE_IDS`].
pub const MAX_EVIDENCE_CALLS: usize = 100;
/// At most this many callIds are listed in a taint's evidence (the newest).
pub const MAX_EVIDENCE_IDS: usize = 1000;

/// Evaluates a set of policies over decisions, keeping the per-node sliding windows.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    policies: Vec<CompiledPolicy>,
    windows: HashMap<WindowKey, Window>,
}

impl Evaluator {
    /// An evaluator for these policies.
    pub fn new(policies: Vec<CompiledPolicy>) -> Self {
        Evaluator {
            policies,
            windows: HashMap::new(),
        }
    }

    /// The policies.
    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    /// Replaces the policies; windows of policies that kept their name and spec survive.
    pub fn set_policies(&mut self, policies: Vec<CompiledPolicy>) {
        let keep: BTreeSet<String> = policies
            .iter()
            .filter(|p| self.policies.contains(p))
            .map(|p| p.name.clone())
            .collect();
        self.windows.retain(|(name, _), _| keep.contains(name));
        self.policies = policies;
    }

    /// How many calls are currently counted for `policy` on `node`.
    pub fn window_len(&self, policy: &str, node: &str) -> usize {
        self.windows
            .get(&(policy.to_owned(), node.to_owned()))
            .map_or(0, |w| w.calls.len())
    }

    /// Evaluates one decision entry. PlanResources entries are ignored. Returns the taints
    /// whose threshold this entry completed.
    pub fn evaluate(
        &mut self,
        entry: &DecisionEntry,
        addresses: &NodeAddresses,
        stats: &mut EvalStats,
    ) -> Vec<NewTaint> {
        let Some(check) = &entry.check_resources else {
            return Vec::new();
        };
        let mut drafted = Vec::new();
        let mut hits = Vec::new();
        for policy in &self.policies {
            hits.clear();
            for (input, output) in check.inputs.iter().zip(&check.outputs) {
                policy.hits(input, output, &mut hits);
            }
            if hits.is_empty() {
                continue;
            }
            let (node, via) = match attribute(entry, &policy.spec.attribution, addresses) {
                Attributed::Node { node, via } => (node, via),
                Attributed::Unattributed(why) => {
                    stats.unattributed += 1;
                    tracing::debug!(policy = %policy.name, call_id = %entry.call_id, %why, "matching Cerbos decision not attributed to a node");
                    continue;
                }
            };
            let Some(timestamp) = entry.timestamp else {
                stats.unattributed += 1;
                tracing::debug!(policy = %policy.name, call_id = %entry.call_id, "matching Cerbos decision has no timestamp");
                continue;
            };
            let window = self
                .windows
                .entry((policy.name.clone(), node.clone()))
                .or_default();
            if window.ids.contains(&entry.call_id) {
                stats.duplicates += 1;
                continue;
            }
            let total_hits = hits.len();
            let call = CountedCall {
                call_id: entry.call_id.clone(),
                timestamp,
                peer_address: entry.peer.address.clone(),
                hits: hits.iter().take(MAX_HITS_PER_CALL).cloned().collect(),
                total_hits,
            };
            let at = window.calls.partition_point(|c| c.timestamp <= timestamp);
            window.calls.insert(at, call);
            window.ids.insert(entry.call_id.clone());
            stats.counted += 1;
            let span = chrono::Duration::seconds(
                i64::try_from(policy.spec.threshold.window.as_secs()).unwrap_or(i64::MAX / 1000),
            );
            if let Some(newest) = window.calls.back().map(|c| c.timestamp) {
                while window
                    .calls
                    .front()
                    .is_some_and(|c| c.timestamp <= newest - span)
                {
                    if let Some(old) = window.calls.pop_front() {
                        window.ids.remove(&old.call_id);
                    }
                }
            }
            if window.calls.len() >= policy.spec.threshold.count as usize {
                window.ids.clear();
                let calls: Vec<CountedCall> = window.calls.drain(..).collect();
                stats.taints += 1;
                drafted.push(draft(policy, &node, &via, calls));
            }
        }
        drafted
    }
}

fn draft(policy: &CompiledPolicy, node: &str, via: &str, calls: Vec<CountedCall>) -> NewTaint {
    let created_at = calls
        .iter()
        .map(|c| c.timestamp)
        .max()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let expires_at = policy.spec.taint_ttl.and_then(|ttl| {
        i64::try_from(ttl.as_secs())
            .ok()
            .and_then(|s| created_at.checked_add_signed(chrono::Duration::seconds(s)))
    });
    let rules: BTreeSet<&str> = calls
        .iter()
        .flat_map(|c| c.hits.iter().filter_map(|h| h.rule.as_deref()))
        .collect();
    let principals: BTreeSet<&str> = calls
        .iter()
        .flat_map(|c| c.hits.iter().map(|h| h.principal.as_str()))
        .collect();
    let action = match (policy.spec.action, policy.quarantine_retention) {
        (TaintAction::Replace, _) => json!({"kind": "Replace"}),
        (TaintAction::Isolate, Some(r)) => {
            json!({"kind": "Quarantine", "retentionSecs": r.as_secs()})
        }
        (TaintAction::Isolate, None) => json!({"kind": "Isolate"}),
        (TaintAction::Report, _) => json!({"kind": "Report"}),
    };
    let by = match policy.spec.attribution.by {
        AttributionSource::PeerAddress => "PeerAddress",
        AttributionSource::MetadataKey => "MetadataKey",
    };
    let evidence = json!({
        "policy": policy.name,
        "severity": format!("{:?}", policy.spec.severity),
        "action": action,
        "attribution": {"by": by, "via": via, "spoofable": by == "MetadataKey"},
        "threshold": {
            "count": policy.spec.threshold.count,
            "windowSecs": policy.spec.threshold.window.as_secs(),
        },
        "countedCalls": calls.len(),
        "callIds": calls[calls.len().saturating_sub(MAX_EVIDENCE_IDS)..]
            .iter()
            .map(|c| c.call_id.as_str())
            .collect::<Vec<_>>(),
        "rules": rules,
        "calls": calls[calls.len().saturating_sub(MAX_EVIDENCE_CALLS)..].iter().map(|c| json!({
            "callId": c.call_id,
            "timestamp": c.timestamp.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "peerAddress": c.peer_address,
            "matchedActions": c.total_hits,
            "hits": c.hits.iter().map(|h| json!({
                "principal": h.principal,
                "resource": {"kind": h.resource_kind, "id": h.resource_id},
                "action": h.action,
                "effect": h.effect.as_str(),
                "policy": h.policy,
                "rule": h.rule,
                "output": h.output,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let rule_text = if rules.is_empty() {
        String::new()
    } else {
        format!(
            " (rule {})",
            rules.iter().copied().collect::<Vec<_>>().join(", ")
        )
    };
    let reason = format!(
        "TaintPolicy {}: {} matching Cerbos decision(s) within {} from {} by {}{}",
        policy.name,
        calls.len(),
        policy.spec.threshold.window,
        via,
        principals.iter().copied().collect::<Vec<_>>().join(", "),
        rule_text,
    );
    NewTaint {
        node: node.to_owned(),
        instance_id: None,
        key: policy.taint_key(),
        source: TaintSource::Cerbos,
        severity: store_severity(policy.spec.severity),
        reason,
        evidence,
        created_at,
        created_by: format!("taintpolicy/{}", policy.name),
        expires_at,
    }
}

/// Maps the manifest's four severities onto the store's three (the manifest's value is kept
/// in the evidence): Low → info, Medium → warning, High and Critical → critical.
pub fn store_severity(s: model::Severity) -> store::Severity {
    match s {
        model::Severity::Low => store::Severity::Info,
        model::Severity::Medium => store::Severity::Warning,
        model::Severity::High | model::Severity::Critical => store::Severity::Critical,
    }
}
