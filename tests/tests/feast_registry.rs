//! The real Feast 0.67 uses the registry publish-registry wrote: its CLI lists our objects,
//! get_historical_features is point-in-time correct over compute-windows' output, online
//! reads work after materialize-redis and --materialized, materialize-incremental continues
//! from our END, and a `feast apply` of the equivalent features.py changes nothing that matters.

use std::path::Path;
use std::process::Command;

use featurekit_tests::{
    RedisServer, bin, compute_windows, feast_tool, generate_transactions, materialize_redis, repo_root, run_ok,
};
use prost::Message;
use publish_registry::merge::split;
use publish_registry::proto::{Entity, registry};

fn check(phase: &str, repo: &Path, args: &[&str]) -> String {
    let said = run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/registry_check.py"))
            .arg(phase)
            .arg("--repo")
            .arg(repo)
            .args(args),
    );
    println!("{said}");
    said
}

fn publish(registry: &Path, offline: &Path, extra: &[&str]) -> String {
    run_ok(
        Command::new(bin("publish-registry"))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .arg("--registry")
            .arg(registry)
            .arg("--offline-path")
            .arg(offline)
            .args(["--log-level", "warn"])
            .args(extra),
    )
}

#[test]
fn feast_uses_the_registry_publish_registry_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.parquet");
    let offline = dir.path().join("offline");
    let repo = dir.path().join("repo");
    let registry = repo.join("data/registry.db");
    let (start, end) = ("2025-11-10T00:00:00Z", "2025-11-24T00:00:00Z");
    generate_transactions(
        &raw,
        &[
            "--rows",
            "40000",
            "--users",
            "1500",
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

    let plan = publish(&registry, &offline, &["--workflow", "wf-test"]);
    assert!(
        plan.contains("Created feature view user_transaction_features"),
        "{plan}"
    );
    let port = redis.port.to_string();
    check(
        "repo",
        &repo,
        &["--registry", registry.to_str().unwrap(), "--redis-port", &port],
    );
    check("lists", &repo, &[]);
    let said = check(
        "historical",
        &repo,
        &[
            "--raw",
            raw.to_str().unwrap(),
            "--start",
            start,
            "--end",
            end,
            "--rows",
            "150",
        ],
    );
    assert!(said.contains("150 entity rows"), "{said}");

    materialize_redis(&offline, &redis.url(), start, end);
    publish(&registry, &offline, &["--materialized", start, end]);
    check("online", &repo, &["--offline", offline.to_str().unwrap()]);
    check(
        "incremental",
        &repo,
        &["--expect-start", end, "--end", "2025-11-25T00:00:00Z"],
    );

    // Feast's own apply of the same definitions: nothing that matters changes
    check("apply", &repo, &["--offline", offline.to_str().unwrap()]);
    publish(&registry, &offline, &["--check"]);
    // and we keep what Feast added (its __dummy entity) when we publish again
    publish(&registry, &offline, &["--materialized", start, end]);
    let bytes = std::fs::read(&registry).unwrap();
    let entities: Vec<String> = split(&bytes)
        .unwrap()
        .iter()
        .filter(|f| f.number == registry::ENTITIES)
        .map(|f| Entity::decode(f.payload()).unwrap().spec.unwrap().name)
        .collect();
    assert!(entities.contains(&"__dummy".to_string()), "{entities:?}");
    check("online", &repo, &["--offline", offline.to_str().unwrap()]);
}
