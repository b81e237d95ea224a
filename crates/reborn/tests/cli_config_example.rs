//! `examples/reborn.yaml` parses into the daemon config and resolves with its secrets set.

use std::path::PathBuf;

use operator::config::{DaemonConfig, SecretSource};

fn example() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/reborn.yaml");
    std::fs::read_to_string(path).expect("examples/reborn.yaml")
}

#[test]
fn example_config_parses_with_documented_defaults() {
    let config: DaemonConfig = serde_yaml::from_str(&example()).expect("valid config");
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:7480");
    assert_eq!(config.api.tokens.len(), 2);
    assert_eq!(config.resync_period.as_secs(), 30);
    assert!(config.api.metrics_auth);
    assert_eq!(config.audit.sources.len(), 1);
    assert_eq!(
        config.pve.token_secret,
        SecretSource {
            env: Some("REBORN_PVE_TOKEN_SECRET".to_owned()),
            ..SecretSource::default()
        }
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let text = example().replace("resyncPeriod: 30s", "resyncPeriods: 30s");
    let err = serde_yaml::from_str::<DaemonConfig>(&text).expect_err("a typo is an error");
    assert!(err.to_string().contains("resyncPeriods"), "{err}");
}

#[test]
fn resolved_config_reads_secrets_from_files_and_never_shows_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pve = dir.path().join("pve");
    let ops = dir.path().join("ops");
    let viewer = dir.path().join("viewer");
    std::fs::write(&pve, "pve-secret-value\n").expect("write");
    std::fs::write(&ops, "ops-token-value").expect("write");
    std::fs::write(&viewer, "viewer-token-value").expect("write");
    let text = format!(
        "pve:\n  endpoint: https://pve1:8006\n  tokenId: reborn@pve!op\n  tokenSecret: {{file: {}}}\n  tls: {{fingerprint: \"{}\"}}\napi:\n  tokens:\n    - {{name: ops, role: operator, secret: {{file: {}}}}}\n    - {{name: grafana, role: viewer, secret: {{file: {}}}}}\n",
        pve.display(),
        ["AB"; 32].join(":"),
        ops.display(),
        viewer.display()
    );
    let config: DaemonConfig = serde_yaml::from_str(&text).expect("config");
    let resolved = config.resolve().expect("resolves");
    assert_eq!(resolved.pve_token_secret.expose(), "pve-secret-value");
    let caller = resolved
        .api_tokens
        .authenticate("ops-token-value")
        .expect("token known");
    assert_eq!(caller.name, "ops");
    let shown = format!("{resolved:?}");
    for secret in ["pve-secret-value", "ops-token-value", "viewer-token-value"] {
        assert!(!shown.contains(secret), "{secret} leaked into Debug");
    }
}

#[test]
fn missing_secret_variable_is_named_in_the_error() {
    let text = "pve:\n  endpoint: https://pve1:8006\n  tokenId: reborn@pve!op\n  tokenSecret: {env: REBORN_TEST_SURELY_UNSET_VAR}\n";
    let config: DaemonConfig = serde_yaml::from_str(text).expect("config");
    let err = config.resolve().expect_err("unset variable");
    assert!(
        err.to_string().contains("REBORN_TEST_SURELY_UNSET_VAR"),
        "{err}"
    );
}

#[test]
fn jsonrag_operator_config_parses_and_names_its_audit_source() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/jsonrag/operator/reborn.yaml");
    let text = std::fs::read_to_string(path).expect("examples/jsonrag/operator/reborn.yaml");
    let config: operator::config::DaemonConfig =
        serde_yaml::from_str(&text).expect("the jsonrag operator config parses");
    assert_eq!(config.audit.sources.len(), 1);
    assert_eq!(config.controller["operatorId"], "jsonrag");
}
