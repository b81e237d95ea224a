//! A deliberately small HTTP/1.1 client over raw tokio TCP (no pve-client), plus helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pve_sim::{SimConfig, SimServer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn data(&self) -> Value {
        self.json()["data"].clone()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn error(&self, key: &str) -> String {
        self.json()["errors"][key]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let reason = parts.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        reason,
        headers,
        body: body.to_string(),
    }
}

/// Send one request on a fresh connection (`Connection: close`) and read to EOF.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<(&str, String)>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body_text = match &body {
        Some((ct, b)) => {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            ));
            b.clone()
        }
        None => String::new(),
    };
    req.push_str("\r\n");
    req.push_str(&body_text);
    stream
        .write_all(req.as_bytes())
        .await
        .expect("write request");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read response");
    parse_response(&buf)
}

/// A client with an optional `Authorization` header, cookie and CSRF token.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub headers: Vec<(String, String)>,
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Client {
    pub fn anonymous(addr: SocketAddr) -> Self {
        Self {
            addr,
            headers: Vec::new(),
        }
    }

    pub fn token(addr: SocketAddr, id: &str, secret: &str) -> Self {
        Self {
            addr,
            headers: vec![("Authorization".into(), format!("PVEAPIToken={id}={secret}"))],
        }
    }

    pub async fn raw(&self, method: &str, path: &str, body: Option<(&str, String)>) -> Resp {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        exchange(stream, method, path, &self.headers, body).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.raw("GET", &format!("/api2/json{path}"), None).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.raw("DELETE", &format!("/api2/json{path}"), None).await
    }

    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let body = form(pairs);
        self.raw(
            "POST",
            &format!("/api2/json{path}"),
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    pub async fn put(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let body = form(pairs);
        self.raw(
            "PUT",
            &format!("/api2/json{path}"),
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Resp {
        self.raw(
            "POST",
            &format!("/api2/json{path}"),
            Some(("application/json", body.to_string())),
        )
        .await
    }

    /// Poll a task until it stops; returns its final status object.
    pub async fn wait_task(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).expect("node in UPID").to_string();
        for _ in 0..600 {
            let r = self
                .get(&format!("/nodes/{node}/tasks/{}/status", enc(upid)))
                .await;
            assert_eq!(r.status, 200, "task status: {r:?}");
            let d = r.data();
            if d["status"] == "stopped" {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {upid} did not finish");
    }

    /// Start a task-returning call, wait for it, assert `OK`.
    pub async fn ok_task(&self, r: Resp) -> String {
        assert_eq!(r.status, 200, "{r:?}");
        let upid = r.data().as_str().expect("UPID").to_string();
        let st = self.wait_task(&upid).await;
        assert_eq!(st["exitstatus"], "OK", "{st}");
        upid
    }
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Start a fast simulator and an admin-token client.
pub async fn fast() -> (SimServer, Client) {
    start(SimConfig::fast()).await
}

pub async fn start(cfg: SimConfig) -> (SimServer, Client) {
    let sim = pve_sim::start(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start sim");
    let (id, secret) = sim.token();
    let client = Client::token(sim.local_addr(), &id, &secret);
    (sim, client)
}
