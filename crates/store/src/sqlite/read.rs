//! Queries and row decoding, shared by reads and by the write path.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::codec::{from_json, from_opt_ts, from_ts, parse_enum, sql, to_i64, to_u64, ts};
use crate::{
    AuditCursor, AuditWindow, CursorPosition, Event, EventQuery, InstanceRecord, JournalEntry,
    Resource, ResourceKey, Revision, StoreError, Taint, VmidLease,
};

type Res<T> = Result<T, StoreError>;

/// Reads one column, naming the table in the error.
fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize, op: &'static str) -> Res<T> {
    row.get(idx).map_err(sql(op))
}

/// Runs a query and decodes every row.
fn collect<T>(
    conn: &Connection,
    query: &str,
    params: &[&dyn rusqlite::ToSql],
    op: &'static str,
    decode: fn(&Row<'_>) -> Res<T>,
) -> Res<Vec<T>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql(op))?;
    let mut rows = stmt.query(params).map_err(sql(op))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql(op))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Runs a query expected to return at most one row.
fn first<T>(
    conn: &Connection,
    query: &str,
    params: &[&dyn rusqlite::ToSql],
    op: &'static str,
    decode: fn(&Row<'_>) -> Res<T>,
) -> Res<Option<T>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql(op))?;
    let mut rows = stmt.query(params).map_err(sql(op))?;
    match rows.next().map_err(sql(op))? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// The store revision.
pub(crate) fn revision(conn: &Connection) -> Res<Revision> {
    let rev = conn
        .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
        .map_err(sql("read revision"))?
        .ok_or_else(|| StoreError::Corrupt {
            what: "meta: revision row missing".to_owned(),
        })?;
    to_u64(rev, "meta revision")
}

const RESOURCE_COLS: &str = "kind, name, uid, labels, spec, status, generation, \
                             resource_version, created_at, updated_at";

/// Decodes a JSON column without copying it out of SQLite; the error context is only built on
/// failure (this is the hot path of `list`).
fn json_col<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
    op: &'static str,
    what: impl Fn() -> String,
) -> Res<T> {
    let text = row
        .get_ref(idx)
        .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
        .map_err(sql(op))?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!("{}: {e}", what()),
    })
}

fn decode_resource(row: &Row<'_>) -> Res<Resource> {
    const OP: &str = "read resource";
    let key = ResourceKey::new(col::<String>(row, 0, OP)?, col::<String>(row, 1, OP)?);
    let what = || format!("resource {key}");
    Ok(Resource {
        uid: col(row, 2, OP)?,
        labels: json_col(row, 3, OP, what)?,
        spec: json_col(row, 4, OP, what)?,
        status: json_col(row, 5, OP, what)?,
        generation: to_u64(col(row, 6, OP)?, "resource generation")?,
        resource_version: to_u64(col(row, 7, OP)?, "resource version")?,
        created_at: from_ts(col(row, 8, OP)?, "resource created_at")?,
        updated_at: from_ts(col(row, 9, OP)?, "resource updated_at")?,
        key,
    })
}

/// One resource.
pub(crate) fn resource(conn: &Connection, key: &ResourceKey) -> Res<Option<Resource>> {
    first(
        conn,
        &format!("SELECT {RESOURCE_COLS} FROM resources WHERE kind = ?1 AND name = ?2"),
        &[&key.kind, &key.name],
        "read resource",
        decode_resource,
    )
}

/// Decoded resources of one kind by name, reused by `list` while unchanged.
#[derive(Default)]
pub(crate) struct KindCache {
    /// By name: the listing that last saw it, and the decoded resource.
    entries: HashMap<String, (u64, Arc<Resource>)>,
    /// Counts listings (marks what a listing saw, so deleted resources can be swept).
    listings: u64,
}

/// Misses up to which a listing reads the changed rows one by one; above it, one scan.
const POINT_READS_MAX: usize = 256;

/// Every resource of a kind, by name, reusing the decoded copies in `cache` whose
/// `resource_version` is unchanged: decoding JSON specs and statuses is most of a listing's
/// cost, and in a steady state almost nothing changes between two listings. Versions come from
/// the covering index `resources_versions` (no spec or status is read for a hit); changed rows
/// are read by name, or in one scan when many changed. Resources no longer listed leave the
/// cache. Runs inside the caller's read transaction, so all of it is one snapshot.
pub(crate) fn resources_cached(
    conn: &Connection,
    kind: &str,
    cache: &mut KindCache,
) -> Res<Vec<Arc<Resource>>> {
    const OP: &str = "list resources";
    cache.listings += 1;
    let mark = cache.listings;
    let mut versions = conn
        .prepare_cached(
            "SELECT name, resource_version FROM resources INDEXED BY resources_versions \
             WHERE kind = ?1 ORDER BY name",
        )
        .map_err(sql(OP))?;
    let mut rows = versions.query([kind]).map_err(sql(OP))?;
    // Each listed resource: the cached one when its version is unchanged, else its name.
    let mut listed: Vec<Result<Arc<Resource>, String>> = Vec::with_capacity(cache.entries.len());
    let mut misses = 0usize;
    while let Some(row) = rows.next().map_err(sql(OP))? {
        let name = row
            .get_ref(0)
            .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
            .map_err(sql(OP))?;
        let version = to_u64(col(row, 1, OP)?, "resource version")?;
        listed.push(match cache.entries.get_mut(name) {
            Some((seen, hit)) if hit.resource_version == version => {
                *seen = mark;
                Ok(Arc::clone(hit))
            }
            _ => {
                misses += 1;
                Err(name.to_owned())
            }
        });
    }
    drop(rows);
    let mut changed: HashMap<String, Resource> = HashMap::with_capacity(misses);
    if misses > POINT_READS_MAX {
        let wanted: std::collections::HashSet<&str> = listed
            .iter()
            .filter_map(|l| l.as_ref().err().map(String::as_str))
            .collect();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {RESOURCE_COLS} FROM resources WHERE kind = ?1 ORDER BY name"
            ))
            .map_err(sql(OP))?;
        let mut rows = stmt.query([kind]).map_err(sql(OP))?;
        while let Some(row) = rows.next().map_err(sql(OP))? {
            let name = row
                .get_ref(1)
                .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
                .map_err(sql(OP))?;
            if wanted.contains(name) {
                let r = decode_resource(row)?;
                changed.insert(r.key.name.clone(), r);
            }
        }
    } else {
        for name in listed.iter().filter_map(|l| l.as_ref().err()) {
            if let Some(r) = resource(conn, &ResourceKey::new(kind, name.as_str()))? {
                changed.insert(name.clone(), r);
            }
        }
    }
    let mut out = Vec::with_capacity(listed.len());
    for l in listed {
        let resource = match l {
            Ok(hit) => hit,
            Err(name) => {
                let r = changed.remove(&name).ok_or_else(|| StoreError::Corrupt {
                    what: format!("resource {kind}/{name} listed but not readable"),
                })?;
                let r = Arc::new(r);
                cache.entries.insert(name, (mark, Arc::clone(&r)));
                r
            }
        };
        out.push(resource);
    }
    if cache.entries.len() != out.len() {
        cache.entries.retain(|_, (seen, _)| *seen == mark);
    }
    Ok(out)
}

const TAINT_COLS: &str = "id, node, instance_id, key, source, severity, reason, evidence, \
                          created_at, created_by, expires_at, cleared_at, cleared_by";

fn decode_taint(row: &Row<'_>) -> Res<Taint> {
    const OP: &str = "read taint";
    let id: i64 = col(row, 0, OP)?;
    let what = format!("taint {id}");
    let source: String = col(row, 4, OP)?;
    let severity: String = col(row, 5, OP)?;
    let evidence: String = col(row, 7, OP)?;
    Ok(Taint {
        id,
        node: col(row, 1, OP)?,
        instance_id: col(row, 2, OP)?,
        key: col(row, 3, OP)?,
        source: parse_enum(&source, &what)?,
        severity: parse_enum(&severity, &what)?,
        reason: col(row, 6, OP)?,
        evidence: from_json(&evidence, &what)?,
        created_at: from_ts(col(row, 8, OP)?, &what)?,
        created_by: col(row, 9, OP)?,
        expires_at: from_opt_ts(col(row, 10, OP)?, &what)?,
        cleared_at: from_opt_ts(col(row, 11, OP)?, &what)?,
        cleared_by: col(row, 12, OP)?,
    })
}

/// One taint.
pub(crate) fn taint(conn: &Connection, id: i64) -> Res<Option<Taint>> {
    first(
        conn,
        &format!("SELECT {TAINT_COLS} FROM taints WHERE id = ?1"),
        &[&id],
        "read taint",
        decode_taint,
    )
}

/// Taints active at `now_micros`.
pub(crate) fn active_taints(
    conn: &Connection,
    node: Option<&str>,
    now_micros: i64,
) -> Res<Vec<Taint>> {
    collect(
        conn,
        &format!(
            "SELECT {TAINT_COLS} FROM taints
             WHERE cleared_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)
               AND (?2 IS NULL OR node = ?2)
             ORDER BY id"
        ),
        &[&now_micros, &node],
        "list active taints",
        decode_taint,
    )
}

/// Every taint.
pub(crate) fn taint_history(conn: &Connection, node: Option<&str>) -> Res<Vec<Taint>> {
    collect(
        conn,
        &format!("SELECT {TAINT_COLS} FROM taints WHERE (?1 IS NULL OR node = ?1) ORDER BY id"),
        &[&node],
        "list taint history",
        decode_taint,
    )
}

/// The active taint a new one would duplicate.
pub(crate) fn duplicate_taint(
    conn: &Connection,
    node: &str,
    instance_id: Option<&str>,
    key: &str,
    at_micros: i64,
) -> Res<Option<Taint>> {
    first(
        conn,
        &format!(
            "SELECT {TAINT_COLS} FROM taints
             WHERE node = ?1 AND instance_id IS ?2 AND key = ?3 AND cleared_at IS NULL
               AND (expires_at IS NULL OR expires_at > ?4)
             ORDER BY id LIMIT 1"
        ),
        &[&node, &instance_id, &key, &at_micros],
        "find duplicate taint",
        decode_taint,
    )
}

fn decode_event(row: &Row<'_>) -> Res<Event> {
    const OP: &str = "read event";
    let id: i64 = col(row, 0, OP)?;
    Ok(Event {
        id,
        at: from_ts(col(row, 1, OP)?, "event at")?,
        node: col(row, 2, OP)?,
        kind: col(row, 3, OP)?,
        message: col(row, 4, OP)?,
        data: json_col(row, 5, OP, || format!("event {id}"))?,
    })
}

/// Events matching a query, oldest first.
pub(crate) fn events(conn: &Connection, q: &EventQuery) -> Res<Vec<Event>> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(node) = &q.node {
        clauses.push("node = ?");
        args.push(SqlValue::Text(node.clone()));
    }
    if let Some(kind) = &q.kind {
        clauses.push("kind = ?");
        args.push(SqlValue::Text(kind.clone()));
    }
    if let Some(since) = q.since {
        clauses.push("at >= ?");
        args.push(SqlValue::Integer(ts(since)));
    }
    if let Some(until) = q.until {
        clauses.push("at < ?");
        args.push(SqlValue::Integer(ts(until)));
    }
    if let Some(after) = q.after_id {
        clauses.push("id > ?");
        args.push(SqlValue::Integer(after));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let (order, limit) = match q.limit {
        Some(n) => (
            "DESC",
            format!("LIMIT {}", i64::try_from(n).unwrap_or(i64::MAX)),
        ),
        None => ("ASC", String::new()),
    };
    let query = format!(
        "SELECT id, at, node, kind, message, data FROM events {filter} ORDER BY id {order} {limit}"
    );
    const OP: &str = "query events";
    let mut stmt = conn.prepare_cached(&query).map_err(sql(OP))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(sql(OP))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql(OP))? {
        out.push(decode_event(row)?);
    }
    if q.limit.is_some() {
        out.reverse();
    }
    Ok(out)
}

const JOURNAL_COLS: &str =
    "id, node, action, vmid, pve_node, upid, state, detail, created_at, updated_at";

fn decode_journal(row: &Row<'_>) -> Res<JournalEntry> {
    const OP: &str = "read journal";
    let id: i64 = col(row, 0, OP)?;
    let what = format!("journal entry {id}");
    let state: String = col(row, 6, OP)?;
    let detail: String = col(row, 7, OP)?;
    Ok(JournalEntry {
        id,
        node: col(row, 1, OP)?,
        action: col(row, 2, OP)?,
        vmid: col(row, 3, OP)?,
        pve_node: col(row, 4, OP)?,
        upid: col(row, 5, OP)?,
        state: parse_enum(&state, &what)?,
        detail: from_json(&detail, &what)?,
        created_at: from_ts(col(row, 8, OP)?, &what)?,
        updated_at: from_ts(col(row, 9, OP)?, &what)?,
    })
}

/// One journal entry.
pub(crate) fn journal_entry(conn: &Connection, id: i64) -> Res<Option<JournalEntry>> {
    first(
        conn,
        &format!("SELECT {JOURNAL_COLS} FROM journal WHERE id = ?1"),
        &[&id],
        "read journal entry",
        decode_journal,
    )
}

/// Entries still in `intent`.
pub(crate) fn journal_in_flight(conn: &Connection) -> Res<Vec<JournalEntry>> {
    collect(
        conn,
        &format!("SELECT {JOURNAL_COLS} FROM journal WHERE state = 'intent' ORDER BY id"),
        &[],
        "list in-flight journal",
        decode_journal,
    )
}

/// One node's journal.
pub(crate) fn journal_for_node(conn: &Connection, node: &str) -> Res<Vec<JournalEntry>> {
    collect(
        conn,
        &format!("SELECT {JOURNAL_COLS} FROM journal WHERE node = ?1 ORDER BY id"),
        &[&node],
        "list node journal",
        decode_journal,
    )
}

const INSTANCE_COLS: &str = "instance_id, node, vmid, pve_node, name, smbios_uuid, spec_hash, \
                             gold_digest, created_at, current";

fn decode_instance(row: &Row<'_>) -> Res<InstanceRecord> {
    const OP: &str = "read instance";
    let instance_id: String = col(row, 0, OP)?;
    let what = format!("instance {instance_id}");
    Ok(InstanceRecord {
        node: col(row, 1, OP)?,
        vmid: col(row, 2, OP)?,
        pve_node: col(row, 3, OP)?,
        name: col(row, 4, OP)?,
        smbios_uuid: col(row, 5, OP)?,
        spec_hash: col(row, 6, OP)?,
        gold_digest: col(row, 7, OP)?,
        created_at: from_ts(col(row, 8, OP)?, &what)?,
        current: col(row, 9, OP)?,
        instance_id,
    })
}

/// A node's current instance.
pub(crate) fn current_instance(conn: &Connection, node: &str) -> Res<Option<InstanceRecord>> {
    first(
        conn,
        &format!("SELECT {INSTANCE_COLS} FROM instances WHERE node = ?1 AND current = 1"),
        &[&node],
        "read current instance",
        decode_instance,
    )
}

/// Instance records.
pub(crate) fn instances(conn: &Connection, node: Option<&str>) -> Res<Vec<InstanceRecord>> {
    collect(
        conn,
        &format!(
            "SELECT {INSTANCE_COLS} FROM instances WHERE (?1 IS NULL OR node = ?1)
             ORDER BY node, created_at, instance_id"
        ),
        &[&node],
        "list instances",
        decode_instance,
    )
}

fn decode_lease(row: &Row<'_>) -> Res<VmidLease> {
    const OP: &str = "read vmid lease";
    let vmid: u32 = col(row, 0, OP)?;
    let what = format!("vmid lease {vmid}");
    let state: String = col(row, 3, OP)?;
    Ok(VmidLease {
        vmid,
        node: col(row, 1, OP)?,
        leased_at: from_ts(col(row, 2, OP)?, &what)?,
        state: parse_enum(&state, &what)?,
    })
}

/// One lease.
pub(crate) fn lease(conn: &Connection, vmid: u32) -> Res<Option<VmidLease>> {
    first(
        conn,
        "SELECT vmid, node, leased_at, state FROM vmid_leases WHERE vmid = ?1",
        &[&vmid],
        "read vmid lease",
        decode_lease,
    )
}

/// Every lease.
pub(crate) fn leases(conn: &Connection) -> Res<Vec<VmidLease>> {
    collect(
        conn,
        "SELECT vmid, node, leased_at, state FROM vmid_leases ORDER BY vmid",
        &[],
        "list vmid leases",
        decode_lease,
    )
}

fn decode_cursor(row: &Row<'_>) -> Res<AuditCursor> {
    const OP: &str = "read audit cursor";
    let source: String = col(row, 0, OP)?;
    let what = format!("audit cursor {source}");
    let position: String = col(row, 1, OP)?;
    let position: CursorPosition = from_json(&position, &what)?;
    Ok(AuditCursor {
        position,
        updated_at: Some(from_ts(col(row, 2, OP)?, &what)?),
        source,
    })
}

/// One audit cursor.
pub(crate) fn audit_cursor(conn: &Connection, source: &str) -> Res<Option<AuditCursor>> {
    first(
        conn,
        "SELECT source, position, updated_at FROM audit_cursors WHERE source = ?1",
        &[&source],
        "read audit cursor",
        decode_cursor,
    )
}

fn decode_window(row: &Row<'_>) -> Res<AuditWindow> {
    const OP: &str = "read audit window";
    let scope: String = col(row, 0, OP)?;
    let policy: String = col(row, 1, OP)?;
    let node: String = col(row, 2, OP)?;
    let what = format!("audit window {scope}/{policy}/{node}");
    let calls: String = col(row, 4, OP)?;
    Ok(AuditWindow {
        fingerprint: col(row, 3, OP)?,
        calls: from_json(&calls, &what)?,
        updated_at: Some(from_ts(col(row, 5, OP)?, &what)?),
        scope,
        policy,
        node,
    })
}

/// The audit windows of one scope, ordered by policy then node.
pub(crate) fn audit_windows(conn: &Connection, scope: &str) -> Res<Vec<AuditWindow>> {
    collect(
        conn,
        "SELECT scope, policy, node, fingerprint, calls, updated_at FROM audit_windows
         WHERE scope = ?1 ORDER BY policy, node",
        &[&scope],
        "list audit windows",
        decode_window,
    )
}

/// Sets the revision (inside the write transaction).
pub(crate) fn set_revision(conn: &Connection, rev: Revision) -> Res<()> {
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'revision'",
        params![to_i64(rev, "revision")?],
    )
    .map_err(sql("write revision"))?;
    Ok(())
}
