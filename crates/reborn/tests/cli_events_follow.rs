//! `reborn events --follow` prints events committed after it started.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use cli_support::{Server, VIEWER_TOKEN, examples_arg, start_time};
use store::NewEvent;

#[test]
fn events_follow_prints_new_events_as_they_are_committed() {
    let server = Server::start();
    server.ok(&["apply", "-f", &examples_arg()]);
    let mut child = Command::cargo_bin("reborn")
        .expect("binary")
        .args([
            "events",
            "--follow",
            "--node",
            "worker-1",
            "--server",
            &server.url,
        ])
        .env("REBORN_TOKEN", VIEWER_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("backlog line");
    assert!(first.contains("ResourceApplied"), "{first}");
    server
        .store
        .append_event(NewEvent {
            at: start_time() + chrono::Duration::minutes(1),
            node: Some("worker-1".to_owned()),
            kind: "CloneStarted".to_owned(),
            message: "cloning 9002 to 4120 on pve1".to_owned(),
            data: serde_json::json!({}),
        })
        .expect("append");
    let next = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("followed line");
    assert_eq!(
        next,
        "2026-03-01T12:01:00Z  worker-1  CloneStarted  cloning 9002 to 4120 on pve1"
    );
    let _ = child.kill();
    let _ = child.wait();
}
