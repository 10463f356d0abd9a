//! The window kernel: every feature of one view for events grouped by entity, each
//! entity's events sorted by time (entities themselves in any order).
//!
//! For an event at `t`, a window `w` covers the entity's events in `[t - w, t)`. Within one
//! entity the events are sorted by time, so the window's bounds only move forward: `r`, the
//! first event at `t` (ties are excluded), and one `l` per distinct window, the first event at
//! or after `t - w`. Each aggregation keeps what lets it answer in O(1) as the bounds move:
//! prefix sums in double-double precision for sum and mean, a monotonic deque for min and
//! max, a counter map for distinct counts. Events that tie on `t` share one computation.

use std::collections::VecDeque;

use ahash::{AHashMap, RandomState};
use featurekit::spec::Aggregation;

/// Where a feature's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// No input column (count).
    Events,
    /// A numeric column slot in [`Partition::values`] (NaN is null).
    Value(usize),
    /// A key column slot in [`Partition::keys`] (count_distinct).
    Key(usize),
}

/// One feature, planned.
#[derive(Debug, Clone)]
pub struct FeaturePlan {
    pub aggregation: Aggregation,
    pub input: Input,
    /// Slot in [`Plan::windows`].
    pub window: usize,
    /// Value of an empty window.
    pub empty: f64,
}

/// The features of one view.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Distinct window lengths, microseconds.
    pub windows: Vec<i64>,
    pub features: Vec<FeaturePlan>,
}

impl Plan {
    pub fn longest(&self) -> i64 {
        self.windows.iter().copied().max().unwrap_or(0)
    }
}

/// A distinct-count input: keys, and which are valid (not null).
#[derive(Debug, Clone, Default)]
pub struct KeyColumn {
    pub keys: Vec<i64>,
    /// `None` when no key is null.
    pub valid: Option<Vec<bool>>,
}

impl KeyColumn {
    fn get(&self, i: usize) -> Option<i64> {
        match &self.valid {
            Some(v) if !v[i] => None,
            _ => Some(self.keys[i]),
        }
    }
}

/// Events of some entities: each entity's events contiguous and sorted by time.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    pub entity: Vec<i64>,
    pub ts: Vec<i64>,
    pub values: Vec<Vec<f64>>,
    pub keys: Vec<KeyColumn>,
}

/// What the kernel produces.
pub trait Emit {
    /// Feature values of the event at sorted position `row`, at time `ts`.
    fn event(&mut self, row: usize, ts: i64, values: &[f64]);
    /// Feature values of the entity at sorted position `row` as of `ts`.
    fn as_of(&mut self, row: usize, ts: i64, values: &[f64]);
}

/// Which rows to emit: events with `start <= t < end`, and as-of rows.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub as_of: Option<i64>,
}

// ---- double-double prefix sums -----------------------------------------------------

#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// Prefix sums of a column's non-null values with ~32 significant digits, and prefix
/// counts of its non-null values: any window's sum is exact to f64 rounding.
struct Prefix {
    hi: Vec<f64>,
    lo: Vec<f64>,
    count: Vec<u32>,
}

impl Prefix {
    fn new(values: &[f64]) -> Prefix {
        let mut p = Prefix {
            hi: Vec::with_capacity(values.len() + 1),
            lo: Vec::with_capacity(values.len() + 1),
            count: Vec::with_capacity(values.len() + 1),
        };
        let (mut hi, mut lo, mut n) = (0.0, 0.0, 0u32);
        p.hi.push(hi);
        p.lo.push(lo);
        p.count.push(n);
        for &x in values {
            if !x.is_nan() {
                let (s, e) = two_sum(hi, x);
                let (s2, e2) = two_sum(s, lo + e);
                hi = s2;
                lo = e2;
                n += 1;
            }
            p.hi.push(hi);
            p.lo.push(lo);
            p.count.push(n);
        }
        p
    }

    /// (sum, count) over `[l, r)`.
    #[inline]
    fn range(&self, l: usize, r: usize) -> (f64, u32) {
        let (s, lo) = self.range_dd(l, r);
        (s + lo, self.count[r] - self.count[l])
    }

    /// The sum over `[l, r)` as an unevaluated pair `hi + lo`.
    #[inline]
    fn range_dd(&self, l: usize, r: usize) -> (f64, f64) {
        let (s, e) = two_sum(self.hi[r], -self.hi[l]);
        (s, e + (self.lo[r] - self.lo[l]))
    }

    /// The mean over `[l, r)` (`count > 0`), divided from the pair: rounding the sum to f64
    /// first could put the mean of equal values one ulp above them (and above their max).
    #[inline]
    fn mean(&self, l: usize, r: usize, count: u32) -> f64 {
        let (hi, lo) = self.range_dd(l, r);
        let n = count as f64;
        let q = hi / n;
        let (p, e) = two_prod(q, n);
        q + (((hi - p) - e) + lo) / n
    }
}

/// `a * b` as an exact pair (Dekker's product with Veltkamp's split, no FMA needed).
#[inline]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let split = |x: f64| {
        let c = 134_217_729.0 * x; // 2^27 + 1
        let hi = c - (c - x);
        (hi, x - hi)
    };
    let p = a * b;
    let ((ah, al), (bh, bl)) = (split(a), split(b));
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

// ---- per-feature state -------------------------------------------------------------

enum State {
    Stateless,
    Extreme {
        max: bool,
        deque: VecDeque<usize>,
        l: usize,
        r: usize,
    },
    Distinct {
        counts: AHashMap<i64, u32>,
        l: usize,
        r: usize,
    },
}

impl State {
    /// Empties the state for the next entity, whose events start at `at`.
    fn reset(&mut self, at: usize, keys: &[KeyColumn], input: Input) {
        match self {
            State::Stateless => {}
            State::Extreme { deque, l, r, .. } => {
                deque.clear();
                (*l, *r) = (at, at);
            }
            State::Distinct { counts, l, r } => {
                // Removing the window's keys costs what the window held; `clear` would cost
                // the map's capacity, which the heaviest entity so far has made large.
                if let Input::Key(c) = input {
                    for j in *l..*r {
                        if let Some(key) = keys[c].get(j) {
                            counts.remove(&key);
                        }
                    }
                }
                debug_assert!(counts.is_empty());
                (*l, *r) = (at, at);
            }
        }
    }
}

/// Runs a view's plan over a sorted partition.
pub struct Kernel<'a> {
    plan: &'a Plan,
    part: &'a Partition,
    prefixes: Vec<Option<Prefix>>,
    states: Vec<State>,
}

impl<'a> Kernel<'a> {
    pub fn new(plan: &'a Plan, part: &'a Partition) -> Kernel<'a> {
        let mut prefixes: Vec<Option<Prefix>> = (0..part.values.len()).map(|_| None).collect();
        let states = plan
            .features
            .iter()
            .map(|f| {
                match (f.aggregation, f.input) {
                    (Aggregation::Sum | Aggregation::Mean, Input::Value(c)) if prefixes[c].is_none() => {
                        prefixes[c] = Some(Prefix::new(&part.values[c]));
                    }
                    (Aggregation::Min | Aggregation::Max, _) => {
                        return State::Extreme {
                            max: f.aggregation == Aggregation::Max,
                            deque: VecDeque::new(),
                            l: 0,
                            r: 0,
                        };
                    }
                    (Aggregation::CountDistinct, _) => {
                        return State::Distinct {
                            counts: AHashMap::with_hasher(RandomState::with_seeds(1, 2, 3, 4)),
                            l: 0,
                            r: 0,
                        };
                    }
                    _ => {}
                }
                State::Stateless
            })
            .collect();
        Kernel {
            plan,
            part,
            prefixes,
            states,
        }
    }

    /// Computes every emitted row of the partition. Returns the number of rows emitted.
    pub fn run(&mut self, range: Range, out: &mut impl Emit) -> u64 {
        let n = self.part.ts.len();
        let mut emitted = 0;
        let mut g0 = 0;
        while g0 < n {
            let e = self.part.entity[g0];
            let g1 = g0 + self.part.entity[g0..].partition_point(|&x| x == e);
            emitted += self.group(g0, g1, range, out);
            g0 = g1;
        }
        emitted
    }

    fn group(&mut self, g0: usize, g1: usize, range: Range, out: &mut impl Emit) -> u64 {
        let ts = &self.part.ts;
        for (s, f) in self.states.iter_mut().zip(&self.plan.features) {
            s.reset(g0, &self.part.keys, f.input);
        }
        let mut lefts = vec![g0; self.plan.windows.len()];
        let mut values = vec![0.0; self.plan.features.len()];
        let mut emitted = 0;
        let mut i = g0;
        // events before `start` are lookback only: skip straight to the first emitted one
        i += ts[g0..g1].partition_point(|&t| t < range.start);
        while i < g1 && ts[i] < range.end {
            let t = ts[i];
            let mut run_end = i + 1;
            while run_end < g1 && ts[run_end] == t {
                run_end += 1;
            }
            for (k, w) in self.plan.windows.iter().enumerate() {
                let l = &mut lefts[k];
                while ts[*l] < t - w {
                    *l += 1;
                }
            }
            self.evaluate(&lefts, i, &mut values);
            for j in i..run_end {
                out.event(j, t, &values);
            }
            emitted += (run_end - i) as u64;
            i = run_end;
        }
        if let Some(as_of) = range.as_of {
            emitted += self.as_of(g0, g1, as_of, range, out);
        }
        emitted
    }

    /// Values of every feature over `[lefts[window], r)`.
    fn evaluate(&mut self, lefts: &[usize], r: usize, values: &mut [f64]) {
        for (k, f) in self.plan.features.iter().enumerate() {
            let l = lefts[f.window];
            values[k] = match (&mut self.states[k], f.aggregation, f.input) {
                (_, Aggregation::Count, _) => {
                    if r > l {
                        (r - l) as f64
                    } else {
                        f.empty
                    }
                }
                (_, Aggregation::Sum | Aggregation::Mean, Input::Value(c)) => {
                    let prefix = self.prefixes[c].as_ref().expect("prefix planned");
                    let (sum, count) = prefix.range(l, r);
                    match (count, f.aggregation) {
                        (0, _) => f.empty,
                        (_, Aggregation::Sum) => sum,
                        _ => prefix.mean(l, r, count),
                    }
                }
                (
                    State::Extreme {
                        max,
                        deque,
                        l: sl,
                        r: sr,
                    },
                    _,
                    Input::Value(c),
                ) => {
                    let xs = &self.part.values[c];
                    for j in *sr..r {
                        let x = xs[j];
                        if x.is_nan() {
                            continue;
                        }
                        while let Some(&b) = deque.back() {
                            let dominated = if *max { xs[b] <= x } else { xs[b] >= x };
                            if !dominated {
                                break;
                            }
                            deque.pop_back();
                        }
                        deque.push_back(j);
                    }
                    while deque.front().is_some_and(|&j| j < l) {
                        deque.pop_front();
                    }
                    (*sl, *sr) = (l, r.max(*sr));
                    deque.front().map_or(f.empty, |&j| xs[j])
                }
                (State::Distinct { counts, l: sl, r: sr }, _, Input::Key(c)) => {
                    let col = &self.part.keys[c];
                    for j in *sr..r {
                        if let Some(key) = col.get(j) {
                            *counts.entry(key).or_insert(0) += 1;
                        }
                    }
                    for j in *sl..l {
                        if let Some(key) = col.get(j) {
                            let c = counts.get_mut(&key).expect("key counted when it entered");
                            *c -= 1;
                            if *c == 0 {
                                counts.remove(&key);
                            }
                        }
                    }
                    (*sl, *sr) = (l, r);
                    if counts.is_empty() {
                        f.empty
                    } else {
                        counts.len() as f64
                    }
                }
                _ => unreachable!("plan pairs every aggregation with its input"),
            };
        }
    }

    /// The as-of row of one entity: every window ends at `as_of`. Only for entities with an
    /// event in `[as_of - longest, as_of)`, and not when an emitted event row sits at `as_of`
    /// (its values would be the same).
    fn as_of(&mut self, g0: usize, g1: usize, as_of: i64, range: Range, out: &mut impl Emit) -> u64 {
        let ts = &self.part.ts[g0..g1];
        let r = ts.partition_point(|&t| t < as_of);
        let active = r > 0 && ts[r - 1] >= as_of - self.plan.longest();
        let has_event_row = r < ts.len() && ts[r] == as_of && range.start <= as_of && as_of < range.end;
        if !active || has_event_row {
            return 0;
        }
        let mut values = vec![0.0; self.plan.features.len()];
        for (k, f) in self.plan.features.iter().enumerate() {
            let l = g0 + ts.partition_point(|&t| t < as_of - self.plan.windows[f.window]);
            values[k] = window_value(f, self.part, self.prefixes.as_slice(), l, g0 + r);
        }
        out.as_of(g0, as_of, &values);
        1
    }
}

/// A feature's value over `[l, r)`, computed from scratch.
fn window_value(f: &FeaturePlan, part: &Partition, prefixes: &[Option<Prefix>], l: usize, r: usize) -> f64 {
    match (f.aggregation, f.input) {
        (Aggregation::Count, _) => {
            if r > l {
                (r - l) as f64
            } else {
                f.empty
            }
        }
        (Aggregation::Sum | Aggregation::Mean, Input::Value(c)) => {
            let prefix = prefixes[c].as_ref().expect("prefix planned");
            let (sum, count) = prefix.range(l, r);
            match (count, f.aggregation) {
                (0, _) => f.empty,
                (_, Aggregation::Sum) => sum,
                _ => prefix.mean(l, r, count),
            }
        }
        (Aggregation::Min | Aggregation::Max, Input::Value(c)) => {
            let xs = part.values[c][l..r].iter().copied().filter(|x| !x.is_nan());
            let best = if f.aggregation == Aggregation::Max {
                xs.reduce(f64::max)
            } else {
                xs.reduce(f64::min)
            };
            best.unwrap_or(f.empty)
        }
        (Aggregation::CountDistinct, Input::Key(c)) => {
            let mut seen = ahash::AHashSet::with_hasher(RandomState::with_seeds(1, 2, 3, 4));
            seen.extend((l..r).filter_map(|j| part.keys[c].get(j)));
            if seen.is_empty() { f.empty } else { seen.len() as f64 }
        }
        _ => unreachable!("plan pairs every aggregation with its input"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Rows(Vec<(bool, usize, i64, Vec<f64>)>);

    impl Emit for Rows {
        fn event(&mut self, row: usize, ts: i64, values: &[f64]) {
            self.0.push((false, row, ts, values.to_vec()));
        }
        fn as_of(&mut self, row: usize, ts: i64, values: &[f64]) {
            self.0.push((true, row, ts, values.to_vec()));
        }
    }

    /// The definition, written as plainly as possible: O(n^2).
    #[test]
    fn the_mean_of_equal_values_is_that_value_never_above_the_max() {
        for x in [7.26, 115.15, 28.35, 0.1, 1e-300, 3.4028235e38, 123_456.789] {
            for n in 1..40usize {
                let p = Prefix::new(&vec![x; n]);
                assert_eq!(p.mean(0, n, n as u32), x, "{n} x {x}");
            }
        }
        let values = [0.1, 0.2, 0.30000000000000004, 0.1];
        let p = Prefix::new(&values);
        let mean = p.mean(0, 4, 4);
        assert!((0.1..=0.30000000000000004).contains(&mean));
    }

    fn naive(plan: &Plan, part: &Partition, range: Range) -> Vec<(bool, i64, i64, Vec<f64>)> {
        let n = part.ts.len();
        let eval = |e: i64, t: i64| -> Vec<f64> {
            plan.features
                .iter()
                .map(|f| {
                    let w = plan.windows[f.window];
                    let rows: Vec<usize> = (0..n)
                        .filter(|&j| part.entity[j] == e && part.ts[j] >= t - w && part.ts[j] < t)
                        .collect();
                    match (f.aggregation, f.input) {
                        (Aggregation::Count, _) => {
                            if rows.is_empty() {
                                f.empty
                            } else {
                                rows.len() as f64
                            }
                        }
                        (agg, Input::Value(c)) => {
                            let xs: Vec<f64> = rows
                                .iter()
                                .map(|&j| part.values[c][j])
                                .filter(|x| !x.is_nan())
                                .collect();
                            if xs.is_empty() {
                                return f.empty;
                            }
                            let sum: f64 = xs.iter().sum();
                            match agg {
                                Aggregation::Sum => sum,
                                Aggregation::Mean => sum / xs.len() as f64,
                                Aggregation::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
                                Aggregation::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                                _ => unreachable!(),
                            }
                        }
                        (Aggregation::CountDistinct, Input::Key(c)) => {
                            let mut keys: Vec<i64> = rows.iter().filter_map(|&j| part.keys[c].get(j)).collect();
                            keys.sort_unstable();
                            keys.dedup();
                            if keys.is_empty() { f.empty } else { keys.len() as f64 }
                        }
                        _ => unreachable!(),
                    }
                })
                .collect()
        };
        let mut out = vec![];
        for j in 0..n {
            let t = part.ts[j];
            if range.start <= t && t < range.end {
                out.push((false, part.entity[j], t, eval(part.entity[j], t)));
            }
        }
        if let Some(a) = range.as_of {
            let mut entities: Vec<i64> = part.entity.clone();
            entities.dedup();
            for e in entities {
                let active = (0..n).any(|j| part.entity[j] == e && part.ts[j] < a && part.ts[j] >= a - plan.longest());
                let event_row =
                    (0..n).any(|j| part.entity[j] == e && part.ts[j] == a) && range.start <= a && a < range.end;
                if active && !event_row {
                    out.push((true, e, a, eval(e, a)));
                }
            }
        }
        out
    }

    fn plan() -> Plan {
        let f = |aggregation, input, window, empty| FeaturePlan {
            aggregation,
            input,
            window,
            empty,
        };
        Plan {
            windows: vec![10, 3, 25],
            features: vec![
                f(Aggregation::Count, Input::Events, 0, 0.0),
                f(Aggregation::Count, Input::Events, 1, -1.0),
                f(Aggregation::Sum, Input::Value(0), 0, 0.0),
                f(Aggregation::Mean, Input::Value(0), 2, 0.0),
                f(Aggregation::Mean, Input::Value(0), 1, 7.5),
                f(Aggregation::Max, Input::Value(0), 0, 0.0),
                f(Aggregation::Min, Input::Value(0), 2, 0.0),
                f(Aggregation::CountDistinct, Input::Key(0), 0, 0.0),
                f(Aggregation::CountDistinct, Input::Key(0), 2, 0.0),
            ],
        }
    }

    fn sorted(mut rows: Vec<(i64, i64, Option<f64>, Option<i64>)>) -> Partition {
        rows.sort_by_key(|r| (r.0, r.1));
        Partition {
            entity: rows.iter().map(|r| r.0).collect(),
            ts: rows.iter().map(|r| r.1).collect(),
            values: vec![rows.iter().map(|r| r.2.unwrap_or(f64::NAN)).collect()],
            keys: vec![KeyColumn {
                keys: rows.iter().map(|r| r.3.unwrap_or(0)).collect(),
                valid: Some(rows.iter().map(|r| r.3.is_some()).collect()),
            }],
        }
    }

    fn check(part: &Partition, range: Range) {
        let plan = plan();
        let mut got = Rows::default();
        let n = Kernel::new(&plan, part).run(range, &mut got);
        assert_eq!(n as usize, got.0.len());
        let mut got: Vec<(bool, i64, i64, Vec<f64>)> = got
            .0
            .into_iter()
            .map(|(a, row, t, v)| (a, part.entity[row], t, v))
            .collect();
        let mut want = naive(&plan, part, range);
        let key = |r: &(bool, i64, i64, Vec<f64>)| (r.0, r.1, r.2);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got.len(), want.len(), "row counts differ");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(key(g), key(w));
            for (k, (a, b)) in g.3.iter().zip(&w.3).enumerate() {
                let tol = 1e-9 * a.abs().max(b.abs()).max(1.0);
                assert!(
                    (a - b).abs() <= tol,
                    "feature {k} of {:?}: kernel {a}, naive {b}",
                    key(g)
                );
            }
        }
    }

    #[test]
    fn ties_boundaries_and_duplicates_by_hand() {
        // entity 1: events at 0, 10 (exactly one 10-window later), 10 (tie), 10 (duplicate), 13
        let part = sorted(vec![
            (1, 0, Some(5.0), Some(7)),
            (1, 10, Some(1.0), Some(8)),
            (1, 10, None, Some(7)),
            (1, 10, None, Some(7)),
            (1, 13, Some(2.0), None),
            (2, 4, None, None),
        ]);
        let plan = plan();
        let mut got = Rows::default();
        Kernel::new(&plan, &part).run(
            Range {
                start: 0,
                end: 100,
                as_of: None,
            },
            &mut got,
        );
        let at = |row: usize| got.0.iter().find(|r| r.1 == row).unwrap().3.clone();
        // the event at 0 sees nothing: every feature is its empty value
        assert_eq!(at(0), vec![0.0, -1.0, 0.0, 0.0, 7.5, 0.0, 0.0, 0.0, 0.0]);
        // the events at 10 see only the event at 0 (10 - 10 = 0 is inside), not each other
        for row in 1..4 {
            assert_eq!(at(row), vec![1.0, -1.0, 5.0, 5.0, 7.5, 5.0, 5.0, 1.0, 1.0]);
        }
        // the event at 13 sees the three at 10 in its 10-window (0 is out), only one non-null amount
        assert_eq!(at(4), vec![3.0, 3.0, 1.0, 3.0, 1.0, 1.0, 1.0, 2.0, 2.0]);
        // an entity whose only amount is null
        assert_eq!(at(5), vec![0.0, -1.0, 0.0, 0.0, 7.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn lookback_rows_are_not_emitted_and_as_of_rows_are() {
        let part = sorted(vec![
            (1, 0, Some(5.0), Some(1)),
            (1, 12, Some(3.0), Some(2)),
            (2, 1, Some(1.0), Some(1)),
        ]);
        let range = Range {
            start: 10,
            end: 20,
            as_of: Some(20),
        };
        check(&part, range);
        let plan = plan();
        let mut got = Rows::default();
        Kernel::new(&plan, &part).run(range, &mut got);
        let kinds: Vec<(bool, i64, i64)> = got.0.iter().map(|r| (r.0, part.entity[r.1], r.2)).collect();
        // entity 2's only event is 19 before as-of: inside the 25 window, so it gets an as-of row
        assert_eq!(kinds, vec![(false, 1, 12), (true, 1, 20), (true, 2, 20)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_the_naive_definition(
            rows in proptest::collection::vec(
                (0i64..4, 0i64..60, proptest::option::weighted(0.8, -50.0f64..50.0), proptest::option::weighted(0.9, 0i64..5)),
                0..80,
            ),
            start in 0i64..40,
            len in 1i64..40,
            as_of in proptest::option::of(0i64..70),
        ) {
            check(&sorted(rows), Range { start, end: start + len, as_of });
        }

        #[test]
        fn single_events_and_heavy_ties(t in 0i64..5, copies in 1usize..6, start in 0i64..6) {
            let rows = (0..copies).map(|k| (9, t, Some(k as f64), Some(k as i64 % 2))).collect();
            check(&sorted(rows), Range { start, end: start + 3, as_of: Some(start + 3) });
        }
    }
}
