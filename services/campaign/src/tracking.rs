//! `outbound.results.v1` and `inbound.statuses.v1` → recipient statuses.
//!
//! A result names its command id, which is the recipient's `_id`. A WhatsApp status carries the
//! callback data we sent (`caas-campaign:<campaign>:<command id>`). An RCS status carries only
//! the provider's message id, which the result stored on the recipient; a status that arrives
//! before its result is kept aside (`campaign_early_statuses`) and applied when the result
//! comes. Every change is conditional on the current status (forward only), in bulk per batch.

use std::collections::HashMap;
use std::sync::Arc;

use caas_events::model::{
    Channel, InboundStatus, MessageStatus, Origin, OutboundResult, SendOutcome,
};
use caas_events::topics;
use caas_kafka::{BatchHandler, HandlerError, Record, RecordOutcome};
use mongodb::bson::doc;

use crate::context::{now_ms, Context};
use crate::domain::ids;
use crate::domain::status::RecipientStatus;
use crate::metrics::metrics;
use crate::store::{EarlyStatus, Transition};

/// How long an unclaimed RCS status is kept (ms).
const EARLY_STATUS_TTL_MS: i64 = 3_600_000;

/// Applies results and provider statuses to recipients.
pub struct TrackingHandler {
    context: Arc<Context>,
}

enum Decoded {
    Result(OutboundResult),
    Status(InboundStatus),
    Other,
}

fn status_of(status: MessageStatus) -> RecipientStatus {
    match status {
        MessageStatus::Sent => RecipientStatus::Sent,
        MessageStatus::Delivered => RecipientStatus::Delivered,
        MessageStatus::Read => RecipientStatus::Read,
        MessageStatus::Failed => RecipientStatus::Failed,
    }
}

fn status_reason(status: &InboundStatus) -> Option<String> {
    status.errors.first().map(|error| {
        let mut reason = format!("{}: {}", error.code, error.title);
        if let Some(message) = &error.message {
            reason.push_str(&format!(" ({message})"));
        }
        reason
    })
}

fn transition(
    id: String,
    to: RecipientStatus,
    at: i64,
    provider_message_id: Option<&str>,
    reason: Option<String>,
) -> Transition {
    let mut set = doc! {};
    if let Some(provider_message_id) = provider_message_id {
        set.insert("provider_message_id", provider_message_id);
    }
    if let Some(reason) = reason {
        set.insert("reason", reason);
    }
    Transition { id, to, at, set }
}

impl TrackingHandler {
    /// A handler over the shared context.
    pub fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    async fn decode(&self, record: &Record) -> Result<Decoded, RecordOutcome> {
        let Some(payload) = record.payload.as_deref() else {
            return Err(RecordOutcome::poison("a record without a value"));
        };
        let codec = &self.context.codec;
        let decoded = match record.topic.as_str() {
            topics::OUTBOUND_RESULTS => codec
                .decode::<OutboundResult>(payload)
                .await
                .map(Decoded::Result),
            topics::INBOUND_STATUSES => codec
                .decode::<InboundStatus>(payload)
                .await
                .map(Decoded::Status),
            _ => return Ok(Decoded::Other),
        };
        decoded.map_err(|error| {
            if error.is_poison() {
                RecordOutcome::poison(error)
            } else {
                // Not poison: the registry is unreachable. Reported as a batch retry below.
                RecordOutcome::Poison(format!("retry: {error}"))
            }
        })
    }
}

impl BatchHandler for TrackingHandler {
    async fn handle_batch(&self, records: &[Record]) -> Result<Vec<RecordOutcome>, HandlerError> {
        let store = &self.context.store;
        let mut outcomes = Vec::with_capacity(records.len());
        let mut results = Vec::new();
        let mut statuses = Vec::new();
        for record in records {
            match self.decode(record).await {
                Ok(Decoded::Result(result)) => {
                    results.push(result);
                    outcomes.push(RecordOutcome::Done);
                }
                Ok(Decoded::Status(status)) => {
                    statuses.push(status);
                    outcomes.push(RecordOutcome::Done);
                }
                Ok(Decoded::Other) => outcomes.push(RecordOutcome::Done),
                Err(RecordOutcome::Poison(reason)) if reason.starts_with("retry: ") => {
                    return Err(HandlerError::retryable(reason));
                }
                Err(outcome) => outcomes.push(outcome),
            }
        }

        let mut transitions = Vec::new();
        let mut accepted_provider_ids = Vec::new();
        for result in results
            .iter()
            .filter(|result| result.origin == Origin::Campaign && result.campaign_id.is_some())
        {
            match result.outcome {
                SendOutcome::Accepted => {
                    if let Some(provider_message_id) = &result.provider_message_id {
                        accepted_provider_ids.push(provider_message_id.clone());
                    }
                    transitions.push(transition(
                        result.command_id.clone(),
                        RecipientStatus::Sent,
                        result.occurred_at,
                        result.provider_message_id.as_deref(),
                        None,
                    ));
                }
                SendOutcome::Failed => {
                    let reason = result
                        .error
                        .as_ref()
                        .map(|error| format!("{}: {}", error.code, error.reason))
                        .unwrap_or_else(|| "the send failed".to_string());
                    transitions.push(transition(
                        result.command_id.clone(),
                        RecipientStatus::Failed,
                        result.occurred_at,
                        None,
                        Some(reason),
                    ));
                }
            }
        }
        // Results first: the statuses below may be about the same messages.
        let now = now_ms();
        let applied_results = store
            .transition(&transitions, now)
            .await
            .map_err(HandlerError::retryable)?;

        let mut status_transitions = Vec::new();
        let mut unclaimed: Vec<&InboundStatus> = Vec::new();
        for status in &statuses {
            let callback = status
                .biz_opaque_callback_data
                .as_deref()
                .and_then(ids::parse_callback_data);
            match callback {
                Some((_, command_id)) => status_transitions.push(transition(
                    command_id.to_string(),
                    status_of(status.status),
                    status.occurred_at,
                    Some(&status.provider_message_id),
                    status_reason(status),
                )),
                None if status.channel == Channel::Rcs => unclaimed.push(status),
                None => {}
            }
        }
        if !unclaimed.is_empty() {
            let provider_ids: Vec<String> = unclaimed
                .iter()
                .map(|status| status.provider_message_id.clone())
                .collect();
            let owners: HashMap<String, (String, String)> = store
                .by_provider_message_ids(&provider_ids)
                .await
                .map_err(HandlerError::retryable)?
                .into_iter()
                .map(|(id, provider_message_id, tenant_id)| (provider_message_id, (id, tenant_id)))
                .collect();
            let mut early = Vec::new();
            for status in unclaimed {
                match owners.get(&status.provider_message_id) {
                    Some((id, tenant_id)) if *tenant_id == status.tenant_id => status_transitions
                        .push(transition(
                            id.clone(),
                            status_of(status.status),
                            status.occurred_at,
                            None,
                            status_reason(status),
                        )),
                    Some(_) => {}
                    None => early.push(EarlyStatus {
                        id: format!("{}:{:?}", status.provider_message_id, status.status),
                        provider_message_id: status.provider_message_id.clone(),
                        tenant_id: status.tenant_id.clone(),
                        status: status_of(status.status),
                        occurred_at: status.occurred_at,
                        reason: status_reason(status),
                        created_at: now,
                    }),
                }
            }
            store
                .stash_early(&early)
                .await
                .map_err(HandlerError::retryable)?;
        }
        // Statuses that came before the results just applied.
        let mut early_ids: Vec<String> = Vec::new();
        if !accepted_provider_ids.is_empty() {
            let early = store
                .take_early(&accepted_provider_ids)
                .await
                .map_err(HandlerError::retryable)?;
            if !early.is_empty() {
                let owners: HashMap<String, String> = results
                    .iter()
                    .filter_map(|result| {
                        result
                            .provider_message_id
                            .clone()
                            .map(|provider| (provider, result.command_id.clone()))
                    })
                    .collect();
                for status in &early {
                    if let Some(id) = owners.get(&status.provider_message_id) {
                        status_transitions.push(transition(
                            id.clone(),
                            status.status,
                            status.occurred_at,
                            None,
                            status.reason.clone(),
                        ));
                    }
                }
                early_ids = early.iter().map(|status| status.id.clone()).collect();
            }
        }
        let applied_statuses = store
            .transition(&status_transitions, now)
            .await
            .map_err(HandlerError::retryable)?;
        if !early_ids.is_empty() {
            // Only once applied: a failure above retries the batch with the stash intact.
            store
                .drop_early(&early_ids, now - EARLY_STATUS_TTL_MS)
                .await
                .map_err(HandlerError::retryable)?;
        }
        let tracking = &metrics().tracking;
        tracking
            .with_label_values(&["result"])
            .inc_by(applied_results);
        tracking
            .with_label_values(&["status"])
            .inc_by(applied_statuses);
        Ok(outcomes)
    }
}
