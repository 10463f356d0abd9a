//! The command line of validate-features.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Parser;
use featurekit::cli::{Common, parse_time};
use featurekit::online::store::RedisArgs;
use featurekit::spec::Window;

/// Check compute-windows' output against the data contract features.yaml implies (plus a rules
/// file): schema, values, volume and coverage, freshness, and drift against the previous run's
/// profile. Writes a report (JSON, HTML, Markdown) and this run's profile; exits 65 when a rule
/// fails, so that nothing bad reaches Redis or the registry. With --online instead, after
/// materialize-redis: audit that Redis serves each sampled entity's latest row of [START, END],
/// value for value, and how fresh it is.
#[derive(Debug, Clone, Parser)]
#[command(name = "validate-features", version)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["baseline", "no_baseline", "online"]))]
pub struct Args {
    /// The feature spec
    #[arg(long, env = "FEATUREKIT_SPEC", default_value = "features.yaml", value_name = "PATH")]
    pub spec: PathBuf,

    /// Offline store root, each view's rows below <URL>/<view>/ (compute-windows' --output)
    #[arg(long, env = "FEATUREKIT_INPUT", value_name = "URL")]
    pub input: String,

    /// The run's interval: rows must have START <= event_timestamp <= END (as-of rows sit at END)
    #[arg(long, env = "FEATUREKIT_START", value_parser = parse_time, value_name = "T")]
    pub start: DateTime<Utc>,

    /// The end of the run's interval
    #[arg(long, env = "FEATUREKIT_END", value_parser = parse_time, value_name = "T")]
    pub end: DateTime<Utc>,

    /// Thresholds and extra rules (YAML; see the README) [default: the built-in thresholds]
    #[arg(long, env = "FEATUREKIT_RULES", value_name = "FILE", conflicts_with = "online")]
    pub rules: Option<PathBuf>,

    /// The previous run's profile (JSON): drift and volume are judged against it; one that
    /// does not exist fails the run (exit 66), it never switches the drift rules off
    #[arg(long, env = "FEATUREKIT_BASELINE", value_name = "URL")]
    pub baseline: Option<String>,

    /// A first run: no baseline, so no drift or volume-against-baseline rules (the report says
    /// so). One of --baseline and --no-baseline is required
    #[arg(long, env = "FEATUREKIT_NO_BASELINE")]
    pub no_baseline: bool,

    /// Write this run's profile here (only when every rule passes: a broken run is no baseline)
    #[arg(long, env = "FEATUREKIT_PROFILE_OUT", value_name = "URL", conflicts_with = "online")]
    pub profile_out: Option<String>,

    /// Write the report below this prefix: report.json, report.html, report.md
    #[arg(long, env = "FEATUREKIT_REPORT", value_name = "URL")]
    pub report: Option<String>,

    /// The rows compute-windows wrote (its summary's rows_out): rows.expected fails on any other count
    #[arg(long, env = "FEATUREKIT_EXPECTED_ROWS", value_name = "N", conflicts_with = "online")]
    pub expected_rows: Option<u64>,

    /// Only this feature view [default: every view of the spec; with --online, every view with
    /// online: true]
    #[arg(long = "feature-view", env = "FEATUREKIT_FEATURE_VIEW", value_name = "NAME")]
    pub feature_view: Option<String>,

    /// Audit the online store instead of the contract (run after materialize-redis, with its
    /// --start and --end): redis://[user[:password]@]host:port[/db], rediss:// for TLS, or
    /// Feast's connection_string (host:port[,host:port...][,ssl=true][,password=...][,db=N])
    #[arg(long, env = "FEATUREKIT_ONLINE", hide_env_values = true, value_name = "URL")]
    pub online: Option<String>,

    /// With --online: entities audited per view: the most active, some with nulls, the rest by
    /// a seeded hash of their key (the same rows give the same sample); all when fewer
    #[arg(long, env = "FEATUREKIT_SAMPLE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub sample: u64,

    /// With --online: the largest share of sampled entities that may be missing, stale or wrong
    /// in Redis (per view); above it, exit 65
    #[arg(long, env = "FEATUREKIT_MAX_MISMATCH_RATE", default_value_t = 0.0, value_name = "R")]
    pub max_mismatch_rate: f64,

    /// With --online: the oldest sampled `_ts` may be at most this old (1h, 26h, 2d...); older,
    /// exit 65 [default: not checked]
    #[arg(long, env = "FEATUREKIT_MAX_STALENESS", value_parser = |s: &str| s.parse::<Window>(), value_name = "DURATION")]
    pub max_staleness: Option<Window>,

    /// With --online: write what Redis served each sampled entity here, decoded (JSON lines)
    #[arg(long, env = "FEATUREKIT_SAMPLE_OUT", value_name = "URL", requires = "online")]
    pub sample_out: Option<String>,

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
        let outputs = [&self.report, &self.profile_out, &self.sample_out]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let mut inputs = vec![self.input.clone()];
        inputs.extend(self.online.as_deref().map(featurekit::online::store::Target::shown));
        (inputs, outputs)
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
