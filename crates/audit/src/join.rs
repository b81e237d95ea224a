//! Joins the access and decision halves of one Cerbos call on `callId`, in any order, with bounded memory.
//!
//! Taint evaluation does not wait for the join: a decision entry carries everything it needs
//! (peer, metadata, inputs, outputs). The join supplies what only the access half knows
//! (method, gRPC status) and accounts for halves that never found their partner.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::decode::{AccessEntry, DecisionEntry};

/// What the joiner keeps of an access entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessHalf {
    /// When the call started.
    pub timestamp: Option<DateTime<Utc>>,
    /// The gRPC method.
    pub method: String,
    /// gRPC status (0 = OK).
    pub status_code: u32,
}

/// What the joiner keeps of a decision entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionHalf {
    /// When the decision was made.
    pub timestamp: Option<DateTime<Utc>>,
    /// CheckResources (true) or PlanResources (false).
    pub check_resources: bool,
}

/// One call, complete or with a half that expired alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedCall {
    /// The call id.
    pub call_id: String,
    /// The access half, if seen.
    pub access: Option<AccessHalf>,
    /// The decision half, if seen.
    pub decision: Option<DecisionHalf>,
}

impl JoinedCall {
    /// Both halves were seen.
    pub fn is_complete(&self) -> bool {
        self.access.is_some() && self.decision.is_some()
    }
}

#[derive(Debug, Clone)]
struct Pending {
    access: Option<AccessHalf>,
    decision: Option<DecisionHalf>,
}

/// Pairs halves by `callId`. A pending half is released alone when it is older than the
/// time-to-live (measured in log time: against the newest timestamp seen) or when more than
/// `max_pending` calls are pending (oldest first).
#[derive(Debug, Clone)]
pub struct Joiner {
    pending: HashMap<String, Pending>,
    order: VecDeque<(DateTime<Utc>, String)>,
    newest: Option<DateTime<Utc>>,
    ttl: chrono::Duration,
    max_pending: usize,
}

impl Default for Joiner {
    fn default() -> Self {
        Joiner::new(chrono::Duration::seconds(60), 100_000)
    }
}

impl Joiner {
    /// A joiner releasing halves older than `ttl`, keeping at most `max_pending` calls.
    pub fn new(ttl: chrono::Duration, max_pending: usize) -> Self {
        Joiner {
            pending: HashMap::new(),
            order: VecDeque::new(),
            newest: None,
            ttl,
            max_pending: max_pending.max(1),
        }
    }

    /// How many calls wait for their other half.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds an access entry; returns the calls completed or released by it.
    pub fn push_access(&mut self, e: &AccessEntry, out: &mut Vec<JoinedCall>) {
        let half = AccessHalf {
            timestamp: e.timestamp,
            method: e.method.clone(),
            status_code: e.status_code,
        };
        self.push(&e.call_id, e.timestamp, Some(half), None, out);
    }

    /// Adds a decision entry; returns the calls completed or released by it.
    pub fn push_decision(&mut self, e: &DecisionEntry, out: &mut Vec<JoinedCall>) {
        let half = DecisionHalf {
            timestamp: e.timestamp,
            check_resources: e.check_resources.is_some(),
        };
        self.push(&e.call_id, e.timestamp, None, Some(half), out);
    }

    /// Releases every pending half (end of input).
    pub fn flush(&mut self, out: &mut Vec<JoinedCall>) {
        while let Some((_, id)) = self.order.pop_front() {
            if let Some(p) = self.pending.remove(&id) {
                out.push(release(id, p));
            }
        }
    }

    fn push(
        &mut self,
        call_id: &str,
        ts: Option<DateTime<Utc>>,
        access: Option<AccessHalf>,
        decision: Option<DecisionHalf>,
        out: &mut Vec<JoinedCall>,
    ) {
        if let Some(ts) = ts {
            self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        }
        if let Some(mut p) = self.pending.remove(call_id) {
            // A duplicate half (the same line ingested twice) replaces the earlier one.
            if access.is_some() {
                p.access = access;
            }
            if decision.is_some() {
                p.decision = decision;
            }
            if p.access.is_some() && p.decision.is_some() {
                out.push(release(call_id.to_owned(), p));
            } else {
                self.pending.insert(call_id.to_owned(), p);
            }
        } else {
            let seen_at = ts.or(self.newest).unwrap_or(DateTime::<Utc>::MIN_UTC);
            self.pending
                .insert(call_id.to_owned(), Pending { access, decision });
            self.order.push_back((seen_at, call_id.to_owned()));
        }
        self.expire(out);
    }

    fn expire(&mut self, out: &mut Vec<JoinedCall>) {
        let cutoff = self.newest.map(|n| n - self.ttl);
        while let Some((seen_at, id)) = self.order.front() {
            let live = self.pending.contains_key(id);
            let too_old = cutoff.is_some_and(|c| *seen_at < c);
            let too_many = self.pending.len() > self.max_pending;
            if live && !too_old && !too_many {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.pending.remove(&id) {
                out.push(release(id, p));
            }
        }
        // Completed calls leave stale ids in `order`; keep it from growing without bound.
        if self.order.len() > 2 * self.max_pending.max(self.pending.len()) + 1024 {
            let pending = &self.pending;
            self.order.retain(|(_, id)| pending.contains_key(id));
        }
    }
}

fn release(call_id: String, p: Pending) -> JoinedCall {
    JoinedCall {
        call_id,
        access: p.access,
        decision: p.decision,
    }
}
