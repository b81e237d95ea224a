//! Latency from "a line is appended to the Cerbos audit log" to "its taint is committed in the
//! store", through the daemon's path: [`audit::run_file_source`] tailing a file into a real
//! [`store::SqliteStore`] (WAL, `synchronous=FULL`) on a temporary directory.
//!
//! `cargo bench -p audit --bench append_to_taint [-- APPENDS [MODE]]` (default 300 appends;
//! MODE `poll` = wake on the poll timer only, `notify` = wake on inotify too, `both` = the two
//! one after the other). Each append writes, in one `write`, the 3 CheckResources denials
//! (real Cerbos 0.55.0 lines from `tests/data/audit.log` with fresh callIds, timestamps and
//! peer address) that reach the jsonRAG worker policy's threshold for a new node, so every
//! append makes exactly one new taint. The commit is timestamped by a store subscriber
//! (woken by the store's change notification, then confirming the node's taint). Appends are
//! spaced by a pseudo-random 0–100 ms pause so that they land anywhere in the poll period.
//! Also reports the process CPU time spent while the tailer idles for 3 s.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit::{FileSourceConfig, Ingestor, run_file_source};
use chrono::{DateTime, Utc};
use store::{SqliteStore, Store};

#[path = "support/workload.rs"]
#[allow(dead_code)]
mod workload;

/// A real denial that the worker policy counts (svc-reports, deny-cross-tenant).
fn template() -> serde_json::Value {
    workload::SAMPLE
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["checkResources"]["inputs"][0]["principal"]["id"] == "svc-reports"
                && v.to_string()
                    .contains("resource.tenant_document.vdefault#deny-cross-tenant")
        })
        .expect("the sample has a cross-tenant denial by svc-reports")
}

/// The peer address of node number `n`.
fn address(n: usize) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(
        10,
        1 + (n / 65_536) as u8,
        (n / 256 % 256) as u8,
        (n % 256) as u8,
    )
    .into()
}

/// The three lines that taint node number `n`.
fn append_text(template: &serde_json::Value, n: usize, start: DateTime<Utc>) -> String {
    let mut out = String::new();
    for k in 0..3 {
        let mut v = template.clone();
        let at = start + chrono::Duration::milliseconds((n * 3 + k) as i64);
        v["callId"] = format!("01M7ZT1K{:018}", n * 3 + k).into();
        v["timestamp"] = at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            .into();
        v["peer"]["address"] = format!("{}:{}", address(n), 40_000 + k).into();
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the audit log");
    f.write_all(text.as_bytes())
        .expect("append to the audit log");
}

/// CPU time of the whole process (every thread), from `/proc/self/task/*/schedstat`.
fn process_cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(appends: usize, notify: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    append(&log, "");
    let store = Arc::new(SqliteStore::open(dir.path().join("store.db")).expect("store"));
    let mut book = audit::NodeAddresses::new();
    for n in 0..appends {
        book.insert(&format!("node-{n}"), address(n));
    }
    let policies = workload::policies().into_iter().take(1).collect();
    let ingestor = Arc::new(Mutex::new(Ingestor::new(
        policies,
        audit::AddressBook::new(book),
    )));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut config = FileSourceConfig::new("file:bench", &log);
    config.notify = notify;
    let dyn_store: Arc<dyn Store> = store.clone();
    let task = tokio::spawn(run_file_source(config, dyn_store, ingestor, shutdown, None));
    // Let the tailer open the file and settle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let template = template();
    let start = Utc::now() - chrono::Duration::hours(1);
    let mut changes = store.subscribe();
    let mut latencies = Vec::with_capacity(appends);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for n in 0..appends {
        let text = append_text(&template, n, start);
        let node = format!("node-{n}");
        changes.borrow_and_update();
        let t0 = Instant::now();
        append(&log, &text);
        loop {
            let found = store
                .active_taints(Some(&node), Utc::now())
                .expect("taints");
            if !found.is_empty() {
                break;
            }
            tokio::time::timeout(Duration::from_secs(10), changes.changed())
                .await
                .expect("the taint is committed within 10 s")
                .expect("store alive");
        }
        latencies.push(t0.elapsed());
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_micros(seed % 100_000)).await;
    }

    let idle_from = process_cpu();
    let idle_wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu = process_cpu() - idle_from;
    let idle_secs = idle_wall.elapsed().as_secs_f64();

    stop.send(true).expect("stop the tailer");
    task.await
        .expect("tailer task")
        .expect("tailer ends cleanly");
    let taints = store.taint_history(None).expect("history").len();
    assert_eq!(taints, appends, "one taint per append");

    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / appends as u32;
    println!(
        "append → taint committed, {} ({appends} appends, 3 lines each): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms; idle: {:.2} ms CPU per s",
        if notify {
            "inotify + 100 ms poll"
        } else {
            "100 ms poll only"
        },
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[appends - 1]),
        ms(mean),
        ms(idle_cpu) / idle_secs,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers and the mode come after `--`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let appends: usize = args
        .first()
        .map_or(300, |a| a.parse().expect("APPENDS is a number"));
    let mode = args.get(1).map_or("both", String::as_str);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if matches!(mode, "poll" | "both") {
            run(appends, false).await;
        }
        if matches!(mode, "notify" | "both") {
            run(appends, true).await;
        }
    });
}
