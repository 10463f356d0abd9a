//! The command line of materialize-redis.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Parser;
use featurekit::cli::{Common, parse_time};
use featurekit::online::store::RedisArgs;

/// Write each entity's latest feature row into Feast's Redis online store, with the bytes
/// Feast 0.67 writes: for every online feature view, the rows with START <= event_timestamp
/// <= END, the latest per entity (ties: latest created_timestamp), one HSET per entity. An
/// entity whose stored `_ts:<view>` is not older than its row is left alone, unless --force.
#[derive(Debug, Clone, Parser)]
#[command(name = "materialize-redis", version)]
pub struct Args {
    /// The feature spec
    #[arg(long, env = "FEATUREKIT_SPEC", default_value = "features.yaml", value_name = "PATH")]
    pub spec: PathBuf,

    /// Offline store root, each view's rows below <URL>/<view>/ (compute-windows' --output); with
    /// one --feature-view, also that view's own Parquet file or prefix
    #[arg(long, env = "FEATUREKIT_INPUT", value_name = "URL")]
    pub input: String,

    /// The online store: redis://[user[:password]@]host:port[/db], rediss:// for TLS, or Feast's
    /// connection_string (host:port[,host:port...][,ssl=true][,password=...][,db=N])
    #[arg(long, env = "FEATUREKIT_REDIS", hide_env_values = true, value_name = "URL")]
    pub redis: String,

    /// Materialize rows with event_timestamp at or after this time (RFC 3339, or a date = UTC midnight)
    #[arg(long, env = "FEATUREKIT_START", value_parser = parse_time, value_name = "T")]
    pub start: DateTime<Utc>,

    /// ... and at or before this time (inclusive, as feast materialize)
    #[arg(long, env = "FEATUREKIT_END", value_parser = parse_time, value_name = "T")]
    pub end: DateTime<Utc>,

    /// Only these feature views (repeat the flag) [default: every view with online: true]
    #[arg(
        long = "feature-view",
        env = "FEATUREKIT_FEATURE_VIEW",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub feature_views: Vec<String>,

    /// EXPIRE each written entity hash after this many seconds (Feast's key_ttl_seconds)
    #[arg(long, env = "FEATUREKIT_KEY_TTL", value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub key_ttl: Option<u64>,

    /// Write every entity even when Redis holds a newer or equal `_ts`, and do not skip an
    /// unchanged rerun
    #[arg(long, env = "FEATUREKIT_FORCE")]
    pub force: bool,

    /// Column that breaks ties between rows of one entity with the same event time
    #[arg(
        long,
        env = "FEATUREKIT_CREATED_COLUMN",
        default_value = "created_timestamp",
        value_name = "NAME"
    )]
    pub created_column: String,

    #[command(flatten)]
    pub store: RedisArgs,

    #[command(flatten)]
    pub common: Common,
}

impl featurekit::step::StepArgs for Args {
    fn common(&self) -> &Common {
        &self.common
    }
    fn artifacts(&self) -> (Vec<String>, Vec<String>) {
        (
            vec![self.input.clone()],
            vec![featurekit::online::store::Target::shown(&self.redis)],
        )
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
