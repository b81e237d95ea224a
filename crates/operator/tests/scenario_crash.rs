//! Crash test: the controller runs in a child process (this binary re-executed) that is killed
//! with SIGKILL at random points while several nodes are replaced; after a final restart from
//! the same SQLite file the cluster must hold exactly one VM per node, no orphan, and the
//! foreign VM untouched.

#[path = "scenario_support/mod.rs"]
mod scenario_support;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use operator::{Controller, ControllerConfig};
use pve_sim::Durations;
use rand::{Rng, SeedableRng};
use scenario_support::{GOLD, OPERATOR, TAG, apply, node};
use store::{NewTaint, Severity, SqliteStore, Store, TaintSource};

const CHILD: &str = "REBORN_CRASH_CHILD";
const NODES: [&str; 3] = ["worker-1", "worker-2", "worker-3"];

fn config() -> ControllerConfig {
    let mut c = ControllerConfig::fast(OPERATOR);
    c.resync_ms = 50;
    // Every node gets tainted at once here: the breaker would (rightly) stop that.
    c.breaker.max_tainted_percent = 100;
    c.breaker.max_destroys = 1000;
    c
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(spec) = std::env::var(CHILD) {
        rt.block_on(child(&spec));
    } else {
        rt.block_on(parent());
        println!("scenario_crash: ok");
    }
}

/// The child: run the controller until killed.
async fn child(spec: &str) {
    let (url, db) = spec.split_once('|').expect("url|db");
    let store = Arc::new(SqliteStore::open(db).expect("store"));
    let (id, secret) = ("root@pam!reborn", pve_sim::DEFAULT_TOKEN_SECRET);
    let client = pve_client::PveClient::builder(url)
        .token(id.parse().expect("id"), pve_client::Secret::new(secret))
        .retry_min_delay(Duration::from_millis(5))
        .build()
        .expect("client");
    let (ctl, _handle) = Controller::new(config(), store, client).expect("controller");
    ctl.run(std::future::pending()).await;
}

fn spawn_child(url: &str, db: &str) -> Child {
    Command::new(std::env::current_exe().expect("exe"))
        .env(CHILD, format!("{url}|{db}"))
        .spawn()
        .expect("child starts")
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

async fn parent() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rngs::StdRng::from_os_rng().random());
    println!("scenario_crash: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut sim_config = scenario_support::attested_fast_sim();
    sim_config.durations = Durations {
        clone_ms: 60,
        full_clone_ms: 120,
        start_ms: 30,
        stop_ms: 30,
        shutdown_ms: 30,
        destroy_ms: 40,
        template_ms: 10,
        create_ms: 10,
        config_ms: 10,
    };
    let sim = pve_sim::start(sim_config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let admin = sim.admin();
    admin.create_foreign_vm("pve1", 4125, "worker-1");
    let foreign = admin.vm(4125).expect("foreign");

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("reborn.db");
    let db_s = db.to_str().expect("utf-8 path").to_owned();
    let url = sim.base_url();
    {
        let store = SqliteStore::open(&db).expect("store");
        let manifests = format!(
            "{GOLD}{}{}{}",
            node(NODES[0], "worker", 4120, "StopFirst", 21),
            node(NODES[1], "worker", 4130, "SurgeFirst", 0),
            node(NODES[2], "worker", 4140, "StopFirst", 23),
        );
        apply(&store, &manifests);
    }

    // Initial creation, with crashes too.
    for _ in 0..3 {
        let c = spawn_child(&url, &db_s);
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..250))).await;
        kill(c);
    }
    settle(&url, &db_s, &admin).await;

    for round in 0..3 {
        {
            let store = SqliteStore::open(&db).expect("store");
            for n in NODES {
                store
                    .add_taint(NewTaint {
                        node: n.to_owned(),
                        instance_id: None,
                        key: format!("round-{round}"),
                        source: TaintSource::Cli,
                        severity: Severity::Warning,
                        reason: "crash test".to_owned(),
                        evidence: serde_json::json!({}),
                        created_at: chrono::Utc::now(),
                        created_by: "crash-test".to_owned(),
                        expires_at: None,
                    })
                    .expect("taint");
            }
        }
        for _ in 0..4 {
            let c = spawn_child(&url, &db_s);
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..300))).await;
            kill(c);
        }
        settle(&url, &db_s, &admin).await;
        assert_eq!(
            admin.vm(4125).expect("foreign VM still exists").config,
            foreign.config,
            "foreign VM changed (seed {seed})"
        );
    }
    sim.shutdown().await;
}

/// Runs a child until the end state holds (bounded), then checks it.
async fn settle(url: &str, db: &str, admin: &pve_sim::SimAdmin) {
    let c = spawn_child(url, db);
    let mut ok = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if end_state(db, admin).is_ok() {
            ok = true;
            break;
        }
    }
    kill(c);
    if !ok {
        // One more look for the message.
        if let Err(why) = end_state(db, admin) {
            dump(db, admin);
            panic!("did not converge after the crashes: {why}");
        }
    }
}

/// Prints what a person needs to debug a failed run.
fn dump(db: &str, admin: &pve_sim::SimAdmin) {
    let store = SqliteStore::open(db).expect("store");
    for e in store
        .events(&store::EventQuery::default())
        .unwrap_or_default()
    {
        eprintln!("event {} {:?} {} {}", e.id, e.node, e.kind, e.message);
    }
    for j in store
        .journal_for_node("worker-1")
        .unwrap_or_default()
        .into_iter()
        .chain(store.journal_for_node("worker-2").unwrap_or_default())
        .chain(store.journal_for_node("worker-3").unwrap_or_default())
    {
        eprintln!(
            "journal {} {} {} {:?} {:?}",
            j.id, j.node, j.action, j.vmid, j.state
        );
    }
    eprintln!("instances {:?}", store.instances(None));
    eprintln!("leases {:?}", store.vmid_leases());
    for vm in admin.vms() {
        eprintln!(
            "vm {} {} {:?} {:?} {:?}",
            vm.vmid,
            vm.status,
            vm.config.get("name"),
            vm.config.get("tags"),
            vm.config.get("description")
        );
    }
}

/// Exactly one owned VM per node, every owned VM recorded as its node's current instance,
/// every lease backed by a record, nothing in flight, every node Ready.
fn end_state(db: &str, admin: &pve_sim::SimAdmin) -> Result<(), String> {
    let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
    let mut owned: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for vm in admin.vms() {
        let tagged = vm
            .config
            .get("tags")
            .is_some_and(|t| t.split(';').any(|x| x == TAG));
        let described = vm
            .config
            .get("description")
            .is_some_and(|d| d.contains("operator=test"));
        if tagged || described {
            let name = vm.config.get("name").cloned().unwrap_or_default();
            owned.entry(name).or_default().push(vm.vmid);
        }
    }
    if owned.len() != NODES.len() || owned.values().any(|v| v.len() != 1) {
        return Err(format!("owned VMs per node: {owned:?}"));
    }
    let instances = store.instances(None).map_err(|e| e.to_string())?;
    for (name, vmids) in &owned {
        let rec = instances
            .iter()
            .find(|r| r.vmid == vmids[0] && r.current && &r.node == name);
        if rec.is_none() {
            return Err(format!("VM {} of {name} has no current record", vmids[0]));
        }
    }
    if instances.len() != NODES.len() {
        return Err(format!("stale instance records: {instances:?}"));
    }
    let leases = store.vmid_leases().map_err(|e| e.to_string())?;
    if leases.len() != NODES.len() {
        return Err(format!("leases: {leases:?}"));
    }
    let in_flight = store.journal_in_flight().map_err(|e| e.to_string())?;
    if !in_flight.is_empty() {
        return Err(format!("in flight: {in_flight:?}"));
    }
    for n in NODES {
        let r = store
            .get(&store::ResourceKey::new("Node", n))
            .map_err(|e| e.to_string())?
            .ok_or("node missing")?;
        if r.status["instance"]["ready"] != true {
            return Err(format!("{n} not ready: {}", r.status));
        }
    }
    Ok(())
}
