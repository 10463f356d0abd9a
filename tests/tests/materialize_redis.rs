//! materialize-redis against a real redis-server: Feast's golden bytes, the `_ts` rule, bad
//! input, a dead server, and a server killed in the middle of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use featurekit::artifact::{Location, ParquetSink, WriteOptions};
use featurekit_tests::{RedisServer, bin, repo_root};

const VIEW: &str = "user_transaction_features";
/// 2025-11-14T00:00:00Z in microseconds.
const T0: i64 = 1_763_078_400_000_000;
const HOUR: i64 = 3_600_000_000;

/// One row of the seed view: user, event time, created time, then the six features.
#[derive(Clone, Copy)]
struct Row {
    user: Option<i64>,
    ts: i64,
    created: i64,
    counts: [Option<i64>; 2],
    amounts: [Option<f64>; 3],
    distinct: Option<i64>,
}

fn row(user: i64, ts: i64, seed: i64) -> Row {
    Row {
        user: Some(user),
        ts,
        created: T0,
        counts: [Some(seed % 5), Some(seed % 17)],
        amounts: [
            Some(seed as f64 * 0.5),
            (seed % 3 != 0).then_some(seed as f64),
            Some(seed as f64 * 2.0),
        ],
        distinct: Some(seed % 7),
    }
}

fn feature_schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_timestamp", ts.clone(), true),
        Field::new("transaction_count_1h", DataType::Int64, true),
        Field::new("transaction_count_24h", DataType::Int64, true),
        Field::new("avg_transaction_amount_7d", DataType::Float64, true),
        Field::new("avg_transaction_amount_30d", DataType::Float64, true),
        Field::new("max_transaction_amount_7d", DataType::Float64, true),
        Field::new("distinct_merchant_count_7d", DataType::Int64, true),
        Field::new("created_timestamp", ts, true),
    ]))
}

fn batch(rows: &[Row]) -> RecordBatch {
    let ints = |f: &dyn Fn(&Row) -> Option<i64>| Arc::new(rows.iter().map(f).collect::<Int64Array>()) as ArrayRef;
    let floats = |i: usize| Arc::new(rows.iter().map(|r| r.amounts[i]).collect::<Float64Array>()) as ArrayRef;
    let times = |f: &dyn Fn(&Row) -> i64| {
        Arc::new(TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>()).with_timezone("UTC"))
            as ArrayRef
    };
    RecordBatch::try_new(
        feature_schema(),
        vec![
            ints(&|r| r.user),
            times(&|r| r.ts),
            ints(&|r| r.counts[0]),
            ints(&|r| r.counts[1]),
            floats(0),
            floats(1),
            floats(2),
            ints(&|r| r.distinct),
            times(&|r| r.created),
        ],
    )
    .unwrap()
}

/// Writes rows as one Parquet file.
fn write_parquet(path: &Path, b: RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let loc = Location::parse(path.to_str().unwrap()).unwrap();
        let mut sink = ParquetSink::create(&loc, b.schema(), &WriteOptions::default())
            .await
            .unwrap();
        sink.write(&b).await.unwrap();
        sink.finish().await.unwrap();
    });
}

fn write_rows(root: &Path, name: &str, rows: &[Row]) {
    write_parquet(&root.join(VIEW).join(name), batch(rows));
}

fn materialize(spec: &Path, input: &Path, redis: &str, extra: &[&str]) -> Output {
    Command::new(bin("materialize-redis"))
        .arg("--spec")
        .arg(spec)
        .arg("--input")
        .arg(input)
        .args([
            "--redis",
            redis,
            "--start",
            "2025-11-01",
            "--end",
            "2025-12-01T00:00:00Z",
        ])
        .args(["--log-format", "text", "--log-level", "warn"])
        .args(extra)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> &Output {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn seed_spec() -> PathBuf {
    repo_root().join("features.yaml")
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn writes_feasts_golden_bytes() {
    // the golden repo's view: Float32 amounts, a `created` tie-break column
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("features.yaml");
    let seed = std::fs::read_to_string(seed_spec())
        .unwrap()
        .replace("dtype: Float64", "dtype: Float32");
    std::fs::write(&spec, seed).unwrap();
    let golden = repo_root().join("tests/fixtures/feast-0.67");
    let input = dir.path().join("offline");
    std::fs::create_dir_all(input.join(VIEW)).unwrap();
    std::fs::copy(
        golden.join("golden_repo/data/user_transactions.parquet"),
        input.join(VIEW).join("part.parquet"),
    )
    .unwrap();
    let redis = RedisServer::start();
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(bin("materialize-redis"));
        cmd.arg("--spec").arg(&spec).arg("--input").arg(&input);
        cmd.args([
            "--redis",
            &redis.url(),
            "--start",
            "2024-12-01T00:00:00",
            "--end",
            "2025-01-10T00:00:00",
        ]);
        cmd.args(["--created-column", "created", "--log-format", "text", "--summary"]);
        cmd.arg(dir.path().join("summary.json")).args(extra);
        ok(&cmd.output().unwrap());
        summary(dir.path())
    };
    let first = run(&[]);
    assert_eq!(first["entities_written"], 3);

    let dump: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden.join("golden_redis_dump.json")).unwrap()).unwrap();
    let mut want: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
    for t in dump["triples"].as_array().unwrap() {
        want.entry(unhex(t["key_hex"].as_str().unwrap())).or_default().insert(
            unhex(t["field_hex"].as_str().unwrap()),
            unhex(t["value_hex"].as_str().unwrap()),
        );
    }
    let got = redis.dump();
    for (key, fields) in &want {
        for (field, value) in fields {
            let ours = got.get(key).and_then(|f| f.get(field));
            assert_eq!(
                ours.map(|v| hex(v)),
                Some(hex(value)),
                "key {} field {}",
                hex(key),
                hex(field)
            );
        }
    }
    assert_eq!(got, want, "the same keys and fields, nothing more");
    let key = want.keys().next().unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(key)
        .query(&mut redis::Client::open(redis.url()).unwrap().get_connection().unwrap())
        .unwrap();
    assert_eq!(ttl, -1, "no TTL unless --key-ttl");

    // an unchanged rerun is recognised; --force rewrites the same bytes
    let again = run(&[]);
    assert_eq!(again["user_transaction_features_unchanged"], true);
    assert_eq!(again["entities_written"], 0);
    let forced = run(&["--force"]);
    assert_eq!(forced["entities_written"], 3);
    assert_eq!(redis.dump(), want);
}

#[test]
fn latest_row_per_entity_inside_the_interval_and_the_ts_rule() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offline");
    let redis = RedisServer::start();
    let (start, end) = (1_761_955_200_000_000i64, 1_764_547_200_000_000i64); // 2025-11-01, 2025-12-01
    let mut a = row(1, T0, 1);
    a.created = T0;
    let mut tie = row(1, T0, 2); // same event time, later created: wins
    tie.created = T0 + 1;
    let older = row(1, T0 - HOUR, 3);
    let after_end = row(2, end + 1, 4); // outside: ignored
    let at_end = row(3, end, 5); // inclusive end
    let at_start = row(4, start, 6);
    let before_start = row(4, start - 1, 7);
    write_rows(&input, "a.parquet", &[a, older, after_end, at_end]);
    write_rows(&input, "b.parquet", &[tie, at_start, before_start]);
    let sum = dir.path().join("summary.json");
    ok(&materialize(
        &seed_spec(),
        &input,
        &redis.url(),
        &["--summary", sum.to_str().unwrap()],
    ));
    assert_eq!(summary(dir.path())["entities_written"], 3);
    let got = redis.dump();
    assert_eq!(got.len(), 3, "users 1, 3 and 4");
    // transaction_count_24h is seed % 17: the seed itself for the seeds below 17 used here
    let field = featurekit::feast::feature_field(VIEW, "transaction_count_24h");
    let ts_field = featurekit::feast::timestamp_field(VIEW);
    let key = |u: i64| {
        let codec = featurekit::feast::EntityKeyCodec::new(
            featurekit::feast::KeyVersion::V3,
            &[("user_id", featurekit::spec::ValueType::Int64)],
        );
        featurekit::feast::redis_key(&codec, &[featurekit::feast::KeyValue::Int64(u)], "fraud_detection")
    };
    let int = |v: i64| {
        let mut out = vec![];
        featurekit::feast::encode_int(featurekit::spec::Dtype::Int64, Some(v), &mut out);
        out
    };
    assert_eq!(
        got[&key(1)][&field[..]],
        int(2),
        "the tie goes to the later created_timestamp"
    );
    assert_eq!(got[&key(4)][&field[..]], int(6), "the start is inclusive");
    assert_eq!(got[&key(3)][&field[..]], int(5), "the end is inclusive");
    let stored_ts = got[&key(1)][&ts_field].clone();

    // an older row never overwrites a newer one, an equal one neither; --force does
    let dir2 = dir.path().join("older");
    write_rows(&dir2, "c.parquet", &[row(1, T0 - 2 * HOUR, 9), row(3, end, 10)]);
    ok(&materialize(
        &seed_spec(),
        &dir2,
        &redis.url(),
        &["--summary", sum.to_str().unwrap()],
    ));
    let s = summary(dir.path());
    assert_eq!(
        (s["entities_written"].as_u64(), s["entities_skipped_not_newer"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(redis.dump()[&key(1)][&ts_field], stored_ts);
    ok(&materialize(
        &seed_spec(),
        &dir2,
        &redis.url(),
        &["--force", "--key-ttl", "3600"],
    ));
    let got = redis.dump();
    assert_eq!(got[&key(1)][&field[..]], int(9));
    assert_eq!(got[&key(3)][&field[..]], int(10));
    let ttl: i64 = redis.cli(&["TTL", "x"]).trim().parse().unwrap();
    assert_eq!(ttl, -2, "sanity: a missing key");
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let ttl: i64 = redis::cmd("TTL").arg(key(1)).query(&mut conn).unwrap();
    assert!((3500..=3600).contains(&ttl), "EXPIRE of --key-ttl, got {ttl}");
    let ttl: i64 = redis::cmd("TTL").arg(key(4)).query(&mut conn).unwrap();
    assert_eq!(ttl, -1, "entities not written keep no TTL");
}

#[test]
fn bad_input_exits_65_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let good: Vec<Row> = (0..100).map(|u| row(u, T0, u)).collect();

    // a null entity after 100 good rows
    let nulls = dir.path().join("null-entity");
    let mut rows = good.clone();
    rows.push(Row {
        user: None,
        ..row(0, T0, 0)
    });
    write_rows(&nulls, "part.parquet", &rows);
    // a feature column of the wrong type
    let wrong = dir.path().join("wrong-type");
    let b = batch(&good);
    let mut cols = b.columns().to_vec();
    cols[2] = Arc::new(StringArray::from(vec!["x"; good.len()]));
    let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[2] = Field::new("transaction_count_1h", DataType::Utf8, true);
    write_parquet(
        &wrong.join(VIEW).join("part.parquet"),
        RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), cols.clone()).unwrap(),
    );
    // a missing feature column
    let missing = dir.path().join("missing-column");
    fields.remove(2);
    cols.remove(2);
    write_parquet(
        &missing.join(VIEW).join("part.parquet"),
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap(),
    );

    for (input, says) in [
        (&nulls, "row 100: null entity key `user_id`"),
        (&wrong, "column `transaction_count_1h` is Utf8"),
        (&missing, "missing column `transaction_count_1h`"),
    ] {
        let out = materialize(&seed_spec(), input, &redis.url(), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("part.parquet"), "names the file: {stderr}");
        assert_eq!(
            redis.cli(&["DBSIZE"]).trim(),
            "0",
            "nothing written for {}",
            input.display()
        );
    }
    // and no input at all
    let out = materialize(&seed_spec(), &dir.path().join("nothing"), &redis.url(), &[]);
    assert_eq!(out.status.code(), Some(66), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn one_views_own_parquet_file_is_an_input_with_one_feature_view() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offline");
    let rows: Vec<Row> = (0..50).map(|u| row(u, T0, u)).collect();
    write_rows(&input, "part.parquet", &rows);
    let redis = RedisServer::start();
    // Feast's keys only: the run's fingerprint (a key starting with a letter) names its input
    let feast_keys = || {
        let mut d = redis.dump();
        d.retain(|k, _| !k[0].is_ascii_alphabetic());
        d
    };
    ok(&materialize(&seed_spec(), &input, &redis.url(), &[]));
    let from_root = feast_keys();
    assert_eq!(from_root.len(), 50);
    redis.cli(&["FLUSHALL"]);
    let file = input.join(VIEW).join("part.parquet");
    let out = materialize(&seed_spec(), &file, &redis.url(), &["--feature-view", VIEW]);
    ok(&out);
    assert_eq!(
        feast_keys(),
        from_root,
        "the same bytes as from the offline store's root"
    );
    // a path below a file names nothing: exit 66 (never 75, which Argo would retry), said once
    let below = file.join(VIEW);
    let out = materialize(&seed_spec(), &below, &redis.url(), &["--feature-view", VIEW]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{stderr}");
    assert_eq!(stderr.matches("Not a directory").count(), 0, "{stderr}");
}

#[test]
fn unreachable_redis_exits_75_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offline");
    write_rows(&input, "part.parquet", &[row(1, T0, 1)]);
    let port = featurekit_tests::free_port();
    let started = Instant::now();
    let out = materialize(
        &seed_spec(),
        &input,
        &format!("redis://127.0.0.1:{port}"),
        &["--attempts", "3", "--redis-timeout", "1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("after 3 attempts"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // a password in the URL never reaches the logs
    let out = materialize(
        &seed_spec(),
        &input,
        &format!("redis://user:hunter2@127.0.0.1:{port}"),
        &["--attempts", "2", "--redis-timeout", "1"],
    );
    assert_eq!(out.status.code(), Some(75));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

#[test]
fn a_run_interrupted_by_a_redis_crash_converges_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offline");
    let users = 80_000;
    let rows: Vec<Row> = (0..users).map(|u| row(u, T0 + (u % 1000) * 1_000_000, u)).collect();
    write_rows(&input, "part.parquet", &rows);

    let clean = RedisServer::start();
    ok(&materialize(&seed_spec(), &input, &clean.url(), &[]));
    let want = clean.dump();
    assert_eq!(want.len(), users as usize);

    let mut redis = RedisServer::with_aof();
    let child = Command::new(bin("materialize-redis"))
        .arg("--spec")
        .arg(seed_spec())
        .arg("--input")
        .arg(&input)
        .args(["--redis", &redis.url(), "--start", "2025-11-01", "--end", "2025-12-01"])
        .args([
            "--batch",
            "200",
            "--connections",
            "2",
            "--log-level",
            "warn",
            "--log-format",
            "text",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // kill the server once the run has written something
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let n: u64 = redis.cli(&["DBSIZE"]).trim().parse().unwrap_or(0);
        if n > 1_000 {
            break n;
        }
        assert!(Instant::now() < deadline, "the run wrote nothing");
        std::thread::sleep(Duration::from_millis(5));
    };
    redis.kill();
    assert!(at_kill < users as u64, "the server must die in the middle of the run");
    std::thread::sleep(Duration::from_millis(400));
    redis.restart();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 75)),
        "the interrupted run either rode out the crash or gave up with 75: {code:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&materialize(&seed_spec(), &input, &redis.url(), &[]));
    let got = redis.dump();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "after the rerun Redis holds exactly what a clean run wrote"
    );
}

#[test]
fn a_redis_cluster_gets_the_same_bytes_routed_per_slot() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offline");
    let rows: Vec<Row> = (0..3000).map(|u| row(u, T0 + u * 1_000_000, u)).collect();
    write_rows(&input, "part.parquet", &rows);
    let single = RedisServer::start();
    ok(&materialize(&seed_spec(), &input, &single.url(), &[]));
    let want = single.dump();

    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::with_args(&["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]))
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < deadline, "the cluster did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Feast's connection_string form, two seeds of three nodes
    let seeds = format!("{},{}", addrs[0], addrs[1]);
    let sum = dir.path().join("summary.json");
    ok(&materialize(
        &seed_spec(),
        &input,
        &seeds,
        &["--cluster", "--summary", sum.to_str().unwrap()],
    ));
    assert_eq!(summary(dir.path())["entities_written"], 3000);
    let mut got = BTreeMap::new();
    for n in &nodes {
        let part = n.dump();
        assert!(!part.is_empty(), "every node owns some entities");
        got.extend(part);
    }
    assert!(got == want, "the cluster holds the single node's bytes");
    // the rerun is recognised through the cluster too
    ok(&materialize(
        &seed_spec(),
        &input,
        &seeds,
        &["--cluster", "--summary", sum.to_str().unwrap()],
    ));
    assert_eq!(summary(dir.path())["user_transaction_features_unchanged"], true);
}

#[test]
fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(d).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=featurekit-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let tls_port = featurekit_tests::free_port();
    let tls_port_s = tls_port.to_string();
    let redis = RedisServer::with_args(&[
        "--tls-port",
        &tls_port_s,
        "--tls-cert-file",
        d.join("server.pem").to_str().unwrap(),
        "--tls-key-file",
        d.join("server.key").to_str().unwrap(),
        "--tls-ca-cert-file",
        d.join("ca.pem").to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]);
    let input = d.join("offline");
    write_rows(
        &input,
        "part.parquet",
        &(0..50).map(|u| row(u, T0, u)).collect::<Vec<_>>(),
    );
    let url = format!("rediss://127.0.0.1:{tls_port}");
    // the server's CA is not in the system's store: a configuration error, not retried
    let out = materialize(&seed_spec(), &input, &url, &[]);
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));
    ok(&materialize(
        &seed_spec(),
        &input,
        &url,
        &["--redis-ca-cert", d.join("ca.pem").to_str().unwrap()],
    ));
    assert_eq!(
        redis.dump().len(),
        50,
        "written over TLS (read back over the plain port)"
    );
    // Feast's connection_string form with ssl=true
    ok(&materialize(
        &seed_spec(),
        &input,
        &format!("127.0.0.1:{tls_port},ssl=true"),
        &["--redis-ca-cert", d.join("ca.pem").to_str().unwrap(), "--force"],
    ));
}
