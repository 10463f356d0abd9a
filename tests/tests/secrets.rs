//! No secret given to a step reaches its --help, its logs or its summary: passwords and
//! connection strings come in through the environment (Argo's Secrets), and every step prints
//! its --help with the environment's values beside the flags.

use std::process::Command;

use featurekit_tests::{bin, repo_root};

const MARKER: &str = "s3cr3t-d0-not-print";
const STEPS: [&str; 5] = [
    "extract-bigquery",
    "compute-windows",
    "validate-features",
    "materialize-redis",
    "publish-registry",
];

/// The variables that carry a secret, as a user would set them.
fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("FEATUREKIT_REDIS", format!("redis://default:{MARKER}@127.0.0.1:1")),
        ("FEATUREKIT_ONLINE", format!("redis://default:{MARKER}@127.0.0.1:1")),
        ("FEATUREKIT_REDIS_PASSWORD", MARKER.to_string()),
    ]
}

#[test]
fn no_steps_help_shows_a_secret_from_the_environment() {
    for step in STEPS {
        let out = Command::new(bin(step)).arg("--help").envs(secrets()).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{step} --help");
        assert!(!help.contains(MARKER), "{step} --help shows a secret:\n{help}");
    }
}

#[test]
fn a_redis_that_refuses_leaves_no_password_in_the_logs_or_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    // nothing listens on port 1: the step fails, and says where it tried, without the password
    for (step, extra) in [
        ("materialize-redis", vec!["--attempts", "1"]),
        ("validate-features", vec!["--no-baseline"]),
    ] {
        let out = Command::new(bin(step))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .args([
                "--input",
                dir.path().to_str().unwrap(),
                "--start",
                "2025-11-14",
                "--end",
                "2025-11-15",
            ])
            .args(["--log-format", "json", "--summary", summary.to_str().unwrap()])
            .args(extra)
            .envs(secrets())
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{step}: {logs}");
        assert!(!logs.contains(MARKER), "{step}'s logs show the password: {logs}");
        let written = std::fs::read_to_string(&summary).unwrap_or_default();
        assert!(
            !written.contains(MARKER),
            "{step}'s summary shows the password: {written}"
        );
    }
}
