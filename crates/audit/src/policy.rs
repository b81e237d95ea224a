//! Evaluates `model::TaintPolicy` rules over CheckResources decisions, with a sliding-window counter per policy and node.
//!
//! The threshold counts *calls* (decision entries, one per CheckResources call) with at least
//! one matching action result, per node, within the window measured in log time (the entries'
//! own timestamps). The same `callId` is never counted twice. When the count is reached, a
//! taint is drafted carrying every counted call as evidence and the window starts over.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::{AttributionSource, TaintAction, TaintPolicy, TaintPolicySpec};
use serde_json::{Map, Value, json};
use store::{NewTaint, TaintSource};

use crate::attribution::{NodeAddresses, attribute_with, peer_ip};
use crate::call_key::{CallKey, KeyHashState};
use crate::decode::{DecisionEntry, Effect};
use crate::few::Few;
use crate::lite::{CheckLite, DecisionLite, InputLite, OutputLite, RuleValue, parse_checked};

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
}

impl CompiledPolicy {
    /// Compiles a manifest.
    pub fn new(policy: &TaintPolicy) -> Self {
        CompiledPolicy {
            name: policy.name().as_str().to_owned(),
            spec: policy.spec.clone(),
            output_values: Vec::new(),
        }
    }

    /// Also requires `val[key] == value` on the matching rule output.
    pub fn with_output_value(mut self, key: impl Into<String>, value: Value) -> Self {
        self.output_values.push((key.into(), value));
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

    /// The matching action results of input/output pair number `pair`, as indices.
    fn hits(
        &self,
        pair: usize,
        input: &InputLite<'_>,
        output: &OutputLite<'_>,
        out: &mut Vec<HitAt>,
    ) {
        let m = &self.spec.matching;
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        if !any(&m.resource_kinds, input.resource.kind.as_str())
            || !any(&m.principal_ids, input.principal.id.as_str())
        {
            return;
        }
        if !m.principal_roles.is_empty()
            && !input
                .principal
                .roles
                .iter()
                .any(|r| m.principal_roles.iter().any(|x| x == r.as_str()))
        {
            return;
        }
        let want = match m.effect {
            model::Effect::Deny => Effect::Deny,
            model::Effect::Allow => Effect::Allow,
        };
        for (action_at, (action, result)) in output.actions.0.iter().enumerate() {
            if result.effect != want
                || !any(&m.actions, action.as_str())
                || !any(&m.policies, result.policy.as_str())
            {
                continue;
            }
            let rule_output = output.outputs.iter().position(|o| {
                o.action == *action
                    && (m.rules.is_empty() || m.rules.iter().any(|r| r == o.src.as_str()))
                    && (self.output_values.is_empty()
                        || o.val.with(|val| {
                            self.output_values
                                .iter()
                                .all(|(k, v)| val.get(k).is_some_and(|x| x == v))
                        }))
            });
            if self.needs_output() && rule_output.is_none() {
                continue;
            }
            out.push(HitAt {
                pair,
                action: action_at,
                rule_output,
            });
        }
    }
}

/// Where a matching action result is in a decision: input/output pair, action, rule output.
#[derive(Debug, Clone, Copy)]
struct HitAt {
    pair: usize,
    action: usize,
    rule_output: Option<usize>,
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

/// One counted call as a window keeps it: its strings packed in one buffer.
#[derive(Debug, Clone)]
struct Counted {
    call_id: CallKey,
    timestamp: DateTime<Utc>,
    /// `peer.address`, then per hit: principal, resource kind, resource id, action, policy
    /// and rule, back to back.
    text: String,
    peer_end: usize,
    hits: Few<PackedHit>,
    total_hits: usize,
}

/// A [`Hit`] whose strings are in [`Counted::text`].
#[derive(Debug, Clone)]
struct PackedHit {
    /// Where principal, resource kind, resource id, action, policy and rule are.
    spans: [(usize, usize); 6],
    has_rule: bool,
    effect: Effect,
    output: Option<KeptOutput>,
}

/// A matching rule output's `val`, as kept in a window.
#[derive(Debug, Clone)]
enum KeptOutput {
    /// Decoded (shared with the line's entry).
    Value(Arc<Value>),
    /// Its checked JSON text, at this span of [`Counted::text`]; decoded for a taint.
    Text(usize, usize),
}

impl Counted {
    fn pack(
        call_id: CallKey,
        entry: &DecisionLite<'_>,
        check: &CheckLite<'_>,
        timestamp: DateTime<Utc>,
        hits: &[HitAt],
    ) -> Self {
        let shown = &hits[..hits.len().min(MAX_HITS_PER_CALL)];
        let mut text = String::with_capacity(entry.peer_address.as_str().len() + 128 * shown.len());
        text.push_str(entry.peer_address.as_str());
        let peer_end = text.len();
        let mut push = |s: &str| {
            let start = text.len();
            text.push_str(s);
            (start, text.len())
        };
        let packed = shown
            .iter()
            .map(|h| {
                let input = &check.inputs[h.pair];
                let output = &check.outputs[h.pair];
                let (action, result) = &output.actions.0[h.action];
                let rule = h.rule_output.map(|i| &output.outputs[i]);
                let spans = [
                    push(input.principal.id.as_str()),
                    push(input.resource.kind.as_str()),
                    push(input.resource.id.as_str()),
                    push(action.as_str()),
                    push(result.policy.as_str()),
                    push(rule.map_or("", |o| o.src.as_str())),
                ];
                let output = rule.map(|o| match &o.val {
                    RuleValue::Borrowed(v) => KeptOutput::Value(Arc::new((*v).clone())),
                    RuleValue::Shared(v) => KeptOutput::Value(Arc::clone(v)),
                    RuleValue::Text(t) => {
                        let (start, end) = push(t);
                        KeptOutput::Text(start, end)
                    }
                });
                PackedHit {
                    spans,
                    has_rule: rule.is_some(),
                    effect: result.effect,
                    output,
                }
            })
            .collect();
        Counted {
            call_id,
            timestamp,
            text,
            peer_end,
            hits: packed,
            total_hits: hits.len(),
        }
    }

    fn unpack(self) -> CountedCall {
        let text = self.text;
        let span = |(start, end): (usize, usize)| text.get(start..end).unwrap_or_default();
        let hits = self
            .hits
            .into_vec()
            .into_iter()
            .map(|h| Hit {
                principal: span(h.spans[0]).to_owned(),
                resource_kind: span(h.spans[1]).to_owned(),
                resource_id: span(h.spans[2]).to_owned(),
                action: span(h.spans[3]).to_owned(),
                effect: h.effect,
                policy: span(h.spans[4]).to_owned(),
                rule: h.has_rule.then(|| span(h.spans[5]).to_owned()),
                output: h.output.map(|o| match o {
                    KeptOutput::Value(v) => Arc::unwrap_or_clone(v),
                    KeptOutput::Text(start, end) => parse_checked(span((start, end))),
                }),
            })
            .collect();
        CountedCall {
            call_id: self.call_id.to_owned_string(),
            timestamp: self.timestamp,
            peer_address: span((0, self.peer_end)).to_owned(),
            hits,
            total_hits: self.total_hits,
        }
    }
}

/// The counted calls of one policy on one node, oldest first, with their ids for O(1)
/// duplicate checks.
#[derive(Debug, Clone, Default)]
struct Window {
    calls: VecDeque<Counted>,
    ids: HashSet<CallKey, KeyHashState>,
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
    /// Per policy name: node → window (policies of the same name share them).
    windows: Vec<(String, HashMap<String, Window>)>,
    /// For each policy, its entry in `windows`.
    slots: Vec<usize>,
    /// The hits of the policy being evaluated (kept to reuse its allocation).
    scratch: Vec<HitAt>,
}

impl Evaluator {
    /// An evaluator for these policies.
    pub fn new(policies: Vec<CompiledPolicy>) -> Self {
        let mut e = Evaluator::default();
        e.set_policies(policies);
        e
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
        let mut old: HashMap<String, HashMap<String, Window>> = self
            .windows
            .drain(..)
            .filter(|(name, _)| keep.contains(name))
            .collect();
        self.slots.clear();
        for p in &policies {
            let slot = match self.windows.iter().position(|(name, _)| *name == p.name) {
                Some(slot) => slot,
                None => {
                    let kept = old.remove(&p.name).unwrap_or_default();
                    self.windows.push((p.name.clone(), kept));
                    self.windows.len() - 1
                }
            };
            self.slots.push(slot);
        }
        self.policies = policies;
    }

    /// How many calls are currently counted for `policy` on `node`.
    pub fn window_len(&self, policy: &str, node: &str) -> usize {
        self.windows
            .iter()
            .find(|(name, _)| name == policy)
            .and_then(|(_, w)| w.get(node))
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
        let mut drafted = Vec::new();
        self.evaluate_lite(&DecisionLite::of(entry), addresses, stats, &mut drafted);
        drafted
    }

    /// [`Evaluator::evaluate`] of the ingest fast path: the drafted taints are appended to
    /// `drafted`.
    pub(crate) fn evaluate_lite(
        &mut self,
        entry: &DecisionLite<'_>,
        addresses: &NodeAddresses,
        stats: &mut EvalStats,
        drafted: &mut Vec<NewTaint>,
    ) {
        let Some(check) = &entry.check_resources else {
            return;
        };
        let call_id = entry.call_id.as_str();
        let peer_address = entry.peer_address.as_str();
        let mut peer: Option<Option<IpAddr>> = None;
        let metadata = OnceCell::new();
        let hits = &mut self.scratch;
        for (policy, &slot) in self.policies.iter().zip(&self.slots) {
            hits.clear();
            for (pair, (input, output)) in check.inputs.iter().zip(&check.outputs).enumerate() {
                policy.hits(pair, input, output, hits);
            }
            if hits.is_empty() {
                continue;
            }
            let ip = *peer.get_or_insert_with(|| peer_ip(peer_address));
            let attributed = attribute_with(
                peer_address,
                ip,
                || Cow::Borrowed(&**metadata.get_or_init(|| entry.metadata.get())),
                &policy.spec.attribution,
                addresses,
            );
            let (node, via) = match attributed {
                Ok(found) => found,
                Err(why) => {
                    stats.unattributed += 1;
                    tracing::debug!(policy = %policy.name, %call_id, %why, "matching Cerbos decision not attributed to a node");
                    continue;
                }
            };
            let Some(timestamp) = entry.timestamp else {
                stats.unattributed += 1;
                tracing::debug!(policy = %policy.name, %call_id, "matching Cerbos decision has no timestamp");
                continue;
            };
            let Some((_, by_node)) = self.windows.get_mut(slot) else {
                continue;
            };
            let window = node_window(by_node, node);
            let key = CallKey::new(call_id);
            if !window.ids.insert(key.clone()) {
                stats.duplicates += 1;
                continue;
            }
            let call = Counted::pack(key, entry, check, timestamp, hits);
            // Calls mostly come in time order: the back is the usual place.
            let at = if window.calls.back().is_none_or(|c| c.timestamp <= timestamp) {
                window.calls.len()
            } else {
                window.calls.partition_point(|c| c.timestamp <= timestamp)
            };
            window.calls.insert(at, call);
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
                        window.ids.remove(old.call_id.as_bytes());
                    }
                }
            }
            if window.calls.len() >= policy.spec.threshold.count as usize {
                window.ids.clear();
                let calls: Vec<CountedCall> = window.calls.drain(..).map(Counted::unpack).collect();
                stats.taints += 1;
                drafted.push(draft(policy, node, &via.to_string(), calls));
            }
        }
    }
}

/// The window of `node`, created if missing (the name is only allocated then).
fn node_window<'m>(by_node: &'m mut HashMap<String, Window>, node: &str) -> &'m mut Window {
    if !by_node.contains_key(node) {
        by_node.insert(node.to_owned(), Window::default());
    }
    by_node
        .get_mut(node)
        .expect("the window was inserted above")
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
    let action = match (policy.spec.action, policy.spec.quarantine_retention) {
        (TaintAction::Replace, _) => json!({"kind": "Replace"}),
        (TaintAction::Isolate, _) => json!({"kind": "Isolate"}),
        (TaintAction::Report, _) => json!({"kind": "Report"}),
        (TaintAction::Quarantine, Some(r)) => {
            json!({"kind": "Quarantine", "retentionSecs": r.as_secs()})
        }
        // The manifest requires a retention with `Quarantine`; a spec built in code without
        // one keeps the instance the shortest time rather than forever.
        (TaintAction::Quarantine, None) => json!({"kind": "Quarantine", "retentionSecs": 0}),
    };
    let by = match policy.spec.attribution.by {
        AttributionSource::PeerAddress => "PeerAddress",
        AttributionSource::MetadataKey => "MetadataKey",
    };
    let rule_text = if rules.is_empty() {
        String::new()
    } else {
        format!(
            " (rule {})",
            rules.iter().copied().collect::<Vec<_>>().join(", ")
        )
    };
    let counted = calls.len();
    let reason = format!(
        "TaintPolicy {}: {} matching Cerbos decision(s) within {} from {} by {}{}",
        policy.name,
        counted,
        policy.spec.threshold.window,
        via,
        principals.iter().copied().collect::<Vec<_>>().join(", "),
        rule_text,
    );
    let rules = Value::Array(rules.into_iter().map(Value::from).collect());
    let mut evidence = json!({
        "policy": policy.name,
        "severity": format!("{:?}", policy.spec.severity),
        "action": action,
        "attribution": {"by": by, "via": via, "spoofable": by == "MetadataKey"},
        "threshold": {
            "count": policy.spec.threshold.count,
            "windowSecs": policy.spec.threshold.window.as_secs(),
        },
        "countedCalls": counted,
    });
    let call_ids = Value::Array(
        calls[counted.saturating_sub(MAX_EVIDENCE_IDS)..]
            .iter()
            .map(|c| Value::from(c.call_id.as_str()))
            .collect(),
    );
    // Built as values from the calls' own strings (moved, not copied) and inserted into the
    // object, not passed to `json!`, which would copy every value once more.
    let detailed: Vec<Value> = calls
        .into_iter()
        .skip(counted.saturating_sub(MAX_EVIDENCE_CALLS))
        .map(|c| {
            let hits = c
                .hits
                .into_iter()
                .map(|h| {
                    let mut resource = Map::new();
                    resource.insert("kind".to_owned(), Value::String(h.resource_kind));
                    resource.insert("id".to_owned(), Value::String(h.resource_id));
                    let mut hit = Map::new();
                    hit.insert("principal".to_owned(), Value::String(h.principal));
                    hit.insert("resource".to_owned(), Value::Object(resource));
                    hit.insert("action".to_owned(), Value::String(h.action));
                    hit.insert("effect".to_owned(), Value::from(h.effect.as_str()));
                    hit.insert("policy".to_owned(), Value::String(h.policy));
                    hit.insert("rule".to_owned(), h.rule.map_or(Value::Null, Value::String));
                    hit.insert("output".to_owned(), h.output.unwrap_or(Value::Null));
                    Value::Object(hit)
                })
                .collect();
            let mut call = Map::new();
            call.insert("callId".to_owned(), Value::String(c.call_id));
            call.insert(
                "timestamp".to_owned(),
                Value::String(
                    c.timestamp
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ),
            );
            call.insert("peerAddress".to_owned(), Value::String(c.peer_address));
            call.insert("matchedActions".to_owned(), Value::from(c.total_hits));
            call.insert("hits".to_owned(), Value::Array(hits));
            Value::Object(call)
        })
        .collect();
    if let Value::Object(m) = &mut evidence {
        m.insert("callIds".to_owned(), call_ids);
        m.insert("rules".to_owned(), rules);
        m.insert("calls".to_owned(), Value::Array(detailed));
    }
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
