//! The campaign REST API (`openapi.yaml`): audiences, campaigns, their recipients and the
//! consent ledger, under `/api/v1`.
//!
//! The router is a library so the gateway can serve it behind its own authentication: it needs
//! a [`Caller`] in each request's extensions (see [`crate::auth`]). Changes travel as commands
//! on `campaign.commands.v1` (answered 202 once Kafka acknowledged them); reads come from
//! MongoDB, with live totals counted from the recipients.
//!
//! Audiences are uploaded as CSV (streamed: rows are parsed and stored in batches as the body
//! arrives, never held whole, up to `CAAS_CAMPAIGN_MAX_AUDIENCE_ROWS` rows) or given as a JSON
//! list in the create request. Invalid rows are reported with their line numbers and the rest
//! proceeds.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use caas_events::model::{
    CampaignAction, CampaignCommand, CancelCampaign, Channel, CreateCampaign, Media, PauseCampaign,
    ResumeCampaign, SendingWindow, Template, TemplateParameter, Weekday,
};
use caas_events::{keys, Codec};
use caas_kafka::Producer;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::context::{new_trace, now_ms};
use crate::domain::audience::{AudienceRow, Header};
use crate::domain::csv::{CsvReader, CsvRecord};
use crate::domain::lifecycle::{self, CampaignState};
use crate::domain::status::RecipientStatus;
use crate::domain::{template, window};
use crate::metrics::metrics;
use crate::publish::Publisher;
use crate::store::{AudienceDoc, AudienceRowDoc, CampaignDoc, RecipientDoc, Store, StoreError};

/// Rows stored per write while an audience streams in.
const ROW_BATCH: usize = 1000;
/// Invalid rows listed in an upload's answer (all are in `GET .../errors`).
const ERRORS_SHOWN: usize = 100;

/// An API error: the status and a message that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 503.
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"caas\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::warn!(error = %error, "campaign api: store error");
        ApiError::Unavailable(format!(
            "the campaign store is unavailable; retry later ({error})"
        ))
    }
}

/// What the API handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    store: Store,
    publisher: Publisher,
    max_audience_rows: u64,
}

impl ApiState {
    /// From the parts a service already has.
    pub fn new(store: Store, publisher: Publisher, max_audience_rows: u64) -> Self {
        Self {
            store,
            publisher,
            max_audience_rows,
        }
    }

    /// For a server that serves these routes beside its own (the gateway): its MongoDB
    /// database, producer and codec, shared rather than a second set of clients. All are lazy,
    /// so a dependency that is down makes requests 503 instead of failing start-up.
    pub fn sharing(database: mongodb::Database, producer: Producer, codec: Codec) -> Self {
        Self::new(
            Store::on(database),
            Publisher::new(producer, codec),
            DEFAULT_MAX_AUDIENCE_ROWS,
        )
    }
}

/// The most rows an audience upload takes when served from another server.
pub const DEFAULT_MAX_AUDIENCE_ROWS: u64 = 1_000_000;

/// The API's routes, all under `/api/v1`. Every route needs a [`Caller`] extension.
pub fn api_router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/audiences", post(upload_audience))
        .route("/api/v1/audiences/{audience_id}", get(get_audience))
        .route(
            "/api/v1/audiences/{audience_id}/errors",
            get(audience_errors),
        )
        .route(
            "/api/v1/campaigns",
            post(create_campaign).get(list_campaigns),
        )
        .route("/api/v1/campaigns/{campaign_id}", get(get_campaign))
        .route(
            "/api/v1/campaigns/{campaign_id}/pause",
            post(pause_campaign),
        )
        .route(
            "/api/v1/campaigns/{campaign_id}/resume",
            post(resume_campaign),
        )
        .route(
            "/api/v1/campaigns/{campaign_id}/cancel",
            post(cancel_campaign),
        )
        .route(
            "/api/v1/campaigns/{campaign_id}/recipients",
            get(list_recipients),
        )
        .route("/api/v1/consents/{channel}/{customer_id}", get(get_consent))
        .with_state(state)
        .layer(axum::middleware::from_fn(count_requests))
}

async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    metrics()
        .api
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}

// ---------------------------------------------------------------- audiences ------------------

/// A JSON recipient: a number, or a number with template parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RecipientInput {
    /// Just the number.
    Number(String),
    /// The number and its parameters.
    WithParams {
        /// The number.
        to: String,
        /// Values for `{{column}}` placeholders.
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
}

/// What an upload yielded.
struct UploadSummary {
    audience: AudienceDoc,
    errors: Vec<Value>,
}

impl UploadSummary {
    fn to_json(&self) -> Value {
        json!({
            "audience_id": self.audience.audience_id,
            "state": self.audience.state,
            "columns": self.audience.columns,
            "rows": self.audience.rows,
            "valid": self.audience.valid,
            "invalid": self.audience.invalid,
            "errors": self.errors,
            "errors_truncated": self.audience.invalid as usize > self.errors.len(),
        })
    }
}

/// Stores rows as they come, in batches.
struct AudienceWriter<'a> {
    store: &'a Store,
    audience: AudienceDoc,
    batch: Vec<AudienceRowDoc>,
    errors: Vec<Value>,
    max_rows: u64,
}

impl<'a> AudienceWriter<'a> {
    async fn start(store: &'a Store, tenant: &str, max_rows: u64) -> Result<Self, ApiError> {
        let audience = AudienceDoc {
            audience_id: uuid::Uuid::new_v4().simple().to_string(),
            tenant_id: tenant.to_string(),
            state: "uploading".to_string(),
            columns: Vec::new(),
            rows: 0,
            valid: 0,
            invalid: 0,
            created_at: now_ms(),
        };
        store.insert_audience(&audience).await?;
        Ok(Self {
            store,
            audience,
            batch: Vec::with_capacity(ROW_BATCH),
            errors: Vec::new(),
            max_rows,
        })
    }

    async fn push(&mut self, row: AudienceRow) -> Result<(), ApiError> {
        self.audience.rows += 1;
        if self.audience.rows as u64 > self.max_rows {
            return Err(ApiError::TooLarge(format!(
                "an audience may have at most {} rows; split the file",
                self.max_rows
            )));
        }
        let (to, error) = match row.to {
            Ok(to) => {
                self.audience.valid += 1;
                (Some(to), None)
            }
            Err(reason) => {
                self.audience.invalid += 1;
                if self.errors.len() < ERRORS_SHOWN {
                    self.errors
                        .push(json!({ "line": row.line, "value": row.raw, "reason": reason }));
                }
                (None, Some(reason))
            }
        };
        self.batch.push(AudienceRowDoc {
            id: format!("{}:{}", self.audience.audience_id, row.line),
            audience_id: self.audience.audience_id.clone(),
            line: row.line as i64,
            raw: row.raw,
            to,
            error,
            params: row.params,
        });
        if self.batch.len() >= ROW_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        self.store.insert_audience_rows(&self.batch).await?;
        self.batch.clear();
        Ok(())
    }

    async fn finish(mut self, columns: Vec<String>) -> Result<UploadSummary, ApiError> {
        self.flush().await?;
        self.audience.columns = columns;
        self.audience.state = "complete".to_string();
        self.store.finish_audience(&self.audience).await?;
        Ok(UploadSummary {
            audience: self.audience,
            errors: self.errors,
        })
    }

    async fn abandon(mut self, reason: &str) {
        self.audience.state = format!("failed: {reason}");
        if let Err(error) = self.store.finish_audience(&self.audience).await {
            tracing::warn!(error = %error, "cannot mark an audience failed");
        }
    }
}

async fn upload_audience(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("text/csv")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
            .await
            .map_err(|error| ApiError::BadRequest(format!("cannot read the body: {error}")))?;
        #[derive(Deserialize)]
        struct JsonAudience {
            recipients: Vec<RecipientInput>,
        }
        let parsed: JsonAudience = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::BadRequest(format!("expected {{\"recipients\": [...]}}: {error}"))
        })?;
        let summary = store_json_audience(&state, &caller.tenant, parsed.recipients).await?;
        return Ok((StatusCode::CREATED, Json(summary.to_json())).into_response());
    }
    if !(content_type.starts_with("text/csv")
        || content_type.starts_with("application/csv")
        || content_type.starts_with("text/plain")
        || content_type.starts_with("application/octet-stream"))
    {
        return Err(ApiError::BadRequest(format!(
            "upload the audience as text/csv (or application/json), not {content_type}"
        )));
    }
    let mut writer =
        AudienceWriter::start(&state.store, &caller.tenant, state.max_audience_rows).await?;
    match stream_csv(&mut writer, body).await {
        Ok(columns) => {
            let summary = writer.finish(columns).await?;
            tracing::info!(
                tenant = %caller.tenant,
                audience_id = %summary.audience.audience_id,
                rows = summary.audience.rows,
                invalid = summary.audience.invalid,
                "audience uploaded"
            );
            Ok((StatusCode::CREATED, Json(summary.to_json())).into_response())
        }
        Err(error) => {
            writer.abandon(&error.to_string()).await;
            Err(error)
        }
    }
}

/// Read the body chunk by chunk, storing rows as they complete; returns the columns.
async fn stream_csv(writer: &mut AudienceWriter<'_>, body: Body) -> Result<Vec<String>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut reader = CsvReader::new();
    let mut records: Vec<CsvRecord> = Vec::new();
    let mut header: Option<Header> = None;
    let mut finished = false;
    while !finished {
        match stream.next().await {
            Some(Ok(chunk)) => reader.feed(&chunk, &mut records),
            Some(Err(error)) => {
                return Err(ApiError::BadRequest(format!(
                    "the upload was interrupted: {error}"
                )))
            }
            None => {
                reader.finish(&mut records);
                finished = true;
            }
        }
        for record in records.drain(..) {
            match &header {
                None => {
                    let fields = record.fields.map_err(|reason| {
                        ApiError::BadRequest(format!(
                            "line {}: the header row is unreadable: {reason}",
                            record.line
                        ))
                    })?;
                    header = Some(Header::parse(&fields).map_err(|reason| {
                        ApiError::BadRequest(format!("line {}: {reason}", record.line))
                    })?);
                }
                Some(header) => writer.push(AudienceRow::from_csv(header, &record)).await?,
            }
        }
    }
    let header = header.ok_or_else(|| {
        ApiError::BadRequest("the CSV is empty: it needs a header row".to_string())
    })?;
    Ok(header.columns)
}

async fn store_json_audience(
    state: &ApiState,
    tenant: &str,
    recipients: Vec<RecipientInput>,
) -> Result<UploadSummary, ApiError> {
    if recipients.is_empty() {
        return Err(ApiError::BadRequest(
            "the audience has no recipients".to_string(),
        ));
    }
    let mut writer = AudienceWriter::start(&state.store, tenant, state.max_audience_rows).await?;
    let mut columns = std::collections::BTreeSet::new();
    for (index, recipient) in recipients.into_iter().enumerate() {
        let (to, params) = match recipient {
            RecipientInput::Number(to) => (to, BTreeMap::new()),
            RecipientInput::WithParams { to, params } => (to, params),
        };
        columns.extend(params.keys().cloned());
        if let Err(error) = writer
            .push(AudienceRow::new(index as u64 + 1, to, params))
            .await
        {
            writer.abandon(&error.to_string()).await;
            return Err(error);
        }
    }
    let mut all_columns = vec!["phone".to_string()];
    all_columns.extend(columns);
    writer.finish(all_columns).await
}

async fn get_audience(
    State(state): State<ApiState>,
    caller: Caller,
    Path(audience_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let audience = own_audience(&state, &caller, &audience_id).await?;
    Ok(Json(json!({
        "audience_id": audience.audience_id,
        "state": audience.state,
        "columns": audience.columns,
        "rows": audience.rows,
        "valid": audience.valid,
        "invalid": audience.invalid,
        "created_at": audience.created_at,
    })))
}

async fn own_audience(
    state: &ApiState,
    caller: &Caller,
    audience_id: &str,
) -> Result<AudienceDoc, ApiError> {
    match state.store.audience(audience_id).await? {
        Some(audience) if audience.tenant_id == caller.tenant => Ok(audience),
        _ => Err(ApiError::NotFound(format!("no audience {audience_id}"))),
    }
}

/// Query of paged lists.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Only this status (recipients).
    pub status: Option<String>,
    /// Continue after this position (`next_after` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to 1000, got {limit}"
        )));
    }
    Ok(limit)
}

async fn audience_errors(
    State(state): State<ApiState>,
    caller: Caller,
    Path(audience_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    own_audience(&state, &caller, &audience_id).await?;
    let limit = page_limit(query.limit)?;
    let rows = state
        .store
        .audience_rows(&audience_id, query.after.unwrap_or(0), limit, true)
        .await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|row| row.line))
        .flatten();
    let errors: Vec<Value> = rows
        .into_iter()
        .map(|row| json!({ "line": row.line, "value": row.raw, "reason": row.error }))
        .collect();
    Ok(Json(json!({ "errors": errors, "next_after": next_after })))
}

// ---------------------------------------------------------------- campaigns ------------------

/// A template in a create request.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateInput {
    /// The approved template's name.
    pub name: String,
    /// Its language code, e.g. `en_US`.
    pub language: String,
    /// Parameters in order; `text` may name audience columns as `{{column}}`.
    #[serde(default)]
    pub parameters: Vec<TemplateParameter>,
    /// Media of a media header.
    pub header_media: Option<Media>,
}

/// Sending hours in a create request.
#[derive(Debug, Clone, Deserialize)]
pub struct WindowInput {
    /// Local start, `HH:MM`.
    pub start: String,
    /// Local end (exclusive), `HH:MM`; `24:00` for midnight.
    pub end: String,
    /// Days it applies; empty or absent for every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
}

/// A moment: epoch milliseconds or RFC 3339 text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Moment {
    /// Epoch milliseconds.
    Millis(i64),
    /// RFC 3339, e.g. `2026-11-27T08:00:00+01:00`.
    Text(String),
}

impl Moment {
    fn millis(&self, field: &str) -> Result<i64, ApiError> {
        match self {
            Moment::Millis(millis) => Ok(*millis),
            Moment::Text(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|moment| moment.timestamp_millis())
                .map_err(|error| {
                    ApiError::BadRequest(format!("{field} {text:?} is not RFC 3339: {error}"))
                }),
        }
    }
}

/// `POST /api/v1/campaigns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Your id for the campaign (`[A-Za-z0-9._-]{1,64}`); generated when absent. A repeated
    /// request with the same id is the same campaign.
    pub campaign_id: Option<String>,
    /// A name for people.
    pub name: String,
    /// `whatsapp` (default) or `rcs`.
    pub channel: Option<Channel>,
    /// The sending endpoint; absent for the tenant's default.
    pub business_id: Option<String>,
    /// The template.
    pub template: TemplateInput,
    /// An uploaded audience.
    pub audience_id: Option<String>,
    /// Or the recipients, inline.
    pub recipients: Option<Vec<RecipientInput>>,
    /// Messages per second (fractions allowed).
    pub rate_per_second: Option<f64>,
    /// Or messages per minute.
    pub rate_per_minute: Option<i32>,
    /// Not before.
    pub start_at: Option<Moment>,
    /// Stop at, even with recipients left.
    pub end_at: Option<Moment>,
    /// Allowed sending hours.
    pub sending_window: Option<WindowInput>,
    /// IANA timezone of the hours (default `UTC`).
    pub timezone: Option<String>,
}

fn minute_of(text: &str, field: &str) -> Result<i32, ApiError> {
    let refuse = || ApiError::BadRequest(format!("{field} {text:?} is not HH:MM"));
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(refuse)?;
    let hours: i32 = hours.parse().map_err(|_| refuse())?;
    let minutes: i32 = minutes.parse().map_err(|_| refuse())?;
    if !(0..=24).contains(&hours) || !(0..60).contains(&minutes) || (hours == 24 && minutes != 0) {
        return Err(refuse());
    }
    Ok(hours * 60 + minutes)
}

fn rate_per_minute(request: &CreateRequest) -> Result<i32, ApiError> {
    match (request.rate_per_second, request.rate_per_minute) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give rate_per_second or rate_per_minute, not both".to_string(),
        )),
        (Some(per_second), None) if per_second > 0.0 && per_second <= 10_000.0 => {
            Ok(((per_second * 60.0).round() as i32).max(1))
        }
        (None, Some(per_minute)) if per_minute > 0 && per_minute <= 600_000 => Ok(per_minute),
        (None, None) => Err(ApiError::BadRequest(
            "the campaign needs a rate: rate_per_second or rate_per_minute".to_string(),
        )),
        _ => Err(ApiError::BadRequest(
            "the rate must be positive and at most 10000 messages per second".to_string(),
        )),
    }
}

fn command_id(headers: &HeaderMap, tenant: &str, fallback: &[&str]) -> String {
    match headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.trim().is_empty())
    {
        Some(key) => keys::deterministic_event_id(&["campaign-api", tenant, key.trim()]),
        None if !fallback.is_empty() => {
            let mut parts = vec!["campaign-api", tenant];
            parts.extend_from_slice(fallback);
            keys::deterministic_event_id(&parts)
        }
        None => uuid::Uuid::new_v4().to_string(),
    }
}

async fn produce(
    state: &ApiState,
    caller: &Caller,
    campaign_id: &str,
    channel: Channel,
    command_id: String,
    action: CampaignAction,
) -> Result<(), ApiError> {
    let now = now_ms();
    let command = CampaignCommand {
        event_id: command_id.clone(),
        tenant_id: caller.tenant.clone(),
        conversation_key: keys::campaign_key(&caller.tenant, campaign_id),
        channel,
        occurred_at: now,
        recorded_at: now,
        source: "campaign-api".to_string(),
        trace_parent: Some(new_trace()),
        command_id,
        campaign_id: campaign_id.to_string(),
        operator_id: Some(caller.operator_id.clone()),
        action,
    };
    state.publisher.publish(&[command]).await.map_err(|error| {
        ApiError::Unavailable(format!(
            "the command could not be queued; retry later ({error})"
        ))
    })
}

async fn create_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let request: CreateRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("invalid campaign: {error}")))?;
    let campaign_id = match &request.campaign_id {
        Some(id) => {
            lifecycle::validate_campaign_id(id).map_err(ApiError::BadRequest)?;
            id.clone()
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let channel = request.channel.unwrap_or(Channel::Whatsapp);
    let rate = rate_per_minute(&request)?;
    let timezone = request
        .timezone
        .clone()
        .unwrap_or_else(|| "UTC".to_string());
    window::parse_timezone(&timezone).map_err(ApiError::BadRequest)?;
    let sending_window = match &request.sending_window {
        Some(input) => {
            let sending_window = SendingWindow {
                start_minute: minute_of(&input.start, "sending_window.start")?,
                end_minute: minute_of(&input.end, "sending_window.end")?,
                days: input.days.clone(),
            };
            window::validate_window(&sending_window).map_err(ApiError::BadRequest)?;
            Some(sending_window)
        }
        None => None,
    };
    let start_at = request
        .start_at
        .as_ref()
        .map(|moment| moment.millis("start_at"))
        .transpose()?;
    let end_at = request
        .end_at
        .as_ref()
        .map(|moment| moment.millis("end_at"))
        .transpose()?;
    let template = Template {
        name: request.template.name.clone(),
        language: request.template.language.clone(),
        parameters: request.template.parameters.clone(),
        header_media: request.template.header_media.clone(),
    };
    let key = keys::campaign_key(&caller.tenant, &campaign_id);
    if let Some(existing) = state.store.campaign(&key).await? {
        return Err(ApiError::Conflict(format!(
            "campaign {campaign_id} already exists (it is {})",
            existing.state.as_str()
        )));
    }
    let (audience_id, columns, upload) = match (&request.audience_id, request.recipients.clone()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give audience_id or recipients, not both".to_string(),
            ))
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "the campaign needs an audience: audience_id or recipients".to_string(),
            ))
        }
        (Some(audience_id), None) => {
            let audience = own_audience(&state, &caller, audience_id).await?;
            if audience.state != "complete" {
                return Err(ApiError::Conflict(format!(
                    "audience {audience_id} is {}",
                    audience.state
                )));
            }
            (audience_id.clone(), audience.columns, None)
        }
        (None, Some(recipients)) => {
            let summary = store_json_audience(&state, &caller.tenant, recipients).await?;
            (
                summary.audience.audience_id.clone(),
                summary.audience.columns.clone(),
                Some(summary),
            )
        }
    };
    let missing: Vec<String> = template::placeholders(&template)
        .into_iter()
        .filter(|name| {
            !columns
                .iter()
                .any(|column| column.eq_ignore_ascii_case(name))
        })
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the template uses {} but the audience has no such column (columns: {})",
            missing
                .iter()
                .map(|name| format!("{{{{{name}}}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            columns.join(", ")
        )));
    }
    let create = CreateCampaign {
        name: request.name.clone(),
        template,
        business_id: request.business_id.clone(),
        audience_id: Some(audience_id.clone()),
        recipients: Vec::new(),
        rate_per_minute: rate,
        start_at,
        end_at,
        sending_window,
        timezone,
    };
    lifecycle::validate_create(&create).map_err(ApiError::BadRequest)?;
    let fallback: Vec<&str> = if request.campaign_id.is_some() {
        vec![campaign_id.as_str(), "create"]
    } else {
        Vec::new()
    };
    let command_id = command_id(&headers, &caller.tenant, &fallback);
    produce(
        &state,
        &caller,
        &campaign_id,
        channel,
        command_id.clone(),
        CampaignAction::Create(Box::new(create)),
    )
    .await?;
    tracing::info!(tenant = %caller.tenant, campaign_id, "campaign create queued");
    let mut answer = json!({
        "campaign_id": campaign_id,
        "command_id": command_id,
        "audience_id": audience_id,
        "status": "accepted",
        "campaign_url": format!("/api/v1/campaigns/{campaign_id}"),
    });
    if let Some(summary) = upload {
        answer["audience"] = summary.to_json();
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Query of `GET /api/v1/campaigns`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only campaigns created before this moment (epoch ms; `next_before` of the previous page).
    pub before: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

async fn list_campaigns(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(query.limit)?;
    let campaigns = state
        .store
        .campaigns_of(&caller.tenant, query.before, limit)
        .await?;
    let next_before = (campaigns.len() as i64 == limit)
        .then(|| campaigns.last().map(|campaign| campaign.created_at))
        .flatten();
    let views: Vec<Value> = campaigns
        .iter()
        .map(|campaign| campaign_view(campaign, campaign.counts.unwrap_or_default(), now_ms()))
        .collect();
    Ok(Json(
        json!({ "campaigns": views, "next_before": next_before }),
    ))
}

async fn own_campaign(
    state: &ApiState,
    caller: &Caller,
    campaign_id: &str,
) -> Result<CampaignDoc, ApiError> {
    lifecycle::validate_campaign_id(campaign_id)
        .map_err(|_| ApiError::NotFound(format!("no campaign {campaign_id}")))?;
    state
        .store
        .campaign(&keys::campaign_key(&caller.tenant, campaign_id))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no campaign {campaign_id} (a campaign just created appears within a moment)"
            ))
        })
}

fn hhmm(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn campaign_view(
    campaign: &CampaignDoc,
    counts: caas_events::model::CampaignCounts,
    now: i64,
) -> Value {
    let verdict = window::parse_timezone(&campaign.timezone)
        .ok()
        .map(|timezone| {
            window::Schedule {
                start_at: campaign.start_at,
                end_at: campaign.end_at,
                window: campaign.sending_window.clone(),
                timezone,
            }
            .verdict(now)
        });
    let active = matches!(
        campaign.state,
        CampaignState::Scheduled | CampaignState::Running
    );
    let (sending_now, next_send_at) = match verdict {
        Some(window::Verdict::Open) => (active, None),
        Some(window::Verdict::Closed { until }) => (false, active.then_some(until)),
        _ => (false, None),
    };
    json!({
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "channel": campaign.channel,
        "business_id": campaign.business_id,
        "state": campaign.state.as_str(),
        "reason": campaign.reason,
        "template": campaign.template,
        "audience_id": campaign.audience_id,
        "rate_per_minute": campaign.rate_per_minute,
        "rate_per_second": f64::from(campaign.rate_per_minute) / 60.0,
        "start_at": campaign.start_at,
        "end_at": campaign.end_at,
        "sending_window": campaign.sending_window.as_ref().map(|sending_window| json!({
            "start": hhmm(sending_window.start_minute),
            "end": hhmm(sending_window.end_minute),
            "days": sending_window.days,
        })),
        "timezone": campaign.timezone,
        "sending_now": sending_now,
        "next_send_at": next_send_at,
        "created_at": campaign.created_at,
        "started_at": campaign.started_at,
        "completed_at": campaign.completed_at,
        "operator_id": campaign.operator_id,
        "audience": {
            "expanded": campaign.expansion.done,
            "valid_rows": campaign.expansion.valid,
            "invalid_rows": campaign.expansion.invalid,
            "duplicates": campaign.expansion.duplicates,
        },
        "counts": counts,
    })
}

async fn get_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    Path(campaign_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let campaign = own_campaign(&state, &caller, &campaign_id).await?;
    let counts = state.store.counts(&campaign.key).await?;
    Ok(Json(campaign_view(&campaign, counts, now_ms())))
}

/// Body of pause, resume and cancel.
#[derive(Debug, Default, Deserialize)]
pub struct ReasonBody {
    /// Why, in words.
    pub reason: Option<String>,
}

async fn change(
    state: ApiState,
    caller: Caller,
    headers: HeaderMap,
    campaign_id: String,
    body: axum::body::Bytes,
    action: fn(Option<String>) -> CampaignAction,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        ReasonBody::default()
    } else {
        serde_json::from_slice::<ReasonBody>(&body).map_err(|error| {
            ApiError::BadRequest(format!("expected {{\"reason\": \"...\"}}: {error}"))
        })?
    };
    let campaign = own_campaign(&state, &caller, &campaign_id).await?;
    let command_id = command_id(&headers, &caller.tenant, &[]);
    produce(
        &state,
        &caller,
        &campaign_id,
        campaign.channel,
        command_id.clone(),
        action(reason.reason),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "campaign_id": campaign_id, "command_id": command_id, "status": "accepted" })),
    )
        .into_response())
}

async fn pause_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(campaign_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    change(state, caller, headers, campaign_id, body, |reason| {
        CampaignAction::Pause(PauseCampaign { reason })
    })
    .await
}

async fn resume_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(campaign_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    change(state, caller, headers, campaign_id, body, |reason| {
        CampaignAction::Resume(ResumeCampaign { reason })
    })
    .await
}

async fn cancel_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(campaign_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    change(state, caller, headers, campaign_id, body, |reason| {
        CampaignAction::Cancel(CancelCampaign { reason })
    })
    .await
}

fn recipient_view(recipient: &RecipientDoc) -> Value {
    json!({
        "command_id": recipient.id,
        "to": recipient.to,
        "line": recipient.line,
        "seq": recipient.seq,
        "value": recipient.raw,
        "params": recipient.params,
        "status": recipient.status,
        "reason": recipient.reason,
        "provider_message_id": recipient.provider_message_id,
        "replied": recipient.replied,
        "updated_at": recipient.updated_at,
        "queued_at": recipient.queued_at,
        "sent_at": recipient.sent_at,
        "delivered_at": recipient.delivered_at,
        "read_at": recipient.read_at,
        "failed_at": recipient.failed_at,
    })
}

async fn list_recipients(
    State(state): State<ApiState>,
    caller: Caller,
    Path(campaign_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let campaign = own_campaign(&state, &caller, &campaign_id).await?;
    let limit = page_limit(query.limit)?;
    let status = match query.status.as_deref().filter(|status| !status.is_empty()) {
        None => None,
        Some(name) => Some(RecipientStatus::parse(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown status {name:?}; one of: {}",
                crate::domain::status::ALL
                    .iter()
                    .map(|status| status.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    let recipients = state
        .store
        .recipients_page(
            &campaign.key,
            status,
            query.after.unwrap_or(i64::MIN),
            limit,
        )
        .await?;
    let next_after = (recipients.len() as i64 == limit)
        .then(|| recipients.last().map(|recipient| recipient.seq))
        .flatten();
    Ok(Json(json!({
        "recipients": recipients.iter().map(recipient_view).collect::<Vec<_>>(),
        "next_after": next_after,
    })))
}

async fn get_consent(
    State(state): State<ApiState>,
    caller: Caller,
    Path((channel, customer_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let channel: Channel =
        channel
            .parse()
            .map_err(|error: caas_events::model::UnknownChannel| {
                ApiError::BadRequest(error.to_string())
            })?;
    let key = crate::store::consent_key(&caller.tenant, channel, &customer_id);
    let consent = state.store.consent(&key).await?;
    Ok(Json(match consent {
        Some(consent) => json!({
            "channel": consent.channel,
            "customer_id": consent.customer_id,
            "status": consent.status,
            "changed_at": consent.changed_at,
            "recorded_at": consent.recorded_at,
            "history": consent.history,
        }),
        None => json!({
            "channel": channel,
            "customer_id": customer_id,
            "status": Value::Null,
            "history": [],
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_rates_are_read_with_clear_errors() {
        assert_eq!(minute_of("09:30", "x").unwrap(), 570);
        assert_eq!(minute_of("24:00", "x").unwrap(), 1440);
        assert!(minute_of("24:30", "x").is_err());
        assert!(minute_of("9h", "x")
            .unwrap_err()
            .to_string()
            .contains("HH:MM"));
        let mut request: CreateRequest = serde_json::from_value(json!({
            "name": "n", "template": {"name": "t", "language": "en"}, "rate_per_second": 2.5
        }))
        .unwrap();
        assert_eq!(rate_per_minute(&request).unwrap(), 150);
        request.rate_per_minute = Some(10);
        assert!(rate_per_minute(&request).is_err());
        request.rate_per_second = None;
        assert_eq!(rate_per_minute(&request).unwrap(), 10);
        let unknown = serde_json::from_value::<CreateRequest>(json!({
            "name": "n", "template": {"name": "t", "language": "en"}, "rate": 1
        }));
        assert!(unknown.unwrap_err().to_string().contains("rate"));
    }
}
