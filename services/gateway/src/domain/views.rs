//! The JSON shapes operators see, shared by socket.io payloads and the REST API, so a client
//! merges what it fetched and what it was pushed without translating. `EVENTS.md` and
//! `openapi.yaml` document them field by field.

use caas_events::model::{Content, MessageStatus, Origin};
use serde::{Deserialize, Serialize};

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer (bot, operator, campaign, integrator).
    Outbound,
}

/// Where a message stands (the logger's names). Outbound messages move forward only:
/// `queued` < `accepted` < `sent` < `delivered` < `read`; `failed` is terminal.
/// Inbound messages are `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// An inbound message.
    Received,
    /// An outbound command is on Kafka; the sender has not answered yet.
    Queued,
    /// The provider accepted it (it has a provider message id).
    Accepted,
    /// The provider sent it.
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It could not be sent or delivered.
    Failed,
}

impl DeliveryStatus {
    /// Forward order; `failed` ranks above everything because it is terminal.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Received | DeliveryStatus::Queued => 0,
            DeliveryStatus::Accepted => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Delivered => 3,
            DeliveryStatus::Read => 4,
            DeliveryStatus::Failed => 5,
        }
    }

    /// The later of two statuses (statuses never move backwards, whatever the arrival order).
    pub fn max(self, other: DeliveryStatus) -> DeliveryStatus {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// Parse the lower-case name.
    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        Some(match name {
            "received" => DeliveryStatus::Received,
            "queued" => DeliveryStatus::Queued,
            "accepted" => DeliveryStatus::Accepted,
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

impl From<MessageStatus> for DeliveryStatus {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Sent => DeliveryStatus::Sent,
            MessageStatus::Delivered => DeliveryStatus::Delivered,
            MessageStatus::Read => DeliveryStatus::Read,
            MessageStatus::Failed => DeliveryStatus::Failed,
        }
    }
}

/// Why a message failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    /// The provider's or CAAS's code.
    pub code: String,
    /// In words.
    pub reason: String,
}

/// One message of a thread (`message.new` payload, REST message item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    /// Stable id, the logger's `messages` `_id`: `in:<channel>:<provider message id>` or
    /// `out:<tenant>:<command id>`.
    pub id: String,
    /// The conversation.
    pub conversation_key: String,
    /// The conversation sequence of this message's latest change (logger-assigned); `null`
    /// when the logger had not assigned it within the gateway's wait.
    pub seq: Option<i64>,
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// `customer`, `bot`, `operator`, `campaign` or `integrator`.
    pub origin: String,
    /// The operator who sent it (outbound, origin operator).
    pub operator_id: Option<String>,
    /// The outbound command id (outbound only).
    pub command_id: Option<String>,
    /// The provider's message id, once known.
    pub provider_message_id: Option<String>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// The content, as in the Avro contract: `{"text": {"body": ..., "preview_url": false}}`,
    /// `{"media": {...}}`, `{"template": {...}}`, ...
    pub content: serde_json::Value,
    /// A one-line human preview of the content.
    pub preview: String,
    /// When it was sent (provider time for inbound, request time for outbound), epoch ms.
    pub occurred_at: i64,
    /// Why it failed, when it did.
    pub error: Option<MessageError>,
}

/// The newest message of a conversation, for the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    /// One-line preview.
    pub preview: String,
    /// `inbound` or `outbound`.
    pub direction: Direction,
    /// When it was sent, epoch ms.
    pub occurred_at: i64,
}

/// A conversation as the list shows it (`conversation.updated` snapshot, REST list item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// `<tenant>:<channel>:<customer>`.
    pub conversation_key: String,
    /// The conversation's latest sequence number (logger-assigned).
    pub seq: Option<i64>,
    /// The tenant.
    pub tenant_id: String,
    /// `whatsapp` or `rcs`.
    pub channel: String,
    /// The customer's address on the channel.
    pub customer_id: String,
    /// The customer's profile name, when known.
    pub customer_name: Option<String>,
    /// `bot` (the chatbot answers) or `human` (an operator took over).
    pub mode: String,
    /// The operator handling it, if any.
    pub assignee: Option<String>,
    /// Whether it was closed.
    pub closed: bool,
    /// Whether the customer withdrew consent to marketing on this channel (display only; the
    /// campaign service's consents are the authority).
    pub opted_out: bool,
    /// Customer messages not read by an operator yet.
    pub unread_count: i64,
    /// The newest message.
    pub last_message: Option<LastMessage>,
    /// When the customer last wrote (opens WhatsApp's 24-hour window), epoch ms.
    pub last_inbound_at: Option<i64>,
    /// The newest activity of any kind, epoch ms (the list's sort order).
    pub last_activity_at: Option<i64>,
}

/// The origin's lower-case name.
pub fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Bot => "bot",
        Origin::Campaign => "campaign",
        Origin::Operator => "operator",
        Origin::Integrator => "integrator",
    }
}

/// One line that says what a message is.
pub fn preview(content: &Content) -> String {
    let text = match content {
        Content::Text(text) => text.body.clone(),
        Content::Media(media) => {
            let kind = serde_json::to_value(media.kind)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_else(|| "media".to_string());
            match &media.caption {
                Some(caption) if !caption.is_empty() => format!("[{kind}] {caption}"),
                _ => format!("[{kind}]"),
            }
        }
        Content::Location(location) => match &location.name {
            Some(name) => format!("[location] {name}"),
            None => format!(
                "[location] {:.5}, {:.5}",
                location.latitude, location.longitude
            ),
        },
        Content::Contacts(contacts) => {
            let names: Vec<&str> = contacts
                .cards
                .iter()
                .map(|card| card.formatted_name.as_str())
                .collect();
            format!("[contact] {}", names.join(", "))
        }
        Content::InteractiveReply(reply) => reply.title.clone(),
        Content::Reaction(reaction) => match &reaction.emoji {
            Some(emoji) if !emoji.is_empty() => format!("reacted {emoji}"),
            _ => "removed a reaction".to_string(),
        },
        Content::Template(template) => format!("[template {}]", template.name),
        Content::Interactive(interactive) => interactive.body.clone(),
        Content::Unsupported(unsupported) => {
            format!("[unsupported {}]", unsupported.provider_type)
        }
    };
    truncate_chars(&text, 200)
}

fn truncate_chars(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_string(),
    }
}

/// The content as JSON (externally tagged, field names as in the Avro schema).
pub fn content_json(content: &Content) -> serde_json::Value {
    serde_json::to_value(content).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_events::model::{Media, MediaKind, Text};

    #[test]
    fn statuses_only_move_forward_and_failed_is_terminal() {
        use DeliveryStatus::*;
        assert_eq!(Delivered.max(Sent), Delivered);
        assert_eq!(Sent.max(Read), Read);
        assert_eq!(Read.max(Failed), Failed);
        assert_eq!(Failed.max(Read), Failed);
        assert_eq!(Queued.max(Accepted), Accepted);
        assert_eq!(DeliveryStatus::parse("delivered"), Some(Delivered));
        assert_eq!(DeliveryStatus::parse("bogus"), None);
    }

    #[test]
    fn previews_say_what_a_message_is() {
        let text = Content::Text(Text {
            body: "hello".into(),
            preview_url: false,
        });
        assert_eq!(preview(&text), "hello");
        let image = Content::Media(Media {
            kind: MediaKind::Image,
            id: None,
            link: None,
            mime_type: None,
            caption: Some("look".into()),
            filename: None,
            sha256: None,
            voice: false,
            size_bytes: None,
        });
        assert_eq!(preview(&image), "[image] look");
        let long = Content::Text(Text {
            body: "é".repeat(300),
            preview_url: false,
        });
        assert_eq!(preview(&long).chars().count(), 201);
        assert_eq!(content_json(&text)["text"]["body"], "hello");
    }
}
