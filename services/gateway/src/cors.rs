//! The browser-origin policy at the edge (`CAAS_GATEWAY_ALLOWED_ORIGINS`; the rules are in
//! [`crate::domain::origin`]):
//!
//! - REST (and every other HTTP route): CORS through tower-http. A preflight from an allowed
//!   origin is answered with the grant; one from any other origin gets no
//!   `Access-Control-Allow-Origin`, so the browser does not send the request.
//! - socket.io: browsers apply no CORS to WebSocket upgrades, so a handshake on `/socket.io`
//!   (HTTP long-polling or WebSocket) whose `Origin` is not allowed is answered 403 here,
//!   before socketioxide sees it. Polling from an allowed origin gets CORS headers like REST.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::domain::origin::AllowedOrigins;

/// Where socketioxide serves engine.io (its default `req_path`). Matched as a prefix, like
/// engineioxide does, so no request reaches socket.io around the check.
pub const SOCKET_IO_PATH: &str = "/socket.io";

/// Whether a request goes to the socket.io endpoint (the origin guard and
/// [`crate::detach`] act on these only).
pub fn is_socket_io(uri: &axum::http::Uri) -> bool {
    uri.path().starts_with(SOCKET_IO_PATH)
}

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// `router` behind the origin policy: the socket.io check inside, CORS outermost (so polling
/// responses to allowed origins carry CORS headers too).
pub fn apply(router: Router, allowed: &AllowedOrigins) -> Router {
    let allowed = Arc::new(allowed.clone());
    router
        .layer(axum::middleware::from_fn_with_state(
            allowed.clone(),
            guard_socket_io,
        ))
        .layer(cors_layer(allowed))
}

/// CORS for every route. The API authenticates with a bearer token, not cookies, so no
/// credentials are granted; methods and headers are mirrored from the preflight because the
/// origin is what is checked.
fn cors_layer(allowed: Arc<AllowedOrigins>) -> CorsLayer {
    let allow_origin = match allowed.as_ref() {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(_) => {
            AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
                // A header that is not visible ASCII is no origin at all: refused, not ignored.
                let origin = origin.to_str().unwrap_or_default();
                let host = request_host(&parts.headers, &parts.uri);
                allowed.allows(Some(origin), host.as_deref())
            })
        }
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        // Clients read these: the wait after a 429 and an export's file name.
        .expose_headers([header::RETRY_AFTER, header::CONTENT_DISPOSITION])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Refuse a socket.io request whose `Origin` is not allowed.
async fn guard_socket_io(
    State(allowed): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_socket_io(request.uri()) {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|value| value.to_str().unwrap_or_default().to_string());
    let host = request_host(request.headers(), request.uri());
    if allowed.allows(origin.as_deref(), host.as_deref()) {
        return next.run(request).await;
    }
    let origin = origin.unwrap_or_default();
    tracing::info!(
        origin = %origin,
        "refused a socket.io handshake from an origin that is not allowed"
    );
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "error": refusal(&origin) })),
    )
        .into_response()
}

/// The 403 body: what is wrong and what to do.
pub fn refusal(origin: &str) -> String {
    format!(
        "origin {origin:?} may not open a socket.io connection to this gateway; to allow it, \
         add it to CAAS_GATEWAY_ALLOWED_ORIGINS (comma-separated scheme://host[:port], or * for \
         any origin) and restart the gateway"
    )
}

/// The host the request was sent to: `Host` (HTTP/1.1) or the URI's authority (HTTP/2).
fn request_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|authority| authority.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn app(setting: &str) -> Router {
        let router = Router::new()
            .route("/api/v1/ping", get(|| async { "pong" }))
            .route("/socket.io/", get(|| async { "handshake" }));
        apply(router, &AllowedOrigins::parse(setting).unwrap())
    }

    async fn send(app: Router, request: Request<Body>) -> Response {
        app.oneshot(request).await.unwrap()
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::builder()
            .method("OPTIONS")
            .uri("/api/v1/ping")
            .header(header::HOST, "gateway.internal:3000")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .unwrap()
    }

    fn handshake(origin: Option<&str>) -> Request<Body> {
        let mut builder = Request::builder()
            .uri("/socket.io/?EIO=4&transport=polling")
            .header(header::HOST, "gateway.internal:3000");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_listed_origin_gets_the_preflight_grant() {
        let response = send(
            app("https://ops.example.com"),
            preflight("https://ops.example.com"),
        )
        .await;
        assert!(response.status().is_success());
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://ops.example.com"
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization"
        );
        assert!(headers
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());
    }

    #[tokio::test]
    async fn another_origin_gets_no_grant() {
        let response = send(
            app("https://ops.example.com"),
            preflight("https://evil.example"),
        )
        .await;
        assert!(response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }

    #[tokio::test]
    async fn the_wildcard_grants_any_origin() {
        let response = send(app("*"), preflight("https://anywhere.example")).await;
        assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[tokio::test]
    async fn a_socket_io_handshake_from_another_origin_is_refused_with_the_fix() {
        let response = send(app(""), handshake(Some("https://evil.example"))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("https://evil.example"), "{error}");
        assert!(error.contains("CAAS_GATEWAY_ALLOWED_ORIGINS"), "{error}");
    }

    #[tokio::test]
    async fn socket_io_handshakes_without_origin_same_origin_or_listed_pass() {
        for (setting, origin) in [
            ("", None),
            ("", Some("http://gateway.internal:3000")),
            ("https://ops.example.com", Some("https://ops.example.com")),
            ("*", Some("https://anywhere.example")),
        ] {
            let response = send(app(setting), handshake(origin)).await;
            assert_eq!(response.status(), StatusCode::OK, "{setting:?} {origin:?}");
        }
        // An allowed cross-origin poll can read its answer.
        let response = send(
            app("https://ops.example.com"),
            handshake(Some("https://ops.example.com")),
        )
        .await;
        assert_eq!(
            response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://ops.example.com"
        );
    }

    #[tokio::test]
    async fn an_origin_header_that_is_not_text_is_refused() {
        let mut request = handshake(None);
        request.headers_mut().insert(
            header::ORIGIN,
            HeaderValue::from_bytes(b"https://\xffevil.example").unwrap(),
        );
        let response = send(app(""), request).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn other_routes_are_not_refused_by_the_socket_io_check() {
        let request = Request::builder()
            .uri("/api/v1/ping")
            .header(header::HOST, "gateway.internal:3000")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty())
            .unwrap();
        let response = send(app(""), request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }
}
