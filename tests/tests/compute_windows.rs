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
