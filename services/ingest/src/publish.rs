//! The Kafka side: events encoded through the schema registry (ids resolved once and cached by
//! [`Codec`]) and produced with the idempotent `acks=all` producer, keyed by conversation key,
//! with the request's `traceparent` header.

use std::time::Duration;

use caas_events::model::{ConversationEvent, InboundMessage, InboundStatus, PresenceEvent};
use caas_events::Codec;
use caas_kafka::{OutboundRecord, Producer, TraceParent};
use caas_runtime::shutdown::CancellationToken;

use crate::events::{IngestEvent, SchemaIds};
use crate::pipeline::{EventSink, PublishError};

/// The largest record (key, value and headers) ingest hands to Kafka: the producer's
/// `message.max.bytes` (librdkafka's default, 1,000,000) less room for the record framing.
/// Real provider events are a few KB; only abuse comes near it.
pub const MAX_RECORD_BYTES: usize = 990_000;

/// Produces events to Kafka.
#[derive(Clone)]
pub struct KafkaSink {
    producer: Producer,
    codec: Codec,
}

impl KafkaSink {
    /// A sink over a producer and a codec.
    pub fn new(producer: Producer, codec: Codec) -> Self {
        Self { producer, codec }
    }

    /// The producer (flushed on shutdown).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The four schema ids, from the cache or the registry.
    pub async fn schema_ids(&self) -> Result<SchemaIds, caas_events::EncodeError> {
        Ok(SchemaIds {
            message: self.codec.schema_id::<InboundMessage>().await?,
            status: self.codec.schema_id::<InboundStatus>().await?,
            presence: self.codec.schema_id::<PresenceEvent>().await?,
            conversation: self.codec.schema_id::<ConversationEvent>().await?,
        })
    }

    /// Resolve the schema ids in the background until it works (or `shutdown`), so the first
    /// webhook after start-up does not wait for the registry, and a registry that is down at
    /// start-up only delays, never prevents, readiness.
    pub fn warm_up(&self, shutdown: CancellationToken) {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut logged_failure = false;
            loop {
                match sink.schema_ids().await {
                    Ok(ids) => {
                        tracing::info!(
                            inbound_messages = ids.message,
                            inbound_statuses = ids.status,
                            presence_events = ids.presence,
                            "schema ids resolved"
                        );
                        return;
                    }
                    Err(error) if !logged_failure => {
                        tracing::warn!(error = %error, "schema ids not resolved yet; retrying");
                        logged_failure = true;
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        });
    }
}

impl EventSink for KafkaSink {
    async fn publish(
        &self,
        events: &[&IngestEvent],
        trace_parent: &TraceParent,
    ) -> Vec<Result<(), PublishError>> {
        let schema_ids = match self.schema_ids().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(error = %error, "cannot resolve schema ids");
                let reason = error.to_string();
                return events
                    .iter()
                    .map(|_| {
                        Err(PublishError::Registry {
                            reason: reason.clone(),
                        })
                    })
                    .collect();
            }
        };
        // `None`: handed to the producer; `Some`: failed before that.
        let mut encode_failures: Vec<Option<PublishError>> = Vec::with_capacity(events.len());
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            match event.encode(&schema_ids) {
                Ok(payload) => {
                    records.push(
                        OutboundRecord::new(event.topic(), event.key(), payload)
                            .with_traceparent(trace_parent),
                    );
                    encode_failures.push(None);
                }
                Err(error) => encode_failures.push(Some(PublishError::Encode(error))),
            }
        }
        // All or nothing for a record Kafka would refuse for its size: producing the request's
        // other events first would leave a part of a webhook that is never coming back.
        let largest = records
            .iter()
            .map(OutboundRecord::size_bytes)
            .max()
            .unwrap_or(0);
        if largest > MAX_RECORD_BYTES {
            return events
                .iter()
                .map(|_| {
                    Err(PublishError::TooLarge {
                        bytes: largest,
                        limit: MAX_RECORD_BYTES,
                    })
                })
                .collect();
        }
        let mut deliveries = self.producer.send_all(records).await.into_iter();
        encode_failures
            .into_iter()
            .map(|failure| match failure {
                Some(error) => Err(error),
                None => match deliveries.next() {
                    Some(delivery) => delivery.map(|_| ()).map_err(PublishError::from),
                    None => Err(PublishError::Registry {
                        reason: "the producer returned fewer results than records".to_string(),
                    }),
                },
            })
            .collect()
    }
}
