//! Valid manifests load; the jsonRAG example is valid; sets survive a YAML round trip.

use model::{CloneMode, DriftPolicy, ReplacementStrategy, load_paths, load_str};
use std::path::PathBuf;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/jsonrag")
}

#[test]
fn jsonrag_example_is_valid() {
    let set = load_paths(&[examples_dir()]).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        set.summary(),
        "4 nodes, 2 gold images, 1 budget, 1 taint policy: valid"
    );
    let ingress: Vec<&str> = set
        .nodes
        .iter()
        .filter(|n| set.budgets_for(n).any(|b| b.name().as_str() == "ingress"))
        .map(|n| n.name().as_str())
        .collect();
    assert_eq!(ingress, ["ingress-1", "ingress-2"]);
}

#[test]
fn jsonrag_example_files_carry_the_schema_modeline() {
    for entry in std::fs::read_dir(examples_dir()).expect("examples exist") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("readable");
            assert!(
                text.starts_with(
                    "# yaml-language-server: $schema=../../manifests/schema/reborn.v1alpha1.json\n"
                ),
                "{} lacks the modeline",
                path.display()
            );
        }
    }
}

#[test]
fn valid_fixtures_load() {
    let set = load_paths(&[PathBuf::from("tests/data/valid")]).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        set.summary(),
        "3 nodes, 2 gold images, 1 budget, 1 taint policy: valid"
    );
}

#[test]
fn omitted_fields_take_their_defaults() {
    let set = load_paths(&[PathBuf::from("tests/data/valid/minimal.yaml")])
        .unwrap_or_else(|d| panic!("{d}"));
    let spec = &set.nodes[0].spec;
    assert_eq!(spec.clone.mode, CloneMode::Linked);
    assert_eq!(spec.replacement.strategy, ReplacementStrategy::StopFirst);
    assert_eq!(spec.drift, DriftPolicy::Replace);
    assert!(spec.readiness.guest_agent);
    assert_eq!(spec.readiness.timeout.as_secs(), 300);
    assert_eq!(spec.resources.memory.mib(), 512);
}

#[test]
fn loaded_sets_round_trip_through_yaml() {
    for dir in [PathBuf::from("tests/data/valid"), examples_dir()] {
        let set = load_paths(&[dir]).unwrap_or_else(|d| panic!("{d}"));
        let text = set.to_yaml().expect("serialisable");
        let again = load_str("round-trip.yaml", &text).unwrap_or_else(|d| panic!("{d}\n{text}"));
        assert_eq!(set, again);
    }
}

#[test]
fn loaded_sets_round_trip_through_json() {
    let set = load_paths(&[examples_dir()]).unwrap_or_else(|d| panic!("{d}"));
    for m in set.manifests() {
        let json = serde_json::to_string(&m).expect("serialisable");
        let back: model::Manifest = serde_json::from_str(&json).expect("deserialisable");
        assert_eq!(m, back);
    }
}

#[test]
fn json_deserialisation_rejects_unknown_fields() {
    let json = r#"{"kind":"DisruptionBudget","apiVersion":"reborn.dev/v1alpha1","metadata":{"name":"b"},
        "spec":{"selector":{},"maxUnavailable":1,"maxSurge":1}}"#;
    assert!(serde_json::from_str::<model::Manifest>(json).is_err());
}

#[test]
fn a_directory_is_read_without_its_subdirectories() {
    let dir = std::env::temp_dir().join(format!("reborn-model-subdirs-{}", std::process::id()));
    let sub = dir.join("cerbos");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(
        examples_dir().join("workers.yaml"),
        dir.join("workers.yaml"),
    )
    .unwrap();
    std::fs::copy(
        examples_dir().join("gold-images.yaml"),
        dir.join("gold-images.yaml"),
    )
    .unwrap();
    // Not a reborn manifest: a Cerbos policy kept beside the deployment's manifests.
    std::fs::write(
        sub.join("policy.yaml"),
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy: {}\n",
    )
    .unwrap();
    let loaded = model::load_paths(std::slice::from_ref(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    let set = loaded.unwrap_or_else(|d| panic!("subdirectory was read:\n{d}"));
    assert_eq!(set.nodes.len(), 2);
}

#[test]
fn quarantine_policy_loads_with_its_retention() {
    let text = "apiVersion: reborn.dev/v1alpha1
kind: TaintPolicy
metadata: {name: keep-for-forensics}
spec:
  match: {principalIds: [svc-worker]}
  threshold: {count: 3, window: 5m}
  severity: Critical
  action: Quarantine
  quarantineRetention: 24h
  taintTtl: 48h
";
    let set = load_str("quarantine.yaml", text).unwrap_or_else(|d| panic!("{d}"));
    let spec = &set.taint_policies[0].spec;
    assert_eq!(spec.action, model::TaintAction::Quarantine);
    assert_eq!(spec.quarantine_retention.map(|r| r.as_secs()), Some(86_400));
    let again = load_str("round-trip.yaml", &set.to_yaml().expect("serialisable"))
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(set, again);
}
