//! Rate limit per source: a token bucket per peer IP address in front of the webhook routes.
//! Above the rate a request is answered 429 with `Retry-After` (whole seconds) before its body
//! is read or its signature checked, so a flood costs little; the providers retry a 429 like any
//! other non-2xx answer, so nothing is lost.
//!
//! The decision ([`Bucket::take`]) is pure: a function of the bucket and `now` (epoch ms). The
//! buckets live in this process, so each ingest instance limits on its own (N instances behind a
//! balancer allow N times the rate). Behind a reverse proxy every request has the proxy's
//! address: limit at the proxy there, or raise the rate.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::metrics::metrics;

/// Buckets kept before idle ones are dropped (a full bucket carries no state worth keeping).
const MAX_TRACKED_SOURCES: usize = 10_000;

/// One source's bucket.
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
    Refuse { retry_after_seconds: u64 },
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

/// The buckets of every source, with their settings.
#[derive(Debug)]
pub struct SourceLimiter {
    rate_per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    now_millis: fn() -> i64,
}

impl SourceLimiter {
    /// `rate_per_second` requests per second per source, `burst` at once; `None` when the
    /// rate is 0 (no limit).
    pub fn new(rate_per_second: f64, burst: u32, now_millis: fn() -> i64) -> Option<Arc<Self>> {
        (rate_per_second > 0.0).then(|| {
            Arc::new(Self {
                rate_per_second,
                burst: f64::from(burst.max(1)),
                buckets: Mutex::new(HashMap::new()),
                now_millis,
            })
        })
    }

    /// The verdict for one request from `source`.
    pub fn check(&self, source: IpAddr) -> Verdict {
        let now_ms = (self.now_millis)();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED_SOURCES && !buckets.contains_key(&source) {
            let (rate, burst) = (self.rate_per_second, self.burst);
            buckets.retain(|_, bucket| {
                let refilled = bucket.tokens + (now_ms - bucket.updated_ms) as f64 / 1000.0 * rate;
                refilled < burst
            });
        }
        buckets
            .entry(source)
            .or_insert_with(|| Bucket::full(self.burst, now_ms))
            .take(self.rate_per_second, self.burst, now_ms)
    }
}

/// The axum middleware: 429 + `Retry-After` above the rate of the peer's address.
pub async fn limit(
    State(limiter): State<Arc<SourceLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    match limiter.check(source) {
        Verdict::Allow => next.run(request).await,
        Verdict::Refuse {
            retry_after_seconds,
        } => {
            metrics()
                .requests
                .with_label_values(&[route_label(request.uri().path()), "rate_limited"])
                .inc();
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_seconds.to_string())],
                axum::Json(json!({
                    "error": "rate_limited",
                    "message": format!(
                        "more than {} requests per second from {source}; retry after {retry_after_seconds} s",
                        limiter.rate_per_second
                    ),
                })),
            )
                .into_response()
        }
    }
}

fn route_label(path: &str) -> &'static str {
    if path.starts_with("/webhooks/whatsapp") {
        "whatsapp"
    } else if path.starts_with("/webhooks/rcs") {
        "rcs"
    } else {
        "other"
    }
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
    fn sources_have_buckets_of_their_own_and_zero_means_no_limit() {
        fn zero() -> i64 {
            0
        }
        let limiter = SourceLimiter::new(1.0, 1, zero).unwrap();
        let first = IpAddr::from([10, 0, 0, 1]);
        let second = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(limiter.check(first), Verdict::Allow);
        assert!(matches!(limiter.check(first), Verdict::Refuse { .. }));
        assert_eq!(limiter.check(second), Verdict::Allow);
        assert!(SourceLimiter::new(0.0, 10, zero).is_none());
    }
}
