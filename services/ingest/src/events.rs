//! What one webhook becomes: a [`Batch`] of [`IngestEvent`]s (each an Avro event of
//! `caas-events`), plus what was deliberately not produced (unknown tenants, kinds we do not
//! carry) so the edge can count and log it.

use caas_events::model::{
    Content, ConversationEvent, ConversationEventKind, InboundMessage, InboundStatus,
    MessageStatus, PresenceEvent,
};
use caas_events::{wire, EncodeError, Event};

/// The `source` of every event this service produces.
pub const SOURCE: &str = "ingest";

/// Facts about the request that every event of it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// When the request is handled, epoch milliseconds (the events' `recorded_at`).
    pub recorded_at: i64,
    /// The W3C `traceparent` of the request, carried in the envelope and the Kafka header.
    pub trace_parent: Option<String>,
}

/// One event to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestEvent {
    /// A customer's message → `inbound.messages.v1`.
    Message(InboundMessage),
    /// A status of a message we sent → `inbound.statuses.v1`.
    Status(InboundStatus),
    /// A presence signal (RBM `IS_TYPING`) → `presence.events.v1`.
    Presence(PresenceEvent),
    /// A change of the customer's consent (RBM `UNSUBSCRIBE` / `SUBSCRIBE`) →
    /// `conversation.events.v1`.
    Conversation(ConversationEvent),
}

/// The registry ids of the four schemas ingest writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaIds {
    /// Id of `inbound.messages.v1-value`.
    pub message: u32,
    /// Id of `inbound.statuses.v1-value`.
    pub status: u32,
    /// Id of `presence.events.v1-value`.
    pub presence: u32,
    /// Id of `conversation.events.v1-value`.
    pub conversation: u32,
}

impl IngestEvent {
    /// The deterministic event id, also the de-duplication key.
    pub fn event_id(&self) -> &str {
        match self {
            IngestEvent::Message(event) => event.event_id(),
            IngestEvent::Status(event) => event.event_id(),
            IngestEvent::Presence(event) => event.event_id(),
            IngestEvent::Conversation(event) => event.event_id(),
        }
    }

    /// The Kafka key: the conversation key.
    pub fn key(&self) -> &str {
        match self {
            IngestEvent::Message(event) => event.key(),
            IngestEvent::Status(event) => event.key(),
            IngestEvent::Presence(event) => event.key(),
            IngestEvent::Conversation(event) => event.key(),
        }
    }

    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        match self {
            IngestEvent::Message(event) => event.tenant_id(),
            IngestEvent::Status(event) => event.tenant_id(),
            IngestEvent::Presence(event) => event.tenant_id(),
            IngestEvent::Conversation(event) => event.tenant_id(),
        }
    }

    /// The destination topic.
    pub fn topic(&self) -> &'static str {
        match self {
            IngestEvent::Message(_) => InboundMessage::TOPIC,
            IngestEvent::Status(_) => InboundStatus::TOPIC,
            IngestEvent::Presence(_) => PresenceEvent::TOPIC,
            IngestEvent::Conversation(_) => ConversationEvent::TOPIC,
        }
    }

    /// Bounded metric label of the event type: `message`, `status`, `presence` or
    /// `conversation`.
    pub fn event_type(&self) -> &'static str {
        match self {
            IngestEvent::Message(_) => "message",
            IngestEvent::Status(_) => "status",
            IngestEvent::Presence(_) => "presence",
            IngestEvent::Conversation(_) => "conversation",
        }
    }

    /// Bounded metric label of what it carries: the content kind of a message (`text`,
    /// `media`, ...), the status value, the presence kind, or the conversation event kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IngestEvent::Message(message) => content_kind(&message.content),
            IngestEvent::Status(status) => match status.status {
                MessageStatus::Sent => "sent",
                MessageStatus::Delivered => "delivered",
                MessageStatus::Read => "read",
                MessageStatus::Failed => "failed",
            },
            IngestEvent::Presence(_) => "typing",
            IngestEvent::Conversation(event) => match event.kind {
                ConversationEventKind::OptedOut => "opted_out",
                ConversationEventKind::OptedIn => "opted_in",
                _ => "other",
            },
        }
    }

    /// Encodes the event in the Confluent wire format with the given schema ids.
    pub fn encode(&self, schema_ids: &SchemaIds) -> Result<Vec<u8>, EncodeError> {
        match self {
            IngestEvent::Message(event) => wire::encode(schema_ids.message, event),
            IngestEvent::Status(event) => wire::encode(schema_ids.status, event),
            IngestEvent::Presence(event) => wire::encode(schema_ids.presence, event),
            IngestEvent::Conversation(event) => wire::encode(schema_ids.conversation, event),
        }
    }
}

/// Bounded label of a content union branch.
pub fn content_kind(content: &Content) -> &'static str {
    match content {
        Content::Text(_) => "text",
        Content::Media(_) => "media",
        Content::Location(_) => "location",
        Content::Contacts(_) => "contacts",
        Content::InteractiveReply(_) => "interactive_reply",
        Content::Reaction(_) => "reaction",
        Content::Template(_) => "template",
        Content::Interactive(_) => "interactive",
        Content::Unsupported(_) => "unsupported",
    }
}

/// Something in a webhook that is deliberately not produced (answered 200 all the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Bounded metric label, e.g. `unknown_tenant`, `unknown_status`, `other_field`.
    pub reason: &'static str,
    /// For the log line: which endpoint, field or value.
    pub detail: String,
}

/// Everything one webhook request yields, in the order of the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Events to produce.
    pub events: Vec<IngestEvent>,
    /// What was not produced, and why.
    pub skipped: Vec<Skipped>,
}

impl Batch {
    /// How many parts were skipped because their business endpoint maps to no tenant.
    pub fn unknown_tenants(&self) -> usize {
        self.skipped
            .iter()
            .filter(|skipped| skipped.reason == UNKNOWN_TENANT)
            .count()
    }
}

/// [`Skipped::reason`] of a phone number id or agent that maps to no tenant.
pub const UNKNOWN_TENANT: &str = "unknown_tenant";
