//! Each entity's latest row of a feature view, folded from a stream of Parquet chunks: the row
//! Feast's materialization serves (materialize-redis writes it, validate-features' online
//! audit expects it).
//!
//! Memory is one slot per entity, not per row: the value part of the entity key in one
//! arena, its event and created times, its rows in the range, and the features in typed
//! columns. A row replaces its entity's slot when `(event_timestamp, created)` is newer or
//! equal (a later row wins a full tie, as Feast's "keep last").

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use futures::TryStreamExt;
use hashbrown::HashTable;

use crate::artifact::{Micros, ParquetScan};
use crate::feast::{EntityKeyCodec, KeyValue};
use crate::spec::{Dtype, FeatureView, Spec, ValueType};
use crate::{Error, Result};

/// The columns of one feature view's rows.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Join keys in the view's entity order, with their declared types.
    pub join_keys: Vec<(String, ValueType)>,
    pub timestamp: String,
    pub created: Option<String>,
    pub features: Vec<(String, Dtype)>,
}

impl Layout {
    /// A view's columns as compute-windows writes them; `created` names the tie-break column
    /// (empty: none).
    pub fn of(spec: &Spec, view: &FeatureView, created: &str) -> Layout {
        Layout {
            join_keys: view
                .entities
                .iter()
                .map(|e| {
                    let e = spec.entity(e).expect("the spec checks every view's entities");
                    (e.join_key.clone(), e.value_type)
                })
                .collect(),
            timestamp: "event_timestamp".into(),
            created: (!created.is_empty()).then(|| created.to_string()),
            features: view.features.iter().map(|f| (f.name.clone(), f.dtype)).collect(),
        }
    }

    /// Every column to read, in a fixed order: join keys, timestamp, created, features.
    pub fn columns(&self) -> Vec<String> {
        let mut c: Vec<String> = self.join_keys.iter().map(|k| k.0.clone()).collect();
        c.push(self.timestamp.clone());
        c.extend(self.created.clone());
        c.extend(self.features.iter().map(|f| f.0.clone()));
        c
    }
}

/// A feature column of the winners; NaN stands for null in float columns.
pub enum Values {
    Int { values: Vec<i64>, valid: Vec<bool> },
    Float(Vec<f64>),
}

pub struct Latest {
    codec: EntityKeyCodec,
    arena: Vec<u8>,
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: ahash::RandomState,
    /// Event time of each entity's row, in microseconds since the epoch.
    pub ts: Vec<i64>,
    created: Vec<i64>,
    /// Rows of each entity in the range (its activity).
    pub rows: Vec<u32>,
    pub features: Vec<Values>,
    pub dtypes: Vec<Dtype>,
    /// Rows read, and of those the rows inside [start, end].
    pub rows_read: u64,
    pub rows_in_range: u64,
    layout: Layout,
    range: (i64, i64),
    /// When set, only the rows of these entities (value part of the key) at exactly this
    /// event time are folded.
    only: Option<HashMap<Vec<u8>, i64>>,
}

/// Typed views of one batch's columns.
enum KeyCol<'a> {
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    Str(&'a arrow::array::StringArray),
    LargeStr(&'a arrow::array::LargeStringArray),
    StrView(&'a arrow::array::StringViewArray),
}

enum FeatCol<'a> {
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    F64(&'a arrow::array::PrimitiveArray<Float64Type>),
    F32(&'a arrow::array::PrimitiveArray<Float32Type>),
}

impl Latest {
    /// `range`: inclusive `[start, end]` in microseconds.
    pub fn new(codec: EntityKeyCodec, layout: Layout, range: (i64, i64)) -> Latest {
        let features = layout
            .features
            .iter()
            .map(|(_, d)| match d {
                Dtype::Int64 => Values::Int {
                    values: vec![],
                    valid: vec![],
                },
                Dtype::Float32 | Dtype::Float64 => Values::Float(vec![]),
            })
            .collect();
        Latest {
            codec,
            arena: vec![],
            ends: vec![],
            table: HashTable::new(),
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            ts: vec![],
            created: vec![],
            rows: vec![],
            features,
            dtypes: layout.features.iter().map(|f| f.1).collect(),
            rows_read: 0,
            rows_in_range: 0,
            layout,
            range,
            only: None,
        }
    }

    /// Folds only the rows of these entities (value part of the key) at exactly their event
    /// time: the rows a later run wrote, looked up for entities Redis holds newer.
    pub fn only(mut self, rows: HashMap<Vec<u8>, i64>) -> Latest {
        self.only = Some(rows);
        self
    }

    /// Reads the view's rows that may lie in the range (row groups pruned on their
    /// `event_timestamp` statistics), two row groups decoded at once, and folds them; returns
    /// the row groups pruned.
    pub async fn read(&mut self, scan: ParquetScan) -> Result<usize> {
        let (lo, hi) = self.range;
        let plan = scan
            .columns(self.layout.columns())
            .prune(&self.layout.timestamp, lo, hi.saturating_add(1))
            .plan()
            .await?;
        let pruned = plan.stats.row_groups_pruned;
        let mut chunks = std::pin::pin!(plan.chunks(2));
        while let Some(chunk) = chunks.try_next().await? {
            let mut first_row = chunk.first_row;
            for batch in &chunk.batches {
                self.add(batch, &chunk.file, first_row)?;
                first_row += batch.num_rows() as u64;
            }
        }
        Ok(pruned)
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The value part of entity `i`'s key (see [`EntityKeyCodec::encode_values`]).
    pub fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.arena[start..self.ends[i] as usize]
    }

    /// Folds one batch; `file` and `first_row` name offending rows in errors.
    pub fn add(&mut self, batch: &RecordBatch, file: &str, first_row: u64) -> Result<()> {
        let at = |row: usize, msg: String| Error::data(format!("{file}: row {}: {msg}", first_row + row as u64));
        let layout = &self.layout;
        let col = |name: &str| -> Result<&ArrayRef> {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::data(format!("{file}: missing column `{name}`")))
        };
        let wrong = |name: &str, t: &DataType, want: &str| {
            Error::data(format!("{file}: column `{name}` is {t}, expected {want}"))
        };
        let mut keys = Vec::with_capacity(layout.join_keys.len());
        for (name, vt) in &layout.join_keys {
            let a = col(name)?;
            keys.push(match (vt, a.data_type()) {
                (ValueType::Int64, DataType::Int64) => KeyCol::I64(a.as_primitive()),
                (ValueType::Int64, DataType::Int32) => KeyCol::I32(a.as_primitive()),
                (ValueType::String, DataType::Utf8) => KeyCol::Str(a.as_string()),
                (ValueType::String, DataType::LargeUtf8) => KeyCol::LargeStr(a.as_string()),
                (ValueType::String, DataType::Utf8View) => KeyCol::StrView(a.as_string_view()),
                (vt, t) => {
                    return Err(wrong(
                        name,
                        t,
                        &format!("an integer or string column for a {vt:?} entity key"),
                    ));
                }
            });
        }
        let ts = micros(col(&layout.timestamp)?, &layout.timestamp, file)?;
        let created = match &layout.created {
            Some(c) => Some(micros(col(c)?, c, file)?),
            None => None,
        };
        let mut feats = Vec::with_capacity(layout.features.len());
        for (name, dtype) in &layout.features {
            let a = col(name)?;
            feats.push(match (dtype, a.data_type()) {
                (Dtype::Int64, DataType::Int64) => FeatCol::I64(a.as_primitive()),
                (Dtype::Int64, DataType::Int32) => FeatCol::I32(a.as_primitive()),
                (Dtype::Float32 | Dtype::Float64, DataType::Float64) => FeatCol::F64(a.as_primitive()),
                (Dtype::Float32 | Dtype::Float64, DataType::Float32) => FeatCol::F32(a.as_primitive()),
                (d, t) => return Err(wrong(name, t, &format!("a column that holds dtype {d:?}"))),
            });
        }

        let mut buf = Vec::with_capacity(64);
        let mut values: Vec<KeyValue> = Vec::with_capacity(keys.len());
        let (start, end) = self.range;
        self.rows_read += batch.num_rows() as u64;
        for row in 0..batch.num_rows() {
            let Some(t) = ts.get(row) else {
                return Err(at(row, format!("null `{}`", layout.timestamp)));
            };
            values.clear();
            for (k, (name, _)) in keys.iter().zip(&layout.join_keys) {
                let v = match k {
                    KeyCol::I64(a) => a.is_valid(row).then(|| KeyValue::Int64(a.value(row))),
                    KeyCol::I32(a) => a.is_valid(row).then(|| KeyValue::Int64(a.value(row) as i64)),
                    KeyCol::Str(a) => a.is_valid(row).then(|| KeyValue::String(a.value(row))),
                    KeyCol::LargeStr(a) => a.is_valid(row).then(|| KeyValue::String(a.value(row))),
                    KeyCol::StrView(a) => a.is_valid(row).then(|| KeyValue::String(a.value(row))),
                };
                values.push(v.ok_or_else(|| at(row, format!("null entity key `{name}`")))?);
            }
            if t < start || t > end {
                continue;
            }
            let c = created.as_ref().and_then(|c| c.get(row)).unwrap_or(i64::MIN);
            buf.clear();
            self.codec.encode_values(&values, &mut buf);
            if let Some(only) = &self.only
                && only.get(&buf[..]) != Some(&t)
            {
                continue;
            }
            self.rows_in_range += 1;
            let hash = self.hasher.hash_one(&buf[..]);
            let (arena, ends) = (&self.arena, &self.ends);
            let slot = self.table.find(hash, |&i| {
                let i = i as usize;
                let s = if i == 0 { 0 } else { ends[i - 1] as usize };
                arena[s..ends[i] as usize] == buf[..]
            });
            let i = match slot {
                Some(&i) => {
                    let i = i as usize;
                    self.rows[i] = self.rows[i].saturating_add(1);
                    if (t, c) < (self.ts[i], self.created[i]) {
                        continue;
                    }
                    self.ts[i] = t;
                    self.created[i] = c;
                    i
                }
                None => {
                    let i = self.ts.len();
                    self.arena.extend_from_slice(&buf);
                    // the arena's ends and the table's slots are u32 (half the memory of usize):
                    // past 4 GiB of keys, or 4 billion entities, a view is too big for one run
                    let (Ok(end), Ok(slot)) = (u32::try_from(self.arena.len()), u32::try_from(i)) else {
                        return Err(Error::data(format!(
                            "{file}: more than 4 GiB of entity keys or 4 billion entities in one view; \
                             split the run with compute-windows' --shards"
                        )));
                    };
                    self.ends.push(end);
                    let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
                    self.table.insert_unique(hash, slot, |&j| {
                        let j = j as usize;
                        let s = if j == 0 { 0 } else { ends[j - 1] as usize };
                        hasher.hash_one(&arena[s..ends[j] as usize])
                    });
                    self.ts.push(t);
                    self.created.push(c);
                    self.rows.push(1);
                    for f in &mut self.features {
                        match f {
                            Values::Int { values, valid } => {
                                values.push(0);
                                valid.push(false);
                            }
                            Values::Float(v) => v.push(f64::NAN),
                        }
                    }
                    i
                }
            };
            for (f, col) in self.features.iter_mut().zip(&feats) {
                match (f, col) {
                    (Values::Int { values, valid }, FeatCol::I64(a)) => {
                        valid[i] = a.is_valid(row);
                        values[i] = a.value(row);
                    }
                    (Values::Int { values, valid }, FeatCol::I32(a)) => {
                        valid[i] = a.is_valid(row);
                        values[i] = a.value(row) as i64;
                    }
                    (Values::Float(v), FeatCol::F64(a)) => {
                        v[i] = if a.is_valid(row) { a.value(row) } else { f64::NAN };
                    }
                    (Values::Float(v), FeatCol::F32(a)) => {
                        v[i] = if a.is_valid(row) { a.value(row) as f64 } else { f64::NAN };
                    }
                    _ => unreachable!("columns are typed from the dtypes above"),
                }
            }
        }
        Ok(())
    }

    /// Makes room for about `entities` entities (an upper bound: the rows to read), so that the
    /// table does not rehash while it grows.
    pub fn reserve(&mut self, entities: usize) {
        let n = entities.min(1 << 24);
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        self.table.reserve(n, |&j| {
            let j = j as usize;
            let s = if j == 0 { 0 } else { ends[j - 1] as usize };
            hasher.hash_one(&arena[s..ends[j] as usize])
        });
        self.ends.reserve(n);
        self.ts.reserve(n);
        self.created.reserve(n);
        self.rows.reserve(n);
        self.arena.reserve(n * 16); // an INT64 key's value part
        for f in &mut self.features {
            match f {
                Values::Int { values, valid } => {
                    values.reserve(n);
                    valid.reserve(n);
                }
                Values::Float(v) => v.reserve(n),
            }
        }
    }

    /// Frees the lookup table once every row is folded.
    pub fn seal(&mut self) {
        self.table = HashTable::new();
        self.created = vec![];
    }

    pub fn codec(&self) -> &EntityKeyCodec {
        &self.codec
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

fn micros(a: &ArrayRef, name: &str, file: &str) -> Result<Micros> {
    Micros::of(a).ok_or_else(|| {
        Error::data(format!(
            "{file}: column `{name}` is {}, expected a timestamp",
            a.data_type()
        ))
    })
}
