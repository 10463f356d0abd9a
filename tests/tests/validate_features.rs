//! validate-features on compute-windows' output: clean data passes; each rule, broken on
//! purpose, exits 65 and is named in the report; the report and the profile of a fixed input
//! are golden.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use featurekit::artifact::{Location, ParquetScan, ParquetSink, WriteOptions};
use featurekit_tests::{bin, compute_windows, files_below, generate_transactions, repo_root};

const VIEW: &str = "user_transaction_features";
const DAY: &str = "2025-11-14";
const NEXT: &str = "2025-11-15";

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// compute-windows' output for one day of generated transactions; returns its rows_out.
fn clean(dir: &Path) -> (PathBuf, u64) {
    let raw = dir.join("raw.parquet");
    generate_transactions(
        &raw,
        &[
            "--rows",
            "30000",
            "--users",
            "900",
            "--days",
            "40",
            "--start",
            "2025-10-06",
        ],
    );
    let offline = dir.join("clean");
    let summary = dir.join("cw.json");
    compute_windows(
        &raw,
        &offline,
        &[
            "--start",
            DAY,
            "--end",
            NEXT,
            "--log-level",
            "warn",
            "--summary",
            summary.to_str().unwrap(),
        ],
    );
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    (offline, s["rows_out"].as_u64().unwrap())
}

fn validate(dir: &Path, input: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut cmd = Command::new(bin("validate-features"));
    cmd.current_dir(dir)
        .arg("--spec")
        .arg(repo_root().join("features.yaml"))
        .args(["--input", input, "--start", DAY, "--end", NEXT])
        .args(extra);
    if !extra.contains(&"--baseline") {
        cmd.arg("--no-baseline");
    }
    if !extra.contains(&"--log-level") {
        cmd.args(["--log-format", "text", "--log-level", "warn"]);
    }
    let report = match extra.iter().position(|a| *a == "--report") {
        Some(i) => dir.join(extra[i + 1]),
        None => {
            let r = dir.join(format!("report-{input}"));
            cmd.arg("--report").arg(&r);
            r
        }
    };
    let out = run(&mut cmd);
    let json = std::fs::read_to_string(report.join("report.json")).unwrap_or_else(|_| "null".into());
    (out, serde_json::from_str(&json).unwrap())
}

fn status_of(report: &serde_json::Value, rule: &str) -> String {
    report["views"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .map(|r| r["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no rule {rule} in the report"))
}

/// Copies `src`'s view files to `dst`, passing each file's columns through `change`.
fn rewrite(src: &Path, dst: &Path, change: impl Fn(usize, &Schema, &mut Vec<ArrayRef>)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (i, name) in files_below(&src.join(VIEW)).iter().enumerate() {
        rt.block_on(async {
            let from = Location::parse(src.join(VIEW).join(name).to_str().unwrap()).unwrap();
            let (batches, _) = ParquetScan::open(&from).await.unwrap().collect().await.unwrap();
            let schema = batches[0].schema();
            let batch = arrow::compute::concat_batches(&schema, &batches).unwrap();
            let mut cols = batch.columns().to_vec();
            change(i, &schema, &mut cols);
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .zip(&cols)
                .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let out = RecordBatch::try_new(schema.clone(), cols).unwrap();
            let to = Location::parse(dst.join(VIEW).join(name).to_str().unwrap()).unwrap();
            let mut sink = ParquetSink::create(&to, schema, &WriteOptions::default())
                .await
                .unwrap();
            sink.write(&out).await.unwrap();
            sink.finish().await.unwrap();
        });
    }
}

fn ints(cols: &[ArrayRef], schema: &Schema, name: &str) -> (usize, Vec<Option<i64>>) {
    let i = schema.index_of(name).unwrap();
    (i, cols[i].as_primitive::<Int64Type>().iter().collect())
}

fn floats(cols: &[ArrayRef], schema: &Schema, name: &str) -> (usize, Vec<Option<f64>>) {
    let i = schema.index_of(name).unwrap();
    (i, cols[i].as_primitive::<Float64Type>().iter().collect())
}

#[test]
fn clean_data_passes_and_each_broken_rule_fails_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (offline, rows) = clean(dir);
    let expected = rows.to_string();

    // clean: passes, writes the profile that is the baseline below
    let (out, report) = validate(
        dir,
        "clean",
        &["--expected-rows", &expected, "--profile-out", "base.json"],
    );
    ok(out);
    assert_eq!(report["status"], "pass", "{report:#}");
    assert!(dir.join("base.json").exists());
    let (out, report) = validate(dir, "clean", &["--expected-rows", &expected, "--baseline", "base.json"]);
    ok(out);
    assert_eq!(status_of(&report, "drift.psi.avg_transaction_amount_7d"), "pass");

    type Change = Box<dyn Fn(usize, &Schema, &mut Vec<ArrayRef>)>;
    let cases: Vec<(&str, Change, Vec<&str>, &str)> = vec![
        (
            "negative-count",
            Box::new(|_, s, c| {
                let (i, mut v) = ints(c, s, "transaction_count_24h");
                v[3] = Some(-1);
                c[i] = Arc::new(Int64Array::from(v));
            }),
            vec![],
            "non_negative.transaction_count_24h",
        ),
        (
            "nan-mean",
            Box::new(|_, s, c| {
                let (i, mut v) = floats(c, s, "avg_transaction_amount_7d");
                v[1] = Some(f64::NAN);
                c[i] = Arc::new(Float64Array::from(v));
            }),
            vec![],
            "finite.avg_transaction_amount_7d",
        ),
        (
            "count-1h-above-24h",
            Box::new(|_, s, c| {
                let (i, mut v) = ints(c, s, "transaction_count_1h");
                let (_, day) = ints(c, s, "transaction_count_24h");
                v[0] = Some(day[0].unwrap() + 1);
                c[i] = Arc::new(Int64Array::from(v));
            }),
            vec![],
            "monotonic.transaction_count_1h.transaction_count_24h",
        ),
        (
            "rows-dropped",
            Box::new(|file, _, c| {
                if file == 0 {
                    let keep = c[0].len() / 2;
                    for col in c.iter_mut() {
                        *col = col.slice(0, keep);
                    }
                }
            }),
            vec!["--expected-rows", &expected],
            "rows.expected",
        ),
        (
            "stale",
            Box::new(|_, _, _| {}),
            vec!["--end", "2025-11-17"],
            "freshness",
        ),
        (
            "shifted",
            Box::new(|_, s, c| {
                for name in ["avg_transaction_amount_7d", "max_transaction_amount_7d"] {
                    let (i, v) = floats(c, s, name);
                    c[i] = Arc::new(Float64Array::from_iter(v.iter().map(|x| x.map(|x| x * 1.8 + 25.0))));
                }
            }),
            vec!["--baseline", "base.json"],
            "drift.psi.avg_transaction_amount_7d",
        ),
        (
            "null-entity",
            Box::new(|_, s, c| {
                let (i, mut v) = ints(c, s, "user_id");
                v[2] = None;
                c[i] = Arc::new(Int64Array::from(v));
            }),
            vec![],
            "not_null.user_id",
        ),
        (
            "wrong-dtype",
            Box::new(|_, s, c| {
                let (i, v) = ints(c, s, "distinct_merchant_count_7d");
                c[i] = Arc::new(Float64Array::from_iter(v.iter().map(|x| x.map(|x| x as f64))));
            }),
            vec![],
            "schema.columns",
        ),
        (
            "outside-the-interval",
            Box::new(|_, s, c| {
                let i = s.index_of("event_timestamp").unwrap();
                let mut v: Vec<Option<i64>> = c[i]
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .iter()
                    .collect();
                v[0] = Some(1_700_000_000_000_000);
                c[i] = Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"));
            }),
            vec![],
            "rows.in_range",
        ),
    ];
    for (name, change, extra, rule) in cases {
        rewrite(&offline, &dir.join(name), change);
        let mut args: Vec<&str> = extra.clone();
        if name == "stale" {
            // the same rows, judged for a later day
            let out = run(Command::new(bin("validate-features"))
                .current_dir(dir)
                .arg("--spec")
                .arg(repo_root().join("features.yaml"))
                .args(["--input", name, "--start", DAY, "--end", "2025-11-17"])
                .args(["--no-baseline", "--report", "report-stale", "--log-level", "warn"]));
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("report-stale/report.json")).unwrap()).unwrap();
            assert_eq!(out.status.code(), Some(65), "{name}");
            assert_eq!(status_of(&report, rule), "fail", "{name}");
            continue;
        }
        args.extend(["--profile-out", "broken-profile.json"]);
        let (out, report) = validate(dir, name, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{name}: {stderr}");
        assert_eq!(status_of(&report, rule), "fail", "{name}: {report:#}");
        assert!(stderr.contains(rule), "{name}: the error names the rule: {stderr}");
        // every example names its row's entity and time, also where the row group was first
        // read without them (its statistics proved them clean) and read again
        let failed = report["views"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == rule)
            .unwrap();
        for example in failed["examples"].as_array().into_iter().flatten() {
            for field in ["entity", "event_timestamp"] {
                assert!(
                    example[field].as_str().is_some_and(|v| !v.is_empty()),
                    "{name}: {field} of {example}"
                );
            }
        }
        assert!(
            !dir.join("broken-profile.json").exists(),
            "{name}: a broken run is no baseline"
        );
        let html = std::fs::read_to_string(dir.join(format!("report-{name}/report.html"))).unwrap();
        assert!(html.contains(rule) && !html.contains("<script"), "{name}");
        let md = std::fs::read_to_string(dir.join(format!("report-{name}/report.md"))).unwrap();
        assert!(md.contains("FAIL"), "{name}");
    }
}

/// A daily pipeline's store: the day before left its rows and, at this run's start, its as-of
/// rows (with an older created_timestamp). They are in the interval but are not this run's.
#[test]
fn the_day_befores_as_of_rows_are_not_this_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (offline, rows) = clean(dir);
    compute_windows(
        &dir.join("raw.parquet"),
        &offline,
        &[
            "--start",
            "2025-11-13",
            "--end",
            DAY,
            "--created-at",
            "2025-11-14T01:00:00Z",
            "--log-level",
            "error",
        ],
    );
    let (out, report) = validate(dir, "clean", &["--expected-rows", &rows.to_string()]);
    ok(out);
    let rule = report["views"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "rows.expected")
        .unwrap()
        .clone();
    assert_eq!(rule["status"], "pass", "{rule:#}");
    assert_eq!(report["views"][0]["rows"], rows, "this run's rows only");
    // the day before's as-of rows sit at this run's start, inside the interval, left out
    let (out, _) = validate(dir, "clean", &["--log-level", "info", "--log-format", "json"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("rows of earlier runs"), "{log}");
}

/// Fixed rows (no generator, no clock): the report and the profile are byte for byte golden.
/// `UPDATE_GOLDEN=1 cargo test -p featurekit-tests --test validate_features golden` rewrites them.
#[test]
fn report_and_profile_are_golden() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let day = 1_763_078_400_000_000i64; // 2025-11-14
    // user, event time, the two counts, the three amounts, the distinct count
    type Row = (i64, i64, [i64; 2], [f64; 3], i64);
    let rows: Vec<Row> = (0..400)
        .map(|i| {
            let c24 = (i * 7) % 23;
            let mean = 10.0 + (i % 17) as f64 * 1.5;
            (
                i % 97,
                day + i * 200_000_000,
                [c24 / 3, c24],
                [mean, mean + 1.0, mean * 2.0],
                (i * 5) % 11,
            )
        })
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_timestamp", ts.clone(), true),
        Field::new("transaction_count_1h", DataType::Int64, true),
        Field::new("transaction_count_24h", DataType::Int64, true),
        Field::new("avg_transaction_amount_7d", DataType::Float64, true),
        Field::new("avg_transaction_amount_30d", DataType::Float64, true),
        Field::new("max_transaction_amount_7d", DataType::Float64, true),
        Field::new("distinct_merchant_count_7d", DataType::Int64, true),
        Field::new("created_timestamp", ts, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1)).with_timezone("UTC")),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2[0]))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2[1]))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3[0]))),
        Arc::new(Float64Array::from_iter(
            rows.iter().enumerate().map(|(i, r)| (i % 50 != 0).then_some(r.3[1])),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3[2]))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| day + 86_400_000_000)).with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let to = Location::parse(dir.join("golden").join(VIEW).join("part.parquet").to_str().unwrap()).unwrap();
        let mut sink = ParquetSink::create(&to, schema, &WriteOptions::default())
            .await
            .unwrap();
        sink.write(&batch).await.unwrap();
        sink.finish().await.unwrap();
    });
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "freshness:\n  max_lag: 1d\nbounds:\n  avg_transaction_amount_7d: {min: 0}\n",
    )
    .unwrap();
    let (out, _) = validate(
        dir,
        "golden",
        &[
            "--rules",
            "rules.yaml",
            "--expected-rows",
            "400",
            "--profile-out",
            "profile.json",
        ],
    );
    ok(out);
    // the second run judges the same rows against the first's profile: drift rules included
    let (out, _) = validate(
        dir,
        "golden",
        &[
            "--rules",
            "rules.yaml",
            "--baseline",
            "profile.json",
            "--report",
            "second",
        ],
    );
    ok(out);
    let golden = repo_root().join("tests/golden/validate-features");
    for (made, name) in [
        (dir.join("profile.json"), "profile.json"),
        (dir.join("second/report.json"), "report.json"),
        (dir.join("second/report.md"), "report.md"),
    ] {
        let made = std::fs::read_to_string(made).unwrap();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(golden.join(name), &made).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(golden.join(name)).unwrap();
        assert!(
            made == want,
            "{name} differs from tests/golden/validate-features/{name}:\n{made}"
        );
    }
}
