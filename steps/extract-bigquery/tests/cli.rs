//! extract-bigquery's binary against a stub of BigQuery's REST API: paging, polling, value
//! forms, the incremental rule, retries and every failure's exit code, and no partial day.

mod stub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, Float64Array, Int64Array, TimestampMicrosecondArray};
use serde_json::{Value, json};
use stub::{Stub, error, job, page, schema};

const BIN: &str = env!("CARGO_BIN_EXE_extract-bigquery");
/// 2025-11-13T00:00:00Z and 2025-11-14T00:00:00Z in microseconds.
const NOV13: i64 = 1_762_992_000_000_000;
const NOV14: i64 = 1_763_078_400_000_000;

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../features.yaml")
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("q.sql"),
            "SELECT user_id, event_timestamp, amount, merchant_id FROM `demo.raw.transactions`\n\
             WHERE event_timestamp >= @start AND event_timestamp < @end\n",
        )
        .unwrap();
        Run { dir }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("raw")
    }

    /// The command with the test's defaults, each replaced by the same flag in `extra`.
    fn cmd(&self, stub: &Stub, extra: &[&str]) -> Command {
        let dir = self.dir.path();
        let defaults = [
            ("--spec", spec().display().to_string()),
            ("--project", "demo".into()),
            ("--query-file", dir.join("q.sql").display().to_string()),
            ("--start", "2025-11-14".into()),
            ("--end", "2025-11-15".into()),
            ("--lookback", "1d".into()),
            ("--output", self.out().display().to_string()),
            ("--endpoint", stub.endpoint()),
            ("--log-format", "text".into()),
            ("--log-level", "warn".into()),
            ("--summary", dir.join("summary.json").display().to_string()),
        ];
        let mut cmd = Command::new(BIN);
        for (flag, value) in defaults.iter().filter(|(f, _)| !extra.contains(f)) {
            cmd.args([flag, value.as_str()]);
        }
        cmd.arg("--anonymous").args(extra).env_clear();
        cmd
    }

    fn run(&self, stub: &Stub, extra: &[&str]) -> Output {
        self.cmd(stub, extra).output().unwrap()
    }

    fn summary(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("summary.json")).unwrap()).unwrap()
    }

    /// Every file below the output, relative.
    fn files(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![self.out()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    found.push(e.path().strip_prefix(self.out()).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        found
    }

    fn day(&self, day: &str) -> arrow::record_batch::RecordBatch {
        let file = std::fs::File::open(self.out().join(format!("date={day}/part-00000.parquet"))).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1 << 20).unwrap();
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        arrow::compute::concat_batches(&schema, &batches).unwrap()
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A row of the features.yaml source: user, time, amount, merchant.
fn row(user: &str, ts: &str, amount: Value, merchant: &str) -> Vec<Value> {
    vec![json!(user), json!(ts), amount, json!(merchant)]
}

/// A stub that answers jobs.query, getQueryResults (by page) and jobs.get from `pages`.
fn serving(pages: Vec<String>) -> Stub {
    Stub::start(move |req, _| {
        if req.method == "GET" && req.target.contains("/jobs/") {
            return (200, job());
        }
        let n = match req.param("pageToken") {
            Some(t) => t.trim_start_matches('p').parse::<usize>().unwrap(),
            None => 0,
        };
        (200, pages[n].clone())
    })
}

#[test]
fn pages_polls_value_forms_and_nulls_become_one_file_per_day() {
    let running = json!({"kind": "bigquery#queryResponse", "jobComplete": false,
        "jobReference": {"projectId": "demo", "jobId": "job_1", "location": "US"}})
    .to_string();
    let p1 = page(
        &[
            row("1", &(NOV13 + 5).to_string(), json!("1.5"), "7"),
            row("2", &(NOV14 + 10).to_string(), Value::Null, "8"),
        ],
        Some("p2"),
        schema(),
    );
    // float seconds, scientific notation: parsed as text, so no microsecond is lost
    let p2 = page(
        &[
            row("1", "1.763078400123457E9", json!("NaN"), "9"),
            vec![Value::Null, json!("1763078401.000001"), json!("-2.25"), Value::Null],
        ],
        None,
        schema(),
    );
    let stub = Stub::start(move |req, _| {
        match (req.method.as_str(), req.param("pageToken")) {
            ("POST", _) => (200, running.clone()),
            ("GET", _) if req.target.contains("/jobs/") => (200, job()),
            // the poll without a token: the job is done now, the first page
            ("GET", None) => (200, p1.clone()),
            ("GET", Some(_)) => (200, p2.clone()),
            _ => (404, error(404, "notFound", "no such call")),
        }
    });
    let run = Run::new();
    let out = run.run(&stub, &["--label", "workflow=daily-1,step=extract-bigquery"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        run.files(),
        [
            "date=2025-11-13/part-00000.parquet",
            "date=2025-11-14/part-00000.parquet"
        ]
    );
    let nov13 = run.day("2025-11-13");
    assert_eq!(nov13.num_rows(), 1);
    let nov14 = run.day("2025-11-14");
    let ts = nov14.column_by_name("event_timestamp").unwrap();
    let ts = ts.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
    assert_eq!(ts.values().to_vec(), [NOV14 + 10, NOV14 + 123_457, NOV14 + 1_000_001]);
    assert_eq!(ts.timezone(), Some("UTC"));
    let amount = nov14.column_by_name("amount").unwrap();
    let amount = amount.as_any().downcast_ref::<Float64Array>().unwrap();
    assert!(amount.is_null(0) && amount.value(1).is_nan() && amount.value(2) == -2.25);
    let user = nov14.column_by_name("user_id").unwrap();
    let user = user.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((user.value(0), user.value(1), user.is_null(2)), (2, 1, true));

    // what was asked: named TIMESTAMP parameters over whole days, int64 timestamps, labels
    let reqs = stub.requests();
    let query = reqs[0].json();
    assert_eq!(query["parameterMode"], "NAMED");
    assert_eq!(query["useLegacySql"], false);
    assert_eq!(query["queryParameters"][0]["name"], "start");
    assert_eq!(query["queryParameters"][0]["parameterType"]["type"], "TIMESTAMP");
    assert_eq!(
        query["queryParameters"][0]["parameterValue"]["value"],
        "2025-11-13 00:00:00.000000+00"
    );
    assert_eq!(
        query["queryParameters"][1]["parameterValue"]["value"],
        "2025-11-15 00:00:00.000000+00"
    );
    assert_eq!(query["formatOptions"]["useInt64Timestamp"], true);
    assert_eq!(
        query["labels"],
        json!({"workflow": "daily-1", "step": "extract-bigquery"})
    );
    assert!(query["requestId"].as_str().unwrap().starts_with("featurekit-"));
    assert!(
        !query["query"].as_str().unwrap().contains("2025"),
        "parameters, never interpolation"
    );
    assert!(
        reqs.iter().all(|r| r.header("authorization").is_none()),
        "--anonymous sends no token"
    );
    let pages: Vec<&stub::Request> = reqs.iter().filter(|r| r.target.contains("/queries/job_1")).collect();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].param("pageToken").as_deref(), Some("p2"));
    assert!(pages.iter().all(|r| r.param("location").as_deref() == Some("US")));
    assert!(
        pages
            .iter()
            .all(|r| r.param("formatOptions.useInt64Timestamp").as_deref() == Some("true"))
    );

    let s = run.summary();
    assert_eq!(
        (s["status"].clone(), s["rows_in"].clone(), s["rows_out"].clone()),
        (json!("ok"), json!(4), json!(4))
    );
    assert_eq!(s["days_fetched"], json!(["2025-11-13", "2025-11-14"]));
    assert_eq!(s["days_kept"], json!([]));
    assert_eq!(
        (s["bytes_processed"].clone(), s["bytes_billed"].clone()),
        (json!(1234), json!(10_485_760))
    );
}

#[test]
fn a_later_run_queries_only_the_missing_and_refreshed_days() {
    let rows = [
        row("1", &(NOV13 + 1).to_string(), json!("1"), "1"),
        row("1", &(NOV14 + 1).to_string(), json!("2"), "1"),
    ];
    let stub = serving(vec![page(&rows, None, schema())]);
    let run = Run::new();
    assert_eq!(code(&run.run(&stub, &[])), 0);
    let kept = std::fs::read(run.out().join("date=2025-11-13/part-00000.parquet")).unwrap();
    let first = stub.requests().len();

    // the day before is kept; the last day is refreshed, only it is queried
    let only_14 = [row("1", &(NOV14 + 2).to_string(), json!("3"), "1")];
    let stub = serving(vec![page(&only_14, None, schema())]);
    let out = run.run(&stub, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let query = stub.requests()[0].json();
    assert_eq!(
        query["queryParameters"][0]["parameterValue"]["value"],
        "2025-11-14 00:00:00.000000+00"
    );
    assert_eq!(
        std::fs::read(run.out().join("date=2025-11-13/part-00000.parquet")).unwrap(),
        kept
    );
    assert_eq!(
        run.day("2025-11-14").num_rows(),
        1,
        "the refreshed day is replaced whole"
    );
    assert_eq!(run.summary()["days_kept"], json!(["2025-11-13"]));
    assert_eq!(run.summary()["days_fetched"], json!(["2025-11-14"]));

    // a file another writer left in a refreshed day goes when the day is replaced
    std::fs::write(run.out().join("date=2025-11-14/part-00001.parquet"), b"old").unwrap();
    let stub = serving(vec![page(&only_14, None, schema())]);
    assert_eq!(code(&run.run(&stub, &[])), 0);
    assert_eq!(
        run.files(),
        [
            "date=2025-11-13/part-00000.parquet",
            "date=2025-11-14/part-00000.parquet"
        ]
    );

    // nothing to refresh and nothing missing: no query at all
    let stub = serving(vec![]);
    assert_eq!(code(&run.run(&stub, &["--refresh-days", "0"])), 0);
    assert!(stub.requests().is_empty());
    assert!(first >= 2);
}

#[test]
fn a_day_without_rows_is_written_empty_so_it_counts_as_fetched() {
    let stub = serving(vec![page(
        &[row("1", &(NOV14 + 1).to_string(), json!("1"), "1")],
        None,
        schema(),
    )]);
    let run = Run::new();
    assert_eq!(code(&run.run(&stub, &[])), 0);
    assert_eq!(run.day("2025-11-13").num_rows(), 0);
    assert_eq!(run.day("2025-11-14").num_rows(), 1);
}

#[test]
fn throttling_is_retried_and_a_server_failing_for_good_exits_75_with_nothing_written() {
    let ok = page(&[row("1", &(NOV14 + 1).to_string(), json!("1"), "1")], None, schema());
    let stub = Stub::start(move |req, n| match n {
        0 => (429, error(429, "rateLimitExceeded", "Exceeded rate limits")),
        1 => (
            403,
            error(
                403,
                "rateLimitExceeded",
                "Exceeded rate limits: too many concurrent queries",
            ),
        ),
        _ if req.target.contains("/jobs/") => (200, job()),
        _ => (200, ok.clone()),
    });
    let run = Run::new();
    let out = run.run(&stub, &["--attempts", "3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));

    let stub = Stub::start(|_, _| (500, error(500, "backendError", "Backend error")));
    let run = Run::new();
    let out = run.run(&stub, &["--attempts", "3"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HTTP 500 backendError: Backend error (after 3 attempts)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stub.requests().len(), 3);
    assert!(run.files().is_empty(), "{:?}", run.files());

    // a connection dropped without an answer is transient too
    let stub = Stub::start(|_, _| (0, String::new()));
    let out = Run::new().run(&stub, &["--attempts", "2"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
}

#[test]
fn a_bad_query_a_missing_table_or_refused_access_exits_78_with_bigquerys_message() {
    let cases = [
        (
            400,
            error(
                400,
                "invalidQuery",
                "Syntax error: Unexpected identifier \"SELEC\" at [1:1]",
            ),
            "invalidQuery",
        ),
        (
            404,
            error(404, "notFound", "Not found: Table demo:raw.transactions"),
            "Not found: Table",
        ),
        (
            403,
            error(
                403,
                "accessDenied",
                "Access Denied: User does not have bigquery.jobs.create",
            ),
            "accessDenied",
        ),
        (
            401,
            error(401, "authError", "Request had invalid authentication credentials"),
            "invalid authentication",
        ),
        (
            400,
            error(
                400,
                "bytesBilledLimitExceeded",
                "Query exceeded limit for bytes billed: 1000",
            ),
            "bytes billed",
        ),
        // an emulator's failed job: HTTP 200, complete, with errors
        (
            200,
            json!({"jobComplete": true, "jobReference": {"jobId": "job_1"},
                   "errors": [{"reason": "notFound", "message": "Table raw.transactions was not found"}]})
            .to_string(),
            "notFound: Table raw.transactions was not found",
        ),
    ];
    for (status, body, want) in cases {
        let stub = Stub::start(move |_, _| (status, body.clone()));
        let run = Run::new();
        let out = run.run(&stub, &[]);
        assert_eq!(code(&out), 78, "{status}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{status}: {}", stderr(&out));
        assert_eq!(stub.requests().len(), 1, "{status}: a permanent error is not retried");
        assert!(run.files().is_empty());
    }
}

#[test]
fn a_result_that_breaks_the_spec_exits_65_naming_the_column_and_types() {
    let mut wrong_type = schema();
    wrong_type["fields"][2]["type"] = json!("STRING");
    let mut missing = schema();
    missing["fields"].as_array_mut().unwrap().truncate(3);
    let mut extra = schema();
    extra["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "country", "type": "STRING"}));
    let mut repeated = schema();
    repeated["fields"][3]["mode"] = json!("REPEATED");
    let cases = [
        (
            wrong_type,
            "column `amount` of the query's result is STRING, but the spec's source says Float64",
        ),
        (missing, "the query's result has no column `merchant_id`"),
        (
            extra,
            "column `country` (STRING), which is not among the spec's source columns",
        ),
        (repeated, "column `merchant_id` of the query's result is ARRAY<INTEGER>"),
    ];
    for (schema, want) in cases {
        let stub = serving(vec![page(&[], None, schema)]);
        let run = Run::new();
        let out = run.run(&stub, &[]);
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        assert!(run.files().is_empty());
    }

    let cases = [
        (
            row("1", "yesterday", json!("1"), "1"),
            "row 1 of the result, column `event_timestamp`: `yesterday` is not a valid TIMESTAMP",
        ),
        (
            row("x1", &(NOV14 + 1).to_string(), json!("1"), "1"),
            "row 1 of the result, column `user_id`: `x1` is not a valid INT64",
        ),
        (
            row("1", &(NOV14 + 86_400_000_000).to_string(), json!("1"), "1"),
            "is outside [@start, @end)",
        ),
        (
            vec![json!("1"), Value::Null, json!("1"), json!("1")],
            "`event_timestamp` is null",
        ),
    ];
    for (bad, want) in cases {
        let good = row("1", &(NOV14 + 1).to_string(), json!("1"), "1");
        let stub = serving(vec![page(&[good, bad], None, schema())]);
        let run = Run::new();
        let out = run.run(&stub, &[]);
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&want.replace("row 1 ", "row 2 ")),
            "{}",
            stderr(&out)
        );
        assert!(run.files().is_empty(), "no partial day: {:?}", run.files());
    }
}

#[test]
fn sigterm_mid_page_leaves_no_partial_day_and_the_kept_days_untouched() {
    let stub = serving(vec![page(
        &[
            row("1", &(NOV13 + 1).to_string(), json!("1"), "1"),
            row("1", &(NOV14 + 1).to_string(), json!("1"), "1"),
        ],
        None,
        schema(),
    )]);
    let run = Run::new();
    assert_eq!(code(&run.run(&stub, &[])), 0);
    let before: Vec<Vec<u8>> = run
        .files()
        .iter()
        .map(|f| std::fs::read(run.out().join(f)).unwrap())
        .collect();

    // page 1 arrives, page 2 never does: the run is stopped while it waits
    let p1 = page(
        &[row("2", &(NOV14 + 5).to_string(), json!("9"), "1")],
        Some("p1"),
        schema(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let stub = Stub::start(move |req, _| {
        if req.param("pageToken").is_some() {
            let _ = rx.lock().unwrap().recv_timeout(std::time::Duration::from_secs(60));
            return (500, error(500, "backendError", "late"));
        }
        (200, p1.clone())
    });
    let mut child = run.cmd(&stub, &["--refresh-days", "2"]).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !stub.requests().iter().any(|r| r.param("pageToken").is_some()) {
        assert!(t0.elapsed().as_secs() < 30, "page 2 was never asked for");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    drop(tx);
    assert_eq!(status.code(), Some(143));
    let after: Vec<Vec<u8>> = run
        .files()
        .iter()
        .map(|f| std::fs::read(run.out().join(f)).unwrap())
        .collect();
    assert_eq!(after, before, "no temporary left, no day replaced");
    assert_eq!(run.summary()["status"], "interrupted");
}

#[test]
fn a_dry_run_prints_the_bytes_and_cost_and_writes_nothing() {
    let stub = Stub::start(|req, _| {
        assert_eq!(req.json()["dryRun"], true);
        (
            200,
            json!({"jobComplete": true, "totalBytesProcessed": "1099511627776"}).to_string(),
        )
    });
    let run = Run::new();
    let out = run.run(&stub, &["--dry-run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2025-11-13 to 2025-11-14: 1.00 TiB (1099511627776 bytes) processed"),
        "{stdout}"
    );
    assert!(stdout.contains("about $6.2500 at $6.25/TiB"), "{stdout}");
    assert!(run.files().is_empty());
    assert_eq!(run.summary()["bytes_processed"], json!(1_099_511_627_776u64));
}

#[test]
fn bad_flags_and_files_get_one_line_and_their_exit_code() {
    let stub = serving(vec![]);
    let run = Run::new();
    std::fs::write(run.dir.path().join("q.sql"), "SELECT * FROM t").unwrap();
    let out = run.run(&stub, &[]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("the query never uses @start"), "{}", stderr(&out));

    let out = run.run(&stub, &["--query-file", "/nonexistent.sql"]);
    assert_eq!(code(&out), 78);
    assert!(
        stderr(&out).contains("--query-file /nonexistent.sql"),
        "{}",
        stderr(&out)
    );

    let out = run.run(&stub, &["--lookback", "a month"]);
    assert_eq!(code(&out), 2);
    let out = run.run(&stub, &["--label", "Team=x"]);
    assert_eq!(code(&out), 2);
    let out = run.run(&stub, &["--start", "2025-11-15"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("must be before --end"), "{}", stderr(&out));
    assert!(stub.requests().is_empty());
}

/// The README's usage block is `--help`, verbatim; `UPDATE_README=1 cargo test` rewrites it.
#[test]
fn readme_shows_the_current_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    featurekit::cli::check_readme_help(&readme, &help).unwrap();
}
