//! Reading raw events: type checks, the time and shard filters, invalid rows, and the
//! split into partitions by entity hash (the unit of parallel work).

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use featurekit::artifact::{Chunk, Micros};
use featurekit::spec::ValueType;
use featurekit::{Error, Result};

use crate::kernel::{KeyColumn, Partition};

/// FNV-1a 64 of a value's bytes: little-endian for integers, UTF-8 for strings. Shards are
/// chosen from it (any tool can compute it to predict a shard), and so are the partitions of
/// string keys and of sharded runs; unsharded integer keys are partitioned by [`mix`].
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64's finaliser: a well-mixed 64-bit hash of an integer key in three multiplies.
#[inline]
pub fn mix(key: i64) -> u64 {
    let mut x = key as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
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

/// What each role's column may be, as the error says it.
const NUMBER: &str = "a number (Float64, Float32, Int64 or Int32)";
const KEY: &str = "Int64, Int32, Boolean or a string";
const TIMESTAMP: &str = "a timestamp";

fn entity_want(t: ValueType) -> &'static str {
    if t == ValueType::Int64 {
        "Int64 (or Int32)"
    } else {
        "a string"
    }
}

fn is_entity(t: ValueType, found: &DataType) -> bool {
    matches!(
        (t, found),
        (ValueType::Int64, DataType::Int64 | DataType::Int32)
            | (
                ValueType::String,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
    )
}

fn is_number(found: &DataType) -> bool {
    matches!(
        found,
        DataType::Float64 | DataType::Float32 | DataType::Int64 | DataType::Int32
    )
}

fn is_key(found: &DataType) -> bool {
    matches!(
        found,
        DataType::Int64
            | DataType::Int32
            | DataType::Boolean
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

/// Checks a file's columns against what they are read as, from its schema alone: a file whose
/// every row group is pruned by time is checked too, so a wrong type never passes as no rows.
pub fn check_schema(c: &Columns, file: &str, schema: &arrow::datatypes::Schema) -> Result<()> {
    let field = |name: &str| {
        schema
            .field_with_name(name)
            .map(|f| f.data_type())
            .map_err(|_| Error::data(format!("{file}: missing column `{name}`")))
    };
    let entity = field(&c.entity)?;
    if !is_entity(c.entity_type, entity) {
        return Err(type_error(file, &c.entity, entity, entity_want(c.entity_type)));
    }
    let ts = field(&c.ts)?;
    if !matches!(ts, DataType::Timestamp(..)) {
        return Err(type_error(file, &c.ts, ts, TIMESTAMP));
    }
    for name in &c.values {
        let found = field(name)?;
        if !is_number(found) {
            return Err(type_error(file, name, found, NUMBER));
        }
    }
    for name in &c.keys {
        let found = field(name)?;
        if !is_key(found) {
            return Err(type_error(file, name, found, KEY));
        }
    }
    Ok(())
}

fn type_error(file: &str, column: &str, found: &DataType, want: &str) -> Error {
    Error::data(format!("{file}: column `{column}` has type {found}, expected {want}"))
}

fn column<'b>(batch: &'b RecordBatch, name: &str, file: &str) -> Result<&'b ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::data(format!("{file}: missing column `{name}`")))
}

/// A numeric column as f64, NaN for null (borrowed when it already is one).
fn numbers<'a>(a: &'a ArrayRef, file: &str, name: &str) -> Result<Cow<'a, [f64]>> {
    fn widen<T: ArrowPrimitiveType>(a: &ArrayRef, f: impl Fn(T::Native) -> f64) -> Vec<f64> {
        let v = a.as_primitive::<T>();
        (0..v.len())
            .map(|i| if v.is_valid(i) { f(v.value(i)) } else { f64::NAN })
            .collect()
    }
    Ok(match a.data_type() {
        DataType::Float64 if a.null_count() == 0 => Cow::Borrowed(a.as_primitive::<Float64Type>().values()),
        DataType::Float64 => Cow::Owned(widen::<Float64Type>(a, |x| x)),
        DataType::Float32 => Cow::Owned(widen::<Float32Type>(a, |x| x as f64)),
        DataType::Int64 => Cow::Owned(widen::<Int64Type>(a, |x| x as f64)),
        DataType::Int32 => Cow::Owned(widen::<Int32Type>(a, |x| x as f64)),
        other => return Err(type_error(file, name, other, NUMBER)),
    })
}

/// A column of integers or interned strings, with its validity.
struct Ids<'a> {
    ids: Cow<'a, [i64]>,
    nulls: Option<&'a NullBuffer>,
    /// FNV-1a of each string (strings only: integers hash their own bytes).
    hashes: Option<Vec<u64>>,
}

/// Integer keys as i64 (Boolean as 0 and 1), strings interned in `names`; `hash` also
/// keeps each string's FNV-1a.
fn ids<'a>(a: &'a ArrayRef, names: &mut Option<Interner>, hash: bool) -> Option<Ids<'a>> {
    let nulls = a.nulls().filter(|n| n.null_count() > 0);
    let ids: Cow<'a, [i64]> = match a.data_type() {
        DataType::Int64 => Cow::Borrowed(a.as_primitive::<Int64Type>().values()),
        DataType::Int32 => Cow::Owned(
            a.as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| x as i64)
                .collect(),
        ),
        DataType::Boolean => {
            let v = a.as_boolean();
            Cow::Owned((0..v.len()).map(|i| v.value(i) as i64).collect())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let names = names.get_or_insert_with(Interner::default);
            let strings: Vec<Option<&str>> = match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().iter().collect(),
                DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
                _ => a.as_string_view().iter().collect(),
            };
            let ids = strings.iter().map(|s| s.map_or(0, |s| names.id(s))).collect();
            let hashes = hash.then(|| strings.iter().map(|s| s.map_or(0, |s| fnv1a(s.as_bytes()))).collect());
            return Some(Ids {
                ids: Cow::Owned(ids),
                nulls,
                hashes,
            });
        }
        _ => return None,
    };
    Some(Ids {
        ids,
        nulls,
        hashes: None,
    })
}

/// How rows are kept and split: shared by the tasks that split chunks.
#[derive(Debug, Clone)]
pub struct Split {
    pub columns: Columns,
    /// Keep timestamps in `[lo, hi)`.
    pub lo: i64,
    pub hi: i64,
    /// Keep entities whose hash mod `shards` is `shard`.
    pub shard: u32,
    pub shards: u32,
    pub partitions: usize,
}

/// One chunk's kept rows, split into partitions by entity hash. String entities and keys
/// hold ids of the piece's own interners until [`Loader::absorb`] renumbers them.
pub struct Piece {
    parts: Vec<Partition>,
    entity_names: Option<Interner>,
    key_names: Vec<Option<Interner>>,
    invalid: Invalid,
    rows_read: u64,
    rows_in_range: u64,
    rows_kept: u64,
    earliest: Option<i64>,
}

/// One batch's input columns, type-checked, and its kept rows grouped by partition.
struct Selected<'a> {
    entities: Ids<'a>,
    ts: Micros,
    values: Vec<Cow<'a, [f64]>>,
    keys: Vec<Ids<'a>>,
    /// Kept rows, partition by partition: partition `p`'s are `rows[starts[p]..starts[p + 1]]`.
    rows: Vec<u32>,
    starts: Vec<u32>,
}

impl Split {
    /// Type-checks a chunk and splits its kept rows into partitions (runs on any thread):
    /// first each batch's kept rows and their partitions, then each partition's columns,
    /// allocated at their exact size, in one gather per batch.
    pub fn split(&self, chunk: &Chunk) -> Result<Piece> {
        let c = &self.columns;
        let partitions = self.partitions.max(1);
        let mut piece = Piece {
            parts: Vec::new(),
            entity_names: None,
            key_names: c.keys.iter().map(|_| None).collect(),
            invalid: Invalid::default(),
            rows_read: 0,
            rows_in_range: 0,
            rows_kept: 0,
            earliest: None,
        };
        let mut row = chunk.first_row;
        let mut selected = Vec::with_capacity(chunk.batches.len());
        for batch in &chunk.batches {
            selected.push(self.select(batch, (&chunk.file, row), &mut piece)?);
            row += batch.num_rows() as u64;
        }
        let size = |p: usize| -> usize { selected.iter().map(|b| (b.starts[p + 1] - b.starts[p]) as usize).sum() };
        piece.parts = (0..partitions)
            .map(|p| {
                let n = size(p);
                Partition {
                    entity: Vec::with_capacity(n),
                    ts: Vec::with_capacity(n),
                    values: c.values.iter().map(|_| Vec::with_capacity(n)).collect(),
                    keys: c
                        .keys
                        .iter()
                        .map(|_| KeyColumn {
                            keys: Vec::with_capacity(n),
                            valid: None,
                        })
                        .collect(),
                }
            })
            .collect();
        for b in &selected {
            b.gather(&mut piece.parts);
        }
        Ok(piece)
    }

    fn select<'a>(
        &self,
        batch: &'a RecordBatch,
        (file, first_row): (&str, u64),
        piece: &mut Piece,
    ) -> Result<Selected<'a>> {
        let c = &self.columns;
        let n = batch.num_rows();
        piece.rows_read += n as u64;
        let ent = column(batch, &c.entity, file)?;
        if !is_entity(c.entity_type, ent.data_type()) {
            return Err(type_error(file, &c.entity, ent.data_type(), entity_want(c.entity_type)));
        }
        let entities = ids(ent, &mut piece.entity_names, true).expect("entity type checked");
        let ts_col = column(batch, &c.ts, file)?;
        let ts = Micros::of(ts_col).ok_or_else(|| type_error(file, &c.ts, ts_col.data_type(), TIMESTAMP))?;
        let ts_nulls = ts_col.nulls().filter(|b| b.null_count() > 0);
        let mut values = Vec::with_capacity(c.values.len());
        for name in &c.values {
            values.push(numbers(column(batch, name, file)?, file, name)?);
        }
        let mut keys = Vec::with_capacity(c.keys.len());
        for (slot, name) in c.keys.iter().enumerate() {
            let col = column(batch, name, file)?;
            keys.push(
                ids(col, &mut piece.key_names[slot], false)
                    .ok_or_else(|| type_error(file, name, col.data_type(), KEY))?,
            );
        }

        // the rows kept and the partition of each
        let raw = ts.raw.values();
        let partitions = self.partitions.max(1);
        let (shard, shards) = (self.shard as u64, self.shards as u64);
        // the top half of the hash modulo the partitions: a mask, not a division, when they
        // are a power of two (as they are on a machine with a power-of-two number of cores)
        let mask = partitions.is_power_of_two().then(|| partitions as u64 - 1);
        let partition = |hash: u64| match mask {
            Some(mask) => ((hash >> 32) & mask) as u32,
            None => ((hash >> 32) % partitions as u64) as u32,
        };
        let mut kept = Vec::with_capacity(n);
        let mut part = Vec::with_capacity(n);
        let mut in_range = 0;
        for i in 0..n {
            if entities.nulls.is_some_and(|b| b.is_null(i)) || ts_nulls.is_some_and(|b| b.is_null(i)) {
                piece.invalid.count += 1;
                piece
                    .invalid
                    .first
                    .get_or_insert_with(|| (file.to_string(), first_row + i as u64));
                continue;
            }
            let t = ts.convert(raw[i]);
            piece.earliest = Some(piece.earliest.map_or(t, |e| e.min(t)));
            if t < self.lo || t >= self.hi {
                continue;
            }
            in_range += 1;
            let entity = entities.ids[i];
            let hash = match &entities.hashes {
                Some(h) => h[i],
                // FNV-1a decides shards (it is documented, for tools to predict them); an
                // unsharded run only needs partitions, from a hash a third the work
                None if shards == 1 => mix(entity),
                None => fnv1a(&entity.to_le_bytes()),
            };
            // (an unsharded run skips the division)
            if shards > 1 && hash % shards != shard {
                continue;
            }
            kept.push(i as u32);
            part.push(partition(hash));
        }
        piece.rows_kept += kept.len() as u64;
        piece.rows_in_range += in_range;
        // grouped by partition (a counting sort), each partition's rows in input order
        let mut starts = Vec::new();
        bucket_starts(&part, partitions, &mut starts);
        let mut next = starts.clone();
        let mut rows = vec![0; kept.len()];
        for (&i, &p) in kept.iter().zip(&part) {
            rows[next[p as usize] as usize] = i;
            next[p as usize] += 1;
        }
        Ok(Selected {
            entities,
            ts,
            values,
            keys,
            rows,
            starts,
        })
    }
}

impl Selected<'_> {
    /// Appends each partition's rows, each column in one gather: a few long sequential
    /// writes rather than a write to every partition's every column per row.
    fn gather(&self, parts: &mut [Partition]) {
        let raw = self.ts.raw.values();
        for (p, part) in parts.iter_mut().enumerate() {
            let rows = &self.rows[self.starts[p] as usize..self.starts[p + 1] as usize];
            if rows.is_empty() {
                continue;
            }
            part.entity.extend(rows.iter().map(|&i| self.entities.ids[i as usize]));
            part.ts.extend(rows.iter().map(|&i| self.ts.convert(raw[i as usize])));
            for (slot, v) in self.values.iter().enumerate() {
                part.values[slot].extend(rows.iter().map(|&i| v[i as usize]));
            }
            for (slot, k) in self.keys.iter().enumerate() {
                let col = &mut part.keys[slot];
                let before = col.keys.len();
                match k.nulls {
                    None => {
                        col.keys.extend(rows.iter().map(|&i| k.ids[i as usize]));
                        if let Some(valid) = &mut col.valid {
                            valid.resize(before + rows.len(), true);
                        }
                    }
                    Some(nulls) => {
                        let valid = |i: u32| nulls.is_valid(i as usize);
                        col.keys
                            .extend(rows.iter().map(|&i| if valid(i) { k.ids[i as usize] } else { 0 }));
                        col.valid
                            .get_or_insert_with(|| vec![true; before])
                            .extend(rows.iter().map(|&i| valid(i)));
                    }
                }
            }
        }
    }
}

/// The read so far: each partition as the pieces it was read in.
pub struct Loader {
    pub parts: Vec<Vec<Partition>>,
    pub entity_names: Option<Interner>,
    key_names: Vec<Option<Interner>>,
    pub invalid: Invalid,
    pub rows_read: u64,
    /// Valid rows in the time range read, of every shard.
    pub rows_in_range: u64,
    pub rows_kept: u64,
    /// Earliest valid timestamp read, before the time filter.
    pub earliest: Option<i64>,
}

impl Loader {
    pub fn new(split: &Split) -> Loader {
        Loader {
            parts: (0..split.partitions.max(1)).map(|_| Vec::new()).collect(),
            entity_names: (split.columns.entity_type == ValueType::String).then(Interner::default),
            key_names: split.columns.keys.iter().map(|_| None).collect(),
            invalid: Invalid::default(),
            rows_read: 0,
            rows_in_range: 0,
            rows_kept: 0,
            earliest: None,
        }
    }

    /// Takes in the pieces in the order of the input's rows: string ids are renumbered to
    /// the whole input's, and the first invalid row is the input's first.
    pub fn absorb(&mut self, mut piece: Piece) {
        if let Some(local) = &piece.entity_names {
            let global = self.entity_names.get_or_insert_with(Interner::default);
            let map: Vec<i64> = local.names.iter().map(|s| global.id(s)).collect();
            for part in &mut piece.parts {
                part.entity.iter_mut().for_each(|id| *id = map[*id as usize]);
            }
        }
        for (slot, local) in piece.key_names.iter().enumerate() {
            if let Some(local) = local {
                let global = self.key_names[slot].get_or_insert_with(Interner::default);
                let map: Vec<i64> = local.names.iter().map(|s| global.id(s)).collect();
                for part in &mut piece.parts {
                    part.keys[slot].keys.iter_mut().for_each(|id| *id = map[*id as usize]);
                }
            }
        }
        self.invalid.count += piece.invalid.count;
        if self.invalid.first.is_none() {
            self.invalid.first = piece.invalid.first;
        }
        self.rows_read += piece.rows_read;
        self.rows_in_range += piece.rows_in_range;
        self.rows_kept += piece.rows_kept;
        self.earliest = match (self.earliest, piece.earliest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (all, part) in self.parts.iter_mut().zip(piece.parts) {
            if !part.is_empty() {
                all.push(part);
            }
        }
    }
}

/// Makes `v` `n` long for a caller that writes every element: what it held before (or
/// zeros where it grows) is left in place rather than cleared first.
pub fn to_overwrite<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    v.truncate(n);
    v.resize(n, T::default());
}

/// A counting sort's offsets: `starts[b]` is where bucket `b` of `buckets` begins when `keys`
/// (each below `buckets`) are put in bucket order, and `starts[buckets]` is their number.
pub fn bucket_starts(keys: &[u32], buckets: usize, starts: &mut Vec<u32>) {
    starts.clear();
    starts.resize(buckets + 1, 0);
    for &b in keys {
        starts[b as usize + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
}

/// Groups partitions by entity, each entity's events sorted by time: what the kernel
/// needs (entities need not come in key order). A counting sort by a hash of the entity
/// into about n/4 buckets, then a comparison sort of each small bucket: much less work
/// than one sort of the whole partition. Keeps its memory from partition to partition.
#[derive(Debug, Default)]
pub struct Sorter {
    bucket: Vec<u32>,
    starts: Vec<u32>,
    keys: Vec<u64>,
    mixed: Vec<(i64, u64)>,
    order: Vec<(i64, i64, u32)>,
    place: Vec<u32>,
}

impl Sorter {
    /// Sorts the pieces of one partition (at least one) into `out`.
    pub fn sort(&mut self, pieces: Vec<Partition>, out: &mut Partition) {
        let first = pieces.first().expect("a partition has a piece");
        let (values, keys) = (first.values.len(), first.keys.len());
        let n: usize = pieces.iter().map(Partition::len).sum();
        let buckets = (n / 4).next_power_of_two().max(1);
        // the low bits of `mix` (partitions take the top half of it, or of FNV-1a)
        let bucket = |e: i64| (mix(e) as usize) & (buckets - 1);
        self.bucket.clear();
        for piece in &pieces {
            self.bucket.extend(piece.entity.iter().map(|&e| bucket(e) as u32));
        }
        bucket_starts(&self.bucket, buckets, &mut self.starts);
        // a row's time since the partition's first and its number, packed into one u64
        // when they fit (a span of 2^44 us is 200 days, with a million rows): one integer
        // compare per step, eight bytes per row moved
        let (first, last) = pieces
            .iter()
            .flat_map(|p| &p.ts)
            .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let row_bits = usize::BITS - n.leading_zeros();
        let span_bits = if n == 0 {
            0
        } else {
            64 - last.abs_diff(first).leading_zeros()
        };
        // `place[i]`: where input row `i` goes
        to_overwrite(&mut self.place, n);
        out.ts.clear();
        if row_bits + span_bits <= 64 {
            let mask = if row_bits == 64 {
                u64::MAX
            } else {
                (1u64 << row_bits) - 1
            };
            to_overwrite(&mut self.keys, n);
            to_overwrite(&mut out.entity, n);
            // each row to its bucket's next free slot: afterwards starts[b] is bucket b's end
            let mut i = 0;
            for piece in &pieces {
                for (&e, &t) in piece.entity.iter().zip(&piece.ts) {
                    let slot = &mut self.starts[self.bucket[i] as usize];
                    self.keys[*slot as usize] = (t.abs_diff(first) << row_bits) | i as u64;
                    out.entity[*slot as usize] = e;
                    *slot += 1;
                    i += 1;
                }
            }
            let mut lo = 0;
            for &hi in &self.starts[..buckets] {
                let (lo_, hi_) = (lo as usize, hi as usize);
                let entities = &mut out.entity[lo_..hi_];
                if entities.iter().all(|&e| e == entities[0]) {
                    self.keys[lo_..hi_].sort_unstable();
                } else {
                    // two entities share the bucket (rare): order by entity first
                    self.mixed.clear();
                    self.mixed
                        .extend(entities.iter().copied().zip(self.keys[lo_..hi_].iter().copied()));
                    self.mixed.sort_unstable();
                    for (j, &(e, key)) in self.mixed.iter().enumerate() {
                        entities[j] = e;
                        self.keys[lo_ + j] = key;
                    }
                }
                lo = hi;
            }
            out.ts
                .extend(self.keys.iter().map(|&k| first.wrapping_add((k >> row_bits) as i64)));
            for (j, &k) in self.keys.iter().enumerate() {
                self.place[(k & mask) as usize] = j as u32;
            }
        } else {
            self.order.clear();
            self.order.resize(n, (0, 0, 0));
            let mut i = 0;
            for piece in &pieces {
                for (&e, &t) in piece.entity.iter().zip(&piece.ts) {
                    let slot = &mut self.starts[self.bucket[i] as usize];
                    self.order[*slot as usize] = (e, t, i as u32);
                    *slot += 1;
                    i += 1;
                }
            }
            let mut lo = 0;
            for &hi in &self.starts[..buckets] {
                if hi - lo > 1 {
                    self.order[lo as usize..hi as usize].sort_unstable();
                }
                lo = hi;
            }
            out.entity.clear();
            out.entity.extend(self.order.iter().map(|o| o.0));
            out.ts.extend(self.order.iter().map(|o| o.1));
            for (j, o) in self.order.iter().enumerate() {
                self.place[o.2 as usize] = j as u32;
            }
        }
        // every other column: each piece's values straight to their rows' places
        let place = &self.place;
        out.values.resize_with(values, Vec::new);
        for (c, dst) in out.values.iter_mut().enumerate() {
            to_overwrite(dst, n);
            let mut i = 0;
            for piece in &pieces {
                for &x in &piece.values[c] {
                    dst[place[i] as usize] = x;
                    i += 1;
                }
            }
        }
        out.keys.resize_with(keys, KeyColumn::default);
        for (c, dst) in out.keys.iter_mut().enumerate() {
            to_overwrite(&mut dst.keys, n);
            let any_null = pieces.iter().any(|p| p.keys[c].valid.is_some());
            dst.valid = any_null.then(|| vec![true; n]);
            let mut i = 0;
            for piece in &pieces {
                let k = &piece.keys[c];
                for (j, &key) in k.keys.iter().enumerate() {
                    let to = place[i + j] as usize;
                    dst.keys[to] = key;
                    if let (Some(valid), Some(from)) = (&mut dst.valid, &k.valid) {
                        valid[to] = from[j];
                    }
                }
                i += k.keys.len();
            }
        }
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
        let mut sorted = crate::kernel::Partition::default();
        super::Sorter::default().sort(vec![part], &mut sorted);
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
    fn times_too_far_apart_to_pack_sort_the_same() {
        let ts = vec![i64::MAX - 5, i64::MIN + 3, 0, i64::MIN + 3, 7, i64::MAX - 5, -1];
        let part = crate::kernel::Partition {
            entity: vec![1, 2, 1, 1, 2, 2, 1],
            ts,
            values: vec![(0..7).map(f64::from).collect()],
            keys: vec![],
        };
        let mut sorted = crate::kernel::Partition::default();
        super::Sorter::default().sort(vec![part], &mut sorted);
        let mut rows: Vec<(i64, i64, f64)> = (0..7)
            .map(|i| (sorted.entity[i], sorted.ts[i], sorted.values[0][i]))
            .collect();
        rows.sort_by_key(|r| r.0); // entities in any order, each one's rows as they came
        assert_eq!(
            rows,
            vec![
                (1, i64::MIN + 3, 3.0),
                (1, -1, 6.0),
                (1, 0, 2.0),
                (1, i64::MAX - 5, 0.0),
                (2, i64::MIN + 3, 1.0),
                (2, 7, 4.0),
                (2, i64::MAX - 5, 5.0)
            ]
        );
    }

    #[test]
    fn pieces_with_and_without_null_keys_sort_together() {
        use crate::kernel::{KeyColumn, Partition};
        let piece = |entity: Vec<i64>, ts: Vec<i64>, keys: Vec<i64>, valid: Option<Vec<bool>>| Partition {
            entity,
            ts,
            values: vec![],
            keys: vec![KeyColumn { keys, valid }],
        };
        let pieces = vec![
            piece(vec![2, 1], vec![5, 9], vec![20, 10], None),
            piece(vec![1, 2], vec![3, 1], vec![0, 21], Some(vec![false, true])),
            piece(vec![1], vec![7], vec![11], None),
        ];
        let mut sorted = Partition::default();
        super::Sorter::default().sort(pieces, &mut sorted);
        let mut rows: Vec<(i64, i64, Option<i64>)> = (0..sorted.len())
            .map(|i| {
                let valid = sorted.keys[0].valid.as_ref().is_none_or(|v| v[i]);
                (sorted.entity[i], sorted.ts[i], valid.then_some(sorted.keys[0].keys[i]))
            })
            .collect();
        // each entity's rows in time order, keys and their validity travelling with them
        rows.sort_by_key(|r| r.0);
        assert_eq!(
            rows,
            vec![
                (1, 3, None),
                (1, 7, Some(11)),
                (1, 9, Some(10)),
                (2, 1, Some(21)),
                (2, 5, Some(20))
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
