//! The real Feast 0.67 (SDK and `feast serve`) reads what compute-windows and
//! materialize-redis wrote, through the registry publish-registry wrote: the latest row of
//! every entity, nulls included.

use std::process::Command;

use featurekit_tests::{
    RedisServer, bin, compute_windows, feast_tool, generate_transactions, materialize_redis, repo_root, run_ok,
};

#[test]
fn feast_serves_what_materialize_redis_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.parquet");
    let offline = dir.path().join("offline");
    let repo = dir.path().join("repo");
    let (start, end) = ("2025-11-10T00:00:00Z", "2025-11-24T00:00:00Z");
    generate_transactions(
        &raw,
        &[
            "--rows",
            "60000",
            "--users",
            "2500",
            "--days",
            "35",
            "--start",
            "2025-10-20",
            "--null-amount-rate",
            "0.05",
        ],
    );
    compute_windows(&raw, &offline, &["--start", start, "--end", end, "--log-level", "warn"]);

    let redis = RedisServer::start();
    let script = repo_root().join("tests/feast/online_check.py");
    run_ok(
        Command::new(feast_tool("python"))
            .arg(&script)
            .arg("nulls")
            .arg("--offline")
            .arg(&offline)
            .args(["--end", end]),
    );
    // the registry is publish-registry's; the repo is only its feature_store.yaml
    let registry = repo.join("data/registry.db");
    run_ok(
        Command::new(bin("publish-registry"))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .arg("--registry")
            .arg(&registry)
            .arg("--offline-path")
            .arg(&offline)
            .args(["--log-level", "warn"]),
    );
    run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/registry_check.py"))
            .arg("repo")
            .arg("--repo")
            .arg(&repo)
            .arg("--registry")
            .arg(&registry)
            .args(["--redis-port", &redis.port.to_string()]),
    );
    materialize_redis(&offline, &redis.url(), start, end);
    let said = run_ok(
        Command::new(feast_tool("python"))
            .arg(&script)
            .arg("check")
            .arg("--repo")
            .arg(&repo)
            .arg("--offline")
            .arg(&offline)
            .args(["--start", start, "--end", end, "--entities", "1200"]),
    );
    println!("{said}");
    assert!(said.contains("1200 entities ("), "{said}");
    assert!(!said.contains("(0 with nulls)"), "the check must cover nulls: {said}");
}
