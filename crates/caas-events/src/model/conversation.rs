//! Conversation handling changes (`conversation.events.v1`): handoffs, assignment, closing, and
//! the customer's opt-out / opt-in.

use serde::{Deserialize, Serialize};

use super::Channel;

/// What happened to a conversation (`caas.v1.ConversationEventKind`). Readers map kinds added
/// after their schema to `Unknown` (the enum's Avro default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationEventKind {
    /// The bot (or the customer) asked for a human.
    HandoffToHuman,
    /// An operator was assigned.
    Assigned,
    /// The assignee let go without releasing to the bot.
    Unassigned,
    /// The bot takes over again.
    ReleasedToBot,
    /// The conversation was closed.
    Closed,
    /// A closed conversation was reopened.
    Reopened,
    /// A kind this reader does not know.
    Unknown,
    /// The customer withdrew consent to marketing messages on this channel (RCS
    /// `UNSUBSCRIBE`, or a STOP keyword the campaign service recognised). Added after
    /// `unknown`, so older readers see `Unknown`.
    OptedOut,
    /// The customer gave consent again (RCS `SUBSCRIBE`, or a START keyword).
    OptedIn,
}

/// A change of a conversation's handling (`caas.v1.ConversationEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationEvent {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `<tenant_id>:<channel>:<customer_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel.
    pub channel: Channel,
    /// When it happened, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// What happened.
    pub kind: ConversationEventKind,
    /// The operator who did it; `None` for the bot, the system or an integrator.
    pub actor_operator_id: Option<String>,
    /// The assignee after this event.
    pub assignee_operator_id: Option<String>,
    /// The assignee before this event.
    pub previous_assignee_operator_id: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
}
