//! The offline manifest commands through the real binary: `validate` (exit codes, summary,
//! diagnostics with file:line:col) and `schema` (the same schema as the checked-in file).

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn reborn(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("reborn")
        .expect("reborn binary")
        .args(args)
        .output()
        .expect("run reborn")
}

#[test]
fn validate_accepts_the_jsonrag_example_with_a_one_line_summary() {
    let dir = repo("examples/jsonrag");
    let out = reborn(&["validate", "-f", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("4 nodes") && stdout.ends_with("valid\n"),
        "{stdout}"
    );
}

#[test]
fn validate_reports_every_mistake_with_its_location_and_exits_2() {
    let file = repo("crates/model/tests/data/invalid/unknown-fields/node.yaml");
    let out = reborn(&["validate", "-f", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    for expected in [
        "node.yaml:16:25",
        "unknown field `memroy` in `spec.resources`",
        "did you mean `memory`",
        "unknown field `replacment`",
        "unknown field `goldimage`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn validate_of_a_missing_path_exits_2_and_names_it() {
    let out = reborn(&["validate", "-f", "/nonexistent/manifests.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/manifests.yaml"), "{stderr}");
}

#[test]
fn schema_prints_the_checked_in_json_schema() {
    let out = reborn(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let file = std::fs::read_to_string(repo("manifests/schema/reborn.v1alpha1.json")).unwrap();
    let checked_in: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(printed, checked_in);
}
