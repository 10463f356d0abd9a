//! featurekit: the library every step uses.
//!
//! - [`spec`]: `features.yaml`, parsed and checked.
//! - [`artifact`]: every input and output by URL (path, file://, s3://, gs://, memory://),
//!   Parquet read and atomic Parquet write over object_store.
//! - [`feast`]: Feast's online-store bytes: entity keys, hash fields, values, timestamps.
//! - `online` (cargo feature `online`): the Redis online store: addresses, connections,
//!   retries, and each entity's latest row, the row Feast serves.
//! - [`retry`]: the one retry policy (exponential backoff, full jitter).
//! - [`malloc`]: glibc's allocator, set up for a step that holds a large working set.
//! - [`step`]: the step runtime: flags every step shares, logs, progress, the run summary,
//!   signals and the exit-code table ([`exit`]).
//! - [`synth`]: deterministic synthetic transactions for the demo, tests and benchmarks.

pub mod artifact;
pub mod cli;
pub mod env;
pub mod exit;
pub mod feast;
pub mod malloc;
#[cfg(feature = "online")]
pub mod online;
pub mod retry;
pub mod spec;
pub mod step;
pub mod synth;
pub mod telemetry;

pub use exit::{Error, Kind, Result};
