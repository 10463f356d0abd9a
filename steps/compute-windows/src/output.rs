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

use crate::kernel::{self, Partition};

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

/// Turns the kernel's rows into record batches of a view's schema, one per output file,
/// keeping its memory from partition to partition.
#[derive(Debug, Default)]
pub struct Batcher {
    day: Vec<u32>,
    starts: Vec<u32>,
    order: Vec<u32>,
}

/// What the rows of a batch hold besides the kernel's values.
pub struct Stamp<'a> {
    pub schema: &'a SchemaRef,
    /// Names of string entities, by id.
    pub names: Option<&'a [String]>,
    pub created: i64,
}

impl Batcher {
    /// The event rows, one batch per UTC day that has any, as (day, batch); `first_day` is
    /// the run's first day and `days` their number. The kernel's rows come entity by entity,
    /// each spanning many days, so they are put in day order by a counting sort.
    pub fn events(
        &mut self,
        part: &Partition,
        rows: &kernel::Rows,
        first_day: i64,
        days: usize,
        stamp: &Stamp,
    ) -> Vec<(i64, RecordBatch)> {
        self.day.clear();
        self.day.extend(
            rows.at
                .iter()
                .map(|&at| (part.ts[at as usize].div_euclid(DAY) - first_day) as u32),
        );
        crate::load::bucket_starts(&self.day, days, &mut self.starts);
        self.order.clear();
        self.order.resize(rows.len(), 0);
        let mut next = self.starts.clone();
        for (i, &d) in self.day.iter().enumerate() {
            self.order[next[d as usize] as usize] = i as u32;
            next[d as usize] += 1;
        }
        // a batch per day, not one sliced: small arrays reuse the allocator's free memory,
        // where big ones are fresh pages from the kernel every time
        (0..days)
            .filter(|&d| self.starts[d + 1] > self.starts[d])
            .map(|d| {
                let order = &self.order[self.starts[d] as usize..self.starts[d + 1] as usize];
                let ts = TimestampMicrosecondArray::from_iter_values(
                    order.iter().map(|&i| part.ts[rows.at[i as usize] as usize]),
                );
                (first_day + d as i64, batch(part, rows, order, ts, stamp))
            })
            .collect()
    }

    /// The as-of rows as one batch, every row stamped `as_of`.
    pub fn as_of(&mut self, part: &Partition, rows: &kernel::Rows, as_of: i64, stamp: &Stamp) -> RecordBatch {
        self.order.clear();
        self.order.extend(0..rows.len() as u32);
        let ts = TimestampMicrosecondArray::from(vec![as_of; rows.len()]);
        batch(part, rows, &self.order, ts, stamp)
    }
}

/// Rows `order` of the kernel's `rows` as a batch: entities named back when they are
/// strings, features cast to their dtype, every row stamped `created`.
fn batch(
    part: &Partition,
    rows: &kernel::Rows,
    order: &[u32],
    ts: TimestampMicrosecondArray,
    stamp: &Stamp,
) -> RecordBatch {
    let entity = order.iter().map(|&i| part.entity[rows.at[i as usize] as usize]);
    let mut columns: Vec<ArrayRef> = vec![
        match stamp.names {
            Some(names) => Arc::new(StringArray::from_iter_values(entity.map(|id| &names[id as usize]))),
            None => Arc::new(Int64Array::from_iter_values(entity)),
        },
        Arc::new(ts.with_timezone("UTC")),
    ];
    for (k, values) in rows.features.iter().enumerate() {
        let values = order.iter().map(|&i| values[i as usize]);
        columns.push(match stamp.schema.field(k + 2).data_type() {
            // counts are whole already; a mean declared Int64 rounds half away from zero
            DataType::Int64 => Arc::new(Int64Array::from_iter_values(values.map(|v| {
                let whole = v as i64;
                if whole as f64 == v { whole } else { v.round() as i64 }
            }))),
            DataType::Float32 => Arc::new(Float32Array::from_iter_values(values.map(|v| v as f32))),
            _ => Arc::new(Float64Array::from_iter_values(values)),
        });
    }
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![stamp.created; order.len()]).with_timezone("UTC"),
    ));
    RecordBatch::try_new(stamp.schema.clone(), columns).expect("rows match the view's schema")
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
