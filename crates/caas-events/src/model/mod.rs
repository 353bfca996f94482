//! The event types, field for field as in `schemas/*.avsc` (same names, same order, same
//! unions). Every event starts with the same envelope fields: `event_id`, `tenant_id`,
//! `conversation_key`, `channel`, `occurred_at`, `recorded_at`, `source`, `trace_parent`.
//!
//! Timestamps are `i64` milliseconds since the Unix epoch (Avro `timestamp-millis`). Rust enums
//! are Avro enums or unions; their variant order is the Avro order and must never change.

mod campaign;
mod content;
mod conversation;
mod message;
mod outbound;
mod presence;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use campaign::{
    CampaignAction, CampaignCommand, CampaignCounts, CampaignEvent, CampaignEventKind,
    CancelCampaign, CreateCampaign, PauseCampaign, ResumeCampaign, SendingWindow, Weekday,
};
pub use content::{
    ContactCard, ContactEmail, ContactPhone, Contacts, Content, Interactive, InteractiveKind,
    InteractiveOption, InteractiveReply, InteractiveReplyKind, Location, Media, MediaKind,
    Reaction, Template, TemplateComponent, TemplateParameter, Text, Unsupported,
};
pub use conversation::{ConversationEvent, ConversationEventKind};
pub use message::{
    InboundMessage, InboundStatus, MessageStatus, Pricing, ProviderConversation, ProviderError,
    ReplyContext,
};
pub use outbound::{Origin, OutboundCommand, OutboundResult, SendError, SendOutcome};
pub use presence::{PresenceEvent, PresenceKind, PresenceSubject, PresenceUpdate};

/// The messaging channel (Avro enum `caas.v1.Channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Meta WhatsApp Business Cloud API.
    Whatsapp,
    /// Google RCS Business Messaging.
    Rcs,
}

impl Channel {
    /// The Avro symbol, also used in conversation keys: `whatsapp` or `rcs`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Rcs => "rcs",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A channel name that is neither `whatsapp` nor `rcs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?} (expected whatsapp or rcs)")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "whatsapp" => Ok(Channel::Whatsapp),
            "rcs" => Ok(Channel::Rcs),
            other => Err(UnknownChannel(other.to_string())),
        }
    }
}
