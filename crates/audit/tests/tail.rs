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
