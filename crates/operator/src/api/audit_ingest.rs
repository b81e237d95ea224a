//! `POST /v1/audit/cerbos`: NDJSON batches of Cerbos audit lines shipped from remote PDPs, evaluated against the stored TaintPolicies.
//!
//! Each batch is decoded, joined and evaluated by one long-lived [`audit::Ingestor`] (its
//! sliding windows span batches), attributed with the declared node addresses, screened so
//! that old evidence cannot taint a newer instance, and committed in one store transaction
//! with the source's cursor and the windows the batch changed (scope [`HTTP_WINDOW_SCOPE`],
//! shared by every `http/<token>` source; restored before the first batch after a restart).
//! Malformed lines are counted and skipped; they never fail a batch.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use model::{ApiVersion, Metadata, Node, TaintPolicy};
use pve_client::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{
    AuditCursor, CursorPosition, NewEvent, NewTaint, Op, OpResult, Resource, Store, TaintSource,
    Txn,
};

use super::ApiState;
use super::auth::{ApiToken, Role, TokenSet};
use super::error::ApiError;

/// The event kind recorded when a drafted taint is dropped because its evidence is stale or
/// was already used.
pub const EVIDENCE_IGNORED_EVENT: &str = "CerbosEvidenceIgnored";

/// The scope the HTTP ingest's sliding windows are persisted under (the daemon's file tailers
/// use [`audit::DEFAULT_WINDOW_SCOPE`]).
pub const HTTP_WINDOW_SCOPE: &str = "http";

/// Adds addresses reborn learned elsewhere (e.g. from the guest agent) to the map built from
/// the declared nodes, before each batch is attributed.
pub type AddressHook = Arc<dyn Fn(&mut audit::NodeAddresses) + Send + Sync>;

/// Who may ship batches besides operator-role API tokens, and the batch size limit.
/// `Debug` shows only counts.
#[derive(Clone)]
pub struct AuditIngestAuth {
    tokens: TokenSet,
    max_body_bytes: usize,
}

impl Default for AuditIngestAuth {
    fn default() -> Self {
        Self::new(Vec::new(), crate::config::DEFAULT_MAX_INGEST_BYTES)
    }
}

impl std::fmt::Debug for AuditIngestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIngestAuth")
            .field("tokens", &self.tokens.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl AuditIngestAuth {
    /// Dedicated ingest tokens (name, secret) and the batch size limit in bytes.
    pub fn new(tokens: Vec<(String, Secret)>, max_body_bytes: usize) -> Self {
        Self {
            tokens: TokenSet::new(
                tokens
                    .into_iter()
                    // The role is never consulted: this set is only checked by the ingest route.
                    .map(|(name, secret)| ApiToken::new(name, Role::Viewer, secret))
                    .collect(),
            ),
            max_body_bytes,
        }
    }
}

/// The HTTP audit ingestion: its credentials, the ingestor whose windows span batches, and an
/// optional source of learned addresses. Cheap to clone.
#[derive(Clone)]
pub struct AuditIngest {
    auth: AuditIngestAuth,
    ingestor: Arc<Mutex<audit::Ingestor>>,
    learned: Option<AddressHook>,
}

impl std::fmt::Debug for AuditIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIngest")
            .field("auth", &self.auth)
            .field("learned", &self.learned.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for AuditIngest {
    fn default() -> Self {
        Self::new(AuditIngestAuth::default())
    }
}

impl AuditIngest {
    /// Ingestion with these credentials and a fresh ingestor.
    pub fn new(auth: AuditIngestAuth) -> Self {
        Self {
            auth,
            ingestor: Arc::new(Mutex::new(
                audit::Ingestor::new(Vec::new(), audit::AddressBook::default())
                    .with_window_scope(HTTP_WINDOW_SCOPE),
            )),
            learned: None,
        }
    }

    /// Also attributes by the addresses `hook` adds (guest-agent reports).
    #[must_use]
    pub fn with_learned_addresses(mut self, hook: AddressHook) -> Self {
        self.learned = Some(hook);
        self
    }

    /// Evaluates one NDJSON batch from `source` against the stored TaintPolicies and commits
    /// the taints, their events and the cursor in one transaction. On a store error nothing is
    /// stored and the windows are as before, so the batch can be sent again.
    ///
    /// # Errors
    /// The store failed.
    pub fn ingest(
        &self,
        store: &dyn Store,
        source: &str,
        body: &[u8],
    ) -> Result<AuditIngestResponse, ApiError> {
        let policies = load_policies(store)?;
        let mut addresses = load_addresses(store)?;
        if let Some(hook) = &self.learned {
            hook(&mut addresses);
        }
        let mut ing = self.ingestor.lock().unwrap_or_else(|e| e.into_inner());
        ing.set_policies(policies);
        ing.addresses().replace(addresses);
        ing.load_windows(store).map_err(|e| match e {
            audit::IngestError::LoadWindows { source, .. }
            | audit::IngestError::Store { source, .. } => ApiError::from(source),
            other => ApiError::Internal(other.to_string()),
        })?;
        let saved = ing.clone();
        let mut report = audit::IngestReport::default();
        let drafts = ing.process(body, &mut report);
        match commit(store, source, body, drafts, ing.window_ops(), &report) {
            Ok(resp) => {
                ing.windows_committed();
                Ok(resp)
            }
            Err(e) => {
                *ing = saved;
                Err(e)
            }
        }
    }
}

/// The answer of `POST /v1/audit/cerbos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditIngestResponse {
    /// The source name the batch was recorded under (`http/<token name>`).
    pub source: String,
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Lines that were not audit JSON (malformed, truncated, too long): counted and skipped.
    pub rejected: u64,
    /// `decision` entries (CheckResources and PlanResources).
    pub decisions: u64,
    /// CheckResources decisions (the only ones that feed taints).
    pub check_decisions: u64,
    /// Matching decisions counted towards a policy's threshold.
    pub counted: u64,
    /// Matching decisions no node could be named for.
    pub unattributed: u64,
    /// Matching decisions already counted (same callId seen again).
    pub duplicates: u64,
    /// New taints added by this batch.
    pub taints_raised: u64,
    /// Their ids.
    pub taints: Vec<i64>,
    /// Drafted taints the node already had (same instance and key, still active).
    pub already_tainted: u64,
    /// Drafted taints dropped because their evidence predates the node's current instance or
    /// was already used by an earlier taint.
    pub ignored: Vec<IgnoredTaint>,
}

/// A drafted taint that was not added, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredTaint {
    /// The node.
    pub node: String,
    /// The taint key (`cerbos/<policy>`).
    pub key: String,
    /// Why it was dropped.
    pub reason: String,
}

/// The stored TaintPolicies, compiled for evaluation (also used by the daemon's file tailers).
///
/// # Errors
/// The store failed.
pub fn load_policies(store: &dyn Store) -> Result<Vec<audit::CompiledPolicy>, ApiError> {
    let listing = store.list(model::Kind::TaintPolicy.as_str())?;
    Ok(listing
        .items
        .iter()
        .filter_map(|r| {
            let (metadata, spec) = decode(r)?;
            Some(audit::CompiledPolicy::new(&TaintPolicy {
                api_version: ApiVersion::V1alpha1,
                metadata,
                spec,
            }))
        })
        .collect())
}

/// The declared nodes' addresses, for attributing decisions by `peer.address`.
///
/// # Errors
/// The store failed.
pub fn load_addresses(store: &dyn Store) -> Result<audit::NodeAddresses, ApiError> {
    let listing = store.list(model::Kind::Node.as_str())?;
    let nodes: Vec<Node> = listing
        .items
        .iter()
        .filter_map(|r| {
            let (metadata, spec) = decode(r)?;
            Some(Node {
                api_version: ApiVersion::V1alpha1,
                metadata,
                spec,
            })
        })
        .collect();
    Ok(audit::NodeAddresses::from_nodes(&nodes))
}

fn decode<T: serde::de::DeserializeOwned>(r: &Resource) -> Option<(Metadata, T)> {
    let name = r.key.name.parse().ok()?;
    match serde_json::from_value(r.spec.clone()) {
        Ok(spec) => Some((
            Metadata {
                name,
                labels: r.labels.clone(),
            },
            spec,
        )),
        Err(e) => {
            tracing::warn!(resource = %r.key, error = %e, "stored spec does not decode; skipped for audit ingestion");
            None
        }
    }
}

/// The greatest `callId` in the batch (Cerbos call ids are ULIDs: they sort by time).
fn greatest_call_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "callId", default)]
        call_id: String,
    }
    body.split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Id>(l.trim_ascii()).ok())
        .map(|i| i.call_id)
        .filter(|id| !id.is_empty())
        .max()
}

/// Why `draft` must not be added, if it must not: fewer fresh calls than the threshold, where
/// a fresh call is newer than the node's current instance and not the evidence of an earlier
/// taint of the node. This is what stops a replayed or re-shipped batch from tainting the
/// instance that replaced the one it was about.
fn stale(store: &dyn Store, draft: &NewTaint) -> Result<Option<String>, ApiError> {
    let calls: Vec<(&str, Option<DateTime<Utc>>)> = draft
        .evidence
        .get("calls")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let id = c.get("callId")?.as_str()?;
                    let at = c
                        .get("timestamp")
                        .and_then(Value::as_str)
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    Some((id, at))
                })
                .collect()
        })
        .unwrap_or_default();
    if calls.is_empty() {
        // No per-call detail to judge freshness by (an evidence shape this code does not
        // know): keep the taint; the breaker still bounds what it can cause.
        tracing::debug!(node = %draft.node, key = %draft.key, "Cerbos evidence has no calls; freshness not checked");
        return Ok(None);
    }
    let threshold = draft
        .evidence
        .pointer("/threshold/count")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let required = usize::try_from(threshold)
        .unwrap_or(usize::MAX)
        .clamp(1, audit::policy::MAX_EVIDENCE_CALLS);
    let since = store.current_instance(&draft.node)?.map(|i| i.created_at);
    let used: HashSet<String> = store
        .taint_history(Some(&draft.node))?
        .into_iter()
        .filter(|t| t.source == TaintSource::Cerbos)
        .filter_map(|t| t.evidence.get("callIds").and_then(Value::as_array).cloned())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let fresh = calls
        .iter()
        .filter(|(id, at)| !used.contains(*id) && since.is_none_or(|s| at.is_some_and(|t| t >= s)))
        .count();
    if fresh >= required {
        return Ok(None);
    }
    let reused = calls.iter().filter(|(id, _)| used.contains(*id)).count();
    Ok(Some(format!(
        "only {fresh} of {} matching call(s) are fresh ({reused} already evidence of an earlier \
         taint, the rest older than the current instance{}); {required} needed",
        calls.len(),
        since.map_or(String::new(), |s| format!(" created {}", s.to_rfc3339())),
    )))
}

fn commit(
    store: &dyn Store,
    source: &str,
    body: &[u8],
    drafts: Vec<NewTaint>,
    windows: Vec<Op>,
    report: &audit::IngestReport,
) -> Result<AuditIngestResponse, ApiError> {
    let mut keep = Vec::new();
    let mut ignored = Vec::new();
    let mut ignored_events = Vec::new();
    for d in drafts {
        match stale(store, &d)? {
            None => keep.push(d),
            Some(why) => {
                tracing::warn!(node = %d.node, key = %d.key, %why, "Cerbos evidence ignored");
                ignored_events.push(Op::AppendEvent(NewEvent {
                    at: d.created_at,
                    node: Some(d.node.clone()),
                    kind: EVIDENCE_IGNORED_EVENT.to_owned(),
                    message: format!("{} not re-raised: {why}", d.key),
                    data: json!({
                        "source": source,
                        "taintKey": d.key,
                        "policy": d.evidence.get("policy"),
                        "callIds": d.evidence.get("callIds"),
                    }),
                }));
                ignored.push(IgnoredTaint {
                    node: d.node,
                    key: d.key,
                    reason: why,
                });
            }
        }
    }
    let mut ops = Txn::new();
    for t in &keep {
        ops.push(Op::AddTaint(t.clone()));
    }
    for t in &keep {
        ops.push(Op::AppendEvent(NewEvent {
            at: t.created_at,
            node: Some(t.node.clone()),
            kind: audit::TAINT_EVENT_KIND.to_owned(),
            message: t.reason.clone(),
            data: json!({
                "source": source,
                "taintKey": t.key,
                "policy": t.evidence.get("policy"),
                "callIds": t.evidence.get("callIds"),
            }),
        }));
    }
    for op in ignored_events.into_iter().chain(windows) {
        ops.push(op);
    }
    let previous = store.audit_cursor(source)?.and_then(|c| match c.position {
        CursorPosition::LastId { id } => Some(id),
        CursorPosition::File { .. } => None,
    });
    if let Some(id) = greatest_call_id(body).into_iter().chain(previous).max() {
        ops.push(Op::SetAuditCursor(AuditCursor::new(
            source,
            CursorPosition::LastId { id },
        )));
    }
    let mut taints = Vec::new();
    let mut already = 0;
    if !ops.is_empty() {
        let outcome = store.commit(ops)?;
        for r in outcome.results.into_iter().take(keep.len()) {
            match r {
                OpResult::Taint {
                    taint,
                    changed: true,
                } => taints.push(taint),
                OpResult::Taint { changed: false, .. } => already += 1,
                _ => {
                    return Err(ApiError::Internal(
                        "store returned a non-taint result for a taint".to_owned(),
                    ));
                }
            }
        }
    }
    let nodes: BTreeSet<&str> = taints.iter().map(|t| t.node.as_str()).collect();
    for node in nodes {
        tracing::warn!(%node, source, "Cerbos audit batch tainted node");
    }
    Ok(AuditIngestResponse {
        source: source.to_owned(),
        lines: report.lines,
        rejected: report.malformed,
        decisions: report.check_decisions + report.plan_decisions,
        check_decisions: report.check_decisions,
        counted: report.eval.counted,
        unattributed: report.eval.unattributed,
        duplicates: report.eval.duplicates,
        taints_raised: taints.len() as u64,
        taints: taints.iter().map(|t| t.id).collect(),
        already_tainted: already,
        ignored,
    })
}

/// `POST /v1/audit/cerbos`: a dedicated ingest token or an operator-role API token; the
/// batch is recorded under source `http/<token name>`.
pub(crate) async fn cerbos(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AuditIngestResponse>, ApiError> {
    let ingest = state.audit().clone();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthenticated)?;
    let name = match ingest.auth.tokens.authenticate(token) {
        Some(c) => c.name,
        None => {
            let caller = super::authenticate(&state, &headers)?;
            if !caller.role.allows(Role::Operator) {
                return Err(ApiError::Forbidden {
                    caller: caller.name,
                });
            }
            caller.name
        }
    };
    let bytes = super::body::read(body, ingest.auth.max_body_bytes).await?;
    let source = format!("http/{name}");
    let resp = state
        .blocking(move |store| ingest.ingest(store, &source, &bytes))
        .await?;
    state.metrics().audit_lines(resp.lines, resp.rejected);
    for _ in &resp.taints {
        state.metrics().taint(TaintSource::Cerbos);
    }
    if !resp.taints.is_empty() {
        state.controller().wake();
    }
    Ok(Json(resp))
}
