//! Send requests and their outcomes (`outbound.commands.v1`, `outbound.results.v1`).

use serde::{Deserialize, Serialize};

use super::{Channel, Content};

/// Who asked for a message to be sent (`caas.v1.Origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The chatbot.
    Bot,
    /// A campaign.
    Campaign,
    /// An operator on the dashboard.
    Operator,
    /// An integrator producing to the topic.
    Integrator,
}

/// A request to send one message (`caas.v1.OutboundCommand`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundCommand {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `<tenant_id>:<channel>:<customer_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel to send on.
    pub channel: Channel,
    /// When the send was requested, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// Unique id of the send request; the idempotency key of the provider call.
    pub command_id: String,
    /// The customer's address on the channel.
    pub to: String,
    /// What to send.
    pub content: Content,
    /// Who asked for the send.
    pub origin: Origin,
    /// The campaign, when `origin` is `campaign`.
    pub campaign_id: Option<String>,
    /// Provider message id to reply to (quoted reply).
    pub reply_to: Option<String>,
    /// The operator, when `origin` is `operator`.
    pub operator_id: Option<String>,
    /// The business endpoint to send from; `None` for the tenant's default.
    pub business_id: Option<String>,
    /// Opaque data passed to the provider and echoed on statuses.
    pub callback_data: Option<String>,
}

/// What the provider answered (`caas.v1.SendOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// The provider has the message.
    Accepted,
    /// It refused, or could not be reached after retries.
    Failed,
}

/// Why a send failed (`caas.v1.SendError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendError {
    /// The provider's code or a CAAS code (`window_closed`, `opted_out`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub reason: String,
    /// Whether sending the same command again later may succeed.
    pub retryable: bool,
}

/// The outcome of one outbound command (`caas.v1.OutboundResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundResult {
    /// Unique id of the event.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `<tenant_id>:<channel>:<customer_id>`; the Kafka key.
    pub conversation_key: String,
    /// The channel.
    pub channel: Channel,
    /// When the provider answered, epoch milliseconds.
    pub occurred_at: i64,
    /// When CAAS produced this event, epoch milliseconds.
    pub recorded_at: i64,
    /// The producing component.
    pub source: String,
    /// W3C `traceparent`.
    pub trace_parent: Option<String>,
    /// The command this answers.
    pub command_id: String,
    /// Accepted or failed.
    pub outcome: SendOutcome,
    /// The provider's id of the sent message, when accepted.
    pub provider_message_id: Option<String>,
    /// Why it failed.
    pub error: Option<SendError>,
    /// The command's origin, copied.
    pub origin: Origin,
    /// The command's campaign, copied.
    pub campaign_id: Option<String>,
    /// How many provider calls were made.
    pub attempts: i32,
}
