//! validate-features: the data contract between compute-windows and the online store.
//!
//! The data flow, per feature view: read the baseline profile first (its PSI bins are needed
//! in the pass); plan the scan of `<input>/<view>/` (a missing column fails the schema rule);
//! one pass over the rows, each row group checked on its own thread ([`scan`]): schema, nulls,
//! finiteness, the row rules ([`rules`]), coverage, and the statistics; then the volume,
//! freshness and drift rules on the merged counts; then the report ([`report`]) and, when
//! every rule passed, this run's profile ([`profile`]).
//!
//! With `--online`, the audit of the online store instead ([`audit`]): each online view's
//! latest rows in the interval, a sample of them read back from Redis and compared.

pub mod audit;
mod cli;
pub mod profile;
pub mod report;
pub mod rules;
pub mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use featurekit::artifact::{Location, ParquetScan};
use featurekit::feast::{EntityKeyCodec, feature_field, timestamp_field};
use featurekit::online::latest::{Latest, Layout};
use featurekit::online::online_views;
use featurekit::spec::{FeatureView, Spec};
use featurekit::step::RunSummary;
use featurekit::{Error, Result};
use futures::{StreamExt, TryStreamExt};

pub use cli::Args;
use profile::{FeatureProfile, Profile, ViewProfile};
use report::{FeatureReport, Report, RuleResult, Status, ViewReport};
use rules::Config;
use scan::{Ctx, Partial, SchemaProblem, Violations};

pub async fn run(args: Args, summary: &mut RunSummary) -> Result<()> {
    if args.start > args.end {
        return Err(Error::usage(format!(
            "--start {} is after --end {}",
            args.start, args.end
        )));
    }
    let spec = Spec::load(&args.spec).map_err(Error::config)?;
    if let Some(url) = &args.online {
        return online(&args, &spec, url, summary).await;
    }
    let config = Config::load(args.rules.as_deref())?;
    for name in config.bounds.keys() {
        if !spec
            .feature_views
            .iter()
            .any(|v| v.features.iter().any(|f| &f.name == name))
        {
            return Err(Error::config(format!("rules: bounds: no feature `{name}` in the spec")));
        }
    }
    let views: Vec<&FeatureView> = match &args.feature_view {
        Some(n) => vec![
            spec.feature_view(n)
                .ok_or_else(|| Error::usage(format!("--feature-view {n}: no such view")))?,
        ],
        None => spec.feature_views.iter().collect(),
    };
    let baseline = match &args.baseline {
        Some(url) => load_baseline(url).await?,
        None => None,
    };
    let input = Location::parse(&args.input)?;
    let range = (args.start.timestamp_micros(), args.end.timestamp_micros());
    let started = Instant::now();

    let mut report = Report {
        status: Status::Pass,
        spec_checksum: spec.checksum.clone(),
        start: args.start.to_rfc3339(),
        end: args.end.to_rfc3339(),
        baseline: baseline
            .as_ref()
            .map(|_| featurekit::artifact::redact(args.baseline.as_deref().unwrap_or(""))),
        drift_checked: baseline.is_some(),
        online: None,
        views: vec![],
    };
    let mut profile = Profile {
        format: 1,
        spec_checksum: spec.checksum.clone(),
        start: report.start.clone(),
        end: report.end.clone(),
        views: BTreeMap::new(),
    };
    let mut rows = 0;
    for view in views {
        let base = baseline.as_ref().and_then(|b| b.views.get(&view.name));
        let (view_report, view_profile) = validate_view(&spec, view, &config, &input, range, base, &args).await?;
        rows += view_report.rows;
        report.status = report.status.max(view_report.status);
        report.views.push(view_report);
        if let Some(p) = view_profile {
            profile.views.insert(view.name.clone(), p);
        }
    }
    summary.rows_in = rows;
    summary.phase("validate", started);

    let problems = finish_report(&report, args.report.as_deref(), summary).await?;
    if report.status == Status::Fail {
        return Err(broken("the contract is broken", &problems));
    }
    if let Some(url) = &args.profile_out {
        let json = serde_json::to_string_pretty(&profile).expect("a profile serializes") + "\n";
        Location::parse(url)?.write(json.into_bytes()).await?;
    }
    tracing::info!(rows, status = report.status.word(), "the contract holds");
    Ok(())
}

/// Writes the report below `prefix` (JSON, HTML, Markdown) and its status into the summary;
/// returns the problems, one line each (warnings logged).
async fn finish_report(report: &Report, prefix: Option<&str>, summary: &mut RunSummary) -> Result<Vec<String>> {
    if let Some(prefix) = prefix {
        let loc = Location::parse(prefix)?;
        loc.join("report.json").write(report.json().into_bytes()).await?;
        loc.join("report.html").write(report.html().into_bytes()).await?;
        loc.join("report.md").write(report.markdown().into_bytes()).await?;
    }
    let problems = report.problems();
    summary.set("status", report.status.word());
    summary.set("problems", problems.clone());
    for p in &problems {
        if p.starts_with("warn") {
            tracing::warn!("{p}");
        }
    }
    Ok(problems)
}

/// The one-line error of a failed run: `lead`, then the first three failing rules.
fn broken(lead: &str, problems: &[String]) -> Error {
    let failed: Vec<&String> = problems.iter().filter(|p| p.starts_with("fail")).collect();
    Error::data(format!(
        "{lead}: {}{}",
        failed
            .iter()
            .take(3)
            .map(|s| s.trim_start_matches("fail "))
            .collect::<Vec<_>>()
            .join("; "),
        if failed.len() > 3 {
            format!("; and {} more (see the report)", failed.len() - 3)
        } else {
            String::new()
        }
    ))
}

/// `--online`: the audit of every online view, its report and summary.
async fn online(args: &Args, spec: &Spec, url: &str, summary: &mut RunSummary) -> Result<()> {
    let names: Vec<String> = args.feature_view.iter().cloned().collect();
    let views = online_views(spec, "--feature-view", &names)?;
    let target = args.store.target("--online", url)?;
    let input = Location::parse(&args.input)?;
    let settings = audit::Settings {
        target: &target,
        pace: args.store.pace(),
        version: args.store.key_version(),
        project: &spec.project,
        sample: args.sample.min(usize::MAX as u64) as usize,
        range: (args.start.timestamp_micros(), args.end.timestamp_micros()),
        now: chrono::Utc::now().timestamp_micros(),
        keep_served: args.sample_out.is_some(),
    };
    let started = Instant::now();
    let mut report = Report {
        status: Status::Pass,
        spec_checksum: spec.checksum.clone(),
        start: args.start.to_rfc3339(),
        end: args.end.to_rfc3339(),
        baseline: None,
        drift_checked: false,
        online: Some(target.shown.clone()),
        views: vec![],
    };
    let mut served = String::new();
    for view in views {
        let loc = input.join(&view.name);
        let latest = interval_rows(spec, view, &loc, &settings).await?;
        let expected = audit::Expected {
            view: &view.name,
            latest: &latest,
            join_keys: latest.layout().join_keys.iter().map(|k| k.0.clone()).collect(),
            features: view.features.iter().map(|f| f.name.clone()).collect(),
            fields: view
                .features
                .iter()
                .map(|f| feature_field(&view.name, &f.name).to_vec())
                .chain([timestamp_field(&view.name)])
                .collect(),
        };
        let audited = audit::audit(&settings, &expected, &loc).await?;
        for row in &audited.served {
            served.push_str(&row.to_string());
            served.push('\n');
        }
        let o = audited.report;
        tracing::info!(view = %view.name, checked = o.checked, missing = o.missing, stale = o.stale, wrong = o.wrong, mismatch_rate = o.mismatch_rate, "audited");
        let v = &view.name;
        summary.set(&format!("{v}_online_checked"), o.checked);
        summary.set(&format!("{v}_online_missing"), o.missing);
        summary.set(&format!("{v}_online_stale"), o.stale);
        summary.set(&format!("{v}_online_wrong"), o.wrong);
        summary.set(&format!("{v}_online_mismatch_rate"), o.mismatch_rate);
        if let Some(age) = o.oldest_age_seconds {
            summary.set(&format!("{v}_online_staleness_seconds"), age);
        }
        let rules = online_rules(&o, args);
        let status = rules.iter().map(|r| r.status).max().unwrap_or(Status::Pass);
        report.status = report.status.max(status);
        report.views.push(ViewReport {
            view: view.name.clone(),
            status,
            rows: o.entities,
            rules,
            features: vec![],
            online: Some(o),
        });
    }
    let audits = report.views.iter().filter_map(|v| v.online.as_ref());
    summary.set("online_checked", audits.clone().map(|o| o.checked).sum::<u64>());
    summary.set(
        "online_mismatch_rate",
        audits.clone().map(|o| o.mismatch_rate).fold(0.0, f64::max),
    );
    if let Some(age) = audits.filter_map(|o| o.oldest_age_seconds).reduce(f64::max) {
        summary.set("online_staleness_seconds", age);
    }
    summary.phase("audit", started);
    if let Some(url) = &args.sample_out {
        Location::parse(url)?.write(served.into_bytes()).await?;
    }
    let problems = finish_report(&report, args.report.as_deref(), summary).await?;
    if report.status == Status::Fail {
        return Err(broken(
            &format!("the online store {} breaks the contract", target.shown),
            &problems,
        ));
    }
    tracing::info!(
        status = report.status.word(),
        "the online store serves the offline rows"
    );
    Ok(())
}

/// Each entity's latest row of `view` in the interval, from its offline rows at `loc`.
async fn interval_rows(spec: &Spec, view: &FeatureView, loc: &Location, s: &audit::Settings<'_>) -> Result<Latest> {
    let layout = Layout::of(spec, view, "created_timestamp");
    let join_keys: Vec<_> = layout.join_keys.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let codec = EntityKeyCodec::new(s.version, &join_keys);
    let scan = ParquetScan::open(loc).await?;
    if scan.files().is_empty() {
        return Err(Error::no_input(format!("{loc}: no Parquet for view {}", view.name)));
    }
    let mut latest = Latest::new(codec, layout, s.range);
    latest.read(scan).await?;
    latest.seal();
    if latest.is_empty() {
        return Err(Error::no_input(format!(
            "{loc}: no row of view {} in [{}, {}]: nothing to audit",
            view.name,
            rfc(s.range.0),
            rfc(s.range.1)
        )));
    }
    Ok(latest)
}

/// The audit's verdicts: the mismatch rate, and the staleness when bounded.
fn online_rules(o: &report::OnlineReport, args: &Args) -> Vec<RuleResult> {
    let mut r = rule(
        "online.mismatch_rate",
        format!(
            "at most {} of the sampled entities missing, stale or wrong (--max-mismatch-rate)",
            args.max_mismatch_rate
        ),
    );
    let mismatched = o.missing + o.stale + o.wrong + o.not_offline;
    r.violations = mismatched;
    r.observed = format!(
        "{:.4} ({mismatched} of {} sampled: {} missing, {} stale, {} wrong, {} newer than any offline row){}",
        o.mismatch_rate,
        o.checked,
        o.missing,
        o.stale,
        o.wrong,
        o.not_offline,
        o.hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
    );
    if o.mismatch_rate > args.max_mismatch_rate {
        r.status = Status::Fail;
    }
    let mut rules = vec![r];
    if let Some(max) = args.max_staleness {
        let mut r = rule(
            "online.staleness",
            format!("the oldest sampled _ts at most {max} old (--max-staleness)"),
        );
        match (o.oldest_age_seconds, &o.oldest_ts) {
            (Some(age), Some(ts)) => {
                r.observed = format!("oldest {ts}, {} old", human((age * 1e6) as i64));
                if age > max.duration().as_secs_f64() {
                    r.status = Status::Fail;
                    r.violations = 1;
                }
            }
            _ => {
                r.observed = "no sampled entity in Redis".into();
                r.status = Status::Fail;
                r.violations = 1;
            }
        }
        rules.push(r);
    }
    rules
}

/// The newest event_timestamp of row group `unit` when its statistics prove that its entity
/// and event_timestamp have no nulls, every event_timestamp lies in the interval and every
/// created_timestamp is this run's: the checks of those columns would find nothing.
fn proven_clean(plan: &featurekit::artifact::ScanPlan, unit: usize, ctx: &Ctx) -> Option<i64> {
    let entity = plan.column_stats(unit, &ctx.entity);
    let ts = plan.column_stats(unit, &ctx.timestamp);
    let created = plan.column_stats(unit, &ctx.created);
    let run = ctx.run_created?;
    let (lo, hi) = ts.range?;
    let clean = entity.nulls == Some(0)
        && ts.nulls == Some(0)
        && created.nulls == Some(0)
        && created.range == Some((run, run))
        && ctx.range.0 <= lo
        && hi <= ctx.range.1;
    clean.then_some(hi)
}

/// Parses a baseline profile's bytes; `shown` names the file in the error. Bytes that are not
/// a profile are a [`Kind::Data`](featurekit::Kind::Data) error. The entry point of the fuzz
/// target `profile` (`fuzz/`).
pub fn parse_baseline(shown: &str, json: &[u8]) -> Result<Profile> {
    serde_json::from_slice(json).map_err(|e| Error::data(format!("{shown}: not a validate-features profile: {e}")))
}

/// The baseline profile: one that is not there is an error, never a first run by accident.
async fn load_baseline(url: &str) -> Result<Option<Profile>> {
    let loc = Location::parse(url)?;
    match loc.read().await {
        Ok(bytes) => parse_baseline(&loc.to_string(), &bytes).map(Some),
        Err(e) if e.kind() == featurekit::Kind::Data => Err(Error::no_input(format!(
            "--baseline {loc}: no profile there (a first run says --no-baseline)"
        ))),
        Err(e) => Err(e),
    }
}

fn rule(name: impl Into<String>, requires: impl Into<String>) -> RuleResult {
    RuleResult {
        rule: name.into(),
        status: Status::Pass,
        requires: requires.into(),
        observed: String::new(),
        violations: 0,
        examples: vec![],
    }
}

/// A rule judged on violations: fail on any.
fn from_violations(name: impl Into<String>, requires: impl Into<String>, v: &Violations, what: &str) -> RuleResult {
    let mut r = rule(name, requires);
    r.violations = v.count;
    r.examples = v.examples.clone();
    if v.count > 0 {
        r.status = Status::Fail;
        r.observed = format!("{} {what}", v.count);
    } else {
        r.observed = format!("no {what}");
    }
    r
}

fn graded(value: f64, warn: f64, fail: f64) -> Status {
    if value > fail {
        Status::Fail
    } else if value > warn {
        Status::Warn
    } else {
        Status::Pass
    }
}

async fn validate_view(
    spec: &Spec,
    view: &FeatureView,
    config: &Config,
    input: &Location,
    range: (i64, i64),
    base: Option<&ViewProfile>,
    args: &Args,
) -> Result<(ViewReport, Option<ViewProfile>)> {
    let entity = spec.entity(&view.entities[0]).expect("the spec checks entities");
    let features: Vec<(String, featurekit::spec::Dtype)> =
        view.features.iter().map(|f| (f.name.clone(), f.dtype)).collect();
    let row_rules = rules::row_rules(view, config)?;
    let psi_edges = features
        .iter()
        .map(|(name, _)| {
            base.and_then(|b| b.features.get(name))
                .map(|f| f.psi_bins.edges.clone())
        })
        .collect();
    let mut out = ViewReport {
        view: view.name.clone(),
        status: Status::Pass,
        rows: 0,
        rules: vec![],
        features: vec![],
        online: None,
    };
    let loc = input.join(&view.name);
    let scan = ParquetScan::open(&loc).await?;
    if scan.files().is_empty() {
        return Err(Error::no_input(format!("{loc}: no Parquet for view {}", view.name)));
    }
    let mut columns = vec![
        entity.join_key.clone(),
        "event_timestamp".into(),
        "created_timestamp".into(),
    ];
    columns.extend(features.iter().map(|f| f.0.clone()));
    let schema_rule = |problem: Option<String>| {
        let mut r = rule(
            "schema.columns",
            "every declared feature with its dtype, the entity, event_timestamp and created_timestamp",
        );
        match problem {
            Some(p) => {
                r.status = Status::Fail;
                r.observed = p;
                r.violations = 1;
            }
            None => r.observed = "as declared".into(),
        }
        r
    };
    // the offline store keeps every run's rows: read the row groups that may hold this run's
    // (a row group that straddles the interval is read whole, and its strays are caught)
    let scan = scan
        .columns(columns.clone())
        .prune("event_timestamp", range.0, range.1.saturating_add(1))
        .batch_rows(8192);
    let plan = match scan.plan().await {
        Ok(plan) => plan,
        Err(e) if e.kind() == featurekit::Kind::Data => {
            out.rules.push(schema_rule(Some(e.to_string())));
            out.status = Status::Fail;
            return Ok((out, None));
        }
        Err(e) => return Err(e),
    };
    let total = plan.stats.rows.max(1);
    // this run's rows carry the newest created_timestamp (compute-windows stamps a run's rows
    // alike); older ones in the interval are an earlier run's as-of rows, checked by that run
    let run_created = plan.max_of("created_timestamp")?;
    let ctx = Arc::new(Ctx {
        entity: entity.join_key.clone(),
        timestamp: "event_timestamp".into(),
        created: "created_timestamp".into(),
        features: features.clone(),
        rules: row_rules.clone(),
        range,
        sample_threshold: if total <= scan::SAMPLE {
            u64::MAX
        } else {
            (u64::MAX as f64 * (scan::SAMPLE as f64 / total as f64)) as u64
        },
        psi_edges,
        run_created,
    });
    let prefix = format!("{}/", loc.path());
    let mut partial = Partial::new(&ctx);
    let mut problem: Option<SchemaProblem> = None;
    // four row groups in flight per core, decoding and checking: files are many and small
    // (a day per worker and view), and their reads wait on the store
    let in_flight = 4 * std::thread::available_parallelism().map_or(1, |n| n.get());
    // a row group whose statistics prove its keys and times clean (no null entity or
    // timestamp, every event_timestamp in the interval, every row this run's) is read without
    // those columns; if its features then break a rule, it is read again whole, for the
    // offending rows' entity and time
    let plan = Arc::new(plan);
    let all = columns;
    let mut chunks = std::pin::pin!(
        futures::stream::iter(0..plan.units())
            .map(|unit| {
                let (ctx, plan, prefix, all) = (ctx.clone(), plan.clone(), prefix.clone(), all.clone());
                async move {
                    let analyzed = |chunk: featurekit::artifact::Chunk, keys: scan::Keys| {
                        let ctx = ctx.clone();
                        let file = chunk.file.strip_prefix(&prefix).unwrap_or(&chunk.file).to_string();
                        async move {
                            tokio::task::spawn_blocking(move || {
                                scan::analyze(&chunk.batches, &file, chunk.first_row, &ctx, keys)
                            })
                            .await
                            .map_err(|e| Error::bug(format!("validator: {e}")))
                        }
                    };
                    if let Some(newest) = proven_clean(&plan, unit, &ctx) {
                        let schema = plan.schema(unit);
                        let file = plan.file(unit);
                        let file = file.strip_prefix(&prefix).unwrap_or(&file).to_string();
                        if let Err(p) = scan::check_schema(&schema, &ctx, &file) {
                            return Ok(Err(p));
                        }
                        let names: Vec<&str> = ctx.features.iter().map(|(n, _)| n.as_str()).collect();
                        let chunk = plan.read(unit, &names).await?;
                        if let Ok(Some(p)) = analyzed(chunk, scan::Keys::Proven { newest }).await? {
                            return Ok(Ok(p));
                        }
                    }
                    let names: Vec<&str> = all.iter().map(String::as_str).collect();
                    let chunk = plan.read(unit, &names).await?;
                    Ok::<_, Error>(
                        analyzed(chunk, scan::Keys::Read)
                            .await?
                            .map(|p| p.expect("read keys always analyze")),
                    )
                }
            })
            .buffered(in_flight)
    );
    while let Some(result) = chunks.try_next().await? {
        match result {
            Ok(p) => partial.merge(p),
            Err(p) => {
                problem = Some(p);
                break;
            }
        }
    }
    if let Some(SchemaProblem(p)) = problem {
        out.rules.push(schema_rule(Some(p)));
        out.status = Status::Fail;
        return Ok((out, None));
    }
    out.rows = partial.rows;
    out.rules.push(schema_rule(None));
    if partial.earlier > 0 {
        tracing::info!(
            rows = partial.earlier,
            "rows of earlier runs in the interval (an older created_timestamp) left out: their run checked them"
        );
    }

    // rows, one by one
    out.rules.push(from_violations(
        format!("not_null.{}", entity.join_key),
        "no null entity key",
        &partial.null_entity,
        "null entity keys",
    ));
    out.rules.push(from_violations(
        "not_null.event_timestamp",
        "no null event time",
        &partial.null_timestamp,
        "null event times",
    ));
    for (k, (name, dtype)) in features.iter().enumerate() {
        if *dtype != featurekit::spec::Dtype::Int64 {
            out.rules.push(from_violations(
                format!("finite.{name}"),
                "no NaN or infinity",
                &partial.features[k].nonfinite,
                "NaN or infinite values",
            ));
        }
    }
    for (r, v) in row_rules.iter().zip(&partial.rules) {
        out.rules.push(from_violations(
            r.name.clone(),
            r.description.clone(),
            v,
            "rows break it",
        ));
    }
    out.rules.push(from_violations(
        "rows.in_range",
        format!("{} <= event_timestamp <= {}", rfc(range.0), rfc(range.1)),
        &partial.out_of_range,
        "rows outside",
    ));

    // volume and coverage
    if let Some(expected) = args.expected_rows {
        let mut r = rule(
            "rows.expected",
            format!("{expected} rows of this run in the interval (compute-windows wrote them)"),
        );
        r.observed = format!("{} rows", partial.in_range);
        if partial.in_range != expected {
            r.status = Status::Fail;
            r.violations = partial.in_range.abs_diff(expected);
        }
        out.rules.push(r);
    }
    if let Some(b) = base {
        let rows = out.rows;
        let change = (rows as f64 - b.rows as f64).abs() / (b.rows.max(1) as f64);
        let mut r = rule(
            "rows.baseline",
            format!(
                "within {:.0}% of the baseline's {} rows (warn above {:.0}%)",
                config.volume.baseline_fail * 100.0,
                b.rows,
                config.volume.baseline_warn * 100.0
            ),
        );
        r.observed = format!(
            "{} rows ({:+.1}%)",
            partial.rows,
            (partial.rows as f64 / b.rows.max(1) as f64 - 1.0) * 100.0
        );
        r.status = graded(change, config.volume.baseline_warn, config.volume.baseline_fail);
        out.rules.push(r);
    }

    // freshness
    let lag = config.max_lag_micros().map_err(Error::config)?;
    let mut r = rule(
        "freshness",
        format!(
            "newest event_timestamp at or after {} (--end minus {})",
            rfc(range.1 - lag),
            config.freshness.max_lag
        ),
    );
    match partial.newest {
        Some(t) if t >= range.1 - lag => r.observed = format!("newest {}", rfc(t)),
        Some(t) => {
            r.status = Status::Fail;
            r.observed = format!("newest {}: {} behind --end", rfc(t), human(range.1 - t));
        }
        None => {
            r.status = Status::Fail;
            r.observed = "no rows".into();
        }
    }
    out.rules.push(r);

    // the profile, and drift against the baseline's
    let mut view_profile = ViewProfile {
        rows: out.rows,
        newest_event: partial.newest.map(rfc),
        features: BTreeMap::new(),
    };
    // the samples sorted for the percentiles, a thread per feature (up to 200,000 values each)
    std::thread::scope(|scope| {
        for stats in partial.features.iter_mut() {
            scope.spawn(|| stats.sample.sort_unstable_by(f64::total_cmp));
        }
    });
    for (k, (name, dtype)) in features.iter().enumerate() {
        let stats = &mut partial.features[k];
        let p = FeatureProfile::from_stats(stats, out.rows);
        let b = base.and_then(|b| b.features.get(name));
        let psi = b.and_then(|b| b.psi(&stats.psi_counts));
        if let Some(b) = b {
            let t = config.drift.psi;
            let mut r = rule(
                format!("drift.psi.{name}"),
                format!("population stability index <= {} (warn above {})", t.fail, t.warn),
            );
            match psi {
                Some(v) => {
                    r.observed = format!("PSI {v:.4}");
                    r.status = graded(v, t.warn, t.fail);
                }
                None => r.observed = "no values to compare".into(),
            }
            out.rules.push(r);
            let t = config.drift.null_rate;
            let change = (p.null_rate - b.null_rate).abs();
            let mut r = rule(
                format!("drift.null_rate.{name}"),
                format!("null rate within {} of the baseline's (warn above {})", t.fail, t.warn),
            );
            r.observed = format!("{:.4} (baseline {:.4})", p.null_rate, b.null_rate);
            r.status = graded(change, t.warn, t.fail);
            out.rules.push(r);
        }
        // the histogram drawn: this run's bins, the baseline read off its percentiles
        // over the 1st to 99th percentiles of both runs: a heavy tail would squeeze the rest
        // into one bar (the first and last bars take what lies beyond)
        let pct = |p: &FeatureProfile, k: usize| p.percentiles.get(k).copied();
        let lo = [pct(&p, 1), b.and_then(|b| pct(b, 1))]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min);
        let hi = [pct(&p, 99), b.and_then(|b| pct(b, 99))]
            .into_iter()
            .flatten()
            .fold(f64::NEG_INFINITY, f64::max);
        let (bins, current, baseline) = if lo.is_finite() && hi.is_finite() {
            let n = 24;
            let width = if hi > lo { (hi - lo) / n as f64 } else { 1.0 };
            let bins: Vec<f64> = (0..=n).map(|i| lo + width * i as f64).collect();
            let mut counts = vec![0f64; n];
            for x in &stats.sample {
                counts[(((x - lo) / width).max(0.0) as usize).min(n - 1)] += 1.0;
            }
            let total = stats.sample.len().max(1) as f64;
            let current = counts.iter().map(|c| c / total).collect();
            let baseline = b.map(|b| b.fractions_in(&bins));
            (bins, current, baseline)
        } else {
            (vec![], vec![], None)
        };
        out.features.push(FeatureReport {
            feature: name.clone(),
            dtype: rules::dtype_name(*dtype).into(),
            count: p.count,
            nulls: p.nulls,
            min: p.min,
            max: p.max,
            mean: p.mean,
            p50: p.percentiles.get(50).copied(),
            p99: p.percentiles.get(99).copied(),
            psi,
            null_rate: p.null_rate,
            baseline_null_rate: b.map(|b| b.null_rate),
            bins,
            current,
            baseline,
        });
        view_profile.features.insert(name.clone(), p);
    }
    out.status = out.rules.iter().map(|r| r.status).max().unwrap_or(Status::Pass);
    Ok((out, Some(view_profile)))
}

fn rfc(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| us.to_string())
}

fn human(us: i64) -> String {
    let s = us / 1_000_000;
    match s {
        s if s >= 86_400 => format!("{:.1} days", s as f64 / 86_400.0),
        s if s >= 3_600 => format!("{:.1} hours", s as f64 / 3_600.0),
        s => format!("{s} s"),
    }
}
