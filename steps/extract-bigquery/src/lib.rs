//! extract-bigquery: the raw events compute-windows needs, from BigQuery into day partitions.
//!
//! A run plans ([`plan`]) the UTC days from START minus the lookback to END, lists the days
//! the output already holds, and queries ([`rest`]) each run of consecutive days still to
//! fetch with the checked-in SQL and its @start and @end parameters. Every result page is
//! decoded ([`decode`]) straight into typed columns and its rows go to their day's file
//! ([`days`]): memory is bounded by the days open, not by the rows. A day's file appears only
//! once the whole result has been read, and replaces what the day held.

pub mod cli;
pub mod days;
pub mod decode;
pub mod plan;
pub mod rest;
pub mod storage;

use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use featurekit::artifact::Location;
use featurekit::exit::{Error, Result};
use featurekit::retry::Backoff;
use featurekit::spec::Spec;
use featurekit::step::{Progress, RunSummary};

pub use cli::Args;
use cli::{Lookback, Read};
use days::{DayWritten, Days};
use plan::{DAY_MICROS, Day, Plan, day_name, day_of};
use rest::{Auth, Billing, Client, JobReference, Page, Query, TableRef};
use storage::StorageClient;

/// Runs the step (see the crate's documentation).
pub async fn run(args: Args, summary: &mut RunSummary) -> Result<()> {
    let started = Instant::now();
    if args.start >= args.end {
        return Err(Error::usage(format!(
            "--start {} must be before --end {}",
            args.start, args.end
        )));
    }
    let spec = Spec::load(&args.spec).map_err(Error::config)?;
    let sql = read_query(&args.query_file)?;
    let lookback = match args.lookback {
        Lookback::Auto => spec
            .feature_views
            .iter()
            .filter_map(|v| v.longest_window())
            .map(|w| w.micros())
            .max()
            .unwrap_or(0),
        Lookback::Duration(w) => w.micros(),
        Lookback::None => 0,
    };
    let (start, end) = (args.start.timestamp_micros(), args.end.timestamp_micros());
    let output = Location::parse(&args.output)?;
    let present = days::present(&output).await?;
    let plan = Plan::new(day_of(start - lookback), day_of(end - 1), &present, args.refresh_days);
    let names = |days: &[Day]| days.iter().map(|&d| day_name(d)).collect::<Vec<_>>();
    summary.set("days_needed", plan.needed.len());
    summary.set("days_kept", names(&plan.kept));
    summary.set("days_fetched", names(&plan.fetched()));
    summary.phase("plan", started);
    tracing::info!(
        needed = plan.needed.len(),
        kept = plan.kept.len(),
        queries = plan.ranges.len(),
        "planned"
    );

    let auth = if args.anonymous {
        Auth::Anonymous
    } else {
        Auth::application_default()?
    };
    let backoff = Backoff::new(args.attempts, Duration::from_millis(500), Duration::from_secs(30));
    let timeout = Duration::from_secs(args.request_timeout);
    let client = Client::new(
        &args.endpoint,
        &args.project,
        args.location.clone(),
        auth,
        backoff,
        timeout,
    )?;
    let query = |(first, last): (Day, Day), dry_run| Query {
        sql: &sql,
        start: midnight(first),
        end: midnight(last + 1),
        labels: &args.labels,
        max_bytes_billed: args.max_bytes_billed,
        page_rows: args.page_rows,
        dry_run,
    };
    if args.dry_run {
        return dry_run(
            &client,
            plan.ranges.iter().map(|&r| query(r, true)),
            args.price_per_tib,
            summary,
        )
        .await;
    }

    let fetching = Instant::now();
    let mut billing = Billing::default();
    let mut written = Vec::new();
    let reader = match args.read {
        Read::Rest => None,
        Read::Storage => Some(Reader {
            storage: StorageClient::new(&args.storage_endpoint, backoff)?,
            staging: staging(&args)?,
            streams: args.streams,
        }),
    };
    for &range in &plan.ranges {
        let q = query(range, false);
        let got = match &reader {
            None => fetch(&client, &q, &spec, &output, range).await?,
            Some(reader) => fetch_storage(&client, reader, &q, &spec, &output, range).await?,
        };
        billing.processed += got.billing.processed;
        billing.billed += got.billing.billed;
        summary.rows_in += got.rows;
        written.extend(got.days);
    }
    summary.phase("fetch", fetching);
    summary.rows_out = written.iter().map(|d| d.rows).sum();
    summary.set("queries", plan.ranges.len());
    summary.set("bytes_processed", billing.processed);
    summary.set("bytes_billed", billing.billed);
    summary.set("bytes_written", written.iter().map(|d| d.bytes).sum::<u64>());
    Ok(())
}

/// The SQL file: it must use both parameters, or it would read every day there is.
fn read_query(path: &std::path::Path) -> Result<String> {
    let sql =
        std::fs::read_to_string(path).map_err(|e| Error::config(format!("--query-file {}: {e}", path.display())))?;
    for param in ["@start", "@end"] {
        if !sql.contains(param) {
            return Err(Error::config(format!(
                "--query-file {}: the query never uses {param}; it must select the events with \
                 @start <= timestamp < @end",
                path.display()
            )));
        }
    }
    Ok(sql)
}

fn midnight(day: Day) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(day * DAY_MICROS).unwrap_or_default()
}

/// What one query brought.
struct Fetched {
    rows: u64,
    days: Vec<DayWritten>,
    billing: Billing,
}

/// Runs the query of the days in `[first, last]` and writes each day's file.
async fn fetch(
    client: &Client,
    query: &Query<'_>,
    spec: &Spec,
    output: &Location,
    range: (Day, Day),
) -> Result<Fetched> {
    let (first, last) = range;
    let (lo, hi) = (first * DAY_MICROS, (last + 1) * DAY_MICROS);
    tracing::info!(from = %day_name(first), to = %day_name(last), "querying");
    let mut body = client.query(query, &rest::request_id()).await?;
    let mut job: Option<JobReference> = None;
    let mut days: Option<Days> = None;
    let mut rows = 0u64;
    let progress = Progress::new("rows", 0);
    loop {
        let page = Page::parse(&body)?;
        let reference = page.job(job)?;
        job = Some(reference.clone());
        if page.job_complete != Some(true) {
            tracing::debug!(job = %reference.job_id, "the job is still running");
            body = client.results(&reference, None, query.page_rows).await?;
            continue;
        }
        if days.is_none() {
            let fields = page.schema.as_ref().map(|s| s.fields.as_slice()).unwrap_or_default();
            let layout = decode::Layout::new(&spec.source, fields)?;
            days = Some(Days::new(output.clone(), layout));
        }
        let writer = days.as_mut().expect("opened above");
        for row in &page.rows {
            rows += 1;
            let t = writer.layout().event_time(&row.f, rows)?;
            if !(lo..hi).contains(&t) {
                return Err(outside(rows, &spec.source.timestamp_column, t, query));
            }
            writer.push(day_of(t), &row.f, rows).await?;
        }
        progress.advance(page.rows.len() as u64);
        let Some(token) = page.page_token.clone() else { break };
        drop(page);
        body = client.results(&reference, Some(&token), query.page_rows).await?;
    }
    progress.finish();
    let job = job.expect("a finished job has a reference");
    let days = days
        .expect("a finished job has a schema")
        .finish(&(first..=last).collect::<Vec<_>>())
        .await?;
    let billing = client.billing(&job).await?;
    tracing::info!(
        job = %job.job_id, rows, days = days.len(),
        bytes_processed = billing.processed, bytes_billed = billing.billed, "fetched"
    );
    Ok(Fetched { rows, days, billing })
}

/// How `--read storage` reads: the client, where results are staged, streams at once.
struct Reader {
    storage: StorageClient,
    staging: Option<(String, String)>,
    streams: u16,
}

/// `--staging-dataset`: PROJECT.DATASET, or a dataset of --project. The two are the only names
/// that go into SQL text (the CTAS of [`into_table`]), so they are held to BigQuery's own
/// characters: a project of lowercase letters, digits, `-` and `:`, a dataset of letters,
/// digits and `_`; nothing that could close the quoting around them.
fn staging(args: &Args) -> Result<Option<(String, String)>> {
    let Some(d) = &args.staging_dataset else {
        return Ok(None);
    };
    let (project, dataset) = d.split_once('.').unwrap_or((&args.project, d));
    let project_ok = !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == ':');
    let dataset_ok = dataset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if dataset.is_empty() || !dataset_ok || !project_ok {
        return Err(Error::usage(format!(
            "--staging-dataset `{d}`: expected DATASET or PROJECT.DATASET"
        )));
    }
    Ok(Some((project.to_string(), dataset.to_string())))
}

/// Runs the query of the days in `[first, last]` into a table, then reads that table's rows
/// through the Storage Read API in parallel streams into each day's file.
async fn fetch_storage(
    client: &Client,
    reader: &Reader,
    query: &Query<'_>,
    spec: &Spec,
    output: &Location,
    range: (Day, Day),
) -> Result<Fetched> {
    let (first, last) = range;
    let (lo, hi) = (first * DAY_MICROS, (last + 1) * DAY_MICROS);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let staged = reader.staging.as_ref().map(|(project, dataset)| TableRef {
        project: project.clone(),
        dataset: dataset.clone(),
        table: format!("featurekit_extract_{id}"),
    });
    tracing::info!(from = %day_name(first), to = %day_name(last), "querying into a table");
    let (job, table, fields) = match &staged {
        Some(t) => {
            let sql = into_table(t, query.sql);
            let (job, _) = run_query(client, &Query { sql: &sql, ..*query }).await?;
            (job, t.clone(), client.table_schema(t).await?)
        }
        None => {
            let (job, fields) = run_query(client, query).await?;
            let table = client.destination(&job).await?;
            (job, table, fields)
        }
    };
    let layout = decode::Layout::new(&spec.source, &fields)?;
    let read = read_table(client, reader, &table, layout, output, (lo, hi), query).await;
    if let Some(t) = &staged
        && let Err(e) = client.delete_table(t).await
    {
        tracing::warn!(table = %t.path(), error = %e, "could not delete the staging table");
    }
    let (rows, days) = read?;
    let days = days.finish(&(first..=last).collect::<Vec<_>>()).await?;
    let billing = client.billing(&job).await?;
    tracing::info!(job = %job.job_id, rows, days = days.len(), "fetched");
    Ok(Fetched { rows, days, billing })
}

/// `CREATE OR REPLACE TABLE t OPTIONS (expiration in a day) AS <the query>`: the result in a
/// table the Storage Read API can read (an emulator cannot read BigQuery's anonymous result
/// tables), gone within a day even if the run dies before deleting it.
fn into_table(t: &TableRef, sql: &str) -> String {
    let sql = sql.trim().trim_end_matches(';');
    format!(
        "CREATE OR REPLACE TABLE `{}.{}.{}`\nOPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 1 DAY))\nAS\n{sql}",
        t.project, t.dataset, t.table
    )
}

/// Runs a query to its end without reading its rows; returns the job and the result's schema.
async fn run_query(client: &Client, query: &Query<'_>) -> Result<(JobReference, Vec<decode::BqField>)> {
    let q = Query {
        page_rows: Some(0),
        ..*query
    };
    let mut body = client.query(&q, &rest::request_id()).await?;
    let mut job: Option<JobReference> = None;
    loop {
        let page = Page::parse(&body)?;
        let reference = page.job(job)?;
        job = Some(reference.clone());
        if page.job_complete == Some(true) {
            return Ok((reference, page.schema.map(|s| s.fields).unwrap_or_default()));
        }
        body = client.results(&reference, None, Some(0)).await?;
    }
}

/// The streams of a read session over `table`, read at once; each batch split by day into
/// the day files (one writer, fed through a channel).
async fn read_table(
    client: &Client,
    reader: &Reader,
    table: &TableRef,
    layout: decode::Layout,
    output: &Location,
    (lo, hi): (i64, i64),
    query: &Query<'_>,
) -> Result<(u64, Days)> {
    let session = reader
        .storage
        .session(
            client.auth(),
            client.project(),
            &table.path(),
            &layout.names(),
            reader.streams,
        )
        .await?;
    tracing::info!(streams = session.streams.len(), table = %table.path(), "reading");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2 * session.streams.len().max(1));
    let reads = futures::future::try_join_all(session.streams.iter().map(|stream| {
        let tx = tx.clone();
        let session = &session;
        async move {
            reader
                .storage
                .read(client.auth(), session, stream, async |batch| {
                    tx.send(batch).await.map_err(|_| Error::bug("the day writer stopped"))
                })
                .await
        }
    }));
    drop(tx);
    let spec_ts = layout.timestamp_name().to_string();
    let mut days = Days::new(output.clone(), layout);
    let write = async {
        let mut rows = 0u64;
        while let Some(batch) = rx.recv().await {
            let (batch, times) = days.layout().conform(&batch)?;
            for (day, part) in split_by_day(&batch, &times, (lo, hi), rows, &spec_ts, query)? {
                days.write(day, &part).await?;
            }
            rows += batch.num_rows() as u64;
        }
        Ok::<u64, Error>(rows)
    };
    let (read, rows) = tokio::try_join!(reads, write)?;
    debug_assert_eq!(read.iter().sum::<u64>(), rows);
    Ok((rows, days))
}

/// The rows of a batch by their day; a row outside the query's range is an error.
fn split_by_day(
    batch: &RecordBatch,
    times: &[i64],
    (lo, hi): (i64, i64),
    before: u64,
    ts_name: &str,
    query: &Query<'_>,
) -> Result<Vec<(Day, RecordBatch)>> {
    if let Some(at) = times.iter().position(|t| !(lo..hi).contains(t)) {
        return Err(outside(before + at as u64 + 1, ts_name, times[at], query));
    }
    let first = times.first().map(|&t| day_of(t));
    if times.iter().all(|&t| Some(day_of(t)) == first) {
        return Ok(first.map(|d| vec![(d, batch.clone())]).unwrap_or_default());
    }
    let mut parts = Vec::new();
    let mut seen: Vec<Day> = times.iter().map(|&t| day_of(t)).collect();
    seen.sort_unstable();
    seen.dedup();
    for day in seen {
        let mask: arrow::array::BooleanArray = times.iter().map(|&t| Some(day_of(t) == day)).collect();
        let part = arrow::compute::filter_record_batch(batch, &mask).map_err(|e| Error::bug(e.to_string()))?;
        parts.push((day, part));
    }
    Ok(parts)
}

fn outside(row: u64, column: &str, t: i64, query: &Query) -> Error {
    let shown = DateTime::from_timestamp_micros(t).map_or_else(|| t.to_string(), |d| d.to_rfc3339());
    Error::data(format!(
        "row {row} of the result: `{column}` {shown} is outside [@start, @end) = [{}, {}): the query \
         must select @start <= {column} < @end",
        query.start.to_rfc3339(),
        query.end.to_rfc3339()
    ))
}

/// Asks BigQuery what each query would process; prints it with the estimated cost.
async fn dry_run<'q>(
    client: &Client,
    queries: impl Iterator<Item = Query<'q>>,
    price_per_tib: f64,
    summary: &mut RunSummary,
) -> Result<()> {
    let mut total = 0u64;
    for query in queries {
        let body = client.query(&query, &rest::request_id()).await?;
        let page = Page::parse(&body)?;
        let bytes: u64 = page
            .total_bytes_processed
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        total += bytes;
        println!(
            "{} to {}: {} processed",
            query.start.format("%Y-%m-%d"),
            (query.end - chrono::TimeDelta::days(1)).format("%Y-%m-%d"),
            human_bytes(bytes)
        );
    }
    let cost = total as f64 / (1u64 << 40) as f64 * price_per_tib;
    println!(
        "in all: {} processed, about ${cost:.4} at ${price_per_tib}/TiB on demand",
        human_bytes(total)
    );
    summary.set("dry_run", true);
    summary.set("bytes_processed", total);
    summary.set("estimated_cost_usd", cost);
    Ok(())
}

fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {} ({n} bytes)", units[unit])
    }
}
