//! compute-windows against DuckDB: the same generated data, the same six features, the same rows.

use std::process::Command;

use featurekit_tests::{compute_windows, generate_transactions, repo_root, run_ok, venv_tool};

#[test]
fn equals_duckdb_range_windows_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.parquet");
    generate_transactions(
        &raw,
        &[
            "--rows",
            "60000",
            "--users",
            "800",
            "--days",
            "40",
            "--start",
            "2025-11-01",
            "--null-amount-rate",
            "0.02",
        ],
    );
    let ours = dir.path().join("ours");
    compute_windows(
        &raw,
        &ours,
        &[
            "--start",
            "2025-11-20",
            "--end",
            "2025-12-05",
            "--no-as-of",
            "--log-level",
            "warn",
        ],
    );
    let duck = dir.path().join("duckdb.parquet");
    let python = venv_tool("python");
    run_ok(
        Command::new(&python)
            .arg(repo_root().join("bench/peers/windows_duckdb.py"))
            .arg("--input")
            .arg(&raw)
            .arg("--output")
            .arg(&duck)
            .args(["--start", "2025-11-20", "--end", "2025-12-05"]),
    );
    let verdict = run_ok(
        Command::new(&python)
            .arg(repo_root().join("bench/peers/compare.py"))
            .arg(ours.join("user_transaction_features"))
            .arg(&duck),
    );
    assert!(verdict.starts_with("OK"), "compare.py: {verdict}");
}

/// SIGTERM while the workers write to S3 (moto): every unfinished multipart upload is
/// aborted, nothing appears in the bucket, and the run exits 143.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_compute_leaves_no_object_in_s3() {
    use featurekit::artifact::Location;
    use featurekit_tests::{Moto, bin, wait_for_progress};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.parquet");
    generate_transactions(&raw, &["--rows", "4000000", "--users", "200000", "--days", "40"]);
    let moto = Moto::start();
    moto.create_bucket("lake");
    let progress = dir.path().join("progress");
    let child = Command::new(bin("compute-windows"))
        .arg("--spec")
        .arg(repo_root().join("features.yaml"))
        .arg("--input")
        .arg(&raw)
        .args([
            "--output",
            "s3://lake/features",
            "--start",
            "2025-11-01",
            "--end",
            "2025-12-10",
        ])
        // one worker: the signal comes after its first partition, with most of the rows to go
        .args(["--threads", "1", "--log-level", "info"])
        .envs(moto.env())
        .env("ARGO_PROGRESS_FILE", &progress)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait until a partition is done: its rows are in open uploads
    wait_for_progress(&progress, 0, "compute-windows");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress = std::fs::read_to_string(&progress).unwrap_or_default();
    eprintln!("stopped at {progress} rows");
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("aborted unfinished upload"), "{stderr}");
    assert!(!stderr.contains("dropped outside a runtime"), "{stderr}");
    let opts = moto.options();
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let left = Location::parse_with("s3://lake/", &opts).unwrap().list().await.unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}
