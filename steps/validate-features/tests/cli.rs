//! validate-features from the shell: usage and configuration errors, the README's help.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_validate-features"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_after_end_is_a_usage_error() {
    let out = run(&[
        "--input",
        "x",
        "--start",
        "2025-11-02",
        "--end",
        "2025-11-01",
        "--no-baseline",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_bad_rules_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    for (text, says) in [
        ("fresness:\n  max_lag: 1h\n", "unknown field"),
        ("freshness:\n  max_lag: soon\n", "max_lag"),
        ("bounds:\n  no_such_feature: {min: 0}\n", "no_such_feature"),
    ] {
        std::fs::write(&rules, text).unwrap();
        let out = run(&[
            "--input",
            "x",
            "--start",
            "2025-11-01",
            "--end",
            "2025-11-02",
            "--rules",
            rules.to_str().unwrap(),
            "--no-baseline",
        ]);
        assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

#[test]
fn no_input_is_exit_66() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "--input",
        dir.path().to_str().unwrap(),
        "--start",
        "2025-11-01",
        "--end",
        "2025-11-02",
        "--no-baseline",
    ]);
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
}

#[test]
fn a_baseline_that_is_not_there_fails_and_a_first_run_must_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("baseline.json");
    let base = ["--input", "x", "--start", "2025-11-01", "--end", "2025-11-02"];
    let out = run(&[&base[..], &["--baseline", missing.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
    assert!(stderr(&out).contains("no profile there"), "{}", stderr(&out));
    // neither flag: a usage error naming both, so that no run skips drift by accident
    let out = run(&base);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--no-baseline"), "{}", stderr(&out));
}

/// The README's usage block is `--help`, verbatim; `UPDATE_README=1 cargo test` rewrites it.
#[test]
fn readme_shows_the_current_help() {
    let out = run(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    featurekit::cli::check_readme_help(&readme, &help).unwrap();
}
