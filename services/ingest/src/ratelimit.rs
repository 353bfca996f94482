//! Rate limit per source: a token bucket per peer IP address in front of the webhook routes.
//! Above the rate a request is answered 429 with `Retry-After` (whole seconds) before its body
//! is read or its signature checked, so a flood costs little; the providers retry a 429 like any
//! other non-2xx answer, so nothing is lost.
//!
//! The buckets ([`caas_runtime::ratelimit`]) live in this process, so each ingest instance
//! limits on its own. Behind a reverse proxy every request has the proxy's address: limit at the
//! proxy there, or raise the rate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use caas_runtime::ratelimit::{too_many_requests, KeyedLimiter, Verdict};

use crate::metrics::metrics;

/// The buckets of every source address.
pub type SourceLimiter = KeyedLimiter<IpAddr>;

/// The limiter for the configured rate; `None` when the rate is 0 (no limit).
pub fn source_limiter(
    rate_per_second: f64,
    burst: u32,
    now_millis: fn() -> i64,
) -> Option<Arc<SourceLimiter>> {
    KeyedLimiter::new(rate_per_second, burst, now_millis).map(Arc::new)
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
            too_many_requests(
                retry_after_seconds,
                format!(
                    "more than {} requests per second from {source}; retry after {retry_after_seconds} s",
                    limiter.rate_per_second()
                ),
            )
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
