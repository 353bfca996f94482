//! Rate limit of the REST API per token: a token bucket per `Authorization: Bearer` token in
//! front of `/api/...`. Above the rate a request is answered 429 with `Retry-After` (whole
//! seconds) before its token is verified or a store is asked. Requests without a bearer token
//! are not counted here: they are refused 401 by the API itself.
//!
//! Buckets are per instance ([`caas_runtime::ratelimit`]): behind a balancer N gateway instances
//! allow up to N times the rate to one token. The socket.io events have their own limit per
//! socket (`realtime`).

use caas_runtime::clock::now_millis;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use caas_runtime::ratelimit::{rate_from_env, too_many_requests, KeyedLimiter, Verdict};
use caas_runtime::{ConfigError, Env};
use sha2::{Digest, Sha256};

/// Default requests per second one token may make (a dashboard's catch-up after a reconnect
/// makes a few dozen at once).
pub const DEFAULT_RATE_PER_TOKEN: f64 = 50.0;
/// Default requests one token may make at once.
pub const DEFAULT_BURST_PER_TOKEN: u32 = 100;

/// The settings of the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRateLimit {
    /// `CAAS_GATEWAY_API_RATE_PER_TOKEN`: REST requests per second per bearer token (default
    /// 50; 0 turns the limit off).
    pub rate_per_second: f64,
    /// `CAAS_GATEWAY_API_RATE_BURST`: requests one token may make at once (default 100).
    pub burst: u32,
}

impl ApiRateLimit {
    /// Read the settings; the error names the variable that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let (rate_per_second, burst) = rate_from_env(
            env,
            "CAAS_GATEWAY_API_RATE_PER_TOKEN",
            DEFAULT_RATE_PER_TOKEN,
            "CAAS_GATEWAY_API_RATE_BURST",
            DEFAULT_BURST_PER_TOKEN,
        )?;
        Ok(Self {
            rate_per_second,
            burst,
        })
    }
}

/// The buckets, keyed by the SHA-256 of the token (no token is kept in memory as such).
type TokenLimiter = KeyedLimiter<[u8; 32]>;

/// `router` with the limit in front of it (unchanged when the rate is 0).
pub fn apply(router: Router, settings: &ApiRateLimit) -> Router {
    match KeyedLimiter::new(settings.rate_per_second, settings.burst, now_millis) {
        Some(limiter) => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(limiter),
            limit,
        )),
        None => router,
    }
}

/// The token of a request to the REST API, if it has one.
fn api_token(request: &Request) -> Option<&str> {
    if !request.uri().path().starts_with("/api/") {
        return None;
    }
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

async fn limit(State(limiter): State<Arc<TokenLimiter>>, request: Request, next: Next) -> Response {
    let Some(token) = api_token(&request) else {
        return next.run(request).await;
    };
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    match limiter.check(key) {
        Verdict::Allow => next.run(request).await,
        Verdict::Refuse {
            retry_after_seconds,
        } => too_many_requests(
            retry_after_seconds,
            format!(
                "more than {} requests per second with this token; retry after {retry_after_seconds} s",
                limiter.rate_per_second()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(rate: &str, burst: &str) -> Router {
        let settings = ApiRateLimit::from_env(&Env::from_pairs([
            ("CAAS_GATEWAY_API_RATE_PER_TOKEN", rate),
            ("CAAS_GATEWAY_API_RATE_BURST", burst),
        ]))
        .unwrap();
        apply(
            Router::new()
                .route("/api/v1/me", get(|| async { "me" }))
                .route("/app.js", get(|| async { "js" })),
            &settings,
        )
    }

    async fn status(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Option<String>) {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_string());
        (response.status(), retry_after)
    }

    #[tokio::test]
    async fn a_token_above_its_rate_gets_429_with_retry_after_and_other_tokens_do_not() {
        let app = app("1", "2");
        assert_eq!(
            status(&app, "/api/v1/me", Some("a")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            status(&app, "/api/v1/me", Some("a")).await.0,
            StatusCode::OK
        );
        let (refused, retry_after) = status(&app, "/api/v1/me", Some("a")).await;
        assert_eq!(refused, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(
            status(&app, "/api/v1/me", Some("b")).await.0,
            StatusCode::OK
        );
        // Not the API, or no token: not counted here.
        for _ in 0..5 {
            assert_eq!(status(&app, "/app.js", Some("a")).await.0, StatusCode::OK);
            assert_eq!(status(&app, "/api/v1/me", None).await.0, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn zero_turns_the_limit_off() {
        let app = app("0", "1");
        for _ in 0..20 {
            assert_eq!(
                status(&app, "/api/v1/me", Some("a")).await.0,
                StatusCode::OK
            );
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CAAS_GATEWAY_API_RATE_PER_TOKEN", "fast"),
            ("CAAS_GATEWAY_API_RATE_PER_TOKEN", "-2"),
            ("CAAS_GATEWAY_API_RATE_BURST", "-1"),
        ] {
            let error = ApiRateLimit::from_env(&Env::from_pairs([(variable, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{variable}={value}: {error}");
        }
    }
}
