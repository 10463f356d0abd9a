//! Reading raw events: type checks, the time and shard filters, invalid rows, and the
//! split into partitions by entity hash (the unit of parallel work).

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit};
use featurekit::artifact::Chunk;
use featurekit::spec::ValueType;
use featurekit::{Error, Result};

use crate::kernel::{KeyColumn, Partition};

/// FNV-1a 64 of a value's bytes: little-endian for integers, UTF-8 for strings. Shards and
/// partitions are chosen from it; any tool can compute it to predict a shard.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Strings numbered in order of first appearance.
#[derive(Default)]
pub struct Interner {
    ids: ahash::AHashMap<String, i64>,
    pub names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as i64;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
}

/// The columns to read and what each feeds.
#[derive(Debug, Clone)]
pub struct Columns {
    pub entity: String,
    pub entity_type: ValueType,
    pub ts: String,
    /// Numeric inputs (sum, mean, min, max), by slot.
    pub values: Vec<String>,
    /// Distinct-count inputs, by slot.
    pub keys: Vec<String>,
}

impl Columns {
    pub fn names(&self) -> Vec<String> {
        let mut all = vec![self.entity.clone(), self.ts.clone()];
        for c in self.values.iter().chain(&self.keys) {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    }
}

/// Rows with a null entity or timestamp.
#[derive(Debug, Default, Clone)]
pub struct Invalid {
    pub count: u64,
    /// File and row of the first one.
    pub first: Option<(String, u64)>,
}

pub struct Loader {
    columns: Columns,
    lo: i64,
    hi: i64,
    shard: u64,
    shards: u64,
    pub parts: Vec<Partition>,
    pub entity_names: Option<Interner>,
    key_names: Vec<Option<Interner>>,
    pub invalid: Invalid,
    pub rows_read: u64,
    pub rows_kept: u64,
    /// Earliest valid timestamp read, before the time filter.
    pub earliest: Option<i64>,
}

fn type_error(file: &str, column: &str, found: &DataType, want: &str) -> Error {
    Error::data(format!("{file}: column `{column}` has type {found}, expected {want}"))
}

fn column<'b>(batch: &'b RecordBatch, name: &str, file: &str) -> Result<&'b ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::data(format!("{file}: missing column `{name}`")))
}

/// Microseconds from a timestamp array's unit.
fn to_micros(unit: &TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    }
}

fn numbers(a: &ArrayRef, file: &str, name: &str) -> Result<Vec<f64>> {
    let valid = |i: usize| a.is_valid(i);
    Ok(match a.data_type() {
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>().values();
            (0..a.len()).map(|i| if valid(i) { v[i] } else { f64::NAN }).collect()
        }
        DataType::Float32 => {
            let v = a.as_primitive::<Float32Type>().values();
            (0..a.len())
                .map(|i| if valid(i) { v[i] as f64 } else { f64::NAN })
                .collect()
        }
        DataType::Int64 => {
            let v = a.as_primitive::<Int64Type>().values();
            (0..a.len())
                .map(|i| if valid(i) { v[i] as f64 } else { f64::NAN })
                .collect()
        }
        DataType::Int32 => {
            let v = a.as_primitive::<Int32Type>().values();
            (0..a.len())
                .map(|i| if valid(i) { v[i] as f64 } else { f64::NAN })
                .collect()
        }
        other => {
            return Err(type_error(
                file,
                name,
                other,
                "a number (Float64, Float32, Int64 or Int32)",
            ));
        }
    })
}

/// Keys of a distinct-count column; `None` marks a null.
fn keys(a: &ArrayRef, file: &str, name: &str, names: &mut Option<Interner>) -> Result<Vec<Option<i64>>> {
    let valid = |i: usize| a.is_valid(i);
    Ok(match a.data_type() {
        DataType::Int64 => {
            let v = a.as_primitive::<Int64Type>().values();
            (0..a.len()).map(|i| valid(i).then(|| v[i])).collect()
        }
        DataType::Int32 => {
            let v = a.as_primitive::<Int32Type>().values();
            (0..a.len()).map(|i| valid(i).then(|| v[i] as i64)).collect()
        }
        DataType::Boolean => {
            let v = a.as_boolean();
            (0..a.len()).map(|i| valid(i).then(|| v.value(i) as i64)).collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let names = names.get_or_insert_with(Interner::default);
            let strings: Vec<Option<&str>> = match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().iter().collect(),
                DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
                _ => a.as_string_view().iter().collect(),
            };
            strings.into_iter().map(|s| s.map(|s| names.id(s))).collect()
        }
        other => return Err(type_error(file, name, other, "Int64, Int32, Boolean or a string")),
    })
}

enum EntityValues<'b> {
    Int(Vec<Option<i64>>),
    Str(Vec<Option<&'b str>>),
}

impl Loader {
    /// Keeps rows with timestamp in `[lo, hi)` whose entity falls in `shard` of `shards`,
    /// split over `partitions` partitions.
    pub fn new(columns: Columns, lo: i64, hi: i64, shard: u32, shards: u32, partitions: usize) -> Loader {
        let key_names = columns.keys.iter().map(|_| None).collect();
        let part = Partition {
            values: vec![Vec::new(); columns.values.len()],
            keys: vec![KeyColumn::default(); columns.keys.len()],
            ..Partition::default()
        };
        Loader {
            entity_names: (columns.entity_type == ValueType::String).then(Interner::default),
            columns,
            lo,
            hi,
            shard: shard as u64,
            shards: shards as u64,
            parts: vec![part; partitions.max(1)],
            key_names,
            invalid: Invalid::default(),
            rows_read: 0,
            rows_kept: 0,
            earliest: None,
        }
    }

    /// Makes room for about `rows` rows, spread evenly over the partitions, so the
    /// columns do not grow (and copy) while they are read.
    pub fn reserve(&mut self, rows: usize) {
        let each = rows / self.parts.len() + rows / self.parts.len() / 16 + 64;
        for part in &mut self.parts {
            part.entity.reserve(each);
            part.ts.reserve(each);
            for v in &mut part.values {
                v.reserve(each);
            }
            for k in &mut part.keys {
                k.keys.reserve(each);
            }
        }
    }

    pub fn add(&mut self, chunk: &Chunk) -> Result<()> {
        let mut row = chunk.first_row;
        for batch in &chunk.batches {
            self.add_batch(batch, &chunk.file, row)?;
            row += batch.num_rows() as u64;
        }
        Ok(())
    }

    fn add_batch(&mut self, batch: &RecordBatch, file: &str, first_row: u64) -> Result<()> {
        let c = &self.columns;
        let n = batch.num_rows();
        self.rows_read += n as u64;
        let ent = column(batch, &c.entity, file)?;
        let entities = match (c.entity_type, ent.data_type()) {
            (ValueType::Int64, DataType::Int64) => {
                let v = ent.as_primitive::<Int64Type>();
                EntityValues::Int((0..n).map(|i| v.is_valid(i).then(|| v.value(i))).collect())
            }
            (ValueType::Int64, DataType::Int32) => {
                let v = ent.as_primitive::<Int32Type>();
                EntityValues::Int((0..n).map(|i| v.is_valid(i).then(|| v.value(i) as i64)).collect())
            }
            (ValueType::String, DataType::Utf8) => EntityValues::Str(ent.as_string::<i32>().iter().collect()),
            (ValueType::String, DataType::LargeUtf8) => EntityValues::Str(ent.as_string::<i64>().iter().collect()),
            (ValueType::String, DataType::Utf8View) => EntityValues::Str(ent.as_string_view().iter().collect()),
            (want, found) => {
                let want = if want == ValueType::Int64 {
                    "Int64 (or Int32)"
                } else {
                    "a string"
                };
                return Err(type_error(file, &c.entity, found, want));
            }
        };
        let ts_col = column(batch, &c.ts, file)?;
        let DataType::Timestamp(unit, _) = ts_col.data_type() else {
            return Err(type_error(file, &c.ts, ts_col.data_type(), "a timestamp"));
        };
        let raw_ts: &[i64] = match unit {
            TimeUnit::Second => ts_col.as_primitive::<arrow::datatypes::TimestampSecondType>().values(),
            TimeUnit::Millisecond => ts_col
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .values(),
            TimeUnit::Microsecond => ts_col
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .values(),
            TimeUnit::Nanosecond => ts_col
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                .values(),
        };
        let mut values = Vec::with_capacity(c.values.len());
        for name in &c.values {
            values.push(numbers(column(batch, name, file)?, file, name)?);
        }
        let mut key_values = Vec::with_capacity(c.keys.len());
        for (slot, name) in c.keys.iter().enumerate() {
            key_values.push(keys(column(batch, name, file)?, file, name, &mut self.key_names[slot])?);
        }

        let partitions = self.parts.len() as u64;
        for i in 0..n {
            let entity_hash = match &entities {
                EntityValues::Int(v) => v[i].map(|e| fnv1a(&e.to_le_bytes())),
                EntityValues::Str(v) => v[i].map(|s| fnv1a(s.as_bytes())),
            };
            let (Some(hash), true) = (entity_hash, ts_col.is_valid(i)) else {
                self.invalid.count += 1;
                self.invalid
                    .first
                    .get_or_insert_with(|| (file.to_string(), first_row + i as u64));
                continue;
            };
            let t = to_micros(unit, raw_ts[i]);
            self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
            if t < self.lo || t >= self.hi || hash % self.shards != self.shard {
                continue;
            }
            let entity = match &entities {
                EntityValues::Int(v) => v[i].expect("checked above"),
                EntityValues::Str(v) => self
                    .entity_names
                    .as_mut()
                    .expect("string entities are interned")
                    .id(v[i].expect("checked above")),
            };
            let part = &mut self.parts[((hash >> 32) % partitions) as usize];
            part.entity.push(entity);
            part.ts.push(t);
            for (slot, v) in values.iter().enumerate() {
                part.values[slot].push(v[i]);
            }
            for (slot, k) in key_values.iter().enumerate() {
                let col = &mut part.keys[slot];
                match k[i] {
                    Some(key) => {
                        col.keys.push(key);
                        if let Some(valid) = &mut col.valid {
                            valid.push(true);
                        }
                    }
                    None => {
                        let len = col.keys.len();
                        col.valid.get_or_insert_with(|| vec![true; len]).push(false);
                        col.keys.push(0);
                    }
                }
            }
            self.rows_kept += 1;
        }
        Ok(())
    }
}

/// Groups a partition by entity, each entity's events sorted by time: what the kernel needs
/// (entities need not come in key order). A counting sort by a hash of the entity into
/// about n/4 buckets, then a comparison sort of each small bucket: much less work than
/// one sort of the whole partition.
pub fn sort(part: Partition) -> Partition {
    let n = part.ts.len();
    let buckets = (n / 4).next_power_of_two().max(1);
    let mix = |e: i64| {
        // splitmix64's finaliser: partitions were chosen by other bits of another hash
        let mut x = e as u64;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((x ^ (x >> 31)) as usize) & (buckets - 1)
    };
    let bucket: Vec<u32> = part.entity.iter().map(|&e| mix(e) as u32).collect();
    let mut starts = vec![0usize; buckets + 1];
    for &b in &bucket {
        starts[b as usize + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    let mut order: Vec<(i64, i64, u32)> = vec![(0, 0, 0); n];
    for (i, &b) in bucket.iter().enumerate() {
        order[next[b as usize]] = (part.entity[i], part.ts[i], i as u32);
        next[b as usize] += 1;
    }
    for b in 0..buckets {
        let slice = &mut order[starts[b]..starts[b + 1]];
        if slice.len() > 1 {
            slice.sort_unstable();
        }
    }
    let gather_f = |v: &Vec<f64>| order.iter().map(|o| v[o.2 as usize]).collect();
    Partition {
        entity: order.iter().map(|o| o.0).collect(),
        ts: order.iter().map(|o| o.1).collect(),
        values: part.values.iter().map(gather_f).collect(),
        keys: part
            .keys
            .iter()
            .map(|k| KeyColumn {
                keys: order.iter().map(|o| k.keys[o.2 as usize]).collect(),
                valid: k
                    .valid
                    .as_ref()
                    .map(|v| order.iter().map(|o| v[o.2 as usize]).collect()),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sort_groups_entities_with_their_events_in_time_order() {
        let part = crate::kernel::Partition {
            entity: vec![5, 3, 5, 9, 3, 5, 3],
            ts: vec![30, 20, 10, 1, 20, 20, 5],
            values: vec![vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]],
            keys: vec![],
        };
        let sorted = super::sort(part);
        let rows: Vec<(i64, i64, f64)> = (0..7)
            .map(|i| (sorted.entity[i], sorted.ts[i], sorted.values[0][i]))
            .collect();
        // each entity's rows are contiguous and in time order, and values travel with them
        let mut seen = vec![];
        for w in rows.windows(2) {
            if w[0].0 == w[1].0 {
                assert!(w[0].1 <= w[1].1, "{rows:?}");
            } else {
                assert!(!seen.contains(&w[1].0), "entity {} split: {rows:?}", w[1].0);
                seen.push(w[0].0);
            }
        }
        let mut all = rows.clone();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(
            all,
            vec![
                (3, 5, 6.0),
                (3, 20, 1.0),
                (3, 20, 4.0),
                (5, 10, 2.0),
                (5, 20, 5.0),
                (5, 30, 0.0),
                (9, 1, 3.0)
            ]
        );
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // test vectors of FNV-1a 64
        assert_eq!(super::fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(super::fnv1a(b"foobar"), 0x85944171f73967e8);
    }
}
