//! Every environment variable featurekit reads, named once.
//!
//! Each command-line flag `--some-flag` has the env twin `FEATUREKIT_SOME_FLAG`
//! (clap reads it; `--help` shows it). [`flag_env`] derives the name and
//! [`crate::cli::check_env_twins`] proves every flag of a command has its twin.

/// Prefix of every flag's env twin.
pub const PREFIX: &str = "FEATUREKIT_";

/// Set by Argo in the main container: the file where `N/M` progress is reported.
pub const ARGO_PROGRESS_FILE: &str = "ARGO_PROGRESS_FILE";
/// The standard tracing filter; when set it overrides `--log-level`.
pub const RUST_LOG: &str = "RUST_LOG";
/// Lineage: the Argo workflow's name, when the step runs in one (`{{workflow.name}}`).
pub const ARGO_WORKFLOW_NAME: &str = "ARGO_WORKFLOW_NAME";

/// Object-store credentials and endpoints are read the way the cloud SDKs read them:
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL` (S3-compatible stores), `AWS_ALLOW_HTTP`, web identity on EKS;
/// `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server (GKE workload identity).
pub const CLOUD_SDK_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// `--output-dir` -> `FEATUREKIT_OUTPUT_DIR`.
pub fn flag_env(long: &str) -> String {
    format!("{PREFIX}{}", long.replace('-', "_").to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn flag_env_names() {
        assert_eq!(super::flag_env("log-level"), "FEATUREKIT_LOG_LEVEL");
        assert_eq!(super::flag_env("spec"), "FEATUREKIT_SPEC");
    }
}
