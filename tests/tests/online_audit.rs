//! validate-features --online against a real redis-server after a real compute-windows ->
//! materialize-redis run: a clean store has no mismatch (sampled and whole), the real Feast
//! serves what the audit decoded, and each defect planted in Redis is caught and named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use featurekit::feast::{EntityKeyCodec, KeyValue, KeyVersion, Timestamp, encode_int, feature_field, redis_key};
use featurekit::spec::{Dtype, ValueType};
use featurekit_tests::{
    RedisServer, bin, compute_windows, feast_tool, generate_transactions, materialize_redis, repo_root, run_ok,
};
use prost::Message;

const VIEW: &str = "user_transaction_features";
const DAY: &str = "2025-11-14";
const NEXT: &str = "2025-11-15";
const AFTER: &str = "2025-11-16";

/// The offline store every test reads (read only): one day of generated transactions, and
/// the next day's run below `later/`.
fn offline() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.parquet");
        generate_transactions(
            &raw,
            &[
                "--rows",
                "40000",
                "--users",
                "2500",
                "--days",
                "42",
                "--start",
                "2025-10-05",
            ],
        );
        let args = |s: &'static str, e: &'static str| ["--start", s, "--end", e, "--log-level", "warn"];
        let today = dir.path().join("offline");
        compute_windows(&raw, &today, &args(DAY, NEXT));
        // rows with nulls and NaNs that win their entity's tie (every 7th entity)
        run_ok(
            Command::new(feast_tool("python"))
                .arg(repo_root().join("tests/feast/online_check.py"))
                .arg("nulls")
                .arg("--offline")
                .arg(&today)
                .args(["--end", NEXT]),
        );
        compute_windows(&raw, &dir.path().join("older"), &args("2025-11-13", DAY));
        // the day after, in the same offline store: a later run's rows
        let later = dir.path().join("later");
        compute_windows(&raw, &later, &args(DAY, NEXT));
        compute_windows(&raw, &later, &args(NEXT, AFTER));
        dir
    })
    .path()
}

fn store(name: &str) -> PathBuf {
    offline().join(name)
}

/// A clean store: the day's run materialized.
fn materialized() -> RedisServer {
    let redis = RedisServer::start();
    materialize_redis(&store("offline"), &redis.url(), DAY, NEXT);
    redis
}

struct Audit {
    out: Output,
    report: serde_json::Value,
    summary: serde_json::Value,
    dir: tempfile::TempDir,
}

impl Audit {
    fn online(&self) -> &serde_json::Value {
        &self.report["views"][0]["online"]
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn served(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("served.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn audit_with(spec: &Path, input: &Path, url: &str, extra: &[&str]) -> Audit {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("validate-features"))
        .arg("--spec")
        .arg(spec)
        .arg("--input")
        .arg(input)
        .args(["--online", url, "--start", DAY, "--end", NEXT])
        .arg("--report")
        .arg(dir.path().join("report"))
        .arg("--summary")
        .arg(dir.path().join("summary.json"))
        .arg("--sample-out")
        .arg(dir.path().join("served.jsonl"))
        .args([
            "--log-format",
            "text",
            "--log-level",
            "warn",
            "--attempts",
            "2",
            "--redis-timeout",
            "2",
        ])
        .args(extra)
        .output()
        .unwrap();
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .map(|s| serde_json::from_str(&s).unwrap())
            .unwrap_or(serde_json::Value::Null)
    };
    Audit {
        report: read(dir.path().join("report/report.json")),
        summary: read(dir.path().join("summary.json")),
        out,
        dir,
    }
}

fn audit(redis: &RedisServer, extra: &[&str]) -> Audit {
    audit_with(
        &repo_root().join("features.yaml"),
        &store("offline"),
        &redis.url(),
        extra,
    )
}

fn passes(a: &Audit) {
    assert!(a.out.status.success(), "{}", a.stderr());
    assert_eq!(a.online()["mismatch_rate"], 0.0, "{}", a.online());
}

/// Fails with 65, the one-line error naming the view and the rate.
fn fails(a: &Audit) {
    let stderr = a.stderr();
    assert_eq!(a.out.status.code(), Some(65), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("breaks the contract")).unwrap_or("");
    assert!(line.contains(&format!("{VIEW}.online.mismatch_rate")), "{stderr}");
    assert!(
        a.summary["online_mismatch_rate"].as_f64().unwrap() > 0.0,
        "{}",
        a.summary
    );
}

fn key(user: i64, version: KeyVersion) -> Vec<u8> {
    let codec = EntityKeyCodec::new(version, &[("user_id", ValueType::Int64)]);
    redis_key(&codec, &[KeyValue::Int64(user)], "fraud_detection")
}

/// The first sampled entity of a clean audit (the most active user) and its served row.
fn first_served(redis: &RedisServer) -> (i64, serde_json::Value) {
    let a = audit(redis, &["--sample", "50"]);
    passes(&a);
    let row = a.served()[0].clone();
    (row["entity"]["user_id"].as_i64().unwrap(), row)
}

fn conn(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url()).unwrap().get_connection().unwrap()
}

#[test]
fn a_clean_run_has_no_mismatch_sampled_or_whole() {
    let redis = materialized();
    let a = audit(&redis, &["--sample", "1000"]);
    passes(&a);
    let o = a.online();
    assert_eq!(o["checked"], 1000);
    assert_eq!(o["matched"], 1000);
    assert!(o["entities"].as_u64().unwrap() > 1000, "a sample, not all: {o}");
    assert_eq!(a.summary["online_checked"], 1000);
    assert_eq!(a.summary[format!("{VIEW}_online_mismatch_rate")], 0.0);
    assert!(a.summary["online_staleness_seconds"].as_f64().unwrap() > 0.0);
    let served = a.served();
    assert_eq!(served.len(), 1000);
    assert!(
        served
            .iter()
            .any(|r| r["features"].as_object().unwrap().values().any(|v| v.is_null())),
        "the sample includes entities with nulls"
    );
    // the same rows give the same sample
    let again = audit(&redis, &["--sample", "1000"]);
    assert_eq!(again.served(), served);

    let all = audit(&redis, &["--sample", "1000000"]);
    passes(&all);
    assert_eq!(all.online()["checked"], all.online()["entities"]);
    assert_eq!(all.online()["matched"], all.online()["entities"]);
    assert!(all.online()["mismatches"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(all.dir.path().join("report/report.md")).unwrap();
    assert!(md.contains("online store: redis://127.0.0.1:"), "{md}");
    assert!(md.contains("| mismatch rate | 0.0000 |"), "{md}");
}

#[test]
fn feast_serves_what_the_audit_decoded() {
    let redis = materialized();
    let a = audit(&redis, &["--sample", "1000"]);
    passes(&a);
    let repo = a.dir.path().join("repo");
    let registry = repo.join("data/registry.db");
    run_ok(
        Command::new(bin("publish-registry"))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .arg("--registry")
            .arg(&registry)
            .arg("--offline-path")
            .arg(store("offline"))
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
    let said = run_ok(
        Command::new(feast_tool("python"))
            .arg(repo_root().join("tests/feast/online_check.py"))
            .arg("served")
            .arg("--repo")
            .arg(&repo)
            .arg("--served")
            .arg(a.dir.path().join("served.jsonl")),
    );
    assert!(said.contains("served: 1000 entities"), "{said}");
    assert!(!said.contains(" 0 nulls"), "the comparison must cover nulls: {said}");
}

#[test]
fn a_value_changed_in_redis_is_named() {
    let redis = materialized();
    let (user, _) = first_served(&redis);
    let mut value = vec![];
    encode_int(Dtype::Int64, Some(987_654), &mut value);
    let field = feature_field(VIEW, "transaction_count_24h");
    let _: () = redis::cmd("HSET")
        .arg(key(user, KeyVersion::V3))
        .arg(&field[..])
        .arg(value)
        .query(&mut conn(&redis))
        .unwrap();
    let a = audit(&redis, &["--sample", "100"]);
    fails(&a);
    assert_eq!(a.online()["wrong"], 1, "{}", a.online());
    let m = &a.online()["mismatches"][0];
    assert_eq!(m["entity"], format!("user_id={user}"));
    assert_eq!(m["feature"], "transaction_count_24h");
    assert_eq!(m["online"], "987654 (int64_val)");
    assert!(!m["offline"].as_str().unwrap().starts_with("987654"), "{m}");
    // a bound above the rate passes
    passes_with_rate(&redis);
}

fn passes_with_rate(redis: &RedisServer) {
    let a = audit(redis, &["--sample", "100", "--max-mismatch-rate", "0.05"]);
    assert!(a.out.status.success(), "{}", a.stderr());
    assert_eq!(a.online()["mismatch_rate"], 0.01);
}

#[test]
fn a_deleted_hash_is_missing() {
    let redis = materialized();
    let (user, _) = first_served(&redis);
    let _: () = redis::cmd("DEL")
        .arg(key(user, KeyVersion::V3))
        .query(&mut conn(&redis))
        .unwrap();
    let a = audit(&redis, &["--sample", "100"]);
    fails(&a);
    assert_eq!(a.online()["missing"], 1);
    assert_eq!(a.online()["mismatches"][0]["entity"], format!("user_id={user}"));
    assert_eq!(a.online()["mismatches"][0]["problem"], "missing");
}

#[test]
fn a_ts_moved_back_is_stale() {
    let redis = materialized();
    let (user, _) = first_served(&redis);
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg(key(user, KeyVersion::V3))
        .arg(format!("_ts:{VIEW}"))
        .query(&mut conn(&redis))
        .unwrap();
    let served = Timestamp::decode_bytes(&stored).unwrap();
    let back = Timestamp {
        seconds: served.seconds - 3600,
        ..served
    }
    .encode_to_vec();
    let _: () = redis::cmd("HSET")
        .arg(key(user, KeyVersion::V3))
        .arg(format!("_ts:{VIEW}"))
        .arg(back)
        .query(&mut conn(&redis))
        .unwrap();
    let a = audit(&redis, &["--sample", "100"]);
    fails(&a);
    assert_eq!(a.online()["stale"], 1);
    let m = &a.online()["mismatches"][0];
    assert_eq!(
        (m["problem"].as_str(), m["feature"].as_str()),
        (Some("stale"), Some(&*format!("_ts:{VIEW}")))
    );
}

#[test]
fn a_view_materialized_from_an_older_run_is_stale() {
    let redis = RedisServer::start();
    materialize_redis(&store("older"), &redis.url(), "2025-11-13", DAY);
    let a = audit(&redis, &["--sample", "500"]);
    fails(&a);
    let o = a.online();
    assert!(o["stale"].as_u64().unwrap() > 250, "{o}");
    assert_eq!(o["matched"], 0, "{o}");
    assert!(o["newest_ts"].as_str().unwrap() <= "2025-11-14T00:00:00Z", "{o}");
}

#[test]
fn a_float32_view_written_as_float64_is_wrong() {
    // materialized with the Float64 spec, audited with the view declared Float32
    let redis = materialized();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("features.yaml");
    let text = std::fs::read_to_string(repo_root().join("features.yaml")).unwrap();
    std::fs::write(&spec, text.replace("dtype: Float64", "dtype: Float32")).unwrap();
    let a = audit_with(&spec, &store("offline"), &redis.url(), &["--sample", "100"]);
    fails(&a);
    assert!(a.online()["wrong"].as_u64().unwrap() > 90, "{}", a.online());
    let m = a.online()["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["online"] != "null")
        .unwrap();
    assert!(m["offline"].as_str().unwrap().ends_with("(Float32)"), "{m}");
    assert!(m["online"].as_str().unwrap().ends_with("(double_val)"), "{m}");
}

#[test]
fn keys_of_the_other_entity_key_version_are_missing_and_said_so() {
    let redis = RedisServer::start();
    run_ok(
        Command::new(bin("materialize-redis"))
            .arg("--spec")
            .arg(repo_root().join("features.yaml"))
            .arg("--input")
            .arg(store("offline"))
            .args([
                "--redis",
                &redis.url(),
                "--start",
                DAY,
                "--end",
                NEXT,
                "--entity-key-version",
                "2",
            ]),
    );
    let a = audit(&redis, &["--sample", "100"]);
    fails(&a);
    assert_eq!(a.online()["missing"], 100);
    assert!(a.stderr().contains("--entity-key-version 2"), "{}", a.stderr());
    // and audited as version 2, they are all there
    passes(&audit(&redis, &["--sample", "100", "--entity-key-version", "2"]));
}

#[test]
fn another_projects_keys_only_are_all_missing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("features.yaml");
    let text = std::fs::read_to_string(repo_root().join("features.yaml")).unwrap();
    std::fs::write(&spec, text.replace("project: fraud_detection", "project: payments")).unwrap();
    let redis = RedisServer::start();
    run_ok(
        Command::new(bin("materialize-redis"))
            .arg("--spec")
            .arg(&spec)
            .arg("--input")
            .arg(store("offline"))
            .args(["--redis", &redis.url(), "--start", DAY, "--end", NEXT]),
    );
    let a = audit(&redis, &["--sample", "100"]);
    fails(&a);
    assert_eq!(a.online()["missing"], 100);
    assert_eq!(a.online()["mismatch_rate"], 1.0);
    assert!(
        a.online()["hint"].as_str().unwrap().contains("`payments`"),
        "{}",
        a.online()
    );
}

#[test]
fn a_later_runs_newer_row_is_no_mismatch() {
    // the next day's run materialized over this one: Redis serves rows newer than the interval's
    let redis = RedisServer::start();
    materialize_redis(&store("later"), &redis.url(), DAY, NEXT);
    materialize_redis(&store("later"), &redis.url(), NEXT, AFTER);
    let a = audit_with(
        &repo_root().join("features.yaml"),
        &store("later"),
        &redis.url(),
        &["--sample", "300"],
    );
    passes(&a);
    assert!(a.online()["newer"].as_u64().unwrap() > 100, "{}", a.online());
    // a newer _ts that no offline row has is a mismatch
    let user = a.served()[0]["entity"]["user_id"].as_i64().unwrap();
    let ahead = Timestamp::from_micros(1_893_456_000_000_000).encode_to_vec(); // 2030
    let _: () = redis::cmd("HSET")
        .arg(key(user, KeyVersion::V3))
        .arg(format!("_ts:{VIEW}"))
        .arg(ahead)
        .query(&mut conn(&redis))
        .unwrap();
    let a = audit_with(
        &repo_root().join("features.yaml"),
        &store("later"),
        &redis.url(),
        &["--sample", "300"],
    );
    fails(&a);
    assert_eq!(a.online()["not_offline"], 1, "{}", a.online());
}

#[test]
fn staleness_is_bounded_when_asked() {
    let redis = materialized();
    let a = audit(&redis, &["--sample", "100", "--max-staleness", "1d"]);
    // the data is of November 2025: older than a day
    assert_eq!(a.out.status.code(), Some(65), "{}", a.stderr());
    assert!(
        a.stderr().contains(&format!("{VIEW}.online.staleness")),
        "{}",
        a.stderr()
    );
    let a = audit(&redis, &["--sample", "100", "--max-staleness", "5200w"]);
    passes(&a);
}

#[test]
fn an_unreachable_redis_exits_75_a_bad_url_or_password_78() {
    let port = featurekit_tests::free_port();
    let spec = repo_root().join("features.yaml");
    let a = audit_with(
        &spec,
        &store("offline"),
        &format!("redis://u:hunter2@127.0.0.1:{port}"),
        &[],
    );
    assert_eq!(a.out.status.code(), Some(75), "{}", a.stderr());
    assert!(a.stderr().contains("after 2 attempts"), "{}", a.stderr());
    assert!(!a.stderr().contains("hunter2"));
    let a = audit_with(&spec, &store("offline"), "redis://127.0.0.1:notaport", &[]);
    assert_eq!(a.out.status.code(), Some(78), "{}", a.stderr());
    assert!(a.stderr().contains("--online"), "{}", a.stderr());
    let redis = RedisServer::start();
    redis.cli(&["CONFIG", "SET", "requirepass", "s3cret"]);
    let a = audit_with(
        &spec,
        &store("offline"),
        &redis.url(),
        &["--redis-password", "not-the-s3cret"],
    );
    assert_eq!(a.out.status.code(), Some(78), "{}", a.stderr());
    assert!(!a.stderr().contains("not-the-s3cret"), "{}", a.stderr());
    let a = audit_with(&spec, &store("offline"), &redis.url(), &[]);
    assert_eq!(a.out.status.code(), Some(78), "no password: {}", a.stderr());
}
