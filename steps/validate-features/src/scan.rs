//! The one pass over a view's rows: every row rule, the coverage counts and the statistics
//! of the profile, per chunk (a row group) on its own thread, merged in file order.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, Schema};
use featurekit::artifact::Micros;
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
    /// The created_timestamp of this run's rows (microseconds): rows with another one were
    /// written, and checked, by an earlier run (the as-of rows the day before left at this
    /// run's start). `None` checks every row.
    pub run_created: Option<i64>,
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
    /// Rows of earlier runs (another created_timestamp), left out of every check.
    pub earlier: u64,
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
            earlier: 0,
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
        self.earlier += o.earlier;
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

/// What a chunk holds of the entity, event_timestamp and created_timestamp columns.
#[derive(Debug, Clone, Copy)]
pub enum Keys {
    /// They were read: check them.
    Read,
    /// Not read: the row group's statistics prove them clean (no nulls, every time in the
    /// interval, every row this run's), and `newest` is its largest event_timestamp.
    Proven { newest: i64 },
}

/// A column whose type breaks the schema rule.
#[derive(Debug, Clone)]
pub struct SchemaProblem(pub String);

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

/// Checks a file's (or a batch's) columns against the schema the spec implies.
pub fn check_schema(schema: &Schema, ctx: &Ctx, file: &str) -> Result<(), SchemaProblem> {
    let col = |name: &str| {
        schema
            .field_with_name(name)
            .map_err(|_| SchemaProblem(format!("{file}: missing column `{name}`")))
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

/// A feature column as f64 (NaN where null), and its validity when it has nulls.
type Values<'a> = (std::borrow::Cow<'a, [f64]>, Option<Vec<bool>>);

/// A numeric column of a batch as f64 (NaN where null), with its validity when it has nulls:
/// a Float64 column without nulls is used in place.
fn as_f64(a: &ArrayRef) -> Values<'_> {
    use std::borrow::Cow;
    if a.data_type() == &DataType::Float64 && a.null_count() == 0 {
        return (Cow::Borrowed(a.as_primitive::<Float64Type>().values()), None);
    }
    let valid = (a.null_count() > 0).then(|| (0..a.len()).map(|i| a.is_valid(i)).collect::<Vec<bool>>());
    let mut v: Vec<f64> = match a.data_type() {
        DataType::Int64 => a
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&x| x as f64)
            .collect(),
        DataType::Int32 => a
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|&x| x as f64)
            .collect(),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&x| x as f64)
            .collect(),
        _ => a.as_primitive::<Float64Type>().values().to_vec(),
    };
    if let Some(valid) = &valid {
        for (x, ok) in v.iter_mut().zip(valid) {
            if !ok {
                *x = f64::NAN;
            }
        }
    }
    (Cow::Owned(v), valid)
}

/// What one pass over a column's values finds: finite values, their sum, minimum and
/// maximum, and the infinities.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    finite: u64,
    sum: f64,
    min: f64,
    max: f64,
    positive_infinite: u64,
}

/// One pass over `values`: four lanes of branch-free accumulators, so the compiler keeps
/// them in vector registers; a non-finite value adds nothing but to its count.
fn summarize(values: &[f64]) -> Summary {
    let mut finite = [0u64; 4];
    let mut sum = [0.0f64; 4];
    let mut min = [f64::INFINITY; 4];
    let mut max = [f64::NEG_INFINITY; 4];
    let mut infinite = [0u64; 4];
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    let mut add = |lane: usize, x: f64| {
        let ok = x.is_finite();
        finite[lane] += ok as u64;
        infinite[lane] += (x == f64::INFINITY) as u64;
        sum[lane] += if ok { x } else { 0.0 };
        min[lane] = if ok && x < min[lane] { x } else { min[lane] };
        max[lane] = if ok && x > max[lane] { x } else { max[lane] };
    };
    for c in chunks {
        for (lane, &x) in c.iter().enumerate() {
            add(lane, x);
        }
    }
    for (lane, &x) in rest.iter().enumerate() {
        add(lane, x);
    }
    Summary {
        finite: finite.iter().sum(),
        sum: (sum[0] + sum[1]) + (sum[2] + sum[3]),
        min: min.iter().copied().fold(f64::INFINITY, f64::min),
        max: max.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        positive_infinite: infinite.iter().sum(),
    }
}

/// Adds to `counts[i]` the finite values with `i` edges below them (`edges` ascending,
/// `counts` one longer); `summary` is the values'.
fn bin_counts(values: &[f64], edges: &[f64], summary: &Summary, counts: &mut [u64]) {
    if edges.iter().all(|e| e.is_finite()) && edges.is_sorted() {
        // a handful of edges: per edge, one vectorised count of the values above it (NaN is
        // above none, +inf above all); a bin holds those above its lower edge but not above
        // its upper one
        let mut above_lower = summary.finite;
        for (bin, &edge) in edges.iter().enumerate() {
            let above = values.iter().filter(|&&x| x > edge).count() as u64 - summary.positive_infinite;
            counts[bin] += above_lower - above;
            above_lower = above;
        }
        counts[edges.len()] += above_lower;
    } else {
        // a baseline with unordered or infinite edges: count them value by value
        for &x in values.iter().filter(|x| x.is_finite()) {
            counts[edges.iter().filter(|e| **e < x).count()] += 1;
        }
    }
}

/// Rows of `n` where `broken` holds, counted in one tight loop.
#[inline]
fn count_where(n: usize, broken: impl Fn(usize) -> bool) -> usize {
    (0..n).filter(|&r| broken(r)).count()
}

/// The pass over one chunk's batches, column by column.
/// With [`Keys::Proven`], `Ok(None)` when a feature breaks a rule: the chunk must be read
/// again with its keys and times, to name the offending rows.
pub fn analyze(
    batches: &[RecordBatch],
    file: &str,
    first_row: u64,
    ctx: &Ctx,
    keys: Keys,
) -> Result<Option<Partial>, SchemaProblem> {
    let mut p = Partial::new(ctx);
    let read = matches!(keys, Keys::Read);
    let seed = file.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut row0 = first_row;
    for batch in batches {
        let total = batch.num_rows();
        let (batch, rows_of) = if read {
            check_schema(&batch.schema(), ctx, file)?;
            this_run(batch, ctx, &mut p.earlier)
        } else {
            (batch.clone(), None)
        };
        let batch = &batch;
        let n = batch.num_rows();
        // both present when read (the schema is checked), both absent when proven
        let entity = batch.column_by_name(&ctx.entity);
        let times = batch
            .column_by_name(&ctx.timestamp)
            .map(|t| Micros::of(t).expect("checked"));
        let cols: Vec<Values> = ctx
            .features
            .iter()
            .map(|(name, _)| as_f64(batch.column_by_name(name).expect("checked")))
            .collect();
        let entity_text = |r: usize| -> String {
            let Some(entity) = entity else {
                return String::new();
            };
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
            row: row0 + rows_of.as_ref().map_or(r, |rows| rows[r]) as u64,
            entity: entity_text(r),
            event_timestamp: match &times {
                Some(t) if t.raw.is_valid(r) => rfc3339(t.convert(t.raw.value(r))),
                Some(_) => "null".into(),
                None => String::new(),
            },
            values,
        };
        let note = |v: &mut Violations, r: usize, values: Vec<(String, String)>| {
            v.count += 1;
            if v.examples.len() < EXAMPLES {
                v.examples.push(example(r, values));
            }
        };
        let shown = crate::report::short;
        p.rows += n as u64;

        // keys and times
        match (entity, &times, keys) {
            (Some(entity), Some(times), _) => {
                let ts = &times.raw;
                if entity.null_count() > 0 {
                    for r in (0..n).filter(|&r| entity.is_null(r)) {
                        note(&mut p.null_entity, r, vec![]);
                    }
                }
                if ts.null_count() > 0 {
                    for r in (0..n).filter(|&r| ts.is_null(r)) {
                        note(&mut p.null_timestamp, r, vec![]);
                    }
                }
                let (lo, hi) = ctx.range;
                let mut newest = i64::MIN;
                let mut outside = 0u64;
                for (r, &raw) in ts.values().iter().enumerate() {
                    let t = times.convert(raw);
                    let valid = ts.null_count() == 0 || ts.is_valid(r);
                    let out = valid && (t < lo || t > hi);
                    outside += out as u64;
                    if valid && t > newest {
                        newest = t;
                    }
                }
                if outside > 0 {
                    for (r, &raw) in ts.values().iter().enumerate() {
                        let t = times.convert(raw);
                        if ts.is_valid(r) && (t < lo || t > hi) {
                            note(&mut p.out_of_range, r, vec![]);
                        }
                    }
                }
                p.in_range += (n as u64 - ts.null_count() as u64) - outside;
                if newest > i64::MIN {
                    p.newest = p.newest.max(Some(newest));
                }
            }
            (_, _, Keys::Proven { newest }) => {
                p.in_range += n as u64;
                p.newest = p.newest.max(Some(newest));
            }
            _ => unreachable!("read chunks have their keys and times: the schema is checked"),
        }
        // the sample: the same rows for every feature
        let sampled: Vec<usize> = if ctx.sample_threshold == u64::MAX {
            (0..n).collect()
        } else {
            (0..n)
                .filter(|&r| splitmix(seed ^ (row0 + r as u64)) < ctx.sample_threshold)
                .collect()
        };

        // each feature's statistics
        for (k, ((values, valid), stats)) in cols.iter().zip(p.features.iter_mut()).enumerate() {
            let summary = summarize(values);
            let bad = values.len() as u64 - summary.finite;
            let nulls = valid.as_ref().map_or(0, |v| v.iter().filter(|ok| !**ok).count() as u64);
            stats.nulls += nulls;
            stats.count += summary.finite;
            stats.sum += summary.sum;
            stats.min = stats.min.min(summary.min);
            stats.max = stats.max.max(summary.max);
            if bad > nulls {
                if !read {
                    return Ok(None);
                }
                // NaN or infinity in valid slots
                for (r, &x) in values.iter().enumerate() {
                    if !x.is_finite() && valid.as_ref().is_none_or(|v| v[r]) {
                        stats.nonfinite.count += 1;
                        if stats.nonfinite.examples.len() < EXAMPLES {
                            let name = ctx.features[k].0.clone();
                            stats.nonfinite.examples.push(example(r, vec![(name, shown(x))]));
                        }
                    }
                }
            }
            stats
                .sample
                .extend(sampled.iter().map(|&r| values[r]).filter(|x| x.is_finite()));
            if let Some(edges) = &ctx.psi_edges[k] {
                bin_counts(values, edges, &summary, &mut stats.psi_counts);
            }
        }

        // the row rules (comparisons with NaN, i.e. null, are false: nulls break no rule)
        for (rule, viol) in ctx.rules.iter().zip(p.rules.iter_mut()) {
            let (first, second) = match &rule.rule {
                RowRule::NonNegative(i) => (*i, None),
                RowRule::AtMost { small, large } => (*small, Some(*large)),
                RowRule::Within { feature, .. } => (*feature, None),
            };
            let broken = |r: usize| -> bool {
                match &rule.rule {
                    RowRule::NonNegative(i) => cols[*i].0[r] < 0.0,
                    RowRule::AtMost { small, large } => cols[*small].0[r] > cols[*large].0[r],
                    RowRule::Within { feature, min, max } => {
                        let v = cols[*feature].0[r];
                        min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m)
                    }
                }
            };
            // one monomorphic loop per kind of rule
            let count = match &rule.rule {
                RowRule::NonNegative(i) => {
                    let a = &cols[*i].0;
                    count_where(n, |r| a[r] < 0.0)
                }
                RowRule::AtMost { small, large } => {
                    let (a, b) = (&cols[*small].0, &cols[*large].0);
                    count_where(n, |r| a[r] > b[r])
                }
                RowRule::Within { .. } => count_where(n, broken),
            };
            if count > 0 {
                if !read {
                    return Ok(None);
                }
                for r in (0..n)
                    .filter(|&r| broken(r))
                    .take(EXAMPLES.saturating_sub(viol.examples.len()))
                {
                    let values = std::iter::once(first)
                        .chain(second)
                        .map(|i| (ctx.features[i].0.clone(), shown(cols[i].0[r])))
                        .collect();
                    viol.examples.push(example(r, values));
                }
                viol.count += count as u64;
            }
        }
        row0 += total as u64;
    }
    Ok(Some(p))
}

/// The rows of `batch` this run wrote (all of them when every row is), with their row numbers
/// in the batch when some are left out; counts the others in `earlier`.
fn this_run(batch: &RecordBatch, ctx: &Ctx, earlier: &mut u64) -> (RecordBatch, Option<Vec<usize>>) {
    let Some(stamp) = ctx.run_created else {
        return (batch.clone(), None);
    };
    let Some(created) = Micros::of(batch.column_by_name(&ctx.created).expect("checked")) else {
        return (batch.clone(), None);
    };
    let ours = |r: usize| created.get(r).is_none_or(|c| c == stamp);
    let n = batch.num_rows();
    if (0..n).all(ours) {
        return (batch.clone(), None);
    }
    let kept: Vec<usize> = (0..n).filter(|&r| ours(r)).collect();
    *earlier += (n - kept.len()) as u64;
    let indices = arrow::array::UInt32Array::from_iter_values(kept.iter().map(|&r| r as u32));
    let columns = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &indices, None).expect("indices in range"))
        .collect();
    (
        RecordBatch::try_new(batch.schema(), columns).expect("same schema"),
        Some(kept),
    )
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

#[cfg(test)]
mod tests {
    #[test]
    fn bin_counts_count_the_edges_below_each_finite_value() {
        let values: Vec<f64> = (0..1003)
            .map(|i| match i % 97 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                _ => ((i * 7919) % 211) as f64 / 10.0 - 3.0,
            })
            .collect();
        for edges in [
            vec![],
            vec![0.0],
            vec![-1.0, 0.0, 2.5, 7.0, 12.0],
            vec![-1.0, 0.0, 0.0, 2.5, 7.0, 12.0],
            (0..20).map(f64::from).collect(),
            vec![3.0, f64::INFINITY],
            vec![5.0, 1.0],
            vec![f64::NAN, 1.0],
        ] {
            let mut got = vec![0; edges.len() + 1];
            super::bin_counts(&values, &edges, &super::summarize(&values), &mut got);
            let mut want = vec![0u64; edges.len() + 1];
            for &x in values.iter().filter(|x| x.is_finite()) {
                want[edges.iter().filter(|e| **e < x).count()] += 1;
            }
            assert_eq!(got, want, "edges {edges:?}");
        }
    }

    #[test]
    fn summarize_leaves_out_non_finite_values_in_any_lane() {
        for n in [0, 1, 3, 4, 5, 17, 1003] {
            let values: Vec<f64> = (0..n)
                .map(|i| match i % 13 {
                    3 => f64::NAN,
                    5 => f64::INFINITY,
                    8 => f64::NEG_INFINITY,
                    _ => (i as f64 * 0.37).sin() * 100.0,
                })
                .collect();
            let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
            let got = super::summarize(&values);
            assert_eq!(got.finite, finite.len() as u64);
            assert_eq!(
                got.positive_infinite,
                values.iter().filter(|&&x| x == f64::INFINITY).count() as u64
            );
            assert_eq!(got.min, finite.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(got.max, finite.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            let exact: f64 = finite.iter().sum();
            assert!(
                (got.sum - exact).abs() <= 1e-9 * exact.abs().max(1.0),
                "{} vs {exact}",
                got.sum
            );
        }
    }
}
