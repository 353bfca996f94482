//! Presence signals and derived presence state (`presence.events.v1`, `presence.updates.v1`).
//!
//! Presence of an operator that belongs to no conversation (online, offline) is keyed by the
//! operator key and has no channel, so `channel` is optional on these two events only.

use serde::{Deserialize, Serialize};

use super::Channel;

/// The presence signal (`caas.v1.PresenceKind`). Readers map kinds added after their schema to
/// `Unknown` (the enum's Avro default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    /// Typing.
    Typing,
    /// Online.
    Online,
    /// Offline.
    Offline,
    /// Read messages up to one.
    Read,
    /// Last seen at a time.
    LastSeen,
    /// A kind this reader does not know.
    Unknown,
}

/// Whose presence it is (`caas.v1.PresenceSubject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceSubject {
    /// The customer.
    Customer,
    /// An operator.
    Operator,
}

/// A raw presence signal (`caas.v1.PresenceEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEvent {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// Conversation key, or operator key for an operator's own online/offline; the Kafka key.
    pub conversation_key: String,
    /// The conversation's channel; `None` outside a conversation.
    pub channel: Option<Channel>,
    /// When the signal happened, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// The signal.
    pub kind: PresenceKind,
    /// Whose presence it is.
    pub subject: PresenceSubject,
    /// The customer id or operator id.
    pub subject_id: String,
    /// For `read`: the provider message id read up to.
    pub provider_message_id: Option<String>,
    /// When the signal lapses unless repeated, epoch milliseconds.
    pub expires_at: Option<i64>,
}

/// A derived presence state change (`caas.v1.PresenceUpdate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceUpdate {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// Conversation key, or operator key; the Kafka key.
    pub conversation_key: String,
    /// The conversation's channel; `None` outside a conversation.
    pub channel: Option<Channel>,
    /// When the state changed, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// Which state changed.
    pub kind: PresenceKind,
    /// Whose presence it is.
    pub subject: PresenceSubject,
    /// The customer id or operator id.
    pub subject_id: String,
    /// True while the state holds; false when it ended or expired.
    pub active: bool,
    /// When the subject was last seen, epoch milliseconds.
    pub last_seen_at: Option<i64>,
    /// For `read`: the provider message id read up to.
    pub read_provider_message_id: Option<String>,
    /// When this state lapses unless refreshed, epoch milliseconds.
    pub expires_at: Option<i64>,
}
