//! The decode + join + evaluate workload shared by the criterion bench and the CPU-time example.

use audit::{AddressBook, CompiledPolicy, NodeAddresses};

/// The sample log recorded from the real Cerbos 0.55.0 PDP.
pub const SAMPLE: &str = include_str!("../../tests/data/audit.log");
/// Decision lines per batch.
pub const LINES: usize = 20_000;

/// The jsonRAG worker policy and a catch-all deny policy that keeps every call in its window.
pub fn policies() -> Vec<CompiledPolicy> {
    let yaml = "apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: worker-cross-tenant}
spec:
  match:
    principalIds: [svc-reports]
    resourceKinds: [tenant_document]
    rules: [\"resource.tenant_document.vdefault#deny-cross-tenant\"]
  threshold: {count: 3, window: 5m}
  severity: Critical
  action: Replace
---
apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: any-deny}
spec:
  match: {}
  threshold: {count: 1000000, window: 1h}
  severity: Low
  action: Report
";
    let set = model::load_str("bench.yaml", yaml).expect("bench policies load");
    set.taint_policies.iter().map(CompiledPolicy::new).collect()
}

/// The address book: the PDP's loopback client is `worker-1`.
pub fn addresses() -> AddressBook {
    let mut map = NodeAddresses::new();
    map.insert("worker-1", "127.0.0.1".parse().expect("ip"));
    AddressBook::new(map)
}

/// [`LINES`] CheckResources decision lines: the 12 real ones repeated with fresh callIds and
/// timestamps, so every call is new to the joiner and the windows.
pub fn input() -> Vec<u8> {
    let decisions: Vec<&str> = SAMPLE
        .lines()
        .filter(|l| l.contains("\"checkResources\""))
        .collect();
    let mut out = Vec::new();
    for i in 0..LINES {
        let line = decisions[i % decisions.len()];
        let mut v: serde_json::Value = serde_json::from_str(line).expect("sample is JSON");
        v["callId"] = format!("01M7ZT1K{i:018}").into();
        v["timestamp"] = format!(
            "2026-11-21T19:{:02}:{:02}.{:06}Z",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000
        )
        .into();
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}
