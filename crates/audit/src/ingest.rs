//! Turns a batch of audit lines into taints and commits them with the source's new cursor in ONE store transaction.

use std::collections::BTreeMap;

use serde_json::json;
use store::{
    AuditCursor, AuditWindow, CursorPosition, NewEvent, NewTaint, Op, OpResult, Store, Taint, Txn,
};

use crate::attribution::{AddressBook, NodeAddresses};
use crate::decode::{DecodeError, Entry, decode_line};
use crate::join::{Joiner, Released};
use crate::lite::{AccessLite, DecisionLite, LiteEntry, decode_lite};
use crate::policy::{CompiledPolicy, EvalStats, Evaluator};

/// The event kind appended next to every taint a policy raises.
pub const TAINT_EVENT_KIND: &str = "CerbosTaintRaised";

/// The window scope of an [`Ingestor`] unless [`Ingestor::with_window_scope`] names another.
pub const DEFAULT_WINDOW_SCOPE: &str = "default";

/// Counts and results of one ingested batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Lines seen (including blank and malformed ones).
    pub lines: u64,
    /// `access` entries.
    pub access: u64,
    /// `decision` entries with `checkResources`.
    pub check_decisions: u64,
    /// `decision` entries with `planResources` (never feed taints).
    pub plan_decisions: u64,
    /// Valid JSON that is not an audit entry (other loggers, blank lines).
    pub other: u64,
    /// Lines that are not valid audit JSON (garbage, truncated, too long): skipped.
    pub malformed: u64,
    /// Calls whose two halves were joined.
    pub joined: u64,
    /// Access halves released without a decision (ServerInfo, rejected calls, lost halves).
    pub access_only: u64,
    /// Decision halves released without an access entry.
    pub decision_only: u64,
    /// Access entries with a non-zero gRPC status.
    pub failed_calls: u64,
    /// Policy evaluation counters.
    pub eval: EvalStats,
    /// Taints this batch added (new rows in the store).
    pub taints: Vec<Taint>,
    /// Drafted taints the store already had active (same node, instance and key).
    pub already_tainted: u64,
    /// The cursor committed with the batch, if any.
    pub cursor: Option<CursorPosition>,
}

/// Calls released by the joiner during one batch, by the halves they had.
#[derive(Debug, Default)]
struct JoinCounts {
    joined: u64,
    access_only: u64,
    decision_only: u64,
}

impl JoinCounts {
    fn count(&mut self, r: &Released) {
        match (r.has_access(), r.has_decision()) {
            (true, true) => self.joined += 1,
            (true, false) => self.access_only += 1,
            (false, true) => self.decision_only += 1,
            (false, false) => {}
        }
    }
}

/// Why a batch could not be committed. Nothing of the batch is stored then, and the
/// ingestor's counters are as they were before it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store refused or failed the transaction.
    #[error("committing audit batch of source {source_name:?} failed")]
    Store {
        /// The audit source.
        source_name: String,
        /// The store's error.
        #[source]
        source: store::StoreError,
    },
    /// The persisted windows could not be read.
    #[error("loading the audit windows of scope {scope:?} failed")]
    LoadWindows {
        /// The ingestor's window scope.
        scope: String,
        /// The store's error.
        #[source]
        source: store::StoreError,
    },
    /// The store answered with results of the wrong shape.
    #[error("store returned an unexpected result for audit source {source_name:?}")]
    UnexpectedResult {
        /// The audit source.
        source_name: String,
    },
}

/// Decodes, joins and evaluates audit lines, keeping the join and window state between
/// batches. One ingestor per audit source (or shared, behind a lock).
///
/// The sliding windows are durable: [`Ingestor::commit_batch`] loads the windows persisted
/// under the ingestor's *window scope* before its first batch, and commits the windows each
/// batch changed in the same transaction as that batch's taints and cursor. Sources that share
/// an ingestor share its windows (and scope); each keeps its own cursor. Two ingestors on one
/// store need different scopes. The join state is not persisted (it is only accounting).
#[derive(Debug, Clone)]
pub struct Ingestor {
    evaluator: Evaluator,
    joiner: Joiner,
    addresses: AddressBook,
    scope: String,
    windows_loaded: bool,
}

impl Ingestor {
    /// An ingestor evaluating `policies`, attributing with `addresses`.
    pub fn new(policies: Vec<CompiledPolicy>, addresses: AddressBook) -> Self {
        Ingestor {
            evaluator: Evaluator::new(policies),
            joiner: Joiner::default(),
            addresses,
            scope: DEFAULT_WINDOW_SCOPE.to_owned(),
            windows_loaded: false,
        }
    }

    /// Persists and restores the windows under `scope` instead of [`DEFAULT_WINDOW_SCOPE`].
    #[must_use]
    pub fn with_window_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The scope the windows are persisted under.
    pub fn window_scope(&self) -> &str {
        &self.scope
    }

    /// Restores the windows persisted under this ingestor's scope, once: later calls do
    /// nothing. [`Ingestor::commit_batch`] calls it before its first batch; callers that
    /// commit with [`Ingestor::window_ops`] themselves call it before their first
    /// [`Ingestor::process`]. Returns how many calls were restored.
    ///
    /// # Errors
    /// The store failed; nothing was restored and the next call tries again.
    pub fn load_windows(&mut self, store: &dyn Store) -> Result<usize, IngestError> {
        if self.windows_loaded {
            return Ok(0);
        }
        let rows = store
            .audit_windows(&self.scope)
            .map_err(|source| IngestError::LoadWindows {
                scope: self.scope.clone(),
                source,
            })?;
        let windows = rows.len();
        let restored = self.evaluator.restore_windows(rows);
        self.windows_loaded = true;
        if windows > 0 {
            tracing::info!(scope = %self.scope, windows, calls = restored, "restored Cerbos policy windows");
        }
        Ok(restored)
    }

    /// The store writes of the windows changed since the last committed batch: commit them
    /// in the transaction that moves the cursor past the lines that changed them, then call
    /// [`Ingestor::windows_committed`].
    pub fn window_ops(&self) -> Vec<Op> {
        self.evaluator
            .window_writes(&self.scope)
            .into_iter()
            .map(Op::SetAuditWindow)
            .collect()
    }

    /// Records that the writes of [`Ingestor::window_ops`] were committed.
    pub fn windows_committed(&mut self) {
        self.evaluator.windows_written();
    }

    /// Replaces the policies (windows of unchanged policies survive).
    pub fn set_policies(&mut self, policies: Vec<CompiledPolicy>) {
        self.evaluator.set_policies(policies);
    }

    /// The evaluator (windows, policies).
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// The address book used for attribution.
    pub fn addresses(&self) -> &AddressBook {
        &self.addresses
    }

    /// Processes newline-separated lines without touching any store; returns the drafted
    /// taints. A trailing line without a newline is processed too (callers that tail files
    /// only pass complete lines).
    pub fn process(&mut self, data: &[u8], report: &mut IngestReport) -> Vec<NewTaint> {
        let mut taints = Vec::new();
        let mut joins = JoinCounts::default();
        let addresses = self.addresses.clone();
        addresses.read(|map| {
            if let Ok(text) = std::str::from_utf8(data) {
                // Every Cerbos line is UTF-8: one check for the batch, then borrowed decoding.
                // Lines are found with `memchr` (SIMD), several times faster than `split`.
                let mut start = 0;
                let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
                for end in ends {
                    let line = text.get(start..end).unwrap_or_default();
                    start = end + 1;
                    if line.is_empty() {
                        continue;
                    }
                    report.lines += 1;
                    let decoded = decode_lite(line).map(|e| {
                        self.take(e, map, report, &mut taints, &mut joins);
                    });
                    if let Err(err) = decoded {
                        report.malformed += 1;
                        log_malformed(&err);
                    }
                }
                return;
            }
            for line in data.split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                report.lines += 1;
                // The lines that are UTF-8 take the borrowed path; the others the owned
                // decoder, whose view is evaluated the same way.
                let decoded = match std::str::from_utf8(line) {
                    Ok(text) => decode_lite(text).map(|e| {
                        self.take(e, map, report, &mut taints, &mut joins);
                    }),
                    Err(_) => decode_line(line).map(|e| {
                        let lite = match &e {
                            Entry::Access(a) => LiteEntry::Access(AccessLite::of(a)),
                            Entry::Decision(d) => LiteEntry::Decision(DecisionLite::of(d)),
                            Entry::Other => LiteEntry::Other,
                        };
                        self.take(lite, map, report, &mut taints, &mut joins);
                    }),
                };
                if let Err(err) = decoded {
                    report.malformed += 1;
                    log_malformed(&err);
                }
            }
        });
        report.joined += joins.joined;
        report.access_only += joins.access_only;
        report.decision_only += joins.decision_only;
        taints
    }

    /// Counts, joins and evaluates one decoded line.
    fn take(
        &mut self,
        entry: LiteEntry<'_>,
        map: &NodeAddresses,
        report: &mut IngestReport,
        taints: &mut Vec<NewTaint>,
        joins: &mut JoinCounts,
    ) {
        let mut released = |r: Released| joins.count(&r);
        match entry {
            LiteEntry::Access(e) => {
                report.access += 1;
                if e.status_code != 0 {
                    report.failed_calls += 1;
                }
                self.joiner.push_access_lite(&e, &mut released);
            }
            LiteEntry::Decision(e) => {
                if e.check_resources.is_some() {
                    report.check_decisions += 1;
                    self.evaluator
                        .evaluate_lite(&e, map, &mut report.eval, taints);
                } else {
                    report.plan_decisions += 1;
                }
                self.joiner.push_decision_lite(
                    e.call_id.as_str(),
                    e.timestamp,
                    e.check_resources.is_some(),
                    &mut released,
                );
            }
            LiteEntry::Other => report.other += 1,
        }
    }

    /// Processes a batch read from `source` and commits its taints, one event per taint and
    /// the new cursor in one transaction. On error nothing is stored and the ingestor's state
    /// is rolled back, so the same batch can be retried.
    pub fn commit_batch(
        &mut self,
        store: &dyn Store,
        source: &str,
        data: &[u8],
        cursor: Option<CursorPosition>,
    ) -> Result<IngestReport, IngestError> {
        self.load_windows(store)?;
        let saved = (self.evaluator.clone(), self.joiner.clone());
        let mut report = IngestReport::default();
        let drafts = self.process(data, &mut report);
        let windows = self.evaluator.window_writes(&self.scope);
        match commit(store, source, drafts, windows, cursor, &mut report) {
            Ok(()) => {
                self.evaluator.windows_written();
                Ok(report)
            }
            Err(e) => {
                (self.evaluator, self.joiner) = saved;
                Err(e)
            }
        }
    }

    /// The HTTP NDJSON ingest (`POST /v1/audit/cerbos`): lines shipped from a remote PDP.
    /// The cursor of `source` records the greatest callId ingested (ULIDs sort by time);
    /// re-sent lines whose call is still in a window are not counted twice, and an identical
    /// active taint is never added twice.
    pub fn ingest_ndjson(
        &mut self,
        store: &dyn Store,
        source: &str,
        body: &[u8],
    ) -> Result<IngestReport, IngestError> {
        let last = greatest_call_id(body);
        let previous = store
            .audit_cursor(source)
            .map_err(|e| IngestError::Store {
                source_name: source.to_owned(),
                source: e,
            })?
            .and_then(|c| match c.position {
                CursorPosition::LastId { id } => Some(id),
                CursorPosition::File { .. } => None,
            });
        let id = match (last, previous) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let cursor = id.map(|id| CursorPosition::LastId { id });
        self.commit_batch(store, source, body, cursor)
    }
}

fn log_malformed(err: &DecodeError) {
    tracing::debug!(error = %err, "skipping malformed Cerbos audit line");
}

fn greatest_call_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
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

fn commit(
    store: &dyn Store,
    source: &str,
    drafts: Vec<NewTaint>,
    windows: Vec<AuditWindow>,
    cursor: Option<CursorPosition>,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let mut txn = Txn::new();
    for t in &drafts {
        txn.push(Op::AddTaint(t.clone()));
    }
    for t in &drafts {
        txn.push(Op::AppendEvent(NewEvent {
            at: t.created_at,
            node: Some(t.node.clone()),
            kind: TAINT_EVENT_KIND.to_owned(),
            message: t.reason.clone(),
            data: json!({
                "source": source,
                "taintKey": t.key,
                "policy": t.evidence.get("policy"),
                "callIds": t.evidence.get("callIds"),
            }),
        }));
    }
    for w in windows {
        txn.push(Op::SetAuditWindow(w));
    }
    if let Some(c) = &cursor {
        txn.push(Op::SetAuditCursor(AuditCursor::new(source, c.clone())));
    }
    report.cursor = cursor;
    if txn.is_empty() {
        return Ok(());
    }
    let outcome = store.commit(txn).map_err(|e| IngestError::Store {
        source_name: source.to_owned(),
        source: e,
    })?;
    let mut by_node: BTreeMap<String, u64> = BTreeMap::new();
    for r in outcome.results.into_iter().take(drafts.len()) {
        match r {
            OpResult::Taint { taint, changed } => {
                if changed {
                    *by_node.entry(taint.node.clone()).or_default() += 1;
                    report.taints.push(taint);
                } else {
                    report.already_tainted += 1;
                }
            }
            _ => {
                return Err(IngestError::UnexpectedResult {
                    source_name: source.to_owned(),
                });
            }
        }
    }
    for (node, n) in by_node {
        tracing::warn!(%node, taints = n, source, "Cerbos audit log tainted node");
    }
    Ok(())
}
