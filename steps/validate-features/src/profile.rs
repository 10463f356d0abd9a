//! A run's profile: per feature, the statistics the next run's drift rules compare with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scan::FeatureStats;

/// Floor of a bin's fraction in the PSI, so that an empty bin does not make it infinite.
const EPSILON: f64 = 1e-4;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// The format of this file.
    pub format: u32,
    pub spec_checksum: String,
    pub start: String,
    pub end: String,
    pub views: BTreeMap<String, ViewProfile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewProfile {
    pub rows: u64,
    pub newest_event: Option<String>,
    pub features: BTreeMap<String, FeatureProfile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureProfile {
    /// Non-null, finite values.
    pub count: u64,
    pub nulls: u64,
    pub nonfinite: u64,
    pub null_rate: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// The 0th, 1st, ... 100th percentiles (from a sample of at most 200,000 values).
    pub percentiles: Vec<f64>,
    /// The bins the next run's population stability index uses: the deciles (distinct values
    /// only) as inclusive upper bounds, and this run's fraction in each bin.
    pub psi_bins: PsiBins,
    /// 20 equal-width bins over [min, max], with counts.
    pub histogram: Histogram,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PsiBins {
    pub edges: Vec<f64>,
    pub fractions: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

/// Rounds for the file: stable bytes across platforms and runs.
fn r(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let s = format!("{x:.12e}");
    s.parse().unwrap_or(x)
}

impl FeatureProfile {
    pub fn from_stats(stats: &mut FeatureStats, rows: u64) -> FeatureProfile {
        stats.sample.sort_unstable_by(f64::total_cmp);
        let s = &stats.sample;
        let percentiles: Vec<f64> = if s.is_empty() {
            vec![]
        } else {
            (0..=100).map(|k| r(s[(k * (s.len() - 1) + 50) / 100])).collect()
        };
        let mut edges: Vec<f64> = percentiles.iter().skip(10).step_by(10).take(9).copied().collect();
        edges.dedup();
        let mut counts = vec![0u64; edges.len() + 1];
        for x in s {
            counts[edges.partition_point(|e| e < x)] += 1;
        }
        let fractions = counts.iter().map(|&c| r(c as f64 / s.len().max(1) as f64)).collect();
        let histogram = histogram(s, stats.count, stats.min, stats.max);
        FeatureProfile {
            count: stats.count,
            nulls: stats.nulls,
            nonfinite: stats.nonfinite.count,
            null_rate: r(stats.nulls as f64 / rows.max(1) as f64),
            min: (stats.count > 0).then(|| r(stats.min)),
            max: (stats.count > 0).then(|| r(stats.max)),
            mean: (stats.count > 0).then(|| r(stats.sum / stats.count as f64)),
            percentiles,
            psi_bins: PsiBins { edges, fractions },
            histogram,
        }
    }

    /// The population stability index of `current` bin counts against these bins.
    pub fn psi(&self, current: &[u64]) -> Option<f64> {
        let total: u64 = current.iter().sum();
        if total == 0 || self.psi_bins.fractions.is_empty() || current.len() != self.psi_bins.fractions.len() {
            return None;
        }
        let psi = current
            .iter()
            .zip(&self.psi_bins.fractions)
            .map(|(&c, &b)| {
                let c = (c as f64 / total as f64).max(EPSILON);
                let b = b.max(EPSILON);
                (c - b) * (c / b).ln()
            })
            .sum::<f64>();
        Some(r(psi))
    }

    /// The fraction of values in each bin `[edges[i], edges[i+1])`, read off the percentiles;
    /// the first bin takes everything below it and the last everything above.
    pub fn fractions_in(&self, edges: &[f64]) -> Vec<f64> {
        let p = &self.percentiles;
        if p.len() < 2 || edges.len() < 2 {
            return vec![0.0; edges.len().saturating_sub(1)];
        }
        // the fraction of values strictly below x, piecewise linear between percentiles
        let below = |x: f64| -> f64 {
            let k = p.partition_point(|v| *v < x);
            if k == 0 {
                return 0.0;
            }
            if k == p.len() {
                return 1.0;
            }
            let (lo, hi) = (p[k - 1], p[k]);
            let within = if hi > lo { (x - lo) / (hi - lo) } else { 0.0 };
            ((k - 1) as f64 + within) / (p.len() - 1) as f64
        };
        let n = edges.len() - 1;
        (0..n)
            .map(|i| {
                let a = if i == 0 { 0.0 } else { below(edges[i]) };
                let b = if i + 1 == n { 1.0 } else { below(edges[i + 1]) };
                (b - a).max(0.0)
            })
            .collect()
    }
}

/// `bins` equal-width bins over `[lo, hi]`, counts scaled from the sample to `count`.
fn histogram(sample: &[f64], count: u64, lo: f64, hi: f64) -> Histogram {
    const BINS: usize = 20;
    if sample.is_empty() || !lo.is_finite() || !hi.is_finite() {
        return Histogram::default();
    }
    let width = if hi > lo { (hi - lo) / BINS as f64 } else { 1.0 };
    let edges: Vec<f64> = (0..=BINS).map(|i| r(lo + width * i as f64)).collect();
    let mut counts = [0u64; BINS];
    for x in sample {
        let i = (((x - lo) / width) as usize).min(BINS - 1);
        counts[i] += 1;
    }
    let scale = count as f64 / sample.len() as f64;
    Histogram {
        edges,
        counts: counts.iter().map(|&c| (c as f64 * scale).round() as u64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_of(values: &[f64]) -> FeatureProfile {
        let mut s = FeatureStats::for_test(values);
        FeatureProfile::from_stats(&mut s, values.len() as u64)
    }

    #[test]
    fn the_same_distribution_has_no_drift_and_a_shift_has_a_lot() {
        let base: Vec<f64> = (0..10_000).map(|i| (i % 1000) as f64).collect();
        let p = profile_of(&base);
        let count = |vals: &[f64]| {
            let mut c = vec![0u64; p.psi_bins.edges.len() + 1];
            for x in vals {
                c[p.psi_bins.edges.partition_point(|e| e < x)] += 1;
            }
            c
        };
        assert!(p.psi(&count(&base)).unwrap() < 0.01);
        let shifted: Vec<f64> = base.iter().map(|x| x + 300.0).collect();
        assert!(p.psi(&count(&shifted)).unwrap() > 0.25);
    }

    #[test]
    fn ties_collapse_the_bins() {
        let vals: Vec<f64> = (0..1000).map(|i| if i < 700 { 0.0 } else { 1.0 }).collect();
        let p = profile_of(&vals);
        assert_eq!(p.psi_bins.edges, vec![0.0, 1.0]);
        assert_eq!(p.psi_bins.fractions, vec![0.7, 0.3, 0.0]);
    }
}
