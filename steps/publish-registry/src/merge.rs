//! Merging the objects of features.yaml into a registry's bytes.
//!
//! The registry is split into its top-level fields without decoding them. An entity, data
//! source or feature view whose project and name are in the spec is ours: it is decoded, and
//! replaced by the spec's version (keeping its creation time, materialization intervals and
//! state). Every other field, whatever its type or content, is copied byte for byte: other
//! projects, other views, feature services, on-demand views, saved datasets, permissions,
//! version history, and fields newer than this code. Inside an object of ours, the fields its
//! [`Shape`] does not own are kept too, at every depth ([`keep_unowned`]); an object of ours
//! the spec does not change keeps its bytes. The version id and last-updated time are set
//! anew, as Feast does on every commit.

use std::collections::BTreeMap;

use featurekit::{Error, Result};
use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};

use crate::proto::{
    self, DataSource, Entity, FeatureView, MaterializationInterval, Project, Shape, Timestamp, registry, shape,
};

/// One field of a message (the registry's top level, or deeper), raw.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub number: u32,
    /// The whole field as it appears in the file: key, length, payload.
    pub raw: Vec<u8>,
    /// The payload of a length-delimited field.
    pub payload: Option<std::ops::Range<usize>>,
}

impl Field {
    pub fn payload(&self) -> &[u8] {
        self.payload.clone().map_or(&[][..], |r| &self.raw[r])
    }

    fn message(number: u32, msg: &impl Message) -> Field {
        Field::length_delimited(number, &msg.encode_to_vec())
    }

    fn length_delimited(number: u32, payload: &[u8]) -> Field {
        let mut raw = Vec::with_capacity(payload.len() + 10);
        encode_key(number, WireType::LengthDelimited, &mut raw);
        encode_varint(payload.len() as u64, &mut raw);
        let start = raw.len();
        raw.extend_from_slice(payload);
        Field {
            number,
            payload: Some(start..raw.len()),
            raw,
        }
    }
}

/// `new`, the encoding of a message of ours, with every field of `old` (the registry's
/// version of it) that `shape` does not own put back, at every depth: what a newer Feast
/// wrote inside our objects survives. Owned fields are `new`'s; the kept ones follow them.
pub fn keep_unowned(shape: &Shape, old: &[u8], new: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let old = split(old)?;
    let mut out = Vec::with_capacity(new.len());
    for field in split(new)? {
        let replaced = shape
            .message(field.number)
            .and_then(|(inner, paired_by)| Some((inner, counterpart(&old, &field, paired_by)?)));
        match replaced {
            Some((inner, was)) => {
                let payload = keep_unowned(inner, was.payload(), field.payload())?;
                out.extend_from_slice(&Field::length_delimited(field.number, &payload).raw);
            }
            None => out.extend_from_slice(&field.raw),
        }
    }
    for kept in old.iter().filter(|f| !shape.owns(f.number)) {
        out.extend_from_slice(&kept.raw);
    }
    Ok(out)
}

/// The field of `old` that `new` replaces: the first of its number whose field `paired_by`
/// has the same bytes (any, without `paired_by`).
fn counterpart<'a>(old: &'a [Field], new: &Field, paired_by: Option<u32>) -> Option<&'a Field> {
    let key = |f: &Field| {
        let number = paired_by?;
        split(f.payload())
            .ok()?
            .into_iter()
            .find(|k| k.number == number)
            .map(|k| k.raw)
    };
    let wanted = key(new);
    old.iter().find(|f| f.number == new.number && key(f) == wanted)
}

/// The registry field of an object of ours: the registry's own bytes when the spec changes
/// nothing in it, else `new` with every field of the old one it does not own.
fn rewritten<M: Message + PartialEq>(field: Field, old: &M, new: &M, shape: &Shape) -> Result<Field> {
    if new == old {
        return Ok(field);
    }
    let payload = keep_unowned(shape, field.payload(), &new.encode_to_vec())
        .map_err(|e| Error::data(format!("not a Feast registry: field {}: {e}", field.number)))?;
    Ok(Field::length_delimited(field.number, &payload))
}

/// Splits a message's bytes (the registry's, or one inside it) into its fields; anything
/// that is not a well-formed protobuf message is an error.
pub fn split(bytes: &[u8]) -> std::result::Result<Vec<Field>, String> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while pos < bytes.len() {
        let mut buf = &bytes[pos..];
        let left = buf.len();
        let (number, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let mut payload = None;
        match wire {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(|e| e.to_string())?;
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let n = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                if buf.len() < n {
                    return Err(format!("field {number}: truncated"));
                }
                buf.advance(n);
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|e| e.to_string())? as usize;
                if buf.len() < len {
                    return Err(format!("field {number}: {len} bytes announced, {} left", buf.len()));
                }
                let header = left - buf.len();
                payload = Some(header..header + len);
                buf.advance(len);
            }
            WireType::StartGroup | WireType::EndGroup => return Err(format!("field {number}: a group")),
        }
        let consumed = left - buf.len();
        fields.push(Field {
            number,
            raw: bytes[pos..pos + consumed].to_vec(),
            payload,
        });
        pos += consumed;
    }
    Ok(fields)
}

/// What features.yaml wants in the registry.
#[derive(Debug, Clone)]
pub struct Desired {
    pub project: String,
    pub entities: Vec<Entity>,
    pub sources: Vec<DataSource>,
    pub views: Vec<FeatureView>,
}

/// How one object compares with the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added,
    /// What differs, in the terms `feast plan` uses.
    Changed(Vec<String>),
    /// Only the materialization record changed.
    Materialized,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
}

/// A tag key publish-registry writes for lineage; not a difference that matters.
pub const LINEAGE_PREFIX: &str = "featurekit/";

pub struct Merged {
    pub bytes: Vec<u8>,
    pub plan: Vec<Planned>,
    /// False when the owned objects are byte-identical to the registry's: nothing to write.
    pub changed: bool,
}

/// Merges `desired` into `existing` (empty for a new registry). `now` stamps what changed;
/// `materialized` records an interval (microseconds) on every desired view.
pub fn merge(
    existing: &[u8],
    desired: &Desired,
    now: Timestamp,
    version_id: &str,
    materialized: Option<(i64, i64)>,
) -> Result<Merged> {
    let fields = split(existing).map_err(|e| Error::data(format!("not a Feast registry: {e}")))?;
    let bad = |what: &str, e: prost::DecodeError| Error::data(format!("not a Feast registry: a {what}: {e}"));
    proto::RegistryHead::decode(existing).map_err(|e| bad("header", e))?;
    let mut out: Vec<Field> = Vec::with_capacity(fields.len() + 8);
    let mut plan = Vec::new();
    let mut changed = false;
    let mut seen_entities = vec![false; desired.entities.len()];
    let mut seen_sources = vec![false; desired.sources.len()];
    let mut seen_views = vec![false; desired.views.len()];
    let mut seen_project = false;
    let ours = |project: &str| project == desired.project;

    for field in fields {
        match field.number {
            registry::REGISTRY_SCHEMA_VERSION | registry::VERSION_ID | registry::LAST_UPDATED => continue,
            registry::ENTITIES => {
                let old = Entity::decode(field.payload()).map_err(|e| bad("entity", e))?;
                let spec = old.spec.clone().unwrap_or_default();
                if let Some(i) = desired
                    .entities
                    .iter()
                    .position(|d| ours(&spec.project) && d.spec.as_ref().is_some_and(|s| s.name == spec.name))
                    .filter(|&i| !seen_entities[i])
                {
                    seen_entities[i] = true;
                    let mut new = desired.entities[i].clone();
                    let same = new.spec == old.spec;
                    new.meta = Some(proto::Meta {
                        created_timestamp: old.meta.as_ref().and_then(|m| m.created_timestamp).or(Some(now)),
                        last_updated_timestamp: if same {
                            old.meta.as_ref().and_then(|m| m.last_updated_timestamp)
                        } else {
                            Some(now)
                        },
                    });
                    plan.push(Planned {
                        kind: "entity",
                        name: spec.name.clone(),
                        change: if same {
                            Change::Unchanged
                        } else {
                            Change::Changed(vec!["spec".into()])
                        },
                    });
                    changed |= new != old;
                    out.push(rewritten(field, &old, &new, &shape::ENTITY)?);
                    continue;
                }
                out.push(field);
            }
            registry::DATA_SOURCES => {
                let old = DataSource::decode(field.payload()).map_err(|e| bad("data source", e))?;
                if let Some(i) = desired
                    .sources
                    .iter()
                    .position(|d| ours(&old.project) && d.name == old.name)
                    .filter(|&i| !seen_sources[i])
                {
                    seen_sources[i] = true;
                    let new = keep_source_meta(&desired.sources[i], &old, now);
                    let diff = source_diff(&new, &old);
                    plan.push(Planned {
                        kind: "data source",
                        name: old.name.clone(),
                        change: if diff.is_empty() {
                            Change::Unchanged
                        } else {
                            Change::Changed(diff)
                        },
                    });
                    changed |= new != old;
                    out.push(rewritten(field, &old, &new, &shape::DATA_SOURCE)?);
                    continue;
                }
                out.push(field);
            }
            registry::FEATURE_VIEWS => {
                let old = FeatureView::decode(field.payload()).map_err(|e| bad("feature view", e))?;
                let spec = old.spec.clone().unwrap_or_default();
                if let Some(i) = desired
                    .views
                    .iter()
                    .position(|d| ours(&spec.project) && d.spec.as_ref().is_some_and(|s| s.name == spec.name))
                    .filter(|&i| !seen_views[i])
                {
                    seen_views[i] = true;
                    let (new, change) = merge_view(&desired.views[i], Some(&old), now, materialized);
                    plan.push(Planned {
                        kind: "feature view",
                        name: spec.name.clone(),
                        change,
                    });
                    changed |= new != old;
                    out.push(rewritten(field, &old, &new, &shape::FEATURE_VIEW)?);
                    continue;
                }
                out.push(field);
            }
            registry::PROJECTS => {
                let p = Project::decode(field.payload()).map_err(|e| bad("project", e))?;
                seen_project |= p.spec.as_ref().is_some_and(|s| ours(&s.name));
                out.push(field);
            }
            _ => out.push(field),
        }
    }

    // what the registry did not have yet
    if !seen_project {
        changed = true;
        plan.push(Planned {
            kind: "project",
            name: desired.project.clone(),
            change: Change::Added,
        });
        out.push(Field::message(
            registry::PROJECTS,
            &Project {
                spec: Some(proto::ProjectSpec {
                    name: desired.project.clone(),
                }),
                meta: Some(proto::Meta {
                    created_timestamp: Some(now),
                    last_updated_timestamp: Some(now),
                }),
            },
        ));
    }
    for (e, _) in desired.entities.iter().zip(&seen_entities).filter(|(_, seen)| !**seen) {
        changed = true;
        let mut e = e.clone();
        e.meta = Some(proto::Meta {
            created_timestamp: Some(now),
            last_updated_timestamp: Some(now),
        });
        plan.push(Planned {
            kind: "entity",
            name: e.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            change: Change::Added,
        });
        out.push(Field::message(registry::ENTITIES, &e));
    }
    for (s, _) in desired.sources.iter().zip(&seen_sources).filter(|(_, seen)| !**seen) {
        changed = true;
        let mut s = s.clone();
        s.meta = Some(proto::SourceMeta {
            created_timestamp: Some(now),
            last_updated_timestamp: Some(now),
        });
        plan.push(Planned {
            kind: "data source",
            name: s.name.clone(),
            change: Change::Added,
        });
        out.push(Field::message(registry::DATA_SOURCES, &s));
    }
    for (v, _) in desired.views.iter().zip(&seen_views).filter(|(_, seen)| !**seen) {
        changed = true;
        let (v, _) = merge_view(v, None, now, materialized);
        plan.push(Planned {
            kind: "feature view",
            name: v.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            change: Change::Added,
        });
        out.push(Field::message(registry::FEATURE_VIEWS, &v));
    }

    // the header, as Feast writes it on every commit
    let mut bytes = Vec::with_capacity(existing.len() + 1024);
    for f in &out {
        bytes.extend_from_slice(&f.raw);
    }
    proto::RegistryHead {
        registry_schema_version: "1".into(),
        version_id: version_id.into(),
        last_updated: Some(now),
    }
    .encode(&mut bytes)
    .expect("a Vec grows");
    Ok(Merged { bytes, plan, changed })
}

fn keep_source_meta(new: &DataSource, old: &DataSource, now: Timestamp) -> DataSource {
    let mut new = new.clone();
    let same = source_diff(&new, old).is_empty();
    new.meta = Some(proto::SourceMeta {
        created_timestamp: old.meta.as_ref().and_then(|m| m.created_timestamp).or(Some(now)),
        last_updated_timestamp: if same {
            old.meta.as_ref().and_then(|m| m.last_updated_timestamp)
        } else {
            Some(now)
        },
    });
    new
}

/// The fields of a data source that differ, its meta left out.
fn source_diff(a: &DataSource, b: &DataSource) -> Vec<String> {
    let mut d = vec![];
    if a.timestamp_field != b.timestamp_field {
        d.push("timestamp_field".into());
    }
    if a.created_timestamp_column != b.created_timestamp_column {
        d.push("created_timestamp_column".into());
    }
    if a.file_options != b.file_options {
        d.push("path".into());
    }
    // Feast leaves the class out of a view's own copy of its source (it infers FileSource from
    // file_options): only a class on both sides can differ
    let class_differs = !a.data_source_class_type.is_empty()
        && !b.data_source_class_type.is_empty()
        && a.data_source_class_type != b.data_source_class_type;
    if a.r#type != b.r#type || class_differs {
        d.push("type".into());
    }
    if a.name != b.name {
        d.push("name".into());
    }
    if a.project != b.project {
        d.push("project".into());
    }
    if (&a.description, &a.owner, &a.tags) != (&b.description, &b.owner, &b.tags) {
        d.push("description, owner or tags".into());
    }
    d
}

/// The desired view merged with the registry's: the spec from features.yaml; creation time,
/// intervals and state kept; `materialized` recorded.
fn merge_view(
    desired: &FeatureView,
    old: Option<&FeatureView>,
    now: Timestamp,
    materialized: Option<(i64, i64)>,
) -> (FeatureView, Change) {
    let mut new = desired.clone();
    let old_meta = old.and_then(|o| o.meta.clone()).unwrap_or_default();
    let diff = old.map(|o| view_diff(new.spec.as_ref(), o.spec.as_ref()));
    let mut meta = proto::FeatureViewMeta {
        created_timestamp: old_meta.created_timestamp.or(Some(now)),
        last_updated_timestamp: match &diff {
            Some(d) if d.is_empty() => old_meta.last_updated_timestamp,
            _ => Some(now),
        },
        ..old_meta.clone()
    };
    // the batch source inside the view keeps its own creation time too
    if let (Some(spec), Some(old_spec)) = (new.spec.as_mut(), old.and_then(|o| o.spec.as_ref()))
        && let (Some(src), Some(old_src)) = (spec.batch_source.as_mut(), old_spec.batch_source.as_ref())
    {
        *src = keep_source_meta(src, old_src, now);
    } else if let Some(src) = new.spec.as_mut().and_then(|s| s.batch_source.as_mut()) {
        src.meta = Some(proto::SourceMeta {
            created_timestamp: Some(now),
            last_updated_timestamp: Some(now),
        });
    }
    if let Some((start, end)) = materialized {
        meta.materialization_intervals = merge_intervals(&meta.materialization_intervals, (start, end));
        meta.last_updated_timestamp = Some(now);
        meta.state = proto::state::AVAILABLE_ONLINE;
    }
    new.meta = Some(meta);
    let change = match diff {
        None => Change::Added,
        Some(d) if !d.is_empty() => Change::Changed(d),
        Some(_) if materialized.is_some() => Change::Materialized,
        Some(_) => Change::Unchanged,
    };
    (new, change)
}

/// The spec fields of two views that differ; lineage tags left out.
fn view_diff(a: Option<&proto::FeatureViewSpec>, b: Option<&proto::FeatureViewSpec>) -> Vec<String> {
    let (Some(a), Some(b)) = (a, b) else {
        return vec!["spec".into()];
    };
    let tags = |t: &BTreeMap<String, String>| {
        t.iter()
            .filter(|(k, _)| !k.starts_with(LINEAGE_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let mut d = vec![];
    if a.entities != b.entities || a.entity_columns != b.entity_columns {
        d.push("entities".into());
    }
    if a.features != b.features {
        d.push("features".into());
    }
    if a.ttl != b.ttl {
        d.push("ttl".into());
    }
    if a.online != b.online {
        d.push("online".into());
    }
    if tags(&a.tags) != tags(&b.tags) {
        d.push("tags".into());
    }
    if (&a.description, &a.owner) != (&b.description, &b.owner) {
        d.push("description or owner".into());
    }
    match (&a.batch_source, &b.batch_source) {
        (Some(x), Some(y)) => {
            let inner = source_diff(x, y);
            if !inner.is_empty() {
                d.push(format!("batch_source ({})", inner.join(", ")));
            }
        }
        (None, None) => {}
        _ => d.push("batch_source".into()),
    }
    d
}

/// Adds `[start, end]` to a view's intervals and merges the ones that overlap or touch, so
/// that the list stays as short as the history allows (Feast appends forever).
pub fn merge_intervals(old: &[MaterializationInterval], add: (i64, i64)) -> Vec<MaterializationInterval> {
    let us = |t: &Option<Timestamp>| t.map_or(0, |t| t.seconds * 1_000_000 + (t.nanos / 1_000) as i64);
    let mut all: Vec<(i64, i64)> = old.iter().map(|i| (us(&i.start_time), us(&i.end_time))).collect();
    all.push(add);
    all.sort();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(all.len());
    for (s, e) in all {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
        .into_iter()
        .map(|(s, e)| MaterializationInterval {
            start_time: Some(Timestamp::from_micros(s)),
            end_time: Some(Timestamp::from_micros(e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp { seconds: s, nanos: 0 }
    }

    fn interval(a: i64, b: i64) -> MaterializationInterval {
        MaterializationInterval {
            start_time: Some(ts(a)),
            end_time: Some(ts(b)),
        }
    }

    #[test]
    fn intervals_that_overlap_or_touch_merge() {
        let m = 1_000_000;
        let got = merge_intervals(&[interval(0, 10), interval(20, 30)], (10 * m, 20 * m));
        assert_eq!(got, vec![interval(0, 30)]);
        let got = merge_intervals(&[interval(0, 10)], (11 * m, 12 * m));
        assert_eq!(got, vec![interval(0, 10), interval(11, 12)]);
        let got = merge_intervals(&[interval(5, 6), interval(0, 10)], (2 * m, 3 * m));
        assert_eq!(got, vec![interval(0, 10)]);
        // a daily run keeps one interval however many days it runs
        let mut all = vec![];
        for day in 0..365 {
            all = merge_intervals(&all, (day * 86_400 * m, (day + 1) * 86_400 * m));
        }
        assert_eq!(all, vec![interval(0, 365 * 86_400)]);
    }

    #[test]
    fn split_rejects_what_is_not_protobuf() {
        assert!(split(b"\x0a\x05ab").is_err(), "a length past the end");
        assert!(split(&[0xff; 12]).is_err());
        assert_eq!(split(b"").unwrap(), vec![]);
        let f = split(b"\x1a\x011\x08\x96\x01").unwrap();
        assert_eq!((f[0].number, f[0].payload()), (3, &b"1"[..]));
        assert_eq!((f[1].number, f[1].raw.as_slice()), (1, &b"\x08\x96\x01"[..]));
    }

    /// A registry Feast wrote (apply + materialize of the golden repo).
    fn feast_written() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/feast-0.67/registry_after_materialize.db"
        );
        std::fs::read(path).expect("tests/fixtures/feast-0.67/registry_after_materialize.db")
    }

    fn seed(project: &str) -> Desired {
        let spec = featurekit::spec::Spec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../features.yaml")).unwrap();
        let mut d = crate::desired(&spec, "/data/offline", Some("wf-1"), Some(42));
        d.project = project.into();
        for e in &mut d.entities {
            e.spec.as_mut().unwrap().project = project.into();
        }
        for s in &mut d.sources {
            s.project = project.into();
        }
        for v in &mut d.views {
            v.spec.as_mut().unwrap().project = project.into();
        }
        d
    }

    #[test]
    fn objects_we_do_not_own_are_kept_byte_for_byte() {
        let old = feast_written();
        let before = split(&old).unwrap();
        // another project: nothing of Feast's is ours
        let merged = merge(&old, &seed("other_project"), ts(1), "v1", None).unwrap();
        let after = split(&merged.bytes).unwrap();
        for f in before.iter().filter(|f| ![3, 4, 5].contains(&f.number)) {
            assert!(after.contains(f), "field {} kept verbatim", f.number);
        }
        assert!(merged.plan.iter().all(|p| p.change == Change::Added));
        // the same project: Feast's view of the same name becomes ours, the rest stays
        let merged = merge(&old, &seed("fraud_detection"), ts(2), "v2", Some((0, 1_000_000))).unwrap();
        let after = split(&merged.bytes).unwrap();
        let views: Vec<FeatureView> = after
            .iter()
            .filter(|f| f.number == registry::FEATURE_VIEWS)
            .map(|f| FeatureView::decode(f.payload()).unwrap())
            .collect();
        assert_eq!(views.len(), 1);
        let meta = views[0].meta.clone().unwrap();
        // Feast's interval 2024-12-01..2025-01-10 kept, ours added apart
        assert_eq!(meta.materialization_intervals.len(), 2);
        assert_eq!(meta.state, proto::state::AVAILABLE_ONLINE);
        let kept_entities = after.iter().filter(|f| f.number == registry::ENTITIES).count();
        assert_eq!(kept_entities, 3, "user_id and __dummy of Feast's, and ours");
        for f in before.iter().filter(|f| [18, 17, 12].contains(&f.number)) {
            assert!(after.contains(f), "field {} kept verbatim", f.number);
        }
        let head = proto::RegistryHead::decode(&merged.bytes[..]).unwrap();
        assert_eq!(
            (head.version_id.as_str(), head.registry_schema_version.as_str()),
            ("v2", "1")
        );
    }

    #[test]
    fn a_second_merge_of_the_same_spec_changes_nothing() {
        let d = seed("p");
        let first = merge(b"", &d, ts(1), "v1", None).unwrap();
        assert!(first.changed);
        let second = merge(&first.bytes, &d, ts(2), "v2", None).unwrap();
        assert!(!second.changed, "{:?}", second.plan);
        assert!(second.plan.iter().all(|p| p.change == Change::Unchanged));
        // new lineage only: written, but not a difference
        let mut d2 = d.clone();
        d2.views[0]
            .spec
            .as_mut()
            .unwrap()
            .tags
            .insert("featurekit/workflow".into(), "wf-2".into());
        let third = merge(&first.bytes, &d2, ts(3), "v3", None).unwrap();
        assert!(third.changed);
        assert!(third.plan.iter().all(|p| p.change == Change::Unchanged));
    }

    #[test]
    fn garbage_is_not_a_registry() {
        let d = seed("p");
        assert!(merge(b"hello, world", &d, ts(1), "v", None).is_err());
        let mut truncated = feast_written();
        truncated.truncate(truncated.len() / 2);
        assert!(merge(&truncated, &d, ts(1), "v", None).is_err());
    }

    /// A length-delimited field `number` holding `text`, and a varint field `number + 1`.
    fn unknown(number: u32, text: &str) -> Vec<u8> {
        let mut raw = Field::length_delimited(number, text.as_bytes()).raw;
        encode_key(number + 1, WireType::Varint, &mut raw);
        encode_varint(u64::from(number), &mut raw);
        raw
    }

    /// A step of a path: a field number and which of the fields of that number.
    type Step = (u32, usize);

    /// `msg` with `raw` appended to (`at_start`: put before the fields of) the message at `path`.
    fn with_field(msg: &[u8], path: &[Step], raw: &[u8], at_start: bool) -> Vec<u8> {
        let Some(((number, nth), rest)) = path.split_first() else {
            return if at_start {
                [raw, msg].concat()
            } else {
                [msg, raw].concat()
            };
        };
        let mut of_number = 0;
        let mut out = vec![];
        for f in split(msg).unwrap() {
            let index = of_number;
            of_number += usize::from(f.number == *number);
            if f.number == *number && index == *nth {
                let payload = with_field(f.payload(), rest, raw, at_start);
                out.extend(Field::length_delimited(f.number, &payload).raw);
            } else {
                out.extend(f.raw);
            }
        }
        out
    }

    /// The payload of the message at `path`.
    fn message_at(msg: &[u8], path: &[Step]) -> Vec<u8> {
        path.iter().fold(msg.to_vec(), |m, (number, nth)| {
            let fields = split(&m).unwrap();
            let f = fields.iter().filter(|f| f.number == *number).nth(*nth);
            f.unwrap_or_else(|| panic!("no field {number} #{nth}"))
                .payload()
                .to_vec()
        })
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    // registry paths: the first entity (1), data source (12) and feature view (6) of ours
    const ENTITY: Step = (registry::ENTITIES, 0);
    const SOURCE: Step = (registry::DATA_SOURCES, 0);
    const VIEW: Step = (registry::FEATURE_VIEWS, 0);

    /// Every message of our objects a newer Feast could add a field to: (path, then where the
    /// merge puts it when the spec reverses the features and adds a later interval).
    fn depths() -> Vec<(Vec<Step>, Vec<Step>)> {
        let same = |p: &[Step]| (p.to_vec(), p.to_vec());
        vec![
            same(&[ENTITY]),
            same(&[ENTITY, (1, 0)]),
            same(&[ENTITY, (2, 0)]),
            same(&[SOURCE]),
            same(&[SOURCE, (11, 0)]),
            same(&[SOURCE, (50, 0)]),
            same(&[VIEW]),
            same(&[VIEW, (1, 0)]),
            same(&[VIEW, (1, 0), (6, 0)]),
            same(&[VIEW, (1, 0), (7, 0)]),
            same(&[VIEW, (1, 0), (7, 0), (11, 0)]),
            (vec![VIEW, (1, 0), (4, 0)], vec![VIEW, (1, 0), (4, 5)]),
            same(&[VIEW, (1, 0), (12, 0)]),
            same(&[VIEW, (2, 0)]),
            same(&[VIEW, (2, 0), (3, 0)]),
        ]
    }

    /// The seed with every object of ours changed: a new entity description, source path and
    /// feature order.
    fn changed_seed() -> Desired {
        let mut d = seed("p");
        d.entities[0].spec.as_mut().unwrap().description = "another description".into();
        for source in d.sources.iter_mut().chain(d.views.iter_mut().map(|v| {
            let spec = v.spec.as_mut().unwrap();
            spec.features.reverse();
            spec.batch_source.as_mut().unwrap()
        })) {
            source.file_options.as_mut().unwrap().uri = "/elsewhere/user_transaction_features".into();
        }
        d
    }

    #[test]
    fn fields_a_newer_feast_adds_inside_our_objects_are_kept_at_every_depth() {
        let day = 86_400_000_000;
        let first = merge(b"", &seed("p"), ts(1), "v1", Some((0, day))).unwrap().bytes;
        let mut registry = first.clone();
        for (k, (path, _)) in depths().iter().enumerate() {
            registry = with_field(
                &registry,
                path,
                &unknown(4242 + 2 * k as u32, &format!("newer {k}")),
                false,
            );
        }
        let d = changed_seed();
        let merged = merge(&registry, &d, ts(2), "v2", Some((5 * day, 6 * day))).unwrap();
        assert!(
            merged.plan.iter().all(|p| matches!(p.change, Change::Changed(_))),
            "{:?}",
            merged.plan
        );
        for (k, (_, path)) in depths().iter().enumerate() {
            let raw = unknown(4242 + 2 * k as u32, &format!("newer {k}"));
            let message = message_at(&merged.bytes, path);
            assert!(contains(&message, &raw), "the field added at {path:?} is kept there");
        }
        // what publish-registry owns is the spec's, as without the added fields
        let plain = merge(&first, &d, ts(2), "v2", Some((5 * day, 6 * day))).unwrap();
        let view = |b: &[u8]| FeatureView::decode(&message_at(b, &[VIEW])[..]).unwrap();
        assert_eq!(view(&merged.bytes), view(&plain.bytes));
        let entity = |b: &[u8]| Entity::decode(&message_at(b, &[ENTITY])[..]).unwrap();
        assert_eq!(entity(&merged.bytes), entity(&plain.bytes));
        let source = |b: &[u8]| DataSource::decode(&message_at(b, &[SOURCE])[..]).unwrap();
        assert_eq!(source(&merged.bytes), source(&plain.bytes));
    }

    #[test]
    fn an_object_the_spec_does_not_change_keeps_its_bytes() {
        let d = seed("p");
        let mut registry = merge(b"", &d, ts(1), "v1", None).unwrap().bytes;
        // before the fields we own: a re-encoding would move it
        for path in [vec![ENTITY, (1, 0)], vec![SOURCE], vec![SOURCE, (11, 0)]] {
            registry = with_field(&registry, &path, &unknown(4242, "newer"), true);
        }
        let kept = |b: &[u8]| (message_at(b, &[ENTITY]), message_at(b, &[SOURCE]));
        // a new interval changes the view only
        let merged = merge(&registry, &d, ts(2), "v2", Some((0, 1_000_000))).unwrap();
        assert_eq!(kept(&merged.bytes), kept(&registry));
        assert_ne!(message_at(&merged.bytes, &[VIEW]), message_at(&registry, &[VIEW]));
    }

    #[test]
    fn what_replaces_an_object_does_not_inherit_its_fields() {
        let named = |name: &str| DataSource {
            name: name.into(),
            file_options: Some(proto::FileOptions::default()),
            ..DataSource::default()
        };
        // a BigQuery source's options (another member of the oneof file_options is in)
        let bigquery = Field::length_delimited(12, &Field::length_delimited(1, b"a.table").raw).raw;
        let old = [named("s").encode_to_vec(), bigquery.clone()].concat();
        let new = keep_unowned(&shape::DATA_SOURCE, &old, &named("s").encode_to_vec()).unwrap();
        assert_eq!(new, named("s").encode_to_vec(), "ours is the only member of the oneof");
        // a view's batch source of another name: the old one's fields stay with it
        let spec = |source: &str| proto::FeatureViewSpec {
            batch_source: Some(named(source)),
            ..proto::FeatureViewSpec::default()
        };
        let old = with_field(
            &spec("theirs").encode_to_vec(),
            &[(7, 0)],
            &unknown(4242, "theirs"),
            false,
        );
        let new = keep_unowned(&shape::FEATURE_VIEW_SPEC, &old, &spec("ours").encode_to_vec()).unwrap();
        assert_eq!(new, spec("ours").encode_to_vec());
        let new = keep_unowned(&shape::FEATURE_VIEW_SPEC, &old, &spec("theirs").encode_to_vec()).unwrap();
        assert!(contains(&new, &unknown(4242, "theirs")), "the same source keeps them");
    }

    /// Whether prost's `M` declares field `number`: an undeclared one decodes under every wire
    /// type and is dropped when encoding.
    fn declares<M: Message + Default>(number: u32) -> bool {
        let values: [(WireType, &[u8]); 4] = [
            (WireType::Varint, &[1]),
            (WireType::LengthDelimited, &[0]),
            (WireType::ThirtyTwoBit, &[0; 4]),
            (WireType::SixtyFourBit, &[0; 8]),
        ];
        values.into_iter().any(|(wire, value)| {
            let mut raw = vec![];
            encode_key(number, wire, &mut raw);
            raw.extend_from_slice(value);
            M::decode(&raw[..]).map_or(true, |m| !m.encode_to_vec().is_empty())
        })
    }

    /// Whether field `number` of `M` is a message: an empty one is kept when encoding.
    fn is_message<M: Message + Default>(number: u32) -> bool {
        let raw = Field::length_delimited(number, b"").raw;
        M::decode(&raw[..]).is_ok_and(|m| !m.encode_to_vec().is_empty())
    }

    fn assert_shape<M: Message + Default>(shape: &Shape, name: &str) {
        for number in 1..=64 {
            let oneof = shape
                .0
                .iter()
                .any(|f| matches!(f, proto::Owned::Oneof(n) if *n == number));
            let value_or_message = shape.owns(number) && !oneof;
            assert_eq!(declares::<M>(number), value_or_message, "{name}: field {number}");
            if shape.message(number).is_some() {
                assert!(is_message::<M>(number), "{name}: field {number} is a message");
            }
        }
    }

    #[test]
    fn shapes_own_what_the_types_declare() {
        assert_shape::<Timestamp>(&shape::SECONDS_NANOS, "Timestamp");
        assert_shape::<proto::Duration>(&shape::SECONDS_NANOS, "Duration");
        assert_shape::<proto::Meta>(&shape::META, "Meta");
        assert_shape::<proto::EntitySpec>(&shape::ENTITY_SPEC, "EntitySpec");
        assert_shape::<Entity>(&shape::ENTITY, "Entity");
        assert_shape::<proto::FileOptions>(&shape::FILE_OPTIONS, "FileOptions");
        assert_shape::<proto::SourceMeta>(&shape::SOURCE_META, "SourceMeta");
        assert_shape::<DataSource>(&shape::DATA_SOURCE, "DataSource");
        assert_shape::<proto::FeatureSpec>(&shape::FEATURE, "FeatureSpec");
        assert_shape::<proto::FeatureViewSpec>(&shape::FEATURE_VIEW_SPEC, "FeatureViewSpec");
        assert_shape::<MaterializationInterval>(&shape::INTERVAL, "MaterializationInterval");
        assert_shape::<proto::FeatureViewMeta>(&shape::FEATURE_VIEW_META, "FeatureViewMeta");
        assert_shape::<FeatureView>(&shape::FEATURE_VIEW, "FeatureView");
    }
}
