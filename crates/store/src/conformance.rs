//! The behaviour suite every [`Store`] backend must pass (enable the `conformance` feature).
//!
//! Each check takes a fresh, empty store and the [`ManualClock`] it stamps records with, and
//! panics (like `assert!`) when the backend misbehaves. [`conformance_tests!`](crate::conformance_tests)
//! turns every check into a `#[test]`:
//!
//! ```no_run
//! use std::sync::Arc;
//! use store::conformance::{Fixture, t0};
//! use store::{ManualClock, SqliteOptions, SqliteStore};
//!
//! fn fresh() -> Fixture {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let clock = Arc::new(ManualClock::new(t0()));
//!     let options = SqliteOptions { clock: clock.clone(), ..SqliteOptions::default() };
//!     let store = SqliteStore::open_with(dir.path().join("db"), options).expect("open");
//!     Fixture { store: Box::new(store), clock, guard: Box::new(dir) }
//! }
//!
//! store::conformance_tests!(fresh);
//! # fn main() {}
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::{
    AuditCursor, AuditWindow, CursorPosition, EventQuery, EventRetention, Expect, InstanceRecord,
    JournalState, JournalUpdate, LeaseState, ManualClock, NewEvent, NewJournalEntry, NewTaint, Op,
    OpResult, ResourceKey, ResourceWrite, Severity, Store, StoreError, TaintSource, Txn,
};

/// A fresh store under test, its clock, and whatever must live as long as it (a temp dir).
pub struct Fixture {
    /// The empty store.
    pub store: Box<dyn Store>,
    /// The clock the store stamps its own timestamps with, starting at [`t0`].
    pub clock: Arc<ManualClock>,
    /// Dropped after the store.
    pub guard: Box<dyn Any>,
}

/// The time every fixture clock starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date")
}

fn node_key(name: &str) -> ResourceKey {
    ResourceKey::new("Node", name)
}

fn node_write(name: &str, spec: serde_json::Value) -> ResourceWrite {
    ResourceWrite::new(node_key(name), spec)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn taint(node: &str, key: &str) -> NewTaint {
    NewTaint {
        node: node.to_owned(),
        instance_id: None,
        key: key.to_owned(),
        source: TaintSource::Cerbos,
        severity: Severity::Critical,
        reason: "worker identity denied on another tenant's data".to_owned(),
        evidence: json!({"callIds": ["01HX1", "01HX2"], "rule": "cross-tenant-read"}),
        created_at: t0(),
        created_by: "policy/cross-tenant".to_owned(),
        expires_at: None,
    }
}

fn instance(node: &str, id: &str, vmid: u32) -> InstanceRecord {
    InstanceRecord {
        instance_id: id.to_owned(),
        node: node.to_owned(),
        vmid,
        pve_node: "pve1".to_owned(),
        name: node.to_owned(),
        smbios_uuid: format!("uuid-{id}"),
        spec_hash: "sha256:spec".to_owned(),
        gold_digest: "sha256:gold".to_owned(),
        created_at: t0(),
        current: true,
    }
}

fn event(node: &str, kind: &str, minute: i64) -> NewEvent {
    NewEvent {
        at: t0() + chrono::Duration::minutes(minute),
        node: Some(node.to_owned()),
        kind: kind.to_owned(),
        message: format!("{kind} on {node}"),
        data: json!({"minute": minute}),
    }
}

fn intent(node: &str, action: &str, vmid: u32) -> NewJournalEntry {
    NewJournalEntry {
        node: node.to_owned(),
        action: action.to_owned(),
        vmid: Some(vmid),
        pve_node: Some("pve1".to_owned()),
        detail: json!({"template": 9000}),
    }
}

fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

/// A created resource starts at generation 1 with a uid, null status and the store clock's time.
pub fn created_resource_starts_at_generation_one(s: &dyn Store, clock: &ManualClock) {
    clock.set(t0());
    let out = ok(
        s.apply(vec![
            node_write("worker-1", json!({"cores": 2})).with_labels(labels(&[("role", "worker")])),
        ]),
        "apply",
    );
    let r = &out[0];
    assert_eq!(r.generation, 1);
    assert!(!r.uid.is_empty());
    assert_eq!(r.status, serde_json::Value::Null);
    assert_eq!(r.created_at, t0());
    let stored = ok(s.get(&node_key("worker-1")), "get").expect("resource exists");
    assert_eq!(&stored, r);
    assert_eq!(stored.labels, labels(&[("role", "worker")]));
}

/// A spec change bumps the generation and the resource version.
pub fn spec_change_bumps_generation_and_version(s: &dyn Store, clock: &ManualClock) {
    let first = ok(s.apply(vec![node_write("w", json!({"cores": 2}))]), "apply")[0].clone();
    clock.advance(chrono::Duration::seconds(5));
    let second = ok(s.apply(vec![node_write("w", json!({"cores": 4}))]), "apply")[0].clone();
    assert_eq!(second.generation, 2);
    assert!(second.resource_version > first.resource_version);
    assert_eq!(second.uid, first.uid);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.updated_at, t0() + chrono::Duration::seconds(5));
}

/// A label-only change bumps the resource version but not the generation.
pub fn label_change_bumps_version_not_generation(s: &dyn Store, _clock: &ManualClock) {
    let first = ok(s.apply(vec![node_write("w", json!({"cores": 2}))]), "apply")[0].clone();
    let second = ok(
        s.apply(vec![
            node_write("w", json!({"cores": 2})).with_labels(labels(&[("app", "jsonrag")])),
        ]),
        "apply",
    )[0]
    .clone();
    assert_eq!(second.generation, 1);
    assert!(second.resource_version > first.resource_version);
}

/// Applying exactly what is stored changes nothing: same version, same revision, no wake-up.
pub fn identical_apply_changes_nothing(s: &dyn Store, _clock: &ManualClock) {
    let first = ok(s.apply(vec![node_write("w", json!({"cores": 2}))]), "apply")[0].clone();
    let rev = ok(s.revision(), "revision");
    let mut rx = s.subscribe();
    rx.borrow_and_update();
    let out = ok(
        s.commit(Txn::new().with(Op::PutResource(node_write("w", json!({"cores": 2}))))),
        "commit",
    );
    assert!(!out.changed);
    assert_eq!(out.revision, rev);
    assert_eq!(ok(s.revision(), "revision"), rev);
    assert!(!rx.has_changed().expect("store alive"));
    let stored = ok(s.get(&node_key("w")), "get").expect("exists");
    assert_eq!(stored.resource_version, first.resource_version);
}

/// A status write bumps the resource version, never the generation, and keeps the spec.
pub fn status_write_bumps_version_not_generation(s: &dyn Store, _clock: &ManualClock) {
    let r = ok(s.apply(vec![node_write("w", json!({"cores": 2}))]), "apply")[0].clone();
    let after = ok(
        s.put_status(
            &r.key,
            json!({"phase": "Ready", "observedGeneration": 1}),
            Expect::Version(r.resource_version),
        ),
        "put_status",
    );
    assert_eq!(after.generation, 1);
    assert!(after.resource_version > r.resource_version);
    assert_eq!(after.spec, json!({"cores": 2}));
    let stored = ok(s.get(&r.key), "get").expect("exists");
    assert_eq!(stored.status["phase"], "Ready");
}

/// A write against a stale version is rejected with a conflict naming both versions.
pub fn stale_version_write_is_rejected_with_conflict(s: &dyn Store, _clock: &ManualClock) {
    let r = ok(s.apply(vec![node_write("w", json!({"cores": 2}))]), "apply")[0].clone();
    let newer = ok(s.apply(vec![node_write("w", json!({"cores": 3}))]), "apply")[0].clone();
    let err = s
        .apply(vec![
            node_write("w", json!({"cores": 8})).expecting(Expect::Version(r.resource_version)),
        ])
        .expect_err("stale write must fail");
    match &err {
        StoreError::Conflict {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, &r.key);
            assert_eq!(*expected, Expect::Version(r.resource_version));
            assert_eq!(*actual, Some(newer.resource_version));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert!(err.to_string().contains("Node/w"), "{err}");
    let stale_status = s.put_status(&r.key, json!({}), Expect::Version(r.resource_version));
    assert!(stale_status.is_err_and(|e| e.is_conflict()));
    assert_eq!(
        ok(s.get(&r.key), "get").expect("exists").spec,
        json!({"cores": 3})
    );
}

/// A create-only write fails when the resource exists, and a versioned write when it does not.
pub fn create_only_write_conflicts_when_resource_exists(s: &dyn Store, _clock: &ManualClock) {
    ok(
        s.apply(vec![node_write("w", json!({})).expecting(Expect::Absent)]),
        "create",
    );
    let err = s
        .apply(vec![node_write("w", json!({})).expecting(Expect::Absent)])
        .expect_err("second create must fail");
    assert!(err.is_conflict(), "{err}");
    let err = s
        .apply(vec![
            node_write("other", json!({})).expecting(Expect::Version(1)),
        ])
        .expect_err("versioned write to a missing resource must fail");
    assert!(
        matches!(err, StoreError::Conflict { actual: None, .. }),
        "{err}"
    );
}

/// Applying a set of resources is all or nothing: one conflict leaves every resource untouched.
pub fn failed_apply_leaves_every_resource_untouched(s: &dyn Store, _clock: &ManualClock) {
    ok(s.apply(vec![node_write("a", json!({"v": 1}))]), "apply");
    let rev = ok(s.revision(), "revision");
    let err = s
        .apply(vec![
            node_write("a", json!({"v": 2})),
            node_write("b", json!({"v": 2})),
            node_write("c", json!({"v": 2})).expecting(Expect::Version(999)),
        ])
        .expect_err("conflict in the third write");
    assert!(err.is_conflict());
    assert_eq!(
        ok(s.get(&node_key("a")), "get").expect("a").spec,
        json!({"v": 1})
    );
    assert!(ok(s.get(&node_key("b")), "get").is_none());
    assert_eq!(ok(s.revision(), "revision"), rev);
}

/// The revision grows by one per committed changing transaction, whatever it contains.
pub fn revision_grows_by_one_per_transaction(s: &dyn Store, _clock: &ManualClock) {
    let start = ok(s.revision(), "revision");
    let out = ok(
        s.apply(vec![node_write("a", json!({})), node_write("b", json!({}))]),
        "apply",
    );
    assert_eq!(out[0].resource_version, start + 1);
    assert_eq!(out[1].resource_version, start + 1);
    ok(s.append_event(event("a", "Noted", 0)), "event");
    assert_eq!(ok(s.revision(), "revision"), start + 2);
    let listing = ok(s.list("Node"), "list");
    assert_eq!(listing.revision, start + 2);
}

/// `list` returns only the kind asked for, ordered by name.
pub fn list_returns_one_kind_ordered_by_name(s: &dyn Store, _clock: &ManualClock) {
    ok(
        s.apply(vec![
            node_write("worker-2", json!({})),
            node_write("ingress-1", json!({})),
            ResourceWrite::new(ResourceKey::new("GoldImage", "jsonrag-worker"), json!({})),
            node_write("worker-1", json!({})),
        ]),
        "apply",
    );
    let names: Vec<String> = ok(s.list("Node"), "list")
        .items
        .into_iter()
        .map(|r| r.key.name)
        .collect();
    assert_eq!(names, ["ingress-1", "worker-1", "worker-2"]);
    assert_eq!(ok(s.list("GoldImage"), "list").items.len(), 1);
    assert!(ok(s.list("DisruptionBudget"), "list").items.is_empty());
}

/// Deleting removes the resource; creating it again gives a new uid and generation 1.
pub fn deleted_resource_comes_back_with_new_uid(s: &dyn Store, _clock: &ManualClock) {
    let r = ok(s.apply(vec![node_write("w", json!({"v": 1}))]), "apply")[0].clone();
    ok(s.apply(vec![node_write("w", json!({"v": 2}))]), "apply");
    let gone = ok(s.delete(&r.key, Expect::Any), "delete");
    assert_eq!(gone.spec, json!({"v": 2}));
    assert!(ok(s.get(&r.key), "get").is_none());
    let again = ok(s.apply(vec![node_write("w", json!({"v": 1}))]), "apply")[0].clone();
    assert_ne!(again.uid, r.uid);
    assert_eq!(again.generation, 1);
}

/// Deleting or writing the status of a missing resource is a not-found error.
pub fn missing_resource_is_not_found(s: &dyn Store, _clock: &ManualClock) {
    let key = node_key("ghost");
    assert!(s.delete(&key, Expect::Any).is_err_and(|e| e.is_not_found()));
    assert!(
        s.put_status(&key, json!({}), Expect::Any)
            .is_err_and(|e| e.is_not_found())
    );
}

/// Empty kinds, names and taint keys are refused.
pub fn empty_identifiers_are_refused(s: &dyn Store, _clock: &ManualClock) {
    let err = s
        .apply(vec![node_write("", json!({}))])
        .expect_err("empty name");
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    let mut t = taint("w", "");
    t.key = " ".to_owned();
    assert!(matches!(
        s.add_taint(t),
        Err(StoreError::InvalidInput { .. })
    ));
}

/// A taint without an explicit instance marks the node's current instance.
pub fn taint_marks_current_instance(s: &dyn Store, _clock: &ManualClock) {
    ok(
        s.commit(Txn::new().with(Op::PutInstance(instance("worker-1", "inst-a", 4101)))),
        "put instance",
    );
    let t = ok(s.add_taint(taint("worker-1", "compromised")), "add taint");
    assert_eq!(t.instance_id.as_deref(), Some("inst-a"));
    assert_eq!(t.source, TaintSource::Cerbos);
    assert_eq!(t.evidence["callIds"][1], "01HX2");
    let without = ok(s.add_taint(taint("worker-2", "compromised")), "add taint");
    assert_eq!(without.instance_id, None);
    let active = ok(s.active_taints(Some("worker-1"), t0()), "active");
    assert_eq!(active, vec![t]);
}

/// A cleared taint stops counting but stays in history with who cleared it and when.
pub fn cleared_taint_stays_in_history(s: &dyn Store, clock: &ManualClock) {
    let t = ok(s.add_taint(taint("w", "compromised")), "add");
    clock.set(t0() + chrono::Duration::minutes(3));
    let cleared = ok(s.clear_taint(t.id, "alice"), "clear");
    assert_eq!(cleared.cleared_by.as_deref(), Some("alice"));
    assert_eq!(
        cleared.cleared_at,
        Some(t0() + chrono::Duration::minutes(3))
    );
    assert!(ok(s.active_taints(None, t0()), "active").is_empty());
    let history = ok(s.taint_history(Some("w")), "history");
    assert_eq!(history, vec![cleared.clone()]);
    let again = ok(s.clear_taint(t.id, "bob"), "clear again");
    assert_eq!(again.cleared_by.as_deref(), Some("alice"));
    assert!(
        s.clear_taint(9999, "alice")
            .is_err_and(|e| e.is_not_found())
    );
}

/// An expired taint is not active but is kept in history.
pub fn expired_taint_is_inactive_but_kept(s: &dyn Store, _clock: &ManualClock) {
    let mut t = taint("w", "flapping");
    t.expires_at = Some(t0() + chrono::Duration::hours(1));
    t.source = TaintSource::Health;
    t.severity = Severity::Warning;
    let stored = ok(s.add_taint(t), "add");
    assert_eq!(ok(s.active_taints(None, t0()), "active").len(), 1);
    let later = t0() + chrono::Duration::hours(2);
    assert!(ok(s.active_taints(None, later), "active").is_empty());
    assert!(!stored.is_active(later));
    assert_eq!(ok(s.taint_history(None), "history").len(), 1);
}

/// Adding a taint identical in node, instance and key to an active one does not duplicate it.
pub fn duplicate_active_taint_is_not_added_twice(s: &dyn Store, _clock: &ManualClock) {
    let first = ok(s.add_taint(taint("w", "compromised")), "add");
    let out = ok(
        s.commit(Txn::new().with(Op::AddTaint(taint("w", "compromised")))),
        "add again",
    );
    assert!(!out.changed);
    assert!(
        matches!(&out.results[0], OpResult::Taint { taint, changed: false } if taint.id == first.id)
    );
    ok(s.clear_taint(first.id, "alice"), "clear");
    let second = ok(s.add_taint(taint("w", "compromised")), "add after clear");
    assert_ne!(second.id, first.id);
    assert_eq!(ok(s.taint_history(Some("w")), "history").len(), 2);
}

/// Events are returned in append order and filter by node, kind and time range.
pub fn events_filter_by_node_kind_and_time(s: &dyn Store, _clock: &ManualClock) {
    let txn: Txn = [
        event("w1", "CloneStarted", 0),
        event("w2", "CloneStarted", 1),
        event("w1", "Ready", 5),
        event("w1", "Destroyed", 10),
    ]
    .into_iter()
    .map(Op::AppendEvent)
    .collect();
    ok(s.commit(txn), "append");
    let all = ok(s.events(&EventQuery::default()), "all");
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let w1 = ok(
        s.events(&EventQuery {
            node: Some("w1".into()),
            ..Default::default()
        }),
        "by node",
    );
    assert_eq!(w1.len(), 3);
    let clones = ok(
        s.events(&EventQuery {
            kind: Some("CloneStarted".into()),
            ..Default::default()
        }),
        "by kind",
    );
    assert_eq!(clones.len(), 2);
    let window = ok(
        s.events(&EventQuery {
            since: Some(t0() + chrono::Duration::minutes(1)),
            until: Some(t0() + chrono::Duration::minutes(10)),
            ..Default::default()
        }),
        "by time",
    );
    let kinds: Vec<&str> = window.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["CloneStarted", "Ready"]);
    assert_eq!(window[0].data, json!({"minute": 1}));
}

/// A limit returns the most recent matches, oldest first; `after_id` follows new events.
pub fn event_limit_and_follow(s: &dyn Store, _clock: &ManualClock) {
    let ids: Vec<i64> = (0..5)
        .map(|m| ok(s.append_event(event("w", "Tick", m)), "append"))
        .collect();
    let last_two = ok(
        s.events(&EventQuery {
            limit: Some(2),
            ..Default::default()
        }),
        "limit",
    );
    assert_eq!(
        last_two.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    let after = ok(
        s.events(&EventQuery {
            after_id: Some(ids[2]),
            ..Default::default()
        }),
        "after",
    );
    assert_eq!(
        after.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
}

/// Retention removes events older than the age limit and beyond the count limit.
pub fn retention_prunes_by_age_and_count(s: &dyn Store, _clock: &ManualClock) {
    for m in 0..10 {
        ok(s.append_event(event("w", "Tick", m)), "append");
    }
    let now = t0() + chrono::Duration::minutes(10);
    let by_age = EventRetention {
        max_age: Some(Duration::from_secs(5 * 60)),
        max_count: None,
    };
    assert_eq!(ok(s.prune_events(&by_age, now), "prune"), 5);
    let left = ok(s.events(&EventQuery::default()), "events");
    assert_eq!(
        left.first().map(|e| e.data["minute"].clone()),
        Some(json!(5))
    );
    let by_count = EventRetention {
        max_age: None,
        max_count: Some(2),
    };
    assert_eq!(ok(s.prune_events(&by_count, now), "prune"), 3);
    let left = ok(s.events(&EventQuery::default()), "events");
    let minutes: Vec<_> = left.iter().map(|e| e.data["minute"].clone()).collect();
    assert_eq!(minutes, [json!(8), json!(9)]);
    assert_eq!(ok(s.prune_events(&by_count, now), "prune again"), 0);
}

/// Retention never removes a node's newest event of a kind: the controller reads facts such
/// as "this instance was ready once" from the last `Ready` event, however old.
pub fn retention_keeps_each_nodes_newest_event_of_every_kind(s: &dyn Store, _clock: &ManualClock) {
    ok(s.append_event(event("w1", "Ready", 0)), "append");
    ok(s.append_event(event("w2", "Destroyed", 0)), "append");
    for m in 1..10 {
        ok(s.append_event(event("w1", "Tick", m)), "append");
    }
    let now = t0() + chrono::Duration::minutes(10);
    let by_age = EventRetention {
        max_age: Some(Duration::from_secs(5 * 60)),
        max_count: None,
    };
    assert_eq!(ok(s.prune_events(&by_age, now), "prune"), 4);
    let by_count = EventRetention {
        max_age: None,
        max_count: Some(1),
    };
    assert_eq!(ok(s.prune_events(&by_count, now), "prune"), 4);
    let left: Vec<(String, String)> = ok(s.events(&EventQuery::default()), "events")
        .into_iter()
        .map(|e| (e.node.unwrap_or_default(), e.kind))
        .collect();
    assert_eq!(
        left,
        [
            ("w1".to_owned(), "Ready".to_owned()),
            ("w2".to_owned(), "Destroyed".to_owned()),
            ("w1".to_owned(), "Tick".to_owned()),
        ]
    );
}

/// A journal intent is in flight until completed; the UPID is recorded on the way.
pub fn journal_intent_is_in_flight_until_completed(s: &dyn Store, clock: &ManualClock) {
    let e = ok(s.journal_begin(intent("w", "clone", 4101)), "begin");
    assert_eq!(e.state, JournalState::Intent);
    assert_eq!(ok(s.journal_in_flight(), "in flight"), vec![e.clone()]);
    let upid = "UPID:pve1:0000C0DE:0001:65A0:qmclone:4101:root@pam:";
    let with_upid = ok(
        s.journal_update(JournalUpdate {
            id: e.id,
            state: JournalState::Intent,
            upid: Some(upid.into()),
            detail: None,
        }),
        "record upid",
    );
    assert_eq!(with_upid.upid.as_deref(), Some(upid));
    assert_eq!(with_upid.detail, e.detail);
    clock.advance(chrono::Duration::seconds(30));
    let done = ok(
        s.journal_update(JournalUpdate {
            id: e.id,
            state: JournalState::Done,
            upid: None,
            detail: None,
        }),
        "done",
    );
    assert_eq!(done.state, JournalState::Done);
    assert_eq!(done.upid.as_deref(), Some(upid));
    assert_eq!(done.updated_at, t0() + chrono::Duration::seconds(30));
    assert!(ok(s.journal_in_flight(), "in flight").is_empty());
    assert_eq!(ok(s.journal_for_node("w"), "node journal"), vec![done]);
}

/// A finished journal entry cannot move to another state; repeating its completion is harmless.
pub fn final_journal_entry_cannot_change(s: &dyn Store, _clock: &ManualClock) {
    let e = ok(s.journal_begin(intent("w", "destroy", 4101)), "begin");
    let failed = JournalUpdate {
        id: e.id,
        state: JournalState::Failed,
        upid: None,
        detail: Some(json!({"error": "VM is locked (backup)"})),
    };
    ok(s.journal_update(failed.clone()), "fail");
    ok(s.journal_update(failed), "repeat fail");
    let err = s
        .journal_update(JournalUpdate {
            id: e.id,
            state: JournalState::Done,
            upid: None,
            detail: None,
        })
        .expect_err("failed is final");
    assert!(matches!(
        err,
        StoreError::InvalidTransition {
            from: JournalState::Failed,
            to: JournalState::Done,
            ..
        }
    ));
}

/// Journal, lease and instance writes in one transaction land together or not at all.
pub fn journal_lease_and_instance_commit_together(s: &dyn Store, _clock: &ManualClock) {
    ok(
        s.commit(Txn::new().with(Op::LeaseVmid {
            vmid: 4102,
            node: "other".into(),
        })),
        "lease",
    );
    let err = s
        .commit(
            Txn::new()
                .with(Op::JournalBegin(intent("w", "clone", 4102)))
                .with(Op::PutInstance(instance("w", "inst-b", 4102)))
                .with(Op::LeaseVmid {
                    vmid: 4102,
                    node: "w".into(),
                }),
        )
        .expect_err("vmid is taken");
    assert!(matches!(err, StoreError::VmidLeased { vmid: 4102, ref holder } if holder == "other"));
    assert!(ok(s.journal_in_flight(), "journal").is_empty());
    assert!(ok(s.current_instance("w"), "instance").is_none());

    let out = ok(
        s.commit(
            Txn::new()
                .with(Op::LeaseFreeVmid {
                    range: 4100..=4199,
                    exclude: vec![4100],
                    node: "w".into(),
                })
                .with(Op::JournalBegin(intent("w", "clone", 4101))),
        ),
        "lease and journal",
    );
    assert_eq!(out.results[0], OpResult::Vmid(4101));
    assert_eq!(ok(s.journal_in_flight(), "journal").len(), 1);
    let leases = ok(s.vmid_leases(), "leases");
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0].vmid, 4101);
    assert_eq!(leases[0].state, LeaseState::Reserved);
}

/// A VMID leased to one node cannot be leased to another; free leasing skips taken VMIDs and
/// reports an exhausted range.
pub fn vmid_leases_never_overlap(s: &dyn Store, _clock: &ManualClock) {
    let lease = |vmid, node: &str| {
        s.commit(Txn::new().with(Op::LeaseVmid {
            vmid,
            node: node.into(),
        }))
    };
    ok(lease(100, "a"), "lease");
    ok(lease(100, "a"), "same node again is idempotent");
    assert!(matches!(
        lease(100, "b"),
        Err(StoreError::VmidLeased { .. })
    ));
    let free = |node: &str| {
        s.commit(Txn::new().with(Op::LeaseFreeVmid {
            range: 100..=102,
            exclude: vec![101],
            node: node.into(),
        }))
    };
    assert_eq!(ok(free("b"), "free").results, vec![OpResult::Vmid(102)]);
    assert!(matches!(
        free("c"),
        Err(StoreError::VmidRangeExhausted {
            start: 100,
            end: 102
        })
    ));
    ok(
        s.commit(Txn::new().with(Op::SetLeaseState {
            vmid: 102,
            state: LeaseState::Active,
        })),
        "activate",
    );
    ok(
        s.commit(Txn::new().with(Op::ReleaseVmid { vmid: 100 })),
        "release",
    );
    assert_eq!(
        ok(free("c"), "free after release").results,
        vec![OpResult::Vmid(100)]
    );
    assert!(
        s.commit(Txn::new().with(Op::ReleaseVmid { vmid: 555 }))
            .is_err_and(|e| e.is_not_found())
    );
}

/// A new current instance supersedes the previous one, which stays until removed.
pub fn new_current_instance_supersedes_previous(s: &dyn Store, _clock: &ManualClock) {
    ok(
        s.commit(Txn::new().with(Op::PutInstance(instance("w", "inst-a", 4101)))),
        "first",
    );
    ok(
        s.commit(Txn::new().with(Op::PutInstance(instance("w", "inst-b", 4102)))),
        "second",
    );
    let current = ok(s.current_instance("w"), "current").expect("has current");
    assert_eq!(current.instance_id, "inst-b");
    assert_eq!(current.smbios_uuid, "uuid-inst-b");
    let all = ok(s.instances(Some("w")), "all");
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|i| i.instance_id == "inst-a" && !i.current));
    ok(
        s.commit(Txn::new().with(Op::RemoveInstance {
            instance_id: "inst-a".into(),
        })),
        "remove",
    );
    assert_eq!(ok(s.instances(None), "all").len(), 1);
    let mut moved = instance("other", "inst-b", 4102);
    moved.current = false;
    assert!(matches!(
        s.commit(Txn::new().with(Op::PutInstance(moved))),
        Err(StoreError::InvalidInput { .. })
    ));
}

/// An audit cursor moves in the same transaction as the taints derived from those lines.
pub fn audit_cursor_moves_with_its_taints(s: &dyn Store, _clock: &ManualClock) {
    let pos = |offset| CursorPosition::File {
        identity: "dev:64769 ino:1234".into(),
        offset,
    };
    ok(
        s.commit(
            Txn::new()
                .with(Op::AddTaint(taint("w", "compromised")))
                .with(Op::SetAuditCursor(AuditCursor::new("cerbos", pos(100)))),
        ),
        "ingest",
    );
    let c = ok(s.audit_cursor("cerbos"), "cursor").expect("cursor");
    assert_eq!(c.position, pos(100));
    assert_eq!(c.updated_at, Some(t0()));
    let err = s.commit(
        Txn::new()
            .with(Op::AddTaint(taint("w2", "compromised")))
            .with(Op::SetAuditCursor(AuditCursor::new("cerbos", pos(200))))
            .with(Op::ClearTaint {
                id: 4242,
                by: "x".into(),
            }),
    );
    assert!(err.is_err());
    assert_eq!(
        ok(s.audit_cursor("cerbos"), "cursor")
            .expect("cursor")
            .position,
        pos(100)
    );
    assert!(ok(s.active_taints(Some("w2"), t0()), "taints").is_empty());
    ok(
        s.commit(Txn::new().with(Op::SetAuditCursor(AuditCursor::new(
            "http",
            CursorPosition::LastId { id: "01HX9".into() },
        )))),
        "id cursor",
    );
    assert!(ok(s.audit_cursor("nope"), "cursor").is_none());
}

/// An audit window is written with its cursor: replaced whole, deleted when emptied, rolled
/// back with a failed transaction, and kept apart per scope.
pub fn audit_window_is_replaced_with_its_cursor_and_deleted_when_empty(
    s: &dyn Store,
    _clock: &ManualClock,
) {
    let pos = |offset| CursorPosition::File {
        identity: "dev:64769 ino:1234".into(),
        offset,
    };
    let window = |node: &str, ids: &[&str]| {
        AuditWindow::new(
            "files",
            "worker-denials",
            node,
            "fp-1",
            json!(
                ids.iter()
                    .map(|id| json!({"callId": id}))
                    .collect::<Vec<_>>()
            ),
        )
    };
    ok(
        s.commit(
            Txn::new()
                .with(Op::SetAuditWindow(window("w1", &["c1", "c2"])))
                .with(Op::SetAuditWindow(window("w2", &["c3"])))
                .with(Op::SetAuditCursor(AuditCursor::new("cerbos", pos(100)))),
        ),
        "first batch",
    );
    let stored = ok(s.audit_windows("files"), "windows");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].node, "w1");
    assert_eq!(stored[0].fingerprint, "fp-1");
    assert_eq!(stored[0].calls, json!([{"callId": "c1"}, {"callId": "c2"}]));
    assert_eq!(stored[0].updated_at, Some(t0()));
    assert!(ok(s.audit_windows("http"), "other scope").is_empty());

    // Replaced whole; emptied windows disappear.
    ok(
        s.commit(
            Txn::new()
                .with(Op::SetAuditWindow(window("w1", &["c2", "c4"])))
                .with(Op::SetAuditWindow(window("w2", &[])))
                .with(Op::SetAuditCursor(AuditCursor::new("cerbos", pos(200)))),
        ),
        "second batch",
    );
    let stored = ok(s.audit_windows("files"), "windows");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].calls, json!([{"callId": "c2"}, {"callId": "c4"}]));

    // A failed transaction leaves window and cursor as they were.
    let err = s.commit(
        Txn::new()
            .with(Op::SetAuditWindow(window("w1", &["c5"])))
            .with(Op::SetAuditCursor(AuditCursor::new("cerbos", pos(300))))
            .with(Op::ClearTaint {
                id: 4242,
                by: "x".into(),
            }),
    );
    assert!(err.is_err());
    let stored = ok(s.audit_windows("files"), "windows");
    assert_eq!(stored[0].calls, json!([{"callId": "c2"}, {"callId": "c4"}]));
    assert_eq!(
        ok(s.audit_cursor("cerbos"), "cursor")
            .expect("cursor")
            .position,
        pos(200)
    );

    // Deleting a window that is not there changes nothing; calls must be an array.
    let outcome = ok(
        s.commit(Txn::new().with(Op::SetAuditWindow(window("w9", &[])))),
        "delete absent",
    );
    assert!(!outcome.changed);
    assert_eq!(outcome.results, vec![OpResult::Window]);
    assert!(matches!(
        s.commit(Txn::new().with(Op::SetAuditWindow(AuditWindow::new(
            "files",
            "p",
            "w1",
            "fp",
            json!({"callId": "c1"}),
        )))),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.commit(Txn::new().with(Op::SetAuditWindow(window("", &["c1"])))),
        Err(StoreError::InvalidInput { .. })
    ));
}

/// Every committed change wakes subscribers with the new revision; failed writes do not.
pub fn committed_changes_notify_subscribers(s: &dyn Store, _clock: &ManualClock) {
    let mut rx = s.subscribe();
    let start = *rx.borrow_and_update();
    assert_eq!(start, ok(s.revision(), "revision"));
    ok(s.apply(vec![node_write("w", json!({}))]), "apply");
    assert!(rx.has_changed().expect("store alive"));
    assert_eq!(*rx.borrow_and_update(), start + 1);
    ok(s.add_taint(taint("w", "k")), "taint");
    ok(s.append_event(event("w", "E", 0)), "event");
    assert_eq!(*rx.borrow_and_update(), start + 3);
    let _ = s.apply(vec![
        node_write("w", json!({"x": 1})).expecting(Expect::Absent),
    ]);
    assert!(!rx.has_changed().expect("store alive"));
}

/// Expands to one `#[test]` per conformance check. `$fresh` is a path to a function returning a
/// new [`Fixture`](crate::conformance::Fixture).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            created_resource_starts_at_generation_one,
            spec_change_bumps_generation_and_version,
            label_change_bumps_version_not_generation,
            identical_apply_changes_nothing,
            status_write_bumps_version_not_generation,
            stale_version_write_is_rejected_with_conflict,
            create_only_write_conflicts_when_resource_exists,
            failed_apply_leaves_every_resource_untouched,
            revision_grows_by_one_per_transaction,
            list_returns_one_kind_ordered_by_name,
            deleted_resource_comes_back_with_new_uid,
            missing_resource_is_not_found,
            empty_identifiers_are_refused,
            taint_marks_current_instance,
            cleared_taint_stays_in_history,
            expired_taint_is_inactive_but_kept,
            duplicate_active_taint_is_not_added_twice,
            events_filter_by_node_kind_and_time,
            event_limit_and_follow,
            retention_prunes_by_age_and_count,
            retention_keeps_each_nodes_newest_event_of_every_kind,
            journal_intent_is_in_flight_until_completed,
            final_journal_entry_cannot_change,
            journal_lease_and_instance_commit_together,
            vmid_leases_never_overlap,
            new_current_instance_supersedes_previous,
            audit_cursor_moves_with_its_taints,
            audit_window_is_replaced_with_its_cursor_and_deleted_when_empty,
            committed_changes_notify_subscribers
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let fixture: $crate::conformance::Fixture = $fresh();
                $crate::conformance::$check(&*fixture.store, &fixture.clock);
                drop(fixture);
            }
        )*
    };
}
