//! generate-transactions: writes deterministic synthetic card transactions as Parquet,
//! the raw input of compute-windows (see `featurekit::synth` for what the data holds).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use featurekit::artifact::{Codec, Location, ParquetSink, WriteOptions};
use featurekit::cli::{Common, parse_time};
use featurekit::step::{Progress, RunSummary, StepArgs};
use featurekit::synth::{Generator, Params};
use featurekit::{Error, Result};
use futures::StreamExt;

/// Write deterministic synthetic card transactions (user_id, event_timestamp, amount,
/// merchant_id) as zstd Parquet: Zipf-like user activity, log-normal amounts, repeat
/// merchants, timestamp ties, events exactly on window boundaries and duplicates.
#[derive(Debug, Parser)]
#[command(name = "generate-transactions", version)]
struct Args {
    /// Output URL: a path, file://, s3://, gs:// or memory://. With --files above 1,
    /// a prefix under which part-NNNNN.parquet files are written
    #[arg(long, env = "FEATUREKIT_OUTPUT", value_name = "URL")]
    output: String,

    /// Number of transactions
    #[arg(long, env = "FEATUREKIT_ROWS", default_value_t = 1_000_000)]
    rows: u64,

    /// Number of distinct users
    #[arg(long, env = "FEATUREKIT_USERS", default_value_t = 100_000)]
    users: u64,

    /// Days the transactions span, from --start
    #[arg(long, env = "FEATUREKIT_DAYS", default_value_t = 30)]
    days: u32,

    /// First instant (RFC 3339 or a date, UTC)
    #[arg(long, env = "FEATUREKIT_START", default_value = "2025-11-01", value_parser = parse_time)]
    start: chrono::DateTime<chrono::Utc>,

    /// Random seed: the same seed and sizes give the same bytes
    #[arg(long, env = "FEATUREKIT_SEED", default_value_t = 42)]
    seed: u64,

    /// Share of rows whose amount is null (0 to 1)
    #[arg(long, env = "FEATUREKIT_NULL_AMOUNT_RATE", default_value_t = 0.0)]
    null_amount_rate: f64,

    /// Number of Parquet files to split the rows over
    #[arg(long, env = "FEATUREKIT_FILES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    files: u32,

    /// Rows per Parquet row group
    #[arg(long, env = "FEATUREKIT_ROW_GROUP_ROWS", default_value_t = 512 * 1024)]
    row_group_rows: usize,

    #[command(flatten)]
    common: Common,
}

impl StepArgs for Args {
    fn common(&self) -> &Common {
        &self.common
    }
    fn artifacts(&self) -> (Vec<String>, Vec<String>) {
        (vec![], vec![self.output.clone()])
    }
}

fn main() -> ExitCode {
    featurekit::step::main::<Args, _>("generate-transactions", env!("CARGO_PKG_VERSION"), run)
}

async fn run(args: Args, summary: &mut RunSummary) -> Result<()> {
    if !(0.0..=1.0).contains(&args.null_amount_rate) {
        return Err(Error::usage("--null-amount-rate must be between 0 and 1"));
    }
    let output = Location::parse(&args.output)?;
    let generator = Arc::new(Generator::new(Params {
        rows: args.rows,
        users: args.users.max(1),
        days: args.days.max(1),
        start_micros: args.start.timestamp_micros(),
        seed: args.seed,
        null_amount_rate: args.null_amount_rate,
        // at least one batch per file
        batch_rows: (Params::default().batch_rows as u64).min(args.rows.div_ceil(args.files as u64).max(1)) as usize,
    }));
    let options = WriteOptions {
        row_group_rows: args.row_group_rows.max(1),
        // raw exports are written once and read many times: small beats fast
        codec: Codec::Zstd,
        ..WriteOptions::default()
    };
    let started = Instant::now();
    let batches = generator.num_batches();
    let files = (args.files as usize).min(batches.max(1));
    let per_file = batches.div_ceil(files).max(1);
    let progress = Progress::new("generate", args.rows);
    tracing::info!(rows = args.rows, users = args.users, days = args.days, files, output = %output, "generating");

    // Batches are made two at a time on blocking threads while the previous ones are written.
    let mut made = futures::stream::iter(0..batches)
        .map(|i| {
            let g = generator.clone();
            tokio::task::spawn_blocking(move || g.batch(i))
        })
        .buffered(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut written_bytes = 0;
    for file in 0..files {
        let target = if args.files > 1 {
            output.join(&format!("part-{file:05}.parquet"))
        } else {
            output.clone()
        };
        let mut sink = ParquetSink::create(&target, featurekit::synth::schema(), &options).await?;
        for _ in 0..per_file {
            let Some(batch) = made.next().await else { break };
            let batch = batch.map_err(|e| Error::bug(format!("generator thread: {e}")))?;
            sink.write(&batch).await?;
            progress.advance(batch.num_rows() as u64);
        }
        let written = sink.finish().await?;
        written_bytes += written.bytes;
        summary.rows_out += written.rows;
    }
    progress.finish();
    summary.phase("generate_and_write", started);
    summary.set("bytes", written_bytes);
    summary.set("files", files);
    Ok(())
}
