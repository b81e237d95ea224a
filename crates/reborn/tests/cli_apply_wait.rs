//! `reborn apply --wait` returns when every applied node is Ready, and exits 7 on timeout.

mod cli_support;

use std::time::Duration;

use cli_support::{Server, code, examples_arg, stderr};
use store::{Expect, ResourceKey};

#[test]
fn apply_wait_returns_once_every_applied_node_reports_ready() {
    let server = Server::start();
    let dir = examples_arg();
    server.ok(&["apply", "-f", &format!("{dir}/gold-images.yaml")]);
    // Plays the controller: marks each worker Ready once it has been applied.
    let store = server.store.clone();
    let marker = std::thread::spawn(move || {
        let mut marked = 0;
        for _ in 0..600 {
            for name in ["worker-1", "worker-2"] {
                let key = ResourceKey::new("Node", name);
                if let Ok(Some(r)) = store.get(&key)
                    && r.status.is_null()
                {
                    let status = serde_json::json!({"conditions": [
                        {"type": "Ready", "status": "True", "observedGeneration": r.generation}
                    ]});
                    if store.put_status(&key, status, Expect::Any).is_ok() {
                        marked += 1;
                    }
                }
            }
            if marked == 2 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let out = server.reborn(
        Some(cli_support::OPERATOR_TOKEN),
        &[
            "apply",
            "-f",
            &format!("{dir}/workers.yaml"),
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("all 2 node(s) Ready"),
        "{}",
        stderr(&out)
    );
    assert!(marker.join().expect("marker thread"));
}

#[test]
fn apply_wait_times_out_with_exit_7_naming_the_nodes_not_ready() {
    let server = Server::start();
    let out = server.reborn(
        Some(cli_support::OPERATOR_TOKEN),
        &["apply", "-f", &examples_arg(), "--wait", "--timeout", "1s"],
    );
    assert_eq!(code(&out), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("timed out"), "{err}");
    assert!(
        err.contains("ingress-1") && err.contains("worker-2"),
        "{err}"
    );
}
