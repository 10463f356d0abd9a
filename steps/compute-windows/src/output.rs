//! Where and how feature rows are written: Feast FileSource Parquet, one folder per
//! feature view, one file per UTC day, shard and worker.
//!
//! `<output>/<view>/<YYYY-MM-DD>-part-<K>-of-<N>-<w>.parquet` holds the event rows of that
//! day computed by worker `w` of shard `K` of `N`; the as-of rows of a run go to
//! `<YYYY-MM-DD>-asof-part-<K>-of-<N>-<w>.parquet`, dated by the day the as-of time closes.
//! A rerun rewrites its days' files and deletes the ones it no longer produces, so a day's
//! rerun replaces that day; Feast reads the view's folder as one dataset.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use featurekit::spec::{Dtype, FeatureView, Spec, ValueType};

pub const DAY: i64 = 86_400_000_000;

/// Column name of the rows' creation time (Feast's `created_timestamp_column`).
pub const CREATED: &str = "created_timestamp";
/// Column name of the rows' event time (Feast's `timestamp_field`).
pub const EVENT_TS: &str = "event_timestamp";

/// The Arrow schema of a view's output.
pub fn schema(spec: &Spec, view: &FeatureView) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let entity_type = match spec.entity(&view.entities[0]).map(|e| e.value_type) {
        Some(ValueType::String) => DataType::Utf8,
        _ => DataType::Int64,
    };
    let mut fields = vec![
        Field::new(&spec.source.entity_column, entity_type, false),
        Field::new(EVENT_TS, ts.clone(), false),
    ];
    for f in &view.features {
        let t = match f.dtype {
            Dtype::Int64 => DataType::Int64,
            Dtype::Float32 => DataType::Float32,
            Dtype::Float64 => DataType::Float64,
        };
        fields.push(Field::new(&f.name, t, false));
    }
    fields.push(Field::new(CREATED, ts, false));
    Arc::new(Schema::new(fields))
}

/// `2025-11-01` for a day number (days since the epoch).
pub fn date(day: i64) -> String {
    DateTime::from_timestamp_micros(day * DAY)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

/// Which file of a view a row goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKey {
    Day(i64),
    AsOf(i64),
}

/// File names of one shard and worker.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    pub shard: u32,
    pub shards: u32,
}

impl Naming {
    pub fn file(&self, key: FileKey, worker: usize) -> String {
        let (day, kind) = match key {
            FileKey::Day(d) => (d, ""),
            FileKey::AsOf(d) => (d, "asof-"),
        };
        format!(
            "{}-{kind}part-{}-of-{}-{worker}.parquet",
            date(day),
            self.shard,
            self.shards
        )
    }
}

/// What a file name says, if it is one of ours: (date, shard, shards).
pub fn parse_name(name: &str) -> Option<(String, u32, u32)> {
    let (date, rest) = name.split_at_checked(10)?;
    let rest = rest.strip_prefix('-')?;
    let rest = rest.strip_prefix("asof-").unwrap_or(rest);
    let rest = rest.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut it = rest.split('-');
    let k = it.next()?.parse().ok()?;
    (it.next()? == "of").then_some(())?;
    let n = it.next()?.parse().ok()?;
    it.next()?.parse::<u32>().ok()?;
    it.next().is_none().then_some((date.to_string(), k, n))
}

/// Rows of one file, column by column, until they are written.
#[derive(Debug, Default)]
pub struct Rows {
    pub entity: Vec<i64>,
    pub ts: Vec<i64>,
    pub features: Vec<Vec<f64>>,
}

impl Rows {
    pub fn new(features: usize) -> Rows {
        Rows {
            features: vec![Vec::new(); features],
            ..Rows::default()
        }
    }

    pub fn push(&mut self, entity: i64, ts: i64, values: &[f64]) {
        self.entity.push(entity);
        self.ts.push(ts);
        for (col, v) in self.features.iter_mut().zip(values) {
            col.push(*v);
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Takes the rows as a batch of `schema`: entities named back when they are strings,
    /// features cast to their dtype, every row stamped `created`, in the order of the row
    /// indices `order`.
    pub fn take(&mut self, schema: &SchemaRef, names: Option<&[String]>, created: i64, order: &[u32]) -> RecordBatch {
        fn gather<'a, T: Copy>(v: &'a [T], order: &'a [u32]) -> impl Iterator<Item = T> + 'a {
            order.iter().map(move |&i| v[i as usize])
        }
        let n = order.len();
        let mut columns: Vec<ArrayRef> = vec![
            match names {
                Some(names) => Arc::new(StringArray::from_iter_values(
                    gather(&self.entity, order).map(|id| &names[id as usize]),
                )),
                None => Arc::new(Int64Array::from_iter_values(gather(&self.entity, order))),
            },
            Arc::new(TimestampMicrosecondArray::from_iter_values(gather(&self.ts, order)).with_timezone("UTC")),
        ];
        for (k, values) in self.features.iter().enumerate() {
            let values = gather(values, order);
            columns.push(match schema.field(k + 2).data_type() {
                DataType::Int64 => Arc::new(Int64Array::from_iter_values(values.map(|v| v.round() as i64))),
                DataType::Float32 => Arc::new(Float32Array::from_iter_values(values.map(|v| v as f32))),
                _ => Arc::new(Float64Array::from_iter_values(values)),
            });
        }
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![created; n]).with_timezone("UTC"),
        ));
        // cleared, not moved: the buffers keep their capacity for the next partition
        self.entity.clear();
        self.ts.clear();
        self.features.iter_mut().for_each(Vec::clear);
        RecordBatch::try_new(schema.clone(), columns).expect("rows match the view's schema")
    }

    /// Takes the rows grouped by `group[i]` (below `groups`): one batch per non-empty group.
    /// Rows arrive entity by entity, each spanning many days; writing them straight into
    /// per-day buffers scatters every column over as many streams, so they are buffered
    /// in arrival order and put in day order here, by a counting sort.
    pub fn take_grouped(
        &mut self,
        group: &[u32],
        groups: usize,
        schema: &SchemaRef,
        names: Option<&[String]>,
        created: i64,
    ) -> Vec<(usize, RecordBatch)> {
        let mut starts = vec![0usize; groups + 1];
        for &g in group {
            starts[g as usize + 1] += 1;
        }
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; group.len()];
        for (i, &g) in group.iter().enumerate() {
            order[next[g as usize]] = i as u32;
            next[g as usize] += 1;
        }
        let batch = self.take(schema, names, created, &order);
        (0..groups)
            .filter(|&g| starts[g + 1] > starts[g])
            .map(|g| (g, batch.slice(starts[g], starts[g + 1] - starts[g])))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let naming = Naming { shard: 2, shards: 4 };
        let day = 20_393; // 2025-11-01
        assert_eq!(naming.file(FileKey::Day(day), 1), "2025-11-01-part-2-of-4-1.parquet");
        assert_eq!(
            naming.file(FileKey::AsOf(day), 0),
            "2025-11-01-asof-part-2-of-4-0.parquet"
        );
        assert_eq!(
            parse_name("2025-11-01-part-2-of-4-1.parquet"),
            Some(("2025-11-01".into(), 2, 4))
        );
        assert_eq!(
            parse_name("2025-11-01-asof-part-0-of-1-0.parquet"),
            Some(("2025-11-01".into(), 0, 1))
        );
        assert_eq!(parse_name("notes.parquet"), None);
        assert_eq!(parse_name("2025-11-01-part-2-of-4.parquet"), None);
    }
}
