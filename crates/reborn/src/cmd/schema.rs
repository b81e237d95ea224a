//! `reborn schema`: the manifests' JSON Schema on stdout.

use crate::exit_code::ExitStatus;

/// Prints the schema as pretty JSON.
pub fn run() -> anyhow::Result<ExitStatus> {
    println!("{}", serde_json::to_string_pretty(&model::json_schema())?);
    Ok(ExitStatus::Success)
}
