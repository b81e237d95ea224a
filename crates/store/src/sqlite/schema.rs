//! The schema, its numbered migrations and the per-connection settings.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::codec::sql;
use crate::StoreError;

/// Migration steps, applied in order, each in its own transaction. Never edit a released step:
/// append a new one.
const MIGRATIONS: &[(u32, &str)] = &[(1, V1), (2, V2), (3, V3)];

/// The newest schema version this build knows.
pub(crate) const LATEST: u32 = 3;

/// Version 3: the audit windows (the calls each TaintPolicy has counted on each node), written
/// in the same transaction as the audit cursors so that a restart resumes them exactly.
const V3: &str = r#"
CREATE TABLE audit_windows (
    scope       TEXT NOT NULL,
    policy      TEXT NOT NULL,
    node        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    calls       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, policy, node)
) WITHOUT ROWID;
"#;

/// Version 2: a covering index of every resource's version, so a listing learns what changed
/// without reading the (large, often overflowing) spec and status of every row.
const V2: &str = r#"
CREATE INDEX resources_versions ON resources (kind, name, resource_version);
"#;

const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('revision', 0);

CREATE TABLE resources (
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    uid              TEXT NOT NULL UNIQUE,
    labels           TEXT NOT NULL,
    spec             TEXT NOT NULL,
    status           TEXT NOT NULL,
    generation       INTEGER NOT NULL,
    resource_version INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    node        TEXT NOT NULL,
    vmid        INTEGER NOT NULL,
    pve_node    TEXT NOT NULL,
    name        TEXT NOT NULL,
    smbios_uuid TEXT NOT NULL,
    spec_hash   TEXT NOT NULL,
    gold_digest TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    current     INTEGER NOT NULL CHECK (current IN (0, 1))
) WITHOUT ROWID;
CREATE UNIQUE INDEX instances_one_current ON instances (node) WHERE current = 1;
CREATE INDEX instances_by_node ON instances (node, created_at);

CREATE TABLE taints (
    id          INTEGER PRIMARY KEY,
    node        TEXT NOT NULL,
    instance_id TEXT,
    key         TEXT NOT NULL,
    source      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  INTEGER,
    cleared_at  INTEGER,
    cleared_by  TEXT,
    CHECK ((cleared_at IS NULL) = (cleared_by IS NULL))
);
CREATE INDEX taints_uncleared ON taints (node) WHERE cleared_at IS NULL;
CREATE INDEX taints_by_node ON taints (node, id);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    node    TEXT,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX events_by_at ON events (at);
CREATE INDEX events_by_node ON events (node, at);
CREATE INDEX events_by_kind ON events (kind, at);

CREATE TABLE journal (
    id         INTEGER PRIMARY KEY,
    node       TEXT NOT NULL,
    action     TEXT NOT NULL,
    vmid       INTEGER,
    pve_node   TEXT,
    upid       TEXT,
    state      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX journal_in_flight ON journal (id) WHERE state = 'intent';
CREATE INDEX journal_by_node ON journal (node, id);

CREATE TABLE vmid_leases (
    vmid      INTEGER PRIMARY KEY,
    node      TEXT NOT NULL,
    leased_at INTEGER NOT NULL,
    state     TEXT NOT NULL
);

CREATE TABLE audit_cursors (
    source     TEXT PRIMARY KEY,
    position   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Settings every connection gets: durability, waiting on locks, referential integrity.
pub(crate) fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout)
        .map_err(sql("set busy_timeout"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql("set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql("set foreign_keys=ON"))?;
    Ok(())
}

/// Switches the database to WAL (a persistent property of the file) and checks it took.
pub(crate) fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql("set journal_mode=WAL"))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::InvalidInput {
            what: "database",
            reason: format!("journal_mode is {mode:?}, WAL is required (in-memory database?)"),
        })
    }
}

/// Brings the schema up to [`LATEST`], refusing databases from a newer build.
pub(crate) fn migrate(conn: &mut Connection, now_micros: i64) -> Result<u32, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(sql("create schema_version"))?;
    let current: u32 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| {
            r.get::<_, Option<u32>>(0)
        })
        .optional()
        .map_err(sql("read schema_version"))?
        .flatten()
        .unwrap_or(0);
    if current > LATEST {
        return Err(StoreError::NewerSchema {
            found: current,
            supported: LATEST,
        });
    }
    for &(version, step) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let migration = |source| StoreError::Migration { version, source };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(migration)?;
        tx.execute_batch(step).map_err(migration)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![version, now_micros],
        )
        .map_err(migration)?;
        tx.commit().map_err(migration)?;
        tracing::info!(version, "store schema migrated");
    }
    Ok(LATEST)
}
