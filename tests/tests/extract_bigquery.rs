//! extract-bigquery against a real local BigQuery (bqemulator), its table loaded by Google's
//! official Python client: the day files hold exactly the rows of the range, the incremental
//! rule holds, and compute-windows on the extract equals compute-windows on the same rows
//! read directly.

use std::path::Path;
use std::process::Command;

use arrow::array::{Array, RecordBatchReader};
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use featurekit_tests::{BigQueryEmulator, bin, compute_windows, files_below, generate_transactions, repo_root, run_ok};
use serde_json::Value;

const QUERY: &str = "SELECT user_id, event_timestamp, amount, merchant_id\n\
                     FROM `demo.raw.transactions`\n\
                     WHERE event_timestamp >= @start AND event_timestamp < @end\n";

/// Every row of every Parquet file below `dir`, as text (columns by name), sorted.
fn rows_below(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for file in files_below(dir).iter().filter(|f| f.ends_with(".parquet")) {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            std::fs::File::open(dir.join(file)).unwrap(),
            8192,
        )
        .unwrap();
        let schema = reader.schema();
        let mut names: Vec<(usize, String)> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.name().clone()))
            .collect();
        names.sort_by(|a, b| a.1.cmp(&b.1));
        for batch in reader {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                let cells: Vec<String> = names
                    .iter()
                    .map(|(i, n)| {
                        let c = batch.column(*i);
                        let v = match c.data_type() {
                            _ if c.is_null(r) => "null".into(),
                            // as integers: Arrow names no zone without chrono-tz; the unit is said
                            DataType::Timestamp(unit, _) => {
                                let n = arrow::compute::cast(c, &DataType::Int64).unwrap();
                                format!("{}{unit:?}", array_value_to_string(&n, r).unwrap())
                            }
                            _ => array_value_to_string(c, r).unwrap(),
                        };
                        format!("{n}={v}")
                    })
                    .collect();
                rows.push(cells.join(" "));
            }
        }
    }
    rows.sort();
    rows
}

fn extract(emulator: &BigQueryEmulator, dir: &Path, start: &str, end: &str, extra: &[&str]) -> Value {
    let summary = dir.join("extract.json");
    let mut cmd = Command::new(bin("extract-bigquery"));
    cmd.arg("--spec")
        .arg(repo_root().join("features.yaml"))
        .args([
            "--project",
            BigQueryEmulator::PROJECT,
            "--anonymous",
            "--endpoint",
            &emulator.endpoint(),
        ])
        .args([
            "--storage-endpoint",
            &emulator.storage_endpoint(),
            "--staging-dataset",
            "staging",
        ])
        .arg("--query-file")
        .arg(dir.join("transactions.sql"))
        .args(["--start", start, "--end", end, "--log-level", "warn"])
        .arg("--summary")
        .arg(&summary);
    if !extra.contains(&"--output") {
        cmd.arg("--output").arg(dir.join("raw"));
    }
    run_ok(cmd.args(extra));
    serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap()
}

#[test]
fn the_extract_of_an_emulators_table_is_its_rows_by_day_incremental_and_computes_the_same_features() {
    let emulator = BigQueryEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("transactions.sql"), QUERY).unwrap();
    let source = dir.join("source/transactions.parquet");
    generate_transactions(
        &source,
        &[
            "--rows",
            "20000",
            "--users",
            "500",
            "--days",
            "10",
            "--start",
            "2025-11-05",
        ],
    );
    emulator.load("raw.transactions", &source);

    // the first run: the 31 days compute-windows needs for 2025-11-14, in one query
    let s = extract(&emulator, dir, "2025-11-14", "2025-11-15", &[]);
    assert_eq!(s["days_needed"], 31);
    assert_eq!(s["queries"], 1);
    assert_eq!(s["days_fetched"].as_array().unwrap().len(), 31);
    assert_eq!(s["rows_out"], 20000);
    let days = files_below(&dir.join("raw"));
    assert_eq!(days.len(), 31, "{days:?}");
    assert_eq!(days[0], "date=2025-10-15/part-00000.parquet");
    let rows = rows_below(&dir.join("raw"));
    assert_eq!(rows, rows_below(source.parent().unwrap()));

    // the Storage Read API, four streams over the result written to a staging table: the same
    // files, row for row, and the staging table is gone
    emulator.create_dataset("staging");
    let s = extract(
        &emulator,
        dir,
        "2025-11-14",
        "2025-11-15",
        &[
            "--output",
            dir.join("raw-storage").to_str().unwrap(),
            "--read",
            "storage",
            "--streams",
            "4",
        ],
    );
    assert_eq!(s["rows_out"], 20000);
    assert_eq!(files_below(&dir.join("raw-storage")), days);
    assert_eq!(rows_below(&dir.join("raw-storage")), rows);
    assert_eq!(emulator.tables("staging"), Vec::<String>::new());

    // compute-windows on the extract equals compute-windows on the rows read directly
    let args = [
        "--start",
        "2025-11-14",
        "--end",
        "2025-11-15",
        "--created-at",
        "2025-11-15T01:00:00Z",
        "--log-level",
        "warn",
    ];
    compute_windows(&dir.join("raw"), &dir.join("from-extract"), &args);
    compute_windows(&source, &dir.join("direct"), &args);
    let features = rows_below(&dir.join("direct"));
    assert!(features.len() > 1000);
    assert_eq!(rows_below(&dir.join("from-extract")), features);

    // the next day: one day fetched, the thirty before kept byte for byte
    let before = std::fs::read(dir.join("raw/date=2025-11-10/part-00000.parquet")).unwrap();
    let s = extract(&emulator, dir, "2025-11-15", "2025-11-16", &[]);
    assert_eq!(s["days_fetched"], serde_json::json!(["2025-11-15"]));
    assert_eq!(s["days_kept"].as_array().unwrap().len(), 30);
    assert_eq!(
        std::fs::read(dir.join("raw/date=2025-11-10/part-00000.parquet")).unwrap(),
        before
    );

    // a late event for 2025-11-14 arrives: refreshing two days replaces that day whole
    let late = dir.join("late/transactions.parquet");
    generate_transactions(
        &late,
        &[
            "--rows",
            "20001",
            "--users",
            "500",
            "--days",
            "10",
            "--start",
            "2025-11-05",
        ],
    );
    emulator.load("raw.transactions", &late);
    let s = extract(&emulator, dir, "2025-11-15", "2025-11-16", &["--refresh-days", "2"]);
    assert_eq!(s["days_fetched"], serde_json::json!(["2025-11-14", "2025-11-15"]));
    let fetched = rows_below(&dir.join("raw/date=2025-11-14"));
    let mut want: Vec<String> = rows_below(late.parent().unwrap())
        .into_iter()
        .filter(|r| {
            let t: i64 = r
                .split("event_timestamp=")
                .nth(1)
                .unwrap()
                .split("Microsecond")
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (1_763_078_400_000_000..1_763_164_800_000_000).contains(&t)
        })
        .collect();
    want.sort();
    assert_eq!(fetched, want);
}
