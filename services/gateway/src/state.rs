//! What the socket.io handlers and the REST API share: the token secret, the Kafka publisher
//! for operator actions, and the logger's store.

use caas_events::{Codec, EncodeError, Event};
use caas_kafka::{OutboundRecord, ProduceError, Producer, TraceParent};
use caas_runtime::Secret;

use crate::domain::actions::ConversationState;
use crate::store::Store;

/// Shared by every handler (behind an `Arc`).
pub struct Shared {
    /// `CAAS_JWT_SECRET`.
    pub jwt_secret: Secret,
    /// Produces operator actions.
    pub publisher: Publisher,
    /// Reads the logger's documents.
    pub store: Store,
    /// `CAAS_REDIS_URL`, for data-rights requests (presence and de-duplication keys).
    pub redis_url: Secret,
    /// The socket.io server, set once it is built, so the REST API can notify operators.
    pub io: std::sync::OnceLock<crate::realtime::Io>,
    /// This instance's sockets tailing the event explorer, per tenant.
    pub explorer: crate::explorer::Subscribers,
}

impl Shared {
    /// What the logger knows about a conversation, for the checks of an action. Unknown (not
    /// an error) when MongoDB does not answer: the downstream services judge then.
    pub async fn conversation_state(&self, conversation_key: &str) -> ConversationState {
        match self.store.conversation(conversation_key).await {
            Ok(Some(conversation)) => ConversationState {
                known: true,
                assignee: conversation.assignee,
                last_inbound_at: conversation.last_inbound_at,
            },
            Ok(None) => ConversationState::default(),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the conversation; acting without its state");
                ConversationState::default()
            }
        }
    }
}

/// An operator action could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The schema registry could not give the schema id.
    #[error("cannot encode the event: {0}")]
    Encode(#[from] EncodeError),
    /// Kafka did not acknowledge the record.
    #[error("{0}")]
    Produce(#[from] ProduceError),
}

/// Encodes events through the registry and produces them, acknowledged (`acks=all`).
#[derive(Clone)]
pub struct Publisher {
    producer: Producer,
    codec: Codec,
}

impl Publisher {
    /// A publisher over a producer and a codec.
    pub fn new(producer: Producer, codec: Codec) -> Self {
        Self { producer, codec }
    }

    /// The producer (flushed on shutdown, shared with the consumer's DLQ).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The codec (shared with the consumer).
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Produce `event` to its topic, keyed by its conversation (or operator) key, with its
    /// `trace_parent` also as the `traceparent` header; resolves once Kafka acknowledged it.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<(), PublishError> {
        let payload = self.codec.encode(event).await?;
        let mut record = OutboundRecord::new(E::TOPIC, event.key(), payload);
        if let Some(traceparent) = event
            .trace_parent()
            .and_then(|value| TraceParent::parse(value).ok())
        {
            record = record.with_traceparent(&traceparent);
        }
        self.producer.send(record).await?;
        Ok(())
    }
}
