//! Token buckets keyed by whatever a service limits on (a peer address, an API token): the
//! pure decision ([`Bucket::take`], a function of the bucket and `now`) and a bounded map of
//! buckets ([`KeyedLimiter`]). The HTTP answers (429 with `Retry-After`) live with each service.
//!
//! The buckets live in one process: N instances behind a balancer allow N times the rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{ConfigError, Env};

/// Buckets kept before full ones are dropped (a full bucket carries no state worth keeping).
const MAX_TRACKED_KEYS: usize = 10_000;

/// One key's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens left (one per request), at most the burst.
    pub tokens: f64,
    /// When `tokens` was computed, epoch milliseconds.
    pub updated_ms: i64,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Allow,
    /// Refuse it; a token is back after this many whole seconds (at least 1).
    Refuse {
        /// The `Retry-After` value.
        retry_after_seconds: u64,
    },
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: f64, now_ms: i64) -> Self {
        Self {
            tokens: burst,
            updated_ms: now_ms,
        }
    }

    /// Refill for the time since the last request, then take one token if there is one.
    pub fn take(&mut self, rate_per_second: f64, burst: f64, now_ms: i64) -> Verdict {
        let elapsed_seconds = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_seconds * rate_per_second).min(burst);
        self.updated_ms = now_ms.max(self.updated_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let missing_seconds = (1.0 - self.tokens) / rate_per_second;
        Verdict::Refuse {
            retry_after_seconds: (missing_seconds.ceil() as u64).max(1),
        }
    }
}

/// The buckets of every key, with their settings.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate_per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
    now_millis: fn() -> i64,
}

impl<K: Hash + Eq> KeyedLimiter<K> {
    /// `rate_per_second` requests per second per key, `burst` at once; `None` when the rate is
    /// 0 (no limit).
    pub fn new(rate_per_second: f64, burst: u32, now_millis: fn() -> i64) -> Option<Self> {
        (rate_per_second > 0.0).then(|| Self {
            rate_per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
            now_millis,
        })
    }

    /// The rate per key, requests per second.
    pub fn rate_per_second(&self) -> f64 {
        self.rate_per_second
    }

    /// The verdict for one request of `key`.
    pub fn check(&self, key: K) -> Verdict {
        let now_ms = (self.now_millis)();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED_KEYS && !buckets.contains_key(&key) {
            let (rate, burst) = (self.rate_per_second, self.burst);
            buckets.retain(|_, bucket| {
                let refilled = bucket.tokens + (now_ms - bucket.updated_ms) as f64 / 1000.0 * rate;
                refilled < burst
            });
        }
        buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(self.burst, now_ms))
            .take(self.rate_per_second, self.burst, now_ms)
    }
}

/// A rate and burst read from two variables; the error names the variable that is wrong. A rate
/// of 0 means no limit.
pub fn rate_from_env(
    env: &Env,
    rate_variable: &str,
    default_rate: f64,
    burst_variable: &str,
    default_burst: u32,
) -> Result<(f64, u32), ConfigError> {
    let expected = "requests per second, 0 or more (0 for no limit)";
    let rate = env.parse::<f64>(rate_variable, default_rate, expected)?;
    if !(rate.is_finite() && rate >= 0.0) {
        return Err(ConfigError::Invalid {
            variable: rate_variable.to_string(),
            value: rate.to_string(),
            reason: "not a usable rate".to_string(),
            expected: expected.to_string(),
        });
    }
    let burst = env.parse::<u32>(burst_variable, default_burst, "a whole number of requests")?;
    Ok((rate, burst))
}

/// The answer to a refused request: 429, `Retry-After`, and a JSON error saying why.
pub fn too_many_requests(retry_after_seconds: u64, message: String) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_seconds.to_string())],
        axum::Json(serde_json::json!({ "error": "rate_limited", "message": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_are_refused_until_tokens_come_back() {
        let mut bucket = Bucket::full(3.0, 0);
        for _ in 0..3 {
            assert_eq!(bucket.take(2.0, 3.0, 0), Verdict::Allow);
        }
        assert_eq!(
            bucket.take(2.0, 3.0, 0),
            Verdict::Refuse {
                retry_after_seconds: 1
            }
        );
        // Half a second at 2/s brings one token back.
        assert_eq!(bucket.take(2.0, 3.0, 500), Verdict::Allow);
        assert!(matches!(bucket.take(2.0, 3.0, 500), Verdict::Refuse { .. }));
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let mut bucket = Bucket::full(1.0, 0);
        assert_eq!(bucket.take(0.1, 1.0, 0), Verdict::Allow);
        assert_eq!(
            bucket.take(0.1, 1.0, 0),
            Verdict::Refuse {
                retry_after_seconds: 10
            }
        );
    }

    #[test]
    fn a_bucket_never_holds_more_than_the_burst_and_a_clock_going_back_refills_nothing() {
        let mut bucket = Bucket::full(2.0, 0);
        assert_eq!(bucket.take(100.0, 2.0, 60_000), Verdict::Allow);
        assert!(bucket.tokens <= 1.0 + f64::EPSILON);
        let before = bucket.tokens;
        let _ = bucket.take(100.0, 2.0, 1_000);
        assert!(bucket.tokens < before);
    }

    #[test]
    fn keys_have_buckets_of_their_own_and_zero_means_no_limit() {
        fn zero() -> i64 {
            0
        }
        let limiter = KeyedLimiter::new(1.0, 1, zero).unwrap();
        assert_eq!(limiter.check("first"), Verdict::Allow);
        assert!(matches!(limiter.check("first"), Verdict::Refuse { .. }));
        assert_eq!(limiter.check("second"), Verdict::Allow);
        assert!(KeyedLimiter::<&str>::new(0.0, 10, zero).is_none());
    }
}
