//! The command line of compute-windows.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Parser;
use featurekit::artifact::Codec;
use featurekit::cli::{Common, parse_time};

/// Compute every window feature of features.yaml from raw events, exactly and point in
/// time: for an event at t, a window w aggregates the entity's events in [t - w, t). Writes
/// Feast offline-store Parquet: <OUTPUT>/<view>/<day>-part-<K>-of-<N>-<w>.parquet.
#[derive(Debug, Clone, Parser)]
#[command(name = "compute-windows", version)]
pub struct Args {
    /// The feature spec
    #[arg(long, env = "FEATUREKIT_SPEC", default_value = "features.yaml", value_name = "PATH")]
    pub spec: PathBuf,

    /// Raw events: one Parquet file or a prefix of them (a path, file://, s3://, gs://, memory://)
    #[arg(long, env = "FEATUREKIT_INPUT", value_name = "URL")]
    pub input: String,

    /// Offline store root: each feature view's rows go below <URL>/<view>/
    #[arg(long, env = "FEATUREKIT_OUTPUT", value_name = "URL")]
    pub output: String,

    /// Emit rows for events at or after this time (RFC 3339, or a date = UTC midnight)
    #[arg(long, env = "FEATUREKIT_START", value_parser = parse_time, value_name = "T")]
    pub start: DateTime<Utc>,

    /// Emit rows for events before this time
    #[arg(long, env = "FEATUREKIT_END", value_parser = parse_time, value_name = "T")]
    pub end: DateTime<Utc>,

    /// Time of the as-of rows: one per active entity, every window ending there [default: --end]
    #[arg(long, env = "FEATUREKIT_AS_OF", value_parser = parse_time, value_name = "T")]
    pub as_of: Option<DateTime<Utc>>,

    /// Emit no as-of rows
    #[arg(long, env = "FEATUREKIT_NO_AS_OF", conflicts_with = "as_of")]
    pub no_as_of: bool,

    /// This pod's shard: only entities whose FNV-1a 64 hash mod --shards is K
    #[arg(long, env = "FEATUREKIT_SHARD", default_value_t = 0, value_name = "K")]
    pub shard: u32,

    /// Number of shards the entities are split over
    #[arg(long, env = "FEATUREKIT_SHARDS", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: u32,

    /// Drop rows with a null entity or timestamp (counted in the summary) instead of failing
    #[arg(long, env = "FEATUREKIT_DROP_INVALID")]
    pub drop_invalid: bool,

    /// Take an input that names no object, or holds no event from start minus the longest
    /// window to end, as a day without events (empty files replace the day's) instead of
    /// failing with exit 66
    #[arg(long, env = "FEATUREKIT_ALLOW_EMPTY_INPUT")]
    pub allow_empty_input: bool,

    /// Fail (exit 65) when the input does not reach back to start minus the longest window
    #[arg(long, env = "FEATUREKIT_REQUIRE_FULL_LOOKBACK")]
    pub require_full_lookback: bool,

    /// The created_timestamp of every row, for Feast's de-duplication of reruns [default: now]
    #[arg(long, env = "FEATUREKIT_CREATED_AT", value_parser = parse_time, value_name = "T")]
    pub created_at: Option<DateTime<Utc>>,

    /// How the output's Parquet pages are compressed (snappy leaves the columns it barely
    /// shrinks uncompressed: event times, counts, distinct counts, sums, means)
    #[arg(long, env = "FEATUREKIT_COMPRESSION", value_enum, default_value_t = Codec::Snappy, value_name = "CODEC")]
    pub compression: Codec,

    /// Rows of a partition put in file order and written at a time: the write buffers take
    /// about 70 bytes a row (per feature view), so a smaller value lowers the peak memory
    #[arg(long, env = "FEATUREKIT_WRITE_ROWS", default_value_t = 262_144, value_name = "ROWS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub write_rows: u32,

    /// Worker threads [default: one per core]
    #[arg(long, env = "FEATUREKIT_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    #[command(flatten)]
    pub common: Common,
}

impl featurekit::step::StepArgs for Args {
    fn common(&self) -> &Common {
        &self.common
    }
    fn artifacts(&self) -> (Vec<String>, Vec<String>) {
        (vec![self.input.clone()], vec![self.output.clone()])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_flag_has_its_env_twin() {
        use clap::CommandFactory;
        featurekit::cli::check_env_twins(&super::Args::command()).unwrap();
    }
}
