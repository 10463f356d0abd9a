//! The window kernel: every feature of one view for events grouped by entity, each
//! entity's events sorted by time (entities themselves in any order).
//!
//! For an event at `t`, a window `w` covers the entity's events in `[t - w, t)`. Within one
//! entity the events are sorted by time, so a window is a range of positions `[l, r)`: `r`,
//! the first event at `t` (ties are excluded), and `l`, the first event at or after `t - w`.
//! The kernel works in two passes, column by column:
//!
//! 1. [`Bounds`]: one walk over the partition finds the rows to emit and their `r` and their
//!    `l` for each distinct window (one pointer per window, moving forward only; the
//!    windows' pointers move in step, so their loads overlap).
//! 2. One tight loop per feature over those bounds. Both `l` and `r` only grow along the
//!    rows, across entities too (entities are contiguous), so every aggregation keeps a
//!    sliding state that never goes back: compensated prefix sums (about 32 digits) for sum
//!    and mean, a queue of two stacks for min and max (suffix extremes and a running one, no
//!    branch on the values), and for distinct counts each key's previous and next position
//!    (a pass forward and one backward, a table or hash lookup per event in each). Each
//!    value goes to the caller as `emit(row, value)`, so it can be written straight where
//!    the row goes.
//!
//! As-of rows go through the same loops with their own bounds.

use ahash::AHashMap;
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
    #[cfg(test)]
    fn get(&self, i: usize) -> Option<i64> {
        match &self.valid {
            Some(v) if !v[i] => None,
            _ => Some(self.keys[i]),
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.valid = None;
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

impl Partition {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Empties every column, keeping their memory.
    pub fn clear(&mut self) {
        self.entity.clear();
        self.ts.clear();
        self.values.iter_mut().for_each(Vec::clear);
        self.keys.iter_mut().for_each(KeyColumn::clear);
    }
}

/// Which rows to emit: events with `start <= t < end`, and as-of rows.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub as_of: Option<i64>,
}

/// The two sets of rows the kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSet {
    /// One row per event with `start <= t < end`, in partition order.
    Events,
    /// One row per entity active before `as_of`, stamped `as_of`.
    AsOf,
}

// ---- compensated prefix sums -------------------------------------------------------

#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// Prefix sums of a column's non-null values as unevaluated pairs `hi + lo` (about 32
/// significant digits), and prefix counts of its non-null values: any window's sum is exact
/// to f64 rounding.
#[derive(Debug, Default)]
struct Prefix {
    hi: Vec<f64>,
    lo: Vec<f64>,
    /// Empty when the column has no nulls: then a window `[l, r)` counts `r - l`.
    count: Vec<u32>,
}

/// Values summed between two renormalisations of a [`Prefix`]'s pair.
const RENORMALISE: usize = 16;

impl Prefix {
    #[cfg(test)]
    fn new(values: &[f64]) -> Prefix {
        let mut p = Prefix::default();
        p.fill(values);
        p
    }

    /// Recomputes the sums for `values`, reusing the memory.
    ///
    /// `hi` is the running sum and `lo` collects each addition's exact rounding error, so
    /// the two chains of additions run side by side (a fully renormalised pair would make
    /// every step wait for the previous one's six dependent operations). Every
    /// [`RENORMALISE`] values the pair is renormalised (`lo` back below half an ulp of `hi`),
    /// so `lo` stays within about [`RENORMALISE`] ulps of the largest partial sum and its own
    /// rounding is some 2^-100 of that: a window's sum keeps about 30 digits of the prefix.
    fn fill(&mut self, values: &[f64]) {
        if values.iter().any(|x| x.is_nan()) {
            self.fill_with::<true>(values);
        } else {
            self.count.clear();
            self.fill_with::<false>(values);
        }
    }

    fn fill_with<const NULLS: bool>(&mut self, values: &[f64]) {
        let n = values.len();
        crate::load::to_overwrite(&mut self.hi, n + 1);
        crate::load::to_overwrite(&mut self.lo, n + 1);
        if NULLS {
            crate::load::to_overwrite(&mut self.count, n + 1);
            self.count[0] = 0;
        }
        let (mut hi, mut lo, mut count) = (0.0, 0.0, 0u32);
        self.hi[0] = hi;
        self.lo[0] = lo;
        let out = self.hi[1..]
            .chunks_mut(RENORMALISE)
            .zip(self.lo[1..].chunks_mut(RENORMALISE));
        for (b, ((his, los), xs)) in out.zip(values.chunks(RENORMALISE)).enumerate() {
            for (k, ((h, l), &x)) in his.iter_mut().zip(los.iter_mut()).zip(xs).enumerate() {
                let valid = !NULLS || !x.is_nan();
                // a null adds an exact zero
                let (s, e) = two_sum(hi, if valid { x } else { 0.0 });
                hi = s;
                lo += e;
                (*h, *l) = (hi, lo);
                if NULLS {
                    count += valid as u32;
                    self.count[1 + b * RENORMALISE + k] = count;
                }
            }
            (hi, lo) = two_sum(hi, lo);
        }
    }

    /// The number of non-null values in `[l, r)`.
    #[inline]
    fn count(&self, l: usize, r: usize) -> u32 {
        if self.count.is_empty() {
            (r - l) as u32
        } else {
            self.count[r] - self.count[l]
        }
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

/// `a * b` as an exact pair: one fused multiply-add where the CPU has it (x86-64-v3 builds),
/// else Dekker's product with Veltkamp's split.
#[inline]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if cfg!(target_feature = "fma") {
        return (p, a.mul_add(b, -p));
    }
    let split = |x: f64| {
        let c = 134_217_729.0 * x; // 2^27 + 1
        let hi = c - (c - x);
        (hi, x - hi)
    };
    let ((ah, al), (bh, bl)) = (split(a), split(b));
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

// ---- window bounds -----------------------------------------------------------------

/// The windows of some rows: `[l[k][i], r[i])` for window `k` of row `i`. Along the rows,
/// `r` and each `l[k]` never decrease.
#[derive(Debug, Default)]
struct Bounds {
    /// Position of each row in the partition: the event's, or for an as-of row the
    /// entity's first.
    at: Vec<u32>,
    r: Vec<u32>,
    l: Vec<Vec<u32>>,
}

impl Bounds {
    fn reset(&mut self, windows: usize) {
        self.at.clear();
        self.r.clear();
        self.l.resize_with(windows, Vec::new);
        self.l.iter_mut().for_each(Vec::clear);
    }

    fn push(&mut self, at: usize, lefts: &[usize], r: usize) {
        self.at.push(at as u32);
        self.r.push(r as u32);
        for (l, &x) in self.l.iter_mut().zip(lefts) {
            l.push(x as u32);
        }
    }
}

/// Finds the rows to emit and their bounds, entity by entity.
fn bounds(plan: &Plan, part: &Partition, range: Range, events: &mut Bounds, as_of_bounds: &mut Bounds) {
    let (ts, n) = (&part.ts, part.len());
    let windows = plan.windows.len();
    events.reset(windows);
    as_of_bounds.reset(windows);
    let mut lefts = vec![0usize; windows];
    let mut staged = [[0u32; STAGED]; LANES];
    let mut g0 = 0;
    while g0 < n {
        let e = part.entity[g0];
        // a scan, not a binary search over the rest of the partition: groups are short, and
        // the scan stays in the cache lines the walk reads next
        let g1 = part.entity[g0..].iter().position(|&x| x != e).map_or(n, |k| g0 + k);
        // events before `start` are lookback only: the emitted ones are [i0, i1)
        let i0 = g0 + ts[g0..g1].partition_point(|&t| t < range.start);
        let i1 = g0 + ts[g0..g1].partition_point(|&t| t < range.end);
        if i0 < i1 {
            // one tight loop per column of bounds, each extending by a known length
            events.at.extend(i0 as u32..i1 as u32);
            let mut run = i0; // the first event at this one's time: ties are excluded
            events.r.extend((i0..i1).map(|j| {
                if ts[j] != ts[run] {
                    run = j;
                }
                run as u32
            }));
            for (ls, ws) in events.l.chunks_mut(LANES).zip(plan.windows.chunks(LANES)) {
                lefts_by_lanes(ts, g0, i0..i1, ws, ls, &mut staged);
            }
        }
        // the as-of row: only for entities with an event in [as_of - longest, as_of), and
        // not when an emitted event row sits at as_of (its values would be the same)
        if let Some(as_of) = range.as_of {
            let group = &ts[g0..g1];
            let r = group.partition_point(|&t| t < as_of);
            let active = r > 0 && group[r - 1] >= as_of - plan.longest();
            let has_event_row = r < group.len() && group[r] == as_of && range.start <= as_of && as_of < range.end;
            if active && !has_event_row {
                for (l, w) in lefts.iter_mut().zip(&plan.windows) {
                    *l = g0 + group[..r].partition_point(|&t| t < as_of - w);
                }
                as_of_bounds.push(g0, &lefts, g0 + r);
            }
        }
        g0 = g1;
    }
}

/// Windows whose left ends move together in one loop.
const LANES: usize = 4;

/// Appends to `ls[k]` the left end of window `ws[k]` for each row in `rows` of the entity
/// starting at `g0`. The windows move in step, up to [`LANES`] of them, each left end by up
/// to [`STRIDE`] rows per step: it counts the events before the window's start among the next
/// `STRIDE` at once (independent loads and compares, where one row at a time would make
/// every move wait for the previous one's load), and it loops only when all of them are
/// (rarely), so the walks rarely mispredict and the lanes' loads overlap. The left ends are
/// staged [`STAGED`] rows at a time in `staged` and appended together: a push per row
/// and lane would load and store each vector's length every time.
fn lefts_by_lanes(
    ts: &[i64],
    g0: usize,
    rows: std::ops::Range<usize>,
    ws: &[i64],
    ls: &mut [Vec<u32>],
    staged: &mut [[u32; STAGED]; LANES],
) {
    let lanes = ws.len();
    debug_assert!(lanes <= LANES && lanes == ls.len());
    // unused lanes repeat the first window and are not kept
    let w: [i64; LANES] = std::array::from_fn(|k| ws[if k < lanes { k } else { 0 }]);
    // each left end starts where the first row's window does: events before it are lookback
    let first = &ts[g0..rows.start];
    let mut l: [usize; LANES] = std::array::from_fn(|k| g0 + first.partition_point(|&t| t < ts[rows.start] - w[k]));
    for out in ls.iter_mut() {
        out.reserve(rows.len());
    }
    let mut from_row = rows.start;
    while from_row < rows.end {
        let batch = (rows.end - from_row).min(STAGED);
        for (at, j) in (from_row..from_row + batch).enumerate() {
            for k in 0..LANES {
                // `from <= ts[j]`, and the entity's events up to `j` are sorted: the events
                // before `from` from `l[k]` on are a run that stops before `j` (whatever
                // follows `j`)
                let from = ts[j] - w[k];
                loop {
                    let Some(next) = ts[l[k]..].first_chunk::<STRIDE>() else {
                        while ts[l[k]] < from {
                            l[k] += 1;
                        }
                        break;
                    };
                    let mut before = 0u32;
                    for (bit, &t) in next.iter().enumerate() {
                        before |= ((t < from) as u32) << bit;
                    }
                    let passed = (!before).trailing_zeros() as usize;
                    l[k] += passed;
                    if passed < STRIDE {
                        break;
                    }
                }
                staged[k][at] = l[k] as u32;
            }
        }
        for (out, lane) in ls.iter_mut().zip(staged.iter()) {
            out.extend_from_slice(&lane[..batch]);
        }
        from_row += batch;
    }
}

/// Rows of left ends [`lefts_by_lanes`] stages before appending them (in the tests, a few,
/// so that the property tests' entities cross the boundary).
const STAGED: usize = if cfg!(test) { 3 } else { 256 };

/// Events a window's left end may pass in one step of [`lefts_by_lanes`].
const STRIDE: usize = 4;

// ---- one feature over many windows ---------------------------------------------------

/// Each key's previous and next position in a key column, so that a window `[l, r)` holds
/// as many distinct keys as valid positions `j` in it whose key does not occur in `[l, j)`.
/// Encoded for branch-free loops: `after_prev[j]` is one past the previous position (0 where
/// there is none, `NONE` for a null key, which is never counted), and `next[j]` is the next
/// position (`NONE` where there is none).
#[derive(Debug, Default)]
struct Occurrences {
    after_prev: Vec<u32>,
    next: Vec<u32>,
    /// Each key's last position so far: a table indexed by `key - min` when the keys span a
    /// range no wider than a few times the rows (interned strings always do), else a map.
    table: Vec<u32>,
    last: AHashMap<i64, u32>,
}

const NONE: u32 = u32::MAX;

impl Occurrences {
    /// One pass forward finds the previous positions and one backward the next: each writes
    /// its array in order and looks up only each key's last position so far (in a table
    /// small enough for the cache), where `next` written from the forward pass would take a
    /// write anywhere in the partition per event.
    fn fill(&mut self, col: &KeyColumn) {
        let n = col.keys.len();
        let valid = |j: usize| col.valid.as_ref().is_none_or(|v| v[j]);
        crate::load::to_overwrite(&mut self.after_prev, n);
        crate::load::to_overwrite(&mut self.next, n);
        let (lo, hi) = col
            .keys
            .iter()
            .enumerate()
            .filter(|&(j, _)| valid(j))
            .fold((i64::MAX, i64::MIN), |(lo, hi), (_, &k)| (lo.min(k), hi.max(k)));
        let span = (hi as i128 - lo as i128 + 1).max(0) as u128;
        let after = |p: u32| if p == NONE { 0 } else { p + 1 };
        if span <= 2 * n as u128 + 65_536 {
            let table = &mut self.table;
            table.clear();
            table.resize(span as usize, NONE);
            let mut seen = |j: usize, key: i64| std::mem::replace(&mut table[(key - lo) as usize], j as u32);
            pass(col, &mut self.after_prev, false, |j, key| after(seen(j, key)));
            table.fill(NONE);
            let mut seen = |j: usize, key: i64| std::mem::replace(&mut table[(key - lo) as usize], j as u32);
            pass(col, &mut self.next, true, &mut seen);
        } else {
            let map = &mut self.last;
            map.clear();
            pass(col, &mut self.after_prev, false, |j, key| {
                after(map.insert(key, j as u32).unwrap_or(NONE))
            });
            map.clear();
            pass(col, &mut self.next, true, |j, key| {
                map.insert(key, j as u32).unwrap_or(NONE)
            });
        }
    }
}

/// One pass over a key column, forward or `backward`: `out[j]` is `seen(j, key)` (which
/// looks up the key's position seen last and makes it `j`), `NONE` at a null key.
fn pass(col: &KeyColumn, out: &mut [u32], backward: bool, mut seen: impl FnMut(usize, i64) -> u32) {
    let mut one = |j: usize| {
        out[j] = match &col.valid {
            Some(valid) if !valid[j] => NONE,
            _ => seen(j, col.keys[j]),
        }
    };
    if backward {
        (0..col.keys.len()).rev().for_each(&mut one);
    } else {
        (0..col.keys.len()).for_each(&mut one);
    }
}

/// The sliding maximum (`MAX`) or minimum of `xs` over windows `[l, r)` whose ends never go
/// back, as `emit(row, value)`; NaN (null) is skipped, and of tied values the earliest is
/// given. A queue made of two stacks, without a branch on the values: positions `[b, next)`
/// taken in since the last flip are the back, summarised by their running extreme; the
/// front, `[.., b)`, has the extreme of each suffix in `suffix[j]` (over `[j, b)`). A window
/// is then `suffix[l]` with the back's extreme, until `l` reaches `b`: the back flips into
/// the front, its suffixes computed in one reverse pass. Each position flips once.
fn extreme<const MAX: bool>(
    xs: &[f64],
    ls: &[u32],
    rs: &[u32],
    empty: f64,
    suffix: &mut Vec<f64>,
    mut emit: impl FnMut(usize, f64),
) {
    // of an earlier `a` and a later `b`, the extreme, the earlier on a tie (-0.0 and 0.0
    // compare equal), and NaN is the extreme of nothing
    let pick = |a: f64, b: f64| {
        let later = if MAX { b > a } else { b < a };
        if later || a.is_nan() { b } else { a }
    };
    // the queue starts empty at the first window's left end (so rows can be taken a run at a
    // time), and the first row flips: every suffix read was written for this run
    crate::load::to_overwrite(suffix, xs.len() + 1);
    let first = ls.first().map_or(0, |&l| l as usize);
    let (mut b, mut next, mut back) = (first, first, f64::NAN);
    for (i, (&l, &r)) in ls.iter().zip(rs).enumerate() {
        let (l, r) = (l as usize, r as usize);
        while next < r {
            back = pick(back, xs[next]);
            next += 1;
        }
        if l >= b {
            // the window has left the front: the back becomes it
            let mut acc = f64::NAN;
            suffix[next] = acc;
            for j in (b..next).rev() {
                acc = pick(xs[j], acc);
                suffix[j] = acc;
            }
            (b, back) = (next, f64::NAN);
        }
        let v = pick(suffix[l], back);
        emit(i, if v.is_nan() { empty } else { v });
    }
}

/// One feature's value for rows `rows` of `bounds`, in order, as `emit(row - rows.start,
/// value)`. Every sliding state starts empty at the first row's left end and catches up, so
/// the rows can be taken a run at a time.
#[allow(clippy::too_many_arguments)]
fn feature(
    f: &FeaturePlan,
    part: &Partition,
    prefixes: &[Prefix],
    occurrences: &[Occurrences],
    bounds: &Bounds,
    rows: std::ops::Range<usize>,
    suffix: &mut Vec<f64>,
    mut emit: impl FnMut(usize, f64),
) {
    let ls = &bounds.l[f.window][rows.clone()];
    let rs = &bounds.r[rows];
    let pairs = ls.iter().zip(rs).map(|(&l, &r)| (l as usize, r as usize)).enumerate();
    match (f.aggregation, f.input) {
        (Aggregation::Count, _) => pairs.for_each(|(i, (l, r))| emit(i, if r > l { (r - l) as f64 } else { f.empty })),
        (Aggregation::Sum, Input::Value(c)) => {
            let p = &prefixes[c];
            pairs.for_each(|(i, (l, r))| {
                emit(
                    i,
                    if p.count(l, r) == 0 {
                        f.empty
                    } else {
                        let (hi, lo) = p.range_dd(l, r);
                        hi + lo
                    },
                )
            });
        }
        (Aggregation::Mean, Input::Value(c)) => {
            let p = &prefixes[c];
            pairs.for_each(|(i, (l, r))| {
                emit(
                    i,
                    match p.count(l, r) {
                        0 => f.empty,
                        n => p.mean(l, r, n),
                    },
                )
            });
        }
        (Aggregation::Max, Input::Value(c)) => extreme::<true>(&part.values[c], ls, rs, f.empty, suffix, emit),
        (Aggregation::Min, Input::Value(c)) => extreme::<false>(&part.values[c], ls, rs, f.empty, suffix, emit),
        (Aggregation::CountDistinct, Input::Key(c)) => {
            let occ = &occurrences[c];
            // distinct = #{j in [sl, sr) : after_prev[j] <= sl}, from an empty window at the
            // first row's left end
            let first = ls.first().map_or(0, |&l| l as usize);
            let (mut sl, mut sr, mut distinct) = (first, first, 0i64);
            pairs.for_each(|(i, (l, r))| {
                for j in sr..r {
                    distinct += (occ.after_prev[j] as usize <= sl) as i64;
                }
                sr = sr.max(r);
                for j in sl..l {
                    // j leaves (if valid); the next occurrence of its key, if inside, becomes first
                    distinct += ((occ.next[j] as usize) < sr) as i64 - (occ.after_prev[j] != NONE) as i64;
                }
                sl = sl.max(l);
                emit(i, if distinct == 0 { f.empty } else { distinct as f64 })
            });
        }
        _ => unreachable!("plan pairs every aggregation with its input"),
    }
}

// ---- the kernel ----------------------------------------------------------------------

/// Runs a view's plan over sorted partitions, one after the other, reusing its memory:
/// [`Kernel::prepare`] a partition, then take each [`Kernel::feature`] of its rows.
#[derive(Debug)]
pub struct Kernel<'a> {
    plan: &'a Plan,
    events: Bounds,
    as_of: Bounds,
    prefixes: Vec<Prefix>,
    occurrences: Vec<Occurrences>,
    /// The suffix extremes of min and max.
    suffix: Vec<f64>,
}

impl<'a> Kernel<'a> {
    pub fn new(plan: &'a Plan) -> Kernel<'a> {
        Kernel {
            plan,
            events: Bounds::default(),
            as_of: Bounds::default(),
            prefixes: Vec::new(),
            occurrences: Vec::new(),
            suffix: Vec::new(),
        }
    }

    /// Finds the partition's rows and their windows, and its inputs' prefix sums and key
    /// occurrences (each computed once, however many features read it).
    pub fn prepare(&mut self, part: &Partition, range: Range) {
        let plan = self.plan;
        bounds(plan, part, range, &mut self.events, &mut self.as_of);
        self.prefixes.resize_with(part.values.len(), Prefix::default);
        self.occurrences.resize_with(part.keys.len(), Occurrences::default);
        let mut prefixed = vec![false; part.values.len()];
        let mut occurred = vec![false; part.keys.len()];
        for f in &plan.features {
            match (f.aggregation, f.input) {
                (Aggregation::Sum | Aggregation::Mean, Input::Value(c)) if !prefixed[c] => {
                    self.prefixes[c].fill(&part.values[c]);
                    prefixed[c] = true;
                }
                (Aggregation::CountDistinct, Input::Key(c)) if !occurred[c] => {
                    self.occurrences[c].fill(&part.keys[c]);
                    occurred[c] = true;
                }
                _ => {}
            }
        }
    }

    /// The prepared rows of `set`: each one's position in the partition (the event's, or for
    /// an as-of row the entity's first).
    pub fn rows(&self, set: RowSet) -> &[u32] {
        match set {
            RowSet::Events => &self.events.at,
            RowSet::AsOf => &self.as_of.at,
        }
    }

    /// Feature `k` of prepared rows `rows` of `set` (indices into [`Kernel::rows`]), in
    /// order, as `emit(row - rows.start, value)`: a set's rows can be taken a run at a time.
    pub fn feature(
        &mut self,
        part: &Partition,
        k: usize,
        set: RowSet,
        rows: std::ops::Range<usize>,
        emit: impl FnMut(usize, f64),
    ) {
        let bounds = match set {
            RowSet::Events => &self.events,
            RowSet::AsOf => &self.as_of,
        };
        feature(
            &self.plan.features[k],
            part,
            &self.prefixes,
            &self.occurrences,
            bounds,
            rows,
            &mut self.suffix,
            emit,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The kernel's rows as (as-of?, position, time, values), events first.
    fn emitted(plan: &Plan, part: &Partition, range: Range) -> Vec<(bool, usize, i64, Vec<f64>)> {
        let mut kernel = Kernel::new(plan);
        kernel.prepare(part, range);
        let mut all = vec![];
        for set in [RowSet::Events, RowSet::AsOf] {
            let at = kernel.rows(set).to_vec();
            let mut features = vec![vec![f64::NAN; at.len()]; plan.features.len()];
            for (k, column) in features.iter_mut().enumerate() {
                kernel.feature(part, k, set, 0..at.len(), |i, v| column[i] = v);
                // taken a few rows at a time, the same values (NaN never comes out)
                let mut runs = vec![f64::NAN; at.len()];
                for from in (0..at.len()).step_by(3) {
                    let rows = from..(from + 3).min(at.len());
                    kernel.feature(part, k, set, rows, |i, v| runs[from + i] = v);
                }
                assert_eq!(&runs, column, "feature {k} of {set:?}, in runs of three rows");
            }
            let as_of = set == RowSet::AsOf;
            for (i, &a) in at.iter().enumerate() {
                let t = if as_of {
                    range.as_of.unwrap()
                } else {
                    part.ts[a as usize]
                };
                all.push((as_of, a as usize, t, features.iter().map(|c| c[i]).collect()));
            }
        }
        all
    }

    #[test]
    fn two_prod_is_exact() {
        // (1 + 2^-30)^2 = 1 + 2^-29 + 2^-60: the last term is the product's rounding error
        let x = 1.0 + 2f64.powi(-30);
        assert_eq!(two_prod(x, x), (1.0 + 2f64.powi(-29), 2f64.powi(-60)));
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
        check_plan(&plan(), part, range);
    }

    fn check_plan(plan: &Plan, part: &Partition, range: Range) {
        let mut got: Vec<(bool, i64, i64, Vec<f64>)> = emitted(plan, part, range)
            .into_iter()
            .map(|(a, row, t, v)| (a, part.entity[row], t, v))
            .collect();
        let mut want = naive(plan, part, range);
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
        let got = emitted(
            &plan,
            &part,
            Range {
                start: 0,
                end: 100,
                as_of: None,
            },
        );
        let at = |row: usize| got.iter().find(|r| r.1 == row).unwrap().3.clone();
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
        let got = emitted(&plan, &part, range);
        let kinds: Vec<(bool, i64, i64)> = got.iter().map(|r| (r.0, part.entity[r.1], r.2)).collect();
        // entity 2's only event is 19 before as-of: inside the 25 window, so it gets an as-of row
        assert_eq!(kinds, vec![(false, 1, 12), (true, 1, 20), (true, 2, 20)]);
    }

    /// Huge amounts earlier in the partition (another entity's, and this entity's first)
    /// must not blur the sums of small amounts after them. The exact sums are computed in
    /// i128 units of 2^-60, in which every amount here is an integer.
    #[test]
    fn window_sums_stay_exact_after_huge_values() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let huge = |r: u64| ((r % (1 << 50)) as f64 + 0.25) * if r.is_multiple_of(2) { 1.0 } else { -1.0 };
        let mut rows = vec![];
        for t in 0..2000 {
            rows.push((1, t, huge(next())));
        }
        for t in 0..3000 {
            let cents = (next() % 100_000) as f64 / 100.0;
            rows.push((2, t, if t < 50 { huge(next()) } else { cents }));
        }
        let exact = |x: f64| {
            let units = x * 2f64.powi(60);
            assert_eq!(units.fract(), 0.0);
            units as i128
        };
        let part = sorted(rows.iter().map(|&(e, t, x)| (e, t, Some(x), Some(0))).collect());
        let plan = plan();
        let got = emitted(
            &plan,
            &part,
            Range {
                start: 0,
                end: 3000,
                as_of: None,
            },
        );
        let mut worst: f64 = 0.0;
        for (_, row, t, values) in got {
            if part.entity[row] != 2 || t < 100 {
                continue;
            }
            // feature 2: the sum over 10; feature 3: the mean over 25
            for (k, w) in [(2, 10), (3, 25)] {
                let window: Vec<i128> = rows
                    .iter()
                    .filter(|r| r.0 == 2 && r.1 >= t - w && r.1 < t)
                    .map(|r| exact(r.2))
                    .collect();
                let mut want = window.iter().sum::<i128>() as f64 / 2f64.powi(60);
                if k == 3 {
                    want /= window.len() as f64;
                }
                worst = worst.max(((values[k] - want) / want).abs());
            }
        }
        assert!(worst <= 1e-12, "worst relative error {worst:e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        /// More windows than one loop moves at once (and windows of equal length).
        #[test]
        fn six_windows_match_the_naive_definition(
            rows in proptest::collection::vec(
                (0i64..3, 0i64..80, proptest::option::weighted(0.8, -50.0f64..50.0), proptest::option::weighted(0.9, 0i64..5)),
                0..80,
            ),
            start in 0i64..60,
        ) {
            let windows = vec![1, 40, 7, 3, 7, 20];
            let plan = Plan {
                features: (0..windows.len())
                    .flat_map(|w| {
                        [(Aggregation::Count, Input::Events), (Aggregation::Mean, Input::Value(0))]
                            .map(|(aggregation, input)| FeaturePlan { aggregation, input, window: w, empty: 0.0 })
                    })
                    .collect(),
                windows,
            };
            check_plan(&plan, &sorted(rows), Range { start, end: start + 20, as_of: Some(start + 20) });
        }
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
        fn entities_with_many_events_match_the_naive_definition(
            rows in proptest::collection::vec(
                (0i64..2, 0i64..200, proptest::option::weighted(0.8, -50.0f64..50.0), proptest::option::weighted(0.9, 0i64..12)),
                40..150,
            ),
            start in 0i64..150,
            len in 1i64..80,
            sparse in proptest::bool::ANY,
        ) {
            // sparse keys (an odd multiplier keeps them distinct) take the map, not the table
            let spread = |k: i64| if sparse { k.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64) } else { k };
            let rows = rows.into_iter().map(|(e, t, v, k)| (e, t, v, k.map(spread))).collect();
            check(&sorted(rows), Range { start, end: start + len, as_of: Some(start + len) });
        }

        #[test]
        fn single_events_and_heavy_ties(t in 0i64..5, copies in 1usize..6, start in 0i64..6) {
            let rows = (0..copies).map(|k| (9, t, Some(k as f64), Some(k as i64 % 2))).collect();
            check(&sorted(rows), Range { start, end: start + 3, as_of: Some(start + 3) });
        }
    }
}
