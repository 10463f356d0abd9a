//! materialize-redis from the shell: usage errors, configuration errors, the README's help.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_materialize-redis"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const BASE: [&str; 8] = [
    "--input",
    "/nonexistent",
    "--redis",
    "redis://127.0.0.1:1",
    "--start",
    "2025-11-01",
    "--end",
    "2025-11-02",
];

#[test]
fn start_after_end_is_a_usage_error() {
    let out = run(&[
        "--input",
        "x",
        "--redis",
        "redis://127.0.0.1:1",
        "--start",
        "2025-11-02",
        "--end",
        "2025-11-01",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is after --end"), "{}", stderr(&out));
}

#[test]
fn an_unknown_view_is_a_usage_error_naming_the_views() {
    let mut args = BASE.to_vec();
    args.extend(["--feature-view", "nope"]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("user_transaction_features"), "{}", stderr(&out));
}

#[test]
fn a_bad_connection_string_is_a_config_error() {
    let mut args = BASE.to_vec();
    args[3] = "127.0.0.1:6379,sslx=true";
    let out = run(&args);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown option `sslx`"), "{}", stderr(&out));
}

#[test]
fn a_bad_spec_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("features.yaml");
    std::fs::write(&spec, "project: x\nbogus: 1\n").unwrap();
    let mut args = BASE.to_vec();
    args.extend(["--spec", spec.to_str().unwrap()]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("features.yaml:"), "{}", stderr(&out));
}

/// The README's usage block is `--help`, verbatim; `UPDATE_README=1 cargo test` rewrites it.
#[test]
fn readme_shows_the_current_help() {
    let out = run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    featurekit::cli::check_readme_help(&readme, &help).unwrap();
}
