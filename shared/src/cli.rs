//! Flags every step shares, and the command-line value types steps have in common.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// The flags of every step; flatten it into the step's own `Args`.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Log level: error, warn, info, debug or trace (RUST_LOG, when set, wins)
    #[arg(long, env = "FEATUREKIT_LOG_LEVEL", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,

    /// Log format: json (Cloud Logging fields), text, or auto (json unless stderr is a terminal)
    #[arg(long, env = "FEATUREKIT_LOG_FORMAT", default_value = "auto", value_enum)]
    pub log_format: LogFormat,

    /// Write the run summary, one JSON object, to this local file (for Argo output parameters)
    #[arg(long, env = "FEATUREKIT_SUMMARY", value_name = "PATH")]
    pub summary: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

/// Parses a command-line time: RFC 3339 (`2026-11-01T06:00:00Z`, any offset), a date
/// (`2026-11-01`, UTC midnight), or a date-time without a zone, which is UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "invalid time `{s}`: expected RFC 3339 (2026-11-01T06:00:00Z) or a date (2026-11-01)"
    ))
}

/// Asserts that every flag of `cmd` (but help and version) has its env twin
/// `FEATUREKIT_<FLAG>`; each step's tests call it on its own command.
pub fn check_env_twins(cmd: &clap::Command) -> Result<(), String> {
    let mut missing = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let want = crate::env::flag_env(long);
        if arg.get_env().and_then(|e| e.to_str()) != Some(want.as_str()) {
            missing.push(format!("--{long} (want env {want})"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// Checks that a step's README shows its `--help` verbatim between `<!-- help:start -->` and
/// `<!-- help:end -->`; with `UPDATE_README` set in the environment, rewrites the block instead.
/// Each step's CLI tests call it with its own binary's help.
pub fn check_readme_help(readme: &std::path::Path, help: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let (head, rest) = text
        .split_once("<!-- help:start -->\n")
        .ok_or("no <!-- help:start --> marker")?;
    let (_, tail) = rest
        .split_once("<!-- help:end -->")
        .ok_or("no <!-- help:end --> marker")?;
    let fresh = format!("{head}<!-- help:start -->\n```text\n{help}```\n<!-- help:end -->{tail}");
    if std::env::var_os("UPDATE_README").is_some() {
        return std::fs::write(readme, fresh).map_err(|e| e.to_string());
    }
    if text != fresh {
        return Err(format!(
            "{}'s usage block is not the current --help: rerun this test with UPDATE_README=1",
            readme.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_to_utc() {
        let t = |s| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(t("2026-11-01"), "2026-11-01T00:00:00+00:00");
        assert_eq!(t("2026-11-01T06:30:00Z"), "2026-11-01T06:30:00+00:00");
        assert_eq!(t("2026-11-01T08:30:00+02:00"), "2026-11-01T06:30:00+00:00");
        assert_eq!(t("2026-11-01T06:30:00"), "2026-11-01T06:30:00+00:00");
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
    }

    #[test]
    fn common_flags_have_env_twins() {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            common: Common,
        }
        use clap::CommandFactory;
        check_env_twins(&Args::command()).unwrap();

        #[derive(clap::Parser)]
        struct Bad {
            #[arg(long)]
            input: String,
        }
        assert_eq!(
            check_env_twins(&Bad::command()).unwrap_err(),
            "--input (want env FEATUREKIT_INPUT)"
        );
    }
}
