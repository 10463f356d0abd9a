//! publish-registry: keeps a Feast registry true to features.yaml.
//!
//! The data flow: build the objects features.yaml describes ([`desired`]); read the registry;
//! merge them in, leaving everything else byte for byte ([`merge`]); write the result back
//! with optimistic concurrency ([`store`]), re-reading and re-merging when another writer got
//! there first. `--dry-run` and `--check` stop after the merge and print its plan.

mod cli;
pub mod merge;
pub mod proto;
pub mod store;

use std::sync::{Arc, Mutex};

use featurekit::spec::{Dtype, Spec, ValueType};
use featurekit::step::RunSummary;
use featurekit::{Error, Result};

pub use cli::Args;
use merge::{Change, Desired, Planned};
use proto::{
    DataSource, Duration, Entity, EntitySpec, FeatureSpec, FeatureView, FeatureViewSpec, FileOptions, Timestamp,
};
use store::Registry;

/// The event time and creation time columns of compute-windows' output.
pub const TIMESTAMP_FIELD: &str = "event_timestamp";
pub const CREATED_COLUMN: &str = "created_timestamp";

/// The name of a view's FileSource.
pub fn source_name(view: &str) -> String {
    format!("{view}_source")
}

pub async fn run(args: Args, summary: &mut RunSummary) -> Result<()> {
    let spec = Spec::load(&args.spec).map_err(Error::config)?;
    let materialized = match args.materialized.as_deref() {
        Some([start, end]) if start > end => {
            return Err(Error::usage(format!(
                "--materialized {start} {end}: the start is after the end"
            )));
        }
        Some([start, end]) => Some((start.timestamp_micros(), end.timestamp_micros())),
        _ => None,
    };
    let workflow = args
        .workflow
        .clone()
        .or_else(|| std::env::var("ARGO_WORKFLOW_NAME").ok());
    let desired = desired(&spec, &args.offline_path, workflow.as_deref(), args.rows);
    let registry = Registry::parse(&args.registry)?;
    let shown = featurekit::artifact::redact(&args.registry);
    let corrupt = move |e: Error| Error::data(format!("{shown}: {e}"));

    if args.dry_run || args.check {
        let existing = registry.read().await?;
        let existing = not_truncated(existing.as_deref(), &args.registry)?;
        let merged = merge::merge(existing, &desired, now(), "dry-run", materialized).map_err(corrupt.clone())?;
        print_plan(&merged.plan);
        let drift: Vec<&Planned> = merged
            .plan
            .iter()
            .filter(|p| matches!(p.change, Change::Added | Change::Changed(_)))
            .collect();
        summary.set("differences", drift.len());
        if args.check && !drift.is_empty() {
            return Err(Error::data(format!(
                "{}: differs from {}: {}",
                featurekit::artifact::redact(&args.registry),
                args.spec.display(),
                drift
                    .iter()
                    .map(|p| format!("{} {} {}", verb(&p.change), p.kind, p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Ok(());
    }

    let plan: Arc<Mutex<Vec<Planned>>> = Arc::default();
    let (plan_out, url) = (plan.clone(), args.registry.clone());
    let written = registry
        .update(args.attempts, move |existing| {
            let existing = not_truncated(existing, &url)?;
            let merged = merge::merge(
                existing,
                &desired,
                now(),
                &uuid::Uuid::new_v4().to_string(),
                materialized,
            )
            .map_err(corrupt.clone())?;
            *plan_out.lock().expect("not poisoned") = merged.plan;
            Ok(merged.changed.then_some(merged.bytes))
        })
        .await?;
    let plan = plan.lock().expect("not poisoned").clone();
    print_plan(&plan);
    summary.set("written", written);
    summary.set("changes", plan.iter().filter(|p| p.change != Change::Unchanged).count());
    tracing::info!(written, objects = plan.len(), "registry published");
    Ok(())
}

/// A registry file that exists but is empty was cut short (Feast truncates before it writes):
/// never treat it as a new registry.
fn not_truncated<'a>(existing: Option<&'a [u8]>, url: &str) -> Result<&'a [u8]> {
    match existing {
        Some([]) => Err(Error::data(format!(
            "{}: the registry is empty, as a write cut short leaves it: restore it (or delete it to start anew)",
            featurekit::artifact::redact(url)
        ))),
        Some(b) => Ok(b),
        None => Ok(&[]),
    }
}

fn verb(c: &Change) -> &'static str {
    match c {
        Change::Added => "create",
        Change::Changed(_) => "update",
        Change::Materialized => "record materialization of",
        Change::Unchanged => "keep",
    }
}

/// The plan, one line an object, as `feast plan` prints it.
fn print_plan(plan: &[Planned]) {
    for p in plan {
        match &p.change {
            Change::Added => println!("Created {} {}", p.kind, p.name),
            Change::Changed(what) => println!("Updated {} {}: {}", p.kind, p.name, what.join(", ")),
            Change::Materialized => println!("Recorded a materialization on {} {}", p.kind, p.name),
            Change::Unchanged => println!("Unchanged {} {}", p.kind, p.name),
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_micros(chrono::Utc::now().timestamp_micros())
}

/// `feast.types.ValueType.Enum` of a dtype and of an entity key type.
fn dtype_value_type(d: Dtype) -> i32 {
    match d {
        Dtype::Int64 => 4,
        Dtype::Float64 => 5,
        Dtype::Float32 => 6,
    }
}

fn key_value_type(v: ValueType) -> i32 {
    match v {
        ValueType::String => 2,
        ValueType::Int64 => 4,
    }
}

/// The Feast objects features.yaml describes.
pub fn desired(spec: &Spec, offline_path: &str, workflow: Option<&str>, rows: Option<u64>) -> Desired {
    let project = spec.project.clone();
    let mut entities: Vec<Entity> = Vec::new();
    for e in &spec.entities {
        entities.push(Entity {
            spec: Some(EntitySpec {
                name: e.name.clone(),
                value_type: key_value_type(e.value_type),
                description: e.description.clone(),
                join_key: e.join_key.clone(),
                project: project.clone(),
                ..EntitySpec::default()
            }),
            meta: None,
        });
    }
    let mut sources = Vec::new();
    let mut views = Vec::new();
    for v in &spec.feature_views {
        let source = DataSource {
            r#type: proto::BATCH_FILE,
            timestamp_field: TIMESTAMP_FIELD.into(),
            created_timestamp_column: CREATED_COLUMN.into(),
            file_options: Some(FileOptions {
                uri: format!("{}/{}", offline_path.trim_end_matches('/'), v.name),
                ..FileOptions::default()
            }),
            data_source_class_type: proto::FILE_SOURCE_CLASS.into(),
            name: source_name(&v.name),
            description: format!("Offline rows of feature view {}, written by compute-windows", v.name),
            ..DataSource::default()
        };
        let mut tags = v.tags.clone();
        tags.insert(format!("{}spec-checksum", merge::LINEAGE_PREFIX), spec.checksum.clone());
        if let Some(w) = workflow {
            tags.insert(format!("{}workflow", merge::LINEAGE_PREFIX), w.to_string());
        }
        if let Some(r) = rows {
            tags.insert(format!("{}rows", merge::LINEAGE_PREFIX), r.to_string());
        }
        let entity_columns = v
            .entities
            .iter()
            .filter_map(|name| spec.entity(name))
            .map(|e| FeatureSpec {
                name: e.join_key.clone(),
                value_type: key_value_type(e.value_type),
                ..FeatureSpec::default()
            })
            .collect();
        views.push(FeatureView {
            spec: Some(FeatureViewSpec {
                name: v.name.clone(),
                project: project.clone(),
                entities: v.entities.clone(),
                features: v
                    .features
                    .iter()
                    .map(|f| FeatureSpec {
                        name: f.name.clone(),
                        value_type: dtype_value_type(f.dtype),
                        description: f.description.clone(),
                        ..FeatureSpec::default()
                    })
                    .collect(),
                tags,
                ttl: Some(Duration {
                    seconds: v.ttl.duration().as_secs() as i64,
                    nanos: 0,
                }),
                batch_source: Some(source.clone()),
                online: v.online,
                description: v.description.clone(),
                owner: v.owner.clone(),
                entity_columns,
                version: "latest".into(),
            }),
            meta: None,
        });
        sources.push(DataSource {
            project: project.clone(),
            ..source
        });
    }
    Desired {
        project,
        entities,
        sources,
        views,
    }
}
