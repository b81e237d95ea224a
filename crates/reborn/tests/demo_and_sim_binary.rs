//! The real `reborn` binary: `demo` walks a VM through its life, `sim` serves a PVE-compatible
//! API that answers on the address it prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

#[test]
fn demo_replaces_a_tainted_worker_with_a_fresh_clone_and_exits_zero() {
    let output = Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(["demo", "--fast"])
        .output()
        .expect("run reborn demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "Node worker-1: Created",
        "DisruptionBudget ingress: Created",
        "all nodes Ready: ingress-1=VM 4100, ingress-2=VM 4110, worker-1=VM 4120, worker-2=VM 4130",
        "TaintAdded",
        "cloning jsonrag-worker (VM 9002) into VM 4121",
        "destroying VM 4120 (identity proven)",
        "all nodes Ready again, VM 4120 destroyed",
        "worker-1=VM 4121",
        "CerbosTaintRaised",
        "Isolated               isolated VM 4130",
        "VM 4130 destroyed",
        "worker-2=VM 4131",
        "worker-2 (tainted from Cerbos audit lines) recovered in",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    // The untainted nodes keep their VMs: only the tainted workers were replaced.
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("all nodes Ready again"))
        .unwrap();
    for kept in ["ingress-1=VM 4100", "ingress-2=VM 4110", "worker-1=VM 4121"] {
        assert!(last.contains(kept), "{kept} changed: {last}");
    }
}

#[test]
fn sim_prints_its_address_and_answers_with_the_pve_envelope() {
    let mut child = Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(["sim", "--listen", "127.0.0.1:0", "--fast"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start reborn sim");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    let token = lines.next().expect("a token line").expect("utf-8");
    let url = first
        .strip_prefix("listening: ")
        .expect("listening line")
        .to_owned();
    let header = token
        .strip_prefix("token: ")
        .expect("token line")
        .to_owned();

    let addr = url
        .strip_prefix("http://")
        .expect("plain HTTP without --tls");
    let response = http_get(addr, "/api2/json/version", &header);
    let missing_auth = http_get(addr, "/api2/json/version", "X-None: 1");
    child.kill().expect("stop the simulator");
    let _ = child.wait();

    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains(r#""release":"8.4""#), "{response}");
    assert!(
        missing_auth.starts_with("HTTP/1.1 401 No ticket\r\n"),
        "{missing_auth}"
    );
}

/// A minimal HTTP/1.1 GET: the test must not depend on reborn's own client.
fn http_get(addr: &str, path: &str, auth_header: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the simulator");
    let header = if auth_header.contains(':') {
        auth_header.to_owned()
    } else {
        format!("Authorization: {auth_header}")
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}
