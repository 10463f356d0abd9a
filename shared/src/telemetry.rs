//! Logs, progress and the run summary.
//!
//! - Logs go to stderr: one JSON object a line when stderr is not a terminal, with the
//!   fields Cloud Logging reads (`severity`, `message`, `timestamp`) plus the event's and
//!   its spans' fields; readable text on a terminal. stdout is for data only.
//! - [`Progress`] reports `N/M` to `ARGO_PROGRESS_FILE` when Argo sets it, and draws a
//!   bar on a terminal.
//! - [`Summary`] is the one JSON object a step writes to `--summary`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Common, LogFormat};

/// Installs the global logger. `RUST_LOG`, when set, overrides `--log-level`.
pub fn init_logs(common: &Common) {
    let filter = std::env::var(crate::env::RUST_LOG)
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&common.log_level));
    let json = match common.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init()
    };
    // A second init (tests) keeps the first logger.
    drop(result);
}

/// The JSON line format Cloud Logging understands.
pub struct CloudLogging;

fn severity(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARNING",
        tracing::Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true).into(),
        );
        line.insert("severity".into(), severity(event.metadata().level()).into());
        // span fields, outermost first, so the innermost wins on a clash
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(fields)
                {
                    line.extend(map);
                }
            }
        }
        let mut fields = serde_json::Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        line.extend(fields);
        line.insert("message".into(), message);
        line.insert("target".into(), event.metadata().target().into());
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

// ---- progress ------------------------------------------------------------------------

/// Work done out of work to do, reported to Argo and drawn on a terminal.
pub struct Progress {
    label: &'static str,
    file: Option<PathBuf>,
    bar: bool,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    done: u64,
    total: u64,
    last: Option<Instant>,
}

/// How often the progress file and bar are refreshed at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

impl Progress {
    /// Reports to `ARGO_PROGRESS_FILE` when set; draws a bar when stderr is a terminal.
    pub fn new(label: &'static str, total: u64) -> Progress {
        let file = std::env::var_os(crate::env::ARGO_PROGRESS_FILE).map(PathBuf::from);
        Progress::with_file(label, total, file, std::io::stderr().is_terminal())
    }

    pub fn with_file(label: &'static str, total: u64, file: Option<PathBuf>, bar: bool) -> Progress {
        let p = Progress {
            label,
            file,
            bar,
            state: Mutex::new(ProgressState {
                done: 0,
                total,
                last: None,
            }),
        };
        p.report(false);
        p
    }

    pub fn advance(&self, n: u64) {
        self.state.lock().expect("progress").done += n;
        self.report(false);
    }

    pub fn set_total(&self, total: u64) {
        self.state.lock().expect("progress").total = total;
        self.report(false);
    }

    /// Reports completion: `M/M`.
    pub fn finish(&self) {
        {
            let mut s = self.state.lock().expect("progress");
            s.done = s.total.max(s.done);
            s.total = s.done;
        }
        self.report(true);
        if self.bar {
            eprintln!();
        }
    }

    fn report(&self, force: bool) {
        let mut s = self.state.lock().expect("progress");
        let now = Instant::now();
        if !force && s.last.is_some_and(|t| now - t < PROGRESS_EVERY) {
            return;
        }
        s.last = Some(now);
        let (done, total) = (s.done.min(s.total.max(s.done)), s.total.max(s.done));
        drop(s);
        if let Some(file) = &self.file
            && let Err(e) = write_atomically(file, format!("{done}/{total}").as_bytes())
        {
            tracing::debug!(error = %e, "could not write the progress file");
        }
        if self.bar {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(0) as usize;
            let pct = (done * 100).checked_div(total).unwrap_or(0);
            eprint!(
                "\r{} [{}{}] {pct:>3}% {done}/{total}",
                self.label,
                "#".repeat(filled),
                ".".repeat(width as usize - filled)
            );
        }
    }
}

/// Writes a small local file atomically and durably (see [`crate::artifact::local`]).
pub use crate::artifact::local::write_atomically;

// ---- the run summary -----------------------------------------------------------------

/// The one JSON object a step writes to `--summary`: what it read and wrote, how
/// many rows, how long each phase took, and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub step: &'static str,
    pub version: &'static str,
    /// `ok`, `failed` or `interrupted`.
    pub status: &'static str,
    pub exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: String,
    pub seconds: f64,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub phases: Vec<Phase>,
    /// Step-specific figures (warnings, counts), flattened into the object.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    started: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

impl Summary {
    pub fn new(step: &'static str, version: &'static str) -> Summary {
        Summary {
            step,
            version,
            status: "ok",
            exit_code: 0,
            error: None,
            started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            seconds: 0.0,
            inputs: vec![],
            outputs: vec![],
            rows_in: 0,
            rows_out: 0,
            phases: vec![],
            extra: serde_json::Map::new(),
            started: Instant::now(),
        }
    }

    /// Records a phase that began at `since` and ends now; logs it.
    pub fn phase(&mut self, name: &str, since: Instant) {
        let seconds = since.elapsed().as_secs_f64();
        tracing::info!(phase = name, seconds, "phase done");
        self.phases.push(Phase {
            name: name.into(),
            seconds,
        });
    }

    /// Sets a step-specific field.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.extra.insert(key.into(), value.into());
    }

    /// Stamps the end: status, exit code, error and total seconds.
    pub fn end(&mut self, status: &'static str, exit_code: u8, error: Option<String>) {
        self.status = status;
        self.exit_code = exit_code;
        self.error = error;
        self.seconds = self.started.elapsed().as_secs_f64();
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary serializes")
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomically(path, format!("{}\n", self.to_json()).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_file_holds_n_of_m() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("progress");
        let p = Progress::with_file("rows", 10, Some(file.clone()), false);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "0/10");
        p.advance(4);
        p.finish();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "10/10");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("progress")], "no temporary left");
    }

    #[test]
    fn summary_json_shape() {
        let mut s = Summary::new("compute-windows", "0.1.0");
        s.inputs.push("raw/".into());
        s.outputs.push("s3://b/features/".into());
        s.rows_in = 10;
        s.rows_out = 7;
        s.phase("read", Instant::now());
        s.set("lookback_complete", false);
        s.end("failed", 65, Some("bad row".into()));
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in [
            "step",
            "version",
            "status",
            "exit_code",
            "error",
            "started_at",
            "seconds",
            "inputs",
            "outputs",
            "rows_in",
            "rows_out",
            "phases",
            "lookback_complete",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["step"], "compute-windows");
        assert_eq!(v["exit_code"], 65);
        assert_eq!(v["phases"][0]["name"], "read");
        assert_eq!(v["rows_out"], 7);
        assert_eq!(v["lookback_complete"], false);
    }
}
