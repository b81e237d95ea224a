//! The running loop: woken by store changes (no explicit passes), shuts down on request; the
//! handle plans without executing and releases the breaker.

mod scenario_support;

use std::time::Duration;

use scenario_support::{GOLD, Harness, apply, node};
use store::Severity;

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_loop_converges_on_store_changes_and_stops_on_shutdown() {
    let mut config = operator::ControllerConfig::fast(scenario_support::OPERATOR);
    config.resync_ms = 60_000; // only store changes and finished tasks wake it
    let h = Harness::with_config(GOLD, config).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ctl = h.ctl.clone();
    let running = tokio::spawn(async move {
        ctl.run(async {
            let _ = stopped.await;
        })
        .await;
    });

    apply(
        h.store.as_ref(),
        &format!(
            "{GOLD}{}",
            node("worker-1", "worker", 4120, "StopFirst", 21)
        ),
    );
    wait_for("worker-1 ready", || {
        h.status("worker-1")["instance"]["ready"] == true
    })
    .await;
    h.taint("worker-1", Severity::Warning);
    wait_for("replacement", || {
        h.owned_vms() == vec![(4121, "worker-1".to_owned())]
    })
    .await;

    stop.send(()).expect("loop listening");
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("loop stops")
        .expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_plans_without_executing_and_releases_the_breaker() {
    let manifests = format!(
        "{GOLD}{}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21),
        node("worker-2", "worker", 4130, "StopFirst", 22),
    );
    let h = Harness::new(&manifests).await;
    let report = h.handle.plan().await.expect("plan");
    assert!(report.text.contains("worker-1"), "{}", report.text);
    assert!(h.owned_vms().is_empty(), "plan executed nothing");
    assert_eq!(
        h.admin
            .request_count("POST /nodes/{node}/qemu/{vmid}/clone"),
        0
    );

    h.converge().await;
    h.taint("worker-1", Severity::Warning);
    h.taint("worker-2", Severity::Warning);
    h.converge().await;
    assert!(h.handle.breaker().tripped);
    let view = h.handle.release_breaker("alice").expect("released");
    assert_eq!(view.released_by.as_deref(), Some("alice"));
    assert!(!view.tripped);
    h.converge().await;
    // Released: the replacements proceed within the budgets.
    let names: Vec<String> = h.owned_vms().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, vec!["worker-1".to_owned(), "worker-2".to_owned()]);
    assert!(
        h.admin.vm(4120).is_none() || h.admin.vm(4130).is_none(),
        "{:?}",
        h.owned_vms()
    );
}
