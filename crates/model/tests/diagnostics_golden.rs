//! Golden tests: the rendered diagnostics of every invalid fixture directory.

use std::path::{Path, PathBuf};

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("tests/data/invalid")
        .expect("fixture directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn rendered(dir: &Path) -> String {
    match model::load_paths(&[dir.to_path_buf()]) {
        Ok(set) => panic!(
            "{} should be invalid, loaded: {}",
            dir.display(),
            set.summary()
        ),
        Err(diags) => diags.to_string(),
    }
}

#[test]
fn every_invalid_fixture_renders_its_golden_diagnostics() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 10,
        "expected the invalid fixture cases, found {}",
        dirs.len()
    );
    for dir in dirs {
        let case = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 case name")
            .to_string();
        insta::assert_snapshot!(case, rendered(&dir));
    }
}

#[test]
fn diagnostics_are_the_same_on_every_run() {
    for dir in case_dirs() {
        assert_eq!(rendered(&dir), rendered(&dir));
    }
}

#[test]
fn every_diagnostic_has_a_location_offending_text_and_hint() {
    for dir in case_dirs() {
        let Err(diags) = model::load_paths(std::slice::from_ref(&dir)) else {
            panic!("{} should be invalid", dir.display())
        };
        for d in diags.iter() {
            assert!(
                d.line > 0 && d.col > 0,
                "{}: no location: {d}",
                dir.display()
            );
            assert!(
                !d.source_line.is_empty(),
                "{}: no offending text: {d}",
                dir.display()
            );
            assert!(d.help.is_some(), "{}: no hint: {d}", dir.display());
        }
    }
}

#[test]
fn missing_path_is_reported_not_panicked() {
    let Err(diags) = model::load_paths(&[PathBuf::from("tests/data/does-not-exist.yaml")]) else {
        panic!("a missing file cannot be valid")
    };
    assert_eq!(diags.len(), 1);
    assert!(diags.to_string().contains("cannot read file"));
}
