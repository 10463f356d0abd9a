//! The step runtime: what every binary's `main` does around its own `run`.
//!
//! [`main`] parses the command line (usage errors exit 2), installs the logger,
//! builds the tokio runtime, runs the step while watching SIGTERM and SIGINT,
//! aborts unfinished uploads, writes the summary and maps the outcome to the
//! exit-code table of [`crate::exit`].

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cli::Common;
use crate::exit::{EXIT_SIGINT, EXIT_SIGTERM, Kind, Result};
use crate::telemetry::{Summary, init_logs};

pub use crate::telemetry::{Progress, Summary as RunSummary};

/// A step's parsed command line.
pub trait StepArgs: clap::Parser {
    fn common(&self) -> &Common;
    /// Inputs and outputs to name in the summary (URLs are redacted when shown).
    fn artifacts(&self) -> (Vec<String>, Vec<String>) {
        (vec![], vec![])
    }
}

static STOPPING: AtomicBool = AtomicBool::new(false);

/// True once SIGTERM or SIGINT arrived: long loops may check it to stop early.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// How long cleanup may take after a signal before the process exits regardless.
const GRACE: Duration = Duration::from_secs(10);

enum Outcome {
    Done(Result<()>),
    Signal(&'static str, u8),
}

/// Runs a step: `featurekit::step::main::<Args, _>("compute-windows", env!("CARGO_PKG_VERSION"), run)`.
pub fn main<A, F>(step: &'static str, version: &'static str, run: F) -> ExitCode
where
    A: StepArgs,
    F: AsyncFnOnce(A, &mut Summary) -> Result<()>,
{
    if let Some(missing) = missing_cpu_features() {
        eprintln!(
            "{step}: this build needs a CPU with {missing} (x86-64-v3); rebuild with \
             RUSTFLAGS=\"-C target-cpu=x86-64\" for this one"
        );
        return ExitCode::from(Kind::Config.exit_code());
    }
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    init_logs(args.common());
    let summary_path = args.common().summary.clone();
    let (inputs, outputs) = args.artifacts();
    let mut summary = Summary::new(step, version);
    summary.inputs = inputs.iter().map(|u| crate::artifact::redact(u)).collect();
    summary.outputs = outputs.iter().map(|u| crate::artifact::redact(u)).collect();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let _span = tracing::info_span!("step", step).entered();
    tracing::info!(version, "starting");

    let outcome = runtime.block_on(async {
        // The listener runs on a worker thread, so a signal is seen (and the watchdog
        // armed) even while the step's own work keeps this thread busy.
        let signal = tokio::spawn(shutdown_signal());
        let work = caught(run(args, &mut summary));
        tokio::select! {
            result = work => Outcome::Done(result),
            Ok((name, code)) = signal => Outcome::Signal(name, code),
        }
    });
    // Uploads of sinks dropped unfinished are aborted before we go.
    runtime.block_on(crate::artifact::settle_aborts(GRACE));

    let code = match outcome {
        Outcome::Done(Ok(())) => {
            summary.end("ok", 0, None);
            tracing::info!(
                rows_in = summary.rows_in,
                rows_out = summary.rows_out,
                seconds = summary.seconds,
                "done"
            );
            0
        }
        Outcome::Done(Err(e)) => {
            let code = e.exit_code();
            summary.end("failed", code, Some(e.to_string()));
            tracing::error!(exit_code = code, kind = ?e.kind(), "{e}");
            code
        }
        Outcome::Signal(name, code) => {
            summary.end("interrupted", code, Some(format!("stopped by {name}")));
            tracing::warn!(exit_code = code, "stopped by {name}; unfinished outputs removed");
            code
        }
    };
    if let Some(path) = summary_path
        && let Err(e) = summary.write(&path)
    {
        tracing::error!(path = %path.display(), error = %e, "cannot write the summary");
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

/// Runs the step's work, a panic in it becoming a [`Kind::Bug`] (exit 1, the summary written)
/// instead of the process dying with Rust's 101 and no summary.
async fn caught(work: impl Future<Output = Result<()>>) -> Result<()> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(crate::Error::bug(format!("bug, please report it: {what}")))
        }
    }
}

/// The instruction sets this binary was compiled to assume (`.cargo/config.toml`) that the
/// CPU running it lacks, if any: without them it would die of an illegal instruction. Best
/// effort: this check is compiled for those sets too, and the compiler may use AVX in it, so
/// only CPUs that have AVX (but lack, say, AVX2) are sure to get the message.
fn missing_cpu_features() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        // each feature the build assumed and the CPU lacks
        macro_rules! missing {
            ($($feature:tt),*) => {
                [$((cfg!(target_feature = $feature) && !std::is_x86_feature_detected!($feature)).then_some($feature)),*]
            };
        }
        let missing: Vec<&str> = missing!("avx2", "fma", "bmi2", "lzcnt", "movbe")
            .into_iter()
            .flatten()
            .collect();
        if !missing.is_empty() {
            return Some(missing.join(", "));
        }
    }
    None
}

/// Resolves on SIGTERM or SIGINT. Also arms a watchdog: if the step's work does
/// not yield to the runtime within [`GRACE`], the process exits anyway.
async fn shutdown_signal() -> (&'static str, u8) {
    let got = wait_for_signal().await;
    STOPPING.store(true, Ordering::Relaxed);
    let code = got.1;
    std::thread::spawn(move || {
        std::thread::sleep(GRACE * 2);
        eprintln!("featurekit: cleanup did not finish in time after the signal, exiting");
        std::process::exit(code as i32);
    });
    got
}

#[cfg(unix)]
async fn wait_for_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => ("SIGTERM", EXIT_SIGTERM),
        _ = int.recv() => ("SIGINT", EXIT_SIGINT),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> (&'static str, u8) {
    let _ = tokio::signal::ctrl_c().await;
    ("SIGINT", EXIT_SIGINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_step_is_a_bug_with_its_message() {
        let e = caught(async { panic!("index out of bounds") }).await.unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (Kind::Bug, 1));
        assert!(e.to_string().contains("index out of bounds"), "{e}");
        assert!(caught(async { Ok(()) }).await.is_ok());
    }
}
