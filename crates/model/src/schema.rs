//! The JSON Schema of one manifest document, generated from the Rust types.

use crate::kinds::Manifest;

/// Repository path (from the workspace root) of the checked-in schema file.
pub const SCHEMA_PATH: &str = "manifests/schema/reborn.v1alpha1.json";

/// The JSON Schema of one manifest document (`oneOf` the kinds, told apart by `kind`).
/// Editors use it through the modeline
/// `# yaml-language-server: $schema=<path to manifests/schema/reborn.v1alpha1.json>`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Manifest);
    schema.insert(
        "title".to_string(),
        serde_json::Value::String("reborn manifest (reborn.dev/v1alpha1)".to_string()),
    );
    schema.insert(
        "description".to_string(),
        serde_json::Value::String(
            "One reborn manifest document: a Node, GoldImage, DisruptionBudget or TaintPolicy."
                .to_string(),
        ),
    );
    schema.to_value()
}

/// [`json_schema`] as pretty-printed JSON with a trailing newline: the content of
/// [`SCHEMA_PATH`] and what `reborn schema` prints.
pub fn json_schema_pretty() -> String {
    let mut text =
        serde_json::to_string_pretty(&json_schema()).unwrap_or_else(|_| String::from("{}"));
    text.push('\n');
    text
}
