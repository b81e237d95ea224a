//! Evaluates `model::TaintPolicy` rules over CheckResources decisions, with a sliding-window counter per policy and node.
//!
//! The threshold counts *calls* (decision entries, one per CheckResources call) with at least
//! one matching action result, per node, within the window measured in log time (the entries'
//! own timestamps). The same `callId` is never counted twice. When the count is reached, a
//! taint is drafted carrying every counted call as evidence and the window starts over.
//!
//! Windows are durable: [`Evaluator::window_writes`] lists the windows changed since the last
//! commit as [`store::AuditWindow`] rows (committed with the cursor that moved past the lines),
//! and [`Evaluator::restore_windows`] loads them back after a restart.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::{AttributionSource, TaintAction, TaintPolicy, TaintPolicySpec};
use serde_json::{Map, Value, json};
use store::{AuditWindow, NewTaint, TaintSource};

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

    /// Identifies the spec and output values (not the name) for persisted windows: a window
    /// stored under another fingerprint was counted under other rules and is dropped. A
    /// 64-bit FNV-1a hash of their JSON, in hex.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(&(&self.spec, &self.output_values)).unwrap_or_default();
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
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

    /// Packs a call read back from the store.
    fn from_call(c: CountedCall) -> Self {
        let mut text = String::with_capacity(c.peer_address.len() + 128 * c.hits.len());
        text.push_str(&c.peer_address);
        let peer_end = text.len();
        let mut push = |s: &str| {
            let start = text.len();
            text.push_str(s);
            (start, text.len())
        };
        let shown = c.hits.len().min(MAX_HITS_PER_CALL);
        let hits = c
            .hits
            .into_iter()
            .take(MAX_HITS_PER_CALL)
            .map(|h| PackedHit {
                spans: [
                    push(&h.principal),
                    push(&h.resource_kind),
                    push(&h.resource_id),
                    push(&h.action),
                    push(&h.policy),
                    push(h.rule.as_deref().unwrap_or_default()),
                ],
                has_rule: h.rule.is_some(),
                effect: h.effect,
                output: h.output.map(|v| KeptOutput::Value(Arc::new(v))),
            })
            .collect();
        Counted {
            call_id: CallKey::new(&c.call_id),
            timestamp: c.timestamp,
            text,
            peer_end,
            hits,
            total_hits: c.total_hits.max(shown),
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
    /// Changed since the last committed [`Evaluator::window_writes`].
    dirty: bool,
}

impl Window {
    /// Counts `call` unless its callId is already in; keeps time order.
    fn insert(&mut self, call: Counted) -> bool {
        if !self.ids.insert(call.call_id.clone()) {
            return false;
        }
        let timestamp = call.timestamp;
        // Calls mostly come in time order: the back is the usual place.
        let at = if self.calls.back().is_none_or(|c| c.timestamp <= timestamp) {
            self.calls.len()
        } else {
            self.calls.partition_point(|c| c.timestamp <= timestamp)
        };
        self.calls.insert(at, call);
        self.dirty = true;
        true
    }

    /// Drops the calls older than `span` before the newest one.
    fn expire(&mut self, span: chrono::Duration) {
        if let Some(newest) = self.calls.back().map(|c| c.timestamp) {
            while self
                .calls
                .front()
                .is_some_and(|c| c.timestamp <= newest - span)
            {
                if let Some(old) = self.calls.pop_front() {
                    self.ids.remove(old.call_id.as_bytes());
                    self.dirty = true;
                }
            }
        }
    }
}

/// The window length of a policy.
fn window_span(policy: &CompiledPolicy) -> chrono::Duration {
    chrono::Duration::seconds(
        i64::try_from(policy.spec.threshold.window.as_secs()).unwrap_or(i64::MAX / 1000),
    )
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
    /// For each policy, [`CompiledPolicy::fingerprint`].
    fingerprints: Vec<String>,
    /// Persisted windows read while no policy was loaded: adopted or dropped by the next
    /// [`Evaluator::set_policies`].
    parked: Vec<AuditWindow>,
    /// (policy, node) of windows dropped since the last committed write: deleted from the
    /// store by the next [`Evaluator::window_writes`].
    dropped: BTreeSet<(String, String)>,
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
        let mut old: HashMap<String, HashMap<String, Window>> = HashMap::new();
        for (name, by_node) in self.windows.drain(..) {
            if keep.contains(&name) {
                old.insert(name, by_node);
            } else {
                self.dropped
                    .extend(by_node.into_keys().map(|node| (name.clone(), node)));
            }
        }
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
        self.fingerprints = policies.iter().map(CompiledPolicy::fingerprint).collect();
        self.policies = policies;
        let parked = std::mem::take(&mut self.parked);
        self.restore_windows(parked);
    }

    /// Loads windows persisted by [`Evaluator::window_writes`] (after a restart). A window
    /// whose policy has the same name and fingerprint is restored (merged with what is already
    /// counted; calls beyond the window rule expire); the others are dropped and deleted from
    /// the store by the next write. While no policy is loaded at all, windows wait for the
    /// next [`Evaluator::set_policies`]. Returns how many calls were restored.
    pub fn restore_windows(&mut self, rows: Vec<AuditWindow>) -> usize {
        let mut restored = 0;
        for row in rows {
            if self.policies.is_empty() {
                self.parked.push(row);
                continue;
            }
            let found = self
                .policies
                .iter()
                .zip(&self.fingerprints)
                .zip(&self.slots)
                .find(|((p, _), _)| p.name == row.policy);
            let Some(((policy, fingerprint), &slot)) = found else {
                tracing::info!(policy = %row.policy, node = %row.node, "persisted Cerbos window dropped: its TaintPolicy is gone");
                self.dropped.insert((row.policy, row.node));
                continue;
            };
            if *fingerprint != row.fingerprint {
                tracing::info!(policy = %row.policy, node = %row.node, "persisted Cerbos window dropped: its TaintPolicy changed");
                self.dropped.insert((row.policy, row.node));
                continue;
            }
            let span = window_span(policy);
            let Some((_, by_node)) = self.windows.get_mut(slot) else {
                continue;
            };
            let window = node_window(by_node, &row.node);
            let calls = row.calls.as_array().map(Vec::as_slice).unwrap_or_default();
            for value in calls {
                match call_from_value(value) {
                    Some(call) => {
                        let dirty = window.dirty;
                        if window.insert(Counted::from_call(call)) {
                            restored += 1;
                        }
                        // Restored as stored: not a change to write back.
                        window.dirty = dirty;
                    }
                    None => {
                        tracing::warn!(policy = %row.policy, node = %row.node, "unreadable call in a persisted Cerbos window skipped");
                    }
                }
            }
            let before = window.calls.len();
            window.expire(span);
            if window.calls.len() != before {
                window.dirty = true;
            }
        }
        restored
    }

    /// The windows changed since the last [`Evaluator::windows_written`], as store rows of
    /// `scope`: every call each one holds (an empty window deletes its row). Commit them with
    /// the cursor of the lines that changed them, then call [`Evaluator::windows_written`].
    pub fn window_writes(&self, scope: &str) -> Vec<AuditWindow> {
        let mut out: BTreeMap<(&str, &str), AuditWindow> = BTreeMap::new();
        for (policy, node) in &self.dropped {
            out.insert(
                (policy, node),
                AuditWindow::new(scope, policy, node, "", Value::Array(Vec::new())),
            );
        }
        for (name, by_node) in &self.windows {
            let fingerprint = self
                .policies
                .iter()
                .position(|p| p.name == *name)
                .and_then(|i| self.fingerprints.get(i))
                .map_or("", String::as_str);
            for (node, window) in by_node {
                if !window.dirty && !self.dropped.contains(&(name.clone(), node.clone())) {
                    continue;
                }
                let calls = window
                    .calls
                    .iter()
                    .map(|c| call_value(c.clone().unpack()))
                    .collect();
                out.insert(
                    (name, node),
                    AuditWindow::new(scope, name, node, fingerprint, Value::Array(calls)),
                );
            }
        }
        out.into_values().collect()
    }

    /// Marks the writes of [`Evaluator::window_writes`] as committed.
    pub fn windows_written(&mut self) {
        self.dropped.clear();
        for (_, by_node) in &mut self.windows {
            by_node.retain(|_, w| {
                w.dirty = false;
                !w.calls.is_empty()
            });
        }
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
            if window.ids.contains(call_id.as_bytes()) {
                stats.duplicates += 1;
                continue;
            }
            let call = Counted::pack(CallKey::new(call_id), entry, check, timestamp, hits);
            window.insert(call);
            stats.counted += 1;
            window.expire(window_span(policy));
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
        .map(call_value)
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

/// One counted call as JSON: the shape of a taint's `evidence.calls[]` and of a persisted
/// window's calls.
fn call_value(c: CountedCall) -> Value {
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
}

/// Reads back a call written by [`call_value`]; `None` if it lacks its id or timestamp.
fn call_from_value(v: &Value) -> Option<CountedCall> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let call_id = text(v, "callId").filter(|id| !id.is_empty())?;
    let timestamp = DateTime::parse_from_rfc3339(v.get("timestamp")?.as_str()?)
        .ok()?
        .with_timezone(&Utc);
    let hits: Vec<Hit> = v
        .get("hits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let resource = h.get("resource").unwrap_or(&Value::Null);
            Hit {
                principal: text(h, "principal").unwrap_or_default(),
                resource_kind: text(resource, "kind").unwrap_or_default(),
                resource_id: text(resource, "id").unwrap_or_default(),
                action: text(h, "action").unwrap_or_default(),
                effect: effect_named(h.get("effect").and_then(Value::as_str).unwrap_or_default()),
                policy: text(h, "policy").unwrap_or_default(),
                rule: text(h, "rule"),
                output: h.get("output").filter(|o| !o.is_null()).cloned(),
            }
        })
        .collect();
    let total_hits = v
        .get("matchedActions")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(hits.len());
    Some(CountedCall {
        call_id,
        timestamp,
        peer_address: text(v, "peerAddress").unwrap_or_default(),
        hits,
        total_hits,
    })
}

/// The effect of a name written by [`Effect::as_str`].
fn effect_named(name: &str) -> Effect {
    [Effect::Allow, Effect::Deny, Effect::NoMatch]
        .into_iter()
        .find(|e| e.as_str() == name)
        .unwrap_or(Effect::Unspecified)
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
