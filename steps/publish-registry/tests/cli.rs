//! publish-registry from the shell: usage and configuration errors, the README's help.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_publish-registry"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_materialization_that_ends_before_it_starts_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.db");
    let out = run(&[
        "--registry",
        reg.to_str().unwrap(),
        "--offline-path",
        "/x",
        "--materialized",
        "2025-11-02",
        "2025-11-01",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!reg.exists());
}

#[test]
fn a_bad_spec_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("features.yaml");
    std::fs::write(&spec, "project: x\n").unwrap();
    let reg = dir.path().join("registry.db");
    let out = run(&[
        "--spec",
        spec.to_str().unwrap(),
        "--registry",
        reg.to_str().unwrap(),
        "--offline-path",
        "/x",
    ]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("features.yaml:"), "{}", stderr(&out));
}

#[test]
fn an_unsupported_registry_url_is_a_config_error() {
    let out = run(&["--registry", "ftp://host/registry.db", "--offline-path", "/x"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
}

/// The README's usage block is `--help`, verbatim; `UPDATE_README=1 cargo test` rewrites it.
#[test]
fn readme_shows_the_current_help() {
    let out = run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    featurekit::cli::check_readme_help(&readme, &help).unwrap();
}
