//! The REST API (`/api/v1`, Bearer JWT), the OpenAPI document and the dashboard's files.
//!
//! Catch-up works with the `seq` of the socket events: a client that saw `seq` N of a
//! conversation fetches `GET /api/v1/conversations/{key}/messages?after_seq=N` and gets every
//! message created or changed since, in `seq` order.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use caas_logger::rights::{self, Customer};
use caas_logger::DataRightsError;
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, AuthError, Claims};
use crate::domain::explorer::{self as explorer_rules, SearchParams};
use crate::domain::rooms;
use crate::explorer;
use crate::metrics::metrics;
use crate::state::Shared;
use crate::store::{ConversationFilter, StoreError};

/// The OpenAPI document of this API, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// An API error, answered as `{"error": "..."}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or an invalid token.
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    /// The operator may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A malformed request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Nothing there.
    #[error("not found: {0}")]
    NotFound(String),
    /// MongoDB did not answer.
    #[error("the conversation store is unavailable, try again: {0}")]
    Unavailable(String),
}

impl From<DataRightsError> for ApiError {
    fn from(error: DataRightsError) -> Self {
        match error {
            DataRightsError::InvalidRequest(reason) => ApiError::BadRequest(reason),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::BadCursor => ApiError::BadRequest(error.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"caas\""),
            );
        }
        response
    }
}

/// The authenticated operator of a REST request (`Authorization: Bearer <jwt>`).
pub struct Operator(pub Claims);

impl FromRequestParts<Arc<Shared>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Operator(bearer_claims(&parts.headers, shared)?))
    }
}

/// Verify the request's `Authorization: Bearer <jwt>`.
fn bearer_claims(headers: &HeaderMap, shared: &Shared) -> Result<Claims, AuthError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AuthError::Malformed(
            "expected Authorization: Bearer <token>",
        ))?;
    auth::verify(
        token,
        shared.jwt_secret.expose().as_bytes(),
        auth::now_seconds(),
    )
}

/// In front of the campaign API (`caas_campaign::api_router`), which does no token checking of
/// its own: the gateway's verified JWT becomes the [`caas_campaign::Caller`] it reads. A
/// refused token is answered here, as on every other route.
async fn campaign_caller(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let claims = match bearer_claims(request.headers(), &shared) {
        Ok(claims) => claims,
        Err(error) => return ApiError::Unauthorized(error).into_response(),
    };
    request
        .extensions_mut()
        .insert(caas_campaign::Caller::from(claims));
    next.run(request).await
}

/// Routes of the API (the gateway's own and the campaign API), the OpenAPI document and the
/// dashboard.
///
/// Body limits: the gateway's routes take no bodies, and the campaign API's `Json` routes keep
/// axum's default limit (2 MiB); `POST /api/v1/audiences` reads its body as a stream (up to
/// `CAAS_CAMPAIGN_MAX_AUDIENCE_ROWS` rows), so no limit layer may wrap the merged router.
pub fn router(shared: Arc<Shared>, campaigns: caas_campaign::ApiState) -> Router {
    let campaign_api = caas_campaign::api_router(campaigns).layer(
        axum::middleware::from_fn_with_state(shared.clone(), campaign_caller),
    );
    let api = Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/conversations", get(list_conversations))
        .route("/api/v1/conversations/{key}", get(get_conversation))
        .route("/api/v1/conversations/{key}/messages", get(list_messages))
        .route("/api/v1/customers/{customer}/export", get(export_customer))
        .route("/api/v1/customers/{customer}", delete(erase_customer))
        .route("/api/v1/events", get(search_events))
        .route("/api/v1/events/{id}", get(get_event))
        .with_state(shared)
        .layer(axum::middleware::from_fn(count_requests));
    let api = api.merge(campaign_api);
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/index.html",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/openapi.yaml",
            get(|| async { asset("application/yaml; charset=utf-8", OPENAPI) }),
        )
        .merge(api)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    metrics()
        .http_requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}

async fn me(Operator(claims): Operator) -> Json<serde_json::Value> {
    Json(json!({
        "operator_id": claims.sub,
        "tenant": claims.tenant,
        "role": claims.role.as_str(),
        "exp": claims.exp,
    }))
}

/// Query of `GET /api/v1/conversations`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `bot` or `human`.
    pub mode: Option<String>,
    /// An operator id, `me`, or `none` (unassigned).
    pub assignee: Option<String>,
    /// `true`: only conversations with unread messages.
    pub unread: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn list_conversations(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let mode = match query.mode.as_deref() {
        None | Some("") => None,
        Some(mode @ ("bot" | "human")) => Some(mode.to_string()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "mode must be bot or human, got {other:?}"
            )))
        }
    };
    let assignee = match query.assignee.as_deref() {
        None | Some("") => None,
        Some("me") => Some(Some(claims.sub.clone())),
        Some("none") => Some(None),
        Some(operator) => Some(Some(operator.to_string())),
    };
    let filter = ConversationFilter {
        mode,
        assignee,
        unread_only: query.unread.unwrap_or(false),
    };
    let page = shared
        .store
        .conversations(
            &claims.tenant,
            &filter,
            query.limit.unwrap_or(50),
            query.cursor.as_deref().filter(|cursor| !cursor.is_empty()),
        )
        .await?;
    Ok(Json(json!({
        "conversations": page.conversations,
        "next_cursor": page.next_cursor,
    })))
}

fn own_conversation(claims: &Claims, key: &str) -> Result<(), ApiError> {
    rooms::check_conversation_key(&claims.tenant, key)
        .map(|_| ())
        .map_err(|error| match error {
            rooms::KeyError::Malformed(_) => ApiError::BadRequest(error.to_string()),
            rooms::KeyError::OtherTenant(_) => ApiError::Forbidden(error.to_string()),
        })
}

async fn get_conversation(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    own_conversation(&claims, &key)?;
    let conversation = shared
        .store
        .conversation(&key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {key}")))?;
    Ok(Json(json!(conversation)))
}

/// Query of `GET /api/v1/conversations/{key}/messages`.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    /// Only messages whose latest change has a greater `seq` (default 0: everything).
    pub after_seq: Option<i64>,
    /// Page size, 1 to 500 (default 200).
    pub limit: Option<u32>,
}

async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    Path(key): Path<String>,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    own_conversation(&claims, &key)?;
    let after_seq = query.after_seq.unwrap_or(0);
    let (messages, has_more) = shared
        .store
        .messages_after(&key, after_seq, query.limit.unwrap_or(200))
        .await?;
    let last_seq = messages
        .iter()
        .filter_map(|message| message.seq)
        .max()
        .unwrap_or(after_seq);
    Ok(Json(json!({
        "conversation_key": key,
        "after_seq": after_seq,
        "messages": messages,
        "has_more": has_more,
        "last_seq": last_seq,
    })))
}

fn admin_only(claims: &Claims, what: &str) -> Result<(), ApiError> {
    if claims.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("{what} takes the admin role")))
    }
}

async fn redis(shared: &Shared) -> Result<redis::aio::ConnectionManager, ApiError> {
    caas_runtime::probe::redis_connection(shared.redis_url.expose())
        .await
        .map_err(ApiError::Unavailable)
}

/// `GET /api/v1/customers/{customer}/export` (admin): everything stored about one customer of
/// the caller's tenant, as JSON lines, streamed.
async fn export_customer(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    Path(customer_id): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&claims, "exporting a customer's data")?;
    let customer = Customer::new(&claims.tenant, &customer_id)?;
    let mut connection = redis(&shared).await?;
    let export =
        rights::export_customer(shared.store.database(), &mut connection, &customer).await?;
    tracing::info!(tenant = %claims.tenant, operator = %claims.sub, "customer data exported");
    let lines = export.map(|line| {
        line.and_then(|line| {
            let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            Ok(bytes)
        })
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"customer-export.jsonl\"",
            ),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// `DELETE /api/v1/customers/{customer}` (admin): erase one customer of the caller's tenant;
/// answers what was deleted. Operators' dashboards drop the erased conversations.
async fn erase_customer(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    Path(customer_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(&claims, "erasing a customer's data")?;
    let customer = Customer::new(&claims.tenant, &customer_id)?;
    let mut connection = redis(&shared).await?;
    let report = rights::erase_customer(
        shared.store.database(),
        &mut connection,
        &customer,
        &claims.sub,
    )
    .await?;
    tracing::info!(tenant = %claims.tenant, operator = %claims.sub, erasure = %report.erasure_id, "customer erased");
    if let Some(io) = shared.io.get() {
        for conversation_key in customer.conversation_keys() {
            let _ = io
                .to(rooms::tenant(&claims.tenant))
                .emit(
                    "conversation.updated",
                    &json!({
                        "conversation_key": conversation_key,
                        "seq": serde_json::Value::Null,
                        "partial": true,
                        "erased": true,
                        "change": "erased",
                    }),
                )
                .await;
        }
    }
    Ok(Json(json!(report)))
}

impl From<explorer::ExplorerError> for ApiError {
    fn from(error: explorer::ExplorerError) -> Self {
        match error {
            explorer::ExplorerError::TooBroad => ApiError::BadRequest(error.to_string()),
            explorer::ExplorerError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
        }
    }
}

/// `GET /api/v1/events` (admin): the event explorer's search over the caller's tenant's stored
/// events, newest first.
async fn search_events(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(&claims, "the event explorer")?;
    let Query(params) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let search = explorer_rules::parse_search(&claims.tenant, params, crate::realtime::now_ms())
        .map_err(|error| match error {
            explorer_rules::SearchError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            explorer_rules::SearchError::OtherTenant(_) => ApiError::Forbidden(error.to_string()),
        })?;
    let page = explorer::search(shared.store.database(), &search).await?;
    Ok(Json(json!({
        "events": page.events,
        "next_before": page.next_before,
        "from": search.from,
        "to": search.to,
    })))
}

/// `GET /api/v1/events/{id}` (admin): one stored event of the caller's tenant with its payload.
async fn get_event(
    State(shared): State<Arc<Shared>>,
    Operator(claims): Operator,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(&claims, "the event explorer")?;
    explorer::event(shared.store.database(), &claims.tenant, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no event {id} in your tenant")))
}
