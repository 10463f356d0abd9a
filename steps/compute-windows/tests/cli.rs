//! compute-windows from the shell: outputs, shards, lookback, as-of rows and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType};
use featurekit::artifact::{Location, ParquetScan, ParquetSink, WriteOptions};
use featurekit::synth::{Generator, Params};

const DAY: i64 = 86_400_000_000;
const NOV1: i64 = 1_761_955_200_000_000; // 2025-11-01T00:00:00Z

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../features.yaml")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn write(path: &Path, batches: &[RecordBatch]) {
    rt().block_on(async {
        let loc = Location::parse(path.to_str().unwrap()).unwrap();
        let mut sink = ParquetSink::create(&loc, batches[0].schema(), &WriteOptions::default())
            .await
            .unwrap();
        for b in batches {
            sink.write(b).await.unwrap();
        }
        sink.finish().await.unwrap();
    });
}

fn generated(dir: &Path, rows: u64) -> PathBuf {
    let g = Generator::new(Params {
        rows,
        users: 300,
        days: 20,
        start_micros: NOV1,
        null_amount_rate: 0.02,
        batch_rows: 4096,
        ..Params::default()
    });
    let batches: Vec<_> = (0..g.num_batches()).map(|i| g.batch(i)).collect();
    let path = dir.join("raw/tx.parquet");
    write(&path, &batches);
    path
}

fn compute(input: &Path, output: &Path, extra: &[&str]) -> Output {
    compute_with(&spec(), input, output, extra)
}

fn compute_with(spec: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compute-windows"))
        .arg("--spec")
        .arg(spec)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--created-at", "2026-01-01", "--log-format", "json"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One output row: user, timestamp, features as text.
type Row = (i64, i64, String);

/// Rows of a view's output; a STRING user `user-<n>` reads as `n`.
fn read_rows(dir: &Path) -> Vec<Row> {
    let (batches, _) = scan(dir);
    let mut rows = vec![];
    for b in &batches {
        let user = |i: usize| -> i64 {
            match b.column(0).data_type() {
                DataType::Utf8 => {
                    let name = b.column(0).as_string::<i32>().value(i);
                    name.strip_prefix("user-").unwrap().parse().unwrap()
                }
                _ => b.column(0).as_primitive::<Int64Type>().value(i),
            }
        };
        let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let features: Vec<String> = (2..8)
                .map(|c| match b.column(c).data_type() {
                    DataType::Int64 => b.column(c).as_primitive::<Int64Type>().value(i).to_string(),
                    _ => format!("{:.9}", b.column(c).as_primitive::<Float64Type>().value(i)),
                })
                .collect();
            rows.push((user(i), ts.value(i), features.join(",")));
        }
    }
    rows.sort();
    rows
}

/// Every batch below a path, and what the scan found.
fn scan(path: &Path) -> (Vec<RecordBatch>, featurekit::artifact::ScanStats) {
    rt().block_on(async {
        let location = Location::parse(path.to_str().unwrap()).unwrap();
        ParquetScan::open(&location).await.unwrap().collect().await.unwrap()
    })
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn writes_feast_offline_parquet_by_day() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 20_000);
    let out = dir.path().join("features");
    let summary = dir.path().join("summary.json");
    ok(&compute(
        &input,
        &out,
        &[
            "--start",
            "2025-11-10",
            "--end",
            "2025-11-12",
            "--summary",
            summary.to_str().unwrap(),
        ],
    ));
    let view = out.join("user_transaction_features");
    let names = files(&view);
    assert!(
        names.iter().any(|n| n.starts_with("2025-11-10-part-0-of-1-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("2025-11-11-part-0-of-1-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("2025-11-11-asof-part-0-of-1-")),
        "{names:?}"
    );

    let (batches, _) = scan(&view);
    let schema = batches[0].schema();
    let got: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let ts = "Timestamp(µs, \"UTC\")".to_string();
    let want: Vec<(String, String)> = [
        ("user_id", "Int64"),
        ("event_timestamp", ts.as_str()),
        ("transaction_count_1h", "Int64"),
        ("transaction_count_24h", "Int64"),
        ("avg_transaction_amount_7d", "Float64"),
        ("avg_transaction_amount_30d", "Float64"),
        ("max_transaction_amount_7d", "Float64"),
        ("distinct_merchant_count_7d", "Int64"),
        ("created_timestamp", ts.as_str()),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    // snappy where it pays: the entity, max and creation time; the rest stored plain
    let first = view.join(&names[0]);
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&first).unwrap()).unwrap();
    let codecs: Vec<String> = parquet::file::reader::FileReader::metadata(&reader)
        .row_group(0)
        .columns()
        .iter()
        .map(|c| format!("{}:{}", c.column_path().string(), c.compression()))
        .collect();
    assert_eq!(
        codecs,
        [
            "user_id:SNAPPY",
            "event_timestamp:UNCOMPRESSED",
            "transaction_count_1h:UNCOMPRESSED",
            "transaction_count_24h:UNCOMPRESSED",
            "avg_transaction_amount_7d:UNCOMPRESSED",
            "avg_transaction_amount_30d:UNCOMPRESSED",
            "max_transaction_amount_7d:SNAPPY",
            "distinct_merchant_count_7d:UNCOMPRESSED",
            "created_timestamp:SNAPPY"
        ]
    );
    let created = batches[0].column(8).as_primitive::<TimestampMicrosecondType>().value(0);
    assert_eq!(created, 1_767_225_600_000_000, "--created-at stamps every row");

    // one row per event in [start, end), plus one as-of row per user active in the last 30 days
    let raw = read_raw(&input);
    let (start, end) = (NOV1 + 9 * DAY, NOV1 + 11 * DAY);
    let events = raw.iter().filter(|(_, t)| (start..end).contains(t)).count();
    let mut active: Vec<i64> = raw
        .iter()
        .filter(|(_, t)| (end - 30 * DAY..end).contains(t))
        .map(|r| r.0)
        .collect();
    active.sort();
    active.dedup();
    let rows = read_rows(&view);
    assert_eq!(rows.len(), events + active.len());
    assert_eq!(rows.iter().filter(|r| r.1 == end).count(), active.len());

    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["rows_out"], rows.len());
    assert_eq!(
        s["lookback_complete"], false,
        "the data starts 2025-11-01, the lookback needs 2025-10-11"
    );
    // where the workers' time went, by stage
    for stage in ["sort", "windows", "batch", "write"] {
        let seconds = s["worker_seconds"][stage].as_f64();
        assert!(seconds.is_some_and(|x| x > 0.0), "worker_seconds.{stage}: {seconds:?}");
    }
}

fn read_raw(input: &Path) -> Vec<(i64, i64)> {
    let (batches, _) = scan(input);
    batches
        .iter()
        .flat_map(|b| {
            let u = b.column(0).as_primitive::<Int64Type>().clone();
            let t = b.column(1).as_primitive::<TimestampMicrosecondType>().clone();
            (0..b.num_rows()).map(move |i| (u.value(i), t.value(i)))
        })
        .collect()
}

#[test]
fn shards_together_equal_one_run_and_reruns_replace_days() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 20_000);
    let single = dir.path().join("single");
    ok(&compute(
        &input,
        &single,
        &["--start", "2025-11-05", "--end", "2025-11-15"],
    ));
    let sharded = dir.path().join("sharded");
    for k in 0..3 {
        ok(&compute(
            &input,
            &sharded,
            &[
                "--start",
                "2025-11-05",
                "--end",
                "2025-11-15",
                "--shard",
                &k.to_string(),
                "--shards",
                "3",
                "--threads",
                "1",
            ],
        ));
    }
    let view = "user_transaction_features";
    assert_eq!(read_rows(&sharded.join(view)), read_rows(&single.join(view)));
    assert!(files(&sharded.join(view)).iter().any(|n| n.contains("-part-2-of-3-0")));

    // a rerun of the same days with one shard replaces the three shards' files
    ok(&compute(
        &input,
        &sharded,
        &["--start", "2025-11-05", "--end", "2025-11-15"],
    ));
    assert!(
        !files(&sharded.join(view)).iter().any(|n| n.contains("-of-3-")),
        "{:?}",
        files(&sharded.join(view))
    );
    assert_eq!(read_rows(&sharded.join(view)), read_rows(&single.join(view)));

    // a rerun of one day leaves the other days' files alone
    let before = files(&single.join(view));
    ok(&compute(
        &input,
        &single,
        &["--start", "2025-11-07", "--end", "2025-11-08", "--no-as-of"],
    ));
    let after = files(&single.join(view));
    assert_eq!(
        before.iter().filter(|n| !n.starts_with("2025-11-07")).count(),
        after.iter().filter(|n| !n.starts_with("2025-11-07")).count()
    );
}

#[test]
fn rows_written_a_few_at_a_time_are_those_of_whole_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 20_000);
    let range = ["--start", "2025-11-05", "--end", "2025-11-15", "--threads", "2"];
    let whole = dir.path().join("whole");
    ok(&compute(&input, &whole, &range));
    let runs = dir.path().join("runs");
    // runs of 7 rows: every partition's events and as-of rows take many runs, one of them short
    ok(&compute(&input, &runs, &[&range[..], &["--write-rows", "7"]].concat()));
    let view = "user_transaction_features";
    let rows = read_rows(&whole.join(view));
    assert!(rows.len() > 10_000, "{} rows", rows.len());
    assert_eq!(read_rows(&runs.join(view)), rows);
}

#[test]
fn lookback_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 5_000);
    let out = dir.path().join("f");
    let run = compute(&input, &out, &["--start", "2025-11-10", "--end", "2025-11-11"]);
    ok(&run);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(
        log.contains("incomplete lookback") && log.contains("\"severity\":\"WARNING\""),
        "{log}"
    );
    let strict = compute(
        &input,
        &out,
        &[
            "--start",
            "2025-11-10",
            "--end",
            "2025-11-11",
            "--require-full-lookback",
        ],
    );
    assert_eq!(strict.status.code(), Some(65));
    // with the start 30 days after the data begins, the lookback is complete
    let full = compute(
        &input,
        &out,
        &[
            "--start",
            "2025-12-02",
            "--end",
            "2025-12-03",
            "--require-full-lookback",
        ],
    );
    ok(&full);
}

fn raw_schema(amount_type: DataType) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("amount", amount_type, true),
        Field::new("merchant_id", DataType::Int64, true),
    ]))
}

#[test]
fn bad_input_exits_65_or_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f");
    let t = NOV1 + DAY;
    // a null user and a null timestamp
    let nulls = RecordBatch::try_new(
        raw_schema(DataType::Float64),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(t), Some(t), None, Some(t)]).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        ],
    )
    .unwrap();
    let input = dir.path().join("nulls.parquet");
    write(&input, &[nulls]);
    let run = compute(&input, &out, &["--start", "2025-11-02", "--end", "2025-11-03"]);
    assert_eq!(run.status.code(), Some(65));
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(
        log.contains("2 rows have a null `user_id` or `event_timestamp`, the first at row 1"),
        "{log}"
    );
    assert!(!out.exists(), "nothing written");
    ok(&compute(
        &input,
        &out,
        &["--start", "2025-11-02", "--end", "2025-11-03", "--drop-invalid"],
    ));
    assert_eq!(
        read_rows(&out.join("user_transaction_features"))
            .iter()
            .filter(|r| r.1 == t)
            .count(),
        2
    );

    // amount as a string
    let strings = RecordBatch::try_new(
        raw_schema(DataType::Utf8),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(TimestampMicrosecondArray::from(vec![t]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec!["12.5"])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    let input = dir.path().join("strings.parquet");
    write(&input, &[strings]);
    let out2 = dir.path().join("g");
    let run = compute(&input, &out2, &["--start", "2025-11-02", "--end", "2025-11-03"]);
    assert_eq!(run.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&run.stderr).contains("column `amount` has type Utf8"));

    // a missing column, a corrupt file, start >= end
    let only_users = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("user_id", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let input = dir.path().join("narrow.parquet");
    write(&input, &[only_users]);
    let run = compute(&input, &out2, &["--start", "2025-11-02", "--end", "2025-11-03"]);
    assert_eq!(run.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&run.stderr).contains("missing column `event_timestamp`"));

    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, b"PAR1 this is not parquet PAR1").unwrap();
    let run = compute(&corrupt, &out2, &["--start", "2025-11-02", "--end", "2025-11-03"]);
    assert_eq!(run.status.code(), Some(65), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("corrupt.parquet"));

    let run = compute(&corrupt, &out2, &["--start", "2025-11-03", "--end", "2025-11-03"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(!out2.exists());
}

#[test]
fn an_empty_day_must_be_said_with_allow_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = RecordBatch::new_empty(raw_schema(DataType::Float64));
    let input = dir.path().join("empty.parquet");
    write(&input, &[empty]);
    let out = dir.path().join("f");
    let day = ["--start", "2025-11-02", "--end", "2025-11-03"];
    let run = compute(&input, &out, &day);
    assert_eq!(run.status.code(), Some(66), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("but no event from"));
    assert!(!out.exists(), "nothing written");
    ok(&compute(&input, &out, &[&day[..], &["--allow-empty-input"]].concat()));
    let view = out.join("user_transaction_features");
    assert_eq!(files(&view), vec!["2025-11-02-part-0-of-1-0.parquet"]);
    let (batches, stats) = scan(&view);
    assert_eq!(stats.rows, 0);
    assert!(batches.iter().all(|b| b.num_rows() == 0));
}

/// Every file below `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(snapshot(&path));
        } else {
            all.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    all.sort();
    all
}

#[test]
fn a_missing_or_empty_input_leaves_the_days_files_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 20_000);
    let out = dir.path().join("offline");
    let day = ["--start", "2025-11-15", "--end", "2025-11-16"];
    ok(&compute(&input, &out, &day));
    let before = snapshot(&out);
    assert!(before.len() >= 2, "the day's files and as-of files");
    let empty_prefix = dir.path().join("empty");
    std::fs::create_dir_all(&empty_prefix).unwrap();
    let marker_only = dir.path().join("marker");
    std::fs::create_dir_all(&marker_only).unwrap();
    std::fs::write(marker_only.join("_SUCCESS"), b"").unwrap();
    for (name, input) in [
        ("a missing prefix", dir.path().join("raw-typo/")),
        ("an empty prefix", empty_prefix),
        ("a prefix holding only a marker", marker_only),
    ] {
        let run = compute(&input, &out, &day);
        let log = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(66), "{name}: {log}");
        assert!(
            log.contains("no Parquet object there") && log.contains("--allow-empty-input"),
            "{name}: {log}"
        );
        assert_eq!(snapshot(&out), before, "{name}: the day's files are unchanged");
    }
}

#[test]
fn a_file_pruned_by_time_still_has_its_schema_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = generated(dir.path(), 5_000);
    // a second file, every row in 2024: its row groups are skipped by their statistics
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("merchant_id", DataType::Int64, true),
    ]));
    let old = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["7"])),
            Arc::new(TimestampMicrosecondArray::from(vec![NOV1 - 400 * DAY]).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    write(&good.with_file_name("old.parquet"), &[old]);
    let out = dir.path().join("f");
    let run = compute(
        good.parent().unwrap(),
        &out,
        &["--start", "2025-11-15", "--end", "2025-11-16"],
    );
    let log = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(65), "{log}");
    assert!(log.contains("old.parquet: column `user_id` has type Utf8"), "{log}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn relative_paths_with_dot_dot_work_as_in_every_cli() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path(), 5_000);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_compute-windows"))
        .current_dir(&work)
        .arg("--spec")
        .arg(spec())
        .args([
            "--input",
            "../raw/tx.parquet",
            "--output",
            "../offline/./x/..",
            "--log-format",
            "text",
        ])
        .args(["--start", "2025-11-15", "--end", "2025-11-16"])
        .output()
        .unwrap();
    ok(&out);
    assert!(!files(&dir.path().join("offline/user_transaction_features")).is_empty());
}

#[test]
fn as_of_rows_serve_features_as_of_the_run() {
    // user 1: events 2 days and 40 minutes before the end; user 2: 40 days before (inactive)
    let dir = tempfile::tempdir().unwrap();
    let end = NOV1 + 45 * DAY;
    let ts = vec![end - 2 * DAY, end - 40 * 60 * 1_000_000, end - 40 * DAY];
    let batch = RecordBatch::try_new(
        raw_schema(DataType::Float64),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2])),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![10.0, 30.0, 5.0])),
            Arc::new(Int64Array::from(vec![7, 8, 9])),
        ],
    )
    .unwrap();
    let input = dir.path().join("tx.parquet");
    write(&input, &[batch]);
    let out = dir.path().join("f");
    ok(&compute(
        &input,
        &out,
        &["--start", "2025-12-15", "--end", "2025-12-16"],
    ));
    let rows = read_rows(&out.join("user_transaction_features"));
    let as_of: Vec<&Row> = rows.iter().filter(|r| r.1 == end).collect();
    assert_eq!(as_of.len(), 1, "only user 1 was active in the last 30 days: {rows:?}");
    // as of the end: the 40-minute-old event is in the 1h and 24h windows, both are in 7d and 30d
    assert_eq!(as_of[0].0, 1);
    assert_eq!(as_of[0].2, "1,1,20.000000000,20.000000000,30.000000000,2");
}

#[test]
fn an_unreadable_spec_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("features.yaml");
    std::fs::write(
        &bad,
        "project: x\nentities: []\nsource: {}\nfeature_views: []\ncolour: red\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_compute-windows"))
        .args([
            "--spec",
            bad.to_str().unwrap(),
            "--input",
            "x",
            "--output",
            "y",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-02",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("features.yaml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's usage block is `--help`, verbatim; `UPDATE_README=1 cargo test` rewrites it.
#[test]
fn readme_shows_the_current_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_compute-windows"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    featurekit::cli::check_readme_help(&readme, &help).unwrap();
}

#[test]
fn string_entities_and_keys_give_the_features_of_their_integer_twins() {
    // the same events twice: integer user and merchant ids, and the same ids as strings; the
    // string version is split over two files, so each file's strings are numbered on their own
    let dir = tempfile::tempdir().unwrap();
    let raw = generated(dir.path(), 6_000);
    let (batches, _) = scan(&raw);
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("merchant_id", DataType::Utf8, false),
    ]));
    let named = |b: &RecordBatch, c: usize, prefix: &str| -> Arc<StringArray> {
        let ids = b.column(c).as_primitive::<Int64Type>();
        Arc::new(StringArray::from_iter_values(
            ids.values().iter().map(|i| format!("{prefix}{i}")),
        ))
    };
    let strings: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    named(b, 0, "user-"),
                    b.column(1).clone(),
                    b.column(2).clone(),
                    named(b, 3, "m"),
                ],
            )
            .unwrap()
        })
        .collect();
    let all = arrow::compute::concat_batches(&schema, &strings).unwrap();
    let half = all.num_rows() / 2;
    write(
        &dir.path().join("strings/a.parquet"),
        &[all.slice(half, all.num_rows() - half)],
    );
    write(&dir.path().join("strings/b.parquet"), &[all.slice(0, half)]);
    let spec_text = std::fs::read_to_string(spec())
        .unwrap()
        .replace("value_type: INT64", "value_type: STRING")
        .replace("user_id: Int64", "user_id: String")
        .replace("merchant_id: Int64", "merchant_id: String");
    let string_spec = dir.path().join("features.yaml");
    std::fs::write(&string_spec, spec_text).unwrap();

    let range = ["--start", "2025-11-05", "--end", "2025-11-15"];
    ok(&compute(&raw, &dir.path().join("ints"), &range));
    ok(&compute_with(
        &string_spec,
        &dir.path().join("strings"),
        &dir.path().join("named"),
        &range,
    ));

    let ints = read_rows(&dir.path().join("ints/user_transaction_features"));
    let named_rows = read_rows(&dir.path().join("named/user_transaction_features"));
    assert!(ints.len() > 1000, "{} rows", ints.len());
    assert_eq!(named_rows, ints);
}

#[test]
fn features_are_written_in_their_declared_dtype() {
    // the means declared Float32: each value is the Float64 run's, cast
    let dir = tempfile::tempdir().unwrap();
    let raw = generated(dir.path(), 4_000);
    let text = std::fs::read_to_string(spec()).unwrap();
    let typed = text.replace("dtype: Float64   # mean 7d", "dtype: Float32").replacen(
        "window: 30d\n        dtype: Float64",
        "window: 30d\n        dtype: Float32",
        1,
    );
    assert_eq!(typed.matches("Float32").count(), 2);
    let typed_spec = dir.path().join("features.yaml");
    std::fs::write(&typed_spec, typed).unwrap();
    let range = ["--start", "2025-11-05", "--end", "2025-11-15"];
    ok(&compute(&raw, &dir.path().join("f64"), &range));
    ok(&compute_with(&typed_spec, &raw, &dir.path().join("f32"), &range));

    // (user, time, mean 7d, mean 30d) of every row, sorted
    type Means = (i64, i64, f64, f64);
    let means = |dir: &Path| -> (Vec<Means>, Vec<DataType>) {
        let (batches, _) = scan(dir);
        let names = ["avg_transaction_amount_7d", "avg_transaction_amount_30d"];
        let types = names
            .iter()
            .map(|n| batches[0].schema().field_with_name(n).unwrap().data_type().clone())
            .collect();
        let mut rows = vec![];
        for b in &batches {
            let get = |name: &str, i: usize| -> f64 {
                let c = b.column_by_name(name).unwrap();
                match c.data_type() {
                    DataType::Float32 => c.as_primitive::<arrow::datatypes::Float32Type>().value(i) as f64,
                    _ => c.as_primitive::<Float64Type>().value(i),
                }
            };
            let users = b.column(0).as_primitive::<Int64Type>();
            let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                rows.push((users.value(i), ts.value(i), get(names[0], i), get(names[1], i)));
            }
        }
        rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (rows, types)
    };
    let (f64s, types) = means(&dir.path().join("f64/user_transaction_features"));
    assert_eq!(types, vec![DataType::Float64; 2]);
    let (f32s, types) = means(&dir.path().join("f32/user_transaction_features"));
    assert_eq!(types, vec![DataType::Float32; 2]);
    assert_eq!(f64s.len(), f32s.len());
    assert!(f64s.len() > 500, "{} rows", f64s.len());
    for (a, b) in f64s.iter().zip(&f32s) {
        assert_eq!((a.0, a.1), (b.0, b.1));
        assert_eq!((b.2, b.3), (a.2 as f32 as f64, a.3 as f32 as f64), "{a:?} {b:?}");
    }
}
