//! Inbound messages and statuses (`inbound.messages.v1`, `inbound.statuses.v1`).

use serde::{Deserialize, Serialize};

use super::{Channel, Content};

/// A customer's message, normalised from a webhook (`caas.v1.InboundMessage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Unique, deterministic id (see [`crate::keys::deterministic_event_id`]).
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `<tenant_id>:<channel>:<customer_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel.
    pub channel: Channel,
    /// When the customer sent it (provider timestamp), epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// The provider's message id (WhatsApp `wamid...`, RCS `messageId`).
    pub provider_message_id: String,
    /// The customer's address on the channel (wa_id / E.164 number).
    pub customer_id: String,
    /// The customer's profile name, when sent.
    pub customer_display_name: Option<String>,
    /// The receiving business endpoint (WhatsApp `phone_number_id`, RCS `agentId`).
    pub business_id: Option<String>,
    /// The message this one replies to.
    pub reply_to: Option<ReplyContext>,
    /// What the customer sent.
    pub content: Content,
}

/// The message a customer's message replies to (`caas.v1.ReplyContext`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// Provider message id of the message replied to.
    pub provider_message_id: String,
    /// Its sender, as the provider reports it.
    pub from: Option<String>,
}

/// Delivery status of a message we sent (`caas.v1.MessageStatus`); moves forward only:
/// sent < delivered < read; failed is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// The provider sent it.
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It could not be delivered.
    Failed,
}

/// An error the provider reported (`caas.v1.ProviderError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    /// The provider's error code as text.
    pub code: String,
    /// Short title.
    pub title: String,
    /// Longer message.
    pub message: Option<String>,
    /// Further details.
    pub details: Option<String>,
}

/// The provider's billing conversation (`caas.v1.ProviderConversation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConversation {
    /// The provider's conversation id.
    pub id: String,
    /// What opened it (`service`, `marketing`, ...).
    pub origin_type: Option<String>,
    /// When its window expires, epoch milliseconds.
    pub expires_at: Option<i64>,
}

/// Pricing information on a status (`caas.v1.Pricing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Whether the message is billable.
    pub billable: bool,
    /// The pricing model.
    pub pricing_model: Option<String>,
    /// The pricing category.
    pub category: Option<String>,
}

/// A provider status of a message we sent (`caas.v1.InboundStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundStatus {
    /// Unique, deterministic id.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `<tenant_id>:<channel>:<customer_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel.
    pub channel: Channel,
    /// The provider's status timestamp, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// The provider's id of the message the status is about.
    pub provider_message_id: String,
    /// The new status.
    pub status: MessageStatus,
    /// The customer the message was sent to.
    pub recipient_id: String,
    /// The sending business endpoint.
    pub business_id: Option<String>,
    /// Errors the provider reported (usually with `failed`).
    pub errors: Vec<ProviderError>,
    /// The provider's billing conversation.
    pub conversation: Option<ProviderConversation>,
    /// Pricing information.
    pub pricing: Option<Pricing>,
    /// The opaque data attached when sending, echoed back.
    pub biz_opaque_callback_data: Option<String>,
}
