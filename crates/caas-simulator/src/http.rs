//! The HTTP surface: both providers' send endpoints and the `/_sim/*` admin endpoints.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::{now_millis, rfc3339_millis};
use crate::customers::{self, CustomerRun};
use crate::knobs::{decide, Injected, Knobs};
use crate::rbm::{self, RbmError};
use crate::records::{Api, Log, Outcome, RequestQuery, RequestRecord, WebhookRecord};
use crate::webhooks::{self, About, Dispatcher};
use crate::whatsapp::{self, GraphError};

/// Everything the handlers share.
pub struct Simulator {
    /// The knobs a reset returns to.
    initial_knobs: Knobs,
    /// The knobs in force.
    knobs: RwLock<Knobs>,
    /// Send requests received.
    requests: Log<RequestRecord>,
    /// Sequence numbers of send requests.
    next_seq: AtomicU64,
    /// Webhooks sent.
    webhooks: Arc<Log<WebhookRecord>>,
    /// RBM `(agentId, messageId)` pairs already accepted: a repeat is answered 409.
    rbm_seen: Mutex<HashSet<(String, String)>>,
    /// Accept times per sending endpoint in the last second, for `max_per_second`.
    throughput: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Posts webhooks back to CAAS.
    dispatcher: Dispatcher,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is a single insert or scan: a poisoned lock holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Simulator {
    /// A simulator starting with `knobs`.
    pub fn new(
        knobs: Knobs,
        max_records: usize,
        dispatcher: Dispatcher,
        webhooks: Arc<Log<WebhookRecord>>,
    ) -> Self {
        Self {
            initial_knobs: knobs.clone(),
            knobs: RwLock::new(knobs),
            requests: Log::new(max_records),
            next_seq: AtomicU64::new(1),
            webhooks,
            rbm_seen: Mutex::new(HashSet::new()),
            throughput: Mutex::new(HashMap::new()),
            dispatcher,
        }
    }

    fn knobs(&self) -> Knobs {
        self.knobs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_knobs(&self, knobs: Knobs) {
        *self
            .knobs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = knobs;
    }

    /// Whether `sender` already had `limit` accepted sends in the last second.
    fn over_limit(&self, sender: &str, limit: Option<u32>) -> bool {
        let Some(limit) = limit else { return false };
        let mut throughput = lock(&self.throughput);
        let window = throughput.entry(sender.to_string()).or_default();
        let now = Instant::now();
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        window.len() >= limit as usize
    }

    fn count_accepted(&self, sender: &str) {
        lock(&self.throughput)
            .entry(sender.to_string())
            .or_default()
            .push_back(Instant::now());
    }

    fn record(&self, mut record: RequestRecord) {
        self.requests.push_with(|| {
            record.seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
            record
        });
    }
}

/// The router of both APIs and the admin endpoints.
pub fn router(simulator: Arc<Simulator>) -> Router {
    Router::new()
        .route("/{version}/{phone_number_id}/messages", post(whatsapp_send))
        .route("/v1/phones/{msisdn}/agentMessages", post(rbm_send))
        .route("/_sim/requests", get(list_requests).delete(clear_requests))
        .route("/_sim/webhooks", get(list_webhooks))
        .route("/_sim/knobs", get(get_knobs).put(put_knobs))
        .route("/_sim/reset", post(reset))
        .route("/_sim/customers/send", post(send_customers))
        .with_state(simulator)
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| !token.trim().is_empty())
}

async fn injected_latency(knobs: &Knobs) {
    let jitter = if knobs.latency_jitter_ms > 0 {
        fastrand::u64(0..=knobs.latency_jitter_ms)
    } else {
        0
    };
    let total = knobs.latency_ms + jitter;
    if total > 0 {
        tokio::time::sleep(Duration::from_millis(total)).await;
    }
}

fn graph_error(error: &GraphError) -> Response {
    let status = StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(error.body())).into_response()
}

fn rbm_error(error: &RbmError) -> Response {
    let status = StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(error.body())).into_response()
}

async fn whatsapp_send(
    State(simulator): State<Arc<Simulator>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let knobs = simulator.knobs();
    injected_latency(&knobs).await;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let to = parsed["to"].as_str().unwrap_or_default().to_string();
    let mut record = RequestRecord {
        seq: 0,
        received_at: now_millis(),
        api: Api::Whatsapp,
        sender: phone_number_id.clone(),
        to: to.clone(),
        status: 200,
        outcome: Outcome::Accepted,
        provider_message_id: None,
        error_code: None,
        body: parsed.clone(),
    };
    let refuse = |record: &mut RequestRecord, outcome: Outcome, error: GraphError| {
        record.status = error.http_status;
        record.outcome = outcome;
        record.error_code = Some(error.code.to_string());
        simulator.record(record.clone());
        graph_error(&error)
    };
    if !bearer_ok(&headers) {
        return refuse(
            &mut record,
            Outcome::Unauthorized,
            GraphError::unauthorized(),
        );
    }
    let version_ok = version.strip_prefix('v').is_some_and(|number| {
        !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.')
    });
    if !version_ok
        || phone_number_id.is_empty()
        || !phone_number_id.chars().all(|c| c.is_ascii_digit())
    {
        let error = GraphError::bad_request(format!(
            "unknown path /{version}/{phone_number_id}/messages; expected /v<version>/<phone_number_id>/messages"
        ));
        return refuse(&mut record, Outcome::Rejected, error);
    }
    let over_limit = simulator.over_limit(&phone_number_id, knobs.max_per_second);
    match decide(&knobs, fastrand::f64(), over_limit) {
        Injected::Nothing => {}
        Injected::RateLimited => {
            return refuse(
                &mut record,
                Outcome::RateLimited,
                GraphError::rate_limited(),
            )
        }
        Injected::ServerError { unavailable } => {
            return refuse(
                &mut record,
                Outcome::ServerError,
                GraphError::server_error(unavailable),
            )
        }
    }
    if parsed.is_null() {
        let error = GraphError::bad_request("the request body is not JSON");
        return refuse(&mut record, Outcome::Rejected, error);
    }
    let send = match whatsapp::validate(&parsed) {
        Ok(send) => send,
        Err(error) => return refuse(&mut record, Outcome::Rejected, error),
    };
    let message_id = whatsapp::new_message_id();
    record.provider_message_id = Some(message_id.clone());
    simulator.count_accepted(&phone_number_id);
    simulator.record(record);
    if knobs.status_webhooks {
        let failing = knobs.is_failing(&send.to);
        schedule_whatsapp_statuses(
            simulator.dispatcher.clone(),
            knobs,
            phone_number_id,
            send.wa_id.clone(),
            message_id.clone(),
            send.callback_data.clone(),
            failing,
        );
    }
    (
        StatusCode::OK,
        Json(whatsapp::accepted_body(&send, &message_id)),
    )
        .into_response()
}

fn jittered(millis: u64) -> Duration {
    // ±20 %, so statuses of a burst do not arrive in lockstep.
    let spread = millis / 5;
    let low = millis - spread;
    Duration::from_millis(if spread == 0 {
        millis
    } else {
        fastrand::u64(low..=millis + spread)
    })
}

fn schedule_whatsapp_statuses(
    dispatcher: Dispatcher,
    knobs: Knobs,
    phone_number_id: String,
    recipient: String,
    message_id: String,
    callback_data: Option<String>,
    failing: bool,
) {
    let read = fastrand::f64() < knobs.read_rate;
    let mut timeline = vec![(knobs.sent_after_ms, if failing { "failed" } else { "sent" })];
    if !failing {
        timeline.push((knobs.delivered_after_ms, "delivered"));
        if read {
            timeline.push((knobs.read_after_ms, "read"));
        }
    }
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut previous = Duration::ZERO;
        for (after_ms, status) in timeline {
            // Never earlier than the previous status: jitter must not reorder the timeline.
            let after = jittered(after_ms).max(previous);
            previous = after;
            tokio::select! {
                _ = dispatcher.shutdown().cancelled() => return,
                _ = tokio::time::sleep_until(started + after) => {}
            }
            let body = webhooks::whatsapp_status(
                &phone_number_id,
                &recipient,
                &message_id,
                status,
                now_millis(),
                callback_data.as_deref(),
            );
            let about = About {
                kind: "status",
                provider_message_id: &message_id,
                status: Some(status),
            };
            dispatcher.post_whatsapp(&body, about).await;
        }
    });
}

fn schedule_rbm_events(
    dispatcher: Dispatcher,
    knobs: Knobs,
    agent_id: String,
    msisdn: String,
    message_id: String,
) {
    let read = fastrand::f64() < knobs.read_rate;
    let mut timeline = vec![(knobs.delivered_after_ms, "DELIVERED")];
    if read {
        timeline.push((knobs.read_after_ms, "READ"));
    }
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut previous = Duration::ZERO;
        for (after_ms, event_type) in timeline {
            let after = jittered(after_ms).max(previous);
            previous = after;
            tokio::select! {
                _ = dispatcher.shutdown().cancelled() => return,
                _ = tokio::time::sleep_until(started + after) => {}
            }
            let data =
                webhooks::rbm_event(&agent_id, &msisdn, event_type, &message_id, now_millis());
            let about = About {
                kind: "status",
                provider_message_id: &message_id,
                status: Some(event_type),
            };
            dispatcher.post_rcs(&agent_id, &data, about).await;
        }
    });
}

#[derive(Debug, Deserialize)]
struct RbmQuery {
    #[serde(rename = "messageId")]
    message_id: Option<String>,
    #[serde(rename = "agentId")]
    agent_id: Option<String>,
}

async fn rbm_send(
    State(simulator): State<Arc<Simulator>>,
    Path(msisdn): Path<String>,
    Query(query): Query<RbmQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let knobs = simulator.knobs();
    injected_latency(&knobs).await;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let agent_id = query.agent_id.clone().unwrap_or_default();
    let mut record = RequestRecord {
        seq: 0,
        received_at: now_millis(),
        api: Api::Rbm,
        sender: agent_id.clone(),
        to: msisdn.clone(),
        status: 200,
        outcome: Outcome::Accepted,
        provider_message_id: query.message_id.clone(),
        error_code: None,
        body: parsed.clone(),
    };
    let refuse = |record: &mut RequestRecord, outcome: Outcome, error: RbmError| {
        record.status = error.http_status;
        record.outcome = outcome;
        record.error_code = Some(error.status.to_string());
        simulator.record(record.clone());
        rbm_error(&error)
    };
    if !bearer_ok(&headers) {
        return refuse(
            &mut record,
            Outcome::Unauthorized,
            RbmError::unauthenticated(),
        );
    }
    let over_limit = simulator.over_limit(&agent_id, knobs.max_per_second);
    match decide(&knobs, fastrand::f64(), over_limit) {
        Injected::Nothing => {}
        Injected::RateLimited => {
            return refuse(&mut record, Outcome::RateLimited, RbmError::rate_limited())
        }
        Injected::ServerError { unavailable } => {
            return refuse(
                &mut record,
                Outcome::ServerError,
                RbmError::server_error(unavailable),
            )
        }
    }
    let send = match rbm::validate(
        &msisdn,
        query.message_id.as_deref(),
        query.agent_id.as_deref(),
        &parsed,
    ) {
        Ok(send) => send,
        Err(error) => return refuse(&mut record, Outcome::Rejected, error),
    };
    if knobs.is_failing(&send.msisdn) {
        return refuse(&mut record, Outcome::Rejected, RbmError::not_found());
    }
    let first_time =
        lock(&simulator.rbm_seen).insert((send.agent_id.clone(), send.message_id.clone()));
    if !first_time {
        return refuse(&mut record, Outcome::Duplicate, RbmError::already_exists());
    }
    simulator.count_accepted(&agent_id);
    simulator.record(record);
    if knobs.status_webhooks {
        schedule_rbm_events(
            simulator.dispatcher.clone(),
            knobs,
            send.agent_id.clone(),
            send.msisdn.clone(),
            send.message_id.clone(),
        );
    }
    let echo = rbm::accepted_body(&send, &parsed, &rfc3339_millis(now_millis()));
    (StatusCode::OK, Json(echo)).into_response()
}

async fn list_requests(
    State(simulator): State<Arc<Simulator>>,
    Query(query): Query<RequestQuery>,
) -> Json<Value> {
    let records = simulator.requests.query(&query);
    Json(json!({ "count": records.len(), "requests": records }))
}

async fn clear_requests(State(simulator): State<Arc<Simulator>>) -> StatusCode {
    simulator.requests.clear();
    StatusCode::NO_CONTENT
}

async fn list_webhooks(State(simulator): State<Arc<Simulator>>) -> Json<Value> {
    let webhooks = simulator.webhooks.filtered(|_| true);
    Json(json!({ "count": webhooks.len(), "webhooks": webhooks }))
}

async fn get_knobs(State(simulator): State<Arc<Simulator>>) -> Json<Knobs> {
    Json(simulator.knobs())
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn put_knobs(State(simulator): State<Arc<Simulator>>, body: Bytes) -> Response {
    let knobs: Knobs = match serde_json::from_slice(&body) {
        Ok(knobs) => knobs,
        Err(error) => return bad_request(format!("invalid knobs: {error}")),
    };
    if let Err(reason) = knobs.validate() {
        return bad_request(reason);
    }
    tracing::info!(?knobs, "knobs replaced");
    simulator.set_knobs(knobs.clone());
    Json(knobs).into_response()
}

async fn reset(State(simulator): State<Arc<Simulator>>) -> StatusCode {
    simulator.set_knobs(simulator.initial_knobs.clone());
    simulator.requests.clear();
    simulator.webhooks.clear();
    lock(&simulator.rbm_seen).clear();
    lock(&simulator.throughput).clear();
    StatusCode::NO_CONTENT
}

async fn send_customers(State(simulator): State<Arc<Simulator>>, body: Bytes) -> Response {
    let run: CustomerRun = match serde_json::from_slice(&body) {
        Ok(run) => run,
        Err(error) => return bad_request(format!("invalid customer run: {error}")),
    };
    if let Err(reason) = run.validate() {
        return bad_request(reason);
    }
    let report = customers::play(&run, &simulator.dispatcher).await;
    Json(report).into_response()
}
