//! The one pass over a view's rows: every row rule, the coverage counts and the statistics
//! of the profile, per chunk (a row group) on its own thread, merged in file order.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit};
use featurekit::spec::Dtype;

use crate::rules::{Named, RowRule};

/// How many offending rows a rule keeps as examples.
pub const EXAMPLES: usize = 5;
/// The values sampled per feature for quantiles (a deterministic Bernoulli sample).
pub const SAMPLE: u64 = 200_000;

/// What the pass needs to know.
pub struct Ctx {
    pub entity: String,
    pub timestamp: String,
    pub created: String,
    pub features: Vec<(String, Dtype)>,
    pub rules: Vec<Named>,
    /// Inclusive `[start, end]`, microseconds.
    pub range: (i64, i64),
    /// Keep a value in the sample when `hash < threshold`.
    pub sample_threshold: u64,
    /// Per feature, the baseline's PSI bin edges (upper bounds, inclusive).
    pub psi_edges: Vec<Option<Vec<f64>>>,
}

/// An offending row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Example {
    pub file: String,
    pub row: u64,
    pub entity: String,
    pub event_timestamp: String,
    /// The values the rule looked at.
    pub values: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Violations {
    pub count: u64,
    pub examples: Vec<Example>,
}

impl Violations {
    fn merge(&mut self, other: Violations) {
        self.count += other.count;
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

#[derive(Debug, Clone)]
pub struct FeatureStats {
    /// Non-null, finite values.
    pub count: u64,
    pub nulls: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sample: Vec<f64>,
    /// Counts in the baseline's PSI bins (one more than the edges).
    pub psi_counts: Vec<u64>,
    /// NaN or infinite values.
    pub nonfinite: Violations,
}

impl FeatureStats {
    fn new(bins: usize) -> FeatureStats {
        FeatureStats {
            count: 0,
            nulls: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sample: vec![],
            psi_counts: vec![0; bins],
            nonfinite: Violations::default(),
        }
    }

    fn merge(&mut self, o: FeatureStats) {
        self.count += o.count;
        self.nulls += o.nulls;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sample.extend(o.sample);
        for (a, b) in self.psi_counts.iter_mut().zip(o.psi_counts) {
            *a += b;
        }
        self.nonfinite.merge(o.nonfinite);
    }
}

/// The pass over some rows.
#[derive(Debug, Clone)]
pub struct Partial {
    pub rows: u64,
    pub in_range: u64,
    pub out_of_range: Violations,
    pub null_entity: Violations,
    pub null_timestamp: Violations,
    pub newest: Option<i64>,
    pub features: Vec<FeatureStats>,
    pub rules: Vec<Violations>,
}

impl Partial {
    pub fn new(ctx: &Ctx) -> Partial {
        Partial {
            rows: 0,
            in_range: 0,
            out_of_range: Violations::default(),
            null_entity: Violations::default(),
            null_timestamp: Violations::default(),
            newest: None,
            features: ctx
                .psi_edges
                .iter()
                .map(|e| FeatureStats::new(e.as_ref().map_or(0, |e| e.len() + 1)))
                .collect(),
            rules: vec![Violations::default(); ctx.rules.len()],
        }
    }

    pub fn merge(&mut self, o: Partial) {
        self.rows += o.rows;
        self.in_range += o.in_range;
        self.out_of_range.merge(o.out_of_range);
        self.null_entity.merge(o.null_entity);
        self.null_timestamp.merge(o.null_timestamp);
        self.newest = self.newest.max(o.newest);
        for (a, b) in self.features.iter_mut().zip(o.features) {
            a.merge(b);
        }
        for (a, b) in self.rules.iter_mut().zip(o.rules) {
            a.merge(b);
        }
    }
}

enum Num<'a> {
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    F64(&'a arrow::array::PrimitiveArray<Float64Type>),
    F32(&'a arrow::array::PrimitiveArray<Float32Type>),
}

impl Num<'_> {
    #[inline]
    fn get(&self, r: usize) -> Option<f64> {
        match self {
            Num::I64(a) => a.is_valid(r).then(|| a.value(r) as f64),
            Num::I32(a) => a.is_valid(r).then(|| a.value(r) as f64),
            Num::F64(a) => a.is_valid(r).then(|| a.value(r)),
            Num::F32(a) => a.is_valid(r).then(|| a.value(r) as f64),
        }
    }
}

/// A column whose type breaks the schema rule.
#[derive(Debug, Clone)]
pub struct SchemaProblem(pub String);

fn micros(a: &ArrayRef) -> Option<(arrow::array::PrimitiveArray<Int64Type>, i64, i64)> {
    let (mul, div) = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => (1_000_000, 1),
        DataType::Timestamp(TimeUnit::Millisecond, _) => (1_000, 1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (1, 1),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (1, 1_000),
        _ => return None,
    };
    let data = a.to_data().into_builder().data_type(DataType::Int64).build().ok()?;
    Some((arrow::array::PrimitiveArray::<Int64Type>::from(data), mul, div))
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| us.to_string())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Checks the columns of a batch against the schema the spec implies.
pub fn check_schema(batch: &RecordBatch, ctx: &Ctx, file: &str) -> Result<(), SchemaProblem> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| SchemaProblem(format!("{file}: missing column `{name}`")))
    };
    let e = col(&ctx.entity)?;
    if !matches!(
        e.data_type(),
        DataType::Int64 | DataType::Int32 | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(SchemaProblem(format!(
            "{file}: entity column `{}` is {}",
            ctx.entity,
            e.data_type()
        )));
    }
    for t in [&ctx.timestamp, &ctx.created] {
        let c = col(t)?;
        if !matches!(c.data_type(), DataType::Timestamp(..)) {
            return Err(SchemaProblem(format!(
                "{file}: column `{t}` is {}, expected a timestamp",
                c.data_type()
            )));
        }
    }
    for (name, dtype) in &ctx.features {
        let c = col(name)?;
        let fine = match dtype {
            Dtype::Int64 => c.data_type() == &DataType::Int64,
            Dtype::Float64 => c.data_type() == &DataType::Float64,
            Dtype::Float32 => c.data_type() == &DataType::Float32,
        };
        if !fine {
            return Err(SchemaProblem(format!(
                "{file}: feature `{name}` is {}, the spec declares {}",
                c.data_type(),
                crate::rules::dtype_name(*dtype)
            )));
        }
    }
    Ok(())
}

/// The pass over one chunk's batches.
pub fn analyze(batches: &[RecordBatch], file: &str, first_row: u64, ctx: &Ctx) -> Result<Partial, SchemaProblem> {
    let mut p = Partial::new(ctx);
    let seed = file.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut row0 = first_row;
    let mut vals = vec![f64::NAN; ctx.features.len()];
    for batch in batches {
        check_schema(batch, ctx, file)?;
        let n = batch.num_rows();
        let entity = batch.column_by_name(&ctx.entity).expect("checked");
        let (ts, mul, div) = micros(batch.column_by_name(&ctx.timestamp).expect("checked")).expect("checked");
        let cols: Vec<Num> = ctx
            .features
            .iter()
            .map(|(name, _)| {
                let a = batch.column_by_name(name).expect("checked");
                match a.data_type() {
                    DataType::Int64 => Num::I64(a.as_primitive()),
                    DataType::Int32 => Num::I32(a.as_primitive()),
                    DataType::Float32 => Num::F32(a.as_primitive()),
                    _ => Num::F64(a.as_primitive()),
                }
            })
            .collect();
        let entity_text = |r: usize| -> String {
            if entity.is_null(r) {
                return "null".into();
            }
            match entity.data_type() {
                DataType::Int64 => entity.as_primitive::<Int64Type>().value(r).to_string(),
                DataType::Int32 => entity.as_primitive::<Int32Type>().value(r).to_string(),
                DataType::Utf8 => entity.as_string::<i32>().value(r).to_string(),
                DataType::LargeUtf8 => entity.as_string::<i64>().value(r).to_string(),
                _ => entity.as_string_view().value(r).to_string(),
            }
        };
        let example = |r: usize, values: Vec<(String, String)>| Example {
            file: file.to_string(),
            row: row0 + r as u64,
            entity: entity_text(r),
            event_timestamp: if ts.is_valid(r) {
                rfc3339(ts.value(r).saturating_mul(mul) / div)
            } else {
                "null".into()
            },
            values,
        };
        let shown = crate::report::short;
        p.rows += n as u64;
        for r in 0..n {
            if entity.is_null(r) {
                p.null_entity.count += 1;
                if p.null_entity.examples.len() < EXAMPLES {
                    p.null_entity.examples.push(example(r, vec![]));
                }
            }
            if ts.is_null(r) {
                p.null_timestamp.count += 1;
                if p.null_timestamp.examples.len() < EXAMPLES {
                    p.null_timestamp.examples.push(example(r, vec![]));
                }
            } else {
                let t = ts.value(r).saturating_mul(mul) / div;
                if t < ctx.range.0 || t > ctx.range.1 {
                    p.out_of_range.count += 1;
                    if p.out_of_range.examples.len() < EXAMPLES {
                        p.out_of_range.examples.push(example(r, vec![]));
                    }
                } else {
                    p.in_range += 1;
                }
                p.newest = p.newest.max(Some(t));
            }
            let sampled = splitmix(seed ^ (row0 + r as u64)) < ctx.sample_threshold;
            for (k, (col, stats)) in cols.iter().zip(p.features.iter_mut()).enumerate() {
                let v = col.get(r);
                vals[k] = v.unwrap_or(f64::NAN);
                match v {
                    None => stats.nulls += 1,
                    Some(x) if !x.is_finite() => {
                        stats.nonfinite.count += 1;
                        if stats.nonfinite.examples.len() < EXAMPLES {
                            let name = ctx.features[k].0.clone();
                            stats.nonfinite.examples.push(example(r, vec![(name, shown(x))]));
                        }
                    }
                    Some(x) => {
                        stats.count += 1;
                        stats.sum += x;
                        stats.min = stats.min.min(x);
                        stats.max = stats.max.max(x);
                        if sampled {
                            stats.sample.push(x);
                        }
                        if let Some(edges) = &ctx.psi_edges[k] {
                            let bin = edges.partition_point(|e| *e < x);
                            stats.psi_counts[bin] += 1;
                        }
                    }
                }
            }
            for (rule, viol) in ctx.rules.iter().zip(p.rules.iter_mut()) {
                let (broken, first, second) = match &rule.rule {
                    RowRule::NonNegative(i) => (vals[*i] < 0.0, *i, None),
                    RowRule::AtMost { small, large } => (vals[*small] > vals[*large], *small, Some(*large)),
                    RowRule::Within { feature, min, max } => {
                        let v = vals[*feature];
                        (min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m), *feature, None)
                    }
                };
                // comparisons with NaN (null) are false: nulls never break a row rule
                if broken {
                    viol.count += 1;
                    if viol.examples.len() < EXAMPLES {
                        let values = std::iter::once(first)
                            .chain(second)
                            .map(|i| (ctx.features[i].0.clone(), shown(vals[i])))
                            .collect();
                        viol.examples.push(example(r, values));
                    }
                }
            }
        }
        row0 += n as u64;
    }
    Ok(p)
}

#[cfg(test)]
impl FeatureStats {
    /// Statistics of these values, all sampled.
    pub fn for_test(values: &[f64]) -> FeatureStats {
        let mut s = FeatureStats::new(0);
        for &x in values {
            s.count += 1;
            s.sum += x;
            s.min = s.min.min(x);
            s.max = s.max.max(x);
            s.sample.push(x);
        }
        s
    }
}
