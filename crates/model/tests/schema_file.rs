//! The checked-in JSON Schema matches the Rust types.
//! Regenerate with `REBORN_UPDATE_SCHEMA=1 cargo test -p model --test schema_file`.

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(model::SCHEMA_PATH)
}

#[test]
fn checked_in_schema_is_up_to_date() {
    let current = model::json_schema_pretty();
    let path = schema_path();
    if std::env::var_os("REBORN_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).expect("schema written");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == current,
        "{} is stale: run `REBORN_UPDATE_SCHEMA=1 cargo test -p model --test schema_file`",
        path.display()
    );
}

#[test]
fn schema_offers_every_kind() {
    let schema = model::json_schema();
    let text = schema.to_string();
    for kind in ["Node", "GoldImage", "DisruptionBudget", "TaintPolicy"] {
        assert!(
            text.contains(&format!("\"const\":\"{kind}\"")),
            "{kind} missing"
        );
    }
    assert!(text.contains("reborn.dev/v1alpha1"));
}
