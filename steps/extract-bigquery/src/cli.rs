//! The command line of extract-bigquery.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Parser;
use featurekit::cli::{Common, parse_time};
use featurekit::spec::Window;

/// Extract the raw events that compute-windows needs for [START, END) from BigQuery into
/// day partitions, <OUTPUT>/date=YYYY-MM-DD/part-00000.parquet, one file per UTC day, each
/// appearing whole or not at all. Runs the SQL file with the named TIMESTAMP parameters
/// @start and @end (never string interpolation), once per run of consecutive days to fetch:
/// the days from START minus the lookback to END that the output does not hold yet, and the
/// last --refresh-days of them again (late events). The result's columns must be the spec's
/// source.columns.
#[derive(Debug, Clone, Parser)]
#[command(name = "extract-bigquery", version)]
pub struct Args {
    /// The feature spec (its source.columns are the result's columns, its longest window the
    /// lookback)
    #[arg(long, env = "FEATUREKIT_SPEC", default_value = "features.yaml", value_name = "PATH")]
    pub spec: PathBuf,

    /// The Google Cloud project that runs (and is billed for) the query jobs
    #[arg(long, env = "FEATUREKIT_PROJECT", value_name = "PROJECT")]
    pub project: String,

    /// The SQL (GoogleSQL) file: it selects the source's columns for @start <= timestamp < @end
    #[arg(long, env = "FEATUREKIT_QUERY_FILE", value_name = "PATH")]
    pub query_file: PathBuf,

    /// The first event time compute-windows will emit rows for (RFC 3339, or a date = UTC midnight)
    #[arg(long, env = "FEATUREKIT_START", value_parser = parse_time, value_name = "T")]
    pub start: DateTime<Utc>,

    /// ... and the end of that interval (exclusive)
    #[arg(long, env = "FEATUREKIT_END", value_parser = parse_time, value_name = "T")]
    pub end: DateTime<Utc>,

    /// Root of the day partitions (a path, file://, s3://, gs://): compute-windows' --input
    #[arg(long, env = "FEATUREKIT_OUTPUT", value_name = "URL")]
    pub output: String,

    /// How far before START events are needed: auto (the spec's longest window), none, or a
    /// duration (30d, 36h)
    #[arg(long, env = "FEATUREKIT_LOOKBACK", default_value = "auto", value_parser = parse_lookback, value_name = "WHEN")]
    pub lookback: Lookback,

    /// Fetch the last N days up to END again even when the output holds them (late events); 0
    /// fetches only missing days
    #[arg(long, env = "FEATUREKIT_REFRESH_DAYS", default_value_t = 1, value_name = "N")]
    pub refresh_days: u32,

    /// Where the jobs run (EU, US, europe-west1...) when the dataset is not in the US multi-region
    #[arg(long, env = "FEATUREKIT_LOCATION", value_name = "LOCATION")]
    pub location: Option<String>,

    /// Refuse a query that would bill more than this many bytes (BigQuery's maximumBytesBilled): exit 78
    #[arg(long, env = "FEATUREKIT_MAX_BYTES_BILLED", value_name = "BYTES")]
    pub max_bytes_billed: Option<u64>,

    /// Print the bytes the queries would process and their estimated cost; fetch and write nothing
    #[arg(long, env = "FEATUREKIT_DRY_RUN")]
    pub dry_run: bool,

    /// On-demand price of a TiB processed, for the dry run's estimate
    #[arg(long, env = "FEATUREKIT_PRICE_PER_TIB", default_value_t = 6.25, value_name = "USD")]
    pub price_per_tib: f64,

    /// A label on every query job (repeat the flag or separate with commas), for billing
    /// reports: workflow=NAME,step=extract-bigquery
    #[arg(long = "label", env = "FEATUREKIT_LABEL", value_delimiter = ',', value_parser = parse_label, value_name = "KEY=VALUE")]
    pub labels: Vec<(String, String)>,

    /// BigQuery's REST API root, for an emulator or a private endpoint
    #[arg(
        long,
        env = "FEATUREKIT_ENDPOINT",
        default_value = "https://bigquery.googleapis.com/bigquery/v2",
        value_name = "URL"
    )]
    pub endpoint: String,

    /// Send no credentials (a local emulator); otherwise application default credentials:
    /// GOOGLE_APPLICATION_CREDENTIALS' key file, gcloud's user login, or the metadata server
    #[arg(long, env = "FEATUREKIT_ANONYMOUS")]
    pub anonymous: bool,

    /// How the result is read: rest (jobs.getQueryResults pages of JSON) or storage (the
    /// Storage Read API: Arrow record batches in --streams parallel streams, for large pulls)
    #[arg(long, env = "FEATUREKIT_READ", value_enum, default_value_t = Read::Rest, value_name = "HOW")]
    pub read: Read,

    /// Streams of the Storage Read API read at once (--read storage)
    #[arg(long, env = "FEATUREKIT_STREAMS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1000), value_name = "N")]
    pub streams: u16,

    /// With --read storage: write the result to a table of this dataset (deleted after the
    /// read; give the dataset a default table expiration) instead of BigQuery's anonymous
    /// result table; PROJECT.DATASET or DATASET of --project
    #[arg(long, env = "FEATUREKIT_STAGING_DATASET", value_name = "DATASET")]
    pub staging_dataset: Option<String>,

    /// The Storage Read API's root, for an emulator
    #[arg(
        long,
        env = "FEATUREKIT_STORAGE_ENDPOINT",
        default_value = "https://bigquerystorage.googleapis.com",
        value_name = "URL"
    )]
    pub storage_endpoint: String,

    /// Rows per result page asked of BigQuery [default: as many as fit its 10 MB page]
    #[arg(long, env = "FEATUREKIT_PAGE_ROWS", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub page_rows: Option<u32>,

    /// Attempts per request on 429, 5xx, rateLimitExceeded, backendError or a timeout, with
    /// exponential backoff and jitter; then exit 75
    #[arg(long, env = "FEATUREKIT_ATTEMPTS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub attempts: u32,

    /// Timeout of one HTTP exchange with BigQuery, in seconds
    #[arg(long, env = "FEATUREKIT_REQUEST_TIMEOUT", default_value_t = 120, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,

    #[command(flatten)]
    pub common: Common,
}

/// How a query's result is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Read {
    Rest,
    Storage,
}

/// How far before --start raw events are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// The spec's longest window.
    Auto,
    Duration(Window),
    None,
}

fn parse_lookback(s: &str) -> Result<Lookback, String> {
    match s {
        "auto" => Ok(Lookback::Auto),
        "none" | "0" => Ok(Lookback::None),
        _ => s
            .parse::<Window>()
            .map(Lookback::Duration)
            .map_err(|e| format!("{e}, or auto, or none")),
    }
}

/// A job label: BigQuery takes lowercase letters, digits, `_` and `-`, keys starting with a
/// letter, at most 63 characters each.
fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let ok = |t: &str| {
        t.len() <= 63
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if k.is_empty() || !k.starts_with(|c: char| c.is_ascii_lowercase()) || !ok(k) || !ok(v) {
        return Err(format!(
            "label `{s}`: keys start with a lowercase letter; keys and values hold at most 63 \
             lowercase letters, digits, `_` or `-`"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

impl featurekit::step::StepArgs for Args {
    fn common(&self) -> &Common {
        &self.common
    }
    fn artifacts(&self) -> (Vec<String>, Vec<String>) {
        let query = format!("bigquery://{}/{}", self.project, self.query_file.display());
        (vec![query], vec![self.output.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_its_env_twin() {
        use clap::CommandFactory;
        featurekit::cli::check_env_twins(&Args::command()).unwrap();
    }

    #[test]
    fn lookbacks_and_labels_parse() {
        assert_eq!(parse_lookback("auto"), Ok(Lookback::Auto));
        assert_eq!(parse_lookback("none"), Ok(Lookback::None));
        assert_eq!(parse_lookback("36h"), Ok(Lookback::Duration("36h".parse().unwrap())));
        assert!(parse_lookback("soon").is_err());
        assert_eq!(
            parse_label("step=extract-bigquery"),
            Ok(("step".into(), "extract-bigquery".into()))
        );
        assert!(parse_label("Step=x").is_err());
        assert!(parse_label("step").is_err());
        assert!(parse_label("1step=x").is_err());
        assert!(parse_label("step=a b").is_err());
    }
}
