//! The write path: applies each op of a transaction inside one SQLite transaction.

use std::collections::BTreeSet;

use rand::Rng;
use rand::rngs::StdRng;
use rusqlite::{Connection, params};

use super::codec::{from_ts, sql, to_i64, to_json, ts};
use super::read;
use crate::{
    AuditCursor, AuditWindow, Expect, InstanceRecord, JournalUpdate, LeaseState, NewEvent,
    NewJournalEntry, NewTaint, Op, OpResult, Resource, ResourceKey, ResourceWrite, Revision,
    StoreError,
};

type Res<T> = Result<T, StoreError>;

/// Everything an op needs besides the connection.
pub(crate) struct WriteCtx<'a> {
    /// The revision this transaction commits as, if it changes anything.
    pub rev: Revision,
    /// The store clock's time for this transaction, in micros.
    pub now: i64,
    /// Source of resource uids.
    pub rng: &'a mut StdRng,
    /// Set by any op that changed something.
    pub changed: bool,
}

/// Applies one op.
pub(crate) fn apply(conn: &Connection, ctx: &mut WriteCtx<'_>, op: Op) -> Res<OpResult> {
    match op {
        Op::PutResource(w) => put_resource(conn, ctx, w),
        Op::PutStatus {
            key,
            status,
            expect,
        } => put_status(conn, ctx, &key, status, expect),
        Op::DeleteResource { key, expect } => delete_resource(conn, ctx, &key, expect),
        Op::AddTaint(t) => add_taint(conn, ctx, t),
        Op::ClearTaint { id, by } => clear_taint(conn, ctx, id, &by),
        Op::AppendEvent(e) => append_event(conn, ctx, &e),
        Op::JournalBegin(j) => journal_begin(conn, ctx, &j),
        Op::JournalUpdate(u) => journal_update(conn, ctx, u),
        Op::PutInstance(i) => put_instance(conn, ctx, &i),
        Op::RemoveInstance { instance_id } => remove_instance(conn, ctx, &instance_id),
        Op::LeaseVmid { vmid, node } => lease_vmid(conn, ctx, vmid, &node),
        Op::LeaseFreeVmid {
            range,
            exclude,
            node,
        } => lease_free_vmid(conn, ctx, *range.start(), *range.end(), &exclude, &node),
        Op::SetLeaseState { vmid, state } => set_lease_state(conn, ctx, vmid, state),
        Op::ReleaseVmid { vmid } => release_vmid(conn, ctx, vmid),
        Op::SetAuditCursor(c) => set_audit_cursor(conn, ctx, &c),
        Op::SetAuditWindow(w) => set_audit_window(conn, ctx, &w),
    }
}

fn non_empty(value: &str, what: &'static str) -> Res<()> {
    if value.trim().is_empty() {
        Err(StoreError::InvalidInput {
            what,
            reason: "must not be empty".to_owned(),
        })
    } else {
        Ok(())
    }
}

fn check_expect(key: &ResourceKey, expect: Expect, actual: Option<Revision>) -> Res<()> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => actual.is_none(),
        Expect::Version(v) => actual == Some(v),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            key: key.clone(),
            expected: expect,
            actual,
        })
    }
}

/// A random (version 4) UUID.
fn new_uid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn put_resource(conn: &Connection, ctx: &mut WriteCtx<'_>, w: ResourceWrite) -> Res<OpResult> {
    non_empty(&w.key.kind, "resource kind")?;
    non_empty(&w.key.name, "resource name")?;
    let existing = read::resource(conn, &w.key)?;
    check_expect(
        &w.key,
        w.expect,
        existing.as_ref().map(|r| r.resource_version),
    )?;
    let Some(mut resource) = existing else {
        let uid = new_uid(ctx.rng);
        conn.prepare_cached(
            "INSERT INTO resources (kind, name, uid, labels, spec, status, generation,
                                    resource_version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'null', 1, ?6, ?7, ?7)",
        )
        .map_err(sql("insert resource"))?
        .execute(params![
            w.key.kind,
            w.key.name,
            uid,
            to_json(&w.labels, "labels")?,
            to_json(&w.spec, "spec")?,
            to_i64(ctx.rev, "revision")?,
            ctx.now,
        ])
        .map_err(sql("insert resource"))?;
        ctx.changed = true;
        let now = from_ts(ctx.now, "store clock")?;
        let resource = Resource {
            key: w.key,
            uid,
            labels: w.labels,
            spec: w.spec,
            status: serde_json::Value::Null,
            generation: 1,
            resource_version: ctx.rev,
            created_at: now,
            updated_at: now,
        };
        return Ok(OpResult::Resource {
            resource,
            changed: true,
        });
    };
    let spec_changed = resource.spec != w.spec;
    let labels_changed = resource.labels != w.labels;
    if !spec_changed && !labels_changed {
        return Ok(OpResult::Resource {
            resource,
            changed: false,
        });
    }
    if spec_changed {
        resource.generation += 1;
    }
    resource.spec = w.spec;
    resource.labels = w.labels;
    resource.resource_version = ctx.rev;
    resource.updated_at = from_ts(ctx.now, "store clock")?;
    conn.prepare_cached(
        "UPDATE resources SET labels = ?3, spec = ?4, generation = ?5, resource_version = ?6,
                              updated_at = ?7
         WHERE kind = ?1 AND name = ?2",
    )
    .map_err(sql("update resource"))?
    .execute(params![
        resource.key.kind,
        resource.key.name,
        to_json(&resource.labels, "labels")?,
        to_json(&resource.spec, "spec")?,
        to_i64(resource.generation, "generation")?,
        to_i64(ctx.rev, "revision")?,
        ctx.now,
    ])
    .map_err(sql("update resource"))?;
    ctx.changed = true;
    Ok(OpResult::Resource {
        resource,
        changed: true,
    })
}

fn put_status(
    conn: &Connection,
    ctx: &mut WriteCtx<'_>,
    key: &ResourceKey,
    status: serde_json::Value,
    expect: Expect,
) -> Res<OpResult> {
    let existing = read::resource(conn, key)?;
    check_expect(key, expect, existing.as_ref().map(|r| r.resource_version))?;
    let mut resource = existing.ok_or_else(|| StoreError::NotFound {
        entity: "resource",
        id: key.to_string(),
    })?;
    if resource.status == status {
        return Ok(OpResult::Resource {
            resource,
            changed: false,
        });
    }
    conn.prepare_cached(
        "UPDATE resources SET status = ?3, resource_version = ?4, updated_at = ?5
         WHERE kind = ?1 AND name = ?2",
    )
    .map_err(sql("update status"))?
    .execute(params![
        key.kind,
        key.name,
        to_json(&status, "status")?,
        to_i64(ctx.rev, "revision")?,
        ctx.now
    ])
    .map_err(sql("update status"))?;
    resource.status = status;
    resource.resource_version = ctx.rev;
    resource.updated_at = from_ts(ctx.now, "store clock")?;
    ctx.changed = true;
    Ok(OpResult::Resource {
        resource,
        changed: true,
    })
}

fn delete_resource(
    conn: &Connection,
    ctx: &mut WriteCtx<'_>,
    key: &ResourceKey,
    expect: Expect,
) -> Res<OpResult> {
    let existing = read::resource(conn, key)?;
    check_expect(key, expect, existing.as_ref().map(|r| r.resource_version))?;
    let resource = existing.ok_or_else(|| StoreError::NotFound {
        entity: "resource",
        id: key.to_string(),
    })?;
    conn.execute(
        "DELETE FROM resources WHERE kind = ?1 AND name = ?2",
        params![key.kind, key.name],
    )
    .map_err(sql("delete resource"))?;
    ctx.changed = true;
    Ok(OpResult::Deleted(resource))
}

fn add_taint(conn: &Connection, ctx: &mut WriteCtx<'_>, t: NewTaint) -> Res<OpResult> {
    non_empty(&t.node, "taint node")?;
    non_empty(&t.key, "taint key")?;
    let instance_id = match t.instance_id {
        Some(id) => Some(id),
        None => read::current_instance(conn, &t.node)?.map(|i| i.instance_id),
    };
    let created_at = ts(t.created_at);
    if let Some(taint) =
        read::duplicate_taint(conn, &t.node, instance_id.as_deref(), &t.key, created_at)?
    {
        return Ok(OpResult::Taint {
            taint,
            changed: false,
        });
    }
    conn.prepare_cached(
        "INSERT INTO taints (node, instance_id, key, source, severity, reason, evidence,
                             created_at, created_by, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .map_err(sql("insert taint"))?
    .execute(params![
        t.node,
        instance_id,
        t.key,
        t.source.as_str(),
        t.severity.as_str(),
        t.reason,
        to_json(&t.evidence, "taint evidence")?,
        created_at,
        t.created_by,
        t.expires_at.map(ts),
    ])
    .map_err(sql("insert taint"))?;
    let id = conn.last_insert_rowid();
    ctx.changed = true;
    let taint = read::taint(conn, id)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("taint {id} vanished after insert"),
    })?;
    Ok(OpResult::Taint {
        taint,
        changed: true,
    })
}

fn clear_taint(conn: &Connection, ctx: &mut WriteCtx<'_>, id: i64, by: &str) -> Res<OpResult> {
    non_empty(by, "taint cleared_by")?;
    let taint = read::taint(conn, id)?.ok_or_else(|| StoreError::NotFound {
        entity: "taint",
        id: id.to_string(),
    })?;
    if taint.cleared_at.is_some() {
        return Ok(OpResult::Taint {
            taint,
            changed: false,
        });
    }
    conn.execute(
        "UPDATE taints SET cleared_at = ?2, cleared_by = ?3 WHERE id = ?1",
        params![id, ctx.now, by],
    )
    .map_err(sql("clear taint"))?;
    ctx.changed = true;
    let taint = read::taint(conn, id)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("taint {id} vanished after clear"),
    })?;
    Ok(OpResult::Taint {
        taint,
        changed: true,
    })
}

fn append_event(conn: &Connection, ctx: &mut WriteCtx<'_>, e: &NewEvent) -> Res<OpResult> {
    non_empty(&e.kind, "event kind")?;
    conn.prepare_cached(
        "INSERT INTO events (at, node, kind, message, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(sql("append event"))?
    .execute(params![
        ts(e.at),
        e.node,
        e.kind,
        e.message,
        to_json(&e.data, "event data")?
    ])
    .map_err(sql("append event"))?;
    ctx.changed = true;
    Ok(OpResult::Event(conn.last_insert_rowid()))
}

fn journal_begin(conn: &Connection, ctx: &mut WriteCtx<'_>, j: &NewJournalEntry) -> Res<OpResult> {
    non_empty(&j.node, "journal node")?;
    non_empty(&j.action, "journal action")?;
    conn.prepare_cached(
        "INSERT INTO journal (node, action, vmid, pve_node, upid, state, detail, created_at,
                              updated_at)
         VALUES (?1, ?2, ?3, ?4, NULL, 'intent', ?5, ?6, ?6)",
    )
    .map_err(sql("begin journal entry"))?
    .execute(params![
        j.node,
        j.action,
        j.vmid,
        j.pve_node,
        to_json(&j.detail, "journal detail")?,
        ctx.now
    ])
    .map_err(sql("begin journal entry"))?;
    let id = conn.last_insert_rowid();
    ctx.changed = true;
    let entry = read::journal_entry(conn, id)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("journal entry {id} vanished after insert"),
    })?;
    Ok(OpResult::Journal(entry))
}

fn journal_update(conn: &Connection, ctx: &mut WriteCtx<'_>, u: JournalUpdate) -> Res<OpResult> {
    let entry = read::journal_entry(conn, u.id)?.ok_or_else(|| StoreError::NotFound {
        entity: "journal entry",
        id: u.id.to_string(),
    })?;
    if entry.state.is_final() {
        // Repeating the same completion (a retried write after a lost reply) is a no-op.
        let same = entry.state == u.state
            && u.upid
                .as_ref()
                .is_none_or(|x| entry.upid.as_ref() == Some(x))
            && u.detail.as_ref().is_none_or(|d| *d == entry.detail);
        if same {
            return Ok(OpResult::Journal(entry));
        }
        return Err(StoreError::InvalidTransition {
            id: u.id,
            from: entry.state,
            to: u.state,
        });
    }
    let detail = match &u.detail {
        Some(d) => to_json(d, "journal detail")?,
        None => to_json(&entry.detail, "journal detail")?,
    };
    conn.prepare_cached(
        "UPDATE journal SET state = ?2, upid = coalesce(?3, upid), detail = ?4, updated_at = ?5
         WHERE id = ?1",
    )
    .map_err(sql("update journal entry"))?
    .execute(params![u.id, u.state.as_str(), u.upid, detail, ctx.now])
    .map_err(sql("update journal entry"))?;
    ctx.changed = true;
    let entry = read::journal_entry(conn, u.id)?.ok_or_else(|| StoreError::Corrupt {
        what: format!("journal entry {} vanished after update", u.id),
    })?;
    Ok(OpResult::Journal(entry))
}

fn put_instance(conn: &Connection, ctx: &mut WriteCtx<'_>, i: &InstanceRecord) -> Res<OpResult> {
    non_empty(&i.instance_id, "instance id")?;
    non_empty(&i.node, "instance node")?;
    let existing_node: Option<String> = conn
        .query_row(
            "SELECT node FROM instances WHERE instance_id = ?1",
            params![i.instance_id],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(sql("read instance"))?;
    if let Some(node) = existing_node.filter(|n| *n != i.node) {
        return Err(StoreError::InvalidInput {
            what: "instance record",
            reason: format!(
                "instance {} belongs to node {node}, not {}",
                i.instance_id, i.node
            ),
        });
    }
    if i.current {
        conn.execute(
            "UPDATE instances SET current = 0
             WHERE node = ?1 AND current = 1 AND instance_id <> ?2",
            params![i.node, i.instance_id],
        )
        .map_err(sql("supersede instance"))?;
    }
    conn.prepare_cached(
        "INSERT INTO instances (instance_id, node, vmid, pve_node, name, smbios_uuid, spec_hash,
                                gold_digest, created_at, current)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (instance_id) DO UPDATE SET
            vmid = excluded.vmid, pve_node = excluded.pve_node, name = excluded.name,
            smbios_uuid = excluded.smbios_uuid, spec_hash = excluded.spec_hash,
            gold_digest = excluded.gold_digest, created_at = excluded.created_at,
            current = excluded.current",
    )
    .map_err(sql("put instance"))?
    .execute(params![
        i.instance_id,
        i.node,
        i.vmid,
        i.pve_node,
        i.name,
        i.smbios_uuid,
        i.spec_hash,
        i.gold_digest,
        ts(i.created_at),
        i.current,
    ])
    .map_err(sql("put instance"))?;
    ctx.changed = true;
    Ok(OpResult::Instance)
}

fn remove_instance(conn: &Connection, ctx: &mut WriteCtx<'_>, instance_id: &str) -> Res<OpResult> {
    let n = conn
        .execute(
            "DELETE FROM instances WHERE instance_id = ?1",
            params![instance_id],
        )
        .map_err(sql("remove instance"))?;
    if n == 0 {
        return Err(StoreError::NotFound {
            entity: "instance",
            id: instance_id.to_owned(),
        });
    }
    ctx.changed = true;
    Ok(OpResult::Instance)
}

fn insert_lease(conn: &Connection, ctx: &mut WriteCtx<'_>, vmid: u32, node: &str) -> Res<()> {
    conn.prepare_cached(
        "INSERT INTO vmid_leases (vmid, node, leased_at, state) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(sql("lease vmid"))?
    .execute(params![vmid, node, ctx.now, LeaseState::Reserved.as_str()])
    .map_err(sql("lease vmid"))?;
    ctx.changed = true;
    Ok(())
}

fn lease_vmid(conn: &Connection, ctx: &mut WriteCtx<'_>, vmid: u32, node: &str) -> Res<OpResult> {
    non_empty(node, "lease node")?;
    match read::lease(conn, vmid)? {
        Some(lease) if lease.node == node => Ok(OpResult::Vmid(vmid)),
        Some(lease) => Err(StoreError::VmidLeased {
            vmid,
            holder: lease.node,
        }),
        None => {
            insert_lease(conn, ctx, vmid, node)?;
            Ok(OpResult::Vmid(vmid))
        }
    }
}

fn lease_free_vmid(
    conn: &Connection,
    ctx: &mut WriteCtx<'_>,
    start: u32,
    end: u32,
    exclude: &[u32],
    node: &str,
) -> Res<OpResult> {
    non_empty(node, "lease node")?;
    if start > end {
        return Err(StoreError::InvalidInput {
            what: "vmid range",
            reason: format!("{start}..={end} is empty"),
        });
    }
    let mut taken: BTreeSet<u32> = exclude.iter().copied().collect();
    {
        let mut stmt = conn
            .prepare_cached("SELECT vmid FROM vmid_leases WHERE vmid BETWEEN ?1 AND ?2")
            .map_err(sql("scan vmid leases"))?;
        let rows = stmt
            .query_map(params![start, end], |r| r.get::<_, u32>(0))
            .map_err(sql("scan vmid leases"))?;
        for vmid in rows {
            taken.insert(vmid.map_err(sql("scan vmid leases"))?);
        }
    }
    let free = (start..=end)
        .find(|v| !taken.contains(v))
        .ok_or(StoreError::VmidRangeExhausted { start, end })?;
    insert_lease(conn, ctx, free, node)?;
    Ok(OpResult::Vmid(free))
}

fn set_lease_state(
    conn: &Connection,
    ctx: &mut WriteCtx<'_>,
    vmid: u32,
    state: LeaseState,
) -> Res<OpResult> {
    let lease = read::lease(conn, vmid)?.ok_or_else(|| StoreError::NotFound {
        entity: "vmid lease",
        id: vmid.to_string(),
    })?;
    if lease.state != state {
        conn.execute(
            "UPDATE vmid_leases SET state = ?2 WHERE vmid = ?1",
            params![vmid, state.as_str()],
        )
        .map_err(sql("set lease state"))?;
        ctx.changed = true;
    }
    Ok(OpResult::Vmid(vmid))
}

fn release_vmid(conn: &Connection, ctx: &mut WriteCtx<'_>, vmid: u32) -> Res<OpResult> {
    let n = conn
        .execute("DELETE FROM vmid_leases WHERE vmid = ?1", params![vmid])
        .map_err(sql("release vmid"))?;
    if n == 0 {
        return Err(StoreError::NotFound {
            entity: "vmid lease",
            id: vmid.to_string(),
        });
    }
    ctx.changed = true;
    Ok(OpResult::Vmid(vmid))
}

fn set_audit_cursor(conn: &Connection, ctx: &mut WriteCtx<'_>, c: &AuditCursor) -> Res<OpResult> {
    non_empty(&c.source, "audit source")?;
    if read::audit_cursor(conn, &c.source)?.is_some_and(|old| old.position == c.position) {
        return Ok(OpResult::Cursor);
    }
    conn.prepare_cached(
        "INSERT INTO audit_cursors (source, position, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (source) DO UPDATE SET position = excluded.position,
                                            updated_at = excluded.updated_at",
    )
    .map_err(sql("set audit cursor"))?
    .execute(params![
        c.source,
        to_json(&c.position, "audit cursor")?,
        ctx.now
    ])
    .map_err(sql("set audit cursor"))?;
    ctx.changed = true;
    Ok(OpResult::Cursor)
}

fn set_audit_window(conn: &Connection, ctx: &mut WriteCtx<'_>, w: &AuditWindow) -> Res<OpResult> {
    non_empty(&w.scope, "audit window scope")?;
    non_empty(&w.policy, "audit window policy")?;
    non_empty(&w.node, "audit window node")?;
    if w.is_empty() {
        let n = conn
            .prepare_cached(
                "DELETE FROM audit_windows WHERE scope = ?1 AND policy = ?2 AND node = ?3",
            )
            .map_err(sql("delete audit window"))?
            .execute(params![w.scope, w.policy, w.node])
            .map_err(sql("delete audit window"))?;
        ctx.changed |= n > 0;
        return Ok(OpResult::Window);
    }
    if !w.calls.is_array() {
        return Err(StoreError::InvalidInput {
            what: "audit window calls",
            reason: "must be a JSON array".to_owned(),
        });
    }
    conn.prepare_cached(
        "INSERT INTO audit_windows (scope, policy, node, fingerprint, calls, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (scope, policy, node) DO UPDATE SET fingerprint = excluded.fingerprint,
                                                         calls = excluded.calls,
                                                         updated_at = excluded.updated_at",
    )
    .map_err(sql("set audit window"))?
    .execute(params![
        w.scope,
        w.policy,
        w.node,
        w.fingerprint,
        to_json(&w.calls, "audit window calls")?,
        ctx.now
    ])
    .map_err(sql("set audit window"))?;
    ctx.changed = true;
    Ok(OpResult::Window)
}
