//! The batch handler: decode each record by its topic, dead-letter what cannot be stored,
//! persist the rest of the batch in one transaction and, once it committed, announce the
//! `seq`s it assigned ([`crate::announce`]).

use caas_runtime::clock::now_millis as now_ms;
use std::collections::HashMap;
use std::time::Instant;

use caas_events::model::{
    CampaignCommand, CampaignEvent, ConversationEvent, InboundMessage, InboundStatus,
    OutboundCommand, OutboundResult, PresenceEvent, PresenceUpdate,
};
use caas_events::{topics, Codec, DecodeError};
use caas_kafka::{BatchHandler, HandlerError, Record, RecordOutcome};

use crate::announce::Announcer;
use crate::domain::event::{Incoming, LoggedEvent};
use crate::metrics::metrics;
use crate::store::Store;

/// Which catalogue topic each subscribed topic name is.
#[derive(Debug, Clone)]
pub struct TopicMap {
    canonical_by_name: HashMap<String, &'static str>,
}

impl TopicMap {
    /// Map `<prefix><topic>` to `<topic>` for each catalogue topic in `topics`.
    pub fn new(prefix: &str, selected: &[String]) -> Self {
        let canonical_by_name = topics::ALL
            .iter()
            .filter(|topic| selected.iter().any(|chosen| chosen == *topic))
            .map(|topic| (format!("{prefix}{topic}"), *topic))
            .collect();
        Self { canonical_by_name }
    }

    /// The catalogue topic behind a consumed topic name.
    pub fn canonical(&self, topic: &str) -> Option<&'static str> {
        self.canonical_by_name.get(topic).copied()
    }
}

/// Decode `bytes` as the value type of the catalogue topic `canonical` (one of
/// [`topics::ALL`]).
pub async fn decode_event(
    codec: &Codec,
    canonical: &str,
    bytes: &[u8],
) -> Result<LoggedEvent, DecodeError> {
    Ok(match canonical {
        topics::INBOUND_MESSAGES => {
            LoggedEvent::InboundMessage(codec.decode::<InboundMessage>(bytes).await?)
        }
        topics::INBOUND_STATUSES => {
            LoggedEvent::InboundStatus(codec.decode::<InboundStatus>(bytes).await?)
        }
        topics::OUTBOUND_COMMANDS => {
            LoggedEvent::OutboundCommand(codec.decode::<OutboundCommand>(bytes).await?)
        }
        topics::OUTBOUND_RESULTS => {
            LoggedEvent::OutboundResult(codec.decode::<OutboundResult>(bytes).await?)
        }
        topics::CONVERSATION_EVENTS => {
            LoggedEvent::ConversationEvent(codec.decode::<ConversationEvent>(bytes).await?)
        }
        topics::PRESENCE_EVENTS => {
            LoggedEvent::PresenceEvent(codec.decode::<PresenceEvent>(bytes).await?)
        }
        topics::PRESENCE_UPDATES => {
            LoggedEvent::PresenceUpdate(codec.decode::<PresenceUpdate>(bytes).await?)
        }
        topics::CAMPAIGN_COMMANDS => {
            LoggedEvent::CampaignCommand(codec.decode::<CampaignCommand>(bytes).await?)
        }
        // `TopicMap` only maps catalogue topics, and this is the last one.
        _ => LoggedEvent::CampaignEvent(codec.decode::<CampaignEvent>(bytes).await?),
    })
}

/// The logger's [`BatchHandler`].
pub struct LoggerHandler {
    /// Where batches go.
    pub store: Store,
    /// Decodes records through the schema registry (writer schemas cached).
    pub codec: Codec,
    /// Consumed topic → catalogue topic.
    pub topics: TopicMap,
    /// Tells the gateway which `seq`s each committed batch assigned (best effort, never
    /// waits).
    pub announcer: Announcer,
}

/// Why a record was not turned into an [`Incoming`].
enum Rejected {
    /// Bad record: to the DLQ with this reason.
    Poison(String),
    /// Our side failed (the registry is unreachable): retry the batch.
    Retry(String),
}

impl LoggerHandler {
    async fn decode_record(&self, record: &Record) -> Result<Incoming, Rejected> {
        let Some(canonical) = self.topics.canonical(&record.topic) else {
            return Err(Rejected::Poison(format!(
                "topic {} is not one the logger consumes",
                record.topic
            )));
        };
        let Some(bytes) = record.payload.as_deref() else {
            return Err(Rejected::Poison(
                "tombstone: the record has no value".to_string(),
            ));
        };
        let event = match decode_event(&self.codec, canonical, bytes).await {
            Ok(event) => event,
            Err(error) if error.is_poison() => {
                metrics()
                    .rejected
                    .with_label_values(&[canonical, error.kind()])
                    .inc();
                return Err(Rejected::Poison(format!("{} ({})", error, error.kind())));
            }
            Err(error) => return Err(Rejected::Retry(error.to_string())),
        };
        if let Some(violation) = event.contract_violation() {
            metrics()
                .rejected
                .with_label_values(&[canonical, "contract"])
                .inc();
            return Err(Rejected::Poison(violation));
        }
        Ok(Incoming {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.clone(),
            event,
        })
    }
}

impl BatchHandler for LoggerHandler {
    async fn handle_batch(&self, records: &[Record]) -> Result<Vec<RecordOutcome>, HandlerError> {
        let mut outcomes = vec![RecordOutcome::Done; records.len()];
        let mut incoming = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match self.decode_record(record).await {
                Ok(item) => incoming.push(item),
                Err(Rejected::Poison(reason)) => outcomes[index] = RecordOutcome::Poison(reason),
                Err(Rejected::Retry(reason)) => {
                    return Err(HandlerError::retryable(format!(
                        "cannot decode {}[{}]@{}: {reason}",
                        record.topic, record.partition, record.offset
                    )))
                }
            }
        }
        if incoming.is_empty() {
            return Ok(outcomes);
        }
        let started = Instant::now();
        let mut report = self
            .store
            .persist(&incoming, now_ms())
            .await
            .map_err(|error| {
                let transient = crate::store::is_transient(&error);
                metrics()
                    .batch_failures
                    .with_label_values(&[if transient { "transient" } else { "other" }])
                    .inc();
                HandlerError::retryable(error)
            })?;
        // Committed: durable first, then the notification (queued; the batch does not wait).
        self.announcer
            .announce(std::mem::take(&mut report.announcement));
        metrics()
            .persist_duration
            .observe(started.elapsed().as_secs_f64());
        metrics()
            .events
            .with_label_values(&["stored"])
            .inc_by(report.stored as u64);
        metrics()
            .events
            .with_label_values(&["duplicate"])
            .inc_by(report.duplicates as u64);
        metrics()
            .events
            .with_label_values(&["erased"])
            .inc_by(report.erased as u64);
        tracing::debug!(
            records = records.len(),
            stored = report.stored,
            duplicates = report.duplicates,
            conversations = report.conversations,
            messages = report.messages,
            "batch persisted"
        );
        Ok(outcomes)
    }
}
