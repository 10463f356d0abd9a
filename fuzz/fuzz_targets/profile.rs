//! The profile reader: any bytes as the baseline profile JSON, through
//! `validate_features::parse_baseline` (what `--baseline` runs on the bytes it reads), then
//! the drift arithmetic a run does with each feature's baseline (PSI, histogram fractions).
#![no_main]

use featurekit::Kind;
use libfuzzer_sys::fuzz_target;
use validate_features::profile::FeatureProfile;

fuzz_target!(|data: &[u8]| {
    let profile = match validate_features::parse_baseline("profile.json", data) {
        Ok(profile) => profile,
        Err(e) => {
            assert_eq!(e.kind(), Kind::Data, "{e}");
            return;
        }
    };
    for view in profile.views.values() {
        for feature in view.features.values() {
            compare(feature);
        }
    }
});

/// A run's use of a baseline feature: counts in its PSI bins, its fractions over bins that
/// span its 1st to 99th percentiles.
fn compare(baseline: &FeatureProfile) {
    let counts = vec![1; baseline.psi_bins.edges.len() + 1];
    let _ = baseline.psi(&counts);
    let pct = |k: usize| baseline.percentiles.get(k).copied().unwrap_or(0.0);
    let (lo, hi) = (pct(1), pct(99));
    if lo.is_finite() && hi.is_finite() {
        let width = if hi > lo { (hi - lo) / 24.0 } else { 1.0 };
        let bins: Vec<f64> = (0..=24).map(|i| lo + width * i as f64).collect();
        let fractions = baseline.fractions_in(&bins);
        assert_eq!(fractions.len(), bins.len() - 1);
    }
}
