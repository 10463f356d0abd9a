//! materialize-redis: Feast's Redis online store, written byte for byte as Feast 0.67 does.
//!
//! The data flow, per online feature view:
//! 1. list the view's Parquet (`<input>/<view>/`), fingerprint it (paths, sizes, ETags) with
//!    the spec, the interval and the key format; when Redis holds the same fingerprint from a
//!    finished run and its probe entities are still there, the view is unchanged: skip it;
//! 2. read the projected columns of the row groups that may hold rows in [start, end],
//!    decoding several at once, and fold them into each entity's latest row
//!    ([`featurekit::online::latest`]):
//!    every check of the input (columns, types, null keys) happens here, for every view,
//!    before anything is written;
//! 3. write the winners ([`writer`]): batches over several connections, each a pipelined
//!    `HGET _ts` (the rows not newer than Redis are skipped) and a pipelined HSET (+ EXPIRE);
//! 4. record the fingerprint, so an unchanged rerun costs a few round trips.

mod cli;
pub mod writer;

use std::time::Instant;

use featurekit::artifact::{Location, ParquetScan};
use featurekit::feast::{EntityKeyCodec, feature_field, timestamp_field};
use featurekit::online::latest::{Latest, Layout};
use featurekit::online::online_views;
use featurekit::online::store::{Conn, Target, with_retries};
use featurekit::spec::{FeatureView, Spec};
use featurekit::step::{Progress, RunSummary};
use featurekit::{Error, Result};
use sha2::{Digest, Sha256};

pub use cli::Args;
use writer::ViewWrite;

/// Entities whose presence is checked before an unchanged view is skipped.
const PROBES: usize = 32;

pub async fn run(args: Args, summary: &mut RunSummary) -> Result<()> {
    if args.start > args.end {
        return Err(Error::usage(format!(
            "--start {} is after --end {}",
            args.start, args.end
        )));
    }
    let spec = Spec::load(&args.spec).map_err(Error::config)?;
    let views = online_views(&spec, "--feature-view", &args.feature_views)?;
    let target = args.store.target("--redis", &args.redis)?;
    let input = Location::parse(&args.input)?;
    let version = args.store.key_version();
    let range = (args.start.timestamp_micros(), args.end.timestamp_micros());
    let pace = args.store.pace();
    summary.set("start", args.start.to_rfc3339());
    summary.set("end", args.end.to_rfc3339());

    // 1. what to read, and whether it changed since the last finished run
    let started = Instant::now();
    let mut jobs = Vec::new();
    for view in &views {
        let layout = Layout::of(&spec, view, &args.created_column);
        let scan = open_scan(&input, view, views.len() == 1).await?;
        let fingerprint = fingerprint(&spec, view, &scan, &args, &target);
        jobs.push((view, layout, scan, fingerprint));
    }
    let mut unchanged = vec![false; jobs.len()];
    if !args.force {
        let checks: Vec<(Vec<u8>, String, Vec<u8>)> = jobs
            .iter()
            .map(|(v, _, _, fp)| (marker_key(&spec.project, &v.name), fp.clone(), timestamp_field(&v.name)))
            .collect();
        let found = {
            let target = target.clone();
            tokio::task::spawn_blocking(move || {
                with_retries(&target, pace, |c| {
                    checks.iter().map(|(k, fp, ts)| is_unchanged(c, k, fp, ts)).collect()
                })
            })
            .await
            .map_err(|e| Error::bug(format!("marker check: {e}")))??
        };
        unchanged = found;
    }

    // 2. read and check every view before writing anything
    let mut loaded = Vec::new();
    for ((view, layout, scan, fingerprint), unchanged) in jobs.into_iter().zip(unchanged) {
        if unchanged {
            tracing::info!(view = %view.name, "input, interval and spec unchanged since the last finished run: skipped (--force writes anyway)");
            summary.set(&format!("{}_unchanged", view.name), true);
            continue;
        }
        let codec = EntityKeyCodec::new(
            version,
            &layout
                .join_keys
                .iter()
                .map(|(n, t)| (n.as_str(), *t))
                .collect::<Vec<_>>(),
        );
        let mut latest = Latest::new(codec, layout, range);
        let pruned = latest.read(scan).await?;
        summary.set(&format!("{}_row_groups_pruned", view.name), pruned);
        latest.seal();
        summary.rows_in += latest.rows_read;
        tracing::info!(
            view = %view.name,
            rows = latest.rows_read,
            rows_in_range = latest.rows_in_range,
            entities = latest.len(),
            "read"
        );
        loaded.push((*view, latest, fingerprint));
    }
    summary.phase("read", started);

    // 3. write, view after view; 4. record each finished view
    let started = Instant::now();
    let total: u64 = loaded.iter().map(|(_, l, _)| l.len() as u64).sum();
    let progress = std::sync::Arc::new(Progress::new("entities", total));
    let (mut written, mut skipped, mut retries) = (0, 0, 0);
    for (view, latest, fingerprint) in loaded {
        let write = ViewWrite {
            project: spec.project.clone(),
            fields: view
                .features
                .iter()
                .map(|f| feature_field(&view.name, &f.name))
                .collect(),
            ts_field: timestamp_field(&view.name),
            key_ttl: args.key_ttl,
            force: args.force,
        };
        let marker = marker_key(&spec.project, &view.name);
        let (target, progress) = (target.clone(), progress.clone());
        let key_ttl = args.key_ttl;
        let name = view.name.clone();
        let counts = tokio::task::spawn_blocking(move || -> Result<writer::Counts> {
            with_retries(&target, pace, |c| c.query(redis::cmd("DEL").arg(&marker)).map(drop))?;
            let counts = writer::write(&target, &latest, &write, pace, &progress)?;
            if featurekit::step::stopping() {
                return Ok(counts);
            }
            let probes = probe_keys(&latest, &write.project);
            with_retries(&target, pace, |c| {
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&marker).arg("fingerprint").arg(&fingerprint);
                for (i, k) in probes.iter().enumerate() {
                    cmd.arg(format!("probe:{i}")).arg(&k[..]);
                }
                c.query(&cmd)?;
                if let Some(ttl) = key_ttl {
                    c.query(redis::cmd("EXPIRE").arg(&marker).arg(ttl))?;
                }
                Ok(())
            })?;
            Ok(counts)
        })
        .await
        .map_err(|e| Error::bug(format!("writer: {e}")))??;
        tracing::info!(view = %name, written = counts.written, skipped_not_newer = counts.skipped, retries = counts.retries, "written");
        summary.set(&format!("{name}_written"), counts.written);
        written += counts.written;
        skipped += counts.skipped;
        retries += counts.retries;
    }
    progress.finish();
    summary.phase("write", started);
    summary.rows_out = written;
    summary.set("entities_written", written);
    summary.set("entities_skipped_not_newer", skipped);
    summary.set("batch_retries", retries);
    Ok(())
}

/// `<input>/<view>/`, or with a single view and no such prefix, `<input>` itself.
async fn open_scan(input: &Location, view: &FeatureView, single: bool) -> Result<ParquetScan> {
    let below = ParquetScan::open(&input.join(&view.name)).await?;
    if !below.files().is_empty() || !single {
        if below.files().is_empty() {
            return Err(Error::no_input(format!("{input}: no Parquet below {}/", view.name)));
        }
        return Ok(below);
    }
    let here = ParquetScan::open(input).await?;
    if here.files().is_empty() {
        return Err(Error::no_input(format!(
            "{input}: no Parquet for view {} (looked below {}/ too)",
            view.name, view.name
        )));
    }
    Ok(here)
}

/// What must be equal for a rerun to be a no-op: spec, view, interval, key format, store
/// options, and every input object's path, size and ETag (or modification time).
fn fingerprint(spec: &Spec, view: &FeatureView, scan: &ParquetScan, args: &Args, target: &Target) -> String {
    let mut h = Sha256::new();
    for part in [
        spec.checksum.as_str(),
        spec.project.as_str(),
        view.name.as_str(),
        &args.start.to_rfc3339(),
        &args.end.to_rfc3339(),
        &args.store.entity_key_version.to_string(),
        &args.created_column,
        &format!("{:?}", args.key_ttl),
        &target.shown,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for f in scan.files() {
        h.update(f.location.as_ref().as_bytes());
        h.update(f.size.to_le_bytes());
        h.update(f.e_tag.as_deref().unwrap_or("").as_bytes());
        h.update(f.last_modified.timestamp_micros().to_le_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a finished run of a view leaves its fingerprint (outside Feast's key space: Feast's
/// keys start with the serialized join-key count or type, never with a letter).
fn marker_key(project: &str, view: &str) -> Vec<u8> {
    format!("featurekit:materialized:{project}:{view}").into_bytes()
}

/// Up to [`PROBES`] entities spread over the winners.
fn probe_keys(latest: &Latest, project: &str) -> Vec<Vec<u8>> {
    let n = latest.len();
    let step = n.div_ceil(PROBES).max(1);
    (0..n)
        .step_by(step)
        .map(|i| {
            let mut k = latest.codec().prefix().to_vec();
            k.extend_from_slice(latest.key(i));
            k.extend_from_slice(project.as_bytes());
            k
        })
        .collect()
}

/// True when the marker holds this fingerprint and every probe entity still has the view's `_ts`.
fn is_unchanged(
    c: &mut Conn,
    marker: &[u8],
    fingerprint: &str,
    ts_field: &[u8],
) -> std::result::Result<bool, redis::RedisError> {
    let stored = c.query(redis::cmd("HGETALL").arg(marker))?;
    let mut fields: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
    if let redis::Value::Array(items) = stored {
        for pair in items.chunks(2) {
            if let [redis::Value::BulkString(k), redis::Value::BulkString(v)] = pair {
                fields.insert(k.clone(), v.clone());
            }
        }
    } else if let redis::Value::Map(items) = stored {
        for (k, v) in items {
            if let (redis::Value::BulkString(k), redis::Value::BulkString(v)) = (k, v) {
                fields.insert(k, v);
            }
        }
    }
    if fields.get(&b"fingerprint"[..]).map(Vec::as_slice) != Some(fingerprint.as_bytes()) {
        return Ok(false);
    }
    for (k, probe) in &fields {
        if k.starts_with(b"probe:") {
            let exists = c.query(redis::cmd("HEXISTS").arg(&probe[..]).arg(ts_field))?;
            if !matches!(exists, redis::Value::Int(1)) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
