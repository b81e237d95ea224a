//! Fault injection, determinism, request counters, the HTTP admin endpoint, TLS.

mod common;

use std::sync::Arc;

use common::{exchange, fast, start};
use pve_sim::{Fault, SimConfig};
use serde_json::json;

#[tokio::test]
async fn error_rate_fault_answers_with_the_given_status_and_message() {
    let (sim, c) = fast().await;
    sim.admin().inject(Fault::ErrorRate {
        endpoint: "GET /cluster/resources".into(),
        rate: 1.0,
        status: 500,
        message: "cfs lock timeout\nsecond line".into(),
        count: Some(1),
    });
    let r = c.get("/cluster/resources").await;
    assert_eq!((r.status, r.reason.as_str()), (500, "cfs lock timeout"));
    assert_eq!(r.json()["message"], "cfs lock timeout\nsecond line\n");
    assert_eq!(
        c.get("/cluster/resources").await.status,
        200,
        "count exhausted"
    );
    assert_eq!(
        c.get("/version").await.status,
        200,
        "other endpoints untouched"
    );
    sim.shutdown().await;
}

async fn outcomes(seed: u64) -> Vec<u16> {
    let mut cfg = SimConfig::fast();
    cfg.seed = seed;
    cfg.faults.push(Fault::ErrorRate {
        endpoint: "GET /version".into(),
        rate: 0.5,
        status: 503,
        message: "flaky".into(),
        count: None,
    });
    let (sim, c) = start(cfg).await;
    let mut v = Vec::new();
    for _ in 0..32 {
        v.push(c.get("/version").await.status);
    }
    sim.shutdown().await;
    v
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    let a = outcomes(7).await;
    let b = outcomes(7).await;
    assert_eq!(a, b);
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn same_seed_gives_same_macs() {
    let (s1, c1) = fast().await;
    let (s2, c2) = fast().await;
    c1.ok_task(
        c1.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    c2.ok_task(
        c2.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    assert_eq!(
        s1.admin().vm(101).unwrap().config["net0"],
        s2.admin().vm(101).unwrap().config["net0"]
    );
    s1.shutdown().await;
    s2.shutdown().await;
}

#[tokio::test]
async fn timeout_fault_gives_596_and_may_still_apply_the_request() {
    let (sim, c) = fast().await;
    sim.admin().inject(Fault::Timeout {
        endpoint: "POST /nodes/{node}/qemu/{vmid}/clone".into(),
        rate: 1.0,
        after_ms: 0,
        apply: true,
        count: Some(1),
    });
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
        .await;
    assert_eq!((r.status, r.reason.as_str()), (596, "Connection timed out"));
    assert!(sim.admin().vm(101).is_some(), "the clone happened anyway");
    sim.admin().inject(Fault::Timeout {
        endpoint: "*".into(),
        rate: 1.0,
        after_ms: 0,
        apply: false,
        count: Some(1),
    });
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "102")])
        .await;
    assert_eq!(r.status, 596);
    assert!(sim.admin().vm(102).is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn task_failure_fault_fails_the_task_and_rolls_back() {
    let (sim, c) = fast().await;
    sim.admin().inject(Fault::TaskFailure {
        task_type: "qmclone".into(),
        message: "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout".into(),
        count: Some(1),
    });
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
        .await;
    let upid = r.data().as_str().unwrap().to_string();
    let st = c.wait_task(&upid).await;
    assert_eq!(
        st["exitstatus"],
        "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
    );
    let log = c
        .get(&format!("/nodes/pve1/tasks/{}/log", common::enc(&upid)))
        .await;
    assert!(log.body.contains("TASK ERROR: clone failed"));
    assert!(sim.admin().vm(101).is_none(), "placeholder removed");
    c.ok_task(
        c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn held_lock_blocks_config_and_clone_until_cleared() {
    let (sim, c) = fast().await;
    sim.admin().inject(Fault::HoldLock {
        vmid: 9000,
        lock: "backup".into(),
    });
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "VM is locked (backup)")
    );
    let r = c
        .put("/nodes/pve1/qemu/9000/config", &[("cores", "4")])
        .await;
    assert_eq!(r.reason, "VM is locked (backup)");
    assert_eq!(
        c.get("/nodes/pve1/qemu/9000/status/current").await.data()["lock"],
        "backup"
    );
    sim.admin().clear_faults();
    c.ok_task(
        c.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101")])
            .await,
    )
    .await;
    sim.admin().inject(Fault::HoldFileLock { vmid: 101 });
    let r = c
        .put("/nodes/pve1/qemu/101/config", &[("cores", "4")])
        .await;
    assert_eq!(
        r.reason,
        "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn vmid_taken_behind_our_back_makes_clone_fail() {
    let (sim, c) = fast().await;
    let next = c.get("/cluster/nextid").await.data();
    assert_eq!(next, json!("100"));
    sim.admin().inject(Fault::TakeVmid {
        node: "pve1".into(),
        vmid: 100,
        name: "intruder".into(),
    });
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "100")])
        .await;
    assert_eq!(
        r.reason,
        "unable to create VM 100: config file already exists"
    );
    // Taken on another node: the task fails when pmxcfs refuses the config.
    sim.admin().create_foreign_vm("pve2", 200, "elsewhere");
    let r = c
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "200")])
        .await;
    let st = c.wait_task(r.data().as_str().unwrap()).await;
    assert_eq!(
        st["exitstatus"],
        "clone failed: close (rename) atomic file '/etc/pve/nodes/pve2/qemu-server/200.conf' failed: File exists"
    );
    assert_eq!(sim.admin().vm(200).unwrap().config["name"], "elsewhere");
    assert_eq!(c.get("/cluster/nextid").await.data(), json!("101"));
    sim.shutdown().await;
}

#[tokio::test]
async fn request_counters_use_path_templates() {
    let (sim, c) = fast().await;
    c.get("/cluster/resources").await;
    c.get("/cluster/resources?type=vm").await;
    c.get("/nodes/pve1/qemu/9000/config").await;
    c.get("/nodes/pve2/qemu/9001/config").await;
    let a = sim.admin();
    assert_eq!(a.request_count("GET /cluster/resources"), 2);
    assert_eq!(a.request_count("GET /nodes/{node}/qemu/{vmid}/config"), 2);
    assert_eq!(a.request_count("GET /version"), 0);
    a.reset_counts();
    assert!(a.request_counts().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_fault_delays_but_answers() {
    let (sim, c) = fast().await;
    sim.admin().inject(Fault::Latency {
        endpoint: "GET /version".into(),
        millis: 30,
    });
    assert_eq!(c.get("/version").await.status, 200);
    assert_eq!(sim.admin().faults().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn http_admin_endpoint_drives_faults_vms_and_counters() {
    let (sim, c) = fast().await;
    let admin = common::Client::anonymous(sim.local_addr());
    let fault = json!({"kind": "error_rate", "endpoint": "GET /nodes", "rate": 1.0, "status": 500, "message": "boom"});
    let r = admin
        .raw(
            "POST",
            "/_sim/faults",
            Some(("application/json", fault.to_string())),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(c.get("/nodes").await.reason, "boom");
    let r = admin.raw("DELETE", "/_sim/faults", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/nodes").await.status, 200);
    let body = json!({"node": "pve2", "vmid": 555, "name": "sneaky"});
    let r = admin
        .raw(
            "POST",
            "/_sim/vms",
            Some(("application/json", body.to_string())),
        )
        .await;
    assert_eq!(r.data()["node"], "pve2");
    let vms = admin.raw("GET", "/_sim/vms", None).await.data();
    assert!(vms.as_array().unwrap().iter().any(|v| v["vmid"] == 555));
    let counts = admin.raw("GET", "/_sim/requests", None).await.data();
    assert_eq!(counts["GET /nodes"], 2);
    sim.shutdown().await;
}

#[derive(Debug)]
struct Capture(std::sync::Mutex<Option<Vec<u8>>>);

impl rustls::client::danger::ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.as_ref().to_vec());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn tls_serves_a_self_signed_cert_matching_the_fingerprint() {
    use sha2::Digest;
    let mut cfg = SimConfig::fast();
    cfg.tls = true;
    let (sim, _) = start(cfg).await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    assert!(sim.cert_pem().unwrap().contains("BEGIN CERTIFICATE"));
    let fp = sim.cert_fingerprint_sha256().unwrap();
    assert_eq!(fp.len(), 64 + 31);
    let capture = Arc::new(Capture(std::sync::Mutex::new(None)));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(capture.clone())
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(sim.local_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (id, secret) = sim.token();
    let headers = vec![(
        "Authorization".to_string(),
        format!("PVEAPIToken={id}={secret}"),
    )];
    let r = exchange(tls, "GET", "/api2/json/nodes", &headers, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()[0]["ssl_fingerprint"], fp.as_str());
    let der = capture.0.lock().unwrap().clone().unwrap();
    let served: Vec<String> = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(served.join(":"), fp);
    sim.shutdown().await;
}
