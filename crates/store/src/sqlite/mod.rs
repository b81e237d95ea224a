//! The SQLite backend: one writer connection, a small pool of reader connections, WAL.

mod codec;
mod read;
mod schema;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::watch;

use self::codec::{sql, to_i64, ts};
use crate::{
    AuditCursor, AuditWindow, Clock, Event, EventQuery, EventRetention, InstanceRecord,
    JournalEntry, Listing, Resource, ResourceKey, Revision, SharedListing, Store, StoreError,
    SystemClock, Taint, Txn, TxnOutcome, VmidLease,
};

/// How to open a [`SqliteStore`].
#[derive(Clone)]
pub struct SqliteOptions {
    /// How long a connection waits for a lock held by another connection or process.
    pub busy_timeout: Duration,
    /// The clock for store-written timestamps.
    pub clock: Arc<dyn Clock>,
    /// Reader connections kept open for reuse.
    pub max_idle_readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            max_idle_readers: 4,
        }
    }
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("busy_timeout", &self.busy_timeout)
            .field("max_idle_readers", &self.max_idle_readers)
            .finish_non_exhaustive()
    }
}

struct Writer {
    conn: Connection,
    rng: StdRng,
}

/// The embedded default [`Store`]: a SQLite database file in WAL mode with
/// `synchronous=FULL`, so a commit that returned `Ok` survives a crash or power loss.
///
/// Change notifications are in-process: another process writing the same file does not wake
/// this store's subscribers (the daemon is the only writer; the CLI goes through its API).
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    notify: watch::Sender<Revision>,
    /// Decoded resources by kind and name, reused by `list` while unchanged (see
    /// [`read::resources_cached`]).
    list_cache: Mutex<HashMap<String, read::KindCache>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Retention spares each node's newest event of every kind.
const NOT_NEWEST_OF_KIND: &str =
    "id NOT IN (SELECT max(id) FROM events GROUP BY coalesce(node, ''), kind)";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves no open transaction behind (rusqlite rolls back on
    // drop), so the connection is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options, and migrates it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    ///
    /// # Errors
    ///
    /// [`StoreError::NewerSchema`] if the file was written by a newer build;
    /// [`StoreError::Open`] if the file cannot be opened; [`StoreError::Migration`] if a
    /// migration step fails (the file stays at the last completed version).
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        schema::configure(&conn, options.busy_timeout)?;
        schema::enable_wal(&conn)?;
        schema::migrate(&mut conn, ts(options.clock.now()))?;
        let revision = read::revision(&conn)?;
        tracing::debug!(path = %path.display(), revision, "store opened");
        let (notify, _) = watch::channel(revision);
        Ok(Self {
            path,
            writer: Mutex::new(Writer {
                conn,
                rng: StdRng::from_os_rng(),
            }),
            readers: Mutex::new(Vec::new()),
            notify,
            list_cache: Mutex::new(HashMap::new()),
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the file (after migration, always the newest this build knows).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
                .map_err(sql("read schema_version"))
        })
    }

    /// Runs SQLite's `PRAGMA integrity_check`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] listing the problems SQLite found.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let problems: Vec<String> = self.read(|conn| {
            let mut stmt = conn
                .prepare("PRAGMA integrity_check")
                .map_err(sql("integrity_check"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql("integrity_check"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("integrity_check"))
        })?;
        if problems.len() == 1 && problems[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                what: format!("integrity_check: {}", problems.join("; ")),
            })
        }
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        schema::configure(&conn, self.options.busy_timeout)?;
        conn.pragma_update(None, "query_only", "ON")
            .map_err(sql("set query_only"))?;
        Ok(conn)
    }

    /// Runs `f` in a read transaction (one consistent snapshot) on a pooled reader connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = lock(&self.readers).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = {
            let tx = conn.transaction().map_err(sql("begin read"))?;
            let out = f(&tx);
            tx.finish().map_err(sql("end read"))?;
            out
        };
        let mut readers = lock(&self.readers);
        if readers.len() < self.options.max_idle_readers {
            readers.push(conn);
        }
        result
    }

    /// Runs `f` in an immediate write transaction; commits, bumps the revision and notifies if
    /// `f` reports a change, rolls back otherwise.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection, &mut write::WriteCtx<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, Revision, bool), StoreError> {
        let mut guard = lock(&self.writer);
        let Writer { conn, rng } = &mut *guard;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin write"))?;
        let current = read::revision(&tx)?;
        let mut ctx = write::WriteCtx {
            rev: current + 1,
            now: ts(self.options.clock.now()),
            rng,
            changed: false,
        };
        let out = f(&tx, &mut ctx)?;
        if !ctx.changed {
            tx.rollback().map_err(sql("rollback unchanged write"))?;
            return Ok((out, current, false));
        }
        read::set_revision(&tx, ctx.rev)?;
        tx.commit().map_err(sql("commit"))?;
        let rev = ctx.rev;
        self.notify.send_if_modified(|seen| {
            if rev > *seen {
                *seen = rev;
                true
            } else {
                false
            }
        });
        Ok((out, rev, true))
    }
}

impl Store for SqliteStore {
    fn commit(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let (results, revision, changed) = self.write(|conn, ctx| {
            txn.ops
                .into_iter()
                .map(|op| write::apply(conn, ctx, op))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(TxnOutcome {
            revision,
            changed,
            results,
        })
    }

    fn revision(&self) -> Result<Revision, StoreError> {
        self.read(read::revision)
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }

    fn get(&self, key: &ResourceKey) -> Result<Option<Resource>, StoreError> {
        self.read(|conn| read::resource(conn, key))
    }

    fn list(&self, kind: &str) -> Result<Listing, StoreError> {
        let shared = self.list_shared(kind)?;
        Ok(Listing {
            revision: shared.revision,
            items: shared.items.into_iter().map(Arc::unwrap_or_clone).collect(),
        })
    }

    fn list_shared(&self, kind: &str) -> Result<SharedListing, StoreError> {
        let mut caches = lock(&self.list_cache);
        let cache = caches.entry(kind.to_owned()).or_default();
        self.read(|conn| {
            Ok(SharedListing {
                revision: read::revision(conn)?,
                items: read::resources_cached(conn, kind, cache)?,
            })
        })
    }

    fn active_taints(
        &self,
        node: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Taint>, StoreError> {
        self.read(|conn| read::active_taints(conn, node, ts(now)))
    }

    fn taint_history(&self, node: Option<&str>) -> Result<Vec<Taint>, StoreError> {
        self.read(|conn| read::taint_history(conn, node))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| read::events(conn, query))
    }

    fn prune_events(
        &self,
        retention: &EventRetention,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (removed, _, _) = self.write(|conn, ctx| {
            let mut removed = 0usize;
            if let Some(age) = retention.max_age {
                let age =
                    chrono::Duration::from_std(age).map_err(|e| StoreError::InvalidInput {
                        what: "event retention max_age",
                        reason: e.to_string(),
                    })?;
                let cutoff = now
                    .checked_sub_signed(age)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                removed += conn
                    .execute(
                        &format!("DELETE FROM events WHERE at < ?1 AND {NOT_NEWEST_OF_KIND}"),
                        params![ts(cutoff)],
                    )
                    .map_err(sql("prune events by age"))?;
            }
            if let Some(keep) = retention.max_count {
                removed += conn
                    .execute(
                        &format!(
                            "DELETE FROM events WHERE id <= (
                                 SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1)
                             AND {NOT_NEWEST_OF_KIND}"
                        ),
                        params![to_i64(keep, "event retention max_count")?],
                    )
                    .map_err(sql("prune events by count"))?;
            }
            ctx.changed = removed > 0;
            Ok(removed as u64)
        })?;
        if removed > 0 {
            tracing::debug!(removed, "events pruned");
        }
        Ok(removed)
    }

    fn journal_entry(&self, id: i64) -> Result<Option<JournalEntry>, StoreError> {
        self.read(|conn| read::journal_entry(conn, id))
    }

    fn journal_in_flight(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(read::journal_in_flight)
    }

    fn journal_for_node(&self, node: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(|conn| read::journal_for_node(conn, node))
    }

    fn current_instance(&self, node: &str) -> Result<Option<InstanceRecord>, StoreError> {
        self.read(|conn| read::current_instance(conn, node))
    }

    fn instances(&self, node: Option<&str>) -> Result<Vec<InstanceRecord>, StoreError> {
        self.read(|conn| read::instances(conn, node))
    }

    fn vmid_leases(&self) -> Result<Vec<VmidLease>, StoreError> {
        self.read(read::leases)
    }

    fn audit_cursor(&self, source: &str) -> Result<Option<AuditCursor>, StoreError> {
        self.read(|conn| read::audit_cursor(conn, source))
    }

    fn audit_windows(&self, scope: &str) -> Result<Vec<AuditWindow>, StoreError> {
        self.read(|conn| read::audit_windows(conn, scope))
    }
}
