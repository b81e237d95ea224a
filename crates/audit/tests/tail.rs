//! Tailing a Cerbos audit file: partial lines, rotation by rename, truncation, resuming from
//! the cursor committed with the taints.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use audit::{
    AddressBook, FileSourceConfig, FileTailer, IngestReport, Ingestor, NodeAddresses, TailBatch,
    run_file_source,
};
use common::{Check, access, call, decision, ts, worker_policy};
use store::{CursorPosition, SqliteStore, Store};

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

fn drain(t: &mut FileTailer) -> Vec<TailBatch> {
    let mut out = Vec::new();
    while let Some(b) = t.poll().expect("poll") {
        out.push(b);
    }
    out
}

fn text(batches: &[TailBatch]) -> String {
    batches
        .iter()
        .map(|b| String::from_utf8_lossy(&b.data).into_owned())
        .collect()
}

#[test]
fn a_partial_line_is_held_until_its_newline_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "one\ntw");
    let mut t = FileTailer::new(&log);
    let b = drain(&mut t);
    assert_eq!(text(&b), "one\n");
    assert_eq!(
        b.last().map(|b| b.offset),
        Some(4),
        "cursor stops before the partial line"
    );
    append(&log, "o\n");
    let b = drain(&mut t);
    assert_eq!(text(&b), "two\n");
    assert_eq!(b[0].offset, 8);
    assert!(drain(&mut t).is_empty());
}

#[test]
fn a_missing_file_is_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let mut t = FileTailer::new(&log);
    assert!(drain(&mut t).is_empty());
    append(&log, "a\n");
    assert_eq!(text(&drain(&mut t)), "a\n");
}

#[test]
fn rotation_by_rename_reads_the_old_files_rest_then_the_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "a\nb\n");
    let mut t = FileTailer::new(&log);
    assert_eq!(text(&drain(&mut t)), "a\nb\n");
    append(&log, "c\n");
    fs::rename(&log, dir.path().join("audit-2026-11-21T19-42-26.497.log")).expect("rename");
    append(&log, "d\n");
    let b = drain(&mut t);
    assert_eq!(text(&b), "c\nd\n");
    assert_ne!(b[0].identity, b[1].identity, "one batch per file");
    assert_eq!(b[1].offset, 2);
}

#[test]
fn a_line_cut_by_rotation_is_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "a\nhalf-a-li");
    let mut t = FileTailer::new(&log);
    assert_eq!(text(&drain(&mut t)), "a\n");
    fs::rename(&log, dir.path().join("audit-old.log")).expect("rename");
    append(&log, "ne\nb\n");
    let b = drain(&mut t);
    assert_eq!(text(&b), "ne\nb\n", "the new file is read from its start");
    assert_eq!(b.iter().map(|b| b.dropped_lines).sum::<u64>(), 1);
}

#[test]
fn truncation_restarts_from_the_beginning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "first line\nsecond line\n");
    let mut t = FileTailer::new(&log);
    drain(&mut t);
    fs::write(&log, "x\n").expect("truncate and write");
    let b = drain(&mut t);
    assert_eq!(text(&b), "x\n");
    assert_eq!(b[0].offset, 2);
}

#[test]
fn over_long_lines_are_dropped_without_losing_the_next_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let long = "y".repeat(100);
    append(&log, &format!("ok\n{long}\nnext\n"));
    let mut t = FileTailer::new(&log).with_limits(16, 1024);
    let b = drain(&mut t);
    // The 100-byte line arrives in one read; it is split out whole and fails to decode later,
    // or is dropped here when it spans reads. Either way `next` survives.
    assert!(text(&b).ends_with("next\n"));
    let mut t = FileTailer::new(&log).with_limits(16, 1024);
    fs::write(&log, "").expect("empty");
    append(&log, &long);
    assert!(drain(&mut t).iter().map(|b| b.dropped_lines).sum::<u64>() == 1);
    append(&log, "\nafter\n");
    assert_eq!(text(&drain(&mut t)), "after\n");
}

#[test]
fn resuming_from_a_cursor_reads_only_what_came_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "a\nb\n");
    let mut t = FileTailer::new(&log);
    let cursor = drain(&mut t).last().expect("batch").cursor();
    drop(t);
    append(&log, "c\n");
    let mut t = FileTailer::resume(&log, Some(&cursor));
    assert_eq!(text(&drain(&mut t)), "c\n");
}

#[test]
fn resuming_after_the_cursor_file_was_rotated_away_drains_it_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "a\n");
    let mut t = FileTailer::new(&log);
    let cursor = drain(&mut t).last().expect("batch").cursor();
    drop(t);
    // While reborn was down: one more line, rotation, a line in the new file.
    append(&log, "b\n");
    fs::rename(&log, dir.path().join("audit-2026-11-21T19-42-26.497.log")).expect("rename");
    append(&log, "c\n");
    let mut t = FileTailer::resume(&log, Some(&cursor));
    assert_eq!(text(&drain(&mut t)), "b\nc\n");
}

#[test]
fn a_cursor_whose_file_is_gone_starts_the_current_file_from_its_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "new\n");
    let stale = CursorPosition::File {
        identity: "1:999999999".into(),
        offset: 3,
    };
    let mut t = FileTailer::resume(&log, Some(&stale));
    assert_eq!(text(&drain(&mut t)), "new\n");
}

fn worker_ingestor() -> Ingestor {
    let mut map = NodeAddresses::new();
    map.insert("worker-1", "10.0.10.21".parse().expect("ip"));
    Ingestor::new(vec![worker_policy(3, "5m")], AddressBook::new(map))
}

fn denial(n: u32) -> String {
    format!(
        "{}\n{}\n",
        decision(
            &call(n),
            &ts(n),
            "10.0.10.21:4000",
            &[Check::cross_tenant("svc-worker")]
        ),
        access(&call(n), &ts(n), "10.0.10.21:4000"),
    )
}

fn ingest_all(t: &mut FileTailer, ing: &mut Ingestor, store: &dyn Store) -> IngestReport {
    let mut total = IngestReport::default();
    for b in drain(t) {
        let r = ing
            .commit_batch(store, "cerbos-file", &b.data, Some(b.cursor()))
            .expect("commit");
        total.check_decisions += r.check_decisions;
        total.taints.extend(r.taints);
        total.already_tainted += r.already_tainted;
        total.cursor = r.cursor;
    }
    total
}

#[test]
fn taints_and_cursor_are_committed_together_and_a_restart_counts_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    append(&log, &(1..=3).map(denial).collect::<String>());

    let mut t = FileTailer::new(&log);
    let mut ing = worker_ingestor();
    let r = ingest_all(&mut t, &mut ing, &store);
    assert_eq!(r.taints.len(), 1);
    assert_eq!(r.taints[0].node, "worker-1");
    let stored = store
        .audit_cursor("cerbos-file")
        .expect("read")
        .expect("cursor");
    assert_eq!(Some(stored.position.clone()), r.cursor);
    let events = store
        .events(&store::EventQuery {
            kind: Some(audit::TAINT_EVENT_KIND.into()),
            ..Default::default()
        })
        .expect("events");
    assert_eq!(events.len(), 1);

    // Restart: a fresh tailer and ingestor resume from the stored cursor.
    drop((t, ing));
    let mut t = FileTailer::resume(&log, Some(&stored.position));
    let mut ing = worker_ingestor();
    let r = ingest_all(&mut t, &mut ing, &store);
    assert_eq!(r.check_decisions, 0, "nothing is read twice");
    append(&log, &(4..=5).map(denial).collect::<String>());
    let r = ingest_all(&mut t, &mut ing, &store);
    assert_eq!(r.check_decisions, 2);
    assert!(
        r.taints.is_empty(),
        "two new denials are below the threshold"
    );
    assert_eq!(
        store
            .taint_history(Some("worker-1"))
            .expect("history")
            .len(),
        1
    );
}

#[test]
fn the_same_ndjson_body_posted_twice_adds_one_taint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    let body: String = (1..=3).map(denial).collect();
    let mut ing = worker_ingestor();
    let first = ing
        .ingest_ndjson(&store, "http", body.as_bytes())
        .expect("ingest");
    assert_eq!(first.taints.len(), 1);
    assert_eq!(first.cursor, Some(CursorPosition::LastId { id: call(3) }));
    let again = ing
        .ingest_ndjson(&store, "http", body.as_bytes())
        .expect("ingest");
    assert!(again.taints.is_empty());
    assert_eq!(
        store
            .active_taints(Some("worker-1"), chrono::DateTime::UNIX_EPOCH)
            .expect("taints")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_tailer_follows_a_rotating_file_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("store.db")).expect("store"));
    let ing = Arc::new(Mutex::new(worker_ingestor()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = FileSourceConfig::new("cerbos-file", &log);
    config.poll_interval = std::time::Duration::from_millis(20);
    let task = tokio::spawn(run_file_source(
        config,
        store.clone(),
        ing,
        shutdown,
        Some(tx),
    ));

    append(&log, &denial(1));
    append(&log, &denial(2));
    let mut seen = 0;
    while seen < 2 {
        seen += rx.recv().await.expect("report").check_decisions;
    }
    fs::rename(&log, dir.path().join("audit-rotated.log")).expect("rename");
    append(&log, &denial(3));
    let mut taints = Vec::new();
    while taints.is_empty() {
        taints = rx.recv().await.expect("report").taints;
    }
    assert_eq!(
        taints[0].evidence["callIds"],
        serde_json::json!([call(1), call(2), call(3)])
    );
    stop.send(true).expect("stop");
    task.await.expect("join").expect("tailer ends cleanly");
}

/// With inotify, a line is read when it is written, not at the next poll: here the poll
/// timer is a day, so only the directory watch can wake the tailer, across a rotation too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_watch_wakes_the_tailer_without_polling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("store.db")).expect("store"));
    let ing = Arc::new(Mutex::new(worker_ingestor()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = FileSourceConfig::new("cerbos-file", &log);
    config.poll_interval = std::time::Duration::from_secs(86_400);
    assert!(config.notify, "inotify is the default");
    let task = tokio::spawn(run_file_source(
        config,
        store.clone(),
        ing,
        shutdown,
        Some(tx),
    ));

    // The file does not exist yet: its creation in the watched directory wakes the tailer.
    append(&log, &denial(1));
    append(&log, &denial(2));
    let mut seen = 0;
    while seen < 2 {
        seen += next_report(&mut rx).await.check_decisions;
    }
    fs::rename(&log, dir.path().join("audit-rotated.log")).expect("rename");
    append(&log, &denial(3));
    let mut taints = Vec::new();
    while taints.is_empty() {
        taints = next_report(&mut rx).await.taints;
    }
    assert_eq!(
        taints[0].evidence["callIds"],
        serde_json::json!([call(1), call(2), call(3)])
    );
    stop.send(true).expect("stop");
    task.await.expect("join").expect("tailer ends cleanly");
}

async fn next_report(rx: &mut tokio::sync::mpsc::UnboundedReceiver<IngestReport>) -> IngestReport {
    tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv())
        .await
        .expect("a report without waiting for the poll timer")
        .expect("report")
}

/// Tails `log` with `ing` until `want` CheckResources decisions were committed, then stops
/// the tailer as a shutdown would. Returns the taints raised meanwhile.
async fn tail_until(
    log: &Path,
    store: &Arc<dyn Store>,
    ing: Ingestor,
    lines: &str,
    want: u64,
) -> Vec<store::Taint> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = FileSourceConfig::new("cerbos-file", log);
    config.poll_interval = std::time::Duration::from_millis(20);
    let task = tokio::spawn(run_file_source(
        config,
        store.clone(),
        Arc::new(Mutex::new(ing)),
        shutdown,
        Some(tx),
    ));
    append(log, lines);
    let (mut seen, mut taints) = (0, Vec::new());
    while seen < want {
        let r = next_report(&mut rx).await;
        seen += r.check_decisions;
        taints.extend(r.taints);
    }
    stop.send(true).expect("stop");
    task.await.expect("join").expect("tailer ends cleanly");
    taints
}

/// Issue #5: the windows are committed with the cursor, so a threshold spanning a restart of
/// the daemon is still reached, and the taint's evidence lists every counted call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_denials_before_a_restart_and_one_after_make_the_taint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let db = dir.path().join("store.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).expect("store"));
    let before = [denial(1), denial(2)].concat();
    let taints = tail_until(&log, &store, worker_ingestor(), &before, 2).await;
    assert!(taints.is_empty(), "two denials are below the threshold");
    let windows = store
        .audit_windows(audit::DEFAULT_WINDOW_SCOPE)
        .expect("windows");
    assert_eq!(windows.len(), 1, "the window is stored with the cursor");
    drop(store);

    // Restart: a new store handle, a new ingestor and a new tailer.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).expect("reopen"));
    let taints = tail_until(&log, &store, worker_ingestor(), &denial(3), 1).await;
    assert_eq!(taints.len(), 1, "the third denial completes the threshold");
    assert_eq!(taints[0].node, "worker-1");
    assert_eq!(
        taints[0].evidence["callIds"],
        serde_json::json!([call(1), call(2), call(3)])
    );
    assert_eq!(taints[0].evidence["countedCalls"], 3);
    let restored = &taints[0].evidence["calls"][0];
    assert_eq!(restored["timestamp"], ts(1));
    assert_eq!(restored["peerAddress"], "10.0.10.21:4000");
    assert_eq!(restored["hits"][0]["principal"], "svc-worker");
    assert_eq!(
        restored["hits"][0]["rule"],
        "resource.tenant_document.vdefault#deny-cross-tenant"
    );
    assert!(
        store
            .audit_windows(audit::DEFAULT_WINDOW_SCOPE)
            .expect("windows")
            .is_empty(),
        "the window that raised the taint starts over, in the store too"
    );
}

/// Commits every batch `t` has, returning the summed evaluation counters.
fn commit_all(t: &mut FileTailer, ing: &mut Ingestor, store: &dyn Store) -> IngestReport {
    let mut total = IngestReport::default();
    for b in drain(t) {
        let r = ing
            .commit_batch(store, "cerbos-file", &b.data, Some(b.cursor()))
            .expect("commit");
        total.check_decisions += r.check_decisions;
        total.eval.counted += r.eval.counted;
        total.eval.duplicates += r.eval.duplicates;
        total.taints.extend(r.taints);
        total.cursor = r.cursor;
    }
    total
}

/// A crash after a batch was evaluated but before it was committed: the restarted ingestor
/// has the windows of the committed batches only, and reads the lost batch again from the
/// cursor, so each call is counted exactly once.
#[test]
fn a_crash_between_batches_never_counts_a_call_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    append(&log, &[denial(1), denial(2)].concat());
    let mut t = FileTailer::new(&log);
    let mut ing = worker_ingestor();
    assert_eq!(commit_all(&mut t, &mut ing, &store).eval.counted, 2);

    // The next batch is read and evaluated, then the process dies before the commit.
    append(&log, &denial(3));
    let lost = drain(&mut t);
    let mut report = IngestReport::default();
    assert_eq!(ing.process(&lost[0].data, &mut report).len(), 1);
    drop((t, ing));

    let cursor = store
        .audit_cursor("cerbos-file")
        .expect("read")
        .expect("cursor");
    let mut t = FileTailer::resume(&log, Some(&cursor.position));
    let mut ing = worker_ingestor();
    let r = commit_all(&mut t, &mut ing, &store);
    assert_eq!((r.check_decisions, r.eval.counted), (1, 1));
    assert_eq!(r.taints.len(), 1);
    assert_eq!(
        r.taints[0].evidence["callIds"],
        serde_json::json!([call(1), call(2), call(3)])
    );
}

/// Lines read again after a restart (a lost cursor, a re-sent NDJSON body) are recognised
/// by the restored window's callIds and not counted a second time.
#[test]
fn a_line_read_again_after_a_restart_is_not_counted_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    append(&log, &[denial(1), denial(2)].concat());
    let mut ing = worker_ingestor();
    commit_all(&mut FileTailer::new(&log), &mut ing, &store);
    drop(ing);

    let mut ing = worker_ingestor();
    let r = commit_all(&mut FileTailer::new(&log), &mut ing, &store);
    assert_eq!((r.eval.counted, r.eval.duplicates), (0, 2));
    assert!(r.taints.is_empty());
    assert_eq!(
        ing.evaluator()
            .window_len("worker-cross-tenant", "worker-1"),
        2
    );
}

/// A window counted under other rules is not carried over: the policy's spec changed while
/// reborn was down, so its old window is dropped (in the store too) and counting starts over.
#[test]
fn a_policy_change_after_a_restart_drops_the_old_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    append(&log, &[denial(1), denial(2)].concat());
    let mut t = FileTailer::new(&log);
    let mut ing = worker_ingestor();
    commit_all(&mut t, &mut ing, &store);
    let cursor = ing
        .evaluator()
        .window_len("worker-cross-tenant", "worker-1");
    assert_eq!(cursor, 2);
    drop((t, ing));

    let stored = store
        .audit_cursor("cerbos-file")
        .expect("read")
        .expect("cursor");
    let mut t = FileTailer::resume(&log, Some(&stored.position));
    let mut map = NodeAddresses::new();
    map.insert("worker-1", "10.0.10.21".parse().expect("ip"));
    let mut ing = Ingestor::new(vec![worker_policy(3, "10m")], AddressBook::new(map));
    append(&log, &denial(3));
    let r = commit_all(&mut t, &mut ing, &store);
    assert_eq!(r.eval.counted, 1);
    assert!(r.taints.is_empty(), "the two old denials no longer count");
    assert_eq!(
        ing.evaluator()
            .window_len("worker-cross-tenant", "worker-1"),
        1
    );
    let windows = store
        .audit_windows(audit::DEFAULT_WINDOW_SCOPE)
        .expect("windows");
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].calls.as_array().map(Vec::len), Some(1));
    assert_eq!(windows[0].calls[0]["callId"], call(3));
}

/// Restored calls obey the window rule: the next call more than a window later expires them.
#[test]
fn restored_calls_older_than_the_window_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    append(&log, &[denial(1), denial(2)].concat());
    let mut t = FileTailer::new(&log);
    commit_all(&mut t, &mut worker_ingestor(), &store);
    drop(t);

    let stored = store
        .audit_cursor("cerbos-file")
        .expect("read")
        .expect("cursor");
    let mut t = FileTailer::resume(&log, Some(&stored.position));
    let mut ing = worker_ingestor();
    // 400 s after the first two: beyond the 5-minute window.
    append(&log, &denial(400));
    let r = commit_all(&mut t, &mut ing, &store);
    assert!(r.taints.is_empty());
    assert_eq!(
        ing.evaluator()
            .window_len("worker-cross-tenant", "worker-1"),
        1
    );
    let windows = store
        .audit_windows(audit::DEFAULT_WINDOW_SCOPE)
        .expect("windows");
    assert_eq!(windows[0].calls.as_array().map(Vec::len), Some(1));
}

/// The daemon may read the windows before its policies are loaded: they wait for them.
#[test]
fn windows_loaded_before_the_policies_are_kept_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    append(&log, &[denial(1), denial(2)].concat());
    commit_all(&mut FileTailer::new(&log), &mut worker_ingestor(), &store);

    let mut map = NodeAddresses::new();
    map.insert("worker-1", "10.0.10.21".parse().expect("ip"));
    let mut ing = Ingestor::new(Vec::new(), AddressBook::new(map));
    assert_eq!(ing.load_windows(&store).expect("load"), 0);
    assert!(ing.window_ops().is_empty(), "nothing is deleted meanwhile");
    ing.set_policies(vec![worker_policy(3, "5m")]);
    assert_eq!(
        ing.evaluator()
            .window_len("worker-cross-tenant", "worker-1"),
        2
    );
}

/// Two ingestors on one store (the file tailers' and the HTTP ingest's) keep their windows
/// apart by scope.
#[test]
fn ingestors_with_different_scopes_keep_their_windows_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("store.db")).expect("store");
    let body = [denial(1), denial(2)].concat();
    let mut http = worker_ingestor().with_window_scope("http");
    http.ingest_ndjson(&store, "http/pdp", body.as_bytes())
        .expect("ingest");
    assert_eq!(store.audit_windows("http").expect("windows").len(), 1);
    assert!(
        store
            .audit_windows(audit::DEFAULT_WINDOW_SCOPE)
            .expect("windows")
            .is_empty()
    );
    let mut files = worker_ingestor();
    files.load_windows(&store).expect("load");
    assert_eq!(
        files
            .evaluator()
            .window_len("worker-cross-tenant", "worker-1"),
        0
    );
}

/// The persisted calls keep everything the evidence shows (peer, hits, rule outputs), so a
/// taint completed after a restart carries the same evidence as one raised without a restart.
#[test]
fn a_taint_raised_after_a_restart_has_the_same_evidence_as_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let straight = SqliteStore::open(dir.path().join("straight.db")).expect("store");
    let body: String = (1..=3).map(denial).collect();
    let mut ing = worker_ingestor();
    let expected = ing
        .commit_batch(&straight, "cerbos-file", body.as_bytes(), None)
        .expect("commit")
        .taints;
    assert_eq!(expected.len(), 1);

    let store = SqliteStore::open(dir.path().join("restarted.db")).expect("store");
    let before = [denial(1), denial(2)].concat();
    worker_ingestor()
        .commit_batch(&store, "cerbos-file", before.as_bytes(), None)
        .expect("commit");
    let after = worker_ingestor()
        .commit_batch(&store, "cerbos-file", denial(3).as_bytes(), None)
        .expect("commit")
        .taints;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].evidence, expected[0].evidence);
    assert_eq!(after[0].reason, expected[0].reason);
    assert_eq!(after[0].created_at, expected[0].created_at);
}
