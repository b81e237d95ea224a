//! Readiness: running, then guest-agent ping and/or a TCP/HTTP probe, within a timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use model::Readiness;
use pve_client::{NodeName, PveClient, VmId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What to probe for one instance.
#[derive(Debug, Clone)]
pub struct ReadinessTarget {
    /// PVE node of the VM.
    pub pve_node: NodeName,
    /// The VM.
    pub vmid: VmId,
    /// The node's readiness declaration.
    pub spec: Readiness,
    /// The declared address (first interface), if any; else the guest agent's is used.
    pub declared_address: Option<IpAddr>,
    /// How long to keep trying.
    pub timeout: Duration,
    /// Interval between attempts.
    pub poll: Duration,
    /// Bound on one TCP connect.
    pub connect_timeout: Duration,
}

/// The result of a readiness wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessOutcome {
    /// Whether every check passed before the timeout.
    pub ready: bool,
    /// The address probed (declared or reported by the guest agent).
    pub address: Option<IpAddr>,
    /// How long it took, in milliseconds.
    pub waited_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last check that failed, when not ready.
    pub last_failure: Option<String>,
}

/// Polls until the instance is ready or the timeout passes. Never fails: a PVE error is one
/// failed attempt (reported in `last_failure`), and the wait is always bounded.
pub async fn wait_ready(client: &PveClient, target: &ReadinessTarget) -> ReadinessOutcome {
    let started = Instant::now();
    let deadline = started + target.timeout;
    let mut attempts = 0u32;
    let mut address = target.declared_address;
    loop {
        attempts += 1;
        let result = probe_once(client, target, &mut address).await;
        match result {
            Ok(()) => {
                return ReadinessOutcome {
                    ready: true,
                    address,
                    waited_ms: started.elapsed().as_millis() as u64,
                    attempts,
                    last_failure: None,
                };
            }
            Err(why) => {
                let now = Instant::now();
                if now >= deadline {
                    return ReadinessOutcome {
                        ready: false,
                        address,
                        waited_ms: started.elapsed().as_millis() as u64,
                        attempts,
                        last_failure: Some(why),
                    };
                }
                tracing::debug!(vmid = %target.vmid, attempt = attempts, %why, "not ready yet");
                tokio::time::sleep(target.poll.min(deadline - now)).await;
            }
        }
    }
}

/// One attempt: `Err` says which check failed.
async fn probe_once(
    client: &PveClient,
    target: &ReadinessTarget,
    address: &mut Option<IpAddr>,
) -> Result<(), String> {
    let status = client
        .vm_status(&target.pve_node, target.vmid)
        .await
        .map_err(|e| format!("status: {e}"))?;
    if !status.is_running() {
        return Err(format!("VM is {}", status.status));
    }
    let needs_address = target.spec.tcp.is_some() || target.spec.http.is_some();
    if target.spec.guest_agent {
        client
            .agent_ping(&target.pve_node, target.vmid)
            .await
            .map_err(|e| format!("guest agent: {e}"))?;
    }
    if address.is_none() && (needs_address || target.spec.guest_agent) {
        if let Ok(ifaces) = client
            .agent_network_interfaces(&target.pve_node, target.vmid)
            .await
        {
            *address = agent_address(&ifaces);
        }
    }
    if !needs_address {
        return Ok(());
    }
    let ip = address.ok_or_else(|| "no address known for the probe".to_owned())?;
    if let Some(port) = target.spec.tcp {
        tcp_probe(SocketAddr::new(ip, port), target.connect_timeout).await?;
    }
    if let Some(http) = &target.spec.http {
        http_probe(
            SocketAddr::new(ip, http.port),
            &http.path,
            target.connect_timeout,
        )
        .await?;
    }
    Ok(())
}

/// The first non-loopback address the guest agent reports (IPv4 preferred).
pub fn agent_address(ifaces: &[pve_client::AgentInterface]) -> Option<IpAddr> {
    let all: Vec<IpAddr> = ifaces
        .iter()
        .flat_map(|i| i.ip_addresses.iter())
        .filter_map(|a| a.ip_address.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .collect();
    all.iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| all.first())
        .copied()
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

async fn tcp_probe(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("tcp {addr}: {e}")),
        Err(_) => Err(format!("tcp {addr}: connect timed out")),
    }
}

/// `GET path` over HTTP/1.0; ready on a 2xx status line.
async fn http_probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let mut stream = tcp_probe(addr, timeout).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: reborn\r\n\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; 64];
        let n = stream.read(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let head = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(format!("http {addr}{path}: {e}")),
        Err(_) => return Err(format!("http {addr}{path}: no answer")),
    };
    let code = head.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else {
        Err(format!("http {addr}{path}: status {code:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probe_passes_on_a_listening_port_and_fails_on_a_closed_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = listener.local_addr().expect("addr");
        assert!(tcp_probe(open, Duration::from_secs(2)).await.is_ok());
        drop(listener);
        assert!(tcp_probe(open, Duration::from_secs(2)).await.is_err());
    }

    #[tokio::test]
    async fn http_probe_requires_a_2xx_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for reply in ["HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 503 Busy\r\n\r\n"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        assert!(
            http_probe(addr, "/health", Duration::from_secs(2))
                .await
                .is_ok()
        );
        let err = http_probe(addr, "/health", Duration::from_secs(2))
            .await
            .expect_err("503 is not ready");
        assert!(err.contains("503"), "{err}");
    }
}
