//! A fresh cluster: every declared node is created, configured, started and becomes Ready.

mod scenario_support;

use scenario_support::{GOLD, Harness, TAG, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_cluster_gets_every_node_created_and_ready() {
    let manifests = format!(
        "{GOLD}{}{}",
        node("worker-1", "worker", 4120, "StopFirst", 21),
        node("worker-2", "worker", 4130, "SurgeFirst", 0)
    );
    let h = Harness::new(&manifests).await;
    h.converge().await;

    let vms = h.owned_vms();
    assert_eq!(
        vms,
        vec![(4120, "worker-1".to_owned()), (4130, "worker-2".to_owned())]
    );
    for (vmid, _) in &vms {
        let vm = h.admin.vm(*vmid).expect("exists");
        assert_eq!(vm.status, "running");
        assert_eq!(vm.config["cores"], "2");
        let tags = vm.config["tags"].as_str();
        assert!(tags.split(';').any(|t| t == TAG), "{tags}");
        let description = vm.config["description"].as_str();
        assert!(
            description.starts_with("reborn:v1 node=worker-"),
            "{description}"
        );
        assert!(vm.config.contains_key("ipconfig0"));
    }
    for n in ["worker-1", "worker-2"] {
        assert_eq!(h.condition(n, "Ready"), "True", "{}", h.status(n));
        assert_eq!(h.status(n)["observedGeneration"], 1);
    }
    insta::assert_snapshot!(h.golden());

    // Steady state: the next pass plans nothing and makes exactly one PVE request.
    h.admin.reset_counts();
    let report = h.ctl.run_pass().await.expect("pass");
    h.ctl.settle().await;
    assert_eq!(report.planned, 0, "{:?}", h.ctl.last_plan());
    assert_eq!(report.started, 0);
    assert_eq!(
        h.admin.total_requests(),
        1,
        "{:?}",
        h.admin.request_counts()
    );
    assert_eq!(h.admin.request_count("GET /cluster/resources"), 1);
}
