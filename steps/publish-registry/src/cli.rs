//! The command line of publish-registry.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Parser;
use featurekit::cli::{Common, parse_time};

/// Keep a Feast registry true to features.yaml: merge the spec's project, entities, FileSources
/// (the offline Parquet compute-windows writes) and feature views into the registry at URL,
/// creating it if absent, and leave every other object untouched. Safe under concurrent writers:
/// a read-modify-write that retries on conflict (a conditional put on object stores, a lock and
/// an atomic rename on local files).
#[derive(Debug, Clone, Parser)]
#[command(name = "publish-registry", version)]
pub struct Args {
    /// The feature spec
    #[arg(long, env = "FEATUREKIT_SPEC", default_value = "features.yaml", value_name = "PATH")]
    pub spec: PathBuf,

    /// The registry.db (a path, file://, s3://, gs://), as feature_store.yaml's `registry:` names it
    #[arg(long, env = "FEATUREKIT_REGISTRY", value_name = "URL")]
    pub registry: String,

    /// Offline store root: each view's FileSource reads <URL>/<view> (compute-windows' --output),
    /// stored as given (Feast resolves a relative path against its repo)
    #[arg(long, env = "FEATUREKIT_OFFLINE_PATH", value_name = "URL")]
    pub offline_path: String,

    /// Record that materialize-redis wrote [START, END] of every view: the interval (merged with
    /// the ones it overlaps or touches) and the AVAILABLE_ONLINE state
    #[arg(long, env = "FEATUREKIT_MATERIALIZED", num_args = 2, value_delimiter = ',',
          value_parser = parse_time, value_names = ["START", "END"])]
    pub materialized: Option<Vec<DateTime<Utc>>>,

    /// Print the plan (created, updated, unchanged objects) and write nothing
    #[arg(long, env = "FEATUREKIT_DRY_RUN")]
    pub dry_run: bool,

    /// Exit 65 when the registry differs from the spec (lineage tags and materializations
    /// aside); write nothing
    #[arg(long, env = "FEATUREKIT_CHECK", conflicts_with = "dry_run")]
    pub check: bool,

    /// Lineage: the workflow that published, as a tag on each view [default: $ARGO_WORKFLOW_NAME]
    #[arg(long, env = "FEATUREKIT_WORKFLOW", value_name = "NAME")]
    pub workflow: Option<String>,

    /// Lineage: the rows compute-windows wrote, as a tag on each view
    #[arg(long, env = "FEATUREKIT_ROWS", value_name = "N")]
    pub rows: Option<u64>,

    /// Read-modify-write attempts when another writer got there first; then exit 75
    #[arg(long, env = "FEATUREKIT_ATTEMPTS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub attempts: u32,

    #[command(flatten)]
    pub common: Common,
}

impl featurekit::step::StepArgs for Args {
    fn common(&self) -> &Common {
        &self.common
    }
    fn artifacts(&self) -> (Vec<String>, Vec<String>) {
        (vec![self.spec.display().to_string()], vec![self.registry.clone()])
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
