//! Deterministic synthetic transactions: the demo's, the tests' and the benchmarks' data.
//!
//! Rows look like a card-transaction table: `user_id` (Int64), `event_timestamp`
//! (UTC microseconds), `amount` (Float64, log-normal, cents) and `merchant_id` (Int64).
//! User activity is Zipf-like (a few very heavy users, a long tail); users return to a
//! handful of favourite merchants; some events tie on the timestamp of an earlier event
//! of the same user, some fall exactly one window (1h, 24h, 7d, 30d) after one, and a
//! few are exact duplicates: the cases window features get wrong most often.
//!
//! The output is a pure function of the parameters: batch `i` depends only on the
//! parameters and `i`, so batches can be made in parallel and in any order.

use std::sync::Arc;

use arrow::array::{Float64Builder, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Params {
    pub rows: u64,
    pub users: u64,
    pub days: u32,
    /// UTC microseconds of the first instant.
    pub start_micros: i64,
    pub seed: u64,
    /// Share of rows whose `amount` is null.
    pub null_amount_rate: f64,
    pub batch_rows: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            rows: 100_000,
            users: 10_000,
            days: 30,
            start_micros: 1_761_955_200_000_000, // 2025-11-01T00:00:00Z
            seed: 42,
            null_amount_rate: 0.0,
            batch_rows: 256 * 1024,
        }
    }
}

const MERCHANTS: u64 = 50_000;
const FAVOURITES: u64 = 5;
const MICROS_PER_HOUR: i64 = 3_600_000_000;
const WINDOWS: [i64; 4] = [
    MICROS_PER_HOUR,
    24 * MICROS_PER_HOUR,
    7 * 24 * MICROS_PER_HOUR,
    30 * 24 * MICROS_PER_HOUR,
];

/// The schema of generated transactions.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("merchant_id", DataType::Int64, false),
    ]))
}

/// xoshiro256** seeded through splitmix64: small, fast and the same everywhere.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Makes the batches of one parameter set.
pub struct Generator {
    params: Params,
    /// Cumulative Zipf weights of user ranks, normalised to 1.
    user_cdf: Vec<f64>,
}

impl Generator {
    pub fn new(params: Params) -> Generator {
        let users = params.users.max(1);
        let mut cdf = Vec::with_capacity(users as usize);
        let mut acc = 0.0;
        for rank in 0..users {
            acc += 1.0 / ((rank + 1) as f64).powf(1.07);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Generator { params, user_cdf: cdf }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn num_batches(&self) -> usize {
        self.params.rows.div_ceil(self.params.batch_rows as u64) as usize
    }

    /// The user id of a popularity rank: ranks are scattered over the id space so
    /// heavy users are not simply the smallest ids.
    fn user_id(&self, rank: u64) -> i64 {
        let users = self.params.users.max(1);
        // 2654435761 is prime; co-prime with `users` unless it divides it.
        let mult: u64 = if users.is_multiple_of(2_654_435_761) {
            1
        } else {
            2_654_435_761
        };
        (1_000 + (rank as u128 * mult as u128 % users as u128) as u64) as i64
    }

    /// Batch `index`: rows `[index * batch_rows, ...)`.
    pub fn batch(&self, index: usize) -> RecordBatch {
        let p = &self.params;
        let first = index as u64 * p.batch_rows as u64;
        let n = (p.rows.saturating_sub(first)).min(p.batch_rows as u64) as usize;
        let mut rng = Rng::new(p.seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let span = p.days.max(1) as i64 * 24 * MICROS_PER_HOUR;
        let end = p.start_micros + span;

        let mut users = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut amounts = Float64Builder::with_capacity(n);
        let mut merchants = Vec::with_capacity(n);
        for i in 0..n {
            let roll = rng.unit();
            // Ties, boundary events and duplicates refer to an earlier row of this batch.
            let earlier = (i > 0).then(|| rng.below(i.min(4096) as u64) as usize + i - i.min(4096));
            if let (Some(j), true) = (earlier, roll < 0.01) {
                // exact duplicate
                users.push(users[j]);
                times.push(times[j]);
                amounts.append_option(
                    amounts
                        .values_slice()
                        .get(j)
                        .copied()
                        .filter(|_| amounts.validity_slice().is_none_or(|v| v[j / 8] >> (j % 8) & 1 == 1)),
                );
                merchants.push(merchants[j]);
                continue;
            }
            let (user, ts) = match earlier {
                Some(j) if roll < 0.03 => (users[j], times[j]),
                Some(j) if roll < 0.06 => {
                    let t = times[j] + WINDOWS[rng.below(4) as usize];
                    if t < end { (users[j], t) } else { (users[j], times[j]) }
                }
                _ => {
                    let u = rng.unit();
                    let rank = self.user_cdf.partition_point(|&c| c < u).min(self.user_cdf.len() - 1);
                    let ts = p.start_micros + rng.below(span as u64) as i64;
                    (self.user_id(rank as u64), ts)
                }
            };
            users.push(user);
            times.push(ts);
            if rng.unit() < p.null_amount_rate {
                amounts.append_null();
            } else {
                let amount = (3.2 + 1.1 * rng.normal()).exp();
                amounts.append_value((amount * 100.0).round() / 100.0);
            }
            let merchant = if rng.unit() < 0.7 {
                let k = rng.below(FAVOURITES);
                let h = (user as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(k.wrapping_mul(0xD1B5_4A32_D192_ED03));
                (h >> 20) % MERCHANTS
            } else {
                rng.below(MERCHANTS)
            };
            merchants.push(merchant as i64 + 1);
        }
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(users)),
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
                Arc::new(amounts.finish()),
                Arc::new(Int64Array::from(merchants)),
            ],
        )
        .expect("generated columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
    use std::collections::{HashMap, HashSet};

    fn params() -> Params {
        Params {
            rows: 50_000,
            users: 2_000,
            batch_rows: 20_000,
            null_amount_rate: 0.01,
            ..Params::default()
        }
    }

    #[test]
    fn deterministic_and_sized() {
        let g = Generator::new(params());
        assert_eq!(g.num_batches(), 3);
        let sizes: Vec<usize> = (0..3).map(|i| g.batch(i).num_rows()).collect();
        assert_eq!(sizes, vec![20_000, 20_000, 10_000]);
        assert_eq!(g.batch(1), Generator::new(params()).batch(1));
        assert_ne!(g.batch(1), g.batch(2));
    }

    #[test]
    fn realistic_shape() {
        let g = Generator::new(params());
        let b = g.batch(0);
        let users = b.column(0).as_primitive::<Int64Type>();
        let times = b.column(1).as_primitive::<TimestampMicrosecondType>();
        let amounts = b.column(2).as_primitive::<Float64Type>();
        let mut per_user: HashMap<i64, usize> = HashMap::new();
        for u in users.values() {
            *per_user.entry(*u).or_default() += 1;
        }
        let mut counts: Vec<usize> = per_user.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        assert!(
            counts[0] > 50 * counts[counts.len() / 2],
            "heavy users: {:?}",
            &counts[..5]
        );
        // ties and exact window boundaries within a user
        let mut seen: HashSet<(i64, i64)> = HashSet::new();
        let (mut ties, mut boundaries) = (0, 0);
        for (u, t) in users.values().iter().zip(times.values()) {
            if seen.contains(&(*u, *t)) {
                ties += 1;
            }
            if WINDOWS.iter().any(|w| seen.contains(&(*u, t - w))) {
                boundaries += 1;
            }
            seen.insert((*u, *t));
        }
        assert!(ties > 200 && boundaries > 200, "ties {ties}, boundaries {boundaries}");
        assert!(amounts.null_count() > 50);
        let p = params();
        let end = p.start_micros + p.days as i64 * 24 * MICROS_PER_HOUR;
        assert!(times.values().iter().all(|t| (p.start_micros..end).contains(t)));
        assert!(amounts.iter().flatten().all(|a| a > 0.0));
    }
}
