//! Joins the access and decision halves of one Cerbos call on `callId`, in any order, with bounded memory.
//!
//! Taint evaluation does not wait for the join: a decision entry carries everything it needs
//! (peer, metadata, inputs, outputs). The join supplies what only the access half knows
//! (method, gRPC status) and accounts for halves that never found their partner.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::call_key::{CallKey, KeyHashState};
use crate::decode::{AccessEntry, DecisionEntry};
use crate::lite::AccessLite;

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

/// The method names Cerbos logs, kept without allocating.
const KNOWN_METHODS: [&str; 5] = [
    "/cerbos.svc.v1.CerbosService/CheckResources",
    "/cerbos.svc.v1.CerbosService/PlanResources",
    "/cerbos.svc.v1.CerbosService/ServerInfo",
    "/cerbos.svc.v1.CerbosService/CheckResourceSet",
    "",
];

#[derive(Debug, Clone)]
enum Method {
    Known(&'static str),
    Other(Box<str>),
}

impl Method {
    fn new(m: &str) -> Self {
        KNOWN_METHODS
            .iter()
            .find(|k| **k == m)
            .map_or_else(|| Method::Other(m.into()), |k| Method::Known(k))
    }

    fn as_str(&self) -> &str {
        match self {
            Method::Known(m) => m,
            Method::Other(m) => m,
        }
    }
}

/// What the joiner keeps of an access entry while its call is pending.
#[derive(Debug, Clone)]
struct StoredAccess {
    timestamp: Option<DateTime<Utc>>,
    method: Method,
    status_code: u32,
}

#[derive(Debug, Clone)]
struct Pending {
    access: Option<StoredAccess>,
    decision: Option<DecisionHalf>,
}

/// A call leaving the joiner (complete, expired or flushed).
pub(crate) struct Released {
    key: CallKey,
    pending: Pending,
}

impl Released {
    /// Whether the access half was seen.
    pub(crate) fn has_access(&self) -> bool {
        self.pending.access.is_some()
    }

    /// Whether the decision half was seen.
    pub(crate) fn has_decision(&self) -> bool {
        self.pending.decision.is_some()
    }

    /// The public form.
    fn into_joined(self) -> JoinedCall {
        JoinedCall {
            call_id: self.key.to_owned_string(),
            access: self.pending.access.map(|a| AccessHalf {
                timestamp: a.timestamp,
                method: a.method.as_str().to_owned(),
                status_code: a.status_code,
            }),
            decision: self.pending.decision,
        }
    }
}

/// Pairs halves by `callId`. A pending half is released alone when it is older than the
/// time-to-live (measured in log time: against the newest timestamp seen) or when more than
/// `max_pending` calls are pending (oldest first).
#[derive(Debug, Clone)]
pub struct Joiner {
    pending: HashMap<CallKey, Pending, KeyHashState>,
    order: VecDeque<(DateTime<Utc>, CallKey)>,
    newest: Option<DateTime<Utc>>,
    ttl: chrono::Duration,
    max_pending: usize,
    /// The front of `order` was found pending, and no call has left `pending` since: it still
    /// is, without looking it up again.
    front_live: bool,
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
            pending: HashMap::default(),
            order: VecDeque::new(),
            newest: None,
            ttl,
            max_pending: max_pending.max(1),
            front_live: false,
        }
    }

    /// How many calls wait for their other half.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds an access entry; returns the calls completed or released by it.
    pub fn push_access(&mut self, e: &AccessEntry, out: &mut Vec<JoinedCall>) {
        self.push_access_lite(&AccessLite::of(e), &mut |r| out.push(r.into_joined()));
    }

    /// Adds a decision entry; returns the calls completed or released by it.
    pub fn push_decision(&mut self, e: &DecisionEntry, out: &mut Vec<JoinedCall>) {
        self.push_decision_lite(
            &e.call_id,
            e.timestamp,
            e.check_resources.is_some(),
            &mut |r| out.push(r.into_joined()),
        );
    }

    /// Releases every pending half (end of input).
    pub fn flush(&mut self, out: &mut Vec<JoinedCall>) {
        self.front_live = false;
        while let Some((_, key)) = self.order.pop_front() {
            if let Some(pending) = self.pending.remove(key.as_bytes()) {
                out.push(Released { key, pending }.into_joined());
            }
        }
    }

    /// [`Joiner::push_access`] of the ingest fast path.
    pub(crate) fn push_access_lite(&mut self, e: &AccessLite<'_>, emit: &mut impl FnMut(Released)) {
        let half = StoredAccess {
            timestamp: e.timestamp,
            method: Method::new(e.method.as_str()),
            status_code: e.status_code,
        };
        self.push(e.call_id.as_str(), e.timestamp, Some(half), None, emit);
    }

    /// [`Joiner::push_decision`] of the ingest fast path.
    pub(crate) fn push_decision_lite(
        &mut self,
        call_id: &str,
        timestamp: Option<DateTime<Utc>>,
        check_resources: bool,
        emit: &mut impl FnMut(Released),
    ) {
        let half = DecisionHalf {
            timestamp,
            check_resources,
        };
        self.push(call_id, timestamp, None, Some(half), emit);
    }

    fn push(
        &mut self,
        call_id: &str,
        ts: Option<DateTime<Utc>>,
        access: Option<StoredAccess>,
        decision: Option<DecisionHalf>,
        emit: &mut impl FnMut(Released),
    ) {
        if let Some(ts) = ts {
            self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        }
        // One hash and one probe for both the lookup and the insertion.
        match self.pending.entry(CallKey::new(call_id)) {
            Entry::Occupied(mut o) => {
                let p = o.get_mut();
                // A duplicate half (the same line ingested twice) replaces the earlier one.
                if access.is_some() {
                    p.access = access;
                }
                if decision.is_some() {
                    p.decision = decision;
                }
                if p.access.is_some() && p.decision.is_some() {
                    let (key, pending) = o.remove_entry();
                    self.front_live = false;
                    emit(Released { key, pending });
                }
            }
            Entry::Vacant(v) => {
                let seen_at = ts.or(self.newest).unwrap_or(DateTime::<Utc>::MIN_UTC);
                self.order.push_back((seen_at, v.key().clone()));
                v.insert(Pending { access, decision });
            }
        }
        self.expire(emit);
    }

    fn expire(&mut self, emit: &mut impl FnMut(Released)) {
        let cutoff = self.newest.map(|n| n - self.ttl);
        while let Some((seen_at, key)) = self.order.front() {
            let too_old = cutoff.is_some_and(|c| *seen_at < c);
            let too_many = self.pending.len() > self.max_pending;
            if !too_old && !too_many {
                if !self.front_live {
                    self.front_live = self.pending.contains_key(key.as_bytes());
                }
                if self.front_live {
                    break;
                }
            }
            self.front_live = false;
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(pending) = self.pending.remove(key.as_bytes()) {
                emit(Released { key, pending });
            }
        }
        // Completed calls leave stale ids in `order`; keep it from growing without bound.
        if self.order.len() > 2 * self.max_pending.max(self.pending.len()) + 1024 {
            let pending = &self.pending;
            self.order
                .retain(|(_, key)| pending.contains_key(key.as_bytes()));
            self.front_live = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{JoinedCall, Joiner};
    use crate::decode::{Entry, decode_line};

    fn push(j: &mut Joiner, kind: &str, id: &str, second: u32, out: &mut Vec<JoinedCall>) {
        let line = format!(
            r#"{{"log.logger":"cerbos.audit","log.kind":"{kind}","callId":"{id}","timestamp":"2026-11-21T19:00:{second:02}Z","checkResources":{{}}}}"#
        );
        match decode_line(line.as_bytes()).expect("decodes") {
            Entry::Access(a) => j.push_access(&a, out),
            Entry::Decision(d) => j.push_decision(&d, out),
            Entry::Other => panic!("not an entry"),
        }
    }

    /// The joiner remembers that the oldest pending call is still pending; completing that
    /// call (or any other) must not leave it believed pending.
    #[test]
    fn completing_the_oldest_call_moves_expiry_to_the_next_one() {
        let mut j = Joiner::new(chrono::Duration::seconds(10), 100);
        let mut out = Vec::new();
        push(&mut j, "decision", "A", 0, &mut out);
        push(&mut j, "decision", "B", 1, &mut out);
        push(&mut j, "decision", "C", 2, &mut out);
        push(&mut j, "access", "A", 3, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].call_id == "A" && out[0].is_complete());
        push(&mut j, "access", "C", 4, &mut out);
        assert!(out[1].call_id == "C" && out[1].is_complete());
        assert_eq!(j.pending(), 1);
        // B (second 1) is now the oldest: 10 s later it leaves alone.
        push(&mut j, "decision", "D", 11, &mut out);
        assert_eq!(out.len(), 2, "B is exactly 10 s old: kept");
        push(&mut j, "decision", "E", 12, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out[2].call_id == "B" && !out[2].is_complete());
        // A call id seen again after it completed is a new pending call.
        push(&mut j, "access", "A", 12, &mut out);
        assert_eq!(j.pending(), 3);
        j.flush(&mut out);
        let flushed: Vec<&str> = out[3..].iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(flushed, ["D", "E", "A"]);
        assert_eq!(j.pending(), 0);
    }

    #[test]
    fn the_count_limit_releases_the_oldest_even_when_it_is_known_pending() {
        let mut j = Joiner::new(chrono::Duration::seconds(1000), 2);
        let mut out = Vec::new();
        for (n, id) in ["A", "B", "C", "D"].into_iter().enumerate() {
            push(
                &mut j,
                "decision",
                id,
                u32::try_from(n).unwrap_or(0),
                &mut out,
            );
        }
        let released: Vec<&str> = out.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(released, ["A", "B"]);
        assert_eq!(j.pending(), 2);
    }
}
