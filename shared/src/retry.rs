//! One retry policy for every dependency a step calls: exponential backoff with full jitter
//! (a wait drawn uniformly from zero to the capped exponential), so that the pods of a
//! fanned-out run that failed together do not retry together.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// How often and how patiently a failing call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Calls in all, the first included (at least 1).
    pub attempts: u32,
    /// The longest first wait.
    pub first: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(attempts: u32, first: Duration, cap: Duration) -> Backoff {
        Backoff { attempts, first, cap }
    }

    /// The longest wait before retry `retry` (1 for the first retry): `first` doubled each
    /// retry, up to `cap`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doubled = self.first.saturating_mul(1u32 << retry.saturating_sub(1).min(30));
        doubled.min(self.cap)
    }

    /// The wait before retry `retry`: uniform in [0, ceiling].
    pub fn delay(&self, retry: u32) -> Duration {
        self.ceiling(retry).mul_f64(random_unit())
    }
}

/// A number in [0, 1) from the process's random hash keys (std's `RandomState` is seeded by
/// the OS and advances on every call): jitter, not cryptography.
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_are_jittered_below_it() {
        let b = Backoff::new(6, Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<u128> = (1..=6).map(|r| b.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        let waits: Vec<Duration> = (0..200).map(|_| b.delay(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(400)));
        // drawn, not fixed: 200 draws are not all the same, and spread over the range
        assert!(waits.iter().any(|w| *w < Duration::from_millis(100)));
        assert!(waits.iter().any(|w| *w > Duration::from_millis(300)));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }
}
