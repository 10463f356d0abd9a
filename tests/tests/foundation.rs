//! The foundation, tested from outside: artifact round trips through files and a real
//! S3-compatible server (moto), outputs of interrupted runs, and the step runtime's
//! command-line contract (env twins, exit codes, logs, summary).

use std::process::{Command, Output, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use featurekit::artifact::{Location, ParquetScan, ParquetSink, WriteOptions};
use featurekit::synth::{Generator, Params};
use featurekit_tests::{Moto, bin, files_below, wait_for_progress};
use futures::TryStreamExt;

fn checksum(batches: &[RecordBatch]) -> (usize, i64) {
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    let ids = batches
        .iter()
        .map(|b| {
            b.column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .fold(0i64, |a, v| a.wrapping_add(*v))
        })
        .fold(0i64, |a, v| a.wrapping_add(v));
    (rows, ids)
}

async fn round_trip(location: &Location, rows: u64) {
    let g = Generator::new(Params {
        rows,
        users: 5_000,
        null_amount_rate: 0.01,
        batch_rows: 200_000,
        ..Params::default()
    });
    let want: Vec<RecordBatch> = (0..g.num_batches()).map(|i| g.batch(i)).collect();
    let mut sink = ParquetSink::create(location, featurekit::synth::schema(), &WriteOptions::default())
        .await
        .unwrap();
    for b in &want {
        sink.write(b).await.unwrap();
    }
    let written = sink.finish().await.unwrap();
    assert_eq!(written.rows, rows);
    let (got, stats) = ParquetScan::open(location).await.unwrap().collect().await.unwrap();
    assert_eq!(stats.files, 1);
    assert_eq!(checksum(&got), checksum(&want));
    let nulls: usize = got.iter().map(|b| b.column(2).null_count()).sum();
    let want_nulls: usize = want.iter().map(|b| b.column(2).null_count()).sum();
    assert_eq!(nulls, want_nulls);
    assert_eq!(got[0].schema(), featurekit::synth::schema());
}

#[tokio::test(flavor = "multi_thread")]
async fn parquet_round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/tx.parquet");
    round_trip(&Location::parse(path.to_str().unwrap()).unwrap(), 1_500_000).await;
    let url = format!("file://{}", dir.path().join("again.parquet").display());
    round_trip(&Location::parse(&url).unwrap(), 10_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parquet_round_trip_through_s3() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let opts = moto.options();
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // 1.5M rows are about 20 MB: a multipart upload of several parts
    round_trip(
        &Location::parse_with("s3://lake/raw/tx.parquet", &opts).unwrap(),
        1_500_000,
    )
    .await;
    let listed = Location::parse_with("s3://lake/raw/", &opts)
        .unwrap()
        .list()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

fn generate(args: &[&str], env: &[(&'static str, String)]) -> Command {
    let mut cmd = Command::new(bin("generate-transactions"));
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("RUST_LOG");
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_writes_part_files_to_s3_from_the_environment() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let out = generate(
        &["--output", "s3://lake/raw/day=1", "--rows", "300000", "--files", "3"],
        &moto.env(),
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let opts = moto.options();
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let scan = ParquetScan::open(&Location::parse_with("s3://lake/raw/day=1", &opts).unwrap())
        .await
        .unwrap();
    let names: Vec<String> = scan.files().iter().map(|m| m.location.to_string()).collect();
    assert_eq!(
        names,
        vec![
            "raw/day=1/part-00000.parquet",
            "raw/day=1/part-00001.parquet",
            "raw/day=1/part-00002.parquet"
        ]
    );
    let rows: usize = scan
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 300_000);
}

/// Starts a long generation, waits until it has written rows, then stops it.
fn interrupt(output: &str, env: &[(&'static str, String)], signal: &str) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("progress");
    let summary = dir.path().join("summary.json");
    let mut env = env.to_vec();
    env.push(("ARGO_PROGRESS_FILE", progress.display().to_string()));
    let child = generate(
        &[
            "--output",
            output,
            "--rows",
            "200000000",
            "--summary",
            summary.to_str().unwrap(),
        ],
        &env,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // wait until several row groups (and so upload parts) are out
    wait_for_progress(&progress, 3_000_000 - 1, "the generator");
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let summary = std::fs::read_to_string(&summary)
        .map(|s| serde_json::from_str(&s).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (out, summary)
}

#[test]
fn sigterm_mid_write_leaves_nothing_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out/tx.parquet");
    let (out, summary) = interrupt(target.to_str().unwrap(), &[], "-TERM");
    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files_below(dir.path()), Vec::<String>::new(), "nothing may be left");
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(summary["exit_code"], 143);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sigkill_mid_write_leave_no_object_in_s3() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let opts = moto.options();
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bucket = Location::parse_with("s3://lake/", &opts).unwrap();

    let (out, _) = interrupt("s3://lake/out/tx.parquet", &moto.env(), "-TERM");
    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<String> = bucket
        .list()
        .await
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m.location, m.size))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("aborted unfinished upload"), "{stderr}");

    let (out, _) = interrupt("s3://lake/out/tx.parquet", &moto.env(), "-KILL");
    assert_eq!(out.status.code(), None, "killed by a signal");
    assert_eq!(
        bucket.list().await.unwrap().len(),
        0,
        "an uncompleted multipart upload is no object"
    );
}

#[test]
fn sigkill_mid_write_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("tx.parquet");
    let (out, _) = interrupt(target.to_str().unwrap(), &[], "-KILL");
    assert_eq!(out.status.code(), None);
    assert!(!target.exists(), "a killed writer must not leave the output object");
}

#[test]
fn help_shows_every_env_twin() {
    let out = generate(&["--help"], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // clap wraps long lines: compare with the white space folded
    let help = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for flag in [
        "output",
        "rows",
        "users",
        "days",
        "start",
        "seed",
        "null-amount-rate",
        "files",
        "row-group-rows",
        "log-level",
        "log-format",
        "summary",
    ] {
        assert!(help.contains(&format!("--{flag}")), "--{flag} missing in help");
        let env = featurekit::env::flag_env(flag);
        assert!(help.contains(&format!("[env: {env}")), "{env} missing in help:\n{help}");
    }
}

#[test]
fn exit_codes_logs_and_summary_on_failure() {
    let out = generate(&["--rows", "many", "--output", "x"], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");

    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let out = generate(
        &["--output", "ftp://host/x", "--summary", summary.to_str().unwrap()],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(78), "bad configuration");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["severity"], "ERROR");
    assert_eq!(last["exit_code"], 78);
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .starts_with("ftp://host/x: unsupported scheme `ftp`"),
        "{last}"
    );
    assert!(last["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(last["step"], "generate-transactions", "span fields are on every line");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(
        (s["status"].as_str(), s["exit_code"].as_u64()),
        (Some("failed"), Some(78))
    );

    let out = generate(
        &[
            "--output",
            "s3://user:hunter2@bucket/x",
            "--rows",
            "0",
            "--log-level",
            "debug",
        ],
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "k".into()),
            ("AWS_SECRET_ACCESS_KEY", "hunter3".into()),
            ("AWS_REGION", "us-east-1".into()),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("hunter3"),
        "a secret reached the log:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(75),
        "an unreachable store is transient:\n{stderr}"
    );
}
