//! Crash test: a child process commits transactions in a loop and is killed with SIGKILL at a
//! random moment; the database must reopen consistent, pass `PRAGMA integrity_check`, and hold
//! every write the child saw acknowledged. Repeated many times over the same database.
//!
//! This is a `harness = false` test: the binary re-executes itself as the writer child when
//! `REBORN_STORE_CRASH_CHILD` names the database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng, TryRngCore};
use serde_json::json;
use store::{
    AuditCursor, CursorPosition, EventQuery, Expect, NewEvent, Op, ResourceKey, ResourceWrite,
    SqliteStore, Store, Txn,
};

const CHILD_ENV: &str = "REBORN_STORE_CRASH_CHILD";
const SEED_ENV: &str = "REBORN_STORE_CRASH_SEED";
const ROUNDS: usize = 20;
const SOURCE: &str = "crash-writer";

fn main() -> anyhow::Result<()> {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        return child(&db);
    }
    parent()
}

fn last_committed(store: &SqliteStore) -> anyhow::Result<Option<u64>> {
    Ok(match store.audit_cursor(SOURCE)? {
        Some(AuditCursor {
            position: CursorPosition::LastId { id },
            ..
        }) => Some(id.parse()?),
        Some(other) => bail!("unexpected cursor {other:?}"),
        None => None,
    })
}

/// Writes forever: each transaction creates one resource, appends one event, moves a status
/// counter and the audit cursor, then prints its sequence number once `commit` returned Ok.
fn child(db: &str) -> anyhow::Result<()> {
    let store = SqliteStore::open(db)?;
    let mut next = last_committed(&store)?.map_or(0, |i| i + 1);
    let counter = ResourceKey::new("Counter", "writes");
    if store.get(&counter)?.is_none() {
        store.apply(vec![ResourceWrite::new(counter.clone(), json!({}))])?;
    }
    let stdout = std::io::stdout();
    loop {
        let txn = Txn::new()
            .with(Op::PutResource(ResourceWrite::new(
                ResourceKey::new("Node", format!("n-{next:06}")),
                json!({"i": next}),
            )))
            .with(Op::AppendEvent(NewEvent {
                at: chrono::Utc::now(),
                node: Some(format!("n-{next:06}")),
                kind: "Wrote".into(),
                message: format!("write {next}"),
                data: json!({"i": next}),
            }))
            .with(Op::PutStatus {
                key: counter.clone(),
                status: json!({"i": next}),
                expect: Expect::Any,
            })
            .with(Op::SetAuditCursor(AuditCursor::new(
                SOURCE,
                CursorPosition::LastId {
                    id: next.to_string(),
                },
            )));
        store.commit(txn)?;
        let mut out = stdout.lock();
        writeln!(out, "{next}")?;
        out.flush()?;
        next += 1;
    }
}

fn parent() -> anyhow::Result<()> {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().context("seed")?,
        Err(_) => rand::rngs::OsRng
            .try_next_u64()
            .context("seed from the OS")?,
    };
    println!("crash test: seed {seed} (set {SEED_ENV} to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe()?;
    let mut acknowledged: Vec<u64> = Vec::new();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, &db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn writer child")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || -> anyhow::Result<()> {
            for line in BufReader::new(stdout).lines() {
                // A line cut short by the kill is not an acknowledgement.
                let Ok(line) = line else { break };
                if let Ok(i) = line.trim().parse() {
                    let _ = tx.send(i);
                }
            }
            Ok(())
        });
        // Kill only once the child is writing, so every round exercises a write in progress.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .with_context(|| format!("round {round}: child acknowledged nothing"))?;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..120)));
        child.kill().context("SIGKILL child")?;
        let status = child.wait()?;
        ensure!(!status.success(), "round {round}: child exited on its own");
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        acknowledged.push(first);
        acknowledged.extend(rx.try_iter());

        let store = SqliteStore::open(&db).with_context(|| format!("round {round}: reopen"))?;
        store.integrity_check()?;
        let last = last_committed(&store)?.context("cursor missing after acknowledged writes")?;
        let max_ack = acknowledged.iter().copied().max().unwrap_or(0);
        ensure!(
            last >= max_ack,
            "round {round}: cursor at {last} but {max_ack} was acknowledged"
        );
        let nodes = store.list("Node")?.items;
        ensure!(
            nodes.len() as u64 == last + 1,
            "round {round}: {} resources but cursor at {last} (torn transaction)",
            nodes.len()
        );
        for &i in &acknowledged {
            let key = ResourceKey::new("Node", format!("n-{i:06}"));
            let r = store
                .get(&key)?
                .with_context(|| format!("round {round}: acknowledged write {i} lost"))?;
            ensure!(
                r.spec == json!({"i": i}),
                "round {round}: write {i} has {}",
                r.spec
            );
        }
        let events = store.events(&EventQuery {
            kind: Some("Wrote".into()),
            ..EventQuery::default()
        })?;
        ensure!(
            events.len() == nodes.len(),
            "round {round}: {} events for {} resources",
            events.len(),
            nodes.len()
        );
        let counter = store
            .get(&ResourceKey::new("Counter", "writes"))?
            .context("counter resource")?;
        ensure!(
            counter.status == json!({"i": last}),
            "round {round}: counter status {} but cursor {last}",
            counter.status
        );
        println!(
            "round {round:2}: {} acknowledged so far, last committed {last}",
            acknowledged.len()
        );
    }
    println!(
        "crash test: ok, {ROUNDS} kills, {} acknowledged writes all present",
        acknowledged.len()
    );
    Ok(())
}
