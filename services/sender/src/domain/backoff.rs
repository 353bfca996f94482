//! Exponential backoff with jitter.

use std::time::Duration;

/// Delays that double from `base` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` failures (1 = the first), scaled by `jitter` in `0..1` into
    /// the upper half of the exponential step ("equal jitter"): instances that failed together
    /// spread out, and no delay falls below half its step.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let step = self.base.saturating_mul(1u32 << exponent).min(self.max);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The longest total of `retries` delays.
    pub fn worst_case_total(&self, retries: u32) -> Duration {
        (1..=retries)
            .map(|failures| self.delay(failures, 1.0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_are_capped_and_jittered_into_the_upper_half() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        assert_eq!(backoff.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(backoff.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(backoff.delay(10, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff.delay(u32::MAX, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff.worst_case_total(3), Duration::from_millis(700));
    }
}
