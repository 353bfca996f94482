//! Producing events: encoded through the registry, keyed by the event's key, with the
//! `traceparent` header of the envelope, all records of a call sent concurrently and
//! acknowledged (acks=all) before the call returns.

use caas_events::{Codec, EncodeError, Event};
use caas_kafka::{OutboundRecord, ProduceError, Producer, TraceParent};

/// A record could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The registry could not be reached or refused the schema.
    #[error("cannot encode a {topic} record: {source}")]
    Encode {
        /// The topic.
        topic: &'static str,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// Kafka did not acknowledge it.
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

/// The service's producer with its codec.
#[derive(Clone)]
pub struct Publisher {
    producer: Producer,
    codec: Codec,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher over a producer and a codec.
    pub fn new(producer: Producer, codec: Codec) -> Self {
        Self { producer, codec }
    }

    /// The producer (dead-letter queues, flush on shutdown).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Produce every event and wait for all acknowledgements; the first failure is returned
    /// (the others may have been written: every event has a deterministic id or is harmless
    /// twice).
    pub async fn publish<E: Event>(&self, events: &[E]) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let payload =
                self.codec
                    .encode(event)
                    .await
                    .map_err(|source| PublishError::Encode {
                        topic: E::TOPIC,
                        source,
                    })?;
            let mut record = OutboundRecord::new(E::TOPIC, event.key(), payload);
            if let Some(trace) = event
                .trace_parent()
                .and_then(|text| TraceParent::parse(text).ok())
            {
                record = record.with_traceparent(&trace);
            }
            records.push(record);
        }
        for outcome in self.producer.send_all(records).await {
            outcome?;
        }
        Ok(())
    }
}
