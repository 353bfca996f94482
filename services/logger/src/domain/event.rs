//! What a consumed record becomes once decoded: one of the nine event types, with where it
//! came from, plus the checks that make a decodable record still poison for the logger.

use caas_events::keys::parse_conversation_key;
use caas_events::model::{
    CampaignAction, CampaignCommand, CampaignEvent, Content, ConversationEvent, InboundMessage,
    InboundStatus, OutboundCommand, OutboundResult, PresenceEvent, PresenceUpdate,
};
use caas_events::{topics, Event};
use mongodb::bson::Document;

/// One decoded event of any type the logger stores.
#[derive(Debug, Clone, PartialEq)]
pub enum LoggedEvent {
    /// `inbound.messages.v1`.
    InboundMessage(InboundMessage),
    /// `inbound.statuses.v1`.
    InboundStatus(InboundStatus),
    /// `outbound.commands.v1`.
    OutboundCommand(OutboundCommand),
    /// `outbound.results.v1`.
    OutboundResult(OutboundResult),
    /// `conversation.events.v1`.
    ConversationEvent(ConversationEvent),
    /// `presence.events.v1`.
    PresenceEvent(PresenceEvent),
    /// `presence.updates.v1`.
    PresenceUpdate(PresenceUpdate),
    /// `campaign.commands.v1`.
    CampaignCommand(CampaignCommand),
    /// `campaign.events.v1`.
    CampaignEvent(CampaignEvent),
}

/// Calls `$body` with the inner event, whatever its type.
macro_rules! each_event {
    ($value:expr, $event:ident => $body:expr) => {
        match $value {
            LoggedEvent::InboundMessage($event) => $body,
            LoggedEvent::InboundStatus($event) => $body,
            LoggedEvent::OutboundCommand($event) => $body,
            LoggedEvent::OutboundResult($event) => $body,
            LoggedEvent::ConversationEvent($event) => $body,
            LoggedEvent::PresenceEvent($event) => $body,
            LoggedEvent::PresenceUpdate($event) => $body,
            LoggedEvent::CampaignCommand($event) => $body,
            LoggedEvent::CampaignEvent($event) => $body,
        }
    };
}

impl LoggedEvent {
    /// The envelope's event id.
    pub fn event_id(&self) -> &str {
        each_event!(self, event => event.event_id())
    }

    /// The envelope's tenant.
    pub fn tenant_id(&self) -> &str {
        each_event!(self, event => event.tenant_id())
    }

    /// The envelope's key (conversation, operator or campaign key).
    pub fn conversation_key(&self) -> &str {
        each_event!(self, event => event.key())
    }

    /// The envelope's `occurred_at`, epoch milliseconds.
    pub fn occurred_at(&self) -> i64 {
        each_event!(self, event => event.occurred_at())
    }

    /// The envelope's `recorded_at`, epoch milliseconds.
    pub fn recorded_at(&self) -> i64 {
        each_event!(self, event => event.recorded_at)
    }

    /// The canonical topic of the type.
    pub fn topic(&self) -> &'static str {
        match self {
            LoggedEvent::InboundMessage(_) => topics::INBOUND_MESSAGES,
            LoggedEvent::InboundStatus(_) => topics::INBOUND_STATUSES,
            LoggedEvent::OutboundCommand(_) => topics::OUTBOUND_COMMANDS,
            LoggedEvent::OutboundResult(_) => topics::OUTBOUND_RESULTS,
            LoggedEvent::ConversationEvent(_) => topics::CONVERSATION_EVENTS,
            LoggedEvent::PresenceEvent(_) => topics::PRESENCE_EVENTS,
            LoggedEvent::PresenceUpdate(_) => topics::PRESENCE_UPDATES,
            LoggedEvent::CampaignCommand(_) => topics::CAMPAIGN_COMMANDS,
            LoggedEvent::CampaignEvent(_) => topics::CAMPAIGN_EVENTS,
        }
    }

    /// The `type` stored in `events`.
    pub fn type_name(&self) -> &'static str {
        match self {
            LoggedEvent::InboundMessage(_) => "inbound_message",
            LoggedEvent::InboundStatus(_) => "inbound_status",
            LoggedEvent::OutboundCommand(_) => "outbound_command",
            LoggedEvent::OutboundResult(_) => "outbound_result",
            LoggedEvent::ConversationEvent(_) => "conversation_event",
            LoggedEvent::PresenceEvent(_) => "presence_event",
            LoggedEvent::PresenceUpdate(_) => "presence_update",
            LoggedEvent::CampaignCommand(_) => "campaign_command",
            LoggedEvent::CampaignEvent(_) => "campaign_event",
        }
    }

    /// Whether the event changes a conversation, so it gets the conversation's next sequence
    /// number: messages, statuses, send requests and results, conversation events.
    pub fn changes_conversation(&self) -> bool {
        matches!(
            self,
            LoggedEvent::InboundMessage(_)
                | LoggedEvent::InboundStatus(_)
                | LoggedEvent::OutboundCommand(_)
                | LoggedEvent::OutboundResult(_)
                | LoggedEvent::ConversationEvent(_)
        )
    }

    /// The customers the event is about: the customer of its conversation key, plus the inline
    /// recipients of a campaign.
    pub fn customer_ids(&self) -> Vec<String> {
        let mut customers: Vec<String> = parse_conversation_key(self.conversation_key())
            .map(|key| vec![key.customer_id.to_string()])
            .unwrap_or_default();
        if let LoggedEvent::CampaignCommand(command) = self {
            if let CampaignAction::Create(create) = &command.action {
                customers.extend(create.recipients.iter().cloned());
            }
        }
        customers.sort();
        customers.dedup();
        customers
    }

    /// The event as a BSON document, field for field.
    pub fn to_document(&self) -> Result<Document, mongodb::bson::ser::Error> {
        each_event!(self, event => mongodb::bson::to_document(event))
    }

    /// Why the logger cannot store this event although it decoded: the contract says the
    /// envelope key starts with the tenant, and that the five conversation topics carry a
    /// conversation key.
    pub fn contract_violation(&self) -> Option<String> {
        let tenant = self.tenant_id();
        let key = self.conversation_key();
        if tenant.is_empty() || tenant.contains(':') {
            return Some(format!("tenant_id {tenant:?} is empty or contains ':'"));
        }
        if !key
            .strip_prefix(tenant)
            .is_some_and(|rest| rest.starts_with(':'))
        {
            return Some(format!(
                "conversation_key {key:?} does not belong to tenant {tenant:?}"
            ));
        }
        if self.changes_conversation() && parse_conversation_key(key).is_none() {
            return Some(format!(
                "{} needs a conversation key <tenant>:<whatsapp|rcs>:<customer>, got {key:?}",
                self.type_name()
            ));
        }
        None
    }
}

/// A decoded record with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The topic it was consumed from (with any configured prefix).
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The Kafka key.
    pub key: Option<String>,
    /// The event.
    pub event: LoggedEvent,
}

impl Incoming {
    /// `events` as if consumed in this order from partition 0 of their topics, offsets from 0
    /// (tests and scenarios: the store only reads the event and its key).
    pub fn in_order(events: &[LoggedEvent]) -> Vec<Incoming> {
        events
            .iter()
            .enumerate()
            .map(|(offset, event)| Incoming {
                topic: event.topic().to_string(),
                partition: 0,
                offset: offset as i64,
                key: Some(event.conversation_key().to_string()),
                event: event.clone(),
            })
            .collect()
    }
}

/// The kind of a content and a short preview of it, for message lists.
pub fn summarize(content: &Content) -> (&'static str, Option<String>) {
    const PREVIEW_CHARS: usize = 120;
    let cut = |text: &str| -> String {
        if text.chars().count() <= PREVIEW_CHARS {
            text.to_string()
        } else {
            let mut cut: String = text.chars().take(PREVIEW_CHARS).collect();
            cut.push('…');
            cut
        }
    };
    match content {
        Content::Text(text) => ("text", Some(cut(&text.body))),
        Content::Media(media) => (
            "media",
            Some(
                media
                    .caption
                    .as_deref()
                    .map(cut)
                    .unwrap_or_else(|| format!("[{:?}]", media.kind).to_lowercase()),
            ),
        ),
        Content::Location(location) => (
            "location",
            Some(
                location
                    .name
                    .as_deref()
                    .map(cut)
                    .unwrap_or_else(|| "[location]".to_string()),
            ),
        ),
        Content::Contacts(contacts) => (
            "contacts",
            Some(
                contacts
                    .cards
                    .first()
                    .map(|card| cut(&card.formatted_name))
                    .unwrap_or_else(|| "[contacts]".to_string()),
            ),
        ),
        Content::InteractiveReply(reply) => ("interactive_reply", Some(cut(&reply.title))),
        Content::Reaction(reaction) => ("reaction", reaction.emoji.clone()),
        Content::Template(template) => ("template", Some(format!("[template {}]", template.name))),
        Content::Interactive(interactive) => ("interactive", Some(cut(&interactive.body))),
        Content::Unsupported(unsupported) => (
            "unsupported",
            Some(format!("[{}]", unsupported.provider_type)),
        ),
    }
}
