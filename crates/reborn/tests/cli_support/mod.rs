//! Shared fixtures for the CLI tests: the operator API served in-process on 127.0.0.1:0 over a
//! real SQLite store (with a stopped clock, so output is stable), a fake controller, and a
//! helper that runs the real `reborn` binary against it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use assert_cmd::cargo::CommandCargoExt;
use chrono::{DateTime, TimeZone, Utc};
use operator::api::auth::{ApiToken, Role, TokenSet};
use operator::api::{ApiState, serve};
use operator::handle::BoxFuture;
use operator::metrics::Metrics;
use operator::{BreakerView, ControllerHandle, HandleError, PlanReport};
use pve_client::Secret;
use store::{ManualClock, SqliteOptions, SqliteStore, Store};

pub const OPERATOR_TOKEN: &str = "cli-test-operator-token";
pub const VIEWER_TOKEN: &str = "cli-test-viewer-token";

pub struct FakeController {
    pub wakes: AtomicUsize,
    pub breaker: Mutex<BreakerView>,
}

impl ControllerHandle for FakeController {
    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }

    fn plan(&self) -> BoxFuture<'_, Result<PlanReport, HandleError>> {
        Box::pin(async {
            Ok(PlanReport {
                text: "1 action\n  clone worker-1 (vmid 4120 on pve1): node has no instance"
                    .to_owned(),
                plan: serde_json::json!({"actions": 1}),
            })
        })
    }

    fn breaker(&self) -> BreakerView {
        self.breaker.lock().expect("lock").clone()
    }

    fn release_breaker(&self, by: &str) -> Result<BreakerView, HandleError> {
        let mut b = self.breaker.lock().expect("lock");
        b.tripped = false;
        b.released_by = Some(by.to_owned());
        Ok(b.clone())
    }
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// The API server, running until dropped.
pub struct Server {
    pub url: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub controller: Arc<FakeController>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Server {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(start_time()));
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open_with(
                dir.path().join("reborn.db"),
                SqliteOptions {
                    clock: clock.clone(),
                    ..SqliteOptions::default()
                },
            )
            .expect("open store"),
        );
        let controller = Arc::new(FakeController {
            wakes: AtomicUsize::new(0),
            breaker: Mutex::new(BreakerView {
                tripped: true,
                reason: Some("3 of 4 nodes tainted within 5m".to_owned()),
                released_by: None,
            }),
        });
        let tokens = TokenSet::new(vec![
            ApiToken::new("alice", Role::Operator, Secret::new(OPERATOR_TOKEN)),
            ApiToken::new("grafana", Role::Viewer, Secret::new(VIEWER_TOKEN)),
        ]);
        let state = ApiState::new(store.clone(), controller.clone(), tokens, Metrics::new())
            .with_clock(clock.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            let _ = serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            url: format!("http://{addr}"),
            store,
            clock,
            controller,
            _dir: dir,
            shutdown: Some(tx),
            rt: Some(rt),
        }
    }

    /// `reborn ARGS --server URL` with a token in the environment.
    pub fn reborn(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::cargo_bin("reborn").expect("reborn binary");
        cmd.args(args)
            .env("REBORN_SERVER", &self.url)
            .env_remove("REBORN_TOKEN")
            .env("NO_COLOR", "1");
        if let Some(t) = token {
            cmd.env("REBORN_TOKEN", t);
        }
        cmd.output().expect("run reborn")
    }

    /// Runs as the operator and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.reborn(Some(OPERATOR_TOKEN), args);
        assert!(
            out.status.success(),
            "reborn {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/jsonrag")
}

pub fn examples_arg() -> String {
    examples().display().to_string()
}

pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
