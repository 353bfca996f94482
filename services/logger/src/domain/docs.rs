//! The MongoDB documents the logger writes, as Rust types, and their deterministic ids.
//!
//! These are the contract other services read (the gateway's REST API above all); the
//! README lists every field. Times are BSON dates except inside the raw status observations,
//! which keep epoch milliseconds.

use mongodb::bson::{DateTime, Document};
use serde::{Deserialize, Serialize};

use super::status::{DeliveryStatus, MessageError, StatusObservation, StatusSet};

/// Every processed event, `_id` = event id.
pub const EVENTS: &str = "events";
/// One document per message, inbound or outbound.
pub const MESSAGES: &str = "messages";
/// One document per conversation key.
pub const CONVERSATIONS: &str = "conversations";
/// Provider statuses that arrived before the send result told which message they are about.
pub const ORPHAN_STATUSES: &str = "orphan_statuses";

/// The `_id` of an inbound message: `in:<channel>:<provider message id>`.
pub fn inbound_message_id(channel: &str, provider_message_id: &str) -> String {
    format!("in:{channel}:{provider_message_id}")
}

/// The `_id` of an outbound message: `out:<tenant>:<command id>`.
pub fn outbound_message_id(tenant_id: &str, command_id: &str) -> String {
    format!("out:{tenant_id}:{command_id}")
}

/// The `_id` of the orphan statuses of a provider message id: `<tenant>:<channel>:<id>`.
pub fn orphan_status_id(tenant_id: &str, channel: &str, provider_message_id: &str) -> String {
    format!("{tenant_id}:{channel}:{provider_message_id}")
}

/// A stored event (`events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDoc {
    /// The event id.
    #[serde(rename = "_id")]
    pub id: String,
    /// `inbound_message`, `inbound_status`, `outbound_command`, `outbound_result`,
    /// `conversation_event`, `presence_event`, `presence_update`, `campaign_command` or
    /// `campaign_event`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The topic it was consumed from.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The Kafka key.
    pub key: Option<String>,
    /// The tenant.
    pub tenant_id: String,
    /// The envelope's key: conversation, operator or campaign key.
    pub conversation_key: String,
    /// The customers the event is about (the conversation's customer, or a campaign's inline
    /// recipients); what export and erasure look for.
    pub customer_ids: Vec<String>,
    /// The conversation sequence number this event was given, for the five topics that change
    /// a conversation; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The `messages` document this event changed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The envelope's `occurred_at`.
    pub occurred_at: DateTime,
    /// The envelope's `recorded_at`.
    pub recorded_at: DateTime,
    /// When the logger stored it; the retention TTL counts from here.
    pub stored_at: DateTime,
    /// The decoded event, field for field as in its Avro schema.
    pub payload: Document,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The customer.
    Inbound,
    /// The business (bot, operator, campaign, integrator).
    Outbound,
}

impl Direction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The status of every inbound message.
pub const RECEIVED: &str = "received";

/// One step of a message's timeline, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineDoc {
    /// The status reached.
    pub status: DeliveryStatus,
    /// When.
    pub at: DateTime,
    /// The event that reported it; absent when inferred.
    #[serde(default)]
    pub event_id: Option<String>,
    /// True when filled from a later status (a `read` without `delivered`).
    pub inferred: bool,
}

/// A message (`messages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDoc {
    /// [`inbound_message_id`] or [`outbound_message_id`].
    #[serde(rename = "_id")]
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The conversation.
    pub conversation_key: String,
    /// `whatsapp` or `rcs`.
    pub channel: String,
    /// The customer.
    pub customer_id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The provider's id (inbound: always; outbound: once the send was accepted).
    #[serde(default)]
    pub provider_message_id: Option<String>,
    /// The send request (outbound).
    #[serde(default)]
    pub command_id: Option<String>,
    /// Who asked for the send: `bot`, `campaign`, `operator`, `integrator` (outbound).
    #[serde(default)]
    pub origin: Option<String>,
    /// The operator who sent it.
    #[serde(default)]
    pub operator_id: Option<String>,
    /// The campaign that sent it.
    #[serde(default)]
    pub campaign_id: Option<String>,
    /// The provider message id this one replies to.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The content's kind: `text`, `media`, `location`, ... (absent while only the send result
    /// is known).
    #[serde(default)]
    pub content_type: Option<String>,
    /// A short human-readable preview of the content.
    #[serde(default)]
    pub preview: Option<String>,
    /// The content, as in the Avro `content` union.
    #[serde(default)]
    pub content: Option<Document>,
    /// When the customer wrote it or the send was requested.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// `received` (inbound) or the delivery status (outbound).
    pub status: String,
    /// Outbound: the earliest observation of each status (epoch milliseconds); the source the
    /// status and timeline are derived from.
    #[serde(default)]
    pub statuses: Vec<StatusObservation>,
    /// Outbound: each status reached, gaps filled.
    #[serde(default)]
    pub timeline: Vec<TimelineDoc>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<MessageError>,
    /// How many provider calls the sender made.
    #[serde(default)]
    pub send_attempts: Option<i32>,
    /// The conversation sequence number of this message's latest change.
    pub seq: i64,
    /// When the logger last changed it; the retention TTL counts from here.
    pub updated_at: DateTime,
}

impl MessageDoc {
    /// A message with only its identity known.
    pub fn empty(
        id: String,
        direction: Direction,
        tenant_id: &str,
        conversation_key: &str,
        channel: &str,
        customer_id: &str,
        now: DateTime,
    ) -> Self {
        Self {
            id,
            tenant_id: tenant_id.to_string(),
            conversation_key: conversation_key.to_string(),
            channel: channel.to_string(),
            customer_id: customer_id.to_string(),
            direction,
            provider_message_id: None,
            command_id: None,
            origin: None,
            operator_id: None,
            campaign_id: None,
            reply_to: None,
            content_type: None,
            preview: None,
            content: None,
            created_at: None,
            status: match direction {
                Direction::Inbound => RECEIVED.to_string(),
                Direction::Outbound => DeliveryStatus::Queued.as_str().to_string(),
            },
            statuses: Vec::new(),
            timeline: Vec::new(),
            error: None,
            send_attempts: None,
            seq: 0,
            updated_at: now,
        }
    }

    /// The observed statuses as a set.
    pub fn status_set(&self) -> StatusSet {
        StatusSet::from_observations(self.statuses.iter().cloned())
    }

    /// Replace the statuses and recompute every field derived from them.
    pub fn set_statuses(&mut self, set: &StatusSet) {
        self.statuses = set.observations();
        if self.direction == Direction::Inbound {
            return;
        }
        self.status = set
            .current()
            .unwrap_or(DeliveryStatus::Queued)
            .as_str()
            .to_string();
        self.timeline = set
            .timeline()
            .into_iter()
            .map(|entry| TimelineDoc {
                status: entry.status,
                at: DateTime::from_millis(entry.at),
                event_id: entry.event_id,
                inferred: entry.inferred,
            })
            .collect();
        self.error = set.error().cloned();
    }

    /// Add one observation and recompute.
    pub fn observe(&mut self, observation: StatusObservation) {
        let mut set = self.status_set();
        set.observe(observation);
        self.set_statuses(&set);
    }
}

/// Who handles a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The chatbot answers.
    Bot,
    /// An operator answers.
    Human,
}

/// Whether a conversation is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// Open.
    Open,
    /// Closed by an operator or the bot; a customer message reopens it.
    Closed,
}

/// The newest message of a conversation, for the dashboard's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    /// Its `messages` `_id`.
    pub message_id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The content's kind.
    #[serde(default)]
    pub content_type: Option<String>,
    /// A short preview.
    #[serde(default)]
    pub preview: Option<String>,
    /// When it was written.
    pub at: DateTime,
    /// The sequence number of the event that made it the last message.
    pub seq: i64,
}

/// A conversation (`conversations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationDoc {
    /// The conversation key `<tenant>:<channel>:<customer>`.
    #[serde(rename = "_id")]
    pub key: String,
    /// The tenant.
    pub tenant_id: String,
    /// `whatsapp` or `rcs`.
    pub channel: String,
    /// The customer's address on the channel.
    pub customer_id: String,
    /// The customer's profile name, as last sent.
    #[serde(default)]
    pub customer_display_name: Option<String>,
    /// Incremented by one with every change; see the README.
    pub seq: i64,
    /// The newest message.
    #[serde(default)]
    pub last_message: Option<LastMessage>,
    /// Customer messages since an operator last replied.
    pub unread_count: i64,
    /// When the customer last wrote (the 24-hour window starts here).
    #[serde(default)]
    pub last_inbound_at: Option<DateTime>,
    /// Bot or human.
    pub mode: Mode,
    /// The operator assigned, if any.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Open or closed.
    pub state: ConversationState,
    /// Whether the customer withdrew consent to marketing on this channel (STOP,
    /// `UNSUBSCRIBE`); the campaign service's `consents` is the authority, this is for display.
    #[serde(default)]
    pub opted_out: bool,
    /// When the logger first saw it.
    pub created_at: DateTime,
    /// When the logger last changed it; the retention TTL counts from here.
    pub updated_at: DateTime,
}

impl ConversationDoc {
    /// A new conversation, handled by the bot.
    pub fn new(
        key: &str,
        tenant_id: &str,
        channel: &str,
        customer_id: &str,
        now: DateTime,
    ) -> Self {
        Self {
            key: key.to_string(),
            tenant_id: tenant_id.to_string(),
            channel: channel.to_string(),
            customer_id: customer_id.to_string(),
            customer_display_name: None,
            seq: 0,
            last_message: None,
            unread_count: 0,
            last_inbound_at: None,
            mode: Mode::Bot,
            assignee: None,
            state: ConversationState::Open,
            opted_out: false,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Statuses of a provider message id no stored message claims yet (`orphan_statuses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanStatusDoc {
    /// [`orphan_status_id`].
    #[serde(rename = "_id")]
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The conversation.
    pub conversation_key: String,
    /// The channel.
    pub channel: String,
    /// The provider message id the statuses are about.
    pub provider_message_id: String,
    /// The earliest observation of each status.
    pub statuses: Vec<StatusObservation>,
    /// The highest sequence number among the status events.
    pub seq: i64,
    /// When last changed; expired by its own retention.
    pub updated_at: DateTime,
}
