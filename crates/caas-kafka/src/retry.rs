//! Exponential backoff with jitter, as pure functions of the retry number and a random unit, so
//! the schedule is unit-tested without sleeping.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// An exponential schedule: `base`, `2 × base`, `4 × base`, ... capped at `max`, each delay then
/// jittered into its upper half ("equal jitter"), so retries of many consumers after a shared
/// outage spread out while every retry still waits at least half its nominal delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Nominal delay before the first retry.
    pub base: Duration,
    /// Cap of one nominal delay.
    pub max: Duration,
}

impl Backoff {
    /// The nominal (un-jittered) delay before retry number `retry` (1 for the first retry).
    pub fn nominal(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retry number `retry`, given `jitter_unit` in `[0, 1)`:
    /// `nominal / 2 + jitter_unit × nominal / 2`.
    pub fn delay(&self, retry: u32, jitter_unit: f64) -> Duration {
        let nominal = self.nominal(retry);
        let half = nominal / 2;
        half + half.mul_f64(jitter_unit.clamp(0.0, 1.0))
    }

    /// The longest total time `retries` retries can sleep (every jitter at its maximum).
    pub fn worst_case_total(&self, retries: u32) -> Duration {
        (1..=retries).map(|retry| self.nominal(retry)).sum()
    }
}

/// A uniformly distributed number in `[0, 1)`, good enough for jitter (not for secrets): std's
/// `RandomState` is seeded randomly per process and advanced per instance.
pub fn jitter_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    let bits = hasher.finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let nominal: Vec<u128> = (1..=6)
            .map(|retry| SCHEDULE.nominal(retry).as_millis())
            .collect();
        assert_eq!(nominal, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_nominal_delay() {
        assert_eq!(SCHEDULE.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(SCHEDULE.delay(3, 0.5), Duration::from_millis(300));
        assert!(SCHEDULE.delay(3, 0.999_999) < Duration::from_millis(400));
        assert_eq!(SCHEDULE.delay(3, 7.0), Duration::from_millis(400));
        assert_eq!(SCHEDULE.delay(3, -1.0), Duration::from_millis(200));
    }

    #[test]
    fn huge_retry_numbers_do_not_overflow() {
        assert_eq!(SCHEDULE.nominal(u32::MAX), Duration::from_secs(1));
        let huge = Backoff {
            base: Duration::from_secs(u64::MAX / 2),
            max: Duration::from_secs(u64::MAX),
        };
        assert_eq!(huge.nominal(40), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn the_worst_case_total_sums_the_nominal_delays() {
        assert_eq!(SCHEDULE.worst_case_total(0), Duration::ZERO);
        assert_eq!(SCHEDULE.worst_case_total(5), Duration::from_millis(2500));
    }

    #[test]
    fn jitter_units_are_in_range_and_vary() {
        let units: Vec<f64> = (0..64).map(|_| jitter_unit()).collect();
        assert!(units.iter().all(|unit| (0.0..1.0).contains(unit)));
        let first = units[0];
        assert!(units.iter().any(|unit| *unit != first));
    }
}
