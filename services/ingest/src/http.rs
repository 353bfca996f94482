//! The HTTP edge: axum handlers that authenticate over the exact bytes received, parse with the
//! pure core, deliver through the [`Pipeline`] and answer.
//!
//! | answer | when |
//! |---|---|
//! | 200 `{"status":"ok",...}` | every event is on Kafka (or nothing was to be produced) |
//! | 200 text | a handshake with our token (WhatsApp `GET`, RBM `clientToken`) |
//! | 400 JSON | the body is not JSON, or not of the provider's shape |
//! | 401 JSON | signature missing, malformed or wrong |
//! | 403 JSON | a handshake with a wrong token |
//! | 413 JSON | body above the limit (3 MiB by default), or an event larger than Kafka accepts |
//! | 429 JSON | more requests from one source than `CAAS_INGEST_RATE_PER_SOURCE` allows (`Retry-After`) |
//! | 503 JSON | Kafka or the registry could not take the events in time, a concurrent delivery of the same webhook is still running, or the secret is not configured: the provider retries |

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use caas_kafka::TraceParent;
use caas_runtime::Secret;
use serde_json::json;

use crate::dedupe::DedupeStore;
use crate::error::ParseError;
use crate::events::{Batch, Stamp};
use crate::metrics::metrics;
use crate::pipeline::{DeliverError, EventSink, Pipeline, PublishError};
use crate::signature::{self, SignatureError, RBM_SIGNATURE_HEADER, WHATSAPP_SIGNATURE_HEADER};
use crate::tenants::Tenants;
use crate::{rcs, whatsapp};
use caas_kafka::ProduceError;

/// The OpenAPI document of these endpoints, served at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

const WHATSAPP: &str = "whatsapp";
const RCS: &str = "rcs";

/// The provider credentials the edge checks.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Key of `X-Hub-Signature-256`; empty = not configured.
    pub whatsapp_app_secret: Secret,
    /// Token of Meta's subscribe handshake; empty = not configured.
    pub whatsapp_verify_token: Secret,
    /// RBM client token; empty = not configured.
    pub rbm_client_token: Secret,
}

/// Everything a handler needs.
pub struct AppState<S, D> {
    /// Delivery to Kafka with de-duplication.
    pub pipeline: Pipeline<S, D>,
    /// Provider endpoint → tenant.
    pub tenants: Tenants,
    /// Secrets and tokens.
    pub credentials: Credentials,
    /// The clock, epoch milliseconds (a parameter so tests can fix it).
    pub now_millis: fn() -> i64,
}

/// The webhook routes (`/webhooks/whatsapp`, `/webhooks/rcs`, `/openapi.yaml`); merge them with
/// the ops router.
pub fn router<S: EventSink, D: DedupeStore>(
    state: Arc<AppState<S, D>>,
    max_body_bytes: usize,
) -> Router {
    Router::new()
        .route(
            "/webhooks/whatsapp",
            get(whatsapp_handshake::<S, D>).post(whatsapp_webhook::<S, D>),
        )
        .route("/webhooks/rcs", axum::routing::post(rcs_webhook::<S, D>))
        .route("/openapi.yaml", get(openapi))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// A JSON error answer: `{"error": "<code>", "message": "<what is wrong>"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The bounded metric outcome of this answer.
    fn outcome(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::SERVICE_UNAVAILABLE if self.code == "not_configured" => "not_configured",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<ParseError> for ApiError {
    fn from(error: ParseError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than this endpoint accepts (3 MiB by default)",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("cannot read the body: {rejection}"),
        )
    }
}

fn signature_error(provider: &'static str, error: SignatureError) -> ApiError {
    metrics()
        .signature_failures
        .with_label_values(&[provider, error.label()])
        .inc();
    tracing::warn!(
        provider,
        reason = error.label(),
        "webhook signature refused"
    );
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        error.to_string(),
    )
}

fn not_configured(variable: &str) -> ApiError {
    tracing::error!(variable, "webhook refused: the secret is not configured");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
        format!("this endpoint is not configured yet ({variable} is unset); retry later"),
    )
}

fn deliver_error(provider: &'static str, error: DeliverError) -> ApiError {
    // A record Kafka refuses for its size is refused again on every retry: answering 503 would
    // make the provider retry it for days. It is bad input (a field far above any real size).
    if is_too_large_for_kafka(&error) {
        tracing::warn!(provider, error = %error, "webhook refused: an event is larger than kafka accepts");
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "event_too_large",
            format!("an event of this webhook is larger than the broker accepts; nothing was stored: {error}"),
        );
    }
    tracing::warn!(provider, error = %error, "webhook not stored; answering 503 so the provider retries");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        error.to_string(),
    )
}

/// Whether the delivery failed because Kafka refused a record for its size.
fn is_too_large_for_kafka(error: &DeliverError) -> bool {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let DeliverError::Publish { first, .. } = error else {
        return false;
    };
    match first {
        PublishError::TooLarge { .. } => true,
        PublishError::Produce(ProduceError::Rejected { source, .. }) => matches!(
            source,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize
            )
        ),
        _ => false,
    }
}

/// The request's trace context continued, or a new trace.
fn trace_parent(headers: &HeaderMap) -> TraceParent {
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| TraceParent::parse(value).ok())
        .map(|parent| parent.child())
        .unwrap_or_else(TraceParent::new_root)
}

/// Count and answer.
fn finish(provider: &'static str, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            metrics()
                .requests
                .with_label_values(&[provider, error.outcome()])
                .inc();
            error.into_response()
        }
    }
}

fn count(provider: &'static str, outcome: &'static str) {
    metrics()
        .requests
        .with_label_values(&[provider, outcome])
        .inc();
}

fn log_skipped(provider: &'static str, batch: &Batch) {
    for skipped in &batch.skipped {
        metrics()
            .skipped
            .with_label_values(&[provider, skipped.reason])
            .inc();
        tracing::warn!(provider, reason = skipped.reason, detail = %skipped.detail, "webhook part not produced");
    }
}

/// Deliver a parsed batch and build the 200 answer.
async fn deliver<S: EventSink, D: DedupeStore>(
    state: &AppState<S, D>,
    provider: &'static str,
    batch: Batch,
    trace: &TraceParent,
) -> Result<Response, ApiError> {
    log_skipped(provider, &batch);
    let delivered = state
        .pipeline
        .deliver(provider, &batch.events, trace)
        .await
        .map_err(|error| deliver_error(provider, error))?;
    count(provider, "ok");
    tracing::info!(
        provider,
        produced = delivered.produced,
        duplicates = delivered.duplicates,
        skipped = batch.skipped.len(),
        trace_id = %format!("{:032x}", trace.trace_id),
        "webhook stored"
    );
    Ok(Json(json!({
        "status": "ok",
        "events": batch.events.len(),
        "produced": delivered.produced,
        "duplicates": delivered.duplicates,
        "unknown_tenant": batch.unknown_tenants(),
        "skipped": batch.skipped.len(),
    }))
    .into_response())
}

/// `GET /webhooks/whatsapp`: Meta's subscribe handshake.
async fn whatsapp_handshake<S: EventSink, D: DedupeStore>(
    State(state): State<Arc<AppState<S, D>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = (|| {
        let ours = state.credentials.whatsapp_verify_token.expose();
        let mode = query.get("hub.mode").map(String::as_str);
        let token = query.get("hub.verify_token").map(String::as_str);
        let token_matches = !ours.is_empty()
            && token
                .is_some_and(|token| signature::tokens_equal(token.as_bytes(), ours.as_bytes()));
        if mode != Some("subscribe") || !token_matches {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "verification_failed",
                "hub.mode must be subscribe and hub.verify_token must be ours",
            ));
        }
        let challenge = query.get("hub.challenge").ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_challenge",
                "hub.challenge is missing",
            )
        })?;
        count(WHATSAPP, "handshake");
        Ok(plain_text(challenge.clone()))
    })();
    finish(WHATSAPP, result)
}

/// `POST /webhooks/whatsapp`: a notification.
async fn whatsapp_webhook<S: EventSink, D: DedupeStore>(
    State(state): State<Arc<AppState<S, D>>>,
    headers: HeaderMap,
    received: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = received.map_err(body_error)?;
        let secret = state.credentials.whatsapp_app_secret.expose();
        if secret.is_empty() {
            return Err(not_configured("CAAS_WHATSAPP_APP_SECRET"));
        }
        let header = headers
            .get(WHATSAPP_SIGNATURE_HEADER)
            .map(|value| value.as_bytes());
        signature::verify_whatsapp(secret.as_bytes(), header, &body)
            .map_err(|error| signature_error(WHATSAPP, error))?;
        let trace = trace_parent(&headers);
        let stamp = Stamp {
            recorded_at: (state.now_millis)(),
            trace_parent: Some(trace.to_string()),
        };
        let batch = whatsapp::parse(&body, &state.tenants, &stamp).map_err(|error| {
            tracing::warn!(provider = WHATSAPP, error = %error, "webhook refused: not a WhatsApp notification");
            ApiError::from(error)
        })?;
        deliver(&state, WHATSAPP, batch, &trace).await
    }
    .await;
    finish(WHATSAPP, result)
}

/// `POST /webhooks/rcs`: the set-up handshake or a Pub/Sub push.
async fn rcs_webhook<S: EventSink, D: DedupeStore>(
    State(state): State<Arc<AppState<S, D>>>,
    headers: HeaderMap,
    received: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = received.map_err(body_error)?;
        let token = state.credentials.rbm_client_token.expose();
        let request = rcs::parse_request(&body).map_err(|error| {
            tracing::warn!(provider = RCS, error = %error, "webhook refused: not an RBM push");
            ApiError::from(error)
        })?;
        match request {
            rcs::Request::Handshake {
                client_token,
                secret,
            } => {
                if token.is_empty()
                    || !signature::tokens_equal(client_token.as_bytes(), token.as_bytes())
                {
                    tracing::warn!(provider = RCS, "set-up handshake with a wrong client token");
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "verification_failed",
                        "clientToken is not ours",
                    ));
                }
                count(RCS, "handshake");
                Ok(plain_text(secret))
            }
            rcs::Request::Push {
                data,
                pubsub_message_id,
            } => {
                if token.is_empty() {
                    return Err(not_configured("CAAS_RBM_CLIENT_TOKEN"));
                }
                let header = headers.get(RBM_SIGNATURE_HEADER).map(|value| value.as_bytes());
                signature::verify_rbm(token.as_bytes(), header, &data)
                    .map_err(|error| signature_error(RCS, error))?;
                let trace = trace_parent(&headers);
                let stamp = Stamp {
                    recorded_at: (state.now_millis)(),
                    trace_parent: Some(trace.to_string()),
                };
                let batch = rcs::parse_data(&data, &state.tenants, &stamp).map_err(|error| {
                    tracing::warn!(provider = RCS, pubsub_message_id = ?pubsub_message_id, error = %error, "webhook refused: not an RBM user message or event");
                    ApiError::from(error)
                })?;
                deliver(&state, RCS, batch, &trace).await
            }
        }
    }
    .await;
    finish(RCS, result)
}

fn plain_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::dedupe::MemoryDedupe;
    use crate::events::IngestEvent;
    use crate::pipeline::{DedupeSettings, PublishError};

    /// Acknowledges everything at once.
    struct AckingSink;

    impl EventSink for AckingSink {
        async fn publish(
            &self,
            events: &[&IngestEvent],
            _trace_parent: &TraceParent,
        ) -> Vec<Result<(), PublishError>> {
            events.iter().map(|_| Ok(())).collect()
        }
    }

    fn app(app_secret: &str, max_body_bytes: usize) -> Router {
        let state = Arc::new(AppState {
            pipeline: Pipeline::new(
                AckingSink,
                MemoryDedupe::default(),
                DedupeSettings::for_produce_timeout(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(60),
                ),
            ),
            tenants: Tenants::parse(crate::tenants::DEFAULT_TENANTS).unwrap(),
            credentials: Credentials {
                whatsapp_app_secret: Secret::new(app_secret),
                whatsapp_verify_token: Secret::new(""),
                rbm_client_token: Secret::new(""),
            },
            now_millis: || 1_739_321_025_000,
        });
        router(state, max_body_bytes)
    }

    async fn post(
        app: Router,
        path: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::post(path).header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header(WHATSAPP_SIGNATURE_HEADER, signature);
        }
        let response = app
            .oneshot(request.body(Body::from(body.to_vec())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"1","id":"wamid.http","timestamp":"1","type":"text","text":{"body":"hi"}}]}}]}]}"#;

    #[tokio::test]
    async fn a_signed_body_is_stored_and_its_retry_is_a_duplicate() {
        let app = app("secret", 1 << 20);
        let signature = signature::whatsapp_signature(b"secret", BODY);
        let (status, answer) =
            post(app.clone(), "/webhooks/whatsapp", BODY, Some(&signature)).await;
        assert_eq!(
            (status, &answer["produced"]),
            (StatusCode::OK, &json!(1)),
            "{answer}"
        );
        let (status, answer) = post(app, "/webhooks/whatsapp", BODY, Some(&signature)).await;
        assert_eq!(
            (status, &answer["duplicates"]),
            (StatusCode::OK, &json!(1)),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn without_a_configured_secret_webhooks_are_retried_later() {
        let (status, answer) = post(
            app("", 1 << 20),
            "/webhooks/whatsapp",
            BODY,
            Some("sha256=00"),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer["error"], "not_configured");
        assert!(answer["message"]
            .as_str()
            .unwrap()
            .contains("CAAS_WHATSAPP_APP_SECRET"));
        let (status, answer) = post(app("", 1 << 20), "/webhooks/rcs", &rcs_push(), None).await;
        assert_eq!(
            (status, &answer["error"]),
            (StatusCode::SERVICE_UNAVAILABLE, &json!("not_configured"))
        );
    }

    fn rcs_push() -> Vec<u8> {
        br#"{"message":{"data":"e30="}}"#.to_vec()
    }

    #[tokio::test]
    async fn the_body_limit_is_a_json_413() {
        let signature = signature::whatsapp_signature(b"secret", BODY);
        let (status, answer) = post(
            app("secret", 64),
            "/webhooks/whatsapp",
            BODY,
            Some(&signature),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer["error"], "payload_too_large");
    }
}
