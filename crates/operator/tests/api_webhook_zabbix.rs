//! The Zabbix media type in `examples/zabbix/` stays consistent with its script and with the
//! webhook it calls.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn zabbix_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/zabbix")
}

fn media_type() -> serde_yaml::Value {
    let text = std::fs::read_to_string(zabbix_dir().join("media_reborn.yaml")).expect("media type");
    serde_yaml::from_str(&text).expect("valid YAML")
}

fn script_file() -> String {
    std::fs::read_to_string(zabbix_dir().join("reborn-taint.js")).expect("script")
}

#[test]
fn media_type_embeds_exactly_the_script_file() {
    let doc = media_type();
    let mt = &doc["zabbix_export"]["media_types"][0];
    assert_eq!(mt["type"].as_str(), Some("WEBHOOK"));
    assert_eq!(doc["zabbix_export"]["version"].as_str(), Some("6.0"));
    assert_eq!(mt["script"].as_str(), Some(script_file().as_str()));
}

#[test]
fn every_parameter_the_script_reads_is_declared() {
    let doc = media_type();
    let declared: BTreeSet<String> = doc["zabbix_export"]["media_types"][0]["parameters"]
        .as_sequence()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let script = script_file();
    let used: BTreeSet<String> = script
        .match_indices("params.")
        .map(|(i, _)| {
            script[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect();
    let missing: Vec<&String> = used.difference(&declared).collect();
    assert!(missing.is_empty(), "used but not declared: {missing:?}");
    for required in ["reborn_url", "secret", "node", "reason", "severity"] {
        assert!(declared.contains(required), "{required}");
    }
}

#[test]
fn script_speaks_the_webhooks_protocol() {
    let script = script_file();
    for needle in [
        "/v1/hooks/taint",
        operator::api::webhook::SIGNATURE_HEADER,
        operator::api::webhook::TIMESTAMP_HEADER,
        "sha256=",
        "hmac('sha256', params.secret, ts + '.' + body)",
        "['info', 'info', 'warning', 'warning', 'critical', 'critical']",
    ] {
        assert!(
            script
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            "{needle}"
        );
    }
}
