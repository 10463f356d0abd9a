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
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::ArrowNativeType;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use featurekit::artifact::{Codec, WriteOptions};
use featurekit::spec::{Aggregation, Dtype, FeatureView, Spec, ValueType};

use crate::kernel::{Kernel, Partition, RowSet};

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

/// How a view's files are written. Feature values are mostly distinct, so dictionaries would
/// cost time and save nothing. A backfill keeps one file open per day and worker, so row
/// groups flush at 4 MiB. With snappy, the columns it cannot shrink by more than about a
/// tenth are written uncompressed: event times, counts, sums and means (measured on the
/// benchmark's data: 0.89 to 1.0 of their size, for a twentieth of the run's time). The
/// entity column (runs of one value), min and max (a value held while it stays in the
/// window) and the creation time (one value) keep it. Zstd, chosen for size, compresses all.
/// Statistics are kept for the columns readers prune by (entity and times), not the features.
pub fn write_options(view: &FeatureView, codec: Codec) -> WriteOptions {
    let uncompressed = match codec {
        Codec::Snappy => std::iter::once(EVENT_TS.to_string())
            .chain(
                view.features
                    .iter()
                    .filter(|f| !matches!(f.aggregation, Aggregation::Min | Aggregation::Max))
                    .map(|f| f.name.clone()),
            )
            .collect(),
        Codec::Zstd | Codec::None => Vec::new(),
    };
    WriteOptions {
        codec,
        dictionary: false,
        delta_integers: true,
        row_group_bytes: 4 * 1024 * 1024,
        uncompressed,
        unsummarised: view.features.iter().map(|f| f.name.clone()).collect(),
        ..WriteOptions::default()
    }
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

/// A column buffer lent to the arrays of the batches built on it and taken back once they
/// are dropped (after they are written), so its memory serves partition after partition.
#[derive(Debug, Default)]
struct Reused<T> {
    vec: Vec<T>,
    lent: Option<Buffer>,
}

impl<T: ArrowNativeType> Reused<T> {
    /// The buffer, `n` long, for every element to be written: taken back from the batches
    /// (gone by now), else a new one.
    fn reset(&mut self, n: usize) {
        if let Some(Ok(v)) = self.lent.take().map(Buffer::into_vec) {
            self.vec = v;
        }
        crate::load::to_overwrite(&mut self.vec, n);
    }

    /// The values as a buffer to build arrays on, without a copy.
    fn lend(&mut self) -> Buffer {
        let b = Buffer::from_vec(std::mem::take(&mut self.vec));
        self.lent = Some(b.clone());
        b
    }
}

/// A feature column in its declared dtype.
#[derive(Debug)]
enum Column {
    Int64(Reused<i64>),
    Float32(Reused<f32>),
    Float64(Reused<f64>),
}

impl Column {
    fn reset(&mut self, n: usize) {
        match self {
            Column::Int64(c) => c.reset(n),
            Column::Float32(c) => c.reset(n),
            Column::Float64(c) => c.reset(n),
        }
    }

    fn lend(&mut self) -> Buffer {
        match self {
            Column::Int64(c) => c.lend(),
            Column::Float32(c) => c.lend(),
            Column::Float64(c) => c.lend(),
        }
    }

    /// Values `[from, from + len)` of `lent` (this column's buffer) as an array of its dtype.
    fn array(&self, lent: &Buffer, from: usize, len: usize) -> ArrayRef {
        match self {
            Column::Int64(_) => Arc::new(Int64Array::new(ScalarBuffer::new(lent.clone(), from, len), None)),
            Column::Float32(_) => Arc::new(Float32Array::new(ScalarBuffer::new(lent.clone(), from, len), None)),
            Column::Float64(_) => Arc::new(Float64Array::new(ScalarBuffer::new(lent.clone(), from, len), None)),
        }
    }
}

/// A value of a feature declared Int64: a count, or a sum, min or max of an integer column
/// (the spec allows no other), so whole already; anything else would round half away from
/// zero.
#[inline]
fn whole(v: f64) -> i64 {
    let w = v as i64;
    if w as f64 == v { w } else { rounded(v) }
}

/// (Out of line and cold: inlined, `round` was computed for every value, whole or not.)
#[cold]
#[inline(never)]
fn rounded(v: f64) -> i64 {
    v.round() as i64
}

/// Which files a set of rows goes to.
#[derive(Debug, Clone, Copy)]
pub enum Files {
    /// Event rows: one file per UTC day, of the run's `days` days from `first_day`.
    Days { first_day: i64, days: usize },
    /// As-of rows: one file, every row stamped `as_of`; `day` is the day the as-of time closes.
    AsOf { as_of: i64, day: i64 },
}

/// What the rows of a batch hold besides the kernel's values.
pub struct Stamp<'a> {
    /// Names of string entities, by id.
    pub names: Option<&'a [String]>,
    pub created: i64,
}

/// Turns a view's rows into record batches, one per output file, with no copy of the
/// feature values: [`Batcher::place`] gives each row its slot in file order, the kernel
/// writes every feature straight into its slot ([`Batcher::fill`]), and each file's batch
/// is a slice of those columns ([`Batcher::batches`]). Keeps its memory from partition to
/// partition.
#[derive(Debug)]
pub struct Batcher {
    schema: SchemaRef,
    day: Vec<u32>,
    starts: Vec<u32>,
    /// Each row's slot: rows are grouped by file.
    slot: Vec<u32>,
    /// Each file's key and its rows' slots, `[from, to)`.
    groups: Vec<(FileKey, usize, usize)>,
    entity: Reused<i64>,
    ts: Reused<i64>,
    features: Vec<Column>,
    /// `created` stamped on many rows: sliced for every batch.
    created: Option<(i64, Buffer)>,
}

impl Batcher {
    pub fn new(schema: &SchemaRef) -> Batcher {
        let features = schema.fields()[2..schema.fields().len() - 1]
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => Column::Int64(Reused::default()),
                DataType::Float32 => Column::Float32(Reused::default()),
                _ => Column::Float64(Reused::default()),
            })
            .collect();
        Batcher {
            schema: schema.clone(),
            day: Vec::new(),
            starts: Vec::new(),
            slot: Vec::new(),
            groups: Vec::new(),
            entity: Reused::default(),
            ts: Reused::default(),
            features,
            created: None,
        }
    }

    /// Gives each of the kernel's rows (at partition positions `at`) its slot, grouped by
    /// file, and fills in their entities and times. The kernel's event rows come entity by
    /// entity, each spanning many days, so they are put in day order by a counting sort.
    pub fn place(&mut self, part: &Partition, at: &[u32], files: Files) {
        let n = at.len();
        self.slot.clear();
        self.groups.clear();
        self.entity.reset(n);
        self.ts.reset(n);
        self.features.iter_mut().for_each(|c| c.reset(n));
        let (entity, ts) = (&mut self.entity.vec, &mut self.ts.vec);
        match files {
            Files::Days { first_day, days } => {
                self.day.clear();
                self.day.extend(
                    at.iter()
                        .map(|&a| (part.ts[a as usize].div_euclid(DAY) - first_day) as u32),
                );
                crate::load::bucket_starts(&self.day, days, &mut self.starts);
                self.groups
                    .extend((0..days).filter(|&d| self.starts[d + 1] > self.starts[d]).map(|d| {
                        (
                            FileKey::Day(first_day + d as i64),
                            self.starts[d] as usize,
                            self.starts[d + 1] as usize,
                        )
                    }));
                // each row to its day's next free slot
                let next = &mut self.starts;
                self.slot.extend(self.day.iter().map(|&d| {
                    let s = next[d as usize];
                    next[d as usize] += 1;
                    s
                }));
                for (&s, &a) in self.slot.iter().zip(at) {
                    entity[s as usize] = part.entity[a as usize];
                    ts[s as usize] = part.ts[a as usize];
                }
            }
            Files::AsOf { as_of, day } => {
                if n > 0 {
                    self.groups.push((FileKey::AsOf(day), 0, n));
                }
                self.slot.extend(0..n as u32);
                for (e, &a) in entity.iter_mut().zip(at) {
                    *e = part.entity[a as usize];
                }
                ts.fill(as_of);
            }
        }
    }

    /// Writes every feature of the placed rows, rows `rows` of the kernel's `set`, into its
    /// slot, as the kernel computes it.
    pub fn fill(&mut self, kernel: &mut Kernel, part: &Partition, set: RowSet, rows: std::ops::Range<usize>) {
        let slot = &self.slot;
        for (k, column) in self.features.iter_mut().enumerate() {
            match column {
                Column::Int64(c) => {
                    let out = &mut c.vec;
                    kernel.feature(part, k, set, rows.clone(), |i, v| out[slot[i] as usize] = whole(v));
                }
                Column::Float32(c) => {
                    let out = &mut c.vec;
                    kernel.feature(part, k, set, rows.clone(), |i, v| out[slot[i] as usize] = v as f32);
                }
                Column::Float64(c) => {
                    let out = &mut c.vec;
                    kernel.feature(part, k, set, rows.clone(), |i, v| out[slot[i] as usize] = v);
                }
            }
        }
    }

    /// One batch per file of the placed rows: slices of the columns (string entities are
    /// named back), every row stamped `created`.
    pub fn batches(&mut self, stamp: &Stamp) -> Vec<(FileKey, RecordBatch)> {
        let longest = self.groups.iter().map(|g| g.2 - g.1).max().unwrap_or(0);
        let created = match &self.created {
            Some((c, b)) if *c == stamp.created && b.len() >= longest * 8 => b.clone(),
            _ => {
                let b = Buffer::from_vec(vec![stamp.created; longest.max(1 << 16)]);
                self.created = Some((stamp.created, b.clone()));
                b
            }
        };
        let entity = match stamp.names {
            Some(_) => None,
            None => Some(self.entity.lend()),
        };
        let ts = self.ts.lend();
        let features: Vec<Buffer> = self.features.iter_mut().map(Column::lend).collect();
        let stamped = |b: &Buffer, from: usize, len: usize| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::new(ScalarBuffer::new(b.clone(), from, len), None).with_timezone("UTC"))
        };
        self.groups
            .iter()
            .map(|&(key, from, to)| {
                let len = to - from;
                let entity: ArrayRef = match (&entity, stamp.names) {
                    (Some(b), _) => Arc::new(Int64Array::new(ScalarBuffer::new(b.clone(), from, len), None)),
                    (None, Some(names)) => Arc::new(StringArray::from_iter_values(
                        self.entity.vec[from..to].iter().map(|&id| &names[id as usize]),
                    )),
                    (None, None) => unreachable!("integer entities are lent"),
                };
                let mut columns = vec![entity, stamped(&ts, from, len)];
                for (lent, c) in features.iter().zip(&self.features) {
                    columns.push(c.array(lent, from, len));
                }
                columns.push(stamped(&created, 0, len));
                let batch = RecordBatch::try_new(self.schema.clone(), columns).expect("rows match the view's schema");
                (key, batch)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_features_are_whole_numbers_rounded_half_away_from_zero() {
        assert_eq!(whole(0.0), 0);
        assert_eq!(whole(42.0), 42);
        assert_eq!(whole(-7.0), -7);
        assert_eq!(whole(2.5), 3);
        assert_eq!(whole(-2.5), -3);
        assert_eq!(whole(2.4999), 2);
        assert_eq!(whole(1e300), i64::MAX);
    }

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
