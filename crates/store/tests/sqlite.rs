//! SQLite-specific behaviour: durability settings, migrations, reopening, concurrency.

use std::sync::Arc;

use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::json;
use store::{
    AuditCursor, AuditWindow, CursorPosition, Expect, Op, ResourceKey, ResourceWrite, SqliteStore,
    Store, StoreError, Txn,
};

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reborn.db");
    (dir, path)
}

fn pragma(conn: &Connection, name: &str) -> String {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| {
        r.get::<_, rusqlite::types::Value>(0)
    })
    .map(|v| match v {
        rusqlite::types::Value::Text(s) => s,
        rusqlite::types::Value::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    })
    .expect("pragma")
}

#[test]
fn database_file_is_in_wal_mode_after_open() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    store
        .apply(vec![ResourceWrite::new(
            ResourceKey::new("Node", "w"),
            json!({}),
        )])
        .expect("apply");
    let conn = Connection::open(&path).expect("raw open");
    assert_eq!(pragma(&conn, "journal_mode"), "wal");
    assert!(path.with_file_name("reborn.db-wal").exists());
}

#[test]
fn acknowledged_writes_survive_reopening() {
    let (_dir, path) = temp_db();
    let key = ResourceKey::new("Node", "worker-1");
    let written = {
        let store = SqliteStore::open(&path).expect("open");
        store
            .apply(vec![ResourceWrite::new(key.clone(), json!({"cores": 2}))])
            .expect("apply")
            .remove(0)
    };
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.get(&key).expect("get"), Some(written.clone()));
    assert_eq!(
        store.revision().expect("revision"),
        written.resource_version
    );
    assert_eq!(*store.subscribe().borrow(), written.resource_version);
    assert_eq!(store.schema_version().expect("schema"), 3);
    store.integrity_check().expect("integrity");
}

#[test]
fn database_from_newer_build_is_refused() {
    let (_dir, path) = temp_db();
    drop(SqliteStore::open(&path).expect("create"));
    let conn = Connection::open(&path).expect("raw open");
    conn.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)",
        [],
    )
    .expect("bump version");
    drop(conn);
    let err = SqliteStore::open(&path).expect_err("newer schema must be refused");
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                supported: 3
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade reborn"), "{err}");
}

#[test]
fn undecodable_stored_spec_is_reported_as_corrupt() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    let key = ResourceKey::new("Node", "w");
    store
        .apply(vec![ResourceWrite::new(key.clone(), json!({}))])
        .expect("apply");
    let conn = Connection::open(&path).expect("raw open");
    conn.execute("UPDATE resources SET spec = '{not json'", [])
        .expect("corrupt");
    let err = store.get(&key).expect_err("corrupt spec");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("Node/w"), "{err}");
}

#[test]
fn path_that_cannot_be_opened_names_the_path() {
    let (dir, _) = temp_db();
    let path = dir.path().join("missing-dir").join("reborn.db");
    let err = SqliteStore::open(&path).expect_err("no parent directory");
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn concurrent_optimistic_writers_lose_no_update() {
    let (_dir, path) = temp_db();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
    let key = ResourceKey::new("Counter", "c");
    store
        .apply(vec![ResourceWrite::new(key.clone(), json!({"n": 0}))])
        .expect("create");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let key = key.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0u32;
                for _ in 0..25 {
                    loop {
                        let current = store.get(&key).expect("get").expect("exists");
                        let n = current.spec["n"].as_u64().expect("number");
                        let write = ResourceWrite::new(key.clone(), json!({"n": n + 1}))
                            .expecting(Expect::Version(current.resource_version));
                        match store.apply(vec![write]) {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let end = store.get(&key).expect("get").expect("exists");
    assert_eq!(end.spec["n"], 100);
    assert_eq!(end.generation, 101);
}

#[test]
fn subscriber_on_another_thread_wakes_on_commit() {
    let (_dir, path) = temp_db();
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    let mut rx = store.subscribe();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            store
                .apply(vec![ResourceWrite::new(
                    ResourceKey::new("Node", "w"),
                    json!({}),
                )])
                .expect("apply")
        })
    };
    let seen = runtime.block_on(async {
        rx.changed().await.expect("store alive");
        *rx.borrow_and_update()
    });
    let written = writer.join().expect("writer");
    assert_eq!(seen, written[0].resource_version);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The generation counts spec changes only; the version moves on every change.
    #[test]
    fn generation_counts_spec_changes_only(
        writes in proptest::collection::vec((0u8..3, 0u8..2), 1..12)
    ) {
        let (_dir, path) = temp_db();
        let store = SqliteStore::open(&path).expect("open");
        let key = ResourceKey::new("Node", "w");
        let mut last: Option<(u8, u8)> = None;
        let mut generation = 0u64;
        let mut version = 0u64;
        for (spec, label) in writes {
            let labels = [("l".to_owned(), label.to_string())].into_iter().collect();
            let r = store
                .apply(vec![ResourceWrite::new(key.clone(), json!({"s": spec})).with_labels(labels)])
                .expect("apply")
                .remove(0);
            match last {
                None => generation = 1,
                Some((s, _)) if s != spec => generation += 1,
                _ => {}
            }
            if last == Some((spec, label)) {
                prop_assert_eq!(r.resource_version, version);
            } else {
                prop_assert!(r.resource_version > version);
            }
            version = r.resource_version;
            prop_assert_eq!(r.generation, generation);
            last = Some((spec, label));
        }
    }
}

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_resources() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("create");
    let key = ResourceKey::new("Node", "worker-1");
    store
        .apply(vec![ResourceWrite::new(key.clone(), json!({"n": 1}))])
        .expect("apply");
    drop(store);
    // Back to what a version-1 build left behind.
    let conn = Connection::open(&path).expect("raw open");
    conn.execute_batch(
        "DROP TABLE audit_windows; DROP INDEX resources_versions;
         DELETE FROM schema_version WHERE version >= 2;",
    )
    .expect("downgrade");
    drop(conn);

    let store = SqliteStore::open(&path).expect("reopen migrates");
    assert_eq!(store.schema_version().expect("schema"), 3);
    let listed = store.list_shared("Node").expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].spec, json!({"n": 1}));
}

#[test]
fn a_version_2_database_is_migrated_and_keeps_its_cursors() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("create");
    let cursor = AuditCursor::new(
        "file:/var/log/cerbos/audit.log",
        CursorPosition::LastId { id: "01HX9".into() },
    );
    store
        .commit(Txn::new().with(Op::SetAuditCursor(cursor.clone())))
        .expect("cursor");
    drop(store);
    // Back to what a version-2 build left behind.
    let conn = Connection::open(&path).expect("raw open");
    conn.execute_batch("DROP TABLE audit_windows; DELETE FROM schema_version WHERE version = 3;")
        .expect("downgrade");
    drop(conn);

    let store = SqliteStore::open(&path).expect("reopen migrates");
    assert_eq!(store.schema_version().expect("schema"), 3);
    let kept = store
        .audit_cursor(&cursor.source)
        .expect("read")
        .expect("kept");
    assert_eq!(kept.position, cursor.position);
    assert!(store.audit_windows("files").expect("windows").is_empty());
    let window = AuditWindow::new("files", "p", "worker-1", "fp", json!([{"callId": "c1"}]));
    store
        .commit(Txn::new().with(Op::SetAuditWindow(window)))
        .expect("the new table is writable");
    assert_eq!(store.audit_windows("files").expect("windows").len(), 1);
}

/// Writes `n` nodes named `worker-000`.. with spec `{"n": i}`.
fn nodes(store: &SqliteStore, n: usize, spec_base: usize) {
    store
        .apply(
            (0..n)
                .map(|i| {
                    ResourceWrite::new(
                        ResourceKey::new("Node", format!("worker-{i:03}")),
                        json!({"n": spec_base + i}),
                    )
                })
                .collect(),
        )
        .expect("apply");
}

/// The listing a reader would get without any cache: every row read afresh.
fn fresh_listing(store: &SqliteStore) -> Vec<store::Resource> {
    let names: Vec<String> = store
        .list("Node")
        .expect("list")
        .items
        .into_iter()
        .map(|r| r.key.name)
        .collect();
    names
        .iter()
        .map(|n| {
            store
                .get(&ResourceKey::new("Node", n.as_str()))
                .expect("get")
                .expect("exists")
        })
        .collect()
}

fn shared(store: &SqliteStore) -> Vec<store::Resource> {
    store
        .list_shared("Node")
        .expect("list_shared")
        .items
        .into_iter()
        .map(Arc::unwrap_or_clone)
        .collect()
}

#[test]
fn repeated_listings_see_every_spec_status_delete_and_recreate_in_between() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    nodes(&store, 4, 0);
    assert_eq!(shared(&store), fresh_listing(&store));

    let key = |i: usize| ResourceKey::new("Node", format!("worker-{i:03}"));
    store
        .apply(vec![ResourceWrite::new(key(0), json!({"n": 100}))])
        .expect("spec change");
    store
        .commit(store::Txn::default().with(store::Op::PutStatus {
            key: key(1),
            status: json!({"phase": "Ready"}),
            expect: Expect::Any,
        }))
        .expect("status change");
    store
        .commit(store::Txn::default().with(store::Op::DeleteResource {
            key: key(2),
            expect: Expect::Any,
        }))
        .expect("delete");
    let old_uid = store.get(&key(3)).expect("get").expect("exists").uid;
    store
        .commit(store::Txn::default().with(store::Op::DeleteResource {
            key: key(3),
            expect: Expect::Any,
        }))
        .expect("delete 3");
    store
        .apply(vec![
            ResourceWrite::new(key(3), json!({"n": 3})),
            ResourceWrite::new(key(9), json!({"n": 9})),
        ])
        .expect("recreate and add");

    let listed = shared(&store);
    assert_eq!(listed, fresh_listing(&store));
    let names: Vec<&str> = listed.iter().map(|r| r.key.name.as_str()).collect();
    assert_eq!(
        names,
        ["worker-000", "worker-001", "worker-003", "worker-009"]
    );
    assert_eq!(listed[0].spec, json!({"n": 100}));
    assert_eq!(listed[1].status, json!({"phase": "Ready"}));
    assert_ne!(listed[2].uid, old_uid, "a recreated resource is a new one");
    assert_eq!(store.list("Node").expect("list").items, listed);
}

#[test]
fn a_listing_after_many_changes_reads_them_all() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    nodes(&store, 600, 0);
    assert_eq!(shared(&store).len(), 600);
    // More changed rows than are read one by one: the changed ones come from one scan.
    nodes(&store, 600, 1000);
    let listed = shared(&store);
    assert_eq!(listed, fresh_listing(&store));
    assert!(
        listed
            .iter()
            .enumerate()
            .all(|(i, r)| r.spec == json!({"n": 1000 + i}))
    );
}
